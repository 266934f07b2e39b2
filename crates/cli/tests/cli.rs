//! The `lakecdp` binary end to end: a project folder, the embedded catalog, and real
//! storage (a local folder, and Azurite started by scripts/test.sh).

use std::path::Path;

mod common;
use common::{lakecdp, service_var, text};

fn ok(project: &Path, args: &[&str]) -> String {
    let o = lakecdp(project, args);
    assert!(o.status.success(), "lakecdp {args:?} failed: {}", text(&o));
    text(&o)
}

fn user_error(project: &Path, args: &[&str]) -> String {
    let o = lakecdp(project, args);
    assert_eq!(
        o.status.code(),
        Some(2),
        "lakecdp {args:?} should be a user error: {}",
        text(&o)
    );
    text(&o)
}

#[test]
fn local_environment_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("shop");
    ok(&p, &["init", "--name", "shop-demo"]);
    assert!(p.join("lakecdp.toml").exists() && p.join(".gitignore").exists());
    user_error(&p, &["init"]); // no silent overwrite

    // checks fail without the container and nothing is created
    let out = user_error(&p, &["env", "create"]);
    assert!(
        out.contains("container exists")
            && out.contains("FAILED")
            && out.contains("was not created"),
        "{out}"
    );
    assert!(ok(&p, &["env", "list"]).contains("no environments yet"));

    let out = ok(&p, &["apply", "--create-container"]);
    assert!(out.contains("created environment `shop-demo`"), "{out}");
    let id = out
        .split("(id ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .to_string();
    assert!(p
        .join(format!(
            "lake/customerinsights/ci_{id}/_lakecdp/environment.json"
        ))
        .exists());
    assert!(ok(&p, &["apply"]).contains("up to date"));
    user_error(&p, &["env", "create"]); // already exists

    // a change in the project file is applied after the checks
    let toml = std::fs::read_to_string(p.join("lakecdp.toml")).unwrap();
    std::fs::write(
        p.join("lakecdp.toml"),
        toml.replace("retention_runs = 3", "retention_runs = 5"),
    )
    .unwrap();
    let out = ok(&p, &["apply"]);
    assert!(
        out.contains("retention: 3 -> 5 runs") && out.contains("updated environment"),
        "{out}"
    );
    assert!(ok(&p, &["env", "show"]).contains(&id));
    assert!(ok(&p, &["env", "list"]).contains("shop-demo"));

    // `env update` edits the project file too, and stores it as the next revision
    let out = ok(
        &p,
        &[
            "env",
            "update",
            "shop-demo",
            "--retention-runs",
            "7",
            "--region",
            "westeurope",
        ],
    );
    assert!(out.contains("retention: 5 -> 7 runs"), "{out}");
    let toml = std::fs::read_to_string(p.join("lakecdp.toml")).unwrap();
    assert!(
        toml.contains("retention_runs = 7") && toml.contains("region = \"westeurope\""),
        "{toml}"
    );
    assert!(ok(&p, &["apply"]).contains("up to date"));
    assert!(ok(&p, &["diff"]).contains("is the applied revision"));
    // a reference to a secret, never a value, and only for a storage that has one
    user_error(
        &p,
        &["env", "update", "shop-demo", "--account-key", "env:KEY"],
    );
    assert_eq!(
        std::fs::read_to_string(p.join("lakecdp.toml")).unwrap(),
        toml
    );
    assert!(ok(&p, &["env", "check", "shop-demo"]).contains("4 passed, 0 failed"));
    let runs = ok(&p, &["runs"]);
    for process in ["env-create", "env-update", "env-check"] {
        assert!(runs.contains(process), "{runs}");
    }

    // delete asks for confirmation; without a terminal it needs --yes; lake data stays
    user_error(&p, &["env", "delete", "shop-demo"]);
    let out = ok(&p, &["env", "delete", "shop-demo", "--yes"]);
    assert!(out.contains("was kept"), "{out}");
    assert!(p
        .join(format!(
            "lake/customerinsights/ci_{id}/_lakecdp/environment.json"
        ))
        .exists());
    user_error(&p, &["env", "show", "shop-demo"]);
}

#[test]
fn purge_deletes_only_that_environments_folder() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    ok(&a, &["init", "--name", "a"]);
    let toml = std::fs::read_to_string(a.join("lakecdp.toml")).unwrap();
    ok(&a, &["apply", "--create-container"]);
    // a second environment in the same container, from a second project
    let b = dir.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(
        b.join("lakecdp.toml"),
        toml.replace("name = \"a\"", "name = \"b\"")
            .replace("path = \"lake\"", "path = \"../a/lake\""),
    )
    .unwrap();
    ok(&b, &["apply"]);
    let container = a.join("lake/customerinsights");
    assert_eq!(std::fs::read_dir(&container).unwrap().count(), 2);
    let out = ok(&a, &["env", "delete", "a", "--yes", "--purge"]);
    assert!(out.contains("deleted 1 objects"), "{out}");
    let left: Vec<_> = std::fs::read_dir(&container)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(ok(&b, &["env", "check"]).contains("0 failed"));
}

#[test]
fn invalid_project_files_name_key_line_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("lakecdp.toml"),
        "[environment]\nname = \"x\"\nretention_runs = 0\n\n[environment.storage]\nkind = \"adls\"\nurl = \"adl://old.azuredatalakestore.net\"\naccount_key = { env = \"K\" }\n",
    )
    .unwrap();
    let out = user_error(p, &["env", "check"]);
    assert!(
        out.contains("line 3: `environment.retention_runs`"),
        "{out}"
    );
    assert!(
        out.contains("line 7: `environment.storage.url`") && out.contains("Gen1 is not supported"),
        "{out}"
    );
    assert!(out.contains("fix:"), "{out}");
    let out = user_error(dir.path().join("missing").as_path(), &["env", "check"]);
    assert!(out.contains("lakecdp init"), "{out}");
}

#[test]
fn azurite_environment_with_rotated_key_and_masked_secrets() {
    let endpoint = service_var("LAKECDP_TEST_AZURITE_ENDPOINT");
    let key = service_var("LAKECDP_TEST_AZURITE_KEY");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("key"), &key).unwrap();
    let name = format!("az-{}", std::process::id());
    std::fs::write(
        p.join("lakecdp.toml"),
        format!(
            "[environment]\nname = \"{name}\"\n\n[environment.storage]\nkind = \"adls\"\naccount = \"devstoreaccount1\"\naccount_key = {{ file = \"key\" }}\nendpoint = \"{endpoint}\"\nemulator = true\nallow_flat_namespace = true\n"
        ),
    )
    .unwrap();
    let out = ok(p, &["apply", "--create-container"]);
    assert!(
        out.contains("x-ms-is-hns-enabled: false") && out.contains("warning"),
        "{out}"
    );
    let show = ok(p, &["env", "show"]);
    assert!(show.contains("file:key (value hidden)"), "{show}");

    // the key is rotated: the old one is now wrong
    std::fs::write(
        p.join("key"),
        "cm90YXRlZC1hd2F5LWtleS1yb3RhdGVkLWF3YXkta2V5IQ==",
    )
    .unwrap();
    let out = user_error(p, &["env", "check", &name]);
    assert!(
        out.contains("probably rotated")
            && out.contains(&format!("lakecdp env update {name} --account-key")),
        "{out}"
    );
    std::fs::write(p.join("key2"), &key).unwrap();
    let out = ok(
        p,
        &[
            "env",
            "update",
            &name,
            "--account-key",
            &format!("file:{}", p.join("key2").display()),
        ],
    );
    assert!(out.contains("updated environment"), "{out}");
    ok(p, &["env", "check", &name]);
    user_error(
        p,
        &[
            "env",
            "update",
            &name,
            "--account-key",
            "plain-secret-value",
        ],
    );

    for args in [
        vec!["env", "show"],
        vec!["env", "list"],
        vec!["runs"],
        vec!["env", "check", &name],
    ] {
        let out = text(&lakecdp(p, &args));
        assert!(
            !out.contains(&key),
            "the account key leaked in {args:?}: {out}"
        );
    }
    let catalog = std::fs::read(p.join(".lakecdp/catalog.db")).unwrap();
    assert!(
        !catalog.windows(key.len()).any(|w| w == key.as_bytes()),
        "the key is in the catalog file"
    );

    // moving the storage to another endpoint with the same key reference is refused:
    // the key would go to the new endpoint
    let toml = std::fs::read_to_string(p.join("lakecdp.toml")).unwrap();
    let elsewhere = "http://127.0.0.1:9/devstoreaccount1";
    std::fs::write(p.join("lakecdp.toml"), toml.replace(&endpoint, elsewhere)).unwrap();
    let out = user_error(p, &["apply"]);
    assert!(
        out.contains("keeps the secret references of the old one") && out.contains("account_key"),
        "{out}"
    );
    assert!(ok(p, &["env", "show"]).contains(&endpoint));
    // naming the new storage's key in the same change passes this rule (the checks
    // then decide: nothing listens there)
    std::fs::write(p.join("key3"), &key).unwrap();
    let moved = toml.replace(&endpoint, elsewhere);
    let moved = moved
        .lines()
        .map(|l| {
            if l.starts_with("account_key") {
                "account_key = { file = \"key3\" }".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(p.join("lakecdp.toml"), moved).unwrap();
    let out = user_error(p, &["apply"]);
    assert!(
        !out.contains("keeps the secret references") && out.contains("FAILED"),
        "{out}"
    );
}

#[test]
fn retail_quickstart_creates_its_environment() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/retail/lakecdp.toml");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&example, dir.path().join("lakecdp.toml")).unwrap();
    let out = ok(dir.path(), &["apply", "--create-container"]);
    assert!(
        out.contains("created environment `retail-demo`") && out.contains("0 failed"),
        "{out}"
    );
    let id = out
        .split("(id ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .to_string();
    assert!(dir
        .path()
        .join(format!(
            "lake/customerinsights/ci_{id}/_lakecdp/environment.json"
        ))
        .exists());
    assert!(ok(dir.path(), &["apply"]).contains("up to date"));
}

#[test]
fn retail_sources_are_listed_and_inspected() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/retail");
    let out = ok(&example, &["source", "list"]);
    assert!(out.contains("3 sources, 4 tables"), "{out}");
    let out = ok(&example, &["source", "inspect", "crm"]);
    assert!(
        out.contains("{ name = \"BirthDate\", type = \"date\" }"),
        "{out}"
    );
    assert!(
        out.contains("{ name = \"ModifiedOn\", type = \"datetime\" }"),
        "{out}"
    );
    let out = ok(
        &example,
        &["source", "inspect", "Shop", "--table", "Customers"],
    );
    assert!(
        out.contains("{ name = \"customer_id\", type = \"int64\" }")
            && out.contains("decimal(12,2)"),
        "{out}"
    );
    let out = ok(&example, &["source", "show", "Loyalty"]);
    assert!(out.contains("memberId") && out.contains("10.0%"), "{out}");
    let out = user_error(&example, &["source", "inspect", "Nope"]);
    assert!(out.contains("sources: Crm, Shop, Loyalty"), "{out}");

    // a table whose files are missing is a named user error
    let dir = tempfile::tempdir().unwrap();
    let toml = std::fs::read_to_string(example.join("lakecdp.toml")).unwrap();
    std::fs::write(dir.path().join("lakecdp.toml"), toml).unwrap();
    let out = user_error(dir.path(), &["source", "inspect", "Crm"]);
    assert!(
        out.contains("no file matches `data/crm_contacts.csv`"),
        "{out}"
    );
}

/// The retail quickstart's project file and sources, copied into a new folder; returns
/// the example folder and the copy.
fn retail_copy() -> (std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    common::copy_retail(dir.path());
    (common::retail_example(), dir)
}

#[test]
fn retail_refresh_loads_every_source_and_quarantines_the_malformed_rows() {
    let (_, dir) = retail_copy();
    user_error(dir.path(), &["refresh"]); // no environment yet
                                          // the README's main command
    let out = ok(dir.path(), &["refresh", "--apply", "--create-container"]);
    assert!(out.contains("created environment `retail-demo`"), "{out}");
    // the malformed rows listed in examples/retail/data/README.md, and nothing else
    for line in [
        "Crm.Contacts: 20000 read, 19993 written, 7 corrupt",
        "Shop.Customers: 15000 read, 15000 written, 0 corrupt",
        "Shop.Orders: 50000 read, 49992 written, 8 corrupt",
        "Loyalty.Members: 10000 read, 9994 written, 6 corrupt",
    ] {
        assert!(out.contains(line), "{line} not in {out}");
    }
    let runs = ok(dir.path(), &["runs"]);
    let refresh = runs
        .lines()
        .find(|l| l.contains(" refresh "))
        .and_then(|l| {
            l.split_whitespace()
                .find(|w| w.len() > 20 && w.contains('T'))
        })
        .unwrap_or_else(|| panic!("a refresh in {runs}"))
        .to_string();
    let tree = ok(dir.path(), &["runs", "show", &refresh]);
    assert!(
        tree.lines().any(|l| l.contains("ingest:Crm")
            && l.contains("Succeeded")
            && l.contains("19993 rows")),
        "{tree}"
    );
    let lake = std::fs::read_dir(dir.path().join("lake/customerinsights"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lake.join("DataIngestion/Crm/model.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = model["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Contacts", "Crm_Contacts_corrupt"]);
    let types: Vec<(&str, &str)> = model["entities"][0]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["dataType"].as_str().unwrap()))
        .collect();
    assert!(
        types.contains(&("BirthDate", "dateTime")) && types.contains(&("CreatedOn", "dateTime")),
        "{types:?}"
    );

    // only one source, on request
    let out = ok(
        dir.path(),
        &[
            "refresh", "--only", "ingest", "--source", "loyalty", "--force",
        ],
    );
    assert!(
        out.contains("Loyalty.Members: 10000 read") && !out.contains("Crm.Contacts: "),
        "{out}"
    );
    // what depends on the source runs after it; the other sources are not loaded
    assert!(out.contains("ingest:Loyalty → unify"), "{out}");
    user_error(dir.path(), &["refresh", "--source", "Nope"]);
    // running the main command again changes nothing: unchanged sources are not rewritten
    let out = ok(dir.path(), &["refresh", "--apply"]);
    assert!(
        out.contains("up to date") && out.contains("Crm: unchanged since run"),
        "{out}"
    );
    assert!(!out.contains("Crm.Contacts: 20000 read"), "{out}");
    let out = ok(dir.path(), &["refresh", "--force", "--source", "crm"]);
    assert!(out.contains("Crm.Contacts: 20000 read"), "{out}");
    // a changed file is loaded again
    let orders = dir.path().join("data/orders.csv");
    let mut text = std::fs::read_to_string(&orders).unwrap();
    text.push_str("SO-99999999,,2026-01-01T00:00:00Z,1.00,USD,Web,1\n");
    std::fs::write(&orders, text).unwrap();
    let out = ok(dir.path(), &["refresh"]);
    assert!(
        out.contains("Shop.Orders: 50001 read, 49993 written")
            && out.contains("Loyalty: unchanged"),
        "{out}"
    );
}

#[test]
fn incremental_refresh_applies_each_hour_once_and_keeps_its_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("lakecdp.toml"),
        r#"[environment]
name = "inc-demo"

[environment.storage]
kind = "local"
path = "lake"

[[sources]]
name = "Crm"

[[sources.tables]]
name = "Contacts"
location = "crm"
format = "csv"
incremental = true
primary_key = "Id"
last_updated = "Updated"
schema = [
  { name = "Id", type = "int64" },
  { name = "Name", type = "string" },
  { name = "Updated", type = "datetime_tz" },
]
"#,
    )
    .unwrap();
    let write = |relative: &str, text: &str| {
        let path = p.join("crm").join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "FullData/a.csv",
        "Id,Name,Updated\n1,Ann,2020-01-01T00:00:00Z\n2,Bob,2020-01-01T00:00:00Z\n",
    );
    write(
        "IncrementalData/2020/01/01/10/Upserts/u.csv",
        "Id,Name,Updated\n3,Cy,2020-01-01T10:05:00Z\n",
    );
    let out = ok(p, &["refresh", "--apply", "--create-container"]);
    assert!(
        out.contains("Crm.Contacts: 3 read, 3 written, 0 corrupt")
            && out.contains("built from FullData/ (2 rows), hour 2020-01-01 10:00Z")
            && out.contains("watermark 2020-01-01 10:00Z"),
        "{out}"
    );
    let out = ok(p, &["refresh"]);
    assert!(out.contains("Crm: unchanged"), "{out}");

    write(
        "IncrementalData/2020/01/01/11/Deletes/d.csv",
        "Id,Updated\n1,2020-01-01T11:00:00Z\n",
    );
    let out = ok(p, &["refresh"]);
    // the watermark from the catalog: hour 10 is not applied again
    assert!(
        out.contains("built on the last output (3 rows), hour 2020-01-01 11:00Z: 0 upserts, 1 deletes; 1 rows replaced, 1 deleted")
            && out.contains("Crm.Contacts: 4 read, 2 written"),
        "{out}"
    );
    let out = ok(p, &["refresh", "--full", "--from", "2020-01-01T11:00"]);
    assert!(
        out.contains("built from FullData/ (2 rows), hour 2020-01-01 11:00Z")
            && out.contains("Crm.Contacts: 3 read, 1 written"),
        "{out}"
    );
    let out = user_error(p, &["refresh", "--from", "2020-01-01"]);
    assert!(out.contains("--full"), "{out}");
}

#[test]
fn sources_are_added_and_removed_keeping_the_rest_of_the_project_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("shop");
    ok(&p, &["init", "--name", "shop-demo"]);
    std::fs::create_dir_all(p.join("data")).unwrap();
    std::fs::write(
        p.join("data/people.csv"),
        "Id;Name;Joined\n1;Ann;2024-01-02\n2;Bob;2024-02-03\n",
    )
    .unwrap();
    let before = std::fs::read_to_string(p.join("lakecdp.toml")).unwrap();
    let out = ok(
        &p,
        &[
            "source",
            "add",
            "Crm",
            "--table",
            "People",
            "--location",
            "data/*.csv",
            "--format",
            "csv",
            "--delimiter",
            ";",
            "--primary-key",
            "Id",
            "--infer-schema",
        ],
    );
    assert!(out.contains("with 3 declared columns"), "{out}");
    ok(
        &p,
        &[
            "source",
            "add",
            "Crm",
            "--table",
            "Leads",
            "--location",
            "data/people.csv",
            "--format",
            "csv",
            "--delimiter",
            ";",
        ],
    );
    let after = std::fs::read_to_string(p.join("lakecdp.toml")).unwrap();
    // the file as it was (comments included), then the new source
    assert!(after.starts_with(&before), "{after}");
    assert!(
        after.contains("{ name = \"Joined\", type = \"date\" }")
            && after.contains("csv = { delimiter = \";\" }"),
        "{after}"
    );
    let out = user_error(
        &p,
        &[
            "source",
            "add",
            "crm",
            "--table",
            "leads",
            "--location",
            "x",
            "--format",
            "csv",
        ],
    );
    assert!(out.contains("already has a table `leads`"), "{out}");
    // the added source loads
    let out = ok(&p, &["refresh", "--apply", "--create-container"]);
    assert!(
        out.contains("Crm.People: 2 read, 2 written, 0 corrupt"),
        "{out}"
    );

    let out = user_error(&p, &["source", "remove", "Crm", "--table", "Nope"]);
    assert!(out.contains("has no table `Nope`"), "{out}");
    ok(&p, &["source", "remove", "Crm", "--table", "Leads"]);
    let out = user_error(&p, &["source", "remove", "Crm", "--table", "People"]);
    assert!(out.contains("remove the source instead"), "{out}");
    let out = ok(&p, &["source", "remove", "crm"]);
    assert!(out.contains("stays in the lake"), "{out}");
    assert_eq!(
        std::fs::read_to_string(p.join("lakecdp.toml")).unwrap(),
        before
    );
}

/// The newest run's partition of a CSV entity in a lake folder, as rows of fields.
fn latest_csv(folder: &Path) -> Vec<Vec<String>> {
    let mut runs: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    runs.sort();
    let text = std::fs::read_to_string(runs.last().unwrap().join("part-00000.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn retail_unification_reaches_its_accuracy_floor_and_keeps_ids() {
    let (example, dir) = retail_copy();
    let out = ok(dir.path(), &["refresh", "--apply", "--create-container"]);
    assert!(
        out.contains("unifying 3 tables") && out.contains("from 44987 records"),
        "{out}"
    );
    let lake = std::fs::read_dir(dir.path().join("lake/customerinsights"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // every ingested record of the unified tables exactly once
    let keys = latest_csv(&lake.join("Unification/AlternateKey"));
    assert_eq!(keys.len(), 19_993 + 15_000 + 9_994);
    let predicted: std::collections::HashMap<(String, String), String> = keys
        .iter()
        .map(|r| ((r[1].clone(), r[2].clone()), r[3].clone()))
        .collect();
    assert_eq!(predicted.len(), keys.len());
    // against the generator's truth
    let truth = lakecdp_bench::unify::truth(&example).unwrap();
    let s = lakecdp_bench::score::score(&truth, &predicted);
    // the floor of the quickstart's rules (a regression guard; the benchmark reports
    // the figures)
    assert!(
        s.pairwise.precision >= 0.99 && s.pairwise.recall >= 0.95 && s.cluster.f1() >= 0.95,
        "{s:?}"
    );

    // a profile explained: its records and the rules that joined them
    let mut sizes: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for id in predicted.values() {
        *sizes.entry(id.as_str()).or_default() += 1;
    }
    let (big, n) = sizes.iter().max_by_key(|(id, n)| (**n, *id)).unwrap();
    let out = ok(dir.path(), &["unify", "explain", big]);
    assert!(
        out.contains(&format!("profile {big}: {n} source records"))
            && out.contains("Customer column")
            && (out.contains("same email") || out.contains("same name")),
        "{out}"
    );
    let out = user_error(dir.path(), &["unify", "explain", "no-such-id"]);
    assert!(out.contains("no profile has CustomerId"), "{out}");
    let out = ok(dir.path(), &["unify", "preview", "--sample", "500"]);
    assert!(
        out.contains("from 1500 records")
            && out.contains("preview only: nothing published")
            && !out.contains("CustomerIds:"),
        "{out}"
    );

    // the same data again: every profile keeps its id
    let out = ok(dir.path(), &["refresh", "--only", "unify"]);
    assert!(
        out.contains("CustomerIds: 0 merged, 0 split, 0 removed"),
        "{out}"
    );
    let again: std::collections::HashMap<(String, String), String> =
        latest_csv(&lake.join("Unification/AlternateKey"))
            .iter()
            .map(|r| ((r[1].clone(), r[2].clone()), r[3].clone()))
            .collect();
    assert_eq!(again, predicted);
}

#[test]
fn applied_revisions_are_listed_diffed_exported_and_run() {
    let (_, dir) = retail_copy();
    let p = dir.path();
    let original = std::fs::read_to_string(p.join("lakecdp.toml")).unwrap();
    let out = ok(p, &["apply", "--create-container"]);
    assert!(out.contains("as revision 1"), "{out}");
    let out = ok(p, &["revisions"]);
    assert!(
        out.contains("1 revision of environment `retail-demo`") && out.contains("local-admin"),
        "{out}"
    );
    let out = ok(p, &["diff"]);
    assert!(out.contains("is the applied revision 1"), "{out}");

    // an edit on disk is not what runs until it is applied
    std::fs::write(
        p.join("lakecdp.toml"),
        format!("{original}# reviewed in the change board\n"),
    )
    .unwrap();
    let out = ok(p, &["diff"]);
    assert!(
        out.contains("--- applied revision 1")
            && out.contains("+# reviewed in the change board")
            && out.contains("1 line(s) added, 0 removed"),
        "{out}"
    );
    // (what depends on the one source fails: the others were never loaded)
    let out = text(&lakecdp(p, &["refresh", "--only", "ingest:Crm"]));
    assert!(out.contains("published DataIngestion/Crm/"), "{out}");
    assert!(
        out.contains("differs from the applied revision 1: running revision 1"),
        "{out}"
    );
    let run = out
        .lines()
        .find(|l| l.starts_with("refreshing environment"))
        .and_then(|l| l.split("(run ").nth(1))
        .and_then(|l| l.split(')').next())
        .unwrap()
        .to_string();
    let out = ok(p, &["runs", "show", &run]);
    assert!(out.contains("ran the applied revision 1"), "{out}");

    let out = ok(p, &["apply"]);
    assert!(out.contains("as revision 2"), "{out}");
    let out = ok(p, &["apply"]);
    assert!(out.contains("is the applied revision 2"), "{out}");
    let out = ok(p, &["revisions"]);
    assert!(out.contains("2 revisions"), "{out}");

    // a revision written back is the text that was applied, byte for byte
    let back = p.join("revision-1.toml");
    ok(
        p,
        &[
            "export-config",
            "--revision",
            "1",
            "--out",
            back.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&back).unwrap(), original);
    let err = user_error(
        p,
        &[
            "export-config",
            "--revision",
            "1",
            "--out",
            back.to_str().unwrap(),
        ],
    );
    assert!(err.contains("never overwritten"), "{err}");
    let err = user_error(p, &["export-config", "--revision", "9"]);
    assert!(err.contains("has no revision 9"), "{err}");
}

#[test]
fn a_lake_folder_of_another_catalog_is_adopted_only_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("shop");
    ok(&p, &["init", "--name", "shop-demo"]);
    let id = "6f0c1c9e-7d7e-4a59-9b1e-0c5d1f1e2a3b";
    let toml = std::fs::read_to_string(p.join("lakecdp.toml")).unwrap();
    std::fs::write(
        p.join("lakecdp.toml"),
        toml.replace(
            "name = \"shop-demo\"",
            &format!("name = \"shop-demo\"\nid = \"{id}\""),
        ),
    )
    .unwrap();
    ok(&p, &["apply", "--create-container"]);
    let marker = p.join(format!(
        "lake/customerinsights/ci_{id}/_lakecdp/environment.json"
    ));
    let before = std::fs::read(&marker).unwrap();

    // a second catalog naming the same id would take the folder over
    let other = dir.path().join("other.db");
    let other = other.to_str().unwrap();
    let err = user_error(&p, &["--catalog", other, "apply"]);
    assert!(
        err.contains("already belongs to environment `shop-demo` created by local-admin")
            && err.contains("--adopt"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&marker).unwrap(),
        before,
        "the marker is kept"
    );
    assert!(ok(&p, &["--catalog", other, "env", "list"]).contains("no environments yet"));

    // on purpose
    let out = ok(&p, &["--catalog", other, "apply", "--adopt"]);
    assert!(out.contains("created environment `shop-demo`"), "{out}");
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    assert_eq!(marker["adopted"], true);
}

#[test]
fn sharing_commands_enable_report_and_make_recipients() {
    use std::os::unix::fs::PermissionsExt;
    let (_, dir) = retail_copy();
    let file = dir.path().join("lakecdp.toml");
    let project = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        project.replace("output_format = \"csv\"", "output_format = \"parquet\""),
    )
    .unwrap();
    ok(dir.path(), &["apply", "--create-container"]);
    let out = user_error(dir.path(), &["sharing", "status"]);
    assert!(out.contains("lakecdp sharing enable"), "{out}");
    let out = user_error(dir.path(), &["sharing", "enable"]);
    assert!(out.contains("--storage-reader"), "{out}");
    // two groups every Debian system has (the tests run as root)
    let out = ok(
        dir.path(),
        &[
            "sharing",
            "enable",
            "--storage-reader",
            "users",
            "--storage-contributor",
            "staff",
        ],
    );
    assert!(out.contains("permissions identifier"), "{out}");
    assert!(out.contains("/customerinsights?rg=100&cg=50"), "{out}");
    let out = ok(dir.path(), &["sharing", "status"]);
    assert!(out.contains("0 drifting"), "{out}");
    assert!(out.contains("retail-demo-readers = 100"), "{out}");
    assert!(
        out.contains("20 GB of file capacity for 0 profiles"),
        "{out}"
    );

    let profile = dir.path().join("partner.share");
    ok(
        dir.path(),
        &[
            "sharing",
            "recipient",
            "partner",
            "--endpoint",
            "http://127.0.0.1:9/delta-sharing/",
            "--profile",
            profile.to_str().unwrap(),
        ],
    );
    let mode = std::fs::metadata(&profile).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&profile).unwrap()).unwrap();
    assert_eq!(json["endpoint"], "http://127.0.0.1:9/delta-sharing");
    assert!(json["bearerToken"].as_str().unwrap().len() > 30, "{json}");
    let out = ok(dir.path(), &["sharing", "status"]);
    assert!(out.contains("token:partner"), "{out}");

    // a local lake has no group keys, and no file is made
    let keys = dir.path().join("reader.credentials");
    let out = user_error(
        dir.path(),
        &[
            "sharing",
            "credentials",
            "reader",
            "--output",
            keys.to_str().unwrap(),
        ],
    );
    assert!(out.contains("S3 lakes only"), "{out}");
    assert!(!keys.exists());
}
