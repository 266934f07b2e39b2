//! `init`: scaffold a project folder.

use anyhow::Context as _;
use lakecdp_core::project::PROJECT_FILE;
use lakecdp_core::ProjectFile;

use crate::args::{InitArgs, StorageKind};
use crate::{Start, UserError};

const HEADER: &str = r#"# lakecdp project file.
#
# `lakecdp env check` checks the storage below, `lakecdp apply` creates or updates the
# environment in the catalog (.lakecdp/catalog.db). Secrets are never written here:
# name the environment variable (`{ env = "VAR" }`) or file (`{ file = "path" }`) that
# holds each one.

[environment]
name = "{name}"
# region = "westeurope"       # compared with the storage's region when both are known
output_format = "csv"         # or "parquet" (also declared in default.manifest.cdm.json)
retention_runs = 3            # runs of each process kept in the lake
"#;

const LOCAL: &str = r#"
[environment.storage]
kind = "local"
path = "lake"                 # the container is lake/customerinsights/
"#;

const ADLS: &str = r#"
[environment.storage]
kind = "adls"
account = "mystorageaccount"  # or: url = "abfss://customerinsights@mystorageaccount.dfs.core.windows.net"
container = "customerinsights"
account_key = { env = "LAKECDP_ADLS_ACCOUNT_KEY" }
# or a service principal:
# tenant_id = "00000000-0000-0000-0000-000000000000"
# client_id = "00000000-0000-0000-0000-000000000000"
# client_secret = { env = "LAKECDP_ADLS_CLIENT_SECRET" }
# or a SAS token: sas_token = { file = "secrets/sas.txt" }
# region = "westeurope"       # the account's region (the service does not report it)
# endpoint = "https://mystorageaccount.privatelink.blob.core.windows.net"
"#;

const S3: &str = r#"
[environment.storage]
kind = "s3"
bucket = "my-company-lake"    # plays the container
# prefix = "teams/marketing"
region = "eu-west-1"
access_key_id = { env = "LAKECDP_S3_ACCESS_KEY_ID" }
secret_access_key = { env = "LAKECDP_S3_SECRET_ACCESS_KEY" }
# endpoint = "http://127.0.0.1:8333"   # S3-compatible stores
"#;

pub fn run(start: &Start, a: InitArgs) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    let dir = a
        .dir
        .as_ref()
        .map(|d| lakecdp_app::absolute(&cwd, d))
        .unwrap_or_else(|| start.project_dir.clone());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join(PROJECT_FILE);
    if file.exists() && !a.force {
        return Err(UserError(format!(
            "{} already exists (pass --force to overwrite it)",
            file.display()
        ))
        .into());
    }
    let name = a
        .name
        .clone()
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "my-environment".into());
    let storage = match a.storage {
        StorageKind::Local => LOCAL,
        StorageKind::Adls => ADLS,
        StorageKind::S3 => S3,
    };
    let text = format!(
        "{}{storage}",
        HEADER.replace("{name}", &name.replace('"', ""))
    );
    // The scaffold must itself be a valid project file.
    ProjectFile::parse(&text)
        .map_err(|e| anyhow::anyhow!("the scaffolded project file is invalid: {e}"))?;
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, ".lakecdp/\nlake/\n")
            .with_context(|| format!("cannot write {}", ignore.display()))?;
    }
    println!("created {}", file.display());
    println!(
        "next: edit it, then `lakecdp -C {} apply --create-container`",
        dir.display()
    );
    Ok(())
}
