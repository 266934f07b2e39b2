//! The search benchmark: customer search and the customer card through the real
//! `lakecdp-server` (in this process on 127.0.0.1) over generated people.
//!
//! [`run`] refreshes the people project (`records` records) through `lakecdp-app`, then
//! times the first search, which builds the environment's search index (its build time
//! and size on disk are reported). Then `clients` clients, each with its own keep-alive
//! connection and a Viewer API token, alternate `GET /api/environments/{env}/customers`
//! (a first name and a last name with two letters swapped, as people mistype) and
//! `GET /api/environments/{env}/customers/{id}` (a card) over profiles sampled from the
//! published `Customer` table, for the given time. Latencies are from sending a
//! request to the end of its response's body; any response other than `200 OK` is an
//! error.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use lakecdp_app::{open_catalog, Actor, App, CancellationToken, ErrorKind, RefreshRequest, Silent};
use lakecdp_core::{Process, Role, RunStatus};
use serde::Serialize;

use crate::ingest::peak_rss;
use crate::refresh::{fresh_copy, people_project};
use crate::serve::{self, AuthKind, RouteFigures, Targets};
use crate::{Error, Result};

/// The routes measured.
const ROUTES: [&str; 2] = [
    "GET /api/environments/{env}/customers?q=",
    "GET /api/environments/{env}/customers/{id}",
];

/// Profiles whose names and ids the clients use.
const SAMPLE: usize = 5_000;

/// What to measure.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// Generated people records.
    pub records: usize,
    /// Their seed.
    pub seed: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// How long they send requests.
    pub duration: Duration,
    /// Where the generated records are kept between runs.
    pub work_dir: PathBuf,
}

/// What the search benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct SearchFigures {
    /// `search`.
    pub bench: &'static str,
    /// `debug` or `release`.
    pub profile: &'static str,
    /// The machine's cores.
    pub cores: usize,
    /// Generated records.
    pub records: usize,
    /// Profiles in the index.
    pub profiles: u64,
    /// Seconds of the refresh that unified them.
    pub refresh_seconds: f64,
    /// Seconds from the first search to its answer: the index build.
    pub index_build_seconds: f64,
    /// The index's size on disk.
    pub index_bytes: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// Seconds from the first request to the last response.
    pub seconds: f64,
    /// Responses that were not `200 OK`, and failed requests.
    pub errors: u64,
    /// One entry per route, then `all`.
    pub routes: Vec<RouteFigures>,
    /// Searches among those sampled that found the profile they were made from, on one
    /// pass before the load (of `queries_checked`).
    pub queries_found: usize,
    /// Searches checked.
    pub queries_checked: usize,
    /// Peak resident memory of this process (server, index and clients).
    pub peak_rss: u64,
    /// The first error seen, when there was one.
    pub first_error: Option<String>,
}

/// Two letters in the middle of a word swapped.
fn typo(word: &str) -> String {
    let mut c: Vec<char> = word.chars().collect();
    if c.len() >= 4 {
        let m = c.len() / 2;
        c.swap(m - 1, m);
    }
    c.into_iter().collect()
}

fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => folder_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Profiles to search for: (query with typos, CustomerId).
async fn sample(app: &App, env: &lakecdp_core::Environment) -> Result<Vec<(String, String)>> {
    let lake = app.lake(env).await?;
    let lake_error = |e: lakecdp_lake::Error| Error::Bench(format!("reading the lake: {e}"));
    let model = lakecdp_lake::publish::read_model(&lake, &Process::Unification)
        .await
        .map_err(lake_error)?
        .ok_or_else(|| Error::Bench("nothing was unified".into()))?;
    let entity = model
        .entity("Customer")
        .ok_or_else(|| Error::Bench("no Customer table".into()))?;
    let mut out = Vec::new();
    for batch in lakecdp_lake::partition::read_entity(&lake, "Unification", entity)
        .await
        .map_err(lake_error)?
    {
        let text = |name: &str| -> Result<StringArray> {
            let c = batch
                .column_by_name(name)
                .ok_or_else(|| Error::Bench(format!("Customer has no {name}")))?;
            let c = cast(c, &DataType::Utf8).map_err(|e| Error::Bench(e.to_string()))?;
            Ok(c.as_any()
                .downcast_ref::<StringArray>()
                .cloned()
                .unwrap_or_else(|| StringArray::from(Vec::<Option<&str>>::new())))
        };
        let (ids, first, last) = (text("CustomerId")?, text("FirstName")?, text("LastName")?);
        // every 97th profile, so the sample spreads over the table
        for i in (0..batch.num_rows()).step_by(97) {
            if first.is_null(i) || last.is_null(i) || ids.is_null(i) {
                continue;
            }
            out.push((
                format!("{} {}", first.value(i), typo(last.value(i))),
                ids.value(i).to_string(),
            ));
            if out.len() >= SAMPLE {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Run the search benchmark (see the module's documentation).
pub async fn run(config: &SearchConfig) -> Result<SearchFigures> {
    let (project, records) = people_project(&config.work_dir, config.records, config.seed)?;
    let dir = tempfile::Builder::new()
        .prefix("lakecdp-bench-search-")
        .tempdir()
        .map_err(|e| Error::io(&std::env::temp_dir(), e))?;
    let copy = dir.path().join("project");
    fresh_copy(&project, &copy)?;
    let catalog = open_catalog(&copy.join(".lakecdp").join("catalog.db")).await?;
    let app = App::new(catalog, &copy);
    let search_dir = dir.path().join("search");
    app.set_search_dir(&search_dir);
    let local = Actor::local(None);
    eprintln!("applying and refreshing {records} people records");
    let env = match app.apply(&local, true, &Silent).await?.0 {
        lakecdp_app::environments::Saved::Created(e)
        | lakecdp_app::environments::Saved::Updated(e, _)
        | lakecdp_app::environments::Saved::UpToDate(e) => e,
    };
    let started = Instant::now();
    let report = app
        .refresh(
            &local,
            &RefreshRequest::default(),
            CancellationToken::new(),
            Arc::new(Silent),
        )
        .await?;
    let refresh_seconds = started.elapsed().as_secs_f64();
    if report.status != RunStatus::Succeeded {
        return Err(Error::Bench(format!("the refresh is {}", report.status)));
    }
    eprintln!("refreshed in {refresh_seconds:.1} s; building the search index");

    // the first search builds the index
    let inside = app.in_environment(&env.name);
    let started = Instant::now();
    let first = loop {
        match inside.search_customers(&local, "a", 0, 1).await {
            Ok(found) => break found,
            Err(e)
                if e.kind() == ErrorKind::Unavailable
                    && started.elapsed() < Duration::from_secs(1800) =>
            {
                eprintln!(
                    "  still building ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
            }
            Err(e) => return Err(e.into()),
        }
    };
    let index_build_seconds = started.elapsed().as_secs_f64();
    let index_bytes = folder_bytes(&search_dir);
    eprintln!(
        "index of {} profiles built in {index_build_seconds:.1} s, {} MiB",
        first.index.profiles,
        index_bytes / (1024 * 1024)
    );

    let sampled = sample(&app, &env).await?;
    if sampled.is_empty() {
        return Err(Error::Bench("no profile with a name to search for".into()));
    }
    // how many typo searches find their profile in the first page
    let checked = sampled.len().min(500);
    let mut queries_found = 0;
    for (q, id) in sampled.iter().take(checked) {
        let found = inside.search_customers(&local, q, 0, 20).await?;
        if found.hits.iter().any(|h| &h.customer_id == id) {
            queries_found += 1;
        }
    }

    app.bootstrap_administrator(serve::ADMIN, serve::ADMIN_PASSWORD)
        .await?;
    app.set_role(&local, Some(&env.name), serve::ADMIN, Some(Role::Admin))
        .await?;
    let (address, stop, server) = serve::start_server(&app).await?;
    let base = format!("http://{address}");
    let result = async {
        let credential = serve::credential(&base, &env.name, AuthKind::Token).await?;
        let encode =
            |q: &str| url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>();
        let targets = Arc::new(Targets {
            names: ROUTES,
            urls: [
                sampled
                    .iter()
                    .map(|(q, _)| {
                        format!(
                            "{base}/api/environments/{}/customers?q={}&limit=20",
                            env.name,
                            encode(q)
                        )
                    })
                    .collect(),
                sampled
                    .iter()
                    .map(|(_, id)| format!("{base}/api/environments/{}/customers/{id}", env.name))
                    .collect(),
            ],
        });
        eprintln!(
            "serving on {address}; {} clients for {} s",
            config.clients,
            config.duration.as_secs_f64()
        );
        serve::load(config.clients, config.duration, &targets, &credential).await
    }
    .await;
    stop.cancel();
    let served = server
        .await
        .map_err(|e| Error::Bench(format!("the server task failed: {e}")))?;
    let (seconds, clients) = result?;
    served.map_err(|e| Error::Bench(format!("the server failed: {e}")))?;
    let (routes, errors, first_error) = serve::merged(ROUTES, seconds, clients);
    Ok(SearchFigures {
        bench: "search",
        profile: serve::profile(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        records,
        profiles: first.index.profiles,
        refresh_seconds,
        index_build_seconds,
        index_bytes,
        clients: config.clients,
        seconds,
        errors,
        routes,
        queries_found,
        queries_checked: checked,
        peak_rss: peak_rss(),
        first_error,
    })
}
