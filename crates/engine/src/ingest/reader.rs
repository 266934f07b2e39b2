//! Reading a table's files record by record: CSV, JSON Lines and Parquet sources through
//! the converter, the table's previous output (incremental loads) as it is; and the two
//! passes of a load (which row wins each key, then routing every row).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray, StringArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use lakecdp_core::{ColumnSpec, SourceAccess, SourceFormat, TableSpec};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::convert::{self, Converter};
use super::keys::{KeyIndex, Updated, UpdatedColumn};
use super::records::{self, CsvTokenizer, Dialect, Record};
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
    pub corrupt: Vec<CorruptRow>,
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
                            let pos = names.iter().position(|n| n.trim() == c.name);
                            if pos.is_none() && !optional(c) {
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
                            (0..self.columns.len()).map(Some).collect(),
                            self.columns.len(),
                        )
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
                            Ok(mut fields) => Ok(Record {
                                line: rec.line,
                                raw: rec.raw,
                                // each field moves to its column (a column reads one field)
                                fields: positions
                                    .iter()
                                    .map(|p| p.and_then(|p| fields.get_mut(p).map(std::mem::take)))
                                    .collect(),
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
                SourceFormat::Parquet | SourceFormat::Delta => {
                    let reader: Box<dyn Iterator<Item = Result<RecordBatch>>> =
                        if self.table.format == SourceFormat::Parquet {
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
                            let col = match batch.column_by_name(&c.name) {
                                Some(col) => cast(col, &DataType::Utf8)?,
                                None if optional(c) => {
                                    new_null_array(&DataType::Utf8, batch.num_rows())
                                }
                                None => {
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

    /// Pass 1: for each primary key, the position of the row that wins.
    pub(super) fn winners(&self) -> Result<KeyIndex> {
        let mut index = KeyIndex::new();
        let Some(pk) = self.converter.primary_key() else {
            return Ok(index);
        };
        self.for_each(1, |file_idx, converted| {
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
        })?;
        Ok(index)
    }

    /// Pass 2: send the valid rows that win their key (deletes that win remove it);
    /// return the counts and the corrupt rows.
    pub(super) fn route(
        &self,
        winners: Option<&KeyIndex>,
        tx: &tokio::sync::mpsc::Sender<std::result::Result<RecordBatch, String>>,
    ) -> Result<Routed> {
        let mut routed = Routed::default();
        let mut corrupt = Vec::new();
        let lu_name = self.table.last_updated.clone();
        let read = self.for_each(2, |file_idx, converted| {
            let file = self.files[file_idx].name.clone();
            let role = self.roles.get(file_idx).copied().unwrap_or(Role::ROWS);
            let records = (converted.lines.len() + converted.corrupt.len()) as u64;
            match role.kind {
                _ if role.group == 0 => routed.base += records,
                FileKind::Deletes => routed.deletes += records,
                _ => routed.upserts += records,
            }
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
                    let winner = winners.winner(key);
                    let wins = winner == Some((file_idx, *line));
                    let winner_role = winner
                        .map(|(f, _)| self.roles.get(f).copied().unwrap_or(Role::ROWS));
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
            if role.kind == FileKind::Deletes {
                // a delete that lost or had no key: its rows never reach the table
                let keep = BooleanArray::from(vec![false; batch.num_rows()]);
                batch = filter_record_batch(&batch, &keep)?;
            }
            if batch.num_rows() > 0 && tx.blocking_send(Ok(batch)).is_err() {
                return Err(Error::Internal("the writer stopped reading".into()));
            }
            Ok(())
        })?;
        routed.read = read;
        routed.corrupt = corrupt;
        Ok(routed)
    }
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
