//! The system refresh through `App::refresh`: what it publishes, the events it reports,
//! the runs it records, a cancel, the lease that refuses a second refresh, and a refresh
//! left Running by a process that died.

use std::sync::Arc;
use std::time::Duration;

use lakecdp_app::{CancellationToken, ErrorKind, Event, Recorder, RefreshRequest};
use lakecdp_core::{Process, RunRecord, RunStatus};
use lakecdp_lake::lease::Lease;
use lakecdp_lake::partition::read_entity;

#[macro_use]
mod common;
use common::{admin, retail, CancelWhen};

const SOURCES: [&str; 3] = ["Crm", "Shop", "Loyalty"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_refresh_publishes_every_process_reports_its_events_and_records_its_runs() {
    let r = retail().await;
    let recorder = Arc::new(Recorder::default());
    let report = r.full_refresh(recorder.clone()).await;

    // every process of the project ran and succeeded
    let mut names: Vec<String> = report
        .processes
        .iter()
        .map(|o| o.process.to_string())
        .collect();
    for o in &report.processes {
        assert_eq!(o.status, RunStatus::Succeeded, "{o:?}");
        assert_eq!(o.reason, None, "{o:?}");
    }
    let in_order = names.clone();
    names.sort();
    assert_eq!(
        names,
        [
            "activities",
            "ingest:Crm",
            "ingest:Loyalty",
            "ingest:Shop",
            "measures",
            "reports",
            "segments",
            "unify"
        ]
    );
    let at = |p: &str| in_order.iter().position(|n| n == p).unwrap();
    for s in SOURCES {
        assert!(at(&format!("ingest:{s}")) < at("unify"), "{in_order:?}");
    }
    assert!(at("unify") < at("activities") && at("activities") < at("measures"));
    assert!(at("measures") < at("segments"), "{in_order:?}");

    // the events: the refresh, then each process started and finished in run order
    let events = recorder.events();
    match &events[0] {
        Event::RefreshStarted {
            run,
            environment,
            processes,
        } => {
            assert_eq!(run, &report.run);
            assert_eq!(environment, "retail-demo");
            let listed: Vec<Process> = report.processes.iter().map(|o| o.process.clone()).collect();
            assert_eq!(processes, &listed);
        }
        other => panic!("the first event is RefreshStarted, not {other:?}"),
    }
    let lifecycle: Vec<(bool, Process)> = events
        .iter()
        .filter_map(|e| match e {
            Event::ProcessStarted(p) => Some((true, p.clone())),
            Event::ProcessFinished(o) => {
                assert_eq!(o.status, RunStatus::Succeeded, "{o:?}");
                Some((false, o.process.clone()))
            }
            _ => None,
        })
        .collect();
    let expected: Vec<(bool, Process)> = report
        .processes
        .iter()
        .flat_map(|o| [(true, o.process.clone()), (false, o.process.clone())])
        .collect();
    assert_eq!(lifecycle, expected);
    assert_eq!(count_events!(events, Event::RefreshStarted { .. }), 1);
    assert_eq!(count_events!(events, Event::IngestFailed { .. }), 0);

    // each source was loaded once, into a run of its own
    let mut ingested = Vec::new();
    for s in SOURCES {
        let loaded: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Ingested { source, report } if source == s => Some(report.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(loaded.len(), 1, "{s} is loaded once");
        let loaded = &loaded[0];
        assert!(!loaded.unchanged, "{s} is loaded, not found unchanged");
        assert!(
            loaded.tables.iter().all(|t| t.written > 0),
            "{s}: {:?}",
            loaded.tables
        );
        let rows: u64 = loaded.tables.iter().map(|t| t.written).sum();
        let outcome = report
            .processes
            .iter()
            .find(|o| o.process == Process::Ingestion(s.into()))
            .unwrap();
        assert_eq!(outcome.rows, Some(rows), "{s}: the rows it wrote");
        ingested.push((s, loaded.clone()));
    }

    // unification published its profiles
    let unified: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Unified(u) => Some(u.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(unified.len(), 1);
    let unified = &unified[0];
    assert!(unified.profiles > 0);
    let unify_run = unified
        .run_id
        .as_ref()
        .expect("a published unification has a run")
        .to_string();
    let unify_outcome = report
        .processes
        .iter()
        .find(|o| o.process == Process::Unification)
        .unwrap();
    assert_eq!(unify_outcome.rows, Some(unified.profiles as u64));
    for (what, n) in [
        ("Activities", count_events!(events, Event::Activities(_))),
        ("Measures", count_events!(events, Event::Measures(_))),
        ("Segments", count_events!(events, Event::Segments(_))),
        ("Reports", count_events!(events, Event::Reports(_))),
    ] {
        assert_eq!(n, 1, "{what} published once");
    }

    // what it published: Customer, one row per profile, in files of this refresh's
    // unification run; every source's tables in files of its own run
    let (_, model) = r.model("Unification");
    let files = r.partition_files(&model, "Customer");
    for f in &files {
        assert!(f.is_file(), "{} exists", f.display());
        assert!(
            f.to_string_lossy().contains(&unify_run),
            "{} is of the unification run {unify_run}",
            f.display()
        );
    }
    let lake = r.app.lake(&r.env).await.unwrap();
    let customers: usize = read_entity(&lake, "Unification", model.entity("Customer").unwrap())
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(customers, unified.profiles);
    for (source, loaded) in &ingested {
        // each table, and beside it its corrupt rows, with the rows the load reported
        let folder = format!("DataIngestion/{source}");
        let (_, model) = r.model(&folder);
        let run = loaded.run_id.to_string();
        let spec = r.app.show_source(&admin(), source).await.unwrap();
        assert_eq!(loaded.tables.len(), spec.tables.len(), "{source}");
        assert_eq!(model.entities.len(), 2 * spec.tables.len(), "{source}");
        for t in &loaded.tables {
            assert_eq!(t.read, t.written + t.corrupt, "{source}.{}", t.table);
            for (entity, rows) in [
                (t.table.clone(), t.written),
                (format!("{source}_{}_corrupt", t.table), t.corrupt),
            ] {
                let e = model
                    .entity(&entity)
                    .unwrap_or_else(|| panic!("{folder} names {entity}"));
                for p in &e.partitions {
                    let f = common::file_of(&p.location);
                    assert!(f.is_file(), "{} exists", f.display());
                    assert!(
                        f.to_string_lossy().contains(&run),
                        "{} is of run {run}",
                        f.display()
                    );
                }
                let published: usize = read_entity(&lake, &folder, e)
                    .await
                    .unwrap()
                    .iter()
                    .map(|b| b.num_rows())
                    .sum();
                assert_eq!(published as u64, rows, "{folder}/{entity}");
            }
        }
    }
    for folder in ["Activities", "Measures", "Segments", "Reports"] {
        let (_, model) = r.model(folder);
        assert!(!model.entities.is_empty(), "{folder} publishes tables");
        for e in &model.entities {
            for f in r.partition_files(&model, &e.name) {
                assert!(f.is_file(), "{folder}: {} exists", f.display());
            }
        }
    }

    // the runs recorded: the refresh among the environment's runs, its processes under it
    // with the statuses and rows of the report
    let (_, runs) = r.app.runs(&admin(), None, 50).await.unwrap();
    let listed = runs
        .iter()
        .find(|run| run.id == report.run)
        .expect("the refresh is listed");
    assert_eq!(listed.process, "refresh");
    assert_eq!(listed.status, RunStatus::Succeeded);
    assert!(listed.finished_at.is_some());
    assert!(
        runs.iter().all(|run| run.parent.is_none()),
        "processes are listed under their refresh only"
    );
    let (env, run, children) = r.app.run(&admin(), &report.run.to_string()).await.unwrap();
    assert_eq!(env.id, r.env.id);
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.error, None);
    assert_eq!(children.len(), report.processes.len());
    for o in &report.processes {
        let child = children
            .iter()
            .find(|c| c.process == o.process.to_string())
            .unwrap_or_else(|| panic!("a run of {}", o.process));
        assert_eq!(child.parent.as_ref(), Some(&report.run));
        assert_eq!(child.status, o.status, "{}", o.process);
        assert_eq!(child.rows, o.rows, "{}", o.process);
        assert!(child.finished_at.is_some(), "{}", o.process);
    }
    // the lease is released
    assert!(!r.env_folder().join("_lakecdp/leases/refresh.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_canceled_during_unification_publishes_nothing_of_it_and_records_the_cancel() {
    let r = retail().await;
    r.full_refresh(Arc::new(lakecdp_app::Silent)).await;
    let (before, model) = r.model("Unification");
    let files = r.partition_files(&model, "Customer");
    let contents: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();

    // the sources are loaded again, and the refresh is canceled once unification runs
    let token = CancellationToken::new();
    let observer = Arc::new(CancelWhen {
        token: token.clone(),
        when: |e: &Event| matches!(e, Event::Unifying { .. }),
        events: Recorder::default(),
    });
    let report = r
        .app
        .refresh(
            &admin(),
            &RefreshRequest {
                force: true,
                ..Default::default()
            },
            token.clone(),
            observer.clone(),
        )
        .await
        .unwrap();
    assert!(token.is_cancelled(), "unification started");
    assert_eq!(report.status, RunStatus::Canceled);
    let unify = report
        .processes
        .iter()
        .position(|o| o.process == Process::Unification)
        .unwrap();
    for (i, o) in report.processes.iter().enumerate() {
        let expected = if i < unify {
            RunStatus::Succeeded
        } else {
            RunStatus::Canceled
        };
        assert_eq!(o.status, expected, "{o:?}");
    }
    assert!(
        report.processes[unify]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("canceled while running")),
        "{:?}",
        report.processes[unify]
    );
    let events = observer.events.events();
    assert_eq!(count_events!(events, Event::Canceling(_)), 1);
    assert_eq!(count_events!(events, Event::Unified(_)), 0);
    assert_eq!(count_events!(events, Event::Ingested { .. }), 3);
    // every process after unification is reported canceled without starting
    let started: Vec<Process> = events
        .iter()
        .filter_map(|e| match e {
            Event::ProcessStarted(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(started.last(), Some(&Process::Unification));
    assert_eq!(
        count_events!(events, Event::ProcessFinished(_)),
        report.processes.len()
    );

    // the runs say so
    let (_, run, children) = r.app.run(&admin(), &report.run.to_string()).await.unwrap();
    assert_eq!(run.status, RunStatus::Canceled);
    assert!(run.finished_at.is_some());
    assert_eq!(children.len(), report.processes.len());
    for o in &report.processes {
        let child = children
            .iter()
            .find(|c| c.process == o.process.to_string())
            .unwrap_or_else(|| panic!("a run of {}", o.process));
        assert_eq!(child.status, o.status, "{}", o.process);
        assert!(child.finished_at.is_some(), "{}", o.process);
    }

    // the previous unification is still what is published, with all its files
    let (after, _) = r.model("Unification");
    assert!(before == after, "Unification/model.json is unchanged");
    for (f, c) in files.iter().zip(&contents) {
        assert_eq!(
            &std::fs::read(f).unwrap(),
            c,
            "{} is unchanged",
            f.display()
        );
    }
    // and the lease is released for the next refresh
    assert!(!r.env_folder().join("_lakecdp/leases/refresh.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_is_refused_while_another_holds_the_lease() {
    let r = retail().await;
    let lake = r.app.lake(&r.env).await.unwrap();
    let lease = Lease::acquire(
        &lake,
        "refresh",
        "the refresh of environment `retail-demo`",
        "refresh by someone (run X)",
        Duration::from_secs(600),
    )
    .await
    .unwrap();

    let e = r
        .app
        .refresh(
            &admin(),
            &RefreshRequest::default(),
            CancellationToken::new(),
            Arc::new(Recorder::default()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.full_message());
    assert!(
        e.full_message()
            .contains("is held by refresh by someone (run X)"),
        "{}",
        e.full_message()
    );
    // nothing ran, nothing was recorded
    let (_, runs) = r.app.runs(&admin(), None, 50).await.unwrap();
    assert!(runs.iter().all(|run| run.process != "refresh"), "{runs:?}");
    assert!(!r.env_folder().join("Unification/model.json").exists());

    // once released, a refresh runs
    lease.release().await.unwrap();
    let report = r
        .app
        .refresh(
            &admin(),
            &RefreshRequest {
                only: Some("reports".into()),
                ..Default::default()
            },
            CancellationToken::new(),
            Arc::new(Recorder::default()),
        )
        .await
        .unwrap();
    let (_, runs) = r.app.runs(&admin(), None, 50).await.unwrap();
    assert!(runs.iter().any(|run| run.id == report.run));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_left_running_is_closed_as_failed_by_the_next_one() {
    let r = retail().await;
    let catalog = r.app.catalog();
    let stale = RunRecord::start(r.env.id, "refresh");
    catalog.record_run(&stale).await.unwrap();
    let stale_child = RunRecord::child(&stale, "unify");
    catalog.record_run(&stale_child).await.unwrap();
    // an export run still Running is no refresh: it is left alone
    let export = RunRecord::start(r.env.id, "export:nightly");
    catalog.record_run(&export).await.unwrap();

    let recorder = Arc::new(Recorder::default());
    let report = r
        .app
        .refresh(
            &admin(),
            &RefreshRequest {
                only: Some("reports".into()),
                ..Default::default()
            },
            CancellationToken::new(),
            recorder.clone(),
        )
        .await
        .unwrap();
    assert_ne!(report.run, stale.id);
    let events = recorder.events();
    assert_eq!(count_events!(events, Event::Warning(_)), 0, "{events:?}");

    let (_, run, children) = r.app.run(&admin(), &stale.id.to_string()).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.finished_at.is_some());
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains("interrupted")),
        "{:?}",
        run.error
    );
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].status, RunStatus::Failed);
    assert!(children[0].finished_at.is_some());
    assert!(
        children[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("interrupted")),
        "{:?}",
        children[0].error
    );
    let (_, export, _) = r.app.run(&admin(), &export.id.to_string()).await.unwrap();
    assert_eq!(export.status, RunStatus::Running);
    // the new refresh itself ended
    let (_, new, _) = r.app.run(&admin(), &report.run.to_string()).await.unwrap();
    assert!(new.status.is_final(), "{new:?}");
}

/// Takes the refresh lease over (as a refresh on another host would once it expired)
/// when unification starts.
struct TakeOverAtUnification {
    lease_file: std::path::PathBuf,
}

impl lakecdp_app::Observer for TakeOverAtUnification {
    fn event(&self, e: &Event) {
        if matches!(e, Event::Unifying { .. }) {
            let mut info: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&self.lease_file).unwrap()).unwrap();
            info["token"] = "another-holder".into();
            info["holder"] = "refresh by intruder (run Y)".into();
            info["host"] = "another-host".into();
            std::fs::write(&self.lease_file, serde_json::to_vec(&info).unwrap()).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_whose_lease_was_taken_over_publishes_nothing_more() {
    let r = retail().await;
    r.full_refresh(Arc::new(lakecdp_app::Silent)).await;
    let (before, _) = r.model("Unification");
    let report = r
        .app
        .refresh(
            &admin(),
            &RefreshRequest {
                force: true,
                ..Default::default()
            },
            CancellationToken::new(),
            Arc::new(TakeOverAtUnification {
                lease_file: r.env_folder().join("_lakecdp/leases/refresh.json"),
            }),
        )
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let unify = report
        .processes
        .iter()
        .find(|o| o.process == Process::Unification)
        .unwrap();
    assert_eq!(unify.status, RunStatus::Failed);
    assert!(
        unify
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("was taken over by refresh by intruder")),
        "{unify:?}"
    );
    // the unification of the holder that lost the lease was not published
    let (after, _) = r.model("Unification");
    assert!(before == after, "Unification/model.json is unchanged");
    // and the new holder's lease was left alone
    let info: serde_json::Value = serde_json::from_slice(
        &std::fs::read(r.env_folder().join("_lakecdp/leases/refresh.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(info["token"], "another-holder");
}

/// The unification report a refresh's events carry.
fn unified(recorder: &Recorder) -> Arc<lakecdp_app::reports::UnifyReport> {
    recorder
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::Unified(r) => Some(r),
            _ => None,
        })
        .expect("the refresh unified")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_after_a_source_changed_unifies_only_what_changed_unless_asked_for_all() {
    use lakecdp_app::reports::UnifyMode;
    let r =
        common::retail_with(|p| p.replace("[unification]", "[unification]\nincremental = true"))
            .await;
    let first = Arc::new(Recorder::default());
    r.full_refresh(first.clone()).await;
    assert!(matches!(unified(&first).mode, UnifyMode::Full { .. }));

    // a contact's row changes in the CRM file: its load and the unification run again
    let file = r.dir.path().join("data/crm_contacts.csv");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let city = header
        .iter()
        .position(|c| *c == "City")
        .expect("a City column");
    let row = (1..lines.len())
        .find(|i| lines[*i].split(',').count() == header.len())
        .unwrap();
    let mut fields: Vec<String> = lines[row].split(',').map(str::to_string).collect();
    fields[city] = "Somewhere Else".into();
    lines[row] = fields.join(",");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let second = Arc::new(Recorder::default());
    let report = r
        .app
        .refresh(
            &admin(),
            &RefreshRequest::default(),
            CancellationToken::new(),
            second.clone(),
        )
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    match &unified(&second).mode {
        UnifyMode::Incremental {
            changed,
            rematched,
            kept,
            ..
        } => {
            assert_eq!(*changed, 1, "one record changed");
            assert!(*rematched >= 1 && *kept > *rematched, "{rematched} {kept}");
        }
        other => panic!("{other:?}"),
    }

    // asked for, everything is matched again
    let third = Arc::new(Recorder::default());
    r.app
        .refresh(
            &admin(),
            &RefreshRequest {
                force: true,
                full_unify: true,
                ..Default::default()
            },
            CancellationToken::new(),
            third.clone(),
        )
        .await
        .unwrap();
    assert!(matches!(
        &unified(&third).mode,
        UnifyMode::Full { reason } if reason.contains("asked for")
    ));
}
