//! Unification as the project file declares it (`[unification]`): the tables that take
//! part, in order, with the semantic type of the columns that matter; deduplication and
//! match rules made of conditions (a column, normalisations, a precision); the winner
//! policy of deduplication; and how columns merge into the `Customer` profile.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The `[unification]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnificationSpec {
    /// The tables that take part, in order; the first is the primary table.
    pub tables: Vec<UnifyTableSpec>,
    /// How the columns of the tables merge into `Customer`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge: Vec<MergeColumnSpec>,
    /// Overrides: pairs that always or never match, values that never match.
    #[serde(default, skip_serializing_if = "OverridesSpec::is_empty")]
    pub overrides: OverridesSpec,
    /// A blocking value shared by more records than this is reported and treated as a
    /// value that never matches (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_block: Option<usize>,
    /// Keep what each run decided, so that a refresh matches only the records that
    /// changed and those they reach (`refresh --full-unify` still matches all).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incremental: bool,
}

/// Default of [`UnificationSpec::max_block`].
pub const DEFAULT_MAX_BLOCK: usize = 1000;

/// A `[[unification.tables]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnifyTableSpec {
    /// The source declaring the table.
    pub source: String,
    /// The table (its ingested entity); its primary key comes from its declaration.
    pub table: String,
    /// The columns that take part, with their semantic types; only these reach
    /// `Customer`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<SemanticColumn>,
    /// Deduplication rules, tried in order (records with the same primary key are one
    /// in any case).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dedupe: Vec<RuleSpec>,
    /// Which record of a duplicate group wins.
    #[serde(default)]
    pub dedupe_winner: WinnerPolicy,
    /// Advanced mode: columns whose value in the deduplicated record comes from the
    /// group member their own policy picks, not from the winner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dedupe_columns: Vec<DedupeColumnSpec>,
    /// Rules matching this table's records with those of earlier tables, tried in order
    /// (none for the first table).
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub match_rules: Vec<MatchRuleSpec>,
    /// Unmatched records become profiles of their own (default true).
    #[serde(default = "yes")]
    pub include_all: bool,
    /// A match model finding duplicates within this table, beside its dedupe rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_model: Option<ModelSpec>,
    /// Match models with earlier tables (one per earlier table), beside the match rules.
    #[serde(default, rename = "match_model", skip_serializing_if = "Vec::is_empty")]
    pub match_models: Vec<ModelSpec>,
}

/// A probabilistic match model (Fellegi–Sunter): every candidate pair is compared on
/// several columns, each comparison lands on a level (exact, close, far, ...), and the
/// evidence of all levels is weighed together, rare values counting more than common
/// ones. Pairs whose match probability reaches the threshold are matched.
///
/// ```toml
/// dedupe_model = { block = [["LastName", "BirthDate"], ["Email"]], compare = [
///   { column = "FirstName" }, { column = "LastName" }, { column = "BirthDate" },
///   { column = "Email" }, { column = "City" },
/// ] }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The earlier table, as `Source.Table` (match models only; a dedupe model compares
    /// the table with itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
    /// Blocking keys: each a list of columns of this table whose normalised values
    /// together form a key. Only records sharing at least one key are compared. On the
    /// other table, a column's counterpart is the `with` of its `compare` entry (or the
    /// same name).
    pub block: Vec<Vec<String>>,
    /// The columns weighed.
    pub compare: Vec<CompareSpec>,
    /// Counterparts on the other table of columns that are blocked on but not
    /// compared (match models), e.g. `{ Zip = "PostalCode" }`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub with_columns: std::collections::BTreeMap<String, String>,
    /// The match probability a pair must reach (default 0.95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Pairs matched below this probability are weak links (default 0.99): a weak link
    /// may attach one record to a profile that a strong link (a rule, an override or a
    /// pair at this probability or more) holds together, or pair two single records,
    /// but never merge two profiles nor grow a profile made of weak links only; the
    /// links it refuses are reported as held for review. This keeps chains of
    /// borderline pairs from building one giant profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strong: Option<f64>,
    /// The probability that two records drawn at random are the same customer (the
    /// prior odds every pair's weight starts from). Trained as the share of matches
    /// among candidate pairs times the candidates over all pairs, unless given with
    /// `fixed_prior`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<f64>,
    /// Keep `prior` as given instead of training it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fixed_prior: bool,
    /// Learn a class of related records that are not the same customer (members of one
    /// household share a family name, an address and a phone) beside matches and
    /// unrelated pairs, so that they are not matched. By default the class is kept when
    /// it explains the candidate pairs better than its extra parameters cost (Bayesian
    /// information criterion); `true` or `false` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<bool>,
    /// Random record pairs drawn to estimate how often non-matches agree (default
    /// 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_pairs: Option<usize>,
}

/// Default of [`ModelSpec::threshold`].
pub const DEFAULT_MODEL_THRESHOLD: f64 = 0.95;

/// Default of [`ModelSpec::strong`].
pub const DEFAULT_STRONG_LINK: f64 = 0.99;

/// Default of [`ModelSpec::random_pairs`].
pub const DEFAULT_RANDOM_PAIRS: usize = 1_000_000;

impl ModelSpec {
    /// The other table's column compared with (or blocked on against) `column`.
    pub fn counterpart<'a>(&'a self, column: &'a str) -> &'a str {
        self.compare
            .iter()
            .find(|c| c.column == column)
            .and_then(|c| c.with.as_deref())
            .or_else(|| self.with_columns.get(column).map(String::as_str))
            .unwrap_or(column)
    }
}

/// One column a match model weighs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareSpec {
    /// The column of this table.
    pub column: String,
    /// The column of the other table (match models; default: the same name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
    /// Normalisations applied before comparing (default: those of the semantic type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Vec<Normalization>>,
    /// The comparison levels: `name`, `text`, `email`, `phone`, `date`,
    /// `postal_code` or `exact` (default: from the column's semantic type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<String>,
    /// Weigh an exact agreement by how rare the value is (default: on for names and
    /// places).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_frequency: Option<bool>,
    /// The probability of each level among matches, strongest level first, to start
    /// training from (or to keep, with `fixed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<Vec<f64>>,
    /// The probability of each level among non-matches, strongest level first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<Vec<f64>>,
    /// Keep the given `m` and `u` as they are instead of training them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fixed: bool,
}

fn yes() -> bool {
    true
}

impl UnifyTableSpec {
    /// `Source.Table`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.source, self.table)
    }
}

/// A column and its semantic type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticColumn {
    /// Column name in the ingested table.
    pub name: String,
    /// What the column holds.
    #[serde(rename = "type")]
    pub semantic: SemanticType,
    /// Name of the column in `Customer` (default: the column name). Columns of several
    /// tables with the same name merge into one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<String>,
}

impl SemanticColumn {
    /// The name in `Customer`.
    pub fn output_name(&self) -> &str {
        self.rename.as_deref().unwrap_or(&self.name)
    }
}

/// A deduplication rule: all its conditions must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Name in reports (default: `rule <n>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The conditions, all of which must hold.
    pub conditions: Vec<ConditionSpec>,
}

/// A match rule between this table and an earlier one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRuleSpec {
    /// Name in reports (default: `rule <n>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The earlier table, as `Source.Table`.
    pub with: String,
    /// The conditions, all of which must hold.
    pub conditions: Vec<ConditionSpec>,
}

/// One condition: a column compared after normalisation, at a precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    /// The column of this table.
    pub column: String,
    /// The column of the other table (match rules; default: the same name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
    /// Normalisations applied to both values before comparing, in order (default: those
    /// of the column's semantic type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Vec<Normalization>>,
    /// How similar the normalised values must be.
    #[serde(default)]
    pub precision: Precision,
    /// Values (after normalisation) that never match, e.g. "" or "n/a".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<String>,
}

/// Normalisations of a value before comparison.
///
/// Every normalisation accepts any text. All but [`Normalization::Phone`] and
/// [`Normalization::Address`] are idempotent: applying one twice gives what applying it
/// once gives. A phone number's last ten digits can start with `00`, which a second
/// pass reads as an international prefix (`0000` is `00`, then empty), and an address
/// abbreviation joined to the next word by its dropped dot can form a new one (`e.r` is
/// `eastr`, then `eastrasse`). Values are normalised once, so neither matters to
/// matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    /// Digits in other scripts become ASCII digits; number words stay.
    Numerals,
    /// Punctuation and symbols are removed.
    Symbols,
    /// Text to lower case.
    #[serde(alias = "lower", alias = "text_to_lower")]
    Lowercase,
    /// Phone numbers: digits up to an extension, of which the last ten are kept (so a
    /// number written with or without its country code or trunk `0` is one value).
    Phone,
    /// Person names: common nicknames become the formal name (Bob = Robert).
    Name,
    /// Addresses: street-type abbreviations are expanded (St = Street).
    Address,
    /// Organisations: legal suffixes are removed (Inc, Ltd, GmbH).
    Organization,
    /// Accented and non-Latin letters become their closest ASCII.
    UnicodeToAscii,
    /// Runs of whitespace become one space; leading and trailing space is removed.
    Whitespace,
    /// Email addresses: a `+tag` of the mailbox name is dropped.
    Email,
}

/// How similar two normalised values must be.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Precision {
    /// Equal values (100%).
    #[default]
    Exact,
    /// At least 80% similar.
    High,
    /// At least 60% similar.
    Medium,
    /// At least 30% similar.
    Low,
    /// At least this share (0 < p <= 1) similar.
    Custom(f64),
}

impl Precision {
    /// The smallest similarity (0..=1) that matches.
    pub fn threshold(self) -> f64 {
        match self {
            Precision::Exact => 1.0,
            Precision::High => 0.8,
            Precision::Medium => 0.6,
            Precision::Low => 0.3,
            Precision::Custom(p) => p,
        }
    }

    /// True for [`Precision::Exact`] (and a custom 100%).
    pub fn is_exact(self) -> bool {
        self.threshold() >= 1.0
    }
}

impl Serialize for Precision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Precision::Exact => s.serialize_str("exact"),
            Precision::High => s.serialize_str("high"),
            Precision::Medium => s.serialize_str("medium"),
            Precision::Low => s.serialize_str("low"),
            Precision::Custom(p) => s.serialize_f64(*p),
        }
    }
}

impl<'de> Deserialize<'de> for Precision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Share(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Name(n) => match n.to_ascii_lowercase().as_str() {
                "exact" => Ok(Precision::Exact),
                "high" => Ok(Precision::High),
                "medium" => Ok(Precision::Medium),
                "low" => Ok(Precision::Low),
                other => Err(serde::de::Error::custom(format!(
                    "unknown precision `{other}`: use exact, high, medium, low or a share such as 0.9"
                ))),
            },
            Raw::Share(p) if p > 0.0 && p <= 1.0 => Ok(Precision::Custom(p)),
            Raw::Share(p) => Err(serde::de::Error::custom(format!(
                "precision {p} is out of range: give a share above 0 and at most 1 (0.9 = 90%)"
            ))),
        }
    }
}

/// Which record of a duplicate group wins.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WinnerPolicy {
    /// The record with the most non-empty mapped columns (ties: the largest primary key).
    #[default]
    MostFilled,
    /// The record with the latest value of this column.
    MostRecent(String),
    /// The record with the earliest value of this column.
    LeastRecent(String),
}

/// A column of a duplicate group whose value follows its own policy (the advanced
/// winner mode of deduplication).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeColumnSpec {
    /// The column (of the table).
    pub name: String,
    /// Which member gives the value, among the members where it is not empty: the most
    /// filled record, or the most or least recent by a column; ties go to the largest
    /// primary key.
    pub policy: WinnerPolicy,
    /// Columns that take their values from the same member (a street's city and postal
    /// code).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<String>,
}

/// How one `Customer` column is merged from the records of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeColumnSpec {
    /// The `Customer` column (a column name, or a `rename` of the table columns).
    pub name: String,
    /// The policy (default: importance, the first non-empty value by table order).
    #[serde(default)]
    pub policy: MergePolicy,
    /// Columns merged together with this one: they all take their values from the
    /// record this column's policy picks (an address's street, city, postal code).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<String>,
    /// Leave the column out of `Customer`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclude: bool,
}

/// Merge policies.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergePolicy {
    /// The first non-empty value by table order, then by deduplication winner.
    #[default]
    Importance,
    /// The value of the record with the latest value of this (Customer) column.
    MostRecent(String),
    /// The value of the record with the earliest value of this (Customer) column.
    LeastRecent(String),
    /// The value of the record with the most non-empty columns.
    MostFilled,
}

/// Overrides of the match rules.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverridesSpec {
    /// Pairs of records that always belong to one profile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub always_match: Vec<RecordPair>,
    /// Pairs of records that never belong to one profile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub never_match: Vec<RecordPair>,
    /// Per `Source.Table.Column`, values that never match (shared placeholders).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bypass: Vec<BypassSpec>,
    /// Values that count as equal before comparison (a person's known aliases).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<AliasSpec>,
}

impl OverridesSpec {
    /// No override at all.
    pub fn is_empty(&self) -> bool {
        self.always_match.is_empty()
            && self.never_match.is_empty()
            && self.bypass.is_empty()
            && self.aliases.is_empty()
    }
}

/// Two records, each as `Source.Table` and primary key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordPair {
    /// `Source.Table` of the first record.
    pub table: String,
    /// Its primary key.
    pub key: String,
    /// `Source.Table` of the second record.
    pub other_table: String,
    /// Its primary key.
    pub other_key: String,
}

/// Values of one column that never match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BypassSpec {
    /// `Source.Table.Column`.
    pub column: String,
    /// The values (compared after the condition's normalisation).
    pub values: Vec<String>,
}

/// Values that count as one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasSpec {
    /// `Source.Table.Column`, or `*` for every column.
    pub column: String,
    /// The value every alias is replaced with.
    pub value: String,
    /// Its aliases.
    pub aliases: Vec<String>,
}

/// What a column holds; chooses default normalisations and comparators.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SemanticType {
    /// `Person.FirstName`
    FirstName,
    /// `Person.LastName`
    LastName,
    /// `Person.FullName`
    FullName,
    /// `Person.BirthDate`
    BirthDate,
    /// `Person.Gender`
    Gender,
    /// `Identity.Email`
    Email,
    /// `Identity.Phone`
    Phone,
    /// `Location.Address`
    Address,
    /// `Location.City`
    City,
    /// `Location.PostalCode`
    PostalCode,
    /// `Location.State`
    State,
    /// `Location.Country`
    Country,
    /// `Organization.Name`
    Organization,
    /// `Calendar.Date`
    Date,
    /// Any other name: compared as text.
    Custom(String),
}

const SEMANTIC_NAMES: &[(&str, SemanticType)] = &[
    ("Person.FirstName", SemanticType::FirstName),
    ("Person.LastName", SemanticType::LastName),
    ("Person.FullName", SemanticType::FullName),
    ("Person.BirthDate", SemanticType::BirthDate),
    ("Person.Gender", SemanticType::Gender),
    ("Identity.Email", SemanticType::Email),
    ("Identity.Phone", SemanticType::Phone),
    ("Location.Address", SemanticType::Address),
    ("Location.City", SemanticType::City),
    ("Location.PostalCode", SemanticType::PostalCode),
    ("Location.State", SemanticType::State),
    ("Location.Country", SemanticType::Country),
    ("Organization.Name", SemanticType::Organization),
    ("Calendar.Date", SemanticType::Date),
];

impl SemanticType {
    /// The normalisations a condition on this type uses when it names none.
    pub fn default_normalizations(&self) -> Vec<Normalization> {
        use Normalization::*;
        match self {
            SemanticType::FirstName | SemanticType::FullName => {
                vec![UnicodeToAscii, Lowercase, Name, Symbols, Whitespace]
            }
            SemanticType::LastName | SemanticType::City | SemanticType::State => {
                vec![UnicodeToAscii, Lowercase, Symbols, Whitespace]
            }
            SemanticType::Email => vec![Lowercase, Whitespace, Email],
            SemanticType::Phone => vec![Phone],
            SemanticType::Address => vec![UnicodeToAscii, Lowercase, Address, Symbols, Whitespace],
            SemanticType::PostalCode => vec![Lowercase, Symbols, Whitespace],
            SemanticType::Organization => {
                vec![UnicodeToAscii, Lowercase, Organization, Symbols, Whitespace]
            }
            SemanticType::Country | SemanticType::Gender | SemanticType::Custom(_) => {
                vec![Lowercase, Whitespace]
            }
            SemanticType::BirthDate | SemanticType::Date => vec![Whitespace],
        }
    }
}

impl fmt::Display for SemanticType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SemanticType::Custom(name) => f.write_str(name),
            known => {
                let name = SEMANTIC_NAMES
                    .iter()
                    .find(|(_, t)| t == known)
                    .map_or("?", |(n, _)| n);
                f.write_str(name)
            }
        }
    }
}

impl FromStr for SemanticType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((_, t)) = SEMANTIC_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
        {
            return Ok(t.clone());
        }
        if s.trim().is_empty() {
            return Err("a semantic type cannot be empty".into());
        }
        Ok(SemanticType::Custom(s.to_string()))
    }
}

impl Serialize for SemanticType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SemanticType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions_parse_by_name_or_share() {
        #[derive(Deserialize)]
        struct T {
            p: Precision,
        }
        let p = |text: &str| toml::from_str::<T>(&format!("p = {text}")).map(|t| t.p);
        assert_eq!(p("\"high\"").unwrap().threshold(), 0.8);
        assert_eq!(p("\"Exact\"").unwrap(), Precision::Exact);
        assert_eq!(p("0.9").unwrap(), Precision::Custom(0.9));
        assert!(p("1.5").unwrap_err().to_string().contains("out of range"));
        assert!(p("\"fuzzy\"")
            .unwrap_err()
            .to_string()
            .contains("unknown precision"));
    }

    #[test]
    fn semantic_types_round_trip() {
        for (name, t) in SEMANTIC_NAMES {
            assert_eq!(name.parse::<SemanticType>().unwrap(), *t);
            assert_eq!(t.to_string(), *name);
        }
        assert_eq!(
            "Loyalty.Tier".parse::<SemanticType>().unwrap(),
            SemanticType::Custom("Loyalty.Tier".into())
        );
    }
}
