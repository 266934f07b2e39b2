//! The ingestion benchmark: one generated CSV file loaded into a lake as Parquet by
//! lakecdp, and converted by DataFusion's own `COPY ... TO '...parquet'`, each in its own
//! process so that its peak memory can be read alone.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lakecdp_core::{
    ColumnSpec, ColumnType, EnvironmentId, LocalConfig, SourceFormat, SourceSpec, StorageConfig,
    TableSpec,
};
use lakecdp_engine::ingest::{ingest_source, IngestOptions, Progress};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::retail::rng::{pick, rng_for, Stream};
use crate::{Error, Result};

/// The columns of the generated file, as lakecdp declares them.
pub fn orders_schema() -> Vec<ColumnSpec> {
    let col = |name: &str, column_type| ColumnSpec {
        name: name.into(),
        column_type,
    };
    vec![
        col("OrderId", ColumnType::Int64),
        col("CustomerId", ColumnType::String),
        col("Email", ColumnType::String),
        col("OrderedAt", ColumnType::DateTimeTz),
        col("Amount", ColumnType::Double),
        col("Quantity", ColumnType::Int64),
        col("Channel", ColumnType::String),
        col("Status", ColumnType::String),
        col("City", ColumnType::String),
        col("Note", ColumnType::String),
    ]
}

const CHANNELS: &[&str] = &["web", "store", "app", "phone"];
const STATUSES: &[&str] = &["placed", "shipped", "delivered", "returned", "cancelled"];
const CITIES: &[&str] = &[
    "Seattle",
    "Lisbon",
    "München",
    "Osaka",
    "São Paulo",
    "Toronto",
    "Cape Town",
    "Melbourne",
];
const WORDS: &[&str] = &[
    "gift",
    "wrap",
    "fragile",
    "leave",
    "at",
    "door",
    "call",
    "before",
    "express",
    "standard",
    "second",
    "floor",
    "reception",
    "weekend",
];

/// Write `orders.csv` of at least `target_bytes` bytes; returns (rows, bytes). The same
/// seed and size give the same bytes. Rows look like a shop's order export: a unique
/// `OrderId`, repeat customers, quoted notes that sometimes hold the delimiter.
pub fn generate_orders(path: &Path, target_bytes: u64, seed: u64) -> Result<(u64, u64)> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let header = "OrderId,CustomerId,Email,OrderedAt,Amount,Quantity,Channel,Status,City,Note\n";
    out.write_all(header.as_bytes())
        .map_err(|e| Error::io(path, e))?;
    let mut bytes = header.len() as u64;
    let mut rows = 0u64;
    let mut line = String::with_capacity(256);
    // one random stream per block of rows keeps generation cheap and deterministic
    const BLOCK: u64 = 4096;
    let mut rng = rng_for(seed, Stream::BenchOrders, 0);
    while bytes < target_bytes {
        if rows.is_multiple_of(BLOCK) {
            rng = rng_for(seed, Stream::BenchOrders, rows / BLOCK);
        }
        let id = rows + 1;
        let customer = rng.random_range(1..=5_000_000u32);
        let second = 1_700_000_000 + rng.random_range(0..63_000_000i64);
        let at = chrono::DateTime::from_timestamp(second, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ");
        let cents = rng.random_range(100..500_000u32);
        let quantity = rng.random_range(1..10u8);
        let words = rng.random_range(0..6usize);
        line.clear();
        use std::fmt::Write as _;
        let _ = write!(
            line,
            "{id},C{customer:07},customer{customer}@example.com,{at},{}.{:02},{quantity},{},{},{},",
            cents / 100,
            cents % 100,
            pick(&mut rng, CHANNELS),
            pick(&mut rng, STATUSES),
            pick(&mut rng, CITIES),
        );
        if words > 0 {
            line.push('"');
            for w in 0..words {
                if w > 0 {
                    line.push_str(if w == 3 { ", " } else { " " });
                }
                let word: &&str = pick(&mut rng, WORDS);
                line.push_str(word);
            }
            line.push('"');
        }
        line.push('\n');
        out.write_all(line.as_bytes())
            .map_err(|e| Error::io(path, e))?;
        bytes += line.len() as u64;
        rows += 1;
    }
    out.flush().map_err(|e| Error::io(path, e))?;
    Ok((rows, bytes))
}

/// What one phase measured, as the phase process prints it (one JSON line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseResult {
    /// Phase name.
    pub phase: String,
    /// Rows loaded.
    pub rows: u64,
    /// Rows set aside (lakecdp's corrupt table; 0 for DataFusion).
    pub corrupt: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Peak resident memory of the process, in bytes.
    pub peak_rss: u64,
    /// Bytes of Parquet written.
    pub output_bytes: u64,
}

/// The phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// DataFusion: `COPY (SELECT * FROM 'orders.csv') TO 'orders.parquet'`.
    Datafusion,
    /// lakecdp: the file as a source table without a primary key.
    Lakecdp,
    /// lakecdp: the file as a source table keyed by `OrderId` (duplicate-key detection).
    LakecdpKeyed,
}

impl Phase {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Datafusion => "datafusion COPY",
            Phase::Lakecdp => "lakecdp ingest",
            Phase::LakecdpKeyed => "lakecdp ingest, keyed",
        }
    }
}

/// Peak resident memory of this process (`VmHWM`), in bytes; 0 where unknown.
pub fn peak_rss() -> u64 {
    peak_rss_of("self")
}

/// The peak resident memory of process `pid` (a number, or `self`) as the kernel
/// reports it (`VmHWM`), in bytes; 0 where it does not.
pub fn peak_rss_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The bytes of the files below `dir` that `counted` takes (a file alone: its size).
pub(crate) fn size_of_tree(dir: &Path, counted: fn(&Path) -> bool) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return std::fs::metadata(dir).map_or(0, |m| m.len());
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                size_of_tree(&p, counted)
            } else if counted(&p) {
                e.metadata().map_or(0, |m| m.len())
            } else {
                0
            }
        })
        .sum()
}

/// Run one phase on `csv`, writing under `work`.
pub async fn run_phase(phase: Phase, csv: &Path, work: &Path) -> Result<PhaseResult> {
    let out = work.join(match phase {
        Phase::Datafusion => "datafusion",
        Phase::Lakecdp => "lakecdp",
        Phase::LakecdpKeyed => "lakecdp-keyed",
    });
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    }
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let started = Instant::now();
    let (rows, corrupt) = match phase {
        Phase::Datafusion => {
            let ctx = datafusion::prelude::SessionContext::new().enable_url_table();
            let target = out.join("orders.parquet");
            let sql = format!(
                "COPY (SELECT * FROM '{}') TO '{}'",
                csv.display(),
                target.display()
            );
            let batches = ctx
                .sql(&sql)
                .await
                .map_err(|e| Error::Bench(e.to_string()))?
                .collect()
                .await
                .map_err(|e| Error::Bench(e.to_string()))?;
            let rows = batches
                .first()
                .and_then(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<arrow::array::UInt64Array>()
                        .map(|a| a.value(0))
                })
                .unwrap_or(0);
            (rows, 0)
        }
        Phase::Lakecdp | Phase::LakecdpKeyed => {
            std::fs::create_dir_all(out.join("customerinsights"))
                .map_err(|e| Error::io(&out, e))?;
            let handle = lakecdp_lake::backend::open(
                &StorageConfig::Local(LocalConfig { path: out.clone() }),
                None,
            )
            .map_err(|e| Error::Bench(e.to_string()))?;
            let lake = lakecdp_lake::Lake::new(&handle, EnvironmentId::new())
                .with_format(lakecdp_core::PartitionFormat::Parquet);
            let keyed = phase == Phase::LakecdpKeyed;
            let source = SourceSpec {
                name: "Shop".into(),
                description: None,
                max_corrupt_share: None,
                access: None,
                tables: vec![TableSpec {
                    name: "Orders".into(),
                    location: csv.display().to_string(),
                    format: SourceFormat::Csv,
                    primary_key: keyed.then(|| "OrderId".into()),
                    last_updated: keyed.then(|| "OrderedAt".into()),
                    csv: None,
                    entity: None,
                    schema: orders_schema(),
                    incremental: false,
                }],
            };
            let options = IngestOptions {
                progress: Arc::new(Lines::default()),
                ..IngestOptions::default()
            };
            let report = ingest_source(&lake, &source, work, &options)
                .await
                .map_err(|e| Error::Bench(e.to_string()))?;
            let t = report
                .tables
                .first()
                .ok_or_else(|| Error::Bench("the load reported no table".into()))?;
            (t.written, t.corrupt)
        }
    };
    Ok(PhaseResult {
        phase: phase.name().into(),
        rows,
        corrupt,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss: peak_rss(),
        output_bytes: size_of_tree(&out, |p| p.extension().is_some_and(|x| x == "parquet")),
    })
}

/// Progress as a line on stderr every 10 seconds.
#[derive(Default)]
struct Lines {
    records: AtomicU64,
    last: std::sync::Mutex<Option<Instant>>,
}

impl Progress for Lines {
    fn start(&self, table: &str, pass: u8, bytes: u64) {
        self.records.store(0, Ordering::Relaxed);
        if let Ok(mut last) = self.last.lock() {
            *last = Some(Instant::now());
        }
        eprintln!("  {table}: pass {pass} over {:.2} GB", bytes as f64 / 1e9);
    }
    fn advance(&self, records: u64, _bytes: u64) {
        let n = self.records.fetch_add(records, Ordering::Relaxed) + records;
        if n % 65_536 >= records {
            return;
        }
        if let Ok(mut last) = self.last.lock() {
            if last.is_some_and(|t| t.elapsed() >= Duration::from_secs(10)) {
                *last = Some(Instant::now());
                eprintln!("  {n} records");
            }
        }
    }
    fn finish(&self) {}
}

/// Where the benchmark's files go.
pub fn csv_path(dir: &Path) -> PathBuf {
    dir.join("orders.csv")
}
