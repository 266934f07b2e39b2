//! Exports: add, edit, list, show, delete and run, and the exports a refresh runs.
//!
//! An export run sends every selected table after checking that all are published; a
//! table that fails keeps its previous export in the destination, and the run fails
//! after the others were sent. Each run is recorded in the run history.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;
use lakecdp_core::{
    Connection, ConnectionKind, EngineChoice, Environment, Export, ExportId, ExportSchedule,
    Operation, RunRecord, RunStatus,
};
use lakecdp_lake::Lake;

use crate::app::{Actor, App};
use crate::error::{Error, Result};
use crate::observe::{Event, ExportedTable, Observer};
use crate::targets;

/// Settings kept beside the target settings: tables no longer selected and databases no
/// longer written, so `export show` can say what is left as it was.
const RETIRED_TABLES: &str = "retired_tables";
const PREVIOUS_DATABASES: &str = "previous_databases";

/// A new export.
#[derive(Debug, Clone, Default)]
pub struct NewExport {
    /// Its name.
    pub name: String,
    /// The connection it sends through.
    pub connection: String,
    /// `<process folder>/<Entity>` of each table.
    pub tables: Vec<String>,
    /// PostgreSQL: the database (the environment's name by default).
    pub database: Option<String>,
    /// PostgreSQL: the schema.
    pub schema: Option<String>,
    /// `off`, `on-refresh` or `daily 03:00 UTC`…
    pub schedule: String,
}

/// Changes to an export.
#[derive(Debug, Clone, Default)]
pub struct ExportChanges {
    /// Another connection.
    pub connection: Option<String>,
    /// Tables to select.
    pub add_tables: Vec<String>,
    /// Tables to stop exporting (what was exported stays).
    pub remove_tables: Vec<String>,
    /// Another database (the old one is left as it is).
    pub database: Option<String>,
    /// Another schema.
    pub schema: Option<String>,
    /// Another schedule.
    pub schedule: Option<String>,
}

/// An export as listed: its connection's name and its last run.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// The export.
    pub export: Export,
    /// Its connection's name and kind, if it still exists.
    pub connection: Option<(String, ConnectionKind)>,
    /// Its runs, newest first (at most five in `show`, the last in `list`).
    pub runs: Vec<RunRecord>,
    /// Tables no longer selected; left in the destination untouched.
    pub retired_tables: Vec<String>,
    /// Databases no longer written; left as they are.
    pub previous_databases: Vec<String>,
}

fn schedule(text: &str) -> Result<ExportSchedule> {
    text.parse()
        .map_err(|e: String| Error::invalid(format!("--schedule: {e}")))
}

fn invalid(name: &str, problems: Vec<String>) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "export `{name}` was not saved:\n  - {}",
        problems.join("\n  - ")
    )))
}

fn push_list(e: &mut Export, key: &str, value: &str) {
    let mut list = list_of(e, key);
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

/// Refuse an export to a PostgreSQL database and schema its connection does not allow
/// (the connection's `schemas`, set by Admins).
fn allowed_schema(env: &Environment, export: &Export, connection: &Connection) -> Result<()> {
    if connection.kind != ConnectionKind::Postgresql {
        return Ok(());
    }
    let schema = export
        .settings
        .get("schema")
        .map(String::as_str)
        .unwrap_or(lakecdp_connect::postgres::DEFAULT_SCHEMA);
    connection
        .check_export_schema(&targets::database_of(env, Some(export)), schema)
        .map_err(Error::denied)
}

impl App {
    /// Add an export (Contributor, with the use of its connection).
    pub async fn add_export(&self, actor: &Actor, new: NewExport) -> Result<(Export, Connection)> {
        let env = self
            .environment_for(actor, None, Operation::CreateExport)
            .await?;
        let acting = self.acting(actor, &env);
        let connection = acting.usable_connection(&env, &new.connection).await?;
        let mut settings = BTreeMap::new();
        if connection.kind == ConnectionKind::Postgresql {
            settings.insert(
                "database".to_string(),
                new.database
                    .clone()
                    .unwrap_or_else(|| targets::database_of(&env, None)),
            );
            if let Some(s) = &new.schema {
                settings.insert("schema".to_string(), s.clone());
            }
        } else if new.database.is_some() || new.schema.is_some() {
            return Err(Error::invalid(format!(
                "--database and --schema are for PostgreSQL connections; `{}` is a {} connection",
                connection.name, connection.kind
            )));
        }
        let now = Utc::now();
        let export = Export {
            id: ExportId::new(),
            environment_id: env.id,
            name: new.name.clone(),
            connection_id: connection.id,
            tables: new.tables.clone(),
            settings,
            schedule: schedule(&new.schedule)?,
            created_by: acting.principal().to_string(),
            created_at: now,
            updated_at: now,
        };
        invalid(&new.name, export.validate())?;
        for t in &export.tables {
            targets::split_table(t)?;
        }
        allowed_schema(&env, &export, &connection)?;
        acting.create_export(&env, &export).await?;
        Ok((export, connection))
    }

    /// Change an export; the changes made, in words (empty when nothing changed).
    pub async fn edit_export(
        &self,
        actor: &Actor,
        name: &str,
        c: ExportChanges,
    ) -> Result<Vec<String>> {
        let env = self
            .environment_for(actor, None, Operation::EditExport)
            .await?;
        let acting = self.acting(actor, &env);
        let mut e = acting.export(&env, name).await?;
        let mut changes = Vec::new();
        if let Some(name) = &c.connection {
            let conn = acting.usable_connection(&env, name).await?;
            e.connection_id = conn.id;
            changes.push(format!("connection {name}"));
        }
        for t in &c.add_tables {
            targets::split_table(t)?;
            if !e.tables.contains(t) {
                e.tables.push(t.clone());
                changes.push(format!("+{t}"));
            }
        }
        for t in &c.remove_tables {
            let before = e.tables.len();
            e.tables.retain(|x| x != t);
            if e.tables.len() == before {
                return Err(Error::invalid(format!(
                    "export `{}` does not send `{t}`",
                    e.name
                )));
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
        if let Some(db) = &c.database {
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
        if let Some(s) = &c.schema {
            e.settings.insert("schema".to_string(), s.clone());
            changes.push(format!("schema {s}"));
        }
        if let Some(s) = &c.schedule {
            e.schedule = schedule(s)?;
            changes.push(format!("schedule {}", e.schedule));
        }
        if changes.is_empty() {
            return Ok(changes);
        }
        invalid(&e.name, e.validate())?;
        if let Some(conn) = self.catalog().get_connection(e.connection_id).await? {
            allowed_schema(&env, &e, &conn)?;
        }
        e.updated_at = Utc::now();
        acting.update_export(&env, &e).await?;
        Ok(changes)
    }

    async fn summary(&self, env: &Environment, e: Export, runs: usize) -> Result<ExportSummary> {
        let connection = self
            .catalog()
            .get_connection(e.connection_id)
            .await?
            .map(|c| (c.name, c.kind));
        let process = e.process_name();
        let runs = self
            .catalog()
            .list_runs(env.id, 500)
            .await?
            .into_iter()
            .filter(|r| r.process == process)
            .take(runs)
            .collect();
        Ok(ExportSummary {
            retired_tables: list_of(&e, RETIRED_TABLES),
            previous_databases: list_of(&e, PREVIOUS_DATABASES),
            export: e,
            connection,
            runs,
        })
    }

    /// The exports of the environment named (the project's with `None`), with their
    /// last run (Viewer).
    pub async fn list_exports(
        &self,
        actor: &Actor,
        environment: Option<&str>,
    ) -> Result<(Environment, Vec<ExportSummary>)> {
        let env = self
            .environment_for(actor, environment, Operation::ViewExports)
            .await?;
        let mut out = Vec::new();
        for e in self.catalog().list_exports(env.id).await? {
            out.push(self.summary(&env, e, 1).await?);
        }
        Ok((env, out))
    }

    /// The tables an export may select: `<process folder>/<Entity>` of every entity
    /// published now in the environment named (Viewer).
    pub async fn exportable_tables(&self, actor: &Actor, environment: &str) -> Result<Vec<String>> {
        let env = self
            .environment_for(actor, Some(environment), Operation::ViewExports)
            .await?;
        let project = self.applied(actor, &env).await?.project;
        let lake = self.lake(&env).await?;
        let mut processes: Vec<lakecdp_core::Process> = project
            .sources
            .iter()
            .map(|s| lakecdp_core::Process::Ingestion(s.name.clone()))
            .collect();
        processes.extend([
            lakecdp_core::Process::Unification,
            lakecdp_core::Process::Activities,
            lakecdp_core::Process::Measures,
            lakecdp_core::Process::Segments,
            lakecdp_core::Process::Reports,
        ]);
        let mut out = Vec::new();
        for p in &processes {
            if let Some(model) = lakecdp_lake::publish::read_model(&lake, p).await? {
                let folder = p.folder();
                out.extend(
                    model
                        .entities
                        .iter()
                        .map(|e| format!("{folder}/{}", e.name)),
                );
            }
        }
        Ok(out)
    }

    /// One export with its last five runs (Viewer).
    pub async fn show_export(&self, actor: &Actor, name: &str) -> Result<ExportSummary> {
        let env = self
            .environment_for(actor, None, Operation::ViewExports)
            .await?;
        let e = self.acting(actor, &env).export(&env, name).await?;
        self.summary(&env, e, 5).await
    }

    /// Delete an export; what it wrote stays where it is (Contributor).
    pub async fn delete_export(&self, actor: &Actor, name: &str) -> Result<()> {
        let env = self.environment(None).await?;
        Ok(self.acting(actor, &env).delete_export(&env, name).await?)
    }

    /// Run the export named, or every export with a schedule (not `off`); the names run.
    /// Each run is recorded; fails when any failed, after all have run (RunExport).
    pub async fn run_exports(
        &self,
        actor: &Actor,
        name: Option<&str>,
        observer: &dyn Observer,
    ) -> Result<Vec<String>> {
        let env = self
            .environment_for(actor, None, Operation::RunExport)
            .await?;
        let names: Vec<String> = match name {
            Some(n) => vec![n.to_string()],
            None => self
                .catalog()
                .list_exports(env.id)
                .await?
                .into_iter()
                .filter(|e| e.schedule != ExportSchedule::Off)
                .map(|e| e.name)
                .collect(),
        };
        if !names.is_empty() {
            self.run_named_exports(actor, &env, &names, observer)
                .await?;
        }
        Ok(names)
    }

    /// Run the exports named, one after the other, each recorded in the run history.
    pub(crate) async fn run_named_exports(
        &self,
        actor: &Actor,
        env: &Environment,
        names: &[String],
        observer: &dyn Observer,
    ) -> Result<()> {
        let mut failed = Vec::new();
        for name in names {
            let started = self.start_export_in(actor, env, name).await?;
            let record = started
                .run(&crate::CancellationToken::new(), observer)
                .await?;
            if record.status != RunStatus::Succeeded {
                failed.push(name.clone());
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::new(
                crate::ErrorKind::Unavailable,
                format!(
                    "{} of {} export{} failed: {} (see `lakecdp export show NAME`)",
                    failed.len(),
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                    failed.join(", ")
                ),
            ))
        }
    }

    /// Start running the export named (Contributor, with the use of its connection):
    /// its run is recorded as Running at once, so a server can return its id before
    /// the work begins.
    pub async fn start_export(&self, actor: &Actor, name: &str) -> Result<StartedExport> {
        let env = self
            .environment_for(actor, None, Operation::RunExport)
            .await?;
        self.start_export_in(actor, &env, name).await
    }

    async fn start_export_in(
        &self,
        actor: &Actor,
        env: &Environment,
        name: &str,
    ) -> Result<StartedExport> {
        let acting = self.acting(actor, env);
        acting.require(env, Operation::RunExport).await?;
        let (export, connection) = acting.runnable_export(env, name).await?;
        let engine = self.applied(actor, env).await?.project.environment.engine;
        let lake = self.lake(env).await?;
        let record = RunRecord::start(env.id, export.process_name());
        self.catalog().record_run(&record).await?;
        Ok(StartedExport {
            app: self.clone(),
            env: env.clone(),
            lake,
            engine,
            export,
            connection,
            record,
        })
    }

    /// Run one export as a process of a refresh (which records it); the rows it sent.
    pub(crate) async fn run_export_in_refresh(
        &self,
        actor: &Actor,
        env: &Environment,
        lake: &Lake,
        engine: EngineChoice,
        name: &str,
        observer: &dyn Observer,
    ) -> Result<u64> {
        let (export, connection) = self.acting(actor, env).runnable_export(env, name).await?;
        self.run_one_export(env, lake, engine, &export, &connection, observer)
            .await
    }

    async fn run_one_export(
        &self,
        env: &Environment,
        lake: &Lake,
        engine: EngineChoice,
        export: &Export,
        connection: &Connection,
        observer: &dyn Observer,
    ) -> Result<u64> {
        let started = Instant::now();
        // the connection's allowed schemas may have changed since the export was set up
        allowed_schema(env, export, connection)?;
        // every selected table must be published before anything is sent
        let mut tables = Vec::new();
        for t in &export.tables {
            tables.push(targets::published_entity(lake, t).await?);
        }
        let target = targets::target_for(self, env, connection, Some(export)).await?;
        observer.event(&Event::ExportStarted {
            export: export.name.clone(),
            tables: tables.len(),
            destination: target.destination(),
        });
        let session = self.session(lake, &engine, false).await?;
        let mut run = target.begin(&export.name).await?;
        let mut errors = Vec::new();
        for (folder, entity) in tables {
            let schema = targets::entity_schema(&entity);
            let name = entity.name.clone();
            let stream = targets::entity_stream(&session, &folder, &entity).await?;
            let table = match run.export_table(&name, schema, stream).await {
                Ok(t) => ExportedTable {
                    name: t.name,
                    rows: t.rows,
                    bytes: t.bytes,
                    elapsed: t.elapsed,
                    error: None,
                },
                Err(e) => {
                    errors.push(format!("{name}: {e}"));
                    ExportedTable {
                        name,
                        rows: 0,
                        bytes: 0,
                        elapsed: Default::default(),
                        error: Some(e.to_string()),
                    }
                }
            };
            observer.event(&Event::ExportedTable {
                export: export.name.clone(),
                table,
            });
        }
        let summary = run.finish().await?;
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        observer.event(&Event::ExportFinished {
            export: export.name.clone(),
            rows: summary.rows(),
            tables: summary.tables.len(),
            elapsed: started.elapsed(),
            error: error.clone(),
        });
        match error {
            None => Ok(summary.rows()),
            Some(e) => Err(Error::new(crate::ErrorKind::Unavailable, e)),
        }
    }
}

/// An export whose run is recorded and about to start.
pub struct StartedExport {
    app: App,
    env: Environment,
    lake: Lake,
    engine: EngineChoice,
    export: Export,
    connection: Connection,
    record: RunRecord,
}

impl std::fmt::Debug for StartedExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedExport")
            .field("export", &self.export.name)
            .field("run", &self.record.id)
            .finish_non_exhaustive()
    }
}

impl StartedExport {
    /// The run's id.
    pub fn run_id(&self) -> &lakecdp_core::RunId {
        &self.record.id
    }

    /// Send the export's tables until done or `cancel` fires; its run record, final
    /// (Succeeded, Failed with its error, or Canceled). A canceled export leaves the
    /// destination's tables as the destination's own transaction left them: a table
    /// being sent keeps its previous export.
    pub async fn run(
        self,
        cancel: &crate::CancellationToken,
        observer: &dyn Observer,
    ) -> Result<RunRecord> {
        let StartedExport {
            app,
            env,
            lake,
            engine,
            export,
            connection,
            mut record,
        } = self;
        let work = app.run_one_export(&env, &lake, engine, &export, &connection, observer);
        let result = tokio::select! {
            r = work => Some(r),
            _ = cancel.cancelled() => None,
        };
        record.finished_at = Some(Utc::now());
        match result {
            Some(Ok(rows)) => {
                record.status = RunStatus::Succeeded;
                record.rows = Some(rows);
            }
            Some(Err(e)) => {
                observer.event(&Event::ExportFailed {
                    export: export.name.clone(),
                    message: e.full_message(),
                });
                record.status = RunStatus::Failed;
                record.error = Some(e.full_message());
            }
            None => {
                record.status = RunStatus::Canceled;
                record.error = Some("canceled".to_string());
            }
        }
        app.catalog().update_run(&record).await?;
        Ok(record)
    }
}
