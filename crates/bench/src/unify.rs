//! The unification benchmark: generated records whose true person is known (the people
//! of several cultures, or the retail sample at a chosen scale), loaded with their
//! project file, then unified with that file's rules (written as a user would, not tuned
//! to the truth) in a process of its own, so its wall time and peak memory are its own.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use lakecdp_core::{EnvironmentId, LocalConfig, ProjectFile, StorageConfig};
use lakecdp_engine::ingest::{ingest_source, IngestOptions};
use lakecdp_engine::unify::{unify, UnifyOptions};
use lakecdp_lake::{Lake, Process};
use serde::{Deserialize, Serialize};

use crate::ingest::peak_rss;
use crate::{Error, Result};

/// The quickstart's project file: its sources and its unification rules.
pub const RETAIL_PROJECT: &str = include_str!("../../../examples/retail/lakecdp.toml");

/// Which generated data the benchmark unifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    /// The retail quickstart's sources at a scale.
    Retail,
    /// The people of several cultures (`crate::people`).
    People,
}

impl Dataset {
    /// The project file: sources and rules.
    pub fn project_text(self) -> &'static str {
        match self {
            Dataset::Retail => RETAIL_PROJECT,
            Dataset::People => crate::people::PEOPLE_PROJECT,
        }
    }
}

/// How the benchmark's project matches records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    /// The project's rules alone.
    Rules,
    /// The match models of `people/models.toml` alone (the rules removed).
    Model,
    /// Rules and models together.
    Both,
}

/// The match models the benchmark adds to the people project.
pub const PEOPLE_MODELS: &str = include_str!("people/models.toml");

#[derive(Deserialize)]
struct ModelsFile {
    tables: Vec<TableModels>,
}

#[derive(Deserialize)]
struct TableModels {
    table: String,
    dedupe_model: Option<lakecdp_core::ModelSpec>,
    #[serde(default)]
    match_model: Vec<lakecdp_core::ModelSpec>,
}

/// What one match model did in the measured run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSummary {
    /// `Source.Table`, and the other table.
    pub tables: String,
    /// Candidate pairs compared.
    pub candidates: u64,
    /// Pairs matched.
    pub matched: u64,
    /// Whether it was trained in this run.
    pub trained: bool,
    /// Seconds its training took (in the run that trained it).
    pub training_seconds: f64,
    /// (probability, candidate pairs at or above it).
    #[serde(default)]
    pub thresholds: Vec<(f64, u64)>,
}

/// What the unification phase measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnifyResult {
    /// Records unified.
    pub records: usize,
    /// Profiles made.
    pub profiles: usize,
    /// Candidate pairs compared, all rules together.
    pub candidates: u64,
    /// Pairs matched, all rules together.
    pub pairs: u64,
    /// Wall seconds of the whole unification (load to publish).
    pub seconds: f64,
    /// Seconds per phase.
    pub phases: Vec<(String, f64)>,
    /// Peak resident memory of the process, in bytes.
    pub peak_rss: u64,
    /// Per match model.
    #[serde(default)]
    pub models: Vec<ModelSummary>,
    /// Whether every record was matched, and why, or what an incremental run matched.
    #[serde(default)]
    pub mode: String,
}

fn project(data: Dataset, matching: Matching) -> Result<ProjectFile> {
    let mut project =
        ProjectFile::parse(data.project_text()).map_err(|e| Error::Bench(e.to_string()))?;
    if matching == Matching::Rules {
        return Ok(project);
    }
    if data != Dataset::People {
        return Err(Error::Bench(
            "match models are declared for the people data only".into(),
        ));
    }
    let models: ModelsFile =
        toml::from_str(PEOPLE_MODELS).map_err(|e| Error::Bench(format!("models.toml: {e}")))?;
    let spec = project
        .unification
        .as_mut()
        .ok_or_else(|| Error::Bench("the project declares no unification".into()))?;
    for t in &mut spec.tables {
        if matching == Matching::Model {
            t.dedupe.clear();
            t.match_rules.clear();
        }
        if let Some(m) = models.tables.iter().find(|m| m.table == t.qualified()) {
            t.dedupe_model = m.dedupe_model.clone();
            t.match_models = m.match_model.clone();
        }
    }
    Ok(project)
}

fn lake(dir: &Path) -> Result<Lake> {
    let root = dir.join("lake");
    std::fs::create_dir_all(root.join("customerinsights")).map_err(|e| Error::io(&root, e))?;
    let handle =
        lakecdp_lake::backend::open(&StorageConfig::Local(LocalConfig { path: root }), None)
            .map_err(|e| Error::Bench(e.to_string()))?;
    // one environment per benchmark folder
    let id_file = dir.join("environment-id");
    let id = match std::fs::read_to_string(&id_file) {
        Ok(text) => text
            .trim()
            .parse::<EnvironmentId>()
            .map_err(|e| Error::Bench(e.to_string()))?,
        Err(_) => {
            let id = EnvironmentId::new();
            std::fs::write(&id_file, id.to_string()).map_err(|e| Error::io(&id_file, e))?;
            id
        }
    };
    Ok(Lake::new(&handle, id).with_format(lakecdp_core::PartitionFormat::Parquet))
}

/// Load the sources of `dir/data` into the benchmark's lake.
pub async fn load(dir: &Path, data: Dataset) -> Result<f64> {
    let started = Instant::now();
    let project = project(data, Matching::Rules)?;
    let lake = lake(dir)?;
    for source in &project.sources {
        ingest_source(&lake, source, dir, &IngestOptions::default())
            .await
            .map_err(|e| Error::Bench(format!("loading {}: {e}", source.name)))?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Unify the loaded sources (the measured phase).
pub async fn run(
    dir: &Path,
    data: Dataset,
    matching: Matching,
    train: bool,
    full: bool,
    keep_state: bool,
) -> Result<UnifyResult> {
    let mut project = project(data, matching)?;
    let spec = project
        .unification
        .as_mut()
        .ok_or_else(|| Error::Bench("the project declares no unification".into()))?;
    spec.incremental = keep_state;
    let spec = &*spec;
    let lake = lake(dir)?;
    let started = Instant::now();
    let options = UnifyOptions {
        train,
        full,
        ..UnifyOptions::default()
    };
    let report = unify(&lake, &project.sources, spec, &options)
        .await
        .map_err(|e| Error::Bench(e.to_string()))?;
    Ok(UnifyResult {
        records: report.clusters.records,
        profiles: report.profiles,
        candidates: report.rules.iter().map(|r| r.candidates).sum(),
        pairs: report.rules.iter().map(|r| r.pairs).sum(),
        seconds: started.elapsed().as_secs_f64(),
        phases: report
            .phases
            .iter()
            .map(|(p, s)| (p.to_string(), *s))
            .collect(),
        peak_rss: peak_rss(),
        mode: match &report.mode {
            lakecdp_engine::unify::UnifyMode::Full { reason } => format!("full ({reason})"),
            lakecdp_engine::unify::UnifyMode::Incremental {
                changed,
                deleted,
                rematched,
                kept,
            } => format!(
                "incremental: {changed} records new or changed, {deleted} gone, {rematched} matched again, {kept} kept"
            ),
        },
        models: report
            .models
            .iter()
            .map(|m| ModelSummary {
                tables: if m.table == m.with {
                    m.table.clone()
                } else {
                    format!("{} ~ {}", m.table, m.with)
                },
                candidates: m.candidates,
                matched: m.matched,
                trained: m.trained,
                training_seconds: m.training.as_ref().map_or(0.0, |t| t.seconds),
                thresholds: m.thresholds.clone(),
            })
            .collect(),
    })
}

/// The published profiles: (table, primary key) -> CustomerId.
pub async fn profiles(dir: &Path) -> Result<HashMap<(String, String), String>> {
    use arrow::array::{Array, StringArray};
    let lake = lake(dir)?;
    let process = Process::Unification;
    let model = lakecdp_lake::publish::read_model(&lake, &process)
        .await
        .map_err(|e| Error::Bench(e.to_string()))?
        .ok_or_else(|| Error::Bench("nothing published".into()))?;
    let entity = model
        .entity("AlternateKey")
        .ok_or_else(|| Error::Bench("no AlternateKey".into()))?;
    let batches = lakecdp_lake::partition::read_entity(&lake, &process.folder(), entity)
        .await
        .map_err(|e| Error::Bench(e.to_string()))?;
    let mut out = HashMap::new();
    for b in batches {
        let col = |name: &str| -> Result<StringArray> {
            b.column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .cloned()
                .ok_or_else(|| Error::Bench(format!("AlternateKey.{name} is not text")))
        };
        let (table, key, id) = (
            col("TableName")?,
            col("AlternateValue")?,
            col("CustomerId")?,
        );
        for i in 0..b.num_rows() {
            out.insert(
                (table.value(i).to_string(), key.value(i).to_string()),
                id.value(i).to_string(),
            );
        }
    }
    Ok(out)
}

/// The generator's truth: (table, primary key) -> person.
pub fn truth(dir: &Path) -> Result<HashMap<(String, String), String>> {
    let path = dir.join("data/ground_truth.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            // the retail truth names files, the people truth names tables
            let table = match *f.first()? {
                "crm_contacts" => "Contacts",
                "shop_customers" => "Customers",
                "loyalty_members" => "Members",
                other => other,
            };
            let key = f.get(2)?;
            let person = f.get(3)?;
            (!key.is_empty()).then(|| ((table.to_string(), key.to_string()), person.to_string()))
        })
        .collect())
}
