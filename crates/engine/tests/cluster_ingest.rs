//! Loading on a cluster publishes what loading here publishes: the same rows in every
//! entity, the same winner of every key (the latest last-updated value, the last read on
//! a tie) and the same corrupt rows with the same reasons, whichever task read a file.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::record_batch::RecordBatch;
use lakecdp_core::{ColumnType, CsvOptions, SourceFormat, SourceSpec};
use lakecdp_engine::ingest::{ingest_source, IngestCluster, IngestOptions, SourceReport};
use lakecdp_lake::publish::read_model;
use lakecdp_lake::{Lake, Process};

mod common;
use common::{col, lake, table};

/// Three files of one keyed table: keys repeat within and across files, last-updated
/// values tie, are missing or are not dates, and some records do not convert.
const PEOPLE: [&str; 4] = [
    "\
Id,Name,Updated
P1,Ann,2024-01-01
P2,Bob,2024-01-05
P3,Cat,
P1,Ann B,2024-01-03
P4,Dan,not a date
P5,Eve,2024-01-01,extra
",
    "\
Id,Name,Updated
P2,Bob B,2024-01-05
P3,Cat B,
P6,Fay,2024-02-01
P1,Ann C,2023-12-31
,Nobody,2024-01-01
",
    "\
Id,Name,Updated
P6,Fay B,2024-01-15
P7,Gus,2024-03-01
P2,Bob C,2024-01-04
P8,\"Hal, \"\"the\"\" second\",2024-03-02
",
    "\
Id,Name,Updated
P7,Gus B,2024-03-01
P9,Ivy,2024-04-01
P1,Ann D,2024-01-03
",
];

const EVENTS: [&str; 2] = [
    "{\"Kind\":\"visit\",\"Count\":1}\n{\"Kind\":\"call\",\"Count\":\"two\"}\n{\"Kind\":\"visit\",\"Count\":1}\n",
    "{\"Kind\":\"mail\",\"Count\":3}\nnot json\n{\"Kind\":\"visit\",\"Count\":4}\n",
];

fn project(dir: &Path) -> SourceSpec {
    std::fs::create_dir_all(dir.join("people")).unwrap();
    std::fs::create_dir_all(dir.join("events")).unwrap();
    for (i, text) in PEOPLE.iter().enumerate() {
        std::fs::write(dir.join(format!("people/part{i}.csv")), text).unwrap();
    }
    for (i, text) in EVENTS.iter().enumerate() {
        std::fs::write(dir.join(format!("events/e{i}.jsonl")), text).unwrap();
    }
    let mut people = table("People", "people/*.csv", SourceFormat::Csv);
    people.primary_key = Some("Id".into());
    people.last_updated = Some("Updated".into());
    people.csv = Some(CsvOptions::default());
    people.schema = vec![
        col("Id", ColumnType::String),
        col("Name", ColumnType::String),
        col("Updated", ColumnType::Date),
    ];
    let mut events = table("Events", "events/*.jsonl", SourceFormat::Jsonl);
    events.schema = vec![
        col("Kind", ColumnType::String),
        col("Count", ColumnType::Int64),
    ];
    SourceSpec {
        access: None,
        name: "Crm".into(),
        description: None,
        max_corrupt_share: Some(1.0),
        tables: vec![people, events],
    }
}

fn rows(batch: &RecordBatch) -> Vec<String> {
    (0..batch.num_rows())
        .map(|r| {
            batch
                .columns()
                .iter()
                .map(|c| arrow::util::display::array_value_to_string(c, r).unwrap())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// Every entity of the source's published run, its rows sorted, and how many partitions
/// it has.
async fn published(lake: &Lake) -> BTreeMap<String, (Vec<String>, usize)> {
    let process = Process::Ingestion("Crm".into());
    let model = read_model(lake, &process).await.unwrap().unwrap();
    let mut out = BTreeMap::new();
    for e in &model.entities {
        let batches = lakecdp_lake::partition::read_entity(lake, &process.folder(), e)
            .await
            .unwrap();
        let mut all: Vec<String> = batches.iter().flat_map(rows).collect();
        all.sort();
        out.insert(e.name.clone(), (all, e.partitions.len()));
    }
    out
}

async fn load(dir: &Path, lake: &Lake, cluster: Option<IngestCluster>) -> SourceReport {
    let source = project(dir);
    let options = IngestOptions {
        cluster,
        // the key index goes to sorted runs on disk, here and in every task
        key_index_budget_bytes: 64,
        ..IngestOptions::default()
    };
    ingest_source(lake, &source, dir, &options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_on_a_standalone_cluster_publishes_what_a_local_load_does() {
    let dir = tempfile::tempdir().unwrap();
    let (here, there) = (lake(&dir.path().join("a")), lake(&dir.path().join("b")));
    let local = load(dir.path(), &here, None).await;
    let cluster = load(
        dir.path(),
        &there,
        Some(IngestCluster {
            scheduler: None,
            revision: None,
            tasks: 3,
            local_files: true,
        }),
    )
    .await;
    let expected = published(&here).await;
    let got = published(&there).await;
    for (name, (rows, _)) in &expected {
        assert_eq!(Some(rows), got.get(name).map(|(r, _)| r), "{name}");
    }
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    // the winners: the latest date; on a tie or without one, the last read
    let people = &expected["People"].0;
    // P1's latest date is a tie between part0.csv and part3.csv: the last read wins
    assert!(
        people.contains(&"P1|Ann D|2024-01-03".to_string()),
        "{people:?}"
    );
    assert!(
        people.contains(&"P7|Gus B|2024-03-01".to_string()),
        "{people:?}"
    );
    assert!(
        people.contains(&"P2|Bob B|2024-01-05".to_string()),
        "{people:?}"
    );
    assert!(people.contains(&"P3|Cat B|".to_string()), "{people:?}");
    assert!(
        people.contains(&"P6|Fay|2024-02-01".to_string()),
        "{people:?}"
    );
    // what the tasks wrote: the keyed table in more than one part, and nothing in the
    // run's folders that model.json does not name
    assert!(got["People"].1 > 1, "{:?}", got["People"]);
    let process = Process::Ingestion("Crm".into());
    let model = read_model(&there, &process).await.unwrap().unwrap();
    for e in &model.entities {
        let mut declared: Vec<String> = e
            .partitions
            .iter()
            .filter_map(|p| there.relative_of_url(&p.location))
            .collect();
        declared.sort();
        let run = declared[0].rsplit_once('/').unwrap().0.to_string();
        let mut files: Vec<String> = there
            .list(&run)
            .await
            .unwrap()
            .iter()
            .filter_map(|m| there.relative(&m.location))
            .collect();
        files.sort();
        assert_eq!(files, declared, "{}", e.name);
    }
    // the counts of the reports agree, table by table, and the cluster said nothing ran here
    for (l, c) in local.tables.iter().zip(&cluster.tables) {
        assert_eq!(
            (l.read, l.written, l.corrupt, &l.reasons),
            (c.read, c.written, c.corrupt, &c.reasons),
            "{}",
            l.table
        );
        assert_eq!(c.local, None);
        assert_eq!(l.local, None);
    }
    assert!(local.tables.iter().all(|t| t.corrupt > 0));
}

/// On a cluster whose executors do not share this machine's folders, a table in a local
/// folder loads here, and the report says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_in_a_local_folder_loads_here_unless_the_executors_share_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(&dir.path().join("a"));
    let report = load(
        dir.path(),
        &lake,
        Some(IngestCluster {
            scheduler: None,
            revision: None,
            tasks: 2,
            local_files: false,
        }),
    )
    .await;
    for t in &report.tables {
        let why = t.local.as_deref().unwrap_or_default();
        assert!(why.contains("shared_files = true"), "{why}");
    }
    // loaded as here: one partition written by this process
    let got = published(&lake).await;
    assert_eq!(got["People"].1, 1);
}

/// A Delta table written in several commits at `path`: partitioned by `Tier`, a column
/// (`Email`) added by a later commit, a key written again, and a row deleted (its file
/// rewritten). Its data files number more than one.
async fn members_delta(path: &Path) -> deltalake::DeltaTable {
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;
    std::fs::create_dir_all(path).unwrap();
    let url = url::Url::from_directory_path(path).unwrap();
    let batch = |ids: &[i64], tiers: &[Option<&str>], emails: Option<&[Option<&str>]>| {
        let mut columns = vec![
            ("Id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
            (
                "Tier",
                Arc::new(StringArray::from(tiers.to_vec())) as ArrayRef,
            ),
        ];
        if let Some(emails) = emails {
            columns.push((
                "Email",
                Arc::new(StringArray::from(emails.to_vec())) as ArrayRef,
            ));
        }
        RecordBatch::try_from_iter(columns).unwrap()
    };
    let table = deltalake::DeltaTable::try_from_url(url)
        .await
        .unwrap()
        .write(vec![batch(
            &[1, 2, 3, 4],
            &[Some("Gold"), Some("Silver"), Some("Gold"), None],
            None,
        )])
        .with_partition_columns(["Tier"])
        .await
        .unwrap();
    let table = table
        .write(vec![batch(
            &[5, 1, 6],
            &[Some("Silver"), Some("Gold"), Some("Bronze")],
            Some(&[Some("e@x.org"), Some("a2@x.org"), None]),
        )])
        .with_schema_mode(deltalake::operations::write::SchemaMode::Merge)
        .await
        .unwrap();
    let (table, _) = table.delete().with_predicate("Id = 3").await.unwrap();
    table
}

/// A plain Delta table loads on the cluster as its data files, each task reading some
/// of them and adding their partition values; what it publishes is what a load here
/// publishes. A version whose readers need deltalake's reader loads here, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_table_loads_on_the_cluster_file_by_file_as_here() {
    let dir = tempfile::tempdir().unwrap();
    let table = members_delta(&dir.path().join("warehouse/members")).await;
    let files = table.snapshot().unwrap().log_data().num_files();
    assert!(files > 2, "{files} data files");
    let mut members = table_spec("Members", "warehouse/members");
    members.primary_key = Some("Id".into());
    let source = SourceSpec {
        access: None,
        name: "Crm".into(),
        description: None,
        max_corrupt_share: Some(1.0),
        tables: vec![members],
    };
    let cluster = IngestCluster {
        scheduler: None,
        revision: None,
        tasks: 3,
        local_files: true,
    };
    let load = |lake: Lake, cluster: Option<IngestCluster>| {
        let source = source.clone();
        let dir = dir.path().to_path_buf();
        async move {
            let options = IngestOptions {
                cluster,
                ..IngestOptions::default()
            };
            let report = ingest_source(&lake, &source, &dir, &options).await.unwrap();
            (published(&lake).await, report)
        }
    };
    let (here, local) = load(lake(&dir.path().join("a")), None).await;
    let (there, remote) = load(lake(&dir.path().join("b")), Some(cluster.clone())).await;
    assert_eq!(
        here.keys().collect::<Vec<_>>(),
        there.keys().collect::<Vec<_>>()
    );
    for (name, (rows, _)) in &here {
        assert_eq!(Some(rows), there.get(name).map(|(r, _)| r), "{name}");
    }
    // the key written again is one row; the deleted row is gone; the older files have
    // no Email; the partition values (null included) are the rows'
    let rows = &here["Members"].0;
    let (first, rest) = rows.split_first().unwrap();
    assert!(
        ["1|Gold|a2@x.org", "1|Gold|"].contains(&first.as_str()),
        "{rows:?}"
    );
    assert_eq!(
        rest,
        &["2|Silver|", "4||", "5|Silver|e@x.org", "6|Bronze|"]
            .map(String::from)
            .to_vec(),
        "{rows:?}"
    );
    assert_eq!((local.tables[0].read, local.tables[0].written), (6, 5));
    // shuffled by key to the writing tasks: more than one part
    assert!(there["Members"].1 > 1, "{:?}", there["Members"]);
    assert_eq!(
        (
            remote.tables[0].read,
            remote.tables[0].written,
            &remote.tables[0].local
        ),
        (6, 5, &None)
    );

    // the same table once its protocol needs deletion vectors: read whole, here
    let log = dir
        .path()
        .join("warehouse/members/_delta_log")
        .join(format!("{:020}.json", table.version().unwrap() + 1));
    let protocol = serde_json::json!({"protocol": {
        "minReaderVersion": 3, "minWriterVersion": 7,
        "readerFeatures": ["deletionVectors"], "writerFeatures": ["deletionVectors"]
    }});
    std::fs::write(&log, format!("{protocol}\n")).unwrap();
    let (there, remote) = load(lake(&dir.path().join("c")), Some(cluster)).await;
    let why = remote.tables[0].local.as_deref().unwrap_or_default();
    assert!(why.contains("deltalake"), "{why}");
    // deltalake's scan reads the files in its own order: which row of the repeated key
    // wins may differ, the rest does not
    let (first_there, rest_there) = there["Members"].0.split_first().unwrap();
    assert!(first_there.starts_with("1|Gold|"), "{first_there}");
    assert_eq!(rest_there, rest);
}

fn table_spec(name: &str, location: &str) -> lakecdp_core::TableSpec {
    table(name, location, SourceFormat::Delta)
}
