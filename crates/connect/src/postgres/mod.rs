//! Exports into a PostgreSQL database.
//!
//! ```text
//! postgres/
//!   mod.rs    the target: settings, connecting, creating the database and schema, a run
//!   copy.rs   Arrow arrays -> the binary COPY format
//!   types.rs  Arrow types -> PostgreSQL column types (the one mapping table)
//! ```
//!
//! Each table is loaded in one transaction:
//!
//! 1. `pg_advisory_xact_lock` on the table's name, so two runs of one export queue up;
//! 2. `CREATE TABLE <table>__lakecdp_staging` (a leftover one is dropped first);
//! 3. `COPY <staging> FROM STDIN (FORMAT binary)`, streamed in chunks of about 1 MiB;
//! 4. when `<table>` exists: check that this export created it (below), and note what
//!    others added to it: grants, indexes, constraints, the table's and columns' comments;
//! 5. `DROP TABLE <table>; ALTER TABLE <staging> RENAME TO <table>`;
//! 6. give the new table what was noted (each item on its own savepoint: one that no
//!    longer fits, e.g. an index on a column the export dropped, is skipped with a
//!    warning), record the table as this export's; commit.
//!
//! Readers see the old table or the new one, never a mix; any failure rolls the
//! transaction back and leaves the old table as it was. Identifiers are always quoted.
//!
//! ## Ownership
//!
//! An export drops and replaces only tables it created. The schema's table
//! [`OWNERSHIP_TABLE`] (`lakecdp_exports`: table name, export name, times) records which
//! export created each table, in the same transaction as the table. A table of the same
//! name that is not recorded (an analyst's, another application's) or that another export
//! created is refused with [`Error::NotOwned`], and left as it is. A separate table is
//! used rather than table comments because the comments belong to the analysts and are
//! kept across runs. Row-level security policies, triggers, column privileges and
//! views on a table are not carried over (a view on it makes the drop fail, which leaves
//! the old table in place).
//!
//! The database is created when missing (the user needs `CREATEDB`), then the schema
//! (default `customerinsights`).
//!
//! Connections are secured as `sslmode` says (see [`lakecdp_pgtls`]): `verify-full` with
//! the CA file `sslrootcert` checks the server's certificate and host name, `require`
//! encrypts without checking it. A password is never sent over plain TCP to another
//! machine unless `sslmode` is set to `disable` explicitly: [`PostgresTargetBuilder::build`]
//! refuses it.

pub mod copy;
pub mod types;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use lakecdp_core::pgssl::check_plain_password;
use lakecdp_core::{Secret, SslMode};
use lakecdp_pgtls::PgTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use self::copy::CopyEncoder;
use self::types::{pg_type_of, quote_ident};
use crate::error::{Error, Result};
use crate::target::{
    BatchStream, CheckLine, ExportRun, ExportSummary, ExportTarget, TableExported,
};

/// The suffix of the staging table a table is loaded into before it replaces the table.
pub const STAGING_SUFFIX: &str = "__lakecdp_staging";
/// The table, in each target schema, recording which export created which table.
pub const OWNERSHIP_TABLE: &str = "lakecdp_exports";
/// The schema tables go to unless another is set.
pub const DEFAULT_SCHEMA: &str = "customerinsights";
/// The database a missing database is created from.
const MAINTENANCE_DB: &str = "postgres";
/// PostgreSQL's longest identifier, in bytes.
const MAX_IDENT: usize = 63;
/// Bytes encoded before they are sent to the server.
const CHUNK_BYTES: usize = 1 << 20;
/// Rows encoded at a time from a batch.
const CHUNK_ROWS: usize = 4096;

/// Settings of a [`PostgresTarget`]. Setters cannot fail; [`PostgresTargetBuilder::build`]
/// checks everything and names the bad setting.
#[derive(Debug, Clone, Default)]
pub struct PostgresTargetBuilder {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    password: Option<Secret>,
    database: Option<String>,
    schema: Option<String>,
    sslmode: Option<String>,
    sslrootcert: Option<PathBuf>,
    connect_timeout: Option<Duration>,
}

impl PostgresTargetBuilder {
    /// The server's host name or address.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The server's port (default 5432).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The user to log in as.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The user's password.
    pub fn password(mut self, password: Secret) -> Self {
        self.password = Some(password);
        self
    }

    /// The database tables go to; created when missing.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// The schema tables go to (default `customerinsights`); created when missing.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// `disable`, `prefer`, `require` or `verify-full` (see the module documentation).
    /// When not set: plain TCP, refused by [`Self::build`] when a password would go to
    /// another machine.
    pub fn sslmode(mut self, mode: impl Into<String>) -> Self {
        self.sslmode = Some(mode.into());
        self
    }

    /// The CA file (PEM) the server's certificate must chain to, for `verify-full`.
    pub fn sslrootcert(mut self, path: impl Into<PathBuf>) -> Self {
        self.sslrootcert = Some(path.into());
        self
    }

    /// How long connecting may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Check the settings.
    pub fn build(self) -> Result<PostgresTarget> {
        let required = |v: Option<String>, key: &str| {
            v.filter(|s| !s.trim().is_empty())
                .ok_or_else(|| Error::Config {
                    key: key.into(),
                    message: "is required".into(),
                })
        };
        let host = required(self.host, "host")?;
        let user = required(self.user, "user")?;
        let database = required(self.database, "database")?;
        let schema = self.schema.unwrap_or_else(|| DEFAULT_SCHEMA.into());
        check_ident("database", &database, 0)?;
        check_ident("schema", &schema, 0)?;
        let declared = match &self.sslmode {
            Some(m) => Some(m.parse::<SslMode>().map_err(|message| Error::Config {
                key: "sslmode".into(),
                message,
            })?),
            None => None,
        };
        check_plain_password(
            &format!("the connection to `{host}`"),
            &host,
            declared,
            self.password.is_some(),
        )
        .map_err(|message| Error::Config {
            key: "sslmode".into(),
            message,
        })?;
        let mode = declared.unwrap_or(SslMode::Disable);
        let tls = PgTls::new(mode, self.sslrootcert.as_deref()).map_err(|e| Error::Config {
            key: if matches!(e, lakecdp_pgtls::Error::Setup(_)) {
                "sslmode".into()
            } else {
                "sslrootcert".into()
            },
            message: e.to_string(),
        })?;
        Ok(PostgresTarget {
            host,
            port: self.port.unwrap_or(5432),
            user,
            password: self.password,
            database,
            schema,
            tls,
            connect_timeout: self.connect_timeout.unwrap_or(Duration::from_secs(10)),
        })
    }
}

fn check_ident(key: &str, name: &str, reserve: usize) -> Result<()> {
    let invalid = |message: String| Error::Config {
        key: key.into(),
        message,
    };
    if name.is_empty() {
        return Err(invalid("is empty".into()));
    }
    if name.contains('\0') {
        return Err(invalid(format!("`{name}` holds a NUL character")));
    }
    if name.len() + reserve > MAX_IDENT {
        return Err(invalid(format!(
            "`{name}` is {} bytes long; PostgreSQL names hold at most {} bytes here",
            name.len(),
            MAX_IDENT - reserve
        )));
    }
    Ok(())
}

/// A PostgreSQL database that exports write tables into.
#[derive(Debug, Clone)]
pub struct PostgresTarget {
    host: String,
    port: u16,
    user: String,
    password: Option<Secret>,
    database: String,
    schema: String,
    tls: PgTls,
    connect_timeout: Duration,
}

/// A PostgreSQL error as text: the server's message and SQLSTATE, or the client's
/// error chain. Never holds the password (neither side puts it in messages).
fn reason(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(d) = db.detail() {
            s.push_str(": ");
            s.push_str(d);
        }
        return s;
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

fn code(e: &tokio_postgres::Error) -> Option<&SqlState> {
    e.as_db_error().map(|d| d.code())
}

impl PostgresTarget {
    /// Settings for a target.
    pub fn builder() -> PostgresTargetBuilder {
        PostgresTargetBuilder::default()
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The connection security.
    pub fn ssl_mode(&self) -> SslMode {
        self.tls.mode()
    }

    async fn connect_to(&self, database: &str) -> Result<Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(database)
            .application_name("lakecdp")
            .connect_timeout(self.connect_timeout);
        self.tls.apply(&mut config);
        if let Some(p) = &self.password {
            config.password(p.expose());
        }
        let (client, connection) = config.connect(self.tls.connector()).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection ended");
            }
        });
        Ok(client)
    }

    fn unreachable(&self, e: &tokio_postgres::Error) -> Error {
        Error::Unreachable {
            target: "postgres",
            address: self.address(),
            reason: reason(e),
        }
    }

    fn create_database_fix(&self) -> String {
        format!(
            "ALTER ROLE {} CREATEDB; or create the database beforehand: CREATE DATABASE {} OWNER {}",
            quote_ident(&self.user),
            quote_ident(&self.database),
            quote_ident(&self.user)
        )
    }

    /// Connect to the database, creating it first when it does not exist.
    async fn connect_or_create(&self) -> Result<Client> {
        match self.connect_to(&self.database).await {
            Ok(c) => return Ok(c),
            Err(e) if code(&e) == Some(&SqlState::INVALID_CATALOG_NAME) => {}
            Err(e) => return Err(self.unreachable(&e)),
        }
        let admin = self
            .connect_to(MAINTENANCE_DB)
            .await
            .map_err(|e| self.unreachable(&e))?;
        let sql = format!("CREATE DATABASE {}", quote_ident(&self.database));
        match admin.batch_execute(&sql).await {
            Ok(()) => {
                tracing::info!(database = %self.database, address = %self.address(), "created the database");
            }
            Err(e) if code(&e) == Some(&SqlState::DUPLICATE_DATABASE) => {}
            Err(e) if code(&e) == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                return Err(Error::PermissionDenied {
                    target: "postgres",
                    address: self.address(),
                    message: format!(
                        "database `{}` does not exist and user `{}` may not create it (no CREATEDB)",
                        self.database, self.user
                    ),
                    fix: self.create_database_fix(),
                })
            }
            Err(e) => {
                return Err(Error::Unreachable {
                    target: "postgres",
                    address: self.address(),
                    reason: format!(
                        "creating database `{}` failed: {}",
                        self.database,
                        reason(&e)
                    ),
                })
            }
        }
        drop(admin);
        self.connect_to(&self.database)
            .await
            .map_err(|e| self.unreachable(&e))
    }

    async fn create_schema(&self, client: &Client) -> Result<()> {
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(&self.schema));
        match client.batch_execute(&sql).await {
            Ok(()) => Ok(()),
            // two runs creating it at once
            Err(e)
                if code(&e) == Some(&SqlState::UNIQUE_VIOLATION)
                    || code(&e) == Some(&SqlState::DUPLICATE_SCHEMA) =>
            {
                Ok(())
            }
            Err(e) if code(&e) == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                Err(Error::PermissionDenied {
                    target: "postgres",
                    address: self.address(),
                    message: format!(
                        "user `{}` may not create schema `{}` in database `{}`",
                        self.user, self.schema, self.database
                    ),
                    fix: format!(
                        "GRANT CREATE ON DATABASE {} TO {}; or create the schema beforehand: CREATE SCHEMA {} AUTHORIZATION {}",
                        quote_ident(&self.database),
                        quote_ident(&self.user),
                        quote_ident(&self.schema),
                        quote_ident(&self.user)
                    ),
                })
            }
            Err(e) => Err(self.unreachable(&e)),
        }
    }

    async fn check_lines(&self, lines: &mut Vec<CheckLine>) {
        let reach = format!("connect to {} as `{}`", self.address(), self.user);
        let (client, db_exists) = match self.connect_to(&self.database).await {
            Ok(c) => (c, true),
            Err(e) if code(&e) == Some(&SqlState::INVALID_CATALOG_NAME) => {
                match self.connect_to(MAINTENANCE_DB).await {
                    Ok(c) => (c, false),
                    Err(e) => {
                        lines.push(self.connect_failure(reach, &e));
                        return;
                    }
                }
            }
            Err(e) => {
                lines.push(self.connect_failure(reach, &e));
                return;
            }
        };
        lines.push(CheckLine::ok(
            reach,
            format!("connected ({})", self.tls.describe()),
        ));
        let db_line = format!("database `{}`", self.database);
        if !db_exists {
            let may_create = client
                .query_one(
                    "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user",
                    &[],
                )
                .await
                .and_then(|r| r.try_get::<_, bool>(0));
            match may_create {
                Ok(true) => lines.push(CheckLine::ok(
                    db_line,
                    "does not exist; the first export creates it",
                )),
                Ok(false) => lines.push(CheckLine::failed(
                    db_line,
                    format!("does not exist and user `{}` may not create it", self.user),
                    self.create_database_fix(),
                )),
                Err(e) => lines.push(CheckLine::failed(
                    db_line,
                    format!("cannot read the user's privileges: {}", reason(&e)),
                    "grant the user read access to pg_roles",
                )),
            }
            return;
        }
        lines.push(CheckLine::ok(db_line, "exists"));
        let schema_line = format!("schema `{}`", self.schema);
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), \
                 CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) \
                      THEN has_schema_privilege($1, 'CREATE') \
                      ELSE has_database_privilege(current_database(), 'CREATE') END",
                &[&self.schema],
            )
            .await;
        match row.and_then(|r| Ok((r.try_get::<_, bool>(0)?, r.try_get::<_, bool>(1)?))) {
            Ok((true, true)) => {
                lines.push(CheckLine::ok(schema_line, "exists; tables can be created"))
            }
            Ok((false, true)) => lines.push(CheckLine::ok(
                schema_line,
                "does not exist; the first export creates it",
            )),
            Ok((true, false)) => lines.push(CheckLine::failed(
                schema_line,
                format!("user `{}` may not create tables in it", self.user),
                format!(
                    "GRANT CREATE ON SCHEMA {} TO {}",
                    quote_ident(&self.schema),
                    quote_ident(&self.user)
                ),
            )),
            Ok((false, false)) => lines.push(CheckLine::failed(
                schema_line,
                format!("does not exist and user `{}` may not create it", self.user),
                format!(
                    "GRANT CREATE ON DATABASE {} TO {}",
                    quote_ident(&self.database),
                    quote_ident(&self.user)
                ),
            )),
            Err(e) => lines.push(CheckLine::failed(
                schema_line,
                format!("cannot read the user's privileges: {}", reason(&e)),
                "grant the user read access to pg_namespace",
            )),
        }
    }

    async fn create_ownership_table(&self, client: &Client) -> Result<()> {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {}.{} (\
               table_name text PRIMARY KEY, \
               export_name text NOT NULL, \
               created_at timestamptz NOT NULL DEFAULT now(), \
               updated_at timestamptz NOT NULL DEFAULT now())",
            quote_ident(&self.schema),
            quote_ident(OWNERSHIP_TABLE)
        );
        match client.batch_execute(&sql).await {
            Ok(()) => Ok(()),
            // two runs creating it at once
            Err(e)
                if code(&e) == Some(&SqlState::UNIQUE_VIOLATION)
                    || code(&e) == Some(&SqlState::DUPLICATE_TABLE) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::Export {
                table: OWNERSHIP_TABLE.into(),
                address: self.destination(),
                stage: "creating the table of export ownership",
                reason: reason(&e),
            }),
        }
    }

    fn connect_failure(&self, name: String, e: &tokio_postgres::Error) -> CheckLine {
        let login = matches!(
            code(e),
            Some(c) if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        );
        let fix = if login {
            format!(
                "check the user name and password of the connection, and that pg_hba.conf lets `{}` log in from this machine",
                self.user
            )
        } else {
            "check the host and port, that the server runs and accepts TCP connections from this machine (listen_addresses, firewall, pg_hba.conf)".to_string()
        };
        CheckLine::failed(name, reason(e), fix)
    }
}

#[async_trait]
impl ExportTarget for PostgresTarget {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn destination(&self) -> String {
        format!("{}/{}.{}", self.address(), self.database, self.schema)
    }

    async fn check(&self) -> Result<Vec<CheckLine>> {
        let mut lines = Vec::new();
        self.check_lines(&mut lines).await;
        Ok(lines)
    }

    async fn begin(&self, export_name: &str) -> Result<Box<dyn ExportRun>> {
        let started = Instant::now();
        let client = self.connect_or_create().await?;
        self.create_schema(&client).await?;
        self.create_ownership_table(&client).await?;
        Ok(Box::new(PostgresRun {
            client,
            address: format!("{}/{}", self.address(), self.database),
            schema: self.schema.clone(),
            destination: self.destination(),
            export_name: export_name.to_string(),
            tables: Vec::new(),
            started,
        }))
    }
}

/// A run of a PostgreSQL export: one connection, one transaction per table.
struct PostgresRun {
    client: Client,
    /// `host:port/database`.
    address: String,
    schema: String,
    destination: String,
    export_name: String,
    tables: Vec<TableExported>,
    started: Instant,
}

/// What a table being replaced has that others gave it, as the statements that give it to
/// the new table; empty when there was no table.
#[derive(Debug, Default)]
struct Kept {
    existed: bool,
    statements: Vec<String>,
}

impl Kept {
    fn is_empty(&self) -> bool {
        !self.existed
    }

    fn statements(&self) -> impl Iterator<Item = &str> {
        self.statements.iter().map(String::as_str)
    }
}

/// Why a table cannot be claimed: it is someone else's, or the server failed.
enum ClaimError {
    NotOwned { owner: Option<String>, fix: String },
    Server(&'static str, tokio_postgres::Error),
}

impl ClaimError {
    fn into_error(self, table: &str, address: &str) -> Error {
        match self {
            ClaimError::NotOwned { owner, fix } => Error::NotOwned {
                table: table.to_string(),
                address: address.to_string(),
                owner: match owner {
                    Some(o) => format!("was created by export `{o}`"),
                    None => "was not created by a lakecdp export".to_string(),
                },
                fix,
            },
            ClaimError::Server(stage, e) => Error::Export {
                table: table.to_string(),
                address: address.to_string(),
                stage,
                reason: reason(&e),
            },
        }
    }
}

/// Statements (run before the old table is dropped) that write, for each grant, index,
/// constraint and comment of the table `$1` (a quoted `schema.table`), the statement
/// that gives it to a table of the same name.
const KEEP_SQL: &str = "\
WITH t AS (SELECT $1::text::regclass AS oid, $1::text AS name) \
SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', t.name, k.conname, pg_get_constraintdef(k.oid)) \
  FROM t JOIN pg_constraint k ON k.conrelid = t.oid WHERE k.contype IN ('p', 'u', 'c', 'x') \
UNION ALL \
SELECT pg_get_indexdef(i.indexrelid) FROM t JOIN pg_index i ON i.indrelid = t.oid \
  WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = t.oid) \
UNION ALL \
SELECT format('GRANT %s ON %s TO %s%s', a.privilege_type, t.name, \
         CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, \
         CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) \
  FROM t JOIN pg_class c ON c.oid = t.oid CROSS JOIN LATERAL aclexplode(c.relacl) a \
  LEFT JOIN pg_roles r ON r.oid = a.grantee \
  WHERE a.grantee <> c.relowner \
UNION ALL \
SELECT format('COMMENT ON TABLE %s IS %L', t.name, d.description) \
  FROM t JOIN pg_description d ON d.objoid = t.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0 \
UNION ALL \
SELECT format('COMMENT ON COLUMN %s.%I IS %L', t.name, a.attname, d.description) \
  FROM t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped \
  JOIN pg_description d ON d.objoid = t.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum";

/// Check that `table` (quoted: `target`) of `schema` is the export `export_name`'s to
/// replace (absent, or recorded as created by it), and note what others gave it.
async fn claim(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    export_name: &str,
    table: &str,
    target: &str,
) -> std::result::Result<Kept, ClaimError> {
    let server = |stage| move |e| ClaimError::Server(stage, e);
    let exists = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&target])
        .await
        .and_then(|r| r.try_get::<_, bool>(0))
        .map_err(server("looking for the table"))?;
    if !exists {
        return Ok(Kept::default());
    }
    let owner: Option<String> = tx
        .query_opt(
            &format!(
                "SELECT export_name FROM {}.{} WHERE table_name = $1 FOR UPDATE",
                quote_ident(schema),
                quote_ident(OWNERSHIP_TABLE)
            ),
            &[&table],
        )
        .await
        .and_then(|r| r.map(|r| r.try_get(0)).transpose())
        .map_err(server("reading who created the table"))?;
    if owner.as_deref() != Some(export_name) {
        let fix = match &owner {
            Some(_) => "give this export another schema or database, or delete the other \
                        export's table first"
                .to_string(),
            None => format!(
                "rename or drop the table, or give the export another schema; to hand the table to \
                 this export: INSERT INTO {}.{} (table_name, export_name) VALUES ('{}', '{}')",
                quote_ident(schema),
                quote_ident(OWNERSHIP_TABLE),
                table.replace('\'', "''"),
                export_name.replace('\'', "''")
            ),
        };
        return Err(ClaimError::NotOwned { owner, fix });
    }
    let statements = tx
        .query(KEEP_SQL, &[&target])
        .await
        .and_then(|rows| rows.iter().map(|r| r.try_get(0)).collect())
        .map_err(server("reading the table's grants, indexes and comments"))?;
    Ok(Kept {
        existed: true,
        statements,
    })
}

#[async_trait]
impl ExportRun for PostgresRun {
    async fn export_table(
        &mut self,
        table: &str,
        schema: SchemaRef,
        mut batches: BatchStream<'_>,
    ) -> Result<TableExported> {
        let started = Instant::now();
        check_ident("table", table, STAGING_SUFFIX.len())?;
        let mut encoder = CopyEncoder::new(&schema)?;
        let mut ddl = Vec::with_capacity(schema.fields().len());
        let mut names = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            ddl.push(format!(
                "{} {}",
                quote_ident(f.name()),
                pg_type_of(f.name(), f.data_type())?
            ));
            names.push(quote_ident(f.name()));
        }
        let qs = quote_ident(&self.schema);
        let target = format!("{qs}.{}", quote_ident(table));
        let staging_name = format!("{table}{STAGING_SUFFIX}");
        let staging = format!("{qs}.{}", quote_ident(&staging_name));
        let destination = &self.destination;
        let fail = |stage: &'static str, e: tokio_postgres::Error| Error::Export {
            table: table.to_string(),
            address: destination.clone(),
            stage,
            reason: reason(&e),
        };

        let mut tx = self
            .client
            .transaction()
            .await
            .map_err(|e| fail("starting a transaction", e))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&format!("lakecdp:{}.{}", self.schema, table)],
        )
        .await
        .map_err(|e| fail("locking the table", e))?;
        tx.batch_execute(&format!(
            "DROP TABLE IF EXISTS {staging}; CREATE TABLE {staging} ({})",
            ddl.join(", ")
        ))
        .await
        .map_err(|e| fail("creating the staging table", e))?;
        let sink = tx
            .copy_in::<_, bytes::Bytes>(&format!(
                "COPY {staging} ({}) FROM STDIN (FORMAT binary)",
                names.join(", ")
            ))
            .await
            .map_err(|e| fail("starting COPY", e))?;
        futures::pin_mut!(sink);
        let mut bytes = 0u64;
        while let Some(item) = batches.next().await {
            let batch = item.map_err(|e| Error::Export {
                table: table.to_string(),
                address: destination.clone(),
                stage: "reading the input",
                reason: format!("the input failed after {} rows: {e}", encoder.rows()),
            })?;
            if batch.schema().fields() != schema.fields() {
                return Err(Error::Export {
                    table: table.to_string(),
                    address: destination.clone(),
                    stage: "reading the input",
                    reason: "a batch's schema differs from the table's schema".into(),
                });
            }
            let mut offset = 0;
            while offset < batch.num_rows() {
                let len = CHUNK_ROWS.min(batch.num_rows() - offset);
                encoder.encode(&batch.slice(offset, len))?;
                offset += len;
                if encoder.pending() >= CHUNK_BYTES {
                    let chunk = encoder.take();
                    bytes += chunk.len() as u64;
                    sink.as_mut()
                        .send(chunk)
                        .await
                        .map_err(|e| fail("copying rows", e))?;
                }
            }
        }
        let expected = encoder.rows();
        let rest = encoder.finish();
        bytes += rest.len() as u64;
        sink.as_mut()
            .send(rest)
            .await
            .map_err(|e| fail("copying rows", e))?;
        let rows = sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| fail("finishing COPY", e))?;
        debug_assert_eq!(rows, expected);
        let keep = claim(&tx, &self.schema, &self.export_name, table, &target)
            .await
            .map_err(|e| e.into_error(&format!("{}.{table}", self.schema), &self.address))?;
        if !keep.is_empty() {
            tx.batch_execute(&format!("DROP TABLE {target}"))
                .await
                .map_err(|e| fail("dropping the previous table", e))?;
        }
        tx.batch_execute(&format!(
            "ALTER TABLE {staging} RENAME TO {}",
            quote_ident(table)
        ))
        .await
        .map_err(|e| fail("replacing the table", e))?;
        for statement in keep.statements() {
            let sp = tx
                .savepoint("lakecdp_keep")
                .await
                .map_err(|e| fail("keeping grants, indexes and comments", e))?;
            match sp.batch_execute(statement).await {
                Ok(()) => sp
                    .commit()
                    .await
                    .map_err(|e| fail("keeping grants, indexes and comments", e))?,
                Err(e) => {
                    tracing::warn!(table, destination = %self.destination, statement, reason = %reason(&e),
                        "not carried over to the new table");
                    sp.rollback()
                        .await
                        .map_err(|e| fail("keeping grants, indexes and comments", e))?;
                }
            }
        }
        tx.execute(
            &format!(
                "INSERT INTO {qs}.{} (table_name, export_name) VALUES ($1, $2) \
                 ON CONFLICT (table_name) DO UPDATE SET updated_at = now()",
                quote_ident(OWNERSHIP_TABLE)
            ),
            &[&table, &self.export_name],
        )
        .await
        .map_err(|e| fail("recording the table as the export's", e))?;
        tx.commit().await.map_err(|e| fail("committing", e))?;
        let done = TableExported {
            name: table.to_string(),
            rows,
            bytes,
            elapsed: started.elapsed(),
        };
        tracing::info!(table, rows, bytes, elapsed_ms = done.elapsed.as_millis() as u64, destination = %self.destination, "exported a table");
        self.tables.push(done.clone());
        Ok(done)
    }

    async fn finish(self: Box<Self>) -> Result<ExportSummary> {
        Ok(ExportSummary {
            export_name: self.export_name,
            destination: self.destination,
            tables: self.tables,
            elapsed: self.started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> PostgresTargetBuilder {
        PostgresTarget::builder()
            .host("db.example")
            .user("u")
            .password(Secret::new("pw-not-shown"))
            .database("crm")
    }

    #[test]
    fn builder_defaults_and_validation() {
        let t = base().sslmode("disable").build().unwrap();
        assert_eq!(t.address(), "db.example:5432");
        assert_eq!(t.schema(), DEFAULT_SCHEMA);
        assert_eq!(t.ssl_mode(), SslMode::Disable);
        assert!(!format!("{t:?}").contains("pw-not-shown"));
        assert_eq!(
            base().sslmode("require").build().unwrap().ssl_mode(),
            SslMode::Require
        );
        let err = base().sslmode("verify-ca").build().unwrap_err().to_string();
        assert!(
            err.contains("`sslmode`") && err.contains("verify-full"),
            "{err}"
        );
        let err = base()
            .sslmode("verify-full")
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("`sslrootcert`"), "{err}");
        let err = PostgresTarget::builder().user("u").database("d").build();
        assert!(err.unwrap_err().to_string().contains("`host`"));
        let err = base()
            .database("x".repeat(64))
            .sslmode("disable")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("63 bytes"), "{err}");
    }

    #[test]
    fn a_password_never_goes_to_another_machine_in_clear_unless_declared() {
        for mode in [None, Some("prefer")] {
            let mut b = base();
            if let Some(m) = mode {
                b = b.sslmode(m);
            }
            let err = b.build().unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(&err, Error::Config { key, .. } if key == "sslmode"),
                "{text}"
            );
            assert!(
                text.contains("plain TCP") && text.contains("db.example"),
                "{text}"
            );
            assert!(
                text.contains("verify-full") && text.contains("`disable` explicitly"),
                "{text}"
            );
            assert!(!text.contains("pw-not-shown"), "{text}");
        }
        assert!(base().sslmode("disable").build().is_ok());
        assert!(base().sslmode("require").build().is_ok());
        // no password, or the machine itself: nothing crosses a network in clear
        let nopw = PostgresTarget::builder()
            .host("db.example")
            .user("u")
            .database("crm");
        assert!(nopw.build().is_ok());
        assert!(base().host("127.0.0.1").build().is_ok());
        assert!(base().host("localhost").build().is_ok());
    }
}
