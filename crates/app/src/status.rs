//! What the processes' last runs did, for the admin centre: each source's load (rows
//! read, written and kept as corrupt with their reasons, sample corrupt rows, the
//! incremental watermarks) and the last unification (duplicates, matches per rule,
//! profile sizes). The figures are the reports a refresh keeps beside each published
//! run in the lake (`_lakecdp/runs/`), so every instance and every later session reads
//! the same ones, whoever ran the refresh.
//!
//! The unification rules are also read and edited here as the `[unification]` section
//! of the applied revision: an edit stores the whole project as the next revision.

use chrono::{DateTime, Utc};
use lakecdp_core::{Operation, Process, ProjectFile, RunId, RunRecord, Watermark};
use lakecdp_lake::publish::{published_run, read_model, run_manifest};
use lakecdp_lake::Lake;
use serde::{Deserialize, Serialize};

use crate::app::{Actor, App};
use crate::error::{Error, Result, ResultExt};
use crate::revisions::RevisionChange;

pub use lakecdp_engine::ingest::corrupt_entity;

/// Corrupt rows a page shows at most per table.
pub const CORRUPT_SAMPLE: usize = 20;

/// Records per table a preview of unification rules unifies unless told otherwise.
pub const PREVIEW_SAMPLE: usize = 5_000;

/// Corrupt rows counted under one reason kind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReasonCount {
    /// The reason's kind (the text before its first `:`).
    pub reason: String,
    /// Rows.
    pub rows: u64,
}

/// What a load applied to a table in the incremental layout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IncrementalLoad {
    /// Where it started: `previous output` or `FullData`.
    pub base: String,
    /// Rows read from the base.
    pub base_rows: u64,
    /// Hour folders applied.
    pub hours: usize,
    /// The first hour applied.
    pub first_hour: Option<DateTime<Utc>>,
    /// The last hour applied.
    pub last_hour: Option<DateTime<Utc>>,
    /// Records read from `Upserts/`.
    pub upserts: u64,
    /// Records read from `Deletes/`.
    pub deletes: u64,
    /// Hour folders not ended yet, left for a later load.
    pub waiting: usize,
    /// Files written late into hours already applied (not loaded).
    pub late: usize,
}

/// What the last load of one table did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableLoad {
    /// The table.
    pub table: String,
    /// Records read.
    pub read: u64,
    /// Rows written to the table.
    pub written: u64,
    /// Rows kept in its corrupt table.
    pub corrupt: u64,
    /// Rows a later change replaced (incremental tables).
    pub replaced: u64,
    /// Rows deleted (incremental tables).
    pub deleted: u64,
    /// Seconds the load took.
    pub seconds: f64,
    /// Corrupt rows per reason kind, most frequent first.
    pub reasons: Vec<ReasonCount>,
    /// What an incremental load applied.
    pub incremental: Option<IncrementalLoad>,
}

#[derive(Deserialize)]
struct SourceLoad {
    tables: Vec<TableLoad>,
}

/// A published run of a process folder.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Published {
    /// The run.
    pub run: RunId,
    /// When it was published (CDM time), when its manifest is kept.
    pub at: Option<String>,
}

/// The sources of an applied revision as their loads left them.
#[derive(Debug, Clone, Serialize)]
pub struct Ingestion {
    /// The applied revision whose sources these are.
    pub revision: u32,
    /// Each source, in the order the revision declares them.
    pub sources: Vec<SourceStatus>,
}

/// One source as its loads left it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    /// The source.
    pub source: String,
    /// Its tables: name and format, as the applied revision declares them.
    pub tables: Vec<(String, String)>,
    /// The run its folder publishes now, if any.
    pub published: Option<Published>,
    /// What that run did per table; none when no report was kept (a run published
    /// before reports were kept, or one whose report could not be written).
    pub loads: Option<Vec<TableLoad>>,
    /// Its latest load run, whatever its outcome (a failed one says why).
    pub last_run: Option<RunRecord>,
    /// The incremental watermarks of its tables.
    pub watermarks: Vec<Watermark>,
}

/// A corrupt row as its table keeps it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CorruptRow {
    /// The file it was read from.
    pub file: String,
    /// Its line (or record number).
    pub line: i64,
    /// The record as read.
    pub raw: String,
    /// Why it was not loaded.
    pub reason: String,
}

/// Records and what became of them, per unified table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UnifiedTable {
    /// `Source.Table`.
    pub table: String,
    /// Records read.
    pub records: u64,
    /// Records merged into another of the same table.
    pub duplicates: u64,
    /// Records that matched a record of an earlier table.
    pub matched: u64,
    /// Unmatched records left out.
    pub excluded: u64,
}

/// Pairs one rule matched.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuleMatches {
    /// `Source.Table`.
    pub table: String,
    /// `dedupe` or `match`.
    pub kind: String,
    /// The rule.
    pub rule: String,
    /// Candidate pairs compared.
    pub candidates: u64,
    /// Pairs matched.
    pub pairs: u64,
}

/// Profiles of one size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SizeCount {
    /// Source records in the profile.
    pub size: u64,
    /// Profiles of that size.
    pub count: u64,
}

/// The clusters a unification built.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Clusters {
    /// Records clustered.
    pub records: u64,
    /// Clusters (profiles).
    pub clusters: u64,
    /// Profiles per size.
    pub sizes: Vec<SizeCount>,
}

/// A match model's figures in a unification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelMatches {
    /// `Source.Table`.
    pub table: String,
    /// The other table of a pair model.
    pub with: Option<String>,
    /// Candidate pairs scored.
    pub candidates: u64,
    /// Pairs above the threshold.
    pub matched: u64,
    /// The threshold (a probability).
    pub threshold: f64,
}

/// What a unification did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UnifyStats {
    /// Profiles published.
    pub profiles: u64,
    /// Per table.
    pub tables: Vec<UnifiedTable>,
    /// Per rule.
    pub rules: Vec<RuleMatches>,
    /// The clusters.
    pub clusters: Clusters,
    /// Per match model.
    #[serde(default)]
    pub models: Vec<ModelMatches>,
    /// Profiles held for review (built through weak links only).
    #[serde(default)]
    pub held_for_review: u64,
    /// Blocks skipped by the giant-block guard.
    #[serde(default)]
    pub skipped_blocks: u64,
    /// CustomerIds that changed.
    #[serde(default)]
    pub id_changes: u64,
}

impl UnifyStats {
    /// A unification's report as these figures.
    pub fn of(report: &lakecdp_engine::unify::UnifyReport) -> Result<Self> {
        serde_json::from_value(crate::observe::unify_report_json(report))
            .map_err(|e| Error::internal(format!("the unification report: {e}")))
    }
}

/// The unification of an environment: its rules and its last run.
#[derive(Debug, Clone, Serialize)]
pub struct UnificationStatus {
    /// The applied revision.
    pub revision: u32,
    /// Its `[unification]` section, as TOML (empty when it declares none).
    pub section: String,
    /// The run `Unification/` publishes now, if any.
    pub published: Option<Published>,
    /// What that run did, when its report was kept.
    pub last: Option<UnifyStats>,
    /// The latest unification run, whatever its outcome.
    pub last_run: Option<RunRecord>,
}

async fn published(
    lake: &Lake,
    process: &Process,
) -> Result<Option<(Published, serde_json::Value)>> {
    let Some(model) = read_model(lake, process).await? else {
        return Ok(None);
    };
    let Some(run) = published_run(&model) else {
        return Ok(None);
    };
    // a manifest that does not read only hides the figures, like a report that does not
    let manifest = match run_manifest(lake, process, &run).await {
        Ok(m) => m,
        Err(lakecdp_lake::Error::InvalidCdm { path, message }) => {
            tracing::warn!(%path, %message, "a run manifest in the lake does not read; its figures are not shown");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let at = manifest
        .as_ref()
        .and_then(|m| m.get("publishedAt"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let report = manifest
        .and_then(|mut m| m.get_mut("report").map(serde_json::Value::take))
        .unwrap_or(serde_json::Value::Null);
    Ok(Some((Published { run, at }, report)))
}

/// The report kept beside a run, read as `T`; none when there is none or it does not
/// read (a report from another version).
fn report_as<T: serde::de::DeserializeOwned>(report: serde_json::Value) -> Option<T> {
    if report.is_null() {
        return None;
    }
    match serde_json::from_value(report) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "a run report in the lake does not read; it is not shown");
            None
        }
    }
}

/// The `[unification]` section of a project file's text.
pub fn unification_section(text: &str) -> Result<String> {
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| Error::invalid(format!("the project file is not valid TOML: {e}")))?;
    let mut out = toml_edit::DocumentMut::new();
    if let Some(item) = doc.get("unification") {
        out.insert("unification", item.clone());
    }
    Ok(out.to_string())
}

/// A project file's text with its `[unification]` section replaced by `section` (at the
/// end of the file). `section` must hold the `unification` table and nothing else:
/// removing the unification is an edit of the whole project file, never an empty form.
pub fn with_unification(text: &str, section: &str) -> Result<String> {
    let new: toml_edit::DocumentMut = section
        .parse()
        .map_err(|e| Error::invalid(format!("the unification rules are not valid TOML: {e}")))?;
    if let Some((key, _)) = new.iter().find(|(k, _)| *k != "unification") {
        return Err(Error::invalid(format!(
            "only the `[unification]` section is edited here; `{key}` belongs to another part of the project file (edit that with `lakecdp apply`)"
        )));
    }
    if new.get("unification").is_none() {
        return Err(Error::invalid(
            "the rules hold no `[unification]` section; to stop unifying, remove it from the project file and apply that with `lakecdp apply`",
        ));
    }
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| Error::invalid(format!("the applied project is not valid TOML: {e}")))?;
    doc.remove("unification");
    let joined = format!("{}\n\n{}\n", doc.to_string().trim_end(), section.trim());
    // the section must mean the same at the end of the file as alone (a bare key would
    // otherwise join the table before it)
    let again: toml::Table = toml::from_str(&joined).map_err(|e| {
        Error::invalid(format!(
            "the unification rules do not fit the project file: {e}"
        ))
    })?;
    let alone: toml::Table = toml::from_str(section)
        .map_err(|e| Error::invalid(format!("the unification rules are not valid TOML: {e}")))?;
    if again.get("unification") != alone.get("unification") {
        return Err(Error::invalid(
            "the unification rules must start with the `[unification]` header (or `[[unification.tables]]`); keys before it would join another table of the project file",
        ));
    }
    Ok(joined)
}

impl App {
    async fn viewable(
        &self,
        actor: &Actor,
        environment: &str,
    ) -> Result<(lakecdp_core::Environment, Lake)> {
        let env = self
            .environment_for(actor, Some(environment), Operation::ViewEnvironment)
            .await?;
        let lake = self.lake(&env).await?;
        Ok((env, lake))
    }

    /// Each source of the applied revision with its last load (Viewer).
    pub async fn ingestion_status(&self, actor: &Actor, environment: &str) -> Result<Ingestion> {
        let (env, lake) = self.viewable(actor, environment).await?;
        let applied = self.applied(actor, &env).await?;
        let project = applied.project;
        let mut out = Vec::with_capacity(project.sources.len());
        for source in &project.sources {
            let process = Process::Ingestion(source.name.clone());
            let found = published(&lake, &process).await?;
            let (published, loads) = match found {
                Some((p, report)) => (Some(p), report_as::<SourceLoad>(report).map(|r| r.tables)),
                None => (None, None),
            };
            out.push(SourceStatus {
                source: source.name.clone(),
                tables: source
                    .tables
                    .iter()
                    .map(|t| (t.name.clone(), t.format.to_string()))
                    .collect(),
                published,
                loads,
                last_run: self
                    .catalog()
                    .latest_run(env.id, &process.to_string(), None)
                    .await?,
                watermarks: self.catalog().watermarks(env.id, &source.name).await?,
            });
        }
        Ok(Ingestion {
            revision: applied.revision.number,
            sources: out,
        })
    }

    /// The first `limit` corrupt rows of a source table's last load (Viewer).
    pub async fn corrupt_rows(
        &self,
        actor: &Actor,
        environment: &str,
        source: &str,
        table: &str,
        limit: usize,
    ) -> Result<Vec<CorruptRow>> {
        let (env, lake) = self.viewable(actor, environment).await?;
        let project = self.applied(actor, &env).await?.project;
        let spec = crate::sources::find(&project.sources, source)?;
        let t = spec
            .tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(table))
            .ok_or_else(|| {
                Error::not_found(format!("source `{}` has no table `{table}`", spec.name))
            })?;
        let entity = corrupt_entity(&spec.name, &t.name);
        let session = self
            .session(&lake, &project.environment.engine, false)
            .await?;
        let process = Process::Ingestion(spec.name.clone());
        if !session
            .register_published(&process, &entity, "corrupt")
            .await?
        {
            return Ok(Vec::new());
        }
        // in the order the rows were read; the record as read cut to its first 1,000
        // characters (a hostile file's line may be huge)
        let sql = format!(
            "SELECT \"File\", \"Line\", substr(\"Raw\", 1, 1000), \"Reason\" \
             FROM corrupt ORDER BY \"File\", \"Line\" LIMIT {limit}"
        );
        let batches = session
            .context()
            .sql(&sql)
            .await
            .map_err(lakecdp_engine::Error::from)?
            .collect()
            .await
            .map_err(lakecdp_engine::Error::from)?;
        let mut rows = Vec::new();
        for b in &batches {
            let text = |i: usize| -> Result<Vec<String>> {
                use arrow::array::Array;
                let col = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8)
                    .map_err(|e| Error::internal(format!("the corrupt table: {e}")))?;
                let col = col
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .ok_or_else(|| Error::internal("the corrupt table: a column is not text"))?;
                Ok((0..col.len())
                    .map(|r| {
                        if col.is_valid(r) {
                            col.value(r).to_string()
                        } else {
                            String::new()
                        }
                    })
                    .collect())
            };
            let (file, raw, reason) = (text(0)?, text(2)?, text(3)?);
            let lines = arrow::compute::cast(b.column(1), &arrow::datatypes::DataType::Int64)
                .map_err(|e| Error::internal(format!("the corrupt table's lines: {e}")))?;
            let lines = lines
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .ok_or_else(|| Error::internal("the corrupt table's lines are not numbers"))?;
            for r in 0..b.num_rows() {
                rows.push(CorruptRow {
                    file: file[r].clone(),
                    line: lines.value(r),
                    raw: raw[r].clone(),
                    reason: reason[r].clone(),
                });
            }
        }
        Ok(rows)
    }

    /// The unification rules of the applied revision and what its last run did
    /// (Viewer).
    pub async fn unification_status(
        &self,
        actor: &Actor,
        environment: &str,
    ) -> Result<UnificationStatus> {
        let (env, lake) = self.viewable(actor, environment).await?;
        let applied = self.applied(actor, &env).await?;
        let (published, last) = match published(&lake, &Process::Unification).await? {
            Some((p, report)) => (Some(p), report_as::<UnifyStats>(report)),
            None => (None, None),
        };
        Ok(UnificationStatus {
            revision: applied.revision.number,
            section: unification_section(&applied.revision.text)?,
            published,
            last,
            last_run: self
                .catalog()
                .latest_run(env.id, &Process::Unification.to_string(), None)
                .await?,
        })
    }

    /// The applied project's text with its `[unification]` section replaced, validated,
    /// and the number of the revision replaced, once `actor` may perform `operation`.
    async fn with_rules(
        &self,
        actor: &Actor,
        environment: &str,
        section: &str,
        operation: Operation,
    ) -> Result<(String, u32)> {
        let env = self
            .environment_for(actor, Some(environment), operation)
            .await?;
        let applied = self.applied(actor, &env).await?;
        let text = with_unification(&applied.revision.text, section)?;
        ProjectFile::parse(&text).context("the project file with these rules")?;
        Ok((text, applied.revision.number))
    }

    /// The applied project's text with `section` as its `[unification]`, validated;
    /// nothing is stored (Viewer).
    pub async fn project_with_rules(
        &self,
        actor: &Actor,
        environment: &str,
        section: &str,
    ) -> Result<String> {
        Ok(self
            .with_rules(actor, environment, section, Operation::ViewEnvironment)
            .await?
            .0)
    }

    /// Store the applied project with `section` as its `[unification]` as the next
    /// revision (Contributor); the next refresh unifies with it.
    ///
    /// `edited` is the revision whose rules were edited: when another revision was
    /// applied since, nothing is stored and the conflict is said (the edit would undo it).
    pub async fn apply_unification(
        &self,
        actor: &Actor,
        environment: &str,
        section: &str,
        edited: Option<u32>,
    ) -> Result<RevisionChange> {
        let (text, applied) = self
            .with_rules(actor, environment, section, Operation::EditProject)
            .await?;
        if let Some(edited) = edited.filter(|&e| e != applied) {
            return Err(Error::conflict(format!(
                "these rules were edited from revision {edited}, but revision {applied} was applied since: load the page again to edit the rules of revision {applied}"
            )));
        }
        self.apply_text(actor, environment, &text).await
    }

    /// Preview `section` as the `[unification]` of the applied project on the first
    /// `sample` records of each table; nothing is stored (Viewer).
    pub async fn preview_unification_rules(
        &self,
        actor: &Actor,
        environment: &str,
        section: &str,
        sample: usize,
    ) -> Result<UnifyStats> {
        let text = self.project_with_rules(actor, environment, section).await?;
        let report = self
            .in_environment(environment)
            .preview_unification(actor, Some(&text), sample)
            .await?;
        UnifyStats::of(&report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT: &str = r#"# the retail project
[environment]
name = "retail"

[[sources]]
name = "crm"

[unification]
max_block = 10

[[unification.tables]]
source = "crm"
table = "contacts"

[[sources.tables]]
name = "contacts"
"#;

    #[test]
    fn the_section_is_read_and_replaced_whole() {
        let section = unification_section(PROJECT).unwrap();
        assert!(section.contains("max_block = 10"), "{section}");
        assert!(section.contains("[[unification.tables]]"), "{section}");
        assert!(!section.contains("sources"), "{section}");

        let edited = section.replace("max_block = 10", "max_block = 20");
        let text = with_unification(PROJECT, &edited).unwrap();
        let t: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(t["unification"]["max_block"].as_integer(), Some(20));
        assert_eq!(t["unification"]["tables"].as_array().unwrap().len(), 1);
        // the rest of the file is kept, comments included
        assert!(text.starts_with("# the retail project"));
        assert_eq!(
            t["sources"][0]["tables"][0]["name"].as_str(),
            Some("contacts")
        );
        assert_eq!(unification_section(&text).unwrap().trim(), edited.trim());
    }

    #[test]
    fn other_sections_and_loose_keys_are_refused() {
        let e = with_unification(PROJECT, "[environment]\nname = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("`environment`"), "{e}");
        let e = with_unification(PROJECT, "unification = 3\n").unwrap_err();
        assert!(e.to_string().contains("[unification]"), "{e}");
        let e = with_unification(PROJECT, "[unification\n").unwrap_err();
        assert!(e.to_string().contains("not valid TOML"), "{e}");
    }

    #[test]
    fn rules_without_the_section_are_refused() {
        for empty in ["", "# only a comment\n"] {
            let e = with_unification(PROJECT, empty).unwrap_err();
            assert!(e.to_string().contains("no `[unification]`"), "{e}");
        }
    }
}
