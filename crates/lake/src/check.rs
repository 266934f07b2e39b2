//! Prerequisite checks of an environment's storage.
//!
//! Every check runs (a check whose input is missing is reported as skipped, with the
//! reason) and the result is one report: check, result, what is wrong, how to fix it.
//! An environment is created only when no check failed.

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;
use futures::TryStreamExt;
use lakecdp_core::storage::parse_adls_url;
use lakecdp_core::{AdlsAuth, EnvironmentId, StorageConfig, CONTAINER};
use object_store::ObjectStoreExt;

use crate::backend::azure::{AccountInfo, AzureService};
use crate::backend::s3::S3Service;
use crate::backend::{self, local, ServiceError, StoreHandle};
use crate::layout::Lake;

/// The checks, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// The configuration is complete and its secrets can be read.
    Configuration,
    /// ADLS: the address is a Gen2 account (Gen1 is not supported).
    Gen2,
    /// The storage answers.
    Reachable,
    /// The credentials are accepted.
    Credentials,
    /// The container `customerinsights` (or the bucket) exists.
    Container,
    /// ADLS: hierarchical namespace is enabled.
    HierarchicalNamespace,
    /// The principal can write, read, list and delete in the environment folder.
    Permissions,
    /// The storage is in the environment's region.
    Region,
}

impl Check {
    /// All checks in order.
    pub const ALL: [Check; 8] = [
        Check::Configuration,
        Check::Gen2,
        Check::Reachable,
        Check::Credentials,
        Check::Container,
        Check::HierarchicalNamespace,
        Check::Permissions,
        Check::Region,
    ];

    /// The name people see.
    pub fn title(&self) -> &'static str {
        match self {
            Check::Configuration => "configuration",
            Check::Gen2 => "data lake gen2",
            Check::Reachable => "storage reachable",
            Check::Credentials => "credentials accepted",
            Check::Container => "container exists",
            Check::HierarchicalNamespace => "hierarchical namespace",
            Check::Permissions => "write/read/list/delete",
            Check::Region => "region",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// Satisfied.
    Pass,
    /// Not satisfied but accepted (e.g. a flat namespace on an emulator), or not
    /// checkable; does not block.
    Warn,
    /// Not satisfied; blocks creating the environment.
    Fail,
    /// Not run or not applicable; the detail says why.
    Skipped,
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckStatus::Pass => "ok",
            CheckStatus::Warn => "warning",
            CheckStatus::Fail => "FAILED",
            CheckStatus::Skipped => "skipped",
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Which check.
    pub check: Check,
    /// Its result.
    pub status: CheckStatus,
    /// What was found (for failures: what is wrong).
    pub detail: String,
    /// How to fix a failure or warning.
    pub fix: Option<String>,
}

/// All checks of one storage configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// One result per check, in [`Check::ALL`] order.
    pub results: Vec<CheckResult>,
}

impl CheckReport {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.status != CheckStatus::Fail)
    }

    /// The result of one check.
    pub fn get(&self, check: Check) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.check == check)
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results
            .iter()
            .filter(|r| r.status == CheckStatus::Fail)
    }
}

/// Inputs of the checks besides the storage configuration.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The environment (its folder hosts the permission probe).
    pub environment_id: EnvironmentId,
    /// The environment's name, for fix messages.
    pub environment_name: String,
    /// The environment's region, if stated.
    pub region: Option<String>,
    /// Create a missing container instead of failing.
    pub create_container: bool,
    /// The project folder (relative paths and secret files).
    pub project_dir: Option<PathBuf>,
    /// Secrets opened from the vault for `vault:` references (none by default).
    pub sealed: crate::secrets::Secrets,
}

/// Receives each check's result as soon as it is known.
pub type OnResult<'a> = &'a (dyn Fn(&CheckResult) + Sync);

struct Run<'a> {
    results: Vec<CheckResult>,
    each: OnResult<'a>,
}

impl Run<'_> {
    fn set(
        &mut self,
        check: Check,
        status: CheckStatus,
        detail: impl Into<String>,
        fix: Option<String>,
    ) {
        if let Some(r) = self.results.iter_mut().find(|r| r.check == check) {
            r.status = status;
            r.detail = detail.into();
            r.fix = fix;
            (self.each)(r);
        }
    }
    fn pass(&mut self, check: Check, detail: impl Into<String>) {
        self.set(check, CheckStatus::Pass, detail, None);
    }
    fn fail(&mut self, check: Check, detail: impl Into<String>, fix: impl Into<String>) {
        self.set(check, CheckStatus::Fail, detail, Some(fix.into()));
    }
    fn warn(&mut self, check: Check, detail: impl Into<String>, fix: impl Into<String>) {
        self.set(check, CheckStatus::Warn, detail, Some(fix.into()));
    }
    fn skip(&mut self, check: Check, detail: impl Into<String>) {
        self.set(check, CheckStatus::Skipped, detail, None);
    }
    fn status(&self, check: Check) -> CheckStatus {
        self.results
            .iter()
            .find(|r| r.check == check)
            .map(|r| r.status)
            .unwrap_or(CheckStatus::Skipped)
    }
    fn finish(self) -> CheckReport {
        CheckReport {
            results: self.results,
        }
    }
    /// Fail `check`, skip everything after it, and end the run.
    fn stop(mut self, check: Check, detail: String, fix: &str, why: &str) -> CheckReport {
        self.fail(check, detail, fix);
        self.skip_rest(check, why);
        self.finish()
    }
    fn credentials_rejected(self, code: &str, hint: String) -> CheckReport {
        self.stop(
            Check::Credentials,
            format!("the storage rejected the credentials ({code})"),
            &hint,
            "the credentials are not accepted",
        )
    }
    fn skip_rest(&mut self, from: Check, why: &str) {
        let pending: Vec<Check> = self
            .results
            .iter()
            .filter(|r| r.detail.is_empty() && r.check != from)
            .map(|r| r.check)
            .collect();
        for c in pending {
            self.skip(c, format!("not run: {why}"));
        }
    }
}

/// Run every prerequisite check of `storage` for an environment.
pub async fn run(storage: &StorageConfig, opts: &CheckOptions) -> CheckReport {
    run_observed(storage, opts, &|_| {}).await
}

/// [`run`], handing each result to `each` as soon as it is known (a check may be
/// reported again when a later step changes its result; the report holds the last).
pub async fn run_observed(
    storage: &StorageConfig,
    opts: &CheckOptions,
    each: OnResult<'_>,
) -> CheckReport {
    let mut run = Run {
        each,
        results: Check::ALL
            .iter()
            .map(|c| CheckResult {
                check: *c,
                status: CheckStatus::Skipped,
                detail: String::new(),
                fix: None,
            })
            .collect(),
    };
    let dir = opts.project_dir.as_deref();
    let mut secrets = crate::secrets::Secrets::from_refs(dir);
    secrets.extend(&opts.sealed);

    // Gen2 first: a Gen1 address makes the rest meaningless.
    match storage {
        StorageConfig::Adls(a) => match a.url.as_deref().map(parse_adls_url) {
            Some(Err(e)) if e.message.contains("Gen1") => {
                run.fail(Check::Gen2, e.message.clone(), e.fix.clone());
                run.fail(
                    Check::Configuration,
                    "the storage address is not usable",
                    "see the `data lake gen2` check",
                );
                run.skip_rest(
                    Check::Gen2,
                    "the storage is not a Data Lake Storage Gen2 account",
                );
                return run.finish();
            }
            _ => run.pass(Check::Gen2, "the address is a Gen2 (blob/dfs) endpoint"),
        },
        other => run.skip(
            Check::Gen2,
            format!("not applicable to {} storage", other.kind()),
        ),
    }

    // Configuration and secrets.
    let handle = match backend::open_with(storage, dir, &secrets) {
        Ok(h) => {
            run.pass(
                Check::Configuration,
                format!("{} storage at {}", storage.kind(), storage.describe()),
            );
            h
        }
        Err(e) => {
            let fix = match &e {
                crate::Error::Config(errs) => errs.0.iter().map(|e| e.fix.clone()).collect::<Vec<_>>().join("; "),
                crate::Error::Secret { .. } => "make the secret available where the configuration says, or point the configuration elsewhere".into(),
                _ => "correct the storage configuration".into(),
            };
            run.fail(Check::Configuration, e.to_string(), fix);
            run.skip_rest(Check::Configuration, "the configuration is not usable");
            return run.finish();
        }
    };

    match storage {
        StorageConfig::Local(c) => {
            run.pass(
                Check::Reachable,
                format!(
                    "the folder {} is accessible",
                    local::root_dir(c, dir).display()
                ),
            );
            run.skip(
                Check::Credentials,
                "not applicable: local storage uses the file permissions of this user",
            );
            if local::container_exists(c, dir) {
                run.pass(Check::Container, format!("{CONTAINER}/ exists"));
            } else if opts.create_container {
                match local::create_container(c, dir) {
                    Ok(()) => run.pass(
                        Check::Container,
                        format!("{CONTAINER}/ was created (--create-container)"),
                    ),
                    Err(e) => run.fail(
                        Check::Container,
                        e.to_string(),
                        "check the folder's permissions",
                    ),
                }
            } else {
                run.fail(
                    Check::Container,
                    format!(
                        "the folder {} does not exist",
                        local::root_dir(c, dir).join(CONTAINER).display()
                    ),
                    format!(
                        "create it (`mkdir -p {}`) or run again with --create-container",
                        local::root_dir(c, dir).join(CONTAINER).display()
                    ),
                );
            }
            run.skip(
                Check::HierarchicalNamespace,
                "not applicable to local storage (folders are real)",
            );
        }
        StorageConfig::Adls(a) => {
            let service = match AzureService::new_with(a, &secrets) {
                Ok(s) => s,
                Err(e) => {
                    run.fail(Check::Reachable, e.to_string(), "correct the endpoint");
                    run.skip_rest(Check::Reachable, "no client for the storage");
                    return run.finish();
                }
            };
            let key_hint = match a.auth() {
                Ok(AdlsAuth::AccountKey(r)) => format!(
                    "the account key was probably rotated: put the current key where the environment reads it ({r}), or point the environment at another with `lakecdp env update {} --account-key env:VAR`",
                    opts.environment_name
                ),
                Ok(AdlsAuth::Sas(r)) => format!("the SAS token has probably expired or been revoked: put a valid token in {r}, or `lakecdp env update {} --sas-token env:VAR`", opts.environment_name),
                _ => "check the tenant id, client id and client secret of the service principal (the secret may have expired)".into(),
            };
            let info: Option<AccountInfo> = match service.account_info().await {
                Ok(info) => {
                    run.pass(Check::Reachable, "the blob endpoint answered");
                    run.pass(Check::Credentials, "the account accepted the credentials");
                    Some(info)
                }
                Err(ServiceError::Unreachable(m)) => {
                    run.fail(Check::Reachable, format!("the storage did not answer: {m}"), "check the account name, the endpoint, the network path (private endpoint, firewall) and DNS");
                    run.skip_rest(Check::Reachable, "the storage is unreachable");
                    return run.finish();
                }
                Err(ServiceError::Unauthenticated { code })
                | Err(ServiceError::Forbidden { code })
                    if code == "AuthenticationFailed"
                        || code == "AuthorizationFailure"
                        || code.starts_with("InvalidAccountKey") =>
                {
                    run.pass(Check::Reachable, "the blob endpoint answered");
                    // Account information needs account-level rights; tell a rejected key
                    // from a narrower principal by asking for the container.
                    match service.container_exists(CONTAINER).await {
                        Ok(_) => {
                            run.pass(Check::Credentials, "the credentials are accepted (they cannot read account information)");
                            None
                        }
                        Err(_) => {
                            return run.credentials_rejected(&code, key_hint);
                        }
                    }
                }
                Err(ServiceError::Unauthenticated { code }) => {
                    run.pass(Check::Reachable, "the blob endpoint answered");
                    return run.credentials_rejected(&code, key_hint);
                }
                Err(e) => {
                    run.pass(Check::Reachable, "the blob endpoint answered");
                    run.pass(Check::Credentials, format!("account information is not readable ({e}); the container check decides"));
                    None
                }
            };
            match service.container_exists(CONTAINER).await {
                Ok(true) => run.pass(Check::Container, format!("container `{CONTAINER}` exists")),
                Ok(false) if opts.create_container => match service.create_container(CONTAINER).await {
                    Ok(()) => run.pass(Check::Container, format!("container `{CONTAINER}` was created (--create-container)")),
                    Err(e) => run.fail(Check::Container, format!("container `{CONTAINER}` could not be created: {e}"), "create it in the Azure portal, or grant the principal Storage Blob Data Contributor on the account"),
                },
                Ok(false) => run.fail(
                    Check::Container,
                    format!("container `{CONTAINER}` does not exist in the account"),
                    format!("create the container `{CONTAINER}` (Azure portal > Containers > + Container), or run again with --create-container"),
                ),
                Err(e) => run.fail(Check::Container, format!("cannot look at container `{CONTAINER}`: {e}"), "grant the principal Storage Blob Data Contributor (or Owner) on the account or the container"),
            }
            match info.and_then(|i| i.hns_enabled) {
                Some(true) => run.pass(Check::HierarchicalNamespace, "enabled (x-ms-is-hns-enabled: true)"),
                Some(false) if a.allow_flat_namespace && a.emulator => run.warn(
                    Check::HierarchicalNamespace,
                    "not enabled (x-ms-is-hns-enabled: false); accepted because `allow_flat_namespace` is set for this emulator",
                    "use an account with hierarchical namespace in production: folder renames are not atomic and ACLs are not available without it",
                ),
                Some(false) => run.fail(
                    Check::HierarchicalNamespace,
                    "the account does not have hierarchical namespace enabled (x-ms-is-hns-enabled: false)",
                    if a.emulator {
                        "the emulator has no hierarchical namespace: set `allow_flat_namespace = true` to accept it for testing".to_string()
                    } else {
                        "enable hierarchical namespace (Azure portal > storage account > Settings > Data Lake Gen2 upgrade) or use a Data Lake Storage Gen2 account".to_string()
                    },
                ),
                None => run.warn(
                    Check::HierarchicalNamespace,
                    "cannot be checked: the service did not report it to these credentials",
                    "check in the Azure portal that the account has hierarchical namespace enabled",
                ),
            }
        }
        StorageConfig::S3(s) => {
            let service = match S3Service::new_with(s, &secrets) {
                Ok(sv) => sv,
                Err(e) => {
                    run.fail(Check::Reachable, e.to_string(), "correct the endpoint");
                    run.skip_rest(Check::Reachable, "no client for the storage");
                    return run.finish();
                }
            };
            let key_hint = format!(
                "the access key was probably rotated or deleted: put the current keys where the environment reads them, or `lakecdp env update {} --access-key-id env:VAR --secret-access-key env:VAR`",
                opts.environment_name
            );
            let mut bucket_region = None;
            match service.head_bucket().await {
                Ok(found) => {
                    run.pass(Check::Reachable, "the S3 endpoint answered");
                    run.pass(Check::Credentials, "the credentials are accepted");
                    match found {
                        Some(info) => {
                            bucket_region = info.region;
                            run.pass(Check::Container, format!("bucket `{}` exists", s.bucket));
                        }
                        None if opts.create_container => match service.create_bucket().await {
                            Ok(()) => run.pass(Check::Container, format!("bucket `{}` was created (--create-container)", s.bucket)),
                            Err(e) => run.fail(Check::Container, format!("bucket `{}` could not be created: {e}", s.bucket), "create the bucket, or allow s3:CreateBucket"),
                        },
                        None => run.fail(
                            Check::Container,
                            format!("bucket `{}` does not exist", s.bucket),
                            format!("create the bucket `{}` in {}, or run again with --create-container", s.bucket, s.region),
                        ),
                    }
                }
                Err(ServiceError::Unreachable(m)) => {
                    return run.stop(
                        Check::Reachable,
                        format!("the storage did not answer: {m}"),
                        "check the endpoint, the region and the network path",
                        "the storage is unreachable",
                    );
                }
                Err(ServiceError::Unauthenticated { code }) => {
                    run.pass(Check::Reachable, "the S3 endpoint answered");
                    return run.credentials_rejected(&code, key_hint);
                }
                Err(ServiceError::Forbidden { code }) => {
                    run.pass(Check::Reachable, "the S3 endpoint answered");
                    run.pass(Check::Credentials, "the credentials are accepted");
                    run.fail(
                        Check::Container,
                        format!("listing bucket `{}` is denied ({code})", s.bucket),
                        "allow s3:ListBucket on the bucket for these credentials",
                    );
                }
                Err(e) => {
                    run.pass(Check::Reachable, "the S3 endpoint answered");
                    return run.stop(
                        Check::Credentials,
                        format!("unexpected answer: {e}"),
                        "check the endpoint and the credentials",
                        "the storage gave an unexpected answer",
                    );
                }
            }
            run.skip(Check::HierarchicalNamespace, "not applicable to S3 storage");
            region_check(
                &mut run,
                opts.region.as_deref(),
                Some(&s.region),
                bucket_region.as_deref(),
            );
        }
    }

    if run.status(Check::Container) == CheckStatus::Pass {
        probe_permissions(&mut run, &handle, opts.environment_id, storage.kind()).await;
    } else {
        run.skip(
            Check::Permissions,
            "not run: the container is not available",
        );
    }
    if run
        .results
        .iter()
        .any(|r| r.check == Check::Region && r.detail.is_empty())
    {
        region_check(&mut run, opts.region.as_deref(), storage.region(), None);
    }
    run.finish()
}

fn normalise_region(r: &str) -> String {
    r.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

fn region_check(
    run: &mut Run<'_>,
    env: Option<&str>,
    configured: Option<&str>,
    reported: Option<&str>,
) {
    if let (Some(cfg), Some(rep)) = (configured, reported) {
        if normalise_region(cfg) != normalise_region(rep) {
            run.fail(
                Check::Region,
                format!(
                    "the storage configuration says region `{cfg}`, but the bucket is in `{rep}`"
                ),
                format!("set `region = \"{rep}\"` in the storage configuration"),
            );
            return;
        }
    }
    let storage_region = reported.or(configured);
    match (env, storage_region) {
        (Some(e), Some(s)) if normalise_region(e) == normalise_region(s) => run.pass(Check::Region, format!("the storage is in `{s}`, the environment's region")),
        (Some(e), Some(s)) => run.fail(
            Check::Region,
            format!("the environment's region is `{e}` but the storage is in `{s}`"),
            "use a storage account in the environment's region, or change the environment's region",
        ),
        (None, Some(s)) => run.skip(Check::Region, format!("cannot be checked: the environment states no region (the storage is in `{s}`)")),
        (Some(e), None) => run.skip(
            Check::Region,
            format!("cannot be checked: the storage configuration states no region (the environment is in `{e}`); the storage service does not report it, so add `region` to the storage configuration"),
        ),
        (None, None) => run.skip(Check::Region, "cannot be checked: neither the environment nor the storage states a region"),
    }
}

async fn probe_permissions(
    run: &mut Run<'_>,
    handle: &StoreHandle,
    env: EnvironmentId,
    kind: &str,
) {
    let lake = Lake::new(handle, env);
    let rel = lake.internal(&format!("probe-{}", uuid::Uuid::new_v4().simple()));
    let path = lake.path(&rel);
    let payload = Bytes::from_static(b"lakecdp permission probe");
    let fix = match kind {
        "adls" => "grant the principal Storage Blob Data Contributor (or Owner) on the account or the `customerinsights` container",
        "s3" => "allow s3:PutObject, s3:GetObject, s3:ListBucket and s3:DeleteObject on the bucket",
        _ => "give this user read, write and execute permission on the lake folder",
    };
    let store = handle.store.clone();
    if let Err(e) = store.put(&path, payload.clone().into()).await {
        run.fail(Check::Permissions, format!("cannot write {path}: {e}"), fix);
        return;
    }
    let read = async { store.get(&path).await?.bytes().await }.await;
    match read {
        Ok(b) if b == payload => {}
        Ok(_) => {
            run.fail(
                Check::Permissions,
                format!("{path} read back different bytes than were written"),
                "check for a proxy or gateway rewriting content",
            );
            let _ = store.delete(&path).await;
            return;
        }
        Err(e) => {
            run.fail(Check::Permissions, format!("cannot read {path}: {e}"), fix);
            let _ = store.delete(&path).await;
            return;
        }
    }
    let prefix = lake.path(&lake.internal(""));
    let listed: Result<Vec<_>, _> = store.list(Some(&prefix)).try_collect().await;
    match listed {
        Ok(items) if items.iter().any(|m| m.location == path) => {}
        Ok(_) => {
            run.fail(
                Check::Permissions,
                format!("listing {prefix} does not show the probe just written"),
                fix,
            );
            let _ = store.delete(&path).await;
            return;
        }
        Err(e) => {
            run.fail(
                Check::Permissions,
                format!("cannot list {prefix}: {e}"),
                fix,
            );
            let _ = store.delete(&path).await;
            return;
        }
    }
    if let Err(e) = store.delete(&path).await {
        run.fail(
            Check::Permissions,
            format!("cannot delete {path}: {e}"),
            fix,
        );
        return;
    }
    match store.head(&path).await {
        Err(object_store::Error::NotFound { .. }) => run.pass(
            Check::Permissions,
            format!(
                "wrote, read, listed and deleted a probe under {}",
                lake.root()
            ),
        ),
        Ok(_) => run.fail(
            Check::Permissions,
            format!("{path} still exists after delete"),
            fix,
        ),
        Err(e) => run.fail(
            Check::Permissions,
            format!("cannot confirm the probe's deletion: {e}"),
            fix,
        ),
    }
}
