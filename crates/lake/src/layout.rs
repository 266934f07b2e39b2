//! The lake layout of one environment, and the [`Lake`] type every project I/O goes
//! through.
//!
//! ```text
//! <container = customerinsights>/
//!   ci_<environmentId>/
//!     DataIngestion/<Source>/model.json
//!     DataIngestion/<Source>/<Table>/<runId>/part-00000.csv|parquet
//!     Unification/model.json
//!     Activities/model.json
//!     Measures/model.json
//!     Segments/model.json
//!     Exports/<ExportName>/...
//!     _lakecdp/                       run manifests, locks, probes (never read by users)
//! ```
//!
//! A `Lake` only ever addresses paths under its own `ci_<id>/` folder, so environments
//! that share a container never see each other's files.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use lakecdp_core::{EnvironmentId, PartitionFormat};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use crate::backend::{Capabilities, StoreHandle};
use crate::error::{Error, Result};

pub use lakecdp_core::Process;

/// The internal folder of an environment.
pub const INTERNAL: &str = "_lakecdp";

/// One environment's view of its storage.
///
/// Its `Debug` leaves the store out: backends' own `Debug` can print credentials.
#[derive(Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    root: Path,
    env: EnvironmentId,
    capabilities: Capabilities,
    base_url: String,
    /// The environment's folder name (`ci_<id>`) for a lake rooted at it: a location that
    /// names it under another root is a location of this lake copied or moved as a whole.
    anchor: Option<String>,
    format: PartitionFormat,
    fence: Option<Arc<crate::lease::Fence>>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("root", &self.root.as_ref())
            .field("base_url", &self.base_url)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Lake {
    /// The lake of environment `env` in an opened storage.
    pub fn new(handle: &StoreHandle, env: EnvironmentId) -> Self {
        let root = handle.container.clone().join(env.folder());
        Self {
            store: handle.store.clone(),
            root,
            env,
            capabilities: handle.capabilities,
            base_url: format!("{}/{}", handle.base_url, env.folder()),
            anchor: Some(env.folder()),
            format: PartitionFormat::Csv,
            fence: None,
        }
    }

    /// The same lake, publishing only while `fence`'s lease is held: every commit of a
    /// process folder first checks that the lease still carries the fence's token, and
    /// is refused with [`crate::Error::Fenced`] once another holder has taken it over.
    pub fn fenced(mut self, fence: crate::lease::Fence) -> Self {
        self.fence = Some(Arc::new(fence));
        self
    }

    /// The fence commits check, if any.
    pub fn fence(&self) -> Option<&crate::lease::Fence> {
        self.fence.as_deref()
    }

    /// The lake of environment `env` rooted at `folder` of the container (relative,
    /// `/`-separated) rather than at the environment's own folder: for writers that keep
    /// another layout, such as exports into a lake, and use its lock objects.
    pub fn at_folder(handle: &StoreHandle, folder: &str, env: EnvironmentId) -> Self {
        let parts: Vec<&str> = folder.split('/').filter(|s| !s.is_empty()).collect();
        let root = parts
            .iter()
            .fold(handle.container.clone(), |p, part| p.join(*part));
        Self {
            store: handle.store.clone(),
            root,
            env,
            capabilities: handle.capabilities,
            base_url: format!("{}/{}", handle.base_url, parts.join("/")),
            anchor: None,
            format: PartitionFormat::Csv,
            fence: None,
        }
    }

    /// The same lake, writing partitions in `format`.
    pub fn with_format(mut self, format: PartitionFormat) -> Self {
        self.format = format;
        self
    }

    /// The partition format processes write.
    pub fn format(&self) -> PartitionFormat {
        self.format
    }

    /// The environment.
    pub fn environment(&self) -> EnvironmentId {
        self.env
    }

    /// The object store (for engines that register it; paths must stay under [`Lake::root`]).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// What the backend supports.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// The environment root, `<container>/ci_<id>`, in the store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute location of a lake path, as written in `model.json` partition
    /// locations: a plain absolute path on a local lake (what the CDM SDK's local adapter
    /// and pyarrow open), the storage's URL otherwise.
    pub fn url_of(&self, relative: &str) -> String {
        format!("{}/{}", self.base_url, relative.trim_start_matches('/'))
    }

    /// The path relative to the environment root of an absolute partition location of
    /// this lake, if it is one.
    ///
    /// Besides [`Lake::url_of`]'s form, it accepts the `file://` URLs of local lakes
    /// written by earlier versions, and a location naming this environment's folder
    /// (`ci_<id>`) under another root: the lake was copied or moved as a whole, and the
    /// location is read from this lake, never from the other root. A location with `.`
    /// or `..` segments after the root is none of this lake's.
    pub fn relative_of_url(&self, location: &str) -> Option<String> {
        let decoded;
        let location = if location.starts_with("file://") {
            decoded = url::Url::parse(location)
                .ok()?
                .to_file_path()
                .ok()?
                .to_str()?
                .to_string();
            decoded.as_str()
        } else {
            location
        };
        let rest = match location.strip_prefix(&self.base_url) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
            _ => {
                let needle = format!("/{}/", self.anchor.as_deref()?);
                let at = location.rfind(&needle)?;
                &location[at + needle.len() - 1..]
            }
        };
        let rest = rest.trim_start_matches('/');
        if rest.split('/').any(|s| s == "." || s == "..") {
            return None;
        }
        Some(rest.to_string())
    }

    /// A path under the environment root. `relative` uses `/` separators.
    pub fn path(&self, relative: &str) -> Path {
        relative
            .split('/')
            .filter(|s| !s.is_empty())
            .fold(self.root.clone(), |p, part| p.join(part))
    }

    /// A path relative to the environment root, if `path` is inside it.
    pub fn relative(&self, path: &Path) -> Option<String> {
        path.prefix_match(&self.root).map(|parts| {
            parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/")
        })
    }

    /// The internal folder `_lakecdp/<relative>`.
    pub fn internal(&self, relative: &str) -> String {
        format!("{INTERNAL}/{}", relative.trim_start_matches('/'))
    }

    /// Put bytes at a relative path (atomic, overwrites).
    pub async fn put(&self, relative: &str, bytes: impl Into<Bytes>) -> Result<()> {
        let path = self.path(relative);
        self.store
            .put(&path, PutPayload::from_bytes(bytes.into()))
            .await
            .map_err(|e| Error::store(&path, e))?;
        Ok(())
    }

    /// Put bytes given in parts at a relative path (atomic, overwrites): the parts are
    /// written one after the other, never joined in memory.
    pub async fn put_parts(&self, relative: &str, parts: Vec<Bytes>) -> Result<()> {
        let path = self.path(relative);
        self.store
            .put(&path, parts.into_iter().collect::<PutPayload>())
            .await
            .map_err(|e| Error::store(&path, e))?;
        Ok(())
    }

    /// Get the bytes of a range of the object at a relative path.
    pub async fn get_range(&self, relative: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        let path = self.path(relative);
        self.store
            .get_range(&path, range)
            .await
            .map_err(|e| Error::store(&path, e))
    }

    /// Get the bytes of several ranges of the object at a relative path, all at once.
    pub async fn get_ranges(
        &self,
        relative: &str,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<Bytes>> {
        let path = self.path(relative);
        let reads = ranges
            .iter()
            .map(|r| self.store.get_range(&path, r.clone()));
        futures::future::try_join_all(reads)
            .await
            .map_err(|e| Error::store(&path, e))
    }

    /// Get the bytes at a relative path.
    pub async fn get(&self, relative: &str) -> Result<Bytes> {
        let path = self.path(relative);
        let r = self
            .store
            .get(&path)
            .await
            .map_err(|e| Error::store(&path, e))?;
        r.bytes().await.map_err(|e| Error::store(&path, e))
    }

    /// The metadata of the object at a relative path.
    pub async fn head(&self, relative: &str) -> Result<ObjectMeta> {
        let path = self.path(relative);
        self.store
            .head(&path)
            .await
            .map_err(|e| Error::store(&path, e))
    }

    /// Read the object at a relative path as `options` say (a range, a version): its
    /// metadata and a stream of its bytes.
    pub async fn get_opts(
        &self,
        relative: &str,
        options: object_store::GetOptions,
    ) -> Result<object_store::GetResult> {
        let path = self.path(relative);
        self.store
            .get_opts(&path, options)
            .await
            .map_err(|e| Error::store(&path, e))
    }

    /// Whether an object exists at a relative path.
    pub async fn exists(&self, relative: &str) -> Result<bool> {
        let path = self.path(relative);
        match self.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::store(&path, e)),
        }
    }

    /// Delete an object (a missing one is not an error).
    pub async fn delete(&self, relative: &str) -> Result<()> {
        let path = self.path(relative);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store(&path, e)),
        }
    }

    /// Every object under a relative folder, recursively, sorted by path.
    pub async fn list(&self, relative: &str) -> Result<Vec<ObjectMeta>> {
        let prefix = self.path(relative);
        let mut all: Vec<ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::store(&prefix, e))?;
        all.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(all)
    }

    /// The names of the immediate sub-folders of a relative folder, sorted.
    pub async fn list_folders(&self, relative: &str) -> Result<Vec<String>> {
        let prefix = self.path(relative);
        let listing = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| Error::store(&prefix, e))?;
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Delete everything under a relative folder; returns how many objects were deleted.
    pub async fn delete_folder(&self, relative: &str) -> Result<usize> {
        let objects = self.list(relative).await?;
        let n = objects.len();
        for o in objects {
            match self.store.delete(&o.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::store(&o.location, e)),
            }
        }
        Ok(n)
    }
}
