//! The same refresh on the local engine and on Ballista publishes the same rows in every
//! output table.

use std::collections::BTreeMap;
use std::sync::Arc;

use lakecdp_app::Silent;

#[macro_use]
mod common;
use common::{retail, retail_with, Retail};

async fn published(r: &Retail) -> BTreeMap<String, Vec<String>> {
    let lake = r.app.lake(&r.env).await.unwrap();
    lakecdp_bench::outputs::published_rows(&lake).await.unwrap()
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
            "unify" => "ballista (standalone): rule pairs; local: models, clusters, ids, merge",
            _ => "ballista (standalone)",
        };
        assert_eq!(o.ran_on, expected, "{}", o.process);
    }

    let expected = published(&local).await;
    let got = published(&cluster).await;
    if let Some(difference) = lakecdp_bench::outputs::first_difference(&expected, &got) {
        panic!("local, then standalone Ballista: {difference}");
    }
    // the cluster's tasks wrote the loaded tables' parts: the shuffled keys of a table
    // are written by several tasks (the empty parts are not declared)
    let model: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cluster.env_folder().join("DataIngestion/Crm/model.json")).unwrap(),
    )
    .unwrap();
    let contacts = model["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Contacts")
        .unwrap();
    let parts = contacts["partitions"].as_array().unwrap();
    assert!(parts.len() > 1, "{parts:?}");
    for p in parts {
        let location = p["location"].as_str().unwrap();
        assert!(
            location.contains("/Contacts/") && location.contains("/part-"),
            "{location}"
        );
    }
    // the outputs of every process are there, and not empty
    for table in [
        "DataIngestion/Crm/Contacts",
        "Unification/Customer",
        "Activities/UnifiedActivity",
        "Measures/Customer_Measure",
        "Segments/SegmentMembership",
    ] {
        assert!(!expected[table].is_empty(), "{table} has rows");
    }
}

/// A cluster process serves the lake of an environment only when its acting principal
/// may run that environment's refreshes, and only among the environments it was told to
/// serve; it serves no local file; what it refuses names no environment and no credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_process_serves_only_the_lakes_its_principal_may_refresh() {
    use datafusion::execution::object_store::ObjectStoreRegistry;
    use futures::TryStreamExt;
    use lakecdp_app::Actor;

    let r = retail().await;
    let url = lakecdp_engine::lake_url(r.env.id);
    // what a plan reading the environment's lake meets: its files, or a refusal
    let serve = |actor: Actor, only: Vec<String>| {
        let app = r.app.clone();
        let url = url.clone();
        async move {
            let (lakes, served) = app.cluster_lakes(&actor, only, None).await.unwrap();
            let store = lakes.get_store(&url).unwrap();
            let files: Result<Vec<_>, _> = store.list(None).try_collect().await;
            (files.map(|f| f.len()).map_err(|e| e.to_string()), served)
        }
    };
    // the environment's creator, serving every environment or this one by name (any case)
    let (found, served) = serve(common::admin(), vec![]).await;
    assert!(found.unwrap() > 0, "the environment's files are listed");
    assert_eq!(served.environments, ["retail-demo"]);
    let (found, served) = serve(common::admin(), vec!["RETAIL-demo".into()]).await;
    found.unwrap();
    assert!(served.unknown.is_empty());
    // told to serve another environment only: refused, and the unknown name reported
    let (found, served) = serve(common::admin(), vec!["other".into()]).await;
    let err = found.unwrap_err();
    assert!(err.contains("is not served by this process"), "{err}");
    assert!(!err.contains("retail-demo"), "{err}");
    assert_eq!(served.unknown, ["other"]);
    // a principal with no role in the environment
    let (found, served) = serve(Actor::named("mallory"), vec![]).await;
    let err = found.unwrap_err();
    assert!(err.contains("is not served by this process"), "{err}");
    assert!(served.environments.is_empty());
    // an environment the catalog does not hold, and a local file
    let (lakes, _) = r
        .app
        .cluster_lakes(&common::admin(), vec![], None)
        .await
        .unwrap();
    let other = lakecdp_engine::lake_url(lakecdp_core::EnvironmentId::new());
    let files: Result<Vec<_>, _> = lakes
        .get_store(&other)
        .unwrap()
        .list(None)
        .try_collect()
        .await;
    assert!(files.unwrap_err().to_string().contains("is not served"));
    let file = url::Url::parse("file:///etc/passwd").unwrap();
    let err = lakes.get_store(&file).unwrap_err().to_string();
    assert!(err.contains("reads only environments' lakes"), "{err}");
}

/// When the environment's scheduler cannot be reached, what runs on the cluster fails
/// with an error naming it and how to start one, and nothing of it is published or left
/// half written. The sources in this machine's folders load here (the executors were not
/// said to share them), and the summary says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_whose_scheduler_is_unreachable_names_it_and_publishes_what_runs_here() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scheduler = format!("df://127.0.0.1:{port}");
    let r = retail_with(|project| {
        project.replace(
            "retention_runs = 3\n",
            &format!("retention_runs = 3\nengine = {{ kind = \"ballista\", scheduler = \"{scheduler}\" }}\n"),
        )
    })
    .await;
    let report = r
        .app
        .refresh(
            &common::admin(),
            &lakecdp_app::RefreshRequest::default(),
            lakecdp_app::CancellationToken::new(),
            Arc::new(Silent),
        )
        .await
        .unwrap();
    assert_eq!(report.status, lakecdp_core::RunStatus::Failed);
    let failed = report.first_problem().expect("a process failed");
    let reason = failed.reason.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!("the scheduler at {scheduler} does not answer")),
        "{reason}"
    );
    assert!(reason.contains("lakecdp cluster scheduler"), "{reason}");
    assert_eq!(failed.process.to_string(), "unify");
    for folder in ["Measures", "Unification"] {
        assert!(!r.env_folder().join(folder).join("model.json").exists());
    }
    for o in &report.processes {
        if o.process.to_string().starts_with("ingest:") {
            assert_eq!(o.status, lakecdp_core::RunStatus::Succeeded, "{o:?}");
            assert!(
                o.ran_on
                    .starts_with(&format!("ballista ({scheduler}); local: "))
                    && o.ran_on.contains("shared_files = true"),
                "{}",
                o.ran_on
            );
            let folder = r
                .env_folder()
                .join(o.process.to_string().replace("ingest:", "DataIngestion/"));
            assert!(folder.join("model.json").exists(), "{}", folder.display());
        }
    }
    // no scratch values of a rule are left behind
    let scratch = walk(&r.env_folder().join("_lakecdp/scratch"));
    assert!(scratch.is_empty(), "{scratch:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}
