//! Profile report data on a local lake: distributions of the unified profiles.

use std::collections::BTreeMap;

use chrono::TimeZone;
use lakecdp_core::{ColumnType, UnificationSpec};
use lakecdp_engine::ingest::{ingest_source, IngestOptions};
use lakecdp_engine::unify::{unify, UnifyOptions};
use lakecdp_engine::{reports, EngineKind, Session};
use lakecdp_lake::partition::read_entity;
use lakecdp_lake::publish::read_model;
use lakecdp_lake::{Lake, Process};

mod common;
use common::{csv_source, lake, strings};

async fn report(lake: &Lake, name: &str) -> BTreeMap<String, String> {
    let model = read_model(lake, &Process::Reports)
        .await
        .unwrap()
        .expect("published");
    let e = model.entity(name).unwrap_or_else(|| panic!("{name}"));
    let batches = read_entity(lake, "Reports", e).await.unwrap();
    let b = arrow::compute::concat_batches(&lakecdp_lake::partition::entity_schema(e), &batches)
        .unwrap();
    strings(&b, "Value")
        .into_iter()
        .zip(strings(&b, "Profiles"))
        .collect()
}

#[tokio::test]
async fn distributions_count_profiles_by_age_gender_income_place_and_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("crm.csv"),
        "Id,Email,Born,Sex,Town,Region,Land,Income\n\
         1,a@x,1990-06-01,F,Springfield,IL,US,30000\n\
         2,b@x,2010-01-01,M,Springfield,MA,US,\n\
         3,c@x,1950-01-01,F,Paris,,FR,250000\n\
         4,d@x,,,,,,\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("web.csv"), "Wid,mail\nW1,a@x\nW2,z@x\n").unwrap();
    let lake = lake(dir.path());
    use ColumnType::String as S;
    let sources = vec![
        csv_source(
            "Crm",
            "Contacts",
            "crm.csv",
            "Id",
            &[
                ("Id", S),
                ("Email", S),
                ("Born", ColumnType::Date),
                ("Sex", S),
                ("Town", S),
                ("Region", S),
                ("Land", S),
                ("Income", ColumnType::Double),
            ],
        ),
        csv_source(
            "Web",
            "Signups",
            "web.csv",
            "Wid",
            &[("Wid", S), ("mail", S)],
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
    let spec = toml::from_str::<W>(
        r#"
[unification]
[[unification.tables]]
source = "Crm"
table = "Contacts"
columns = [
  { name = "Email", type = "Identity.Email" },
  { name = "Born", type = "Person.BirthDate", rename = "BirthDate" },
  { name = "Sex", type = "Person.Gender", rename = "Gender" },
  { name = "Town", type = "Location.City", rename = "City" },
  { name = "Region", type = "Location.State", rename = "State" },
  { name = "Land", type = "Location.Country", rename = "Country" },
  { name = "Income", type = "Person.Income" },
]
[[unification.tables]]
source = "Web"
table = "Signups"
match = [{ with = "Crm.Contacts", conditions = [{ column = "mail", with = "Email" }] }]
"#,
    )
    .unwrap()
    .unification;
    unify(&lake, &sources, &spec, &UnifyOptions::default())
        .await
        .unwrap();
    let session = Session::new(&EngineKind::Local, lake.clone())
        .await
        .unwrap();
    let now = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    let r = reports::run(&session, &spec, now, 3).await.unwrap();
    assert_eq!(r.profiles, 5, "4 contacts and one web signup of its own");

    let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        report(&lake, "AgeBands").await,
        m(&[("35-44", "1"), ("<18", "1"), ("65+", "1"), ("unknown", "2")])
    );
    assert_eq!(
        report(&lake, "Genders").await,
        m(&[("F", "2"), ("M", "1"), ("unknown", "2")])
    );
    assert_eq!(
        report(&lake, "IncomeBands").await,
        m(&[("25k-50k", "1"), ("200k+", "1"), ("unknown", "3")])
    );
    assert_eq!(
        report(&lake, "Countries").await,
        m(&[("US", "2"), ("FR", "1"), ("unknown", "2")])
    );
    // the same city name in two states is two cities; a city without a state keeps its name
    assert_eq!(
        report(&lake, "Cities").await,
        m(&[
            ("Springfield, IL", "1"),
            ("Springfield, MA", "1"),
            ("Paris", "1"),
            ("unknown", "2")
        ])
    );
    assert_eq!(
        report(&lake, "ProfilesPerSource").await,
        m(&[("Crm.Contacts", "4"), ("Web.Signups", "2")])
    );
}
