//! The key index of a keyed load once it outgrows its memory budget: every valid row's
//! key, sequence number, position and last-updated value go to sorted runs on local
//! disk; merging the runs key by key applies the rule of [`KeyIndex::offer`] to the rows
//! of each key in the order they were read, so the same row wins as in memory (keys are
//! compared by their bytes, never by a hash). Each row that loses is written, with the
//! position of its key's winner, to a second set of runs sorted by sequence number,
//! which routing reads back in order beside the spilled batches.
//!
//! Memory: about the budget while building a run (a third for the rows, the rest for
//! sorting them), and while merging one row per run plus the sequence numbers of the
//! rows of one key (at most a quarter of the budget: a key met more often keeps the rest
//! in a local file); routing holds one buffered reader per run of losers.
//!
//! [`KeyIndex::offer`]: super::keys::KeyIndex::offer

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray, UInt32Array, UInt64Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use super::keys::{Position, Updated, UpdatedColumn};
use crate::{Error, Result};

const RUN_BATCH_ROWS: usize = 8192;
/// Bytes of one loser record: sequence number, winner's file, winner's line.
const LOSER_BYTES: usize = 8 + 4 + 8;

fn io(e: std::io::Error) -> Error {
    Error::Internal(format!(
        "cannot keep the load's key runs in a local file: {e}"
    ))
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, i: usize, what: &str) -> Result<&'a T> {
    batch
        .columns()
        .get(i)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::Internal(format!("a key run lost its {what}")))
}

/// Builds the sorted runs of a keyed load's keys, row by row in the order they are read.
pub(super) struct RunBuilder {
    /// Bytes of pending rows that make a run.
    run_bytes: usize,
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
    pending_bytes: usize,
    seq: u64,
    runs: Vec<File>,
}

impl RunBuilder {
    /// Runs of about `budget` bytes of memory each; `updated` is the type of the
    /// last-updated column, if the table has one.
    pub fn new(budget: usize, updated: Option<&DataType>) -> Self {
        let mut fields = vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("seq", DataType::UInt64, false),
            Field::new("file", DataType::UInt32, false),
            Field::new("line", DataType::UInt64, false),
        ];
        if let Some(t) = updated {
            fields.push(Field::new("updated", t.clone(), true));
        }
        Self {
            run_bytes: (budget / 3).max(1),
            schema: Arc::new(Schema::new(fields)),
            pending: Vec::new(),
            pending_bytes: 0,
            seq: 0,
            runs: Vec::new(),
        }
    }

    /// The next rows read: their keys, the file they come from, their lines and their
    /// last-updated values.
    pub fn push(
        &mut self,
        keys: &StringArray,
        file: usize,
        lines: &[u64],
        updated: Option<&ArrayRef>,
    ) -> Result<()> {
        let n = lines.len();
        if n == 0 {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(keys.slice(0, n)),
            Arc::new(UInt64Array::from_iter_values(self.seq..self.seq + n as u64)),
            Arc::new(UInt32Array::from(vec![file as u32; n])),
            Arc::new(UInt64Array::from(lines.to_vec())),
        ];
        if self.schema.fields().len() > 4 {
            let u = updated.ok_or_else(|| {
                Error::Internal("a key run without its last-updated values".into())
            })?;
            columns.push(u.slice(0, n));
        }
        self.seq += n as u64;
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.pending_bytes += batch.get_array_memory_size();
        self.pending.push(batch);
        if self.pending_bytes >= self.run_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Sort the pending rows by key (rows of one key stay in the order read) and write
    /// them as a run.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = concat_batches(&self.schema, &self.pending)?;
        self.pending.clear();
        self.pending_bytes = 0;
        let keys = column::<StringArray>(&batch, 0, "keys")?;
        let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
        // stable: rows of one key keep their order
        order.sort_by(|&a, &b| keys.value(a as usize).cmp(keys.value(b as usize)));
        let sorted = take_record_batch(&batch, &UInt32Array::from(order))?;
        drop(batch);
        let file = tempfile::tempfile().map_err(io)?;
        let mut writer =
            StreamWriter::try_new(BufWriter::with_capacity(1 << 20, file), &self.schema)?;
        let mut offset = 0;
        while offset < sorted.num_rows() {
            let len = RUN_BATCH_ROWS.min(sorted.num_rows() - offset);
            writer.write(&sorted.slice(offset, len))?;
            offset += len;
        }
        writer.finish()?;
        let mut file = writer
            .into_inner()?
            .into_inner()
            .map_err(|e| io(e.into_error()))?;
        file.rewind().map_err(io)?;
        self.runs.push(file);
        Ok(())
    }

    /// Merge the runs: the rows that lose their key, each with the position of the row
    /// that won it, in the order they were read. `budget` bounds the memory of the
    /// losers kept before they are written as a run.
    pub fn finish(mut self, budget: usize) -> Result<Losers> {
        self.flush()?;
        let mut cursors = Vec::with_capacity(self.runs.len());
        for file in std::mem::take(&mut self.runs) {
            cursors.push(RunCursor::new(file)?);
        }
        let mut heap = BinaryHeap::new();
        for (run, cursor) in cursors.iter_mut().enumerate() {
            if let Some(row) = cursor.next()? {
                heap.push(Head { row, run });
            }
        }
        let mut losers = LoserRuns::new(budget);
        // the rows of the current key read before its current winner, and the winner
        let mut group = Group::new(budget);
        let mut current: Option<Row> = None;
        while let Some(Head { row, run }) = heap.pop() {
            if let Some(next) = cursors[run].next()? {
                heap.push(Head { row: next, run });
            }
            match current.take() {
                Some(winner) if winner.key == row.key => {
                    // the rule of `KeyIndex::offer`: the new row wins unless it is older
                    if row.updated.is_older_than(&winner.updated) {
                        group.push(row.seq)?;
                        current = Some(winner);
                    } else {
                        group.push(winner.seq)?;
                        current = Some(row);
                    }
                }
                Some(winner) => {
                    losers.push_group(&mut group, &winner)?;
                    current = Some(row);
                }
                None => current = Some(row),
            }
        }
        if let Some(winner) = current {
            losers.push_group(&mut group, &winner)?;
        }
        losers.finish()
    }
}

/// The sequence numbers of the rows of one key that lost to it, until its winner is
/// known: in memory up to a share of the budget, then in a local file, so a key read a
/// billion times costs a file, not memory.
struct Group {
    seqs: Vec<u64>,
    cap: usize,
    spilled: Option<BufWriter<File>>,
}

impl Group {
    fn new(budget: usize) -> Self {
        Self {
            seqs: Vec::new(),
            cap: (budget / 4 / std::mem::size_of::<u64>()).max(1),
            spilled: None,
        }
    }

    fn push(&mut self, seq: u64) -> Result<()> {
        if self.seqs.len() >= self.cap {
            let w = match &mut self.spilled {
                Some(w) => w,
                None => self.spilled.insert(BufWriter::with_capacity(
                    1 << 16,
                    tempfile::tempfile().map_err(io)?,
                )),
            };
            for s in self.seqs.drain(..) {
                w.write_all(&s.to_le_bytes()).map_err(io)?;
            }
        }
        self.seqs.push(seq);
        Ok(())
    }

    /// Every sequence number pushed since the last take, to `each`; the group is empty
    /// after.
    fn take(&mut self, mut each: impl FnMut(u64) -> Result<()>) -> Result<()> {
        if let Some(w) = self.spilled.take() {
            let mut file = w.into_inner().map_err(|e| io(e.into_error()))?;
            file.rewind().map_err(io)?;
            let mut r = BufReader::with_capacity(1 << 16, file);
            let mut buf = [0u8; 8];
            loop {
                match r.read_exact(&mut buf) {
                    Ok(()) => each(u64::from_le_bytes(buf))?,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(io(e)),
                }
            }
        }
        for seq in self.seqs.drain(..) {
            each(seq)?;
        }
        Ok(())
    }
}

/// One row of a key run.
struct Row {
    key: String,
    seq: u64,
    file: u32,
    line: u64,
    updated: Updated,
}

/// The smallest row of one run, ordered for a min-heap by key, then sequence number.
struct Head {
    row: Row,
    run: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // reversed: `BinaryHeap` pops the largest
        other
            .row
            .key
            .as_bytes()
            .cmp(self.row.key.as_bytes())
            .then(other.row.seq.cmp(&self.row.seq))
    }
}

/// Reads one key run row by row.
struct RunCursor {
    reader: StreamReader<BufReader<File>>,
    batch: Option<(RecordBatch, Option<UpdatedColumn>)>,
    row: usize,
}

impl RunCursor {
    fn new(file: File) -> Result<Self> {
        Ok(Self {
            reader: StreamReader::try_new(BufReader::with_capacity(1 << 16, file), None)?,
            batch: None,
            row: 0,
        })
    }

    fn next(&mut self) -> Result<Option<Row>> {
        loop {
            if let Some((batch, updated)) = &self.batch {
                if self.row < batch.num_rows() {
                    let i = self.row;
                    self.row += 1;
                    return Ok(Some(Row {
                        key: column::<StringArray>(batch, 0, "keys")?
                            .value(i)
                            .to_string(),
                        seq: column::<UInt64Array>(batch, 1, "sequence numbers")?.value(i),
                        file: column::<UInt32Array>(batch, 2, "files")?.value(i),
                        line: column::<UInt64Array>(batch, 3, "lines")?.value(i),
                        updated: match updated {
                            Some(u) => u.value(i)?,
                            None => Updated::Null,
                        },
                    }));
                }
            }
            match self.reader.next() {
                None => return Ok(None),
                Some(batch) => {
                    let batch = batch?;
                    let updated = match batch.columns().get(4) {
                        Some(c) => Some(UpdatedColumn::new(c)?),
                        None => None,
                    };
                    self.batch = Some((batch, updated));
                    self.row = 0;
                }
            }
        }
    }
}

/// The losers found by the merge, in runs sorted by sequence number.
struct LoserRuns {
    capacity: usize,
    pending: Vec<(u64, Position)>,
    runs: Vec<File>,
}

impl LoserRuns {
    fn new(budget: usize) -> Self {
        let capacity = (budget / std::mem::size_of::<(u64, Position)>()).max(1);
        Self {
            capacity,
            pending: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// The rows of `group` lost their key to `winner`.
    fn push_group(&mut self, group: &mut Group, winner: &Row) -> Result<()> {
        group.take(|seq| {
            self.pending
                .push((seq, (winner.file as usize, winner.line)));
            if self.pending.len() >= self.capacity {
                self.flush()?;
            }
            Ok(())
        })
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending.sort_unstable_by_key(|l| l.0);
        let mut w = BufWriter::with_capacity(1 << 16, tempfile::tempfile().map_err(io)?);
        for (seq, (file, line)) in self.pending.drain(..) {
            w.write_all(&seq.to_le_bytes()).map_err(io)?;
            w.write_all(&(file as u32).to_le_bytes()).map_err(io)?;
            w.write_all(&line.to_le_bytes()).map_err(io)?;
        }
        let mut file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.rewind().map_err(io)?;
        self.runs.push(file);
        Ok(())
    }

    fn finish(mut self) -> Result<Losers> {
        self.flush()?;
        let mut readers: Vec<BufReader<File>> = self
            .runs
            .into_iter()
            .map(|f| BufReader::with_capacity(1 << 16, f))
            .collect();
        let mut heap = BinaryHeap::new();
        for (run, r) in readers.iter_mut().enumerate() {
            if let Some((seq, position)) = read_loser(r)? {
                heap.push(std::cmp::Reverse((seq, run, position)));
            }
        }
        Ok(Losers {
            readers,
            heap,
            seq: 0,
        })
    }
}

fn read_loser(r: &mut impl Read) -> Result<Option<(u64, Position)>> {
    let mut buf = [0u8; LOSER_BYTES];
    match r.read_exact(&mut buf) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io(e)),
    }
    let word = |range: std::ops::Range<usize>| -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..range.len()].copy_from_slice(&buf[range]);
        b
    };
    Ok(Some((
        u64::from_le_bytes(word(0..8)),
        (
            u64::from_le_bytes(word(8..12)) as usize,
            u64::from_le_bytes(word(12..20)),
        ),
    )))
}

/// The winner of each row of a keyed load whose key index went to disk, asked in the
/// order the rows were read.
pub(super) struct Losers {
    readers: Vec<BufReader<File>>,
    heap: BinaryHeap<std::cmp::Reverse<(u64, usize, Position)>>,
    seq: u64,
}

impl Losers {
    /// The position of the row that won the key of the next row read, which is at
    /// `own`.
    pub fn winner(&mut self, own: Position) -> Result<Position> {
        let seq = self.seq;
        self.seq += 1;
        match self.heap.peek() {
            Some(std::cmp::Reverse((s, _, _))) if *s == seq => {}
            _ => return Ok(own),
        }
        let Some(std::cmp::Reverse((_, run, position))) = self.heap.pop() else {
            return Ok(own);
        };
        if let Some((s, p)) = read_loser(&mut self.readers[run])? {
            self.heap.push(std::cmp::Reverse((s, run, p)));
        }
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::KeyIndex;
    use super::*;
    use arrow::array::Int64Array;

    /// Rows of (key, last-updated, file, line) through the in-memory index and through
    /// runs of `budget` bytes, pushed in batches of `batch` rows: the same winner for
    /// every row.
    fn same_winners(rows: &[(String, Option<i64>, usize, u64)], budget: usize, batch: usize) {
        let mut index = KeyIndex::new();
        for (key, updated, file, line) in rows {
            let u = updated.map_or(Updated::Null, Updated::Int);
            index.offer(key, u, (*file, *line));
        }
        let mut builder = RunBuilder::new(budget, Some(&DataType::Int64));
        for chunk in rows.chunks(batch) {
            // one push per file within the chunk
            let mut start = 0;
            while start < chunk.len() {
                let file = chunk[start].2;
                let end = start + chunk[start..].iter().take_while(|r| r.2 == file).count();
                let part = &chunk[start..end];
                let keys = StringArray::from_iter_values(part.iter().map(|r| r.0.as_str()));
                let lines: Vec<u64> = part.iter().map(|r| r.3).collect();
                let updated: ArrayRef = Arc::new(Int64Array::from_iter(part.iter().map(|r| r.1)));
                builder.push(&keys, file, &lines, Some(&updated)).unwrap();
                start = end;
            }
        }
        if budget == 1 {
            // every push made a run of its own
            assert!(
                builder.runs.len() >= rows.len() / batch,
                "{}",
                builder.runs.len()
            );
        }
        let mut losers = builder.finish(budget).unwrap();
        for (key, _, file, line) in rows {
            let expected = index.winner(key).unwrap();
            assert_eq!(
                losers.winner((*file, *line)).unwrap(),
                expected,
                "row {key} at {file}:{line}"
            );
        }
    }

    fn rows(n: u64, keys: u64) -> Vec<(String, Option<i64>, usize, u64)> {
        // keys repeat across the whole input; last-updated values go up and down, with
        // ties and nulls
        (0..n)
            .map(|i| {
                let k = (i * 7919) % keys;
                // few values: ties at the top are common
                let updated = match i % 6 {
                    0 => None,
                    _ => Some(((i * 31) % 7 % 3) as i64),
                };
                (format!("K{k}"), updated, (i / 500) as usize, i % 500 + 2)
            })
            .collect()
    }

    #[test]
    fn runs_pick_the_same_winner_as_the_index_whatever_the_budget() {
        let data = rows(3_000, 97);
        for (budget, batch) in [
            (1, 1),
            (1, 64),
            (4_096, 100),
            (64 << 10, 333),
            (64 << 20, 1000),
        ] {
            same_winners(&data, budget, batch);
        }
        // one key read 2,000 times: its losers outgrow the group's share of the budget
        // and go to a local file
        same_winners(&rows(2_000, 1), 256, 100);
    }

    #[test]
    fn without_last_updated_values_the_last_row_read_wins() {
        let mut builder = RunBuilder::new(1, None);
        let keys = StringArray::from(vec!["b", "a", "b"]);
        builder.push(&keys, 0, &[2, 3, 4], None).unwrap();
        let keys = StringArray::from(vec!["a", "b", "c"]);
        builder.push(&keys, 1, &[2, 3, 4], None).unwrap();
        let mut losers = builder.finish(1).unwrap();
        let asked: Vec<Position> = [(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4)]
            .into_iter()
            .map(|p| losers.winner(p).unwrap())
            .collect();
        assert_eq!(asked, [(1, 3), (1, 2), (1, 3), (1, 2), (1, 3), (1, 4)]);
    }
}
