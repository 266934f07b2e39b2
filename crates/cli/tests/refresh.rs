//! The system refresh through the `lakecdp` binary: the process graph, its run records,
//! and the lease that refuses a second concurrent refresh.

mod common;
use common::{copy_retail, lakecdp, text};

fn retail() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_retail(dir.path());
    dir
}

/// The id after "(run " in a refresh's first line.
fn refresh_id(out: &str) -> String {
    out.lines()
        .find(|l| l.starts_with("refreshing environment"))
        .and_then(|l| l.split("(run ").nth(1))
        .and_then(|l| l.split(')').next())
        .expect("the refresh line")
        .to_string()
}

/// The environment's published `Unification/model.json`.
fn unification_model(project: &std::path::Path) -> std::path::PathBuf {
    let container = project.join("lake/customerinsights");
    let env = std::fs::read_dir(&container)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("ci_"))
        .expect("the environment folder");
    env.join("Unification/model.json")
}

#[test]
fn a_failing_source_skips_only_what_depends_on_it_and_runs_show_the_tree() {
    let dir = retail();
    let p = dir.path();
    let o = lakecdp(p, &["refresh", "--apply", "--create-container"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("ingest:Loyalty → unify → reports → activities → measures → segments"),
        "{out}"
    );
    assert!(out.contains("published Reports/"), "{out}");
    assert!(
        out.contains("activity Orders (Shop.Orders): 49992 rows, 49520 linked"),
        "{out}"
    );

    let published = unification_model(p);
    let before = std::fs::read(&published).unwrap();

    // the loyalty file disappears: its load fails, unification (and what follows) is
    // skipped, the other sources load
    std::fs::remove_file(p.join("data/loyalty_members.jsonl")).unwrap();
    let o = lakecdp(p, &["refresh", "--force"]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("Crm.Contacts: 20000 read"), "{out}");
    assert!(out.contains("Shop.Orders: "), "{out}");
    assert!(
        out.contains("unify: Skipped (`ingest:Loyalty` failed)"),
        "{out}"
    );
    let id = refresh_id(&out);

    let o = lakecdp(p, &["runs", "show", &id]);
    let tree = text(&o);
    assert!(o.status.success(), "{tree}");
    assert!(
        tree.starts_with(&format!(
            "refresh {id} of environment `retail-demo`: Failed"
        )),
        "{tree}"
    );
    let line = |process: &str| {
        tree.lines()
            .find(|l| l.contains(&format!(" {process} ")))
            .unwrap_or_else(|| panic!("{process} in {tree}"))
            .to_string()
    };
    assert!(line("ingest:Crm").contains("Succeeded"), "{tree}");
    assert!(line("ingest:Loyalty").contains("Failed"), "{tree}");
    assert!(line("unify").contains("Skipped"), "{tree}");
    assert!(line("activities").contains("Skipped"), "{tree}");
    assert!(line("reports").contains("Skipped"), "{tree}");
    assert!(line("segments").contains("Skipped"), "{tree}");
    // the last good unification is still published: the same model.json, naming files
    // that are all still there
    assert_eq!(std::fs::read(&published).unwrap(), before);
    let model: serde_json::Value = serde_json::from_slice(&before).unwrap();
    let mut files = 0;
    for e in model["entities"].as_array().unwrap() {
        for part in e["partitions"].as_array().unwrap() {
            let location = part["location"].as_str().unwrap();
            let path = location.strip_prefix("file://").unwrap_or(location);
            assert!(std::path::Path::new(path).is_file(), "{location}");
            files += 1;
        }
    }
    assert!(
        files >= 3,
        "Customer, AlternateKey and the match pairs at least"
    );
    let list = text(&lakecdp(p, &["runs"]));
    assert!(
        list.contains(&id) && !list.contains("ingest:Crm"),
        "processes stay under their refresh: {list}"
    );
}

#[test]
fn a_second_refresh_is_refused_while_the_lease_is_held_and_an_expired_lease_is_taken_over() {
    let dir = retail();
    let p = dir.path();
    let o = lakecdp(p, &["refresh", "--apply", "--create-container"]);
    assert!(o.status.success(), "{}", text(&o));
    let lease_dir = std::fs::read_dir(p.join("lake/customerinsights"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| d.file_name().unwrap().to_string_lossy().starts_with("ci_"))
        .unwrap()
        .join("_lakecdp/leases");
    assert!(
        !lease_dir.join("refresh.json").exists(),
        "a finished refresh releases its lease"
    );
    std::fs::create_dir_all(&lease_dir).unwrap();
    let lease = |expires: &str| {
        format!(
            r#"{{"holder":"refresh by ann (run X)","host":"build-7","pid":4242,"token":"t","acquiredAt":"2026-12-01T08:00:00Z","expiresAt":"{expires}"}}"#
        )
    };
    std::fs::write(
        lease_dir.join("refresh.json"),
        lease("2999-01-01T00:00:00Z"),
    )
    .unwrap();
    let o = lakecdp(p, &["refresh"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("is held by refresh by ann (run X) on build-7 (pid 4242)"),
        "{out}"
    );
    // its holder died long ago: the lease has expired and is taken over
    std::fs::write(
        lease_dir.join("refresh.json"),
        lease("2026-12-01T08:10:00Z"),
    )
    .unwrap();
    let o = lakecdp(p, &["refresh"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!lease_dir.join("refresh.json").exists());
}
