//! CDM folder tables: another tool's `model.json` and one of its entities become a
//! CSV or Parquet table with the entity's attributes as its schema.

use std::path::Path;

use lakecdp_core::{ColumnSpec, SourceAccess, SourceFormat, TableSpec};
use url::Url;

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
    if model_file.name.ends_with(".manifest.cdm.json") {
        return Err(Error::NotAvailable(format!("`{}`: reading *.manifest.cdm.json folders is not available yet; point the table at the folder's model.json", model_file.name)));
    }
    let model = lakecdp_lake::cdm::Model::from_json(&model_file.name, &bytes)?;
    let entity = model.entity(&entity_name).ok_or_else(|| {
        let known = model
            .entities
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Error::Source(format!(
            "table `{}`: entity `{entity_name}` is not in {} (it has: {known})",
            table.name, model_file.name
        ))
    })?;
    if entity.partitions.is_empty() {
        return Err(Error::Source(format!(
            "table `{}`: entity `{entity_name}` of {} has no partitions",
            table.name, model_file.name
        )));
    }
    // the folder of model.json, as written in the table's location
    let base = table
        .location
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or_default();
    let parquet = entity.partitions[0].is_parquet();
    if entity.partitions.iter().any(|p| p.is_parquet() != parquet) {
        return Err(Error::Source(format!(
            "table `{}`: entity `{entity_name}` mixes CSV and Parquet partitions",
            table.name
        )));
    }
    let settings = entity.partitions[0].file_format_settings.clone();
    let mut schema: Vec<ColumnSpec> = entity
        .attributes
        .iter()
        .map(|a| ColumnSpec {
            name: a.name.clone(),
            column_type: column_type_of(&lakecdp_lake::cdm::arrow_type_of(
                a.data_type,
                a.arrow_type_annotation(),
            )),
        })
        .collect();
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
        if let Some(f) = &settings {
            csv.header = f.column_headers;
            csv.delimiter = f.delimiter.clone();
        } else {
            csv.header = false;
        }
        effective.csv = Some(csv);
    }
    let mut all: Option<Fetched> = None;
    for p in &entity.partitions {
        let location = partition_location(&base, &p.location);
        let part = TableSpec {
            location,
            format: effective.format,
            ..table.clone()
        };
        let fetched = fetch(&part, access, project_dir).await?;
        match all.as_mut() {
            Some(all) => all.append(fetched),
            None => all = Some(fetched),
        }
    }
    effective.location = table.location.clone();
    let all =
        all.ok_or_else(|| Error::Internal("an entity with partitions gave no files".into()))?;
    Ok((effective, all))
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
