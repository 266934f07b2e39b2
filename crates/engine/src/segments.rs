//! Segments: named sets of customers computed from rules over the tables registered in
//! a session (`Customer`, and any table with a `CustomerId` such as `Customer_Measure`
//! or `UnifiedActivity`), published atomically as the `Segments/` CDM folder.
//!
//! # Plans
//!
//! Conditions compile to DataFusion DataFrame plans (`filter`, semi joins, `union`,
//! `intersect`, `except` over sets of `CustomerId`); names become column references and
//! values become literals, so no text of a specification is ever read as SQL.
//!
//! Leaves on the same table inside one `all` or `any` group (and its nested groups when
//! they touch only that table) become one predicate over that table's rows, then the
//! set of customers with at least one such row: `all` over `UnifiedActivity` asks for
//! one activity satisfying every condition. A null satisfies no comparison; only
//! `is_empty` selects it. `contains` and `starts_with` ignore case.
//!
//! # Runs
//!
//! Segments are evaluated in dependency order (a segment after those it refers to),
//! each once; computed members are always customers of `Customer`. A static segment
//! whose table the current `Segments/` folder already holds keeps those members as they
//! are (computed once, by its first run); a dynamic one is recomputed. A segment that
//! refers to a static one sees the kept members. The run publishes `SegmentMembership` (`CustomerId`, `Segments`: a JSON
//! list of segment names, for customers in at least one segment) and one table per
//! segment (`CustomerId` and its projected `Customer` columns) in one commit, then
//! appends the member counts to `_lakecdp/segments/history.json`. A run that fails
//! publishes nothing; the history is written after the commit, so a crash between the
//! two loses one history entry, never a published table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use datafusion::common::{Column, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::JoinType;
use datafusion::prelude::{cast, ident, lit, Expr, SessionContext};
use lakecdp_core::segment::{
    evaluation_order, validate_segments, Condition, ConditionNode, SegmentKind, SegmentSpec,
    SetOperator, CUSTOMER_ID, CUSTOMER_TABLE, MEMBERSHIP_ENTITY,
};
use lakecdp_core::{ConfigErrors, RunId};
use lakecdp_lake::publish::read_model;
use lakecdp_lake::{CdmFolderWriter, Lake, Process};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, Session};

/// Where the member-count history lives, under the lake's internal folder.
pub const HISTORY_FILE: &str = "segments/history.json";

/// What a run of segments did.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentsReport {
    /// The published run.
    pub run_id: RunId,
    /// One entry per segment, in declaration order.
    pub segments: Vec<SegmentResult>,
    /// Rows of `SegmentMembership` (customers in at least one segment).
    pub membership_rows: u64,
}

/// One segment of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentResult {
    /// The segment.
    pub name: String,
    /// Static or dynamic.
    pub kind: SegmentKind,
    /// Members in this run.
    pub members: u64,
    /// Members now minus members in the previous run of the history (`None` when the
    /// segment is new).
    pub change: Option<i64>,
    /// True when a static segment kept the members it had already published.
    pub kept: bool,
    /// Time spent computing the members.
    pub elapsed: Duration,
}

/// One run in the member-count history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The published run.
    pub run_id: RunId,
    /// The run's time (the one relative windows were counted from).
    pub time: DateTime<Utc>,
    /// Members by segment name.
    pub counts: BTreeMap<String, u64>,
}

/// Compute every segment of `specs` over the tables registered in `session`, publish
/// `Segments/` and append the counts to the history. `now` is the run's time, from
/// which relative windows (`within`) are counted.
pub async fn run(
    session: &Session,
    specs: &[SegmentSpec],
    now: DateTime<Utc>,
    retention: u32,
) -> Result<SegmentsReport> {
    let errors = validate_segments(specs);
    if !errors.is_empty() {
        return Err(Error::Config(ConfigErrors(errors)));
    }
    let ctx = session.context();
    let lake = session.lake();
    let previous = read_model(lake, &Process::Segments).await?;
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    // each segment's members as a table of the session, for the segments that refer to
    // it and for its own table
    let mut sets: HashMap<String, DataFrame> = HashMap::new();
    let mut results: HashMap<String, SegmentResult> = HashMap::new();
    for i in evaluation_order(specs) {
        let spec = &specs[i];
        let started = Instant::now();
        let mut kept = false;
        let ids = match previous
            .as_ref()
            .and_then(|m| m.entity(&spec.name))
            .filter(|_| spec.kind == SegmentKind::Static)
        {
            Some(entity) => {
                kept = true;
                let batches =
                    lakecdp_lake::partition::read_entity(lake, &Process::Segments.folder(), entity)
                        .await?;
                let mut ids = Vec::new();
                for b in &batches {
                    ids.extend(customer_ids(b, &spec.name)?);
                }
                ids.sort();
                ids.dedup();
                ids
            }
            None => compute(ctx, spec, now, &sets).await?,
        };
        results.insert(
            spec.name.clone(),
            SegmentResult {
                name: spec.name.clone(),
                kind: spec.kind,
                members: ids.len() as u64,
                change: None,
                kept,
                elapsed: started.elapsed(),
            },
        );
        sets.insert(
            spec.name.clone(),
            session
                .table_of(ids_schema(), vec![ids_batch(&ids)?])
                .await?,
        );
        members.insert(spec.name.clone(), ids);
    }

    // The segments' tables, checked before anything is written.
    let customer = table(ctx, CUSTOMER_TABLE, "", None).await?;
    let mut outputs = Vec::with_capacity(specs.len());
    for spec in specs {
        let set = sets
            .get(&spec.name)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("segment `{}` was not computed", spec.name)))?;
        outputs.push(segment_table(&customer, spec, set)?);
    }
    let membership = membership(specs, &members)?;

    let mut writer = CdmFolderWriter::begin(lake, Process::Segments, retention).await?;
    writer.describe("Segment members");
    let written = write_all(&mut writer, specs, outputs, membership).await;
    let membership_rows = match written {
        Ok(rows) => rows,
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, "could not remove the files of a failed segments run");
            }
            return Err(e);
        }
    };
    let published = writer.commit().await?;

    let mut history = history(lake).await?;
    let last = history.last().map(|h| h.counts.clone()).unwrap_or_default();
    let mut segments = Vec::with_capacity(specs.len());
    for spec in specs {
        if let Some(mut r) = results.remove(&spec.name) {
            r.change = last
                .get(&spec.name)
                .map(|&before| r.members as i64 - before as i64);
            segments.push(r);
        }
    }
    history.push(HistoryEntry {
        run_id: published.run_id.clone(),
        time: now,
        counts: segments
            .iter()
            .map(|r| (r.name.clone(), r.members))
            .collect(),
    });
    let bytes = serde_json::to_vec_pretty(&history)
        .map_err(|e| Error::Internal(format!("segments history does not serialize: {e}")))?;
    lake.put(&lake.internal(HISTORY_FILE), bytes).await?;
    Ok(SegmentsReport {
        run_id: published.run_id,
        segments,
        membership_rows,
    })
}

/// The member-count history of the environment's segments, oldest run first (empty
/// before the first run).
pub async fn history(lake: &Lake) -> Result<Vec<HistoryEntry>> {
    let path = lake.internal(HISTORY_FILE);
    match lake.get(&path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("segments history `{path}` does not parse: {e}"))),
        Err(lakecdp_lake::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Count the customers `condition` selects and return up to `sample` of their
/// `Customer` rows (by `CustomerId`), publishing nothing. A `segment = "X"` condition
/// reads the members `X` has in the published `Segments/` folder.
pub async fn preview(
    session: &Session,
    condition: &ConditionNode,
    now: DateTime<Utc>,
    sample: usize,
) -> Result<(u64, RecordBatch)> {
    const PREVIEW: &str = "preview";
    let ctx = session.context();
    let mut sets = HashMap::new();
    let mut references = condition.references();
    references.sort_unstable();
    references.dedup();
    if !references.is_empty() {
        let model = read_model(session.lake(), &Process::Segments).await?;
        for name in references {
            let Some(entity) = model.as_ref().and_then(|m| m.entity(name)) else {
                return Err(Error::Segment {
                    segment: PREVIEW.into(),
                    message: format!("segment `{name}` is not published; run the segments first"),
                });
            };
            // the published members, read where they are
            let table = session
                .published_table(&Process::Segments.folder(), entity)
                .await?;
            if table.schema().field_with_name(CUSTOMER_ID).is_err() {
                return Err(Error::Segment {
                    segment: name.to_string(),
                    message: format!("the published members have no `{CUSTOMER_ID}` column"),
                });
            }
            let set = ctx
                .read_table(table)?
                .filter(ident(CUSTOMER_ID).is_not_null())?
                .select(vec![
                    cast(ident(CUSTOMER_ID), DataType::Utf8).alias(CUSTOMER_ID)
                ])?
                .distinct()?;
            sets.insert(name.to_string(), set);
        }
    }
    let mut compiler = Compiler::new(ctx, PREVIEW, now, &sets);
    compiler.load(condition, 0).await?;
    let customer = compiler.table(CUSTOMER_TABLE, 0)?;
    let set = compiler.set(condition)?;
    let set = compiler.restrict(set, &customer)?;
    let ids = collect_ids(set, PREVIEW).await?;
    let rows = customer
        .alias("c")?
        .join_on(
            session
                .table_of(ids_schema(), vec![ids_batch(&ids)?])
                .await?
                .alias("m")?,
            JoinType::LeftSemi,
            [cast(qualified("c", CUSTOMER_ID), DataType::Utf8).eq(qualified("m", CUSTOMER_ID))],
        )?
        .sort(vec![ident(CUSTOMER_ID).sort(true, false)])?
        .limit(0, Some(sample))?;
    let schema: SchemaRef = Arc::new(rows.schema().as_arrow().clone());
    let batches = rows.collect().await?;
    let sample = arrow::compute::concat_batches(&schema, &batches)?;
    Ok((ids.len() as u64, sample))
}

/// The members of one segment.
async fn compute(
    ctx: &SessionContext,
    spec: &SegmentSpec,
    now: DateTime<Utc>,
    sets: &HashMap<String, DataFrame>,
) -> Result<Vec<String>> {
    let mut compiler = Compiler::new(ctx, &spec.name, now, sets);
    for (j, rule) in spec.rules.iter().enumerate() {
        compiler.load(&rule.condition, j).await?;
    }
    let customer = table(ctx, CUSTOMER_TABLE, &spec.name, None).await?;
    let mut result: Option<DataFrame> = None;
    for (j, rule) in spec.rules.iter().enumerate() {
        compiler.rule = j;
        let set = compiler.set(&rule.condition)?;
        result = Some(match result {
            None => set,
            Some(acc) => match rule.operator {
                SetOperator::Union => acc.union(set)?,
                SetOperator::Intersect => acc.intersect_distinct(set)?,
                SetOperator::Except => acc.except_distinct(set)?,
            },
        });
    }
    let Some(set) = result else {
        return Ok(Vec::new());
    };
    let set = compiler.restrict(set, &customer)?;
    collect_ids(set, &spec.name).await
}

/// A registered table, or an error naming the segment, the rule and the tables there
/// are.
async fn table(
    ctx: &SessionContext,
    name: &str,
    segment: &str,
    rule: Option<usize>,
) -> Result<DataFrame> {
    // The name as written, then as DataFusion normalises an identifier (lower case).
    let exact = TableReference::bare(name);
    if ctx.table_exist(exact.clone())? {
        return Ok(ctx.table(exact).await?);
    }
    if ctx.table_exist(name)? {
        return Ok(ctx.table(name).await?);
    }
    let state = ctx.state();
    let options = &state.config().options().catalog;
    let mut tables = ctx
        .catalog(&options.default_catalog)
        .and_then(|c| c.schema(&options.default_schema))
        .map(|s| s.table_names())
        .unwrap_or_default();
    tables.sort();
    let at = rule.map(|j| format!("rule {j}: ")).unwrap_or_default();
    Err(Error::Segment {
        segment: segment.into(),
        message: format!(
            "{at}table `{name}` is not registered; the tables are {}",
            if tables.is_empty() {
                "none".to_string()
            } else {
                tables.join(", ")
            }
        ),
    })
}

/// A condition compiled as far as it can stay one predicate over one table's rows.
enum Compiled {
    /// Rows of `table` satisfying `expr`.
    Rows { table: String, expr: Expr },
    /// A set of customers (one `CustomerId` column, Utf8).
    Set(DataFrame),
}

struct Compiler<'a> {
    ctx: &'a SessionContext,
    segment: String,
    now: DateTime<Utc>,
    /// The members of the segments a condition may name, as tables of `CustomerId`.
    sets: &'a HashMap<String, DataFrame>,
    tables: HashMap<String, DataFrame>,
    rule: usize,
    aliases: std::cell::Cell<usize>,
}

impl<'a> Compiler<'a> {
    fn new(
        ctx: &'a SessionContext,
        segment: &str,
        now: DateTime<Utc>,
        sets: &'a HashMap<String, DataFrame>,
    ) -> Self {
        Self {
            ctx,
            segment: segment.into(),
            now,
            sets,
            tables: HashMap::new(),
            rule: 0,
            aliases: std::cell::Cell::new(0),
        }
    }

    fn error(&self, message: String) -> Error {
        Error::Segment {
            segment: self.segment.clone(),
            message: format!("rule {}: {message}", self.rule),
        }
    }

    /// Look up every table `node` uses (and `Customer`), checking each has a
    /// `CustomerId`.
    async fn load(&mut self, node: &ConditionNode, rule: usize) -> Result<()> {
        let mut names = BTreeSet::from([CUSTOMER_TABLE.to_string()]);
        names.extend(node.tables().into_iter().map(str::to_string));
        for name in names {
            if self.tables.contains_key(&name) {
                continue;
            }
            let df = table(self.ctx, &name, &self.segment, Some(rule)).await?;
            if df
                .schema()
                .field_with_unqualified_name(CUSTOMER_ID)
                .is_err()
            {
                return Err(Error::Segment {
                    segment: self.segment.clone(),
                    message: format!(
                        "rule {rule}: table `{name}` has no `{CUSTOMER_ID}` column, so its rows cannot be tied to customers"
                    ),
                });
            }
            self.tables.insert(name, df);
        }
        Ok(())
    }

    fn table(&self, name: &str, rule: usize) -> Result<DataFrame> {
        self.tables
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Segment {
                segment: self.segment.clone(),
                message: format!("rule {rule}: table `{name}` is not registered"),
            })
    }

    fn alias(&self, df: DataFrame) -> Result<DataFrame> {
        let n = self.aliases.get();
        self.aliases.set(n + 1);
        Ok(df.alias(&format!("s{n}"))?)
    }

    /// The customers of `set` that are in `Customer`.
    fn restrict(&self, set: DataFrame, customer: &DataFrame) -> Result<DataFrame> {
        let all = self.rows_to_set(customer.clone(), lit(true))?;
        Ok(self.alias(set)?.intersect_distinct(all)?)
    }

    fn set(&self, node: &ConditionNode) -> Result<DataFrame> {
        match self.compile(node)? {
            Compiled::Set(df) => Ok(df),
            Compiled::Rows { table, expr } => {
                let df = self.table(&table, self.rule)?;
                self.rows_to_set(df, expr)
            }
        }
    }

    fn rows_to_set(&self, df: DataFrame, expr: Expr) -> Result<DataFrame> {
        let df = df
            .filter(expr)?
            .select(vec![
                cast(ident(CUSTOMER_ID), DataType::Utf8).alias(CUSTOMER_ID)
            ])?
            .filter(ident(CUSTOMER_ID).is_not_null())?
            .distinct()?;
        self.alias(df)
    }

    fn compile(&self, node: &ConditionNode) -> Result<Compiled> {
        match node {
            ConditionNode::Leaf(c) => Ok(Compiled::Rows {
                table: c.table.clone(),
                expr: self.leaf(c)?,
            }),
            ConditionNode::Segment { segment } => {
                let set = self.sets.get(segment).ok_or_else(|| {
                    self.error(format!("segment `{segment}` has no members computed"))
                })?;
                Ok(Compiled::Set(self.alias(set.clone())?))
            }
            ConditionNode::All { all: children } => self.group(children, true),
            ConditionNode::Any { any: children } => self.group(children, false),
        }
    }

    /// `all` (`and`) or `any`: predicates on one table merge into one; the rest are
    /// sets combined by intersection or union.
    fn group(&self, children: &[ConditionNode], and: bool) -> Result<Compiled> {
        let mut rows: Vec<(String, Expr)> = Vec::new();
        let mut sets = Vec::new();
        for child in children {
            match self.compile(child)? {
                Compiled::Rows { table, expr } => {
                    match rows.iter_mut().find(|(t, _)| *t == table) {
                        Some((_, e)) => {
                            let prev = std::mem::replace(e, lit(true));
                            *e = if and { prev.and(expr) } else { prev.or(expr) };
                        }
                        None => rows.push((table, expr)),
                    }
                }
                Compiled::Set(df) => sets.push(df),
            }
        }
        if sets.is_empty() && rows.len() == 1 {
            let (table, expr) = rows.remove(0);
            return Ok(Compiled::Rows { table, expr });
        }
        for (table, expr) in rows {
            let df = self.table(&table, self.rule)?;
            sets.push(self.rows_to_set(df, expr)?);
        }
        let mut iter = sets.into_iter();
        let Some(mut acc) = iter.next() else {
            // An empty group: `all` holds for everyone, `any` for no one.
            return Ok(Compiled::Rows {
                table: CUSTOMER_TABLE.into(),
                expr: lit(and),
            });
        };
        for next in iter {
            acc = if and {
                acc.intersect_distinct(next)?
            } else {
                acc.union(next)?
            };
        }
        Ok(Compiled::Set(self.alias(acc)?))
    }

    fn leaf(&self, c: &Condition) -> Result<Expr> {
        let df = self.table(&c.table, self.rule)?;
        let field = match df.schema().field_with_unqualified_name(&c.column) {
            Ok(f) => f.clone(),
            Err(_) => {
                let columns: Vec<&str> = df
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                return Err(self.error(format!(
                    "`{}` has no column `{}`; its columns are {}",
                    c.table,
                    c.column,
                    columns.join(", ")
                )));
            }
        };
        let name = format!("{}.{}", c.table, c.column);
        crate::condition::expr(crate::condition::Test {
            column: ident(c.column.clone()),
            name: &name,
            dtype: field.data_type(),
            op: &c.op,
            value: c.value.as_ref(),
            now: self.now,
        })
        .map_err(|m| self.error(m))
    }
}

/// A column of the input aliased `relation`, taken as written.
fn qualified(relation: &str, name: &str) -> Expr {
    Expr::Column(Column::new(Some(TableReference::bare(relation)), name))
}

fn ids_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        CUSTOMER_ID,
        DataType::Utf8,
        false,
    )]))
}

fn ids_batch(ids: &[String]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        ids_schema(),
        vec![Arc::new(StringArray::from_iter_values(ids))],
    )?)
}

/// The `CustomerId` values of a batch, as text, nulls left out.
fn customer_ids(batch: &RecordBatch, segment: &str) -> Result<Vec<String>> {
    let column = batch
        .column_by_name(CUSTOMER_ID)
        .ok_or_else(|| Error::Segment {
            segment: segment.into(),
            message: format!("the published members have no `{CUSTOMER_ID}` column"),
        })?;
    let text = arrow::compute::cast(column, &DataType::Utf8)?;
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::Internal("a cast to Utf8 gave another type".into()))?;
    Ok((0..text.len())
        .filter(|&i| text.is_valid(i))
        .map(|i| text.value(i).to_string())
        .collect())
}

/// The sorted, distinct ids of a set.
async fn collect_ids(set: DataFrame, segment: &str) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for b in set.collect().await? {
        ids.extend(customer_ids(&b, segment)?);
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// The plan of a segment's table: its members with their projected `Customer` columns.
fn segment_table(
    customer: &DataFrame,
    spec: &SegmentSpec,
    members: DataFrame,
) -> Result<DataFrame> {
    let columns: Vec<&String> = spec
        .projected_columns
        .iter()
        .filter(|c| c.as_str() != CUSTOMER_ID)
        .collect();
    for (k, c) in columns.iter().enumerate() {
        if customer.schema().field_with_unqualified_name(c).is_err() {
            let have: Vec<&str> = customer
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            return Err(Error::Segment {
                segment: spec.name.clone(),
                message: format!(
                    "projected column {k}: `Customer` has no column `{c}`; its columns are {}",
                    have.join(", ")
                ),
            });
        }
    }
    const KEY: &str = "__lakecdp_customer_id";
    let mut select = vec![cast(ident(CUSTOMER_ID), DataType::Utf8).alias(KEY)];
    select.extend(columns.iter().map(|c| ident(c.as_str())));
    let profile = customer.clone().select(select)?.alias("c")?;
    let mut out = vec![qualified("m", CUSTOMER_ID)];
    out.extend(columns.iter().map(|c| ident(c.as_str())));
    Ok(members
        .alias("m")?
        .join_on(
            profile,
            JoinType::Left,
            [qualified("m", CUSTOMER_ID).eq(qualified("c", KEY))],
        )?
        .select(out)?
        .sort(vec![ident(CUSTOMER_ID).sort(true, false)])?)
}

/// `SegmentMembership`: each customer in at least one segment, with the JSON list of
/// its segments in declaration order.
fn membership(
    specs: &[SegmentSpec],
    members: &HashMap<String, Vec<String>>,
) -> Result<RecordBatch> {
    let mut by_customer: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for spec in specs {
        for id in members.get(&spec.name).into_iter().flatten() {
            by_customer.entry(id).or_default().push(&spec.name);
        }
    }
    let mut lists = Vec::with_capacity(by_customer.len());
    for names in by_customer.values() {
        lists.push(
            serde_json::to_string(names)
                .map_err(|e| Error::Internal(format!("segment names do not serialize: {e}")))?,
        );
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new(CUSTOMER_ID, DataType::Utf8, false),
        Field::new("Segments", DataType::Utf8, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(by_customer.keys())),
            Arc::new(StringArray::from_iter_values(lists)),
        ],
    )?)
}

async fn write_all(
    writer: &mut CdmFolderWriter,
    specs: &[SegmentSpec],
    outputs: Vec<DataFrame>,
    membership: RecordBatch,
) -> Result<u64> {
    let schema = membership.schema();
    let rows = writer
        .write_entity(
            MEMBERSHIP_ENTITY,
            Some("each customer in at least one segment, with the JSON list of its segments"),
            schema,
            futures::stream::iter(vec![Ok::<_, String>(membership)]),
        )
        .await?;
    for (spec, df) in specs.iter().zip(outputs) {
        let stream = df.execute_stream().await?;
        let schema = stream.schema();
        let description = spec
            .description
            .clone()
            .unwrap_or_else(|| format!("members of segment {}", spec.name));
        writer
            .write_entity(&spec.name, Some(&description), schema, stream)
            .await?;
    }
    Ok(rows)
}
