//! Segments over hand-made `Customer`, `Customer_Measure` and `UnifiedActivity` tables
//! in a session over a local lake: exact member sets per operator and combination, the
//! published `Segments/` folder, static segments across runs, the history and preview.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, Utc};
use lakecdp_core::segment::{
    parse_condition, Condition, ConditionNode, ConditionValue, SegmentKind, SegmentRule,
    SegmentSpec, SetOperator,
};
use lakecdp_engine::segments::{history, preview, run};
use lakecdp_engine::{EngineKind, Error, Session};
use lakecdp_lake::partition::read_entity;
use lakecdp_lake::publish::read_model;
use lakecdp_lake::{Lake, Process};

mod common;
use common::{lake, strings};

fn now() -> DateTime<Utc> {
    "2024-06-01T00:00:00Z".parse().unwrap()
}

fn day(s: &str) -> i32 {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

fn micros(s: &str) -> i64 {
    format!("{s}Z")
        .parse::<DateTime<Utc>>()
        .unwrap()
        .timestamp_micros()
}

type Person<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<i64>,
    Option<&'a str>,
    Option<&'a str>,
    bool,
);

fn customers(rows: &[Person]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("CustomerId", DataType::Utf8, false),
        Field::new("Name", DataType::Utf8, false),
        Field::new("Country", DataType::Utf8, true),
        Field::new("Age", DataType::Int64, true),
        Field::new("Email", DataType::Utf8, true),
        Field::new("Joined", DataType::Date32, true),
        Field::new("Vip", DataType::Boolean, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        )),
        Arc::new(Date32Array::from(
            rows.iter().map(|r| r.5.map(day)).collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            rows.iter().map(|r| r.6).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

const PEOPLE: &[Person] = &[
    (
        "c1",
        "Ann",
        Some("FR"),
        Some(34),
        Some("ann@gmail.com"),
        Some("2024-03-10"),
        true,
    ),
    (
        "c2",
        "Bob",
        Some("FR"),
        Some(25),
        Some("bob@work.fr"),
        Some("2023-12-31"),
        false,
    ),
    (
        "c3",
        "Cid",
        Some("DE"),
        Some(41),
        Some("  "),
        Some("2024-05-15"),
        false,
    ),
    ("c4", "Dee", None, None, None, None, false),
    (
        "c5",
        "Eve",
        Some("x' OR '1'='1"),
        Some(30),
        Some("eve@GMAIL.com"),
        Some("2022-06-01"),
        true,
    ),
];

fn measures() -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("CustomerId", DataType::Utf8, false),
            Field::new("TotalSpend", DataType::Float64, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["c1", "c2", "c3", "c5"])),
            Arc::new(Float64Array::from(vec![500.0, 50.0, 1200.0, 0.0])),
        ],
    )
    .unwrap()
}

fn activities() -> RecordBatch {
    let rows = [
        ("c1", "Purchase", 20.0, "2024-05-30T10:00:00"),
        ("c1", "Visit", 0.0, "2024-04-01T00:00:00"),
        ("c2", "Purchase", 200.0, "2024-04-01T00:00:00"),
        ("c2", "Visit", 0.0, "2024-05-20T00:00:00"),
        ("c3", "Purchase", 150.0, "2024-05-02T00:00:01"),
        // just outside "last 30 days" from 2024-06-01
        ("c4", "Visit", 0.0, "2024-05-01T23:59:59"),
        // not a customer
        ("c99", "Purchase", 999.0, "2024-05-31T00:00:00"),
    ];
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("CustomerId", DataType::Utf8, false),
            Field::new("ActivityType", DataType::Utf8, false),
            Field::new("Amount", DataType::Float64, false),
            Field::new(
                "ActivityTime",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
        ])),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                rows.iter().map(|r| micros(r.3)),
            )),
        ],
    )
    .unwrap()
}

async fn session(lake: Lake) -> Session {
    let s = Session::new(&EngineKind::Local, lake).await.unwrap();
    register(&s, "Customer", customers(PEOPLE));
    register(&s, "Customer_Measure", measures());
    register(&s, "UnifiedActivity", activities());
    s
}

fn register(s: &Session, name: &str, batch: RecordBatch) {
    s.context().deregister_table(name).unwrap();
    s.context().register_batch(name, batch).unwrap();
}

fn leaf(table: &str, column: &str, op: &str, value: Option<ConditionValue>) -> ConditionNode {
    ConditionNode::Leaf(Condition {
        table: table.into(),
        column: column.into(),
        op: op.parse().unwrap(),
        value,
    })
}

fn c(column: &str, op: &str, value: Option<ConditionValue>) -> ConditionNode {
    leaf("Customer", column, op, value)
}

fn t(s: &str) -> Option<ConditionValue> {
    Some(ConditionValue::text(s))
}

fn n(i: i64) -> Option<ConditionValue> {
    Some(ConditionValue::Int(i))
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// The members `condition` selects, through preview.
async fn members(s: &Session, condition: &ConditionNode) -> BTreeSet<String> {
    let (count, sample) = preview(s, condition, now(), 100).await.unwrap();
    let ids: BTreeSet<String> = strings(&sample, "CustomerId").into_iter().collect();
    assert_eq!(count, ids.len() as u64);
    ids
}

fn segment(name: &str, rules: Vec<(SetOperator, ConditionNode)>) -> SegmentSpec {
    SegmentSpec {
        name: name.into(),
        description: None,
        kind: SegmentKind::Dynamic,
        rules: rules
            .into_iter()
            .map(|(operator, condition)| SegmentRule {
                operator,
                condition,
            })
            .collect(),
        projected_columns: vec![],
    }
}

fn one(name: &str, condition: ConditionNode) -> SegmentSpec {
    segment(name, vec![(SetOperator::Union, condition)])
}

async fn published(lake: &Lake, name: &str) -> RecordBatch {
    let process = Process::Segments;
    let model = read_model(lake, &process)
        .await
        .unwrap()
        .expect("published");
    let entity = model.entity(name).expect("entity");
    let batches = read_entity(lake, &process.folder(), entity).await.unwrap();
    if batches.is_empty() {
        return RecordBatch::new_empty(lakecdp_lake::partition::entity_schema(entity));
    }
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[tokio::test]
async fn each_operator_selects_exactly_its_customers() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(lake(dir.path())).await;
    let list = |v: &[&str]| {
        Some(ConditionValue::List(
            v.iter().map(|x| ConditionValue::text(*x)).collect(),
        ))
    };
    let cases: Vec<(ConditionNode, &[&str])> = vec![
        (c("Country", "eq", t("FR")), &["c1", "c2"]),
        (c("Country", "ne", t("FR")), &["c3", "c5"]),
        (c("Age", "lt", n(30)), &["c2"]),
        (c("Age", "le", n(30)), &["c2", "c5"]),
        (c("Age", "gt", n(34)), &["c3"]),
        (c("Age", "ge", n(34)), &["c1", "c3"]),
        // a text value is cast to the column's type
        (c("Age", "eq", t("41")), &["c3"]),
        (c("Country", "in", list(&["FR", "DE"])), &["c1", "c2", "c3"]),
        (c("Country", "not_in", list(&["FR"])), &["c3", "c5"]),
        (c("Email", "contains", t("GMAIL")), &["c1", "c5"]),
        (c("Name", "starts_with", t("d")), &["c4"]),
        (c("Email", "is_empty", None), &["c3", "c4"]),
        (c("Email", "is_not_empty", None), &["c1", "c2", "c5"]),
        (c("Age", "is_empty", None), &["c4"]),
        (
            c("Vip", "eq", Some(ConditionValue::Bool(true))),
            &["c1", "c5"],
        ),
        (c("Joined", "before", t("2024-01-01")), &["c2", "c5"]),
        (c("Joined", "after", t("2024-03-10")), &["c3"]),
        (c("Joined", "within", t("last 1 month")), &["c3"]),
        (c("Joined", "within", t("next 7 days")), &[]),
        // the same-day boundary of a date column is inside the window
        (c("Joined", "within", t("last 17 days")), &["c3"]),
        (c("Joined", "within", t("last 16 days")), &[]),
        // a hostile value is data
        (c("Country", "eq", t("x' OR '1'='1")), &["c5"]),
        (c("Name", "eq", t("Ann' OR '1'='1")), &[]),
        (
            leaf("Customer_Measure", "TotalSpend", "ge", n(500)),
            &["c1", "c3"],
        ),
    ];
    for (condition, expected) in cases {
        assert_eq!(
            members(&s, &condition).await,
            set(expected),
            "{condition:?}"
        );
    }
}

#[tokio::test]
async fn relative_windows_count_from_the_runs_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(lake(dir.path())).await;
    // c3's purchase at 05-02 00:00:01 is inside, c4's visit at 05-01 23:59:59 outside,
    // c99 is no customer
    assert_eq!(
        members(
            &s,
            &leaf(
                "UnifiedActivity",
                "ActivityTime",
                "within",
                t("last 30 days")
            )
        )
        .await,
        set(&["c1", "c2", "c3"])
    );
    assert_eq!(
        members(
            &s,
            &leaf(
                "UnifiedActivity",
                "ActivityTime",
                "within",
                t("last 2 days")
            )
        )
        .await,
        set(&["c1"])
    );
    assert_eq!(
        members(
            &s,
            &leaf("UnifiedActivity", "ActivityTime", "before", t("2024-04-02"))
        )
        .await,
        set(&["c1", "c2"])
    );
}

#[tokio::test]
async fn groups_nest_and_conditions_on_one_table_hold_on_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(lake(dir.path())).await;
    let nested = ConditionNode::Any {
        any: vec![
            ConditionNode::All {
                all: vec![c("Country", "eq", t("FR")), c("Age", "ge", n(30))],
            },
            c("Age", "gt", n(40)),
        ],
    };
    assert_eq!(members(&s, &nested).await, set(&["c1", "c3"]));

    // one purchase above 100; c1 has a small purchase only, c99 is no customer
    let big_purchase = ConditionNode::All {
        all: vec![
            leaf("UnifiedActivity", "ActivityType", "eq", t("Purchase")),
            leaf("UnifiedActivity", "Amount", "gt", n(100)),
        ],
    };
    assert_eq!(members(&s, &big_purchase).await, set(&["c2", "c3"]));
    // c2 has a visit and, on another row, an amount above 100: no single row has both
    let big_visit = ConditionNode::All {
        all: vec![
            leaf("UnifiedActivity", "ActivityType", "eq", t("Visit")),
            ConditionNode::Any {
                any: vec![
                    leaf("UnifiedActivity", "Amount", "gt", n(100)),
                    leaf("UnifiedActivity", "Amount", "lt", n(-1)),
                ],
            },
        ],
    };
    assert_eq!(members(&s, &big_visit).await, set(&[]));

    // across tables: customers and measures
    let mixed = ConditionNode::All {
        all: vec![
            c("Country", "eq", t("FR")),
            leaf("Customer_Measure", "TotalSpend", "ge", n(100)),
        ],
    };
    assert_eq!(members(&s, &mixed).await, set(&["c1"]));
    let either = ConditionNode::Any {
        any: vec![
            c("Country", "eq", t("DE")),
            leaf("Customer_Measure", "TotalSpend", "lt", n(100)),
        ],
    };
    assert_eq!(members(&s, &either).await, set(&["c2", "c3", "c5"]));
}

#[tokio::test]
async fn quick_segments_parse_and_preview() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(lake(dir.path())).await;
    for (text, expected) in [
        ("Country = 'FR' and Age >= 30", &["c1"][..]),
        ("Country = 'FR' or Age > 40", &["c1", "c2", "c3"]),
        (
            "(Country = 'FR' or Country = 'DE') and Email is not empty",
            &["c1", "c2"],
        ),
        ("Email is empty", &["c3", "c4"]),
        (
            "Country in ('DE', 'US') or Name contains 'eve'",
            &["c3", "c5"],
        ),
        ("Customer_Measure.TotalSpend >= 500", &["c1", "c3"]),
        (
            "UnifiedActivity.ActivityType = 'Purchase' and UnifiedActivity.Amount > 100",
            &["c2", "c3"],
        ),
        ("Country = \"x' OR '1'='1\"", &["c5"]),
    ] {
        let condition = parse_condition(text).unwrap();
        assert_eq!(members(&s, &condition).await, set(expected), "{text}");
    }
    let (count, sample) = preview(&s, &parse_condition("Age >= 0").unwrap(), now(), 2)
        .await
        .unwrap();
    assert_eq!(count, 4);
    assert_eq!(sample.num_rows(), 2);
    assert_eq!(strings(&sample, "CustomerId"), vec!["c1", "c2"]);
    assert_eq!(sample.num_columns(), 7);
    // nothing was published
    assert!(read_model(s.lake(), &Process::Segments)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn unknown_tables_and_columns_name_the_segment_rule_and_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(lake(dir.path())).await;
    let err = run(
        &s,
        &[segment(
            "Buyers",
            vec![
                (SetOperator::Union, c("Country", "eq", t("FR"))),
                (SetOperator::Union, leaf("Orders", "Amount", "gt", n(1))),
            ],
        )],
        now(),
        3,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(err.is_user_error());
    assert!(text.contains("segment `Buyers`"), "{text}");
    assert!(text.contains("rule 1"), "{text}");
    assert!(text.contains("`Orders`"), "{text}");
    assert!(text.to_lowercase().contains("customer_measure"), "{text}");

    let err = run(&s, &[one("Old", c("Agee", "gt", n(1)))], now(), 3)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("segment `Old`: rule 0"), "{text}");
    assert!(text.contains("`Agee`") && text.contains("Age"), "{text}");

    let err = run(&s, &[one("Typed", c("Age", "gt", t("old")))], now(), 3)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Int64"), "{err}");

    let mut projected = one("P", c("Age", "gt", n(1)));
    projected.projected_columns = vec!["Phone".into()];
    let err = run(&s, &[projected], now(), 3).await.unwrap_err();
    assert!(err.to_string().contains("`Phone`"), "{err}");
    // nothing was published by the failed runs
    assert!(read_model(s.lake(), &Process::Segments)
        .await
        .unwrap()
        .is_none());
    assert!(history(s.lake()).await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_specs_are_refused_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(lake(dir.path())).await;
    let specs = vec![
        one(
            "A",
            ConditionNode::Segment {
                segment: "B".into(),
            },
        ),
        one(
            "B",
            ConditionNode::Segment {
                segment: "A".into(),
            },
        ),
        one("C", c("Age", "within", t("last 3 fortnights"))),
    ];
    let err = run(&s, &specs, now(), 3).await.unwrap_err();
    let Error::Config(errors) = &err else {
        panic!("{err}")
    };
    assert_eq!(errors.0.len(), 2, "{err}");
    assert!(err.to_string().contains("A -> B -> A"), "{err}");
    assert!(
        err.to_string()
            .contains("segments.2.rules.0.condition.value"),
        "{err}"
    );
}

fn specs() -> Vec<SegmentSpec> {
    let mut french = one("French", c("Country", "eq", t("FR")));
    french.projected_columns = vec!["Name".into(), "Email".into()];
    french.description = Some("customers in France".into());
    let mut early = one("Early", c("Age", "ge", n(30)));
    early.kind = SegmentKind::Static;
    vec![
        // declared before the segments it refers to
        one(
            "FrenchSpenders",
            ConditionNode::All {
                all: vec![
                    ConditionNode::Segment {
                        segment: "French".into(),
                    },
                    ConditionNode::Segment {
                        segment: "Spenders".into(),
                    },
                ],
            },
        ),
        french,
        one(
            "Spenders",
            leaf("Customer_Measure", "TotalSpend", "ge", n(100)),
        ),
        segment(
            "Combo",
            vec![
                (SetOperator::Intersect, c("Country", "eq", t("FR"))),
                (SetOperator::Union, c("Country", "eq", t("DE"))),
                (SetOperator::Intersect, c("Age", "ge", n(30))),
                (SetOperator::Except, c("Email", "contains", t("gmail"))),
            ],
        ),
        early,
    ]
}

#[tokio::test]
async fn runs_publish_segments_and_membership_and_keep_static_members() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path());
    let s = session(lake.clone()).await;
    let report = run(&s, &specs(), now(), 3).await.unwrap();
    let counts: Vec<(&str, u64, Option<i64>, bool)> = report
        .segments
        .iter()
        .map(|r| (r.name.as_str(), r.members, r.change, r.kept))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("FrenchSpenders", 1, None, false),
            ("French", 2, None, false),
            ("Spenders", 2, None, false),
            ("Combo", 1, None, false),
            ("Early", 3, None, false),
        ]
    );
    assert_eq!(report.membership_rows, 4);

    let ids = |b: &RecordBatch| {
        strings(b, "CustomerId")
            .into_iter()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(ids(&published(&lake, "FrenchSpenders").await), set(&["c1"]));
    assert_eq!(ids(&published(&lake, "Combo").await), set(&["c3"]));
    assert_eq!(
        ids(&published(&lake, "Early").await),
        set(&["c1", "c3", "c5"])
    );
    let french = published(&lake, "French").await;
    let names: Vec<String> = french
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, vec!["CustomerId", "Name", "Email"]);
    assert_eq!(strings(&french, "CustomerId"), vec!["c1", "c2"]);
    assert_eq!(
        strings(&french, "Email"),
        vec!["ann@gmail.com", "bob@work.fr"]
    );
    assert_eq!(
        published(&lake, "Spenders").await.num_columns(),
        1,
        "CustomerId only"
    );

    let membership = published(&lake, "SegmentMembership").await;
    let rows: Vec<(String, Vec<String>)> = strings(&membership, "CustomerId")
        .into_iter()
        .zip(strings(&membership, "Segments"))
        .map(|(id, json)| (id, serde_json::from_str(&json).unwrap()))
        .collect();
    let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        rows,
        vec![
            (
                "c1".into(),
                l(&["FrenchSpenders", "French", "Spenders", "Early"])
            ),
            ("c2".into(), l(&["French"])),
            ("c3".into(), l(&["Spenders", "Combo", "Early"])),
            ("c5".into(), l(&["Early"])),
        ]
    );

    // the data changes: Bob turns 40, Fay joins from France, Eve leaves the country
    let mut people = PEOPLE.to_vec();
    people[1].3 = Some(40);
    people[4].2 = Some("IT");
    people.push(("c6", "Fay", Some("FR"), Some(50), None, None, false));
    register(&s, "Customer", customers(&people));
    let later: DateTime<Utc> = "2024-06-02T00:00:00Z".parse().unwrap();
    let second = run(&s, &specs(), later, 3).await.unwrap();
    let counts: Vec<(&str, u64, Option<i64>, bool)> = second
        .segments
        .iter()
        .map(|r| (r.name.as_str(), r.members, r.change, r.kept))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("FrenchSpenders", 1, Some(0), false),
            ("French", 3, Some(1), false),
            ("Spenders", 2, Some(0), false),
            ("Combo", 3, Some(2), false),
            ("Early", 3, Some(0), true),
        ]
    );
    assert_ne!(second.run_id, report.run_id);
    // the static segment kept its members although Bob and Fay now qualify
    assert_eq!(
        ids(&published(&lake, "Early").await),
        set(&["c1", "c3", "c5"])
    );
    assert_eq!(
        ids(&published(&lake, "French").await),
        set(&["c1", "c2", "c6"])
    );
    assert_eq!(
        ids(&published(&lake, "Combo").await),
        set(&["c2", "c3", "c6"])
    );

    let h = history(&lake).await.unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].run_id, report.run_id);
    assert_eq!(h[1].run_id, second.run_id);
    assert_eq!(h[0].time, now());
    assert_eq!(h[1].time, later);
    assert_eq!(h[0].counts["French"], 2);
    assert_eq!(h[1].counts["French"], 3);
    assert_eq!(h[1].counts.len(), 5);

    // preview reads a published segment
    let (count, _) = preview(
        &s,
        &ConditionNode::All {
            all: vec![
                ConditionNode::Segment {
                    segment: "French".into(),
                },
                c("Age", "ge", n(40)),
            ],
        },
        later,
        10,
    )
    .await
    .unwrap();
    assert_eq!(count, 2);
    let err = preview(
        &s,
        &ConditionNode::Segment {
            segment: "Nope".into(),
        },
        later,
        10,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("`Nope` is not published"), "{err}");
}

#[tokio::test]
async fn an_empty_result_publishes_empty_tables() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path());
    let s = session(lake.clone()).await;
    let report = run(&s, &[one("Nobody", c("Age", "gt", n(1000)))], now(), 3)
        .await
        .unwrap();
    assert_eq!(report.segments[0].members, 0);
    assert_eq!(report.membership_rows, 0);
    assert_eq!(published(&lake, "Nobody").await.num_rows(), 0);
    assert_eq!(published(&lake, "SegmentMembership").await.num_rows(), 0);
}
