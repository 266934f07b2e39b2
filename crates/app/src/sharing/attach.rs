//! Attaching from the consuming side: an organisation enters the permissions identifier
//! a sharing printed; lakecdp checks it, checks on the storage that the groups exist and
//! the rules are in place, and records the attachment. One organisation is attached to
//! one storage account at most. Detaching lists what reads through the attachment (the
//! connections that reach the account, the exports through them, the recipients of the
//! environments shared there) and refuses while any is left, unless told to remove them.

use std::path::PathBuf;

use chrono::Utc;
use lakecdp_core::{Attachment, ConnectionKind, StorageConfig};
use lakecdp_lake::access::local::unix_group;
use lakecdp_lake::access::posix::{self, Tag};
use object_store::ObjectStore;
use serde::Serialize;

use super::setup::{folder_url, in_sharing_groups};
use super::PermissionsIdentifier;
use crate::{Actor, App, Error, ErrorKind, Result};

/// An S3 key the consuming side holds (a group's key, from `sharing credentials`), and
/// where the server is.
#[derive(Clone)]
pub struct S3Access {
    /// The key id.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: lakecdp_core::Secret,
    /// The region.
    pub region: String,
    /// An endpoint for S3-compatible servers.
    pub endpoint: Option<String>,
}

impl std::fmt::Debug for S3Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Access")
            .field("access_key_id", &self.access_key_id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// A Microsoft Entra application of the consuming side (a member of the Reader group),
/// with which the ACLs of an ADLS account are read.
#[derive(Clone)]
pub struct EntraAccess {
    /// The tenant.
    pub tenant_id: String,
    /// The application (client) id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: lakecdp_core::Secret,
    /// A Data Lake endpoint to use instead of the account's own.
    pub endpoint: Option<String>,
    /// The Entra authority, for national clouds.
    pub authority_host: Option<String>,
}

impl std::fmt::Debug for EntraAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraAccess")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The credentials the consuming side checks the rules with.
#[derive(Debug, Clone)]
pub enum AttachAccess {
    /// A group's S3 key.
    S3(S3Access),
    /// An Entra application, for ADLS.
    Entra(EntraAccess),
}

/// What reads through an attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dependents {
    /// Connections (`environment/name`) that reach the account.
    pub connections: Vec<String>,
    /// Exports (`environment/name`) through those connections.
    pub exports: Vec<String>,
    /// Recipient tokens (`environment/token`) of the environments shared from it.
    pub tokens: Vec<String>,
}

impl Dependents {
    /// Whether nothing depends on the attachment.
    pub fn is_empty(&self) -> bool {
        self.connections.is_empty() && self.exports.is_empty() && self.tokens.is_empty()
    }
}

/// The storage account of an identifier's container: the host of an ADLS URL, the
/// bucket of an S3 URL, the container folder of a local one.
fn account_of(id: &PermissionsIdentifier) -> Result<String> {
    let url = url::Url::parse(&id.container).map_err(|e| Error::invalid(e.to_string()))?;
    Ok(match url.scheme() {
        "https" => url.host_str().unwrap_or_default().to_ascii_lowercase(),
        "s3" => format!("s3://{}", url.host_str().unwrap_or_default()),
        _ => id.container.trim_end_matches('/').to_string(),
    })
}

impl App {
    /// Attach `organization` to the shared storage `identifier` names (a catalog
    /// administrator): the groups must exist on the storage and the rules be in place
    /// (on S3, `access` must be a group's key, which must list the shared folder).
    pub async fn attach_sharing(
        &self,
        actor: &Actor,
        identifier: &str,
        organization: &str,
        access: Option<&AttachAccess>,
    ) -> Result<Attachment> {
        self.require_administrator(actor).await?;
        let organization = organization.trim();
        if organization.is_empty() {
            return Err(Error::invalid(
                "name the consuming organisation with --organization",
            ));
        }
        let id: PermissionsIdentifier = identifier.parse()?;
        let url = url::Url::parse(&id.container).map_err(|e| Error::invalid(e.to_string()))?;
        match url.scheme() {
            "file" => check_local(&url, &id)?,
            "s3" => {
                let access = match access {
                    Some(AttachAccess::S3(a)) => Some(a),
                    _ => None,
                };
                check_s3(&url, access).await?
            }
            _ => {
                let access = match access {
                    Some(AttachAccess::Entra(a)) => a,
                    _ => {
                        return Err(Error::invalid(
                            "attaching to an ADLS account reads its ACLs as a member of the Reader group: give the Entra application's --tenant-id, --client-id and --client-secret-env",
                        ))
                    }
                };
                check_adls(&url, &id, access).await?
            }
        }
        let wanted = Attachment {
            organization: organization.to_string(),
            account: account_of(&id)?,
            identifier: id.to_string(),
            attached_by: actor
                .name()
                .map_or_else(|| crate::DEFAULT_PRINCIPAL.to_string(), str::to_string),
            attached_at: Utc::now(),
        };
        let kept = self.catalog().attach(&wanted).await?;
        if kept.account != wanted.account {
            return Err(Error::conflict(format!(
                "organisation `{}` is already attached to another lakecdp storage account ({}); detach it there first with `lakecdp sharing detach {}`",
                kept.organization, kept.account, kept.organization
            )));
        }
        self.audit_change(actor, "sharing.attach", None, &kept.organization)
            .await?;
        Ok(kept)
    }

    /// The attached organisations (a catalog administrator).
    pub async fn attachments(&self, actor: &Actor) -> Result<Vec<Attachment>> {
        self.require_administrator(actor).await?;
        Ok(self.catalog().attachments().await?)
    }

    /// What reads through the attachment of `organization`.
    pub async fn attachment_dependents(
        &self,
        actor: &Actor,
        organization: &str,
    ) -> Result<(Attachment, Dependents)> {
        self.require_administrator(actor).await?;
        let attachment = self
            .catalog()
            .attachments()
            .await?
            .into_iter()
            .find(|a| a.organization.eq_ignore_ascii_case(organization))
            .ok_or_else(|| {
                Error::not_found(format!("organisation `{organization}` is not attached"))
            })?;
        let mut dependents = Dependents::default();
        for env in self.catalog().list_environments().await? {
            for connection in self.catalog().list_connections(env.id).await? {
                if !reaches(&attachment.account, connection.kind, &connection.settings) {
                    continue;
                }
                dependents
                    .connections
                    .push(format!("{}/{}", env.name, connection.name));
                for export in self.catalog().list_exports(env.id).await? {
                    if export.connection_id == connection.id {
                        dependents
                            .exports
                            .push(format!("{}/{}", env.name, export.name));
                    }
                }
            }
            if !stored_in(&attachment.account, &env.storage, self.project_dir()) {
                continue;
            }
            let Some(sharing) = self.catalog().sharing(env.id).await? else {
                continue;
            };
            for token in self.catalog().list_tokens(env.id).await? {
                if token.revoked_at.is_some() {
                    continue;
                }
                let groups = self.catalog().groups_of(&token.principal()).await?;
                if in_sharing_groups(&sharing, &groups) {
                    dependents
                        .tokens
                        .push(format!("{}/{}", env.name, token.name));
                }
            }
        }
        Ok((attachment, dependents))
    }

    /// Detach `organization`: refused while anything reads through the attachment,
    /// unless `with_dependents`, which deletes the exports and connections and revokes
    /// the recipient tokens first. What was removed.
    pub async fn detach_sharing(
        &self,
        actor: &Actor,
        organization: &str,
        with_dependents: bool,
    ) -> Result<Dependents> {
        let (attachment, dependents) = self.attachment_dependents(actor, organization).await?;
        if !dependents.is_empty() && !with_dependents {
            let mut list = Vec::new();
            for (what, names) in [
                ("export", &dependents.exports),
                ("connection", &dependents.connections),
                ("recipient token", &dependents.tokens),
            ] {
                list.extend(names.iter().map(|n| format!("{what} {n}")));
            }
            return Err(Error::conflict(format!(
                "organisation `{}` cannot be detached while these read through it: {}; remove them first, or detach with --with-dependents",
                attachment.organization,
                list.join(", ")
            )));
        }
        if with_dependents {
            for (kind, names) in [
                ("export", &dependents.exports),
                ("connection", &dependents.connections),
                ("token", &dependents.tokens),
            ] {
                for qualified in names {
                    let Some((env, name)) = qualified.split_once('/') else {
                        continue;
                    };
                    match kind {
                        "export" => self.in_environment(env).delete_export(actor, name).await?,
                        "connection" => {
                            self.in_environment(env)
                                .delete_connection(actor, name)
                                .await?
                        }
                        _ => self.revoke_token(actor, Some(env), name).await?,
                    }
                }
            }
        }
        self.catalog().detach(&attachment.organization).await?;
        self.audit_change(actor, "sharing.detach", None, &attachment.organization)
            .await?;
        Ok(dependents)
    }
}

/// Whether a connection's settings reach `account`.
fn reaches(
    account: &str,
    kind: ConnectionKind,
    settings: &std::collections::BTreeMap<String, String>,
) -> bool {
    let get = |k: &str| settings.get(k).map(String::as_str).unwrap_or_default();
    match kind {
        ConnectionKind::Local => {
            let folder = folder_url(std::path::Path::new(get("path")));
            folder == account || folder.starts_with(&format!("{account}/"))
        }
        ConnectionKind::S3 => account == format!("s3://{}", get("bucket")),
        ConnectionKind::Adls => {
            account.starts_with(&format!("{}.", get("account").to_ascii_lowercase()))
        }
        ConnectionKind::Postgresql => false,
    }
}

/// Whether an environment's lake is in `account`.
fn stored_in(account: &str, storage: &StorageConfig, project: &std::path::Path) -> bool {
    match storage {
        StorageConfig::Local(c) => {
            let container = lakecdp_lake::backend::local::root_dir(c, Some(project))
                .join(lakecdp_core::CONTAINER);
            folder_url(&container) == account
        }
        StorageConfig::S3(c) => account == format!("s3://{}", c.bucket),
        StorageConfig::Adls(c) => c
            .location()
            .map(|l| account.starts_with(&format!("{}.", l.account.to_ascii_lowercase())))
            .unwrap_or(false),
    }
}

/// A local container: the folder exists, the groups exist, and its ACL names both.
fn check_local(url: &url::Url, id: &PermissionsIdentifier) -> Result<()> {
    let folder: PathBuf = url
        .to_file_path()
        .map_err(|()| Error::invalid(format!("`{url}` names no local folder")))?;
    if !folder.is_dir() {
        return Err(Error::invalid(format!(
            "the shared container {} is not a folder on this machine",
            folder.display()
        )));
    }
    let acl = posix::read(&folder, false)
        .map_err(|e| Error::new(ErrorKind::Unavailable, format!("{}: {e}", folder.display())))?
        .unwrap_or_default();
    for (role, text) in [("Reader", &id.reader), ("Contributor", &id.contributor)] {
        let group = unix_group(text).map_err(|e| Error::invalid(e.to_string()))?;
        let granted = acl.get(Tag::Group(group.gid));
        if granted.is_none_or(|p| p.bits() & 5 != 5) {
            return Err(Error::invalid(format!(
                "the {role} group `{}` (Unix group {}) holds no `r-x` entry on {}: the sharing's rules are not in place; its Admin runs `lakecdp sharing repair`",
                group.name,
                group.gid,
                folder.display()
            )));
        }
    }
    Ok(())
}

/// An ADLS file system: its root's ACL, read with the consuming side's application,
/// names both groups.
async fn check_adls(
    url: &url::Url,
    id: &PermissionsIdentifier,
    access: &EntraAccess,
) -> Result<()> {
    let host = url.host_str().unwrap_or_default();
    let account = host
        .strip_suffix(".dfs.core.windows.net")
        .ok_or_else(|| {
            Error::invalid(format!(
                "`{host}` is not an ADLS Gen2 account's Data Lake host (<account>.dfs.core.windows.net)"
            ))
        })?;
    let filesystem = url.path().trim_matches('/');
    if filesystem.is_empty() || filesystem.contains('/') {
        return Err(Error::invalid(format!(
            "`{url}` names no file system (container) of the account"
        )));
    }
    let secret_var = "attach-client-secret";
    let config = lakecdp_core::AdlsConfig {
        account: Some(account.to_string()),
        container: Some(filesystem.to_string()),
        tenant_id: Some(access.tenant_id.clone()),
        client_id: Some(access.client_id.clone()),
        client_secret: Some(lakecdp_core::SecretRef::Vault(secret_var.into())),
        endpoint: access.endpoint.clone(),
        emulator: access
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://")),
        authority_host: access.authority_host.clone(),
        ..Default::default()
    };
    let secrets = lakecdp_lake::secrets::Secrets::from_refs(None)
        .provide(secret_var, access.client_secret.clone());
    let service = lakecdp_lake::backend::azure::AzureService::dfs(&config, &secrets)?;
    let acl = service
        .get_access_control(filesystem, "/")
        .await
        .map_err(|e| {
            Error::invalid(format!(
                "the application cannot read the ACL of {url}: it is not a member of the Reader group, or the sharing's rules are not in place ({e})"
            ))
        })?;
    for (role, group) in [("Reader", &id.reader), ("Contributor", &id.contributor)] {
        let entry = format!("group:{group}:");
        if !acl.split(',').any(|e| e.trim().starts_with(&entry)) {
            return Err(Error::invalid(format!(
                "the {role} group {group} holds no entry on {url}: the sharing's rules are not in place; its Admin runs `lakecdp sharing repair`"
            )));
        }
    }
    Ok(())
}

/// An S3 prefix: the consuming side's group key lists it.
async fn check_s3(url: &url::Url, access: Option<&S3Access>) -> Result<()> {
    use futures::StreamExt;
    let access = access.ok_or_else(|| {
        Error::invalid(
            "attaching to an S3 lake needs a group's key: pass the file `lakecdp sharing credentials` wrote with --credentials",
        )
    })?;
    let bucket = url.host_str().unwrap_or_default();
    let mut builder = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&access.region)
        .with_access_key_id(&access.access_key_id)
        .with_secret_access_key(access.secret_access_key.expose());
    if let Some(ep) = &access.endpoint {
        builder = builder
            .with_endpoint(ep.trim_end_matches('/'))
            .with_allow_http(ep.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    let store = builder
        .build()
        .map_err(|e| Error::invalid(format!("cannot configure S3: {e}")))?;
    let prefix = object_store::path::Path::from(url.path().trim_matches('/'));
    let mut listing = store.list(Some(&prefix));
    match listing.next().await {
        None | Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(Error::invalid(format!(
            "the key given cannot list {url}: the sharing's rules are not in place for it, or it is no group's key ({e})"
        ))),
    }
}
