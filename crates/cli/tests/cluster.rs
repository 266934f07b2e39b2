//! A cluster of lakecdp's own processes: one scheduler and two executors on 127.0.0.1,
//! each a `lakecdp` process, run an environment's refresh and publish what a local
//! refresh of the same sources publishes.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use lakecdp_core::{EnvironmentId, LocalConfig, StorageConfig};
use lakecdp_lake::Lake;

mod common;
use common::{command, copy_retail, lakecdp, text};

/// Processes killed when the test ends, however it ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `lakecdp -C project ARGS` started in the background, its output in `log`.
fn start(project: &Path, args: &[&str], log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    command(project, args)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("the binary starts")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something listens on `port` of 127.0.0.1.
fn listening(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the {what} listens on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The published tables of the one environment of the project's local lake.
fn published(project: &Path) -> BTreeMap<String, Vec<String>> {
    let container = project.join("lake/customerinsights");
    let folder = std::fs::read_dir(&container)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("ci_"))
        .expect("the environment folder");
    let env: EnvironmentId = folder.parse().unwrap();
    let handle = lakecdp_lake::backend::open(
        &StorageConfig::Local(LocalConfig {
            path: project.join("lake"),
        }),
        None,
    )
    .unwrap();
    let lake = Lake::new(&handle, env);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(lakecdp_bench::outputs::published_rows(&lake))
        .unwrap()
}

#[test]
fn a_refresh_on_a_scheduler_and_two_executor_processes_publishes_what_a_local_refresh_does() {
    let local = tempfile::tempdir().unwrap();
    copy_retail(local.path());
    let out = lakecdp(local.path(), &["refresh", "--apply", "--create-container"]);
    assert!(out.status.success(), "{}", text(&out));

    let cluster = tempfile::tempdir().unwrap();
    let project = cluster.path();
    copy_retail(project);
    let scheduler = free_port();
    let file = project.join("lakecdp.toml");
    let declared = std::fs::read_to_string(&file).unwrap().replace(
        "retention_runs = 3\n",
        &format!(
            "retention_runs = 3\nengine = {{ kind = \"ballista\", scheduler = \"df://127.0.0.1:{scheduler}\", shared_files = true }}\n"
        ),
    );
    assert!(declared.contains("df://127.0.0.1"));
    std::fs::write(&file, declared).unwrap();

    let logs = project.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let bind = format!("127.0.0.1:{scheduler}");
    let scheduler_url = format!("df://127.0.0.1:{scheduler}");
    let mut processes = Processes(vec![start(
        project,
        &["cluster", "scheduler", "--bind", &bind],
        &logs.join("scheduler.log"),
    )]);
    listening(scheduler, "scheduler", &logs.join("scheduler.log"));
    let mut executors = Vec::new();
    for n in 0..2 {
        let (port, grpc) = (free_port(), free_port());
        let work = project.join(format!("executor-{n}"));
        std::fs::create_dir_all(&work).unwrap();
        let log = logs.join(format!("executor-{n}.log"));
        processes.0.push(start(
            project,
            &[
                "cluster",
                "executor",
                "--scheduler",
                &scheduler_url,
                "--port",
                &port.to_string(),
                "--grpc-port",
                &grpc.to_string(),
                "--slots",
                "2",
                "--work-dir",
                work.to_str().unwrap(),
                "--environment",
                "retail-demo",
            ],
            &log,
        ));
        listening(port, "executor", &log);
        executors.push(work);
    }

    // the environment is created after the cluster started: a plan naming it opens it
    let out = lakecdp(project, &["apply", "--create-container"]);
    assert!(out.status.success(), "{}", text(&out));

    // an export to a lake folder, run by the refresh: its rows stream from the cluster
    let key = project.join("master.key");
    let with_key = |args: &[&str]| {
        let out = command(project, args)
            .env("LAKECDP_MASTER_KEY_FILE", &key)
            .env_remove("LAKECDP_MASTER_KEY")
            .output()
            .unwrap();
        assert!(out.status.success(), "lakecdp {args:?}: {}", text(&out));
        text(&out)
    };
    with_key(&["vault", "new-key", "--out", key.to_str().unwrap()]);
    let exported = project.join("exported");
    std::fs::create_dir_all(&exported).unwrap();
    let path = format!("path={}", exported.display());
    with_key(&[
        "connection",
        "add",
        "archive",
        "--type",
        "local",
        "--set",
        &path,
    ]);
    with_key(&[
        "export",
        "add",
        "to-lake",
        "--connection",
        "archive",
        "--table",
        "Unification/Customer",
    ]);

    let printed = with_key(&["refresh"]);
    // the summary names where each process ran, for every process
    let mut seen = 0;
    for line in printed.lines() {
        if line.starts_with('│') && line.contains("Succeeded") {
            seen += 1;
        }
        for process in ["ingest:", "activities", "measures", "segments", "reports"] {
            if line.contains(&format!("│ {process}")) {
                assert!(
                    line.contains(&format!("ballista ({scheduler_url})"))
                        && !line.contains("; local:"),
                    "{line}"
                );
            }
        }
        if line.contains("│ export:to-lake ") {
            assert!(
                line.contains(&format!("ballista ({scheduler_url})")),
                "{line}"
            );
        }
        if line.contains("│ unify ") {
            assert!(
                line.contains(&format!("ballista ({scheduler_url}): rule pairs")),
                "{line}"
            );
        }
    }
    assert_eq!(
        seen, 9,
        "3 ingestions, unify, reports, activities, measures, segments, the export: {printed}"
    );
    // both executors ran tasks: each kept shuffle files of the refresh's jobs
    for work in &executors {
        let files = walk(work);
        assert!(files > 0, "{} holds no shuffle file", work.display());
        // and its temporary files go there too, not to the system's folder
        assert!(work.join("tmp").is_dir(), "{}", work.display());
    }

    let expected = published(local.path());
    let got = published(project);
    assert!(expected.len() >= 10, "{:?}", expected.keys());
    if let Some(difference) = lakecdp_bench::outputs::first_difference(&expected, &got) {
        panic!("local, then the cluster: {difference}");
    }
    // the export wrote every profile: one CSV line each, below each file's header
    let csv: Vec<_> = files_under(&exported)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    assert!(!csv.is_empty(), "{printed}");
    let lines: usize = csv
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count() - 1)
        .sum();
    let profiles = expected["Unification/Customer"].len();
    assert_eq!(lines, profiles, "{printed}");
    assert!(
        printed.contains(&format!("{profiles} rows in 1 table")),
        "{printed}"
    );
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| {
                    let path = e.unwrap().path();
                    if path.is_dir() {
                        walk(&path)
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
