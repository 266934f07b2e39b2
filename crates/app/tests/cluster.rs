//! The same refresh on the local engine and on Ballista publishes the same rows in every
//! output table.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use lakecdp_app::Silent;
use lakecdp_lake::cdm::Model;

#[macro_use]
mod common;
use common::{retail, retail_with, Retail};

/// Every published table of the environment: `folder/entity` → its rows, each rendered
/// as text and sorted (partitions are written in no guaranteed order across engines).
///
/// CustomerIds are minted from the time of the run that creates them, so two
/// environments cannot share them: each is replaced by the profile's smallest record key
/// (`Source.Table:key`, from `AlternateKey`), which names the same profile in both.
async fn published(r: &Retail) -> BTreeMap<String, Vec<String>> {
    let lake = r.app.lake(&r.env).await.unwrap();
    let root = r.env_folder();
    let mut models = Vec::new();
    find_models(&root, &root, &mut models);
    let mut tables: BTreeMap<String, (Vec<String>, Vec<Vec<String>>)> = BTreeMap::new();
    for folder in models {
        let bytes = std::fs::read(root.join(&folder).join("model.json")).unwrap();
        let model: Model = serde_json::from_slice(&bytes).unwrap();
        for e in &model.entities {
            let batches = lakecdp_lake::partition::read_entity(&lake, &folder, e)
                .await
                .unwrap_or_else(|err| panic!("{folder}/{} reads: {err}", e.name));
            let names: Vec<String> = e.attributes.iter().map(|a| a.name.clone()).collect();
            let mut rows = Vec::new();
            for batch in &batches {
                let options = FormatOptions::default().with_null("∅");
                let columns: Vec<ArrayFormatter> = batch
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                    .collect();
                for row in 0..batch.num_rows() {
                    rows.push(columns.iter().map(|c| c.value(row).to_string()).collect());
                }
            }
            tables.insert(format!("{folder}/{}", e.name), (names, rows));
        }
    }
    // CustomerId → the profile's smallest record key
    let mut canonical: HashMap<String, String> = HashMap::new();
    {
        let (names, rows) = &tables["Unification/AlternateKey"];
        let at = |n: &str| names.iter().position(|c| c == n).unwrap();
        let (source, table, value, id) = (
            at("DataSourceName"),
            at("TableName"),
            at("AlternateValue"),
            at("CustomerId"),
        );
        for row in rows {
            let key = format!("{}.{}:{}", row[source], row[table], row[value]);
            let entry = canonical
                .entry(row[id].clone())
                .or_insert_with(|| key.clone());
            if key < *entry {
                *entry = key;
            }
        }
    }
    assert!(!canonical.is_empty(), "profiles were published");
    tables
        .into_iter()
        .map(|(name, (_, rows))| {
            let mut rendered: Vec<String> = rows
                .into_iter()
                .map(|cells| {
                    let cells: Vec<&str> = cells
                        .iter()
                        .map(|c| canonical.get(c).map_or(c.as_str(), String::as_str))
                        .collect();
                    cells.join("|")
                })
                .collect();
            rendered.sort();
            (name, rendered)
        })
        .collect()
}

/// The folders (relative to `root`) holding a published `model.json`, outside `_lakecdp`.
fn find_models(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "_lakecdp") {
                find_models(root, &path, out);
            }
        } else if path.file_name().is_some_and(|n| n == "model.json") {
            let folder = dir
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push(folder);
        }
    }
    out.sort();
}

fn on_ballista(project: String) -> String {
    let with = project.replace(
        "retention_runs = 3\n",
        "retention_runs = 3\nengine = { kind = \"ballista\", mode = \"standalone\" }\n",
    );
    assert_ne!(with, project, "the engine is declared");
    with
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_on_standalone_ballista_publishes_the_rows_a_local_refresh_does() {
    let local = retail().await;
    local.full_refresh(Arc::new(Silent)).await;
    let cluster = retail_with(on_ballista).await;
    assert_eq!(
        cluster
            .app
            .applied(&common::admin(), &cluster.env)
            .await
            .unwrap()
            .project
            .environment
            .engine,
        lakecdp_core::EngineChoice::BallistaStandalone
    );
    let report = cluster.full_refresh(Arc::new(Silent)).await;
    // the summary says where each process ran, and what could not run on the cluster
    for o in &report.processes {
        let expected = match o.process.to_string().as_str() {
            "unify" => "local: unification is not distributed yet",
            p if p.starts_with("ingest:") => "local: ingestion is not distributed yet",
            _ => "ballista (standalone)",
        };
        assert_eq!(o.ran_on, expected, "{}", o.process);
    }

    let expected = published(&local).await;
    let got = published(&cluster).await;
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the same tables are published"
    );
    for (table, rows) in &expected {
        assert!(!table.is_empty());
        let other = &got[table];
        assert_eq!(other.len(), rows.len(), "{table}: row count");
        if let Some(at) = rows.iter().zip(other).position(|(a, b)| a != b) {
            panic!(
                "{table}: the rows differ first at sorted row {at}:\n local:    {}\n ballista: {}",
                rows[at], other[at]
            );
        }
    }
    // the outputs of every process are there, and not empty
    for table in ["Unification/Customer", "Measures/Customer_Measure"] {
        assert!(!expected[table].is_empty(), "{table} has rows");
    }
}
