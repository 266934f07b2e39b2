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

use std::fmt;
use std::str::FromStr;

use arrow::datatypes::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};

/// The name of the attribute annotation holding the exact Arrow type.
pub const ARROW_TYPE_ANNOTATION: &str = "lakecdp:arrowType";

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

/// The Arrow type a CDM attribute reads as: the exact type from the annotation when it
/// is there and agrees with the CDM type, the default mapping otherwise.
pub fn arrow_type_of(cdm: CdmDataType, annotated: Option<&str>) -> DataType {
    if let Some(exact) = annotated.and_then(|a| DataType::from_str(a).ok()) {
        if cdm_type_of(&exact) == cdm {
            return exact;
        }
    }
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
            let back = cdm_type_of(&arrow_type_of(t, None));
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
            assert_eq!(arrow_type_of(cdm, Some(&dt.to_string())), dt);
        }
        // an annotation that contradicts the CDM type is ignored
        assert_eq!(
            arrow_type_of(CdmDataType::String, Some("Int32")),
            DataType::Utf8
        );
        assert_eq!(
            arrow_type_of(CdmDataType::Int64, Some("garbage")),
            DataType::Int64
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
