//! `runs`.

use lakecdp_catalog::Catalog;

use crate::args::RunsArgs;
use crate::context::Context;
use crate::output;

pub async fn run(ctx: &Context, a: RunsArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, a.environment.as_deref()).await?;
    let runs = catalog.list_runs(env.id, a.limit).await?;
    if runs.is_empty() {
        println!("no runs recorded for environment `{}` yet", env.name);
        return Ok(());
    }
    let mut t = output::table(&[
        "run",
        "process",
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
            r.status.to_string(),
            r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            r.duration()
                .map(|d| format!("{:.1}s", d.num_milliseconds() as f64 / 1000.0))
                .unwrap_or_else(|| "-".into()),
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
