//! What authentication keeps in the catalog: password credentials, sign-in sessions, API
//! tokens, sign-in throttles and the audit log; and what lets several server instances
//! share work: run events, cancel requests and leadership.
//!
//! Secrets never appear here: passwords are kept as Argon2id hashes (PHC strings), and
//! session and token secrets as SHA-256 digests of the value the client holds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::Role;
use crate::ids::{EnvironmentId, RunId};

/// A person's password credential.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordCredential {
    /// The principal it belongs to.
    pub principal: String,
    /// The Argon2id hash as a PHC string (`$argon2id$v=19$...`).
    pub hash: String,
    /// When it was set.
    pub changed_at: DateTime<Utc>,
}

impl std::fmt::Debug for PasswordCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordCredential")
            .field("principal", &self.principal)
            .field("hash", &"<argon2id>")
            .field("changed_at", &self.changed_at)
            .finish()
    }
}

/// A signed-in browser or client session. The client holds a random token; the catalog
/// only its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Hex SHA-256 of the session token.
    pub token_hash: String,
    /// Who signed in.
    pub principal: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The last request made with it (idle expiry counts from here).
    pub last_seen_at: DateTime<Utc>,
    /// When it ends whatever its use (absolute expiry).
    pub expires_at: DateTime<Utc>,
    /// The address it signed in from.
    pub address: Option<String>,
}

/// An API token: an application's or a script's credential, scoped to one environment and
/// one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Its id (the public part of the token).
    pub id: String,
    /// Its name, unique in its environment without regard to ASCII case.
    pub name: String,
    /// The environment it acts in.
    pub environment_id: EnvironmentId,
    /// The role it acts with there.
    pub role: Role,
    /// Hex SHA-256 of the whole token; never shown.
    #[serde(skip_serializing, default)]
    pub token_hash: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Its last use.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    /// Whether it may act at `now`: not revoked and not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }

    /// The principal name it acts as: `token:<name>`.
    pub fn principal(&self) -> String {
        format!("token:{}", self.name)
    }
}

/// Failed sign-ins counted under one key (an account or an address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    /// What is counted, e.g. `account:alice` or `address:10.0.0.7`.
    pub key: String,
    /// Failures in the current window.
    pub failures: u32,
    /// The first failure of the window.
    pub first_at: DateTime<Utc>,
    /// The latest failure.
    pub last_at: DateTime<Utc>,
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// It was done.
    Succeeded,
    /// The principal's role did not allow it, or its credentials were refused.
    Denied,
    /// It was allowed but failed.
    Failed,
}

impl AuditOutcome {
    /// The outcome as text.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditOutcome::Succeeded => "succeeded",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
        }
    }
}

impl std::str::FromStr for AuditOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "succeeded" => Ok(AuditOutcome::Succeeded),
            "denied" => Ok(AuditOutcome::Denied),
            "failed" => Ok(AuditOutcome::Failed),
            other => Err(format!("unknown audit outcome `{other}`")),
        }
    }
}

/// One line of the audit log: who did what to which object, when, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its number, assigned by the catalog in order of writing (0 before it is stored).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// The acting principal (a user, `token:<name>`, or the name tried at a failed
    /// sign-in).
    pub actor: String,
    /// What, e.g. `sign-in`, `refresh.start`, `role.set`.
    pub action: String,
    /// The environment concerned, if any.
    pub environment_id: Option<EnvironmentId>,
    /// The object acted on, e.g. a run id, an export's or a user's name.
    pub object: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The client's address, for actions over the network.
    pub address: Option<String>,
}

/// Which audit entries to read, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this environment's entries.
    pub environment_id: Option<EnvironmentId>,
    /// Only this actor's entries (ASCII case ignored).
    pub actor: Option<String>,
    /// Only entries older than this id (paging).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// One event of a run, stored so that any server instance can stream it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEvent {
    /// The run.
    pub run_id: RunId,
    /// Its number within the run, from 1.
    pub seq: u64,
    /// When it was stored.
    pub at: DateTime<Utc>,
    /// The event as JSON.
    pub body: String,
}

/// Who holds a named piece of work (e.g. the scheduler) among several instances, and
/// until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// The work, e.g. `scheduler`.
    pub name: String,
    /// The instance holding it.
    pub holder: String,
    /// Until when, unless renewed.
    pub expires_at: DateTime<Utc>,
}
