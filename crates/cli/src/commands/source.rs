//! `source list|show|inspect`.

use lakecdp_core::{SourceSpec, TableSpec};
use lakecdp_engine::source::{declarations, effective_columns, infer_schema, prepare};

use crate::args::InspectArgs;
use crate::context::Context;
use crate::output;
use crate::UserError;

fn find<'a>(sources: &'a [SourceSpec], name: &str) -> anyhow::Result<&'a SourceSpec> {
    sources
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            let known = sources
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            UserError(format!(
                "no source `{name}` in the project file (sources: {})",
                if known.is_empty() { "none" } else { &known }
            ))
            .into()
        })
}

fn key_columns(t: &TableSpec) -> String {
    match (&t.primary_key, &t.last_updated) {
        (Some(pk), Some(lu)) => format!("{pk} (last updated: {lu})"),
        (Some(pk), None) => pk.clone(),
        (None, Some(lu)) => format!("- (last updated: {lu})"),
        (None, None) => "-".into(),
    }
}

/// `source list`.
pub fn list(ctx: &Context) -> anyhow::Result<()> {
    let project = ctx.load_project()?;
    if project.sources.is_empty() {
        println!(
            "no sources in {} yet: add a [[sources]] table",
            ctx.project_file().display()
        );
        return Ok(());
    }
    let mut t = output::table(&["source", "table", "format", "location", "primary key"]);
    for s in &project.sources {
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
    let tables: usize = project.sources.iter().map(|s| s.tables.len()).sum();
    println!("{} sources, {tables} tables", project.sources.len());
    Ok(())
}

/// `source show`.
pub fn show(ctx: &Context, name: &str) -> anyhow::Result<()> {
    let project = ctx.load_project()?;
    let source = find(&project.sources, name)?;
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

/// `source inspect`.
pub async fn inspect(ctx: &Context, a: InspectArgs) -> anyhow::Result<()> {
    let project = ctx.load_project()?;
    let source = find(&project.sources, &a.name)?;
    let tables: Vec<&TableSpec> = match &a.table {
        Some(name) => vec![source
            .tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| UserError(format!("source `{}` has no table `{name}`", source.name)))?],
        None => source.tables.iter().collect(),
    };
    for table in tables {
        let (table, fetched) = prepare(table, source.access.as_ref(), &ctx.project_dir).await?;
        let fetched = fetched.download().await?;
        let table = &table;
        let inferred = infer_schema(table, &fetched).await?;
        let effective = effective_columns(table, &inferred);
        let mut t = output::table(&["column", "inferred", "declared", "used"]);
        for (inf, used) in declarations(&inferred).iter().zip(&effective) {
            let declared = table
                .schema
                .iter()
                .find(|d| d.name == inf.name)
                .map(|d| d.column_type.to_string())
                .unwrap_or_else(|| "-".into());
            t.add_row(vec![
                inf.name.clone(),
                inf.column_type.to_string(),
                declared,
                used.column_type.to_string(),
            ]);
        }
        println!(
            "table `{}` ({} {}, schema from a sample of up to {} records)",
            table.name,
            table.format,
            table.location,
            lakecdp_engine::source::SAMPLE_RECORDS
        );
        println!("{t}");
        println!(
            "# paste under [[sources.tables]] name = \"{}\":",
            table.name
        );
        println!("schema = [");
        for c in &effective {
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

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
