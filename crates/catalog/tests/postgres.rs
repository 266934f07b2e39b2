//! The PostgreSQL catalog on a real server: the conformance suite, and what only a
//! shared server has (concurrent migrations, several instances racing, credentials).
//!
//! The server comes from `scripts/test-services.sh` (run by `scripts/test.sh`), which
//! exports `LAKECDP_TEST_PG_URL`; without it every test here fails, never passes.
//!
//! Every test works in the database `lakecdp_catalog_conformance` (created when missing)
//! in a schema of its own (`options=-c search_path=...` in the catalog URL), dropped at
//! its end. The suite's cases use unique names, but one of them rotates every sealed
//! secret of the catalog, which would disturb the cases running beside it in one schema.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use lakecdp_catalog::conformance::{self, CatalogHarness};
use lakecdp_catalog::{latest_schema_version, Catalog, Error, PostgresCatalog, Result};
use lakecdp_core::{EnvironmentId, RunId};
use tokio::sync::OnceCell;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// The database every test of this file works in.
const DATABASE: &str = "lakecdp_catalog_conformance";

fn service_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test.sh, which starts Azurite, the S3 server and PostgreSQL")
    })
}

/// The server's URL with another database (and query) in its path.
fn url_of(database: &str, query: &str) -> String {
    let base = service_var("LAKECDP_TEST_PG_URL");
    let base = base.split('?').next().unwrap_or(&base);
    let (server, _) = base.rsplit_once('/').expect("a URL with a database");
    format!("{server}/{database}{query}")
}

/// A catalog URL whose tables live in `schema` of `database`.
fn schema_url(database: &str, schema: &str) -> String {
    url_of(database, &format!("?options=-c%20search_path%3D{schema}"))
}

async fn client(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test server: {e}"));
    tokio::spawn(connection);
    client
}

/// Create `database` unless it exists; safe when many tests do it at once.
async fn create_database(database: &str) {
    let admin = client(&url_of("postgres", "")).await;
    if let Err(e) = admin
        .batch_execute(&format!("CREATE DATABASE \"{database}\""))
        .await
    {
        // 42P04: it exists; 23505: another session created it at the same moment
        let raced = [SqlState::DUPLICATE_DATABASE, SqlState::UNIQUE_VIOLATION];
        if !e.code().is_some_and(|c| raced.contains(c)) {
            panic!("CREATE DATABASE {database}: {e:?}");
        }
    }
}

/// The shared database, created once per test process.
async fn shared_database() {
    static CREATED: OnceCell<()> = OnceCell::const_new();
    CREATED.get_or_init(|| create_database(DATABASE)).await;
}

/// A schema of its own in the shared database, dropped with the guard.
struct Schema {
    name: String,
    /// A plain connection to the database in the schema, as another tool would read it.
    raw: Client,
}

impl Schema {
    async fn new(label: &str) -> Self {
        shared_database().await;
        let name = format!(
            "{label}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let raw = client(&url_of(DATABASE, "")).await;
        raw.batch_execute(&format!(
            "CREATE SCHEMA \"{name}\"; SET search_path = \"{name}\""
        ))
        .await
        .unwrap_or_else(|e| panic!("CREATE SCHEMA {name}: {e}"));
        Self { name, raw }
    }

    fn url(&self) -> String {
        schema_url(DATABASE, &self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // The catalog's connections are idle by now; drop from a runtime of our own,
        // since the test's may be shutting down.
        let (url, name) = (url_of(DATABASE, ""), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                client(&url)
                    .await
                    .batch_execute(&format!(
                        "SET lock_timeout = '10s'; DROP SCHEMA \"{name}\" CASCADE"
                    ))
                    .await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

/// A catalog in a fresh schema, read raw through a connection of its own.
struct PgHarness {
    catalog: PostgresCatalog,
    schema: Schema,
}

async fn harness() -> PgHarness {
    let schema = Schema::new("conformance").await;
    let catalog = PostgresCatalog::connect(&schema.url())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    PgHarness { catalog, schema }
}

#[async_trait]
impl CatalogHarness for PgHarness {
    fn catalog(&self) -> &dyn Catalog {
        &self.catalog
    }

    async fn raw_environment_row(&self, id: EnvironmentId) -> Result<Option<String>> {
        let row = self
            .schema
            .raw
            .query_opt(
                "SELECT concat_ws('|', id, name, coalesce(region, ''), storage_json::text, \
                 output_format, retention_runs::text, created_by, created_at::text, \
                 updated_at::text) FROM environments WHERE id = $1",
                &[&id.to_string()],
            )
            .await
            .map_err(|e| Error::Storage(e.to_string()))?;
        Ok(row.map(|r| r.get(0)))
    }
}

lakecdp_catalog::catalog_conformance_suite!(harness());

async fn applied_versions(raw: &Client) -> Vec<i64> {
    raw.query(
        "SELECT version FROM schema_migrations ORDER BY version",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn every_version() -> Vec<i64> {
    (1..=i64::from(latest_schema_version())).collect()
}

#[tokio::test]
async fn connecting_twice_applies_each_migration_once() {
    let schema = Schema::new("twice").await;
    let first = PostgresCatalog::connect(&schema.url()).await.unwrap();
    let env = conformance::environment(&format!("kept-{}", schema.name));
    first.create_environment(&env).await.unwrap();
    let second = PostgresCatalog::connect(&schema.url()).await.unwrap();
    assert_eq!(applied_versions(&schema.raw).await, every_version());
    assert_eq!(
        second.schema_version().await.unwrap(),
        latest_schema_version()
    );
    assert_eq!(latest_schema_version(), 11, "the SQLite catalog's version");
    assert_eq!(second.get_environment(env.id).await.unwrap(), Some(env));
}

#[tokio::test]
async fn concurrent_connects_to_an_empty_database_migrate_once() {
    // A database of its own, tables in `public`, as a deployment would have it.
    let database = format!(
        "lakecdp_catalog_empty_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    create_database(&database).await;
    let url = url_of(&database, "");
    let mut connects = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let url = url.clone();
        connects.spawn(async move { PostgresCatalog::connect(&url).await });
    }
    let mut catalogs = Vec::new();
    while let Some(joined) = connects.join_next().await {
        catalogs.push(joined.unwrap().unwrap_or_else(|e| panic!("connect: {e}")));
    }
    assert_eq!(applied_versions(&client(&url).await).await, every_version());
    for catalog in &catalogs {
        assert_eq!(
            catalog.schema_version().await.unwrap(),
            latest_schema_version()
        );
    }
    drop(catalogs);
    client(&url_of("postgres", ""))
        .await
        .batch_execute(&format!("DROP DATABASE \"{database}\" WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_database_at_a_newer_schema_version_is_refused() {
    let schema = Schema::new("newer").await;
    PostgresCatalog::connect(&schema.url()).await.unwrap();
    let newer = latest_schema_version() + 1;
    schema
        .raw
        .execute(
            "INSERT INTO schema_migrations (version, description, applied_at) \
             VALUES ($1, 'from the future', now())",
            &[&i64::from(newer)],
        )
        .await
        .unwrap();
    let err = PostgresCatalog::connect(&schema.url()).await.unwrap_err();
    match &err {
        Error::Migration { version, .. } => assert_eq!(*version, newer),
        other => panic!("expected a migration error, got {other:?}"),
    }
    assert!(err.to_string().contains("upgrade lakecdp"), "{err}");
    // refused, never written to
    let mut expected = every_version();
    expected.push(i64::from(newer));
    assert_eq!(applied_versions(&schema.raw).await, expected);
}

#[tokio::test]
async fn a_wrong_password_is_refused_without_showing_it() {
    let user = service_var("LAKECDP_TEST_PG_USER");
    let host = service_var("LAKECDP_TEST_PG_HOST");
    let port = service_var("LAKECDP_TEST_PG_PORT");
    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let url = format!("postgresql://{user}:{wrong}@{host}:{port}/{DATABASE}");
    shared_database().await;
    let err = PostgresCatalog::connect(&url).await.unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(&wrong), "the password shows: {shown}");
        assert!(shown.contains(&user), "the user is not named: {shown}");
    }
    // nor does a working catalog's Debug show the right one
    let schema = Schema::new("debug").await;
    let catalog = PostgresCatalog::connect(&schema.url()).await.unwrap();
    let password = service_var("LAKECDP_TEST_PG_PASSWORD");
    let shown = format!("{catalog:?}");
    assert!(!shown.contains(&password), "the password shows: {shown}");
    assert!(shown.contains(DATABASE), "{shown}");
    // a URL of another kind is the caller's mistake
    assert!(matches!(
        PostgresCatalog::connect("sqlite:catalog.db").await,
        Err(Error::Invalid(_))
    ));
}

/// Two catalogs (two instances) on one fresh schema.
async fn two_instances(label: &str) -> (Schema, Arc<PostgresCatalog>, Arc<PostgresCatalog>) {
    let schema = Schema::new(label).await;
    let a = PostgresCatalog::connect(&schema.url()).await.unwrap();
    let b = PostgresCatalog::connect(&schema.url()).await.unwrap();
    (schema, Arc::new(a), Arc::new(b))
}

#[tokio::test]
async fn racing_applies_get_one_revision_each_number() {
    let (schema, a, b) = two_instances("revisions").await;
    let env = conformance::environment(&format!("race-{}", schema.name));
    a.create_environment(&env).await.unwrap();
    let mut applies = tokio::task::JoinSet::new();
    for i in 0..8 {
        let catalog = if i % 2 == 0 { a.clone() } else { b.clone() };
        let revision = conformance::revision(env.id, 1, &format!("text {i}"));
        applies.spawn(async move { catalog.add_revision(&revision).await });
    }
    let (mut won, mut lost) = (0, 0);
    while let Some(joined) = applies.join_next().await {
        match joined.unwrap() {
            Ok(()) => won += 1,
            Err(Error::Conflict(_)) => lost += 1,
            Err(other) => panic!("expected a conflict, got {other:?}"),
        }
    }
    assert_eq!((won, lost), (1, 7));
    assert_eq!(b.list_revisions(env.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn instances_share_numbering_counting_and_leadership() {
    let (schema, a, b) = two_instances("shared").await;
    let env = conformance::environment(&format!("shared-{}", schema.name));
    a.create_environment(&env).await.unwrap();
    let run = conformance::run(env.id, "unify", Utc::now());
    a.record_run(&run).await.unwrap();
    let key = format!("account:{}", schema.name);
    let leader = format!("scheduler-{}", schema.name);
    let t0 = Utc::now();

    let mut work = tokio::task::JoinSet::new();
    for i in 0..20 {
        let catalog = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (run_id, key, leader): (RunId, String, String) =
            (run.id.clone(), key.clone(), leader.clone());
        work.spawn(async move {
            let seq = catalog
                .append_run_event(&run_id, t0, &format!("{{\"i\":{i}}}"))
                .await
                .unwrap();
            catalog
                .record_sign_in_failure(&key, t0, Duration::minutes(15))
                .await
                .unwrap();
            let held = catalog
                .take_leadership(
                    &leader,
                    &format!("holder-{i}"),
                    t0,
                    t0 + Duration::minutes(1),
                )
                .await
                .unwrap();
            (seq, held.holder)
        });
    }
    let mut seqs = Vec::new();
    let mut holders = Vec::new();
    while let Some(joined) = work.join_next().await {
        let (seq, holder) = joined.unwrap();
        seqs.push(seq);
        holders.push(holder);
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=20).collect::<Vec<u64>>(),
        "each event its own number"
    );
    let events = b.run_events(&run.id, 0, 100).await.unwrap();
    assert_eq!(events.len(), 20);
    let throttle = a.sign_in_failures(&key).await.unwrap().unwrap();
    assert_eq!(throttle.failures, 20, "no failure lost");
    holders.dedup();
    assert_eq!(holders.len(), 1, "one holder at a time: {holders:?}");
}

/// Whether the catalog's connections (application name `app`) all use TLS, and exist.
async fn sessions_use_tls(raw: &Client, app: &str) -> bool {
    let row = raw
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    row.get::<_, i64>(0) > 0 && row.get::<_, bool>(1)
}

#[tokio::test]
async fn the_catalog_connects_over_tls_as_its_url_says() {
    let ca = service_var("LAKECDP_TEST_PG_SSLROOTCERT");
    for (i, tls) in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-full&sslrootcert={ca}"),
    ]
    .iter()
    .enumerate()
    {
        let schema = Schema::new("tls").await;
        let app = format!("{}_{i}", schema.name);
        let url = format!("{}&application_name={app}&{tls}", schema.url());
        let catalog = PostgresCatalog::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{tls}: {e}"));
        catalog.list_environments().await.unwrap();
        assert!(
            sessions_use_tls(&schema.raw, &app).await,
            "{tls}: not over TLS"
        );
    }
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_another_ca_signed() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=someone else",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
        ])
        .current_dir(dir.path())
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let schema = Schema::new("wrongca").await;
    let url = format!(
        "{}&sslmode=verify-full&sslrootcert={}",
        schema.url(),
        dir.path().join("other.pem").display()
    );
    let err = PostgresCatalog::connect(&url).await.unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(
        !text.contains(&service_var("LAKECDP_TEST_PG_PASSWORD")),
        "{text}"
    );
}

#[tokio::test]
async fn a_password_is_not_sent_over_plain_tcp_to_another_machine() {
    let password = service_var("LAKECDP_TEST_PG_PASSWORD");
    let url = format!("postgresql://lakecdp_test:{password}@catalog.example.com:5432/lakecdp");
    let err = PostgresCatalog::connect(&url).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("`sslmode`") && text.contains("plain TCP"),
        "{text}"
    );
    assert!(!text.contains(&password), "{text}");
}
