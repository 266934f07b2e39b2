//! Sharing an environment's outputs, through `lakecdp-app`: the groups, the storage's
//! rules (real POSIX ACLs on the local lake, for Unix groups and users this test makes;
//! it runs as root, as scripts/test.sh does), the permissions identifier, drift and
//! repair, and who receives the sharing endpoint's shares.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;

use common::{admin, retail_with};
use lakecdp_app::sharing::{EnableSharing, PermissionsIdentifier};
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
