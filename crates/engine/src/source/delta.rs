//! Delta tables: opened with the deltalake crate (the transaction log decides which
//! files, partition values and deletion vectors make the current version) and read as a
//! stream of record batches through DataFusion.

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

/// deltalake storage options for the source's credentials (resolved here, never logged).
fn storage_options(
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<HashMap<String, String>> {
    let mut options = HashMap::new();
    let secret = |key: &str, r: &lakecdp_core::SecretRef| -> Result<String> {
        Ok(lakecdp_lake::secrets::resolve(key, r, Some(project_dir))?
            .expose()
            .to_string())
    };
    match access {
        None => {}
        Some(SourceAccess::S3 {
            region,
            endpoint,
            access_key_id,
            secret_access_key,
        }) => {
            options.insert("AWS_REGION".into(), region.clone());
            if let Some(e) = endpoint {
                options.insert("AWS_ENDPOINT_URL".into(), e.clone());
                if e.starts_with("http://") {
                    options.insert("AWS_ALLOW_HTTP".into(), "true".into());
                }
                options.insert("AWS_FORCE_PATH_STYLE".into(), "true".into());
            }
            if let Some(k) = access_key_id {
                options.insert(
                    "AWS_ACCESS_KEY_ID".into(),
                    secret("access.access_key_id", k)?,
                );
            }
            if let Some(k) = secret_access_key {
                options.insert(
                    "AWS_SECRET_ACCESS_KEY".into(),
                    secret("access.secret_access_key", k)?,
                );
            }
            // reading needs no locking provider
            options.insert("AWS_S3_ALLOW_UNSAFE_RENAME".into(), "true".into());
        }
        Some(SourceAccess::Adls {
            account,
            account_key,
            sas_token,
            endpoint,
            emulator,
        }) => {
            if let Some(a) = account {
                options.insert("azure_storage_account_name".into(), a.clone());
            }
            if let Some(k) = account_key {
                options.insert(
                    "azure_storage_account_key".into(),
                    secret("access.account_key", k)?,
                );
            }
            if let Some(s) = sas_token {
                options.insert(
                    "azure_storage_sas_key".into(),
                    secret("access.sas_token", s)?,
                );
            }
            if let Some(e) = endpoint {
                options.insert("azure_storage_endpoint".into(), e.clone());
                if e.starts_with("http://") {
                    options.insert("azure_allow_http".into(), "true".into());
                }
            }
            if *emulator {
                // an explicit endpoint wins: the emulator switch alone means the
                // default Azurite address
                if endpoint.is_none() {
                    options.insert("azure_storage_use_emulator".into(), "true".into());
                }
                options.insert("azure_allow_http".into(), "true".into());
            }
        }
    }
    Ok(options)
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
    let options = storage_options(access, project_dir)?;
    let delta = deltalake::open_table_with_storage_options(url.clone(), options)
        .await
        .map_err(|e| {
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
    let files: Vec<_> = delta
        .get_active_add_actions_by_partitions(&[])
        .try_collect()
        .await
        .map_err(|e| Error::Source(format!("table `{}`: {e}", table.name)))?;
    for file in files {
        let path = file.path();
        let decoded_again = percent_decode(&path);
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
    }
    Ok(())
}

/// The table as one pseudo-file whose version is the Delta version: an unchanged
/// version means an unchanged table.
pub fn listing(table: &TableSpec, delta: &DeltaTable) -> Fetched {
    let version = delta.version().unwrap_or_default();
    Fetched::local(vec![SourceFile {
        path: std::path::PathBuf::new(),
        name: table.location.clone(),
        version: format!("delta version {version}"),
    }])
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
