//! Connections, roles, the vault and exports through the `lakecdp` binary: the retail
//! quickstart refreshed into a local lake, then exported to the real PostgreSQL server
//! and to a local lake folder that scripts/test.sh provides.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn service_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test.sh, which starts PostgreSQL")
    })
}

struct Project {
    dir: tempfile::TempDir,
    key_file: PathBuf,
    /// Everything every command printed, logs included.
    transcript: std::cell::RefCell<String>,
}

impl Project {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, principal: Option<&str>, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lakecdp"));
        c.arg("-C").arg(self.path()).arg("-vv");
        if let Some(p) = principal {
            c.args(["--as", p]);
        }
        c.args(args)
            .env("NO_COLOR", "1")
            .env("LAKECDP_MASTER_KEY_FILE", &self.key_file)
            .env_remove("LAKECDP_MASTER_KEY")
            .env_remove("LAKECDP_PRINCIPAL")
            .env_remove("LAKECDP_PROJECT")
            .env_remove("LAKECDP_CATALOG")
            .stdin(Stdio::null());
        for (k, v) in envs {
            c.env(k, v);
        }
        let o = c.output().expect("the binary runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        self.transcript.borrow_mut().push_str(&text);
        o
    }

    fn ok(&self, principal: Option<&str>, args: &[&str], envs: &[(&str, &str)]) -> String {
        let o = self.run(principal, args, envs);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "lakecdp {args:?} failed: {text}");
        text
    }

    fn refused(&self, principal: Option<&str>, args: &[&str]) -> String {
        let o = self.run(principal, args, &[]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(2), "lakecdp {args:?}: {text}");
        text
    }
}

fn retail_project() -> Project {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/retail");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        example.join("lakecdp.toml"),
        dir.path().join("lakecdp.toml"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    for f in [
        "crm_contacts.csv",
        "shop_customers.parquet",
        "orders.csv",
        "loyalty_members.jsonl",
    ] {
        std::fs::copy(
            example.join("data").join(f),
            dir.path().join("data").join(f),
        )
        .unwrap();
    }
    let key_file = dir.path().join("master.key");
    Project {
        dir,
        key_file,
        transcript: Default::default(),
    }
}

fn psql_count(database: &str, table: &str) -> i64 {
    let bin = ["/usr/lib/postgresql/15/bin/psql", "psql"]
        .into_iter()
        .find(|p| !p.contains('/') || Path::new(p).exists())
        .unwrap();
    let o = Command::new(bin)
        .args([
            "-h",
            &service_var("LAKECDP_TEST_PG_HOST"),
            "-p",
            &service_var("LAKECDP_TEST_PG_PORT"),
            "-U",
            &service_var("LAKECDP_TEST_PG_USER"),
            "-d",
            database,
            "-tAc",
            &format!("SELECT count(*) FROM customerinsights.\"{table}\""),
        ])
        .env("PGPASSWORD", service_var("LAKECDP_TEST_PG_PASSWORD"))
        .output()
        .expect("psql runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// Every file under `dir`, as bytes, with its path.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn exports_reach_postgresql_and_a_lake_and_secrets_never_leak() {
    let p = retail_project();
    let password = service_var("LAKECDP_TEST_PG_PASSWORD");
    let port = service_var("LAKECDP_TEST_PG_PORT");
    let user = service_var("LAKECDP_TEST_PG_USER");
    let database = format!("retail_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let pw_env = [("WAREHOUSE_PASSWORD", password.as_str())];

    let out = p.ok(None, &["refresh", "--apply", "--create-container"], &[]);
    // "23457 profiles from 44987 records"
    let summary = out
        .lines()
        .find(|l| l.contains(" profiles from "))
        .expect("the unification summary");
    let words: Vec<&str> = summary.split_whitespace().collect();
    let profiles: i64 = words[0].parse().unwrap();
    let records: i64 = words[3].parse().unwrap();
    p.ok(
        None,
        &["vault", "new-key", "--out", p.key_file.to_str().unwrap()],
        &[],
    );
    let master_key = std::fs::read_to_string(&p.key_file)
        .unwrap()
        .trim()
        .to_string();

    // roles: a contributor and a viewer
    p.ok(None, &["role", "set", "carl", "contributor"], &[]);
    p.ok(None, &["role", "set", "vera", "viewer"], &[]);
    let out = p.refused(
        Some("carl"),
        &[
            "connection",
            "add",
            "x",
            "--type",
            "postgresql",
            "--set",
            "host=h",
            "--set",
            "user=u",
        ],
    );
    assert!(out.contains("needs the Admin role"), "{out}");

    // a secret given on the command line is refused
    let out = p.refused(
        None,
        &[
            "connection",
            "add",
            "pg",
            "--type",
            "postgresql",
            "--set",
            "host=127.0.0.1",
            "--set",
            "user=u",
            "--secret",
            "password=hunter2",
        ],
    );
    assert!(out.contains("never as its value"), "{out}");

    p.ok(
        None,
        &[
            "connection",
            "add",
            "warehouse",
            "--type",
            "postgresql",
            "--set",
            "host=127.0.0.1",
            "--set",
            &format!("port={port}"),
            "--set",
            &format!("user={user}"),
            "--secret",
            "password=env:WAREHOUSE_PASSWORD",
            "--usable-by",
            "admins-and-contributors",
        ],
        &pw_env,
    );
    let out = p.ok(None, &["connection", "test", "warehouse"], &[]);
    assert!(
        out.contains("all 2 checks passed") || out.contains("checks passed"),
        "{out}"
    );
    let out = p.ok(None, &["connection", "show", "warehouse"], &[]);
    assert!(out.contains("******** (sealed in the catalog)"), "{out}");
    // a contributor sees the shared connection's name only; a viewer sees none
    let out = p.ok(Some("carl"), &["connection", "list"], &[]);
    assert!(
        out.contains("warehouse") && out.contains("postgresql"),
        "{out}"
    );
    p.refused(Some("carl"), &["connection", "show", "warehouse"]);
    p.refused(Some("vera"), &["connection", "list"]);

    // the contributor creates and runs an export through the shared connection
    p.ok(
        Some("carl"),
        &[
            "export",
            "add",
            "nightly",
            "--connection",
            "warehouse",
            "--table",
            "Unification/Customer",
            "--table",
            "Unification/AlternateKey",
            "--database",
            &database,
        ],
        &[],
    );
    let out = p.ok(Some("carl"), &["export", "run", "nightly"], &[]);
    assert!(out.contains("rows in 2 tables"), "{out}");
    let customers = psql_count(&database, "Customer");
    assert_eq!(customers, profiles);
    assert_eq!(psql_count(&database, "AlternateKey"), records);
    let out = p.ok(None, &["export", "show", "nightly"], &[]);
    assert!(out.contains("Succeeded"), "{out}");
    let out = p.refused(Some("vera"), &["export", "run", "nightly"]);
    assert!(out.contains("needs the Contributor role"), "{out}");

    // a used connection cannot be deleted
    let out = p.refused(None, &["connection", "delete", "warehouse"]);
    assert!(out.contains("used by the export(s) `nightly`"), "{out}");

    // rotating the connection's secret keeps the export working
    let pw_file = p.path().join("pw.txt");
    std::fs::write(&pw_file, &password).unwrap();
    p.ok(
        None,
        &[
            "connection",
            "rotate",
            "warehouse",
            "--secret",
            &format!("file:{}", pw_file.display()),
        ],
        &[],
    );
    std::fs::remove_file(&pw_file).unwrap();
    p.ok(None, &["export", "run", "nightly"], &[]);

    // rotating the master key re-seals every secret; the old key no longer opens them
    let new_key = p.path().join("new.key");
    p.ok(
        None,
        &["vault", "new-key", "--out", new_key.to_str().unwrap()],
        &[],
    );
    p.ok(
        None,
        &[
            "vault",
            "rotate",
            "--new-key",
            &format!("file:{}", new_key.display()),
        ],
        &[],
    );
    let out = p.run(None, &["export", "run", "nightly"], &[]);
    assert!(
        !out.status.success(),
        "the old key still opened the secrets"
    );
    std::fs::rename(&new_key, &p.key_file).unwrap();
    p.ok(None, &["export", "run", "nightly"], &[]);

    // a removed table is left untouched; a new database name creates a new database
    p.ok(
        None,
        &[
            "export",
            "edit",
            "nightly",
            "--remove-table",
            "Unification/AlternateKey",
            "--database",
            &format!("{database}_v2"),
        ],
        &[],
    );
    p.ok(None, &["export", "run", "nightly"], &[]);
    assert_eq!(psql_count(&format!("{database}_v2"), "Customer"), customers);
    assert_eq!(
        psql_count(&database, "Customer"),
        customers,
        "the old database was touched"
    );
    let out = p.ok(None, &["export", "show", "nightly"], &[]);
    assert!(
        out.contains("no longer exported") && out.contains("left in the destination untouched"),
        "{out}"
    );
    assert!(
        out.contains("previous databases") && out.contains(&database),
        "{out}"
    );

    // a lake export to a local folder, run by the refresh (schedule on-refresh)
    let target = p.path().join("exports-lake");
    std::fs::create_dir_all(&target).unwrap();
    p.ok(
        None,
        &[
            "connection",
            "add",
            "archive",
            "--type",
            "local",
            "--set",
            &format!("path={}", target.display()),
        ],
        &[],
    );
    p.ok(
        None,
        &[
            "export",
            "add",
            "to-lake",
            "--connection",
            "archive",
            "--table",
            "Unification/Customer",
        ],
        &[],
    );
    p.ok(
        None,
        &["export", "edit", "nightly", "--schedule", "off"],
        &[],
    );
    let out = p.ok(None, &["refresh", "--force"], &[]);
    assert!(out.contains("export `to-lake`"), "{out}");
    assert!(
        !out.contains("export `nightly`"),
        "an export scheduled off ran: {out}"
    );
    let written = files(&target);
    let model = written
        .iter()
        .find(|(p, _)| p.ends_with("to-lake/model.json"))
        .expect("model.json of the lake export");
    let csv = written
        .iter()
        .find(|(p, _)| p.extension().is_some_and(|e| e == "csv"))
        .expect("a CSV partition");
    assert!(
        csv.0.to_string_lossy().contains("/to-lake/Customer/"),
        "{:?}",
        csv.0
    );
    assert!(
        contains(&model.1, "Customer_"),
        "model.json names the partition"
    );

    // the secret and the master key appear nowhere: output, logs, catalog, lake
    let transcript = p.transcript.borrow().clone();
    assert!(
        transcript.contains("DEBUG") || transcript.contains("INFO"),
        "logs were captured"
    );
    assert!(!transcript.contains(&password), "the password was printed");
    assert!(
        !transcript.contains(&master_key),
        "the master key was printed"
    );
    for (path, bytes) in files(p.path()) {
        if path.ends_with("master.key") {
            continue;
        }
        assert!(
            !contains(&bytes, &password),
            "the password is in {}",
            path.display()
        );
        assert!(
            !contains(&bytes, &master_key),
            "the master key is in {}",
            path.display()
        );
    }
}
