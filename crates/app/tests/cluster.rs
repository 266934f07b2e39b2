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
            "unify" => "local: unification is not distributed yet",
            p if p.starts_with("ingest:") => "local: ingestion is not distributed yet",
            _ => "ballista (standalone)",
        };
        assert_eq!(o.ran_on, expected, "{}", o.process);
    }

    let expected = published(&local).await;
    let got = published(&cluster).await;
    if let Some(difference) = lakecdp_bench::outputs::first_difference(&expected, &got) {
        panic!("local, then standalone Ballista: {difference}");
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

/// A cluster process opens the lake of an environment a plan names only when its acting
/// principal may run that environment's refreshes, and only among the environments it
/// was told to serve; what it refuses names the reason, never a credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_process_opens_only_the_lakes_its_principal_may_refresh() {
    use datafusion::execution::object_store::ObjectStoreRegistry;
    use lakecdp_app::Actor;

    let r = retail().await;
    let url = lakecdp_engine::lake_url(r.env.id);
    let open = |actor: Actor, only: Vec<String>| {
        let lakes = r.app.cluster_lakes(&actor, only);
        let url = url.clone();
        // the registry is asked from a plan's synchronous code, off the async workers
        async move {
            tokio::task::spawn_blocking(move || lakes.get_store(&url).map(|_| ()))
                .await
                .unwrap()
        }
    };
    // the environment's creator, serving every environment or this one by name
    open(common::admin(), vec![]).await.unwrap();
    open(common::admin(), vec!["retail-demo".into()])
        .await
        .unwrap();
    // told to serve another environment only
    let err = open(common::admin(), vec!["other".into()])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not one this process serves"),
        "{err}"
    );
    // a principal with no role in the environment
    let err = open(Actor::named("mallory"), vec![]).await.unwrap_err();
    assert!(err.to_string().contains("cannot be opened here"), "{err}");
    // an environment the catalog does not hold
    let lakes = r.app.cluster_lakes(&common::admin(), vec![]);
    let other = lakecdp_engine::lake_url(lakecdp_core::EnvironmentId::new());
    let err = tokio::task::spawn_blocking(move || lakes.get_store(&other).map(|_| ()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("no environment"), "{err}");
}

/// When the environment's scheduler cannot be reached, what runs on the cluster fails
/// with an error naming it, what runs here still publishes, and nothing is half written.
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
    for o in &report.processes {
        let name = o.process.to_string();
        if name == "unify" || name.starts_with("ingest:") {
            assert_eq!(o.status, lakecdp_core::RunStatus::Succeeded, "{o:?}");
        }
    }
    let failed = report.first_problem().expect("a process failed");
    let reason = failed.reason.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!("the scheduler at {scheduler} does not answer")),
        "{reason}"
    );
    assert!(reason.contains("lakecdp cluster scheduler"), "{reason}");
    assert!(!r.env_folder().join("Measures/model.json").exists());
    assert!(r.env_folder().join("Unification/model.json").exists());
}
