//! The corrupt rows of a table, written as they are found to a local spill file (Arrow
//! IPC), so that a file of bad records costs disk, not memory; the load streams them
//! into the `<Source>_<Table>_corrupt` entity at the end.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use super::CorruptRow;
use crate::{Error, Result};

/// Rows or bytes of raw text held before they are written to the spill file.
const FLUSH_ROWS: usize = 8192;
const FLUSH_BYTES: usize = 8 << 20;
/// How many rows are kept as examples for the error of a failed load.
const EXAMPLES: usize = 3;

/// The schema of the corrupt entity.
pub(super) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("File", DataType::Utf8, false),
        Field::new("Line", DataType::Int64, false),
        Field::new("Raw", DataType::Utf8, false),
        Field::new("Reason", DataType::Utf8, false),
    ]))
}

/// Collects corrupt rows in the order they are given.
pub(super) struct CorruptSink {
    schema: SchemaRef,
    pending: Vec<CorruptRow>,
    pending_bytes: usize,
    writer: Option<StreamWriter<BufWriter<File>>>,
    count: u64,
    /// The first rows, for the error of a failed load.
    pub examples: Vec<CorruptRow>,
    /// Rows per reason kind (the text before the first `:`).
    pub reasons: HashMap<String, u64>,
}

impl CorruptSink {
    pub fn new() -> Self {
        Self {
            schema: schema(),
            pending: Vec::new(),
            pending_bytes: 0,
            writer: None,
            count: 0,
            examples: Vec::new(),
            reasons: HashMap::new(),
        }
    }

    /// Rows so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Add rows (in order).
    pub fn push(&mut self, row: CorruptRow) -> Result<()> {
        self.count += 1;
        let kind = row.reason.split(':').next().unwrap_or(&row.reason);
        match self.reasons.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.reasons.insert(kind.to_string(), 1);
            }
        }
        if self.examples.len() < EXAMPLES {
            self.examples.push(row.clone());
        }
        self.pending_bytes += row.raw.len() + row.reason.len() + row.file.len();
        self.pending.push(row);
        if self.pending.len() >= FLUSH_ROWS || self.pending_bytes >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn batch(&self, rows: &[CorruptRow]) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|c| c.file.as_str()),
                )) as ArrayRef,
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|c| c.line as i64),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|c| c.raw.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|c| c.reason.as_str()),
                )),
            ],
        )?)
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = self.batch(&self.pending)?;
        self.pending.clear();
        self.pending_bytes = 0;
        let writer = match &mut self.writer {
            Some(w) => w,
            None => {
                let file = tempfile::tempfile().map_err(spill_error)?;
                self.writer.insert(StreamWriter::try_new(
                    BufWriter::with_capacity(1 << 20, file),
                    &self.schema,
                )?)
            }
        };
        writer.write(&batch)?;
        Ok(())
    }

    /// Every row, in order, as batches.
    pub fn finish(mut self) -> Result<CorruptRows> {
        let Some(mut writer) = self.writer.take() else {
            let batch = self.batch(&self.pending)?;
            return Ok(CorruptRows::Memory(Some(batch)));
        };
        self.flush_into(&mut writer)?;
        writer.finish()?;
        let mut file = writer
            .into_inner()?
            .into_inner()
            .map_err(|e| spill_error(e.into_error()))?;
        file.rewind().map_err(spill_error)?;
        let reader = StreamReader::try_new(BufReader::with_capacity(1 << 20, file), None)?;
        Ok(CorruptRows::Spilled(reader))
    }

    fn flush_into(&mut self, writer: &mut StreamWriter<BufWriter<File>>) -> Result<()> {
        if !self.pending.is_empty() {
            let batch = self.batch(&self.pending)?;
            self.pending.clear();
            writer.write(&batch)?;
        }
        Ok(())
    }
}

fn spill_error(e: std::io::Error) -> Error {
    Error::Internal(format!(
        "cannot write the corrupt rows to a local file: {e}"
    ))
}

/// The corrupt rows of a load, read back in order.
pub(super) enum CorruptRows {
    Memory(Option<RecordBatch>),
    Spilled(StreamReader<BufReader<File>>),
}

impl Iterator for CorruptRows {
    type Item = std::result::Result<RecordBatch, String>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            CorruptRows::Memory(batch) => batch.take().filter(|b| b.num_rows() > 0).map(Ok),
            CorruptRows::Spilled(reader) => reader.next().map(|b| b.map_err(|e| e.to_string())),
        }
    }
}
