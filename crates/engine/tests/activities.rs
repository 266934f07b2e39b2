//! Activities end to end on a local lake: sources are ingested and unified, then order
//! rows are linked to profiles through AlternateKey.

use std::collections::BTreeMap;

use lakecdp_core::{ActivitySpec, ColumnType, CustomerLink, UnificationSpec};
use lakecdp_engine::activities;
use lakecdp_engine::ingest::{ingest_source, IngestOptions};
use lakecdp_engine::unify::{unify, UnifyOptions};
use lakecdp_engine::{EngineKind, Session};
use lakecdp_lake::partition::read_entity;
use lakecdp_lake::publish::read_model;
use lakecdp_lake::{Lake, Process};

mod common;
use common::{csv_source as source, lake, strings, unified};

async fn activity_entity(lake: &Lake, name: &str) -> arrow::record_batch::RecordBatch {
    let model = read_model(lake, &Process::Activities)
        .await
        .unwrap()
        .expect("published");
    let e = model.entity(name).expect("entity");
    let batches = read_entity(lake, "Activities", e).await.unwrap();
    arrow::compute::concat_batches(&lakecdp_lake::partition::entity_schema(e), &batches).unwrap()
}

#[tokio::test]
async fn orders_are_linked_to_profiles_and_left_out_rows_are_kept_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crm.csv"), "Id,Email\nA1,ann@x\nA2,bob@x\n").unwrap();
    std::fs::write(dir.path().join("shop.csv"), "Cid,mail\nS1,ann@x\nS2,cy@x\n").unwrap();
    std::fs::write(
        dir.path().join("orders.csv"),
        "OrderId,Cid,At,Amount,Channel\n\
         O1,S1,2026-11-01T10:00:00Z,10.5,Web\n\
         O2,S2,2026-11-02T10:00:00Z,20,Shop\n\
         O3,S1,2026-11-03T10:00:00Z,\"1,5\",Web\n\
         O4,,2026-11-04T10:00:00Z,7,Web\n\
         O5,S9,2026-11-05T10:00:00Z,8,Web\n",
    )
    .unwrap();
    let lake = lake(dir.path());
    use ColumnType::String as S;
    let sources = vec![
        source(
            "Crm",
            "Contacts",
            "crm.csv",
            "Id",
            &[("Id", S), ("Email", S)],
        ),
        source(
            "Shop",
            "Customers",
            "shop.csv",
            "Cid",
            &[("Cid", S), ("mail", S)],
        ),
        source(
            "Shop2",
            "Orders",
            "orders.csv",
            "OrderId",
            &[
                ("OrderId", S),
                ("Cid", S),
                ("At", ColumnType::DateTime),
                ("Amount", S),
                ("Channel", S),
            ],
        ),
    ];
    for s in &sources {
        ingest_source(&lake, s, dir.path(), &IngestOptions::default())
            .await
            .unwrap();
    }
    #[derive(serde::Deserialize)]
    struct W {
        unification: UnificationSpec,
    }
    let rules = toml::from_str::<W>(
        r#"
[unification]
[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [{ name = "Email", type = "Identity.Email" }]
[[unification.tables]]
source = "Shop"
table = "Customers"
match = [{ with = "Crm.Contacts", conditions = [{ column = "mail", with = "Email" }] }]
"#,
    )
    .unwrap()
    .unification;
    unify(&lake, &sources, &rules, &UnifyOptions::default())
        .await
        .unwrap();
    let ak = unified(&lake, "AlternateKey").await;
    let id_of: BTreeMap<String, String> = strings(&ak, "AlternateValue")
        .into_iter()
        .zip(strings(&ak, "CustomerId"))
        .collect();

    let spec = ActivitySpec {
        name: "Orders".into(),
        source: "Shop2".into(),
        table: "Orders".into(),
        primary_key: None,
        activity_type: "SalesOrder".into(),
        customer: CustomerLink {
            table: "Shop.Customers".into(),
            column: "Cid".into(),
        },
        timestamp: "At".into(),
        title: Some("Channel".into()),
        description: None,
        url: None,
    };
    let session = Session::new(&EngineKind::Local, lake.clone())
        .await
        .unwrap();
    let report = activities::run(&session, &sources, std::slice::from_ref(&spec), 3)
        .await
        .unwrap();
    let a = &report.activities[0];
    assert_eq!(
        (a.rows, a.linked, a.no_key, a.unmatched, a.no_time),
        (5, 3, 1, 1, 0)
    );

    let ua = activity_entity(&lake, "UnifiedActivity").await;
    assert_eq!(
        strings(&ua, "ActivityId"),
        ["Shop2.Orders:O1", "Shop2.Orders:O2", "Shop2.Orders:O3"]
    );
    // S1 is Ann's profile (matched with Crm A1); S2 is a profile of its own
    assert_eq!(
        strings(&ua, "CustomerId"),
        [
            id_of["S1"].clone(),
            id_of["S2"].clone(),
            id_of["S1"].clone()
        ]
    );
    assert_eq!(id_of["S1"], id_of["A1"]);
    assert_eq!(strings(&ua, "ActivityType"), ["SalesOrder"; 3]);
    assert_eq!(strings(&ua, "Title"), ["Web", "Shop", "Web"]);
    assert_eq!(strings(&ua, "Description"), ["∅"; 3]);
    assert_eq!(strings(&ua, "ActivityTimeStamp")[1], "2026-11-02T10:00:00");
    let semantic = strings(&ua, "SemanticData");
    let row: serde_json::Value = serde_json::from_str(&semantic[2]).unwrap();
    assert_eq!(row["Amount"], "1,5");
    assert_eq!(row["OrderId"], "O3");

    // the activity's own table carries CustomerId and the source columns
    let own = activity_entity(&lake, "Orders").await;
    assert_eq!(strings(&own, "OrderId"), ["O1", "O2", "O3"]);
    assert_eq!(strings(&own, "Amount"), ["10.5", "20", "1,5"]);

    // nothing is dropped silently
    let left = activity_entity(&lake, "UnmatchedActivity").await;
    assert_eq!(strings(&left, "SourceActivityId"), ["O4", "O5"]);
    assert_eq!(
        strings(&left, "Reason"),
        [
            "no customer key",
            "the customer key matches no unified profile"
        ]
    );

    // a source column named CustomerId does not stand in for the profile's id; a time
    // that is not a time and an empty id leave the row out with the reason
    std::fs::write(
        dir.path().join("visits.csv"),
        "VisitId,Cid,When,CustomerId\n\
         V1,S2,2026-11-10T08:00:00Z,not-a-profile\n\
         V2,S2,yesterday,x\n\
         ,S2,2026-11-11T08:00:00Z,y\n",
    )
    .unwrap();
    let mut visits = source(
        "Web",
        "Visits",
        "visits.csv",
        "VisitId",
        &[("VisitId", S), ("Cid", S), ("When", S), ("CustomerId", S)],
    );
    // no key at ingestion: the activity names its own
    visits.tables[0].primary_key = None;
    ingest_source(&lake, &visits, dir.path(), &IngestOptions::default())
        .await
        .unwrap();
    let mut all_sources = sources.clone();
    all_sources.push(visits);
    let visit_spec = ActivitySpec {
        name: "Visits".into(),
        source: "Web".into(),
        table: "Visits".into(),
        primary_key: Some("VisitId".into()),
        activity_type: "WebVisit".into(),
        customer: CustomerLink {
            table: "Shop.Customers".into(),
            column: "Cid".into(),
        },
        timestamp: "When".into(),
        title: None,
        description: None,
        url: None,
    };
    let r = activities::run(&session, &all_sources, &[spec.clone(), visit_spec], 3)
        .await
        .unwrap();
    let v = &r.activities[1];
    assert_eq!(
        (v.rows, v.linked, v.no_time, v.no_id),
        (3, 1, 1, 1),
        "{v:?}"
    );
    let ua = activity_entity(&lake, "UnifiedActivity").await;
    let ids = strings(&ua, "ActivityId");
    let at = ids.iter().position(|i| i == "Web.Visits:V1").unwrap();
    assert_eq!(strings(&ua, "CustomerId")[at], id_of["S2"]);
    let left = activity_entity(&lake, "UnmatchedActivity").await;
    let reasons = strings(&left, "Reason");
    assert!(
        reasons.iter().any(|r| r.starts_with("no time")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("no activity id")),
        "{reasons:?}"
    );

    // a column the table lacks is named
    let mut bad = spec;
    bad.timestamp = "When".into();
    let err = activities::run(&session, &sources, &[bad], 3)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("timestamp column `When` is not in `Shop2.Orders`"),
        "{err}"
    );
}
