//! Storage configuration of an environment: a local folder, Azure Data Lake Storage
//! Gen2, or S3.
//!
//! The configuration holds no secret, only [`SecretRef`]s. Validation checks the shape
//! (required keys, the container name, URL kinds); whether the storage really answers
//! is the job of the prerequisite checks in `lakecdp-lake`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::ConfigError;
use crate::secret::SecretRef;

/// The container every environment lives in, as Customer Insights requires.
pub const CONTAINER: &str = "customerinsights";

/// Where an environment's lake is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StorageConfig {
    /// A local folder; the container is its sub-folder `customerinsights`.
    Local(LocalConfig),
    /// Azure Data Lake Storage Gen2.
    Adls(AdlsConfig),
    /// Amazon S3 or an S3-compatible store; the bucket plays the container.
    S3(S3Config),
}

/// A local folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// The lake root; the container is `<path>/customerinsights`. Relative paths are
    /// relative to the project folder.
    pub path: PathBuf,
}

/// Azure Data Lake Storage Gen2. Give either `url` or `account` (and optionally
/// `container`), and exactly one way to authenticate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdlsConfig {
    /// `abfss://customerinsights@<account>.dfs.core.windows.net` or
    /// `https://<account>.dfs.core.windows.net/customerinsights`; replaces `account`
    /// and `container`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The storage account name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The container; must be `customerinsights`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Shared key authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key: Option<SecretRef>,
    /// Service principal: the Microsoft Entra tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Service principal: the application (client) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Service principal: the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretRef>,
    /// A shared access signature (query string, with or without the leading `?`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas_token: Option<SecretRef>,
    /// Blob endpoint override, e.g. a private endpoint or the Azurite emulator
    /// (`http://127.0.0.1:10000/devstoreaccount1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The endpoint is the Azurite emulator (explicit switch; never guessed).
    #[serde(default, skip_serializing_if = "is_false")]
    pub emulator: bool,
    /// Accept an account without hierarchical namespace (emulators only: ACLs and
    /// atomic renames are not available there).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_flat_namespace: bool,
    /// The Azure region of the storage account, as stated by the user (the data
    /// plane does not report it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The Microsoft Entra authority a service principal gets its tokens from, for
    /// national clouds (e.g. `https://login.microsoftonline.us`); the public cloud's
    /// by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_host: Option<String>,
}

/// How an ADLS environment authenticates, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdlsAuth {
    /// Shared key.
    AccountKey(SecretRef),
    /// Microsoft Entra service principal with a client secret.
    ServicePrincipal {
        /// Tenant id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// Client secret.
        client_secret: SecretRef,
    },
    /// Shared access signature.
    Sas(SecretRef),
}

/// Where the credentials of an S3 bucket or an Azure container come from. In TOML:
/// `credentials = "ambient"` or `credentials = "anonymous"` beside the storage's or the
/// source's other settings; absent, only the declared keys are used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credentials {
    /// The keys the configuration declares, and nothing from the host: declaring none
    /// is a configuration error. The default.
    #[default]
    Declared,
    /// The host's own credentials, declared keys aside: for S3 the `AWS_*` environment
    /// variables, the shared profile and the instance or container role; for Azure (sources
    /// only) the `AZURE_*` variables and the managed identity.
    Ambient,
    /// No credentials at all: unsigned requests, for public buckets and containers.
    Anonymous,
}

impl Credentials {
    /// True for [`Credentials::Declared`] (the default, left out when written).
    pub fn is_declared(&self) -> bool {
        *self == Credentials::Declared
    }

    /// The TOML spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Credentials::Declared => "declared",
            Credentials::Ambient => "ambient",
            Credentials::Anonymous => "anonymous",
        }
    }
}

/// The problems of how an S3 store authenticates: keys declared in pairs, some
/// credentials chosen (declared keys, or `credentials = "ambient"` or `"anonymous"`),
/// and not both. `prefix` is the configuration key of the settings
/// (`environment.storage`, `sources.0.access`).
pub fn s3_credential_errors(
    prefix: &str,
    access_key_id: bool,
    secret_access_key: bool,
    session_token: bool,
    credentials: Credentials,
) -> Vec<ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    let mut errors = Vec::new();
    if access_key_id != secret_access_key {
        errors.push(ConfigError::new(
            key(if access_key_id { "secret_access_key" } else { "access_key_id" }),
            "access keys need both an access key id and a secret access key",
            "set both `access_key_id = { env = \"VAR\" }` and `secret_access_key = { env = \"VAR\" }`",
        ));
    }
    let keys = access_key_id || secret_access_key;
    match credentials {
        Credentials::Declared if !keys => errors.push(ConfigError::new(
            key("access_key_id"),
            "no access keys are declared, and the host's own credentials are used only when the configuration asks for them",
            "set `access_key_id = { env = \"VAR\" }` and `secret_access_key = { env = \"VAR\" }`; or `credentials = \"ambient\"` to use this host's AWS credentials (AWS_* variables, profile, instance role); or `credentials = \"anonymous\"` for a public bucket",
        )),
        Credentials::Ambient | Credentials::Anonymous if keys || session_token => {
            errors.push(ConfigError::new(
                key("credentials"),
                format!(
                    "`credentials = \"{}\"` is set beside declared keys",
                    credentials.as_str()
                ),
                "keep one: remove `credentials` to use the declared keys, or remove the keys",
            ))
        }
        _ => {}
    }
    if session_token && !keys && credentials.is_declared() {
        errors.push(ConfigError::new(
            key("session_token"),
            "a session token is declared without access keys",
            "declare `access_key_id` and `secret_access_key` with it, or remove it",
        ));
    }
    errors
}

/// S3 or an S3-compatible store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket (plays the container).
    pub bucket: String,
    /// Optional prefix inside the bucket, e.g. `teams/marketing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Region of the bucket, e.g. `eu-west-1`.
    pub region: String,
    /// Endpoint override for S3-compatible stores, e.g. `http://127.0.0.1:8333`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Access key id; without it, `credentials` must say where credentials come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<SecretRef>,
    /// Secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<SecretRef>,
    /// Session token for temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<SecretRef>,
    /// Use path-style requests (`endpoint/bucket/key`), as most S3-compatible stores
    /// need. Defaults to true when an endpoint is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// Where credentials come from when no key is declared: the host's (`ambient`) or
    /// none (`anonymous`). By default only the declared keys are used.
    #[serde(default, skip_serializing_if = "Credentials::is_declared")]
    pub credentials: Credentials,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Where a parsed ADLS URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdlsLocation {
    /// Storage account.
    pub account: String,
    /// Container.
    pub container: String,
}

impl AdlsConfig {
    /// The account and container, from `url` or from `account`/`container`.
    pub fn location(&self) -> Result<AdlsLocation, ConfigError> {
        if let Some(url) = &self.url {
            return parse_adls_url(url);
        }
        let account = self.account.clone().filter(|a| !a.is_empty()).ok_or_else(|| {
            ConfigError::new(
                "environment.storage.account",
                "an ADLS environment needs a storage account",
                "set `account = \"<name>\"` or `url = \"abfss://customerinsights@<name>.dfs.core.windows.net\"`",
            )
        })?;
        Ok(AdlsLocation {
            account,
            container: self
                .container
                .clone()
                .unwrap_or_else(|| CONTAINER.to_string()),
        })
    }

    /// The authentication method; exactly one must be configured.
    pub fn auth(&self) -> Result<AdlsAuth, ConfigError> {
        let sp =
            self.client_secret.is_some() || self.tenant_id.is_some() || self.client_id.is_some();
        let count = [self.account_key.is_some(), sp, self.sas_token.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        let how = "set one of `account_key = { env = \"VAR\" }`, `sas_token = { env = \"VAR\" }`, or `tenant_id`, `client_id` and `client_secret = { env = \"VAR\" }`";
        if count != 1 {
            let msg = if count == 0 {
                "no authentication is configured"
            } else {
                "more than one authentication method is configured"
            };
            return Err(ConfigError::new("environment.storage", msg, how));
        }
        if let Some(k) = &self.account_key {
            return Ok(AdlsAuth::AccountKey(k.clone()));
        }
        if let Some(t) = &self.sas_token {
            return Ok(AdlsAuth::Sas(t.clone()));
        }
        match (&self.tenant_id, &self.client_id, &self.client_secret) {
            (Some(t), Some(c), Some(s)) => Ok(AdlsAuth::ServicePrincipal {
                tenant_id: t.clone(),
                client_id: c.clone(),
                client_secret: s.clone(),
            }),
            _ => {
                let missing = [
                    ("tenant_id", self.tenant_id.is_none()),
                    ("client_id", self.client_id.is_none()),
                    ("client_secret", self.client_secret.is_none()),
                ]
                .iter()
                .filter(|(_, m)| *m)
                .map(|(k, _)| *k)
                .collect::<Vec<_>>()
                .join(", ");
                Err(ConfigError::new(
                    format!("environment.storage.{}", missing.split(", ").next().unwrap_or("client_secret")),
                    format!("service principal authentication is missing {missing}"),
                    "a service principal needs `tenant_id`, `client_id` and `client_secret = { env = \"VAR\" }`",
                ))
            }
        }
    }
}

/// Parse an ADLS Gen2 URL. Gen1 (`adl://`, `*.azuredatalakestore.net`) is refused.
pub fn parse_adls_url(raw: &str) -> Result<AdlsLocation, ConfigError> {
    const KEY: &str = "environment.storage.url";
    let gen1 = || {
        ConfigError::new(
            KEY,
            format!("`{raw}` is an Azure Data Lake Storage Gen1 address; Gen1 is not supported"),
            "use a Data Lake Storage Gen2 account (a storage account with hierarchical namespace), e.g. `abfss://customerinsights@<account>.dfs.core.windows.net`",
        )
    };
    let url = Url::parse(raw).map_err(|e| {
        ConfigError::new(
            KEY,
            format!("`{raw}` is not a URL: {e}"),
            "write `abfss://customerinsights@<account>.dfs.core.windows.net`",
        )
    })?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if url.scheme() == "adl" || host.ends_with(".azuredatalakestore.net") {
        return Err(gen1());
    }
    let account_of = |host: &str| {
        host.split('.')
            .next()
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                ConfigError::new(
                    KEY,
                    format!("`{raw}` names no storage account"),
                    "write `abfss://customerinsights@<account>.dfs.core.windows.net`",
                )
            })
    };
    match url.scheme() {
        "abfss" | "abfs" | "az" | "azure" => {
            let container = url.username().to_string();
            if container.is_empty() {
                // az://container/path form
                let container = host.clone();
                return Err(ConfigError::new(
                    KEY,
                    format!("`{raw}` names container `{container}` but no account"),
                    "write `abfss://customerinsights@<account>.dfs.core.windows.net`",
                ));
            }
            Ok(AdlsLocation {
                account: account_of(&host)?,
                container,
            })
        }
        "https" => {
            let container = url
                .path_segments()
                .and_then(|mut s| s.next())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| CONTAINER.to_string());
            Ok(AdlsLocation {
                account: account_of(&host)?,
                container,
            })
        }
        other => Err(ConfigError::new(
            KEY,
            format!("`{raw}` has scheme `{other}`, which is not an ADLS Gen2 address"),
            "write `abfss://customerinsights@<account>.dfs.core.windows.net`",
        )),
    }
}

impl StorageConfig {
    /// Every shape problem of this configuration.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        match self {
            StorageConfig::Local(l) => {
                if l.path.as_os_str().is_empty() {
                    errors.push(ConfigError::new(
                        "environment.storage.path",
                        "the lake folder is empty",
                        "set `path = \"lake\"` (relative to the project folder) or an absolute path",
                    ));
                }
            }
            StorageConfig::Adls(a) => {
                match a.location() {
                    Ok(loc) if loc.container != CONTAINER => errors.push(ConfigError::new(
                        if a.url.is_some() {
                            "environment.storage.url"
                        } else {
                            "environment.storage.container"
                        },
                        format!(
                            "the container is `{}`, but it must be `{CONTAINER}`",
                            loc.container
                        ),
                        format!("create a container named `{CONTAINER}` in the account and use it"),
                    )),
                    Ok(_) => {}
                    Err(e) => errors.push(e),
                }
                if a.url.is_some() && (a.account.is_some() || a.container.is_some()) {
                    errors.push(ConfigError::new(
                        "environment.storage.url",
                        "both `url` and `account`/`container` are set",
                        "keep one: either `url` or `account` (with `container`)",
                    ));
                }
                if let Err(e) = a.auth() {
                    errors.push(e);
                }
                if let Some(ep) = &a.endpoint {
                    if let Err(e) = Url::parse(ep) {
                        errors.push(ConfigError::new(
                            "environment.storage.endpoint",
                            format!("`{ep}` is not a URL: {e}"),
                            "write the blob endpoint, e.g. `https://<account>.blob.core.windows.net`",
                        ));
                    }
                }
                if a.emulator && a.endpoint.is_none() {
                    errors.push(ConfigError::new(
                        "environment.storage.endpoint",
                        "`emulator = true` needs the emulator's endpoint",
                        "set `endpoint = \"http://127.0.0.1:10000/devstoreaccount1\"`",
                    ));
                }
                if a.allow_flat_namespace && !a.emulator {
                    errors.push(ConfigError::new(
                        "environment.storage.allow_flat_namespace",
                        "a flat namespace is accepted only for an emulator",
                        "enable hierarchical namespace on the account (a Gen2 account), or set `emulator = true` for Azurite",
                    ));
                }
            }
            StorageConfig::S3(s) => {
                if !valid_bucket(&s.bucket) {
                    errors.push(ConfigError::new(
                        "environment.storage.bucket",
                        format!("`{}` is not a valid bucket name", s.bucket),
                        "use 3-63 lowercase letters, digits, dots and hyphens",
                    ));
                }
                if s.region.trim().is_empty() {
                    errors.push(ConfigError::new(
                        "environment.storage.region",
                        "the bucket's region is empty",
                        "set `region = \"us-east-1\"` (or the region of the bucket)",
                    ));
                }
                errors.extend(s3_credential_errors(
                    "environment.storage",
                    s.access_key_id.is_some(),
                    s.secret_access_key.is_some(),
                    s.session_token.is_some(),
                    s.credentials,
                ));
                if let Some(ep) = &s.endpoint {
                    if Url::parse(ep).is_err() {
                        errors.push(ConfigError::new(
                            "environment.storage.endpoint",
                            format!("`{ep}` is not a URL"),
                            "write the endpoint with its scheme, e.g. `http://127.0.0.1:8333`",
                        ));
                    }
                }
                if let Some(p) = &s.prefix {
                    if p.contains("..") || p.starts_with('/') {
                        errors.push(ConfigError::new(
                            "environment.storage.prefix",
                            format!("`{p}` is not a relative folder"),
                            "write a folder inside the bucket without a leading slash, e.g. `teams/marketing`",
                        ));
                    }
                }
            }
        }
        errors
    }

    /// A short kind name: `local`, `adls` or `s3`.
    pub fn kind(&self) -> &'static str {
        match self {
            StorageConfig::Local(_) => "local",
            StorageConfig::Adls(_) => "adls",
            StorageConfig::S3(_) => "s3",
        }
    }

    /// Where the container is, for people (never contains a secret).
    pub fn describe(&self) -> String {
        match self {
            StorageConfig::Local(l) => format!("{}/{CONTAINER}", l.path.display()),
            StorageConfig::Adls(a) => match a.location() {
                Ok(loc) => format!(
                    "abfss://{}@{}.dfs.core.windows.net",
                    loc.container, loc.account
                ),
                Err(_) => a
                    .url
                    .clone()
                    .unwrap_or_else(|| "(invalid ADLS location)".into()),
            },
            StorageConfig::S3(s) => match &s.prefix {
                Some(p) => format!("s3://{}/{}", s.bucket, p.trim_matches('/')),
                None => format!("s3://{}", s.bucket),
            },
        }
    }

    /// The region the storage configuration states, if any.
    pub fn region(&self) -> Option<&str> {
        match self {
            StorageConfig::Local(_) => None,
            StorageConfig::Adls(a) => a.region.as_deref(),
            StorageConfig::S3(s) => Some(s.region.as_str()),
        }
    }

    /// Every secret reference this configuration uses, with its key.
    pub fn secret_refs(&self) -> Vec<(&'static str, &SecretRef)> {
        let mut out = Vec::new();
        match self {
            StorageConfig::Local(_) => {}
            StorageConfig::Adls(a) => {
                if let Some(s) = &a.account_key {
                    out.push(("account_key", s));
                }
                if let Some(s) = &a.client_secret {
                    out.push(("client_secret", s));
                }
                if let Some(s) = &a.sas_token {
                    out.push(("sas_token", s));
                }
            }
            StorageConfig::S3(s) => {
                if let Some(r) = &s.access_key_id {
                    out.push(("access_key_id", r));
                }
                if let Some(r) = &s.secret_access_key {
                    out.push(("secret_access_key", r));
                }
                if let Some(r) = &s.session_token {
                    out.push(("session_token", r));
                }
            }
        }
        out
    }
}

fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adls(url: &str) -> AdlsConfig {
        AdlsConfig {
            url: Some(url.into()),
            account_key: Some(SecretRef::Env("K".into())),
            ..Default::default()
        }
    }

    #[test]
    fn gen2_urls_parse_to_account_and_container() {
        for url in [
            "abfss://customerinsights@contoso.dfs.core.windows.net",
            "abfss://customerinsights@contoso.dfs.core.windows.net/",
            "https://contoso.dfs.core.windows.net/customerinsights",
            "https://contoso.blob.core.windows.net/customerinsights",
        ] {
            let loc = parse_adls_url(url).unwrap();
            assert_eq!(loc.account, "contoso", "{url}");
            assert_eq!(loc.container, "customerinsights", "{url}");
        }
    }

    #[test]
    fn gen1_urls_are_refused_by_name() {
        for url in [
            "adl://contoso.azuredatalakestore.net/folder",
            "https://contoso.azuredatalakestore.net/webhdfs/v1/x",
        ] {
            let err = parse_adls_url(url).unwrap_err();
            assert!(err.message.contains("Gen1 is not supported"), "{err}");
            assert_eq!(err.key, "environment.storage.url");
        }
    }

    #[test]
    fn container_must_be_customerinsights() {
        let errors =
            StorageConfig::Adls(adls("abfss://data@contoso.dfs.core.windows.net")).validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("must be `customerinsights`"));
    }

    #[test]
    fn adls_needs_exactly_one_auth_method() {
        let mut a = adls("abfss://customerinsights@contoso.dfs.core.windows.net");
        a.account_key = None;
        assert!(a.auth().unwrap_err().message.contains("no authentication"));
        a.account_key = Some(SecretRef::Env("K".into()));
        a.sas_token = Some(SecretRef::Env("S".into()));
        assert!(a.auth().unwrap_err().message.contains("more than one"));
        a.account_key = None;
        a.sas_token = None;
        a.tenant_id = Some("t".into());
        a.client_secret = Some(SecretRef::Env("C".into()));
        let err = a.auth().unwrap_err();
        assert_eq!(err.key, "environment.storage.client_id");
        a.client_id = Some("c".into());
        assert!(matches!(
            a.auth().unwrap(),
            AdlsAuth::ServicePrincipal { .. }
        ));
    }

    #[test]
    fn flat_namespace_only_with_emulator() {
        let mut a = adls("abfss://customerinsights@contoso.dfs.core.windows.net");
        a.allow_flat_namespace = true;
        let errors = StorageConfig::Adls(a.clone()).validate();
        assert!(errors
            .iter()
            .any(|e| e.key == "environment.storage.allow_flat_namespace"));
        a.emulator = true;
        a.endpoint = Some("http://127.0.0.1:10000/devstoreaccount1".into());
        assert!(StorageConfig::Adls(a).validate().is_empty());
    }

    #[test]
    fn s3_without_keys_needs_an_explicit_credentials_choice() {
        let keyless = |credentials: &str| {
            let text =
                format!("kind = \"s3\"\nbucket = \"lake\"\nregion = \"eu-west-1\"\n{credentials}");
            toml::from_str::<StorageConfig>(&text).unwrap()
        };
        let errors = keyless("").validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "environment.storage.access_key_id");
        let text = errors[0].to_string();
        assert!(
            text.contains("no access keys are declared")
                && text.contains("credentials = \"ambient\"")
                && text.contains("credentials = \"anonymous\"")
                && text.contains("access_key_id = { env"),
            "{text}"
        );
        for choice in ["ambient", "anonymous"] {
            let config = keyless(&format!("credentials = \"{choice}\""));
            assert!(config.validate().is_empty(), "{choice}");
            // written back as read
            let again: StorageConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
            assert_eq!(again, config);
        }
        let StorageConfig::S3(s) = keyless("credentials = \"ambient\"") else {
            unreachable!()
        };
        assert_eq!(s.credentials, Credentials::Ambient);
        // the default is not written
        let StorageConfig::S3(mut s) = keyless("") else {
            unreachable!()
        };
        s.access_key_id = Some(SecretRef::Env("A".into()));
        s.secret_access_key = Some(SecretRef::Env("B".into()));
        let config = StorageConfig::S3(s.clone());
        assert!(config.validate().is_empty());
        assert!(!toml::to_string(&config).unwrap().contains("credentials"));
        // keys and an ambient choice together are refused
        s.credentials = Credentials::Ambient;
        let keys: Vec<_> = StorageConfig::S3(s)
            .validate()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["environment.storage.credentials"]);
        assert!(toml::from_str::<StorageConfig>(
            "kind = \"s3\"\nbucket = \"lake\"\nregion = \"x\"\ncredentials = \"env\""
        )
        .is_err());
    }

    #[test]
    fn s3_validation_names_keys() {
        let s = S3Config {
            bucket: "Bad_Bucket".into(),
            region: "".into(),
            access_key_id: Some(SecretRef::Env("A".into())),
            ..Default::default()
        };
        let keys: Vec<_> = StorageConfig::S3(s)
            .validate()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(
            keys,
            [
                "environment.storage.bucket",
                "environment.storage.region",
                "environment.storage.secret_access_key"
            ]
        );
    }
}
