//! Profile report data: the distributions a profile report draws, computed in every
//! refresh after unification and published as the small CDM folder `Reports/`.
//!
//! Each entity has the columns `Value` (text) and `Profiles` (count), sorted by count,
//! then value:
//! - `AgeBands`: ages from the column mapped as `Person.BirthDate`, in bands (`<18`,
//!   `18-24`, `25-34`, `35-44`, `45-54`, `55-64`, `65+`, `unknown`), counted on the day
//!   of the run;
//! - `Genders`: the `Person.Gender` column;
//! - `IncomeBands`: a column mapped as the custom type `Person.Income`, in bands;
//! - `Countries` and `Cities`: the `Location.Country` and `Location.City` columns (the
//!   50 largest cities);
//! - `ProfilesPerSource`: profiles with at least one record of each source table
//!   (from `AlternateKey`).
//!
//! A distribution whose column is not mapped is left out. The plans are DataFusion
//! DataFrames over the published `Customer` and `AlternateKey`.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Datelike, Utc};
use datafusion::functions_aggregate::expr_fn::{count, count_distinct};
use datafusion::logical_expr::{cast, lit, try_cast, Expr};
use datafusion::prelude::{concat, DataFrame};
use lakecdp_core::unify::SemanticType;
use lakecdp_core::{RunId, UnificationSpec};
use lakecdp_lake::{CdmFolderWriter, Process};

use crate::{Error, Result, Session};

/// The custom semantic type read as a yearly income.
pub const INCOME_TYPE: &str = "Person.Income";

/// What the reports process published.
#[derive(Debug, Clone)]
pub struct ReportsReport {
    /// The published run.
    pub run_id: RunId,
    /// Each distribution written, with its number of rows.
    pub entities: Vec<(String, usize)>,
    /// Profiles counted.
    pub profiles: u64,
}

fn ident(name: &str) -> Expr {
    Expr::Column(datafusion::common::Column::new_unqualified(name))
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("Value", DataType::Utf8, false),
        Field::new("Profiles", DataType::Int64, false),
    ]))
}

/// The `Customer` column a semantic type is merged into, if mapped.
fn customer_column(spec: &UnificationSpec, wanted: &SemanticType) -> Option<String> {
    spec.tables
        .iter()
        .flat_map(|t| t.columns.iter())
        .find(|c| &c.semantic == wanted)
        .map(|c| c.output_name().to_string())
}

/// Count rows per value of `expr` (nulls as `unknown`), largest first.
async fn distribution(df: DataFrame, expr: Expr, limit: Option<usize>) -> Result<RecordBatch> {
    let grouped = df
        .select(vec![expr.alias("Value")])?
        .aggregate(vec![ident("Value")], vec![count(lit(1)).alias("Profiles")])?;
    let batches = grouped.collect().await?;
    let mut rows: Vec<(String, i64)> = Vec::new();
    for b in &batches {
        let v = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let v = v
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::Internal("a text cast did not yield text".into()))?;
        let n = arrow::compute::cast(b.column(1), &DataType::Int64)?;
        let n = n
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| Error::Internal("a count is not an integer".into()))?;
        for i in 0..b.num_rows() {
            let value = if v.is_null(i) || v.value(i).trim().is_empty() {
                "unknown".to_string()
            } else {
                v.value(i).trim().to_string()
            };
            rows.push((value, n.value(i)));
        }
    }
    // blanks and nulls both count as unknown
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged: Vec<(String, i64)> = Vec::new();
    for (v, n) in rows {
        match merged.last_mut() {
            Some(last) if last.0 == v => last.1 += n,
            _ => merged.push((v, n)),
        }
    }
    merged.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if let Some(l) = limit {
        merged.truncate(l);
    }
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(
                merged
                    .iter()
                    .map(|r| Some(r.0.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(merged.iter().map(|r| r.1).collect::<Int64Array>()),
        ],
    )?)
}

/// The age band of a birth date on `today`.
pub fn age_band(birth: chrono::NaiveDate, today: chrono::NaiveDate) -> &'static str {
    let mut age = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    match age {
        i32::MIN..=-1 => "unknown",
        0..=17 => "<18",
        18..=24 => "18-24",
        25..=34 => "25-34",
        35..=44 => "35-44",
        45..=54 => "45-54",
        55..=64 => "55-64",
        _ => "65+",
    }
}

/// The band of a yearly income.
pub fn income_band(income: f64) -> &'static str {
    match income {
        x if x.is_nan() || x < 0.0 => "unknown",
        x if x < 25_000.0 => "<25k",
        x if x < 50_000.0 => "25k-50k",
        x if x < 100_000.0 => "50k-100k",
        x if x < 200_000.0 => "100k-200k",
        _ => "200k+",
    }
}

/// Band a column in Rust: collect it, map each value, count.
async fn banded<F>(df: DataFrame, column: &str, cast_to: DataType, band: F) -> Result<RecordBatch>
where
    F: Fn(&arrow::array::ArrayRef, usize) -> &'static str,
{
    let batches = df
        .select(vec![try_cast(ident(column), cast_to).alias("v")])? // what does not convert is unknown
        .collect()
        .await?;
    let mut counts: std::collections::BTreeMap<&'static str, i64> = Default::default();
    for b in &batches {
        let a = b.column(0);
        for i in 0..b.num_rows() {
            let key = if a.is_null(i) { "unknown" } else { band(a, i) };
            *counts.entry(key).or_default() += 1;
        }
    }
    let mut rows: Vec<(&str, i64)> = counts.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(rows.iter().map(|r| Some(r.0)).collect::<StringArray>()),
            Arc::new(rows.iter().map(|r| r.1).collect::<Int64Array>()),
        ],
    )?)
}

/// Compute the distributions and publish `Reports/`.
pub async fn run(
    session: &Session,
    spec: &UnificationSpec,
    now: DateTime<Utc>,
    retention: u32,
) -> Result<ReportsReport> {
    let ctx = session.context();
    if !session
        .register_published(&Process::Unification, "Customer", "__report_customer")
        .await?
    {
        return Err(Error::Source(
            "profile reports need unified profiles: Unification/ has no Customer yet".into(),
        ));
    }
    let customers = ctx.table("__report_customer").await?;
    let profiles = customers.clone().count().await? as u64;
    let mut out: Vec<(&str, RecordBatch)> = Vec::new();
    let today = now.date_naive();

    if let Some(c) = customer_column(spec, &SemanticType::BirthDate) {
        let b = banded(customers.clone(), &c, DataType::Date32, |a, i| {
            a.as_any()
                .downcast_ref::<arrow::array::Date32Array>()
                .and_then(|d| d.value_as_date(i))
                .map(|d| age_band(d, today))
                .unwrap_or("unknown")
        })
        .await?;
        out.push(("AgeBands", b));
    }
    if let Some(c) = customer_column(spec, &SemanticType::Gender) {
        out.push((
            "Genders",
            distribution(customers.clone(), ident(&c), None).await?,
        ));
    }
    if let Some(c) = customer_column(spec, &SemanticType::Custom(INCOME_TYPE.into())) {
        let b = banded(customers.clone(), &c, DataType::Float64, |a, i| {
            a.as_any()
                .downcast_ref::<arrow::array::Float64Array>()
                .map(|f| income_band(f.value(i)))
                .unwrap_or("unknown")
        })
        .await?;
        out.push(("IncomeBands", b));
    }
    if let Some(c) = customer_column(spec, &SemanticType::Country) {
        out.push((
            "Countries",
            distribution(customers.clone(), ident(&c), None).await?,
        ));
    }
    if let Some(c) = customer_column(spec, &SemanticType::City) {
        let with_state = customer_column(spec, &SemanticType::State);
        let expr = match with_state {
            // the same city name in two states is two cities
            Some(s) => datafusion::logical_expr::when(
                ident(&c).is_null(),
                lit(datafusion::common::ScalarValue::Utf8(None)),
            )
            .when(ident(&s).is_null(), cast(ident(&c), DataType::Utf8))
            .otherwise(concat(vec![
                cast(ident(&c), DataType::Utf8),
                lit(", "),
                cast(ident(&s), DataType::Utf8),
            ]))?,
            None => ident(&c),
        };
        out.push((
            "Cities",
            distribution(customers.clone(), expr, Some(50)).await?,
        ));
    }
    if session
        .register_published(&Process::Unification, "AlternateKey", "__report_keys")
        .await?
    {
        let keys = ctx.table("__report_keys").await?;
        let per = keys
            .aggregate(
                vec![
                    concat(vec![ident("DataSourceName"), lit("."), ident("TableName")])
                        .alias("Value"),
                ],
                vec![count_distinct(ident("CustomerId")).alias("Profiles")],
            )?
            .sort(vec![ident("Value").sort(true, true)])?
            .select(vec![
                ident("Value"),
                cast(ident("Profiles"), DataType::Int64).alias("Profiles"),
            ])?
            .collect()
            .await?;
        let merged = arrow::compute::concat_batches(&schema(), &per)?;
        out.push(("ProfilesPerSource", merged));
        ctx.deregister_table("__report_keys")?;
    }
    ctx.deregister_table("__report_customer")?;

    let mut writer = CdmFolderWriter::begin(session.lake(), Process::Reports, retention).await?;
    writer.describe(format!(
        "profile report data of {profiles} profiles, as of {}",
        now.format("%Y-%m-%d")
    ));
    let mut entities = Vec::new();
    for (name, batch) in out {
        entities.push((name.to_string(), batch.num_rows()));
        writer
            .write_entity(
                name,
                None,
                schema(),
                futures::stream::iter([Ok::<_, String>(batch)]),
            )
            .await?;
    }
    let published = writer.commit().await?;
    Ok(ReportsReport {
        run_id: published.run_id,
        entities,
        profiles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn ages_fall_in_their_bands_on_the_day_of_the_run() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(age_band(d(2008, 12, 1), today), "18-24", "18 today");
        assert_eq!(age_band(d(2008, 12, 2), today), "<18", "18 tomorrow");
        assert_eq!(age_band(d(1961, 1, 1), today), "65+");
        assert_eq!(age_band(d(1991, 6, 30), today), "35-44");
        assert_eq!(age_band(d(2030, 1, 1), today), "unknown");
        assert_eq!(income_band(24_999.0), "<25k");
        assert_eq!(income_band(250_000.0), "200k+");
        assert_eq!(income_band(-1.0), "unknown");
    }
}
