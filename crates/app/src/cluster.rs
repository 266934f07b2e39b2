//! lakecdp's own Ballista scheduler and executor processes: Ballista's, with the lakes of
//! the catalog's environments, opened with the credentials the vault keeps.
//!
//! A plan names a lake only as `lakecdp://<environment id>/…`. A cluster process serves
//! the lakes of the environments in which its acting principal may run refreshes (and,
//! with `--environment`, only those named): it opens them when it starts and looks again
//! every [`LAKES_REFRESH`], so one whose role was revoked is not served. An environment
//! created since is opened when a plan first names it, with the same checks. Lookups by
//! plans never wait on the catalog: the opening happens in the store's first read. Credentials stay in the
//! process: never in a plan, a log line or an error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lakecdp_core::Operation;
pub use lakecdp_engine::cluster::ExecutorOptions;
use lakecdp_engine::cluster::{LakeStores, Resolver};
use lakecdp_engine::ingest::distributed::SourceResolver;
use lakecdp_lake::Lake;

use crate::{Actor, App, Result};

/// How often a cluster process looks again at which lakes it serves.
pub const LAKES_REFRESH: Duration = Duration::from_secs(30);

/// The environments a cluster process serves, by name, for its start-up line.
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// Served environments' names.
    pub environments: Vec<String>,
    /// Names given with `--environment` that no environment of the catalog has.
    pub unknown: Vec<String>,
}

impl App {
    /// The lakes `actor` may serve to a cluster: every environment of the catalog in which
    /// it may run refreshes, or of those among `only` (names, any case). An environment
    /// whose storage cannot be opened is left out, with a warning.
    pub async fn cluster_lake_set(
        &self,
        actor: &Actor,
        only: &[String],
    ) -> Result<(Vec<Lake>, Served)> {
        let mut lakes = Vec::new();
        let mut served = Served::default();
        let all = self.catalog().list_environments().await?;
        for name in only {
            if !all.iter().any(|e| e.name.eq_ignore_ascii_case(name)) {
                served.unknown.push(name.clone());
            }
        }
        for env in all {
            if !only.is_empty() && !only.iter().any(|n| n.eq_ignore_ascii_case(&env.name)) {
                continue;
            }
            if self
                .require(actor, &env, Operation::RunRefresh)
                .await
                .is_err()
            {
                continue;
            }
            match self.lake(&env).await {
                Ok(lake) => {
                    served.environments.push(env.name.clone());
                    lakes.push(lake);
                }
                Err(e) => {
                    tracing::warn!(environment = %env.name, error = %e, "its lake cannot be opened; not served");
                }
            }
        }
        Ok((lakes, served))
    }

    /// The lake of environment `id` when `actor` may serve it to a cluster (see
    /// [`App::cluster_lake_set`]); `None` when it may not, or the catalog does not hold
    /// it. For a plan naming an environment the process does not serve yet.
    async fn cluster_lake(
        &self,
        actor: &Actor,
        only: &[String],
        id: lakecdp_core::EnvironmentId,
    ) -> std::result::Result<Option<Lake>, String> {
        let Some(env) = self
            .catalog()
            .get_environment(id)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        if !only.is_empty() && !only.iter().any(|n| n.eq_ignore_ascii_case(&env.name)) {
            return Ok(None);
        }
        if self
            .require(actor, &env, Operation::RunRefresh)
            .await
            .is_err()
        {
            return Ok(None);
        }
        self.lake(&env).await.map(Some).map_err(|e| e.to_string())
    }

    /// The source `name` of environment `id` as revision `revision` of its project
    /// declares it (the applied one with `None`), with the folder its relative paths
    /// resolve in, when `actor` may serve the environment to a cluster: what an executor
    /// loads a table of a refresh from. The source comes from the catalog, never from a
    /// plan.
    async fn cluster_source(
        &self,
        actor: &Actor,
        only: &[String],
        id: lakecdp_core::EnvironmentId,
        revision: Option<u32>,
        name: &str,
    ) -> std::result::Result<(lakecdp_core::SourceSpec, std::path::PathBuf), String> {
        let refused = || {
            format!(
                "environment {id} is not served by this process: its catalog does not hold it, its principal may not run its refreshes, or `--environment` leaves it out"
            )
        };
        let env = self
            .catalog()
            .get_environment(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(refused)?;
        if !only.is_empty() && !only.iter().any(|n| n.eq_ignore_ascii_case(&env.name)) {
            return Err(refused());
        }
        self.require(actor, &env, Operation::RunRefresh)
            .await
            .map_err(|_| refused())?;
        let revision = self
            .catalog()
            .revision(id, revision)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "environment `{}` has no such applied revision of its project",
                    env.name
                )
            })?;
        let project = lakecdp_core::ProjectFile::parse(&revision.text).map_err(|e| {
            format!(
                "revision {} of environment `{}` does not read: {e}",
                revision.number, env.name
            )
        })?;
        let source = project
            .sources
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                format!(
                    "revision {} of environment `{}` declares no source `{name}`",
                    revision.number, env.name
                )
            })?;
        Ok((source, std::path::PathBuf::from(revision.base_dir)))
    }

    /// What an executor of `actor` loads sources with (see [`App::cluster_source`]).
    pub fn cluster_sources(&self, actor: &Actor, only: Vec<String>) -> SourceResolver {
        let (app, actor) = (self.clone(), actor.clone());
        Arc::new(move |id, revision, name| {
            let (app, actor, only) = (app.clone(), actor.clone(), only.clone());
            Box::pin(async move { app.cluster_source(&actor, &only, id, revision, &name).await })
        })
    }

    /// The registry of the lakes a cluster process of `actor` serves, kept current every
    /// [`LAKES_REFRESH`] by a task of the current runtime. `temp` is where its runtime
    /// spills (an executor's work folder).
    pub async fn cluster_lakes(
        &self,
        actor: &Actor,
        only: Vec<String>,
        temp: Option<std::path::PathBuf>,
    ) -> Result<(Arc<LakeStores>, Served)> {
        let resolve: Resolver = {
            let (app, actor, only) = (self.clone(), actor.clone(), only.clone());
            Arc::new(move |id| {
                let (app, actor, only) = (app.clone(), actor.clone(), only.clone());
                Box::pin(async move { app.cluster_lake(&actor, &only, id).await })
            })
        };
        let stores = LakeStores::resolving(Some(resolve), temp);
        let (lakes, served) = self.cluster_lake_set(actor, &only).await?;
        stores.replace(&lakes);
        let (app, actor, kept) = (self.clone(), actor.clone(), Arc::clone(&stores));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LAKES_REFRESH).await;
                match app.cluster_lake_set(&actor, &only).await {
                    Ok((lakes, _)) => kept.replace(&lakes),
                    Err(e) => {
                        tracing::warn!(error = %e, "the served lakes could not be looked at again; keeping the last set")
                    }
                }
            }
        });
        Ok((stores, served))
    }

    /// Run lakecdp's Ballista scheduler on `bind` until the process ends; `started` is
    /// told which environments it serves once their lakes are open.
    pub async fn run_cluster_scheduler(
        &self,
        actor: &Actor,
        bind: SocketAddr,
        only: Vec<String>,
        started: impl FnOnce(&Served),
    ) -> Result<()> {
        let (lakes, served) = self.cluster_lakes(actor, only, None).await?;
        started(&served);
        Ok(lakecdp_engine::cluster::run_scheduler(bind, lakes).await?)
    }

    /// Run lakecdp's Ballista executor until the process ends; `started` is told which
    /// environments it serves once their lakes are open.
    pub async fn run_cluster_executor(
        &self,
        actor: &Actor,
        options: ExecutorOptions,
        only: Vec<String>,
        started: impl FnOnce(&Served),
    ) -> Result<()> {
        let sources = self.cluster_sources(actor, only.clone());
        let (lakes, served) = self
            .cluster_lakes(actor, only, options.work_dir.clone())
            .await?;
        started(&served);
        Ok(lakecdp_engine::cluster::run_executor(options, lakes, sources).await?)
    }
}
