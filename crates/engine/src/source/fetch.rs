//! The files of a table: local paths and globs as they are; `s3://`, `abfss://` and
//! `az://` objects listed through object_store and streamed into a spool folder.

use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use lakecdp_core::{
    s3_credential_errors, AdlsConfig, ConfigErrors, S3Config, SourceAccess, TableSpec,
};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::{Error, Result};

/// A file of a table, ready to read: where it is on this machine and the name shown in
/// reports and corrupt rows (its path relative to the project, or its URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Local path.
    pub path: PathBuf,
    /// Name for people.
    pub name: String,
    /// What identifies this version of the file: size and modification time locally,
    /// size and ETag remotely. Equal versions mean an unchanged file.
    pub version: String,
    /// When the file was last written, where the listing says.
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
    /// Values every row of the file takes whatever its data holds: a Delta data file's
    /// partition values (`None`: null), as the log writes them.
    pub constants: Vec<(String, Option<String>)>,
}

/// The files of a table. Listing is cheap; remote files are copied (streamed) into a
/// spool folder that lives as long as this value only when [`Fetched::download`] is
/// called, so an unchanged source is never downloaded.
pub struct Fetched {
    /// The files in load order (sorted by name; a Delta table's in the order they were
    /// written); remote ones are readable at `path` after `download`.
    pub files: Vec<SourceFile>,
    pub(super) _spools: Vec<tempfile::TempDir>,
    pending: Vec<Pending>,
}

/// A remote file still to copy to `files[index].path`.
struct Pending {
    index: usize,
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    object: ObjectPath,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the stores are left out: their Debug can print credentials
        f.debug_struct("Fetched")
            .field("files", &self.files)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Fetched {
    /// Local files only.
    pub fn local(files: Vec<SourceFile>) -> Self {
        Self {
            files,
            _spools: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// No files.
    pub fn empty() -> Self {
        Self::local(Vec::new())
    }

    /// Objects of a store (the lake's own partitions), to be streamed into a spool
    /// folder by [`Fetched::download`]; `objects` are (path, name for people, version).
    pub fn from_store(
        store: std::sync::Arc<dyn object_store::ObjectStore>,
        objects: Vec<(ObjectPath, String, String)>,
    ) -> Result<Self> {
        let spool = tempfile::tempdir()
            .map_err(|e| Error::Source(format!("cannot create a spool folder: {e}")))?;
        let mut files = Vec::with_capacity(objects.len());
        let mut pending = Vec::with_capacity(objects.len());
        for (i, (object, name, version)) in objects.into_iter().enumerate() {
            let path = spool
                .path()
                .join(format!("{i:05}-{}", object.filename().unwrap_or("part")));
            pending.push(Pending {
                index: i,
                store: store.clone(),
                object,
            });
            files.push(SourceFile {
                path,
                name,
                version,
                modified: None,
                constants: Vec::new(),
            });
        }
        Ok(Self {
            files,
            _spools: vec![spool],
            pending,
        })
    }

    /// The files at `order` (indexes into `files`), in that order.
    pub fn select(self, order: &[usize]) -> Self {
        let mut new_index = vec![None; self.files.len()];
        for (new, old) in order.iter().enumerate() {
            if let Some(slot) = new_index.get_mut(*old) {
                *slot = Some(new);
            }
        }
        let files = order
            .iter()
            .filter_map(|i| self.files.get(*i).cloned())
            .collect();
        let pending = self
            .pending
            .into_iter()
            .filter_map(|p| new_index[p.index].map(|index| Pending { index, ..p }))
            .collect();
        Self {
            files,
            _spools: self._spools,
            pending,
        }
    }

    /// True when every file is readable at its path.
    pub fn is_downloaded(&self) -> bool {
        self.pending.is_empty()
    }

    /// Add the files of `other` after these.
    pub fn append(&mut self, other: Fetched) {
        let offset = self.files.len();
        self.files.extend(other.files);
        self.pending
            .extend(other.pending.into_iter().map(|p| Pending {
                index: p.index + offset,
                ..p
            }));
        self._spools.extend(other._spools);
    }

    /// Stream file `index` into the spool folder, if it is a remote file not copied yet.
    pub async fn download_one(&mut self, index: usize) -> Result<()> {
        let Some(at) = self.pending.iter().position(|p| p.index == index) else {
            return Ok(());
        };
        let p = self.pending.remove(at);
        if let Err(e) = self.copy(&p).await {
            self.pending.push(p);
            return Err(e);
        }
        Ok(())
    }

    /// Stream every remote file into the spool folder.
    pub async fn download(mut self) -> Result<Self> {
        for p in std::mem::take(&mut self.pending) {
            self.copy(&p).await?;
        }
        Ok(self)
    }

    async fn copy(&self, p: &Pending) -> Result<()> {
        let file = &self.files[p.index];
        let name = &file.name;
        let mut out = tokio::fs::File::create(&file.path)
            .await
            .map_err(|e| Error::Source(format!("cannot spool {name}: {e}")))?;
        let mut stream = p
            .store
            .get(&p.object)
            .await
            .map_err(|e| Error::Source(format!("cannot read {name}: {e}")))?
            .into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Source(format!("cannot read {name}: {e}")))?;
            out.write_all(&chunk)
                .await
                .map_err(|e| Error::Source(format!("cannot spool {name}: {e}")))?;
        }
        out.flush()
            .await
            .map_err(|e| Error::Source(format!("cannot spool {name}: {e}")))?;
        Ok(())
    }
}

/// A local file's version (size and modification time) and its modification time, from
/// one read of its metadata.
fn local_version(path: &Path) -> (String, Option<chrono::DateTime<chrono::Utc>>) {
    match std::fs::metadata(path) {
        Ok(m) => {
            let modified = m.modified().ok();
            let nanos = modified
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            (
                format!("{}:{nanos}", m.len()),
                modified.map(chrono::DateTime::<chrono::Utc>::from),
            )
        }
        Err(_) => (String::new(), None),
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The local files a table's location names (a path or a glob, relative to the project
/// folder), sorted. An empty match is an error that names the location.
pub fn local_files(table: &TableSpec, project_dir: &Path) -> Result<Vec<PathBuf>> {
    let (files, pattern) = glob_files(&table.location, project_dir)?;
    if files.is_empty() {
        return Err(Error::Source(format!(
            "table `{}`: no file matches `{}` (looked at {pattern})",
            table.name, table.location
        )));
    }
    Ok(files)
}

/// The local files `location` names, sorted (maybe none), and the full pattern used.
fn glob_files(location: &str, project_dir: &Path) -> Result<(Vec<PathBuf>, String)> {
    let original = location;
    let location = location.strip_prefix("file://").unwrap_or(location);
    let full = if Path::new(location).is_absolute() {
        PathBuf::from(location)
    } else {
        project_dir.join(location)
    };
    let pattern = full.to_string_lossy().into_owned();
    let mut files: Vec<PathBuf> = glob::glob(&pattern)
        .map_err(|e| Error::Source(format!("`{original}` is not a valid path or glob: {e}")))?
        .filter_map(|p| p.ok())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok((files, pattern))
}

/// The files of a table: local ones as they are; remote ones (`s3://`, `abfss://`,
/// `az://`) listed through object_store with the source's own credentials, to be
/// streamed into a spool folder by [`Fetched::download`] before they are read.
pub async fn fetch(
    table: &TableSpec,
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<Fetched> {
    let fetched = list(&table.location, access, project_dir).await?;
    if fetched.files.is_empty() {
        let what = if is_remote(&table.location) {
            "object"
        } else {
            "file"
        };
        return Err(Error::Source(format!(
            "table `{}`: no {what} matches `{}`",
            table.name, table.location
        )));
    }
    Ok(fetched)
}

/// True for `s3://`, `abfss://`, `az://` (any scheme but `file://`) locations.
pub fn is_remote(location: &str) -> bool {
    matches!(location.split_once("://"), Some((scheme, _)) if scheme != "file")
}

/// The files `location` (a local path or glob, or a remote URL or URL glob) names,
/// sorted by name; none is not an error here.
pub async fn list(
    location: &str,
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<Fetched> {
    let remote = match location.split_once("://") {
        Some((scheme, _)) if scheme != "file" => scheme.to_string(),
        _ => {
            let files = glob_files(location, project_dir)?
                .0
                .into_iter()
                .map(|path| {
                    let (version, modified) = local_version(&path);
                    SourceFile {
                        name: path
                            .strip_prefix(project_dir)
                            .unwrap_or(&path)
                            .display()
                            .to_string(),
                        version,
                        modified,
                        path,
                        constants: Vec::new(),
                    }
                })
                .collect();
            return Ok(Fetched::local(files));
        }
    };
    let url = Url::parse(location)
        .map_err(|e| Error::Source(format!("`{location}` is not a valid URL: {e}")))?;
    let (store, root_url, key) = remote_store(&url, &remote, access, project_dir)?;
    let key = key.trim_start_matches('/').to_string();
    // object_store lists whole path segments: list the folder that holds the fixed part
    // of the location (for a plain object, its own folder) and match below
    let fixed = &key[..key.find(['*', '?', '[']).unwrap_or(key.len())];
    let listed_prefix = fixed
        .rsplit_once('/')
        .map(|(p, _)| p.to_string())
        .unwrap_or_default();
    let pattern = glob::Pattern::new(&key)
        .map_err(|e| Error::Source(format!("`{location}` is not a valid glob: {e}")))?;
    let prefix = ObjectPath::from(listed_prefix.as_str());
    let mut objects: Vec<object_store::ObjectMeta> = store
        .list(Some(&prefix))
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| Error::Source(format!("cannot list `{location}`: {e}")))?
        .into_iter()
        .filter(|m| {
            if has_glob(&key) {
                pattern.matches(m.location.as_ref())
            } else {
                m.location.as_ref() == key
            }
        })
        .collect();
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    let spool = tempfile::tempdir()
        .map_err(|e| Error::Source(format!("cannot create a spool folder: {e}")))?;
    let mut files = Vec::with_capacity(objects.len());
    let mut pending = Vec::new();
    for (i, meta) in objects.iter().enumerate() {
        let object = &meta.location;
        let name = format!("{root_url}/{object}");
        let version = format!(
            "{}:{}",
            meta.size,
            meta.e_tag
                .clone()
                .unwrap_or_else(|| meta.last_modified.to_rfc3339())
        );
        let local = spool
            .path()
            .join(format!("{i:05}-{}", object.filename().unwrap_or("part")));
        pending.push(Pending {
            index: files.len(),
            store: store.clone(),
            object: object.clone(),
        });
        files.push(SourceFile {
            path: local,
            name,
            version,
            modified: Some(meta.last_modified),
            constants: Vec::new(),
        });
    }
    Ok(Fetched {
        files,
        _spools: vec![spool],
        pending,
    })
}

type Remote = (
    std::sync::Arc<dyn object_store::ObjectStore>,
    String,
    String,
);

pub(crate) fn remote_store(
    url: &Url,
    scheme: &str,
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<Remote> {
    let missing = |kind: &str| {
        Error::Source(format!(
            "`{url}` needs the source's `access` settings (kind = \"{kind}\") with its credentials"
        ))
    };
    match (scheme, access) {
        (
            "s3",
            Some(SourceAccess::S3 {
                region,
                endpoint,
                access_key_id,
                secret_access_key,
                credentials,
            }),
        ) => {
            let keys = access_key_id.is_some() || secret_access_key.is_some();
            if credentials.is_declared() && !keys {
                return Err(ConfigErrors(s3_credential_errors(
                    "access",
                    false,
                    false,
                    false,
                    *credentials,
                ))
                .into());
            }
            let bucket = url.host_str().unwrap_or_default().to_string();
            let config = S3Config {
                bucket: bucket.clone(),
                prefix: None,
                region: region.clone(),
                endpoint: endpoint.clone(),
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.clone(),
                session_token: None,
                path_style: None,
                credentials: *credentials,
            };
            let handle = lakecdp_lake::backend::s3::open(&config, Some(project_dir))?;
            Ok((
                handle.store,
                format!("s3://{bucket}"),
                url.path().to_string(),
            ))
        }
        ("s3", _) => Err(missing("s3")),
        (
            "abfss" | "abfs" | "az",
            Some(SourceAccess::Adls {
                account,
                account_key,
                sas_token,
                endpoint,
                emulator,
                credentials,
            }),
        ) => {
            let (container, account) = if scheme == "az" {
                let account = account.clone().ok_or_else(|| {
                    Error::Source(format!(
                        "`{url}`: az:// URLs need `account` in the source's access settings"
                    ))
                })?;
                (url.host_str().unwrap_or_default().to_string(), account)
            } else {
                let host = url.host_str().unwrap_or_default();
                (
                    url.username().to_string(),
                    host.split('.').next().unwrap_or_default().to_string(),
                )
            };
            let config = AdlsConfig {
                account: Some(account.clone()),
                container: Some(container.clone()),
                account_key: account_key.clone(),
                sas_token: sas_token.clone(),
                endpoint: endpoint.clone(),
                emulator: *emulator,
                allow_flat_namespace: *emulator,
                ..Default::default()
            };
            if credentials.is_declared() && account_key.is_none() && sas_token.is_none() {
                return Err(Error::Source(format!(
                    "`{url}` needs the source's `account_key` or `sas_token`, or `credentials = \"ambient\"` to use this host's Azure credentials, or `credentials = \"anonymous\"` for a public container"
                )));
            }
            let handle = lakecdp_lake::backend::azure::open_source(
                &config,
                *credentials,
                Some(project_dir),
            )?;
            Ok((
                handle.store,
                format!("abfss://{container}@{account}.dfs.core.windows.net"),
                url.path().to_string(),
            ))
        }
        ("abfss" | "abfs" | "az", _) => Err(missing("adls")),
        (other, _) => Err(Error::Source(format!(
            "`{other}://` locations are not supported; use a local path, s3://, abfss:// or az://"
        ))),
    }
}
