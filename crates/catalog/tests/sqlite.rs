//! The SQLite catalog on a real database file: the conformance suite, and what only a
//! file-backed catalog has (reopening, migrations, several connections).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use lakecdp_catalog::conformance::{self, CatalogHarness};
use lakecdp_catalog::{latest_schema_version, Catalog, Error, Result, SqliteCatalog};
use lakecdp_core::{EnvironmentId, RunStatus};
use rusqlite::{Connection, OptionalExtension};
use tempfile::TempDir;

/// A catalog in a fresh temporary folder; the folder goes when the harness is dropped.
struct FileHarness {
    catalog: SqliteCatalog,
    path: PathBuf,
    _dir: TempDir,
}

impl FileHarness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("catalog.db");
        let catalog = SqliteCatalog::open(&path).await.expect("open");
        Self {
            catalog,
            path,
            _dir: dir,
        }
    }
}

/// A separate plain connection to the file, as another tool would read it.
fn raw(path: &Path) -> Connection {
    Connection::open(path).expect("raw connection")
}

#[async_trait]
impl CatalogHarness for FileHarness {
    fn catalog(&self) -> &dyn Catalog {
        &self.catalog
    }

    async fn raw_environment_row(&self, id: EnvironmentId) -> Result<Option<String>> {
        let conn = raw(&self.path);
        let mut stmt = conn
            .prepare("SELECT * FROM environments WHERE id = ?1")
            .map_err(|e| Error::Storage(e.to_string()))?;
        let columns = stmt.column_count();
        stmt.query_row([id.to_string()], |row| {
            let mut text = Vec::with_capacity(columns);
            for i in 0..columns {
                let value: rusqlite::types::Value = row.get(i)?;
                text.push(format!("{value:?}"));
            }
            Ok(text.join("|"))
        })
        .optional()
        .map_err(|e| Error::Storage(e.to_string()))
    }
}

lakecdp_catalog::catalog_conformance_suite!(FileHarness::new());

fn applied_migrations(path: &Path) -> Vec<(u32, String)> {
    let conn = raw(path);
    let mut stmt = conn
        .prepare("SELECT version, applied_at FROM schema_migrations ORDER BY version")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[tokio::test]
async fn open_creates_the_file_and_its_folders_at_the_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("nested").join("catalog.db");
    let catalog = SqliteCatalog::open(&path).await.unwrap();
    assert!(path.is_file());
    assert_eq!(catalog.path(), Some(path.as_path()));
    assert_eq!(
        catalog.schema_version().await.unwrap(),
        latest_schema_version()
    );
    let versions: Vec<u32> = applied_migrations(&path).into_iter().map(|v| v.0).collect();
    assert_eq!(versions, (1..=latest_schema_version()).collect::<Vec<_>>());

    let conn = raw(&path);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode.to_ascii_lowercase(), "wal");
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_database_and_its_log_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let catalog = SqliteCatalog::open(&path).await.unwrap();
    let mode = |suffix: &str| {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777
    };
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(suffix), 0o600, "catalog.db{suffix}");
    }
    drop(catalog);

    // an existing file keeps the mode its owner gave it
    let shared = dir.path().join("shared.db");
    std::fs::write(&shared, b"").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
    SqliteCatalog::open(&shared).await.unwrap();
    assert_eq!(
        std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777,
        0o640
    );
}

#[tokio::test]
async fn reopening_keeps_data_and_does_not_rerun_migrations() {
    let h = FileHarness::new().await;
    let env = conformance::environment("kept-across-opens");
    h.catalog.create_environment(&env).await.unwrap();
    let run = conformance::run(env.id, "unify", env.created_at);
    h.catalog.record_run(&run).await.unwrap();
    let hour = "2026-03-04T05:00:00Z".parse().unwrap();
    let watermark = conformance::watermark(env.id, "Crm", "Contacts", hour);
    h.catalog.set_watermark(&watermark).await.unwrap();
    let before = applied_migrations(&h.path);
    drop(h.catalog);

    let reopened = SqliteCatalog::open(&h.path).await.unwrap();
    assert_eq!(
        reopened.get_environment(env.id).await.unwrap(),
        Some(env.clone())
    );
    assert_eq!(reopened.get_run(&run.id).await.unwrap(), Some(run));
    assert_eq!(
        reopened.watermarks(env.id, "Crm").await.unwrap(),
        [watermark]
    );
    assert_eq!(
        applied_migrations(&h.path),
        before,
        "migrations ran again on reopen"
    );
}

#[tokio::test]
async fn a_version_1_database_is_migrated_forward_on_open() {
    // A database as version 1 wrote it, with one environment and one run.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let env = conformance::environment("from-version-1");
    let run = conformance::run(env.id, "ingest:crm", env.created_at);
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    {
        let conn = raw(&path);
        conn.execute_batch(
            "CREATE TABLE schema_migrations (
                 version     INTEGER NOT NULL PRIMARY KEY,
                 description TEXT    NOT NULL,
                 applied_at  TEXT    NOT NULL
             ) STRICT;
             INSERT INTO schema_migrations (version, description, applied_at)
             VALUES (1, 'environments and runs', '2026-01-01T00:00:00.000000Z');",
        )
        .unwrap();
        conn.execute_batch(include_str!(
            "../migrations/sqlite/0001_environments_and_runs.sql"
        ))
        .unwrap();
        conn.execute(
            "INSERT INTO environments (id, name, region, storage_json, output_format, \
             retention_runs, created_by, created_at, updated_at) \
             VALUES (?1, ?2, NULL, ?3, 'csv', ?4, ?5, ?6, ?7)",
            rusqlite::params![
                env.id.to_string(),
                env.name,
                serde_json::to_string(&env.storage).unwrap(),
                env.retention_runs,
                env.created_by,
                at(env.created_at),
                at(env.updated_at)
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO runs (id, environment_id, process, status, started_at) \
             VALUES (?1, ?2, ?3, 'Running', ?4)",
            rusqlite::params![
                run.id.as_str(),
                env.id.to_string(),
                run.process,
                at(run.started_at)
            ],
        )
        .unwrap();
    }
    let version_1 = applied_migrations(&path);

    let catalog = SqliteCatalog::open(&path).await.unwrap();
    assert_eq!(
        catalog.schema_version().await.unwrap(),
        latest_schema_version()
    );
    let applied = applied_migrations(&path);
    assert_eq!(
        applied.iter().map(|v| v.0).collect::<Vec<_>>(),
        (1..=latest_schema_version()).collect::<Vec<_>>(),
        "{applied:?}"
    );
    assert_eq!(applied[0], version_1[0], "version 1 was applied again");
    assert_eq!(
        catalog.get_environment(env.id).await.unwrap(),
        Some(env.clone())
    );
    assert_eq!(catalog.get_run(&run.id).await.unwrap(), Some(run));

    let hour = "2026-03-04T05:00:00Z".parse().unwrap();
    let watermark = conformance::watermark(env.id, "Crm", "Contacts", hour);
    catalog.set_watermark(&watermark).await.unwrap();
    assert_eq!(
        catalog.watermarks(env.id, "Crm").await.unwrap(),
        [watermark]
    );
    catalog.delete_environment(env.id).await.unwrap();
    let left: i64 = raw(&path)
        .query_row("SELECT COUNT(*) FROM watermarks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_database_with_a_newer_schema_is_refused() {
    let h = FileHarness::new().await;
    let env = conformance::environment("from-the-future");
    h.catalog.create_environment(&env).await.unwrap();
    let future = latest_schema_version() + 1;
    raw(&h.path)
        .execute(
            "INSERT INTO schema_migrations (version, description, applied_at) \
             VALUES (?1, 'from a newer lakecdp', '2099-01-01T00:00:00.000000Z')",
            [future],
        )
        .unwrap();

    let err = SqliteCatalog::open(&h.path).await.unwrap_err();
    match &err {
        Error::Migration { version, .. } => assert_eq!(*version, future),
        other => panic!("expected a migration error, got {other:?}"),
    }
    assert!(!err.is_user_error());
    let message = err.to_string();
    assert!(message.contains("newer than this lakecdp"), "{message}");
    assert!(message.contains("upgrade lakecdp"), "{message}");

    // Refusing wrote nothing: the data and the recorded versions are untouched.
    let versions: Vec<u32> = applied_migrations(&h.path)
        .into_iter()
        .map(|v| v.0)
        .collect();
    assert_eq!(versions.last(), Some(&future));
    let names: i64 = raw(&h.path)
        .query_row("SELECT COUNT(*) FROM environments", [], |r| r.get(0))
        .unwrap();
    assert_eq!(names, 1);
}

#[tokio::test]
async fn two_catalogs_on_one_file_see_each_others_writes() {
    let h = FileHarness::new().await;
    let other = SqliteCatalog::open(&h.path).await.unwrap();

    let env = conformance::environment("shared");
    h.catalog.create_environment(&env).await.unwrap();
    assert_eq!(
        other.find_environment("SHARED").await.unwrap(),
        Some(env.clone())
    );

    let run = conformance::run(env.id, "ingest:crm", env.created_at);
    other.record_run(&run).await.unwrap();
    let mut done = run.clone();
    done.status = RunStatus::Succeeded;
    done.finished_at = Some(run.started_at + chrono::Duration::seconds(3));
    done.rows = Some(1000);
    h.catalog.update_run(&done).await.unwrap();
    assert_eq!(other.list_runs(env.id, 10).await.unwrap(), [done]);

    let mut duplicate = conformance::environment("Shared");
    duplicate.id = EnvironmentId::new();
    assert!(matches!(
        other.create_environment(&duplicate).await,
        Err(Error::AlreadyExists { .. })
    ));

    other.delete_environment(env.id).await.unwrap();
    assert_eq!(h.catalog.get_environment(env.id).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_one_file_all_succeed() {
    let h = FileHarness::new().await;
    let second = SqliteCatalog::open(&h.path).await.unwrap();
    let env = conformance::environment("busy");
    h.catalog.create_environment(&env).await.unwrap();

    let mut tasks = Vec::new();
    for (i, catalog) in [h.catalog.clone(), second]
        .into_iter()
        .cycle()
        .take(8)
        .enumerate()
    {
        let env_id = env.id;
        tasks.push(tokio::spawn(async move {
            for j in 0..10 {
                let started = chrono::Utc::now();
                let run = conformance::run(env_id, &format!("writer-{i}-{j}"), started);
                catalog.record_run(&run).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(h.catalog.list_runs(env.id, 1000).await.unwrap().len(), 80);
}

#[tokio::test]
async fn errors_say_what_went_wrong_for_the_caller() {
    let h = FileHarness::new().await;
    let id = EnvironmentId::new();
    let err = h.catalog.delete_environment(id).await.unwrap_err();
    assert!(err.is_user_error());
    assert_eq!(err.to_string(), format!("environment `{id}` not found"));
}
