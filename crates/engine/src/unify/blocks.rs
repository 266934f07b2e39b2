//! The block index an incremental unification keeps between runs.
//!
//! Each side of a rule keys its records with blocking keys (see `rules`), and each
//! blocking key of a match model keys a record by its columns' normalised values (see
//! `model`). A run that keeps state stores, per *key definition* (a table, and the
//! columns, normalisations, comparators and thresholds its keys are made of: two rules
//! or model keys keyed alike share one), the hash of every key of every record, sorted,
//! with its record; and per rule and model key the hashes its giant-block guard left
//! out.
//!
//! The next run keeps the entries of the records that did not change where the file
//! holds them (renumbered to the rows they have now as they are read), keys the changed
//! ones anew beside them, and so holds the blocks a full run would build while
//! normalising and keying only what changed. The records a change reaches are then
//! found by looking their keys up in those blocks, and compared (or a model's
//! candidates scored) with the values of the few records involved, normalised one by
//! one. The giant-block guard counts again only the blocks whose count may have
//! changed. The kept and new entries are merged when the index is written for the next
//! run.
//!
//! Keys are hashed with a fixed seed ([`super::rules::key_hasher`]); the file carries
//! the hash of a known text, so a build hashing otherwise reads it as another index.
//! Blocks are told apart by the top 48 bits of a key's hash
//! ([`super::rules::KEY_BITS`]), in every run: a stored definition keeps where each
//! prefix of its hashes starts (16 to 24 bits: 256 KB to 64 MB), and per entry the 32
//! bits below the hash's top 16 and its row, 8 bytes.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use lakecdp_core::{ConditionSpec, ModelSpec, Normalization};

use super::data::TableData;
use super::rules::{
    exact_and_fuzzy, key_hasher, key_rows, verify, Blocker, Column, Condition, KeyScratch,
    NormalizedCache, Touching, Values,
};
use crate::{Error, Result};

/// The first bytes of a block index file.
const MAGIC: &[u8] = b"lakecdp block index 5\n";

/// The hashes of a short text, a long one and a crossed key, as the keys are hashed,
/// stored with the index: a build hashing otherwise reads it as another index.
fn probe() -> u64 {
    let h = key_hasher();
    h.hash_one("ab")
        ^ h.hash_one("lakecdp blocking keys, the long way")
            .rotate_left(21)
        ^ h.hash_one((7u64, "lakecdp")).rotate_left(42)
}

/// The checksum of an index's head.
fn checksum(bytes: &[u8]) -> u64 {
    key_hasher().hash_one(bytes)
}

/// The checksum of a definition's entries, summed entry by entry as they are written or
/// checked: multiply-rotate chains over the hashes and over the rows, the even entries'
/// apart from the odd ones' (so that a check runs two steps at once). Each step is a
/// bijection of its chain, so a change to any one entry always changes the sum.
#[derive(Clone, Copy, Default)]
struct EntrySum {
    even: (u64, u64),
    odd: (u64, u64),
    count: u64,
}

impl EntrySum {
    fn mix(x: u64) -> u64 {
        x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
    }

    fn add(&mut self, hash: u64, row: u32) {
        let step = |(h, r): (u64, u64)| (Self::mix(h ^ hash), Self::mix(r ^ u64::from(row)));
        if self.count & 1 == 0 {
            self.even = step(self.even);
        } else {
            self.odd = step(self.odd);
        }
        self.count += 1;
    }

    fn finish(self) -> u64 {
        let mut sum = Self::mix(self.count);
        for part in [self.even.0, self.even.1, self.odd.0, self.odd.1] {
            sum = Self::mix(sum ^ part);
        }
        sum
    }
}

/// Where each prefix of sorted hashes starts (and, last, their count): prefixes of as
/// many bits as put about eight hashes (a cache line) under each, so that a hash is
/// found in one or two reads (stored, at least 16 bits: fewer hashes under each).
struct Prefixes {
    bits: u32,
    starts: Vec<u32>,
}

impl Prefixes {
    /// The prefixes of `n` sorted hashes.
    fn new(n: usize, hashes: impl Iterator<Item = u64>) -> Self {
        let bits = Self::bits_for(n);
        let mut starts = vec![0u32; (1 << bits) + 1];
        for h in hashes {
            starts[(h >> (64 - bits)) as usize + 1] += 1;
        }
        for p in 1..starts.len() {
            starts[p] += starts[p - 1];
        }
        Prefixes { bits, starts }
    }

    /// How many bits the prefixes of `n` hashes have.
    fn bits_for(n: usize) -> u32 {
        (usize::BITS - (n / 8).max(1).leading_zeros()).clamp(8, 24)
    }

    /// How many bits the prefixes of `n` stored hashes have: at least 16, so that the
    /// bits of a key hash below its prefix fit in 4 bytes.
    fn stored_bits(n: usize) -> u32 {
        Self::bits_for(n).max(16)
    }

    /// Where the hashes of `hash`'s prefix lie, among `n`.
    fn range(&self, hash: u64, n: usize) -> (usize, usize) {
        let p = (hash >> (64 - self.bits)) as usize;
        let at = |i: usize| self.starts.get(i).map_or(n, |s| (*s as usize).min(n));
        (at(p), at(p + 1).max(at(p)))
    }
}

/// Key hashes sorted by hash, with their records (rows of a definition's table), and
/// where each hash prefix starts.
pub(super) struct DefIndex {
    hashes: Vec<u64>,
    rows: Vec<u32>,
    prefixes: Prefixes,
}

impl DefIndex {
    /// The index of entries sorted by hash, then row.
    fn from_sorted(hashes: Vec<u64>, rows: Vec<u32>) -> Self {
        let prefixes = Prefixes::new(hashes.len(), hashes.iter().copied());
        DefIndex {
            hashes,
            rows,
            prefixes,
        }
    }

    /// The index of `(hash, row)` entries in any order.
    fn from_entries(mut entries: Vec<(u64, u32)>) -> Self {
        entries.sort_unstable();
        entries.dedup();
        let (hashes, rows) = entries.into_iter().unzip();
        Self::from_sorted(hashes, rows)
    }

    /// The records keyed `hash`.
    pub(super) fn get(&self, hash: u64) -> &[u32] {
        let (lo, hi) = self.prefixes.range(hash, self.hashes.len());
        let slice = &self.hashes[lo..hi];
        let from = lo + slice.partition_point(|x| *x < hash);
        let to = lo + slice.partition_point(|x| *x <= hash);
        &self.rows[from..to]
    }

    /// The hashes shared by more than `max` records for which `active` holds.
    fn giant(&self, active: &dyn Fn(usize) -> bool, max: usize) -> hashbrown::HashSet<u64> {
        let mut out = hashbrown::HashSet::new();
        let mut i = 0;
        while i < self.hashes.len() {
            let h = self.hashes[i];
            let mut j = i;
            let mut count = 0;
            while j < self.hashes.len() && self.hashes[j] == h {
                if active(self.rows[j] as usize) {
                    count += 1;
                }
                j += 1;
            }
            if count > max {
                out.insert(h);
            }
            i = j;
        }
        out
    }

    /// Entries kept.
    pub(super) fn len(&self) -> usize {
        self.hashes.len()
    }
}

/// One key definition's blocks in a run: the last run's entries of the records not
/// keyed anew, looked up where the stored file holds them and renumbered as they are
/// read, and the entries keyed in this run (every record's, in a run over all records).
pub(super) struct DefBlocks {
    /// The definition's table, by name.
    table: String,
    kept: Option<Kept>,
    new: DefIndex,
    /// Per record of the table, whether it was keyed in this run (None: every record
    /// was).
    keyed: Option<std::sync::Arc<Vec<bool>>>,
}

/// The last run's entries of a definition, and each of its rows' row now (u32::MAX: a
/// key changed or gone, or a record keyed anew).
struct Kept {
    entries: StoredEntries,
    now: std::sync::Arc<Vec<u32>>,
}

impl DefBlocks {
    /// Every record keyed `hash` (kept ones first; each once), given to `found`.
    fn each(&self, hash: u64, found: &mut dyn FnMut(u32)) {
        let range = self.kept.as_ref().map(|k| k.entries.range_of(hash));
        self.each_in(hash, range, found);
    }

    /// [`Self::each`] for many hashes at once, `found` told each record's hash by its
    /// place in `hashes`. The stored entries of them all are located stage by stage, the
    /// reads of each stage in flight together, where one lookup after the other would
    /// wait for each read of the index in turn.
    fn each_of(&self, hashes: &[u64], found: &mut dyn FnMut(usize, u32)) {
        let ranges = match &self.kept {
            Some(kept) => kept.entries.ranges_of(hashes),
            None => Vec::new(),
        };
        for (i, &hash) in hashes.iter().enumerate() {
            self.each_in(hash, ranges.get(i).copied(), &mut |row| found(i, row));
        }
    }

    /// The records keyed `hash`: the kept ones of the stored entries `range` (where
    /// that hash lies), renumbered, then the new ones.
    fn each_in(&self, hash: u64, range: Option<(usize, usize)>, found: &mut dyn FnMut(u32)) {
        if let (Some(kept), Some(range)) = (&self.kept, range) {
            for old in kept.entries.rows_in(range) {
                match kept.now.get(old as usize) {
                    Some(&now) if now != u32::MAX => found(now),
                    _ => {}
                }
            }
        }
        for &row in self.new.get(hash) {
            found(row);
        }
    }

    /// Whether more than `max` records for which `active` holds are keyed `hash`.
    fn crowded(&self, hash: u64, active: &dyn Fn(usize) -> bool, max: usize) -> bool {
        // at most as many as the entries: most blocks are small
        let (from, to) = self
            .kept
            .as_ref()
            .map_or((0, 0), |k| k.entries.range_of(hash));
        if to - from + self.new.get(hash).len() <= max {
            return false;
        }
        let mut count = 0;
        self.each(hash, &mut |row| count += usize::from(active(row as usize)));
        count > max
    }

    /// The records of `rows` (flags per record of the table) whose entries are kept from
    /// the last run, not keyed in this one.
    fn not_keyed(&self, rows: &[bool]) -> Vec<u32> {
        let Some(keyed) = &self.keyed else {
            return Vec::new();
        };
        let kept = |r: &u32| rows[*r as usize] && !keyed.get(*r as usize).copied().unwrap_or(true);
        (0..rows.len() as u32).filter(kept).collect()
    }

    /// The last run's entries kept, renumbered, in their order.
    fn kept_entries(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.kept.iter().flat_map(|k| {
            let entries = k.entries.hashes().zip(k.entries.rows());
            entries.filter_map(|(h, old)| {
                let now = *k.now.get(old as usize)?;
                (now != u32::MAX).then_some((h, now))
            })
        })
    }

    /// The entries made in this run, in order.
    fn new_entries(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        let new = &self.new;
        new.hashes.iter().copied().zip(new.rows.iter().copied())
    }

    /// Every entry as a stored index holds them ([`StoredEntries`]), sorted by (hash,
    /// row), the kept ones renumbered and merged with the new; with their count and
    /// checksum.
    fn body(&self) -> (Vec<u8>, usize, u64) {
        let n = self.kept_entries().count() + self.new.len();
        let mut body = BodyWriter::new(n);
        let sorted = merge_each(self.kept_entries(), self.new_entries(), &mut |(h, r)| {
            body.push(h, r)
        });
        if sorted && body.count == n {
            return body.finish();
        }
        // (never for an index this version wrote) sorted anew
        let (hashes, rows) = merge(self.kept_entries(), self.new_entries().collect(), n);
        let mut body = BodyWriter::new(hashes.len());
        hashes
            .iter()
            .zip(&rows)
            .for_each(|(h, r)| body.push(*h, *r));
        body.finish()
    }
}

/// A definition's stored entries ([`StoredEntries`]) as they are written, entry by entry
/// in order.
struct BodyWriter {
    bits: u32,
    /// Per prefix, its count of entries.
    counts: Vec<u32>,
    body: Vec<u8>,
    /// Where the hashes' bits start in `body`, and the rows.
    lows_at: usize,
    rows_at: usize,
    count: usize,
    sum: EntrySum,
}

impl BodyWriter {
    /// The writer of `n` entries.
    fn new(n: usize) -> Self {
        let bits = Prefixes::stored_bits(n);
        let lows_at = ((1 << bits) + 1) * 4;
        BodyWriter {
            bits,
            counts: vec![0; 1 << bits],
            body: vec![0; lows_at + n * 8],
            lows_at,
            rows_at: lows_at + n * 4,
            count: 0,
            sum: EntrySum::default(),
        }
    }

    /// The next entry (past the `n` entries announced, it is counted and not written).
    fn push(&mut self, hash: u64, row: u32) {
        let hash = hash & super::rules::KEY_BITS;
        let i = self.count;
        self.count += 1;
        let (lows_at, rows_at) = (self.lows_at + i * 4, self.rows_at + i * 4);
        if rows_at + 4 > self.body.len() {
            return;
        }
        self.counts[(hash >> (64 - self.bits)) as usize] += 1;
        self.body[lows_at..lows_at + 4].copy_from_slice(&low_bits(hash).to_le_bytes());
        self.body[rows_at..rows_at + 4].copy_from_slice(&row.to_le_bytes());
        self.sum.add(hash, row);
    }

    /// The entries written, their count and checksum.
    fn finish(mut self) -> (Vec<u8>, usize, u64) {
        let mut at = 0u32;
        for (p, count) in self.counts.iter().enumerate() {
            self.body[p * 4..p * 4 + 4].copy_from_slice(&at.to_le_bytes());
            at += count;
        }
        let last = self.counts.len() * 4;
        self.body[last..last + 4].copy_from_slice(&at.to_le_bytes());
        (self.body, self.count, self.sum.finish())
    }
}

/// The normalised values of the records of a column an incremental run looked at.
#[derive(Default)]
pub(super) struct Sparse(hashbrown::HashMap<u32, Option<Box<str>>>);

impl Column for Sparse {
    fn get(&self, row: usize) -> Option<&str> {
        self.0.get(&(row as u32)).and_then(|v| v.as_deref())
    }
}

/// Which values: a column of a table normalised so, before or after the winners took
/// their columns' values.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ValueKey {
    table: usize,
    column: String,
    steps: Vec<Normalization>,
    winners: bool,
}

/// One side of a rule as it is keyed.
struct Side {
    /// The key definition.
    def: String,
    /// The table.
    table: usize,
    /// Whether its values are those after the winners took their columns' values.
    winners: bool,
    /// Per condition, the values of this side.
    values: Vec<ValueKey>,
}

/// A rule as an incremental run looks up its pairs: its conditions, both sides' key
/// definitions, and the values its giant-block guard leaves out.
pub(super) struct RuleBlocks {
    /// The rule's name for its giant values ([`super::incremental::giant_id`]).
    pub id: String,
    conditions: Vec<Condition>,
    exact: Vec<usize>,
    fuzzy: Vec<usize>,
    same: bool,
    both_ways: bool,
    a: Side,
    b: Side,
    /// Whether this side is looked up (pairs found from the other side's end).
    a_indexed: bool,
    giant: hashbrown::HashSet<u64>,
    active_b: Vec<bool>,
}

/// A rule to key: its kind and name, its tables, and its conditions.
pub(super) struct RuleDef<'a> {
    /// `dedupe` or `match`.
    pub kind: &'static str,
    /// Its name in reports.
    pub name: &'a str,
    /// Its place among the rules of its kind and table (two rules may share a name).
    pub index: usize,
    /// This side's table, and the other's (the same for deduplication).
    pub tables: (usize, usize),
    /// The conditions.
    pub specs: &'a [ConditionSpec],
    /// Whether the values are those after the winners took their columns' values.
    pub winners: bool,
}

impl<'a> RuleDef<'a> {
    /// Deduplication rule `index` of table `table`.
    pub(super) fn dedupe(
        name: &'a str,
        index: usize,
        table: usize,
        specs: &'a [ConditionSpec],
    ) -> Self {
        RuleDef {
            kind: "dedupe",
            name,
            index,
            tables: (table, table),
            specs,
            winners: false,
        }
    }

    /// Match rule `index` of table `table` with table `with` (compared after the winners
    /// took their columns' values).
    pub(super) fn matching(
        name: &'a str,
        index: usize,
        (table, with): (usize, usize),
        specs: &'a [ConditionSpec],
    ) -> Self {
        RuleDef {
            kind: "match",
            name,
            index,
            tables: (table, with),
            specs,
            winners: true,
        }
    }
}

impl RuleBlocks {
    /// Compile a rule for looking up.
    pub(super) fn new(
        rule: &RuleDef<'_>,
        tables: &[TableData],
        bypass: &HashMap<String, Vec<String>>,
    ) -> Self {
        let (ta, tb) = rule.tables;
        let (t, other) = (&tables[ta], &tables[tb]);
        let conditions: Vec<Condition> = rule
            .specs
            .iter()
            .map(|c| Condition::compile(c, t, other, bypass))
            .collect();
        let (exact, fuzzy) = exact_and_fuzzy(&conditions);
        let same = ta == tb;
        let both_ways = same && conditions.iter().any(|c| c.column != c.other);
        let keyed = Blocker::new(&conditions, &exact, &fuzzy).keyed();
        // a table's columns after the winners took values, when any do
        let side = |ti: usize, this: bool| {
            let overlaid = rule.winners && !tables[ti].spec.dedupe_columns.is_empty();
            let column = |c: &Condition| {
                if this {
                    c.column.clone()
                } else {
                    c.other.clone()
                }
            };
            let values = conditions
                .iter()
                .map(|c| ValueKey {
                    table: ti,
                    column: column(c),
                    steps: c.steps.clone(),
                    winners: overlaid,
                })
                .collect();
            let parts: Vec<String> = keyed
                .iter()
                .map(|&k| {
                    let c = &conditions[k];
                    let mut never: Vec<&String> = c.never.iter().collect();
                    never.sort();
                    format!(
                        "{}: {:?} {:?} {:?} {never:?}",
                        column(c),
                        c.steps,
                        c.comparator,
                        c.precision
                    )
                })
                .collect();
            let winners = if overlaid { " (winners)" } else { "" };
            Side {
                def: format!("{}{winners} [{}]", tables[ti].name, parts.join("; ")),
                table: ti,
                winners: overlaid,
                values,
            }
        };
        let (a, b) = (side(ta, true), side(tb, false));
        let named = super::incremental::giant_id(rule.kind, &t.name, &other.name, rule.name);
        let id = format!("{named} #{}", rule.index + 1);
        RuleBlocks {
            id,
            exact,
            fuzzy,
            same,
            both_ways,
            a_indexed: !same || both_ways,
            conditions,
            a,
            b,
            giant: hashbrown::HashSet::new(),
            active_b: Vec::new(),
        }
    }

    fn blocker(&self) -> Blocker<'_> {
        Blocker::new(&self.conditions, &self.exact, &self.fuzzy)
    }

    /// The sides whose definitions the rule looks up.
    fn indexed(&self) -> impl Iterator<Item = &Side> {
        std::iter::once(&self.b).chain(self.a_indexed.then_some(&self.a))
    }
}

/// One side of a model's blocking key as it is keyed: its definition, its table,
/// whether its values are those after the winners took their columns' values, and its
/// columns' values (each flagged when it holds dates).
struct KeySide {
    def: String,
    table: usize,
    winners: bool,
    values: Vec<(ValueKey, bool)>,
}

/// One blocking key of a model: both sides, its name for its giant values, and the
/// hashes its giant-block guard leaves out.
struct ModelKey {
    id: String,
    a: KeySide,
    b: KeySide,
    giant: hashbrown::HashSet<u64>,
}

/// A match model's blocking keys as an incremental run looks up its candidate pairs in
/// the block index: the same blocks (every record's key, by hash), giant values and
/// orientation as a run over every record (see `model::run`).
pub(super) struct ModelBlocks {
    keys: Vec<ModelKey>,
    same: bool,
    /// The other side's table.
    other: usize,
    active_b: Vec<bool>,
}

impl ModelBlocks {
    /// The keys of `spec`, a model of `kind` (`dedupe`, `match`) between tables `ta` and
    /// `tb` (the same for deduplication; a match model reads the values after the
    /// winners took their columns' values).
    pub(super) fn new(
        kind: &'static str,
        spec: &ModelSpec,
        (ta, tb): (usize, usize),
        tables: &[TableData],
    ) -> Self {
        let (t, other) = (&tables[ta], &tables[tb]);
        let side = |ti: usize, columns: &[super::model::KeyColumn], this: bool| {
            let overlaid = kind == "match" && !tables[ti].spec.dedupe_columns.is_empty();
            let column = |k: &super::model::KeyColumn| {
                if this {
                    k.column.clone()
                } else {
                    k.other.clone()
                }
            };
            let parts: Vec<String> = columns
                .iter()
                .map(|k| {
                    let day = if k.date { " (day)" } else { "" };
                    format!("{}: {:?}{day}", column(k), k.steps)
                })
                .collect();
            let winners = if overlaid { " (winners)" } else { "" };
            KeySide {
                def: format!(
                    "{}{winners} model key [{}]",
                    tables[ti].name,
                    parts.join("; ")
                ),
                table: ti,
                winners: overlaid,
                values: columns
                    .iter()
                    .map(|k| {
                        let value = ValueKey {
                            table: ti,
                            column: column(k),
                            steps: k.steps.clone(),
                            winners: overlaid,
                        };
                        (value, k.date)
                    })
                    .collect(),
            }
        };
        let keys = super::model::key_columns(spec, t, other)
            .into_iter()
            .map(|(name, columns)| ModelKey {
                id: super::incremental::giant_id(
                    kind,
                    &t.name,
                    &other.name,
                    &format!("model ({name})"),
                ),
                a: side(ta, &columns, true),
                // one table: keyed by this side's columns on both (as `model::run` does)
                b: side(tb, &columns, ta == tb),
                giant: hashbrown::HashSet::new(),
            })
            .collect();
        ModelBlocks {
            keys,
            same: ta == tb,
            other: tb,
            active_b: Vec::new(),
        }
    }

    /// The sides whose definitions are looked up.
    fn sides(&self) -> impl Iterator<Item = &KeySide> {
        let same = self.same;
        self.keys
            .iter()
            .flat_map(move |k| std::iter::once(&k.b).chain((!same).then_some(&k.a)))
    }
}

/// The blocks of every key definition of a run, and the values it normalised.
#[derive(Default)]
pub(super) struct BlockIndex {
    defs: Vec<DefBlocks>,
    by_def: HashMap<String, usize>,
    /// Per rule, the hashes its giant-block guard left out.
    giant: BTreeMap<String, Vec<u64>>,
    values: HashMap<ValueKey, Sparse>,
    /// What the last run stored, taken as each definition is first needed.
    stored: Option<Stored>,
    /// Per table, the records keyed anew for some definitions, and for those each row
    /// of the last run: its row now, unless keyed anew (u32::MAX).
    kept_rows: Vec<(usize, KeptRows)>,
}

/// The records of a table keyed anew, and each row of the last run's: its row now,
/// unless keyed anew or gone (u32::MAX).
type KeptRows = (std::sync::Arc<Vec<bool>>, std::sync::Arc<Vec<u32>>);

/// How a side keys some of its records from their normalised values: `(hash, row)`
/// entries.
type KeyRows<'k> = dyn Fn(&BlockIndex, &[u32]) -> Vec<(u64, u32)> + 'k;

/// A rule whose giant-block guard is decided, with its other side's active records.
pub(super) type Guarded<'r> = (&'r mut RuleBlocks, &'r (dyn Fn(usize) -> bool + Sync));

/// `work` done on each item, on every core (two items or more at once), in the items'
/// order.
pub(super) fn in_parallel<T: Send, R: Send>(
    items: Vec<T>,
    work: &(dyn Fn(T) -> R + Sync),
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, 8);
    if threads == 1 || items.len() < 2 {
        return items.into_iter().map(work).collect();
    }
    // dealt round-robin, so that large and small items spread
    let mut hands: Vec<Vec<(usize, T)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        hands[i % threads].push((i, item));
    }
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = hands
            .into_iter()
            .map(|hand| {
                scope.spawn(move || {
                    hand.into_iter()
                        .map(|(i, item)| (i, work(item)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    done.sort_by_key(|d| d.0);
    done.into_iter().map(|d| d.1).collect()
}

/// One stored definition's entries, as the file holds them, sorted: where each hash
/// prefix starts (of at least 16 bits, [`Prefixes::stored_bits`]), then each entry's 32
/// bits of its key hash below the top 16 ([`super::rules::KEY_BITS`]: the hash's low 16
/// are zero), then each entry's row (4 bytes each, little endian); read where they are,
/// without a copy.
struct StoredEntries {
    lows: bytes::Bytes,
    rows: bytes::Bytes,
    prefixes: Prefixes,
}

/// The 32 bits of key hash `hash` a stored entry keeps: those below its top 16.
fn low_bits(hash: u64) -> u32 {
    (hash >> 16) as u32
}

impl StoredEntries {
    /// The stored bits of entry `i`'s hash ([`low_bits`]).
    fn low(&self, i: usize) -> u32 {
        let bytes = self.lows.get(i * 4..i * 4 + 4).unwrap_or(&[0; 4]);
        u32::from_le_bytes(bytes.try_into().unwrap_or_default())
    }

    /// The rows keyed `hash` (as the last run numbered them).
    #[cfg(test)]
    fn rows_of(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        self.rows_in(self.range_of(hash))
    }

    /// The rows of the entries `from..to` (as the last run numbered them).
    fn rows_in(&self, (from, to): (usize, usize)) -> impl Iterator<Item = u32> + '_ {
        self.rows
            .get(from * 4..to * 4)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default()))
    }

    /// Where the entries of each of `hashes` lie, found in stages: every hash's prefix
    /// bounds first, then the first entry under each prefix, then the searches among
    /// entries those reads brought close, and last the first row of each range. Each
    /// stage's reads are independent of one another, so that many are in flight at once.
    fn ranges_of(&self, hashes: &[u64]) -> Vec<(usize, usize)> {
        let n = self.len();
        let spans: Vec<(usize, usize)> =
            hashes.iter().map(|&h| self.prefixes.range(h, n)).collect();
        let touch =
            |acc: u32, &(lo, hi): &(usize, usize)| acc ^ if lo < hi { self.low(lo) } else { 0 };
        std::hint::black_box(spans.iter().fold(0, touch));
        let ranges: Vec<(usize, usize)> = spans
            .iter()
            .zip(hashes)
            .map(|(&span, &h)| self.search(span, h))
            .collect();
        let touch = |acc: u32, &(from, to): &(usize, usize)| {
            acc ^ self.rows_in((from, to.min(from + 1))).next().unwrap_or(0)
        };
        std::hint::black_box(ranges.iter().fold(0, touch));
        ranges
    }

    /// Where the entries keyed `hash` lie.
    fn range_of(&self, hash: u64) -> (usize, usize) {
        self.search(self.prefixes.range(hash, self.len()), hash)
    }

    /// Where the entries keyed `hash` lie among those of its prefix, `lo..hi` (whose
    /// hashes share their top 16 bits: only the bits below are compared).
    fn search(&self, (lo, hi): (usize, usize), hash: u64) -> (usize, usize) {
        let hash = low_bits(hash);
        // the first entry of `hash` in its prefix's range, and the first past it
        let first = |above: bool| {
            let (mut l, mut h) = (lo, hi);
            while l < h {
                let mid = l + (h - l) / 2;
                let x = self.low(mid);
                if x < hash || above && x == hash {
                    l = mid + 1;
                } else {
                    h = mid;
                }
            }
            l
        };
        (first(false), first(true))
    }

    /// The entries' hashes, in order: each one's top 16 bits are its prefix's.
    fn hashes(&self) -> impl Iterator<Item = u64> + '_ {
        let Prefixes { bits, starts } = &self.prefixes;
        let below = bits.saturating_sub(16);
        starts.windows(2).enumerate().flat_map(move |(p, w)| {
            let top = ((p as u64) >> below) << 48;
            (w[0] as usize..w[1] as usize).map(move |i| top | u64::from(self.low(i)) << 16)
        })
    }

    fn rows(&self) -> impl Iterator<Item = u32> + '_ {
        self.rows
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default()))
    }

    fn len(&self) -> usize {
        self.rows.len() / 4
    }
}

/// A block index as the last run stored it.
pub(super) struct Stored {
    defs: HashMap<String, StoredEntries>,
    giant: HashMap<String, Vec<u64>>,
    /// Per table (by name), each row of the last run's records: its row now, if its key
    /// is unchanged.
    pub renumber: HashMap<String, Vec<Option<u32>>>,
}

impl BlockIndex {
    /// The blocks of a run that keys every record.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The blocks of an incremental run, built from what the last run stored.
    pub(super) fn from_stored(stored: Stored) -> Self {
        BlockIndex {
            stored: Some(stored),
            ..Self::default()
        }
    }

    /// Drop the values normalised for looking up (the blocks stay).
    pub(super) fn forget_values(&mut self) {
        self.values = HashMap::new();
    }

    /// Key every record of the sides of `rule` whose definition has no blocks yet, with
    /// the whole normalised columns of a run over every record, and note the values its
    /// giant-block guard leaves out.
    pub(super) fn key_all(
        &mut self,
        rule: &RuleBlocks,
        tables: &[TableData],
        (a, b): (&[Values], &[Values]),
        active_b: &(dyn Fn(usize) -> bool + Sync),
        max_block: usize,
    ) {
        for side in rule.indexed() {
            if self.by_def.contains_key(&side.def) {
                continue;
            }
            let values = if std::ptr::eq(side, &rule.a) { a } else { b };
            let n = tables[side.table].len();
            let entries = key_rows(&rule.blocker(), values, &(0..n as u32).collect::<Vec<_>>());
            let name = tables[side.table].name.clone();
            self.insert(side.def.clone(), name, DefIndex::from_entries(entries));
        }
        let b = &self.defs[self.by_def[&rule.b.def]].new;
        let mut giant: Vec<u64> = b.giant(active_b, max_block).into_iter().collect();
        giant.sort_unstable();
        self.giant.insert(rule.id.clone(), giant);
    }

    /// Keep the blocks of a model's keys as a run over every record hashed them (`keys`,
    /// in the order declared), with the hashes its giant-block guard left out.
    pub(super) fn key_all_model(
        &mut self,
        model: &ModelBlocks,
        keys: &[super::model::Key],
        tables: &[TableData],
    ) {
        for (key, hashed) in model.keys.iter().zip(keys) {
            for (side, hashes) in [(&key.a, &hashed.a), (&key.b, &hashed.b)] {
                if self.by_def.contains_key(&side.def) {
                    continue;
                }
                let entries = hashes
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| **h != 0)
                    .map(|(row, h)| (*h, row as u32))
                    .collect();
                let name = tables[side.table].name.clone();
                self.insert(side.def.clone(), name, DefIndex::from_entries(entries));
            }
            let mut giant: Vec<u64> = hashed.giant.iter().copied().collect();
            giant.sort_unstable();
            self.giant.insert(key.id.clone(), giant);
        }
    }

    /// Keep the blocks of a run over every record: every record keyed.
    fn insert(&mut self, def: String, table: String, index: DefIndex) {
        let blocks = DefBlocks {
            table,
            kept: None,
            new: index,
            keyed: None,
        };
        self.by_def.insert(def, self.defs.len());
        self.defs.push(blocks);
    }

    /// Make the blocks of the sides of `rule` that have none yet: keep the last run's
    /// entries where the file holds them and key the records keyed anew (per table:
    /// `changed`, the records of new or changed keys; `decided`, every record whose
    /// duplicate group is decided again, for the values after the winners took their
    /// columns' values). `Ok(Err(why))` when the run cannot match only what changed: the
    /// stored index lacks a definition.
    pub(super) fn schedule(
        &mut self,
        rule: &RuleBlocks,
        tables: &[TableData],
        cache: &NormalizedCache,
        fresh: (&[Vec<bool>], &[Vec<bool>]),
    ) -> Result<std::result::Result<(), String>> {
        for side in [&rule.b, &rule.a]
            .into_iter()
            .take(1 + rule.a_indexed as usize)
        {
            let keys = |index: &Self, rows: &[u32]| {
                let values: Vec<&Sparse> = side.values.iter().map(|k| &index.values[k]).collect();
                key_rows(&rule.blocker(), &values, rows)
            };
            let placed = (side.def.as_str(), side.table, side.winners);
            let scheduled =
                self.schedule_side(placed, &side.values, (tables, cache), fresh, &keys)?;
            if let Err(why) = scheduled {
                return Ok(Err(why));
            }
        }
        Ok(Ok(()))
    }

    /// Make one side's blocks (see [`BlockIndex::schedule`]): definition `def` of table
    /// `table` (with the values after the winners took theirs), its `values` normalised
    /// for the records keyed anew, whose entries `keys` makes.
    fn schedule_side(
        &mut self,
        (def, table, winners): (&str, usize, bool),
        values: &[ValueKey],
        (tables, cache): (&[TableData], &NormalizedCache),
        (changed, decided): (&[Vec<bool>], &[Vec<bool>]),
        keys: &KeyRows<'_>,
    ) -> Result<std::result::Result<(), String>> {
        if self.by_def.contains_key(def) {
            return Ok(Ok(()));
        }
        let entries = match self.take_stored(def)? {
            Ok(entries) => entries,
            Err(why) => return Ok(Err(why)),
        };
        let fresh = if winners { decided } else { changed };
        let (keyed, now) = self.kept_rows(table, &fresh[table], &tables[table].name);
        let rows_now: Vec<u32> = (0..tables[table].len() as u32)
            .filter(|r| fresh[table][*r as usize])
            .collect();
        self.fill(values, &rows_now, tables, cache);
        let new = DefIndex::from_entries(keys(self, &rows_now));
        let blocks = DefBlocks {
            table: tables[table].name.clone(),
            kept: Some(Kept { entries, now }),
            new,
            keyed: Some(keyed),
        };
        self.by_def.insert(def.to_string(), self.defs.len());
        self.defs.push(blocks);
        Ok(Ok(()))
    }

    /// For table `table`, whose records `fresh` are keyed anew: those records, and each
    /// row of the last run's: its row now, unless its key changed or went or it is keyed
    /// anew (u32::MAX). Made once per table and set of records.
    fn kept_rows(&mut self, table: usize, fresh: &[bool], name: &str) -> KeptRows {
        let made = self
            .kept_rows
            .iter()
            .find(|k| k.0 == table && *k.1 .0 == fresh);
        if let Some((_, made)) = made {
            return made.clone();
        }
        let renumber = self.stored.as_ref().and_then(|s| s.renumber.get(name));
        let now: Vec<u32> = renumber
            .map(|r| {
                r.iter()
                    .map(|n| match n {
                        Some(row) if !fresh.get(*row as usize).copied().unwrap_or(true) => *row,
                        _ => u32::MAX,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let made = (
            std::sync::Arc::new(fresh.to_vec()),
            std::sync::Arc::new(now),
        );
        self.kept_rows.push((table, made.clone()));
        made
    }

    /// The last run's entries of definition `def`; `Ok(Err(why))` when the stored index
    /// lacks it. (A row the state does not have is no record: left out as it is read.)
    fn take_stored(&mut self, def: &str) -> Result<std::result::Result<StoredEntries, String>> {
        let Some(stored) = self.stored.as_mut() else {
            return Err(Error::Internal("no stored block index to build on".into()));
        };
        let Some(entries) = stored.defs.remove(def) else {
            return Ok(Err(format!(
                "the stored block index has no keys of `{def}`: every record is matched"
            )));
        };
        Ok(Ok(entries))
    }

    /// [`BlockIndex::schedule`] for the keys of a model.
    pub(super) fn schedule_model(
        &mut self,
        model: &ModelBlocks,
        tables: &[TableData],
        cache: &NormalizedCache,
        fresh: (&[Vec<bool>], &[Vec<bool>]),
    ) -> Result<std::result::Result<(), String>> {
        let hasher = key_hasher();
        for side in model.sides() {
            let values: Vec<ValueKey> = side.values.iter().map(|v| v.0.clone()).collect();
            let keys = |index: &Self, rows: &[u32]| {
                let hashed = rows
                    .iter()
                    .map(|&row| (index.model_hash(side, row, &hasher), row));
                hashed.filter(|(h, _)| *h != 0).collect()
            };
            let placed = (side.def.as_str(), side.table, side.winners);
            let scheduled = self.schedule_side(placed, &values, (tables, cache), fresh, &keys)?;
            if let Err(why) = scheduled {
                return Ok(Err(why));
            }
        }
        Ok(Ok(()))
    }

    /// The hash of `row`'s key on `side`, from its normalised values (filled).
    fn model_hash(&self, side: &KeySide, row: u32, hasher: &super::rules::KeyHasher) -> u64 {
        let values = side.values.iter().map(|(key, date)| {
            let value = self.values.get(key).and_then(|v| v.get(row as usize));
            (value, *date)
        });
        super::model::key_hash(hasher, values)
    }

    /// The records of `rows` on side `looking` of a model key look their key up in the
    /// blocks of side `found` (giant blocks left out), on every core: the pair `accept`
    /// makes of each (looking, found) pair is pushed to `out`.
    fn model_look_up(
        &self,
        (looking, found): (&KeySide, &KeySide),
        rows: &[u32],
        giant: &hashbrown::HashSet<u64>,
        accept: &(dyn Fn(u32, u32) -> Option<(u32, u32)> + Sync),
        out: &mut Vec<(u32, u32)>,
    ) {
        let def = &self.defs[self.by_def[&found.def]];
        let look = |part: &[u32]| {
            let hasher = key_hasher();
            let keyed = part
                .iter()
                .map(|&row| (row, self.model_hash(looking, row, &hasher)));
            let (rows, hashes): (Vec<u32>, Vec<u64>) =
                keyed.filter(|(_, h)| *h != 0 && !giant.contains(h)).unzip();
            let mut pairs = Vec::new();
            def.each_of(&hashes, &mut |i, other| {
                pairs.extend(accept(rows[i], other))
            });
            pairs
        };
        let parts: Vec<&[u32]> = rows.chunks(PART).collect();
        out.extend(in_parallel(parts, &look).into_iter().flatten());
    }

    /// [`BlockIndex::guard`] for the keys of a model, with its other side's active
    /// records.
    pub(super) fn guard_model(
        &mut self,
        model: &mut ModelBlocks,
        active: &(dyn Fn(usize) -> bool + Sync),
        (tables, cache): (&[TableData], &NormalizedCache),
        suspect: Option<&[Vec<bool>]>,
        max_block: usize,
    ) -> std::result::Result<(), String> {
        let hasher = key_hasher();
        let mut touched = Vec::with_capacity(model.keys.len());
        for key in &model.keys {
            let d = self.by_def[&key.b.def];
            let mut hashes = self.may_have_grown(&key.id, d);
            if let Some(suspect) = suspect {
                let rows = self.defs[d].not_keyed(&suspect[key.b.table]);
                let values: Vec<ValueKey> = key.b.values.iter().map(|v| v.0.clone()).collect();
                self.fill(&values, &rows, tables, cache);
                let keyed = rows.iter().map(|&r| self.model_hash(&key.b, r, &hasher));
                hashes.extend(keyed.filter(|h| *h != 0));
            }
            touched.push((d, hashes));
        }
        let defs = &self.defs;
        let count = |(d, hashes): (usize, hashbrown::HashSet<u64>)| {
            let crowded = |h: &u64| defs[d].crowded(*h, active, max_block);
            hashes
                .into_iter()
                .filter(crowded)
                .collect::<hashbrown::HashSet<u64>>()
        };
        let counted = in_parallel(touched, &count);
        model.active_b = (0..tables[model.other].len()).map(active).collect();
        let mut crossed = None;
        for (key, giant) in model.keys.iter_mut().zip(counted) {
            crossed = crossed.or(self.set_giant(&key.id, &giant));
            key.giant = giant;
        }
        crossed.map_or(Ok(()), Err)
    }

    /// The hashes of definition `d` whose blocks may hold another count of records than
    /// in the last run, for rule or model key `id`: those it left out for their size
    /// (which may have shrunk), and those of the records keyed anew (which may have
    /// grown). Every other block has the records it had.
    fn may_have_grown(&self, id: &str, d: usize) -> hashbrown::HashSet<u64> {
        let stored = self.stored.as_ref().and_then(|s| s.giant.get(id));
        let mut hashes: hashbrown::HashSet<u64> = stored.into_iter().flatten().copied().collect();
        hashes.extend(&self.defs[d].new.hashes);
        hashes
    }

    /// Note the hashes rule or model key `id` leaves out for their size; why the run
    /// cannot go on when they are not the ones the last run left out.
    fn set_giant(&mut self, id: &str, giant: &hashbrown::HashSet<u64>) -> Option<String> {
        let before: hashbrown::HashSet<u64> = self
            .stored
            .as_ref()
            .and_then(|s| s.giant.get(id))
            .map(|g| g.iter().copied().collect())
            .unwrap_or_default();
        let mut sorted: Vec<u64> = giant.iter().copied().collect();
        sorted.sort_unstable();
        self.giant.insert(id.to_string(), sorted);
        (*giant != before).then(|| {
            format!(
                "a blocking value crossed the giant-block guard (`{id}`): every record is matched"
            )
        })
    }

    /// Every candidate pair of a model with a record in `touching` (and none that looked
    /// for its pairs in an earlier round, `touching.searched`), as a run over all records
    /// would produce it: looked up from both ends in the blocks of each key, leaving out
    /// giant blocks and inactive records of the other side (one table: (smaller,
    /// larger)). Sorted, each pair once.
    pub(super) fn touching_model(
        &mut self,
        model: &ModelBlocks,
        tables: &[TableData],
        cache: &NormalizedCache,
        t: Touching<'_>,
    ) -> Vec<(u32, u32)> {
        let same = model.same;
        let from_a: Vec<u32> = (0..t.a.len() as u32).filter(|r| t.a[*r as usize]).collect();
        let from_b: Vec<u32> = if same {
            Vec::new()
        } else {
            (0..t.b.len() as u32)
                .filter(|o| t.b[*o as usize] && model.active_b[*o as usize])
                .collect()
        };
        if from_a.is_empty() && from_b.is_empty() {
            return Vec::new();
        }
        let values = |side: fn(&ModelKey) -> &KeySide| -> Vec<ValueKey> {
            let keys = model.keys.iter().map(side);
            keys.flat_map(|s| s.values.iter().map(|v| v.0.clone()))
                .collect()
        };
        let (a_values, b_values) = (values(|k| &k.a), values(|k| &k.b));
        self.fill(&a_values, &from_a, tables, cache);
        self.fill(&b_values, &from_b, tables, cache);
        // (this side's record, the other's)
        let mut found: Vec<(u32, u32)> = Vec::new();
        // one table: each pair once, from its smaller record when that one looks too
        let (searched_a, searched_b) = t.searched;
        let forward = |row: u32, o: u32| {
            let skip = !model.active_b[o as usize]
                || searched_b[o as usize]
                || same && (o == row || o < row && t.a[o as usize]);
            (!skip).then_some(if same && o < row { (o, row) } else { (row, o) })
        };
        // the other side's records look this side up: pairs found from their end
        let backward =
            |o: u32, x: u32| (!t.a[x as usize] && !searched_a[x as usize]).then_some((x, o));
        for key in &model.keys {
            let sides = (&key.a, &key.b);
            self.model_look_up(sides, &from_a, &key.giant, &forward, &mut found);
            if !same {
                let sides = (&key.b, &key.a);
                self.model_look_up(sides, &from_b, &key.giant, &backward, &mut found);
            }
        }
        // a pair two keys produce is found through each (from the same end): kept once
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Decide which values the giant-block guard of each rule leaves out (with its other
    /// side's active records, `active_b`), on every core. Only the blocks that may count
    /// otherwise than in the last run are counted: those it left out, those the records
    /// keyed anew fall in, and those of the records (`suspect`, per table) that may have
    /// become active since (a record that became inactive only shrinks its blocks, which
    /// the guard counts again only if it left them out). `Err(why)` when a rule leaves out
    /// other values than the last run did: a block crossed the guard.
    pub(super) fn guard<'r>(
        &mut self,
        rules: Vec<Guarded<'r>>,
        (tables, cache): (&[TableData], &NormalizedCache),
        suspect: Option<&[Vec<bool>]>,
        max_block: usize,
    ) -> std::result::Result<(), String> {
        let mut touched = Vec::with_capacity(rules.len());
        for (rule, active) in rules {
            let d = self.by_def[&rule.b.def];
            let mut hashes = self.may_have_grown(&rule.id, d);
            if let Some(suspect) = suspect {
                let rows = self.defs[d].not_keyed(&suspect[rule.b.table]);
                self.fill(&rule.b.values, &rows, tables, cache);
                let values: Vec<&Sparse> = rule.b.values.iter().map(|k| &self.values[k]).collect();
                let keyed = key_rows(&rule.blocker(), &values, &rows);
                hashes.extend(keyed.into_iter().map(|e| e.0));
            }
            touched.push(((rule, active), (d, hashes)));
        }
        let defs = &self.defs;
        let count =
            |((rule, active), (d, hashes)): (Guarded<'r>, (usize, hashbrown::HashSet<u64>))| {
                let crowded = |h: &u64| defs[d].crowded(*h, active, max_block);
                let giant: hashbrown::HashSet<u64> = hashes.into_iter().filter(crowded).collect();
                rule.active_b = (0..tables[rule.b.table].len()).map(active).collect();
                (rule, giant)
            };
        let counted = in_parallel(touched, &count);
        let mut crossed = None;
        for (rule, giant) in counted {
            crossed = crossed.or(self.set_giant(&rule.id, &giant));
            rule.giant = giant;
        }
        crossed.map_or(Ok(()), Err)
    }

    /// The candidate pairs of a model between tables `a` and `b` (equal for a dedupe
    /// model) that `scorer` matches, with their probabilities. The compared values are
    /// normalised through the index, each record's once in a phase of the search: shared
    /// with the rules and keys that read the same column, and with the later rounds.
    /// `winners`: the values are those after the winners took their columns' values.
    pub(super) fn score(
        &mut self,
        scorer: &super::model::Scorer,
        candidates: &[(u32, u32)],
        (a, b, winners): (usize, usize, bool),
        (tables, cache): (&[TableData], &NormalizedCache),
    ) -> Vec<(u32, u32, f32)> {
        if candidates.is_empty() {
            return Vec::new();
        }
        let (xs, ys) = scorer.involved(candidates);
        let key = |table: usize, column: &str, steps: &[Normalization]| ValueKey {
            table,
            column: column.to_string(),
            steps: steps.to_vec(),
            winners: winners && !tables[table].spec.dedupe_columns.is_empty(),
        };
        let (mut a_keys, mut b_keys) = (Vec::new(), Vec::new());
        for (column, other, steps) in scorer.compared() {
            a_keys.push(key(a, column, steps));
            b_keys.push(key(b, other, steps));
        }
        self.fill(&a_keys, &xs, tables, cache);
        self.fill(&b_keys, &ys, tables, cache);
        let array = |k: &ValueKey, rows: &[u32]| -> Values {
            let sparse = self.values.get(k);
            let value = |r: &u32| sparse.and_then(|v| v.get(*r as usize));
            std::sync::Arc::new(arrow::array::StringArray::from_iter(rows.iter().map(value)))
        };
        let values = a_keys
            .iter()
            .zip(&b_keys)
            .map(|(ka, kb)| {
                let this = array(ka, &xs);
                // one table: both sides are the same rows of the same column
                let other = if a == b && ka == kb {
                    this.clone()
                } else {
                    array(kb, &ys)
                };
                (this, other)
            })
            .collect();
        scorer.score(candidates, (&xs, &ys), values)
    }

    /// Normalise the values of `rows` not normalised yet.
    fn fill(
        &mut self,
        keys: &[ValueKey],
        rows: &[u32],
        tables: &[TableData],
        cache: &NormalizedCache,
    ) {
        // the rows each column lacks (a column named twice, once), normalised on every core
        let mut wanted: Vec<(&ValueKey, Vec<u32>)> = Vec::new();
        for key in keys {
            let sparse = self.values.entry(key.clone()).or_default();
            if wanted.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let mut missing: Vec<u32> = rows
                .iter()
                .copied()
                .filter(|r| !sparse.0.contains_key(r))
                .collect();
            missing.sort_unstable();
            missing.dedup();
            if !missing.is_empty() {
                wanted.push((key, missing));
            }
        }
        let normalise = |(key, missing): (&ValueKey, Vec<u32>)| {
            let values = cache.rows(&tables[key.table], &key.column, &key.steps, &missing);
            (key.clone(), missing, values)
        };
        for (key, missing, values) in in_parallel(wanted, &normalise) {
            let sparse = self.values.entry(key).or_default();
            sparse.0.extend(missing.into_iter().zip(values));
        }
    }

    /// Every pair of `rule` with a record in `touching` (and none that looked for its
    /// pairs in an earlier round, `touching.searched`), as a run over all records would
    /// find it (see `find_pairs`): the same blocks and giant values, the same orientation
    /// ((smaller, larger) for one table, verified that way round) and the same best
    /// score for a rule that holds either way round. Pairs found from the other side's
    /// end need its record to be active. Sorted by record.
    pub(super) fn touching(
        &mut self,
        rule: &RuleBlocks,
        tables: &[TableData],
        cache: &NormalizedCache,
        touching: Touching<'_>,
    ) -> Vec<(u32, u32, f32)> {
        if rule.conditions.is_empty() {
            return Vec::new();
        }
        let (same, both_ways) = (rule.same, rule.both_ways);
        let from_a: Vec<u32> = (0..touching.a.len() as u32)
            .filter(|r| touching.a[*r as usize])
            .collect();
        let from_b: Vec<u32> = if rule.a_indexed {
            (0..touching.b.len() as u32)
                .filter(|r| touching.b[*r as usize] && rule.active_b[*r as usize])
                .collect()
        } else {
            Vec::new()
        };
        if from_a.is_empty() && from_b.is_empty() {
            return Vec::new();
        }
        self.fill(&rule.a.values, &from_a, tables, cache);
        self.fill(&rule.b.values, &from_b, tables, cache);
        // the candidates, as (record of this side, record of the other side) to verify
        // that way round, and the pair to report
        let mut candidates: Vec<(u32, u32)> = Vec::new();
        {
            let blocker = rule.blocker();
            let a_values: Vec<&Sparse> = rule.a.values.iter().map(|k| &self.values[k]).collect();
            let b_values: Vec<&Sparse> = rule.b.values.iter().map(|k| &self.values[k]).collect();
            let b_def = &self.defs[self.by_def[&rule.b.def]];
            // this side's records look the other side up (its active records only)
            let (searched_a, searched_b) = touching.searched;
            let forward = |row: u32, o: u32| {
                let new = rule.active_b[o as usize] && !searched_b[o as usize];
                (new && !(same && o == row)).then(|| {
                    if same && !both_ways {
                        (row.min(o), row.max(o))
                    } else {
                        (row, o)
                    }
                })
            };
            let looking = (&blocker, &a_values[..], &from_a[..]);
            look_up(looking, b_def, &rule.giant, &forward, &mut candidates);
            if rule.a_indexed {
                // and the other side's records look this side up
                let a_def = &self.defs[self.by_def[&rule.a.def]];
                let backward = |o: u32, x: u32| {
                    (!(searched_a[x as usize] || same && x == o)).then_some((x, o))
                };
                let looking = (&blocker, &b_values[..], &from_b[..]);
                look_up(looking, a_def, &rule.giant, &backward, &mut candidates);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        let xs: Vec<u32> = candidates.iter().map(|c| c.0).collect();
        let os: Vec<u32> = candidates.iter().map(|c| c.1).collect();
        self.fill(&rule.a.values, &xs, tables, cache);
        self.fill(&rule.b.values, &os, tables, cache);
        let a_values: Vec<&Sparse> = rule.a.values.iter().map(|k| &self.values[k]).collect();
        let b_values: Vec<&Sparse> = rule.b.values.iter().map(|k| &self.values[k]).collect();
        // verified on every core
        let check = |part: &[(u32, u32)]| {
            let verified = part.iter().filter_map(|&(x, o)| {
                let (a, b) = (&a_values[..], &b_values[..]);
                let s = verify(&rule.conditions, a, b, x as usize, o as usize)?;
                // one table: reported as (smaller, larger)
                Some(if same && o < x { (o, x, s) } else { (x, o, s) })
            });
            verified.collect::<Vec<_>>()
        };
        let parts: Vec<&[(u32, u32)]> = candidates.chunks(PART).collect();
        let mut pairs: Vec<(u32, u32, f32)> = in_parallel(parts, &check).concat();
        // a pair found twice (from both ends, or both ways round) is one, with its best
        // score
        pairs.sort_unstable_by(|p, q| (p.0, p.1).cmp(&(q.0, q.1)).then(q.2.total_cmp(&p.2)));
        pairs.dedup_by_key(|p| (p.0, p.1));
        pairs
    }

    /// The index as a stored file's parts, for the next run: its head, then each
    /// definition's entries (its kept entries merged with its new ones, on every core).
    ///
    /// The head: [`MAGIC`], the length of the rest of the head, the hashing probe, per
    /// definition its name, table, count of entries and the checksum of its entries, the
    /// giant values of each rule and model key, and the checksum of the head. The
    /// definitions' entries follow, one after the other.
    pub(super) fn encode(&self) -> Vec<bytes::Bytes> {
        let mut defs: Vec<(&String, &usize)> = self.by_def.iter().collect();
        defs.sort();
        let bodies = in_parallel(
            defs.iter().map(|(_, i)| &self.defs[**i]).collect(),
            &|d: &DefBlocks| d.body(),
        );
        let mut head = Vec::new();
        head.extend_from_slice(&probe().to_le_bytes());
        put_len(&mut head, defs.len());
        for ((def, &i), (_, n, sum)) in defs.iter().zip(&bodies) {
            put_text(&mut head, def);
            put_text(&mut head, &self.defs[i].table);
            put_len(&mut head, *n);
            head.extend_from_slice(&sum.to_le_bytes());
        }
        put_len(&mut head, self.giant.len());
        for (id, hashes) in &self.giant {
            put_text(&mut head, id);
            put_len(&mut head, hashes.len());
            for h in hashes {
                head.extend_from_slice(&h.to_le_bytes());
            }
        }
        let mut first = MAGIC.to_vec();
        put_len(&mut first, head.len() + 8);
        first.extend_from_slice(&head);
        let sum = checksum(&first);
        first.extend_from_slice(&sum.to_le_bytes());
        let bodies = bodies
            .into_iter()
            .map(|(body, _, _)| bytes::Bytes::from(body));
        std::iter::once(bytes::Bytes::from(first))
            .chain(bodies)
            .collect()
    }
}

/// Look the keys of some records (`rows` of the side whose values are given) up in `def`,
/// skipping the giant blocks, and push the candidate `accept` makes of each record found
/// (once per looking record), the records shared out over every core.
fn look_up<C: Column + Sync>(
    (blocker, values, rows): (&Blocker<'_>, &[C], &[u32]),
    def: &DefBlocks,
    giant: &hashbrown::HashSet<u64>,
    accept: &(dyn Fn(u32, u32) -> Option<(u32, u32)> + Sync),
    out: &mut Vec<(u32, u32)>,
) {
    let parts: Vec<&[u32]> = rows.chunks(PART).collect();
    let look = |part: &[u32]| {
        let mut found = Vec::new();
        look_up_part((blocker, values, part), def, giant, accept, &mut found);
        found
    };
    out.extend(in_parallel(parts, &look).into_iter().flatten());
}

/// The records a piece of parallel work takes at least.
const PART: usize = 1024;

/// [`look_up`] for some records, on this core.
fn look_up_part<C: Column>(
    (blocker, values, rows): (&Blocker<'_>, &[C], &[u32]),
    def: &DefBlocks,
    giant: &hashbrown::HashSet<u64>,
    accept: &dyn Fn(u32, u32) -> Option<(u32, u32)>,
    out: &mut Vec<(u32, u32)>,
) {
    let hasher = key_hasher();
    let mut scratch = KeyScratch::default();
    let mut keys = Vec::new();
    // every record's keys first, then their blocks found all together
    let (mut looking, mut hashes) = (Vec::new(), Vec::new());
    for &row in rows {
        blocker.keys(values, row as usize, &hasher, &mut scratch, &mut keys, None);
        for &h in keys.iter().filter(|h| !giant.contains(*h)) {
            looking.push(row);
            hashes.push(h);
        }
    }
    // each record found once per looking record (its keys come together)
    let mut seen: hashbrown::HashSet<u32> = hashbrown::HashSet::new();
    let mut last = None;
    def.each_of(&hashes, &mut |i, found| {
        let row = looking[i];
        if last != Some(row) {
            seen.clear();
            last = Some(row);
        }
        if seen.insert(found) {
            out.extend(accept(row, found));
        }
    });
}

/// Entries sorted by (hash, row) and more of them, merged in order without repeats, each
/// given to `sink`; whether they all came in order.
fn merge_each(
    a: impl Iterator<Item = (u64, u32)>,
    b: impl Iterator<Item = (u64, u32)>,
    sink: &mut dyn FnMut((u64, u32)),
) -> bool {
    let mut last: Option<(u64, u32)> = None;
    let mut sorted = true;
    let mut push = |e: (u64, u32)| {
        if last != Some(e) {
            sorted &= last.is_none_or(|l| l < e);
            sink(e);
            last = Some(e);
        }
    };
    let mut b = b.peekable();
    for x in a {
        while let Some(y) = b.next_if(|y| *y < x) {
            push(y);
        }
        push(x);
    }
    b.for_each(push);
    sorted
}

/// Entries sorted by (hash, row) and more of them, merged without repeats, as hashes and
/// rows. Sorted again should `a` not be in order.
fn merge(
    a: impl Iterator<Item = (u64, u32)>,
    b: Vec<(u64, u32)>,
    capacity: usize,
) -> (Vec<u64>, Vec<u32>) {
    let mut hashes = Vec::with_capacity(capacity);
    let mut rows = Vec::with_capacity(capacity);
    let sorted = merge_each(a, b.into_iter(), &mut |(h, r)| {
        hashes.push(h);
        rows.push(r);
    });
    if !sorted {
        let mut entries: Vec<(u64, u32)> = hashes.into_iter().zip(rows).collect();
        entries.sort_unstable();
        entries.dedup();
        return entries.into_iter().unzip();
    }
    (hashes, rows)
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_le_bytes());
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    put_len(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// A reader of the encoded index that fails, never panics, on a short or bad file.
struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> std::result::Result<&'b [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or("the stored block index is cut short")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| "bad number")?))
    }

    fn len(&mut self) -> std::result::Result<usize, String> {
        let n = self.u64()?;
        // no count is larger than the bytes left
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.bytes.len() - self.at)
            .ok_or_else(|| "the stored block index is cut short".to_string())
    }

    /// A count, then as many hashes.
    fn hashes(&mut self) -> std::result::Result<Vec<u64>, String> {
        let n = self.len()?;
        Ok(self
            .take(n.checked_mul(8).ok_or("bad count")?)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect())
    }

    fn text(&mut self) -> std::result::Result<String, String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "bad text".to_string())
    }
}

/// The head of a stored block index: per definition its name, count of entries and
/// their checksum; the giant values of each rule and model key; and its length.
struct Head {
    defs: Vec<(String, usize, u64)>,
    giant: HashMap<String, Vec<u64>>,
    len: usize,
}

/// The bytes read first from a stored index, to learn how long its head is.
const HEAD_PROBE: u64 = 64 * 1024;

/// How long the head of a stored index is, from its first bytes (at least
/// [`HEAD_PROBE`] of them, or the whole file).
fn head_length(first: &[u8]) -> std::result::Result<usize, String> {
    let mut r = Reader {
        bytes: first,
        at: 0,
    };
    if r.take(MAGIC.len())? != MAGIC {
        return Err("the stored block index is of another version".into());
    }
    let rest = usize::try_from(r.u64()?).map_err(|_| "the stored block index is damaged")?;
    rest.checked_add(MAGIC.len() + 8)
        .ok_or_else(|| "the stored block index is damaged".to_string())
}

/// Read the head of a stored index (`bytes`: the whole head, its checksum last).
fn read_head(bytes: &[u8]) -> std::result::Result<Head, String> {
    let Some(body) = bytes.len().checked_sub(8).map(|n| &bytes[..n]) else {
        return Err("the stored block index is cut short".into());
    };
    let sum = u64::from_le_bytes(bytes[body.len()..].try_into().unwrap_or_default());
    if checksum(body) != sum {
        return Err("the stored block index is damaged".into());
    }
    let mut r = Reader { bytes: body, at: 0 };
    r.take(MAGIC.len() + 8)?;
    if r.u64()? != probe() {
        return Err("the stored block index was hashed otherwise".into());
    }
    let mut defs = Vec::new();
    for _ in 0..r.len()? {
        let def = r.text()?;
        let _table = r.text()?;
        let n = usize::try_from(r.u64()?).map_err(|_| "bad count")?;
        defs.push((def, n, r.u64()?));
    }
    let mut giant = HashMap::new();
    for _ in 0..r.len()? {
        let id = r.text()?;
        let hashes = r.hashes()?;
        // (a key's hash has only its top bits)
        if hashes.iter().any(|h| h & !super::rules::KEY_BITS != 0) {
            return Err("the stored block index is damaged".into());
        }
        giant.insert(id, hashes);
    }
    if r.at != body.len() {
        return Err("the stored block index is damaged".into());
    }
    Ok(Head {
        defs,
        giant,
        len: bytes.len(),
    })
}

/// Where each definition's entries lie in a stored index of `size` bytes with this head.
fn body_ranges(head: &Head, size: u64) -> std::result::Result<Vec<std::ops::Range<u64>>, String> {
    let mut at = head.len as u64;
    let mut ranges = Vec::with_capacity(head.defs.len());
    for (_, n, _) in &head.defs {
        let len = stored_length(*n).ok_or("bad count")?;
        let end = at.checked_add(len).filter(|e| *e <= size);
        let end = end.ok_or("the stored block index is cut short")?;
        ranges.push(at..end);
        at = end;
    }
    if at != size {
        return Err("the stored block index is damaged".into());
    }
    Ok(ranges)
}

/// The length of `n` stored entries ([`StoredEntries`]).
fn stored_length(n: usize) -> Option<u64> {
    let prefixes = ((1u64 << Prefixes::stored_bits(n)) + 1) * 4;
    (n as u64).checked_mul(8)?.checked_add(prefixes)
}

/// The stored index of this head and these entries (one part per definition): each
/// part's prefixes, checksum and order are checked, on every core.
fn check_bodies(head: Head, bodies: Vec<bytes::Bytes>) -> std::result::Result<Stored, String> {
    let parts: Vec<_> = head.defs.into_iter().zip(bodies).collect();
    let check = |((def, n, sum), body): ((String, usize, u64), bytes::Bytes)| {
        let damaged = || "the stored block index is damaged".to_string();
        if Some(body.len() as u64) != stored_length(n) {
            return Err("the stored block index is cut short".to_string());
        }
        let bits = Prefixes::stored_bits(n);
        let lows_at = ((1 << bits) + 1) * 4;
        let starts: Vec<u32> = body[..lows_at]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        if starts.first() != Some(&0) || starts.last().map(|l| *l as usize) != Some(n) {
            return Err(damaged());
        }
        let (lows, rows) = (
            body.slice(lows_at..lows_at + n * 4),
            body.slice(lows_at + n * 4..),
        );
        // summed, and checked in order and under its prefix, entry by entry
        let (mut last, mut sorted, mut placed) = (0, true, true);
        let mut summed = EntrySum::default();
        for (p, w) in starts.windows(2).enumerate() {
            let (from, to) = (w[0] as usize, w[1] as usize);
            if from > to || to > n {
                return Err(damaged());
            }
            let top = ((p as u64) >> (bits - 16)) << 48;
            let entries = lows[from * 4..to * 4]
                .chunks_exact(4)
                .zip(rows[from * 4..to * 4].chunks_exact(4));
            for (h, r) in entries {
                let h = top | u64::from(u32::from_le_bytes(h.try_into().unwrap_or_default())) << 16;
                let r = u32::from_le_bytes(r.try_into().unwrap_or_default());
                summed.add(h, r);
                placed &= (h >> (64 - bits)) as usize == p;
                sorted &= h >= last;
                last = h;
            }
        }
        if summed.finish() != sum || !placed {
            return Err(damaged());
        }
        if !sorted {
            return Err("the stored block index is not in order".to_string());
        }
        let prefixes = Prefixes { bits, starts };
        let entries = StoredEntries {
            lows,
            rows,
            prefixes,
        };
        Ok((def, entries))
    };
    let mut defs = HashMap::new();
    for done in in_parallel(parts, &check) {
        let (def, entries) = done?;
        defs.insert(def, entries);
    }
    Ok(Stored {
        defs,
        giant: head.giant,
        renumber: HashMap::new(),
    })
}

/// Read a block index held whole in `bytes`; `Err(why)` when it does not read (another
/// version, another hasher, a damaged file).
#[cfg(test)]
fn decode(bytes: &bytes::Bytes) -> std::result::Result<Stored, String> {
    let head_len = head_length(bytes)?;
    let head = bytes
        .get(..head_len)
        .ok_or("the stored block index is cut short")?;
    let head = read_head(head)?;
    let ranges = body_ranges(&head, bytes.len() as u64)?;
    let bodies = ranges
        .into_iter()
        .map(|r| bytes.slice(r.start as usize..r.end as usize))
        .collect();
    check_bodies(head, bodies)
}

/// Read the block index the last run stored at `relative` in the lake, each definition's
/// entries fetched at once; `Ok(Err(why))` when it is missing or does not read (another
/// version, another hasher, a damaged file): the run then matches every record.
pub(super) async fn read(
    lake: &lakecdp_lake::Lake,
    relative: &str,
) -> Result<std::result::Result<Stored, String>> {
    let size = match lake.head(relative).await {
        Ok(meta) => meta.size,
        Err(lakecdp_lake::Error::NotFound { .. }) => {
            return Ok(Err("the stored block index is missing".into()))
        }
        Err(e) => return Err(e.into()),
    };
    if size == 0 {
        return Ok(Err("the stored block index is cut short".into()));
    }
    let first = lake.get_range(relative, 0..size.min(HEAD_PROBE)).await?;
    let head_len = match head_length(&first) {
        Ok(n) if n as u64 <= size => n,
        Ok(_) => return Ok(Err("the stored block index is cut short".into())),
        Err(why) => return Ok(Err(why)),
    };
    let head = if head_len <= first.len() {
        first.slice(..head_len)
    } else {
        lake.get_range(relative, 0..head_len as u64).await?
    };
    let head = match read_head(&head) {
        Ok(head) => head,
        Err(why) => return Ok(Err(why)),
    };
    let ranges = match body_ranges(&head, size) {
        Ok(ranges) => ranges,
        Err(why) => return Ok(Err(why)),
    };
    // (every definition has its prefixes, entries or not)
    let bodies = lake.get_ranges(relative, &ranges).await?;
    let checked = tokio::task::spawn_blocking(move || check_bodies(head, bodies)).await;
    checked.map_err(|e| Error::Internal(format!("checking the stored block index: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_entries_are_sorted_and_distinct() {
        let a = vec![(1, 1), (3, 0), (3, 2), (9, 9)];
        let b = vec![(0, 5), (3, 1), (3, 2), (10, 0)];
        let merged = merge(a.into_iter(), b.clone(), 0);
        assert_eq!(merged.0, vec![0, 1, 3, 3, 3, 9, 10]);
        assert_eq!(merged.1, vec![5, 1, 0, 1, 2, 9, 0]);
        // out of order: sorted all the same
        let shuffled = vec![(9, 9), (1, 1), (3, 2), (3, 0)];
        assert_eq!(merge(shuffled.into_iter(), b, 8), merged);
    }

    #[test]
    fn work_in_parallel_comes_back_in_the_items_order() {
        let items: Vec<u64> = (0..37).collect();
        let done = in_parallel(items, &|x| x * x);
        assert_eq!(done, (0..37).map(|x| x * x).collect::<Vec<u64>>());
        assert!(in_parallel(Vec::<u8>::new(), &|x| x).is_empty());
    }

    #[test]
    fn a_block_is_found_by_its_hash_and_counted_over_active_records() {
        let entries = vec![(u64::MAX, 1), (7, 3), (7, 1), (1 << 50, 2), (7, 2)];
        let index = DefIndex::from_entries(entries);
        assert_eq!(index.get(7), &[1, 2, 3]);
        assert_eq!(index.get(u64::MAX), &[1]);
        assert_eq!(index.get(1 << 50), &[2]);
        assert!(index.get(8).is_empty());
        assert_eq!(index.giant(&|_| true, 2), [7].into_iter().collect());
        assert!(index.giant(&|r| r != 3, 2).is_empty());
    }

    #[test]
    fn kept_entries_are_found_renumbered_beside_the_new_and_merged_in_order() {
        // key hashes keep their top 48 bits
        let k = |x: u64| x << 16;
        let (high, top) = (0xffff_0000_0000_0000u64, super::super::rules::KEY_BITS);
        // the last run's entries, stored and read back
        let old = vec![
            (k(7), 0),
            (k(7), 1),
            (k(7), 3),
            (1 << 50, 2),
            (high, 4),
            (top, 1),
        ];
        let mut last = BlockIndex::new();
        last.insert("d".into(), "t".into(), DefIndex::from_entries(old));
        let bytes = bytes::Bytes::from(last.encode().concat());
        let mut stored = decode(&bytes).expect("reads");
        let rows_of = |h: u64| stored.defs["d"].rows_of(h).collect::<Vec<_>>();
        assert_eq!(rows_of(k(7)), vec![0, 1, 3]);
        assert_eq!(rows_of(top), vec![1]);
        assert_eq!(rows_of(high), vec![4]);
        assert!(rows_of(high + k(1)).is_empty());
        assert!(rows_of(k(8)).is_empty());
        // now: old row 0 is row 0, row 1 is gone, row 2 is row 3 (a new record before
        // it, row 2), row 3 is row 4 and keyed anew, row 4 is row 5
        let renumber = vec![Some(0), None, Some(3), Some(4), Some(5)];
        stored.renumber.insert("t".into(), renumber);
        let mut index = BlockIndex::from_stored(stored);
        let fresh = vec![false, false, true, false, true, false];
        let (keyed, now) = index.kept_rows(0, &fresh, "t");
        assert_eq!(*now, vec![0, u32::MAX, 3, u32::MAX, 5]);
        let entries = index.take_stored("d").expect("no failure").expect("stored");
        let blocks = DefBlocks {
            table: "t".into(),
            kept: Some(Kept { entries, now }),
            new: DefIndex::from_entries(vec![(k(7), 2), (k(9), 4), (k(7), 4)]),
            keyed: Some(keyed),
        };
        let found = |h: u64| {
            let mut rows = Vec::new();
            blocks.each(h, &mut |r| rows.push(r));
            rows
        };
        assert_eq!(found(k(7)), vec![0, 2, 4]);
        assert_eq!(found(1 << 50), vec![3]);
        assert_eq!(found(k(9)), vec![4]);
        assert!(found(top).is_empty(), "a key gone");
        assert!(blocks.crowded(k(7), &|_| true, 2));
        assert!(!blocks.crowded(k(7), &|r| r != 2, 2));
        assert_eq!(
            blocks.not_keyed(&[true, true, true, true, false, true]),
            [0, 1, 3, 5]
        );
        // many hashes looked up at once find what each finds alone
        let asked = [k(7), 1 << 50, top, k(9), k(7), high, 0];
        let mut batched = vec![Vec::new(); asked.len()];
        blocks.each_of(&asked, &mut |i, r| batched[i].push(r));
        let alone: Vec<Vec<u32>> = asked.iter().map(|h| found(*h)).collect();
        assert_eq!(batched, alone);
        // written for the next run: per 16-bit prefix where its entries start, then
        // each entry's 32 bits below the prefix, then the rows
        let (body, n, sum) = blocks.body();
        assert_eq!(n, 6);
        let words: Vec<u32> = body
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let (starts, entries) = words.split_at((1 << 16) + 1);
        // (prefix 0 holds the four small hashes, 4 holds 1 << 50, 0xffff the highest)
        assert_eq!(&starts[..6], &[0, 4, 4, 4, 4, 5]);
        assert_eq!(starts[(1 << 16) - 1], 5);
        assert_eq!(starts[1 << 16], 6);
        let (lows, rows) = entries.split_at(6);
        assert_eq!(lows, &[7, 7, 7, 9, 0, 0]);
        assert_eq!(rows, &[0, 2, 4, 4, 3, 5]);
        let hashes = [k(7), k(7), k(7), k(9), 1 << 50, high];
        let mut again = EntrySum::default();
        hashes.iter().zip(rows).for_each(|(h, r)| again.add(*h, *r));
        assert_eq!(again.finish(), sum, "the sum written is the sum checked");
    }

    #[test]
    fn an_entry_sum_changes_with_any_entry_changed_or_moved() {
        let entries: Vec<(u64, u32)> = (0..9).map(|i| (i * 1000 + 7, i as u32 * 3)).collect();
        let sum = |entries: &[(u64, u32)]| {
            let mut s = EntrySum::default();
            entries.iter().for_each(|(h, r)| s.add(*h, *r));
            s.finish()
        };
        let whole = sum(&entries);
        for i in 0..entries.len() {
            for bit in [16, 47, 63] {
                let mut changed = entries.clone();
                changed[i].0 ^= 1 << bit;
                assert_ne!(sum(&changed), whole, "hash {i}, bit {bit}");
            }
            let mut changed = entries.clone();
            changed[i].1 ^= 1;
            assert_ne!(sum(&changed), whole, "row {i}");
            // moved two places, staying even or odd
            if i + 2 < entries.len() {
                let mut moved = entries.clone();
                moved.swap(i, i + 2);
                assert_ne!(sum(&moved), whole, "entries {i} and {} swapped", i + 2);
            }
        }
        assert_ne!(sum(&entries[..8]), whole, "one fewer");
        assert_ne!(sum(&[]), sum(&[(0, 0)]), "an entry of zeros counts");
    }

    #[test]
    fn a_large_definition_keeps_its_hashes_under_prefixes_of_more_than_16_bits() {
        // 600,000 entries: prefixes of 17 bits, one of which is also in each entry's 32
        let n = 600_000u64;
        let hash = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & super::super::rules::KEY_BITS;
        let entries: Vec<(u64, u32)> = (0..n).map(|i| (hash(i), i as u32)).collect();
        assert_eq!(Prefixes::stored_bits(entries.len()), 17);
        let mut index = BlockIndex::new();
        index.insert(
            "d".into(),
            "t".into(),
            DefIndex::from_entries(entries.clone()),
        );
        let bytes = bytes::Bytes::from(index.encode().concat());
        let stored = decode(&bytes).expect("reads");
        let kept = &stored.defs["d"];
        let mut sorted = entries.clone();
        sorted.sort_unstable();
        let hashes: Vec<u64> = sorted.iter().map(|e| e.0).collect();
        assert!(
            kept.hashes().eq(hashes.iter().copied()),
            "every hash rebuilt"
        );
        for i in [0, 1, 299_999, n - 1] {
            assert_eq!(kept.rows_of(hash(i)).collect::<Vec<_>>(), vec![i as u32]);
            // the same bits under the neighbouring 17-bit prefix are another hash
            assert_eq!(kept.rows_of(hash(i) ^ 1 << 47).count(), 0);
        }
        // an entry's bit shared with its prefix, changed: refused
        let lows_at = bytes.len() - (n as usize) * 8;
        let mut other = bytes.to_vec();
        other[lows_at + 3] ^= 0x80;
        let refused = decode(&bytes::Bytes::from(other)).err();
        assert_eq!(
            refused.as_deref(),
            Some("the stored block index is damaged")
        );
    }

    #[test]
    fn a_damaged_index_is_refused_without_panicking() {
        let mut index = BlockIndex::new();
        let (two, five) = (2 << 16, 5 << 48 | 1 << 16);
        index.insert(
            "d".into(),
            "t".into(),
            DefIndex::from_entries(vec![(five, 1), (two, 0)]),
        );
        index.giant.insert("rule".into(), vec![five]);
        let bytes = bytes::Bytes::from(index.encode().concat());
        let stored = decode(&bytes).expect("reads");
        let entries = &stored.defs["d"];
        assert_eq!(entries.hashes().collect::<Vec<_>>(), vec![two, five]);
        assert_eq!(entries.rows().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(stored.giant["rule"], vec![five]);
        assert_eq!(entries.rows_of(five).collect::<Vec<_>>(), vec![1]);
        assert_eq!(entries.rows_of(3 << 16).count(), 0);
        // the same bits below another prefix are another hash
        assert_eq!(entries.rows_of(1 << 16).count(), 0);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes.slice(..cut)).is_err(), "cut at {cut}");
        }
        for at in [MAGIC.len(), bytes.len() / 2, bytes.len() - 1] {
            let mut other = bytes.to_vec();
            other[at] ^= 1;
            assert!(
                decode(&bytes::Bytes::from(other)).is_err(),
                "a bit changed at {at}"
            );
        }
    }
}
