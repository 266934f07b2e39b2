//! Segments as the project file declares them (`[[segments]]`): named sets of customers
//! defined by rules over `Customer` and the tables that carry a `CustomerId`
//! (`Customer_Measure`, `UnifiedActivity`, ...), combined with set operators, and
//! optionally referring to other segments.
//!
//! A segment is the first rule's set of customers, then each next rule's set combined
//! with the running result by that rule's [`SetOperator`] (union, intersect, except).
//! A rule's condition is a tree of [`ConditionNode`]s: `all` (AND), `any` (OR), a leaf
//! [`Condition`] on one column, or `segment = "Other"` (member of another segment).
//!
//! A leaf on a table other than `Customer` means "the customer has at least one row of
//! that table satisfying it". Leaves on the same table inside one `all` or `any` group
//! (and its nested groups when they touch only that table) are evaluated on the same
//! row: `all = [{ table = "UnifiedActivity", column = "Type", op = "eq", value =
//! "Purchase" }, { table = "UnifiedActivity", column = "Amount", op = "gt", value = 100
//! }]` needs one purchase above 100, not a purchase and some other activity above 100.
//!
//! [`parse_condition`] reads the quick-segment text of `lakecdp segment preview`
//! (`Country = 'FR' and Age >= 30`) into the same tree; it never produces SQL text.
//! [`validate_segments`] reports every problem at once, each with its dotted key and
//! its fix.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::period::{Period, PeriodError};

/// The table every segment is a subset of.
pub const CUSTOMER_TABLE: &str = "Customer";

/// The key column shared by `Customer` and the tables a condition may use.
pub const CUSTOMER_ID: &str = "CustomerId";

/// The entity listing every customer's segments; no segment may take its name.
pub const MEMBERSHIP_ENTITY: &str = "SegmentMembership";

/// A `[[segments]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    /// The name; the segment's own table in `Segments/` takes it.
    pub name: String,
    /// What the segment is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Static segments are computed once; dynamic ones at every run (the default).
    #[serde(default)]
    pub kind: SegmentKind,
    /// The rules: the first rule's set, then each next rule combined with the result
    /// by its own operator.
    pub rules: Vec<SegmentRule>,
    /// `Customer` columns copied into the segment's table (`CustomerId` always is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projected_columns: Vec<String>,
}

impl SegmentSpec {
    /// The names of the segments this one refers to, each once, in order of appearance.
    pub fn references(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for rule in &self.rules {
            rule.condition.collect_references(&mut out);
        }
        let mut seen = BTreeSet::new();
        out.retain(|n| seen.insert(*n));
        out
    }
}

/// How often a segment's members are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    /// Computed once; later runs keep the members published by the first.
    Static,
    /// Recomputed at every run.
    #[default]
    Dynamic,
}

impl fmt::Display for SegmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SegmentKind::Static => "static",
            SegmentKind::Dynamic => "dynamic",
        })
    }
}

/// One rule of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRule {
    /// How this rule's set combines with the result of the rules before it (ignored
    /// for the first rule; default union).
    #[serde(default)]
    pub operator: SetOperator,
    /// Which customers the rule selects.
    pub condition: ConditionNode,
}

/// How a rule's set combines with the result of the rules before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetOperator {
    /// Customers in either.
    #[default]
    Union,
    /// Customers in both.
    Intersect,
    /// Customers of the result that this rule does not select.
    Except,
}

/// A node of a rule's condition tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConditionNode {
    /// Every child holds (AND).
    All {
        /// The children.
        all: Vec<ConditionNode>,
    },
    /// At least one child holds (OR).
    Any {
        /// The children.
        any: Vec<ConditionNode>,
    },
    /// The customer is a member of another segment.
    Segment {
        /// The other segment's name.
        segment: String,
    },
    /// A condition on one column.
    Leaf(Condition),
}

impl ConditionNode {
    /// A leaf on `Customer`.
    pub fn customer(column: &str, op: ConditionOp, value: Option<ConditionValue>) -> Self {
        ConditionNode::Leaf(Condition {
            table: CUSTOMER_TABLE.into(),
            column: column.into(),
            op,
            value,
        })
    }

    /// The segments this node refers to, in order of appearance (repeats kept).
    pub fn references(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_references(&mut out);
        out
    }

    /// The tables of this node's leaves, in order of appearance (repeats kept).
    pub fn tables(&self) -> Vec<&str> {
        match self {
            ConditionNode::All { all: children } | ConditionNode::Any { any: children } => {
                children.iter().flat_map(ConditionNode::tables).collect()
            }
            ConditionNode::Segment { .. } => Vec::new(),
            ConditionNode::Leaf(c) => vec![c.table.as_str()],
        }
    }

    fn collect_references<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            ConditionNode::All { all: children } | ConditionNode::Any { any: children } => {
                for c in children {
                    c.collect_references(out);
                }
            }
            ConditionNode::Segment { segment } => out.push(segment),
            ConditionNode::Leaf(_) => {}
        }
    }
}

/// A condition on one column of one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The table (default `Customer`); any other table needs a `CustomerId` column and
    /// means "at least one row of it satisfies the condition".
    #[serde(default = "customer_table")]
    pub table: String,
    /// The column.
    pub column: String,
    /// The comparison.
    pub op: ConditionOp,
    /// The value compared with (none for `is_empty` and `is_not_empty`; a list for
    /// `in` and `not_in`; a date for `before` and `after`; a window such as
    /// `"last 30 days"` for `within`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<ConditionValue>,
}

fn customer_table() -> String {
    CUSTOMER_TABLE.into()
}

/// The comparison of a [`Condition`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConditionOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// One of a list.
    In,
    /// None of a list.
    NotIn,
    /// Text containing the value (case-insensitive).
    Contains,
    /// Text starting with the value (case-insensitive).
    StartsWith,
    /// Null, or text that is blank.
    IsEmpty,
    /// Neither null nor blank text.
    IsNotEmpty,
    /// A date or time before the value.
    Before,
    /// A date or time after the value.
    After,
    /// A date or time within a window relative to the run's time (`"last 30 days"`).
    Within,
    /// An operator this version does not know; [`validate_segments`] reports it.
    Unknown(String),
}

/// The names of the known operators, as written in the project file.
pub const OPERATORS: &[&str] = &[
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "is_empty",
    "is_not_empty",
    "before",
    "after",
    "within",
];

impl ConditionOp {
    /// The name in the project file.
    pub fn as_str(&self) -> &str {
        match self {
            ConditionOp::Eq => "eq",
            ConditionOp::Ne => "ne",
            ConditionOp::Lt => "lt",
            ConditionOp::Le => "le",
            ConditionOp::Gt => "gt",
            ConditionOp::Ge => "ge",
            ConditionOp::In => "in",
            ConditionOp::NotIn => "not_in",
            ConditionOp::Contains => "contains",
            ConditionOp::StartsWith => "starts_with",
            ConditionOp::IsEmpty => "is_empty",
            ConditionOp::IsNotEmpty => "is_not_empty",
            ConditionOp::Before => "before",
            ConditionOp::After => "after",
            ConditionOp::Within => "within",
            ConditionOp::Unknown(s) => s,
        }
    }

    /// What value the operator takes.
    fn arity(&self) -> Arity {
        match self {
            ConditionOp::IsEmpty | ConditionOp::IsNotEmpty | ConditionOp::Unknown(_) => Arity::None,
            ConditionOp::In | ConditionOp::NotIn => Arity::List,
            ConditionOp::Contains | ConditionOp::StartsWith => Arity::Text,
            ConditionOp::Before | ConditionOp::After => Arity::Date,
            ConditionOp::Within => Arity::Window,
            _ => Arity::Scalar,
        }
    }
}

enum Arity {
    None,
    Scalar,
    List,
    Text,
    Date,
    Window,
}

impl FromStr for ConditionOp {
    type Err = std::convert::Infallible;

    /// Never fails: an unknown name becomes [`ConditionOp::Unknown`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "eq" | "=" | "==" => ConditionOp::Eq,
            "ne" | "!=" | "<>" => ConditionOp::Ne,
            "lt" | "<" => ConditionOp::Lt,
            "le" | "<=" => ConditionOp::Le,
            "gt" | ">" => ConditionOp::Gt,
            "ge" | ">=" => ConditionOp::Ge,
            "in" => ConditionOp::In,
            "not_in" => ConditionOp::NotIn,
            "contains" => ConditionOp::Contains,
            "starts_with" => ConditionOp::StartsWith,
            "is_empty" => ConditionOp::IsEmpty,
            "is_not_empty" => ConditionOp::IsNotEmpty,
            "before" => ConditionOp::Before,
            "after" => ConditionOp::After,
            "within" => ConditionOp::Within,
            _ => ConditionOp::Unknown(s.to_string()),
        })
    }
}

impl fmt::Display for ConditionOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ConditionOp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ConditionOp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let Ok(op) = s.parse();
        Ok(op)
    }
}

/// The value of a [`Condition`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConditionValue {
    /// `true` or `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text (also dates, times and relative windows).
    Text(String),
    /// A list, for `in` and `not_in`.
    List(Vec<ConditionValue>),
}

impl ConditionValue {
    /// Text, for building values in code.
    pub fn text(s: impl Into<String>) -> Self {
        ConditionValue::Text(s.into())
    }
}

impl fmt::Display for ConditionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConditionValue::Bool(b) => write!(f, "{b}"),
            ConditionValue::Int(i) => write!(f, "{i}"),
            ConditionValue::Float(x) => write!(f, "{x}"),
            ConditionValue::Text(s) => write!(f, "{s:?}"),
            ConditionValue::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// A point in time written as a date (`2024-05-01`), a date and time
/// (`2024-05-01T08:00:00`) or an RFC 3339 time (`2024-05-01T08:00:00Z`), read as UTC.
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// A window relative to the run's time: `last 30 days`, `next 2 weeks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelativeWindow {
    /// Before or after the run's time.
    pub direction: Direction,
    /// How long.
    pub period: Period,
}

/// The side of a [`RelativeWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From one period before the run's time up to it.
    Last,
    /// From the run's time up to one period after it.
    Next,
}

impl FromStr for RelativeWindow {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (direction, rest) = s.trim().split_once(char::is_whitespace).ok_or_else(|| {
            format!("`{s}` is not a window: write `last <n> <unit>` or `next <n> <unit>`")
        })?;
        let direction = match direction.to_ascii_lowercase().as_str() {
            "last" => Direction::Last,
            "next" => Direction::Next,
            other => return Err(format!("`{other}` is not `last` or `next`")),
        };
        let period = rest.parse::<Period>().map_err(|e| match e {
            PeriodError::Unit(u) => {
                format!("`{u}` is not a unit: use days, weeks, months or years")
            }
            other => format!("`{s}` is not a window ({other}): write `last <n> <unit>`"),
        })?;
        Ok(RelativeWindow { direction, period })
    }
}

impl RelativeWindow {
    /// The window `[start, end]` around `now`, or `None` when it leaves chrono's range.
    pub fn bounds(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match self.direction {
            Direction::Last => Some((self.period.before(now)?, now)),
            Direction::Next => Some((now, self.period.after(now)?)),
        }
    }
}

/// Every problem of `segments` (the `[[segments]]` array), each naming its dotted key
/// and the fix: names, rules, operators, values, windows, references to unknown
/// segments and cycles of references.
pub fn validate_segments(segments: &[SegmentSpec]) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, s) in segments.iter().enumerate() {
        let key = format!("segments.{i}.name");
        if s.name.trim().is_empty() {
            errors.push(ConfigError::new(
                key,
                "the segment name is empty",
                "set `name = \"HighValue\"`",
            ));
        } else if !valid_entity_name(&s.name) {
            errors.push(ConfigError::new(
                key,
                format!("`{}` cannot name the segment's table", s.name),
                "use at most 64 letters, digits, `_` or `-`, starting with a letter",
            ));
        } else if s.name.eq_ignore_ascii_case(MEMBERSHIP_ENTITY)
            || s.name.eq_ignore_ascii_case(CUSTOMER_TABLE)
        {
            errors.push(ConfigError::new(
                key,
                format!("`{}` is a reserved table name", s.name),
                "choose another name",
            ));
        } else if let Some(first) = names.insert(s.name.to_ascii_lowercase(), i) {
            errors.push(ConfigError::new(
                key,
                format!(
                    "segment `{}` is declared twice (first as segments.{first})",
                    s.name
                ),
                "rename one of them",
            ));
        }
    }
    let known: BTreeSet<&str> = segments.iter().map(|s| s.name.as_str()).collect();
    for (i, s) in segments.iter().enumerate() {
        if s.rules.is_empty() {
            errors.push(ConfigError::new(
                format!("segments.{i}.rules"),
                format!("segment `{}` has no rules", s.name),
                "add a `[[segments.rules]]` with a `condition`",
            ));
        }
        for (j, rule) in s.rules.iter().enumerate() {
            check_node(
                &rule.condition,
                &format!("segments.{i}.rules.{j}.condition"),
                &known,
                &mut errors,
            );
        }
        let mut seen = BTreeSet::new();
        for (k, c) in s.projected_columns.iter().enumerate() {
            let key = format!("segments.{i}.projected_columns.{k}");
            if c.trim().is_empty() {
                errors.push(ConfigError::new(
                    key,
                    "the column name is empty",
                    "name a column of `Customer`",
                ));
            } else if !seen.insert(c.as_str()) {
                errors.push(ConfigError::new(
                    key,
                    format!("column `{c}` is listed twice"),
                    "remove the repetition",
                ));
            }
        }
    }
    errors.extend(cycles(segments));
    errors
}

/// The order in which `segments` can be evaluated: every segment after those it refers
/// to, otherwise in declaration order. Segments in a cycle or referring to unknown
/// segments come last ([`validate_segments`] reports them).
pub fn evaluation_order(segments: &[SegmentSpec]) -> Vec<usize> {
    let index: HashMap<&str, usize> = segments
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut done = vec![false; segments.len()];
    let mut order = Vec::with_capacity(segments.len());
    loop {
        let before = order.len();
        for (i, s) in segments.iter().enumerate() {
            if done[i] {
                continue;
            }
            let ready = s
                .references()
                .iter()
                .all(|r| index.get(r).is_some_and(|&j| done[j] && j != i));
            if ready {
                done[i] = true;
                order.push(i);
            }
        }
        if order.len() == before {
            break;
        }
    }
    order.extend((0..segments.len()).filter(|&i| !done[i]));
    order
}

fn check_node(
    node: &ConditionNode,
    key: &str,
    known: &BTreeSet<&str>,
    errors: &mut Vec<ConfigError>,
) {
    match node {
        ConditionNode::All { all: children } | ConditionNode::Any { any: children } => {
            let word = if matches!(node, ConditionNode::All { .. }) {
                "all"
            } else {
                "any"
            };
            if children.is_empty() {
                errors.push(ConfigError::new(
                    format!("{key}.{word}"),
                    format!("`{word}` has no conditions"),
                    "list at least one condition, or remove the group",
                ));
            }
            for (k, c) in children.iter().enumerate() {
                check_node(c, &format!("{key}.{word}.{k}"), known, errors);
            }
        }
        ConditionNode::Segment { segment } => {
            if !known.contains(segment.as_str()) {
                errors.push(ConfigError::new(
                    format!("{key}.segment"),
                    format!("no segment is named `{segment}`"),
                    format!(
                        "refer to one of the declared segments ({})",
                        known.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        ConditionNode::Leaf(c) => check_condition(c, key, errors),
    }
}

fn check_condition(c: &Condition, key: &str, errors: &mut Vec<ConfigError>) {
    if c.table.trim().is_empty() {
        errors.push(ConfigError::new(
            format!("{key}.table"),
            "the table name is empty",
            "name `Customer`, `Customer_Measure`, `UnifiedActivity` or leave `table` out",
        ));
    }
    if c.column.trim().is_empty() {
        errors.push(ConfigError::new(
            format!("{key}.column"),
            "the column name is empty",
            format!("name a column of `{}`", c.table),
        ));
    }
    if let ConditionOp::Unknown(op) = &c.op {
        errors.push(ConfigError::new(
            format!("{key}.op"),
            format!("`{op}` is not an operator"),
            format!("use one of {}", OPERATORS.join(", ")),
        ));
        return;
    }
    let vkey = format!("{key}.value");
    let op = c.op.as_str();
    let missing = |what: &str| {
        ConfigError::new(
            vkey.clone(),
            format!("`{op}` needs a value"),
            format!("set `value` to {what}"),
        )
    };
    match (c.op.arity(), &c.value) {
        (Arity::None, None) => {}
        (Arity::None, Some(_)) => errors.push(ConfigError::new(
            vkey,
            format!("`{op}` takes no value"),
            "remove `value`",
        )),
        (Arity::Scalar, None) => errors.push(missing("a text, number or boolean")),
        (Arity::Scalar, Some(ConditionValue::List(_))) => errors.push(ConfigError::new(
            vkey,
            format!("`{op}` compares with one value, not a list"),
            "use `in` for a list, or give one value",
        )),
        (Arity::Scalar, Some(_)) => {}
        (Arity::List, Some(ConditionValue::List(items))) => {
            if items.is_empty() {
                errors.push(ConfigError::new(
                    vkey,
                    "the list is empty",
                    "list at least one value",
                ));
            } else if items.iter().any(|v| matches!(v, ConditionValue::List(_))) {
                errors.push(ConfigError::new(
                    vkey,
                    "the list holds a list",
                    "list plain values",
                ));
            }
        }
        (Arity::List, _) => errors.push(ConfigError::new(
            vkey,
            format!("`{op}` needs a list of values"),
            "set `value = [\"a\", \"b\"]`",
        )),
        (Arity::Text, Some(ConditionValue::Text(_))) => {}
        (Arity::Text, _) => errors.push(missing("a text, e.g. `\"gmail\"`")),
        (Arity::Date, Some(ConditionValue::Text(t))) => {
            if parse_instant(t).is_none() {
                errors.push(ConfigError::new(
                    vkey,
                    format!("`{t}` is not a date or time"),
                    "write `2024-05-01` or `2024-05-01T08:00:00Z`",
                ));
            }
        }
        (Arity::Date, _) => errors.push(missing("a date, e.g. `\"2024-05-01\"`")),
        (Arity::Window, Some(ConditionValue::Text(t))) => {
            if let Err(e) = t.parse::<RelativeWindow>() {
                errors.push(ConfigError::new(
                    vkey,
                    e,
                    "write `last 30 days` or `next 2 weeks` (days, weeks, months or years)",
                ));
            }
        }
        (Arity::Window, _) => errors.push(missing("a window, e.g. `\"last 30 days\"`")),
    }
}

fn cycles(segments: &[SegmentSpec]) -> Vec<ConfigError> {
    let index: HashMap<&str, usize> = segments
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let edges: Vec<Vec<usize>> = segments
        .iter()
        .map(|s| {
            s.references()
                .iter()
                .filter_map(|r| index.get(r).copied())
                .collect()
        })
        .collect();
    // Depth-first search; a back edge closes a cycle, reported once by its member set.
    let mut state = vec![0u8; segments.len()]; // 0 new, 1 on the stack, 2 done
    let mut reported: BTreeSet<BTreeSet<usize>> = BTreeSet::new();
    let mut errors = Vec::new();
    fn visit(
        at: usize,
        edges: &[Vec<usize>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
        found: &mut Vec<Vec<usize>>,
    ) {
        state[at] = 1;
        stack.push(at);
        for &next in &edges[at] {
            match state[next] {
                0 => visit(next, edges, state, stack, found),
                1 => {
                    if let Some(p) = stack.iter().position(|&n| n == next) {
                        found.push(stack[p..].to_vec());
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state[at] = 2;
    }
    let mut found = Vec::new();
    for start in 0..segments.len() {
        if state[start] == 0 {
            visit(start, &edges, &mut state, &mut Vec::new(), &mut found);
        }
    }
    for cycle in found {
        if !reported.insert(cycle.iter().copied().collect()) {
            continue;
        }
        let mut path: Vec<&str> = cycle.iter().map(|&i| segments[i].name.as_str()).collect();
        path.push(&segments[cycle[0]].name);
        errors.push(ConfigError::new(
            format!("segments.{}.rules", cycle[0]),
            format!(
                "segments refer to each other in a cycle: {}",
                path.join(" -> ")
            ),
            "remove one of the `segment = ...` conditions of the cycle",
        ));
    }
    errors
}

pub use crate::names::is_entity_name as valid_entity_name;

/// A quick-segment condition that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("condition does not parse at character {position}: {message}")]
pub struct ParseError {
    /// 0-based character offset of the problem.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

/// Parse quick-segment text into a condition tree: `col op value` with `=`, `!=`,
/// `<`, `<=`, `>`, `>=`, `in (..)`, `not in (..)`, `contains`, `starts_with`,
/// `is empty`, `is not empty`; `and`, `or` (`and` binds tighter) and parentheses;
/// values are quoted text (`'FR'` or `"FR"`, a doubled quote inside is one quote),
/// numbers or `true`/`false`; `Table.Column` picks a table (default `Customer`).
///
/// ```
/// use lakecdp_core::segment::{parse_condition, ConditionNode};
/// let node = parse_condition("Country = 'FR' and Age >= 30").unwrap();
/// assert!(matches!(node, ConditionNode::All { .. }));
/// ```
pub fn parse_condition(text: &str) -> Result<ConditionNode, ParseError> {
    let tokens = tokenize(text)?;
    let mut p = Parser {
        tokens,
        at: 0,
        end: text.chars().count(),
        depth: 0,
    };
    let node = p.or()?;
    if let Some((pos, t)) = p.tokens.get(p.at) {
        return Err(ParseError {
            position: *pos,
            message: format!("unexpected {t}"),
        });
    }
    Ok(node)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Text(String),
    Number(String),
    Symbol(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "`{s}`"),
            Token::Text(s) => write!(f, "text {s:?}"),
            Token::Number(s) => write!(f, "number {s}"),
            Token::Symbol(s) => write!(f, "`{s}`"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(ParseError {
                            position: start,
                            message: "the quoted text is not closed".into(),
                        })
                    }
                    Some(&q) if q == c => {
                        if chars.get(i + 1) == Some(&c) {
                            s.push(c);
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            out.push((start, Token::Text(s)));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            i += 1;
            while chars
                .get(i)
                .is_some_and(|d| d.is_ascii_digit() || *d == '.')
            {
                i += 1;
            }
            out.push((start, Token::Number(chars[start..i].iter().collect())));
        } else if c.is_alphabetic() || c == '_' {
            while chars
                .get(i)
                .is_some_and(|d| d.is_alphanumeric() || *d == '_' || *d == '.')
            {
                i += 1;
            }
            out.push((start, Token::Ident(chars[start..i].iter().collect())));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let symbol = match two.as_str() {
                "<=" => Some("<="),
                ">=" => Some(">="),
                "!=" => Some("!="),
                "<>" => Some("!="),
                "==" => Some("="),
                _ => None,
            };
            if let Some(s) = symbol {
                i += 2;
                out.push((start, Token::Symbol(s)));
                continue;
            }
            let s = match c {
                '=' => "=",
                '<' => "<",
                '>' => ">",
                '(' => "(",
                ')' => ")",
                ',' => ",",
                other => {
                    return Err(ParseError {
                        position: start,
                        message: format!("`{other}` is not allowed here"),
                    })
                }
            };
            i += 1;
            out.push((start, Token::Symbol(s)));
        }
    }
    Ok(out)
}

/// How deeply parentheses may nest: the parser recurses once per level, and a condition
/// can come from anyone who may preview a segment.
pub const MAX_NESTING: usize = 64;

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(p, _)| *p)
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            position: self.position(),
            message: message.into(),
        }
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).map(|(_, t)| t.clone());
        self.at += 1;
        t
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Ident(s)) if s.eq_ignore_ascii_case(word)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn symbol(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Token::Symbol(t)) if *t == s) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<ConditionNode, ParseError> {
        let mut parts = vec![self.and()?];
        while self.keyword("or") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            ConditionNode::Any { any: parts }
        })
    }

    fn and(&mut self) -> Result<ConditionNode, ParseError> {
        let mut parts = vec![self.primary()?];
        while self.keyword("and") {
            parts.push(self.primary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            ConditionNode::All { all: parts }
        })
    }

    fn primary(&mut self) -> Result<ConditionNode, ParseError> {
        if self.symbol("(") {
            if self.depth >= MAX_NESTING {
                self.at -= 1;
                return Err(self.error(format!(
                    "parentheses are nested more than {MAX_NESTING} deep: write the condition flatter"
                )));
            }
            self.depth += 1;
            let node = self.or()?;
            self.depth -= 1;
            if !self.symbol(")") {
                return Err(self.error("expected `)`"));
            }
            return Ok(node);
        }
        let name = match self.next() {
            Some(Token::Ident(name)) => name,
            Some(other) => {
                self.at -= 1;
                return Err(self.error(format!("expected a column, found {other}")));
            }
            None => return Err(self.error("expected a column")),
        };
        let (table, column) = match name.split_once('.') {
            Some((t, c)) if !t.is_empty() && !c.is_empty() && !c.contains('.') => {
                (t.to_string(), c.to_string())
            }
            Some(_) => {
                self.at -= 1;
                return Err(self.error(format!("`{name}` is not `Column` or `Table.Column`")));
            }
            None => (CUSTOMER_TABLE.to_string(), name.clone()),
        };
        let leaf = |op, value| {
            Ok(ConditionNode::Leaf(Condition {
                table: table.clone(),
                column: column.clone(),
                op,
                value,
            }))
        };
        if self.keyword("is") {
            let negated = self.keyword("not");
            if !self.keyword("empty") {
                return Err(self.error("expected `empty` after `is`"));
            }
            let op = if negated {
                ConditionOp::IsNotEmpty
            } else {
                ConditionOp::IsEmpty
            };
            return leaf(op, None);
        }
        if self.keyword("not") {
            if !self.keyword("in") {
                return Err(self.error("expected `in` after `not`"));
            }
            return leaf(ConditionOp::NotIn, Some(self.list()?));
        }
        if self.keyword("in") {
            return leaf(ConditionOp::In, Some(self.list()?));
        }
        for (word, op) in [
            ("contains", ConditionOp::Contains),
            ("starts_with", ConditionOp::StartsWith),
            ("before", ConditionOp::Before),
            ("after", ConditionOp::After),
            ("within", ConditionOp::Within),
        ] {
            if self.keyword(word) {
                return leaf(op, Some(self.value()?));
            }
        }
        let op = match self.next() {
            Some(Token::Symbol("=")) => ConditionOp::Eq,
            Some(Token::Symbol("!=")) => ConditionOp::Ne,
            Some(Token::Symbol("<")) => ConditionOp::Lt,
            Some(Token::Symbol("<=")) => ConditionOp::Le,
            Some(Token::Symbol(">")) => ConditionOp::Gt,
            Some(Token::Symbol(">=")) => ConditionOp::Ge,
            other => {
                if other.is_some() {
                    self.at -= 1;
                }
                return Err(self.error(format!(
                    "expected an operator after `{name}` (=, !=, <, <=, >, >=, in, not in, contains, starts_with, is empty, is not empty)"
                )));
            }
        };
        leaf(op, Some(self.value()?))
    }

    fn list(&mut self) -> Result<ConditionValue, ParseError> {
        if !self.symbol("(") {
            return Err(self.error("expected `(` to open the list"));
        }
        let mut items = vec![self.value()?];
        while self.symbol(",") {
            items.push(self.value()?);
        }
        if !self.symbol(")") {
            return Err(self.error("expected `,` or `)` in the list"));
        }
        Ok(ConditionValue::List(items))
    }

    fn value(&mut self) -> Result<ConditionValue, ParseError> {
        let position = self.position();
        match self.next() {
            Some(Token::Text(s)) => Ok(ConditionValue::Text(s)),
            Some(Token::Number(n)) => {
                if let Ok(i) = n.parse::<i64>() {
                    Ok(ConditionValue::Int(i))
                } else {
                    n.parse::<f64>()
                        .map(ConditionValue::Float)
                        .map_err(|_| ParseError {
                            position,
                            message: format!("`{n}` is not a number"),
                        })
                }
            }
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("true") => {
                Ok(ConditionValue::Bool(true))
            }
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("false") => {
                Ok(ConditionValue::Bool(false))
            }
            Some(other) => Err(ParseError {
                position,
                message: format!("expected a value (quoted text or a number), found {other}"),
            }),
            None => Err(ParseError {
                position,
                message: "expected a value".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(
        table: &str,
        column: &str,
        op: ConditionOp,
        value: Option<ConditionValue>,
    ) -> ConditionNode {
        ConditionNode::Leaf(Condition {
            table: table.into(),
            column: column.into(),
            op,
            value,
        })
    }

    fn spec(text: &str) -> Vec<SegmentSpec> {
        #[derive(Deserialize)]
        struct Wrapper {
            segments: Vec<SegmentSpec>,
        }
        toml::from_str::<Wrapper>(text).unwrap().segments
    }

    #[test]
    fn the_project_file_shape_parses() {
        let s = spec(
            r#"
[[segments]]
name = "FrenchBuyers"
kind = "static"
projected_columns = ["Email"]

[[segments.rules]]
condition = { all = [
  { column = "Country", op = "eq", value = "FR" },
  { any = [
    { table = "UnifiedActivity", column = "Amount", op = "gt", value = 100 },
    { segment = "Vip" },
  ] },
] }

[[segments.rules]]
operator = "except"
condition = { column = "Email", op = "is_empty" }

[[segments]]
name = "Vip"
rules = [{ condition = { table = "Customer_Measure", column = "Spend", op = "in", value = [1, 2.5, "x"] } }]
"#,
        );
        assert_eq!(s[0].kind, SegmentKind::Static);
        assert_eq!(s[1].kind, SegmentKind::Dynamic);
        assert_eq!(s[0].rules[1].operator, SetOperator::Except);
        assert_eq!(s[0].references(), vec!["Vip"]);
        let ConditionNode::All { all } = &s[0].rules[0].condition else {
            panic!("all")
        };
        assert_eq!(
            all[0],
            leaf(
                "Customer",
                "Country",
                ConditionOp::Eq,
                Some(ConditionValue::text("FR"))
            )
        );
        assert_eq!(
            s[1].rules[0].condition,
            leaf(
                "Customer_Measure",
                "Spend",
                ConditionOp::In,
                Some(ConditionValue::List(vec![
                    ConditionValue::Int(1),
                    ConditionValue::Float(2.5),
                    ConditionValue::text("x")
                ]))
            )
        );
        assert!(
            validate_segments(&s).is_empty(),
            "{:?}",
            validate_segments(&s)
        );
        assert_eq!(evaluation_order(&s), vec![1, 0]);
        // round trip
        let text = toml::to_string(&serde_json::json!({ "segments": s })).unwrap();
        assert_eq!(spec(&text), s);
    }

    #[test]
    fn unknown_fields_are_refused() {
        #[derive(Debug, Deserialize)]
        struct Wrapper {
            #[allow(dead_code)]
            segments: Vec<SegmentSpec>,
        }
        assert!(
            toml::from_str::<Wrapper>("[[segments]]\nname = \"A\"\ncolour = 1\nrules = []\n")
                .is_err()
        );
        assert!(toml::from_str::<Wrapper>(
            "[[segments]]\nname = \"A\"\nrules = [{ condition = { column = \"c\", op = \"eq\", value = 1, extra = 2 } }]\n"
        )
        .is_err());
    }

    #[test]
    fn windows_parse_and_bound() {
        let w: RelativeWindow = "last 30 days".parse().unwrap();
        let now = parse_instant("2024-03-31T12:00:00Z").unwrap();
        assert_eq!(
            w.bounds(now).unwrap(),
            (parse_instant("2024-03-01T12:00:00Z").unwrap(), now)
        );
        let w: RelativeWindow = "Next 1 Month".parse().unwrap();
        assert_eq!(
            w.bounds(now).unwrap().1,
            parse_instant("2024-04-30T12:00:00Z").unwrap()
        );
        let w: RelativeWindow = "next 2 weeks".parse().unwrap();
        assert_eq!(w.period.unit, crate::period::PeriodUnit::Weeks);
        assert!("last 3 fortnights".parse::<RelativeWindow>().is_err());
        assert!("last days".parse::<RelativeWindow>().is_err());
        assert!("previous 3 days".parse::<RelativeWindow>().is_err());
        assert_eq!(
            parse_instant("2024-05-01"),
            parse_instant("2024-05-01T00:00:00Z")
        );
    }

    #[test]
    fn the_parser_builds_trees() {
        assert_eq!(
            parse_condition("Country = 'FR' and Age >= 30").unwrap(),
            ConditionNode::All {
                all: vec![
                    leaf(
                        "Customer",
                        "Country",
                        ConditionOp::Eq,
                        Some(ConditionValue::text("FR"))
                    ),
                    leaf(
                        "Customer",
                        "Age",
                        ConditionOp::Ge,
                        Some(ConditionValue::Int(30))
                    ),
                ]
            }
        );
        // and binds tighter than or; parentheses group
        assert_eq!(
            parse_condition("a = 1 or b = 2 and c = 3").unwrap(),
            ConditionNode::Any {
                any: vec![
                    leaf(
                        "Customer",
                        "a",
                        ConditionOp::Eq,
                        Some(ConditionValue::Int(1))
                    ),
                    ConditionNode::All {
                        all: vec![
                            leaf(
                                "Customer",
                                "b",
                                ConditionOp::Eq,
                                Some(ConditionValue::Int(2))
                            ),
                            leaf(
                                "Customer",
                                "c",
                                ConditionOp::Eq,
                                Some(ConditionValue::Int(3))
                            ),
                        ]
                    }
                ]
            }
        );
        assert_eq!(
            parse_condition("(a = 1 OR b != -2.5) AND UnifiedActivity.Type in ('x', \"y\")")
                .unwrap(),
            ConditionNode::All {
                all: vec![
                    ConditionNode::Any {
                        any: vec![
                            leaf(
                                "Customer",
                                "a",
                                ConditionOp::Eq,
                                Some(ConditionValue::Int(1))
                            ),
                            leaf(
                                "Customer",
                                "b",
                                ConditionOp::Ne,
                                Some(ConditionValue::Float(-2.5))
                            ),
                        ]
                    },
                    leaf(
                        "UnifiedActivity",
                        "Type",
                        ConditionOp::In,
                        Some(ConditionValue::List(vec![
                            ConditionValue::text("x"),
                            ConditionValue::text("y")
                        ]))
                    ),
                ]
            }
        );
        assert_eq!(
            parse_condition("Email is not empty and Phone is empty").unwrap(),
            ConditionNode::All {
                all: vec![
                    leaf("Customer", "Email", ConditionOp::IsNotEmpty, None),
                    leaf("Customer", "Phone", ConditionOp::IsEmpty, None),
                ]
            }
        );
        assert_eq!(
            parse_condition("Name contains 'O''Brien' and x not in (1) and ok = true").unwrap(),
            ConditionNode::All {
                all: vec![
                    leaf(
                        "Customer",
                        "Name",
                        ConditionOp::Contains,
                        Some(ConditionValue::text("O'Brien"))
                    ),
                    leaf(
                        "Customer",
                        "x",
                        ConditionOp::NotIn,
                        Some(ConditionValue::List(vec![ConditionValue::Int(1)]))
                    ),
                    leaf(
                        "Customer",
                        "ok",
                        ConditionOp::Eq,
                        Some(ConditionValue::Bool(true))
                    ),
                ]
            }
        );
        // a hostile value stays one text value
        assert_eq!(
            parse_condition("Country = \"x' OR '1'='1\"").unwrap(),
            leaf(
                "Customer",
                "Country",
                ConditionOp::Eq,
                Some(ConditionValue::text("x' OR '1'='1"))
            )
        );
    }

    #[test]
    fn the_parser_says_where_it_fails() {
        for (text, position) in [
            ("Country = ", 10),
            ("Country 'FR'", 8),
            ("(a = 1", 6),
            ("a = 'open", 4),
            ("a = 1 b = 2", 6),
            ("a in 1", 5),
            ("a = 1; drop", 5),
            ("a.b.c = 1", 0),
        ] {
            let e = parse_condition(text).unwrap_err();
            assert_eq!(e.position, position, "{text}: {e}");
        }
    }

    #[test]
    fn validation_reports_every_problem_with_its_key() {
        let c = |column: &str, op: &str, value: Option<ConditionValue>| {
            leaf("Customer", column, op.parse().unwrap(), value)
        };
        let seg = |name: &str, conditions: Vec<ConditionNode>| SegmentSpec {
            name: name.into(),
            description: None,
            kind: SegmentKind::Dynamic,
            rules: conditions
                .into_iter()
                .map(|condition| SegmentRule {
                    operator: SetOperator::Union,
                    condition,
                })
                .collect(),
            projected_columns: vec![],
        };
        let specs = vec![
            seg("", vec![c("a", "eq", Some(ConditionValue::Int(1)))]),
            seg(
                "Good",
                vec![
                    c("", "eq", Some(ConditionValue::Int(1))),
                    c("a", "like", Some(ConditionValue::Int(1))),
                    c("a", "eq", None),
                    c(
                        "a",
                        "within",
                        Some(ConditionValue::text("last 3 fortnights")),
                    ),
                    c("a", "in", Some(ConditionValue::Int(1))),
                    c("a", "is_empty", Some(ConditionValue::Int(1))),
                    c("a", "before", Some(ConditionValue::text("soon"))),
                    ConditionNode::All { all: vec![] },
                    ConditionNode::Segment {
                        segment: "Nope".into(),
                    },
                ],
            ),
            seg("good", vec![c("a", "eq", Some(ConditionValue::Int(1)))]),
            seg("Bad Name", vec![]),
            seg(
                "A",
                vec![ConditionNode::Segment {
                    segment: "B".into(),
                }],
            ),
            seg(
                "B",
                vec![ConditionNode::Any {
                    any: vec![ConditionNode::Segment {
                        segment: "C".into(),
                    }],
                }],
            ),
            seg(
                "C",
                vec![ConditionNode::Segment {
                    segment: "A".into(),
                }],
            ),
            seg("SegmentMembership", vec![c("a", "is_empty", None)]),
        ];
        let errors = validate_segments(&specs);
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        for key in [
            "segments.0.name",
            "segments.1.rules.0.condition.column",
            "segments.1.rules.1.condition.op",
            "segments.1.rules.2.condition.value",
            "segments.1.rules.3.condition.value",
            "segments.1.rules.4.condition.value",
            "segments.1.rules.5.condition.value",
            "segments.1.rules.6.condition.value",
            "segments.1.rules.7.condition.all",
            "segments.1.rules.8.condition.segment",
            "segments.2.name",
            "segments.3.name",
            "segments.3.rules",
            "segments.4.rules",
            "segments.7.name",
        ] {
            assert!(keys.contains(&key), "{key} missing from {errors:#?}");
        }
        assert_eq!(errors.len(), 15, "{errors:#?}");
        let cycle = errors.iter().find(|e| e.key == "segments.4.rules").unwrap();
        assert!(cycle.message.contains("A -> B -> C -> A"), "{cycle}");
        let op = errors
            .iter()
            .find(|e| e.key == "segments.1.rules.1.condition.op")
            .unwrap();
        assert!(op.fix.contains("starts_with"), "{op}");
        let window = errors
            .iter()
            .find(|e| e.key == "segments.1.rules.3.condition.value")
            .unwrap();
        assert!(window.message.contains("fortnight"), "{window}");
        // the cycle's members come last in the evaluation order
        assert_eq!(&evaluation_order(&specs)[5..], &[4, 5, 6]);
    }

    #[test]
    fn a_self_reference_is_a_cycle() {
        let specs = vec![SegmentSpec {
            name: "Me".into(),
            description: None,
            kind: SegmentKind::Dynamic,
            rules: vec![SegmentRule {
                operator: SetOperator::Union,
                condition: ConditionNode::Segment {
                    segment: "Me".into(),
                },
            }],
            projected_columns: vec![],
        }];
        let errors = validate_segments(&specs);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("Me -> Me"));
    }
}
