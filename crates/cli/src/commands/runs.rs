//! `runs`.

use lakecdp_app::{Actor, App};
use lakecdp_core::RunRecord;

use crate::args::{RunsArgs, RunsCommand};
use crate::output;

fn seconds(r: &RunRecord) -> String {
    r.duration()
        .map(|d| format!("{:.1}s", d.num_milliseconds() as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// `runs show ID`: the run, and the processes of a refresh as a tree.
async fn show(app: &App, actor: &Actor, id: &str) -> anyhow::Result<()> {
    let (env, run, children) = app.run(actor, id).await?;
    println!(
        "{} {} of environment `{}`: {} in {}, started {}",
        run.process,
        run.id,
        env.name,
        run.status,
        seconds(&run),
        run.started_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    if let Some(n) = run.revision {
        println!("  ran the applied revision {n} of the project file");
    }
    if let Some(e) = &run.error {
        println!("  {e}");
    }
    for (i, c) in children.iter().enumerate() {
        let branch = if i + 1 == children.len() {
            "└─"
        } else {
            "├─"
        };
        let mut line = format!(
            "{branch} {:<24} {:<9} {:>7}",
            c.process,
            c.status.as_str(),
            seconds(c)
        );
        if let Some(rows) = c.rows {
            line.push_str(&format!("  {rows} rows"));
        }
        if let Some(e) = &c.error {
            line.push_str(&format!("  ({e})"));
        }
        println!("{line}");
    }
    Ok(())
}

pub async fn run(app: &App, actor: &Actor, a: RunsArgs) -> anyhow::Result<()> {
    if let Some(RunsCommand::Show(s)) = &a.command {
        return show(app, actor, &s.id).await;
    }
    let (env, runs) = app.runs(actor, a.environment.as_deref(), a.limit).await?;
    if runs.is_empty() {
        println!("no runs recorded for environment `{}` yet", env.name);
        return Ok(());
    }
    let mut t = output::table(&[
        "run",
        "process",
        "revision",
        "status",
        "started (UTC)",
        "duration",
        "rows",
        "error",
    ]);
    for r in &runs {
        t.add_row(vec![
            r.id.to_string(),
            r.process.clone(),
            r.revision
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            r.status.to_string(),
            r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            seconds(r),
            r.rows.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    println!(
        "{} run{} of environment `{}` (newest first)",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        env.name
    );
    Ok(())
}
