//! The local folder backend: `<path>/customerinsights/...` on the file system.
//!
//! Writes are atomic (a temporary file renamed into place) and `PutMode::Create` is
//! supported; `PutMode::Update` is not, so the publish protocol serialises local
//! publishers with a lock object instead (see [`crate::publish`]).

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use lakecdp_core::{LocalConfig, CONTAINER};
use object_store::local::LocalFileSystem;
use object_store::path::Path;

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
