//! `segment list|show|preview`.

use chrono::Utc;
use comfy_table::Cell;
use lakecdp_catalog::Acting;
use lakecdp_core::segment::parse_condition;
use lakecdp_core::Operation;
use lakecdp_engine::segments::{history, preview as preview_segment};
use lakecdp_engine::{EngineKind, Session};
use lakecdp_lake::Lake;

use crate::args::{SegmentPreviewArgs, SegmentShowArgs};
use crate::context::Context;
use crate::output;
use crate::UserError;

async fn open(ctx: &Context) -> anyhow::Result<Lake> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    Acting::new(&catalog, ctx.principal_for(&env))
        .require(&env, Operation::ViewEnvironment)
        .await?;
    let handle = ctx.open_storage(&catalog, &env).await?;
    Ok(Lake::new(&handle, env.id).with_format(env.output_format))
}

/// `segment list`.
pub async fn list(ctx: &Context) -> anyhow::Result<()> {
    let project = ctx.load_project()?;
    let lake = open(ctx).await?;
    let runs = history(&lake).await?;
    let last = runs.last();
    if project.segments.is_empty() {
        println!("{} declares no segments", ctx.project_file().display());
        return Ok(());
    }
    let mut t = output::table(&["segment", "kind", "rules", "members", "description"]);
    for s in &project.segments {
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
pub async fn show(ctx: &Context, a: SegmentShowArgs) -> anyhow::Result<()> {
    let project = ctx.load_project()?;
    let spec = project
        .segments
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(&a.name))
        .ok_or_else(|| {
            let names: Vec<&str> = project.segments.iter().map(|s| s.name.as_str()).collect();
            UserError(format!(
                "no segment `{}`; the segments are {}",
                a.name,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))
        })?;
    let lake = open(ctx).await?;
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
    let runs = history(&lake).await?;
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
pub async fn preview(ctx: &Context, a: SegmentPreviewArgs) -> anyhow::Result<()> {
    let condition = parse_condition(&a.condition)
        .map_err(|e| UserError(format!("the condition does not parse: {e}")))?;
    let lake = open(ctx).await?;
    let session = Session::new(&EngineKind::Local, lake).await?;
    let tables = session.register_outputs().await?;
    if !tables.iter().any(|t| t == "Customer") {
        return Err(UserError(
            "no customer profiles are published yet: run `lakecdp refresh` first".into(),
        )
        .into());
    }
    let (count, sample) = preview_segment(&session, &condition, Utc::now(), a.sample).await?;
    println!("{count} customers match `{}`", a.condition);
    if sample.num_rows() > 0 {
        println!("{}", arrow::util::pretty::pretty_format_batches(&[sample])?);
    }
    println!("nothing was saved; declare it under [[segments]] to keep it");
    Ok(())
}
