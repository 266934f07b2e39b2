//! The application's error: a message for people and a [`ErrorKind`] for programs.
//!
//! The kind is what a front end needs to decide: the command line maps it to its exit
//! code (2 for what the user can fix, 1 for the rest), the server to an HTTP status. The
//! errors of the lower crates are classified once, here, by their own variants.

use std::fmt;

use serde::Serialize;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request or configuration is wrong; the user can fix it.
    Invalid,
    /// An object it names does not exist.
    NotFound,
    /// The acting principal's role does not allow it.
    Denied,
    /// No valid credentials: a wrong password, an expired session, a revoked token.
    Unauthenticated,
    /// It clashes with the state: an object that exists, a refresh already running.
    Conflict,
    /// A storage, database or server it needs is down or unreachable.
    Unavailable,
    /// The operation is not implemented for this configuration.
    NotImplemented,
    /// A bug or an unexpected failure.
    Internal,
}

impl ErrorKind {
    /// True for what the user can fix: invalid, not found, denied, conflict.
    pub fn is_user_error(self) -> bool {
        matches!(
            self,
            ErrorKind::Invalid
                | ErrorKind::NotFound
                | ErrorKind::Denied
                | ErrorKind::Unauthenticated
                | ErrorKind::Conflict
        )
    }

    /// Its name, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Denied => "denied",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NotImplemented => "not_implemented",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation's failure.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<Error>>,
}

/// Result with the application's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A mistake the user can fix.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// An object that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// An operation the acting principal may not perform.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Denied, message)
    }

    /// Credentials that are missing, wrong, expired or revoked.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }

    /// A clash with the state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// An unexpected failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Its kind; for an error with context, the kind of the innermost cause.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Its own message, without the causes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// This error as the cause of `message`, keeping its kind.
    pub fn context(self, message: impl Into<String>) -> Self {
        Self {
            kind: self.kind,
            message: message.into(),
            source: Some(Box::new(self)),
        }
    }

    /// The message and every cause, joined with `: `.
    pub fn full_message(&self) -> String {
        let mut out = self.message.clone();
        let mut next = self.source.as_deref();
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.message);
            next = e.source.as_deref();
        }
        out
    }
}

/// [`Error::context`] on results.
pub trait ResultExt<T> {
    /// The error, if any, as the cause of `message`.
    fn context(self, message: impl Into<String>) -> Result<T>;
    /// [`ResultExt::context`] with a message built only on failure.
    fn with_context<M: Into<String>>(self, message: impl FnOnce() -> M) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn context(self, message: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().context(message))
    }

    fn with_context<M: Into<String>>(self, message: impl FnOnce() -> M) -> Result<T> {
        self.map_err(|e| e.into().context(message()))
    }
}

impl From<lakecdp_core::ConfigErrors> for Error {
    fn from(e: lakecdp_core::ConfigErrors) -> Self {
        Error::invalid(e.to_string())
    }
}

impl From<lakecdp_core::AccessDenied> for Error {
    fn from(e: lakecdp_core::AccessDenied) -> Self {
        Error::new(ErrorKind::Denied, e.to_string())
    }
}

impl From<lakecdp_catalog::Error> for Error {
    fn from(e: lakecdp_catalog::Error) -> Self {
        use lakecdp_catalog::Error as E;
        let kind = match &e {
            E::NotFound { .. } => ErrorKind::NotFound,
            E::AlreadyExists { .. } | E::Conflict(_) | E::ConnectionInUse { .. } => {
                ErrorKind::Conflict
            }
            E::AccessDenied(_) => ErrorKind::Denied,
            E::Invalid(_) => ErrorKind::Invalid,
            E::Storage(_) => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<lakecdp_lake::Error> for Error {
    fn from(e: lakecdp_lake::Error) -> Self {
        use lakecdp_lake::Error as E;
        let kind = match &e {
            E::NotFound { .. } => ErrorKind::NotFound,
            E::Conflict { .. } | E::Locked { .. } | E::Fenced { .. } => ErrorKind::Conflict,
            E::Store { .. } | E::Service(_) => ErrorKind::Unavailable,
            _ if e.is_user_error() => ErrorKind::Invalid,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<lakecdp_lake::lease::LeaseError> for Error {
    fn from(e: lakecdp_lake::lease::LeaseError) -> Self {
        use lakecdp_lake::lease::LeaseError as E;
        match e {
            E::Lake(e) => e.into(),
            e => Error::conflict(e.to_string()),
        }
    }
}

impl From<lakecdp_engine::Error> for Error {
    fn from(e: lakecdp_engine::Error) -> Self {
        match e {
            lakecdp_engine::Error::Lake(e) => e.into(),
            e @ lakecdp_engine::Error::Cluster(_) => {
                Error::new(ErrorKind::Unavailable, e.to_string())
            }
            e if e.is_user_error() => Error::invalid(e.to_string()),
            e => Error::internal(e.to_string()),
        }
    }
}

impl From<lakecdp_connect::Error> for Error {
    fn from(e: lakecdp_connect::Error) -> Self {
        use lakecdp_connect::Error as E;
        match e {
            E::Lake(e) => e.into(),
            E::PermissionDenied { .. } => Error::new(ErrorKind::Denied, e.to_string()),
            e if e.is_user_error() => Error::invalid(e.to_string()),
            e => Error::new(ErrorKind::Unavailable, e.to_string()),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::internal(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::internal(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::Denied,
            _ => ErrorKind::Unavailable,
        };
        Error::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_kind_and_the_causes() {
        let e = Error::not_found("no run `x`").context("runs show");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "runs show");
        assert_eq!(e.full_message(), "runs show: no run `x`");
        assert!(e.kind().is_user_error());
        assert!(!ErrorKind::Unavailable.is_user_error());
    }

    #[test]
    fn lower_errors_are_classified_by_their_variants() {
        let e: Error = lakecdp_catalog::Error::NotFound {
            kind: "run",
            name: "r".into(),
        }
        .into();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e: Error = lakecdp_catalog::Error::Storage("database is locked".into()).into();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let e: Error = lakecdp_catalog::Error::Conflict("stale".into()).into();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let e: Error = lakecdp_lake::Error::Unsupported("x".into()).into();
        assert_eq!(e.kind(), ErrorKind::Invalid);
    }
}
