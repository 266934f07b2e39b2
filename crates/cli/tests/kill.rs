//! A refresh killed with SIGKILL at any moment leaves a lake that readers can follow, and
//! does not hold the next refresh off: the loop of `scripts/kill-test.sh`, three times.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{copy_retail, lakecdp, text};

/// Every `model.json` under the lake parses and names partition files that exist and are
/// not empty; one line per problem.
fn lake_problems(project: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut folders = vec![project.join("lake")];
    while let Some(dir) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().unwrap() != "_lakecdp" {
                    folders.push(path);
                }
                continue;
            }
            if path.file_name().unwrap() != "model.json" {
                continue;
            }
            let model: serde_json::Value =
                match serde_json::from_slice(&std::fs::read(&path).unwrap()) {
                    Ok(m) => m,
                    Err(e) => {
                        problems.push(format!("{}: does not parse: {e}", path.display()));
                        continue;
                    }
                };
            for entity in model["entities"].as_array().into_iter().flatten() {
                for part in entity["partitions"].as_array().into_iter().flatten() {
                    let location = part["location"].as_str().unwrap_or_default();
                    let file = location.strip_prefix("file://").unwrap_or(location);
                    match std::fs::metadata(file) {
                        Ok(m) if m.len() > 0 => {}
                        Ok(_) => problems.push(format!("{}: empty {location}", path.display())),
                        Err(_) => problems.push(format!("{}: missing {location}", path.display())),
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn a_killed_refresh_leaves_a_readable_lake_and_the_next_refresh_takes_its_lease_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    copy_retail(p);
    // kill during loading, during unification and later; a little jitter from the clock
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_millis(),
    ) % 500;
    let delays = [300 + jitter, 3000 + jitter, 6000 + jitter].map(Duration::from_millis);
    let mut created = false;
    let mut held_when_killed = false;
    for (i, delay) in delays.into_iter().enumerate() {
        let mut args = vec!["refresh", "--force"];
        if !created {
            args.extend(["--apply", "--create-container"]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_lakecdp"))
            .arg("-C")
            .arg(p)
            .args(&args)
            .env("NO_COLOR", "1")
            .env_remove("LAKECDP_PROJECT")
            .env_remove("LAKECDP_CATALOG")
            .env_remove("LAKECDP_PRINCIPAL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        let out = text(&out);
        assert!(
            !out.contains("is held by"),
            "iteration {i}: refused by the lease of the refresh killed before: {out}"
        );
        if held_when_killed && out.contains("refreshing environment") {
            assert!(
                out.contains("took the refresh lease over from refresh by"),
                "iteration {i}: {out}"
            );
        }
        created |= out.contains("refreshing environment");
        held_when_killed = out.contains("refreshing environment")
            && !out.contains("Succeeded (see `lakecdp runs show");
        let problems = lake_problems(p);
        assert!(problems.is_empty(), "iteration {i}: {problems:#?}\n{out}");
    }
    // the refresh right after runs at once (not refused by a lease) and succeeds
    let mut args = vec!["refresh"];
    if !created {
        args.extend(["--apply", "--create-container"]);
    }
    let o = lakecdp(p, &args);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    if held_when_killed {
        assert!(
            out.contains("took the refresh lease over from refresh by")
                && out.contains("whose process is gone"),
            "{out}"
        );
    }
    let problems = lake_problems(p);
    assert!(problems.is_empty(), "{problems:#?}");
}
