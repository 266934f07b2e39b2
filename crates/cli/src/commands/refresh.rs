//! `refresh`: load the project's sources into the environment's lake.

use chrono::Utc;
use lakecdp_catalog::Catalog;
use lakecdp_core::{RunRecord, RunStatus, SourceSpec, Watermark};
use lakecdp_engine::ingest::{
    ingest_source, Base, IncrementalReport, IngestOptions, SourceReport, TableReport,
};
use lakecdp_lake::{backend, Lake};

use crate::args::RefreshArgs;
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
    let handle = backend::open(&env.storage, Some(&ctx.project_dir))?;
    let lake = Lake::new(&handle, env.id).with_format(env.output_format);
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
        let result = ingest_source(&lake, source, &ctx.project_dir, &options).await;
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
