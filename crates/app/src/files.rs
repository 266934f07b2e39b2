//! Which local files an application may read and write.
//!
//! On the command line a project's relative paths resolve in its folder and absolute
//! paths are the user's own business. A server is different: whoever may apply a
//! revision could otherwise name any file the server's account can read (`/etc/...`,
//! another customer's folder) as a source and have its rows published to every Viewer.
//! A server therefore reads and writes local files under its data root only
//! (`lakecdp serve --data-root DIR`), and refuses every local path when it has none;
//! remote locations (`s3://`, `abfss://`, `az://`) are reached with their own
//! credentials and are not affected.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lakecdp_core::{ProjectFile, StorageConfig};
use lakecdp_engine::source::is_remote;

use crate::app::{absolute, App};
use crate::error::{Error, Result};

/// Where local paths may lead.
#[derive(Debug, Clone, Default)]
pub(crate) enum LocalFiles {
    /// Anywhere; relative paths resolve in the revision's base folder (the command line).
    #[default]
    Anywhere,
    /// Under `root` only (canonical); nowhere with `None` (a server). Relative paths
    /// resolve in `base`, a folder under the root, or in the root itself.
    Under {
        root: Option<Arc<Path>>,
        base: Option<Arc<Path>>,
    },
}

impl App {
    /// The same application, confined to local files under `data_root` (nowhere with
    /// `None`): what a server runs. Revisions applied through it have the data root as
    /// their base folder.
    pub fn confined_to(&self, data_root: Option<&Path>) -> Result<App> {
        let root = match data_root {
            Some(d) => Some(Arc::from(d.canonicalize().map_err(|e| {
                Error::invalid(format!(
                    "the data root {} cannot be used: {e} (create the folder, or leave --data-root out to refuse local paths)",
                    d.display()
                ))
            })?)),
            None => None,
        };
        let mut app = self.clone();
        app.files = LocalFiles::Under { root, base: None };
        Ok(app)
    }

    /// The same confined application, with revisions based in `folder`, a folder under
    /// the data root named relative to it (e.g. one customer's project folder): the
    /// relative paths of the files it applies resolve there. Refused for a folder
    /// outside the root, a missing one, and on an application that is not confined.
    pub fn in_folder(&self, folder: &str) -> Result<App> {
        let LocalFiles::Under { root, .. } = &self.files else {
            return Err(Error::invalid(
                "a base folder is only chosen on a server; on the command line it is the project folder",
            ));
        };
        let root = root.clone();
        let trimmed = folder.trim();
        if trimmed.is_empty() || Path::new(trimmed).is_absolute() {
            return Err(Error::invalid(format!(
                "the base folder `{folder}` must be a folder under the data root, named relative to it (e.g. `customers/acme`)"
            )));
        }
        let Some(at) = &root else {
            return Err(Error::denied(
                "this server reads no local files, so a revision has no base folder: start it with --data-root DIR",
            ));
        };
        self.check_local_path(at, trimmed, "the revision's base folder")?;
        let base = at.join(trimmed).canonicalize().map_err(|e| {
            Error::invalid(format!(
                "the base folder `{folder}` cannot be used: {e} (create it under the data root first)"
            ))
        })?;
        if !base.is_dir() || !base.starts_with(at.as_ref()) {
            return Err(Error::invalid(format!(
                "the base folder `{folder}` is not a folder under the data root"
            )));
        }
        let mut app = self.clone();
        app.files = LocalFiles::Under {
            root,
            base: Some(Arc::from(base)),
        };
        Ok(app)
    }

    /// Whether local paths are confined (a server).
    pub fn is_confined(&self) -> bool {
        matches!(self.files, LocalFiles::Under { .. })
    }

    /// The base folder of a revision applied through this application.
    pub(crate) fn revision_base(&self) -> String {
        match &self.files {
            LocalFiles::Anywhere => self.project_dir().display().to_string(),
            LocalFiles::Under {
                base: Some(base), ..
            } => base.display().to_string(),
            LocalFiles::Under {
                root: Some(root), ..
            } => root.display().to_string(),
            LocalFiles::Under { root: None, .. } => String::new(),
        }
    }

    /// Check that `path` (relative to `base`) may be read or written; `what` names it
    /// in the error.
    pub(crate) fn check_local_path(&self, base: &Path, path: &str, what: &str) -> Result<()> {
        let LocalFiles::Under { root, .. } = &self.files else {
            return Ok(());
        };
        let Some(root) = root else {
            return Err(Error::denied(format!(
                "{what} is the local path `{path}`, and this server reads no local files: start it with --data-root DIR to allow paths under DIR, or use an s3://, abfss:// or az:// location"
            )));
        };
        let plain = path.strip_prefix("file://").unwrap_or(path);
        let lexical = absolute(base, Path::new(plain));
        // the part before any glob character, with symbolic links resolved as far as it
        // exists
        let fixed = fixed_prefix(&lexical);
        let resolved = resolve_existing(&fixed);
        if resolved.starts_with(root.as_ref()) {
            Ok(())
        } else {
            Err(Error::denied(format!(
                "{what} is the local path `{path}`, outside this server's data root {}: move the files under it, or use a remote location",
                root.display()
            )))
        }
    }

    /// Check every local location of `project`'s sources, relative to `base`. (The
    /// environment's own storage is an Admin's setting, checked when it is created.)
    pub(crate) fn check_project_files(&self, project: &ProjectFile, base: &Path) -> Result<()> {
        if !self.is_confined() {
            return Ok(());
        }
        for source in &project.sources {
            for table in &source.tables {
                if !is_remote(&table.location) {
                    self.check_local_path(
                        base,
                        &table.location,
                        &format!("the location of table `{}.{}`", source.name, table.name),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Check the local lake folder of an environment about to be created.
    pub(crate) fn check_storage(&self, storage: &StorageConfig, base: &Path) -> Result<()> {
        match storage {
            StorageConfig::Local(local) => self.check_local_path(
                base,
                &local.path.to_string_lossy(),
                "the environment's local storage",
            ),
            _ => Ok(()),
        }
    }
}

/// The components of `path` before the first one holding a glob character.
fn fixed_prefix(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        if c.as_os_str()
            .to_string_lossy()
            .contains(['*', '?', '[', ']', '{', '}'])
        {
            break;
        }
        out.push(c);
    }
    out
}

/// `path` with symbolic links resolved in its longest existing prefix (a link inside
/// the data root may not lead out of it).
fn resolve_existing(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut out = canonical;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_is_cut_before_its_first_pattern() {
        assert_eq!(
            fixed_prefix(Path::new("/data/crm/*/contacts*.csv")),
            PathBuf::from("/data/crm")
        );
        assert_eq!(
            fixed_prefix(Path::new("/data/crm/a.csv")),
            PathBuf::from("/data/crm/a.csv")
        );
    }

    #[test]
    fn dot_dot_is_resolved_before_the_check() {
        assert_eq!(
            absolute(Path::new("/data/root"), Path::new("../../etc/passwd")),
            PathBuf::from("/etc/passwd")
        );
    }

    #[test]
    fn a_link_out_of_the_root_is_followed_to_where_it_leads() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let resolved = resolve_existing(&root.join("link").join("missing.csv"));
        assert!(resolved.starts_with(outside.canonicalize().unwrap()));
        assert!(!resolved.starts_with(root.canonicalize().unwrap()));
    }

    #[tokio::test]
    async fn a_base_folder_lies_under_the_data_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("customers/acme")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("link")).unwrap();
        let catalog = lakecdp_catalog::SqliteCatalog::open_in_memory()
            .await
            .unwrap();
        let app = App::new(std::sync::Arc::new(catalog), dir.path().to_path_buf());
        assert!(app.in_folder("customers/acme").is_err(), "not confined");

        let server = app.confined_to(Some(&root)).unwrap();
        let acme = server.in_folder("customers/acme").unwrap();
        assert_eq!(
            PathBuf::from(acme.revision_base()),
            root.join("customers/acme").canonicalize().unwrap()
        );
        assert_eq!(
            PathBuf::from(server.revision_base()),
            root.canonicalize().unwrap()
        );
        for bad in ["../outside", "/etc", "link", "customers/missing", ""] {
            assert!(server.in_folder(bad).is_err(), "{bad} was accepted");
        }
        // paths of a revision based in the folder resolve there, and may not climb out
        let base = PathBuf::from(acme.revision_base());
        assert!(acme.check_local_path(&base, "crm/*.csv", "t").is_ok());
        assert!(acme
            .check_local_path(&base, "../../../outside/x.csv", "t")
            .is_err());
        let nowhere = app.confined_to(None).unwrap();
        assert!(nowhere.in_folder("customers/acme").is_err());
    }
}
