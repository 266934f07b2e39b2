//! The run history: refreshes and the other runs of an environment, and one run with
//! the processes of a refresh.

use lakecdp_catalog::CatalogExt;
use lakecdp_core::{Environment, Operation, RunId, RunRecord};

use crate::app::{Actor, App};
use crate::error::{Error, Result};

impl App {
    /// The newest `limit` runs of an environment that are not processes of a refresh
    /// (Viewer).
    pub async fn runs(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<(Environment, Vec<RunRecord>)> {
        let env = self
            .environment_for(actor, environment, Operation::ViewEnvironment)
            .await?;
        let runs = self
            .catalog()
            .list_runs(env.id, limit)
            .await?
            .into_iter()
            .filter(|r| r.parent.is_none())
            .collect();
        Ok((env, runs))
    }

    /// One run, its environment and, for a refresh, its processes (Viewer of its
    /// environment).
    pub async fn run(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<(Environment, RunRecord, Vec<RunRecord>)> {
        let id = RunId::parse(id.trim()).ok_or_else(|| {
            Error::invalid(format!(
                "`{id}` is not a run id (they look like 20261201T104500123Z-3f9a1c2e; `lakecdp runs` lists them)"
            ))
        })?;
        let run = self.catalog().run(&id).await?;
        let env = self.catalog().environment(run.environment_id).await?;
        self.require(actor, &env, Operation::ViewEnvironment)
            .await?;
        let children = self.catalog().child_runs(&run.id).await?;
        Ok((env, run, children))
    }
}
