//! The catalog's error type.
//!
//! Variants say what went wrong for the caller, not which library failed:
//! [`Error::is_user_error`] separates a caller's mistake (an unknown name, a duplicate, a
//! stale change, a bad value) from a failing database, so the CLI and the HTTP API can
//! map them to different exit codes and statuses.

/// Result of catalog operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a catalog operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object does not exist.
    #[error("{kind} `{name}` not found")]
    NotFound {
        /// What kind of object, e.g. `environment` or `run`.
        kind: &'static str,
        /// The name or id the caller asked for.
        name: String,
    },

    /// An object with this name or id exists already.
    #[error("{kind} `{name}` already exists")]
    AlreadyExists {
        /// What kind of object, e.g. `environment` or `run`.
        kind: &'static str,
        /// The name or id that is taken.
        name: String,
    },

    /// The change contradicts the stored state, e.g. changing a run that has already
    /// finished.
    #[error("{0}")]
    Conflict(String),

    /// The acting principal's role does not allow the operation.
    #[error(transparent)]
    AccessDenied(#[from] lakecdp_core::AccessDenied),

    /// A connection that exports use cannot be deleted.
    #[error(
        "connection `{connection}` is used by the export(s) {}: delete them or move them to another connection first (`lakecdp export edit NAME --connection OTHER`)",
        exports.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
    )]
    ConnectionInUse {
        /// The connection's name.
        connection: String,
        /// The exports that use it.
        exports: Vec<String>,
    },

    /// The object handed to the catalog is not valid, e.g. an empty name.
    #[error("{0}")]
    Invalid(String),

    /// The database failed or holds data this version cannot read. The message never
    /// contains a secret.
    #[error("catalog storage failed: {0}")]
    Storage(String),

    /// A schema migration failed, or the database has a schema this version does not
    /// know.
    #[error("catalog schema version {version}: {message}")]
    Migration {
        /// The schema version concerned.
        version: u32,
        /// What went wrong and how to fix it.
        message: String,
    },
}

impl Error {
    /// True when the caller's request was at fault (not found, already exists, conflict,
    /// invalid), false when the catalog itself failed.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. }
                | Error::AlreadyExists { .. }
                | Error::Conflict(_)
                | Error::Invalid(_)
                | Error::AccessDenied(_)
                | Error::ConnectionInUse { .. }
        )
    }

    pub(crate) fn environment_not_found(name: impl Into<String>) -> Self {
        Error::NotFound {
            kind: crate::ENVIRONMENT,
            name: name.into(),
        }
    }

    pub(crate) fn run_not_found(name: impl Into<String>) -> Self {
        Error::NotFound {
            kind: crate::RUN,
            name: name.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_name_the_object() {
        let e = Error::environment_not_found("retail");
        assert_eq!(e.to_string(), "environment `retail` not found");
        assert!(e.is_user_error());
        let e = Error::AlreadyExists {
            kind: "run",
            name: "r1".into(),
        };
        assert_eq!(e.to_string(), "run `r1` already exists");
        let e = Error::Storage("database is locked".into());
        assert_eq!(e.to_string(), "catalog storage failed: database is locked");
        assert!(!e.is_user_error());
        let e = Error::Migration {
            version: 2,
            message: "no such table".into(),
        };
        assert!(!e.is_user_error());
        assert_eq!(e.to_string(), "catalog schema version 2: no such table");
    }
}
