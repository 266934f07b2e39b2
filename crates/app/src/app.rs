//! [`App`]: the catalog, the project folder and the vault every operation needs, owned
//! and cheap to clone, so a server can move it into the tasks it spawns; and [`Actor`],
//! the principal an operation is made by.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use lakecdp_catalog::{Acting, Catalog, CatalogExt};
use lakecdp_connect::{MasterKey, Vault};
use lakecdp_core::project::PROJECT_FILE;
use lakecdp_core::{
    ApiToken, EngineChoice, Environment, EnvironmentId, Operation, ProjectFile, Role, SecretOwner,
    SecretRef,
};
use lakecdp_lake::secrets::Secrets;
use lakecdp_lake::{Lake, StoreHandle};

use crate::error::{Error, Result};

/// The principal that creates environments when no other is named.
pub const DEFAULT_PRINCIPAL: &str = "local-admin";

/// Who makes an operation.
///
/// On the command line of one machine, whoever can read the catalog acts; with no name
/// given they act as each environment's creator (its first Admin). The server always
/// names the authenticated principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    name: Option<String>,
    local: bool,
    scope: Option<(EnvironmentId, Role)>,
}

impl Default for Actor {
    fn default() -> Self {
        Self::local(None)
    }
}

impl Actor {
    /// The local user, acting as `name` when given (`--as`), else as each environment's
    /// creator. Whoever can read the catalog on this machine is trusted with it: the
    /// local user also administers accounts and groups.
    pub fn local(name: Option<&str>) -> Self {
        Self {
            name: name
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            local: true,
            scope: None,
        }
    }

    /// The authenticated principal `name`, holding the roles the catalog grants it.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            local: false,
            scope: None,
        }
    }

    /// An API token: `token:<name>`, acting with the token's role in its environment
    /// only.
    pub fn token(token: &ApiToken) -> Self {
        Self {
            name: Some(token.principal()),
            local: false,
            scope: Some((token.environment_id, token.role)),
        }
    }

    /// Whether it is the local user of the catalog.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The environment and role an API token is confined to.
    pub fn scope(&self) -> Option<(EnvironmentId, Role)> {
        self.scope
    }

    /// Its name, when it has one of its own.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The principal acting on `environment`.
    pub fn name_for(&self, environment: &Environment) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| environment.created_by.clone())
    }

    /// The principal that creates a new environment.
    pub fn creator(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| DEFAULT_PRINCIPAL.to_string())
    }
}

pub(crate) struct Inner {
    catalog: Arc<dyn Catalog>,
    project_dir: PathBuf,
    /// Lake sizes measured lately, by environment.
    lake_sizes:
        std::sync::Mutex<std::collections::HashMap<EnvironmentId, (std::time::Instant, u64)>>,
    /// The catalog's key that signs the sharing endpoint's file URLs, once read.
    pub(crate) url_key: tokio::sync::OnceCell<[u8; 32]>,
    /// The customer search indexes of this process.
    pub(crate) searches: crate::search::Searches,
}

/// How long a measured lake size is shown before it is measured again.
const LAKE_SIZE_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// The application: every operation a user can perform is a method of it (or of a
/// module of this crate taking it).
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
    /// The environment operations act in when none is named; `None`: the project
    /// file's.
    default_environment: Option<Arc<str>>,
    /// Which local files it may read and write.
    pub(crate) files: crate::files::LocalFiles,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("project_dir", &self.inner.project_dir)
            .field("default_environment", &self.default_environment)
            .finish_non_exhaustive()
    }
}

/// Open the catalog: a PostgreSQL one for a `postgresql://` URL, else the embedded
/// SQLite catalog at `path` (created if missing).
pub async fn open_catalog(path: &Path) -> Result<Arc<dyn Catalog>> {
    let text = path.to_string_lossy();
    if text.starts_with("postgresql://") || text.starts_with("postgres://") {
        let catalog = lakecdp_catalog::PostgresCatalog::connect(&text)
            .await
            .map_err(|e| Error::from(e).context("cannot open the PostgreSQL catalog"))?;
        return Ok(Arc::new(catalog));
    }
    let catalog = lakecdp_catalog::SqliteCatalog::open(path)
        .await
        .map_err(|e| {
            Error::from(e).context(format!("cannot open the catalog {}", path.display()))
        })?;
    Ok(Arc::new(catalog))
}

impl App {
    /// An application over `catalog`, for the project in `project_dir` (where relative
    /// paths of the project file resolve).
    pub fn new(catalog: Arc<dyn Catalog>, project_dir: impl Into<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Inner {
                catalog,
                project_dir: project_dir.into(),
                lake_sizes: Default::default(),
                url_key: Default::default(),
                searches: Default::default(),
            }),
            default_environment: None,
            files: crate::files::LocalFiles::default(),
        }
    }

    /// The same application acting in the environment named (a name or id) wherever an
    /// operation takes the project file's environment by default: how a server, which
    /// has no project file of its own, runs the operations of one environment.
    pub fn in_environment(&self, name: &str) -> App {
        Self {
            inner: Arc::clone(&self.inner),
            default_environment: Some(Arc::from(name)),
            files: self.files.clone(),
        }
    }

    /// Whether operations act in an environment named to [`App::in_environment`]
    /// rather than in the project file's.
    pub fn has_default_environment(&self) -> bool {
        self.default_environment.is_some()
    }

    /// What the application keeps between operations.
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The size of an environment's lake measured less than a minute ago, if any.
    pub(crate) fn cached_lake_bytes(&self, id: EnvironmentId) -> Option<u64> {
        let sizes = self.inner.lake_sizes.lock().ok()?;
        sizes
            .get(&id)
            .filter(|(at, _)| at.elapsed() < LAKE_SIZE_AGE)
            .map(|(_, bytes)| *bytes)
    }

    /// Remember an environment's lake size.
    pub(crate) fn cache_lake_bytes(&self, id: EnvironmentId, bytes: u64) {
        if let Ok(mut sizes) = self.inner.lake_sizes.lock() {
            sizes.insert(id, (std::time::Instant::now(), bytes));
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &dyn Catalog {
        self.inner.catalog.as_ref()
    }

    /// The project folder.
    pub fn project_dir(&self) -> &Path {
        &self.inner.project_dir
    }

    /// The project file.
    pub fn project_file(&self) -> PathBuf {
        self.inner.project_dir.join(PROJECT_FILE)
    }

    /// The project file's text, not yet validated.
    pub fn read_project_file(&self) -> Result<String> {
        let path = self.project_file();
        std::fs::read_to_string(&path).map_err(|e| {
            Error::invalid(format!(
                "cannot read {}: {e} (run `lakecdp init` to create a project, or pass -C <project folder>)",
                path.display()
            ))
        })
    }

    /// Read and validate the project file.
    pub fn load_project(&self) -> Result<ProjectFile> {
        let text = self.read_project_file()?;
        ProjectFile::parse(&text)
            .map_err(|e| Error::from(e).context(format!("in {}", self.project_file().display())))
    }

    /// The environment named, or else the one of [`App::in_environment`], or else the
    /// project file's.
    pub async fn environment(&self, name: Option<&str>) -> Result<Environment> {
        let name = match (name, &self.default_environment) {
            (Some(n), _) => n.to_string(),
            (None, Some(n)) => n.to_string(),
            (None, None) => self.load_project()?.environment.name,
        };
        self.catalog()
            .environment_by_name_or_id(&name)
            .await
            .map_err(|e| match e {
                lakecdp_catalog::Error::NotFound { .. } => Error::not_found(format!(
                    "no environment `{name}` in the catalog (create it with `lakecdp env create` or `lakecdp apply`)"
                )),
                other => other.into(),
            })
    }

    /// The catalog seen by `actor` in `environment`: every change through it is checked.
    pub fn acting(&self, actor: &Actor, environment: &Environment) -> Acting<'_> {
        match actor.scope() {
            Some((id, role)) => {
                Acting::scoped(self.catalog(), actor.name_for(environment), id, role)
            }
            None => Acting::new(self.catalog(), actor.name_for(environment)),
        }
    }

    /// Check that `actor` may perform `operation` in `environment`; its role.
    pub async fn require(
        &self,
        actor: &Actor,
        environment: &Environment,
        operation: Operation,
    ) -> Result<Role> {
        Ok(self
            .acting(actor, environment)
            .require(environment, operation)
            .await?)
    }

    /// The environment the catalog holds under `environment`'s id. Roles are checked
    /// against it, never against a copy the caller holds, whose creator (its implicit
    /// Admin) or storage may differ.
    pub async fn stored_environment(&self, environment: &Environment) -> Result<Environment> {
        self.catalog()
            .get_environment(environment.id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "no environment `{}` ({}) in the catalog",
                    environment.name, environment.id
                ))
            })
    }

    /// The environment named (or the project file's), once `actor` may perform
    /// `operation` in it.
    pub async fn environment_for(
        &self,
        actor: &Actor,
        name: Option<&str>,
        operation: Operation,
    ) -> Result<Environment> {
        let env = self.environment(name).await?;
        self.require(actor, &env, operation).await?;
        Ok(env)
    }

    /// The vault of this process's master key (`LAKECDP_MASTER_KEY` or
    /// `LAKECDP_MASTER_KEY_FILE`).
    pub fn vault(&self) -> Result<Vault> {
        let key = MasterKey::from_env().map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Vault::new(key)?)
    }

    /// The environment's own secrets its storage refers to as `vault:<name>`, opened with
    /// the master key; empty (and no key needed) when it refers to none.
    pub async fn storage_secrets(&self, env: &Environment) -> Result<Secrets> {
        let mut secrets = Secrets::from_refs(Some(self.project_dir()));
        let names: Vec<&str> = env
            .storage
            .secret_refs()
            .into_iter()
            .filter_map(|(_, r)| match r {
                SecretRef::Vault(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            return Ok(secrets);
        }
        let vault = self.vault()?;
        let owner = SecretOwner::Environment(env.id);
        for name in names {
            let blob = self
                .catalog()
                .environment_secret(env.id, name)
                .await?
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "environment `{}` refers to secret `vault:{name}`, which is not sealed in the \
                         catalog; seal it with `lakecdp env secret set {name} --from env:VAR`",
                        env.name
                    ))
                })?;
            let secret = vault.open(&owner.seal_context(name), &blob).map_err(|e| {
                Error::invalid(format!(
                    "secret `{name}` of environment `{}` cannot be opened: {e}",
                    env.name
                ))
            })?;
            secrets = secrets.provide(name, secret);
        }
        Ok(secrets)
    }

    /// Open the environment's storage, with its sealed secrets.
    pub async fn open_storage(&self, env: &Environment) -> Result<StoreHandle> {
        let secrets = self.storage_secrets(env).await?;
        Ok(lakecdp_lake::backend::open_with(
            &env.storage,
            Some(self.project_dir()),
            &secrets,
        )?)
    }

    /// The environment's lake, writing its output format.
    pub async fn lake(&self, env: &Environment) -> Result<Lake> {
        let handle = self.open_storage(env).await?;
        Ok(Lake::new(&handle, env.id).with_format(env.output_format))
    }

    /// A session over the lake on the engine the project chooses: the one place every
    /// process gets its session from. With `outputs`, the published outputs the insight
    /// processes read are registered (Customer, the activities, the measures).
    pub(crate) async fn session(
        &self,
        lake: &Lake,
        engine: &EngineChoice,
        outputs: bool,
    ) -> Result<lakecdp_engine::Session> {
        let kind = match engine {
            EngineChoice::Local => lakecdp_engine::EngineKind::Local,
            EngineChoice::BallistaStandalone => {
                lakecdp_engine::EngineKind::Ballista { scheduler: None }
            }
            EngineChoice::Ballista { scheduler, .. } => lakecdp_engine::EngineKind::Ballista {
                scheduler: Some(scheduler.clone()),
            },
            other => {
                return Err(Error::new(
                    crate::ErrorKind::NotImplemented,
                    format!("the engine {other:?} cannot run here; use `engine = \"local\"`"),
                ))
            }
        };
        let session = lakecdp_engine::Session::new(&kind, lake.clone()).await?;
        if outputs {
            session.register_outputs().await?;
        }
        Ok(session)
    }

    /// The environment a project file declares, with local paths made absolute.
    /// `existing` keeps the id and creation facts of a stored environment.
    pub fn environment_of(
        &self,
        actor: &Actor,
        project: &ProjectFile,
        existing: Option<&Environment>,
    ) -> Environment {
        let spec = &project.environment;
        let mut storage = spec.storage.clone();
        if let lakecdp_core::StorageConfig::Local(l) = &mut storage {
            l.path = absolute(Path::new(&self.revision_base()), &l.path);
        }
        let now = Utc::now();
        Environment {
            id: existing.map(|e| e.id).or(spec.id).unwrap_or_default(),
            name: spec.name.clone(),
            region: spec.region.clone(),
            storage,
            output_format: spec.output_format,
            retention_runs: spec.retention_runs,
            created_by: existing
                .map(|e| e.created_by.clone())
                .unwrap_or_else(|| actor.creator()),
            created_at: existing.map(|e| e.created_at).unwrap_or(now),
            updated_at: now,
        }
    }
}

/// `path` made absolute against `base`, without touching the file system.
pub fn absolute(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
