//! Ingestion end to end on a local lake: every record read lands in the table or in its
//! corrupt table with the right reason, and the counts reconcile.

use arrow::array::{Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use lakecdp_core::{ColumnType, CsvOptions, SourceFormat, SourceSpec, TableSpec};
use lakecdp_engine::ingest::{ingest_source, IngestOptions};

mod common;
use common::{col, entity, lake, strings, table};
use lakecdp_engine::Error;
use lakecdp_lake::publish::read_model;
use lakecdp_lake::Process;

const ORDERS: &str = "\
OrderId,Amount,OrderDate,Items,ModifiedOn
A1,10.50,2024-01-02,1,2024-01-02T10:00:00Z
A2,oops,2024-01-03,2,2024-01-03T10:00:00Z
A3,5,2024-02-30,1,2024-01-03T10:00:00Z
,7,2024-01-04,1,2024-01-04T10:00:00Z
A4,\"1,200.00\",2024-01-05,3
A5,8,2024-01-05,\"Outlet \"\"B\"\"\",2024-01-05T10:00:00Z
A6,9,2024-01-06,Store \"Outlet\",2024-01-06T10:00:00Z
A1,11.00,2024-01-07,2,2024-01-07T10:00:00Z
A7,12,2024-01-08,2,2024-13-01T10:00:00Z
A8,1,2024-01-09,1,2024-01-09T10:00:00Z
A8,2,2024-01-09,1,2023-01-09T10:00:00Z
";

fn orders_table() -> TableSpec {
    let mut t = table("Orders", "orders*.csv", SourceFormat::Csv);
    t.primary_key = Some("OrderId".into());
    t.last_updated = Some("ModifiedOn".into());
    t.csv = Some(CsvOptions::default());
    t.schema = vec![
        col("OrderId", ColumnType::String),
        col("Amount", ColumnType::Decimal(10, 2)),
        col("OrderDate", ColumnType::Date),
        col("Items", ColumnType::Int64),
        col("ModifiedOn", ColumnType::DateTime),
    ];
    t
}

#[tokio::test]
async fn every_malformed_csv_row_lands_in_the_corrupt_table_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.csv"), ORDERS).unwrap();
    let lake = lake(dir.path());
    let source = SourceSpec {
        access: None,
        name: "Shop".into(),
        description: None,
        max_corrupt_share: Some(0.9),
        tables: vec![orders_table()],
    };
    let report = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap();
    let t = &report.tables[0];
    assert_eq!((t.read, t.written, t.corrupt), (11, 2, 9), "{t:?}");
    assert_eq!(t.read, t.written + t.corrupt);

    let orders = entity(&lake, "Shop", "Orders").await;
    // the later A1 (ModifiedOn 2024-01-07) wins, and so does the A8 read first (later ModifiedOn)
    assert_eq!(strings(&orders, "OrderId"), ["A1", "A8"]);
    assert_eq!(strings(&orders, "Amount"), ["11.00", "1.00"]);
    assert_eq!(strings(&orders, "OrderDate"), ["2024-01-07", "2024-01-09"]);

    let corrupt = entity(&lake, "Shop", "Shop_Orders_corrupt").await;
    let lines: Vec<i64> = corrupt
        .column_by_name("Line")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec();
    let reasons = strings(&corrupt, "Reason");
    let by_line: std::collections::BTreeMap<i64, String> = lines.into_iter().zip(reasons).collect();
    let expect = [
        (
            2,
            "duplicate primary key: `A1` appears again; kept the row at orders.csv:9",
        ),
        (
            3,
            "type mismatch: column `Amount` value `oops` is not a decimal(10,2)",
        ),
        (
            4,
            "bad date: column `OrderDate` value `2024-02-30` is not a date",
        ),
        (5, "missing primary key `OrderId`"),
        (6, "wrong number of fields: expected 5, found 4"),
        (
            7,
            "type mismatch: column `Items` value `Outlet \"B\"` is not a int64",
        ),
        (8, "unescaped quote in field 4"),
        (
            10,
            "bad datetime: column `ModifiedOn` value `2024-13-01T10:00:00Z` is not a datetime",
        ),
        (
            12,
            "duplicate primary key: `A8` appears again; kept the row at orders.csv:11",
        ),
    ];
    assert_eq!(by_line.len(), expect.len(), "{by_line:#?}");
    for (line, reason) in expect {
        assert!(
            by_line[&line].starts_with(reason),
            "line {line}: {}",
            by_line[&line]
        );
    }
    assert!(strings(&corrupt, "File").iter().all(|f| f == "orders.csv"));
    let raw = strings(&corrupt, "Raw");
    assert!(
        raw.contains(&"A6,9,2024-01-06,Store \"Outlet\",2024-01-06T10:00:00Z".to_string()),
        "{raw:?}"
    );
}

#[tokio::test]
async fn too_many_corrupt_rows_publish_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.csv"), ORDERS).unwrap();
    let lake = lake(dir.path());
    let source = SourceSpec {
        access: None,
        name: "Shop".into(),
        description: None,
        max_corrupt_share: None,
        tables: vec![orders_table()],
    };
    let err = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CorruptLimit {
                corrupt: 9,
                read: 11,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("81.8%") && msg.contains("10.0%") && msg.contains("orders.csv:2"),
        "{msg}"
    );
    assert!(err.is_user_error());
    assert!(read_model(&lake, &Process::Ingestion("Shop".into()))
        .await
        .unwrap()
        .is_none());
    assert!(
        lake.list("DataIngestion").await.unwrap().is_empty(),
        "the failed run's files are removed"
    );
}

#[tokio::test]
async fn json_lines_and_parquet_tables_load_with_inferred_schemas() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("members.jsonl"),
        "{\"memberId\":\"M1\",\"points\":10,\"tier\":\"Gold\"}\n{\"memberId\":\"M2\",\"points\":\"19,673\",\"tier\":\"Silver\"}\n\n{\"memberId\":\"M3\",\"points\":5,\"tier\":null}\n{\"memberId\":\"M4\",\n{\"points\":3}\n",
    )
    .unwrap();
    // a Parquet file written with arrow
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("customer_id", arrow::datatypes::DataType::Int64, true),
        arrow::datatypes::Field::new("email", arrow::datatypes::DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            std::sync::Arc::new(Int64Array::from(vec![Some(1), Some(2), None])),
            std::sync::Arc::new(StringArray::from(vec![
                Some("a@x.org"),
                None,
                Some("c@x.org"),
            ])),
        ],
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(dir.path().join("customers.parquet")).unwrap(),
        schema,
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let lake = lake(dir.path());
    let mut members = table("Members", "members.jsonl", SourceFormat::Jsonl);
    members.primary_key = Some("memberId".into());
    // the sample has a string among the numbers, so inference says string: declared types win
    members.schema = vec![col("points", ColumnType::Int64)];
    let mut customers = table("Customers", "customers.parquet", SourceFormat::Parquet);
    customers.primary_key = Some("customer_id".into());
    let source = SourceSpec {
        access: None,
        name: "Mixed".into(),
        description: None,
        max_corrupt_share: Some(0.7),
        tables: vec![members, customers],
    };
    let report = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap();
    let m = &report.tables[0];
    assert_eq!((m.read, m.written, m.corrupt), (5, 2, 3), "{m:?}");
    assert_eq!(
        strings(&entity(&lake, "Mixed", "Members").await, "memberId"),
        ["M1", "M3"]
    );
    let reasons = strings(
        &entity(&lake, "Mixed", "Mixed_Members_corrupt").await,
        "Reason",
    );
    assert!(
        reasons[0].starts_with("type mismatch: column `points` value `19,673` is not a int64"),
        "{reasons:?}"
    );
    assert!(reasons[1].starts_with("invalid JSON"), "{reasons:?}");
    assert!(
        reasons[2].starts_with("missing primary key `memberId`"),
        "{reasons:?}"
    );
    let c = &report.tables[1];
    assert_eq!((c.read, c.written, c.corrupt), (3, 2, 1), "{c:?}");
    assert_eq!(
        strings(&entity(&lake, "Mixed", "Customers").await, "email"),
        ["a@x.org", "∅"]
    );
}

#[tokio::test]
async fn a_cdm_folder_written_by_another_tool_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("partner/Sales");
    std::fs::create_dir_all(folder.join("Customers")).unwrap();
    std::fs::write(
        folder.join("model.json"),
        r#"{
  "name": "Sales", "version": "1.0", "pbi:mashup": {"fastCombine": false},
  "entities": [{
    "$type": "LocalEntity", "name": "Customers",
    "attributes": [
      {"name": "CustomerID", "dataType": "int64"},
      {"name": "Name", "dataType": "string"},
      {"name": "Joined", "dataType": "dateTime"},
      {"name": "Vip", "dataType": "boolean"}
    ],
    "partitions": [
      {"name": "p1", "location": "Customers/Part001.csv",
       "fileFormatSettings": {"$type": "CsvFormatSettings", "columnHeaders": false, "delimiter": ";"}},
      {"name": "p2", "location": "Customers/Part002.csv",
       "fileFormatSettings": {"$type": "CsvFormatSettings", "columnHeaders": false, "delimiter": ";"}}
    ]
  }]
}"#,
    )
    .unwrap();
    std::fs::write(
        folder.join("Customers/Part001.csv"),
        "1;\"Doe; Jane\";2024-01-02T03:04:05;true\n2;Bob;2024-02-03T00:00:00;false\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("Customers/Part002.csv"),
        "3;Kim;not a time;true\n4;Lee;2024-03-04T00:00:00;\n",
    )
    .unwrap();
    let lake = lake(dir.path());
    let mut t = table("Customers", "partner/Sales/model.json", SourceFormat::Cdm);
    t.entity = Some("customers".into());
    t.primary_key = Some("CustomerID".into());
    let source = SourceSpec {
        access: None,
        name: "Partner".into(),
        description: None,
        max_corrupt_share: Some(0.5),
        tables: vec![t.clone()],
    };
    let report = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap();
    let r = &report.tables[0];
    assert_eq!((r.read, r.written, r.corrupt), (4, 3, 1), "{r:?}");
    let customers = entity(&lake, "Partner", "Customers").await;
    assert_eq!(strings(&customers, "Name"), ["Doe; Jane", "Bob", "Lee"]);
    assert_eq!(strings(&customers, "Vip"), ["true", "false", "∅"]);
    let corrupt = entity(&lake, "Partner", "Partner_Customers_corrupt").await;
    assert_eq!(
        strings(&corrupt, "File"),
        ["partner/Sales/Customers/Part002.csv"]
    );
    assert!(strings(&corrupt, "Reason")[0]
        .starts_with("bad datetime: column `Joined` value `not a time`"));

    // the entity vanishes from model.json: a named error, and the last good output stays
    let text = std::fs::read_to_string(folder.join("model.json"))
        .unwrap()
        .replace("\"name\": \"Customers\"", "\"name\": \"Clients\"");
    std::fs::write(folder.join("model.json"), text).unwrap();
    let err = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("entity `customers` is not in partner/Sales/model.json (it has: Clients)"),
        "{err}"
    );
    assert_eq!(
        strings(&entity(&lake, "Partner", "Customers").await, "Name"),
        ["Doe; Jane", "Bob", "Lee"]
    );
}

#[tokio::test]
async fn a_partner_cdm_folder_is_read_without_its_arrow_type_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("partner/Sales");
    std::fs::create_dir_all(folder.join("Customers")).unwrap();
    // Arrow's type parser recurses once per level: this annotation overflowed the stack.
    let deep = format!("{}Int64{}", "List(".repeat(100_000), ")".repeat(100_000));
    let model = serde_json::json!({
        "name": "Sales", "version": "1.0",
        "entities": [{
            "$type": "LocalEntity", "name": "Customers",
            "attributes": [
                {"name": "CustomerID", "dataType": "int64",
                 "annotations": [{"name": "lakecdp:arrowType", "value": "Int8"}]},
                {"name": "Tags", "dataType": "json",
                 "annotations": [{"name": "lakecdp:arrowType", "value": deep}]}
            ],
            "partitions": [{"name": "p1", "location": "Customers/Part001.csv",
                "fileFormatSettings": {"$type": "CsvFormatSettings", "columnHeaders": false, "delimiter": ","}}]
        }]
    });
    std::fs::write(folder.join("model.json"), model.to_string()).unwrap();
    // 300 does not fit the annotated Int8: read with the CDM type, it is an int64
    std::fs::write(folder.join("Customers/Part001.csv"), "300,a\n2,b\n").unwrap();
    let lake = lake(dir.path());
    let mut t = table("Customers", "partner/Sales/model.json", SourceFormat::Cdm);
    t.entity = Some("Customers".into());
    t.primary_key = Some("CustomerID".into());
    let source = SourceSpec {
        access: None,
        name: "Partner".into(),
        description: None,
        max_corrupt_share: None,
        tables: vec![t],
    };
    let report = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap();
    let r = &report.tables[0];
    assert_eq!((r.read, r.written, r.corrupt), (2, 2, 0), "{r:?}");
    let customers = entity(&lake, "Partner", "Customers").await;
    assert_eq!(strings(&customers, "CustomerID"), ["300", "2"]);
    assert_eq!(strings(&customers, "Tags"), ["a", "b"]);
}

/// A local CDM folder `partner/Sales` whose one entity has the given partition
/// locations; `other/x.csv` exists beside the folder and `partner/Sales/Customers/p.csv`
/// in it.
fn partner_folder(dir: &std::path::Path, locations: &[String]) -> SourceSpec {
    let folder = dir.join("partner/Sales");
    std::fs::create_dir_all(folder.join("Customers")).unwrap();
    std::fs::create_dir_all(dir.join("partner/other")).unwrap();
    std::fs::write(folder.join("Customers/p.csv"), "1,in\n").unwrap();
    std::fs::write(dir.join("partner/other/x.csv"), "2,outside\n").unwrap();
    let partitions: Vec<serde_json::Value> = locations
        .iter()
        .enumerate()
        .map(|(i, l)| serde_json::json!({"name": format!("p{i}"), "location": l}))
        .collect();
    let model = serde_json::json!({
        "name": "Sales", "version": "1.0",
        "entities": [{
            "$type": "LocalEntity", "name": "Customers",
            "attributes": [
                {"name": "CustomerID", "dataType": "int64"},
                {"name": "Name", "dataType": "string"}
            ],
            "partitions": partitions
        }]
    });
    std::fs::write(folder.join("model.json"), model.to_string()).unwrap();
    let mut t = table("Customers", "partner/Sales/model.json", SourceFormat::Cdm);
    t.entity = Some("Customers".into());
    t.primary_key = Some("CustomerID".into());
    SourceSpec {
        access: None,
        name: "Partner".into(),
        description: None,
        max_corrupt_share: None,
        tables: vec![t],
    }
}

#[tokio::test]
async fn a_cdm_folder_cannot_name_files_outside_itself() {
    // (`/etc/passwd` without a scheme is a path in the folder, as the CDM has it)
    for outside in [
        "file:///etc/passwd",
        "../other/x.csv",
        "Customers/../../other/*.csv",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let source = partner_folder(dir.path(), &["Customers/p.csv".into(), outside.into()]);
        let lake = lake(dir.path());
        let err = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
            .await
            .unwrap_err();
        match &err {
            Error::LocationOutsideSource {
                table,
                location,
                source_root,
            } => {
                assert_eq!(table, "Customers");
                assert!(
                    location.contains(outside.trim_start_matches("file://")),
                    "{err}"
                );
                assert_eq!(source_root, "partner/Sales");
            }
            other => panic!("{outside}: {other}"),
        }
        assert!(
            err.to_string()
                .contains("is outside the source's location `partner/Sales`"),
            "{err}"
        );
        // nothing was published
        assert!(read_model(&lake, &Process::Ingestion("Partner".into()))
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn a_cdm_folder_may_name_its_own_files_relatively_or_absolutely() {
    let dir = tempfile::tempdir().unwrap();
    let absolute = dir.path().join("partner/Sales/Customers/q.csv");
    let source = partner_folder(
        dir.path(),
        &[
            "./Customers/sub/../p.csv".into(),
            format!("file://{}", absolute.display()),
        ],
    );
    std::fs::write(&absolute, "3,absolute\n").unwrap();
    std::fs::create_dir_all(dir.path().join("partner/Sales/Customers/sub")).unwrap();
    let lake = lake(dir.path());
    let report = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(report.tables[0].written, 2);
    let customers = entity(&lake, "Partner", "Customers").await;
    assert_eq!(strings(&customers, "Name"), ["in", "absolute"]);
}

#[cfg(unix)]
#[tokio::test]
async fn a_local_cdm_folder_cannot_reach_outside_through_a_symbolic_link() {
    let dir = tempfile::tempdir().unwrap();
    let source = partner_folder(dir.path(), &["Customers/*.csv".into()]);
    std::os::unix::fs::symlink(
        dir.path().join("partner/other/x.csv"),
        dir.path().join("partner/Sales/Customers/link.csv"),
    )
    .unwrap();
    let lake = lake(dir.path());
    let err = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LocationOutsideSource { .. }), "{err}");
}

#[tokio::test]
async fn a_manifest_cannot_name_patterns_or_definitions_outside_its_folder() {
    let manifest = |entity_path: &str, root: &str| {
        serde_json::json!({
            "jsonSchemaSemanticVersion": "1.0.0",
            "manifestName": "default",
            "entities": [{
                "type": "LocalEntity", "entityName": "Customers", "entityPath": entity_path,
                "dataPartitionPatterns": [{"name": "all", "rootLocation": root, "globPattern": "/*.csv"}]
            }]
        })
        .to_string()
    };
    for (entity_path, root) in [
        ("Customers.cdm.json/Customers", "local:/../other"),
        ("local:/../other/Customers.cdm.json/Customers", "Customers"),
        ("Customers.cdm.json/Customers", "file:///etc"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("partner/Sales");
        std::fs::create_dir_all(folder.join("Customers")).unwrap();
        std::fs::create_dir_all(dir.path().join("partner/other")).unwrap();
        std::fs::write(folder.join("Customers/p.csv"), "CustomerID\n1\n").unwrap();
        std::fs::write(dir.path().join("partner/other/x.csv"), "CustomerID\n2\n").unwrap();
        std::fs::write(
            folder.join("default.manifest.cdm.json"),
            manifest(entity_path, root),
        )
        .unwrap();
        let mut t = table(
            "Customers",
            "partner/Sales/default.manifest.cdm.json",
            SourceFormat::Cdm,
        );
        t.entity = Some("Customers".into());
        let source = SourceSpec {
            access: None,
            name: "Partner".into(),
            description: None,
            max_corrupt_share: None,
            tables: vec![t],
        };
        let lake = lake(dir.path());
        let err = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::LocationOutsideSource { .. }),
            "{entity_path} {root}: {err}"
        );
    }
}

#[tokio::test]
async fn a_load_that_dies_after_writing_data_leaves_the_last_output_readable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orders.csv"),
        "OrderId,Amount\nA1,1\nA2,2\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("returns.csv"), "ReturnId,Amount\nR1,1\n").unwrap();
    let lake = lake(dir.path());
    let mut orders = table("Orders", "orders.csv", SourceFormat::Csv);
    orders.primary_key = Some("OrderId".into());
    let mut returns = table("Returns", "returns.csv", SourceFormat::Csv);
    returns.primary_key = Some("ReturnId".into());
    returns.schema = vec![col("Amount", ColumnType::Int64)];
    let source = SourceSpec {
        access: None,
        name: "Shop".into(),
        description: None,
        max_corrupt_share: None,
        tables: vec![orders, returns],
    };
    let first = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap();

    // The next load writes the Orders partition, then dies on Returns (every row corrupt).
    std::fs::write(
        dir.path().join("orders.csv"),
        "OrderId,Amount\nA1,10\nA2,20\nA3,30\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("returns.csv"), "ReturnId,Amount\nR1,one\n").unwrap();
    let err = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CorruptLimit { .. }), "{err}");

    // Readers still see the first run, whole.
    let orders = entity(&lake, "Shop", "Orders").await;
    assert_eq!(strings(&orders, "OrderId"), ["A1", "A2"]);
    assert_eq!(strings(&orders, "Amount"), ["1", "2"]);
    let model = read_model(&lake, &Process::Ingestion("Shop".into()))
        .await
        .unwrap()
        .unwrap();
    let run = model
        .annotations
        .iter()
        .find(|a| a.name == "lakecdp:runId")
        .unwrap()
        .value
        .clone()
        .unwrap();
    assert_eq!(run, first.run_id.to_string());
    // and the dead run's files are gone
    let runs: std::collections::BTreeSet<String> = lake
        .list("DataIngestion/Shop/Orders")
        .await
        .unwrap()
        .iter()
        .filter_map(|m| lake.relative(&m.location))
        .filter_map(|r| r.split('/').nth(3).map(str::to_string))
        .collect();
    assert_eq!(
        runs.into_iter().collect::<Vec<_>>(),
        [first.run_id.to_string()]
    );
}

#[tokio::test]
async fn a_manifest_cdm_json_folder_is_read_with_its_partitions_and_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("partner/Sales");
    std::fs::create_dir_all(folder.join("Customers/2026")).unwrap();
    std::fs::write(
        folder.join("default.manifest.cdm.json"),
        r#"{
  "jsonSchemaSemanticVersion": "1.0.0",
  "manifestName": "default",
  "entities": [
    {"type": "LocalEntity", "entityName": "Orders", "entityPath": "Orders.cdm.json/Orders",
     "dataPartitions": [{"location": "Orders/o.csv"}]},
    {"type": "LocalEntity", "entityName": "Customers",
     "entityPath": "local:/Customers.cdm.json/Customers",
     "dataPartitions": [
       {"location": "Customers/first.csv",
        "exhibitsTraits": [{"traitReference": "is.partition.format.CSV",
          "arguments": [{"name": "columnHeaders", "value": "true"},
                        {"name": "delimiter", "value": "|"}]}]}
     ],
     "dataPartitionPatterns": [
       {"name": "yearly", "rootLocation": "Customers/2026", "globPattern": "/*.csv",
        "exhibitsTraits": [{"traitReference": "is.partition.format.CSV",
          "arguments": [{"name": "columnHeaders", "value": "true"},
                        {"name": "delimiter", "value": "|"}]}]}
     ]}
  ]
}"#,
    )
    .unwrap();
    std::fs::write(
        folder.join("Customers.cdm.json"),
        r#"{
  "jsonSchemaSemanticVersion": "1.0.0",
  "definitions": [{
    "entityName": "Customers",
    "hasAttributes": [{
      "attributeGroupReference": {
        "attributeGroupName": "attributesAddedAtThisScope",
        "members": [
          {"name": "CustomerID", "dataFormat": "Int32"},
          {"name": "Name", "dataFormat": "String"},
          {"name": "Since", "dataFormat": "Date"}
        ]
      }
    }]
  }]
}"#,
    )
    .unwrap();
    std::fs::write(
        folder.join("Customers/first.csv"),
        "CustomerID|Name|Since\n1|Ann|2024-01-02\n2|Bob|2024-02-03\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("Customers/2026/jan.csv"),
        "CustomerID|Name|Since\n3|Cy|2026-01-05\nx|Dee|2026-01-06\n",
    )
    .unwrap();
    std::fs::write(folder.join("Customers/2026/notes.txt"), "not data").unwrap();
    let lake = lake(dir.path());
    let mut t = table(
        "Customers",
        "partner/Sales/default.manifest.cdm.json",
        SourceFormat::Cdm,
    );
    t.entity = Some("Customers".into());
    t.primary_key = Some("CustomerID".into());
    let source = SourceSpec {
        access: None,
        name: "Partner".into(),
        description: None,
        max_corrupt_share: Some(0.5),
        tables: vec![t.clone()],
    };
    let report = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap();
    let r = &report.tables[0];
    assert_eq!((r.read, r.written, r.corrupt), (4, 3, 1), "{r:?}");
    let customers = entity(&lake, "Partner", "Customers").await;
    assert_eq!(strings(&customers, "Name"), ["Ann", "Bob", "Cy"]);
    assert_eq!(
        strings(&customers, "Since"),
        ["2024-01-02", "2024-02-03", "2026-01-05"]
    );
    assert_eq!(
        customers
            .schema()
            .field_with_name("CustomerID")
            .unwrap()
            .data_type(),
        &arrow::datatypes::DataType::Int64
    );
    let reasons = strings(
        &entity(&lake, "Partner", "Partner_Customers_corrupt").await,
        "Reason",
    );
    assert!(reasons[0].contains("`CustomerID` value `x`"), "{reasons:?}");

    // the entity is checked against the manifest on every refresh
    t.entity = Some("Clients".into());
    let source = SourceSpec {
        tables: vec![t],
        ..source
    };
    let err = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "entity `Clients` is not in partner/Sales/default.manifest.cdm.json (it has: Orders, Customers)"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_delta_table_is_read_at_its_current_version() {
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warehouse/members");
    std::fs::create_dir_all(&path).unwrap();
    let url = url::Url::from_directory_path(&path).unwrap();
    let batch = |ids: &[i64], tiers: &[&str], emails: &[Option<&str>]| {
        RecordBatch::try_from_iter(vec![
            ("Id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
            (
                "Tier",
                Arc::new(StringArray::from(tiers.to_vec())) as ArrayRef,
            ),
            (
                "Email",
                Arc::new(StringArray::from(emails.to_vec())) as ArrayRef,
            ),
        ])
        .unwrap()
    };
    // version 0: three members, partitioned by tier; 1: one more; 2: member 2 deleted
    let table = deltalake::DeltaTable::try_from_url(url.clone())
        .await
        .unwrap()
        .write(vec![batch(
            &[1, 2, 3],
            &["Gold", "Silver", "Gold"],
            &[Some("a@x.org"), Some("b@x.org"), None],
        )])
        .with_partition_columns(["Tier"])
        .await
        .unwrap();
    let table = table
        .write(vec![batch(&[4], &["Silver"], &[Some("d@x.org")])])
        .await
        .unwrap();
    let (table, _) = table.delete().with_predicate("Id = 2").await.unwrap();
    assert_eq!(table.version(), Some(2));

    let lake = lake(dir.path());
    let mut t = table_spec_delta();
    t.schema = vec![col("Id", ColumnType::String)]; // declared types win
    let source = SourceSpec {
        access: None,
        name: "Loyalty".into(),
        description: None,
        max_corrupt_share: None,
        tables: vec![t],
    };
    let report = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap();
    let r = &report.tables[0];
    assert_eq!((r.read, r.written, r.corrupt), (3, 3, 0), "{r:?}");
    let members = entity(&lake, "Loyalty", "Members").await;
    let mut rows: Vec<String> = strings(&members, "Id")
        .into_iter()
        .zip(strings(&members, "Tier"))
        .zip(strings(&members, "Email"))
        .map(|((i, t), e)| format!("{i}/{t}/{e}"))
        .collect();
    rows.sort();
    assert_eq!(rows, ["1/Gold/a@x.org", "3/Gold/∅", "4/Silver/d@x.org"]);
    assert_eq!(
        members.schema().field_with_name("Id").unwrap().data_type(),
        &arrow::datatypes::DataType::Utf8
    );

    // the same version again is unchanged; a new version is loaded
    let again = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap();
    assert!(again.unchanged);
    table
        .write(vec![batch(&[5], &["Gold"], &[Some("e@x.org")])])
        .await
        .unwrap();
    let next = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(next.tables[0].written, 4);
}

/// A Delta table in a folder whose name a URL encodes, partitioned by values its
/// writer escapes in folder names (`09:00` is written `Slot=09%3A00`): every data file
/// is read where it is, with its partition value.
#[tokio::test]
async fn a_delta_table_in_a_folder_with_spaces_and_escaped_partitions_is_read() {
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warehouse/our members");
    std::fs::create_dir_all(&path).unwrap();
    let url = url::Url::from_directory_path(&path).unwrap();
    let batch = RecordBatch::try_from_iter(vec![
        ("Id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
        (
            "Slot",
            Arc::new(StringArray::from(vec!["09:00", "17:30", "09:00"])) as ArrayRef,
        ),
    ])
    .unwrap();
    deltalake::DeltaTable::try_from_url(url)
        .await
        .unwrap()
        .write(vec![batch])
        .with_partition_columns(["Slot"])
        .await
        .unwrap();
    let escaped = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("Slot="))
        .collect::<Vec<_>>();
    assert!(escaped.iter().any(|n| n.contains('%')), "{escaped:?}");
    let lake = lake(dir.path());
    let source = delta_members("warehouse/our members");
    let report = ingest_source(&lake, &source, dir.path(), &IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(report.tables[0].written, 3, "{:?}", report.tables[0]);
    let members = entity(&lake, "Loyalty", "Members").await;
    let mut rows: Vec<String> = strings(&members, "Id")
        .into_iter()
        .zip(strings(&members, "Slot"))
        .map(|(i, s)| format!("{i}/{s}"))
        .collect();
    rows.sort();
    assert_eq!(rows, ["1/09:00", "2/17:30", "3/09:00"]);
}

/// A Delta table of two rows (`Id` 1 and 2) written by deltalake at `path`; its one
/// data file.
async fn two_row_delta_table(path: &std::path::Path) -> std::path::PathBuf {
    use arrow::array::{ArrayRef, Int64Array};
    use std::sync::Arc;
    std::fs::create_dir_all(path).unwrap();
    let url = url::Url::from_directory_path(path).unwrap();
    let batch = RecordBatch::try_from_iter(vec![(
        "Id",
        Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
    )])
    .unwrap();
    deltalake::DeltaTable::try_from_url(url)
        .await
        .unwrap()
        .write(vec![batch])
        .await
        .unwrap();
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap()
}

#[tokio::test]
async fn a_delta_log_cannot_name_data_files_outside_the_table() {
    let escapes = |outside: &std::path::Path| {
        vec![
            "../outside/x.parquet".to_string(),
            "%2E%2E/outside/x.parquet".to_string(),
            format!("file://{}", outside.display()),
            outside.display().to_string(),
        ]
    };
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("warehouse/outside/x.parquet");
    for (i, escape) in escapes(&outside).into_iter().enumerate() {
        let path = dir.path().join(format!("warehouse/members{i}"));
        // a data file of the table, copied outside it, then named by a new commit
        let data = two_row_delta_table(&path).await;
        std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
        std::fs::copy(&data, &outside).unwrap();
        let size = std::fs::metadata(&outside).unwrap().len();
        let add = serde_json::json!({"add": {
            "path": escape, "partitionValues": {}, "size": size,
            "modificationTime": 1_700_000_000_000i64, "dataChange": true
        }});
        std::fs::write(
            path.join("_delta_log/00000000000000000001.json"),
            format!("{add}\n"),
        )
        .unwrap();
        let err = load_delta_members(dir.path(), &format!("warehouse/members{i}")).await;
        assert!(
            matches!(&err, Error::LocationOutsideSource { table, .. } if table == "Members"),
            "{escape}: {err}"
        );
    }
}

/// Load the Delta table at `folder` (under `dir`) as the source `Loyalty.Members`, keyed
/// on `Id`, expecting it to be refused; the error.
async fn load_delta_members(dir: &std::path::Path, folder: &str) -> Error {
    ingest_source(
        &lake(dir),
        &delta_members(folder),
        dir,
        &IngestOptions::default(),
    )
    .await
    .unwrap_err()
}

/// The source `Loyalty` of one Delta table, `Members` at `folder`, keyed on `Id`.
fn delta_members(folder: &str) -> SourceSpec {
    let mut t = table("Members", folder, SourceFormat::Delta);
    t.primary_key = Some("Id".into());
    SourceSpec {
        access: None,
        name: "Loyalty".into(),
        description: None,
        max_corrupt_share: None,
        tables: vec![t],
    }
}

/// A data file of a Delta table that is a symbolic link to a file outside the table's
/// folder is refused, whether the table is read file by file or whole by deltalake.
#[cfg(unix)]
#[tokio::test]
async fn a_delta_data_file_linked_from_outside_the_table_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (i, whole) in [false, true].into_iter().enumerate() {
        let path = dir.path().join(format!("warehouse/linked{i}"));
        let data = two_row_delta_table(&path).await;
        let outside = dir.path().join(format!("outside{i}.parquet"));
        std::fs::rename(&data, &outside).unwrap();
        std::os::unix::fs::symlink(&outside, &data).unwrap();
        if whole {
            // a protocol whose readers need deltalake's own: the table is read whole
            let protocol = serde_json::json!({"protocol": {
                "minReaderVersion": 3, "minWriterVersion": 7,
                "readerFeatures": ["deletionVectors"], "writerFeatures": ["deletionVectors"]
            }});
            std::fs::write(
                path.join("_delta_log/00000000000000000001.json"),
                format!("{protocol}\n"),
            )
            .unwrap();
        }
        let err = load_delta_members(dir.path(), &format!("warehouse/linked{i}")).await;
        assert!(
            matches!(&err, Error::LocationOutsideSource { table, .. } if table == "Members"),
            "whole {whole}: {err}"
        );
    }
}

#[tokio::test]
async fn a_delta_deletion_vector_cannot_be_read_from_outside_the_table() {
    let dir = tempfile::tempdir().unwrap();
    // an absolute path elsewhere, and a UUID-named vector whose prefix climbs out
    let escapes = [
        (
            "p",
            format!("file://{}", dir.path().join("secret.bin").display()),
        ),
        ("u", "../../..ab^-aBcD12345678901234".to_string()),
    ];
    for (i, (storage, dv_path)) in escapes.iter().enumerate() {
        let path = dir.path().join(format!("warehouse/dv{i}"));
        let data = two_row_delta_table(&path).await;
        let name = data.file_name().unwrap().to_str().unwrap().to_string();
        let size = std::fs::metadata(&data).unwrap().len();
        // the file is removed and added again with a deletion vector
        let protocol = serde_json::json!({"protocol": {
            "minReaderVersion": 3, "minWriterVersion": 7,
            "readerFeatures": ["deletionVectors"], "writerFeatures": ["deletionVectors"]
        }});
        let remove = serde_json::json!({"remove": {
            "path": name, "deletionTimestamp": 1_700_000_000_000i64, "dataChange": true
        }});
        let add = serde_json::json!({"add": {
            "path": name, "partitionValues": {}, "size": size,
            "modificationTime": 1_700_000_000_000i64, "dataChange": true,
            "deletionVector": {"storageType": storage, "pathOrInlineDv": dv_path,
                               "offset": 1, "sizeInBytes": 36, "cardinality": 1}
        }});
        std::fs::write(
            path.join("_delta_log/00000000000000000001.json"),
            format!("{protocol}\n{remove}\n{add}\n"),
        )
        .unwrap();
        let err = load_delta_members(dir.path(), &format!("warehouse/dv{i}")).await;
        assert!(
            matches!(&err, Error::LocationOutsideSource { table, .. } if table == "Members"),
            "{storage} {dv_path}: {err}"
        );
    }
}

fn table_spec_delta() -> TableSpec {
    let mut t = table("Members", "warehouse/members", SourceFormat::Delta);
    t.primary_key = Some("Id".into());
    t
}
