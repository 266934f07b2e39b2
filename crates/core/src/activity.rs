//! Activities (`[[activities]]`): rows of a source table that tell what customers did
//! (orders, subscriptions, loyalty events, feedback), linked to unified profiles.
//!
//! An activity names its source table, the column that holds the key of a unified table's
//! record (resolved to a CustomerId through `AlternateKey`), its type, and the column
//! with its time. The activities process publishes `Activities/` with `UnifiedActivity`,
//! one entity per activity (its source rows with their CustomerId, for measures and
//! segments), and `UnmatchedActivity` (rows whose customer key matches no profile).

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::source::SourceSpec;
use crate::unify::UnificationSpec;

/// The activity types Customer Insights knows; any other name is a custom type.
pub const KNOWN_TYPES: [&str; 5] = [
    "SalesOrder",
    "SalesOrderLine",
    "Subscription",
    "Loyalty",
    "Feedback",
];

/// A unified table's record an activity row points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerLink {
    /// The unified table, `Source.Table` (one of `[[unification.tables]]`).
    pub table: String,
    /// The activity table's column that holds that table's primary key.
    pub column: String,
}

/// One `[[activities]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitySpec {
    /// The activity's name; its rows are published as an entity of this name.
    pub name: String,
    /// The source of the activity rows.
    pub source: String,
    /// The source's table.
    pub table: String,
    /// The column that identifies a row, stable across refreshes (default: the table's
    /// primary key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
    /// SalesOrder, SalesOrderLine, Subscription, Loyalty, Feedback or a custom name.
    #[serde(rename = "type")]
    pub activity_type: String,
    /// Where the customer is.
    pub customer: CustomerLink,
    /// The column with the activity's time (required).
    pub timestamp: String,
    /// A column shown as the activity's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A column shown as its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A column with a link to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl ActivitySpec {
    /// `Source.Table` of the activity rows.
    pub fn source_table(&self) -> String {
        format!("{}.{}", self.source, self.table)
    }
}

/// Every problem of the `[[activities]]` entries, each naming its key and the fix.
pub fn validate_activities(
    activities: &[ActivitySpec],
    sources: &[SourceSpec],
    unification: Option<&UnificationSpec>,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, a) in activities.iter().enumerate() {
        let key = |k: &str| format!("activities.{i}.{k}");
        if !crate::names::is_identifier(&a.name) {
            errors.push(ConfigError::new(
                key("name"),
                format!("`{}` cannot name an activity's table", a.name),
                "use letters, digits and `_`, starting with a letter (e.g. `Orders`)",
            ));
        } else if matches!(a.name.as_str(), "UnifiedActivity" | "UnmatchedActivity")
            || !names.insert(a.name.to_ascii_lowercase())
        {
            errors.push(ConfigError::new(
                key("name"),
                format!("the activity name `{}` is taken", a.name),
                "give each activity its own name",
            ));
        }
        if a.activity_type.trim().is_empty() {
            errors.push(ConfigError::new(
                key("type"),
                "the activity type is empty",
                format!("use one of {} or a custom name", KNOWN_TYPES.join(", ")),
            ));
        }
        let table = sources
            .iter()
            .find(|s| s.name == a.source)
            .and_then(|s| s.tables.iter().find(|t| t.name == a.table));
        match table {
            None => errors.push(ConfigError::new(
                key("table"),
                format!("no source table `{}`", a.source_table()),
                "name a `[[sources.tables]]` entry by its source and table names",
            )),
            Some(t) => {
                if a.primary_key.is_none() && t.primary_key.is_none() {
                    errors.push(ConfigError::new(
                        key("primary_key"),
                        format!("table `{}` declares no primary key", a.source_table()),
                        "set `primary_key` on the activity or on the source table",
                    ));
                }
                // columns are checked against the declared ones when there are any
                if !t.schema.is_empty() {
                    let mut used: Vec<(&str, &str)> = vec![
                        ("timestamp", a.timestamp.as_str()),
                        ("customer.column", a.customer.column.as_str()),
                    ];
                    for (k, v) in [
                        ("primary_key", &a.primary_key),
                        ("title", &a.title),
                        ("description", &a.description),
                        ("url", &a.url),
                    ] {
                        if let Some(v) = v {
                            used.push((k, v.as_str()));
                        }
                    }
                    for (k, column) in used {
                        if !t.schema.iter().any(|c| c.name == column) {
                            errors.push(ConfigError::new(
                                key(k),
                                format!("table `{}` has no column `{column}`", a.source_table()),
                                format!(
                                    "use one of its columns: {}",
                                    t.schema
                                        .iter()
                                        .map(|c| c.name.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ));
                        }
                    }
                }
            }
        }
        let unified = unification.map(|u| {
            u.tables
                .iter()
                .any(|t| format!("{}.{}", t.source, t.table) == a.customer.table)
        });
        match unified {
            None => errors.push(ConfigError::new(
                key("customer.table"),
                "activities link to unified profiles, and the project has no [unification]",
                "declare the customer tables in [unification]",
            )),
            Some(false) => errors.push(ConfigError::new(
                key("customer.table"),
                format!("`{}` is not a unified table", a.customer.table),
                "name one of the `[[unification.tables]]` as `Source.Table`",
            )),
            Some(true) => {}
        }
    }
    errors
}
