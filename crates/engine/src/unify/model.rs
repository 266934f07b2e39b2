//! Match models as they run (see `lakecdp_match::model` for the model itself).
//!
//! 1. **Columns.** Every `compare` entry becomes a compared column: its normalised
//!    values on both sides, its comparison levels (from its semantic type unless the
//!    project names them) and, for names and places, the share of records holding each
//!    value (term frequencies, over both sides of a match model).
//! 2. **Candidates.** Each blocking key (a list of columns whose normalised values
//!    together are the key) pairs the records that share it. A key shared by more
//!    records than `max_block` is left out and reported. A pair that an earlier key
//!    already produced is not produced again, so each key's count is the comparisons it
//!    adds, and no pair is compared twice.
//! 3. **Comparison vectors.** Each candidate pair gets one level per compared column.
//!    When the model compares a first-name and a last-name column (by their semantic
//!    types, `Person.FirstName` and `Person.LastName`), a pair whose names agree better
//!    crossed (one system writes the family name first: "Nguyen | Thi Bao" against
//!    "Thi Bao | Nguyen") is compared crossed, both columns; one crossed name must agree
//!    exactly and the other at least at a similarity level. Random pairs, training,
//!    scoring, incremental runs and `explain` all read pairs this way, so `u` and `m`
//!    count crossed agreements as what they are; in one table, the record whose names
//!    sort first takes this side's place, so a pair weighs the same either way round.
//! 4. **Training**, when no stored model fits the declaration (or retraining is asked
//!    for): `u` from random record pairs, then the prior and `m` by expectation
//!    maximisation over the candidates' vectors. User-given parameters seed it or stay
//!    fixed. A model that trained to the mirror solution (non-matches taken for
//!    matches) is refused with what to do about it.
//! 5. **Scoring.** A pair matches when its weight reaches the weight of the threshold
//!    probability; the report gives the weight histogram and how many pairs other
//!    thresholds would match.
//!
//! Records are in their canonical order (see `TableData::canonicalize`) and random
//! pairs come from a fixed seed, so the same records give the same model and pairs.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, StringArray};
use lakecdp_core::unify::{DEFAULT_MODEL_THRESHOLD, DEFAULT_RANDOM_PAIRS};
use lakecdp_core::{ModelSpec, Normalization, SemanticType};
use lakecdp_lake::Lake;
use lakecdp_match::compare::canonical_date;
use lakecdp_match::model::{
    kind_for, probability, ComparisonKind, EmOptions, Model, Patterns, TrainingReport, NULL_LEVEL,
};
use lakecdp_match::random::SplitMix;
use serde::{Deserialize, Serialize};

use super::data::TableData;
use super::rules::{key_hasher, GiantBlock, KeyHasher, NormalizedCache, Values};
use crate::{Error, Result};

/// The probabilities whose pair counts a report lists.
pub const REPORTED_THRESHOLDS: [f64; 7] = [0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999];

/// How many candidate pairs the blocking keys of a model produce, per key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockingReport {
    /// The key's columns, joined by ` + `.
    pub key: String,
    /// The candidate pairs it adds (pairs an earlier key produced are not counted).
    pub comparisons: u64,
}

/// What one match model did.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReport {
    /// `Source.Table` of this side.
    pub table: String,
    /// `Source.Table` of the other side (the same table for a dedupe model).
    pub with: String,
    /// Candidate pairs per blocking key.
    pub blocking: Vec<BlockingReport>,
    /// Candidate pairs compared.
    pub candidates: u64,
    /// Pairs at or above the threshold.
    pub matched: u64,
    /// The threshold, as a match probability.
    pub threshold: f64,
    /// Whether the model was trained in this run (false: the stored model was used).
    pub trained: bool,
    /// Random pairs drawn to estimate `u` (when trained).
    pub random_pairs: u64,
    /// The training's report (of this run or of the run that trained the stored model).
    pub training: Option<TrainingReport>,
    /// (probability, candidate pairs at or above it), for [`REPORTED_THRESHOLDS`].
    pub thresholds: Vec<(f64, u64)>,
    /// (whole match weight, candidate pairs with that weight rounded down).
    pub histogram: Vec<(i32, u64)>,
    /// Blocking values left out for their size.
    pub giant: Vec<GiantBlock>,
    /// The model as it ran.
    pub model: Model,
}

/// A stored model: the declaration it was trained for, the parameters, the run that
/// trained it and the term frequencies it weighs with. Kept in
/// `_lakecdp/models/<name>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredModel {
    /// The declaration, threshold left out (a new threshold needs no new training).
    pub spec: serde_json::Value,
    /// The trained model.
    pub model: Model,
    /// The unification run (or preview) that trained it.
    pub trained_in: String,
    /// Per compared column, the counts of its values when it is term-frequency adjusted
    /// (none for a model stored before they were kept: the run then counts anew).
    #[serde(default, with = "shared_terms")]
    pub terms: Vec<Option<Arc<TermCounts>>>,
    /// A hash of the stored file it was read from (a model changed in any way is another
    /// model).
    #[serde(skip)]
    pub content: String,
}

/// A stored model's term counts, shared by every run and pair that weighs with them
/// (stored as plain counts).
mod shared_terms {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::TermCounts;

    pub fn serialize<S: Serializer>(
        terms: &[Option<Arc<TermCounts>>],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let plain: Vec<Option<&TermCounts>> = terms.iter().map(|t| t.as_deref()).collect();
        plain.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<Option<Arc<TermCounts>>>, D::Error> {
        let plain: Vec<Option<TermCounts>> = Vec::deserialize(d)?;
        Ok(plain.into_iter().map(|t| t.map(Arc::new)).collect())
    }
}

/// How many records held each (normalised) value of a compared column when the model
/// was trained, both sides together: the term frequencies a stored model weighs exact
/// agreements with, frozen with it so that a later refresh weighs an unchanged pair as
/// the training run did (and ids do not move as frequencies wander). A value unseen
/// then counts as held once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TermCounts {
    /// Values counted.
    pub total: u64,
    /// Records per value (stored in value order, so a model's file is the same for the
    /// same counts).
    #[serde(serialize_with = "in_value_order")]
    pub counts: HashMap<String, u32, TermHasher>,
}

/// The hasher of term counts: looked up once per exact agreement of every pair.
pub type TermHasher = foldhash::fast::RandomState;

fn in_value_order<S: serde::Serializer>(
    counts: &HashMap<String, u32, TermHasher>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    let sorted: std::collections::BTreeMap<&String, &u32> = counts.iter().collect();
    serde::Serialize::serialize(&sorted, serializer)
}

impl TermCounts {
    /// The counts of the values of `a` (and `b`, unless one table).
    pub fn of(a: &StringArray, b: &StringArray, same: bool) -> Self {
        let sides: &[&StringArray] = if same { &[a] } else { &[a, b] };
        let mut counts: HashMap<String, u32, TermHasher> = HashMap::default();
        let mut total = 0u64;
        for side in sides {
            for row in 0..side.len() {
                if let Some(v) = at(side, row) {
                    total += 1;
                    match counts.get_mut(v) {
                        Some(n) => *n = n.saturating_add(1),
                        None => {
                            counts.insert(v.to_string(), 1);
                        }
                    }
                }
            }
        }
        Self { counts, total }
    }

    /// The share of records holding `value` (an unseen value counts as held once).
    pub fn share(&self, value: &str) -> f64 {
        let n = self.counts.get(value).copied().unwrap_or(1);
        f64::from(n) / self.total.max(1) as f64
    }

    /// The share of `row`'s value of `side`, as pairs are weighed (0 for a missing
    /// value).
    fn share_at(&self, side: &StringArray, row: usize) -> f32 {
        at(side, row).map_or(0.0, |v| self.share(v) as f32)
    }
}

/// The file name of the model of `table` matched with `with` (equal for dedupe).
pub fn model_name(table: &TableData, with: &TableData) -> String {
    model_name_of(&table.name, &with.name)
}

/// The file name of the model of table `table` (`Source.Table`) matched with `with`
/// (equal for a dedupe model).
pub fn model_name_of(table: &str, with: &str) -> String {
    let clean = |s: &str| {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    };
    if table == with {
        format!("dedupe_{}", clean(table))
    } else {
        format!("match_{}__{}", clean(table), clean(with))
    }
}

/// The path of a stored model in the lake.
pub fn model_path(lake: &Lake, name: &str) -> String {
    lake.internal(&format!("models/{name}.json"))
}

/// The declaration as stored with a model: what training depends on.
fn fingerprint(spec: &ModelSpec, names: Option<&[String; 2]>) -> Result<serde_json::Value> {
    let mut spec = spec.clone();
    spec.threshold = None;
    let mut value = serde_json::to_value(&spec)
        .map_err(|e| Error::Internal(format!("model declaration: {e}")))?;
    // a model reading names crossed was trained so (a model without both names
    // compares as it always did, and keeps its fingerprint)
    if let (Some(object), Some(names)) = (value.as_object_mut(), names) {
        object.insert("comparisons".into(), COMPARISONS.into());
        object.insert("names_crossed".into(), serde_json::json!(names));
    }
    Ok(value)
}

/// The stored model `name`, if there is one and it was trained for `spec`, reading the
/// names `names` crossed (see [`crossed_names`]).
pub async fn load(
    lake: &Lake,
    name: &str,
    spec: &ModelSpec,
    names: Option<&[String; 2]>,
) -> Result<Option<StoredModel>> {
    let bytes = match lake.get(&model_path(lake, name)).await {
        Ok(bytes) => bytes,
        Err(lakecdp_lake::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // (read on its own thread: the term counts are large)
    let read = tokio::task::spawn_blocking(move || {
        let hash = super::incremental::stable_hash(&bytes);
        serde_json::from_slice::<StoredModel>(&bytes).map(|s| StoredModel { content: hash, ..s })
    });
    let read = read
        .await
        .map_err(|e| Error::Internal(format!("reading match model {name}: {e}")))?;
    let stored: StoredModel = match read {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(model = name, error = %e, "a stored match model does not read; it is trained anew");
            return Ok(None);
        }
    };
    if let Err(e) = stored.model.validate() {
        tracing::warn!(model = name, error = %e, "a stored match model is not valid; it is trained anew");
        return Ok(None);
    }
    Ok((stored.spec == fingerprint(spec, names)?).then_some(stored))
}

/// Store a trained model.
pub async fn save(
    lake: &Lake,
    name: &str,
    spec: &ModelSpec,
    model: &Model,
    terms: &[Option<Arc<TermCounts>>],
    names: Option<&[String; 2]>,
    run: &str,
) -> Result<()> {
    let stored = StoredModel {
        spec: fingerprint(spec, names)?,
        model: model.clone(),
        trained_in: run.to_string(),
        terms: terms.to_vec(),
        content: String::new(),
    };
    let text =
        serde_json::to_vec_pretty(&stored).map_err(|e| Error::Internal(format!("model: {e}")))?;
    lake.put(&model_path(lake, name), text).await?;
    Ok(())
}

/// The version of how pairs are compared, stored with every model that reads names
/// crossed: a model trained before they were is trained anew.
const COMPARISONS: u32 = 2;

/// A model's first- and last-name columns (indexes of its compared columns).
#[derive(Debug, Clone, Copy)]
struct NameColumns {
    first: usize,
    last: usize,
}

impl NameColumns {
    /// The places of `crossed` (see [`crossed_names`]) among `spec`'s compared columns.
    fn of(spec: &ModelSpec, crossed: Option<&[String; 2]>) -> Option<Self> {
        let position = |name: &str| spec.compare.iter().position(|c| c.column == name);
        let [first, last] = crossed?;
        Some(NameColumns {
            first: position(first)?,
            last: position(last)?,
        })
    }
}

/// Whether a pair's two names are read crossed: their crossed levels (`crossed`, the
/// first name of one record against the last name of the other, and the other way)
/// agree better than their straight ones (`straight`), one of them exactly and the
/// other at least at a similarity level (not "else", not missing). Exact counts 3, the
/// next levels 2 and 1, anything else 0.
fn read_crossed(straight: [u8; 2], crossed: [u8; 2]) -> bool {
    let points = |l: u8| match l {
        0 => 3u8,
        1 => 2,
        2 => 1,
        _ => 0,
    };
    let (best, other) = (crossed[0].min(crossed[1]), crossed[0].max(crossed[1]));
    best == 0
        && points(other) > 0
        && points(crossed[0]) + points(crossed[1]) > points(straight[0]) + points(straight[1])
}

/// How a pair's names were compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crossing {
    /// First name with first name, last with last.
    Straight,
    /// Crossed: this record's first name with the other's last name (in the first-name
    /// slot), and its last name with the other's first name.
    Crossed,
    /// Crossed, the records taken the other way round (one table: the record whose
    /// names sort first takes this side's place, so the pair weighs the same whichever
    /// record comes first).
    CrossedSwapped,
}

/// The label of a name level read crossed.
fn crossed_label(label: &'static str) -> &'static str {
    match label {
        "exact" => "exact, crossed",
        "jaro-winkler >= 0.92" => "jaro-winkler >= 0.92, crossed",
        "jaro-winkler >= 0.80" => "jaro-winkler >= 0.80, crossed",
        "else" => "else, crossed",
        other => other,
    }
}

/// The compared columns of a model run, and its name columns if it has both.
struct Columns {
    list: Vec<Compared>,
    names: Option<NameColumns>,
    /// One table (a dedupe model).
    same: bool,
}

impl Columns {
    fn len(&self) -> usize {
        self.list.len()
    }

    /// The comparison vector of `row` of this side and `o` of the other, into `vector`;
    /// how the names were compared.
    fn vector(&self, row: usize, o: usize, vector: &mut [u8]) -> Crossing {
        for (slot, c) in vector.iter_mut().zip(&self.list) {
            *slot = c.kind.level_of(at(&c.a, row), at(&c.b, o));
        }
        let Some(NameColumns { first, last }) = self.names else {
            return Crossing::Straight;
        };
        let (f, l) = (&self.list[first], &self.list[last]);
        let straight = [vector[first], vector[last]];
        // the cheap look first: neither crossed name can agree exactly
        let exact = |x: Option<&str>, y: Option<&str>| x.is_some() && x == y;
        let (af, al, bf, bl) = (at(&f.a, row), at(&l.a, row), at(&f.b, o), at(&l.b, o));
        if straight == [0, 0] || !(exact(af, bl) || exact(al, bf)) {
            return Crossing::Straight;
        }
        let crossed = [f.kind.level_of(af, bl), l.kind.level_of(al, bf)];
        if !read_crossed(straight, crossed) {
            return Crossing::Straight;
        }
        if self.same && (af, al) > (bf, bl) {
            vector[first] = crossed[1];
            vector[last] = crossed[0];
            return Crossing::CrossedSwapped;
        }
        vector[first] = crossed[0];
        vector[last] = crossed[1];
        Crossing::Crossed
    }

    /// The term frequency of column `k` of a pair at `level` (see [`Compared::tf_of`]);
    /// a crossed name takes the other value's share from the other name column (when
    /// that column is adjusted).
    fn tf(&self, k: usize, row: usize, o: usize, level: u8, crossing: Crossing) -> Option<f64> {
        let c = &self.list[k];
        let partner = match (self.names, crossing) {
            (_, Crossing::Straight) | (None, _) => None,
            (Some(NameColumns { first, last }), _) if k == first => Some(last),
            (Some(NameColumns { first, last }), _) if k == last => Some(first),
            _ => None,
        };
        let Some(p) = partner else {
            return c.tf_of(row, o, level);
        };
        if level != 0 {
            return None;
        }
        // the slot's own value, and the other record's value from the partner column
        // (one table, swapped: the records change places)
        let (mine_row, theirs_row) = if crossing == Crossing::CrossedSwapped {
            (o, row)
        } else {
            (row, o)
        };
        let mine = c.share_of(mine_row, true);
        let theirs = self.list[p].share_of(theirs_row, false);
        match (mine, theirs) {
            (Some(x), Some(y)) => Some(f64::from(x.max(y))),
            (Some(x), None) => Some(f64::from(x)),
            (None, _) => None,
        }
    }
}

/// A compared column, ready.
struct Compared {
    kind: ComparisonKind,
    a: Values,
    b: Values,
    /// The counts of its values, when it is term-frequency adjusted.
    terms: Option<Arc<TermCounts>>,
    /// Each record's share on each side, looked up once (a run scoring every candidate
    /// pair); without them, shares are looked up per exact agreement (an incremental
    /// run, which scores few pairs).
    shares: Option<(Vec<f32>, Vec<f32>)>,
}

impl Compared {
    /// The term frequency of an exact agreement of `row` of this side and `o` of the
    /// other (None for any other level, or a column not adjusted): the share of the
    /// value, the larger of the two sides' shares (which differ only by
    /// normalisation-equal spellings).
    fn tf_of(&self, row: usize, o: usize, level: u8) -> Option<f64> {
        if level != 0 {
            return None;
        }
        self.terms.as_ref()?;
        Some(f64::from(self.share(row, true).max(self.share(o, false))))
    }

    /// The share of `row`'s value on this side (`this`) or the other: 0 for a missing
    /// value; `None` for a column not adjusted.
    fn share_of(&self, row: usize, this: bool) -> Option<f32> {
        let terms = self.terms.as_ref()?;
        Some(match &self.shares {
            Some((a, b)) => {
                if this {
                    a[row]
                } else {
                    b[row]
                }
            }
            None => terms.share_at(if this { &self.a } else { &self.b }, row),
        })
    }

    /// [`Compared::share_of`] for a column known to be adjusted.
    fn share(&self, row: usize, this: bool) -> f32 {
        self.share_of(row, this).unwrap_or(0.0)
    }
}

/// The value of `row`, unless it is null.
fn at(values: &StringArray, row: usize) -> Option<&str> {
    (!values.is_null(row)).then(|| values.value(row))
}

/// The semantic type of `column`: declared on `a`, else on `b`, else plain text.
fn semantic_of(a: &TableData, b: &TableData, column: &str, other: &str) -> SemanticType {
    semantic_in(&a.spec, &b.spec, column, other)
}

/// Refuse a model declaration that cannot run, naming the table and what to fix.
pub fn validate(table: &str, spec: &ModelSpec, dedupe: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let what = if dedupe {
        format!("`{table}` dedupe_model")
    } else {
        format!(
            "`{table}` match_model with `{}`",
            spec.with.as_deref().unwrap_or("?")
        )
    };
    if dedupe && spec.with.is_some() {
        problems.push(format!(
            "{what}: `with` names the other table of a match model; a dedupe model compares the table with itself"
        ));
    }
    if !dedupe && spec.with.is_none() {
        problems.push(format!(
            "`{table}` match_model: name the earlier table with `with = \"Source.Table\"`"
        ));
    }
    if spec.compare.is_empty() {
        problems.push(format!("{what}: `compare` lists no column"));
    }
    if spec.block.is_empty() || spec.block.iter().any(Vec::is_empty) {
        problems.push(format!(
            "{what}: `block` needs at least one key, each a list of columns, e.g. block = [[\"LastName\"], [\"Email\"]]"
        ));
    }
    if let Some(t) = spec.threshold {
        if !(t > 0.0 && t < 1.0) {
            problems.push(format!(
                "{what}: `threshold` is a match probability between 0 and 1 (exclusive), e.g. 0.95; found {t}"
            ));
        }
    }
    let mut seen = HashSet::new();
    for c in &spec.compare {
        if !seen.insert(c.column.as_str()) {
            problems.push(format!("{what}: column `{}` is compared twice", c.column));
        }
        if dedupe && c.with.is_some() {
            problems.push(format!(
                "{what}: compare `{}` has `with`, which only match models take",
                c.column
            ));
        }
        if let Some(levels) = &c.levels {
            if parse_kind(levels).is_none() {
                problems.push(format!(
                    "{what}: compare `{}`: levels `{levels}` is not one of {}",
                    c.column,
                    kind_names().join(", ")
                ));
            }
        }
        if c.fixed && c.m.is_none() && c.u.is_none() {
            problems.push(format!(
                "{what}: compare `{}` is `fixed` but gives neither `m` nor `u`",
                c.column
            ));
        }
    }
    problems
}

fn kind_names() -> Vec<String> {
    ComparisonKind::ALL
        .iter()
        .filter_map(|k| serde_json::to_value(k).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn parse_kind(name: &str) -> Option<ComparisonKind> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

/// The first- and last-name columns a model reads crossed (see the module
/// documentation): its one compared column of semantic type `Person.FirstName` and its
/// one of `Person.LastName`, both compared as names; `None` unless it has exactly one
/// of each.
pub fn crossed_names(
    spec: &ModelSpec,
    table: &lakecdp_core::UnifyTableSpec,
    other: &lakecdp_core::UnifyTableSpec,
) -> Option<[String; 2]> {
    let (mut firsts, mut lasts) = (Vec::new(), Vec::new());
    for c in &spec.compare {
        let counterpart = c.with.as_deref().unwrap_or(&c.column);
        let semantic = semantic_in(table, other, &c.column, counterpart);
        let kind = match &c.levels {
            Some(name) => parse_kind(name),
            None => Some(kind_for(&semantic)),
        };
        if kind != Some(ComparisonKind::Name) {
            continue;
        }
        match semantic {
            SemanticType::FirstName => firsts.push(c.column.clone()),
            SemanticType::LastName => lasts.push(c.column.clone()),
            _ => {}
        }
    }
    match (firsts.as_slice(), lasts.as_slice()) {
        ([first], [last]) => Some([first.clone(), last.clone()]),
        _ => None,
    }
}

/// The model of `spec` before training: its columns with their levels, seeded with
/// the declared parameters.
fn untrained(spec: &ModelSpec, a: &TableData, b: &TableData) -> Result<Model> {
    let mut columns = Vec::with_capacity(spec.compare.len());
    for c in &spec.compare {
        let other = c.with.as_deref().unwrap_or(&c.column);
        let semantic = semantic_of(a, b, &c.column, other);
        let kind = match &c.levels {
            Some(name) => parse_kind(name).ok_or_else(|| {
                Error::Source(format!(
                    "`{}` model: compare `{}`: levels `{name}` is not one of {}",
                    a.name,
                    c.column,
                    kind_names().join(", ")
                ))
            })?,
            None => kind_for(&semantic),
        };
        let tf = c
            .term_frequency
            .unwrap_or(kind == ComparisonKind::Name && semantic != SemanticType::Address);
        columns.push((c.column.clone(), kind, tf));
    }
    let mut model = Model::new(columns);
    let bad = |e: lakecdp_match::model::ModelError| {
        Error::Source(format!("`{}` model declaration: {e}", a.name))
    };
    for c in &spec.compare {
        let column = model
            .column_mut(&c.column)
            .ok_or_else(|| Error::Internal(format!("model column {}", c.column)))?;
        if let Some(m) = &c.m {
            column.seed_m(m, c.fixed).map_err(bad)?;
        }
        if let Some(u) = &c.u {
            column.seed_u(u, c.fixed).map_err(bad)?;
        }
    }
    if let Some(p) = spec.prior {
        model.seed_prior(p, spec.fixed_prior).map_err(bad)?;
    }
    model
        .set_threshold(spec.threshold.unwrap_or(DEFAULT_MODEL_THRESHOLD))
        .map_err(bad)?;
    Ok(model)
}

/// The hash of one record's key from its columns' normalised values (each flagged when
/// it holds dates), its top 48 bits ([`super::rules::KEY_BITS`]); 0 when a value is
/// missing. Dates are keyed by the day they name,
/// whatever their layout. Hashed with the blocking keys' fixed seed, so that the block
/// index an incremental run keeps holds the hashes a later run computes.
pub(super) fn key_hash<'v>(
    hasher: &KeyHasher,
    values: impl IntoIterator<Item = (Option<&'v str>, bool)>,
) -> u64 {
    let mut state = hasher.build_hasher();
    for (value, date) in values {
        match value {
            Some(text) if date => match canonical_date(text) {
                Some(day) => day.hash(&mut state),
                None => text.hash(&mut state),
            },
            Some(text) => text.hash(&mut state),
            None => return 0,
        }
    }
    // (the top bits, as every blocking key's; 0 is no key)
    (state.finish() & super::rules::KEY_BITS).max(1 << 16)
}

/// The hash of each record's key (see [`key_hash`]).
fn key_hashes(values: &[(Values, bool)], hasher: &KeyHasher) -> Vec<u64> {
    let n = values.first().map_or(0, |v| v.0.len());
    (0..n)
        .map(|row| key_hash(hasher, values.iter().map(|(v, date)| (at(v, row), *date))))
        .collect()
}

/// One blocking key, hashed on both sides.
pub struct Key {
    name: String,
    /// Each record's hash on this side (0: no key).
    pub a: Vec<u64>,
    /// On the other side (this side's again for one table).
    pub b: Vec<u64>,
    /// The hashes left out for their size.
    pub giant: hashbrown::HashSet<u64>,
}

/// One column of a model's blocking key: this side's column, the other side's, how
/// both are normalised, and whether they hold dates.
pub(super) struct KeyColumn {
    pub column: String,
    pub other: String,
    pub steps: Vec<Normalization>,
    pub date: bool,
}

/// A model's blocking keys as declared: each one's name (its columns joined by ` + `)
/// and columns, normalised as the model compares them (or by their semantic type when
/// it does not compare them).
pub(super) fn key_columns(
    spec: &ModelSpec,
    a: &TableData,
    b: &TableData,
) -> Vec<(String, Vec<KeyColumn>)> {
    spec.block
        .iter()
        .map(|columns| {
            let list = columns
                .iter()
                .map(|column| {
                    let other = spec.counterpart(column);
                    let semantic = semantic_of(a, b, column, other);
                    let steps = spec
                        .compare
                        .iter()
                        .find(|c| c.column == *column)
                        .map(|c| compare_steps(c, &a.spec, &b.spec))
                        .unwrap_or_else(|| semantic.default_normalizations());
                    KeyColumn {
                        column: column.clone(),
                        other: other.to_string(),
                        steps,
                        date: matches!(semantic, SemanticType::BirthDate | SemanticType::Date),
                    }
                })
                .collect();
            (columns.join(" + "), list)
        })
        .collect()
}

/// How a compared column's values are normalised: as declared, else by its semantic
/// type.
fn compare_steps(
    c: &lakecdp_core::CompareSpec,
    a: &lakecdp_core::UnifyTableSpec,
    b: &lakecdp_core::UnifyTableSpec,
) -> Vec<Normalization> {
    let other = c.with.as_deref().unwrap_or(&c.column);
    c.normalize
        .clone()
        .unwrap_or_else(|| semantic_in(a, b, &c.column, other).default_normalizations())
}

impl Key {
    /// Whether this key pairs `row` of this side with `o` of the other.
    fn pairs(&self, row: usize, o: usize) -> bool {
        let h = self.a[row];
        h != 0 && h == self.b[o] && !self.giant.contains(&h)
    }
}

/// A blocking key's name and its columns' normalised values on each side (each flagged
/// when it holds dates).
type KeyColumns = (String, Vec<(Values, bool)>, Vec<(Values, bool)>);

/// One blocking key: both sides hashed, and the values shared by more records of the
/// other side than the guard allows left out (and reported).
fn build_key(
    (name, va, vb): &KeyColumns,
    same: bool,
    active_b: &(dyn Fn(usize) -> bool + Sync),
    max_block: usize,
) -> (Key, Vec<GiantBlock>) {
    let hasher = key_hasher();
    let ha = key_hashes(va, &hasher);
    let hb = if same {
        ha.clone()
    } else {
        key_hashes(vb, &hasher)
    };
    let mut counts: hashbrown::HashMap<u64, (u32, u32)> = hashbrown::HashMap::new();
    for (row, h) in hb.iter().enumerate() {
        if *h != 0 && active_b(row) {
            counts.entry(*h).or_insert((0, row as u32)).0 += 1;
        }
    }
    let mut giant = hashbrown::HashSet::new();
    let mut giant_blocks = Vec::new();
    for (h, (n, row)) in counts {
        if n as usize > max_block {
            giant.insert(h);
            let value = vb
                .iter()
                .filter_map(|v| at(&v.0, row as usize))
                .collect::<Vec<_>>()
                .join(" + ");
            giant_blocks.push(GiantBlock {
                rule: format!("model ({name})"),
                value,
                records: n as usize,
            });
        }
    }
    let key = Key {
        name: name.clone(),
        a: ha,
        b: hb,
        giant,
    };
    (key, giant_blocks)
}

/// The candidate pairs of one slice of records, their comparison vectors end to end,
/// and how each compared its names.
type SliceCandidates = (Vec<(u32, u32)>, Vec<u8>, Vec<Crossing>);

/// Everything a model run needs.
pub struct ModelRun<'a> {
    /// The declaration.
    pub spec: &'a ModelSpec,
    /// This side.
    pub a: &'a TableData,
    /// The other side (`a` again for a dedupe model).
    pub b: &'a TableData,
    /// Whether `a` and `b` are one table.
    pub same: bool,
    /// Records of this side that take part.
    pub active_a: &'a (dyn Fn(usize) -> bool + Sync),
    /// Records of the other side that take part.
    pub active_b: &'a (dyn Fn(usize) -> bool + Sync),
    /// The giant-block guard.
    pub max_block: usize,
    /// A stored model trained for this declaration, unless retraining.
    pub stored: Option<StoredModel>,
    /// Whether to hand the keys' hashes back (for the block index of a run that keeps
    /// state).
    pub keep_keys: bool,
}

/// What a model run found: its matched pairs `(a, b, probability)` and its report.
pub struct ModelOutcome {
    /// Pairs at or above the threshold.
    pub pairs: Vec<(u32, u32, f32)>,
    /// What it did.
    pub report: ModelReport,
    /// The term counts it weighed with (to store with a model it trained).
    pub terms: Vec<Option<Arc<TermCounts>>>,
    /// The names it read crossed (to store with a model it trained).
    pub crossed: Option<[String; 2]>,
    /// Its blocking keys' hashes, when asked for ([`ModelRun::keep_keys`]).
    pub keys: Vec<Key>,
}

/// What a model run computes before its candidates: the untrained model, the compared
/// columns (normalised, with term-frequency shares), the term counts, the blocking keys
/// of both sides with their giant values, and the giant blocks to report.
struct Parts {
    model: Model,
    /// The names it reads crossed.
    crossed: Option<[String; 2]>,
    compared: Columns,
    terms: Vec<Option<Arc<TermCounts>>>,
    keys: Vec<Key>,
    giant_blocks: Vec<GiantBlock>,
}

#[allow(clippy::too_many_arguments)]
fn parts(
    spec: &ModelSpec,
    (a, b): (&TableData, &TableData),
    same: bool,
    active_b: &(dyn Fn(usize) -> bool + Sync),
    max_block: usize,
    stored: Option<&StoredModel>,
    every_share: bool,
    cache: &mut NormalizedCache,
) -> Result<Parts> {
    let model = untrained(spec, a, b)?;
    // 1. compared columns
    let mut compared = Vec::with_capacity(spec.compare.len());
    let mut terms: Vec<Option<Arc<TermCounts>>> = Vec::with_capacity(spec.compare.len());
    let crossed = crossed_names(spec, &a.spec, &b.spec);
    for (c, column) in spec.compare.iter().zip(&model.columns) {
        let other = c.with.as_deref().unwrap_or(&c.column);
        let steps = compare_steps(c, &a.spec, &b.spec);
        let va = cache.get(a, &c.column, &steps)?;
        let vb = if same {
            va.clone()
        } else {
            cache.get(b, other, &steps)?
        };
        let counts = if column.term_frequency {
            // a stored model's counts, else this run's
            let frozen = stored
                .as_ref()
                .and_then(|s| s.terms.get(compared.len()).cloned().flatten());
            Some(frozen.unwrap_or_else(|| Arc::new(TermCounts::of(&va, &vb, same))))
        } else {
            None
        };
        terms.push(counts.clone());
        let shares = counts.as_ref().filter(|_| every_share).map(|t| {
            let of = |side: &StringArray| -> Vec<f32> {
                (0..side.len()).map(|row| t.share_at(side, row)).collect()
            };
            let x = of(&va);
            let y = if same { x.clone() } else { of(&vb) };
            (x, y)
        });
        compared.push(Compared {
            kind: column.kind,
            a: va,
            b: vb,
            terms: counts,
            shares,
        });
    }
    // 2. blocking keys: their columns normalised here (the cache is this thread's),
    // then hashed and counted on every core, a key per thread at a time
    let mut columns_of: Vec<KeyColumns> = Vec::with_capacity(spec.block.len());
    for (name, columns) in key_columns(spec, a, b) {
        let mut va = Vec::with_capacity(columns.len());
        let mut vb = Vec::with_capacity(columns.len());
        for k in columns {
            let values = cache.get(a, &k.column, &k.steps)?;
            vb.push(if same {
                (values.clone(), k.date)
            } else {
                (cache.get(b, &k.other, &k.steps)?, k.date)
            });
            va.push((values, k.date));
        }
        columns_of.push((name, va, vb));
    }
    let built = super::blocks::in_parallel(columns_of.iter().collect(), &|columns| {
        build_key(columns, same, active_b, max_block)
    });
    let mut keys: Vec<Key> = Vec::with_capacity(built.len());
    let mut giant_blocks = Vec::new();
    for (key, giant) in built {
        keys.push(key);
        giant_blocks.extend(giant);
    }
    giant_blocks.sort_by(|x, y| y.records.cmp(&x.records).then(x.value.cmp(&y.value)));
    // names are read crossed when the model compares one first and one last name
    let names = NameColumns::of(spec, crossed.as_ref());
    Ok(Parts {
        model,
        crossed,
        compared: Columns {
            list: compared,
            names,
            same,
        },
        terms,
        keys,
        giant_blocks,
    })
}

/// Run a match model: candidates, training when needed, scoring.
pub fn run(run: ModelRun<'_>, cache: &mut NormalizedCache) -> Result<ModelOutcome> {
    let ModelRun {
        spec,
        a,
        b,
        same,
        active_a,
        active_b,
        max_block,
        stored,
        keep_keys,
    } = run;
    let Parts {
        mut model,
        crossed,
        compared,
        terms,
        keys,
        giant_blocks,
    } = parts(
        spec,
        (a, b),
        same,
        active_b,
        max_block,
        stored.as_ref(),
        true,
        cache,
    )?;

    // 3. candidate pairs and their comparison vectors, key by key
    let width = compared.len();
    let n_a = a.len();
    let n_b = b.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = n_a
        .div_ceil(threads.min(n_a.max(1).div_ceil(4096)).max(1))
        .max(1);
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    let mut levels: Vec<u8> = Vec::new();
    let mut crossings: Vec<Crossing> = Vec::new();
    let mut blocking = Vec::with_capacity(keys.len());
    for k in 0..keys.len() {
        let key = &keys[k];
        let earlier = &keys[..k];
        // the other side indexed by key hash
        let mut entries: Vec<(u64, u32)> = (0..n_b)
            .filter(|&o| key.b[o] != 0 && active_b(o) && !key.giant.contains(&key.b[o]))
            .map(|o| (key.b[o], o as u32))
            .collect();
        entries.sort_unstable();
        let mut index: hashbrown::HashMap<u64, (u32, u32)> = hashbrown::HashMap::new();
        let mut i = 0;
        while i < entries.len() {
            let mut j = i + 1;
            while j < entries.len() && entries[j].0 == entries[i].0 {
                j += 1;
            }
            index.insert(entries[i].0, (i as u32, (j - i) as u32));
            i = j;
        }
        let rows: Vec<u32> = entries.iter().map(|e| e.1).collect();
        drop(entries);
        let (index, rows, compared) = (&index, &rows, &compared);
        let found: Vec<SliceCandidates> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..n_a)
                .step_by(chunk)
                .map(|start| {
                    scope.spawn(move || {
                        let mut pairs = Vec::new();
                        let mut levels = Vec::new();
                        let mut crossings = Vec::new();
                        let mut vector = vec![0u8; width];
                        for row in start..(start + chunk).min(n_a) {
                            let h = key.a[row];
                            if h == 0 || !active_a(row) {
                                continue;
                            }
                            let Some(&(from, len)) = index.get(&h) else {
                                continue;
                            };
                            for &o in &rows[from as usize..(from + len) as usize] {
                                let o = o as usize;
                                if same && o <= row {
                                    continue;
                                }
                                // an earlier key produced this pair already
                                if earlier.iter().any(|e| e.pairs(row, o)) {
                                    continue;
                                }
                                pairs.push((row as u32, o as u32));
                                crossings.push(compared.vector(row, o, &mut vector));
                                levels.extend_from_slice(&vector);
                            }
                        }
                        (pairs, levels, crossings)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        let mut added = 0u64;
        for (p, l, c) in found {
            added += p.len() as u64;
            pairs.extend(p);
            levels.extend(l);
            crossings.extend(c);
        }
        blocking.push(BlockingReport {
            key: key.name.clone(),
            comparisons: added,
        });
    }

    // 4. training, unless a stored model fits
    let mut random_pairs = 0;
    let trained = stored.is_none();
    match stored.map(|s| s.model) {
        Some(mut m) => {
            m.set_threshold(model.threshold)
                .map_err(|e| Error::Internal(format!("threshold: {e}")))?;
            model = m;
        }
        None => {
            let started = Instant::now();
            let pool_a: Vec<u32> = (0..n_a)
                .filter(|&r| active_a(r))
                .map(|r| r as u32)
                .collect();
            let pool_b: Vec<u32> = (0..n_b)
                .filter(|&r| active_b(r))
                .map(|r| r as u32)
                .collect();
            // random pairs only when some u is left to estimate, and never more than
            // there are pairs
            let possible = if same {
                pool_a.len().saturating_mul(pool_a.len().saturating_sub(1)) / 2
            } else {
                pool_a.len().saturating_mul(pool_b.len())
            };
            let wanted = if model.columns.iter().all(|c| c.fixed_u) {
                0
            } else {
                spec.random_pairs
                    .unwrap_or(DEFAULT_RANDOM_PAIRS)
                    .min(possible)
            };
            let mut random = Patterns::new();
            let enough = if same {
                pool_a.len() >= 2
            } else {
                !pool_b.is_empty()
            };
            if !pool_a.is_empty() && enough {
                let mut rng = SplitMix(0x5EED_0FCD);
                let mut vector = vec![0u8; width];
                let mut drawn = 0usize;
                let mut tries = 0usize;
                while drawn < wanted && tries < wanted.saturating_mul(4) {
                    tries += 1;
                    let x = pool_a[rng.below(pool_a.len())] as usize;
                    let y = pool_b[rng.below(pool_b.len())] as usize;
                    if same && x == y {
                        continue;
                    }
                    compared.vector(x, y, &mut vector);
                    random.add(&vector);
                    drawn += 1;
                }
            }
            let bad = |e: lakecdp_match::model::ModelError| {
                Error::Source(format!("`{}` model training: {e}", a.name))
            };
            random_pairs = model.estimate_u(&random).map_err(bad)?;
            // Training sessions, one per blocking key, as in Splink: a key's session
            // holds every candidate pair the key produces (also those an earlier key
            // produced first, so no session is biased by the keys before it), with the
            // key's own columns left out: they agree by construction and would tell
            // nothing about matches.
            let masks: Vec<Vec<bool>> = spec
                .block
                .iter()
                .map(|columns| {
                    spec.compare
                        .iter()
                        .map(|c| columns.contains(&c.column))
                        .collect()
                })
                .collect();
            let mut sessions = Patterns::new();
            let mut masked = vec![0u8; width];
            for (i, &(row, o)) in pairs.iter().enumerate() {
                let vector = &levels[i * width..(i + 1) * width];
                for (key, mask) in keys.iter().zip(&masks) {
                    if !key.pairs(row as usize, o as usize) {
                        continue;
                    }
                    for (slot, (level, hide)) in masked.iter_mut().zip(vector.iter().zip(mask)) {
                        *slot = if *hide { NULL_LEVEL } else { *level };
                    }
                    sessions.add(&masked);
                }
            }
            let (declared_prior, fixed_prior) = (model.prior, model.fixed_prior);
            model.fixed_prior = false;
            model.prior = 0.5;
            // A third class of related non-matches (households: one family name,
            // address and phone, other given names and birth dates) keeps them from
            // being taken for matches; it needs more iterations to settle.
            // Unless declared, the class is kept when it explains the pairs better by
            // more than its extra parameters cost (the Bayesian information criterion).
            let two = EmOptions::default();
            let three = EmOptions {
                related: true,
                max_iterations: 400,
                ..EmOptions::default()
            };
            let mut report = match spec.related {
                Some(false) => model.train(&sessions, &two).map_err(bad)?,
                Some(true) => model.train(&sessions, &three).map_err(bad)?,
                None => {
                    let mut plain = model.clone();
                    let plain_report = plain.train(&sessions, &two).map_err(bad)?;
                    let related_report = model.train(&sessions, &three).map_err(bad)?;
                    let extra: usize =
                        1 + model.columns.iter().map(|c| c.levels() - 1).sum::<usize>();
                    let cost = 0.5 * extra as f64 * (sessions.total().max(1) as f64).ln();
                    let gain = related_report.log_likelihood - plain_report.log_likelihood;
                    if gain > cost && !related_report.swapped {
                        related_report
                    } else {
                        model = plain;
                        plain_report
                    }
                }
            };
            // The sessions count a pair once per key that produces it, so the shares
            // of matches and related pairs are estimated again on the candidates as
            // they are, then made shares of all pairs (what `u` of random pairs
            // is scored against).
            let mut candidates = Patterns::new();
            for vector in levels.chunks(width.max(1)) {
                candidates.add(vector);
            }
            candidate_priors(&mut model, &candidates);
            let all = possible.max(1) as f64;
            model.scale_priors(pairs.len() as f64 / all);
            model.fixed_prior = fixed_prior;
            if fixed_prior {
                model.prior = declared_prior;
                // the related pairs' share leaves room for the declared one
                if let Some(related) = &mut model.related {
                    let room = 1.0 - lakecdp_match::model::PARAMETER_FLOOR - declared_prior;
                    related.prior = related.prior.min(room).max(f64::MIN_POSITIVE);
                }
            }
            report.seconds = started.elapsed().as_secs_f64();
            if report.swapped {
                return Err(Error::Source(format!(
                    "the match model of `{}` with `{}` trained to the mirror solution (it takes non-matches for matches: {} agree more often among non-matches). Block on columns that true duplicates share, or seed `m` of the strongest columns (for example m = [0.9, 0.05, 0.03, 0.02]) in the project file",
                    a.name,
                    b.name,
                    report.inverted_columns.join(", ")
                )));
            }
            model.training = Some(report);
        }
    }

    // the keys' hashes served candidates and training sessions, unless a run keeping
    // state indexes them
    let keys = if keep_keys { keys } else { Vec::new() };

    // 5. scoring
    let scorer = model.scorer();
    let threshold = scorer.threshold_weight();
    let mut matched = Vec::new();
    let mut histogram: std::collections::BTreeMap<i32, u64> = std::collections::BTreeMap::new();
    let cuts: Vec<f64> = REPORTED_THRESHOLDS
        .iter()
        .map(|p| lakecdp_match::model::weight_for(*p))
        .collect();
    let mut above = vec![0u64; cuts.len()];
    let mut tf = vec![None; width];
    for (i, &(row, o)) in pairs.iter().enumerate() {
        let vector = &levels[i * width..(i + 1) * width];
        for (k, slot) in tf.iter_mut().enumerate() {
            *slot = compared.tf(k, row as usize, o as usize, vector[k], crossings[i]);
        }
        let w = scorer.weight(vector, &tf);
        *histogram.entry(w.floor() as i32).or_insert(0) += 1;
        for (n, cut) in above.iter_mut().zip(&cuts) {
            if w >= *cut {
                *n += 1;
            }
        }
        if w >= threshold {
            matched.push((row, o, probability(w) as f32));
        }
    }
    let report = ModelReport {
        table: a.name.clone(),
        with: b.name.clone(),
        blocking,
        candidates: pairs.len() as u64,
        matched: matched.len() as u64,
        threshold: model.threshold,
        trained,
        random_pairs,
        training: model.training.clone(),
        thresholds: REPORTED_THRESHOLDS.iter().copied().zip(above).collect(),
        histogram: histogram.into_iter().collect(),
        giant: giant_blocks,
        model,
    };
    Ok(ModelOutcome {
        pairs: matched,
        report,
        terms,
        crossed,
        keys,
    })
}

/// A record's values by column (as text, before normalisation).
pub type RawValues<'a> = dyn Fn(&str) -> Option<String> + Sync + 'a;

/// The semantic type of `column`: declared on `table`, else on `other`, else plain
/// text.
fn semantic_in(
    table: &lakecdp_core::UnifyTableSpec,
    other: &lakecdp_core::UnifyTableSpec,
    column: &str,
    counterpart: &str,
) -> SemanticType {
    table
        .columns
        .iter()
        .find(|c| c.name == column)
        .or_else(|| other.columns.iter().find(|c| c.name == counterpart))
        .map(|c| c.semantic.clone())
        .unwrap_or(SemanticType::Custom(String::new()))
}

/// What explaining the pairs of one profile keeps between pairs: the alias overrides
/// (normalising as the run normalises) and, for a model stored before its term counts
/// were kept, the counts taken from the tables.
pub struct Explaining {
    cache: super::rules::NormalizedCache,
    counts: HashMap<(String, String, String, String), std::sync::Arc<TermCounts>>,
}

impl Explaining {
    /// Nothing counted yet, for the unification `unification`.
    pub fn new(unification: &lakecdp_core::UnificationSpec) -> Self {
        Self {
            cache: super::rules::NormalizedCache::with_aliases(
                unification.overrides.aliases.clone(),
            ),
            counts: HashMap::new(),
        }
    }

    /// The counts of `column` of `table` and `counterpart` of `other` (one side for one
    /// table), as the run counts them: read from the tables once per explanation.
    #[allow(clippy::too_many_arguments)]
    async fn counted(
        &mut self,
        lake: &Lake,
        sources: &[lakecdp_core::SourceSpec],
        table: &lakecdp_core::UnifyTableSpec,
        other: &lakecdp_core::UnifyTableSpec,
        column: &str,
        counterpart: &str,
        steps: &[Normalization],
    ) -> Result<std::sync::Arc<TermCounts>> {
        let same = table.qualified() == other.qualified();
        let key = (
            table.qualified(),
            other.qualified(),
            column.to_string(),
            format!("{counterpart}{steps:?}"),
        );
        if let Some(c) = self.counts.get(&key) {
            return Ok(std::sync::Arc::clone(c));
        }
        let a = super::data::load_table(lake, table, sources, &[column.to_string()]).await?;
        let va = self.cache.get(&a, column, steps)?;
        let vb = if same {
            va.clone()
        } else {
            let b =
                super::data::load_table(lake, other, sources, &[counterpart.to_string()]).await?;
            self.cache.get(&b, counterpart, steps)?
        };
        // the tables' values are counted; they need not stay
        self.cache.forget(&table.qualified(), column);
        self.cache.forget(&other.qualified(), counterpart);
        let counts = std::sync::Arc::new(TermCounts::of(&va, &vb, same));
        self.counts.insert(key, std::sync::Arc::clone(&counts));
        Ok(counts)
    }
}

/// Why two records got their weight under a stored model: every compared column's
/// level and weight, a waterfall whose rows sum to the pair's weight. The records are
/// given by their values (`raw_a` of `table`, `raw_b` of `other`; the same table for a
/// dedupe model), normalised as the unification normalises them, and an exact agreement
/// on a term-frequency adjusted column weighs with the share of records holding the
/// value (the larger of the two sides', as in the run): from the counts stored with
/// the model, or, for a model stored before they were kept, counted over the tables.
#[allow(clippy::too_many_arguments)]
pub async fn explain_pair(
    lake: &Lake,
    sources: &[lakecdp_core::SourceSpec],
    explaining: &mut Explaining,
    spec: &ModelSpec,
    stored: &StoredModel,
    table: &lakecdp_core::UnifyTableSpec,
    other: &lakecdp_core::UnifyTableSpec,
    (raw_a, raw_b): (&RawValues<'_>, &RawValues<'_>),
) -> Result<Vec<lakecdp_match::model::Contribution>> {
    let model = &stored.model;
    // the pair as a run of one record a side: the same comparison vector and term
    // shares as the run's (`Columns`), crossed names included
    let mut list = Vec::with_capacity(spec.compare.len());
    for (k, (c, column)) in spec.compare.iter().zip(&model.columns).enumerate() {
        let counterpart = c.with.as_deref().unwrap_or(&c.column);
        let steps = compare_steps(c, table, other);
        let x = explaining.cache.one(
            &table.qualified(),
            &c.column,
            &steps,
            raw_a(&c.column).as_deref(),
        );
        let y = explaining.cache.one(
            &other.qualified(),
            counterpart,
            &steps,
            raw_b(counterpart).as_deref(),
        );
        let terms = if column.term_frequency {
            Some(
                explain_counts(
                    lake,
                    sources,
                    explaining,
                    (spec, stored),
                    (table, other),
                    k,
                    &steps,
                )
                .await?,
            )
        } else {
            None
        };
        list.push(Compared {
            kind: column.kind,
            a: Arc::new(StringArray::from(vec![x])),
            b: Arc::new(StringArray::from(vec![y])),
            terms,
            shares: None,
        });
    }
    let columns = Columns {
        list,
        names: NameColumns::of(spec, crossed_names(spec, table, other).as_ref()),
        same: table.qualified() == other.qualified(),
    };
    let mut levels = vec![0u8; columns.len()];
    let crossing = columns.vector(0, 0, &mut levels);
    let shares: Vec<Option<f64>> = (0..columns.len())
        .map(|k| columns.tf(k, 0, 0, levels[k], crossing))
        .collect();
    let mut rows = model.explain(&levels, &shares);
    // a name read crossed says so
    if let (Some(NameColumns { first, last }), true) =
        (columns.names, crossing != Crossing::Straight)
    {
        for i in [first, last] {
            let name = &spec.compare[i].column;
            if let Some(row) = rows.iter_mut().find(|r| r.column.as_ref() == Some(name)) {
                row.level_label = crossed_label(row.level_label);
            }
        }
    }
    Ok(rows)
}

/// The term counts of compared column `k` for `explain_pair`: stored with the model, or
/// for a model stored before they were kept, counted over the tables.
async fn explain_counts(
    lake: &Lake,
    sources: &[lakecdp_core::SourceSpec],
    explaining: &mut Explaining,
    (spec, stored): (&ModelSpec, &StoredModel),
    (table, other): (&lakecdp_core::UnifyTableSpec, &lakecdp_core::UnifyTableSpec),
    k: usize,
    steps: &[Normalization],
) -> Result<Arc<TermCounts>> {
    if let Some(frozen) = stored.terms.get(k).cloned().flatten() {
        return Ok(frozen);
    }
    let c = &spec.compare[k];
    let counterpart = c.with.as_deref().unwrap_or(&c.column);
    explaining
        .counted(lake, sources, table, other, &c.column, counterpart, steps)
        .await
}

/// Set the model's priors (matches, and related pairs when it has that class) to their
/// shares among `candidates` under its other parameters: a few rounds of expectation
/// with every level distribution held.
fn candidate_priors(model: &mut Model, candidates: &Patterns) {
    let ln = |p: &[f64], level: u8| -> f64 { p.get(usize::from(level)).map_or(0.0, |x| x.ln()) };
    let vectors: Vec<(Vec<f64>, f64)> = candidates
        .iter()
        .map(|(levels, count)| {
            let mut m = 0.0;
            let mut u = 0.0;
            let mut r = 0.0;
            for (k, (c, &level)) in model.columns.iter().zip(levels).enumerate() {
                if level == NULL_LEVEL {
                    continue;
                }
                m += ln(&c.m, level);
                u += ln(&c.u, level);
                if let Some(rel) = &model.related {
                    r += rel.r.get(k).map_or(0.0, |p| ln(p, level));
                }
            }
            (vec![m, r, u], count as f64)
        })
        .collect();
    let total: f64 = vectors.iter().map(|v| v.1).sum();
    if total == 0.0 {
        return;
    }
    let has_related = model.related.is_some();
    let mut lm = model.prior.clamp(1e-6, 0.98);
    let mut lr = model
        .related
        .as_ref()
        .map_or(0.0, |r| r.prior.clamp(1e-6, 0.98 - lm));
    for _ in 0..100 {
        let (mut sm, mut sr) = (0.0, 0.0);
        for (ll, count) in &vectors {
            let a = lm.ln() + ll[0];
            let b = if has_related {
                lr.ln() + ll[1]
            } else {
                f64::NEG_INFINITY
            };
            let c = (1.0 - lm - lr).max(1e-12).ln() + ll[2];
            let top = a.max(b).max(c);
            let (ea, eb, ec) = ((a - top).exp(), (b - top).exp(), (c - top).exp());
            let sum = ea + eb + ec;
            sm += count * ea / sum;
            sr += count * eb / sum;
        }
        let (nm, nr) = (
            (sm / total).clamp(1e-6, 0.999),
            (sr / total).clamp(0.0, 0.999),
        );
        let moved = (nm - lm).abs().max((nr - lr).abs());
        lm = nm;
        lr = if has_related { nr.max(1e-6) } else { 0.0 };
        if lm + lr >= 1.0 {
            let shrink = 0.999 / (lm + lr);
            lm *= shrink;
            lr *= shrink;
        }
        if moved < 1e-7 {
            break;
        }
    }
    model.prior = lm;
    if let Some(rel) = &mut model.related {
        rel.prior = lr;
    }
}

/// One compared column as a [`Scorer`] reads it: its levels, this side's column and the
/// other side's, how both are normalised, and its stored term counts.
struct ScoredColumn {
    kind: ComparisonKind,
    column: String,
    other: String,
    steps: Vec<Normalization>,
    terms: Option<Arc<TermCounts>>,
}

/// A stored model scoring the candidate pairs an incremental run finds (see
/// `blocks::ModelBlocks`), with the values of the records involved as the block index
/// normalised them (`blocks::BlockIndex::score`): the same comparison vectors, term
/// shares and weights as a run over every record.
pub struct Scorer {
    model: Model,
    columns: Vec<ScoredColumn>,
    names: Option<NameColumns>,
    same: bool,
}

impl Scorer {
    /// The scorer of the stored model of `spec` between `a` and `b` (one table for a
    /// dedupe model), at the declared threshold.
    pub fn new(
        spec: &ModelSpec,
        (a, b): (&TableData, &TableData),
        stored: Option<&StoredModel>,
    ) -> Result<Self> {
        let missing = |what: &str| {
            Error::Internal(format!(
                "the match model of `{}` with `{}` has no stored {what} to score new records with",
                a.name, b.name
            ))
        };
        let stored = stored.ok_or_else(|| missing("parameters"))?;
        let declared = untrained(spec, a, b)?;
        let mut model = stored.model.clone();
        model
            .set_threshold(declared.threshold)
            .map_err(|e| Error::Internal(format!("threshold: {e}")))?;
        let same = a.name == b.name;
        let mut columns = Vec::with_capacity(spec.compare.len());
        // levels and adjustments as declared (as a full run reads them)
        for (k, (c, column)) in spec.compare.iter().zip(&declared.columns).enumerate() {
            let terms = if column.term_frequency {
                let frozen = stored.terms.get(k).cloned().flatten();
                Some(frozen.ok_or_else(|| missing("term counts"))?)
            } else {
                None
            };
            columns.push(ScoredColumn {
                kind: column.kind,
                column: c.column.clone(),
                // one table compares a column with itself (as `parts` does)
                other: match &c.with {
                    Some(with) if !same => with.clone(),
                    _ => c.column.clone(),
                },
                steps: compare_steps(c, &a.spec, &b.spec),
                terms,
            });
        }
        let names = NameColumns::of(spec, crossed_names(spec, &a.spec, &b.spec).as_ref());
        Ok(Scorer {
            model,
            columns,
            names,
            same,
        })
    }

    /// The compared columns: this side's name, the other side's and how both are
    /// normalised.
    pub fn compared(&self) -> impl Iterator<Item = (&str, &str, &[Normalization])> {
        self.columns
            .iter()
            .map(|c| (c.column.as_str(), c.other.as_str(), c.steps.as_slice()))
    }

    /// The records `candidates` involve, each side's sorted and once (one table: both
    /// sides' on each, so that a pair's records may change places).
    pub fn involved(&self, candidates: &[(u32, u32)]) -> (Vec<u32>, Vec<u32>) {
        let involved = |this: bool, other: bool| {
            let mut rows: Vec<u32> = Vec::new();
            rows.extend(candidates.iter().filter(|_| this).map(|c| c.0));
            rows.extend(candidates.iter().filter(|_| other).map(|c| c.1));
            rows.sort_unstable();
            rows.dedup();
            rows
        };
        if self.same {
            let both = involved(true, true);
            (both.clone(), both)
        } else {
            (involved(true, false), involved(false, true))
        }
    }

    /// The `candidates` (a record of this side, a record of the other; one table:
    /// (smaller, larger)) at or above the threshold, with their probabilities, by record.
    /// `values` holds each compared column's normalised values on both sides, of the
    /// records [`Self::involved`] lists (`rows`), in their order.
    pub fn score(
        &self,
        candidates: &[(u32, u32)],
        rows: (&[u32], &[u32]),
        values: Vec<(Values, Values)>,
    ) -> Vec<(u32, u32, f32)> {
        let (xs, ys) = rows;
        let list = self
            .columns
            .iter()
            .zip(values)
            .map(|(c, (a, b))| Compared {
                kind: c.kind,
                a,
                b,
                terms: c.terms.clone(),
                shares: None,
            })
            .collect();
        let columns = Columns {
            list,
            names: self.names,
            same: self.same,
        };
        let scorer = self.model.scorer();
        let threshold = scorer.threshold_weight();
        let (columns, scorer) = (&columns, &scorer);
        let slices: Vec<&[(u32, u32)]> = candidates.chunks(4096).collect();
        let score = |slice: &[(u32, u32)]| {
            let mut vector = vec![0u8; columns.len()];
            let mut tf = vec![None; columns.len()];
            let mut matched = Vec::new();
            for &(x, y) in slice {
                // both are among the rows just listed
                let (row, o) = (
                    xs.partition_point(|r| *r < x),
                    ys.partition_point(|r| *r < y),
                );
                let crossed = columns.vector(row, o, &mut vector);
                for (k, slot) in tf.iter_mut().enumerate() {
                    *slot = columns.tf(k, row, o, vector[k], crossed);
                }
                let w = scorer.weight(&vector, &tf);
                if w >= threshold {
                    matched.push((x, y, probability(w) as f32));
                }
            }
            matched
        };
        let mut matched: Vec<(u32, u32, f32)> = super::blocks::in_parallel(slices, &score)
            .into_iter()
            .flatten()
            .collect();
        matched.sort_unstable_by_key(|p| (p.0, p.1));
        matched.dedup_by_key(|p| (p.0, p.1));
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_crossed_only_when_that_agrees_better_and_one_crossed_name_is_exact() {
        // both crossed names exact, against nothing straight
        assert!(read_crossed([3, 3], [0, 0]));
        // one exact and one near, against one near
        assert!(read_crossed([1, 3], [0, 1]));
        // a tie stays straight
        assert!(!read_crossed([0, 3], [3, 0]));
        // better crossed, but no crossed name agrees exactly
        assert!(!read_crossed([3, 3], [1, 1]));
        // the other crossed name must be at least similar: not else, not missing
        assert!(read_crossed([3, 3], [0, 2]));
        assert!(!read_crossed([3, 3], [0, 3]));
        assert!(!read_crossed([NULL_LEVEL, 3], [0, NULL_LEVEL]));
        assert!(!read_crossed([0, NULL_LEVEL], [0, NULL_LEVEL]));
    }

    #[test]
    fn term_counts_cover_both_sides_and_an_unseen_value_counts_once() {
        let a = StringArray::from(vec![Some("smith"), Some("smith"), None, Some("ng")]);
        let b = StringArray::from(vec![Some("smith"), Some("okafor")]);
        let both = TermCounts::of(&a, &b, false);
        assert_eq!(both.total, 5);
        assert_eq!(both.counts["smith"], 3);
        assert!((both.share("smith") - 0.6).abs() < 1e-12);
        assert!((both.share("never-seen") - 0.2).abs() < 1e-12);
        let one = TermCounts::of(&a, &a, true);
        assert_eq!(one.total, 3, "one table counts once");
        let shares: Vec<f32> = (0..a.len()).map(|r| one.share_at(&a, r)).collect();
        assert_eq!(shares, vec![2.0 / 3.0, 2.0 / 3.0, 0.0, 1.0 / 3.0]);
        // a rare value weighs more than a common one
        assert!(both.share("ng") < both.share("smith"));
        let json = serde_json::to_string(&both).unwrap();
        assert_eq!(serde_json::from_str::<TermCounts>(&json).unwrap(), both);
    }
}
