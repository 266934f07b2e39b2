//! The candidate pairs of a rule found on a Ballista cluster.
//!
//! The refreshing process normalises the columns a rule compares, as it does on one
//! machine, and puts them in the lake's scratch folder (`_lakecdp/scratch/pairs-*`):
//! one Arrow file per side, with whether each record takes part. Each task of the plan
//!
//! ```text
//! PairsExec        one task per slice of this side's records: indexes the other side
//!   (groups)       by the hashes of its blocking keys, looks up the keys of its own
//!                  records, and compares the candidates with the rule's comparators
//! ```
//!
//! returns the pairs that hold (record numbers and score), the candidates it compared and
//! the blocking values left out for their size. The refreshing process gets pairs, never
//! records, and goes on with them as with the pairs found here: the same pairs, scores
//! and counts, since each record of this side is compared in exactly one task with the
//! whole other side.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, StringArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use lakecdp_core::{EnvironmentId, Normalization, Precision};
use lakecdp_lake::Lake;
use serde::{Deserialize, Serialize};

use super::rules::{find_pairs, Condition, Found, GiantBlock, Values};
use super::UnifyCluster;
use crate::ingest::distributed::{df, group_scan, one_input_operator, properties, Services};
use crate::{Error, Result};

/// A condition as a task runs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireCondition {
    column: String,
    other: String,
    steps: Vec<Normalization>,
    comparator: String,
    precision: Precision,
    never: Vec<String>,
}

/// One rule's pair finding, as its tasks see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairsTask {
    environment: EnvironmentId,
    rule: String,
    conditions: Vec<WireCondition>,
    /// This side's and the other side's values, relative to the lake.
    a: String,
    b: String,
    same: bool,
    max_block: usize,
    /// The records of this side each task compares: `[from, to)`.
    slices: Vec<(u32, u32)>,
}

fn pairs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("a", DataType::UInt32, true),
        Field::new("b", DataType::UInt32, true),
        Field::new("score", DataType::Float32, true),
        // one row per task: its candidates and the giant blocks it saw
        Field::new("candidates", DataType::UInt64, true),
        Field::new("giant", DataType::Utf8, true),
    ]))
}

/// Finds the pairs of the records of its slices (see the module).
#[derive(Debug)]
pub struct PairsExec {
    task: Arc<PairsTask>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    services: Option<Services>,
}

impl PairsExec {
    /// The operator of `task` over `input` (the slices' numbers, one per partition).
    pub fn new(
        task: Arc<PairsTask>,
        input: Arc<dyn ExecutionPlan>,
        services: Option<Services>,
    ) -> Self {
        let properties = properties(
            pairs_schema(),
            input.properties().partitioning.partition_count(),
        );
        Self {
            task,
            input,
            properties,
            services,
        }
    }

    pub(crate) fn task(&self) -> &PairsTask {
        &self.task
    }
}

impl DisplayAs for PairsExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "LakecdpPairsExec: rule {} ({} slices)",
            self.task.rule,
            self.task.slices.len()
        )
    }
}

impl ExecutionPlan for PairsExec {
    fn name(&self) -> &str {
        "LakecdpPairsExec"
    }

    one_input_operator!();

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Plan(
                "LakecdpPairsExec has one input".into(),
            ));
        }
        Ok(Arc::new(PairsExec::new(
            Arc::clone(&self.task),
            children.remove(0),
            self.services.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let services = self.services.clone().ok_or_else(|| {
            df("this process cannot find pairs: it is not a lakecdp cluster process")
        })?;
        let mut input = self.input.execute(partition, context)?;
        let task = Arc::clone(&self.task);
        let stream = futures::stream::once(async move {
            let mut slices = BTreeSet::new();
            while let Some(batch) = input.next().await {
                let batch = batch?;
                let ids = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<UInt64Array>()
                    .ok_or_else(|| df("slices are not numbers"))?;
                slices.extend(ids.values().iter().copied());
            }
            pairs_of(services, task, slices).await.map_err(df)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            pairs_schema(),
            stream,
        )))
    }
}

/// The values of one side: per condition, and whether each record takes part.
fn side_batch(values: &[Values], active: &[bool]) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(values.len() + 1);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(values.len() + 1);
    for (i, v) in values.iter().enumerate() {
        fields.push(Field::new(format!("c{i}"), DataType::Utf8, true));
        columns.push(Arc::new(v.as_ref().clone()));
    }
    fields.push(Field::new("active", DataType::Boolean, false));
    columns.push(Arc::new(BooleanArray::from(active.to_vec())));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn to_ipc(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())?;
        writer.write(batch)?;
        writer.finish()?;
    }
    Ok(out)
}

/// A side read back: its values per condition and whether each record takes part.
async fn read_side(
    lake: &Lake,
    relative: &str,
    conditions: usize,
) -> Result<(Vec<Values>, Vec<bool>)> {
    let bytes = lake.get(relative).await?;
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    let Some(first) = batches.first() else {
        return Err(Error::Internal(format!("{relative} holds no values")));
    };
    let batch = arrow::compute::concat_batches(&first.schema(), &batches)?;
    if batch.num_columns() != conditions + 1 {
        return Err(Error::Internal(format!(
            "{relative} holds {} columns, not {}",
            batch.num_columns(),
            conditions + 1
        )));
    }
    let mut values = Vec::with_capacity(conditions);
    for c in 0..conditions {
        let v = batch
            .column(c)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::Internal("values are not text".into()))?;
        values.push(Arc::new(v.clone()));
    }
    let active = batch
        .column(conditions)
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| Error::Internal("takes-part flags are not booleans".into()))?;
    Ok((values, (0..active.len()).map(|i| active.value(i)).collect()))
}

async fn pairs_of(
    services: Services,
    task: Arc<PairsTask>,
    slices: BTreeSet<u64>,
) -> Result<RecordBatch> {
    let lake = services.lakes.lake_of(task.environment).await?;
    let conditions = task
        .conditions
        .iter()
        .map(|c| {
            Ok(Condition {
                column: c.column.clone(),
                other: c.other.clone(),
                steps: c.steps.clone(),
                comparator: crate::functions::comparator_of(&c.comparator)?,
                precision: c.precision,
                never: c.never.iter().cloned().collect(),
            })
        })
        .collect::<DfResult<Vec<_>>>()?;
    let n = conditions.len();
    // a task reads only the scratch values of a rule
    let scratch = lake.internal("scratch/pairs-");
    for file in [&task.a, &task.b] {
        let name = file.strip_prefix(&scratch).unwrap_or("");
        let plain = name
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
        if !plain || name.split('/').count() != 2 {
            return Err(Error::Internal(format!(
                "a pair-finding task names no scratch values of a rule: `{file}`"
            )));
        }
    }
    let (a, active_a) = read_side(&lake, &task.a, n).await?;
    // a table compared with itself is written once
    let (b, active_b) = if task.b == task.a {
        (a.clone(), active_a.clone())
    } else {
        read_side(&lake, &task.b, n).await?
    };
    let ranges: Vec<(u32, u32)> = slices
        .iter()
        .map(|s| {
            task.slices
                .get(*s as usize)
                .copied()
                .ok_or_else(|| Error::Internal(format!("no slice {s} in the rule's task")))
        })
        .collect::<Result<_>>()?;
    let task2 = Arc::clone(&task);
    let found = tokio::task::spawn_blocking(move || {
        let mine = |i: usize| {
            active_a.get(i).copied().unwrap_or(false)
                && ranges
                    .iter()
                    .any(|(from, to)| (*from as usize..*to as usize).contains(&i))
        };
        let theirs = |j: usize| active_b.get(j).copied().unwrap_or(false);
        find_pairs(
            &task2.rule,
            &conditions,
            &a,
            &b,
            &mine,
            &theirs,
            task2.same,
            task2.max_block,
        )
    })
    .await
    .map_err(|e| Error::Internal(format!("a pair-finding task failed: {e}")))?;
    let giant: Vec<(String, String, usize)> = found
        .giant
        .iter()
        .map(|g| (g.rule.clone(), g.value.clone(), g.records))
        .collect();
    let giant = serde_json::to_string(&giant).map_err(|e| Error::Internal(e.to_string()))?;
    let rows = found.pairs.len() + 1;
    let mut xs: Vec<Option<u32>> = found.pairs.iter().map(|p| Some(p.0)).collect();
    let mut ys: Vec<Option<u32>> = found.pairs.iter().map(|p| Some(p.1)).collect();
    let mut ss: Vec<Option<f32>> = found.pairs.iter().map(|p| Some(p.2)).collect();
    let mut candidates: Vec<Option<u64>> = vec![None; rows - 1];
    let mut giants: Vec<Option<String>> = vec![None; rows - 1];
    xs.push(None);
    ys.push(None);
    ss.push(None);
    candidates.push(Some(found.candidates));
    giants.push(Some(giant));
    Ok(RecordBatch::try_new(
        pairs_schema(),
        vec![
            Arc::new(UInt32Array::from(xs)),
            Arc::new(UInt32Array::from(ys)),
            Arc::new(Float32Array::from(ss)),
            Arc::new(UInt64Array::from(candidates)),
            Arc::new(StringArray::from(giants)),
        ],
    )?)
}

/// [`find_pairs`] on the cluster: the same pairs, candidates and giant blocks.
#[allow(clippy::too_many_arguments)]
pub async fn find_pairs_on(
    cluster: &UnifyCluster,
    lake: &Lake,
    rule: &str,
    conditions: &[Condition],
    a: &[Values],
    b: &[Values],
    active_a: &(dyn Fn(usize) -> bool + Sync),
    active_b: &(dyn Fn(usize) -> bool + Sync),
    same: bool,
    max_block: usize,
) -> Result<Found> {
    if conditions.is_empty() {
        return Ok(Found::default());
    }
    let scheduler = match &cluster.scheduler {
        Some(s) => {
            crate::cluster::reachable(s).await?;
            s.clone()
        }
        None => crate::cluster::standalone(lake).await?,
    };
    let n_a = a.first().map_or(0, |v| v.len());
    let n_b = b.first().map_or(0, |v| v.len());
    let folder = lake.internal(&format!("scratch/pairs-{}", uuid::Uuid::new_v4().simple()));
    let tasks = cluster.tasks.clamp(1, n_a.max(1));
    let chunk = n_a.div_ceil(tasks).max(1);
    let slices: Vec<(u32, u32)> = (0..n_a)
        .step_by(chunk)
        .map(|from| (from as u32, (from + chunk).min(n_a) as u32))
        .collect();
    let slices = if slices.is_empty() {
        vec![(0, 0)]
    } else {
        slices
    };
    let ran = async {
        let flags =
            |n: usize, f: &(dyn Fn(usize) -> bool + Sync)| (0..n).map(f).collect::<Vec<_>>();
        let (flags_a, flags_b) = (flags(n_a, active_a), flags(n_b, active_b));
        let a_file = format!("{folder}/a.arrow");
        lake.put(&a_file, to_ipc(&side_batch(a, &flags_a)?)?)
            .await?;
        // a table compared with itself, on the same values: one file
        let one = same
            && flags_a == flags_b
            && a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y));
        let b_file = if one {
            a_file.clone()
        } else {
            let b_file = format!("{folder}/b.arrow");
            lake.put(&b_file, to_ipc(&side_batch(b, &flags_b)?)?)
                .await?;
            b_file
        };
        let task = Arc::new(PairsTask {
            environment: lake.environment(),
            rule: rule.to_string(),
            conditions: conditions
                .iter()
                .map(|c| WireCondition {
                    column: c.column.clone(),
                    other: c.other.clone(),
                    steps: c.steps.clone(),
                    comparator: crate::functions::comparator_name(c.comparator).to_string(),
                    precision: c.precision,
                    never: c.never.iter().cloned().collect(),
                })
                .collect(),
            a: a_file,
            b: b_file,
            same,
            max_block,
            slices: slices.clone(),
        });
        let plan: Arc<dyn ExecutionPlan> = Arc::new(PairsExec::new(
            Arc::clone(&task),
            group_scan(slices.len())?,
            None,
        ));
        crate::ingest::distributed::run_plan(&scheduler, plan, &format!("lakecdp-pairs-{rule}"))
            .await
    }
    .await;
    // the scratch values go, whatever happened
    if let Err(e) = lake.delete_folder(&folder).await {
        tracing::warn!(error = %e, "the scratch values of a rule could not be removed");
    }
    let batches = ran.map_err(|e| {
        Error::Cluster(format!(
            "the pairs of rule `{rule}` could not be found on the cluster at {scheduler}: {e}"
        ))
    })?;
    let mut found = Found::default();
    let mut giant: Option<Vec<GiantBlock>> = None;
    let mut reports = 0;
    for batch in &batches {
        let col = |i: usize| batch.columns().get(i).map(|c| c.as_any());
        let xs = col(0).and_then(|c| c.downcast_ref::<UInt32Array>());
        let ys = col(1).and_then(|c| c.downcast_ref::<UInt32Array>());
        let ss = col(2).and_then(|c| c.downcast_ref::<Float32Array>());
        let cs = col(3).and_then(|c| c.downcast_ref::<UInt64Array>());
        let gs = col(4).and_then(|c| c.downcast_ref::<StringArray>());
        let (Some(xs), Some(ys), Some(ss), Some(cs), Some(gs)) = (xs, ys, ss, cs, gs) else {
            return Err(Error::Internal(
                "a pair-finding task's answer has other types".into(),
            ));
        };
        for i in 0..batch.num_rows() {
            if cs.is_valid(i) {
                reports += 1;
                found.candidates += cs.value(i);
                if giant.is_none() {
                    let g: Vec<(String, String, usize)> = serde_json::from_str(gs.value(i))
                        .map_err(|e| Error::Internal(e.to_string()))?;
                    giant = Some(
                        g.into_iter()
                            .map(|(rule, value, records)| GiantBlock {
                                rule,
                                value,
                                records,
                            })
                            .collect(),
                    );
                }
            } else {
                found.pairs.push((xs.value(i), ys.value(i), ss.value(i)));
            }
        }
    }
    if reports != slices.len() {
        return Err(Error::Internal(format!(
            "rule `{rule}`: {reports} of {} pair-finding tasks answered",
            slices.len()
        )));
    }
    found.giant = giant.unwrap_or_default();
    // as one machine orders them
    let both_ways = same && conditions.iter().any(|c| c.column != c.other);
    super::rules::order_pairs(&mut found.pairs, both_ways);
    Ok(found)
}
