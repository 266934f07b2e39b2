//! Conversions between domain types and SQLite rows and values.

use chrono::{DateTime, SecondsFormat, Utc};
use lakecdp_core::{
    Environment, PartitionFormat, RunId, RunRecord, RunStatus, StorageConfig, Watermark,
};
use rusqlite::Row;

use crate::error::{Error, Result};

/// A database failure as a catalog error. SQLite's messages name tables, columns and
/// constraints, never bound values, so no secret can leak through them.
pub(crate) fn storage(e: rusqlite::Error) -> Error {
    Error::Storage(e.to_string())
}

/// Which constraint an insert or update violated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A `UNIQUE` or `PRIMARY KEY` constraint.
    Unique,
    /// A `REFERENCES` constraint.
    ForeignKey,
}

/// The constraint `e` reports as violated, if it is a constraint violation.
pub(crate) fn violation(e: &rusqlite::Error) -> Option<Violation> {
    let code = e.sqlite_error()?;
    match code.extended_code {
        rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            Some(Violation::Unique)
        }
        rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some(Violation::ForeignKey),
        _ => None,
    }
}

/// A timestamp as stored: RFC 3339 in UTC with exactly six fractional digits, so that
/// text order is time order.
pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_timestamp(what: &str, text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Storage(format!("stored {what} `{text}` is not a timestamp: {e}")))
}

fn format_text(format: PartitionFormat) -> &'static str {
    match format {
        PartitionFormat::Csv => "csv",
        PartitionFormat::Parquet => "parquet",
    }
}

fn parse_format(text: &str) -> Result<PartitionFormat> {
    match text {
        "csv" => Ok(PartitionFormat::Csv),
        "parquet" => Ok(PartitionFormat::Parquet),
        other => Err(Error::Storage(format!(
            "stored output format `{other}` is unknown"
        ))),
    }
}

/// The columns [`EnvironmentRow::read`] expects, in order.
pub(crate) const ENVIRONMENT_COLUMNS: &str = "id, name, region, storage_json, output_format, \
     retention_runs, created_by, created_at, updated_at";

/// An environment as the columns of `environments` hold it.
#[derive(Debug, Clone)]
pub(crate) struct EnvironmentRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) region: Option<String>,
    pub(crate) storage_json: String,
    pub(crate) output_format: &'static str,
    pub(crate) retention_runs: i64,
    pub(crate) created_by: String,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

impl EnvironmentRow {
    /// The row values of an environment.
    pub(crate) fn from_environment(e: &Environment) -> Result<Self> {
        let storage_json = serde_json::to_string(&e.storage).map_err(|err| {
            Error::Invalid(format!(
                "the storage configuration of environment `{}` cannot be stored: {err}",
                e.name
            ))
        })?;
        Ok(Self {
            id: e.id.to_string(),
            name: e.name.clone(),
            region: e.region.clone(),
            storage_json,
            output_format: format_text(e.output_format),
            retention_runs: i64::from(e.retention_runs),
            created_by: e.created_by.clone(),
            created_at: timestamp(e.created_at),
            updated_at: timestamp(e.updated_at),
        })
    }

    /// Read a row selected with [`ENVIRONMENT_COLUMNS`] into an environment.
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Result<Environment>> {
        let id: String = row.get(0)?;
        let name: String = row.get(1)?;
        let region: Option<String> = row.get(2)?;
        let storage_json: String = row.get(3)?;
        let output_format: String = row.get(4)?;
        let retention_runs: i64 = row.get(5)?;
        let created_by: String = row.get(6)?;
        let created_at: String = row.get(7)?;
        let updated_at: String = row.get(8)?;
        Ok((|| {
            let storage: StorageConfig = serde_json::from_str(&storage_json).map_err(|e| {
                Error::Storage(format!(
                    "the stored storage configuration of environment `{name}` is unreadable: {e}"
                ))
            })?;
            Ok(Environment {
                id: id.parse().map_err(|e| {
                    Error::Storage(format!("stored environment id `{id}` is not an id: {e}"))
                })?,
                region,
                storage,
                output_format: parse_format(&output_format)?,
                retention_runs: u32::try_from(retention_runs).map_err(|_| {
                    Error::Storage(format!(
                        "stored retention {retention_runs} of environment `{name}` is out of range"
                    ))
                })?,
                created_by,
                created_at: parse_timestamp("created_at", &created_at)?,
                updated_at: parse_timestamp("updated_at", &updated_at)?,
                name,
            })
        })())
    }
}

/// The columns [`RunRow::read`] expects, in order.
pub(crate) const RUN_COLUMNS: &str =
    "id, environment_id, process, status, started_at, finished_at, \"rows\", error, parent_id, revision";

/// A run as the columns of `runs` hold it.
#[derive(Debug, Clone)]
pub(crate) struct RunRow {
    pub(crate) id: String,
    pub(crate) environment_id: String,
    pub(crate) process: String,
    pub(crate) status: &'static str,
    pub(crate) started_at: String,
    pub(crate) finished_at: Option<String>,
    pub(crate) rows: Option<i64>,
    pub(crate) error: Option<String>,
    pub(crate) parent_id: Option<String>,
    pub(crate) revision: Option<i64>,
}

impl RunRow {
    /// The row values of a run.
    pub(crate) fn from_run(r: &RunRecord) -> Result<Self> {
        let rows = r
            .rows
            .map(|n| {
                i64::try_from(n).map_err(|_| {
                    Error::Invalid(format!(
                        "run `{}` reports {n} rows, more than the catalog can store",
                        r.id
                    ))
                })
            })
            .transpose()?;
        Ok(Self {
            id: r.id.to_string(),
            environment_id: r.environment_id.to_string(),
            process: r.process.clone(),
            status: r.status.as_str(),
            started_at: timestamp(r.started_at),
            finished_at: r.finished_at.map(timestamp),
            rows,
            error: r.error.clone(),
            parent_id: r.parent.as_ref().map(|p| p.to_string()),
            revision: r.revision.map(i64::from),
        })
    }

    /// Read a row selected with [`RUN_COLUMNS`] into a run.
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Result<RunRecord>> {
        let id: String = row.get(0)?;
        let environment_id: String = row.get(1)?;
        let process: String = row.get(2)?;
        let status: String = row.get(3)?;
        let started_at: String = row.get(4)?;
        let finished_at: Option<String> = row.get(5)?;
        let rows: Option<i64> = row.get(6)?;
        let error: Option<String> = row.get(7)?;
        let parent_id: Option<String> = row.get(8)?;
        let revision: Option<i64> = row.get(9)?;
        Ok((|| {
            Ok(RunRecord {
                environment_id: environment_id.parse().map_err(|e| {
                    Error::Storage(format!(
                        "stored environment id `{environment_id}` of run `{id}` is not an id: {e}"
                    ))
                })?,
                process,
                status: status
                    .parse::<RunStatus>()
                    .map_err(|e| Error::Storage(format!("run `{id}`: stored {e}")))?,
                started_at: parse_timestamp("started_at", &started_at)?,
                finished_at: finished_at
                    .as_deref()
                    .map(|t| parse_timestamp("finished_at", t))
                    .transpose()?,
                rows: rows
                    .map(|n| {
                        u64::try_from(n).map_err(|_| {
                            Error::Storage(format!(
                                "stored row count {n} of run `{id}` is negative"
                            ))
                        })
                    })
                    .transpose()?,
                error,
                parent: parent_id.map(run_id).transpose()?,
                revision: revision
                    .map(|n| {
                        u32::try_from(n).map_err(|_| {
                            Error::Storage(format!("stored revision {n} of run `{id}` is not one"))
                        })
                    })
                    .transpose()?,
                id: run_id(id)?,
            })
        })())
    }
}

/// The columns [`read_revision`] expects, in order.
pub(crate) const REVISION_COLUMNS: &str =
    "environment_id, number, text, hash, base_dir, applied_by, applied_at";

/// Read a row selected with [`REVISION_COLUMNS`] into a revision.
pub(crate) fn read_revision(row: &Row<'_>) -> rusqlite::Result<Result<lakecdp_core::Revision>> {
    let environment_id: String = row.get(0)?;
    let number: i64 = row.get(1)?;
    let text: String = row.get(2)?;
    let hash: String = row.get(3)?;
    let base_dir: String = row.get(4)?;
    let applied_by: String = row.get(5)?;
    let applied_at: String = row.get(6)?;
    Ok((|| {
        Ok(lakecdp_core::Revision {
            environment_id: environment_id.parse().map_err(|e| {
                Error::Storage(format!(
                    "stored environment id `{environment_id}` of a revision is not an id: {e}"
                ))
            })?,
            number: u32::try_from(number)
                .map_err(|_| Error::Storage(format!("stored revision number {number}")))?,
            text,
            hash,
            base_dir,
            applied_by,
            applied_at: parse_timestamp("applied_at", &applied_at)?,
        })
    })())
}

/// The columns [`WatermarkRow::read`] expects, in order.
pub(crate) const WATERMARK_COLUMNS: &str = "environment_id, source, table_name, hour, updated_at";

/// A watermark as the columns of `watermarks` hold it.
#[derive(Debug, Clone)]
pub(crate) struct WatermarkRow {
    pub(crate) environment_id: String,
    pub(crate) source: String,
    pub(crate) table_name: String,
    pub(crate) hour: String,
    pub(crate) updated_at: String,
}

impl WatermarkRow {
    /// The row values of a watermark.
    pub(crate) fn from_watermark(w: &Watermark) -> Self {
        Self {
            environment_id: w.environment_id.to_string(),
            source: w.source.clone(),
            table_name: w.table.clone(),
            hour: timestamp(w.hour),
            updated_at: timestamp(w.updated_at),
        }
    }

    /// Read a row selected with [`WATERMARK_COLUMNS`] into a watermark.
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Result<Watermark>> {
        let environment_id: String = row.get(0)?;
        let source: String = row.get(1)?;
        let table: String = row.get(2)?;
        let hour: String = row.get(3)?;
        let updated_at: String = row.get(4)?;
        Ok((|| {
            Ok(Watermark {
                environment_id: environment_id.parse().map_err(|e| {
                    Error::Storage(format!(
                        "stored environment id `{environment_id}` of the watermark of \
                         `{source}.{table}` is not an id: {e}"
                    ))
                })?,
                hour: parse_timestamp("hour", &hour)?,
                updated_at: parse_timestamp("updated_at", &updated_at)?,
                source,
                table,
            })
        })())
    }
}

/// A stored run id, read back exactly as it was written.
fn run_id(text: String) -> Result<RunId> {
    serde_json::from_value(serde_json::Value::String(text))
        .map_err(|e| Error::Storage(format!("stored run id is unreadable: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_fixed_width_and_sort_as_text() {
        let a: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let b: DateTime<Utc> = "2026-01-01T00:00:00.000001Z".parse().unwrap();
        let c: DateTime<Utc> = "2026-01-01T00:00:00.1Z".parse().unwrap();
        let texts: Vec<String> = [a, b, c].into_iter().map(timestamp).collect();
        assert_eq!(texts[0], "2026-01-01T00:00:00.000000Z");
        assert!(texts.iter().all(|t| t.len() == texts[0].len()));
        assert!(texts[0] < texts[1] && texts[1] < texts[2]);
        assert_eq!(parse_timestamp("t", &texts[2]).unwrap(), c);
    }

    #[test]
    fn finer_than_microseconds_is_dropped() {
        let t: DateTime<Utc> = "2026-01-01T00:00:00.123456789Z".parse().unwrap();
        assert_eq!(timestamp(t), "2026-01-01T00:00:00.123456Z");
    }
}
