//! `refresh`: the system refresh. Every process of the project runs in dependency order
//! (`lakecdp_engine::graph`): each source's ingestion, unification, activities, and the
//! exports scheduled on refresh. A failure skips only what depends on it; Ctrl-C cancels
//! the running process without publishing it; a lease in the lake refuses a second
//! concurrent refresh of the environment. The refresh and each process are runs in the
//! catalog (`lakecdp runs show ID`).

use chrono::Utc;
use lakecdp_catalog::Catalog;
use lakecdp_core::{RunRecord, RunStatus, SourceSpec, Watermark};
use lakecdp_engine::ingest::{
    ingest_source, Base, IncrementalReport, IngestOptions, SourceReport, TableReport,
};
use lakecdp_lake::{Lake, Process};

use lakecdp_catalog::SqliteCatalog;
use lakecdp_core::{Environment, ProjectFile, UnificationSpec};
use lakecdp_engine::unify::{unify, UnifyOptions, UnifyReport};
use lakecdp_match::ids::ChangeReason;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lakecdp_catalog::Acting;
use lakecdp_core::{ExportSchedule, Operation};
use lakecdp_engine::graph::{Graph, Node, Outcome};
use lakecdp_engine::{EngineKind, Session};
use lakecdp_lake::lease::{Lease, LeaseError};

use crate::args::RefreshArgs;
use crate::context::Context;
use crate::output;
use crate::UserError;

/// The refresh-graph node of the process that writes a folder.
fn process_node(p: &Process) -> String {
    match p {
        Process::Ingestion(source) => format!("ingest:{source}"),
        Process::Unification => "unify".into(),
        Process::Activities => "activities".into(),
        Process::Measures => "measures".into(),
        Process::Segments => "segments".into(),
        Process::Reports => "reports".into(),
        Process::Export(name) => format!("export:{name}"),
    }
}

/// How long a refresh lease lives unless renewed; it is renewed every third of that.
const LEASE_TTL: Duration = Duration::from_secs(10 * 60);

/// The processes of the project and what each depends on.
fn processes(project: &ProjectFile, exports: &[lakecdp_core::Export]) -> Vec<Node> {
    let mut nodes: Vec<Node> = project
        .sources
        .iter()
        .map(|s| Node::new(format!("ingest:{}", s.name), &[]))
        .collect();
    let ingest_of = |source: &str| format!("ingest:{source}");
    let mut have: Vec<&str> = Vec::new();
    if let Some(u) = &project.unification {
        let mut deps: Vec<String> = u.tables.iter().map(|t| ingest_of(&t.source)).collect();
        deps.sort();
        deps.dedup();
        nodes.push(Node {
            name: "unify".into(),
            depends_on: deps,
        });
        have.push("unify");
        nodes.push(Node::new("reports", &["unify"]));
    }
    if !project.activities.is_empty() && project.unification.is_some() {
        let mut deps: Vec<String> = project
            .activities
            .iter()
            .map(|a| ingest_of(&a.source))
            .collect();
        deps.push("unify".into());
        deps.sort();
        deps.dedup();
        nodes.push(Node {
            name: "activities".into(),
            depends_on: deps,
        });
        have.push("activities");
    }
    if !project.measures.is_empty() && project.unification.is_some() {
        let deps: Vec<&str> = ["unify", "activities"]
            .into_iter()
            .filter(|d| *d == "unify" || have.contains(d))
            .collect();
        nodes.push(Node::new("measures", &deps));
        have.push("measures");
    }
    if !project.segments.is_empty() && project.unification.is_some() {
        let deps: Vec<&str> = ["unify", "activities", "measures"]
            .into_iter()
            .filter(|d| *d == "unify" || have.contains(d))
            .collect();
        nodes.push(Node::new("segments", &deps));
        have.push("segments");
    }
    let known: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    for e in exports {
        let mut deps: Vec<String> = e
            .tables
            .iter()
            .filter_map(|t| {
                let (folder, _) = t.rsplit_once('/')?;
                Some(process_node(&Process::from_folder(folder)?))
            })
            .filter(|d| known.contains(d))
            .collect();
        deps.sort();
        deps.dedup();
        nodes.push(Node {
            name: format!("export:{}", e.name),
            depends_on: deps,
        });
    }
    nodes
}

pub async fn run(ctx: &Context, a: RefreshArgs) -> anyhow::Result<()> {
    if a.apply {
        super::env::apply(ctx, a.create_container).await?;
    }
    let project = ctx.load_project()?;
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    acting.require(&env, Operation::RunRefresh).await?;
    let handle = ctx.open_storage(&catalog, &env).await?;
    let lake = Lake::new(&handle, env.id).with_format(env.output_format);

    let exports: Vec<lakecdp_core::Export> = catalog
        .list_exports(env.id)
        .await?
        .into_iter()
        .filter(|e| e.schedule == ExportSchedule::OnRefresh)
        .collect();
    let all = Graph::new(processes(&project, &exports))?;
    let roots: Vec<String> = match (&a.only, &a.source) {
        (_, Some(source)) => {
            let s = project
                .sources
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(source))
                .ok_or_else(|| {
                    UserError(format!(
                        "no source `{source}` in {}",
                        ctx.project_file().display()
                    ))
                })?;
            vec![format!("ingest:{}", s.name)]
        }
        (Some(only), None) if only == "ingest" => project
            .sources
            .iter()
            .map(|s| format!("ingest:{}", s.name))
            .collect(),
        (Some(only), None) => vec![only.clone()],
        (None, None) => Vec::new(),
    };
    if a.only.as_deref() == Some("unify") && project.unification.is_none() {
        return Err(UserError(format!(
            "{} declares no [unification]: add the tables that become customer profiles",
            ctx.project_file().display()
        ))
        .into());
    }
    let graph = if roots.is_empty() {
        all
    } else {
        all.only_many(&roots)
            .map_err(|e| UserError(e.to_string()))?
    };
    if graph.nodes().is_empty() {
        println!(
            "nothing to refresh: {} declares no sources",
            ctx.project_file().display()
        );
        return Ok(());
    }

    // one refresh of an environment at a time
    let mut refresh = RunRecord::start(env.id, "refresh");
    let holder = format!("refresh by {} (run {})", acting.principal(), refresh.id);
    let what = format!("the refresh of environment `{}`", env.name);
    let mut lease = match Lease::acquire(&lake, "refresh", &what, &holder, LEASE_TTL).await {
        Ok(l) => l,
        Err(e @ LeaseError::Held { .. }) => return Err(UserError(e.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<String>();
    let renewer = tokio::spawn(async move {
        let mut lost_tx = Some(lost_tx);
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                _ = tokio::time::sleep(LEASE_TTL / 3) => {
                    match lease.renew().await {
                        Ok(()) => {}
                        Err(e @ LeaseError::Lost { .. }) => {
                            // someone else holds it now: this refresh must stop
                            if let Some(tx) = lost_tx.take() {
                                let _ = tx.send(e.to_string());
                            }
                        }
                        Err(e) => tracing::warn!("the refresh lease could not be renewed: {e}"),
                    }
                }
            }
        }
        lease
    });

    // whatever happens below, the lease is released and the refresh gets a final status
    let result = run_graph(
        ctx,
        &a,
        &project,
        &catalog,
        &acting,
        &env,
        &lake,
        &graph,
        &mut refresh,
        lost_rx,
    )
    .await;
    let _ = stop_tx.send(());
    match renewer.await {
        Ok(lease) => {
            if let Err(e) = lease.release().await {
                tracing::warn!("the refresh lease could not be released: {e}");
            }
        }
        Err(e) => tracing::warn!("the lease renewal task failed: {e}"),
    }
    let outcomes = match result {
        Ok(o) => o,
        Err(e) => {
            if !refresh.status.is_final() {
                refresh.status = RunStatus::Failed;
                refresh.finished_at = Some(Utc::now());
                refresh.error = Some(format!("{e:#}"));
                let _ = catalog.update_run(&refresh).await;
            }
            return Err(e);
        }
    };
    let failed = outcomes
        .iter()
        .filter(|o| o.status == RunStatus::Failed)
        .count();
    let skipped = outcomes
        .iter()
        .filter(|o| o.status == RunStatus::Skipped)
        .count();
    let canceled = refresh.status == RunStatus::Canceled;
    print_outcomes(&refresh, &outcomes);
    if refresh.status == RunStatus::Succeeded {
        return Ok(());
    }
    let first = outcomes
        .iter()
        .find(|o| o.status == RunStatus::Failed)
        .or_else(|| outcomes.iter().find(|o| o.status == RunStatus::Canceled));
    let detail = first
        .map(|o| format!("{}: {}", o.name, o.reason.clone().unwrap_or_default()))
        .unwrap_or_default();
    Err(anyhow::anyhow!(
        "the refresh {} ({failed} failed, {skipped} skipped); {detail}",
        if canceled {
            "was canceled"
        } else {
            "finished with failures"
        }
    ))
}

/// Run the graph of one refresh, recording the refresh and each process.
#[allow(clippy::too_many_arguments)]
async fn run_graph(
    ctx: &Context,
    a: &RefreshArgs,
    project: &ProjectFile,
    catalog: &SqliteCatalog,
    acting: &Acting<'_>,
    env: &Environment,
    lake: &Lake,
    graph: &Graph,
    refresh: &mut RunRecord,
    lost_rx: tokio::sync::oneshot::Receiver<String>,
) -> anyhow::Result<Vec<Outcome>> {
    catalog.record_run(refresh).await?;
    println!(
        "refreshing environment `{}` (run {}): {}",
        env.name,
        refresh.id,
        graph
            .nodes()
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(" → ")
    );
    let records: Arc<Mutex<BTreeMap<String, RunRecord>>> = Arc::default();
    let steps = Steps {
        ctx,
        a,
        project,
        catalog,
        acting,
        env,
        lake,
    };
    let outcomes = graph
        .run(
            |name: &str| {
                let name = name.to_string();
                let records = Arc::clone(&records);
                let parent = refresh.clone();
                let steps = &steps;
                async move {
                    let mut record = RunRecord::child(&parent, name.clone());
                    // known before it is stored: a cancel in between still finds it
                    if let Ok(mut m) = records.lock() {
                        m.insert(name.clone(), record.clone());
                    }
                    if let Err(e) = steps.catalog.record_run(&record).await {
                        return Err(format!("the run could not be recorded: {e}"));
                    }
                    let result = steps.run(&name).await.map_err(|e| format!("{e:#}"));
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
                    if steps.catalog.update_run(&record).await.is_ok() {
                        if let Ok(mut m) = records.lock() {
                            m.remove(&name);
                        }
                    }
                    result
                }
            },
            async {
                tokio::select! {
                    r = tokio::signal::ctrl_c() => match r {
                        Ok(()) => println!("canceling: the running process stops and publishes nothing"),
                        // no Ctrl-C handler: never cancel
                        Err(_) => std::future::pending::<()>().await,
                    },
                    lost = lost_rx => match lost {
                        Ok(why) => println!("canceling: {why}"),
                        Err(_) => std::future::pending::<()>().await,
                    },
                }
            },
            |_| {},
            |o| {
                if o.status != RunStatus::Succeeded {
                    println!(
                        "  {}: {}{}",
                        o.name,
                        o.status,
                        o.reason
                            .as_ref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    );
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
        match catalog.update_run(&record).await {
            Ok(()) => {}
            Err(lakecdp_catalog::Error::NotFound { .. }) => catalog.record_run(&record).await?,
            Err(e) => return Err(e.into()),
        }
    }
    let failed = outcomes
        .iter()
        .filter(|o| o.status == RunStatus::Failed)
        .count();
    let skipped = outcomes
        .iter()
        .filter(|o| o.status == RunStatus::Skipped)
        .count();
    let canceled = outcomes.iter().any(|o| o.status == RunStatus::Canceled);
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
    catalog.update_run(refresh).await?;
    Ok(outcomes)
}

fn print_outcomes(refresh: &RunRecord, outcomes: &[Outcome]) {
    let mut t = output::table(&["process", "status", "seconds", "rows", "note"]);
    for o in outcomes {
        t.add_row(vec![
            o.name.clone(),
            o.status.to_string(),
            format!("{:.1}", o.elapsed.as_secs_f64()),
            o.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            o.reason.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    println!(
        "refresh {}: {} (see `lakecdp runs show {}`)",
        refresh.id, refresh.status, refresh.id
    );
}

/// What the processes of one refresh need.
struct Steps<'a> {
    ctx: &'a Context,
    a: &'a RefreshArgs,
    project: &'a ProjectFile,
    catalog: &'a SqliteCatalog,
    acting: &'a Acting<'a>,
    env: &'a Environment,
    lake: &'a Lake,
}

impl Steps<'_> {
    /// A session over the lake; with `outputs`, the published outputs the insight
    /// processes read are registered (Customer, the activities, the measures).
    async fn session(&self, outputs: bool) -> anyhow::Result<Session> {
        let session = Session::new(&EngineKind::Local, self.lake.clone()).await?;
        if outputs {
            session.register_outputs().await?;
        }
        Ok(session)
    }

    /// Run one process; the rows it wrote, when it says.
    async fn run(&self, name: &str) -> anyhow::Result<Option<u64>> {
        if let Some(source) = name.strip_prefix("ingest:") {
            let spec = self
                .project
                .sources
                .iter()
                .find(|s| s.name == source)
                .ok_or_else(|| anyhow::anyhow!("no source `{source}`"))?;
            return ingest_one(self.ctx, self.a, self.catalog, self.env, self.lake, spec).await;
        }
        if let Some(export) = name.strip_prefix("export:") {
            let rows = super::export::run_in_refresh(
                self.ctx,
                self.catalog,
                self.acting,
                self.env,
                export,
            )
            .await?;
            return Ok(Some(rows));
        }
        match name {
            "unify" => {
                let spec = self
                    .project
                    .unification
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("the project declares no [unification]"))?;
                unify_step(self.project, spec, self.env, self.lake).await
            }
            "activities" => {
                let session = self.session(false).await?;
                let r = lakecdp_engine::activities::run(
                    &session,
                    &self.project.sources,
                    &self.project.activities,
                    self.env.retention_runs,
                )
                .await?;
                for x in &r.activities {
                    println!(
                        "  activity {} ({}): {} rows, {} linked to profiles, {} without a customer key, {} matching no profile, {} without a time",
                        x.name, x.source_table, x.rows, x.linked, x.no_key, x.unmatched, x.no_time
                    );
                }
                println!(
                    "  published Activities/ (run {}): {} activities in UnifiedActivity, {} rows left out are in UnmatchedActivity",
                    r.run_id,
                    r.linked(),
                    r.left_out()
                );
                Ok(Some(r.linked()))
            }
            "reports" => {
                let spec = self
                    .project
                    .unification
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("the project declares no [unification]"))?;
                let session = self.session(false).await?;
                let r = lakecdp_engine::reports::run(
                    &session,
                    spec,
                    Utc::now(),
                    self.env.retention_runs,
                )
                .await?;
                println!(
                    "  published Reports/ (run {}): {} of {} profiles",
                    r.run_id,
                    r.entities
                        .iter()
                        .map(|(n, rows)| format!("{n} ({rows})"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.profiles
                );
                Ok(Some(r.profiles))
            }
            "measures" => {
                let session = self.session(true).await?;
                let r = lakecdp_engine::measures::run(
                    &session,
                    &self.project.measures,
                    Utc::now(),
                    self.env.retention_runs,
                )
                .await?;
                for m in &r.measures {
                    println!(
                        "  measure {} ({}): {} rows in {}{}",
                        m.name,
                        m.kind.as_str(),
                        m.rows,
                        m.entity,
                        if m.customers_without_data > 0 {
                            format!(", {} customers without data", m.customers_without_data)
                        } else {
                            String::new()
                        }
                    );
                }
                println!("  published Measures/ (run {})", r.run_id);
                Ok(Some(r.measures.iter().map(|m| m.rows).sum()))
            }
            "segments" => {
                let session = self.session(true).await?;
                let r = lakecdp_engine::segments::run(
                    &session,
                    &self.project.segments,
                    Utc::now(),
                    self.env.retention_runs,
                )
                .await?;
                for x in &r.segments {
                    let change = match x.change {
                        Some(c) => format!(" ({c:+} since the last run)"),
                        None => String::new(),
                    };
                    let kept = if x.kept { ", kept (static)" } else { "" };
                    println!(
                        "  segment {} ({}): {} members{change}{kept}",
                        x.name, x.kind, x.members
                    );
                }
                println!(
                    "  published Segments/ (run {}): {} customers in at least one segment",
                    r.run_id, r.membership_rows
                );
                Ok(Some(r.membership_rows))
            }
            other => Err(anyhow::anyhow!("unknown process `{other}`")),
        }
    }
}

async fn unify_step(
    project: &ProjectFile,
    spec: &UnificationSpec,
    env: &Environment,
    lake: &Lake,
) -> anyhow::Result<Option<u64>> {
    println!(
        "unifying {} table{} into customer profiles",
        spec.tables.len(),
        if spec.tables.len() == 1 { "" } else { "s" }
    );
    let options = UnifyOptions {
        retention: env.retention_runs,
        ..UnifyOptions::default()
    };
    let report = unify(lake, &project.sources, spec, &options).await?;
    print_unify(&report);
    Ok(Some(report.profiles as u64))
}

pub fn print_unify(r: &UnifyReport) {
    let mut t = output::table(&["table", "records", "duplicates", "matched", "left out"]);
    for x in &r.tables {
        t.add_row(vec![
            x.table.clone(),
            x.records.to_string(),
            x.duplicates.to_string(),
            x.matched.to_string(),
            x.excluded.to_string(),
        ]);
    }
    println!("{t}");
    let mut t = output::table(&["table", "step", "rule", "candidate pairs", "matched pairs"]);
    for x in &r.rules {
        t.add_row(vec![
            x.table.clone(),
            x.kind.to_string(),
            x.rule.clone(),
            x.candidates.to_string(),
            x.pairs.to_string(),
        ]);
    }
    println!("{t}");
    for g in &r.giant {
        println!(
            "  rule `{}`: the value `{}` is shared by {} records, more than max_block; it never matches (add it to the bypass overrides to silence this)",
            g.rule, g.value, g.records
        );
    }
    let sizes = r
        .clusters
        .sizes
        .iter()
        .map(|(size, n)| format!("{n}×{size}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "{} profiles from {} records (profile sizes: {sizes})",
        r.profiles, r.clusters.records
    );
    if let Some((size, _)) = r.clusters.largest.first() {
        println!("  largest profile: {size} records");
    }
    if r.run_id.is_some() {
        // a preview assigns no ids
        let count =
            |reason: ChangeReason| r.id_changes.iter().filter(|c| c.reason == reason).count();
        println!(
            "  CustomerIds: {} merged, {} split, {} removed since the last run",
            count(ChangeReason::Merged),
            count(ChangeReason::Split),
            count(ChangeReason::Removed)
        );
    }
    let phases = r
        .phases
        .iter()
        .map(|(p, s)| format!("{p} {s:.2}s"))
        .collect::<Vec<_>>()
        .join(", ");
    match &r.run_id {
        Some(run) => println!("  published Unification/ (run {run}); {phases}"),
        None => println!("  preview only: nothing published; {phases}"),
    }
}

/// Load one source; the rows it wrote (none when it was unchanged).
async fn ingest_one(
    ctx: &Context,
    a: &RefreshArgs,
    catalog: &SqliteCatalog,
    env: &Environment,
    lake: &Lake,
    source: &SourceSpec,
) -> anyhow::Result<Option<u64>> {
    let watermarks = catalog
        .watermarks(env.id, &source.name)
        .await?
        .into_iter()
        .map(|w| (w.table, w.hour))
        .collect();
    let options = IngestOptions {
        retention: env.retention_runs,
        force: a.force,
        progress: std::sync::Arc::new(crate::progress::LoadProgress::new()),
        full: a.full,
        incremental_from: a.from,
        watermarks,
        ..IngestOptions::default()
    };
    let report: SourceReport = ingest_source(lake, source, &ctx.project_dir, &options)
        .await
        .map_err(|e| {
            println!("  {}: FAILED: {e}", source.name);
            anyhow::Error::new(e).context(format!("source `{}` was not loaded", source.name))
        })?;
    if report.unchanged {
        println!(
            "  {}: unchanged since run {} (same declaration and files), not rewritten",
            source.name, report.run_id
        );
        return Ok(None);
    }
    for t in &report.tables {
        let reasons = t
            .reasons
            .iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  {}.{}: {} read, {} written, {} corrupt in {:.1}s{}",
            source.name,
            t.table,
            t.read,
            t.written,
            t.corrupt,
            t.seconds,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(
                    " (corrupt: {reasons}; kept in {}_{}_corrupt)",
                    source.name, t.table
                )
            }
        );
        if let Some(inc) = &t.incremental {
            println!("    {}", describe_incremental(t, inc));
            if let Some(hour) = inc.watermark {
                // the output is published: record what it applied (a lost write only
                // makes the next load apply these hours again, which changes nothing)
                catalog
                    .set_watermark(&Watermark {
                        environment_id: env.id,
                        source: source.name.clone(),
                        table: t.table.clone(),
                        hour,
                        updated_at: Utc::now(),
                    })
                    .await?;
            }
        }
    }
    println!(
        "  published DataIngestion/{}/ (run {})",
        source.name, report.run_id
    );
    Ok(Some(report.tables.iter().map(|t| t.written).sum()))
}

/// One line on what an incremental load applied.
fn describe_incremental(t: &TableReport, inc: &IncrementalReport) -> String {
    let hour = |h: &chrono::DateTime<Utc>| h.format("%Y-%m-%d %H:00Z").to_string();
    let base = match inc.base {
        Base::Previous => format!("built on the last output ({} rows)", inc.base_rows),
        Base::FullData => format!("built from FullData/ ({} rows)", inc.base_rows),
    };
    let hours = match inc.hours.as_slice() {
        [] => "no new hour folder".to_string(),
        [one] => format!("hour {}", hour(one)),
        [first, .., last] => format!(
            "{} hours {} to {}",
            inc.hours.len(),
            hour(first),
            hour(last)
        ),
    };
    let mut text = format!(
        "{base}, {hours}: {} upserts, {} deletes; {} rows replaced, {} deleted",
        inc.upserts, inc.deletes, t.replaced, t.deleted
    );
    if !inc.waiting.is_empty() {
        text.push_str(&format!(
            "; {} hour folder{} not ended yet",
            inc.waiting.len(),
            if inc.waiting.len() == 1 { "" } else { "s" }
        ));
    }
    if let Some(w) = inc.watermark {
        text.push_str(&format!("; watermark {}", hour(&w)));
    }
    text
}
