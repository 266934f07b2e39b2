//! Typed batches from text records: values are cast with Arrow's cast kernels (the
//! ones DataFusion uses); a record with a value that does not fit its column's type, or
//! without its primary key, goes to the corrupt rows with the column, value and type.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, StringBuilder};
use arrow::compute::{cast_with_options, filter_record_batch, CastOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use lakecdp_core::{ColumnSpec, ColumnType};

use super::records::{Corrupt, Record};
use crate::{Error, Result};

/// The Arrow type a declared column is stored as.
pub fn arrow_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::DateTimeTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::Decimal(p, s) => DataType::Decimal128(p, s),
    }
}

/// The output schema of a table.
pub fn output_schema(columns: &[ColumnSpec]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c.column_type), true))
            .collect::<Vec<_>>(),
    ))
}

fn kind_of(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Date => "bad date",
        ColumnType::DateTime | ColumnType::DateTimeTz => "bad datetime",
        _ => "type mismatch",
    }
}

/// Converts batches of records of one table.
#[derive(Debug, Clone)]
pub struct Converter {
    columns: Vec<ColumnSpec>,
    schema: SchemaRef,
    null_markers: Vec<String>,
    primary_key: Option<usize>,
}

/// One converted batch: the valid rows, their lines, and the corrupt ones.
#[derive(Debug)]
pub struct Converted {
    /// The valid rows.
    pub batch: RecordBatch,
    /// The line of each valid row.
    pub lines: Vec<u64>,
    /// The rows that did not convert.
    pub corrupt: Vec<Corrupt>,
}

impl Converter {
    /// A converter for `columns`; `primary_key` must be one of them.
    pub fn new(
        columns: Vec<ColumnSpec>,
        null_markers: Vec<String>,
        primary_key: Option<&str>,
    ) -> Result<Self> {
        let primary_key = match primary_key {
            None => None,
            Some(pk) => Some(columns.iter().position(|c| c.name == pk).ok_or_else(|| {
                Error::Source(format!(
                    "the primary key `{pk}` is not a column of the table"
                ))
            })?),
        };
        let schema = output_schema(&columns);
        Ok(Self {
            columns,
            schema,
            null_markers,
            primary_key,
        })
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The column index of the primary key.
    pub fn primary_key(&self) -> Option<usize> {
        self.primary_key
    }

    /// Convert records (each with one field per column).
    pub fn convert(&self, records: &[Record]) -> Result<Converted> {
        let n = records.len();
        let mut reasons: Vec<Option<String>> = vec![None; n];
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        let options = CastOptions {
            safe: true,
            ..Default::default()
        };
        for (c, col) in self.columns.iter().enumerate() {
            let mut text = StringBuilder::with_capacity(n, n * 8);
            for r in records {
                match r.fields.get(c).and_then(|f| f.as_deref()) {
                    Some(v) if !self.null_markers.iter().any(|m| m == v) => {
                        text.append_value(v.trim())
                    }
                    _ => text.append_null(),
                }
            }
            let text = text.finish();
            let target = arrow_type(col.column_type);
            let typed = if target == DataType::Utf8 {
                Arc::new(text.clone()) as ArrayRef
            } else {
                let typed = cast_with_options(&text, &target, &options)?;
                for (i, reason) in reasons.iter_mut().enumerate() {
                    if typed.is_null(i) && text.is_valid(i) && reason.is_none() {
                        *reason = Some(format!(
                            "{}: column `{}` value `{}` is not a {}",
                            kind_of(col.column_type),
                            col.name,
                            text.value(i),
                            col.column_type
                        ));
                    }
                }
                typed
            };
            if Some(c) == self.primary_key {
                for (i, reason) in reasons.iter_mut().enumerate() {
                    if typed.is_null(i) && reason.is_none() {
                        *reason = Some(format!("missing primary key `{}`", col.name));
                    }
                }
            }
            arrays.push(typed);
        }
        let all = RecordBatch::try_new(self.schema.clone(), arrays)?;
        let keep = BooleanArray::from(reasons.iter().map(|r| r.is_none()).collect::<Vec<_>>());
        let batch = filter_record_batch(&all, &keep)?;
        let mut lines = Vec::with_capacity(batch.num_rows());
        let mut corrupt = Vec::new();
        for (r, reason) in records.iter().zip(reasons) {
            match reason {
                None => lines.push(r.line),
                Some(reason) => corrupt.push(Corrupt {
                    line: r.line,
                    raw: r.raw.clone(),
                    reason,
                }),
            }
        }
        Ok(Converted {
            batch,
            lines,
            corrupt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Int64Array, StringArray};

    fn rec(line: u64, fields: &[Option<&str>]) -> Record {
        Record {
            line,
            raw: format!("line {line}"),
            fields: fields.iter().map(|f| f.map(str::to_string)).collect(),
        }
    }

    #[test]
    fn values_are_cast_and_failures_named() {
        let cols = vec![
            ColumnSpec {
                name: "Id".into(),
                column_type: ColumnType::String,
            },
            ColumnSpec {
                name: "Items".into(),
                column_type: ColumnType::Int64,
            },
            ColumnSpec {
                name: "Born".into(),
                column_type: ColumnType::Date,
            },
        ];
        let conv = Converter::new(cols, vec!["".into(), "NULL".into()], Some("Id")).unwrap();
        let out = conv
            .convert(&[
                rec(2, &[Some("a"), Some("3"), Some("2000-01-31")]),
                rec(3, &[Some("b"), Some("six"), Some("2000-01-01")]),
                rec(4, &[Some("c"), Some("1"), Some("1954-02-30")]),
                rec(5, &[Some(""), Some("1"), None]),
                rec(6, &[Some("d"), Some("NULL"), None]),
            ])
            .unwrap();
        assert_eq!(out.batch.num_rows(), 2);
        assert_eq!(out.lines, [2, 6]);
        let ids = out
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((ids.value(0), ids.value(1)), ("a", "d"));
        let items = out
            .batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert!(items.value(0) == 3 && items.is_null(1));
        assert!(out
            .batch
            .column(2)
            .as_any()
            .downcast_ref::<Date32Array>()
            .unwrap()
            .is_null(1));
        let reasons: Vec<&str> = out.corrupt.iter().map(|c| c.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "type mismatch: column `Items` value `six` is not a int64",
                "bad date: column `Born` value `1954-02-30` is not a date",
                "missing primary key `Id`",
            ]
        );
    }
}
