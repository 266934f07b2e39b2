//! The lake of an environment: object store backends (local, Azure Data Lake Storage
//! Gen2, S3), the folder layout, CDM folders (`model.json`) with atomic publish, and the
//! prerequisite checks that run before an environment is created.
//!
//! Every file lakecdp writes goes through a [`Lake`].
#![warn(missing_docs)]

pub mod access;
pub mod backend;
pub mod cdm;
pub mod check;
mod error;
pub mod holder;
pub mod layout;
pub mod lease;
pub mod lock;
pub mod partition;
pub mod publish;
pub mod secrets;

pub use backend::{Capabilities, StoreHandle};
pub use check::{Check, CheckOptions, CheckReport, CheckResult, CheckStatus};
pub use error::{Error, Result};
pub use layout::{Lake, Process};
pub use lock::{LockGuard, LockObject};
pub use publish::{CdmFolderWriter, Published, DEFAULT_RETENTION_MIN_AGE};
