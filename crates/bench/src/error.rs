//! The error type of the crate.

use std::path::PathBuf;

/// What went wrong while generating data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid value of {key}: {reason}")]
    InvalidConfig {
        /// The configuration field.
        key: &'static str,
        /// Why the value is refused and what would be accepted.
        reason: String,
    },
    /// A file or folder could not be written or read.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A Parquet file could not be written.
    #[error("cannot write parquet file {}: {source}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// An Arrow record batch could not be built.
    #[error("cannot build a record batch: {source}")]
    Arrow {
        /// The underlying error.
        #[from]
        source: arrow::error::ArrowError,
    },
    /// A program could not be started or waited for.
    #[error("cannot run {}: {source}", program.display())]
    Run {
        /// The program.
        program: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An operation of the application layer failed.
    #[error(transparent)]
    App(#[from] lakecdp_app::Error),
    /// A benchmark step failed.
    #[error("{0}")]
    Bench(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The result type of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
