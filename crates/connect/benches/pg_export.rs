//! PostgreSQL export throughput: `PostgresTarget` (binary COPY straight from Arrow)
//! against writing the same rows as CSV and loading them with `psql \copy`.
//!
//! Needs the PostgreSQL variables of `scripts/test-services.sh`
//! (`LAKECDP_TEST_PG_HOST/_PORT/_USER/_PASSWORD`) and `psql` (PATH or
//! `/usr/lib/postgresql/15/bin/psql`). Run with
//! `cargo bench -p lakecdp-connect --bench pg_export`; `LAKECDP_BENCH_ROWS` overrides the
//! 1,000,000 rows.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Int32Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use lakecdp_connect::postgres::copy::CopyEncoder;
use lakecdp_connect::postgres::types::{pg_type_of, quote_ident};
use lakecdp_connect::{ExportTarget, PostgresTarget};
use lakecdp_core::Secret;

const BATCH_ROWS: usize = 65_536;
const REPETITIONS: usize = 3;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the servers with `eval \"$(bash scripts/test-services.sh start)\"`")
    })
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("CustomerId", DataType::Utf8, false),
        Field::new("FirstName", DataType::Utf8, true),
        Field::new("LastName", DataType::Utf8, true),
        Field::new("Email", DataType::Utf8, true),
        Field::new("Phone", DataType::Utf8, true),
        Field::new("City", DataType::Utf8, true),
        Field::new("Country", DataType::Utf8, true),
        Field::new("BirthDate", DataType::Date32, true),
        Field::new(
            "CreatedOn",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new("TotalSpend", DataType::Decimal128(18, 2), true),
        Field::new("OrderCount", DataType::Int32, true),
    ]))
}

/// A deterministic Customer-like table.
fn customers(rows: usize) -> Vec<RecordBatch> {
    const FIRST: &[&str] = &[
        "Anna", "José", "Li", "Mohammed", "Olga", "Pierre", "Sven", "Yuki", "Zoë", "Ngozi",
    ];
    const LAST: &[&str] = &[
        "Smith", "García", "Wang", "Haddad", "Ivanova", "Dubois", "Berg", "Sato", "O'Neil",
        "Okafor", "Müller",
    ];
    const CITIES: &[(&str, &str)] = &[
        ("Seattle", "US"),
        ("Madrid", "ES"),
        ("Shanghai", "CN"),
        ("Cairo", "EG"),
        ("Kyiv", "UA"),
        ("Lyon", "FR"),
        ("Malmö", "SE"),
        ("Osaka", "JP"),
        ("Lagos", "NG"),
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let schema = schema();
    let mut out = Vec::new();
    let mut start = 0;
    while start < rows {
        let n = BATCH_ROWS.min(rows - start);
        let mut id = Vec::with_capacity(n);
        let mut first = Vec::with_capacity(n);
        let mut last = Vec::with_capacity(n);
        let mut email = Vec::with_capacity(n);
        let mut phone = Vec::with_capacity(n);
        let mut city = Vec::with_capacity(n);
        let mut country = Vec::with_capacity(n);
        let mut birth = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let mut spend = Vec::with_capacity(n);
        let mut orders = Vec::with_capacity(n);
        for i in start..start + n {
            let r = next();
            let f = FIRST[(r % FIRST.len() as u64) as usize];
            let l = LAST[((r >> 8) % LAST.len() as u64) as usize];
            let (c, k) = CITIES[((r >> 16) % CITIES.len() as u64) as usize];
            id.push(format!("C{i:09}"));
            first.push(Some(f));
            last.push(Some(l));
            email.push(Some(format!(
                "{}.{}{i}@example.com",
                f.to_lowercase(),
                l.to_lowercase()
            )));
            phone.push((i % 10 != 0).then(|| format!("+1-555-{:07}", r % 10_000_000)));
            city.push(Some(c));
            country.push(Some(k));
            birth.push((i % 17 != 0).then_some(-10_000 + ((r >> 24) % 22_000) as i32));
            created.push(Some(
                1_500_000_000_000_000 + ((r >> 4) % 250_000_000_000_000) as i64,
            ));
            spend.push((i % 23 != 0).then_some(((r >> 32) % 100_000_000) as i128 - 1_000));
            orders.push(Some(((r >> 40) % 500) as i32));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(id)),
            Arc::new(StringArray::from(first)),
            Arc::new(StringArray::from(last)),
            Arc::new(StringArray::from(email)),
            Arc::new(StringArray::from(phone)),
            Arc::new(StringArray::from(city)),
            Arc::new(StringArray::from(country)),
            Arc::new(Date32Array::from(birth)),
            Arc::new(TimestampMicrosecondArray::from(created)),
            Arc::new(
                Decimal128Array::from(spend)
                    .with_precision_and_scale(18, 2)
                    .expect("valid decimal"),
            ),
            Arc::new(Int32Array::from(orders)),
        ];
        out.push(RecordBatch::try_new(schema.clone(), columns).expect("valid batch"));
        start += n;
    }
    out
}

fn psql() -> PathBuf {
    let debian = PathBuf::from("/usr/lib/postgresql/15/bin/psql");
    if debian.exists() {
        debian
    } else {
        PathBuf::from("psql")
    }
}

fn stats(label: &str, times: &mut [Duration], rows: usize) {
    times.sort();
    let best = times[0];
    let median = times[times.len() / 2];
    println!(
        "{label:<34} best {:>8.3} s ({:>9.0} rows/s)   median {:>8.3} s ({:>9.0} rows/s)",
        best.as_secs_f64(),
        rows as f64 / best.as_secs_f64(),
        median.as_secs_f64(),
        rows as f64 / median.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("LAKECDP_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let host = var("LAKECDP_TEST_PG_HOST");
    let port: u16 = var("LAKECDP_TEST_PG_PORT").parse().expect("a port number");
    let user = var("LAKECDP_TEST_PG_USER");
    let password = var("LAKECDP_TEST_PG_PASSWORD");
    let database = format!("lakecdp_bench_{}", std::process::id());
    let schema = schema();

    let t = Instant::now();
    let batches = customers(rows);
    println!(
        "generated {rows} rows in {} batches in {:.2} s",
        batches.len(),
        t.elapsed().as_secs_f64()
    );

    let target = PostgresTarget::builder()
        .host(&host)
        .port(port)
        .user(&user)
        .password(Secret::new(&password))
        .database(&database)
        .build()
        .expect("valid settings");

    // the encoder alone, without a server
    let mut encode = Vec::new();
    for _ in 0..REPETITIONS {
        let t = Instant::now();
        let mut encoder = CopyEncoder::new(&schema).expect("mapped types");
        let mut bytes = 0;
        for b in &batches {
            encoder.encode(b).expect("encodable");
            bytes += encoder.take().len();
        }
        bytes += encoder.finish().len();
        encode.push(t.elapsed());
        assert!(bytes > rows);
    }

    let mut binary = Vec::new();
    let mut sent = 0;
    for _ in 0..REPETITIONS {
        let t = Instant::now();
        let mut run = target.begin("Bench").await.expect("begin");
        let input = futures::stream::iter(batches.clone().into_iter().map(Ok)).boxed();
        let done = run
            .export_table("Customer", schema.clone(), input)
            .await
            .expect("export");
        run.finish().await.expect("finish");
        binary.push(t.elapsed());
        assert_eq!(done.rows as usize, rows);
        sent = done.bytes;
    }

    // the same rows as CSV, loaded by psql \copy into an equal table
    let dir = tempfile::tempdir().expect("a temporary folder");
    let csv_path = dir.path().join("customer.csv");
    let t = Instant::now();
    {
        let file = std::io::BufWriter::new(std::fs::File::create(&csv_path).expect("csv file"));
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .with_timestamp_format("%Y-%m-%dT%H:%M:%S%.f".into())
            .build(file);
        for b in &batches {
            w.write(b).expect("csv write");
        }
    }
    let csv_write = t.elapsed();
    let csv_bytes = std::fs::metadata(&csv_path).expect("csv size").len();
    let ddl = schema
        .fields()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                quote_ident(f.name()),
                pg_type_of(f.name(), f.data_type()).expect("mapped type")
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let table = "customerinsights.\"CustomerCsv\"";
    let mut copy = Vec::new();
    for _ in 0..REPETITIONS {
        let t = Instant::now();
        let status = Command::new(psql())
            .env("PGPASSWORD", &password)
            .env("PGOPTIONS", "-c client_min_messages=warning")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                &host,
                "-p",
                &port.to_string(),
                "-U",
                &user,
                "-d",
                &database,
            ])
            .arg("-c")
            .arg(format!(
                "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({ddl})"
            ))
            .arg("-c")
            .arg(format!(
                "\\copy {table} FROM '{}' WITH (FORMAT csv, HEADER true)",
                csv_path.display()
            ))
            .status()
            .expect("psql runs");
        assert!(status.success(), "psql failed");
        copy.push(t.elapsed());
    }

    println!(
        "{rows} rows, {REPETITIONS} repetitions; binary COPY stream {:.1} MiB, CSV file {:.1} MiB",
        sent as f64 / 1048576.0,
        csv_bytes as f64 / 1048576.0
    );
    stats("CopyEncoder alone (no server)", &mut encode, rows);
    stats("PostgresTarget (binary COPY)", &mut binary, rows);
    stats("psql \\copy of a CSV file", &mut copy, rows);
    println!(
        "writing the CSV file took {:.3} s more (once)",
        csv_write.as_secs_f64()
    );

    // tidy up the benchmark database
    let _ = Command::new(psql())
        .env("PGPASSWORD", &password)
        .args([
            "-X",
            "-q",
            "-h",
            &host,
            "-p",
            &port.to_string(),
            "-U",
            &user,
            "-d",
            "postgres",
        ])
        .arg("-c")
        .arg(format!(
            "DROP DATABASE IF EXISTS {}",
            quote_ident(&database)
        ))
        .status();
}
