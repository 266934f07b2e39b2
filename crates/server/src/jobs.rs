//! Long work as background jobs: a refresh or an export started over the API runs in a
//! task of its own, which survives the client going away.
//!
//! Its events are written to the catalog (so that any instance serving the same catalog
//! can stream them) and its cancellation is asked for through the catalog too: the
//! instance running a job watches for the request. A server that stops cancels its jobs
//! and waits for them to record their outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::future::Future;

use lakecdp_app::{App, Event, Observer, StartedExport, StartedRefresh};
use lakecdp_core::RunId;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often a job looks for a cancel request in the catalog.
const CANCEL_POLL: Duration = Duration::from_millis(300);

/// Progress events are stored at most this often per job.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// The jobs this instance runs.
#[derive(Clone, Default)]
pub struct Jobs {
    running: Arc<Mutex<HashMap<RunId, CancellationToken>>>,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("running", &self.tracker.len())
            .finish()
    }
}

/// Writes a job's events to the catalog, in order, from a task of its own.
struct CatalogObserver {
    tx: Mutex<Option<mpsc::UnboundedSender<serde_json::Value>>>,
    last_progress: Mutex<Option<Instant>>,
}

impl Observer for CatalogObserver {
    fn event(&self, event: &Event) {
        if event.is_progress() {
            let Ok(mut last) = self.last_progress.lock() else {
                return;
            };
            if last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.send(event.to_json());
    }
}

impl CatalogObserver {
    fn send(&self, value: serde_json::Value) {
        if let Ok(tx) = self.tx.lock() {
            if let Some(tx) = tx.as_ref() {
                let _ = tx.send(value);
            }
        }
    }

    fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
    }
}

impl Jobs {
    /// Run a started refresh in the background; its run id is known at once.
    pub fn spawn_refresh(&self, app: App, started: StartedRefresh) -> RunId {
        let run = started.run_id().clone();
        let id = run.clone();
        self.spawn(app, run, move |cancel, observer| async move {
            match started.run(cancel, observer).await {
                Ok(report) => json!({"type": "finished", "run": report.run,
                    "status": report.status.as_str(), "processes": report.processes}),
                Err(e) => json!({"type": "finished", "run": id, "status": "Failed",
                    "error": e.full_message()}),
            }
        })
    }

    /// Run a started export in the background; its run id is known at once.
    pub fn spawn_export(&self, app: App, started: StartedExport) -> RunId {
        let run = started.run_id().clone();
        let id = run.clone();
        self.spawn(app, run, move |cancel, observer| async move {
            match started.run(&cancel, observer.as_ref()).await {
                Ok(record) => json!({"type": "finished", "run": record.id,
                    "status": record.status.as_str(), "rows": record.rows,
                    "error": record.error}),
                Err(e) => json!({"type": "finished", "run": id, "status": "Failed",
                    "error": e.full_message()}),
            }
        })
    }

    /// Run `work` as the job of `run`: its events go to the catalog, a cancel request
    /// from any instance fires its token, and the event it returns closes its stream.
    fn spawn<F, Fut>(&self, app: App, run: RunId, work: F) -> RunId
    where
        F: FnOnce(CancellationToken, Arc<dyn Observer>) -> Fut + Send + 'static,
        Fut: Future<Output = serde_json::Value> + Send + 'static,
    {
        let cancel = CancellationToken::new();
        if let Ok(mut running) = self.running.lock() {
            running.insert(run.clone(), cancel.clone());
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<serde_json::Value>();
        let observer = Arc::new(CatalogObserver {
            tx: Mutex::new(Some(tx)),
            last_progress: Mutex::new(None),
        });
        // the writer: one catalog append per event, in order
        let writer = {
            let app = app.clone();
            let run = run.clone();
            self.tracker.spawn(async move {
                while let Some(value) = rx.recv().await {
                    let body = value.to_string();
                    if let Err(e) = app
                        .catalog()
                        .append_run_event(&run, chrono::Utc::now(), &body)
                        .await
                    {
                        tracing::warn!(run = %run, error = %e, "a run event could not be stored");
                    }
                }
            })
        };
        // the watcher: a cancel request in the catalog, from any instance
        let watcher = {
            let app = app.clone();
            let run = run.clone();
            let cancel = cancel.clone();
            self.tracker.spawn(async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(CANCEL_POLL) => {}
                    }
                    if let Ok(true) = app.catalog().cancel_requested(&run).await {
                        cancel.cancel();
                        return;
                    }
                }
            })
        };
        let running = Arc::clone(&self.running);
        let job_run = run.clone();
        self.tracker.spawn(async move {
            let last = work(cancel.clone(), observer.clone() as Arc<dyn Observer>).await;
            observer.send(last);
            observer.close();
            // the watcher stops with the token; the writer once every event is stored
            cancel.cancel();
            let _ = watcher.await;
            let _ = writer.await;
            if let Ok(mut running) = running.lock() {
                running.remove(&job_run);
            }
        });
        run
    }

    /// Whether this instance runs `run`.
    pub fn runs(&self, run: &RunId) -> bool {
        self.running
            .lock()
            .map(|r| r.contains_key(run))
            .unwrap_or(false)
    }

    /// Cancel every job (the server is stopping) and wait up to `timeout` for them to
    /// record their outcome; false when some did not finish in time.
    pub async fn shut_down(&self, timeout: Duration) -> bool {
        if let Ok(running) = self.running.lock() {
            for token in running.values() {
                token.cancel();
            }
        }
        self.tracker.close();
        tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// The answer to a request that started a job: 202 with the run id, where to follow it
/// (`Location`) and its event stream.
pub(crate) fn accepted(run: &RunId) -> axum::response::Response {
    use axum::response::IntoResponse;
    let location = format!("/api/runs/{run}");
    let mut response = (
        axum::http::StatusCode::ACCEPTED,
        axum::Json(json!({"run": run, "events": format!("{location}/events")})),
    )
        .into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&location) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, v);
    }
    response
}
