//! Arrow -> PostgreSQL column types: the one mapping table.
//!
//! | Arrow                          | PostgreSQL          |
//! |--------------------------------|---------------------|
//! | Utf8, LargeUtf8, Utf8View      | `text`              |
//! | Int8, Int16, UInt8             | `smallint`          |
//! | Int32, UInt16                  | `integer`           |
//! | Int64, UInt32                  | `bigint`            |
//! | UInt64                         | `numeric(20,0)`     |
//! | Float32                        | `real`              |
//! | Float64                        | `double precision`  |
//! | Boolean                        | `boolean`           |
//! | Date32                         | `date`              |
//! | Timestamp(_, None)             | `timestamp`         |
//! | Timestamp(_, Some(tz))         | `timestamptz`       |
//! | Decimal128(p, s), 0 <= s       | `numeric(p,s)`      |
//! | Binary, LargeBinary            | `bytea`             |
//!
//! Every other type is refused with an error naming the column. The binary `COPY`
//! encoder ([`super::copy`]) encodes exactly these types.

use std::borrow::Cow;

use arrow::datatypes::DataType;

use crate::error::{Error, Result};

/// The PostgreSQL type of a column of Arrow type `data_type`.
pub fn pg_type_of(column: &str, data_type: &DataType) -> Result<Cow<'static, str>> {
    use DataType::*;
    let t = match data_type {
        Utf8 | LargeUtf8 | Utf8View => "text",
        Int8 | Int16 | UInt8 => "smallint",
        Int32 | UInt16 => "integer",
        Int64 | UInt32 => "bigint",
        UInt64 => "numeric(20,0)",
        Float32 => "real",
        Float64 => "double precision",
        Boolean => "boolean",
        Date32 => "date",
        Timestamp(_, None) => "timestamp",
        Timestamp(_, Some(_)) => "timestamptz",
        Decimal128(p, s) if *s >= 0 && *p >= 1 => return Ok(format!("numeric({p},{s})").into()),
        Binary | LargeBinary => "bytea",
        other => {
            return Err(Error::UnsupportedType {
                column: column.to_string(),
                data_type: other.to_string(),
                target: "postgres",
            })
        }
    };
    Ok(Cow::Borrowed(t))
}

/// An identifier quoted for SQL: wrapped in `"`, with `"` doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    #[test]
    fn every_mapped_type() {
        let table: Vec<(DataType, &str)> = vec![
            (DataType::Utf8, "text"),
            (DataType::LargeUtf8, "text"),
            (DataType::Utf8View, "text"),
            (DataType::Int8, "smallint"),
            (DataType::Int16, "smallint"),
            (DataType::UInt8, "smallint"),
            (DataType::Int32, "integer"),
            (DataType::UInt16, "integer"),
            (DataType::Int64, "bigint"),
            (DataType::UInt32, "bigint"),
            (DataType::UInt64, "numeric(20,0)"),
            (DataType::Float32, "real"),
            (DataType::Float64, "double precision"),
            (DataType::Boolean, "boolean"),
            (DataType::Date32, "date"),
            (DataType::Timestamp(TimeUnit::Second, None), "timestamp"),
            (
                DataType::Timestamp(TimeUnit::Millisecond, None),
                "timestamp",
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "timestamp",
            ),
            (DataType::Timestamp(TimeUnit::Nanosecond, None), "timestamp"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "timestamptz",
            ),
            (
                DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())),
                "timestamptz",
            ),
            (DataType::Decimal128(18, 2), "numeric(18,2)"),
            (DataType::Decimal128(38, 0), "numeric(38,0)"),
            (DataType::Binary, "bytea"),
            (DataType::LargeBinary, "bytea"),
        ];
        for (dt, expected) in table {
            assert_eq!(pg_type_of("c", &dt).unwrap(), expected, "{dt}");
        }
    }

    #[test]
    fn unsupported_types_name_the_column() {
        for dt in [
            DataType::Decimal128(10, -2),
            DataType::Float16,
            DataType::Date64,
            DataType::List(std::sync::Arc::new(arrow::datatypes::Field::new(
                "item",
                DataType::Int32,
                true,
            ))),
        ] {
            let err = pg_type_of("Tags", &dt).unwrap_err().to_string();
            assert!(err.contains("`Tags`"), "{err}");
            assert!(err.contains(&dt.to_string()), "{err}");
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("Customer"), "\"Customer\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("x; DROP TABLE y"), "\"x; DROP TABLE y\"");
    }
}
