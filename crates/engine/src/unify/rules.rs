//! Rules as they run: conditions compiled to a normaliser, a comparator and a
//! threshold; candidate pairs from blocking keys (never all pairs); verification of
//! every condition of a rule on each candidate.
//!
//! Candidate generation: when a rule has exact conditions, their normalised values
//! together are one hash key (records agreeing on all of them meet). Otherwise the
//! blocking keys of its strictest fuzzy condition are used (a few keys per value, see
//! `lakecdp_match::compare::blocking_keys`): two records meet when they share one; with
//! two fuzzy conditions or more, the keys of the two strictest are crossed, so records
//! meet when they share a key of each. A key
//! shared by more records than the rule's `max_block` is not used: it is reported, and
//! behaves as a value that never matches, so a placeholder can never build a giant
//! cluster.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};

use arrow::array::{Array, StringArray, StringBuilder};
use lakecdp_core::unify::AliasSpec;
use lakecdp_core::{ConditionSpec, Normalization, Precision, SemanticType};
use lakecdp_match::compare::{blocking_keys, comparator_for, score, Comparator};
use lakecdp_match::normalize::Normalizer;

use super::data::TableData;

/// A condition ready to run.
pub struct Condition {
    /// Column of this side.
    pub column: String,
    /// Column of the other side.
    pub other: String,
    /// Normalisations, in order.
    pub steps: Vec<Normalization>,
    /// How values are compared.
    pub comparator: Comparator,
    /// The threshold.
    pub precision: Precision,
    /// Normalised values that never match (exceptions and bypass values).
    pub never: HashSet<String>,
}

impl Condition {
    /// Compile a condition of a rule on `table` (and `other`, the table it is matched
    /// with; the same table for deduplication).
    pub fn compile(
        spec: &ConditionSpec,
        table: &TableData,
        other: &TableData,
        bypass: &HashMap<String, Vec<String>>,
    ) -> Self {
        let semantic = table
            .spec
            .columns
            .iter()
            .find(|c| c.name == spec.column)
            .map(|c| c.semantic.clone())
            .unwrap_or(SemanticType::Custom(String::new()));
        let steps = spec
            .normalize
            .clone()
            .unwrap_or_else(|| semantic.default_normalizations());
        let normalizer = Normalizer::new(&steps);
        let other_column = spec.with.clone().unwrap_or_else(|| spec.column.clone());
        let mut never: HashSet<String> = spec
            .exceptions
            .iter()
            .map(|e| normalizer.apply(e))
            .collect();
        for (table_name, column) in [(&table.name, &spec.column), (&other.name, &other_column)] {
            if let Some(values) = bypass.get(&format!("{table_name}.{column}")) {
                never.extend(values.iter().map(|v| normalizer.apply(v)));
            }
        }
        Condition {
            column: spec.column.clone(),
            other: other_column,
            steps,
            comparator: comparator_for(&semantic),
            precision: spec.precision,
            never,
        }
    }
}

/// A rule's conditions compiled, with the normalised values of both sides (`a`: this
/// table's columns, `b`: the other table's, per condition).
pub struct Prepared {
    /// The conditions.
    pub conditions: Vec<Condition>,
    /// This side's values, per condition.
    pub a: Vec<Values>,
    /// The other side's values, per condition.
    pub b: Vec<Values>,
}

/// Compile the conditions of a rule of `table` against `other` (the same table for
/// deduplication) and normalise the columns they compare.
pub fn prepare(
    specs: &[ConditionSpec],
    table: &TableData,
    other: &TableData,
    bypass: &HashMap<String, Vec<String>>,
    cache: &mut NormalizedCache,
) -> crate::Result<Prepared> {
    let conditions: Vec<Condition> = specs
        .iter()
        .map(|c| Condition::compile(c, table, other, bypass))
        .collect();
    let a = conditions
        .iter()
        .map(|c| cache.get(table, &c.column, &c.steps))
        .collect::<crate::Result<_>>()?;
    let b = conditions
        .iter()
        .map(|c| cache.get(other, &c.other, &c.steps))
        .collect::<crate::Result<_>>()?;
    Ok(Prepared { conditions, a, b })
}

/// The name of rule `index` (0-based) in reports.
pub fn rule_name(name: &Option<String>, index: usize) -> String {
    name.clone()
        .unwrap_or_else(|| format!("rule {}", index + 1))
}

/// Normalised values of a column (None: null, empty).
pub type Values = std::sync::Arc<StringArray>;

/// The value of `row`, unless it is null.
fn at(values: &StringArray, row: usize) -> Option<&str> {
    (!values.is_null(row)).then(|| values.value(row))
}

/// Normalised values of a column by record: the whole column, or the records an
/// incremental run normalised (see `blocks::Sparse`).
pub trait Column: Sync {
    /// The value of `row` (None: null, empty, or not normalised).
    fn get(&self, row: usize) -> Option<&str>;
}

impl Column for StringArray {
    fn get(&self, row: usize) -> Option<&str> {
        at(self, row)
    }
}

impl<C: Column + Send> Column for std::sync::Arc<C> {
    fn get(&self, row: usize) -> Option<&str> {
        self.as_ref().get(row)
    }
}

impl<C: Column> Column for &C {
    fn get(&self, row: usize) -> Option<&str> {
        (*self).get(row)
    }
}

/// Normalised values, cached per (table, column, normalisations), with the alias
/// overrides applied (an alias becomes its value, after normalisation).
#[derive(Default)]
pub struct NormalizedCache {
    values: HashMap<(String, String, Vec<Normalization>), Values>,
    aliases: Vec<AliasSpec>,
}

/// The alias overrides of `column` of table `table` (`Source.Table`), normalised: each
/// alias to the value it stands for.
fn alias_map(
    aliases: &[AliasSpec],
    table: &str,
    column: &str,
    normalizer: &Normalizer,
) -> HashMap<String, String> {
    let qualified = format!("{table}.{column}");
    let mut alias: HashMap<String, String> = HashMap::new();
    for a in aliases
        .iter()
        .filter(|a| a.column == "*" || a.column == qualified)
    {
        let value = normalizer.apply(&a.value);
        for x in &a.aliases {
            alias.insert(normalizer.apply(x), value.clone());
        }
    }
    alias
}

impl NormalizedCache {
    /// A cache applying these alias overrides.
    pub fn with_aliases(aliases: Vec<AliasSpec>) -> Self {
        Self {
            values: HashMap::new(),
            aliases,
        }
    }

    /// One value of `column` of table `table` (`Source.Table`) normalised as
    /// [`NormalizedCache::get`] normalises the column (None: null or empty).
    pub fn one(
        &self,
        table: &str,
        column: &str,
        steps: &[Normalization],
        value: Option<&str>,
    ) -> Option<String> {
        let normalizer = Normalizer::new(steps);
        let alias = alias_map(&self.aliases, table, column, &normalizer);
        let v = normalizer.apply(value?);
        let n = alias.get(v.as_str()).cloned().unwrap_or(v);
        (!n.is_empty()).then_some(n)
    }

    /// The values of `rows` of `column` of `table` normalised as [`NormalizedCache::get`]
    /// normalises the column (None: null or empty), without normalising the others.
    pub fn rows(
        &self,
        table: &TableData,
        column: &str,
        steps: &[Normalization],
        rows: &[u32],
    ) -> Vec<Option<Box<str>>> {
        let normalizer = Normalizer::new(steps);
        let alias = alias_map(&self.aliases, &table.name, column, &normalizer);
        let (mut buf, mut scratch) = (String::new(), String::new());
        let Some(array) = table.text.get(column) else {
            return vec![None; rows.len()];
        };
        rows.iter()
            .map(|&row| {
                let v = array
                    .is_valid(row as usize)
                    .then(|| array.value(row as usize))?;
                normalizer.apply_into(v, &mut buf, &mut scratch);
                let n = alias.get(buf.as_str()).map_or(buf.as_str(), |a| a.as_str());
                (!n.is_empty()).then(|| n.into())
            })
            .collect()
    }

    /// Drop the cached values of `column` of `table` (its values changed).
    pub fn forget(&mut self, table: &str, column: &str) {
        self.values
            .retain(|(t, c, _), _| !(t == table && c == column));
    }

    /// The normalised values of `column` of `table` (None: null or empty).
    pub fn get(
        &mut self,
        table: &TableData,
        column: &str,
        steps: &[Normalization],
    ) -> crate::Result<Values> {
        let key = (table.name.clone(), column.to_string(), steps.to_vec());
        if let Some(v) = self.values.get(&key) {
            return Ok(v.clone());
        }
        let values: Values = {
            let normalizer = Normalizer::new(steps);
            let alias = alias_map(&self.aliases, &table.name, column, &normalizer);
            // normalise slices of the rows on every core, then join them
            let n = table.len();
            let threads = std::thread::available_parallelism()
                .map_or(1, |t| t.get())
                .clamp(1, 8)
                .min(n.div_ceil(16_384).max(1));
            let chunk = n.div_ceil(threads).max(1);
            let (normalizer, alias) = (&normalizer, &alias);
            let parts: Vec<StringArray> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..n)
                    .step_by(chunk)
                    .map(|start| {
                        scope.spawn(move || {
                            let end = (start + chunk).min(n);
                            let mut out =
                                StringBuilder::with_capacity(end - start, (end - start) * 12);
                            let (mut buf, mut scratch) = (String::new(), String::new());
                            for row in start..end {
                                match table.value(column, row) {
                                    Some(v) => {
                                        normalizer.apply_into(v, &mut buf, &mut scratch);
                                        let n = alias
                                            .get(buf.as_str())
                                            .map_or(buf.as_str(), |a| a.as_str());
                                        if n.is_empty() {
                                            out.append_null();
                                        } else {
                                            out.append_value(n);
                                        }
                                    }
                                    None => out.append_null(),
                                }
                            }
                            out.finish()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            });
            let joined = match parts.as_slice() {
                [one] => one.clone(),
                many => {
                    let refs: Vec<&dyn Array> = many.iter().map(|a| a as &dyn Array).collect();
                    let joined = arrow::compute::concat(&refs)?;
                    joined
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .cloned()
                        .ok_or_else(|| crate::Error::Internal("joined text is not text".into()))?
                }
            };
            std::sync::Arc::new(joined)
        };
        self.values.insert(key, values.clone());
        Ok(values)
    }
}

/// A blocking value shared by too many records.
#[derive(Debug, Clone, PartialEq)]
pub struct GiantBlock {
    /// The rule.
    pub rule: String,
    /// The blocking key.
    pub value: String,
    /// Records sharing it.
    pub records: usize,
}

/// What finding the pairs of one rule did.
#[derive(Debug, Default)]
pub struct Found {
    /// Matching pairs: (record of this side, record of the other side, score).
    pub pairs: Vec<(u32, u32, f32)>,
    /// Candidate pairs compared.
    pub candidates: u64,
    /// Blocking values left out for their size.
    pub giant: Vec<GiantBlock>,
}

/// A value, unless it is null or a value that never matches.
fn usable<'v, C: Column>(condition: &Condition, values: &'v C, row: usize) -> Option<&'v str> {
    values.get(row).filter(|v| !condition.never.contains(*v))
}

/// Blocking keys of the records of a rule.
pub(super) struct Blocker<'c> {
    conditions: &'c [Condition],
    /// Exact conditions: together, one key.
    exact: &'c [usize],
    /// Fuzzy conditions, strictest first.
    fuzzy: &'c [usize],
}

/// The hasher of blocking keys: the same in every process, so that the block index an
/// incremental run keeps holds the hashes the next run computes.
pub(super) type KeyHasher = foldhash::fast::FixedState;

/// The hasher of blocking keys (see [`KeyHasher`]).
pub(super) fn key_hasher() -> KeyHasher {
    foldhash::fast::FixedState::with_seed(0x6c61_6b65_6364_7001)
}

/// The bits of a blocking key's hash that tell blocks apart: its top 48 (the others are
/// zero). Every run blocks by them, so the block index stores only 32 bits beside each
/// prefix and finds the blocks a run over every record finds. Two values share a block
/// by chance about once in 2^48 pairs of values: rules check every candidate, and a
/// model scores the pair as any other (alike in every run).
pub(super) const KEY_BITS: u64 = !0xffff;

/// Scratch space of one thread computing keys.
#[derive(Default)]
pub(super) struct KeyScratch {
    first: Vec<String>,
    second: Vec<String>,
}

impl<'c> Blocker<'c> {
    /// The blocker of `conditions`, split by [`exact_and_fuzzy`].
    pub(super) fn new(conditions: &'c [Condition], exact: &'c [usize], fuzzy: &'c [usize]) -> Self {
        Blocker {
            conditions,
            exact,
            fuzzy,
        }
    }

    /// The conditions whose values make the keys: the exact ones, then the strictest
    /// fuzzy one (and the second strictest when there is no exact one).
    pub(super) fn keyed(&self) -> Vec<usize> {
        let fuzzy = if self.exact.is_empty() { 2 } else { 1 };
        self.exact
            .iter()
            .chain(self.fuzzy.iter().take(fuzzy))
            .copied()
            .collect()
    }

    /// The blocking keys of condition `c` for record `row`, sorted and distinct, into
    /// `out`; false when the value is missing or never matches.
    fn fuzzy_keys<C: Column>(
        &self,
        c: usize,
        side: &[C],
        row: usize,
        out: &mut Vec<String>,
    ) -> bool {
        out.clear();
        let Some(v) = usable(&self.conditions[c], &side[c], row) else {
            return false;
        };
        blocking_keys(
            self.conditions[c].comparator,
            self.conditions[c].precision,
            v,
            out,
        );
        out.sort_unstable();
        out.dedup();
        true
    }

    /// The hashes of the keys of record `row` of `side` (none when a value it needs is
    /// missing), and with `texts` the keys as text (to name a giant block).
    ///
    /// - Exact conditions only: their values together are the one key.
    /// - Exact and fuzzy conditions: the exact key crossed with the blocking keys of the
    ///   strictest fuzzy condition. A pair satisfying the rule shares both, so it shares
    ///   a crossed key; and an exact value that many records share (a date of birth, a
    ///   city) no longer makes a block of all of them.
    /// - Fuzzy conditions only: the keys of the two strictest, crossed.
    ///
    /// Keys are hashed as they are built, never joined into new strings.
    pub(super) fn keys<C: Column>(
        &self,
        side: &[C],
        row: usize,
        hasher: &KeyHasher,
        scratch: &mut KeyScratch,
        out: &mut Vec<u64>,
        mut texts: Option<&mut Vec<String>>,
    ) {
        out.clear();
        if let Some(t) = texts.as_deref_mut() {
            t.clear();
        }
        if !self.exact.is_empty() {
            // the exact values hashed in place, without gathering them
            let mut state = hasher.build_hasher();
            for c in self.exact {
                match usable(&self.conditions[*c], &side[*c], row) {
                    Some(v) => v.hash(&mut state),
                    None => return,
                }
            }
            let exact_hash = state.finish() & KEY_BITS;
            // the text only to name a giant block
            let exact_text = || {
                self.exact
                    .iter()
                    .filter_map(|c| usable(&self.conditions[*c], &side[*c], row))
                    .collect::<Vec<_>>()
                    .join(" + ")
            };
            match self.fuzzy.first() {
                None => {
                    out.push(exact_hash);
                    if let Some(t) = texts {
                        t.push(exact_text());
                    }
                }
                Some(c) => {
                    if !self.fuzzy_keys(*c, side, row, &mut scratch.first) {
                        return;
                    }
                    for k in &scratch.first {
                        out.push(hasher.hash_one((exact_hash, k.as_str())) & KEY_BITS);
                        if let Some(t) = texts.as_deref_mut() {
                            t.push(format!("{} + {k}", exact_text()));
                        }
                    }
                }
            }
            return;
        }
        // the keys of the two strictest fuzzy conditions, crossed: a pair that
        // satisfies every condition shares a key of each, so it shares a crossed key,
        // and crossed keys are far more selective than either condition's own
        let Some(first) = self.fuzzy.first() else {
            return;
        };
        if !self.fuzzy_keys(*first, side, row, &mut scratch.first) {
            return;
        }
        match self.fuzzy.get(1) {
            None => {
                for k in &scratch.first {
                    out.push(hasher.hash_one(k.as_str()) & KEY_BITS);
                    if let Some(t) = texts.as_deref_mut() {
                        t.push(k.clone());
                    }
                }
            }
            Some(c) => {
                if !self.fuzzy_keys(*c, side, row, &mut scratch.second) {
                    return;
                }
                for a in &scratch.first {
                    for b in &scratch.second {
                        out.push(hasher.hash_one((a.as_str(), b.as_str())) & KEY_BITS);
                        if let Some(t) = texts.as_deref_mut() {
                            t.push(format!("{a} + {b}"));
                        }
                    }
                }
            }
        }
    }
}

/// The blocking keys of `rows` of one side, as `(hash, row)` (on every core).
pub(super) fn key_rows<C: Column>(
    blocker: &Blocker<'_>,
    side: &[C],
    rows: &[u32],
) -> Vec<(u64, u32)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, 8)
        .min(rows.len().div_ceil(16_384).max(1));
    let chunk = rows.len().div_ceil(threads).max(1);
    let hasher = key_hasher();
    let hasher = &hasher;
    std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut scratch = KeyScratch::default();
                    let mut keys = Vec::new();
                    let mut out = Vec::new();
                    for &row in part {
                        blocker.keys(side, row as usize, hasher, &mut scratch, &mut keys, None);
                        out.extend(keys.iter().map(|h| (*h, row)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// The exact conditions of a rule, and its fuzzy ones strictest first (by index).
pub(super) fn exact_and_fuzzy(conditions: &[Condition]) -> (Vec<usize>, Vec<usize>) {
    let exact: Vec<usize> = (0..conditions.len())
        .filter(|c| conditions[*c].precision.is_exact())
        .collect();
    let mut fuzzy: Vec<usize> = (0..conditions.len())
        .filter(|c| !conditions[*c].precision.is_exact())
        .collect();
    fuzzy.sort_by(|x, y| {
        conditions[*y]
            .precision
            .threshold()
            .total_cmp(&conditions[*x].precision.threshold())
            .then(x.cmp(y))
    });
    (exact, fuzzy)
}

/// The pairs and the candidate count of one slice of records.
type SliceResult = (Vec<(u32, u32, f32)>, u64);

/// The mean score of the conditions when every one holds for records `row` and `o`.
pub(super) fn verify<A: Column, B: Column>(
    conditions: &[Condition],
    a: &[A],
    b: &[B],
    row: usize,
    o: usize,
) -> Option<f32> {
    let mut total = 0.0;
    for (c, cond) in conditions.iter().enumerate() {
        let x = usable(cond, &a[c], row)?;
        let y = usable(cond, &b[c], o)?;
        total += score(cond.comparator, cond.precision, x, y)?;
    }
    Some((total / conditions.len() as f64) as f32)
}

/// The pairs of records (`a` of this side, `b` of the other) that satisfy every
/// condition. `same`: both sides are one table, and each pair is reported once as
/// (smaller, larger) with its best score; when a condition compares two different
/// columns of the table (`with`), a pair matches when the rule holds either way round
/// (the first record's column against the second's other column, or the reverse), so
/// which of two records comes first never decides whether they match. Only records for
/// which `active_a` / `active_b` hold take part.
#[allow(clippy::too_many_arguments)]
pub fn find_pairs(
    rule: &str,
    conditions: &[Condition],
    a: &[Values],
    b: &[Values],
    active_a: &(dyn Fn(usize) -> bool + Sync),
    active_b: &(dyn Fn(usize) -> bool + Sync),
    same: bool,
    max_block: usize,
) -> Found {
    let mut found = Found::default();
    if conditions.is_empty() {
        return found;
    }
    let (exact, fuzzy) = exact_and_fuzzy(conditions);
    let blocker = Blocker {
        conditions,
        exact: &exact,
        fuzzy: &fuzzy,
    };
    // one table compared with itself on different columns: both ways round
    let both_ways = same && conditions.iter().any(|c| c.column != c.other);
    // index the other side by the hashes of its keys: (hash, record) sorted by hash,
    // with the range of each hash; two keys with one hash only add candidates, which
    // are verified like any other
    let n_b = b.first().map_or(0, |v| v.len());
    let n_a = a.first().map_or(0, |v| v.len());
    let hasher = key_hasher();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let (blocker, hasher) = (&blocker, &hasher);
    let slices = |n: usize| {
        n.div_ceil(threads.min(n.max(1).div_ceil(4096)).max(1))
            .max(1)
    };
    let active: Vec<u32> = (0..n_b as u32).filter(|r| active_b(*r as usize)).collect();
    let mut entries = key_rows(blocker, b, &active);
    entries.sort_unstable();
    entries.dedup();
    let mut index: hashbrown::HashMap<u64, (u32, u32)> = hashbrown::HashMap::new();
    let mut giant: hashbrown::HashSet<u64> = hashbrown::HashSet::new();
    let mut i = 0;
    while i < entries.len() {
        let h = entries[i].0;
        let mut j = i + 1;
        while j < entries.len() && entries[j].0 == h {
            j += 1;
        }
        if j - i > max_block {
            giant.insert(h);
            // the key's text, from one of its records
            let (mut hashes, mut texts) = (Vec::new(), Vec::new());
            blocker.keys(
                b,
                entries[i].1 as usize,
                hasher,
                &mut KeyScratch::default(),
                &mut hashes,
                Some(&mut texts),
            );
            let value = hashes
                .iter()
                .position(|k| *k == h)
                .and_then(|p| texts.get(p).cloned())
                .unwrap_or_default();
            found.giant.push(GiantBlock {
                rule: rule.to_string(),
                value,
                records: j - i,
            });
        } else {
            index.insert(h, (i as u32, (j - i) as u32));
        }
        i = j;
    }
    let rows: Vec<u32> = entries.iter().map(|e| e.1).collect();
    drop(entries);
    found
        .giant
        .sort_by(|x, y| y.records.cmp(&x.records).then(x.value.cmp(&y.value)));
    // compare in parallel over slices of this side; each slice keeps its own marks
    let chunk = slices(n_a);
    let (index, giant, rows) = (&index, &giant, &rows);
    let results: Vec<SliceResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n_a)
            .step_by(chunk)
            .map(|start| {
                scope.spawn(move || {
                    let mut pairs = Vec::new();
                    let mut candidates = 0u64;
                    let mut seen: Vec<u32> = vec![u32::MAX; n_b];
                    let mut keys = Vec::new();
                    let mut scratch = KeyScratch::default();
                    for row in start..(start + chunk).min(n_a) {
                        if !active_a(row) {
                            continue;
                        }
                        blocker.keys(a, row, hasher, &mut scratch, &mut keys, None);
                        for &h in &keys {
                            if giant.contains(&h) {
                                continue;
                            }
                            let Some(&(from, len)) = index.get(&h) else {
                                continue;
                            };
                            for &other in &rows[from as usize..(from + len) as usize] {
                                let o = other as usize;
                                let skip = if both_ways {
                                    o == row
                                } else {
                                    same && o <= row
                                };
                                if skip || seen[o] == row as u32 {
                                    continue;
                                }
                                seen[o] = row as u32;
                                candidates += 1;
                                if let Some(s) = verify(conditions, a, b, row, o) {
                                    let (x, y) = (row as u32, other);
                                    pairs.push(if both_ways && y < x {
                                        (y, x, s)
                                    } else {
                                        (x, y, s)
                                    });
                                }
                            }
                        }
                    }
                    (pairs, candidates)
                })
            })
            .collect();
        handles
            .into_iter()
            // a panic in a slice is a bug: it goes on in this thread
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    for (pairs, candidates) in results {
        found.pairs.extend(pairs);
        found.candidates += candidates;
    }
    order_pairs(&mut found.pairs, both_ways);
    found
}

/// Put a rule's pairs in record order (the order they are joined in, so it depends on
/// the records alone); with `both_ways`, a pair found both ways round is one pair, with
/// its better score.
pub(super) fn order_pairs(pairs: &mut Vec<(u32, u32, f32)>, both_ways: bool) {
    pairs.sort_unstable_by(|p, q| (p.0, p.1).cmp(&(q.0, q.1)).then(q.2.total_cmp(&p.2)));
    if both_ways {
        pairs.dedup_by_key(|p| (p.0, p.1));
    }
}

/// The records whose pairs an incremental unification looks for: every pair with a
/// record of this side in `a` or an active record of the other side in `b`, whatever
/// else a run would filter (winners, records matched by an earlier rule), so that the
/// records whose pairs may have changed can be closed over the pairs they take part in.
#[derive(Clone, Copy)]
pub struct Touching<'a> {
    /// Records of this side.
    pub a: &'a [bool],
    /// Records of the other side (the same as `a` for one table).
    pub b: &'a [bool],
    /// Records of this side and of the other side that looked for their pairs in an
    /// earlier round: every pair with one of them was found then, and is not sought
    /// again.
    pub searched: (&'a [bool], &'a [bool]),
}
