//! The `model.json` document of a CDM folder.
//!
//! Reading accepts documents written by other tools: fields this code does not know are
//! kept (and written back unchanged), and an invalid document gives an error naming the
//! path and the field. Writing produces what the CDM `model.json` schema defines.

use arrow::datatypes::DataType;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::types::{arrow_type_of, ArrowTypes, CdmDataType, ARROW_TYPE_ANNOTATION};
use crate::error::{Error, Result};

/// The file name of a CDM folder's metadata.
pub const MODEL_JSON: &str = "model.json";

/// A name/value annotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// Name.
    pub name: String,
    /// Value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The root of `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// The model (CDM folder) name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Always "1.0" for documents lakecdp writes.
    #[serde(default = "version")]
    pub version: String,
    /// Culture, e.g. `en-US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub culture: Option<String>,
    /// When the model last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_time: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    /// Entities.
    #[serde(default)]
    pub entities: Vec<Entity>,
    /// Fields other tools write (`referenceModels`, `relationships`, ...), kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn version() -> String {
    "1.0".into()
}

/// An entity (`$type` `LocalEntity` for lakecdp's tables).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// `LocalEntity` or, in other tools' documents, `ReferenceEntity`.
    #[serde(rename = "$type", default = "local_entity")]
    pub kind: String,
    /// Entity name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    /// Attributes (columns), in order.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    /// Data partitions.
    #[serde(default)]
    pub partitions: Vec<Partition>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn local_entity() -> String {
    "LocalEntity".into()
}

/// An attribute (column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    /// Column name.
    pub name: String,
    /// CDM data type.
    pub data_type: CdmDataType,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Annotations (lakecdp keeps the exact Arrow type here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Attribute {
    /// The exact Arrow type annotation, if present.
    pub fn arrow_type_annotation(&self) -> Option<&str> {
        self.annotations
            .iter()
            .find(|a| a.name == ARROW_TYPE_ANNOTATION)
            .and_then(|a| a.value.as_deref())
    }

    /// The Arrow type this attribute reads as: with [`ArrowTypes::Annotated`] (only for
    /// lakecdp's own lake) its exact annotated type, refused with
    /// [`Error::ArrowTypeAnnotation`] when too long or nested too deeply; otherwise the
    /// default of its CDM type (see [`super::types`]).
    pub fn arrow_type(&self, types: ArrowTypes) -> Result<DataType> {
        arrow_type_of(self.data_type, self.arrow_type_annotation(), types).map_err(|reason| {
            Error::ArrowTypeAnnotation {
                attribute: self.name.clone(),
                reason,
            }
        })
    }
}

/// A data partition of an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Partition {
    /// Partition name.
    pub name: String,
    /// Absolute URL (or, from other tools, a path relative to the folder).
    pub location: String,
    /// When the partition was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<String>,
    /// How to read it (CSV settings); absent for Parquet partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_format_settings: Option<FileFormatSettings>,
    /// Annotations (lakecdp marks Parquet partitions here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The partition annotation naming a partition's file format.
pub const FORMAT_ANNOTATION: &str = "lakecdp:fileFormat";

impl Partition {
    /// True when the partition is a Parquet file.
    pub fn is_parquet(&self) -> bool {
        let annotated = self
            .annotations
            .iter()
            .any(|a| a.name == FORMAT_ANNOTATION && a.value.as_deref() == Some("parquet"));
        let declared = self
            .file_format_settings
            .as_ref()
            .is_some_and(|f| f.kind == "ParquetFormatSettings");
        annotated
            || declared
            || (self.file_format_settings.is_none() && self.location.ends_with(".parquet"))
    }
}

/// `fileFormatSettings` of a CSV partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileFormatSettings {
    /// `CsvFormatSettings`.
    #[serde(rename = "$type")]
    pub kind: String,
    /// Whether the first line holds column names.
    #[serde(default)]
    pub column_headers: bool,
    /// Field delimiter.
    #[serde(default = "comma")]
    pub delimiter: String,
    /// `QuoteStyle.Csv` or `QuoteStyle.None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_style: Option<String>,
    /// `CsvStyle.QuoteAlways` or `CsvStyle.QuoteAfterDelimiter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_style: Option<String>,
    /// Encoding, `UTF-8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn comma() -> String {
    ",".into()
}

impl FileFormatSettings {
    /// The settings lakecdp writes: header row, comma, RFC 4180 quoting, UTF-8.
    pub fn csv() -> Self {
        Self {
            kind: "CsvFormatSettings".into(),
            column_headers: true,
            delimiter: ",".into(),
            quote_style: Some("QuoteStyle.Csv".into()),
            csv_style: Some("CsvStyle.QuoteAlways".into()),
            encoding: Some("UTF-8".into()),
            extra: Map::new(),
        }
    }

    /// The delimiter as one byte; `None` if it is not a single ASCII character.
    pub fn delimiter_byte(&self) -> Option<u8> {
        match self.delimiter.as_bytes() {
            [b] if b.is_ascii() => Some(*b),
            _ => None,
        }
    }
}

/// Timestamps in `model.json`: RFC 3339 with milliseconds and `Z`.
pub fn cdm_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Model {
    /// An empty model.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: None,
            version: version(),
            culture: Some("en-US".into()),
            modified_time: None,
            annotations: Vec::new(),
            entities: Vec::new(),
            extra: Map::new(),
        }
    }

    /// The entity with this name (case-insensitive, as CDM names are).
    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
    }

    /// Parse a document; `path` names it in errors.
    pub fn from_json(path: &str, bytes: &[u8]) -> Result<Self, crate::Error> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let model: Model = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            crate::Error::InvalidCdm {
                path: path.to_string(),
                message: if field == "." {
                    inner.to_string()
                } else {
                    format!("field `{field}`: {inner}")
                },
            }
        })?;
        model.check(path)?;
        Ok(model)
    }

    fn check(&self, path: &str) -> Result<(), crate::Error> {
        let invalid = |message: String| crate::Error::InvalidCdm {
            path: path.to_string(),
            message,
        };
        let mut seen = std::collections::HashSet::new();
        for (i, e) in self.entities.iter().enumerate() {
            if e.name.trim().is_empty() {
                return Err(invalid(format!(
                    "field `entities[{i}].name`: empty entity name"
                )));
            }
            if !seen.insert(e.name.to_ascii_lowercase()) {
                return Err(invalid(format!(
                    "field `entities[{i}].name`: entity `{}` appears twice",
                    e.name
                )));
            }
            for (j, a) in e.attributes.iter().enumerate() {
                if a.name.trim().is_empty() {
                    return Err(invalid(format!(
                        "field `entities[{i}].attributes[{j}].name`: empty attribute name"
                    )));
                }
            }
            for (j, p) in e.partitions.iter().enumerate() {
                if p.location.trim().is_empty() {
                    return Err(invalid(format!(
                        "field `entities[{i}].partitions[{j}].location`: empty location"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The document as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs and JSON values cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}
