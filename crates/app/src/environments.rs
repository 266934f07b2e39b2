//! Environments: check, create, apply, update, show, list and delete, and the
//! environment's own sealed secrets.
//!
//! Creating or changing an environment runs the prerequisite checks first and saves
//! nothing when they fail (an update may be forced). Every check, creation and update
//! is a run in the history.

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use lakecdp_core::{
    ConfigErrors, Environment, Operation, PartitionFormat, ProjectFile, RunRecord, RunStatus,
    SecretOwner, SecretRef, StorageConfig,
};
use lakecdp_lake::check::{self, CheckOptions};
use lakecdp_lake::{CheckReport, Lake};

use crate::app::{Actor, App};
use crate::error::{Error, Result, ResultExt};
use crate::observe::{Event, Observer};
use crate::revisions::RevisionChange;

/// An environment with what its storage holds and its profiles entitle to.
#[derive(Debug, Clone)]
pub struct EnvironmentDetails {
    /// The environment.
    pub environment: Environment,
    /// The profiles of the last unification that succeeded.
    pub profiles: Option<u64>,
    /// Bytes in its lake folder, or why the lake could not be read.
    pub lake_bytes: std::result::Result<u64, String>,
}

impl EnvironmentDetails {
    /// Database and file capacity in GB the profiles entitle to.
    pub fn capacity(&self) -> (u64, u64) {
        capacity(self.profiles.unwrap_or(0))
    }
}

/// Database and file capacity in GB that `profiles` customer profiles entitle to: 15 GB
/// and 20 GB per started 100,000 profiles (one block at least).
pub fn capacity(profiles: u64) -> (u64, u64) {
    let blocks = profiles.div_ceil(100_000).max(1);
    (blocks * 15, blocks * 20)
}

/// What `env update` changes; `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentChanges {
    /// A new name.
    pub rename: Option<String>,
    /// A new region; empty removes it.
    pub region: Option<String>,
    /// Another output format.
    pub output_format: Option<PartitionFormat>,
    /// Another retention.
    pub retention_runs: Option<u32>,
    /// ADLS: where the account key is (`env:`, `file:` or `vault:`).
    pub account_key: Option<String>,
    /// ADLS: where the SAS token is.
    pub sas_token: Option<String>,
    /// ADLS: where the service principal's secret is.
    pub client_secret: Option<String>,
    /// S3: where the access key id is.
    pub access_key_id: Option<String>,
    /// S3: where the secret access key is.
    pub secret_access_key: Option<String>,
    /// Save even when the checks fail.
    pub force: bool,
}

/// How a new environment is created.
#[derive(Debug, Clone, Copy, Default)]
pub struct Creation {
    /// Create the container (or bucket) when it is missing.
    pub create_container: bool,
    /// Re-attach a lake folder another environment created (its marker says so).
    pub adopt: bool,
}

/// What `apply` or `env update` did.
#[derive(Debug, Clone)]
pub enum Saved {
    /// The environment was created.
    Created(Environment),
    /// It was updated with these changes.
    Updated(Environment, Vec<String>),
    /// Nothing changed.
    UpToDate(Environment),
}

fn failure_summary(report: &CheckReport) -> String {
    report
        .failures()
        .map(|f| f.check.title())
        .collect::<Vec<_>>()
        .join(", ")
}

fn changes(old: &Environment, new: &Environment) -> Vec<String> {
    let mut out = Vec::new();
    if old.name != new.name {
        out.push(format!("name: {} -> {}", old.name, new.name));
    }
    if old.region != new.region {
        out.push(format!(
            "region: {} -> {}",
            old.region.as_deref().unwrap_or("-"),
            new.region.as_deref().unwrap_or("-")
        ));
    }
    if old.output_format != new.output_format {
        out.push(format!(
            "output format: {} -> {}",
            old.output_format, new.output_format
        ));
    }
    if old.retention_runs != new.retention_runs {
        out.push(format!(
            "retention: {} -> {} runs",
            old.retention_runs, new.retention_runs
        ));
    }
    if old.storage != new.storage {
        out.push(format!(
            "storage: {} -> {}",
            old.storage.describe(),
            new.storage.describe()
        ));
    }
    out
}

/// Where a storage sends its secrets: its account or bucket and its endpoint; `None` for
/// a local folder, which has none.
fn secrets_destination(storage: &StorageConfig) -> Option<String> {
    match storage {
        StorageConfig::Local(_) => None,
        StorageConfig::Adls(a) => Some(format!(
            "{} (endpoint {})",
            storage.describe(),
            a.endpoint.as_deref().unwrap_or("of Azure")
        )),
        StorageConfig::S3(b) => Some(format!(
            "s3://{} (endpoint {})",
            b.bucket,
            b.endpoint.as_deref().unwrap_or("of AWS")
        )),
    }
}

/// A storage moved to another account, bucket or endpoint must name its secrets anew in
/// the same change: a reference kept from before would send the old account's keys to
/// the new destination, which whoever edited the project file chose.
fn secrets_follow_the_storage(old: &Environment, new: &Environment) -> Result<()> {
    let (Some(from), Some(to)) = (
        secrets_destination(&old.storage),
        secrets_destination(&new.storage),
    ) else {
        return Ok(());
    };
    if from == to {
        return Ok(());
    }
    let before = old.storage.secret_refs();
    let kept: Vec<String> = new
        .storage
        .secret_refs()
        .into_iter()
        .filter(|(field, r)| before.iter().any(|(f, b)| f == field && b == r))
        .map(|(field, r)| format!("{field} = {r}"))
        .collect();
    if kept.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "the storage moves from {from} to {to} but keeps the secret references of the old one ({}), which would send its keys to the new destination: name the new storage's secrets in the same change (e.g. seal them with `lakecdp env secret set account_key_new --from env:VAR` and write `account_key = {{ vault = \"account_key_new\" }}`)",
        kept.join(", ")
    )))
}

fn parse_ref(flag: &str, value: &str) -> Result<SecretRef> {
    match value.split_once(':') {
        Some(("env", var)) if !var.is_empty() => Ok(SecretRef::Env(var.to_string())),
        Some(("file", path)) if !path.is_empty() => Ok(SecretRef::File(path.into())),
        Some(("vault", name)) if !name.is_empty() => Ok(SecretRef::Vault(name.to_string())),
        _ => Err(Error::invalid(format!(
            "--{flag} takes where the secret is, `env:VARIABLE`, `file:PATH` or `vault:NAME` (sealed with `lakecdp env secret set`), never the secret itself"
        ))),
    }
}

impl App {
    async fn run_checks(
        &self,
        env: &Environment,
        create_container: bool,
        observer: &dyn Observer,
    ) -> Arc<CheckReport> {
        observer.event(&Event::ChecksStarted {
            environment: env.name.clone(),
            storage: format!(
                "{} storage at {}",
                env.storage.kind(),
                env.storage.describe()
            ),
        });
        // sealed secrets that cannot be opened stay unresolved: the configuration check
        // then names them and the fix
        let sealed = self.storage_secrets(env).await.unwrap_or_default();
        let each = |r: &check::CheckResult| observer.event(&Event::CheckResult(r.clone()));
        let report = Arc::new(
            check::run_observed(
                &env.storage,
                &CheckOptions {
                    environment_id: env.id,
                    environment_name: env.name.clone(),
                    region: env.region.clone(),
                    create_container,
                    project_dir: Some(self.project_dir().to_path_buf()),
                    sealed,
                },
                &each,
            )
            .await,
        );
        observer.event(&Event::ChecksFinished(Arc::clone(&report)));
        report
    }

    async fn record_check(
        &self,
        env: &Environment,
        report: Option<&CheckReport>,
        started: RunRecord,
    ) {
        let mut run = started;
        run.finished_at = Some(Utc::now());
        match report {
            Some(r) if !r.passed() => {
                run.status = RunStatus::Failed;
                run.error = Some(format!("failed checks: {}", failure_summary(r)));
            }
            _ => run.status = RunStatus::Succeeded,
        }
        // run history is a convenience: a failure to record it must not hide the outcome
        if let Err(e) = self.catalog().record_run(&run).await {
            tracing::warn!(environment = %env.name, error = %e, "could not record the run");
        }
    }

    /// The environment named, or the project file's (as stored, or as it would be
    /// created), and whether it is stored. A stored environment needs Viewer.
    pub async fn environment_to_check(
        &self,
        actor: &Actor,
        name: Option<&str>,
    ) -> Result<(Environment, bool)> {
        Ok(match name {
            Some(name) => {
                let env = self.environment(Some(name)).await?;
                self.require(actor, &env, Operation::ViewEnvironment)
                    .await?;
                (env, true)
            }
            None => {
                let project = self.load_project()?;
                match self
                    .catalog()
                    .find_environment(&project.environment.name)
                    .await?
                {
                    Some(existing) => {
                        self.require(actor, &existing, Operation::ViewEnvironment)
                            .await?;
                        (self.environment_of(actor, &project, Some(&existing)), true)
                    }
                    None => (self.environment_of(actor, &project, None), false),
                }
            }
        })
    }

    /// Run the prerequisite checks of an environment ([`App::environment_to_check`]).
    /// Fails when a check fails; the report is observed either way. An environment the
    /// catalog holds (whatever `stored` says) needs Viewer, and the check is recorded in
    /// its runs.
    pub async fn check_environment(
        &self,
        actor: &Actor,
        env: &Environment,
        stored: bool,
        create_container: bool,
        observer: &dyn Observer,
    ) -> Result<Arc<CheckReport>> {
        let held = self.catalog().get_environment(env.id).await?;
        let stored = stored || held.is_some();
        if stored {
            self.require(
                actor,
                held.as_ref().unwrap_or(env),
                Operation::ViewEnvironment,
            )
            .await?;
        }
        let started = RunRecord::start(env.id, "env-check");
        let report = self.run_checks(env, create_container, observer).await;
        if stored {
            self.record_check(env, Some(&report), started).await;
        }
        if report.passed() {
            Ok(report)
        } else {
            Err(Error::invalid(format!(
                "prerequisite checks failed: {}",
                failure_summary(&report)
            )))
        }
    }

    async fn create_environment(
        &self,
        actor: &Actor,
        env: Environment,
        create: &Creation,
        observer: &dyn Observer,
    ) -> Result<Environment> {
        let create_container = create.create_container;
        if let Some(clash) = self.catalog().get_environment(env.id).await? {
            return Err(Error::conflict(format!(
                "the id {} is already used by environment `{}`",
                env.id, clash.name
            )));
        }
        let started = RunRecord::start(env.id, "env-create");
        let report = self.run_checks(&env, create_container, observer).await;
        if !report.passed() {
            return Err(Error::invalid(format!(
                "environment `{}` was not created: prerequisite checks failed ({}); fix them and run again",
                env.name,
                failure_summary(&report)
            )));
        }
        let handle = self.open_storage(&env).await?;
        let lake = Lake::new(&handle, env.id);
        // the lake folder's owner: a folder another catalog created (an explicit id in
        // the project file can name it) is never taken over by accident, because its
        // retention and `--purge` would then delete the other's data
        let marker_path = lake.internal("environment.json");
        if !create.adopt && lake.exists(&marker_path).await? {
            let owner: serde_json::Value =
                serde_json::from_slice(&lake.get(&marker_path).await?).unwrap_or_default();
            return Err(Error::conflict(format!(
                "the lake folder {}/{} already belongs to environment `{}` created by {} at {}; \
                 it was not created. Pass --adopt to re-attach that folder on purpose, or remove \
                 `id` from the project file to get a new folder",
                env.storage.describe(),
                env.id.folder(),
                owner["name"].as_str().unwrap_or("?"),
                owner["createdBy"].as_str().unwrap_or("?"),
                owner["createdAt"].as_str().unwrap_or("?"),
            )));
        }
        let marker = serde_json::json!({
            "environmentId": env.id,
            "name": env.name,
            "createdAt": env.created_at,
            "createdBy": env.created_by,
            "adopted": create.adopt,
        });
        lake.put(&marker_path, serde_json::to_vec_pretty(&marker)?)
            .await?;
        lakecdp_catalog::Acting::new(self.catalog(), actor.creator())
            .create_environment(&env)
            .await?;
        self.record_check(&env, None, started).await;
        Ok(env)
    }

    /// Create the project file's environment (any principal; it becomes its Admin).
    pub async fn create_environment_from_project(
        &self,
        actor: &Actor,
        create: &Creation,
        observer: &dyn Observer,
    ) -> Result<Environment> {
        let project = self.load_project()?;
        if self
            .catalog()
            .find_environment(&project.environment.name)
            .await?
            .is_some()
        {
            return Err(Error::conflict(format!(
                "environment `{}` already exists; run `lakecdp apply` to update it from {}",
                project.environment.name,
                self.project_file().display()
            )));
        }
        let env = self.environment_of(actor, &project, None);
        self.create_environment(actor, env, create, observer).await
    }

    /// Create an environment from a project file's text and store the text as its
    /// first revision: how a server creates one (the server's administrators only; the
    /// creator becomes its Admin). Local paths must lie under the server's data root.
    pub async fn create_environment_from_text(
        &self,
        actor: &Actor,
        text: &str,
        create: &Creation,
        observer: &dyn Observer,
    ) -> Result<Environment> {
        self.require_administrator(actor).await?;
        let project = ProjectFile::parse(text).context("the project file")?;
        if let Some(existing) = self
            .catalog()
            .find_environment(&project.environment.name)
            .await?
        {
            return Err(Error::conflict(format!(
                "environment `{}` already exists: apply the file as its next revision instead",
                existing.name
            )));
        }
        let base = self.revision_base();
        let env = self.environment_of(actor, &project, None);
        self.check_storage(&env.storage, Path::new(&base))?;
        self.check_project_files(&project, Path::new(&base))?;
        let env = self
            .create_environment(actor, env, create, observer)
            .await?;
        self.store_revision(&actor.name_for(&env), &env, text)
            .await?;
        Ok(env)
    }

    async fn save_update(
        &self,
        actor: &Actor,
        old: &Environment,
        new: Environment,
        create_container: bool,
        force: bool,
        observer: &dyn Observer,
    ) -> Result<Saved> {
        let changed = changes(old, &new);
        self.require(
            actor,
            old,
            if changed.is_empty() {
                Operation::ViewEnvironment
            } else {
                Operation::EditEnvironment
            },
        )
        .await?;
        if changed.is_empty() {
            return Ok(Saved::UpToDate(new));
        }
        secrets_follow_the_storage(old, &new)?;
        observer.event(&Event::EnvironmentChanges(changed.clone()));
        let started = RunRecord::start(new.id, "env-update");
        let report = self.run_checks(&new, create_container, observer).await;
        if !report.passed() && !force {
            self.record_check(&new, Some(&report), started).await;
            return Err(Error::invalid(format!(
                "environment `{}` was not updated: prerequisite checks failed ({}); fix them, or pass --force to save anyway",
                old.name,
                failure_summary(&report)
            )));
        }
        self.acting(actor, old).update_environment(&new).await?;
        self.record_check(&new, None, started).await;
        Ok(Saved::Updated(new, changed))
    }

    /// Create or update the project file's environment, and store the file as its next
    /// revision unless it is the applied one already. The environment's own settings
    /// need Admin to change; the rest of the project Contributor.
    pub async fn apply(
        &self,
        actor: &Actor,
        create_container: bool,
        observer: &dyn Observer,
    ) -> Result<(Saved, RevisionChange)> {
        let create = Creation {
            create_container,
            adopt: false,
        };
        self.apply_with(actor, &create, observer).await
    }

    /// [`App::apply`], creating the environment as `create` says.
    pub async fn apply_with(
        &self,
        actor: &Actor,
        create: &Creation,
        observer: &dyn Observer,
    ) -> Result<(Saved, RevisionChange)> {
        let create_container = create.create_container;
        let (text, project) = self.project_text()?;
        let saved = match self
            .catalog()
            .find_environment(&project.environment.name)
            .await?
        {
            None => {
                let env = self.environment_of(actor, &project, None);
                self.create_environment(actor, env, create, observer)
                    .await
                    .map(Saved::Created)?
            }
            Some(existing) => {
                if let Some(id) = project.environment.id {
                    if id != existing.id {
                        return Err(Error::conflict(format!(
                            "environment `{}` has id {} in the catalog, but the project file says {id}; remove `id` from the project file or rename the environment",
                            existing.name, existing.id
                        )));
                    }
                }
                let new = self.environment_of(actor, &project, Some(&existing));
                self.save_update(actor, &existing, new, create_container, false, observer)
                    .await?
            }
        };
        let env = match &saved {
            Saved::Created(e) | Saved::Updated(e, _) | Saved::UpToDate(e) => e,
        };
        let change = self.apply_revision(actor, env, &text).await?;
        Ok((saved, change))
    }

    /// Store a project file's text as the next applied revision of `environment`
    /// (Contributor; nothing changes when it is the applied revision already). Its
    /// `[environment]` must name this environment and keep its settings: changing the
    /// storage runs the prerequisite checks, which `lakecdp apply` does.
    pub async fn apply_text(
        &self,
        actor: &Actor,
        environment: &str,
        text: &str,
    ) -> Result<RevisionChange> {
        let env = self
            .environment_for(actor, Some(environment), Operation::ViewEnvironment)
            .await?;
        let project = ProjectFile::parse(text).context("the project file")?;
        if !project.environment.name.eq_ignore_ascii_case(&env.name) {
            return Err(Error::invalid(format!(
                "the project file is for environment `{}`, not `{}`: its [environment] name must be the environment's",
                project.environment.name, env.name
            )));
        }
        let new = self.environment_of(actor, &project, Some(&env));
        let differences = changes(&env, &new);
        if !differences.is_empty() {
            return Err(Error::invalid(format!(
                "the project file changes the environment's settings ({}): apply it with `lakecdp apply`, which runs the prerequisite checks first",
                differences.join("; ")
            )));
        }
        self.check_project_files(&project, Path::new(&self.revision_base()))?;
        self.apply_revision(actor, &env, text).await
    }

    /// The bytes under the environment's lake folder, measured at most once a minute
    /// (listing a large lake takes long; a page showing the environment should not).
    pub(crate) async fn lake_bytes(&self, env: &Environment) -> std::result::Result<u64, String> {
        if let Some(bytes) = self.cached_lake_bytes(env.id) {
            return Ok(bytes);
        }
        match self.open_storage(env).await {
            Ok(handle) => {
                let bytes = Lake::new(&handle, env.id)
                    .list("")
                    .await
                    .map(|o| o.iter().map(|m| m.size).sum())
                    .unwrap_or(0);
                self.cache_lake_bytes(env.id, bytes);
                Ok(bytes)
            }
            Err(e) => Err(e.full_message()),
        }
    }

    /// Change an environment's settings (Admin); the checks run first.
    pub async fn update_environment(
        &self,
        actor: &Actor,
        name: &str,
        c: &EnvironmentChanges,
        observer: &dyn Observer,
    ) -> Result<Saved> {
        let old = self.environment(Some(name)).await?;
        self.require(actor, &old, Operation::EditEnvironment)
            .await?;
        let mut new = old.clone();
        new.updated_at = Utc::now();
        if let Some(n) = &c.rename {
            new.name = n.clone();
        }
        if let Some(r) = &c.region {
            new.region = (!r.is_empty()).then(|| r.clone());
        }
        if let Some(f) = c.output_format {
            new.output_format = f;
        }
        if let Some(n) = c.retention_runs {
            new.retention_runs = n;
        }
        let wrong_kind = |flag: &str, kind: &str| {
            Error::invalid(format!(
                "--{flag} applies to {kind} storage; environment `{}` uses {} storage",
                old.name,
                old.storage.kind()
            ))
        };
        match &mut new.storage {
            StorageConfig::Adls(s) => {
                if let Some(v) = &c.account_key {
                    s.account_key = Some(parse_ref("account-key", v)?);
                    s.sas_token = None;
                }
                if let Some(v) = &c.sas_token {
                    s.sas_token = Some(parse_ref("sas-token", v)?);
                    s.account_key = None;
                }
                if let Some(v) = &c.client_secret {
                    s.client_secret = Some(parse_ref("client-secret", v)?);
                }
                if c.access_key_id.is_some() || c.secret_access_key.is_some() {
                    return Err(wrong_kind("access-key-id", "s3"));
                }
            }
            StorageConfig::S3(s) => {
                if let Some(v) = &c.access_key_id {
                    s.access_key_id = Some(parse_ref("access-key-id", v)?);
                }
                if let Some(v) = &c.secret_access_key {
                    s.secret_access_key = Some(parse_ref("secret-access-key", v)?);
                }
                if c.account_key.is_some() || c.sas_token.is_some() || c.client_secret.is_some() {
                    return Err(wrong_kind("account-key", "adls"));
                }
            }
            StorageConfig::Local(_) => {
                if c.account_key.is_some()
                    || c.sas_token.is_some()
                    || c.client_secret.is_some()
                    || c.access_key_id.is_some()
                    || c.secret_access_key.is_some()
                {
                    return Err(Error::invalid(format!(
                        "environment `{}` uses local storage, which has no credentials",
                        old.name
                    )));
                }
            }
        }
        let errors = new.storage.validate();
        if !errors.is_empty() {
            return Err(ConfigErrors(errors).into());
        }
        // the project file of this environment says the same afterwards: edited (its
        // comments and layout kept), validated before anything changes, written and
        // stored as the next revision once the environment is saved
        let edited = if self.is_project_environment(&old) {
            Some(self.edited_environment(c)?)
        } else {
            None
        };
        let saved = self
            .save_update(actor, &old, new, false, c.force, observer)
            .await?;
        if let (Some(doc), Saved::Updated(env, _)) = (edited, &saved) {
            let text = self.save_project(&doc)?;
            self.apply_revision(actor, env, &text).await?;
        }
        Ok(saved)
    }

    /// Whether `env` is the environment of the project file on disk (on the command
    /// line; a server has no project file of its own).
    fn is_project_environment(&self, env: &Environment) -> bool {
        !self.is_confined()
            && !self.has_default_environment()
            && self
                .load_project()
                .is_ok_and(|p| p.environment.name.eq_ignore_ascii_case(&env.name))
    }

    /// The project file with `c` made in its `[environment]`, validated.
    fn edited_environment(&self, c: &EnvironmentChanges) -> Result<toml_edit::DocumentMut> {
        use toml_edit::{value, InlineTable};
        let mut doc = self.edit_project()?;
        let not_editable = || {
            Error::invalid("the project file's `[environment]` must be a table to be edited here")
        };
        let env = doc
            .get_mut("environment")
            .and_then(|i| i.as_table_like_mut())
            .ok_or_else(not_editable)?;
        if let Some(n) = &c.rename {
            env.insert("name", value(n.as_str()));
        }
        if let Some(r) = &c.region {
            if r.is_empty() {
                env.remove("region");
            } else {
                env.insert("region", value(r.as_str()));
            }
        }
        if let Some(f) = c.output_format {
            env.insert("output_format", value(f.extension()));
        }
        if let Some(n) = c.retention_runs {
            env.insert("retention_runs", value(i64::from(n)));
        }
        let secrets = [
            (
                "account_key",
                "account-key",
                &c.account_key,
                Some("sas_token"),
            ),
            ("sas_token", "sas-token", &c.sas_token, Some("account_key")),
            ("client_secret", "client-secret", &c.client_secret, None),
            ("access_key_id", "access-key-id", &c.access_key_id, None),
            (
                "secret_access_key",
                "secret-access-key",
                &c.secret_access_key,
                None,
            ),
        ];
        if secrets.iter().any(|(_, _, v, _)| v.is_some()) {
            let storage = env
                .get_mut("storage")
                .and_then(|i| i.as_table_like_mut())
                .ok_or_else(not_editable)?;
            for (key, flag, given, replaces) in secrets {
                let Some(given) = given else { continue };
                let mut inline = InlineTable::new();
                match parse_ref(flag, given)? {
                    SecretRef::Env(v) => inline.insert("env", v.into()),
                    SecretRef::File(p) => inline.insert("file", p.display().to_string().into()),
                    SecretRef::Vault(n) => inline.insert("vault", n.into()),
                };
                storage.insert(key, value(inline));
                if let Some(other) = replaces {
                    storage.remove(other);
                }
            }
        }
        let mut text = doc.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        ProjectFile::parse(&text).context(
            "the project file with these changes would not be valid; nothing was changed",
        )?;
        Ok(doc)
    }

    /// Every environment the actor may see.
    pub async fn list_environments(&self, actor: &Actor) -> Result<Vec<Environment>> {
        let mut out = Vec::new();
        for env in self.catalog().list_environments().await? {
            if self
                .require(actor, &env, Operation::ViewEnvironment)
                .await
                .is_ok()
            {
                out.push(env);
            }
        }
        Ok(out)
    }

    /// An environment with its profiles and lake size (Viewer).
    pub async fn show_environment(
        &self,
        actor: &Actor,
        name: Option<&str>,
    ) -> Result<EnvironmentDetails> {
        let env = self
            .environment_for(actor, name, Operation::ViewEnvironment)
            .await?;
        // the profiles of the last unification that succeeded, as its run recorded them
        let profiles = self
            .catalog()
            .latest_run(env.id, "unify", Some(RunStatus::Succeeded))
            .await?
            .and_then(|r| r.rows);
        let lake_bytes = self.lake_bytes(&env).await;
        Ok(EnvironmentDetails {
            environment: env,
            profiles,
            lake_bytes,
        })
    }

    /// Delete an environment from the catalog (Admin); with `purge`, its lake folder
    /// too. The objects deleted from the lake.
    pub async fn delete_environment(
        &self,
        actor: &Actor,
        env: &Environment,
        purge: bool,
    ) -> Result<Option<usize>> {
        let stored = self.stored_environment(env).await?;
        let env = &stored;
        let acting = self.acting(actor, env);
        acting.require(env, Operation::DeleteEnvironment).await?;
        let deleted = if purge {
            let lake = self.lake(env).await?;
            Some(lake.delete_folder("").await?)
        } else {
            None
        };
        acting.delete_environment(env).await?;
        Ok(deleted)
    }

    /// Seal a secret of the environment in the catalog (Admin); whether its storage
    /// refers to it.
    pub async fn set_environment_secret(
        &self,
        actor: &Actor,
        env: &Environment,
        name: &str,
        secret: &lakecdp_core::Secret,
    ) -> Result<bool> {
        let stored = self.stored_environment(env).await?;
        let env = &stored;
        let acting = self.acting(actor, env);
        acting.require(env, Operation::EditEnvironment).await?;
        let blob = self
            .vault()?
            .seal(&SecretOwner::Environment(env.id).seal_context(name), secret)?;
        acting.set_environment_secret(env, name, &blob).await?;
        let used = secret_users(env, name).next().is_some();
        Ok(used)
    }

    /// The names of the environment's sealed secrets, with the storage settings that use
    /// each (Admin).
    pub async fn environment_secrets(
        &self,
        actor: &Actor,
        env: &Environment,
    ) -> Result<Vec<(String, Vec<&'static str>)>> {
        let stored = self.stored_environment(env).await?;
        let env = &stored;
        self.require(actor, env, Operation::EditEnvironment).await?;
        let names = self.catalog().environment_secret_names(env.id).await?;
        Ok(names
            .into_iter()
            .map(|n| {
                let users = secret_users(env, &n).collect();
                (n, users)
            })
            .collect())
    }

    /// Remove a sealed secret its storage no longer uses (Admin).
    pub async fn remove_environment_secret(
        &self,
        actor: &Actor,
        env: &Environment,
        name: &str,
    ) -> Result<()> {
        let stored = self.stored_environment(env).await?;
        let env = &stored;
        self.require(actor, env, Operation::EditEnvironment).await?;
        if secret_users(env, name).next().is_some() {
            return Err(Error::conflict(format!(
                "environment `{}` uses `vault:{name}` in its storage; point the storage at another secret first",
                env.name
            )));
        }
        let removed = self
            .acting(actor, env)
            .remove_environment_secret(env, name)
            .await?;
        if removed {
            Ok(())
        } else {
            Err(Error::not_found(format!(
                "environment `{}` has no secret `{name}`",
                env.name
            )))
        }
    }
}

/// The storage settings of `env` that refer to `vault:<name>`.
fn secret_users<'a>(
    env: &'a Environment,
    name: &'a str,
) -> impl Iterator<Item = &'static str> + 'a {
    env.storage
        .secret_refs()
        .into_iter()
        .filter(move |(_, r)| matches!(r, SecretRef::Vault(n) if n == name))
        .map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::capacity;

    #[test]
    fn capacity_grows_by_block_of_100000_profiles() {
        assert_eq!(capacity(0), (15, 20));
        assert_eq!(capacity(100_000), (15, 20));
        assert_eq!(capacity(100_001), (30, 40));
        assert_eq!(capacity(1_000_000), (150, 200));
    }
}
