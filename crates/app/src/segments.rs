//! Segments: the declared segments with their member counts per run, and the preview of
//! a condition (a count and a sample, nothing saved).

use arrow::record_batch::RecordBatch;
use chrono::Utc;
use lakecdp_core::segment::parse_condition;
use lakecdp_core::{MeasureSpec, Operation, SegmentSpec};
use lakecdp_engine::segments::{history, preview};

use crate::app::{Actor, App};
use crate::error::{Error, Result};

pub use lakecdp_engine::segments::HistoryEntry;

impl App {
    /// The segments of the environment named (the project's with `None`) and the member
    /// counts of every published run, oldest first (Viewer).
    pub async fn segments(
        &self,
        actor: &Actor,
        environment: Option<&str>,
    ) -> Result<(Vec<SegmentSpec>, Vec<HistoryEntry>)> {
        let env = self
            .environment_for(actor, environment, Operation::ViewEnvironment)
            .await?;
        let project = self.applied(actor, &env).await?.project;
        let lake = self.lake(&env).await?;
        Ok((project.segments, history(&lake).await?))
    }

    /// One segment and the member counts of every published run (Viewer).
    pub async fn segment(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<(SegmentSpec, Vec<HistoryEntry>)> {
        let (specs, runs) = self.segments(actor, None).await?;
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let spec = specs
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .cloned()
            .ok_or_else(|| {
                Error::not_found(format!(
                    "no segment `{name}`; the segments are {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            })?;
        Ok((spec, runs))
    }

    /// How many customers `condition` selects now, and a sample of at most `sample` of
    /// them; nothing is saved (Viewer).
    pub async fn preview_segment(
        &self,
        actor: &Actor,
        condition: &str,
        sample: usize,
    ) -> Result<(u64, RecordBatch)> {
        let condition = parse_condition(condition)
            .map_err(|e| Error::invalid(format!("the condition does not parse: {e}")))?;
        let env = self
            .environment_for(actor, None, Operation::ViewEnvironment)
            .await?;
        let engine = self.applied(actor, &env).await?.project.environment.engine;
        let lake = self.lake(&env).await?;
        let session = self.session(&lake, &engine, false).await?;
        let tables = session.register_outputs().await?;
        if !tables.iter().any(|t| t == "Customer") {
            return Err(Error::not_found(
                "no customer profiles are published yet: run `lakecdp refresh` first",
            ));
        }
        let previewed = preview(&session, &condition, Utc::now(), sample).await;
        if let Err(e) = session.close().await {
            tracing::warn!(error = %e, "a preview's scratch files were not removed");
        }
        Ok(previewed?)
    }
}

impl App {
    /// The columns a condition may name: those of the published `Customer` and
    /// `Customer_Measure`, sorted (Viewer).
    pub async fn condition_columns(&self, actor: &Actor) -> Result<Vec<String>> {
        let env = self
            .environment_for(actor, None, Operation::ViewEnvironment)
            .await?;
        let lake = self.lake(&env).await?;
        let mut columns = Vec::new();
        for (process, entity) in [
            (lakecdp_core::Process::Unification, "Customer"),
            (lakecdp_core::Process::Measures, "Customer_Measure"),
        ] {
            if let Some(model) = lakecdp_lake::publish::read_model(&lake, &process).await? {
                if let Some(e) = model.entity(entity) {
                    columns.extend(e.attributes.iter().map(|a| a.name.clone()));
                }
            }
        }
        columns.sort();
        columns.dedup();
        Ok(columns)
    }

    /// The measures of the applied revision (Viewer).
    pub async fn measures(&self, actor: &Actor) -> Result<Vec<MeasureSpec>> {
        let env = self
            .environment_for(actor, None, Operation::ViewEnvironment)
            .await?;
        Ok(self.applied(actor, &env).await?.project.measures)
    }
}

/// The rows of `batch` as JSON objects, column name to value (a preview's sample as an
/// API returns it).
pub fn rows_json(batch: &RecordBatch) -> Result<Vec<serde_json::Value>> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    writer
        .write(batch)
        .map_err(|e| Error::internal(format!("the sample cannot be written as JSON: {e}")))?;
    writer
        .finish()
        .map_err(|e| Error::internal(format!("the sample cannot be written as JSON: {e}")))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::internal(format!("the sample cannot be read back as JSON: {e}")))
}
