//! `source list|show|inspect|add|remove`.

use lakecdp_app::sources::{NewTable, SAMPLE_RECORDS};
use lakecdp_app::{Actor, App};
use lakecdp_core::TableSpec;

use crate::args::{AddArgs, InspectArgs, RemoveArgs};
use crate::output;

fn key_columns(t: &TableSpec) -> String {
    match (&t.primary_key, &t.last_updated) {
        (Some(pk), Some(lu)) => format!("{pk} (last updated: {lu})"),
        (Some(pk), None) => pk.clone(),
        (None, Some(lu)) => format!("- (last updated: {lu})"),
        (None, None) => "-".into(),
    }
}

/// `source list`.
pub async fn list(app: &App, actor: &Actor) -> anyhow::Result<()> {
    let sources = app.list_sources(actor).await?;
    if sources.is_empty() {
        println!(
            "no sources in {} yet: add a [[sources]] table",
            app.project_file().display()
        );
        return Ok(());
    }
    let mut t = output::table(&["source", "table", "format", "location", "primary key"]);
    for s in &sources {
        for table in &s.tables {
            t.add_row(vec![
                s.name.clone(),
                table.name.clone(),
                table.format.to_string(),
                table.location.clone(),
                key_columns(table),
            ]);
        }
    }
    println!("{t}");
    let tables: usize = sources.iter().map(|s| s.tables.len()).sum();
    println!("{} sources, {tables} tables", sources.len());
    Ok(())
}

/// `source show`.
pub async fn show(app: &App, actor: &Actor, name: &str) -> anyhow::Result<()> {
    let source = app.show_source(actor, name).await?;
    println!(
        "source `{}`: output folder DataIngestion/{}",
        source.name, source.name
    );
    if let Some(d) = &source.description {
        println!("{d}");
    }
    println!(
        "corrupt rows allowed: up to {:.1}% per table",
        source.corrupt_limit() * 100.0
    );
    for table in &source.tables {
        let mut t = output::table(&["setting", "value"]);
        t.add_row(vec!["location".to_string(), table.location.clone()]);
        t.add_row(vec!["format".to_string(), table.format.to_string()]);
        t.add_row(vec!["primary key".to_string(), key_columns(table)]);
        if let Some(csv) = &table.csv {
            t.add_row(vec![
                "csv".to_string(),
                format!(
                    "delimiter `{}`, header {}, quote `{}`, encoding {:?}, nulls {:?}",
                    csv.delimiter, csv.header, csv.quote, csv.encoding, csv.null_markers
                ),
            ]);
        }
        if let Some(e) = &table.entity {
            t.add_row(vec!["entity".to_string(), e.clone()]);
        }
        let schema = if table.schema.is_empty() {
            "inferred at load (see `lakecdp source inspect`)".to_string()
        } else {
            table
                .schema
                .iter()
                .map(|c| format!("{}: {}", c.name, c.column_type))
                .collect::<Vec<_>>()
                .join(", ")
        };
        t.add_row(vec!["schema".to_string(), schema]);
        println!("table `{}`", table.name);
        println!("{t}");
    }
    Ok(())
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `source inspect`.
pub async fn inspect(app: &App, actor: &Actor, a: InspectArgs) -> anyhow::Result<()> {
    for x in app
        .inspect_source(actor, &a.name, a.table.as_deref())
        .await?
    {
        let table = &x.table;
        let mut t = output::table(&["column", "inferred", "declared", "used"]);
        for (inf, declared, used) in &x.columns {
            t.add_row(vec![
                inf.name.clone(),
                inf.column_type.to_string(),
                declared
                    .as_ref()
                    .map(|d| d.column_type.to_string())
                    .unwrap_or_else(|| "-".into()),
                used.column_type.to_string(),
            ]);
        }
        println!(
            "table `{}` ({} {}, schema from a sample of up to {SAMPLE_RECORDS} records)",
            table.name, table.format, table.location,
        );
        println!("{t}");
        println!(
            "# paste under [[sources.tables]] name = \"{}\":",
            table.name
        );
        println!("schema = [");
        for (_, _, c) in &x.columns {
            println!(
                "  {{ name = {}, type = \"{}\" }},",
                toml_string(&c.name),
                c.column_type
            );
        }
        println!("]");
        println!();
    }
    Ok(())
}

/// `source add`.
pub async fn add(app: &App, actor: &Actor, a: AddArgs) -> anyhow::Result<()> {
    let table_name = a.table.clone().unwrap_or_else(|| a.name.clone());
    let mut spec = TableSpec {
        name: table_name.clone(),
        location: a.location.clone(),
        format: a.format.into(),
        primary_key: a.primary_key.clone(),
        last_updated: a.last_updated.clone(),
        csv: None,
        entity: a.entity.clone(),
        schema: Vec::new(),
        incremental: a.incremental,
    };
    if a.delimiter.is_some() || a.no_header {
        let mut csv = lakecdp_core::CsvOptions::default();
        if let Some(d) = &a.delimiter {
            csv.delimiter = d.clone();
        }
        csv.header = !a.no_header;
        spec.csv = Some(csv);
    }
    let (spec, source, revision) = app
        .add_source_table(
            actor,
            NewTable {
                source: a.name.clone(),
                description: a.description.clone(),
                table: spec,
                infer_schema: a.infer_schema,
            },
        )
        .await?;
    println!(
        "added table `{table_name}` ({} {}) to source `{source}` in {}{}",
        spec.format,
        spec.location,
        app.project_file().display(),
        if spec.schema.is_empty() {
            String::new()
        } else {
            format!(" with {} declared columns", spec.schema.len())
        }
    );
    if let Some(r) = &revision {
        super::env::print_revision(app, r);
    }
    println!(
        "load it with `lakecdp refresh --only ingest --source {}`",
        a.name
    );
    Ok(())
}

/// `source remove`.
pub async fn remove(app: &App, actor: &Actor, a: RemoveArgs) -> anyhow::Result<()> {
    let (source, table, revision) = app
        .remove_source(actor, &a.name, a.table.as_deref())
        .await?;
    if let Some(r) = &revision {
        super::env::print_revision(app, r);
    }
    match table {
        Some(t) => println!(
            "removed table `{t}` from source `{source}`; the next refresh publishes the source without it"
        ),
        None => println!(
            "removed source `{source}` from {}; what it published under DataIngestion/{source}/ stays in the lake until you delete it",
            app.project_file().display(),
        ),
    }
    Ok(())
}
