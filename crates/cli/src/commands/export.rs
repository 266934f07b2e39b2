//! `export add|edit|list|show|run|delete`, and the exports a refresh runs.

use std::time::Instant;

use chrono::Utc;
use comfy_table::Cell;
use lakecdp_catalog::{Acting, Catalog, SqliteCatalog};
use lakecdp_core::{
    Connection, ConnectionKind, Environment, Export, ExportId, ExportSchedule, Operation,
    RunRecord, RunStatus,
};
use lakecdp_lake::Lake;

use crate::args::{ExportAddArgs, ExportEditArgs, ExportNameArg, ExportRunArgs};
use crate::context::Context;
use crate::output;
use crate::targets;
use crate::UserError;

/// Settings kept beside the target settings: tables no longer selected and databases no
/// longer written, so `export show` can say what is left as it was.
const RETIRED_TABLES: &str = "retired_tables";
const PREVIOUS_DATABASES: &str = "previous_databases";

fn schedule(text: &str) -> anyhow::Result<ExportSchedule> {
    text.parse()
        .map_err(|e: String| UserError(format!("--schedule: {e}")).into())
}

fn invalid(name: &str, problems: Vec<String>) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(UserError(format!(
        "export `{name}` was not saved:\n  - {}",
        problems.join("\n  - ")
    ))
    .into())
}

fn push_list(e: &mut Export, key: &str, value: &str) {
    let mut list: Vec<String> = e
        .settings
        .get(key)
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    if !list.iter().any(|v| v == value) {
        list.push(value.to_string());
    }
    e.settings.insert(key.to_string(), list.join(","));
}

fn list_of(e: &Export, key: &str) -> Vec<String> {
    e.settings
        .get(key)
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `export add`.
pub async fn add(ctx: &Context, a: ExportAddArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    acting.require(&env, Operation::CreateExport).await?;
    let connection = acting.usable_connection(&env, &a.connection).await?;
    let mut settings = std::collections::BTreeMap::new();
    if connection.kind == ConnectionKind::Postgresql {
        settings.insert(
            "database".to_string(),
            a.database
                .clone()
                .unwrap_or_else(|| targets::database_of(&env, None)),
        );
        if let Some(s) = &a.schema {
            settings.insert("schema".to_string(), s.clone());
        }
    } else if a.database.is_some() || a.schema.is_some() {
        return Err(UserError(format!(
            "--database and --schema are for PostgreSQL connections; `{}` is a {} connection",
            connection.name, connection.kind
        ))
        .into());
    }
    let now = Utc::now();
    let export = Export {
        id: ExportId::new(),
        environment_id: env.id,
        name: a.name.clone(),
        connection_id: connection.id,
        tables: a.tables.clone(),
        settings,
        schedule: schedule(&a.schedule)?,
        created_by: acting.principal().to_string(),
        created_at: now,
        updated_at: now,
    };
    invalid(&a.name, export.validate())?;
    for t in &export.tables {
        targets::split_table(t)?;
    }
    acting.create_export(&env, &export).await?;
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
pub async fn edit(ctx: &Context, a: ExportEditArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    acting.require(&env, Operation::EditExport).await?;
    let mut e = acting.export(&env, &a.name).await?;
    let mut changes = Vec::new();
    if let Some(name) = &a.connection {
        let c = acting.usable_connection(&env, name).await?;
        e.connection_id = c.id;
        changes.push(format!("connection {name}"));
    }
    for t in &a.add_tables {
        targets::split_table(t)?;
        if !e.tables.contains(t) {
            e.tables.push(t.clone());
            changes.push(format!("+{t}"));
        }
    }
    for t in &a.remove_tables {
        let before = e.tables.len();
        e.tables.retain(|x| x != t);
        if e.tables.len() == before {
            return Err(UserError(format!("export `{}` does not send `{t}`", e.name)).into());
        }
        push_list(&mut e, RETIRED_TABLES, t);
        changes.push(format!("-{t} (what was exported stays, no longer updated)"));
    }
    // a table selected again is no longer retired
    let retired: Vec<String> = list_of(&e, RETIRED_TABLES)
        .into_iter()
        .filter(|t| !e.tables.contains(t))
        .collect();
    e.settings
        .insert(RETIRED_TABLES.to_string(), retired.join(","));
    if let Some(db) = &a.database {
        if let Some(old) = e.settings.get("database").cloned() {
            if &old != db {
                push_list(&mut e, PREVIOUS_DATABASES, &old);
            }
        }
        e.settings.insert("database".to_string(), db.clone());
        changes.push(format!(
            "database {db} (created on the next run; the old one is left as it is)"
        ));
    }
    if let Some(s) = &a.schema {
        e.settings.insert("schema".to_string(), s.clone());
        changes.push(format!("schema {s}"));
    }
    if let Some(s) = &a.schedule {
        e.schedule = schedule(s)?;
        changes.push(format!("schedule {}", e.schedule));
    }
    if changes.is_empty() {
        println!("nothing to change");
        return Ok(());
    }
    invalid(&e.name, e.validate())?;
    e.updated_at = Utc::now();
    acting.update_export(&env, &e).await?;
    println!("changed export `{}`: {}", e.name, changes.join("; "));
    Ok(())
}

/// `export list`.
pub async fn list(ctx: &Context) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    acting.require(&env, Operation::ViewExports).await?;
    let exports = catalog.list_exports(env.id).await?;
    if exports.is_empty() {
        println!("no exports in environment `{}`", env.name);
        return Ok(());
    }
    let runs = catalog.list_runs(env.id, 500).await?;
    let mut t = output::table(&["export", "connection", "tables", "schedule", "last run"]);
    for e in exports {
        let conn = catalog
            .get_connection(e.connection_id)
            .await?
            .map(|c| c.name)
            .unwrap_or_else(|| "?".into());
        let last = runs
            .iter()
            .find(|r| r.process == e.process_name())
            .map(describe_run)
            .unwrap_or_else(|| "never".into());
        t.add_row(vec![
            Cell::new(&e.name),
            Cell::new(conn),
            Cell::new(e.tables.join("\n")),
            Cell::new(e.schedule.to_string()),
            Cell::new(last),
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
pub async fn show(ctx: &Context, a: ExportNameArg) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    let e = acting.export(&env, &a.name).await?;
    let c = catalog.get_connection(e.connection_id).await?;
    let mut t = output::table(&["field", "value"]);
    t.add_row(vec![Cell::new("name"), Cell::new(&e.name)]);
    t.add_row(vec![
        Cell::new("connection"),
        Cell::new(
            c.as_ref()
                .map(|c| format!("{} ({})", c.name, c.kind))
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
    let retired = list_of(&e, RETIRED_TABLES);
    if !retired.is_empty() {
        t.add_row(vec![
            Cell::new("no longer exported"),
            Cell::new(format!(
                "{}\n(left in the destination untouched; no longer updated)",
                retired.join("\n")
            )),
        ]);
    }
    let previous = list_of(&e, PREVIOUS_DATABASES);
    if !previous.is_empty() {
        t.add_row(vec![
            Cell::new("previous databases"),
            Cell::new(format!(
                "{}\n(left as they are; they receive no more updates)",
                previous.join("\n")
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
    let runs: Vec<RunRecord> = catalog
        .list_runs(env.id, 500)
        .await?
        .into_iter()
        .filter(|r| r.process == e.process_name())
        .take(5)
        .collect();
    if runs.is_empty() {
        println!("no runs yet (run it with `lakecdp export run {}`)", e.name);
    } else {
        let mut t = output::table(&["started", "took", "status", "rows", "error"]);
        for r in runs {
            t.add_row(vec![
                Cell::new(r.started_at.format("%Y-%m-%d %H:%M:%S").to_string()),
                Cell::new(
                    r.duration()
                        .map(|d| format!("{:.1} s", d.num_milliseconds() as f64 / 1000.0))
                        .unwrap_or_default(),
                ),
                Cell::new(r.status.as_str()),
                Cell::new(r.rows.map(|n| n.to_string()).unwrap_or_default()),
                Cell::new(r.error.unwrap_or_default()),
            ]);
        }
        println!("{t}");
    }
    Ok(())
}

/// `export delete`.
pub async fn delete(ctx: &Context, a: ExportNameArg) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    Acting::new(&catalog, ctx.principal_for(&env))
        .delete_export(&env, &a.name)
        .await?;
    println!(
        "deleted export `{}`; what it wrote stays where it is",
        a.name
    );
    Ok(())
}

/// `export run`.
pub async fn run(ctx: &Context, a: ExportRunArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    acting.require(&env, Operation::RunExport).await?;
    let names: Vec<String> = match &a.name {
        Some(n) => vec![n.clone()],
        None => catalog
            .list_exports(env.id)
            .await?
            .into_iter()
            .filter(|e| e.schedule != ExportSchedule::Off)
            .map(|e| e.name)
            .collect(),
    };
    if names.is_empty() {
        println!("no scheduled exports in environment `{}`", env.name);
        return Ok(());
    }
    run_exports(ctx, &catalog, &acting, &env, &names).await
}

/// Run the exports named, one after the other; each is recorded in the run history.
/// Fails when any failed, after all have run.
pub async fn run_exports(
    ctx: &Context,
    catalog: &SqliteCatalog,
    acting: &Acting<'_>,
    env: &Environment,
    names: &[String],
) -> anyhow::Result<()> {
    let lake = export_lake(ctx, catalog, env).await?;
    let mut failed = Vec::new();
    for name in names {
        let (export, connection) = acting.runnable_export(env, name).await?;
        let mut record = RunRecord::start(env.id, export.process_name());
        catalog.record_run(&record).await?;
        let result = run_one(ctx, catalog, env, &lake, &export, &connection).await;
        record.finished_at = Some(Utc::now());
        match result {
            Ok(rows) => {
                record.status = RunStatus::Succeeded;
                record.rows = Some(rows);
            }
            Err(e) => {
                let message = format!("{e:#}");
                println!("export `{}` failed: {message}", export.name);
                record.status = RunStatus::Failed;
                record.error = Some(message);
                failed.push(export.name.clone());
            }
        }
        catalog.update_run(&record).await?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{} of {} export{} failed: {} (see `lakecdp export show NAME`)",
            failed.len(),
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            failed.join(", ")
        ))
    }
}

async fn export_lake(
    ctx: &Context,
    catalog: &SqliteCatalog,
    env: &Environment,
) -> anyhow::Result<Lake> {
    let handle = ctx.open_storage(catalog, env).await?;
    Ok(Lake::new(&handle, env.id).with_format(env.output_format))
}

/// Run one export as a process of a refresh (which records it); the rows it sent.
pub async fn run_in_refresh(
    ctx: &Context,
    catalog: &SqliteCatalog,
    acting: &Acting<'_>,
    env: &Environment,
    name: &str,
) -> anyhow::Result<u64> {
    let (export, connection) = acting.runnable_export(env, name).await?;
    let lake = export_lake(ctx, catalog, env).await?;
    run_one(ctx, catalog, env, &lake, &export, &connection).await
}

async fn run_one(
    ctx: &Context,
    catalog: &SqliteCatalog,
    env: &Environment,
    lake: &Lake,
    export: &Export,
    connection: &Connection,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    // every selected table must be published before anything is sent
    let mut tables = Vec::new();
    for t in &export.tables {
        tables.push(targets::published_entity(lake, t).await?);
    }
    let target = targets::target_for(ctx, catalog, env, connection, Some(export)).await?;
    println!(
        "export `{}`: {} table{} to {}",
        export.name,
        tables.len(),
        if tables.len() == 1 { "" } else { "s" },
        target.destination()
    );
    let mut run = target.begin(&export.name).await?;
    let mut errors = Vec::new();
    for (folder, entity) in tables {
        let schema = targets::entity_schema(&entity);
        let name = entity.name.clone();
        let stream = targets::entity_stream(lake, folder, entity);
        match run.export_table(&name, schema, stream).await {
            Ok(t) => println!(
                "  {:<28} {:>10} rows  {:>8.1} MiB  {:>6.2} s",
                t.name,
                t.rows,
                t.bytes as f64 / (1024.0 * 1024.0),
                t.elapsed.as_secs_f64()
            ),
            Err(e) => {
                println!("  {name:<28} FAILED: {e} (the previous export of it is kept)");
                errors.push(format!("{name}: {e}"));
            }
        }
    }
    let summary = run.finish().await?;
    println!(
        "export `{}`: {} rows in {} table{} in {:.1} s",
        export.name,
        summary.rows(),
        summary.tables.len(),
        if summary.tables.len() == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64()
    );
    if errors.is_empty() {
        Ok(summary.rows())
    } else {
        Err(anyhow::anyhow!("{}", errors.join("; ")))
    }
}
