//! The run history: refreshes and the other runs of an environment, and one run with
//! the processes of a refresh.

use lakecdp_catalog::CatalogExt;
use lakecdp_core::{Environment, Operation, RunEvent, RunId, RunRecord};

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
        let (env, run) = self
            .visible_run(actor, &id, Operation::ViewEnvironment)
            .await?;
        let children = self.catalog().child_runs(&run.id).await?;
        Ok((env, run, children))
    }

    /// A run the actor may perform `operation` on; a run of an environment the actor
    /// cannot see is reported as not found, so that its existence stays hidden.
    async fn visible_run(
        &self,
        actor: &Actor,
        id: &RunId,
        operation: Operation,
    ) -> Result<(Environment, RunRecord)> {
        let hidden = || Error::not_found(format!("no run `{id}` (`lakecdp runs` lists them)"));
        let run = self.catalog().get_run(id).await?.ok_or_else(hidden)?;
        let env = self.catalog().environment(run.environment_id).await?;
        let acting = self.acting(actor, &env);
        let role = acting.role_in(&env).await?;
        if role.is_none() {
            return Err(hidden());
        }
        // the role read once: checked here rather than read again by `require`
        lakecdp_core::access::check(acting.principal(), &env.name, role, operation)?;
        Ok((env, run))
    }

    /// The events of a run after number `after` (Viewer of its environment).
    pub async fn run_events(
        &self,
        actor: &Actor,
        id: &RunId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RunEvent>> {
        self.visible_run(actor, id, Operation::ViewEnvironment)
            .await?;
        Ok(self.catalog().run_events(id, after, limit).await?)
    }

    /// Ask for a running refresh or export to stop (Contributor); the instance running
    /// it cancels it. A run that has ended already is a conflict.
    pub async fn cancel_run(&self, actor: &Actor, id: &RunId) -> Result<RunRecord> {
        let (_, run) = self.visible_run(actor, id, Operation::RunRefresh).await?;
        if run.status.is_final() {
            return Err(Error::conflict(format!(
                "run `{id}` has ended already ({})",
                run.status.as_str()
            )));
        }
        self.catalog()
            .request_cancel(id, chrono::Utc::now())
            .await?;
        Ok(run)
    }
}
