//! Where the project and its catalog are, and loading them.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::Utc;
use lakecdp_catalog::{Catalog, CatalogExt, SqliteCatalog};
use lakecdp_core::project::PROJECT_FILE;
use lakecdp_core::{Environment, ProjectFile, StorageConfig};

use crate::args::Cli;
use crate::UserError;

/// The principal that creates environments when `--as` is not given.
pub const DEFAULT_PRINCIPAL: &str = "local-admin";

/// The resolved project location.
#[derive(Debug, Clone)]
pub struct Context {
    /// Absolute project folder.
    pub project_dir: PathBuf,
    /// Catalog database file.
    pub catalog_path: PathBuf,
    /// The principal named by `--as` or `LAKECDP_PRINCIPAL`.
    pub acting_as: Option<String>,
}

impl Context {
    pub fn new(cli: &Cli) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir().context("cannot read the current folder")?;
        let project_dir = absolute(&cwd, &cli.project);
        let catalog_path = cli
            .catalog
            .as_ref()
            .map(|c| absolute(&cwd, c))
            .unwrap_or_else(|| project_dir.join(".lakecdp").join("catalog.db"));
        let acting_as = cli
            .acting_as
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        Ok(Self {
            project_dir,
            catalog_path,
            acting_as,
        })
    }

    /// The principal acting on `environment`: `--as`, or the environment's creator.
    pub fn principal_for(&self, environment: &Environment) -> String {
        self.acting_as
            .clone()
            .unwrap_or_else(|| environment.created_by.clone())
    }

    /// The principal that creates a new environment: `--as`, or `local-admin`.
    pub fn creator(&self) -> String {
        self.acting_as
            .clone()
            .unwrap_or_else(|| DEFAULT_PRINCIPAL.to_string())
    }

    pub fn project_file(&self) -> PathBuf {
        self.project_dir.join(PROJECT_FILE)
    }

    /// Read and validate the project file.
    pub fn load_project(&self) -> anyhow::Result<ProjectFile> {
        let path = self.project_file();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            UserError(format!(
                "cannot read {}: {e} (run `lakecdp init` to create a project, or pass -C <project folder>)",
                path.display()
            ))
        })?;
        ProjectFile::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub async fn catalog(&self) -> anyhow::Result<SqliteCatalog> {
        SqliteCatalog::open(&self.catalog_path)
            .await
            .with_context(|| format!("cannot open the catalog {}", self.catalog_path.display()))
    }

    /// The environment named on the command line, or the project file's.
    pub async fn environment(
        &self,
        catalog: &SqliteCatalog,
        name: Option<&str>,
    ) -> anyhow::Result<Environment> {
        let name = match name {
            Some(n) => n.to_string(),
            None => self.load_project()?.environment.name,
        };
        catalog.environment_by_name_or_id(&name).await.map_err(|e| match e {
            lakecdp_catalog::Error::NotFound { .. } => {
                UserError(format!("no environment `{name}` in the catalog (create it with `lakecdp env create` or `lakecdp apply`)")).into()
            }
            other => anyhow::Error::new(other),
        })
    }

    /// The environment's own secrets its storage refers to as `vault:<name>`, opened
    /// with the master key; empty (and no key needed) when it refers to none.
    pub async fn storage_secrets(
        &self,
        catalog: &SqliteCatalog,
        env: &Environment,
    ) -> anyhow::Result<lakecdp_lake::secrets::Secrets> {
        let mut secrets = lakecdp_lake::secrets::Secrets::from_refs(Some(&self.project_dir));
        let names: Vec<&str> = env
            .storage
            .secret_refs()
            .into_iter()
            .filter_map(|(_, r)| match r {
                lakecdp_core::SecretRef::Vault(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            return Ok(secrets);
        }
        let vault = crate::targets::vault()?;
        let owner = lakecdp_core::SecretOwner::Environment(env.id);
        for name in names {
            let blob = catalog
                .environment_secret(env.id, name)
                .await?
                .ok_or_else(|| {
                    UserError(format!(
                    "environment `{}` refers to secret `vault:{name}`, which is not sealed in the \
                     catalog; seal it with `lakecdp env secret set {name} --from env:VAR`",
                    env.name
                ))
                })?;
            let secret = vault.open(&owner.seal_context(name), &blob).map_err(|e| {
                UserError(format!(
                    "secret `{name}` of environment `{}` cannot be opened: {e}",
                    env.name
                ))
            })?;
            secrets = secrets.provide(name, secret);
        }
        Ok(secrets)
    }

    /// Open the environment's storage, with its sealed secrets.
    pub async fn open_storage(
        &self,
        catalog: &SqliteCatalog,
        env: &Environment,
    ) -> anyhow::Result<lakecdp_lake::StoreHandle> {
        let secrets = self.storage_secrets(catalog, env).await?;
        Ok(lakecdp_lake::backend::open_with(
            &env.storage,
            Some(&self.project_dir),
            &secrets,
        )?)
    }

    /// The environment a project file declares, with local paths made absolute.
    /// `existing` keeps the id and creation facts of a stored environment.
    pub fn environment_of(
        &self,
        project: &ProjectFile,
        existing: Option<&Environment>,
    ) -> Environment {
        let spec = &project.environment;
        let mut storage = spec.storage.clone();
        if let StorageConfig::Local(l) = &mut storage {
            l.path = absolute(&self.project_dir, &l.path);
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
                .unwrap_or_else(|| self.creator()),
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
