//! The lake conformance suite: every case runs against the local folder, Azurite and
//! the S3 server.

mod common;

use arrow::record_batch::RecordBatch;
use futures::stream;
use lakecdp_core::{EnvironmentId, PartitionFormat, RunId};
use lakecdp_lake::cdm::{Model, MODEL_JSON};
use lakecdp_lake::partition::read_entity;
use lakecdp_lake::publish::{read_model, CdmFolderWriter};
use lakecdp_lake::{Error, Lake, Process};
use object_store::{PutMode, PutOptions, PutPayload, UpdateVersion};
use std::time::Duration;

type BatchStream = futures::stream::Iter<std::vec::IntoIter<Result<RecordBatch, String>>>;

fn batches(bs: Vec<RecordBatch>) -> BatchStream {
    stream::iter(bs.into_iter().map(Ok).collect::<Vec<_>>())
}

/// Publish `tables`; retention keeps no run for a minimum age.
async fn publish(
    lake: &Lake,
    process: Process,
    retention: u32,
    tables: &[(&str, Vec<RecordBatch>)],
) -> lakecdp_lake::Published {
    publish_with(lake, process, retention, Duration::ZERO, tables).await
}

async fn publish_with(
    lake: &Lake,
    process: Process,
    retention: u32,
    min_age: Duration,
    tables: &[(&str, Vec<RecordBatch>)],
) -> lakecdp_lake::Published {
    let mut w = CdmFolderWriter::begin(lake, process, retention)
        .await
        .unwrap()
        .with_min_age(min_age);
    for (name, bs) in tables {
        let schema = bs[0].schema();
        w.write_entity(name, None, schema, batches(bs.clone()))
            .await
            .unwrap();
    }
    w.commit().await.unwrap()
}

async fn read_back(lake: &Lake, process: &Process, entity: &str) -> Vec<RecordBatch> {
    let model = read_model(lake, process)
        .await
        .unwrap()
        .expect("model.json exists");
    let e = model.entity(entity).expect("entity exists");
    read_entity(lake, &process.folder(), e).await.unwrap()
}

/// A run that writes `entity` and crashes before its commit; its id.
async fn crash(lake: &Lake, process: Process, entity: &str) -> RunId {
    let mut w = CdmFolderWriter::begin(lake, process, 1).await.unwrap();
    let schema = common::sample_batch(0).schema();
    w.write_entity(entity, None, schema, batches(vec![common::sample_batch(7)]))
        .await
        .unwrap();
    w.run_id().clone()
}

/// The run folders of an entity that hold files.
async fn runs_of(lake: &Lake, folder: &str) -> Vec<String> {
    let mut runs: Vec<String> = lake
        .list(folder)
        .await
        .unwrap()
        .iter()
        .filter_map(|m| lake.relative(&m.location))
        .filter_map(|rel| {
            rel.strip_prefix(&format!("{folder}/"))
                .and_then(|r| r.split('/').next())
                .map(str::to_string)
        })
        .collect();
    runs.dedup();
    runs
}

fn concat(bs: &[RecordBatch]) -> RecordBatch {
    arrow::compute::concat_batches(&bs[0].schema(), bs).unwrap()
}

mod cases {
    use super::*;

    pub async fn put_get_list_delete(kind: &str) {
        let f = common::fixture(kind).await;
        let lake = common::lake(&f);
        // Debug output never carries the store (whose own Debug may print credentials)
        let debug = format!("{lake:?} {:?}", common::open(&f));
        assert!(
            !debug.contains("AccessKey") && !debug.contains("credential"),
            "{debug}"
        );
        lake.put("a/b/one.txt", "1").await.unwrap();
        lake.put("a/b/two.txt", "22").await.unwrap();
        lake.put("a/c/three.txt", "333").await.unwrap();
        assert_eq!(lake.get("a/b/two.txt").await.unwrap().as_ref(), b"22");
        assert!(lake.exists("a/b/one.txt").await.unwrap());
        assert!(!lake.exists("a/b/none.txt").await.unwrap());
        assert!(matches!(
            lake.get("a/b/none.txt").await,
            Err(Error::NotFound { .. })
        ));
        let listed: Vec<String> = lake
            .list("a")
            .await
            .unwrap()
            .iter()
            .map(|m| lake.relative(&m.location).unwrap())
            .collect();
        assert_eq!(listed, ["a/b/one.txt", "a/b/two.txt", "a/c/three.txt"]);
        assert_eq!(lake.list_folders("a").await.unwrap(), ["b", "c"]);
        lake.delete("a/b/one.txt").await.unwrap();
        lake.delete("a/b/one.txt").await.unwrap(); // deleting twice is fine
        assert_eq!(lake.delete_folder("a").await.unwrap(), 2);
        assert!(lake.list("a").await.unwrap().is_empty());
    }

    pub async fn conditional_put(kind: &str) {
        let f = common::fixture(kind).await;
        let lake = common::lake(&f);
        let store = lake.store();
        let path = lake.path("cas/object");
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let first = store
            .put_opts(&path, PutPayload::from_static(b"v1"), create.clone())
            .await
            .unwrap();
        let again = store
            .put_opts(&path, PutPayload::from_static(b"v2"), create)
            .await;
        assert!(
            matches!(again, Err(object_store::Error::AlreadyExists { .. })),
            "{again:?}"
        );
        if lake.capabilities().conditional_update {
            let v1 = UpdateVersion {
                e_tag: first.e_tag.clone(),
                version: first.version.clone(),
            };
            let update = PutOptions {
                mode: PutMode::Update(v1.clone()),
                ..Default::default()
            };
            store
                .put_opts(&path, PutPayload::from_static(b"v2"), update.clone())
                .await
                .unwrap();
            let stale = store
                .put_opts(&path, PutPayload::from_static(b"v3"), update)
                .await;
            assert!(
                matches!(stale, Err(object_store::Error::Precondition { .. })),
                "{stale:?}"
            );
            assert_eq!(lake.get("cas/object").await.unwrap().as_ref(), b"v2");
        }
    }

    pub async fn atomic_publish(kind: &str) {
        let f = common::fixture(kind).await;
        let lake = common::lake(&f);
        let process = Process::Ingestion("Crm".into());
        let first = publish(
            &lake,
            process.clone(),
            3,
            &[(
                "Contacts",
                vec![common::sample_batch(0), common::sample_batch(10)],
            )],
        )
        .await;
        assert_eq!(first.entities, [("Contacts".to_string(), 8)]);
        let expected = concat(&[common::sample_batch(0), common::sample_batch(10)]);
        assert_eq!(
            concat(&read_back(&lake, &process, "Contacts").await),
            expected
        );

        // A run that writes its files and dies before the commit changes nothing readers see.
        let mut crashed = CdmFolderWriter::begin(&lake, process.clone(), 3)
            .await
            .unwrap();
        crashed
            .write_entity(
                "Contacts",
                None,
                common::sample_batch(0).schema(),
                batches(vec![common::sample_batch(100)]),
            )
            .await
            .unwrap();
        let crashed_run = crashed.run_id().clone();
        drop(crashed);
        assert!(lake
            .exists(&format!(
                "DataIngestion/Crm/Contacts/{crashed_run}/part-00000.csv"
            ))
            .await
            .unwrap());
        assert_eq!(
            concat(&read_back(&lake, &process, "Contacts").await),
            expected
        );

        // The next run publishes on top; the crashed run's folder is swept away.
        let second = publish(
            &lake,
            process.clone(),
            1,
            &[("Contacts", vec![common::sample_batch(1000)])],
        )
        .await;
        assert_eq!(
            concat(&read_back(&lake, &process, "Contacts").await),
            common::sample_batch(1000)
        );
        assert!(
            second.removed_runs.contains(&crashed_run),
            "{:?}",
            second.removed_runs
        );
        assert!(second.removed_runs.contains(&first.run_id));
        let left = runs_of(&lake, "DataIngestion/Crm/Contacts").await;
        assert_eq!(left, [second.run_id.to_string()]);
    }

    pub async fn concurrent_publishers_conflict(kind: &str) {
        let f = common::fixture(kind).await;
        let lake = common::lake(&f);
        let process = Process::Unification;
        // both with and without a previous model.json
        for round in 0..2 {
            let mut a = CdmFolderWriter::begin(&lake, process.clone(), 5)
                .await
                .unwrap();
            let mut b = CdmFolderWriter::begin(&lake, process.clone(), 5)
                .await
                .unwrap();
            let schema = common::sample_batch(0).schema();
            a.write_entity(
                "Customer",
                None,
                schema.clone(),
                batches(vec![common::sample_batch(1)]),
            )
            .await
            .unwrap();
            b.write_entity(
                "Customer",
                None,
                schema,
                batches(vec![common::sample_batch(2)]),
            )
            .await
            .unwrap();
            let a_run = a.commit().await.unwrap().run_id;
            let err = b.commit().await.unwrap_err();
            assert!(
                matches!(err, Error::Conflict { .. }),
                "round {round}: {err}"
            );
            let model = read_model(&lake, &process).await.unwrap().unwrap();
            let run = model
                .annotations
                .iter()
                .find(|a| a.name == "lakecdp:runId")
                .unwrap()
                .value
                .clone()
                .unwrap();
            assert_eq!(
                run,
                a_run.to_string(),
                "round {round}: the first commit stays"
            );
            assert_eq!(
                concat(&read_back(&lake, &process, "Customer").await),
                common::sample_batch(1)
            );
        }
    }

    pub async fn retention(kind: &str) {
        let f = common::fixture(kind).await;
        let lake = common::lake(&f);
        let process = Process::Segments;
        let mut runs: Vec<RunId> = Vec::new();
        for i in 0..4 {
            let p = publish(
                &lake,
                process.clone(),
                2,
                &[
                    ("SegmentMembership", vec![common::sample_batch(i)]),
                    ("Vip", vec![common::sample_batch(i * 10)]),
                ],
            )
            .await;
            runs.push(p.run_id);
        }
        for entity in ["SegmentMembership", "Vip"] {
            let left = runs_of(&lake, &format!("Segments/{entity}")).await;
            assert_eq!(left, [runs[2].to_string(), runs[3].to_string()], "{entity}");
        }
        let manifests = lake.list(&lake.internal("runs/Segments")).await.unwrap();
        assert_eq!(manifests.len(), 2);
        assert_eq!(
            concat(&read_back(&lake, &process, "Vip").await),
            common::sample_batch(30)
        );
    }

    /// Each publish of a folder records its ordinal: 1, 2, 3...; a crashed run takes
    /// none; a `model.json` written before ordinals were recorded counts as the first.
    pub async fn publish_versions(kind: &str) {
        let f = common::fixture(kind).await;
        let lake = common::lake(&f);
        let table = |i| [("Cities", vec![common::sample_batch(i)])];
        let mut versions = Vec::new();
        for i in 0..2 {
            versions.push(publish(&lake, Process::Reports, 3, &table(i)).await.version);
        }
        crash(&lake, Process::Reports, "Cities").await;
        let third = publish(&lake, Process::Reports, 3, &table(2)).await;
        versions.push(third.version);
        assert_eq!(versions, [1, 2, 3]);
        let model = read_model(&lake, &Process::Reports).await.unwrap().unwrap();
        assert_eq!(lakecdp_lake::publish::publish_version(&model), Some(3));

        // a model.json of an earlier version: no ordinal
        let mut old = model.clone();
        old.annotations
            .retain(|a| a.name != lakecdp_lake::publish::VERSION_ANNOTATION);
        lake.put(&format!("Reports/{MODEL_JSON}"), old.to_json())
            .await
            .unwrap();
        assert_eq!(lakecdp_lake::publish::publish_version(&old), None);
        let next = publish(&lake, Process::Reports, 3, &table(3)).await;
        assert_eq!(next.version, 2);
    }

    /// Run folders of crashed runs never count toward the retention: they never push a
    /// published run out, and they are deleted.
    pub async fn retention_counts_published_runs_only(kind: &str) {
        let f = common::fixture(kind).await;
        let lake = common::lake(&f);
        let process = Process::Reports;
        let table = |i| [("Cities", vec![common::sample_batch(i)])];
        let a = publish(&lake, process.clone(), 2, &table(0)).await;
        let b = publish(&lake, process.clone(), 2, &table(1)).await;
        let o1 = crash(&lake, process.clone(), "Cities").await;
        let o2 = crash(&lake, process.clone(), "Cities").await;
        let c = publish(&lake, process.clone(), 2, &table(2)).await;
        assert_eq!(
            runs_of(&lake, "Reports/Cities").await,
            [b.run_id.to_string(), c.run_id.to_string()]
        );
        for gone in [&a.run_id, &o1, &o2] {
            assert!(
                c.removed_runs.contains(gone),
                "{gone}: {:?}",
                c.removed_runs
            );
        }
        assert_eq!(
            concat(&read_back(&lake, &process, "Cities").await),
            common::sample_batch(2)
        );
    }

    /// A run that stopped being current less than the minimum age ago stays whatever the
    /// count (a reader may still follow the previous model.json), and so does a run
    /// folder still being written; older ones go.
    pub async fn retention_keeps_runs_younger_than_the_minimum_age(kind: &str) {
        let f = common::fixture(kind).await;
        let lake = common::lake(&f);
        let process = Process::Activities;
        let min_age = Duration::from_secs(3);
        let table = |i| [("UnifiedActivity", vec![common::sample_batch(i)])];
        let a = publish_with(&lake, process.clone(), 1, min_age, &table(0)).await;
        let b = publish_with(&lake, process.clone(), 1, min_age, &table(1)).await;
        let writing = crash(&lake, process.clone(), "UnifiedActivity").await;
        let c = publish_with(&lake, process.clone(), 1, min_age, &table(2)).await;
        assert!(c.removed_runs.is_empty(), "{:?}", c.removed_runs);
        let mut all = vec![
            a.run_id.to_string(),
            b.run_id.to_string(),
            writing.to_string(),
            c.run_id.to_string(),
        ];
        all.sort();
        assert_eq!(runs_of(&lake, "Activities/UnifiedActivity").await, all);
        tokio::time::sleep(min_age + Duration::from_secs(1)).await;
        let d = publish_with(&lake, process.clone(), 1, min_age, &table(3)).await;
        // c was current until just now; the rest is older than the minimum age
        assert_eq!(
            runs_of(&lake, "Activities/UnifiedActivity").await,
            [c.run_id.to_string(), d.run_id.to_string()]
        );
        let manifests = lake.list(&lake.internal("runs/Activities")).await.unwrap();
        assert_eq!(manifests.len(), 2);
    }

    pub async fn parquet_partitions(kind: &str) {
        let f = common::fixture(kind).await;
        let lake = common::lake(&f).with_format(PartitionFormat::Parquet);
        let process = Process::Measures;
        publish(
            &lake,
            process.clone(),
            3,
            &[(
                "Customer_Measure",
                vec![common::sample_batch(5), common::sample_batch(6)],
            )],
        )
        .await;
        assert_eq!(
            concat(&read_back(&lake, &process, "Customer_Measure").await),
            concat(&[common::sample_batch(5), common::sample_batch(6)])
        );
        let manifest: serde_json::Value = serde_json::from_slice(
            &lake
                .get("Measures/default.manifest.cdm.json")
                .await
                .unwrap(),
        )
        .unwrap();
        let partition = &manifest["entities"][0]["dataPartitions"][0];
        assert_eq!(
            partition["exhibitsTraits"][0]["traitReference"],
            "is.partition.format.parquet"
        );
        assert!(partition["location"]
            .as_str()
            .unwrap()
            .starts_with("Customer_Measure/"));
        assert!(lake
            .exists("Measures/Customer_Measure.cdm.json")
            .await
            .unwrap());
    }

    pub async fn environments_are_isolated(kind: &str) {
        let f = common::fixture(kind).await;
        let handle = common::open(&f);
        let a = Lake::new(&handle, EnvironmentId::new());
        let b = Lake::new(&handle, EnvironmentId::new());
        publish(
            &a,
            Process::Unification,
            3,
            &[("Customer", vec![common::sample_batch(0)])],
        )
        .await;
        b.put("only-b.txt", "b").await.unwrap();
        assert!(read_model(&b, &Process::Unification)
            .await
            .unwrap()
            .is_none());
        assert!(!b.exists("Unification/model.json").await.unwrap());
        assert!(b
            .list("")
            .await
            .unwrap()
            .iter()
            .all(|m| b.relative(&m.location).is_some()));
        assert_eq!(b.list("").await.unwrap().len(), 1);
        assert!(!a.exists("only-b.txt").await.unwrap());
        assert!(a
            .list("")
            .await
            .unwrap()
            .iter()
            .all(|m| !m.location.as_ref().contains(&b.environment().folder())));
        // the partition URLs of one environment do not resolve in the other
        let model = read_model(&a, &Process::Unification)
            .await
            .unwrap()
            .unwrap();
        let loc = &model.entity("Customer").unwrap().partitions[0].location;
        assert!(a.relative_of_url(loc).is_some());
        assert!(b.relative_of_url(loc).is_none());
        let err = read_entity(&b, "Unification", model.entity("Customer").unwrap())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("outside this lake"), "{err}");
    }

    pub async fn model_json_is_cdm(kind: &str) {
        let f = common::fixture(kind).await;
        let lake = common::lake(&f);
        publish(
            &lake,
            Process::Activities,
            3,
            &[("UnifiedActivity", vec![common::sample_batch(0)])],
        )
        .await;
        let raw: serde_json::Value =
            serde_json::from_slice(&lake.get(&format!("Activities/{MODEL_JSON}")).await.unwrap())
                .unwrap();
        assert_eq!(raw["name"], "Activities");
        assert_eq!(raw["version"], "1.0");
        assert!(raw["modifiedTime"].as_str().unwrap().ends_with('Z'));
        let e = &raw["entities"][0];
        assert_eq!(e["$type"], "LocalEntity");
        let types: Vec<&str> = e["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["dataType"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "int64",
                "string",
                "double",
                "boolean",
                "int64",
                "dateTime",
                "dateTime",
                "dateTimeOffset",
                "decimal"
            ]
        );
        let p = &e["partitions"][0];
        assert_eq!(p["fileFormatSettings"]["$type"], "CsvFormatSettings");
        assert_eq!(p["fileFormatSettings"]["columnHeaders"], true);
        let location = p["location"].as_str().unwrap();
        let rel = lake
            .relative_of_url(location)
            .expect("absolute URL of this lake");
        let csv = String::from_utf8(lake.get(&rel).await.unwrap().to_vec()).unwrap();
        assert!(
            csv.starts_with("Id,Name,Score,Active,Visits,BirthDate,UpdatedAt,SeenAt,Balance\n"),
            "{csv}"
        );
        assert!(
            csv.contains("\"Ann \"\"Nan\"\" Lee\""),
            "RFC 4180 quote doubling: {csv}"
        );
        assert!(csv.contains("\"multi\nline\""), "{csv}");
        Model::from_json("x", &serde_json::to_vec(&raw).unwrap()).unwrap();
    }

    /// One holder of a lock object at a time, also when many take a stale one at once.
    pub async fn lock_objects(kind: &str) {
        use lakecdp_lake::LockObject;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let f = common::fixture(kind).await;
        let lake = common::lake(&f);
        let relative = lake.internal("locks/conformance.lock");
        let lock = LockObject::new(&lake, relative.clone(), Duration::from_secs(60));
        let a = lock.try_acquire("a").await.unwrap().expect("free");
        assert!(lock.try_acquire("b").await.unwrap().is_none());
        a.release().await.unwrap();
        // a holder that died two hours ago (its recorded time; the lock's expiry is a minute)
        let stale = serde_json::json!({
            "owner": "a holder that died", "token": "dead", "host": "elsewhere", "pid": 1,
            "acquiredAt": (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339(),
        });
        lake.put(&relative, serde_json::to_vec(&stale).unwrap())
            .await
            .unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..6 {
            let lock = lock.clone();
            let (inside, most) = (inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let guard = lock
                    .acquire(&format!("taker {i}"), Duration::from_secs(30))
                    .await
                    .unwrap()
                    .expect("taken within the wait");
                let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                guard.release().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(lake.list(&lake.internal("locks")).await.unwrap().is_empty());
    }

    /// One holder at a time; an expired lease is taken over and its old holder learns it.
    pub async fn leases(kind: &str) {
        use lakecdp_lake::lease::{Lease, LeaseError};
        use std::time::Duration;
        let f = common::fixture(kind).await;
        let lake = common::lake(&f);
        let long = Duration::from_secs(600);
        let a = Lease::acquire(&lake, "refresh", "the refresh", "a", long)
            .await
            .unwrap();
        let held = Lease::acquire(&lake, "refresh", "the refresh", "b", long)
            .await
            .unwrap_err();
        assert!(
            matches!(&held, LeaseError::Held { info, .. } if info.holder == "a"),
            "{held}"
        );
        a.release().await.unwrap();
        let mut dead = Lease::acquire(&lake, "refresh", "the refresh", "c", Duration::ZERO)
            .await
            .unwrap();
        let mut d = Lease::acquire(&lake, "refresh", "the refresh", "d", long)
            .await
            .unwrap();
        assert!(matches!(dead.renew().await, Err(LeaseError::Lost { .. })));
        d.renew().await.unwrap();
        d.release().await.unwrap();
    }

    /// A lake fenced by a lease publishes only while that lease is held: once another
    /// holder takes it over, the old holder's commit is refused and leaves the output of
    /// the new one in place.
    pub async fn fenced_publishes(kind: &str) {
        use lakecdp_lake::lease::Lease;
        let f = common::fixture(kind).await;
        let lake = common::lake(&f);
        let process = Process::Segments;
        let old = Lease::acquire(&lake, "refresh", "the refresh", "old", Duration::ZERO)
            .await
            .unwrap();
        let old_lake = lake.clone().fenced(old.fence());
        // still its lease: it publishes
        publish(
            &old_lake,
            process.clone(),
            3,
            &[("Members", vec![common::sample_batch(0)])],
        )
        .await;
        // its lease expired and was taken over; the new holder publishes
        let new = Lease::acquire(
            &lake,
            "refresh",
            "the refresh",
            "new",
            Duration::from_secs(600),
        )
        .await
        .unwrap();
        let new_lake = lake.clone().fenced(new.fence());
        publish(
            &new_lake,
            process.clone(),
            3,
            &[("Members", vec![common::sample_batch(10)])],
        )
        .await;
        // the old holder's next commit is refused, naming the new holder
        let mut late = CdmFolderWriter::begin(&old_lake, process.clone(), 3)
            .await
            .unwrap();
        late.write_entity(
            "Members",
            None,
            common::sample_batch(20).schema(),
            batches(vec![common::sample_batch(20)]),
        )
        .await
        .unwrap();
        let refused = late.commit().await.unwrap_err();
        assert!(
            matches!(&refused, Error::Fenced { holder, .. } if holder.starts_with("new")),
            "{refused}"
        );
        assert_eq!(
            concat(&read_back(&lake, &process, "Members").await),
            common::sample_batch(10)
        );
        // a released lease fences too
        new.release().await.unwrap();
        let mut after = CdmFolderWriter::begin(&new_lake, process.clone(), 3)
            .await
            .unwrap();
        after
            .write_entity(
                "Members",
                None,
                common::sample_batch(30).schema(),
                batches(vec![common::sample_batch(30)]),
            )
            .await
            .unwrap();
        assert!(matches!(after.commit().await, Err(Error::Fenced { .. })));
        // an unfenced lake is not affected
        publish(
            &lake,
            process.clone(),
            3,
            &[("Members", vec![common::sample_batch(40)])],
        )
        .await;
    }
}

macro_rules! lake_suite {
    ($($backend:ident),*) => {$(
        mod $backend {
            use super::cases;
            #[tokio::test]
            async fn put_get_list_delete() { cases::put_get_list_delete(stringify!($backend)).await }
            #[tokio::test]
            async fn conditional_put() { cases::conditional_put(stringify!($backend)).await }
            #[tokio::test]
            async fn atomic_publish() { cases::atomic_publish(stringify!($backend)).await }
            #[tokio::test]
            async fn concurrent_publishers_conflict() { cases::concurrent_publishers_conflict(stringify!($backend)).await }
            #[tokio::test]
            async fn retention() { cases::retention(stringify!($backend)).await }
            #[tokio::test]
            async fn publish_versions() { cases::publish_versions(stringify!($backend)).await }
            #[tokio::test]
            async fn retention_counts_published_runs_only() { cases::retention_counts_published_runs_only(stringify!($backend)).await }
            #[tokio::test]
            async fn retention_keeps_runs_younger_than_the_minimum_age() { cases::retention_keeps_runs_younger_than_the_minimum_age(stringify!($backend)).await }
            #[tokio::test]
            async fn parquet_partitions() { cases::parquet_partitions(stringify!($backend)).await }
            #[tokio::test]
            async fn environments_are_isolated() { cases::environments_are_isolated(stringify!($backend)).await }
            #[tokio::test]
            async fn model_json_is_cdm() { cases::model_json_is_cdm(stringify!($backend)).await }
            #[tokio::test]
            async fn leases() { cases::leases(stringify!($backend)).await }
            #[tokio::test]
            async fn fenced_publishes() { cases::fenced_publishes(stringify!($backend)).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn lock_objects() { cases::lock_objects(stringify!($backend)).await }
        }
    )*};
}

lake_suite!(local, azurite, s3);

/// Every file under `from`, copied to the same place under `to`.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A local lake names its partitions by plain absolute paths (what the CDM SDK's local
/// adapter and pyarrow open; neither follows `file://` URLs), and still reads the
/// `file://` locations earlier versions wrote.
#[tokio::test]
async fn local_partition_locations_are_plain_absolute_paths() {
    let f = common::fixture("local").await;
    let lake = common::lake(&f);
    publish(
        &lake,
        Process::Activities,
        2,
        &[("UnifiedActivity", vec![common::sample_batch(0)])],
    )
    .await;
    let model = read_model(&lake, &Process::Activities)
        .await
        .unwrap()
        .unwrap();
    let location = &model.entity("UnifiedActivity").unwrap().partitions[0].location;
    assert!(!location.contains("://"), "{location}");
    let file = std::path::Path::new(location);
    assert!(file.is_absolute() && file.is_file(), "{location}");
    let relative = lake
        .relative_of_url(location)
        .expect("a location of this lake");
    assert_eq!(
        std::fs::read(file).unwrap(),
        lake.get(&relative).await.unwrap()
    );

    let legacy = url::Url::from_file_path(file).unwrap().to_string();
    assert!(legacy.starts_with("file:///"), "{legacy}");
    assert_eq!(lake.relative_of_url(&legacy), Some(relative.clone()));

    // climbing out of the environment's folder is never one of its locations
    let climbing = location.replace("/Activities/", "/Activities/../../other/");
    assert_eq!(lake.relative_of_url(&climbing), None);
    // nor is a sibling folder whose name starts like the environment's
    let sibling = location.replacen(
        &lake.environment().folder(),
        &format!("{}x", lake.environment().folder()),
        1,
    );
    assert_eq!(lake.relative_of_url(&sibling), None);
}

/// A local lake copied (or moved) to another folder as a whole reads back there, from
/// the copy: its `model.json` files name the old folder, whose files are gone; the next
/// publish names the new folder and its retention still finds the runs it replaced.
#[tokio::test]
async fn a_local_lake_copied_to_another_folder_reads_back_from_the_copy() {
    let old = common::fixture("local").await;
    let env = EnvironmentId::new();
    let lake = Lake::new(&common::open(&old), env);
    publish(
        &lake,
        Process::Segments,
        1,
        &[("Vip", vec![common::sample_batch(0)])],
    )
    .await;
    let new = common::fixture("local").await;
    let (old_dir, new_dir) = (old._dir.as_ref().unwrap(), new._dir.as_ref().unwrap());
    copy_tree(old_dir.path(), new_dir.path());
    drop(old);
    let copied = Lake::new(&common::open(&new), env);
    assert_eq!(
        concat(&read_back(&copied, &Process::Segments, "Vip").await),
        common::sample_batch(0)
    );

    let next = publish(
        &copied,
        Process::Segments,
        1,
        &[("Vip", vec![common::sample_batch(1)])],
    )
    .await;
    assert_eq!(next.removed_runs.len(), 1, "{:?}", next.removed_runs);
    let model = read_model(&copied, &Process::Segments)
        .await
        .unwrap()
        .unwrap();
    let location = &model.entity("Vip").unwrap().partitions[0].location;
    let root = new_dir.path().canonicalize().unwrap();
    assert!(location.starts_with(root.to_str().unwrap()), "{location}");
    assert_eq!(
        runs_of(&copied, "Segments/Vip").await,
        [next.run_id.to_string()]
    );
}
