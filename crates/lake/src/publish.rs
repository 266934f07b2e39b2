//! Atomic publish of a CDM folder.
//!
//! # Protocol
//!
//! A process publishes the output of a run in three stages:
//!
//! 1. **Begin.** The writer reads the version (ETag) of the folder's current
//!    `model.json`, if any, and picks a new run id (ids sort by start time).
//! 2. **Write.** Every data file of the run goes under `<Entity>/<runId>/` inside the
//!    folder. Nothing a reader follows points there yet.
//! 3. **Commit.** The new `model.json`, listing only this run's partitions, replaces
//!    the old one in a single put. The put is conditional on the version read at
//!    *begin*: `PutMode::Update` where the store implements compare-and-swap (Azure,
//!    S3 and compatible stores with `If-Match`), `PutMode::Create` when there was no
//!    `model.json`. On the local file system, which has no compare-and-swap, the
//!    writer takes the folder's lock object ([`crate::lock`]: created with
//!    `PutMode::Create`, broken only when stale, and then never by two at once),
//!    checks the version and then replaces the file; the replacement itself is an
//!    atomic rename.
//!
//! After the commit, a run manifest is written under `_lakecdp/runs/`, the folder gets its
//! `default.manifest.cdm.json`, and retention deletes old run folders.
//!
//! # Locations
//!
//! `model.json` names its partitions by absolute locations, as the format wants: the
//! storage's URL, or on a local lake the file's plain absolute path (the CDM SDK's local
//! adapter and pyarrow open plain paths; neither follows `file://` URLs). The manifest
//! names them relative to the folder, so a copy of the folder stays readable by the CDM
//! SDK wherever it is; lakecdp itself reads a copied lake's `model.json` from the copy
//! ([`Lake::relative_of_url`]).
//!
//! # Retention
//!
//! A run is *published* when a committed `model.json` named it: the run manifest under
//! `_lakecdp/runs/<folder>/` is written right after the commit, so the runs with a
//! manifest are the published ones. Retention keeps:
//!
//! - the newest `retention` published runs up to this one: run folders of crashed or
//!   failed runs (orphans) do not count, so they never push a published run out;
//! - every published run that stopped being current (its successor was published) less
//!   than the minimum age ago ([`DEFAULT_RETENTION_MIN_AGE`], an hour, or
//!   [`CdmFolderWriter::with_min_age`]): a reader that followed the previous
//!   `model.json` just before the switch can finish;
//! - orphan run folders written less than the minimum age ago (a run still writing);
//! - every run newer than this one, and every run the new `model.json` names.
//!
//! Everything else is deleted, orphans included, with the manifests of deleted runs.
//!
//! # Guarantees
//!
//! - A reader that follows `model.json` sees either the previous run or the new run,
//!   never a mix and never a partly written file: the new run's files are complete
//!   before `model.json` names them, and `model.json` is replaced in one put.
//! - A run that fails or crashes before its commit leaves `model.json` and every file
//!   it names untouched; its orphan run folder is removed by a later publish's
//!   retention sweep once older than the minimum age, and never counts as a kept run.
//! - Two publishers of the same folder cannot silently overwrite each other: the one
//!   that commits second fails with [`Error::Conflict`] and publishes nothing (on the
//!   local backend this holds among lakecdp writers, which all take the lock).
//! - Retention never deletes a run that the current `model.json` names, nor a run
//!   newer than the one just published (a concurrent writer may still be writing it),
//!   nor a run that was current less than the minimum age ago.
//!
//! The manifest and entity definition documents are derived from `model.json` and are
//! written after the commit; `model.json` is the single source of truth.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use futures::Stream;
use lakecdp_core::{PartitionFormat, RunId};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde_json::json;

use crate::cdm::{
    self, cdm_time, cdm_type_of, Annotation, Attribute, Entity, Model, Partition,
    ARROW_TYPE_ANNOTATION, FORMAT_ANNOTATION, MODEL_JSON,
};
use crate::error::{Error, Result};
use crate::layout::{Lake, Process};
use crate::lock::LockObject;
use crate::partition;

/// How long a local publish lock may be held before another publisher breaks it.
const LOCK_EXPIRY: Duration = Duration::from_secs(300);

/// How long a publisher waits for the publish lock before it reports a conflict.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// How long retention keeps a run after the next one was published, by default: a
/// reader that followed the previous `model.json` just before the commit can finish
/// reading its files.
pub const DEFAULT_RETENTION_MIN_AGE: Duration = Duration::from_secs(60 * 60);

/// What a commit published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The run.
    pub run_id: RunId,
    /// Its publish ordinal in the folder: 1 for the first run ever published there, one
    /// more for each later one (the `lakecdp:version` annotation of `model.json`).
    pub version: u64,
    /// The `model.json` path, relative to the environment root.
    pub model_path: String,
    /// Rows per entity, in the order written.
    pub entities: Vec<(String, u64)>,
    /// Old run folders deleted by retention.
    pub removed_runs: Vec<RunId>,
}

/// The `model.json` annotation that names the run published.
pub const RUN_ANNOTATION: &str = "lakecdp:runId";

/// The `model.json` annotation that holds the folder's publish ordinal.
pub const VERSION_ANNOTATION: &str = "lakecdp:version";

/// The publish ordinal a `model.json` records ([`Published::version`]); none in one
/// written before lakecdp recorded it.
pub fn publish_version(model: &Model) -> Option<u64> {
    model
        .annotations
        .iter()
        .find(|a| a.name == VERSION_ANNOTATION)
        .and_then(|a| a.value.as_deref())
        .and_then(|v| v.parse().ok())
}

/// Writes one run of one process folder and publishes it atomically.
#[derive(Debug)]
pub struct CdmFolderWriter {
    lake: Lake,
    process: Process,
    folder: String,
    run_id: RunId,
    base: Option<UpdateVersion>,
    /// The publish ordinal of this run in its folder.
    version: u64,
    model: Model,
    rows: Vec<(String, u64)>,
    retention: usize,
    min_age: Duration,
}

impl CdmFolderWriter {
    /// Begin a run of `process`: remember the version of its current `model.json`.
    pub async fn begin(lake: &Lake, process: Process, retention: u32) -> Result<Self> {
        let folder = process.folder();
        let model_path = lake.path(&format!("{folder}/{MODEL_JSON}"));
        // the current model.json: its version for the commit's compare-and-swap, and its
        // publish ordinal, which the new one follows
        let (base, previous) = match lake.store().get(&model_path).await {
            Ok(found) => {
                let base = UpdateVersion {
                    e_tag: found.meta.e_tag.clone(),
                    version: found.meta.version.clone(),
                };
                let bytes = found
                    .bytes()
                    .await
                    .map_err(|e| Error::store(&model_path, e))?;
                // a model.json of an earlier version of lakecdp (or unreadable) counts as
                // the first publish
                let previous = Model::from_json(model_path.as_ref(), &bytes)
                    .ok()
                    .and_then(|m| publish_version(&m))
                    .unwrap_or(1);
                (Some(base), previous)
            }
            Err(object_store::Error::NotFound { .. }) => (None, 0),
            Err(e) => return Err(Error::store(&model_path, e)),
        };
        let model = Model::new(process.model_name());
        Ok(Self {
            lake: lake.clone(),
            process,
            folder,
            run_id: RunId::now(),
            base,
            version: previous + 1,
            model,
            rows: Vec::new(),
            retention: retention.max(1) as usize,
            min_age: DEFAULT_RETENTION_MIN_AGE,
        })
    }

    /// Keep every run for at least `min_age` after it stopped being current (and every
    /// unpublished run folder for `min_age` after it was written), whatever the retention
    /// count; [`DEFAULT_RETENTION_MIN_AGE`] unless set.
    pub fn with_min_age(mut self, min_age: Duration) -> Self {
        self.min_age = min_age;
        self
    }

    /// The process this run publishes.
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// This run's id.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// The folder, relative to the environment root.
    pub fn folder(&self) -> &str {
        &self.folder
    }

    /// The lake the run is written to.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Set the model's description.
    pub fn describe(&mut self, description: impl Into<String>) {
        self.model.description = Some(description.into());
    }

    /// Write one entity of this run from a stream of batches with `schema`.
    pub async fn write_entity<S, E>(
        &mut self,
        name: &str,
        description: Option<&str>,
        schema: SchemaRef,
        batches: S,
    ) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<RecordBatch, E>> + Unpin,
        E: std::fmt::Display,
    {
        if self.model.entity(name).is_some() {
            return Err(Error::Unsupported(format!(
                "entity `{name}` is written twice in run {}",
                self.run_id
            )));
        }
        if name.is_empty() || name.contains(['/', '\\']) {
            return Err(Error::Unsupported(format!(
                "`{name}` is not a valid entity name"
            )));
        }
        let format = self.lake.format();
        let relative = self.partition_path(name, 0);
        let stats =
            partition::write(&self.lake, &relative, schema.clone(), format, batches).await?;
        self.add_entity(name, description, &schema, vec![(relative, stats.rows)]);
        Ok(stats.rows)
    }

    fn partition_path(&self, name: &str, index: usize) -> String {
        format!(
            "{}/{name}/{}/part-{index:05}.{}",
            self.folder,
            self.run_id,
            self.lake.format().extension()
        )
    }

    /// Declare entity `name` of this run from partitions others wrote (the tasks of a
    /// cluster): files in the run's folder of the entity (`<folder>/<name>/<runId>/`),
    /// in the lake's format with `schema`, each with its row count. Returns the rows.
    pub fn adopt_entity(
        &mut self,
        name: &str,
        description: Option<&str>,
        schema: SchemaRef,
        partitions: Vec<(String, u64)>,
    ) -> Result<u64> {
        if self.model.entity(name).is_some() {
            return Err(Error::Unsupported(format!(
                "entity `{name}` is written twice in run {}",
                self.run_id
            )));
        }
        if name.is_empty() || name.contains(['/', '\\']) || partitions.is_empty() {
            return Err(Error::Unsupported(format!(
                "`{name}` is not a valid entity name, or it has no partition"
            )));
        }
        let folder = format!("{}/{name}/{}/", self.folder, self.run_id);
        let extension = format!(".{}", self.lake.format().extension());
        for (relative, _) in &partitions {
            let file = relative.strip_prefix(&folder).unwrap_or("");
            if file.is_empty() || file.contains(['/', '\\']) || !file.ends_with(&extension) {
                return Err(Error::Unsupported(format!(
                    "`{relative}` is not a {} partition of entity `{name}` in run {}",
                    self.lake.format().extension(),
                    self.run_id
                )));
            }
        }
        let rows = partitions.iter().map(|(_, r)| r).sum();
        self.add_entity(name, description, &schema, partitions);
        Ok(rows)
    }

    fn add_entity(
        &mut self,
        name: &str,
        description: Option<&str>,
        schema: &SchemaRef,
        files: Vec<(String, u64)>,
    ) {
        let format = self.lake.format();
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
        let several = files.len() > 1;
        let mut partitions = Vec::with_capacity(files.len());
        let mut rows = 0;
        for (i, (relative, n)) in files.iter().enumerate() {
            rows += n;
            let mut partition = Partition {
                name: if several {
                    format!("{name}-{}-{i}", self.run_id)
                } else {
                    format!("{name}-{}", self.run_id)
                },
                location: self.lake.url_of(relative),
                refresh_time: Some(cdm_time(Utc::now())),
                file_format_settings: None,
                annotations: Vec::new(),
                extra: Default::default(),
            };
            match format {
                PartitionFormat::Csv => {
                    partition.file_format_settings = Some(cdm::FileFormatSettings::csv())
                }
                PartitionFormat::Parquet => partition.annotations.push(Annotation {
                    name: FORMAT_ANNOTATION.into(),
                    value: Some("parquet".into()),
                }),
            }
            partitions.push(partition);
        }
        self.model.entities.push(Entity {
            kind: "LocalEntity".into(),
            name: name.to_string(),
            description: description.map(str::to_string),
            annotations: Vec::new(),
            attributes,
            partitions,
            extra: Default::default(),
        });
        self.rows.push((name.to_string(), rows));
    }

    /// Abandon the run: delete its data files. `model.json` is untouched.
    pub async fn abort(self) -> Result<()> {
        for (name, _) in &self.rows {
            self.lake
                .delete_folder(&format!("{}/{name}/{}", self.folder, self.run_id))
                .await?;
        }
        Ok(())
    }

    /// Publish the run: replace `model.json`, then write the derived documents and apply
    /// retention.
    pub async fn commit(mut self) -> Result<Published> {
        self.model.modified_time = Some(cdm_time(Utc::now()));
        self.model.annotations.push(Annotation {
            name: RUN_ANNOTATION.into(),
            value: Some(self.run_id.to_string()),
        });
        self.model.annotations.push(Annotation {
            name: VERSION_ANNOTATION.into(),
            value: Some(self.version.to_string()),
        });
        let model_rel = format!("{}/{MODEL_JSON}", self.folder);
        self.put_model(&model_rel, self.model.to_json()).await?;

        let manifest = json!({
            "runId": self.run_id,
            "process": self.folder,
            "publishedAt": cdm_time(Utc::now()),
            "entities": self.rows.iter().map(|(n, r)| json!({"name": n, "rows": r})).collect::<Vec<_>>(),
        });
        self.lake
            .put(
                &self
                    .lake
                    .internal(&format!("runs/{}/{}.json", self.folder, self.run_id)),
                serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
            )
            .await?;
        self.write_manifest().await?;
        let removed_runs = self.apply_retention().await?;
        Ok(Published {
            run_id: self.run_id,
            version: self.version,
            model_path: model_rel,
            entities: self.rows,
            removed_runs,
        })
    }

    async fn write_manifest(&self) -> Result<()> {
        let prefix = self.lake.url_of(&self.folder);
        let manifest = cdm::manifest_for(&self.model, |loc| {
            loc.strip_prefix(&prefix)
                .map(|r| r.trim_start_matches('/').to_string())
                .unwrap_or_else(|| loc.to_string())
        });
        self.lake
            .put(
                &format!("{}/{}", self.folder, cdm::MANIFEST),
                serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
            )
            .await?;
        for e in &self.model.entities {
            let def = cdm::entity_definition(e);
            self.lake
                .put(
                    &format!("{}/{}.cdm.json", self.folder, e.name),
                    serde_json::to_vec_pretty(&def).unwrap_or_default(),
                )
                .await?;
        }
        Ok(())
    }

    async fn put_model(&self, relative: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.lake.path(relative);
        let conflict = || Error::Conflict {
            path: path.to_string(),
        };
        let caps = self.lake.capabilities();
        if self.base.is_none() || caps.conditional_update {
            // (the locked path checks under its lock)
            self.check_fence().await?;
        }
        let mode = match &self.base {
            None => PutMode::Create,
            Some(v) if caps.conditional_update => PutMode::Update(v.clone()),
            Some(v) => return self.put_model_locked(relative, bytes, v.clone()).await,
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .lake
            .store()
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => Err(conflict()),
            Err(e) => Err(Error::store(&path, e)),
        }
    }

    /// Refuse to publish when the lake is fenced by a lease that was taken over.
    async fn check_fence(&self) -> Result<()> {
        match self.lake.fence() {
            Some(fence) => fence.check(&self.lake).await,
            None => Ok(()),
        }
    }

    /// Compare-and-swap for stores without `PutMode::Update`: a lock object
    /// ([`LockObject`]) guards the version check and the (atomic) replacement.
    async fn put_model_locked(
        &self,
        relative: &str,
        bytes: Vec<u8>,
        expected: UpdateVersion,
    ) -> Result<()> {
        let path = self.lake.path(relative);
        let lock_rel = self
            .lake
            .internal(&format!("locks/{}.lock", self.folder.replace('/', "__")));
        let owner = format!("publish of {} (run {})", self.folder, self.run_id);
        let Some(guard) = LockObject::new(&self.lake, lock_rel, LOCK_EXPIRY)
            .acquire(&owner, LOCK_WAIT)
            .await?
        else {
            return Err(Error::Conflict {
                path: path.to_string(),
            });
        };
        let store = self.lake.store();
        let result = async {
            self.check_fence().await?;
            let current = match store.head(&path).await {
                Ok(m) => Some(m.e_tag),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => return Err(Error::store(&path, e)),
            };
            if current != Some(expected.e_tag.clone()) {
                return Err(Error::Conflict {
                    path: path.to_string(),
                });
            }
            store
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(|e| Error::store(&path, e))?;
            Ok(())
        }
        .await;
        if let Err(e) = guard.release().await {
            // the lock is stale after its expiry; the outcome of the commit stands
            tracing::warn!(error = %e, "the publish lock could not be released");
        }
        result
    }

    /// Delete the run folders of this process that retention no longer keeps (see the
    /// module documentation).
    async fn apply_retention(&self) -> Result<Vec<RunId>> {
        let now = Utc::now();
        let min_age = chrono::Duration::from_std(self.min_age).unwrap_or(chrono::Duration::MAX);
        let recent = |t: DateTime<Utc>| now.signed_duration_since(t) < min_age;
        let referenced: BTreeSet<String> = self
            .model
            .entities
            .iter()
            .flat_map(|e| e.partitions.iter())
            .filter_map(|p| self.lake.relative_of_url(&p.location))
            .filter_map(|rel| rel.split('/').rev().nth(1).map(str::to_string))
            .collect();
        // Runs are found from the objects themselves (some S3-compatible stores keep
        // empty "directories" listed after their objects are gone), each with the time
        // its newest file was written.
        let mut runs_by_entity: BTreeMap<String, BTreeSet<RunId>> = BTreeMap::new();
        let mut written: BTreeMap<RunId, DateTime<Utc>> = BTreeMap::new();
        let folder_path = self.lake.path(&self.folder);
        for meta in self.lake.list(&self.folder).await? {
            let Some(parts) = meta.location.prefix_match(&folder_path) else {
                continue;
            };
            let parts: Vec<String> = parts.map(|p| p.as_ref().to_string()).collect();
            if let [entity, run, _file] = parts.as_slice() {
                if let Some(run) = RunId::parse(run) {
                    let at = written.entry(run.clone()).or_insert(meta.last_modified);
                    *at = (*at).max(meta.last_modified);
                    runs_by_entity
                        .entry(entity.clone())
                        .or_default()
                        .insert(run);
                }
            }
        }
        // Published runs: those whose run manifest was written after their commit, and
        // this one; each with when it was published.
        let manifests = self.lake.internal(&format!("runs/{}", self.folder));
        let manifests_path = self.lake.path(&manifests);
        let mut published: BTreeMap<RunId, DateTime<Utc>> = BTreeMap::new();
        for meta in self.lake.list(&manifests).await? {
            let Some(parts) = meta.location.prefix_match(&manifests_path) else {
                continue;
            };
            let parts: Vec<String> = parts.map(|p| p.as_ref().to_string()).collect();
            if let [file] = parts.as_slice() {
                if let Some(run) = file.strip_suffix(".json").and_then(RunId::parse) {
                    published.insert(run, meta.last_modified);
                }
            }
        }
        published.insert(self.run_id.clone(), now);
        // The newest `retention` published runs up to this one (orphans do not count),
        // and those that stopped being current (their successor was published) less than
        // the minimum age ago.
        let mut keep: BTreeSet<RunId> = BTreeSet::new();
        let counted: Vec<(&RunId, &DateTime<Utc>)> = published
            .iter()
            .filter(|(run, _)| **run <= self.run_id && written.contains_key(*run))
            .collect();
        keep.extend(
            counted
                .iter()
                .rev()
                .take(self.retention)
                .map(|(run, _)| (*run).clone()),
        );
        for pair in counted.windows(2) {
            let (run, (_, successor_published)) = (pair[0].0, pair[1]);
            if recent(*successor_published) {
                keep.insert(run.clone());
            }
        }
        let mut removed = BTreeSet::new();
        for (entity, runs) in runs_by_entity {
            for run in runs {
                let newer = run > self.run_id;
                let orphan_being_written = !published.contains_key(&run)
                    && written.get(&run).is_some_and(|at| recent(*at));
                if newer
                    || keep.contains(&run)
                    || orphan_being_written
                    || referenced.contains(run.as_str())
                {
                    continue;
                }
                self.lake
                    .delete_folder(&format!("{}/{entity}/{run}", self.folder))
                    .await?;
                removed.insert(run);
            }
        }
        // one run manifest per removed run, whatever number of entities it had
        for run in &removed {
            let manifest = self
                .lake
                .internal(&format!("runs/{}/{run}.json", self.folder));
            self.lake.delete(&manifest).await?;
        }
        Ok(removed.into_iter().collect())
    }
}

/// Read the current `model.json` of a process folder, if it has one.
pub async fn read_model(lake: &Lake, process: &Process) -> Result<Option<Model>> {
    read_model_at(lake, &process.folder()).await
}

/// Read the `model.json` of a folder (relative to the environment root), if present.
pub async fn read_model_at(lake: &Lake, folder: &str) -> Result<Option<Model>> {
    let rel = format!("{}/{MODEL_JSON}", folder.trim_end_matches('/'));
    match lake.get(&rel).await {
        Ok(bytes) => Model::from_json(lake.path(&rel).as_ref(), &bytes).map(Some),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The run whose `model.json` this is (its `lakecdp:runId` annotation).
pub fn published_run(model: &Model) -> Option<RunId> {
    model
        .annotations
        .iter()
        .find(|a| a.name == RUN_ANNOTATION)
        .and_then(|a| a.value.as_deref())
        .and_then(RunId::parse)
}

fn run_manifest_path(lake: &Lake, process: &Process, run: &RunId) -> String {
    lake.internal(&format!("runs/{}/{run}.json", process.folder()))
}

/// The manifest of a published run of `process` under `_lakecdp/runs/` (its entities
/// and rows, and the report attached to it), if the run was published and is kept.
pub async fn run_manifest(
    lake: &Lake,
    process: &Process,
    run: &RunId,
) -> Result<Option<serde_json::Value>> {
    let rel = run_manifest_path(lake, process, run);
    match lake.get(&rel).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::InvalidCdm {
                path: lake.path(&rel).to_string(),
                message: e.to_string(),
            }),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Attach what a published run did (counts and names, never a row of data) to its
/// manifest as `report`, where the admin centre reads it; retention removes it with
/// the run. A run whose manifest is gone (removed by retention meanwhile) is left so.
pub async fn attach_run_report(
    lake: &Lake,
    process: &Process,
    run: &RunId,
    report: serde_json::Value,
) -> Result<()> {
    let Some(mut manifest) = run_manifest(lake, process, run).await? else {
        return Ok(());
    };
    if let Some(m) = manifest.as_object_mut() {
        m.insert("report".into(), report);
    }
    let path = run_manifest_path(lake, process, run);
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::InvalidCdm {
        path: lake.path(&path).to_string(),
        message: e.to_string(),
    })?;
    lake.put(&path, bytes).await
}
