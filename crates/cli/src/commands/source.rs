//! `source list|show|inspect|add|remove`.

use anyhow::Context as _;
use lakecdp_catalog::Catalog;
use lakecdp_core::{SourceSpec, TableSpec};
use lakecdp_engine::source::{declarations, effective_columns, infer_schema, prepare};

use crate::args::{AddArgs, InspectArgs, RemoveArgs};
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

/// The project file as an editable document (comments and layout kept).
fn edit_project(ctx: &Context) -> anyhow::Result<(String, toml_edit::DocumentMut)> {
    let path = ctx.project_file();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        UserError(format!(
            "cannot read {}: {e} (run `lakecdp init` to create a project, or pass -C <project folder>)",
            path.display()
        ))
    })?;
    // refuse to edit a file that is already invalid: its errors come first
    lakecdp_core::ProjectFile::parse(&text).with_context(|| format!("in {}", path.display()))?;
    let doc = text
        .parse::<toml_edit::DocumentMut>()
        .map_err(|e| UserError(format!("{}: {e}", path.display())))?;
    Ok((text, doc))
}

/// Validate the edited document and write it in place of the project file.
fn save_project(ctx: &Context, doc: &toml_edit::DocumentMut) -> anyhow::Result<()> {
    let mut text = doc.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    lakecdp_core::ProjectFile::parse(&text)
        .context("the edited project file would not be valid; it was not changed")?;
    let path = ctx.project_file();
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, &text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

fn sources_array(
    doc: &mut toml_edit::DocumentMut,
) -> anyhow::Result<&mut toml_edit::ArrayOfTables> {
    if !doc.contains_key("sources") {
        doc.insert(
            "sources",
            toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()),
        );
    }
    doc["sources"].as_array_of_tables_mut().ok_or_else(|| {
        UserError("`sources` must be written as [[sources]] tables to be edited here".into()).into()
    })
}

fn name_of(t: &toml_edit::Table) -> Option<&str> {
    t.get("name").and_then(|n| n.as_str())
}

/// `source add`.
pub async fn add(ctx: &Context, a: AddArgs) -> anyhow::Result<()> {
    let project = ctx.load_project()?;
    let existing = project
        .sources
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(&a.name));
    let table_name = a.table.clone().unwrap_or_else(|| a.name.clone());
    if let Some(s) = existing {
        if s.tables
            .iter()
            .any(|t| t.name.eq_ignore_ascii_case(&table_name))
        {
            return Err(UserError(format!(
                "source `{}` already has a table `{table_name}`; remove it first (`lakecdp source remove {} --table {table_name}`) or pick another --table name",
                s.name, s.name
            ))
            .into());
        }
    }
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
    if a.infer_schema {
        let access = existing.and_then(|s| s.access.as_ref());
        let (prepared, fetched) = prepare(&spec, access, &ctx.project_dir).await?;
        let fetched = fetched.download().await?;
        let inferred = infer_schema(&prepared, &fetched).await?;
        spec.schema = effective_columns(&prepared, &inferred);
    }
    // the table as TOML, through the same serializer the project file is read with
    let table_toml = toml::to_string(&spec)?;
    let mut table_item = table_toml
        .parse::<toml_edit::DocumentMut>()?
        .as_table()
        .clone();
    // only the CSV options given, inline
    if table_item.contains_key("csv") {
        let mut csv = toml_edit::InlineTable::new();
        if let Some(d) = &a.delimiter {
            csv.insert("delimiter", d.as_str().into());
        }
        if a.no_header {
            csv.insert("header", false.into());
        }
        table_item.insert("csv", toml_edit::value(csv));
    }
    // columns as one inline table per line, as `source inspect` prints them
    if let Some(columns) = table_item
        .get("schema")
        .and_then(|i| i.as_array_of_tables())
        .cloned()
    {
        let mut array = toml_edit::Array::new();
        for c in columns.iter() {
            let mut inline = c.clone().into_inline_table();
            inline.fmt();
            let mut v = toml_edit::Value::InlineTable(inline);
            v.decor_mut().set_prefix("\n  ");
            array.push_formatted(v);
        }
        array.set_trailing("\n");
        array.set_trailing_comma(true);
        table_item.insert("schema", toml_edit::value(array));
    }
    let (_, mut doc) = edit_project(ctx)?;
    let sources = sources_array(&mut doc)?;
    let position = sources
        .iter()
        .position(|s| name_of(s).is_some_and(|n| n.eq_ignore_ascii_case(&a.name)));
    let index = match position {
        Some(i) => i,
        None => {
            let mut t = toml_edit::Table::new();
            t.insert("name", toml_edit::value(a.name.clone()));
            if let Some(d) = &a.description {
                t.insert("description", toml_edit::value(d.clone()));
            }
            sources.push(t);
            sources.len() - 1
        }
    };
    let source = sources
        .get_mut(index)
        .ok_or_else(|| anyhow::anyhow!("the source table vanished"))?;
    if !source.contains_key("tables") {
        source.insert(
            "tables",
            toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()),
        );
    }
    source["tables"]
        .as_array_of_tables_mut()
        .ok_or_else(|| {
            UserError("`tables` must be written as [[sources.tables]] to be edited here".into())
        })?
        .push(table_item);
    save_project(ctx, &doc)?;
    println!(
        "added table `{table_name}` ({} {}) to source `{}` in {}{}",
        spec.format,
        spec.location,
        existing.map_or(a.name.as_str(), |s| s.name.as_str()),
        ctx.project_file().display(),
        if spec.schema.is_empty() {
            String::new()
        } else {
            format!(" with {} declared columns", spec.schema.len())
        }
    );
    println!(
        "load it with `lakecdp refresh --only ingest --source {}`",
        a.name
    );
    Ok(())
}

/// `source remove`.
pub async fn remove(ctx: &Context, a: RemoveArgs) -> anyhow::Result<()> {
    let project = ctx.load_project()?;
    let source = find(&project.sources, &a.name)?.clone();
    let (_, mut doc) = edit_project(ctx)?;
    let sources = sources_array(&mut doc)?;
    let index = sources
        .iter()
        .position(|s| name_of(s) == Some(source.name.as_str()))
        .ok_or_else(|| {
            UserError(format!(
                "source `{}` is not a [[sources]] table",
                source.name
            ))
        })?;
    let removed_table = match &a.table {
        None => {
            sources.remove(index);
            None
        }
        Some(name) => {
            let table = source
                .tables
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    UserError(format!("source `{}` has no table `{name}`", source.name))
                })?;
            if source.tables.len() == 1 {
                return Err(UserError(format!(
                    "`{}` is the only table of source `{}`; remove the source instead (`lakecdp source remove {}`)",
                    table.name, source.name, source.name
                ))
                .into());
            }
            let tables = sources
                .get_mut(index)
                .and_then(|s| s.get_mut("tables"))
                .and_then(|t| t.as_array_of_tables_mut())
                .ok_or_else(|| {
                    UserError(
                        "`tables` must be written as [[sources.tables]] to be edited here".into(),
                    )
                })?;
            let at = tables
                .iter()
                .position(|t| name_of(t) == Some(table.name.as_str()))
                .ok_or_else(|| {
                    UserError(format!(
                        "table `{}` is not a [[sources.tables]] table",
                        table.name
                    ))
                })?;
            tables.remove(at);
            Some(table.name.clone())
        }
    };
    save_project(ctx, &doc)?;
    // watermarks of what is no longer declared would only mislead a later declaration
    if let Ok(catalog) = ctx.catalog().await {
        if let Ok(env) = ctx.environment(&catalog, None).await {
            catalog
                .clear_watermarks(env.id, &source.name, removed_table.as_deref())
                .await?;
        }
    }
    match removed_table {
        Some(t) => println!(
            "removed table `{t}` from source `{}`; the next refresh publishes the source without it",
            source.name
        ),
        None => println!(
            "removed source `{}` from {}; what it published under DataIngestion/{}/ stays in the lake until you delete it",
            source.name,
            ctx.project_file().display(),
            source.name
        ),
    }
    Ok(())
}
