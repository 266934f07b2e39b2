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
use lakecdp_lake::partition::read_entity;

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

/// A match model on the shop's customers against the CRM, beside the quickstart's rules.
const SHOP_MODEL: &str = r#"match_model = [{ with = "Crm.Contacts", with_columns = { postal_code = "PostalCode" }, block = [["last_name", "postal_code"], ["email"], ["phone"]], compare = [
  { column = "first_name", with = "FirstName" }, { column = "last_name", with = "LastName" },
  { column = "email", with = "Email" }, { column = "phone", with = "Phone" },
  { column = "address_line1", with = "Street" },
] }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_match_model_is_trained_stored_reused_and_explained() {
    let r = retail().await;
    // the project with a match model, applied
    let path = r.path().join("lakecdp.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let anchor = "source = \"Shop\"\ntable = \"Customers\"\n";
    assert!(text.contains(anchor));
    std::fs::write(
        &path,
        text.replacen(anchor, &format!("{anchor}{SHOP_MODEL}"), 1),
    )
    .unwrap();
    r.app.apply(&admin(), false, &Silent).await.unwrap();

    // a Viewer may not train; an Admin trains and stores the model, publishing nothing
    r.app
        .set_role(&admin(), None, "vic", Some(lakecdp_core::Role::Viewer))
        .await
        .unwrap();
    let denied = r
        .app
        .train_unification(&lakecdp_app::Actor::named("vic"), None)
        .await
        .unwrap_err();
    assert_eq!(
        denied.kind(),
        ErrorKind::Denied,
        "{}",
        denied.full_message()
    );
    r.full_refresh(Arc::new(Silent)).await;
    let lake = r.app.lake(&r.env).await.unwrap();
    let stored = "_lakecdp/models/match_Shop_Customers__Crm_Contacts.json";
    let first = lake.get(stored).await.unwrap();
    let trained = r.app.train_unification(&admin(), None).await.unwrap();
    assert_eq!(trained.run_id, None, "training publishes nothing");
    let m = &trained.models[0];
    assert!(m.trained && m.candidates > 0 && m.matched > 0, "{m:?}");
    let retrained = lake.get(stored).await.unwrap();
    assert_ne!(retrained, first, "stored anew");

    // the next refresh reuses it (the stored model is left as it is); the pairs it
    // joined are explained weight by weight
    r.full_refresh(Arc::new(Silent)).await;
    assert_eq!(
        lake.get(stored).await.unwrap(),
        retrained,
        "the stored model is reused"
    );
    let (_, model) = r.model("Unification");
    let pairs = read_entity(
        &lake,
        "Unification",
        model.entity("ConflationMatchPairs").unwrap(),
    )
    .await
    .unwrap();
    let keys = read_entity(&lake, "Unification", model.entity("AlternateKey").unwrap())
        .await
        .unwrap();
    let mut by_key: BTreeMap<(String, String), String> = BTreeMap::new();
    for b in &keys {
        let (t, k, id) = (
            strings(b, "TableName"),
            strings(b, "AlternateValue"),
            strings(b, "CustomerId"),
        );
        for i in 0..t.len() {
            by_key.insert((t[i].clone(), k[i].clone()), id[i].clone());
        }
    }
    let mut model_pair = None;
    for b in &pairs {
        let (rule, key, score) = (strings(b, "Rule"), strings(b, "KeyA"), strings(b, "Score"));
        if let Some(i) = rule.iter().position(|x| x == "model") {
            model_pair = Some((key[i].clone(), score[i].parse::<f64>().unwrap()));
            break;
        }
    }
    let (key, score) = model_pair.expect("the model joined a pair");
    let id = &by_key[&("Customers".to_string(), key.clone())];
    let e = r.app.explain(&admin(), id).await.unwrap();
    let w = e
        .weights
        .iter()
        .find(|w| w.record == format!("Customers:{key}"))
        .expect("the model's pair is explained");
    assert_eq!(w.rows[0].column, "prior");
    let columns: Vec<&str> = w.rows.iter().map(|r| r.column.as_str()).collect();
    for c in ["first_name", "last_name", "email", "phone", "address_line1"] {
        assert!(columns.contains(&c), "{columns:?}");
    }
    let sum: f64 = w.rows.iter().map(|r| r.weight).sum();
    assert!((sum - w.weight).abs() < 1e-9);
    assert!(w.probability > 0.5, "{w:?}");
    // the waterfall weighs as the run did, term frequencies included: its probability
    // is the one the run published for the pair
    assert!(
        (w.probability - score).abs() < 1e-4,
        "explained {} against {score} published: {w:?}",
        w.probability
    );
    for row in &w.rows {
        if let Some(share) = row.term_frequency {
            assert_eq!(row.level, "exact", "{row:?}");
            assert!(share > 0.0 && share < 1.0, "{row:?}");
        }
    }
    assert!(
        w.rows.iter().any(|r| r.term_frequency.is_some()),
        "an exact name agreement weighs by the name's share: {w:?}"
    );
    // a model stored before its counts were kept is explained by counting the tables,
    // with the same result on the same records
    let mut old: serde_json::Value =
        serde_json::from_slice(&lake.get(stored).await.unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("terms");
    lake.put(stored, serde_json::to_vec(&old).unwrap())
        .await
        .unwrap();
    let counted = r.app.explain(&admin(), id).await.unwrap();
    let again = counted
        .weights
        .iter()
        .find(|x| x.record == w.record)
        .expect("explained again");
    assert!(
        (again.weight - w.weight).abs() < 1e-6,
        "{again:?} against {w:?}"
    );
    for (a, b) in again.rows.iter().zip(&w.rows) {
        assert_eq!((&a.column, &a.level), (&b.column, &b.level));
        assert_eq!(a.term_frequency.is_some(), b.term_frequency.is_some());
    }
}

fn strings(batch: &arrow::record_batch::RecordBatch, column: &str) -> Vec<String> {
    let c = arrow::compute::cast(batch.column_by_name(column).unwrap(), &DataType::Utf8).unwrap();
    let c = c.as_any().downcast_ref::<StringArray>().unwrap();
    (0..c.len())
        .map(|i| {
            if c.is_null(i) {
                String::new()
            } else {
                c.value(i).to_string()
            }
        })
        .collect()
}
