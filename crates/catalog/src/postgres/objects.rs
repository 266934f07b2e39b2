//! Principals, roles, connections, sealed secrets and exports in PostgreSQL.

use std::collections::BTreeMap;
use std::time::SystemTime;

use lakecdp_core::{
    Attachment, Connection, ConnectionId, ConnectionKind, ConnectionSharing, EnvironmentId, Export,
    ExportId, Principal, PrincipalKind, ReportingConnection, Role, RoleAssignment, SecretOwner,
    Sharing,
};
use tokio_postgres::{GenericClient, Row};

use super::codec::{constraint, corrupt, fold, from_ts, storage, ts, violation, Violation};
use super::{environment_exists, get, read_all};
use crate::catalog::SealedSecret;
use crate::error::{Error, Result};
use crate::{CONNECTION, EXPORT};

fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Storage(e.to_string()))
}

// ---- principals and roles ----

pub(crate) async fn upsert_principal(
    client: &impl GenericClient,
    p: &Principal,
) -> Result<Principal> {
    if p.name.trim().is_empty() {
        return Err(Error::Invalid("a principal's name is empty".into()));
    }
    client
        .execute(
            "INSERT INTO principals (name, kind, created_at, disabled, administrator) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT ((lower(name))) DO NOTHING",
            &[
                &p.name,
                &p.kind.as_str(),
                &ts(p.created_at),
                &p.disabled,
                &p.administrator,
            ],
        )
        .await
        .map_err(storage)?;
    select_principal(client, &p.name, false)
        .await?
        .ok_or_else(|| Error::Storage("a recorded principal cannot be read back".into()))
}

const PRINCIPAL_COLUMNS: &str = "name, kind, created_at, disabled, administrator";

fn read_principal(row: &Row) -> Result<Principal> {
    let kind: String = get(row, 1)?;
    Ok(Principal {
        name: get(row, 0)?,
        kind: kind
            .parse::<PrincipalKind>()
            .map_err(|e| corrupt("principal kind", e))?,
        created_at: from_ts(get(row, 2)?),
        disabled: get(row, 3)?,
        administrator: get(row, 4)?,
    })
}

/// The principal named `name` (ASCII case ignored); with `lock`, its row stays as read
/// until the transaction ends (`FOR SHARE`).
pub(crate) async fn select_principal(
    client: &impl GenericClient,
    name: &str,
    lock: bool,
) -> Result<Option<Principal>> {
    let sql = format!(
        "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE lower(name) = $1{}",
        if lock { " FOR SHARE" } else { "" }
    );
    client
        .query_opt(&sql, &[&fold(name)])
        .await
        .map_err(storage)?
        .as_ref()
        .map(read_principal)
        .transpose()
}

pub(crate) async fn list_principals(client: &impl GenericClient) -> Result<Vec<Principal>> {
    let rows = client
        .query(
            &format!("SELECT {PRINCIPAL_COLUMNS} FROM principals ORDER BY lower(name), name"),
            &[],
        )
        .await
        .map_err(storage)?;
    read_all(rows, read_principal)
}

pub(crate) async fn set_role(client: &impl GenericClient, a: &RoleAssignment) -> Result<()> {
    let env = a.environment_id.to_string();
    if !environment_exists(client, &env).await? {
        return Err(Error::environment_not_found(env));
    }
    upsert_principal(
        client,
        &Principal {
            created_at: a.assigned_at,
            ..Principal::new(a.principal.clone(), PrincipalKind::Person)
        },
    )
    .await?;
    client
        .execute(
            "INSERT INTO role_assignments (environment_id, principal, role, assigned_by, \
             assigned_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (environment_id, (lower(principal))) DO UPDATE SET \
             role = excluded.role, assigned_by = excluded.assigned_by, \
             assigned_at = excluded.assigned_at",
            &[
                &env,
                &a.principal,
                &a.role.as_str(),
                &a.assigned_by,
                &ts(a.assigned_at),
            ],
        )
        .await
        .map_err(|e| match violation(&e) {
            Some(Violation::ForeignKey) => Error::environment_not_found(env.clone()),
            _ => storage(e),
        })?;
    Ok(())
}

pub(crate) async fn remove_role(
    client: &impl GenericClient,
    env: EnvironmentId,
    principal: &str,
) -> Result<bool> {
    let n = client
        .execute(
            "DELETE FROM role_assignments WHERE environment_id = $1 AND lower(principal) = $2",
            &[&env.to_string(), &fold(principal)],
        )
        .await
        .map_err(storage)?;
    Ok(n > 0)
}

pub(crate) async fn role_of(
    client: &impl GenericClient,
    env: EnvironmentId,
    principal: &str,
) -> Result<Option<Role>> {
    let row = client
        .query_opt(
            "SELECT role FROM role_assignments \
             WHERE environment_id = $1 AND lower(principal) = $2",
            &[&env.to_string(), &fold(principal)],
        )
        .await
        .map_err(storage)?;
    row.map(|r| {
        get::<String>(&r, 0)?
            .parse::<Role>()
            .map_err(|e| corrupt("role", e))
    })
    .transpose()
}

/// A role assignment selected as `principal, role, assigned_by, assigned_at`.
pub(crate) fn read_assignment(env: EnvironmentId, row: &Row) -> Result<RoleAssignment> {
    let role: String = get(row, 1)?;
    Ok(RoleAssignment {
        environment_id: env,
        principal: get(row, 0)?,
        role: role.parse().map_err(|e| corrupt("role", e))?,
        assigned_by: get(row, 2)?,
        assigned_at: from_ts(get(row, 3)?),
    })
}

pub(crate) async fn list_roles(
    client: &impl GenericClient,
    env: EnvironmentId,
) -> Result<Vec<RoleAssignment>> {
    let rows = client
        .query(
            "SELECT principal, role, assigned_by, assigned_at FROM role_assignments \
             WHERE environment_id = $1 ORDER BY lower(principal), principal",
            &[&env.to_string()],
        )
        .await
        .map_err(storage)?;
    read_all(rows, |r| read_assignment(env, r))
}

// ---- connections ----

/// The columns [`read_connection`] expects: the connection's, then its secrets' names.
const CONNECTION_COLUMNS: &str = "c.id, c.environment_id, c.name, c.kind, \
     c.settings_json::text, c.sharing, c.created_by, c.created_at, c.updated_at, \
     ARRAY(SELECT s.name FROM connection_secrets s WHERE s.connection_id = c.id ORDER BY s.name)";

fn read_connection(row: &Row) -> Result<Connection> {
    let id: String = get(row, 0)?;
    let env: String = get(row, 1)?;
    let kind: String = get(row, 3)?;
    let settings: String = get(row, 4)?;
    let sharing: String = get(row, 5)?;
    Ok(Connection {
        id: id.parse().map_err(|e| corrupt("connection id", e))?,
        environment_id: env.parse().map_err(|e| corrupt("environment id", e))?,
        name: get(row, 2)?,
        kind: kind
            .parse::<ConnectionKind>()
            .map_err(|e| corrupt("connection kind", e))?,
        settings: serde_json::from_str::<BTreeMap<String, String>>(&settings)
            .map_err(|e| corrupt("connection settings", e))?,
        secrets: get(row, 9)?,
        sharing: sharing
            .parse::<ConnectionSharing>()
            .map_err(|e| corrupt("connection sharing", e))?,
        created_by: get(row, 6)?,
        created_at: from_ts(get(row, 7)?),
        updated_at: from_ts(get(row, 8)?),
    })
}

async fn select_connections(
    client: &impl GenericClient,
    filter: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Connection>> {
    let sql = format!(
        "SELECT {CONNECTION_COLUMNS} FROM connections c WHERE {filter} \
         ORDER BY lower(c.name), c.name, c.id"
    );
    let rows = client.query(&sql, params).await.map_err(storage)?;
    read_all(rows, read_connection)
}

pub(crate) async fn find_connection(
    client: &impl GenericClient,
    env: EnvironmentId,
    name: &str,
) -> Result<Option<Connection>> {
    Ok(select_connections(
        client,
        "c.environment_id = $1 AND lower(c.name) = $2",
        &[&env.to_string(), &fold(name)],
    )
    .await?
    .into_iter()
    .next())
}

pub(crate) async fn get_connection(
    client: &impl GenericClient,
    id: ConnectionId,
) -> Result<Option<Connection>> {
    Ok(select_connections(client, "c.id = $1", &[&id.to_string()])
        .await?
        .into_iter()
        .next())
}

pub(crate) async fn list_connections(
    client: &impl GenericClient,
    env: EnvironmentId,
) -> Result<Vec<Connection>> {
    select_connections(client, "c.environment_id = $1", &[&env.to_string()]).await
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

fn connection_taken(c: &Connection, e: tokio_postgres::Error) -> Error {
    match violation(&e) {
        Some(Violation::Unique) => Error::AlreadyExists {
            kind: CONNECTION,
            name: c.name.clone(),
        },
        Some(Violation::ForeignKey) => Error::environment_not_found(c.environment_id.to_string()),
        None => storage(e),
    }
}

pub(crate) async fn create_connection(client: &impl GenericClient, c: &Connection) -> Result<()> {
    validate_connection(c)?;
    let env = c.environment_id.to_string();
    if !environment_exists(client, &env).await? {
        return Err(Error::environment_not_found(env));
    }
    client
        .execute(
            "INSERT INTO connections (id, environment_id, name, kind, settings_json, sharing, \
             created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, $9)",
            &[
                &c.id.to_string(),
                &env,
                &c.name,
                &c.kind.as_str(),
                &json(&c.settings)?,
                &c.sharing.as_str(),
                &c.created_by,
                &ts(c.created_at),
                &ts(c.updated_at),
            ],
        )
        .await
        .map_err(|e| connection_taken(c, e))?;
    Ok(())
}

pub(crate) async fn update_connection(client: &impl GenericClient, c: &Connection) -> Result<()> {
    validate_connection(c)?;
    let n = client
        .execute(
            "UPDATE connections SET name = $2, settings_json = $3::text::jsonb, sharing = $4, \
             updated_at = $5 WHERE id = $1 AND environment_id = $6",
            &[
                &c.id.to_string(),
                &c.name,
                &json(&c.settings)?,
                &c.sharing.as_str(),
                &ts(c.updated_at),
                &c.environment_id.to_string(),
            ],
        )
        .await
        .map_err(|e| connection_taken(c, e))?;
    if n == 0 {
        return Err(Error::NotFound {
            kind: CONNECTION,
            name: c.name.clone(),
        });
    }
    Ok(())
}

fn connection_not_found(id: ConnectionId) -> Error {
    Error::NotFound {
        kind: CONNECTION,
        name: id.to_string(),
    }
}

pub(crate) async fn delete_connection(client: &impl GenericClient, id: ConnectionId) -> Result<()> {
    let id_text = id.to_string();
    // Locked first: an export that would use it waits, then finds it gone.
    let Some(row) = client
        .query_opt(
            "SELECT name FROM connections WHERE id = $1 FOR UPDATE",
            &[&id_text],
        )
        .await
        .map_err(storage)?
    else {
        return Err(connection_not_found(id));
    };
    let name: String = get(&row, 0)?;
    let exports: Vec<String> = client
        .query(
            "SELECT name FROM exports WHERE connection_id = $1 ORDER BY lower(name), name",
            &[&id_text],
        )
        .await
        .map_err(storage)?
        .iter()
        .map(|r| get(r, 0))
        .collect::<Result<_>>()?;
    if !exports.is_empty() {
        return Err(Error::ConnectionInUse {
            connection: name,
            exports,
        });
    }
    // its secrets go by `ON DELETE CASCADE`
    client
        .execute("DELETE FROM connections WHERE id = $1", &[&id_text])
        .await
        .map_err(storage)?;
    Ok(())
}

pub(crate) async fn set_connection_secret(
    client: &impl GenericClient,
    id: ConnectionId,
    name: &str,
    sealed: &[u8],
) -> Result<()> {
    let Some(c) = get_connection(client, id).await? else {
        return Err(connection_not_found(id));
    };
    if !c.kind.field(name).is_some_and(|f| f.secret) {
        return Err(Error::Invalid(format!(
            "a {} connection has no secret `{name}`",
            c.kind
        )));
    }
    let now = ts(chrono::Utc::now());
    client
        .execute(
            "INSERT INTO connection_secrets (connection_id, name, sealed, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id, name) \
             DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            &[&id.to_string(), &name, &sealed, &now],
        )
        .await
        .map_err(|e| match violation(&e) {
            Some(Violation::ForeignKey) => connection_not_found(id),
            _ => storage(e),
        })?;
    client
        .execute(
            "UPDATE connections SET updated_at = $2 WHERE id = $1",
            &[&id.to_string(), &now],
        )
        .await
        .map_err(storage)?;
    Ok(())
}

pub(crate) async fn connection_secret(
    client: &impl GenericClient,
    id: ConnectionId,
    name: &str,
) -> Result<Option<Vec<u8>>> {
    client
        .query_opt(
            "SELECT sealed FROM connection_secrets WHERE connection_id = $1 AND name = $2",
            &[&id.to_string(), &name],
        )
        .await
        .map_err(storage)?
        .map(|r| get(&r, 0))
        .transpose()
}

pub(crate) async fn sealed_secrets(client: &impl GenericClient) -> Result<Vec<SealedSecret>> {
    let rows = client
        .query(
            "SELECT 'c', connection_id, name, sealed FROM connection_secrets \
             UNION ALL SELECT 'e', environment_id, name, sealed FROM environment_secrets \
             ORDER BY 1, 2, 3",
            &[],
        )
        .await
        .map_err(storage)?;
    read_all(rows, |r| {
        let kind: String = get(r, 0)?;
        let id: String = get(r, 1)?;
        let owner = if kind == "c" {
            SecretOwner::Connection(id.parse().map_err(|e| corrupt("connection id", e))?)
        } else {
            SecretOwner::Environment(id.parse().map_err(|e| corrupt("environment id", e))?)
        };
        Ok(SealedSecret {
            owner,
            name: get(r, 2)?,
            sealed: get(r, 3)?,
        })
    })
}

pub(crate) async fn replace_sealed_secrets(
    client: &impl GenericClient,
    secrets: &[SealedSecret],
) -> Result<()> {
    let now: SystemTime = ts(chrono::Utc::now());
    for s in secrets {
        let (sql, id) = match s.owner {
            SecretOwner::Connection(id) => (
                "UPDATE connection_secrets SET sealed = $3, updated_at = $4 \
                 WHERE connection_id = $1 AND name = $2",
                id.to_string(),
            ),
            SecretOwner::Environment(id) => (
                "UPDATE environment_secrets SET sealed = $3, updated_at = $4 \
                 WHERE environment_id = $1 AND name = $2",
                id.to_string(),
            ),
        };
        let n = client
            .execute(sql, &[&id, &s.name, &s.sealed, &now])
            .await
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

pub(crate) async fn set_environment_secret(
    client: &impl GenericClient,
    env: EnvironmentId,
    name: &str,
    sealed: &[u8],
) -> Result<()> {
    let id = env.to_string();
    if !environment_exists(client, &id).await? {
        return Err(Error::environment_not_found(id));
    }
    if name.trim().is_empty() || name.contains(char::is_whitespace) {
        return Err(Error::Invalid(format!(
            "`{name}` cannot name a secret: use letters, digits, `_` or `-`"
        )));
    }
    client
        .execute(
            "INSERT INTO environment_secrets (environment_id, name, sealed, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (environment_id, name) DO UPDATE SET \
             sealed = excluded.sealed, updated_at = excluded.updated_at",
            &[&id, &name, &sealed, &ts(chrono::Utc::now())],
        )
        .await
        .map_err(|e| match violation(&e) {
            Some(Violation::ForeignKey) => Error::environment_not_found(id.clone()),
            _ => storage(e),
        })?;
    Ok(())
}

pub(crate) async fn environment_secret(
    client: &impl GenericClient,
    env: EnvironmentId,
    name: &str,
) -> Result<Option<Vec<u8>>> {
    client
        .query_opt(
            "SELECT sealed FROM environment_secrets WHERE environment_id = $1 AND name = $2",
            &[&env.to_string(), &name],
        )
        .await
        .map_err(storage)?
        .map(|r| get(&r, 0))
        .transpose()
}

pub(crate) async fn environment_secret_names(
    client: &impl GenericClient,
    env: EnvironmentId,
) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT name FROM environment_secrets WHERE environment_id = $1 ORDER BY name",
            &[&env.to_string()],
        )
        .await
        .map_err(storage)?;
    read_all(rows, |r| get(r, 0))
}

pub(crate) async fn remove_environment_secret(
    client: &impl GenericClient,
    env: EnvironmentId,
    name: &str,
) -> Result<bool> {
    let n = client
        .execute(
            "DELETE FROM environment_secrets WHERE environment_id = $1 AND name = $2",
            &[&env.to_string(), &name],
        )
        .await
        .map_err(storage)?;
    Ok(n > 0)
}

// ---- exports ----

const EXPORT_COLUMNS: &str = "id, environment_id, name, connection_id, tables_json::text, \
     settings_json::text, schedule, created_by, created_at, updated_at";

fn read_export(row: &Row) -> Result<Export> {
    let id: String = get(row, 0)?;
    let env: String = get(row, 1)?;
    let conn: String = get(row, 3)?;
    let tables: String = get(row, 4)?;
    let settings: String = get(row, 5)?;
    let schedule: String = get(row, 6)?;
    Ok(Export {
        id: ExportId(id.parse().map_err(|e| corrupt("export id", e))?),
        environment_id: env.parse().map_err(|e| corrupt("environment id", e))?,
        name: get(row, 2)?,
        connection_id: conn.parse().map_err(|e| corrupt("connection id", e))?,
        tables: serde_json::from_str(&tables).map_err(|e| corrupt("export tables", e))?,
        settings: serde_json::from_str(&settings).map_err(|e| corrupt("export settings", e))?,
        schedule: schedule
            .parse()
            .map_err(|e| corrupt("export schedule", e))?,
        created_by: get(row, 7)?,
        created_at: from_ts(get(row, 8)?),
        updated_at: from_ts(get(row, 9)?),
    })
}

async fn select_exports(
    client: &impl GenericClient,
    filter: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Export>> {
    let sql = format!(
        "SELECT {EXPORT_COLUMNS} FROM exports WHERE {filter} ORDER BY lower(name), name, id"
    );
    let rows = client.query(&sql, params).await.map_err(storage)?;
    read_all(rows, read_export)
}

pub(crate) async fn find_export(
    client: &impl GenericClient,
    env: EnvironmentId,
    name: &str,
) -> Result<Option<Export>> {
    Ok(select_exports(
        client,
        "environment_id = $1 AND lower(name) = $2",
        &[&env.to_string(), &fold(name)],
    )
    .await?
    .into_iter()
    .next())
}

pub(crate) async fn list_exports(
    client: &impl GenericClient,
    env: EnvironmentId,
) -> Result<Vec<Export>> {
    select_exports(client, "environment_id = $1", &[&env.to_string()]).await
}

async fn check_export(client: &impl GenericClient, e: &Export) -> Result<()> {
    invalid(&format!("export `{}`", e.name), e.validate())?;
    match get_connection(client, e.connection_id).await? {
        Some(c) if c.environment_id == e.environment_id => Ok(()),
        _ => Err(connection_not_found(e.connection_id)),
    }
}

fn export_taken(e: &Export, err: tokio_postgres::Error) -> Error {
    match violation(&err) {
        Some(Violation::Unique) => Error::AlreadyExists {
            kind: EXPORT,
            name: e.name.clone(),
        },
        Some(Violation::ForeignKey) if constraint(&err) == Some("exports_connection_id_fkey") => {
            connection_not_found(e.connection_id)
        }
        Some(Violation::ForeignKey) => Error::environment_not_found(e.environment_id.to_string()),
        None => storage(err),
    }
}

pub(crate) async fn create_export(client: &impl GenericClient, e: &Export) -> Result<()> {
    let env = e.environment_id.to_string();
    if !environment_exists(client, &env).await? {
        return Err(Error::environment_not_found(env));
    }
    check_export(client, e).await?;
    client
        .execute(
            &format!(
                "INSERT INTO exports ({}) VALUES ($1, $2, $3, $4, $5::text::jsonb, \
                 $6::text::jsonb, $7, $8, $9, $10)",
                EXPORT_COLUMNS.replace("::text", "")
            ),
            &[
                &e.id.to_string(),
                &env,
                &e.name,
                &e.connection_id.to_string(),
                &json(&e.tables)?,
                &json(&e.settings)?,
                &e.schedule.to_string(),
                &e.created_by,
                &ts(e.created_at),
                &ts(e.updated_at),
            ],
        )
        .await
        .map_err(|err| export_taken(e, err))?;
    Ok(())
}

pub(crate) async fn update_export(client: &impl GenericClient, e: &Export) -> Result<()> {
    check_export(client, e).await?;
    let n = client
        .execute(
            "UPDATE exports SET name = $2, connection_id = $3, tables_json = $4::text::jsonb, \
             settings_json = $5::text::jsonb, schedule = $6, updated_at = $7 \
             WHERE id = $1 AND environment_id = $8",
            &[
                &e.id.to_string(),
                &e.name,
                &e.connection_id.to_string(),
                &json(&e.tables)?,
                &json(&e.settings)?,
                &e.schedule.to_string(),
                &ts(e.updated_at),
                &e.environment_id.to_string(),
            ],
        )
        .await
        .map_err(|err| export_taken(e, err))?;
    if n == 0 {
        return Err(Error::NotFound {
            kind: EXPORT,
            name: e.name.clone(),
        });
    }
    Ok(())
}

pub(crate) async fn delete_export(client: &impl GenericClient, id: ExportId) -> Result<()> {
    let n = client
        .execute("DELETE FROM exports WHERE id = $1", &[&id.to_string()])
        .await
        .map_err(storage)?;
    if n == 0 {
        return Err(Error::NotFound {
            kind: EXPORT,
            name: id.to_string(),
        });
    }
    Ok(())
}

const SHARING_COLUMNS: &str = "environment_id, reader_group, contributor_group, \
    storage_reader, storage_contributor, enabled_by, enabled_at";

pub(crate) async fn sharing(
    client: &impl GenericClient,
    environment: EnvironmentId,
) -> Result<Option<Sharing>> {
    let row = client
        .query_opt(
            &format!("SELECT {SHARING_COLUMNS} FROM sharing WHERE environment_id = $1"),
            &[&environment.to_string()],
        )
        .await
        .map_err(storage)?;
    row.map(|r| {
        Ok(Sharing {
            environment,
            reader_group: get(&r, 1)?,
            contributor_group: get(&r, 2)?,
            storage_reader: get(&r, 3)?,
            storage_contributor: get(&r, 4)?,
            enabled_by: get(&r, 5)?,
            enabled_at: from_ts(get(&r, 6)?),
        })
    })
    .transpose()
}

pub(crate) async fn set_sharing(client: &impl GenericClient, s: &Sharing) -> Result<()> {
    let env = s.environment.to_string();
    client
        .execute(
            &format!(
                "INSERT INTO sharing ({SHARING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (environment_id) DO UPDATE SET reader_group = excluded.reader_group, \
                 contributor_group = excluded.contributor_group, \
                 storage_reader = excluded.storage_reader, \
                 storage_contributor = excluded.storage_contributor, \
                 enabled_by = excluded.enabled_by, enabled_at = excluded.enabled_at"
            ),
            &[
                &env,
                &s.reader_group,
                &s.contributor_group,
                &s.storage_reader,
                &s.storage_contributor,
                &s.enabled_by,
                &ts(s.enabled_at),
            ],
        )
        .await
        .map_err(|e| match violation(&e) {
            Some(Violation::ForeignKey) => Error::environment_not_found(env.clone()),
            _ => storage(e),
        })?;
    Ok(())
}

pub(crate) async fn remove_sharing(
    client: &impl GenericClient,
    environment: EnvironmentId,
) -> Result<bool> {
    let n = client
        .execute(
            "DELETE FROM sharing WHERE environment_id = $1",
            &[&environment.to_string()],
        )
        .await
        .map_err(storage)?;
    Ok(n > 0)
}

const ATTACHMENT_COLUMNS: &str = "organization, account, identifier, attached_by, attached_at";

fn attachment_of(r: &Row) -> Result<Attachment> {
    Ok(Attachment {
        organization: get(r, 0)?,
        account: get(r, 1)?,
        identifier: get(r, 2)?,
        attached_by: get(r, 3)?,
        attached_at: from_ts(get(r, 4)?),
    })
}

pub(crate) async fn attach(client: &impl GenericClient, a: &Attachment) -> Result<Attachment> {
    client
        .execute(
            &format!(
                "INSERT INTO attachments ({ATTACHMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (lower(organization)) DO NOTHING"
            ),
            &[
                &a.organization,
                &a.account,
                &a.identifier,
                &a.attached_by,
                &ts(a.attached_at),
            ],
        )
        .await
        .map_err(storage)?;
    let row = client
        .query_one(
            &format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE lower(organization) = lower($1)"
            ),
            &[&a.organization],
        )
        .await
        .map_err(storage)?;
    attachment_of(&row)
}

pub(crate) async fn attachments(client: &impl GenericClient) -> Result<Vec<Attachment>> {
    let rows = client
        .query(
            &format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments ORDER BY lower(organization)"),
            &[],
        )
        .await
        .map_err(storage)?;
    rows.iter().map(attachment_of).collect()
}

pub(crate) async fn detach(client: &impl GenericClient, organization: &str) -> Result<bool> {
    let n = client
        .execute(
            "DELETE FROM attachments WHERE lower(organization) = lower($1)",
            &[&organization],
        )
        .await
        .map_err(storage)?;
    Ok(n > 0)
}

// ---- reporting connections ----

pub(crate) async fn put_reporting(
    client: &impl GenericClient,
    c: &ReportingConnection,
) -> Result<()> {
    let env = c.environment_id.to_string();
    if !environment_exists(client, &env).await? {
        return Err(Error::environment_not_found(env));
    }
    client
        .execute(
            "INSERT INTO reporting_connections \
             (environment_id, name, name_key, body, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (environment_id, name_key) \
             DO UPDATE SET name = excluded.name, body = excluded.body",
            &[
                &env,
                &c.name,
                &fold(&c.name),
                &json(c)?,
                &c.created_by,
                &ts(c.created_at),
            ],
        )
        .await
        .map_err(storage)?;
    Ok(())
}

pub(crate) async fn reporting(
    client: &impl GenericClient,
    environment: EnvironmentId,
) -> Result<Vec<ReportingConnection>> {
    let rows = client
        .query(
            "SELECT body FROM reporting_connections WHERE environment_id = $1 ORDER BY name_key",
            &[&environment.to_string()],
        )
        .await
        .map_err(storage)?;
    rows.iter()
        .map(|r| {
            let body: String = r.get(0);
            serde_json::from_str(&body).map_err(|e| corrupt("reporting connection", e))
        })
        .collect()
}

pub(crate) async fn delete_reporting(
    client: &impl GenericClient,
    environment: EnvironmentId,
    name: &str,
) -> Result<bool> {
    let n = client
        .execute(
            "DELETE FROM reporting_connections WHERE environment_id = $1 AND name_key = $2",
            &[&environment.to_string(), &fold(name)],
        )
        .await
        .map_err(storage)?;
    Ok(n > 0)
}
