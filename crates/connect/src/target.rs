//! The export target contract.
//!
//! An [`ExportTarget`] is a destination (a PostgreSQL database, a lake folder). An
//! export run is [`ExportTarget::begin`], then [`ExportRun::export_table`] once per
//! table, then [`ExportRun::finish`]. Targets consume Arrow record-batch streams and
//! never hold a whole table in memory.
//!
//! Guarantees every target gives:
//! - A table is replaced as a whole: readers of the destination see the table of the
//!   previous run or of this one, never a mix and never a partial table.
//! - A failed table (the input yields an error, the destination fails) leaves that
//!   table as the previous run left it, and the error names the destination and the
//!   step that failed.
//! - Tables not exported in a run are left untouched.
//! - Errors never contain a secret.

use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::Result;

/// A stream of record batches, the input of one table.
pub type BatchStream<'a> = BoxStream<'a, Result<RecordBatch, ArrowError>>;

/// The outcome of one line of [`ExportTarget::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// The check passed.
    Ok,
    /// The check failed; the line's `fix` says what to do.
    Failed,
}

/// One named check of a target: reachability, login, a permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    /// What was checked, e.g. `reach 127.0.0.1:5432`.
    pub name: String,
    /// Passed or failed.
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// How to fix a failure.
    pub fix: Option<String>,
}

impl CheckLine {
    /// A passed check.
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A failed check and its fix.
    pub fn failed(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Failed,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// True when the check passed.
    pub fn is_ok(&self) -> bool {
        self.status == CheckStatus::Ok
    }
}

/// What exporting one table did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableExported {
    /// The table.
    pub name: String,
    /// Rows written.
    pub rows: u64,
    /// Bytes sent to the destination.
    pub bytes: u64,
    /// Time taken.
    pub elapsed: Duration,
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The export's name.
    pub export_name: String,
    /// Where the tables went (`host:port/database.schema`, a lake URL).
    pub destination: String,
    /// The tables, in export order.
    pub tables: Vec<TableExported>,
    /// Time from `begin` to the end of `finish`.
    pub elapsed: Duration,
}

impl ExportSummary {
    /// Rows over all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// A destination of exports.
#[async_trait]
pub trait ExportTarget: Send + Sync {
    /// The kind of target, e.g. `postgres`, `lake`.
    fn kind(&self) -> &'static str;

    /// Where the target writes, for messages (never holds a secret).
    fn destination(&self) -> String;

    /// Check reachability and permissions without changing anything. Each line names
    /// one check; failed lines carry the fix. An `Err` is returned only when the checks
    /// themselves could not run.
    async fn check(&self) -> Result<Vec<CheckLine>>;

    /// Start a run of the export `export_name`: connect, create what is missing (a
    /// database, a schema, a folder).
    async fn begin(&self, export_name: &str) -> Result<Box<dyn ExportRun>>;
}

/// One run of an export.
#[async_trait]
pub trait ExportRun: Send {
    /// Replace `table` in the destination with the rows of `batches` (all of `schema`).
    ///
    /// On error the table is as the previous run left it. After an error the run may
    /// still export other tables, and [`ExportRun::finish`] publishes what succeeded.
    async fn export_table(
        &mut self,
        table: &str,
        schema: SchemaRef,
        batches: BatchStream<'_>,
    ) -> Result<TableExported>;

    /// End the run: publish what needs publishing after all tables (a `model.json`),
    /// close connections.
    async fn finish(self: Box<Self>) -> Result<ExportSummary>;
}
