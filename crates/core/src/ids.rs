//! Identifiers: environments and runs.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The id of an environment. Its lake folder is `ci_<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EnvironmentId(pub Uuid);

impl EnvironmentId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// The environment's folder inside the container: `ci_<id>`.
    pub fn folder(&self) -> String {
        format!("ci_{}", self.0)
    }
}

impl Default for EnvironmentId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EnvironmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for EnvironmentId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim_start_matches("ci_")).map(Self)
    }
}

/// The id of one run of one process, e.g. `20261123T144500123Z-3f9a1c2e`.
///
/// Ids sort in the order runs started, so the lake can keep the newest runs by sorting
/// folder names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// A new id for a run starting at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        let rand = Uuid::new_v4().simple().to_string();
        Self(format!(
            "{}-{}",
            now.format("%Y%m%dT%H%M%S%3fZ"),
            &rand[..8]
        ))
    }

    /// A new id for a run starting now. The ids one process makes this way strictly
    /// increase, even within one millisecond (a later one takes the next millisecond), so
    /// a run started after another in the same process always sorts after it.
    pub fn now() -> Self {
        static LAST_MS: AtomicI64 = AtomicI64::new(i64::MIN);
        let now = Utc::now().timestamp_millis();
        let mut last = LAST_MS.load(Ordering::Relaxed);
        let ms = loop {
            let ms = now.max(last.saturating_add(1));
            match LAST_MS.compare_exchange_weak(last, ms, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break ms,
                Err(seen) => last = seen,
            }
        };
        Self::new(DateTime::from_timestamp_millis(ms).unwrap_or_else(Utc::now))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parse a run id; `None` unless it has the shape `yyyymmddThhmmssfffZ-xxxxxxxx`.
    pub fn parse(s: &str) -> Option<Self> {
        let (ts, rand) = s.split_once('-')?;
        let ok = ts.len() == 19
            && ts.ends_with('Z')
            && ts.as_bytes()[8] == b'T'
            && rand.len() == 8
            && rand.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| Self(s.to_string()))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_folder_is_ci_prefixed() {
        let id: EnvironmentId = "3fa85f64-5717-4562-b3fc-2c963f66afa6".parse().unwrap();
        assert_eq!(id.folder(), "ci_3fa85f64-5717-4562-b3fc-2c963f66afa6");
        let again: EnvironmentId = id.folder().parse().unwrap();
        assert_eq!(again, id);
    }

    #[test]
    fn run_ids_sort_by_start_time_and_parse_back() {
        let a = RunId::new("2026-01-01T00:00:00Z".parse().unwrap());
        let b = RunId::new("2026-01-01T00:00:00.001Z".parse().unwrap());
        assert!(a < b);
        assert_eq!(RunId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(RunId::parse("model.json"), None);
        assert_eq!(RunId::parse("20261123T144500123Z-zzzzzzzz"), None);
    }

    #[test]
    fn run_ids_made_now_by_one_process_strictly_increase() {
        let ids: Vec<RunId> = (0..2000).map(|_| RunId::now()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }
}
