//! The lake export target on a local folder and on the S3 server (`scripts/test.sh`
//! starts it).

mod common;

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use common::*;
use futures::TryStreamExt;
use lakecdp_connect::{ExportTarget, LakeTarget};
use lakecdp_core::{EnvironmentId, LocalConfig, S3Config, SecretRef, StorageConfig};
use lakecdp_lake::backend::s3::S3Service;
use lakecdp_lake::cdm::{CdmDataType, Model};
use lakecdp_lake::{backend, StoreHandle};
use object_store::{ObjectStore, ObjectStoreExt};

struct Fixture {
    handle: StoreHandle,
    _dir: Option<tempfile::TempDir>,
}

fn local() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("customerinsights")).unwrap();
    let config = StorageConfig::Local(LocalConfig {
        path: dir.path().to_path_buf(),
    });
    Fixture {
        handle: backend::open(&config, None).unwrap(),
        _dir: Some(dir),
    }
}

async fn s3() -> Fixture {
    service_var("LAKECDP_TEST_S3_ACCESS_KEY_ID");
    let config = S3Config {
        bucket: unique("lakecdp-export").replace('_', "-"),
        prefix: None,
        region: service_var("LAKECDP_TEST_S3_REGION"),
        endpoint: Some(service_var("LAKECDP_TEST_S3_ENDPOINT")),
        access_key_id: Some(SecretRef::Env("LAKECDP_TEST_S3_ACCESS_KEY_ID".into())),
        secret_access_key: Some(SecretRef::Env("LAKECDP_TEST_S3_SECRET_ACCESS_KEY".into())),
        session_token: None,
        path_style: Some(true),
        credentials: Default::default(),
    };
    S3Service::new(&config, None)
        .unwrap()
        .create_bucket()
        .await
        .unwrap();
    Fixture {
        handle: backend::open(&StorageConfig::S3(config), None).unwrap(),
        _dir: None,
    }
}

async fn get(target: &LakeTarget, handle: &StoreHandle, relative: &str) -> Vec<u8> {
    handle
        .store
        .get(&target.path(relative))
        .await
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn list(target: &LakeTarget, handle: &StoreHandle) -> Vec<String> {
    let root = target.path(target.root());
    let mut names: Vec<String> = handle
        .store
        .list(Some(&root))
        .map_ok(|m| {
            m.location
                .prefix_match(&handle.container)
                .unwrap()
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/")
        })
        .try_collect()
        .await
        .unwrap();
    names.sort();
    names
}

async fn model(target: &LakeTarget, handle: &StoreHandle, export: &str) -> Model {
    let rel = format!("{}/model.json", target.export_folder(export));
    Model::from_json(&rel, &get(target, handle, &rel).await).unwrap()
}

/// The path of a partition location, relative to the container.
fn relative_of(handle: &StoreHandle, location: &str) -> String {
    location
        .strip_prefix(&handle.base_url)
        .unwrap_or_else(|| panic!("{location} is not under {}", handle.base_url))
        .trim_start_matches('/')
        .to_string()
}

/// `CustomerInsights_<env>/<Export>/<Table>/<yyyy>/<MM>/<dd>/<HHmm>/<Table>_<runId>.csv`
fn assert_layout(path: &str, env: &EnvironmentId, export: &str, table: &str) {
    let parts: Vec<&str> = path.split('/').collect();
    assert_eq!(parts.len(), 8, "{path}");
    assert_eq!(parts[0], format!("CustomerInsights_{env}"), "{path}");
    assert_eq!(parts[1], export, "{path}");
    assert_eq!(parts[2], table, "{path}");
    for (part, len) in [(parts[3], 4), (parts[4], 2), (parts[5], 2), (parts[6], 4)] {
        assert_eq!(part.len(), len, "{path}");
        assert!(part.chars().all(|c| c.is_ascii_digit()), "{path}");
    }
    let file = parts[7];
    let run = file
        .strip_prefix(&format!("{table}_"))
        .and_then(|f| f.strip_suffix(".csv"))
        .unwrap_or_else(|| panic!("{path}"));
    assert!(
        lakecdp_core::RunId::parse(run).is_some(),
        "{path} is named by a run id"
    );
}

async fn layout_and_model(f: Fixture) {
    let handle = &f.handle;
    let env = EnvironmentId::new();
    let target = LakeTarget::new(handle.clone(), env);
    let lines = target.check().await.unwrap();
    assert!(lines.iter().all(|l| l.is_ok()), "{lines:?}");
    assert!(
        list(&target, handle).await.is_empty(),
        "the check leaves nothing behind"
    );

    let mut run = target.begin("Sales").await.unwrap();
    let done = run
        .export_table(
            "People",
            people_schema(),
            stream(vec![people(0..2, "a,\"b\"\nc"), people(2..3, "ü")]),
        )
        .await
        .unwrap();
    assert_eq!(done.rows, 3);
    let other = run
        .export_table("Empty", people_schema(), stream(vec![]))
        .await
        .unwrap();
    assert_eq!(other.rows, 0);
    // model.json is written last
    assert!(!list(&target, handle)
        .await
        .iter()
        .any(|p| p.ends_with("model.json")));
    let summary = run.finish().await.unwrap();
    assert_eq!(summary.rows(), 3);

    let files = list(&target, handle).await;
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(files[2], format!("CustomerInsights_{env}/Sales/model.json"));
    let m = model(&target, handle, "Sales").await;
    assert_eq!(m.name, "Sales");
    assert_eq!(m.entities.len(), 2);
    let people_entity = m.entity("People").unwrap();
    let types: Vec<_> = people_entity
        .attributes
        .iter()
        .map(|a| (a.name.as_str(), a.data_type))
        .collect();
    assert_eq!(
        types,
        vec![("Id", CdmDataType::Int64), ("Name", CdmDataType::String)]
    );
    assert_eq!(people_entity.partitions.len(), 1);
    let p = &people_entity.partitions[0];
    assert!(p.file_format_settings.as_ref().unwrap().column_headers);
    let path = relative_of(handle, &p.location);
    assert_layout(&path, &env, "Sales", "People");
    assert!(files.contains(&path), "{files:?}");
    let csv = String::from_utf8(get(&target, handle, &path).await).unwrap();
    assert_eq!(
        csv,
        "Id,Name\n0,\"a,\"\"b\"\"\nc-0\"\n1,\"a,\"\"b\"\"\nc-1\"\n2,ü-2\n"
    );
    let empty = m.entity("Empty").unwrap();
    let path = relative_of(handle, &empty.partitions[0].location);
    assert_layout(&path, &env, "Sales", "Empty");
    assert_eq!(get(&target, handle, &path).await, b"Id,Name\n");

    // a second run: model.json points at the newest files; the old files stay
    let first = relative_of(handle, &people_entity.partitions[0].location);
    let mut run = target.begin("Sales").await.unwrap();
    run.export_table("People", people_schema(), stream(vec![people(7..8, "new")]))
        .await
        .unwrap();
    run.finish().await.unwrap();
    let m2 = model(&target, handle, "Sales").await;
    // the table not exported again keeps its entity and files
    assert_eq!(m2.entities.len(), 2);
    assert_eq!(m2.entity("Empty"), m.entity("Empty"));
    let second = relative_of(handle, &m2.entity("People").unwrap().partitions[0].location);
    assert_ne!(second, first);
    assert_layout(&second, &env, "Sales", "People");
    assert_eq!(get(&target, handle, &second).await, b"Id,Name\n7,new-7\n");
    assert_eq!(get(&target, handle, &first).await.len(), csv.len());

    // a failed run leaves model.json pointing at complete files
    let before = get(
        &target,
        handle,
        &format!("CustomerInsights_{env}/Sales/model.json"),
    )
    .await;
    let files_before = list(&target, handle).await;
    let mut run = target.begin("Sales").await.unwrap();
    let err = run
        .export_table(
            "People",
            people_schema(),
            failing_stream(vec![people(0..5, "bad")]),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reading the input"), "{err}");
    drop(run);
    assert_eq!(
        get(
            &target,
            handle,
            &format!("CustomerInsights_{env}/Sales/model.json")
        )
        .await,
        before
    );
    assert_eq!(list(&target, handle).await, files_before);

    // CSV cannot hold binary columns
    let schema = Arc::new(Schema::new(vec![Field::new("Raw", DataType::Binary, true)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(BinaryArray::from(vec![&b"x"[..]])) as ArrayRef],
    )
    .unwrap();
    let mut run = target.begin("Sales").await.unwrap();
    let err = run
        .export_table("Raw", schema, stream(vec![batch]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`Raw`"), "{err}");
    assert!(target.begin("a/b").await.is_err());
}

#[tokio::test]
async fn local_folder_layout_and_model_json() {
    layout_and_model(local()).await;
}

#[tokio::test]
async fn s3_layout_and_model_json() {
    layout_and_model(s3().await).await;
}

/// Two runs of one export finishing together (each sending its own table) both keep
/// their table in `model.json`, and neither overwrites the other's files.
async fn concurrent_runs_keep_both_tables(f: Fixture) {
    let handle = &f.handle;
    let env = EnvironmentId::new();
    let target = LakeTarget::new(handle.clone(), env);
    let one = |name: &'static str| {
        let target = target.clone();
        async move {
            let mut run = target.begin("Nightly").await.unwrap();
            run.export_table(name, people_schema(), stream(vec![people(0..3, name)]))
                .await
                .unwrap();
            run.finish().await.unwrap()
        }
    };
    for _ in 0..3 {
        let (a, b) = tokio::join!(one("Customers"), one("Orders"));
        assert_eq!(a.tables.len() + b.tables.len(), 2);
        let m = model(&target, handle, "Nightly").await;
        let mut names: Vec<&str> = m.entities.iter().map(|e| e.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["Customers", "Orders"]);
        for e in &m.entities {
            let relative = relative_of(handle, &e.partitions[0].location);
            assert!(
                !get(&target, handle, &relative).await.is_empty(),
                "{relative}"
            );
        }
    }
    // every run wrote its own files: 3 runs of each table
    let files = list(&target, handle).await;
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".csv")).count(),
        6,
        "{files:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_concurrent_runs_keep_both_tables() {
    concurrent_runs_keep_both_tables(local()).await;
}

#[tokio::test]
async fn s3_concurrent_runs_keep_both_tables() {
    concurrent_runs_keep_both_tables(s3().await).await;
}
