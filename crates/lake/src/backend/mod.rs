//! Object store backends: one per storage kind, each in its own module.
//!
//! [`open`] turns a validated [`StorageConfig`] into a [`StoreHandle`]: the object store,
//! the path of the container inside it, what the backend can do, and how partition
//! locations are written as absolute URLs in `model.json`.

pub mod azure;
pub mod local;
pub mod s3;
pub(crate) mod sign;

use std::path::Path as FsPath;
use std::sync::Arc;

use lakecdp_core::{ConfigErrors, StorageConfig};
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::Result;

/// What a backend supports, so the publish protocol picks the right path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `PutMode::Update` (compare-and-swap on the previous version) is implemented.
    pub conditional_update: bool,
    /// `PutMode::Create` (fail if the object exists) is implemented.
    pub conditional_create: bool,
}

/// An opened storage: the store and where the container is in it.
///
/// Its `Debug` leaves the store out: backends' own `Debug` can print credentials.
#[derive(Clone)]
pub struct StoreHandle {
    /// The object store, rooted so that `container` is a path inside it.
    pub store: Arc<dyn ObjectStore>,
    /// The container's path in `store` (empty for stores rooted at the container).
    pub container: Path,
    /// What the backend supports.
    pub capabilities: Capabilities,
    /// URL prefix of `container`, used for absolute partition locations in `model.json`
    /// (e.g. `https://acct.dfs.core.windows.net/customerinsights`), without a trailing
    /// slash.
    pub base_url: String,
    /// Storage kind: `local`, `adls` or `s3`.
    pub kind: &'static str,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("container", &self.container.as_ref())
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

/// Open the storage an environment's configuration describes.
///
/// `project_dir` resolves relative local paths and relative secret files.
pub fn open(config: &StorageConfig, project_dir: Option<&FsPath>) -> Result<StoreHandle> {
    open_with(
        config,
        project_dir,
        &crate::secrets::Secrets::from_refs(project_dir),
    )
}

/// [`open`], with the secrets the configuration refers to found through `secrets`
/// (values handed over in memory, e.g. opened from the vault).
pub fn open_with(
    config: &StorageConfig,
    project_dir: Option<&FsPath>,
    secrets: &crate::secrets::Secrets,
) -> Result<StoreHandle> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(ConfigErrors(errors).into());
    }
    match config {
        StorageConfig::Local(c) => local::open(c, project_dir),
        StorageConfig::Adls(c) => azure::open_with(c, secrets),
        StorageConfig::S3(c) => s3::open_with(c, secrets),
    }
}

/// How a request to a storage service's own API (account information, container
/// existence) failed, classified for the prerequisite checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceError {
    /// No answer: DNS, connection refused, TLS, timeout.
    Unreachable(String),
    /// The credentials were rejected (wrong or rotated key, bad signature, expired token).
    Unauthenticated {
        /// Service error code, e.g. `AuthenticationFailed`, `SignatureDoesNotMatch`.
        code: String,
    },
    /// Authenticated, but not allowed.
    Forbidden {
        /// Service error code, e.g. `AuthorizationPermissionMismatch`, `AccessDenied`.
        code: String,
    },
    /// The container or bucket does not exist.
    NotFound {
        /// Service error code.
        code: String,
    },
    /// Anything else.
    Other {
        /// HTTP status.
        status: u16,
        /// Service error code, when given.
        code: String,
    },
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Unreachable(m) => write!(f, "unreachable: {m}"),
            ServiceError::Unauthenticated { code } => write!(f, "credentials rejected ({code})"),
            ServiceError::Forbidden { code } => write!(f, "access denied ({code})"),
            ServiceError::NotFound { code } => write!(f, "not found ({code})"),
            ServiceError::Other { status, code } => write!(f, "HTTP {status} ({code})"),
        }
    }
}

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

pub(crate) fn unreachable(e: reqwest::Error) -> ServiceError {
    // reqwest errors can carry the URL; the URL never holds a secret here (SAS tokens
    // are added as query pairs only for the request and stripped from the message).
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    ServiceError::Unreachable(msg)
}
