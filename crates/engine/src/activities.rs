//! Activities: rows of source tables linked to unified profiles.
//!
//! For each `[[activities]]` entry the ingested table (`DataIngestion/<Source>/<Table>`)
//! is joined with `AlternateKey` on the customer column: the key of a record of the
//! linked unified table becomes its profile's CustomerId. The plans are DataFusion
//! DataFrames; names and values enter them as columns and literals, never as SQL text.
//!
//! Published together in `Activities/`:
//! - `UnifiedActivity`: CustomerId, ActivityId (`<Source>.<Table>:<primary key>`, stable
//!   across refreshes), SourceTableName, SourceActivityId, ActivityType,
//!   ActivityTimeStamp, Title, Description, URL, SemanticData (the source row as JSON);
//! - one entity per activity, named after it: its source rows with `CustomerId` and
//!   `ActivityTimeStamp` first, for measures and segments;
//! - `UnmatchedActivity`: rows left out of `UnifiedActivity`, with the reason (no customer
//!   key, a key that matches no profile, no time), so nothing is dropped silently.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::JoinType;
use datafusion::logical_expr::{cast, lit, try_cast, Expr};
use lakecdp_core::{ActivitySpec, RunId, SourceSpec};
use lakecdp_lake::{CdmFolderWriter, Process};

use crate::{Error, Result, Session};

/// What one activity did.
#[derive(Debug, Clone)]
pub struct ActivityReport {
    /// The activity's name.
    pub name: String,
    /// `Source.Table`.
    pub source_table: String,
    /// Rows read.
    pub rows: u64,
    /// Rows linked to a profile (in `UnifiedActivity`).
    pub linked: u64,
    /// Rows without a customer key.
    pub no_key: u64,
    /// Rows whose key matches no profile.
    pub unmatched: u64,
    /// Rows without a time.
    pub no_time: u64,
    /// Rows without an activity id (an empty primary key).
    pub no_id: u64,
    /// Time taken.
    pub elapsed: Duration,
}

/// What a run of the activities process did.
#[derive(Debug, Clone)]
pub struct ActivitiesReport {
    /// The published run.
    pub run_id: RunId,
    /// Per activity, in declaration order.
    pub activities: Vec<ActivityReport>,
}

impl ActivitiesReport {
    /// Rows in `UnifiedActivity`.
    pub fn linked(&self) -> u64 {
        self.activities.iter().map(|a| a.linked).sum()
    }

    /// Rows in `UnmatchedActivity`.
    pub fn left_out(&self) -> u64 {
        self.activities
            .iter()
            .map(|a| a.no_key + a.unmatched + a.no_time + a.no_id)
            .sum()
    }
}

/// The schema of `UnifiedActivity`.
pub fn unified_activity_schema() -> SchemaRef {
    let text = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        text("CustomerId", false),
        text("ActivityId", false),
        text("SourceTableName", false),
        text("SourceActivityId", false),
        text("ActivityType", false),
        Field::new(
            "ActivityTimeStamp",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        text("Title", true),
        text("Description", true),
        text("URL", true),
        text("SemanticData", true),
    ]))
}

fn unmatched_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("Activity", DataType::Utf8, false),
        Field::new("SourceTableName", DataType::Utf8, false),
        Field::new("SourceActivityId", DataType::Utf8, true),
        Field::new("CustomerKey", DataType::Utf8, true),
        Field::new("Reason", DataType::Utf8, false),
    ]))
}

const TIME: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

/// Run the activities process and publish `Activities/`.
pub async fn run(
    session: &Session,
    sources: &[SourceSpec],
    specs: &[ActivitySpec],
    retention: u32,
) -> Result<ActivitiesReport> {
    let ctx = session.context();
    if !session
        .register_published(&Process::Unification, "AlternateKey", "__alternate_key")
        .await?
    {
        return Err(Error::Source(
            "activities need unified profiles: Unification/ has no AlternateKey yet (run the unification first)"
                .into(),
        ));
    }
    let mut writer = CdmFolderWriter::begin(session.lake(), Process::Activities, retention).await?;
    writer.describe("activities of unified customers");
    let mut unified: Vec<RecordBatch> = Vec::new();
    let mut left_out: Vec<RecordBatch> = Vec::new();
    let mut reports = Vec::new();
    for spec in specs {
        let started = Instant::now();
        let source_table = spec.source_table();
        let table_spec = sources
            .iter()
            .find(|s| s.name == spec.source)
            .and_then(|s| s.tables.iter().find(|t| t.name == spec.table))
            .ok_or_else(|| {
                Error::Source(format!(
                    "activity `{}`: no source table `{source_table}`",
                    spec.name
                ))
            })?;
        let pk = spec
            .primary_key
            .clone()
            .or_else(|| table_spec.primary_key.clone())
            .ok_or_else(|| {
                Error::Source(format!(
                    "activity `{}`: `{source_table}` has no primary key; set `primary_key`",
                    spec.name
                ))
            })?;
        let name = "__activity_source";
        if !session
            .register_published(&Process::Ingestion(spec.source.clone()), &spec.table, name)
            .await?
        {
            return Err(Error::Source(format!(
                "activity `{}`: `{source_table}` has not been ingested yet (run `lakecdp refresh --only ingest`)",
                spec.name
            )));
        }
        let src = ctx.table(name).await?;
        let columns: Vec<String> = src
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for (what, c) in [
            ("primary key", Some(&pk)),
            ("customer.column", Some(&spec.customer.column)),
            ("timestamp", Some(&spec.timestamp)),
            ("title", spec.title.as_ref()),
            ("description", spec.description.as_ref()),
            ("url", spec.url.as_ref()),
        ] {
            if let Some(c) = c {
                if !columns.contains(c) {
                    return Err(Error::Source(format!(
                        "activity `{}`: {what} column `{c}` is not in `{source_table}` (it has {})",
                        spec.name,
                        columns.join(", ")
                    )));
                }
            }
        }
        let (link_source, link_table) = spec.customer.table.split_once('.').ok_or_else(|| {
            Error::Source(format!(
                "activity `{}`: customer.table must be `Source.Table`",
                spec.name
            ))
        })?;
        let keys = ctx
            .table("__alternate_key")
            .await?
            .filter(
                ident("DataSourceName")
                    .eq(lit(link_source))
                    .and(ident("TableName").eq(lit(link_table))),
            )?
            .select(vec![
                ident("AlternateValue").alias("__key"),
                // the profile's id under a name no source column has
                ident("CustomerId").alias("__profile_id"),
            ])?;
        // the source row with its key as text, its time, and its CustomerId (or null)
        let text = |c: &str| cast(ident(c), DataType::Utf8);
        let mut projection: Vec<Expr> = vec![
            text(&spec.customer.column).alias("__customer_key"),
            text(&pk).alias("__activity_id"),
            // a value that is not a time becomes null (and the row is left out, with why)
            try_cast(ident(&spec.timestamp), TIME).alias("ActivityTimeStamp"),
        ];
        projection.extend(columns.iter().map(|c| ident(c)));
        // in the order of the activity ids, whatever plan the join gets: the same input
        // always publishes the same rows in the same order
        let joined = src
            .select(projection)?
            .join(keys, JoinType::Left, &["__customer_key"], &["__key"], None)?
            .sort(vec![ident("__activity_id").sort(true, false)])?;
        let schema: SchemaRef = Arc::new(joined.schema().as_arrow().clone());
        let batches = joined.collect().await?;
        let all = if batches.is_empty() {
            RecordBatch::new_empty(schema.clone())
        } else {
            concat_batches(&schema, &batches)?
        };
        let report = split(
            spec,
            &source_table,
            &columns,
            all,
            &mut unified,
            &mut left_out,
            &mut writer,
        )
        .await?;
        reports.push(ActivityReport {
            elapsed: started.elapsed(),
            ..report
        });
        ctx.deregister_table(name)?;
    }
    ctx.deregister_table("__alternate_key")?;
    let schema = unified_activity_schema();
    writer
        .write_entity(
            "UnifiedActivity",
            Some("every activity of every unified customer"),
            schema,
            futures::stream::iter(unified.into_iter().map(Ok::<_, String>)),
        )
        .await?;
    writer
        .write_entity(
            "UnmatchedActivity",
            Some("activity rows left out of UnifiedActivity, and why"),
            unmatched_schema(),
            futures::stream::iter(left_out.into_iter().map(Ok::<_, String>)),
        )
        .await?;
    let published = writer.commit().await?;
    Ok(ActivitiesReport {
        run_id: published.run_id,
        activities: reports,
    })
}

/// A column by its exact name (no SQL parsing, so any name is safe).
fn ident(name: &str) -> Expr {
    Expr::Column(datafusion::common::Column::new_unqualified(name))
}

/// Split one activity's joined rows into `UnifiedActivity`, its own entity and the rows
/// left out.
async fn split(
    spec: &ActivitySpec,
    source_table: &str,
    columns: &[String],
    all: RecordBatch,
    unified: &mut Vec<RecordBatch>,
    left_out: &mut Vec<RecordBatch>,
    writer: &mut CdmFolderWriter,
) -> Result<ActivityReport> {
    let n = all.num_rows();
    let get = |c: &str| -> Result<ArrayRef> {
        all.column_by_name(c)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("joined activity rows lack `{c}`")))
    };
    let customer_ids = get("__profile_id")?;
    let customer = as_text(&customer_ids)?;
    let key = get("__customer_key")?;
    let key = as_text(&key)?;
    let id = get("__activity_id")?;
    let id = as_text(&id)?;
    let time = get("ActivityTimeStamp")?;
    let mut keep = Vec::with_capacity(n);
    let (mut no_key, mut unmatched, mut no_time, mut no_id) = (0u64, 0u64, 0u64, 0u64);
    let mut reasons: Vec<(Option<String>, Option<String>, &'static str)> = Vec::new();
    for i in 0..n {
        let reason = if id.is_null(i) || id.value(i).is_empty() {
            no_id += 1;
            Some("no activity id (the primary key is empty)")
        } else if key.is_null(i) || key.value(i).is_empty() {
            no_key += 1;
            Some("no customer key")
        } else if customer.is_null(i) {
            unmatched += 1;
            Some("the customer key matches no unified profile")
        } else if time.is_null(i) {
            no_time += 1;
            Some("no time (the timestamp column is empty or not a date/time)")
        } else {
            None
        };
        match reason {
            None => keep.push(i as u32),
            Some(r) => reasons.push((
                (!id.is_null(i)).then(|| id.value(i).to_string()),
                (!key.is_null(i)).then(|| key.value(i).to_string()),
                r,
            )),
        }
    }
    let indices = arrow::array::UInt32Array::from(keep);
    let take = |a: &ArrayRef| arrow::compute::take(a.as_ref(), &indices, None);

    // the activity's own entity: CustomerId, ActivityTimeStamp, then the source columns
    let mut fields = vec![
        Field::new("CustomerId", DataType::Utf8, false),
        Field::new("ActivityTimeStamp", TIME, false),
    ];
    let mut arrays: Vec<ArrayRef> = vec![take(&customer_ids)?, take(&time)?];
    for c in columns {
        if c == "CustomerId" || c == "ActivityTimeStamp" {
            continue;
        }
        let a = get(c)?;
        fields.push(Field::new(c, a.data_type().clone(), true));
        arrays.push(take(&a)?);
    }
    let own_schema = Arc::new(Schema::new(fields));
    let own = RecordBatch::try_new(own_schema.clone(), arrays)?;
    writer
        .write_entity(
            &spec.name,
            Some(&format!(
                "{} activity rows of {source_table} with their CustomerId",
                spec.activity_type
            )),
            own_schema,
            futures::stream::iter([Ok::<_, String>(own.clone())]),
        )
        .await?;

    // UnifiedActivity rows
    let m = own.num_rows();
    let source_columns: Vec<(&str, ArrayRef)> = columns
        .iter()
        .filter_map(|c| all.column_by_name(c).map(|a| (c.as_str(), a.clone())))
        .collect();
    let semantic = semantic_data(&source_columns, &indices)?;
    let id_array: ArrayRef = Arc::new(id.clone());
    let kept_ids = take(&id_array)?;
    let kept_ids = as_text(&kept_ids)?;
    let optional = |c: &Option<String>| -> Result<ArrayRef> {
        match c {
            Some(c) => Ok(arrow::compute::cast(&take(&get(c)?)?, &DataType::Utf8)?),
            None => Ok(arrow::array::new_null_array(&DataType::Utf8, m)),
        }
    };
    let activity_ids: StringArray = (0..m)
        .map(|i| Some(format!("{source_table}:{}", kept_ids.value(i))))
        .collect();
    let batch = RecordBatch::try_new(
        unified_activity_schema(),
        vec![
            own.column(0).clone(),
            Arc::new(activity_ids),
            Arc::new(StringArray::from(vec![source_table; m])),
            Arc::new(kept_ids.clone()),
            Arc::new(StringArray::from(vec![spec.activity_type.as_str(); m])),
            own.column(1).clone(),
            optional(&spec.title)?,
            optional(&spec.description)?,
            optional(&spec.url)?,
            Arc::new(semantic),
        ],
    )?;
    unified.push(batch);
    if !reasons.is_empty() {
        let k = reasons.len();
        left_out.push(RecordBatch::try_new(
            unmatched_schema(),
            vec![
                Arc::new(StringArray::from(vec![spec.name.as_str(); k])),
                Arc::new(StringArray::from(vec![source_table; k])),
                Arc::new(reasons.iter().map(|r| r.0.clone()).collect::<StringArray>()),
                Arc::new(reasons.iter().map(|r| r.1.clone()).collect::<StringArray>()),
                Arc::new(reasons.iter().map(|r| Some(r.2)).collect::<StringArray>()),
            ],
        )?);
    }
    Ok(ActivityReport {
        name: spec.name.clone(),
        source_table: source_table.to_string(),
        rows: n as u64,
        linked: m as u64,
        no_key,
        unmatched,
        no_time,
        no_id,
        elapsed: Duration::ZERO,
    })
}

fn as_text(a: &ArrayRef) -> Result<StringArray> {
    let t = arrow::compute::cast(a, &DataType::Utf8)?;
    t.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| Error::Internal("a cast to text did not yield text".into()))
}

/// The kept source rows as JSON objects, one string per row.
fn semantic_data(
    columns: &[(&str, ArrayRef)],
    indices: &arrow::array::UInt32Array,
) -> Result<StringArray> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let arrays = columns
        .iter()
        .map(|(_, a)| arrow::compute::take(a.as_ref(), indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
    let mut out = Vec::new();
    {
        let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
        w.write(&batch)?;
        w.finish()?;
    }
    let text = String::from_utf8(out).map_err(|e| Error::Internal(e.to_string()))?;
    let lines: StringArray = text.lines().map(Some).collect();
    if lines.len() != batch.num_rows() {
        return Err(Error::Internal(format!(
            "{} rows became {} JSON lines",
            batch.num_rows(),
            lines.len()
        )));
    }
    Ok(lines)
}
