//! Connections, the secret vault and export targets (PostgreSQL, lake).
//!
//! - [`vault`]: connection secrets sealed with the environment's master key.
//! - [`target`]: the [`ExportTarget`] contract: a run replaces whole tables, so readers
//!   see the previous export or the new one, never a mix.
//! - [`postgres`]: exports into a PostgreSQL database by binary `COPY`.
//! - [`lake`]: exports into a lake folder in Customer Insights' blob-export layout.
//!
//! Export targets consume Arrow record-batch streams and never import the engine.
#![warn(missing_docs)]

pub mod error;
pub mod lake;
pub mod postgres;
pub mod target;
pub mod vault;

pub use error::{Error, Result};
pub use lake::LakeTarget;
pub use lakecdp_core::SslMode;
pub use postgres::{PostgresTarget, PostgresTargetBuilder};
pub use target::{
    BatchStream, CheckLine, CheckStatus, ExportRun, ExportSummary, ExportTarget, TableExported,
};
pub use vault::{reseal, KeyId, MasterKey, Vault};
