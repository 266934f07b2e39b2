//! The embedded catalog: one SQLite database file, the default metadata store.
//!
//! One [`SqliteCatalog`] holds one connection behind a mutex and runs every statement on
//! tokio's blocking thread pool, so the async runtime never waits on the disk. Several
//! processes may open the same file: the database runs in WAL mode (readers do not block
//! the writer), waits up to [`BUSY_TIMEOUT`] for a lock held by another process, and every
//! change takes the write lock before it reads what it checks, so checks and writes of
//! two processes never interleave.

mod codec;
mod migrations;
mod objects;
mod security;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lakecdp_core::{
    ApiToken, Attachment, AuditEntry, AuditQuery, Connection as ConnectionSpec, ConnectionId,
    Environment, EnvironmentId, Export, ExportId, Leadership, PasswordCredential, Principal,
    ReportingConnection, Revision, Role, RoleAssignment, RunEvent, RunId, RunRecord, RunStatus,
    Session, Sharing, Throttle, Watermark,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use self::codec::{
    read_revision, storage, timestamp, violation, EnvironmentRow, RunRow, Violation, WatermarkRow,
    ENVIRONMENT_COLUMNS, REVISION_COLUMNS, RUN_COLUMNS, WATERMARK_COLUMNS,
};
use self::migrations::MIGRATIONS;
use crate::catalog::{Catalog, SealedSecret};
use crate::error::{Error, Result};
use crate::{validate, ENVIRONMENT, RUN};

/// How long a statement waits for a lock another connection holds before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The newest schema version this code knows.
pub fn latest_schema_version() -> u32 {
    migrations::latest(MIGRATIONS)
}

/// A [`Catalog`] in an SQLite database file (or in memory, for tests and one-off runs).
///
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct SqliteCatalog {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl fmt::Debug for SqliteCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => f.debug_struct("SqliteCatalog").field("path", path).finish(),
            None => f
                .debug_struct("SqliteCatalog")
                .field("path", &":memory:")
                .finish(),
        }
    }
}

impl SqliteCatalog {
    /// Open the catalog in the database file at `path`, creating the file and its parent
    /// folders when missing, and apply the schema migrations it lacks.
    ///
    /// Fails with [`Error::Migration`] when the database has a newer schema than this
    /// code knows, or when a migration fails (the database then stays at the last
    /// version that applied).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let at = path.clone();
        let conn = blocking(move || {
            if let Some(parent) = at.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Error::Storage(format!(
                        "cannot create the catalog folder `{}`: {e}",
                        parent.display()
                    ))
                })?;
            }
            let created = create_private(&at)?;
            let mut conn = Connection::open(&at).map_err(|e| {
                Error::Storage(format!(
                    "cannot open the catalog database `{}`: {e}",
                    at.display()
                ))
            })?;
            configure(&conn, true)?;
            let version = migrations::migrate(&mut conn, MIGRATIONS)?;
            if created {
                // SQLite gives them the database file's mode; made sure of here
                for suffix in ["-wal", "-shm"] {
                    let mut side = at.clone().into_os_string();
                    side.push(suffix);
                    make_private(Path::new(&side))?;
                }
            }
            tracing::debug!(path = %at.display(), version, "opened sqlite catalog");
            Ok(conn)
        })
        .await?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Some(path),
        })
    }

    /// A new, empty catalog that lives in memory and disappears when its last clone is
    /// dropped.
    pub async fn open_in_memory() -> Result<Self> {
        let conn = blocking(|| {
            let mut conn = Connection::open_in_memory().map_err(storage)?;
            configure(&conn, false)?;
            migrations::migrate(&mut conn, MIGRATIONS)?;
            Ok(conn)
        })
        .await?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: None,
        })
    }

    /// The database file, or `None` for an in-memory catalog.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Run `f` with the connection on the blocking thread pool.
    async fn call<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        blocking(move || {
            let mut conn = conn.lock().map_err(|_| {
                Error::Storage("the catalog connection was abandoned by a failed task".into())
            })?;
            f(&mut conn)
        })
        .await
    }

    /// Run `f` in a transaction that holds the write lock from its start, and commit
    /// when `f` succeeds.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(storage)?;
            let value = f(&tx)?;
            tx.commit().map_err(storage)?;
            Ok(value)
        })
        .await
    }
}

/// Run blocking work on tokio's blocking pool; a panic in it resumes in the caller.
async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Storage(format!("the catalog task was stopped: {e}"))),
    }
}

/// Creates the database file at `path`, readable and writable by its owner only
/// (mode 0600 on unix), unless it exists; true when it was created here. The catalog
/// holds sealed secrets, password hashes and sessions: nobody else needs to read it.
fn create_private(path: &Path) -> Result<bool> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::Storage(format!(
            "cannot create the catalog database `{}`: {e}",
            path.display()
        ))),
    }
}

/// Restricts an existing file to its owner (mode 0600 on unix); a missing file is
/// fine.
fn make_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Storage(format!(
                    "cannot make `{}` private to its owner: {e}",
                    path.display()
                )))
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Connection settings: lock waits, foreign keys, and WAL for files.
fn configure(conn: &Connection, file: bool) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(storage)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(storage)?;
    if file {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(storage)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Storage(format!(
                "the catalog database cannot use write-ahead logging (journal mode \
                 `{mode}`); put it on a local file system"
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(storage)?;
    }
    Ok(())
}

fn exists(tx: &Transaction<'_>, sql: &str, params: impl rusqlite::Params) -> Result<bool> {
    tx.prepare_cached(sql)
        .and_then(|mut stmt| stmt.exists(params))
        .map_err(storage)
}

fn environment_exists(tx: &Transaction<'_>, id: &str) -> Result<bool> {
    exists(tx, "SELECT 1 FROM environments WHERE id = ?1", [id])
}

fn select_environment(
    conn: &Connection,
    filter: &str,
    value: String,
) -> Result<Option<Environment>> {
    let sql = format!("SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE {filter} = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([value], EnvironmentRow::read).optional())
        .map_err(storage)?
        .transpose()
}

fn select_run(conn: &Connection, id: &str) -> Result<Option<RunRecord>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([id], RunRow::read).optional())
        .map_err(storage)?
        .transpose()
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn create_environment(&self, environment: &Environment) -> Result<()> {
        validate::environment(environment)?;
        let row = EnvironmentRow::from_environment(environment)?;
        self.write(move |tx| {
            if environment_exists(tx, &row.id)? {
                return Err(Error::AlreadyExists {
                    kind: ENVIRONMENT,
                    name: row.id,
                });
            }
            let name_taken = || Error::AlreadyExists {
                kind: ENVIRONMENT,
                name: row.name.clone(),
            };
            if exists(
                tx,
                "SELECT 1 FROM environments WHERE name = ?1",
                [&row.name],
            )? {
                return Err(name_taken());
            }
            tx.execute(
                "INSERT INTO environments (id, name, region, storage_json, output_format, \
                 retention_runs, created_by, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    row.id,
                    row.name,
                    row.region,
                    row.storage_json,
                    row.output_format,
                    row.retention_runs,
                    row.created_by,
                    row.created_at,
                    row.updated_at
                ],
            )
            .map_err(|e| match violation(&e) {
                Some(Violation::Unique) => name_taken(),
                _ => storage(e),
            })?;
            Ok(())
        })
        .await
    }

    async fn get_environment(&self, id: EnvironmentId) -> Result<Option<Environment>> {
        self.call(move |conn| select_environment(conn, "id", id.to_string()))
            .await
    }

    async fn find_environment(&self, name: &str) -> Result<Option<Environment>> {
        let name = name.to_string();
        self.call(move |conn| select_environment(conn, "name", name))
            .await
    }

    async fn list_environments(&self) -> Result<Vec<Environment>> {
        self.call(|conn| {
            let sql = format!("SELECT {ENVIRONMENT_COLUMNS} FROM environments ORDER BY name, id");
            let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
            let rows = stmt.query_map([], EnvironmentRow::read).map_err(storage)?;
            rows.map(|row| row.map_err(storage)?).collect()
        })
        .await
    }

    async fn update_environment(&self, environment: &Environment) -> Result<()> {
        validate::environment(environment)?;
        let row = EnvironmentRow::from_environment(environment)?;
        self.write(move |tx| {
            if !environment_exists(tx, &row.id)? {
                return Err(Error::environment_not_found(row.id));
            }
            let name_taken = || Error::AlreadyExists {
                kind: ENVIRONMENT,
                name: row.name.clone(),
            };
            if exists(
                tx,
                "SELECT 1 FROM environments WHERE name = ?1 AND id <> ?2",
                [&row.name, &row.id],
            )? {
                return Err(name_taken());
            }
            tx.execute(
                "UPDATE environments SET name = ?2, region = ?3, storage_json = ?4, \
                 output_format = ?5, retention_runs = ?6, updated_at = ?7 WHERE id = ?1",
                params![
                    row.id,
                    row.name,
                    row.region,
                    row.storage_json,
                    row.output_format,
                    row.retention_runs,
                    row.updated_at
                ],
            )
            .map_err(|e| match violation(&e) {
                Some(Violation::Unique) => name_taken(),
                _ => storage(e),
            })?;
            Ok(())
        })
        .await
    }

    async fn delete_environment(&self, id: EnvironmentId) -> Result<()> {
        let id = id.to_string();
        self.write(move |tx| {
            objects::delete_environment_objects(tx, &id)?;
            tx.execute("DELETE FROM runs WHERE environment_id = ?1", [&id])
                .map_err(storage)?;
            tx.execute("DELETE FROM watermarks WHERE environment_id = ?1", [&id])
                .map_err(storage)?;
            tx.execute("DELETE FROM revisions WHERE environment_id = ?1", [&id])
                .map_err(storage)?;
            let deleted = tx
                .execute("DELETE FROM environments WHERE id = ?1", [&id])
                .map_err(storage)?;
            if deleted == 0 {
                return Err(Error::environment_not_found(id));
            }
            Ok(())
        })
        .await
    }

    async fn record_run(&self, run: &RunRecord) -> Result<()> {
        validate::run(run)?;
        let row = RunRow::from_run(run)?;
        self.write(move |tx| {
            if !environment_exists(tx, &row.environment_id)? {
                return Err(Error::environment_not_found(row.environment_id));
            }
            let run_exists = || Error::AlreadyExists {
                kind: RUN,
                name: row.id.clone(),
            };
            if exists(tx, "SELECT 1 FROM runs WHERE id = ?1", [&row.id])? {
                return Err(run_exists());
            }
            tx.execute(
                "INSERT INTO runs (id, environment_id, process, status, started_at, \
                 finished_at, \"rows\", error, parent_id, revision) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    row.id,
                    row.environment_id,
                    row.process,
                    row.status,
                    row.started_at,
                    row.finished_at,
                    row.rows,
                    row.error,
                    row.parent_id,
                    row.revision
                ],
            )
            .map_err(|e| match violation(&e) {
                Some(Violation::Unique) => run_exists(),
                Some(Violation::ForeignKey) => {
                    Error::environment_not_found(row.environment_id.clone())
                }
                None => storage(e),
            })?;
            Ok(())
        })
        .await
    }

    async fn update_run(&self, run: &RunRecord) -> Result<()> {
        validate::run(run)?;
        let row = RunRow::from_run(run)?;
        let status = run.status;
        let environment_id = run.environment_id;
        self.write(move |tx| {
            let stored = select_run(tx, &row.id)?.ok_or_else(|| Error::run_not_found(&row.id))?;
            if stored.environment_id != environment_id {
                return Err(Error::Conflict(format!(
                    "run `{}` belongs to environment `{}`, not `{environment_id}`",
                    row.id, stored.environment_id
                )));
            }
            if stored.status.is_final() {
                let unchanged = stored.status == status
                    && stored.finished_at.map(timestamp) == row.finished_at
                    && stored.rows.and_then(|n| i64::try_from(n).ok()) == row.rows
                    && stored.error == row.error;
                if unchanged {
                    return Ok(());
                }
                return Err(Error::Conflict(format!(
                    "run `{}` has already finished ({}) and cannot change",
                    row.id, stored.status
                )));
            }
            tx.execute(
                "UPDATE runs SET status = ?2, finished_at = ?3, \"rows\" = ?4, error = ?5 \
                 WHERE id = ?1",
                params![row.id, row.status, row.finished_at, row.rows, row.error],
            )
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn get_run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        let id = id.to_string();
        self.call(move |conn| select_run(conn, &id)).await
    }

    async fn latest_run(
        &self,
        environment_id: EnvironmentId,
        process: &str,
        status: Option<RunStatus>,
    ) -> Result<Option<RunRecord>> {
        let id = environment_id.to_string();
        let process = process.to_string();
        let status = status.map(|s| s.as_str().to_string());
        self.call(move |conn| {
            let tx = conn.transaction().map_err(storage)?;
            if !environment_exists(&tx, &id)? {
                return Err(Error::environment_not_found(id));
            }
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE environment_id = ?1 AND process = ?2 \
                 AND (?3 IS NULL OR status = ?3) ORDER BY started_at DESC, id DESC LIMIT 1"
            );
            let mut stmt = tx.prepare_cached(&sql).map_err(storage)?;
            let mut rows = stmt
                .query_map(params![id, process, status], RunRow::read)
                .map_err(storage)?;
            match rows.next() {
                Some(row) => Ok(Some(row.map_err(storage)??)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn list_runs(
        &self,
        environment_id: EnvironmentId,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let id = environment_id.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            // One read transaction, so the existence check and the list agree.
            let tx = conn.transaction().map_err(storage)?;
            if !environment_exists(&tx, &id)? {
                return Err(Error::environment_not_found(id));
            }
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE environment_id = ?1 \
                 ORDER BY started_at DESC, id DESC LIMIT ?2"
            );
            let mut stmt = tx.prepare_cached(&sql).map_err(storage)?;
            let rows = stmt
                .query_map(params![id, limit], RunRow::read)
                .map_err(storage)?;
            rows.map(|row| row.map_err(storage)?).collect()
        })
        .await
    }

    async fn watermarks(&self, environment: EnvironmentId, source: &str) -> Result<Vec<Watermark>> {
        let id = environment.to_string();
        let source = source.to_string();
        self.call(move |conn| {
            // Text compares byte by byte (the columns' collation is BINARY), as Rust
            // orders strings.
            let sql = format!(
                "SELECT {WATERMARK_COLUMNS} FROM watermarks \
                 WHERE environment_id = ?1 AND source = ?2 ORDER BY table_name"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
            let rows = stmt
                .query_map(params![id, source], WatermarkRow::read)
                .map_err(storage)?;
            rows.map(|row| row.map_err(storage)?).collect()
        })
        .await
    }

    async fn add_revision(&self, revision: &Revision) -> Result<()> {
        validate::revision(revision)?;
        let r = revision.clone();
        let env = r.environment_id.to_string();
        self.write(move |tx| {
            if !environment_exists(tx, &env)? {
                return Err(Error::environment_not_found(env));
            }
            let latest: Option<i64> = tx
                .query_row(
                    "SELECT MAX(number) FROM revisions WHERE environment_id = ?1",
                    [&env],
                    |row| row.get(0),
                )
                .map_err(storage)?;
            let next = latest.unwrap_or(0) + 1;
            let number = i64::from(r.number);
            if number < next {
                return Err(Error::Conflict(format!(
                    "revision {} of environment `{env}` already exists; the latest is {}",
                    r.number,
                    next - 1
                )));
            }
            if number > next {
                return Err(Error::Invalid(format!(
                    "revision {} of environment `{env}` would leave a gap; the next is {next}",
                    r.number
                )));
            }
            tx.execute(
                "INSERT INTO revisions (environment_id, number, text, hash, base_dir, \
                 applied_by, applied_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    env,
                    number,
                    r.text,
                    r.hash,
                    r.base_dir,
                    r.applied_by,
                    timestamp(r.applied_at)
                ],
            )
            .map_err(|e| match violation(&e) {
                Some(Violation::Unique) => Error::Conflict(format!(
                    "revision {} of environment `{env}` already exists",
                    r.number
                )),
                _ => storage(e),
            })?;
            Ok(())
        })
        .await
    }

    async fn revision(
        &self,
        environment: EnvironmentId,
        number: Option<u32>,
    ) -> Result<Option<Revision>> {
        let env = environment.to_string();
        self.call(move |conn| {
            let (sql, n) = match number {
                Some(n) => (
                    format!(
                        "SELECT {REVISION_COLUMNS} FROM revisions \
                         WHERE environment_id = ?1 AND number = ?2"
                    ),
                    i64::from(n),
                ),
                None => (
                    format!(
                        "SELECT {REVISION_COLUMNS} FROM revisions \
                         WHERE environment_id = ?1 AND ?2 = ?2 ORDER BY number DESC LIMIT 1"
                    ),
                    0,
                ),
            };
            let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
            let mut rows = stmt
                .query_map(params![env, n], read_revision)
                .map_err(storage)?;
            rows.next().transpose().map_err(storage)?.transpose()
        })
        .await
    }

    async fn list_revisions(&self, environment: EnvironmentId) -> Result<Vec<Revision>> {
        let env = environment.to_string();
        self.call(move |conn| {
            let sql = format!(
                "SELECT {REVISION_COLUMNS} FROM revisions WHERE environment_id = ?1 \
                 ORDER BY number DESC"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
            let rows = stmt.query_map([env], read_revision).map_err(storage)?;
            rows.map(|row| row.map_err(storage)?).collect()
        })
        .await
    }

    async fn set_watermark(&self, watermark: &Watermark) -> Result<()> {
        validate::watermark(watermark)?;
        let row = WatermarkRow::from_watermark(watermark);
        self.write(move |tx| {
            if !environment_exists(tx, &row.environment_id)? {
                return Err(Error::environment_not_found(row.environment_id));
            }
            tx.execute(
                "INSERT INTO watermarks (environment_id, source, table_name, hour, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (environment_id, source, table_name) \
                 DO UPDATE SET hour = excluded.hour, updated_at = excluded.updated_at",
                params![
                    row.environment_id,
                    row.source,
                    row.table_name,
                    row.hour,
                    row.updated_at
                ],
            )
            .map_err(|e| match violation(&e) {
                Some(Violation::ForeignKey) => {
                    Error::environment_not_found(row.environment_id.clone())
                }
                _ => storage(e),
            })?;
            Ok(())
        })
        .await
    }

    async fn clear_watermarks(
        &self,
        environment: EnvironmentId,
        source: &str,
        table: Option<&str>,
    ) -> Result<u64> {
        let id = environment.to_string();
        let source = source.to_string();
        let table = table.map(str::to_string);
        self.write(move |tx| {
            let removed = match table {
                Some(table) => tx.execute(
                    "DELETE FROM watermarks \
                     WHERE environment_id = ?1 AND source = ?2 AND table_name = ?3",
                    params![id, source, table],
                ),
                None => tx.execute(
                    "DELETE FROM watermarks WHERE environment_id = ?1 AND source = ?2",
                    params![id, source],
                ),
            }
            .map_err(storage)?;
            u64::try_from(removed).map_err(|_| {
                Error::Storage(format!(
                    "removed {removed} watermarks, more than a u64 holds"
                ))
            })
        })
        .await
    }

    async fn schema_version(&self) -> Result<u32> {
        self.call(|conn| migrations::current_version(conn)).await
    }

    async fn child_runs(&self, parent: &RunId) -> Result<Vec<RunRecord>> {
        let parent = parent.to_string();
        self.call(move |conn| {
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE parent_id = ?1 ORDER BY started_at, id"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
            let rows = stmt.query_map([parent], RunRow::read).map_err(storage)?;
            rows.map(|row| row.map_err(storage)?).collect()
        })
        .await
    }

    async fn upsert_principal(&self, principal: &Principal) -> Result<Principal> {
        let p = principal.clone();
        self.write(move |tx| objects::upsert_principal(tx, &p))
            .await
    }

    async fn list_principals(&self) -> Result<Vec<Principal>> {
        self.call(|conn| objects::list_principals(conn)).await
    }

    async fn set_role(&self, assignment: &RoleAssignment) -> Result<()> {
        let a = assignment.clone();
        self.write(move |tx| objects::set_role(tx, &a)).await
    }

    async fn remove_role(&self, environment: EnvironmentId, principal: &str) -> Result<bool> {
        let p = principal.to_string();
        self.write(move |tx| objects::remove_role(tx, environment, &p))
            .await
    }

    async fn role_of(&self, environment: EnvironmentId, principal: &str) -> Result<Option<Role>> {
        let p = principal.to_string();
        self.call(move |conn| objects::role_of(conn, environment, &p))
            .await
    }

    async fn list_roles(&self, environment: EnvironmentId) -> Result<Vec<RoleAssignment>> {
        self.call(move |conn| objects::list_roles(conn, environment))
            .await
    }

    async fn create_connection(&self, connection: &ConnectionSpec) -> Result<()> {
        let c = connection.clone();
        self.write(move |tx| objects::create_connection(tx, &c))
            .await
    }

    async fn update_connection(&self, connection: &ConnectionSpec) -> Result<()> {
        let c = connection.clone();
        self.write(move |tx| objects::update_connection(tx, &c))
            .await
    }

    async fn find_connection(
        &self,
        environment: EnvironmentId,
        name: &str,
    ) -> Result<Option<ConnectionSpec>> {
        let n = name.to_string();
        self.call(move |conn| objects::find_connection(conn, environment, &n))
            .await
    }

    async fn get_connection(&self, id: ConnectionId) -> Result<Option<ConnectionSpec>> {
        self.call(move |conn| objects::get_connection(conn, id))
            .await
    }

    async fn list_connections(&self, environment: EnvironmentId) -> Result<Vec<ConnectionSpec>> {
        self.call(move |conn| objects::list_connections(conn, environment))
            .await
    }

    async fn delete_connection(&self, id: ConnectionId) -> Result<()> {
        self.write(move |tx| objects::delete_connection(tx, id))
            .await
    }

    async fn set_connection_secret(
        &self,
        id: ConnectionId,
        name: &str,
        sealed: &[u8],
    ) -> Result<()> {
        let (n, s) = (name.to_string(), sealed.to_vec());
        self.write(move |tx| objects::set_connection_secret(tx, id, &n, &s))
            .await
    }

    async fn connection_secret(&self, id: ConnectionId, name: &str) -> Result<Option<Vec<u8>>> {
        let n = name.to_string();
        self.call(move |conn| objects::connection_secret(conn, id, &n))
            .await
    }

    async fn sealed_secrets(&self) -> Result<Vec<SealedSecret>> {
        self.call(|conn| objects::sealed_secrets(conn)).await
    }

    async fn replace_sealed_secrets(&self, secrets: &[SealedSecret]) -> Result<()> {
        let s = secrets.to_vec();
        self.write(move |tx| objects::replace_sealed_secrets(tx, &s))
            .await
    }

    async fn rotate_sealed_secrets(
        &self,
        read: &[SealedSecret],
        replacements: &[SealedSecret],
    ) -> Result<()> {
        let (read, new) = (read.to_vec(), replacements.to_vec());
        self.write(move |tx| {
            if objects::sealed_secrets(tx)? != read {
                return Err(Error::Conflict(
                    "a secret was sealed, changed or removed while the master key was being \
                     rotated; nothing was changed: run the rotation again"
                        .into(),
                ));
            }
            objects::replace_sealed_secrets(tx, &new)
        })
        .await
    }

    async fn set_environment_secret(
        &self,
        environment: EnvironmentId,
        name: &str,
        sealed: &[u8],
    ) -> Result<()> {
        let (n, s) = (name.to_string(), sealed.to_vec());
        self.write(move |tx| objects::set_environment_secret(tx, environment, &n, &s))
            .await
    }

    async fn environment_secret(
        &self,
        environment: EnvironmentId,
        name: &str,
    ) -> Result<Option<Vec<u8>>> {
        let n = name.to_string();
        self.call(move |conn| objects::environment_secret(conn, environment, &n))
            .await
    }

    async fn environment_secret_names(&self, environment: EnvironmentId) -> Result<Vec<String>> {
        self.call(move |conn| objects::environment_secret_names(conn, environment))
            .await
    }

    async fn remove_environment_secret(
        &self,
        environment: EnvironmentId,
        name: &str,
    ) -> Result<bool> {
        let n = name.to_string();
        self.write(move |tx| objects::remove_environment_secret(tx, environment, &n))
            .await
    }

    async fn create_export(&self, export: &Export) -> Result<()> {
        let e = export.clone();
        self.write(move |tx| objects::create_export(tx, &e)).await
    }

    async fn update_export(&self, export: &Export) -> Result<()> {
        let e = export.clone();
        self.write(move |tx| objects::update_export(tx, &e)).await
    }

    async fn find_export(&self, environment: EnvironmentId, name: &str) -> Result<Option<Export>> {
        let n = name.to_string();
        self.call(move |conn| objects::find_export(conn, environment, &n))
            .await
    }

    async fn list_exports(&self, environment: EnvironmentId) -> Result<Vec<Export>> {
        self.call(move |conn| objects::list_exports(conn, environment))
            .await
    }

    async fn delete_export(&self, id: ExportId) -> Result<()> {
        self.write(move |tx| objects::delete_export(tx, id)).await
    }

    async fn get_principal(&self, name: &str) -> Result<Option<Principal>> {
        let n = name.to_string();
        self.call(move |conn| objects::select_principal(conn, &n))
            .await
    }

    async fn set_principal_flags(
        &self,
        name: &str,
        disabled: bool,
        administrator: bool,
    ) -> Result<()> {
        let n = name.to_string();
        self.write(move |tx| security::set_principal_flags(tx, &n, disabled, administrator))
            .await
    }

    async fn set_password(&self, credential: &PasswordCredential) -> Result<()> {
        let c = credential.clone();
        self.write(move |tx| security::set_password(tx, &c)).await
    }

    async fn password(&self, principal: &str) -> Result<Option<PasswordCredential>> {
        let p = principal.to_string();
        self.call(move |conn| security::password(conn, &p)).await
    }

    async fn add_group_member(&self, group: &str, member: &str) -> Result<bool> {
        let (g, m) = (group.to_string(), member.to_string());
        self.write(move |tx| security::add_group_member(tx, &g, &m))
            .await
    }

    async fn remove_group_member(&self, group: &str, member: &str) -> Result<bool> {
        let (g, m) = (group.to_string(), member.to_string());
        self.write(move |tx| security::remove_group_member(tx, &g, &m))
            .await
    }

    async fn group_members(&self, group: &str) -> Result<Vec<String>> {
        let g = group.to_string();
        self.call(move |conn| security::group_members(conn, &g))
            .await
    }

    async fn groups_of(&self, principal: &str) -> Result<Vec<String>> {
        let p = principal.to_string();
        self.call(move |conn| security::groups_of(conn, &p)).await
    }

    async fn delete_group(&self, group: &str) -> Result<bool> {
        let g = group.to_string();
        self.write(move |tx| security::delete_group(tx, &g)).await
    }

    async fn grants(
        &self,
        environment: EnvironmentId,
        principal: &str,
    ) -> Result<Vec<RoleAssignment>> {
        let p = principal.to_string();
        self.call(move |conn| security::grants(conn, environment, &p))
            .await
    }

    async fn create_session(&self, session: &Session) -> Result<()> {
        let s = session.clone();
        self.write(move |tx| security::create_session(tx, &s)).await
    }

    async fn session(&self, token_hash: &str) -> Result<Option<Session>> {
        let h = token_hash.to_string();
        self.call(move |conn| security::session(conn, &h)).await
    }

    async fn touch_session(&self, token_hash: &str, at: DateTime<Utc>) -> Result<bool> {
        let h = token_hash.to_string();
        self.write(move |tx| security::touch_session(tx, &h, at))
            .await
    }

    async fn delete_session(&self, token_hash: &str) -> Result<bool> {
        let h = token_hash.to_string();
        self.write(move |tx| security::delete_session(tx, &h)).await
    }

    async fn delete_sessions_of(&self, principal: &str) -> Result<u64> {
        let p = principal.to_string();
        self.write(move |tx| security::delete_sessions_of(tx, &p))
            .await
    }

    async fn create_token(&self, token: &ApiToken) -> Result<()> {
        let t = token.clone();
        self.write(move |tx| security::create_token(tx, &t)).await
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        let h = token_hash.to_string();
        self.call(move |conn| security::token_by_hash(conn, &h))
            .await
    }

    async fn list_tokens(&self, environment: EnvironmentId) -> Result<Vec<ApiToken>> {
        self.call(move |conn| security::list_tokens(conn, environment))
            .await
    }

    async fn revoke_token(
        &self,
        environment: EnvironmentId,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let n = name.to_string();
        self.write(move |tx| security::revoke_token(tx, environment, &n, at))
            .await
    }

    async fn touch_token(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        let id = id.to_string();
        self.write(move |tx| security::touch_token(tx, &id, at))
            .await
    }

    async fn record_sign_in_failure(
        &self,
        key: &str,
        at: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<Throttle> {
        let k = key.to_string();
        self.write(move |tx| security::record_sign_in_failure(tx, &k, at, window))
            .await
    }

    async fn sign_in_failures(&self, key: &str) -> Result<Option<Throttle>> {
        let k = key.to_string();
        self.call(move |conn| security::sign_in_failures(conn, &k))
            .await
    }

    async fn clear_sign_in_failures(&self, key: &str) -> Result<()> {
        let k = key.to_string();
        self.write(move |tx| security::clear_sign_in_failures(tx, &k))
            .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<i64> {
        let e = entry.clone();
        self.write(move |tx| security::append_audit(tx, &e)).await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let q = query.clone();
        self.call(move |conn| security::audit(conn, &q)).await
    }

    async fn append_run_event(&self, run: &RunId, at: DateTime<Utc>, body: &str) -> Result<u64> {
        let (r, b) = (run.clone(), body.to_string());
        self.write(move |tx| security::append_run_event(tx, &r, at, &b))
            .await
    }

    async fn run_events(&self, run: &RunId, after: u64, limit: usize) -> Result<Vec<RunEvent>> {
        let r = run.clone();
        self.call(move |conn| security::run_events(conn, &r, after, limit))
            .await
    }

    async fn request_cancel(&self, run: &RunId, at: DateTime<Utc>) -> Result<()> {
        let r = run.clone();
        self.write(move |tx| security::request_cancel(tx, &r, at))
            .await
    }

    async fn cancel_requested(&self, run: &RunId) -> Result<bool> {
        let r = run.clone();
        self.call(move |conn| security::cancel_requested(conn, &r))
            .await
    }

    async fn key(&self, name: &str, fresh: [u8; 32], now: DateTime<Utc>) -> Result<[u8; 32]> {
        let n = name.to_string();
        self.write(move |tx| security::key(tx, &n, fresh, now))
            .await
    }

    async fn sharing(&self, environment: EnvironmentId) -> Result<Option<Sharing>> {
        self.call(move |conn| objects::sharing(conn, environment))
            .await
    }

    async fn set_sharing(&self, sharing: &Sharing) -> Result<()> {
        validate::sharing(sharing)?;
        let s = sharing.clone();
        self.write(move |tx| objects::set_sharing(tx, &s)).await
    }

    async fn remove_sharing(&self, environment: EnvironmentId) -> Result<bool> {
        self.write(move |tx| objects::remove_sharing(tx, environment))
            .await
    }

    async fn attach(&self, attachment: &Attachment) -> Result<Attachment> {
        validate::attachment(attachment)?;
        let a = attachment.clone();
        self.write(move |tx| objects::attach(tx, &a)).await
    }

    async fn attachments(&self) -> Result<Vec<Attachment>> {
        self.call(|conn| objects::attachments(conn)).await
    }

    async fn put_reporting_connection(&self, connection: &ReportingConnection) -> Result<()> {
        validate::reporting(connection)?;
        let c = connection.clone();
        self.write(move |tx| objects::put_reporting(tx, &c)).await
    }

    async fn reporting_connections(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<ReportingConnection>> {
        self.call(move |conn| objects::reporting(conn, environment))
            .await
    }

    async fn delete_reporting_connection(
        &self,
        environment: EnvironmentId,
        name: &str,
    ) -> Result<bool> {
        let name = name.to_string();
        self.write(move |tx| objects::delete_reporting(tx, environment, &name))
            .await
    }

    async fn detach(&self, organization: &str) -> Result<bool> {
        let o = organization.to_string();
        self.write(move |tx| objects::detach(tx, &o)).await
    }

    async fn take_leadership(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Leadership> {
        let (n, h) = (name.to_string(), holder.to_string());
        self.write(move |tx| security::take_leadership(tx, &n, &h, now, expires_at))
            .await
    }

    async fn release_leadership(&self, name: &str, holder: &str) -> Result<()> {
        let (n, h) = (name.to_string(), holder.to_string());
        self.write(move |tx| security::release_leadership(tx, &n, &h))
            .await
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use lakecdp_core::EnvironmentId;

    use super::*;
    use crate::conformance::CatalogHarness;

    /// An in-memory catalog, read raw through its own connection.
    struct Memory(SqliteCatalog);

    #[async_trait]
    impl CatalogHarness for Memory {
        fn catalog(&self) -> &dyn Catalog {
            &self.0
        }

        async fn raw_environment_row(&self, id: EnvironmentId) -> Result<Option<String>> {
            self.0
                .call(move |conn| {
                    conn.query_row(
                        "SELECT id || '|' || name || '|' || COALESCE(region, '') || '|' || \
                         storage_json || '|' || output_format || '|' || retention_runs || '|' \
                         || created_by || '|' || created_at || '|' || updated_at \
                         FROM environments WHERE id = ?1",
                        [id.to_string()],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(storage)
                })
                .await
        }
    }

    async fn memory() -> Memory {
        Memory(SqliteCatalog::open_in_memory().await.unwrap())
    }

    crate::catalog_conformance_suite!(memory());

    #[tokio::test]
    async fn in_memory_catalog_is_at_the_latest_schema() {
        let catalog = SqliteCatalog::open_in_memory().await.unwrap();
        assert_eq!(
            catalog.schema_version().await.unwrap(),
            latest_schema_version()
        );
        assert!(catalog.path().is_none());
        assert_eq!(
            format!("{catalog:?}"),
            "SqliteCatalog { path: \":memory:\" }"
        );
    }
}
