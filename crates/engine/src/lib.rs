//! The engine: the processes of a refresh and the DataFusion sessions they run in.
//!
//! - Ingestion reads sources with lakecdp's own readers (exact corrupt-row reasons need
//!   them) into Arrow batches and publishes them.
//! - Unification matches in `lakecdp-match`, in memory, over the ingested tables.
//! - Activities, measures, segments, report data, exports and explain are DataFusion
//!   plans over published tables, registered as listing tables over the partition files
//!   their `model.json` names ([`Session::published_table`]): streamed, with projection
//!   and filters pushed down.
//!
//! A [`Session`] runs on DataFusion in this process ([`EngineKind::Local`], the default)
//! or on a Ballista cluster ([`EngineKind::Ballista`], with the cargo feature
//! `distributed`, on by default): standalone inside the process, or lakecdp's own
//! scheduler and executor processes ([`cluster`]).
#![warn(missing_docs)]

pub mod activities;
#[cfg(feature = "distributed")]
pub mod cluster;
mod condition;
pub mod confined;
pub mod functions;
pub mod graph;
pub mod ingest;
#[cfg(feature = "distributed")]
mod lazy;
pub mod measures;
pub mod reports;
pub mod segments;
pub mod source;
pub mod unify;

use std::sync::Arc;

use datafusion::prelude::{SessionConfig, SessionContext};
use lakecdp_lake::Lake;
use url::Url;

/// The URL scheme under which an environment's lake is registered in a session.
pub const LAKE_SCHEME: &str = "lakecdp";

/// The URL under which the store of environment `env`'s lake is registered in a session
/// (and in a cluster's scheduler and executors): `lakecdp://<environment id>/`.
pub fn lake_url(env: lakecdp_core::EnvironmentId) -> Url {
    // A UUID is a valid host: parsing cannot fail.
    Url::parse(&format!("{LAKE_SCHEME}://{env}/")).unwrap_or_else(|_| unreachable!("a UUID host"))
}

/// The environment whose lake `url` names, if it is a lake URL.
pub fn environment_of(url: &Url) -> Option<lakecdp_core::EnvironmentId> {
    if url.scheme() != LAKE_SCHEME {
        return None;
    }
    url.host_str()?.parse().ok()
}

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A query failed.
    #[error("query failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// Arrow failed on data.
    #[error("data error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The lake refused a read or write.
    #[error(transparent)]
    Lake(#[from] lakecdp_lake::Error),
    /// Too many rows of a table are corrupt; nothing was published.
    #[error("table {table}: {corrupt} of {read} rows are corrupt ({:.1}%), above the limit of {:.1}%; nothing was published. First reasons: {examples}. Fix the data, or raise `max_corrupt_share` of the source", *corrupt as f64 * 100.0 / *read as f64, limit * 100.0)]
    CorruptLimit {
        /// `Source.Table`.
        table: String,
        /// Corrupt rows.
        corrupt: u64,
        /// Rows read.
        read: u64,
        /// The limit (share).
        limit: f64,
        /// The first reasons, with file and line.
        examples: String,
    },
    /// A configuration is invalid; every problem names its key and its fix.
    #[error(transparent)]
    Config(#[from] lakecdp_core::ConfigErrors),
    /// A segment cannot be computed as declared (an unknown table or column, a value of
    /// the wrong type).
    #[error("segment `{segment}`: {message}")]
    Segment {
        /// The segment (or `preview`).
        segment: String,
        /// What is wrong, with the rule and what exists.
        message: String,
    },
    /// A measure cannot run as declared (a table or column it names does not exist, a
    /// value does not fit its column).
    #[error("measure `{measure}`: {message}")]
    Measure {
        /// The measure's name.
        measure: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An invariant of the engine broke.
    #[error("internal error: {0}")]
    Internal(String),
    /// A source table cannot be read as declared.
    #[error("{0}")]
    Source(String),
    /// A source's own metadata (a CDM folder's `model.json` or manifest, a Delta log)
    /// names a location outside the source's declared location; nothing is read there.
    #[error("table `{table}`: `{location}` is outside the source's location `{source_root}`: lakecdp reads only inside the folder the project declares, whatever the source's metadata names; move the data into that folder, or declare the folder that holds it")]
    LocationOutsideSource {
        /// The table.
        table: String,
        /// The location as the metadata names it.
        location: String,
        /// The source's declared folder.
        source_root: String,
    },
    /// A Ballista cluster cannot be reached or started.
    #[error("Ballista cluster: {0}")]
    Cluster(String),
    /// The engine was asked for something this build does not include.
    #[error("{0}")]
    NotAvailable(String),
}

impl Error {
    /// True for errors the user can fix (a source that cannot be read as declared, an
    /// invalid configuration, a segment over unknown tables or columns).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::Source(_)
                | Error::LocationOutsideSource { .. }
                | Error::NotAvailable(_)
                | Error::CorruptLimit { .. }
                | Error::Config(_)
                | Error::Segment { .. }
                | Error::Measure { .. }
        ) || matches!(self, Error::Lake(e) if e.is_user_error())
    }
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where plans run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EngineKind {
    /// DataFusion in this process (the embedded default).
    #[default]
    Local,
    /// A Ballista cluster; `standalone` runs its scheduler and executor in-process.
    Ballista {
        /// `df://host:port` of the scheduler, or `None` for a standalone cluster.
        scheduler: Option<String>,
    },
}

/// A session with the lake of one environment registered.
pub struct Session {
    ctx: SessionContext,
    lake: Lake,
    /// On a cluster: the lake folder of the tables this session computes for itself
    /// (`_lakecdp/scratch/<session>`), which the executors read; removed when the session
    /// is dropped. `None` on the local engine, which keeps them in memory.
    scratch: Option<Scratch>,
}

struct Scratch {
    folder: String,
    written: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("environment", &self.lake.environment())
            .finish()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(scratch) = self.scratch.take() else {
            return;
        };
        if scratch.written.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return;
        }
        // Best effort: a folder left by a process that ended first is removed by the
        // next refresh (`Session::clear_scratch`).
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let lake = self.lake.clone();
            handle.spawn(async move {
                if let Err(e) = lake.delete_folder(&scratch.folder).await {
                    tracing::warn!(error = %e, "a session's scratch folder was not removed");
                }
            });
        }
    }
}

impl Session {
    /// Remove the scratch files older than a day from `lake` (those of sessions that
    /// ended before they could remove their own); returns how many. A refresh calls it
    /// when it starts. A day leaves alone the files of any session still running.
    pub async fn clear_scratch(lake: &Lake) -> Result<usize> {
        let cutoff = chrono::Utc::now() - chrono::Duration::days(1);
        let mut removed = 0;
        for object in lake.list(&lake.internal("scratch")).await? {
            if object.last_modified >= cutoff {
                continue;
            }
            let Some(relative) = lake.relative(&object.location) else {
                continue;
            };
            // one file that cannot be removed does not keep the others
            match lake.delete(&relative).await {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(error = %e, "an old scratch file was not removed"),
            }
        }
        Ok(removed)
    }

    /// A session of `kind` over `lake`.
    ///
    /// The lake is registered under [`lake_url`] of its environment. On Ballista the
    /// plans run on the cluster's executors, which find the same store by that URL: the
    /// standalone cluster shares this process's registry ([`cluster::standalone`]), and
    /// lakecdp's own executor processes open the environment's storage themselves
    /// ([`cluster::run_executor`]).
    pub async fn new(kind: &EngineKind, lake: Lake) -> Result<Self> {
        let config = SessionConfig::new().with_information_schema(true);
        let (ctx, scratch) = match kind {
            EngineKind::Local => {
                let ctx = SessionContext::new_with_config(config);
                // the environment's folder, as on a cluster: plans reach nothing else
                let confined =
                    confined::Confined::new(Arc::clone(lake.store()), lake.root().clone());
                ctx.register_object_store(&lake_url(lake.environment()), Arc::new(confined));
                functions::register(&ctx);
                (ctx, None)
            }
            EngineKind::Ballista { scheduler } => {
                let ctx = ballista_context(scheduler.as_deref(), config, &lake).await?;
                let scratch = Scratch {
                    folder: lake.internal(&format!("scratch/{}", ctx.session_id())),
                    written: std::sync::atomic::AtomicUsize::new(0),
                };
                (ctx, Some(scratch))
            }
        };
        Ok(Self { ctx, lake, scratch })
    }

    /// End the session, removing the tables it computed for itself from the lake (on a
    /// cluster). Dropping a session tries the same without waiting; the next refresh
    /// removes what neither removed ([`Session::clear_scratch`]).
    pub async fn close(mut self) -> Result<()> {
        if let Some(scratch) = self.scratch.take() {
            if scratch.written.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                self.lake.delete_folder(&scratch.folder).await?;
            }
        }
        Ok(())
    }

    /// True when the session's plans run on a cluster.
    pub fn is_distributed(&self) -> bool {
        self.scratch.is_some()
    }

    /// A table of rows the process computed itself (a measure's values, a segment's
    /// members) for the session's later plans: in memory on the local engine; on a
    /// cluster a Parquet file in the session's scratch folder of the lake, which the
    /// executors read (an in-memory table cannot travel in a plan).
    pub async fn table_of(
        &self,
        schema: arrow::datatypes::SchemaRef,
        batches: Vec<arrow::record_batch::RecordBatch>,
    ) -> Result<datafusion::dataframe::DataFrame> {
        use datafusion::datasource::file_format::parquet::ParquetFormat;
        use datafusion::datasource::listing::{
            ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
        };

        let Some(scratch) = &self.scratch else {
            let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
            return Ok(self.ctx.read_table(Arc::new(table))?);
        };
        let n = scratch
            .written
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let relative = format!("{}/{n}.parquet", scratch.folder);
        let mut bytes = Vec::new();
        {
            let mut writer =
                parquet::arrow::ArrowWriter::try_new(&mut bytes, Arc::clone(&schema), None)
                    .map_err(|e| Error::Internal(format!("a scratch table: {e}")))?;
            for batch in &batches {
                writer
                    .write(batch)
                    .map_err(|e| Error::Internal(format!("a scratch table: {e}")))?;
            }
            writer
                .close()
                .map_err(|e| Error::Internal(format!("a scratch table: {e}")))?;
        }
        self.lake.put(&relative, bytes).await?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()));
        let config = ListingTableConfig::new(ListingTableUrl::parse(self.url_of(&relative))?)
            .with_listing_options(options)
            .with_schema(schema);
        Ok(self
            .ctx
            .read_table(Arc::new(ListingTable::try_new(config)?))?)
    }

    /// The URL of a path of the lake (relative to the environment root), for
    /// `register_csv`, `register_parquet` and `CREATE EXTERNAL TABLE`.
    pub fn url_of(&self, relative: &str) -> String {
        let path: object_store::path::Path =
            relative.split('/').filter(|s| !s.is_empty()).collect();
        format!("{}{path}", lake_url(self.lake.environment()))
    }

    /// The DataFusion context.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The lake.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Register the published outputs the insight processes read, under their entity
    /// names: `Customer` (Unification), `UnifiedActivity` and each activity's table
    /// (Activities), and every entity of `Measures/` (`Customer_Measure` and one table per
    /// customer measure). Returns the names registered; what is not published yet is
    /// left out.
    pub async fn register_outputs(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for process in [
            lakecdp_lake::Process::Unification,
            lakecdp_lake::Process::Activities,
            lakecdp_lake::Process::Measures,
        ] {
            let Some(model) = lakecdp_lake::publish::read_model(&self.lake, &process).await? else {
                continue;
            };
            for e in &model.entities {
                let wanted = match process {
                    lakecdp_lake::Process::Unification => e.name == "Customer",
                    lakecdp_lake::Process::Activities => e.name != "UnmatchedActivity",
                    _ => true,
                };
                if wanted && self.register_published(&process, &e.name, &e.name).await? {
                    names.push(e.name.clone());
                }
            }
        }
        Ok(names)
    }

    /// Register the published entity `entity` of `process` as table `name`: a listing
    /// table over exactly the partition files its `model.json` names (so a run in
    /// progress is never seen), streamed with projection and filters pushed down, never
    /// copied into memory. Returns false, registering nothing, when the folder or the
    /// entity is not published.
    pub async fn register_published(
        &self,
        process: &lakecdp_lake::Process,
        entity: &str,
        name: &str,
    ) -> Result<bool> {
        let Some(model) = lakecdp_lake::publish::read_model(&self.lake, process).await? else {
            return Ok(false);
        };
        let Some(e) = model.entity(entity) else {
            return Ok(false);
        };
        let table = self.published_table(&process.folder(), e).await?;
        self.ctx.deregister_table(name)?;
        self.ctx.register_table(name, table)?;
        Ok(true)
    }

    /// The rows of a published entity of the CDM folder `folder`, streamed batch by
    /// batch from its partition files.
    pub async fn published_stream(
        &self,
        folder: &str,
        e: &lakecdp_lake::cdm::Entity,
    ) -> Result<
        futures::stream::BoxStream<
            'static,
            std::result::Result<arrow::record_batch::RecordBatch, arrow::error::ArrowError>,
        >,
    > {
        use futures::{StreamExt, TryStreamExt};
        let table = self.published_table(folder, e).await?;
        let stream = self.ctx.read_table(table)?.execute_stream().await?;
        Ok(stream
            .map_err(|e| arrow::error::ArrowError::ExternalError(Box::new(e)))
            .boxed())
    }

    /// The table of a published entity of the CDM folder `folder`: a listing table over
    /// its partition files when they share one format (always so for what lakecdp
    /// writes), else its rows read into memory (a document of another tool mixing
    /// formats).
    pub async fn published_table(
        &self,
        folder: &str,
        e: &lakecdp_lake::cdm::Entity,
    ) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
        use datafusion::datasource::file_format::csv::CsvFormat;
        use datafusion::datasource::file_format::parquet::ParquetFormat;
        use datafusion::datasource::file_format::FileFormat;
        use datafusion::datasource::listing::{
            ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
        };

        // the lake's own outputs: their Arrow type annotations are trusted (bounded)
        let schema =
            lakecdp_lake::partition::entity_schema_of(e, lakecdp_lake::cdm::ArrowTypes::Annotated)?;
        let csv_settings = |p: &lakecdp_lake::cdm::Partition| {
            p.file_format_settings.clone().unwrap_or_else(|| {
                lakecdp_lake::cdm::FileFormatSettings {
                    column_headers: false,
                    ..lakecdp_lake::cdm::FileFormatSettings::csv()
                }
            })
        };
        let format: Option<Arc<dyn FileFormat>> = match e.partitions.first() {
            None => None,
            Some(_) if e.partitions.iter().all(|p| p.is_parquet()) => {
                Some(Arc::new(ParquetFormat::default()))
            }
            Some(first) if !first.is_parquet() => {
                let settings = csv_settings(first);
                let same = e
                    .partitions
                    .iter()
                    .all(|p| !p.is_parquet() && csv_settings(p) == settings);
                match settings.delimiter_byte() {
                    Some(delimiter) if same => Some(Arc::new(
                        CsvFormat::default()
                            .with_has_header(settings.column_headers)
                            .with_delimiter(delimiter)
                            // quoted values may hold line breaks: never split a file
                            .with_newlines_in_values(true),
                    )),
                    _ => None,
                }
            }
            Some(_) => None,
        };
        let Some(format) = format else {
            let batches = lakecdp_lake::partition::read_entity(&self.lake, folder, e).await?;
            return Ok(Arc::new(datafusion::datasource::MemTable::try_new(
                schema,
                vec![batches],
            )?));
        };
        let mut urls = Vec::with_capacity(e.partitions.len());
        for p in &e.partitions {
            let relative = lakecdp_lake::partition::partition_relative(&self.lake, folder, p)?;
            urls.push(ListingTableUrl::parse(self.url_of(&relative))?);
        }
        let options = ListingOptions::new(format).with_file_extension("");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema);
        Ok(Arc::new(ListingTable::try_new(config)?))
    }
}

#[cfg(feature = "distributed")]
async fn ballista_context(
    scheduler: Option<&str>,
    config: SessionConfig,
    lake: &Lake,
) -> Result<SessionContext> {
    let url = match scheduler {
        Some(url) => url.to_string(),
        None => cluster::standalone(lake).await?,
    };
    cluster::driver_context(&url, config, lake).await
}

#[cfg(not(feature = "distributed"))]
async fn ballista_context(
    _scheduler: Option<&str>,
    _config: SessionConfig,
    _lake: &Lake,
) -> Result<SessionContext> {
    Err(Error::NotAvailable(
        "this build of lakecdp has no Ballista support: rebuild with `--features lakecdp-engine/distributed`".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::CsvReadOptions;
    use lakecdp_core::{EnvironmentId, LocalConfig, StorageConfig};
    use lakecdp_lake::{backend, CdmFolderWriter, Process};

    #[tokio::test]
    async fn queries_read_published_partitions_through_the_lake() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("customerinsights")).unwrap();
        let handle = backend::open(
            &StorageConfig::Local(LocalConfig {
                path: dir.path().into(),
            }),
            None,
        )
        .unwrap();
        let lake = Lake::new(&handle, EnvironmentId::new());
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("n", arrow::datatypes::DataType::Int64, false),
        ]));
        let batch = arrow::record_batch::RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3, 4]))],
        )
        .unwrap();
        let mut w = CdmFolderWriter::begin(&lake, Process::Measures, 3)
            .await
            .unwrap();
        w.write_entity(
            "Numbers",
            None,
            schema,
            futures::stream::iter(vec![Ok::<_, String>(batch)]),
        )
        .await
        .unwrap();
        let run = w.commit().await.unwrap().run_id;

        let session = Session::new(&EngineKind::Local, lake).await.unwrap();
        // the published entity, through its model.json
        assert!(session
            .register_published(&Process::Measures, "Numbers", "published")
            .await
            .unwrap());
        assert!(!session
            .register_published(&Process::Measures, "Nope", "nope")
            .await
            .unwrap());
        assert!(!session
            .register_published(&Process::Segments, "Numbers", "nope")
            .await
            .unwrap());
        let out = session
            .context()
            .sql("SELECT sum(n) AS s FROM published")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let s = out[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(s, 10);
        let url = session.url_of(&format!("Measures/Numbers/{run}/part-00000.csv"));
        session
            .context()
            .register_csv("numbers", &url, CsvReadOptions::new())
            .await
            .unwrap();
        let out = session
            .context()
            .sql("SELECT sum(n) AS s FROM numbers")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let s = out[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(s, 10);
    }

    #[cfg(not(feature = "distributed"))]
    #[tokio::test]
    async fn ballista_without_the_feature_says_how_to_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let handle = backend::open(
            &StorageConfig::Local(LocalConfig {
                path: dir.path().into(),
            }),
            None,
        )
        .unwrap();
        let err = Session::new(
            &EngineKind::Ballista { scheduler: None },
            Lake::new(&handle, EnvironmentId::new()),
        )
        .await
        .unwrap_err();
        assert!(err
            .to_string()
            .contains("features lakecdp-engine/distributed"));
    }
}
