//! Accounts, groups, sessions, API tokens, sign-in throttles, the audit log and the work
//! several instances share (run events, cancel requests, leadership) in SQLite.

use chrono::{DateTime, Duration, Utc};
use lakecdp_core::{
    ApiToken, AuditEntry, AuditOutcome, AuditQuery, EnvironmentId, Leadership, PasswordCredential,
    RoleAssignment, RunEvent, RunId, Session, Throttle,
};
use rusqlite::{params, Connection as Db, OptionalExtension, Row, Transaction};

use super::codec::{parse_timestamp, storage, timestamp, violation, Violation};
use super::objects::select_principal;
use crate::error::{Error, Result};

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("stored {what} cannot be read: {e}"))
}

fn principal_not_found(name: &str) -> Error {
    Error::NotFound {
        kind: "principal",
        name: name.to_string(),
    }
}

fn optional_time(what: &str, text: Option<String>) -> Result<Option<DateTime<Utc>>> {
    text.map(|t| parse_timestamp(what, &t)).transpose()
}

// ---- principals' flags and passwords ----

pub(crate) fn set_principal_flags(
    tx: &Transaction<'_>,
    name: &str,
    disabled: bool,
    administrator: bool,
) -> Result<()> {
    let n = tx
        .execute(
            "UPDATE principals SET disabled = ?2, administrator = ?3 WHERE name = ?1",
            params![name, disabled, administrator],
        )
        .map_err(storage)?;
    if n == 0 {
        return Err(principal_not_found(name));
    }
    Ok(())
}

pub(crate) fn set_password(tx: &Transaction<'_>, c: &PasswordCredential) -> Result<()> {
    let principal =
        select_principal(tx, &c.principal)?.ok_or_else(|| principal_not_found(&c.principal))?;
    crate::validate::password(&principal, c)?;
    tx.execute(
        "INSERT INTO passwords (principal, hash, changed_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (principal) DO UPDATE SET hash = excluded.hash, changed_at = excluded.changed_at",
        params![principal.name, c.hash, timestamp(c.changed_at)],
    )
    .map_err(storage)?;
    Ok(())
}

pub(crate) fn password(conn: &Db, principal: &str) -> Result<Option<PasswordCredential>> {
    let row: Option<(String, String, String)> = conn
        .query_row(
            "SELECT principal, hash, changed_at FROM passwords WHERE principal = ?1",
            [principal],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(storage)?;
    row.map(|(principal, hash, at)| {
        Ok(PasswordCredential {
            principal,
            hash,
            changed_at: parse_timestamp("password time", &at)?,
        })
    })
    .transpose()
}

// ---- groups ----

fn require_group(conn: &Db, group: &str) -> Result<String> {
    crate::validate::group(select_principal(conn, group)?, group)
}

pub(crate) fn add_group_member(tx: &Transaction<'_>, group: &str, member: &str) -> Result<bool> {
    let group = require_group(tx, group)?;
    let m = select_principal(tx, member)?.ok_or_else(|| principal_not_found(member))?;
    crate::validate::group_member(&m)?;
    let n = tx
        .execute(
            "INSERT INTO group_members (group_name, member) VALUES (?1, ?2) \
             ON CONFLICT (group_name, member) DO NOTHING",
            params![group, m.name],
        )
        .map_err(storage)?;
    Ok(n > 0)
}

pub(crate) fn remove_group_member(tx: &Transaction<'_>, group: &str, member: &str) -> Result<bool> {
    let group = require_group(tx, group)?;
    let n = tx
        .execute(
            "DELETE FROM group_members WHERE group_name = ?1 AND member = ?2",
            params![group, member],
        )
        .map_err(storage)?;
    Ok(n > 0)
}

fn names(conn: &Db, sql: &str, key: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(sql).map_err(storage)?;
    let rows = stmt
        .query_map([key], |r| r.get::<_, String>(0))
        .map_err(storage)?;
    rows.map(|r| r.map_err(storage)).collect()
}

pub(crate) fn group_members(conn: &Db, group: &str) -> Result<Vec<String>> {
    let group = require_group(conn, group)?;
    names(
        conn,
        "SELECT m.name FROM group_members g JOIN principals m ON m.name = g.member \
         WHERE g.group_name = ?1 ORDER BY m.name COLLATE NOCASE",
        &group,
    )
}

pub(crate) fn groups_of(conn: &Db, principal: &str) -> Result<Vec<String>> {
    names(
        conn,
        "SELECT p.name FROM group_members g JOIN principals p ON p.name = g.group_name \
         WHERE g.member = ?1 ORDER BY p.name COLLATE NOCASE",
        principal,
    )
}

pub(crate) fn delete_group(tx: &Transaction<'_>, group: &str) -> Result<bool> {
    match require_group(tx, group) {
        Ok(name) => {
            for sql in [
                "DELETE FROM group_members WHERE group_name = ?1",
                "DELETE FROM role_assignments WHERE principal = ?1",
                "DELETE FROM principals WHERE name = ?1",
            ] {
                tx.execute(sql, [&name]).map_err(storage)?;
            }
            Ok(true)
        }
        Err(Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn grants(
    conn: &Db,
    env: EnvironmentId,
    principal: &str,
) -> Result<Vec<RoleAssignment>> {
    super::objects::assignments(
        conn,
        env,
        "SELECT principal, role, assigned_by, assigned_at FROM role_assignments \
         WHERE environment_id = ?1 AND (principal = ?2 OR principal IN \
         (SELECT group_name FROM group_members WHERE member = ?2)) \
         ORDER BY principal COLLATE NOCASE",
        params![env.to_string(), principal],
    )
}

// ---- sessions ----

pub(crate) fn create_session(tx: &Transaction<'_>, s: &Session) -> Result<()> {
    let principal =
        select_principal(tx, &s.principal)?.ok_or_else(|| principal_not_found(&s.principal))?;
    tx.execute(
        "INSERT INTO sessions (token_hash, principal, created_at, last_seen_at, expires_at, address) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            s.token_hash,
            principal.name,
            timestamp(s.created_at),
            timestamp(s.last_seen_at),
            timestamp(s.expires_at),
            s.address
        ],
    )
    .map_err(|e| match violation(&e) {
        Some(Violation::Unique) => Error::AlreadyExists {
            kind: "session",
            name: "(token)".into(),
        },
        _ => storage(e),
    })?;
    Ok(())
}

pub(crate) fn session(conn: &Db, token_hash: &str) -> Result<Option<Session>> {
    type Raw = (String, String, String, String, String, Option<String>);
    let row: Option<Raw> = conn
        .query_row(
            "SELECT token_hash, principal, created_at, last_seen_at, expires_at, address \
             FROM sessions WHERE token_hash = ?1",
            [token_hash],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .optional()
        .map_err(storage)?;
    row.map(|(token_hash, principal, created, seen, expires, address)| {
        Ok(Session {
            token_hash,
            principal,
            created_at: parse_timestamp("session time", &created)?,
            last_seen_at: parse_timestamp("session time", &seen)?,
            expires_at: parse_timestamp("session time", &expires)?,
            address,
        })
    })
    .transpose()
}

pub(crate) fn touch_session(
    tx: &Transaction<'_>,
    token_hash: &str,
    at: DateTime<Utc>,
) -> Result<bool> {
    let n = tx
        .execute(
            "UPDATE sessions SET last_seen_at = ?2 WHERE token_hash = ?1",
            params![token_hash, timestamp(at)],
        )
        .map_err(storage)?;
    Ok(n > 0)
}

pub(crate) fn delete_session(tx: &Transaction<'_>, token_hash: &str) -> Result<bool> {
    let n = tx
        .execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])
        .map_err(storage)?;
    Ok(n > 0)
}

pub(crate) fn delete_sessions_of(tx: &Transaction<'_>, principal: &str) -> Result<u64> {
    let n = tx
        .execute("DELETE FROM sessions WHERE principal = ?1", [principal])
        .map_err(storage)?;
    Ok(n as u64)
}

// ---- API tokens ----

const TOKEN_COLUMNS: &str = "id, name, environment_id, role, token_hash, created_by, created_at, \
     expires_at, revoked_at, last_used_at";

type TokenRaw = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn read_token(r: &Row<'_>) -> rusqlite::Result<TokenRaw> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn token_of(raw: TokenRaw) -> Result<ApiToken> {
    let (id, name, env, role, token_hash, created_by, created_at, expires, revoked, used) = raw;
    Ok(ApiToken {
        id,
        name,
        environment_id: env.parse().map_err(|e| corrupt("token environment", e))?,
        role: role.parse().map_err(|e| corrupt("token role", e))?,
        token_hash,
        created_by,
        created_at: parse_timestamp("token time", &created_at)?,
        expires_at: optional_time("token time", expires)?,
        revoked_at: optional_time("token time", revoked)?,
        last_used_at: optional_time("token time", used)?,
    })
}

pub(crate) fn create_token(tx: &Transaction<'_>, t: &ApiToken) -> Result<()> {
    if t.name.trim().is_empty() || t.id.is_empty() || t.token_hash.is_empty() {
        return Err(Error::Invalid(
            "a token needs a name, an id and a digest".into(),
        ));
    }
    let env = t.environment_id.to_string();
    if !super::environment_exists(tx, &env)? {
        return Err(Error::environment_not_found(env));
    }
    tx.execute(
        &format!("INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![
            t.id,
            t.name,
            env,
            t.role.as_str(),
            t.token_hash,
            t.created_by,
            timestamp(t.created_at),
            t.expires_at.map(timestamp),
            t.revoked_at.map(timestamp),
            t.last_used_at.map(timestamp)
        ],
    )
    .map_err(|e| match violation(&e) {
        Some(Violation::Unique) => Error::AlreadyExists {
            kind: "token",
            name: t.name.clone(),
        },
        _ => storage(e),
    })?;
    Ok(())
}

pub(crate) fn token_by_hash(conn: &Db, token_hash: &str) -> Result<Option<ApiToken>> {
    conn.query_row(
        &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?1"),
        [token_hash],
        read_token,
    )
    .optional()
    .map_err(storage)?
    .map(token_of)
    .transpose()
}

pub(crate) fn list_tokens(conn: &Db, env: EnvironmentId) -> Result<Vec<ApiToken>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE environment_id = ?1 \
             ORDER BY name COLLATE NOCASE, created_at"
        ))
        .map_err(storage)?;
    let rows = stmt
        .query_map([env.to_string()], read_token)
        .map_err(storage)?;
    rows.map(|r| token_of(r.map_err(storage)?)).collect()
}

pub(crate) fn revoke_token(
    tx: &Transaction<'_>,
    env: EnvironmentId,
    name: &str,
    at: DateTime<Utc>,
) -> Result<bool> {
    let n = tx
        .execute(
            "UPDATE api_tokens SET revoked_at = ?3 \
             WHERE environment_id = ?1 AND name = ?2 AND revoked_at IS NULL",
            params![env.to_string(), name, timestamp(at)],
        )
        .map_err(storage)?;
    Ok(n > 0)
}

pub(crate) fn touch_token(tx: &Transaction<'_>, id: &str, at: DateTime<Utc>) -> Result<()> {
    tx.execute(
        "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
        params![id, timestamp(at)],
    )
    .map_err(storage)?;
    Ok(())
}

// ---- sign-in throttles ----

pub(crate) fn sign_in_failures(conn: &Db, key: &str) -> Result<Option<Throttle>> {
    let row: Option<(String, i64, String, String)> = conn
        .query_row(
            "SELECT key, failures, first_at, last_at FROM sign_in_failures WHERE key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(storage)?;
    row.map(|(key, failures, first, last)| {
        Ok(Throttle {
            key,
            failures: u32::try_from(failures).map_err(|e| corrupt("failure count", e))?,
            first_at: parse_timestamp("failure time", &first)?,
            last_at: parse_timestamp("failure time", &last)?,
        })
    })
    .transpose()
}

pub(crate) fn record_sign_in_failure(
    tx: &Transaction<'_>,
    key: &str,
    at: DateTime<Utc>,
    window: Duration,
) -> Result<Throttle> {
    let next = match sign_in_failures(tx, key)? {
        Some(t) if t.first_at + window > at => Throttle {
            failures: t.failures.saturating_add(1),
            last_at: at,
            ..t
        },
        _ => Throttle {
            key: key.to_string(),
            failures: 1,
            first_at: at,
            last_at: at,
        },
    };
    tx.execute(
        "INSERT INTO sign_in_failures (key, failures, first_at, last_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, \
         first_at = excluded.first_at, last_at = excluded.last_at",
        params![
            next.key,
            i64::from(next.failures),
            timestamp(next.first_at),
            timestamp(next.last_at)
        ],
    )
    .map_err(storage)?;
    Ok(next)
}

pub(crate) fn clear_sign_in_failures(tx: &Transaction<'_>, key: &str) -> Result<()> {
    tx.execute("DELETE FROM sign_in_failures WHERE key = ?1", [key])
        .map_err(storage)?;
    Ok(())
}

// ---- audit log ----

pub(crate) fn append_audit(tx: &Transaction<'_>, e: &AuditEntry) -> Result<i64> {
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, environment_id, object, outcome, address) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            timestamp(e.at),
            e.actor,
            e.action,
            e.environment_id.map(|id| id.to_string()),
            e.object,
            e.outcome.as_str(),
            e.address
        ],
    )
    .map_err(storage)?;
    Ok(tx.last_insert_rowid())
}

pub(crate) fn audit(conn: &Db, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, at, actor, action, environment_id, object, outcome, address FROM audit_log \
             WHERE (?1 IS NULL OR environment_id = ?1) AND (?2 IS NULL OR actor = ?2 COLLATE NOCASE) \
             AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4",
        )
        .map_err(storage)?;
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    type Raw = (
        i64,
        String,
        String,
        String,
        Option<String>,
        String,
        String,
        Option<String>,
    );
    let rows = stmt
        .query_map(
            params![
                q.environment_id.map(|id| id.to_string()),
                q.actor,
                q.before,
                limit
            ],
            |r| -> rusqlite::Result<Raw> {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            },
        )
        .map_err(storage)?;
    rows.map(|r| {
        let (id, at, actor, action, env, object, outcome, address) = r.map_err(storage)?;
        Ok(AuditEntry {
            id,
            at: parse_timestamp("audit time", &at)?,
            actor,
            action,
            environment_id: env
                .map(|e| e.parse::<EnvironmentId>())
                .transpose()
                .map_err(|e| corrupt("audit environment", e))?,
            object,
            outcome: outcome
                .parse::<AuditOutcome>()
                .map_err(|e| corrupt("audit outcome", e))?,
            address,
        })
    })
    .collect()
}

// ---- run events, cancel requests, leadership ----

fn run_exists(conn: &Db, run: &RunId) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM runs WHERE id = ?1")
        .and_then(|mut stmt| stmt.exists([run.as_str()]))
        .map_err(storage)
}

fn run_not_found(run: &RunId) -> Error {
    Error::run_not_found(run.to_string())
}

pub(crate) fn append_run_event(
    tx: &Transaction<'_>,
    run: &RunId,
    at: DateTime<Utc>,
    body: &str,
) -> Result<u64> {
    if !run_exists(tx, run)? {
        return Err(run_not_found(run));
    }
    let last: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = ?1",
            [run.as_str()],
            |r| r.get(0),
        )
        .map_err(storage)?;
    let seq = last + 1;
    tx.execute(
        "INSERT INTO run_events (run_id, seq, at, body) VALUES (?1, ?2, ?3, ?4)",
        params![run.as_str(), seq, timestamp(at), body],
    )
    .map_err(storage)?;
    u64::try_from(seq).map_err(|e| corrupt("event number", e))
}

pub(crate) fn run_events(
    conn: &Db,
    run: &RunId,
    after: u64,
    limit: usize,
) -> Result<Vec<RunEvent>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, at, body FROM run_events WHERE run_id = ?1 AND seq > ?2 \
             ORDER BY seq LIMIT ?3",
        )
        .map_err(storage)?;
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![run.as_str(), after, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(storage)?;
    rows.map(|r| {
        let (seq, at, body) = r.map_err(storage)?;
        Ok(RunEvent {
            run_id: run.clone(),
            seq: u64::try_from(seq).map_err(|e| corrupt("event number", e))?,
            at: parse_timestamp("event time", &at)?,
            body,
        })
    })
    .collect()
}

pub(crate) fn request_cancel(tx: &Transaction<'_>, run: &RunId, at: DateTime<Utc>) -> Result<()> {
    let n = tx
        .execute(
            "UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, ?2) WHERE id = ?1",
            params![run.as_str(), timestamp(at)],
        )
        .map_err(storage)?;
    if n == 0 {
        return Err(run_not_found(run));
    }
    Ok(())
}

pub(crate) fn cancel_requested(conn: &Db, run: &RunId) -> Result<bool> {
    let at: Option<Option<String>> = conn
        .query_row(
            "SELECT cancel_requested_at FROM runs WHERE id = ?1",
            [run.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(storage)?;
    match at {
        None => Err(run_not_found(run)),
        Some(at) => Ok(at.is_some()),
    }
}

pub(crate) fn key(
    tx: &Transaction<'_>,
    name: &str,
    fresh: [u8; 32],
    now: DateTime<Utc>,
) -> Result<[u8; 32]> {
    tx.execute(
        "INSERT INTO keys (name, key, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
        params![name, fresh.as_slice(), timestamp(now)],
    )
    .map_err(storage)?;
    let key: Vec<u8> = tx
        .query_row("SELECT key FROM keys WHERE name = ?1", [name], |r| r.get(0))
        .map_err(storage)?;
    key.try_into()
        .map_err(|_| Error::Storage(format!("the catalog's key `{name}` is not 32 bytes long")))
}

pub(crate) fn take_leadership(
    tx: &Transaction<'_>,
    name: &str,
    holder: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<Leadership> {
    tx.execute(
        "INSERT INTO leadership (name, holder, expires_at) VALUES (?1, ?2, ?4) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE leadership.holder = excluded.holder OR leadership.expires_at <= ?3",
        params![name, holder, timestamp(now), timestamp(expires_at)],
    )
    .map_err(storage)?;
    let (holder, expires): (String, String) = tx
        .query_row(
            "SELECT holder, expires_at FROM leadership WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(storage)?;
    Ok(Leadership {
        name: name.to_string(),
        holder,
        expires_at: parse_timestamp("leadership time", &expires)?,
    })
}

pub(crate) fn release_leadership(tx: &Transaction<'_>, name: &str, holder: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM leadership WHERE name = ?1 AND holder = ?2",
        params![name, holder],
    )
    .map_err(storage)?;
    Ok(())
}
