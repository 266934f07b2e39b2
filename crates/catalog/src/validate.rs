//! Checks every backend applies before it stores an object, so they refuse the same
//! things with the same messages.

use lakecdp_core::{ConfigErrors, Environment, RunRecord};

use crate::error::{Error, Result};

/// Refuse an environment the catalog must not hold.
pub(crate) fn environment(environment: &Environment) -> Result<()> {
    if environment.name.trim().is_empty() {
        return Err(Error::Invalid("the environment name is empty".into()));
    }
    if environment.retention_runs == 0 {
        return Err(Error::Invalid(format!(
            "environment `{}` keeps 0 runs; retention must be at least 1",
            environment.name
        )));
    }
    let problems = environment.storage.validate();
    if !problems.is_empty() {
        return Err(Error::Invalid(format!(
            "environment `{}`: {}",
            environment.name,
            ConfigErrors(problems)
        )));
    }
    Ok(())
}

/// Refuse a run the catalog must not hold.
pub(crate) fn run(run: &RunRecord) -> Result<()> {
    if run.process.trim().is_empty() {
        return Err(Error::Invalid(format!("run `{}` names no process", run.id)));
    }
    if let Some(rows) = run.rows {
        if i64::try_from(rows).is_err() {
            return Err(Error::Invalid(format!(
                "run `{}` reports {rows} rows, more than the catalog can store",
                run.id
            )));
        }
    }
    if let Some(finished) = run.finished_at {
        if finished < run.started_at {
            return Err(Error::Invalid(format!(
                "run `{}` finished before it started",
                run.id
            )));
        }
    }
    Ok(())
}
