//! Applied project revisions: the project file as the catalog stores it.
//!
//! `lakecdp apply` validates the project file and stores it as the environment's next
//! numbered revision. Every process runs from the applied revision, never from a file on
//! disk, and each run records the revision it ran.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::EnvironmentId;

/// One applied revision of an environment's project file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// The environment.
    pub environment_id: EnvironmentId,
    /// 1, 2, 3… in the order applied.
    pub number: u32,
    /// The project file's full text.
    pub text: String,
    /// The SHA-256 of the text, in hex: an unchanged file makes no new revision.
    pub hash: String,
    /// The folder its relative paths resolve in.
    pub base_dir: String,
    /// Who applied it.
    pub applied_by: String,
    /// When.
    pub applied_at: DateTime<Utc>,
}
