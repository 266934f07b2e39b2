//! lakecdp's own Ballista scheduler and executor processes: Ballista's, with the lakes of
//! the catalog's environments, opened with the credentials the vault keeps.
//!
//! A plan names a lake only as `lakecdp://<environment id>/…`. The first time a plan of
//! an environment reaches a process, the process finds the environment in the catalog,
//! checks that its acting principal may run that environment's refreshes, and opens the
//! storage. Credentials stay in the process: they are never in a plan, a log line or an
//! error.

use std::net::SocketAddr;
use std::sync::Arc;

use lakecdp_core::{EnvironmentId, Operation};
pub use lakecdp_engine::cluster::ExecutorOptions;
use lakecdp_engine::cluster::{LakeStores, Resolver};

use crate::{Actor, App, Result};

impl App {
    /// The lakes a cluster process of `actor` reads and writes: every environment of the
    /// catalog in which `actor` may run refreshes, opened when a plan first names it.
    /// With `only`, the environments (by name) outside it are refused as well.
    pub fn cluster_lakes(&self, actor: &Actor, only: Vec<String>) -> Arc<LakeStores> {
        let app = self.clone();
        let actor = actor.clone();
        let only = Arc::new(only);
        let resolve: Resolver = Arc::new(move |id: EnvironmentId| {
            let (app, actor, only) = (app.clone(), actor.clone(), Arc::clone(&only));
            Box::pin(async move {
                let env = app
                    .catalog()
                    .get_environment(id)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no environment {id} in this process's catalog"))?;
                if !only.is_empty() && !only.contains(&env.name) {
                    return Err(format!(
                        "environment `{}` is not one this process serves (`--environment`)",
                        env.name
                    ));
                }
                app.require(&actor, &env, Operation::RunRefresh)
                    .await
                    .map_err(|e| e.to_string())?;
                let lake = app.lake(&env).await.map_err(|e| e.to_string())?;
                Ok(Arc::clone(lake.store()))
            })
        });
        LakeStores::new(Some(resolve))
    }

    /// Run lakecdp's Ballista scheduler on `bind` until the process ends.
    pub async fn run_cluster_scheduler(
        &self,
        actor: &Actor,
        bind: SocketAddr,
        only: Vec<String>,
    ) -> Result<()> {
        let lakes = self.cluster_lakes(actor, only);
        Ok(lakecdp_engine::cluster::run_scheduler(bind, lakes).await?)
    }

    /// Run lakecdp's Ballista executor until the process ends.
    pub async fn run_cluster_executor(
        &self,
        actor: &Actor,
        options: ExecutorOptions,
        only: Vec<String>,
    ) -> Result<()> {
        let lakes = self.cluster_lakes(actor, only);
        Ok(lakecdp_engine::cluster::run_executor(options, lakes).await?)
    }
}
