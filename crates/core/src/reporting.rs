//! Reporting connections: a reporting workspace linked to an environment's lake, the
//! way a report tool is linked to a Customer Insights instance folder (its storage
//! account, a key, the environment id and `customerinsights/ci_<environmentId>`).
//!
//! Its key is sealed among the environment's secrets; the connection only refers to it.
//! Only the principal who created it and the members it grants (principals or groups)
//! may see its reports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::EnvironmentId;
use crate::storage::StorageConfig;

/// Where a reporting connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportingStatus {
    /// Created; its folder not checked yet.
    Pending,
    /// Its folder holds `Unification/` with `Customer`, and `Reports/`.
    Ready,
    /// Its folder could not be read or lacks what reports need (see the reason).
    Failed,
}

impl std::fmt::Display for ReportingStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "Pending",
            Self::Ready => "Ready",
            Self::Failed => "Failed",
        })
    }
}

/// A reporting workspace linked to an instance folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportingConnection {
    /// The environment it belongs to (whose Admin created it).
    pub environment_id: EnvironmentId,
    /// Its name, unique in the environment without regard to ASCII case.
    pub name: String,
    /// The storage account (or bucket, or local folder) it reads; its key is a
    /// `vault:` reference to a secret of the environment.
    pub storage: StorageConfig,
    /// The environment id of the instance folder (`customerinsights/ci_<id>`).
    pub instance: EnvironmentId,
    /// Its status.
    pub status: ReportingStatus,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When its folder was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<DateTime<Utc>>,
    /// The principals and groups granted its reports, besides its creator.
    #[serde(default)]
    pub members: Vec<String>,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl ReportingConnection {
    /// The name of the environment secret holding its key.
    pub fn key_secret(&self) -> String {
        key_secret(&self.name)
    }
}

/// The name of the environment secret holding the key of reporting connection `name`.
pub fn key_secret(name: &str) -> String {
    format!("reporting-{}-key", name.to_ascii_lowercase())
}
