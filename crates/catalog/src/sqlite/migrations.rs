//! Schema migrations of the SQLite catalog.
//!
//! [`MIGRATIONS`] is the ordered list of schema changes. The table `schema_migrations`
//! records each applied version with its description and time. Opening a catalog applies
//! the missing versions in order, each in its own transaction together with its record,
//! so a failed migration leaves the database at the previous version. A database that
//! records a version newer than this code knows is refused, never written to.

use rusqlite::{params, Connection, TransactionBehavior};

use super::codec;
use crate::error::{Error, Result};

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// Its version; versions start at 1 and increase by 1.
    pub(crate) version: u32,
    /// What it changes, recorded in `schema_migrations`.
    pub(crate) description: &'static str,
    /// The statements, run in one transaction.
    pub(crate) sql: &'static str,
}

/// Every migration, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "environments and runs",
        sql: include_str!("../../migrations/sqlite/0001_environments_and_runs.sql"),
    },
    Migration {
        version: 2,
        description: "incremental-load watermarks",
        sql: include_str!("../../migrations/sqlite/0002_watermarks.sql"),
    },
    Migration {
        version: 3,
        description: "principals, roles, connections, sealed secrets and exports",
        sql: include_str!("../../migrations/sqlite/0003_access_connections_exports.sql"),
    },
    Migration {
        version: 4,
        description: "sealed environment secrets",
        sql: include_str!("../../migrations/sqlite/0004_environment_secrets.sql"),
    },
    Migration {
        version: 5,
        description: "runs name the refresh they belong to",
        sql: include_str!("../../migrations/sqlite/0005_run_parents.sql"),
    },
    Migration {
        version: 6,
        description: "applied project revisions",
        sql: include_str!("../../migrations/sqlite/0006_revisions.sql"),
    },
    Migration {
        version: 7,
        description: "accounts, groups, sessions, API tokens, audit log and shared run work",
        sql: include_str!("../../migrations/sqlite/0007_accounts_sessions_audit.sql"),
    },
    Migration {
        version: 8,
        description: "keys made on first use",
        sql: include_str!("../../migrations/sqlite/0008_keys.sql"),
    },
    Migration {
        version: 9,
        description: "the sharing of environments' outputs",
        sql: include_str!("../../migrations/sqlite/0009_sharing.sql"),
    },
    Migration {
        version: 10,
        description: "organisations attached to shared storage",
        sql: include_str!("../../migrations/sqlite/0010_attachments.sql"),
    },
    Migration {
        version: 11,
        description: "reporting connections",
        sql: include_str!("../../migrations/sqlite/0011_reporting.sql"),
    },
];

/// The schema version this code writes.
pub(crate) fn latest(migrations: &[Migration]) -> u32 {
    migrations.last().map_or(0, |m| m.version)
}

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER NOT NULL PRIMARY KEY,
    description TEXT    NOT NULL,
    applied_at  TEXT    NOT NULL
) STRICT";

/// The highest applied version, 0 for a new database.
pub(crate) fn current_version(conn: &Connection) -> Result<u32> {
    let version: Option<i64> = conn
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .map_err(codec::storage)?;
    u32::try_from(version.unwrap_or(0))
        .map_err(|_| Error::Storage("schema_migrations holds an impossible version".into()))
}

/// Bring the database up to the newest of `migrations`; returns the resulting version.
pub(crate) fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<u32> {
    conn.execute_batch(CREATE_MIGRATIONS_TABLE)
        .map_err(codec::storage)?;
    let known = latest(migrations);
    let current = current_version(conn)?;
    refuse_newer(current, known)?;
    for migration in migrations.iter().filter(|m| m.version > current) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(codec::storage)?;
        // Another process may have migrated since the first look; decide under the lock.
        let now_current = current_version(&tx)?;
        refuse_newer(now_current, known)?;
        if now_current >= migration.version {
            continue;
        }
        let failed = |e: rusqlite::Error| Error::Migration {
            version: migration.version,
            message: format!("{} failed: {e}", migration.description),
        };
        tx.execute_batch(migration.sql).map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)",
            params![
                migration.version,
                migration.description,
                codec::timestamp(chrono::Utc::now())
            ],
        )
        .map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::info!(
            version = migration.version,
            description = migration.description,
            "applied catalog migration"
        );
    }
    current_version(conn)
}

fn refuse_newer(current: u32, known: u32) -> Result<()> {
    if current > known {
        return Err(Error::Migration {
            version: current,
            message: format!(
                "the catalog database is newer than this lakecdp, which knows schema \
                 versions up to {known}; upgrade lakecdp"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_start_at_one_and_increase_by_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.description);
            assert!(!m.description.is_empty());
        }
    }

    #[test]
    fn migrating_twice_applies_each_version_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, MIGRATIONS).unwrap(), latest(MIGRATIONS));
        assert_eq!(migrate(&mut conn, MIGRATIONS).unwrap(), latest(MIGRATIONS));
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count as usize, MIGRATIONS.len());
    }

    #[test]
    fn a_failing_migration_leaves_the_previous_version() {
        let migrations = [
            Migration {
                version: 1,
                description: "first",
                sql: "CREATE TABLE a (x INTEGER);",
            },
            Migration {
                version: 2,
                description: "second",
                sql: "CREATE TABLE b (x INTEGER); INSERT INTO no_such_table VALUES (1);",
            },
        ];
        let mut conn = Connection::open_in_memory().unwrap();
        let err = migrate(&mut conn, &migrations).unwrap_err();
        match &err {
            Error::Migration { version, message } => {
                assert_eq!(*version, 2);
                assert!(message.starts_with("second failed"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(current_version(&conn).unwrap(), 1);
        let b_exists: bool = conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'b'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!b_exists, "the failed migration's table was kept");
        // With the fault fixed, the next open picks up where it stopped.
        let fixed = [
            migrations[0],
            Migration {
                sql: "CREATE TABLE b (x INTEGER);",
                ..migrations[1]
            },
        ];
        assert_eq!(migrate(&mut conn, &fixed).unwrap(), 2);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, MIGRATIONS).unwrap();
        let latest = latest(MIGRATIONS);
        let err = migrate(&mut conn, &MIGRATIONS[..MIGRATIONS.len() - 1]).unwrap_err();
        match &err {
            Error::Migration { version, .. } => assert_eq!(*version, latest),
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("upgrade lakecdp"), "{err}");
        let err = migrate(&mut conn, &[]).unwrap_err();
        assert!(
            matches!(err, Error::Migration { version, .. } if version == latest),
            "{err:?}"
        );
        assert_eq!(current_version(&conn).unwrap(), latest);
    }

    #[test]
    fn a_version_1_database_is_migrated_forward_with_its_data() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        assert_eq!(migrate(&mut conn, &MIGRATIONS[..1]).unwrap(), 1);
        conn.execute_batch(
            "INSERT INTO environments (id, name, region, storage_json, output_format, \
             retention_runs, created_by, created_at, updated_at) VALUES ('e1', 'retail', \
             NULL, '{}', 'csv', 3, 'test', '2026-01-01T00:00:00.000000Z', \
             '2026-01-01T00:00:00.000000Z'); \
             INSERT INTO runs (id, environment_id, process, status, started_at) \
             VALUES ('r1', 'e1', 'unify', 'Running', '2026-01-01T00:00:00.000000Z');",
        )
        .unwrap();

        assert_eq!(migrate(&mut conn, MIGRATIONS).unwrap(), latest(MIGRATIONS));
        let kept: (i64, i64) = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM environments), (SELECT COUNT(*) FROM runs)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, (1, 1));
        conn.execute(
            "INSERT INTO watermarks (environment_id, source, table_name, hour, updated_at) \
             VALUES ('e1', 'crm', 'contacts', '2026-01-01T05:00:00.000000Z', \
             '2026-01-01T05:10:00.000000Z')",
            [],
        )
        .unwrap();
        // The new table refers to environments and goes with them.
        conn.execute("DELETE FROM environments WHERE id = 'e1'", [])
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM watermarks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }
}
