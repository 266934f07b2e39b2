//! Helpers shared by the ingestion tests.
#![allow(dead_code)]

use std::path::Path;

use arrow::array::{Array, StringArray};
use arrow::record_batch::RecordBatch;
use lakecdp_core::{
    ColumnSpec, ColumnType, EnvironmentId, LocalConfig, SourceFormat, StorageConfig, TableSpec,
};
use lakecdp_lake::partition::read_entity;
use lakecdp_lake::publish::read_model;
use lakecdp_lake::{backend, Lake, Process};

pub fn lake(dir: &Path) -> Lake {
    std::fs::create_dir_all(dir.join("lake/customerinsights")).unwrap();
    let handle = backend::open(
        &StorageConfig::Local(LocalConfig {
            path: dir.join("lake"),
        }),
        None,
    )
    .unwrap();
    Lake::new(&handle, EnvironmentId::new())
}

pub fn table(name: &str, location: &str, format: SourceFormat) -> TableSpec {
    TableSpec {
        name: name.into(),
        location: location.into(),
        format,
        primary_key: None,
        last_updated: None,
        csv: None,
        entity: None,
        schema: vec![],
        incremental: false,
    }
}

/// A source with one CSV table, its primary key and its typed columns.
pub fn csv_source(
    name: &str,
    table_name: &str,
    file: &str,
    key: &str,
    columns: &[(&str, ColumnType)],
) -> lakecdp_core::SourceSpec {
    let mut t = table(table_name, file, SourceFormat::Csv);
    t.primary_key = Some(key.into());
    t.schema = columns.iter().map(|(c, ty)| col(c, *ty)).collect();
    lakecdp_core::SourceSpec {
        name: name.into(),
        description: None,
        max_corrupt_share: None,
        access: None,
        tables: vec![t],
    }
}

pub fn col(name: &str, t: ColumnType) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        column_type: t,
    }
}

pub async fn entity(lake: &Lake, source: &str, name: &str) -> RecordBatch {
    let process = Process::Ingestion(source.into());
    let model = read_model(lake, &process)
        .await
        .unwrap()
        .expect("published");
    let batches = read_entity(lake, &process.folder(), model.entity(name).expect("entity"))
        .await
        .unwrap();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

pub fn strings(batch: &RecordBatch, column: &str) -> Vec<String> {
    let a = arrow::compute::cast(
        batch.column_by_name(column).unwrap(),
        &arrow::datatypes::DataType::Utf8,
    )
    .unwrap();
    let a = a.as_any().downcast_ref::<StringArray>().unwrap();
    (0..a.len())
        .map(|i| {
            if a.is_null(i) {
                "∅".to_string()
            } else {
                a.value(i).to_string()
            }
        })
        .collect()
}

/// An entity of the published `Unification/` folder.
pub async fn unified(lake: &Lake, name: &str) -> RecordBatch {
    let process = Process::Unification;
    let model = read_model(lake, &process)
        .await
        .unwrap()
        .expect("published");
    let batches = read_entity(lake, &process.folder(), model.entity(name).expect("entity"))
        .await
        .unwrap();
    if batches.is_empty() {
        return RecordBatch::new_empty(lakecdp_lake::partition::entity_schema(
            model.entity(name).unwrap(),
        ));
    }
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}
