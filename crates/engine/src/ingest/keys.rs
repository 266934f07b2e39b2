//! Which row wins each primary key of a load, in little memory: key bytes live in one
//! arena, each key costs one fixed-size entry and one slot of a hash table, and
//! last-updated values of integer and temporal types are kept as plain integers.

use std::cmp::Ordering;
use std::hash::BuildHasher;

use arrow::array::{Array, ArrayRef, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;
use hashbrown::hash_table::{Entry as Slot, HashTable};
use hashbrown::DefaultHashBuilder;

use crate::Result;

/// Position of a row in the load: (file index, line).
pub type Position = (usize, u64);

/// A row's last-updated value, comparable with the others of its column.
#[derive(Debug, Clone, PartialEq)]
pub enum Updated {
    /// No last-updated column, or a null value: loses to any value.
    Null,
    /// Integer, date and timestamp values.
    Int(i64),
    /// Any other type.
    Other(ScalarValue),
}

impl Updated {
    /// True when a row with this value loses to the current winner's `old` value (the
    /// rule of [`KeyIndex::offer`]).
    pub fn is_older_than(&self, old: &Updated) -> bool {
        match (self, old) {
            (Updated::Null, Updated::Null) => false,
            (Updated::Null, _) => true,
            (_, Updated::Null) => false,
            (Updated::Int(n), Updated::Int(o)) => n < o,
            (Updated::Other(n), Updated::Other(o)) => n.partial_cmp(o) == Some(Ordering::Less),
            // one column has one type; mixed forms never meet
            _ => false,
        }
    }
}

/// Reads [`Updated`] values out of a last-updated column, one batch at a time.
pub enum UpdatedColumn {
    /// Integers (dates and timestamps as their integer value).
    Int(Int64Array),
    /// Anything else.
    Other(ArrayRef),
}

impl UpdatedColumn {
    /// The column of a batch.
    pub fn new(column: &ArrayRef) -> Result<Self> {
        Ok(match column.data_type() {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(_, _) => {
                let ints = cast(column, &DataType::Int64)?;
                match ints.as_any().downcast_ref::<Int64Array>() {
                    Some(a) => UpdatedColumn::Int(a.clone()),
                    None => UpdatedColumn::Other(column.clone()),
                }
            }
            _ => UpdatedColumn::Other(column.clone()),
        })
    }

    /// The value of row `i`.
    pub fn value(&self, i: usize) -> Result<Updated> {
        Ok(match self {
            UpdatedColumn::Int(a) if a.is_null(i) => Updated::Null,
            UpdatedColumn::Int(a) => Updated::Int(a.value(i)),
            UpdatedColumn::Other(a) if a.is_null(i) => Updated::Null,
            UpdatedColumn::Other(a) => Updated::Other(ScalarValue::try_from_array(a, i)?),
        })
    }
}

/// Compact form of [`Updated`] inside an entry.
#[derive(Debug, Clone, Copy)]
enum Stored {
    Null,
    Int(i64),
    /// Index into `KeyIndex::others`.
    Other(u32),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key_start: usize,
    key_len: u32,
    file: u32,
    line: u64,
    updated: Stored,
}

/// The winning row of each key: the latest last-updated value; on a tie (or without
/// last-updated values) the row offered last.
pub struct KeyIndex {
    hasher: DefaultHashBuilder,
    table: HashTable<u32>,
    entries: Vec<Entry>,
    arena: Vec<u8>,
    others: Vec<ScalarValue>,
    /// Every row that lost its key so far: the incoming row when it is older, the
    /// previous winner otherwise. Whatever is not here won.
    losers: Vec<Position>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            hasher: DefaultHashBuilder::default(),
            table: HashTable::new(),
            entries: Vec::new(),
            arena: Vec::new(),
            others: Vec::new(),
            losers: Vec::new(),
        }
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key was offered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of memory the index holds (its allocations, not its values' heap text).
    pub fn memory(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.arena.capacity()
            + self.table.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.others.capacity() * std::mem::size_of::<ScalarValue>()
            + self.losers.capacity() * std::mem::size_of::<Position>()
    }

    fn key_of<'a>(arena: &'a [u8], e: &Entry) -> &'a [u8] {
        &arena[e.key_start..e.key_start + e.key_len as usize]
    }

    fn store(&mut self, updated: Updated) -> Stored {
        match updated {
            Updated::Null => Stored::Null,
            Updated::Int(v) => Stored::Int(v),
            Updated::Other(v) => {
                self.others.push(v);
                Stored::Other((self.others.len() - 1) as u32)
            }
        }
    }

    /// True when `new` is older than `old` (the old row keeps the key).
    fn older(&self, new: &Updated, old: Stored) -> bool {
        match (new, old) {
            (Updated::Null, Stored::Null) => false,
            (Updated::Null, _) => true,
            (_, Stored::Null) => false,
            (Updated::Int(n), Stored::Int(o)) => *n < o,
            (Updated::Other(n), Stored::Other(o)) => {
                n.partial_cmp(&self.others[o as usize]) == Some(Ordering::Less)
            }
            // one column has one type; mixed forms never meet
            _ => false,
        }
    }

    /// A row with `key` at `position`: it wins the key unless the current winner is newer.
    pub fn offer(&mut self, key: &str, updated: Updated, position: Position) {
        let bytes = key.as_bytes();
        let hash = self.hasher.hash_one(bytes);
        let (hasher, arena, entries) = (&self.hasher, &self.arena, &self.entries);
        let slot = self.table.entry(
            hash,
            |&i| Self::key_of(arena, &entries[i as usize]) == bytes,
            |&i| hasher.hash_one(Self::key_of(arena, &entries[i as usize])),
        );
        match slot {
            Slot::Occupied(o) => {
                let i = *o.get() as usize;
                let current = self.entries[i].updated;
                if self.older(&updated, current) {
                    self.losers.push(position);
                } else {
                    let stored = self.store(updated);
                    let e = &mut self.entries[i];
                    self.losers.push((e.file as usize, e.line));
                    e.file = position.0 as u32;
                    e.line = position.1;
                    e.updated = stored;
                }
            }
            Slot::Vacant(v) => {
                v.insert(self.entries.len() as u32);
                let stored = self.store(updated);
                self.entries.push(Entry {
                    key_start: self.arena.len(),
                    key_len: bytes.len() as u32,
                    file: position.0 as u32,
                    line: position.1,
                    updated: stored,
                });
                self.arena.extend_from_slice(bytes);
            }
        }
    }

    /// The rows that lost their key, sorted (taken: the index keeps none after).
    pub fn take_losers(&mut self) -> Vec<Position> {
        let mut losers = std::mem::take(&mut self.losers);
        losers.sort_unstable();
        losers
    }

    /// The position of the row that won `key`.
    pub fn winner(&self, key: &str) -> Option<Position> {
        let bytes = key.as_bytes();
        let hash = self.hasher.hash_one(bytes);
        self.table
            .find(hash, |&i| {
                Self::key_of(&self.arena, &self.entries[i as usize]) == bytes
            })
            .map(|&i| {
                let e = &self.entries[i as usize];
                (e.file as usize, e.line)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_row_wins_and_ties_go_to_the_last_offered() {
        let mut index = KeyIndex::new();
        index.offer("a", Updated::Int(10), (0, 1));
        index.offer("b", Updated::Null, (0, 2));
        index.offer("a", Updated::Int(5), (0, 3)); // older: loses
        index.offer("a", Updated::Int(10), (1, 4)); // tie: the later row wins
        index.offer("b", Updated::Int(1), (1, 5)); // any value beats null
        index.offer("b", Updated::Null, (1, 6)); // null loses
        index.offer(
            "c",
            Updated::Other(ScalarValue::Utf8(Some("2024-02".into()))),
            (2, 1),
        );
        index.offer(
            "c",
            Updated::Other(ScalarValue::Utf8(Some("2024-01".into()))),
            (2, 2),
        );
        assert_eq!(index.winner("a"), Some((1, 4)));
        assert_eq!(index.winner("b"), Some((1, 5)));
        assert_eq!(index.winner("c"), Some((2, 1)));
        assert_eq!(index.winner("d"), None);
        assert_eq!(index.len(), 3);
        // every row offered either won its key or is a loser, once
        assert_eq!(
            index.take_losers(),
            [(0, 1), (0, 2), (0, 3), (1, 6), (2, 2)]
        );
    }

    #[test]
    fn many_keys_stay_distinct() {
        let mut index = KeyIndex::new();
        for i in 0..50_000u64 {
            index.offer(&format!("K{i}"), Updated::Int(i as i64), (0, i));
        }
        for i in (0..50_000u64).step_by(7) {
            assert_eq!(index.winner(&format!("K{i}")), Some((0, i)));
        }
        assert_eq!(index.len(), 50_000);
        assert!(index.take_losers().is_empty());
    }
}
