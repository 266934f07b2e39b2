//! The export target contract, run against every target: PostgreSQL (the test server),
//! a lake on a local folder and a lake on the S3 server.
//!
//! Each target comes with a reader that returns a table's rows as its readers see them:
//! SQL for PostgreSQL, `model.json` and the CSV files it points at for a lake.

mod common;

use std::future::Future;
use std::pin::Pin;

use common::*;
use futures::TryStreamExt;
use lakecdp_connect::{ExportTarget, LakeTarget};
use lakecdp_core::{EnvironmentId, LocalConfig, S3Config, SecretRef, StorageConfig};
use lakecdp_lake::backend::s3::S3Service;
use lakecdp_lake::cdm::Model;
use lakecdp_lake::{backend, StoreHandle};
use object_store::ObjectStoreExt;

type Rows = Vec<(i64, String)>;
type Reader<'a> = Box<dyn Fn(&'a str) -> Pin<Box<dyn Future<Output = Option<Rows>> + 'a>> + 'a>;

const EXPORT: &str = "Contract";

async fn contract(target: &dyn ExportTarget, read: Reader<'_>) {
    let kind = target.kind();
    // a run of two tables
    let mut run = target.begin(EXPORT).await.unwrap();
    run.export_table(
        "A",
        people_schema(),
        stream(vec![people(0..2, "a1"), people(2..3, "a1")]),
    )
    .await
    .unwrap();
    run.export_table("B", people_schema(), stream(vec![people(0..2, "b1")]))
        .await
        .unwrap();
    run.export_table("Empty", people_schema(), stream(vec![]))
        .await
        .unwrap();
    let summary = run.finish().await.unwrap();
    assert_eq!(summary.rows(), 5, "{kind}");
    assert_eq!(summary.tables.len(), 3, "{kind}");
    assert_eq!(read("A").await.unwrap().len(), 3, "{kind}");
    assert_eq!(
        read("B").await.unwrap(),
        vec![(0, "b1-0".into()), (1, "b1-1".into())],
        "{kind}"
    );
    assert_eq!(read("Empty").await.unwrap(), vec![], "{kind}");

    // a later run replaces A as a whole and leaves B untouched
    let mut run = target.begin(EXPORT).await.unwrap();
    run.export_table("A", people_schema(), stream(vec![people(7..9, "a2")]))
        .await
        .unwrap();
    run.finish().await.unwrap();
    assert_eq!(
        read("A").await.unwrap(),
        vec![(7, "a2-7".into()), (8, "a2-8".into())],
        "{kind}"
    );
    assert_eq!(read("B").await.unwrap().len(), 2, "{kind}");

    // a table whose input fails keeps the previous run's rows; the run goes on
    let mut run = target.begin(EXPORT).await.unwrap();
    let err = run
        .export_table(
            "A",
            people_schema(),
            failing_stream(vec![people(0..1000, "bad")]),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("the input failed"),
        "{kind}: {err}"
    );
    run.export_table("B", people_schema(), stream(vec![people(3..4, "b3")]))
        .await
        .unwrap();
    run.finish().await.unwrap();
    assert_eq!(read("A").await.unwrap().len(), 2, "{kind}");
    assert_eq!(read("B").await.unwrap(), vec![(3, "b3-3".into())], "{kind}");
    assert_eq!(read("Never").await, None, "{kind}");
}

#[tokio::test]
async fn postgres_keeps_the_contract() {
    let db = unique("lakecdp_contract");
    let target = pg_target(&db);
    // the database exists once a run began
    drop(target.begin(EXPORT).await.unwrap());
    let client = pg_client(&db).await;
    let client = &client;
    let read: Reader<'_> = Box::new(move |table| {
        Box::pin(async move {
            let rows = client
                .query(
                    &format!(
                        "SELECT \"Id\", \"Name\" FROM customerinsights.\"{table}\" ORDER BY 1"
                    ),
                    &[],
                )
                .await
                .ok()?;
            Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    });
    contract(&target, read).await;
}

async fn lake_rows(target: &LakeTarget, handle: &StoreHandle, table: &str) -> Option<Rows> {
    let rel = format!("{}/model.json", target.export_folder(EXPORT));
    let bytes = handle
        .store
        .get(&target.path(&rel))
        .await
        .ok()?
        .bytes()
        .await
        .unwrap();
    let model = Model::from_json(&rel, &bytes).unwrap();
    let entity = model.entity(table)?;
    let mut rows = Vec::new();
    for p in &entity.partitions {
        let relative = p.location.strip_prefix(&handle.base_url).unwrap();
        let bytes = handle
            .store
            .get(&target.path(relative))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = arrow::csv::ReaderBuilder::new(people_schema())
            .with_header(true)
            .build(std::io::Cursor::new(bytes))
            .unwrap();
        for b in reader {
            let b = b.unwrap();
            let ids = b
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap();
            let names = b
                .column(1)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap();
            for i in 0..b.num_rows() {
                rows.push((ids.value(i), names.value(i).to_string()));
            }
        }
    }
    rows.sort();
    Some(rows)
}

async fn lake_contract(handle: StoreHandle) {
    let target = LakeTarget::new(handle.clone(), EnvironmentId::new());
    let (t, h) = (&target, &handle);
    let read: Reader<'_> = Box::new(move |table| Box::pin(lake_rows(t, h, table)));
    contract(&target, read).await;
    // no file of a failed table was left behind: A has the files of two runs
    let files: Vec<_> = handle
        .store
        .list(Some(
            &target.path(&format!("{}/A", target.export_folder(EXPORT))),
        ))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
}

#[tokio::test]
async fn a_local_lake_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("customerinsights")).unwrap();
    let config = StorageConfig::Local(LocalConfig {
        path: dir.path().to_path_buf(),
    });
    lake_contract(backend::open(&config, None).unwrap()).await;
}

#[tokio::test]
async fn an_s3_lake_keeps_the_contract() {
    service_var("LAKECDP_TEST_S3_ACCESS_KEY_ID");
    let config = S3Config {
        bucket: unique("lakecdp-contract").replace('_', "-"),
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
    lake_contract(backend::open(&StorageConfig::S3(config), None).unwrap()).await;
}
