use object_store::path::Path;

/// Errors of the lake.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration problem the user must fix.
    #[error(transparent)]
    Config(#[from] lakecdp_core::ConfigErrors),

    /// A secret could not be read from where its reference points.
    #[error("secret `{key}` could not be read from {reference}: {reason}")]
    Secret {
        /// The configuration key of the secret.
        key: String,
        /// Where it should be (an environment variable or file name, never the value).
        reference: String,
        /// Why it could not be read.
        reason: String,
    },

    /// The object does not exist.
    #[error("not found: {path}")]
    NotFound {
        /// Lake path.
        path: String,
    },

    /// Another publisher changed `model.json` after this run started.
    #[error("{path} was changed by another publisher after this run started; nothing was published (run again to publish on top of the newer version)")]
    Conflict {
        /// The model.json path.
        path: String,
    },

    /// The lease this writer published under was taken over by another holder.
    #[error("{what} was taken over by {holder}; this run's output was not published (the new holder's outputs stand)")]
    Fenced {
        /// What the lease guards, e.g. `the refresh of environment retail`.
        what: String,
        /// Who holds the lease now.
        holder: String,
    },

    /// A lock object stayed held by another lakecdp process for longer than the wait.
    #[error("{path} stayed locked by another lakecdp process; try again")]
    Locked {
        /// The lock's path.
        path: String,
    },

    /// A column whose Arrow type Delta Sharing's schema cannot state.
    #[error("column `{column}` of `{entity}` has the type {data_type}, which a Delta Sharing schema cannot state; it cannot be shared (store it as text or as a supported type)")]
    Unshareable {
        /// The entity.
        entity: String,
        /// The column (a nested field as `column.field`).
        column: String,
        /// Its Arrow type.
        data_type: String,
    },

    /// A `model.json` or manifest is not valid.
    #[error("invalid CDM document {path}: {message}")]
    InvalidCdm {
        /// Lake path of the document.
        path: String,
        /// What is wrong, naming the field.
        message: String,
    },

    /// An attribute's `lakecdp:arrowType` annotation is refused before Arrow parses it.
    #[error("the `lakecdp:arrowType` annotation of attribute `{attribute}` {reason}; remove the annotation (the attribute then reads with its CDM data type) or publish the table again with lakecdp")]
    ArrowTypeAnnotation {
        /// The attribute.
        attribute: String,
        /// Why it is refused.
        reason: String,
    },

    /// Data cannot be represented in the requested format.
    #[error("{0}")]
    Unsupported(String),

    /// The storage refused or failed an operation.
    #[error("storage error at {path}: {source}")]
    Store {
        /// Lake path involved.
        path: String,
        /// The object store error.
        #[source]
        source: object_store::Error,
    },

    /// Reading or writing a data file failed.
    #[error("data file {path}: {message}")]
    Data {
        /// Lake path.
        path: String,
        /// What failed.
        message: String,
    },

    /// A request to the storage service's own API failed.
    #[error("storage service request failed: {0}")]
    Service(String),
}

impl Error {
    pub(crate) fn store(path: &Path, source: object_store::Error) -> Self {
        match source {
            object_store::Error::NotFound { .. } => Error::NotFound {
                path: path.to_string(),
            },
            source => Error::Store {
                path: path.to_string(),
                source,
            },
        }
    }

    pub(crate) fn data(path: &Path, message: impl std::fmt::Display) -> Self {
        Error::Data {
            path: path.to_string(),
            message: message.to_string(),
        }
    }

    /// True for errors the user can fix (configuration, secrets, conflicts).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::Config(_)
                | Error::Secret { .. }
                | Error::Conflict { .. }
                | Error::Fenced { .. }
                | Error::InvalidCdm { .. }
                | Error::ArrowTypeAnnotation { .. }
                | Error::Unshareable { .. }
                | Error::Unsupported(_)
        )
    }
}

/// Result with the lake's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
