//! Ballista clusters: where an environment's plans run when its engine is Ballista.
//!
//! - **Standalone** ([`standalone`]): a scheduler and an executor inside this process, on
//!   a runtime of their own that lives as long as the process, shared by every session of
//!   the process. Its executor finds the lakes in this process's registry.
//! - **lakecdp's own processes** ([`run_scheduler`], [`run_executor`], started by
//!   `lakecdp cluster scheduler` and `lakecdp cluster executor`): Ballista's scheduler and
//!   executor with lakecdp's object stores. A plan names a lake only by its URL,
//!   `lakecdp://<environment id>/…` ([`crate::lake_url`]), relative to the environment's
//!   folder; each process serves the lakes the application keeps in its [`LakeStores`],
//!   opened there with the credentials the vault keeps. Credentials never travel in plans.
//!
//! lakecdp's functions ([`crate::functions`]) are registered in the driver's session, the
//! scheduler's sessions and the executors' function registry: plans name them, and each
//! process runs its own copy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use ballista::prelude::SessionContextExt;
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use lakecdp_core::EnvironmentId;
use lakecdp_lake::Lake;
use object_store::ObjectStore;
use url::Url;

use crate::{Error, Result};

/// The object stores of environments' lakes by environment: the one registry a driver
/// session, a scheduler or an executor plans and reads with.
///
/// - Each store is confined to its environment's folder (`ci_<id>`): a plan naming an
///   environment reaches nothing else of the storage it shares with other environments.
/// - Nothing else is registered: no local files, so a plan sent to a cluster process
///   reads no file of its host (a key file, a catalog) whatever it names.
/// - Lookups never wait. The set of lakes is replaced as a whole
///   ([`LakeStores::replace`]) by whoever keeps it current; with a [`Resolver`], an
///   environment not in it yet gets a store that opens it on first use
///   ([`crate::lazy::LazyLake`]), so a refresh of an environment created a moment ago
///   runs at once.
pub struct LakeStores {
    lakes: Arc<RwLock<HashMap<EnvironmentId, Served>>>,
    pending: std::sync::Mutex<HashMap<EnvironmentId, crate::lazy::LazyLake>>,
    resolve: Option<Resolver>,
    temp: Option<std::path::PathBuf>,
}

pub use crate::lazy::Resolver;

/// A served lake: its confined store, and the lake (for lakecdp's own operators).
type Served = (Arc<dyn ObjectStore>, Lake);

/// How long a refused or failed opening is kept before a plan naming the environment
/// asks again.
const REFUSAL_KEPT: std::time::Duration = std::time::Duration::from_secs(30);

impl std::fmt::Debug for LakeStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the stores' own Debug can print credentials: name the environments only
        f.debug_struct("LakeStores")
            .field("lakes", &self.environments())
            .finish()
    }
}

impl LakeStores {
    /// A registry of no lake, spilling to the system's temporary folder.
    pub fn new() -> Arc<Self> {
        Self::spilling_to(None)
    }

    /// A registry of no lake whose runtime spills to `temp` (an executor's work folder).
    pub fn spilling_to(temp: Option<std::path::PathBuf>) -> Arc<Self> {
        Self::resolving(None, temp)
    }

    /// A registry of no lake that opens the lakes plans name with `resolve` (on first
    /// use, without waiting in the lookup), spilling to `temp`.
    pub fn resolving(resolve: Option<Resolver>, temp: Option<std::path::PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            lakes: Arc::new(RwLock::new(HashMap::new())),
            pending: std::sync::Mutex::new(HashMap::new()),
            resolve,
            temp,
        })
    }

    /// Register (or replace) the store of `lake`'s environment, confined to its folder.
    pub fn add(&self, lake: &Lake) {
        let mut lakes = self.lakes.write().unwrap_or_else(|e| e.into_inner());
        lakes.insert(lake.environment(), (confined(lake), lake.clone()));
    }

    /// The lake of environment `env`, opened with the resolver when it is not served yet
    /// (for lakecdp's own operators, which write partitions through it).
    pub async fn lake_of(&self, env: EnvironmentId) -> Result<Lake> {
        if let Some((_, lake)) = self
            .lakes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&env)
        {
            return Ok(lake.clone());
        }
        let refused = || {
            Error::Cluster(format!(
                "environment {env} is not served by this process: its catalog does not hold it, its principal may not run its refreshes, or `--environment` leaves it out"
            ))
        };
        let resolve = self.resolve.clone().ok_or_else(refused)?;
        match resolve(env).await {
            Ok(Some(lake)) => {
                self.add(&lake);
                Ok(lake)
            }
            Ok(None) => Err(refused()),
            Err(e) => Err(Error::Cluster(format!(
                "the lake of environment {env} cannot be opened: {e}"
            ))),
        }
    }

    /// Serve exactly `lakes` from now on.
    pub fn replace(&self, lakes: &[Lake]) {
        let fresh: HashMap<EnvironmentId, Served> = lakes
            .iter()
            .map(|l| (l.environment(), (confined(l), l.clone())))
            .collect();
        *self.lakes.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        // what was refused may be allowed now, and the other way round
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The environments whose lakes are registered, sorted.
    pub fn environments(&self) -> Vec<EnvironmentId> {
        let lakes = self.lakes.read().unwrap_or_else(|e| e.into_inner());
        let mut envs: Vec<EnvironmentId> = lakes.keys().copied().collect();
        envs.sort();
        envs
    }

    /// A runtime whose object stores are this registry's.
    pub fn runtime(self: &Arc<Self>) -> Result<Arc<RuntimeEnv>> {
        let mut builder = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::clone(self) as Arc<dyn ObjectStoreRegistry>);
        if let Some(temp) = &self.temp {
            builder = builder.with_temp_file_path(temp);
        }
        Ok(builder.build_arc()?)
    }
}

/// `lake`'s store seen from its environment's folder: paths of plans are relative to it.
pub(crate) fn confined(lake: &Lake) -> Arc<dyn ObjectStore> {
    Arc::new(crate::confined::Confined::new(
        Arc::clone(lake.store()),
        lake.root().clone(),
    ))
}

impl ObjectStoreRegistry for LakeStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        // only lakes, registered through `add`, are served; a store registered by URL
        // (DataFusion registers none on its own) is not kept
        tracing::debug!(
            scheme = url.scheme(),
            "a store registered by URL is not served"
        );
        drop(store);
        None
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        let env = crate::environment_of(url).ok_or_else(|| {
            DataFusionError::Execution(format!("`{url}` names no environment's lake"))
        })?;
        let mut lakes = self.lakes.write().unwrap_or_else(|e| e.into_inner());
        lakes.remove(&env).map(|(store, _)| store).ok_or_else(|| {
            DataFusionError::Execution(format!("no lake of environment {env} is registered"))
        })
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        let Some(env) = crate::environment_of(url) else {
            return Err(DataFusionError::Execution(format!(
                "this process reads only environments' lakes, not `{}://` locations",
                url.scheme()
            )));
        };
        if let Some((store, _)) = self
            .lakes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&env)
        {
            return Ok(Arc::clone(store));
        }
        let Some(resolve) = &self.resolve else {
            return Err(DataFusionError::Execution(format!(
                "environment {env} is not served by this process: its catalog does not hold it, its principal may not run its refreshes, or `--environment` leaves it out"
            )));
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lazy) = pending.get(&env) {
            if lazy.created().elapsed() < REFUSAL_KEPT {
                return Ok(Arc::new(lazy.share()));
            }
        }
        let lakes = Arc::clone(&self.lakes);
        let opened: crate::lazy::Opened = Arc::new(move |lake: &Lake| {
            let mut lakes = lakes.write().unwrap_or_else(|e| e.into_inner());
            lakes.insert(lake.environment(), (confined(lake), lake.clone()));
        });
        let lazy = crate::lazy::LazyLake::new(env, Arc::clone(resolve), opened);
        pending.insert(env, lazy.share());
        Ok(Arc::new(lazy))
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
    let stores = LakeStores::new();
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
pub(crate) async fn reachable(scheduler: &str) -> Result<()> {
    let (host, port) =
        lakecdp_core::EngineChoice::scheduler_address(scheduler).map_err(Error::Cluster)?;
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::Cluster(format!(
            "the scheduler at {scheduler} does not answer ({e}): start it with `lakecdp cluster scheduler --bind <its address>:{port}`, or point the environment's `engine` at one that runs"
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
    let stores = LakeStores::new();
    let for_cluster = Arc::clone(&stores);
    let (started, address) = tokio::sync::oneshot::channel::<Result<SocketAddr, String>>();
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
                    Ok(address) => {
                        if started.send(Ok(address)).is_err() {
                            // the caller is gone: stop, dropping the runtime and its ports
                            return;
                        }
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
    let address = address
        .await
        .map_err(|_| Error::Cluster("the standalone cluster stopped while starting".into()))?
        .map_err(|e| Error::Cluster(format!("the standalone cluster cannot start: {e}")))?;
    Ok(Standalone {
        scheduler: format!("df://{address}"),
        stores,
    })
}

async fn serve_standalone(stores: Arc<LakeStores>) -> std::result::Result<SocketAddr, String> {
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    use ballista_core::utils::default_config_producer;

    let runtime = stores.runtime().map_err(|e| e.to_string())?;
    let services = crate::ingest::distributed::Services {
        lakes: Arc::clone(&stores),
        sources: crate::ingest::distributed::lent_sources(),
    };
    let address = ballista_scheduler::standalone::new_standalone_scheduler_with_builder(
        session_builder(Arc::clone(&runtime)),
        Arc::new(default_config_producer),
        codec(None),
    )
    .await
    .map_err(|e| e.to_string())?;
    // where the scheduler listens ("localhost" may be either loopback address)
    let url = format!("http://{address}");
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
        codec(Some(services)),
        function_registry(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(address)
}

/// Ballista's codecs with lakecdp's operators, which run with `services` where given.
fn codec(
    services: Option<crate::ingest::distributed::Services>,
) -> ballista_core::serde::BallistaCodec {
    ballista_core::serde::BallistaCodec::new(
        Arc::new(ballista_core::serde::BallistaLogicalExtensionCodec::default()),
        Arc::new(crate::ingest::distributed::Codec::new(services)),
    )
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
    config.override_physical_codec = Some(Arc::new(crate::ingest::distributed::Codec::new(None)));
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
/// writing the lakes of `stores` (whose runtime should spill to the work folder).
pub async fn run_executor(
    options: ExecutorOptions,
    stores: Arc<LakeStores>,
    sources: crate::ingest::distributed::SourceResolver,
) -> Result<()> {
    use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};

    let (host, port) = lakecdp_core::EngineChoice::scheduler_address(&options.scheduler)
        .map_err(Error::Cluster)?;
    let runtime = stores.runtime()?;
    let services = crate::ingest::distributed::Services {
        lakes: Arc::clone(&stores),
        sources,
    };
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
        override_physical_codec: Some(Arc::new(crate::ingest::distributed::Codec::new(Some(
            services,
        )))),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config)).await.map_err(|e| {
        Error::Cluster(format!(
            "the executor on {}:{}: {e}",
            options.bind, options.port
        ))
    })
}
