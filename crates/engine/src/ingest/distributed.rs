//! Loading a table on a Ballista cluster: the executors read the source files and write
//! the run's partition files into the lake; the driver publishes `model.json`.
//!
//! The plan is lakecdp's own operators, sent as a physical plan:
//!
//! ```text
//! WriteExec                     one task per output partition: routes the rows (the
//!   [SortExec by file, line]    winner of each key), writes a part of the entity and
//!   [RepartitionExec hash(key)] one of its corrupt entity, returns what it wrote
//!     ConvertExec               one task per group of files: reads and converts them
//! ```
//!
//! - **Same rows as the local load.** Conversion is the local code, file by file. A keyed
//!   table's rows are shuffled by key and each partition is sorted by (file, line), so
//!   each key's rows reach its task in the order a local load reads them and the same
//!   row wins (the latest last-updated value, the last read on a tie), with the same
//!   reason for every duplicate.
//! - **No path in a plan.** A task names its environment, source, table, the revision of
//!   the project and its files by name and version. The executor finds the source in the
//!   project the way a refresh does (its own catalog and vault: [`Services`]), lists the
//!   table's files itself, and refuses a file it does not list with the same version.
//!   Credentials never travel.
//! - **Bad input loses nothing.** Corrupt rows travel with the rows (file, line, raw text
//!   and reason), and each writing task writes them to its part of the corrupt entity.
//!   The driver checks the corrupt share before it publishes; a failed load removes what
//!   the tasks wrote.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, OrderingRequirements, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::{RecordBatchReceiverStream, RecordBatchStreamAdapter};
use datafusion::physical_plan::Distribution;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use futures::future::BoxFuture;
use futures::StreamExt;
use lakecdp_core::{ColumnSpec, EnvironmentId, PartitionFormat, SourceSpec, TableSpec};
use lakecdp_lake::Lake;
use serde::{Deserialize, Serialize};

use super::convert::Converter;
use super::corrupt::{self, CorruptSink};
use super::reader::{self, Role, TableReader};
use super::NoProgress;
use crate::source::{prepare, SourceFile};
use crate::{Error, Result};

/// The parts of [`ExecutionPlan`] lakecdp's operators share: one input (the numbers of
/// the groups or slices a task takes), no expressions of their own, and no use for more
/// partitions than planned.
macro_rules! one_input_operator {
    () => {
        fn properties(&self) -> &std::sync::Arc<datafusion::physical_plan::PlanProperties> {
            &self.properties
        }

        fn children(&self) -> Vec<&std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
            vec![&self.input]
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(
                &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>,
            ) -> datafusion::error::Result<
                datafusion::common::tree_node::TreeNodeRecursion,
            >,
        ) -> datafusion::error::Result<datafusion::common::tree_node::TreeNodeRecursion> {
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        }

        fn benefits_from_input_partitioning(&self) -> Vec<bool> {
            vec![false]
        }
    };
}
pub(crate) use one_input_operator;

/// How an executor finds a source: from its environment, the revision of the project the
/// refresh runs and the source's name, the source's declaration and the folder its
/// relative paths start from. `Err` says why not (in words, without secrets).
pub type SourceResolver = Arc<
    dyn Fn(
            EnvironmentId,
            Option<u32>,
            String,
        ) -> BoxFuture<'static, std::result::Result<(SourceSpec, PathBuf), String>>
        + Send
        + Sync,
>;

/// What the operators of a load need where they run: the lakes they write and the
/// sources they read.
#[derive(Clone)]
pub struct Services {
    /// The lakes of the process.
    pub lakes: Arc<crate::cluster::LakeStores>,
    /// Where sources are found.
    pub sources: SourceResolver,
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services")
            .field("lakes", &self.lakes)
            .finish_non_exhaustive()
    }
}

/// One table's load, as its tasks see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableTask {
    /// The environment whose lake is written.
    pub environment: EnvironmentId,
    /// The project revision the refresh runs (`None`: the one the executor's catalog
    /// applies now).
    pub revision: Option<u32>,
    /// The source.
    pub source: String,
    /// The table.
    pub table: String,
    /// The columns the driver settled on (declared and inferred).
    pub columns: Vec<ColumnSpec>,
    /// The table's files: name and version, in load order.
    pub files: Vec<(String, String)>,
    /// The files each converting task reads (indexes into `files`).
    pub groups: Vec<Vec<usize>>,
    /// The table's primary key (its rows are shuffled by it), and its last-updated column.
    pub primary_key: Option<String>,
    /// See `primary_key`.
    pub last_updated: Option<String>,
    /// The entity's partitions and where each task writes (`<folder>/<Entity>/<run>/`).
    pub entity: String,
    /// The corrupt entity.
    pub corrupt_entity: String,
    /// The process folder.
    pub folder: String,
    /// The run.
    pub run_id: String,
    /// The lake's partition format.
    pub format: PartitionFormat,
    /// The longest record (each task reads with every core of its executor).
    pub max_record_bytes: usize,
    /// See [`super::IngestOptions::max_columns`].
    pub max_columns: usize,
    /// See [`super::IngestOptions::split_bytes`].
    pub split_bytes: usize,
    /// See [`super::IngestOptions::key_index_budget_bytes`].
    pub key_index_budget: usize,
}

impl TableTask {
    /// A new part of `entity` in this run: every task attempt writes its own file, and
    /// the driver declares only those the tasks that finished reported.
    fn new_part(&self, entity: &str) -> String {
        format!(
            "{}/part-{}.{}",
            self.run_folder(entity),
            uuid::Uuid::new_v4().simple(),
            self.format.extension()
        )
    }

    /// Refuse a task whose names would lead out of its run's folders.
    fn check(&self) -> Result<()> {
        let plain = |s: &str| !s.is_empty() && !s.contains(['/', '\\']) && s != "." && s != "..";
        let folder_ok = self.folder.split('/').all(plain)
            && self.folder == lakecdp_lake::Process::Ingestion(self.source.clone()).folder();
        if !(folder_ok && plain(&self.entity) && plain(&self.corrupt_entity) && plain(&self.run_id))
        {
            return Err(Error::Internal(format!(
                "a load task names no run folder of the lake: `{}/{}/{}`",
                self.folder, self.entity, self.run_id
            )));
        }
        Ok(())
    }

    /// The load's files by name and version, readable nowhere yet (paths are set for the
    /// files a task downloads).
    fn placeholders(&self) -> Vec<SourceFile> {
        self.files
            .iter()
            .map(|(name, version)| SourceFile {
                path: PathBuf::new(),
                name: name.clone(),
                version: version.clone(),
                modified: None,
                constants: Vec::new(),
            })
            .collect()
    }

    /// Where the parts of `entity` in this run are.
    fn run_folder(&self, entity: &str) -> String {
        format!("{}/{entity}/{}", self.folder, self.run_id)
    }
}

/// A keyed table's key column in the converted rows, and their order: file, then line.
fn key_and_order(table: &SchemaRef, pk: &str) -> Result<(Arc<dyn PhysicalExpr>, LexOrdering)> {
    let at = table.index_of(pk)?;
    let n = table.fields().len();
    let order = LexOrdering::new(vec![
        PhysicalSortExpr::new_default(Arc::new(Column::new(reader::SPILL_FILE, n))),
        PhysicalSortExpr::new_default(Arc::new(Column::new(reader::SPILL_LINE, n + 1))),
    ])
    .ok_or_else(|| Error::Internal("an empty ordering".into()))?;
    Ok((Arc::new(Column::new(pk, at)), order))
}

/// The rows a converting task hands on: the table's columns, then file, line, raw text
/// and reason (see [`reader::spill_schema`]).
fn converted_schema(task: &TableTask) -> Result<(SchemaRef, SchemaRef)> {
    let (converter, _) = converter_of(task)?;
    let table = converter.schema().clone();
    Ok((reader::spill_schema(&table), table))
}

fn converter_of(task: &TableTask) -> Result<(Converter, Option<usize>)> {
    // the schema depends on the columns and the key only; the executor reads the rest of
    // the declaration (null markers, formats) from the project
    super::converter_of(
        &task.table,
        &task.columns,
        task.primary_key.as_deref(),
        task.last_updated.as_deref(),
        None,
    )
}

/// What a writing task wrote.
fn stats_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("part", DataType::Utf8, false),
        Field::new("corrupt_part", DataType::Utf8, false),
        Field::new("read", DataType::UInt64, false),
        Field::new("written", DataType::UInt64, false),
        Field::new("corrupt", DataType::UInt64, false),
        Field::new("reasons", DataType::Utf8, false),
        Field::new("examples", DataType::Utf8, false),
    ]))
}

pub(crate) fn properties(schema: SchemaRef, partitions: usize) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema),
        Partitioning::UnknownPartitioning(partitions.max(1)),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

pub(crate) fn df(e: impl fmt::Display) -> DataFusionError {
    DataFusionError::Execution(e.to_string())
}

/// Reads and converts a table's files. Its input names the groups of files to read: one
/// row per group, partition `i` holding group `i` (an in-memory scan, which a cluster
/// cuts into each task's partitions).
#[derive(Debug)]
pub struct ConvertExec {
    task: Arc<TableTask>,
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    table_schema: SchemaRef,
    properties: Arc<PlanProperties>,
    services: Option<Services>,
}

/// The column of a [`ConvertExec`]'s input naming a group of files.
const GROUP: &str = "group";

/// The in-memory scan a [`ConvertExec`] reads its groups from: partition `i` holds group
/// `i`.
pub(crate) fn group_scan(groups: usize) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        GROUP,
        DataType::UInt64,
        false,
    )]));
    let partitions = (0..groups.max(1))
        .map(|g| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(UInt64Array::from(vec![g as u64])) as ArrayRef],
            )
            .map(|b| vec![b])
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(
        datafusion::datasource::memory::MemorySourceConfig::try_new_exec(
            &partitions,
            schema,
            None,
        )?,
    )
}

impl ConvertExec {
    /// The converting operator of `task` over `input` (see [`group_scan`]); `services`
    /// where it runs.
    pub fn new(
        task: Arc<TableTask>,
        input: Arc<dyn ExecutionPlan>,
        services: Option<Services>,
    ) -> Result<Self> {
        let (schema, table_schema) = converted_schema(&task)?;
        let properties = properties(
            schema.clone(),
            input.properties().partitioning.partition_count(),
        );
        Ok(Self {
            task,
            input,
            schema,
            table_schema,
            properties,
            services,
        })
    }
}

impl DisplayAs for ConvertExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "LakecdpConvertExec: {}.{} ({} files in {} groups)",
            self.task.source,
            self.task.table,
            self.task.files.len(),
            self.task.groups.len()
        )
    }
}

impl ExecutionPlan for ConvertExec {
    fn name(&self) -> &str {
        "LakecdpConvertExec"
    }

    one_input_operator!();

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Plan(
                "LakecdpConvertExec has one input".into(),
            ));
        }
        let input = children.remove(0);
        Ok(Arc::new(
            ConvertExec::new(Arc::clone(&self.task), input, self.services.clone()).map_err(df)?,
        ))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let services = self.services.clone().ok_or_else(|| {
            df("this process cannot load sources: it is not a lakecdp cluster process")
        })?;
        let mut input = self.input.execute(partition, context)?;
        let (task, schema, table_schema) = (
            Arc::clone(&self.task),
            self.schema.clone(),
            self.table_schema.clone(),
        );
        // a panic or an error of the task ends the stream with an error, and dropping
        // the stream stops the task: rows are never lost silently
        let mut builder = RecordBatchReceiverStream::builder(self.schema.clone(), 4);
        let tx = builder.tx();
        builder.spawn(async move {
            // the one group this partition names
            let mut ids = Vec::new();
            while let Some(batch) = input.next().await {
                let batch = batch?;
                let column = batch
                    .columns()
                    .first()
                    .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
                    .ok_or_else(|| df("file groups are not numbers"))?;
                ids.extend(column.values().iter().copied());
            }
            let [id] = ids.as_slice() else {
                return Err(df(format!(
                    "a converting task names {} file groups, not one",
                    ids.len()
                )));
            };
            let files = task
                .groups
                .get(*id as usize)
                .ok_or_else(|| df(format!("no file group {id} in the load")))?;
            let group: BTreeSet<usize> = files.iter().copied().collect();
            convert(services, task, group, schema, table_schema, tx)
                .await
                .map_err(df)
        });
        Ok(builder.build())
    }
}

/// The table's declaration and files as this process lists them, the files of `group`
/// downloaded, with the driver's versions checked.
async fn open_table(
    services: &Services,
    task: &TableTask,
    group: &BTreeSet<usize>,
) -> Result<(
    TableSpec,
    SourceSpec,
    PathBuf,
    Vec<SourceFile>,
    crate::source::Fetched,
)> {
    let (source, project_dir) =
        (services.sources)(task.environment, task.revision, task.source.clone())
            .await
            .map_err(Error::Source)?;
    let declared = source
        .tables
        .iter()
        .find(|t| t.name == task.table)
        .ok_or_else(|| {
            Error::Source(format!(
                "source `{}` of the project has no table `{}`",
                task.source, task.table
            ))
        })?
        .clone();
    let (table, fetched) = prepare(&declared, source.access.as_ref(), &project_dir).await?;
    let mut order = Vec::with_capacity(group.len());
    for &i in group {
        let (name, version) = task
            .files
            .get(i)
            .ok_or_else(|| Error::Internal(format!("no file {i} in the load")))?;
        let at = fetched
            .files
            .iter()
            .position(|f| &f.name == name && &f.version == version)
            .ok_or_else(|| {
                Error::Source(format!(
                    "table `{}`: {name} is not among its files as this process lists them, or it changed during the load; refresh again",
                    task.table
                ))
            })?;
        order.push(at);
    }
    let fetched = fetched.select(&order).download().await?;
    // every file of the load keeps its place; only this group's are readable here
    let mut files = task.placeholders();
    for (&i, file) in group.iter().zip(&fetched.files) {
        files[i].path = file.path.clone();
        files[i].constants = file.constants.clone();
    }
    Ok((table, source, project_dir.to_path_buf(), files, fetched))
}

fn table_reader(
    task: &TableTask,
    table: TableSpec,
    access: Option<lakecdp_core::SourceAccess>,
    project_dir: PathBuf,
    files: Vec<SourceFile>,
    reads: Option<BTreeSet<usize>>,
) -> Result<TableReader> {
    if table.primary_key != task.primary_key || table.last_updated != task.last_updated {
        return Err(Error::Source(format!(
            "table `{}`: the project this process reads declares another key than the refresh's; refresh again",
            task.table
        )));
    }
    let (converter, last_updated) = super::converter_of(
        &table.name,
        &task.columns,
        table.primary_key.as_deref(),
        table.last_updated.as_deref(),
        Some(&table),
    )?;
    let limits = super::IngestOptions {
        max_record_bytes: task.max_record_bytes,
        max_columns: task.max_columns,
        split_bytes: task.split_bytes,
        ..super::IngestOptions::default()
    }
    .limits();
    Ok(TableReader {
        label: format!("{}.{}", task.source, task.table),
        roles: vec![Role::ROWS; files.len()],
        table,
        columns: task.columns.clone(),
        files,
        previous: None,
        access,
        project_dir,
        converter,
        last_updated,
        progress: Arc::new(NoProgress),
        limits,
        key_index_budget: task.key_index_budget.max(1),
        reads,
    })
}

async fn convert(
    services: Services,
    task: Arc<TableTask>,
    group: BTreeSet<usize>,
    schema: SchemaRef,
    table_schema: SchemaRef,
    tx: tokio::sync::mpsc::Sender<DfResult<RecordBatch>>,
) -> Result<()> {
    let (table, source, project_dir, files, fetched) = open_table(&services, &task, &group).await?;
    let reader = table_reader(
        &task,
        table,
        source.access.clone(),
        project_dir,
        files,
        Some(group),
    )?;
    if reader.converter.schema() != &table_schema {
        return Err(Error::Source(format!(
            "table `{}`: the project this process reads declares other columns than the refresh's; refresh again",
            task.table
        )));
    }
    tokio::task::spawn_blocking(move || -> Result<()> {
        // the spool of downloaded files lives until the files are read
        let _fetched = fetched;
        reader.for_each(1, |file_idx, converted| {
            if let Some(batch) = reader::spill_batch(&schema, &table_schema, file_idx, converted)? {
                tx.blocking_send(Ok(batch))
                    .map_err(|_| Error::Internal("the load's next step stopped".into()))?;
            }
            Ok(())
        })?;
        Ok(())
    })
    .await
    .map_err(super::join_error)?
}

/// Routes the converted rows of its input partition and writes them: a part of the
/// entity and one of its corrupt entity, each under a name of its own (a task attempt
/// writes new files; the driver declares only those reported); returns one row of counts.
#[derive(Debug)]
pub struct WriteExec {
    task: Arc<TableTask>,
    input: Arc<dyn ExecutionPlan>,
    table_schema: SchemaRef,
    /// A keyed table's key column, and the order its rows must arrive in.
    keyed: Option<(Arc<dyn PhysicalExpr>, LexOrdering)>,
    properties: Arc<PlanProperties>,
    services: Option<Services>,
}

impl WriteExec {
    /// The writing operator of `task` over `input` (a [`ConvertExec`], shuffled by key
    /// and sorted by file and line for a keyed table).
    pub fn new(
        task: Arc<TableTask>,
        input: Arc<dyn ExecutionPlan>,
        services: Option<Services>,
    ) -> Result<Self> {
        let (_, table_schema) = converted_schema(&task)?;
        task.check()?;
        let partitions = input.properties().partitioning.partition_count();
        let keyed = match &task.primary_key {
            Some(pk) => Some(key_and_order(&table_schema, pk)?),
            None => None,
        };
        Ok(Self {
            task,
            input,
            table_schema,
            keyed,
            properties: properties(stats_schema(), partitions),
            services,
        })
    }
}

impl DisplayAs for WriteExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "LakecdpWriteExec: {} and {}",
            self.task.entity, self.task.corrupt_entity
        )
    }
}

impl ExecutionPlan for WriteExec {
    fn name(&self) -> &str {
        "LakecdpWriteExec"
    }

    one_input_operator!();

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    // a keyed table's rows of one key reach one task, in the order a local load reads
    // them; no optimizer may spread or reorder them
    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![match &self.keyed {
            Some((key, _)) => Distribution::KeyPartitioned(vec![Arc::clone(key)]),
            None => Distribution::UnspecifiedDistribution,
        }]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![self
            .keyed
            .as_ref()
            .map(|(_, order)| OrderingRequirements::from(order.clone()))]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Plan(
                "LakecdpWriteExec has one input".into(),
            ));
        }
        let input = children.remove(0);
        Ok(Arc::new(
            WriteExec::new(Arc::clone(&self.task), input, self.services.clone()).map_err(df)?,
        ))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let services = self.services.clone().ok_or_else(|| {
            df("this process cannot write lakes: it is not a lakecdp cluster process")
        })?;
        let input = self.input.execute(partition, context)?;
        let (task, table_schema) = (Arc::clone(&self.task), self.table_schema.clone());
        let stream = futures::stream::once(async move {
            write(services, task, table_schema, input).await.map_err(df)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            stats_schema(),
            stream,
        )))
    }
}

async fn write(
    services: Services,
    task: Arc<TableTask>,
    table_schema: SchemaRef,
    mut input: SendableRecordBatchStream,
) -> Result<RecordBatch> {
    let lake = services
        .lakes
        .lake_of(task.environment)
        .await?
        .with_format(task.format);
    // routing reads no file: the task's key, last-updated column and file names are
    // all it needs (no look at the project)
    let routed = TableSpec {
        name: task.table.clone(),
        location: String::new(),
        format: lakecdp_core::SourceFormat::Csv,
        primary_key: task.primary_key.clone(),
        last_updated: task.last_updated.clone(),
        csv: None,
        entity: None,
        schema: Vec::new(),
        incremental: false,
    };
    let reader = table_reader(
        &task,
        routed,
        None,
        PathBuf::new(),
        task.placeholders(),
        Some(BTreeSet::new()),
    )?;
    let handle = tokio::runtime::Handle::current();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::result::Result<RecordBatch, String>>(4);
    let keyed = task.primary_key.is_some();
    let table = table_schema.clone();
    let router = tokio::task::spawn_blocking(move || {
        let mut sink = CorruptSink::new();
        let mut read = |f: &mut dyn FnMut(usize, super::convert::Converted) -> Result<()>| {
            let mut records = 0u64;
            while let Some(batch) = handle.block_on(input.next()) {
                let batch = batch?;
                records += batch.num_rows() as u64;
                for (file_idx, converted) in reader::pieces(&table, &batch)? {
                    f(file_idx, converted)?;
                }
            }
            Ok(records)
        };
        let routed = if keyed {
            reader.load_keyed_from(&mut read, &tx, &mut sink)
        } else {
            reader.route_from(&mut read, &tx, &mut sink)
        };
        routed.map(|routed| (routed, sink))
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let relative = task.new_part(&task.entity);
    let written = lakecdp_lake::partition::write(
        &lake,
        &relative,
        table_schema.clone(),
        task.format,
        Box::pin(stream),
    )
    .await;
    let (routed, sink) = router.await.map_err(super::join_error)??;
    let written = written?.rows;
    let corrupt_count = sink.count();
    let mut reasons: Vec<(String, u64)> =
        sink.reasons.iter().map(|(k, n)| (k.clone(), *n)).collect();
    reasons.sort();
    let examples: Vec<(String, u64, String)> = sink
        .examples
        .iter()
        .map(|c| (c.file.clone(), c.line, c.reason.clone()))
        .collect();
    let rows = tokio::task::spawn_blocking(move || sink.finish())
        .await
        .map_err(super::join_error)??;
    let (ctx, mut crx) = tokio::sync::mpsc::channel::<std::result::Result<RecordBatch, String>>(2);
    let producer = tokio::task::spawn_blocking(move || {
        for batch in rows {
            if ctx.blocking_send(batch).is_err() {
                break;
            }
        }
    });
    let corrupt_stream = futures::stream::poll_fn(move |cx| crx.poll_recv(cx));
    let corrupt_relative = task.new_part(&task.corrupt_entity);
    let corrupt_written = lakecdp_lake::partition::write(
        &lake,
        &corrupt_relative,
        corrupt::schema(),
        task.format,
        Box::pin(corrupt_stream),
    )
    .await;
    producer.await.map_err(super::join_error)?;
    corrupt_written?;
    let json = |v: serde_json::Result<String>| v.map_err(|e| Error::Internal(e.to_string()));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![relative])),
        Arc::new(StringArray::from(vec![corrupt_relative])),
        Arc::new(UInt64Array::from(vec![routed.read])),
        Arc::new(UInt64Array::from(vec![written])),
        Arc::new(UInt64Array::from(vec![corrupt_count])),
        Arc::new(StringArray::from(vec![json(serde_json::to_string(
            &reasons,
        ))?])),
        Arc::new(StringArray::from(vec![json(serde_json::to_string(
            &examples,
        ))?])),
    ];
    Ok(RecordBatch::try_new(stats_schema(), columns)?)
}

/// What one writing task reports.
#[derive(Debug, Default)]
pub(super) struct PartStats {
    pub part: String,
    pub corrupt_part: String,
    pub read: u64,
    pub written: u64,
    pub corrupt: u64,
    pub reasons: Vec<(String, u64)>,
    pub examples: Vec<(String, u64, String)>,
}

pub(super) fn part_stats(batch: &RecordBatch) -> Result<Vec<PartStats>> {
    if batch.schema() != stats_schema() {
        return Err(Error::Internal(
            "a load task's counts have another shape".into(),
        ));
    }
    let col = |i: usize| {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| Error::Internal("a load task's counts are not numbers".into()))
    };
    let text = |i: usize| {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::Internal("a load task's reasons are not text".into()))
    };
    let (p, cp, r, w, c) = (text(0)?, text(1)?, col(2)?, col(3)?, col(4)?);
    let (reasons, examples) = (text(5)?, text(6)?);
    (0..batch.num_rows())
        .map(|i| {
            Ok(PartStats {
                part: p.value(i).to_string(),
                corrupt_part: cp.value(i).to_string(),
                read: r.value(i),
                written: w.value(i),
                corrupt: c.value(i),
                reasons: serde_json::from_str(reasons.value(i))
                    .map_err(|e| Error::Internal(e.to_string()))?,
                examples: serde_json::from_str(examples.value(i))
                    .map_err(|e| Error::Internal(e.to_string()))?,
            })
        })
        .collect()
}

/// Sources the driver of a standalone cluster lends its executor, by environment and
/// source: the executor runs in the same process.
static LENT: Mutex<Option<Lent>> = Mutex::new(None);

/// Lent sources by environment and name, with the folder their paths start from.
type Lent = HashMap<(EnvironmentId, String), (SourceSpec, PathBuf)>;

/// Lend `source` (read from `project_dir`) to this process's standalone executor: its
/// latest declaration per environment and name, kept while the process lives (a source
/// is small; the next load of it replaces it).
pub(crate) fn lend(env: EnvironmentId, source: &SourceSpec, project_dir: &std::path::Path) {
    let mut lent = LENT.lock().unwrap_or_else(|e| e.into_inner());
    lent.get_or_insert_with(HashMap::new).insert(
        (env, source.name.clone()),
        (source.clone(), project_dir.to_path_buf()),
    );
}

/// The sources lent to this process's standalone executor.
pub(crate) fn lent_sources() -> SourceResolver {
    Arc::new(|env, _revision, name| {
        let found = LENT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|m| m.get(&(env, name.clone())).cloned());
        Box::pin(async move {
            found.ok_or_else(|| format!("source `{name}` is not being loaded by this process"))
        })
    })
}

/// lakecdp's operators on the wire, and Ballista's through its own codec.
#[derive(Debug)]
pub struct Codec {
    ballista: ballista_core::serde::BallistaPhysicalExtensionCodec,
    services: Option<Services>,
}

const MAGIC_CONVERT: &[u8] = b"lakecdp-convert:";
const MAGIC_WRITE: &[u8] = b"lakecdp-write:";
const MAGIC_PAIRS: &[u8] = b"lakecdp-pairs:";

impl Codec {
    /// A codec whose decoded operators run with `services` (`None` where they are only
    /// planned: a driver, a scheduler).
    pub fn new(services: Option<Services>) -> Self {
        Self {
            ballista: Default::default(),
            services,
        }
    }
}

impl PhysicalExtensionCodec for Codec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let task = |rest: &[u8]| -> DfResult<Arc<TableTask>> {
            serde_json::from_slice(rest)
                .map(Arc::new)
                .map_err(|e| DataFusionError::Internal(format!("a load task does not decode: {e}")))
        };
        let input = || {
            inputs
                .first()
                .cloned()
                .ok_or_else(|| DataFusionError::Internal("a load's operator has no input".into()))
        };
        if let Some(rest) = buf.strip_prefix(MAGIC_CONVERT) {
            return Ok(Arc::new(
                ConvertExec::new(task(rest)?, input()?, self.services.clone()).map_err(df)?,
            ));
        }
        if let Some(rest) = buf.strip_prefix(MAGIC_WRITE) {
            return Ok(Arc::new(
                WriteExec::new(task(rest)?, input()?, self.services.clone()).map_err(df)?,
            ));
        }
        if let Some(rest) = buf.strip_prefix(MAGIC_PAIRS) {
            let task = serde_json::from_slice(rest).map(Arc::new).map_err(|e| {
                DataFusionError::Internal(format!("a pair-finding task does not decode: {e}"))
            })?;
            return Ok(Arc::new(crate::unify::distributed::PairsExec::new(
                task,
                input()?,
                self.services.clone(),
            )));
        }
        self.ballista.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        let encode = |magic: &[u8], task: &TableTask, buf: &mut Vec<u8>| -> DfResult<()> {
            buf.extend_from_slice(magic);
            serde_json::to_writer(buf, task)
                .map_err(|e| DataFusionError::Internal(format!("a load task does not encode: {e}")))
        };
        if let Some(c) = node.downcast_ref::<ConvertExec>() {
            return encode(MAGIC_CONVERT, &c.task, buf);
        }
        if let Some(w) = node.downcast_ref::<WriteExec>() {
            return encode(MAGIC_WRITE, &w.task, buf);
        }
        if let Some(p) = node.downcast_ref::<crate::unify::distributed::PairsExec>() {
            buf.extend_from_slice(MAGIC_PAIRS);
            return serde_json::to_writer(buf, p.task()).map_err(|e| {
                DataFusionError::Internal(format!("a pair-finding task does not encode: {e}"))
            });
        }
        self.ballista.try_encode(node, buf, proto_converter)
    }
}

/// The files of a load in `tasks` groups of about equal size, each keeping the load's
/// order.
pub(super) fn groups(sizes: &[u64], tasks: usize) -> Vec<Vec<usize>> {
    let tasks = tasks.clamp(1, sizes.len().max(1));
    let mut groups: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); tasks];
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    // largest first, each to the lightest group
    order.sort_by(|a, b| sizes[*b].cmp(&sizes[*a]).then(a.cmp(b)));
    for i in order {
        if let Some(g) = groups.iter_mut().min_by_key(|(bytes, _)| *bytes) {
            g.0 += sizes[i];
            g.1.push(i);
        }
    }
    let mut out: Vec<Vec<usize>> = groups
        .into_iter()
        .map(|(_, mut g)| {
            g.sort_unstable();
            g
        })
        .filter(|g| !g.is_empty())
        .collect();
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

/// Run `plan` (lakecdp's operators and DataFusion's) on the cluster of `scheduler`
/// (`df://host:port`) and collect what it returns.
pub(crate) async fn run_plan(
    scheduler: &str,
    plan: Arc<dyn ExecutionPlan>,
    session: &str,
) -> Result<Vec<RecordBatch>> {
    use ballista_core::extension::SessionConfigExt;

    let (host, port) =
        lakecdp_core::EngineChoice::scheduler_address(scheduler).map_err(Error::Cluster)?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let stream = ballista_core::execution_plans::execute_physical_plan::<
        datafusion_proto::protobuf::PhysicalPlanNode,
    >(
        format!("http://{host}:{port}"),
        &ballista_core::config::BallistaConfig::default(),
        plan,
        &Codec::new(None),
        session.to_string(),
        // every task a plan plans is one lakecdp's driver counts: no merging of
        // partitions behind its back
        datafusion::prelude::SessionConfig::new_with_ballista()
            .set_bool(ballista_core::config::BALLISTA_COALESCE_ENABLED, false),
    )
    .await?;
    Ok(datafusion::physical_plan::common::collect(stream).await?)
}

/// Why a table of a load runs in the refreshing process rather than on the cluster;
/// `None` when it runs on the cluster.
pub(super) fn stays_local(
    load: &super::Load,
    source: &SourceSpec,
    cluster: &super::IngestCluster,
) -> Option<&'static str> {
    use lakecdp_core::SourceFormat;
    if load.incremental.is_some() || load.previous.is_some() {
        return Some("incremental layout");
    }
    // as declared: a CDM folder's partitions read as CSV or Parquet once prepared
    let declared = source
        .tables
        .iter()
        .find(|t| t.name == load.table.name)
        .map_or(load.table.format, |t| t.format);
    for format in [declared, load.table.format] {
        match format {
            SourceFormat::Csv | SourceFormat::Parquet | SourceFormat::Jsonl => {}
            SourceFormat::Delta if crate::source::delta::read_whole(&load.files.files) => {
                return Some("a Delta table read through deltalake (its version needs deletion vectors, column mapping or other reader features, or its log names data files by absolute paths)")
            }
            SourceFormat::Delta => {}
            SourceFormat::Cdm => return Some("a CDM folder"),
        }
    }
    if !cluster.local_files && !crate::source::is_remote(&load.table.location) {
        return Some("files in a local folder: declare `shared_files = true` in the engine when every executor mounts it at the same path");
    }
    if load.roles.iter().any(|r| *r != Role::ROWS) {
        return Some("incremental layout");
    }
    None
}

/// Load one table on the cluster: its tasks write the run's partitions of the entity
/// and of its corrupt entity, then the driver checks the counts and declares them in
/// `writer`'s run.
#[allow(clippy::too_many_arguments)]
pub(super) async fn load_table(
    writer: &mut lakecdp_lake::CdmFolderWriter,
    source: &SourceSpec,
    load: &super::Load,
    project_dir: &std::path::Path,
    columns: Vec<ColumnSpec>,
    schema: SchemaRef,
    options: &super::IngestOptions,
    cluster: &super::IngestCluster,
) -> Result<super::TableReport> {
    use datafusion::physical_plan::repartition::RepartitionExec;
    use datafusion::physical_plan::sorts::sort::SortExec;

    let started = std::time::Instant::now();
    let lake = writer.lake().clone();
    let env = lake.environment();
    let table = &load.table;
    let scheduler = match &cluster.scheduler {
        Some(s) => {
            crate::cluster::reachable(s).await?;
            s.clone()
        }
        None => {
            lend(env, source, project_dir);
            crate::cluster::standalone(&lake).await?
        }
    };
    // a file's version starts with its size, listed (remote files are not downloaded)
    let sizes: Vec<u64> = load
        .files
        .files
        .iter()
        .map(|f| {
            f.version
                .split(':')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1)
        })
        .collect();
    let tasks = cluster.tasks.max(1);
    let task = Arc::new(TableTask {
        environment: env,
        revision: cluster.revision,
        source: source.name.clone(),
        table: table.name.clone(),
        columns,
        files: load
            .files
            .files
            .iter()
            .map(|f| (f.name.clone(), f.version.clone()))
            .collect(),
        groups: groups(&sizes, tasks),
        primary_key: table.primary_key.clone(),
        last_updated: table.last_updated.clone(),
        entity: table.name.clone(),
        corrupt_entity: super::corrupt_entity(&source.name, &table.name),
        folder: writer.folder().to_string(),
        run_id: writer.run_id().to_string(),
        format: lake.format(),
        max_record_bytes: options.max_record_bytes,
        max_columns: options.max_columns,
        split_bytes: options.split_bytes,
        key_index_budget: options.key_index_budget_bytes,
    });
    let convert: Arc<dyn ExecutionPlan> = Arc::new(ConvertExec::new(
        Arc::clone(&task),
        group_scan(task.groups.len())?,
        None,
    )?);
    let input: Arc<dyn ExecutionPlan> = match &table.primary_key {
        Some(pk) => {
            // each key's rows to one task, in the order a local load reads them
            let (key, order) = key_and_order(&schema, pk)?;
            let shuffled = RepartitionExec::try_new(convert, Partitioning::Hash(vec![key], tasks))?;
            Arc::new(SortExec::new(order, Arc::new(shuffled)).with_preserve_partitioning(true))
        }
        None => convert,
    };
    let plan: Arc<dyn ExecutionPlan> = Arc::new(WriteExec::new(Arc::clone(&task), input, None)?);
    let remove = |lake: Lake, task: Arc<TableTask>| async move {
        for entity in [&task.entity, &task.corrupt_entity] {
            let folder = format!("{}/{entity}/{}", task.folder, task.run_id);
            if let Err(e) = lake.delete_folder(&folder).await {
                tracing::warn!(error = %e, "could not remove the files of a failed load");
            }
        }
    };
    let ran = run_plan(
        &scheduler,
        plan,
        &format!("lakecdp-load-{}-{}", task.run_id, task.entity),
    )
    .await;
    let batches = match ran {
        Ok(b) => b,
        Err(e) => {
            remove(lake.clone(), Arc::clone(&task)).await;
            return Err(Error::Cluster(format!(
                "table `{}.{}` could not be loaded on the cluster at {scheduler}: {e}",
                source.name, table.name
            )));
        }
    };
    match publish_parts(
        writer, source, &task, &lake, schema, batches, tasks, started,
    )
    .await
    {
        Ok(report) => Ok(report),
        Err(e) => {
            remove(lake.clone(), Arc::clone(&task)).await;
            Err(e)
        }
    }
}

/// Check what the tasks of a load reported and declare their parts in `writer`'s run;
/// what no finished task reported is removed.
#[allow(clippy::too_many_arguments)]
async fn publish_parts(
    writer: &mut lakecdp_lake::CdmFolderWriter,
    source: &SourceSpec,
    task: &TableTask,
    lake: &Lake,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    tasks: usize,
    started: std::time::Instant,
) -> Result<super::TableReport> {
    let table_name = &task.table;
    let keyed = task.primary_key.is_some();
    let mut parts = Vec::new();
    for b in &batches {
        parts.extend(part_stats(b)?);
    }
    parts.sort_by(|a, b| a.part.cmp(&b.part));
    let read: u64 = parts.iter().map(|p| p.read).sum();
    let written: u64 = parts.iter().map(|p| p.written).sum();
    let corrupt: u64 = parts.iter().map(|p| p.corrupt).sum();
    let expected_parts = task.groups.len().max(if keyed { tasks } else { 0 });
    if read != written + corrupt || parts.len() != expected_parts {
        return Err(Error::Internal(format!(
            "table `{}`: {read} rows read but {written} written and {corrupt} corrupt, in {} parts of {expected_parts}",
            table_name,
            parts.len()
        )));
    }
    let limit = source.corrupt_limit();
    if read > 0 && corrupt as f64 / read as f64 > limit {
        // the first in the order a local load reads
        let place = |file: &String| task.files.iter().position(|(n, _)| n == file);
        let mut examples: Vec<&(String, u64, String)> =
            parts.iter().flat_map(|p| &p.examples).collect();
        examples.sort_by_key(|(file, line, _)| (place(file), *line));
        let examples = examples
            .iter()
            .take(3)
            .map(|(file, line, reason)| format!("{file}:{line}: {reason}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::CorruptLimit {
            table: format!("{}.{}", source.name, table_name),
            corrupt,
            read,
            limit,
            examples,
        });
    }
    let mut reasons: HashMap<String, u64> = HashMap::new();
    for p in &parts {
        for (kind, n) in &p.reasons {
            *reasons.entry(kind.clone()).or_default() += n;
        }
    }
    let mut reasons: Vec<(String, u64)> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    // the empty parts are not declared, but an entity keeps one; what a task attempt
    // wrote that no finished task reported is removed
    let keep = |rows: Vec<(String, u64)>| -> Vec<(String, u64)> {
        let mut kept: Vec<(String, u64)> = rows.iter().filter(|(_, n)| *n > 0).cloned().collect();
        if kept.is_empty() {
            kept.extend(rows.first().cloned());
        }
        kept
    };
    let kept = keep(parts.iter().map(|p| (p.part.clone(), p.written)).collect());
    let kept_corrupt = keep(
        parts
            .iter()
            .map(|p| (p.corrupt_part.clone(), p.corrupt))
            .collect(),
    );
    for (entity, kept) in [(&task.entity, &kept), (&task.corrupt_entity, &kept_corrupt)] {
        for file in lake.list(&task.run_folder(entity)).await? {
            let Some(relative) = lake.relative(&file.location) else {
                continue;
            };
            if !kept.iter().any(|(k, _)| *k == relative) {
                lake.delete(&relative).await?;
            }
        }
    }
    writer.adopt_entity(&task.entity, None, schema, kept)?;
    writer.adopt_entity(
        &task.corrupt_entity,
        Some("rows that could not be loaded, with the reason"),
        corrupt::schema(),
        kept_corrupt,
    )?;
    Ok(super::TableReport {
        table: table_name.clone(),
        read,
        written,
        corrupt,
        seconds: started.elapsed().as_secs_f64(),
        reasons,
        replaced: 0,
        deleted: 0,
        incremental: None,
        local: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_balance_bytes_and_keep_order() {
        let g = groups(&[10, 1, 1, 8, 1], 2);
        assert_eq!(g, vec![vec![0, 4], vec![1, 2, 3]]);
        assert_eq!(groups(&[5, 5, 5], 8).len(), 3);
        assert_eq!(groups(&[], 4), vec![Vec::<usize>::new()]);
    }
}
