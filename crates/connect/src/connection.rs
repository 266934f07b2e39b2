//! Connections: the stored settings of a destination, with its secret sealed.
//!
//! A connection is what the catalog keeps for an export destination. Its password is
//! never stored in clear: [`SealedSecret`] holds the vault blob, bound to the record
//! `connection:<name>:password`, so a blob copied to another connection does not open.
//! [`PostgresConnection::target`] opens the secret with the environment's [`Vault`] at
//! the moment an export needs it.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use lakecdp_core::Secret;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::postgres::{PostgresTarget, DEFAULT_SCHEMA};
use crate::vault::{reseal, Vault};

/// A secret sealed by a [`Vault`]; stored as base64 text. Its `Debug` shows its length
/// only.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(Vec<u8>);

impl SealedSecret {
    /// Wrap a blob from [`Vault::seal`].
    pub fn from_blob(blob: Vec<u8>) -> Self {
        Self(blob)
    }

    /// The blob.
    pub fn blob(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret({} bytes)", self.0.len())
    }
}

impl Serialize for SealedSecret {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SealedSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.trim())
            .map(SealedSecret)
            .map_err(|_| serde::de::Error::custom("a sealed secret is not valid base64"))
    }
}

/// A PostgreSQL connection as stored: settings in clear, the password sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConnection {
    /// The connection's name, unique in an environment.
    pub name: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Database (created by the first export when missing).
    pub database: String,
    /// Schema, `customerinsights` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// `disable` (default) or `prefer`; this target connects without TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslmode: Option<String>,
    /// The sealed password.
    pub password: SealedSecret,
}

impl PostgresConnection {
    /// The vault context of a connection's password: `connection:<name>:password`.
    pub fn password_context(name: &str) -> String {
        format!("connection:{name}:password")
    }

    /// Seal `password` for this connection (replacing the stored one).
    pub fn set_password(&mut self, vault: &Vault, password: &Secret) -> Result<()> {
        self.password = SealedSecret(vault.seal(&Self::password_context(&self.name), password)?);
        Ok(())
    }

    /// Move the sealed password from the `old` master key to the `new` one.
    pub fn reseal(&mut self, old: &Vault, new: &Vault) -> Result<()> {
        let blob = reseal(
            old,
            new,
            &Self::password_context(&self.name),
            &self.password.0,
        )?;
        self.password = SealedSecret(blob);
        Ok(())
    }

    /// The export target, with the password opened by `vault`.
    pub fn target(&self, vault: &Vault) -> Result<PostgresTarget> {
        if self.name.trim().is_empty() {
            return Err(Error::Config {
                key: "name".into(),
                message: "a connection needs a name".into(),
            });
        }
        let password = vault.open(&Self::password_context(&self.name), &self.password.0)?;
        let mut b = PostgresTarget::builder()
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(password)
            .database(&self.database)
            .schema(self.schema.as_deref().unwrap_or(DEFAULT_SCHEMA));
        if let Some(mode) = &self.sslmode {
            b = b.sslmode(mode);
        }
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::MasterKey;

    fn vault() -> Vault {
        Vault::new(MasterKey::generate().unwrap()).unwrap()
    }

    fn connection(vault: &Vault, name: &str) -> PostgresConnection {
        let mut c = PostgresConnection {
            name: name.into(),
            host: "db.example".into(),
            port: 5432,
            user: "exporter".into(),
            database: "crm".into(),
            schema: None,
            sslmode: None,
            password: SealedSecret(Vec::new()),
        };
        c.set_password(vault, &Secret::new("pw-in-clear")).unwrap();
        c
    }

    #[test]
    fn a_stored_connection_never_holds_the_password_in_clear() {
        let v = vault();
        let c = connection(&v, "crm");
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("pw-in-clear"), "{json}");
        assert!(!format!("{c:?}").contains("pw-in-clear"));
        let back: PostgresConnection = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        let target = back.target(&v).unwrap();
        assert_eq!(target.address(), "db.example:5432");
        assert_eq!(target.schema(), DEFAULT_SCHEMA);
        assert!(!format!("{target:?}").contains("pw-in-clear"));
    }

    #[test]
    fn a_password_copied_to_another_connection_does_not_open() {
        let v = vault();
        let a = connection(&v, "crm");
        let mut b = connection(&v, "warehouse");
        b.password = a.password.clone();
        let err = b.target(&v).unwrap_err().to_string();
        assert!(err.contains("connection:warehouse:password"), "{err}");
        assert!(err.contains("another record"), "{err}");
    }

    #[test]
    fn rotation_reseals_under_the_new_key() {
        let old = vault();
        let new = vault();
        let mut c = connection(&old, "crm");
        c.reseal(&old, &new).unwrap();
        assert!(c.target(&new).is_ok());
        let err = c.target(&old).unwrap_err().to_string();
        assert!(
            err.contains(&format!("the master key is {}", old.key_id())),
            "{err}"
        );
    }
}
