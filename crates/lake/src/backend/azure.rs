//! Azure Data Lake Storage Gen2, through object_store's Azure backend for data, and a
//! small Blob service client for what object_store does not offer: Get Account
//! Information (hierarchical namespace), container existence and creation.
//!
//! An endpoint override serves private endpoints and the Azurite emulator. The emulator
//! is an explicit switch (`emulator = true`): it allows plain HTTP and path-style
//! addressing, where the account name is the first path segment of the endpoint.

use std::path::Path as FsPath;
use std::sync::Arc;

use chrono::Utc;
use lakecdp_core::{AdlsAuth, AdlsConfig, Credentials, Secret};
use object_store::azure::{AzureConfigKey, AzureCredential, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path;
use url::Url;

use super::{http_client, sign, unreachable, Capabilities, ServiceError, StoreHandle};
use crate::error::{Error, Result};
use crate::secrets::Secrets;

const API_VERSION: &str = "2021-08-06";

enum Auth {
    Key(Secret),
    Sas(Vec<(String, String)>),
    Bearer(Arc<MicrosoftAzure>),
}

fn resolved_auth(config: &AdlsConfig, secrets: &Secrets) -> Result<(AdlsAuth, Option<Secret>)> {
    let auth = config.auth().map_err(lakecdp_core::ConfigErrors::from)?;
    let secret = match &auth {
        AdlsAuth::AccountKey(r) => Some(secrets.resolve("environment.storage.account_key", r)?),
        AdlsAuth::Sas(r) => Some(secrets.resolve("environment.storage.sas_token", r)?),
        AdlsAuth::ServicePrincipal { client_secret, .. } => {
            Some(secrets.resolve("environment.storage.client_secret", client_secret)?)
        }
    };
    Ok((auth, secret))
}

fn sas_pairs(token: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(token.trim_start_matches('?').as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn builder(config: &AdlsConfig, secrets: &Secrets) -> Result<MicrosoftAzureBuilder> {
    let loc = config
        .location()
        .map_err(lakecdp_core::ConfigErrors::from)?;
    let (auth, secret) = resolved_auth(config, secrets)?;
    let mut b = MicrosoftAzureBuilder::new()
        .with_account(&loc.account)
        .with_container_name(&loc.container);
    // kept in the Secret, which wipes it, until the builder copies it
    let secret = secret.unwrap_or_else(|| Secret::new(""));
    let secret = secret.expose();
    b = match auth {
        AdlsAuth::AccountKey(_) => b.with_access_key(secret),
        AdlsAuth::Sas(_) => b.with_sas_authorization(sas_pairs(secret)),
        AdlsAuth::ServicePrincipal {
            tenant_id,
            client_id,
            ..
        } => b
            .with_tenant_id(tenant_id)
            .with_client_id(client_id)
            .with_client_secret(secret),
    };
    if let Some(ep) = &config.endpoint {
        b = b.with_endpoint(ep.trim_end_matches('/').to_string());
    }
    if let Some(host) = &config.authority_host {
        b = b.with_authority_host(host.trim_end_matches('/'));
    }
    if config.emulator {
        b = b
            .with_allow_http(true)
            .with_config(AzureConfigKey::DisableTagging, "true");
    }
    Ok(b)
}

/// The builder of a store whose credentials are the host's (`AZURE_*` variables, the
/// managed identity) or none at all (unsigned requests to a public container): what a
/// source may ask for, never an environment's storage.
fn undeclared_builder(
    config: &AdlsConfig,
    credentials: Credentials,
) -> Result<MicrosoftAzureBuilder> {
    let loc = config
        .location()
        .map_err(lakecdp_core::ConfigErrors::from)?;
    let b = match credentials {
        Credentials::Ambient => MicrosoftAzureBuilder::from_env(),
        Credentials::Anonymous | Credentials::Declared => {
            MicrosoftAzureBuilder::new().with_skip_signature(true)
        }
    };
    let mut b = b
        .with_account(&loc.account)
        .with_container_name(&loc.container);
    if let Some(ep) = &config.endpoint {
        b = b.with_endpoint(ep.trim_end_matches('/').to_string());
    }
    if config.emulator {
        b = b
            .with_allow_http(true)
            .with_config(AzureConfigKey::DisableTagging, "true");
    }
    Ok(b)
}

fn build_err(e: object_store::Error) -> Error {
    // Builder errors describe configuration (bad key encoding, missing account), never values.
    Error::Service(format!("cannot configure Azure storage: {e}"))
}

/// Open an ADLS Gen2 container.
pub fn open(config: &AdlsConfig, project_dir: Option<&FsPath>) -> Result<StoreHandle> {
    open_with(config, &Secrets::from_refs(project_dir))
}

/// Open an ADLS Gen2 (or Blob) container, its secrets found through `secrets`.
pub fn open_with(config: &AdlsConfig, secrets: &Secrets) -> Result<StoreHandle> {
    open_with_builder(config, builder(config, secrets)?)
}

fn open_with_builder(config: &AdlsConfig, builder: MicrosoftAzureBuilder) -> Result<StoreHandle> {
    let loc = config
        .location()
        .map_err(lakecdp_core::ConfigErrors::from)?;
    let store = builder.build().map_err(build_err)?;
    let base_url = match &config.endpoint {
        Some(ep) => format!("{}/{}", ep.trim_end_matches('/'), loc.container),
        None => format!(
            "https://{}.dfs.core.windows.net/{}",
            loc.account, loc.container
        ),
    };
    Ok(StoreHandle {
        store: Arc::new(store),
        container: Path::default(),
        capabilities: Capabilities {
            conditional_update: true,
            conditional_create: true,
        },
        base_url,
        kind: "adls",
    })
}

/// Open a container a source reads from, with the credentials it chose: its declared
/// key or SAS token ([`open`]), the host's own Azure credentials (`ambient`), or none
/// (`anonymous`, a public container). Nothing of the host's environment is read unless
/// `ambient` is asked for.
pub fn open_source(
    config: &AdlsConfig,
    credentials: Credentials,
    project_dir: Option<&FsPath>,
) -> Result<StoreHandle> {
    if credentials.is_declared() {
        return open(config, project_dir);
    }
    open_with_builder(config, undeclared_builder(config, credentials)?)
}

/// The path of a file system's path in a DFS request.
fn dfs_path(filesystem: &str, path: &str) -> String {
    let path = path.trim_matches('/');
    if path.is_empty() {
        format!("{filesystem}/")
    } else {
        format!("{filesystem}/{path}")
    }
}

/// One page of a recursive ACL change.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecursiveAclPage {
    /// Folders changed.
    #[serde(default)]
    pub directories_successful: u64,
    /// Files changed.
    #[serde(default)]
    pub files_successful: u64,
    /// Paths that failed.
    #[serde(default)]
    pub failure_count: u64,
    /// Some of the paths that failed, with why.
    #[serde(default)]
    pub failed_entries: Vec<FailedAclEntry>,
    /// Where the next page starts (`x-ms-continuation`), when there is one.
    #[serde(skip)]
    pub continuation: Option<String>,
}

/// A path a recursive ACL change failed on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedAclEntry {
    /// The path.
    pub name: String,
    /// `FILE` or `DIRECTORY`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Why.
    #[serde(default)]
    pub error_message: String,
}

/// What Get Account Information says about an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// `x-ms-is-hns-enabled`, when the service returned it.
    pub hns_enabled: Option<bool>,
    /// `x-ms-account-kind`, e.g. `StorageV2`.
    pub account_kind: Option<String>,
    /// `x-ms-sku-name`.
    pub sku: Option<String>,
}

/// A client for the Blob service calls the prerequisite checks need.
pub struct AzureService {
    client: reqwest::Client,
    base: Url,
    account: String,
    auth: Auth,
}

impl std::fmt::Debug for AzureService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureService")
            .field("base", &self.base.as_str())
            .field("account", &self.account)
            .finish()
    }
}

impl AzureService {
    /// A client for the account a configuration names.
    pub fn new(config: &AdlsConfig, project_dir: Option<&FsPath>) -> Result<Self> {
        Self::new_with(config, &Secrets::from_refs(project_dir))
    }

    /// A client for the account a configuration names, its secrets found through
    /// `secrets`.
    pub fn new_with(config: &AdlsConfig, secrets: &Secrets) -> Result<Self> {
        let loc = config
            .location()
            .map_err(lakecdp_core::ConfigErrors::from)?;
        let (auth, secret) = resolved_auth(config, secrets)?;
        let auth = match (auth, secret) {
            (AdlsAuth::AccountKey(_), Some(s)) => Auth::Key(s),
            (AdlsAuth::Sas(_), Some(s)) => Auth::Sas(sas_pairs(s.expose())),
            _ => Auth::Bearer(Arc::new(
                builder(config, secrets)?.build().map_err(build_err)?,
            )),
        };
        let base = match &config.endpoint {
            Some(ep) => ep.trim_end_matches('/').to_string(),
            None => format!("https://{}.blob.core.windows.net", loc.account),
        };
        let base =
            Url::parse(&base).map_err(|e| Error::Service(format!("invalid endpoint: {e}")))?;
        Ok(Self {
            client: http_client(),
            base,
            account: loc.account,
            auth,
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        sub_path: &str,
        query: &[(&str, &str)],
    ) -> Result<reqwest::Response, ServiceError> {
        self.send_with(method, sub_path, query, Vec::new()).await
    }

    /// A signed request with extra `x-ms-*` headers (signed with the others).
    async fn send_with(
        &self,
        method: reqwest::Method,
        sub_path: &str,
        query: &[(&str, &str)],
        extra: Vec<(&'static str, String)>,
    ) -> Result<reqwest::Response, ServiceError> {
        let base_path = self.base.path().trim_end_matches('/');
        let path = format!("{base_path}/{}", sub_path.trim_start_matches('/'));
        let mut url = self.base.clone();
        url.set_path(&path);
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Auth::Sas(sas) = &self.auth {
            pairs.extend(sas.iter().cloned());
        }
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs.iter());
        }
        let mut headers = vec![
            (
                "x-ms-date",
                Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            ),
            ("x-ms-version", API_VERSION.to_string()),
        ];
        if method == reqwest::Method::PUT || method == reqwest::Method::PATCH {
            headers.push(("content-length", "0".to_string()));
        }
        headers.extend(extra);
        let mut req = self.client.request(method.clone(), url);
        match &self.auth {
            Auth::Key(key) => {
                let sig = sign::azure_shared_key(
                    &self.account,
                    key.expose(),
                    method.as_str(),
                    &path,
                    query,
                    &headers,
                )
                .ok_or_else(|| ServiceError::Unauthenticated {
                    code: "InvalidAccountKey (the key is not valid base64)".into(),
                })?;
                req = req.header("authorization", sig);
            }
            Auth::Sas(_) => {}
            Auth::Bearer(store) => {
                let cred = store.credentials().get_credential().await.map_err(|e| {
                    ServiceError::Unauthenticated {
                        code: format!("token request failed: {e}"),
                    }
                })?;
                if let AzureCredential::BearerToken(token) = cred.as_ref() {
                    req = req.header("authorization", format!("Bearer {token}"));
                }
            }
        }
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(unreachable)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let code = resp
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Err(match (status, code.as_str()) {
            (401, _) | (403, "AuthenticationFailed") | (403, "InvalidAuthenticationInfo") => {
                ServiceError::Unauthenticated { code }
            }
            (403, _) => ServiceError::Forbidden { code },
            (404, _) => ServiceError::NotFound { code },
            _ => ServiceError::Other { status, code },
        })
    }

    /// A client of the account's Data Lake (DFS) endpoint, for its access control
    /// calls: `https://<account>.dfs.core.windows.net`, or the configured endpoint.
    pub fn dfs(config: &AdlsConfig, secrets: &Secrets) -> Result<Self> {
        let mut service = Self::new_with(config, secrets)?;
        if config.endpoint.is_none() {
            service.base = Url::parse(&format!("https://{}.dfs.core.windows.net", service.account))
                .map_err(|e| Error::Service(format!("invalid DFS endpoint: {e}")))?;
        }
        Ok(service)
    }

    /// The ACL of a path of a file system (`getAccessControl`): the `x-ms-acl` header,
    /// e.g. `user::rwx,group::r-x,other::---,default:...`.
    pub async fn get_access_control(
        &self,
        filesystem: &str,
        path: &str,
    ) -> Result<String, ServiceError> {
        let resp = self
            .send(
                reqwest::Method::HEAD,
                &dfs_path(filesystem, path),
                &[("action", "getAccessControl"), ("upn", "false")],
            )
            .await?;
        resp.headers()
            .get("x-ms-acl")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| ServiceError::Other {
                status: resp.status().as_u16(),
                code: "the answer carries no x-ms-acl: the account has no hierarchical namespace"
                    .into(),
            })
    }

    /// Replace the ACL of one path (`setAccessControl`).
    pub async fn set_access_control(
        &self,
        filesystem: &str,
        path: &str,
        acl: &str,
    ) -> Result<(), ServiceError> {
        self.send_with(
            reqwest::Method::PATCH,
            &dfs_path(filesystem, path),
            &[("action", "setAccessControl")],
            vec![("x-ms-acl", acl.to_string())],
        )
        .await
        .map(|_| ())
    }

    /// One page of `setAccessControlRecursive` in `mode` (`modify` adds or changes the
    /// entries given and keeps the others), from `continuation` when given.
    pub async fn set_access_control_recursive(
        &self,
        filesystem: &str,
        path: &str,
        mode: &str,
        acl: &str,
        continuation: Option<&str>,
    ) -> Result<RecursiveAclPage, ServiceError> {
        let mut query = vec![("action", "setAccessControlRecursive"), ("mode", mode)];
        if let Some(c) = continuation {
            query.push(("continuation", c));
        }
        let resp = self
            .send_with(
                reqwest::Method::PATCH,
                &dfs_path(filesystem, path),
                &query,
                vec![("x-ms-acl", acl.to_string())],
            )
            .await?;
        let next = resp
            .headers()
            .get("x-ms-continuation")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| ServiceError::Other {
            status,
            code: format!("unreadable setAccessControlRecursive answer: {e}"),
        })?;
        let mut page: RecursiveAclPage =
            serde_json::from_slice(&body).map_err(|e| ServiceError::Other {
                status,
                code: format!("unreadable setAccessControlRecursive answer: {e}"),
            })?;
        page.continuation = next;
        Ok(page)
    }

    /// Get Account Information.
    pub async fn account_info(&self) -> Result<AccountInfo, ServiceError> {
        let resp = self
            .send(
                reqwest::Method::GET,
                "/",
                &[("comp", "properties"), ("restype", "account")],
            )
            .await?;
        let h = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(AccountInfo {
            hns_enabled: h("x-ms-is-hns-enabled").map(|v| v.eq_ignore_ascii_case("true")),
            account_kind: h("x-ms-account-kind"),
            sku: h("x-ms-sku-name"),
        })
    }

    /// Whether a container exists.
    pub async fn container_exists(&self, container: &str) -> Result<bool, ServiceError> {
        match self
            .send(
                reqwest::Method::HEAD,
                container,
                &[("restype", "container")],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(ServiceError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Create a container (an existing one is not an error).
    pub async fn create_container(&self, container: &str) -> Result<(), ServiceError> {
        match self
            .send(reqwest::Method::PUT, container, &[("restype", "container")])
            .await
        {
            Ok(_) | Err(ServiceError::Other { status: 409, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
