//! The cluster benchmark: one project refreshed twice by a `lakecdp` binary, on fresh
//! copies, first on the local engine, then on a cluster of the same binary's processes
//! (one scheduler and N executors on 127.0.0.1). It reports each refresh's wall time and
//! processes, the peak memory of every process (the refreshing one, the scheduler, each
//! executor), the most shuffle bytes the executors held at once (sampled every 100 ms:
//! Ballista removes a stage's files once they are read), and whether both refreshes published
//! the same rows in every output table.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lakecdp_core::{EnvironmentId, LocalConfig, StorageConfig};
use lakecdp_lake::Lake;
use serde::Serialize;

use crate::refresh::{fresh_copy, printed_outcomes, run_measured, ProcessTime};
use crate::{Error, Result};

/// What to run.
#[derive(Debug, Clone)]
pub struct ClusterBench {
    /// The `lakecdp` binary that refreshes and runs the cluster's processes.
    pub binary: PathBuf,
    /// The project folder (its catalog and lake are left out of the copies).
    pub project: PathBuf,
    /// Where the copies and logs go.
    pub dir: PathBuf,
    /// Executor processes.
    pub executors: usize,
    /// Task slots of each executor.
    pub slots: usize,
}

/// One refresh, measured.
#[derive(Debug, Clone, Serialize)]
pub struct Refreshed {
    /// `local` or `cluster`.
    pub engine: &'static str,
    /// Wall seconds of the refreshing process.
    pub wall_seconds: f64,
    /// Its processes as it printed them.
    pub processes: Vec<ProcessTime>,
    /// Peak resident memory of the refreshing process, in bytes.
    pub peak_rss: u64,
    /// Peak resident memory of the scheduler, then of each executor (cluster only).
    pub cluster_peak_rss: Vec<(String, u64)>,
    /// The most bytes of shuffle files the executors held at once during the refresh
    /// (cluster only; sampled every 100 ms).
    pub shuffle_bytes: u64,
}

/// Both refreshes and the comparison of their outputs.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterFigures {
    /// The local refresh.
    pub local: Refreshed,
    /// The refresh on the cluster.
    pub cluster: Refreshed,
    /// Output tables compared.
    pub tables: usize,
    /// Rows compared (over all tables).
    pub rows: usize,
    /// The first difference, if the outputs differ.
    pub difference: Option<String>,
}

/// Run the benchmark.
pub fn run(bench: &ClusterBench) -> Result<ClusterFigures> {
    let local_dir = bench.dir.join("cluster-bench-local");
    fresh_copy(&bench.project, &local_dir)?;
    eprintln!("local refresh of {}", local_dir.display());
    let local = refresh(bench, &local_dir, "local", &bench.dir.join("local.log"))?;

    let cluster_dir = bench.dir.join("cluster-bench-cluster");
    fresh_copy(&bench.project, &cluster_dir)?;
    let scheduler_port = free_port()?;
    let scheduler = format!("df://127.0.0.1:{scheduler_port}");
    // as many tasks as the executors have slots in all
    declare_engine(&cluster_dir, &scheduler, bench.executors * bench.slots)?;
    let mut processes = Processes(Vec::new());
    let logs = bench.dir.join("cluster-logs");
    std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
    let bind = format!("127.0.0.1:{scheduler_port}");
    processes.0.push((
        "scheduler".into(),
        start(
            bench,
            &cluster_dir,
            &["cluster", "scheduler", "--bind", &bind],
            &logs.join("scheduler.log"),
        )?,
    ));
    wait_listening(scheduler_port, &logs.join("scheduler.log"))?;
    let mut work_dirs = Vec::new();
    for n in 0..bench.executors {
        let (port, grpc) = (free_port()?, free_port()?);
        let work = bench.dir.join(format!("cluster-shuffle-{n}"));
        if work.exists() {
            std::fs::remove_dir_all(&work).map_err(|e| Error::io(&work, e))?;
        }
        std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
        let log = logs.join(format!("executor-{n}.log"));
        let slots = bench.slots.to_string();
        let (port_text, grpc_text) = (port.to_string(), grpc.to_string());
        let work_text = work.to_string_lossy().into_owned();
        processes.0.push((
            format!("executor {n}"),
            start(
                bench,
                &cluster_dir,
                &[
                    "cluster",
                    "executor",
                    "--scheduler",
                    &scheduler,
                    "--port",
                    &port_text,
                    "--grpc-port",
                    &grpc_text,
                    "--slots",
                    &slots,
                    "--work-dir",
                    &work_text,
                ],
                &log,
            )?,
        ));
        wait_listening(port, &log)?;
        work_dirs.push(work);
    }
    eprintln!(
        "refresh on a scheduler and {} executors ({scheduler})",
        bench.executors
    );
    // the shuffle files on disk, sampled while the refresh runs
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (done, dirs) = (std::sync::Arc::clone(&done), work_dirs.clone());
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let now: u64 = dirs
                    .iter()
                    .map(|d| crate::ingest::size_of_tree(d, |_| true))
                    .sum();
                peak = peak.max(now);
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };
    let cluster = refresh(
        bench,
        &cluster_dir,
        "cluster",
        &bench.dir.join("cluster.log"),
    );
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak_shuffle = sampler.join().unwrap_or(0);
    let mut cluster = cluster?;
    cluster.cluster_peak_rss = processes
        .0
        .iter()
        .map(|(name, child)| {
            (
                name.clone(),
                crate::ingest::peak_rss_of(&child.id().to_string()),
            )
        })
        .collect();
    cluster.shuffle_bytes = peak_shuffle.max(
        work_dirs
            .iter()
            .map(|d| crate::ingest::size_of_tree(d, |_| true))
            .sum(),
    );
    drop(processes);

    eprintln!("comparing every published table");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Bench(e.to_string()))?;
    // digests, eight bytes a row: the text of every row of 10,000,000 records does not
    // fit in memory twice
    let expected = runtime.block_on(crate::outputs::published_digests(&lake_of(&local_dir)?))?;
    let got = runtime.block_on(crate::outputs::published_digests(&lake_of(&cluster_dir)?))?;
    Ok(ClusterFigures {
        local,
        cluster,
        tables: expected.len(),
        rows: expected.values().map(Vec::len).sum(),
        difference: crate::outputs::first_difference(&expected, &got),
    })
}

/// Processes stopped when the benchmark ends, however it ends.
struct Processes(Vec<(String, Child)>);

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn refresh(
    bench: &ClusterBench,
    project: &Path,
    engine: &'static str,
    log: &Path,
) -> Result<Refreshed> {
    let stderr = std::fs::File::create(log).map_err(|e| Error::io(log, e))?;
    let mut command = Command::new(&bench.binary);
    command
        .arg("-C")
        .arg(project)
        .args(["refresh", "--apply", "--create-container"])
        .env("NO_COLOR", "1")
        .env_remove("LAKECDP_PROJECT")
        .env_remove("LAKECDP_CATALOG")
        .stderr(stderr);
    let measured = run_measured(&mut command)?;
    if !measured.status.success() {
        return Err(Error::Bench(format!(
            "the {engine} refresh failed ({}): {}{}",
            measured.status,
            measured.stdout,
            std::fs::read_to_string(log).unwrap_or_default()
        )));
    }
    Ok(Refreshed {
        engine,
        wall_seconds: measured.seconds,
        processes: printed_outcomes(&measured.stdout),
        peak_rss: measured.peak_rss,
        cluster_peak_rss: Vec::new(),
        shuffle_bytes: 0,
    })
}

/// Declare the cluster's scheduler as the engine of the project file in `project`, its
/// work cut into `tasks` tasks.
fn declare_engine(project: &Path, scheduler: &str, tasks: usize) -> Result<()> {
    let file = project.join(lakecdp_core::project::PROJECT_FILE);
    let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
    let declared = text.replacen(
        "[environment]\n",
        &format!(
            "[environment]\nengine = {{ kind = \"ballista\", scheduler = \"{scheduler}\", tasks = {}, shared_files = true }}\n",
            tasks.max(1)
        ),
        1,
    );
    if declared == text {
        return Err(Error::Bench(format!(
            "{} has no [environment] table",
            file.display()
        )));
    }
    // the copy's project file may be a hard link to the original: write a new file
    std::fs::remove_file(&file).map_err(|e| Error::io(&file, e))?;
    std::fs::write(&file, declared).map_err(|e| Error::io(&file, e))
}

fn start(bench: &ClusterBench, project: &Path, args: &[&str], log: &Path) -> Result<Child> {
    let out = std::fs::File::create(log).map_err(|e| Error::io(log, e))?;
    let err = out.try_clone().map_err(|e| Error::io(log, e))?;
    Command::new(&bench.binary)
        .arg("-C")
        .arg(project)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("LAKECDP_PROJECT")
        .env_remove("LAKECDP_CATALOG")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|source| Error::Run {
            program: bench.binary.clone(),
            source,
        })
}

fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Bench(format!("no free port: {e}")))
}

fn wait_listening(port: u16, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(Error::Bench(format!(
                "nothing listens on {port} after a minute: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The lake of the one environment of a project folder's local lake (`lake/`).
fn lake_of(project: &Path) -> Result<Lake> {
    let container = project.join("lake/customerinsights");
    let folder = std::fs::read_dir(&container)
        .map_err(|e| Error::io(&container, e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("ci_"))
        .ok_or_else(|| Error::Bench(format!("no environment folder in {}", container.display())))?;
    let env: EnvironmentId = folder
        .parse()
        .map_err(|e| Error::Bench(format!("{folder}: {e}")))?;
    let handle = lakecdp_lake::backend::open(
        &StorageConfig::Local(LocalConfig {
            path: project.join("lake"),
        }),
        None,
    )
    .map_err(|e| Error::Bench(e.to_string()))?;
    Ok(Lake::new(&handle, env))
}

/// The figures as text.
pub fn render(f: &ClusterFigures) -> String {
    let mut out = String::new();
    let mut processes: BTreeMap<&str, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for p in &f.local.processes {
        processes.entry(&p.process).or_default().0 = Some(p.seconds);
    }
    for p in &f.cluster.processes {
        processes.entry(&p.process).or_default().1 = Some(p.seconds);
    }
    let secs = |s: Option<f64>| s.map_or("-".into(), |s| format!("{s:.1} s"));
    out.push_str(&format!("{:<20} {:>12} {:>12}\n", "", "local", "cluster"));
    out.push_str(&format!(
        "{:<20} {:>12} {:>12}\n",
        "wall time",
        format!("{:.2} s", f.local.wall_seconds),
        format!("{:.2} s", f.cluster.wall_seconds)
    ));
    for (name, (l, c)) in &processes {
        out.push_str(&format!(
            "{:<20} {:>12} {:>12}\n",
            format!("  {name}"),
            secs(*l),
            secs(*c)
        ));
    }
    out.push_str(&format!(
        "{:<20} {:>12} {:>12}\n",
        "peak memory",
        mib(f.local.peak_rss),
        mib(f.cluster.peak_rss)
    ));
    for (name, peak) in &f.cluster.cluster_peak_rss {
        out.push_str(&format!(
            "{:<20} {:>12} {:>12}\n",
            format!("  {name}"),
            "",
            mib(*peak)
        ));
    }
    out.push_str(&format!(
        "{:<20} {:>12} {:>12}\n",
        "shuffle on disk (most)",
        "",
        mib(f.cluster.shuffle_bytes)
    ));
    out.push_str(&format!(
        "outputs: {} tables, {} rows compared: {}\n",
        f.tables,
        f.rows,
        match &f.difference {
            None => "identical".to_string(),
            Some(d) => format!("DIFFERENT: {d}"),
        }
    ));
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}
