//! Customer search and the customer card over the retail quickstart: typo queries,
//! whole-value keys, cards equal to the published tables, a rebuild after a refresh
//! that never serves a half-built index, and the Viewer role.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use lakecdp_app::{Actor, ErrorKind, Silent};
use lakecdp_lake::partition::read_entity;

use common::{admin, retail, Retail};

/// Every row of a published entity, as text by column name.
async fn table(r: &Retail, folder: &str, entity: &str) -> Vec<BTreeMap<String, String>> {
    let (_, model) = r.model(folder);
    let lake = r.app.lake(&r.env).await.unwrap();
    let batches: Vec<RecordBatch> = read_entity(&lake, folder, model.entity(entity).unwrap())
        .await
        .unwrap();
    let mut rows = Vec::new();
    for b in batches {
        let columns: Vec<(String, StringArray)> = b
            .schema()
            .fields()
            .iter()
            .zip(b.columns())
            .map(|(f, c)| {
                let t = cast(c, &DataType::Utf8).unwrap();
                (
                    f.name().clone(),
                    t.as_any().downcast_ref::<StringArray>().unwrap().clone(),
                )
            })
            .collect();
        for i in 0..b.num_rows() {
            rows.push(
                columns
                    .iter()
                    .filter(|(_, a)| !a.is_null(i))
                    .map(|(n, a)| (n.clone(), a.value(i).to_string()))
                    .collect(),
            );
        }
    }
    rows
}

/// A word with its two middle letters swapped: one transposition.
fn typo(word: &str) -> String {
    let mut c: Vec<char> = word.chars().collect();
    let m = c.len() / 2;
    c.swap(m - 1, m);
    c.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typos_find_profiles_and_cards_hold_what_was_published() {
    let r = retail().await;
    let search_dir = tempfile::tempdir().unwrap();
    r.app.set_search_dir(search_dir.path());
    r.full_refresh(Arc::new(Silent)).await;

    let customers = table(&r, "Unification", "Customer").await;
    let keys = table(&r, "Unification", "AlternateKey").await;
    let mut records: BTreeMap<String, BTreeSet<(String, String, String)>> = BTreeMap::new();
    for k in &keys {
        records.entry(k["CustomerId"].clone()).or_default().insert((
            k["DataSourceName"].clone(),
            k["TableName"].clone(),
            k["AlternateValue"].clone(),
        ));
    }
    let activities = table(&r, "Activities", "UnifiedActivity").await;
    let active: BTreeSet<&str> = activities
        .iter()
        .map(|a| a["CustomerId"].as_str())
        .collect();
    // a profile of several records, with activities, whose names are long enough for
    // a typo
    let target = customers
        .iter()
        .find(|c| {
            records[&c["CustomerId"]].len() >= 2
                && active.contains(c["CustomerId"].as_str())
                && c.get("FirstName").is_some_and(|n| n.len() >= 5)
                && c.get("LastName").is_some_and(|n| n.len() >= 5)
                && c.contains_key("Email")
        })
        .expect("the quickstart has merged profiles with names and emails");
    let id = &target["CustomerId"];

    // a typo in each name
    let query = format!(
        "{} {}",
        typo(&target["FirstName"]),
        typo(&target["LastName"])
    );
    let found = r
        .app
        .search_customers(&admin(), &query, 0, 20)
        .await
        .unwrap();
    assert!(
        found.hits.iter().any(|h| &h.customer_id == id),
        "`{query}` finds {id}: {found:?}"
    );
    assert_eq!(found.index.profiles as usize, customers.len());
    assert!(found.total >= 1);
    // the summary is the profile's
    let hit = found.hits.iter().find(|h| &h.customer_id == id).unwrap();
    assert_eq!(hit.summary.email, target["Email"]);
    assert!(hit.summary.name.contains(&target["LastName"]), "{hit:?}");

    // a whole email, in capitals, ranks its profile first
    let email = target["Email"].to_uppercase();
    let found = r
        .app
        .search_customers(&admin(), &email, 0, 5)
        .await
        .unwrap();
    assert_eq!(&found.hits[0].customer_id, id, "{found:?}");
    // and so does the CustomerId
    let found = r.app.search_customers(&admin(), id, 0, 5).await.unwrap();
    assert_eq!(&found.hits[0].customer_id, id);

    // the card holds the published profile, records, measures, segments, activities
    let card = r.app.customer_card(&admin(), id).await.unwrap();
    assert_eq!(&card.customer_id, id);
    let profile: BTreeMap<String, String> = card.profile.iter().cloned().collect();
    for (column, value) in target
        .iter()
        .filter(|(c, v)| *c != "CustomerId" && !v.trim().is_empty())
    {
        assert_eq!(profile.get(column), Some(value), "{column}");
    }
    let card_records: BTreeSet<(String, String, String)> = card
        .records
        .iter()
        .map(|r| (r.source.clone(), r.table.clone(), r.key.clone()))
        .collect();
    assert_eq!(card_records, records[id]);
    let measures = table(&r, "Measures", "Customer_Measure").await;
    let mine = measures.iter().find(|m| &m["CustomerId"] == id);
    assert_eq!(
        card.measures.len(),
        mine.map_or(0, |m| m.len() - 1),
        "one value per measure the profile has: {:?}",
        card.measures
    );
    let memberships = table(&r, "Segments", "SegmentMembership").await;
    let segments: Vec<String> = memberships
        .iter()
        .find(|m| &m["CustomerId"] == id)
        .map(|m| serde_json::from_str(&m["Segments"]).unwrap())
        .unwrap_or_default();
    assert_eq!(card.segments, segments);
    let mut times: Vec<String> = activities
        .iter()
        .filter(|a| &a["CustomerId"] == id)
        .map(|a| a["ActivityTimeStamp"].clone())
        .collect();
    times.sort_by(|a, b| b.cmp(a));
    times.truncate(lakecdp_app::search::CARD_ACTIVITIES);
    let card_times: Vec<String> = card.activities.iter().map(|a| a.time.clone()).collect();
    assert!(!times.is_empty(), "the profile has activities");
    assert_eq!(card_times, times, "the latest activities, newest first");

    // an unknown id is not found; a principal without a role is refused
    let missing = r
        .app
        .customer_card(&admin(), "no-such-id")
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    let stranger = Actor::named("stranger");
    let refused = r
        .app
        .search_customers(&stranger, "smith", 0, 5)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Denied, "{refused}");
    let refused = r.app.customer_card(&stranger, id).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Denied, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_rebuilds_the_index_which_is_swapped_in_whole() {
    let r = retail().await;
    let search_dir = tempfile::tempdir().unwrap();
    r.app.set_search_dir(search_dir.path());
    r.full_refresh(Arc::new(Silent)).await;
    let before = r
        .app
        .search_customers(&admin(), "Quetzalli", 0, 5)
        .await
        .unwrap();
    assert_eq!(before.total, 0);
    let old_stamp = before.index.stamp.clone();
    let old_profiles = before.index.profiles;

    // a new CRM contact with a name no one else has
    let crm = r.path().join("data/crm_contacts.csv");
    let mut text = std::fs::read_to_string(&crm).unwrap();
    text.push_str(
        "ffffffff-0000-4000-8000-000000000001,Quetzalli,Zyxwvut,Quetzalli Zyxwvut,\
         quetzalli@zyx.example,+1 (512) 555-0000,1 Main St,Fargo,58103,ND,US,1990-01-01,\
         2024-01-01T00:00:00Z,2024-01-01T00:00:00Z\n",
    );
    std::fs::write(&crm, text).unwrap();
    r.full_refresh(Arc::new(Silent)).await;

    // every answer comes from one whole index: the old one without the contact, or
    // the new one with it; never a mix
    tokio::time::sleep(lakecdp_app::search::FRESHNESS).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut saw_new = false;
    while Instant::now() < deadline {
        let found = r
            .app
            .search_customers(&admin(), "Quetzali Zyxwvtu", 0, 5)
            .await
            .unwrap();
        if found.index.stamp == old_stamp {
            assert_eq!(found.total, 0, "the old index does not know the contact");
            assert_eq!(found.index.profiles, old_profiles);
        } else {
            assert_eq!(found.total, 1, "{found:?}");
            assert_eq!(found.index.profiles, old_profiles + 1);
            let card = r
                .app
                .customer_card(&admin(), &found.hits[0].customer_id)
                .await
                .unwrap();
            assert!(card
                .profile
                .contains(&("Email".to_string(), "quetzalli@zyx.example".to_string())));
            saw_new = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_new, "the index was rebuilt after the refresh");
    // the old index's folder is gone; the new one is the only one kept
    let env_dir = search_dir.path().join(r.env.id.to_string());
    let kept: Vec<String> = std::fs::read_dir(&env_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_ne!(kept[0], old_stamp);
}
