//! The retail sample: four sources of one made-up retailer describing the same population.
//!
//! [`generate`] writes, into one folder:
//!
//! - `crm_contacts.csv`: a CRM export of contacts (CRLF line ends, as CRM exports have);
//! - `shop_customers.parquet`: the online shop's customer accounts, with their lifetime value;
//! - `loyalty_members.jsonl`: loyalty programme members, one JSON object per line;
//! - `orders.csv`: the online shop's orders, keyed by shop customer id;
//! - `ground_truth.csv`: the true person behind every row of the three customer sources.
//!
//! The same person appears in several sources and sometimes twice in one, written
//! differently each time: nicknames, typing mistakes, letter case, telephone and street
//! formats, old addresses, second mailboxes and missing values. Members of a household share
//! an address and usually a family name without being the same person. A few rows of each
//! CSV and JSON Lines file are deliberately malformed; [`Summary::malformed`] lists them.
//!
//! # Determinism
//!
//! The output depends only on the [`RetailConfig`]: every record draws from its own ChaCha8
//! stream keyed by the seed, dates are computed from the fixed instant 2026-01-01T00:00:00Z,
//! no output depends on hash-map order, and numbers are formatted with integer arithmetic.
//! The same configuration gives byte-identical files on every run and platform (for the
//! same versions of this crate and of the Parquet writer).
//!
//! Mailboxes use reserved example domains and the domains of fictitious companies, and
//! telephone numbers use the 555 exchange, so no generated contact detail reaches anyone.

mod crm;
pub(crate) mod csv;
mod dates;
mod loyalty;
mod names;
mod orders;
mod person;
mod plan;
pub(crate) mod rng;
mod shop;
mod truth;
pub(crate) mod vary;

use std::fmt;
use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

use person::Population;
use plan::{duplicate_count, pick_rows, Preference};

/// The seed of the quickstart data in `examples/retail/data`.
pub const DEFAULT_SEED: u64 = 2026;

/// File name of the CRM contacts export.
pub const CRM_FILE: &str = "crm_contacts.csv";
/// File name of the online shop's customers.
pub const SHOP_FILE: &str = "shop_customers.parquet";
/// File name of the loyalty programme members.
pub const LOYALTY_FILE: &str = "loyalty_members.jsonl";
/// File name of the online shop's orders.
pub const ORDERS_FILE: &str = "orders.csv";
/// File name of the ground truth.
pub const GROUND_TRUTH_FILE: &str = "ground_truth.csv";

/// Source names used in the ground truth, one per customer file.
pub const CRM_SOURCE: &str = "crm_contacts";
/// Source name of the shop customers in the ground truth.
pub const SHOP_SOURCE: &str = "shop_customers";
/// Source name of the loyalty members in the ground truth.
pub const LOYALTY_SOURCE: &str = "loyalty_members";

/// The smallest number of rows of a file that carries malformed rows.
pub const MIN_ROWS_WITH_MALFORMED: usize = 20;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct RetailConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of distinct people in the underlying population.
    pub customers: usize,
    /// Rows of `crm_contacts.csv`.
    pub crm_contacts: usize,
    /// Rows of `shop_customers.parquet`.
    pub shop_customers: usize,
    /// Rows of `loyalty_members.jsonl`.
    pub loyalty_members: usize,
    /// Rows of `orders.csv`.
    pub orders: usize,
    /// Share of the rows of each customer source that repeat a person already in it.
    pub duplicate_rate: f64,
    /// Whether the CSV and JSON Lines files carry their deliberately malformed rows.
    pub malformed_rows: bool,
}

impl Default for RetailConfig {
    fn default() -> Self {
        Self {
            seed: DEFAULT_SEED,
            customers: 25_000,
            crm_contacts: 20_000,
            shop_customers: 15_000,
            loyalty_members: 10_000,
            orders: 50_000,
            duplicate_rate: 0.03,
            malformed_rows: true,
        }
    }
}

impl RetailConfig {
    /// The default sizes multiplied by `scale` (at least one row each), with `seed`.
    pub fn scaled(seed: u64, scale: f64) -> Result<Self> {
        if !scale.is_finite() || scale <= 0.0 || scale > 10_000.0 {
            return Err(Error::InvalidConfig {
                key: "scale",
                reason: format!("{scale} is not a number in (0, 10000]"),
            });
        }
        let base = Self::default();
        let size = |n: usize| ((n as f64 * scale).round() as usize).max(1);
        Ok(Self {
            seed,
            customers: size(base.customers),
            crm_contacts: size(base.crm_contacts),
            shop_customers: size(base.shop_customers),
            loyalty_members: size(base.loyalty_members),
            orders: size(base.orders),
            ..base
        })
    }

    /// Checks that the sizes are consistent.
    pub fn validate(&self) -> Result<()> {
        let invalid = |key, reason: String| Err(Error::InvalidConfig { key, reason });
        if self.customers == 0 || self.customers > (u32::MAX >> 2) as usize {
            return invalid(
                "customers",
                format!("{} is not between 1 and {}", self.customers, u32::MAX >> 2),
            );
        }
        if !(0.0..=0.5).contains(&self.duplicate_rate) {
            return invalid(
                "duplicate_rate",
                format!("{} is not between 0 and 0.5", self.duplicate_rate),
            );
        }
        let sources = [
            ("crm_contacts", self.crm_contacts),
            ("shop_customers", self.shop_customers),
            ("loyalty_members", self.loyalty_members),
        ];
        for (key, rows) in sources {
            let distinct = rows - duplicate_count(rows, self.duplicate_rate);
            if distinct > self.customers {
                return invalid(
                    key,
                    format!(
                        "{rows} rows need {distinct} distinct people but customers is {}",
                        self.customers
                    ),
                );
            }
        }
        if self.shop_customers == 0 && self.orders > 0 {
            return invalid(
                "shop_customers",
                "orders need at least one shop customer".into(),
            );
        }
        if self.malformed_rows {
            let files = [
                ("crm_contacts", self.crm_contacts),
                ("loyalty_members", self.loyalty_members),
                ("orders", self.orders),
            ];
            for (key, rows) in files {
                if rows < MIN_ROWS_WITH_MALFORMED {
                    return invalid(
                        key,
                        format!(
                            "{rows} rows are too few to carry the malformed rows; \
                             use at least {MIN_ROWS_WITH_MALFORMED} or disable malformed_rows"
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

/// The ways a row can be malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum MalformedKind {
    /// A value that is not a number in a numeric column.
    NonNumeric,
    /// A value that is not a valid date or timestamp in a date column.
    BadDate,
    /// A double quote inside an unquoted CSV field (not allowed by RFC 4180).
    UnescapedQuote,
    /// The primary key is empty or absent.
    MissingKey,
    /// The primary key repeats the key of an earlier row.
    DuplicateKey,
    /// A CSV row with fewer fields than the header.
    TooFewFields,
    /// A CSV row with more fields than the header.
    TooManyFields,
    /// A JSON Lines line that is not valid JSON.
    InvalidJson,
}

impl MalformedKind {
    /// Every kind.
    pub const ALL: [Self; 8] = [
        Self::NonNumeric,
        Self::BadDate,
        Self::UnescapedQuote,
        Self::MissingKey,
        Self::DuplicateKey,
        Self::TooFewFields,
        Self::TooManyFields,
        Self::InvalidJson,
    ];

    /// A short snake-case name, as written in the ground truth.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NonNumeric => "non_numeric",
            Self::BadDate => "bad_date",
            Self::UnescapedQuote => "unescaped_quote",
            Self::MissingKey => "missing_key",
            Self::DuplicateKey => "duplicate_key",
            Self::TooFewFields => "too_few_fields",
            Self::TooManyFields => "too_many_fields",
            Self::InvalidJson => "invalid_json",
        }
    }
}

impl fmt::Display for MalformedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One deliberately malformed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedRow {
    /// File name.
    pub file: &'static str,
    /// 1-based line number in the file (the CSV header is line 1).
    pub line: usize,
    /// What kind of defect.
    pub kind: MalformedKind,
    /// What exactly is wrong.
    pub problem: String,
}

/// What was written to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// File name.
    pub file: &'static str,
    /// Format: `csv`, `parquet` or `jsonl`.
    pub format: &'static str,
    /// Data rows (not counting a header), malformed rows included.
    pub rows: usize,
    /// Deliberately malformed rows.
    pub malformed: usize,
    /// Rows that describe a person (or, in `orders.csv`, an order) already described by an
    /// earlier row of the same file.
    pub duplicates: usize,
    /// Distinct true people behind the rows, for the customer sources.
    pub people: Option<usize>,
    /// File size in bytes.
    pub bytes: u64,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The configuration used.
    pub config: RetailConfig,
    /// One entry per file, in the order written.
    pub files: Vec<FileSummary>,
    /// The deliberately malformed rows, by file and line.
    pub malformed: Vec<MalformedRow>,
}

impl Summary {
    /// The summary of one file.
    pub fn file(&self, name: &str) -> Option<&FileSummary> {
        self.files.iter().find(|f| f.file == name)
    }

    /// Total size of the files in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// Generates the retail sample into `out_dir` (created when missing; existing files of the
/// same names are replaced).
pub fn generate(config: &RetailConfig, out_dir: &Path) -> Result<Summary> {
    config.validate()?;
    fs::create_dir_all(out_dir).map_err(|source| Error::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let seed = config.seed;
    let population = Population::new(seed, config.customers as u32);
    let dup = |rows| duplicate_count(rows, config.duplicate_rate);

    let crm_rows = pick_rows(
        seed,
        1,
        population.len(),
        config.crm_contacts,
        dup(config.crm_contacts),
        None,
    );
    let shop_rows = pick_rows(
        seed,
        2,
        population.len(),
        config.shop_customers,
        dup(config.shop_customers),
        None,
    );
    let shop_people = shop_rows.distinct_sorted();
    let loyalty_rows = pick_rows(
        seed,
        3,
        population.len(),
        config.loyalty_members,
        dup(config.loyalty_members),
        Some(Preference {
            members: &shop_people,
            per_mille: 800,
        }),
    );
    drop(shop_people);

    let mut truth = truth::GroundTruth::create(&out_dir.join(GROUND_TRUTH_FILE))?;
    let mut files = Vec::new();
    let mut malformed = Vec::new();

    let crm = crm::write(
        config,
        &population,
        crm_rows,
        &out_dir.join(CRM_FILE),
        &mut truth,
    )?;
    files.push(crm.file);
    malformed.extend(crm.malformed);

    let orders = orders::plan(config);
    let shop = shop::write(
        config,
        &population,
        shop_rows,
        &orders.lifetime_value,
        &out_dir.join(SHOP_FILE),
        &mut truth,
    )?;
    files.push(shop);

    let loyalty = loyalty::write(
        config,
        &population,
        loyalty_rows,
        &out_dir.join(LOYALTY_FILE),
        &mut truth,
    )?;
    files.push(loyalty.file);
    malformed.extend(loyalty.malformed);

    let written = orders::write(&orders, &out_dir.join(ORDERS_FILE))?;
    files.push(written.file);
    malformed.extend(written.malformed);

    files.push(truth.finish()?);
    Ok(Summary {
        config: config.clone(),
        files,
        malformed,
    })
}

/// Where the malformed rows of `config` go, by file and line, without generating anything:
/// the same files, lines and kinds as [`Summary::malformed`] of [`generate`].
pub fn malformed_lines(config: &RetailConfig) -> Result<Vec<(&'static str, usize, MalformedKind)>> {
    config.validate()?;
    let mut lines = Vec::new();
    let files = [
        (CRM_FILE, crm::malformed_lines(config)),
        (LOYALTY_FILE, loyalty::malformed_lines(config)),
        (ORDERS_FILE, orders::malformed_lines(config)),
    ];
    for (file, found) in files {
        lines.extend(found.into_iter().map(|(line, kind)| (file, line, kind)));
    }
    Ok(lines)
}

/// A written file and its malformed rows.
struct Written {
    file: FileSummary,
    malformed: Vec<MalformedRow>,
}

/// Evenly increasing instants from `start` to `end` over `rows` rows, with jitter: the
/// creation times of records numbered in creation order.
fn creation_secs(rng: &mut impl rand::Rng, row: usize, rows: usize, start: i64, end: i64) -> i64 {
    let rows = rows.max(1) as i64;
    let span = end - start;
    let slot = (span / rows).max(1);
    start + span * row as i64 / rows + rng.random_range(0..slot)
}
