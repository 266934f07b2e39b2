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
//! The next run takes the entries of the records that did not change (renumbered to the
//! rows they have now), keys the changed ones anew, and so holds the blocks a full run
//! would build while normalising and keying only what changed. The records a change
//! reaches are then found by looking their keys up in those blocks, and compared (or a
//! model's candidates scored) with the values of the few records involved, normalised
//! one by one. The file is read where it lies, without a copy, and merged once with
//! the changed records' keys.
//!
//! Keys are hashed with a fixed seed ([`super::rules::key_hasher`]); the file carries
//! the hash of a known text, so a build hashing otherwise reads it as another index.

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
const MAGIC: &[u8] = b"lakecdp block index 2\n";

/// The hashes of a short text, a long one and a crossed key, as the keys are hashed,
/// stored with the index: a build hashing otherwise reads it as another index.
fn probe() -> u64 {
    let h = key_hasher();
    h.hash_one("ab")
        ^ h.hash_one("lakecdp blocking keys, the long way")
            .rotate_left(21)
        ^ h.hash_one((7u64, "lakecdp")).rotate_left(42)
}

/// The checksum of an index's bytes.
fn checksum(bytes: &[u8]) -> u64 {
    key_hasher().hash_one(bytes)
}

/// One key definition's blocks: every record's key hashes, sorted, with their records
/// (rows of the definition's table), and where each 16-bit hash prefix starts.
pub(super) struct DefIndex {
    table: String,
    hashes: Vec<u64>,
    rows: Vec<u32>,
    starts: Vec<u32>,
}

impl DefIndex {
    /// The index of entries sorted by hash, then row.
    fn from_sorted(table: String, hashes: Vec<u64>, rows: Vec<u32>) -> Self {
        let mut starts = vec![0u32; (1 << 16) + 1];
        for h in &hashes {
            starts[(h >> 48) as usize + 1] += 1;
        }
        for p in 1..starts.len() {
            starts[p] += starts[p - 1];
        }
        DefIndex {
            table,
            hashes,
            rows,
            starts,
        }
    }

    /// The index of `(hash, row)` entries in any order.
    fn from_entries(table: String, mut entries: Vec<(u64, u32)>) -> Self {
        entries.sort_unstable();
        entries.dedup();
        let (hashes, rows) = entries.into_iter().unzip();
        Self::from_sorted(table, hashes, rows)
    }

    /// The records keyed `hash`.
    pub(super) fn get(&self, hash: u64) -> &[u32] {
        let p = (hash >> 48) as usize;
        let (lo, hi) = (self.starts[p] as usize, self.starts[p + 1] as usize);
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
    defs: Vec<DefIndex>,
    by_def: HashMap<String, usize>,
    /// Per rule, the hashes its giant-block guard left out.
    giant: BTreeMap<String, Vec<u64>>,
    values: HashMap<ValueKey, Sparse>,
    /// What the last run stored, taken as each definition is first needed.
    stored: Option<Stored>,
    /// Blocks got ready to make.
    pending: Vec<Pending>,
}

/// How a side keys some of its records from their normalised values: `(hash, row)`
/// entries.
type KeyRows<'k> = dyn Fn(&BlockIndex, &[u32]) -> Vec<(u64, u32)> + 'k;

/// A rule whose giant-block guard is decided, with its other side's active records.
pub(super) type Guarded<'r> = (&'r mut RuleBlocks, &'r (dyn Fn(usize) -> bool + Sync));

/// A definition's blocks got ready to make: the last run's entries and the new ones.
struct Pending {
    def: String,
    table: usize,
    winners: bool,
    stored: StoredEntries,
    new: Vec<(u64, u32)>,
}

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

/// One stored definition's entries, as the file holds them: hashes (8 bytes each, little
/// endian) and rows (4 bytes each), sorted; read where they are, without a copy.
struct StoredEntries {
    hashes: bytes::Bytes,
    rows: bytes::Bytes,
}

impl StoredEntries {
    fn hashes(&self) -> impl Iterator<Item = u64> + '_ {
        self.hashes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
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

    /// Each row of table `table` in the last run: its row now, when its key is unchanged.
    pub(super) fn renumber(&self, table: &str) -> Option<&[Option<u32>]> {
        let stored = self.stored.as_ref()?;
        stored.renumber.get(table).map(Vec::as_slice)
    }

    /// Drop the values normalised for looking up (the blocks stay).
    pub(super) fn forget_values(&mut self) {
        self.values = HashMap::new();
    }

    /// Entries held, over every definition.
    pub(super) fn entries(&self) -> usize {
        self.defs.iter().map(DefIndex::len).sum()
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
            self.insert(side.def.clone(), DefIndex::from_entries(name, entries));
        }
        let b = &self.defs[self.by_def[&rule.b.def]];
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
                self.insert(side.def.clone(), DefIndex::from_entries(name, entries));
            }
            let mut giant: Vec<u64> = hashed.giant.iter().copied().collect();
            giant.sort_unstable();
            self.giant.insert(key.id.clone(), giant);
        }
    }

    fn insert(&mut self, def: String, index: DefIndex) {
        self.by_def.insert(def, self.defs.len());
        self.defs.push(index);
    }

    /// Get ready to make the blocks of the sides of `rule` that have none yet: take the
    /// last run's entries and key the records keyed anew (per table: `changed`, the
    /// records of new or changed keys; `decided`, every record whose duplicate group is
    /// decided again, for the values after the winners took their columns' values).
    /// [`BlockIndex::build`] then makes them. `Ok(Err(why))` when the run cannot match only
    /// what changed: the stored index lacks a definition or names rows the state does not
    /// have.
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

    /// Get one side ready (see [`BlockIndex::schedule`]): definition `def` of table
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
        if self.by_def.contains_key(def) || self.pending.iter().any(|p| p.def == def) {
            return Ok(Ok(()));
        }
        let stored = match self.take_stored(def, &tables[table].name)? {
            Ok(entries) => entries,
            Err(why) => return Ok(Err(why)),
        };
        let fresh = if winners { decided } else { changed };
        let rows_now: Vec<u32> = (0..tables[table].len() as u32)
            .filter(|r| fresh[table][*r as usize])
            .collect();
        self.fill(values, &rows_now, tables, cache);
        let mut new = keys(self, &rows_now);
        new.sort_unstable();
        self.pending.push(Pending {
            def: def.to_string(),
            table,
            winners,
            stored,
            new,
        });
        Ok(Ok(()))
    }

    /// The last run's entries of definition `def` of table `table`; `Ok(Err(why))` when
    /// the stored index lacks it or names rows the state does not have.
    fn take_stored(
        &mut self,
        def: &str,
        table: &str,
    ) -> Result<std::result::Result<StoredEntries, String>> {
        let Some(stored) = self.stored.as_mut() else {
            return Err(Error::Internal("no stored block index to build on".into()));
        };
        let Some(entries) = stored.defs.remove(def) else {
            return Ok(Err(format!(
                "the stored block index has no keys of `{def}`: every record is matched"
            )));
        };
        let old_rows = stored.renumber.get(table).map_or(0, Vec::len);
        if entries.rows().any(|r| r as usize >= old_rows) {
            return Ok(Err(
                "the stored block index names records the state does not have: every record is matched"
                    .into(),
            ));
        }
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
    /// blocks of side `found` (giant blocks left out): `accept` gets each (looking,
    /// found) pair.
    fn model_look_up(
        &self,
        (looking, found): (&KeySide, &KeySide),
        rows: &[u32],
        giant: &hashbrown::HashSet<u64>,
        accept: &mut dyn FnMut(u32, u32),
    ) {
        let hasher = key_hasher();
        let def = &self.defs[self.by_def[&found.def]];
        for &row in rows {
            let h = self.model_hash(looking, row, &hasher);
            if h == 0 || giant.contains(&h) {
                continue;
            }
            for &other in def.get(h) {
                accept(row, other);
            }
        }
    }

    /// [`BlockIndex::guard`] for the keys of a model, with its other side's active
    /// records.
    pub(super) fn guard_model(
        &mut self,
        model: &mut ModelBlocks,
        active: &(dyn Fn(usize) -> bool + Sync),
        tables: &[TableData],
        max_block: usize,
    ) -> std::result::Result<(), String> {
        let defs = &self.defs;
        let by_def = &self.by_def;
        let count = |key: &ModelKey| defs[by_def[&key.b.def]].giant(active, max_block);
        let counted = in_parallel(model.keys.iter().collect(), &count);
        model.active_b = (0..tables[model.other].len()).map(active).collect();
        let mut crossed = None;
        for (key, giant) in model.keys.iter_mut().zip(counted) {
            crossed = crossed.or(self.set_giant(&key.id, &giant));
            key.giant = giant;
        }
        crossed.map_or(Ok(()), Err)
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

    /// Every candidate pair of a model with a record in `touching`, as a run over all
    /// records would produce it: looked up from both ends in the blocks of each key,
    /// leaving out giant blocks and inactive records of the other side (one table:
    /// (smaller, larger)). Sorted, each pair once.
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
        for key in &model.keys {
            self.model_look_up((&key.a, &key.b), &from_a, &key.giant, &mut |row, o| {
                // one table: each pair once, from its smaller record when that one looks
                // too
                let skip =
                    !model.active_b[o as usize] || same && (o == row || o < row && t.a[o as usize]);
                if !skip {
                    found.push(if same && o < row { (o, row) } else { (row, o) });
                }
            });
            if !same {
                // the other side's records look this side up: pairs found from their end
                self.model_look_up((&key.b, &key.a), &from_b, &key.giant, &mut |o, x| {
                    if !t.a[x as usize] {
                        found.push((x, o));
                    }
                });
            }
        }
        // a pair two keys produce is found through each (from the same end): kept once
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Make the blocks [`BlockIndex::schedule`] got ready, on every core: each one's kept
    /// entries renumbered (still in order: the rows of unchanged keys keep their order)
    /// and merged with the new ones in one pass.
    pub(super) fn build(
        &mut self,
        tables: &[TableData],
        (changed, decided): (&[Vec<bool>], &[Vec<bool>]),
    ) {
        let pending = std::mem::take(&mut self.pending);
        let empty = Vec::new();
        let renumbers: Vec<&Vec<Option<u32>>> = tables
            .iter()
            .map(|t| {
                self.stored
                    .as_ref()
                    .and_then(|s| s.renumber.get(&t.name))
                    .unwrap_or(&empty)
            })
            .collect();
        let make = |p: Pending| {
            let fresh = if p.winners { decided } else { changed };
            let (fresh, renumber) = (&fresh[p.table], renumbers[p.table]);
            let capacity = p.stored.len() + p.new.len();
            let kept = p.stored.hashes().zip(p.stored.rows()).filter_map(|(h, r)| {
                let now = renumber.get(r as usize).copied().flatten()?;
                (!fresh[now as usize]).then_some((h, now))
            });
            let (hashes, rows) = merge(kept, p.new, capacity);
            (
                p.def,
                DefIndex::from_sorted(tables[p.table].name.clone(), hashes, rows),
            )
        };
        let built = in_parallel(pending, &make);
        for (def, index) in built {
            self.insert(def, index);
        }
    }

    /// Decide which values the giant-block guard of each rule leaves out (with its other
    /// side's active records, `active_b`), on every core. `Err(why)` when a rule leaves
    /// out other values than the last run did: a block crossed the guard.
    pub(super) fn guard<'r>(
        &mut self,
        rules: Vec<Guarded<'r>>,
        tables: &[TableData],
        max_block: usize,
    ) -> std::result::Result<(), String> {
        let defs = &self.defs;
        let by_def = &self.by_def;
        let count = |(rule, active): Guarded<'r>| {
            let giant = defs[by_def[&rule.b.def]].giant(active, max_block);
            rule.active_b = (0..tables[rule.b.table].len()).map(active).collect();
            (rule, giant)
        };
        let counted = in_parallel(rules, &count);
        let mut crossed = None;
        for (rule, giant) in counted {
            crossed = crossed.or(self.set_giant(&rule.id, &giant));
            rule.giant = giant;
        }
        crossed.map_or(Ok(()), Err)
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

    /// Every pair of `rule` with a record in `touching`, as a run over all records would
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
            let forward = |row: u32, o: u32| {
                (rule.active_b[o as usize] && !(same && o == row)).then(|| {
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
                let backward = |o: u32, x: u32| (!(same && x == o)).then_some((x, o));
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
        let mut pairs: Vec<(u32, u32, f32)> = Vec::new();
        for (x, o) in candidates {
            if let Some(s) = verify(
                &rule.conditions,
                &a_values,
                &b_values,
                x as usize,
                o as usize,
            ) {
                // one table: reported as (smaller, larger)
                pairs.push(if same && o < x { (o, x, s) } else { (x, o, s) });
            }
        }
        // a pair found twice (from both ends, or both ways round) is one, with its best
        // score
        pairs.sort_unstable_by(|p, q| (p.0, p.1).cmp(&(q.0, q.1)).then(q.2.total_cmp(&p.2)));
        pairs.dedup_by_key(|p| (p.0, p.1));
        pairs
    }

    /// The index as bytes, for the next run.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.entries() * 12);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&probe().to_le_bytes());
        let mut defs: Vec<(&String, &usize)> = self.by_def.iter().collect();
        defs.sort();
        put_len(&mut out, defs.len());
        for (def, &i) in defs {
            let d = &self.defs[i];
            put_text(&mut out, def);
            put_text(&mut out, &d.table);
            put_len(&mut out, d.hashes.len());
            for h in &d.hashes {
                out.extend_from_slice(&h.to_le_bytes());
            }
            for r in &d.rows {
                out.extend_from_slice(&r.to_le_bytes());
            }
        }
        put_len(&mut out, self.giant.len());
        for (id, hashes) in &self.giant {
            put_text(&mut out, id);
            put_len(&mut out, hashes.len());
            for h in hashes {
                out.extend_from_slice(&h.to_le_bytes());
            }
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }
}

/// Look the keys of some records (`rows` of the side whose values are given) up in `def`,
/// skipping the giant blocks, and push the candidate `accept` makes of each record found
/// (once per looking record).
fn look_up<C: Column>(
    (blocker, values, rows): (&Blocker<'_>, &[C], &[u32]),
    def: &DefIndex,
    giant: &hashbrown::HashSet<u64>,
    accept: &dyn Fn(u32, u32) -> Option<(u32, u32)>,
    out: &mut Vec<(u32, u32)>,
) {
    let hasher = key_hasher();
    let mut scratch = KeyScratch::default();
    let mut keys = Vec::new();
    let mut seen: hashbrown::HashSet<u32> = hashbrown::HashSet::new();
    for &row in rows {
        seen.clear();
        blocker.keys(values, row as usize, &hasher, &mut scratch, &mut keys, None);
        for &h in keys.iter().filter(|h| !giant.contains(*h)) {
            for &found in def.get(h) {
                if seen.insert(found) {
                    out.extend(accept(row, found));
                }
            }
        }
    }
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
    let mut last: Option<(u64, u32)> = None;
    let mut sorted = true;
    let mut push = |e: (u64, u32), hashes: &mut Vec<u64>, rows: &mut Vec<u32>| {
        if last != Some(e) {
            sorted &= last.is_none_or(|l| l < e);
            hashes.push(e.0);
            rows.push(e.1);
            last = Some(e);
        }
    };
    let mut b = b.into_iter().peekable();
    for x in a {
        while let Some(y) = b.next_if(|y| *y < x) {
            push(y, &mut hashes, &mut rows);
        }
        push(x, &mut hashes, &mut rows);
    }
    for y in b {
        push(y, &mut hashes, &mut rows);
    }
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

/// Read a block index the last run stored; `Err(why)` when it does not read (another
/// version, another hasher, a damaged file): the run then matches every record.
pub(super) fn decode(
    bytes: &bytes::Bytes,
    renumber: HashMap<String, Vec<Option<u32>>>,
) -> std::result::Result<Stored, String> {
    let Some(body) = bytes.len().checked_sub(8).map(|n| &bytes[..n]) else {
        return Err("the stored block index is cut short".into());
    };
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&bytes[body.len()..]);
    let mut r = Reader { bytes: body, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err("the stored block index is of another version".into());
    }
    if r.u64()? != probe() {
        return Err("the stored block index was hashed otherwise".into());
    }
    // each definition's entries, where the file holds them; their order is checked on
    // every core, with the checksum
    let mut parts: Vec<Option<(String, StoredEntries)>> = Vec::new();
    for _ in 0..r.len()? {
        let def = r.text()?;
        let _table = r.text()?;
        let n = r.len()?;
        let at = r.at;
        r.take(n.checked_mul(8).ok_or("bad count")?)?;
        let hashes = bytes.slice(at..r.at);
        let at = r.at;
        r.take(n.checked_mul(4).ok_or("bad count")?)?;
        let rows = bytes.slice(at..r.at);
        parts.push(Some((def, StoredEntries { hashes, rows })));
    }
    // the checksum as one more piece of work
    parts.push(None);
    let check = |part: Option<(String, StoredEntries)>| match part {
        Some((def, entries)) if entries.hashes().is_sorted() => Ok(Some((def, entries))),
        Some(_) => Err("the stored block index is not in order".to_string()),
        None if checksum(body) == u64::from_le_bytes(sum) => Ok(None),
        None => Err("the stored block index is damaged".to_string()),
    };
    let mut defs = HashMap::new();
    for done in in_parallel(parts, &check) {
        if let Some((def, entries)) = done? {
            defs.insert(def, entries);
        }
    }
    let mut giant = HashMap::new();
    for _ in 0..r.len()? {
        let id = r.text()?;
        giant.insert(id, r.hashes()?);
    }
    Ok(Stored {
        defs,
        giant,
        renumber,
    })
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
        let index = DefIndex::from_entries("t".into(), entries);
        assert_eq!(index.get(7), &[1, 2, 3]);
        assert_eq!(index.get(u64::MAX), &[1]);
        assert_eq!(index.get(1 << 50), &[2]);
        assert!(index.get(8).is_empty());
        assert_eq!(index.giant(&|_| true, 2), [7].into_iter().collect());
        assert!(index.giant(&|r| r != 3, 2).is_empty());
    }

    #[test]
    fn a_damaged_index_is_refused_without_panicking() {
        let mut index = BlockIndex::new();
        index.insert(
            "d".into(),
            DefIndex::from_entries("t".into(), vec![(5, 1), (2, 0)]),
        );
        index.giant.insert("rule".into(), vec![5]);
        let bytes = bytes::Bytes::from(index.encode());
        let stored = decode(&bytes, HashMap::new()).expect("reads");
        let entries = &stored.defs["d"];
        assert_eq!(entries.hashes().collect::<Vec<_>>(), vec![2, 5]);
        assert_eq!(entries.rows().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(stored.giant["rule"], vec![5]);
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes.slice(..cut), HashMap::new()).is_err(),
                "cut at {cut}"
            );
        }
        for at in [MAGIC.len(), bytes.len() / 2, bytes.len() - 1] {
            let mut other = bytes.to_vec();
            other[at] ^= 1;
            assert!(
                decode(&bytes::Bytes::from(other), HashMap::new()).is_err(),
                "a bit changed at {at}"
            );
        }
    }
}
