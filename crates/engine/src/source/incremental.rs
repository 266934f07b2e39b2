//! The incremental layout of lake sources: a table's folder holds `FullData/` (a full
//! copy) and `IncrementalData/yyyy/mm/dd/hh/Upserts/` and `.../Deletes/` (changes made
//! during that UTC hour). An hour folder is read only once its hour has ended.

use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use lakecdp_core::SourceAccess;

use super::fetch::{list, Fetched};
use crate::Result;

/// What a file of the incremental layout holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// Rows to insert or replace.
    Upserts,
    /// Keys to remove.
    Deletes,
}

/// The files of a table in the incremental layout.
#[derive(Debug)]
pub struct Layout {
    /// The files of `FullData/`.
    pub full: Fetched,
    /// The files of ended hour folders, ordered by hour, then upserts before deletes,
    /// then name.
    pub changes: Fetched,
    /// For each file of `changes`: its hour (start, UTC) and kind.
    pub change_of: Vec<(DateTime<Utc>, ChangeKind)>,
    /// Hours with folders that have not ended yet (read by a later refresh).
    pub waiting: Vec<DateTime<Utc>>,
    /// Files written into hour folders after those hours were applied (see
    /// [`Layout::since`]): not loaded, reported.
    pub late: Vec<String>,
}

impl Layout {
    /// Keep only the changes of hours after `after` (exclusive) and at or after `from`.
    ///
    /// `applied_at` is when the hours up to `after` were last applied: a file of such an
    /// hour written later than that arrived after its hour was loaded (a late writer, a
    /// replayed upload). It cannot be applied in its hour's place any more (later hours
    /// are applied on top of it), so it is listed in [`Layout::late`] for the report;
    /// a full refresh loads it. Each late file is reported by the one load that follows
    /// its write. The comparison trusts the storage's clock against this host's.
    pub fn since(
        self,
        after: Option<DateTime<Utc>>,
        from: Option<DateTime<Utc>>,
        applied_at: Option<DateTime<Utc>>,
    ) -> Self {
        let late: Vec<String> = match (after, applied_at) {
            (Some(after), Some(applied_at)) => self
                .change_of
                .iter()
                .zip(&self.changes.files)
                .filter(|((hour, _), file)| {
                    *hour <= after && file.modified.is_some_and(|m| m > applied_at)
                })
                .map(|(_, file)| file.name.clone())
                .collect(),
            _ => Vec::new(),
        };
        let keep: Vec<usize> = self
            .change_of
            .iter()
            .enumerate()
            .filter(|(_, (hour, _))| {
                after.is_none_or(|a| *hour > a) && from.is_none_or(|f| *hour >= f)
            })
            .map(|(i, _)| i)
            .collect();
        let change_of = keep.iter().map(|i| self.change_of[*i]).collect();
        Self {
            full: self.full,
            changes: self.changes.select(&keep),
            change_of,
            waiting: self.waiting,
            late,
        }
    }

    /// The distinct hours of `changes`, in order.
    pub fn hours(&self) -> Vec<DateTime<Utc>> {
        let mut hours: Vec<DateTime<Utc>> = self.change_of.iter().map(|(h, _)| *h).collect();
        hours.dedup();
        hours
    }
}

/// List the incremental layout under `root` (a local folder or a remote URL). Files whose
/// name starts with `_` or `.` (`_SUCCESS`, `.crc` files of Spark jobs) are not data.
pub async fn list_layout(
    root: &str,
    access: Option<&SourceAccess>,
    project_dir: &Path,
    now: DateTime<Utc>,
) -> Result<Layout> {
    let root = root.trim_end_matches('/');
    let full = list(&format!("{root}/FullData/**/*"), access, project_dir).await?;
    let keep: Vec<usize> = data_files(&full);
    let full = full.select(&keep);
    let changes = list(&format!("{root}/IncrementalData/**/*"), access, project_dir).await?;
    let mut entries: Vec<(DateTime<Utc>, ChangeKind, String, usize)> = Vec::new();
    let mut waiting = Vec::new();
    for i in data_files(&changes) {
        let name = &changes.files[i].name;
        let Some((hour, kind)) = parse_change_path(name) else {
            tracing::warn!(file = %name, "not in an IncrementalData/yyyy/mm/dd/hh/Upserts|Deletes folder; ignored");
            continue;
        };
        if hour + Duration::hours(1) > now {
            if !waiting.contains(&hour) {
                waiting.push(hour);
            }
            continue;
        }
        entries.push((hour, kind, name.clone(), i));
    }
    entries.sort();
    waiting.sort();
    let order: Vec<usize> = entries.iter().map(|e| e.3).collect();
    Ok(Layout {
        full,
        changes: changes.select(&order),
        change_of: entries.iter().map(|e| (e.0, e.1)).collect(),
        waiting,
        late: Vec::new(),
    })
}

fn data_files(fetched: &Fetched) -> Vec<usize> {
    fetched
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            let base = f.name.rsplit(['/', '\\']).next().unwrap_or(&f.name);
            !base.starts_with('_') && !base.starts_with('.')
        })
        .map(|(i, _)| i)
        .collect()
}

/// The hour and kind of a file `.../IncrementalData/yyyy/mm/dd/hh/(Upserts|Deletes)/...`.
pub fn parse_change_path(name: &str) -> Option<(DateTime<Utc>, ChangeKind)> {
    let normalized = name.replace('\\', "/");
    let (_, rest) = normalized.rsplit_once("IncrementalData/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [y, m, d, h, kind, ..] = parts.as_slice() else {
        return None;
    };
    if parts.len() < 6 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
    let hour: u32 = h.parse().ok()?;
    let start = Utc.from_utc_datetime(&date.and_hms_opt(hour, 0, 0)?);
    let kind = match kind.to_ascii_lowercase().as_str() {
        "upserts" => ChangeKind::Upserts,
        "deletes" => ChangeKind::Deletes,
        _ => return None,
    };
    Some((start, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_paths_give_their_hour_and_kind() {
        let (hour, kind) =
            parse_change_path("data/IncrementalData/2026/11/23/09/Upserts/part-1.csv").unwrap();
        assert_eq!(hour.to_rfc3339(), "2026-11-23T09:00:00+00:00");
        assert_eq!(kind, ChangeKind::Upserts);
        let (_, kind) =
            parse_change_path("s3://b/t/IncrementalData/2026/01/02/23/Deletes/sub/x.parquet")
                .unwrap();
        assert_eq!(kind, ChangeKind::Deletes);
        assert!(parse_change_path("t/IncrementalData/2026/11/23/09/x.csv").is_none());
        assert!(parse_change_path("t/IncrementalData/2026/13/23/09/Upserts/x.csv").is_none());
        assert!(parse_change_path("t/IncrementalData/2026/11/23/24/Upserts/x.csv").is_none());
        assert!(parse_change_path("t/FullData/x.csv").is_none());
    }
}
