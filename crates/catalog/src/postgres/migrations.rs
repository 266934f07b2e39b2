//! Schema migrations of the PostgreSQL catalog.
//!
//! [`MIGRATIONS`] mirrors the SQLite catalog's list version for version (the same
//! numbers and descriptions, the schema written in PostgreSQL's terms), so both
//! backends report the same [`schema_version`](crate::Catalog::schema_version). The
//! table `schema_migrations` records each applied version with its description and time.
//!
//! Connecting applies the missing versions in order, each in its own transaction together
//! with its record, so a failed migration leaves the database at the previous version.
//! Every such transaction first takes a transaction-level advisory lock (see
//! [`MIGRATION_LOCK`]) for the schema it creates the tables in, and then reads the version, so several instances connecting to one
//! empty database at once apply each version exactly once. A database that records a
//! version newer than this code knows is refused, never written to.

use tokio_postgres::{Client, GenericClient, IsolationLevel};

use super::codec::{describe, storage};
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

/// The base of the key of the advisory lock migrations hold (`pg_advisory_xact_lock`):
/// the bytes of `lakecdp_` read as a number, combined with a hash of the schema the
/// tables are created in (`current_schema()`), so that catalogs in different schemas of
/// one database migrate independently.
pub(crate) const MIGRATION_LOCK: i64 = 0x6c61_6b65_6364_705f;

/// Every migration, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "environments and runs",
        sql: include_str!("../../migrations/postgres/0001_environments_and_runs.sql"),
    },
    Migration {
        version: 2,
        description: "incremental-load watermarks",
        sql: include_str!("../../migrations/postgres/0002_watermarks.sql"),
    },
    Migration {
        version: 3,
        description: "principals, roles, connections, sealed secrets and exports",
        sql: include_str!("../../migrations/postgres/0003_access_connections_exports.sql"),
    },
    Migration {
        version: 4,
        description: "sealed environment secrets",
        sql: include_str!("../../migrations/postgres/0004_environment_secrets.sql"),
    },
    Migration {
        version: 5,
        description: "runs name the refresh they belong to",
        sql: include_str!("../../migrations/postgres/0005_run_parents.sql"),
    },
    Migration {
        version: 6,
        description: "applied project revisions",
        sql: include_str!("../../migrations/postgres/0006_revisions.sql"),
    },
    Migration {
        version: 7,
        description: "accounts, groups, sessions, API tokens, audit log and shared run work",
        sql: include_str!("../../migrations/postgres/0007_accounts_sessions_audit.sql"),
    },
    Migration {
        version: 8,
        description: "keys made on first use",
        sql: include_str!("../../migrations/postgres/0008_keys.sql"),
    },
    Migration {
        version: 9,
        description: "the sharing of environments' outputs",
        sql: include_str!("../../migrations/postgres/0009_sharing.sql"),
    },
    Migration {
        version: 10,
        description: "organisations attached to shared storage",
        sql: include_str!("../../migrations/postgres/0010_attachments.sql"),
    },
    Migration {
        version: 11,
        description: "reporting connections",
        sql: include_str!("../../migrations/postgres/0011_reporting.sql"),
    },
];

/// The schema version this code writes.
pub(crate) fn latest(migrations: &[Migration]) -> u32 {
    migrations.last().map_or(0, |m| m.version)
}

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version     bigint      NOT NULL PRIMARY KEY,
    description text        NOT NULL,
    applied_at  timestamptz NOT NULL
)";

/// The highest applied version, 0 for a new database.
pub(crate) async fn current_version(client: &impl GenericClient) -> Result<u32> {
    let row = client
        .query_one("SELECT MAX(version) FROM schema_migrations", &[])
        .await
        .map_err(storage)?;
    let version: Option<i64> = row.try_get(0).map_err(storage)?;
    u32::try_from(version.unwrap_or(0))
        .map_err(|_| Error::Storage("schema_migrations holds an impossible version".into()))
}

/// Bring the database up to the newest of `migrations`; returns the resulting version.
pub(crate) async fn migrate(client: &mut Client, migrations: &[Migration]) -> Result<u32> {
    let known = latest(migrations);
    loop {
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await
            .map_err(storage)?;
        // Under the lock, one instance at a time reads the version and migrates.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1::bigint # hashtext(coalesce(current_schema(), '')))",
            &[&MIGRATION_LOCK],
        )
        .await
        .map_err(storage)?;
        tx.batch_execute(CREATE_MIGRATIONS_TABLE)
            .await
            .map_err(storage)?;
        let current = current_version(&tx).await?;
        refuse_newer(current, known)?;
        let Some(migration) = migrations.iter().find(|m| m.version > current) else {
            tx.commit().await.map_err(storage)?;
            return Ok(current);
        };
        let failed = |e: tokio_postgres::Error| Error::Migration {
            version: migration.version,
            message: format!("{} failed: {}", migration.description, describe(&e)),
        };
        tx.batch_execute(migration.sql).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) \
             VALUES ($1, $2, now())",
            &[&i64::from(migration.version), &migration.description],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        tracing::info!(
            version = migration.version,
            description = migration.description,
            "applied catalog migration"
        );
    }
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
    fn versions_start_at_one_and_end_at_the_sqlite_catalogs() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.description);
            assert!(!m.description.is_empty());
        }
        assert_eq!(latest(MIGRATIONS), crate::latest_schema_version());
    }

    #[test]
    fn the_lock_key_spells_its_purpose() {
        assert_eq!(&MIGRATION_LOCK.to_be_bytes(), b"lakecdp_");
    }
}
