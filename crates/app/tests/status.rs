//! What the admin centre reads of the last runs: each source's load report and the last
//! unification's figures, kept beside the published runs in the lake, checked against
//! the published tables themselves.

use std::sync::Arc;

use lakecdp_app::status::CORRUPT_SAMPLE;
use lakecdp_app::Recorder;
use lakecdp_core::{Process, RunStatus};

mod common;
use common::{admin, retail};

async fn rows(r: &common::Retail, process: &Process, entity: &str) -> u64 {
    let lake = r.app.lake(&r.env).await.unwrap();
    let model = lakecdp_lake::publish::read_model(&lake, process)
        .await
        .unwrap()
        .unwrap();
    lakecdp_lake::partition::read_entity(&lake, &process.folder(), model.entity(entity).unwrap())
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows() as u64)
        .sum()
}

#[tokio::test]
async fn the_load_and_unification_reports_match_the_published_tables() {
    let r = retail().await;
    let env = r.env.name.clone();
    // before any refresh: the sources are declared, nothing is loaded
    let before = r.app.ingestion_status(&admin(), &env).await.unwrap();
    assert_eq!(before.revision, 1);
    let before = before.sources;
    assert_eq!(before.len(), 3);
    assert!(before
        .iter()
        .all(|s| s.published.is_none() && s.last_run.is_none()));
    assert!(r
        .app
        .unification_status(&admin(), &env)
        .await
        .unwrap()
        .last
        .is_none());

    r.full_refresh(Arc::new(Recorder::default())).await;
    let status = r
        .app
        .ingestion_status(&admin(), &env)
        .await
        .unwrap()
        .sources;
    for s in &status {
        let process = Process::Ingestion(s.source.clone());
        let loads = s.loads.as_ref().expect("the load's report is kept");
        assert_eq!(loads.len(), s.tables.len(), "{}", s.source);
        assert_eq!(s.last_run.as_ref().unwrap().status, RunStatus::Succeeded);
        for load in loads {
            let written = rows(&r, &process, &load.table).await;
            assert_eq!(load.written, written, "{}.{}", s.source, load.table);
            let corrupt_entity = lakecdp_app::status::corrupt_entity(&s.source, &load.table);
            let corrupt = rows(&r, &process, &corrupt_entity).await;
            assert_eq!(load.corrupt, corrupt, "{corrupt_entity}");
            assert_eq!(
                load.read,
                load.written + load.corrupt + load.replaced + load.deleted
            );
            assert_eq!(
                load.reasons.iter().map(|x| x.rows).sum::<u64>(),
                load.corrupt,
                "every corrupt row has one reason kind"
            );
            // the sample is the corrupt table's rows, each with its reason
            let sample = r
                .app
                .corrupt_rows(&admin(), &env, &s.source, &load.table, CORRUPT_SAMPLE)
                .await
                .unwrap();
            assert_eq!(sample.len() as u64, load.corrupt.min(CORRUPT_SAMPLE as u64));
            assert!(
                sample
                    .windows(2)
                    .all(|w| (&w[0].file, w[0].line) <= (&w[1].file, w[1].line)),
                "in the order they were read"
            );
            for row in &sample {
                let kind = row.reason.split(':').next().unwrap();
                assert!(
                    load.reasons.iter().any(|x| x.reason == kind),
                    "`{}` is counted among {:?}",
                    row.reason,
                    load.reasons
                );
                assert!(row.line > 0 && !row.file.is_empty());
            }
        }
    }
    assert!(
        status
            .iter()
            .flat_map(|s| s.loads.iter().flatten())
            .any(|l| l.corrupt > 0),
        "the retail files have defects"
    );

    let u = r.app.unification_status(&admin(), &env).await.unwrap();
    let last = u.last.expect("the unification's report is kept");
    let profiles = rows(&r, &Process::Unification, "Customer").await;
    let keys = rows(&r, &Process::Unification, "AlternateKey").await;
    assert_eq!(last.profiles, profiles);
    assert_eq!(
        last.clusters.sizes.iter().map(|z| z.count).sum::<u64>(),
        profiles
    );
    assert_eq!(
        last.clusters
            .sizes
            .iter()
            .map(|z| z.size * z.count)
            .sum::<u64>(),
        keys,
        "every source record is in one profile"
    );
    assert!(last
        .rules
        .iter()
        .any(|x| x.rule == "same email" && x.pairs > 0));
    assert!(u.section.contains("[[unification.tables]]"));

    // a refresh that loads nothing new keeps the reports of the runs still published
    r.full_refresh(Arc::new(Recorder::default())).await;
    let again = r
        .app
        .ingestion_status(&admin(), &env)
        .await
        .unwrap()
        .sources;
    for (a, b) in status.iter().zip(&again) {
        assert_eq!(a.published, b.published, "{} was unchanged", a.source);
        assert_eq!(a.loads, b.loads);
    }

    // a source or table that does not exist is said
    let e = r
        .app
        .corrupt_rows(&admin(), &env, "Nowhere", "Members", 5)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no source `Nowhere`"), "{e}");
}
