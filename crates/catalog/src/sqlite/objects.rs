//! Principals, roles, connections, sealed secrets and exports in SQLite.

use std::collections::BTreeMap;

use chrono::Utc;
use lakecdp_core::{
    Attachment, Connection, ConnectionId, ConnectionKind, ConnectionSharing, EnvironmentId, Export,
    ExportId, Principal, PrincipalKind, ReportingConnection, Role, RoleAssignment, SecretOwner,
    Sharing,
};
use rusqlite::{params, Connection as Db, OptionalExtension, Row, Transaction};

use super::codec::{parse_timestamp, storage, timestamp, violation, Violation};
use crate::catalog::SealedSecret;
use crate::error::{Error, Result};
use crate::{CONNECTION, EXPORT};

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("stored {what} cannot be read: {e}"))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Storage(e.to_string()))
}

// ---- principals and roles ----

pub(crate) fn upsert_principal(tx: &Transaction<'_>, p: &Principal) -> Result<Principal> {
    if p.name.trim().is_empty() {
        return Err(Error::Invalid("a principal's name is empty".into()));
    }
    tx.execute(
        "INSERT INTO principals (name, kind, created_at, disabled, administrator) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
        params![
            p.name,
            p.kind.as_str(),
            timestamp(p.created_at),
            p.disabled,
            p.administrator
        ],
    )
    .map_err(storage)?;
    select_principal(tx, &p.name)?
        .ok_or_else(|| Error::Storage("a recorded principal cannot be read back".into()))
}

const PRINCIPAL_COLUMNS: &str = "name, kind, created_at, disabled, administrator";

type PrincipalRaw = (String, String, String, bool, bool);

fn read_principal(row: &Row<'_>) -> rusqlite::Result<PrincipalRaw> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn principal_of(raw: PrincipalRaw) -> Result<Principal> {
    let (name, kind, created_at, disabled, administrator) = raw;
    Ok(Principal {
        kind: kind
            .parse::<PrincipalKind>()
            .map_err(|e| corrupt("principal kind", e))?,
        created_at: parse_timestamp("principal time", &created_at)?,
        name,
        disabled,
        administrator,
    })
}

pub(crate) fn select_principal(conn: &Db, name: &str) -> Result<Option<Principal>> {
    conn.query_row(
        &format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE name = ?1"),
        [name],
        read_principal,
    )
    .optional()
    .map_err(storage)?
    .map(principal_of)
    .transpose()
}

pub(crate) fn list_principals(conn: &Db) -> Result<Vec<Principal>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals ORDER BY name"
        ))
        .map_err(storage)?;
    let rows = stmt.query_map([], read_principal).map_err(storage)?;
    rows.map(|r| principal_of(r.map_err(storage)?)).collect()
}

pub(crate) fn set_role(tx: &Transaction<'_>, a: &RoleAssignment) -> Result<()> {
    let env = a.environment_id.to_string();
    if !super::environment_exists(tx, &env)? {
        return Err(Error::environment_not_found(env));
    }
    upsert_principal(
        tx,
        &Principal {
            created_at: a.assigned_at,
            ..Principal::new(a.principal.clone(), PrincipalKind::Person)
        },
    )?;
    tx.execute(
        "INSERT INTO role_assignments (environment_id, principal, role, assigned_by, assigned_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (environment_id, principal) DO UPDATE SET \
         role = excluded.role, assigned_by = excluded.assigned_by, assigned_at = excluded.assigned_at",
        params![
            env,
            a.principal,
            a.role.as_str(),
            a.assigned_by,
            timestamp(a.assigned_at)
        ],
    )
    .map_err(storage)?;
    Ok(())
}

pub(crate) fn remove_role(
    tx: &Transaction<'_>,
    env: EnvironmentId,
    principal: &str,
) -> Result<bool> {
    let n = tx
        .execute(
            "DELETE FROM role_assignments WHERE environment_id = ?1 AND principal = ?2",
            params![env.to_string(), principal],
        )
        .map_err(storage)?;
    Ok(n > 0)
}

pub(crate) fn role_of(conn: &Db, env: EnvironmentId, principal: &str) -> Result<Option<Role>> {
    let role: Option<String> = conn
        .query_row(
            "SELECT role FROM role_assignments WHERE environment_id = ?1 AND principal = ?2",
            params![env.to_string(), principal],
            |r| r.get(0),
        )
        .optional()
        .map_err(storage)?;
    role.map(|r| r.parse::<Role>().map_err(|e| corrupt("role", e)))
        .transpose()
}

pub(crate) fn list_roles(conn: &Db, env: EnvironmentId) -> Result<Vec<RoleAssignment>> {
    assignments(
        conn,
        env,
        "SELECT principal, role, assigned_by, assigned_at FROM role_assignments \
         WHERE environment_id = ?1 ORDER BY principal COLLATE NOCASE",
        params![env.to_string()],
    )
}

/// The role assignments of `env` that `sql` selects as (principal, role, assigned_by,
/// assigned_at).
pub(crate) fn assignments(
    conn: &Db,
    env: EnvironmentId,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RoleAssignment>> {
    let mut stmt = conn.prepare_cached(sql).map_err(storage)?;
    let rows = stmt
        .query_map(params, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(storage)?;
    rows.map(|r| {
        let (principal, role, by, at) = r.map_err(storage)?;
        Ok(RoleAssignment {
            environment_id: env,
            principal,
            role: role.parse().map_err(|e| corrupt("role", e))?,
            assigned_by: by,
            assigned_at: parse_timestamp("role time", &at)?,
        })
    })
    .collect()
}

// ---- connections ----

const CONNECTION_COLUMNS: &str =
    "id, environment_id, name, kind, settings_json, sharing, created_by, created_at, updated_at";

fn read_connection(conn: &Db, row: &Row<'_>) -> rusqlite::Result<Result<Connection>> {
    let id: String = row.get(0)?;
    let env: String = row.get(1)?;
    let name: String = row.get(2)?;
    let kind: String = row.get(3)?;
    let settings: String = row.get(4)?;
    let sharing: String = row.get(5)?;
    let created_by: String = row.get(6)?;
    let created_at: String = row.get(7)?;
    let updated_at: String = row.get(8)?;
    Ok((|| {
        let mut stmt = conn
            .prepare_cached(
                "SELECT name FROM connection_secrets WHERE connection_id = ?1 ORDER BY name",
            )
            .map_err(storage)?;
        let secrets = stmt
            .query_map([&id], |r| r.get::<_, String>(0))
            .map_err(storage)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(storage)?;
        Ok(Connection {
            id: id.parse().map_err(|e| corrupt("connection id", e))?,
            environment_id: env.parse().map_err(|e| corrupt("environment id", e))?,
            name,
            kind: kind
                .parse::<ConnectionKind>()
                .map_err(|e| corrupt("connection kind", e))?,
            settings: serde_json::from_str::<BTreeMap<String, String>>(&settings)
                .map_err(|e| corrupt("connection settings", e))?,
            secrets,
            sharing: sharing
                .parse::<ConnectionSharing>()
                .map_err(|e| corrupt("connection sharing", e))?,
            created_by,
            created_at: parse_timestamp("connection time", &created_at)?,
            updated_at: parse_timestamp("connection time", &updated_at)?,
        })
    })())
}

fn select_connections(
    conn: &Db,
    filter: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<Connection>> {
    let sql = format!(
        "SELECT {CONNECTION_COLUMNS} FROM connections WHERE {filter} ORDER BY name COLLATE NOCASE, id"
    );
    let mut stmt = conn.prepare(&sql).map_err(storage)?;
    let rows = stmt
        .query_map(args, |r| read_connection(conn, r))
        .map_err(storage)?;
    rows.map(|r| r.map_err(storage)?).collect()
}

pub(crate) fn find_connection(
    conn: &Db,
    env: EnvironmentId,
    name: &str,
) -> Result<Option<Connection>> {
    Ok(select_connections(
        conn,
        "environment_id = ?1 AND name = ?2",
        params![env.to_string(), name],
    )?
    .into_iter()
    .next())
}

pub(crate) fn get_connection(conn: &Db, id: ConnectionId) -> Result<Option<Connection>> {
    Ok(select_connections(conn, "id = ?1", [id.to_string()])?
        .into_iter()
        .next())
}

pub(crate) fn list_connections(conn: &Db, env: EnvironmentId) -> Result<Vec<Connection>> {
    select_connections(conn, "environment_id = ?1", [env.to_string()])
}

fn invalid(what: &str, problems: Vec<String>) -> Result<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(format!("{what}: {}", problems.join("; "))))
    }
}

fn validate_connection(c: &Connection) -> Result<()> {
    // secret names are the catalog's to report, not the caller's: check settings only
    let mut c = c.clone();
    c.secrets = c
        .kind
        .fields()
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.name.to_string())
        .collect();
    invalid(&format!("connection `{}`", c.name), c.validate())
}

pub(crate) fn create_connection(tx: &Transaction<'_>, c: &Connection) -> Result<()> {
    validate_connection(c)?;
    let env = c.environment_id.to_string();
    if !super::environment_exists(tx, &env)? {
        return Err(Error::environment_not_found(env));
    }
    tx.execute(
        &format!("INSERT INTO connections ({CONNECTION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
        params![
            c.id.to_string(),
            env,
            c.name,
            c.kind.as_str(),
            json(&c.settings)?,
            c.sharing.as_str(),
            c.created_by,
            timestamp(c.created_at),
            timestamp(c.updated_at)
        ],
    )
    .map_err(|e| match violation(&e) {
        Some(Violation::Unique) => Error::AlreadyExists {
            kind: CONNECTION,
            name: c.name.clone(),
        },
        _ => storage(e),
    })?;
    Ok(())
}

pub(crate) fn update_connection(tx: &Transaction<'_>, c: &Connection) -> Result<()> {
    validate_connection(c)?;
    let n = tx
        .execute(
            "UPDATE connections SET name = ?2, settings_json = ?3, sharing = ?4, updated_at = ?5 \
             WHERE id = ?1 AND environment_id = ?6",
            params![
                c.id.to_string(),
                c.name,
                json(&c.settings)?,
                c.sharing.as_str(),
                timestamp(c.updated_at),
                c.environment_id.to_string()
            ],
        )
        .map_err(|e| match violation(&e) {
            Some(Violation::Unique) => Error::AlreadyExists {
                kind: CONNECTION,
                name: c.name.clone(),
            },
            _ => storage(e),
        })?;
    if n == 0 {
        return Err(Error::NotFound {
            kind: CONNECTION,
            name: c.name.clone(),
        });
    }
    Ok(())
}

pub(crate) fn delete_connection(tx: &Transaction<'_>, id: ConnectionId) -> Result<()> {
    let Some(c) = get_connection(tx, id)? else {
        return Err(Error::NotFound {
            kind: CONNECTION,
            name: id.to_string(),
        });
    };
    let mut stmt = tx
        .prepare_cached(
            "SELECT name FROM exports WHERE connection_id = ?1 ORDER BY name COLLATE NOCASE",
        )
        .map_err(storage)?;
    let exports = stmt
        .query_map([id.to_string()], |r| r.get::<_, String>(0))
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    if !exports.is_empty() {
        return Err(Error::ConnectionInUse {
            connection: c.name,
            exports,
        });
    }
    tx.execute(
        "DELETE FROM connection_secrets WHERE connection_id = ?1",
        [id.to_string()],
    )
    .map_err(storage)?;
    tx.execute("DELETE FROM connections WHERE id = ?1", [id.to_string()])
        .map_err(storage)?;
    Ok(())
}

pub(crate) fn set_connection_secret(
    tx: &Transaction<'_>,
    id: ConnectionId,
    name: &str,
    sealed: &[u8],
) -> Result<()> {
    let Some(c) = get_connection(tx, id)? else {
        return Err(Error::NotFound {
            kind: CONNECTION,
            name: id.to_string(),
        });
    };
    if !c.kind.field(name).is_some_and(|f| f.secret) {
        return Err(Error::Invalid(format!(
            "a {} connection has no secret `{name}`",
            c.kind
        )));
    }
    let now = timestamp(Utc::now());
    tx.execute(
        "INSERT INTO connection_secrets (connection_id, name, sealed, updated_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (connection_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
        params![id.to_string(), name, sealed, now],
    )
    .map_err(storage)?;
    tx.execute(
        "UPDATE connections SET updated_at = ?2 WHERE id = ?1",
        params![id.to_string(), now],
    )
    .map_err(storage)?;
    Ok(())
}

pub(crate) fn connection_secret(
    conn: &Db,
    id: ConnectionId,
    name: &str,
) -> Result<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT sealed FROM connection_secrets WHERE connection_id = ?1 AND name = ?2",
        params![id.to_string(), name],
        |r| r.get(0),
    )
    .optional()
    .map_err(storage)
}

pub(crate) fn sealed_secrets(conn: &Db) -> Result<Vec<SealedSecret>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT 'c', connection_id, name, sealed FROM connection_secrets \
             UNION ALL SELECT 'e', environment_id, name, sealed FROM environment_secrets \
             ORDER BY 1, 2, 3",
        )
        .map_err(storage)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })
        .map_err(storage)?;
    rows.map(|r| {
        let (kind, id, name, sealed) = r.map_err(storage)?;
        let owner = if kind == "c" {
            SecretOwner::Connection(id.parse().map_err(|e| corrupt("connection id", e))?)
        } else {
            SecretOwner::Environment(id.parse().map_err(|e| corrupt("environment id", e))?)
        };
        Ok(SealedSecret {
            owner,
            name,
            sealed,
        })
    })
    .collect()
}

pub(crate) fn replace_sealed_secrets(tx: &Transaction<'_>, secrets: &[SealedSecret]) -> Result<()> {
    let now = timestamp(Utc::now());
    for s in secrets {
        let (sql, id) = match s.owner {
            SecretOwner::Connection(id) => (
                "UPDATE connection_secrets SET sealed = ?3, updated_at = ?4 \
                 WHERE connection_id = ?1 AND name = ?2",
                id.to_string(),
            ),
            SecretOwner::Environment(id) => (
                "UPDATE environment_secrets SET sealed = ?3, updated_at = ?4 \
                 WHERE environment_id = ?1 AND name = ?2",
                id.to_string(),
            ),
        };
        let n = tx
            .execute(sql, params![id, s.name, s.sealed, now])
            .map_err(storage)?;
        if n == 0 {
            return Err(Error::NotFound {
                kind: "secret",
                name: format!("{id}/{}", s.name),
            });
        }
    }
    Ok(())
}

pub(crate) fn set_environment_secret(
    tx: &Transaction<'_>,
    env: EnvironmentId,
    name: &str,
    sealed: &[u8],
) -> Result<()> {
    let id = env.to_string();
    if !super::environment_exists(tx, &id)? {
        return Err(Error::environment_not_found(id));
    }
    if name.trim().is_empty() || name.contains(char::is_whitespace) {
        return Err(Error::Invalid(format!(
            "`{name}` cannot name a secret: use letters, digits, `_` or `-`"
        )));
    }
    tx.execute(
        "INSERT INTO environment_secrets (environment_id, name, sealed, updated_at) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (environment_id, name) DO UPDATE SET \
         sealed = excluded.sealed, updated_at = excluded.updated_at",
        params![id, name, sealed, timestamp(Utc::now())],
    )
    .map_err(storage)?;
    Ok(())
}

pub(crate) fn environment_secret(
    conn: &Db,
    env: EnvironmentId,
    name: &str,
) -> Result<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT sealed FROM environment_secrets WHERE environment_id = ?1 AND name = ?2",
        params![env.to_string(), name],
        |r| r.get(0),
    )
    .optional()
    .map_err(storage)
}

pub(crate) fn environment_secret_names(conn: &Db, env: EnvironmentId) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT name FROM environment_secrets WHERE environment_id = ?1 ORDER BY name",
        )
        .map_err(storage)?;
    let names = stmt
        .query_map([env.to_string()], |r| r.get::<_, String>(0))
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    Ok(names)
}

pub(crate) fn remove_environment_secret(
    tx: &Transaction<'_>,
    env: EnvironmentId,
    name: &str,
) -> Result<bool> {
    let n = tx
        .execute(
            "DELETE FROM environment_secrets WHERE environment_id = ?1 AND name = ?2",
            params![env.to_string(), name],
        )
        .map_err(storage)?;
    Ok(n > 0)
}

// ---- exports ----

const EXPORT_COLUMNS: &str =
    "id, environment_id, name, connection_id, tables_json, settings_json, \
                              schedule, created_by, created_at, updated_at";

fn read_export(row: &Row<'_>) -> rusqlite::Result<Result<Export>> {
    let cols: [String; 10] = [
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
    ];
    Ok((|| {
        let [id, env, name, conn, tables, settings, schedule, by, at, updated] = cols;
        Ok(Export {
            id: ExportId(id.parse().map_err(|e| corrupt("export id", e))?),
            environment_id: env.parse().map_err(|e| corrupt("environment id", e))?,
            name,
            connection_id: conn.parse().map_err(|e| corrupt("connection id", e))?,
            tables: serde_json::from_str(&tables).map_err(|e| corrupt("export tables", e))?,
            settings: serde_json::from_str(&settings).map_err(|e| corrupt("export settings", e))?,
            schedule: schedule
                .parse()
                .map_err(|e| corrupt("export schedule", e))?,
            created_by: by,
            created_at: parse_timestamp("export time", &at)?,
            updated_at: parse_timestamp("export time", &updated)?,
        })
    })())
}

fn select_exports(conn: &Db, filter: &str, args: impl rusqlite::Params) -> Result<Vec<Export>> {
    let sql = format!(
        "SELECT {EXPORT_COLUMNS} FROM exports WHERE {filter} ORDER BY name COLLATE NOCASE, id"
    );
    let mut stmt = conn.prepare(&sql).map_err(storage)?;
    let rows = stmt.query_map(args, read_export).map_err(storage)?;
    rows.map(|r| r.map_err(storage)?).collect()
}

pub(crate) fn find_export(conn: &Db, env: EnvironmentId, name: &str) -> Result<Option<Export>> {
    Ok(select_exports(
        conn,
        "environment_id = ?1 AND name = ?2",
        params![env.to_string(), name],
    )?
    .into_iter()
    .next())
}

pub(crate) fn list_exports(conn: &Db, env: EnvironmentId) -> Result<Vec<Export>> {
    select_exports(conn, "environment_id = ?1", [env.to_string()])
}

fn check_export(tx: &Transaction<'_>, e: &Export) -> Result<()> {
    invalid(&format!("export `{}`", e.name), e.validate())?;
    match get_connection(tx, e.connection_id)? {
        Some(c) if c.environment_id == e.environment_id => Ok(()),
        _ => Err(Error::NotFound {
            kind: CONNECTION,
            name: e.connection_id.to_string(),
        }),
    }
}

fn export_taken(e: &Export) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |err| match violation(&err) {
        Some(Violation::Unique) => Error::AlreadyExists {
            kind: EXPORT,
            name: e.name.clone(),
        },
        _ => storage(err),
    }
}

pub(crate) fn create_export(tx: &Transaction<'_>, e: &Export) -> Result<()> {
    let env = e.environment_id.to_string();
    if !super::environment_exists(tx, &env)? {
        return Err(Error::environment_not_found(env));
    }
    check_export(tx, e)?;
    tx.execute(
        &format!("INSERT INTO exports ({EXPORT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![
            e.id.to_string(),
            env,
            e.name,
            e.connection_id.to_string(),
            json(&e.tables)?,
            json(&e.settings)?,
            e.schedule.to_string(),
            e.created_by,
            timestamp(e.created_at),
            timestamp(e.updated_at)
        ],
    )
    .map_err(export_taken(e))?;
    Ok(())
}

pub(crate) fn update_export(tx: &Transaction<'_>, e: &Export) -> Result<()> {
    check_export(tx, e)?;
    let n = tx
        .execute(
            "UPDATE exports SET name = ?2, connection_id = ?3, tables_json = ?4, settings_json = ?5, \
             schedule = ?6, updated_at = ?7 WHERE id = ?1 AND environment_id = ?8",
            params![
                e.id.to_string(),
                e.name,
                e.connection_id.to_string(),
                json(&e.tables)?,
                json(&e.settings)?,
                e.schedule.to_string(),
                timestamp(e.updated_at),
                e.environment_id.to_string()
            ],
        )
        .map_err(export_taken(e))?;
    if n == 0 {
        return Err(Error::NotFound {
            kind: EXPORT,
            name: e.name.clone(),
        });
    }
    Ok(())
}

pub(crate) fn delete_export(tx: &Transaction<'_>, id: ExportId) -> Result<()> {
    let n = tx
        .execute("DELETE FROM exports WHERE id = ?1", [id.to_string()])
        .map_err(storage)?;
    if n == 0 {
        return Err(Error::NotFound {
            kind: EXPORT,
            name: id.to_string(),
        });
    }
    Ok(())
}

/// Remove an environment's exports, secrets, connections and roles (before the
/// environment itself goes).
pub(crate) fn delete_environment_objects(tx: &Transaction<'_>, env: &str) -> Result<()> {
    for sql in [
        "DELETE FROM exports WHERE environment_id = ?1",
        "DELETE FROM connection_secrets WHERE connection_id IN \
         (SELECT id FROM connections WHERE environment_id = ?1)",
        "DELETE FROM connections WHERE environment_id = ?1",
        "DELETE FROM role_assignments WHERE environment_id = ?1",
        "DELETE FROM environment_secrets WHERE environment_id = ?1",
        "DELETE FROM reporting_connections WHERE environment_id = ?1",
        "DELETE FROM api_tokens WHERE environment_id = ?1",
        "DELETE FROM run_events WHERE run_id IN \
         (SELECT id FROM runs WHERE environment_id = ?1)",
    ] {
        tx.execute(sql, [env]).map_err(storage)?;
    }
    Ok(())
}

const SHARING_COLUMNS: &str = "environment_id, reader_group, contributor_group, \
    storage_reader, storage_contributor, enabled_by, enabled_at";

pub(crate) fn sharing(conn: &Db, environment: EnvironmentId) -> Result<Option<Sharing>> {
    let row = conn
        .query_row(
            &format!("SELECT {SHARING_COLUMNS} FROM sharing WHERE environment_id = ?1"),
            [environment.to_string()],
            |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            },
        )
        .optional()
        .map_err(storage)?;
    row.map(|(reader, contributor, sr, sc, by, at)| {
        Ok(Sharing {
            environment,
            reader_group: reader,
            contributor_group: contributor,
            storage_reader: sr,
            storage_contributor: sc,
            enabled_by: by,
            enabled_at: parse_timestamp("sharing.enabled_at", &at)?,
        })
    })
    .transpose()
}

pub(crate) fn set_sharing(tx: &Transaction<'_>, s: &Sharing) -> Result<()> {
    let env = s.environment.to_string();
    tx.execute(
        &format!(
            "INSERT INTO sharing ({SHARING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (environment_id) DO UPDATE SET reader_group = excluded.reader_group, \
             contributor_group = excluded.contributor_group, \
             storage_reader = excluded.storage_reader, \
             storage_contributor = excluded.storage_contributor, \
             enabled_by = excluded.enabled_by, enabled_at = excluded.enabled_at"
        ),
        params![
            env,
            s.reader_group,
            s.contributor_group,
            s.storage_reader,
            s.storage_contributor,
            s.enabled_by,
            timestamp(s.enabled_at)
        ],
    )
    .map_err(|e| match violation(&e) {
        Some(Violation::ForeignKey) => Error::environment_not_found(env.clone()),
        _ => storage(e),
    })?;
    Ok(())
}

pub(crate) fn remove_sharing(tx: &Transaction<'_>, environment: EnvironmentId) -> Result<bool> {
    let n = tx
        .execute(
            "DELETE FROM sharing WHERE environment_id = ?1",
            [environment.to_string()],
        )
        .map_err(storage)?;
    Ok(n > 0)
}

fn attachment_row(r: &Row<'_>) -> rusqlite::Result<(String, String, String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn attachment_of(row: (String, String, String, String, String)) -> Result<Attachment> {
    let (organization, account, identifier, attached_by, at) = row;
    Ok(Attachment {
        organization,
        account,
        identifier,
        attached_by,
        attached_at: parse_timestamp("attachments.attached_at", &at)?,
    })
}

const ATTACHMENT_COLUMNS: &str = "organization, account, identifier, attached_by, attached_at";

pub(crate) fn attach(tx: &Transaction<'_>, a: &Attachment) -> Result<Attachment> {
    tx.execute(
        &format!(
            "INSERT INTO attachments ({ATTACHMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (organization) DO NOTHING"
        ),
        params![
            a.organization,
            a.account,
            a.identifier,
            a.attached_by,
            timestamp(a.attached_at)
        ],
    )
    .map_err(storage)?;
    let row = tx
        .query_row(
            &format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE organization = ?1"),
            [&a.organization],
            attachment_row,
        )
        .map_err(storage)?;
    attachment_of(row)
}

pub(crate) fn attachments(conn: &Db) -> Result<Vec<Attachment>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments ORDER BY organization"
        ))
        .map_err(storage)?;
    let rows = stmt.query_map([], attachment_row).map_err(storage)?;
    rows.map(|r| attachment_of(r.map_err(storage)?)).collect()
}

pub(crate) fn detach(tx: &Transaction<'_>, organization: &str) -> Result<bool> {
    let n = tx
        .execute(
            "DELETE FROM attachments WHERE organization = ?1",
            [organization],
        )
        .map_err(storage)?;
    Ok(n > 0)
}

// ---- reporting connections ----

pub(crate) fn put_reporting(tx: &Transaction<'_>, c: &ReportingConnection) -> Result<()> {
    let env = c.environment_id.to_string();
    let found = tx
        .query_row("SELECT 1 FROM environments WHERE id = ?1", [&env], |_| {
            Ok(())
        })
        .optional()
        .map_err(storage)?;
    if found.is_none() {
        return Err(Error::environment_not_found(env));
    }
    tx.execute(
        "INSERT INTO reporting_connections (environment_id, name, body, created_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (environment_id, name) DO UPDATE SET name = excluded.name, body = excluded.body",
        params![env, c.name, json(c)?, c.created_by, timestamp(c.created_at)],
    )
    .map_err(storage)?;
    Ok(())
}

pub(crate) fn reporting(conn: &Db, environment: EnvironmentId) -> Result<Vec<ReportingConnection>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT body FROM reporting_connections WHERE environment_id = ?1 ORDER BY name",
        )
        .map_err(storage)?;
    let rows = stmt
        .query_map([environment.to_string()], |r| r.get::<_, String>(0))
        .map_err(storage)?;
    rows.map(|r| {
        let body = r.map_err(storage)?;
        serde_json::from_str(&body).map_err(|e| corrupt("reporting connection", e))
    })
    .collect()
}

pub(crate) fn delete_reporting(
    tx: &Transaction<'_>,
    environment: EnvironmentId,
    name: &str,
) -> Result<bool> {
    let n = tx
        .execute(
            "DELETE FROM reporting_connections WHERE environment_id = ?1 AND name = ?2",
            params![environment.to_string(), name],
        )
        .map_err(storage)?;
    Ok(n > 0)
}
