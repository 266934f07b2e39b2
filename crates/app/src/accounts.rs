//! Accounts and authentication: users with Argon2id passwords, security groups, API
//! tokens, sign-in sessions with throttling and lock-out, and the audit log.
//!
//! Catalog-wide administration (users, groups, the whole audit log) is for catalog
//! administrators, and for the local user of the catalog on the command line. Tokens
//! are an environment's own: its Admins create, list and revoke them.
//!
//! Secrets handled here (passwords, session and token values) are never stored, logged
//! or returned after the moment they are made: the catalog keeps an Argon2id hash of a
//! password and a SHA-256 digest of a session or token value.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use lakecdp_core::{
    ApiToken, AuditEntry, AuditOutcome, AuditQuery, EnvironmentId, Operation, PasswordCredential,
    Principal, PrincipalKind, Role, Session,
};
use rand::RngCore;
use serde::Serialize;

use lakecdp_catalog::CatalogExt;

use crate::app::{Actor, App};
use crate::error::{Error, Result};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// How sign-in sessions expire and how failed sign-ins are throttled.
#[derive(Debug, Clone, Copy)]
pub struct SignInPolicy {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in whatever its use.
    pub absolute: Duration,
    /// Failures (per account, and per address) that lock sign-in.
    pub max_failures: u32,
    /// The window failures are counted in, and how long a lock-out lasts.
    pub window: Duration,
    /// The delay added to a failed sign-in per failure counted (capped at 8 failures).
    pub delay_per_failure: std::time::Duration,
}

impl Default for SignInPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::minutes(30),
            absolute: Duration::hours(12),
            max_failures: 5,
            window: Duration::minutes(15),
            delay_per_failure: std::time::Duration::from_millis(250),
        }
    }
}

/// A new session: the token for the client's cookie and the CSRF token its state-changing
/// requests carry. Shown once; only digests are stored.
#[derive(Clone, Serialize)]
pub struct SignedIn {
    /// The principal signed in.
    pub principal: String,
    /// The session token (cookie value).
    #[serde(skip)]
    pub token: String,
    /// The CSRF token for the `X-CSRF-Token` header.
    pub csrf_token: String,
    /// When the session ends at the latest.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("principal", &self.principal)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A signed-in principal found from its session token.
#[derive(Debug, Clone)]
pub struct SessionActor {
    /// The actor for the application's operations.
    pub actor: Actor,
    /// The session.
    pub session: Session,
}

/// A user as listed: the principal and whether a password is set.
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    /// The principal.
    #[serde(flatten)]
    pub principal: Principal,
    /// Whether it can sign in with a password.
    pub has_password: bool,
}

/// A group and its members.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    /// Its name.
    pub name: String,
    /// Its members, sorted.
    pub members: Vec<String>,
}

/// A new API token: the stored record and the value, shown once.
#[derive(Clone)]
pub struct NewToken {
    /// What the catalog keeps.
    pub token: ApiToken,
    /// The value for `Authorization: Bearer`.
    pub secret: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// Where an audited request came from and who made it.
#[derive(Debug, Clone, Default)]
pub struct AuditContext {
    /// The client's address.
    pub address: Option<String>,
}

/// The prefix of every API token value.
pub const TOKEN_PREFIX: &str = "lcdp_";

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Hex SHA-256 of a session or token value: what the catalog stores.
pub fn digest(value: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        value.as_bytes(),
    ))
}

/// The CSRF token of a session: derived from the session token, so it needs no storage
/// and cannot be guessed without the cookie.
pub fn csrf_token(session_token: &str) -> String {
    digest(&format!("lakecdp-csrf\0{session_token}"))
}

/// An Argon2id hash (PHC string) of a password.
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| Error::internal(format!("cannot encode a password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("cannot hash the password: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .and_then(|h| Argon2::default().verify_password(password.as_bytes(), &h))
        .is_ok()
}

/// A hash to verify against when the account does not exist, so that a sign-in takes as
/// long for an unknown name as for a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").unwrap_or_default())
}

fn check_password_rules(name: &str, password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(format!(
            "the password is too short: use at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.eq_ignore_ascii_case(name) {
        return Err(Error::invalid("the password must not be the user's name"));
    }
    Ok(())
}

/// The longest lifetime a token may have, in days (ten years).
pub const MAX_TOKEN_DAYS: i64 = 3650;

fn max_token_lifetime() -> Duration {
    Duration::days(MAX_TOKEN_DAYS)
}

/// `n` days as a lifetime, however large `n` is (one too large to state is refused by
/// the operation it is given to, after the caller's role is checked).
pub fn lifetime_days(n: i64) -> Duration {
    Duration::try_days(n).unwrap_or(Duration::MAX)
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with("token:")
        // `.` and `..` would be path steps in the admin centre's addresses
        && !name.chars().all(|c| c == '.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "`{name}` is not a valid {what} name: use 1 to 128 letters, digits and `._@-+`, \
             not starting with `token:` and not only dots"
        )))
    }
}

impl App {
    /// Refuse unless `actor` administers the catalog: the local user, or a principal
    /// marked administrator and not disabled.
    pub async fn require_administrator(&self, actor: &Actor) -> Result<()> {
        if actor.is_local() {
            return Ok(());
        }
        if actor.scope().is_none() {
            if let Some(name) = actor.name() {
                if let Some(p) = self.catalog().get_principal(name).await? {
                    if p.administrator && !p.disabled {
                        return Ok(());
                    }
                }
            }
        }
        Err(Error::denied(format!(
            "`{}` may not administer users, groups or the audit log: it needs to be a \
             catalog administrator (`lakecdp user add NAME --administrator`)",
            actor.name().unwrap_or("this principal")
        )))
    }

    /// Whether the catalog has an administrator who can sign in.
    pub async fn has_administrator(&self) -> Result<bool> {
        for p in self.catalog().list_principals().await? {
            if p.administrator && !p.disabled && self.catalog().password(&p.name).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Record a user with a password (catalog administrator).
    pub async fn add_user(
        &self,
        actor: &Actor,
        name: &str,
        password: &str,
        administrator: bool,
    ) -> Result<Principal> {
        self.require_administrator(actor).await?;
        check_name("user", name)?;
        check_password_rules(name, password)?;
        if let Some(existing) = self.catalog().get_principal(name).await? {
            if existing.kind != PrincipalKind::Person
                || self.catalog().password(name).await?.is_some()
            {
                return Err(Error::conflict(format!(
                    "`{}` exists already; use `lakecdp user reset-password {}` to set a new \
                     password",
                    existing.name, existing.name
                )));
            }
        }
        let hash = hash_password(password)?;
        let principal = self
            .catalog()
            .upsert_principal(&Principal::person(name))
            .await?;
        self.catalog()
            .set_password(&PasswordCredential {
                principal: principal.name.clone(),
                hash,
                changed_at: Utc::now(),
            })
            .await?;
        if administrator {
            self.catalog()
                .set_principal_flags(&principal.name, principal.disabled, true)
                .await?;
        }
        self.audit_change(actor, "user.add", None, &principal.name)
            .await?;
        Ok(self
            .catalog()
            .get_principal(&principal.name)
            .await?
            .unwrap_or(principal))
    }

    /// Every person and application (catalog administrator).
    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<UserSummary>> {
        self.require_administrator(actor).await?;
        let mut out = Vec::new();
        for p in self.catalog().list_principals().await? {
            if p.kind == PrincipalKind::Group {
                continue;
            }
            let has_password = self.catalog().password(&p.name).await?.is_some();
            out.push(UserSummary {
                principal: p,
                has_password,
            });
        }
        Ok(out)
    }

    async fn person(&self, name: &str) -> Result<Principal> {
        match self.catalog().get_principal(name).await? {
            Some(p) if p.kind != PrincipalKind::Group => Ok(p),
            _ => Err(Error::not_found(format!(
                "no user `{name}`; `lakecdp user list` shows them"
            ))),
        }
    }

    /// Disable or enable a user (catalog administrator); disabling ends its sessions.
    pub async fn set_user_disabled(&self, actor: &Actor, name: &str, disabled: bool) -> Result<()> {
        self.require_administrator(actor).await?;
        let p = self.person(name).await?;
        if disabled
            && actor
                .name()
                .is_some_and(|n| n.eq_ignore_ascii_case(&p.name))
        {
            return Err(Error::invalid("a user cannot disable itself"));
        }
        self.catalog()
            .set_principal_flags(&p.name, disabled, p.administrator)
            .await?;
        if disabled {
            self.catalog().delete_sessions_of(&p.name).await?;
        }
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        self.audit_change(actor, action, None, &p.name).await
    }

    /// Set a new password (catalog administrator, or the user itself); ends the user's
    /// sessions.
    pub async fn reset_password(&self, actor: &Actor, name: &str, password: &str) -> Result<()> {
        let own = actor.scope().is_none()
            && !actor.is_local()
            && actor.name().is_some_and(|n| n.eq_ignore_ascii_case(name));
        if !own {
            self.require_administrator(actor).await?;
        }
        let p = self.person(name).await?;
        check_password_rules(&p.name, password)?;
        let hash = hash_password(password)?;
        self.catalog()
            .set_password(&PasswordCredential {
                principal: p.name.clone(),
                hash,
                changed_at: Utc::now(),
            })
            .await?;
        self.catalog().delete_sessions_of(&p.name).await?;
        self.audit_change(actor, "user.reset-password", None, &p.name)
            .await
    }

    /// Create a security group (catalog administrator).
    pub async fn create_group(&self, actor: &Actor, name: &str) -> Result<()> {
        self.require_administrator(actor).await?;
        check_name("group", name)?;
        if let Some(p) = self.catalog().get_principal(name).await? {
            return Err(Error::conflict(format!(
                "`{}` exists already (a {})",
                p.name,
                p.kind.as_str()
            )));
        }
        self.catalog()
            .upsert_principal(&Principal::new(name, PrincipalKind::Group))
            .await?;
        self.audit_change(actor, "group.create", None, name).await
    }

    /// Delete a group with its memberships and roles (catalog administrator).
    pub async fn delete_group(&self, actor: &Actor, name: &str) -> Result<()> {
        self.require_administrator(actor).await?;
        if !self.catalog().delete_group(name).await? {
            return Err(Error::not_found(format!("no group `{name}`")));
        }
        self.audit_change(actor, "group.delete", None, name).await
    }

    /// Add a user to a group (catalog administrator); false when it was a member.
    pub async fn add_group_member(&self, actor: &Actor, group: &str, member: &str) -> Result<bool> {
        self.require_administrator(actor).await?;
        let added = self.catalog().add_group_member(group, member).await?;
        self.audit_change(
            actor,
            "group.add-member",
            None,
            &format!("{group}/{member}"),
        )
        .await?;
        Ok(added)
    }

    /// Remove a user from a group (catalog administrator); false when it was not one.
    pub async fn remove_group_member(
        &self,
        actor: &Actor,
        group: &str,
        member: &str,
    ) -> Result<bool> {
        self.require_administrator(actor).await?;
        let removed = self.catalog().remove_group_member(group, member).await?;
        self.audit_change(
            actor,
            "group.remove-member",
            None,
            &format!("{group}/{member}"),
        )
        .await?;
        Ok(removed)
    }

    /// Every group with its members (catalog administrator).
    pub async fn list_groups(&self, actor: &Actor) -> Result<Vec<GroupSummary>> {
        self.require_administrator(actor).await?;
        let mut out = Vec::new();
        for p in self.catalog().list_principals().await? {
            if p.kind == PrincipalKind::Group {
                let members = self.catalog().group_members(&p.name).await?;
                out.push(GroupSummary {
                    name: p.name,
                    members,
                });
            }
        }
        Ok(out)
    }

    /// Create an API token for an environment (its Admin): the value is returned once.
    pub async fn create_token(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        name: &str,
        role: Role,
        expires_in: Option<Duration>,
    ) -> Result<NewToken> {
        let env = self
            .environment_for(actor, environment, Operation::ManageRoles)
            .await?;
        check_name("token", name)?;
        if expires_in.is_some_and(|d| d <= Duration::zero() || d > max_token_lifetime()) {
            return Err(Error::invalid(format!(
                "a token's lifetime must be positive and at most {MAX_TOKEN_DAYS} days"
            )));
        }
        let id = random_token(9);
        let secret = format!("{TOKEN_PREFIX}{id}_{}", random_token(32));
        let now = Utc::now();
        let token = ApiToken {
            id,
            name: name.to_string(),
            environment_id: env.id,
            role,
            token_hash: digest(&secret),
            created_by: actor.name_for(&env),
            created_at: now,
            expires_at: expires_in.map(|d| now + d),
            revoked_at: None,
            last_used_at: None,
        };
        self.catalog().create_token(&token).await?;
        self.audit_change(actor, "token.create", Some(env.id), name)
            .await?;
        Ok(NewToken { token, secret })
    }

    /// An environment's tokens, revoked ones included (its Admin).
    pub async fn list_tokens(
        &self,
        actor: &Actor,
        environment: Option<&str>,
    ) -> Result<Vec<ApiToken>> {
        let env = self
            .environment_for(actor, environment, Operation::ManageRoles)
            .await?;
        Ok(self.catalog().list_tokens(env.id).await?)
    }

    /// Revoke an environment's token (its Admin); it is refused from the next request on.
    pub async fn revoke_token(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        name: &str,
    ) -> Result<()> {
        let env = self
            .environment_for(actor, environment, Operation::ManageRoles)
            .await?;
        if !self
            .catalog()
            .revoke_token(env.id, name, Utc::now())
            .await?
        {
            return Err(Error::not_found(format!(
                "no active token `{name}` in environment `{}`",
                env.name
            )));
        }
        self.audit_change(actor, "token.revoke", Some(env.id), name)
            .await
    }

    /// Sign in with a password: a new session, or an error that says nothing of whether
    /// the account exists. Failures are counted per account and per address; past
    /// `policy.max_failures` in `policy.window`, sign-in is locked for that key until the
    /// window has passed, and every failure is slowed down.
    pub async fn sign_in(
        &self,
        name: &str,
        password: &str,
        address: Option<&str>,
        policy: &SignInPolicy,
    ) -> Result<SignedIn> {
        let now = Utc::now();
        let keys: Vec<String> = std::iter::once(format!("account:{}", name.to_ascii_lowercase()))
            .chain(address.map(|a| format!("address:{a}")))
            .collect();
        for key in &keys {
            if let Some(t) = self.catalog().sign_in_failures(key).await? {
                if t.failures >= policy.max_failures && t.first_at + policy.window > now {
                    self.audit(name, "sign-in", None, name, AuditOutcome::Denied, address)
                        .await?;
                    let minutes = ((t.first_at + policy.window - now).num_seconds() + 59) / 60;
                    return Err(Error::unauthenticated(format!(
                        "too many failed sign-ins: sign-in is locked for {minutes} more minute(s)"
                    )));
                }
            }
        }
        let principal = self.catalog().get_principal(name).await?;
        let credential = match &principal {
            Some(p) => self.catalog().password(&p.name).await?,
            None => None,
        };
        let hash = credential
            .as_ref()
            .map_or_else(|| decoy_hash().to_string(), |c| c.hash.clone());
        let candidate = password.to_string();
        let valid = tokio::task::spawn_blocking(move || verify_password(&candidate, &hash))
            .await
            .map_err(|e| Error::internal(format!("password check failed: {e}")))?;
        let ok = valid && credential.is_some() && principal.as_ref().is_some_and(|p| !p.disabled);
        if !ok {
            let mut worst = 0;
            for key in &keys {
                let t = self
                    .catalog()
                    .record_sign_in_failure(key, now, policy.window)
                    .await?;
                worst = worst.max(t.failures);
            }
            self.audit(name, "sign-in", None, name, AuditOutcome::Denied, address)
                .await?;
            tokio::time::sleep(policy.delay_per_failure * worst.min(8)).await;
            return Err(Error::unauthenticated("wrong user name or password"));
        }
        let Some(principal) = principal else {
            return Err(Error::unauthenticated("wrong user name or password"));
        };
        self.catalog().clear_sign_in_failures(&keys[0]).await?;
        let token = random_token(32);
        let session = Session {
            token_hash: digest(&token),
            principal: principal.name.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + policy.absolute,
            address: address.map(str::to_string),
        };
        self.catalog().create_session(&session).await?;
        self.audit(
            &principal.name,
            "sign-in",
            None,
            &principal.name,
            AuditOutcome::Succeeded,
            address,
        )
        .await?;
        Ok(SignedIn {
            principal: principal.name,
            csrf_token: csrf_token(&token),
            token,
            expires_at: session.expires_at,
        })
    }

    /// The principal of a session token, if the session is valid (not expired, idle too
    /// long, or its principal disabled); its use is recorded.
    pub async fn session_actor(&self, token: &str, policy: &SignInPolicy) -> Result<SessionActor> {
        let refused = || Error::unauthenticated("the session has ended: sign in again");
        let hash = digest(token);
        let session = self.catalog().session(&hash).await?.ok_or_else(refused)?;
        let now = Utc::now();
        if now >= session.expires_at || now >= session.last_seen_at + policy.idle {
            self.catalog().delete_session(&hash).await?;
            return Err(refused());
        }
        match self.catalog().get_principal(&session.principal).await? {
            Some(p) if !p.disabled => {}
            _ => {
                self.catalog().delete_session(&hash).await?;
                return Err(refused());
            }
        }
        // one write a minute at most per session
        if now - session.last_seen_at > Duration::seconds(60) {
            self.catalog().touch_session(&hash, now).await?;
        }
        Ok(SessionActor {
            actor: Actor::named(session.principal.clone()),
            session,
        })
    }

    /// End a session.
    pub async fn sign_out(&self, token: &str, address: Option<&str>) -> Result<()> {
        let hash = digest(token);
        if let Some(session) = self.catalog().session(&hash).await? {
            self.catalog().delete_session(&hash).await?;
            self.audit(
                &session.principal,
                "sign-out",
                None,
                &session.principal,
                AuditOutcome::Succeeded,
                address,
            )
            .await?;
        }
        Ok(())
    }

    /// The actor of an API token value, if the token is active; its use is recorded.
    pub async fn token_actor(&self, value: &str) -> Result<(Actor, ApiToken)> {
        let refused =
            || Error::unauthenticated("the token is not valid: it is unknown, revoked or expired");
        if !value.starts_with(TOKEN_PREFIX) {
            return Err(refused());
        }
        let token = self
            .catalog()
            .token_by_hash(&digest(value))
            .await?
            .ok_or_else(refused)?;
        let now = Utc::now();
        if !token.is_active(now) {
            return Err(refused());
        }
        if token
            .last_used_at
            .is_none_or(|at| now - at > Duration::seconds(60))
        {
            self.catalog().touch_token(&token.id, now).await?;
        }
        Ok((Actor::token(&token), token))
    }

    /// Create the first catalog administrator, when there is none yet.
    pub async fn bootstrap_administrator(&self, name: &str, password: &str) -> Result<Principal> {
        if self.has_administrator().await? {
            return Err(Error::conflict("the catalog has an administrator already"));
        }
        self.add_user(&Actor::local(None), name, password, true)
            .await
    }

    /// Audit entries, newest first: every entry for a catalog administrator, an
    /// environment's entries for its Admins.
    pub async fn audit_log(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        query: AuditQuery,
    ) -> Result<Vec<AuditEntry>> {
        let mut query = query;
        match environment {
            Some(name) => {
                let env = self
                    .environment_for(actor, Some(name), Operation::ManageRoles)
                    .await?;
                query.environment_id = Some(env.id);
            }
            None => self.require_administrator(actor).await?,
        }
        query.limit = query.limit.clamp(1, 1000);
        Ok(self.catalog().audit(&query).await?)
    }

    /// Write one audit entry.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        environment: Option<EnvironmentId>,
        object: &str,
        outcome: AuditOutcome,
        address: Option<&str>,
    ) -> Result<()> {
        self.catalog()
            .append_audit(&AuditEntry {
                id: 0,
                at: Utc::now(),
                actor: actor.to_string(),
                action: action.to_string(),
                environment_id: environment,
                object: object.to_string(),
                outcome,
                address: address.map(str::to_string),
            })
            .await?;
        Ok(())
    }

    /// Write one audit entry for a change made in the environment named `environment`,
    /// so that its Admins read it in the environment's log; an environment that cannot be
    /// found (deleted, never created) leaves the entry in the catalog-wide log only.
    pub async fn audit_in(
        &self,
        actor: &str,
        action: &str,
        environment: Option<&str>,
        object: &str,
        outcome: AuditOutcome,
        address: Option<&str>,
    ) -> Result<()> {
        let id = match environment {
            Some(name) => self
                .catalog()
                .environment_by_name_or_id(name)
                .await
                .ok()
                .map(|e| e.id),
            None => None,
        };
        self.audit(actor, action, id, object, outcome, address)
            .await
    }

    pub(crate) async fn audit_change(
        &self,
        actor: &Actor,
        action: &str,
        environment: Option<EnvironmentId>,
        object: &str,
    ) -> Result<()> {
        let who = actor
            .name()
            .map_or_else(|| crate::DEFAULT_PRINCIPAL.to_string(), str::to_string);
        self.audit(
            &who,
            action,
            environment,
            object,
            AuditOutcome::Succeeded,
            None,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_letters_digits_and_a_few_marks_never_only_dots() {
        for ok in ["ada", "etl.nightly", "a-b_c+d@e", "x."] {
            assert!(check_name("token", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "token:x", &"x".repeat(129)] {
            assert!(check_name("token", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_lifetime_too_long_to_state_saturates() {
        assert_eq!(lifetime_days(2), Duration::days(2));
        assert_eq!(lifetime_days(i64::MAX), Duration::MAX);
        assert!(lifetime_days(i64::MAX) > max_token_lifetime());
    }
}
