//! CSV cut into pieces read in parallel, and hostile files: every record read is
//! accounted for (`read = written + corrupt`) with its reason, whatever the size of the
//! pieces, and a hostile file costs bounded memory and a few corrupt rows.

use std::collections::BTreeMap;

use arrow::array::{Array, Int64Array};
use lakecdp_core::{ColumnType, CsvOptions, SourceFormat, SourceSpec, TableSpec};
use lakecdp_engine::ingest::{ingest_source, IngestOptions, TableReport};
use lakecdp_lake::Lake;

mod common;
use common::{col, entity, lake, strings, table};

/// Records with every kind of corrupt row, quoted fields with delimiters, quotes and
/// line ends, and a duplicate key.
const ORDERS: &str = "\
OrderId,Amount,OrderDate,Items,Note
A1,10.50,2024-01-02,1,plain
A2,oops,2024-01-03,2,\"two\nlines\"
A3,5,2024-02-30,1,x
,7,2024-01-04,1,x
A4,\"1,200.00\",2024-01-05,3
A5,8,2024-01-05,\"Outlet \"\"B\"\"\",x
A6,9,2024-01-06,Store \"Outlet\",x
A7,1,2024-01-07,2,\"ok\"tail
A8,1.234,2024-01-08,1,x
A9,2,0000-06-15,1,x
B1,3,2024-01-09,1,\"a, \"\"quoted\"\"
note\r
over lines\"
B2,4,2024-01-10,1,\"\n\"
A1,11.00,2024-01-11,2,\"again,
\"
";

fn orders_table() -> TableSpec {
    let mut t = table("Orders", "orders.csv", SourceFormat::Csv);
    t.primary_key = Some("OrderId".into());
    t.csv = Some(CsvOptions::default());
    t.schema = vec![
        col("OrderId", ColumnType::String),
        col("Amount", ColumnType::Decimal(10, 2)),
        col("OrderDate", ColumnType::Date),
        col("Items", ColumnType::Int64),
        col("Note", ColumnType::String),
    ];
    t
}

fn source(t: TableSpec) -> SourceSpec {
    SourceSpec {
        access: None,
        name: "Shop".into(),
        description: None,
        max_corrupt_share: Some(1.0),
        tables: vec![t],
    }
}

async fn load(
    files: &[(&str, &[u8])],
    t: TableSpec,
    options: IngestOptions,
) -> (tempfile::TempDir, Lake, TableReport) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let lake = lake(dir.path());
    let report = ingest_source(&lake, &source(t), dir.path(), &options)
        .await
        .unwrap();
    let t = report.tables[0].clone();
    assert_eq!(t.read, t.written + t.corrupt, "{t:?}");
    (dir, lake, t)
}

async fn corrupt_rows(lake: &Lake, table: &str) -> BTreeMap<i64, (String, String)> {
    let corrupt = entity(lake, "Shop", &format!("Shop_{table}_corrupt")).await;
    let lines: Vec<i64> = corrupt
        .column_by_name("Line")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec();
    let rows: Vec<(String, String)> = strings(&corrupt, "Reason")
        .into_iter()
        .zip(strings(&corrupt, "Raw"))
        .collect();
    assert!(
        lines.windows(2).all(|w| w[0] < w[1]),
        "in file order: {lines:?}"
    );
    lines.into_iter().zip(rows).collect()
}

fn orders_bytes() -> Vec<u8> {
    let mut bytes = ORDERS.as_bytes().to_vec();
    bytes.extend_from_slice(b"B3,5,2024-01-12,1,caf\xe9\n");
    bytes
}

#[tokio::test]
async fn every_corrupt_reason_survives_any_split_of_the_file() {
    let expect: &[(i64, &str)] = &[
        (
            2,
            "duplicate primary key: `A1` appears again; kept the row at orders.csv:18",
        ),
        (
            3,
            "type mismatch: column `Amount` value `oops` is not a decimal(10,2)",
        ),
        (
            5,
            "bad date: column `OrderDate` value `2024-02-30` is not a date",
        ),
        (6, "missing primary key `OrderId`"),
        (7, "wrong number of fields: expected 5, found 4"),
        (
            8,
            "type mismatch: column `Items` value `Outlet \"B\"` is not a int64",
        ),
        (9, "unescaped quote in field 4"),
        (
            10,
            "unescaped quote in field 5 (text after its closing quote)",
        ),
        (
            11,
            "type mismatch: column `Amount` value `1.234` does not fit decimal(10,2)",
        ),
        (12, "bad date: column `OrderDate` value `0000-06-15`"),
        (20, "not valid UTF-8"),
    ];
    let bytes = orders_bytes();
    let mut reference = None;
    // pieces of 1 byte to the whole file: every record boundary, those right after a
    // quoted line end included, is a split point of some run
    for split in (1..=48).chain([4096]) {
        let options = IngestOptions {
            split_bytes: split,
            threads: 3,
            ..IngestOptions::default()
        };
        let (_dir, lake, t) = load(&[("orders.csv", &bytes)], orders_table(), options).await;
        let corrupt = corrupt_rows(&lake, "Orders").await;
        let orders = entity(&lake, "Shop", "Orders").await;
        assert_eq!(
            (t.read, t.written, t.corrupt),
            (14, 3, 11),
            "split {split}: {t:?} {corrupt:#?} {:?}",
            strings(&orders, "OrderId")
        );
        assert_eq!(corrupt.len(), expect.len(), "split {split}: {corrupt:#?}");
        for (line, reason) in expect {
            let got = &corrupt
                .get(line)
                .unwrap_or_else(|| panic!("line {line}: {corrupt:#?}"))
                .0;
            assert!(got.starts_with(reason), "split {split}, line {line}: {got}");
        }
        assert_eq!(corrupt[&20].1, "B3,5,2024-01-12,1,caf\u{fffd}");
        assert_eq!(corrupt[&9].1, "A6,9,2024-01-06,Store \"Outlet\",x");
        assert_eq!(corrupt[&3].1, "A2,oops,2024-01-03,2,\"two\nlines\"");
        let rows: Vec<String> = strings(&orders, "OrderId")
            .into_iter()
            .zip(strings(&orders, "Note"))
            .map(|(id, note)| format!("{id}={note}"))
            .collect();
        assert_eq!(
            rows,
            [
                "B1=a, \"quoted\"\nnote\r\nover lines",
                "B2=\n",
                "A1=again,\n"
            ],
            "split {split}"
        );
        match &reference {
            None => reference = Some(corrupt),
            Some(r) => assert_eq!(r, &corrupt, "split {split}"),
        }
    }
}

fn people(columns: &[(&str, ColumnType)]) -> TableSpec {
    let mut t = table("People", "people*", SourceFormat::Csv);
    t.csv = Some(CsvOptions::default());
    t.schema = columns.iter().map(|(n, ty)| col(n, *ty)).collect();
    t
}

fn good_rows(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("{i},name {i}\n"))
        .collect()
}

#[tokio::test]
async fn an_endless_line_is_one_corrupt_row_cut_to_its_first_bytes() {
    let mut bytes = b"Id,Name\n".to_vec();
    bytes.extend(good_rows(1, 100).as_bytes());
    bytes.extend(std::iter::repeat_n(b'x', 3 << 20));
    bytes.extend(b"\n");
    bytes.extend(good_rows(101, 100).as_bytes());
    // a quoted field that runs past the limit over many lines, then an endless last line
    bytes.extend(b"201,\"");
    for _ in 0..2000 {
        bytes.extend(b"still quoted\n");
    }
    bytes.extend(b"\"\n");
    bytes.extend(good_rows(301, 10).as_bytes());
    bytes.extend(std::iter::repeat_n(b'y', 2 << 20));
    let options = IngestOptions {
        max_record_bytes: 16 << 10,
        split_bytes: 64 << 10,
        ..IngestOptions::default()
    };
    let columns = [("Id", ColumnType::Int64), ("Name", ColumnType::String)];
    let (_dir, lake, t) = load(&[("people.csv", &bytes)], people(&columns), options).await;
    let corrupt = corrupt_rows(&lake, "People").await;
    let too_long: Vec<_> = corrupt
        .iter()
        .filter(|(_, (reason, _))| reason.starts_with("record too long"))
        .collect();
    assert_eq!(too_long.len(), 2, "{t:?}");
    assert_eq!(*too_long[0].0, 102);
    for (_, (reason, raw)) in &too_long {
        assert!(reason.contains("16384 bytes"), "{reason}");
        assert!(raw.len() <= 16 << 10);
    }
    // the quoted field cost its first line; each line after it is read again
    assert!(
        corrupt[&203].0.starts_with("a quoted field is not closed"),
        "{:?}",
        corrupt[&203]
    );
    assert_eq!(t.written, 210, "{t:?}");
    assert_eq!(t.corrupt as usize, corrupt.len());
}

#[tokio::test]
async fn a_header_wider_than_the_limit_is_a_corrupt_row_and_so_are_its_records() {
    let header: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
    let mut wide = header.join(",").into_bytes();
    wide.push(b'\n');
    for r in 0..3 {
        let row: Vec<String> = (0..100_000).map(|i| format!("{}", i + r)).collect();
        wide.extend(row.join(",").as_bytes());
        wide.push(b'\n');
    }
    let options = IngestOptions {
        max_columns: 1000,
        ..IngestOptions::default()
    };
    let columns = [("c0", ColumnType::Int64), ("c1", ColumnType::String)];
    let (_dir, lake, t) = load(
        &[
            ("people-1.csv", &wide),
            ("people-2.csv", b"c0,c1\n7,seven\n"),
        ],
        people(&columns),
        options,
    )
    .await;
    assert_eq!((t.read, t.written, t.corrupt), (5, 1, 4), "{t:?}");
    let corrupt = entity(&lake, "Shop", "Shop_People_corrupt").await;
    let reasons = strings(&corrupt, "Reason");
    assert!(
        reasons[0].starts_with("header too wide: more than the limit of 1000 columns"),
        "{reasons:?}"
    );
    assert!(
        reasons[1..]
            .iter()
            .all(|r| r.starts_with("no usable header: line 1")),
        "{reasons:?}"
    );
    let people = entity(&lake, "Shop", "People").await;
    assert_eq!(strings(&people, "c1"), ["seven"]);
    assert_eq!(people.num_columns(), 2);
}

#[tokio::test]
async fn an_unclosed_quote_at_the_start_of_a_large_file_costs_one_row() {
    let mut bytes = b"Id,Name\n1,\"never closed\n".to_vec();
    bytes.extend(good_rows(2, 50_000).as_bytes());
    // a quoted field at the end: the open quote would close on it
    bytes.extend(b"50002,\"Zed, Z\"\n");
    let columns = [("Id", ColumnType::Int64), ("Name", ColumnType::String)];
    for (limit, split) in [(16 << 20, 4 << 20), (4 << 10, 1 << 10)] {
        let options = IngestOptions {
            max_record_bytes: limit,
            split_bytes: split,
            ..IngestOptions::default()
        };
        let (_dir, lake, t) = load(&[("people.csv", &bytes)], people(&columns), options).await;
        assert_eq!((t.written, t.corrupt), (50_001, 1), "{t:?}");
        let corrupt = corrupt_rows(&lake, "People").await;
        assert_eq!(corrupt[&2].1, "1,\"never closed");
        assert!(
            corrupt[&2].0.starts_with("a quoted field is not closed"),
            "{corrupt:?}"
        );
    }
}

#[tokio::test]
async fn invalid_utf8_and_long_json_lines_are_corrupt_rows() {
    let mut csv = b"Id,Name\n1,ok\n2,\xff\xfe\n3,\"\xc3\"\n4,fine\n".to_vec();
    csv.extend(b"\xff\xff\xff\n");
    let columns = [("Id", ColumnType::Int64), ("Name", ColumnType::String)];
    let (_dir, lake, t) = load(
        &[("people.csv", &csv)],
        people(&columns),
        IngestOptions::default(),
    )
    .await;
    assert_eq!((t.read, t.written, t.corrupt), (5, 2, 3), "{t:?}");
    let corrupt = corrupt_rows(&lake, "People").await;
    assert!(
        corrupt[&3]
            .0
            .starts_with("not valid UTF-8 (byte 3 of the record)"),
        "{corrupt:?}"
    );
    assert_eq!(corrupt[&3].1, "2,\u{fffd}\u{fffd}");
    assert!(corrupt[&4].0.starts_with("not valid UTF-8"), "{corrupt:?}");

    let mut jsonl = b"{\"Id\": 1, \"Name\": \"a\"}\n{\"Id\": 2, \"Name\": \"".to_vec();
    jsonl.extend(std::iter::repeat_n(b'z', 200_000));
    jsonl.extend(b"\"}\n{\"Id\": 3, \"Name\": \"\xff\"}\n{\"Id\": 4}\n");
    let mut t = table("People", "people.jsonl", SourceFormat::Jsonl);
    t.schema = columns.iter().map(|(n, ty)| col(n, *ty)).collect();
    let options = IngestOptions {
        max_record_bytes: 10_000,
        ..IngestOptions::default()
    };
    let (_dir, lake, r) = load(&[("people.jsonl", &jsonl)], t, options).await;
    assert_eq!((r.read, r.written, r.corrupt), (4, 2, 2), "{r:?}");
    let corrupt = corrupt_rows(&lake, "People").await;
    assert!(
        corrupt[&2].0.starts_with("record too long"),
        "{:?}",
        corrupt[&2].0
    );
    assert!(corrupt[&2].1.len() <= 10_000);
    assert!(
        corrupt[&3].0.starts_with("not valid UTF-8"),
        "{:?}",
        corrupt[&3].0
    );
}

#[tokio::test]
async fn garbage_never_panics_and_every_record_is_accounted_for() {
    let alphabet = b"\"\",,,\n\n\r0123ab \xff";
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..20 {
        let mut bytes = b"Id,Name\n".to_vec();
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        let columns = [("Id", ColumnType::Int64), ("Name", ColumnType::String)];
        let mut reference = None;
        for split in [7, 100, 1 << 20] {
            let options = IngestOptions {
                max_record_bytes: 64,
                max_columns: 8,
                split_bytes: split,
                threads: 2,
                ..IngestOptions::default()
            };
            let (_dir, _lake, t) = load(&[("people.csv", &bytes)], people(&columns), options).await;
            let counts = (t.read, t.written, t.corrupt);
            match reference {
                None => reference = Some(counts),
                Some(r) => assert_eq!(r, counts, "round {round}, split {split}"),
            }
        }
    }
}

/// Counts the passes of a load and the records they advance by.
#[derive(Default)]
struct Passes(std::sync::Mutex<Vec<(u8, u64, u64)>>);

impl lakecdp_engine::ingest::Progress for Passes {
    fn start(&self, _: &str, pass: u8, bytes: u64) {
        self.0.lock().unwrap().push((pass, bytes, 0));
    }
    fn advance(&self, records: u64, _: u64) {
        if let Some(last) = self.0.lock().unwrap().last_mut() {
            last.2 += records;
        }
    }
    fn finish(&self) {}
}

#[tokio::test]
async fn a_keyed_load_reads_its_files_once() {
    let bytes = orders_bytes();
    let passes = std::sync::Arc::new(Passes::default());
    let options = IngestOptions {
        progress: passes.clone(),
        split_bytes: 16,
        ..IngestOptions::default()
    };
    let (_dir, _lake, t) = load(&[("orders.csv", &bytes)], orders_table(), options).await;
    assert_eq!((t.read, t.written, t.corrupt), (14, 3, 11), "{t:?}");
    let passes = passes.0.lock().unwrap().clone();
    // pass 1 reads the file; pass 2 routes the rows kept on local disk
    assert_eq!(passes.len(), 2, "{passes:?}");
    assert_eq!(passes[0], (1, bytes.len() as u64, 14));
    assert_eq!((passes[1].0, passes[1].2), (2, 14));
    assert!(passes[1].1 > 0);
}

/// Rows of `keys` keys repeated all through two files, with last-updated values that go
/// up and down, ties, nulls and values that do not convert (corrupt rows between the
/// keyed ones). Returns the files and, per key, the value of the row that must win.
#[allow(clippy::type_complexity)]
fn churn(rows: usize, keys: usize) -> (Vec<(String, Vec<u8>)>, BTreeMap<String, String>) {
    let mut files = vec![
        (
            "people1.csv".to_string(),
            String::from("Id,Updated,Value\n"),
        ),
        (
            "people2.csv".to_string(),
            String::from("Id,Updated,Value\n"),
        ),
    ];
    // the winner of each key: (updated, value); `None` loses to any value, ties go to
    // the row read last
    let mut winners: BTreeMap<String, (Option<i64>, String)> = BTreeMap::new();
    for i in 0..rows {
        let key = format!("C{}", (i * 7919) % keys);
        let value = format!("v{i}");
        let file = usize::from(i >= rows / 2);
        if i % 97 == 3 {
            files[file].1.push_str(&format!("{key},late,{value}\n"));
            continue;
        }
        let updated = match i % 5 {
            0 => None,
            1 => Some(((i * 31) % 11) as i64),
            _ => Some((i % 4) as i64),
        };
        let text = updated.map(|u| u.to_string()).unwrap_or_default();
        files[file].1.push_str(&format!("{key},{text},{value}\n"));
        let wins = match winners.get(&key) {
            None => true,
            Some((old, _)) => match (updated, old) {
                (None, None) => true,
                (None, Some(_)) => false,
                (Some(_), None) => true,
                (Some(n), Some(o)) => n >= *o,
            },
        };
        if wins {
            winners.insert(key, (updated, value));
        }
    }
    (
        files
            .into_iter()
            .map(|(n, s)| (n, s.into_bytes()))
            .collect(),
        winners.into_iter().map(|(k, (_, v))| (k, v)).collect(),
    )
}

#[tokio::test]
async fn a_key_index_over_its_budget_goes_to_disk_and_keeps_the_same_winners() {
    let (files, expected) = churn(12_000, 1_300);
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let mut t = people(&[
        ("Id", ColumnType::String),
        ("Updated", ColumnType::Int64),
        ("Value", ColumnType::String),
    ]);
    t.primary_key = Some("Id".into());
    t.last_updated = Some("Updated".into());
    let mut loads = Vec::new();
    // the whole index in memory; then a budget so small that every batch of keys makes
    // a run of its own
    for budget in [IngestOptions::default().key_index_budget_bytes, 1] {
        let options = IngestOptions {
            split_bytes: 4096,
            key_index_budget_bytes: budget,
            ..IngestOptions::default()
        };
        let (_dir, lake, report) = load(&files, t.clone(), options).await;
        let rows = entity(&lake, "Shop", "People").await;
        let table: BTreeMap<String, String> = strings(&rows, "Id")
            .into_iter()
            .zip(strings(&rows, "Value"))
            .collect();
        assert_eq!(table.len(), rows.num_rows(), "one row per key");
        assert_eq!(table, expected, "budget {budget}");
        let corrupt = entity(&lake, "Shop", "Shop_People_corrupt").await;
        let columns: Vec<Vec<String>> = corrupt
            .schema()
            .fields()
            .iter()
            .map(|f| strings(&corrupt, f.name()))
            .collect();
        let mut corrupt: Vec<Vec<String>> = (0..corrupt.num_rows())
            .map(|i| columns.iter().map(|c| c[i].clone()).collect())
            .collect();
        corrupt.sort();
        assert_eq!(report.corrupt as usize, corrupt.len());
        assert!(
            corrupt
                .iter()
                .any(|r| r.iter().any(|v| v.contains("kept the row at people2.csv"))),
            "{corrupt:?}"
        );
        loads.push((report.read, report.written, report.corrupt, corrupt));
    }
    assert_eq!(loads[0].0, 12_000);
    assert_eq!(loads[0].1, 1_300);
    // the same counts, and every duplicate names the same kept row
    assert_eq!(loads[0], loads[1]);
}
