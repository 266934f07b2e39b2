//! `unify explain|preview`.

use std::collections::HashSet;

use arrow::array::{Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use lakecdp_engine::unify::{unify, UnifyOptions};
use lakecdp_lake::partition::read_entity;
use lakecdp_lake::publish::read_model;
use lakecdp_lake::{Lake, Process};

use crate::args::{ExplainArgs, PreviewArgs};
use crate::context::Context;
use crate::output;
use crate::UserError;

async fn open_lake(ctx: &Context) -> anyhow::Result<Lake> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let handle = ctx.open_storage(&catalog, &env).await?;
    Ok(Lake::new(&handle, env.id).with_format(env.output_format))
}

/// Every row of an entity of a published folder.
async fn rows(lake: &Lake, process: &Process, entity: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let model = read_model(lake, process).await?.ok_or_else(|| {
        UserError(format!(
            "{} has not been published yet (run `lakecdp refresh`)",
            process.folder()
        ))
    })?;
    let Some(e) = model.entity(entity) else {
        return Ok(Vec::new());
    };
    Ok(read_entity(lake, &process.folder(), e).await?)
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

/// `unify explain`.
pub async fn explain(ctx: &Context, a: ExplainArgs) -> anyhow::Result<()> {
    let project = ctx.load_project()?;
    let lake = open_lake(ctx).await?;
    let unification = Process::Unification;
    let id = a.customer_id.as_str();

    // the profile's records
    let mut records: Vec<(String, String, String)> = Vec::new();
    for b in rows(&lake, &unification, "AlternateKey").await? {
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
    let mut history = output::table(&["old id", "new id", "reason", "run"]);
    let mut history_rows = 0;
    for b in rows(&lake, &unification, "CustomerIdHistory").await? {
        let (o, n, r, run) = (
            text(&b, "OldCustomerId"),
            text(&b, "NewCustomerId"),
            text(&b, "Reason"),
            text(&b, "RunId"),
        );
        if let (Some(o), Some(n), Some(r), Some(run)) = (o, n, r, run) {
            for i in 0..b.num_rows() {
                if o.value(i) == id || (!n.is_null(i) && n.value(i) == id) {
                    history.add_row(vec![
                        value(&o, i),
                        value(&n, i),
                        value(&r, i),
                        value(&run, i),
                    ]);
                    history_rows += 1;
                }
            }
        }
    }
    if records.is_empty() {
        if history_rows > 0 {
            println!("CustomerId {id} is no longer in use:");
            println!("{history}");
            return Ok(());
        }
        return Err(UserError(format!("no profile has CustomerId `{id}`")).into());
    }
    println!("profile {id}: {} source records", records.len());

    // the merged row
    for b in rows(&lake, &unification, "Customer").await? {
        let Some(ids) = text(&b, "CustomerId") else {
            continue;
        };
        for i in 0..b.num_rows() {
            if ids.value(i) == id {
                let mut t = output::table(&["Customer column", "value"]);
                for f in b.schema().fields().iter().skip(1) {
                    if let Some(col) = text(&b, f.name()) {
                        t.add_row(vec![f.name().clone(), value(&col, i)]);
                    }
                }
                println!("{t}");
            }
        }
    }

    // the source records, with their mapped columns
    let spec = project.unification.as_ref();
    let mut t = output::table(&["source", "table", "key", "values"]);
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
        let mut shown = String::new();
        for b in rows(&lake, &Process::Ingestion(source.clone()), table).await? {
            let Some(keys) = text(&b, &pk) else { continue };
            for i in 0..b.num_rows() {
                if keys.value(i) == key {
                    shown = columns
                        .iter()
                        .filter_map(|c| text(&b, c).map(|a| format!("{c}={}", value(&a, i))))
                        .collect::<Vec<_>>()
                        .join(", ");
                }
            }
        }
        t.add_row(vec![source.clone(), table.clone(), key.clone(), shown]);
    }
    println!("{t}");

    // what joined them
    let in_profile: HashSet<(String, String)> = records
        .iter()
        .map(|(_, t, k)| (t.clone(), k.clone()))
        .collect();
    let mut pairs = output::table(&["record", "matched record", "rule", "score"]);
    let mut joined = 0;
    for b in rows(&lake, &unification, "ConflationMatchPairs").await? {
        let cols: Vec<Option<StringArray>> = ["TableA", "KeyA", "TableB", "KeyB", "Rule", "Score"]
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
                pairs.add_row(vec![
                    format!("{}:{}", x.0, x.1),
                    format!("{}:{}", value(tb, i), value(kb, i)),
                    value(rule, i),
                    value(score, i),
                ]);
                joined += 1;
            }
        }
    }
    for (source, table) in records
        .iter()
        .map(|(s, t, _)| (s.clone(), t.clone()))
        .collect::<std::collections::BTreeSet<_>>()
    {
        let entity = format!("Deduplication_{source}_{table}");
        for b in rows(&lake, &unification, &entity).await? {
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
                    pairs.add_row(vec![
                        format!("{table}:{key}"),
                        format!("{table}:{winner} (duplicate group winner)"),
                        if rule.is_null(i) {
                            "same primary key".into()
                        } else {
                            value(rule, i)
                        },
                        value(score, i),
                    ]);
                    joined += 1;
                }
            }
        }
    }
    if joined > 0 {
        println!("{pairs}");
    } else {
        println!("no pair joined these records: the profile holds one record");
    }
    if history_rows > 0 {
        println!("{history}");
    }
    Ok(())
}

/// `unify preview`.
pub async fn preview(ctx: &Context, a: PreviewArgs) -> anyhow::Result<()> {
    let project = ctx.load_project()?;
    let spec = project.unification.as_ref().ok_or_else(|| {
        UserError(format!(
            "{} declares no [unification]",
            ctx.project_file().display()
        ))
    })?;
    let lake = open_lake(ctx).await?;
    println!(
        "previewing unification on the first {} records of each table",
        a.sample
    );
    let options = UnifyOptions {
        sample: Some(a.sample),
        preview: true,
        ..UnifyOptions::default()
    };
    let report = unify(&lake, &project.sources, spec, &options).await?;
    super::refresh::print_unify(&report);
    Ok(())
}
