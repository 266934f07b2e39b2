//! Incremental unification: only the records a change can reach are matched again.
//!
//! Every run stores, beside the published `Unification/` run, the state a later run needs
//! to tell what changed and what it can reach (`_lakecdp/unify/`): the block index of the
//! rules and models (see `blocks`), and per record key of each table a fingerprint of the
//! values unification reads, its CustomerId and profile, its duplicate group with the
//! rule and score that put each of its rows there, and its *component*: the connected
//! part of the graph of every pair the run found (dedupe and match rules, models at their
//! threshold, always-match overrides, records sharing a key), whether the pair was
//! joined, held or refused.
//!
//! A later run (same declaration, same stored models) then:
//! 1. finds the keys that are new, changed or gone;
//! 2. takes their old components, and closes them over the pairs the changed records
//!    take part in now: every pair touching the set is searched for, from both ends and
//!    whatever a run would filter on this side (records matched by an earlier rule; the
//!    other side's records are its winners, as in a full run), with the blocks and giant
//!    values of all records; a partner outside the set brings its whole old component
//!    in, whose records look for pairs in turn, until nothing new comes in;
//! 3. deduplicates and matches that closed set with the pairs found, exactly as a full
//!    run would (the same pairs in the same order), and keeps for every other record its
//!    duplicate group, its profile and its CustomerId.
//!
//! Why the result is a full run's: the decisions about a record (its group, winner,
//! joins, holds and refusals) depend only on the pairs of its component and the order
//! they come in, which depends on the records alone. A record outside the closed set
//! has no pair with a record inside it, and its own pairs, values and blocks did not
//! change, so a full run would decide about it as the last run did. The one thing that
//! could reach outside — a block growing past the giant-block guard, or shrinking below
//! it — is detected by counting again, over all records, every block whose count may
//! have changed (those the last run left out, those of the records keyed anew, and those
//! of the records that became their group's winner: a record that stopped being one only
//! shrinks its blocks, and a block crosses the guard by shrinking only if the last run
//! left it out); the run then starts again over every record.
//!
//! Anything else that could change the outcome (another declaration, a model trained
//! anew, a model without stored term counts, a sample, more than half the records to
//! match again) makes the run a full one, and says why.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use lakecdp_core::UnificationSpec;
use lakecdp_lake::{Lake, Process};
use serde::{Deserialize, Serialize};

use super::blocks::{BlockIndex, ModelBlocks, RuleBlocks, RuleDef, Stored};
use super::data::TableData;
use super::model;
use super::model::StoredModel;
use super::rules::{GiantBlock, NormalizedCache, Touching};
use crate::{Error, Result};
use lakecdp_match::cluster::UnionFind;

/// Pairs `(record, other record, score)` as a rule or model finds them.
pub(super) type Pairs = Vec<(u32, u32, f32)>;

/// The state pointer: which run the state belongs to, and what it was computed with.
#[derive(Debug, Serialize, Deserialize)]
struct Pointer {
    /// The `Unification` run published with this state.
    run: String,
    /// The declaration and models the state was computed with.
    inputs: String,
    /// The state file, relative to the environment's internal folder.
    file: String,
    /// Per rule and model key, the blocking values it left out for their size.
    #[serde(default)]
    giant: GiantValues,
    /// The block index of the rules, relative to the environment's internal folder.
    #[serde(default)]
    blocks: Option<String>,
}

/// Per rule and model key ([`giant_id`]), the blocking values left out for their size.
pub(super) type GiantValues = BTreeMap<String, BTreeSet<String>>;

/// The name of a rule's (or a model key's) giant values: its kind, table, other table
/// and rule (`model (<key>)` for a model key).
pub(super) fn giant_id(kind: &str, table: &str, with: &str, rule: &str) -> String {
    format!("{kind} {table} {with} {rule}")
}

/// Note the giant blocks a rule or model of `kind` (`dedupe`, `match`) between two
/// tables left out, each under its rule (or model key).
pub(super) fn note_giant(
    values: &mut GiantValues,
    kind: &str,
    (table, with): (&str, &str),
    blocks: &[GiantBlock],
) {
    for b in blocks {
        values
            .entry(giant_id(kind, table, with, &b.rule))
            .or_default()
            .insert(b.value.clone());
    }
}

/// The version of the state and of the decisions it keeps: a run of another version
/// matches every record.
const STATE_VERSION: &str = concat!("6/", env!("CARGO_PKG_VERSION"));

fn pointer_path(lake: &Lake) -> String {
    lake.internal("unify/state.json")
}

/// A stable hash (the same in every process) of what decides the pairs: the declaration
/// and the models it scores with (each named with the run that trained it).
pub(super) fn inputs_of(spec: &UnificationSpec, models: &[(String, String)]) -> Result<String> {
    let text = serde_json::to_string(&(STATE_VERSION, spec, models))
        .map_err(|e| Error::Internal(format!("declaration: {e}")))?;
    Ok(stable_hash(text.as_bytes()))
}

/// A hash of `bytes` that every process computes alike, as hex.
pub(super) fn stable_hash(bytes: &[u8]) -> String {
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Per record key of a table, in key order: its first row and fingerprint.
pub(super) type Prints = Vec<(usize, u64)>;

/// The fingerprint of each record key of a table (rows sharing a key together), in key
/// order: a hash of every value unification reads, as read.
pub(super) fn fingerprints(t: &TableData) -> Prints {
    let mut names: Vec<&String> = t.text.keys().collect();
    names.sort();
    let columns: Vec<&StringArray> = names.iter().map(|n| t.text[*n].as_ref()).collect();
    let mut out: Vec<(usize, u64)> = Vec::new();
    let mut row = 0;
    while row < t.len() {
        let mut h = std::hash::DefaultHasher::new();
        let first = row;
        while row < t.len() && t.keys[row] == t.keys[first] {
            for c in &columns {
                if c.is_null(row) {
                    0u8.hash(&mut h);
                } else {
                    1u8.hash(&mut h);
                    c.value(row).hash(&mut h);
                }
            }
            row += 1;
        }
        out.push((first, h.finish()));
    }
    out
}

/// The keys of a table as the last run left them, in key order: each one's fingerprint,
/// its component, whether its duplicate group was held together by a strong link, how
/// many rows it had, its duplicate group and, per row, the rule that put it there,
/// whether it was matched to an earlier table, and which of its rows was its group's
/// winner.
#[derive(Default)]
struct OldKeys {
    keys: Vec<StringArray>,
    /// Each key's CustomerId (null: left out of every profile).
    ids: Vec<StringArray>,
    /// Each key's profile, numbered over the whole state (u32::MAX: none).
    profile: Vec<u32>,
    print: Vec<u64>,
    component: Vec<u64>,
    strong: Vec<bool>,
    rows: Vec<u32>,
    /// Each key's duplicate group: the place of the group's first key among the keys.
    group: Vec<u32>,
    /// Per row (the keys' rows one after the other), the rule that put it in its group
    /// (u16::MAX: none), numbered as a run numbers them, and its score.
    rule: Vec<u16>,
    score: Vec<f32>,
    /// Per key, whether a record of it was matched to a record of an earlier table (it
    /// is the first record of a pair of `ConflationMatchPairs`).
    matched: Vec<bool>,
    /// Per key, which of its rows is its duplicate group's winner (u32::MAX: none, the
    /// winner is another key's).
    winner: Vec<u32>,
}

impl OldKeys {
    /// The keys, one after the other.
    fn iter(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().flat_map(|a| a.iter().flatten())
    }
}

/// What the last run left: per table, its keys.
pub(super) struct State {
    keys: Vec<OldKeys>,
    /// The rules' block index.
    blocks: Stored,
    /// The values each rule and model key left out for their size.
    giant: GiantValues,
    /// A component number no component of the state has.
    next_component: u64,
}

/// Why a run is a full one, or what an incremental run re-matched.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Every record matched.
    Full {
        /// Why not incremental.
        reason: String,
    },
    /// Only the records a change could reach matched again.
    Incremental {
        /// Records of new or changed keys.
        changed: usize,
        /// Keys gone since the last run.
        deleted: usize,
        /// Records matched again (the changed ones and everything they reach).
        rematched: usize,
        /// Records kept as the last run left them.
        kept: usize,
    },
}

/// Read the state of the published run, if it was computed with these inputs.
pub(super) async fn load_state(
    lake: &Lake,
    tables: &[TableData],
    inputs: &str,
) -> Result<std::result::Result<State, String>> {
    let pointer: Pointer = match lake.get(&pointer_path(lake)).await {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(p) => p,
            Err(e) => return Ok(Err(format!("the stored state does not read ({e})"))),
        },
        Err(lakecdp_lake::Error::NotFound { .. }) => {
            return Ok(Err("no state of an earlier run is stored".into()))
        }
        Err(e) => return Err(e.into()),
    };
    let published = lakecdp_lake::publish::read_model(lake, &Process::Unification)
        .await?
        .and_then(|m| lakecdp_lake::publish::published_run(&m));
    if published.map(|r| r.to_string()).as_deref() != Some(pointer.run.as_str()) {
        return Ok(Err(
            "the stored state belongs to another run than the one published".into(),
        ));
    }
    if pointer.inputs != inputs {
        return Ok(Err(
            "the declaration or a match model changed since the last run".into(),
        ));
    }
    let Some(blocks_file) = &pointer.blocks else {
        return Ok(Err("no block index of an earlier run is stored".into()));
    };
    // the block index and the state file, read and checked at once
    let blocks_file = lake.internal(blocks_file);
    let blocks = super::blocks::read(lake, &blocks_file);
    let state_file = lake.internal(&pointer.file);
    let named: Vec<(String, usize)> = tables.iter().map(|t| (t.name.clone(), t.len())).collect();
    let keys = async {
        let bytes = match lake.get(&state_file).await {
            Ok(b) => b,
            Err(lakecdp_lake::Error::NotFound { .. }) => {
                return Ok(Err("the stored state file is missing".into()))
            }
            Err(e) => return Err(Error::from(e)),
        };
        let read = tokio::task::spawn_blocking(move || read_keys(bytes, &named));
        match read.await {
            Ok(Ok(read)) => Ok(Ok(read)),
            Ok(Err(why)) => Ok(Err(format!("the stored state does not read ({why})"))),
            Err(e) => Err(Error::Internal(format!(
                "reading the unification state: {e}"
            ))),
        }
    };
    let (blocks, keys) = futures::future::join(blocks, keys).await;
    let blocks = match blocks? {
        Ok(stored) => stored,
        Err(why) => return Ok(Err(why)),
    };
    let (keys, next_component) = match keys? {
        Ok(read) => read,
        Err(why) => return Ok(Err(why)),
    };
    Ok(Ok(State {
        keys,
        blocks,
        giant: pointer.giant,
        next_component,
    }))
}

/// The rows of a stored state file, its row groups decoded on every core, in order.
fn state_batches(bytes: bytes::Bytes) -> std::result::Result<Vec<RecordBatch>, String> {
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
    let meta = ArrowReaderMetadata::load(&bytes, Default::default()).map_err(|e| e.to_string())?;
    let groups: Vec<usize> = (0..meta.metadata().num_row_groups()).collect();
    let read = |g: usize| -> std::result::Result<Vec<RecordBatch>, String> {
        ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), meta.clone())
            .with_row_groups(vec![g])
            .with_batch_size(STATE_ROW_GROUP)
            .build()
            .map_err(|e| e.to_string())?
            .map(|b| b.map_err(|e| e.to_string()))
            .collect()
    };
    let mut batches = Vec::new();
    for group in super::blocks::in_parallel(groups, &read) {
        batches.extend(group?);
    }
    Ok(batches)
}

/// The rows of a row group of the state file.
const STATE_ROW_GROUP: usize = 128 * 1024;

/// The keys of each table (by name, with its count of records now) in a stored state
/// file, and the first component number free; `Err(why)` when the file is not a state
/// this version wrote, or is damaged.
fn read_keys(
    bytes: bytes::Bytes,
    tables: &[(String, usize)],
) -> std::result::Result<(Vec<OldKeys>, u64), String> {
    let batches = state_batches(bytes)?;
    let index: HashMap<&str, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.0.as_str(), i))
        .collect();
    let mut keys: Vec<OldKeys> = tables.iter().map(|_| OldKeys::default()).collect();
    let mut next_component = 0u64;
    // each table's last key, to check the order, and its rows, to check their count
    let mut last: Vec<Option<String>> = vec![None; tables.len()];
    let mut rows_of: Vec<u64> = vec![0; tables.len()];
    for batch in batches {
        let column = |i: usize| {
            batch
                .columns()
                .get(i)
                .ok_or_else(|| format!("it has {} columns", batch.num_columns()))
        };
        let text = |i: usize| -> std::result::Result<StringArray, String> {
            let c = cast(column(i)?, &DataType::Utf8).map_err(|e| e.to_string())?;
            c.as_any()
                .downcast_ref::<StringArray>()
                .cloned()
                .ok_or_else(|| "a text column is not text".to_string())
        };
        fn typed<T: Clone + 'static>(c: &ArrayRef, what: &str) -> std::result::Result<T, String> {
            c.as_any()
                .downcast_ref::<T>()
                .cloned()
                .ok_or_else(|| format!("{what} is not of its type"))
        }
        let table = text(0)?;
        let key = text(1)?;
        let print: UInt64Array = typed(column(2)?, "Fingerprint")?;
        let component: UInt64Array = typed(column(3)?, "Component")?;
        let strong: arrow::array::BooleanArray = typed(column(4)?, "StrongGroup")?;
        let rows: arrow::array::UInt32Array = typed(column(5)?, "Rows")?;
        let ids = text(6)?;
        let profile: arrow::array::UInt32Array = typed(column(7)?, "Profile")?;
        let group: arrow::array::UInt32Array = typed(column(8)?, "Group")?;
        let rules: arrow::array::ListArray = typed(column(9)?, "Rules")?;
        let scores: arrow::array::ListArray = typed(column(10)?, "Scores")?;
        let matched: arrow::array::BooleanArray = typed(column(11)?, "Matched")?;
        let winner: arrow::array::UInt32Array = typed(column(12)?, "Winner")?;
        let rule_values: arrow::array::UInt16Array = typed(rules.values(), "a rule")?;
        let score_values: arrow::array::Float32Array = typed(scores.values(), "a score")?;
        if table.null_count() + key.null_count() > 0 {
            return Err("a key without its table".into());
        }
        // each table's keys come together, in key order
        let mut i = 0;
        while i < batch.num_rows() {
            let name = table.value(i);
            let Some(&ti) = index.get(name) else {
                return Err(format!("it names table `{name}`, which is not unified now"));
            };
            let mut j = i;
            while j < batch.num_rows() && table.value(j) == name {
                let k = key.value(j);
                if last[ti].as_deref().is_some_and(|l| l >= k) {
                    return Err("its keys are not in order".into());
                }
                if j + 1 == batch.num_rows() || table.value(j + 1) != name {
                    last[ti] = Some(k.to_string());
                } else if key.value(j + 1) <= k {
                    return Err("its keys are not in order".into());
                }
                rows_of[ti] += u64::from(rows.value(j));
                let n = rows.value(j) as usize;
                if rules.value_length(j) as usize != n || scores.value_length(j) as usize != n {
                    return Err("a key's rules are not one per row".into());
                }
                j += 1;
            }
            if rows_of[ti] > tables[ti].1.max(1) as u64 * 1024 {
                return Err("its row counts are out of bounds".into());
            }
            let old = &mut keys[ti];
            old.keys.push(key.slice(i, j - i));
            old.ids.push(ids.slice(i, j - i));
            old.profile.extend(profile.values()[i..j].iter().copied());
            old.print.extend(print.values()[i..j].iter().copied());
            old.component
                .extend(component.values()[i..j].iter().copied());
            old.strong.extend((i..j).map(|r| strong.value(r)));
            old.matched.extend((i..j).map(|r| matched.value(r)));
            old.winner.extend(winner.values()[i..j].iter().copied());
            old.rows.extend(rows.values()[i..j].iter().copied());
            old.group.extend(group.values()[i..j].iter().copied());
            let (from, to) = (rules.value_offsets()[i], rules.value_offsets()[j]);
            let (from, to) = (from as usize, to as usize);
            let rule_slice = rule_values.values().get(from..to);
            old.rule
                .extend(rule_slice.ok_or("a key's rules are cut short")?);
            let (from, to) = (scores.value_offsets()[i], scores.value_offsets()[j]);
            let score_slice = score_values.values().get(from as usize..to as usize);
            old.score
                .extend(score_slice.ok_or("a key's scores are cut short")?);
            i = j;
        }
        let largest = component.values().iter().max().copied();
        let after = largest.map_or(Some(0), |c| c.checked_add(1));
        next_component =
            next_component.max(after.ok_or("its component numbers are out of bounds")?);
    }
    if rows_of.iter().any(|n| *n > u64::from(u32::MAX)) {
        return Err("its row counts are out of bounds".into());
    }
    // components are numbered densely, at most one per key
    let keys_read: usize = keys.iter().map(|k| k.profile.len()).sum();
    if next_component > keys_read as u64 {
        return Err("its component numbers are out of bounds".into());
    }
    // a group is one of its table's keys
    if keys
        .iter()
        .any(|k| k.group.iter().any(|g| *g as usize >= k.group.len()))
    {
        return Err("a duplicate group names a key it does not have".into());
    }
    // profiles are numbered from 0, at most one per key
    let numbered = keys.iter().flat_map(|k| &k.profile);
    if numbered
        .filter(|p| **p != u32::MAX)
        .any(|p| *p as usize >= keys_read)
    {
        return Err("its profile numbers are out of bounds".into());
    }
    Ok((keys, next_component))
}

/// A table's duplicate groups: per record, its group (as its first record), and the
/// rule (as a run numbers them) and score that put it there.
pub(super) type Groups<'a> = (&'a [u32], &'a [Option<(u16, f32)>]);

/// What a published run leaves for the next.
pub(super) struct Saved<'a> {
    /// The run.
    pub run: &'a str,
    /// What it was computed with ([`inputs_of`]).
    pub inputs: &'a str,
    /// The tables.
    pub tables: &'a [TableData],
    /// Their fingerprints, as read.
    pub prints: &'a [Prints],
    /// Where each table's records start among all.
    pub offsets: &'a [u32],
    /// Every record's component.
    pub component: &'a [u64],
    /// Per table and record, whether its duplicate group is held by a strong link.
    pub strong: &'a [Vec<bool>],
    /// The values each rule and model key left out for their size.
    pub giant: &'a GiantValues,
    /// The rules' blocks.
    pub blocks: &'a BlockIndex,
    /// Every record's CustomerId (None: left out of every profile).
    pub ids: &'a [Option<&'a str>],
    /// Per table and record, its duplicate group (as its first record) and the rule and
    /// score that put it there.
    pub groups: &'a [Groups<'a>],
    /// Per table and record, whether it was matched to a record of an earlier table.
    pub matched: &'a [Vec<bool>],
    /// Per table and record, its duplicate group's winner.
    pub winners: &'a [&'a [u32]],
}

/// Store the state of a published run: every key's fingerprint, component, group
/// strength, CustomerId, profile, duplicate group (with its rows' rules and its winning
/// row) and whether it was matched to an earlier table, and the block
/// index, then point at them; the previous files are removed.
pub(super) async fn save_state(lake: &Lake, saved: Saved<'_>) -> Result<()> {
    let Saved {
        run,
        inputs,
        tables,
        prints,
        offsets,
        component,
        strong,
        giant,
        blocks,
        ids,
        groups,
        matched,
        winners,
    } = saved;
    let (mut table, mut key, mut print, mut comp) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut strength = Vec::new();
    let mut rows = Vec::new();
    let mut customer = Vec::new();
    let mut profile = Vec::new();
    let mut numbers: hashbrown::HashMap<&str, u32> = hashbrown::HashMap::new();
    let mut dense: hashbrown::HashMap<u64, u64> = hashbrown::HashMap::new();
    let mut group = Vec::new();
    let mut key_matched = Vec::new();
    let mut key_winner = Vec::new();
    let mut rules = arrow::array::ListBuilder::new(arrow::array::UInt16Builder::new())
        .with_field(Arc::new(Field::new("item", DataType::UInt16, false)));
    let mut scores = arrow::array::ListBuilder::new(arrow::array::Float32Builder::new())
        .with_field(Arc::new(Field::new("item", DataType::Float32, false)));
    for (ti, t) in tables.iter().enumerate() {
        // each record's key, by its place among the keys
        let mut place = vec![0u32; t.len()];
        for (n, &(row, _)) in prints[ti].iter().enumerate() {
            let end = prints[ti].get(n + 1).map_or(t.len(), |p| p.0);
            place[row..end].fill(n as u32);
        }
        let (first, rule) = groups[ti];
        for (n, &(row, fp)) in prints[ti].iter().enumerate() {
            let end = prints[ti].get(n + 1).map_or(t.len(), |p| p.0);
            rows.push((end - row) as u32);
            group.push(place[first[row] as usize]);
            let flags = matched.get(ti).and_then(|m| m.get(row..end));
            key_matched.push(flags.is_some_and(|m| m.iter().any(|m| *m)));
            let won = winners.get(ti).and_then(|w| w.get(row..end));
            let won = won.and_then(|w| w.iter().zip(row..).position(|(w, r)| *w as usize == r));
            key_winner.push(won.map_or(u32::MAX, |i| i as u32));
            for attributed in &rule[row..end] {
                let (ri, score) = attributed.unwrap_or((u16::MAX, 0.0));
                rules.values().append_value(ri);
                scores.values().append_value(score);
            }
            rules.append(true);
            scores.append(true);
            let id = ids[offsets[ti] as usize + row];
            customer.push(id);
            profile.push(id.map_or(u32::MAX, |id| {
                let next = numbers.len() as u32;
                *numbers.entry(id).or_insert(next)
            }));
            table.push(t.name.as_str());
            key.push(t.keys[row].as_str());
            print.push(fp);
            // numbered densely, in order of first appearance
            let c = component[offsets[ti] as usize + row];
            let next = dense.len() as u64;
            comp.push(*dense.entry(c).or_insert(next));
            strength.push(strong[ti][row]);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("Table", DataType::Utf8, false),
        Field::new("Key", DataType::Utf8, false),
        Field::new("Fingerprint", DataType::UInt64, false),
        Field::new("Component", DataType::UInt64, false),
        Field::new("StrongGroup", DataType::Boolean, false),
        Field::new("Rows", DataType::UInt32, false),
        Field::new("CustomerId", DataType::Utf8, true),
        Field::new("Profile", DataType::UInt32, false),
        Field::new("Group", DataType::UInt32, false),
        Field::new(
            "Rules",
            DataType::List(Arc::new(Field::new("item", DataType::UInt16, false))),
            false,
        ),
        Field::new(
            "Scores",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, false))),
            false,
        ),
        Field::new("Matched", DataType::Boolean, false),
        Field::new("Winner", DataType::UInt32, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(table)),
        Arc::new(StringArray::from(key)),
        Arc::new(UInt64Array::from(print)),
        Arc::new(UInt64Array::from(comp)),
        Arc::new(arrow::array::BooleanArray::from(strength)),
        Arc::new(arrow::array::UInt32Array::from(rows)),
        Arc::new(StringArray::from(customer)),
        Arc::new(arrow::array::UInt32Array::from(profile)),
        Arc::new(arrow::array::UInt32Array::from(group)),
        Arc::new(rules.finish()),
        Arc::new(scores.finish()),
        Arc::new(arrow::array::BooleanArray::from(key_matched)),
        Arc::new(arrow::array::UInt32Array::from(key_winner)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let mut bytes = Vec::new();
    {
        // the columns of a value per key or per profile are not worth a dictionary; the
        // keys, in order, and the CustomerIds, most of them of one run, share prefixes
        let mut properties = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(STATE_ROW_GROUP));
        for column in [
            "Key",
            "Fingerprint",
            "Component",
            "CustomerId",
            "Profile",
            "Group",
        ] {
            let path = parquet::schema::types::ColumnPath::from(column);
            properties = properties.set_column_dictionary_enabled(path, false);
        }
        for column in ["Key", "CustomerId"] {
            let path = parquet::schema::types::ColumnPath::from(column);
            properties =
                properties.set_column_encoding(path, parquet::basic::Encoding::DELTA_BYTE_ARRAY);
        }
        let properties = properties.build();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, schema, Some(properties))
            .map_err(|e| Error::Internal(format!("unification state: {e}")))?;
        writer
            .write(&batch)
            .map_err(|e| Error::Internal(format!("unification state: {e}")))?;
        writer
            .close()
            .map_err(|e| Error::Internal(format!("unification state: {e}")))?;
    }
    let file = format!("unify/state-{run}.parquet");
    lake.put(&lake.internal(&file), bytes).await?;
    let blocks_file = format!("unify/blocks-{run}.bin");
    lake.put_parts(&lake.internal(&blocks_file), blocks.encode())
        .await?;
    let previous: Option<Pointer> = match lake.get(&pointer_path(lake)).await {
        Ok(b) => serde_json::from_slice(&b).ok(),
        Err(_) => None,
    };
    let pointer = Pointer {
        run: run.to_string(),
        inputs: inputs.to_string(),
        file: file.clone(),
        giant: giant.clone(),
        blocks: Some(blocks_file.clone()),
    };
    let text =
        serde_json::to_vec_pretty(&pointer).map_err(|e| Error::Internal(format!("state: {e}")))?;
    lake.put(&pointer_path(lake), text).await?;
    if let Some(p) = previous {
        let old = std::iter::once(p.file).chain(p.blocks);
        for f in old.filter(|f| *f != file && *f != blocks_file) {
            if let Err(e) = lake.delete(&lake.internal(&f)).await {
                tracing::warn!(error = %e, "could not remove an earlier unification state");
            }
        }
    }
    Ok(())
}

/// What the closures search with.
#[derive(Clone, Copy)]
pub(super) struct Search<'a> {
    /// The records.
    pub tables: &'a [TableData],
    /// Values that never match, per `Source.Table.column`.
    pub bypass: &'a HashMap<String, Vec<String>>,
    /// The giant-block guard.
    pub max_block: usize,
    /// The stored models, by file name.
    pub models: &'a HashMap<String, StoredModel>,
    /// The always-match overrides, as (table, row, table, row).
    pub always: &'a [(usize, usize, usize, usize)],
}

/// Texts read in pieces, taken as one column without a copy.
struct Chunks {
    pieces: Vec<StringArray>,
    /// Where each piece starts, and (last) how many texts there are.
    starts: Vec<usize>,
}

impl Chunks {
    fn new(pieces: Vec<StringArray>) -> Self {
        let mut starts = vec![0];
        for p in &pieces {
            starts.push(starts[starts.len() - 1] + p.len());
        }
        Chunks { pieces, starts }
    }

    /// Text `i` (None: out of bounds, or null).
    fn get(&self, i: usize) -> Option<&str> {
        let piece = self.starts.partition_point(|s| *s <= i).checked_sub(1)?;
        let a = self.pieces.get(piece)?;
        let at = i - self.starts[piece];
        (at < a.len() && a.is_valid(at)).then(|| a.value(at))
    }
}

/// The records of each old component: where each component's records start, and the
/// records, by component.
struct Members {
    starts: Vec<u32>,
    records: Vec<u32>,
}

impl Members {
    /// The members of components numbered below `count` (as the state numbers them),
    /// from `(component, record)` pairs in record order.
    fn new(pairs: &[(u64, u32)], count: u64) -> Self {
        // (the state holds at most one component per key: `count` is bounded)
        let count = usize::try_from(count).unwrap_or(0);
        let mut starts = vec![0u32; count.saturating_add(1)];
        let components = starts.len() - 1;
        let slot = |c: u64| usize::try_from(c).ok().filter(|c| *c < components);
        for &(c, _) in pairs {
            if let Some(c) = slot(c) {
                starts[c + 1] += 1;
            }
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut at = starts.clone();
        let mut records = vec![0u32; starts.last().copied().unwrap_or(0) as usize];
        for &(c, g) in pairs {
            if let Some(c) = slot(c) {
                records[at[c] as usize] = g;
                at[c] += 1;
            }
        }
        Members { starts, records }
    }

    /// The records of component `c`, in order.
    fn get(&self, c: u64) -> &[u32] {
        let components = self.starts.len() - 1;
        let Some(c) = usize::try_from(c).ok().filter(|c| *c < components) else {
            return &[];
        };
        &self.records[self.starts[c] as usize..self.starts[c + 1] as usize]
    }
}

/// What an incremental run starts from: the changed records and the components they
/// reach, grown by [`Closure::dedupe`] and [`Closure::matches`] until closed.
pub(super) struct Closure {
    offsets: Vec<u32>,
    /// Old component of each record (None: a key the last run did not have).
    component: Vec<Option<u64>>,
    /// Whether each record's duplicate group was held together by a strong link.
    strong: Vec<bool>,
    /// Records of each old component.
    members: Members,
    /// Per table, the records matched again.
    pub in_set: Vec<Vec<bool>>,
    /// Per table, the records whose duplicate groups are decided again (the set as it
    /// stood after the dedupe closure).
    pub in_dedupe: Vec<Vec<bool>>,
    /// Records taken in and not yet searched from, per table.
    frontier: Vec<Vec<bool>>,
    /// Components taken in.
    taken: hashbrown::HashSet<u64>,
    /// Records of new or changed keys.
    pub changed: usize,
    /// Keys gone.
    pub deleted: usize,
    /// Keys gone, per table (`Source.Table`), to drop their carried rows.
    pub gone: HashMap<String, hashbrown::HashSet<String>>,
    /// Per table and dedupe rule, the pairs touching the set.
    pub dedupe_rules: Vec<Vec<Pairs>>,
    /// Per table, the dedupe model's pairs touching the set.
    pub dedupe_model: Vec<Pairs>,
    /// Per table and match rule.
    pub match_rules: Vec<Vec<Pairs>>,
    /// Per table and match model.
    pub match_models: Vec<Vec<Pairs>>,
    /// The first component number free for the components of this run.
    next_component: u64,
    /// The rules' blocks, from the last run's and the changed records' keys.
    index: BlockIndex,
    /// Per table, the CustomerId of each key of the last run, in its order.
    old_ids: Vec<Chunks>,
    /// Per table, the profile number of each key of the last run (u32::MAX: none).
    old_profiles: Vec<Vec<u32>>,
    /// Per table, whether each key of the last run was matched to an earlier table.
    old_matched: Vec<Vec<bool>>,
    /// Per table and record of an unchanged key, whether it was its duplicate group's
    /// winner in the last run.
    was_winner: Vec<Vec<bool>>,
    /// Profile numbers the last run's state holds (at most).
    profiles: usize,
    /// Per record, its key's place among the last run's keys of its table (u32::MAX: a
    /// new key).
    old_key: Vec<u32>,
    /// Per table, the CustomerIds of the keys gone.
    gone_ids: Vec<Vec<(String, String)>>,
    /// Per table, the records of new or changed keys.
    changed_rows: Vec<Vec<bool>>,
    /// The values each rule and model key left out for their size in the last run.
    giant: GiantValues,
    /// Per table, the last run's duplicate groups.
    old_groups: Vec<OldGroups>,
}

/// A table's duplicate groups as the last run left them, by its keys.
struct OldGroups {
    /// Per key, its first row among the last run's rows.
    first_row: Vec<u32>,
    /// Per key, its first row now (u32::MAX: changed or gone).
    first_now: Vec<u32>,
    /// Per key, the place of its group's first key.
    group: Vec<u32>,
    /// Per row of the last run, the rule that put it in its group (u16::MAX: none).
    rule: Vec<u16>,
    score: Vec<f32>,
}

impl Closure {
    /// The changed records of `tables` against `state`, and the old components they and
    /// the keys gone belong to.
    pub(super) fn start(
        tables: &[TableData],
        offsets: &[u32],
        prints: &[Prints],
        state: State,
    ) -> Self {
        let total = tables.iter().map(TableData::len).sum::<usize>();
        let mut component = vec![None; total];
        let mut strong = vec![false; total];
        let mut members: Vec<(u64, u32)> = Vec::new();
        let mut in_set: Vec<Vec<bool>> = tables.iter().map(|t| vec![false; t.len()]).collect();
        let mut seeds: Vec<u64> = Vec::new();
        let mut changed = 0;
        let mut deleted = 0;
        let mut gone: HashMap<String, hashbrown::HashSet<String>> = HashMap::new();
        let mut old_key = vec![u32::MAX; total];
        let mut old_ids = Vec::with_capacity(tables.len());
        let mut old_profiles = Vec::with_capacity(tables.len());
        let mut old_matched = Vec::with_capacity(tables.len());
        let mut was_winner: Vec<Vec<bool>> = tables.iter().map(|t| vec![false; t.len()]).collect();
        let mut gone_ids = vec![Vec::new(); tables.len()];
        let mut old_groups = Vec::with_capacity(tables.len());
        let State {
            mut keys,
            mut blocks,
            giant,
            next_component,
        } = state;
        let profiles = keys.iter().map(|k| k.profile.len()).sum();
        for (ti, t) in tables.iter().enumerate() {
            old_profiles.push(std::mem::take(&mut keys[ti].profile));
            old_matched.push(std::mem::take(&mut keys[ti].matched));
            let first_row: Vec<u32> = keys[ti]
                .rows
                .iter()
                .scan(0u32, |at, n| {
                    let first = *at;
                    *at = at.saturating_add(*n);
                    Some(first)
                })
                .collect();
            let mut groups = OldGroups {
                first_now: vec![u32::MAX; first_row.len()],
                first_row,
                group: std::mem::take(&mut keys[ti].group),
                rule: std::mem::take(&mut keys[ti].rule),
                score: std::mem::take(&mut keys[ti].score),
            };
            old_ids.push(Chunks::new(std::mem::take(&mut keys[ti].ids)));
            let old = &keys[ti];
            let prints = &prints[ti];
            // the last run's rows, by their rows now (unchanged keys only)
            let old_rows = old.rows.iter().map(|n| *n as usize).sum::<usize>();
            let mut renumber: Vec<Option<u32>> = vec![None; old_rows];
            // both in key order: walked together
            let mut old_keys = old.iter().enumerate().peekable();
            let mut old_first = 0u32;
            // keys of the last run not here now
            let mut gone_keys: Vec<(usize, &str)> = Vec::new();
            for (n, &(first, fp)) in prints.iter().enumerate() {
                let end = prints.get(n + 1).map_or(t.len(), |p| p.0);
                let key = t.keys[first].as_str();
                let mut found = None;
                while let Some(&(j, k)) = old_keys.peek() {
                    if k > key {
                        break;
                    }
                    old_keys.next();
                    let at = old_first;
                    old_first += old.rows[j];
                    if k == key {
                        found = Some((j, at));
                        break;
                    }
                    gone_keys.push((j, k));
                }
                if let Some((j, _)) = found {
                    for row in first..end {
                        old_key[offsets[ti] as usize + row] = j as u32;
                    }
                }
                let found_key = found.map(|f| f.0);
                let found = found.map(|(j, at)| {
                    let o = old;
                    (o.print[j], o.component[j], o.strong[j], at, o.rows[j])
                });
                let fresh = match found {
                    Some((was, c, held, old_first, old_n)) => {
                        for row in first..end {
                            let g = offsets[ti] + row as u32;
                            component[g as usize] = Some(c);
                            strong[g as usize] = held;
                            members.push((c, g));
                        }
                        let same = was == fp && old_n as usize == end - first;
                        if same {
                            // (u32::MAX: the winner is another key's row)
                            let w = found_key.and_then(|j| old.winner.get(j));
                            if let Some(w) = w.map(|w| *w as usize).filter(|w| *w < end - first) {
                                was_winner[ti][first + w] = true;
                            }
                            if let Some(j) = found_key {
                                groups.first_now[j] = first as u32;
                            }
                            for (i, row) in (first..end).enumerate() {
                                if let Some(slot) = renumber.get_mut(old_first as usize + i) {
                                    *slot = Some(row as u32);
                                }
                            }
                        } else {
                            seeds.push(c);
                        }
                        !same
                    }
                    None => true,
                };
                if fresh {
                    for flag in &mut in_set[ti][first..end] {
                        *flag = true;
                    }
                    changed += end - first;
                }
            }
            gone_keys.extend(old_keys);
            for (j, key) in gone_keys {
                deleted += 1;
                seeds.push(old.component[j]);
                gone.entry(t.name.clone())
                    .or_default()
                    .insert(key.to_string());
                if let Some(id) = old_ids[ti].get(j) {
                    gone_ids[ti].push((key.to_string(), id.to_string()));
                }
            }
            blocks.renumber.insert(t.name.clone(), renumber);
            old_groups.push(groups);
        }
        let frontier = in_set.clone();
        let changed_rows = in_set.clone();
        let mut closure = Closure {
            offsets: offsets.to_vec(),
            component,
            strong,
            members: Members::new(&members, next_component),
            in_dedupe: in_set.clone(),
            in_set,
            frontier,
            taken: hashbrown::HashSet::new(),
            changed,
            deleted,
            gone,
            dedupe_rules: tables
                .iter()
                .map(|t| vec![Vec::new(); t.spec.dedupe.len()])
                .collect(),
            dedupe_model: vec![Vec::new(); tables.len()],
            match_rules: tables
                .iter()
                .map(|t| vec![Vec::new(); t.spec.match_rules.len()])
                .collect(),
            match_models: tables
                .iter()
                .map(|t| vec![Vec::new(); t.spec.match_models.len()])
                .collect(),
            next_component,
            index: BlockIndex::from_stored(blocks),
            old_ids,
            old_profiles,
            old_matched,
            was_winner,
            profiles,
            old_key,
            gone_ids,
            changed_rows,
            giant,
            old_groups,
        };
        for c in seeds {
            closure.take_component(c);
        }
        closure
    }

    fn locate(&self, g: u32) -> (usize, usize) {
        let ti = self.offsets.partition_point(|&o| o <= g) - 1;
        (ti, (g - self.offsets[ti]) as usize)
    }

    fn take_component(&mut self, c: u64) {
        if !self.taken.insert(c) {
            return;
        }
        let rows = self.members.get(c).to_vec();
        for g in rows {
            let (ti, row) = self.locate(g);
            if !self.in_set[ti][row] {
                self.in_set[ti][row] = true;
                self.frontier[ti][row] = true;
            }
        }
    }

    /// Take in record `row` of table `ti` (found as a partner) with its old component.
    fn take(&mut self, ti: usize, row: usize) {
        if !self.in_set[ti][row] {
            self.in_set[ti][row] = true;
            self.frontier[ti][row] = true;
        }
        if let Some(c) = self.component[self.offsets[ti] as usize + row] {
            self.take_component(c);
        }
    }

    /// The values each rule and model key left out for their size (the same as the last
    /// run's, or the run would not have gone on).
    pub(super) fn giant(&self) -> &GiantValues {
        &self.giant
    }

    /// Whether the duplicate group of global record `g` was held together by a strong
    /// link in the last run.
    pub(super) fn was_strong(&self, g: u32) -> bool {
        self.strong[g as usize]
    }

    /// Records matched again.
    pub(super) fn rematched(&self) -> usize {
        self.in_set.iter().flatten().filter(|x| **x).count()
    }

    /// Whether global record `g` is matched again.
    pub(super) fn contains(&self, g: u32) -> bool {
        let (ti, row) = self.locate(g);
        self.in_set[ti][row]
    }

    /// Take in the records an always-match override pairs with a record of the set.
    fn overrides(&mut self, always: &[(usize, usize, usize, usize)]) {
        for &(ta, ra, tb, rb) in always {
            match (self.in_set[ta][ra], self.in_set[tb][rb]) {
                (true, false) => self.take(tb, rb),
                (false, true) => self.take(ta, ra),
                _ => {}
            }
        }
    }

    /// Close the set over the pairs of the deduplication rules and models, searching from
    /// each record once.
    pub(super) fn dedupe(
        &mut self,
        search: Search<'_>,
        cache: &mut NormalizedCache,
    ) -> Result<Option<String>> {
        let Search {
            tables,
            bypass,
            max_block,
            models,
            always,
        } = search;
        self.overrides(always);
        // every rule's blocks, from the last run's keys and the changed records' (a block
        // crossing the giant-block guard ends the attempt here)
        let mut rules: Vec<Vec<RuleBlocks>> = Vec::with_capacity(tables.len());
        for (ti, t) in tables.iter().enumerate() {
            let mut here = Vec::with_capacity(t.spec.dedupe.len());
            for (ri, r) in t.spec.dedupe.iter().enumerate() {
                let name = super::rules::rule_name(&r.name, ri);
                let def = RuleDef::dedupe(&name, ri, ti, &r.conditions);
                let rule = RuleBlocks::new(&def, tables, bypass);
                let fresh = (&self.changed_rows[..], &self.in_set[..]);
                if let Err(why) = self.index.schedule(&rule, tables, cache, fresh)? {
                    return Ok(Some(why));
                }
                here.push(rule);
            }
            rules.push(here);
        }
        // and every dedupe model's, with its stored parameters to score with
        let mut dedupe_models: Vec<Option<(ModelBlocks, model::Scorer)>> =
            Vec::with_capacity(tables.len());
        for (ti, t) in tables.iter().enumerate() {
            let Some(ms) = &t.spec.dedupe_model else {
                dedupe_models.push(None);
                continue;
            };
            let blocks = ModelBlocks::new("dedupe", ms, (ti, ti), tables);
            let fresh = (&self.changed_rows[..], &self.in_set[..]);
            if let Err(why) = self.index.schedule_model(&blocks, tables, cache, fresh)? {
                return Ok(Some(why));
            }
            let scorer = model::Scorer::new(ms, (t, t), models.get(&model::model_name(t, t)))?;
            dedupe_models.push(Some((blocks, scorer)));
        }
        // every record is active: a block counts otherwise only as records come and go
        let all = |_: usize| true;
        let guarded = rules.iter_mut().flatten().map(|r| (r, &all as _)).collect();
        if let Err(why) = self.index.guard(guarded, (tables, cache), None, max_block) {
            return Ok(Some(why));
        }
        for (blocks, _) in dedupe_models.iter_mut().flatten() {
            let guarded = self
                .index
                .guard_model(blocks, &all, (tables, cache), None, max_block);
            if let Err(why) = guarded {
                return Ok(Some(why));
            }
        }
        // records that looked for their pairs in an earlier round
        let mut searched: Vec<Vec<bool>> = tables.iter().map(|t| vec![false; t.len()]).collect();
        while self.frontier.iter().flatten().any(|x| *x) {
            let frontier = std::mem::replace(
                &mut self.frontier,
                tables.iter().map(|t| vec![false; t.len()]).collect(),
            );
            for ti in 0..tables.len() {
                let looks = frontier[ti].iter().any(|x| *x);
                let touching = Touching {
                    a: &frontier[ti],
                    b: &frontier[ti],
                    searched: (&searched[ti], &searched[ti]),
                };
                let mut found: Vec<(u32, u32)> = Vec::new();
                if looks {
                    for (ri, rule) in rules[ti].iter().enumerate() {
                        let pairs = self.index.touching(rule, tables, cache, touching);
                        found.extend(pairs.iter().map(|p| (p.0, p.1)));
                        self.dedupe_rules[ti][ri].extend(pairs);
                    }
                }
                if let Some((blocks, scorer)) = dedupe_models[ti].as_ref().filter(|_| looks) {
                    let candidates = self.index.touching_model(blocks, tables, cache, touching);
                    let placed = (ti, ti, false);
                    let pairs = self
                        .index
                        .score(scorer, &candidates, placed, (tables, cache));
                    found.extend(pairs.iter().map(|p| (p.0, p.1)));
                    self.dedupe_model[ti].extend(pairs);
                }
                for (x, y) in found {
                    self.take(ti, x as usize);
                    self.take(ti, y as usize);
                }
            }
            for (done, round) in searched.iter_mut().zip(&frontier) {
                for (d, r) in done.iter_mut().zip(round) {
                    *d |= *r;
                }
            }
            self.overrides(always);
        }
        self.in_dedupe = self.in_set.clone();
        for pairs in self.dedupe_rules.iter_mut().flatten() {
            tidy(pairs);
        }
        for pairs in &mut self.dedupe_model {
            tidy(pairs);
        }
        // every record of the set looks for its match pairs next
        self.frontier = self.in_set.clone();
        Ok(None)
    }

    /// Close the set over the pairs of the match rules and models (every record of the
    /// set searching once, then each record taken in), with the winners decided.
    pub(super) fn matches(
        &mut self,
        search: Search<'_>,
        cache: &mut NormalizedCache,
        winners: &[Vec<u32>],
    ) -> Result<Option<String>> {
        let Search {
            tables,
            bypass,
            max_block,
            models,
            always,
        } = search;
        let position = |name: &str| -> Result<usize> {
            tables
                .iter()
                .position(|o| o.name == name)
                .ok_or_else(|| Error::Internal(format!("unknown table {name}")))
        };
        // every rule's blocks, with the other side's winners active
        let mut rules: Vec<Vec<(usize, RuleBlocks)>> = Vec::with_capacity(tables.len());
        for (ti, t) in tables.iter().enumerate() {
            let mut here = Vec::with_capacity(t.spec.match_rules.len());
            for (ri, r) in t.spec.match_rules.iter().enumerate() {
                let wi = position(&r.with)?;
                let name = super::rules::rule_name(&r.name, ri);
                let def = RuleDef::matching(&name, ri, (ti, wi), &r.conditions);
                let rule = RuleBlocks::new(&def, tables, bypass);
                let fresh = (&self.changed_rows[..], &self.in_set[..]);
                if let Err(why) = self.index.schedule(&rule, tables, cache, fresh)? {
                    return Ok(Some(why));
                }
                here.push((wi, rule));
            }
            rules.push(here);
        }
        // and every match model's
        let mut match_models: Vec<Vec<(usize, ModelBlocks, model::Scorer)>> =
            Vec::with_capacity(tables.len());
        for (ti, t) in tables.iter().enumerate() {
            let mut here = Vec::with_capacity(t.spec.match_models.len());
            for ms in &t.spec.match_models {
                let wi = position(ms.with.as_deref().unwrap_or_default())?;
                let blocks = ModelBlocks::new("match", ms, (ti, wi), tables);
                let fresh = (&self.changed_rows[..], &self.in_set[..]);
                if let Err(why) = self.index.schedule_model(&blocks, tables, cache, fresh)? {
                    return Ok(Some(why));
                }
                let other = &tables[wi];
                let stored = models.get(&model::model_name(t, other));
                let scorer = model::Scorer::new(ms, (t, other), stored)?;
                here.push((wi, blocks, scorer));
            }
            match_models.push(here);
        }
        // each rule's other side: its winners
        let actives: Vec<Box<dyn Fn(usize) -> bool + Sync + '_>> = winners
            .iter()
            .map(|w| Box::new(move |j: usize| w[j] == j as u32) as Box<_>)
            .collect();
        let guarded = rules
            .iter_mut()
            .flatten()
            .map(|(wi, r)| (r, actives[*wi].as_ref()))
            .collect();
        // a record whose duplicate group is decided again may have become a winner, and
        // its blocks grown past the guard (a record that stopped being one only shrank
        // its blocks: one can cross the guard so only if the last run left it out, and
        // those are counted again anyway)
        let became: Vec<Vec<bool>> = (0..tables.len())
            .map(|ti| {
                let (decided, was) = (&self.in_dedupe[ti], &self.was_winner[ti]);
                let w = &winners[ti];
                (0..w.len())
                    .map(|r| decided[r] && w[r] == r as u32 && !was[r])
                    .collect()
            })
            .collect();
        let suspect = Some(&became[..]);
        let guarded = self
            .index
            .guard(guarded, (tables, cache), suspect, max_block);
        if let Err(why) = guarded {
            return Ok(Some(why));
        }
        for (wi, blocks, _) in match_models.iter_mut().flatten() {
            let active = actives[*wi].as_ref();
            let guarded =
                self.index
                    .guard_model(blocks, active, (tables, cache), suspect, max_block);
            if let Err(why) = guarded {
                return Ok(Some(why));
            }
        }
        // records that looked for their pairs in an earlier round
        let mut searched: Vec<Vec<bool>> = tables.iter().map(|t| vec![false; t.len()]).collect();
        while self.frontier.iter().flatten().any(|x| *x) {
            let frontier = std::mem::replace(
                &mut self.frontier,
                tables.iter().map(|t| vec![false; t.len()]).collect(),
            );
            let mut found: Vec<(usize, u32, usize, u32)> = Vec::new();
            for ti in 0..tables.len() {
                for (ri, (wi, rule)) in rules[ti].iter().enumerate() {
                    let wi = *wi;
                    if !frontier[ti].iter().chain(&frontier[wi]).any(|x| *x) {
                        continue;
                    }
                    let touching = Touching {
                        a: &frontier[ti],
                        b: &frontier[wi],
                        searched: (&searched[ti], &searched[wi]),
                    };
                    let pairs = self.index.touching(rule, tables, cache, touching);
                    found.extend(pairs.iter().map(|p| (ti, p.0, wi, p.1)));
                    self.match_rules[ti][ri].extend(pairs);
                }
                for (mi, (wi, blocks, scorer)) in match_models[ti].iter().enumerate() {
                    let wi = *wi;
                    if !frontier[ti].iter().chain(&frontier[wi]).any(|x| *x) {
                        continue;
                    }
                    let touching = Touching {
                        a: &frontier[ti],
                        b: &frontier[wi],
                        searched: (&searched[ti], &searched[wi]),
                    };
                    let candidates = self.index.touching_model(blocks, tables, cache, touching);
                    let placed = (ti, wi, true);
                    let pairs = self
                        .index
                        .score(scorer, &candidates, placed, (tables, cache));
                    found.extend(pairs.iter().map(|p| (ti, p.0, wi, p.1)));
                    self.match_models[ti][mi].extend(pairs);
                }
            }
            for (ti, x, wi, y) in found {
                self.take(ti, x as usize);
                self.take(wi, y as usize);
            }
            for (done, round) in searched.iter_mut().zip(&frontier) {
                for (d, r) in done.iter_mut().zip(round) {
                    *d |= *r;
                }
            }
            self.overrides(always);
        }
        self.index.forget_values();
        for pairs in self.match_rules.iter_mut().flatten() {
            tidy(pairs);
        }
        for pairs in self.match_models.iter_mut().flatten() {
            tidy(pairs);
        }
        Ok(None)
    }

    /// The CustomerId the last run gave global record `g` (None: a new key, or a record
    /// left out of every profile).
    pub(super) fn old_id(&self, g: u32) -> Option<&str> {
        let j = self.old_key[g as usize];
        let (ti, _) = self.locate(g);
        self.old_ids[ti].get(j as usize)
    }

    /// The number of the profile global record `g` belonged to in the last run (None: a
    /// new key, or a record left out of every profile); numbers are below
    /// [`Closure::profiles`].
    pub(super) fn old_profile(&self, g: u32) -> Option<u32> {
        let j = self.old_key[g as usize];
        let (ti, _) = self.locate(g);
        let p = *self.old_profiles[ti].get(j as usize)?;
        (p != u32::MAX).then_some(p)
    }

    /// How many profile numbers the last run's state may hold.
    pub(super) fn profiles(&self) -> usize {
        self.profiles
    }

    /// Whether the last run matched the key of record `g` to a record of an earlier
    /// table (false for a new key). Asked of the records kept, whose pairs are the last
    /// run's.
    pub(super) fn was_matched(&self, g: u32) -> bool {
        let (ti, _) = self.locate(g);
        let key = self.old_key.get(g as usize).copied().unwrap_or(u32::MAX);
        self.old_matched[ti]
            .get(key as usize)
            .copied()
            .unwrap_or(false)
    }

    /// The CustomerIds the last run gave the records matched again and the keys gone,
    /// by record key (`Source.Table` + U+0001 + key).
    pub(super) fn previous_ids(&self, tables: &[TableData]) -> super::merge::PreviousIds {
        let mut out = super::merge::PreviousIds::default();
        for (ti, t) in tables.iter().enumerate() {
            for (r, key) in t.keys.iter().enumerate() {
                if !self.in_set[ti][r] {
                    continue;
                }
                if let Some(id) = self.old_id(self.offsets[ti] + r as u32) {
                    out.insert(format!("{}\u{1}{key}", t.name), id.to_string());
                }
            }
            for (key, id) in &self.gone_ids[ti] {
                out.insert(format!("{}\u{1}{key}", t.name), id.clone());
            }
        }
        out
    }

    /// The last run's duplicate groups of table `ti` (with `rules` dedupe rules) for the
    /// records kept (outside the set as it stood after the dedupe closure): per record,
    /// its group (as its first record) and the rule and score that put it there.
    /// `Err(why)` when the state does not hold them (a damaged state): every record is
    /// matched.
    pub(super) fn kept_dedupe(
        &self,
        ti: usize,
        rules: usize,
    ) -> std::result::Result<KeptDedupe, String> {
        let in_dedupe = &self.in_dedupe[ti];
        let old = &self.old_groups[ti];
        let offset = self.offsets[ti] as usize;
        let mut out: KeptDedupe = vec![None; in_dedupe.len()];
        for (row, kept) in out.iter_mut().enumerate() {
            let j = self.old_key[offset + row] as usize;
            // a kept record has its key, unchanged, and so has each record of its group
            let first_now = old.first_now.get(j).filter(|f| **f as usize <= row);
            let Some(&first_now) = first_now.filter(|_| !in_dedupe[row]) else {
                continue;
            };
            let group_row = old
                .group
                .get(j)
                .and_then(|g| old.first_now.get(*g as usize));
            let Some(&group_row) = group_row.filter(|r| **r != u32::MAX) else {
                return Err("the stored state names a duplicate group that is not kept".into());
            };
            let old_row = (old.first_row[j] as usize) + (row - first_now as usize);
            let rule = old.rule.get(old_row).copied().unwrap_or(u16::MAX);
            let score = old.score.get(old_row).copied().unwrap_or_default();
            // the rules are numbered as a run numbers them, the model's last
            if rule != u16::MAX && usize::from(rule) > rules {
                return Err("the stored state names a rule that is not declared".into());
            }
            *kept = Some((group_row, (rule != u16::MAX).then_some((rule, score))));
        }
        Ok(out)
    }

    /// The rules' blocks of this run, for the next.
    pub(super) fn blocks(&self) -> &BlockIndex {
        &self.index
    }

    /// Every record's component after this run: the old one outside the set; inside it,
    /// new numbers for the components `joined` (a union-find over the set's pairs) holds.
    /// A record taken in while matching kept its duplicate group without looking for its
    /// dedupe pairs again: it stays with the rest of its old component (a part that
    /// may be larger than needed, never smaller).
    pub(super) fn components(&self, joined: &mut UnionFind) -> Vec<u64> {
        for c in &self.taken {
            let rows = self.members.get(*c);
            let kept_group = rows.iter().any(|&g| {
                let (ti, row) = self.locate(g);
                !self.in_dedupe[ti][row]
            });
            if kept_group {
                for w in rows.windows(2) {
                    joined.union(w[0], w[1]);
                }
            }
        }
        let total = self.component.len();
        (0..total as u32)
            .map(|g| {
                if self.contains(g) {
                    self.next_component + u64::from(joined.find(g))
                } else {
                    // a record outside the set kept its key, so it has its old component
                    self.component[g as usize].unwrap_or(u64::MAX)
                }
            })
            .collect()
    }
}

/// Pairs found more than once (from both ends, or through two keys) kept once, best
/// score first, in record order.
fn tidy(pairs: &mut Pairs) {
    pairs.sort_unstable_by(|p, q| (p.0, p.1).cmp(&(q.0, q.1)).then(q.2.total_cmp(&p.2)));
    pairs.dedup_by_key(|p| (p.0, p.1));
}

/// The last run's duplicate groups of a table, for the records kept: per record, the
/// first record of its group, its rule (index, as the run numbers them) and score.
pub(super) type KeptDedupe = Vec<Option<(u32, Option<(u16, f32)>)>>;

/// Make `out` the qualified name `source.table`, unless it is already.
pub(super) fn qualify(out: &mut String, source: &str, table: &str) {
    let same = out.len() == source.len() + 1 + table.len()
        && out.starts_with(source)
        && out.ends_with(table)
        && out.as_bytes()[source.len()] == b'.';
    if !same {
        out.clear();
        out.push_str(source);
        out.push('.');
        out.push_str(table);
    }
}

/// The rows of a pair table of the last run (`ConflationMatchPairs`,
/// `ConflationReviewPairs`) whose two records are both kept.
pub(super) async fn kept_pairs(
    lake: &Lake,
    entity_name: &str,
    dropped: &(dyn Fn(&str, &str) -> bool + Sync),
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for batch in super::merge::last_unified(lake, entity_name).await? {
        let text = |name: &str| super::merge::text_column(&batch, entity_name, name);
        let (sa, ta, ka) = (text("SourceA")?, text("TableA")?, text("KeyA")?);
        let (sb, tb, kb) = (text("SourceB")?, text("TableB")?, text("KeyB")?);
        // the tables of the pairs, named once per run of rows
        let (mut table_a, mut table_b) = (String::new(), String::new());
        let keep: arrow::array::BooleanArray = (0..batch.num_rows())
            .map(|i| {
                qualify(&mut table_a, sa.value(i), ta.value(i));
                qualify(&mut table_b, sb.value(i), tb.value(i));
                Some(!dropped(&table_a, ka.value(i)) && !dropped(&table_b, kb.value(i)))
            })
            .collect();
        out.push(arrow::compute::filter_record_batch(&batch, &keep)?);
    }
    Ok(out)
}
