//! The refresh graph: the processes of a system refresh and what each depends on.
//!
//! A process runs when everything it depends on succeeded. A failure marks every process
//! that depends on it, directly or not, Skipped with the reason, while independent
//! branches go on. A cancel stops the process that is running (its future is dropped, so
//! nothing it was writing is published: publishing is the last step of every process) and
//! marks it and every process not yet run Canceled.
//!
//! Processes run one after the other in a fixed topological order (declaration order
//! among those that are ready); each process uses every core itself.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use lakecdp_core::RunStatus;

use crate::{Error, Result};

/// One process of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its name, e.g. `ingest:Crm`, `unify`, `activities`, `export:nightly`.
    pub name: String,
    /// The processes it needs.
    pub depends_on: Vec<String>,
}

impl Node {
    /// A process and what it depends on.
    pub fn new(name: impl Into<String>, depends_on: &[&str]) -> Self {
        Self {
            name: name.into(),
            depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
        }
    }
}

/// The outcome of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The process.
    pub name: String,
    /// Succeeded, Failed, Skipped or Canceled.
    pub status: RunStatus,
    /// Rows it wrote, when it says.
    pub rows: Option<u64>,
    /// Why it failed, was skipped or canceled.
    pub reason: Option<String>,
    /// Time it ran.
    pub elapsed: Duration,
}

/// A validated graph of processes in run order.
#[derive(Debug, Clone)]
pub struct Graph {
    nodes: Vec<Node>,
}

impl Graph {
    /// A graph of `nodes`; every dependency must be a node, names unique, no cycles.
    pub fn new(nodes: Vec<Node>) -> Result<Self> {
        let names: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        if names.len() != nodes.len() {
            return Err(Error::Internal(
                "a process appears twice in the refresh graph".into(),
            ));
        }
        for n in &nodes {
            for d in &n.depends_on {
                if !names.contains(d.as_str()) {
                    return Err(Error::Internal(format!(
                        "process `{}` depends on unknown process `{d}`",
                        n.name
                    )));
                }
            }
        }
        // topological order, stable: declaration order among the ready ones
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut ordered = Vec::with_capacity(nodes.len());
        while ordered.len() < nodes.len() {
            let next = nodes
                .iter()
                .find(|n| !done.contains(&n.name) && n.depends_on.iter().all(|d| done.contains(d)));
            match next {
                Some(n) => {
                    done.insert(n.name.clone());
                    ordered.push(n.clone());
                }
                None => {
                    let stuck: Vec<&str> = nodes
                        .iter()
                        .filter(|n| !done.contains(&n.name))
                        .map(|n| n.name.as_str())
                        .collect();
                    return Err(Error::Internal(format!(
                        "the refresh graph has a cycle among {}",
                        stuck.join(", ")
                    )));
                }
            }
        }
        Ok(Self { nodes: ordered })
    }

    /// The processes in run order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The graph restricted to `name` and every process that depends on it, directly or
    /// not (`refresh --only`). Dependencies outside it are taken as they last ran.
    pub fn only(&self, name: &str) -> Result<Self> {
        self.only_many(&[name.to_string()])
    }

    /// The graph restricted to `names` and every process that depends on one of them.
    pub fn only_many(&self, names: &[String]) -> Result<Self> {
        for name in names {
            if !self.nodes.iter().any(|n| &n.name == name) {
                return Err(Error::Source(format!(
                    "no process `{name}` in the refresh; there are {}",
                    self.nodes
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let mut keep: BTreeSet<String> = names.iter().cloned().collect();
        for n in &self.nodes {
            if n.depends_on.iter().any(|d| keep.contains(d)) {
                keep.insert(n.name.clone());
            }
        }
        let nodes = self
            .nodes
            .iter()
            .filter(|n| keep.contains(&n.name))
            .map(|n| Node {
                name: n.name.clone(),
                depends_on: n
                    .depends_on
                    .iter()
                    .filter(|d| keep.contains(*d))
                    .cloned()
                    .collect(),
            })
            .collect();
        Self::new(nodes)
    }

    /// Run every process with `run` (which returns the rows it wrote), in order, until
    /// `cancel` resolves. `started` is called before each process runs, and `finished`
    /// after each outcome is known (also for skipped and canceled ones), so a caller can
    /// record and print them as they happen.
    pub async fn run<R, RF, C, S, F>(
        &self,
        mut run: R,
        cancel: C,
        mut started: S,
        mut finished: F,
    ) -> Vec<Outcome>
    where
        R: FnMut(&str) -> RF,
        RF: Future<Output = std::result::Result<Option<u64>, String>>,
        C: Future<Output = ()>,
        S: FnMut(&str),
        F: FnMut(&Outcome),
    {
        let mut cancel = std::pin::pin!(cancel);
        let mut canceled = false;
        let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
        let mut order = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let blocked = node.depends_on.iter().find_map(|d| {
                outcomes
                    .get(d)
                    .filter(|o| o.status != RunStatus::Succeeded)
                    .map(|o| (d.clone(), o.status))
            });
            let outcome = if canceled {
                outcome(&node.name, RunStatus::Canceled, "the refresh was canceled")
            } else if let Some((dep, status)) = blocked {
                let why = match status {
                    RunStatus::Failed => format!("`{dep}` failed"),
                    _ => format!("`{dep}` did not run"),
                };
                outcome(&node.name, RunStatus::Skipped, &why)
            } else {
                started(&node.name);
                let t = Instant::now();
                let result = tokio::select! {
                    r = run(&node.name) => Some(r),
                    _ = &mut cancel => None,
                };
                let elapsed = t.elapsed();
                match result {
                    Some(Ok(rows)) => Outcome {
                        name: node.name.clone(),
                        status: RunStatus::Succeeded,
                        rows,
                        reason: None,
                        elapsed,
                    },
                    Some(Err(e)) => Outcome {
                        elapsed,
                        ..outcome(&node.name, RunStatus::Failed, &e)
                    },
                    None => {
                        canceled = true;
                        Outcome {
                            elapsed,
                            ..outcome(
                                &node.name,
                                RunStatus::Canceled,
                                "canceled while running; nothing of it was published",
                            )
                        }
                    }
                }
            };
            finished(&outcome);
            order.push(node.name.clone());
            outcomes.insert(node.name.clone(), outcome);
        }
        order
            .into_iter()
            .filter_map(|n| outcomes.remove(&n))
            .collect()
    }
}

fn outcome(name: &str, status: RunStatus, reason: &str) -> Outcome {
    Outcome {
        name: name.to_string(),
        status,
        rows: None,
        reason: Some(reason.to_string()),
        elapsed: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Graph {
        Graph::new(vec![
            Node::new("unify", &["ingest:crm", "ingest:shop"]),
            Node::new("ingest:crm", &[]),
            Node::new("ingest:shop", &[]),
            Node::new("ingest:web", &[]),
            Node::new("activities", &["unify", "ingest:shop"]),
            Node::new("measures", &["activities"]),
            Node::new("segments", &["measures"]),
            Node::new("export:web", &["ingest:web"]),
        ])
        .unwrap()
    }

    fn statuses(o: &[Outcome]) -> Vec<(String, RunStatus)> {
        o.iter().map(|o| (o.name.clone(), o.status)).collect()
    }

    #[tokio::test]
    async fn a_failing_source_skips_only_what_depends_on_it() {
        let g = graph();
        assert_eq!(g.nodes()[0].name, "ingest:crm", "dependencies come first");
        let out = g
            .run(
                |n: &str| {
                    let fail = n == "ingest:shop";
                    async move {
                        if fail {
                            Err("file missing".to_string())
                        } else {
                            Ok(Some(1))
                        }
                    }
                },
                std::future::pending(),
                |_| {},
                |_| {},
            )
            .await;
        let s = statuses(&out);
        let get = |n: &str| s.iter().find(|(x, _)| x == n).unwrap().1;
        assert_eq!(get("ingest:crm"), RunStatus::Succeeded);
        assert_eq!(get("ingest:shop"), RunStatus::Failed);
        assert_eq!(get("unify"), RunStatus::Skipped);
        assert_eq!(get("activities"), RunStatus::Skipped);
        assert_eq!(get("segments"), RunStatus::Skipped);
        assert_eq!(get("ingest:web"), RunStatus::Succeeded);
        assert_eq!(get("export:web"), RunStatus::Succeeded);
        let unify = out.iter().find(|o| o.name == "unify").unwrap();
        assert_eq!(unify.reason.as_deref(), Some("`ingest:shop` failed"));
        let seg = out.iter().find(|o| o.name == "segments").unwrap();
        assert_eq!(seg.reason.as_deref(), Some("`measures` did not run"));
    }

    #[tokio::test]
    async fn only_runs_a_process_and_what_depends_on_it() {
        let g = graph().only("activities").unwrap();
        let names: Vec<&str> = g.nodes().iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["activities", "measures", "segments"]);
        assert!(g.nodes()[0].depends_on.is_empty());
        assert!(graph()
            .only("nope")
            .unwrap_err()
            .to_string()
            .contains("there are"));
    }

    #[tokio::test]
    async fn a_cancel_stops_the_running_process_and_cancels_the_rest() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut tx = Some(tx);
        let out = graph()
            .run(
                |n: &str| {
                    let slow = n == "unify";
                    async move {
                        if slow {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                        Ok(None)
                    }
                },
                async {
                    let _ = rx.await;
                },
                |n| {
                    if n == "unify" {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                    }
                },
                |_| {},
            )
            .await;
        let s = statuses(&out);
        assert_eq!(s[0].1, RunStatus::Succeeded);
        assert_eq!(s[1].1, RunStatus::Succeeded);
        assert_eq!(s[2], ("unify".into(), RunStatus::Canceled));
        assert!(s[3..].iter().all(|(_, st)| *st == RunStatus::Canceled));
    }

    #[test]
    fn cycles_and_unknown_dependencies_are_refused() {
        assert!(
            Graph::new(vec![Node::new("a", &["b"]), Node::new("b", &["a"])])
                .unwrap_err()
                .to_string()
                .contains("cycle")
        );
        assert!(Graph::new(vec![Node::new("a", &["x"])]).is_err());
    }
}

#[cfg(test)]
mod publish_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use lakecdp_core::{EnvironmentId, LocalConfig, RunStatus, StorageConfig};
    use lakecdp_lake::publish::read_model;
    use lakecdp_lake::{backend, CdmFolderWriter, Lake, Process};

    use super::{Graph, Node};

    async fn publish(lake: &Lake, n: i64, pause: Duration) -> Result<Option<u64>, String> {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![n]))])
            .map_err(|e| e.to_string())?;
        let mut w = CdmFolderWriter::begin(lake, Process::Measures, 5)
            .await
            .map_err(|e| e.to_string())?;
        w.write_entity(
            "N",
            None,
            schema,
            futures::stream::iter([Ok::<_, String>(batch)]),
        )
        .await
        .map_err(|e| e.to_string())?;
        // the data files are written; the work goes on before the publish
        tokio::time::sleep(pause).await;
        w.commit().await.map_err(|e| e.to_string())?;
        Ok(Some(1))
    }

    #[tokio::test]
    async fn a_canceled_process_leaves_the_previous_output_published() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("customerinsights")).unwrap();
        let h = backend::open(
            &StorageConfig::Local(LocalConfig {
                path: dir.path().into(),
            }),
            None,
        )
        .unwrap();
        let lake = Lake::new(&h, EnvironmentId::new());
        let graph = Graph::new(vec![Node::new("measures", &[])]).unwrap();

        let first = graph
            .run(
                |_| publish(&lake, 1, Duration::ZERO),
                std::future::pending(),
                |_| {},
                |_| {},
            )
            .await;
        assert_eq!(first[0].status, RunStatus::Succeeded);
        let before = read_model(&lake, &Process::Measures)
            .await
            .unwrap()
            .unwrap();

        // canceled after its data files are written, before it publishes
        let out = graph
            .run(
                |_| publish(&lake, 2, Duration::from_secs(30)),
                tokio::time::sleep(Duration::from_millis(300)),
                |_| {},
                |_| {},
            )
            .await;
        assert_eq!(out[0].status, RunStatus::Canceled);
        let after = read_model(&lake, &Process::Measures)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            after.entities[0].partitions, before.entities[0].partitions,
            "model.json still points at the previous run"
        );
        // the canceled run's files exist, unreferenced, until retention sweeps them
        let runs = lake.list_folders("Measures/N").await.unwrap();
        assert_eq!(runs.len(), 2, "{runs:?}");
    }
}
