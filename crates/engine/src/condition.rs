//! One condition model for segment conditions and measure filters.
//!
//! Both test a column against a value with the same operators and the same meaning:
//! - `eq`, `ne`, `lt`, `le`, `gt`, `ge` compare with the value converted to the column's
//!   type (text `"2024-03-01"` against a date column is a date); a null column never
//!   passes, `ne` included.
//! - `in` and `not_in` take a list; a null column passes neither.
//! - `contains` and `starts_with` compare text case-insensitively (a number or a date is
//!   compared as its text).
//! - `is_empty` holds for null, and for text that is blank after trimming;
//!   `is_not_empty` for the rest.
//! - `before` and `after` compare a date or time column (or text read as one) with an
//!   instant; `within` holds in a window relative to the run's time (`last 30 days`).

use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, Utc};
use datafusion::common::ScalarValue;
use datafusion::functions::string::expr_fn::{btrim, contains, lower, starts_with};
use datafusion::prelude::{cast, lit, Expr};
use lakecdp_core::segment::{parse_instant, RelativeWindow};
use lakecdp_core::{ConditionOp, ConditionValue};

/// One test of a column.
pub(crate) struct Test<'a> {
    /// The column, as an expression.
    pub column: Expr,
    /// How messages name it, e.g. `Orders.Amount`.
    pub name: &'a str,
    /// Its type.
    pub dtype: &'a DataType,
    /// The operator.
    pub op: &'a ConditionOp,
    /// The value, when the operator takes one.
    pub value: Option<&'a ConditionValue>,
    /// The run's time, for relative windows.
    pub now: DateTime<Utc>,
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The test as a boolean expression; the error says what is wrong with it.
pub(crate) fn expr(t: Test<'_>) -> Result<Expr, String> {
    let need = |what: &str| format!("`{}` needs {what}", t.op);
    let column = t.column.clone();
    let text = is_text(t.dtype);
    Ok(match t.op {
        ConditionOp::Eq
        | ConditionOp::Ne
        | ConditionOp::Lt
        | ConditionOp::Le
        | ConditionOp::Gt
        | ConditionOp::Ge => {
            let v = lit(scalar(&t, t.value.ok_or_else(|| need("a value"))?)?);
            match t.op {
                ConditionOp::Eq => column.eq(v),
                ConditionOp::Ne => column.not_eq(v),
                ConditionOp::Lt => column.lt(v),
                ConditionOp::Le => column.lt_eq(v),
                ConditionOp::Gt => column.gt(v),
                _ => column.gt_eq(v),
            }
        }
        ConditionOp::In | ConditionOp::NotIn => {
            let Some(ConditionValue::List(items)) = t.value else {
                return Err(need("a list of values"));
            };
            let items = items
                .iter()
                .map(|v| scalar(&t, v).map(lit))
                .collect::<Result<Vec<_>, _>>()?;
            column.in_list(items, *t.op == ConditionOp::NotIn)
        }
        ConditionOp::Contains | ConditionOp::StartsWith => {
            let Some(ConditionValue::Text(s)) = t.value else {
                return Err(need("a text"));
            };
            let haystack = lower(cast(column, DataType::Utf8));
            let needle = lit(s.to_lowercase());
            if *t.op == ConditionOp::Contains {
                contains(haystack, needle)
            } else {
                starts_with(haystack, needle)
            }
        }
        ConditionOp::IsEmpty if text => {
            column
                .clone()
                .is_null()
                .or(btrim(vec![cast(column, DataType::Utf8)]).eq(lit("")))
        }
        ConditionOp::IsEmpty => column.is_null(),
        ConditionOp::IsNotEmpty if text => column
            .clone()
            .is_not_null()
            .and(btrim(vec![cast(column, DataType::Utf8)]).not_eq(lit(""))),
        ConditionOp::IsNotEmpty => column.is_not_null(),
        ConditionOp::Before | ConditionOp::After => {
            let Some(ConditionValue::Text(s)) = t.value else {
                return Err(need("a date"));
            };
            let at = parse_instant(s).ok_or_else(|| format!("`{s}` is not a date or time"))?;
            let (column, at) = temporal(&t, at)?;
            if *t.op == ConditionOp::Before {
                column.lt(at)
            } else {
                column.gt(at)
            }
        }
        ConditionOp::Within => {
            let Some(ConditionValue::Text(s)) = t.value else {
                return Err(need("a window such as `last 30 days`"));
            };
            let window: RelativeWindow = s.parse()?;
            let (start, end) = window
                .bounds(t.now)
                .ok_or_else(|| format!("the window `{s}` leaves the range of dates"))?;
            let (column, start) = temporal(&t, start)?;
            let (_, end) = temporal(&t, end)?;
            column.clone().gt_eq(start).and(column.lt_eq(end))
        }
        ConditionOp::Unknown(op) => return Err(format!("`{op}` is not an operator")),
    })
}

/// `value` as a literal of the column's type.
fn scalar(t: &Test<'_>, value: &ConditionValue) -> Result<ScalarValue, String> {
    let v = match value {
        ConditionValue::Bool(b) => ScalarValue::Boolean(Some(*b)),
        ConditionValue::Int(i) => ScalarValue::Int64(Some(*i)),
        ConditionValue::Float(x) => ScalarValue::Float64(Some(*x)),
        ConditionValue::Text(s) => ScalarValue::Utf8(Some(s.clone())),
        ConditionValue::List(_) => {
            return Err(format!("`{}` compares with one value, not a list", t.op))
        }
    };
    v.cast_to(t.dtype).map_err(|_| {
        format!(
            "the value {value} cannot be compared with column `{}` of type {}: write a value of that type",
            t.name, t.dtype
        )
    })
}

/// The column and an instant, both as comparable times.
fn temporal(t: &Test<'_>, at: DateTime<Utc>) -> Result<(Expr, Expr), String> {
    let nanos = at
        .timestamp_nanos_opt()
        .ok_or_else(|| format!("{at} is outside the range of times"))?;
    let at = ScalarValue::TimestampNanosecond(Some(nanos), None);
    match t.dtype {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            let at = at.cast_to(t.dtype).map_err(|e| e.to_string())?;
            Ok((t.column.clone(), lit(at)))
        }
        d if is_text(d) => Ok((
            cast(
                t.column.clone(),
                DataType::Timestamp(TimeUnit::Nanosecond, None),
            ),
            lit(at),
        )),
        other => Err(format!(
            "column `{}` is of type {other}, not a date or time",
            t.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;
    use datafusion::prelude::{ident, SessionContext};

    use super::*;

    /// The rows of a small table (text, number) that pass each test.
    async fn passing(column: &str, op: ConditionOp, value: Option<ConditionValue>) -> Vec<String> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("Id", DataType::Utf8, false),
            Field::new("Note", DataType::Utf8, true),
            Field::new("Amount", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
                Arc::new(StringArray::from(vec![
                    Some("Gift card"),
                    Some("  "),
                    None,
                    Some("gifted"),
                ])),
                Arc::new(Float64Array::from(vec![
                    Some(5.0),
                    Some(10.0),
                    None,
                    Some(20.0),
                ])),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        let df = ctx.read_batch(batch).unwrap();
        let dtype = schema.field_with_name(column).unwrap().data_type().clone();
        let e = expr(Test {
            column: ident(column),
            name: column,
            dtype: &dtype,
            op: &op,
            value: value.as_ref(),
            now: Utc::now(),
        })
        .unwrap();
        let mut ids = Vec::new();
        for b in df.filter(e).unwrap().collect().await.unwrap() {
            let a = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            ids.extend(a.iter().flatten().map(str::to_string));
        }
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn one_meaning_for_every_operator() {
        use ConditionOp::*;
        let text = |s: &str| Some(ConditionValue::text(s));
        let cases: Vec<(&str, ConditionOp, Option<ConditionValue>, &[&str])> = vec![
            ("Amount", Eq, Some(ConditionValue::Int(10)), &["b"]),
            ("Amount", Ne, Some(ConditionValue::Int(10)), &["a", "d"]),
            ("Amount", Lt, Some(ConditionValue::Float(10.0)), &["a"]),
            ("Amount", Le, Some(ConditionValue::Int(10)), &["a", "b"]),
            ("Amount", Gt, text("10"), &["d"]),
            ("Amount", Ge, Some(ConditionValue::Int(10)), &["b", "d"]),
            (
                "Amount",
                In,
                Some(ConditionValue::List(vec![
                    ConditionValue::Int(5),
                    ConditionValue::Int(20),
                ])),
                &["a", "d"],
            ),
            (
                "Amount",
                NotIn,
                Some(ConditionValue::List(vec![ConditionValue::Int(5)])),
                &["b", "d"],
            ),
            // case-insensitive, for measures and segments alike
            ("Note", Contains, text("GIFT"), &["a", "d"]),
            ("Note", StartsWith, text("gift"), &["a", "d"]),
            ("Note", IsEmpty, None, &["b", "c"]),
            ("Note", IsNotEmpty, None, &["a", "d"]),
            ("Amount", IsEmpty, None, &["c"]),
            ("Amount", Contains, text("2"), &["d"]),
        ];
        for (column, op, value, want) in cases {
            let label = format!("{column} {op} {value:?}");
            assert_eq!(passing(column, op, value).await, want, "{label}");
        }
    }

    #[test]
    fn wrong_values_name_the_column_and_the_fix() {
        let dtype = DataType::Float64;
        let err = expr(Test {
            column: ident("Amount"),
            name: "Orders.Amount",
            dtype: &dtype,
            op: &ConditionOp::Gt,
            value: Some(&ConditionValue::text("lots")),
            now: Utc::now(),
        })
        .unwrap_err();
        assert!(
            err.contains("`Orders.Amount`") && err.contains("write a value"),
            "{err}"
        );
        let err = expr(Test {
            column: ident("Amount"),
            name: "Orders.Amount",
            dtype: &dtype,
            op: &ConditionOp::In,
            value: None,
            now: Utc::now(),
        })
        .unwrap_err();
        assert!(err.contains("a list of values"), "{err}");
    }
}
