//! What the application's tests share: the retail quickstart's project in a fresh folder
//! (its data generated at a tenth of the size), applied to a catalog of its own, and ways
//! to look at what a refresh published.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lakecdp_app::environments::Saved;
use lakecdp_app::{
    open_catalog, Actor, App, CancellationToken, Event, Observer, RefreshReport, RefreshRequest,
    Silent, DEFAULT_PRINCIPAL,
};
use lakecdp_catalog::Catalog;
use lakecdp_core::{Environment, RunStatus};
use lakecdp_lake::cdm::Model;

/// The retail quickstart's folder.
pub fn retail_example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/retail")
}

/// The share of the retail quickstart's rows the tests load. Its full data takes a debug
/// build some 20 s of CPU per refresh (a minute on two busy cores); a tenth keeps every
/// test within seconds.
pub const SCALE: f64 = 0.1;

/// The retail quickstart's project file copied into `dir`, with its sources in `data/`
/// made by the generator of `examples/retail/data` (same seed, same shape, [`SCALE`] of
/// the rows).
pub fn retail_project(dir: &Path) {
    std::fs::copy(
        retail_example().join("lakecdp.toml"),
        dir.join("lakecdp.toml"),
    )
    .unwrap();
    let config =
        lakecdp_bench::retail::RetailConfig::scaled(lakecdp_bench::retail::DEFAULT_SEED, SCALE)
            .unwrap();
    lakecdp_bench::retail::generate(&config, &dir.join("data")).unwrap();
}

/// The principal that applies the project: the environment's creator, its first Admin.
pub fn admin() -> Actor {
    Actor::named(DEFAULT_PRINCIPAL)
}

/// The retail quickstart in a folder of its own, its environment created in its own
/// catalog (`.lakecdp/catalog.db`) and local lake (`lake/`).
pub struct Retail {
    pub dir: tempfile::TempDir,
    pub catalog: Arc<dyn Catalog>,
    pub app: App,
    pub env: Environment,
}

/// The retail quickstart, applied by [`admin`] (creating the lake's container).
pub async fn retail() -> Retail {
    retail_with(|project| project).await
}

/// The retail quickstart with its project file changed by `edit` (which must change
/// something), applied by [`admin`].
pub async fn retail_with(edit: impl FnOnce(String) -> String) -> Retail {
    let dir = tempfile::tempdir().unwrap();
    retail_project(dir.path());
    let file = dir.path().join("lakecdp.toml");
    let project = std::fs::read_to_string(&file).unwrap();
    let edited = edit(project.clone());
    if edited != project {
        std::fs::write(&file, edited).unwrap();
    }
    let catalog = open_catalog(&dir.path().join(".lakecdp/catalog.db"))
        .await
        .unwrap();
    let app = App::new(Arc::clone(&catalog), dir.path());
    let env = match app.apply(&admin(), true, &Silent).await.unwrap().0 {
        Saved::Created(env) => env,
        other => panic!("a new project's environment is created, not {other:?}"),
    };
    Retail {
        dir,
        catalog,
        app,
        env,
    }
}

impl Retail {
    /// The project folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The environment's folder in the lake, `lake/customerinsights/ci_<id>`.
    pub fn env_folder(&self) -> PathBuf {
        self.path()
            .join("lake/customerinsights")
            .join(self.env.id.folder())
    }

    /// A refresh of everything as [`admin`], which must succeed.
    pub async fn full_refresh(&self, observer: Arc<dyn Observer>) -> RefreshReport {
        let report = self
            .app
            .refresh(
                &admin(),
                &RefreshRequest::default(),
                CancellationToken::new(),
                observer,
            )
            .await
            .unwrap();
        assert_eq!(
            report.status,
            RunStatus::Succeeded,
            "the refresh succeeds: {:?}",
            report.first_problem()
        );
        report
    }

    /// The bytes of a published folder's `model.json` (`Unification`,
    /// `DataIngestion/Crm`…), and the model they hold.
    pub fn model(&self, folder: &str) -> (Vec<u8>, Model) {
        let path = self.env_folder().join(folder).join("model.json");
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{} is published: {e}", path.display()));
        let model = serde_json::from_slice(&bytes).unwrap();
        (bytes, model)
    }

    /// The files the partitions of `entity` name in `model`; panics when it has none.
    pub fn partition_files(&self, model: &Model, entity: &str) -> Vec<PathBuf> {
        let e = model
            .entity(entity)
            .unwrap_or_else(|| panic!("{} names {entity}", model.name));
        assert!(!e.partitions.is_empty(), "{entity} has partitions");
        e.partitions.iter().map(|p| file_of(&p.location)).collect()
    }
}

/// The local file a partition location of a local lake names: its plain absolute path.
pub fn file_of(location: &str) -> PathBuf {
    let path = PathBuf::from(location);
    assert!(path.is_absolute(), "`{location}` is a plain absolute path");
    path
}

/// How many of `events` match `pattern`.
#[allow(unused_macros)]
macro_rules! count_events {
    ($events:expr, $pattern:pat) => {
        $events.iter().filter(|e| matches!(e, $pattern)).count()
    };
}

/// An observer that cancels a token when an event matches, and keeps every
/// event.
pub struct CancelWhen<F: Fn(&Event) -> bool + Send + Sync> {
    pub token: CancellationToken,
    pub when: F,
    pub events: lakecdp_app::Recorder,
}

impl<F: Fn(&Event) -> bool + Send + Sync> Observer for CancelWhen<F> {
    fn event(&self, event: &Event) {
        self.events.event(event);
        if (self.when)(event) {
            self.token.cancel();
        }
    }
}

/// A test variable the test services set.
pub fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh"))
}

/// A new master key for this test process's vault (`LAKECDP_MASTER_KEY`).
pub fn fresh_master_key() {
    std::env::set_var(
        "LAKECDP_MASTER_KEY",
        lakecdp_connect::MasterKey::generate()
            .unwrap()
            .to_base64()
            .expose(),
    );
}

/// The `[environment.storage]` of a lake in `bucket` of the test S3 server, with the
/// test keys read from the environment.
pub fn s3_storage(bucket: &str) -> String {
    format!(
        "[environment.storage]\nkind = \"s3\"\nbucket = \"{bucket}\"\nregion = \"{}\"\nendpoint = \"{}\"\n\
         access_key_id = {{ env = \"LAKECDP_TEST_S3_ACCESS_KEY_ID\" }}\n\
         secret_access_key = {{ env = \"LAKECDP_TEST_S3_SECRET_ACCESS_KEY\" }}\n",
        var("LAKECDP_TEST_S3_REGION"),
        var("LAKECDP_TEST_S3_ENDPOINT")
    )
}

/// The local storage section of the retail project, to replace.
pub const LOCAL_STORAGE: &str = "[environment.storage]\nkind = \"local\"\npath = \"lake\"\n";
