//! Seeded random streams.
//!
//! Every person, every row of every file and every plan draws from its own ChaCha8 stream,
//! keyed by the seed, a stream kind and an index. A record therefore depends only on the
//! seed and its position, never on the order in which other records were generated.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The kinds of independent random streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Attributes of one person of the population.
    Person = 1,
    /// Which people appear in which source, and in what order.
    Selection = 2,
    /// One row of `crm_contacts.csv`.
    CrmRow = 3,
    /// One row of `shop_customers.parquet`.
    ShopRow = 4,
    /// One row of `loyalty_members.jsonl`.
    LoyaltyRow = 5,
    /// One planned order.
    Order = 6,
    /// Where the deliberately malformed rows go.
    Malformed = 7,
    /// The random part of the CRM contact ids.
    CrmKey = 8,
    /// Creation times of the records of a file, in file order.
    Timeline = 9,
    /// One block of rows of the ingestion benchmark's file.
    BenchOrders = 10,
    /// One person of the people benchmark.
    PeoplePerson = 11,
    /// The records of one person of the people benchmark.
    PeopleRecords = 12,
    /// A new family name after a marriage.
    PeopleMarriage = 13,
}

/// A random stream for `index` within `stream`.
pub(crate) fn rng_for(seed: u64, stream: Stream, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(stream as u64).to_le_bytes());
    key[16..24].copy_from_slice(&index.to_le_bytes());
    key[24..].copy_from_slice(b"lakecdp\0");
    ChaCha8Rng::from_seed(key)
}

/// A uniformly chosen element of a non-empty slice.
pub(crate) fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// An index into `weights`, chosen in proportion to the weights (at least one must be non-zero).
pub(crate) fn pick_weighted(
    rng: &mut impl Rng,
    weights: impl Iterator<Item = u32> + Clone,
) -> usize {
    let total: u64 = weights.clone().map(u64::from).sum();
    let mut ticket = rng.random_range(0..total.max(1));
    let mut last = 0;
    for (i, w) in weights.enumerate() {
        let w = u64::from(w);
        if ticket < w {
            return i;
        }
        ticket -= w;
        last = i;
    }
    last
}

/// `true` with probability `per_mille / 1000`.
pub(crate) fn chance(rng: &mut impl Rng, per_mille: u32) -> bool {
    rng.random_range(0..1000u32) < per_mille
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_and_repeatable() {
        let a: u64 = rng_for(1, Stream::Person, 5).random();
        let b: u64 = rng_for(1, Stream::Person, 5).random();
        let c: u64 = rng_for(1, Stream::Person, 6).random();
        let d: u64 = rng_for(1, Stream::CrmRow, 5).random();
        let e: u64 = rng_for(2, Stream::Person, 5).random();
        assert_eq!(a, b);
        assert!(a != c && a != d && a != e);
    }

    #[test]
    fn weighted_pick_respects_zero_weights() {
        let mut rng = rng_for(0, Stream::Selection, 0);
        for _ in 0..1000 {
            let i = pick_weighted(&mut rng, [0u32, 3, 0, 1].into_iter());
            assert!(i == 1 || i == 3);
        }
    }
}
