//! Principals, roles and the operations they allow.
//!
//! A principal (a person or an application) holds one [`Role`] per environment: Viewer,
//! Contributor or Admin. Each [`Operation`] the library performs names the role it needs
//! ([`Operation::required_role`]); [`check`] compares the two and, on a denial, returns an
//! [`AccessDenied`] whose message names the role needed and the command that grants it.
//!
//! The environment's creator is its first Admin ([`effective_role`]).
//!
//! Connections add a second rule ([`may_use_connection`]): Admins use every connection;
//! Contributors use only those shared with them; Viewers use none.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::connection::ConnectionSharing;
use crate::ids::EnvironmentId;

/// A person or an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person.
    Person,
    /// An application (a service account).
    Application,
    /// A security group: roles granted to it hold for each of its members.
    Group,
}

impl PrincipalKind {
    /// The kind as text.
    pub fn as_str(&self) -> &'static str {
        match self {
            PrincipalKind::Person => "person",
            PrincipalKind::Application => "application",
            PrincipalKind::Group => "group",
        }
    }
}

impl FromStr for PrincipalKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "person" | "user" => Ok(PrincipalKind::Person),
            "application" | "app" => Ok(PrincipalKind::Application),
            "group" => Ok(PrincipalKind::Group),
            other => Err(format!(
                "unknown principal kind `{other}`: use `person`, `application` or `group`"
            )),
        }
    }
}

/// Someone who acts on environments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Its unique name (compared without regard to ASCII case), e.g. `alice@contoso.com`.
    pub name: String,
    /// A person or an application.
    pub kind: PrincipalKind,
    /// When it was first recorded.
    pub created_at: DateTime<Utc>,
    /// A disabled principal cannot sign in, and its sessions and roles do not act.
    #[serde(default)]
    pub disabled: bool,
    /// A catalog administrator manages users, groups and the audit log of every
    /// environment (the first admin of a server is one).
    #[serde(default)]
    pub administrator: bool,
}

impl Principal {
    /// A person recorded now.
    pub fn person(name: impl Into<String>) -> Self {
        Self::new(name, PrincipalKind::Person)
    }

    /// A principal of `kind` recorded now, enabled, not an administrator.
    pub fn new(name: impl Into<String>, kind: PrincipalKind) -> Self {
        Self {
            name: name.into(),
            kind,
            created_at: Utc::now(),
            disabled: false,
            administrator: false,
        }
    }
}

/// A principal's role in one environment, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Sees the environment, its outputs and its runs.
    Viewer,
    /// Also runs refreshes and exports, and edits exports that use shared connections.
    Contributor,
    /// Also manages connections, roles and the environment itself.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Contributor, Role::Admin];

    /// The role as text.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::Contributor => "Contributor",
            Role::Admin => "Admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "contributor" => Ok(Role::Contributor),
            "admin" | "administrator" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}`: use `viewer`, `contributor` or `admin`"
            )),
        }
    }
}

/// A principal's role in one environment, as the catalog stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    /// The environment.
    pub environment_id: EnvironmentId,
    /// The principal's name.
    pub principal: String,
    /// Its role there.
    pub role: Role,
    /// Who granted it.
    pub assigned_by: String,
    /// When.
    pub assigned_at: DateTime<Utc>,
}

/// What a principal asks to do in an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// See the environment, its outputs and its runs.
    ViewEnvironment,
    /// Change the environment's settings or project.
    EditEnvironment,
    /// Delete the environment.
    DeleteEnvironment,
    /// Run a refresh or one of its processes.
    RunRefresh,
    /// Change the project's sources and processes (not its `[environment]`), or read a
    /// source's data to declare it.
    EditProject,
    /// See the role assignments.
    ViewRoles,
    /// Grant or remove roles.
    ManageRoles,
    /// See the names and types of the connections one may use.
    ListConnections,
    /// See a connection's settings (never its secrets).
    ViewConnectionDetails,
    /// Create a connection.
    CreateConnection,
    /// Change a connection's settings, sharing or secrets.
    EditConnection,
    /// Delete a connection.
    DeleteConnection,
    /// Check a connection's reachability and permissions.
    TestConnection,
    /// See exports and their runs.
    ViewExports,
    /// Create an export (also needs the use of its connection).
    CreateExport,
    /// Change an export (also needs the use of its connection).
    EditExport,
    /// Delete an export.
    DeleteExport,
    /// Run an export on demand.
    RunExport,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 18] = [
        Operation::ViewEnvironment,
        Operation::EditEnvironment,
        Operation::DeleteEnvironment,
        Operation::RunRefresh,
        Operation::EditProject,
        Operation::ViewRoles,
        Operation::ManageRoles,
        Operation::ListConnections,
        Operation::ViewConnectionDetails,
        Operation::CreateConnection,
        Operation::EditConnection,
        Operation::DeleteConnection,
        Operation::TestConnection,
        Operation::ViewExports,
        Operation::CreateExport,
        Operation::EditExport,
        Operation::DeleteExport,
        Operation::RunExport,
    ];

    /// The weakest role allowed to do it.
    pub fn required_role(&self) -> Role {
        use Operation::*;
        match self {
            ViewEnvironment | ViewRoles | ViewExports => Role::Viewer,
            RunRefresh | EditProject | ListConnections | CreateExport | EditExport
            | DeleteExport | RunExport => Role::Contributor,
            EditEnvironment
            | DeleteEnvironment
            | ManageRoles
            | ViewConnectionDetails
            | CreateConnection
            | EditConnection
            | DeleteConnection
            | TestConnection => Role::Admin,
        }
    }

    /// What it does, for messages ("create a connection").
    pub fn describe(&self) -> &'static str {
        use Operation::*;
        match self {
            ViewEnvironment => "see the environment",
            EditEnvironment => "change the environment",
            DeleteEnvironment => "delete the environment",
            RunRefresh => "run a refresh",
            EditProject => "change the project's sources and processes",
            ViewRoles => "see the role assignments",
            ManageRoles => "grant or remove roles",
            ListConnections => "list connections",
            ViewConnectionDetails => "see a connection's settings",
            CreateConnection => "create a connection",
            EditConnection => "change a connection",
            DeleteConnection => "delete a connection",
            TestConnection => "test a connection",
            ViewExports => "see exports",
            CreateExport => "create an export",
            EditExport => "change an export",
            DeleteExport => "delete an export",
            RunExport => "run an export",
        }
    }
}

/// A refused operation. Its message names the principal, the operation, the role needed
/// and how to grant it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct AccessDenied {
    /// Who asked.
    pub principal: String,
    /// The environment's name.
    pub environment: String,
    /// What was asked, in words ("create a connection").
    pub action: String,
    /// The role it needs.
    pub needed: Role,
    /// The role the principal holds there, if any.
    pub held: Option<Role>,
    /// Why, when the role alone does not say it (a connection not shared).
    pub reason: Option<String>,
}

impl AccessDenied {
    fn message(&self) -> String {
        let held = match self.held {
            Some(r) => format!("holds the {r} role"),
            None => "holds no role".to_string(),
        };
        let mut m = format!(
            "`{}` may not {} in environment `{}`: it needs the {} role and {held}",
            self.principal, self.action, self.environment, self.needed
        );
        if let Some(reason) = &self.reason {
            m.push_str(&format!(" ({reason})"));
        }
        if let Some(token) = self.principal.strip_prefix("token:") {
            m.push_str(&format!(
                "; a token's role is fixed when it is made: an Admin of the environment can make one with `lakecdp token create {token}-{} --role {}`",
                self.needed.as_str().to_ascii_lowercase(),
                self.needed.as_str().to_ascii_lowercase()
            ));
        } else {
            m.push_str(&format!(
                "; an Admin of the environment can grant it with `lakecdp role set {} {}`",
                self.principal,
                self.needed.as_str().to_ascii_lowercase()
            ));
        }
        m
    }
}

/// The role a principal holds in an environment: the stored one, or Admin for the
/// environment's creator when nothing is stored for it.
pub fn effective_role(principal: &str, creator: &str, stored: Option<Role>) -> Option<Role> {
    stored.or_else(|| {
        principal
            .eq_ignore_ascii_case(creator)
            .then_some(Role::Admin)
    })
}

/// Whether a principal holding `held` may perform `operation`.
pub fn check(
    principal: &str,
    environment: &str,
    held: Option<Role>,
    operation: Operation,
) -> Result<(), AccessDenied> {
    let needed = operation.required_role();
    if held.is_some_and(|r| r >= needed) {
        return Ok(());
    }
    Err(AccessDenied {
        principal: principal.to_string(),
        environment: environment.to_string(),
        action: operation.describe().to_string(),
        needed,
        held,
        reason: None,
    })
}

/// Whether a principal holding `held` may use a connection shared as `sharing` (in an
/// export, or to see it in a list): Admins always, Contributors when it is shared with
/// them, Viewers never.
pub fn may_use_connection(held: Option<Role>, sharing: ConnectionSharing) -> bool {
    match held {
        Some(Role::Admin) => true,
        Some(Role::Contributor) => sharing == ConnectionSharing::AdminsAndContributors,
        Some(Role::Viewer) | None => false,
    }
}

/// [`may_use_connection`] as a result whose denial names the connection and the fix.
pub fn check_use_connection(
    principal: &str,
    environment: &str,
    held: Option<Role>,
    connection: &str,
    sharing: ConnectionSharing,
) -> Result<(), AccessDenied> {
    if may_use_connection(held, sharing) {
        return Ok(());
    }
    let needed = match sharing {
        ConnectionSharing::Admins => Role::Admin,
        ConnectionSharing::AdminsAndContributors => Role::Contributor,
    };
    Err(AccessDenied {
        principal: principal.to_string(),
        environment: environment.to_string(),
        action: format!("use connection `{connection}`"),
        needed,
        held,
        reason: (sharing == ConnectionSharing::Admins).then(|| {
            "the connection is for Administrators only; an Admin can share it with \
             `lakecdp connection edit NAME --usable-by admins-and-contributors`"
                .to_string()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(Role::Viewer < Role::Contributor && Role::Contributor < Role::Admin);
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("owner".parse::<Role>().unwrap_err().contains("viewer"));
    }

    #[test]
    fn each_operation_needs_its_role_and_stronger_roles_inherit() {
        for op in Operation::ALL {
            let needed = op.required_role();
            for role in Role::ALL {
                let allowed = check("p", "env", Some(role), op).is_ok();
                assert_eq!(allowed, role >= needed, "{op:?} as {role}");
            }
            assert!(check("p", "env", None, op).is_err());
        }
        assert_eq!(
            Operation::CreateConnection.required_role(),
            Role::Admin,
            "only Admins create connections"
        );
        assert_eq!(Operation::RunExport.required_role(), Role::Contributor);
        assert_eq!(Operation::ViewExports.required_role(), Role::Viewer);
    }

    #[test]
    fn a_denial_names_the_role_needed_and_the_fix() {
        let e = check(
            "bob",
            "retail",
            Some(Role::Viewer),
            Operation::CreateConnection,
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("`bob` may not create a connection"), "{m}");
        assert!(
            m.contains("needs the Admin role and holds the Viewer role"),
            "{m}"
        );
        assert!(m.contains("lakecdp role set bob admin"), "{m}");
    }

    #[test]
    fn the_creator_is_admin_unless_a_role_is_stored() {
        assert_eq!(effective_role("Ann", "ann", None), Some(Role::Admin));
        assert_eq!(effective_role("bob", "ann", None), None);
        assert_eq!(
            effective_role("ann", "ann", Some(Role::Viewer)),
            Some(Role::Viewer)
        );
    }

    #[test]
    fn connections_are_used_by_admins_and_shared_contributors_only() {
        use ConnectionSharing::*;
        assert!(may_use_connection(Some(Role::Admin), Admins));
        assert!(!may_use_connection(Some(Role::Contributor), Admins));
        assert!(may_use_connection(
            Some(Role::Contributor),
            AdminsAndContributors
        ));
        assert!(!may_use_connection(
            Some(Role::Viewer),
            AdminsAndContributors
        ));
        assert!(!may_use_connection(None, AdminsAndContributors));
        let e =
            check_use_connection("c", "retail", Some(Role::Contributor), "pg", Admins).unwrap_err();
        assert!(e
            .to_string()
            .contains("--usable-by admins-and-contributors"));
    }
}
