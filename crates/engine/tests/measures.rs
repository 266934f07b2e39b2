//! Measures end to end on a local lake: small in-memory `Customer` and `Orders` tables,
//! the published `Measures/` entities read back and compared with hand-computed values.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use datafusion::datasource::MemTable;
use lakecdp_core::{MeasureKind, MeasureSpec};
use lakecdp_engine::measures::{run, MeasuresReport};
use lakecdp_engine::{EngineKind, Error, Session};
use lakecdp_lake::partition::read_entity;
use lakecdp_lake::publish::read_model;
use lakecdp_lake::{Lake, Process};

mod common;
use common::{lake, strings};

/// A column name that would break SQL built from text.
const WEIRD: &str = "Amount'); DROP TABLE Orders; --";
const INJECTION: &str = "x' OR '1'='1";

fn ts(s: &str) -> i64 {
    s.parse::<DateTime<Utc>>().unwrap().timestamp_micros()
}

fn now() -> DateTime<Utc> {
    "2024-04-01T00:00:00Z".parse().unwrap()
}

/// Customers C1..C4 (C4 has no orders) and six orders:
///
/// | order | customer | amount | channel | status   | note        | date                 |
/// |-------|----------|--------|---------|----------|-------------|----------------------|
/// | O1    | C1       | 10     | web     | paid     | null        | 2024-03-30T10:00     |
/// | O2    | C1       | 30     | store   | paid     | gift        | 2024-02-15T18:00     |
/// | O3    | C1       | 20     | web     | refunded | " " (blank) | 2023-12-01T00:00     |
/// | O4    | C2       | 50     | store   | paid     | INJECTION   | 2024-03-31T23:00     |
/// | O5    | C2       | 5      | web     | paid     | rush gift   | 2024-01-02T00:00     |
/// | O6    | C3       | 7      | web     | paid     | null        | 2024-01-01T23:59:59  |
async fn session(dir: &std::path::Path) -> (Session, Lake) {
    session_over(lake(dir)).await
}

async fn session_over(lake: Lake) -> (Session, Lake) {
    let session = Session::new(&EngineKind::Local, lake.clone())
        .await
        .unwrap();
    let ctx = session.context();

    let schema = Arc::new(Schema::new(vec![
        Field::new("CustomerId", DataType::Utf8, false),
        Field::new("Name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["C1", "C2", "C3", "C4"])),
            Arc::new(StringArray::from(vec!["Ann", "Bob", "Cy", "Di"])),
        ],
    )
    .unwrap();
    ctx.register_table(
        "Customer",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();

    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("OrderId", DataType::Utf8, false),
        Field::new("CustomerId", DataType::Utf8, false),
        Field::new("Amount", DataType::Int64, true),
        Field::new("Channel", DataType::Utf8, true),
        Field::new("Status", DataType::Utf8, true),
        Field::new("Note", DataType::Utf8, true),
        Field::new("OrderDate", utc, true),
        Field::new(WEIRD, DataType::Int64, true),
    ]));
    let amounts = vec![10, 30, 20, 50, 5, 7];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["O1", "O2", "O3", "O4", "O5", "O6"])),
        Arc::new(StringArray::from(vec!["C1", "C1", "C1", "C2", "C2", "C3"])),
        Arc::new(Int64Array::from(amounts.clone())),
        Arc::new(StringArray::from(vec![
            "web", "store", "web", "store", "web", "web",
        ])),
        Arc::new(StringArray::from(vec![
            "paid", "paid", "refunded", "paid", "paid", "paid",
        ])),
        Arc::new(StringArray::from(vec![
            None,
            Some("gift"),
            Some(" "),
            Some(INJECTION),
            Some("rush gift"),
            None,
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![
                ts("2024-03-30T10:00:00Z"),
                ts("2024-02-15T18:00:00Z"),
                ts("2023-12-01T00:00:00Z"),
                ts("2024-03-31T23:00:00Z"),
                ts("2024-01-02T00:00:00Z"),
                ts("2024-01-01T23:59:59Z"),
            ])
            .with_timezone("UTC"),
        ),
        Arc::new(Int64Array::from(amounts)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    ctx.register_table(
        "Orders",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    (session, lake)
}

fn measures(text: &str) -> Vec<MeasureSpec> {
    #[derive(serde::Deserialize)]
    struct Wrapper {
        measures: Vec<MeasureSpec>,
    }
    let measures = toml::from_str::<Wrapper>(text).unwrap().measures;
    assert!(lakecdp_core::validate_measures(&measures).is_empty());
    measures
}

/// An entity of the published `Measures/` folder.
async fn published(lake: &Lake, name: &str) -> RecordBatch {
    let model = read_model(lake, &Process::Measures)
        .await
        .unwrap()
        .expect("published");
    let entity = model.entity(name).expect("entity");
    let batches = read_entity(lake, &Process::Measures.folder(), entity)
        .await
        .unwrap();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// Column `column` of `batch` by customer (nulls as `∅`).
fn by_customer(batch: &RecordBatch, column: &str) -> BTreeMap<String, String> {
    strings(batch, "CustomerId")
        .into_iter()
        .zip(strings(batch, column))
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Rows of `batch` as `a|b|c` strings over `columns`, sorted.
fn rows(batch: &RecordBatch, columns: &[&str]) -> Vec<String> {
    let cols: Vec<Vec<String>> = columns.iter().map(|c| strings(batch, c)).collect();
    let mut out: Vec<String> = (0..batch.num_rows())
        .map(|i| {
            cols.iter()
                .map(|c| c[i].as_str())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    out.sort();
    out
}

fn attribute(name: &str, function: &str, rest: &str) -> String {
    format!(
        "[[measures]]\nname = \"{name}\"\nkind = \"customer_attribute\"\ntable = \"Orders\"\nfunction = \"{function}\"\n{rest}\n"
    )
}

async fn run_ok(session: &Session, text: &str) -> MeasuresReport {
    run(session, &measures(text), now(), 3).await.unwrap()
}

#[tokio::test]
async fn each_function_gives_the_hand_computed_value() {
    let dir = tempfile::tempdir().unwrap();
    let (session, lake) = session(dir.path()).await;
    let text = [
        attribute("TotalSpend", "sum", "column = \"Amount\"\ndefault = 0"),
        attribute("AvgSpend", "average", "column = \"Amount\""),
        attribute("Orders", "count", ""),
        attribute("Notes", "count", "column = \"Note\""),
        attribute("Channels", "count_distinct", "column = \"Channel\""),
        attribute("Smallest", "min", "column = \"Amount\""),
        attribute("Largest", "max", "column = \"Amount\""),
        attribute(
            "FirstOrder",
            "first",
            "column = \"OrderId\"\norder_by = \"OrderDate\"",
        ),
        attribute(
            "LastOrder",
            "last",
            "column = \"OrderId\"\norder_by = \"OrderDate\"",
        ),
        attribute(
            "LastNote",
            "last",
            "column = \"Note\"\norder_by = \"OrderDate\"",
        ),
        attribute(
            "NoteOfLatest",
            "argmax",
            "column = \"Note\"\norder_by = \"OrderDate\"",
        ),
        attribute(
            "BiggestOrder",
            "argmax",
            "column = \"OrderId\"\norder_by = \"Amount\"",
        ),
        attribute(
            "SmallestOrder",
            "argmin",
            "column = \"OrderId\"\norder_by = \"Amount\"",
        ),
    ]
    .concat();
    let report = run_ok(&session, &text).await;
    assert_eq!(report.measures.len(), 13);
    assert!(report
        .measures
        .iter()
        .all(|m| m.entity == "Customer_Measure" && m.rows == 4 && m.customers_without_data == 1));

    let cm = published(&lake, "Customer_Measure").await;
    assert_eq!(cm.num_rows(), 4);
    let names: Vec<_> = cm
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names[0], "CustomerId");
    assert_eq!(names.len(), 14);
    let check = |column: &str, want: &[(&str, &str)]| {
        assert_eq!(by_customer(&cm, column), expect(want), "{column}");
    };
    // C4 has no orders: the default replaces the missing value, or null without one
    check(
        "TotalSpend",
        &[("C1", "60"), ("C2", "55"), ("C3", "7"), ("C4", "0")],
    );
    check(
        "AvgSpend",
        &[("C1", "20.0"), ("C2", "27.5"), ("C3", "7.0"), ("C4", "∅")],
    );
    check(
        "Orders",
        &[("C1", "3"), ("C2", "2"), ("C3", "1"), ("C4", "∅")],
    );
    // count of a column counts its non-null values
    check(
        "Notes",
        &[("C1", "2"), ("C2", "2"), ("C3", "0"), ("C4", "∅")],
    );
    check(
        "Channels",
        &[("C1", "2"), ("C2", "2"), ("C3", "1"), ("C4", "∅")],
    );
    check(
        "Smallest",
        &[("C1", "10"), ("C2", "5"), ("C3", "7"), ("C4", "∅")],
    );
    check(
        "Largest",
        &[("C1", "30"), ("C2", "50"), ("C3", "7"), ("C4", "∅")],
    );
    check(
        "FirstOrder",
        &[("C1", "O3"), ("C2", "O5"), ("C3", "O6"), ("C4", "∅")],
    );
    check(
        "LastOrder",
        &[("C1", "O1"), ("C2", "O4"), ("C3", "O6"), ("C4", "∅")],
    );
    // last skips empty values; argmax takes the latest row whatever its value
    check(
        "LastNote",
        &[("C1", "gift"), ("C2", INJECTION), ("C3", "∅"), ("C4", "∅")],
    );
    check(
        "NoteOfLatest",
        &[("C1", "∅"), ("C2", INJECTION), ("C3", "∅"), ("C4", "∅")],
    );
    check(
        "BiggestOrder",
        &[("C1", "O2"), ("C2", "O4"), ("C3", "O6"), ("C4", "∅")],
    );
    check(
        "SmallestOrder",
        &[("C1", "O1"), ("C2", "O5"), ("C3", "O6"), ("C4", "∅")],
    );
}

#[tokio::test]
async fn every_filter_kind_selects_the_right_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (session, lake) = session(dir.path()).await;
    let f = |name: &str, function: &str, column: &str, filter: &str| {
        let column = if column.is_empty() {
            String::new()
        } else {
            format!("column = \"{column}\"\n")
        };
        attribute(name, function, &format!("{column}filters = [{filter}]"))
    };
    let text = [
        f("Eq", "sum", "Amount", r#"{ column = "Status", op = "eq", value = "paid" }"#),
        f("Ne", "sum", "Amount", r#"{ column = "Status", op = "ne", value = "paid" }"#),
        f("Lt", "count", "", r#"{ column = "Amount", op = "lt", value = 10 }"#),
        f("Le", "count", "", r#"{ column = "Amount", op = "le", value = 10 }"#),
        f("Gt", "sum", "Amount", r#"{ column = "Amount", op = "gt", value = 20 }"#),
        f("Ge", "sum", "Amount", r#"{ column = "Amount", op = "ge", value = 20 }"#),
        f("In", "count", "", r#"{ column = "Channel", op = "in", value = ["store", "phone"] }"#),
        f("NotIn", "count", "", r#"{ column = "Channel", op = "not_in", value = ["store"] }"#),
        f("Contains", "count", "", r#"{ column = "Note", op = "contains", value = "gift" }"#),
        f("Empty", "count", "", r#"{ column = "Note", op = "is_empty" }"#),
        f("NotEmpty", "count", "", r#"{ column = "Note", op = "is_not_empty" }"#),
        // text compared with a timestamp column is read as a time
        f("Since", "count", "", r#"{ column = "OrderDate", op = "ge", value = "2024-03-01T00:00:00Z" }"#),
        // two filters: both must hold
        f(
            "Both",
            "sum",
            "Amount",
            r#"{ column = "Channel", op = "eq", value = "web" }, { column = "Status", op = "eq", value = "paid" }"#,
        ),
    ]
    .concat();
    run_ok(&session, &text).await;
    let cm = published(&lake, "Customer_Measure").await;
    let check = |column: &str, want: &[(&str, &str)]| {
        assert_eq!(by_customer(&cm, column), expect(want), "{column}");
    };
    check(
        "Eq",
        &[("C1", "40"), ("C2", "55"), ("C3", "7"), ("C4", "∅")],
    );
    check("Ne", &[("C1", "20"), ("C2", "∅"), ("C3", "∅"), ("C4", "∅")]);
    check("Lt", &[("C1", "∅"), ("C2", "1"), ("C3", "1"), ("C4", "∅")]);
    check("Le", &[("C1", "1"), ("C2", "1"), ("C3", "1"), ("C4", "∅")]);
    check(
        "Gt",
        &[("C1", "30"), ("C2", "50"), ("C3", "∅"), ("C4", "∅")],
    );
    check(
        "Ge",
        &[("C1", "50"), ("C2", "50"), ("C3", "∅"), ("C4", "∅")],
    );
    check("In", &[("C1", "1"), ("C2", "1"), ("C3", "∅"), ("C4", "∅")]);
    check(
        "NotIn",
        &[("C1", "2"), ("C2", "1"), ("C3", "1"), ("C4", "∅")],
    );
    check(
        "Contains",
        &[("C1", "1"), ("C2", "1"), ("C3", "∅"), ("C4", "∅")],
    );
    // null and blank text are empty
    check(
        "Empty",
        &[("C1", "2"), ("C2", "∅"), ("C3", "1"), ("C4", "∅")],
    );
    check(
        "NotEmpty",
        &[("C1", "1"), ("C2", "2"), ("C3", "∅"), ("C4", "∅")],
    );
    check(
        "Since",
        &[("C1", "1"), ("C2", "1"), ("C3", "∅"), ("C4", "∅")],
    );
    check(
        "Both",
        &[("C1", "10"), ("C2", "5"), ("C3", "7"), ("C4", "∅")],
    );
}

#[tokio::test]
async fn names_and_values_are_data_never_query_text() {
    let dir = tempfile::tempdir().unwrap();
    let (session, lake) = session(dir.path()).await;
    let text = format!(
        r#"
[[measures]]
name = "Injected"
kind = "customer_attribute"
table = "Orders"
function = "count"
filters = [{{ column = "Note", op = "eq", value = "{INJECTION}" }}]

[[measures]]
name = "InjectedIn"
kind = "customer_attribute"
table = "Orders"
function = "count"
filters = [{{ column = "Note", op = "in", value = ["{INJECTION}"] }}]

[[measures]]
name = "Revenue"
kind = "business"
table = "Orders"
function = "sum"
column = "{WEIRD}"
filters = [{{ column = "{WEIRD}", op = "ne", value = "1' OR '1'='1" }}]
"#,
        WEIRD = WEIRD.replace('"', "\\\"")
    );
    // the text value compared with a number column is not a number: refused, not run
    let err = run(&session, &measures(&text), now(), 3).await.unwrap_err();
    assert!(
        matches!(&err, Error::Measure { measure, .. } if measure == "Revenue"),
        "{err}"
    );
    let text = text.replace("value = \"1' OR '1'='1\"", "value = 0");
    run_ok(&session, &text).await;
    let cm = published(&lake, "Customer_Measure").await;
    // only the row whose note is exactly the string matches
    let want = expect(&[("C1", "∅"), ("C2", "1"), ("C3", "∅"), ("C4", "∅")]);
    assert_eq!(by_customer(&cm, "Injected"), want);
    assert_eq!(by_customer(&cm, "InjectedIn"), want);
    let revenue = published(&lake, "Revenue").await;
    assert_eq!(strings(&revenue, "Revenue"), ["122"]);
    // the tables are untouched
    let orders = session
        .context()
        .table("Orders")
        .await
        .unwrap()
        .count()
        .await
        .unwrap();
    assert_eq!(orders, 6);
}

#[tokio::test]
async fn relative_and_absolute_windows() {
    let dir = tempfile::tempdir().unwrap();
    let (session, lake) = session(dir.path()).await;
    // 90 days before 2024-04-01T00:00Z is 2024-01-02T00:00Z: O5 is on the bound (in),
    // O6 one second before it (out), O3 long before (out)
    let text = [
        attribute(
            "Spend90",
            "sum",
            "column = \"Amount\"\ntime_column = \"OrderDate\"\nwindow = { last = \"90 days\" }\ndefault = -1",
        ),
        attribute(
            "Orders2Weeks",
            "count",
            "time_column = \"OrderDate\"\nwindow = { last = \"2 weeks\" }",
        ),
        attribute(
            "Spend1Year",
            "sum",
            "column = \"Amount\"\ntime_column = \"OrderDate\"\nwindow = { last = \"1 year\" }",
        ),
        // whole days, both included: O2 (evening of the 15th), O5 and O6
        attribute(
            "SpendJanToMidFeb",
            "sum",
            "column = \"Amount\"\ntime_column = \"OrderDate\"\nwindow = { from = 2024-01-01, to = 2024-02-15 }",
        ),
        attribute(
            "SpendSinceMarch",
            "sum",
            "column = \"Amount\"\ntime_column = \"OrderDate\"\nwindow = { from = \"2024-03-01\" }",
        ),
        attribute(
            "SpendBefore2024",
            "sum",
            "column = \"Amount\"\ntime_column = \"OrderDate\"\nwindow = { to = 2023-12-31 }",
        ),
    ]
    .concat();
    let report = run_ok(&session, &text).await;
    let spend90 = &report.measures[0];
    assert_eq!(spend90.name, "Spend90");
    // C3's only order and C4 have no data in the window
    assert_eq!(spend90.customers_without_data, 2);
    let cm = published(&lake, "Customer_Measure").await;
    let check = |column: &str, want: &[(&str, &str)]| {
        assert_eq!(by_customer(&cm, column), expect(want), "{column}");
    };
    check(
        "Spend90",
        &[("C1", "40"), ("C2", "55"), ("C3", "-1"), ("C4", "-1")],
    );
    check(
        "Orders2Weeks",
        &[("C1", "1"), ("C2", "1"), ("C3", "∅"), ("C4", "∅")],
    );
    check(
        "Spend1Year",
        &[("C1", "60"), ("C2", "55"), ("C3", "7"), ("C4", "∅")],
    );
    check(
        "SpendJanToMidFeb",
        &[("C1", "30"), ("C2", "5"), ("C3", "7"), ("C4", "∅")],
    );
    check(
        "SpendSinceMarch",
        &[("C1", "10"), ("C2", "50"), ("C3", "∅"), ("C4", "∅")],
    );
    check(
        "SpendBefore2024",
        &[("C1", "20"), ("C2", "∅"), ("C3", "∅"), ("C4", "∅")],
    );
}

#[tokio::test]
async fn customer_and_business_measures_with_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let (session, lake) = session(dir.path()).await;
    let text = r#"
[[measures]]
name = "SpendByChannel"
kind = "customer"
table = "Orders"
function = "sum"
column = "Amount"
dimensions = ["Channel"]
default = 0
description = "spend per channel"

[[measures]]
name = "OrdersByStatus"
kind = "customer"
table = "Orders"
function = "count"
dimensions = ["Status"]

[[measures]]
name = "RevenueByChannel"
kind = "business"
table = "Orders"
function = "sum"
column = "Amount"
dimensions = ["Channel"]

[[measures]]
name = "PaidRevenue"
kind = "business"
table = "Orders"
function = "sum"
column = "Amount"
filters = [{ column = "Status", op = "eq", value = "paid" }]

[[measures]]
name = "Buyers"
kind = "business"
table = "Orders"
function = "count_distinct"
column = "CustomerId"
"#;
    let report = run_ok(&session, text).await;
    let summary: Vec<_> = report
        .measures
        .iter()
        .map(|m| {
            (
                m.name.as_str(),
                m.kind,
                m.entity.as_str(),
                m.rows,
                m.customers_without_data,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "SpendByChannel",
                MeasureKind::Customer,
                "SpendByChannel",
                6,
                1
            ),
            (
                "OrdersByStatus",
                MeasureKind::Customer,
                "OrdersByStatus",
                4,
                1
            ),
            (
                "RevenueByChannel",
                MeasureKind::Business,
                "RevenueByChannel",
                2,
                0
            ),
            ("PaidRevenue", MeasureKind::Business, "PaidRevenue", 1, 0),
            ("Buyers", MeasureKind::Business, "Buyers", 1, 0),
        ]
    );
    // no customer attribute: no Customer_Measure
    let model = read_model(&lake, &Process::Measures)
        .await
        .unwrap()
        .unwrap();
    assert!(model.entity("Customer_Measure").is_none());
    assert_eq!(
        model
            .entity("SpendByChannel")
            .unwrap()
            .description
            .as_deref(),
        Some("spend per channel")
    );

    let t = published(&lake, "SpendByChannel").await;
    // C4 has no orders: one row with the default and no channel
    assert_eq!(
        rows(&t, &["CustomerId", "Channel", "SpendByChannel"]),
        [
            "C1|store|30",
            "C1|web|30",
            "C2|store|50",
            "C2|web|5",
            "C3|web|7",
            "C4|∅|0"
        ]
    );
    let t = published(&lake, "OrdersByStatus").await;
    assert_eq!(
        rows(&t, &["CustomerId", "Status", "OrdersByStatus"]),
        ["C1|paid|2", "C1|refunded|1", "C2|paid|2", "C3|paid|1"]
    );
    let t = published(&lake, "RevenueByChannel").await;
    assert_eq!(t.num_columns(), 2);
    assert_eq!(
        rows(&t, &["Channel", "RevenueByChannel"]),
        ["store|80", "web|42"]
    );
    assert_eq!(
        strings(&published(&lake, "PaidRevenue").await, "PaidRevenue"),
        ["102"]
    );
    assert_eq!(strings(&published(&lake, "Buyers").await, "Buyers"), ["3"]);
}

#[tokio::test]
async fn unknown_tables_and_columns_name_the_measure_and_publish_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (session, lake) = session(dir.path()).await;

    let err = run(
        &session,
        &measures(
            &attribute("Spend", "sum", "column = \"Amount\"")
                .replace("\"Orders\"", "\"Purchases\""),
        ),
        now(),
        3,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(err.is_user_error());
    assert!(text.contains("measure `Spend`"), "{text}");
    assert!(text.contains("`Purchases`"), "{text}");
    assert!(text.to_lowercase().contains("customer, orders"), "{text}");

    for (rest, missing) in [
        ("column = \"Amuont\"", "Amuont"),
        ("column = \"Amount\"\ndimensions = [\"Region\"]", "Region"),
        (
            "column = \"Amount\"\nfilters = [{ column = \"State\", op = \"is_empty\" }]",
            "State",
        ),
        (
            "column = \"Amount\"\ntime_column = \"When\"\nwindow = { last = \"1 day\" }",
            "When",
        ),
    ] {
        let spec = attribute("Spend", "sum", rest).replace("customer_attribute", "customer");
        let err = run(&session, &measures(&spec), now(), 3).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("measure `Spend`"), "{text}");
        assert!(text.contains(&format!("no column `{missing}`")), "{text}");
        assert!(text.contains("OrderId, CustomerId, Amount"), "{text}");
    }

    // a measure per customer needs the Customer table
    session.context().deregister_table("Customer").unwrap();
    let err = run(
        &session,
        &measures(&attribute("Spend", "sum", "column = \"Amount\"")),
        now(),
        3,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("`Customer`"), "{err}");

    // invalid specs are refused with every problem
    let mut bad = measures(&attribute("Spend", "sum", "column = \"Amount\""));
    bad[0].column = None;
    let err = run(&session, &bad, now(), 3).await.unwrap_err();
    assert!(matches!(err, Error::Config(_)));
    assert!(err.to_string().contains("measures.0.column"), "{err}");

    assert!(read_model(&lake, &Process::Measures)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn windows_over_date_and_text_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (session, lake) = session(dir.path()).await;
    let day = |s: &str| {
        (s.parse::<chrono::NaiveDate>().unwrap()
            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("CustomerId", DataType::Utf8, false),
        Field::new("Day", DataType::Date32, true),
        Field::new("At", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["C1", "C1", "C1", "C2"])),
            Arc::new(arrow::array::Date32Array::from(vec![
                day("2024-03-30"),
                day("2024-03-31"),
                day("2024-04-01"),
                day("2024-04-02"),
            ])),
            Arc::new(StringArray::from(vec![
                "2024-03-31T14:00:00",
                "2024-03-31T16:00:00",
                "2024-04-01T15:00:00",
                "2024-04-01T15:00:01",
            ])),
        ],
    )
    .unwrap();
    session
        .context()
        .register_table(
            "Visits",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
    let text = r#"
[[measures]]
name = "VisitDays"
kind = "customer_attribute"
table = "Visits"
function = "count"
time_column = "Day"
window = { last = "1 day" }

[[measures]]
name = "Visits24h"
kind = "customer_attribute"
table = "Visits"
function = "count"
time_column = "At"
window = { last = "1 day" }

[[measures]]
name = "VisitsMarch"
kind = "customer_attribute"
table = "Visits"
function = "count"
time_column = "Day"
window = { from = 2024-03-01, to = 2024-03-31 }
"#;
    let at = "2024-04-01T15:00:00Z".parse().unwrap();
    run(&session, &measures(text), at, 3).await.unwrap();
    let cm = published(&lake, "Customer_Measure").await;
    let check = |column: &str, want: &[(&str, &str)]| {
        assert_eq!(by_customer(&cm, column), expect(want), "{column}");
    };
    // yesterday and today count; the day before and tomorrow do not
    check(
        "VisitDays",
        &[("C1", "2"), ("C2", "∅"), ("C3", "∅"), ("C4", "∅")],
    );
    // text is a time: from 15:00 yesterday up to now, a second later is out
    check(
        "Visits24h",
        &[("C1", "2"), ("C2", "∅"), ("C3", "∅"), ("C4", "∅")],
    );
    check(
        "VisitsMarch",
        &[("C1", "2"), ("C2", "∅"), ("C3", "∅"), ("C4", "∅")],
    );

    // a window over a column that is not a time is refused
    let bad = attribute(
        "Spend",
        "sum",
        "column = \"Amount\"\ntime_column = \"Amount\"\nwindow = { last = \"1 day\" }",
    );
    let err = run(&session, &measures(&bad), at, 3).await.unwrap_err();
    assert!(err.to_string().contains("measure `Spend`"), "{err}");
    assert!(err.to_string().contains("date or timestamp"), "{err}");
    // text that is not a time fails the run, naming the measure
    let bad = text.replace(
        "time_column = \"Day\"\nwindow = { last",
        "time_column = \"CustomerId\"\nwindow = { last",
    );
    let err = run(&session, &measures(&bad), at, 3).await.unwrap_err();
    assert!(err.to_string().contains("measure `VisitDays`"), "{err}");
    assert!(err.to_string().contains("'C1'"), "{err}");
}

#[tokio::test]
async fn parquet_partitions_hold_the_same_values() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).with_format(lakecdp_core::PartitionFormat::Parquet);
    let (session, lake) = session_over(lake).await;
    let text = [
        attribute("TotalSpend", "sum", "column = \"Amount\"\ndefault = 0"),
        attribute(
            "LastOrder",
            "last",
            "column = \"OrderId\"\norder_by = \"OrderDate\"",
        ),
        attribute("LastOrderAt", "max", "column = \"OrderDate\""),
    ]
    .concat();
    let report = run_ok(&session, &text).await;
    assert_eq!(report.measures[0].rows, 4);
    let cm = published(&lake, "Customer_Measure").await;
    assert_eq!(
        by_customer(&cm, "TotalSpend"),
        expect(&[("C1", "60"), ("C2", "55"), ("C3", "7"), ("C4", "0")])
    );
    assert_eq!(
        by_customer(&cm, "LastOrder"),
        expect(&[("C1", "O1"), ("C2", "O4"), ("C3", "O6"), ("C4", "∅")])
    );
    assert_eq!(
        cm.schema()
            .field_with_name("LastOrderAt")
            .unwrap()
            .data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    // the published entity is readable as a table of the session
    assert!(session
        .register_published(&Process::Measures, "Customer_Measure", "cm")
        .await
        .unwrap());
    let n = session
        .context()
        .table("cm")
        .await
        .unwrap()
        .count()
        .await
        .unwrap();
    assert_eq!(n, 4);
}

/// Sums and averages of floating-point values are exact: rows arriving in another order
/// (other partitions, another engine) give the same value, to the last bit.
#[tokio::test]
async fn float_sums_and_averages_do_not_depend_on_the_order_rows_arrive_in() {
    use arrow::array::Float64Array;
    let text = [
        "[[measures]]\nname = \"Spend\"\nkind = \"customer_attribute\"\ntable = \"Prices\"\nfunction = \"sum\"\ncolumn = \"Price\"\n",
        "[[measures]]\nname = \"Mean\"\nkind = \"customer_attribute\"\ntable = \"Prices\"\nfunction = \"average\"\ncolumn = \"Price\"\n",
    ]
    .concat();
    let schema = Arc::new(Schema::new(vec![
        Field::new("CustomerId", DataType::Utf8, false),
        Field::new("Price", DataType::Float64, true),
    ]));
    // C1: what decimals hold; C2: a magnitude they do not; C3: an infinity
    let part = |price: f64| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["C1", "C2", "C2", "C3"])),
                Arc::new(Float64Array::from(vec![price, 1e60, price, f64::INFINITY])),
            ],
        )
        .unwrap()
    };
    // in binary floating point, (0.1 + 0.2) + 0.3 and (0.3 + 0.2) + 0.1 differ
    assert_ne!((0.1_f64 + 0.2) + 0.3, (0.3_f64 + 0.2) + 0.1);
    let mut seen = Vec::new();
    for order in [[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]] {
        let dir = tempfile::tempdir().unwrap();
        let (session, lake) = session(dir.path()).await;
        let partitions = order.iter().map(|&p| vec![part(p)]).collect();
        session
            .context()
            .register_table(
                "Prices",
                Arc::new(MemTable::try_new(schema.clone(), partitions).unwrap()),
            )
            .unwrap();
        run_ok(&session, &text).await;
        let cm = published(&lake, "Customer_Measure").await;
        seen.push((by_customer(&cm, "Spend"), by_customer(&cm, "Mean")));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0].0["C1"], "0.6");
    assert_eq!(seen[0].1["C1"], "0.2");
    // groups the decimals cannot hold are summed in floating point, not refused
    assert_eq!(seen[0].0["C2"].parse::<f64>().unwrap(), 3e60);
    assert_eq!(seen[0].0["C3"].parse::<f64>().unwrap(), f64::INFINITY);
    assert_eq!(seen[0].1["C3"].parse::<f64>().unwrap(), f64::INFINITY);
}
