//! The local folder backend: `<path>/customerinsights/...` on the file system.
//!
//! Writes are atomic (a temporary file renamed into place) and `PutMode::Create` is
//! supported; `PutMode::Update` is not, so the publish protocol serialises local
//! publishers with a lock object instead (see [`crate::publish`]).

use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use lakecdp_core::{LocalConfig, CONTAINER};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

use super::{Capabilities, StoreHandle};
use crate::error::{Error, Result};

/// The absolute folder a local configuration points at.
pub fn root_dir(config: &LocalConfig, project_dir: Option<&FsPath>) -> PathBuf {
    match (config.path.is_relative(), project_dir) {
        (true, Some(base)) => base.join(&config.path),
        _ => config.path.clone(),
    }
}

/// Open a local lake. The lake root folder is created if missing (the container
/// sub-folder is not: that is the prerequisite checks' business).
pub fn open(config: &LocalConfig, project_dir: Option<&FsPath>) -> Result<StoreHandle> {
    let root = root_dir(config, project_dir);
    std::fs::create_dir_all(&root).map_err(|e| {
        Error::Service(format!("cannot create lake folder {}: {e}", root.display()))
    })?;
    let root = root.canonicalize().map_err(|e| {
        Error::Service(format!(
            "cannot resolve lake folder {}: {e}",
            root.display()
        ))
    })?;
    let store = LocalFileSystem::new_with_prefix(&root)
        .map_err(|e| Error::Service(format!("cannot open lake folder {}: {e}", root.display())))?
        .with_automatic_cleanup(true);
    let store = TidyFolders(store);
    let base_url = plain_location(&root.join(CONTAINER));
    Ok(StoreHandle {
        store: Arc::new(store),
        container: Path::from(CONTAINER),
        capabilities: Capabilities {
            conditional_update: false,
            conditional_create: true,
        },
        base_url,
        kind: "local",
    })
}

/// Open a folder that plays the container itself (an export destination, not an
/// environment's lake): it is created if missing.
pub fn open_folder(folder: &FsPath) -> Result<StoreHandle> {
    std::fs::create_dir_all(folder)
        .map_err(|e| Error::Service(format!("cannot create folder {}: {e}", folder.display())))?;
    let root = folder
        .canonicalize()
        .map_err(|e| Error::Service(format!("cannot resolve folder {}: {e}", folder.display())))?;
    let store = LocalFileSystem::new_with_prefix(&root)
        .map_err(|e| Error::Service(format!("cannot open folder {}: {e}", root.display())))?
        .with_automatic_cleanup(true);
    let store = TidyFolders(store);
    let base_url = plain_location(&root);
    Ok(StoreHandle {
        store: Arc::new(store),
        container: Path::from(""),
        capabilities: Capabilities {
            conditional_update: false,
            conditional_create: true,
        },
        base_url,
        kind: "local",
    })
}

/// The location prefix of a local folder in `model.json` partition locations: its plain
/// absolute path with `/` separators. The CDM SDK's local adapter and pyarrow open plain
/// paths; neither resolves `file://` URLs.
fn plain_location(folder: &FsPath) -> String {
    let shown = folder.to_string_lossy().replace('\\', "/");
    shown.trim_end_matches('/').to_string()
}

/// Whether the container folder exists.
pub fn container_exists(config: &LocalConfig, project_dir: Option<&FsPath>) -> bool {
    root_dir(config, project_dir).join(CONTAINER).is_dir()
}

/// Create the container folder.
pub fn create_container(config: &LocalConfig, project_dir: Option<&FsPath>) -> Result<()> {
    let dir = root_dir(config, project_dir).join(CONTAINER);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Service(format!("cannot create {}: {e}", dir.display())))
}

/// How many times a write is tried again when its folder vanished while it was being created.
const VANISHED_FOLDER_TRIES: usize = 16;

/// The local file system with empty folders removed after a delete (so retention leaves no
/// empty run folders behind) and writes that survive that removal racing them.
///
/// A delete that empties a folder removes it and its emptied parents. A write into the same
/// folder at that moment (a lock taken as another is released, a second process publishing)
/// creates the missing folders one by one, and a removal between two of those steps makes the
/// write fail with "not found" although nothing is wrong. Such a write is simply tried again:
/// the folders are created anew, and a folder holding the write's staging file is never
/// removed, so the retry converges.
#[derive(Debug)]
struct TidyFolders(LocalFileSystem);

impl fmt::Display for TidyFolders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Whether a write failed only because a folder on its way was removed under it.
fn folder_vanished(error: &object_store::Error) -> bool {
    let object_store::Error::Generic { source, .. } = error else {
        return false;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            // a folder created while another was being removed: "not found" for a folder
            // on the way, "exists" for one found made and then gone (a file that exists
            // is reported as `AlreadyExists` of the store, never as this)
            return matches!(
                io.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::AlreadyExists
            );
        }
        cause = e.source();
    }
    false
}

/// Run a write, again while it fails only because its folder vanished under it.
async fn retrying<T, F, Fut>(mut write: F) -> object_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = object_store::Result<T>>,
{
    let mut tries = 1;
    loop {
        match write().await {
            Err(e) if tries < VANISHED_FOLDER_TRIES && folder_vanished(&e) => {
                // let the remover finish before creating the folders again
                tokio::time::sleep(std::time::Duration::from_millis(tries as u64)).await;
                tries += 1;
            }
            done => return done,
        }
    }
}

#[async_trait]
impl ObjectStore for TidyFolders {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        retrying(|| self.0.put_opts(location, payload.clone(), opts.clone())).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        retrying(|| self.0.put_multipart_opts(location, opts.clone())).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.0.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.0.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        retrying(|| self.0.copy_opts(from, to, options.clone())).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        retrying(|| self.0.rename_opts(from, to, options.clone())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{ObjectStoreExt, PutMode};

    /// Writers and deleters in one deep folder, on several threads: each delete that empties
    /// the folder removes it (and its parents) while other writes are creating it again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writes_survive_their_folder_being_tidied_away_under_them() {
        let dir = tempfile::tempdir().unwrap();
        let handle = open(
            &LocalConfig {
                path: dir.path().into(),
            },
            None,
        )
        .unwrap();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let store = handle.store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..400 {
                    let path = Path::from(format!("customerinsights/a/b/c/d/e/f/g/h/x{t}-{i}"));
                    let opts = PutOptions {
                        mode: PutMode::Create,
                        ..Default::default()
                    };
                    store
                        .put_opts(&path, PutPayload::from_static(b"x"), opts)
                        .await
                        .unwrap();
                    store.delete(&path).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // and the folders emptied last are gone again
        assert!(!dir.path().join("customerinsights/a").exists());
    }

    #[test]
    fn only_a_missing_folder_counts_as_vanished() {
        let missing = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::NotFound)),
        };
        assert!(folder_vanished(&missing));
        let raced = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::AlreadyExists)),
        };
        assert!(folder_vanished(&raced));
        let denied = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        };
        assert!(!folder_vanished(&denied));
        let absent = object_store::Error::NotFound {
            path: "x".into(),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::NotFound)),
        };
        assert!(!folder_vanished(&absent));
    }
}
