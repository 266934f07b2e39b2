//! The system refresh: every process of the project in dependency order
//! (`lakecdp_engine::graph`): each source's ingestion, unification, report data,
//! activities, measures, segments and the exports scheduled on refresh.
//!
//! Guarantees:
//! - One refresh of an environment at a time: a lease in the lake refuses a second one
//!   with [`ErrorKind::Conflict`](crate::ErrorKind::Conflict), whichever machine starts
//!   it. The lease is renewed while the refresh runs ([`Lease::keep_alive`]); if another
//!   holder takes it over, the refresh cancels itself. A refresh whose process died on
//!   this machine (killed, crashed) does not hold the next one off: its lease is taken
//!   over at once, and the take-over is reported as a notice.
//! - A failure skips only what depends on it. A cancel (the token) stops the running
//!   process before it publishes; what was published before stays published.
//! - The refresh and each process are runs in the catalog, each recorded final as soon
//!   as it ends. A refresh whose final record could not be written, or whose process
//!   died, is found still Running by the next refresh (which then holds the lease, so
//!   nothing else can be running) and recorded as Failed with the reason.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lakecdp_catalog::Catalog;
use lakecdp_core::{
    EngineChoice, Environment, ExportSchedule, Operation, Process, ProjectFile, RunId, RunRecord,
    RunStatus, SourceSpec, Watermark,
};
use lakecdp_engine::graph::{Graph, Node, Outcome};
use lakecdp_engine::ingest::{ingest_source, IngestCluster, IngestOptions};
use lakecdp_engine::unify::{unify, UnifyCluster, UnifyOptions};
use lakecdp_lake::lease::Lease;
use lakecdp_lake::Lake;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::app::{Actor, App};
use crate::error::{Error, Result, ResultExt};
use crate::observe::{Event, LoadEvents, Observer, ProcessOutcome};

/// How long a refresh lease lives unless renewed; it is renewed every third of that.
const LEASE_TTL: Duration = Duration::from_secs(10 * 60);

/// What to refresh.
#[derive(Debug, Clone, Default)]
pub struct RefreshRequest {
    /// The environment; the project file's when `None`.
    pub environment: Option<String>,
    /// Only this process and what depends on it: a process id, or `ingest` for every
    /// source's ingestion.
    pub only: Option<String>,
    /// Only this source's ingestion and what depends on it.
    pub source: Option<String>,
    /// Reload sources even when unchanged.
    pub force: bool,
    /// Load incremental sources in full.
    pub full: bool,
    /// Apply incremental hour folders from this time on.
    pub from: Option<DateTime<Utc>>,
    /// Match every record in unification, even when only some changed.
    pub full_unify: bool,
}

/// The processes a refresh would run.
#[derive(Debug, Clone)]
pub struct RefreshPlan {
    /// The environment.
    pub environment: Environment,
    /// The project it runs: the applied revision's.
    pub project: ProjectFile,
    /// The applied revision it runs.
    pub revision: u32,
    /// Where the revision's relative paths resolve.
    pub base_dir: std::path::PathBuf,
    /// Set when the file on disk differs from the applied revision, or was just adopted.
    pub notice: Option<String>,
    /// The graph, in run order.
    graph: Graph,
}

impl RefreshPlan {
    /// The processes in run order, each with what it depends on.
    pub fn processes(&self) -> Vec<(Process, Vec<Process>)> {
        self.graph
            .nodes()
            .iter()
            .filter_map(|n| {
                let p = n.name.parse().ok()?;
                let deps = n.depends_on.iter().filter_map(|d| d.parse().ok()).collect();
                Some((p, deps))
            })
            .collect()
    }
}

/// What a refresh did.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshReport {
    /// The refresh's run.
    pub run: RunId,
    /// The environment's name.
    pub environment: String,
    /// Succeeded, Failed or Canceled.
    pub status: RunStatus,
    /// Every process, in run order.
    pub processes: Vec<ProcessOutcome>,
}

impl RefreshReport {
    /// Processes in `status`.
    pub fn count(&self, status: RunStatus) -> usize {
        self.processes.iter().filter(|p| p.status == status).count()
    }

    /// The first failed or canceled process, with its reason.
    pub fn first_problem(&self) -> Option<&ProcessOutcome> {
        self.processes
            .iter()
            .find(|o| o.status == RunStatus::Failed)
            .or_else(|| {
                self.processes
                    .iter()
                    .find(|o| o.status == RunStatus::Canceled)
            })
    }
}

/// The processes of a project and what each depends on.
pub fn processes(project: &ProjectFile, exports: &[lakecdp_core::Export]) -> Vec<Node> {
    let node = |p: &Process, deps: &[Process]| {
        let mut depends_on: Vec<String> = deps.iter().map(Process::to_string).collect();
        depends_on.sort();
        depends_on.dedup();
        Node {
            name: p.to_string(),
            depends_on,
        }
    };
    let ingest = |s: &str| Process::Ingestion(s.to_string());
    let mut nodes: Vec<Node> = project
        .sources
        .iter()
        .map(|s| node(&ingest(&s.name), &[]))
        .collect();
    let mut have: Vec<Process> = Vec::new();
    if let Some(u) = &project.unification {
        let deps: Vec<Process> = u.tables.iter().map(|t| ingest(&t.source)).collect();
        nodes.push(node(&Process::Unification, &deps));
        nodes.push(node(&Process::Reports, &[Process::Unification]));
        have.push(Process::Unification);
        if !project.activities.is_empty() {
            let mut deps: Vec<Process> = project
                .activities
                .iter()
                .map(|a| ingest(&a.source))
                .collect();
            deps.push(Process::Unification);
            nodes.push(node(&Process::Activities, &deps));
            have.push(Process::Activities);
        }
        if !project.measures.is_empty() {
            let deps: Vec<Process> = [Process::Unification, Process::Activities]
                .into_iter()
                .filter(|d| have.contains(d))
                .collect();
            nodes.push(node(&Process::Measures, &deps));
            have.push(Process::Measures);
        }
        if !project.segments.is_empty() {
            let deps: Vec<Process> = [Process::Unification, Process::Activities, Process::Measures]
                .into_iter()
                .filter(|d| have.contains(d))
                .collect();
            nodes.push(node(&Process::Segments, &deps));
        }
    }
    let known: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    for e in exports {
        let deps: Vec<Process> = e
            .tables
            .iter()
            .filter_map(|t| Process::from_folder(t.rsplit_once('/')?.0))
            .filter(|d| known.contains(&d.to_string()))
            .collect();
        nodes.push(node(&Process::Export(e.name.clone()), &deps));
    }
    nodes
}

impl App {
    /// The processes a refresh of `request` would run; `None` when the project declares
    /// nothing to run. Needs RunRefresh.
    pub async fn plan_refresh(
        &self,
        actor: &Actor,
        request: &RefreshRequest,
    ) -> Result<Option<RefreshPlan>> {
        let env = self
            .environment_for(actor, request.environment.as_deref(), Operation::RunRefresh)
            .await?;
        let applied = self.applied(actor, &env).await?;
        let project = applied.project;
        let exports: Vec<lakecdp_core::Export> = self
            .catalog()
            .list_exports(env.id)
            .await?
            .into_iter()
            .filter(|e| e.schedule == ExportSchedule::OnRefresh)
            .collect();
        let all = Graph::new(processes(&project, &exports)).map_err(Error::from)?;
        let roots: Vec<String> = match (&request.only, &request.source) {
            (_, Some(source)) => {
                let s = project
                    .sources
                    .iter()
                    .find(|s| s.name.eq_ignore_ascii_case(source))
                    .ok_or_else(|| {
                        Error::not_found(format!(
                            "no source `{source}` in the applied revision {} of {}",
                            applied.revision.number,
                            self.project_file().display()
                        ))
                    })?;
                vec![Process::Ingestion(s.name.clone()).to_string()]
            }
            (Some(only), None) if only == "ingest" => project
                .sources
                .iter()
                .map(|s| Process::Ingestion(s.name.clone()).to_string())
                .collect(),
            (Some(only), None) => {
                let p: Process = only.parse().map_err(Error::invalid)?;
                if p == Process::Unification && project.unification.is_none() {
                    return Err(Error::invalid(format!(
                        "{} declares no [unification]: add the tables that become customer profiles",
                        self.project_file().display()
                    )));
                }
                vec![p.to_string()]
            }
            (None, None) => Vec::new(),
        };
        let graph = if roots.is_empty() {
            all
        } else {
            all.only_many(&roots)
                .map_err(|e| Error::invalid(e.to_string()))?
        };
        if graph.nodes().is_empty() {
            return Ok(None);
        }
        self.check_project_files(&project, std::path::Path::new(&applied.revision.base_dir))?;
        Ok(Some(RefreshPlan {
            environment: env,
            project,
            revision: applied.revision.number,
            base_dir: applied.revision.base_dir.into(),
            notice: applied.notice,
            graph,
        }))
    }

    /// Run a refresh until it ends or `cancel` fires, reporting to `observer`.
    ///
    /// Returns its report whatever its processes did (look at its status); an error
    /// means it could not run at all (denied, invalid, another refresh holds the lease,
    /// the catalog or the lake unreachable). Needs RunRefresh.
    pub async fn refresh(
        &self,
        actor: &Actor,
        request: &RefreshRequest,
        cancel: CancellationToken,
        observer: Arc<dyn Observer>,
    ) -> Result<RefreshReport> {
        let plan = self.plan_refresh(actor, request).await?.ok_or_else(|| {
            Error::invalid(format!(
                "nothing to refresh: {} declares no sources",
                self.project_file().display()
            ))
        })?;
        self.run_plan(actor, request, &plan, cancel, observer).await
    }

    /// Run a planned refresh (see [`App::refresh`]).
    pub async fn run_plan(
        &self,
        actor: &Actor,
        request: &RefreshRequest,
        plan: &RefreshPlan,
        cancel: CancellationToken,
        observer: Arc<dyn Observer>,
    ) -> Result<RefreshReport> {
        self.start_refresh(actor, request, plan, observer.as_ref())
            .await?
            .run(cancel, observer)
            .await
    }

    /// Take the environment's refresh lease and record the refresh as Running, without
    /// running it yet: a server answers with the run's id (or a conflict when another
    /// refresh holds the lease) before it moves the refresh into a background task.
    /// Needs RunRefresh.
    pub async fn start_refresh(
        &self,
        actor: &Actor,
        request: &RefreshRequest,
        plan: &RefreshPlan,
        observer: &dyn Observer,
    ) -> Result<StartedRefresh> {
        // the environment as stored, not as the plan's (changeable) copy describes it
        let env = self.stored_environment(&plan.environment).await?;
        let acting = self.acting(actor, &env);
        acting.require(&env, Operation::RunRefresh).await?;
        let lake = self.lake(&env).await?;

        if let Some(notice) = &plan.notice {
            observer.event(&Event::Notice(notice.clone()));
        }
        // one refresh of an environment at a time
        let mut refresh = RunRecord::start(env.id, "refresh");
        refresh.revision = Some(plan.revision);
        let holder = format!("refresh by {} (run {})", acting.principal(), refresh.id);
        let what = format!("the refresh of environment `{}`", env.name);
        let lease = Lease::acquire(&lake, "refresh", &what, &holder, LEASE_TTL).await?;
        if let Some(previous) = &lease.info().took_over {
            observer.event(&Event::Notice(format!(
                "took the refresh lease over from {previous}"
            )));
        }
        let lease = lease.keep_alive();
        // what this refresh publishes is refused once another holder takes the lease over
        let lake = lake.fenced(lease.fence());
        // holding the lease, no other refresh runs: one still Running died
        if let Err(e) = self.close_interrupted(&env).await {
            observer.event(&Event::Warning(format!(
                "interrupted refreshes could not be closed: {e}"
            )));
        }
        if let Err(e) = self.catalog().record_run(&refresh).await {
            let _ = lease.release().await;
            return Err(e.into());
        }
        Ok(StartedRefresh {
            app: self.clone(),
            actor: actor.clone(),
            request: request.clone(),
            plan: plan.clone(),
            env,
            lake,
            refresh,
            lease,
        })
    }

    /// Record as Failed the refreshes of `env` (and their processes) still Running.
    async fn close_interrupted(&self, env: &Environment) -> Result<usize> {
        let catalog = self.catalog();
        let mut closed = 0;
        for run in catalog.list_runs(env.id, 1000).await? {
            if run.process != "refresh" || run.status.is_final() {
                continue;
            }
            for mut child in catalog.child_runs(&run.id).await? {
                if !child.status.is_final() {
                    child.status = RunStatus::Failed;
                    child.finished_at = Some(Utc::now());
                    child.error =
                        Some("interrupted: its refresh ended without recording it".into());
                    catalog.update_run(&child).await?;
                }
            }
            let mut run = run;
            run.status = RunStatus::Failed;
            run.finished_at = Some(Utc::now());
            run.error = Some(
                "interrupted: its process ended before recording the outcome (found by the next refresh)"
                    .into(),
            );
            catalog.update_run(&run).await?;
            closed += 1;
        }
        Ok(closed)
    }
}

/// A refresh holding its environment's lease, its run recorded as Running; made by
/// [`App::start_refresh`], run by [`StartedRefresh::run`]. Dropped without running, its
/// lease expires and the next refresh records it as interrupted.
pub struct StartedRefresh {
    app: App,
    actor: Actor,
    request: RefreshRequest,
    plan: RefreshPlan,
    env: Environment,
    lake: Lake,
    refresh: RunRecord,
    lease: lakecdp_lake::lease::KeepAlive,
}

impl std::fmt::Debug for StartedRefresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedRefresh")
            .field("run", &self.refresh.id)
            .field("environment", &self.env.name)
            .finish_non_exhaustive()
    }
}

impl StartedRefresh {
    /// The refresh's run id.
    pub fn run_id(&self) -> &RunId {
        &self.refresh.id
    }

    /// The environment it refreshes.
    pub fn environment(&self) -> &Environment {
        &self.env
    }

    /// Run it until it ends or `cancel` fires, reporting to `observer`; the lease is
    /// released and the refresh gets its final status whatever happens.
    pub async fn run(
        self,
        cancel: CancellationToken,
        observer: Arc<dyn Observer>,
    ) -> Result<RefreshReport> {
        let StartedRefresh {
            app,
            actor,
            request,
            plan,
            env,
            lake,
            mut refresh,
            lease,
        } = self;
        let steps = Steps {
            app: &app,
            actor: &actor,
            request: &request,
            project: &plan.project,
            base_dir: &plan.base_dir,
            env: &env,
            lake: &lake,
            observer: Arc::clone(&observer),
            revision: plan.revision,
            local_tables: Default::default(),
        };
        {
            // tables a cluster session computed for itself, left by a process that ended
            // before it could remove them (none on the local engine, which keeps them in
            // memory; the environment may have run on a cluster before)
            match lakecdp_engine::Session::clear_scratch(&lake).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(files = n, "old scratch files removed"),
                Err(e) => tracing::warn!(error = %e, "old scratch files could not be removed"),
            }
        }
        let lost = async {
            let why = lease.lost().await;
            observer.event(&Event::Canceling(why));
        };
        let canceled = async {
            cancel.cancelled().await;
            observer.event(&Event::Canceling(
                "the running process stops and publishes nothing".into(),
            ));
        };
        let stop = async {
            tokio::select! {
                _ = lost => {},
                _ = canceled => {},
            }
        };
        let result = run_graph(&steps, &plan.graph, &mut refresh, stop).await;
        if let Err(e) = lease.release().await {
            observer.event(&Event::Warning(format!(
                "the refresh lease could not be released: {e}"
            )));
        }
        let outcomes = match result {
            Ok(o) => o,
            Err(e) => {
                if !refresh.status.is_final() {
                    refresh.status = RunStatus::Failed;
                    refresh.finished_at = Some(Utc::now());
                    refresh.error = Some(e.full_message());
                    let _ = final_update(app.catalog(), &refresh).await;
                }
                return Err(e);
            }
        };
        Ok(RefreshReport {
            run: refresh.id.clone(),
            environment: env.name.clone(),
            status: refresh.status,
            processes: outcomes,
        })
    }
}

/// Update a run record, retrying a few times: a final status lost to a brief failure
/// would leave the run Running.
async fn final_update(catalog: &dyn Catalog, run: &RunRecord) -> Result<()> {
    let mut wait = Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        match catalog.update_run(run).await {
            Ok(()) => return Ok(()),
            Err(lakecdp_catalog::Error::NotFound { .. }) => {
                return Ok(catalog.record_run(run).await?)
            }
            Err(e) if attempt >= 3 => return Err(e.into()),
            Err(e) => {
                tracing::warn!(run = %run.id, error = %e, "the run could not be updated; retrying");
                tokio::time::sleep(wait).await;
                wait *= 4;
                attempt += 1;
            }
        }
    }
}

/// Run the graph of one refresh, recording the refresh and each process.
async fn run_graph(
    steps: &Steps<'_>,
    graph: &Graph,
    refresh: &mut RunRecord,
    cancel: impl std::future::Future<Output = ()>,
) -> Result<Vec<ProcessOutcome>> {
    let catalog = steps.app.catalog();
    steps.observer.event(&Event::RefreshStarted {
        run: refresh.id.clone(),
        environment: steps.env.name.clone(),
        processes: graph
            .nodes()
            .iter()
            .filter_map(|n| n.name.parse().ok())
            .collect(),
    });
    let records: Arc<Mutex<BTreeMap<String, RunRecord>>> = Arc::default();
    let outcomes = graph
        .run(
            |name: &str| {
                let name = name.to_string();
                let records = Arc::clone(&records);
                let parent = refresh.clone();
                async move {
                    let mut record = RunRecord::child(&parent, name.clone());
                    // known before it is stored: a cancel in between still finds it
                    if let Ok(mut m) = records.lock() {
                        m.insert(name.clone(), record.clone());
                    }
                    if let Err(e) = catalog.record_run(&record).await {
                        return Err(format!("the run could not be recorded: {e}"));
                    }
                    let result = match name.parse::<Process>() {
                        Ok(p) => steps.run(&p).await.map_err(|e| e.full_message()),
                        Err(e) => Err(e),
                    };
                    // final as soon as it ends, with its own time
                    record.finished_at = Some(Utc::now());
                    match &result {
                        Ok(rows) => {
                            record.status = RunStatus::Succeeded;
                            record.rows = *rows;
                        }
                        Err(e) => {
                            record.status = RunStatus::Failed;
                            record.error = Some(e.clone());
                        }
                    }
                    if final_update(catalog, &record).await.is_ok() {
                        if let Ok(mut m) = records.lock() {
                            m.remove(&name);
                        }
                    }
                    result
                }
            },
            cancel,
            |name| {
                if let Ok(p) = name.parse() {
                    steps.observer.event(&Event::ProcessStarted(p));
                }
            },
            |o| {
                if let Some(o) = outcome_of(o, steps) {
                    steps.observer.event(&Event::ProcessFinished(o));
                }
            },
        )
        .await;

    // the processes not recorded as ended yet: canceled while running, skipped, or
    // canceled before they started
    let open: BTreeMap<String, RunRecord> = records.lock().map(|m| m.clone()).unwrap_or_default();
    for o in &outcomes {
        let started = open.get(&o.name);
        if started.is_none() && matches!(o.status, RunStatus::Succeeded | RunStatus::Failed) {
            continue; // it ran and recorded its end itself
        }
        let mut record = started
            .cloned()
            .unwrap_or_else(|| RunRecord::child(refresh, o.name.clone()));
        record.status = o.status;
        record.finished_at =
            Some(record.started_at + chrono::Duration::from_std(o.elapsed).unwrap_or_default());
        record.rows = o.rows;
        record.error = o.reason.clone();
        final_update(catalog, &record).await?;
    }
    let count = |s: RunStatus| outcomes.iter().filter(|o| o.status == s).count();
    let (failed, skipped) = (count(RunStatus::Failed), count(RunStatus::Skipped));
    let canceled = count(RunStatus::Canceled) > 0;
    refresh.finished_at = Some(Utc::now());
    refresh.status = if canceled {
        RunStatus::Canceled
    } else if failed > 0 {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    if failed + skipped > 0 || canceled {
        refresh.error = Some(format!("{failed} failed, {skipped} skipped"));
    }
    final_update(catalog, refresh).await?;
    Ok(outcomes
        .iter()
        .filter_map(|o| outcome_of(o, steps))
        .collect())
}

fn outcome_of(o: &Outcome, steps: &Steps<'_>) -> Option<ProcessOutcome> {
    let process: Process = o.name.parse().ok()?;
    let local = match &process {
        Process::Ingestion(source) => steps
            .local_tables
            .lock()
            .ok()
            .and_then(|m| m.get(source).cloned())
            .unwrap_or_default(),
        Process::Unification => steps
            .local_tables
            .lock()
            .ok()
            .and_then(|m| m.get(UNIFY_KEY).cloned())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Some(ProcessOutcome {
        ran_on: ran_on(steps.engine(), &process, &local),
        process,
        status: o.status,
        rows: o.rows,
        reason: o.reason.clone(),
        elapsed: o.elapsed,
    })
}

/// End a session, removing what it computed for itself from the lake; a failure to is a
/// warning (the next refresh removes it).
async fn close(session: lakecdp_engine::Session) {
    if let Err(e) = session.close().await {
        tracing::warn!(error = %e, "a session's scratch files were not removed");
    }
}

/// Where `process` runs on `engine`, as the run summary says it; `local` names the tables
/// of a source that were loaded in this process, with why.
fn ran_on(engine: &EngineChoice, process: &Process, local: &[String]) -> String {
    let cluster = match engine {
        EngineChoice::BallistaStandalone => "ballista (standalone)".to_string(),
        EngineChoice::Ballista { scheduler, .. } => format!("ballista ({scheduler})"),
        _ => return "local".into(),
    };
    match process {
        // the rules' candidate pairs on the cluster; the models, clustering, ids and the
        // merge here (an incremental run looks its pairs up in its stored blocks, here)
        Process::Unification if local.first().is_some_and(|i| i == "true") => {
            "local: an incremental run looks its pairs up in its stored blocks".into()
        }
        Process::Unification => {
            format!("{cluster}: rule pairs; local: models, clusters, ids, merge")
        }
        Process::Ingestion(_) if !local.is_empty() => {
            format!("{cluster}; local: {}", local.join(", "))
        }
        _ => cluster,
    }
}

/// Where the refresh notes what its unification did (beside the sources' tables).
const UNIFY_KEY: &str = "\u{0}unify";

/// What the processes of one refresh need.
struct Steps<'a> {
    app: &'a App,
    actor: &'a Actor,
    request: &'a RefreshRequest,
    project: &'a ProjectFile,
    base_dir: &'a std::path::Path,
    env: &'a Environment,
    lake: &'a Lake,
    observer: Arc<dyn Observer>,
    /// The project revision the refresh runs.
    revision: u32,
    /// Per source loaded on a cluster, the tables that were loaded here instead, and why.
    local_tables: std::sync::Mutex<HashMap<String, Vec<String>>>,
}

impl Steps<'_> {
    fn engine(&self) -> &EngineChoice {
        &self.project.environment.engine
    }

    /// The cluster the environment's engine names (`None`: this process's standalone
    /// one), and how many tasks a table's load or a rule's pair finding is cut into;
    /// `None` on the local engine.
    fn cluster(&self) -> Option<(Option<String>, usize, bool)> {
        match self.engine() {
            // standalone: one task per core of this machine, at least two, reading its
            // folders
            EngineChoice::BallistaStandalone => Some((
                None,
                std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
                true,
            )),
            EngineChoice::Ballista {
                scheduler,
                tasks,
                shared_files,
            } => Some((
                Some(scheduler.clone()),
                usize::from(tasks.unwrap_or(lakecdp_core::project::DEFAULT_CLUSTER_TASKS)),
                *shared_files,
            )),
            _ => None,
        }
    }

    /// Keep what a published run did beside it in the lake; its output stands even when
    /// the report cannot be kept, which is then a warning.
    async fn keep_report(&self, process: &Process, run: &RunId, report: serde_json::Value) {
        if let Err(e) =
            lakecdp_lake::publish::attach_run_report(self.lake, process, run, report).await
        {
            self.observer.event(&Event::Warning(format!(
                "the report of run {run} of {process} could not be kept in the lake: {e}"
            )));
        }
    }

    /// Run one process; the rows it wrote, when it says.
    async fn run(&self, process: &Process) -> Result<Option<u64>> {
        let now = Utc::now();
        let retention = self.env.retention_runs;
        let no_unification = || Error::invalid("the project declares no [unification]");
        match process {
            Process::Ingestion(source) => {
                let spec = self
                    .project
                    .sources
                    .iter()
                    .find(|s| &s.name == source)
                    .ok_or_else(|| Error::not_found(format!("no source `{source}`")))?;
                self.ingest(spec).await
            }
            Process::Export(name) => {
                let rows = self
                    .app
                    .run_export_in_refresh(
                        self.actor,
                        self.env,
                        self.lake,
                        self.engine().clone(),
                        name,
                        self.observer.as_ref(),
                    )
                    .await?;
                Ok(Some(rows))
            }
            Process::Unification => {
                let spec = self
                    .project
                    .unification
                    .as_ref()
                    .ok_or_else(no_unification)?;
                self.observer.event(&Event::Unifying {
                    tables: spec.tables.len(),
                });
                let options = UnifyOptions {
                    retention,
                    full: self.request.full_unify,
                    cluster: self
                        .cluster()
                        .map(|(scheduler, tasks, _)| UnifyCluster { scheduler, tasks }),
                    ..UnifyOptions::default()
                };
                let report = unify(self.lake, &self.project.sources, spec, &options).await?;
                if let Ok(mut m) = self.local_tables.lock() {
                    // an incremental run looks its pairs up here, in the stored blocks
                    let here = report.rules_on_cluster == 0;
                    m.insert(UNIFY_KEY.into(), vec![here.to_string()]);
                }
                let profiles = report.profiles as u64;
                if let Some(run) = &report.run_id {
                    let json = crate::observe::unify_report_json(&report);
                    self.keep_report(&Process::Unification, run, json).await;
                }
                self.observer.event(&Event::Unified(Arc::new(report)));
                Ok(Some(profiles))
            }
            Process::Activities => {
                let session = self.app.session(self.lake, self.engine(), false).await?;
                let r = lakecdp_engine::activities::run(
                    &session,
                    &self.project.sources,
                    &self.project.activities,
                    retention,
                )
                .await?;
                let rows = r.linked();
                self.observer.event(&Event::Activities(Arc::new(r)));
                Ok(Some(rows))
            }
            Process::Reports => {
                let spec = self
                    .project
                    .unification
                    .as_ref()
                    .ok_or_else(no_unification)?;
                let session = self.app.session(self.lake, self.engine(), false).await?;
                let r = lakecdp_engine::reports::run(&session, spec, now, retention).await?;
                let rows = r.profiles;
                self.observer.event(&Event::Reports(Arc::new(r)));
                Ok(Some(rows))
            }
            Process::Measures => {
                let session = self.app.session(self.lake, self.engine(), true).await?;
                let r =
                    lakecdp_engine::measures::run(&session, &self.project.measures, now, retention)
                        .await;
                close(session).await;
                let r = r?;
                let rows = r.measures.iter().map(|m| m.rows).sum();
                self.observer.event(&Event::Measures(Arc::new(r)));
                Ok(Some(rows))
            }
            Process::Segments => {
                let session = self.app.session(self.lake, self.engine(), true).await?;
                let r =
                    lakecdp_engine::segments::run(&session, &self.project.segments, now, retention)
                        .await;
                close(session).await;
                let r = r?;
                let rows = r.membership_rows;
                self.observer.event(&Event::Segments(Arc::new(r)));
                Ok(Some(rows))
            }
        }
    }

    /// Load one source; the rows it wrote (none when it was unchanged).
    async fn ingest(&self, source: &SourceSpec) -> Result<Option<u64>> {
        let catalog = self.app.catalog();
        let env = self.env;
        let stored = catalog.watermarks(env.id, &source.name).await?;
        let applied_at = stored
            .iter()
            .map(|w| (w.table.clone(), w.updated_at))
            .collect();
        let watermarks = stored.into_iter().map(|w| (w.table, w.hour)).collect();
        // what this load applies is what the listing shows from now on: a file written
        // after this moment into an hour it applies is late for the next load
        let listed_at = Utc::now();
        let options = IngestOptions {
            retention: env.retention_runs,
            force: self.request.force,
            progress: Arc::new(LoadEvents(Arc::clone(&self.observer))),
            full: self.request.full,
            incremental_from: self.request.from,
            watermarks,
            applied_at,
            cluster: self
                .cluster()
                .map(|(scheduler, tasks, local_files)| IngestCluster {
                    scheduler,
                    revision: Some(self.revision),
                    tasks,
                    local_files,
                }),
            ..IngestOptions::default()
        };
        let report = match ingest_source(self.lake, source, self.base_dir, &options).await {
            Ok(r) => r,
            Err(e) => {
                self.observer.event(&Event::IngestFailed {
                    source: source.name.clone(),
                    message: e.to_string(),
                });
                return Err(Error::from(e))
                    .context(format!("source `{}` was not loaded", source.name));
            }
        };
        let unchanged = report.unchanged;
        let local: Vec<String> = report
            .tables
            .iter()
            .filter_map(|t| t.local.as_ref().map(|why| format!("{} ({why})", t.table)))
            .collect();
        if let Ok(mut m) = self.local_tables.lock() {
            m.insert(source.name.clone(), local);
        }
        let written = report.tables.iter().map(|t| t.written).sum();
        for t in &report.tables {
            let late = t.incremental.as_ref().map_or(&[][..], |i| &i.late[..]);
            if !late.is_empty() {
                let shown: Vec<&str> = late.iter().take(5).map(String::as_str).collect();
                self.observer.event(&Event::Warning(format!(
                    "table `{}.{}`: {} file(s) were written into hour folders already applied and were not loaded ({}{}); run `lakecdp refresh --full` (or `--full --from HOUR`) to load them",
                    source.name,
                    t.table,
                    late.len(),
                    shown.join(", "),
                    if late.len() > shown.len() { ", ..." } else { "" }
                )));
            }
            if let Some(hour) = t.incremental.as_ref().and_then(|i| i.watermark) {
                // the output is published: record what it applied (a lost write only
                // makes the next load apply these hours again, which changes nothing)
                catalog
                    .set_watermark(&Watermark {
                        environment_id: env.id,
                        source: source.name.clone(),
                        table: t.table.clone(),
                        hour,
                        updated_at: listed_at,
                    })
                    .await?;
            }
        }
        if !unchanged {
            self.keep_report(
                &Process::Ingestion(source.name.clone()),
                &report.run_id,
                crate::observe::source_report_json(&report),
            )
            .await;
        }
        self.observer.event(&Event::Ingested {
            source: source.name.clone(),
            report: Arc::new(report),
        });
        Ok(if unchanged { None } else { Some(written) })
    }
}
