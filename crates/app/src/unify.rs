//! Unification's explain (why a profile holds its records) and preview (match counts
//! on a sample, nothing published).

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use datafusion::prelude::{cast as df_cast, ident, lit};
use lakecdp_core::{Operation, Process, ProjectFile};
use lakecdp_engine::unify::{unify, UnifyOptions, UnifyReport};
use lakecdp_engine::Session;
use lakecdp_lake::publish::read_model;

use crate::app::{Actor, App};
use crate::error::{Error, Result, ResultExt};

/// One source record of a profile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceRecord {
    /// Its source.
    pub source: String,
    /// Its table.
    pub table: String,
    /// Its primary key.
    pub key: String,
    /// Its unified columns, name and value.
    pub values: Vec<(String, String)>,
}

/// A pair that joined two records of a profile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JoinedPair {
    /// `Table:key`.
    pub record: String,
    /// `Table:key` of the record it matched.
    pub matched: String,
    /// The rule.
    pub rule: String,
    /// The score.
    pub score: String,
}

/// One row of a match model's waterfall: a compared column's level and its weight.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WeightRow {
    /// The column (`prior` for the prior odds, `related` for the related-pairs term).
    pub column: String,
    /// The comparison level's name.
    pub level: String,
    /// The level's probability among matches.
    pub m: f64,
    /// The level's probability among non-matches (for an exact agreement weighed by
    /// term frequency: the share of records holding the value, floored).
    pub u: f64,
    /// The share of records holding the value, when the weight is adjusted by it (a
    /// rare value weighs more than a common one).
    pub term_frequency: Option<f64>,
    /// Its weight, log2(m / u).
    pub weight: f64,
}

/// Why a match model joined two records: every comparison's level and weight.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PairWeights {
    /// `Table:key`.
    pub record: String,
    /// `Table:key` of the other record.
    pub matched: String,
    /// The rows, prior first; they sum to `weight`.
    pub rows: Vec<WeightRow>,
    /// The match weight.
    pub weight: f64,
    /// The match probability.
    pub probability: f64,
}

/// A change of CustomerId.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IdChange {
    /// The id before.
    pub old: String,
    /// The id after (empty when removed).
    pub new: String,
    /// Merged, split or removed.
    pub reason: String,
    /// The unification run.
    pub run: String,
}

/// Why a profile holds its records.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Explanation {
    /// The CustomerId.
    pub customer_id: String,
    /// The merged Customer row, column and value (empty when the id is no longer used).
    pub customer: Vec<(String, String)>,
    /// Its source records (empty when the id is no longer used).
    pub records: Vec<SourceRecord>,
    /// What joined them.
    pub pairs: Vec<JoinedPair>,
    /// For the pairs a match model joined, the weight of every comparison (without
    /// term-frequency adjustments, which need the whole table).
    pub weights: Vec<PairWeights>,
    /// The history of the id.
    pub history: Vec<IdChange>,
}

/// Which rows of a published entity to read.
enum Keep<'a> {
    /// Those where one of the columns (as text) is one of its values.
    Where(Vec<(&'a str, Vec<String>)>),
    /// Those whose first column (as text) is one of the values.
    FirstColumnIn(Vec<String>),
}

/// The rows of an entity of a published folder that `keep` selects, read through a
/// listing table with the filter pushed down (never the whole table into memory).
async fn rows(
    session: &Session,
    process: &Process,
    entity: &str,
    keep: Keep<'_>,
) -> Result<Vec<RecordBatch>> {
    let model = read_model(session.lake(), process).await?.ok_or_else(|| {
        Error::not_found(format!(
            "{} has not been published yet (run `lakecdp refresh`)",
            process.folder()
        ))
    })?;
    let Some(e) = model.entity(entity) else {
        return Ok(Vec::new());
    };
    let conditions: Vec<(String, Vec<String>)> = match keep {
        Keep::Where(c) => c.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        Keep::FirstColumnIn(v) => match e.attributes.first() {
            Some(a) => vec![(a.name.clone(), v)],
            None => return Ok(Vec::new()),
        },
    };
    let filter = conditions
        .into_iter()
        .map(|(c, values)| {
            df_cast(ident(c), DataType::Utf8).in_list(values.into_iter().map(lit).collect(), false)
        })
        .reduce(|a, b| a.or(b));
    let table = session.published_table(&process.folder(), e).await?;
    let mut df = session
        .context()
        .read_table(table)
        .map_err(|e| Error::internal(e.to_string()))?;
    if let Some(f) = filter {
        df = df.filter(f).map_err(|e| Error::internal(e.to_string()))?;
    }
    df.collect()
        .await
        .map_err(|e| Error::internal(format!("reading {}/{entity}: {e}", process.folder())))
}

fn text(batch: &RecordBatch, column: &str) -> Option<StringArray> {
    let c = batch.column_by_name(column)?;
    cast(c, &DataType::Utf8)
        .ok()?
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
}

fn value(a: &StringArray, i: usize) -> String {
    if a.is_null(i) {
        String::new()
    } else {
        a.value(i).to_string()
    }
}

impl App {
    /// Why a profile holds its records: its source records, the merged row, the pairs
    /// and duplicate groups that joined them and its CustomerId's history (Viewer).
    pub async fn explain(&self, actor: &Actor, customer_id: &str) -> Result<Explanation> {
        let env = self
            .environment_for(actor, None, Operation::ViewEnvironment)
            .await?;
        let project = self.applied(actor, &env).await?.project;
        let lake = self.lake(&env).await?;
        let session = self
            .session(&lake, &project.environment.engine, false)
            .await?;
        let unification = Process::Unification;
        let id = customer_id;
        let this_id = || vec![id.to_string()];

        // the profile's records
        let mut records: Vec<(String, String, String)> = Vec::new();
        for b in rows(
            &session,
            &unification,
            "AlternateKey",
            Keep::Where(vec![("CustomerId", this_id())]),
        )
        .await?
        {
            let (s, t, k, c) = (
                text(&b, "DataSourceName"),
                text(&b, "TableName"),
                text(&b, "AlternateValue"),
                text(&b, "CustomerId"),
            );
            if let (Some(s), Some(t), Some(k), Some(c)) = (s, t, k, c) {
                for i in 0..b.num_rows() {
                    if c.value(i) == id {
                        records.push((value(&s, i), value(&t, i), value(&k, i)));
                    }
                }
            }
        }
        let mut history = Vec::new();
        for b in rows(
            &session,
            &unification,
            "CustomerIdHistory",
            Keep::Where(vec![
                ("OldCustomerId", this_id()),
                ("NewCustomerId", this_id()),
            ]),
        )
        .await?
        {
            let (o, n, r, run) = (
                text(&b, "OldCustomerId"),
                text(&b, "NewCustomerId"),
                text(&b, "Reason"),
                text(&b, "RunId"),
            );
            if let (Some(o), Some(n), Some(r), Some(run)) = (o, n, r, run) {
                for i in 0..b.num_rows() {
                    if o.value(i) == id || (!n.is_null(i) && n.value(i) == id) {
                        history.push(IdChange {
                            old: value(&o, i),
                            new: value(&n, i),
                            reason: value(&r, i),
                            run: value(&run, i),
                        });
                    }
                }
            }
        }
        if records.is_empty() && history.is_empty() {
            return Err(Error::not_found(format!(
                "no profile has CustomerId `{id}`"
            )));
        }
        let mut out = Explanation {
            customer_id: id.to_string(),
            customer: Vec::new(),
            records: Vec::new(),
            pairs: Vec::new(),
            weights: Vec::new(),
            history,
        };
        if records.is_empty() {
            return Ok(out);
        }

        // the merged row
        for b in rows(
            &session,
            &unification,
            "Customer",
            Keep::Where(vec![("CustomerId", this_id())]),
        )
        .await?
        {
            let Some(ids) = text(&b, "CustomerId") else {
                continue;
            };
            for i in 0..b.num_rows() {
                if ids.value(i) == id {
                    for f in b.schema().fields().iter().skip(1) {
                        if let Some(col) = text(&b, f.name()) {
                            out.customer.push((f.name().clone(), value(&col, i)));
                        }
                    }
                }
            }
        }

        // the source records, with their mapped columns (and every column, to explain
        // what a match model compared)
        let mut raw: HashMap<(String, String), HashMap<String, String>> = HashMap::new();
        let spec = project.unification.as_ref();
        for (source, table, key) in &records {
            let columns: Vec<String> = spec
                .and_then(|u| {
                    u.tables
                        .iter()
                        .find(|x| &x.source == source && &x.table == table)
                })
                .map(|x| x.columns.iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default();
            let pk = project
                .sources
                .iter()
                .find(|s| &s.name == source)
                .and_then(|s| s.tables.iter().find(|x| &x.name == table))
                .and_then(|x| x.primary_key.clone())
                .unwrap_or_default();
            let mut shown = Vec::new();
            for b in rows(
                &session,
                &Process::Ingestion(source.clone()),
                table,
                Keep::Where(vec![(pk.as_str(), vec![key.clone()])]),
            )
            .await?
            {
                let Some(keys) = text(&b, &pk) else { continue };
                for i in 0..b.num_rows() {
                    if keys.value(i) == key {
                        shown = columns
                            .iter()
                            .filter_map(|c| text(&b, c).map(|a| (c.clone(), value(&a, i))))
                            .collect();
                        let all = raw.entry((table.clone(), key.clone())).or_default();
                        for f in b.schema().fields() {
                            if let Some(a) = text(&b, f.name()) {
                                if !a.is_null(i) {
                                    all.insert(f.name().clone(), value(&a, i));
                                }
                            }
                        }
                    }
                }
            }
            out.records.push(SourceRecord {
                source: source.clone(),
                table: table.clone(),
                key: key.clone(),
                values: shown,
            });
        }

        // what joined them
        let in_profile: HashSet<(String, String)> = records
            .iter()
            .map(|(_, t, k)| (t.clone(), k.clone()))
            .collect();
        let keys: Vec<String> = records.iter().map(|(_, _, k)| k.clone()).collect();
        let mut waterfalls = Waterfalls {
            lake: &lake,
            sources: &project.sources,
            records: &records,
            spec,
            raw: &raw,
            models: HashMap::new(),
            explaining: spec.map(lakecdp_engine::unify::model::Explaining::new),
        };

        for b in rows(
            &session,
            &unification,
            "ConflationMatchPairs",
            Keep::Where(vec![("KeyA", keys.clone())]),
        )
        .await?
        {
            let cols: Vec<Option<StringArray>> =
                ["TableA", "KeyA", "TableB", "KeyB", "Rule", "Score"]
                    .iter()
                    .map(|c| text(&b, c))
                    .collect();
            let [Some(ta), Some(ka), Some(tb), Some(kb), Some(rule), Some(score)] = cols.as_slice()
            else {
                continue;
            };
            for i in 0..b.num_rows() {
                let x = (value(ta, i), value(ka, i));
                if in_profile.contains(&x) {
                    if value(rule, i) == lakecdp_engine::unify::MODEL_RULE {
                        let y = (value(tb, i), value(kb, i));
                        if let Some(w) = waterfalls.of(&x, &y).await? {
                            out.weights.push(w);
                        }
                    }
                    out.pairs.push(JoinedPair {
                        record: format!("{}:{}", x.0, x.1),
                        matched: format!("{}:{}", value(tb, i), value(kb, i)),
                        rule: value(rule, i),
                        score: value(score, i),
                    });
                }
            }
        }
        for (source, table) in records
            .iter()
            .map(|(s, t, _)| (s.clone(), t.clone()))
            .collect::<std::collections::BTreeSet<_>>()
        {
            let entity = format!("Deduplication_{source}_{table}");
            for b in rows(
                &session,
                &unification,
                &entity,
                Keep::FirstColumnIn(keys.clone()),
            )
            .await?
            {
                let key_col = b.schema().field(0).name().clone();
                let cols: Vec<Option<StringArray>> = [
                    key_col.as_str(),
                    "Deduplication_WinnerId",
                    "Deduplication_Rule",
                    "Deduplication_Score",
                ]
                .iter()
                .map(|c| text(&b, c))
                .collect();
                let [Some(k), Some(w), Some(rule), Some(score)] = cols.as_slice() else {
                    continue;
                };
                for i in 0..b.num_rows() {
                    let key = value(k, i);
                    let winner = value(w, i);
                    if key != winner && in_profile.contains(&(table.clone(), key.clone())) {
                        if !rule.is_null(i) && value(rule, i) == lakecdp_engine::unify::MODEL_RULE {
                            let x = (table.clone(), key.clone());
                            let y = (table.clone(), winner.clone());
                            if let Some(w) = waterfalls.of(&x, &y).await? {
                                out.weights.push(w);
                            }
                        }
                        out.pairs.push(JoinedPair {
                            record: format!("{table}:{key}"),
                            matched: format!("{table}:{winner} (duplicate group winner)"),
                            rule: if rule.is_null(i) {
                                "same primary key".into()
                            } else {
                                value(rule, i)
                            },
                            score: value(score, i),
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// What explaining a profile's model pairs reads once: the stored models by name, the
/// compared tables when needed, and the profile's records with every column.
struct Waterfalls<'a> {
    lake: &'a lakecdp_lake::Lake,
    sources: &'a [lakecdp_core::SourceSpec],
    records: &'a [(String, String, String)],
    spec: Option<&'a lakecdp_core::UnificationSpec>,
    raw: &'a HashMap<(String, String), HashMap<String, String>>,
    models: HashMap<String, Option<lakecdp_engine::unify::model::StoredModel>>,
    explaining: Option<lakecdp_engine::unify::model::Explaining>,
}

impl Waterfalls<'_> {
    /// The waterfall of a pair a match model joined: record `x` (table, key) of the
    /// later table (or of the table, for a dedupe model) and `y`, with the stored model.
    /// None when the declaration or its stored model is gone.
    async fn of(
        &mut self,
        x: &(String, String),
        y: &(String, String),
    ) -> Result<Option<PairWeights>> {
        let (lake, sources, records, spec, raw) =
            (self.lake, self.sources, self.records, self.spec, self.raw);
        let (models, explaining) = (&mut self.models, &mut self.explaining);
        let Some(spec) = spec else { return Ok(None) };
        let source_of = |table: &str| {
            records
                .iter()
                .find(|(_, t, _)| t == table)
                .map(|(s, _, _)| s.clone())
        };
        let find = |table: &str| {
            let source = source_of(table)?;
            spec.tables
                .iter()
                .find(|t| t.source == source && t.table == table)
        };
        let (Some(a), Some(b)) = (find(&x.0), find(&y.0)) else {
            return Ok(None);
        };
        let declared = if a.qualified() == b.qualified() {
            a.dedupe_model.as_ref()
        } else {
            a.match_models
                .iter()
                .find(|m| m.with.as_deref() == Some(b.qualified().as_str()))
        };
        let Some(declared) = declared else {
            return Ok(None);
        };
        use lakecdp_engine::unify::model;
        let name = model::model_name_of(&a.qualified(), &b.qualified());
        if !models.contains_key(&name) {
            let names = model::crossed_names(declared, a, b);
            let stored = model::load(lake, &name, declared, names.as_ref()).await?;
            models.insert(name.clone(), stored);
        }
        let Some(Some(stored)) = models.get(&name) else {
            return Ok(None);
        };
        let Some(explaining) = explaining.as_mut() else {
            return Ok(None);
        };
        let explained = model::explain_pair(
            lake,
            sources,
            explaining,
            declared,
            stored,
            a,
            b,
            (
                &|c: &str| raw.get(x).and_then(|v| v.get(c).cloned()),
                &|c: &str| raw.get(y).and_then(|v| v.get(c).cloned()),
            ),
        )
        .await;
        let rows = match explained {
            Ok(rows) => rows,
            // the rest of the explanation stands without this pair's weights
            Err(e) => {
                tracing::warn!(error = %e, record = %x.1, "a model pair's weights could not be explained");
                return Ok(None);
            }
        };
        let weight: f64 = rows.iter().map(|r| r.weight).sum();
        Ok(Some(PairWeights {
            record: format!("{}:{}", x.0, x.1),
            matched: format!("{}:{}", y.0, y.1),
            rows: rows
                .into_iter()
                .map(|r| WeightRow {
                    column: r.column.unwrap_or_else(|| r.level_label.to_string()),
                    level: r.level_label.to_string(),
                    m: r.m,
                    u: r.u,
                    term_frequency: r.term_frequency,
                    weight: r.weight,
                })
                .collect(),
            weight,
            probability: lakecdp_match::model::probability(weight),
        }))
    }
}

impl App {
    /// Unify the first `sample` records of each table and report the matches; nothing is
    /// published (Viewer). The rules are those of `project` (a project file's text for
    /// the same environment: rules being edited) or, with `None`, the applied revision's.
    pub async fn preview_unification(
        &self,
        actor: &Actor,
        project: Option<&str>,
        sample: usize,
    ) -> Result<UnifyReport> {
        let env = self
            .environment_for(actor, None, Operation::ViewEnvironment)
            .await?;
        let project = match project {
            Some(text) => {
                let p = ProjectFile::parse(text).context("the project file")?;
                if !p.environment.name.eq_ignore_ascii_case(&env.name) {
                    return Err(Error::invalid(format!(
                        "the project file is for environment `{}`, not `{}`",
                        p.environment.name, env.name
                    )));
                }
                p
            }
            None => self.applied(actor, &env).await?.project,
        };
        let spec = project.unification.as_ref().ok_or_else(|| {
            Error::invalid(format!(
                "the project of `{}` declares no [unification]",
                env.name
            ))
        })?;
        let lake = self.lake(&env).await?;
        let options = UnifyOptions {
            sample: Some(sample),
            preview: true,
            ..UnifyOptions::default()
        };
        Ok(unify(&lake, &project.sources, spec, &options).await?)
    }
}

impl App {
    /// Train the match models of the applied revision anew on every record (or the
    /// first `sample` of each table) and store them in the lake, where later refreshes
    /// find them; nothing is published (Contributor: it runs part of a refresh).
    pub async fn train_unification(
        &self,
        actor: &Actor,
        sample: Option<usize>,
    ) -> Result<UnifyReport> {
        let env = self
            .environment_for(actor, None, Operation::RunRefresh)
            .await?;
        let project = self.applied(actor, &env).await?.project;
        let spec = project.unification.as_ref().ok_or_else(|| {
            Error::invalid(format!(
                "the project of `{}` declares no [unification]",
                env.name
            ))
        })?;
        let declares_models = spec
            .tables
            .iter()
            .any(|t| t.dedupe_model.is_some() || !t.match_models.is_empty());
        if !declares_models {
            return Err(Error::invalid(format!(
                "the applied project of `{}` declares no match model: add `dedupe_model` or `match_model` to a `[[unification.tables]]` entry and apply it",
                env.name
            )));
        }
        let lake = self.lake(&env).await?;
        let options = UnifyOptions {
            sample,
            preview: true,
            train: true,
            ..UnifyOptions::default()
        };
        Ok(unify(&lake, &project.sources, spec, &options).await?)
    }
}
