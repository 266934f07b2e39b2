//! Reading secrets from the environment variable or file a [`SecretRef`] names.
//!
//! The value goes straight into a [`Secret`], which never prints. Errors name the
//! reference (`env:VAR`, `file:/path`), never the value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lakecdp_core::{Secret, SecretRef};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Read a secret. `base` resolves relative file paths (the project folder).
pub fn resolve(key: &str, reference: &SecretRef, base: Option<&Path>) -> Result<Secret> {
    let fail = |reason: String| Error::Secret {
        key: key.to_string(),
        reference: reference.to_string(),
        reason,
    };
    // whoever can write a reference must never reach the vault's own master key: it
    // would open every sealed secret, and could be sent to any endpoint
    let master_key = || {
        fail(format!(
            "it names the vault's master key ({} or {}), which no reference may read",
            MASTER_KEY_VARIABLES[0], MASTER_KEY_VARIABLES[1]
        ))
    };
    match reference {
        SecretRef::Env(var) if MASTER_KEY_VARIABLES.contains(&var.as_str()) => {
            return Err(master_key())
        }
        SecretRef::File(path) => {
            let full = match (path.is_relative(), base) {
                (true, Some(b)) => b.join(path),
                _ => path.clone(),
            };
            if is_master_key_file(&full) {
                return Err(master_key());
            }
        }
        _ => {}
    }
    // the value as read is wiped once copied into the Secret
    let value = Zeroizing::new(match reference {
        SecretRef::Env(var) => std::env::var(var).map_err(|e| match e {
            std::env::VarError::NotPresent => fail(format!(
                "the environment variable is not set (set `{var}` in the environment of lakecdp)"
            )),
            std::env::VarError::NotUnicode(_) => {
                fail("the environment variable is not valid UTF-8".into())
            }
        })?,
        SecretRef::File(path) => {
            let full = match (path.is_relative(), base) {
                (true, Some(b)) => b.join(path),
                _ => path.clone(),
            };
            std::fs::read_to_string(&full)
                .map_err(|e| fail(format!("the file cannot be read: {}", e.kind())))?
        }
        SecretRef::Vault(name) => {
            return Err(fail(format!(
                "it is sealed in the catalog and was not opened; set LAKECDP_MASTER_KEY or \
                 LAKECDP_MASTER_KEY_FILE to the master key, or seal it with \
                 `lakecdp env secret set {name} --from env:VAR`"
            )))
        }
    });
    let value = value.trim();
    if value.is_empty() {
        return Err(fail("it is empty".into()));
    }
    Ok(Secret::new(value))
}

/// The variables that hold the vault's master key or name its file.
pub const MASTER_KEY_VARIABLES: [&str; 2] = ["LAKECDP_MASTER_KEY", "LAKECDP_MASTER_KEY_FILE"];

/// True when `path` is the master key file `LAKECDP_MASTER_KEY_FILE` names (compared
/// after resolving links).
fn is_master_key_file(path: &Path) -> bool {
    let Some(key_file) = std::env::var_os(MASTER_KEY_VARIABLES[1]) else {
        return false;
    };
    match (
        std::fs::canonicalize(path),
        std::fs::canonicalize(&key_file),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => path == Path::new(&key_file),
    }
}

/// Where a backend finds the secrets its configuration refers to: the environment
/// variables and files named (relative files under `base`), and values handed over in
/// memory, opened from the vault: `vault:` references of the given names, and `env:`
/// references of the given names (looked up before the process environment).
#[derive(Clone, Default)]
pub struct Secrets {
    base: Option<PathBuf>,
    provided: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("base", &self.base)
            .field("provided", &self.provided.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Secrets {
    /// Secrets from the variables and files named; relative files are under `base`.
    pub fn from_refs(base: Option<&Path>) -> Self {
        Self {
            base: base.map(Path::to_path_buf),
            provided: BTreeMap::new(),
        }
    }

    /// The folder relative secret files are under.
    pub fn base(&self) -> Option<&Path> {
        self.base.as_deref()
    }

    /// Hand over a value for the references `vault:<name>` and `env:<name>`.
    pub fn provide(mut self, name: impl Into<String>, value: Secret) -> Self {
        self.provided.insert(name.into(), value);
        self
    }

    /// Add the values `other` hands over.
    pub fn extend(&mut self, other: &Secrets) {
        self.provided
            .extend(other.provided.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    /// The secret `reference` names, for the configuration key `key`.
    pub fn resolve(&self, key: &str, reference: &SecretRef) -> Result<Secret> {
        if let SecretRef::Env(name) | SecretRef::Vault(name) = reference {
            if let Some(v) = self.provided.get(name) {
                return Ok(v.clone());
            }
        }
        resolve(key, reference, self.base.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_never_reach_the_master_key() {
        for var in MASTER_KEY_VARIABLES {
            let e = resolve("account_key", &SecretRef::Env(var.into()), None).unwrap_err();
            assert!(e.to_string().contains("master key"), "{e}");
        }
        // the key file itself, by any path that leads to it
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("master.key");
        std::fs::write(&key, "a-key-value").unwrap();
        // this test's process only: no other test reads this variable
        std::env::set_var(MASTER_KEY_VARIABLES[1], &key);
        let by_relative = resolve(
            "sas_token",
            &SecretRef::File("master.key".into()),
            Some(dir.path()),
        );
        let by_dots = resolve(
            "sas_token",
            &SecretRef::File(dir.path().join(".").join("master.key")),
            None,
        );
        std::env::remove_var(MASTER_KEY_VARIABLES[1]);
        for r in [by_relative, by_dots] {
            let e = r.unwrap_err();
            assert!(e.to_string().contains("master key"), "{e}");
            assert!(!e.to_string().contains("a-key-value"), "{e}");
        }
        // another file in the same folder is read as usual
        std::fs::write(dir.path().join("sas.txt"), "sv=1").unwrap();
        assert_eq!(
            resolve(
                "sas_token",
                &SecretRef::File("sas.txt".into()),
                Some(dir.path())
            )
            .unwrap()
            .expose(),
            "sv=1"
        );
    }

    #[test]
    fn file_secrets_are_trimmed_and_errors_never_hold_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "  s3cr3t-value\n").unwrap();
        let s = resolve(
            "account_key",
            &SecretRef::File("key".into()),
            Some(dir.path()),
        )
        .unwrap();
        assert_eq!(s.expose(), "s3cr3t-value");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let err = resolve(
            "account_key",
            &SecretRef::File("empty".into()),
            Some(dir.path()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = resolve(
            "account_key",
            &SecretRef::Env("LAKECDP_TEST_SURELY_UNSET_VAR".into()),
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("env:LAKECDP_TEST_SURELY_UNSET_VAR"),
            "{err}"
        );
    }
}
