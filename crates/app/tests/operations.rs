//! Operations on a refreshed environment through `App`: an export to a local folder,
//! explain and the previews.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;
use lakecdp_app::connections::NewConnection;
use lakecdp_app::exports::NewExport;
use lakecdp_app::{ErrorKind, Event, Recorder, RefreshReport, Silent};
use lakecdp_core::{ConnectionKind, Process, RunStatus};
use lakecdp_lake::cdm::Model;

#[macro_use]
mod common;
use common::{admin, file_of, retail, Retail};

/// The profiles the refresh published.
fn profiles(report: &RefreshReport) -> u64 {
    report
        .processes
        .iter()
        .find(|o| o.process == Process::Unification)
        .and_then(|o| o.rows)
        .expect("unification reports its profiles")
}

/// A refreshed retail quickstart, and its profiles.
async fn refreshed() -> (Retail, u64) {
    let r = retail().await;
    let report = r.full_refresh(Arc::new(Silent)).await;
    let n = profiles(&report);
    (r, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_to_a_local_folder_sends_the_customers_and_is_recorded() {
    let (r, profiles) = refreshed().await;
    let destination = tempfile::tempdir().unwrap();
    let connection = r
        .app
        .add_connection(
            &admin(),
            NewConnection {
                name: "folder".into(),
                kind: "local".into(),
                usable_by: "contributors".into(),
                settings: BTreeMap::from([(
                    "path".to_string(),
                    destination.path().display().to_string(),
                )]),
                secrets: BTreeMap::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(connection.kind, ConnectionKind::Local);
    let (export, used) = r
        .app
        .add_export(
            &admin(),
            NewExport {
                name: "customers".into(),
                connection: "folder".into(),
                tables: vec!["Unification/Customer".into()],
                schedule: "off".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(used.id, connection.id);
    assert_eq!(export.connection_id, connection.id);

    let recorder = Recorder::default();
    let ran = r
        .app
        .run_exports(&admin(), Some("customers"), &recorder)
        .await
        .unwrap();
    assert_eq!(ran, ["customers"]);

    // the events: started with one table, the table sent, finished without error
    let events = recorder.events();
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::ExportStarted { .. } => Some("started"),
            Event::ExportedTable { .. } => Some("table"),
            Event::ExportFinished { .. } => Some("finished"),
            Event::ExportFailed { .. } => Some("failed"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["started", "table", "finished"], "{events:?}");
    for e in &events {
        match e {
            Event::ExportStarted {
                export,
                tables,
                destination: to,
            } => {
                assert_eq!(export, "customers");
                assert_eq!(*tables, 1);
                assert!(!to.is_empty());
            }
            Event::ExportedTable { export, table } => {
                assert_eq!(export, "customers");
                assert_eq!(table.name, "Customer");
                assert_eq!(table.rows, profiles);
                assert!(table.bytes > 0);
                assert_eq!(table.error, None);
            }
            Event::ExportFinished {
                export,
                rows,
                tables,
                error,
                ..
            } => {
                assert_eq!(export, "customers");
                assert_eq!(*rows, profiles);
                assert_eq!(*tables, 1);
                assert_eq!(error, &None);
            }
            _ => {}
        }
    }

    // the destination: a model.json naming Customer, its rows in the files it names
    let folder = destination
        .path()
        .join(format!("CustomerInsights_{}", r.env.id))
        .join("customers");
    let model: Model =
        serde_json::from_slice(&std::fs::read(folder.join("model.json")).unwrap()).unwrap();
    let customer = model.entity("Customer").expect("model.json names Customer");
    assert!(!customer.partitions.is_empty());
    let mut rows = 0;
    for p in &customer.partitions {
        let file = file_of(&p.location);
        assert!(
            file.starts_with(destination.path().canonicalize().unwrap()),
            "{} is in the destination",
            file.display()
        );
        let text = std::fs::read_to_string(&file).unwrap();
        let header = p
            .file_format_settings
            .as_ref()
            .is_some_and(|s| s.column_headers);
        rows += text.lines().count() - usize::from(header);
    }
    assert_eq!(rows as u64, profiles);

    // the run is recorded with what it sent
    let shown = r.app.show_export(&admin(), "customers").await.unwrap();
    assert_eq!(
        shown.connection,
        Some(("folder".to_string(), ConnectionKind::Local))
    );
    assert_eq!(shown.runs.len(), 1, "{:?}", shown.runs);
    let run = &shown.runs[0];
    assert_eq!(run.process, "export:customers");
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.rows, Some(profiles));
    assert!(run.finished_at.is_some());
    let (_, listed) = r.app.list_exports(&admin(), None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].runs.first().map(|r| &r.id), Some(&run.id));
}

/// The CustomerIds of a record batch, as text.
fn customer_ids(batch: &arrow::record_batch::RecordBatch) -> Vec<String> {
    let column = batch
        .column_by_name("CustomerId")
        .expect("a CustomerId column");
    let text = arrow::compute::cast(column, &DataType::Utf8).unwrap();
    let text = text.as_any().downcast_ref::<StringArray>().unwrap();
    (0..text.len())
        .filter(|&i| !text.is_null(i))
        .map(|i| text.value(i).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_a_profiles_records_and_preview_publishes_nothing() {
    let (r, profiles) = refreshed().await;

    // every profile has a CustomerId: the condition selects them all
    let (count, sample) = r
        .app
        .preview_segment(&admin(), "CustomerId is not empty", 5)
        .await
        .unwrap();
    assert_eq!(count, profiles);
    let ids = customer_ids(&sample);
    assert_eq!(ids.len(), 5);

    // a profile's source records, its merged row, and for a merged profile what joined
    let mut merged = 0;
    for id in &ids {
        let e = r.app.explain(&admin(), id).await.unwrap();
        assert_eq!(&e.customer_id, id);
        assert!(!e.customer.is_empty(), "{id}: the merged row");
        assert!(
            e.customer.iter().any(|(_, v)| !v.is_empty()),
            "{id}: {:?}",
            e.customer
        );
        assert!(!e.records.is_empty(), "{id}: its records");
        for rec in &e.records {
            assert!(
                ["Crm", "Shop", "Loyalty"].contains(&rec.source.as_str()),
                "{rec:?}"
            );
            assert!(!rec.key.is_empty(), "{rec:?}");
            assert!(
                !rec.values.is_empty(),
                "{id}: the mapped columns of {rec:?}"
            );
        }
        if e.records.len() > 1 {
            merged += 1;
            assert!(!e.pairs.is_empty(), "{id}: what joined {:?}", e.records);
        }
    }
    assert!(merged > 0, "the sample holds a merged profile");

    let e = r.app.explain(&admin(), "nope").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{}", e.full_message());

    // a preview unifies a sample and publishes nothing
    let (before, _) = r.model("Unification");
    let preview = r
        .app
        .preview_unification(&admin(), None, 100)
        .await
        .unwrap();
    assert_eq!(preview.run_id, None);
    assert!(preview.profiles > 0);
    assert!(
        preview.profiles <= 300,
        "at most the 3 × 100 records sampled: {}",
        preview.profiles
    );
    let (after, _) = r.model("Unification");
    assert!(before == after, "Unification/model.json is unchanged");
}

#[tokio::test]
async fn exports_go_only_to_the_schemas_their_connection_allows() {
    let r = retail().await;
    r.app
        .add_connection(
            &admin(),
            NewConnection {
                name: "warehouse".into(),
                kind: "postgresql".into(),
                usable_by: "contributors".into(),
                settings: BTreeMap::from(
                    [
                        ("host", "127.0.0.1"),
                        ("user", "cdp"),
                        ("schemas", "crm.cdp, analytics.*"),
                    ]
                    .map(|(k, v)| (k.to_string(), v.to_string())),
                ),
                secrets: BTreeMap::new(),
            },
        )
        .await
        .unwrap();
    let export = |name: &str, database: &str, schema: Option<&str>| NewExport {
        name: name.into(),
        connection: "warehouse".into(),
        tables: vec!["Unification/Customer".into()],
        schedule: "off".into(),
        database: Some(database.into()),
        schema: schema.map(str::to_string),
    };
    // at configuration time: another schema, or the default one, is refused
    for (database, schema) in [("crm", Some("public")), ("crm", None), ("hr", Some("cdp"))] {
        let err = r
            .app
            .add_export(&admin(), export("x", database, schema))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
        assert!(err.to_string().contains("`schemas`"), "{err}");
    }
    r.app
        .add_export(&admin(), export("crm", "crm", Some("cdp")))
        .await
        .unwrap();
    r.app
        .add_export(&admin(), export("any", "analytics", Some("whatever")))
        .await
        .unwrap();
    let err = r
        .app
        .edit_export(
            &admin(),
            "crm",
            lakecdp_app::exports::ExportChanges {
                schema: Some("public".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");

    // at run time: an Admin narrowed the connection since; the run is refused before
    // anything is sent
    r.app
        .edit_connection(
            &admin(),
            "warehouse",
            lakecdp_app::connections::ConnectionChanges {
                set: BTreeMap::from([("schemas".to_string(), "analytics.*".to_string())]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(r
        .app
        .run_exports(&admin(), Some("crm"), &Silent)
        .await
        .is_err());
    let shown = r.app.show_export(&admin(), "crm").await.unwrap();
    let error = shown.runs[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("does not allow exports to schema `cdp` of database `crm`"),
        "{error}"
    );
}
