//! The refresh benchmark: a whole system refresh (every source's ingestion, unification
//! and whatever else the project declares) of a project folder, each measured run in a
//! process of its own started on a fresh copy of the folder (its own catalog and lake).
//!
//! The refresh runs either through `lakecdp-app` in a child of the benchmark
//! ([`run_app`], the child printing one JSON line with the refresh's report), or as a
//! given `lakecdp` binary's `refresh --apply --create-container`. Either way the parent
//! takes the wall time from start to exit and the peak resident memory from the
//! child's resource usage ([`run_measured`]), so two binaries, or the application layer
//! and a binary, are compared on the same input measured the same way.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Instant;

use lakecdp_app::{Actor, App, CancellationToken, RefreshRequest, Silent};
use lakecdp_core::RunStatus;
use serde::{Deserialize, Serialize};

use crate::ingest::peak_rss;
use crate::people::{self, PeopleConfig};
use crate::{Error, Result};

/// The retail quickstart's project folder in this checkout.
pub const RETAIL_EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/retail");

/// What a project folder holds that a run makes: its catalog and its lake (a fresh
/// copy leaves them out).
const RUN_STATE: &[&str] = &[".lakecdp", "lake"];

/// One process of a refresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessTime {
    /// The process, e.g. `ingest:Crm`, `unify`.
    pub process: String,
    /// Succeeded, Failed, Skipped or Canceled.
    pub status: String,
    /// Seconds it ran.
    pub seconds: f64,
    /// Rows it wrote, when it says.
    pub rows: Option<u64>,
}

/// What the refresh through `lakecdp-app` measured in its own process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppRefresh {
    /// The refresh's status.
    pub status: String,
    /// Why it did not succeed: its first failed or canceled process and the reason.
    pub problem: Option<String>,
    /// Seconds of `apply` (create the environment after its checks, store the revision).
    pub apply_seconds: f64,
    /// Seconds of the refresh, planning included.
    pub refresh_seconds: f64,
    /// Every process, in run order, as the refresh's report gives it.
    pub processes: Vec<ProcessTime>,
    /// Peak resident memory of the process as it saw it, in bytes.
    pub peak_rss: u64,
}

/// Apply the project file of `project_dir` (creating the container) and refresh it
/// through `lakecdp-app`, with the catalog in `project_dir/.lakecdp/catalog.db` as the
/// command line keeps it.
pub async fn run_app(project_dir: &Path) -> Result<AppRefresh> {
    let catalog_path = project_dir.join(".lakecdp").join("catalog.db");
    let catalog = lakecdp_app::open_catalog(&catalog_path).await?;
    let app = App::new(catalog, project_dir);
    let actor = Actor::local(None);
    let started = Instant::now();
    app.apply(&actor, true, &Silent).await?;
    let apply_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let report = app
        .refresh(
            &actor,
            &RefreshRequest::default(),
            CancellationToken::new(),
            Arc::new(Silent),
        )
        .await?;
    let refresh_seconds = started.elapsed().as_secs_f64();
    let problem = (report.status != RunStatus::Succeeded)
        .then(|| {
            report.first_problem().map(|o| {
                format!(
                    "{}: {}",
                    o.process,
                    o.reason.as_deref().unwrap_or("no reason given")
                )
            })
        })
        .flatten();
    Ok(AppRefresh {
        status: report.status.to_string(),
        problem,
        apply_seconds,
        refresh_seconds,
        processes: report
            .processes
            .iter()
            .map(|o| ProcessTime {
                process: o.process.to_string(),
                status: o.status.to_string(),
                seconds: o.elapsed.as_secs_f64(),
                rows: o.rows,
            })
            .collect(),
        peak_rss: peak_rss(),
    })
}

/// The people project folder under `dir`: its project file and `data/` with `records`
/// records of `seed`, generated only when missing or made with other parameters.
/// Returns the folder and the records written.
pub fn people_project(dir: &Path, records: usize, seed: u64) -> Result<(PathBuf, usize)> {
    let project = dir.join("people");
    let data = project.join("data");
    let stamp = project.join("data.params");
    let params = format!("people {records} {seed}");
    let generated = std::fs::read_to_string(&stamp).ok().and_then(|text| {
        let mut lines = text.lines();
        (lines.next() == Some(params.as_str()))
            .then(|| lines.next().and_then(|l| l.trim().parse::<usize>().ok()))
            .flatten()
    });
    let written = match generated {
        Some(written) => written,
        None => {
            if project.exists() {
                std::fs::remove_dir_all(&project).map_err(|e| Error::io(&project, e))?;
            }
            eprintln!(
                "generating {records} records of people into {}",
                data.display()
            );
            let summary = people::generate(&PeopleConfig { seed, records }, &data)?;
            eprintln!(
                "  {} persons, {} CRM and {} web records, {} duplicates",
                summary.persons, summary.crm, summary.web, summary.duplicates
            );
            std::fs::write(&stamp, format!("{params}\n{}\n", summary.records()))
                .map_err(|e| Error::io(&stamp, e))?;
            summary.records()
        }
    };
    let file = project.join(lakecdp_core::project::PROJECT_FILE);
    std::fs::write(&file, people::PEOPLE_PROJECT).map_err(|e| Error::io(&file, e))?;
    Ok((project, written))
}

/// Make `to` a fresh copy of the project folder `from`, without its catalog and lake.
///
/// The project file is copied; the source files (read, never written, by a refresh) are
/// hard links when the file system allows, so that no copy is still being written back
/// to disk while a run is measured.
pub fn fresh_copy(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to).map_err(|e| Error::io(to, e))?;
    }
    copy_tree(from, to, true)
}

fn copy_tree(from: &Path, to: &Path, top: bool) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    let entries = std::fs::read_dir(from).map_err(|e| Error::io(from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let name = entry.file_name();
        if top && RUN_STATE.iter().any(|s| name == *s) {
            continue;
        }
        let (source, target) = (entry.path(), to.join(&name));
        let kind = entry.file_type().map_err(|e| Error::io(&source, e))?;
        if kind.is_dir() {
            copy_tree(&source, &target, false)?;
        } else if top && name == lakecdp_core::project::PROJECT_FILE {
            std::fs::copy(&source, &target).map_err(|e| Error::io(&target, e))?;
        } else if std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target).map_err(|e| Error::io(&target, e))?;
        }
    }
    Ok(())
}

/// A child process measured from start to exit.
#[derive(Debug)]
pub struct Measured {
    /// How it exited.
    pub status: ExitStatus,
    /// Wall seconds from start to exit.
    pub seconds: f64,
    /// Its peak resident memory (the kernel's `ru_maxrss`), in bytes.
    pub peak_rss: u64,
    /// What it wrote to its standard output.
    pub stdout: String,
}

/// Run `command` to its end, its standard output captured (its standard error as the
/// command says), and measure its wall time and peak resident memory.
pub fn run_measured(command: &mut Command) -> Result<Measured> {
    let program = PathBuf::from(command.get_program());
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Run {
            program: program.clone(),
            source,
        })?;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)
            .map_err(|source| Error::Run {
                program: program.clone(),
                source,
            })?;
    }
    let (status, peak_rss) =
        wait_with_usage(child.id()).map_err(|source| Error::Run { program, source })?;
    Ok(Measured {
        status,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss,
        stdout,
    })
}

/// Wait for the child `pid` and take its exit status and peak resident memory from
/// `wait4` (std's `wait` drops the resource usage).
fn wait_with_usage(pid: u32) -> std::io::Result<(ExitStatus, u64)> {
    use std::os::unix::process::ExitStatusExt;
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::other(format!("process id {pid} out of range")))?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, valid when all zero.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid for writes for the whole call; `pid` is
        // our own child, not yet waited for.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let max_rss = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    // Linux counts ru_maxrss in KiB, macOS in bytes
    let bytes = if cfg!(target_os = "macos") {
        max_rss
    } else {
        max_rss * 1024
    };
    Ok((ExitStatus::from_raw(status), bytes))
}

/// The process table a `lakecdp refresh` prints (`process | status | seconds | rows |
/// note`, seconds to a tenth), read back from its output; empty when none is found.
pub fn printed_outcomes(stdout: &str) -> Vec<ProcessTime> {
    const STATUSES: &[&str] = &["Succeeded", "Failed", "Skipped", "Canceled"];
    stdout
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .split(['│', '┆', '|'])
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            let (process, status, seconds) = (cells.first()?, cells.get(1)?, cells.get(2)?);
            if !STATUSES.contains(status) {
                return None;
            }
            Some(ProcessTime {
                process: (*process).to_string(),
                status: (*status).to_string(),
                seconds: seconds.parse().ok()?,
                rows: cells.get(3).and_then(|r| r.parse().ok()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_printed_process_table() {
        let out = "\
┌────────────┬───────────┬─────────┬────────┬──────┐
│ process    ┆ status    ┆ seconds ┆ rows   ┆ note │
╞════════════╪═══════════╪═════════╪════════╪══════╡
│ ingest:Crm ┆ Succeeded ┆ 12.3    ┆ 600000 ┆      │
│ unify      ┆ Skipped   ┆ 0.0     ┆ -      ┆ why  │
└────────────┴───────────┴─────────┴────────┴──────┘
refresh 1: Succeeded (see `lakecdp runs show 1`)
";
        assert_eq!(
            printed_outcomes(out),
            vec![
                ProcessTime {
                    process: "ingest:Crm".into(),
                    status: "Succeeded".into(),
                    seconds: 12.3,
                    rows: Some(600_000),
                },
                ProcessTime {
                    process: "unify".into(),
                    status: "Skipped".into(),
                    seconds: 0.0,
                    rows: None,
                },
            ]
        );
    }

    #[test]
    fn a_fresh_copy_leaves_out_the_catalog_and_the_lake() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("project");
        for folder in ["data/sub", ".lakecdp", "lake/x"] {
            std::fs::create_dir_all(from.join(folder)).unwrap();
        }
        std::fs::write(from.join("lakecdp.toml"), "x").unwrap();
        std::fs::write(from.join("data/sub/a.csv"), "a").unwrap();
        std::fs::write(from.join(".lakecdp/catalog.db"), "c").unwrap();
        let to = dir.path().join("run");
        std::fs::create_dir_all(to.join("lake")).unwrap();
        fresh_copy(&from, &to).unwrap();
        assert_eq!(
            std::fs::read_to_string(to.join("lakecdp.toml")).unwrap(),
            "x"
        );
        assert_eq!(
            std::fs::read_to_string(to.join("data/sub/a.csv")).unwrap(),
            "a"
        );
        assert!(!to.join(".lakecdp").exists());
        assert!(!to.join("lake").exists());
    }
}
