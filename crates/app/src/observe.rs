//! Progress of long operations as structured events.
//!
//! A refresh or an export reports what happens to an [`Observer`] as it happens: the
//! terminal draws progress bars and tables from these events, the server streams them.
//! Events carry the processes' own typed reports; nothing in this crate prints.

use std::sync::Arc;
use std::time::Duration;

use lakecdp_core::{Process, RunId, RunStatus};
use lakecdp_engine::activities::ActivitiesReport;
use lakecdp_engine::ingest::SourceReport;
use lakecdp_engine::measures::MeasuresReport;
use lakecdp_engine::reports::ReportsReport;
use lakecdp_engine::segments::SegmentsReport;
use lakecdp_engine::unify::UnifyReport;
use serde::Serialize;

/// The outcome of one process of a refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessOutcome {
    /// The process.
    pub process: Process,
    /// Succeeded, Failed, Skipped or Canceled.
    pub status: RunStatus,
    /// Rows it wrote, when it says.
    pub rows: Option<u64>,
    /// Why it failed, was skipped or canceled.
    pub reason: Option<String>,
    /// Time it ran.
    #[serde(with = "seconds")]
    pub elapsed: Duration,
    /// Where its plans ran: `local`, `ballista (standalone)` or `ballista (df://host:port)`.
    /// A process that cannot run on the environment's cluster yet says so, and ran here.
    pub ran_on: String,
}

mod seconds {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// One table an export sent, or failed to.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedTable {
    /// The table.
    pub name: String,
    /// Rows sent.
    pub rows: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Time it took.
    pub elapsed: Duration,
    /// Why it failed (its previous export is kept).
    pub error: Option<String>,
}

/// Something that happened in a long operation.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A refresh started; its processes in run order.
    RefreshStarted {
        /// The refresh's run.
        run: RunId,
        /// The environment's name.
        environment: String,
        /// Its processes, in run order.
        processes: Vec<Process>,
    },
    /// The applied project differs from the file on disk; the applied one runs.
    Notice(String),
    /// A process starts.
    ProcessStarted(Process),
    /// A process ended (also a skipped or canceled one).
    ProcessFinished(ProcessOutcome),
    /// A pass over a table starts reading `bytes` (`pass` 1 reads keys, 2 loads).
    LoadStarted {
        /// `Source.Table`.
        table: String,
        /// 1 or 2.
        pass: u8,
        /// Bytes to read.
        bytes: u64,
    },
    /// More of the current pass was read.
    LoadAdvanced {
        /// Records read since the last event.
        records: u64,
        /// Bytes read since the last event.
        bytes: u64,
    },
    /// The current pass ended.
    LoadFinished,
    /// A source was loaded (or found unchanged).
    Ingested {
        /// The source.
        source: String,
        /// What was read, written and kept as corrupt.
        report: Arc<SourceReport>,
    },
    /// A source could not be loaded.
    IngestFailed {
        /// The source.
        source: String,
        /// Why.
        message: String,
    },
    /// Unification starts over this many tables.
    Unifying {
        /// Tables unified.
        tables: usize,
    },
    /// Unification published (or previewed) its profiles.
    Unified(Arc<UnifyReport>),
    /// Activities were published.
    Activities(Arc<ActivitiesReport>),
    /// Report data was published.
    Reports(Arc<ReportsReport>),
    /// Measures were published.
    Measures(Arc<MeasuresReport>),
    /// Segments were published.
    Segments(Arc<SegmentsReport>),
    /// An export starts sending its tables.
    ExportStarted {
        /// The export.
        export: String,
        /// Tables selected.
        tables: usize,
        /// Where they go.
        destination: String,
    },
    /// An export sent (or failed to send) one table.
    ExportedTable {
        /// The export.
        export: String,
        /// The table.
        table: ExportedTable,
    },
    /// An export finished.
    ExportFinished {
        /// The export.
        export: String,
        /// Rows sent.
        rows: u64,
        /// Tables sent.
        tables: usize,
        /// Time it took.
        elapsed: Duration,
        /// Why it failed, if it did.
        error: Option<String>,
    },
    /// An export run failed (it is recorded as Failed).
    ExportFailed {
        /// The export.
        export: String,
        /// Why.
        message: String,
    },
    /// The prerequisite checks of an environment start.
    ChecksStarted {
        /// The environment.
        environment: String,
        /// Its storage, e.g. `local storage at /data/lake`.
        storage: String,
    },
    /// One prerequisite check has its result (a check may be reported again when a
    /// later step changes it; [`Event::ChecksFinished`] holds the final table).
    CheckResult(lakecdp_lake::check::CheckResult),
    /// The prerequisite checks ended.
    ChecksFinished(Arc<lakecdp_lake::CheckReport>),
    /// An environment is about to change in these ways.
    EnvironmentChanges(Vec<String>),
    /// The operation is being canceled, and why.
    Canceling(String),
    /// Something worth knowing that did not stop the operation.
    Warning(String),
}

/// Receives the events of long operations. Called from the operation's task: keep it
/// quick (hand heavy work to another task).
pub trait Observer: Send + Sync {
    /// One event.
    fn event(&self, event: &Event);
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _: &Event) {}
}

/// Every event, kept in order (for tests and for replaying a run's events).
#[derive(Debug, Default)]
pub struct Recorder {
    events: std::sync::Mutex<Vec<Event>>,
}

impl Recorder {
    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Observer for Recorder {
    fn event(&self, event: &Event) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event.clone());
        }
    }
}

/// The engine's load progress, as events.
pub(crate) struct LoadEvents(pub Arc<dyn Observer>);

impl lakecdp_engine::ingest::Progress for LoadEvents {
    fn start(&self, table: &str, pass: u8, bytes: u64) {
        self.0.event(&Event::LoadStarted {
            table: table.to_string(),
            pass,
            bytes,
        });
    }

    fn advance(&self, records: u64, bytes: u64) {
        self.0.event(&Event::LoadAdvanced { records, bytes });
    }

    fn finish(&self) {
        self.0.event(&Event::LoadFinished);
    }
}

impl Event {
    /// The event as JSON with a `type` field, as the server streams it and stores it for
    /// other instances: names and counts only, never a secret or a row of data.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Event::RefreshStarted {
                run,
                environment,
                processes,
            } => json!({"type": "refresh_started", "run": run, "environment": environment,
                "processes": processes}),
            Event::Notice(m) => json!({"type": "notice", "message": m}),
            Event::ProcessStarted(p) => json!({"type": "process_started", "process": p}),
            Event::ProcessFinished(o) => json!({"type": "process_finished", "outcome": o}),
            Event::LoadStarted { table, pass, bytes } => {
                json!({"type": "load_started", "table": table, "pass": pass, "bytes": bytes})
            }
            Event::LoadAdvanced { records, bytes } => {
                json!({"type": "load_advanced", "records": records, "bytes": bytes})
            }
            Event::LoadFinished => json!({"type": "load_finished"}),
            Event::Ingested { source, report } => json!({
                "type": "ingested", "source": source, "run": report.run_id,
                "unchanged": report.unchanged, "tables": report.tables.len(),
            }),
            Event::IngestFailed { source, message } => {
                json!({"type": "ingest_failed", "source": source, "message": message})
            }
            Event::Unifying { tables } => json!({"type": "unifying", "tables": tables}),
            Event::Unified(r) => json!({
                "type": "unified", "run": r.run_id, "profiles": r.profiles,
                "tables": r.tables.len(), "id_changes": r.id_changes.len(),
            }),
            Event::Activities(r) => json!({"type": "activities", "run": r.run_id}),
            Event::Reports(r) => json!({"type": "reports", "run": r.run_id}),
            Event::Measures(r) => json!({
                "type": "measures", "run": r.run_id,
                "measures": r.measures.iter().map(|m| json!({"name": m.name, "rows": m.rows}))
                    .collect::<Vec<_>>(),
            }),
            Event::Segments(r) => json!({
                "type": "segments", "run": r.run_id,
                "segments": r.segments.iter()
                    .map(|s| json!({"name": s.name, "members": s.members}))
                    .collect::<Vec<_>>(),
            }),
            Event::ExportStarted {
                export,
                tables,
                destination,
            } => json!({"type": "export_started", "export": export, "tables": tables,
                "destination": destination}),
            Event::ExportedTable { export, table } => json!({
                "type": "exported_table", "export": export, "table": table.name,
                "rows": table.rows, "bytes": table.bytes,
                "seconds": table.elapsed.as_secs_f64(), "error": table.error,
            }),
            Event::ExportFinished {
                export,
                rows,
                tables,
                elapsed,
                error,
            } => json!({"type": "export_finished", "export": export, "rows": rows,
                "tables": tables, "seconds": elapsed.as_secs_f64(), "error": error}),
            Event::ExportFailed { export, message } => {
                json!({"type": "export_failed", "export": export, "message": message})
            }
            Event::ChecksStarted {
                environment,
                storage,
            } => json!({"type": "checks_started", "environment": environment,
                "storage": storage}),
            Event::CheckResult(c) => json!({"type": "check_result", "check": c.check.title(),
                "status": c.status.to_string()}),
            Event::ChecksFinished(_) => json!({"type": "checks_finished"}),
            Event::EnvironmentChanges(c) => json!({"type": "environment_changes", "changes": c}),
            Event::Canceling(why) => json!({"type": "canceling", "reason": why}),
            Event::Warning(m) => json!({"type": "warning", "message": m}),
        }
    }

    /// Whether a stream of events may leave it out when it falls behind (progress that a
    /// later event supersedes).
    pub fn is_progress(&self) -> bool {
        matches!(self, Event::LoadAdvanced { .. })
    }
}

/// A unification's report as JSON: per table, per rule, the profiles and the sizes of
/// the clusters (counts only, never a record).
pub fn unify_report_json(r: &UnifyReport) -> serde_json::Value {
    use serde_json::json;
    json!({
        "run": r.run_id,
        "profiles": r.profiles,
        "tables": r.tables.iter().map(|t| json!({"table": t.table, "records": t.records,
            "duplicates": t.duplicates, "matched": t.matched, "excluded": t.excluded}))
            .collect::<Vec<_>>(),
        "rules": r.rules.iter().map(|x| json!({"table": x.table, "kind": x.kind,
            "rule": x.rule, "candidates": x.candidates, "pairs": x.pairs}))
            .collect::<Vec<_>>(),
        "clusters": {
            "records": r.clusters.records,
            "clusters": r.clusters.clusters,
            "sizes": r.clusters.sizes.iter().map(|(size, n)| json!({"size": size, "count": n}))
                .collect::<Vec<_>>(),
        },
        "models": r.models.iter().map(|m| json!({"table": m.table, "with": m.with,
            "candidates": m.candidates, "matched": m.matched, "threshold": m.threshold,
            "trained": m.trained, "random_pairs": m.random_pairs,
            "related_class": m.model.related.is_some(),
            "blocking": m.blocking.iter().map(|b| json!({"key": b.key, "comparisons": b.comparisons}))
                .collect::<Vec<_>>(),
            "thresholds": m.thresholds.iter().map(|(p, n)| json!({"probability": p, "pairs": n}))
                .collect::<Vec<_>>(),
            "histogram": m.histogram.iter().map(|(w, n)| json!({"weight": w, "pairs": n}))
                .collect::<Vec<_>>(),
            "training": m.training.as_ref().map(|t| json!({"iterations": t.iterations,
                "converged": t.converged, "pairs": t.pairs, "patterns": t.patterns,
                "seconds": t.seconds})),
        })).collect::<Vec<_>>(),
        "held_for_review": r.held_for_review,
        "mode": match &r.mode {
            lakecdp_engine::unify::UnifyMode::Full { reason } =>
                json!({"kind": "full", "reason": reason}),
            lakecdp_engine::unify::UnifyMode::Incremental { changed, deleted, rematched, kept } =>
                json!({"kind": "incremental", "changed": changed, "deleted": deleted,
                    "rematched": rematched, "kept": kept}),
        },
        "skipped_blocks": r.giant.len(),
        "id_changes": r.id_changes.len(),
        "phases": r.phases.iter().map(|(name, s)| json!({"phase": name, "seconds": s}))
            .collect::<Vec<_>>(),
    })
}

/// A source load's report as JSON: per table what was read, written, kept as corrupt
/// (with the reasons' kinds) and, for incremental tables, what the load applied.
pub fn source_report_json(r: &lakecdp_engine::ingest::SourceReport) -> serde_json::Value {
    use serde_json::json;
    json!({
        "run": r.run_id,
        "source": r.source,
        "tables": r.tables.iter().map(|t| json!({
            "table": t.table, "read": t.read, "written": t.written, "corrupt": t.corrupt,
            "replaced": t.replaced, "deleted": t.deleted, "seconds": t.seconds,
            "reasons": t.reasons.iter().map(|(k, n)| json!({"reason": k, "rows": n}))
                .collect::<Vec<_>>(),
            "incremental": t.incremental.as_ref().map(|i| json!({
                "base": match i.base {
                    lakecdp_engine::ingest::Base::Previous => "previous output",
                    lakecdp_engine::ingest::Base::FullData => "FullData",
                },
                "base_rows": i.base_rows, "hours": i.hours.len(),
                "first_hour": i.hours.first(), "last_hour": i.hours.last(),
                "upserts": i.upserts, "deletes": i.deletes, "watermark": i.watermark,
                "waiting": i.waiting.len(), "late": i.late.len(),
            })),
        })).collect::<Vec<_>>(),
    })
}

/// A prerequisite check table as JSON: one line per check with its status, what was
/// found and how to fix it.
pub fn check_report_json(r: &lakecdp_lake::CheckReport) -> serde_json::Value {
    use serde_json::json;
    json!({
        "passed": r.passed(),
        "checks": r.results.iter().map(|c| json!({"check": c.check.title(),
            "status": c.status.to_string(), "detail": c.detail, "fix": c.fix}))
            .collect::<Vec<_>>(),
    })
}
