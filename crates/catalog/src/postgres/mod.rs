//! The PostgreSQL catalog: the metadata store for several lakecdp instances that share
//! one database server.
//!
//! One [`PostgresCatalog`] keeps a small pool of connections (at most
//! [`MAX_CONNECTIONS`]). Every method is one statement or one transaction, so it has its
//! whole effect or none. Transactions run at `READ COMMITTED`; where a method reads what
//! it then checks or numbers, it first locks what the check depends on, so that checks
//! and writes of two instances never interleave:
//!
//! - numbering (run events) and final-status checks (runs) lock the run's row
//!   (`SELECT ... FOR UPDATE`); sign-in failures lock the key's row;
//! - revision numbers and names rely on unique indexes: the loser of a race gets
//!   [`Error::Conflict`] (revisions) or [`Error::AlreadyExists`] (names);
//! - a master-key rotation locks both secret tables against writers
//!   (`SHARE ROW EXCLUSIVE`) before it reads and compares them;
//! - leadership is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE`, which locks the row;
//! - deleting an environment or a connection locks its row first, so that nothing is
//!   added to it meanwhile.
//!
//! Names unique without regard to ASCII case have unique indexes on `lower(name)`, on
//! text columns `COLLATE "C"` (see `migrations/postgres/0001_environments_and_runs.sql`).
//!
//! The password of the catalog URL never appears in an error, a log line or `Debug`
//! output.

mod codec;
mod migrations;
mod objects;
mod pool;
mod security;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lakecdp_core::pgssl::check_plain_password;
use lakecdp_core::SslMode;
use lakecdp_core::{
    ApiToken, Attachment, AuditEntry, AuditQuery, Connection as ConnectionSpec, ConnectionId,
    Environment, EnvironmentId, Export, ExportId, Leadership, PasswordCredential, Principal,
    ReportingConnection, Revision, Role, RoleAssignment, RunEvent, RunId, RunRecord, RunStatus,
    Session, Sharing, StorageConfig, Throttle, Watermark,
};
use lakecdp_pgtls::PgTls;
use tokio_postgres::config::Host;
use tokio_postgres::types::FromSql;
use tokio_postgres::{Config, GenericClient, IsolationLevel, Row, Transaction};

use self::codec::{
    corrupt, fold, format_text, from_ts, opt_ts, parse_format, run_id, storage, to_u32, to_u64, ts,
    violation, Redactor, Violation,
};
#[cfg(doc)]
use self::pool::MAX_CONNECTIONS;
use self::pool::{Pool, Pooled};
use crate::catalog::{Catalog, SealedSecret};
use crate::error::{Error, Result};
use crate::{validate, ENVIRONMENT, RUN};

/// A [`Catalog`] in a PostgreSQL database.
///
/// It keeps at most eight connections open (see the module documentation for how
/// methods stay atomic). Cloning is cheap and shares the pool of connections.
#[derive(Clone)]
pub struct PostgresCatalog {
    pool: Arc<Pool>,
}

impl fmt::Debug for PostgresCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresCatalog")
            .field("database", &self.pool.redactor().target())
            .finish()
    }
}

impl PostgresCatalog {
    /// Connect to the catalog in the database a `postgresql://` or `postgres://` URL
    /// names, and apply the schema migrations it lacks.
    ///
    /// The URL takes libpq's parameters, e.g.
    /// `postgresql://lakecdp:PASSWORD@db.example.com:5432/lakecdp?connect_timeout=5`;
    /// `options=-c%20search_path%3Dlakecdp` puts the catalog's tables in the schema
    /// `lakecdp` (which must exist) instead of `public`. The password never appears in
    /// an error.
    ///
    /// TLS is set as libpq sets it: `sslmode=disable|prefer|require|verify-full`, and for
    /// `verify-full` the CA file `sslrootcert=/path/to/ca.pem` (see [`lakecdp_pgtls`]).
    /// A URL with a password for a host other than this machine must say `sslmode`
    /// `require` or `verify-full`, or `disable` explicitly; otherwise it is refused with
    /// [`Error::Invalid`] before anything is sent.
    ///
    /// Fails with [`Error::Invalid`] when the URL is not a PostgreSQL URL,
    /// [`Error::Storage`] when the server cannot be reached or refuses the credentials,
    /// and [`Error::Migration`] when the database has a newer schema than this code
    /// knows or a migration fails (the database then stays at the last version that
    /// applied). Several instances may connect to one new database at once: the schema
    /// is created once.
    pub async fn connect(url: &str) -> Result<Self> {
        let (config, tls, redactor) = parse_url(url)?;
        let pool = Arc::new(Pool::new(config, tls, redactor));
        let version = {
            let mut client = pool.get().await?;
            migrations::migrate(&mut client, migrations::MIGRATIONS).await?
        };
        tracing::debug!(database = %pool.redactor().target(), version, "opened postgres catalog");
        Ok(Self { pool })
    }

    /// A connection of the pool for one method.
    async fn client(&self) -> Result<Pooled<'_>> {
        self.pool.get().await
    }
}

/// The configuration of a catalog URL, its TLS setting, and a redactor that knows its
/// password.
fn parse_url(url: &str) -> Result<(Config, PgTls, Redactor)> {
    let url = url.trim();
    if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
        return Err(Error::Invalid(
            "a PostgreSQL catalog URL starts with `postgresql://` or `postgres://`".into(),
        ));
    }
    // Before the URL is parsed, the password is whatever follows the user's name.
    let raw_password = url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(""))
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password.to_string());
    let (url, sslmode, sslrootcert) = take_tls_params(url)?;
    let config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
        let early = Redactor::new(raw_password.clone(), String::new());
        Error::Invalid(early.redact(&format!(
            "the catalog URL is not a valid PostgreSQL URL: {}",
            codec::describe(&e)
        )))
    })?;
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let target = format!(
        "{user}@{host}:{port}/{}",
        config.get_dbname().unwrap_or(user)
    );
    let declared = sslmode
        .as_deref()
        .map(|m| {
            m.parse::<SslMode>()
                .map_err(|e| Error::Invalid(format!("the catalog URL's `sslmode`: {e}")))
        })
        .transpose()?;
    let unix = matches!(config.get_hosts().first(), Some(h) if !matches!(h, Host::Tcp(_)));
    if !unix {
        check_plain_password(
            "the catalog URL",
            &host,
            declared,
            config.get_password().is_some(),
        )
        .map_err(|e| {
            Error::Invalid(format!(
                "{e} (as URL parameters, e.g. `?sslmode=verify-full&sslrootcert=/path/to/ca.pem`)"
            ))
        })?;
    }
    let tls = PgTls::new(
        declared.unwrap_or(SslMode::Disable),
        sslrootcert.as_deref().map(std::path::Path::new),
    )
    .map_err(|e| Error::Invalid(format!("the catalog URL: {e}")))?;
    // Both the decoded password and the URL's spelling of it are redacted.
    let redactor = Redactor::new(password.into_iter().chain(raw_password), target);
    Ok((config, tls, redactor))
}

/// The URL without its `sslmode` and `sslrootcert` parameters (tokio-postgres knows
/// neither `verify-full` nor `sslrootcert`), and their values.
fn take_tls_params(url: &str) -> Result<(String, Option<String>, Option<String>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None, None));
    };
    let (mut sslmode, mut sslrootcert) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        let value = || {
            url::form_urlencoded::parse(pair.as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        match key {
            "sslmode" => sslmode = Some(value()),
            "sslrootcert" => sslrootcert = Some(value()),
            _ => kept.push(pair),
        }
    }
    if sslrootcert.as_deref().is_some_and(str::is_empty) {
        return Err(Error::Invalid(
            "the catalog URL's `sslrootcert` is empty: give the path of the CA file".into(),
        ));
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, sslmode, sslrootcert))
}

/// Begin a transaction that changes the catalog.
async fn write<'a>(client: &'a mut Pooled<'_>) -> Result<Transaction<'a>> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(storage)
}

/// Begin a transaction that reads several statements from one snapshot.
async fn read<'a>(client: &'a mut Pooled<'_>) -> Result<Transaction<'a>> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(storage)
}

/// End a transaction: commit it when `result` is a success, otherwise roll it back
/// at once, so that the connection goes back to the pool holding no lock.
async fn finish<T>(tx: Transaction<'_>, result: Result<T>) -> Result<T> {
    match result {
        Ok(value) => {
            tx.commit().await.map_err(storage)?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::debug!(error = %codec::describe(&rollback), "catalog rollback failed");
            }
            Err(e)
        }
    }
}

/// Column `i` of `row`.
fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(storage)
}

/// Whether `sql` with `params` returns a row.
async fn exists(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<bool> {
    Ok(client
        .query_opt(sql, params)
        .await
        .map_err(storage)?
        .is_some())
}

/// Whether the environment `id` exists.
async fn environment_exists(client: &impl GenericClient, id: &str) -> Result<bool> {
    exists(client, "SELECT 1 FROM environments WHERE id = $1", &[&id]).await
}

/// The columns [`read_environment`] expects, in order.
const ENVIRONMENT_COLUMNS: &str = "id, name, region, storage_json::text, output_format, \
     retention_runs, created_by, created_at, updated_at";

fn read_environment(row: &Row) -> Result<Environment> {
    let id: String = get(row, 0)?;
    let name: String = get(row, 1)?;
    let storage_json: String = get(row, 3)?;
    let output_format: String = get(row, 4)?;
    let retention_runs: i64 = get(row, 5)?;
    let storage: StorageConfig = serde_json::from_str(&storage_json).map_err(|e| {
        Error::Storage(format!(
            "the stored storage configuration of environment `{name}` is unreadable: {e}"
        ))
    })?;
    Ok(Environment {
        id: id
            .parse()
            .map_err(|e| corrupt(&format!("environment id `{id}`"), e))?,
        region: get(row, 2)?,
        storage,
        output_format: parse_format(&output_format)?,
        retention_runs: to_u32("retention", retention_runs)?,
        created_by: get(row, 6)?,
        created_at: from_ts(get(row, 7)?),
        updated_at: from_ts(get(row, 8)?),
        name,
    })
}

/// The storage configuration as stored.
fn storage_json(e: &Environment) -> Result<String> {
    serde_json::to_string(&e.storage).map_err(|err| {
        Error::Invalid(format!(
            "the storage configuration of environment `{}` cannot be stored: {err}",
            e.name
        ))
    })
}

async fn select_environment(
    client: &impl GenericClient,
    filter: &str,
    value: &str,
) -> Result<Option<Environment>> {
    let sql = format!("SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE {filter} = $1");
    client
        .query_opt(&sql, &[&value])
        .await
        .map_err(storage)?
        .as_ref()
        .map(read_environment)
        .transpose()
}

/// The columns [`read_run`] expects, in order.
const RUN_COLUMNS: &str = "id, environment_id, process, status, started_at, finished_at, \
     \"rows\", error, parent_id, revision";

fn read_run(row: &Row) -> Result<RunRecord> {
    let id: String = get(row, 0)?;
    let environment_id: String = get(row, 1)?;
    let status: String = get(row, 3)?;
    let finished_at: Option<std::time::SystemTime> = get(row, 5)?;
    let rows: Option<i64> = get(row, 6)?;
    let parent_id: Option<String> = get(row, 8)?;
    let revision: Option<i64> = get(row, 9)?;
    Ok(RunRecord {
        environment_id: environment_id.parse().map_err(|e| {
            corrupt(
                &format!("environment id `{environment_id}` of run `{id}`"),
                e,
            )
        })?,
        process: get(row, 2)?,
        status: status
            .parse::<RunStatus>()
            .map_err(|e| Error::Storage(format!("run `{id}`: stored {e}")))?,
        started_at: from_ts(get(row, 4)?),
        finished_at: finished_at.map(from_ts),
        rows: rows.map(|n| to_u64("row count", n)).transpose()?,
        error: get(row, 7)?,
        parent: parent_id.map(run_id).transpose()?,
        revision: revision.map(|n| to_u32("revision", n)).transpose()?,
        id: run_id(id)?,
    })
}

async fn select_run(
    client: &impl GenericClient,
    id: &str,
    lock: bool,
) -> Result<Option<RunRecord>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    client
        .query_opt(&sql, &[&id])
        .await
        .map_err(storage)?
        .as_ref()
        .map(read_run)
        .transpose()
}

/// A run's row count as stored.
fn stored_rows(run: &RunRecord) -> Result<Option<i64>> {
    run.rows
        .map(|n| {
            i64::try_from(n).map_err(|_| {
                Error::Invalid(format!(
                    "run `{}` reports {n} rows, more than the catalog can store",
                    run.id
                ))
            })
        })
        .transpose()
}

/// The columns [`read_revision`] expects, in order.
const REVISION_COLUMNS: &str =
    "environment_id, number, text, hash, base_dir, applied_by, applied_at";

fn read_revision(row: &Row) -> Result<Revision> {
    let environment_id: String = get(row, 0)?;
    Ok(Revision {
        environment_id: environment_id
            .parse()
            .map_err(|e| corrupt("environment id of a revision", e))?,
        number: to_u32("revision number", get(row, 1)?)?,
        text: get(row, 2)?,
        hash: get(row, 3)?,
        base_dir: get(row, 4)?,
        applied_by: get(row, 5)?,
        applied_at: from_ts(get(row, 6)?),
    })
}

/// The columns [`read_watermark`] expects, in order.
const WATERMARK_COLUMNS: &str = "environment_id, source, table_name, hour, updated_at";

fn read_watermark(row: &Row) -> Result<Watermark> {
    let environment_id: String = get(row, 0)?;
    Ok(Watermark {
        environment_id: environment_id
            .parse()
            .map_err(|e| corrupt("environment id of a watermark", e))?,
        source: get(row, 1)?,
        table: get(row, 2)?,
        hour: from_ts(get(row, 3)?),
        updated_at: from_ts(get(row, 4)?),
    })
}

/// Read every row with `f`.
fn read_all<T>(rows: Vec<Row>, f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

#[async_trait]
impl Catalog for PostgresCatalog {
    async fn create_environment(&self, environment: &Environment) -> Result<()> {
        validate::environment(environment)?;
        let e = environment;
        let id = e.id.to_string();
        let storage_json = storage_json(e)?;
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = async {
            let id_taken = || Error::AlreadyExists {
                kind: ENVIRONMENT,
                name: id.clone(),
            };
            let name_taken = || Error::AlreadyExists {
                kind: ENVIRONMENT,
                name: e.name.clone(),
            };
            if environment_exists(&tx, &id).await? {
                return Err(id_taken());
            }
            if exists(
                &tx,
                "SELECT 1 FROM environments WHERE lower(name) = $1",
                &[&fold(&e.name)],
            )
            .await?
            {
                return Err(name_taken());
            }
            tx.execute(
                "INSERT INTO environments (id, name, region, storage_json, output_format, \
             retention_runs, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7, $8, $9)",
                &[
                    &id,
                    &e.name,
                    &e.region,
                    &storage_json,
                    &format_text(e.output_format),
                    &i64::from(e.retention_runs),
                    &e.created_by,
                    &ts(e.created_at),
                    &ts(e.updated_at),
                ],
            )
            .await
            .map_err(|err| match violation(&err) {
                Some(Violation::Unique) if codec::constraint(&err) == Some("environments_pkey") => {
                    id_taken()
                }
                Some(Violation::Unique) => name_taken(),
                _ => storage(err),
            })?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    async fn get_environment(&self, id: EnvironmentId) -> Result<Option<Environment>> {
        let client = self.client().await?;
        select_environment(&*client, "id", &id.to_string()).await
    }

    async fn find_environment(&self, name: &str) -> Result<Option<Environment>> {
        let client = self.client().await?;
        select_environment(&*client, "lower(name)", &fold(name)).await
    }

    async fn list_environments(&self) -> Result<Vec<Environment>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments ORDER BY lower(name), name, id"
        );
        let rows = client.query(&sql, &[]).await.map_err(storage)?;
        read_all(rows, read_environment)
    }

    async fn update_environment(&self, environment: &Environment) -> Result<()> {
        validate::environment(environment)?;
        let e = environment;
        let id = e.id.to_string();
        let storage_json = storage_json(e)?;
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = async {
            if !environment_exists(&tx, &id).await? {
                return Err(Error::environment_not_found(id));
            }
            let name_taken = || Error::AlreadyExists {
                kind: ENVIRONMENT,
                name: e.name.clone(),
            };
            if exists(
                &tx,
                "SELECT 1 FROM environments WHERE lower(name) = $1 AND id <> $2",
                &[&fold(&e.name), &id],
            )
            .await?
            {
                return Err(name_taken());
            }
            tx.execute(
                "UPDATE environments SET name = $2, region = $3, storage_json = $4::text::jsonb, \
             output_format = $5, retention_runs = $6, updated_at = $7 WHERE id = $1",
                &[
                    &id,
                    &e.name,
                    &e.region,
                    &storage_json,
                    &format_text(e.output_format),
                    &i64::from(e.retention_runs),
                    &ts(e.updated_at),
                ],
            )
            .await
            .map_err(|err| match violation(&err) {
                Some(Violation::Unique) => name_taken(),
                _ => storage(err),
            })?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    async fn delete_environment(&self, id: EnvironmentId) -> Result<()> {
        let id = id.to_string();
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = async {
            // Locked first: what refers to it waits, then finds it gone.
            if !exists(
                &tx,
                "SELECT 1 FROM environments WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await?
            {
                return Err(Error::environment_not_found(id));
            }
            // Its runs (and their events), watermarks, revisions, roles, connections (and
            // their secrets), exports, secrets and tokens go by `ON DELETE CASCADE`.
            tx.execute("DELETE FROM environments WHERE id = $1", &[&id])
                .await
                .map_err(storage)?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    async fn record_run(&self, run: &RunRecord) -> Result<()> {
        validate::run(run)?;
        let rows = stored_rows(run)?;
        let id = run.id.to_string();
        let env = run.environment_id.to_string();
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = async {
            if !environment_exists(&tx, &env).await? {
                return Err(Error::environment_not_found(env));
            }
            let run_exists = || Error::AlreadyExists {
                kind: RUN,
                name: id.clone(),
            };
            if exists(&tx, "SELECT 1 FROM runs WHERE id = $1", &[&id]).await? {
                return Err(run_exists());
            }
            tx.execute(
                "INSERT INTO runs (id, environment_id, process, status, started_at, \
             finished_at, \"rows\", error, parent_id, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &id,
                    &env,
                    &run.process,
                    &run.status.as_str(),
                    &ts(run.started_at),
                    &opt_ts(run.finished_at),
                    &rows,
                    &run.error,
                    &run.parent.as_ref().map(|p| p.to_string()),
                    &run.revision.map(i64::from),
                ],
            )
            .await
            .map_err(|e| match violation(&e) {
                Some(Violation::Unique) => run_exists(),
                Some(Violation::ForeignKey) => Error::environment_not_found(env.clone()),
                None => storage(e),
            })?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    async fn update_run(&self, run: &RunRecord) -> Result<()> {
        validate::run(run)?;
        let rows = stored_rows(run)?;
        let id = run.id.to_string();
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = async {
            // Locked, so that two updates to a final status cannot both pass the check.
            let stored = select_run(&tx, &id, true)
                .await?
                .ok_or_else(|| Error::run_not_found(&id))?;
            if stored.environment_id != run.environment_id {
                return Err(Error::Conflict(format!(
                    "run `{id}` belongs to environment `{}`, not `{}`",
                    stored.environment_id, run.environment_id
                )));
            }
            let finished_at = opt_ts(run.finished_at);
            if stored.status.is_final() {
                let unchanged = stored.status == run.status
                    && opt_ts(stored.finished_at) == finished_at
                    && stored.rows == run.rows
                    && stored.error == run.error;
                if unchanged {
                    return Ok(());
                }
                return Err(Error::Conflict(format!(
                    "run `{id}` has already finished ({}) and cannot change",
                    stored.status
                )));
            }
            tx.execute(
                "UPDATE runs SET status = $2, finished_at = $3, \"rows\" = $4, error = $5 \
             WHERE id = $1",
                &[&id, &run.status.as_str(), &finished_at, &rows, &run.error],
            )
            .await
            .map_err(storage)?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    async fn get_run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        let client = self.client().await?;
        select_run(&*client, id.as_str(), false).await
    }

    async fn latest_run(
        &self,
        environment_id: EnvironmentId,
        process: &str,
        status: Option<RunStatus>,
    ) -> Result<Option<RunRecord>> {
        let id = environment_id.to_string();
        let status = status.map(|s| s.as_str().to_string());
        let mut client = self.client().await?;
        let tx = read(&mut client).await?;
        let result = async {
            if !environment_exists(&tx, &id).await? {
                return Err(Error::environment_not_found(id));
            }
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE environment_id = $1 AND process = $2 \
                 AND ($3::text IS NULL OR status = $3) ORDER BY started_at DESC, id DESC LIMIT 1"
            );
            let rows = tx
                .query(&sql, &[&id, &process, &status])
                .await
                .map_err(storage)?;
            Ok(read_all(rows, read_run)?.into_iter().next())
        }
        .await;
        finish(tx, result).await
    }

    async fn list_runs(
        &self,
        environment_id: EnvironmentId,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let id = environment_id.to_string();
        let mut client = self.client().await?;
        // One snapshot, so the existence check and the list agree.
        let tx = read(&mut client).await?;
        let result = async {
            if !environment_exists(&tx, &id).await? {
                return Err(Error::environment_not_found(id));
            }
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE environment_id = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2"
            );
            let rows = tx
                .query(&sql, &[&id, &codec::big(limit)])
                .await
                .map_err(storage)?;
            read_all(rows, read_run)
        }
        .await;
        finish(tx, result).await
    }

    async fn watermarks(&self, environment: EnvironmentId, source: &str) -> Result<Vec<Watermark>> {
        let client = self.client().await?;
        // Text is `COLLATE "C"`: it sorts byte by byte, as Rust orders strings.
        let sql = format!(
            "SELECT {WATERMARK_COLUMNS} FROM watermarks \
             WHERE environment_id = $1 AND source = $2 ORDER BY table_name"
        );
        let rows = client
            .query(&sql, &[&environment.to_string(), &source])
            .await
            .map_err(storage)?;
        read_all(rows, read_watermark)
    }

    async fn set_watermark(&self, watermark: &Watermark) -> Result<()> {
        validate::watermark(watermark)?;
        let w = watermark;
        let env = w.environment_id.to_string();
        let client = self.client().await?;
        // One statement: the reference to the environment is its existence check.
        client
            .execute(
                "INSERT INTO watermarks (environment_id, source, table_name, hour, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (environment_id, source, table_name) \
                 DO UPDATE SET hour = excluded.hour, updated_at = excluded.updated_at",
                &[&env, &w.source, &w.table, &ts(w.hour), &ts(w.updated_at)],
            )
            .await
            .map_err(|e| match violation(&e) {
                Some(Violation::ForeignKey) => Error::environment_not_found(env.clone()),
                _ => storage(e),
            })?;
        Ok(())
    }

    async fn clear_watermarks(
        &self,
        environment: EnvironmentId,
        source: &str,
        table: Option<&str>,
    ) -> Result<u64> {
        let env = environment.to_string();
        let client = self.client().await?;
        let removed = match table {
            Some(table) => {
                client
                    .execute(
                        "DELETE FROM watermarks \
                         WHERE environment_id = $1 AND source = $2 AND table_name = $3",
                        &[&env, &source, &table],
                    )
                    .await
            }
            None => {
                client
                    .execute(
                        "DELETE FROM watermarks WHERE environment_id = $1 AND source = $2",
                        &[&env, &source],
                    )
                    .await
            }
        }
        .map_err(storage)?;
        Ok(removed)
    }

    async fn add_revision(&self, revision: &Revision) -> Result<()> {
        validate::revision(revision)?;
        let r = revision;
        let env = r.environment_id.to_string();
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = async {
            if !environment_exists(&tx, &env).await? {
                return Err(Error::environment_not_found(env));
            }
            let latest: Option<i64> = get(
                &tx.query_one(
                    "SELECT MAX(number) FROM revisions WHERE environment_id = $1",
                    &[&env],
                )
                .await
                .map_err(storage)?,
                0,
            )?;
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
            // Two applies racing for the same number: the primary key lets one in.
            tx.execute(
                "INSERT INTO revisions (environment_id, number, text, hash, base_dir, \
             applied_by, applied_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &env,
                    &number,
                    &r.text,
                    &r.hash,
                    &r.base_dir,
                    &r.applied_by,
                    &ts(r.applied_at),
                ],
            )
            .await
            .map_err(|e| match violation(&e) {
                Some(Violation::Unique) => Error::Conflict(format!(
                    "revision {} of environment `{env}` already exists",
                    r.number
                )),
                Some(Violation::ForeignKey) => Error::environment_not_found(env.clone()),
                None => storage(e),
            })?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    async fn revision(
        &self,
        environment: EnvironmentId,
        number: Option<u32>,
    ) -> Result<Option<Revision>> {
        let env = environment.to_string();
        let client = self.client().await?;
        let row = match number {
            Some(n) => {
                let sql = format!(
                    "SELECT {REVISION_COLUMNS} FROM revisions \
                     WHERE environment_id = $1 AND number = $2"
                );
                client.query_opt(&sql, &[&env, &i64::from(n)]).await
            }
            None => {
                let sql = format!(
                    "SELECT {REVISION_COLUMNS} FROM revisions \
                     WHERE environment_id = $1 ORDER BY number DESC LIMIT 1"
                );
                client.query_opt(&sql, &[&env]).await
            }
        }
        .map_err(storage)?;
        row.as_ref().map(read_revision).transpose()
    }

    async fn list_revisions(&self, environment: EnvironmentId) -> Result<Vec<Revision>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {REVISION_COLUMNS} FROM revisions WHERE environment_id = $1 \
             ORDER BY number DESC"
        );
        let rows = client
            .query(&sql, &[&environment.to_string()])
            .await
            .map_err(storage)?;
        read_all(rows, read_revision)
    }

    async fn schema_version(&self) -> Result<u32> {
        let client = self.client().await?;
        migrations::current_version(&*client).await
    }

    async fn child_runs(&self, parent: &RunId) -> Result<Vec<RunRecord>> {
        let client = self.client().await?;
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM runs WHERE parent_id = $1 ORDER BY started_at, id");
        let rows = client
            .query(&sql, &[&parent.as_str()])
            .await
            .map_err(storage)?;
        read_all(rows, read_run)
    }

    async fn upsert_principal(&self, principal: &Principal) -> Result<Principal> {
        let client = self.client().await?;
        objects::upsert_principal(&*client, principal).await
    }

    async fn list_principals(&self) -> Result<Vec<Principal>> {
        let client = self.client().await?;
        objects::list_principals(&*client).await
    }

    async fn set_role(&self, assignment: &RoleAssignment) -> Result<()> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = objects::set_role(&tx, assignment).await;
        finish(tx, result).await
    }

    async fn remove_role(&self, environment: EnvironmentId, principal: &str) -> Result<bool> {
        let client = self.client().await?;
        objects::remove_role(&*client, environment, principal).await
    }

    async fn role_of(&self, environment: EnvironmentId, principal: &str) -> Result<Option<Role>> {
        let client = self.client().await?;
        objects::role_of(&*client, environment, principal).await
    }

    async fn list_roles(&self, environment: EnvironmentId) -> Result<Vec<RoleAssignment>> {
        let client = self.client().await?;
        objects::list_roles(&*client, environment).await
    }

    async fn create_connection(&self, connection: &ConnectionSpec) -> Result<()> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = objects::create_connection(&tx, connection).await;
        finish(tx, result).await
    }

    async fn update_connection(&self, connection: &ConnectionSpec) -> Result<()> {
        let client = self.client().await?;
        objects::update_connection(&*client, connection).await
    }

    async fn find_connection(
        &self,
        environment: EnvironmentId,
        name: &str,
    ) -> Result<Option<ConnectionSpec>> {
        let client = self.client().await?;
        objects::find_connection(&*client, environment, name).await
    }

    async fn get_connection(&self, id: ConnectionId) -> Result<Option<ConnectionSpec>> {
        let client = self.client().await?;
        objects::get_connection(&*client, id).await
    }

    async fn list_connections(&self, environment: EnvironmentId) -> Result<Vec<ConnectionSpec>> {
        let client = self.client().await?;
        objects::list_connections(&*client, environment).await
    }

    async fn delete_connection(&self, id: ConnectionId) -> Result<()> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = objects::delete_connection(&tx, id).await;
        finish(tx, result).await
    }

    async fn set_connection_secret(
        &self,
        id: ConnectionId,
        name: &str,
        sealed: &[u8],
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = objects::set_connection_secret(&tx, id, name, sealed).await;
        finish(tx, result).await
    }

    async fn connection_secret(&self, id: ConnectionId, name: &str) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        objects::connection_secret(&*client, id, name).await
    }

    async fn sealed_secrets(&self) -> Result<Vec<SealedSecret>> {
        let client = self.client().await?;
        objects::sealed_secrets(&*client).await
    }

    async fn replace_sealed_secrets(&self, secrets: &[SealedSecret]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = objects::replace_sealed_secrets(&tx, secrets).await;
        finish(tx, result).await
    }

    async fn rotate_sealed_secrets(
        &self,
        read: &[SealedSecret],
        replacements: &[SealedSecret],
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = async {
            // No secret is sealed, changed or removed by anyone else until this commits;
            // what is read below is every secret there is.
            tx.batch_execute(
                "LOCK TABLE connection_secrets, environment_secrets IN SHARE ROW EXCLUSIVE MODE",
            )
            .await
            .map_err(storage)?;
            if objects::sealed_secrets(&tx).await? != read {
                return Err(Error::Conflict(
                    "a secret was sealed, changed or removed while the master key was being \
                 rotated; nothing was changed: run the rotation again"
                        .into(),
                ));
            }
            objects::replace_sealed_secrets(&tx, replacements).await?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    async fn set_environment_secret(
        &self,
        environment: EnvironmentId,
        name: &str,
        sealed: &[u8],
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = objects::set_environment_secret(&tx, environment, name, sealed).await;
        finish(tx, result).await
    }

    async fn environment_secret(
        &self,
        environment: EnvironmentId,
        name: &str,
    ) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        objects::environment_secret(&*client, environment, name).await
    }

    async fn environment_secret_names(&self, environment: EnvironmentId) -> Result<Vec<String>> {
        let client = self.client().await?;
        objects::environment_secret_names(&*client, environment).await
    }

    async fn remove_environment_secret(
        &self,
        environment: EnvironmentId,
        name: &str,
    ) -> Result<bool> {
        let client = self.client().await?;
        objects::remove_environment_secret(&*client, environment, name).await
    }

    async fn create_export(&self, export: &Export) -> Result<()> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = objects::create_export(&tx, export).await;
        finish(tx, result).await
    }

    async fn update_export(&self, export: &Export) -> Result<()> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = objects::update_export(&tx, export).await;
        finish(tx, result).await
    }

    async fn find_export(&self, environment: EnvironmentId, name: &str) -> Result<Option<Export>> {
        let client = self.client().await?;
        objects::find_export(&*client, environment, name).await
    }

    async fn list_exports(&self, environment: EnvironmentId) -> Result<Vec<Export>> {
        let client = self.client().await?;
        objects::list_exports(&*client, environment).await
    }

    async fn delete_export(&self, id: ExportId) -> Result<()> {
        let client = self.client().await?;
        objects::delete_export(&*client, id).await
    }

    async fn get_principal(&self, name: &str) -> Result<Option<Principal>> {
        let client = self.client().await?;
        objects::select_principal(&*client, name, false).await
    }

    async fn set_principal_flags(
        &self,
        name: &str,
        disabled: bool,
        administrator: bool,
    ) -> Result<()> {
        let client = self.client().await?;
        security::set_principal_flags(&*client, name, disabled, administrator).await
    }

    async fn set_password(&self, credential: &PasswordCredential) -> Result<()> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = security::set_password(&tx, credential).await;
        finish(tx, result).await
    }

    async fn password(&self, principal: &str) -> Result<Option<PasswordCredential>> {
        let client = self.client().await?;
        security::password(&*client, principal).await
    }

    async fn add_group_member(&self, group: &str, member: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = security::add_group_member(&tx, group, member).await;
        finish(tx, result).await
    }

    async fn remove_group_member(&self, group: &str, member: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = security::remove_group_member(&tx, group, member).await;
        finish(tx, result).await
    }

    async fn group_members(&self, group: &str) -> Result<Vec<String>> {
        let mut client = self.client().await?;
        let tx = read(&mut client).await?;
        let result = security::group_members(&tx, group).await;
        finish(tx, result).await
    }

    async fn groups_of(&self, principal: &str) -> Result<Vec<String>> {
        let client = self.client().await?;
        security::groups_of(&*client, principal).await
    }

    async fn delete_group(&self, group: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = security::delete_group(&tx, group).await;
        finish(tx, result).await
    }

    async fn grants(
        &self,
        environment: EnvironmentId,
        principal: &str,
    ) -> Result<Vec<RoleAssignment>> {
        let client = self.client().await?;
        security::grants(&*client, environment, principal).await
    }

    async fn create_session(&self, session: &Session) -> Result<()> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = security::create_session(&tx, session).await;
        finish(tx, result).await
    }

    async fn session(&self, token_hash: &str) -> Result<Option<Session>> {
        let client = self.client().await?;
        security::session(&*client, token_hash).await
    }

    async fn touch_session(&self, token_hash: &str, at: DateTime<Utc>) -> Result<bool> {
        let client = self.client().await?;
        security::touch_session(&*client, token_hash, at).await
    }

    async fn delete_session(&self, token_hash: &str) -> Result<bool> {
        let client = self.client().await?;
        security::delete_session(&*client, token_hash).await
    }

    async fn delete_sessions_of(&self, principal: &str) -> Result<u64> {
        let client = self.client().await?;
        security::delete_sessions_of(&*client, principal).await
    }

    async fn create_token(&self, token: &ApiToken) -> Result<()> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = security::create_token(&tx, token).await;
        finish(tx, result).await
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        let client = self.client().await?;
        security::token_by_hash(&*client, token_hash).await
    }

    async fn list_tokens(&self, environment: EnvironmentId) -> Result<Vec<ApiToken>> {
        let client = self.client().await?;
        security::list_tokens(&*client, environment).await
    }

    async fn revoke_token(
        &self,
        environment: EnvironmentId,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let client = self.client().await?;
        security::revoke_token(&*client, environment, name, at).await
    }

    async fn touch_token(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        let client = self.client().await?;
        security::touch_token(&*client, id, at).await
    }

    async fn record_sign_in_failure(
        &self,
        key: &str,
        at: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<Throttle> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = security::record_sign_in_failure(&tx, key, at, window).await;
        finish(tx, result).await
    }

    async fn sign_in_failures(&self, key: &str) -> Result<Option<Throttle>> {
        let client = self.client().await?;
        security::sign_in_failures(&*client, key, false).await
    }

    async fn clear_sign_in_failures(&self, key: &str) -> Result<()> {
        let client = self.client().await?;
        security::clear_sign_in_failures(&*client, key).await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<i64> {
        let client = self.client().await?;
        security::append_audit(&*client, entry).await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let client = self.client().await?;
        security::audit(&*client, query).await
    }

    async fn append_run_event(&self, run: &RunId, at: DateTime<Utc>, body: &str) -> Result<u64> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = security::append_run_event(&tx, run, at, body).await;
        finish(tx, result).await
    }

    async fn run_events(&self, run: &RunId, after: u64, limit: usize) -> Result<Vec<RunEvent>> {
        let client = self.client().await?;
        security::run_events(&*client, run, after, limit).await
    }

    async fn request_cancel(&self, run: &RunId, at: DateTime<Utc>) -> Result<()> {
        let client = self.client().await?;
        security::request_cancel(&*client, run, at).await
    }

    async fn cancel_requested(&self, run: &RunId) -> Result<bool> {
        let client = self.client().await?;
        security::cancel_requested(&*client, run).await
    }

    async fn key(&self, name: &str, fresh: [u8; 32], now: DateTime<Utc>) -> Result<[u8; 32]> {
        let client = self.client().await?;
        security::key(&*client, name, fresh, now).await
    }

    async fn sharing(&self, environment: EnvironmentId) -> Result<Option<Sharing>> {
        let client = self.client().await?;
        objects::sharing(&*client, environment).await
    }

    async fn set_sharing(&self, sharing: &Sharing) -> Result<()> {
        validate::sharing(sharing)?;
        let client = self.client().await?;
        objects::set_sharing(&*client, sharing).await
    }

    async fn remove_sharing(&self, environment: EnvironmentId) -> Result<bool> {
        let client = self.client().await?;
        objects::remove_sharing(&*client, environment).await
    }

    async fn attach(&self, attachment: &Attachment) -> Result<Attachment> {
        validate::attachment(attachment)?;
        let client = self.client().await?;
        objects::attach(&*client, attachment).await
    }

    async fn attachments(&self) -> Result<Vec<Attachment>> {
        let client = self.client().await?;
        objects::attachments(&*client).await
    }

    async fn detach(&self, organization: &str) -> Result<bool> {
        let client = self.client().await?;
        objects::detach(&*client, organization).await
    }

    async fn put_reporting_connection(&self, connection: &ReportingConnection) -> Result<()> {
        validate::reporting(connection)?;
        let client = self.client().await?;
        objects::put_reporting(&*client, connection).await
    }

    async fn reporting_connections(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<ReportingConnection>> {
        let client = self.client().await?;
        objects::reporting(&*client, environment).await
    }

    async fn delete_reporting_connection(
        &self,
        environment: EnvironmentId,
        name: &str,
    ) -> Result<bool> {
        let client = self.client().await?;
        objects::delete_reporting(&*client, environment, name).await
    }

    async fn take_leadership(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Leadership> {
        let mut client = self.client().await?;
        let tx = write(&mut client).await?;
        let result = security::take_leadership(&tx, name, holder, now, expires_at).await;
        finish(tx, result).await
    }

    async fn release_leadership(&self, name: &str, holder: &str) -> Result<()> {
        let client = self.client().await?;
        security::release_leadership(&*client, name, holder).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_other_than_postgresql_are_invalid() {
        for url in ["sqlite:catalog.db", "mysql://u:p@h/db", "catalog.db", ""] {
            assert!(
                matches!(parse_url(url), Err(Error::Invalid(_))),
                "{url} was accepted"
            );
        }
    }

    #[test]
    fn the_password_is_not_in_the_target_nor_in_debug() {
        let (_, tls, redactor) =
            parse_url("postgresql://cdp:p%40ss-w0rd@db.example.com:6543/lakecdp?sslmode=require")
                .unwrap();
        assert_eq!(redactor.target(), "cdp@db.example.com:6543/lakecdp");
        assert_eq!(tls.mode(), SslMode::Require);
        let text = redactor.redact("p@ss-w0rd and p%40ss-w0rd");
        assert_eq!(text, "*** and ***");
        let (_, _, redactor) = parse_url("postgres://cdp@localhost/lakecdp").unwrap();
        assert_eq!(redactor.target(), "cdp@localhost:5432/lakecdp");
    }

    #[test]
    fn a_malformed_url_is_invalid_without_its_password() {
        let err = parse_url("postgresql://cdp:hunter2@db:notaport/lakecdp").unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_password_goes_to_another_machine_only_over_tls_or_when_declared_plain() {
        for query in ["", "?connect_timeout=5", "?sslmode=prefer"] {
            let url = format!("postgresql://cdp:hunter2@db.example.com/lakecdp{query}");
            let err = parse_url(&url).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Error::Invalid(_)), "{text}");
            assert!(
                text.contains("`sslmode`") && text.contains("plain TCP"),
                "{text}"
            );
            assert!(
                text.contains("sslrootcert") && !text.contains("hunter2"),
                "{text}"
            );
        }
        let ok = |url: &str| parse_url(url).map(|(c, t, _)| (c, t.mode())).unwrap();
        let (config, mode) =
            ok("postgresql://cdp:hunter2@db.example.com/lakecdp?sslmode=disable&connect_timeout=5");
        assert_eq!(mode, SslMode::Disable);
        assert_eq!(
            config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(5))
        );
        assert_eq!(
            ok("postgresql://cdp:hunter2@127.0.0.1/lakecdp").1,
            SslMode::Disable
        );
        assert_eq!(
            ok("postgresql://cdp@db.example.com/lakecdp").1,
            SslMode::Disable
        );
        let err =
            parse_url("postgresql://cdp:pw@db.example.com/x?sslmode=verify-full").unwrap_err();
        assert!(err.to_string().contains("sslrootcert"), "{err}");
        let err = parse_url("postgresql://cdp:pw@db.example.com/x?sslmode=verify-full&sslrootcert=%2Fno%2Fsuch%2Fca.pem")
            .unwrap_err();
        assert!(err.to_string().contains("/no/such/ca.pem"), "{err}");
        let err = parse_url("postgresql://cdp:pw@db.example.com/x?sslmode=tls").unwrap_err();
        assert!(err.to_string().contains("unknown sslmode"), "{err}");
    }
}
