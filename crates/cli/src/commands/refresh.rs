//! `refresh`: runs the system refresh of `lakecdp-app` and prints its events as they
//! come, then the table of every process. Ctrl-C cancels it.

use std::sync::Arc;

use lakecdp_app::{Actor, App, CancellationToken, RefreshReport, RefreshRequest};
use lakecdp_core::RunStatus;

use crate::args::RefreshArgs;
use crate::output;
use crate::terminal::Terminal;

pub async fn run(app: &App, actor: &Actor, a: RefreshArgs) -> anyhow::Result<()> {
    if a.apply {
        super::env::apply(app, actor, a.create_container, a.adopt).await?;
    }
    let request = RefreshRequest {
        environment: None,
        only: a.only.clone(),
        source: a.source.clone(),
        force: a.force,
        full: a.full,
        from: a.from,
        full_unify: a.full_unify,
    };
    let Some(plan) = app.plan_refresh(actor, &request).await? else {
        println!(
            "nothing to refresh: {} declares no sources",
            app.project_file().display()
        );
        return Ok(());
    };
    let cancel = CancellationToken::new();
    let on_ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        })
    };
    let report = app
        .run_plan(actor, &request, &plan, cancel, Arc::new(Terminal::new()))
        .await;
    on_ctrl_c.abort();
    let report = report?;
    print_outcomes(&report);
    if report.status == RunStatus::Succeeded {
        return Ok(());
    }
    let detail = report
        .first_problem()
        .map(|o| format!("{}: {}", o.process, o.reason.clone().unwrap_or_default()))
        .unwrap_or_default();
    Err(anyhow::anyhow!(
        "the refresh {} ({} failed, {} skipped); {detail}",
        if report.status == RunStatus::Canceled {
            "was canceled"
        } else {
            "finished with failures"
        },
        report.count(RunStatus::Failed),
        report.count(RunStatus::Skipped),
    ))
}

fn print_outcomes(report: &RefreshReport) {
    // where each process ran is worth a column only when not everything ran here
    let engines = report.processes.iter().any(|o| o.ran_on != "local");
    let mut header = vec!["process", "status", "seconds", "rows"];
    if engines {
        header.push("ran on");
    }
    header.push("note");
    let mut t = output::table(&header);
    for o in &report.processes {
        let mut row = vec![
            o.process.to_string(),
            o.status.to_string(),
            format!("{:.1}", o.elapsed.as_secs_f64()),
            o.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
        ];
        if engines {
            row.push(o.ran_on.clone());
        }
        row.push(o.reason.clone().unwrap_or_default());
        t.add_row(row);
    }
    println!("{t}");
    println!(
        "refresh {}: {} (see `lakecdp runs show {}`)",
        report.run, report.status, report.run
    );
}
