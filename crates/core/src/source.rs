//! Data sources as the project file declares them: a source has a name and tables; a
//! table has a location, a format with its options, an optional declared schema, a
//! primary key and an optional last-updated column.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::storage::{s3_credential_errors, Credentials};

/// Default share of corrupt rows above which a table's load fails instead of publishing.
pub const DEFAULT_MAX_CORRUPT_SHARE: f64 = 0.1;

/// A `[[sources]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Name; also its folder `DataIngestion/<name>`.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Share of corrupt rows (0..=1) above which a table fails (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_corrupt_share: Option<f64>,
    /// Credentials for tables whose location is an `s3://`, `abfss://` or `az://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<SourceAccess>,
    /// Its tables.
    pub tables: Vec<TableSpec>,
}

/// How a source reaches remote table locations; secrets are references, as for
/// environments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceAccess {
    /// S3 or an S3-compatible store (the bucket comes from the URL).
    S3 {
        /// Region of the bucket.
        region: String,
        /// Endpoint override for S3-compatible stores.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        /// Access key id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access_key_id: Option<crate::SecretRef>,
        /// Secret access key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret_access_key: Option<crate::SecretRef>,
        /// Where credentials come from when no key is declared: the host's (`ambient`)
        /// or none (`anonymous`). By default only the declared keys are used.
        #[serde(default, skip_serializing_if = "Credentials::is_declared")]
        credentials: Credentials,
    },
    /// Azure Blob / Data Lake Storage (account and container come from the URL; `az://`
    /// URLs need `account`).
    Adls {
        /// Storage account, for `az://container/path` URLs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
        /// Shared key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account_key: Option<crate::SecretRef>,
        /// SAS token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sas_token: Option<crate::SecretRef>,
        /// Blob endpoint override (private endpoint, emulator).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        /// The endpoint is the Azurite emulator.
        #[serde(default)]
        emulator: bool,
        /// Where credentials come from when neither a key nor a SAS token is declared:
        /// the host's (`ambient`: the `AZURE_*` variables and the managed identity) or none
        /// (`anonymous`, a public container). By default only the declared ones are used.
        #[serde(default, skip_serializing_if = "Credentials::is_declared")]
        credentials: Credentials,
    },
}

/// A `[[sources.tables]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// Name; the output entity is `<name>` in the source's CDM folder.
    pub name: String,
    /// A local path or glob (relative to the project folder), or an `s3://`,
    /// `abfss://` or `az://` URL.
    pub location: String,
    /// The file format.
    pub format: SourceFormat,
    /// Primary key column (required for unification and activities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
    /// Column holding when a row last changed (picks the winner among duplicate keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    /// CSV options (CSV only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<CsvOptions>,
    /// Entity to read (CDM folders only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Declared columns; inferred from a sample when absent. Declared types win.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema: Vec<ColumnSpec>,
    /// The location is a folder in the incremental layout: `FullData/` plus
    /// `IncrementalData/yyyy/mm/dd/hh/Upserts/` and `.../Deletes/`. Needs `primary_key`
    /// and `last_updated`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incremental: bool,
}

/// Source file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// Delimited text.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// JSON Lines (one object per line).
    Jsonl,
    /// A CDM folder (`model.json` or `*.manifest.cdm.json`) and one entity of it.
    Cdm,
    /// A Delta table.
    Delta,
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceFormat::Csv => "csv",
            SourceFormat::Parquet => "parquet",
            SourceFormat::Jsonl => "jsonl",
            SourceFormat::Cdm => "cdm",
            SourceFormat::Delta => "delta",
        })
    }
}

/// Text encodings of CSV files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// UTF-8 (a byte order mark is skipped).
    #[default]
    #[serde(rename = "utf-8", alias = "utf8", alias = "UTF-8")]
    Utf8,
    /// UTF-8 with a byte order mark.
    #[serde(rename = "utf-8-bom", alias = "UTF-8-BOM")]
    Utf8Bom,
    /// ISO 8859-1.
    #[serde(
        rename = "latin-1",
        alias = "latin1",
        alias = "iso-8859-1",
        alias = "ISO-8859-1"
    )]
    Latin1,
}

/// CSV options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// Field delimiter (one character).
    #[serde(default = "comma")]
    pub delimiter: String,
    /// The first line holds column names.
    #[serde(default = "yes")]
    pub header: bool,
    /// Quote character.
    #[serde(default = "dquote")]
    pub quote: String,
    /// Escape character inside quoted fields (default: the quote doubled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escape: Option<String>,
    /// Encoding.
    #[serde(default)]
    pub encoding: Encoding,
    /// Values that mean "no value".
    #[serde(default = "null_markers")]
    pub null_markers: Vec<String>,
    /// strftime format of date columns (default ISO 8601, `%Y-%m-%d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_format: Option<String>,
    /// strftime format of datetime columns (default ISO 8601 / RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datetime_format: Option<String>,
}

fn comma() -> String {
    ",".into()
}
fn dquote() -> String {
    "\"".into()
}
fn yes() -> bool {
    true
}
fn null_markers() -> Vec<String> {
    vec![String::new()]
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: comma(),
            header: true,
            quote: dquote(),
            escape: None,
            encoding: Encoding::Utf8,
            null_markers: null_markers(),
            date_format: None,
            datetime_format: None,
        }
    }
}

/// A declared column: `{ name = "BirthDate", type = "date" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Column name as in the source.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
}

/// Column types a project file can declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ColumnType {
    /// Text.
    String,
    /// 64-bit integer.
    Int64,
    /// 64-bit float.
    Double,
    /// true/false.
    Boolean,
    /// A calendar date.
    Date,
    /// A date and time without zone.
    DateTime,
    /// A date and time with zone (stored in UTC).
    DateTimeTz,
    /// A decimal with precision and scale.
    Decimal(u8, i8),
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::String => f.write_str("string"),
            ColumnType::Int64 => f.write_str("int64"),
            ColumnType::Double => f.write_str("double"),
            ColumnType::Boolean => f.write_str("boolean"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::DateTime => f.write_str("datetime"),
            ColumnType::DateTimeTz => f.write_str("datetime_tz"),
            ColumnType::Decimal(p, s) => write!(f, "decimal({p},{s})"),
        }
    }
}

impl FromStr for ColumnType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "string" | "text" => ColumnType::String,
            "int64" | "int" | "integer" | "bigint" => ColumnType::Int64,
            "double" | "float" => ColumnType::Double,
            "boolean" | "bool" => ColumnType::Boolean,
            "date" => ColumnType::Date,
            "datetime" | "timestamp" => ColumnType::DateTime,
            "datetime_tz" | "datetimeoffset" | "timestamptz" => ColumnType::DateTimeTz,
            "decimal" => ColumnType::Decimal(38, 18),
            other => {
                let inner = other
                    .strip_prefix("decimal(")
                    .and_then(|r| r.strip_suffix(')'));
                let parsed = inner.and_then(|i| {
                    let (p, s) = i.split_once(',')?;
                    Some((p.trim().parse::<u8>().ok()?, s.trim().parse::<i8>().ok()?))
                });
                match parsed {
                    Some((p, s)) if (1..=38).contains(&p) && s >= 0 && (s as u8) <= p => ColumnType::Decimal(p, s),
                    _ => {
                        return Err(format!(
                            "unknown column type `{s}` (expected string, int64, double, boolean, date, datetime, datetime_tz or decimal(p,s))"
                        ))
                    }
                }
            }
        })
    }
}

impl TryFrom<String> for ColumnType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ColumnType> for String {
    fn from(t: ColumnType) -> Self {
        t.to_string()
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl SourceSpec {
    /// Every problem of this source; `index` is its position in `[[sources]]`.
    pub fn validate(&self, index: usize) -> Vec<ConfigError> {
        let key = |k: &str| format!("sources.{index}.{k}");
        let mut errors = Vec::new();
        if !valid_name(&self.name) {
            errors.push(ConfigError::new(
                key("name"),
                format!("`{}` is not a valid source name", self.name),
                "start with a letter; use letters, digits, `_` and `-` (at most 64)",
            ));
        }
        if let Some(share) = self.max_corrupt_share {
            if !(0.0..=1.0).contains(&share) {
                errors.push(ConfigError::new(
                    key("max_corrupt_share"),
                    format!("{share} is not a share"),
                    "write a number from 0 to 1, e.g. 0.1 for 10%",
                ));
            }
        }
        match &self.access {
            Some(SourceAccess::S3 {
                access_key_id,
                secret_access_key,
                credentials,
                ..
            }) => errors.extend(s3_credential_errors(
                &key("access"),
                access_key_id.is_some(),
                secret_access_key.is_some(),
                false,
                *credentials,
            )),
            Some(SourceAccess::Adls {
                account_key,
                sas_token,
                credentials,
                ..
            }) => {
                let declared = account_key.is_some() || sas_token.is_some();
                match credentials {
                    Credentials::Declared if !declared => errors.push(ConfigError::new(
                        key("access.account_key"),
                        "neither an account key nor a SAS token is declared, and the host's own credentials are used only when the configuration asks for them",
                        "set `account_key = { env = \"VAR\" }` or `sas_token = { env = \"VAR\" }`; or `credentials = \"ambient\"` to use this host's Azure credentials (AZURE_* variables, managed identity) or `credentials = \"anonymous\"` for a public container",
                    )),
                    Credentials::Ambient | Credentials::Anonymous if declared => {
                        errors.push(ConfigError::new(
                            key("access.credentials"),
                            format!(
                                "`credentials = \"{}\"` is set beside a declared key or SAS token",
                                credentials.as_str()
                            ),
                            "keep one: remove `credentials` to use the declared key, or remove the key",
                        ))
                    }
                    Credentials::Ambient | Credentials::Anonymous | Credentials::Declared => {}
                }
            }
            None => {}
        }
        if self.tables.is_empty() {
            errors.push(ConfigError::new(
                key("tables"),
                "the source has no tables",
                "add a `[[sources.tables]]` with `name`, `location` and `format`",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (t, table) in self.tables.iter().enumerate() {
            let tkey = |k: &str| format!("sources.{index}.tables.{t}.{k}");
            if !valid_name(&table.name) {
                errors.push(ConfigError::new(
                    tkey("name"),
                    format!("`{}` is not a valid table name", table.name),
                    "start with a letter; use letters, digits, `_` and `-` (at most 64)",
                ));
            } else if !seen.insert(table.name.to_ascii_lowercase()) {
                errors.push(ConfigError::new(
                    tkey("name"),
                    format!(
                        "table `{}` appears twice in source `{}`",
                        table.name, self.name
                    ),
                    "give each table its own name",
                ));
            }
            if table.location.trim().is_empty() {
                errors.push(ConfigError::new(
                    tkey("location"),
                    "the location is empty",
                    "write a path, a glob like `data/*.csv`, or an s3:// / abfss:// URL",
                ));
            } else if let Some((scheme, _)) = table.location.split_once("://") {
                if !matches!(scheme, "s3" | "abfss" | "az" | "file") {
                    errors.push(ConfigError::new(
                        tkey("location"),
                        format!("`{scheme}://` locations are not supported"),
                        "use a local path, `s3://`, `abfss://` or `az://`",
                    ));
                }
            }
            if table.csv.is_some() && table.format != SourceFormat::Csv {
                errors.push(ConfigError::new(
                    tkey("csv"),
                    format!("CSV options on a `{}` table", table.format),
                    "remove the `csv` options or set `format = \"csv\"`",
                ));
            }
            if let Some(csv) = &table.csv {
                for (k, v) in [
                    ("delimiter", Some(&csv.delimiter)),
                    ("quote", Some(&csv.quote)),
                    ("escape", csv.escape.as_ref()),
                ] {
                    if let Some(v) = v {
                        if v.len() != 1 || !v.is_ascii() {
                            errors.push(ConfigError::new(
                                tkey(&format!("csv.{k}")),
                                format!("`{v}` is not one ASCII character"),
                                format!("write one character, e.g. `{k} = \";\"`"),
                            ));
                        }
                    }
                }
            }
            if (table.format == SourceFormat::Cdm) != table.entity.is_some() {
                errors.push(ConfigError::new(
                    tkey("entity"),
                    if table.format == SourceFormat::Cdm {
                        "a CDM folder table needs the entity to read"
                    } else {
                        "`entity` applies to CDM folder tables only"
                    },
                    "set `entity = \"<name in model.json>\"` with `format = \"cdm\"`, or remove it",
                ));
            }
            let mut cols = std::collections::HashSet::new();
            for (c, col) in table.schema.iter().enumerate() {
                if !cols.insert(col.name.to_ascii_lowercase()) {
                    errors.push(ConfigError::new(
                        tkey(&format!("schema.{c}.name")),
                        format!("column `{}` is declared twice", col.name),
                        "declare each column once",
                    ));
                }
            }
            for (k, col) in [
                ("primary_key", &table.primary_key),
                ("last_updated", &table.last_updated),
            ] {
                // Declarations may be partial (the rest is inferred), so whether the
                // column exists is checked against the files at load time.
                if col.as_deref().is_some_and(|c| c.trim().is_empty()) {
                    errors.push(ConfigError::new(
                        tkey(k),
                        "the column name is empty",
                        format!("name a column of the table, or remove `{k}`"),
                    ));
                }
            }
        }
        errors
    }

    /// The corrupt-share limit in force.
    pub fn corrupt_limit(&self) -> f64 {
        self.max_corrupt_share.unwrap_or(DEFAULT_MAX_CORRUPT_SHARE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_types_parse_and_print_back() {
        for t in [
            "string",
            "int64",
            "double",
            "boolean",
            "date",
            "datetime",
            "datetime_tz",
            "decimal(18,2)",
        ] {
            assert_eq!(t.parse::<ColumnType>().unwrap().to_string(), t);
        }
        assert_eq!(
            "Decimal(10, 3)".parse::<ColumnType>().unwrap(),
            ColumnType::Decimal(10, 3)
        );
        assert!("decimal(3,5)".parse::<ColumnType>().is_err());
        assert!("varchar"
            .parse::<ColumnType>()
            .unwrap_err()
            .contains("unknown column type"));
    }

    fn source(access: &str, format: &str, location: &str) -> SourceSpec {
        let text = format!(
            "name = \"Partner\"\naccess = {access}\n[[tables]]\nname = \"T\"\nlocation = \"{location}\"\nformat = \"{format}\"\n"
        );
        toml::from_str(&text).unwrap()
    }

    fn keys(s: &SourceSpec) -> Vec<String> {
        s.validate(0).into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn a_source_without_keys_needs_an_explicit_credentials_choice() {
        let s3 = |extra: &str| {
            source(
                &format!("{{ kind = \"s3\", region = \"eu-west-1\"{extra} }}"),
                "csv",
                "s3://partner/x/*.csv",
            )
        };
        let keyless = s3("");
        assert_eq!(keys(&keyless), ["sources.0.access.access_key_id"]);
        let message = keyless.validate(0)[0].to_string();
        assert!(
            message.contains("credentials = \"ambient\"")
                && message.contains("credentials = \"anonymous\""),
            "{message}"
        );
        assert!(keys(&s3(", credentials = \"ambient\"")).is_empty());
        assert!(keys(&s3(", credentials = \"anonymous\"")).is_empty());
        let keyed = ", access_key_id = { env = \"A\" }, secret_access_key = { env = \"B\" }";
        assert!(keys(&s3(keyed)).is_empty());
        assert_eq!(
            keys(&s3(&format!("{keyed}, credentials = \"ambient\""))),
            ["sources.0.access.credentials"]
        );

        let adls = |extra: &str, format: &str| {
            source(
                &format!("{{ kind = \"adls\"{extra} }}"),
                format,
                "abfss://c@a.dfs.core.windows.net/t",
            )
        };
        assert_eq!(keys(&adls("", "delta")), ["sources.0.access.account_key"]);
        assert!(keys(&adls(", credentials = \"ambient\"", "delta")).is_empty());
        assert!(keys(&adls(", sas_token = { env = \"S\" }", "csv")).is_empty());
        // files and Delta tables alike are read with the credentials the source chose
        assert!(keys(&adls(", credentials = \"anonymous\"", "csv")).is_empty());
        assert_eq!(
            keys(&adls(
                ", credentials = \"anonymous\", sas_token = { env = \"S\" }",
                "csv"
            )),
            ["sources.0.access.credentials"]
        );
    }
}
