//! Sharing an environment's outputs, through `lakecdp-app`: the groups, the storage's
//! rules (real POSIX ACLs on the local lake, for Unix groups and users this test makes;
//! it runs as root, as scripts/test.sh does), the permissions identifier, drift and
//! repair, and who receives the sharing endpoint's shares; on S3 (the server the tests
//! start), one identity per group whose key reads or writes the environment's folder only.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;

use common::{admin, retail_with, var};
use lakecdp_app::sharing::{EnableSharing, PermissionsIdentifier, SharingGroup};
use lakecdp_app::{Actor, ErrorKind, Silent};
use lakecdp_core::Role;

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} cannot run: {e}"))
}

/// Unix groups and users made for the test, removed when it ends.
#[derive(Default)]
struct Accounts(Vec<(&'static str, String)>);

impl Accounts {
    fn add(&mut self, cmd: &'static str, args: &[&str], name: &str) -> String {
        let out = run(cmd, args);
        assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
        self.0.push((cmd, name.to_string()));
        name.to_string()
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for (cmd, name) in self.0.iter().rev() {
            let _ = match *cmd {
                "useradd" => run("userdel", &[name]),
                _ => run("groupdel", &[name]),
            };
        }
    }
}

fn as_user(user: &str, script: &str) -> (bool, String) {
    let out = run("runuser", &["-u", user, "--", "sh", "-c", script]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_a_local_lake_opens_its_outputs_to_the_groups_members_only() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test makes Unix users and groups: run it as root (scripts/test.sh does in CI)"
    );
    let r =
        retail_with(|p| p.replace("output_format = \"csv\"", "output_format = \"parquet\"")).await;
    r.full_refresh(Arc::new(Silent)).await;
    // the project folder is a temporary one (0700): members must be able to reach the lake
    std::fs::set_permissions(r.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let me = admin();
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let mut accounts = Accounts::default();
    let readers = format!("lsr{tag}");
    let contributors = format!("lsc{tag}");
    accounts.add("groupadd", &[&readers], &readers);
    accounts.add("groupadd", &[&contributors], &contributors);
    let reader = format!("lsur{tag}");
    let outsider = format!("lsuo{tag}");
    accounts.add("useradd", &["-M", "-U", "-G", &readers, &reader], &reader);
    accounts.add("useradd", &["-M", "-U", &outsider], &outsider);

    // a local lake needs its Unix groups named, and existing
    let err = r
        .app
        .enable_sharing(&me, None, &EnableSharing::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("--storage-reader"), "{err}");
    let err = r
        .app
        .enable_sharing(
            &me,
            None,
            &EnableSharing {
                storage_reader: Some(format!("nosuch{tag}")),
                storage_contributor: Some(contributors.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("groupadd"), "{err}");

    let request = EnableSharing {
        storage_reader: Some(readers.clone()),
        storage_contributor: Some(contributors.clone()),
        ..Default::default()
    };
    let status = r.app.enable_sharing(&me, None, &request).await.unwrap();
    assert_eq!(status.rules.drifted, 0, "{:?}", status.rules);
    assert!(status.rules.changed > 10, "{:?}", status.rules);
    assert!(status.warnings.is_empty(), "{:?}", status.warnings);
    assert_eq!(status.sharing.reader_group, "retail-demo-readers");
    let gid = |name: &str| {
        nix::unistd::Group::from_name(name)
            .unwrap()
            .unwrap()
            .gid
            .to_string()
    };
    let id: PermissionsIdentifier = status.identifier.parse().unwrap();
    assert_eq!(
        (id.reader, id.contributor),
        (gid(&readers), gid(&contributors))
    );
    assert!(
        id.container.ends_with("/lake/customerinsights"),
        "{}",
        id.container
    );

    // the storage lets the reader member read the published profiles, and nobody else
    let (_, model) = r.model("Unification");
    let customer = r.partition_files(&model, "Customer");
    let file = customer[0].display().to_string();
    let (ok, err) = as_user(
        &reader,
        &format!("test -s {file} && cat {file} > /dev/null"),
    );
    assert!(ok, "{err}");
    let (ok, err) = as_user(&reader, &format!("touch {}/x", r.env_folder().display()));
    assert!(!ok && err.contains("Permission denied"), "{err}");
    let (ok, err) = as_user(&outsider, &format!("cat {file} > /dev/null"));
    assert!(!ok && err.contains("Permission denied"), "{err}");

    // a later refresh's outputs inherit the rules
    r.full_refresh(Arc::new(Silent)).await;
    let (_, model) = r.model("Unification");
    let newer = r.partition_files(&model, "Customer")[0]
        .display()
        .to_string();
    assert_ne!(newer, file);
    let (ok, err) = as_user(&reader, &format!("cat {newer} > /dev/null"));
    assert!(ok, "{err}");
    let status = r.app.sharing_status(&me, None).await.unwrap();
    assert_eq!(status.rules.drifted, 0, "{:?}", status.rules.drift);

    // a change by hand is drift until repaired
    std::fs::set_permissions(&newer, std::fs::Permissions::from_mode(0o644)).unwrap();
    let status = r.app.sharing_status(&me, None).await.unwrap();
    assert_eq!(status.rules.drifted, 1);
    assert_eq!(status.rules.drift[0].path, newer);
    let repaired = r.app.repair_sharing(&me, None).await.unwrap();
    assert_eq!((repaired.rules.changed, repaired.rules.drifted), (1, 0));

    // the sharing endpoint's shares: a recipient sees the environment, a Viewer token
    // outside the Reader group does not
    let viewer = r
        .app
        .create_token(&me, None, "viewer", Role::Viewer, None)
        .await
        .unwrap();
    assert!(r
        .app
        .shares(&Actor::token(&viewer.token))
        .await
        .unwrap()
        .is_empty());
    let recipient = r
        .app
        .add_sharing_recipient(&me, None, "partner", None)
        .await
        .unwrap();
    let shares = r.app.shares(&Actor::token(&recipient.token)).await.unwrap();
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0].name, r.env.name);
    let status = r.app.sharing_status(&me, None).await.unwrap();
    assert_eq!(status.reader_members, ["token:partner"]);
}

/// A store on the S3 server's `bucket` signed with the key given.
fn s3_store(bucket: &str, key_id: &str, secret: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(var("LAKECDP_TEST_S3_REGION"))
        .with_endpoint(var("LAKECDP_TEST_S3_ENDPOINT"))
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_access_key_id(key_id)
        .with_secret_access_key(secret)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_an_s3_lake_hands_each_group_a_key_scoped_to_the_environment() {
    use object_store::path::Path as ObjectPath;
    use object_store::{ObjectStoreExt, PutPayload};
    common::fresh_master_key();
    let bucket = format!(
        "sharing-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let storage = common::s3_storage(&bucket);
    let r = retail_with(|p| {
        p.replace("output_format = \"csv\"", "output_format = \"parquet\"")
            .replace(common::LOCAL_STORAGE, &storage)
    })
    .await;
    assert!(matches!(r.env.storage, lakecdp_core::StorageConfig::S3(_)));
    r.full_refresh(Arc::new(Silent)).await;
    let me = admin();
    let status = r
        .app
        .enable_sharing(&me, None, &EnableSharing::default())
        .await
        .unwrap();
    assert_eq!(status.storage, "s3");
    assert_eq!(status.rules.drifted, 0, "{:?}", status.rules);
    assert_eq!(status.sharing.storage_reader, "lakecdp-retail-demo-readers");
    // the bucket plays the container: the environment's folder is `ci_<id>` in it
    let env = r.app.lake(&r.env).await.unwrap().root().to_string();
    assert_eq!(env, format!("ci_{}", r.env.id));
    let id: PermissionsIdentifier = status.identifier.parse().unwrap();
    assert_eq!(id.container, format!("s3://{bucket}/{env}"));

    let reader = r
        .app
        .sharing_credentials(&me, None, SharingGroup::Reader)
        .await
        .unwrap();
    let contributor = r
        .app
        .sharing_credentials(&me, None, SharingGroup::Contributor)
        .await
        .unwrap();
    assert_ne!(reader.access_key_id, contributor.access_key_id);
    // enabling again keeps the keys handed out
    r.app
        .enable_sharing(&me, None, &EnableSharing::default())
        .await
        .unwrap();
    let again = r
        .app
        .sharing_credentials(&me, None, SharingGroup::Reader)
        .await
        .unwrap();
    assert_eq!(again.access_key_id, reader.access_key_id);
    // a Viewer may see the status, not take a key
    r.app
        .set_role(&me, None, "vera", Some(Role::Viewer))
        .await
        .unwrap();
    let vera = Actor::named("vera");
    assert!(r.app.sharing_status(&vera, None).await.is_ok());
    let err = r
        .app
        .sharing_credentials(&vera, None, SharingGroup::Reader)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);

    // the server takes a moment to load new identities
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let model = ObjectPath::from(format!("{env}/Unification/model.json"));
    let as_reader = s3_store(
        &bucket,
        &reader.access_key_id,
        reader.secret_access_key.expose(),
    );
    let as_contributor = s3_store(
        &bucket,
        &contributor.access_key_id,
        contributor.secret_access_key.expose(),
    );
    assert!(as_reader.get(&model).await.is_ok());
    let dropped = ObjectPath::from(format!("{env}/Inbox/partner.csv"));
    assert!(as_reader
        .put(&dropped, PutPayload::from_static(b"x"))
        .await
        .is_err());
    as_contributor
        .put(&dropped, PutPayload::from_static(b"x"))
        .await
        .unwrap();
    // nothing outside the environment's folder
    let elsewhere = ObjectPath::from("ci_other/Unification/model.json");
    let admin_store = s3_store(
        &bucket,
        &var("LAKECDP_TEST_S3_ACCESS_KEY_ID"),
        &var("LAKECDP_TEST_S3_SECRET_ACCESS_KEY"),
    );
    admin_store
        .put(&elsewhere, PutPayload::from_static(b"{}"))
        .await
        .unwrap();
    assert!(as_reader.get(&elsewhere).await.is_err());
    assert!(as_contributor
        .put(&elsewhere, PutPayload::from_static(b"x"))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_attaches_to_one_shared_account_and_detaches_once_nothing_reads_through_it()
{
    use lakecdp_app::connections::NewConnection;
    use lakecdp_app::exports::NewExport;
    use lakecdp_lake::access::local::LocalRules;
    let r =
        retail_with(|p| p.replace("output_format = \"csv\"", "output_format = \"parquet\"")).await;
    let me = admin();
    // two groups every Debian system has (the tests run as root)
    let status = r
        .app
        .enable_sharing(
            &me,
            None,
            &EnableSharing {
                storage_reader: Some("users".into()),
                storage_contributor: Some("staff".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let container = r.path().join("lake/customerinsights");
    // attachments are the catalog administrator's: here the local user of the catalog
    let operator = Actor::local(None);

    // a container whose rules are not in place is refused
    let bare = tempfile::tempdir().unwrap();
    let bare_id = format!("file://{}?rg=100&cg=50", bare.path().display());
    let err = r
        .app
        .attach_sharing(&operator, &bare_id, "Fabrikam", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("not in place"), "{err}");
    // a hostile identifier is refused before anything is read
    let err = r
        .app
        .attach_sharing(&operator, "file:///etc?rg=1&cg=2&path=..", "Fabrikam", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown parameter"), "{err}");

    let kept = r
        .app
        .attach_sharing(&operator, &status.identifier, "Fabrikam", None)
        .await
        .unwrap();
    assert_eq!(
        kept.account,
        url::Url::from_directory_path(&container)
            .unwrap()
            .as_str()
            .trim_end_matches('/')
    );
    // again: the same attachment
    let again = r
        .app
        .attach_sharing(&operator, &status.identifier, "fabrikam", None)
        .await
        .unwrap();
    assert_eq!(again, kept);
    // another shared account for the same organisation is refused
    let other = tempfile::tempdir().unwrap();
    let other_container = other.path().join("customerinsights");
    let other_env = other_container.join("ci_x");
    std::fs::create_dir_all(&other_env).unwrap();
    LocalRules {
        reader: 100,
        contributor: 50,
    }
    .apply(&other_container, &other_env)
    .unwrap();
    let other_id = format!("file://{}?rg=100&cg=50", other_container.display());
    let err = r
        .app
        .attach_sharing(&operator, &other_id, "FABRIKAM", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        err.to_string()
            .contains("already attached to another lakecdp storage account"),
        "{err}"
    );

    // what reads through the attachment keeps it attached
    r.app
        .add_connection(
            &me,
            NewConnection {
                name: "to-share".into(),
                kind: "local".into(),
                usable_by: "contributors".into(),
                settings: [(
                    "path".to_string(),
                    container.join("exports").display().to_string(),
                )]
                .into(),
                secrets: Default::default(),
            },
        )
        .await
        .unwrap();
    r.app
        .add_export(
            &me,
            NewExport {
                name: "profiles".into(),
                connection: "to-share".into(),
                tables: vec!["Unification/Customer".into()],
                schedule: "off".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    r.app
        .add_sharing_recipient(&me, None, "partner", None)
        .await
        .unwrap();
    let err = r
        .app
        .detach_sharing(&operator, "Fabrikam", false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    for dependent in [
        "export retail-demo/profiles",
        "connection retail-demo/to-share",
        "recipient token retail-demo/partner",
    ] {
        assert!(err.to_string().contains(dependent), "{dependent}: {err}");
    }
    assert_eq!(r.app.attachments(&operator).await.unwrap().len(), 1);
    // a Viewer of the environment is no catalog administrator
    let err = r
        .app
        .detach_sharing(&Actor::named("vera"), "Fabrikam", true)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);

    let removed = r
        .app
        .detach_sharing(&operator, "Fabrikam", true)
        .await
        .unwrap();
    assert_eq!(removed.exports, ["retail-demo/profiles"]);
    assert_eq!(removed.tokens, ["retail-demo/partner"]);
    assert!(r.app.attachments(&operator).await.unwrap().is_empty());
    assert!(r.app.list_exports(&me, None).await.unwrap().1.is_empty());
    let tokens = r.app.list_tokens(&me, None).await.unwrap();
    assert!(tokens.iter().all(|t| t.revoked_at.is_some()), "{tokens:?}");
    // detached, it may attach elsewhere
    r.app
        .attach_sharing(&operator, &other_id, "Fabrikam", None)
        .await
        .unwrap();
}

/// A stand-in for an ADLS account's Data Lake endpoint and its Entra authority (nothing
/// here serves DFS ACLs): tokens for anyone, and a root whose ACL names `groups`.
async fn adls_stand_in(groups: &'static str) -> String {
    use axum::http::{StatusCode, Uri};
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(move |uri: Uri| async move {
        if uri.path().ends_with("/oauth2/v2.0/token") {
            return (
                StatusCode::OK,
                [("content-type", "application/json")],
                r#"{"access_token":"t","expires_in":3599,"token_type":"Bearer"}"#,
            )
                .into_response();
        }
        if uri
            .query()
            .unwrap_or_default()
            .contains("action=getAccessControl")
        {
            let acl = format!("user::rwx,group::r-x,{groups},mask::r-x,other::---");
            return (StatusCode::OK, [("x-ms-acl", acl)]).into_response();
        }
        StatusCode::BAD_REQUEST.into_response()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaching_to_adls_reads_the_roots_acl_with_the_consuming_application_from_a_stand_in() {
    use lakecdp_app::sharing::{AttachAccess, EntraAccess};
    let r = common::retail().await;
    let operator = Actor::local(None);
    let (reader, contributor) = (
        "11111111-aaaa-4aaa-8aaa-111111111111",
        "22222222-bbbb-4bbb-8bbb-222222222222",
    );
    let base = adls_stand_in("group:11111111-aaaa-4aaa-8aaa-111111111111:r-x,group:22222222-bbbb-4bbb-8bbb-222222222222:r-x").await;
    let access = AttachAccess::Entra(EntraAccess {
        tenant_id: "tenant-1".into(),
        client_id: "fabrikam-app".into(),
        client_secret: lakecdp_core::Secret::new("s3cret"),
        endpoint: Some(format!("{base}/contoso")),
        authority_host: Some(base.clone()),
    });
    let identifier = format!(
        "https://contoso.dfs.core.windows.net/customerinsights?rg={reader}&cg={contributor}"
    );
    let err = r
        .app
        .attach_sharing(&operator, &identifier, "Fabrikam", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--tenant-id"), "{err}");
    let other = identifier.replace(contributor, "33333333-cccc-4ccc-8ccc-333333333333");
    let err = r
        .app
        .attach_sharing(&operator, &other, "Fabrikam", Some(&access))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not in place"), "{err}");
    let kept = r
        .app
        .attach_sharing(&operator, &identifier, "Fabrikam", Some(&access))
        .await
        .unwrap();
    assert_eq!(kept.account, "contoso.dfs.core.windows.net");
}
