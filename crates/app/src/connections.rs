//! Connections (where exports send their tables) with their sealed secrets, and the
//! vault's master key rotation.
//!
//! A secret is sealed before anything is stored, never returned, and opened only to
//! reach the destination. Secrets come from `env:VAR` or `file:PATH` references resolved
//! here, or as values a front end read (stdin, a form field).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::Utc;
use lakecdp_catalog::{CatalogExt, SealedSecret};
use lakecdp_connect::{reseal, MasterKey, Vault};
use lakecdp_core::{
    Connection, ConnectionId, ConnectionKind, ConnectionSharing, ConnectionSummary, Environment,
    Operation, Secret, SecretOwner, SecretRef,
};

use crate::app::{Actor, App};
use crate::error::{Error, Result};
use crate::targets::{self, seal_context};

pub use lakecdp_connect::{CheckLine, CheckStatus};

/// A new connection; its secrets are values already read.
#[derive(Debug, Clone)]
pub struct NewConnection {
    /// Its name.
    pub name: String,
    /// `postgresql`, `local`, `s3`, `adls`.
    pub kind: String,
    /// Who may use it: `admins`, `contributors`…
    pub usable_by: String,
    /// Its settings.
    pub settings: BTreeMap<String, String>,
    /// Its secrets by name.
    pub secrets: BTreeMap<String, Secret>,
}

/// Changes to a connection's settings.
#[derive(Debug, Clone, Default)]
pub struct ConnectionChanges {
    /// Settings to set.
    pub set: BTreeMap<String, String>,
    /// Settings to remove.
    pub unset: Vec<String>,
    /// Another sharing.
    pub usable_by: Option<String>,
    /// A new name.
    pub rename: Option<String>,
}

/// The result of testing a connection.
#[derive(Debug, Clone)]
pub struct ConnectionTest {
    /// The connection.
    pub connection: Connection,
    /// Where it reaches.
    pub destination: String,
    /// Each check.
    pub lines: Vec<CheckLine>,
}

/// The names of the secrets a connection's kind has.
fn secret_fields(c: &Connection) -> Vec<&'static str> {
    c.kind
        .fields()
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.name)
        .collect()
}

fn invalid<E: std::fmt::Display>(e: E) -> Error {
    Error::invalid(e.to_string())
}

impl App {
    /// Resolve a secret reference `env:VAR` or `file:PATH` (relative to the project
    /// folder). Values are never taken from the command line, where shells and process
    /// lists keep them.
    pub fn resolve_secret(&self, source: &str) -> Result<Secret> {
        let source = source.trim();
        let reference = if let Some(var) = source.strip_prefix("env:") {
            SecretRef::Env(var.to_string())
        } else if let Some(path) = source.strip_prefix("file:") {
            SecretRef::File(PathBuf::from(path))
        } else {
            return Err(Error::invalid(
                "a secret is given as env:VAR, file:PATH or stdin, never as its value on the command line",
            ));
        };
        Ok(lakecdp_lake::secrets::resolve(
            "secret",
            &reference,
            Some(self.project_dir()),
        )?)
    }

    /// Add a connection with its secrets sealed (Admin).
    pub async fn add_connection(&self, actor: &Actor, new: NewConnection) -> Result<Connection> {
        let env = self
            .environment_for(actor, None, Operation::CreateConnection)
            .await?;
        let acting = self.acting(actor, &env);
        let kind: ConnectionKind = new.kind.parse().map_err(invalid)?;
        let sharing: ConnectionSharing = new.usable_by.parse().map_err(invalid)?;
        let now = Utc::now();
        let connection = Connection {
            id: ConnectionId::new(),
            environment_id: env.id,
            name: new.name.clone(),
            kind,
            settings: new.settings,
            secrets: new.secrets.keys().cloned().collect(),
            sharing,
            created_by: acting.principal().to_string(),
            created_at: now,
            updated_at: now,
        };
        let problems = connection.validate();
        if !problems.is_empty() {
            return Err(Error::invalid(format!(
                "connection `{}` was not added:\n  - {}",
                new.name,
                problems.join("\n  - ")
            )));
        }
        // seal every secret before anything is stored
        let mut sealed = Vec::new();
        if !new.secrets.is_empty() {
            let vault = self.vault()?;
            for (name, secret) in &new.secrets {
                sealed.push((
                    name.clone(),
                    vault.seal(&seal_context(&connection, name), secret)?,
                ));
            }
        }
        acting.create_connection(&env, &connection).await?;
        for (name, blob) in &sealed {
            if let Err(e) = acting
                .set_connection_secret(&env, &connection, name, blob)
                .await
            {
                // no connection without its secrets
                let _ = acting.delete_connection(&env, &connection.name).await;
                return Err(e.into());
            }
        }
        Ok(connection)
    }

    /// The connections the actor may use: names and kinds (Contributor).
    pub async fn list_connections(
        &self,
        actor: &Actor,
        environment: Option<&str>,
    ) -> Result<(Environment, Vec<ConnectionSummary>)> {
        let env = self.environment(environment).await?;
        let list = self.acting(actor, &env).connections(&env).await?;
        Ok((env, list))
    }

    /// A connection's settings (never its secrets) and the exports that use it (Admin).
    pub async fn show_connection(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<(Connection, Vec<String>)> {
        let env = self.environment(None).await?;
        let c = self.acting(actor, &env).connection(&env, name).await?;
        let users = self.exports_using(&env, &c).await?;
        Ok((c, users))
    }

    async fn exports_using(&self, env: &Environment, c: &Connection) -> Result<Vec<String>> {
        Ok(self
            .catalog()
            .list_exports(env.id)
            .await?
            .into_iter()
            .filter(|e| e.connection_id == c.id)
            .map(|e| e.name)
            .collect())
    }

    /// Change a connection's settings, sharing or name (Admin); the changes in words
    /// (empty when nothing changed).
    pub async fn edit_connection(
        &self,
        actor: &Actor,
        name: &str,
        c: ConnectionChanges,
    ) -> Result<Vec<String>> {
        let env = self.environment(None).await?;
        let acting = self.acting(actor, &env);
        let mut conn = acting.connection(&env, name).await?;
        let mut changes = Vec::new();
        for (k, v) in c.set {
            changes.push(format!("{k} set"));
            conn.settings.insert(k, v);
        }
        for k in &c.unset {
            if conn.settings.remove(k).is_some() {
                changes.push(format!("{k} removed"));
            }
        }
        if let Some(s) = &c.usable_by {
            conn.sharing = s.parse().map_err(invalid)?;
            changes.push(format!("usable by {}", conn.sharing));
        }
        if let Some(n) = &c.rename {
            changes.push(format!("renamed to {n}"));
            conn.name = n.clone();
        }
        if changes.is_empty() {
            return Ok(changes);
        }
        let problems = conn.validate();
        if !problems.is_empty() {
            return Err(Error::invalid(format!(
                "connection `{name}` was not changed:\n  - {}",
                problems.join("\n  - ")
            )));
        }
        conn.updated_at = Utc::now();
        acting.update_connection(&env, &conn).await?;
        Ok(changes)
    }

    /// Check that a connection reaches its destination with the permissions exports
    /// need (Admin).
    pub async fn test_connection(&self, actor: &Actor, name: &str) -> Result<ConnectionTest> {
        let env = self
            .environment_for(actor, None, Operation::TestConnection)
            .await?;
        let c = self.acting(actor, &env).connection(&env, name).await?;
        let target = targets::target_for(self, &env, &c, None).await?;
        let destination = target.destination();
        let lines = target.check().await?;
        Ok(ConnectionTest {
            connection: c,
            destination,
            lines,
        })
    }

    /// Replace one secret of a connection (Admin). `secret` is `NAME=SOURCE`, or only
    /// the source for a kind with one secret; `read` turns the source into the value.
    /// The secret replaced and the exports using the connection.
    pub async fn rotate_connection_secret(
        &self,
        actor: &Actor,
        name: &str,
        secret: &str,
        read: impl FnOnce(&str) -> Result<Secret>,
    ) -> Result<(String, Vec<String>)> {
        let env = self
            .environment_for(actor, None, Operation::EditConnection)
            .await?;
        let c = self.acting(actor, &env).connection(&env, name).await?;
        let secret_fields = secret_fields(&c);
        let (field, source) = match secret.split_once('=') {
            Some((n, s)) if secret_fields.contains(&n) => (n.to_string(), s.to_string()),
            _ if secret_fields.len() == 1 => (secret_fields[0].to_string(), secret.to_string()),
            _ => {
                return Err(Error::invalid(format!(
                    "a {} connection has the secrets {}: write --secret NAME=SOURCE",
                    c.kind,
                    secret_fields.join(", ")
                )))
            }
        };
        let value = read(&source)?;
        let users = self
            .set_connection_secret(actor, name, &field, &value)
            .await?;
        Ok((field, users))
    }

    /// Set the secret `field` of a connection to `value` (Admin); the exports using the
    /// connection. `field` must be one of the kind's secrets.
    pub async fn set_connection_secret(
        &self,
        actor: &Actor,
        name: &str,
        field: &str,
        value: &Secret,
    ) -> Result<Vec<String>> {
        let env = self
            .environment_for(actor, None, Operation::EditConnection)
            .await?;
        let acting = self.acting(actor, &env);
        let c = acting.connection(&env, name).await?;
        let fields = secret_fields(&c);
        if !fields.contains(&field) {
            return Err(Error::invalid(format!(
                "a {} connection has {}: `{field}` is not one of them",
                c.kind,
                if fields.is_empty() {
                    "no secrets".to_string()
                } else {
                    format!("the secrets {}", fields.join(", "))
                }
            )));
        }
        let blob = self.vault()?.seal(&seal_context(&c, field), value)?;
        acting.set_connection_secret(&env, &c, field, &blob).await?;
        self.exports_using(&env, &c).await
    }

    /// Delete a connection and its secrets (Admin).
    pub async fn delete_connection(&self, actor: &Actor, name: &str) -> Result<()> {
        let env = self.environment(None).await?;
        Ok(self
            .acting(actor, &env)
            .delete_connection(&env, name)
            .await?)
    }

    /// Re-seal every secret of the catalog under `new_key` (Admin of every environment
    /// holding one); the number re-sealed and the old and new key ids.
    pub async fn rotate_master_key(
        &self,
        actor: &Actor,
        new_key: &Secret,
        key_source: &str,
    ) -> Result<(usize, String, String)> {
        let old = self.vault()?;
        let new =
            Vault::new(MasterKey::from_base64(new_key.expose(), key_source).map_err(invalid)?)?;
        let catalog = self.catalog();
        let sealed = catalog.sealed_secrets().await?;
        // every environment holding a secret must be administered by the principal acting
        let mut checked = BTreeSet::new();
        let mut out = Vec::with_capacity(sealed.len());
        for s in &sealed {
            let (env_id, what) = match s.owner {
                SecretOwner::Connection(id) => {
                    let c = catalog.get_connection(id).await?.ok_or_else(|| {
                        Error::internal(format!(
                            "the connection {id} of a sealed secret is missing"
                        ))
                    })?;
                    (c.environment_id, format!("connection `{}`", c.name))
                }
                SecretOwner::Environment(id) => (id, "its environment".to_string()),
            };
            let env = catalog.environment(env_id).await?;
            if checked.insert(env_id) {
                self.require(actor, &env, Operation::EditConnection).await?;
            }
            let blob = reseal(&old, &new, &s.owner.seal_context(&s.name), &s.sealed).map_err(|e| {
                Error::invalid(format!(
                    "secret `{}` of {what} in environment `{}` does not open with the current master key: {e}",
                    s.name, env.name
                ))
            })?;
            out.push(SealedSecret {
                sealed: blob,
                ..s.clone()
            });
        }
        catalog.rotate_sealed_secrets(&sealed, &out).await?;
        Ok((
            out.len(),
            new.key_id().to_string(),
            old.key_id().to_string(),
        ))
    }
}

/// Write a new random master key to `out`, readable by its owner only; its id.
pub fn new_master_key(out: &std::path::Path) -> Result<String> {
    let key = MasterKey::generate()?;
    if out.exists() {
        return Err(Error::conflict(format!(
            "{} exists; a key file is never overwritten",
            out.display()
        )));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut f = options
        .open(out)
        .map_err(|e| Error::invalid(format!("cannot create {}: {e}", out.display())))?;
    writeln!(f, "{}", key.to_base64().expose())?;
    Ok(key.id().to_string())
}
