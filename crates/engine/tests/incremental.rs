//! Incremental refresh of a table in the `FullData/` + `IncrementalData/yyyy/mm/dd/hh/`
//! layout: a full load, then two ended hours of upserts and deletes (an upsert and a
//! delete of the same key among them) while a third hour is still open, then re-runs that
//! change nothing, then a one-time full refresh from a given hour.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use lakecdp_core::{ColumnType, PartitionFormat, SourceFormat, SourceSpec, TableSpec};
use lakecdp_engine::ingest::{ingest_source, Base, IngestOptions, SourceReport};
use lakecdp_lake::Lake;

mod common;
use common::{col, entity, lake, strings, table};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn source() -> SourceSpec {
    let mut t: TableSpec = table("Contacts", "crm", SourceFormat::Csv);
    t.incremental = true;
    t.primary_key = Some("Id".into());
    t.last_updated = Some("Updated".into());
    t.schema = vec![
        col("Id", ColumnType::Int64),
        col("Name", ColumnType::String),
        col("Updated", ColumnType::DateTimeTz),
    ];
    SourceSpec {
        name: "Crm".into(),
        description: None,
        max_corrupt_share: None,
        access: None,
        tables: vec![t],
    }
}

async fn load(
    lake: &Lake,
    dir: &Path,
    now: &str,
    watermark: Option<DateTime<Utc>>,
    tweak: impl FnOnce(&mut IngestOptions),
) -> SourceReport {
    let mut options = IngestOptions {
        now: Some(at(now)),
        watermarks: watermark
            .map(|w| HashMap::from([("Contacts".to_string(), w)]))
            .unwrap_or_default(),
        ..IngestOptions::default()
    };
    tweak(&mut options);
    ingest_source(lake, &source(), dir, &options).await.unwrap()
}

/// The table as sorted `Id:Name` pairs.
async fn contents(lake: &Lake) -> Vec<String> {
    let batch = entity(lake, "Crm", "Contacts").await;
    let mut rows: Vec<String> = strings(&batch, "Id")
        .into_iter()
        .zip(strings(&batch, "Name"))
        .map(|(id, name)| format!("{id}:{name}"))
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn hours_of_upserts_and_deletes_apply_once_and_in_order_on_a_csv_lake() {
    hours_apply_once_and_in_order(PartitionFormat::Csv).await;
}

#[tokio::test]
async fn hours_of_upserts_and_deletes_apply_once_and_in_order_on_a_parquet_lake() {
    hours_apply_once_and_in_order(PartitionFormat::Parquet).await;
}

/// The previous output is the base of each incremental load, so the lake's partition
/// format is part of the path under test.
async fn hours_apply_once_and_in_order(format: PartitionFormat) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("crm");
    let lake = lake(dir.path()).with_format(format);
    write(
        &root,
        "FullData/contacts-1.csv",
        "Id,Name,Updated\n1,Ann,2026-01-01T00:00:00Z\n2,Bob,2026-01-01T00:00:00Z\n",
    );
    write(
        &root,
        "FullData/contacts-2.csv",
        "Id,Name,Updated\n3,Cy,2026-01-01T00:00:00Z\n4,Dee,2026-01-01T00:00:00Z\n",
    );
    write(&root, "FullData/_SUCCESS", "");

    // 1. the full load
    let first = load(&lake, dir.path(), "2026-11-23T09:30:00Z", None, |_| {}).await;
    let t = &first.tables[0];
    assert_eq!((t.read, t.written, t.corrupt), (4, 4, 0));
    let inc = t.incremental.as_ref().unwrap();
    assert_eq!(inc.base, Base::FullData);
    assert!(inc.hours.is_empty());
    assert_eq!(inc.watermark, None);
    assert_eq!(contents(&lake).await, ["1:Ann", "2:Bob", "3:Cy", "4:Dee"]);

    // 2. two ended hours of changes, and one still open
    let h10 = "IncrementalData/2026/11/23/10";
    let h11 = "IncrementalData/2026/11/23/11";
    write(
        &root,
        &format!("{h10}/Upserts/u.csv"),
        "Id,Name,Updated\n2,Bob v2,2026-11-23T10:05:00Z\n5,Eve,2026-11-23T10:10:00Z\n3,Cy v2,2026-11-23T10:20:00Z\n",
    );
    // deletes carry only the key and the last-updated column; 3 is upserted later
    // within the same hour, so the upsert wins
    write(
        &root,
        &format!("{h10}/Deletes/d.csv"),
        "Id,Updated\n3,2026-11-23T10:10:00Z\n4,2026-11-23T10:30:00Z\n",
    );
    write(
        &root,
        &format!("{h11}/Upserts/u.csv"),
        "Id,Name,Updated\n5,Eve v2,2026-11-23T11:15:00Z\n",
    );
    // 1 is deleted; the delete of 2 is older than its last upsert and loses
    write(
        &root,
        &format!("{h11}/Deletes/d.csv"),
        "Id,Updated\n1,2026-11-23T11:05:00Z\n2,2026-11-23T09:00:00Z\n",
    );
    write(
        &root,
        "IncrementalData/2026/11/23/12/Upserts/u.csv",
        "Id,Name,Updated\n6,Fay,2026-11-23T12:01:00Z\n",
    );
    let second = load(&lake, dir.path(), "2026-11-23T12:30:00Z", None, |_| {}).await;
    assert!(!second.unchanged);
    let t = &second.tables[0];
    let inc = t.incremental.as_ref().unwrap();
    assert_eq!(inc.base, Base::Previous);
    assert_eq!(inc.base_rows, 4);
    assert_eq!(
        inc.hours,
        [at("2026-11-23T10:00:00Z"), at("2026-11-23T11:00:00Z")]
    );
    assert_eq!(inc.waiting, [at("2026-11-23T12:00:00Z")]);
    assert_eq!(inc.watermark, Some(at("2026-11-23T11:00:00Z")));
    assert_eq!((inc.upserts, inc.deletes), (4, 4));
    assert_eq!(
        (t.read, t.written, t.corrupt, t.replaced, t.deleted),
        (12, 3, 0, 7, 2)
    );
    assert_eq!(t.read, t.written + t.corrupt + t.replaced + t.deleted);
    assert_eq!(contents(&lake).await, ["2:Bob v2", "3:Cy v2", "5:Eve v2"]);

    // 3. the same refresh again: nothing new has ended, nothing is rewritten
    let watermark = inc.watermark;
    let third = load(&lake, dir.path(), "2026-11-23T12:40:00Z", watermark, |_| {}).await;
    assert!(third.unchanged);
    assert_eq!(third.run_id, second.run_id);
    // forced, it builds on the last output and applies no hour twice
    let forced = load(&lake, dir.path(), "2026-11-23T12:40:00Z", watermark, |o| {
        o.force = true
    })
    .await;
    let t = &forced.tables[0];
    assert!(t.incremental.as_ref().unwrap().hours.is_empty());
    assert_eq!((t.read, t.written, t.replaced, t.deleted), (3, 3, 0, 0));
    assert_eq!(contents(&lake).await, ["2:Bob v2", "3:Cy v2", "5:Eve v2"]);

    // 4. once hour 12 has ended, only it is applied
    let fourth = load(&lake, dir.path(), "2026-11-23T13:00:00Z", watermark, |_| {}).await;
    let inc = fourth.tables[0].incremental.as_ref().unwrap();
    assert_eq!(inc.hours, [at("2026-11-23T12:00:00Z")]);
    assert_eq!(inc.watermark, Some(at("2026-11-23T12:00:00Z")));
    assert_eq!(
        contents(&lake).await,
        ["2:Bob v2", "3:Cy v2", "5:Eve v2", "6:Fay"]
    );

    // 4b. a file written into hour 11 after the hours up to 12 were applied: reported as
    // late and not loaded (later hours are already applied on top of its hour)
    let applied = chrono::Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(50));
    write(
        &root,
        &format!("{h11}/Upserts/late.csv"),
        "Id,Name,Updated\n7,Gus,2026-11-23T11:30:00Z\n",
    );
    let applied_at = |t| HashMap::from([("Contacts".to_string(), t)]);
    let late = load(
        &lake,
        dir.path(),
        "2026-11-23T13:10:00Z",
        Some(at("2026-11-23T12:00:00Z")),
        |o| o.applied_at = applied_at(applied),
    )
    .await;
    let inc = late.tables[0].incremental.as_ref().unwrap();
    assert_eq!(inc.late.len(), 1, "{inc:?}");
    assert!(inc.late[0].ends_with("late.csv"), "{inc:?}");
    assert!(inc.hours.is_empty());
    assert_eq!(
        contents(&lake).await,
        ["2:Bob v2", "3:Cy v2", "5:Eve v2", "6:Fay"]
    );
    // the load after the one that reported it does not report it again
    let after = load(
        &lake,
        dir.path(),
        "2026-11-23T13:20:00Z",
        Some(at("2026-11-23T12:00:00Z")),
        |o| {
            o.applied_at = applied_at(chrono::Utc::now());
            o.force = true;
        },
    )
    .await;
    assert!(after.tables[0]
        .incremental
        .as_ref()
        .unwrap()
        .late
        .is_empty());

    // 5. a one-time full refresh from FullData, processing incremental files from 11:00
    let full = load(
        &lake,
        dir.path(),
        "2026-11-23T13:00:00Z",
        Some(at("2026-11-23T12:00:00Z")),
        |o| {
            o.full = true;
            o.incremental_from = Some(at("2026-11-23T11:00:00Z"));
        },
    )
    .await;
    let t = &full.tables[0];
    let inc = t.incremental.as_ref().unwrap();
    assert_eq!(inc.base, Base::FullData);
    assert_eq!(
        inc.hours,
        [at("2026-11-23T11:00:00Z"), at("2026-11-23T12:00:00Z")]
    );
    // hour 10 is skipped: 3 and 4 keep their FullData rows; hour 11's delete of 2 is
    // newer than the FullData row and now wins; the late file of hour 11 is loaded
    assert_eq!(
        contents(&lake).await,
        ["3:Cy", "4:Dee", "5:Eve v2", "6:Fay", "7:Gus"]
    );
    assert_eq!(t.read, t.written + t.corrupt + t.replaced + t.deleted);
}

#[tokio::test]
async fn the_incremental_layout_needs_a_key_and_a_last_updated_column() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("crm"),
        "FullData/a.csv",
        "Id,Name,Updated\n",
    );
    let mut source = source();
    source.tables[0].last_updated = None;
    let err = ingest_source(
        &lake(dir.path()),
        &source,
        dir.path(),
        &IngestOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("the incremental layout needs `last_updated`"),
        "{err}"
    );
}
