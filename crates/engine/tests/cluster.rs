//! The same plan, calling lakecdp's functions over a table of the lake, gives the same
//! rows on the local engine, on a standalone Ballista cluster and on lakecdp's own
//! scheduler and two executors (each on a runtime and thread of its own here; the
//! binary's test runs them as processes).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use lakecdp_engine::cluster::{self, ExecutorOptions, LakeStores};
use lakecdp_engine::{EngineKind, Session};
use lakecdp_lake::Lake;

mod common;

const QUERY: &str = "SELECT a, \
     lakecdp_normalize(a, 'name,unicode_to_ascii,lowercase,whitespace') AS normalised, \
     lakecdp_similarity(lakecdp_normalize(a, 'lowercase'), lakecdp_normalize(b, 'lowercase'), 'jaro_winkler') AS jw, \
     lakecdp_similarity(a, b, 'levenshtein') AS lev \
     FROM names ORDER BY a";

/// Rows of names in a Parquet file of the lake, `scratch/names.parquet`.
async fn names(lake: &Lake) -> Arc<Schema> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Utf8, true),
        Field::new("b", DataType::Utf8, true),
    ]));
    let a: Vec<Option<String>> = (0..2000)
        .map(|i| match i % 7 {
            0 => None,
            1 => Some(format!("  Bob  Émile-{i} ")),
            2 => Some(format!("Zoë {i}")),
            _ => Some(format!("Martha {i}")),
        })
        .collect();
    let b: Vec<Option<String>> = (0..2000)
        .map(|i| Some(format!("marhta {}", i / 3)))
        .collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(a)),
            Arc::new(StringArray::from(b)),
        ],
    )
    .unwrap();
    let mut bytes = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut bytes, schema.clone(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    lake.put("scratch/names.parquet", bytes).await.unwrap();
    schema
}

async fn run(kind: &EngineKind, lake: &Lake, schema: Arc<Schema>) -> String {
    let session = Session::new(kind, lake.clone()).await.unwrap();
    let url = ListingTableUrl::parse(session.url_of("scratch/names.parquet")).unwrap();
    let config = ListingTableConfig::new(url)
        .with_listing_options(ListingOptions::new(Arc::new(ParquetFormat::default())))
        .with_schema(schema);
    let ctx = session.context();
    ctx.register_table("names", Arc::new(ListingTable::try_new(config).unwrap()))
        .unwrap();
    let batches = ctx.sql(QUERY).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Run `work` on a thread and runtime of its own, for the rest of the test process.
fn background(
    work: impl std::future::Future<Output = lakecdp_engine::Result<()>> + Send + 'static,
) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        if let Err(e) = runtime.block_on(work) {
            panic!("a cluster process stopped: {e}");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lakecdp_functions_give_the_same_rows_locally_standalone_and_on_lakecdp_processes() {
    let dir = tempfile::tempdir().unwrap();
    let lake = common::lake(dir.path());
    let schema = names(&lake).await;

    let local = run(&EngineKind::Local, &lake, schema.clone()).await;
    assert!(local.contains("| robert emile-1    |"), "{local}");
    assert!(local.lines().count() > 2000, "every row: {local}");

    let standalone = run(
        &EngineKind::Ballista { scheduler: None },
        &lake,
        schema.clone(),
    )
    .await;
    assert_eq!(standalone, local, "standalone Ballista");

    // lakecdp's scheduler and two executors, knowing the lake by its environment
    let stores = LakeStores::new();
    stores.add(&lake);
    let scheduler_port = free_port();
    let bind = SocketAddr::from(([127, 0, 0, 1], scheduler_port));
    background(cluster::run_scheduler(bind, Arc::clone(&stores)));
    wait_listening(scheduler_port);
    let scheduler = format!("df://127.0.0.1:{scheduler_port}");
    for _ in 0..2 {
        let port = free_port();
        let options = ExecutorOptions {
            scheduler: scheduler.clone(),
            bind: [127, 0, 0, 1].into(),
            port,
            grpc_port: free_port(),
            slots: 1,
            work_dir: None,
        };
        // this cluster loads no source
        let sources: lakecdp_engine::ingest::distributed::SourceResolver =
            Arc::new(|_, _, name| Box::pin(async move { Err(format!("no source `{name}`")) }));
        background(cluster::run_executor(options, Arc::clone(&stores), sources));
        wait_listening(port);
    }
    let on_cluster = run(
        &EngineKind::Ballista {
            scheduler: Some(scheduler),
        },
        &lake,
        schema,
    )
    .await;
    assert_eq!(on_cluster, local, "lakecdp's scheduler and executors");
}
