//! CDM folder tables: another tool's `model.json` and one of its entities become a
//! CSV or Parquet table with the entity's attributes as its schema.

use std::path::Path;

use lakecdp_core::{ColumnSpec, ColumnType, SourceAccess, SourceFormat, TableSpec};
use serde_json::Value;
use url::Url;

use super::confine::SourceRoot;
use super::fetch::{fetch, Fetched};
use super::infer::column_type_of;
use crate::{Error, Result};

/// A table ready to load: for a CDM folder table, the entity's partitions as a CSV or
/// Parquet table with the entity's attributes as its declared schema (declarations of
/// the project file still win); other tables as they are.
pub async fn prepare(
    table: &TableSpec,
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<(TableSpec, Fetched)> {
    if table.format == SourceFormat::Delta {
        let delta = super::delta::open(table, access, project_dir).await?;
        let provider = delta
            .table_provider()
            .await
            .map_err(|e| Error::Source(format!("table `{}`: {e}", table.name)))?;
        let mut schema = super::infer::declarations(&provider.schema());
        for declared in &table.schema {
            if let Some(c) = schema.iter_mut().find(|c| c.name == declared.name) {
                c.column_type = declared.column_type;
            }
        }
        let mut effective = table.clone();
        effective.schema = schema;
        let files = super::delta::listing(table, &delta, access, project_dir).await?;
        return Ok((effective, files));
    }
    if table.format != SourceFormat::Cdm {
        let fetched = fetch(table, access, project_dir).await?;
        return Ok((table.clone(), fetched));
    }
    let entity_name = table.entity.clone().ok_or_else(|| {
        Error::Source(format!(
            "table `{}`: a CDM folder table needs `entity`",
            table.name
        ))
    })?;
    let model_file = fetch(table, access, project_dir).await?.download().await?;
    let [model_file] = model_file.files.as_slice() else {
        return Err(Error::Source(format!(
            "table `{}`: `{}` must name one model.json",
            table.name, table.location
        )));
    };
    let bytes = std::fs::read(&model_file.path)
        .map_err(|e| Error::Source(format!("cannot read {}: {e}", model_file.name)))?;
    // the folder of the document, as written in the table's location: everything the
    // document names must be in it
    let root = SourceRoot::of_file(&table.location, access, project_dir)?;
    let found = if model_file.name.ends_with(".manifest.cdm.json") {
        manifest_entity(
            table,
            access,
            project_dir,
            &root,
            &model_file.name,
            &bytes,
            &entity_name,
        )
        .await?
    } else {
        model_entity(table, &model_file.name, &bytes, &entity_name)?
    };
    let FoundEntity {
        mut schema,
        parts,
        parquet,
        header,
        delimiter,
    } = found;
    if schema.is_empty() {
        // no definition to read: the declared columns, or an inferred schema
        schema = table.schema.clone();
    }
    for declared in &table.schema {
        if let Some(c) = schema.iter_mut().find(|c| c.name == declared.name) {
            c.column_type = declared.column_type;
        }
    }
    let mut effective = table.clone();
    effective.entity = None;
    effective.schema = schema;
    effective.format = if parquet {
        SourceFormat::Parquet
    } else {
        SourceFormat::Csv
    };
    if !parquet {
        let mut csv = table.csv.clone().unwrap_or_default();
        csv.header = header;
        csv.delimiter = delimiter;
        effective.csv = Some(csv);
    }
    let mut all: Option<Fetched> = None;
    for location in parts {
        let part = TableSpec {
            location,
            format: effective.format,
            ..table.clone()
        };
        root.check(&table.name, &part.location, access, project_dir)?;
        let fetched = super::fetch::list(&part.location, access, project_dir).await?;
        for f in &fetched.files {
            root.check_local_file(&table.name, &f.path, &f.name)?;
        }
        match all.as_mut() {
            Some(all) => all.append(fetched),
            None => all = Some(fetched),
        }
    }
    effective.location = table.location.clone();
    let all = all.unwrap_or_else(Fetched::empty);
    if all.files.is_empty() {
        return Err(Error::Source(format!(
            "table `{}`: entity `{entity_name}` of {} has no data files",
            table.name, model_file.name
        )));
    }
    Ok((effective, all))
}

/// An entity of another tool's CDM folder: its columns (empty when its definition
/// gives none: the schema is then inferred), the locations of its data (paths or
/// globs, as table locations) and how they are stored.
struct FoundEntity {
    schema: Vec<ColumnSpec>,
    parts: Vec<String>,
    parquet: bool,
    header: bool,
    delimiter: String,
}

fn model_entity(
    table: &TableSpec,
    file: &str,
    bytes: &[u8],
    entity_name: &str,
) -> Result<FoundEntity> {
    let model = lakecdp_lake::cdm::Model::from_json(file, bytes)?;
    let entity = model.entity(entity_name).ok_or_else(|| {
        let known = model
            .entities
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Error::Source(format!(
            "table `{}`: entity `{entity_name}` is not in {file} (it has: {known})",
            table.name
        ))
    })?;
    if entity.partitions.is_empty() {
        return Err(Error::Source(format!(
            "table `{}`: entity `{entity_name}` of {file} has no partitions",
            table.name
        )));
    }
    let parquet = entity.partitions[0].is_parquet();
    if entity.partitions.iter().any(|p| p.is_parquet() != parquet) {
        return Err(Error::Source(format!(
            "table `{}`: entity `{entity_name}` mixes CSV and Parquet partitions",
            table.name
        )));
    }
    let settings = entity.partitions[0].file_format_settings.clone();
    let base = folder_of(&table.location);
    // Someone else's document: its `lakecdp:arrowType` annotations are not read.
    let mut schema = Vec::with_capacity(entity.attributes.len());
    for a in &entity.attributes {
        schema.push(ColumnSpec {
            name: a.name.clone(),
            column_type: column_type_of(&a.arrow_type(lakecdp_lake::cdm::ArrowTypes::CdmOnly)?),
        });
    }
    Ok(FoundEntity {
        schema,
        parts: entity
            .partitions
            .iter()
            .map(|p| model_partition_location(&base, &p.location))
            .collect(),
        parquet,
        header: settings.as_ref().is_some_and(|s| s.column_headers),
        delimiter: settings.map_or_else(|| ",".to_string(), |s| s.delimiter),
    })
}

/// An entity of a `*.manifest.cdm.json`: its data partitions and partition patterns
/// (`rootLocation` plus `globPattern`), the format from their `is.partition.format.*`
/// traits, and its attributes from the entity definition document (`entityPath`).
async fn manifest_entity(
    table: &TableSpec,
    access: Option<&SourceAccess>,
    project_dir: &Path,
    root: &SourceRoot,
    file: &str,
    bytes: &[u8],
    entity_name: &str,
) -> Result<FoundEntity> {
    let base = folder_of(&table.location);
    let base = base.as_str();
    let invalid = |what: String| Error::Source(format!("{file}: {what}"));
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a valid manifest: {e}")))?;
    let entities = doc
        .get("entities")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("has no `entities` list".into()))?;
    let entity = entities
        .iter()
        .find(|e| {
            e.get("entityName")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(entity_name))
        })
        .ok_or_else(|| {
            let known = entities
                .iter()
                .filter_map(|e| e.get("entityName").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(", ");
            Error::Source(format!(
                "table `{}`: entity `{entity_name}` is not in {file} (it has: {known})",
                table.name
            ))
        })?;
    if entity.get("type").and_then(Value::as_str) == Some("ReferencedEntity") {
        return Err(Error::NotAvailable(format!(
            "{file}: entity `{entity_name}` is a reference to another manifest; point the table at that manifest"
        )));
    }
    let mut parts = Vec::new();
    let mut formats = Vec::new();
    for p in entity
        .get("dataPartitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let location = p
            .get("location")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("a partition of `{entity_name}` has no `location`")))?;
        parts.push(partition_location(base, corpus_path(location)));
        formats.push(partition_format(p));
    }
    for p in entity
        .get("dataPartitionPatterns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let root = p.get("rootLocation").and_then(Value::as_str).unwrap_or("");
        let glob = match (
            p.get("globPattern").and_then(Value::as_str),
            p.get("regularExpression").and_then(Value::as_str),
        ) {
            (Some(g), _) => g.trim_start_matches('/'),
            (None, Some(_)) => {
                return Err(Error::NotAvailable(format!(
                    "{file}: a partition pattern of `{entity_name}` uses `regularExpression`; give it a `globPattern` instead"
                )))
            }
            (None, None) => "**/*",
        };
        let root = corpus_path(root).trim_end_matches('/');
        let location = if root.is_empty() {
            glob.to_string()
        } else {
            format!("{root}/{glob}")
        };
        parts.push(partition_location(base, &location));
        formats.push(partition_format(p));
    }
    if parts.is_empty() {
        return Err(Error::Source(format!(
            "table `{}`: entity `{entity_name}` of {file} has no partitions",
            table.name
        )));
    }
    let first = formats[0].clone();
    if formats.iter().any(|f| f.0 != first.0) {
        return Err(Error::Source(format!(
            "table `{}`: entity `{entity_name}` mixes CSV and Parquet partitions",
            table.name
        )));
    }
    // the attributes, from the entity definition document when it can be read
    let mut schema = Vec::new();
    if let Some(path) = entity.get("entityPath").and_then(Value::as_str) {
        let (document, name) = path.rsplit_once('/').unwrap_or((path, entity_name));
        let location = partition_location(base, corpus_path(document));
        root.check(&table.name, &location, access, project_dir)?;
        let definition = super::fetch::list(&location, access, project_dir)
            .await?
            .download()
            .await?;
        match definition.files.first() {
            Some(f) => {
                root.check_local_file(&table.name, &f.path, &f.name)?;
                let text = std::fs::read(&f.path)
                    .map_err(|e| Error::Source(format!("cannot read {}: {e}", f.name)))?;
                schema = definition_attributes(&f.name, &text, name)?;
            }
            None => tracing::warn!(
                document = %location,
                "the entity definition document is missing; the schema is inferred from the data"
            ),
        }
    }
    Ok(FoundEntity {
        schema,
        parts,
        parquet: first.0,
        header: first.1,
        delimiter: first.2,
    })
}

/// The folder of a document, as written in the table's location (`partner/model.json`
/// is in `partner`).
fn folder_of(location: &str) -> String {
    location
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or_default()
}

/// A corpus path without its adapter (`local:/x` → `x`); relative paths stay relative.
fn corpus_path(path: &str) -> &str {
    match path.split_once(":/") {
        Some((adapter, rest)) if !adapter.contains('/') && !path.contains("://") => {
            rest.trim_start_matches('/')
        }
        _ => path,
    }
}

/// (parquet, column headers, delimiter) from a partition's `exhibitsTraits`; CSV with
/// a header and a comma when none is given.
fn partition_format(partition: &Value) -> (bool, bool, String) {
    let mut format = (false, true, ",".to_string());
    for t in partition
        .get("exhibitsTraits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = t
            .get("traitReference")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        if name == "is.partition.format.parquet" {
            format.0 = true;
        }
        if name == "is.partition.format.csv" {
            for arg in t
                .get("arguments")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let value = arg.get("value").and_then(Value::as_str).unwrap_or_default();
                match arg.get("name").and_then(Value::as_str) {
                    Some("columnHeaders") => format.1 = value.eq_ignore_ascii_case("true"),
                    Some("delimiter") if !value.is_empty() => format.2 = value.to_string(),
                    _ => {}
                }
            }
        }
    }
    format
}

/// The columns of entity `name` in a CDM entity definition document: `hasAttributes`,
/// including the members of attribute groups.
fn definition_attributes(file: &str, bytes: &[u8], name: &str) -> Result<Vec<ColumnSpec>> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::Source(format!("{file}: not a valid CDM document: {e}")))?;
    let definition = doc
        .get("definitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|d| {
            d.get("entityName")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .ok_or_else(|| Error::Source(format!("{file}: no definition of entity `{name}`")))?;
    let mut columns = Vec::new();
    fn walk(attributes: &[Value], columns: &mut Vec<ColumnSpec>) {
        for a in attributes {
            if let Some(members) = a
                .pointer("/attributeGroupReference/members")
                .and_then(Value::as_array)
            {
                walk(members, columns);
            } else if let Some(name) = a.get("name").and_then(Value::as_str) {
                let format = a
                    .get("dataFormat")
                    .and_then(Value::as_str)
                    .unwrap_or("String");
                columns.push(ColumnSpec {
                    name: name.to_string(),
                    column_type: data_format_type(format),
                });
            }
        }
    }
    if let Some(attributes) = definition.get("hasAttributes").and_then(Value::as_array) {
        walk(attributes, &mut columns);
    }
    Ok(columns)
}

/// The column type of a CDM `dataFormat`.
fn data_format_type(format: &str) -> ColumnType {
    match format.to_ascii_lowercase().as_str() {
        "int16" | "int32" | "int64" | "byte" => ColumnType::Int64,
        "float" | "double" => ColumnType::Double,
        "decimal" => ColumnType::Decimal(38, 10),
        "boolean" => ColumnType::Boolean,
        "date" => ColumnType::Date,
        "datetime" => ColumnType::DateTime,
        "datetimeoffset" => ColumnType::DateTimeTz,
        _ => ColumnType::String,
    }
}

/// Where a partition named in `model.json` is: a plain absolute path in the model.json
/// of a local folder (lakecdp's local lakes write them) stays as it is; everything else
/// as [`partition_location`] (corpus paths of manifests, whose leading `/` is the root of
/// their namespace, never take this turn).
fn model_partition_location(base: &str, location: &str) -> String {
    if location.starts_with('/') && !base.contains("://") {
        location.to_string()
    } else {
        partition_location(base, location)
    }
}

/// Where a partition is, as a table location: relative locations are relative to the
/// folder of model.json; `https://<account>.dfs|blob.core.windows.net/<container>/...`
/// becomes an `abfss://` URL.
fn partition_location(base: &str, location: &str) -> String {
    if let Ok(url) = Url::parse(location) {
        let host = url.host_str().unwrap_or_default();
        if url.scheme() == "https"
            && (host.ends_with(".dfs.core.windows.net") || host.ends_with(".blob.core.windows.net"))
        {
            let account = host.split('.').next().unwrap_or_default();
            let path = url.path().trim_start_matches('/');
            let (container, rest) = path.split_once('/').unwrap_or((path, ""));
            return format!("abfss://{container}@{account}.dfs.core.windows.net/{rest}");
        }
        return location.to_string();
    }
    if base.is_empty() {
        location.to_string()
    } else {
        format!("{base}/{}", location.trim_start_matches('/'))
    }
}
