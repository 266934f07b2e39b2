//! Runs of processes and their statuses.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{EnvironmentId, RunId};

/// The status of a run or of one process in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunStatus {
    /// Waiting to start.
    Queued,
    /// Started and not finished.
    Running,
    /// Finished and published.
    Succeeded,
    /// Finished with an error; nothing was published.
    Failed,
    /// Not run because something it depends on did not succeed.
    Skipped,
    /// Stopped by a person.
    Canceled,
}

impl RunStatus {
    /// All statuses, in lifecycle order.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Skipped,
        RunStatus::Canceled,
    ];

    /// The status as text.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Queued => "Queued",
            RunStatus::Running => "Running",
            RunStatus::Succeeded => "Succeeded",
            RunStatus::Failed => "Failed",
            RunStatus::Skipped => "Skipped",
            RunStatus::Canceled => "Canceled",
        }
    }

    /// True once the run can no longer change.
    pub fn is_final(&self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that is not a run status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown run status `{}`", self.0)
    }
}

impl std::error::Error for UnknownStatus {}

impl FromStr for RunStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// One run of one process of an environment, as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id (also its data folder name in the lake).
    pub id: RunId,
    /// The environment it ran in.
    pub environment_id: EnvironmentId,
    /// The process, e.g. `env-check`, `ingest:crm`, `unify`.
    pub process: String,
    /// Its status.
    pub status: RunStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished, once final.
    pub finished_at: Option<DateTime<Utc>>,
    /// Rows written, when the process writes rows.
    pub rows: Option<u64>,
    /// What went wrong, for failed runs.
    pub error: Option<String>,
    /// The refresh this run is a process of, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<RunId>,
    /// The applied project revision it ran, for the processes of a refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
}

impl RunRecord {
    /// A new running record starting now.
    pub fn start(environment_id: EnvironmentId, process: impl Into<String>) -> Self {
        let now = Utc::now();
        Self {
            id: RunId::new(now),
            environment_id,
            process: process.into(),
            status: RunStatus::Running,
            started_at: now,
            finished_at: None,
            rows: None,
            error: None,
            parent: None,
            revision: None,
        }
    }

    /// A new running record of `process` in the refresh `parent`, starting now; it ran
    /// the parent's revision.
    pub fn child(parent: &RunRecord, process: impl Into<String>) -> Self {
        Self {
            parent: Some(parent.id.clone()),
            revision: parent.revision,
            ..Self::start(parent.environment_id, process)
        }
    }

    /// Duration, once finished.
    pub fn duration(&self) -> Option<chrono::Duration> {
        self.finished_at.map(|f| f - self.started_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_text() {
        for st in RunStatus::ALL {
            assert_eq!(st.as_str().parse::<RunStatus>().unwrap(), st);
        }
        assert!("Done".parse::<RunStatus>().is_err());
        assert!(RunStatus::Succeeded.is_final() && !RunStatus::Running.is_final());
    }
}
