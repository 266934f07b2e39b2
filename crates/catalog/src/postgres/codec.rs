//! Conversions between domain types and PostgreSQL values, and driver errors as catalog
//! errors.
//!
//! Timestamps are `timestamptz`, bound as [`SystemTime`] after dropping what is finer
//! than a microsecond (PostgreSQL's precision), so that the digits dropped are the same
//! as in the SQLite catalog: the time is floored to the microsecond.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use lakecdp_core::{PartitionFormat, RunId};
use tokio_postgres::error::SqlState;

use crate::error::{Error, Result};

/// A timestamp as bound to a `timestamptz` parameter, floored to the microsecond.
pub(crate) fn ts(t: DateTime<Utc>) -> SystemTime {
    let micros = t.timestamp_micros();
    let magnitude = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// An optional timestamp as bound to a `timestamptz` parameter.
pub(crate) fn opt_ts(t: Option<DateTime<Utc>>) -> Option<SystemTime> {
    t.map(ts)
}

/// A `timestamptz` value as read.
pub(crate) fn from_ts(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

/// A name as compared without regard to ASCII case: the key `lower(column)` is
/// compared with. Every text column is `COLLATE "C"`, under which PostgreSQL's
/// `lower` folds ASCII letters only, as [`str::to_ascii_lowercase`] does.
pub(crate) fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Which constraint a statement violated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A unique index or primary key (SQLSTATE 23505).
    Unique,
    /// A foreign key (SQLSTATE 23503).
    ForeignKey,
}

/// The constraint `e` reports as violated, if it is a constraint violation.
pub(crate) fn violation(e: &tokio_postgres::Error) -> Option<Violation> {
    match e.code()? {
        c if *c == SqlState::UNIQUE_VIOLATION => Some(Violation::Unique),
        c if *c == SqlState::FOREIGN_KEY_VIOLATION => Some(Violation::ForeignKey),
        _ => None,
    }
}

/// The name of the constraint or index `e` reports as violated.
pub(crate) fn constraint(e: &tokio_postgres::Error) -> Option<&str> {
    e.as_db_error()?.constraint()
}

/// A database failure as a catalog error.
///
/// A server error is reported by its message and SQLSTATE only: its `DETAIL` can quote
/// row values (`Key (token_hash)=(...) already exists`, `Failing row contains ...`), so
/// it is left out. The driver's own messages name no values.
pub(crate) fn storage(e: tokio_postgres::Error) -> Error {
    Error::Storage(describe(&e))
}

/// The message [`storage`] reports.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// Turns connection failures into catalog errors that cannot hold the password of the
/// catalog URL, and names the database the catalog is in without it.
#[derive(Clone)]
pub(crate) struct Redactor {
    /// The password as the URL spells it and as decoded, when they differ.
    passwords: Vec<String>,
    target: String,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("target", &self.target)
            .field(
                "passwords",
                &format_args!("<{} redacted>", self.passwords.len()),
            )
            .finish()
    }
}

impl Redactor {
    /// A redactor for the URL's password (in every spelling given) and its
    /// `user@host:port/database` target.
    pub(crate) fn new(passwords: impl IntoIterator<Item = String>, target: String) -> Self {
        let mut passwords: Vec<String> = passwords.into_iter().filter(|p| !p.is_empty()).collect();
        // the longest first, so that no part of one is left when another is inside it
        passwords.sort_by_key(|p| std::cmp::Reverse(p.len()));
        passwords.dedup();
        Self { passwords, target }
    }

    /// `user@host:port/database`, without the password.
    pub(crate) fn target(&self) -> String {
        self.target.clone()
    }

    /// `text` with every occurrence of the password replaced.
    pub(crate) fn redact(&self, text: &str) -> String {
        self.passwords
            .iter()
            .fold(text.to_string(), |text, p| text.replace(p.as_str(), "***"))
    }

    /// A failure to connect as a catalog error.
    pub(crate) fn connect_error(&self, e: &tokio_postgres::Error) -> Error {
        Error::Storage(self.redact(&format!(
            "cannot connect to the catalog database {}: {}",
            self.target,
            describe(e)
        )))
    }
}

/// How an output format is stored.
pub(crate) fn format_text(format: PartitionFormat) -> &'static str {
    match format {
        PartitionFormat::Csv => "csv",
        PartitionFormat::Parquet => "parquet",
    }
}

/// A stored output format.
pub(crate) fn parse_format(text: &str) -> Result<PartitionFormat> {
    match text {
        "csv" => Ok(PartitionFormat::Csv),
        "parquet" => Ok(PartitionFormat::Parquet),
        other => Err(Error::Storage(format!(
            "stored output format `{other}` is unknown"
        ))),
    }
}

/// A stored run id, read back exactly as it was written.
pub(crate) fn run_id(text: String) -> Result<RunId> {
    serde_json::from_value(serde_json::Value::String(text))
        .map_err(|e| Error::Storage(format!("stored run id is unreadable: {e}")))
}

/// A value read from a column that does not fit its domain type.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("stored {what} cannot be read: {e}"))
}

/// A stored non-negative integer as a `u32`.
pub(crate) fn to_u32(what: &str, n: i64) -> Result<u32> {
    u32::try_from(n).map_err(|_| corrupt(what, format!("{n} is out of range")))
}

/// A stored non-negative integer as a `u64`.
pub(crate) fn to_u64(what: &str, n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| corrupt(what, format!("{n} is negative")))
}

/// A count or limit as a `bigint` parameter (saturating).
pub(crate) fn big(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_floored_to_the_microsecond() {
        let t: DateTime<Utc> = "2026-01-01T00:00:00.123456789Z".parse().unwrap();
        assert_eq!(
            from_ts(ts(t)),
            "2026-01-01T00:00:00.123456Z"
                .parse::<DateTime<Utc>>()
                .unwrap()
        );
        let before_1970: DateTime<Utc> = "1969-12-31T23:59:59.999999999Z".parse().unwrap();
        assert_eq!(
            from_ts(ts(before_1970)),
            "1969-12-31T23:59:59.999999Z"
                .parse::<DateTime<Utc>>()
                .unwrap()
        );
    }

    #[test]
    fn folding_touches_ascii_letters_only() {
        assert_eq!(fold("Retail-ÄÖ"), "retail-ÄÖ");
    }

    #[test]
    fn the_password_is_redacted() {
        let r = Redactor::new(Some("s3cret".into()), "u@h:5432/db".into());
        assert_eq!(r.redact("x s3cret y s3cret"), "x *** y ***");
        assert_eq!(r.target(), "u@h:5432/db");
        let none = Redactor::new(Some(String::new()), "t".into());
        assert_eq!(none.redact("abc"), "abc");
    }
}
