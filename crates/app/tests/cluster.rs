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
