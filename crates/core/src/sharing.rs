//! Sharing an environment's outputs with another organisation's applications: the two
//! groups of the environment and what they are bound to on its storage.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::EnvironmentId;

/// The sharing of one environment, as `sharing enable` left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sharing {
    /// The environment.
    pub environment: EnvironmentId,
    /// The lakecdp group whose members read the outputs (a group principal).
    pub reader_group: String,
    /// The lakecdp group whose members also write them.
    pub contributor_group: String,
    /// What the Reader group is on the storage: a Unix group id (local), an identity
    /// name (S3), a Microsoft Entra object id (ADLS).
    pub storage_reader: String,
    /// What the Contributor group is on the storage.
    pub storage_contributor: String,
    /// Who enabled (or last repaired) it.
    pub enabled_by: String,
    /// When.
    pub enabled_at: DateTime<Utc>,
}
