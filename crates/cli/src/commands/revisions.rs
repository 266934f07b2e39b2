//! `diff`, `revisions` and `export-config`: the applied revisions of the project file.

use std::io::Write;

use lakecdp_app::revisions::DiffLine;
use lakecdp_app::{Actor, App};

use crate::args::{ExportConfigArgs, RevisionsArgs};
use crate::output;
use crate::UserError;

/// Lines of context kept around each change.
const CONTEXT: usize = 3;

/// `diff`.
pub async fn diff(app: &App, actor: &Actor) -> anyhow::Result<()> {
    let d = app.diff(actor).await?;
    let name = app.project_file().display().to_string();
    let Some(revision) = d.revision else {
        println!("no revision is applied yet: `lakecdp apply` applies {name} as revision 1");
        return Ok(());
    };
    if d.is_empty() {
        println!("{name} is the applied revision {revision}");
        return Ok(());
    }
    println!("--- applied revision {revision}");
    println!("+++ {name}");
    // changed lines with a little context, `...` where unchanged lines are left out
    let changed: Vec<usize> = d
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !matches!(l, DiffLine::Same(_)))
        .map(|(i, _)| i)
        .collect();
    let near = |i: usize| {
        changed
            .iter()
            .any(|c| i + CONTEXT >= *c && i <= c + CONTEXT)
    };
    let mut skipped = false;
    for (i, line) in d.lines.iter().enumerate() {
        if !near(i) {
            skipped = true;
            continue;
        }
        if skipped {
            println!("...");
            skipped = false;
        }
        match line {
            DiffLine::Same(l) => println!(" {l}"),
            DiffLine::Removed(l) => println!("-{l}"),
            DiffLine::Added(l) => println!("+{l}"),
        }
    }
    let added = d
        .lines
        .iter()
        .filter(|l| matches!(l, DiffLine::Added(_)))
        .count();
    let removed = d
        .lines
        .iter()
        .filter(|l| matches!(l, DiffLine::Removed(_)))
        .count();
    println!("{added} line(s) added, {removed} removed; `lakecdp apply` applies them");
    Ok(())
}

/// `revisions`.
pub async fn list(app: &App, actor: &Actor, a: RevisionsArgs) -> anyhow::Result<()> {
    let (env, revisions) = app.revisions(actor, a.environment.as_deref()).await?;
    if revisions.is_empty() {
        println!(
            "environment `{}` has no applied revision yet (run `lakecdp apply`)",
            env.name
        );
        return Ok(());
    }
    let mut t = output::table(&["revision", "applied (UTC)", "by", "sha-256", "base folder"]);
    for r in &revisions {
        t.add_row(vec![
            r.number.to_string(),
            r.applied_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            r.applied_by.clone(),
            r.hash[..12].to_string(),
            r.base_dir.clone(),
        ]);
    }
    println!("{t}");
    println!(
        "{} revision{} of environment `{}`; the newest is applied",
        revisions.len(),
        if revisions.len() == 1 { "" } else { "s" },
        env.name
    );
    Ok(())
}

/// `export-config`.
pub async fn export_config(app: &App, actor: &Actor, a: ExportConfigArgs) -> anyhow::Result<()> {
    let r = app.revision(actor, a.revision).await?;
    match &a.out {
        None => print!("{}", r.text),
        Some(path) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| {
                    UserError(format!(
                        "cannot create {}: {e} (an existing file is never overwritten)",
                        path.display()
                    ))
                })?;
            f.write_all(r.text.as_bytes())?;
            eprintln!("wrote revision {} to {}", r.number, path.display());
        }
    }
    Ok(())
}
