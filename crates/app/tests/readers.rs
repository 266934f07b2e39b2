//! What a refresh publishes, read by the readers users run: the CDM SDK
//! (`commondatamodel-objectmodel`) loads every CDM folder's `model.json` and manifest and
//! resolves each partition to a file, pyarrow reads the files, and every table has
//! lakecdp's own columns and rows. The tests need `LAKECDP_TEST_PYTHON`, a Python with
//! both installed (`scripts/test.sh` sets it).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use lakecdp_app::Silent;
use lakecdp_lake::partition::read_entity;
use lakecdp_lake::publish::read_model;
use lakecdp_lake::{backend, Lake, Process};
use serde_json::{json, Value};

/// Folder → entity → `{columns, rows}`, as read by `tests/readers/cdm_read.py` through
/// `document` (`model.json` or `default.manifest.cdm.json`) of every folder under `env`.
fn read_with_cdm_sdk(env: &Path, document: &str) -> Value {
    let python = std::env::var("LAKECDP_TEST_PYTHON").expect(
        "LAKECDP_TEST_PYTHON names a Python with the CDM SDK and pyarrow (scripts/test.sh sets it)",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/cdm_read.py");
    // run from `/`: a location the SDK resolves against the working folder resolves nowhere
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(env)
        .arg(document)
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the CDM SDK reads every {document}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The same shape as [`read_with_cdm_sdk`], read by lakecdp itself.
async fn read_with_lakecdp(lake: &Lake) -> Value {
    let folders = [
        "DataIngestion/Crm",
        "DataIngestion/Shop",
        "DataIngestion/Loyalty",
        "Unification",
        "Activities",
        "Measures",
        "Segments",
        "Reports",
    ];
    let mut all = BTreeMap::new();
    for folder in folders {
        let process = Process::from_folder(folder).unwrap();
        let model = read_model(lake, &process).await.unwrap().unwrap();
        let mut entities = BTreeMap::new();
        for e in &model.entities {
            let rows: usize = read_entity(lake, folder, e)
                .await
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum();
            let columns: Vec<&str> = e.attributes.iter().map(|a| a.name.as_str()).collect();
            entities.insert(e.name.clone(), json!({ "columns": columns, "rows": rows }));
        }
        all.insert(folder.to_string(), json!(entities));
    }
    json!(all)
}

async fn every_table_reads_the_same(output_format: &str) {
    let r = common::retail_with(|project| {
        project.replace(
            "output_format = \"csv\"",
            &format!("output_format = \"{output_format}\""),
        )
    })
    .await;
    r.full_refresh(Arc::new(Silent)).await;
    let lake = Lake::new(
        &backend::open(&r.env.storage, Some(r.path())).unwrap(),
        r.env.id,
    );
    let ours = read_with_lakecdp(&lake).await;
    assert!(
        ours["Unification"]["Customer"]["rows"].as_u64().unwrap() > 1000,
        "{ours}"
    );
    assert_eq!(read_with_cdm_sdk(&r.env_folder(), "model.json"), ours);
    assert_eq!(
        read_with_cdm_sdk(&r.env_folder(), "default.manifest.cdm.json"),
        ours
    );

    // the environment's folder moved elsewhere: its manifests name partitions relative to
    // their folders, and lakecdp reads the moved lake's model.json from the move
    let moved = tempfile::tempdir().unwrap();
    let target = moved
        .path()
        .join("customerinsights")
        .join(r.env.id.folder());
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::rename(r.env_folder(), &target).unwrap();
    assert_eq!(
        read_with_cdm_sdk(&target, "default.manifest.cdm.json"),
        ours
    );
    let storage = lakecdp_core::StorageConfig::Local(lakecdp_core::LocalConfig {
        path: moved.path().to_path_buf(),
    });
    let moved_lake = Lake::new(&backend::open(&storage, None).unwrap(), r.env.id);
    assert_eq!(read_with_lakecdp(&moved_lake).await, ours);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cdm_sdk_and_pyarrow_read_every_csv_table_lakecdp_publishes() {
    every_table_reads_the_same("csv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cdm_sdk_and_pyarrow_read_every_parquet_table_lakecdp_publishes() {
    every_table_reads_the_same("parquet").await;
}
