//! [`Acting`]: a catalog seen by one principal, whose every change is checked against
//! the principal's role.
//!
//! The CLI and the HTTP API make their changes through it, so the role rules live in one
//! place. Reads that reveal settings (a connection's details) are checked too; listing
//! connections shows a Contributor only the names and kinds of those shared with it.

use chrono::Utc;
use lakecdp_core::access::{self, check, check_use_connection, effective_role};
use lakecdp_core::{
    Connection, ConnectionSummary, Environment, EnvironmentId, Export, Operation, Principal, Role,
    RoleAssignment,
};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::{CONNECTION, EXPORT};

/// A catalog and the principal acting on it.
pub struct Acting<'a> {
    catalog: &'a dyn Catalog,
    principal: String,
    scope: Option<(EnvironmentId, Role)>,
}

impl std::fmt::Debug for Acting<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acting")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl<'a> Acting<'a> {
    /// `principal` acting on `catalog`.
    pub fn new(catalog: &'a dyn Catalog, principal: impl Into<String>) -> Self {
        Self {
            catalog,
            principal: principal.into(),
            scope: None,
        }
    }

    /// `principal` acting with exactly `role` in one environment and no role elsewhere,
    /// whatever the catalog grants it (an API token).
    pub fn scoped(
        catalog: &'a dyn Catalog,
        principal: impl Into<String>,
        environment: EnvironmentId,
        role: Role,
    ) -> Self {
        Self {
            scope: Some((environment, role)),
            ..Self::new(catalog, principal)
        }
    }

    /// The acting principal's name.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The catalog, for reads that need no check.
    pub fn catalog(&self) -> &'a dyn Catalog {
        self.catalog
    }

    /// The principal's role in an environment: the highest of its own grant and its
    /// groups' grants, or Admin for the environment's creator when none is stored. A
    /// disabled principal holds no role.
    pub async fn role_in(&self, environment: &Environment) -> Result<Option<Role>> {
        if let Some((id, role)) = self.scope {
            return Ok((id == environment.id).then_some(role));
        }
        if let Some(p) = self.catalog.get_principal(&self.principal).await? {
            if p.disabled {
                return Ok(None);
            }
        }
        let stored = self
            .catalog
            .grants(environment.id, &self.principal)
            .await?
            .into_iter()
            .map(|g| g.role)
            .max();
        Ok(effective_role(
            &self.principal,
            &environment.created_by,
            stored,
        ))
    }

    /// Check that the principal may perform `operation` in `environment`; returns its
    /// role.
    pub async fn require(&self, environment: &Environment, operation: Operation) -> Result<Role> {
        let role = self.role_in(environment).await?;
        check(&self.principal, &environment.name, role, operation)?;
        // a passed check means a role is held
        role.ok_or_else(|| Error::Storage("a role check passed without a role".into()))
    }

    /// Create an environment; the principal becomes its first Admin.
    pub async fn create_environment(&self, environment: &Environment) -> Result<()> {
        if !environment.created_by.eq_ignore_ascii_case(&self.principal) {
            return Err(Error::Invalid(format!(
                "an environment is created by the principal acting (`{}`), not `{}`",
                self.principal, environment.created_by
            )));
        }
        self.catalog
            .upsert_principal(&Principal::person(&self.principal))
            .await?;
        self.catalog.create_environment(environment).await?;
        self.catalog
            .set_role(&RoleAssignment {
                environment_id: environment.id,
                principal: self.principal.clone(),
                role: Role::Admin,
                assigned_by: self.principal.clone(),
                assigned_at: Utc::now(),
            })
            .await
    }

    /// Replace an environment's settings (Admin).
    pub async fn update_environment(&self, environment: &Environment) -> Result<()> {
        let stored = self.stored(environment).await?;
        self.require(&stored, Operation::EditEnvironment).await?;
        self.catalog.update_environment(environment).await
    }

    /// Delete an environment and everything it holds (Admin).
    pub async fn delete_environment(&self, environment: &Environment) -> Result<()> {
        self.require(environment, Operation::DeleteEnvironment)
            .await?;
        self.catalog.delete_environment(environment.id).await
    }

    /// Forget the incremental watermarks of a source, or of one of its tables, no longer
    /// declared (Contributor).
    pub async fn clear_watermarks(
        &self,
        environment: &Environment,
        source: &str,
        table: Option<&str>,
    ) -> Result<u64> {
        self.require(environment, Operation::EditProject).await?;
        self.catalog
            .clear_watermarks(environment.id, source, table)
            .await
    }

    /// Seal-and-store one secret of the environment (Admin).
    pub async fn set_environment_secret(
        &self,
        environment: &Environment,
        name: &str,
        sealed: &[u8],
    ) -> Result<()> {
        self.require(environment, Operation::EditEnvironment)
            .await?;
        self.catalog
            .set_environment_secret(environment.id, name, sealed)
            .await
    }

    /// Remove one secret of the environment (Admin); true when it existed.
    pub async fn remove_environment_secret(
        &self,
        environment: &Environment,
        name: &str,
    ) -> Result<bool> {
        self.require(environment, Operation::EditEnvironment)
            .await?;
        self.catalog
            .remove_environment_secret(environment.id, name)
            .await
    }

    async fn stored(&self, environment: &Environment) -> Result<Environment> {
        self.catalog
            .get_environment(environment.id)
            .await?
            .ok_or_else(|| Error::environment_not_found(environment.id.to_string()))
    }

    /// Give `principal` a role in the environment, or take its role away with `None`
    /// (Admin). The environment always keeps at least one Admin.
    pub async fn set_role(
        &self,
        environment: &Environment,
        principal: &str,
        role: Option<Role>,
    ) -> Result<()> {
        self.require(environment, Operation::ManageRoles).await?;
        let current = effective_role(
            principal,
            &environment.created_by,
            self.catalog.role_of(environment.id, principal).await?,
        );
        if current == Some(Role::Admin) && role != Some(Role::Admin) {
            let admins = self.admins(environment).await?;
            if admins.iter().all(|a| a.eq_ignore_ascii_case(principal)) {
                return Err(Error::Conflict(format!(
                    "`{principal}` is the last Admin of environment `{}`; make someone else \
                     Admin first (`lakecdp role set NAME admin`)",
                    environment.name
                )));
            }
        }
        match role {
            Some(role) => {
                self.catalog
                    .set_role(&RoleAssignment {
                        environment_id: environment.id,
                        principal: principal.to_string(),
                        role,
                        assigned_by: self.principal.clone(),
                        assigned_at: Utc::now(),
                    })
                    .await
            }
            None => {
                if current.is_some() && environment.created_by.eq_ignore_ascii_case(principal) {
                    // the creator's implicit Admin role is replaced by an explicit none
                    // only by giving it a lesser role
                    return Err(Error::Conflict(format!(
                        "`{principal}` created environment `{}` and is its Admin unless given \
                         another role; give it one with `lakecdp role set {principal} viewer`",
                        environment.name
                    )));
                }
                self.catalog.remove_role(environment.id, principal).await?;
                Ok(())
            }
        }
    }

    /// The environment's Admins, the creator included when no other role is stored.
    async fn admins(&self, environment: &Environment) -> Result<Vec<String>> {
        let roles = self.catalog.list_roles(environment.id).await?;
        let mut admins: Vec<String> = roles
            .iter()
            .filter(|a| a.role == Role::Admin)
            .map(|a| a.principal.clone())
            .collect();
        if !roles
            .iter()
            .any(|a| a.principal.eq_ignore_ascii_case(&environment.created_by))
        {
            admins.push(environment.created_by.clone());
        }
        Ok(admins)
    }

    /// The role assignments of an environment (Viewer).
    pub async fn roles(&self, environment: &Environment) -> Result<Vec<RoleAssignment>> {
        self.require(environment, Operation::ViewRoles).await?;
        self.catalog.list_roles(environment.id).await
    }

    /// The connections the principal may see: every one in full for an Admin, the names
    /// and kinds of those shared with it for a Contributor; a Viewer is refused.
    pub async fn connections(&self, environment: &Environment) -> Result<Vec<ConnectionSummary>> {
        let role = self
            .require(environment, Operation::ListConnections)
            .await?;
        Ok(self
            .catalog
            .list_connections(environment.id)
            .await?
            .iter()
            .filter(|c| access::may_use_connection(Some(role), c.sharing))
            .map(ConnectionSummary::from)
            .collect())
    }

    /// A connection's settings and secret names (Admin).
    pub async fn connection(&self, environment: &Environment, name: &str) -> Result<Connection> {
        self.require(environment, Operation::ViewConnectionDetails)
            .await?;
        self.find_connection(environment, name).await
    }

    async fn find_connection(&self, environment: &Environment, name: &str) -> Result<Connection> {
        self.catalog
            .find_connection(environment.id, name)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: CONNECTION,
                name: name.to_string(),
            })
    }

    /// Create a connection (Admin); its secrets are set with
    /// [`set_connection_secret`](Self::set_connection_secret).
    pub async fn create_connection(
        &self,
        environment: &Environment,
        connection: &Connection,
    ) -> Result<()> {
        self.require(environment, Operation::CreateConnection)
            .await?;
        self.same_environment(environment, connection.environment_id)?;
        self.catalog.create_connection(connection).await
    }

    /// Change a connection's name, settings or sharing (Admin).
    pub async fn update_connection(
        &self,
        environment: &Environment,
        connection: &Connection,
    ) -> Result<()> {
        self.require(environment, Operation::EditConnection).await?;
        self.same_environment(environment, connection.environment_id)?;
        // the stored connection's environment, not the one the caller says
        match self.catalog.get_connection(connection.id).await? {
            Some(stored) => self.same_environment(environment, stored.environment_id)?,
            None => {
                return Err(Error::NotFound {
                    kind: CONNECTION,
                    name: connection.name.clone(),
                })
            }
        }
        self.catalog.update_connection(connection).await
    }

    /// Store or replace one sealed secret of a connection (Admin).
    pub async fn set_connection_secret(
        &self,
        environment: &Environment,
        connection: &Connection,
        name: &str,
        sealed: &[u8],
    ) -> Result<()> {
        self.require(environment, Operation::EditConnection).await?;
        // the stored connection's environment, not the one the caller says
        let stored = self
            .catalog
            .get_connection(connection.id)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: CONNECTION,
                name: connection.name.clone(),
            })?;
        self.same_environment(environment, stored.environment_id)?;
        self.catalog
            .set_connection_secret(connection.id, name, sealed)
            .await
    }

    /// Delete a connection (Admin), refused while exports use it.
    pub async fn delete_connection(&self, environment: &Environment, name: &str) -> Result<()> {
        self.require(environment, Operation::DeleteConnection)
            .await?;
        let c = self.find_connection(environment, name).await?;
        self.catalog.delete_connection(c.id).await
    }

    /// The connection named `name` if the principal may use it (in an export or a run).
    pub async fn usable_connection(
        &self,
        environment: &Environment,
        name: &str,
    ) -> Result<Connection> {
        let role = self.role_in(environment).await?;
        let c = self.catalog.find_connection(environment.id, name).await?;
        match c {
            Some(c) => {
                check_use_connection(&self.principal, &environment.name, role, &c.name, c.sharing)?;
                Ok(c)
            }
            None => {
                // the same answer whether or not it exists, for those who may not see it
                check(
                    &self.principal,
                    &environment.name,
                    role,
                    Operation::ListConnections,
                )?;
                Err(Error::NotFound {
                    kind: CONNECTION,
                    name: name.to_string(),
                })
            }
        }
    }

    async fn connection_of(
        &self,
        environment: &Environment,
        export: &Export,
    ) -> Result<Connection> {
        let c = self
            .catalog
            .get_connection(export.connection_id)
            .await?
            .filter(|c| c.environment_id == environment.id)
            .ok_or_else(|| Error::NotFound {
                kind: CONNECTION,
                name: export.connection_id.to_string(),
            })?;
        let role = self.role_in(environment).await?;
        check_use_connection(&self.principal, &environment.name, role, &c.name, c.sharing)?;
        Ok(c)
    }

    /// Create an export (Contributor, who must also be allowed to use its connection).
    pub async fn create_export(&self, environment: &Environment, export: &Export) -> Result<()> {
        self.require(environment, Operation::CreateExport).await?;
        self.same_environment(environment, export.environment_id)?;
        self.connection_of(environment, export).await?;
        self.catalog.create_export(export).await
    }

    /// Change an export (Contributor, who must also be allowed to use its connection).
    pub async fn update_export(&self, environment: &Environment, export: &Export) -> Result<()> {
        self.require(environment, Operation::EditExport).await?;
        self.same_environment(environment, export.environment_id)?;
        self.connection_of(environment, export).await?;
        self.catalog.update_export(export).await
    }

    /// Delete an export (Contributor).
    pub async fn delete_export(&self, environment: &Environment, name: &str) -> Result<()> {
        self.require(environment, Operation::DeleteExport).await?;
        let e = self.export(environment, name).await?;
        self.catalog.delete_export(e.id).await
    }

    /// An export (Viewer).
    pub async fn export(&self, environment: &Environment, name: &str) -> Result<Export> {
        self.require(environment, Operation::ViewExports).await?;
        self.catalog
            .find_export(environment.id, name)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: EXPORT,
                name: name.to_string(),
            })
    }

    /// The export named `name` and its connection, if the principal may run it
    /// (Contributor, who must also be allowed to use the connection).
    pub async fn runnable_export(
        &self,
        environment: &Environment,
        name: &str,
    ) -> Result<(Export, Connection)> {
        self.require(environment, Operation::RunExport).await?;
        let e = self.export(environment, name).await?;
        let c = self.connection_of(environment, &e).await?;
        Ok((e, c))
    }

    fn same_environment(
        &self,
        environment: &Environment,
        of: lakecdp_core::EnvironmentId,
    ) -> Result<()> {
        if environment.id == of {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "the object belongs to another environment than `{}`",
                environment.name
            )))
        }
    }
}
