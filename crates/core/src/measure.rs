//! Measures as the project file declares them (`[[measures]]`): an aggregate function
//! over a column of a table that has a `CustomerId`, with filters, a time window and
//! dimensions.
//!
//! Three kinds exist, as in Customer Insights - Data:
//!
//! - a **customer attribute** is one value per customer, a column of `Customer_Measure`;
//! - a **customer measure** is a table of its own, one row per customer and combination
//!   of dimensions;
//! - a **business measure** aggregates over all customers, one row per combination of
//!   dimensions.
//!
//! [`validate_measures`] reports every problem of a list of measures at once, each with
//! its dotted key (`measures.2.column`) and the fix.

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ConfigError;

/// Name of the entity holding customer-attribute measures.
pub const CUSTOMER_MEASURE: &str = "Customer_Measure";

/// Name of the customer key column of every table measures read.
pub const CUSTOMER_ID: &str = "CustomerId";

/// A `[[measures]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureSpec {
    /// The measure's name: the name of its value column, and of its table for customer
    /// and business measures.
    pub name: String,
    /// Customer attribute, customer measure or business measure.
    pub kind: MeasureKind,
    /// The table the measure reads: `Customer`, `UnifiedActivity` or an activity's
    /// table (each has a `CustomerId` column).
    pub table: String,
    /// The aggregate function.
    pub function: MeasureFunction,
    /// The value column (not needed by `count`, which then counts rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// For `first` and `last`: the column ordering the rows; for `argmax` and `argmin`:
    /// the column whose largest or smallest value picks the row giving `column`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    /// Conditions on the rows, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<FilterSpec>,
    /// Only rows whose `time_column` falls in this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSpec>,
    /// The date or timestamp column the window applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
    /// Columns the measure is grouped by (besides `CustomerId` for customer measures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<String>,
    /// The value of customers without data (customer attributes and measures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// What the measure means, written into `model.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The kinds of measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasureKind {
    /// One value per customer: a column of `Customer_Measure`.
    CustomerAttribute,
    /// A table of its own: a value per customer and combination of dimensions.
    Customer,
    /// A value per combination of dimensions, over all customers.
    Business,
}

impl MeasureKind {
    /// The name used in the project file.
    pub fn as_str(self) -> &'static str {
        match self {
            MeasureKind::CustomerAttribute => "customer_attribute",
            MeasureKind::Customer => "customer",
            MeasureKind::Business => "business",
        }
    }

    /// True for the kinds computed per customer.
    pub fn per_customer(self) -> bool {
        !matches!(self, MeasureKind::Business)
    }
}

impl fmt::Display for MeasureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Aggregate functions of a measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasureFunction {
    /// Sum of `column`.
    Sum,
    /// Average of `column`.
    #[serde(alias = "avg")]
    Average,
    /// Number of rows, or of non-null values of `column` when one is given.
    Count,
    /// Number of distinct non-null values of `column`.
    CountDistinct,
    /// Smallest value of `column`.
    Min,
    /// Largest value of `column`.
    Max,
    /// The first non-null value of `column` by `order_by`.
    First,
    /// The last non-null value of `column` by `order_by`.
    Last,
    /// The value of `column` in the row with the largest `order_by`.
    #[serde(rename = "argmax")]
    ArgMax,
    /// The value of `column` in the row with the smallest `order_by`.
    #[serde(rename = "argmin")]
    ArgMin,
}

impl MeasureFunction {
    /// The name used in the project file.
    pub fn as_str(self) -> &'static str {
        match self {
            MeasureFunction::Sum => "sum",
            MeasureFunction::Average => "average",
            MeasureFunction::Count => "count",
            MeasureFunction::CountDistinct => "count_distinct",
            MeasureFunction::Min => "min",
            MeasureFunction::Max => "max",
            MeasureFunction::First => "first",
            MeasureFunction::Last => "last",
            MeasureFunction::ArgMax => "argmax",
            MeasureFunction::ArgMin => "argmin",
        }
    }

    /// True for the functions that need `order_by`.
    pub fn needs_order(self) -> bool {
        matches!(
            self,
            MeasureFunction::First
                | MeasureFunction::Last
                | MeasureFunction::ArgMax
                | MeasureFunction::ArgMin
        )
    }

    /// True for the functions that need `column`.
    pub fn needs_column(self) -> bool {
        !matches!(self, MeasureFunction::Count)
    }
}

impl fmt::Display for MeasureFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition on the rows a measure reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// The column tested.
    pub column: String,
    /// The comparison.
    pub op: FilterOp,
    /// The value compared with: a list for `in` and `not_in`, none for `is_empty` and
    /// `is_not_empty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// Comparisons of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    /// Equal to the value.
    Eq,
    /// Not equal to the value (rows where the column is empty do not pass).
    Ne,
    /// Less than the value.
    Lt,
    /// Less than or equal to the value.
    Le,
    /// Greater than the value.
    Gt,
    /// Greater than or equal to the value.
    Ge,
    /// Equal to one of the values.
    In,
    /// Equal to none of the values (rows where the column is empty do not pass).
    NotIn,
    /// Text containing the value, ignoring case (as the segment condition).
    Contains,
    /// Null, or text that is blank.
    IsEmpty,
    /// Neither null nor blank text.
    IsNotEmpty,
}

/// A measure filter tests its column with the segment condition of the same name: one
/// condition model, one meaning (`contains` is case-insensitive in both).
impl From<FilterOp> for crate::segment::ConditionOp {
    fn from(op: FilterOp) -> Self {
        use crate::segment::ConditionOp as C;
        match op {
            FilterOp::Eq => C::Eq,
            FilterOp::Ne => C::Ne,
            FilterOp::Lt => C::Lt,
            FilterOp::Le => C::Le,
            FilterOp::Gt => C::Gt,
            FilterOp::Ge => C::Ge,
            FilterOp::In => C::In,
            FilterOp::NotIn => C::NotIn,
            FilterOp::Contains => C::Contains,
            FilterOp::IsEmpty => C::IsEmpty,
            FilterOp::IsNotEmpty => C::IsNotEmpty,
        }
    }
}

impl FilterOp {
    /// The name used in the project file.
    pub fn as_str(self) -> &'static str {
        match self {
            FilterOp::Eq => "eq",
            FilterOp::Ne => "ne",
            FilterOp::Lt => "lt",
            FilterOp::Le => "le",
            FilterOp::Gt => "gt",
            FilterOp::Ge => "ge",
            FilterOp::In => "in",
            FilterOp::NotIn => "not_in",
            FilterOp::Contains => "contains",
            FilterOp::IsEmpty => "is_empty",
            FilterOp::IsNotEmpty => "is_not_empty",
        }
    }
}

/// A time window: either relative (`last = "90 days"`, counted back from the run's
/// time) or absolute (`from` and/or `to`, whole days in UTC, both included).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// A period counted back from the run's time, e.g. `"90 days"`, `"2 weeks"`,
    /// `"6 months"`, `"1 year"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    /// The first day of the window (from its start, UTC).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "date::deserialize"
    )]
    pub from: Option<NaiveDate>,
    /// The last day of the window (to its end, UTC).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "date::deserialize"
    )]
    pub to: Option<NaiveDate>,
}

/// The bounds of a window at a run's time: rows with `start <= time` and `time < end`
/// (`time <= end` when `end_inclusive`) are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowBounds {
    /// Inclusive start, if bounded.
    pub start: Option<DateTime<Utc>>,
    /// End, if bounded.
    pub end: Option<DateTime<Utc>>,
    /// True when `end` itself is in the window (relative windows end at the run's time,
    /// which is in).
    pub end_inclusive: bool,
}

impl WindowSpec {
    /// The bounds at `now`: a relative window runs from `now` minus its period up to and
    /// including `now`; an absolute one covers its days. `None` when the window is not
    /// valid (see [`validate_measures`]).
    pub fn bounds(&self, now: DateTime<Utc>) -> Option<WindowBounds> {
        match (&self.last, self.from, self.to) {
            (Some(last), None, None) => {
                let period: Period = last.parse().ok()?;
                Some(WindowBounds {
                    start: Some(period.before(now)?),
                    end: Some(now),
                    end_inclusive: true,
                })
            }
            (None, from, to) if from.is_some() || to.is_some() => Some(WindowBounds {
                start: from.map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc()),
                end: match to {
                    Some(d) => Some(
                        d.checked_add_days(Days::new(1))?
                            .and_time(chrono::NaiveTime::MIN)
                            .and_utc(),
                    ),
                    None => None,
                },
                end_inclusive: false,
            }),
            _ => None,
        }
    }
}

pub use crate::period::{Period, PeriodError, PeriodUnit};

mod date {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer};

    /// A date written as a string (`"2024-01-31"`) or as a TOML date (`2024-01-31`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Toml(toml::value::Datetime),
        }
        let text = match Option::<Raw>::deserialize(d)? {
            None => return Ok(None),
            Some(Raw::Text(t)) => t,
            Some(Raw::Toml(t)) => t.to_string(),
        };
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a date: write it as YYYY-MM-DD, e.g. 2024-01-31"
                ))
            })
    }
}

pub use crate::names::is_identifier as valid_measure_name;

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::Bool(_) | Value::Number(_) | Value::String(_))
}

/// Every problem of `measures` (the `[[measures]]` array), each naming its key and the
/// fix. Checks that need the tables (do the columns exist?) happen when the measures
/// run.
pub fn validate_measures(measures: &[MeasureSpec]) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut names = HashSet::new();
    for (i, m) in measures.iter().enumerate() {
        let key = |k: &str| format!("measures.{i}.{k}");
        let name_rule = "start with a letter; use letters, digits and `_` (at most 64)";
        if m.name.trim().is_empty() {
            errors.push(ConfigError::new(
                key("name"),
                "the measure has no name",
                format!("set `name`, e.g. `name = \"TotalSpend\"` ({name_rule})"),
            ));
        } else if !valid_measure_name(&m.name) {
            errors.push(ConfigError::new(
                key("name"),
                format!("`{}` is not a valid column name", m.name),
                name_rule,
            ));
        } else if m.name.eq_ignore_ascii_case(CUSTOMER_ID)
            || m.name.eq_ignore_ascii_case(CUSTOMER_MEASURE)
        {
            errors.push(ConfigError::new(
                key("name"),
                format!("`{}` is a reserved name", m.name),
                format!("choose a name other than `{CUSTOMER_ID}` and `{CUSTOMER_MEASURE}`"),
            ));
        } else if !names.insert(m.name.to_ascii_lowercase()) {
            errors.push(ConfigError::new(
                key("name"),
                format!("measure `{}` is declared twice (names ignore case)", m.name),
                "give each measure its own name",
            ));
        }
        if m.table.trim().is_empty() {
            errors.push(ConfigError::new(
                key("table"),
                "the measure reads no table",
                "set `table`, e.g. `table = \"UnifiedActivity\"` or an activity's table",
            ));
        }
        let blank = |c: &Option<String>| c.as_ref().is_some_and(|c| c.trim().is_empty());
        match (&m.column, m.function.needs_column()) {
            (None, true) => errors.push(ConfigError::new(
                key("column"),
                format!("function `{}` needs a value column", m.function),
                "set `column` to the column to aggregate",
            )),
            _ if blank(&m.column) => errors.push(ConfigError::new(
                key("column"),
                "the column name is empty",
                "set `column` to a column of the table",
            )),
            _ => {}
        }
        match (&m.order_by, m.function.needs_order()) {
            (None, true) => errors.push(ConfigError::new(
                key("order_by"),
                format!("function `{}` needs `order_by`", m.function),
                "set `order_by` to the column that orders the rows, e.g. a date",
            )),
            (Some(_), false) => errors.push(ConfigError::new(
                key("order_by"),
                format!("function `{}` does not use `order_by`", m.function),
                "remove `order_by`, or use first, last, argmax or argmin",
            )),
            _ if blank(&m.order_by) => errors.push(ConfigError::new(
                key("order_by"),
                "the column name is empty",
                "set `order_by` to a column of the table",
            )),
            _ => {}
        }
        for (f, filter) in m.filters.iter().enumerate() {
            errors.extend(validate_filter(
                filter,
                &format!("measures.{i}.filters.{f}"),
            ));
        }
        match (&m.window, &m.time_column) {
            (Some(_), None) => errors.push(ConfigError::new(
                key("time_column"),
                "a window needs the column holding each row's time",
                "set `time_column` to a date or timestamp column of the table",
            )),
            (None, Some(_)) => errors.push(ConfigError::new(
                key("time_column"),
                "`time_column` is set but there is no window",
                "add a `window` (e.g. `window = { last = \"90 days\" }`) or remove `time_column`",
            )),
            (Some(_), Some(t)) if t.trim().is_empty() => errors.push(ConfigError::new(
                key("time_column"),
                "the column name is empty",
                "set `time_column` to a date or timestamp column of the table",
            )),
            _ => {}
        }
        if let Some(w) = &m.window {
            errors.extend(validate_window(w, &key("window")));
        }
        if m.kind == MeasureKind::CustomerAttribute && !m.dimensions.is_empty() {
            errors.push(ConfigError::new(
                key("dimensions"),
                "a customer attribute has one value per customer, so it takes no dimensions",
                "remove `dimensions`, or make it `kind = \"customer\"`",
            ));
        } else {
            let mut seen = HashSet::new();
            for (d, dim) in m.dimensions.iter().enumerate() {
                let dkey = format!("measures.{i}.dimensions.{d}");
                if dim.trim().is_empty() {
                    errors.push(ConfigError::new(
                        dkey,
                        "the dimension is empty",
                        "name a column of the table",
                    ));
                } else if dim.eq_ignore_ascii_case(&m.name) {
                    errors.push(ConfigError::new(
                        dkey,
                        format!(
                            "dimension `{dim}` has the measure's name, which is its value column"
                        ),
                        "rename the measure",
                    ));
                } else if m.kind.per_customer() && dim.eq_ignore_ascii_case(CUSTOMER_ID) {
                    errors.push(ConfigError::new(
                        dkey,
                        format!("customer measures are always grouped by `{CUSTOMER_ID}`"),
                        format!("remove `{dim}` from `dimensions`"),
                    ));
                } else if !seen.insert(dim.to_ascii_lowercase()) {
                    errors.push(ConfigError::new(
                        dkey,
                        format!("dimension `{dim}` is listed twice"),
                        "list each dimension once",
                    ));
                }
            }
        }
        match (&m.default, m.kind) {
            (Some(_), MeasureKind::Business) => errors.push(ConfigError::new(
                key("default"),
                "a business measure has no customers to replace a missing value for",
                "remove `default`, or make it a customer measure",
            )),
            (Some(v), _) if !is_scalar(v) => errors.push(ConfigError::new(
                key("default"),
                "the default must be a single number, text or boolean",
                "write e.g. `default = 0`",
            )),
            _ => {}
        }
    }
    errors
}

fn validate_filter(filter: &FilterSpec, key: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if filter.column.trim().is_empty() {
        errors.push(ConfigError::new(
            format!("{key}.column"),
            "the filter names no column",
            "set `column` to a column of the table",
        ));
    }
    let vkey = format!("{key}.value");
    let op = filter.op.as_str();
    match (filter.op, &filter.value) {
        (FilterOp::IsEmpty | FilterOp::IsNotEmpty, Some(_)) => errors.push(ConfigError::new(
            vkey,
            format!("`{op}` takes no value"),
            "remove `value`",
        )),
        (FilterOp::IsEmpty | FilterOp::IsNotEmpty, None) => {}
        (_, None) => errors.push(ConfigError::new(
            vkey,
            format!("`{op}` needs a value"),
            "set `value`",
        )),
        (FilterOp::In | FilterOp::NotIn, Some(Value::Array(items))) => {
            if items.is_empty() {
                errors.push(ConfigError::new(
                    vkey,
                    format!("`{op}` has an empty list"),
                    "list at least one value",
                ));
            } else if !items.iter().all(is_scalar) {
                errors.push(ConfigError::new(
                    vkey,
                    "the list holds something other than numbers, text or booleans",
                    "write e.g. `value = [\"a\", \"b\"]`",
                ));
            }
        }
        (FilterOp::In | FilterOp::NotIn, Some(_)) => errors.push(ConfigError::new(
            vkey,
            format!("`{op}` needs a list of values"),
            "write e.g. `value = [\"a\", \"b\"]`",
        )),
        (FilterOp::Contains, Some(Value::String(_))) => {}
        (FilterOp::Contains, Some(_)) => errors.push(ConfigError::new(
            vkey,
            "`contains` needs a text value",
            "write e.g. `value = \"gold\"`",
        )),
        (_, Some(v)) if !is_scalar(v) => errors.push(ConfigError::new(
            vkey,
            format!("`{op}` needs a single number, text or boolean"),
            "write e.g. `value = 10` or `value = \"gold\"`",
        )),
        _ => {}
    }
    errors
}

fn validate_window(w: &WindowSpec, key: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    match (&w.last, w.from, w.to) {
        (None, None, None) => errors.push(ConfigError::new(
            key.to_string(),
            "the window is empty",
            "set `last = \"90 days\"`, or `from` and/or `to` dates",
        )),
        (Some(_), from, to) if from.is_some() || to.is_some() => errors.push(ConfigError::new(
            key.to_string(),
            "a window is either relative (`last`) or absolute (`from`/`to`), not both",
            "keep `last`, or keep `from`/`to`",
        )),
        (Some(last), _, _) => {
            if let Err(e) = last.parse::<Period>() {
                errors.push(ConfigError::new(
                    format!("{key}.last"),
                    e.to_string(),
                    "write a whole number and a unit: days, weeks, months or years, e.g. `last = \"90 days\"`",
                ));
            }
        }
        (None, Some(from), Some(to)) if from > to => errors.push(ConfigError::new(
            format!("{key}.to"),
            format!("the window ends ({to}) before it starts ({from})"),
            "swap `from` and `to`",
        )),
        _ => {}
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Vec<MeasureSpec> {
        #[derive(Deserialize)]
        struct Wrapper {
            measures: Vec<MeasureSpec>,
        }
        toml::from_str::<Wrapper>(text).unwrap().measures
    }

    fn one(text: &str) -> MeasureSpec {
        spec(&format!("[[measures]]\n{text}")).remove(0)
    }

    fn base() -> MeasureSpec {
        one("name = \"TotalSpend\"\nkind = \"customer_attribute\"\ntable = \"Orders\"\nfunction = \"sum\"\ncolumn = \"Amount\"")
    }

    /// The keys of the errors of one measure.
    fn keys(m: MeasureSpec) -> Vec<String> {
        validate_measures(&[m]).into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn a_full_measure_parses_and_validates() {
        let m = one(r#"
name = "SpendByChannel"
kind = "customer"
table = "Orders"
function = "sum"
column = "Amount"
filters = [
  { column = "Status", op = "in", value = ["paid", "shipped"] },
  { column = "Coupon", op = "is_empty" },
]
window = { last = "90 days" }
time_column = "OrderDate"
dimensions = ["Channel"]
default = 0
description = "spend of the last 90 days"
"#);
        assert_eq!(m.kind, MeasureKind::Customer);
        assert_eq!(m.filters[0].op, FilterOp::In);
        assert_eq!(m.filters[1].op, FilterOp::IsEmpty);
        assert_eq!(m.window.as_ref().unwrap().last.as_deref(), Some("90 days"));
        assert!(validate_measures(std::slice::from_ref(&m)).is_empty());
        // round trip
        #[derive(Serialize, Deserialize)]
        struct Wrapper {
            measures: Vec<MeasureSpec>,
        }
        let back: Wrapper = toml::from_str(
            &toml::to_string(&Wrapper {
                measures: vec![m.clone()],
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(back.measures[0], m);
    }

    #[test]
    fn every_function_name_parses() {
        for (name, f) in [
            ("sum", MeasureFunction::Sum),
            ("average", MeasureFunction::Average),
            ("avg", MeasureFunction::Average),
            ("count", MeasureFunction::Count),
            ("count_distinct", MeasureFunction::CountDistinct),
            ("min", MeasureFunction::Min),
            ("max", MeasureFunction::Max),
            ("first", MeasureFunction::First),
            ("last", MeasureFunction::Last),
            ("argmax", MeasureFunction::ArgMax),
            ("argmin", MeasureFunction::ArgMin),
        ] {
            let m = one(&format!(
                "name = \"M\"\nkind = \"business\"\ntable = \"T\"\nfunction = \"{name}\""
            ));
            assert_eq!(m.function, f);
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = "[[measures]]\nname = \"M\"\nkind = \"business\"\ntable = \"T\"\nfunction = \"count\"\ncolour = \"red\"";
        #[derive(Deserialize)]
        struct Wrapper {
            #[allow(dead_code)]
            measures: Vec<MeasureSpec>,
        }
        assert!(toml::from_str::<Wrapper>(text).is_err());
    }

    #[test]
    fn absolute_windows_take_toml_dates_and_strings() {
        let m = one(
            "name = \"M\"\nkind = \"business\"\ntable = \"T\"\nfunction = \"count\"\ntime_column = \"At\"\nwindow = { from = 2024-01-01, to = \"2024-01-31\" }",
        );
        let w = m.window.clone().unwrap();
        assert_eq!(w.from, NaiveDate::from_ymd_opt(2024, 1, 1));
        assert_eq!(w.to, NaiveDate::from_ymd_opt(2024, 1, 31));
        let b = w.bounds(Utc::now()).unwrap();
        assert_eq!(b.start.unwrap().to_rfc3339(), "2024-01-01T00:00:00+00:00");
        assert_eq!(b.end.unwrap().to_rfc3339(), "2024-02-01T00:00:00+00:00");
        assert!(validate_measures(&[m]).is_empty());
    }

    #[test]
    fn periods_parse_and_count_back() {
        let now = "2024-03-31T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let p = |s: &str| {
            s.parse::<Period>()
                .unwrap()
                .before(now)
                .unwrap()
                .to_rfc3339()
        };
        assert_eq!(p("90 days"), "2024-01-01T12:00:00+00:00");
        assert_eq!(p("1 week"), "2024-03-24T12:00:00+00:00");
        assert_eq!(p("1 month"), "2024-02-29T12:00:00+00:00");
        assert_eq!(p("2 Years"), "2022-03-31T12:00:00+00:00");
        assert!(matches!(
            "3 fortnights".parse::<Period>(),
            Err(PeriodError::Unit(_))
        ));
        assert!(matches!(
            "0 days".parse::<Period>(),
            Err(PeriodError::Amount(_))
        ));
        assert!(matches!(
            "days".parse::<Period>(),
            Err(PeriodError::Shape(_))
        ));
    }

    #[test]
    fn names_must_be_present_valid_unique_and_not_reserved() {
        let mut empty = base();
        empty.name = " ".into();
        assert_eq!(keys(empty), ["measures.0.name"]);
        let mut bad = base();
        bad.name = "Total Spend".into();
        assert_eq!(keys(bad), ["measures.0.name"]);
        let mut reserved = base();
        reserved.name = "customerid".into();
        assert_eq!(keys(reserved), ["measures.0.name"]);
        let mut twice = base();
        twice.name = "TOTALSPEND".into();
        let errors = validate_measures(&[base(), twice]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "measures.1.name");
        assert!(errors[0].message.contains("declared twice"));
    }

    #[test]
    fn the_table_is_required() {
        let mut m = base();
        m.table = String::new();
        assert_eq!(keys(m), ["measures.0.table"]);
    }

    #[test]
    fn functions_other_than_count_need_a_column() {
        let mut m = base();
        m.column = None;
        let errors = validate_measures(&[m.clone()]);
        assert_eq!(errors[0].key, "measures.0.column");
        assert!(errors[0].message.contains("`sum`"));
        m.function = MeasureFunction::Count;
        assert!(keys(m).is_empty());
    }

    #[test]
    fn ordered_functions_need_order_by_and_others_refuse_it() {
        for f in [
            MeasureFunction::First,
            MeasureFunction::Last,
            MeasureFunction::ArgMax,
            MeasureFunction::ArgMin,
        ] {
            let mut m = base();
            m.function = f;
            assert_eq!(keys(m.clone()), ["measures.0.order_by"]);
            m.order_by = Some("OrderDate".into());
            assert!(keys(m).is_empty());
        }
        let mut m = base();
        m.order_by = Some("OrderDate".into());
        assert_eq!(keys(m), ["measures.0.order_by"]);
    }

    #[test]
    fn a_window_needs_a_time_column_and_a_time_column_a_window() {
        let mut m = base();
        m.window = Some(WindowSpec {
            last: Some("90 days".into()),
            ..Default::default()
        });
        let errors = validate_measures(&[m.clone()]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "measures.0.time_column");
        assert!(errors[0].fix.contains("date or timestamp"));
        m.time_column = Some("OrderDate".into());
        assert!(keys(m.clone()).is_empty());
        m.window = None;
        assert_eq!(keys(m), ["measures.0.time_column"]);
    }

    #[test]
    fn windows_need_known_units_and_one_shape() {
        let mut m = base();
        m.time_column = Some("OrderDate".into());
        m.window = Some(WindowSpec {
            last: Some("90 fortnights".into()),
            ..Default::default()
        });
        let errors = validate_measures(&[m.clone()]);
        assert_eq!(errors[0].key, "measures.0.window.last");
        assert!(errors[0].message.contains("fortnights"));
        assert!(errors[0].fix.contains("days, weeks, months or years"));
        m.window = Some(WindowSpec::default());
        assert_eq!(keys(m.clone()), ["measures.0.window"]);
        m.window = Some(WindowSpec {
            last: Some("9 days".into()),
            from: NaiveDate::from_ymd_opt(2024, 1, 1),
            to: None,
        });
        assert_eq!(keys(m.clone()), ["measures.0.window"]);
        m.window = Some(WindowSpec {
            last: None,
            from: NaiveDate::from_ymd_opt(2024, 2, 1),
            to: NaiveDate::from_ymd_opt(2024, 1, 1),
        });
        assert_eq!(keys(m), ["measures.0.window.to"]);
    }

    #[test]
    fn customer_attributes_take_no_dimensions() {
        let mut m = base();
        m.dimensions = vec!["Channel".into()];
        let errors = validate_measures(&[m.clone()]);
        assert_eq!(errors[0].key, "measures.0.dimensions");
        assert!(errors[0].fix.contains("kind = \"customer\""));
        m.kind = MeasureKind::Customer;
        assert!(keys(m).is_empty());
    }

    #[test]
    fn dimensions_must_be_distinct_and_not_the_key_or_the_value() {
        let mut m = base();
        m.kind = MeasureKind::Customer;
        m.dimensions = vec![
            "Channel".into(),
            "channel".into(),
            "CustomerId".into(),
            "TotalSpend".into(),
            "".into(),
        ];
        assert_eq!(
            keys(m.clone()),
            [
                "measures.0.dimensions.1",
                "measures.0.dimensions.2",
                "measures.0.dimensions.3",
                "measures.0.dimensions.4"
            ]
        );
        // business measures may group by the customer
        m.kind = MeasureKind::Business;
        m.dimensions = vec!["CustomerId".into()];
        assert!(keys(m).is_empty());
    }

    #[test]
    fn business_measures_take_no_default_and_defaults_are_scalars() {
        let mut m = base();
        m.kind = MeasureKind::Business;
        m.default = Some(serde_json::json!(0));
        let errors = validate_measures(&[m.clone()]);
        assert_eq!(errors[0].key, "measures.0.default");
        assert!(errors[0].message.contains("business"));
        m.kind = MeasureKind::Customer;
        assert!(keys(m.clone()).is_empty());
        m.default = Some(serde_json::json!([1, 2]));
        assert_eq!(keys(m), ["measures.0.default"]);
    }

    #[test]
    fn filters_need_values_of_the_right_shape() {
        let f = |op: FilterOp, value: Option<Value>| {
            let mut m = base();
            m.filters = vec![FilterSpec {
                column: "Status".into(),
                op,
                value,
            }];
            keys(m)
        };
        use serde_json::json;
        assert!(f(FilterOp::Eq, Some(json!("paid"))).is_empty());
        assert!(f(FilterOp::Ge, Some(json!(10))).is_empty());
        assert!(f(FilterOp::In, Some(json!(["a", 1]))).is_empty());
        assert!(f(FilterOp::IsEmpty, None).is_empty());
        assert!(f(FilterOp::Contains, Some(json!("x"))).is_empty());
        let bad = ["measures.0.filters.0.value"];
        assert_eq!(f(FilterOp::Eq, None), bad);
        assert_eq!(f(FilterOp::Lt, Some(json!([1]))), bad);
        assert_eq!(f(FilterOp::In, Some(json!("a"))), bad);
        assert_eq!(f(FilterOp::NotIn, Some(json!([]))), bad);
        assert_eq!(f(FilterOp::NotIn, Some(json!([[1]]))), bad);
        assert_eq!(f(FilterOp::Contains, Some(json!(1))), bad);
        assert_eq!(f(FilterOp::IsNotEmpty, Some(json!(1))), bad);
        let mut m = base();
        m.filters = vec![FilterSpec {
            column: "".into(),
            op: FilterOp::IsEmpty,
            value: None,
        }];
        assert_eq!(keys(m), ["measures.0.filters.0.column"]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut m = base();
        m.name = "bad name".into();
        m.column = None;
        m.dimensions = vec!["X".into()];
        m.default = Some(serde_json::json!({"a": 1}));
        let errors = validate_measures(&[m]);
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "measures.0.name",
                "measures.0.column",
                "measures.0.dimensions",
                "measures.0.default"
            ]
        );
        assert!(errors.iter().all(|e| !e.fix.is_empty()));
    }
}
