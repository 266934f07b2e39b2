//! Arrow <-> CDM data types: the one mapping table.
//!
//! | Arrow                                         | CDM              | back to Arrow                  |
//! |-----------------------------------------------|------------------|--------------------------------|
//! | Utf8, LargeUtf8, Utf8View                     | `string`         | Utf8                           |
//! | Int8..Int64, UInt8..UInt32                    | `int64`          | Int64                          |
//! | UInt64                                        | `decimal`        | Decimal128(20, 0)              |
//! | Float16, Float32, Float64                     | `double`         | Float64                        |
//! | Decimal32/64/128/256(p, s)                    | `decimal`        | Decimal128(38, 18)             |
//! | Boolean                                       | `boolean`        | Boolean                        |
//! | Date32, Date64, Timestamp(_, None)            | `dateTime`       | Timestamp(Microsecond, None)   |
//! | Timestamp(_, Some(tz))                        | `dateTimeOffset` | Timestamp(Microsecond, "UTC")  |
//! | FixedSizeBinary(16)                           | `guid`           | Utf8                           |
//! | Struct, List, LargeList, Map                  | `json`           | Utf8 (JSON text)               |
//! | Binary, LargeBinary, others                   | `string`         | Utf8                           |
//!
//! The exact Arrow type is also kept in an attribute annotation
//! ([`ARROW_TYPE_ANNOTATION`]), so tables lakecdp writes read back with the very types
//! they were written with; other tools' files use the right-hand column.
//!
//! The annotation is read only from lakecdp's own lake ([`ArrowTypes::Annotated`]): a
//! `model.json` from anyone else (a partner's CDM folder) is read with
//! [`ArrowTypes::CdmOnly`], so its annotations are never parsed. Even in the lake, an
//! annotation is bounded before Arrow's parser (which recurses once per nesting level)
//! sees it: at most [`MAX_ARROW_TYPE_LEN`] bytes and [`MAX_ARROW_TYPE_DEPTH`] levels.

use std::fmt;
use std::str::FromStr;

use arrow::datatypes::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};

/// The name of the attribute annotation holding the exact Arrow type.
pub const ARROW_TYPE_ANNOTATION: &str = "lakecdp:arrowType";

/// The longest [`ARROW_TYPE_ANNOTATION`] read, in bytes.
pub const MAX_ARROW_TYPE_LEN: usize = 4096;

/// The deepest nesting (of brackets: `List(List(...))`) of an [`ARROW_TYPE_ANNOTATION`]
/// read.
pub const MAX_ARROW_TYPE_DEPTH: usize = 32;

/// Which Arrow types the attributes of a `model.json` read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrowTypes {
    /// The exact type of each attribute's [`ARROW_TYPE_ANNOTATION`] (bounded, see
    /// [`MAX_ARROW_TYPE_LEN`]), else the default of its CDM type. Only for documents
    /// lakecdp wrote: the process folders of its own lake.
    Annotated,
    /// The default Arrow type of each attribute's CDM type; annotations are not read.
    /// For documents of anyone else, such as a partner's CDM folder.
    CdmOnly,
}

/// The data types of a `model.json` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CdmDataType {
    /// `string`
    #[serde(rename = "string", alias = "unclassified")]
    String,
    /// `int64`
    #[serde(rename = "int64")]
    Int64,
    /// `double`
    #[serde(rename = "double")]
    Double,
    /// `dateTime`
    #[serde(rename = "dateTime")]
    DateTime,
    /// `dateTimeOffset`
    #[serde(rename = "dateTimeOffset")]
    DateTimeOffset,
    /// `decimal`
    #[serde(rename = "decimal")]
    Decimal,
    /// `boolean`
    #[serde(rename = "boolean")]
    Boolean,
    /// `guid` (written `guid`; `GUID` is accepted)
    #[serde(rename = "guid", alias = "GUID", alias = "Guid")]
    Guid,
    /// `json` (written `json`; `JSON` is accepted)
    #[serde(rename = "json", alias = "JSON", alias = "Json")]
    Json,
}

impl CdmDataType {
    /// The `model.json` spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            CdmDataType::String => "string",
            CdmDataType::Int64 => "int64",
            CdmDataType::Double => "double",
            CdmDataType::DateTime => "dateTime",
            CdmDataType::DateTimeOffset => "dateTimeOffset",
            CdmDataType::Decimal => "decimal",
            CdmDataType::Boolean => "boolean",
            CdmDataType::Guid => "guid",
            CdmDataType::Json => "json",
        }
    }

    /// The manifest (`*.cdm.json`) `dataFormat` spelling.
    pub fn data_format(&self) -> &'static str {
        match self {
            CdmDataType::String => "String",
            CdmDataType::Int64 => "Int64",
            CdmDataType::Double => "Double",
            CdmDataType::DateTime => "DateTime",
            CdmDataType::DateTimeOffset => "DateTimeOffset",
            CdmDataType::Decimal => "Decimal",
            CdmDataType::Boolean => "Boolean",
            CdmDataType::Guid => "Guid",
            CdmDataType::Json => "Json",
        }
    }
}

impl fmt::Display for CdmDataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CdmDataType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            CdmDataType::String,
            CdmDataType::Int64,
            CdmDataType::Double,
            CdmDataType::DateTime,
            CdmDataType::DateTimeOffset,
            CdmDataType::Decimal,
            CdmDataType::Boolean,
            CdmDataType::Guid,
            CdmDataType::Json,
        ];
        all.into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown CDM data type `{s}` (expected one of string, int64, double, dateTime, dateTimeOffset, decimal, boolean, guid, json)"))
    }
}

/// The CDM type of an Arrow type.
pub fn cdm_type_of(dt: &DataType) -> CdmDataType {
    use DataType::*;
    match dt {
        Utf8 | LargeUtf8 | Utf8View => CdmDataType::String,
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 => CdmDataType::Int64,
        UInt64 => CdmDataType::Decimal,
        Float16 | Float32 | Float64 => CdmDataType::Double,
        Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => CdmDataType::Decimal,
        Boolean => CdmDataType::Boolean,
        Date32 | Date64 | Timestamp(_, None) => CdmDataType::DateTime,
        Timestamp(_, Some(_)) => CdmDataType::DateTimeOffset,
        FixedSizeBinary(16) => CdmDataType::Guid,
        Struct(_) | List(_) | LargeList(_) | ListView(_) | LargeListView(_) | FixedSizeList(..)
        | Map(..) => CdmDataType::Json,
        Dictionary(_, value) => cdm_type_of(value),
        _ => CdmDataType::String,
    }
}

/// The Arrow type a CDM attribute reads as.
///
/// With [`ArrowTypes::Annotated`], the exact type of `annotated` when it names one that
/// agrees with the CDM type (an annotation that names no Arrow type, or one of another
/// CDM type, is ignored); an annotation longer than [`MAX_ARROW_TYPE_LEN`] or nested
/// deeper than [`MAX_ARROW_TYPE_DEPTH`] is refused, with the reason, before Arrow
/// parses it. Otherwise, and with [`ArrowTypes::CdmOnly`], the default type of `cdm`.
/// The error is the reason, for [`crate::Error::ArrowTypeAnnotation`].
pub(crate) fn arrow_type_of(
    cdm: CdmDataType,
    annotated: Option<&str>,
    types: ArrowTypes,
) -> Result<DataType, String> {
    if let (ArrowTypes::Annotated, Some(annotation)) = (types, annotated) {
        check_bounds(annotation)?;
        if let Ok(exact) = DataType::from_str(annotation) {
            if cdm_type_of(&exact) == cdm {
                return Ok(exact);
            }
        }
    }
    Ok(default_arrow_type(cdm))
}

/// The Arrow type an attribute of CDM type `cdm` reads as without an annotation.
pub fn default_arrow_type(cdm: CdmDataType) -> DataType {
    match cdm {
        CdmDataType::String | CdmDataType::Guid | CdmDataType::Json => DataType::Utf8,
        CdmDataType::Int64 => DataType::Int64,
        CdmDataType::Double => DataType::Float64,
        CdmDataType::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
        CdmDataType::DateTimeOffset => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        CdmDataType::Decimal => DataType::Decimal128(38, 18),
        CdmDataType::Boolean => DataType::Boolean,
    }
}

/// Refuses an annotation too long or too deeply nested for Arrow's recursive parser.
/// Brackets inside quoted text (field names) do not count.
fn check_bounds(annotation: &str) -> Result<(), String> {
    if annotation.len() > MAX_ARROW_TYPE_LEN {
        return Err(format!(
            "is {} bytes long, more than the {MAX_ARROW_TYPE_LEN} read",
            annotation.len()
        ));
    }
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for b in annotation.bytes() {
        if quoted {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => quoted = true,
            b'(' | b'[' | b'{' | b'<' => {
                depth += 1;
                if depth > MAX_ARROW_TYPE_DEPTH {
                    return Err(format!(
                        "is nested more than {MAX_ARROW_TYPE_DEPTH} levels deep"
                    ));
                }
            }
            b')' | b']' | b'}' | b'>' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cdm_type_round_trips_through_its_default_arrow_type() {
        for s in [
            "string",
            "int64",
            "double",
            "dateTime",
            "dateTimeOffset",
            "decimal",
            "boolean",
            "guid",
            "json",
        ] {
            let t: CdmDataType = s.parse().unwrap();
            let back = cdm_type_of(&default_arrow_type(t));
            // guid and json read as text, which maps back to string
            let expected = match t {
                CdmDataType::Guid | CdmDataType::Json => CdmDataType::String,
                other => other,
            };
            assert_eq!(back, expected, "{s}");
        }
    }

    #[test]
    fn exact_arrow_types_survive_through_the_annotation() {
        for dt in [
            DataType::Int32,
            DataType::Date32,
            DataType::Decimal128(18, 2),
            DataType::Timestamp(TimeUnit::Millisecond, Some("+01:00".into())),
            DataType::Float32,
        ] {
            let cdm = cdm_type_of(&dt);
            let annotation = dt.to_string();
            assert_eq!(
                arrow_type_of(cdm, Some(&annotation), ArrowTypes::Annotated),
                Ok(dt.clone())
            );
            // documents of anyone else read with the default of the CDM type
            assert_eq!(
                arrow_type_of(cdm, Some(&annotation), ArrowTypes::CdmOnly),
                Ok(default_arrow_type(cdm))
            );
        }
        let nested = DataType::new_list(
            DataType::Struct(
                vec![arrow::datatypes::Field::new("a(b", DataType::Int32, true)].into(),
            ),
            true,
        );
        assert_eq!(
            arrow_type_of(
                CdmDataType::Json,
                Some(&nested.to_string()),
                ArrowTypes::Annotated
            ),
            Ok(nested)
        );
        // an annotation that contradicts the CDM type is ignored
        assert_eq!(
            arrow_type_of(CdmDataType::String, Some("Int32"), ArrowTypes::Annotated),
            Ok(DataType::Utf8)
        );
        assert_eq!(
            arrow_type_of(CdmDataType::Int64, Some("garbage"), ArrowTypes::Annotated),
            Ok(DataType::Int64)
        );
    }

    #[test]
    fn deep_or_long_annotations_are_refused_before_arrow_parses_them() {
        // Arrow's parser recurses once per level: this one overflowed the stack.
        let deep = format!("{}Int64{}", "List(".repeat(100_000), ")".repeat(100_000));
        let err = arrow_type_of(CdmDataType::Json, Some(&deep), ArrowTypes::Annotated).unwrap_err();
        assert!(err.contains("more than the 4096 read"), "{err}");
        let deep = format!("{}Int64{}", "List(".repeat(33), ")".repeat(33));
        let err = arrow_type_of(CdmDataType::Json, Some(&deep), ArrowTypes::Annotated).unwrap_err();
        assert_eq!(err, "is nested more than 32 levels deep");
        // 32 levels are read
        let ok = format!("{}Int64{}", "List(".repeat(32), ")".repeat(32));
        assert!(matches!(
            arrow_type_of(CdmDataType::Json, Some(&ok), ArrowTypes::Annotated),
            Ok(DataType::List(_))
        ));
        // never parsed at all from someone else's document
        let deep = format!("{}Int64{}", "List(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(
            arrow_type_of(CdmDataType::Json, Some(&deep), ArrowTypes::CdmOnly),
            Ok(DataType::Utf8)
        );
    }

    #[test]
    fn spellings_of_other_tools_are_accepted() {
        assert_eq!(
            serde_json::from_str::<CdmDataType>("\"GUID\"").unwrap(),
            CdmDataType::Guid
        );
        assert_eq!(
            serde_json::from_str::<CdmDataType>("\"JSON\"").unwrap(),
            CdmDataType::Json
        );
        assert!("datetime".parse::<CdmDataType>().is_ok());
        assert!(serde_json::from_str::<CdmDataType>("\"int128\"").is_err());
    }
}
