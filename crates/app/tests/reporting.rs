//! Reporting connections over the retail quickstart's lake: created Ready (or Failed
//! with the reason), profile reports equal to what `Reports/` holds, and access for the
//! creator and the members it grants only.

mod common;

use std::sync::Arc;

use lakecdp_app::reporting::{NewReporting, ReportingLocation};
use lakecdp_app::{Actor, ErrorKind, Silent};
use lakecdp_core::{ReportingStatus, Role};

use common::{admin, retail, var};

/// The report's age bands hold every profile of the environment's last unification.
async fn assert_ages_count_every_profile(
    r: &common::Retail,
    report: &lakecdp_app::reporting::ProfileReport,
) {
    let ages: i64 = report
        .distributions
        .iter()
        .find(|d| d.name == "AgeBands")
        .expect("the retail project maps a birth date")
        .rows
        .iter()
        .map(|(_, n)| n)
        .sum();
    let details = r.app.show_environment(&admin(), None).await.unwrap();
    assert_eq!(Some(ages as u64), details.profiles);
}

fn local(r: &common::Retail, path: &std::path::Path) -> NewReporting {
    NewReporting {
        name: "bi".into(),
        location: ReportingLocation::Local {
            path: path.display().to_string(),
        },
        environment_id: r.env.id.to_string(),
        folder: format!("customerinsights/{}", r.env.id.folder()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_read_through_the_connection_by_its_members_only() {
    let r = retail().await;
    r.full_refresh(Arc::new(Silent)).await;
    let app = &r.app;
    let cli = Actor::local(None);
    for (name, role) in [
        ("vera", Role::Viewer),
        ("cole", Role::Contributor),
        ("otto", Role::Admin),
    ] {
        app.add_user(&cli, name, "a long enough password", false)
            .await
            .unwrap();
        app.set_role(&admin(), None, name, Some(role))
            .await
            .unwrap();
    }
    app.create_group(&cli, "analysts").await.unwrap();
    app.add_group_member(&cli, "analysts", "cole")
        .await
        .unwrap();
    let (vera, cole, otto) = (
        Actor::named("vera"),
        Actor::named("cole"),
        Actor::named("otto"),
    );

    // a wrong folder is refused, naming the field
    let mut wrong = local(&r, &r.path().join("lake"));
    wrong.folder = "customerinsights/ci_other".into();
    let e = app
        .create_reporting_connection(&admin(), None, wrong)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.message().starts_with("folder:"), "{e}");
    // a Viewer cannot create one
    let e = app
        .create_reporting_connection(&vera, None, local(&r, &r.path().join("lake")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    // a folder without the environment's outputs is Failed, with the reason
    let empty = tempfile::tempdir().unwrap();
    let mut elsewhere = local(&r, empty.path());
    elsewhere.name = "empty".into();
    let failed = app
        .create_reporting_connection(&admin(), None, elsewhere)
        .await
        .unwrap();
    assert_eq!(failed.status, ReportingStatus::Failed);
    assert!(
        failed.reason.as_deref().unwrap().contains("Unification"),
        "{failed:?}"
    );

    // the lake itself is Ready
    let c = app
        .create_reporting_connection(&admin(), None, local(&r, &r.path().join("lake")))
        .await
        .unwrap();
    assert_eq!(c.status, ReportingStatus::Ready, "{c:?}");
    assert!(c.checked_at.is_some());
    let again = app
        .create_reporting_connection(&admin(), None, local(&r, &r.path().join("lake")))
        .await
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Conflict);

    // the report holds what Reports/ holds
    let (_, report) = app.profile_report(&admin(), None, "BI").await.unwrap();
    let unified = r.model("Unification").1;
    let lake = app.lake(&r.env).await.unwrap();
    let profiles: i64 = lakecdp_lake::partition::read_entity(
        &lake,
        "Unification",
        unified.entity("Customer").unwrap(),
    )
    .await
    .unwrap()
    .iter()
    .map(|b| b.num_rows() as i64)
    .sum();
    let ages = report
        .distributions
        .iter()
        .find(|d| d.name == "AgeBands")
        .expect("the retail project maps a birth date");
    assert_eq!(ages.title, "Age");
    assert_eq!(
        ages.rows.iter().map(|(_, n)| n).sum::<i64>(),
        profiles,
        "every profile is in one age band: {ages:?}"
    );
    assert!(report
        .distributions
        .iter()
        .any(|d| d.name == "ProfilesPerSource"));
    let (_, history) = app.segments(&admin(), None).await.unwrap();
    let latest = history.last().unwrap();
    let counts: Vec<(String, u64)> = latest.counts.clone().into_iter().collect();
    assert_eq!(report.segments, counts);

    // nobody else sees it: not a Viewer, not a group member, not another Admin
    for (who, actor) in [("vera", &vera), ("cole", &cole), ("otto", &otto)] {
        assert!(
            app.reporting_connections(actor, None)
                .await
                .unwrap()
                .is_empty(),
            "{who} lists nothing"
        );
        let e = app.profile_report(actor, None, "bi").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied, "{who}: {e}");
    }
    // and only its creator grants
    let e = app
        .grant_reporting(&otto, None, "bi", "otto", true)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    let e = app
        .grant_reporting(&admin(), None, "bi", "nobody", true)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);

    // a granted principal and a granted group's member see it
    app.grant_reporting(&admin(), None, "bi", "vera", true)
        .await
        .unwrap();
    app.grant_reporting(&admin(), None, "bi", "analysts", true)
        .await
        .unwrap();
    for actor in [&vera, &cole] {
        let (_, seen) = app.profile_report(actor, None, "bi").await.unwrap();
        assert_eq!(seen, report);
        let listed = app.reporting_connections(actor, None).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "bi");
    }
    assert_eq!(
        app.profile_report(&otto, None, "bi")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Denied
    );
    // revoked: refused at once
    app.grant_reporting(&admin(), None, "bi", "vera", false)
        .await
        .unwrap();
    assert_eq!(
        app.profile_report(&vera, None, "bi")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Denied
    );

    // the workspace keeps reading after a refresh (the ages are read again)
    r.full_refresh(Arc::new(Silent)).await;
    let (after, _) = app.profile_report(&cole, None, "bi").await.unwrap();
    assert_eq!(after.status, ReportingStatus::Ready);

    // removed (an Admin may remove it): refused at once, to everyone
    app.delete_reporting_connection(&otto, None, "bi")
        .await
        .unwrap();
    for actor in [&admin(), &cole] {
        assert_eq!(
            app.profile_report(actor, None, "bi")
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::Denied
        );
    }
    // a Viewer cannot remove one it does not own
    let e = app
        .delete_reporting_connection(&vera, None, "empty")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reads_an_instance_folder_in_an_s3_bucket_with_sealed_keys() {
    common::fresh_master_key();
    let bucket = format!(
        "reporting-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let storage = common::s3_storage(&bucket);
    let r = common::retail_with(|p| {
        p.replace("output_format = \"csv\"", "output_format = \"parquet\"")
            .replace(common::LOCAL_STORAGE, &storage)
    })
    .await;
    r.full_refresh(Arc::new(Silent)).await;
    let secret = var("LAKECDP_TEST_S3_SECRET_ACCESS_KEY");
    let s3 = |name: &str, secret: &str| NewReporting {
        name: name.into(),
        location: ReportingLocation::S3 {
            bucket: bucket.clone(),
            region: var("LAKECDP_TEST_S3_REGION"),
            endpoint: Some(var("LAKECDP_TEST_S3_ENDPOINT")),
            access_key_id: lakecdp_core::Secret::new(var("LAKECDP_TEST_S3_ACCESS_KEY_ID")),
            secret_access_key: lakecdp_core::Secret::new(secret),
        },
        environment_id: r.env.id.to_string(),
        // in a bucket, the instance folder is `ci_<id>` at its root
        folder: r.env.id.folder(),
    };
    let c = r
        .app
        .create_reporting_connection(&admin(), None, s3("s3-bi", &secret))
        .await
        .unwrap();
    assert_eq!(c.status, ReportingStatus::Ready, "{c:?}");
    // the keys are sealed: the stored connection refers to them only
    let stored =
        serde_json::to_string(&r.catalog.reporting_connections(r.env.id).await.unwrap()).unwrap();
    assert!(!stored.contains(&secret), "{stored}");
    assert!(stored.contains("vault"), "{stored}");
    let (_, report) = r.app.profile_report(&admin(), None, "s3-bi").await.unwrap();
    assert_ages_count_every_profile(&r, &report).await;

    // a wrong key: Failed, with a reason that holds no key
    let wrong = "not-the-secret-key-0123456789";
    let failed = r
        .app
        .create_reporting_connection(&admin(), None, s3("s3-wrong", wrong))
        .await
        .unwrap();
    assert_eq!(failed.status, ReportingStatus::Failed);
    let reason = failed.reason.unwrap();
    assert!(
        !reason.contains(wrong) && !reason.contains(&secret),
        "{reason}"
    );
    // removing a connection removes its sealed keys
    let before = r.catalog.environment_secret_names(r.env.id).await.unwrap();
    assert!(
        before.iter().any(|n| n == "reporting-s3-bi-key"),
        "{before:?}"
    );
    r.app
        .delete_reporting_connection(&admin(), None, "s3-bi")
        .await
        .unwrap();
    let after = r.catalog.environment_secret_names(r.env.id).await.unwrap();
    assert!(
        !after.iter().any(|n| n.starts_with("reporting-s3-bi")),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reads_an_instance_folder_in_azurite_with_its_account_key() {
    common::fresh_master_key();
    let endpoint = var("LAKECDP_TEST_AZURITE_ENDPOINT");
    let storage = format!(
        "[environment.storage]\nkind = \"adls\"\naccount = \"{}\"\n\
         account_key = {{ env = \"LAKECDP_TEST_AZURITE_KEY\" }}\nendpoint = \"{endpoint}\"\n\
         emulator = true\nallow_flat_namespace = true\n",
        var("LAKECDP_TEST_AZURITE_ACCOUNT")
    );
    let r = common::retail_with(|p| p.replace(common::LOCAL_STORAGE, &storage)).await;
    r.full_refresh(Arc::new(Silent)).await;
    let adls = |key: &str| NewReporting {
        name: "azure-bi".into(),
        location: ReportingLocation::Adls {
            account: var("LAKECDP_TEST_AZURITE_ACCOUNT"),
            key: lakecdp_core::Secret::new(key),
            endpoint: Some(endpoint.clone()),
            emulator: true,
        },
        environment_id: r.env.id.to_string(),
        folder: format!("customerinsights/{}", r.env.id.folder()),
    };
    // the environment's lake is in the container `customerinsights`, as Customer Insights
    // keeps it: the connection reads it with the account key
    let c = r
        .app
        .create_reporting_connection(&admin(), None, adls(&var("LAKECDP_TEST_AZURITE_KEY")))
        .await
        .unwrap();
    assert_eq!(c.status, ReportingStatus::Ready, "{c:?}");
    let (_, report) = r
        .app
        .profile_report(&admin(), None, "azure-bi")
        .await
        .unwrap();
    assert_ages_count_every_profile(&r, &report).await;
    // another key of the right shape is refused by the storage: Failed, the key unsaid
    r.app
        .delete_reporting_connection(&admin(), None, "azure-bi")
        .await
        .unwrap();
    let wrong = "d3JvbmcgYWNjb3VudCBrZXkgZm9yIGF6dXJpdGUgdGVzdHMgMDEyMzQ1Njc4OWFiY2RlZg==";
    let failed = r
        .app
        .create_reporting_connection(&admin(), None, adls(wrong))
        .await
        .unwrap();
    assert_eq!(failed.status, ReportingStatus::Failed, "{failed:?}");
    assert!(!failed.reason.as_deref().unwrap().contains(wrong));
}
