//! `refresh`: load the project's sources into the environment's lake, then unify them
//! into customer profiles when the project declares `[unification]`.

use chrono::Utc;
use lakecdp_catalog::Catalog;
use lakecdp_core::{RunRecord, RunStatus, SourceSpec, Watermark};
use lakecdp_engine::ingest::{
    ingest_source, Base, IncrementalReport, IngestOptions, SourceReport, TableReport,
};
use lakecdp_lake::Lake;

use lakecdp_catalog::SqliteCatalog;
use lakecdp_core::{Environment, ProjectFile, UnificationSpec};
use lakecdp_engine::unify::{unify, UnifyOptions, UnifyReport};
use lakecdp_match::ids::ChangeReason;

use crate::args::{ProcessKind, RefreshArgs};
use crate::context::Context;
use crate::output;
use crate::UserError;

pub async fn run(ctx: &Context, a: RefreshArgs) -> anyhow::Result<()> {
    if a.apply {
        super::env::apply(ctx, a.create_container).await?;
    }
    let project = ctx.load_project()?;
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = lakecdp_catalog::Acting::new(&catalog, ctx.principal_for(&env));
    acting
        .require(&env, lakecdp_core::Operation::RunRefresh)
        .await?;
    let handle = ctx.open_storage(&catalog, &env).await?;
    let lake = Lake::new(&handle, env.id).with_format(env.output_format);
    let run_unify = a.only != Some(ProcessKind::Ingest);
    if a.only == Some(ProcessKind::Unify) && project.unification.is_none() {
        return Err(UserError(format!(
            "{} declares no [unification]: add the tables that become customer profiles",
            ctx.project_file().display()
        ))
        .into());
    }
    let ingested = if a.only == Some(ProcessKind::Unify) {
        Ok(())
    } else {
        ingest(ctx, &a, &project, &catalog, &env, &lake).await
    };
    let processed = match (&project.unification, run_unify) {
        (Some(spec), true) => {
            if let Err(e) = &ingested {
                let used: Vec<&str> = spec.tables.iter().map(|t| t.source.as_str()).collect();
                println!(
                    "unification skipped: a source it reads did not load ({})",
                    used.join(", ")
                );
                let mut run = RunRecord::start(env.id, "unify");
                run.finished_at = Some(Utc::now());
                run.status = RunStatus::Skipped;
                run.error = Some(format!("a source failed to load: {e}"));
                catalog.record_run(&run).await?;
                ingested
            } else {
                unify_step(&project, spec, &catalog, &env, &lake).await
            }
        }
        _ => ingested,
    };
    if a.only.is_some() {
        return processed;
    }
    // exports scheduled on refresh run after the processes they read
    let exports: Vec<String> = catalog
        .list_exports(env.id)
        .await?
        .into_iter()
        .filter(|e| e.schedule == lakecdp_core::ExportSchedule::OnRefresh)
        .map(|e| e.name)
        .collect();
    if exports.is_empty() {
        return processed;
    }
    if let Err(e) = &processed {
        println!(
            "exports skipped: the refresh failed before them ({})",
            exports.join(", ")
        );
        for name in &exports {
            let mut run = RunRecord::start(env.id, format!("export/{name}"));
            run.finished_at = Some(Utc::now());
            run.status = RunStatus::Skipped;
            run.error = Some(format!("a process it reads failed: {e}"));
            catalog.record_run(&run).await?;
        }
        return processed;
    }
    super::export::run_exports(ctx, &catalog, &acting, &env, &exports).await
}

async fn unify_step(
    project: &ProjectFile,
    spec: &UnificationSpec,
    catalog: &SqliteCatalog,
    env: &Environment,
    lake: &Lake,
) -> anyhow::Result<()> {
    println!(
        "unifying {} table{} into customer profiles",
        spec.tables.len(),
        if spec.tables.len() == 1 { "" } else { "s" }
    );
    let mut run = RunRecord::start(env.id, "unify");
    catalog.record_run(&run).await?;
    let options = UnifyOptions {
        retention: env.retention_runs,
        ..UnifyOptions::default()
    };
    let result = unify(lake, &project.sources, spec, &options).await;
    run.finished_at = Some(Utc::now());
    match result {
        Ok(report) => {
            run.status = RunStatus::Succeeded;
            run.rows = Some(report.profiles as u64);
            catalog.update_run(&run).await?;
            print_unify(&report);
            Ok(())
        }
        Err(e) => {
            run.status = RunStatus::Failed;
            run.error = Some(e.to_string());
            catalog.update_run(&run).await?;
            Err(e.into())
        }
    }
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

async fn ingest(
    ctx: &Context,
    a: &RefreshArgs,
    project: &ProjectFile,
    catalog: &SqliteCatalog,
    env: &Environment,
    lake: &Lake,
) -> anyhow::Result<()> {
    let sources: Vec<&SourceSpec> = match &a.source {
        Some(name) => vec![project
            .sources
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                UserError(format!(
                    "no source `{name}` in {}",
                    ctx.project_file().display()
                ))
            })?],
        None => project.sources.iter().collect(),
    };
    if sources.is_empty() {
        println!(
            "nothing to refresh: {} declares no sources",
            ctx.project_file().display()
        );
        return Ok(());
    }
    println!(
        "refreshing environment `{}`: loading {} source{}",
        env.name,
        sources.len(),
        if sources.len() == 1 { "" } else { "s" }
    );

    let base_options = IngestOptions {
        retention: env.retention_runs,
        force: a.force,
        progress: std::sync::Arc::new(crate::progress::LoadProgress::new()),
        full: a.full,
        incremental_from: a.from,
        ..IngestOptions::default()
    };
    let mut reports: Vec<SourceReport> = Vec::new();
    let mut failures: Vec<(String, anyhow::Error)> = Vec::new();
    for source in sources {
        let mut run = RunRecord::start(env.id, format!("ingest:{}", source.name));
        catalog.record_run(&run).await?;
        let watermarks = catalog
            .watermarks(env.id, &source.name)
            .await?
            .into_iter()
            .map(|w| (w.table, w.hour))
            .collect();
        let options = IngestOptions {
            watermarks,
            ..base_options.clone()
        };
        let result = ingest_source(lake, source, &ctx.project_dir, &options).await;
        run.finished_at = Some(Utc::now());
        match result {
            Ok(report) if report.unchanged => {
                println!(
                    "  {}: unchanged since run {} (same declaration and files), not rewritten",
                    source.name, report.run_id
                );
                run.status = RunStatus::Skipped;
                run.error = Some("unchanged since the last load".into());
            }
            Ok(report) => {
                for t in &report.tables {
                    println!(
                        "  {}.{}: {} read, {} written, {} corrupt in {:.1}s",
                        source.name, t.table, t.read, t.written, t.corrupt, t.seconds
                    );
                    if let Some(inc) = &t.incremental {
                        println!("    {}", describe_incremental(t, inc));
                        if let Some(hour) = inc.watermark {
                            // the output is published: record what it applied (a lost
                            // write only makes the next load apply these hours again,
                            // which changes nothing)
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
                run.status = RunStatus::Succeeded;
                run.rows = Some(report.tables.iter().map(|t| t.written).sum());
                reports.push(report);
            }
            Err(e) => {
                println!("  {}: FAILED: {e}", source.name);
                run.status = RunStatus::Failed;
                run.error = Some(e.to_string());
                failures.push((source.name.clone(), e.into()));
            }
        }
        catalog.update_run(&run).await?;
    }

    let mut t = output::table(&[
        "source",
        "table",
        "read",
        "written",
        "corrupt",
        "seconds",
        "corrupt reasons",
    ]);
    for r in &reports {
        for table in &r.tables {
            let reasons = table
                .reasons
                .iter()
                .map(|(k, n)| format!("{k} ({n})"))
                .collect::<Vec<_>>()
                .join(", ");
            t.add_row(vec![
                r.source.clone(),
                table.table.clone(),
                table.read.to_string(),
                table.written.to_string(),
                table.corrupt.to_string(),
                format!("{:.1}", table.seconds),
                reasons,
            ]);
        }
    }
    if !reports.is_empty() {
        println!("{t}");
        println!(
            "published {} source folder{} under {}/{}/DataIngestion/ (corrupt rows are in <Source>_<Table>_corrupt)",
            reports.len(),
            if reports.len() == 1 { "" } else { "s" },
            env.storage.describe(),
            env.id.folder()
        );
    }
    match failures.len() {
        0 => Ok(()),
        1 => {
            let (name, e) = failures.remove(0);
            Err(e.context(format!(
                "source `{name}` was not loaded; the other sources were"
            )))
        }
        n => {
            let names = failures
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let (_, first) = failures.remove(0);
            Err(first.context(format!(
                "{n} sources were not loaded ({names}); the first error follows"
            )))
        }
    }
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
