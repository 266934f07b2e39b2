//! Connections: named, typed places exports write to, with their settings, their secrets
//! (kept apart, sealed) and who may use them.
//!
//! A connection's [`settings`](Connection::settings) hold no secret: passwords and keys
//! live in the catalog's secret store, sealed by the vault, and a connection only lists
//! which of them are set ([`Connection::secrets`]). Each [`ConnectionKind`] declares the
//! settings and secrets it knows ([`ConnectionKind::fields`]); [`Connection::validate`]
//! names every unknown or missing one.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::EnvironmentId;
use crate::pgssl::{check_plain_password, SslMode};

/// The id of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(pub uuid::Uuid);

impl ConnectionId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl Default for ConnectionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for ConnectionId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

/// What a connection reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// A PostgreSQL server (the analytics database).
    Postgresql,
    /// An Azure Data Lake Storage Gen2 (or Blob) container, for lake exports.
    Adls,
    /// An S3 bucket, for lake exports.
    S3,
    /// A local folder, for lake exports.
    Local,
}

/// One setting or secret a connection kind knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Its name, e.g. `host`.
    pub name: &'static str,
    /// Must it be given?
    pub required: bool,
    /// Is it a secret (kept sealed, never shown)?
    pub secret: bool,
    /// What it is, for help and errors.
    pub help: &'static str,
}

const fn setting(name: &'static str, required: bool, help: &'static str) -> Field {
    Field {
        name,
        required,
        secret: false,
        help,
    }
}

const fn secret(name: &'static str, required: bool, help: &'static str) -> Field {
    Field {
        name,
        required,
        secret: true,
        help,
    }
}

const POSTGRESQL_FIELDS: &[Field] = &[
    setting("host", true, "the server's host name or address"),
    setting("port", false, "the server's port (default 5432)"),
    setting("user", true, "the user exports log in as"),
    setting(
        "sslmode",
        false,
        "`verify-full` (TLS, the certificate checked against `sslrootcert`), `require` (TLS, \
         the certificate not checked), `prefer` or `disable` (plain TCP; needed explicitly \
         for a password to another machine)",
    ),
    setting(
        "sslrootcert",
        false,
        "the CA file (PEM) the server's certificate must chain to, for `verify-full`",
    ),
    setting(
        "schemas",
        false,
        "the `database.schema` pairs exports may write to, comma-separated, `*` for any \
         database or schema, e.g. `crm.customerinsights,analytics.*` (default \
         `*.customerinsights`)",
    ),
    secret("password", false, "the user's password"),
];

/// The schemas a PostgreSQL connection's exports may write to when its `schemas`
/// setting is not given.
pub const DEFAULT_EXPORT_SCHEMAS: &str = "*.customerinsights";

const ADLS_FIELDS: &[Field] = &[
    setting("account", true, "the storage account name"),
    setting("container", true, "the container exports write to"),
    setting(
        "endpoint",
        false,
        "a blob endpoint override (private endpoints, Azurite)",
    ),
    setting(
        "emulator",
        false,
        "`true` for the Azurite emulator (plain http, path-style)",
    ),
    secret("account_key", true, "the storage account key"),
];

const S3_FIELDS: &[Field] = &[
    setting("bucket", true, "the bucket exports write to"),
    setting("region", false, "the bucket's region (default us-east-1)"),
    setting("endpoint", false, "an endpoint for S3-compatible stores"),
    setting("prefix", false, "a folder inside the bucket"),
    setting("access_key_id", true, "the access key id"),
    secret("secret_access_key", true, "the secret access key"),
];

const LOCAL_FIELDS: &[Field] = &[setting(
    "path",
    true,
    "the folder exports write to (it plays the container)",
)];

impl ConnectionKind {
    /// Every kind.
    pub const ALL: [ConnectionKind; 4] = [
        ConnectionKind::Postgresql,
        ConnectionKind::Adls,
        ConnectionKind::S3,
        ConnectionKind::Local,
    ];

    /// The kind as text.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnectionKind::Postgresql => "postgresql",
            ConnectionKind::Adls => "adls",
            ConnectionKind::S3 => "s3",
            ConnectionKind::Local => "local",
        }
    }

    /// The settings and secrets this kind knows.
    pub fn fields(&self) -> &'static [Field] {
        match self {
            ConnectionKind::Postgresql => POSTGRESQL_FIELDS,
            ConnectionKind::Adls => ADLS_FIELDS,
            ConnectionKind::S3 => S3_FIELDS,
            ConnectionKind::Local => LOCAL_FIELDS,
        }
    }

    /// The field named `name`, if this kind knows it.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields().iter().find(|f| f.name == name)
    }

    /// True for the kinds lake exports write to.
    pub fn is_lake(&self) -> bool {
        !matches!(self, ConnectionKind::Postgresql)
    }
}

impl fmt::Display for ConnectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "postgresql" | "postgres" => Ok(ConnectionKind::Postgresql),
            "adls" | "azure" => Ok(ConnectionKind::Adls),
            "s3" => Ok(ConnectionKind::S3),
            "local" => Ok(ConnectionKind::Local),
            other => Err(format!(
                "unknown connection type `{other}`: use postgresql, adls, s3 or local"
            )),
        }
    }
}

/// Who may use a connection in exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionSharing {
    /// Administrators only (the default).
    #[default]
    Admins,
    /// Administrators and Contributors.
    AdminsAndContributors,
}

impl ConnectionSharing {
    /// The sharing as text.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnectionSharing::Admins => "admins",
            ConnectionSharing::AdminsAndContributors => "admins-and-contributors",
        }
    }
}

impl fmt::Display for ConnectionSharing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectionSharing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "admins" | "administrators" => Ok(ConnectionSharing::Admins),
            "admins-and-contributors" | "contributors" => {
                Ok(ConnectionSharing::AdminsAndContributors)
            }
            other => Err(format!(
                "unknown sharing `{other}`: use `admins` or `admins-and-contributors`"
            )),
        }
    }
}

/// A connection as the catalog stores it (without its secret values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Its id.
    pub id: ConnectionId,
    /// The environment it belongs to.
    pub environment_id: EnvironmentId,
    /// Its display name, unique in the environment without regard to ASCII case.
    pub name: String,
    /// What it reaches.
    pub kind: ConnectionKind,
    /// Its settings (never a secret).
    pub settings: BTreeMap<String, String>,
    /// The names of the secrets stored for it, sorted.
    pub secrets: Vec<String>,
    /// Who may use it.
    pub sharing: ConnectionSharing,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it was last changed (settings, sharing or a secret).
    pub updated_at: DateTime<Utc>,
}

impl Connection {
    /// Every problem with the name, the settings and the secret names, each naming the
    /// field and the fix; empty when the connection is valid.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("the connection name is empty".to_string());
        }
        let kind = self.kind;
        for key in self.settings.keys() {
            match kind.field(key) {
                None => problems.push(format!(
                    "unknown setting `{key}` for a {kind} connection; it knows {}",
                    known(kind)
                )),
                Some(f) if f.secret => problems.push(format!(
                    "`{key}` is a secret: give it as a secret (e.g. `--secret {key}=env:VAR`), \
                     never as a setting"
                )),
                Some(_) => {}
            }
        }
        for name in &self.secrets {
            match kind.field(name) {
                Some(f) if f.secret => {}
                _ => problems.push(format!(
                    "unknown secret `{name}` for a {kind} connection; it knows {}",
                    known(kind)
                )),
            }
        }
        for f in kind.fields().iter().filter(|f| f.required) {
            let given = if f.secret {
                self.secrets.iter().any(|s| s == f.name)
            } else {
                self.settings.contains_key(f.name)
            };
            if !given {
                problems.push(format!(
                    "a {kind} connection needs `{}` ({})",
                    f.name, f.help
                ));
            }
        }
        if let Some(port) = self.settings.get("port") {
            if port.parse::<u16>().is_err() {
                problems.push(format!(
                    "`port` must be a number from 1 to 65535, not `{port}`"
                ));
            }
        }
        if kind == ConnectionKind::Postgresql {
            self.validate_postgresql(&mut problems);
        }
        problems
    }

    fn validate_postgresql(&self, problems: &mut Vec<String>) {
        let mode = match self.setting("sslmode").map(str::parse::<SslMode>) {
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                problems.push(format!("`sslmode`: {e}"));
                return;
            }
            None => None,
        };
        if mode == Some(SslMode::VerifyFull) && self.setting("sslrootcert").is_none() {
            problems.push(
                "`sslmode` `verify-full` needs `sslrootcert`: the CA file (PEM) that signed \
                 the server's certificate"
                    .to_string(),
            );
        }
        if let Some(host) = self.setting("host") {
            let has_password = self.secrets.iter().any(|s| s == "password");
            if let Err(e) = check_plain_password(
                &format!("connection `{}`", self.name),
                host,
                mode,
                has_password,
            ) {
                problems.push(e);
            }
        }
        if let Err(e) = self.export_schemas() {
            problems.push(e);
        }
    }

    /// The `database.schema` patterns a PostgreSQL connection's exports may write to
    /// (its `schemas` setting, or [`DEFAULT_EXPORT_SCHEMAS`]); `*` stands for any name.
    pub fn export_schemas(&self) -> Result<Vec<(String, String)>, String> {
        let text = self.setting("schemas").unwrap_or(DEFAULT_EXPORT_SCHEMAS);
        let mut out = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('.') {
                Some((db, schema))
                    if !db.is_empty() && !schema.is_empty() && !schema.contains('.') =>
                {
                    out.push((db.to_string(), schema.to_string()))
                }
                _ => {
                    return Err(format!(
                        "`schemas`: `{item}` is not `database.schema` (`*` for any database or \
                         schema, e.g. `crm.customerinsights`)"
                    ))
                }
            }
        }
        if out.is_empty() {
            return Err(
                "`schemas` is empty: name the `database.schema` pairs exports may write to"
                    .to_string(),
            );
        }
        Ok(out)
    }

    /// Whether exports through this connection may write to `schema` of `database`;
    /// the error names the setting, what it allows and the fix.
    pub fn check_export_schema(&self, database: &str, schema: &str) -> Result<(), String> {
        let allowed = self.export_schemas()?;
        let fits = |pattern: &str, name: &str| pattern == "*" || pattern == name;
        if allowed
            .iter()
            .any(|(d, s)| fits(d, database) && fits(s, schema))
        {
            return Ok(());
        }
        let list: Vec<String> = allowed.iter().map(|(d, s)| format!("{d}.{s}")).collect();
        Err(format!(
            "connection `{}` does not allow exports to schema `{schema}` of database \
             `{database}`: its `schemas` setting allows {}; an Admin can add `{database}.{schema}` \
             (`lakecdp connection edit {} --set schemas=...`)",
            self.name,
            list.join(", "),
            self.name
        ))
    }

    /// A setting, if given.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }
}

fn known(kind: ConnectionKind) -> String {
    kind.fields()
        .iter()
        .map(|f| format!("`{}`", f.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a principal who may not see a connection's details sees of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionSummary {
    /// Its display name.
    pub name: String,
    /// Its kind.
    pub kind: ConnectionKind,
}

impl From<&Connection> for ConnectionSummary {
    fn from(c: &Connection) -> Self {
        Self {
            name: c.name.clone(),
            kind: c.kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg() -> Connection {
        Connection {
            id: ConnectionId::new(),
            environment_id: EnvironmentId::new(),
            name: "warehouse".into(),
            kind: ConnectionKind::Postgresql,
            settings: [("host", "db"), ("user", "cdp")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            secrets: vec!["password".into()],
            sharing: ConnectionSharing::Admins,
            created_by: "ann".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_complete_connection_is_valid() {
        let mut c = pg();
        c.settings.insert("sslmode".into(), "require".into());
        assert_eq!(c.validate(), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_named_with_its_fix() {
        let mut c = pg();
        c.settings.remove("host");
        c.settings.insert("password".into(), "x".into());
        c.settings.insert("colour".into(), "red".into());
        c.settings.insert("port".into(), "99999".into());
        c.settings.insert("sslmode".into(), "require".into());
        let p = c.validate();
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(p.iter().any(|m| m.contains("`password` is a secret")));
        assert!(p.iter().any(|m| m.contains("unknown setting `colour`")));
        assert!(p.iter().any(|m| m.contains("needs `host`")));
        assert!(p.iter().any(|m| m.contains("`port` must be a number")));
    }

    #[test]
    fn a_password_to_another_machine_needs_tls_or_an_explicit_disable() {
        let p = pg().validate();
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(
            p[0].contains("`sslmode`") && p[0].contains("plain TCP"),
            "{p:#?}"
        );
        for (mode, ok) in [("disable", true), ("require", true), ("prefer", false)] {
            let mut c = pg();
            c.settings.insert("sslmode".into(), mode.into());
            assert_eq!(c.validate().is_empty(), ok, "{mode}: {:#?}", c.validate());
        }
        let mut c = pg();
        c.settings.insert("sslmode".into(), "verify-full".into());
        assert!(c.validate()[0].contains("needs `sslrootcert`"));
        c.settings
            .insert("sslrootcert".into(), "/etc/ca.pem".into());
        assert_eq!(c.validate(), Vec::<String>::new());
        c.settings.insert("host".into(), "127.0.0.1".into());
        c.settings.remove("sslmode");
        assert_eq!(c.validate(), Vec::<String>::new());
    }

    #[test]
    fn exports_go_only_to_the_declared_schemas() {
        let mut c = pg();
        c.settings.insert("sslmode".into(), "require".into());
        assert!(c.check_export_schema("crm", "customerinsights").is_ok());
        let err = c.check_export_schema("crm", "public").unwrap_err();
        assert!(
            err.contains("`schemas`") && err.contains("*.customerinsights"),
            "{err}"
        );
        c.settings
            .insert("schemas".into(), "crm.cdp, analytics.*".into());
        assert!(c.validate().is_empty());
        assert!(c.check_export_schema("crm", "cdp").is_ok());
        assert!(c.check_export_schema("analytics", "anything").is_ok());
        assert!(c.check_export_schema("crm", "customerinsights").is_err());
        assert!(c.check_export_schema("CRM", "cdp").is_err());
        c.settings.insert("schemas".into(), "crm".into());
        assert!(c.validate()[0].contains("not `database.schema`"));
    }

    #[test]
    fn kinds_and_sharing_parse() {
        for k in ConnectionKind::ALL {
            assert_eq!(k.as_str().parse::<ConnectionKind>().unwrap(), k);
        }
        assert_eq!(
            "admins-and-contributors"
                .parse::<ConnectionSharing>()
                .unwrap(),
            ConnectionSharing::AdminsAndContributors
        );
        assert!("ftp".parse::<ConnectionKind>().is_err());
    }
}
