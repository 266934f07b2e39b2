//! `shop_customers.parquet`: the online shop's customer accounts.
//!
//! Columns: `customer_id` (int64, numbered in signup order from 100001), `email`,
//! `first_name`, `last_name`, `phone`, `address_line1`, `address_line2`, `city`, `state`,
//! `postal_code`, `country` (strings, nullable), `signup_ts` (timestamp, microseconds, UTC)
//! and `lifetime_value` (decimal(12,2): the sum of the customer's well-formed rows of
//! `orders.csv`, whatever their currency). A person with two accounts signed up with two
//! different mailboxes, as the shop requires.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Decimal128Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::dates::secs_from_civil;
use super::person::Person;
use super::person::Population;
use super::plan::Rows;
use super::rng::{chance, pick, pick_weighted, rng_for, Stream};
use super::truth::GroundTruth;
use super::vary::{self, PhoneStyle, StreetStyle, UnitPlacement};
use super::{creation_secs, FileSummary, RetailConfig, SHOP_FILE, SHOP_SOURCE};
use crate::error::{Error, Result};

/// The first instant a shop customer signed up.
pub(crate) const SIGNUP_FIRST: i64 = secs_from_civil(2018, 3, 1);
const SIGNUP_LAST: i64 = secs_from_civil(2025, 12, 31);

/// Rows per record batch.
const BATCH_ROWS: usize = 4_096;
/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 65_536;

/// The `customer_id` of shop row `row`.
pub(crate) fn customer_id(row: usize) -> i64 {
    100_001 + row as i64
}

/// When the customer of shop row `row` signed up: rows are in signup order.
pub(crate) fn signup_secs(seed: u64, row: usize, rows: usize) -> i64 {
    let mut rng = rng_for(seed, Stream::Timeline, (2 << 40) | row as u64);
    creation_secs(&mut rng, row, rows, SIGNUP_FIRST, SIGNUP_LAST)
}

/// The Arrow schema of `shop_customers.parquet`.
pub(crate) fn schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        text("email"),
        text("first_name"),
        text("last_name"),
        text("phone"),
        text("address_line1"),
        text("address_line2"),
        text("city"),
        text("state"),
        text("postal_code"),
        text("country"),
        Field::new(
            "signup_ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("lifetime_value", DataType::Decimal128(12, 2), false),
    ]))
}

/// One customer account.
struct Account {
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    address_line1: Option<String>,
    address_line2: Option<String>,
    city: Option<String>,
    state: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
}

/// Column builders of one batch.
struct Batch {
    customer_id: Int64Builder,
    text: [StringBuilder; 10],
    signup_ts: TimestampMicrosecondBuilder,
    lifetime_value: Decimal128Builder,
    len: usize,
}

impl Batch {
    fn new() -> Result<Self> {
        Ok(Self {
            customer_id: Int64Builder::with_capacity(BATCH_ROWS),
            text: std::array::from_fn(|_| {
                StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16)
            }),
            signup_ts: TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC"),
            lifetime_value: Decimal128Builder::with_capacity(BATCH_ROWS)
                .with_precision_and_scale(12, 2)?,
            len: 0,
        })
    }

    fn push(&mut self, id: i64, account: Account, signup_secs: i64, cents: i64) {
        self.customer_id.append_value(id);
        let values = [
            account.email,
            account.first_name,
            account.last_name,
            account.phone,
            account.address_line1,
            account.address_line2,
            account.city,
            account.state,
            account.postal_code,
            account.country,
        ];
        for (builder, value) in self.text.iter_mut().zip(values) {
            builder.append_option(value);
        }
        self.signup_ts.append_value(signup_secs * 1_000_000);
        self.lifetime_value.append_value(i128::from(cents));
        self.len += 1;
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(13);
        columns.push(Arc::new(self.customer_id.finish()));
        for builder in &mut self.text {
            columns.push(Arc::new(builder.finish()));
        }
        columns.push(Arc::new(self.signup_ts.finish()));
        columns.push(Arc::new(self.lifetime_value.finish()));
        self.len = 0;
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// Writes `shop_customers.parquet` and its ground truth.
pub(crate) fn write(
    config: &RetailConfig,
    population: &Population,
    rows: Rows,
    lifetime_value: &[i64],
    path: &Path,
    truth: &mut GroundTruth,
) -> Result<FileSummary> {
    let seed = config.seed;
    let n = rows.len();
    let parquet_error = |source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let schema = schema();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer =
        ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(parquet_error)?;
    let mut batch = Batch::new()?;
    for row in 0..n {
        let person = population.person(rows.person[row]);
        let mut rng = rng_for(seed, Stream::ShopRow, row as u64);
        let account = account(&mut rng, &person, rows.occurrence[row]);
        let id = customer_id(row);
        batch.push(
            id,
            account,
            signup_secs(seed, row, n),
            lifetime_value.get(row).copied().unwrap_or(0),
        );
        let note = if rows.occurrence[row] > 0 {
            "duplicate"
        } else {
            ""
        };
        truth.row(SHOP_SOURCE, row + 1, &id.to_string(), &person.key(), note)?;
        if batch.len == BATCH_ROWS {
            writer
                .write(&batch.finish(&schema)?)
                .map_err(parquet_error)?;
        }
    }
    if batch.len > 0 {
        writer
            .write(&batch.finish(&schema)?)
            .map_err(parquet_error)?;
    }
    writer.close().map_err(parquet_error)?;
    let bytes = std::fs::metadata(path)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    Ok(FileSummary {
        file: SHOP_FILE,
        format: "parquet",
        rows: n,
        malformed: 0,
        duplicates: rows.duplicates(),
        people: Some(rows.people()),
        bytes,
    })
}

/// The account a person opened; `occurrence` counts the person's earlier accounts.
fn account(rng: &mut ChaCha8Rng, person: &Person, occurrence: u8) -> Account {
    let mailbox = match (occurrence, &person.second_email) {
        (0, Some(second)) if chance(rng, 100) => second.clone(),
        (0, _) => person.email.clone(),
        (_, Some(second)) if occurrence == 1 => second.clone(),
        _ => {
            let (local, domain) = person.email.split_once('@').unwrap_or((&person.email, ""));
            format!("{local}+{}@{domain}", occurrence + 1)
        }
    };
    let mailbox = if occurrence == 0 && chance(rng, 20) {
        let (local, domain) = mailbox.split_once('@').unwrap_or((&mailbox, ""));
        format!("{local}+shop@{domain}")
    } else {
        mailbox
    };
    let email = (!chance(rng, 5)).then(|| vary::email(rng, &mailbox, 40, 10));

    let nicks = person.nicknames();
    let first = if !nicks.is_empty() && chance(rng, 200) {
        *pick(rng, nicks)
    } else {
        person.first
    };
    let first_name = vary::name(rng, first, 10, 15, 50);
    let last_name = vary::name(rng, &person.last, 10, 15, 50);
    let (first_name, last_name) = if chance(rng, 10) {
        (Some(first_name), None)
    } else {
        (Some(first_name), Some(last_name))
    };

    let phone = (!chance(rng, 100)).then(|| {
        let styles = [
            (PhoneStyle::Digits, 55),
            (PhoneStyle::E164, 25),
            (PhoneStyle::Dashed, 10),
            (PhoneStyle::Parenthesised, 10),
        ];
        let style = styles[pick_weighted(rng, styles.iter().map(|s| s.1))].0;
        vary::phone(person.mobile, style)
    });

    let placement = match rng.random_range(0..20) {
        0..=16 => UnitPlacement::SecondLine,
        17..=18 => UnitPlacement::SameLine,
        _ => UnitPlacement::Hash,
    };
    let style = StreetStyle::draw(rng, 700, placement, 10);
    let address = &person.address;
    let has_address = !chance(rng, 30);
    let (line1, line2) = vary::street(address, style);
    let city = vary::name(rng, vary::city(address), 5, 10, 20);
    let state = vary::state(address, false);
    let state = if chance(rng, 20) {
        state.to_lowercase()
    } else {
        state.to_string()
    };
    let mut postal = vary::zip(address);
    if chance(rng, 30) {
        postal.push_str(&format!("-{:04}", rng.random_range(0..10_000)));
    }
    if has_address {
        Account {
            email,
            first_name,
            last_name,
            phone,
            address_line1: Some(line1),
            address_line2: line2,
            city: Some(city),
            state: Some(state),
            postal_code: Some(postal),
            country: Some("US".to_string()),
        }
    } else {
        Account {
            email,
            first_name,
            last_name,
            phone,
            address_line1: None,
            address_line2: None,
            city: None,
            state: None,
            postal_code: None,
            country: None,
        }
    }
}
