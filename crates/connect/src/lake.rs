//! Exports into a lake, in the layout of Customer Insights' blob-storage exports.
//!
//! Relative to the store's container root:
//!
//! ```text
//! CustomerInsights_<environmentId>/<ExportName>/
//!   model.json                                            points at the newest run's files
//!   <Table>/<yyyy>/<MM>/<dd>/<HHmm>/<Table>_<runId>.csv   one folder per minute (UTC time)
//! ```
//!
//! CSV files have a header row, RFC 4180 quoting and UTF-8 text. Column types in
//! `model.json` come from the lake's one Arrow <-> CDM mapping, with the exact Arrow type
//! kept in an annotation.
//!
//! Publish protocol: data files are written first, each as one upload that is either
//! complete or absent; `model.json` is replaced (a single atomic put) only by
//! [`ExportRun::finish`], after every table. A run never overwrites a file an earlier
//! `model.json` points at (its files are named by its own run id, never numbered from a
//! listing another run could make at the same time), so a failed run leaves the previous
//! `model.json` pointing at complete files. The new `model.json` points at the newest
//! run's files of the tables it exported and keeps the entities of tables it did not
//! export, as they were. On stores with compare-and-swap (Azure, S3) it is written
//! conditionally on the version read and merged again when another run won; on a local
//! folder the read, merge and write run under the lake's lock object
//! `<ExportName>/model.json.lock` (gone once the run has finished). Either way two runs
//! finishing together both keep their tables.

use std::time::Instant;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lakecdp_core::{EnvironmentId, PartitionFormat};
use lakecdp_lake::cdm::{
    cdm_time, cdm_type_of, Annotation, Attribute, Entity, FileFormatSettings, Model, Partition,
    ARROW_TYPE_ANNOTATION, MODEL_JSON,
};
use lakecdp_lake::lock::LockObject;
use lakecdp_lake::{Lake, StoreHandle};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::target::{
    BatchStream, CheckLine, ExportRun, ExportSummary, ExportTarget, TableExported,
};

/// How long a run may keep the `model.json` lock before it is presumed dead (a merge
/// takes a read and a write).
const MODEL_LOCK_EXPIRY: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a run waits for another run's merge of `model.json`.
const MODEL_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Bytes of CSV buffered before they are uploaded.
const CHUNK_BYTES: usize = 1 << 20;

/// A lake folder that exports write CSV tables and a `model.json` into.
#[derive(Debug, Clone)]
pub struct LakeTarget {
    store: StoreHandle,
    root: String,
    environment: EnvironmentId,
}

impl LakeTarget {
    /// Exports of environment `environment_id` into `store`, under
    /// `CustomerInsights_<environmentId>/` of its container.
    pub fn new(store: StoreHandle, environment_id: EnvironmentId) -> Self {
        Self {
            store,
            root: format!("CustomerInsights_{environment_id}"),
            environment: environment_id,
        }
    }

    /// The export root relative to the container, `CustomerInsights_<environmentId>`.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The folder of an export, relative to the container.
    pub fn export_folder(&self, export_name: &str) -> String {
        format!("{}/{export_name}", self.root)
    }

    /// The store path of a path relative to the container.
    pub fn path(&self, relative: &str) -> Path {
        relative
            .split('/')
            .filter(|s| !s.is_empty())
            .fold(self.store.container.clone(), |p, part| p.join(part))
    }

    /// The absolute URL of a path relative to the container.
    pub fn url(&self, relative: &str) -> String {
        format!(
            "{}/{}",
            self.store.base_url,
            relative.trim_start_matches('/')
        )
    }

    async fn probe(&self) -> Vec<CheckLine> {
        let relative = format!("{}/_lakecdp_check_{}", self.root, std::process::id());
        let path = self.path(&relative);
        let url = self.url(&relative);
        let store = &self.store.store;
        let fix = "check the storage settings and that the credentials may read, write and delete blobs in the container";
        let mut lines = Vec::new();
        match store.put(&path, PutPayload::from_static(b"lakecdp")).await {
            Ok(_) => lines.push(CheckLine::ok(format!("write {url}"), "written")),
            Err(e) => {
                lines.push(CheckLine::failed(
                    format!("write {url}"),
                    e.to_string(),
                    fix,
                ));
                return lines;
            }
        }
        match store.get(&path).await {
            Ok(r) => match r.bytes().await {
                Ok(b) if b.as_ref() == b"lakecdp" => {
                    lines.push(CheckLine::ok(format!("read {url}"), "read back"))
                }
                Ok(_) => lines.push(CheckLine::failed(
                    format!("read {url}"),
                    "read back other bytes than written",
                    fix,
                )),
                Err(e) => lines.push(CheckLine::failed(format!("read {url}"), e.to_string(), fix)),
            },
            Err(e) => lines.push(CheckLine::failed(format!("read {url}"), e.to_string(), fix)),
        }
        match store.delete(&path).await {
            Ok(()) => lines.push(CheckLine::ok(format!("delete {url}"), "deleted")),
            Err(e) => lines.push(CheckLine::failed(
                format!("delete {url}"),
                e.to_string(),
                fix,
            )),
        }
        lines
    }

    /// The `model.json` at `relative` with the version it was read at, if there is one.
    async fn read_model_versioned(
        &self,
        relative: &str,
    ) -> Result<(Option<Model>, Option<UpdateVersion>)> {
        let got = match self.store.store.get(&self.path(relative)).await {
            Ok(r) => {
                let version = UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                r.bytes().await.map(|b| (b, version))
            }
            Err(object_store::Error::NotFound { .. }) => return Ok((None, None)),
            Err(e) => Err(e),
        };
        let (bytes, version) = got.map_err(|e| self.store_error(MODEL_JSON, relative, e))?;
        Ok((
            Some(Model::from_json(&self.url(relative), &bytes)?),
            Some(version),
        ))
    }

    fn store_error(&self, table: &str, relative: &str, e: object_store::Error) -> Error {
        Error::Export {
            table: table.to_string(),
            address: self.url(relative),
            stage: "writing to the store",
            reason: e.to_string(),
        }
    }
}

fn check_name(key: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(Error::Config {
            key: key.into(),
            message: format!("`{name}` is not a valid folder name (empty, or holds / or \\)"),
        });
    }
    Ok(())
}

#[async_trait]
impl ExportTarget for LakeTarget {
    fn kind(&self) -> &'static str {
        "lake"
    }

    fn destination(&self) -> String {
        self.url(&self.root)
    }

    async fn check(&self) -> Result<Vec<CheckLine>> {
        Ok(self.probe().await)
    }

    async fn begin(&self, export_name: &str) -> Result<Box<dyn ExportRun>> {
        check_name("export name", export_name)?;
        let time = Utc::now();
        Ok(Box::new(LakeRun {
            target: self.clone(),
            export_name: export_name.to_string(),
            run_id: lakecdp_core::RunId::new(time),
            time,
            started: Instant::now(),
            model: Model::new(export_name),
            tables: Vec::new(),
        }))
    }
}

/// A run of a lake export.
struct LakeRun {
    target: LakeTarget,
    export_name: String,
    /// Names this run's files.
    run_id: lakecdp_core::RunId,
    time: DateTime<Utc>,
    started: Instant,
    model: Model,
    tables: Vec<TableExported>,
}

impl LakeRun {
    /// The folder of this run's files of `table`.
    fn run_folder(&self, table: &str) -> String {
        format!(
            "{}/{table}/{}",
            self.target.export_folder(&self.export_name),
            self.time.format("%Y/%m/%d/%H%M")
        )
    }
}

fn write_csv(
    buf: &mut Vec<u8>,
    batch: &arrow::record_batch::RecordBatch,
    header: bool,
) -> Result<(), arrow::error::ArrowError> {
    let mut w = arrow::csv::WriterBuilder::new()
        .with_header(header)
        .with_timestamp_format("%Y-%m-%dT%H:%M:%S%.f".into())
        .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.f%:z".into())
        .build(&mut *buf);
    w.write(batch)
}

#[async_trait]
impl ExportRun for LakeRun {
    async fn export_table(
        &mut self,
        table: &str,
        schema: SchemaRef,
        mut batches: BatchStream<'_>,
    ) -> Result<TableExported> {
        let started = Instant::now();
        check_name("table", table)?;
        if self.model.entity(table).is_some() {
            return Err(Error::Config {
                key: "table".into(),
                message: format!("table `{table}` is exported twice in one run"),
            });
        }
        lakecdp_lake::partition::check_writable(&schema, PartitionFormat::Csv)?;
        let folder = self.run_folder(table);
        let n = &self.run_id;
        let relative = format!("{folder}/{table}_{n}.csv");
        let url = self.target.url(&relative);
        let fail = |stage: &'static str, reason: String| Error::Export {
            table: table.to_string(),
            address: url.clone(),
            stage,
            reason,
        };

        let mut out = BufWriter::new(self.target.store.store.clone(), self.target.path(&relative));
        let mut buf = Vec::with_capacity(CHUNK_BYTES + (64 << 10));
        let mut rows = 0u64;
        let mut bytes = 0u64;
        let mut header = true;
        let result: Result<()> = async {
            loop {
                let batch = match batches.next().await {
                    Some(Ok(b)) => b,
                    Some(Err(e)) => {
                        return Err(fail(
                            "reading the input",
                            format!("the input failed after {rows} rows: {e}"),
                        ))
                    }
                    None => break,
                };
                write_csv(&mut buf, &batch, header)
                    .map_err(|e| fail("writing CSV", e.to_string()))?;
                header = false;
                rows += batch.num_rows() as u64;
                if buf.len() >= CHUNK_BYTES {
                    out.write_all(&buf)
                        .await
                        .map_err(|e| fail("uploading", e.to_string()))?;
                    bytes += buf.len() as u64;
                    buf.clear();
                }
            }
            if header {
                // an empty table still gets its header row
                write_csv(
                    &mut buf,
                    &arrow::record_batch::RecordBatch::new_empty(schema.clone()),
                    true,
                )
                .map_err(|e| fail("writing CSV", e.to_string()))?;
            }
            out.write_all(&buf)
                .await
                .map_err(|e| fail("uploading", e.to_string()))?;
            bytes += buf.len() as u64;
            out.shutdown()
                .await
                .map_err(|e| fail("uploading", e.to_string()))?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            // nothing points at the file; a started multipart upload is abandoned
            if let Err(abort) = out.abort().await {
                tracing::debug!(error = %abort, path = %relative, "aborting the upload failed");
            }
            return Err(e);
        }

        let attributes = schema
            .fields()
            .iter()
            .map(|f| Attribute {
                name: f.name().clone(),
                data_type: cdm_type_of(f.data_type()),
                description: None,
                annotations: vec![Annotation {
                    name: ARROW_TYPE_ANNOTATION.into(),
                    value: Some(f.data_type().to_string()),
                }],
                extra: Default::default(),
            })
            .collect();
        self.model.entities.push(Entity {
            kind: "LocalEntity".into(),
            name: table.to_string(),
            description: None,
            annotations: Vec::new(),
            attributes,
            partitions: vec![Partition {
                name: format!("{table}_{n}"),
                location: url.clone(),
                refresh_time: Some(cdm_time(Utc::now())),
                file_format_settings: Some(FileFormatSettings::csv()),
                annotations: Vec::new(),
                extra: Default::default(),
            }],
            extra: Default::default(),
        });
        let done = TableExported {
            name: table.to_string(),
            rows,
            bytes,
            elapsed: started.elapsed(),
        };
        tracing::info!(table, rows, bytes, location = %url, "exported a table");
        self.tables.push(done.clone());
        Ok(done)
    }

    async fn finish(self: Box<Self>) -> Result<ExportSummary> {
        let mut model = self.model.clone();
        model.modified_time = Some(cdm_time(Utc::now()));
        model.annotations.push(Annotation {
            name: "lakecdp:exportTime".into(),
            value: Some(cdm_time(self.time)),
        });
        let relative = format!(
            "{}/{MODEL_JSON}",
            self.target.export_folder(&self.export_name)
        );
        // tables of earlier runs that this run did not export keep their entities; with
        // compare-and-swap, a run that finished meanwhile is merged in, never lost
        let path = self.target.path(&relative);
        let conditional = self.target.store.capabilities.conditional_update;
        // without compare-and-swap, one run at a time reads, merges and writes
        let guard = if conditional {
            None
        } else {
            let folder = self.target.export_folder(&self.export_name);
            let lake = Lake::at_folder(&self.target.store, &folder, self.target.environment);
            let lock = LockObject::new(&lake, format!("{MODEL_JSON}.lock"), MODEL_LOCK_EXPIRY);
            let owner = format!("export `{}`", self.export_name);
            match lock.acquire(&owner, MODEL_LOCK_WAIT).await? {
                Some(guard) => Some(guard),
                None => {
                    return Err(Error::Lake(lakecdp_lake::Error::Locked {
                        path: format!("{folder}/{MODEL_JSON}.lock"),
                    }))
                }
            }
        };
        let written = self
            .write_model(&model, &relative, &path, conditional)
            .await;
        if let Some(guard) = guard {
            if let Err(e) = guard.release().await {
                // stale after its expiry, and then broken by the next run
                tracing::warn!(error = %e, "the export's model.json lock could not be released");
            }
        }
        written?;
        Ok(ExportSummary {
            export_name: self.export_name.clone(),
            destination: self
                .target
                .url(&self.target.export_folder(&self.export_name)),
            tables: self.tables,
            elapsed: self.started.elapsed(),
        })
    }
}

impl LakeRun {
    /// Read `model.json`, merge in the entities of tables this run did not export, and
    /// write it: conditionally where the store can (again when another run won), else
    /// plainly (the caller holds the lock).
    async fn write_model(
        &self,
        model: &Model,
        relative: &str,
        path: &Path,
        conditional: bool,
    ) -> Result<()> {
        let mut attempts = 0;
        loop {
            let (previous, version) = self.target.read_model_versioned(relative).await?;
            let mut merged = model.clone();
            if let Some(previous) = previous {
                for e in previous.entities {
                    if merged.entity(&e.name).is_none() {
                        merged.entities.push(e);
                    }
                }
            }
            let mode = match (conditional, version) {
                (false, _) => PutMode::Overwrite,
                (true, Some(v)) => PutMode::Update(v),
                (true, None) => PutMode::Create,
            };
            match self
                .target
                .store
                .store
                .put_opts(
                    path,
                    PutPayload::from(merged.to_json()),
                    PutOptions::from(mode),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(
                    object_store::Error::Precondition { .. }
                    | object_store::Error::AlreadyExists { .. },
                ) if attempts < 10 => attempts += 1,
                Err(e) => return Err(self.target.store_error(MODEL_JSON, relative, e)),
            }
        }
    }
}
