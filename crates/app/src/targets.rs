//! From catalog objects to live parts: a connection's secrets, the export target a
//! connection reaches, and the streams of the tables an export sends.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::Schema;
use lakecdp_connect::{BatchStream, ExportTarget, LakeTarget, PostgresTarget};
use lakecdp_core::{
    AdlsConfig, Connection, ConnectionKind, Environment, Export, S3Config, Secret, SecretRef,
};
use lakecdp_lake::backend;
use lakecdp_lake::cdm::Entity;
use lakecdp_lake::publish::read_model;
use lakecdp_lake::secrets::Secrets;
use lakecdp_lake::{Lake, Process};

use crate::app::{absolute, App};
use crate::error::{Error, Result, ResultExt};

/// The additional-data context a connection's secret is sealed under: a blob opens only
/// for the connection and secret it was sealed for.
pub(crate) fn seal_context(connection: &Connection, name: &str) -> String {
    lakecdp_core::SecretOwner::Connection(connection.id).seal_context(name)
}

/// The opened secrets of a connection, by name.
pub async fn open_secrets(app: &App, connection: &Connection) -> Result<BTreeMap<String, Secret>> {
    let mut out = BTreeMap::new();
    if connection.secrets.is_empty() {
        return Ok(out);
    }
    let catalog = app.catalog();
    let vault = app.vault()?;
    for name in &connection.secrets {
        let Some(blob) = catalog.connection_secret(connection.id, name).await? else {
            continue;
        };
        let secret = vault
            .open(&seal_context(connection, name), &blob)
            .map_err(|e| {
                Error::invalid(format!(
                    "secret `{name}` of connection `{}` cannot be opened: {e}",
                    connection.name
                ))
            })?;
        out.insert(name.clone(), secret);
    }
    Ok(out)
}

/// The database an export writes to: its `database` setting, or the environment's name.
pub fn database_of(env: &Environment, export: Option<&Export>) -> String {
    export
        .and_then(|e| e.settings.get("database").cloned())
        .unwrap_or_else(|| env.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
}

/// The target a connection reaches, for `export` (or for a test without one).
pub async fn target_for(
    app: &App,
    env: &Environment,
    connection: &Connection,
    export: Option<&Export>,
) -> Result<Box<dyn ExportTarget>> {
    let secrets = open_secrets(app, connection).await?;
    let setting = |k: &str| connection.setting(k).map(str::to_string);
    let vault_ref = |name: &str| SecretRef::Env(format!("lakecdp-vault:{name}"));
    match connection.kind {
        ConnectionKind::Postgresql => {
            let mut b = PostgresTarget::builder()
                .host(setting("host").unwrap_or_default())
                .user(setting("user").unwrap_or_default())
                .database(database_of(env, export));
            if let Some(port) = setting("port") {
                b = b.port(port.parse().map_err(|_| {
                    Error::invalid(format!(
                        "connection `{}`: port `{port}` is not a number",
                        connection.name
                    ))
                })?);
            }
            if let Some(p) = secrets.get("password") {
                b = b.password(p.clone());
            }
            let schema = export
                .and_then(|e| e.settings.get("schema").cloned())
                .unwrap_or_else(|| lakecdp_connect::postgres::DEFAULT_SCHEMA.to_string());
            // checked again at every run: the connection's list may have changed since
            // the export was configured
            connection
                .check_export_schema(&database_of(env, export), &schema)
                .map_err(Error::denied)?;
            b = b.schema(schema);
            if let Some(mode) = setting("sslmode") {
                b = b.sslmode(mode);
            }
            if let Some(ca) = setting("sslrootcert") {
                b = b.sslrootcert(absolute(app.project_dir(), std::path::Path::new(&ca)));
            }
            Ok(Box::new(b.build()?))
        }
        kind => {
            let mut provided = Secrets::from_refs(Some(app.project_dir()));
            for (name, value) in &secrets {
                provided = provided.provide(format!("lakecdp-vault:{name}"), value.clone());
            }
            // an export destination is any folder, bucket or container: the rules of an
            // environment's lake (the `customerinsights` container) do not apply
            let handle = match kind {
                ConnectionKind::Local => {
                    let path = setting("path").unwrap_or_default();
                    app.check_local_path(
                        app.project_dir(),
                        &path,
                        &format!("the folder of connection `{}`", connection.name),
                    )?;
                    backend::local::open_folder(&absolute(
                        app.project_dir(),
                        std::path::Path::new(&path),
                    ))
                }
                ConnectionKind::S3 => {
                    if let Some(id) = setting("access_key_id") {
                        provided = provided.provide("lakecdp-vault:access_key_id", Secret::new(id));
                    }
                    backend::s3::open_with(
                        &S3Config {
                            bucket: setting("bucket").unwrap_or_default(),
                            prefix: setting("prefix"),
                            region: setting("region").unwrap_or_else(|| "us-east-1".into()),
                            endpoint: setting("endpoint"),
                            access_key_id: Some(vault_ref("access_key_id")),
                            secret_access_key: Some(vault_ref("secret_access_key")),
                            session_token: None,
                            path_style: None,
                            // an export connection's keys are always sealed in the catalog
                            credentials: lakecdp_core::Credentials::Declared,
                        },
                        &provided,
                    )
                }
                _ => backend::azure::open_with(
                    &AdlsConfig {
                        account: setting("account"),
                        container: setting("container"),
                        endpoint: setting("endpoint"),
                        emulator: setting("emulator").is_some_and(|v| v == "true"),
                        allow_flat_namespace: true,
                        account_key: Some(vault_ref("account_key")),
                        ..Default::default()
                    },
                    &provided,
                ),
            }
            .with_context(|| format!("connection `{}`", connection.name))?;
            Ok(Box::new(LakeTarget::new(handle, env.id)))
        }
    }
}

/// A selected table, `<process folder>/<Entity>`, split into its folder and entity.
pub fn split_table(table: &str) -> Result<(Process, String)> {
    let (folder, entity) = table.rsplit_once('/').ok_or_else(|| {
        Error::invalid(format!(
            "table `{table}` must be written <process folder>/<Entity>, e.g. Unification/Customer"
        ))
    })?;
    let process = Process::from_folder(folder).ok_or_else(|| {
        Error::invalid(format!(
            "unknown process folder `{folder}` in `{table}`: use Unification, Activities, \
             Measures, Segments, Reports, DataIngestion/<Source> or Exports/<Name>"
        ))
    })?;
    Ok((process, entity.to_string()))
}

/// The published entity a selected table names, with its folder; an error names what is
/// missing and how to produce it.
pub async fn published_entity(lake: &Lake, table: &str) -> Result<(String, Entity)> {
    let (process, entity) = split_table(table)?;
    let model = read_model(lake, &process).await?.ok_or_else(|| {
        Error::not_found(format!(
            "{} has not been published yet: run `lakecdp refresh` first",
            process.folder()
        ))
    })?;
    let found = model
        .entities
        .iter()
        .find(|e| e.name == entity)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = model.entities.iter().map(|e| e.name.as_str()).collect();
            Error::not_found(format!(
                "{} has no table `{entity}`; it has {}",
                process.folder(),
                names.join(", ")
            ))
        })?;
    Ok((process.folder(), found))
}

/// The rows of a published entity, streamed from its partition files.
pub async fn entity_stream(
    session: &lakecdp_engine::Session,
    folder: &str,
    entity: &Entity,
) -> Result<BatchStream<'static>> {
    Ok(session.published_stream(folder, entity).await?)
}

/// The Arrow schema of a published entity.
pub fn entity_schema(entity: &Entity) -> Arc<Schema> {
    lakecdp_lake::partition::entity_schema(entity)
}
