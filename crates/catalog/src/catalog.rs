//! The [`Catalog`] trait, the contract every metadata store meets, and [`CatalogExt`],
//! the conveniences built on it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lakecdp_core::{
    ApiToken, Attachment, AuditEntry, AuditQuery, Connection, ConnectionId, Environment,
    EnvironmentId, Export, ExportId, Leadership, PasswordCredential, Principal,
    ReportingConnection, Revision, Role, RoleAssignment, RunEvent, RunId, RunRecord, RunStatus,
    SecretOwner, Session, Sharing, Throttle, Watermark,
};

use crate::error::{Error, Result};

/// The metadata store: environments, the runs of their processes, and the watermarks of
/// their incremental loads.
///
/// Every implementation passes the same conformance suite
/// (`lakecdp_catalog::conformance`, feature `testing`), which checks the guarantees below.
///
/// # Environments
///
/// - Ids are unique, and names are unique without regard to ASCII case: `Retail` and
///   `retail` cannot both exist. Creating a second environment with a taken id or name
///   fails with [`Error::AlreadyExists`].
/// - [`find_environment`](Catalog::find_environment) looks a name up without regard to
///   ASCII case; [`list_environments`](Catalog::list_environments) returns every
///   environment sorted by name, also without regard to ASCII case.
/// - [`update_environment`](Catalog::update_environment) replaces the name, region,
///   storage, output format, retention and `updated_at` of the environment with the same
///   id; `created_by` and `created_at` never change. An unknown id fails with
///   [`Error::NotFound`]; a new name that another environment holds fails with
///   [`Error::AlreadyExists`]. Changing only the case of its own name is allowed.
/// - [`delete_environment`](Catalog::delete_environment) removes the environment and all
///   of its runs and watermarks in one step; an unknown id fails with
///   [`Error::NotFound`].
/// - An environment whose name is empty, whose retention is 0 or whose storage
///   configuration does not validate is refused with [`Error::Invalid`].
/// - The storage configuration is stored as given and read back equal. It holds secret
///   *references* only (an environment variable's name or a file's path), so no secret
///   value ever reaches the catalog.
///
/// # Runs
///
/// - [`record_run`](Catalog::record_run) inserts a run; its environment must exist
///   ([`Error::NotFound`] otherwise) and its id must be new ([`Error::AlreadyExists`]
///   otherwise).
/// - [`update_run`](Catalog::update_run) changes the status, `finished_at`, `rows` and
///   `error` of the run with the same id; the environment, process and start time stay
///   as recorded. An unknown id fails with [`Error::NotFound`], a record naming another
///   environment than the stored run with [`Error::Conflict`]. A run whose stored
///   status is final ([`RunStatus::is_final`](lakecdp_core::RunStatus::is_final)) cannot
///   change any more: a different update fails with [`Error::Conflict`], the same one
///   again is accepted.
/// - [`list_runs`](Catalog::list_runs) returns at most `limit` runs of one environment,
///   newest `started_at` first (ties broken by id, newest first). Runs of other
///   environments never appear. An unknown environment fails with [`Error::NotFound`].
///
/// # Watermarks
///
/// - A watermark is identified by its environment, source and table; names are compared
///   exactly (case matters). An environment holds at most one watermark per source and
///   table.
/// - [`set_watermark`](Catalog::set_watermark) inserts the watermark, or replaces the
///   stored one with the same environment, source and table (its hour may move either
///   way). Its environment must exist ([`Error::NotFound`] otherwise). A watermark
///   with an empty source or table name, or whose hour is not the start of an hour, is
///   refused with [`Error::Invalid`].
/// - [`watermarks`](Catalog::watermarks) returns the watermarks of one source of one
///   environment, sorted by table name (compared byte by byte, as Rust orders
///   strings). Other sources and environments never appear; an environment or source
///   without watermarks, known or not, has none.
/// - [`clear_watermarks`](Catalog::clear_watermarks) removes the watermarks of one
///   source, all of its tables or the one named, and returns how many it removed (0
///   when there were none, also for an unknown environment).
///
/// # Principals and roles
///
/// - Principal names are unique without regard to ASCII case.
///   [`upsert_principal`](Catalog::upsert_principal) records a principal or keeps the
///   stored one (its kind and creation time do not change) and returns what is stored.
/// - [`set_role`](Catalog::set_role) gives a principal (recorded first if new) one role
///   in an environment, replacing its previous role there; the environment must exist.
///   [`remove_role`](Catalog::remove_role) removes it and says whether there was one.
///   [`role_of`](Catalog::role_of) reads the stored role (no creator rule: that is
///   [`lakecdp_core::access::effective_role`]'s), and
///   [`list_roles`](Catalog::list_roles) lists an environment's assignments sorted by
///   principal without regard to ASCII case.
///
/// # Connections and their secrets
///
/// - Connection names are unique per environment without regard to ASCII case
///   ([`Error::AlreadyExists`]); a connection that does not
///   [validate](lakecdp_core::Connection::validate) is [`Error::Invalid`]. Its
///   `secrets` field is ignored on write and, on read, lists the names of the secrets
///   stored for it, sorted.
/// - Secrets are stored as sealed blobs the catalog never opens
///   ([`set_connection_secret`](Catalog::set_connection_secret)); setting one replaces
///   only that secret and touches the connection's `updated_at`.
///   [`replace_sealed_secrets`](Catalog::replace_sealed_secrets) swaps every given blob
///   in one step (a master-key rotation), or none when one of them is unknown.
/// - Environments keep sealed secrets too (names unique per environment; the
///   environment must exist); they go with the environment.
/// - [`delete_connection`](Catalog::delete_connection) refuses a connection that exports
///   use with [`Error::ConnectionInUse`], naming them; otherwise it removes the
///   connection and its secrets.
///
/// # Exports
///
/// - Export names are unique per environment without regard to ASCII case; an export's
///   connection must exist in the same environment ([`Error::NotFound`]); an export that
///   does not [validate](lakecdp_core::Export::validate) is [`Error::Invalid`].
/// - Deleting an environment removes its roles, connections, secrets and exports.
///
/// # Accounts, groups and grants
///
/// - [`set_principal_flags`](Catalog::set_principal_flags) sets a recorded principal's
///   `disabled` and `administrator` flags ([`Error::NotFound`] for an unknown one).
///   [`upsert_principal`](Catalog::upsert_principal) never changes them.
/// - A password credential belongs to a recorded person ([`Error::NotFound`] otherwise,
///   [`Error::Invalid`] for a group or application); setting one replaces the previous.
/// - A group is a principal of kind `Group`. Its members are recorded principals that
///   are not groups (no nesting: [`Error::Invalid`]); adding a member twice, or removing
///   one that is not there, changes nothing and returns false.
///   [`grants`](Catalog::grants) returns the principal's own role assignment in an
///   environment and those of its groups, sorted by principal name without regard to
///   ASCII case. [`delete_group`](Catalog::delete_group) removes a group, its
///   memberships and its role assignments.
///
/// # Sessions and API tokens
///
/// - Sessions are found by their token's digest; their principal must be recorded.
///   [`touch_session`](Catalog::touch_session) moves `last_seen_at`;
///   [`delete_session`](Catalog::delete_session) and
///   [`delete_sessions_of`](Catalog::delete_sessions_of) end them at once.
/// - API tokens need a known environment; their names are unique per environment without
///   regard to ASCII case and their digests unique ([`Error::AlreadyExists`]). A revoked
///   token stays listed with its `revoked_at`; revoking it again changes nothing and
///   returns false. Deleting an environment removes its tokens.
///
/// # Sign-in throttles and the audit log
///
/// - [`record_sign_in_failure`](Catalog::record_sign_in_failure) counts a failure under
///   a key: a key whose first counted failure is older than `window` starts again at 1.
///   [`clear_sign_in_failures`](Catalog::clear_sign_in_failures) forgets the key.
/// - Audit entries are numbered in order of writing and never change; they outlive the
///   environment they name. [`audit`](Catalog::audit) reads them newest first, filtered
///   by environment and actor (ASCII case ignored), older than `before`, at most `limit`.
///
/// # Work shared by several instances
///
/// - A run's events are numbered 1, 2, ... in order of writing; the run must exist.
///   [`run_events`](Catalog::run_events) returns those after a number, in order. They go
///   with the run's environment.
/// - [`request_cancel`](Catalog::request_cancel) marks a run to be cancelled (the
///   instance running it stops it); an unknown run is [`Error::NotFound`].
/// - [`take_leadership`](Catalog::take_leadership) gives the named work to `holder` until
///   `expires_at` when no one holds it, its holder's time has passed, or `holder` holds it
///   already (a renewal); it returns who holds it afterwards.
///   [`release_leadership`](Catalog::release_leadership) lets it go if `holder` has it.
///
/// # Values
///
/// Timestamps are kept to the microsecond; finer digits are dropped. Row counts must
/// fit in an `i64`.
///
/// # Concurrency
///
/// A catalog may be shared by several tasks and several processes. Every method is
/// atomic: it either has its whole effect or none, and a change is visible to every
/// reader once the method has returned.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Store a new environment.
    async fn create_environment(&self, environment: &Environment) -> Result<()>;

    /// The environment with this id, if any.
    async fn get_environment(&self, id: EnvironmentId) -> Result<Option<Environment>>;

    /// The environment with this name, compared without regard to ASCII case, if any.
    async fn find_environment(&self, name: &str) -> Result<Option<Environment>>;

    /// Every environment, sorted by name without regard to ASCII case.
    async fn list_environments(&self) -> Result<Vec<Environment>>;

    /// Replace the stored environment with the same id.
    async fn update_environment(&self, environment: &Environment) -> Result<()>;

    /// Remove an environment and all of its runs and watermarks.
    async fn delete_environment(&self, id: EnvironmentId) -> Result<()>;

    /// Store a new run.
    async fn record_run(&self, run: &RunRecord) -> Result<()>;

    /// Store the new status, end time, row count and error of a recorded run.
    async fn update_run(&self, run: &RunRecord) -> Result<()>;

    /// The run with this id, if any.
    async fn get_run(&self, id: &RunId) -> Result<Option<RunRecord>>;

    /// At most `limit` runs of one environment, newest first.
    async fn list_runs(
        &self,
        environment_id: EnvironmentId,
        limit: usize,
    ) -> Result<Vec<RunRecord>>;

    /// The newest run of `process` in an environment, of `status` when given (e.g. the
    /// last unification that succeeded, however many runs came after it); `None` when
    /// there is none. An unknown environment is not found.
    async fn latest_run(
        &self,
        environment_id: EnvironmentId,
        process: &str,
        status: Option<RunStatus>,
    ) -> Result<Option<RunRecord>>;

    /// The watermarks of a source's tables, sorted by table name.
    ///
    /// Only the watermarks of `source` in `environment` are returned; an environment or
    /// source without any, including an unknown one, yields an empty list.
    async fn watermarks(&self, environment: EnvironmentId, source: &str) -> Result<Vec<Watermark>>;

    /// Insert or replace the watermark of (environment, source, table). The environment
    /// must exist ([`Error::NotFound`] otherwise); empty names or an hour that is not the
    /// start of an hour are [`Error::Invalid`].
    async fn set_watermark(&self, watermark: &Watermark) -> Result<()>;

    /// Remove the watermarks of a source (all its tables, or one); returns how many were
    /// removed.
    ///
    /// With `table` set, only that table's watermark goes; with `None`, every watermark
    /// of `source` in `environment` goes. Removing nothing is not an error.
    async fn clear_watermarks(
        &self,
        environment: EnvironmentId,
        source: &str,
        table: Option<&str>,
    ) -> Result<u64>;

    /// Store an applied revision of an environment's project file.
    ///
    /// Its number must be the next one: 1 for the first, the latest plus one after. A
    /// number already taken (another apply won the race) is [`Error::Conflict`]; a gap,
    /// a zero or an empty text is [`Error::Invalid`]; an unknown environment is
    /// [`Error::NotFound`]. Revisions are never changed once stored.
    async fn add_revision(&self, revision: &Revision) -> Result<()>;

    /// The revision `number` of an environment, or its latest with `None`; `None` when
    /// there is no such revision (an environment without any, or an unknown one).
    async fn revision(
        &self,
        environment: EnvironmentId,
        number: Option<u32>,
    ) -> Result<Option<Revision>>;

    /// Every revision of an environment, newest first (empty for an unknown one).
    async fn list_revisions(&self, environment: EnvironmentId) -> Result<Vec<Revision>>;

    /// The version of the stored schema.
    async fn schema_version(&self) -> Result<u32>;

    /// The runs whose `parent` is `parent` (the processes of a refresh), in start order.
    async fn child_runs(&self, parent: &RunId) -> Result<Vec<RunRecord>>;

    /// Record a principal unless one with its name exists; returns the stored one.
    async fn upsert_principal(&self, principal: &Principal) -> Result<Principal>;

    /// Every principal, sorted by name without regard to ASCII case.
    async fn list_principals(&self) -> Result<Vec<Principal>>;

    /// Give a principal its role in an environment, replacing any previous one.
    async fn set_role(&self, assignment: &RoleAssignment) -> Result<()>;

    /// Remove a principal's role in an environment; true when it had one.
    async fn remove_role(&self, environment: EnvironmentId, principal: &str) -> Result<bool>;

    /// The role stored for a principal in an environment.
    async fn role_of(&self, environment: EnvironmentId, principal: &str) -> Result<Option<Role>>;

    /// The role assignments of an environment, sorted by principal.
    async fn list_roles(&self, environment: EnvironmentId) -> Result<Vec<RoleAssignment>>;

    /// Store a new connection (its secrets are set separately).
    async fn create_connection(&self, connection: &Connection) -> Result<()>;

    /// Replace the name, settings, sharing and `updated_at` of a stored connection.
    async fn update_connection(&self, connection: &Connection) -> Result<()>;

    /// The connection of an environment with this name (ASCII case ignored), if any.
    async fn find_connection(
        &self,
        environment: EnvironmentId,
        name: &str,
    ) -> Result<Option<Connection>>;

    /// The connection with this id, if any.
    async fn get_connection(&self, id: ConnectionId) -> Result<Option<Connection>>;

    /// The connections of an environment, sorted by name without regard to ASCII case.
    async fn list_connections(&self, environment: EnvironmentId) -> Result<Vec<Connection>>;

    /// Remove a connection and its secrets, unless exports use it.
    async fn delete_connection(&self, id: ConnectionId) -> Result<()>;

    /// Store or replace one sealed secret of a connection.
    async fn set_connection_secret(
        &self,
        id: ConnectionId,
        name: &str,
        sealed: &[u8],
    ) -> Result<()>;

    /// One sealed secret of a connection, if stored.
    async fn connection_secret(&self, id: ConnectionId, name: &str) -> Result<Option<Vec<u8>>>;

    /// Every sealed secret of every connection and environment.
    async fn sealed_secrets(&self) -> Result<Vec<SealedSecret>>;

    /// Store or replace one sealed secret of an environment.
    async fn set_environment_secret(
        &self,
        environment: EnvironmentId,
        name: &str,
        sealed: &[u8],
    ) -> Result<()>;

    /// One sealed secret of an environment, if stored.
    async fn environment_secret(
        &self,
        environment: EnvironmentId,
        name: &str,
    ) -> Result<Option<Vec<u8>>>;

    /// The names of an environment's sealed secrets, sorted.
    async fn environment_secret_names(&self, environment: EnvironmentId) -> Result<Vec<String>>;

    /// Remove one sealed secret of an environment; true when it existed.
    async fn remove_environment_secret(
        &self,
        environment: EnvironmentId,
        name: &str,
    ) -> Result<bool>;

    /// Replace the blobs of the given secrets in one step.
    async fn replace_sealed_secrets(&self, secrets: &[SealedSecret]) -> Result<()>;

    /// Replace every sealed secret of the catalog in one transaction that sees them all:
    /// `read` must be exactly what [`sealed_secrets`](Catalog::sealed_secrets) returns
    /// inside the transaction (a secret sealed, changed or removed since it was read is
    /// [`Error::Conflict`], and nothing changes); then each of `replacements` replaces
    /// its blob. Master-key rotation uses it so that no secret is reverted or left
    /// under the old key.
    async fn rotate_sealed_secrets(
        &self,
        read: &[SealedSecret],
        replacements: &[SealedSecret],
    ) -> Result<()>;

    /// Store a new export.
    async fn create_export(&self, export: &Export) -> Result<()>;

    /// Replace a stored export (all but its id, environment, creator and creation time).
    async fn update_export(&self, export: &Export) -> Result<()>;

    /// The export of an environment with this name (ASCII case ignored), if any.
    async fn find_export(&self, environment: EnvironmentId, name: &str) -> Result<Option<Export>>;

    /// The exports of an environment, sorted by name without regard to ASCII case.
    async fn list_exports(&self, environment: EnvironmentId) -> Result<Vec<Export>>;

    /// Remove an export.
    async fn delete_export(&self, id: ExportId) -> Result<()>;

    /// The principal with this name (ASCII case ignored), if recorded.
    async fn get_principal(&self, name: &str) -> Result<Option<Principal>>;

    /// Set a principal's `disabled` and `administrator` flags.
    async fn set_principal_flags(
        &self,
        name: &str,
        disabled: bool,
        administrator: bool,
    ) -> Result<()>;

    /// Store or replace a person's password credential.
    async fn set_password(&self, credential: &PasswordCredential) -> Result<()>;

    /// A person's password credential, if one is set.
    async fn password(&self, principal: &str) -> Result<Option<PasswordCredential>>;

    /// Add a principal to a group; false when it was a member already.
    async fn add_group_member(&self, group: &str, member: &str) -> Result<bool>;

    /// Remove a principal from a group; false when it was not a member.
    async fn remove_group_member(&self, group: &str, member: &str) -> Result<bool>;

    /// The members of a group, sorted without regard to ASCII case.
    async fn group_members(&self, group: &str) -> Result<Vec<String>>;

    /// The groups a principal belongs to, sorted without regard to ASCII case.
    async fn groups_of(&self, principal: &str) -> Result<Vec<String>>;

    /// Remove a group, its memberships and its role assignments; false when unknown.
    async fn delete_group(&self, group: &str) -> Result<bool>;

    /// The role assignments that hold for a principal in an environment: its own and its
    /// groups'.
    async fn grants(
        &self,
        environment: EnvironmentId,
        principal: &str,
    ) -> Result<Vec<RoleAssignment>>;

    /// Store a new session.
    async fn create_session(&self, session: &Session) -> Result<()>;

    /// The session whose token has this digest, if any.
    async fn session(&self, token_hash: &str) -> Result<Option<Session>>;

    /// Record a use of a session; false when there is no such session.
    async fn touch_session(&self, token_hash: &str, at: DateTime<Utc>) -> Result<bool>;

    /// End a session; false when there was none.
    async fn delete_session(&self, token_hash: &str) -> Result<bool>;

    /// End every session of a principal; returns how many.
    async fn delete_sessions_of(&self, principal: &str) -> Result<u64>;

    /// Store a new API token.
    async fn create_token(&self, token: &ApiToken) -> Result<()>;

    /// The token whose whole value has this digest, if any.
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>>;

    /// The tokens of an environment, sorted by name without regard to ASCII case.
    async fn list_tokens(&self, environment: EnvironmentId) -> Result<Vec<ApiToken>>;

    /// Revoke an environment's token by name; false when it is unknown or revoked already.
    async fn revoke_token(
        &self,
        environment: EnvironmentId,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Record a use of a token.
    async fn touch_token(&self, id: &str, at: DateTime<Utc>) -> Result<()>;

    /// Count one failed sign-in under `key`; returns the count in the current window.
    async fn record_sign_in_failure(
        &self,
        key: &str,
        at: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<Throttle>;

    /// The failures counted under `key`, if any.
    async fn sign_in_failures(&self, key: &str) -> Result<Option<Throttle>>;

    /// Forget the failures counted under `key`.
    async fn clear_sign_in_failures(&self, key: &str) -> Result<()>;

    /// Append an entry to the audit log; returns its number.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<i64>;

    /// Audit entries, newest first.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;

    /// Append an event to a run; returns its number.
    async fn append_run_event(&self, run: &RunId, at: DateTime<Utc>, body: &str) -> Result<u64>;

    /// The events of a run after number `after`, in order, at most `limit`.
    async fn run_events(&self, run: &RunId, after: u64, limit: usize) -> Result<Vec<RunEvent>>;

    /// Ask for a run to be cancelled.
    async fn request_cancel(&self, run: &RunId, at: DateTime<Utc>) -> Result<()>;

    /// Whether a run's cancellation was asked for.
    async fn cancel_requested(&self, run: &RunId) -> Result<bool>;

    /// The catalog's key `name`: 32 random bytes made on first use (`fresh`, kept only
    /// when no process made one first), then the same for every process that uses the
    /// catalog.
    async fn key(&self, name: &str, fresh: [u8; 32], now: DateTime<Utc>) -> Result<[u8; 32]>;

    /// The sharing of an environment's outputs, if it is enabled.
    async fn sharing(&self, environment: EnvironmentId) -> Result<Option<Sharing>>;

    /// Record the sharing of an environment, replacing what was recorded;
    /// [`Error::NotFound`] for an unknown environment.
    async fn set_sharing(&self, sharing: &Sharing) -> Result<()>;

    /// Forget the sharing of an environment; false when none was recorded.
    async fn remove_sharing(&self, environment: EnvironmentId) -> Result<bool>;

    /// Attach an organisation unless it is attached already; the attachment the catalog
    /// holds for it afterwards (the one given, or the earlier one, whose account may
    /// differ: the caller refuses that).
    async fn attach(&self, attachment: &Attachment) -> Result<Attachment>;

    /// The attached organisations, by name without regard to ASCII case.
    async fn attachments(&self) -> Result<Vec<Attachment>>;

    /// Store a reporting connection of its environment, replacing the one of the same
    /// name (without regard to ASCII case); `NotFound` when the environment is gone.
    async fn put_reporting_connection(&self, connection: &ReportingConnection) -> Result<()>;

    /// The reporting connections of an environment, by name.
    async fn reporting_connections(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<ReportingConnection>>;

    /// Remove a reporting connection; false when there was none of that name.
    async fn delete_reporting_connection(
        &self,
        environment: EnvironmentId,
        name: &str,
    ) -> Result<bool>;

    /// Detach an organisation; false when it was not attached.
    async fn detach(&self, organization: &str) -> Result<bool>;

    /// Take or renew the named work for `holder` until `expires_at`, if free, expired at
    /// `now`, or held by `holder`; returns who holds it afterwards.
    async fn take_leadership(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Leadership>;

    /// Let the named work go if `holder` holds it.
    async fn release_leadership(&self, name: &str, holder: &str) -> Result<()>;
}

/// A secret as the catalog holds it: sealed by the vault.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// The connection or environment it belongs to.
    pub owner: SecretOwner,
    /// The secret's name, e.g. `password`.
    pub name: String,
    /// The sealed blob.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("owner", &self.owner)
            .field("name", &self.name)
            .field("sealed", &format_args!("<{} bytes>", self.sealed.len()))
            .finish()
    }
}

/// Conveniences over any [`Catalog`]; implemented for every catalog.
#[async_trait]
pub trait CatalogExt: Catalog {
    /// The environment with this id, or [`Error::NotFound`].
    async fn environment(&self, id: EnvironmentId) -> Result<Environment> {
        self.get_environment(id)
            .await?
            .ok_or_else(|| Error::environment_not_found(id.to_string()))
    }

    /// The environment a person means by `name_or_id`: an id (with or without the `ci_`
    /// folder prefix) first, then a name without regard to ASCII case; otherwise
    /// [`Error::NotFound`].
    async fn environment_by_name_or_id(&self, name_or_id: &str) -> Result<Environment> {
        if let Ok(id) = name_or_id.trim().parse::<EnvironmentId>() {
            if let Some(environment) = self.get_environment(id).await? {
                return Ok(environment);
            }
        }
        self.find_environment(name_or_id)
            .await?
            .ok_or_else(|| Error::environment_not_found(name_or_id))
    }

    /// The run with this id, or [`Error::NotFound`].
    async fn run(&self, id: &RunId) -> Result<RunRecord> {
        self.get_run(id)
            .await?
            .ok_or_else(|| Error::run_not_found(id.to_string()))
    }
}

impl<T: Catalog + ?Sized> CatalogExt for T {}
