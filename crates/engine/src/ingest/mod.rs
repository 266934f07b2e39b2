//! Ingestion: a source's tables into `DataIngestion/<Source>/`, published atomically.
//!
//! Nothing read is lost: every record of every file ends up either in the table's
//! entity or in `<Source>_<Table>_corrupt` (file, line, raw record, reason), and the
//! counts reconcile (`read = written + corrupt`). A table whose corrupt share passes the
//! source's limit fails the load and nothing of the source is published.
//!
//! Duplicate primary keys within one load keep the row with the latest last-updated
//! value (ties and tables without one: the last row read); this takes two passes over
//! the files, the first of which keeps only the keys.

pub mod convert;
pub mod records;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::scalar::ScalarValue;
use lakecdp_core::{ColumnSpec, RunId, SourceFormat, SourceSpec, TableSpec};
use lakecdp_lake::{CdmFolderWriter, Lake, Process};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use self::convert::Converter;
use self::records::{CsvTokenizer, Dialect, Record};
use crate::source::{effective_columns, infer_schema, prepare, SourceFile};
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
    /// A pass over a table's files begins: pass 1 reads the keys (tables with a primary
    /// key), pass 2 loads; `bytes` is the size of the files.
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
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            retention: lakecdp_core::environment::DEFAULT_RETENTION_RUNS,
            force: false,
            progress: Arc::new(NoProgress),
        }
    }
}

impl std::fmt::Debug for IngestOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestOptions")
            .field("retention", &self.retention)
            .field("force", &self.force)
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
struct CorruptRow {
    file_index: usize,
    file: String,
    line: u64,
    raw: String,
    reason: String,
}

/// Load every table of `source` and publish `DataIngestion/<Source>/`.
pub async fn ingest_source(
    lake: &Lake,
    source: &SourceSpec,
    project_dir: &Path,
    options: &IngestOptions,
) -> Result<SourceReport> {
    let (retention, force) = (options.retention, options.force);
    let mut prepared = Vec::with_capacity(source.tables.len());
    for table in &source.tables {
        prepared.push(prepare(table, source.access.as_ref(), project_dir).await?);
    }
    let mut fingerprint = Fingerprint {
        source: serde_json::to_value(source).map_err(|e| Error::Internal(e.to_string()))?,
        files: prepared
            .iter()
            .map(|(_, f)| {
                f.files
                    .iter()
                    .map(|f| (f.name.clone(), f.version.clone()))
                    .collect()
            })
            .collect(),
        run_id: None,
    };
    let process = Process::Ingestion(source.name.clone());
    if !force {
        let stored = match lake.get(&fingerprint_path(lake, &source.name)).await {
            Ok(bytes) => serde_json::from_slice::<Fingerprint>(&bytes).ok(),
            Err(lakecdp_lake::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(stored) = stored {
            let published = lakecdp_lake::publish::read_model(lake, &process)
                .await?
                .is_some();
            if published && stored.source == fingerprint.source && stored.files == fingerprint.files
            {
                if let Some(run_id) = stored.run_id {
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
    let mut writer = CdmFolderWriter::begin(lake, process, retention).await?;
    if let Some(d) = &source.description {
        writer.describe(d.clone());
    }
    let mut tables = Vec::new();
    for (table, fetched) in prepared {
        let loaded = match fetched.download().await {
            Ok(fetched) => {
                ingest_table(
                    &mut writer,
                    source,
                    &table,
                    fetched,
                    options.progress.clone(),
                )
                .await
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

async fn ingest_table(
    writer: &mut CdmFolderWriter,
    source: &SourceSpec,
    table: &TableSpec,
    fetched: crate::source::Fetched,
    progress: Arc<dyn Progress>,
) -> Result<TableReport> {
    let started = Instant::now();
    let inferred = infer_schema(table, &fetched).await?;
    let columns = effective_columns(table, &inferred);
    let files = fetched.files.clone();
    let null_markers = table
        .csv
        .as_ref()
        .map(|c| c.null_markers.clone())
        .unwrap_or_else(|| vec![String::new()]);
    let formats = convert::TemporalFormats {
        date: table.csv.as_ref().and_then(|c| c.date_format.clone()),
        datetime: table.csv.as_ref().and_then(|c| c.datetime_format.clone()),
    };
    let converter = Converter::new(
        columns.clone(),
        null_markers,
        table.primary_key.as_deref(),
        formats,
    )?;
    let schema = converter.schema().clone();
    let last_updated = match &table.last_updated {
        Some(lu) => Some(columns.iter().position(|c| &c.name == lu).ok_or_else(|| {
            Error::Source(format!(
                "table `{}`: the last-updated column `{lu}` is not a column of the table",
                table.name
            ))
        })?),
        None => None,
    };
    let reader = TableReader {
        label: format!("{}.{}", source.name, table.name),
        table: table.clone(),
        columns,
        files,
        converter,
        last_updated,
        progress,
    };

    // Pass 1: which row wins each primary key.
    let reader = Arc::new(reader);
    let winners = if reader.converter.primary_key().is_some() {
        let r = reader.clone();
        Some(Arc::new(
            tokio::task::spawn_blocking(move || r.winners())
                .await
                .map_err(join_error)??,
        ))
    } else {
        None
    };

    // Pass 2: route every record; valid batches stream into the writer.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, String>>(4);
    let r = reader.clone();
    let producer = tokio::task::spawn_blocking(move || r.route(winners.as_deref(), &tx));
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let written = writer
        .write_entity(&table.name, None, schema, Box::pin(stream))
        .await;
    let (read, mut corrupt) = producer.await.map_err(join_error)??;
    corrupt.sort_by_key(|c| (c.file_index, c.line));
    let written = written?;
    let corrupt_count = corrupt.len() as u64;
    if read != written + corrupt_count {
        return Err(Error::Internal(format!(
            "table `{}`: {read} rows read but {written} written and {corrupt_count} corrupt",
            table.name
        )));
    }
    let limit = source.corrupt_limit();
    if read > 0 && corrupt_count as f64 / read as f64 > limit {
        let examples = corrupt
            .iter()
            .take(3)
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
    let mut reasons: HashMap<String, u64> = HashMap::new();
    for c in &corrupt {
        *reasons
            .entry(c.reason.split(':').next().unwrap_or(&c.reason).to_string())
            .or_default() += 1;
    }
    let mut reasons: Vec<(String, u64)> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    write_corrupt(
        writer,
        &format!("{}_{}_corrupt", source.name, table.name),
        &corrupt,
    )
    .await?;
    Ok(TableReport {
        table: table.name.clone(),
        read,
        written,
        corrupt: corrupt_count,
        seconds: started.elapsed().as_secs_f64(),
        reasons,
    })
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Internal(format!("a load task failed: {e}"))
}

async fn write_corrupt(
    writer: &mut CdmFolderWriter,
    name: &str,
    rows: &[CorruptRow],
) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("File", DataType::Utf8, false),
        Field::new("Line", DataType::Int64, false),
        Field::new("Raw", DataType::Utf8, false),
        Field::new("Reason", DataType::Utf8, false),
    ]));
    let batches: Vec<std::result::Result<RecordBatch, String>> = rows
        .chunks(BATCH_ROWS)
        .map(|chunk| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        chunk.iter().map(|c| c.file.as_str()),
                    )) as ArrayRef,
                    Arc::new(Int64Array::from_iter_values(
                        chunk.iter().map(|c| c.line as i64),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        chunk.iter().map(|c| c.raw.as_str()),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        chunk.iter().map(|c| c.reason.as_str()),
                    )),
                ],
            )
            .map_err(|e| e.to_string())
        })
        .collect();
    writer
        .write_entity(
            name,
            Some("rows that could not be loaded, with the reason"),
            schema,
            futures::stream::iter(batches),
        )
        .await?;
    Ok(())
}

/// Position of a row in the load: (file index, line).
type Position = (usize, u64);

struct TableReader {
    label: String,
    progress: Arc<dyn Progress>,
    table: TableSpec,
    columns: Vec<ColumnSpec>,
    files: Vec<SourceFile>,
    converter: Converter,
    last_updated: Option<usize>,
}

impl TableReader {
    /// Read every file, converting batches of records; `f` gets each converted batch
    /// (structural corrupt rows included). Returns the number of records read.
    fn for_each(
        &self,
        pass: u8,
        mut f: impl FnMut(usize, convert::Converted) -> Result<()>,
    ) -> Result<u64> {
        let total: u64 = self
            .files
            .iter()
            .map(|f| std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0))
            .sum();
        self.progress.start(&self.label, pass, total);
        let mut read = 0u64;
        for (file_idx, file) in self.files.iter().enumerate() {
            let path = &file.path;
            let mut records: Vec<Record> = Vec::with_capacity(BATCH_ROWS);
            let mut broken = Vec::new();
            let mut flush =
                |records: &mut Vec<Record>, broken: &mut Vec<records::Corrupt>| -> Result<()> {
                    let mut converted = self.converter.convert(records)?;
                    converted.corrupt.append(broken);
                    records.clear();
                    f(file_idx, converted)
                };
            let mut push = |item: records::Item,
                            records: &mut Vec<Record>,
                            broken: &mut Vec<records::Corrupt>|
             -> Result<()> {
                read += 1;
                let size = match &item {
                    Ok(r) => r.raw.len(),
                    Err(c) => c.raw.len(),
                } as u64;
                self.progress.advance(1, size + 1);
                match item {
                    Ok(r) => records.push(r),
                    Err(c) => broken.push(c),
                }
                if records.len() + broken.len() >= BATCH_ROWS {
                    flush(records, broken)?;
                }
                Ok(())
            };
            let open = || {
                File::open(path)
                    .map_err(|e| Error::Source(format!("cannot read {}: {e}", path.display())))
            };
            match self.table.format {
                SourceFormat::Csv => {
                    let csv = self.table.csv.clone().unwrap_or_default();
                    let dialect = Dialect {
                        delimiter: csv.delimiter.as_bytes().first().copied().unwrap_or(b','),
                        quote: csv.quote.as_bytes().first().copied().unwrap_or(b'"'),
                        escape: csv
                            .escape
                            .as_ref()
                            .and_then(|e| e.as_bytes().first().copied()),
                        encoding: csv.encoding,
                    };
                    let mut tok =
                        CsvTokenizer::new(BufReader::with_capacity(1 << 20, open()?), dialect);
                    let io = |e: std::io::Error| {
                        Error::Source(format!("cannot read {}: {e}", path.display()))
                    };
                    let (positions, expected) = if csv.header {
                        let header = tok.next_record().map_err(io)?;
                        let names = match header.map(|h| h.fields) {
                            Some(Ok(names)) => names,
                            Some(Err(e)) => {
                                return Err(Error::Source(format!(
                                    "{}: the header line is malformed: {e}",
                                    path.display()
                                )))
                            }
                            None => Vec::new(),
                        };
                        let mut positions = Vec::new();
                        for c in &self.columns {
                            let pos =
                                names
                                    .iter()
                                    .position(|n| n.trim() == c.name)
                                    .ok_or_else(|| {
                                        Error::Source(format!(
                                            "{}: the header has no column `{}` (it has: {})",
                                            path.display(),
                                            c.name,
                                            names.join(", ")
                                        ))
                                    })?;
                            positions.push(pos);
                        }
                        (positions, names.len())
                    } else {
                        ((0..self.columns.len()).collect(), self.columns.len())
                    };
                    while let Some(rec) = tok.next_record().map_err(io)? {
                        let item = match rec.fields {
                            Err(reason) => Err(records::Corrupt {
                                line: rec.line,
                                raw: rec.raw,
                                reason,
                            }),
                            Ok(fields) if fields.len() != expected => Err(records::Corrupt {
                                line: rec.line,
                                raw: rec.raw,
                                reason: format!(
                                    "wrong number of fields: expected {expected}, found {}",
                                    fields.len()
                                ),
                            }),
                            Ok(fields) => Ok(Record {
                                line: rec.line,
                                raw: rec.raw,
                                fields: positions.iter().map(|p| fields.get(*p).cloned()).collect(),
                            }),
                        };
                        push(item, &mut records, &mut broken)?;
                    }
                }
                SourceFormat::Jsonl => {
                    let names: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
                    let reader = BufReader::with_capacity(1 << 20, open()?);
                    for (i, line) in reader.split(b'\n').enumerate() {
                        let line = line.map_err(|e| {
                            Error::Source(format!("cannot read {}: {e}", path.display()))
                        })?;
                        let line = line.strip_suffix(b"\r").unwrap_or(&line);
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        let n = i as u64 + 1;
                        let item = match std::str::from_utf8(line) {
                            Ok(text) => records::json_record(n, text, &names),
                            Err(_) => Err(records::Corrupt {
                                line: n,
                                raw: String::from_utf8_lossy(line).into_owned(),
                                reason: "not valid UTF-8".into(),
                            }),
                        };
                        push(item, &mut records, &mut broken)?;
                    }
                }
                SourceFormat::Parquet => {
                    let reader = ParquetRecordBatchReaderBuilder::try_new(open()?)
                        .map_err(|e| {
                            Error::Source(format!(
                                "{}: not a readable Parquet file: {e}",
                                path.display()
                            ))
                        })?
                        .with_batch_size(BATCH_ROWS)
                        .build()
                        .map_err(|e| Error::Source(format!("{}: {e}", path.display())))?;
                    let mut row = 0u64;
                    for batch in reader {
                        let batch = batch?;
                        let mut text_columns = Vec::with_capacity(self.columns.len());
                        for c in &self.columns {
                            let col = batch.column_by_name(&c.name).ok_or_else(|| {
                                Error::Source(format!(
                                    "{}: the file has no column `{}`",
                                    path.display(),
                                    c.name
                                ))
                            })?;
                            text_columns.push(cast(col, &DataType::Utf8)?);
                        }
                        let text: Vec<&StringArray> = text_columns
                            .iter()
                            .filter_map(|a| a.as_any().downcast_ref::<StringArray>())
                            .collect();
                        for i in 0..batch.num_rows() {
                            row += 1;
                            let fields: Vec<Option<String>> = text
                                .iter()
                                .map(|a| a.is_valid(i).then(|| a.value(i).to_string()))
                                .collect();
                            let raw = self
                                .columns
                                .iter()
                                .zip(&fields)
                                .map(|(c, v)| format!("{}={}", c.name, v.as_deref().unwrap_or("")))
                                .collect::<Vec<_>>()
                                .join(", ");
                            push(
                                Ok(Record {
                                    line: row,
                                    raw,
                                    fields,
                                }),
                                &mut records,
                                &mut broken,
                            )?;
                        }
                    }
                }
                other => {
                    return Err(Error::NotAvailable(format!(
                        "loading `{other}` sources is not available yet"
                    )))
                }
            }
            if !records.is_empty() || !broken.is_empty() {
                flush(&mut records, &mut broken)?;
            }
        }
        self.progress.finish();
        Ok(read)
    }

    /// Pass 1: for each primary key, the position of the row that wins.
    fn winners(&self) -> Result<HashMap<String, Position>> {
        let Some(pk) = self.converter.primary_key() else {
            return Ok(HashMap::new());
        };
        let mut best: HashMap<String, (Option<ScalarValue>, Position)> = HashMap::new();
        self.for_each(1, |file_idx, converted| {
            let keys = cast(converted.batch.column(pk), &DataType::Utf8)?;
            let keys = keys
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| Error::Internal("keys are not text".into()))?;
            for (i, line) in converted.lines.iter().enumerate() {
                let lu = match self.last_updated {
                    Some(c) => Some(ScalarValue::try_from_array(converted.batch.column(c), i)?),
                    None => None,
                };
                let pos = (file_idx, *line);
                match best.get_mut(keys.value(i)) {
                    None => {
                        best.insert(keys.value(i).to_string(), (lu, pos));
                    }
                    Some(current) => {
                        // later last-updated wins; equal or unknown: the row read last
                        let older = match (&lu, &current.0) {
                            (Some(new), Some(old)) if !new.is_null() && !old.is_null() => {
                                new.partial_cmp(old) == Some(std::cmp::Ordering::Less)
                            }
                            (Some(new), Some(old)) => new.is_null() && !old.is_null(),
                            _ => false,
                        };
                        if !older {
                            *current = (lu, pos);
                        }
                    }
                }
            }
            Ok(())
        })?;
        Ok(best.into_iter().map(|(k, (_, pos))| (k, pos)).collect())
    }

    /// Pass 2: send the valid rows that win their key; return the count read and the
    /// corrupt rows.
    fn route(
        &self,
        winners: Option<&HashMap<String, Position>>,
        tx: &tokio::sync::mpsc::Sender<std::result::Result<RecordBatch, String>>,
    ) -> Result<(u64, Vec<CorruptRow>)> {
        let mut corrupt = Vec::new();
        let lu_name = self.table.last_updated.clone();
        let read = self.for_each(2, |file_idx, converted| {
            let file = self.files[file_idx].name.clone();
            for c in converted.corrupt {
                corrupt.push(CorruptRow {
                    file_index: file_idx,
                    file: file.clone(), line: c.line, raw: c.raw, reason: c.reason });
            }
            let mut batch = converted.batch;
            if let (Some(winners), Some(pk)) = (winners, self.converter.primary_key()) {
                let keys = cast(batch.column(pk), &DataType::Utf8)?;
                let keys = keys.as_any().downcast_ref::<StringArray>().ok_or_else(|| Error::Internal("keys are not text".into()))?;
                let mut keep = Vec::with_capacity(batch.num_rows());
                for (i, line) in converted.lines.iter().enumerate() {
                    let key = keys.value(i);
                    let winner = winners.get(key).copied();
                    let wins = winner == Some((file_idx, *line));
                    if !wins {
                        let kept = match winner {
                            Some((f, l)) => format!("{}:{l}", self.files[f].name),
                            None => "another row".into(),
                        };
                        let rule = match &lu_name {
                            Some(lu) => format!("the latest `{lu}`, or the last read on a tie"),
                            None => "the last read".into(),
                        };
                        corrupt.push(CorruptRow {
                    file_index: file_idx,
                    file: file.clone(),
                            line: *line,
                            raw: row_text(&batch, i),
                            reason: format!("duplicate primary key: `{key}` appears again; kept the row at {kept} ({rule})"),
                        });
                    }
                    keep.push(wins);
                }
                batch = filter_record_batch(&batch, &BooleanArray::from(keep))?;
            }
            if batch.num_rows() > 0 && tx.blocking_send(Ok(batch)).is_err() {
                return Err(Error::Internal("the writer stopped reading".into()));
            }
            Ok(())
        })?;
        Ok((read, corrupt))
    }
}

fn row_text(batch: &RecordBatch, row: usize) -> String {
    let schema = batch.schema();
    batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(col, f)| {
            let v = arrow::util::display::array_value_to_string(col, row).unwrap_or_default();
            format!("{}={v}", f.name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}
