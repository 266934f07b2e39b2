//! Environments: one lake folder `ci_<id>` in a storage container, with its settings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::EnvironmentId;
use crate::storage::StorageConfig;

/// The file format of the data partitions processes write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionFormat {
    /// CSV partitions (CDM conventions: header declared, RFC 4180 quoting, UTF-8); what
    /// every `model.json` reader understands.
    #[default]
    Csv,
    /// Parquet partitions, declared in `model.json` and in `default.manifest.cdm.json`.
    Parquet,
}

impl PartitionFormat {
    /// File extension of a partition, without the dot.
    pub fn extension(&self) -> &'static str {
        match self {
            PartitionFormat::Csv => "csv",
            PartitionFormat::Parquet => "parquet",
        }
    }
}

impl std::fmt::Display for PartitionFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.extension())
    }
}

/// How many runs of each process the lake keeps by default.
pub const DEFAULT_RETENTION_RUNS: u32 = 3;

/// An environment as the catalog stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Its id; the lake folder is `ci_<id>`.
    pub id: EnvironmentId,
    /// A unique display name.
    pub name: String,
    /// The region the environment is meant to run in, if stated.
    pub region: Option<String>,
    /// Where its lake is.
    pub storage: StorageConfig,
    /// The format of the partitions processes write.
    pub output_format: PartitionFormat,
    /// How many runs of each process folder are kept after a publish (at least 1).
    pub retention_runs: u32,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}
