//! The environments' outputs as the Delta Sharing protocol sees them: a share is an
//! environment, a schema is one of its process folders (`Unification`, `Activities`,
//! `Measures`, `Segments`, `Reports`, and `DataIngestion_<Source>` for an ingestion
//! folder), a table is an entity of the folder whose partitions are Parquet, and a
//! table's version is the ordinal of its folder's published run (`lakecdp:version`).
//!
//! Files are never handed out as storage locations or credentials: each is a URL of
//! this server signed with the catalog's key (HMAC-SHA256 over the environment, the
//! file's path in the lake and the expiry), which [`App::shared_file`] checks before it
//! reads a byte. A URL outlives nothing: once expired it is refused, and the lake keeps
//! a run's files for its retention's minimum age (an hour) after a newer run replaced
//! it, longer than a URL lives, so a read that started on one run finishes on it.
//!
//! Only an environment whose sharing is enabled is a share, and only to the members of
//! its Reader and Contributor groups ([`setup`]).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use lakecdp_core::{Environment, EnvironmentId};
use lakecdp_lake::cdm::{spark_schema, ArrowTypes, Entity, Model, MODEL_JSON};
use lakecdp_lake::layout::INTERNAL;
use lakecdp_lake::partition::partition_relative;
use lakecdp_lake::publish::{publish_version, read_model_at};
use lakecdp_lake::Lake;
use ring::hmac;
use serde_json::{json, Value};

use crate::{Actor, App, Error, Result};

mod attach;
mod setup;
pub use attach::{AttachAccess, Dependents, EntraAccess, S3Access};
pub use setup::{EnableSharing, GroupKey, PermissionsIdentifier, SharingGroup, SharingStatus};

/// How long a file URL of a query answer can be read, unless the server says otherwise.
pub const FILE_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The name of the catalog key that signs file URLs.
const URL_KEY: &str = "sharing-file-urls";

/// The process folders every environment may have, besides its ingestion folders.
const FOLDERS: [&str; 5] = [
    "Unification",
    "Activities",
    "Measures",
    "Segments",
    "Reports",
];

/// The schema name of an ingestion folder's prefix.
const INGESTION: &str = "DataIngestion_";

/// A share: an environment the caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The environment's name.
    pub name: String,
    /// The environment's id.
    pub id: String,
}

/// A shared table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedTable {
    /// The share (environment name).
    pub share: String,
    /// The share's id.
    pub share_id: String,
    /// The schema (process folder).
    pub schema: String,
    /// The table (entity) name.
    pub name: String,
    /// A stable id of the table (of the environment, folder and entity).
    pub id: String,
}

/// One file of a shared table, with where the server serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedFile {
    /// The file's path in the environment's lake.
    pub path: String,
    /// A stable id of the file.
    pub id: String,
    /// Its size in bytes.
    pub size: u64,
    /// The signed token that names it in a file URL (`.../files/<token>`).
    pub token: String,
    /// When the token stops being accepted, in milliseconds since the epoch.
    pub expires_ms: i64,
}

/// A table's current state: its version, its metadata (the protocol's `metaData`
/// object) and, for a query, its files.
#[derive(Debug, Clone, PartialEq)]
pub struct TableState {
    /// The ordinal of the published run.
    pub version: u64,
    /// The `metaData` object.
    pub metadata: Value,
    /// The files (empty unless asked for).
    pub files: Vec<SharedFile>,
}

/// A file an URL names, once its signature and expiry are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedFile {
    /// The environment.
    pub environment: EnvironmentId,
    /// The file's path in its lake.
    pub path: String,
}

/// The schema name of a process folder.
pub fn schema_of_folder(folder: &str) -> String {
    match folder.strip_prefix("DataIngestion/") {
        Some(source) => format!("{INGESTION}{source}"),
        None => folder.to_string(),
    }
}

/// A stable id in the shape of a UUID (version 8, of our own making), from the parts
/// given.
fn stable_id(parts: &[&str]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, parts.join("\u{1}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Sign `path` of `environment` until `expires_ms`: `<payload>.<mac>`, both base64url.
fn sign(key: &hmac::Key, environment: EnvironmentId, path: &str, expires_ms: i64) -> String {
    let payload = format!("{environment}\n{path}\n{expires_ms}");
    let mac = hmac::sign(key, payload.as_bytes());
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(mac.as_ref())
    )
}

/// The file a token names, if its signature holds and it has not expired at `now_ms`.
fn verify(key: &hmac::Key, token: &str, now_ms: i64) -> Result<SignedFile> {
    let refused = || {
        Error::denied(
            "the file URL is not valid or has expired: query the table again for a new one",
        )
    };
    let (payload, mac) = token.split_once('.').ok_or_else(refused)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| refused())?;
    let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| refused())?;
    hmac::verify(key, &payload, &mac).map_err(|_| refused())?;
    let payload = String::from_utf8(payload).map_err(|_| refused())?;
    let mut parts = payload.splitn(3, '\n');
    let (Some(env), Some(path), Some(expires)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(refused());
    };
    let expires: i64 = expires.parse().map_err(|_| refused())?;
    if expires <= now_ms {
        return Err(refused());
    }
    Ok(SignedFile {
        environment: env.parse().map_err(|_| refused())?,
        path: path.to_string(),
    })
}

/// Whether an entity can be shared: it has partitions, and every one is Parquet.
fn is_shareable(e: &Entity) -> bool {
    !e.partitions.is_empty() && e.partitions.iter().all(|p| p.is_parquet())
}

impl App {
    /// The key that signs file URLs, the same for every instance of the catalog: read
    /// (or made) once per process, as every file request needs it.
    async fn url_key(&self) -> Result<hmac::Key> {
        let key = self
            .inner()
            .url_key
            .get_or_try_init(|| async {
                let mut fresh = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut fresh)
                    .map_err(|_| Error::internal("no random bytes for the file URL key"))?;
                Ok::<_, Error>(self.catalog().key(URL_KEY, fresh, Utc::now()).await?)
            })
            .await?;
        Ok(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// The shares `actor` may read: the environments whose sharing is enabled and whose
    /// Reader or Contributor group it belongs to, by name.
    pub async fn shares(&self, actor: &Actor) -> Result<Vec<Share>> {
        let mut shares = Vec::new();
        let groups = self.groups_of_actor(actor).await?;
        for env in self.catalog().list_environments().await? {
            if self.receives(actor, &env, &groups).await? {
                shares.push(Share {
                    name: env.name,
                    id: env.id.to_string(),
                });
            }
        }
        Ok(shares)
    }

    /// The share named `share` (case-insensitive), once `actor` may view it.
    pub async fn share(&self, actor: &Actor, share: &str) -> Result<Environment> {
        let not_found = || Error::not_found(format!("no share `{share}`"));
        let env = self
            .catalog()
            .list_environments()
            .await?
            .into_iter()
            .find(|e| e.name.eq_ignore_ascii_case(share))
            .ok_or_else(not_found)?;
        // a share one may not read is one one does not see
        if !self.is_recipient(actor, &env).await? {
            return Err(not_found());
        }
        Ok(env)
    }

    /// The process folders a lake may have: the fixed ones, then its ingestion folders.
    async fn process_folders(&self, lake: &Lake) -> Result<Vec<String>> {
        let mut sources = lake.list_folders("DataIngestion").await?;
        sources.sort();
        Ok(FOLDERS
            .iter()
            .map(|f| f.to_string())
            .chain(sources.into_iter().map(|s| format!("DataIngestion/{s}")))
            .collect())
    }

    /// The process folders of a lake with a published `model.json`, with it; only the
    /// one whose schema is `schema` (case-insensitive) when one is named.
    async fn shared_folders(
        &self,
        lake: &Lake,
        schema: Option<&str>,
    ) -> Result<Vec<(String, Model)>> {
        let mut out = Vec::new();
        for folder in self.process_folders(lake).await? {
            if schema.is_some_and(|s| !schema_of_folder(&folder).eq_ignore_ascii_case(s)) {
                continue;
            }
            if let Some(model) = read_model_at(lake, &folder).await? {
                out.push((folder, model));
            }
        }
        Ok(out)
    }

    /// A share's environment and its schemas: its process folders with a published
    /// `model.json`.
    pub async fn shared_schemas(
        &self,
        actor: &Actor,
        share: &str,
    ) -> Result<(Environment, Vec<String>)> {
        let env = self.share(actor, share).await?;
        let lake = self.lake(&env).await?;
        let mut schemas = Vec::new();
        for folder in self.process_folders(&lake).await? {
            if lake.exists(&format!("{folder}/{MODEL_JSON}")).await? {
                schemas.push(schema_of_folder(&folder));
            }
        }
        Ok((env, schemas))
    }

    /// The tables of a share, of one schema or of all.
    pub async fn shared_tables(
        &self,
        actor: &Actor,
        share: &str,
        schema: Option<&str>,
    ) -> Result<Vec<SharedTable>> {
        let env = self.share(actor, share).await?;
        let lake = self.lake(&env).await?;
        let folders = self.shared_folders(&lake, schema).await?;
        if let (Some(schema), true) = (schema, folders.is_empty()) {
            return Err(Error::not_found(format!(
                "no schema `{schema}` in share `{share}`"
            )));
        }
        let mut out = Vec::new();
        for (folder, model) in &folders {
            let name = schema_of_folder(folder);
            for e in model.entities.iter().filter(|e| is_shareable(e)) {
                out.push(SharedTable {
                    share: env.name.clone(),
                    share_id: env.id.to_string(),
                    schema: name.clone(),
                    name: e.name.clone(),
                    id: stable_id(&[&env.id.to_string(), folder, &e.name]),
                });
            }
        }
        Ok(out)
    }

    /// A table's version and metadata, and with `files` its files with tokens signed to
    /// be read for that long.
    pub async fn shared_table(
        &self,
        actor: &Actor,
        share: &str,
        schema: &str,
        table: &str,
        files: Option<Duration>,
    ) -> Result<TableState> {
        let env = self.share(actor, share).await?;
        let lake = self.lake(&env).await?;
        let not_found = || Error::not_found(format!("no table `{share}.{schema}.{table}`"));
        let (folder, model) = self
            .shared_folders(&lake, Some(schema))
            .await?
            .into_iter()
            .next()
            .ok_or_else(not_found)?;
        let entity = model
            .entities
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(table))
            .ok_or_else(not_found)?;
        if !is_shareable(entity) {
            return Err(Error::invalid(format!(
                "table `{share}.{schema}.{table}` is written as CSV, and sharing serves Parquet: set `output_format = \"parquet\"` in the environment and refresh"
            )));
        }
        let version = publish_version(&model).unwrap_or(1);
        let mut state_files = Vec::new();
        let mut size = 0u64;
        if let Some(lifetime) = files {
            let key = self.url_key().await?;
            let expires_ms = (Utc::now()
                + chrono::Duration::from_std(lifetime).unwrap_or_default())
            .timestamp_millis();
            for p in &entity.partitions {
                let path = partition_relative(&lake, &folder, p)?;
                let meta = lake.head(&path).await?;
                size += meta.size;
                state_files.push(SharedFile {
                    id: stable_id(&[&env.id.to_string(), &path]),
                    size: meta.size,
                    token: sign(&key, env.id, &path, expires_ms),
                    expires_ms,
                    path,
                });
            }
        }
        let mut metadata = json!({
            "id": stable_id(&[&env.id.to_string(), &folder, &entity.name]),
            "name": entity.name,
            "format": { "provider": "parquet" },
            "schemaString": spark_schema(entity, ArrowTypes::Annotated)?.to_string(),
            "partitionColumns": [],
            "configuration": {},
        });
        if let Some(d) = &entity.description {
            metadata["description"] = json!(d);
        }
        if files.is_some() {
            metadata["size"] = json!(size);
            metadata["numFiles"] = json!(state_files.len());
        }
        Ok(TableState {
            version,
            metadata,
            files: state_files,
        })
    }

    /// The file a signed token names, with its environment's lake, once the signature
    /// holds and the token has not expired. Only published data is served: a path into
    /// the lake's internal folder is refused whatever its signature.
    pub async fn shared_file(&self, token: &str) -> Result<(Lake, SignedFile)> {
        let key = self.url_key().await?;
        let file = verify(&key, token, Utc::now().timestamp_millis())?;
        if file.path.starts_with(INTERNAL) || file.path.split('/').any(|s| s == "..") {
            return Err(Error::denied("the file URL does not name a shared file"));
        }
        let env = self
            .catalog()
            .get_environment(file.environment)
            .await?
            .ok_or_else(|| Error::not_found("the file's environment is gone"))?;
        Ok((self.lake(&env).await?, file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &[byte; 32])
    }

    #[test]
    fn a_signed_file_url_holds_until_it_expires_and_only_with_its_key() {
        let env = EnvironmentId::new();
        let token = sign(
            &key(1),
            env,
            "Unification/Customer/r1/part-00000.parquet",
            2_000,
        );
        assert_eq!(
            verify(&key(1), &token, 1_999).unwrap(),
            SignedFile {
                environment: env,
                path: "Unification/Customer/r1/part-00000.parquet".into()
            }
        );
        // expired, or signed with another key
        assert!(verify(&key(1), &token, 2_000).is_err());
        assert!(verify(&key(2), &token, 1_000).is_err());
    }

    #[test]
    fn a_changed_token_is_refused() {
        let env = EnvironmentId::new();
        let token = sign(&key(1), env, "Segments/Vip/r1/part-00000.parquet", 5_000);
        let (payload, mac) = token.split_once('.').unwrap();
        // another path under the same signature
        let forged = URL_SAFE_NO_PAD
            .encode(format!("{env}\nUnification/Customer/r1/part-00000.parquet\n5000").as_bytes());
        for bad in [
            format!("{forged}.{mac}"),
            format!("{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
            payload.to_string(),
            format!("{payload}.not base64!"),
            String::new(),
        ] {
            let err = verify(&key(1), &bad, 1_000).unwrap_err();
            assert!(
                err.to_string().contains("not valid or has expired"),
                "{err}"
            );
        }
    }

    #[test]
    fn schemas_name_their_folders_and_ids_are_stable() {
        assert_eq!(schema_of_folder("Unification"), "Unification");
        assert_eq!(schema_of_folder("DataIngestion/Crm"), "DataIngestion_Crm");
        let a = stable_id(&["env", "Unification", "Customer"]);
        assert_eq!(a, stable_id(&["env", "Unification", "Customer"]));
        assert_ne!(a, stable_id(&["env", "Unification", "AlternateKey"]));
        assert_eq!(
            uuid::Uuid::parse_str(&a).unwrap().get_version_num(),
            8,
            "{a}"
        );
    }
}
