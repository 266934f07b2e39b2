//! Watermarks: how far the incremental loads of a source's tables have got.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::EnvironmentId;

/// What the incremental loads of one source table have processed: the start (UTC) of the
/// last `IncrementalData/yyyy/mm/dd/hh` hour folder applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The environment whose lake the table is loaded into.
    pub environment_id: EnvironmentId,
    /// The source's name, as the project file declares it.
    pub source: String,
    /// The table's name within the source.
    pub table: String,
    /// The start (UTC) of the last hour folder applied: `IncrementalData/2026/03/04/05`
    /// is `2026-03-04T05:00:00Z`.
    pub hour: DateTime<Utc>,
    /// When the watermark was last set.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let hour: DateTime<Utc> = "2026-03-04T05:00:00Z".parse().unwrap();
        let watermark = Watermark {
            environment_id: EnvironmentId::new(),
            source: "Crm".into(),
            table: "Contacts".into(),
            hour,
            updated_at: hour + chrono::Duration::minutes(7),
        };
        let json = serde_json::to_string(&watermark).unwrap();
        assert_eq!(serde_json::from_str::<Watermark>(&json).unwrap(), watermark);
    }
}
