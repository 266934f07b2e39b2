//! Delta tables: opened with the deltalake crate (the transaction log decides which
//! files, partition values and deletion vectors make the current version). A version
//! whose readers need no more than Parquet files and partition values is read as its
//! data files, by lakecdp's own Parquet reader (here or on a cluster's executors);
//! another is read whole, as a stream of record batches through DataFusion.

use std::collections::HashMap;
use std::path::Path;

use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use futures::TryStreamExt;
use lakecdp_core::{SourceAccess, TableSpec};
use url::Url;

use super::confine::{percent_decode, SourceRoot};
use super::fetch::{Fetched, SourceFile};
use crate::{Error, Result};

/// The URL of a Delta table's location: a local folder (relative to the project) or an
/// `s3://`, `abfss://` or `az://` URL.
fn table_url(location: &str, project_dir: &Path) -> Result<Url> {
    if super::fetch::is_remote(location) {
        let url = Url::parse(location)
            .map_err(|e| Error::Source(format!("`{location}` is not a valid URL: {e}")))?;
        return Ok(url);
    }
    let path = location.strip_prefix("file://").unwrap_or(location);
    let full = if Path::new(path).is_absolute() {
        Path::new(path).to_path_buf()
    } else {
        project_dir.join(path)
    };
    let full = full.canonicalize().map_err(|e| {
        Error::Source(format!(
            "the Delta table `{location}` cannot be opened ({}): {e}",
            full.display()
        ))
    })?;
    Url::from_directory_path(&full)
        .map_err(|()| Error::Source(format!("`{}` is not a folder path", full.display())))
}

/// Open the current version of the table. Every data file of that version must be in
/// the table's folder: an `add.path` of the log that names another place (an absolute
/// URL elsewhere, a `file://` path, a path climbing out with `..`) is refused with
/// [`Error::LocationOutsideSource`] before anything is read.
pub async fn open(
    table: &TableSpec,
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<DeltaTable> {
    let url = table_url(&table.location, project_dir)?;
    if access.is_none() && super::fetch::is_remote(&table.location) {
        // without settings, deltalake would use whatever credentials the host has
        return Err(Error::Source(format!(
            "table `{}`: `{}` needs the source's `access` settings: keys, or `credentials = \"ambient\"` to use this host's credentials, or `credentials = \"anonymous\"`",
            table.name, table.location
        )));
    }
    let opened = if super::fetch::is_remote(url.as_str()) {
        // the store the lake's backends build from the source's settings alone: nothing
        // of the host's `AWS_*` or `AZURE_*` environment is mixed in unless the source
        // asks for `credentials = "ambient"`, as deltalake's own builders would
        let (store, _, _) = super::fetch::remote_store(&url, url.scheme(), access, project_dir)?;
        let mut options = HashMap::new();
        if url.scheme() == "s3" {
            // reading needs no locking provider
            options.insert("AWS_S3_ALLOW_UNSAFE_RENAME".to_string(), "true".to_string());
        }
        match deltalake::DeltaTableBuilder::from_url(url.clone()) {
            Ok(builder) => {
                builder
                    .with_storage_backend(store, url.clone())
                    .with_storage_options(options)
                    .load()
                    .await
            }
            Err(e) => Err(e),
        }
    } else {
        deltalake::open_table_with_storage_options(url.clone(), HashMap::new()).await
    };
    let delta = opened.map_err(|e| {
        Error::Source(format!(
            "table `{}`: `{}` is not a readable Delta table: {e}",
            table.name, table.location
        ))
    })?;
    check_files(table, &delta, &url, access, project_dir).await?;
    Ok(delta)
}

/// Refuses a data file of the current version outside the table's folder `url`.
///
/// deltalake resolves an `add.path` as a URL reference against the table root (so an
/// absolute URL replaces it and `..` climbs out of it); each path is resolved the same
/// way here, as stored and once more decoded, and must stay in the table's folder.
async fn check_files(
    table: &TableSpec,
    delta: &DeltaTable,
    url: &Url,
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<()> {
    let mut root_url = url.clone();
    if !root_url.path().ends_with('/') {
        root_url.set_path(&format!("{}/", root_url.path()));
    }
    let root = SourceRoot::new(root_url.as_str(), access, project_dir)?;
    let local = LocalFolder::of(url)?;
    let files: Vec<_> = delta
        .get_active_add_actions_by_partitions(&[])
        .try_collect()
        .await
        .map_err(|e| Error::Source(format!("table `{}`: {e}", table.name)))?;
    for file in files {
        let mut paths = vec![file.path().to_string()];
        // a deletion vector in a file names its own place
        if let Some(dv) = file.deletion_vector_descriptor() {
            paths.extend(deletion_vector_path(&dv));
        }
        for path in &paths {
            check_file(table, &root_url, &root, path, access, project_dir)?;
        }
        // a data file in a local folder: no symbolic link leads out of it either
        if let Some(folder) = &local {
            let file = if plain_relative(&paths[0]) {
                // the path as deltalake reads it: decoded once, under the folder
                Some(folder.dir.join(&paths[0]))
            } else {
                Url::parse(&paths[0])
                    .ok()
                    .filter(|u| u.scheme() == "file")
                    .and_then(|u| u.to_file_path().ok())
            };
            if let Some(file) = file {
                folder.check(table, &file, &paths[0])?;
            }
        }
    }
    Ok(())
}

/// Where a deletion vector stored in a file is, as a path to resolve against the table
/// root: its absolute path (`p`), or for one named by a UUID (`u`) a file under its
/// prefix folder; `None` for one inline in the log.
fn deletion_vector_path(dv: &deltalake::kernel::DeletionVectorDescriptor) -> Option<String> {
    use deltalake::kernel::StorageType;
    let s = &dv.path_or_inline_dv;
    match dv.storage_type {
        StorageType::Inline => None,
        StorageType::AbsolutePath => Some(s.clone()),
        // `<random prefix><20 characters of encoded UUID>`: the file is
        // `<prefix>/deletion_vector_<uuid>.bin` under the table
        StorageType::UuidRelativePath => match s.len().checked_sub(20).and_then(|n| s.get(..n)) {
            Some("") => None,
            Some(prefix) => Some(format!("{prefix}/deletion_vector.bin")),
            None => Some(s.clone()),
        },
    }
}

/// Refuses one path of the log that resolves outside the table's folder.
fn check_file(
    table: &TableSpec,
    root_url: &Url,
    root: &SourceRoot,
    path: &str,
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<()> {
    let decoded_again = percent_decode(path);
    let forms = [Some(path.to_string()), decoded_again];
    for form in &forms {
        let inside = form
            .as_deref()
            .and_then(|form| root_url.join(form).ok())
            .is_some_and(|resolved| {
                root.check(&table.name, resolved.as_str(), access, project_dir)
                    .is_ok()
            });
        if !inside {
            return Err(Error::LocationOutsideSource {
                table: table.name.clone(),
                location: path.to_string(),
                source_root: table.location.clone(),
            });
        }
    }
    Ok(())
}

/// Why the table's current version is read through deltalake as a whole rather than as
/// its data files: a protocol whose readers must do more than read Parquet files and
/// add partition values (deletion vectors, column mapping, and any feature this
/// reader does not know); `None` for a table read file by file.
pub fn needs_deltalake(delta: &DeltaTable) -> Option<String> {
    // features that change nothing in how a data file's rows are read
    const PLAIN: [&str; 3] = ["timestampNtz", "vacuumProtocolCheck", "v2Checkpoint"];
    let snapshot = delta.snapshot().ok()?;
    let protocol = match serde_json::to_value(snapshot.protocol()) {
        Ok(p) => p,
        Err(e) => return Some(format!("its protocol cannot be read: {e}")),
    };
    let version = protocol["minReaderVersion"].as_i64().unwrap_or(0);
    let features: Vec<String> = protocol["readerFeatures"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    match version {
        1 => None,
        2 => Some("column mapping (reader version 2)".into()),
        3 => {
            let other: Vec<String> = features
                .into_iter()
                .filter(|f| !PLAIN.contains(&f.as_str()))
                .collect();
            (!other.is_empty()).then(|| format!("reader features {}", other.join(", ")))
        }
        v => Some(format!("reader version {v}")),
    }
}

/// The table's current version as files: its data files in the order they were written, each with its
/// partition values, when it reads file by file (so any process, a cluster's task
/// included, reads a share of them); otherwise one pseudo-file standing for the whole
/// table (an empty path: [`stream`] reads it). Every file's version is the Delta
/// version: an unchanged version means an unchanged table.
pub async fn listing(
    table: &TableSpec,
    delta: &DeltaTable,
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<Fetched> {
    let version = format!("delta version {}", delta.version().unwrap_or_default());
    if let Some(why) = needs_deltalake(delta) {
        tracing::info!(table = %table.name, why = %why, "the Delta table is read through deltalake as a whole");
        return Ok(whole(table, version));
    }
    let partition_columns = delta
        .snapshot()
        .map_err(|e| Error::Source(format!("table `{}`: {e}", table.name)))?
        .metadata()
        .partition_columns()
        .to_vec();
    type DataFile = (i64, String, Vec<(String, Option<String>)>, i64);
    let mut files: Vec<DataFile> = delta
        .get_active_add_actions_by_partitions(&[])
        .map_ok(|file| {
            let values = file.partition_values_map();
            let constants = partition_columns
                .iter()
                .map(|c| {
                    // the log writes a null partition value as null or as ""
                    let value = values.get(c).cloned().flatten().filter(|v| !v.is_empty());
                    (c.clone(), value)
                })
                .collect();
            (
                file.modification_time(),
                file.path().into_owned(),
                constants,
                file.size(),
            )
        })
        .try_collect()
        .await
        .map_err(|e| Error::Source(format!("table `{}`: {e}", table.name)))?;
    // in the order they were written (then by path): where a key repeats, the row of
    // the file written last is read last
    files.sort();
    // a log may name data files by absolute paths or URLs (a shallow clone's): such a
    // table is read whole, by deltalake, which check_files has confined
    if let Some((_, path, _, _)) = files.iter().find(|f| !plain_relative(&f.1)) {
        tracing::info!(table = %table.name, path = %path, "the Delta table names a data file by an absolute path; it is read through deltalake as a whole");
        return Ok(whole(table, version));
    }
    let url = table_url(&table.location, project_dir)?;
    let shown = table.location.trim_end_matches('/');
    if !super::fetch::is_remote(url.as_str()) {
        // `open` has checked every data file where it is read, links included
        let dir = url
            .to_file_path()
            .map_err(|()| Error::Source(format!("`{url}` is not a folder path")))?;
        let mut out = Vec::with_capacity(files.len());
        for (written, relative, constants, size) in files {
            let path = dir.join(&relative);
            let name = format!("{shown}/{relative}");
            out.push(SourceFile {
                path,
                name,
                version: file_version(size, &version),
                modified: chrono::DateTime::from_timestamp_millis(written),
                constants,
            });
        }
        return Ok(Fetched::local(out));
    }
    let (store, _, key) = super::fetch::remote_store(&url, url.scheme(), access, project_dir)?;
    // the table's folder in the store, as deltalake takes it from the URL (decoded once)
    let folder = object_store::path::Path::from_url_path(&key).map_err(|e| {
        Error::Source(format!(
            "table `{}`: `{}` names no valid folder: {e}",
            table.name, table.location
        ))
    })?;
    let mut objects = Vec::with_capacity(files.len());
    for (_, relative, _, size) in &files {
        let name = format!("{shown}/{relative}");
        let full = if folder.as_ref().is_empty() {
            relative.clone()
        } else {
            format!("{}/{relative}", folder.as_ref())
        };
        let object = object_store::path::Path::parse(&full).map_err(|e| {
            Error::Source(format!(
                "table `{}`: the data file `{name}` has no valid object name: {e}",
                table.name
            ))
        })?;
        objects.push((object, name, file_version(*size, &version)));
    }
    let mut fetched = Fetched::from_store(store, objects)?;
    for (file, (written, _, constants, _)) in fetched.files.iter_mut().zip(files) {
        file.modified = chrono::DateTime::from_timestamp_millis(written);
        file.constants = constants;
    }
    Ok(fetched)
}

/// A local table's folder, as a path (decoded) and as its real path (links followed).
struct LocalFolder {
    dir: std::path::PathBuf,
    real: std::path::PathBuf,
}

impl LocalFolder {
    /// The folder of a `file://` table URL; `None` for a remote one.
    fn of(url: &Url) -> Result<Option<Self>> {
        if url.scheme() != "file" {
            return Ok(None);
        }
        let dir = url
            .to_file_path()
            .map_err(|()| Error::Source(format!("`{url}` is not a folder path")))?;
        let real = dir
            .canonicalize()
            .map_err(|e| Error::Source(format!("cannot read {}: {e}", dir.display())))?;
        Ok(Some(LocalFolder { dir, real }))
    }

    /// Refuses `file` (named `name` for people) when its real path is outside the
    /// folder's.
    fn check(&self, table: &TableSpec, file: &Path, name: &str) -> Result<()> {
        let real = file
            .canonicalize()
            .map_err(|e| Error::Source(format!("cannot read {}: {e}", file.display())))?;
        if real.starts_with(&self.real) {
            Ok(())
        } else {
            Err(Error::LocationOutsideSource {
                table: table.name.clone(),
                location: name.to_string(),
                source_root: table.location.clone(),
            })
        }
    }
}

/// A data file's version: its size (a load's tasks are balanced by it) and the table's
/// version.
fn file_version(size: i64, version: &str) -> String {
    format!("{size}:{version}")
}

/// A data file's path (as the log names it, decoded once) that is a plain path inside
/// the table's folder: relative, with no empty, `.` or `..` segment.
fn plain_relative(path: &str) -> bool {
    !path.contains("://")
        && !path.contains('\\')
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// The whole table as one pseudo-file (an empty path) that [`stream`] reads.
fn whole(table: &TableSpec, version: String) -> Fetched {
    Fetched::local(vec![SourceFile {
        path: std::path::PathBuf::new(),
        name: table.location.clone(),
        version,
        modified: None,
        constants: Vec::new(),
    }])
}

/// True when `files` stand for a whole Delta table that [`stream`] reads (see
/// [`listing`]), rather than for data files.
pub fn read_whole(files: &[SourceFile]) -> bool {
    files.iter().any(|f| f.path.as_os_str().is_empty())
}

/// The rows of the table's current version.
pub async fn stream(
    table: &TableSpec,
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<SendableRecordBatchStream> {
    let delta = open(table, access, project_dir).await?;
    let ctx = SessionContext::new();
    delta
        .update_datafusion_session(&ctx.state())
        .map_err(|e| Error::Source(format!("table `{}`: {e}", table.name)))?;
    let provider = delta
        .table_provider()
        .await
        .map_err(|e| Error::Source(format!("table `{}`: {e}", table.name)))?;
    Ok(ctx.read_table(provider)?.execute_stream().await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakecdp_core::SourceFormat;

    #[tokio::test]
    async fn a_remote_delta_table_without_access_settings_is_refused() {
        let table = TableSpec {
            name: "Members".into(),
            location: "s3://partner/members".into(),
            format: SourceFormat::Delta,
            primary_key: None,
            last_updated: None,
            csv: None,
            entity: None,
            schema: vec![],
            incremental: false,
        };
        let err = open(&table, None, Path::new("/project")).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("needs the source's `access` settings"),
            "{err}"
        );
    }
}
