//! `segment list|show|preview`.

use comfy_table::Cell;
use lakecdp_app::{Actor, App};

use crate::args::{SegmentPreviewArgs, SegmentShowArgs};
use crate::output;

/// `segment list`.
pub async fn list(app: &App, actor: &Actor) -> anyhow::Result<()> {
    let (segments, runs) = app.segments(actor, None).await?;
    let last = runs.last();
    if segments.is_empty() {
        println!("{} declares no segments", app.project_file().display());
        return Ok(());
    }
    let mut t = output::table(&["segment", "kind", "rules", "members", "description"]);
    for s in &segments {
        t.add_row(vec![
            Cell::new(&s.name),
            Cell::new(s.kind.to_string()),
            Cell::new(s.rules.len()),
            Cell::new(
                last.and_then(|r| r.counts.get(&s.name))
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
            ),
            Cell::new(s.description.clone().unwrap_or_default()),
        ]);
    }
    println!("{t}");
    match last {
        Some(r) => println!(
            "members as of run {} ({})",
            r.run_id,
            r.time.format("%Y-%m-%d %H:%M UTC")
        ),
        None => println!("no segments published yet (run `lakecdp refresh`)"),
    }
    Ok(())
}

/// `segment show NAME`: its rules and its member count per run.
pub async fn show(app: &App, actor: &Actor, a: SegmentShowArgs) -> anyhow::Result<()> {
    let (spec, runs) = app.segment(actor, &a.name).await?;
    println!(
        "segment {} ({}){}",
        spec.name,
        spec.kind,
        spec.description
            .as_ref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    );
    for (i, r) in spec.rules.iter().enumerate() {
        let op = if i == 0 {
            "  ".to_string()
        } else {
            format!("  {:?} ", r.operator).to_ascii_lowercase()
        };
        println!(
            "{op}rule {}: {}",
            i + 1,
            serde_json::to_string(&r.condition)?
        );
    }
    let counts: Vec<(String, u64)> = runs
        .iter()
        .filter_map(|r| {
            r.counts
                .get(&spec.name)
                .map(|n| (r.time.format("%Y-%m-%d %H:%M").to_string(), *n))
        })
        .collect();
    if counts.is_empty() {
        println!("not published yet (run `lakecdp refresh`)");
        return Ok(());
    }
    let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let mut t = output::table(&["run (UTC)", "members", "change", "trend"]);
    let mut previous: Option<u64> = None;
    for (time, n) in &counts {
        let change = previous
            .map(|p| format!("{:+}", *n as i64 - p as i64))
            .unwrap_or_else(|| "-".into());
        let bar = "█".repeat(((*n as f64 / max as f64) * 30.0).round() as usize);
        t.add_row(vec![
            Cell::new(time),
            Cell::new(n),
            Cell::new(change),
            Cell::new(bar),
        ]);
        previous = Some(*n);
    }
    println!("{t}");
    Ok(())
}

/// `segment preview "<condition>"`: the count and a sample, nothing saved.
pub async fn preview(app: &App, actor: &Actor, a: SegmentPreviewArgs) -> anyhow::Result<()> {
    let (count, sample) = app.preview_segment(actor, &a.condition, a.sample).await?;
    println!("{count} customers match `{}`", a.condition);
    if sample.num_rows() > 0 {
        println!("{}", arrow::util::pretty::pretty_format_batches(&[sample])?);
    }
    println!("nothing was saved; declare it under [[segments]] to keep it");
    Ok(())
}
