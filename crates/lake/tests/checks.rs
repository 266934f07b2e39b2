//! Prerequisite checks against real storage: the local folder, Azurite and the S3 server.

mod common;

use lakecdp_core::{AdlsConfig, EnvironmentId, SecretRef, StorageConfig};
use lakecdp_lake::check::{self, Check, CheckOptions, CheckReport, CheckStatus};

fn options(region: Option<&str>, create_container: bool) -> CheckOptions {
    CheckOptions {
        environment_id: EnvironmentId::new(),
        environment_name: "retail".into(),
        region: region.map(str::to_string),
        create_container,
        project_dir: None,
        sealed: Default::default(),
    }
}

fn status(report: &CheckReport, c: Check) -> CheckStatus {
    report.get(c).unwrap().status
}

fn detail(report: &CheckReport, c: Check) -> String {
    let r = report.get(c).unwrap();
    format!("{} | fix: {}", r.detail, r.fix.clone().unwrap_or_default())
}

#[tokio::test]
async fn local_missing_container_fails_until_created() {
    let f = common::local_fixture(false);
    let report = check::run(&f.config, &options(None, false)).await;
    assert_eq!(
        status(&report, Check::Container),
        CheckStatus::Fail,
        "{report:?}"
    );
    assert!(detail(&report, Check::Container).contains("--create-container"));
    assert_eq!(status(&report, Check::Permissions), CheckStatus::Skipped);
    assert!(!report.passed());

    let report = check::run(&f.config, &options(None, true)).await;
    assert!(report.passed(), "{report:?}");
    assert_eq!(status(&report, Check::Permissions), CheckStatus::Pass);
    assert_eq!(status(&report, Check::Region), CheckStatus::Skipped);
    assert!(detail(&report, Check::Region).contains("cannot be checked"));
    // the probe is removed afterwards
    let lake_files: Vec<_> = walk(f._dir.as_ref().unwrap().path());
    assert!(lake_files.is_empty(), "{lake_files:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn azurite_reports_flat_namespace() {
    let mut config = common::azurite_config();
    config.allow_flat_namespace = false;
    let report = check::run(&StorageConfig::Adls(config.clone()), &options(None, true)).await;
    assert_eq!(
        status(&report, Check::Credentials),
        CheckStatus::Pass,
        "{report:?}"
    );
    assert_eq!(
        status(&report, Check::HierarchicalNamespace),
        CheckStatus::Fail,
        "{report:?}"
    );
    let d = detail(&report, Check::HierarchicalNamespace);
    assert!(
        d.contains("x-ms-is-hns-enabled: false") && d.contains("allow_flat_namespace"),
        "{d}"
    );
    assert!(!report.passed());

    config.allow_flat_namespace = true;
    let report = check::run(&StorageConfig::Adls(config), &options(None, true)).await;
    assert_eq!(
        status(&report, Check::HierarchicalNamespace),
        CheckStatus::Warn,
        "{report:?}"
    );
    assert_eq!(
        status(&report, Check::Permissions),
        CheckStatus::Pass,
        "{report:?}"
    );
    assert!(report.passed(), "{report:?}");
}

#[tokio::test]
async fn azurite_wrong_key_says_it_was_probably_rotated() {
    let dir = tempfile::tempdir().unwrap();
    // a well-formed key that is not the account's
    std::fs::write(
        dir.path().join("key"),
        "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5IQ==",
    )
    .unwrap();
    let config = AdlsConfig {
        account_key: Some(SecretRef::File(dir.path().join("key"))),
        ..common::azurite_config()
    };
    let report = check::run(&StorageConfig::Adls(config), &options(None, false)).await;
    assert_eq!(
        status(&report, Check::Reachable),
        CheckStatus::Pass,
        "{report:?}"
    );
    assert_eq!(
        status(&report, Check::Credentials),
        CheckStatus::Fail,
        "{report:?}"
    );
    let d = detail(&report, Check::Credentials);
    assert!(
        d.contains("probably rotated") && d.contains("lakecdp env update retail"),
        "{d}"
    );
    assert!(!d.contains("d3Jvbmcta2V5"), "the key never appears: {d}");
    assert_eq!(status(&report, Check::Permissions), CheckStatus::Skipped);
}

#[tokio::test]
async fn azurite_missing_container_is_named_and_never_created_silently() {
    let config = AdlsConfig {
        account: Some("lakecdpbare".into()),
        account_key: Some(SecretRef::Env("LAKECDP_TEST_AZURITE_BARE_KEY".into())),
        endpoint: Some(common::service_var("LAKECDP_TEST_AZURITE_BARE_ENDPOINT")),
        ..common::azurite_config()
    };
    for _ in 0..2 {
        let report = check::run(&StorageConfig::Adls(config.clone()), &options(None, false)).await;
        assert_eq!(
            status(&report, Check::Credentials),
            CheckStatus::Pass,
            "{report:?}"
        );
        assert_eq!(
            status(&report, Check::Container),
            CheckStatus::Fail,
            "{report:?}"
        );
        let d = detail(&report, Check::Container);
        assert!(
            d.contains("`customerinsights` does not exist") && d.contains("--create-container"),
            "{d}"
        );
    }
}

#[tokio::test]
async fn gen1_url_is_refused_by_name() {
    let config = AdlsConfig {
        url: Some("adl://contoso.azuredatalakestore.net/clusters".into()),
        account_key: Some(SecretRef::Env("UNUSED".into())),
        ..Default::default()
    };
    let report = check::run(&StorageConfig::Adls(config), &options(None, false)).await;
    assert_eq!(status(&report, Check::Gen2), CheckStatus::Fail);
    assert!(detail(&report, Check::Gen2).contains("Gen1 is not supported"));
    assert_eq!(status(&report, Check::Reachable), CheckStatus::Skipped);
}

#[tokio::test]
async fn unreachable_storage_is_named() {
    let config = AdlsConfig {
        endpoint: Some("http://127.0.0.1:9/devstoreaccount1".into()),
        ..common::azurite_config()
    };
    let report = check::run(&StorageConfig::Adls(config), &options(None, false)).await;
    assert_eq!(
        status(&report, Check::Reachable),
        CheckStatus::Fail,
        "{report:?}"
    );
    assert_eq!(status(&report, Check::Credentials), CheckStatus::Skipped);
}

#[tokio::test]
async fn s3_missing_bucket_then_created_on_request() {
    let config = StorageConfig::S3(common::s3_config(&common::unique_bucket()));
    let report = check::run(&config, &options(Some("us-east-1"), false)).await;
    assert_eq!(
        status(&report, Check::Credentials),
        CheckStatus::Pass,
        "{report:?}"
    );
    assert_eq!(
        status(&report, Check::Container),
        CheckStatus::Fail,
        "{report:?}"
    );
    let report = check::run(&config, &options(Some("us-east-1"), true)).await;
    assert!(report.passed(), "{report:?}");
    assert_eq!(status(&report, Check::Permissions), CheckStatus::Pass);
    assert_eq!(
        status(&report, Check::Region),
        CheckStatus::Pass,
        "{report:?}"
    );
}

#[tokio::test]
async fn s3_wrong_secret_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "not-the-secret-key-at-all").unwrap();
    let mut config = common::s3_config(&common::unique_bucket());
    config.secret_access_key = Some(SecretRef::File(dir.path().join("secret")));
    let report = check::run(&StorageConfig::S3(config), &options(None, true)).await;
    assert_eq!(
        status(&report, Check::Credentials),
        CheckStatus::Fail,
        "{report:?}"
    );
    let d = detail(&report, Check::Credentials);
    assert!(
        d.contains("SignatureDoesNotMatch") && d.contains("lakecdp env update retail"),
        "{d}"
    );
    assert!(!d.contains("not-the-secret-key"), "{d}");
}

#[tokio::test]
async fn region_mismatch_is_a_failure() {
    let f = common::s3_fixture().await;
    let report = check::run(&f.config, &options(Some("westeurope"), false)).await;
    assert_eq!(
        status(&report, Check::Region),
        CheckStatus::Fail,
        "{report:?}"
    );
    assert!(detail(&report, Check::Region).contains("`westeurope`"));
    let report = check::run(&f.config, &options(None, false)).await;
    assert_eq!(status(&report, Check::Region), CheckStatus::Skipped);
    assert!(report.passed(), "{report:?}");
}

#[tokio::test]
async fn missing_secret_fails_configuration_without_running_the_rest() {
    let config = AdlsConfig {
        account_key: Some(SecretRef::Env("LAKECDP_TEST_SURELY_UNSET_SECRET".into())),
        ..common::azurite_config()
    };
    let report = check::run(&StorageConfig::Adls(config), &options(None, false)).await;
    assert_eq!(status(&report, Check::Configuration), CheckStatus::Fail);
    assert!(detail(&report, Check::Configuration).contains("env:LAKECDP_TEST_SURELY_UNSET_SECRET"));
    assert!(Check::ALL[2..]
        .iter()
        .all(|c| status(&report, *c) == CheckStatus::Skipped || *c == Check::Gen2));
}
