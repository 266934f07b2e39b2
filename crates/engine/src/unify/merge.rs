//! The merged profile (`Customer`), `AlternateKey` and `CustomerIdHistory`, and the ids
//! of the previous run.
//!
//! Each `Customer` column gathers the table columns with its name (a column's `rename`,
//! or its own name). Per profile, a column's value comes from one record, picked by the
//! column's policy: importance (the first non-empty value by table order, dedupe
//! winners first), most or least recent by another `Customer` column, or the most
//! filled record. Columns of a `group` take their values from the record their lead
//! column picked.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, StringArray};
use arrow::compute::{cast, interleave};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use lakecdp_core::{MergePolicy, RunId, UnificationSpec};
use lakecdp_lake::partition::read_entity;
use lakecdp_lake::{CdmFolderWriter, Lake, Process};
use lakecdp_match::ids::IdChange;

use super::data::TableData;
use crate::{Error, Result};

/// Everything the outputs are built from.
pub(super) struct Outputs<'a> {
    pub tables: &'a [TableData],
    pub offsets: &'a [u32],
    pub clusters: &'a [Vec<u32>],
    pub ids: &'a [String],
    pub spec: &'a UnificationSpec,
    /// Per record (global index): it won its duplicate group.
    pub winners: &'a [bool],
}

impl Outputs<'_> {
    fn locate(&self, r: u32) -> (usize, usize) {
        let ti = self.offsets.partition_point(|&o| o <= r) - 1;
        (ti, (r - self.offsets[ti]) as usize)
    }
}

/// Record key to CustomerId, hashed with a fast hasher.
pub(super) type PreviousIds = HashMap<String, String, hashbrown::DefaultHashBuilder>;

/// Record key (`Source.Table` + U+0001 + primary key) to CustomerId, from the previous
/// run's `AlternateKey` (empty on the first run).
pub(super) async fn previous_ids(lake: &Lake) -> Result<PreviousIds> {
    let mut out = PreviousIds::default();
    for batch in last_unified(lake, "AlternateKey").await? {
        let col = |name: &str| text_column(&batch, "AlternateKey", name);
        let (source, table, value, id) = (
            col("DataSourceName")?,
            col("TableName")?,
            col("AlternateValue")?,
            col("CustomerId")?,
        );
        for i in 0..batch.num_rows() {
            out.insert(
                format!(
                    "{}.{}\u{1}{}",
                    source.value(i),
                    table.value(i),
                    value.value(i)
                ),
                id.value(i).to_string(),
            );
        }
    }
    Ok(out)
}

/// A `Customer` column: its name and, per table, the column that feeds it.
struct OutputColumn {
    name: String,
    sources: Vec<Option<String>>,
}

fn output_columns(o: &Outputs) -> Vec<OutputColumn> {
    let mut columns: Vec<OutputColumn> = Vec::new();
    for (ti, t) in o.tables.iter().enumerate() {
        for c in &t.spec.columns {
            let name = c.output_name().to_string();
            if name == "CustomerId" {
                continue;
            }
            let pos = match columns.iter().position(|x| x.name == name) {
                Some(p) => p,
                None => {
                    columns.push(OutputColumn {
                        name,
                        sources: vec![None; o.tables.len()],
                    });
                    columns.len() - 1
                }
            };
            if columns[pos].sources[ti].is_none() {
                columns[pos].sources[ti] = Some(c.name.clone());
            }
        }
    }
    columns.retain(|c| !o.spec.merge.iter().any(|m| m.exclude && m.name == c.name));
    columns
}

/// Write `Customer`.
pub(super) async fn write_customer(writer: &mut CdmFolderWriter, o: &Outputs<'_>) -> Result<()> {
    let columns = output_columns(o);
    let policy_of = |name: &str| {
        o.spec
            .merge
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.policy.clone())
            .unwrap_or_default()
    };
    // a group member follows its lead column
    let mut lead_of: HashMap<&str, &str> = HashMap::new();
    for m in &o.spec.merge {
        for g in &m.group {
            lead_of.insert(g.as_str(), m.name.as_str());
        }
    }
    let value = |c: &OutputColumn, r: u32| -> Option<&str> {
        let (ti, row) = o.locate(r);
        let col = c.sources[ti].as_deref()?;
        o.tables[ti].value(col, row).filter(|v| !v.is_empty())
    };
    let filled = |r: u32| columns.iter().filter(|c| value(c, r).is_some()).count();
    // members in importance order: table order, dedupe winners first, then key
    let ordered: Vec<Vec<u32>> = o
        .clusters
        .iter()
        .map(|c| {
            let mut m = c.clone();
            m.sort_by_key(|r| (o.locate(*r).0, !o.winners[*r as usize], *r));
            m
        })
        .collect();
    // the record each column takes its value from, per profile
    let mut picks: HashMap<String, Vec<Option<u32>>> = HashMap::new();
    let mut order: Vec<&OutputColumn> = columns
        .iter()
        .filter(|c| !lead_of.contains_key(c.name.as_str()))
        .collect();
    order.extend(
        columns
            .iter()
            .filter(|c| lead_of.contains_key(c.name.as_str())),
    );
    for c in order {
        let pick: Vec<Option<u32>> = if let Some(lead) = lead_of.get(c.name.as_str()) {
            picks
                .get(*lead)
                .cloned()
                .unwrap_or_else(|| vec![None; ordered.len()])
        } else {
            let policy = policy_of(&c.name);
            match &policy {
                MergePolicy::Importance => ordered
                    .iter()
                    .map(|m| m.iter().copied().find(|r| value(c, *r).is_some()))
                    .collect(),
                MergePolicy::MostFilled => ordered
                    .iter()
                    .map(|m| {
                        m.iter()
                            .copied()
                            .filter(|r| value(c, *r).is_some())
                            .max_by_key(|r| (filled(*r), std::cmp::Reverse(*r)))
                    })
                    .collect(),
                MergePolicy::MostRecent(by) | MergePolicy::LeastRecent(by) => {
                    let latest = matches!(policy, MergePolicy::MostRecent(_));
                    let by_col = columns.iter().find(|x| &x.name == by).ok_or_else(|| {
                        Error::Source(format!(
                            "merge of `{}`: `{by}` is not a Customer column",
                            c.name
                        ))
                    })?;
                    ordered
                        .iter()
                        .map(|m| {
                            let mut best: Option<(u32, &str)> = None;
                            for &r in m {
                                if value(c, r).is_none() {
                                    continue;
                                }
                                let Some(t) = value(by_col, r) else { continue };
                                let better = match best {
                                    None => true,
                                    Some((_, b)) => {
                                        if latest {
                                            t > b
                                        } else {
                                            t < b
                                        }
                                    }
                                };
                                if better {
                                    best = Some((r, t));
                                }
                            }
                            best.map(|(r, _)| r)
                                .or_else(|| m.iter().copied().find(|r| value(c, *r).is_some()))
                        })
                        .collect()
                }
            }
        };
        picks.insert(c.name.clone(), pick);
    }
    // build the typed columns
    let mut fields = vec![Field::new("CustomerId", DataType::Utf8, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(o.ids.iter()))];
    for c in &columns {
        let per_table: Vec<Option<&ArrayRef>> = c
            .sources
            .iter()
            .zip(o.tables)
            .map(|(s, t)| s.as_ref().and_then(|s| t.typed.get(s)))
            .collect();
        let first_type = per_table
            .iter()
            .flatten()
            .map(|a| a.data_type().clone())
            .next()
            .unwrap_or(DataType::Utf8);
        let mut target = first_type.clone();
        let mut sources: Vec<ArrayRef> = Vec::new();
        for a in per_table.iter().flatten() {
            if a.data_type() != &target && cast(a, &target).is_err() {
                target = DataType::Utf8;
            }
        }
        for a in &per_table {
            sources.push(match a {
                Some(a) => cast(a, &target)?,
                None => new_null_array(&target, 0),
            });
        }
        // the last source is a single null for profiles without a value
        sources.push(new_null_array(&target, 1));
        let null_slot = sources.len() - 1;
        let pick = picks
            .get(&c.name)
            .ok_or_else(|| Error::Internal(format!("no pick for {}", c.name)))?;
        let indices: Vec<(usize, usize)> = pick
            .iter()
            .map(|p| match p {
                Some(r) => {
                    let (ti, row) = o.locate(*r);
                    if c.sources[ti].is_some() {
                        (ti, row)
                    } else {
                        (null_slot, 0)
                    }
                }
                None => (null_slot, 0),
            })
            .collect();
        let refs: Vec<&dyn Array> = sources.iter().map(|a| a.as_ref()).collect();
        arrays.push(interleave(&refs, &indices)?);
        fields.push(Field::new(&c.name, target, true));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    writer
        .write_entity(
            "Customer",
            Some("one row per unified customer profile"),
            schema,
            futures::stream::iter([Ok::<_, String>(batch)]),
        )
        .await?;
    Ok(())
}

/// Write `AlternateKey`: every record of every unified table, once, with its profile.
pub(super) async fn write_alternate_keys(
    writer: &mut CdmFolderWriter,
    o: &Outputs<'_>,
) -> Result<()> {
    let mut source = Vec::new();
    let mut table = Vec::new();
    let mut value = Vec::new();
    let mut id = Vec::new();
    for (c, members) in o.clusters.iter().enumerate() {
        for &r in members {
            let (ti, row) = o.locate(r);
            let t = &o.tables[ti];
            source.push(t.spec.source.as_str());
            table.push(t.spec.table.as_str());
            value.push(t.keys[row].as_str());
            id.push(o.ids[c].as_str());
        }
    }
    let schema = Arc::new(Schema::new(
        [
            "DataSourceName",
            "TableName",
            "AlternateValue",
            "CustomerId",
        ]
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, false))
        .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(source)),
            Arc::new(StringArray::from(table)),
            Arc::new(StringArray::from(value)),
            Arc::new(StringArray::from(id)),
        ],
    )?;
    writer
        .write_entity(
            "AlternateKey",
            Some("every unified source record and the CustomerId of its profile"),
            schema,
            futures::stream::iter([Ok::<_, String>(batch)]),
        )
        .await?;
    Ok(())
}

/// The rows of the previous run's `CustomerIdHistory`.
pub(super) async fn previous_history(lake: &Lake) -> Result<Vec<RecordBatch>> {
    last_unified(lake, "CustomerIdHistory").await
}

/// The rows of table `entity` of the published unification (none when nothing is
/// published, or it has no such table).
pub(super) async fn last_unified(lake: &Lake, entity: &str) -> Result<Vec<RecordBatch>> {
    let process = Process::Unification;
    let Some(model) = lakecdp_lake::publish::read_model(lake, &process).await? else {
        return Ok(Vec::new());
    };
    let Some(entity) = model.entity(entity) else {
        return Ok(Vec::new());
    };
    Ok(read_entity(lake, &process.folder(), entity).await?)
}

/// Column `name` of a batch of table `entity` of the last unification, as text.
pub(super) fn text_column(batch: &RecordBatch, entity: &str, name: &str) -> Result<StringArray> {
    let c = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("the last `{entity}` has no `{name}`")))?;
    let c = cast(c, &DataType::Utf8)?;
    c.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| Error::Internal(format!("`{entity}`.`{name}` is not text")))
}

/// Write `CustomerIdHistory`: the previous rows, then the ids merged, split or removed
/// by this run.
pub(super) async fn write_history(
    writer: &mut CdmFolderWriter,
    previous: Vec<RecordBatch>,
    history: &[IdChange],
    run: &RunId,
) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("OldCustomerId", DataType::Utf8, false),
        Field::new("NewCustomerId", DataType::Utf8, true),
        Field::new("Reason", DataType::Utf8, false),
        Field::new("RunId", DataType::Utf8, false),
    ]));
    let run = run.to_string();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                history.iter().map(|h| h.old_id.as_str()),
            )),
            Arc::new(StringArray::from_iter(
                history.iter().map(|h| h.new_id.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                history.iter().map(|h| h.reason.to_string()),
            )),
            Arc::new(StringArray::from_iter_values(
                history.iter().map(|_| run.as_str()),
            )),
        ],
    )?;
    let mut batches = Vec::with_capacity(previous.len() + 1);
    for b in previous {
        let columns = b
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| cast(c, f.data_type()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        batches.push(Ok::<_, String>(RecordBatch::try_new(
            schema.clone(),
            columns,
        )?));
    }
    batches.push(Ok(batch));
    writer
        .write_entity(
            "CustomerIdHistory",
            Some("CustomerIds merged, split or removed, and by which run"),
            schema,
            futures::stream::iter(batches),
        )
        .await?;
    Ok(())
}
