//! The scheduler: refreshes at the times of the environment's refresh schedule, and
//! exports at the times of their own schedules, until stopped.
//!
//! A refresh runs as its own task, so exports due meanwhile run beside it (they read
//! published outputs only) and the refresh never waits on them. A refresh still running
//! when the next one is due makes that one Skipped (recorded in the run history with the
//! reason); a refresh held by another process (its lease) fails as it would on the
//! command line. Due times missed while asleep or busy run once, not once each. Time
//! zones and daylight-saving changes are chrono-tz's (see
//! `lakecdp_core::export::ExportSchedule::next_after`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lakecdp_core::{ExportSchedule, Operation, RunRecord, RunStatus, SchedulerClock, Tick};
use tokio_util::sync::CancellationToken;

use crate::app::{Actor, App};
use crate::error::{Error, Result};
use crate::observe::{Event, Observer};
use crate::refresh::{RefreshReport, RefreshRequest};

/// What the scheduler does, as it does it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SchedulerEvent {
    /// It started: the environment, its refresh schedule and the next refresh.
    Started {
        /// The environment.
        environment: String,
        /// The refresh schedule.
        schedule: ExportSchedule,
        /// The next refresh.
        next: Option<DateTime<Utc>>,
        /// Exports on schedules of their own.
        exports: Vec<(String, ExportSchedule)>,
    },
    /// The refresh due at this time starts.
    RefreshStarts(DateTime<Utc>),
    /// The refresh due at this time is skipped, and why.
    RefreshSkipped(DateTime<Utc>, String),
    /// The refresh ended: its report, or why it could not run.
    RefreshEnded(std::result::Result<RefreshReport, String>),
    /// The next refresh.
    NextRefresh(DateTime<Utc>),
    /// An export due at this time starts.
    ExportStarts(String, DateTime<Utc>),
    /// An export did not succeed.
    ExportFailed(String, String),
    /// Stopping; a running refresh is canceled.
    Stopping {
        /// A refresh was running.
        refresh_running: bool,
    },
    /// Stopped.
    Stopped,
}

/// Receives the scheduler's events, and the events of the refreshes and exports it runs.
pub trait SchedulerObserver: Observer {
    /// One scheduler event.
    fn scheduler(&self, event: &SchedulerEvent);
}

impl App {
    /// Run the scheduler of the environment named (the project's with `None`) until
    /// `stop` fires.
    pub async fn run_scheduler(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        stop: CancellationToken,
        observer: Arc<dyn SchedulerObserver>,
    ) -> Result<()> {
        let env = self
            .environment_for(actor, environment, Operation::RunRefresh)
            .await?;
        // the applied revision's schedule, never the file's
        let project = self.applied(actor, &env).await?.project;
        let schedule = project.environment.refresh_schedule.clone();
        // exports on their own schedule (not on-refresh, not off)
        let exports: Vec<(String, ExportSchedule)> = self
            .catalog()
            .list_exports(env.id)
            .await?
            .into_iter()
            .filter(|e| matches!(e.schedule, ExportSchedule::At { .. }))
            .map(|e| (e.name, e.schedule))
            .collect();
        if schedule == ExportSchedule::Off && exports.is_empty() {
            return Err(Error::invalid(format!(
                "environment `{}` has no refresh schedule and no export on a schedule of its own: set `refresh_schedule = \"daily 02:00 Europe/Paris\"` (or `weekly mon,thu 02:00 UTC`) in [environment] of {}, or `lakecdp export edit NAME --schedule \"daily 03:00 UTC\"`",
                project.environment.name,
                self.project_file().display()
            )));
        }
        let mut export_clocks: Vec<(String, SchedulerClock)> = exports
            .iter()
            .map(|(n, s)| (n.clone(), SchedulerClock::new(s.clone(), Utc::now())))
            .collect();
        observer.scheduler(&SchedulerEvent::Started {
            environment: env.name.clone(),
            schedule: schedule.clone(),
            next: schedule.next_after(Utc::now()),
            exports,
        });
        let mut clock = SchedulerClock::new(schedule.clone(), Utc::now());
        type Running = (
            DateTime<Utc>,
            CancellationToken,
            tokio::task::JoinHandle<Result<RefreshReport>>,
        );
        let mut current: Option<Running> = None;
        loop {
            let now = Utc::now();
            let next = match clock.tick(now, current.as_ref().map(|c| c.0)) {
                Tick::Start { due } => {
                    observer.scheduler(&SchedulerEvent::RefreshStarts(due));
                    let (app, actor, token) = (self.clone(), actor.clone(), stop.child_token());
                    let events: Arc<dyn Observer> = Arc::new(Forward(Arc::clone(&observer)));
                    let task_token = token.clone();
                    let env_name = env.id.to_string();
                    let task = tokio::spawn(async move {
                        let request = RefreshRequest {
                            environment: Some(env_name),
                            ..RefreshRequest::default()
                        };
                        app.refresh(&actor, &request, task_token, events).await
                    });
                    current = Some((now, token, task));
                    continue;
                }
                Tick::Skip { due, reason } => {
                    observer.scheduler(&SchedulerEvent::RefreshSkipped(due, reason.clone()));
                    let mut r = RunRecord::start(env.id, "refresh");
                    r.status = RunStatus::Skipped;
                    r.finished_at = Some(Utc::now());
                    r.error = Some(reason);
                    // never leave the running refresh for a bookkeeping failure
                    if let Err(e) = self.catalog().record_run(&r).await {
                        observer.event(&Event::Warning(format!(
                            "the skipped refresh could not be recorded: {e}"
                        )));
                    }
                    continue;
                }
                Tick::Wait { next } => next,
            };
            // exports due now run one after the other, beside a running refresh
            let mut next = next;
            for (name, c) in export_clocks.iter_mut() {
                let mut due = None;
                loop {
                    match c.tick(Utc::now(), None) {
                        Tick::Start { due: d } | Tick::Skip { due: d, .. } => due = Some(d),
                        Tick::Wait { next: n } => {
                            next = match (next, n) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            };
                            break;
                        }
                    }
                }
                if let Some(due) = due {
                    observer.scheduler(&SchedulerEvent::ExportStarts(name.clone(), due));
                    let events = Forward(Arc::clone(&observer));
                    if let Err(e) = self
                        .run_named_exports(actor, &env, std::slice::from_ref(name), &events)
                        .await
                    {
                        observer.scheduler(&SchedulerEvent::ExportFailed(
                            name.clone(),
                            e.full_message(),
                        ));
                    }
                }
            }
            // wake at the next due time, or each minute to look again
            let wait = next
                .and_then(|n| (n - now).to_std().ok())
                .unwrap_or(Duration::ZERO)
                .clamp(Duration::from_millis(200), Duration::from_secs(60));
            tokio::select! {
                result = async {
                    match current.as_mut() {
                        Some((_, _, task)) => task.await,
                        None => std::future::pending().await,
                    }
                } => {
                    current = None;
                    let ended = match result {
                        Ok(Ok(report)) => Ok(report),
                        Ok(Err(e)) => Err(e.full_message()),
                        Err(e) => Err(format!("the refresh task failed: {e}")),
                    };
                    observer.scheduler(&SchedulerEvent::RefreshEnded(ended));
                    if let Some(n) = schedule.next_after(Utc::now()) {
                        observer.scheduler(&SchedulerEvent::NextRefresh(n));
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => {
                    observer.scheduler(&SchedulerEvent::Stopping { refresh_running: current.is_some() });
                    if let Some((_, token, task)) = current.take() {
                        token.cancel();
                        let _ = task.await;
                    }
                    observer.scheduler(&SchedulerEvent::Stopped);
                    return Ok(());
                }
            }
        }
    }
}

/// The refresh's and exports' events, passed on to the scheduler's observer.
struct Forward(Arc<dyn SchedulerObserver>);

impl Observer for Forward {
    fn event(&self, event: &Event) {
        self.0.event(event);
    }
}
