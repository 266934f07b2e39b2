//! Stable customer ids across refreshes.
//!
//! Every refresh clusters the records anew: one cluster per customer. This module
//! gives each new cluster a CustomerId, carrying the ids of the previous refresh over
//! so that a customer keeps its id while its records come, go, merge and split, and
//! it records why every id that stops being used was retired.
//!
//! # Contract
//!
//! * A record key is a string that sorts in age order: the smallest key is the
//!   earliest record. The caller builds it that way, for example a table index prefix
//!   followed by the primary key.
//! * A CustomerId is an opaque string that the caller generates so that ids sort by
//!   creation time (the smaller, the older) and that is never reused. Every id the
//!   generator returns is therefore newer than, and different from, every previous id.
//! * The clusters are disjoint: a record key appears in at most one cluster.
//!
//! # Rules
//!
//! 1. A profile keeps the id of the previous profile it shares record keys with.
//! 2. For each previous id X, its *claimant* is the new cluster holding X's earliest
//!    previous key that still exists. When a previous profile splits, the part with
//!    the earliest key keeps the id; when its earliest record is gone, the next one
//!    decides.
//! 3. A cluster claimed by several previous ids keeps the oldest (smallest) id; the
//!    others are retired as [`ChangeReason::Merged`] (old id -> surviving id).
//! 4. A cluster claimed by no previous id gets a new id. When it holds keys of
//!    previous ids (it split off from them), each of those ids gets a
//!    [`ChangeReason::Split`] row (old id -> new id). A cluster with no previous key
//!    at all gets a new id and no history.
//! 5. A previous id none of whose keys exists any more is retired as
//!    [`ChangeReason::Removed`] (old id -> no id).
//!
//! Records that move from one previous profile into a cluster that keeps another id
//! leave no row: both ids live on.
//!
//! # Algorithm
//!
//! With `K` keys in the new clusters, `P` keys in the previous assignment, `I`
//! previous ids that still have keys and `C` clusters:
//!
//! 1. One pass over the new keys, each looked up in the previous assignment (the only
//!    per-key hash look-up). Within a cluster, the previous ids met are gathered in a
//!    short list with the position of their smallest key there, so that a profile's
//!    many keys cost one claim update per cluster, not one per key. A map (sized up
//!    front) keeps the claim of every previous id met: its smallest key over all
//!    clusters, stored as cluster number and position (8 bytes). Each cluster
//!    remembers whether it holds no previous key, keys of one previous id (and which),
//!    or keys of several.
//! 2. When fewer keys were found than the previous assignment has, some previous keys
//!    are gone: one pass over the previous ids (the values of the previous assignment)
//!    finds those without a claim, which lost all their keys and are removed. When
//!    every previous key was found, no id can be removed and the pass is skipped.
//! 3. The claims, sorted by (cluster, id), are grouped by cluster: the first id of a
//!    group is the oldest and survives, the others are merged into it.
//! 4. One pass over the clusters in order: a claimed cluster takes its surviving id;
//!    any other cluster calls the generator once. A split-off part that holds keys of
//!    one previous id names it directly; only one holding keys of several previous
//!    ids has its keys looked up again, to list them.
//! 5. The history is sorted by (old id, new id), so the output is deterministic.
//!
//! Time is `O(K + P + C + I log I)` hash look-ups and comparisons, and the pass over
//! `P` happens only when records were deleted. Memory beyond the output is the claim
//! map (`I` entries of 24 bytes), then the same claims as a sorted vector, and 17
//! bytes a cluster; the new keys are never copied into a map of their own.

use hashbrown::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;

/// Why a history row names a previous CustomerId.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeReason {
    /// Its profile merged with an older one, whose id survives.
    Merged,
    /// Part of its profile split off into a new profile with a new id; the id itself
    /// lives on with the part holding its earliest record.
    Split,
    /// None of its records exists any more.
    Removed,
}

impl ChangeReason {
    /// The lower-case name: `merged`, `split` or `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeReason::Merged => "merged",
            ChangeReason::Split => "split",
            ChangeReason::Removed => "removed",
        }
    }
}

impl fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of id history: a previous id, the id its records went to, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdChange {
    /// The previous CustomerId.
    pub old_id: String,
    /// The id that took over: the surviving id ([`ChangeReason::Merged`]), the new id
    /// of the part that split off ([`ChangeReason::Split`]), or `None`
    /// ([`ChangeReason::Removed`]).
    pub new_id: Option<String>,
    /// Why.
    pub reason: ChangeReason,
}

/// The ids of a refresh and the history of the previous ids that changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// One CustomerId per cluster, in the order of the clusters.
    pub ids: Vec<String>,
    /// The history rows, sorted by `(old_id, new_id)`.
    pub history: Vec<IdChange>,
}

/// Where a previous id's earliest surviving key sits in the new clusters.
#[derive(Debug, Clone, Copy)]
struct Claim {
    cluster: u32,
    position: u32,
}

/// What a cluster holds of the previous assignment, then whether it is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holds {
    /// No previous key.
    Nothing,
    /// Keys of one previous id.
    One,
    /// Keys of several previous ids.
    Several,
    /// Claimed by a previous id, whose id it keeps.
    Claimed,
}

/// How many distinct previous ids a cluster gathers before sending further ones
/// straight to the claim map; keeps the per-cluster search short even in a huge,
/// over-merged cluster.
const GATHERED_IDS: usize = 8;

/// Records `claim` for `id` in `claims` unless `id` already holds a smaller key (or
/// the same key in an earlier cluster, should a key be listed twice).
fn offer<'p>(
    claims: &mut hashbrown::HashMap<&'p str, Claim>,
    clusters: &[Vec<&str>],
    id: &'p str,
    claim: Claim,
) {
    match claims.entry(id) {
        Entry::Vacant(vacant) => {
            vacant.insert(claim);
        }
        Entry::Occupied(mut occupied) => {
            let held = *occupied.get();
            let key_at = |c: Claim| clusters[c.cluster as usize][c.position as usize];
            if (key_at(claim), claim.cluster) < (key_at(held), held.cluster) {
                occupied.insert(claim);
            }
        }
    }
}

/// Assigns a CustomerId to every cluster of record keys, keeping the ids of
/// `previous` (record key -> previous CustomerId) as the module documentation
/// describes. `new_id` is called once for every cluster that keeps no previous id, in
/// cluster order, and must return ids newer than every previous one.
///
/// The clusters must be disjoint. Should a key be listed in several clusters, the
/// result is still deterministic but the rules no longer hold.
///
/// # Panics
///
/// When there are more than `u32::MAX` clusters or keys in one cluster.
pub fn assign<S: std::hash::BuildHasher>(
    clusters: &[Vec<&str>],
    previous: &HashMap<String, String, S>,
    new_id: &mut dyn FnMut() -> String,
) -> Assignment {
    assert!(
        clusters.len() <= u32::MAX as usize,
        "{} clusters: at most {} are supported",
        clusters.len(),
        u32::MAX
    );

    // 1. The claim of every previous id: its smallest key among the new clusters.
    let mut claims: hashbrown::HashMap<&str, Claim> =
        hashbrown::HashMap::with_capacity(previous.len().min(clusters.len()));
    // Per cluster: what it holds of the previous assignment, and the first previous
    // id met in it; after step 3, the surviving id of a claimed cluster.
    let mut holds = vec![Holds::Nothing; clusters.len()];
    let mut named: Vec<Option<&str>> = vec![None; clusters.len()];
    let mut found = 0usize;
    let mut gathered: Vec<(&str, u32)> = Vec::with_capacity(GATHERED_IDS);
    for (number, cluster) in clusters.iter().enumerate() {
        assert!(
            cluster.len() <= u32::MAX as usize,
            "a cluster of {} keys: at most {} are supported",
            cluster.len(),
            u32::MAX
        );
        let number = number as u32;
        gathered.clear();
        let mut several = false;
        for (position, &key) in cluster.iter().enumerate() {
            let Some(id) = previous.get(key) else {
                continue;
            };
            let (id, position) = (id.as_str(), position as u32);
            found += 1;
            if let Some(entry) = gathered.iter_mut().find(|(seen, _)| *seen == id) {
                if key < cluster[entry.1 as usize] {
                    entry.1 = position;
                }
            } else if gathered.len() < GATHERED_IDS {
                gathered.push((id, position));
            } else {
                several = true;
                let claim = Claim {
                    cluster: number,
                    position,
                };
                offer(&mut claims, clusters, id, claim);
            }
        }
        for &(id, position) in &gathered {
            let claim = Claim {
                cluster: number,
                position,
            };
            offer(&mut claims, clusters, id, claim);
        }
        let index = number as usize;
        named[index] = gathered.first().map(|&(id, _)| id);
        holds[index] = match gathered.len() {
            0 => Holds::Nothing,
            1 if !several => Holds::One,
            _ => Holds::Several,
        };
    }

    // 2. Previous ids none of whose keys exists any more.
    let mut removed: Vec<&str> = Vec::new();
    if found < previous.len() {
        removed.extend(
            previous
                .values()
                .map(String::as_str)
                .filter(|id| !claims.contains_key(id)),
        );
        removed.sort_unstable();
        removed.dedup();
    }

    // 3. Per claimed cluster, the oldest claimant survives; the others merge into it.
    let mut by_cluster: Vec<(u32, &str)> = claims
        .into_iter()
        .map(|(id, claim)| (claim.cluster, id))
        .collect();
    by_cluster.sort_unstable();
    let mut history = Vec::with_capacity(removed.len());
    for group in by_cluster.chunk_by(|a, b| a.0 == b.0) {
        let Some((&(cluster, survivor), merged)) = group.split_first() else {
            continue;
        };
        holds[cluster as usize] = Holds::Claimed;
        named[cluster as usize] = Some(survivor);
        history.extend(merged.iter().map(|&(_, old)| IdChange {
            old_id: old.to_owned(),
            new_id: Some(survivor.to_owned()),
            reason: ChangeReason::Merged,
        }));
    }
    drop(by_cluster);

    // 4. The ids in cluster order; unclaimed clusters get new ones.
    let mut ids = Vec::with_capacity(clusters.len());
    let mut split_from: Vec<&str> = Vec::new();
    for (number, cluster) in clusters.iter().enumerate() {
        let (holds, named) = (holds[number], named[number]);
        if let (Holds::Claimed, Some(survivor)) = (holds, named) {
            ids.push(survivor.to_owned());
            continue;
        }
        let id = new_id();
        split_from.clear();
        match holds {
            Holds::Nothing | Holds::Claimed => {}
            Holds::One => split_from.extend(named),
            Holds::Several => {
                split_from.extend(
                    cluster
                        .iter()
                        .filter_map(|&key| previous.get(key))
                        .map(String::as_str),
                );
                split_from.sort_unstable();
                split_from.dedup();
            }
        }
        history.extend(split_from.iter().map(|&old| IdChange {
            old_id: old.to_owned(),
            new_id: Some(id.clone()),
            reason: ChangeReason::Split,
        }));
        ids.push(id);
    }

    // 5. Deterministic history.
    history.extend(removed.into_iter().map(|old| IdChange {
        old_id: old.to_owned(),
        new_id: None,
        reason: ChangeReason::Removed,
    }));
    history.sort_unstable_by(|a, b| (&a.old_id, &a.new_id).cmp(&(&b.old_id, &b.new_id)));

    Assignment { ids, history }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Ids that sort by creation time: `id-000001`, `id-000002`, ...
    struct Ids(u64);

    impl Ids {
        fn generator(&mut self) -> impl FnMut() -> String + '_ {
            move || {
                self.0 += 1;
                format!("id-{:06}", self.0)
            }
        }
    }

    fn run(clusters: &[&[&str]], previous: &HashMap<String, String>, ids: &mut Ids) -> Assignment {
        let clusters: Vec<Vec<&str>> = clusters.iter().map(|c| c.to_vec()).collect();
        assign(&clusters, previous, &mut ids.generator())
    }

    /// The assignment a refresh leaves for the next one: record key -> id.
    fn remember(clusters: &[&[&str]], assignment: &Assignment) -> HashMap<String, String> {
        let mut map = HashMap::new();
        for (cluster, id) in clusters.iter().zip(&assignment.ids) {
            for key in *cluster {
                map.insert(key.to_string(), id.clone());
            }
        }
        map
    }

    fn change(old: &str, new: Option<&str>, reason: ChangeReason) -> IdChange {
        IdChange {
            old_id: old.into(),
            new_id: new.map(Into::into),
            reason,
        }
    }

    #[test]
    fn three_refreshes_keep_merge_split_and_never_reuse() {
        let mut gen = Ids(0);
        let mut issued: HashSet<String> = HashSet::new();

        // 1. First run: every profile gets a new id, no history.
        let first: &[&[&str]] = &[&["a1", "a2"], &["b1"], &["c1", "c2"], &["d1"]];
        let one = run(first, &HashMap::new(), &mut gen);
        assert_eq!(
            one.ids,
            ["id-000001", "id-000002", "id-000003", "id-000004"]
        );
        assert!(one.history.is_empty());
        issued.extend(one.ids.iter().cloned());

        // 2. A record joins profile a; b and c merge; d disappears; e is new.
        let second: &[&[&str]] = &[&["e1"], &["c1", "c2", "b1"], &["a1", "a2", "a3"]];
        let two = run(second, &remember(first, &one), &mut gen);
        assert_eq!(two.ids, ["id-000005", "id-000002", "id-000001"]);
        assert_eq!(
            two.history,
            [
                change("id-000003", Some("id-000002"), ChangeReason::Merged),
                change("id-000004", None, ChangeReason::Removed),
            ]
        );
        assert!(!issued.contains(&two.ids[0]), "a new id is never reused");
        issued.insert(two.ids[0].clone());

        // 3. The merged profile splits again: the part holding its earliest key (b1)
        //    keeps the id even though it comes second; c2 splits off with a new id.
        //    e disappears.
        let third: &[&[&str]] = &[&["c2"], &["a1", "a2", "a3"], &["c1", "b1"]];
        let three = run(third, &remember(second, &two), &mut gen);
        assert_eq!(three.ids, ["id-000006", "id-000001", "id-000002"]);
        assert_eq!(
            three.history,
            [
                change("id-000002", Some("id-000006"), ChangeReason::Split),
                change("id-000005", None, ChangeReason::Removed),
            ]
        );
        assert!(!issued.contains(&three.ids[0]), "a new id is never reused");
        // Neither the removed ids nor the merged one ever come back.
        for retired in ["id-000003", "id-000004", "id-000005"] {
            assert!(!three.ids.iter().any(|id| id == retired));
        }
    }

    #[test]
    fn earliest_surviving_key_decides_when_the_earliest_is_gone() {
        let mut gen = Ids(10);
        let previous: HashMap<String, String> = [
            ("k1", "id-000001"),
            ("k2", "id-000001"),
            ("k3", "id-000001"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let next = run(&[&["k3"], &["k2"]], &previous, &mut gen);
        assert_eq!(next.ids, ["id-000011", "id-000001"]);
        assert_eq!(
            next.history,
            [change("id-000001", Some("id-000011"), ChangeReason::Split)]
        );
    }

    #[test]
    fn three_way_merge_keeps_the_oldest_and_a_split_names_every_source() {
        let mut gen = Ids(100);
        let previous: HashMap<String, String> = [
            ("a1", "id-000001"),
            ("a2", "id-000001"),
            ("b1", "id-000002"),
            ("b2", "id-000002"),
            ("c1", "id-000003"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // a1, b1 and c1 meet: id-000001 (oldest) survives. a2 and b2 split off together.
        let next = run(
            &[&["b2", "a2", "new"], &["c1", "b1", "a1"]],
            &previous,
            &mut gen,
        );
        assert_eq!(next.ids, ["id-000101", "id-000001"]);
        assert_eq!(
            next.history,
            [
                change("id-000001", Some("id-000101"), ChangeReason::Split),
                change("id-000002", Some("id-000001"), ChangeReason::Merged),
                change("id-000002", Some("id-000101"), ChangeReason::Split),
                change("id-000003", Some("id-000001"), ChangeReason::Merged),
            ]
        );
    }

    #[test]
    fn a_merge_keeps_the_oldest_id_not_the_earliest_key() {
        let mut gen = Ids(10);
        let previous: HashMap<String, String> = [("a1", "id-000002"), ("z1", "id-000001")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let next = run(&[&["a1", "z1"]], &previous, &mut gen);
        assert_eq!(next.ids, ["id-000001"]);
        assert_eq!(
            next.history,
            [change("id-000002", Some("id-000001"), ChangeReason::Merged)]
        );
    }

    #[test]
    fn clusters_holding_many_previous_ids() {
        // Twelve previous profiles: keys p01a, p01b, p01c for id-000001, pNNa and
        // pNNb for the others.
        let id = |n: usize| format!("id-{n:06}");
        let mut previous = HashMap::new();
        for n in 1..=12 {
            for suffix in ["a", "b"] {
                previous.insert(format!("p{n:02}{suffix}"), id(n));
            }
        }
        previous.insert("p01c".to_string(), id(1));
        // One cluster gathers the earliest key of every profile (more ids than the
        // per-cluster list holds, id-000001's keys last and latest first); another
        // holds the second keys of profiles 1 to 11.
        let mut big: Vec<String> = vec!["p12b".into()];
        big.extend((2..=12).rev().map(|n| format!("p{n:02}a")));
        big.extend(["p01c".to_string(), "p01a".to_string()]);
        let rest: Vec<String> = (1..=11).map(|n| format!("p{n:02}b")).collect();
        let clusters: Vec<Vec<&str>> = vec![
            rest.iter().map(String::as_str).collect(),
            big.iter().map(String::as_str).collect(),
        ];
        let mut gen = Ids(100);
        let next = assign(&clusters, &previous, &mut gen.generator());
        assert_eq!(next.ids, ["id-000101", "id-000001"]);
        let mut expected = vec![change(&id(1), Some("id-000101"), ChangeReason::Split)];
        for n in 2..=11 {
            expected.push(change(&id(n), Some(&id(1)), ChangeReason::Merged));
            expected.push(change(&id(n), Some("id-000101"), ChangeReason::Split));
        }
        expected.push(change(&id(12), Some(&id(1)), ChangeReason::Merged));
        assert_eq!(next.history, expected);
    }

    #[test]
    fn moved_records_leave_no_history() {
        let mut gen = Ids(0);
        let previous: HashMap<String, String> = [
            ("a1", "id-000001"),
            ("a2", "id-000001"),
            ("b1", "id-000002"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let next = run(&[&["a1"], &["b1", "a2"]], &previous, &mut gen);
        assert_eq!(next.ids, ["id-000001", "id-000002"]);
        assert!(next.history.is_empty());
    }

    #[test]
    fn everything_removed_and_nothing_at_all() {
        let mut gen = Ids(0);
        let previous: HashMap<String, String> = [
            ("a1", "id-000001"),
            ("a2", "id-000001"),
            ("b1", "id-000002"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let next = run(&[], &previous, &mut gen);
        assert!(next.ids.is_empty());
        assert_eq!(
            next.history,
            [
                change("id-000001", None, ChangeReason::Removed),
                change("id-000002", None, ChangeReason::Removed),
            ]
        );
        assert_eq!(run(&[], &HashMap::new(), &mut gen), Assignment::default());
        assert_eq!(gen.0, 0, "no id generated for no cluster");
    }

    #[test]
    fn reasons_display_lower_case() {
        assert_eq!(ChangeReason::Merged.to_string(), "merged");
        assert_eq!(ChangeReason::Split.to_string(), "split");
        assert_eq!(ChangeReason::Removed.to_string(), "removed");
    }

    /// What a cluster of the large test must end up with.
    enum Expect {
        /// Keeps this previous id.
        Keep(usize),
        /// A new id; split from these previous profiles.
        New(Vec<usize>),
    }

    #[test]
    fn a_million_keys() {
        const PROFILES: usize = 250_000;
        let key = |k: usize| format!("k{k:08}");
        let mut gen = Ids(0);

        // First run: profile p holds keys 4p..4p+3.
        let keys: Vec<String> = (0..4 * PROFILES).map(key).collect();
        assert_eq!(keys.len(), 1_000_000);
        let first: Vec<Vec<&str>> = keys
            .chunks(4)
            .map(|c| c.iter().map(String::as_str).collect())
            .collect();
        let one = assign(&first, &HashMap::new(), &mut gen.generator());
        assert!(one.history.is_empty());
        for (p, id) in one.ids.iter().enumerate() {
            assert_eq!(*id, format!("id-{:06}", p + 1));
        }
        let mut previous = HashMap::with_capacity(keys.len());
        for (cluster, id) in first.iter().zip(&one.ids) {
            for k in cluster {
                previous.insert(k.to_string(), id.clone());
            }
        }

        // Second run: every residue of p mod 10 changes differently.
        let fresh: Vec<String> = (0..PROFILES).map(|p| format!("n{p:08}")).collect();
        let mut second: Vec<Vec<&str>> = Vec::new();
        let mut expect: Vec<Expect> = Vec::new();
        let mut removed = Vec::new();
        let k = |i: usize| keys[i].as_str();
        for (p, fresh_key) in fresh.iter().enumerate() {
            let b = 4 * p;
            match p % 10 {
                // p and p + 1 merge: p is older and keeps its id.
                0 => {
                    second.push((b..b + 8).rev().map(k).collect());
                    expect.push(Expect::Keep(p));
                }
                1 => {}
                // Splits in halves: the earliest half keeps the id.
                2 => {
                    second.push(vec![k(b + 2), k(b + 3)]);
                    expect.push(Expect::New(vec![p]));
                    second.push(vec![k(b + 1), k(b)]);
                    expect.push(Expect::Keep(p));
                }
                // Every record gone.
                3 => removed.push(p),
                // The earliest record gone, a new record added.
                4 => {
                    second.push(vec![fresh_key.as_str(), k(b + 3), k(b + 1), k(b + 2)]);
                    expect.push(Expect::Keep(p));
                }
                // Unchanged but for the order of its keys.
                5 | 9 => {
                    second.push((b..b + 4).rev().map(k).collect());
                    expect.push(Expect::Keep(p));
                }
                // The last record splits off with a brand new one.
                6 => {
                    second.push(vec![fresh_key.as_str(), k(b + 3)]);
                    expect.push(Expect::New(vec![p]));
                    second.push(vec![k(b + 2), k(b + 1), k(b)]);
                    expect.push(Expect::Keep(p));
                }
                // The last record of p moves to p + 1; both keep their ids.
                7 => {
                    second.push((b..b + 3).map(k).collect());
                    expect.push(Expect::Keep(p));
                    second.push((b + 3..b + 8).map(k).collect());
                    expect.push(Expect::Keep(p + 1));
                }
                8 => {}
                _ => unreachable!(),
            }
        }
        for p in (0..PROFILES).step_by(25) {
            if p % 10 == 5 {
                // A cluster of records never seen before.
                second.push(vec![fresh[p].as_str()]);
                expect.push(Expect::New(vec![]));
            }
        }
        // A split-off part that holds records of two profiles (tails of 9 and 19).
        let tails = [4 * 9 + 3, 4 * 19 + 3];
        for cluster in second.iter_mut() {
            cluster.retain(|key| !tails.iter().any(|&t| *key == k(t)));
        }
        second.push(tails.iter().map(|&t| k(t)).collect());
        expect.push(Expect::New(vec![9, 19]));

        let two = assign(&second, &previous, &mut gen.generator());
        assert_eq!(two.ids.len(), second.len());
        let old_ids: HashSet<&str> = one.ids.iter().map(String::as_str).collect();
        let mut new_ids = HashSet::new();
        let mut history = Vec::new();
        for (e, id) in expect.iter().zip(&two.ids) {
            match e {
                Expect::Keep(p) => assert_eq!(*id, one.ids[*p]),
                Expect::New(from) => {
                    assert!(!old_ids.contains(id.as_str()), "{id} reused");
                    assert!(new_ids.insert(id.as_str()), "{id} given twice");
                    for &p in from {
                        history.push(change(&one.ids[p], Some(id), ChangeReason::Split));
                    }
                }
            }
        }
        for p in (0..PROFILES).filter(|p| p % 10 == 0) {
            history.push(change(
                &one.ids[p + 1],
                Some(&one.ids[p]),
                ChangeReason::Merged,
            ));
        }
        for &p in &removed {
            history.push(change(&one.ids[p], None, ChangeReason::Removed));
        }
        history.sort_unstable_by(|a, b| (&a.old_id, &a.new_id).cmp(&(&b.old_id, &b.new_id)));
        assert_eq!(two.history.len(), history.len());
        assert!(two.history == history, "history differs");
        assert_eq!(gen.0 as usize, PROFILES + new_ids.len());
    }
}
