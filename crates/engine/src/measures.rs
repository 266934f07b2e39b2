//! Measures: aggregates over the tables of a session, published as the `Measures/` CDM
//! folder.
//!
//! # What is published
//!
//! One run writes, and publishes atomically:
//!
//! - `Customer_Measure`: `CustomerId` and one column per customer-attribute measure,
//!   one row per row of `Customer` (written when at least one customer attribute is
//!   declared); customers without data get the measure's default, or null;
//! - one entity per customer measure, named after it: `CustomerId`, its dimensions and
//!   the value column (named after the measure); when the measure has a default, each
//!   customer without data gets one row with the default (and empty dimensions);
//! - one entity per business measure, named after it: its dimensions and the value.
//!
//! # Guarantees
//!
//! - Every measure is compiled with DataFusion's DataFrame API: table, column names and
//!   filter values are identifiers and literals of the plan, never SQL text, so no name
//!   or value can change what a plan does.
//! - Tables and columns are checked against the session before anything is planned; a
//!   missing one fails the run with an error naming the measure, what is missing and
//!   what exists.
//! - Nothing is published unless every measure succeeds: the run's files are removed and
//!   the previous `model.json` stays.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, Utc};
use datafusion::common::{JoinType, ScalarValue, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::functions::math::expr_fn::abs;
use datafusion::functions_aggregate::count::count_all;
use datafusion::functions_aggregate::expr_fn::{avg, count, count_distinct, max, min, sum};
use datafusion::functions_aggregate::first_last::first_value_udaf;
use datafusion::logical_expr::{cast, when, ExprFunctionExt, SortExpr, TryCast};
use datafusion::prelude::{coalesce, ident, lit, Expr, SessionContext};
use lakecdp_core::measure::{CUSTOMER_ID, CUSTOMER_MEASURE};
use lakecdp_core::{
    validate_measures, ConditionOp, ConditionValue, ConfigErrors, FilterSpec, MeasureFunction,
    MeasureKind, MeasureSpec, RunId,
};
use lakecdp_lake::{CdmFolderWriter, Process};
use serde_json::Value;

use crate::{Error, Result, Session};

/// The table holding one row per customer.
pub const CUSTOMER_TABLE: &str = "Customer";

/// Name of the join key column used inside plans (never published).
const KEY: &str = "__lakecdp_measure_key";

/// What a measures run did.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuresReport {
    /// The published run.
    pub run_id: RunId,
    /// One entry per measure, in declaration order.
    pub measures: Vec<MeasureRun>,
}

/// What one measure produced.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureRun {
    /// The measure's name.
    pub name: String,
    /// Its kind.
    pub kind: MeasureKind,
    /// The entity holding it (`Customer_Measure` for customer attributes).
    pub entity: String,
    /// Rows written to that entity.
    pub rows: u64,
    /// Customers of `Customer` without any data for the measure (given a default when
    /// the measure has one; always 0 for business measures).
    pub customers_without_data: u64,
    /// Time spent computing (and, for customer and business measures, writing) it.
    pub elapsed: Duration,
}

/// Compute `specs` over the tables registered in `session` and publish them as the
/// `Measures/` folder. Relative windows count back from `now`; `retention` is the number
/// of runs kept.
///
/// The caller registers `Customer` (one row per `CustomerId`; needed by customer
/// attributes and customer measures) and every table the measures name.
pub async fn run(
    session: &Session,
    specs: &[MeasureSpec],
    now: DateTime<Utc>,
    retention: u32,
) -> Result<MeasuresReport> {
    let errors = validate_measures(specs);
    if !errors.is_empty() {
        return Err(Error::Config(ConfigErrors(errors)));
    }
    let ctx = session.context();
    let customers = match specs.iter().find(|m| m.kind.per_customer()) {
        Some(first) => Some(customer_keys(ctx, first).await?),
        None => None,
    };

    let mut writer = CdmFolderWriter::begin(session.lake(), Process::Measures, retention).await?;
    writer.describe("measures");
    match compute_and_write(session, specs, customers, now, &mut writer).await {
        Ok(measures) => {
            let published = writer.commit().await?;
            Ok(MeasuresReport {
                run_id: published.run_id,
                measures,
            })
        }
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, "removing the files of a failed measures run failed");
            }
            Err(e)
        }
    }
}

async fn compute_and_write(
    session: &Session,
    specs: &[MeasureSpec],
    customers: Option<DataFrame>,
    now: DateTime<Utc>,
    writer: &mut CdmFolderWriter,
) -> Result<Vec<MeasureRun>> {
    let ctx = session.context();
    let mut runs = Vec::with_capacity(specs.len());
    // customer attributes: computed first, joined into one entity
    let mut attributes: Vec<(usize, DataFrame)> = Vec::new();
    for (i, m) in specs.iter().enumerate() {
        if m.kind != MeasureKind::CustomerAttribute {
            continue;
        }
        let started = Instant::now();
        let values = in_measure(m, materialize(session, plan(ctx, m, now).await?).await)?;
        let missing = match &customers {
            Some(c) => without_data(c.clone(), values.clone()).await?,
            None => 0,
        };
        attributes.push((i, values));
        runs.push((
            i,
            MeasureRun {
                name: m.name.clone(),
                kind: m.kind,
                entity: CUSTOMER_MEASURE.into(),
                rows: 0,
                customers_without_data: missing,
                elapsed: started.elapsed(),
            },
        ));
    }
    if let (Some(customers), false) = (&customers, attributes.is_empty()) {
        let started = Instant::now();
        let mut table = customers.clone();
        let mut columns = vec![ident(CUSTOMER_ID)];
        for (i, values) in &attributes {
            let m = &specs[*i];
            let right = values
                .clone()
                .select(vec![ident(CUSTOMER_ID).alias(KEY), ident(&m.name)])?;
            table = table.join_on(right, JoinType::Left, [ident(CUSTOMER_ID).eq(ident(KEY))])?;
            columns.push(with_default(
                m,
                ident(&m.name),
                table
                    .schema()
                    .field_with_unqualified_name(&m.name)?
                    .data_type(),
            )?);
            let keep: Vec<_> = table
                .schema()
                .fields()
                .iter()
                .filter(|f| f.name() != KEY)
                .map(|f| ident(f.name()))
                .collect();
            table = table.select(keep)?;
        }
        let table = table.select(columns)?;
        let rows = write(writer, CUSTOMER_MEASURE, None, table).await?;
        let shared = started.elapsed() / attributes.len().max(1) as u32;
        for (_, r) in runs.iter_mut() {
            r.rows = rows;
            r.elapsed += shared;
        }
    }

    for (i, m) in specs.iter().enumerate() {
        let started = Instant::now();
        let (table, missing) = match m.kind {
            MeasureKind::CustomerAttribute => continue,
            MeasureKind::Business => (plan(ctx, m, now).await?, 0),
            MeasureKind::Customer => {
                let values = in_measure(m, materialize(session, plan(ctx, m, now).await?).await)?;
                let customers = customers.as_ref().ok_or_else(|| {
                    Error::Internal("customer measures run without the customer table".into())
                })?;
                let missing = without_data(customers.clone(), values.clone()).await?;
                let table = match &m.default {
                    Some(_) => with_missing_customers(m, customers.clone(), values)?,
                    None => values,
                };
                (table, missing)
            }
        };
        let rows = in_measure(
            m,
            write(writer, &m.name, m.description.as_deref(), table).await,
        )?;
        runs.push((
            i,
            MeasureRun {
                name: m.name.clone(),
                kind: m.kind,
                entity: m.name.clone(),
                rows,
                customers_without_data: missing,
                elapsed: started.elapsed(),
            },
        ));
    }
    runs.sort_by_key(|(i, _)| *i);
    Ok(runs.into_iter().map(|(_, r)| r).collect())
}

/// `CustomerId` of every row of `Customer`.
async fn customer_keys(ctx: &SessionContext, first: &MeasureSpec) -> Result<DataFrame> {
    let df = table(ctx, first, CUSTOMER_TABLE).await.map_err(|e| match e {
        Error::Measure { measure, message } => Error::Measure {
            measure,
            message: format!(
                "{message}; customer attributes and customer measures need `{CUSTOMER_TABLE}` (one row per {CUSTOMER_ID})"
            ),
        },
        e => e,
    })?;
    require_column(first, CUSTOMER_TABLE, &df, CUSTOMER_ID, "the customer key")?;
    Ok(df.select(vec![ident(CUSTOMER_ID)])?)
}

/// The table `name` of the session, or an error naming the measure and the tables that
/// exist. The name is looked up as written, then as a table registered under a plain
/// `&str` is stored (lower case); it is never parsed, so dots and quotes are part of it.
async fn table(ctx: &SessionContext, m: &MeasureSpec, name: &str) -> Result<DataFrame> {
    for candidate in [name.to_string(), name.to_lowercase()] {
        let reference = TableReference::bare(candidate);
        if ctx.table_exist(reference.clone())? {
            return Ok(ctx.table(reference).await?);
        }
    }
    let known = table_names(ctx);
    Err(measure_error(
        m,
        format!(
            "table `{name}` is not registered; the tables are: {}",
            if known.is_empty() {
                "(none)".to_string()
            } else {
                known.join(", ")
            }
        ),
    ))
}

fn table_names(ctx: &SessionContext) -> Vec<String> {
    let state = ctx.state();
    let options = &state.config().options().catalog;
    let mut names = ctx
        .catalog(&options.default_catalog)
        .and_then(|c| c.schema(&options.default_schema))
        .map(|s| s.table_names())
        .unwrap_or_default();
    names.sort();
    names
}

/// A query failure while computing `m`, as an error naming the measure (data that does
/// not fit the measure, e.g. text in a time column that is not a time).
fn in_measure<T>(m: &MeasureSpec, result: Result<T>) -> Result<T> {
    result.map_err(|e| match e {
        Error::Query(e) => measure_error(m, format!("cannot be computed: {e}")),
        e => e,
    })
}

fn measure_error(m: &MeasureSpec, message: impl Into<String>) -> Error {
    Error::Measure {
        measure: m.name.clone(),
        message: message.into(),
    }
}

/// The type of `column` of `df`, or an error naming the measure, the table, the role of
/// the column and the columns that exist.
fn require_column(
    m: &MeasureSpec,
    table: &str,
    df: &DataFrame,
    column: &str,
    role: &str,
) -> Result<DataType> {
    match df.schema().field_with_unqualified_name(column) {
        Ok(f) => Ok(f.data_type().clone()),
        Err(_) => {
            let names: Vec<_> = df
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            Err(measure_error(
                m,
                format!(
                    "table `{table}` has no column `{column}` ({role}); its columns are: {}",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// The plan of one measure: `CustomerId` (customer kinds), the dimensions and the value
/// column named after the measure.
async fn plan(ctx: &SessionContext, m: &MeasureSpec, now: DateTime<Utc>) -> Result<DataFrame> {
    in_measure(m, plan_unchecked(ctx, m, now).await)
}

async fn plan_unchecked(
    ctx: &SessionContext,
    m: &MeasureSpec,
    now: DateTime<Utc>,
) -> Result<DataFrame> {
    let mut df = table(ctx, m, &m.table).await?;
    let t = m.table.as_str();
    // every column the measure names, checked before planning
    let value_type = match &m.column {
        Some(c) => Some(require_column(m, t, &df, c, "`column`")?),
        None => None,
    };
    if let Some(c) = &m.order_by {
        require_column(m, t, &df, c, "`order_by`")?;
    }
    if m.kind.per_customer() {
        require_column(m, t, &df, CUSTOMER_ID, "the customer key")?;
    }
    for d in &m.dimensions {
        require_column(m, t, &df, d, "a dimension")?;
    }
    let mut conditions = Vec::new();
    for f in &m.filters {
        let column_type = require_column(m, t, &df, &f.column, "a filter")?;
        conditions.push(filter_expr(m, f, &column_type)?);
    }
    if let (Some(window), Some(time_column)) = (&m.window, &m.time_column) {
        let time_type = require_column(m, t, &df, time_column, "`time_column`")?;
        let bounds = window
            .bounds(now)
            .ok_or_else(|| measure_error(m, "the window is out of range at the run's time"))?;
        let (time, to_literal) = time_expr(m, time_column, &time_type)?;
        if let Some(start) = bounds.start {
            conditions.push(time.clone().gt_eq(lit(to_literal(m, start)?)));
        }
        if let Some(end) = bounds.end {
            let end = lit(to_literal(m, end)?);
            conditions.push(if bounds.end_inclusive {
                time.lt_eq(end)
            } else {
                time.lt(end)
            });
        }
    }
    if let Some(condition) = conditions.into_iter().reduce(Expr::and) {
        df = df.filter(condition)?;
    }

    let value = m.column.as_deref().map(ident);
    let order = m.order_by.as_deref().map(ident);
    let needs = |e: Option<Expr>| {
        e.ok_or_else(|| Error::Internal(format!("validated measure `{}` lacks a column", m.name)))
    };
    // Sums and averages of floating-point values are computed over exact decimals, so
    // they do not depend on the order rows arrive in: the same on every partitioning, on
    // one machine and on a cluster. A group holding a value the decimals do not (NaN, an
    // infinity, a magnitude of 10^50 or more) is summed in floating point, as before.
    let float = value_type.as_ref().is_some_and(DataType::is_floating)
        && matches!(m.function, MeasureFunction::Sum | MeasureFunction::Average);
    let mut aggregates = Vec::new();
    if float {
        let v = needs(value.clone())?;
        // NaN and the infinities compare false
        let fits = abs(v.clone()).lt(lit(EXACT_LIMIT));
        let decimal = Expr::TryCast(TryCast::new(
            Box::new(v.clone()),
            DataType::Decimal256(76, EXACT_SCALE),
        ));
        let exact_input = when(fits.clone(), decimal).end()?;
        let (exact, plain) = match m.function {
            MeasureFunction::Sum => (sum(exact_input), sum(v.clone())),
            _ => (avg(exact_input), avg(v.clone())),
        };
        aggregates.push(exact.alias(EXACT_VALUE));
        aggregates.push(plain.alias(PLAIN_VALUE));
        aggregates.push(count(v).alias(VALUES));
        aggregates.push(count(when(fits, lit(1)).end()?).alias(EXACT_VALUES));
    }
    let aggregate = match m.function {
        MeasureFunction::Sum => sum(needs(value)?),
        MeasureFunction::Average => avg(needs(value)?),
        MeasureFunction::Count => match value {
            Some(v) => count(v),
            None => count_all(),
        },
        MeasureFunction::CountDistinct => count_distinct(needs(value)?),
        MeasureFunction::Min => min(needs(value)?),
        MeasureFunction::Max => max(needs(value)?),
        f @ (MeasureFunction::First
        | MeasureFunction::Last
        | MeasureFunction::ArgMax
        | MeasureFunction::ArgMin) => {
            let value = needs(value)?;
            let order = needs(order)?;
            // the smallest or largest `order_by` first; rows without one never win
            let ascending = matches!(f, MeasureFunction::First | MeasureFunction::ArgMin);
            let mut keep = order.clone().is_not_null();
            if matches!(f, MeasureFunction::First | MeasureFunction::Last) {
                keep = keep.and(value.clone().is_not_null());
            }
            first_value_udaf()
                .call(vec![value])
                .order_by(vec![SortExpr::new(order, ascending, false)])
                .filter(keep)
                .build()?
        }
    };
    let mut group = Vec::new();
    if m.kind.per_customer() {
        group.push(ident(CUSTOMER_ID));
    }
    group.extend(m.dimensions.iter().map(ident));
    if !float {
        aggregates.push(aggregate.alias(&m.name));
    }
    let df = df.aggregate(group.clone(), aggregates).map_err(|e| {
        measure_error(
            m,
            format!(
                "function `{}` cannot apply to column `{}` of type {}: {e}",
                m.function,
                m.column.as_deref().unwrap_or("*"),
                value_type
                    .as_ref()
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "rows".into())
            ),
        )
    })?;
    let mut columns = group;
    columns.push(if float {
        when(
            ident(VALUES).eq(ident(EXACT_VALUES)),
            cast(ident(EXACT_VALUE), DataType::Float64),
        )
        .otherwise(cast(ident(PLAIN_VALUE), DataType::Float64))?
        .alias(&m.name)
    } else {
        ident(&m.name)
    });
    Ok(df.select(columns)?)
}

/// Decimal places kept of floating-point values summed or averaged (smaller parts are
/// rounded away).
const EXACT_SCALE: i8 = 10;
/// Magnitude below which floating-point values are summed exactly: far below what
/// `Decimal256(76, 10)` holds, so totals and averages over any number of rows fit.
const EXACT_LIMIT: f64 = 1e50;
const EXACT_VALUE: &str = "__lakecdp_exact";
const PLAIN_VALUE: &str = "__lakecdp_plain";
const VALUES: &str = "__lakecdp_values";
const EXACT_VALUES: &str = "__lakecdp_exact_values";

/// A filter as an expression over `column_type`: the same condition model as segment
/// conditions (`crate::condition`).
fn filter_expr(m: &MeasureSpec, f: &FilterSpec, column_type: &DataType) -> Result<Expr> {
    let op = ConditionOp::from(f.op);
    let value = f
        .value
        .as_ref()
        .map(|v| {
            condition_value(v).ok_or_else(|| {
                measure_error(
                    m,
                    format!(
                        "value {v} for column `{}` is not a number, text, boolean or list of them",
                        f.column
                    ),
                )
            })
        })
        .transpose()?;
    crate::condition::expr(crate::condition::Test {
        column: ident(&f.column),
        name: &f.column,
        dtype: column_type,
        op: &op,
        value: value.as_ref(),
        now: Utc::now(),
    })
    .map_err(|e| measure_error(m, e))
}

/// A project-file value as a condition value.
fn condition_value(v: &Value) -> Option<ConditionValue> {
    Some(match v {
        Value::Bool(b) => ConditionValue::Bool(*b),
        Value::String(s) => ConditionValue::Text(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ConditionValue::Int(i),
            None => ConditionValue::Float(n.as_f64()?),
        },
        Value::Array(items) => {
            ConditionValue::List(items.iter().map(condition_value).collect::<Option<_>>()?)
        }
        _ => return None,
    })
}

fn scalar_of(v: &Value) -> Option<ScalarValue> {
    Some(match v {
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => ScalarValue::Int64(Some(i)),
            (None, Some(u), _) => ScalarValue::UInt64(Some(u)),
            (None, None, Some(f)) => ScalarValue::Float64(Some(f)),
            _ => return None,
        },
        _ => return None,
    })
}

/// Turns an instant into a literal comparable with a time column.
type ToLiteral = Box<dyn Fn(&MeasureSpec, DateTime<Utc>) -> Result<ScalarValue>>;

/// The time column as an expression, and how to turn an instant into a literal
/// comparable with it. Timestamps are compared in their own unit and zone; text is read
/// as a timestamp (UTC); dates are compared by day (a relative window of `1 day` holds
/// yesterday and today).
fn time_expr(m: &MeasureSpec, column: &str, t: &DataType) -> Result<(Expr, ToLiteral)> {
    let out_of_range =
        |m: &MeasureSpec| measure_error(m, "the window is out of range of the time column");
    match t {
        DataType::Timestamp(unit, tz) => {
            let unit = *unit;
            let tz = tz.clone();
            Ok((
                ident(column),
                Box::new(move |m, at| {
                    let tz = tz.clone();
                    Ok(match unit {
                        TimeUnit::Second => ScalarValue::TimestampSecond(Some(at.timestamp()), tz),
                        TimeUnit::Millisecond => {
                            ScalarValue::TimestampMillisecond(Some(at.timestamp_millis()), tz)
                        }
                        TimeUnit::Microsecond => {
                            ScalarValue::TimestampMicrosecond(Some(at.timestamp_micros()), tz)
                        }
                        TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(
                            Some(at.timestamp_nanos_opt().ok_or_else(|| out_of_range(m))?),
                            tz,
                        ),
                    })
                }),
            ))
        }
        DataType::Date32 | DataType::Date64 => Ok((
            cast(ident(column), naive_micros()),
            // a date is in when its day is: bounds fall to the start of their day
            Box::new(|_, at| {
                let day = at.date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
                Ok(ScalarValue::TimestampMicrosecond(
                    Some(day.timestamp_micros()),
                    None,
                ))
            }),
        )),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok((
            cast(ident(column), naive_micros()),
            Box::new(|_, at| {
                Ok(ScalarValue::TimestampMicrosecond(
                    Some(at.timestamp_micros()),
                    None,
                ))
            }),
        )),
        other => Err(measure_error(
            m,
            format!("`time_column` `{column}` has type {other}; a window needs a date or timestamp column"),
        )),
    }
}

fn naive_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// `value` or, where it is null, the measure's default (as the value's type).
fn with_default(m: &MeasureSpec, value: Expr, value_type: &DataType) -> Result<Expr> {
    Ok(match &m.default {
        Some(d) => coalesce(vec![value, lit(default_literal(m, d, value_type)?)]),
        None => value,
    }
    .alias(&m.name))
}

fn default_literal(m: &MeasureSpec, d: &Value, value_type: &DataType) -> Result<ScalarValue> {
    scalar_of(d)
        .and_then(|s| s.cast_to(value_type).ok())
        .ok_or_else(|| {
            measure_error(
                m,
                format!("default {d} is not a value of the measure's type {value_type}: write a value of that type"),
            )
        })
}

/// Collect a plan into a table of the session, so it is computed once.
async fn materialize(session: &Session, df: DataFrame) -> Result<DataFrame> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    session.table_of(schema, batches).await
}

/// Customers of `customers` without a row in `values`.
fn missing_customers(customers: DataFrame, values: DataFrame) -> Result<DataFrame> {
    let keys = values
        .select(vec![ident(CUSTOMER_ID).alias(KEY)])?
        .distinct()?;
    Ok(customers.join_on(
        keys,
        JoinType::LeftAnti,
        [ident(CUSTOMER_ID).eq(ident(KEY))],
    )?)
}

async fn without_data(customers: DataFrame, values: DataFrame) -> Result<u64> {
    Ok(missing_customers(customers, values)?.count().await? as u64)
}

/// The rows of a customer measure plus one row with the default for every customer
/// without data.
fn with_missing_customers(
    m: &MeasureSpec,
    customers: DataFrame,
    values: DataFrame,
) -> Result<DataFrame> {
    let schema = values.schema().clone();
    let missing = missing_customers(customers, values.clone())?;
    let mut columns = vec![ident(CUSTOMER_ID)];
    for d in &m.dimensions {
        let t = schema.field_with_unqualified_name(d)?.data_type();
        columns.push(lit(ScalarValue::try_from(t)?).alias(d));
    }
    let value_type = schema.field_with_unqualified_name(&m.name)?.data_type();
    let default = m
        .default
        .as_ref()
        .map(|d| default_literal(m, d, value_type))
        .transpose()?
        .unwrap_or(ScalarValue::try_from(value_type)?);
    columns.push(lit(default).alias(&m.name));
    Ok(values.union(missing.select(columns)?)?)
}

/// Write `df` as entity `name` of the run.
async fn write(
    writer: &mut CdmFolderWriter,
    name: &str,
    description: Option<&str>,
    df: DataFrame,
) -> Result<u64> {
    let stream = df.execute_stream().await?;
    let schema = stream.schema();
    Ok(writer
        .write_entity(name, description, schema, stream)
        .await?)
}
