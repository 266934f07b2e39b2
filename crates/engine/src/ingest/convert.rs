//! Typed batches from text records: values are cast with Arrow's cast kernels (the
//! ones DataFusion uses); a record with a value that does not fit its column's type
//! (a date or datetime outside years 1 to 9999, which readers refuse, and a decimal that
//! would lose digits included), or without its primary key, goes to the corrupt rows
//! with the column, value and type.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, StringArray, StringBuilder};
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
    formats: TemporalFormats,
}

/// strftime formats of date and datetime text; `None` is ISO 8601.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemporalFormats {
    /// Format of date columns, e.g. `%d/%m/%Y`.
    pub date: Option<String>,
    /// Format of datetime columns, e.g. `%d/%m/%Y %H:%M`.
    pub datetime: Option<String>,
}

/// Parse text with a strftime format into the column's type; unparseable values are null.
fn parse_with_format(text: &StringArray, t: ColumnType, format: &str) -> ArrayRef {
    use arrow::array::{Date32Array, TimestampMicrosecondArray};
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    match t {
        ColumnType::Date => Arc::new(Date32Array::from_iter(text.iter().map(|v| {
            v.and_then(|v| NaiveDate::parse_from_str(v, format).ok())
                .map(|d| (d - epoch).num_days() as i32)
        }))),
        ColumnType::DateTime => {
            Arc::new(TimestampMicrosecondArray::from_iter(text.iter().map(|v| {
                v.and_then(|v| NaiveDateTime::parse_from_str(v, format).ok())
                    .map(|d| d.and_utc().timestamp_micros())
            })))
        }
        _ => Arc::new(
            TimestampMicrosecondArray::from_iter(text.iter().map(|v| {
                v.and_then(|v| {
                    chrono::DateTime::parse_from_str(v, format)
                        .map(|d| d.timestamp_micros())
                        .or_else(|_| {
                            NaiveDateTime::parse_from_str(v, format)
                                .map(|d| chrono::Utc.from_utc_datetime(&d).timestamp_micros())
                        })
                        .ok()
                })
            }))
            .with_timezone("UTC"),
        ),
    }
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
        formats: TemporalFormats,
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
            formats,
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
        let mut texts = Vec::with_capacity(self.columns.len());
        for (c, col) in self.columns.iter().enumerate() {
            let mut text = StringBuilder::with_capacity(n, n * 8);
            for r in records {
                match r.fields.get(c).and_then(|f| f.as_deref()) {
                    Some(v) if !self.null_markers.iter().any(|m| m == v) => {
                        text.append_value(if col.column_type == ColumnType::String {
                            v
                        } else {
                            trim(v)
                        })
                    }
                    _ => text.append_null(),
                }
            }
            texts.push(text.finish());
        }
        let lines = records.iter().map(|r| r.line).collect();
        self.convert_text(texts, lines, |i| {
            records.get(i).map(|r| r.raw.clone()).unwrap_or_default()
        })
    }

    /// Whether column `c` holds text that is read around surrounding whitespace.
    pub(crate) fn trims(&self, c: usize) -> bool {
        self.columns
            .get(c)
            .is_some_and(|col| col.column_type != ColumnType::String)
    }

    /// The null markers.
    pub(crate) fn null_markers(&self) -> &[String] {
        &self.null_markers
    }

    /// Convert text columns (one per column, null markers applied, typed columns
    /// trimmed) of rows at `lines`; `raw(i)` is the text of row `i`, asked for corrupt
    /// rows only.
    pub(crate) fn convert_text(
        &self,
        texts: Vec<StringArray>,
        lines: Vec<u64>,
        raw: impl Fn(usize) -> String,
    ) -> Result<Converted> {
        let n = lines.len();
        let mut reasons: Vec<Option<String>> = vec![None; n];
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        let options = CastOptions {
            safe: true,
            ..Default::default()
        };
        if texts.len() != self.columns.len() || texts.iter().any(|t| t.len() != n) {
            return Err(Error::Internal(
                "text columns do not match the table's columns".into(),
            ));
        }
        for ((c, col), text) in self.columns.iter().enumerate().zip(texts) {
            let target = arrow_type(col.column_type);
            let typed = if target == DataType::Utf8 {
                Arc::new(text) as ArrayRef
            } else {
                let format = match col.column_type {
                    ColumnType::Date => self.formats.date.as_deref(),
                    ColumnType::DateTime | ColumnType::DateTimeTz => {
                        self.formats.datetime.as_deref()
                    }
                    _ => None,
                };
                let typed = match format {
                    Some(f) => parse_with_format(&text, col.column_type, f),
                    None => cast_with_options(&text, &target, &options)?,
                };
                let outside = readable_range(&typed);
                for (i, reason) in reasons.iter_mut().enumerate() {
                    if reason.is_some() || !text.is_valid(i) {
                        continue;
                    }
                    if typed.is_null(i) {
                        *reason = Some(format!(
                            "{}: column `{}` value `{}` is not a {}",
                            kind_of(col.column_type),
                            col.name,
                            text.value(i),
                            col.column_type
                        ));
                    } else if outside.as_ref().is_some_and(|o| o.value(i)) {
                        *reason = Some(format!(
                            "{}: column `{}` value `{}` is outside the years 1 to 9999 that readers accept",
                            kind_of(col.column_type),
                            col.name,
                            text.value(i)
                        ));
                    } else if let ColumnType::Decimal(p, s) = col.column_type {
                        if let Err(why) = decimal_fits(text.value(i), p, s) {
                            *reason = Some(format!(
                                "type mismatch: column `{}` value `{}` does not fit {}: {why}",
                                col.name,
                                text.value(i),
                                col.column_type
                            ));
                        }
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
        let all = RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let batch = if reasons.iter().all(Option::is_none) {
            all
        } else {
            let keep = BooleanArray::from(reasons.iter().map(|r| r.is_none()).collect::<Vec<_>>());
            filter_record_batch(&all, &keep)?
        };
        let mut kept = Vec::with_capacity(batch.num_rows());
        let mut corrupt = Vec::new();
        for (i, (line, reason)) in lines.into_iter().zip(reasons).enumerate() {
            match reason {
                None => kept.push(line),
                Some(reason) => corrupt.push(Corrupt {
                    line,
                    raw: raw(i),
                    reason,
                }),
            }
        }
        Ok(Converted {
            batch,
            lines: kept,
            corrupt,
        })
    }
}

/// Days from 1970-01-01 to 0001-01-01 and to 9999-12-31.
const FIRST_DAY: i64 = -719_162;
const LAST_DAY: i64 = 2_932_896;
/// Seconds from the epoch to 0001-01-01T00:00:00 and to 10000-01-01T00:00:00.
const FIRST_SECOND: i64 = FIRST_DAY * 86_400;
const END_SECOND: i64 = (LAST_DAY + 1) * 86_400;

/// For date and timestamp arrays, which values fall outside years 1 to 9999.
fn readable_range(typed: &ArrayRef) -> Option<BooleanArray> {
    use arrow::array::{Date32Array, TimestampMicrosecondArray};
    if let Some(d) = typed.as_any().downcast_ref::<Date32Array>() {
        return Some(
            d.iter()
                .map(|v| Some(v.is_some_and(|v| !(FIRST_DAY..=LAST_DAY).contains(&(v as i64)))))
                .collect(),
        );
    }
    if let Some(t) = typed.as_any().downcast_ref::<TimestampMicrosecondArray>() {
        return Some(
            t.iter()
                .map(|v| {
                    Some(v.is_some_and(|v| {
                        let s = v.div_euclid(1_000_000);
                        !(FIRST_SECOND..END_SECOND).contains(&s)
                    }))
                })
                .collect(),
        );
    }
    None
}

/// Whether decimal text fits `decimal(p, s)` without losing digits: at most `s` digits
/// after the point (trailing zeros aside) and `p - s` before it.
fn decimal_fits(text: &str, p: u8, s: i8) -> std::result::Result<(), String> {
    let t = text.trim();
    let t = t.strip_prefix(['+', '-']).unwrap_or(t);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(k) => (
            &t[..k],
            t[k + 1..]
                .parse::<i64>()
                .map_err(|_| "an exponent that is not a number".to_string())?,
        ),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    // digits before and after the point once the exponent is applied
    let mut before = int.len() as i64 + exponent;
    let mut after = frac.len() as i64 - exponent;
    if int.is_empty() {
        // leading zeros of the fraction do not count before the point
        let lead = frac.len() - frac.trim_start_matches('0').len();
        before = (exponent - lead as i64).max(0);
        if frac.is_empty() {
            before = 0;
            after = 0;
        }
    }
    let scale = s as i64;
    if after.max(0) > scale.max(0) {
        return Err(format!(
            "{} digits after the point, more than its scale of {s}",
            after
        ));
    }
    if before.max(0) > p as i64 - scale {
        return Err(format!(
            "{before} digits before the point, more than the {} its precision and scale allow",
            p as i64 - scale
        ));
    }
    Ok(())
}

/// `v` without surrounding whitespace; values that start and end with a visible ASCII
/// character (nearly all) are returned as they are without a scan.
fn trim(v: &str) -> &str {
    match (v.as_bytes().first(), v.as_bytes().last()) {
        (Some(f), Some(l)) if f.is_ascii_graphic() && l.is_ascii_graphic() => v,
        _ => v.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_date_formats_are_used() {
        let cols = vec![
            ColumnSpec {
                name: "D".into(),
                column_type: ColumnType::Date,
            },
            ColumnSpec {
                name: "T".into(),
                column_type: ColumnType::DateTime,
            },
        ];
        let formats = TemporalFormats {
            date: Some("%d/%m/%Y".into()),
            datetime: Some("%d/%m/%Y %H:%M".into()),
        };
        let conv = Converter::new(cols, vec![String::new()], None, formats).unwrap();
        let out = conv
            .convert(&[
                Record {
                    line: 1,
                    raw: String::new(),
                    fields: vec![Some("31/01/2024".into()), Some("31/01/2024 13:45".into())],
                },
                Record {
                    line: 2,
                    raw: String::new(),
                    fields: vec![Some("2024-01-31".into()), None],
                },
            ])
            .unwrap();
        assert_eq!(out.batch.num_rows(), 1);
        let d = out
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Date32Array>()
            .unwrap();
        assert_eq!(d.value(0), 19753);
        let t = out
            .batch
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(t.value(0), 1_706_708_700_000_000);
        assert_eq!(
            out.corrupt[0].reason,
            "bad date: column `D` value `2024-01-31` is not a date"
        );
    }
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
        let conv = Converter::new(
            cols,
            vec!["".into(), "NULL".into()],
            Some("Id"),
            TemporalFormats::default(),
        )
        .unwrap();
        let out = conv
            .convert(&[
                rec(2, &[Some("a"), Some(" 3 "), Some("2000-01-31")]),
                rec(3, &[Some("b"), Some("six"), Some("2000-01-01")]),
                rec(4, &[Some("c"), Some("1"), Some("1954-02-30")]),
                rec(5, &[Some(""), Some("1"), None]),
                rec(6, &[Some(" d "), Some("NULL"), None]),
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
        // text keeps its spaces; numbers and dates are read around them
        assert_eq!((ids.value(0), ids.value(1)), ("a", " d "));
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

    #[test]
    fn dates_outside_years_1_to_9999_and_decimals_that_lose_digits_are_named() {
        let cols = vec![
            ColumnSpec {
                name: "D".into(),
                column_type: ColumnType::Date,
            },
            ColumnSpec {
                name: "T".into(),
                column_type: ColumnType::DateTime,
            },
            ColumnSpec {
                name: "A".into(),
                column_type: ColumnType::Decimal(5, 2),
            },
        ];
        let conv =
            Converter::new(cols, vec![String::new()], None, TemporalFormats::default()).unwrap();
        let out = conv
            .convert(&[
                rec(
                    1,
                    &[
                        Some("0001-01-01"),
                        Some("9999-12-31T23:59:59"),
                        Some("123.45"),
                    ],
                ),
                rec(2, &[Some("0000-06-15"), None, None]),
                rec(3, &[None, Some("0000-12-31T23:00:00"), None]),
                rec(4, &[None, None, Some("1.234")]),
                rec(5, &[None, None, Some("1234.5")]),
                rec(6, &[None, None, Some("-0.50")]),
            ])
            .unwrap();
        assert_eq!(out.lines, [1, 6], "{:?}", out.corrupt);
        let reasons: Vec<(u64, &str)> = out
            .corrupt
            .iter()
            .map(|c| (c.line, c.reason.as_str()))
            .collect();
        assert!(
            reasons[0]
                .1
                .starts_with("bad date: column `D` value `0000-06-15`"),
            "{reasons:?}"
        );
        assert!(
            reasons[0]
                .1
                .ends_with("is outside the years 1 to 9999 that readers accept"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].1.contains("outside the years 1 to 9999"),
            "{reasons:?}"
        );
        assert!(
            reasons[2].1.contains("3 digits after the point"),
            "{reasons:?}"
        );
        assert!(
            reasons[1]
                .1
                .starts_with("bad datetime: column `T` value `0000-12-31T23:00:00`"),
            "{reasons:?}"
        );
        assert!(
            reasons[2]
                .1
                .starts_with("type mismatch: column `A` value `1.234`"),
            "{reasons:?}"
        );
        assert!(
            reasons[3]
                .1
                .starts_with("type mismatch: column `A` value `1234.5`"),
            "{reasons:?}"
        );
        assert_eq!(reasons.len(), 4);
    }

    #[test]
    fn decimal_digits_are_counted_around_the_point() {
        assert!(decimal_fits("123.45", 5, 2).is_ok());
        assert!(decimal_fits("  -0.500 ", 5, 2).is_ok());
        assert!(decimal_fits("1.2e1", 5, 2).is_ok());
        assert!(decimal_fits("0.05e2", 3, 2).is_ok());
        assert!(decimal_fits("1.234", 5, 2)
            .unwrap_err()
            .contains("3 digits after the point"));
        assert!(decimal_fits("1234.5", 5, 2)
            .unwrap_err()
            .contains("4 digits before the point"));
        assert!(decimal_fits("1e5", 5, 2).is_err());
    }
}
