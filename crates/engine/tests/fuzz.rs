//! Property-based fuzzing of ingestion, end to end on a local lake: a CSV or JSON Lines
//! file of any bytes loads or fails with a named error, never panics, and loses no row:
//! every record read is in the table or in its corrupt table, as the report counts them.
//!
//! Case counts are bounded so CI stays quick (each case writes a lake); `scripts/fuzz.sh`
//! runs these targets for minutes with `LAKECDP_FUZZ_CASES`.

use lakecdp_core::{ColumnType, CsvOptions, SourceFormat, SourceSpec};
use lakecdp_engine::ingest::{ingest_source, IngestOptions};
use lakecdp_lake::partition::read_entity;
use lakecdp_lake::publish::read_model;
use lakecdp_lake::Process;
use proptest::prelude::*;

mod common;
use common::{col, lake, table};

/// Cases per target: `LAKECDP_FUZZ_CASES`, or a small default.
fn cases() -> u32 {
    std::env::var("LAKECDP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

const CSV_PIECES: &[&[u8]] = &[
    b"Id,Amount,Day,Items\n",
    b"Id,Amount,Day,Items\r\n",
    b"Id;Amount\n",
    b"\xEF\xBB\xBF",
    b"A1,10.50,2024-01-02,1\n",
    b"A1,11,2024-01-07,2\n",
    b"A2,oops,2024-01-03,2\n",
    b"A3,5,2024-02-30,1\n",
    b",7,2024-01-04,1\n",
    b"A4,\"1,200.00\",2024-01-05,3\n",
    b"A5,8,2024-01-05,\"Outlet \"\"B\"\"\"\n",
    b"A6,9,2024-01-06,Store \"Outlet\"\n",
    b"\"unclosed,1,2024-01-01,1\n",
    b"\"a\nb\",1,2024-01-01,1\n",
    b"A7,1e400,0000-01-01,9999999999999999999\n",
    b",",
    b"\"",
    b"\"\"",
    b"\n",
    b"\r\n",
    b"\r",
    b"A",
    b"1",
    b"\xff\xfe",
    b"\xc3",
    b"\0",
    b"99999999999999999999.999",
    b"-0",
    b"2024-12-31",
    b"\t",
];

const JSONL_PIECES: &[&[u8]] = &[
    b"{\"Id\": \"A1\", \"Amount\": 10.5, \"Day\": \"2024-01-02\", \"Items\": 1}\n",
    b"{\"Id\": \"A2\", \"Amount\": \"oops\"}\n",
    b"{\"Id\": null}\n",
    b"{\"Id\": 1}\n",
    b"{\"Id\": \"A3\", \"Items\": 1.5}\n",
    b"{\"Id\": \"A4\", \"Nested\": {\"a\": [1, 2]}}\n",
    b"[1, 2]\n",
    b"\"text\"\n",
    b"{\"Id\": \"A5\"",
    b"}\n",
    b"{",
    b"\n",
    b"\r\n",
    b"[[[[[[[[",
    b"]]]]]]]]",
    b"{\"Id\": \"\xff\"}\n",
    b"\0",
    b"{\"Id\": \"A6\", \"Id\": \"A7\"}\n",
    b"   \n",
    b"{\"Amount\": 1e400}\n",
];

fn file_of(pieces: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(pieces), 0..60).prop_map(|v| v.concat()),
        prop::collection::vec(any::<u8>(), 0..300),
    ]
}

/// Load `bytes` as the one table of a source, keyed on `Id` or not, with typed columns;
/// check that no record is lost.
fn loads_without_loss(
    bytes: &[u8],
    format: SourceFormat,
    keyed: bool,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let file = match format {
        SourceFormat::Csv => "t.csv",
        _ => "t.jsonl",
    };
    std::fs::write(dir.path().join(file), bytes).unwrap();
    let lake = lake(dir.path());
    let mut t = table("T", file, format);
    if format == SourceFormat::Csv {
        t.csv = Some(CsvOptions::default());
    }
    if keyed {
        t.primary_key = Some("Id".into());
    }
    t.schema = vec![
        col("Id", ColumnType::String),
        col("Amount", ColumnType::Decimal(10, 2)),
        col("Day", ColumnType::Date),
        col("Items", ColumnType::Int64),
    ];
    let source = SourceSpec {
        access: None,
        name: "S".into(),
        description: None,
        max_corrupt_share: Some(1.0),
        tables: vec![t],
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let report =
            match ingest_source(&lake, &source, dir.path(), &IngestOptions::default()).await {
                Ok(r) => r,
                Err(e) => {
                    prop_assert!(!e.to_string().is_empty());
                    return Ok(());
                }
            };
        let t = &report.tables[0];
        prop_assert_eq!(t.read, t.written + t.corrupt, "{:?}", t);
        let process = Process::Ingestion("S".into());
        let model = read_model(&lake, &process)
            .await
            .unwrap()
            .expect("published");
        let rows = |name: &str| {
            let entity = model.entity(name).cloned();
            let lake = &lake;
            let folder = process.folder();
            async move {
                match entity {
                    Some(e) => read_entity(lake, &folder, &e)
                        .await
                        .unwrap()
                        .iter()
                        .map(|b| b.num_rows() as u64)
                        .sum::<u64>(),
                    None => 0,
                }
            }
        };
        prop_assert_eq!(rows("T").await, t.written);
        prop_assert_eq!(rows("S_T_corrupt").await, t.corrupt);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn csv_files_of_any_bytes_lose_no_row(bytes in file_of(CSV_PIECES), keyed in any::<bool>()) {
        loads_without_loss(&bytes, SourceFormat::Csv, keyed)?;
    }

    #[test]
    fn json_lines_files_of_any_bytes_lose_no_row(bytes in file_of(JSONL_PIECES), keyed in any::<bool>()) {
        loads_without_loss(&bytes, SourceFormat::Jsonl, keyed)?;
    }
}

/// Found by this fuzzer: a header with an empty name (`,7,...`) published an attribute
/// without a name, and `model.json` no longer read back.
#[test]
fn a_header_with_an_empty_or_repeated_name_still_publishes_a_readable_table() {
    loads_without_loss(b",7,2024-01-04,1\n", SourceFormat::Csv, false).unwrap();
    loads_without_loss(b"Id,id,,\na,b,c,d\n", SourceFormat::Csv, true).unwrap();
}

/// Found by this fuzzer: JSON lines none of which is an object published a table of no
/// columns whose files did not read back.
#[test]
fn json_lines_without_any_object_still_publish_a_readable_table() {
    loads_without_loss(b"%\xd3\x19\n\"text\"\n[1, 2]\n", SourceFormat::Jsonl, false).unwrap();
}
