//! A Fellegi-Sunter match model: how strongly the agreement of two records on each
//! compared column speaks for them being the same customer, learnt from the data.
//!
//! # Contract
//!
//! The engine normalises column values, finds candidate pairs by blocking, and turns
//! every candidate pair into a *comparison vector*: one level per compared column,
//! given by [`ComparisonKind::level`] ([`NULL_LEVEL`] when either value is missing).
//! Vectors are counted into [`Patterns`] (a few thousand distinct vectors at most,
//! however many pairs there are). [`Model::estimate_u`] learns from vectors of random
//! pairs how often non-matching records agree, [`Model::train`] learns from the
//! candidate vectors how often matching records agree and how many candidates match,
//! and a [`Scorer`] then gives every pair a [`weight`](Scorer::weight), to be compared
//! with the [`threshold weight`](Model::threshold_weight). Nothing here reads or
//! writes files, and nothing depends on the engine.
//!
//! # The model
//!
//! For column `k` at level `l`, `m[k][l]` is the probability that a matching pair is at
//! level `l`, and `u[k][l]` the same for a non-matching pair; columns are taken as
//! independent given the match status. `prior` (lambda) is the probability that a
//! candidate pair matches. The *weight* of a pair is its log2 odds of matching:
//!
//! ```text
//! weight = log2(prior / (1 - prior)) + sum over columns of log2(m[k][l] / u[k][l])
//! ```
//!
//! and its match probability is `2^weight / (1 + 2^weight)` ([`probability`]). A
//! missing value (level [`NULL_LEVEL`]) adds 0. With term-frequency adjustment, an
//! exact agreement on a value held by a share `f` of the records weighs
//! `log2(m[k][0] / max(f, TF_FLOOR))` instead: `f` is the chance that a random record
//! agrees with that value, so a shared rare surname says more than a shared common one.
//!
//! # Training
//!
//! `u` comes from random pairs, which are almost all non-matches: the share of random
//! pairs at each level, smoothed ([`Model::estimate_u`]). `m` and the prior come from
//! expectation maximisation over the candidate patterns ([`Model::train`]): each
//! pattern's probability of being a match under the current parameters, then the
//! parameters that best explain those probabilities, until they stop moving. Every
//! probability stays within [`PARAMETER_FLOOR`] of 0 and 1, so no weight is infinite.
//!
//! # Related non-matches
//!
//! Candidate pairs from blocking hold, besides matches and unrelated pairs, pairs of
//! *related* records: members of one household share the family name, the address and
//! often the phone, but not the given name or the birth date. Random pairs never share
//! an address, so with `u` taken from them two classes cannot explain such pairs as
//! non-matches, and EM takes them for matches. A model may therefore hold a third
//! class ([`Related`], asked for with [`EmOptions::related`]): pairs that are not the
//! same customer but related, with their own level distributions `r[k]` and prior
//! `lambda_r`; unrelated pairs keep `u` and the rest of the prior,
//! `lambda_u = 1 - prior - lambda_r`. The weight is then still the log2 odds of
//! matching:
//!
//! ```text
//! weight = log2(prior * M / (lambda_r * R + lambda_u * U))
//! ```
//!
//! with `M`, `R` and `U` the products of `m`, `r` and `u` at the pair's levels over
//! the columns with a value (term-frequency adjusted, `U` takes the share of the value
//! in place of `u[k][0]`). Without a related class it is the two-class weight above.

use hashbrown::HashMap;
use lakecdp_core::unify::SemanticType;
use serde::{Deserialize, Serialize};

use crate::compare::parse_date;
use crate::normalize::digit_value;

/// The level of a column whose value is missing on either side: it weighs 0 and is
/// left out of training for that column. It is above the level count of every kind,
/// and any other level outside a column's range is read the same way when scoring.
pub const NULL_LEVEL: u8 = u8::MAX;

/// The version of the model layout that [`Model::to_json`] writes and
/// [`Model::from_json`] reads. The related class ([`Model::related`]) is an optional
/// field of version 1: models written without it read as models without one, and it
/// is written only when there is one, so models without it are written as before.
pub const MODEL_VERSION: u32 = 1;

/// The match probability from which a pair is a match unless the model says otherwise:
/// 0.9, a weight of `log2(9)` (about 3.17), where the model rates a match nine times
/// likelier than not. Matched pairs are clustered transitively, so one wrong pair can
/// merge two customers and everyone linked to them: a pair the model finds barely more
/// likely than not (0.5) is not enough. Above 0.9 the weights needed grow quickly
/// while the pairs they turn away are mostly true matches missing one field, which
/// clustering usually links through another record anyway.
pub const DEFAULT_THRESHOLD: f64 = 0.9;

/// The prior of a new model: one candidate pair in a hundred matches, the order of
/// magnitude of blocking on names or emails in customer data. Training moves it.
pub const DEFAULT_PRIOR: f64 = 0.01;

/// The smallest value an `m`, `u` or prior takes (and `1 - PARAMETER_FLOOR` the
/// largest): a level never seen in training keeps a finite weight, at most
/// `log2(1 / PARAMETER_FLOOR)` (about 20) in either direction.
pub const PARAMETER_FLOOR: f64 = 1e-6;

/// The smallest share of records a value counts for in a term-frequency adjusted
/// weight. A value rarer than one record in a million is effectively unique in any
/// table this size or smaller, and the same floor as [`PARAMETER_FLOOR`] means an
/// adjusted weight is never larger than the largest weight a trained `u` could give.
pub const TF_FLOOR: f64 = 1e-6;

/// How far from 1 the sum of a seeded or loaded `m` or `u` may be.
pub const SUM_TOLERANCE: f64 = 1e-6;

/// Tolerance of similarity thresholds, so that a similarity computed as 0.91999999999
/// for a pair at 0.92 reaches the level.
const EPSILON: f64 = 1e-9;

/// The most levels of any kind.
const MAX_LEVELS: usize = 5;

// ---------------------------------------------------------------------------------------
// Errors

/// What is wrong with a model, a parameter given to it, or the patterns it is trained on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The model text is not JSON of a model.
    #[error("the model does not read: {0}")]
    Json(String),
    /// The model was written in a layout this build does not read.
    #[error("model version {found} is not supported (version {supported} is)")]
    Version {
        /// The version found.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A parameter of the whole model (a prior or the threshold) is out of range.
    #[error("{parameter} {message}")]
    Model {
        /// `prior`, `threshold`, `related` or `related prior`.
        parameter: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A parameter of one column is wrong.
    #[error("column `{column}`: {parameter} {message}")]
    Column {
        /// The column's name.
        column: String,
        /// `m`, `u`, `r` or `name`.
        parameter: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A comparison vector does not fit the model's columns.
    #[error("comparison vector {pattern:?}: {message}")]
    Pattern {
        /// The vector.
        pattern: Vec<u8>,
        /// What is wrong with it.
        message: String,
    },
}

// ---------------------------------------------------------------------------------------
// Comparison levels

/// How two values of a column are compared: an ordered list of levels, level 0 being
/// exact agreement and the last one "else" (no agreement worth counting). Each level
/// is the first that applies. Values are normalised already (see
/// [`crate::normalize`]); an empty or blank value on either side gives [`NULL_LEVEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComparisonKind {
    /// Names, places, organisations and addresses: exact; Jaro-Winkler similarity at
    /// least 0.92 (one typo in a name); at least 0.80; else.
    Name,
    /// Any other text: exact; one edit apart (a character inserted, deleted or
    /// replaced, Levenshtein distance in characters); two edits; else.
    Text,
    /// Email addresses: exact; the same part before the `@` (another domain); a
    /// Levenshtein similarity (one minus the distance over the longer length) of at
    /// least 0.85; else.
    Email,
    /// Phone numbers: exact; the same last 7 digits (another country or area prefix);
    /// one edit apart; else.
    Phone,
    /// Dates, read as [`crate::compare::similarity`] documents: the same day (so
    /// `1985-03-12` and `12.03.1985` agree exactly); one digit off in the `yyyymmdd`
    /// form; day and month swapped; the same year and month; else. A value that is not
    /// a date is missing ([`NULL_LEVEL`]) unless both values are the same text.
    Date,
    /// Postal codes: exact; the same first 3 characters (the same area); else.
    PostalCode,
    /// Exact; else.
    Exact,
}

impl ComparisonKind {
    /// Every kind.
    pub const ALL: [ComparisonKind; 7] = [
        ComparisonKind::Name,
        ComparisonKind::Text,
        ComparisonKind::Email,
        ComparisonKind::Phone,
        ComparisonKind::Date,
        ComparisonKind::PostalCode,
        ComparisonKind::Exact,
    ];

    /// The name of every level, strongest first; one per level.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            ComparisonKind::Name => &[
                "exact",
                "jaro-winkler >= 0.92",
                "jaro-winkler >= 0.80",
                "else",
            ],
            ComparisonKind::Text => &["exact", "1 edit", "2 edits", "else"],
            ComparisonKind::Email => &["exact", "same local part", "levenshtein >= 0.85", "else"],
            ComparisonKind::Phone => &["exact", "same last 7 digits", "1 edit", "else"],
            ComparisonKind::Date => &[
                "same day",
                "1 digit off",
                "day and month swapped",
                "same year and month",
                "else",
            ],
            ComparisonKind::PostalCode => &["exact", "same first 3 characters", "else"],
            ComparisonKind::Exact => &["exact", "else"],
        }
    }

    /// The number of levels, "else" included.
    pub fn levels(self) -> usize {
        self.labels().len()
    }

    /// The level of the pair `a`, `b`: 0 for exact agreement up to `levels() - 1` for
    /// "else", or [`NULL_LEVEL`] when either value is empty or blank. Symmetric in `a`
    /// and `b`.
    ///
    /// Equal values return at once. Otherwise only Jaro-Winkler (names), edit
    /// distances on non-ASCII text and dates differing in their text allocate or parse;
    /// edit distances are computed within a narrow band and give up as soon as the
    /// bound is exceeded.
    pub fn level(self, a: &str, b: &str) -> u8 {
        if is_blank(a) || is_blank(b) {
            return NULL_LEVEL;
        }
        if a == b {
            return 0;
        }
        match self {
            ComparisonKind::Name => name_level(a, b),
            ComparisonKind::Text => match edit_distance_within(a, b, 2) {
                Some(0 | 1) => 1,
                Some(_) => 2,
                None => 3,
            },
            ComparisonKind::Email => email_level(a, b),
            ComparisonKind::Phone => {
                if same_last_digits(a, b, 7) {
                    1
                } else if edit_distance_within(a, b, 1).is_some() {
                    2
                } else {
                    3
                }
            }
            ComparisonKind::Date => date_level(a, b),
            ComparisonKind::PostalCode => {
                if same_first_chars(a, b, 3) {
                    1
                } else {
                    2
                }
            }
            ComparisonKind::Exact => 1,
        }
    }

    /// [`ComparisonKind::level`] of two optional values: [`NULL_LEVEL`] when either is
    /// missing.
    pub fn level_of(self, a: Option<&str>, b: Option<&str>) -> u8 {
        match (a, b) {
            (Some(a), Some(b)) => self.level(a, b),
            _ => NULL_LEVEL,
        }
    }
}

/// The comparison a column of semantic type `t` uses.
pub fn kind_for(t: &SemanticType) -> ComparisonKind {
    match t {
        SemanticType::FirstName
        | SemanticType::LastName
        | SemanticType::FullName
        | SemanticType::City
        | SemanticType::State
        | SemanticType::Country
        | SemanticType::Organization
        | SemanticType::Address => ComparisonKind::Name,
        SemanticType::Email => ComparisonKind::Email,
        SemanticType::Phone => ComparisonKind::Phone,
        SemanticType::BirthDate | SemanticType::Date => ComparisonKind::Date,
        SemanticType::PostalCode => ComparisonKind::PostalCode,
        SemanticType::Gender => ComparisonKind::Exact,
        SemanticType::Custom(_) => ComparisonKind::Text,
    }
}

fn is_blank(s: &str) -> bool {
    s.trim().is_empty()
}

fn name_level(a: &str, b: &str) -> u8 {
    // The same order both ways, so that the level is symmetric to the last bit.
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    let s = strsim::jaro_winkler(x, y) + EPSILON;
    if s >= 0.92 {
        1
    } else if s >= 0.80 {
        2
    } else {
        3
    }
}

fn email_level(a: &str, b: &str) -> u8 {
    fn local(s: &str) -> Option<&str> {
        let at = s.rfind('@')?;
        let local = &s[..at];
        (!local.is_empty()).then_some(local)
    }
    if let (Some(x), Some(y)) = (local(a), local(b)) {
        if x == y {
            return 1;
        }
    }
    // Similarity 1 - d / longest >= 0.85 is d <= 0.15 * longest.
    let longest = a.chars().count().max(b.chars().count());
    let allowed = (longest as f64 * 0.15 + EPSILON).floor() as usize;
    if allowed >= 1 && edit_distance_within(a, b, allowed).is_some() {
        2
    } else {
        3
    }
}

/// Whether `a` and `b` both have at least `n` digits (of any script) and their last
/// `n` agree.
fn same_last_digits(a: &str, b: &str, n: usize) -> bool {
    let mut x = a.chars().rev().filter_map(digit_value);
    let mut y = b.chars().rev().filter_map(digit_value);
    (0..n).all(|_| matches!((x.next(), y.next()), (Some(p), Some(q)) if p == q))
}

/// Whether `a` and `b` both have at least `n` characters and their first `n` agree.
fn same_first_chars(a: &str, b: &str, n: usize) -> bool {
    let mut x = a.chars();
    let mut y = b.chars();
    (0..n).all(|_| matches!((x.next(), y.next()), (Some(p), Some(q)) if p == q))
}

fn date_level(a: &str, b: &str) -> u8 {
    let (Some(x), Some(y)) = (parse_date(a), parse_date(b)) else {
        return NULL_LEVEL;
    };
    if x == y {
        return 0;
    }
    let (p, q) = (x.iso(), y.iso());
    let digits_off = p.iter().zip(q.iter()).filter(|(c, d)| c != d).count();
    if digits_off == 1 {
        1
    } else if x.year == y.year && x.month == y.day && x.day == y.month {
        2
    } else if x.year == y.year && x.month == y.month {
        3
    } else {
        4
    }
}

/// The widest bound [`edit_distance_within`] handles without allocating its rows.
const STACK_BAND: usize = 15;

/// The Levenshtein distance of `a` and `b` in characters when it is at most `max`,
/// else `None`. ASCII text is compared byte by byte without allocating; other text is
/// first split into characters.
fn edit_distance_within(a: &str, b: &str, max: usize) -> Option<usize> {
    if a.is_ascii() && b.is_ascii() {
        banded_distance(a.as_bytes(), b.as_bytes(), max)
    } else {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        banded_distance(&a, &b, max)
    }
}

/// Levenshtein distance bounded by `max`: the common start and end are skipped, then
/// only the cells of the dynamic programme within `max` of the diagonal are computed
/// (a band of `2 * max + 1`, time `O(n * max)`), stopping as soon as a whole row
/// exceeds `max`.
fn banded_distance<T: PartialEq>(a: &[T], b: &[T], max: usize) -> Option<usize> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[..a.len() - suffix], &b[..b.len() - suffix]);
    let (n, m) = (a.len(), b.len());
    if n.abs_diff(m) > max {
        return None;
    }
    if n == 0 || m == 0 {
        return Some(n.max(m));
    }
    let width = 2 * max + 1;
    let beyond = max + 1;
    let mut stack = [0usize; 2 * (2 * STACK_BAND + 1)];
    let mut heap;
    let buffer: &mut [usize] = if max <= STACK_BAND {
        &mut stack[..2 * width]
    } else {
        heap = vec![0usize; 2 * width];
        &mut heap
    };
    // Cell d of row i holds the distance of a[..i] and b[..j] with j = i + d - max.
    let (mut previous, mut current) = buffer.split_at_mut(width);
    for (d, cell) in previous.iter_mut().enumerate() {
        *cell = match d.checked_sub(max) {
            Some(j) if j <= m => j.min(beyond),
            _ => beyond,
        };
    }
    for i in 1..=n {
        let mut row_min = beyond;
        for d in 0..width {
            let value = match (i + d).checked_sub(max) {
                None => beyond,
                Some(j) if j > m => beyond,
                Some(0) => i.min(beyond),
                Some(j) => {
                    let substitute = previous[d] + usize::from(a[i - 1] != b[j - 1]);
                    let delete = if d + 1 < width {
                        previous[d + 1] + 1
                    } else {
                        beyond
                    };
                    let insert = if d >= 1 { current[d - 1] + 1 } else { beyond };
                    substitute.min(delete).min(insert).min(beyond)
                }
            };
            current[d] = value;
            row_min = row_min.min(value);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut previous, &mut current);
    }
    let distance = previous[m + max - n];
    (distance <= max).then_some(distance)
}

// ---------------------------------------------------------------------------------------
// Parameters

/// The parameters of one compared column.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ColumnModel {
    /// The column's name, unique within the model.
    pub name: String,
    /// How its values are compared, which fixes the number of levels.
    pub kind: ComparisonKind,
    /// For each level, the probability that a matching pair is at that level; sums
    /// to 1.
    pub m: Vec<f64>,
    /// For each level, the probability that a non-matching pair is at that level;
    /// sums to 1.
    pub u: Vec<f64>,
    /// Whether an exact agreement weighs by how rare the shared value is.
    #[serde(default)]
    pub term_frequency: bool,
    /// Whether training leaves `m` as it is.
    #[serde(default)]
    pub fixed_m: bool,
    /// Whether training leaves `u` as it is.
    #[serde(default)]
    pub fixed_u: bool,
}

impl ColumnModel {
    /// A column with starting values: `m` is 0.9 at the exact level and halves at
    /// each level after (the rest of the mass split 4:2:1 over three further levels,
    /// for example), and `u` is `m` reversed, 0.9 at "else". Two levels give
    /// `m = [0.9, 0.1]` and `u = [0.1, 0.9]`.
    pub fn new(name: impl Into<String>, kind: ComparisonKind, term_frequency: bool) -> Self {
        let levels = kind.levels();
        let rest = levels - 1;
        let parts: f64 = (0..rest).map(|i| f64::from(1u32 << i)).sum();
        let m: Vec<f64> = (0..levels)
            .map(|l| {
                if l == 0 {
                    0.9
                } else {
                    0.1 * f64::from(1u32 << (rest - l)) / parts
                }
            })
            .collect();
        let u = m.iter().rev().copied().collect();
        ColumnModel {
            name: name.into(),
            kind,
            m,
            u,
            term_frequency,
            fixed_m: false,
            fixed_u: false,
        }
    }

    /// The number of levels.
    pub fn levels(&self) -> usize {
        self.kind.levels()
    }

    /// Sets `m` from user input, fixed against training when `fixed`.
    ///
    /// The values must be one per level, each finite and in `(0, 1]`, summing to 1
    /// within [`SUM_TOLERANCE`]; anything else is refused rather than guessed at. They
    /// are then divided by their sum (so that they sum to 1 exactly) and every value is
    /// kept at least [`PARAMETER_FLOOR`] from 0 and 1.
    pub fn seed_m(&mut self, values: &[f64], fixed: bool) -> Result<(), ModelError> {
        check_distribution(&self.name, self.kind, "m", values)?;
        self.m = seeded(values);
        self.fixed_m = fixed;
        Ok(())
    }

    /// Sets `u` from user input, fixed against training when `fixed`; the values are
    /// checked and adjusted as for [`ColumnModel::seed_m`].
    pub fn seed_u(&mut self, values: &[f64], fixed: bool) -> Result<(), ModelError> {
        check_distribution(&self.name, self.kind, "u", values)?;
        self.u = seeded(values);
        self.fixed_u = fixed;
        Ok(())
    }

    /// The weight of `level`: `log2(m / u)`, or with term-frequency adjustment at
    /// level 0 and a known share `tf`, `log2(m[0] / max(tf, TF_FLOOR))`; 0 for
    /// [`NULL_LEVEL`] and any level out of range.
    pub fn level_weight(&self, level: u8, tf: Option<f64>) -> f64 {
        let l = usize::from(level);
        let (Some(&m), Some(&u)) = (self.m.get(l), self.u.get(l)) else {
            return 0.0;
        };
        match tf {
            Some(f) if l == 0 && self.term_frequency => tf_weight(m, f),
            _ => (m / u).log2(),
        }
    }

    fn check(&self) -> Result<(), ModelError> {
        if self.name.trim().is_empty() {
            return Err(column_error(&self.name, "name", "is empty".to_string()));
        }
        check_distribution(&self.name, self.kind, "m", &self.m)?;
        check_distribution(&self.name, self.kind, "u", &self.u)
    }
}

/// The share of records holding a value, as a term-frequency adjusted weight reads it.
fn tf_share(f: f64) -> f64 {
    if f.is_nan() {
        TF_FLOOR
    } else {
        f.clamp(TF_FLOOR, 1.0)
    }
}

fn tf_weight(m0: f64, f: f64) -> f64 {
    (m0 / tf_share(f)).log2()
}

fn column_error(column: &str, parameter: &'static str, message: String) -> ModelError {
    ModelError::Column {
        column: column.to_string(),
        parameter,
        message,
    }
}

fn check_distribution(
    column: &str,
    kind: ComparisonKind,
    parameter: &'static str,
    values: &[f64],
) -> Result<(), ModelError> {
    let levels = kind.levels();
    if values.len() != levels {
        return Err(column_error(
            column,
            parameter,
            format!(
                "has {} values, a {} comparison has {levels} levels ({})",
                values.len(),
                kind_name(kind),
                kind.labels().join(", ")
            ),
        ));
    }
    for (l, &value) in values.iter().enumerate() {
        if !(value > 0.0 && value <= 1.0) {
            return Err(column_error(
                column,
                parameter,
                format!(
                    "at level {l} ({}) is {value}, not in (0, 1]",
                    kind.labels()[l]
                ),
            ));
        }
    }
    let sum: f64 = values.iter().sum();
    if (sum - 1.0).abs() > SUM_TOLERANCE {
        return Err(column_error(
            column,
            parameter,
            format!("sums to {sum}, not 1"),
        ));
    }
    Ok(())
}

fn kind_name(kind: ComparisonKind) -> &'static str {
    match kind {
        ComparisonKind::Name => "name",
        ComparisonKind::Text => "text",
        ComparisonKind::Email => "email",
        ComparisonKind::Phone => "phone",
        ComparisonKind::Date => "date",
        ComparisonKind::PostalCode => "postal_code",
        ComparisonKind::Exact => "exact",
    }
}

fn seeded(values: &[f64]) -> Vec<f64> {
    let sum: f64 = values.iter().sum();
    let mut out: Vec<f64> = values.iter().map(|v| v / sum).collect();
    clamp_distribution(&mut out);
    out
}

/// Keeps every value of a distribution at least [`PARAMETER_FLOOR`] (and so at most
/// `1 - PARAMETER_FLOOR`) and the sum at 1: values below the floor are raised to it,
/// and the excess is taken from the others in proportion to how far above the floor
/// they are.
fn clamp_distribution(values: &mut [f64]) {
    for v in values.iter_mut() {
        if v.is_nan() || *v < PARAMETER_FLOOR {
            *v = PARAMETER_FLOOR;
        }
    }
    let excess = values.iter().sum::<f64>() - 1.0;
    let room: f64 = values.iter().map(|v| v - PARAMETER_FLOOR).sum();
    if room > 0.0 {
        for v in values.iter_mut() {
            *v -= (*v - PARAMETER_FLOOR) * excess / room;
        }
    }
}

fn clamp_probability(p: f64) -> f64 {
    if p.is_nan() {
        return PARAMETER_FLOOR;
    }
    p.clamp(PARAMETER_FLOOR, 1.0 - PARAMETER_FLOOR)
}

/// The class of related non-matches of a [`Model`]: pairs that are not the same
/// customer but are related (a household, relatives sharing a family name), see the
/// [module documentation](self#related-non-matches).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Related {
    /// The probability that a pair is related (lambda_r). The prior of the model and
    /// this sum to less than 1; unrelated pairs take the rest.
    pub prior: f64,
    /// For each compared column, in the order of the model's columns, the probability
    /// that a related pair is at each level; one value per level, summing to 1 and kept
    /// at least [`PARAMETER_FLOOR`] from 0 and 1 like `m` and `u`.
    pub r: Vec<Vec<f64>>,
}

/// A match model: the prior, the parameters of every compared column in the order of
/// the comparison vectors, and the threshold. See the [module documentation](self).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Model {
    /// The layout version, [`MODEL_VERSION`].
    pub version: u32,
    /// The probability that a candidate pair is a match (lambda).
    pub prior: f64,
    /// Whether training leaves the prior as it is.
    #[serde(default)]
    pub fixed_prior: bool,
    /// The compared columns, in the order of the comparison vectors.
    pub columns: Vec<ColumnModel>,
    /// The match probability from which a pair is a match, [`DEFAULT_THRESHOLD`]
    /// unless set.
    pub threshold: f64,
    /// How the last training went, if the model was trained.
    #[serde(default)]
    pub training: Option<TrainingReport>,
    /// The class of related non-matches, if the model has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<Related>,
}

impl Model {
    /// A model of `columns` (name, comparison, term-frequency adjustment) with the
    /// starting values of [`ColumnModel::new`], prior [`DEFAULT_PRIOR`] and threshold
    /// [`DEFAULT_THRESHOLD`].
    pub fn new(columns: Vec<(String, ComparisonKind, bool)>) -> Self {
        Model {
            version: MODEL_VERSION,
            prior: DEFAULT_PRIOR,
            fixed_prior: false,
            columns: columns
                .into_iter()
                .map(|(name, kind, tf)| ColumnModel::new(name, kind, tf))
                .collect(),
            threshold: DEFAULT_THRESHOLD,
            training: None,
            related: None,
        }
    }

    /// The column named `name`.
    pub fn column_mut(&mut self, name: &str) -> Option<&mut ColumnModel> {
        self.columns.iter_mut().find(|c| c.name == name)
    }

    /// Sets the prior from user input, fixed against training when `fixed`. It must be
    /// strictly between 0 and 1 (and, with a related class, leave room for its prior),
    /// and is kept at least [`PARAMETER_FLOOR`] from both.
    pub fn seed_prior(&mut self, prior: f64, fixed: bool) -> Result<(), ModelError> {
        check_open_unit("prior", prior)?;
        let prior = clamp_probability(prior);
        if let Some(related) = &self.related {
            check_priors(prior, related.prior)?;
        }
        self.prior = prior;
        self.fixed_prior = fixed;
        Ok(())
    }

    /// Sets the match probability from which a pair is a match; strictly between 0
    /// and 1.
    pub fn set_threshold(&mut self, threshold: f64) -> Result<(), ModelError> {
        check_open_unit("threshold", threshold)?;
        self.threshold = threshold;
        Ok(())
    }

    /// Checks what [`Model::from_json`] checks: the version, a prior and a threshold
    /// strictly between 0 and 1, and for every column a non-empty unique name and an
    /// `m` and a `u` with one value per level, each in `(0, 1]`, summing to 1 within
    /// [`SUM_TOLERANCE`]. With a related class, its prior is strictly between 0 and 1,
    /// the two priors sum to less than 1, and it has one `r` per column, checked as
    /// `m` and `u` are (an error names the column).
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.version != MODEL_VERSION {
            return Err(ModelError::Version {
                found: self.version,
                supported: MODEL_VERSION,
            });
        }
        check_open_unit("prior", self.prior)?;
        check_open_unit("threshold", self.threshold)?;
        for (i, column) in self.columns.iter().enumerate() {
            column.check()?;
            if self.columns[..i].iter().any(|c| c.name == column.name) {
                return Err(column_error(
                    &column.name,
                    "name",
                    "appears twice".to_string(),
                ));
            }
        }
        if let Some(related) = &self.related {
            check_open_unit("related prior", related.prior)?;
            check_priors(self.prior, related.prior)?;
            check_related_count(related, self.columns.len())?;
            for (column, r) in self.columns.iter().zip(&related.r) {
                check_distribution(&column.name, column.kind, "r", r)?;
            }
        }
        Ok(())
    }

    /// Multiplies the prior, and the related class's prior if there is one, by
    /// `factor`, whether they are fixed or not: the engine trains on candidate pairs,
    /// where the priors are shares among candidates, and scores with shares among all
    /// pairs, `factor = candidates / all pairs`. The priors stay strictly between 0 and
    /// 1: at least `f64::MIN_POSITIVE` (so a tiny factor may take them below
    /// [`PARAMETER_FLOOR`]), and if the factor would take their sum to 1 or above,
    /// both are scaled down to sum to `1 - PARAMETER_FLOOR`. A factor that is not a
    /// finite positive number leaves them as they are. Weights stay finite.
    pub fn scale_priors(&mut self, factor: f64) {
        if !(factor.is_finite() && factor > 0.0) {
            return;
        }
        let scale = |p: f64| (p * factor).clamp(f64::MIN_POSITIVE, 1.0 - PARAMETER_FLOOR);
        let mut prior = scale(self.prior);
        match &mut self.related {
            None => self.prior = prior,
            Some(related) => {
                let mut related_prior = scale(related.prior);
                let sum = prior + related_prior;
                if sum >= 1.0 - PARAMETER_FLOOR {
                    let shrink = (1.0 - PARAMETER_FLOOR) / sum;
                    prior = (prior * shrink).max(f64::MIN_POSITIVE);
                    related_prior = (related_prior * shrink).max(f64::MIN_POSITIVE);
                }
                self.prior = prior;
                related.prior = related_prior;
            }
        }
    }

    /// The model as JSON, `version` first. [`Model::from_json`] reads it back the
    /// same, every number within a unit in its last place (numbers are written in
    /// their shortest decimal form, and parsing that form back may round the last bit).
    pub fn to_json(&self) -> String {
        // Serialising plain structs of numbers, strings and booleans cannot fail (no
        // map has non-string keys); non-finite numbers would be written as null and
        // refused on reading, but every parameter is kept finite.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a model that [`Model::to_json`] wrote, and [validates](Model::validate) it.
    /// The version is checked before the rest is read, so that a model written in
    /// another layout says so.
    pub fn from_json(text: &str) -> Result<Model, ModelError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let versioned: Versioned =
            serde_json::from_str(text).map_err(|e| ModelError::Json(e.to_string()))?;
        if versioned.version != MODEL_VERSION {
            return Err(ModelError::Version {
                found: versioned.version,
                supported: MODEL_VERSION,
            });
        }
        let model: Model =
            serde_json::from_str(text).map_err(|e| ModelError::Json(e.to_string()))?;
        model.validate()?;
        Ok(model)
    }

    /// `log2(prior / (1 - prior))`, the weight of a pair about which nothing is known.
    pub fn prior_weight(&self) -> f64 {
        (self.prior / (1.0 - self.prior)).log2()
    }

    /// The weight whose [`probability`] is the threshold: a pair is a match when its
    /// weight is at least this.
    pub fn threshold_weight(&self) -> f64 {
        weight_for(self.threshold)
    }

    /// The weight of a comparison vector: the prior weight plus, for each column, the
    /// [`weight of its level`](ColumnModel::level_weight). `levels` has one entry per
    /// column; `tf` holds for each column the share of records holding the value when
    /// the pair agrees exactly (entries beyond its end are `None`, so `&[]` means no
    /// term frequencies). A missing or out-of-range level adds 0.
    ///
    /// With a related class, the weight is `log2(prior * M / (lambda_r * R +
    /// lambda_u * U))` (see the [module documentation](self#related-non-matches)),
    /// computed as `log2(prior / lambda_u)` plus the weights of the levels, minus
    /// `log2(1 + 2^d)` where `d = log2(lambda_r / lambda_u) + sum of log2(r / u)` is
    /// the log2 odds of related against unrelated: sums of logarithms, which neither
    /// underflow nor overflow however many columns there are.
    ///
    /// This computes logarithms; to score many pairs, use a [`Scorer`].
    pub fn weight(&self, levels: &[u8], tf: &[Option<f64>]) -> f64 {
        let Some(related) = &self.related else {
            let mut weight = self.prior_weight();
            for (i, (column, &level)) in self.columns.iter().zip(levels).enumerate() {
                weight += column.level_weight(level, tf.get(i).copied().flatten());
            }
            return weight;
        };
        let ln_u = unrelated_prior(self.prior, related.prior).log2();
        let mut weight = self.prior.log2() - ln_u;
        let mut odds = related.prior.log2() - ln_u;
        for (i, ((column, r), &level)) in
            self.columns.iter().zip(&related.r).zip(levels).enumerate()
        {
            let tf = tf.get(i).copied().flatten();
            weight += column.level_weight(level, tf);
            odds += related_level_weight(column, r, level, tf);
        }
        weight - softplus2(odds)
    }

    /// What makes up [`Model::weight`]: the prior first (no column; `m` is the prior,
    /// `u` one minus it), then one row per column. The weights add up to the weight of
    /// the pair. A missing level shows `m = u = 1` and weight 0; a term-frequency
    /// adjusted exact level shows the share it used as `u`.
    ///
    /// With a related class, one more row follows (no column, no level, label
    /// `related`): the weight of the pair minus the other rows, the evidence that the
    /// pair is related rather than the same customer. It is 0 when the columns say
    /// nothing about related against unrelated, and negative when they speak for a
    /// related pair; its `m` is the share of non-matches, `1 - prior`, and its `u`
    /// what they weigh given the columns, `lambda_u + lambda_r * R / U`.
    pub fn explain(&self, levels: &[u8], tf: &[Option<f64>]) -> Vec<Contribution> {
        let mut rows = Vec::with_capacity(self.columns.len() + 2);
        rows.push(Contribution {
            column: None,
            level: None,
            level_label: "prior",
            m: self.prior,
            u: 1.0 - self.prior,
            term_frequency: None,
            weight: self.prior_weight(),
        });
        for (i, (column, &level)) in self.columns.iter().zip(levels).enumerate() {
            let l = usize::from(level);
            let tf = tf.get(i).copied().flatten();
            let weight = column.level_weight(level, tf);
            let row = match (column.m.get(l), column.u.get(l)) {
                (Some(&m), Some(&u)) => {
                    let adjusted = tf.filter(|_| l == 0 && column.term_frequency);
                    Contribution {
                        column: Some(column.name.clone()),
                        level: Some(level),
                        level_label: column.kind.labels().get(l).copied().unwrap_or("?"),
                        m,
                        u: adjusted.map_or(u, tf_share),
                        term_frequency: adjusted,
                        weight,
                    }
                }
                _ => Contribution {
                    column: Some(column.name.clone()),
                    level: Some(level),
                    level_label: "null",
                    m: 1.0,
                    u: 1.0,
                    term_frequency: None,
                    weight,
                },
            };
            rows.push(row);
        }
        if self.related.is_some() {
            let others: f64 = rows.iter().map(|r| r.weight).sum();
            let weight = self.weight(levels, tf) - others;
            let m = 1.0 - self.prior;
            rows.push(Contribution {
                column: None,
                level: None,
                level_label: "related",
                m,
                u: m * (-weight).exp2(),
                term_frequency: None,
                weight,
            });
        }
        rows
    }

    /// The weights of this model, precomputed for scoring many pairs.
    pub fn scorer(&self) -> Scorer {
        let mut starts = Vec::with_capacity(self.columns.len() + 1);
        let mut table = Vec::new();
        let mut tf_m0 = Vec::with_capacity(self.columns.len());
        starts.push(0);
        for column in &self.columns {
            let levels = column.m.len().min(column.u.len());
            for l in 0..levels {
                table.push(column.level_weight(l as u8, None));
            }
            starts.push(table.len());
            tf_m0.push(column.m.first().copied().filter(|_| column.term_frequency));
        }
        let (prior_weight, related) = match &self.related {
            None => (self.prior_weight(), None),
            Some(related) => {
                let ln_u = unrelated_prior(self.prior, related.prior).log2();
                let mut table = Vec::with_capacity(starts.last().copied().unwrap_or(0));
                let mut tf_r0 = Vec::with_capacity(self.columns.len());
                for (k, (column, r)) in self.columns.iter().zip(&related.r).enumerate() {
                    for l in 0..starts[k + 1] - starts[k] {
                        table.push(related_level_weight(column, r, l as u8, None));
                    }
                    tf_r0.push(r.first().copied().filter(|_| column.term_frequency));
                }
                let scorer = RelatedScorer {
                    prior_weight: related.prior.log2() - ln_u,
                    table,
                    tf_r0,
                };
                (self.prior.log2() - ln_u, Some(scorer))
            }
        };
        Scorer {
            prior_weight,
            starts,
            table,
            tf_m0,
            threshold_weight: self.threshold_weight(),
            related,
        }
    }

    /// Sets `u` of every column that is not fixed from comparison vectors of random
    /// pairs (nearly all non-matches): the share of pairs at each level, missing levels
    /// left out, with add-one (Laplace) smoothing, `(count + 1) / (pairs + levels)`,
    /// so that a level never seen in `n` pairs gets `1 / (n + levels)` rather than 0: a
    /// small sample cannot claim a level is rarer than it can tell. Values are then
    /// kept at least [`PARAMETER_FLOOR`] from 0 and 1. A column with no value in any
    /// random pair keeps its `u`. Returns the number of random pairs.
    pub fn estimate_u(&mut self, random: &Patterns) -> Result<u64, ModelError> {
        let layout = self.check_patterns(random)?;
        let mut counts = vec![0u64; layout.size()];
        for (levels, count) in random.iter() {
            for (k, &level) in levels.iter().enumerate() {
                if level != NULL_LEVEL {
                    counts[layout.starts[k] + usize::from(level)] += count;
                }
            }
        }
        for (k, column) in self.columns.iter_mut().enumerate() {
            let counts = &counts[layout.starts[k]..layout.starts[k + 1]];
            let pairs: u64 = counts.iter().sum();
            if column.fixed_u || pairs == 0 {
                continue;
            }
            let denominator = pairs as f64 + counts.len() as f64;
            column.u = counts
                .iter()
                .map(|&c| (c as f64 + 1.0) / denominator)
                .collect();
            clamp_distribution(&mut column.u);
        }
        Ok(random.total())
    }

    /// Estimates the prior and `m` (and `u` when [`EmOptions::train_u`]) by expectation
    /// maximisation over the comparison vectors of the candidate pairs, leaving fixed
    /// parameters as they are, and keeps the report in [`Model::training`].
    ///
    /// Each iteration computes, for every distinct vector, the probability that its
    /// pairs match under the current parameters (in logarithms, so that long vectors
    /// do not underflow), then sets the prior to the expected share of matches and
    /// `m[k][l]` to the expected share of matches at level `l` among the matches with a
    /// value in column `k` (`u` likewise with non-matches). Parameters are kept at
    /// least [`PARAMETER_FLOOR`] from 0 and 1. Training stops after
    /// [`EmOptions::max_iterations`] or once no parameter moved by more than
    /// [`EmOptions::tolerance`]. Each iteration is linear in the number of distinct
    /// vectors, not of pairs.
    ///
    /// The two classes of a mixture are interchangeable, so EM can settle on the
    /// mirror solution where "matches" are the non-matches: when most columns end with
    /// `m` at the exact level below `u`, the report says so
    /// ([`TrainingReport::swapped`]) and the model should not be used as it is.
    ///
    /// With a related class ([`EmOptions::related`], or one the model has), EM has
    /// three classes: matches (`m`, the prior), related pairs (`r`, its prior) and
    /// unrelated pairs (`u`, the rest of the prior). Each pattern's pairs are shared
    /// among the three by their probabilities (log-sum-exp), both priors become the
    /// expected shares (a fixed prior stays, the related prior is still trained), and
    /// `m`, `r` and `u` (when trained) the expected shares at each level among the
    /// pairs of their class with a value. Matches and related pairs are
    /// interchangeable to EM: when most columns end with `r` above `m` at the exact
    /// level, the two classes are exchanged so that "match" is the class that agrees
    /// most ([`TrainingReport::related_exchanged`]), unless some `m` or the prior is
    /// fixed, which anchors the match class already.
    pub fn train(
        &mut self,
        candidates: &Patterns,
        options: &EmOptions,
    ) -> Result<TrainingReport, ModelError> {
        let layout = self.check_patterns(candidates)?;
        let mut patterns: Vec<(&[u8], f64)> =
            candidates.iter().map(|(l, c)| (l, c as f64)).collect();
        // A fixed order, so that sums and results are the same on every run.
        patterns.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let total: f64 = patterns.iter().map(|p| p.1).sum();
        if options.related && self.related.is_none() {
            self.related = Some(self.start_related());
        }
        if let Some(related) = &mut self.related {
            // A related prior scaled to all pairs, or one that leaves no room beside
            // the prior, starts again as a new class's does.
            let room = unrelated_prior(self.prior, related.prior);
            if !(related.prior >= PARAMETER_FLOOR && room >= PARAMETER_FLOOR) {
                related.prior = start_related_prior(self.prior);
            }
        }
        let (iterations, converged, log_likelihood, related_exchanged) = match self.related.take() {
            None => self.em(&layout, &patterns, total, options),
            Some(mut related) => {
                let outcome = self.em_related(&mut related, &layout, &patterns, total, options);
                self.related = Some(related);
                outcome
            }
        };
        let inverted_columns: Vec<String> = self
            .columns
            .iter()
            .filter(|c| matches!((c.m.first(), c.u.first()), (Some(m), Some(u)) if m < u))
            .map(|c| c.name.clone())
            .collect();
        let report = TrainingReport {
            iterations,
            converged,
            log_likelihood,
            pairs: candidates.total(),
            patterns: candidates.len(),
            swapped: inverted_columns.len() * 2 > self.columns.len(),
            inverted_columns,
            related_exchanged,
            seconds: 0.0,
        };
        self.training = Some(report.clone());
        Ok(report)
    }

    /// The two-class EM of [`Model::train`]: the iterations run, whether they
    /// converged, the log-likelihood, and `false` (no classes exchanged).
    fn em(
        &mut self,
        layout: &Layout,
        patterns: &[(&[u8], f64)],
        total: f64,
        options: &EmOptions,
    ) -> (u32, bool, f64, bool) {
        let size = layout.size();
        let mut ln_m = vec![0.0; size];
        let mut ln_u = vec![0.0; size];
        let mut matched = vec![0.0; size];
        let mut unmatched = vec![0.0; size];
        let mut iterations = 0;
        let mut converged = false;
        while iterations < options.max_iterations {
            iterations += 1;
            self.log_tables(layout, &mut ln_m, &mut ln_u);
            matched.fill(0.0);
            unmatched.fill(0.0);
            let (ln_prior, ln_not) = (self.prior.ln(), (1.0 - self.prior).ln());
            let mut matches = 0.0;
            for &(levels, count) in patterns {
                let (mut a, mut b) = (ln_prior, ln_not);
                for (k, &level) in levels.iter().enumerate() {
                    if level != NULL_LEVEL {
                        let at = layout.starts[k] + usize::from(level);
                        a += ln_m[at];
                        b += ln_u[at];
                    }
                }
                let r = 1.0 / (1.0 + (b - a).exp());
                let (as_match, as_non_match) = (count * r, count * (1.0 - r));
                matches += as_match;
                for (k, &level) in levels.iter().enumerate() {
                    if level != NULL_LEVEL {
                        let at = layout.starts[k] + usize::from(level);
                        matched[at] += as_match;
                        unmatched[at] += as_non_match;
                    }
                }
            }
            let mut change: f64 = 0.0;
            if !self.fixed_prior && total > 0.0 {
                let prior = clamp_probability(matches / total);
                change = change.max((prior - self.prior).abs());
                self.prior = prior;
            }
            for (k, column) in self.columns.iter_mut().enumerate() {
                let range = layout.starts[k]..layout.starts[k + 1];
                if !column.fixed_m {
                    change = change.max(maximise(&mut column.m, &matched[range.clone()]));
                }
                if options.train_u && !column.fixed_u {
                    change = change.max(maximise(&mut column.u, &unmatched[range]));
                }
            }
            if change < options.tolerance {
                converged = true;
                break;
            }
        }
        self.log_tables(layout, &mut ln_m, &mut ln_u);
        let (ln_prior, ln_not) = (self.prior.ln(), (1.0 - self.prior).ln());
        let mut log_likelihood = 0.0;
        for &(levels, count) in patterns {
            let (mut a, mut b) = (ln_prior, ln_not);
            for (k, &level) in levels.iter().enumerate() {
                if level != NULL_LEVEL {
                    let at = layout.starts[k] + usize::from(level);
                    a += ln_m[at];
                    b += ln_u[at];
                }
            }
            let high = a.max(b);
            log_likelihood += count * (high + ((a - high).exp() + (b - high).exp()).ln());
        }
        (iterations, converged, log_likelihood, false)
    }

    /// The starting related class of [`EmOptions::related`]: its prior is the prior's
    /// starting value, but at most half of what the prior leaves (so that unrelated
    /// pairs start with at least as much), and `r[k]` is the mean of `m[k]` and
    /// `u[k]`, agreeing more than unrelated pairs and less than matches, so that EM
    /// can move it towards whatever related pairs the candidates hold.
    fn start_related(&self) -> Related {
        let prior = start_related_prior(self.prior);
        let r = self
            .columns
            .iter()
            .map(|c| {
                let mean: Vec<f64> = c.m.iter().zip(&c.u).map(|(m, u)| (m + u) / 2.0).collect();
                seeded(&mean)
            })
            .collect();
        Related { prior, r }
    }

    /// The three-class EM of [`Model::train`] (matches, related pairs, unrelated
    /// pairs): the iterations run, whether they converged, the log-likelihood, and
    /// whether the match and related classes were exchanged at the end.
    fn em_related(
        &mut self,
        related: &mut Related,
        layout: &Layout,
        patterns: &[(&[u8], f64)],
        total: f64,
        options: &EmOptions,
    ) -> (u32, bool, f64, bool) {
        let size = layout.size();
        let mut ln_m = vec![0.0; size];
        let mut ln_u = vec![0.0; size];
        let mut ln_r = vec![0.0; size];
        let mut matched = vec![0.0; size];
        let mut relatives = vec![0.0; size];
        let mut unrelated = vec![0.0; size];
        let mut iterations = 0;
        let mut converged = false;
        let class_logs =
            |levels: &[u8], priors: [f64; 3], ln_m: &[f64], ln_r: &[f64], ln_u: &[f64]| {
                let [mut a, mut b, mut c] = priors;
                for (k, &level) in levels.iter().enumerate() {
                    if level != NULL_LEVEL {
                        let at = layout.starts[k] + usize::from(level);
                        a += ln_m[at];
                        b += ln_r[at];
                        c += ln_u[at];
                    }
                }
                [a, b, c]
            };
        let ln_priors = |prior: f64, related: f64| {
            [
                prior.ln(),
                related.ln(),
                unrelated_prior(prior, related).ln(),
            ]
        };
        while iterations < options.max_iterations {
            iterations += 1;
            self.log_tables(layout, &mut ln_m, &mut ln_u);
            log_table(layout, &related.r, &mut ln_r);
            matched.fill(0.0);
            relatives.fill(0.0);
            unrelated.fill(0.0);
            let priors = ln_priors(self.prior, related.prior);
            let (mut matches, mut related_pairs) = (0.0, 0.0);
            for &(levels, count) in patterns {
                let [a, b, c] = class_logs(levels, priors, &ln_m, &ln_r, &ln_u);
                let high = a.max(b).max(c);
                let (ea, eb, ec) = ((a - high).exp(), (b - high).exp(), (c - high).exp());
                let share = count / (ea + eb + ec);
                let (as_match, as_related, as_unrelated) = (ea * share, eb * share, ec * share);
                matches += as_match;
                related_pairs += as_related;
                for (k, &level) in levels.iter().enumerate() {
                    if level != NULL_LEVEL {
                        let at = layout.starts[k] + usize::from(level);
                        matched[at] += as_match;
                        relatives[at] += as_related;
                        unrelated[at] += as_unrelated;
                    }
                }
            }
            let mut change: f64 = 0.0;
            if total > 0.0 {
                let prior = if self.fixed_prior {
                    self.prior
                } else {
                    clamp_probability(matches / total).min(1.0 - 2.0 * PARAMETER_FLOOR)
                };
                let room = (1.0 - PARAMETER_FLOOR - prior).max(f64::MIN_POSITIVE);
                let related_prior = (related_pairs / total).max(PARAMETER_FLOOR).min(room);
                change = change
                    .max((prior - self.prior).abs())
                    .max((related_prior - related.prior).abs());
                self.prior = prior;
                related.prior = related_prior;
            }
            for (k, (column, r)) in self.columns.iter_mut().zip(&mut related.r).enumerate() {
                let range = layout.starts[k]..layout.starts[k + 1];
                if !column.fixed_m {
                    change = change.max(maximise(&mut column.m, &matched[range.clone()]));
                }
                change = change.max(maximise(r, &relatives[range.clone()]));
                if options.train_u && !column.fixed_u {
                    change = change.max(maximise(&mut column.u, &unrelated[range]));
                }
            }
            if change < options.tolerance {
                converged = true;
                break;
            }
        }
        self.log_tables(layout, &mut ln_m, &mut ln_u);
        log_table(layout, &related.r, &mut ln_r);
        let priors = ln_priors(self.prior, related.prior);
        let mut log_likelihood = 0.0;
        for &(levels, count) in patterns {
            let [a, b, c] = class_logs(levels, priors, &ln_m, &ln_r, &ln_u);
            let high = a.max(b).max(c);
            let sum = (a - high).exp() + (b - high).exp() + (c - high).exp();
            log_likelihood += count * (high + sum.ln());
        }
        // Matches and related pairs are interchangeable to EM: "match" is the class
        // that agrees exactly more often on most columns. Fixed `m` or a fixed prior
        // say which class matches already, and are not moved.
        let anchored = self.fixed_prior || self.columns.iter().any(|c| c.fixed_m);
        let above = self
            .columns
            .iter()
            .zip(&related.r)
            .filter(|(c, r)| matches!((c.m.first(), r.first()), (Some(m), Some(r)) if r > m))
            .count();
        let exchange = !anchored && above * 2 > self.columns.len();
        if exchange {
            std::mem::swap(&mut self.prior, &mut related.prior);
            for (column, r) in self.columns.iter_mut().zip(&mut related.r) {
                std::mem::swap(&mut column.m, r);
            }
        }
        (iterations, converged, log_likelihood, exchange)
    }

    fn log_tables(&self, layout: &Layout, ln_m: &mut [f64], ln_u: &mut [f64]) {
        for (k, column) in self.columns.iter().enumerate() {
            let start = layout.starts[k];
            for (l, (m, u)) in column.m.iter().zip(&column.u).enumerate() {
                ln_m[start + l] = m.ln();
                ln_u[start + l] = u.ln();
            }
        }
    }

    /// Checks that every vector has one level per column, each in range or
    /// [`NULL_LEVEL`], and that `m` and `u` have one value per level.
    fn check_patterns(&self, patterns: &Patterns) -> Result<Layout, ModelError> {
        for column in &self.columns {
            for (parameter, values) in [("m", &column.m), ("u", &column.u)] {
                if values.len() != column.levels() {
                    return Err(column_error(
                        &column.name,
                        parameter,
                        format!("has {} values for {} levels", values.len(), column.levels()),
                    ));
                }
            }
        }
        if let Some(related) = &self.related {
            check_related_count(related, self.columns.len())?;
            for (column, r) in self.columns.iter().zip(&related.r) {
                if r.len() != column.levels() {
                    return Err(column_error(
                        &column.name,
                        "r",
                        format!("has {} values for {} levels", r.len(), column.levels()),
                    ));
                }
            }
        }
        for (levels, _) in patterns.iter() {
            if levels.len() != self.columns.len() {
                return Err(ModelError::Pattern {
                    pattern: levels.to_vec(),
                    message: format!(
                        "has {} levels, the model compares {} columns",
                        levels.len(),
                        self.columns.len()
                    ),
                });
            }
            for (&level, column) in levels.iter().zip(&self.columns) {
                if level != NULL_LEVEL && usize::from(level) >= column.levels() {
                    return Err(ModelError::Pattern {
                        pattern: levels.to_vec(),
                        message: format!(
                            "level {level} of column `{}` is out of range (it has {} levels)",
                            column.name,
                            column.levels()
                        ),
                    });
                }
            }
        }
        Ok(Layout::of(&self.columns))
    }
}

/// Fills `ln` with the natural logarithms of `distributions`, one per column.
fn log_table(layout: &Layout, distributions: &[Vec<f64>], ln: &mut [f64]) {
    for (k, distribution) in distributions.iter().enumerate() {
        let start = layout.starts[k];
        for (l, p) in distribution.iter().enumerate() {
            ln[start + l] = p.ln();
        }
    }
}

/// Where each column's levels start in a flat table over all columns' levels.
struct Layout {
    /// One start per column, then the table's size.
    starts: Vec<usize>,
}

impl Layout {
    fn of(columns: &[ColumnModel]) -> Layout {
        let mut starts = Vec::with_capacity(columns.len() + 1);
        let mut at = 0;
        starts.push(at);
        for column in columns {
            at += column.levels();
            starts.push(at);
        }
        Layout { starts }
    }

    fn size(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }
}

/// Sets `distribution` to `expected` normalised (and kept off 0 and 1); leaves it as
/// it is when nothing was expected at any level. Returns the largest change.
fn maximise(distribution: &mut [f64], expected: &[f64]) -> f64 {
    let sum: f64 = expected.iter().sum();
    if sum.is_nan() || sum <= 0.0 {
        return 0.0;
    }
    let mut next = [0.0; MAX_LEVELS];
    let next = &mut next[..expected.len().min(MAX_LEVELS)];
    for (n, e) in next.iter_mut().zip(expected) {
        *n = e / sum;
    }
    clamp_distribution(next);
    let mut change: f64 = 0.0;
    for (d, n) in distribution.iter_mut().zip(next.iter()) {
        change = change.max((*d - n).abs());
        *d = *n;
    }
    change
}

/// The starting prior of a related class beside a prior `prior`: the same, but at
/// most half of what `prior` leaves.
fn start_related_prior(prior: f64) -> f64 {
    prior.min((1.0 - prior) / 2.0).max(PARAMETER_FLOOR)
}

/// `lambda_u`, the prior of unrelated pairs beside a prior `prior` of matches and
/// `related` of related pairs.
fn unrelated_prior(prior: f64, related: f64) -> f64 {
    1.0 - prior - related
}

/// The weight of `level` for related against unrelated pairs: `log2(r / u)`, or with
/// term-frequency adjustment at level 0 and a known share `tf`,
/// `log2(r[0] / max(tf, TF_FLOOR))`; 0 for [`NULL_LEVEL`] and any level out of range.
fn related_level_weight(column: &ColumnModel, r: &[f64], level: u8, tf: Option<f64>) -> f64 {
    let l = usize::from(level);
    let (Some(&r), Some(&u), true) = (r.get(l), column.u.get(l), l < column.m.len()) else {
        return 0.0;
    };
    match tf {
        Some(f) if l == 0 && column.term_frequency => tf_weight(r, f),
        _ => (r / u).log2(),
    }
}

/// `log2(1 + 2^x)`, without overflow for large `x` nor loss for very negative `x`.
fn softplus2(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp2().ln_1p() / std::f64::consts::LN_2
}

/// Checks that a prior of matches and one of related pairs leave room for unrelated
/// pairs.
fn check_priors(prior: f64, related: f64) -> Result<(), ModelError> {
    if prior + related < 1.0 {
        Ok(())
    } else {
        Err(ModelError::Model {
            parameter: "related prior",
            message: format!("is {related}, with the prior {prior} they reach 1"),
        })
    }
}

fn check_related_count(related: &Related, columns: usize) -> Result<(), ModelError> {
    if related.r.len() == columns {
        Ok(())
    } else {
        Err(ModelError::Model {
            parameter: "related",
            message: format!(
                "has {} distributions r, the model compares {columns} columns",
                related.r.len()
            ),
        })
    }
}

fn check_open_unit(parameter: &'static str, value: f64) -> Result<(), ModelError> {
    if value > 0.0 && value < 1.0 {
        Ok(())
    } else {
        Err(ModelError::Model {
            parameter,
            message: format!("is {value}, not strictly between 0 and 1"),
        })
    }
}

/// The match probability of a weight: `2^w / (1 + 2^w)`.
pub fn probability(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

/// The weight of a match probability, `log2(p / (1 - p))`: the inverse of
/// [`probability`] (infinite at 0 and 1).
pub fn weight_for(probability: f64) -> f64 {
    (probability / (1.0 - probability)).log2()
}

// ---------------------------------------------------------------------------------------
// Training data and report

/// Distinct comparison vectors with the number of pairs that have each.
///
/// A map from vector to count: each distinct vector costs its bytes on the heap, a
/// 24-byte `Vec` header, an 8-byte count and the map's slot overhead, about 50 bytes
/// for a handful of columns. The number of distinct vectors is bounded by the product
/// of (levels + 1) over the columns, a few thousand for six columns, whatever the
/// number of pairs. Threads count into their own `Patterns` and [`merge`](Patterns::merge).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns {
    counts: HashMap<Vec<u8>, u64>,
    total: u64,
}

impl Patterns {
    /// No vectors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one pair with comparison vector `levels`.
    pub fn add(&mut self, levels: &[u8]) {
        self.add_count(levels, 1);
    }

    /// Counts `count` pairs with comparison vector `levels`.
    pub fn add_count(&mut self, levels: &[u8], count: u64) {
        if count == 0 {
            return;
        }
        if let Some(c) = self.counts.get_mut(levels) {
            *c += count;
        } else {
            self.counts.insert(levels.to_vec(), count);
        }
        self.total += count;
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, mut other: Patterns) {
        if self.counts.len() < other.counts.len() {
            std::mem::swap(self, &mut other);
        }
        for (levels, count) in other.counts {
            *self.counts.entry(levels).or_insert(0) += count;
        }
        self.total += other.total;
    }

    /// The number of distinct vectors.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether no pair was counted.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The number of pairs counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The number of pairs with vector `levels`.
    pub fn count(&self, levels: &[u8]) -> u64 {
        self.counts.get(levels).copied().unwrap_or(0)
    }

    /// Every distinct vector with its count, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> + '_ {
        self.counts.iter().map(|(l, &c)| (l.as_slice(), c))
    }
}

/// How [`Model::train`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct EmOptions {
    /// The most iterations (default 50).
    pub max_iterations: u32,
    /// Training stops once no parameter moved by more than this in an iteration
    /// (default `1e-5`).
    pub tolerance: f64,
    /// Whether `u` is trained too (default `false`: `u` stays as estimated from random
    /// pairs, which is more reliable than what EM makes of candidates).
    pub train_u: bool,
    /// Whether a model without a related class gets one (default `false`), see the
    /// [module documentation](self#related-non-matches). It starts with the prior's
    /// starting value as its prior, at most half of what the prior leaves, and `r`
    /// halfway between `m` and `u`. A model that has a related class keeps it and
    /// trains it whatever this says (its prior starts again as a new class's when it
    /// is below [`PARAMETER_FLOOR`], as after [`Model::scale_priors`], or leaves no
    /// room beside the prior); set [`Model::related`] to `None` to train without.
    pub related: bool,
}

impl Default for EmOptions {
    fn default() -> Self {
        EmOptions {
            max_iterations: 50,
            tolerance: 1e-5,
            train_u: false,
            related: false,
        }
    }
}

/// How a training went.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TrainingReport {
    /// The iterations run.
    pub iterations: u32,
    /// Whether the parameters stopped moving before the iteration limit.
    pub converged: bool,
    /// The natural log-likelihood of the candidate pairs under the final parameters.
    pub log_likelihood: f64,
    /// The candidate pairs trained on.
    pub pairs: u64,
    /// Their distinct comparison vectors.
    pub patterns: usize,
    /// Whether most columns end with `m` below `u` at the exact level: the model has
    /// likely taken non-matches for matches and must not be used as it is.
    pub swapped: bool,
    /// The columns whose `m` is below `u` at the exact level.
    pub inverted_columns: Vec<String>,
    /// Whether, with a related class, EM ended with the related class agreeing
    /// exactly more often than the match class on most columns, and the two were
    /// exchanged so that "match" is the class that agrees most.
    #[serde(default)]
    pub related_exchanged: bool,
    /// How long training took, in seconds; 0 unless the caller measured and set it.
    #[serde(default)]
    pub seconds: f64,
}

// ---------------------------------------------------------------------------------------
// Scoring

/// One line of [`Model::explain`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    /// The column, `None` for the prior and the related row.
    pub column: Option<String>,
    /// The comparison level, `None` for the prior and the related row.
    pub level: Option<u8>,
    /// The level's label, `prior` for the prior, `related` for the related row and
    /// `null` for a missing value.
    pub level_label: &'static str,
    /// `m` of the level (the prior for the prior row).
    pub m: f64,
    /// `u` of the level, the floored share of the value when term-frequency adjusted
    /// (one minus the prior for the prior row).
    pub u: f64,
    /// The share of records holding the value, when the weight is adjusted by it.
    pub term_frequency: Option<f64>,
    /// `log2(m / u)`.
    pub weight: f64,
}

/// The weights of a [`Model`] in flat tables: [`Scorer::weight`] is one table look-up
/// per column (and one logarithm per term-frequency adjusted exact agreement), and
/// gives the same value as [`Model::weight`].
#[derive(Debug, Clone, PartialEq)]
pub struct Scorer {
    prior_weight: f64,
    /// Where each column's weights start in `table`, then the table's length.
    starts: Vec<usize>,
    table: Vec<f64>,
    /// `m` at the exact level of the columns with term-frequency adjustment.
    tf_m0: Vec<Option<f64>>,
    threshold_weight: f64,
    /// The related class's weights, if the model has one; `prior_weight` is then
    /// `log2(prior / lambda_u)`.
    related: Option<RelatedScorer>,
}

/// The weights of related against unrelated pairs, laid out as those of a [`Scorer`].
#[derive(Debug, Clone, PartialEq)]
struct RelatedScorer {
    /// `log2(lambda_r / lambda_u)`.
    prior_weight: f64,
    /// `log2(r / u)` per level, at the [`Scorer`]'s `starts`.
    table: Vec<f64>,
    /// `r` at the exact level of the columns with term-frequency adjustment.
    tf_r0: Vec<Option<f64>>,
}

impl Scorer {
    /// The weight of a comparison vector, as [`Model::weight`] documents.
    pub fn weight(&self, levels: &[u8], tf: &[Option<f64>]) -> f64 {
        let Some(related) = &self.related else {
            let mut weight = self.prior_weight;
            for (i, (bounds, &level)) in self.starts.windows(2).zip(levels).enumerate() {
                let at = bounds[0] + usize::from(level);
                if at >= bounds[1] {
                    continue;
                }
                if level == 0 {
                    if let (Some(Some(m0)), Some(Some(f))) = (self.tf_m0.get(i), tf.get(i)) {
                        weight += tf_weight(*m0, *f);
                        continue;
                    }
                }
                weight += self.table[at];
            }
            return weight;
        };
        let mut weight = self.prior_weight;
        let mut odds = related.prior_weight;
        for (i, (bounds, &level)) in self.starts.windows(2).zip(levels).enumerate() {
            let at = bounds[0] + usize::from(level);
            if at >= bounds[1] {
                continue;
            }
            if level == 0 {
                if let (Some(Some(m0)), Some(Some(r0)), Some(Some(f))) =
                    (self.tf_m0.get(i), related.tf_r0.get(i), tf.get(i))
                {
                    weight += tf_weight(*m0, *f);
                    odds += tf_weight(*r0, *f);
                    continue;
                }
            }
            weight += self.table[at];
            odds += related.table[at];
        }
        weight - softplus2(odds)
    }

    /// Whether the comparison vector's weight reaches the threshold weight.
    pub fn is_match(&self, levels: &[u8], tf: &[Option<f64>]) -> bool {
        self.weight(levels, tf) >= self.threshold_weight
    }

    /// [`Model::threshold_weight`].
    pub fn threshold_weight(&self) -> f64 {
        self.threshold_weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use ComparisonKind::*;

    /// splitmix64, so that every run sees the same pairs.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// A level drawn from `distribution`.
        fn level(&mut self, distribution: &[f64]) -> u8 {
            let mut x = self.unit();
            for (l, p) in distribution.iter().enumerate() {
                if x < *p {
                    return l as u8;
                }
                x -= p;
            }
            (distribution.len() - 1) as u8
        }
    }

    #[test]
    fn kinds_by_semantic_type() {
        let of = |name: &str| kind_for(&name.parse::<SemanticType>().unwrap());
        for name in [
            "Person.FirstName",
            "Person.LastName",
            "Person.FullName",
            "Location.City",
            "Location.State",
            "Location.Country",
            "Location.Address",
            "Organization.Name",
        ] {
            assert_eq!(of(name), Name, "{name}");
        }
        assert_eq!(of("Identity.Email"), Email);
        assert_eq!(of("Identity.Phone"), Phone);
        assert_eq!(of("Person.BirthDate"), Date);
        assert_eq!(of("Calendar.Date"), Date);
        assert_eq!(of("Location.PostalCode"), PostalCode);
        assert_eq!(of("Person.Gender"), Exact);
        assert_eq!(of("Loyalty.Id"), Text);
        for kind in ComparisonKind::ALL {
            assert!(kind.levels() >= 2 && kind.levels() <= MAX_LEVELS);
        }
    }

    #[test]
    fn name_levels_by_typo_band() {
        assert_eq!(Name.level("martha", "martha"), 0);
        // Jaro-Winkler 0.961: one swapped pair.
        assert_eq!(Name.level("martha", "marhta"), 1);
        // 0.84.
        assert_eq!(Name.level("dwayne", "duane"), 2);
        assert_eq!(Name.level("smith", "jones"), 3);
        assert_eq!(Name.level("jonathan smith", "jonathan smyth"), 1);
    }

    #[test]
    fn text_levels_by_edit_distance() {
        assert_eq!(Text.level("ab-1234", "ab-1234"), 0);
        assert_eq!(Text.level("ab-1234", "ab-1235"), 1);
        assert_eq!(Text.level("ab-1234", "ab1234"), 1);
        assert_eq!(Text.level("ab-1234", "ab-12345"), 1);
        assert_eq!(Text.level("ab-1234", "ba-1234"), 2);
        assert_eq!(Text.level("ab-1234", "ab-12xyz"), 3);
        assert_eq!(Text.level("ab-1234", "zz-9999"), 3);
        assert_eq!(Text.level("zoë", "zoe"), 1);
        assert_eq!(Text.level("x", "yz"), 2);
    }

    #[test]
    fn email_levels() {
        assert_eq!(Email.level("ann.lee@mail.com", "ann.lee@mail.com"), 0);
        assert_eq!(Email.level("ann.lee@mail.com", "ann.lee@work.org"), 1);
        // One edit in 16 characters: similarity 0.9375.
        assert_eq!(Email.level("ann.lee@mail.com", "ann.le@mail.com"), 2);
        // Three edits in 16: 0.8125.
        assert_eq!(Email.level("ann.lee@mail.com", "anna.l@mail.com"), 3);
        assert_eq!(Email.level("ann.lee@mail.com", "bob@other.net"), 3);
        // No local part to share.
        assert_eq!(Email.level("@mail.com", "@work.org"), 3);
    }

    #[test]
    fn phone_levels() {
        assert_eq!(Phone.level("+33612345678", "+33612345678"), 0);
        assert_eq!(Phone.level("+33612345678", "0612345678"), 1);
        assert_eq!(Phone.level("+33612345678", "+33612345679"), 2);
        assert_eq!(Phone.level("+33612345678", "+44798765432"), 3);
        // Fewer than 7 digits never share the last 7.
        assert_eq!(Phone.level("123456", "0123456"), 2);
        assert_eq!(Phone.level("12345", "99999"), 3);
    }

    #[test]
    fn date_levels() {
        assert_eq!(Date.level("1985-03-12", "1985-03-12"), 0);
        assert_eq!(Date.level("1985-03-12", "12.03.1985"), 0);
        assert_eq!(Date.level("19850312", "12 March 1985"), 0);
        assert_eq!(Date.level("1985-03-12", "1985-03-13"), 1);
        assert_eq!(Date.level("1985-03-12", "1986-03-12"), 1);
        assert_eq!(Date.level("1985-03-12", "1985-12-03"), 2);
        assert_eq!(Date.level("1985-01-11", "1985-11-01"), 2);
        assert_eq!(Date.level("1985-03-12", "1985-03-28"), 3);
        assert_eq!(Date.level("1985-03-12", "1990-07-30"), 4);
        assert_eq!(Date.level("1985-03-12", "1985-05-12"), 1);
        assert_eq!(Date.level("1985-03-12", "1985-06-28"), 4);
        // Not a date: missing, unless the texts agree.
        assert_eq!(Date.level("1985-03-12", "someday"), NULL_LEVEL);
        assert_eq!(Date.level("someday", "someday"), 0);
    }

    #[test]
    fn postal_code_and_exact_levels() {
        assert_eq!(PostalCode.level("75011", "75011"), 0);
        assert_eq!(PostalCode.level("75011", "75012"), 1);
        assert_eq!(PostalCode.level("sw1a 1aa", "sw1p 3bt"), 1);
        assert_eq!(PostalCode.level("75011", "69001"), 2);
        assert_eq!(PostalCode.level("75", "75"), 0);
        assert_eq!(PostalCode.level("75", "751"), 2);
        assert_eq!(Exact.level("f", "f"), 0);
        assert_eq!(Exact.level("f", "m"), 1);
    }

    #[test]
    fn missing_values_are_null() {
        for kind in ComparisonKind::ALL {
            assert_eq!(kind.level("", "x"), NULL_LEVEL, "{kind:?}");
            assert_eq!(kind.level("x", " "), NULL_LEVEL, "{kind:?}");
            assert_eq!(kind.level("", ""), NULL_LEVEL, "{kind:?}");
            assert_eq!(kind.level_of(None, Some("x")), NULL_LEVEL, "{kind:?}");
            assert_eq!(kind.level_of(Some("x"), Some("x")), 0, "{kind:?}");
        }
    }

    #[test]
    fn banded_distance_agrees_with_levenshtein() {
        let words = [
            "",
            "a",
            "ab",
            "ba",
            "abc",
            "acb",
            "kitten",
            "sitting",
            "saturday",
            "sunday",
            "robert",
            "rupert",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "xxxxxxxyx",
        ];
        for a in words {
            for b in words {
                let truth = strsim::levenshtein(a, b);
                for max in [0, 1, 2, 3, 20] {
                    let expected = (truth <= max).then_some(truth);
                    assert_eq!(edit_distance_within(a, b, max), expected, "{a} {b} {max}");
                }
            }
        }
    }

    fn patterns_of(vectors: &[Vec<u8>]) -> Patterns {
        let mut p = Patterns::new();
        for v in vectors {
            p.add(v);
        }
        p
    }

    #[test]
    fn patterns_count_and_merge() {
        let mut a = patterns_of(&[vec![0, 1], vec![0, 1], vec![1, NULL_LEVEL]]);
        let b = patterns_of(&[vec![0, 1], vec![2, 2]]);
        assert_eq!((a.len(), a.total()), (2, 3));
        a.merge(b);
        assert_eq!((a.len(), a.total()), (3, 5));
        assert_eq!(a.count(&[0, 1]), 3);
        assert_eq!(a.count(&[1, NULL_LEVEL]), 1);
        assert_eq!(a.count(&[2, 2]), 1);
        assert_eq!(a.count(&[3, 3]), 0);
        let mut c = Patterns::new();
        c.merge(a.clone());
        assert_eq!(c, a);
    }

    /// A known model to generate vectors from: (kind, m, u, share of missing values).
    fn truth() -> Vec<(ComparisonKind, Vec<f64>, Vec<f64>, f64)> {
        vec![
            (
                Name,
                vec![0.85, 0.08, 0.04, 0.03],
                vec![0.01, 0.02, 0.07, 0.90],
                0.0,
            ),
            (
                Email,
                vec![0.70, 0.15, 0.05, 0.10],
                vec![0.001, 0.004, 0.015, 0.98],
                0.2,
            ),
            (
                Date,
                vec![0.88, 0.05, 0.02, 0.02, 0.03],
                vec![0.003, 0.01, 0.002, 0.03, 0.955],
                0.1,
            ),
            (
                PostalCode,
                vec![0.9, 0.06, 0.04],
                vec![0.05, 0.15, 0.80],
                0.05,
            ),
        ]
    }

    const TRUE_PRIOR: f64 = 0.05;

    fn generate(rng: &mut SplitMix, pairs: usize, prior: f64) -> Patterns {
        let truth = truth();
        let mut patterns = Patterns::new();
        let mut vector = vec![0u8; truth.len()];
        for _ in 0..pairs {
            let is_match = rng.unit() < prior;
            for (slot, (_, m, u, missing)) in vector.iter_mut().zip(&truth) {
                *slot = if rng.unit() < *missing {
                    NULL_LEVEL
                } else if is_match {
                    rng.level(m)
                } else {
                    rng.level(u)
                };
            }
            patterns.add(&vector);
        }
        patterns
    }

    fn untrained() -> Model {
        Model::new(
            truth()
                .into_iter()
                .enumerate()
                .map(|(i, (kind, ..))| (format!("c{i}"), kind, false))
                .collect(),
        )
    }

    #[test]
    fn em_recovers_a_known_model() {
        let mut rng = SplitMix(7);
        let random = generate(&mut rng, 200_000, 0.0);
        let candidates = generate(&mut rng, 200_000, TRUE_PRIOR);
        let mut model = untrained();
        assert_eq!(model.estimate_u(&random).unwrap(), 200_000);
        let report = model.train(&candidates, &EmOptions::default()).unwrap();
        assert!(report.converged, "{report:?}");
        assert!(!report.swapped, "{report:?}");
        assert!(report.inverted_columns.is_empty(), "{report:?}");
        assert_eq!(report.pairs, 200_000);
        assert!(report.log_likelihood.is_finite() && report.log_likelihood < 0.0);
        assert_eq!(model.training.as_ref(), Some(&report));
        assert!(
            (model.prior - TRUE_PRIOR).abs() < 0.01,
            "prior {} for {TRUE_PRIOR}",
            model.prior
        );
        for (column, (_, m, u, _)) in model.columns.iter().zip(truth()) {
            for l in 0..m.len() {
                assert!(
                    (column.m[l] - m[l]).abs() < 0.02,
                    "{} m[{l}] = {} for {}",
                    column.name,
                    column.m[l],
                    m[l]
                );
                assert!(
                    (column.u[l] - u[l]).abs() < 0.005,
                    "{} u[{l}] = {} for {}",
                    column.name,
                    column.u[l],
                    u[l]
                );
            }
            assert!((column.m.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        // Scored with the trained model, true matches mostly pass and non-matches
        // mostly do not.
        let scorer = model.scorer();
        let mut rng = SplitMix(99);
        let (matches, non_matches) = (
            generate(&mut rng, 5_000, 1.0),
            generate(&mut rng, 5_000, 0.0),
        );
        let share = |p: &Patterns| {
            p.iter()
                .filter(|(l, _)| scorer.is_match(l, &[]))
                .map(|(_, c)| c)
                .sum::<u64>() as f64
                / p.total() as f64
        };
        assert!(share(&matches) > 0.9, "{}", share(&matches));
        assert!(share(&non_matches) < 0.01, "{}", share(&non_matches));
    }

    #[test]
    fn em_started_mirrored_says_so() {
        let mut rng = SplitMix(11);
        let candidates = generate(&mut rng, 50_000, TRUE_PRIOR);
        let mut model = untrained();
        for column in &mut model.columns {
            let (m, u) = (column.u.clone(), column.m.clone());
            column.m = m;
            column.u = u;
        }
        model.seed_prior(0.99, false).unwrap();
        let options = EmOptions {
            train_u: true,
            ..EmOptions::default()
        };
        let report = model.train(&candidates, &options).unwrap();
        assert!(report.swapped, "{report:?}");
        assert_eq!(report.inverted_columns.len(), 4);
        // The same data from the ordinary start is not mirrored.
        let mut model = untrained();
        let report = model.train(&candidates, &options).unwrap();
        assert!(!report.swapped, "{report:?}");
    }

    #[test]
    fn fixed_parameters_stay() {
        let mut rng = SplitMix(3);
        let random = generate(&mut rng, 20_000, 0.0);
        let candidates = generate(&mut rng, 50_000, TRUE_PRIOR);
        let mut model = untrained();
        let fixed_m = [0.5, 0.2, 0.2, 0.1];
        let fixed_u = [0.25, 0.25, 0.25, 0.25];
        model.columns[0].seed_m(&fixed_m, true).unwrap();
        model.columns[1].seed_u(&fixed_u, true).unwrap();
        model.seed_prior(0.2, true).unwrap();
        let before = model.clone();
        model.estimate_u(&random).unwrap();
        let options = EmOptions {
            train_u: true,
            ..EmOptions::default()
        };
        model.train(&candidates, &options).unwrap();
        assert_eq!(model.columns[0].m, before.columns[0].m);
        assert_eq!(model.columns[1].u, before.columns[1].u);
        assert_eq!(model.prior, 0.2);
        // What is not fixed moved.
        assert_ne!(model.columns[0].u, before.columns[0].u);
        assert_ne!(model.columns[1].m, before.columns[1].m);
        assert_ne!(model.columns[2].m, before.columns[2].m);
    }

    #[test]
    fn seeds_are_checked() {
        let mut column = ColumnModel::new("email", Email, false);
        assert!(column.seed_m(&[0.9, 0.1], false).is_err());
        assert!(column.seed_m(&[0.9, 0.1, 0.0, 0.0], false).is_err());
        assert!(column.seed_m(&[0.9, 0.1, 0.1, 0.1], false).is_err());
        assert!(column.seed_m(&[0.9, 0.05, f64::NAN, 0.05], false).is_err());
        column
            .seed_m(&[0.9, 0.05, 0.03, 0.0200000001], true)
            .unwrap();
        assert!((column.m.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(column.fixed_m);
        column
            .seed_u(&[1e-9, 1e-9, 0.1, 0.9 - 2e-9], false)
            .unwrap();
        assert!(column.u.iter().all(|&u| u >= PARAMETER_FLOOR));
        assert!((column.u.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let mut model = Model::new(vec![]);
        assert!(model.seed_prior(0.0, false).is_err());
        assert!(model.seed_prior(1.0, false).is_err());
        assert!(model.set_threshold(1.0).is_err());
        assert!(model.set_threshold(0.95).is_ok());
    }

    #[test]
    fn new_models_start_sensibly() {
        let model = Model::new(vec![
            ("name".into(), Name, false),
            ("date".into(), Date, false),
            ("gender".into(), Exact, false),
        ]);
        assert_eq!(model.prior, DEFAULT_PRIOR);
        assert_eq!(model.threshold, DEFAULT_THRESHOLD);
        model.validate().unwrap();
        for column in &model.columns {
            assert_eq!(column.m[0], 0.9);
            assert!(column.m.windows(2).all(|w| w[0] > w[1]), "{column:?}");
            assert!(column.u.windows(2).all(|w| w[0] < w[1]), "{column:?}");
        }
        assert_eq!(model.columns[2].m, [0.9, 0.1]);
        assert_eq!(model.columns[2].u, [0.1, 0.9]);
    }

    #[test]
    fn patterns_that_do_not_fit_are_refused() {
        let mut model = untrained();
        let short = patterns_of(&[vec![0, 0, 0]]);
        assert!(matches!(
            model.train(&short, &EmOptions::default()),
            Err(ModelError::Pattern { .. })
        ));
        // The postal code has 3 levels.
        let out_of_range = patterns_of(&[vec![0, 0, 0, 3]]);
        let err = model.estimate_u(&out_of_range).unwrap_err();
        assert!(err.to_string().contains("`c3`"), "{err}");
        assert_eq!(model, untrained());
    }

    fn tf_model() -> Model {
        let mut model = Model::new(vec![("last_name".into(), Name, true)]);
        model.columns[0]
            .seed_m(&[0.9, 0.05, 0.03, 0.02], false)
            .unwrap();
        model.columns[0]
            .seed_u(&[0.01, 0.02, 0.07, 0.9], false)
            .unwrap();
        model
    }

    #[test]
    fn rare_values_weigh_more_than_common_ones() {
        let model = tf_model();
        let scorer = model.scorer();
        let rare = model.weight(&[0], &[Some(0.0001)]);
        let common = model.weight(&[0], &[Some(0.2)]);
        let plain = model.weight(&[0], &[]);
        let typo = model.weight(&[1], &[Some(0.0001)]);
        assert!(rare > plain && plain > common, "{rare} {plain} {common}");
        assert!(common > typo, "{common} {typo}");
        assert!((rare - (model.prior_weight() + (0.9f64 / 0.0001).log2())).abs() < 1e-9);
        // The floor: a value rarer than TF_FLOOR weighs as one at the floor.
        assert_eq!(
            model.weight(&[0], &[Some(1e-12)]),
            model.weight(&[0], &[Some(TF_FLOOR)])
        );
        assert_eq!(
            model.weight(&[0], &[Some(0.0)]),
            model.weight(&[0], &[Some(TF_FLOOR)])
        );
        // Only exact agreement is adjusted, and only on columns asking for it.
        assert_eq!(typo, model.weight(&[1], &[]));
        let mut plain_model = model.clone();
        plain_model.columns[0].term_frequency = false;
        assert_eq!(plain_model.weight(&[0], &[Some(0.0001)]), plain);
        for (levels, tf) in [
            (vec![0], vec![Some(0.0001)]),
            (vec![0], vec![Some(0.2)]),
            (vec![0], vec![]),
            (vec![1], vec![Some(0.2)]),
            (vec![NULL_LEVEL], vec![None]),
        ] {
            assert_eq!(scorer.weight(&levels, &tf), model.weight(&levels, &tf));
        }
    }

    #[test]
    fn thresholds_are_monotonic() {
        let mut rng = SplitMix(5);
        let mut model = untrained();
        let random = generate(&mut rng, 20_000, 0.0);
        let candidates = generate(&mut rng, 20_000, TRUE_PRIOR);
        model.estimate_u(&random).unwrap();
        model.train(&candidates, &EmOptions::default()).unwrap();
        let weights: Vec<(f64, u64)> = candidates
            .iter()
            .map(|(l, c)| (model.weight(l, &[]), c))
            .collect();
        let mut previous = u64::MAX;
        let mut counts = Vec::new();
        for step in 1..100 {
            model.set_threshold(f64::from(step) / 100.0).unwrap();
            let t = model.threshold_weight();
            let matched: u64 = weights.iter().filter(|(w, _)| *w >= t).map(|p| p.1).sum();
            assert!(
                matched <= previous,
                "threshold {step}%: {matched} > {previous}"
            );
            previous = matched;
            counts.push(matched);
        }
        // The thresholds do separate something.
        assert!(counts[0] > counts[98], "{counts:?}");
        for w in [-30.0, -5.5, -0.25, 0.0, 1.0, 3.17, 12.0, 30.0] {
            model.set_threshold(probability(w)).unwrap();
            assert!((model.threshold_weight() - w).abs() < 1e-6, "{w}");
        }
        assert_eq!(probability(0.0), 0.5);
        assert!((probability(weight_for(DEFAULT_THRESHOLD)) - DEFAULT_THRESHOLD).abs() < 1e-12);
    }

    #[test]
    fn explain_adds_up_to_the_weight() {
        let mut model = untrained();
        model.columns[0].term_frequency = true;
        let scorer = model.scorer();
        for (levels, tf) in [
            (vec![0, 1, 2, 0], vec![Some(0.01)]),
            (vec![3, NULL_LEVEL, 4, 2], vec![]),
            (vec![NULL_LEVEL; 4], vec![]),
            (vec![0, 0, 0, 0], vec![None, Some(0.5)]),
        ] {
            let rows = model.explain(&levels, &tf);
            assert_eq!(rows.len(), 5);
            assert_eq!(rows[0].column, None);
            assert_eq!(rows[0].weight, model.prior_weight());
            let sum: f64 = rows.iter().map(|r| r.weight).sum();
            let weight = model.weight(&levels, &tf);
            assert!((sum - weight).abs() < 1e-9, "{sum} {weight}");
            assert!((scorer.weight(&levels, &tf) - weight).abs() < 1e-12);
            for row in &rows[1..] {
                assert!(
                    (row.weight - (row.m / row.u).log2()).abs() < 1e-9,
                    "{row:?}"
                );
            }
        }
        let rows = model.explain(&[0, NULL_LEVEL, 1, 2], &[Some(0.01)]);
        assert_eq!(rows[1].column.as_deref(), Some("c0"));
        assert_eq!(rows[1].level_label, "exact");
        assert_eq!(rows[1].term_frequency, Some(0.01));
        assert_eq!(rows[1].u, 0.01);
        assert_eq!(rows[2].level_label, "null");
        assert_eq!(rows[2].weight, 0.0);
        assert_eq!(rows[3].level_label, "1 digit off");
    }

    #[test]
    fn json_round_trips() {
        let mut rng = SplitMix(1);
        let mut model = untrained();
        model.columns[1].term_frequency = true;
        model.columns[2]
            .seed_m(&[0.6, 0.1, 0.1, 0.1, 0.1], true)
            .unwrap();
        model.estimate_u(&generate(&mut rng, 5_000, 0.0)).unwrap();
        model
            .train(
                &generate(&mut rng, 5_000, TRUE_PRIOR),
                &EmOptions::default(),
            )
            .unwrap();
        let text = model.to_json();
        assert!(
            text.trim_start().starts_with("{\n  \"version\": 1"),
            "{text}"
        );
        assert!(text.contains("\"kind\": \"postal_code\""), "{text}");
        // Numbers read back within a unit in the last place (JSON is decimal),
        // everything else exactly.
        let mut back = Model::from_json(&text).unwrap();
        let near = |x: &mut f64, y: f64| {
            assert!((*x - y).abs() <= 2e-16 * y.abs(), "{x} read back for {y}");
            *x = y;
        };
        near(&mut back.prior, model.prior);
        near(&mut back.threshold, model.threshold);
        for (b, a) in back.columns.iter_mut().zip(&model.columns) {
            for (x, y) in b.m.iter_mut().zip(&a.m).chain(b.u.iter_mut().zip(&a.u)) {
                near(x, *y);
            }
        }
        if let (Some(b), Some(a)) = (back.training.as_mut(), model.training.as_ref()) {
            near(&mut b.log_likelihood, a.log_likelihood);
        }
        assert_eq!(back, model);
    }

    #[test]
    fn json_that_does_not_fit_is_refused_by_name() {
        let model = untrained();
        let mut value: serde_json::Value = serde_json::from_str(&model.to_json()).unwrap();
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = value.clone();
            f(&mut v);
            Model::from_json(&v.to_string()).unwrap_err().to_string()
        };
        let err = edit(&|v| v["columns"][1]["m"] = serde_json::json!([0.5, 0.5]));
        assert!(
            err.contains("`c1`") && err.contains("m has 2 values"),
            "{err}"
        );
        let err = edit(&|v| v["columns"][2]["m"][0] = serde_json::json!(1.5));
        assert!(
            err.contains("`c2`") && err.contains("m at level 0"),
            "{err}"
        );
        let err = edit(&|v| v["columns"][0]["u"][3] = serde_json::json!(0.0));
        assert!(
            err.contains("`c0`") && err.contains("u at level 3"),
            "{err}"
        );
        let err = edit(&|v| v["columns"][3]["u"][0] = serde_json::json!(-0.1));
        assert!(
            err.contains("`c3`") && err.contains("u at level 0"),
            "{err}"
        );
        let err = edit(&|v| v["columns"][0]["m"] = serde_json::json!([0.5, 0.5, 0.5, 0.5]));
        assert!(err.contains("`c0`") && err.contains("sums to 2"), "{err}");
        let err = edit(&|v| v["columns"][0]["kind"] = serde_json::json!("soundex"));
        assert!(err.contains("soundex"), "{err}");
        let err = edit(&|v| v["columns"][1]["name"] = serde_json::json!("c0"));
        assert!(err.contains("`c0`") && err.contains("twice"), "{err}");
        let err = edit(&|v| v["prior"] = serde_json::json!(1.0));
        assert!(err.contains("prior"), "{err}");
        let err = edit(&|v| v["version"] = serde_json::json!(2));
        assert!(err.contains("version 2"), "{err}");
        value["threshold"] = serde_json::json!(0.97);
        assert_eq!(
            Model::from_json(&value.to_string()).unwrap().threshold,
            0.97
        );
        assert!(Model::from_json("not json").is_err());
    }

    type PeopleColumn = (ComparisonKind, [f64; 5], [f64; 5], [f64; 5], f64);

    /// People data with households: (kind, m, r, u, share of missing values) for
    /// given name, family name, birth date, address and phone. Matches agree on nearly
    /// everything; household members share family name, address and mostly the phone,
    /// but not the given name or the birth date; unrelated pairs seldom agree.
    fn people() -> Vec<PeopleColumn> {
        vec![
            (
                Name,
                [0.93, 0.04, 0.02, 0.01, 0.0],
                [0.02, 0.03, 0.10, 0.85, 0.0],
                [0.01, 0.02, 0.07, 0.90, 0.0],
                0.0,
            ),
            (
                Name,
                [0.90, 0.05, 0.03, 0.02, 0.0],
                [0.92, 0.04, 0.02, 0.02, 0.0],
                [0.02, 0.03, 0.05, 0.90, 0.0],
                0.0,
            ),
            (
                Date,
                [0.92, 0.04, 0.02, 0.01, 0.01],
                [0.01, 0.03, 0.01, 0.05, 0.90],
                [0.003, 0.01, 0.002, 0.03, 0.955],
                0.1,
            ),
            (
                Name,
                [0.85, 0.07, 0.03, 0.05, 0.0],
                [0.90, 0.05, 0.02, 0.03, 0.0],
                [0.01, 0.02, 0.07, 0.90, 0.0],
                0.05,
            ),
            (
                Phone,
                [0.80, 0.05, 0.05, 0.10, 0.0],
                [0.70, 0.05, 0.05, 0.20, 0.0],
                [0.001, 0.004, 0.005, 0.99, 0.0],
                0.3,
            ),
        ]
    }

    /// `pairs` people vectors, each a match with probability `matches`, else related
    /// with probability `related`, else unrelated.
    fn people_pairs(rng: &mut SplitMix, pairs: usize, matches: f64, related: f64) -> Patterns {
        let people = people();
        let mut patterns = Patterns::new();
        let mut vector = vec![0u8; people.len()];
        for _ in 0..pairs {
            let x = rng.unit();
            let class = if x < matches {
                0
            } else if x < matches + related {
                1
            } else {
                2
            };
            for (slot, (kind, m, r, u, missing)) in vector.iter_mut().zip(&people) {
                let levels = kind.levels();
                let distribution = [&m[..levels], &r[..levels], &u[..levels]][class];
                *slot = if rng.unit() < *missing {
                    NULL_LEVEL
                } else {
                    rng.level(distribution)
                };
            }
            patterns.add(&vector);
        }
        patterns
    }

    fn people_model() -> Model {
        let names = [
            "given_name",
            "family_name",
            "birth_date",
            "address",
            "phone",
        ];
        Model::new(
            people()
                .into_iter()
                .zip(names)
                .map(|((kind, ..), name)| (name.to_string(), kind, false))
                .collect(),
        )
    }

    /// The share of the pairs of `patterns` that `scorer` matches.
    fn matched_share(scorer: &Scorer, patterns: &Patterns) -> f64 {
        patterns
            .iter()
            .filter(|(l, _)| scorer.is_match(l, &[]))
            .map(|(_, c)| c)
            .sum::<u64>() as f64
            / patterns.total() as f64
    }

    #[test]
    fn a_related_class_tells_households_from_matches() {
        let mut rng = SplitMix(2024);
        let random = people_pairs(&mut rng, 200_000, 0.0, 0.0);
        let candidates = people_pairs(&mut rng, 100_000, 0.40, 0.35);
        let mut fresh = SplitMix(77);
        let households = people_pairs(&mut fresh, 20_000, 0.0, 1.0);
        let matches = people_pairs(&mut fresh, 20_000, 1.0, 0.0);

        let mut two = people_model();
        two.estimate_u(&random).unwrap();
        two.prior = 0.5;
        let report = two.train(&candidates, &EmOptions::default()).unwrap();
        assert!(!report.swapped && two.related.is_none(), "{report:?}");
        let two_households = matched_share(&two.scorer(), &households);

        for start in [0.5, DEFAULT_PRIOR] {
            let mut three = people_model();
            three.estimate_u(&random).unwrap();
            three.prior = start;
            let options = EmOptions {
                related: true,
                max_iterations: 500,
                ..EmOptions::default()
            };
            let report = three.train(&candidates, &options).unwrap();
            assert!(report.converged && !report.swapped, "{start}: {report:?}");
            let related = three.related.as_ref().unwrap();
            three.validate().unwrap();
            let mut m_error: f64 = 0.0;
            for (column, (kind, m, ..)) in three.columns.iter().zip(people()) {
                assert_eq!(column.m.len(), kind.levels());
                for (l, (got, want)) in column.m.iter().zip(m).enumerate() {
                    let error = (got - want).abs();
                    m_error = m_error.max(error);
                    assert!(
                        error < 0.03,
                        "{start}: {} m[{l}] = {got} for {want}",
                        column.name
                    );
                }
            }
            let three_households = matched_share(&three.scorer(), &households);
            let three_matches = matched_share(&three.scorer(), &matches);
            eprintln!(
                "start {start}: households matched {two_households:.4} (two classes) \
                 {three_households:.4} (three), matches {three_matches:.4}, m error \
                 {m_error:.4}, priors {:.4} {:.4}, iterations {}, exchanged {}",
                three.prior, related.prior, report.iterations, report.related_exchanged
            );
            assert!(
                (three.prior - 0.40).abs() < 0.02,
                "{start}: {}",
                three.prior
            );
            assert!(
                (related.prior - 0.35).abs() < 0.02,
                "{start}: {}",
                related.prior
            );
            assert!(three_households < 0.02, "{start}: {three_households}");
            assert!(three_matches > 0.95, "{start}: {three_matches}");
        }
        assert!(two_households > 0.5, "{two_households}");
    }

    #[test]
    fn related_classes_are_exchanged_to_agree_most() {
        let mut rng = SplitMix(31);
        let random = people_pairs(&mut rng, 100_000, 0.0, 0.0);
        let candidates = people_pairs(&mut rng, 50_000, 0.40, 0.35);
        let mut model = people_model();
        model.estimate_u(&random).unwrap();
        // Started with the related class agreeing more than the match class.
        model.prior = 0.3;
        let r: Vec<Vec<f64>> = model.columns.iter().map(|c| c.m.clone()).collect();
        for column in &mut model.columns {
            let flat = vec![1.0 / column.levels() as f64; column.levels()];
            column.m = flat;
        }
        model.related = Some(Related { prior: 0.3, r });
        let options = EmOptions {
            max_iterations: 500,
            ..EmOptions::default()
        };
        let report = model.train(&candidates, &options).unwrap();
        assert!(report.related_exchanged && !report.swapped, "{report:?}");
        let related = model.related.as_ref().unwrap();
        let above = model
            .columns
            .iter()
            .zip(&related.r)
            .filter(|(c, r)| r[0] > c.m[0])
            .count();
        assert!(above * 2 < model.columns.len(), "{model:?}");
        // Given name and birth date tell matches from households.
        assert!(model.columns[0].m[0] > 0.8, "{:?}", model.columns[0].m);
        assert!(related.r[0][0] < 0.1, "{:?}", related.r[0]);
        // Exchanged, it is the model that the ordinary start gives.
        let mut ordinary = people_model();
        ordinary.estimate_u(&random).unwrap();
        ordinary.prior = 0.3;
        ordinary
            .train(
                &candidates,
                &EmOptions {
                    related: true,
                    ..options
                },
            )
            .unwrap();
        assert!((ordinary.prior - model.prior).abs() < 0.01);
        assert!((ordinary.columns[0].m[0] - model.columns[0].m[0]).abs() < 0.01);
    }

    #[test]
    fn related_training_keeps_fixed_parameters() {
        let mut rng = SplitMix(8);
        let random = people_pairs(&mut rng, 50_000, 0.0, 0.0);
        let candidates = people_pairs(&mut rng, 50_000, 0.40, 0.35);
        let mut model = people_model();
        model.estimate_u(&random).unwrap();
        model.seed_prior(0.3, true).unwrap();
        model.columns[1]
            .seed_m(&[0.7, 0.1, 0.1, 0.1], true)
            .unwrap();
        let before = model.clone();
        let options = EmOptions {
            related: true,
            ..EmOptions::default()
        };
        let report = model.train(&candidates, &options).unwrap();
        assert!(!report.related_exchanged, "{report:?}");
        assert_eq!(model.prior, 0.3);
        assert_eq!(model.columns[1].m, before.columns[1].m);
        for (column, was) in model.columns.iter().zip(&before.columns) {
            assert_eq!(column.u, was.u, "{}", column.name);
        }
        // The related class started at the prior and moved towards its share.
        let related = model.related.as_ref().unwrap();
        assert!((related.prior - 0.35).abs() < 0.05, "{}", related.prior);
        assert!(related.r[0][0] < 0.1, "{:?}", related.r[0]);
        assert_ne!(model.columns[0].m, before.columns[0].m);
        model.validate().unwrap();
        // Scaled to all pairs and retrained from a prior of one half, it comes back.
        let trained = model.clone();
        model.scale_priors(1e-9);
        model.fixed_prior = false;
        model.prior = 0.5;
        model.train(&candidates, &EmOptions::default()).unwrap();
        let related = model.related.as_ref().unwrap();
        assert!((related.prior - 0.35).abs() < 0.02, "{}", related.prior);
        assert!((model.prior - 0.40).abs() < 0.02, "{}", model.prior);
        assert!(model.related.as_ref().unwrap().r[0][0] < 0.1);
        assert_ne!(model, trained);
        // Priors that leave no room for unrelated pairs start again too: one
        // iteration already moves them towards the shares.
        model.prior = 0.5;
        model.related.as_mut().unwrap().prior = 0.7;
        let once = EmOptions {
            max_iterations: 1,
            ..EmOptions::default()
        };
        let report = model.train(&candidates, &once).unwrap();
        model.validate().unwrap();
        assert!(report.log_likelihood.is_finite(), "{report:?}");
        assert!((model.prior - 0.40).abs() < 0.05, "{}", model.prior);
    }

    /// The weight as the two-class formula gives it, written out.
    fn two_class_weight(model: &Model, levels: &[u8]) -> f64 {
        let mut weight = (model.prior / (1.0 - model.prior)).log2();
        for (column, &level) in model.columns.iter().zip(levels) {
            let l = usize::from(level);
            if l < column.levels() {
                weight += (column.m[l] / column.u[l]).log2();
            }
        }
        weight
    }

    #[test]
    fn without_a_related_class_weights_are_the_two_class_weights() {
        let mut model = untrained();
        model.prior = 0.0123;
        model.columns[0]
            .seed_m(&[0.85, 0.08, 0.04, 0.03], false)
            .unwrap();
        model.columns[3].seed_u(&[0.05, 0.15, 0.8], false).unwrap();
        let scorer = model.scorer();
        for levels in [
            vec![0, 0, 0, 0],
            vec![3, 3, 4, 2],
            vec![1, NULL_LEVEL, 2, 0],
            vec![NULL_LEVEL; 4],
        ] {
            let expected = two_class_weight(&model, &levels);
            assert_eq!(model.weight(&levels, &[]), expected, "{levels:?}");
            assert_eq!(scorer.weight(&levels, &[]), expected, "{levels:?}");
        }
        // By hand: prior 0.0123, c0 exact 0.85 against u = 0.1 / 7 (the last m of a
        // new four-level column, reversed).
        let by_hand = (0.0123f64 / 0.9877).log2() + (0.85f64 / (0.1 / 7.0)).log2();
        let levels = [0, NULL_LEVEL, NULL_LEVEL, NULL_LEVEL];
        assert_eq!(model.weight(&levels, &[]), by_hand);
        assert_eq!(scorer.weight(&levels, &[]), by_hand);
    }

    /// A model of the `untrained` columns with a related class.
    fn related_model() -> Model {
        let mut model = untrained();
        model.prior = 0.2;
        model.columns[1].term_frequency = true;
        let r = model
            .columns
            .iter()
            .map(|c| {
                let mean: Vec<f64> = c.m.iter().zip(&c.u).map(|(m, u)| (m + u) / 2.0).collect();
                seeded(&mean)
            })
            .collect();
        model.related = Some(Related { prior: 0.3, r });
        model
    }

    #[test]
    fn related_weights_are_log_odds_of_matching() {
        let model = related_model();
        model.validate().unwrap();
        let related = model.related.as_ref().unwrap();
        let scorer = model.scorer();
        let (lm, lr) = (model.prior, related.prior);
        let lu = 1.0 - lm - lr;
        let cases: [(Vec<u8>, Vec<Option<f64>>); 5] = [
            (vec![0, 0, 0, 0], vec![]),
            (vec![0, 0, 0, 0], vec![None, Some(0.001)]),
            (vec![3, 3, 4, 2], vec![]),
            (vec![1, NULL_LEVEL, 2, 0], vec![None, Some(0.5)]),
            (vec![NULL_LEVEL; 4], vec![]),
        ];
        for (levels, tf) in cases {
            let (mut mm, mut rr, mut uu) = (1.0, 1.0, 1.0);
            for (k, (column, &level)) in model.columns.iter().zip(&levels).enumerate() {
                let l = usize::from(level);
                if l >= column.levels() {
                    continue;
                }
                mm *= column.m[l];
                rr *= related.r[k][l];
                uu *= match tf.get(k).copied().flatten() {
                    Some(f) if l == 0 && column.term_frequency => f.max(TF_FLOOR),
                    _ => column.u[l],
                };
            }
            let expected = (lm * mm / (lr * rr + lu * uu)).log2();
            let weight = model.weight(&levels, &tf);
            assert!(
                (weight - expected).abs() < 1e-9,
                "{levels:?}: {weight} {expected}"
            );
            assert!((scorer.weight(&levels, &tf) - weight).abs() < 1e-12);
            // The rows of explain add up to it, the related row last.
            let rows = model.explain(&levels, &tf);
            assert_eq!(rows.len(), model.columns.len() + 2);
            assert_eq!(rows[0].weight, model.prior_weight());
            let last = rows.last().unwrap();
            assert_eq!(
                (last.column.as_deref(), last.level, last.level_label),
                (None, None, "related")
            );
            assert!((last.weight - (last.m / last.u).log2()).abs() < 1e-9);
            let sum: f64 = rows.iter().map(|r| r.weight).sum();
            assert!((sum - weight).abs() < 1e-9, "{sum} {weight}");
        }
        // A pair with nothing known weighs the prior; a household-like pair weighs
        // less than the two-class model would give it.
        assert!((model.weight(&[NULL_LEVEL; 4], &[]) - model.prior_weight()).abs() < 1e-12);
        let mut two = model.clone();
        two.related = None;
        assert!(model.weight(&[3, 0, 4, 0], &[]) < two.weight(&[3, 0, 4, 0], &[]));
        // Stable however many columns: forty exact agreements.
        let mut wide = Model::new((0..40).map(|i| (format!("c{i}"), Exact, false)).collect());
        wide.related = Some(Related {
            prior: 0.3,
            r: vec![vec![0.5, 0.5]; 40],
        });
        for levels in [vec![0u8; 40], vec![1u8; 40]] {
            let weight = wide.weight(&levels, &[]);
            assert!(weight.is_finite(), "{weight}");
            assert_eq!(wide.scorer().weight(&levels, &[]), weight);
        }
        // All agree: M / R = 1.8^40 against related, and R / U = 5^40 against
        // unrelated pairs, so the weight is log2(0.01 / 0.3) + 40 log2(1.8).
        let expected = (DEFAULT_PRIOR / 0.3).log2() + 40.0 * 1.8f64.log2();
        assert!((wide.weight(&[0; 40], &[]) - expected).abs() < 1e-6);
    }

    #[test]
    fn related_json_round_trips_and_is_checked() {
        let model = related_model();
        let text = model.to_json();
        assert!(text.contains("\"related\""), "{text}");
        assert_eq!(Model::from_json(&text).unwrap(), model);
        // Without a related class nothing is written for it, and a model written
        // before it existed reads.
        let plain = untrained();
        let text = plain.to_json();
        assert!(!text.contains("related"), "{text}");
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value.as_object_mut().unwrap().remove("related");
        assert_eq!(Model::from_json(&value.to_string()).unwrap(), plain);
        // An r that does not fit is refused by column.
        let value: serde_json::Value = serde_json::from_str(&model.to_json()).unwrap();
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = value.clone();
            f(&mut v);
            Model::from_json(&v.to_string()).unwrap_err().to_string()
        };
        let err = edit(&|v| v["related"]["r"][2] = serde_json::json!([0.5, 0.5]));
        assert!(
            err.contains("`c2`") && err.contains("r has 2 values"),
            "{err}"
        );
        let err = edit(&|v| v["related"]["r"][1][0] = serde_json::json!(0.0));
        assert!(
            err.contains("`c1`") && err.contains("r at level 0"),
            "{err}"
        );
        let err = edit(&|v| v["related"]["r"][3] = serde_json::json!([0.5, 0.5, 0.5]));
        assert!(err.contains("`c3`") && err.contains("sums to 1.5"), "{err}");
        let err = edit(&|v| {
            v["related"]["r"].as_array_mut().unwrap().pop();
        });
        assert!(err.contains("3 distributions r"), "{err}");
        let err = edit(&|v| v["related"]["prior"] = serde_json::json!(0.8));
        assert!(err.contains("related prior"), "{err}");
        let err = edit(&|v| v["related"]["prior"] = serde_json::json!(0.0));
        assert!(err.contains("related prior"), "{err}");
        // Training refuses it too.
        let mut short = model.clone();
        short.related.as_mut().unwrap().r[0].pop();
        let err = short
            .train(&patterns_of(&[vec![0, 0, 0, 0]]), &EmOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("`c0`"), "{err}");
    }

    #[test]
    fn priors_scale() {
        let mut model = related_model();
        let levels = [0, 3, 4, 2];
        model.scale_priors(0.5);
        assert!((model.prior - 0.1).abs() < 1e-15);
        assert!((model.related.as_ref().unwrap().prior - 0.15).abs() < 1e-15);
        model.validate().unwrap();
        // Down to shares among billions of pairs, or below any floor.
        for factor in [1e-9, 1e-300, 1e-300] {
            model.scale_priors(factor);
            model.validate().unwrap();
            assert!(model.prior > 0.0);
            assert!(model.weight(&levels, &[]).is_finite());
            assert!(model.scorer().weight(&levels, &[]).is_finite());
            assert!(model.weight(&[0, 0, 0, 0], &[]) > model.weight(&levels, &[]));
        }
        assert_eq!(model.prior, f64::MIN_POSITIVE);
        // Up, the two stay below 1 together.
        model.scale_priors(1e300);
        model.validate().unwrap();
        let related = model.related.as_ref().unwrap().prior;
        assert!(model.prior + related < 1.0, "{} {related}", model.prior);
        // Without a related class, only the prior.
        let mut plain = untrained();
        plain.scale_priors(0.25);
        assert_eq!(plain.prior, DEFAULT_PRIOR * 0.25);
        plain.scale_priors(f64::NAN);
        plain.scale_priors(0.0);
        assert_eq!(plain.prior, DEFAULT_PRIOR * 0.25);
        assert!(plain.weight(&[0, 0, 0, 0], &[]).is_finite());
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,12}",
            "[a-c@. ]{0,10}",
            "[0-9+ ]{0,14}",
            "(19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]",
            "[0-3][0-9][./][01][0-9][./](19|20)[0-9]{2}",
        ]
    }

    proptest! {
        #[test]
        fn levels_are_in_range_and_symmetric(a in text_strategy(), b in text_strategy()) {
            for kind in ComparisonKind::ALL {
                let level = kind.level(&a, &b);
                prop_assert_eq!(level, kind.level(&b, &a), "{:?} {:?} {:?}", kind, a, b);
                prop_assert!(level == NULL_LEVEL || usize::from(level) < kind.levels());
                if a == b && !is_blank(&a) {
                    prop_assert_eq!(level, 0);
                }
            }
        }
    }
}
