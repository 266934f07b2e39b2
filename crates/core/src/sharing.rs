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

/// A consuming organisation attached to a shared storage account, from the consuming
/// side: one organisation is attached to one storage account at most.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The consuming organisation (unique without regard to ASCII case).
    pub organization: String,
    /// The storage account: an ADLS account's host, an S3 bucket (`s3://bucket`), a
    /// local container folder (`file:///...`).
    pub account: String,
    /// The permissions identifier it was attached with.
    pub identifier: String,
    /// Who attached it.
    pub attached_by: String,
    /// When.
    pub attached_at: DateTime<Utc>,
}
