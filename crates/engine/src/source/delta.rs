//! Delta tables: opened with the deltalake crate (the transaction log decides which
//! files, partition values and deletion vectors make the current version) and read as a
//! stream of record batches through DataFusion.

use std::collections::HashMap;
use std::path::Path;

use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use futures::TryStreamExt;
use lakecdp_core::{s3_credential_errors, ConfigErrors, Credentials, SourceAccess, TableSpec};
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
            credentials,
        }) => {
            let keys = access_key_id.is_some() || secret_access_key.is_some();
            match credentials {
                // deltalake itself reads the host's AWS_* variables and roles
                Credentials::Ambient => {}
                Credentials::Anonymous => {
                    options.insert("AWS_SKIP_SIGNATURE".into(), "true".into());
                }
                Credentials::Declared if keys => {}
                Credentials::Declared => {
                    return Err(ConfigErrors(s3_credential_errors(
                        "access",
                        false,
                        false,
                        false,
                        *credentials,
                    ))
                    .into())
                }
            }
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
            credentials,
        }) => {
            match credentials {
                // deltalake itself reads the host's AZURE_* variables and managed identity
                Credentials::Ambient => {}
                Credentials::Anonymous => {
                    options.insert("azure_skip_signature".into(), "true".into());
                }
                Credentials::Declared if account_key.is_some() || sas_token.is_some() => {}
                Credentials::Declared => {
                    return Err(Error::Source(
                        "a Delta table on Azure needs the source's `account_key` or `sas_token`, or `credentials = \"ambient\"` to use this host's Azure credentials, or `credentials = \"anonymous\"` for a public container".into(),
                    ))
                }
            }
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
    if access.is_none() && super::fetch::is_remote(&table.location) {
        // without settings, deltalake would use whatever credentials the host has
        return Err(Error::Source(format!(
            "table `{}`: `{}` needs the source's `access` settings: keys, or `credentials = \"ambient\"` to use this host's credentials, or `credentials = \"anonymous\"`",
            table.name, table.location
        )));
    }
    let opened = match own_store(&url, access, project_dir)? {
        // the store the lake's backends build from the declared settings only
        Some(store) => {
            let mut options = HashMap::new();
            if url.scheme() == "s3" {
                // reading needs no locking provider
                options.insert("AWS_S3_ALLOW_UNSAFE_RENAME".into(), "true".into());
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
        }
        None => {
            let options = storage_options(access, project_dir)?;
            deltalake::open_table_with_storage_options(url.clone(), options).await
        }
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

/// The object store a remote table is read through when its credentials are declared
/// (keys, or anonymous access on S3): built by the lake's backends from the source's
/// settings alone, so nothing of the host's `AWS_*` or `AZURE_*` environment (a session
/// token, an endpoint, a profile) is mixed in, as deltalake's own builders would. Tables
/// that ask for the host's credentials (`credentials = "ambient"`), and local tables,
/// are opened by deltalake itself (`None`).
fn own_store(
    url: &Url,
    access: Option<&SourceAccess>,
    project_dir: &Path,
) -> Result<Option<std::sync::Arc<dyn object_store::ObjectStore>>> {
    let own = match access {
        Some(SourceAccess::S3 { credentials, .. }) => *credentials != Credentials::Ambient,
        Some(SourceAccess::Adls { credentials, .. }) => credentials.is_declared(),
        None => false,
    };
    if !own || !super::fetch::is_remote(url.as_str()) {
        return Ok(None);
    }
    let (store, _, _) = super::fetch::remote_store(url, url.scheme(), access, project_dir)?;
    Ok(Some(store))
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
        let mut paths = vec![file.path().to_string()];
        // a deletion vector in a file names its own place
        if let Some(dv) = file.deletion_vector_descriptor() {
            paths.extend(deletion_vector_path(&dv));
        }
        for path in &paths {
            check_file(table, &root_url, &root, path, access, project_dir)?;
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

/// The table as one pseudo-file whose version is the Delta version: an unchanged
/// version means an unchanged table.
pub fn listing(table: &TableSpec, delta: &DeltaTable) -> Fetched {
    let version = delta.version().unwrap_or_default();
    Fetched::local(vec![SourceFile {
        path: std::path::PathBuf::new(),
        name: table.location.clone(),
        version: format!("delta version {version}"),
        modified: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use lakecdp_core::{SecretRef, SourceFormat};

    fn s3(credentials: Credentials, keys: bool) -> SourceAccess {
        SourceAccess::S3 {
            region: "eu-west-1".into(),
            endpoint: None,
            access_key_id: keys.then(|| SecretRef::Env("LAKECDP_DELTA_UNIT_KEY_ID".into())),
            secret_access_key: keys.then(|| SecretRef::Env("LAKECDP_DELTA_UNIT_SECRET".into())),
            credentials,
        }
    }

    fn adls(credentials: Credentials) -> SourceAccess {
        SourceAccess::Adls {
            account: Some("acct".into()),
            account_key: None,
            sas_token: None,
            endpoint: None,
            emulator: false,
            credentials,
        }
    }

    #[test]
    fn delta_sources_use_the_hosts_credentials_only_when_asked() {
        std::env::set_var("LAKECDP_DELTA_UNIT_KEY_ID", "AKIADECLARED");
        std::env::set_var("LAKECDP_DELTA_UNIT_SECRET", "declared-secret");
        let dir = Path::new("/project");
        // no keys and no choice: refused, naming both fixes
        for access in [
            s3(Credentials::Declared, false),
            adls(Credentials::Declared),
        ] {
            let err = storage_options(Some(&access), dir).unwrap_err().to_string();
            assert!(
                err.contains("credentials = \"ambient\"")
                    && err.contains("credentials = \"anonymous\""),
                "{err}"
            );
        }
        let options = storage_options(Some(&s3(Credentials::Declared, true)), dir).unwrap();
        assert_eq!(options["AWS_ACCESS_KEY_ID"], "AKIADECLARED");
        assert!(!options.contains_key("AWS_SKIP_SIGNATURE"));
        let options = storage_options(Some(&s3(Credentials::Anonymous, false)), dir).unwrap();
        assert_eq!(options["AWS_SKIP_SIGNATURE"], "true");
        assert!(!options.contains_key("AWS_ACCESS_KEY_ID"));
        let options = storage_options(Some(&s3(Credentials::Ambient, false)), dir).unwrap();
        assert!(!options.contains_key("AWS_ACCESS_KEY_ID"));
        let options = storage_options(Some(&adls(Credentials::Anonymous)), dir).unwrap();
        assert_eq!(options["azure_skip_signature"], "true");
        assert!(storage_options(Some(&adls(Credentials::Ambient)), dir).is_ok());
    }

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
