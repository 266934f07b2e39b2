//! The PostgreSQL export target against a real server (`scripts/test.sh` starts it).

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, Int8Array, LargeStringArray, StringArray, StringViewArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use common::*;
use futures::StreamExt;
use lakecdp_connect::{Error, ExportTarget, PostgresTarget};
use lakecdp_core::Secret;

async fn rows_of(client: &tokio_postgres::Client, table: &str) -> Vec<(i64, String)> {
    client
        .query(
            &format!("SELECT \"Id\", \"Name\" FROM customerinsights.\"{table}\" ORDER BY 1"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn table_exists(client: &tokio_postgres::Client, qualified: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn every_mapped_type_round_trips_with_nulls() {
    let db = unique("lakecdp_types");
    let ts = |u| DataType::Timestamp(u, None);
    let schema = Arc::new(Schema::new(vec![
        Field::new("Id", DataType::Int32, false),
        Field::new("Text", DataType::Utf8, true),
        Field::new("LargeText", DataType::LargeUtf8, true),
        Field::new("ViewText", DataType::Utf8View, true),
        Field::new("Tiny", DataType::Int8, true),
        Field::new("Small", DataType::Int16, true),
        Field::new("Big", DataType::Int64, true),
        Field::new("U32", DataType::UInt32, true),
        Field::new("U64", DataType::UInt64, true),
        Field::new("F32", DataType::Float32, true),
        Field::new("F64", DataType::Float64, true),
        Field::new("Flag", DataType::Boolean, true),
        Field::new("Day", DataType::Date32, true),
        Field::new("TsS", ts(TimeUnit::Second), true),
        Field::new("TsMs", ts(TimeUnit::Millisecond), true),
        Field::new("TsUs", ts(TimeUnit::Microsecond), true),
        Field::new("TsNs", ts(TimeUnit::Nanosecond), true),
        Field::new(
            "TsTz",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+02:00".into())),
            true,
        ),
        Field::new("Money", DataType::Decimal128(18, 2), true),
        Field::new("Huge", DataType::Decimal128(38, 10), true),
        Field::new("Raw", DataType::Binary, true),
    ]));
    let texts = vec![
        Some("Ann \"Nan\" O'Lee, Jr."),
        Some("multi\nline\r\n\ttabbed \\ back"),
        Some("ünïcödé 😀 中文"),
        Some(""),
        None,
    ];
    let huge = 10i128.pow(38) - 1;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![1, 2, 3, 4, 5])),
        Arc::new(StringArray::from(texts.clone())),
        Arc::new(LargeStringArray::from(texts.clone())),
        Arc::new(StringViewArray::from(texts.clone())),
        Arc::new(Int8Array::from(vec![
            Some(-128),
            Some(127),
            Some(0),
            Some(1),
            None,
        ])),
        Arc::new(Int16Array::from(vec![
            Some(i16::MIN),
            Some(i16::MAX),
            Some(0),
            Some(-1),
            None,
        ])),
        Arc::new(Int64Array::from(vec![
            Some(i64::MIN),
            Some(i64::MAX),
            Some(0),
            Some(-1),
            None,
        ])),
        Arc::new(UInt32Array::from(vec![
            Some(u32::MAX),
            Some(0),
            Some(1),
            Some(7),
            None,
        ])),
        Arc::new(UInt64Array::from(vec![
            Some(u64::MAX),
            Some(0),
            Some(10_000),
            Some(7),
            None,
        ])),
        Arc::new(Float32Array::from(vec![
            Some(1.5),
            Some(-0.25),
            Some(f32::INFINITY),
            Some(0.0),
            None,
        ])),
        Arc::new(Float64Array::from(vec![
            Some(-0.25),
            Some(1e300),
            Some(f64::NAN),
            Some(3.5),
            None,
        ])),
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            Some(true),
            Some(false),
            None,
        ])),
        Arc::new(Date32Array::from(vec![
            Some(0),
            Some(10_957),
            Some(-719_162),
            Some(19_000),
            None,
        ])),
        Arc::new(TimestampSecondArray::from(vec![
            Some(0),
            Some(-1),
            Some(946_684_800),
            Some(1_700_000_000),
            None,
        ])),
        Arc::new(TimestampMillisecondArray::from(vec![
            Some(1),
            Some(-1),
            Some(946_684_800_000),
            Some(-62_135_596_800_000),
            None,
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(1_700_000_000_123_456),
            Some(-1),
            Some(946_684_799_999_999),
            Some(-2_208_988_800_000_000),
            None,
        ])),
        Arc::new(TimestampNanosecondArray::from(vec![
            Some(1),
            Some(-1),
            Some(1_700_000_000_123_456_789),
            Some(0),
            None,
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![
                Some(1_700_000_000_000_000),
                Some(-1),
                Some(0),
                Some(5),
                None,
            ])
            .with_timezone("+02:00"),
        ),
        Arc::new(
            Decimal128Array::from(vec![
                Some(12345),
                Some(-1),
                Some(0),
                Some(-999_999_999_999_999_999),
                None,
            ])
            .with_precision_and_scale(18, 2)
            .unwrap(),
        ),
        Arc::new(
            Decimal128Array::from(vec![
                Some(huge),
                Some(-huge),
                Some(1),
                Some(-123_456_789_012_345_678_901_234_567_890),
                None,
            ])
            .with_precision_and_scale(38, 10)
            .unwrap(),
        ),
        Arc::new(BinaryArray::from(vec![
            Some(&b"\x00\xff"[..]),
            Some(&b""[..]),
            Some(&b"abc"[..]),
            Some(&b"\n"[..]),
            None,
        ])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let target = pg_target(&db);
    let mut run = target.begin("Everything").await.unwrap();
    // two batches, so rows cross a batch boundary
    let done = run
        .export_table(
            "AllTypes",
            schema.clone(),
            stream(vec![batch.slice(0, 2), batch.slice(2, 3)]),
        )
        .await
        .unwrap();
    assert_eq!(done.rows, 5);
    assert!(done.bytes > 0);
    let summary = run.finish().await.unwrap();
    assert_eq!(summary.rows(), 5);

    let client = pg_client(&db).await;
    let types: Vec<(String, String)> = client
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'customerinsights.\"AllTypes\"'::regclass AND attnum > 0 ORDER BY attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected_types = [
        ("Id", "integer"),
        ("Text", "text"),
        ("LargeText", "text"),
        ("ViewText", "text"),
        ("Tiny", "smallint"),
        ("Small", "smallint"),
        ("Big", "bigint"),
        ("U32", "bigint"),
        ("U64", "numeric(20,0)"),
        ("F32", "real"),
        ("F64", "double precision"),
        ("Flag", "boolean"),
        ("Day", "date"),
        ("TsS", "timestamp without time zone"),
        ("TsMs", "timestamp without time zone"),
        ("TsUs", "timestamp without time zone"),
        ("TsNs", "timestamp without time zone"),
        ("TsTz", "timestamp with time zone"),
        ("Money", "numeric(18,2)"),
        ("Huge", "numeric(38,10)"),
        ("Raw", "bytea"),
    ];
    assert_eq!(
        types,
        expected_types
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );

    let cols = expected_types
        .iter()
        .map(|(c, _)| format!("\"{c}\"::text"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = client
        .query(
            &format!("SELECT {cols} FROM customerinsights.\"AllTypes\" ORDER BY \"Id\""),
            &[],
        )
        .await
        .unwrap();
    let got: Vec<Vec<Option<String>>> = rows
        .iter()
        .map(|r| (0..expected_types.len()).map(|i| r.get(i)).collect())
        .collect();
    let s = |v: &str| Some(v.to_string());
    let t = |i: usize| texts[i].map(str::to_string);
    let expected: Vec<Vec<Option<String>>> = vec![
        vec![
            s("1"),
            t(0),
            t(0),
            t(0),
            s("-128"),
            s("-32768"),
            s("-9223372036854775808"),
            s("4294967295"),
            s("18446744073709551615"),
            s("1.5"),
            s("-0.25"),
            s("true"),
            s("1970-01-01"),
            s("1970-01-01 00:00:00"),
            s("1970-01-01 00:00:00.001"),
            s("2023-11-14 22:13:20.123456"),
            s("1970-01-01 00:00:00"),
            s("2023-11-14 22:13:20+00"),
            s("123.45"),
            s("9999999999999999999999999999.9999999999"),
            s("\\x00ff"),
        ],
        vec![
            s("2"),
            t(1),
            t(1),
            t(1),
            s("127"),
            s("32767"),
            s("9223372036854775807"),
            s("0"),
            s("0"),
            s("-0.25"),
            s("1e+300"),
            s("false"),
            s("2000-01-01"),
            s("1969-12-31 23:59:59"),
            s("1969-12-31 23:59:59.999"),
            s("1969-12-31 23:59:59.999999"),
            s("1969-12-31 23:59:59.999999"),
            s("1969-12-31 23:59:59.999999+00"),
            s("-0.01"),
            s("-9999999999999999999999999999.9999999999"),
            s("\\x"),
        ],
        vec![
            s("3"),
            t(2),
            t(2),
            t(2),
            s("0"),
            s("0"),
            s("0"),
            s("1"),
            s("10000"),
            s("Infinity"),
            s("NaN"),
            s("true"),
            s("0001-01-01"),
            s("2000-01-01 00:00:00"),
            s("2000-01-01 00:00:00"),
            s("1999-12-31 23:59:59.999999"),
            s("2023-11-14 22:13:20.123456"),
            s("1970-01-01 00:00:00+00"),
            s("0.00"),
            s("0.0000000001"),
            s("\\x616263"),
        ],
        vec![
            s("4"),
            t(3),
            t(3),
            t(3),
            s("1"),
            s("-1"),
            s("-1"),
            s("7"),
            s("7"),
            s("0"),
            s("3.5"),
            s("false"),
            s("2022-01-08"),
            s("2023-11-14 22:13:20"),
            s("0001-01-01 00:00:00"),
            s("1900-01-01 00:00:00"),
            s("1970-01-01 00:00:00"),
            s("1970-01-01 00:00:00.000005+00"),
            s("-9999999999999999.99"),
            s("-12345678901234567890.1234567890"),
            s("\\x0a"),
        ],
        std::iter::once(s("5"))
            .chain(std::iter::repeat_n(None, 20))
            .collect(),
    ];
    for (g, e) in got.iter().zip(&expected) {
        for (i, (gv, ev)) in g.iter().zip(e).enumerate() {
            assert_eq!(gv, ev, "row {:?}, column {}", g[0], expected_types[i].0);
        }
    }
    assert_eq!(got.len(), expected.len());
}

#[tokio::test]
async fn a_reexport_replaces_the_rows_atomically() {
    let db = unique("lakecdp_replace");
    let target = pg_target(&db);
    let mut run = target.begin("People").await.unwrap();
    run.export_table("People", people_schema(), stream(vec![people(0..3, "old")]))
        .await
        .unwrap();
    run.finish().await.unwrap();
    let reader = pg_client(&db).await;
    assert_eq!(rows_of(&reader, "People").await.len(), 3);

    // a second run, paused in the middle of its COPY: readers still see the old table
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let mut run = target.begin("People").await.unwrap();
    let export = run.export_table("People", people_schema(), rx.boxed());
    let driver = async {
        tx.unbounded_send(Ok(people(10..15, "new"))).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = rows_of(&reader, "People").await;
        assert_eq!(
            seen,
            vec![
                (0, "old-0".into()),
                (1, "old-1".into()),
                (2, "old-2".into())
            ]
        );
        tx.unbounded_send(Ok(people(15..20, "new"))).unwrap();
        drop(tx);
    };
    let (done, ()) = tokio::join!(export, driver);
    assert_eq!(done.unwrap().rows, 10);
    run.finish().await.unwrap();
    let seen = rows_of(&reader, "People").await;
    assert_eq!(seen.len(), 10);
    assert!(seen.iter().all(|(_, n)| n.starts_with("new-")));
    assert!(!table_exists(&reader, "customerinsights.\"People__lakecdp_staging\"").await);
}

#[tokio::test]
async fn tables_not_exported_again_are_left_untouched() {
    let db = unique("lakecdp_untouched");
    let target = pg_target(&db);
    let mut run = target.begin("Both").await.unwrap();
    run.export_table("A", people_schema(), stream(vec![people(0..2, "a1")]))
        .await
        .unwrap();
    run.export_table("B", people_schema(), stream(vec![people(0..4, "b1")]))
        .await
        .unwrap();
    run.finish().await.unwrap();
    let mut run = target.begin("Both").await.unwrap();
    run.export_table("A", people_schema(), stream(vec![people(5..6, "a2")]))
        .await
        .unwrap();
    let summary = run.finish().await.unwrap();
    assert_eq!(summary.tables.len(), 1);
    let client = pg_client(&db).await;
    assert_eq!(rows_of(&client, "A").await, vec![(5, "a2-5".into())]);
    let b = rows_of(&client, "B").await;
    assert_eq!(b.len(), 4);
    assert!(b.iter().all(|(_, n)| n.starts_with("b1-")));
}

#[tokio::test]
async fn a_new_database_name_creates_it_and_leaves_the_old_one() {
    let first = unique("lakecdp_db_one");
    let second = unique("lakecdp_db_two");
    for (db, tag) in [(&first, "one"), (&second, "two")] {
        let mut run = pg_target(db).begin("Move").await.unwrap();
        run.export_table("T", people_schema(), stream(vec![people(0..2, tag)]))
            .await
            .unwrap();
        run.finish().await.unwrap();
    }
    let old = pg_client(&first).await;
    assert_eq!(rows_of(&old, "T").await[0].1, "one-0");
    let new = pg_client(&second).await;
    assert_eq!(rows_of(&new, "T").await[0].1, "two-0");
    // a custom schema, with a name that needs quoting
    let target = PostgresTarget::builder()
        .host(service_var("LAKECDP_TEST_PG_HOST"))
        .port(pg_port())
        .user(service_var("LAKECDP_TEST_PG_USER"))
        .password(Secret::new(service_var("LAKECDP_TEST_PG_PASSWORD")))
        .database(&second)
        .schema("Sales \"EU\"")
        .build()
        .unwrap();
    let mut run = target.begin("Quoted").await.unwrap();
    run.export_table(
        "My \"Table\"; --",
        people_schema(),
        stream(vec![people(0..1, "q")]),
    )
    .await
    .unwrap();
    run.finish().await.unwrap();
    let n: i64 = new
        .query_one(
            "SELECT count(*) FROM \"Sales \"\"EU\"\"\".\"My \"\"Table\"\"; --\"",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_user_without_createdb_is_told_the_fix() {
    let admin = pg_client("postgres").await;
    let role = unique("lakecdp_nocreatedb");
    let password = "role-pw-never-shown";
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"{role}\" LOGIN NOCREATEDB PASSWORD '{password}'"
        ))
        .await
        .unwrap();
    let db = unique("lakecdp_denied");
    let target = PostgresTarget::builder()
        .host(service_var("LAKECDP_TEST_PG_HOST"))
        .port(pg_port())
        .user(&role)
        .password(Secret::new(password))
        .database(&db)
        .build()
        .unwrap();
    let lines = target.check().await.unwrap();
    assert!(lines[0].is_ok(), "{lines:?}");
    let db_line = &lines[1];
    assert!(!db_line.is_ok(), "{lines:?}");
    assert!(
        db_line.fix.as_deref().unwrap().contains("CREATEDB"),
        "{lines:?}"
    );

    let err = match target.begin("Denied").await {
        Err(e) => e,
        Ok(_) => panic!("a user without CREATEDB created a database"),
    };
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("ALTER ROLE \"{role}\" CREATEDB")),
        "{msg}"
    );
    assert!(msg.contains("create the database beforehand"), "{msg}");
    assert!(!msg.contains(password), "{msg}");
    assert!(err.is_user_error());
    let exists: bool = admin
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&db],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!exists);
    admin
        .batch_execute(&format!("DROP ROLE \"{role}\""))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failure_halfway_leaves_the_previous_table() {
    let db = unique("lakecdp_halfway");
    let target = pg_target(&db);
    let mut run = target.begin("People").await.unwrap();
    run.export_table("People", people_schema(), stream(vec![people(0..3, "old")]))
        .await
        .unwrap();
    run.finish().await.unwrap();

    // the input fails after some rows, some of them already sent to the server
    let mut run = target.begin("People").await.unwrap();
    let big = people(100..200_100, "new");
    let err = run
        .export_table("People", people_schema(), failing_stream(vec![big]))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&target.address()), "{msg}");
    assert!(
        msg.contains("reading the input") && msg.contains("200000 rows"),
        "{msg}"
    );
    // the run goes on with other tables on the same connection
    run.export_table("Other", people_schema(), stream(vec![people(0..1, "x")]))
        .await
        .unwrap();
    run.finish().await.unwrap();
    let client = pg_client(&db).await;
    let rows = rows_of(&client, "People").await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|(_, n)| n.starts_with("old-")));
    assert!(!table_exists(&client, "customerinsights.\"People__lakecdp_staging\"").await);

    // a server that is not there: nothing changes, the error names host:port
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let password = service_var("LAKECDP_TEST_PG_PASSWORD");
    let gone = PostgresTarget::builder()
        .host("127.0.0.1")
        .port(closed)
        .user(service_var("LAKECDP_TEST_PG_USER"))
        .password(Secret::new(&password))
        .database(&db)
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let err = match gone.begin("People").await {
        Err(e) => e,
        Ok(_) => panic!("connected to a closed port"),
    };
    let msg = err.to_string();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(msg.contains(&format!("127.0.0.1:{closed}")), "{msg}");
    assert!(!msg.contains(&password), "{msg}");
    let lines = gone.check().await.unwrap();
    assert_eq!(lines.len(), 1);
    assert!(!lines[0].is_ok() && lines[0].fix.is_some(), "{lines:?}");
    assert_eq!(rows_of(&client, "People").await.len(), 3);
}

#[tokio::test]
async fn a_wrong_password_is_reported_without_the_password() {
    let wrong = "wrong-password-xyz";
    let target = PostgresTarget::builder()
        .host(service_var("LAKECDP_TEST_PG_HOST"))
        .port(pg_port())
        .user(service_var("LAKECDP_TEST_PG_USER"))
        .password(Secret::new(wrong))
        .database(unique("lakecdp_login"))
        .build()
        .unwrap();
    let msg = match target.begin("X").await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("logged in with a wrong password"),
    };
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(!msg.contains(wrong), "{msg}");
    let lines = target.check().await.unwrap();
    assert!(
        lines[0].fix.as_deref().unwrap().contains("password"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn check_passes_on_a_usable_server_and_unsupported_types_fail_early() {
    let db = unique("lakecdp_check");
    let target = pg_target(&db);
    let lines = target.check().await.unwrap();
    assert!(lines.iter().all(|l| l.is_ok()), "{lines:?}");
    assert!(lines[1].detail.contains("creates it"), "{lines:?}");
    let mut run = target.begin("Check").await.unwrap();
    let lines = target.check().await.unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| l.is_ok()), "{lines:?}");

    let schema = Arc::new(Schema::new(vec![Field::new(
        "Tags",
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        true,
    )]));
    let err = run
        .export_table("Tagged", schema, stream(vec![]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`Tags`"), "{err}");
    run.finish().await.unwrap();
    let client = pg_client(&db).await;
    assert!(!table_exists(&client, "customerinsights.\"Tagged\"").await);
}

#[tokio::test]
async fn concurrent_runs_of_one_table_queue_up() {
    let db = unique("lakecdp_concurrent");
    let target = pg_target(&db);
    drop(target.begin("People").await.unwrap());
    let one = async {
        let mut run = target.begin("People").await.unwrap();
        run.export_table(
            "People",
            people_schema(),
            stream(vec![people(0..50_000, "one")]),
        )
        .await
        .unwrap();
        run.finish().await.unwrap();
    };
    let two = async {
        let mut run = target.begin("People").await.unwrap();
        run.export_table(
            "People",
            people_schema(),
            stream(vec![people(0..40_000, "two")]),
        )
        .await
        .unwrap();
        run.finish().await.unwrap();
    };
    tokio::join!(one, two);
    let client = pg_client(&db).await;
    let rows = rows_of(&client, "People").await;
    let tag = rows[0].1.split('-').next().unwrap().to_string();
    assert_eq!(rows.len(), if tag == "one" { 50_000 } else { 40_000 });
    assert!(rows.iter().all(|(_, n)| n.starts_with(&tag)));
}
