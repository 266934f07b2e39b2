//! Sharing rules enforced by the storage itself, tested for real:
//!
//! - a local lake's POSIX ACLs, with Unix users and groups this test makes (it runs as
//!   root, as scripts/test.sh does) and processes started as those users (`runuser`);
//!   `getfacl` (Debian's `acl`) reads the rules back;
//! - the S3 server's identities and policies (SeaweedFS, started by scripts/test.sh),
//!   with the keys made for each group used by object_store's own S3 client.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use lakecdp_core::{S3Config, SecretRef};
use lakecdp_lake::access::iam::{IamClient, S3Rules};
use lakecdp_lake::access::local::{unix_group, unreachable_ancestors, LocalRules};
use lakecdp_lake::access::posix;
use lakecdp_lake::backend::s3::S3Service;
use lakecdp_lake::secrets::Secrets;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} cannot run: {e}"))
}

/// Unix users and groups made for one test, removed when it ends.
struct Accounts {
    users: Vec<String>,
    groups: Vec<String>,
}

impl Accounts {
    fn new() -> Self {
        assert_eq!(
            nix::unistd::geteuid().as_raw(),
            0,
            "this test makes Unix users and groups: run it as root (scripts/test.sh does in CI)"
        );
        Self {
            users: vec![],
            groups: vec![],
        }
    }

    fn group(&mut self, name: &str) -> String {
        let out = run("groupadd", &[name]);
        assert!(out.status.success(), "groupadd {name}: {out:?}");
        self.groups.push(name.to_string());
        name.to_string()
    }

    /// A user whose only group is its own (`-U`), member of `extra`.
    fn user(&mut self, name: &str, extra: Option<&str>) -> String {
        let mut args = vec!["-M", "-U", "-s", "/bin/sh"];
        if let Some(g) = extra {
            args.extend(["-G", g]);
        }
        args.push(name);
        let out = run("useradd", &args);
        assert!(out.status.success(), "useradd {name}: {out:?}");
        self.users.push(name.to_string());
        self.groups.push(name.to_string());
        name.to_string()
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = run("userdel", &[u]);
        }
        for g in &self.groups {
            let _ = run("groupdel", &[g]);
        }
    }
}

/// Run a shell command as `user`; whether it succeeded, and its output.
fn as_user(user: &str, script: &str) -> (bool, String) {
    let out = run("runuser", &["-u", user, "--", "sh", "-c", script]);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn short() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_string()
}

#[test]
fn a_shared_local_lake_is_read_by_readers_written_by_contributors_and_closed_to_others() {
    let mut accounts = Accounts::new();
    let tag = short();
    let readers = accounts.group(&format!("lkr{tag}"));
    let contributors = accounts.group(&format!("lkc{tag}"));
    let reader = accounts.user(&format!("lkur{tag}"), Some(&readers));
    let contributor = accounts.user(&format!("lkuc{tag}"), Some(&contributors));
    let outsider = accounts.user(&format!("lkuo{tag}"), None);

    // the lake, as lakecdp leaves it: files 0644, folders 0755, in a folder the
    // members can search (a temporary folder is 0700 until opened up)
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let container = dir.path().join("lake/customerinsights");
    let environment = container.join("ci_1");
    let partition = environment.join("Unification/Customer/part-0.csv");
    std::fs::create_dir_all(partition.parent().unwrap()).unwrap();
    std::fs::write(&partition, "CustomerId,Name\n1,Ann\n").unwrap();
    std::fs::write(environment.join("Unification/model.json"), "{}").unwrap();
    // another environment of the same container stays closed to the groups' members
    let other = container.join("ci_2/Unification");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("model.json"), "{}").unwrap();
    std::fs::set_permissions(
        container.join("ci_2"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    // a symbolic link in the lake to a file outside it is neither followed nor changed
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "not the lake's").unwrap();
    std::os::unix::fs::symlink(&outside, environment.join("Unification/link")).unwrap();
    let path = |p: &Path| p.display().to_string();

    let rules = LocalRules {
        reader: unix_group(&readers).unwrap().gid,
        contributor: unix_group(&contributors).unwrap().gid,
    };
    assert!(unreachable_ancestors(&container, rules.reader).is_empty());
    let before = rules.check(&container, &environment).unwrap();
    assert_eq!(before.drifted, 6, "{before:?}");
    let applied = rules.apply(&container, &environment).unwrap();
    assert_eq!(
        (applied.checked, applied.changed, applied.drifted),
        (6, 6, 0)
    );
    assert_eq!(rules.check(&container, &environment).unwrap().drifted, 0);

    // what getfacl reads is what the rules say
    let acl = String::from_utf8(run("getfacl", &["-p", &path(&environment)]).stdout).unwrap();
    for line in [
        format!("group:{readers}:r-x"),
        format!("group:{contributors}:rwx"),
        "other::---".to_string(),
        format!("default:group:{readers}:r-x"),
        format!("default:group:{contributors}:rwx"),
        "default:other::---".to_string(),
    ] {
        assert!(acl.lines().any(|l| l == line), "{line} not in:\n{acl}");
    }

    // a reader member lists and reads, and is refused a write
    let (ok, out) = as_user(
        &reader,
        &format!("ls {} && cat {}", path(&environment), path(&partition)),
    );
    assert!(ok && out.contains("1,Ann"), "{out}");
    let (ok, out) = as_user(
        &reader,
        &format!("echo x > {}/new.csv", path(partition.parent().unwrap())),
    );
    assert!(!ok && out.contains("Permission denied"), "{out}");
    let (ok, _) = as_user(&reader, &format!("ls {}", path(&other)));
    assert!(!ok, "a reader lists another environment");

    // a contributor member writes; what it writes inherits the rules
    let written = partition.parent().unwrap().join("by-contributor.csv");
    let (ok, out) = as_user(&contributor, &format!("echo 2,Bo > {}", path(&written)));
    assert!(ok, "{out}");
    let (ok, out) = as_user(&reader, &format!("cat {}", path(&written)));
    assert!(ok && out.contains("2,Bo"), "{out}");

    // what lakecdp publishes later (a new run's folder) inherits them too
    let later = environment.join("Unification/Customer/run-2/part-0.csv");
    std::fs::create_dir_all(later.parent().unwrap()).unwrap();
    std::fs::write(&later, "CustomerId\n3\n").unwrap();
    let (ok, out) = as_user(&reader, &format!("cat {}", path(&later)));
    assert!(ok && out.contains('3'), "{out}");
    assert_eq!(rules.check(&container, &environment).unwrap().drifted, 0);

    // anyone else reads nothing
    for target in [&partition, &later] {
        let (ok, out) = as_user(&outsider, &format!("cat {}", path(target)));
        assert!(!ok && out.contains("Permission denied"), "{out}");
    }

    // a change made by hand is drift, and applying again repairs it
    std::fs::set_permissions(&partition, std::fs::Permissions::from_mode(0o644)).unwrap();
    let drifted = rules.check(&container, &environment).unwrap();
    assert_eq!(drifted.drifted, 1, "{drifted:?}");
    assert_eq!(drifted.drift[0].path, path(&partition));
    assert!(drifted.drift[0].found.contains("other::r--"), "{drifted:?}");
    let repaired = rules.apply(&container, &environment).unwrap();
    assert_eq!((repaired.changed, repaired.drifted), (1, 0));
    assert_eq!(
        std::fs::metadata(&partition).unwrap().permissions().mode() & 0o007,
        0
    );

    // a folder on the way that members cannot search is named
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        unreachable_ancestors(&container, rules.reader),
        [dir.path().to_path_buf()]
    );
    assert!(posix::read(&outside, false).unwrap().is_none());
    assert_eq!(
        std::fs::metadata(&outside).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh"))
}

fn s3_config(bucket: &str) -> S3Config {
    S3Config {
        bucket: bucket.to_string(),
        prefix: None,
        region: var("LAKECDP_TEST_S3_REGION"),
        endpoint: Some(var("LAKECDP_TEST_S3_ENDPOINT")),
        access_key_id: Some(SecretRef::Env("LAKECDP_TEST_S3_ACCESS_KEY_ID".into())),
        secret_access_key: Some(SecretRef::Env("LAKECDP_TEST_S3_SECRET_ACCESS_KEY".into())),
        session_token: None,
        path_style: Some(true),
        credentials: Default::default(),
    }
}

fn store_with(bucket: &str, key_id: &str, secret: &str) -> Box<dyn ObjectStore> {
    Box::new(
        AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(var("LAKECDP_TEST_S3_REGION"))
            .with_endpoint(var("LAKECDP_TEST_S3_ENDPOINT"))
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_access_key_id(key_id)
            .with_secret_access_key(secret)
            .build()
            .unwrap(),
    )
}

async fn can_get(store: &dyn ObjectStore, key: &str) -> bool {
    store.get(&ObjectPath::from(key)).await.is_ok()
}

async fn can_put(store: &dyn ObjectStore, key: &str) -> bool {
    store
        .put(&ObjectPath::from(key), PutPayload::from_static(b"x"))
        .await
        .is_ok()
}

async fn can_list(store: &dyn ObjectStore, prefix: &str) -> bool {
    use futures::TryStreamExt;
    store
        .list(Some(&ObjectPath::from(prefix)))
        .try_collect::<Vec<_>>()
        .await
        .is_ok()
}

#[tokio::test]
async fn a_shared_s3_prefix_is_read_by_the_readers_key_and_written_by_the_contributors() {
    // the S3 server scopes policies to a prefix (checked: a key allowed on one prefix is
    // refused the neighbouring one), so both environments share one bucket here
    let bucket = format!("share-{}", short());
    let config = s3_config(&bucket);
    let secrets = Secrets::from_refs(None);
    S3Service::new(&config, None)
        .unwrap()
        .create_bucket()
        .await
        .unwrap();
    let admin = lakecdp_lake::backend::s3::open(&config, None)
        .unwrap()
        .store;
    let shared = "customerinsights/ci_a";
    let neighbour = "customerinsights/ci_b";
    for key in [
        format!("{shared}/Unification/model.json"),
        format!("{neighbour}/Unification/model.json"),
    ] {
        admin
            .put(
                &ObjectPath::from(key.as_str()),
                PutPayload::from_static(b"{}"),
            )
            .await
            .unwrap();
    }

    let tag = short();
    let rules = S3Rules {
        bucket: bucket.clone(),
        prefix: shared.to_string(),
        reader: format!("lakecdp-readers-{tag}"),
        contributor: format!("lakecdp-contributors-{tag}"),
    };
    let iam = IamClient::new(&config, &secrets).unwrap();
    assert_eq!(rules.check(&iam).await.unwrap().drifted, 2);
    let applied = rules.apply(&iam).await.unwrap();
    assert_eq!(
        (applied.checked, applied.changed, applied.drifted),
        (2, 2, 0),
        "{applied:?}"
    );
    // applying again changes nothing
    assert_eq!(rules.apply(&iam).await.unwrap().changed, 0);

    let reader_key = iam.create_access_key(&rules.reader).await.unwrap();
    let contributor_key = iam.create_access_key(&rules.contributor).await.unwrap();
    assert_eq!(
        iam.access_keys(&rules.reader).await.unwrap(),
        std::slice::from_ref(&reader_key.id)
    );
    // the server takes a moment to load new identities
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let reader = store_with(&bucket, &reader_key.id, reader_key.secret.expose());
    let contributor = store_with(
        &bucket,
        &contributor_key.id,
        contributor_key.secret.expose(),
    );

    let model = format!("{shared}/Unification/model.json");
    let other = format!("{neighbour}/Unification/model.json");
    assert!(can_get(reader.as_ref(), &model).await);
    assert!(can_list(reader.as_ref(), shared).await);
    assert!(!can_put(reader.as_ref(), &format!("{shared}/new.csv")).await);
    assert!(!can_get(reader.as_ref(), &other).await);
    assert!(!can_list(reader.as_ref(), neighbour).await);

    assert!(can_put(contributor.as_ref(), &format!("{shared}/new.csv")).await);
    assert!(can_get(reader.as_ref(), &format!("{shared}/new.csv")).await);
    assert!(!can_put(contributor.as_ref(), &format!("{neighbour}/new.csv")).await);
    assert!(!can_get(contributor.as_ref(), &other).await);

    // a policy changed on the server is drift, and applying again repairs it
    iam.put_policy(
        &rules.reader,
        &lakecdp_lake::access::iam::policy(&bucket, "customerinsights", false),
    )
    .await
    .unwrap();
    let drifted = rules.check(&iam).await.unwrap();
    assert_eq!(drifted.drifted, 1);
    assert!(drifted.drift[0].path.contains(&rules.reader));
    assert_eq!(rules.apply(&iam).await.unwrap().drifted, 0);
}
