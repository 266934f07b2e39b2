//! Ballista clusters: where an environment's plans run when its engine is Ballista.
//!
//! - **Standalone** ([`standalone`]): a scheduler and an executor inside this process, on
//!   a runtime of their own that lives as long as the process, shared by every session of
//!   the process. Its executor finds the lakes in this process's registry.
//! - **lakecdp's own processes** ([`run_scheduler`], [`run_executor`], started by
//!   `lakecdp cluster scheduler` and `lakecdp cluster executor`): Ballista's scheduler and
//!   executor with lakecdp's object stores. A plan names a lake only by its URL,
//!   `lakecdp://<environment id>/…` ([`crate::lake_url`]); each process opens that
//!   environment's storage itself, with the credentials the vault keeps, through a
//!   [`Resolver`] the application gives it. Credentials never travel in plans.
//!
//! lakecdp's functions ([`crate::functions`]) are registered in the driver's session, the
//! scheduler's sessions and the executors' function registry: plans name them, and each
//! process runs its own copy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use ballista::prelude::SessionContextExt;
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::future::BoxFuture;
use lakecdp_core::EnvironmentId;
use lakecdp_lake::Lake;
use object_store::ObjectStore;
use url::Url;

use crate::{Error, Result};

/// Opens the store of an environment's lake the first time a plan names it.
pub type Resolver = Arc<
    dyn Fn(EnvironmentId) -> BoxFuture<'static, std::result::Result<Arc<dyn ObjectStore>, String>>
        + Send
        + Sync,
>;

/// The object stores of environments' lakes by environment, beside DataFusion's default
/// registry (local files): the one registry a session, a scheduler or an executor plans
/// and reads with.
pub struct LakeStores {
    default: DefaultObjectStoreRegistry,
    lakes: RwLock<HashMap<EnvironmentId, Arc<dyn ObjectStore>>>,
    resolve: Option<Resolver>,
}

impl std::fmt::Debug for LakeStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the stores' own Debug can print credentials: name the environments only
        let lakes: Vec<EnvironmentId> = self
            .lakes
            .read()
            .map(|l| l.keys().copied().collect())
            .unwrap_or_default();
        f.debug_struct("LakeStores")
            .field("lakes", &lakes)
            .field("resolves", &self.resolve.is_some())
            .finish()
    }
}

impl LakeStores {
    /// A registry of no lake, opening the ones plans name with `resolve` if given.
    pub fn new(resolve: Option<Resolver>) -> Arc<Self> {
        Arc::new(Self {
            default: DefaultObjectStoreRegistry::new(),
            lakes: RwLock::new(HashMap::new()),
            resolve,
        })
    }

    /// Register (or replace) the store of `lake`'s environment.
    pub fn add(&self, lake: &Lake) {
        self.insert(lake.environment(), Arc::clone(lake.store()));
    }

    fn insert(&self, env: EnvironmentId, store: Arc<dyn ObjectStore>) {
        let mut lakes = self.lakes.write().unwrap_or_else(|e| e.into_inner());
        lakes.insert(env, store);
    }

    /// The environments whose lakes are registered.
    pub fn environments(&self) -> Vec<EnvironmentId> {
        let lakes = self.lakes.read().unwrap_or_else(|e| e.into_inner());
        let mut envs: Vec<EnvironmentId> = lakes.keys().copied().collect();
        envs.sort();
        envs
    }

    /// A runtime whose object stores are this registry's.
    pub fn runtime(self: &Arc<Self>) -> Result<Arc<RuntimeEnv>> {
        Ok(RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::clone(self) as Arc<dyn ObjectStoreRegistry>)
            .build_arc()?)
    }

    fn resolved(&self, env: EnvironmentId) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        let Some(resolve) = self.resolve.clone() else {
            return Err(DataFusionError::Execution(format!(
                "no lake of environment {env} is known to this process"
            )));
        };
        // Called from a plan's (synchronous) store lookup: open the store on a thread and
        // runtime of its own, once per environment.
        let opened = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?;
                    runtime.block_on(resolve(env))
                })
                .join()
        });
        let store = match opened {
            Ok(Ok(store)) => store,
            Ok(Err(reason)) => {
                return Err(DataFusionError::Execution(format!(
                    "the lake of environment {env} cannot be opened here: {reason}"
                )))
            }
            Err(_) => {
                return Err(DataFusionError::Execution(format!(
                    "opening the lake of environment {env} failed"
                )))
            }
        };
        self.insert(env, Arc::clone(&store));
        tracing::info!(environment = %env, "lake registered");
        Ok(store)
    }
}

impl ObjectStoreRegistry for LakeStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        match crate::environment_of(url) {
            Some(env) => {
                let mut lakes = self.lakes.write().unwrap_or_else(|e| e.into_inner());
                lakes.insert(env, store)
            }
            None => self.default.register_store(url, store),
        }
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        match crate::environment_of(url) {
            Some(env) => {
                let mut lakes = self.lakes.write().unwrap_or_else(|e| e.into_inner());
                lakes.remove(&env).ok_or_else(|| {
                    DataFusionError::Execution(format!(
                        "no lake of environment {env} is registered"
                    ))
                })
            }
            None => self.default.deregister_store(url),
        }
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if url.scheme() != crate::LAKE_SCHEME {
            return self.default.get_store(url);
        }
        let Some(env) = crate::environment_of(url) else {
            return Err(DataFusionError::Execution(format!(
                "`{url}` names no environment's lake"
            )));
        };
        let found = {
            let lakes = self.lakes.read().unwrap_or_else(|e| e.into_inner());
            lakes.get(&env).cloned()
        };
        match found {
            Some(store) => Ok(store),
            None => self.resolved(env),
        }
    }
}

/// The session of a driver: its plans go to the scheduler at `scheduler` (`df://host:port`)
/// and run on its executors; `lake` is registered for what the driver itself plans.
pub async fn driver_context(
    scheduler: &str,
    config: SessionConfig,
    lake: &Lake,
) -> Result<SessionContext> {
    reachable(scheduler).await?;
    let stores = LakeStores::new(None);
    stores.add(lake);
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(stores.runtime()?)
        .with_default_features()
        .build();
    let ctx = SessionContext::remote_with_state(scheduler, state)
        .await
        .map_err(|e| Error::Cluster(format!("the Ballista scheduler at {scheduler}: {e}")))?;
    crate::functions::register(&ctx);
    Ok(ctx)
}

/// Ballista's function registry with lakecdp's functions: what an executor decodes the
/// plans it is sent with.
fn function_registry() -> ballista_core::registry::BallistaFunctionRegistry {
    let mut registry = ballista_core::registry::BallistaFunctionRegistry::default();
    for f in crate::functions::all() {
        registry.scalar_functions.insert(f.name().to_string(), f);
    }
    registry
}

/// Check that something answers at the scheduler's address, so a refresh whose cluster
/// is down says so in words, before any plan is sent.
async fn reachable(scheduler: &str) -> Result<()> {
    let (host, port) =
        lakecdp_core::EngineChoice::scheduler_address(scheduler).map_err(Error::Cluster)?;
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::Cluster(format!(
            "the scheduler at {scheduler} does not answer ({e}): start it with `lakecdp cluster scheduler --bind {host}:{port}`, or point the environment's `engine` at one that runs"
        ))),
        Err(_) => Err(Error::Cluster(format!(
            "the scheduler at {scheduler} does not answer within 10 s: check that it runs and that this machine reaches it"
        ))),
    }
}

struct Standalone {
    scheduler: String,
    stores: Arc<LakeStores>,
}

static STANDALONE: tokio::sync::OnceCell<Standalone> = tokio::sync::OnceCell::const_new();

/// The standalone cluster of this process, started on first use: a scheduler and an
/// executor on 127.0.0.1, on a runtime of their own (so they outlive the runtime of the
/// caller that started them). `lake` is registered in its executor's registry. Returns
/// the scheduler's `df://` address.
pub async fn standalone(lake: &Lake) -> Result<String> {
    let cluster = STANDALONE.get_or_try_init(start_standalone).await?;
    cluster.stores.add(lake);
    Ok(cluster.scheduler.clone())
}

async fn start_standalone() -> Result<Standalone> {
    let stores = LakeStores::new(None);
    let for_cluster = Arc::clone(&stores);
    let (started, address) = tokio::sync::oneshot::channel::<Result<u16, String>>();
    std::thread::Builder::new()
        .name("lakecdp-ballista".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .thread_name("lakecdp-ballista")
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = started.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                match serve_standalone(for_cluster).await {
                    Ok(port) => {
                        let _ = started.send(Ok(port));
                        // the cluster's tasks run on this runtime until the process ends
                        std::future::pending::<()>().await;
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                    }
                }
            });
        })
        .map_err(|e| Error::Cluster(format!("the standalone cluster cannot start: {e}")))?;
    let port = address
        .await
        .map_err(|_| Error::Cluster("the standalone cluster stopped while starting".into()))?
        .map_err(|e| Error::Cluster(format!("the standalone cluster cannot start: {e}")))?;
    Ok(Standalone {
        scheduler: format!("df://127.0.0.1:{port}"),
        stores,
    })
}

async fn serve_standalone(stores: Arc<LakeStores>) -> std::result::Result<u16, String> {
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    use ballista_core::serde::BallistaCodec;
    use ballista_core::utils::default_config_producer;

    let runtime = stores.runtime().map_err(|e| e.to_string())?;
    let address = ballista_scheduler::standalone::new_standalone_scheduler_with_builder(
        session_builder(Arc::clone(&runtime)),
        Arc::new(default_config_producer),
        BallistaCodec::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let url = format!("http://127.0.0.1:{}", address.port());
    let mut tries = 0;
    let scheduler = loop {
        match SchedulerGrpcClient::connect(url.clone()).await {
            Ok(client) => break client,
            Err(e) if tries >= 100 => return Err(format!("its scheduler does not answer: {e}")),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    let vcores = std::thread::available_parallelism().map_or(2, |n| n.get());
    ballista_executor::new_standalone_executor_from_builder(
        scheduler,
        vcores,
        Arc::new(default_config_producer),
        Arc::new(move |_| Ok(Arc::clone(&runtime))),
        BallistaCodec::default(),
        function_registry(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(address.port())
}

/// Ballista's default session for a scheduler, reading with `runtime`'s stores and
/// knowing lakecdp's functions.
fn session_builder(
    runtime: Arc<RuntimeEnv>,
) -> ballista_scheduler::scheduler_server::SessionBuilder {
    Arc::new(move |config: SessionConfig| {
        use datafusion::execution::FunctionRegistry;
        let state = ballista_core::utils::default_session_builder(config)?;
        let mut state = SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(Arc::clone(&runtime))
            .build();
        for f in crate::functions::all() {
            state.register_udf(f)?;
        }
        Ok(state)
    })
}

/// Run lakecdp's scheduler on `bind` until the process ends: Ballista's scheduler, which
/// plans with the lakes `stores` opens.
pub async fn run_scheduler(bind: SocketAddr, stores: Arc<LakeStores>) -> Result<()> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;

    let mut config = SchedulerConfig::default()
        .with_hostname(bind.ip().to_string())
        .with_port(bind.port())
        .with_override_session_builder(session_builder(stores.runtime()?));
    config.bind_host = bind.ip().to_string();
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| Error::Cluster(e.to_string()))?;
    ballista_scheduler::scheduler_process::start_server(cluster, bind, Arc::new(config))
        .await
        .map_err(|e| Error::Cluster(format!("the scheduler on {bind}: {e}")))
}

/// How an executor joins a cluster.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `df://host:port`.
    pub scheduler: String,
    /// The address the executor listens on (and tells the scheduler).
    pub bind: std::net::IpAddr,
    /// Its Arrow Flight port (shuffle and results).
    pub port: u16,
    /// Its gRPC port.
    pub grpc_port: u16,
    /// How many tasks it runs at once.
    pub slots: usize,
    /// Where it keeps shuffle files (a temporary folder when `None`).
    pub work_dir: Option<std::path::PathBuf>,
}

/// Run lakecdp's executor until the process ends: Ballista's executor, reading and
/// writing the lakes `stores` opens.
pub async fn run_executor(options: ExecutorOptions, stores: Arc<LakeStores>) -> Result<()> {
    use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};

    let (host, port) = lakecdp_core::EngineChoice::scheduler_address(&options.scheduler)
        .map_err(Error::Cluster)?;
    let runtime = stores.runtime()?;
    let config = ExecutorProcessConfig {
        scheduler_host: host,
        scheduler_port: port,
        scheduler_connect_timeout_seconds: 30,
        bind_host: options.bind.to_string(),
        external_host: Some(options.bind.to_string()),
        port: options.port,
        grpc_port: options.grpc_port,
        vcores: options.slots.max(1),
        work_dir: options
            .work_dir
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        print_thread_info: false,
        override_runtime_producer: Some(Arc::new(move |_| Ok(Arc::clone(&runtime)))),
        override_function_registry: Some(Arc::new(function_registry())),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config)).await.map_err(|e| {
        Error::Cluster(format!(
            "the executor on {}:{}: {e}",
            options.bind, options.port
        ))
    })
}
