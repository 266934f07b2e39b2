//! Reporting connections and profile reports.
//!
//! A reporting connection links a reporting workspace to an instance folder
//! (`customerinsights/ci_<environmentId>`) the way a report tool is linked to a Customer
//! Insights environment: a storage account and its key (or an S3 bucket and its keys, or
//! a local folder), the environment id and the folder. The key is sealed among the
//! environment's secrets. Creating it checks that the folder holds `Unification/` with
//! `Customer` and `Reports/` (Pending, then Ready or Failed with the reason); every
//! report reads the folder again through the connection, so the workspace keeps up
//! with each refresh.
//!
//! Only the principal who created a connection and the members it grants (principals
//! or groups) see its reports: every other caller, an Admin of the environment
//! included, is refused and reads nothing. Deleting the connection ends access at once.

use chrono::Utc;
use lakecdp_core::reporting::key_secret;
use lakecdp_core::storage::{AdlsConfig, Credentials, LocalConfig, S3Config};
use lakecdp_core::{
    Environment, EnvironmentId, Operation, Process, ReportingConnection, ReportingStatus, Secret,
    SecretOwner, SecretRef, StorageConfig,
};
use lakecdp_lake::publish::read_model;
use lakecdp_lake::Lake;

use crate::app::{absolute, Actor, App};
use crate::error::{Error, Result};

/// Where a new reporting connection reads.
#[derive(Debug, Clone)]
pub enum ReportingLocation {
    /// A local lake root (the folder holding `customerinsights/`).
    Local {
        /// The folder.
        path: String,
    },
    /// An Azure Data Lake Storage Gen2 account and its key.
    Adls {
        /// The account name.
        account: String,
        /// Its key.
        key: Secret,
        /// A blob endpoint override (a private endpoint or an emulator).
        endpoint: Option<String>,
        /// The endpoint is the Azurite emulator (path-style account URLs, no DFS).
        emulator: bool,
    },
    /// An S3 bucket and an access key.
    S3 {
        /// The bucket.
        bucket: String,
        /// Its region.
        region: String,
        /// An endpoint override for S3-compatible stores.
        endpoint: Option<String>,
        /// The access key id.
        access_key_id: Secret,
        /// The secret access key.
        secret_access_key: Secret,
    },
}

/// A reporting connection to create.
#[derive(Debug, Clone)]
pub struct NewReporting {
    /// Its name (letters, digits, `-`, `_`).
    pub name: String,
    /// Where it reads.
    pub location: ReportingLocation,
    /// The environment id of the instance folder.
    pub environment_id: String,
    /// The instance folder, `customerinsights/ci_<environmentId>`.
    pub folder: String,
}

/// One distribution of a profile report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Distribution {
    /// Its entity in `Reports/` (`AgeBands`, `Genders`...).
    pub name: String,
    /// Its title for people.
    pub title: String,
    /// Value and profiles, in the order published.
    pub rows: Vec<(String, i64)>,
}

/// A profile report, read through a reporting connection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProfileReport {
    /// The connection.
    pub connection: String,
    /// The distributions published in `Reports/`, in a fixed order.
    pub distributions: Vec<Distribution>,
    /// Members of each segment at its latest run.
    pub segments: Vec<(String, u64)>,
}

/// The distributions of `Reports/`, in the order reports show them, with their titles.
pub const DISTRIBUTIONS: [(&str, &str); 6] = [
    ("AgeBands", "Age"),
    ("Genders", "Gender"),
    ("IncomeBands", "Income"),
    ("Countries", "Countries"),
    ("Cities", "Cities"),
    ("ProfilesPerSource", "Profiles per source"),
];

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "name: `{name}` cannot name a reporting connection; use 1 to 64 letters, digits, `-` and `_`"
        )))
    }
}

impl App {
    async fn reporting_env(&self, actor: &Actor, environment: Option<&str>) -> Result<Environment> {
        self.environment_for(actor, environment, Operation::ViewEnvironment)
            .await
    }

    /// Whether `actor`, member of `groups`, may see the reports of `c`: its creator, or
    /// a member (itself or through a group).
    fn sees(actor: &Actor, env: &Environment, groups: &[String], c: &ReportingConnection) -> bool {
        let name = actor.name_for(env);
        name.eq_ignore_ascii_case(&c.created_by)
            || c.members.iter().any(|m| {
                m.eq_ignore_ascii_case(&name) || groups.iter().any(|g| g.eq_ignore_ascii_case(m))
            })
    }

    async fn find_reporting(
        &self,
        env: &Environment,
        name: &str,
    ) -> Result<Option<ReportingConnection>> {
        Ok(self
            .catalog()
            .reporting_connections(env.id)
            .await?
            .into_iter()
            .find(|c| c.name.eq_ignore_ascii_case(name)))
    }

    /// The connection `name`, when `actor` may see it; refused (and nothing said of it)
    /// otherwise.
    async fn visible_reporting(
        &self,
        actor: &Actor,
        env: &Environment,
        name: &str,
    ) -> Result<ReportingConnection> {
        let refused = || {
            Error::denied(format!(
                "reporting connection `{name}`: only its creator and the members it grants may see it"
            ))
        };
        let c = self.find_reporting(env, name).await?.ok_or_else(refused)?;
        let groups = self.groups_of_actor(actor).await?;
        if Self::sees(actor, env, &groups, &c) {
            Ok(c)
        } else {
            Err(refused())
        }
    }

    /// The instance folder a connection reads.
    async fn reporting_lake(&self, env: &Environment, c: &ReportingConnection) -> Result<Lake> {
        let mut through = env.clone();
        through.storage = c.storage.clone();
        let secrets = self.storage_secrets(&through).await?;
        let handle =
            lakecdp_lake::backend::open_with(&c.storage, Some(self.project_dir()), &secrets)?;
        Ok(Lake::new(&handle, c.instance))
    }

    /// Check that the folder holds `Unification/` with `Customer`, and `Reports/`.
    async fn check_reporting_folder(
        &self,
        env: &Environment,
        c: &ReportingConnection,
    ) -> std::result::Result<(Lake, lakecdp_lake::cdm::Model), String> {
        let folder = format!("{}/{}", c.storage.describe(), c.instance.folder());
        let lake = self
            .reporting_lake(env, c)
            .await
            .map_err(|e| format!("the storage cannot be opened: {}", e.message()))?;
        let unification = read_model(&lake, &Process::Unification)
            .await
            .map_err(|e| format!("{folder}/Unification cannot be read: {e}"))?
            .ok_or_else(|| {
                format!("{folder} holds no Unification/model.json: run a refresh that unifies")
            })?;
        if unification.entity("Customer").is_none() {
            return Err(format!("{folder}/Unification has no Customer table"));
        }
        let reports = read_model(&lake, &Process::Reports)
            .await
            .map_err(|e| format!("{folder}/Reports cannot be read: {e}"))?
            .ok_or_else(|| format!("{folder} holds no Reports/model.json: run a refresh"))?;
        Ok((lake, reports))
    }

    /// Record the outcome of a check.
    async fn record_reporting_check(
        &self,
        mut c: ReportingConnection,
        outcome: &std::result::Result<(Lake, lakecdp_lake::cdm::Model), String>,
    ) -> Result<ReportingConnection> {
        let (status, reason) = match outcome {
            Ok(_) => (ReportingStatus::Ready, None),
            Err(why) => (ReportingStatus::Failed, Some(why.clone())),
        };
        if c.status != status || c.reason != reason || c.checked_at.is_none() {
            c.status = status;
            c.reason = reason;
            c.checked_at = Some(Utc::now());
            self.catalog().put_reporting_connection(&c).await?;
        }
        Ok(c)
    }

    /// Link a reporting workspace to an instance folder (Admin): the key is sealed,
    /// the folder checked, and the connection Ready or Failed with the reason.
    pub async fn create_reporting_connection(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        new: NewReporting,
    ) -> Result<ReportingConnection> {
        let env = self
            .environment_for(actor, environment, Operation::CreateConnection)
            .await?;
        check_name(&new.name)?;
        let instance: EnvironmentId = new.environment_id.trim().parse().map_err(|_| {
            Error::invalid(format!(
                "environment_id: `{}` is not an environment id (a UUID, as the environment's page shows it)",
                new.environment_id
            ))
        })?;
        // the instance folder in the container; in an S3 bucket (which plays the
        // container) it is `ci_<id>` alone
        let folder = new.folder.trim().trim_matches('/');
        let folder = folder.strip_prefix("customerinsights/").unwrap_or(folder);
        if folder != instance.folder() {
            return Err(Error::invalid(format!(
                "folder: `{}` is not the instance folder of environment {instance}; it is \
                 `customerinsights/{}` (`{}` in an S3 bucket)",
                new.folder,
                instance.folder(),
                instance.folder()
            )));
        }
        if self.find_reporting(&env, &new.name).await?.is_some() {
            return Err(Error::conflict(format!(
                "name: a reporting connection `{}` exists already",
                new.name
            )));
        }
        let key = key_secret(&new.name);
        let id_secret = format!("{key}-id");
        let mut sealed: Vec<(String, Secret)> = Vec::new();
        let storage = match new.location {
            ReportingLocation::Local { path } => {
                if path.trim().is_empty() {
                    return Err(Error::invalid(
                        "path: give the folder holding customerinsights/",
                    ));
                }
                let base = std::path::PathBuf::from(self.revision_base());
                self.check_local_path(&base, &path, "the reporting connection's folder")?;
                StorageConfig::Local(LocalConfig {
                    path: absolute(&base, std::path::Path::new(&path)),
                })
            }
            ReportingLocation::Adls {
                account,
                key: secret,
                endpoint,
                emulator,
            } => {
                if account.trim().is_empty() {
                    return Err(Error::invalid("account: give the storage account's name"));
                }
                sealed.push((key.clone(), secret));
                StorageConfig::Adls(AdlsConfig {
                    account: Some(account.trim().to_string()),
                    container: Some("customerinsights".into()),
                    account_key: Some(SecretRef::Vault(key.clone())),
                    emulator,
                    endpoint,
                    // a report reads files; it needs no hierarchical namespace
                    allow_flat_namespace: true,
                    ..AdlsConfig::default()
                })
            }
            ReportingLocation::S3 {
                bucket,
                region,
                endpoint,
                access_key_id,
                secret_access_key,
            } => {
                if bucket.trim().is_empty() {
                    return Err(Error::invalid("bucket: give the bucket's name"));
                }
                sealed.push((id_secret.clone(), access_key_id));
                sealed.push((key.clone(), secret_access_key));
                StorageConfig::S3(S3Config {
                    bucket: bucket.trim().to_string(),
                    prefix: None,
                    region: if region.trim().is_empty() {
                        "us-east-1".into()
                    } else {
                        region.trim().to_string()
                    },
                    path_style: endpoint.as_ref().map(|_| true),
                    endpoint,
                    access_key_id: Some(SecretRef::Vault(id_secret.clone())),
                    secret_access_key: Some(SecretRef::Vault(key.clone())),
                    session_token: None,
                    credentials: Credentials::Declared,
                })
            }
        };
        if !sealed.is_empty() {
            let vault = self.vault()?;
            for (name, secret) in &sealed {
                let blob =
                    vault.seal(&SecretOwner::Environment(env.id).seal_context(name), secret)?;
                self.catalog()
                    .set_environment_secret(env.id, name, &blob)
                    .await?;
            }
        }
        let c = ReportingConnection {
            environment_id: env.id,
            name: new.name,
            storage,
            instance,
            status: ReportingStatus::Pending,
            reason: None,
            checked_at: None,
            members: Vec::new(),
            created_by: actor.name_for(&env),
            created_at: Utc::now(),
        };
        self.catalog().put_reporting_connection(&c).await?;
        let outcome = self.check_reporting_folder(&env, &c).await;
        self.record_reporting_check(c, &outcome).await
    }

    /// The reporting connections of an environment `actor` may see (Viewer; only those
    /// it created or is granted).
    pub async fn reporting_connections(
        &self,
        actor: &Actor,
        environment: Option<&str>,
    ) -> Result<Vec<ReportingConnection>> {
        let env = self.reporting_env(actor, environment).await?;
        let groups = self.groups_of_actor(actor).await?;
        let mut all = self.catalog().reporting_connections(env.id).await?;
        all.retain(|c| Self::sees(actor, &env, &groups, c));
        Ok(all)
    }

    /// Grant (or, with `grant` false, revoke) a principal's or group's access to a
    /// connection's reports (its creator only).
    pub async fn grant_reporting(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        name: &str,
        member: &str,
        grant: bool,
    ) -> Result<ReportingConnection> {
        let env = self.reporting_env(actor, environment).await?;
        let mut c = self.visible_reporting(actor, &env, name).await?;
        if !actor.name_for(&env).eq_ignore_ascii_case(&c.created_by) {
            return Err(Error::denied(format!(
                "reporting connection `{name}`: only its creator, {}, grants access to it",
                c.created_by
            )));
        }
        let member = member.trim();
        if member.is_empty() {
            return Err(Error::invalid(
                "member: give a principal's or a group's name",
            ));
        }
        if grant {
            let known = self.catalog().get_principal(member).await?.is_some();
            if !known {
                return Err(Error::not_found(format!(
                    "member: no principal or group `{member}`"
                )));
            }
            if !c.members.iter().any(|m| m.eq_ignore_ascii_case(member)) {
                c.members.push(member.to_string());
            }
        } else {
            c.members.retain(|m| !m.eq_ignore_ascii_case(member));
        }
        self.catalog().put_reporting_connection(&c).await?;
        Ok(c)
    }

    /// Remove a reporting connection and its sealed key (its creator, or an Admin of the
    /// environment): its reports are refused from then on.
    pub async fn delete_reporting_connection(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        name: &str,
    ) -> Result<()> {
        let env = self.reporting_env(actor, environment).await?;
        let c = self
            .find_reporting(&env, name)
            .await?
            .ok_or_else(|| Error::not_found(format!("no reporting connection `{name}`")))?;
        let creator = actor.name_for(&env).eq_ignore_ascii_case(&c.created_by);
        if !creator {
            self.require(actor, &env, Operation::DeleteConnection)
                .await?;
        }
        self.catalog()
            .delete_reporting_connection(env.id, &c.name)
            .await?;
        let key = c.key_secret();
        for secret in [key.clone(), format!("{key}-id")] {
            self.catalog()
                .remove_environment_secret(env.id, &secret)
                .await?;
        }
        Ok(())
    }

    /// The profile report of a connection, read from its folder now (its creator and
    /// members only). A folder that no longer holds what reports need marks the
    /// connection Failed, with the reason, and is refused as unavailable.
    pub async fn profile_report(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        name: &str,
    ) -> Result<(ReportingConnection, ProfileReport)> {
        let env = self.reporting_env(actor, environment).await?;
        let c = self.visible_reporting(actor, &env, name).await?;
        let outcome = self.check_reporting_folder(&env, &c).await;
        let c = self.record_reporting_check(c, &outcome).await?;
        let (lake, model) = outcome.map_err(|why| {
            Error::new(
                crate::ErrorKind::Unavailable,
                format!("reporting connection `{name}` failed: {why}"),
            )
        })?;
        let mut distributions = Vec::new();
        for (entity, title) in DISTRIBUTIONS {
            let Some(e) = model.entity(entity) else {
                continue;
            };
            let batches = lakecdp_lake::partition::read_entity(&lake, "Reports", e).await?;
            let mut rows = Vec::new();
            for b in batches {
                let values = b
                    .column_by_name("Value")
                    .and_then(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).ok());
                let counts = b
                    .column_by_name("Profiles")
                    .and_then(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Int64).ok());
                let (Some(values), Some(counts)) = (values, counts) else {
                    return Err(Error::internal(format!(
                        "Reports/{entity} lacks its Value and Profiles columns"
                    )));
                };
                let values = values
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .cloned();
                let counts = counts
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .cloned();
                if let (Some(v), Some(n)) = (values, counts) {
                    use arrow::array::Array;
                    for i in 0..v.len() {
                        if !v.is_null(i) && !n.is_null(i) {
                            rows.push((v.value(i).to_string(), n.value(i)));
                        }
                    }
                }
            }
            if entity == "AgeBands" {
                // bands read youngest first, the unknown last
                const ORDER: [&str; 8] = [
                    "<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+", "unknown",
                ];
                rows.sort_by_key(|(v, _)| ORDER.iter().position(|o| o == v).unwrap_or(ORDER.len()));
            }
            distributions.push(Distribution {
                name: entity.to_string(),
                title: title.to_string(),
                rows,
            });
        }
        let segments = lakecdp_engine::segments::history(&lake)
            .await?
            .pop()
            .map(|latest| latest.counts.into_iter().collect())
            .unwrap_or_default();
        let report = ProfileReport {
            connection: c.name.clone(),
            distributions,
            segments,
        };
        Ok((c, report))
    }
}
