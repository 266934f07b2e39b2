//! The one error type of the crate.

/// Errors of connections, the vault and export targets.
///
/// Messages name what failed and, where the user can act, the fix. They never hold a
/// secret: neither a password, nor a master key, nor the bytes of a sealed value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The master key is missing or malformed.
    #[error("{0}")]
    MasterKey(String),

    /// A sealed secret cannot be opened (wrong key, wrong record, damaged blob).
    #[error("secret `{context}` cannot be opened: {reason}")]
    Sealed {
        /// The record the secret belongs to, e.g. `connection:crm:password`.
        context: String,
        /// Why, without any of the blob's bytes.
        reason: String,
    },

    /// A setting of a target is invalid.
    #[error("invalid setting `{key}`: {message}")]
    Config {
        /// The setting.
        key: String,
        /// What is wrong and what is accepted.
        message: String,
    },

    /// A column's type has no counterpart in the target.
    #[error("column `{column}` has type {data_type}, which {target} exports do not support")]
    UnsupportedType {
        /// The column.
        column: String,
        /// Its Arrow type.
        data_type: String,
        /// The target kind.
        target: &'static str,
    },

    /// The target's server cannot be reached or refused the login.
    #[error("cannot connect to {target} at {address}: {reason}")]
    Unreachable {
        /// The target kind.
        target: &'static str,
        /// `host:port`.
        address: String,
        /// What failed.
        reason: String,
    },

    /// The target's user lacks a permission the export needs.
    #[error("{target} at {address}: {message}; fix: {fix}")]
    PermissionDenied {
        /// The target kind.
        target: &'static str,
        /// `host:port`.
        address: String,
        /// What was refused.
        message: String,
        /// How to grant it.
        fix: String,
    },

    /// Exporting a table failed; the table as it was before the run is intact.
    #[error("exporting table `{table}` to {address} failed while {stage}: {reason}")]
    Export {
        /// The table.
        table: String,
        /// Where it was going (`host:port/database` or a lake URL).
        address: String,
        /// The step that failed.
        stage: &'static str,
        /// What failed.
        reason: String,
    },

    /// A table of the destination's name exists, and this export did not create it: an
    /// export replaces only its own tables.
    #[error(
        "table `{table}` at {address} {owner}; an export replaces only tables it created: {fix}"
    )]
    NotOwned {
        /// `schema.table`.
        table: String,
        /// `host:port/database`.
        address: String,
        /// Who created it, in words.
        owner: String,
        /// What to do.
        fix: String,
    },

    /// A lake operation failed.
    #[error(transparent)]
    Lake(#[from] lakecdp_lake::Error),
}

impl Error {
    /// True for errors the user can fix (configuration, permissions, key setup, types).
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::MasterKey(_)
            | Error::Sealed { .. }
            | Error::Config { .. }
            | Error::UnsupportedType { .. }
            | Error::PermissionDenied { .. }
            | Error::NotOwned { .. } => true,
            Error::Lake(e) => e.is_user_error(),
            _ => false,
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
