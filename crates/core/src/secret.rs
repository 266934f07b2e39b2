//! Secrets: where they live (a reference) and a wrapper that never prints them.
//!
//! The catalog and the project file store only a [`SecretRef`]: the name of an
//! environment variable or the path of a file that holds the secret. The value itself
//! is read at the moment it is needed and kept in a [`Secret`], whose `Debug` and
//! `Display` print a masked marker.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The text shown wherever a secret would otherwise appear.
pub const MASK: &str = "********";

/// Where a secret is kept. In TOML: `{ env = "VAR" }`, `{ file = "path" }` or
/// `{ vault = "name" }` (sealed in the catalog, opened with the master key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretRef {
    /// An environment variable of the process that needs the secret.
    Env(String),
    /// A file whose content (trimmed of surrounding whitespace) is the secret.
    File(PathBuf),
    /// A secret of the environment sealed in the catalog under this name.
    Vault(String),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env:{v}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
            SecretRef::Vault(n) => write!(f, "vault:{n}"),
        }
    }
}

/// What a secret sealed in the catalog belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretOwner {
    /// A connection's secret (a password, a key).
    Connection(crate::connection::ConnectionId),
    /// An environment's secret, referred to from its storage as `vault:<name>`.
    Environment(crate::ids::EnvironmentId),
}

impl SecretOwner {
    /// The additional data a secret of this owner is sealed under, so that a sealed blob
    /// opens only for the owner and name it was sealed for.
    pub fn seal_context(&self, name: &str) -> String {
        match self {
            SecretOwner::Connection(id) => format!("connection:{id}:{name}"),
            SecretOwner::Environment(id) => format!("environment:{id}:{name}"),
        }
    }
}

/// A secret value. It is never printed: `Debug` and `Display` show [`MASK`], and its
/// bytes are wiped from memory when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it (a signature, a connection string).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Overwrites the value's bytes (its whole buffer) with zeros and empties it.
    fn wipe(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_wipes_its_buffer() {
        let mut secret = Secret::new(String::with_capacity(32) + "hunter2");
        let (ptr, capacity) = (secret.0.as_ptr(), secret.0.capacity());
        secret.wipe();
        assert_eq!(secret.expose(), "");
        // the buffer is still allocated (wiping keeps the capacity), so it can be read
        assert_eq!(secret.0.capacity(), capacity);
        let buffer = unsafe { std::slice::from_raw_parts(ptr, capacity) };
        assert!(buffer.iter().all(|b| *b == 0), "{buffer:?}");
    }

    #[test]
    fn secret_is_masked_in_debug_and_display() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s}"), MASK);
        assert_eq!(format!("{s:?}"), MASK);
        assert!(!format!("{:?}", Some(s.clone())).contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn secret_ref_parses_from_toml_tables() {
        #[derive(Deserialize)]
        struct T {
            a: SecretRef,
            b: SecretRef,
        }
        let t: T = toml::from_str("a = { env = \"KEY\" }\nb = { file = \"/run/key\" }").unwrap();
        assert_eq!(t.a, SecretRef::Env("KEY".into()));
        assert_eq!(t.b, SecretRef::File("/run/key".into()));
        assert!(toml::from_str::<T>("a = \"plain\"\nb = { env = \"X\" }").is_err());
    }
}
