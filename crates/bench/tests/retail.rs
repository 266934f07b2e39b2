//! End-to-end checks of the retail sample generator on a small scale.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatchReader};
use arrow::datatypes::{DataType, Decimal128Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate};
use lakecdp_bench::retail::{
    self, generate, MalformedKind, RetailConfig, Summary, CRM_FILE, GROUND_TRUTH_FILE,
    LOYALTY_FILE, ORDERS_FILE, SHOP_FILE,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

const FILES: [&str; 5] = [
    CRM_FILE,
    SHOP_FILE,
    LOYALTY_FILE,
    ORDERS_FILE,
    GROUND_TRUTH_FILE,
];

fn small(seed: u64) -> RetailConfig {
    RetailConfig::scaled(seed, 0.02).expect("valid scale")
}

fn generated(config: &RetailConfig) -> (tempfile::TempDir, Summary) {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = generate(config, dir.path()).expect("generate");
    (dir, summary)
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).expect("readable UTF-8 file")
}

/// Data lines of a CSV file (header removed) with their 1-based line numbers.
fn csv_lines<'a>(text: &'a str, newline: &str) -> Vec<(usize, &'a str)> {
    let body = text
        .strip_suffix(newline)
        .expect("file ends with a line end");
    assert!(!body.contains(if newline == "\n" { "\r" } else { "\n\n" }));
    body.split(newline)
        .enumerate()
        .skip(1)
        .map(|(i, l)| (i + 1, l))
        .collect()
}

/// Splits one CSV line under strict RFC 4180 rules.
fn split_strict(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("{c:?} after a closing quote")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("quote in an unquoted field".into()),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

fn is_date(s: &str) -> bool {
    s.len() == 10 && NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

fn is_datetime(s: &str) -> bool {
    s.len() == 20 && DateTime::parse_from_rfc3339(s).is_ok()
}

fn is_amount(s: &str) -> bool {
    match s.split_once('.') {
        Some((units, cents)) => {
            !units.is_empty()
                && units.bytes().all(|b| b.is_ascii_digit())
                && cents.len() == 2
                && cents.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// What is wrong with each data line of `crm_contacts.csv`, by line number.
fn crm_defects(text: &str) -> BTreeMap<usize, MalformedKind> {
    let mut found = BTreeMap::new();
    let mut keys = BTreeSet::new();
    for (line, content) in csv_lines(text, "\r\n") {
        let kind = match split_strict(content) {
            Err(_) => Some(MalformedKind::UnescapedQuote),
            Ok(f) if f.len() < 14 => Some(MalformedKind::TooFewFields),
            Ok(f) if f.len() > 14 => Some(MalformedKind::TooManyFields),
            Ok(f) if f[0].is_empty() => Some(MalformedKind::MissingKey),
            Ok(f) if !keys.insert(f[0].clone()) => Some(MalformedKind::DuplicateKey),
            Ok(f)
                if !(f[11].is_empty() || is_date(&f[11]))
                    || !is_datetime(&f[12])
                    || !is_datetime(&f[13]) =>
            {
                Some(MalformedKind::BadDate)
            }
            Ok(_) => None,
        };
        if let Some(kind) = kind {
            found.insert(line, kind);
        }
    }
    found
}

/// What is wrong with each data line of `orders.csv`, by line number.
fn order_defects(text: &str) -> BTreeMap<usize, MalformedKind> {
    let mut found = BTreeMap::new();
    let mut keys = BTreeSet::new();
    for (line, content) in csv_lines(text, "\n") {
        let kind = match split_strict(content) {
            Err(_) => Some(MalformedKind::UnescapedQuote),
            Ok(f) if f.len() < 7 => Some(MalformedKind::TooFewFields),
            Ok(f) if f.len() > 7 => Some(MalformedKind::TooManyFields),
            Ok(f) if f[0].is_empty() => Some(MalformedKind::MissingKey),
            Ok(f) if !keys.insert(f[0].clone()) => Some(MalformedKind::DuplicateKey),
            Ok(f) if !is_datetime(&f[2]) => Some(MalformedKind::BadDate),
            Ok(f) if !is_amount(&f[3]) || f[6].parse::<u32>().is_err() => {
                Some(MalformedKind::NonNumeric)
            }
            Ok(_) => None,
        };
        if let Some(kind) = kind {
            found.insert(line, kind);
        }
    }
    found
}

/// What is wrong with each line of `loyalty_members.jsonl`, by line number.
fn loyalty_defects(text: &str) -> BTreeMap<usize, MalformedKind> {
    let mut found = BTreeMap::new();
    let mut keys = BTreeSet::new();
    for (i, content) in text.lines().enumerate() {
        let kind = match serde_json::from_str::<Value>(content) {
            Err(_) => Some(MalformedKind::InvalidJson),
            Ok(v) => {
                let date_ok = |key: &str| match &v[key] {
                    Value::Null => true,
                    Value::String(s) => is_date(s),
                    _ => false,
                };
                match v["memberId"].as_str() {
                    None => Some(MalformedKind::MissingKey),
                    Some(key) if !keys.insert(key.to_string()) => Some(MalformedKind::DuplicateKey),
                    Some(_)
                        if !date_ok("birthDate")
                            || !is_date(v["joined"].as_str().unwrap_or("")) =>
                    {
                        Some(MalformedKind::BadDate)
                    }
                    Some(_) if !v["points"].is_i64() => Some(MalformedKind::NonNumeric),
                    Some(_) => None,
                }
            }
        };
        if let Some(kind) = kind {
            found.insert(i + 1, kind);
        }
    }
    found
}

fn reported(summary: &Summary, file: &str) -> BTreeMap<usize, MalformedKind> {
    summary
        .malformed
        .iter()
        .filter(|m| m.file == file)
        .map(|m| (m.line, m.kind))
        .collect()
}

#[test]
fn same_seed_gives_same_bytes_and_another_seed_differs() {
    let (a, _) = generated(&small(7));
    let (b, _) = generated(&small(7));
    let (c, _) = generated(&small(8));
    for file in FILES {
        let bytes_a = fs::read(a.path().join(file)).expect("file a");
        let bytes_b = fs::read(b.path().join(file)).expect("file b");
        let bytes_c = fs::read(c.path().join(file)).expect("file c");
        assert!(bytes_a == bytes_b, "{file} differs between two runs");
        assert!(bytes_a != bytes_c, "{file} does not depend on the seed");
    }
}

#[test]
fn row_counts_match_the_config() {
    let config = small(1);
    let (dir, summary) = generated(&config);
    let crm = read(dir.path(), CRM_FILE);
    assert_eq!(csv_lines(&crm, "\r\n").len(), config.crm_contacts);
    let orders = read(dir.path(), ORDERS_FILE);
    assert_eq!(csv_lines(&orders, "\n").len(), config.orders);
    let loyalty = read(dir.path(), LOYALTY_FILE);
    assert_eq!(loyalty.lines().count(), config.loyalty_members);
    let file = fs::File::open(dir.path().join(SHOP_FILE)).expect("parquet file");
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet");
    assert_eq!(
        builder.metadata().file_metadata().num_rows() as usize,
        config.shop_customers
    );
    let expected = [
        (CRM_FILE, config.crm_contacts),
        (SHOP_FILE, config.shop_customers),
        (LOYALTY_FILE, config.loyalty_members),
        (ORDERS_FILE, config.orders),
        (
            GROUND_TRUTH_FILE,
            config.crm_contacts + config.shop_customers + config.loyalty_members,
        ),
    ];
    for (file, rows) in expected {
        let f = summary.file(file).expect("file in summary");
        assert_eq!(f.rows, rows, "{file}");
        let on_disk = fs::metadata(dir.path().join(file)).expect("file").len();
        assert_eq!(f.bytes, on_disk, "{file}");
    }
    let crm = summary.file(CRM_FILE).expect("crm");
    // 3% planned duplicates, plus the row that repeats an earlier contact's key.
    assert!((12..=13).contains(&crm.duplicates), "{}", crm.duplicates);
    assert_eq!(crm.people, Some(config.crm_contacts - crm.duplicates));
}

#[test]
fn malformed_rows_are_present_exactly_where_reported() {
    let config = small(3);
    let (dir, summary) = generated(&config);
    let found = [
        (CRM_FILE, crm_defects(&read(dir.path(), CRM_FILE))),
        (ORDERS_FILE, order_defects(&read(dir.path(), ORDERS_FILE))),
        (
            LOYALTY_FILE,
            loyalty_defects(&read(dir.path(), LOYALTY_FILE)),
        ),
    ];
    for (file, found) in &found {
        let expected = reported(&summary, file);
        assert!((5..=10).contains(&expected.len()), "{file}: {expected:?}");
        assert_eq!(found, &expected, "{file}");
        assert_eq!(summary.file(file).expect("file").malformed, expected.len());
    }
    let kinds: BTreeSet<MalformedKind> = summary.malformed.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, MalformedKind::ALL.into_iter().collect());
    let planned = retail::malformed_lines(&config).expect("plan");
    let listed: Vec<_> = summary
        .malformed
        .iter()
        .map(|m| (m.file, m.line, m.kind))
        .collect();
    assert_eq!(planned, listed);
}

#[test]
fn without_malformed_rows_every_line_is_well_formed() {
    let config = RetailConfig {
        malformed_rows: false,
        ..small(4)
    };
    let (dir, summary) = generated(&config);
    assert!(summary.malformed.is_empty());
    assert!(crm_defects(&read(dir.path(), CRM_FILE)).is_empty());
    assert!(order_defects(&read(dir.path(), ORDERS_FILE)).is_empty());
    assert!(loyalty_defects(&read(dir.path(), LOYALTY_FILE)).is_empty());
}

#[test]
fn parquet_reads_back_with_the_expected_schema_and_lifetime_values() {
    let config = small(5);
    let (dir, summary) = generated(&config);
    let file = fs::File::open(dir.path().join(SHOP_FILE)).expect("parquet file");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let schema = reader.schema();
    let text = DataType::Utf8;
    let expected = [
        ("customer_id", DataType::Int64, false),
        ("email", text.clone(), true),
        ("first_name", text.clone(), true),
        ("last_name", text.clone(), true),
        ("phone", text.clone(), true),
        ("address_line1", text.clone(), true),
        ("address_line2", text.clone(), true),
        ("city", text.clone(), true),
        ("state", text.clone(), true),
        ("postal_code", text.clone(), true),
        ("country", text.clone(), true),
        (
            "signup_ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        ("lifetime_value", DataType::Decimal128(12, 2), false),
    ];
    let actual: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
        .collect();
    assert_eq!(actual, expected);

    let malformed: BTreeSet<usize> = reported(&summary, ORDERS_FILE).into_keys().collect();
    let mut spent: BTreeMap<i64, i128> = BTreeMap::new();
    for (line, content) in csv_lines(&read(dir.path(), ORDERS_FILE), "\n") {
        if malformed.contains(&line) {
            continue;
        }
        let f = split_strict(content).expect("well-formed line");
        if let Ok(customer) = f[1].parse::<i64>() {
            let cents: i128 = f[3].replace('.', "").parse().expect("amount");
            *spent.entry(customer).or_default() += cents;
        }
    }

    let mut rows = 0;
    let mut previous_signup = i64::MIN;
    for batch in reader {
        let batch = batch.expect("batch");
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let signup = batch.column(11).as_primitive::<TimestampMicrosecondType>();
        let value = batch.column(12).as_primitive::<Decimal128Type>();
        let emails = batch.column(1).as_string::<i32>();
        for i in 0..batch.num_rows() {
            assert_eq!(ids.value(i), 100_001 + rows as i64);
            assert!(signup.value(i) >= previous_signup.saturating_sub(1_000_000));
            previous_signup = signup.value(i);
            let expected = spent.get(&ids.value(i)).copied().unwrap_or(0);
            assert_eq!(value.value(i), expected, "customer {}", ids.value(i));
            if emails.is_valid(i) {
                assert!(emails.value(i).contains('@'));
            }
            rows += 1;
        }
    }
    assert_eq!(rows, config.shop_customers);
}

#[test]
fn ground_truth_covers_every_record() {
    let config = small(6);
    let (dir, summary) = generated(&config);
    let truth = read(dir.path(), GROUND_TRUTH_FILE);
    let mut by_source: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for (_, content) in csv_lines(&truth, "\n") {
        let f = split_strict(content).expect("ground truth line");
        assert_eq!(f.len(), 5);
        assert!(f[3].starts_with('P') && f[3].len() == 8, "{content}");
        by_source.entry(f[0].clone()).or_default().push(f);
    }
    let crm_keys: Vec<String> = csv_lines(&read(dir.path(), CRM_FILE), "\r\n")
        .iter()
        .map(|(_, l)| l.split(',').next().unwrap_or("").to_string())
        .collect();
    let loyalty_keys: Vec<Option<String>> = read(dir.path(), LOYALTY_FILE)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .map(|v| v["memberId"].as_str().unwrap_or("").to_string())
        })
        .collect();
    let sources = [
        ("crm_contacts", CRM_FILE, config.crm_contacts),
        ("shop_customers", SHOP_FILE, config.shop_customers),
        ("loyalty_members", LOYALTY_FILE, config.loyalty_members),
    ];
    assert_eq!(by_source.len(), sources.len());
    for (source, file, rows) in sources {
        let records = &by_source[source];
        assert_eq!(records.len(), rows, "{source}");
        let mut people = BTreeSet::new();
        let mut duplicates = 0;
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r[1], (i + 1).to_string(), "{source} rows in order");
            if !people.insert(r[3].clone()) {
                duplicates += 1;
            }
            match source {
                "crm_contacts" => assert_eq!(r[2], crm_keys[i]),
                "shop_customers" => assert_eq!(r[2], (100_001 + i).to_string()),
                _ => {
                    if let Some(key) = &loyalty_keys[i] {
                        assert_eq!(&r[2], key);
                    }
                }
            }
        }
        let f = summary.file(file).expect("file");
        assert_eq!(f.people, Some(people.len()), "{source}");
        assert_eq!(f.duplicates, duplicates, "{source}");
        let noted = records
            .iter()
            .filter(|r| r[4].starts_with("malformed:"))
            .count();
        assert_eq!(noted, f.malformed, "{source}");
    }
}

#[test]
fn the_same_people_appear_across_sources() {
    let (dir, _) = generated(&small(9));
    let truth = read(dir.path(), GROUND_TRUTH_FILE);
    let mut sources: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, content) in csv_lines(&truth, "\n") {
        let f = split_strict(content).expect("ground truth line");
        sources
            .entry(f[3].clone())
            .or_default()
            .insert(f[0].clone());
    }
    let in_all = sources.values().filter(|s| s.len() == 3).count();
    let in_two = sources.values().filter(|s| s.len() == 2).count();
    assert!(
        in_all > 50 && in_two > 100,
        "{in_all} in all, {in_two} in two"
    );
}

#[test]
fn invalid_configurations_are_refused() {
    assert!(RetailConfig::scaled(1, 0.0).is_err());
    assert!(RetailConfig::scaled(1, f64::NAN).is_err());
    let tiny = RetailConfig::scaled(1, 0.001).expect("scale");
    let err = generate(&tiny, Path::new("/nonexistent/never/written")).expect_err("too small");
    assert!(err.to_string().contains("too few"), "{err}");
    let crowded = RetailConfig {
        customers: 10,
        ..small(1)
    };
    assert!(crowded.validate().is_err());
}

fn quickstart_data() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/retail/data")
}

#[test]
fn quickstart_readme_lists_the_malformed_rows_of_the_default_data() {
    let readme = read(&quickstart_data(), "README.md");
    let planned = retail::malformed_lines(&RetailConfig::default()).expect("plan");
    for (file, line, kind) in &planned {
        let row = format!("| `{file}` | {line} | `{kind}` |");
        assert!(readme.contains(&row), "README.md lacks {row}");
    }
    let kinds: Vec<String> = MalformedKind::ALL
        .iter()
        .map(|k| format!(" | `{k}` |"))
        .collect();
    let listed = readme
        .lines()
        .filter(|l| l.starts_with("| `") && kinds.iter().any(|k| l.contains(k.as_str())))
        .count();
    assert_eq!(listed, planned.len());
}

#[test]
fn quickstart_data_is_current() {
    let (dir, _) = generated(&RetailConfig::default());
    for file in FILES {
        let fresh = fs::read(dir.path().join(file)).expect("generated file");
        let committed = fs::read(quickstart_data().join(file)).expect("quickstart file");
        assert!(
            fresh == committed,
            "examples/retail/data/{file} is stale: regenerate it with \
             `cargo run --release -p lakecdp-bench -- retail --out examples/retail/data`"
        );
    }
}
