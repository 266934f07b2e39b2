//! Backends for the lake tests: a local folder, Azurite and the S3 server started by
//! `scripts/test.sh` (which exports their endpoints).
#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use lakecdp_core::{AdlsConfig, EnvironmentId, LocalConfig, S3Config, SecretRef, StorageConfig};
use lakecdp_lake::backend::azure::AzureService;
use lakecdp_lake::backend::s3::S3Service;
use lakecdp_lake::{backend, Lake, StoreHandle};

/// An environment variable the test services export; a clear panic when missing.
pub fn service_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test.sh, which starts Azurite, the S3 server and PostgreSQL")
    })
}

/// A storage configuration and, for local, the folder that holds it.
pub struct Fixture {
    pub config: StorageConfig,
    pub _dir: Option<tempfile::TempDir>,
}

pub fn local_fixture(create_container: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    if create_container {
        std::fs::create_dir_all(dir.path().join("customerinsights")).unwrap();
    }
    Fixture {
        config: StorageConfig::Local(LocalConfig {
            path: dir.path().to_path_buf(),
        }),
        _dir: Some(dir),
    }
}

pub fn azurite_config() -> AdlsConfig {
    // the key is read from the variable the test script exports; the config holds its name only
    service_var("LAKECDP_TEST_AZURITE_KEY");
    AdlsConfig {
        account: Some(service_var("LAKECDP_TEST_AZURITE_ACCOUNT")),
        container: Some("customerinsights".into()),
        account_key: Some(SecretRef::Env("LAKECDP_TEST_AZURITE_KEY".into())),
        endpoint: Some(service_var("LAKECDP_TEST_AZURITE_ENDPOINT")),
        emulator: true,
        allow_flat_namespace: true,
        ..Default::default()
    }
}

pub async fn azurite_fixture() -> Fixture {
    let config = azurite_config();
    AzureService::new(&config, None)
        .unwrap()
        .create_container("customerinsights")
        .await
        .unwrap();
    Fixture {
        config: StorageConfig::Adls(config),
        _dir: None,
    }
}

/// A fresh bucket per call, so S3 tests run in parallel without seeing each other.
pub fn s3_config(bucket: &str) -> S3Config {
    service_var("LAKECDP_TEST_S3_ACCESS_KEY_ID");
    S3Config {
        bucket: bucket.into(),
        prefix: None,
        region: service_var("LAKECDP_TEST_S3_REGION"),
        endpoint: Some(service_var("LAKECDP_TEST_S3_ENDPOINT")),
        access_key_id: Some(SecretRef::Env("LAKECDP_TEST_S3_ACCESS_KEY_ID".into())),
        secret_access_key: Some(SecretRef::Env("LAKECDP_TEST_S3_SECRET_ACCESS_KEY".into())),
        session_token: None,
        path_style: Some(true),
        credentials: Default::default(),
    }
}

pub fn unique_bucket() -> String {
    format!(
        "lakecdp-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

pub async fn s3_fixture() -> Fixture {
    let config = s3_config(&unique_bucket());
    S3Service::new(&config, None)
        .unwrap()
        .create_bucket()
        .await
        .unwrap();
    Fixture {
        config: StorageConfig::S3(config),
        _dir: None,
    }
}

pub async fn fixture(kind: &str) -> Fixture {
    match kind {
        "local" => local_fixture(true),
        "azurite" => azurite_fixture().await,
        "s3" => s3_fixture().await,
        other => panic!("unknown backend {other}"),
    }
}

pub fn open(f: &Fixture) -> StoreHandle {
    backend::open(&f.config, None).unwrap()
}

/// A lake of a fresh environment in the fixture's container.
pub fn lake(f: &Fixture) -> Lake {
    Lake::new(&open(f), EnvironmentId::new())
}

/// A batch with one column of every type the CDM mapping covers, including the
/// awkward CSV values: quotes, commas, newlines, empty strings and nulls.
pub fn sample_batch(offset: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("Id", DataType::Int64, true),
        Field::new("Name", DataType::Utf8, true),
        Field::new("Score", DataType::Float64, true),
        Field::new("Active", DataType::Boolean, true),
        Field::new("Visits", DataType::Int32, true),
        Field::new("BirthDate", DataType::Date32, true),
        Field::new(
            "UpdatedAt",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new(
            "SeenAt",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            true,
        ),
        Field::new("Balance", DataType::Decimal128(18, 2), true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![
            Some(offset + 1),
            Some(offset + 2),
            Some(offset + 3),
            None,
        ])),
        Arc::new(StringArray::from(vec![
            Some("Ann \"Nan\" Lee"),
            Some("Smith, Bob"),
            Some("multi\nline"),
            None,
        ])),
        Arc::new(Float64Array::from(vec![
            Some(1.5),
            Some(-0.25),
            None,
            Some(1e10),
        ])),
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
            Some(true),
        ])),
        Arc::new(Int32Array::from(vec![Some(7), None, Some(0), Some(-3)])),
        Arc::new(Date32Array::from(vec![
            Some(0),
            Some(19_000),
            None,
            Some(-365),
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(1_700_000_000_123_456),
            None,
            Some(0),
            Some(1),
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), Some(5), None, None])
                .with_timezone("+00:00"),
        ),
        Arc::new(
            Decimal128Array::from(vec![Some(12345), Some(-1), None, Some(0)])
                .with_precision_and_scale(18, 2)
                .unwrap(),
        ),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}
