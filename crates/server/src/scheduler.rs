//! The scheduler built into the server: it runs on one instance at a time.
//!
//! Every instance tries to take the `scheduler` leadership row of the catalog and
//! renews it while it holds it; the one that holds it runs the scheduler of every
//! environment that has a refresh schedule or exports on schedules of their own. An
//! instance that dies stops renewing: another takes over once its time has passed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lakecdp_app::{Actor, App, ErrorKind, Event, Observer, SchedulerEvent, SchedulerObserver};
use lakecdp_core::EnvironmentId;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The leadership row's name.
pub const LEADERSHIP: &str = "scheduler";

/// How long a leader holds the row without renewing it, unless configured.
pub const HOLD: Duration = Duration::from_secs(30);

/// An environment without a schedule is looked at again after this long.
const IDLE_RECHECK: Duration = Duration::from_secs(300);

/// The scheduler's events, as log lines.
struct Log(String);

impl Observer for Log {
    fn event(&self, event: &Event) {
        if let Event::Warning(m) = event {
            tracing::warn!(environment = %self.0, "{m}");
        }
    }
}

impl SchedulerObserver for Log {
    fn scheduler(&self, event: &SchedulerEvent) {
        tracing::info!(environment = %self.0, event = ?event, "scheduler");
    }
}

struct Scheduled {
    stop: CancellationToken,
    task: JoinHandle<()>,
    started: tokio::time::Instant,
}

/// Take part in the election of the scheduler's instance until `stop` fires; while
/// leading, run the scheduler of every environment.
/// The leader renews every third of `hold`; a follower tries as often.
pub async fn lead(app: App, instance: String, hold: Duration, stop: CancellationToken) {
    let renew = hold / 3;
    let hold = chrono::Duration::from_std(hold).unwrap_or(chrono::Duration::seconds(30));
    let mut running: HashMap<EnvironmentId, Scheduled> = HashMap::new();
    let mut leading = false;
    loop {
        let now = Utc::now();
        let held = app
            .catalog()
            .take_leadership(LEADERSHIP, &instance, now, now + hold)
            .await;
        match held {
            Ok(l) if l.holder == instance => {
                if !leading {
                    tracing::info!(instance = %instance, "this instance runs the scheduler");
                    leading = true;
                }
                start_schedulers(&app, &mut running, &stop).await;
            }
            other => {
                if let Err(e) = other {
                    tracing::warn!(error = %e, "the scheduler's leadership cannot be read");
                }
                if leading {
                    tracing::warn!(instance = %instance, "another instance runs the scheduler now");
                    stop_all(&mut running).await;
                    leading = false;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(renew) => {}
            _ = stop.cancelled() => {
                stop_all(&mut running).await;
                if leading {
                    let _ = app.catalog().release_leadership(LEADERSHIP, &instance).await;
                }
                return;
            }
        }
    }
}

async fn start_schedulers(
    app: &App,
    running: &mut HashMap<EnvironmentId, Scheduled>,
    stop: &CancellationToken,
) {
    let local = Actor::local(None);
    let environments = match app.list_environments(&local).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "the environments cannot be listed");
            return;
        }
    };
    // forget schedulers that ended (no schedule, or failed) once it is time to look again
    running.retain(|_, s| !s.task.is_finished() || s.started.elapsed() < IDLE_RECHECK);
    for env in environments {
        if running.contains_key(&env.id) {
            continue;
        }
        let token = stop.child_token();
        let (app, name, t) = (app.clone(), env.name.clone(), token.clone());
        let id = env.id.to_string();
        let task = tokio::spawn(async move {
            let observer = Arc::new(Log(name.clone()));
            match app
                .run_scheduler(&Actor::local(None), Some(&id), t, observer)
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Invalid => {
                    tracing::debug!(environment = %name, "no schedule: {}", e.full_message());
                }
                Err(e) => {
                    tracing::warn!(environment = %name, error = %e.full_message(), "the scheduler stopped");
                }
            }
        });
        running.insert(
            env.id,
            Scheduled {
                stop: token,
                task,
                started: tokio::time::Instant::now(),
            },
        );
    }
}

async fn stop_all(running: &mut HashMap<EnvironmentId, Scheduled>) {
    for (_, s) in running.drain() {
        s.stop.cancel();
        let _ = s.task.await;
    }
}
