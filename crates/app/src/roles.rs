//! Roles: who is Admin, Contributor or Viewer of an environment.

use lakecdp_core::{Environment, Operation, Role, RoleAssignment};

use crate::app::{Actor, App};
use crate::error::{Error, Result};

impl App {
    /// Grant `role` to `principal` (a user, an application or a group) in the
    /// environment named (the project's with `None`), or take its role away with `None`
    /// (Admin).
    pub async fn set_role(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        principal: &str,
        role: Option<Role>,
    ) -> Result<Environment> {
        let env = self.environment(environment).await?;
        self.acting(actor, &env)
            .set_role(&env, principal, role)
            .await?;
        Ok(env)
    }

    /// The role assignments of the environment named (the project's with `None`), and
    /// the name the actor acts as (Viewer).
    pub async fn roles(
        &self,
        actor: &Actor,
        environment: Option<&str>,
    ) -> Result<(Environment, Vec<RoleAssignment>, String)> {
        let env = self
            .environment_for(actor, environment, Operation::ViewRoles)
            .await?;
        let acting = self.acting(actor, &env);
        let roles = acting.roles(&env).await?;
        Ok((env, roles, acting.principal().to_string()))
    }
}

/// A role as written on the command line: a role's name, or `none`.
pub fn parse_role(text: &str) -> Result<Option<Role>> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    text.parse::<Role>()
        .map(Some)
        .map_err(|e| Error::invalid(format!("{e}, or `none`")))
}
