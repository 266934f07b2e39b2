//! Reading a table's files: CSV in chunks of whole records tokenised and converted on
//! every core (handed on in the file's order), JSON Lines and Parquet record by record
//! through the converter, the table's previous output (incremental loads) as it is; and
//! the two passes of a load (which row wins each key, then routing every row).

use std::fs::File;
use std::io::{BufRead, BufReader, Seek};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray, StringArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use lakecdp_core::{ColumnSpec, SourceAccess, SourceFormat, TableSpec};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::convert::{self, Converter};
use super::corrupt::CorruptSink;
use super::csv::{self, Limits, Scanner};
use super::keys::{KeyIndex, Position, Updated, UpdatedColumn};
use super::records::{self, Dialect, Record};
use super::runs::{Losers, RunBuilder};
use super::{CorruptRow, Progress, BATCH_ROWS};
use crate::source::SourceFile;
use crate::{Error, Result};

/// What a file of a load holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileKind {
    /// Source rows (a plain table's files, `FullData`, `Upserts`).
    Rows,
    /// The table's previous output, read as it is (incremental loads).
    Previous,
    /// Keys to delete (`Deletes`); only the key and last-updated columns are needed.
    Deletes,
}

/// A file's place in a load: its kind and its group (0: the base, then one per hour
/// folder). A row that loses its key to a row of the same group and kind is a duplicate
/// (corrupt); one that loses to a later group was replaced or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Role {
    pub kind: FileKind,
    pub group: u32,
}

impl Role {
    pub const ROWS: Role = Role {
        kind: FileKind::Rows,
        group: 0,
    };
}

/// How the previous output's partitions are stored.
#[derive(Debug, Clone)]
pub(super) struct PreviousFormat {
    pub parquet: bool,
    pub header: bool,
    pub delimiter: u8,
    pub schema: SchemaRef,
}

/// What routing the rows did.
#[derive(Debug, Default)]
pub(super) struct Routed {
    pub read: u64,
    pub replaced: u64,
    pub deleted: u64,
    /// Records read from the base (group 0), from upserts and from deletes.
    pub base: u64,
    pub upserts: u64,
    pub deletes: u64,
}

pub(super) struct TableReader {
    pub label: String,
    pub progress: Arc<dyn Progress>,
    pub table: TableSpec,
    pub columns: Vec<ColumnSpec>,
    pub files: Vec<SourceFile>,
    /// One per file.
    pub roles: Vec<Role>,
    pub previous: Option<PreviousFormat>,
    pub converter: Converter,
    pub last_updated: Option<usize>,
    /// The source's credentials and the project folder (Delta tables are read where
    /// they are).
    pub access: Option<SourceAccess>,
    pub project_dir: PathBuf,
    pub limits: Limits,
    /// Bytes the key index may hold before it goes to sorted runs on local disk.
    pub key_index_budget: usize,
    /// The files this reader reads, by index (all when `None`): on a cluster each task
    /// reads some of a table's files, numbered as in the whole table.
    pub reads: Option<std::collections::BTreeSet<usize>>,
}

/// Which row won each key of a keyed load, asked row by row in the order read.
enum Winners {
    /// The whole index fitted its budget; `losers` (sorted) are the rows that lost their
    /// key, so every other row won without a look at the index.
    Memory {
        index: KeyIndex,
        losers: Vec<Position>,
    },
    /// The index went to disk: the rows that lost, with their key's winner.
    Spilled(Losers),
}

impl Winners {
    /// The winner of the key of the next row read, which has `key` and is at `own`.
    /// `key` gives the row's key as text; it is asked only for a row that lost.
    fn winner(
        &mut self,
        key: impl FnOnce() -> Result<String>,
        own: Position,
    ) -> Result<Option<Position>> {
        match self {
            Winners::Memory { index, losers } => Ok(if losers.binary_search(&own).is_ok() {
                index.winner(&key()?)
            } else {
                Some(own)
            }),
            Winners::Spilled(losers) => losers.winner(own).map(Some),
        }
    }

    /// Whether every row read won its key (no key was seen twice).
    fn all_won(&self) -> bool {
        matches!(self, Winners::Memory { losers, .. } if losers.is_empty())
    }
}

/// The dialect of a table's CSV files.
pub(super) fn dialect_of(table: &TableSpec) -> Dialect {
    let csv = table.csv.clone().unwrap_or_default();
    Dialect {
        delimiter: csv.delimiter.as_bytes().first().copied().unwrap_or(b','),
        quote: csv.quote.as_bytes().first().copied().unwrap_or(b'"'),
        escape: csv
            .escape
            .as_ref()
            .and_then(|e| e.as_bytes().first().copied()),
        encoding: csv.encoding,
    }
}

/// Why the header of a CSV file cannot be used (too long or too wide), read within the
/// limits; `None` when it can, or when the table's files have no header.
pub(super) fn unusable_header(
    table: &TableSpec,
    path: &std::path::Path,
    limits: &Limits,
) -> Result<Option<String>> {
    if table.format != SourceFormat::Csv || !table.csv.clone().unwrap_or_default().header {
        return Ok(None);
    }
    let dialect = dialect_of(table);
    let file = File::open(path)
        .map_err(|e| Error::Source(format!("cannot read {}: {e}", path.display())))?;
    let mut scanner = Scanner::new(file, dialect.clone(), limits.max_record_bytes, 1 << 16);
    let chunk = scanner
        .next_chunk(1)
        .map_err(|e| Error::Source(format!("cannot read {}: {e}", path.display())))?;
    let Some(chunk) = chunk else { return Ok(None) };
    let Some(span) = chunk.spans.first() else {
        return Ok(None);
    };
    Ok(
        match csv::header_names(
            &chunk.bytes[span.start..span.end],
            span.kind,
            &dialect,
            limits.max_record_bytes,
            limits.max_columns,
        ) {
            Err(Ok(why)) => Some(why),
            _ => None,
        },
    )
}

/// Read one line into `buf` (with its line end); returns the length of the line
/// without its `\n`, `None` at the end of the input. Of a line longer than `limit` only
/// the first bytes are kept.
pub(crate) fn read_line(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Option<usize>> {
    buf.clear();
    let mut total = 0usize;
    let mut ended = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            break;
        }
        let (take, done) = match memchr::memchr(b'\n', avail) {
            Some(k) => (k + 1, true),
            None => (avail.len(), false),
        };
        let room = limit.saturating_add(2).saturating_sub(buf.len());
        buf.extend_from_slice(&avail[..take.min(room)]);
        total += take;
        r.consume(take);
        if done {
            ended = true;
            break;
        }
    }
    if total == 0 {
        return Ok(None);
    }
    let length = total - usize::from(ended);
    if length > limit {
        buf.truncate(limit.min(csv::RAW_PREFIX));
    }
    Ok(Some(length))
}

impl TableReader {
    /// Read every file, converting batches of records; `f` gets each converted batch
    /// (structural corrupt rows included). Returns the number of records read.
    pub(super) fn for_each(
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
            if self.reads.as_ref().is_some_and(|r| !r.contains(&file_idx)) {
                continue;
            }
            let path = &file.path;
            let role = self.roles.get(file_idx).copied().unwrap_or(Role::ROWS);
            if role.kind == FileKind::Previous {
                read += self.read_previous(file, |c| f(file_idx, c))?;
                continue;
            }
            // delete files need only the key and the last-updated columns
            let optional = |c: &ColumnSpec| {
                role.kind == FileKind::Deletes
                    && Some(&c.name) != self.table.primary_key.as_ref()
                    && Some(&c.name) != self.table.last_updated.as_ref()
            };
            if self.table.format == SourceFormat::Csv {
                read += self.read_csv(file_idx, path, &optional, &mut f)?;
                continue;
            }
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
                SourceFormat::Jsonl => {
                    let names: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
                    let mut reader = BufReader::with_capacity(1 << 20, open()?);
                    let limit = self.limits.max_record_bytes;
                    let mut line = Vec::new();
                    let mut n = 0u64;
                    loop {
                        let length = read_line(&mut reader, &mut line, limit).map_err(|e| {
                            Error::Source(format!("cannot read {}: {e}", path.display()))
                        })?;
                        let Some(length) = length else { break };
                        n += 1;
                        let text = line.strip_suffix(b"\n").unwrap_or(&line);
                        let text = text.strip_suffix(b"\r").unwrap_or(text);
                        if length > limit {
                            push(
                                Err(records::Corrupt {
                                    line: n,
                                    raw: String::from_utf8_lossy(text).into_owned(),
                                    reason: format!(
                                        "record too long: a line of {length} bytes, more than the limit of {limit} (the raw text is its first {} bytes)",
                                        text.len()
                                    ),
                                }),
                                &mut records,
                                &mut broken,
                            )?;
                            continue;
                        }
                        if text.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        let item = match std::str::from_utf8(text) {
                            Ok(text) => records::json_record(n, text, &names),
                            Err(_) => Err(records::Corrupt {
                                line: n,
                                raw: String::from_utf8_lossy(text).into_owned(),
                                reason: "not valid UTF-8".into(),
                            }),
                        };
                        push(item, &mut records, &mut broken)?;
                    }
                }
                SourceFormat::Parquet | SourceFormat::Delta => {
                    // a Delta table reads file by file, unless its listing stands for
                    // the whole table (see source::delta::listing)
                    let whole_delta =
                        self.table.format == SourceFormat::Delta && path.as_os_str().is_empty();
                    let reader: Box<dyn Iterator<Item = Result<RecordBatch>>> = if !whole_delta {
                        Box::new(
                            ParquetRecordBatchReaderBuilder::try_new(open()?)
                                .map_err(|e| {
                                    Error::Source(format!(
                                        "{}: not a readable Parquet file: {e}",
                                        path.display()
                                    ))
                                })?
                                .with_batch_size(BATCH_ROWS)
                                .build()
                                .map_err(|e| Error::Source(format!("{}: {e}", path.display())))?
                                .map(|b| b.map_err(Error::from)),
                        )
                    } else {
                        // the loading thread is a blocking one: it may wait on the scan
                        let handle = tokio::runtime::Handle::current();
                        let mut stream = handle.block_on(crate::source::delta::stream(
                            &self.table,
                            self.access.as_ref(),
                            &self.project_dir,
                        ))?;
                        Box::new(std::iter::from_fn(move || {
                            handle
                                .block_on(futures::StreamExt::next(&mut stream))
                                .map(|b| b.map_err(Error::from))
                        }))
                    };
                    let mut row = 0u64;
                    for batch in reader {
                        let batch = batch?;
                        let mut text_columns = Vec::with_capacity(self.columns.len());
                        for c in &self.columns {
                            let constant = file.constants.iter().find(|(n, _)| n == &c.name);
                            let col = match (batch.column_by_name(&c.name), constant) {
                                (_, Some((_, value))) => {
                                    Arc::new(StringArray::from(vec![
                                        value.as_deref();
                                        batch.num_rows()
                                    ])) as ArrayRef
                                }
                                (Some(col), None) => cast(col, &DataType::Utf8)?,
                                // a Delta data file written before a column was added
                                (None, None)
                                    if optional(c) || self.table.format == SourceFormat::Delta =>
                                {
                                    new_null_array(&DataType::Utf8, batch.num_rows())
                                }
                                (None, None) => {
                                    return Err(Error::Source(format!(
                                        "{}: the file has no column `{}`",
                                        path.display(),
                                        c.name
                                    )))
                                }
                            };
                            text_columns.push(col);
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

    /// Read a CSV file: a scanning thread cuts it into chunks of whole records, workers
    /// tokenise and convert the chunks, and `f` gets the batches in the file's order.
    fn read_csv(
        &self,
        file_idx: usize,
        path: &std::path::Path,
        optional: &dyn Fn(&ColumnSpec) -> bool,
        f: &mut impl FnMut(usize, convert::Converted) -> Result<()>,
    ) -> Result<u64> {
        let csv = self.table.csv.clone().unwrap_or_default();
        let dialect = dialect_of(&self.table);
        let io = |e: std::io::Error| Error::Source(format!("cannot read {}: {e}", path.display()));
        let file = File::open(path).map_err(io)?;
        let limits = self.limits;
        let mut scanner = Scanner::new(
            file,
            dialect.clone(),
            limits.max_record_bytes,
            limits.chunk_bytes,
        );
        let mut read = 0u64;
        let mut unreadable = None;
        let (positions, expected) = if csv.header {
            let chunk = scanner.next_chunk(1).map_err(io)?;
            let header = chunk
                .as_ref()
                .and_then(|c| c.spans.first().map(|s| (c, *s)));
            let names = match header {
                None => Vec::new(),
                Some((chunk, span)) => {
                    let rec = &chunk.bytes[span.start..span.end];
                    match csv::header_names(
                        rec,
                        span.kind,
                        &dialect,
                        limits.max_record_bytes,
                        limits.max_columns,
                    ) {
                        Ok(names) => names,
                        Err(Err(e)) => {
                            return Err(Error::Source(format!(
                                "{}: the header line is malformed: {e}",
                                path.display()
                            )))
                        }
                        Err(Ok(why)) => {
                            // the header is one corrupt row; so is every record after it
                            read += 1;
                            self.progress.advance(1, rec.len() as u64 + 1);
                            f(
                                file_idx,
                                convert::Converted {
                                    batch: RecordBatch::new_empty(self.converter.schema().clone()),
                                    lines: Vec::new(),
                                    corrupt: vec![records::Corrupt {
                                        line: span.line,
                                        raw: String::from_utf8_lossy(rec).into_owned(),
                                        reason: why.clone(),
                                    }],
                                },
                            )?;
                            unreadable = Some(format!(
                                "no usable header: line {} of the file is set aside ({})",
                                span.line,
                                why.split(';').next().unwrap_or(&why)
                            ));
                            Vec::new()
                        }
                    }
                }
            };
            let mut positions = Vec::new();
            for c in &self.columns {
                let pos = names.iter().position(|n| *n == c.name);
                if pos.is_none() && !optional(c) && unreadable.is_none() {
                    return Err(Error::Source(format!(
                        "{}: the header has no column `{}` (it has: {})",
                        path.display(),
                        c.name,
                        names.join(", ")
                    )));
                }
                positions.push(pos);
            }
            (positions, names.len())
        } else {
            (
                (0..self.columns.len()).map(Some).collect::<Vec<_>>(),
                self.columns.len(),
            )
        };
        let mut column_of = vec![None; expected];
        let mut absent = Vec::new();
        for (c, p) in positions.iter().enumerate() {
            match p {
                Some(p) => {
                    if let Some(slot) = column_of.get_mut(*p) {
                        // a column reads one field: the first of its name
                        if slot.is_none() {
                            *slot = Some(c);
                        }
                    }
                }
                None => absent.push(c),
            }
        }
        let layout = csv::Layout {
            dialect,
            column_of,
            absent,
            expected,
            max_fields: limits.max_columns.max(expected + 1),
            limit: limits.max_record_bytes,
            null_markers: self
                .converter
                .null_markers()
                .iter()
                .map(|m| m.as_bytes().to_vec())
                .collect(),
            converter: &self.converter,
            unreadable,
        };
        let workers = limits.workers.max(1);
        type Done = (u64, Result<Vec<convert::Converted>>, u64, u64);
        let scanned = std::thread::scope(|s| -> Result<()> {
            let (work_tx, work_rx) = std::sync::mpsc::sync_channel::<(u64, csv::Chunk)>(workers);
            let work_rx = Arc::new(std::sync::Mutex::new(work_rx));
            let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<Done>(workers * 2);
            // chunks between the scan and the batches handed on: memory stays bounded
            // even when one chunk takes long to convert
            let in_flight = workers * 2 + 2;
            let (token_tx, token_rx) = std::sync::mpsc::sync_channel::<()>(in_flight);
            for _ in 0..in_flight {
                let _ = token_tx.send(());
            }
            let scan = s.spawn(move || -> std::io::Result<()> {
                let mut seq = 0u64;
                while token_rx.recv().is_ok() {
                    let Some(chunk) = scanner.next_chunk(usize::MAX)? else {
                        break;
                    };
                    if work_tx.send((seq, chunk)).is_err() {
                        break;
                    }
                    seq += 1;
                }
                Ok(())
            });
            for _ in 0..workers {
                let done_tx = done_tx.clone();
                let work_rx = work_rx.clone();
                let layout = &layout;
                s.spawn(move || loop {
                    let next = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok((seq, chunk)) = next else { break };
                    let records = chunk.spans.len() as u64;
                    let bytes = chunk.bytes.len() as u64;
                    let out = csv::convert_chunk(&chunk, layout, BATCH_ROWS);
                    drop(chunk);
                    if done_tx.send((seq, out, records, bytes)).is_err() {
                        break;
                    }
                });
            }
            drop(work_rx);
            drop(done_tx);
            let mut pending = std::collections::BTreeMap::new();
            let mut next = 0u64;
            let mut failed = Ok(());
            'receive: for done in done_rx.iter() {
                pending.insert(done.0, done);
                while let Some((_, out, records, bytes)) = pending.remove(&next) {
                    next += 1;
                    let _ = token_tx.send(());
                    read += records;
                    self.progress.advance(records, bytes);
                    let sent = out
                        .and_then(|batches| batches.into_iter().try_for_each(|c| f(file_idx, c)));
                    if let Err(e) = sent {
                        failed = Err(e);
                        break 'receive;
                    }
                }
            }
            drop(done_rx);
            drop(token_tx);
            let scanned = scan
                .join()
                .map_err(|_| Error::Internal("the CSV scan stopped unexpectedly".into()))?;
            failed?;
            scanned.map_err(io)
        });
        scanned?;
        Ok(read)
    }

    /// Read a partition of the table's previous output as it is, in batches aligned to
    /// the converter's schema (columns by name; a column added since is null).
    fn read_previous(
        &self,
        file: &SourceFile,
        mut f: impl FnMut(convert::Converted) -> Result<()>,
    ) -> Result<u64> {
        let format = self
            .previous
            .as_ref()
            .ok_or_else(|| Error::Internal("a previous-output file without its format".into()))?;
        let path = &file.path;
        let fail = |e: &dyn std::fmt::Display| {
            Error::Source(format!("cannot read the last load's {}: {e}", file.name))
        };
        let open = File::open(path).map_err(|e| fail(&e))?;
        let batches: Box<
            dyn Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>>,
        > = if format.parquet {
            Box::new(
                ParquetRecordBatchReaderBuilder::try_new(open)
                    .map_err(|e| fail(&e))?
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|e| fail(&e))?,
            )
        } else {
            Box::new(
                arrow::csv::ReaderBuilder::new(format.schema.clone())
                    .with_header(format.header)
                    .with_delimiter(format.delimiter)
                    .with_batch_size(BATCH_ROWS)
                    .build(BufReader::with_capacity(1 << 20, open))
                    .map_err(|e| fail(&e))?,
            )
        };
        let target = self.converter.schema().clone();
        let mut row = 0u64;
        for batch in batches {
            let batch = batch.map_err(|e| fail(&e))?;
            let n = batch.num_rows();
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
            for field in target.fields() {
                columns.push(match batch.column_by_name(field.name()) {
                    Some(c) => cast(c, field.data_type()).map_err(|e| {
                        fail(&format!(
                            "column `{}` no longer converts to {} ({e}); run a full refresh",
                            field.name(),
                            field.data_type()
                        ))
                    })?,
                    None => new_null_array(field.data_type(), n),
                });
            }
            let batch = RecordBatch::try_new(target.clone(), columns).map_err(|e| fail(&e))?;
            self.progress.advance(n as u64, 0);
            let lines = (row + 1..=row + n as u64).collect();
            row += n as u64;
            f(convert::Converted {
                batch,
                lines,
                corrupt: Vec::new(),
            })?;
        }
        Ok(row)
    }

    /// Offer the valid rows of a converted batch to the key index.
    fn offer(
        &self,
        index: &mut KeyIndex,
        pk: usize,
        file_idx: usize,
        converted: &convert::Converted,
    ) -> Result<()> {
        let keys = cast(converted.batch.column(pk), &DataType::Utf8)?;
        let keys = keys
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::Internal("keys are not text".into()))?;
        let updated = match self.last_updated {
            Some(c) => Some(UpdatedColumn::new(converted.batch.column(c))?),
            None => None,
        };
        for (i, line) in converted.lines.iter().enumerate() {
            let value = match &updated {
                Some(u) => u.value(i)?,
                None => Updated::Null,
            };
            index.offer(keys.value(i), value, (file_idx, *line));
        }
        Ok(())
    }

    /// A keyed load in one pass over the files: every converted batch goes to a local
    /// spill file while the key index learns which row wins each key; then the spill is
    /// routed (valid rows that win their key to `tx`, corrupt rows to `sink`). An index
    /// that outgrows its budget is dropped, and the keys are read back from the spill
    /// into sorted runs on local disk that are merged (see [`super::runs`]).
    pub(super) fn load_keyed(
        &self,
        tx: &tokio::sync::mpsc::Sender<std::result::Result<RecordBatch, String>>,
        sink: &mut CorruptSink,
    ) -> Result<Routed> {
        self.load_keyed_from(|f| self.for_each(1, f), tx, sink)
    }

    /// [`TableReader::load_keyed`] over the converted batches `read` hands on (with their
    /// file), in the order read: the rows of a file by line, the files in order. Returns
    /// the records read.
    pub(super) fn load_keyed_from(
        &self,
        read: impl FnOnce(&mut dyn FnMut(usize, convert::Converted) -> Result<()>) -> Result<u64>,
        tx: &tokio::sync::mpsc::Sender<std::result::Result<RecordBatch, String>>,
        sink: &mut CorruptSink,
    ) -> Result<Routed> {
        let pk = self
            .converter
            .primary_key()
            .ok_or_else(|| Error::Internal("a keyed load without a key".into()))?;
        let mut index = Some(KeyIndex::new());
        let spill = Spill::new(self.converter.schema().clone())?;
        // the spill file is written on its own thread while this one learns the keys
        let (spill_tx, spill_rx) = std::sync::mpsc::sync_channel::<(usize, convert::Converted)>(4);
        let (read, spill) = std::thread::scope(|s| {
            let writer = s.spawn(move || -> Result<Spill> {
                let mut spill = spill;
                for (file_idx, converted) in spill_rx {
                    spill.write(file_idx, converted)?;
                }
                Ok(spill)
            });
            let read = read(&mut |file_idx, converted| {
                if let Some(ix) = index.as_mut() {
                    self.offer(ix, pk, file_idx, &converted)?;
                    if ix.memory() > self.key_index_budget {
                        index = None;
                    }
                }
                spill_tx
                    .send((file_idx, converted))
                    .map_err(|_| Error::Internal("the spill file stopped taking batches".into()))
            });
            drop(spill_tx);
            let spill = writer.join().map_err(|_| {
                Error::Internal("the spill file's writer stopped unexpectedly".into())
            });
            (read, spill)
        });
        let spill = spill??;
        let read = read?;
        let mut spilled = spill.finish()?;
        let mut winners = match index {
            Some(mut index) => Winners::Memory {
                losers: index.take_losers(),
                index,
            },
            None => Winners::Spilled(self.key_runs(pk, &mut spilled)?),
        };
        let bytes = spilled.bytes;
        self.progress.start(&self.label, 2, bytes);
        let mut routed = Routed::default();
        for item in spilled.batches()? {
            let (file_idx, converted) = item?;
            let records = (converted.lines.len() + converted.corrupt.len()) as u64;
            self.route_batch(
                file_idx,
                converted,
                Some(&mut winners),
                tx,
                sink,
                &mut routed,
            )?;
            self.progress.advance(records, 0);
        }
        self.progress.finish();
        routed.read = read;
        Ok(routed)
    }

    /// The keys of the spilled rows, in sorted runs merged into the losers of each key.
    fn key_runs(&self, pk: usize, spilled: &mut Spilled) -> Result<Losers> {
        let schema = self.converter.schema().clone();
        let updated_type = self.last_updated.map(|c| schema.field(c).data_type());
        let mut runs = RunBuilder::new(self.key_index_budget, updated_type);
        for batch in spilled.keys(pk, self.last_updated)? {
            let batch = batch?;
            let keys = cast(&batch.keys, &DataType::Utf8)?;
            let keys = keys
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| Error::Internal("keys are not text".into()))?;
            runs.push(keys, batch.file, &batch.lines, batch.updated.as_ref())?;
        }
        runs.finish(self.key_index_budget)
    }

    /// Send the valid rows of a load without a primary key, and the corrupt rows to
    /// `sink` as they are found; return the counts.
    pub(super) fn route(
        &self,
        tx: &tokio::sync::mpsc::Sender<std::result::Result<RecordBatch, String>>,
        sink: &mut CorruptSink,
    ) -> Result<Routed> {
        self.route_from(|f| self.for_each(1, f), tx, sink)
    }

    /// [`TableReader::route`] over the converted batches `read` hands on.
    pub(super) fn route_from(
        &self,
        read: impl FnOnce(&mut dyn FnMut(usize, convert::Converted) -> Result<()>) -> Result<u64>,
        tx: &tokio::sync::mpsc::Sender<std::result::Result<RecordBatch, String>>,
        sink: &mut CorruptSink,
    ) -> Result<Routed> {
        let mut routed = Routed::default();
        let read = read(&mut |file_idx, converted| {
            self.route_batch(file_idx, converted, None, tx, sink, &mut routed)
        })?;
        routed.read = read;
        Ok(routed)
    }

    /// Route one converted batch: the valid rows that win their key go to `tx` (deletes
    /// that win remove it), the corrupt rows and the rows that lost to `sink`.
    fn route_batch(
        &self,
        file_idx: usize,
        converted: convert::Converted,
        winners: Option<&mut Winners>,
        tx: &tokio::sync::mpsc::Sender<std::result::Result<RecordBatch, String>>,
        sink: &mut CorruptSink,
        routed: &mut Routed,
    ) -> Result<()> {
        let lu_name = &self.table.last_updated;
        let mut corrupt = Vec::new();
        let file = self
            .files
            .get(file_idx)
            .map(|f| f.name.clone())
            .unwrap_or_default();
        let role = self.roles.get(file_idx).copied().unwrap_or(Role::ROWS);
        let records = (converted.lines.len() + converted.corrupt.len()) as u64;
        match role.kind {
            _ if role.group == 0 => routed.base += records,
            FileKind::Deletes => routed.deletes += records,
            _ => routed.upserts += records,
        }
        for c in converted.corrupt {
            corrupt.push(CorruptRow {
                file: file.clone(),
                line: c.line,
                raw: c.raw,
                reason: c.reason,
            });
        }
        let mut batch = converted.batch;
        let winners = match winners {
            // every row won its key: a delete removes it, any other row stays
            Some(w) if w.all_won() => {
                if role.kind == FileKind::Deletes {
                    routed.deleted += batch.num_rows() as u64;
                }
                None
            }
            other => other,
        };
        if let (Some(winners), Some(pk)) = (winners, self.converter.primary_key()) {
            // a key's text is made only for a row that lost (most rows win)
            let key_of = |i: usize| -> Result<String> {
                let one = cast(&batch.column(pk).slice(i, 1), &DataType::Utf8)?;
                let one = one
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| Error::Internal("keys are not text".into()))?;
                Ok(one.value(0).to_string())
            };
            let mut keep = Vec::with_capacity(batch.num_rows());
            for (i, line) in converted.lines.iter().enumerate() {
                let winner = winners.winner(|| key_of(i), (file_idx, *line))?;
                let wins = winner == Some((file_idx, *line));
                let winner_role =
                    winner.map(|(f, _)| self.roles.get(f).copied().unwrap_or(Role::ROWS));
                if wins && role.kind == FileKind::Deletes {
                    routed.deleted += 1;
                    keep.push(false);
                    continue;
                }
                if !wins && winner_role.is_some_and(|w| w != role) {
                    // a later change replaced or deleted this row: not a duplicate
                    routed.replaced += 1;
                    keep.push(false);
                    continue;
                }
                if !wins {
                    let key = key_of(i)?;
                    let kept = match winner {
                        Some((f, l)) => format!(
                            "{}:{l}",
                            self.files.get(f).map(|f| f.name.as_str()).unwrap_or("")
                        ),
                        None => "another row".into(),
                    };
                    let rule = match lu_name {
                        Some(lu) => format!("the latest `{lu}`, or the last read on a tie"),
                        None => "the last read".into(),
                    };
                    corrupt.push(CorruptRow {
                        file: file.clone(),
                        line: *line,
                        raw: row_text(&batch, i),
                        reason: format!(
                            "duplicate primary key: `{key}` appears again; kept the row at {kept} ({rule})"
                        ),
                    });
                }
                keep.push(wins);
            }
            if keep.iter().any(|k| !k) {
                batch = filter_record_batch(&batch, &BooleanArray::from(keep))?;
            }
        }
        if role.kind == FileKind::Deletes {
            // a delete that lost or had no key: its rows never reach the table
            let keep = BooleanArray::from(vec![false; batch.num_rows()]);
            batch = filter_record_batch(&batch, &keep)?;
        }
        corrupt.sort_by_key(|c: &CorruptRow| c.line);
        for c in corrupt {
            sink.push(c)?;
        }
        if batch.num_rows() > 0 && tx.blocking_send(Ok(batch)).is_err() {
            return Err(Error::Internal("the writer stopped reading".into()));
        }
        Ok(())
    }
}

/// Converted batches of a keyed load kept on local disk (Arrow IPC) between reading and
/// routing: the table's columns, then the file, the line, and the raw text and reason
/// of corrupt rows (whose table columns are null).
struct Spill {
    table: SchemaRef,
    schema: SchemaRef,
    writer: StreamWriter<std::io::BufWriter<File>>,
}

impl Spill {
    fn new(table: SchemaRef) -> Result<Self> {
        let schema = spill_schema(&table);
        let file = tempfile::tempfile().map_err(spill_error)?;
        let writer =
            StreamWriter::try_new(std::io::BufWriter::with_capacity(1 << 20, file), &schema)?;
        Ok(Self {
            table,
            schema,
            writer,
        })
    }

    fn write(&mut self, file_idx: usize, converted: convert::Converted) -> Result<()> {
        if let Some(batch) = spill_batch(&self.schema, &self.table, file_idx, converted)? {
            self.writer.write(&batch)?;
        }
        Ok(())
    }

    /// The file written, to read back.
    fn finish(mut self) -> Result<Spilled> {
        self.writer.finish()?;
        let mut file = self
            .writer
            .into_inner()?
            .into_inner()
            .map_err(|e| spill_error(e.into_error()))?;
        let bytes = file.stream_position().map_err(spill_error)?;
        Ok(Spilled {
            table: self.table,
            file,
            bytes,
        })
    }
}

/// The key, file, lines and last-updated values of the valid rows of a spilled batch.
struct SpilledKeys {
    keys: ArrayRef,
    file: usize,
    lines: Vec<u64>,
    updated: Option<ArrayRef>,
}

/// A finished spill file.
struct Spilled {
    table: SchemaRef,
    file: File,
    bytes: u64,
}

impl Spilled {
    /// A reader from the start of the file, of the columns `projection` (all if `None`).
    fn reader(
        &mut self,
        projection: Option<Vec<usize>>,
    ) -> Result<StreamReader<std::io::BufReader<File>>> {
        let mut file = self.file.try_clone().map_err(spill_error)?;
        file.rewind().map_err(spill_error)?;
        Ok(StreamReader::try_new(
            std::io::BufReader::with_capacity(1 << 20, file),
            projection,
        )?)
    }

    /// The key column `pk` and the last-updated column `updated` of the valid rows, with
    /// their positions, batch by batch in the order written.
    fn keys(
        &mut self,
        pk: usize,
        updated: Option<usize>,
    ) -> Result<impl Iterator<Item = Result<SpilledKeys>>> {
        let n = self.table.fields().len();
        // projected columns come back in the file's order
        let mut projection = vec![pk, n, n + 1, n + 3];
        projection.extend(updated);
        projection.sort_unstable();
        projection.dedup();
        let at = |c: usize| projection.iter().position(|&p| p == c);
        let (k, f, l, r) = (at(pk), at(n), at(n + 1), at(n + 3));
        let u = updated.and_then(at);
        let reader = self.reader(Some(projection.clone()))?;
        Ok(reader.map(move |batch| -> Result<SpilledKeys> {
            let batch = batch?;
            let cols = batch.columns();
            let column = |i: Option<usize>| {
                i.and_then(|i| cols.get(i))
                    .ok_or_else(|| Error::Internal("a spilled batch lost a column".into()))
            };
            let files = column(f)?
                .as_any()
                .downcast_ref::<arrow::array::UInt32Array>()
                .ok_or_else(|| Error::Internal("spilled files are not numbers".into()))?;
            let lines = column(l)?
                .as_any()
                .downcast_ref::<arrow::array::UInt64Array>()
                .ok_or_else(|| Error::Internal("spilled lines are not numbers".into()))?;
            let valid = column(r)?.null_count();
            Ok(SpilledKeys {
                keys: column(k)?.slice(0, valid),
                file: files.values().first().copied().unwrap_or(0) as usize,
                lines: lines.values()[..valid].to_vec(),
                updated: match u {
                    Some(u) => Some(column(Some(u))?.slice(0, valid)),
                    None => None,
                },
            })
        }))
    }

    /// The batches, read back in order.
    fn batches(mut self) -> Result<impl Iterator<Item = Result<(usize, convert::Converted)>>> {
        let reader = self.reader(None)?;
        let table = self.table;
        // each spilled batch is of one file, its valid rows first
        Ok(
            reader.flat_map(move |batch| -> Vec<Result<(usize, convert::Converted)>> {
                match batch.map_err(Error::from).and_then(|b| pieces(&table, &b)) {
                    Ok(pieces) => pieces.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                }
            }),
        )
    }
}

/// The table's columns, then the file, the line, and the raw text and reason of corrupt
/// rows (whose table columns are null): how converted batches are kept on local disk
/// and sent between the tasks of a cluster.
pub(super) fn spill_schema(table: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<arrow::datatypes::FieldRef> = table.fields().iter().cloned().collect();
    for (name, t, nullable) in [
        (SPILL_FILE, DataType::UInt32, false),
        (SPILL_LINE, DataType::UInt64, false),
        ("\u{0}raw", DataType::Utf8, true),
        ("\u{0}reason", DataType::Utf8, true),
    ] {
        fields.push(Arc::new(arrow::datatypes::Field::new(name, t, nullable)));
    }
    Arc::new(arrow::datatypes::Schema::new(fields))
}

/// The column of [`spill_schema`] holding a row's file.
pub(super) const SPILL_FILE: &str = "\u{0}file";
/// The column of [`spill_schema`] holding a row's line.
pub(super) const SPILL_LINE: &str = "\u{0}line";

/// A converted batch of file `file_idx` in [`spill_schema`] `schema` (valid rows first);
/// `None` when it has no row.
pub(super) fn spill_batch(
    schema: &SchemaRef,
    table: &SchemaRef,
    file_idx: usize,
    converted: convert::Converted,
) -> Result<Option<RecordBatch>> {
    let valid = converted.batch.num_rows();
    let bad = converted.corrupt.len();
    if valid + bad == 0 {
        return Ok(None);
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (c, field) in table.fields().iter().enumerate() {
        let column = converted.batch.column(c);
        if bad == 0 {
            columns.push(column.clone());
            continue;
        }
        let nulls = new_null_array(field.data_type(), bad);
        columns.push(arrow::compute::concat(&[column.as_ref(), nulls.as_ref()])?);
    }
    columns.push(Arc::new(arrow::array::UInt32Array::from(vec![
        file_idx
            as u32;
        valid + bad
    ])));
    columns.push(Arc::new(arrow::array::UInt64Array::from_iter_values(
        converted
            .lines
            .iter()
            .copied()
            .chain(converted.corrupt.iter().map(|c| c.line)),
    )));
    let text = |f: fn(&records::Corrupt) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter(
            std::iter::repeat_n(None, valid).chain(converted.corrupt.iter().map(|c| Some(f(c)))),
        ))
    };
    columns.push(text(|c: &records::Corrupt| c.raw.as_str()));
    columns.push(text(|c: &records::Corrupt| c.reason.as_str()));
    Ok(Some(RecordBatch::try_new(schema.clone(), columns)?))
}

/// The rows of a [`spill_schema`] batch whose files and lines may be mixed (a cluster's
/// shuffled and sorted rows) as converted batches of one file each, in the batch's order:
/// a new piece starts where the file changes.
pub(super) fn pieces(
    table: &SchemaRef,
    batch: &RecordBatch,
) -> Result<Vec<(usize, convert::Converted)>> {
    let n = table.fields().len();
    let cols = batch.columns();
    let column = |i: usize| {
        cols.get(i)
            .ok_or_else(|| Error::Internal("a sent batch lost a column".into()))
    };
    let files = column(n)?
        .as_any()
        .downcast_ref::<arrow::array::UInt32Array>()
        .ok_or_else(|| Error::Internal("sent files are not numbers".into()))?;
    let lines = column(n + 1)?
        .as_any()
        .downcast_ref::<arrow::array::UInt64Array>()
        .ok_or_else(|| Error::Internal("sent lines are not numbers".into()))?;
    let text = |i: usize| -> Result<&StringArray> {
        column(i)?
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::Internal("sent text is not text".into()))
    };
    let (raw, reason) = (text(n + 2)?, text(n + 3)?);
    let mut out = Vec::new();
    let mut start = 0;
    while start < batch.num_rows() {
        let file = files.value(start);
        let mut end = start + 1;
        while end < batch.num_rows() && files.value(end) == file {
            end += 1;
        }
        let valid: Vec<u32> = (start..end)
            .filter(|&i| reason.is_null(i))
            .map(|i| i as u32)
            .collect();
        // valid rows first (a batch as one task converted it): a slice, no copy
        let prefix = valid
            .iter()
            .enumerate()
            .all(|(k, &i)| i as usize == start + k);
        let columns = if prefix {
            cols[..n]
                .iter()
                .map(|c| c.slice(start, valid.len()))
                .collect()
        } else {
            let take = arrow::array::UInt32Array::from(valid.clone());
            cols[..n]
                .iter()
                .map(|c| arrow::compute::take(c.as_ref(), &take, None))
                .collect::<std::result::Result<Vec<_>, _>>()?
        };
        let data = RecordBatch::try_new(table.clone(), columns)?;
        let corrupt = (start..end)
            .filter(|&i| !reason.is_null(i))
            .map(|i| records::Corrupt {
                line: lines.value(i),
                raw: raw.value(i).to_string(),
                reason: reason.value(i).to_string(),
            })
            .collect();
        out.push((
            file as usize,
            convert::Converted {
                batch: data,
                lines: valid.iter().map(|&i| lines.value(i as usize)).collect(),
                corrupt,
            },
        ));
        start = end;
    }
    Ok(out)
}

fn spill_error(e: std::io::Error) -> Error {
    Error::Internal(format!(
        "cannot keep the load's batches in a local file: {e}"
    ))
}

pub(super) fn row_text(batch: &RecordBatch, row: usize) -> String {
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
