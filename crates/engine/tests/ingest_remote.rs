//! Source tables in remote storage: an Azurite container and an S3 bucket (the servers
//! scripts/test.sh starts), read with the source's own credentials, in every format:
//! CSV, Parquet, JSON Lines, a CDM folder, the incremental layout and a Delta table.

use std::path::Path;

use arrow::array::{Array, StringArray};
use lakecdp_core::{
    AdlsConfig, Credentials, EnvironmentId, LocalConfig, S3Config, SecretRef, SourceAccess,
    SourceFormat, SourceSpec, StorageConfig, TableSpec,
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

/// A new container in Azurite, and a store on it.
async fn azurite_container(
    prefix: &str,
) -> (String, std::sync::Arc<dyn object_store::ObjectStore>) {
    let container = unique(prefix);
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
    (container, store)
}

/// Write an object.
async fn put(store: &dyn object_store::ObjectStore, path: &str, bytes: Vec<u8>) {
    store
        .put(&ObjectPath::from(path), PutPayload::from(bytes))
        .await
        .unwrap();
}

/// The source access settings for Azurite.
fn azurite_access() -> SourceAccess {
    SourceAccess::Adls {
        account: None,
        account_key: Some(SecretRef::Env("LAKECDP_TEST_AZURITE_KEY".into())),
        sas_token: None,
        endpoint: Some(var("LAKECDP_TEST_AZURITE_ENDPOINT")),
        emulator: true,
        credentials: Default::default(),
    }
}

/// A new bucket in the S3 server, and a store on it.
async fn s3_bucket(prefix: &str) -> (String, std::sync::Arc<dyn object_store::ObjectStore>) {
    let bucket = unique(prefix);
    let store = s3_store(&bucket).await;
    (bucket, store)
}

/// A store on the bucket `bucket` of the S3 server, created if it is not there.
async fn s3_store(bucket: &str) -> std::sync::Arc<dyn object_store::ObjectStore> {
    let config = S3Config {
        bucket: bucket.to_string(),
        prefix: None,
        region: var("LAKECDP_TEST_S3_REGION"),
        endpoint: Some(var("LAKECDP_TEST_S3_ENDPOINT")),
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
    backend::s3::open(&config, None).unwrap().store
}

/// The source access settings for the S3 server.
fn s3_access() -> SourceAccess {
    SourceAccess::S3 {
        region: var("LAKECDP_TEST_S3_REGION"),
        endpoint: Some(var("LAKECDP_TEST_S3_ENDPOINT")),
        access_key_id: Some(SecretRef::Env("LAKECDP_TEST_S3_ACCESS_KEY_ID".into())),
        secret_access_key: Some(SecretRef::Env("LAKECDP_TEST_S3_SECRET_ACCESS_KEY".into())),
        credentials: Default::default(),
    }
}

/// deltalake's options for writing a test's Delta table to the S3 server, with the
/// test's own keys.
fn s3_delta_options() -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        ("AWS_REGION".to_string(), var("LAKECDP_TEST_S3_REGION")),
        (
            "AWS_ENDPOINT_URL".to_string(),
            var("LAKECDP_TEST_S3_ENDPOINT"),
        ),
        ("AWS_ALLOW_HTTP".to_string(), "true".to_string()),
        ("AWS_FORCE_PATH_STYLE".to_string(), "true".to_string()),
        (
            "AWS_ACCESS_KEY_ID".to_string(),
            var("LAKECDP_TEST_S3_ACCESS_KEY_ID"),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            var("LAKECDP_TEST_S3_SECRET_ACCESS_KEY"),
        ),
        ("AWS_S3_ALLOW_UNSAFE_RENAME".to_string(), "true".to_string()),
    ])
}

/// deltalake's options for writing a test's Delta table to Azurite.
fn azurite_delta_options(account: &str) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        (
            "azure_storage_account_name".to_string(),
            account.to_string(),
        ),
        (
            "azure_storage_account_key".to_string(),
            var("LAKECDP_TEST_AZURITE_KEY"),
        ),
        (
            "azure_storage_endpoint".to_string(),
            var("LAKECDP_TEST_AZURITE_ENDPOINT"),
        ),
        ("azure_allow_http".to_string(), "true".to_string()),
    ])
}

/// A new environment's lake in `dir/lake`, where the sources are loaded to.
fn local_lake(dir: &Path) -> Lake {
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

/// The source `Partner` of one table `People` at `location`, keyed by `Id`, half of
/// whose rows may be corrupt.
fn people_source(location: String, format: SourceFormat, access: SourceAccess) -> SourceSpec {
    SourceSpec {
        name: "Partner".into(),
        description: None,
        max_corrupt_share: Some(0.5),
        access: Some(access),
        tables: vec![TableSpec {
            name: "People".into(),
            location,
            format,
            primary_key: Some("Id".into()),
            last_updated: None,
            csv: None,
            entity: None,
            schema: vec![],
            incremental: false,
        }],
    }
}

const PART1: &str = "Id,Name\n1,Ann\n2,\"Lee, Bo\"\n";
const PART2: &str = "Id,Name\n3,Kim\nx4,\"bad \"quote\"\n";

async fn load(
    dir: &Path,
    location: String,
    access: SourceAccess,
) -> (Lake, lakecdp_engine::ingest::TableReport) {
    let lake = local_lake(dir);
    let source = people_source(location, SourceFormat::Csv, access);
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
    let (container, store) = azurite_container("partner").await;
    put(
        store.as_ref(),
        "exports/people-1.csv",
        PART1.as_bytes().to_vec(),
    )
    .await;
    put(
        store.as_ref(),
        "exports/people-2.csv",
        PART2.as_bytes().to_vec(),
    )
    .await;
    put(
        store.as_ref(),
        "exports/readme.txt",
        b"not a table".to_vec(),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let access = azurite_access();
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
    let (bucket, store) = s3_bucket("partner-").await;
    put(store.as_ref(), "in/people-1.csv", PART1.as_bytes().to_vec()).await;
    put(store.as_ref(), "in/people-2.csv", PART2.as_bytes().to_vec()).await;

    let dir = tempfile::tempdir().unwrap();
    let access = s3_access();
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

const JSONL: &str = "{\"Id\": 7, \"Name\": \"Jo\"}\n{\"Id\": 8, \"Name\": null}\nnot json\n";
const MODEL: &str = r#"{"name": "Sales", "version": "1.0", "entities": [{
  "$type": "LocalEntity", "name": "Clients",
  "attributes": [{"name": "Id", "dataType": "int64"}, {"name": "Name", "dataType": "string"}],
  "partitions": [{"name": "p1", "location": "Clients/p1.csv",
    "fileFormatSettings": {"$type": "CsvFormatSettings", "columnHeaders": false, "delimiter": ","}}]
}]}"#;

fn parquet_bytes() -> Vec<u8> {
    use arrow::array::{ArrayRef, Int64Array};
    use std::sync::Arc;
    let batch = arrow::record_batch::RecordBatch::try_from_iter(vec![
        ("Id", Arc::new(Int64Array::from(vec![10, 11])) as ArrayRef),
        (
            "Name",
            Arc::new(StringArray::from(vec![Some("Pia"), Some("Quin")])) as ArrayRef,
        ),
    ])
    .unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

/// Put one table of every format under `prefix` of `store`, and a Delta table through
/// deltalake with `delta_options`; returns the source declaring them all.
async fn every_format(
    store: &dyn object_store::ObjectStore,
    base_url: &str,
    prefix: &str,
    access: SourceAccess,
    delta_options: std::collections::HashMap<String, String>,
) -> SourceSpec {
    put(store, &format!("{prefix}/csv/people-1.csv"), PART1.into()).await;
    put(
        store,
        &format!("{prefix}/parquet/people.parquet"),
        parquet_bytes(),
    )
    .await;
    put(store, &format!("{prefix}/jsonl/people.jsonl"), JSONL.into()).await;
    put(store, &format!("{prefix}/cdm/model.json"), MODEL.into()).await;
    put(
        store,
        &format!("{prefix}/cdm/Clients/p1.csv"),
        b"20,Rae\n21,Sol\n".to_vec(),
    )
    .await;
    put(
        store,
        &format!("{prefix}/inc/FullData/a.csv"),
        b"Id,Name,At\n1,Ann,2020-01-01T00:00:00Z\n2,Bob,2020-01-01T00:00:00Z\n".to_vec(),
    )
    .await;
    put(
        store,
        &format!("{prefix}/inc/IncrementalData/2020/01/02/03/Upserts/u.csv"),
        b"Id,Name,At\n2,Bob v2,2020-01-02T03:10:00Z\n".to_vec(),
    )
    .await;
    put(
        store,
        &format!("{prefix}/inc/IncrementalData/2020/01/02/03/Deletes/d.csv"),
        b"Id,At\n1,2020-01-02T03:20:00Z\n".to_vec(),
    )
    .await;

    // a Delta table written by deltalake: two versions, the second deletes a row
    use arrow::array::{ArrayRef, Int64Array};
    use std::sync::Arc;
    let url = url::Url::parse(&format!("{base_url}/{prefix}/delta/")).unwrap();
    let batch = arrow::record_batch::RecordBatch::try_from_iter(vec![
        (
            "Id",
            Arc::new(Int64Array::from(vec![30, 31, 32])) as ArrayRef,
        ),
        (
            "Name",
            Arc::new(StringArray::from(vec!["Uma", "Vic", "Wes"])) as ArrayRef,
        ),
    ])
    .unwrap();
    let table = deltalake::DeltaTable::try_from_url_with_storage_options(url, delta_options)
        .await
        .unwrap()
        .write(vec![batch])
        .await
        .unwrap();
    table.delete().with_predicate("Id = 31").await.unwrap();

    let table = |name: &str, dir: &str, format: SourceFormat| TableSpec {
        name: name.into(),
        location: format!("{base_url}/{prefix}/{dir}"),
        format,
        primary_key: Some("Id".into()),
        last_updated: None,
        csv: None,
        entity: None,
        schema: vec![],
        incremental: false,
    };
    let mut cdm = table("Clients", "cdm/model.json", SourceFormat::Cdm);
    cdm.entity = Some("Clients".into());
    let mut inc = table("Changes", "inc", SourceFormat::Csv);
    inc.incremental = true;
    inc.last_updated = Some("At".into());
    SourceSpec {
        name: "Partner".into(),
        description: None,
        max_corrupt_share: Some(0.5),
        access: Some(access),
        tables: vec![
            table("Csv", "csv/*.csv", SourceFormat::Csv),
            table("Parquet", "parquet/people.parquet", SourceFormat::Parquet),
            table("Jsonl", "jsonl/people.jsonl", SourceFormat::Jsonl),
            cdm,
            inc,
            table("Delta", "delta", SourceFormat::Delta),
        ],
    }
}

/// Load the source of [`every_format`] and check every table's rows.
async fn load_every_format(source: SourceSpec) {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path());
    let report = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap();
    let counts: Vec<(String, u64, u64, u64)> = report
        .tables
        .iter()
        .map(|t| (t.table.clone(), t.read, t.written, t.corrupt))
        .collect();
    assert_eq!(
        counts,
        [
            ("Csv".to_string(), 2, 2, 0),
            ("Parquet".to_string(), 2, 2, 0),
            ("Jsonl".to_string(), 3, 2, 1),
            ("Clients".to_string(), 2, 2, 0),
            ("Changes".to_string(), 4, 1, 0),
            ("Delta".to_string(), 2, 2, 0),
        ]
    );
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(names(&lake, "Csv", "Name").await, ["Ann", "Lee, Bo"]);
    assert_eq!(names(&lake, "Parquet", "Name").await, ["Pia", "Quin"]);
    assert_eq!(names(&lake, "Jsonl", "Name").await, ["Jo", ""]);
    assert_eq!(names(&lake, "Clients", "Name").await, ["Rae", "Sol"]);
    assert_eq!(names(&lake, "Changes", "Name").await, ["Bob v2"]);
    assert_eq!(sorted(names(&lake, "Delta", "Name").await), ["Uma", "Wes"]);
}

#[tokio::test]
async fn every_format_loads_from_an_azurite_container() {
    let (container, store) = azurite_container("formats").await;
    let account = var("LAKECDP_TEST_AZURITE_ACCOUNT");
    let access = azurite_access();
    let delta_options = azurite_delta_options(&account);
    let base = format!("abfss://{container}@{account}.dfs.core.windows.net");
    let source = every_format(store.as_ref(), &base, "in", access, delta_options).await;
    load_every_format(source).await;
}

#[tokio::test]
async fn every_format_loads_from_an_s3_bucket() {
    let (bucket, store) = s3_bucket("formats-").await;
    let access = s3_access();
    let delta_options = s3_delta_options();
    let source = every_format(
        store.as_ref(),
        &format!("s3://{bucket}"),
        "in",
        access,
        delta_options,
    )
    .await;
    // the host's own AWS settings (nextest runs each test in its own process) must not
    // reach a source that declares its keys: with this token mixed in, every request
    // for the source's Delta table was refused
    std::env::set_var("AWS_SESSION_TOKEN", "a-token-of-this-host");
    load_every_format(source).await;
}

/// The `access` of a source on the S3 server with no keys, and the credentials it asks for.
fn s3_access_without_keys(credentials: Credentials) -> SourceAccess {
    SourceAccess::S3 {
        region: var("LAKECDP_TEST_S3_REGION"),
        endpoint: Some(var("LAKECDP_TEST_S3_ENDPOINT")),
        access_key_id: None,
        secret_access_key: None,
        credentials,
    }
}

#[tokio::test]
async fn every_format_loads_from_a_public_s3_bucket_with_unsigned_requests() {
    // the S3 server lets anonymous requests read and list this one bucket, nothing else
    let bucket = var("LAKECDP_TEST_S3_PUBLIC_BUCKET");
    let store = s3_store(&bucket).await;
    let prefix = unique("anonymous-");
    let delta_options = s3_delta_options();
    let source = every_format(
        store.as_ref(),
        &format!("s3://{bucket}"),
        &prefix,
        s3_access_without_keys(Credentials::Anonymous),
        delta_options,
    )
    .await;
    // keys of this host must not sign the requests of an anonymous source: these are
    // refused by the server, so one signed request fails the load
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIANOTTHISHOSTS");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "not-this-hosts-secret");
    load_every_format(source).await;
}

#[tokio::test]
async fn an_unsigned_source_cannot_read_a_private_s3_bucket() {
    let (bucket, store) = s3_bucket("private-").await;
    put(
        store.as_ref(),
        "in/delta/_delta_log/00000000000000000000.json",
        b"{}".to_vec(),
    )
    .await;
    put(store.as_ref(), "in/people.csv", PART1.into()).await;
    let dir = tempfile::tempdir().unwrap();
    for (location, format) in [
        (format!("s3://{bucket}/in/people.csv"), SourceFormat::Csv),
        (format!("s3://{bucket}/in/delta"), SourceFormat::Delta),
    ] {
        let err = load_error(
            dir.path(),
            location,
            format,
            s3_access_without_keys(Credentials::Anonymous),
        )
        .await;
        assert!(
            err.contains("403") || err.to_lowercase().contains("access denied"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_source_without_keys_or_a_choice_of_credentials_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    // nothing listens here: a request would fail with another message
    let unreachable = "http://127.0.0.1:9".to_string();
    for (location, access) in [
        (
            "s3://bucket/people.csv",
            SourceAccess::S3 {
                region: "us-east-1".into(),
                endpoint: Some(unreachable.clone()),
                access_key_id: None,
                secret_access_key: None,
                credentials: Credentials::Declared,
            },
        ),
        (
            "abfss://data@acct.dfs.core.windows.net/people.csv",
            SourceAccess::Adls {
                account: None,
                account_key: None,
                sas_token: None,
                endpoint: Some(unreachable.clone()),
                emulator: true,
                credentials: Credentials::Declared,
            },
        ),
    ] {
        for format in [SourceFormat::Csv, SourceFormat::Delta] {
            let err = load_error(dir.path(), location.to_string(), format, access.clone()).await;
            assert!(
                err.contains("credentials = \"ambient\"")
                    && err.contains("credentials = \"anonymous\""),
                "{format:?} {location}: {err}"
            );
        }
    }
}

#[tokio::test]
async fn every_format_loads_from_an_azurite_container_with_the_hosts_credentials() {
    let (container, store) = azurite_container("ambient").await;
    let account = var("LAKECDP_TEST_AZURITE_ACCOUNT");
    let delta_options = azurite_delta_options(&account);
    let base = format!("abfss://{container}@{account}.dfs.core.windows.net");
    let access = SourceAccess::Adls {
        account: None,
        account_key: None,
        sas_token: None,
        endpoint: Some(var("LAKECDP_TEST_AZURITE_ENDPOINT")),
        emulator: true,
        credentials: Credentials::Ambient,
    };
    let source = every_format(store.as_ref(), &base, "in", access, delta_options).await;
    // the host's Azure credentials, which the source asks for (nextest runs each test in
    // its own process)
    std::env::set_var("AZURE_STORAGE_ACCOUNT_KEY", var("LAKECDP_TEST_AZURITE_KEY"));
    load_every_format(source).await;
}

/// The error of loading one table of `format` at `location`, as text.
async fn load_error(
    dir: &Path,
    location: String,
    format: SourceFormat,
    access: SourceAccess,
) -> String {
    let lake = local_lake(dir);
    let source = people_source(location, format, access);
    match ingest_source(&lake, &source, dir, &IngestOptions::default()).await {
        Err(e) => e.to_string(),
        Ok(report) => report
            .tables
            .iter()
            .map(|t| format!("{:?}", t))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// A CSV table in an S3 bucket loaded on a standalone cluster: the executor reads each
/// file from the bucket with the source's credentials, and publishes the same rows and
/// corrupt rows as a load here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_files_in_an_s3_bucket_load_on_a_standalone_cluster_as_here() {
    let (bucket, store) = s3_bucket("cluster-").await;
    put(store.as_ref(), "in/people-1.csv", PART1.as_bytes().to_vec()).await;
    put(store.as_ref(), "in/people-2.csv", PART2.as_bytes().to_vec()).await;
    let dir = tempfile::tempdir().unwrap();
    let source = people_source(
        format!("s3://{bucket}/in/people-*.csv"),
        SourceFormat::Csv,
        s3_access(),
    );
    let mut got = Vec::new();
    for (t, lake) in here_and_on_a_standalone_cluster(&source, dir.path()).await {
        assert_eq!(
            (t.read, t.written, t.corrupt, t.local.as_deref()),
            (4, 3, 1, None)
        );
        let mut names = names(&lake, "People", "Name").await;
        names.sort();
        let reasons = names_of_corrupt(&lake).await;
        got.push((names, reasons));
    }
    assert_eq!(got[0], got[1]);
}

/// Load `source` here, then on a standalone cluster of two tasks that share no local
/// folder with this process, each into a lake of its own under `dir`: per load, the
/// report of its one table and the lake.
async fn here_and_on_a_standalone_cluster(
    source: &SourceSpec,
    dir: &Path,
) -> Vec<(lakecdp_engine::ingest::TableReport, Lake)> {
    let mut out = Vec::new();
    for (i, cluster) in [
        None,
        Some(lakecdp_engine::ingest::IngestCluster {
            scheduler: None,
            revision: None,
            tasks: 2,
            local_files: false,
        }),
    ]
    .into_iter()
    .enumerate()
    {
        let lake = local_lake(&dir.join(i.to_string()));
        let options = IngestOptions {
            cluster,
            ..IngestOptions::default()
        };
        let mut report = ingest_source(&lake, source, dir, &options).await.unwrap();
        out.push((report.tables.remove(0), lake));
    }
    out
}

/// A partitioned Delta table in an S3 bucket loaded on a standalone cluster: each task
/// downloads its share of the table's data files with the source's credentials and adds
/// their partition values; the rows are those of a load here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_table_in_an_s3_bucket_loads_on_a_standalone_cluster_as_here() {
    use arrow::array::{ArrayRef, Int64Array};
    use std::sync::Arc;
    let (bucket, _store) = s3_bucket("cluster-delta-").await;
    // a folder name that its URL percent-encodes: the objects are under the decoded name
    let url = url::Url::parse(&format!("s3://{bucket}/in/our members/")).unwrap();
    let batch = |ids: Vec<i64>, names: Vec<&str>, tiers: Vec<&str>| {
        arrow::record_batch::RecordBatch::try_from_iter(vec![
            ("Id", Arc::new(Int64Array::from(ids)) as ArrayRef),
            ("Name", Arc::new(StringArray::from(names)) as ArrayRef),
            ("Tier", Arc::new(StringArray::from(tiers)) as ArrayRef),
        ])
        .unwrap()
    };
    let table = deltalake::DeltaTable::try_from_url_with_storage_options(url, s3_delta_options())
        .await
        .unwrap()
        .write(vec![batch(
            vec![1, 2, 3],
            vec!["Ann", "Bob", "Cy"],
            vec!["Gold", "Silver", "Gold"],
        )])
        .with_partition_columns(["Tier"])
        .await
        .unwrap();
    let table = table
        .write(vec![batch(vec![4], vec!["Di"], vec!["Bronze"])])
        .await
        .unwrap();
    table.delete().with_predicate("Id = 2").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = people_source(
        format!("s3://{bucket}/in/our members"),
        SourceFormat::Delta,
        s3_access(),
    );
    let mut got = Vec::new();
    for (t, lake) in here_and_on_a_standalone_cluster(&source, dir.path()).await {
        assert_eq!(
            (t.read, t.written, t.corrupt, t.local.as_deref()),
            (3, 3, 0, None)
        );
        let mut rows: Vec<String> = names(&lake, "People", "Name")
            .await
            .into_iter()
            .zip(names(&lake, "People", "Tier").await)
            .map(|(n, t)| format!("{n}/{t}"))
            .collect();
        rows.sort();
        got.push(rows);
    }
    assert_eq!(got[0], ["Ann/Gold", "Cy/Gold", "Di/Bronze"]);
    assert_eq!(got[0], got[1]);
}

async fn names_of_corrupt(lake: &Lake) -> Vec<String> {
    let mut out = Vec::new();
    for column in ["File", "Raw", "Reason"] {
        out.extend(names(lake, "Partner_People_corrupt", column).await);
    }
    out
}
