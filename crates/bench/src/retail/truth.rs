//! `ground_truth.csv`: the true person behind every row of the customer sources.
//!
//! Columns: `Source` (`crm_contacts`, `shop_customers` or `loyalty_members`), `Row` (1-based
//! data row of the file, not counting a header), `RecordKey` (the row's primary key as
//! written, empty when missing), `PersonId` and `Note` (empty, `duplicate` for a row of a
//! person already described by an earlier row of the same file, or `malformed:<kind>`).

use std::path::Path;

use super::csv::CsvWriter;
use super::{FileSummary, GROUND_TRUTH_FILE};
use crate::error::Result;

/// The header of `ground_truth.csv`.
pub(crate) const HEADER: [&str; 5] = ["Source", "Row", "RecordKey", "PersonId", "Note"];

/// Streams ground-truth rows.
pub(crate) struct GroundTruth {
    out: CsvWriter,
    rows: usize,
}

impl GroundTruth {
    /// Creates the file and writes its header.
    pub fn create(path: &Path) -> Result<Self> {
        let mut out = CsvWriter::create(path, "\n")?;
        out.record(&HEADER)?;
        Ok(Self { out, rows: 0 })
    }

    /// Records that row `row` of `source`, keyed `key`, describes `person`.
    pub fn row(
        &mut self,
        source: &str,
        row: usize,
        key: &str,
        person: &str,
        note: &str,
    ) -> Result<()> {
        self.rows += 1;
        self.out
            .record(&[source, &row.to_string(), key, person, note])
    }

    /// Flushes the file.
    pub fn finish(self) -> Result<FileSummary> {
        let bytes = self.out.finish()?;
        Ok(FileSummary {
            file: GROUND_TRUTH_FILE,
            format: "csv",
            rows: self.rows,
            malformed: 0,
            duplicates: 0,
            people: None,
            bytes,
        })
    }
}
