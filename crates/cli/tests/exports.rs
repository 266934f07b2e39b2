//! Connections, roles, the vault and exports through the `lakecdp` binary: the retail
//! quickstart refreshed into a local lake, then exported to the real PostgreSQL server
//! and to a local lake folder that scripts/test.sh provides.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::{copy_retail, service_var};

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
    let dir = tempfile::tempdir().unwrap();
    copy_retail(dir.path());
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
    assert!(out.contains("all 2 checks passed"), "{out}");
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

    // every change made on the command line is in the environment's audit log, with
    // who made it and whether it was refused; reads are not
    let out = p.ok(
        None,
        &["audit", "--environment", "retail-demo", "--limit", "200"],
        &[],
    );
    let entry = |actor: &str, action: &str, object: &str, outcome: &str| {
        out.lines().any(|l| {
            let cells: Vec<&str> = l.split(['│', '┆']).map(str::trim).collect();
            cells.contains(&actor)
                && cells.contains(&action)
                && cells.contains(&object)
                && cells.contains(&outcome)
        })
    };
    assert!(entry("carl", "connection add", "x", "denied"), "{out}");
    assert!(entry("vera", "export run", "nightly", "denied"), "{out}");
    assert!(entry("carl", "export run", "nightly", "succeeded"), "{out}");
    assert!(entry("carl", "export add", "nightly", "succeeded"), "{out}");
    assert!(
        entry("local-admin", "role set", "vera", "succeeded"),
        "{out}"
    );
    assert!(
        entry("local-admin", "connection add", "pg", "failed"),
        "{out}"
    );
    assert!(
        !out.contains("connection list") && !out.contains("connection show"),
        "{out}"
    );
    assert!(!out.contains(&password), "{out}");

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

/// Every object under `prefix` of a storage configuration's container.
fn list_objects(config: &lakecdp_core::StorageConfig, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    // export destinations are any container, so the environment rules are not applied
    let handle = match config {
        lakecdp_core::StorageConfig::S3(c) => lakecdp_lake::backend::s3::open(c, None),
        lakecdp_core::StorageConfig::Adls(c) => lakecdp_lake::backend::azure::open(c, None),
        other => lakecdp_lake::backend::open(other, None),
    }
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = handle.container.as_ref().to_string();
    let full = if base.is_empty() {
        prefix.to_string()
    } else {
        format!("{base}/{prefix}")
    };
    let listed: Vec<object_store::ObjectMeta> = rt
        .block_on(
            handle
                .store
                .list(Some(&object_store::path::Path::from(full)))
                .try_collect(),
        )
        .unwrap();
    listed.into_iter().map(|m| m.location.to_string()).collect()
}

#[test]
fn lake_exports_reach_the_s3_server_and_azurite_with_sealed_keys() {
    use lakecdp_core::{AdlsConfig, S3Config, SecretRef, StorageConfig};
    let p = retail_project();
    let out = p.ok(None, &["refresh", "--apply", "--create-container"], &[]);
    let env_id = out
        .split("(id ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("the environment id")
        .to_string();
    p.ok(
        None,
        &["vault", "new-key", "--out", p.key_file.to_str().unwrap()],
        &[],
    );

    // S3: a fresh bucket; the secret access key is sealed, the key id is a setting
    let bucket = format!(
        "lakecdp-export-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let s3 = S3Config {
        bucket: bucket.clone(),
        prefix: None,
        region: service_var("LAKECDP_TEST_S3_REGION"),
        endpoint: Some(service_var("LAKECDP_TEST_S3_ENDPOINT")),
        access_key_id: Some(SecretRef::Env("LAKECDP_TEST_S3_ACCESS_KEY_ID".into())),
        secret_access_key: Some(SecretRef::Env("LAKECDP_TEST_S3_SECRET_ACCESS_KEY".into())),
        session_token: None,
        path_style: Some(true),
        credentials: lakecdp_core::Credentials::Declared,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(
        lakecdp_lake::backend::s3::S3Service::new(&s3, None)
            .unwrap()
            .create_bucket(),
    )
    .unwrap();
    let s3_secret = service_var("LAKECDP_TEST_S3_SECRET_ACCESS_KEY");
    p.ok(
        None,
        &[
            "connection",
            "add",
            "s3-archive",
            "--type",
            "s3",
            "--set",
            &format!("bucket={bucket}"),
            "--set",
            &format!("region={}", service_var("LAKECDP_TEST_S3_REGION")),
            "--set",
            &format!("endpoint={}", service_var("LAKECDP_TEST_S3_ENDPOINT")),
            "--set",
            &format!(
                "access_key_id={}",
                service_var("LAKECDP_TEST_S3_ACCESS_KEY_ID")
            ),
            "--secret",
            "secret_access_key=env:ARCHIVE_SECRET",
        ],
        &[("ARCHIVE_SECRET", s3_secret.as_str())],
    );
    p.ok(None, &["connection", "test", "s3-archive"], &[]);

    // Azurite: the account key is sealed
    let container = format!(
        "exports{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let azure = AdlsConfig {
        account: Some(service_var("LAKECDP_TEST_AZURITE_ACCOUNT")),
        container: Some(container.clone()),
        account_key: Some(SecretRef::Env("LAKECDP_TEST_AZURITE_KEY".into())),
        endpoint: Some(service_var("LAKECDP_TEST_AZURITE_ENDPOINT")),
        emulator: true,
        allow_flat_namespace: true,
        ..Default::default()
    };
    rt.block_on(
        lakecdp_lake::backend::azure::AzureService::new(&azure, None)
            .unwrap()
            .create_container(&container),
    )
    .unwrap();
    let azure_key = service_var("LAKECDP_TEST_AZURITE_KEY");
    p.ok(
        None,
        &[
            "connection",
            "add",
            "blob-archive",
            "--type",
            "adls",
            "--set",
            &format!("account={}", service_var("LAKECDP_TEST_AZURITE_ACCOUNT")),
            "--set",
            &format!("container={container}"),
            "--set",
            &format!("endpoint={}", service_var("LAKECDP_TEST_AZURITE_ENDPOINT")),
            "--set",
            "emulator=true",
            "--secret",
            "account_key=env:ARCHIVE_KEY",
        ],
        &[("ARCHIVE_KEY", azure_key.as_str())],
    );

    for (export, connection) in [("to-s3", "s3-archive"), ("to-blob", "blob-archive")] {
        p.ok(
            None,
            &[
                "export",
                "add",
                export,
                "--connection",
                connection,
                "--table",
                "Unification/Customer",
                "--table",
                "DataIngestion/Crm/Contacts",
                "--schedule",
                "off",
            ],
            &[],
        );
    }
    let out = p.ok(None, &["export", "run", "--all"], &[]);
    assert!(
        out.contains("no scheduled exports"),
        "exports scheduled off ran: {out}"
    );
    p.ok(None, &["export", "run", "to-s3"], &[]);
    p.ok(None, &["export", "run", "to-blob"], &[]);

    for (config, export) in [
        (StorageConfig::S3(s3), "to-s3"),
        (
            StorageConfig::Adls(AdlsConfig {
                container: Some(container),
                ..azure
            }),
            "to-blob",
        ),
    ] {
        let objects = list_objects(&config, &format!("CustomerInsights_{env_id}/{export}"));
        assert!(
            objects
                .iter()
                .any(|o| o.ends_with(&format!("{export}/model.json"))),
            "{objects:?}"
        );
        for table in ["Customer", "Contacts"] {
            assert!(
                objects
                    .iter()
                    .any(|o| o.contains(&format!("/{export}/{table}/")) && o.ends_with(".csv")),
                "{table} in {objects:?}"
            );
        }
    }
    let transcript = p.transcript.borrow().clone();
    assert!(!transcript.contains(&s3_secret) && !transcript.contains(&azure_key));
    for (path, bytes) in files(p.path()) {
        assert!(
            !contains(&bytes, &s3_secret),
            "the S3 secret is in {}",
            path.display()
        );
        assert!(
            !contains(&bytes, &azure_key),
            "the account key is in {}",
            path.display()
        );
    }
}

#[test]
fn an_environment_reads_its_storage_key_from_the_vault() {
    let endpoint = service_var("LAKECDP_TEST_AZURITE_ENDPOINT");
    let key = service_var("LAKECDP_TEST_AZURITE_KEY");
    let dir = tempfile::tempdir().unwrap();
    let p = Project {
        key_file: dir.path().join("master.key"),
        dir,
        transcript: Default::default(),
    };
    let name = format!(
        "vaulted-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let toml = |secret: &str| {
        format!(
            "[environment]\nname = \"{name}\"\n\n[environment.storage]\nkind = \"adls\"\n\
             account = \"devstoreaccount1\"\naccount_key = {secret}\nendpoint = \"{endpoint}\"\n\
             emulator = true\nallow_flat_namespace = true\n"
        )
    };
    std::fs::write(p.path().join("key"), &key).unwrap();
    std::fs::write(p.path().join("lakecdp.toml"), toml("{ file = \"key\" }")).unwrap();
    p.ok(None, &["apply", "--create-container"], &[]);
    p.ok(
        None,
        &["vault", "new-key", "--out", p.key_file.to_str().unwrap()],
        &[],
    );

    // seal the key, point the storage at it, and forget the file
    p.refused(
        Some("someone"),
        &["env", "secret", "set", "account_key", "--from", "file:key"],
    );
    p.ok(
        None,
        &["env", "secret", "set", "account_key", "--from", "file:key"],
        &[],
    );
    std::fs::remove_file(p.path().join("key")).unwrap();
    std::fs::write(
        p.path().join("lakecdp.toml"),
        toml("{ vault = \"account_key\" }"),
    )
    .unwrap();
    let out = p.ok(None, &["apply"], &[]);
    assert!(out.contains("updated environment"), "{out}");
    let out = p.ok(None, &["env", "check"], &[]);
    assert!(out.contains(" 0 failed"), "{out}");
    let out = p.ok(None, &["env", "secret", "list"], &[]);
    assert!(
        out.contains("account_key") && out.contains("********"),
        "{out}"
    );
    let out = p.refused(None, &["env", "secret", "remove", "account_key"]);
    assert!(out.contains("uses `vault:account_key`"), "{out}");

    // a new master key re-seals it; the old key no longer opens it
    let old_key = std::fs::read_to_string(&p.key_file).unwrap();
    let new_key = p.path().join("new.key");
    p.ok(
        None,
        &["vault", "new-key", "--out", new_key.to_str().unwrap()],
        &[],
    );
    let out = p.ok(
        None,
        &[
            "vault",
            "rotate",
            "--new-key",
            &format!("file:{}", new_key.display()),
        ],
        &[],
    );
    assert!(out.contains("re-sealed 1 secret"), "{out}");
    let out = p.run(None, &["env", "check"], &[]);
    assert!(
        !out.status.success(),
        "the old master key still opened the secret"
    );
    std::fs::rename(&new_key, &p.key_file).unwrap();
    p.ok(None, &["env", "check"], &[]);

    let transcript = p.transcript.borrow().clone();
    assert!(!transcript.contains(&key), "the account key was printed");
    assert!(
        !transcript.contains(old_key.trim()),
        "the master key was printed"
    );
    for (path, bytes) in files(p.path()) {
        if path.ends_with("master.key") {
            continue;
        }
        assert!(
            !contains(&bytes, &key),
            "the account key is in {}",
            path.display()
        );
    }
}
