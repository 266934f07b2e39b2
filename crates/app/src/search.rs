//! Customer search and the customer card.
//!
//! Each process keeps, per environment, a search index ([`lakecdp_search`]) over the
//! published `Customer` table, stamped with the publish versions of the folders it was
//! built from (Unification, Activities, Measures, Segments). A search looks at those
//! versions at most every [`FRESHNESS`]; when they moved, it starts a rebuild in the
//! background and goes on answering from the index it has, which the finished build
//! replaces in one swap. Every document holds the profile's card (its columns, source
//! records, measures, segment memberships and latest activities), so opening a card
//! is one lookup.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arrow::array::{Array, ListArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use lakecdp_core::unify::SemanticType;
use lakecdp_core::{Environment, EnvironmentId, Operation, Process, ProjectFile};
use lakecdp_lake::publish::{publish_version, read_model};
use lakecdp_search::{CustomerDoc, SearchIndex, Shelf};
use serde::{Deserialize, Serialize};

use crate::app::{Actor, App};
use crate::error::{Error, ErrorKind, Result};

/// How long a search trusts the versions it last read before reading them again.
pub const FRESHNESS: Duration = Duration::from_secs(2);

/// How long a search waits for the first index of an environment to be built.
const FIRST_BUILD_WAIT: Duration = Duration::from_secs(60);

/// The latest activities a card keeps.
pub const CARD_ACTIVITIES: usize = 10;

/// At most this many results in one page.
pub const MAX_PAGE: usize = 100;

/// The separator of the fields packed into one text by the card query.
const UNIT: char = '\u{1f}';

/// One source record behind a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRecord {
    /// Its source.
    pub source: String,
    /// Its table.
    pub table: String,
    /// Its primary key.
    pub key: String,
}

/// One activity of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardActivity {
    /// Its type.
    pub activity_type: String,
    /// When (as published).
    pub time: String,
    /// Its title.
    pub title: String,
    /// Its description.
    pub description: String,
    /// Its URL.
    pub url: String,
    /// The table it came from.
    pub source_table: String,
}

/// Everything a customer card shows but the explanation of the joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerCard {
    /// The CustomerId.
    pub customer_id: String,
    /// The unified profile, column and value (empty values left out).
    pub profile: Vec<(String, String)>,
    /// Every source record behind it (`AlternateKey`).
    pub records: Vec<CardRecord>,
    /// Its customer measures, name and value.
    pub measures: Vec<(String, String)>,
    /// The segments it is a member of.
    pub segments: Vec<String>,
    /// Its latest activities, newest first (at most [`CARD_ACTIVITIES`]).
    pub activities: Vec<CardActivity>,
}

/// What a result row shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSummary {
    /// The name (first and last, or full).
    pub name: String,
    /// The first email.
    pub email: String,
    /// The first phone.
    pub phone: String,
    /// The city.
    pub city: String,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerHit {
    /// The CustomerId.
    pub customer_id: String,
    /// How well it matched.
    pub score: f32,
    /// What it shows.
    pub summary: CustomerSummary,
}

/// The index a search was answered from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexState {
    /// The publish versions it was built from.
    pub stamp: String,
    /// Profiles in it.
    pub profiles: u64,
    /// Whether a newer one is being built.
    pub rebuilding: bool,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerResults {
    /// The query.
    pub query: String,
    /// Profiles matching in all.
    pub total: usize,
    /// The first result's position.
    pub offset: usize,
    /// This page.
    pub hits: Vec<CustomerHit>,
    /// The index answering.
    pub index: IndexState,
}

struct Current {
    stamp: String,
    index: SearchIndex,
}

#[derive(Default)]
struct Progress {
    checked: Option<Instant>,
    building: Option<String>,
    failed: Option<String>,
}

struct EnvSearch {
    shelf: Shelf,
    current: RwLock<Option<Arc<Current>>>,
    progress: Mutex<Progress>,
    /// Bumped when a build ends (built or failed).
    generation: tokio::sync::watch::Sender<u64>,
}

/// The search indexes of this process.
#[derive(Default)]
pub(crate) struct Searches {
    dir: Mutex<Option<PathBuf>>,
    envs: Mutex<HashMap<EnvironmentId, Arc<EnvSearch>>>,
}

fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LAKECDP_SEARCH_DIR") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("lakecdp").join("search")
}

fn poisoned<T>(_: T) -> Error {
    Error::internal("a search lock was poisoned by a panic")
}

/// The stamp of the published folders a card reads: `u<v>-a<v>-m<v>-s<v>`, 0 for a
/// folder not published; `None` while there are no profiles.
async fn stamp(lake: &lakecdp_lake::Lake) -> Result<Option<String>> {
    let mut parts = Vec::new();
    for (letter, process) in [
        ('u', Process::Unification),
        ('a', Process::Activities),
        ('m', Process::Measures),
        ('s', Process::Segments),
    ] {
        let version = match read_model(lake, &process).await? {
            Some(model) => publish_version(&model).unwrap_or(1),
            None if letter == 'u' => return Ok(None),
            None => 0,
        };
        parts.push(format!("{letter}{version}"));
    }
    Ok(Some(parts.join("-")))
}

impl App {
    /// Keep this process's search indexes in `dir` (one folder per environment)
    /// instead of `$LAKECDP_SEARCH_DIR` or the user's cache folder.
    pub fn set_search_dir(&self, dir: impl Into<PathBuf>) {
        if let Ok(mut d) = self.inner().searches.dir.lock() {
            *d = Some(dir.into());
        }
    }

    fn env_search(&self, env: &Environment) -> Result<Arc<EnvSearch>> {
        let searches = &self.inner().searches;
        let dir = searches
            .dir
            .lock()
            .map_err(poisoned)?
            .clone()
            .unwrap_or_else(default_dir);
        let mut envs = searches.envs.lock().map_err(poisoned)?;
        Ok(envs
            .entry(env.id)
            .or_insert_with(|| {
                Arc::new(EnvSearch {
                    shelf: Shelf::new(dir.join(env.id.to_string())),
                    current: RwLock::new(None),
                    progress: Mutex::new(Progress::default()),
                    generation: tokio::sync::watch::channel(0).0,
                })
            })
            .clone())
    }

    /// The index to answer from: the current one (a rebuild started if the published
    /// folders moved on), or the first one once built.
    async fn index_for(&self, actor: &Actor, env: &Environment) -> Result<(Arc<Current>, bool)> {
        let es = self.env_search(env)?;
        let mut ended = es.generation.subscribe();
        let due = {
            let p = es.progress.lock().map_err(poisoned)?;
            p.checked.is_none_or(|at| at.elapsed() >= FRESHNESS)
        };
        if due {
            let lake = self.lake(env).await?;
            let latest = stamp(&lake).await?.ok_or_else(|| {
                Error::not_found(format!(
                    "environment `{}` has no profiles yet: run a refresh that unifies",
                    env.name
                ))
            })?;
            let have = es.current.read().map_err(poisoned)?.clone();
            let start = {
                let mut p = es.progress.lock().map_err(poisoned)?;
                p.checked = Some(Instant::now());
                let fresh = have.as_ref().is_some_and(|c| c.stamp == latest);
                if fresh || p.building.as_deref() == Some(latest.as_str()) {
                    false
                } else {
                    p.building = Some(latest.clone());
                    p.failed = None;
                    true
                }
            };
            if start {
                // an index built earlier (by this process or another on the machine)
                match es.shelf.open(&latest) {
                    Ok(Some(index)) => {
                        self.swap_in(&es, latest, index)?;
                    }
                    _ => {
                        let app = self.clone();
                        let actor = actor.clone();
                        let env = env.clone();
                        let es2 = es.clone();
                        tokio::spawn(async move {
                            let outcome = app.build_index(&actor, &env, &es2.shelf, &latest).await;
                            let outcome =
                                outcome.and_then(|index| app.swap_in(&es2, latest, index));
                            if let Err(e) = outcome {
                                tracing::warn!(environment = %env.name, error = %e, "the search index could not be built");
                                if let Ok(mut p) = es2.progress.lock() {
                                    p.building = None;
                                    p.failed = Some(e.message().to_string());
                                }
                            }
                            es2.generation.send_modify(|g| *g += 1);
                        });
                    }
                }
            }
        }
        loop {
            if let Some(c) = es.current.read().map_err(poisoned)?.clone() {
                let rebuilding = es.progress.lock().map_err(poisoned)?.building.is_some();
                return Ok((c, rebuilding));
            }
            {
                let p = es.progress.lock().map_err(poisoned)?;
                if let Some(why) = &p.failed {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!("the search index could not be built: {why}"),
                    ));
                }
            }
            match tokio::time::timeout(FIRST_BUILD_WAIT, ended.changed()).await {
                Ok(Ok(())) => continue,
                _ => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "the search index is still being built: try again in a moment",
                    ))
                }
            }
        }
    }

    fn swap_in(&self, es: &EnvSearch, stamp: String, index: SearchIndex) -> Result<()> {
        let keep = stamp.clone();
        *es.current.write().map_err(poisoned)? = Some(Arc::new(Current { stamp, index }));
        {
            let mut p = es.progress.lock().map_err(poisoned)?;
            if p.building.as_deref() == Some(keep.as_str()) {
                p.building = None;
            }
        }
        // older indexes stay readable by searches holding them (their files are mapped)
        if let Err(e) = es.shelf.remove_all_but(&keep) {
            tracing::warn!(error = %e, "an old search index could not be removed");
        }
        es.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Build the index of `stamp`: one query joins the profile with its source records,
    /// measures, segments and latest activities; the documents are indexed on a
    /// blocking thread as the batches stream in.
    async fn build_index(
        &self,
        actor: &Actor,
        env: &Environment,
        shelf: &Shelf,
        stamp: &str,
    ) -> Result<SearchIndex> {
        let started = Instant::now();
        let project = self.applied(actor, env).await?.project;
        let lake = self.lake(env).await?;
        let session = self
            .session(&lake, &project.environment.engine, false)
            .await?;
        let plan = card_query(&session).await?;
        let mut stream = session
            .context()
            .sql(&plan.sql)
            .await
            .map_err(|e| Error::internal(format!("the card query: {e}")))?
            .execute_stream()
            .await
            .map_err(|e| Error::internal(format!("the card query: {e}")))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
        let shelf = shelf.clone();
        let stamp = stamp.to_string();
        let columns = Columns::of(&project);
        let indexer = tokio::task::spawn_blocking(move || -> Result<(SearchIndex, u64, u64)> {
            let mut builder = shelf.build(&stamp).map_err(search_error)?;
            for batch in rx {
                for doc in documents(&batch, &plan, &columns)? {
                    builder.add(&doc).map_err(search_error)?;
                }
            }
            let built = builder.finish().map_err(search_error)?;
            let index = SearchIndex::open(&built.path).map_err(search_error)?;
            Ok((index, built.docs, built.bytes))
        });
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| Error::internal(format!("the card query: {e}")))?;
            if tx.send(batch).is_err() {
                break;
            }
        }
        drop(tx);
        let (index, docs, bytes) = indexer
            .await
            .map_err(|e| Error::internal(format!("the search indexer stopped: {e}")))??;
        tracing::info!(
            environment = %env.name,
            profiles = docs,
            bytes,
            seconds = started.elapsed().as_secs_f64(),
            "search index built"
        );
        Ok(index)
    }

    /// Profiles matching `query` (words, typos allowed; or a whole email, phone or
    /// CustomerId), `limit` of them from `offset`, best first (Viewer).
    pub async fn search_customers(
        &self,
        actor: &Actor,
        query: &str,
        offset: usize,
        limit: usize,
    ) -> Result<CustomerResults> {
        let env = self
            .environment_for(actor, None, Operation::ViewEnvironment)
            .await?;
        let (current, rebuilding) = self.index_for(actor, &env).await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let q = query.to_string();
        let c = current.clone();
        let hits = tokio::task::spawn_blocking(move || c.index.search(&q, offset, limit))
            .await
            .map_err(|e| Error::internal(format!("the search stopped: {e}")))?
            .map_err(search_error)?;
        Ok(CustomerResults {
            query: query.to_string(),
            total: hits.total,
            offset,
            hits: hits
                .hits
                .into_iter()
                .map(|h| CustomerHit {
                    customer_id: h.id,
                    score: h.score,
                    summary: serde_json::from_str(&h.summary).unwrap_or_default(),
                })
                .collect(),
            index: IndexState {
                stamp: current.stamp.clone(),
                profiles: current.index.docs(),
                rebuilding,
            },
        })
    }

    /// The card of a profile: its columns, source records, measures, segments and
    /// latest activities, from the search index (Viewer).
    pub async fn customer_card(&self, actor: &Actor, customer_id: &str) -> Result<CustomerCard> {
        let env = self
            .environment_for(actor, None, Operation::ViewEnvironment)
            .await?;
        let (current, _) = self.index_for(actor, &env).await?;
        let id = customer_id.to_string();
        let found = tokio::task::spawn_blocking(move || current.index.card(&id))
            .await
            .map_err(|e| Error::internal(format!("the card lookup stopped: {e}")))?
            .map_err(search_error)?;
        let text = found.ok_or_else(|| {
            Error::not_found(format!(
                "no profile `{customer_id}` in environment `{}` (its id may have changed: \
                 `lakecdp unify explain {customer_id}` shows its history)",
                env.name
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::internal(format!("a stored card is unreadable: {e}")))
    }
}

fn search_error(e: lakecdp_search::Error) -> Error {
    match e {
        lakecdp_search::Error::Stamp(_) => Error::invalid(e.to_string()),
        e => Error::new(ErrorKind::Unavailable, e.to_string()),
    }
}

/// Which profile columns feed the summary and the whole-value keys.
struct Columns {
    types: HashMap<String, SemanticType>,
}

impl Columns {
    fn of(project: &ProjectFile) -> Self {
        let mut types = HashMap::new();
        if let Some(u) = &project.unification {
            for t in &u.tables {
                for c in &t.columns {
                    types
                        .entry(c.output_name().to_ascii_lowercase())
                        .or_insert_with(|| c.semantic.clone());
                }
            }
        }
        Self { types }
    }

    fn kind(&self, column: &str) -> Option<&SemanticType> {
        self.types.get(&column.to_ascii_lowercase())
    }
}

/// The card query and where its parts are in each row.
struct CardPlan {
    sql: String,
    /// The profile's columns (the first of each row).
    profile: Vec<String>,
    /// The measure columns, by their names in the result (`__m<i>`) and as published.
    measures: Vec<(String, String)>,
    keys: bool,
    segments: bool,
    activities: bool,
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Register the published tables a card reads and write the query joining them.
async fn card_query(session: &lakecdp_engine::Session) -> Result<CardPlan> {
    let ctx = session.context();
    let lake = session.lake();
    let register = |name: &'static str, table| {
        ctx.register_table(name, table)
            .map(|_| ())
            .map_err(|e| Error::internal(e.to_string()))
    };
    let unification = read_model(lake, &Process::Unification)
        .await?
        .ok_or_else(|| Error::not_found("no profiles yet: run a refresh that unifies"))?;
    let customer = unification
        .entity("Customer")
        .ok_or_else(|| Error::not_found("the Unification folder has no Customer table"))?;
    register(
        "__card_customer",
        session.published_table("Unification", customer).await?,
    )?;
    let profile: Vec<String> = customer.attributes.iter().map(|a| a.name.clone()).collect();
    let mut select: Vec<String> = profile.iter().map(|c| format!("c.{}", quoted(c))).collect();
    let mut joins = Vec::new();

    let keys = match unification.entity("AlternateKey") {
        Some(e) => {
            register(
                "__card_keys",
                session.published_table("Unification", e).await?,
            )?;
            select.push("k.__keys".into());
            joins.push(format!(
                "LEFT JOIN (SELECT \"CustomerId\" AS __id, array_agg(concat_ws('{UNIT}', \
                 \"DataSourceName\", \"TableName\", \"AlternateValue\") ORDER BY \"DataSourceName\", \
                 \"TableName\", \"AlternateValue\") AS __keys FROM __card_keys GROUP BY \"CustomerId\") k \
                 ON c.\"CustomerId\" = k.__id"
            ));
            true
        }
        None => false,
    };

    let mut measures = Vec::new();
    if let Some(model) = read_model(lake, &Process::Measures).await? {
        if let Some(e) = model.entity("Customer_Measure") {
            register(
                "__card_measures",
                session.published_table("Measures", e).await?,
            )?;
            for (i, a) in e
                .attributes
                .iter()
                .filter(|a| a.name != "CustomerId")
                .enumerate()
            {
                let alias = format!("__m{i}");
                select.push(format!("m.{} AS {alias}", quoted(&a.name)));
                measures.push((alias, a.name.clone()));
            }
            joins.push("LEFT JOIN __card_measures m ON c.\"CustomerId\" = m.\"CustomerId\"".into());
        }
    }

    let mut segments = false;
    if let Some(model) = read_model(lake, &Process::Segments).await? {
        if let Some(e) = model.entity("SegmentMembership") {
            register(
                "__card_segments",
                session.published_table("Segments", e).await?,
            )?;
            select.push("s.\"Segments\" AS __segments".into());
            joins.push("LEFT JOIN __card_segments s ON c.\"CustomerId\" = s.\"CustomerId\"".into());
            segments = true;
        }
    }

    let mut activities = false;
    if let Some(model) = read_model(lake, &Process::Activities).await? {
        if let Some(e) = model.entity("UnifiedActivity") {
            register(
                "__card_activities",
                session.published_table("Activities", e).await?,
            )?;
            select.push("a.__activities".into());
            joins.push(format!(
                "LEFT JOIN (SELECT __id, array_agg(__a ORDER BY __t DESC, __a) AS __activities FROM \
                 (SELECT \"CustomerId\" AS __id, \"ActivityTimeStamp\" AS __t, concat_ws('{UNIT}', \
                 \"ActivityType\", CAST(\"ActivityTimeStamp\" AS VARCHAR), coalesce(\"Title\", ''), \
                 coalesce(\"Description\", ''), coalesce(\"URL\", ''), \"SourceTableName\") AS __a, \
                 row_number() OVER (PARTITION BY \"CustomerId\" ORDER BY \"ActivityTimeStamp\" DESC, \
                 \"ActivityId\") AS __n FROM __card_activities) WHERE __n <= {CARD_ACTIVITIES} \
                 GROUP BY __id) a ON c.\"CustomerId\" = a.__id"
            ));
            activities = true;
        }
    }

    Ok(CardPlan {
        sql: format!(
            "SELECT {} FROM __card_customer c {}",
            select.join(", "),
            joins.join(" ")
        ),
        profile,
        measures,
        keys,
        segments,
        activities,
    })
}

/// A column of a batch as text (`None` for a column that cannot be cast).
fn texts(batch: &RecordBatch, name: &str) -> Option<StringArray> {
    let c = batch.column_by_name(name)?;
    let c = match c.data_type() {
        DataType::Float32 | DataType::Float64 => {
            // measures read better rounded than in full precision
            let f = cast(c, &DataType::Float64).ok()?;
            let f = f.as_any().downcast_ref::<arrow::array::Float64Array>()?;
            let s: StringArray = f
                .iter()
                .map(|v| v.map(|v| format!("{}", (v * 100.0).round() / 100.0)))
                .collect();
            return Some(s);
        }
        _ => cast(c, &DataType::Utf8).ok()?,
    };
    c.as_any().downcast_ref::<StringArray>().cloned()
}

fn list_texts(batch: &RecordBatch, name: &str, row: usize) -> Vec<String> {
    let Some(list) = batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<ListArray>())
    else {
        return Vec::new();
    };
    if list.is_null(row) {
        return Vec::new();
    }
    let values = list.value(row);
    let Ok(values) = cast(&values, &DataType::Utf8) else {
        return Vec::new();
    };
    let Some(values) = values.as_any().downcast_ref::<StringArray>() else {
        return Vec::new();
    };
    values.iter().flatten().map(str::to_string).collect()
}

fn at(a: &Option<StringArray>, row: usize) -> Option<&str> {
    a.as_ref()
        .filter(|a| !a.is_null(row))
        .map(|a| a.value(row))
        .filter(|v| !v.trim().is_empty())
}

/// The documents of one batch of the card query.
fn documents(batch: &RecordBatch, plan: &CardPlan, columns: &Columns) -> Result<Vec<CustomerDoc>> {
    let profile: Vec<(String, Option<StringArray>)> = plan
        .profile
        .iter()
        .map(|c| (c.clone(), texts(batch, c)))
        .collect();
    let ids = texts(batch, "CustomerId")
        .ok_or_else(|| Error::internal("the Customer table has no CustomerId"))?;
    let measures: Vec<(&str, Option<StringArray>)> = plan
        .measures
        .iter()
        .map(|(alias, name)| (name.as_str(), texts(batch, alias)))
        .collect();
    let segments = plan.segments.then(|| texts(batch, "__segments")).flatten();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        if ids.is_null(row) {
            continue;
        }
        let id = ids.value(row).to_string();
        let mut card = CustomerCard {
            customer_id: id.clone(),
            profile: Vec::new(),
            records: Vec::new(),
            measures: Vec::new(),
            segments: Vec::new(),
            activities: Vec::new(),
        };
        let mut doc = CustomerDoc {
            id: id.clone(),
            ..Default::default()
        };
        let mut summary = CustomerSummary::default();
        let (mut first, mut last, mut full) = (String::new(), String::new(), String::new());
        for (name, values) in &profile {
            if name == "CustomerId" {
                continue;
            }
            let Some(v) = at(values, row) else { continue };
            card.profile.push((name.clone(), v.to_string()));
            if v.len() <= 256 {
                doc.text.push(v.to_string());
            }
            let kind = columns.kind(name);
            let lower = name.to_ascii_lowercase();
            let fill = |slot: &mut String| {
                if slot.is_empty() {
                    *slot = v.to_string();
                }
            };
            match kind {
                Some(SemanticType::Email) => {
                    doc.keys.push(v.to_string());
                    fill(&mut summary.email);
                }
                Some(SemanticType::Phone) => {
                    doc.keys.push(v.to_string());
                    fill(&mut summary.phone);
                }
                Some(SemanticType::FirstName) => fill(&mut first),
                Some(SemanticType::LastName) => fill(&mut last),
                Some(SemanticType::FullName) => fill(&mut full),
                Some(SemanticType::City) => fill(&mut summary.city),
                _ if lower.contains("email") => {
                    doc.keys.push(v.to_string());
                    fill(&mut summary.email);
                }
                _ if lower.contains("phone") => {
                    doc.keys.push(v.to_string());
                    fill(&mut summary.phone);
                }
                _ => {}
            }
        }
        summary.name = if full.is_empty() {
            format!("{first} {last}").trim().to_string()
        } else {
            full
        };
        if plan.keys {
            for packed in list_texts(batch, "__keys", row) {
                let mut parts = packed.splitn(3, UNIT);
                let (Some(source), Some(table), Some(key)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                doc.keys.push(key.to_string());
                card.records.push(CardRecord {
                    source: source.into(),
                    table: table.into(),
                    key: key.into(),
                });
            }
        }
        for (name, values) in &measures {
            if let Some(v) = at(values, row) {
                card.measures.push((name.to_string(), v.to_string()));
            }
        }
        if let Some(v) = at(&segments, row) {
            card.segments = serde_json::from_str(v).unwrap_or_else(|_| vec![v.to_string()]);
        }
        if plan.activities {
            for packed in list_texts(batch, "__activities", row) {
                let p: Vec<&str> = packed.splitn(6, UNIT).collect();
                let get = |i: usize| p.get(i).copied().unwrap_or_default().to_string();
                card.activities.push(CardActivity {
                    activity_type: get(0),
                    time: get(1),
                    title: get(2),
                    description: get(3),
                    url: get(4),
                    source_table: get(5),
                });
            }
        }
        doc.summary =
            serde_json::to_string(&summary).map_err(|e| Error::internal(e.to_string()))?;
        doc.card = serde_json::to_string(&card).map_err(|e| Error::internal(e.to_string()))?;
        out.push(doc);
    }
    Ok(out)
}
