//! The schema of a CDM entity as Delta Sharing states it: the subset of Spark SQL's JSON
//! schema its protocol uses (`schemaString` of a table's metadata). A struct of fields,
//! each with a name, a type, `nullable` and `metadata`; a type is a primitive name
//! (`string`, `long`, `integer`, `short`, `byte`, `float`, `double`, `boolean`,
//! `binary`, `date`, `timestamp`, `decimal(p,s)`), or an `array`, `map` or `struct`.
//!
//! Arrow types with no Spark counterpart of the same values map to the smallest one
//! that holds them all: unsigned integers to the next wider signed type (`UInt64` to
//! `decimal(20,0)`), half floats to `float`, large and view variants to their plain
//! type, dictionaries to their values. Timestamps of any unit and zone are `timestamp`
//! (the protocol's only timestamp). What has no counterpart at all (times of day,
//! durations, intervals, unions) is refused with [`Error::Unshareable`], naming the
//! column.

use arrow::datatypes::{DataType, Field};
use serde_json::{json, Value};

use super::model::Entity;
use super::types::ArrowTypes;
use crate::error::{Error, Result};

/// The Spark JSON schema of `entity`, its attributes' Arrow types read as `types` says.
/// Every column is nullable (lakecdp's outputs declare no column required).
pub fn spark_schema(entity: &Entity, types: ArrowTypes) -> Result<Value> {
    let mut fields = Vec::with_capacity(entity.attributes.len());
    for a in &entity.attributes {
        let data_type = a.arrow_type(types)?;
        let mut metadata = serde_json::Map::new();
        if let Some(d) = &a.description {
            metadata.insert("comment".into(), json!(d));
        }
        fields.push(json!({
            "name": a.name,
            "type": spark_type(&entity.name, &a.name, &data_type)?,
            "nullable": true,
            "metadata": metadata,
        }));
    }
    Ok(json!({ "type": "struct", "fields": fields }))
}

/// The Spark JSON type of a column of `entity` named `column` (used in the error).
pub fn spark_type(entity: &str, column: &str, data_type: &DataType) -> Result<Value> {
    let refuse = || Error::Unshareable {
        entity: entity.to_string(),
        column: column.to_string(),
        data_type: data_type.to_string(),
    };
    let name = |s: &str| Ok(Value::String(s.to_string()));
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => name("string"),
        DataType::Int8 => name("byte"),
        DataType::Int16 | DataType::UInt8 => name("short"),
        DataType::Int32 | DataType::UInt16 => name("integer"),
        DataType::Int64 | DataType::UInt32 => name("long"),
        DataType::UInt64 => name("decimal(20,0)"),
        DataType::Float16 | DataType::Float32 => name("float"),
        DataType::Float64 => name("double"),
        DataType::Boolean => name("boolean"),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => name("binary"),
        DataType::Date32 | DataType::Date64 => name("date"),
        DataType::Timestamp(_, _) => name("timestamp"),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            // Spark's decimals hold at most 38 digits and no negative scale
            if *p > 38 || *s < 0 || i16::from(*s) > i16::from(*p) {
                return Err(refuse());
            }
            name(&format!("decimal({p},{s})"))
        }
        DataType::Dictionary(_, values) => spark_type(entity, column, values),
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::LargeListView(item)
        | DataType::FixedSizeList(item, _) => Ok(json!({
            "type": "array",
            "elementType": spark_type(entity, &format!("{column}.element"), item.data_type())?,
            "containsNull": item.is_nullable(),
        })),
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(refuse());
            };
            let [key, value] = kv.iter().collect::<Vec<_>>()[..] else {
                return Err(refuse());
            };
            Ok(json!({
                "type": "map",
                "keyType": spark_type(entity, &format!("{column}.key"), key.data_type())?,
                "valueType": spark_type(entity, &format!("{column}.value"), value.data_type())?,
                "valueContainsNull": value.is_nullable(),
            }))
        }
        DataType::Struct(fields) => {
            let fields = fields
                .iter()
                .map(|f| struct_field(entity, column, f))
                .collect::<Result<Vec<_>>>()?;
            Ok(json!({ "type": "struct", "fields": fields }))
        }
        _ => Err(refuse()),
    }
}

fn struct_field(entity: &str, column: &str, f: &Field) -> Result<Value> {
    Ok(json!({
        "name": f.name(),
        "type": spark_type(entity, &format!("{column}.{}", f.name()), f.data_type())?,
        "nullable": f.is_nullable(),
        "metadata": {},
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{Fields, TimeUnit};

    use super::*;
    use crate::cdm::{cdm_type_of, Annotation, Attribute, ARROW_TYPE_ANNOTATION};

    fn of(t: DataType) -> Value {
        spark_type("T", "c", &t).unwrap()
    }

    #[test]
    fn every_primitive_maps_to_the_type_that_holds_its_values() {
        let cases = [
            (DataType::Utf8, "string"),
            (DataType::LargeUtf8, "string"),
            (DataType::Utf8View, "string"),
            (DataType::Int8, "byte"),
            (DataType::Int16, "short"),
            (DataType::Int32, "integer"),
            (DataType::Int64, "long"),
            (DataType::UInt8, "short"),
            (DataType::UInt16, "integer"),
            (DataType::UInt32, "long"),
            (DataType::UInt64, "decimal(20,0)"),
            (DataType::Float16, "float"),
            (DataType::Float32, "float"),
            (DataType::Float64, "double"),
            (DataType::Boolean, "boolean"),
            (DataType::Binary, "binary"),
            (DataType::LargeBinary, "binary"),
            (DataType::FixedSizeBinary(16), "binary"),
            (DataType::Date32, "date"),
            (DataType::Date64, "date"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "timestamp",
            ),
            (
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                "timestamp",
            ),
            (DataType::Timestamp(TimeUnit::Nanosecond, None), "timestamp"),
            (DataType::Decimal128(18, 2), "decimal(18,2)"),
            (DataType::Decimal128(38, 0), "decimal(38,0)"),
            (DataType::Decimal64(10, 10), "decimal(10,10)"),
            (
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                "string",
            ),
        ];
        for (arrow, spark) in cases {
            assert_eq!(of(arrow.clone()), json!(spark), "{arrow}");
        }
    }

    #[test]
    fn nested_types_keep_their_shape_and_nullability() {
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int64, false)));
        assert_eq!(
            of(list),
            json!({"type": "array", "elementType": "long", "containsNull": false})
        );
        let entries = Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Float64, true),
            ])),
            false,
        );
        assert_eq!(
            of(DataType::Map(Arc::new(entries), false)),
            json!({"type": "map", "keyType": "string", "valueType": "double", "valueContainsNull": true})
        );
        let address = DataType::Struct(Fields::from(vec![
            Field::new("City", DataType::Utf8, true),
            Field::new(
                "Lines",
                DataType::LargeList(Arc::new(Field::new("item", DataType::Utf8, true))),
                false,
            ),
        ]));
        assert_eq!(
            of(address),
            json!({"type": "struct", "fields": [
                {"name": "City", "type": "string", "nullable": true, "metadata": {}},
                {"name": "Lines", "type": {"type": "array", "elementType": "string", "containsNull": true}, "nullable": false, "metadata": {}},
            ]})
        );
    }

    #[test]
    fn types_spark_cannot_state_are_refused_naming_the_column() {
        for t in [
            DataType::Time64(TimeUnit::Microsecond),
            DataType::Duration(TimeUnit::Second),
            DataType::Decimal256(50, 2),
            DataType::Decimal128(10, -2),
            DataType::Null,
        ] {
            let err = spark_type("Customer", "Spent", &t).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("column `Spent` of `Customer`") && text.contains(&t.to_string()),
                "{text}"
            );
        }
        // inside a list, the path to the field is named
        let nested = DataType::List(Arc::new(Field::new(
            "item",
            DataType::Duration(TimeUnit::Second),
            true,
        )));
        let err = spark_type("Customer", "Visits", &nested).unwrap_err();
        assert!(err.to_string().contains("`Visits.element`"), "{err}");
    }

    fn attribute(name: &str, t: &DataType, description: Option<&str>) -> Attribute {
        Attribute {
            name: name.into(),
            data_type: cdm_type_of(t),
            description: description.map(str::to_string),
            annotations: vec![Annotation {
                name: ARROW_TYPE_ANNOTATION.into(),
                value: Some(t.to_string()),
            }],
            extra: Default::default(),
        }
    }

    #[test]
    fn an_entity_is_a_struct_of_nullable_columns_in_order() {
        let mut entity: Entity =
            serde_json::from_value(json!({"$type": "LocalEntity", "name": "Customer"})).unwrap();
        entity.attributes = vec![
            attribute("CustomerId", &DataType::Utf8, Some("the profile's id")),
            attribute("Spent", &DataType::Decimal128(18, 2), None),
            attribute(
                "LastSeen",
                &DataType::Timestamp(TimeUnit::Microsecond, None),
                None,
            ),
        ];
        let schema = spark_schema(&entity, ArrowTypes::Annotated).unwrap();
        assert_eq!(
            schema,
            json!({"type": "struct", "fields": [
                {"name": "CustomerId", "type": "string", "nullable": true, "metadata": {"comment": "the profile's id"}},
                {"name": "Spent", "type": "decimal(18,2)", "nullable": true, "metadata": {}},
                {"name": "LastSeen", "type": "timestamp", "nullable": true, "metadata": {}},
            ]})
        );
        // the CDM types alone (a document of someone else) give the default types
        let cdm_only = spark_schema(&entity, ArrowTypes::CdmOnly).unwrap();
        assert_eq!(cdm_only["fields"][0]["type"], "string");
    }
}
