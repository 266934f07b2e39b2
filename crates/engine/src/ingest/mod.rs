//! Ingestion: a source's tables into `DataIngestion/<Source>/`, published atomically.
//!
//! Nothing read is lost: every record of every file ends up either in the table's
//! entity or in `<Source>_<Table>_corrupt` (file, line, raw record, reason), and the
//! counts reconcile (`read = written + corrupt`). A table whose corrupt share passes the
//! source's limit fails the load and nothing of the source is published.
//!
//! CSV files are cut at record boundaries and tokenised on every core (see `csv`);
//! corrupt rows go to a local spill file as they are found. Hostile input stays
//! bounded: a record longer than [`IngestOptions::max_record_bytes`] or a header wider
//! than [`IngestOptions::max_columns`] is one corrupt row, not unbounded memory.
//!
//! Duplicate primary keys within one load keep the row with the latest last-updated
//! value (ties and tables without one: the last row read). The files are read once: a
//! keyed load keeps its converted batches in a local spill file while it learns which
//! row wins each key, then routes the spilled batches. The key index holds at most
//! [`IngestOptions::key_index_budget_bytes`]; a larger one goes to sorted runs on local
//! disk, merged key by key (see `runs`), and picks the same winners.

pub mod convert;
mod corrupt;
pub(crate) mod csv;
#[cfg(feature = "distributed")]
pub mod distributed;
pub mod keys;
mod reader;
pub mod records;
mod runs;

pub(crate) use reader::read_line;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use lakecdp_core::{RunId, SourceSpec, TableSpec};
use lakecdp_lake::cdm::Model;
use lakecdp_lake::{CdmFolderWriter, Lake, Process};

use self::convert::Converter;
use self::reader::{FileKind, PreviousFormat, Role, TableReader};
use crate::source::incremental::{list_layout, ChangeKind, Layout};
use crate::source::{effective_columns, infer_schema, prepare, Fetched};
use crate::{Error, Result};

/// Records converted per batch.
const BATCH_ROWS: usize = 8192;

/// What loading one table did.
#[derive(Debug, Clone, PartialEq)]
pub struct TableReport {
    /// Table name.
    pub table: String,
    /// Records read.
    pub read: u64,
    /// Rows written to the table's entity.
    pub written: u64,
    /// Rows written to the corrupt entity.
    pub corrupt: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// Corrupt rows per reason kind (the text before the first `:`), most frequent first.
    pub reasons: Vec<(String, u64)>,
    /// Rows that a later change replaced or deleted (incremental tables; otherwise 0).
    /// `read = written + corrupt + replaced + deleted`.
    pub replaced: u64,
    /// Delete records that removed their key (incremental tables; otherwise 0).
    pub deleted: u64,
    /// What an incremental table's load did.
    pub incremental: Option<IncrementalReport>,
    /// Why the table was loaded in this process although the load was asked to run on a
    /// cluster (`None`: it ran where asked).
    pub local: Option<String>,
}

/// What the load of a table in the incremental layout did.
#[derive(Debug, Clone, PartialEq)]
pub struct IncrementalReport {
    /// Where the load started: the table's previous output, or `FullData/`.
    pub base: Base,
    /// Rows read from the base.
    pub base_rows: u64,
    /// The hour folders applied, in order (start of each hour, UTC).
    pub hours: Vec<DateTime<Utc>>,
    /// Records read from `Upserts/` folders.
    pub upserts: u64,
    /// Records read from `Deletes/` folders.
    pub deletes: u64,
    /// The watermark to record: the last ended hour seen (none before any hour folder).
    pub watermark: Option<DateTime<Utc>>,
    /// Hour folders that had not ended yet, left for a later refresh.
    pub waiting: Vec<DateTime<Utc>>,
    /// Files written into hour folders after those hours were applied: not loaded (a full
    /// refresh loads them).
    pub late: Vec<String>,
}

/// Where an incremental load starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The table's previously published output.
    Previous,
    /// The files of `FullData/` (first load, full refresh, changed declaration).
    FullData,
}

/// The entity of a source table's corrupt rows (file, line, raw record, reason), in the
/// source's ingestion folder.
pub fn corrupt_entity(source: &str, table: &str) -> String {
    format!("{source}_{table}_corrupt")
}

/// What loading one source did.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceReport {
    /// Source name.
    pub source: String,
    /// The published run.
    pub run_id: RunId,
    /// One report per table (empty when the source was unchanged).
    pub tables: Vec<TableReport>,
    /// Nothing changed since the last load (same declaration, same files): nothing was
    /// read or rewritten, and `run_id` is the run already published.
    pub unchanged: bool,
}

/// Receives the progress of a load; called from the loading threads.
pub trait Progress: Send + Sync {
    /// A pass begins: pass 1 reads a table's files (`bytes`: their size); tables with a
    /// primary key then route the rows they kept on local disk in pass 2 (`bytes`: the
    /// size of the spill file).
    fn start(&self, table: &str, pass: u8, bytes: u64);
    /// More records were read.
    fn advance(&self, records: u64, bytes: u64);
    /// The pass ended.
    fn finish(&self);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: u8, _: u64) {}
    fn advance(&self, _: u64, _: u64) {}
    fn finish(&self) {}
}

/// How to load.
#[derive(Clone)]
pub struct IngestOptions {
    /// Runs of the source folder kept in the lake.
    pub retention: u32,
    /// Load even if nothing changed since the last load.
    pub force: bool,
    /// Where progress goes.
    pub progress: Arc<dyn Progress>,
    /// Incremental tables start again from `FullData/` (a one-time full refresh); implies
    /// `force`.
    pub full: bool,
    /// With `full`: apply only the hour folders from this time on.
    pub incremental_from: Option<DateTime<Utc>>,
    /// Per table name, the last hour folder already applied (from the catalog).
    pub watermarks: HashMap<String, DateTime<Utc>>,
    /// Per table name, when its watermark was last set: files written into applied hours
    /// after it are reported as late.
    pub applied_at: HashMap<String, DateTime<Utc>>,
    /// The time hour folders are compared with (now when absent).
    pub now: Option<DateTime<Utc>>,
    /// The longest CSV record or JSON line, in bytes (at most 256 MiB): a longer one is a
    /// corrupt row.
    pub max_record_bytes: usize,
    /// The most fields of a CSV header or record: a wider header is a corrupt row, and so
    /// is every record of its file.
    pub max_columns: usize,
    /// CSV files are cut, at record boundaries, into pieces of about this many bytes (at
    /// most 256 MiB) that are tokenised in parallel.
    pub split_bytes: usize,
    /// Threads that tokenise and convert CSV pieces (0: one per core).
    pub threads: usize,
    /// Memory of a keyed load's key index, in bytes: a larger index goes to sorted runs
    /// on local disk, merged to find the row that wins each key.
    pub key_index_budget_bytes: usize,
    /// Load on a Ballista cluster (what it can load; the rest here).
    pub cluster: Option<IngestCluster>,
}

/// Where a load runs when it runs on a Ballista cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestCluster {
    /// The scheduler, `df://host:port`; `None`: this process's standalone cluster.
    pub scheduler: Option<String>,
    /// The project revision the refresh runs: the executors look the source up in it.
    pub revision: Option<u32>,
    /// Tasks per table: groups of files converted at once, and parts written.
    pub tasks: usize,
    /// The executors read the project's local folders at the same paths (a standalone
    /// cluster, or a cluster whose machines all mount them): tables in local folders
    /// load on the cluster too. Otherwise only tables in remote storage do.
    pub local_files: bool,
}

/// The default longest record: 16 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 16 << 20;
/// The default most columns of a CSV file.
pub const DEFAULT_MAX_COLUMNS: usize = 16_384;
/// The default size of the pieces CSV files are cut into.
pub const DEFAULT_SPLIT_BYTES: usize = 4 << 20;
/// The default memory of a keyed load's key index: 256 MiB.
pub const DEFAULT_KEY_INDEX_BUDGET_BYTES: usize = 256 << 20;

impl IngestOptions {
    fn limits(&self) -> csv::Limits {
        let threads = match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        csv::Limits {
            max_record_bytes: self.max_record_bytes.clamp(1, csv::MAX_LIMIT),
            max_columns: self.max_columns.max(1),
            chunk_bytes: self.split_bytes.max(1),
            workers: threads,
        }
    }
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            retention: lakecdp_core::environment::DEFAULT_RETENTION_RUNS,
            force: false,
            progress: Arc::new(NoProgress),
            full: false,
            incremental_from: None,
            watermarks: HashMap::new(),
            applied_at: HashMap::new(),
            now: None,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_columns: DEFAULT_MAX_COLUMNS,
            split_bytes: DEFAULT_SPLIT_BYTES,
            threads: 0,
            key_index_budget_bytes: DEFAULT_KEY_INDEX_BUDGET_BYTES,
            cluster: None,
        }
    }
}

impl std::fmt::Debug for IngestOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestOptions")
            .field("retention", &self.retention)
            .field("force", &self.force)
            .field("full", &self.full)
            .field("incremental_from", &self.incremental_from)
            .field("watermarks", &self.watermarks)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("max_columns", &self.max_columns)
            .field("split_bytes", &self.split_bytes)
            .field("threads", &self.threads)
            .field("key_index_budget_bytes", &self.key_index_budget_bytes)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// What a source's last load was made from, kept in the lake beside the output.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Fingerprint {
    /// The source's declaration.
    source: serde_json::Value,
    /// Per table, its files and their versions.
    files: Vec<Vec<(String, String)>>,
    /// The run that published it.
    run_id: Option<RunId>,
}

fn fingerprint_path(lake: &Lake, source: &str) -> String {
    lake.internal(&format!("ingest/{source}.json"))
}

/// A corrupt row with the file it came from.
#[derive(Debug, Clone)]
pub(crate) struct CorruptRow {
    file: String,
    line: u64,
    raw: String,
    reason: String,
}

/// A table ready to load: its effective declaration, its files and their roles.
struct Load {
    table: TableSpec,
    files: Fetched,
    roles: Vec<Role>,
    previous: Option<PreviousFormat>,
    incremental: Option<IncrementalReport>,
}

/// A table as listed before deciding whether anything changed.
enum Listed {
    Plain(TableSpec, Fetched),
    Incremental(Layout),
}

impl Listed {
    /// The files that identify this state of the table: for the incremental layout,
    /// `FullData/` and every ended hour folder.
    fn versions(&self) -> Vec<(String, String)> {
        let files = match self {
            Listed::Plain(_, f) => f.files.iter().collect::<Vec<_>>(),
            Listed::Incremental(l) => l.full.files.iter().chain(&l.changes.files).collect(),
        };
        files
            .into_iter()
            .map(|f| (f.name.clone(), f.version.clone()))
            .collect()
    }
}

/// Load every table of `source` and publish `DataIngestion/<Source>/`.
pub async fn ingest_source(
    lake: &Lake,
    source: &SourceSpec,
    project_dir: &Path,
    options: &IngestOptions,
) -> Result<SourceReport> {
    let retention = options.retention;
    let force = options.force || options.full;
    let now = options.now.unwrap_or_else(Utc::now);
    let mut listed = Vec::with_capacity(source.tables.len());
    for table in &source.tables {
        if table.incremental {
            check_incremental(table)?;
            let layout =
                list_layout(&table.location, source.access.as_ref(), project_dir, now).await?;
            if layout.full.files.is_empty() && layout.changes.files.is_empty() {
                return Err(Error::Source(format!(
                    "table `{}`: `{}` has no FullData/ files and no ended IncrementalData/ hour folder",
                    table.name, table.location
                )));
            }
            listed.push(Listed::Incremental(layout));
        } else {
            let (table, fetched) = prepare(table, source.access.as_ref(), project_dir).await?;
            listed.push(Listed::Plain(table, fetched));
        }
    }
    let mut fingerprint = Fingerprint {
        source: serde_json::to_value(source).map_err(|e| Error::Internal(e.to_string()))?,
        files: listed.iter().map(Listed::versions).collect(),
        run_id: None,
    };
    let process = Process::Ingestion(source.name.clone());
    let stored = match lake.get(&fingerprint_path(lake, &source.name)).await {
        Ok(bytes) => serde_json::from_slice::<Fingerprint>(&bytes).ok(),
        Err(lakecdp_lake::Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let previous_model = lakecdp_lake::publish::read_model(lake, &process).await?;
    if !force {
        if let (Some(stored), Some(_)) = (&stored, &previous_model) {
            if stored.source == fingerprint.source && stored.files == fingerprint.files {
                if let Some(run_id) = stored.run_id.clone() {
                    return Ok(SourceReport {
                        source: source.name.clone(),
                        run_id,
                        tables: Vec::new(),
                        unchanged: true,
                    });
                }
            }
        }
    }
    let mut loads = Vec::with_capacity(listed.len());
    for (table, listed) in source.tables.iter().zip(listed) {
        loads.push(match listed {
            Listed::Plain(table, files) => Load {
                roles: vec![Role::ROWS; files.files.len()],
                table,
                files,
                previous: None,
                incremental: None,
            },
            Listed::Incremental(layout) => {
                // the previous output is a valid base only for the same declaration
                let same_declaration = stored.as_ref().is_some_and(|s| {
                    declared_table(&s.source, &table.name) == serde_json::to_value(table).ok()
                });
                let previous = previous_model
                    .as_ref()
                    .filter(|_| !options.full && same_declaration);
                incremental_load(lake, &process, table, layout, previous, options)?
            }
        });
    }
    let mut writer = CdmFolderWriter::begin(lake, process, retention).await?;
    if let Some(d) = &source.description {
        writer.describe(d.clone());
    }
    let mut tables = Vec::new();
    for load in loads {
        // a table the cluster loads is read by its tasks: here, only the first file
        // with a readable header, for its columns (all of them for Parquet's schemas)
        let placement = placement(&load, source, options);
        let on_cluster = matches!(placement, Placement::Cluster(_))
            && matches!(
                load.table.format,
                lakecdp_core::SourceFormat::Csv
                    | lakecdp_core::SourceFormat::Jsonl
                    | lakecdp_core::SourceFormat::Delta
            );
        let files = if on_cluster {
            Ok(load.files)
        } else {
            load.files.download().await
        };
        let loaded = match files {
            Ok(files) => {
                let load = Load { files, ..load };
                ingest_table(&mut writer, source, load, placement, project_dir, options).await
            }
            Err(e) => Err(e),
        };
        match loaded {
            Ok(report) => tables.push(report),
            Err(e) => {
                if let Err(cleanup) = writer.abort().await {
                    tracing::warn!(source = %source.name, error = %cleanup, "could not remove the files of the failed run");
                }
                return Err(e);
            }
        }
    }
    let published = writer.commit().await?;
    fingerprint.run_id = Some(published.run_id.clone());
    let bytes =
        serde_json::to_vec_pretty(&fingerprint).map_err(|e| Error::Internal(e.to_string()))?;
    lake.put(&fingerprint_path(lake, &source.name), bytes)
        .await?;
    Ok(SourceReport {
        source: source.name.clone(),
        run_id: published.run_id,
        tables,
        unchanged: false,
    })
}

fn check_incremental(table: &TableSpec) -> Result<()> {
    let missing: Vec<&str> = [
        ("primary_key", table.primary_key.is_none()),
        ("last_updated", table.last_updated.is_none()),
    ]
    .into_iter()
    .filter(|(_, m)| *m)
    .map(|(k, _)| k)
    .collect();
    if !missing.is_empty() {
        return Err(Error::Source(format!(
            "table `{}`: the incremental layout needs `{}` (the key that upserts and deletes refer to, and the column that orders changes)",
            table.name,
            missing.join("` and `")
        )));
    }
    if !matches!(
        table.format,
        lakecdp_core::SourceFormat::Csv
            | lakecdp_core::SourceFormat::Parquet
            | lakecdp_core::SourceFormat::Jsonl
    ) {
        return Err(Error::Source(format!(
            "table `{}`: the incremental layout holds csv, parquet or jsonl files, not `{}`",
            table.name, table.format
        )));
    }
    Ok(())
}

/// The declaration of table `name` inside a stored source declaration.
fn declared_table(source: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    source
        .get("tables")?
        .as_array()?
        .iter()
        .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
        .cloned()
}

/// The files of an incremental load: the base (the previous output when there is one
/// to build on, else `FullData/`), then the ended hour folders not applied yet, each
/// hour's upserts before its deletes.
fn incremental_load(
    lake: &Lake,
    process: &Process,
    table: &TableSpec,
    layout: Layout,
    previous: Option<&Model>,
    options: &IngestOptions,
) -> Result<Load> {
    let latest = layout.change_of.last().map(|(h, _)| *h);
    let watermark = options.watermarks.get(&table.name).copied();
    let applied_at = options.applied_at.get(&table.name).copied();
    let waiting = layout.waiting.clone();
    let entity = previous.and_then(|m| m.entity(&table.name));
    let (base, base_files, base_roles, previous_format, mut layout) = match entity {
        Some(entity) => {
            let folder = process.folder();
            let mut objects = Vec::new();
            for p in &entity.partitions {
                let relative = lakecdp_lake::partition::partition_relative(lake, &folder, p)?;
                objects.push((lake.path(&relative), relative, String::new()));
            }
            let parquet = entity.partitions.first().is_some_and(|p| p.is_parquet());
            let settings = entity
                .partitions
                .first()
                .and_then(|p| p.file_format_settings.clone());
            let format = PreviousFormat {
                parquet,
                header: settings.as_ref().is_some_and(|s| s.column_headers),
                delimiter: settings
                    .as_ref()
                    .and_then(|s| s.delimiter_byte())
                    .unwrap_or(b','),
                schema: lakecdp_lake::partition::entity_schema_of(
                    entity,
                    lakecdp_lake::cdm::ArrowTypes::Annotated,
                )?,
            };
            let files = Fetched::from_store(lake.store().clone(), objects)?;
            let roles = vec![
                Role {
                    kind: FileKind::Previous,
                    group: 0
                };
                files.files.len()
            ];
            (
                Base::Previous,
                files,
                roles,
                Some(format),
                layout.since(watermark, None, applied_at),
            )
        }
        None => {
            let mut layout = layout.since(None, options.incremental_from, None);
            let full = std::mem::replace(&mut layout.full, Fetched::empty());
            let roles = vec![Role::ROWS; full.files.len()];
            (Base::FullData, full, roles, None, layout)
        }
    };
    let hours = layout.hours();
    let late = std::mem::take(&mut layout.late);
    let mut roles = base_roles;
    for (hour, kind) in &layout.change_of {
        let group = hours.iter().position(|h| h == hour).unwrap_or(0) as u32 + 1;
        roles.push(Role {
            kind: match kind {
                ChangeKind::Upserts => FileKind::Rows,
                ChangeKind::Deletes => FileKind::Deletes,
            },
            group,
        });
    }
    let mut files = base_files;
    files.append(layout.changes);
    let watermark = match (watermark, latest) {
        (Some(w), Some(l)) => Some(w.max(l)),
        (w, l) => w.or(l),
    };
    Ok(Load {
        table: table.clone(),
        files,
        roles,
        previous: previous_format,
        incremental: Some(IncrementalReport {
            base,
            base_rows: 0,
            hours,
            upserts: 0,
            deletes: 0,
            watermark,
            waiting,
            late,
        }),
    })
}

/// Where a table of a load is read.
#[derive(Debug, Clone, Copy)]
enum Placement<'a> {
    /// Here: no cluster was asked for.
    Here,
    /// By the tasks of this cluster.
    Cluster(&'a IngestCluster),
    /// Here, although a cluster was asked for, for this reason.
    HereInstead(&'static str),
}

/// Where `load`, a table of `source`, is read with `options`.
fn placement<'a>(load: &Load, source: &SourceSpec, options: &'a IngestOptions) -> Placement<'a> {
    let Some(cluster) = &options.cluster else {
        return Placement::Here;
    };
    #[cfg(feature = "distributed")]
    return match distributed::stays_local(load, source, cluster) {
        None => Placement::Cluster(cluster),
        Some(why) => Placement::HereInstead(why),
    };
    #[cfg(not(feature = "distributed"))]
    {
        let _ = (load, source, cluster);
        Placement::HereInstead("this build has no cluster support")
    }
}

async fn ingest_table(
    writer: &mut CdmFolderWriter,
    source: &SourceSpec,
    load: Load,
    placement: Placement<'_>,
    project_dir: &Path,
    options: &IngestOptions,
) -> Result<TableReport> {
    let started = Instant::now();
    let progress = options.progress.clone();
    let limits = options.limits();
    let mut load = load;
    let table = &load.table;
    let inferred = match &load.previous {
        // the previous output holds the schema the last load settled on
        Some(previous) => previous.schema.clone(),
        // a Delta table's schema is its log's, which prepare() put in the declaration
        None if table.format == lakecdp_core::SourceFormat::Delta => {
            infer_schema(table, &Fetched::empty()).await?
        }
        None => {
            let mut rows = Vec::new();
            let mut unreadable = 0;
            // CSV and JSON Lines take their columns from the first file that has them
            let first_only = matches!(
                load.table.format,
                lakecdp_core::SourceFormat::Csv | lakecdp_core::SourceFormat::Jsonl
            );
            for i in 0..load.files.files.len() {
                if load.roles.get(i).map(|r| r.kind) != Some(FileKind::Rows) {
                    continue;
                }
                load.files.download_one(i).await?;
                let file = &load.files.files[i];
                // a file whose header cannot be read says nothing of the columns
                match reader::unusable_header(&load.table, &file.path, &limits)? {
                    None => rows.push(file.clone()),
                    Some(_) => unreadable += 1,
                }
                if first_only && !rows.is_empty() {
                    break;
                }
            }
            if rows.is_empty() && unreadable > 0 {
                if table.schema.is_empty() {
                    return Err(Error::Source(format!(
                        "table `{}`: no file has a header that can be read within the limits, and no column is declared",
                        table.name
                    )));
                }
                convert::output_schema(&table.schema)
            } else {
                infer_schema(table, &Fetched::local(rows)).await?
            }
        }
    };
    let columns = effective_columns(table, &inferred);
    let files = load.files.files.clone();
    let (converter, last_updated) = converter_of(
        &table.name,
        &columns,
        table.primary_key.as_deref(),
        table.last_updated.as_deref(),
        Some(table),
    )?;
    let schema = converter.schema().clone();
    let load_reason = match placement {
        #[cfg(feature = "distributed")]
        Placement::Cluster(cluster) => {
            return distributed::load_table(
                writer,
                source,
                &load,
                project_dir,
                columns,
                schema,
                options,
                cluster,
            )
            .await
        }
        #[cfg(not(feature = "distributed"))]
        Placement::Cluster(_) => None,
        Placement::Here => None,
        Placement::HereInstead(why) => Some(why),
    };
    let reader = TableReader {
        label: format!("{}.{}", source.name, table.name),
        table: table.clone(),
        columns,
        files,
        roles: load.roles.clone(),
        previous: load.previous.clone(),
        access: source.access.clone(),
        project_dir: project_dir.to_path_buf(),
        converter,
        last_updated,
        progress,
        limits,
        key_index_budget: options.key_index_budget_bytes.max(1),
        reads: None,
    };

    // One pass over the files; a keyed load keeps its batches on local disk until it
    // knows which row wins each key, then routes them.
    let reader = Arc::new(reader);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, String>>(4);
    let r = reader.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let mut sink = corrupt::CorruptSink::new();
        let routed = if r.converter.primary_key().is_some() {
            r.load_keyed(&tx, &mut sink)
        } else {
            r.route(&tx, &mut sink)
        };
        routed.map(|routed| (routed, sink))
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let written = writer
        .write_entity(&table.name, None, schema, Box::pin(stream))
        .await;
    let (routed, corrupt) = producer.await.map_err(join_error)??;
    let read = routed.read;
    let written = written?;
    let corrupt_count = corrupt.count();
    if read != written + corrupt_count + routed.replaced + routed.deleted {
        return Err(Error::Internal(format!(
            "table `{}`: {read} rows read but {written} written, {corrupt_count} corrupt, {} replaced and {} deleted",
            table.name, routed.replaced, routed.deleted
        )));
    }
    let incremental = load.incremental.map(|i| IncrementalReport {
        base_rows: routed.base,
        upserts: routed.upserts,
        deletes: routed.deletes,
        ..i
    });
    let limit = source.corrupt_limit();
    if read > 0 && corrupt_count as f64 / read as f64 > limit {
        let examples = corrupt
            .examples
            .iter()
            .map(|c| format!("{}:{}: {}", c.file, c.line, c.reason))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::CorruptLimit {
            table: format!("{}.{}", source.name, table.name),
            corrupt: corrupt_count,
            read,
            limit,
            examples,
        });
    }
    let mut reasons: Vec<(String, u64)> = corrupt
        .reasons
        .iter()
        .map(|(k, n)| (k.clone(), *n))
        .collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let rows = tokio::task::spawn_blocking(move || corrupt.finish())
        .await
        .map_err(join_error)??;
    write_corrupt(writer, &corrupt_entity(&source.name, &table.name), rows).await?;
    Ok(TableReport {
        table: table.name.clone(),
        read,
        written,
        corrupt: corrupt_count,
        seconds: started.elapsed().as_secs_f64(),
        reasons,
        replaced: routed.replaced,
        deleted: routed.deleted,
        incremental,
        local: load_reason.map(str::to_string),
    })
}

/// The converter of a table's `columns` with its key, and the place of its last-updated
/// column; `declared` gives the CSV settings (null markers, date formats), defaults
/// without.
fn converter_of(
    table: &str,
    columns: &[lakecdp_core::ColumnSpec],
    primary_key: Option<&str>,
    last_updated: Option<&str>,
    declared: Option<&TableSpec>,
) -> Result<(Converter, Option<usize>)> {
    let csv = declared.and_then(|t| t.csv.as_ref());
    let null_markers = csv
        .map(|c| c.null_markers.clone())
        .unwrap_or_else(|| vec![String::new()]);
    let formats = convert::TemporalFormats {
        date: csv.and_then(|c| c.date_format.clone()),
        datetime: csv.and_then(|c| c.datetime_format.clone()),
    };
    let converter = Converter::new(columns.to_vec(), null_markers, primary_key, formats)?;
    let last_updated = match last_updated {
        Some(lu) => Some(columns.iter().position(|c| c.name == lu).ok_or_else(|| {
            Error::Source(format!(
                "table `{table}`: the last-updated column `{lu}` is not a column of the table"
            ))
        })?),
        None => None,
    };
    Ok((converter, last_updated))
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Internal(format!("a load task failed: {e}"))
}

async fn write_corrupt(
    writer: &mut CdmFolderWriter,
    name: &str,
    rows: corrupt::CorruptRows,
) -> Result<()> {
    // the rows are read back from a local file, a batch at a time
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::result::Result<RecordBatch, String>>(2);
    let producer = tokio::task::spawn_blocking(move || {
        for batch in rows {
            if tx.blocking_send(batch).is_err() {
                break;
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let written = writer
        .write_entity(
            name,
            Some("rows that could not be loaded, with the reason"),
            corrupt::schema(),
            Box::pin(stream),
        )
        .await;
    producer.await.map_err(join_error)?;
    written?;
    Ok(())
}
