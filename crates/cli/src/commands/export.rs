//! `export add|edit|list|show|run|delete`.

use chrono::Utc;
use comfy_table::Cell;
use lakecdp_app::exports::{ExportChanges, NewExport};
use lakecdp_app::{Actor, App};
use lakecdp_core::RunRecord;

use crate::args::{ExportAddArgs, ExportEditArgs, ExportNameArg, ExportRunArgs};
use crate::output;
use crate::terminal::Terminal;

/// `export add`.
pub async fn add(app: &App, actor: &Actor, a: ExportAddArgs) -> anyhow::Result<()> {
    let (export, connection) = app
        .add_export(
            actor,
            NewExport {
                name: a.name,
                connection: a.connection,
                tables: a.tables,
                database: a.database,
                schema: a.schema,
                schedule: a.schedule,
            },
        )
        .await?;
    println!(
        "added export `{}`: {} table{} through {} connection `{}`, schedule {}",
        export.name,
        export.tables.len(),
        if export.tables.len() == 1 { "" } else { "s" },
        connection.kind,
        connection.name,
        export.schedule
    );
    Ok(())
}

/// `export edit`.
pub async fn edit(app: &App, actor: &Actor, a: ExportEditArgs) -> anyhow::Result<()> {
    let changes = app
        .edit_export(
            actor,
            &a.name,
            ExportChanges {
                connection: a.connection,
                add_tables: a.add_tables,
                remove_tables: a.remove_tables,
                database: a.database,
                schema: a.schema,
                schedule: a.schedule,
            },
        )
        .await?;
    if changes.is_empty() {
        println!("nothing to change");
    } else {
        println!("changed export `{}`: {}", a.name, changes.join("; "));
    }
    Ok(())
}

/// `export list`.
pub async fn list(app: &App, actor: &Actor) -> anyhow::Result<()> {
    let (env, exports) = app.list_exports(actor, None).await?;
    if exports.is_empty() {
        println!("no exports in environment `{}`", env.name);
        return Ok(());
    }
    let mut t = output::table(&["export", "connection", "tables", "schedule", "last run"]);
    for s in exports {
        let e = &s.export;
        t.add_row(vec![
            Cell::new(&e.name),
            Cell::new(
                s.connection
                    .as_ref()
                    .map(|c| c.0.clone())
                    .unwrap_or_else(|| "?".into()),
            ),
            Cell::new(e.tables.join("\n")),
            Cell::new(e.schedule.to_string()),
            Cell::new(
                s.runs
                    .first()
                    .map(describe_run)
                    .unwrap_or_else(|| "never".into()),
            ),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn describe_run(r: &RunRecord) -> String {
    let mut s = format!("{} {}", r.status, r.started_at.format("%Y-%m-%d %H:%M"));
    if let Some(d) = r.duration() {
        s.push_str(&format!(" ({:.1} s)", d.num_milliseconds() as f64 / 1000.0));
    }
    if let Some(rows) = r.rows {
        s.push_str(&format!(", {rows} rows"));
    }
    s
}

/// `export show`.
pub async fn show(app: &App, actor: &Actor, a: ExportNameArg) -> anyhow::Result<()> {
    let s = app.show_export(actor, &a.name).await?;
    let e = &s.export;
    let mut t = output::table(&["field", "value"]);
    t.add_row(vec![Cell::new("name"), Cell::new(&e.name)]);
    t.add_row(vec![
        Cell::new("connection"),
        Cell::new(
            s.connection
                .as_ref()
                .map(|(name, kind)| format!("{name} ({kind})"))
                .unwrap_or_else(|| "?".into()),
        ),
    ]);
    t.add_row(vec![Cell::new("tables"), Cell::new(e.tables.join("\n"))]);
    if let Some(db) = e.settings.get("database") {
        t.add_row(vec![Cell::new("database"), Cell::new(db)]);
        t.add_row(vec![
            Cell::new("schema"),
            Cell::new(
                e.settings
                    .get("schema")
                    .map(String::as_str)
                    .unwrap_or("customerinsights"),
            ),
        ]);
    }
    t.add_row(vec![
        Cell::new("schedule"),
        Cell::new(e.schedule.to_string()),
    ]);
    if let Some(next) = e.schedule.next_after(Utc::now()) {
        t.add_row(vec![
            Cell::new("next run"),
            Cell::new(next.format("%Y-%m-%d %H:%M UTC").to_string()),
        ]);
    }
    if !s.retired_tables.is_empty() {
        t.add_row(vec![
            Cell::new("no longer exported"),
            Cell::new(format!(
                "{}\n(left in the destination untouched; no longer updated)",
                s.retired_tables.join("\n")
            )),
        ]);
    }
    if !s.previous_databases.is_empty() {
        t.add_row(vec![
            Cell::new("previous databases"),
            Cell::new(format!(
                "{}\n(left as they are; they receive no more updates)",
                s.previous_databases.join("\n")
            )),
        ]);
    }
    t.add_row(vec![
        Cell::new("created"),
        Cell::new(format!(
            "{} by {}",
            e.created_at.format("%Y-%m-%d %H:%M"),
            e.created_by
        )),
    ]);
    println!("{t}");
    if s.runs.is_empty() {
        println!("no runs yet (run it with `lakecdp export run {}`)", e.name);
    } else {
        let mut t = output::table(&["started", "took", "status", "rows", "error"]);
        for r in &s.runs {
            t.add_row(vec![
                Cell::new(r.started_at.format("%Y-%m-%d %H:%M:%S").to_string()),
                Cell::new(
                    r.duration()
                        .map(|d| format!("{:.1} s", d.num_milliseconds() as f64 / 1000.0))
                        .unwrap_or_default(),
                ),
                Cell::new(r.status.as_str()),
                Cell::new(r.rows.map(|n| n.to_string()).unwrap_or_default()),
                Cell::new(r.error.clone().unwrap_or_default()),
            ]);
        }
        println!("{t}");
    }
    Ok(())
}

/// `export delete`.
pub async fn delete(app: &App, actor: &Actor, a: ExportNameArg) -> anyhow::Result<()> {
    app.delete_export(actor, &a.name).await?;
    println!(
        "deleted export `{}`; what it wrote stays where it is",
        a.name
    );
    Ok(())
}

/// `export run`.
pub async fn run(app: &App, actor: &Actor, a: ExportRunArgs) -> anyhow::Result<()> {
    let names = app
        .run_exports(actor, a.name.as_deref(), &Terminal::new())
        .await?;
    if names.is_empty() {
        let env = app.environment(None).await?;
        println!("no scheduled exports in environment `{}`", env.name);
    }
    Ok(())
}
