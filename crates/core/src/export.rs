//! Exports: selected output tables sent through a connection, on every refresh, on their
//! own schedule, or only on demand.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::connection::ConnectionId;
use crate::ids::EnvironmentId;

/// The id of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExportId(pub uuid::Uuid);

impl ExportId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl Default for ExportId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ExportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// When an export runs by itself.
///
/// Text form: `on-refresh` (the default: after every system refresh), `off` (only on
/// demand), `daily HH:MM[,HH:MM...] [TimeZone]` or
/// `weekly mon,thu HH:MM[,HH:MM...] [TimeZone]`; the time zone is an IANA name
/// (`Europe/Paris`) and defaults to UTC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ExportSchedule {
    /// After every system refresh.
    #[default]
    OnRefresh,
    /// Never by itself; `lakecdp export run NAME` only.
    Off,
    /// On given days (every day when empty) at given local times.
    At {
        /// The weekdays; empty means every day.
        days: Vec<Weekday>,
        /// The local times, sorted.
        times: Vec<NaiveTime>,
        /// The time zone the times are in.
        zone: Tz,
    },
}

impl ExportSchedule {
    /// The first time after `now` this schedule is due, for timed schedules.
    ///
    /// A local time that a daylight-saving change skips runs at the first instant after
    /// the gap; a local time that occurs twice runs at its first occurrence.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let ExportSchedule::At { days, times, zone } = self else {
            return None;
        };
        let local_today = now.with_timezone(zone).date_naive();
        for offset in 0..=8 {
            let day = local_today + Duration::days(offset);
            if !days.is_empty() && !days.contains(&day.weekday()) {
                continue;
            }
            for t in times {
                let naive = day.and_time(*t);
                let at = match zone.from_local_datetime(&naive) {
                    chrono::LocalResult::Single(d) => d,
                    chrono::LocalResult::Ambiguous(first, _) => first,
                    chrono::LocalResult::None => {
                        // in a gap: the first local instant that exists after it
                        let mut probe = naive;
                        loop {
                            probe += Duration::minutes(1);
                            if let Some(d) = zone.from_local_datetime(&probe).earliest() {
                                break d;
                            }
                        }
                    }
                };
                let at = at.with_timezone(&Utc);
                if at > now {
                    return Some(at);
                }
            }
        }
        None
    }
}

fn weekday(s: &str) -> Result<Weekday, String> {
    s.parse::<Weekday>()
        .map_err(|_| format!("`{s}` is not a weekday: use mon, tue, wed, thu, fri, sat, sun"))
}

impl FromStr for ExportSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let usage = "use `on-refresh`, `off`, `daily HH:MM[,HH:MM] [TimeZone]` or \
                     `weekly mon,thu HH:MM [TimeZone]`";
        let (days, rest) = match words.first().map(|w| w.to_ascii_lowercase()) {
            Some(w) if (w == "on-refresh" || w == "refresh") && words.len() == 1 => {
                return Ok(ExportSchedule::OnRefresh)
            }
            Some(w) if w == "off" && words.len() == 1 => return Ok(ExportSchedule::Off),
            Some(w) if w == "daily" => (Vec::new(), &words[1..]),
            Some(w) if w == "weekly" => {
                let list = words
                    .get(1)
                    .ok_or_else(|| format!("`{s}`: a weekly schedule names its days; {usage}"))?;
                let days = list
                    .split(',')
                    .map(weekday)
                    .collect::<Result<Vec<_>, _>>()?;
                (days, &words[2..])
            }
            _ => return Err(format!("`{s}` is not a schedule: {usage}")),
        };
        let (time_list, zone) = match rest {
            [t] => (*t, Tz::UTC),
            [t, z] => (
                *t,
                z.parse::<Tz>().map_err(|_| {
                    format!("unknown time zone `{z}`: use an IANA name such as Europe/Paris")
                })?,
            ),
            _ => return Err(format!("`{s}`: {usage}")),
        };
        let mut times = time_list
            .split(',')
            .map(|t| {
                NaiveTime::parse_from_str(t, "%H:%M")
                    .map_err(|_| format!("`{t}` is not a time: write it as HH:MM (24 h)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        times.sort();
        times.dedup();
        Ok(ExportSchedule::At { days, times, zone })
    }
}

impl fmt::Display for ExportSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportSchedule::OnRefresh => f.write_str("on-refresh"),
            ExportSchedule::Off => f.write_str("off"),
            ExportSchedule::At { days, times, zone } => {
                let times = times
                    .iter()
                    .map(|t| t.format("%H:%M").to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                if days.is_empty() {
                    write!(f, "daily {times} {zone}")
                } else {
                    let days = days
                        .iter()
                        .map(|d| d.to_string().to_ascii_lowercase())
                        .collect::<Vec<_>>()
                        .join(",");
                    write!(f, "weekly {days} {times} {zone}")
                }
            }
        }
    }
}

impl TryFrom<String> for ExportSchedule {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ExportSchedule> for String {
    fn from(s: ExportSchedule) -> Self {
        s.to_string()
    }
}

/// What a scheduler does at a moment ([`SchedulerClock::tick`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// A run is due at `due`: start it.
    Start {
        /// The time it was due.
        due: DateTime<Utc>,
    },
    /// A run was due at `due`, but the previous one is still running: record it as
    /// skipped with the reason.
    Skip {
        /// The time it was due.
        due: DateTime<Utc>,
        /// Why it did not start.
        reason: String,
    },
    /// Nothing is due; the next run is due at `next` (never, for `None`).
    Wait {
        /// The next due time.
        next: Option<DateTime<Utc>>,
    },
}

/// The due times of a schedule, taken one at a time: each due time yields one start or
/// one skip, however late the scheduler looks (a machine that slept through several due
/// times runs the first and skips the others, since they are due while it runs).
#[derive(Debug, Clone)]
pub struct SchedulerClock {
    schedule: ExportSchedule,
    cursor: DateTime<Utc>,
}

impl SchedulerClock {
    /// A clock of `schedule` whose first due time is the first after `start`.
    pub fn new(schedule: ExportSchedule, start: DateTime<Utc>) -> Self {
        Self {
            schedule,
            cursor: start,
        }
    }

    /// What to do at `now`, given the start time of a run still going on, if any.
    pub fn tick(&mut self, now: DateTime<Utc>, running_since: Option<DateTime<Utc>>) -> Tick {
        match self.schedule.next_after(self.cursor) {
            Some(due) if due <= now => {
                self.cursor = due;
                match running_since {
                    None => Tick::Start { due },
                    Some(started) => Tick::Skip {
                        due,
                        reason: format!(
                            "the refresh started at {} was still running when this one was due",
                            started.format("%Y-%m-%d %H:%M:%S UTC")
                        ),
                    },
                }
            }
            next => Tick::Wait { next },
        }
    }
}

/// An export as the catalog stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// Its id.
    pub id: ExportId,
    /// The environment it belongs to.
    pub environment_id: EnvironmentId,
    /// Its display name, unique in the environment without regard to ASCII case.
    pub name: String,
    /// The connection it sends through.
    pub connection_id: ConnectionId,
    /// The tables it sends, as `<process folder>/<Entity>` (`Unification/Customer`,
    /// `DataIngestion/Crm/Contacts`), in the order given.
    pub tables: Vec<String>,
    /// Target settings: `database` and `schema` for PostgreSQL.
    pub settings: BTreeMap<String, String>,
    /// When it runs by itself.
    pub schedule: ExportSchedule,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl Export {
    /// The run-history process name of this export's runs: `export:<Name>`.
    pub fn process_name(&self) -> String {
        format!("export:{}", self.name)
    }

    /// Every problem with the name and the table selection; empty when valid.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("the export name is empty".to_string());
        }
        if self.name.contains(['/', '\\']) {
            problems.push(format!(
                "the export name `{}` may not contain `/` or `\\` (it names a folder)",
                self.name
            ));
        }
        if self.tables.is_empty() {
            problems.push(
                "an export needs at least one table, e.g. `--table Unification/Customer`"
                    .to_string(),
            );
        }
        for t in &self.tables {
            match t.rsplit_once('/') {
                Some((p, e)) if !p.is_empty() && !e.is_empty() && !p.ends_with('/') => {}
                _ => problems.push(format!(
                    "table `{t}` must be written `<Process>/<Entity>`, e.g. `Unification/Customer`"
                )),
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_print_back() {
        for text in [
            "on-refresh",
            "off",
            "daily 02:00 UTC",
            "daily 02:00,14:30 Europe/Paris",
            "weekly mon,thu 06:00 America/New_York",
        ] {
            let s: ExportSchedule = text.parse().unwrap();
            assert_eq!(s.to_string(), text);
        }
        assert_eq!(
            "daily 02:00".parse::<ExportSchedule>().unwrap().to_string(),
            "daily 02:00 UTC"
        );
        assert!("daily 25:00"
            .parse::<ExportSchedule>()
            .unwrap_err()
            .contains("HH:MM"));
        assert!("daily 02:00 Mars/Olympus"
            .parse::<ExportSchedule>()
            .unwrap_err()
            .contains("unknown time zone"));
        assert!("weekly funday 02:00"
            .parse::<ExportSchedule>()
            .unwrap_err()
            .contains("not a weekday"));
    }

    #[test]
    fn the_next_run_follows_the_zone_across_a_daylight_saving_change() {
        let s: ExportSchedule = "daily 02:30 Europe/Paris".parse().unwrap();
        // 2026-03-29: Paris skips 02:00-03:00; the run comes at 03:00 local = 01:00 UTC
        let before = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        assert_eq!(
            s.next_after(before).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()
        );
        // a summer day: 02:30 CEST = 00:30 UTC
        let summer = Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
        assert_eq!(
            s.next_after(summer).unwrap(),
            Utc.with_ymd_and_hms(2026, 7, 2, 0, 30, 0).unwrap()
        );
        let weekly: ExportSchedule = "weekly mon 06:00 UTC".parse().unwrap();
        // 2026-12-01 is a Tuesday: next Monday is the 7th
        let tue = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        assert_eq!(
            weekly.next_after(tue).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 7, 6, 0, 0).unwrap()
        );
        assert_eq!(ExportSchedule::OnRefresh.next_after(tue), None);
    }

    #[test]
    fn a_run_still_going_when_the_next_is_due_makes_the_next_skipped() {
        let s: ExportSchedule = "daily 02:00,14:00 UTC".parse().unwrap();
        let t = |d, h, m| Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap();
        let mut c = SchedulerClock::new(s, t(1, 0, 0));
        assert_eq!(
            c.tick(t(1, 1, 0), None),
            Tick::Wait {
                next: Some(t(1, 2, 0))
            }
        );
        assert_eq!(c.tick(t(1, 2, 0), None), Tick::Start { due: t(1, 2, 0) });
        // the 02:00 run is still going at 14:00
        match c.tick(t(1, 14, 1), Some(t(1, 2, 0))) {
            Tick::Skip { due, reason } => {
                assert_eq!(due, t(1, 14, 0));
                assert!(
                    reason.contains("started at 2026-12-01 02:00:00 UTC"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.tick(t(1, 14, 2), None),
            Tick::Wait {
                next: Some(t(2, 2, 0))
            }
        );
        // asleep for a day and a half: the first due time starts, the next is skipped
        assert_eq!(c.tick(t(3, 9, 0), None), Tick::Start { due: t(2, 2, 0) });
        assert!(matches!(
            c.tick(t(3, 9, 0), Some(t(3, 9, 0))),
            Tick::Skip { .. }
        ));
        let mut off = SchedulerClock::new(ExportSchedule::Off, t(1, 0, 0));
        assert_eq!(off.tick(t(9, 0, 0), None), Tick::Wait { next: None });
    }

    #[test]
    fn schedules_keep_local_time_across_the_autumn_change() {
        // 2026-10-25: Paris goes back from CEST (+2) to CET (+1)
        let s: ExportSchedule = "daily 02:30 Europe/Paris".parse().unwrap();
        let mut c = SchedulerClock::new(s, Utc.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap());
        let far = Utc.with_ymd_and_hms(2026, 10, 30, 0, 0, 0).unwrap();
        let mut dues = Vec::new();
        while let Tick::Start { due } = c.tick(far, None) {
            dues.push(due);
        }
        assert_eq!(
            dues[..2],
            [
                // 02:30 happens twice on the 25th: the first (CEST) one runs
                Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap(),
                Utc.with_ymd_and_hms(2026, 10, 26, 1, 30, 0).unwrap(),
            ]
        );
    }

    #[test]
    fn table_selections_are_checked() {
        let e = Export {
            id: ExportId::new(),
            environment_id: EnvironmentId::new(),
            name: "a/b".into(),
            connection_id: ConnectionId::new(),
            tables: vec![
                "Customer".into(),
                "Unification/Customer".into(),
                "DataIngestion/Crm/Contacts".into(),
            ],
            settings: BTreeMap::new(),
            schedule: ExportSchedule::default(),
            created_by: "ann".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let p = e.validate();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[1].contains("`Customer` must be written"));
    }
}
