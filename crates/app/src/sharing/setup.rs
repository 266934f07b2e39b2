//! Setting up the sharing of an environment's outputs: its Reader and Contributor
//! groups, the access rules the storage enforces for them, and the permissions
//! identifier the consuming side enters.
//!
//! - `enable` creates (or reuses) the two groups, binds them to what they are on the
//!   storage (local: two existing Unix groups; S3: one identity each, made here; ADLS:
//!   two existing Microsoft Entra groups by object id), applies
//!   the rules, reads them back and records the sharing; `status` reads the rules and
//!   reports drift; `repair` applies them again.
//! - A recipient of the sharing endpoint is a member of one of the two groups: an API
//!   token made by [`App::add_sharing_recipient`] is one.
//!
//! Sharing serves Parquet output only, and needs the environment's Admin.

use chrono::{Duration, Utc};
use lakecdp_core::{
    Environment, Operation, PartitionFormat, Principal, PrincipalKind, Role, Sharing,
    StorageConfig, CONTAINER,
};
use lakecdp_lake::access::adls::AdlsRules;
use lakecdp_lake::access::iam::{IamClient, S3Rules};
use lakecdp_lake::access::local::{unix_group, unreachable_ancestors, LocalRules};
use lakecdp_lake::access::RulesReport;
use serde::Serialize;

use crate::accounts::NewToken;
use crate::{Actor, App, Error, ErrorKind, Result};

/// What `sharing enable` is asked.
#[derive(Debug, Clone, Default)]
pub struct EnableSharing {
    /// The Reader group's name (default `<environment>-readers`).
    pub reader_group: Option<String>,
    /// The Contributor group's name (default `<environment>-contributors`).
    pub contributor_group: Option<String>,
    /// What the Reader group is on the storage: a Unix group (name or id) on a local
    /// lake; on S3 the identity's name (default `lakecdp-<group>`).
    pub storage_reader: Option<String>,
    /// What the Contributor group is on the storage.
    pub storage_contributor: Option<String>,
}

/// The sharing of an environment as the catalog and the storage see it.
#[derive(Debug, Clone, Serialize)]
pub struct SharingStatus {
    /// The environment's name.
    pub environment: String,
    /// What the catalog records.
    pub sharing: Sharing,
    /// The storage's kind (`local`, `s3`, `adls`).
    pub storage: &'static str,
    /// The members of the Reader group.
    pub reader_members: Vec<String>,
    /// The members of the Contributor group.
    pub contributor_members: Vec<String>,
    /// The permissions identifier the consuming side enters.
    pub identifier: String,
    /// The rules found on the storage (and, after enable or repair, what changed).
    pub rules: RulesReport,
    /// What stands in the way of the groups' members although the rules are in place.
    pub warnings: Vec<String>,
    /// The profiles of the last unification that succeeded.
    pub profiles: Option<u64>,
    /// The file capacity in GB those profiles entitle to (20 GB per started 100,000).
    pub entitled_gb: u64,
    /// Bytes the environment's shared folder holds, or why it could not be measured.
    #[serde(serialize_with = "bytes_or_reason")]
    pub used_bytes: std::result::Result<u64, String>,
}

fn bytes_or_reason<S: serde::Serializer>(
    value: &std::result::Result<u64, String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match value {
        Ok(bytes) => s.serialize_u64(*bytes),
        Err(reason) => s.serialize_str(reason),
    }
}

/// The permissions identifier of a sharing: `<container URL>?rg=<reader>&cg=<contributor>`,
/// where the container URL is `https://<account>.dfs.core.windows.net/customerinsights`
/// on ADLS, `s3://<bucket>/<prefix>` on S3 and `file://<folder>/customerinsights` on a
/// local lake, and the group ids are what the groups are on the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionsIdentifier {
    /// The container's URL.
    pub container: String,
    /// The Reader group's id on the storage.
    pub reader: String,
    /// The Contributor group's id on the storage.
    pub contributor: String,
}

impl std::fmt::Display for PermissionsIdentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut url = url::Url::parse(&self.container).map_err(|_| std::fmt::Error)?;
        url.query_pairs_mut()
            .clear()
            .append_pair("rg", &self.reader)
            .append_pair("cg", &self.contributor);
        write!(f, "{url}")
    }
}

impl std::str::FromStr for PermissionsIdentifier {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "`{text}` is not a permissions identifier: {why}; it looks like \
                 `https://<account>.dfs.core.windows.net/customerinsights?rg=<readerGroupId>&cg=<contributorGroupId>`"
            ))
        };
        let url = url::Url::parse(text.trim()).map_err(|_| bad("it is not a URL"))?;
        if !matches!(url.scheme(), "https" | "s3" | "file") {
            return Err(bad("its scheme is none of https, s3 and file"));
        }
        if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(bad("it carries a fragment or credentials"));
        }
        let mut reader = None;
        let mut contributor = None;
        for (k, v) in url.query_pairs() {
            let slot = match k.as_ref() {
                "rg" => &mut reader,
                "cg" => &mut contributor,
                other => return Err(bad(&format!("it has an unknown parameter `{other}`"))),
            };
            if slot.is_some() || v.trim().is_empty() {
                return Err(bad(&format!("`{k}` is empty or given twice")));
            }
            *slot = Some(v.into_owned());
        }
        let (Some(reader), Some(contributor)) = (reader, contributor) else {
            return Err(bad("it needs both `rg` and `cg`"));
        };
        if reader == contributor {
            return Err(bad("its Reader and Contributor groups are the same"));
        }
        let mut container = url.clone();
        container.set_query(None);
        if container.path().trim_matches('/').is_empty() && url.scheme() != "s3" {
            return Err(bad("it names no container"));
        }
        Ok(Self {
            container: container.to_string(),
            reader,
            contributor,
        })
    }
}

/// One of the two groups of a sharing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharingGroup {
    /// Reads the outputs.
    Reader,
    /// Also writes them.
    Contributor,
}

impl SharingGroup {
    /// `reader` or `contributor`.
    pub fn as_str(self) -> &'static str {
        match self {
            SharingGroup::Reader => "reader",
            SharingGroup::Contributor => "contributor",
        }
    }

    fn secret_name(self) -> &'static str {
        match self {
            SharingGroup::Reader => "sharing-reader-key",
            SharingGroup::Contributor => "sharing-contributor-key",
        }
    }

    fn storage_id(self, sharing: &Sharing) -> &str {
        match self {
            SharingGroup::Reader => &sharing.storage_reader,
            SharingGroup::Contributor => &sharing.storage_contributor,
        }
    }
}

impl std::str::FromStr for SharingGroup {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "reader" | "readers" => Ok(SharingGroup::Reader),
            "contributor" | "contributors" => Ok(SharingGroup::Contributor),
            _ => Err(Error::invalid(format!(
                "`{text}` is no sharing group: say `reader` or `contributor`"
            ))),
        }
    }
}

/// The access key of a group's S3 identity.
pub struct GroupKey {
    /// The identity.
    pub identity: String,
    /// The key id.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: lakecdp_core::Secret,
}

impl std::fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupKey")
            .field("identity", &self.identity)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// What a group is on the storage, from what was given for it (if anything), the
/// group's name and the option that gives it.
type Binder = dyn Fn(Option<&String>, &str, &str) -> Result<String>;

/// What a group is on the storage, the backend's kind aside.
enum Bound {
    Local(LocalRules, std::path::PathBuf, std::path::PathBuf),
    S3(S3Rules, IamClient),
    Adls(
        AdlsRules,
        lakecdp_lake::backend::azure::AzureService,
        String,
    ),
}

impl App {
    /// The environment named (or the project file's), once `actor` may perform
    /// `operation`, with its sharing.
    async fn shared_environment(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        operation: Operation,
    ) -> Result<(Environment, Sharing)> {
        let env = self.environment_for(actor, environment, operation).await?;
        let sharing = self.catalog().sharing(env.id).await?.ok_or_else(|| {
            Error::not_found(format!(
                "sharing is not enabled for environment `{}`; enable it with `lakecdp sharing enable`",
                env.name
            ))
        })?;
        Ok((env, sharing))
    }

    /// Enable (or re-bind) the sharing of an environment's outputs: create or reuse its
    /// two groups, apply the storage's rules, read them back and record the sharing.
    pub async fn enable_sharing(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        request: &EnableSharing,
    ) -> Result<SharingStatus> {
        let env = self
            .environment_for(actor, environment, Operation::ManageRoles)
            .await?;
        if env.output_format != PartitionFormat::Parquet {
            return Err(Error::invalid(format!(
                "environment `{}` writes CSV; sharing serves Parquet output: set `output_format = \"parquet\"` in `[environment]` of lakecdp.toml, `lakecdp apply` it and refresh",
                env.name
            )));
        }
        let reader_group = request
            .reader_group
            .clone()
            .unwrap_or_else(|| format!("{}-readers", env.name));
        let contributor_group = request
            .contributor_group
            .clone()
            .unwrap_or_else(|| format!("{}-contributors", env.name));
        if reader_group.eq_ignore_ascii_case(&contributor_group) {
            return Err(Error::invalid(
                "the Reader and Contributor groups must differ",
            ));
        }
        // what each group is on the storage: given, or made from its name
        let given = |bind: &Binder| {
            Ok::<_, Error>((
                bind(
                    request.storage_reader.as_ref(),
                    &reader_group,
                    "--storage-reader",
                )?,
                bind(
                    request.storage_contributor.as_ref(),
                    &contributor_group,
                    "--storage-contributor",
                )?,
            ))
        };
        let (storage_reader, storage_contributor) = match &env.storage {
            StorageConfig::Local(_) => given(&|id, group, flag| {
                let name = id.ok_or_else(|| {
                    Error::invalid(format!(
                        "a local lake is shared with two existing Unix groups: name the one for `{group}` with `{flag} <unix group>`"
                    ))
                })?;
                unix_group(name)
                    .map(|g| g.gid.to_string())
                    .map_err(|e| Error::invalid(e.to_string()))
            })?,
            StorageConfig::S3(_) => {
                given(&|id, group, _| Ok(id.cloned().unwrap_or_else(|| identity_name(group))))?
            }
            StorageConfig::Adls(_) => given(&|id, group, flag| {
                match id {
                Some(id) if uuid_shaped(id) => Ok(id.to_ascii_lowercase()),
                _ => Err(Error::invalid(format!(
                    "an ADLS lake is shared with two existing Microsoft Entra groups: give the object id of the one for `{group}` with `{flag} <object id>` (lakecdp cannot create them)"
                ))),
            }
            })?,
        };
        if storage_reader == storage_contributor {
            return Err(Error::invalid(
                "the Reader and Contributor groups must be different groups on the storage",
            ));
        }
        for group in [&reader_group, &contributor_group] {
            match self.catalog().get_principal(group).await? {
                Some(p) if p.kind == PrincipalKind::Group => {}
                Some(p) => {
                    return Err(Error::conflict(format!(
                        "`{group}` exists already and is a {}, not a group; name another with --reader-group or --contributor-group",
                        p.kind.as_str()
                    )))
                }
                None => {
                    self.catalog()
                        .upsert_principal(&Principal::new(group.as_str(), PrincipalKind::Group))
                        .await?;
                }
            }
        }
        let sharing = Sharing {
            environment: env.id,
            reader_group,
            contributor_group,
            storage_reader,
            storage_contributor,
            enabled_by: actor.name_for(&env),
            enabled_at: Utc::now(),
        };
        let status = self.apply_rules(&env, &sharing, true).await?;
        if status.rules.drifted > 0 {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "the storage did not keep the sharing rules on {} place(s), e.g. {}: expected {}, found {}",
                    status.rules.drifted,
                    status.rules.drift[0].path,
                    status.rules.drift[0].expected,
                    status.rules.drift[0].found
                ),
            ));
        }
        if let StorageConfig::S3(config) = &env.storage {
            self.ensure_group_keys(&env, config, &sharing).await?;
        }
        self.catalog().set_sharing(&sharing).await?;
        self.audit_change(actor, "sharing.enable", Some(env.id), &env.name)
            .await?;
        Ok(status)
    }

    /// On S3, an access key for each group's identity, made once and sealed in the
    /// catalog as the environment's secret `sharing-<reader|contributor>-key`, so that
    /// [`App::sharing_credentials`] can hand it to the consuming side. A key sealed
    /// earlier is kept while the identity still has it.
    async fn ensure_group_keys(
        &self,
        env: &Environment,
        config: &lakecdp_core::S3Config,
        sharing: &Sharing,
    ) -> Result<()> {
        let secrets = self.storage_secrets(env).await?;
        let iam = IamClient::new(config, &secrets).map_err(|e| Error::invalid(e.to_string()))?;
        let vault = self.vault()?;
        let owner = lakecdp_core::SecretOwner::Environment(env.id);
        for group in [SharingGroup::Reader, SharingGroup::Contributor] {
            let identity = group.storage_id(sharing);
            let name = group.secret_name();
            let held = iam
                .access_keys(identity)
                .await
                .map_err(|e| Error::new(ErrorKind::Unavailable, e.to_string()))?;
            if let Some((id, _)) = self.sealed_group_key(env, group).await? {
                if held.contains(&id) {
                    continue;
                }
            }
            let key = iam
                .create_access_key(identity)
                .await
                .map_err(|e| Error::new(ErrorKind::Unavailable, e.to_string()))?;
            let both = lakecdp_core::Secret::new(format!("{}\n{}", key.id, key.secret.expose()));
            let blob = vault.seal(&owner.seal_context(name), &both)?;
            self.catalog()
                .set_environment_secret(env.id, name, &blob)
                .await?;
        }
        Ok(())
    }

    /// The access key of a group's identity on an S3 lake, for the consuming side
    /// (the environment's Admin): its id and secret.
    pub async fn sharing_credentials(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        group: SharingGroup,
    ) -> Result<GroupKey> {
        let (env, sharing) = self
            .shared_environment(actor, environment, Operation::ManageRoles)
            .await?;
        if !matches!(env.storage, StorageConfig::S3(_)) {
            return Err(Error::invalid(
                "group keys exist on S3 lakes only; on a local lake the groups' members use their own Unix accounts",
            ));
        }
        let (id, secret) = self.sealed_group_key(&env, group).await?.ok_or_else(|| {
            Error::not_found(format!(
                "no key of the {} group is sealed; run `lakecdp sharing enable` again to make one",
                group.as_str()
            ))
        })?;
        self.audit_change(
            actor,
            "sharing.credentials",
            Some(env.id),
            &format!("{}/{}", env.name, group.as_str()),
        )
        .await?;
        Ok(GroupKey {
            identity: group.storage_id(&sharing).to_string(),
            access_key_id: id,
            secret_access_key: secret,
        })
    }

    /// The sharing of an environment: its groups and their members, the rules found on
    /// the storage and any drift from what they should be.
    pub async fn sharing_status(
        &self,
        actor: &Actor,
        environment: Option<&str>,
    ) -> Result<SharingStatus> {
        let (env, sharing) = self
            .shared_environment(actor, environment, Operation::ViewRoles)
            .await?;
        self.apply_rules(&env, &sharing, false).await
    }

    /// Apply the sharing rules again, and read them back.
    pub async fn repair_sharing(
        &self,
        actor: &Actor,
        environment: Option<&str>,
    ) -> Result<SharingStatus> {
        let (env, sharing) = self
            .shared_environment(actor, environment, Operation::ManageRoles)
            .await?;
        let status = self.apply_rules(&env, &sharing, true).await?;
        self.audit_change(actor, "sharing.repair", Some(env.id), &env.name)
            .await?;
        Ok(status)
    }

    /// A recipient of the sharing endpoint: an API token `name` of the environment
    /// (Viewer), made a member of its Reader group. The token's value is returned once.
    pub async fn add_sharing_recipient(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        name: &str,
        expires_in: Option<Duration>,
    ) -> Result<NewToken> {
        let (env, sharing) = self
            .shared_environment(actor, environment, Operation::ManageRoles)
            .await?;
        let token = self
            .create_token(actor, Some(&env.name), name, Role::Viewer, expires_in)
            .await?;
        let principal = token.token.principal();
        self.catalog()
            .upsert_principal(&Principal::new(
                principal.as_str(),
                PrincipalKind::Application,
            ))
            .await?;
        self.catalog()
            .add_group_member(&sharing.reader_group, &principal)
            .await?;
        self.audit_change(
            actor,
            "sharing.recipient",
            Some(env.id),
            &format!("{}/{principal}", sharing.reader_group),
        )
        .await?;
        Ok(token)
    }

    /// Whether `actor` receives the sharing of `env`: a member of its Reader or
    /// Contributor group (an API token of another environment never is). The local
    /// user of the catalog always does.
    pub(crate) async fn is_recipient(&self, actor: &Actor, env: &Environment) -> Result<bool> {
        let groups = self.groups_of_actor(actor).await?;
        self.receives(actor, env, &groups).await
    }

    /// The groups of a named actor (none for the local user and the unnamed).
    pub(crate) async fn groups_of_actor(&self, actor: &Actor) -> Result<Vec<String>> {
        match actor.name() {
            Some(name) if !actor.is_local() => Ok(self.catalog().groups_of(name).await?),
            _ => Ok(Vec::new()),
        }
    }

    /// Whether `actor`, member of `groups`, receives the sharing of `env`.
    pub(crate) async fn receives(
        &self,
        actor: &Actor,
        env: &Environment,
        groups: &[String],
    ) -> Result<bool> {
        let Some(sharing) = self.catalog().sharing(env.id).await? else {
            return Ok(false);
        };
        if actor.is_local() {
            return Ok(true);
        }
        if actor.scope().is_some_and(|(id, _)| id != env.id) || actor.name().is_none() {
            return Ok(false);
        }
        Ok(in_sharing_groups(&sharing, groups))
    }

    /// A group's S3 key as sealed in the catalog: its id and secret; `None` when none
    /// is sealed.
    async fn sealed_group_key(
        &self,
        env: &Environment,
        group: SharingGroup,
    ) -> Result<Option<(String, lakecdp_core::Secret)>> {
        let name = group.secret_name();
        let Some(blob) = self.catalog().environment_secret(env.id, name).await? else {
            return Ok(None);
        };
        let owner = lakecdp_core::SecretOwner::Environment(env.id);
        let sealed = self.vault()?.open(&owner.seal_context(name), &blob)?;
        let (id, secret) = sealed
            .expose()
            .split_once('\n')
            .ok_or_else(|| Error::internal(format!("the sealed secret `{name}` is malformed")))?;
        Ok(Some((id.to_string(), lakecdp_core::Secret::new(secret))))
    }

    async fn bind(&self, env: &Environment, sharing: &Sharing) -> Result<Bound> {
        match &env.storage {
            StorageConfig::Local(config) => {
                let root = lakecdp_lake::backend::local::root_dir(config, Some(self.project_dir()));
                let container = root.join(CONTAINER);
                let environment = container.join(format!("ci_{}", env.id));
                let gid = |text: &str| {
                    text.parse::<u32>().map_err(|_| {
                        Error::internal(format!(
                            "the recorded Unix group id `{text}` is not a number"
                        ))
                    })
                };
                Ok(Bound::Local(
                    LocalRules {
                        reader: gid(&sharing.storage_reader)?,
                        contributor: gid(&sharing.storage_contributor)?,
                    },
                    container,
                    environment,
                ))
            }
            StorageConfig::S3(config) => {
                let secrets = self.storage_secrets(env).await?;
                let iam =
                    IamClient::new(config, &secrets).map_err(|e| Error::invalid(e.to_string()))?;
                let container = lakecdp_lake::backend::s3::container_path(config);
                let prefix = if container.as_ref().is_empty() {
                    format!("ci_{}", env.id)
                } else {
                    format!("{container}/ci_{}", env.id)
                };
                Ok(Bound::S3(
                    S3Rules {
                        bucket: config.bucket.clone(),
                        prefix,
                        reader: sharing.storage_reader.clone(),
                        contributor: sharing.storage_contributor.clone(),
                    },
                    iam,
                ))
            }
            StorageConfig::Adls(config) => {
                let secrets = self.storage_secrets(env).await?;
                let service = lakecdp_lake::backend::azure::AzureService::dfs(config, &secrets)?;
                let location = config
                    .location()
                    .map_err(|e| Error::invalid(e.to_string()))?;
                Ok(Bound::Adls(
                    AdlsRules {
                        filesystem: location.container.clone(),
                        environment: format!("ci_{}", env.id),
                        reader: sharing.storage_reader.clone(),
                        contributor: sharing.storage_contributor.clone(),
                    },
                    service,
                    format!(
                        "https://{}.dfs.core.windows.net/{}",
                        location.account, location.container
                    ),
                ))
            }
        }
    }

    /// Apply (with `fix`) or read the rules of the sharing, and say what stands.
    async fn apply_rules(
        &self,
        env: &Environment,
        sharing: &Sharing,
        fix: bool,
    ) -> Result<SharingStatus> {
        let mut warnings = Vec::new();
        let (rules, container, kind) = match self.bind(env, sharing).await? {
            Bound::Local(rules, container, environment) => {
                if fix {
                    std::fs::create_dir_all(&environment).map_err(|e| {
                        Error::new(
                            ErrorKind::Unavailable,
                            format!("cannot create {}: {e}", environment.display()),
                        )
                    })?;
                }
                let report = if fix {
                    rules.apply(&container, &environment)
                } else {
                    rules.check(&container, &environment)
                }
                .map_err(|e| Error::new(ErrorKind::Unavailable, e.to_string()))?;
                for (group, gid) in [
                    (&sharing.reader_group, rules.reader),
                    (&sharing.contributor_group, rules.contributor),
                ] {
                    for dir in unreachable_ancestors(&container, gid) {
                        warnings.push(format!(
                            "members of `{group}` (Unix group {gid}) cannot search {}, above the lake: give them `x` there (e.g. `setfacl -m g:{gid}:x {}`)",
                            dir.display(),
                            dir.display()
                        ));
                    }
                }
                (report, folder_url(&container), "local")
            }
            Bound::Adls(rules, service, container) => {
                let report = if fix {
                    rules.apply(&service).await
                } else {
                    rules.check(&service).await
                }
                .map_err(|e| Error::new(ErrorKind::Unavailable, e.to_string()))?;
                (report, container, "adls")
            }
            Bound::S3(rules, iam) => {
                let report = if fix {
                    rules.apply(&iam).await
                } else {
                    rules.check(&iam).await
                }
                .map_err(|e| Error::new(ErrorKind::Unavailable, e.to_string()))?;
                (
                    report,
                    format!("s3://{}/{}", rules.bucket, rules.prefix),
                    "s3",
                )
            }
        };
        let identifier = PermissionsIdentifier {
            container,
            reader: sharing.storage_reader.clone(),
            contributor: sharing.storage_contributor.clone(),
        };
        let profiles = self
            .catalog()
            .latest_run(env.id, "unify", Some(lakecdp_core::RunStatus::Succeeded))
            .await?
            .and_then(|r| r.rows);
        Ok(SharingStatus {
            profiles,
            entitled_gb: crate::environments::capacity(profiles.unwrap_or(0)).1,
            used_bytes: self.lake_bytes(env).await,
            environment: env.name.clone(),
            sharing: sharing.clone(),
            storage: kind,
            reader_members: self.catalog().group_members(&sharing.reader_group).await?,
            contributor_members: self
                .catalog()
                .group_members(&sharing.contributor_group)
                .await?,
            identifier: identifier.to_string(),
            rules,
            warnings,
        })
    }
}

/// Whether one of `groups` is the sharing's Reader or Contributor group.
pub(crate) fn in_sharing_groups(sharing: &Sharing, groups: &[String]) -> bool {
    groups.iter().any(|g| {
        g.eq_ignore_ascii_case(&sharing.reader_group)
            || g.eq_ignore_ascii_case(&sharing.contributor_group)
    })
}

/// The `file://` URL of a local folder, without a trailing slash: how a local
/// container is named in permissions identifiers and attachments.
pub(crate) fn folder_url(folder: &std::path::Path) -> String {
    url::Url::from_directory_path(folder)
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .unwrap_or_else(|()| format!("file://{}", folder.display()))
}

/// The S3 identity of a group: `lakecdp-<group>`, in the characters IAM user names take.
fn identity_name(group: &str) -> String {
    let name: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("lakecdp-{name}");
    name.truncate(64);
    name
}

/// Whether `text` has the shape of a Microsoft Entra object id (a UUID).
fn uuid_shaped(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server spawns these operations: their futures must be `Send` (checked when
    /// this compiles).
    #[allow(dead_code)]
    fn futures_are_send(app: &App, actor: &Actor) {
        fn send<T: Send>(_: T) {}
        send(app.sharing_status(actor, None));
        send(app.enable_sharing(actor, None, &EnableSharing::default()));
        send(app.attach_sharing(actor, "", "", None));
    }

    #[test]
    fn a_permissions_identifier_round_trips_and_bad_ones_say_why() {
        let text = "https://contoso.dfs.core.windows.net/customerinsights?rg=1111&cg=2222";
        let id: PermissionsIdentifier = text.parse().unwrap();
        assert_eq!(
            id,
            PermissionsIdentifier {
                container: "https://contoso.dfs.core.windows.net/customerinsights".into(),
                reader: "1111".into(),
                contributor: "2222".into(),
            }
        );
        assert_eq!(id.to_string(), text);
        let local: PermissionsIdentifier = "file:///srv/lake/customerinsights?rg=100&cg=50"
            .parse()
            .unwrap();
        assert_eq!(local.reader, "100");
        for (bad, why) in [
            ("not a url", "not a URL"),
            ("ftp://h/customerinsights?rg=1&cg=2", "scheme"),
            ("https://h/customerinsights?rg=1", "both"),
            ("https://h/customerinsights?rg=1&cg=1", "the same"),
            (
                "https://h/customerinsights?rg=1&cg=2&x=3",
                "unknown parameter `x`",
            ),
            ("https://h/customerinsights?rg=1&rg=3&cg=2", "given twice"),
            ("https://h/customerinsights?rg=&cg=2", "empty"),
            ("https://u:p@h/customerinsights?rg=1&cg=2", "credentials"),
            ("https://h/?rg=1&cg=2", "no container"),
        ] {
            let err = bad
                .parse::<PermissionsIdentifier>()
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn entra_object_ids_are_uuids() {
        assert!(uuid_shaped("11111111-aaaa-4aaa-8aaa-111111111111"));
        for bad in ["", "readers", "11111111-aaaa-4aaa-8aaa-11111111111", "g:1"] {
            assert!(!uuid_shaped(bad), "{bad}");
        }
    }

    #[test]
    fn identity_names_keep_to_the_characters_iam_takes() {
        assert_eq!(
            identity_name("Contoso readers/EU"),
            "lakecdp-Contoso-readers-EU"
        );
        assert_eq!(identity_name(&"x".repeat(100)).len(), 64);
    }
}
