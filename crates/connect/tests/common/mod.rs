//! Helpers for the export tests: the servers started by `scripts/test.sh` (which
//! exports their addresses), unique names, and sample batches.
#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use lakecdp_connect::{BatchStream, PostgresTarget};
use lakecdp_core::Secret;

/// An environment variable the test services export; a clear panic when missing.
pub fn service_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test.sh, which starts Azurite, the S3 server and PostgreSQL")
    })
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

pub fn pg_port() -> u16 {
    service_var("LAKECDP_TEST_PG_PORT").parse().unwrap()
}

/// A target of the test server, database `database`, as the test superuser.
pub fn pg_target(database: &str) -> PostgresTarget {
    PostgresTarget::builder()
        .host(service_var("LAKECDP_TEST_PG_HOST"))
        .port(pg_port())
        .user(service_var("LAKECDP_TEST_PG_USER"))
        .password(Secret::new(service_var("LAKECDP_TEST_PG_PASSWORD")))
        .database(database)
        .build()
        .unwrap()
}

/// A client of the test server as the superuser, in UTC.
pub async fn pg_client(database: &str) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config
        .host(service_var("LAKECDP_TEST_PG_HOST"))
        .port(pg_port())
        .user(service_var("LAKECDP_TEST_PG_USER"))
        .password(service_var("LAKECDP_TEST_PG_PASSWORD"))
        .dbname(database);
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
    client
}

/// `Id bigint, Name text`.
pub fn people_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("Id", DataType::Int64, false),
        Field::new("Name", DataType::Utf8, true),
    ]))
}

pub fn people(ids: std::ops::Range<i64>, tag: &str) -> RecordBatch {
    let names: Vec<String> = ids.clone().map(|i| format!("{tag}-{i}")).collect();
    RecordBatch::try_new(
        people_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)) as ArrayRef,
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap()
}

/// A stream of the given batches.
pub fn stream(batches: Vec<RecordBatch>) -> BatchStream<'static> {
    futures::stream::iter(batches.into_iter().map(Ok)).boxed()
}

/// A stream that yields `batches` and then an error.
pub fn failing_stream(batches: Vec<RecordBatch>) -> BatchStream<'static> {
    futures::stream::iter(batches.into_iter().map(Ok).chain(std::iter::once(Err(
        ArrowError::ComputeError("the source went away".into()),
    ))))
    .boxed()
}
