//! `cluster scheduler` and `cluster executor`: lakecdp's Ballista processes, in the
//! foreground until Ctrl-C.

use lakecdp_app::cluster::{ExecutorOptions, Served, LAKES_REFRESH};
use lakecdp_app::{Actor, App};
use lakecdp_core::EngineChoice;

use crate::args::ClusterCommand;

/// The start-up line naming what the process serves.
fn served(served: &Served) {
    if served.environments.is_empty() {
        println!("serving no environment yet: none of the catalog's is one its principal may refresh (looked at again every {} s)", LAKES_REFRESH.as_secs());
    } else {
        println!("serving environments: {}", served.environments.join(", "));
    }
    for name in &served.unknown {
        eprintln!("warning: --environment {name}: the catalog has no environment of that name");
    }
}

/// `cluster ...`.
pub async fn run(app: &App, actor: &Actor, command: ClusterCommand) -> anyhow::Result<()> {
    let work = async {
        match command {
            ClusterCommand::Scheduler(a) => {
                println!(
                    "lakecdp scheduler on df://{}; environments point at it with engine = {{ kind = \"ballista\", scheduler = \"df://{}\" }} (Ctrl-C stops it)",
                    a.bind, a.bind
                );
                Ok(app
                    .run_cluster_scheduler(actor, a.bind, a.environments, served)
                    .await?)
            }
            ClusterCommand::Executor(a) => {
                if let Err(e) = EngineChoice::scheduler_address(&a.scheduler) {
                    anyhow::bail!("--scheduler: {e}; write `--scheduler df://host:50050`");
                }
                let slots = a
                    .slots
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
                println!(
                    "lakecdp executor on {}:{} ({slots} task slots), joining {} (Ctrl-C stops it)",
                    a.bind, a.port, a.scheduler
                );
                let options = ExecutorOptions {
                    scheduler: a.scheduler,
                    bind: a.bind,
                    port: a.port,
                    grpc_port: a.grpc_port,
                    slots,
                    work_dir: a.work_dir,
                };
                Ok(app
                    .run_cluster_executor(actor, options, a.environments, served)
                    .await?)
            }
        }
    };
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
