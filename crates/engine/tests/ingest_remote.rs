//! Source tables in remote storage: an Azurite container and an S3 bucket (the servers
//! scripts/test.sh starts), read with the source's own credentials.

use std::path::Path;

use arrow::array::{Array, StringArray};
use lakecdp_core::{
    AdlsConfig, EnvironmentId, LocalConfig, S3Config, SecretRef, SourceAccess, SourceFormat,
    SourceSpec, StorageConfig, TableSpec,
};
use lakecdp_engine::ingest::{ingest_source, IngestOptions};
use lakecdp_lake::backend::azure::AzureService;
use lakecdp_lake::backend::s3::S3Service;
use lakecdp_lake::partition::read_entity;
use lakecdp_lake::publish::read_model;
use lakecdp_lake::{backend, Lake, Process};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh"))
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

const PART1: &str = "Id,Name\n1,Ann\n2,\"Lee, Bo\"\n";
const PART2: &str = "Id,Name\n3,Kim\nx4,\"bad \"quote\"\n";

async fn load(
    dir: &Path,
    location: String,
    access: SourceAccess,
) -> (Lake, lakecdp_engine::ingest::TableReport) {
    std::fs::create_dir_all(dir.join("lake/customerinsights")).unwrap();
    let handle = backend::open(
        &StorageConfig::Local(LocalConfig {
            path: dir.join("lake"),
        }),
        None,
    )
    .unwrap();
    let lake = Lake::new(&handle, EnvironmentId::new());
    let table = TableSpec {
        name: "People".into(),
        location,
        format: SourceFormat::Csv,
        primary_key: Some("Id".into()),
        last_updated: None,
        csv: None,
        entity: None,
        schema: vec![],
        incremental: false,
    };
    let source = SourceSpec {
        name: "Partner".into(),
        description: None,
        max_corrupt_share: Some(0.5),
        access: Some(access),
        tables: vec![table],
    };
    let report = ingest_source(&lake, &source, dir, &IngestOptions::default())
        .await
        .unwrap();
    assert!(!report.unchanged);
    // the same objects again: recognised from their listing (size and ETag), not reloaded
    let again = ingest_source(&lake, &source, dir, &IngestOptions::default())
        .await
        .unwrap();
    assert!(
        again.unchanged && again.tables.is_empty() && again.run_id == report.run_id,
        "{again:?}"
    );
    (lake, report.tables[0].clone())
}

async fn names(lake: &Lake, entity: &str, column: &str) -> Vec<String> {
    let process = Process::Ingestion("Partner".into());
    let model = read_model(lake, &process).await.unwrap().unwrap();
    let batches = read_entity(lake, &process.folder(), model.entity(entity).unwrap())
        .await
        .unwrap();
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column_by_name(column)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            (0..a.len()).map(move |i| a.value(i).to_string())
        })
        .collect()
}

#[tokio::test]
async fn csv_files_in_an_azurite_container_are_loaded() {
    let container = unique("partner");
    let config = AdlsConfig {
        account: Some(var("LAKECDP_TEST_AZURITE_ACCOUNT")),
        container: Some(container.clone()),
        account_key: Some(SecretRef::Env("LAKECDP_TEST_AZURITE_KEY".into())),
        endpoint: Some(var("LAKECDP_TEST_AZURITE_ENDPOINT")),
        emulator: true,
        allow_flat_namespace: true,
        ..Default::default()
    };
    AzureService::new(&config, None)
        .unwrap()
        .create_container(&container)
        .await
        .unwrap();
    let store = backend::azure::open(&config, None).unwrap().store;
    store
        .put(
            &ObjectPath::from("exports/people-1.csv"),
            PutPayload::from_static(PART1.as_bytes()),
        )
        .await
        .unwrap();
    store
        .put(
            &ObjectPath::from("exports/people-2.csv"),
            PutPayload::from_static(PART2.as_bytes()),
        )
        .await
        .unwrap();
    store
        .put(
            &ObjectPath::from("exports/readme.txt"),
            PutPayload::from_static(b"not a table"),
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let access = SourceAccess::Adls {
        account: None,
        account_key: Some(SecretRef::Env("LAKECDP_TEST_AZURITE_KEY".into())),
        sas_token: None,
        endpoint: Some(var("LAKECDP_TEST_AZURITE_ENDPOINT")),
        emulator: true,
    };
    let location = format!(
        "abfss://{container}@{}.dfs.core.windows.net/exports/people-*.csv",
        var("LAKECDP_TEST_AZURITE_ACCOUNT")
    );
    let (lake, report) = load(dir.path(), location, access).await;
    assert_eq!(
        (report.read, report.written, report.corrupt),
        (4, 3, 1),
        "{report:?}"
    );
    assert_eq!(
        names(&lake, "People", "Name").await,
        ["Ann", "Lee, Bo", "Kim"]
    );
    let files = names(&lake, "Partner_People_corrupt", "File").await;
    assert_eq!(
        files,
        [format!(
            "abfss://{container}@devstoreaccount1.dfs.core.windows.net/exports/people-2.csv"
        )]
    );
}

#[tokio::test]
async fn csv_files_in_an_s3_bucket_are_loaded() {
    let bucket = unique("partner-");
    let config = S3Config {
        bucket: bucket.clone(),
        prefix: None,
        region: var("LAKECDP_TEST_S3_REGION"),
        endpoint: Some(var("LAKECDP_TEST_S3_ENDPOINT")),
        access_key_id: Some(SecretRef::Env("LAKECDP_TEST_S3_ACCESS_KEY_ID".into())),
        secret_access_key: Some(SecretRef::Env("LAKECDP_TEST_S3_SECRET_ACCESS_KEY".into())),
        session_token: None,
        path_style: Some(true),
    };
    S3Service::new(&config, None)
        .unwrap()
        .create_bucket()
        .await
        .unwrap();
    let store = backend::s3::open(&config, None).unwrap().store;
    store
        .put(
            &ObjectPath::from("in/people-1.csv"),
            PutPayload::from_static(PART1.as_bytes()),
        )
        .await
        .unwrap();
    store
        .put(
            &ObjectPath::from("in/people-2.csv"),
            PutPayload::from_static(PART2.as_bytes()),
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let access = SourceAccess::S3 {
        region: var("LAKECDP_TEST_S3_REGION"),
        endpoint: Some(var("LAKECDP_TEST_S3_ENDPOINT")),
        access_key_id: Some(SecretRef::Env("LAKECDP_TEST_S3_ACCESS_KEY_ID".into())),
        secret_access_key: Some(SecretRef::Env("LAKECDP_TEST_S3_SECRET_ACCESS_KEY".into())),
    };
    let (lake, report) = load(dir.path(), format!("s3://{bucket}/in/people-*.csv"), access).await;
    assert_eq!(
        (report.read, report.written, report.corrupt),
        (4, 3, 1),
        "{report:?}"
    );
    assert_eq!(
        names(&lake, "People", "Name").await,
        ["Ann", "Lee, Bo", "Kim"]
    );
    let reasons = names(&lake, "Partner_People_corrupt", "Reason").await;
    assert!(reasons[0].starts_with("unescaped quote"), "{reasons:?}");
}
