//! Accounts, groups, sessions, API tokens, sign-in throttles, the audit log and the work
//! several instances share (run events, cancel requests, leadership) in PostgreSQL.

use chrono::{DateTime, Duration, Utc};
use lakecdp_core::{
    ApiToken, AuditEntry, AuditOutcome, AuditQuery, EnvironmentId, Leadership, PasswordCredential,
    RoleAssignment, RunEvent, RunId, Session, Throttle,
};
use tokio_postgres::{GenericClient, Row};

use super::codec::Violation;
use super::codec::{big, corrupt, fold, from_ts, opt_ts, storage, to_u32, to_u64, ts, violation};
use super::objects::{read_assignment, select_principal};
use super::{environment_exists, get, read_all};
use crate::error::{Error, Result};

fn principal_not_found(name: &str) -> Error {
    Error::NotFound {
        kind: "principal",
        name: name.to_string(),
    }
}

// ---- principals' flags and passwords ----

pub(crate) async fn set_principal_flags(
    client: &impl GenericClient,
    name: &str,
    disabled: bool,
    administrator: bool,
) -> Result<()> {
    let n = client
        .execute(
            "UPDATE principals SET disabled = $2, administrator = $3 WHERE lower(name) = $1",
            &[&fold(name), &disabled, &administrator],
        )
        .await
        .map_err(storage)?;
    if n == 0 {
        return Err(principal_not_found(name));
    }
    Ok(())
}

pub(crate) async fn set_password(
    client: &impl GenericClient,
    c: &PasswordCredential,
) -> Result<()> {
    let principal = select_principal(client, &c.principal, true)
        .await?
        .ok_or_else(|| principal_not_found(&c.principal))?;
    crate::validate::password(&principal, c)?;
    client
        .execute(
            "INSERT INTO passwords (principal, hash, changed_at) VALUES ($1, $2, $3) \
             ON CONFLICT ((lower(principal))) DO UPDATE SET hash = excluded.hash, \
             changed_at = excluded.changed_at",
            &[&principal.name, &c.hash, &ts(c.changed_at)],
        )
        .await
        .map_err(storage)?;
    Ok(())
}

pub(crate) async fn password(
    client: &impl GenericClient,
    principal: &str,
) -> Result<Option<PasswordCredential>> {
    let row = client
        .query_opt(
            "SELECT principal, hash, changed_at FROM passwords WHERE lower(principal) = $1",
            &[&fold(principal)],
        )
        .await
        .map_err(storage)?;
    row.map(|r| {
        Ok(PasswordCredential {
            principal: get(&r, 0)?,
            hash: get(&r, 1)?,
            changed_at: from_ts(get(&r, 2)?),
        })
    })
    .transpose()
}

// ---- groups ----

/// The stored name of the group `group`; with `lock`, the group stays until the
/// transaction ends.
async fn require_group(client: &impl GenericClient, group: &str, lock: bool) -> Result<String> {
    crate::validate::group(select_principal(client, group, lock).await?, group)
}

pub(crate) async fn add_group_member(
    client: &impl GenericClient,
    group: &str,
    member: &str,
) -> Result<bool> {
    let group = require_group(client, group, true).await?;
    let m = select_principal(client, member, true)
        .await?
        .ok_or_else(|| principal_not_found(member))?;
    crate::validate::group_member(&m)?;
    let n = client
        .execute(
            "INSERT INTO group_members (group_name, member) VALUES ($1, $2) \
             ON CONFLICT ((lower(group_name)), (lower(member))) DO NOTHING",
            &[&group, &m.name],
        )
        .await
        .map_err(storage)?;
    Ok(n > 0)
}

pub(crate) async fn remove_group_member(
    client: &impl GenericClient,
    group: &str,
    member: &str,
) -> Result<bool> {
    let group = require_group(client, group, false).await?;
    let n = client
        .execute(
            "DELETE FROM group_members WHERE lower(group_name) = $1 AND lower(member) = $2",
            &[&fold(&group), &fold(member)],
        )
        .await
        .map_err(storage)?;
    Ok(n > 0)
}

async fn names(client: &impl GenericClient, sql: &str, key: &str) -> Result<Vec<String>> {
    let rows = client.query(sql, &[&fold(key)]).await.map_err(storage)?;
    read_all(rows, |r| get(r, 0))
}

pub(crate) async fn group_members(client: &impl GenericClient, group: &str) -> Result<Vec<String>> {
    let group = require_group(client, group, false).await?;
    names(
        client,
        "SELECT m.name FROM group_members g JOIN principals m ON lower(m.name) = lower(g.member) \
         WHERE lower(g.group_name) = $1 ORDER BY lower(m.name), m.name",
        &group,
    )
    .await
}

pub(crate) async fn groups_of(client: &impl GenericClient, principal: &str) -> Result<Vec<String>> {
    names(
        client,
        "SELECT p.name FROM group_members g JOIN principals p ON lower(p.name) = lower(g.group_name) \
         WHERE lower(g.member) = $1 ORDER BY lower(p.name), p.name",
        principal,
    )
    .await
}

pub(crate) async fn delete_group(client: &impl GenericClient, group: &str) -> Result<bool> {
    match require_group(client, group, true).await {
        Ok(name) => {
            let key = fold(&name);
            // what names the group goes with it (no foreign keys: see migration 0003)
            for sql in [
                "DELETE FROM group_members WHERE lower(group_name) = $1",
                "DELETE FROM role_assignments WHERE lower(principal) = $1",
                "DELETE FROM sessions WHERE lower(principal) = $1",
                "DELETE FROM passwords WHERE lower(principal) = $1",
                "DELETE FROM principals WHERE lower(name) = $1",
            ] {
                client.execute(sql, &[&key]).await.map_err(storage)?;
            }
            Ok(true)
        }
        Err(Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) async fn grants(
    client: &impl GenericClient,
    env: EnvironmentId,
    principal: &str,
) -> Result<Vec<RoleAssignment>> {
    let rows = client
        .query(
            "SELECT principal, role, assigned_by, assigned_at FROM role_assignments \
             WHERE environment_id = $1 AND (lower(principal) = $2 OR lower(principal) IN \
             (SELECT lower(group_name) FROM group_members WHERE lower(member) = $2)) \
             ORDER BY lower(principal), principal",
            &[&env.to_string(), &fold(principal)],
        )
        .await
        .map_err(storage)?;
    read_all(rows, |r| read_assignment(env, r))
}

// ---- sessions ----

pub(crate) async fn create_session(client: &impl GenericClient, s: &Session) -> Result<()> {
    let principal = select_principal(client, &s.principal, true)
        .await?
        .ok_or_else(|| principal_not_found(&s.principal))?;
    client
        .execute(
            "INSERT INTO sessions (token_hash, principal, created_at, last_seen_at, expires_at, \
             address) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &s.token_hash,
                &principal.name,
                &ts(s.created_at),
                &ts(s.last_seen_at),
                &ts(s.expires_at),
                &s.address,
            ],
        )
        .await
        .map_err(|e| match violation(&e) {
            Some(Violation::Unique) => Error::AlreadyExists {
                kind: "session",
                name: "(token)".into(),
            },
            _ => storage(e),
        })?;
    Ok(())
}

pub(crate) async fn session(
    client: &impl GenericClient,
    token_hash: &str,
) -> Result<Option<Session>> {
    let row = client
        .query_opt(
            "SELECT token_hash, principal, created_at, last_seen_at, expires_at, address \
             FROM sessions WHERE token_hash = $1",
            &[&token_hash],
        )
        .await
        .map_err(storage)?;
    row.map(|r| {
        Ok(Session {
            token_hash: get(&r, 0)?,
            principal: get(&r, 1)?,
            created_at: from_ts(get(&r, 2)?),
            last_seen_at: from_ts(get(&r, 3)?),
            expires_at: from_ts(get(&r, 4)?),
            address: get(&r, 5)?,
        })
    })
    .transpose()
}

pub(crate) async fn touch_session(
    client: &impl GenericClient,
    token_hash: &str,
    at: DateTime<Utc>,
) -> Result<bool> {
    let n = client
        .execute(
            "UPDATE sessions SET last_seen_at = $2 WHERE token_hash = $1",
            &[&token_hash, &ts(at)],
        )
        .await
        .map_err(storage)?;
    Ok(n > 0)
}

pub(crate) async fn delete_session(client: &impl GenericClient, token_hash: &str) -> Result<bool> {
    let n = client
        .execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash])
        .await
        .map_err(storage)?;
    Ok(n > 0)
}

pub(crate) async fn delete_sessions_of(
    client: &impl GenericClient,
    principal: &str,
) -> Result<u64> {
    client
        .execute(
            "DELETE FROM sessions WHERE lower(principal) = $1",
            &[&fold(principal)],
        )
        .await
        .map_err(storage)
}

// ---- API tokens ----

const TOKEN_COLUMNS: &str = "id, name, environment_id, role, token_hash, created_by, created_at, \
     expires_at, revoked_at, last_used_at";

fn read_token(r: &Row) -> Result<ApiToken> {
    let env: String = get(r, 2)?;
    let role: String = get(r, 3)?;
    Ok(ApiToken {
        id: get(r, 0)?,
        name: get(r, 1)?,
        environment_id: env.parse().map_err(|e| corrupt("token environment", e))?,
        role: role.parse().map_err(|e| corrupt("token role", e))?,
        token_hash: get(r, 4)?,
        created_by: get(r, 5)?,
        created_at: from_ts(get(r, 6)?),
        expires_at: get::<Option<std::time::SystemTime>>(r, 7)?.map(from_ts),
        revoked_at: get::<Option<std::time::SystemTime>>(r, 8)?.map(from_ts),
        last_used_at: get::<Option<std::time::SystemTime>>(r, 9)?.map(from_ts),
    })
}

pub(crate) async fn create_token(client: &impl GenericClient, t: &ApiToken) -> Result<()> {
    if t.name.trim().is_empty() || t.id.is_empty() || t.token_hash.is_empty() {
        return Err(Error::Invalid(
            "a token needs a name, an id and a digest".into(),
        ));
    }
    let env = t.environment_id.to_string();
    if !environment_exists(client, &env).await? {
        return Err(Error::environment_not_found(env));
    }
    client
        .execute(
            &format!(
                "INSERT INTO api_tokens ({TOKEN_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            &[
                &t.id,
                &t.name,
                &env,
                &t.role.as_str(),
                &t.token_hash,
                &t.created_by,
                &ts(t.created_at),
                &opt_ts(t.expires_at),
                &opt_ts(t.revoked_at),
                &opt_ts(t.last_used_at),
            ],
        )
        .await
        .map_err(|e| match violation(&e) {
            Some(Violation::Unique) => Error::AlreadyExists {
                kind: "token",
                name: t.name.clone(),
            },
            Some(Violation::ForeignKey) => Error::environment_not_found(env.clone()),
            None => storage(e),
        })?;
    Ok(())
}

pub(crate) async fn token_by_hash(
    client: &impl GenericClient,
    token_hash: &str,
) -> Result<Option<ApiToken>> {
    client
        .query_opt(
            &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1"),
            &[&token_hash],
        )
        .await
        .map_err(storage)?
        .as_ref()
        .map(read_token)
        .transpose()
}

pub(crate) async fn list_tokens(
    client: &impl GenericClient,
    env: EnvironmentId,
) -> Result<Vec<ApiToken>> {
    let rows = client
        .query(
            &format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE environment_id = $1 \
                 ORDER BY lower(name), created_at, id"
            ),
            &[&env.to_string()],
        )
        .await
        .map_err(storage)?;
    read_all(rows, read_token)
}

pub(crate) async fn revoke_token(
    client: &impl GenericClient,
    env: EnvironmentId,
    name: &str,
    at: DateTime<Utc>,
) -> Result<bool> {
    let n = client
        .execute(
            "UPDATE api_tokens SET revoked_at = $3 \
             WHERE environment_id = $1 AND lower(name) = $2 AND revoked_at IS NULL",
            &[&env.to_string(), &fold(name), &ts(at)],
        )
        .await
        .map_err(storage)?;
    Ok(n > 0)
}

pub(crate) async fn touch_token(
    client: &impl GenericClient,
    id: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    client
        .execute(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1",
            &[&id, &ts(at)],
        )
        .await
        .map_err(storage)?;
    Ok(())
}

// ---- sign-in throttles ----

fn read_throttle(r: &Row) -> Result<Throttle> {
    Ok(Throttle {
        key: get(r, 0)?,
        failures: to_u32("failure count", get(r, 1)?)?,
        first_at: from_ts(get(r, 2)?),
        last_at: from_ts(get(r, 3)?),
    })
}

/// The failures counted under `key`; with `lock`, the row stays as read until the
/// transaction ends (`FOR UPDATE`).
pub(crate) async fn sign_in_failures(
    client: &impl GenericClient,
    key: &str,
    lock: bool,
) -> Result<Option<Throttle>> {
    let sql = format!(
        "SELECT key, failures, first_at, last_at FROM sign_in_failures WHERE key = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    client
        .query_opt(&sql, &[&key])
        .await
        .map_err(storage)?
        .as_ref()
        .map(read_throttle)
        .transpose()
}

pub(crate) async fn record_sign_in_failure(
    client: &impl GenericClient,
    key: &str,
    at: DateTime<Utc>,
    window: Duration,
) -> Result<Throttle> {
    // The first failure under a key inserts it; a later one finds the row and locks it,
    // so two failures counted at once are both counted.
    let first = client
        .query_opt(
            "INSERT INTO sign_in_failures (key, failures, first_at, last_at) \
             VALUES ($1, 1, $2, $2) ON CONFLICT (key) DO NOTHING \
             RETURNING key, failures, first_at, last_at",
            &[&key, &ts(at)],
        )
        .await
        .map_err(storage)?;
    if let Some(row) = first {
        return read_throttle(&row);
    }
    let stored = sign_in_failures(client, key, true)
        .await?
        .ok_or_else(|| Error::Storage("a counted sign-in failure cannot be read back".into()))?;
    let within = stored
        .first_at
        .checked_add_signed(window)
        .is_none_or(|end| end > at);
    let next = if within {
        Throttle {
            failures: stored.failures.saturating_add(1),
            last_at: at,
            ..stored
        }
    } else {
        Throttle {
            key: key.to_string(),
            failures: 1,
            first_at: at,
            last_at: at,
        }
    };
    client
        .execute(
            "UPDATE sign_in_failures SET failures = $2, first_at = $3, last_at = $4 \
             WHERE key = $1",
            &[
                &next.key,
                &i64::from(next.failures),
                &ts(next.first_at),
                &ts(next.last_at),
            ],
        )
        .await
        .map_err(storage)?;
    Ok(Throttle {
        first_at: from_ts(ts(next.first_at)),
        last_at: from_ts(ts(next.last_at)),
        ..next
    })
}

pub(crate) async fn clear_sign_in_failures(client: &impl GenericClient, key: &str) -> Result<()> {
    client
        .execute("DELETE FROM sign_in_failures WHERE key = $1", &[&key])
        .await
        .map_err(storage)?;
    Ok(())
}

// ---- audit log ----

pub(crate) async fn append_audit(client: &impl GenericClient, e: &AuditEntry) -> Result<i64> {
    let row = client
        .query_one(
            "INSERT INTO audit_log (at, actor, action, environment_id, object, outcome, address) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                &ts(e.at),
                &e.actor,
                &e.action,
                &e.environment_id.map(|id| id.to_string()),
                &e.object,
                &e.outcome.as_str(),
                &e.address,
            ],
        )
        .await
        .map_err(storage)?;
    get(&row, 0)
}

pub(crate) async fn audit(client: &impl GenericClient, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
    let rows = client
        .query(
            "SELECT id, at, actor, action, environment_id, object, outcome, address \
             FROM audit_log \
             WHERE ($1::text IS NULL OR environment_id = $1) \
             AND ($2::text IS NULL OR lower(actor) = $2) \
             AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
            &[
                &q.environment_id.map(|id| id.to_string()),
                &q.actor.as_deref().map(fold),
                &q.before,
                &big(q.limit),
            ],
        )
        .await
        .map_err(storage)?;
    read_all(rows, |r| {
        let env: Option<String> = get(r, 4)?;
        let outcome: String = get(r, 6)?;
        Ok(AuditEntry {
            id: get(r, 0)?,
            at: from_ts(get(r, 1)?),
            actor: get(r, 2)?,
            action: get(r, 3)?,
            environment_id: env
                .map(|e| e.parse::<EnvironmentId>())
                .transpose()
                .map_err(|e| corrupt("audit environment", e))?,
            object: get(r, 5)?,
            outcome: outcome
                .parse::<AuditOutcome>()
                .map_err(|e| corrupt("audit outcome", e))?,
            address: get(r, 7)?,
        })
    })
}

// ---- run events, cancel requests, leadership ----

fn run_not_found(run: &RunId) -> Error {
    Error::run_not_found(run.to_string())
}

pub(crate) async fn append_run_event(
    client: &impl GenericClient,
    run: &RunId,
    at: DateTime<Utc>,
    body: &str,
) -> Result<u64> {
    // The run's row is locked: events of one run are numbered one at a time.
    let locked = client
        .query_opt(
            "SELECT 1 FROM runs WHERE id = $1 FOR UPDATE",
            &[&run.as_str()],
        )
        .await
        .map_err(storage)?;
    if locked.is_none() {
        return Err(run_not_found(run));
    }
    let row = client
        .query_one(
            "INSERT INTO run_events (run_id, seq, at, body) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3 FROM run_events WHERE run_id = $1 \
             RETURNING seq",
            &[&run.as_str(), &ts(at), &body],
        )
        .await
        .map_err(storage)?;
    to_u64("event number", get(&row, 0)?)
}

pub(crate) async fn run_events(
    client: &impl GenericClient,
    run: &RunId,
    after: u64,
    limit: usize,
) -> Result<Vec<RunEvent>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "SELECT seq, at, body FROM run_events WHERE run_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
            &[&run.as_str(), &after, &big(limit)],
        )
        .await
        .map_err(storage)?;
    read_all(rows, |r| {
        Ok(RunEvent {
            run_id: run.clone(),
            seq: to_u64("event number", get(r, 0)?)?,
            at: from_ts(get(r, 1)?),
            body: get(r, 2)?,
        })
    })
}

pub(crate) async fn request_cancel(
    client: &impl GenericClient,
    run: &RunId,
    at: DateTime<Utc>,
) -> Result<()> {
    let n = client
        .execute(
            "UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, $2) \
             WHERE id = $1",
            &[&run.as_str(), &ts(at)],
        )
        .await
        .map_err(storage)?;
    if n == 0 {
        return Err(run_not_found(run));
    }
    Ok(())
}

pub(crate) async fn cancel_requested(client: &impl GenericClient, run: &RunId) -> Result<bool> {
    let row = client
        .query_opt(
            "SELECT cancel_requested_at IS NOT NULL FROM runs WHERE id = $1",
            &[&run.as_str()],
        )
        .await
        .map_err(storage)?;
    match row {
        None => Err(run_not_found(run)),
        Some(r) => get(&r, 0),
    }
}

pub(crate) async fn key(
    client: &impl GenericClient,
    name: &str,
    fresh: [u8; 32],
    now: DateTime<Utc>,
) -> Result<[u8; 32]> {
    client
        .execute(
            "INSERT INTO keys (name, key, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
            &[&name, &fresh.as_slice(), &ts(now)],
        )
        .await
        .map_err(storage)?;
    let row = client
        .query_one("SELECT key FROM keys WHERE name = $1", &[&name])
        .await
        .map_err(storage)?;
    let key: Vec<u8> = get(&row, 0)?;
    key.try_into()
        .map_err(|_| Error::Storage(format!("the catalog's key `{name}` is not 32 bytes long")))
}

pub(crate) async fn take_leadership(
    client: &impl GenericClient,
    name: &str,
    holder: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<Leadership> {
    // The upsert locks the row whether or not it changes it, so the read below sees
    // the holder it left.
    client
        .execute(
            "INSERT INTO leadership (name, holder, expires_at) VALUES ($1, $2, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leadership.holder = excluded.holder OR leadership.expires_at <= $3",
            &[&name, &holder, &ts(now), &ts(expires_at)],
        )
        .await
        .map_err(storage)?;
    let row = client
        .query_one(
            "SELECT holder, expires_at FROM leadership WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(storage)?;
    Ok(Leadership {
        name: name.to_string(),
        holder: get(&row, 0)?,
        expires_at: from_ts(get(&row, 1)?),
    })
}

pub(crate) async fn release_leadership(
    client: &impl GenericClient,
    name: &str,
    holder: &str,
) -> Result<()> {
    client
        .execute(
            "DELETE FROM leadership WHERE name = $1 AND holder = $2",
            &[&name, &holder],
        )
        .await
        .map_err(storage)?;
    Ok(())
}
