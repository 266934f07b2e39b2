//! The serve benchmark: the real `lakecdp-server`, in this process on 127.0.0.1, under
//! many concurrent HTTP clients reading through the authenticated JSON API.
//!
//! [`run`] sets up a fresh project folder with the retail quickstart (generated at a
//! small scale), applies it and runs one refresh through `lakecdp-app`, so that there is
//! a real run to read; creates a catalog administrator, signs it in over HTTP and creates
//! a Viewer API token with its session. Then `clients` reqwest clients, each with its
//! own keep-alive connection, alternate `GET /api/runs/{id}` and
//! `GET /api/environments/{env}` for the given time, authenticated with the token (the
//! common case of scripts) or the session cookie. Every response is counted; one that is
//! not `200 OK`, or a request that fails, is an error.
//!
//! Each client keeps its latencies in microseconds; they are merged and sorted at the
//! end, which is exact and cheap enough for runs of a minute or so.
//!
//! The catalog is a SQLite file in the temporary folder, or a fresh database
//! `lakecdp_bench_<random>` created on a PostgreSQL server (through its `postgres`
//! database) and dropped at the end, so that runs never share state.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lakecdp_app::environments::Saved;
use lakecdp_app::{open_catalog, Actor, App, CancellationToken, RefreshRequest, Silent};
use lakecdp_core::{Role, RunStatus};
use lakecdp_server::ServerConfig;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, COOKIE};
use reqwest::StatusCode;
use serde::Serialize;

use crate::refresh::RETAIL_EXAMPLE;
use crate::retail::{self, RetailConfig};
use crate::{Error, Result};

/// The administrator the benchmark creates, and its password.
pub(crate) const ADMIN: &str = "bench";
pub(crate) const ADMIN_PASSWORD: &str = "a password for the serve benchmark";

/// The routes measured, in the order the clients alternate them.
const ROUTES: [&str; 2] = ["GET /api/runs/{id}", "GET /api/environments/{env}"];

/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the server keeps its catalog.
#[derive(Clone, PartialEq, Eq)]
pub enum CatalogKind {
    /// A SQLite file in the benchmark's temporary folder.
    Sqlite,
    /// A PostgreSQL server, reached with this URL: the benchmark creates a fresh
    /// database on it through its `postgres` database, and drops it at the end.
    Postgres(String),
}

impl CatalogKind {
    /// `sqlite`, or a `postgresql://` (or `postgres://`) URL.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("sqlite") {
            Ok(Self::Sqlite)
        } else if text.starts_with("postgresql://") || text.starts_with("postgres://") {
            Ok(Self::Postgres(text.to_string()))
        } else {
            Err(Error::InvalidConfig {
                key: "catalog",
                reason: "give `sqlite` or a `postgresql://` URL".into(),
            })
        }
    }

    /// `sqlite` or `postgresql`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres(_) => "postgresql",
        }
    }
}

// The URL may hold a password: never print it.
impl std::fmt::Debug for CatalogKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// A Viewer API token in `Authorization: Bearer`.
    Token,
    /// The administrator's session cookie (reads need no CSRF token).
    Session,
}

impl AuthKind {
    /// As printed.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Token => "api token (viewer)",
            Self::Session => "session cookie (admin)",
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The catalog the server runs on.
    pub catalog: CatalogKind,
    /// How the clients authenticate.
    pub auth: AuthKind,
    /// Concurrent clients, each with its own connection.
    pub clients: usize,
    /// How long the clients send requests.
    pub duration: Duration,
    /// Scale of the retail sample that is refreshed first.
    pub scale: f64,
    /// Seed of the retail sample.
    pub seed: u64,
}

/// The figures of one route, or of all of them.
#[derive(Debug, Clone, Serialize)]
pub struct RouteFigures {
    /// The route, or `all`.
    pub route: &'static str,
    /// Responses received and requests failed.
    pub requests: u64,
    /// Responses that were not `200 OK`, and requests that failed.
    pub errors: u64,
    /// Requests per second over the measured time.
    pub requests_per_second: f64,
    /// Latency percentiles and maximum, in milliseconds, from sending the request to
    /// the end of the response's body.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

/// What one serve benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct ServeFigures {
    /// `serve`.
    pub bench: &'static str,
    /// `sqlite` or `postgresql`.
    pub catalog: &'static str,
    /// How the clients authenticated.
    pub auth: &'static str,
    /// Where the server ran: `in process` (on the benchmark's own runtime).
    pub server: &'static str,
    /// `debug` or `release`.
    pub profile: &'static str,
    /// The machine's cores, as the standard library sees them.
    pub cores: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Scale of the retail sample.
    pub scale: f64,
    /// Seconds of setup: generation, apply, refresh, sign-in and token.
    pub setup_seconds: f64,
    /// Seconds from the first request to the last response.
    pub seconds: f64,
    /// Every response received and every failed request.
    pub requests: u64,
    /// Responses that were not `200 OK`, and failed requests.
    pub errors: u64,
    /// Requests per second over `seconds`.
    pub requests_per_second: f64,
    /// One entry per route, then `all`.
    pub routes: Vec<RouteFigures>,
    /// The first error seen, when there was one.
    pub first_error: Option<String>,
}

/// The build profile of this binary.
pub fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Run the serve benchmark (see the module's documentation).
pub async fn run(config: &ServeConfig) -> Result<ServeFigures> {
    if config.clients == 0 {
        return Err(Error::InvalidConfig {
            key: "clients",
            reason: "at least one client is needed".into(),
        });
    }
    let setup = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("lakecdp-bench-serve-")
        .tempdir()
        .map_err(|e| Error::io(&std::env::temp_dir(), e))?;
    eprintln!(
        "generating the retail quickstart at scale {} into {}",
        config.scale,
        dir.path().display()
    );
    retail_project(dir.path(), config.scale, config.seed)?;
    match &config.catalog {
        CatalogKind::Sqlite => {
            let path = dir.path().join(".lakecdp").join("catalog.db");
            measure(config, dir.path(), &path.to_string_lossy(), setup).await
        }
        CatalogKind::Postgres(url) => {
            let database = FreshDatabase::create(url).await?;
            eprintln!("created the PostgreSQL database {}", database.name);
            let result = measure(config, dir.path(), &database.url, setup).await;
            let dropped = database.drop().await;
            let figures = result?;
            dropped?;
            Ok(figures)
        }
    }
}

/// The retail quickstart's project file and a generated sample in `dir`.
fn retail_project(dir: &Path, scale: f64, seed: u64) -> Result<()> {
    let file = lakecdp_core::project::PROJECT_FILE;
    let from = Path::new(RETAIL_EXAMPLE).join(file);
    let to = dir.join(file);
    std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
    let config = RetailConfig::scaled(seed, scale)?;
    retail::generate(&config, &dir.join("data"))?;
    Ok(())
}

/// Everything after the project folder exists: apply, refresh, the server, the clients.
async fn measure(
    config: &ServeConfig,
    dir: &Path,
    catalog: &str,
    setup: Instant,
) -> Result<ServeFigures> {
    let catalog = open_catalog(Path::new(catalog)).await?;
    let app = App::new(catalog, dir);
    let local = Actor::local(None);
    eprintln!(
        "applying and refreshing ({} catalog)",
        config.catalog.name()
    );
    let env = match app.apply(&local, true, &Silent).await?.0 {
        Saved::Created(env) | Saved::Updated(env, _) | Saved::UpToDate(env) => env.name,
    };
    let report = app
        .refresh(
            &local,
            &RefreshRequest::default(),
            CancellationToken::new(),
            Arc::new(Silent),
        )
        .await?;
    if report.status != RunStatus::Succeeded {
        let problem = report.first_problem().map_or_else(String::new, |o| {
            format!(
                ": {}: {}",
                o.process,
                o.reason.as_deref().unwrap_or("no reason given")
            )
        });
        return Err(Error::Bench(format!(
            "the refresh is {}{problem}",
            report.status
        )));
    }
    // a catalog administrator holds no role in an environment by itself
    app.bootstrap_administrator(ADMIN, ADMIN_PASSWORD).await?;
    app.set_role(&local, Some(&env), ADMIN, Some(Role::Admin))
        .await?;

    let (address, stop, server) = start_server(&app).await?;
    let base = format!("http://{address}");
    drop(app);

    let result = async {
        let credential = credential(&base, &env, config.auth).await?;
        let targets = Arc::new(Targets {
            names: ROUTES,
            urls: [
                vec![format!("{base}/api/runs/{}", report.run)],
                vec![format!("{base}/api/environments/{env}")],
            ],
        });
        let setup_seconds = setup.elapsed().as_secs_f64();
        eprintln!(
            "serving on {address} (in this process); {} clients for {} s, {}",
            config.clients,
            config.duration.as_secs_f64(),
            config.auth.describe()
        );
        let results = load(config.clients, config.duration, &targets, &credential).await?;
        Ok::<_, Error>((setup_seconds, results))
    }
    .await;

    stop.cancel();
    let served = server
        .await
        .map_err(|e| Error::Bench(format!("the server task failed: {e}")))?;
    let (setup_seconds, (seconds, clients)) = result?;
    served.map_err(|e| Error::Bench(format!("the server failed: {e}")))?;
    Ok(figures(config, setup_seconds, seconds, clients))
}

/// The server in this process on a free port of 127.0.0.1: its address, what stops it,
/// and its task.
pub(crate) async fn start_server(
    app: &App,
) -> Result<(
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<std::result::Result<(), lakecdp_server::ServeError>>,
)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Bench(format!("cannot listen on 127.0.0.1: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::Bench(format!("cannot read the server's address: {e}")))?;
    let stop = CancellationToken::new();
    let server = tokio::spawn(lakecdp_server::serve(
        app.clone(),
        ServerConfig::default(),
        listener,
        stop.clone(),
    ));
    Ok((address, stop, server))
}

/// The header every measured request carries.
pub(crate) type Credential = (HeaderName, HeaderValue);

/// Sign the administrator in over HTTP; for a token, create a Viewer token of `env`
/// with its session.
pub(crate) async fn credential(base: &str, env: &str, auth: AuthKind) -> Result<Credential> {
    let http = http_client()?;
    let response = http
        .post(format!("{base}/api/session"))
        .json(&serde_json::json!({"name": ADMIN, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .map_err(|e| Error::Bench(format!("signing in: {e}")))?;
    let signed = expect(response, StatusCode::OK, "signing in").await?;
    let (cookie, body) = signed;
    let cookie = cookie
        .ok_or_else(|| Error::Bench("signing in set no session cookie".into()))?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let header = |value: String| {
        HeaderValue::from_str(&value)
            .map_err(|e| Error::Bench(format!("an unusable credential: {e}")))
    };
    if auth == AuthKind::Session {
        return Ok((COOKIE, header(cookie)?));
    }
    let csrf = body["csrf_token"]
        .as_str()
        .ok_or_else(|| Error::Bench("signing in returned no CSRF token".into()))?;
    let response = http
        .post(format!("{base}/api/environments/{env}/tokens"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", csrf)
        .json(&serde_json::json!({"name": "serve-bench", "role": "viewer"}))
        .send()
        .await
        .map_err(|e| Error::Bench(format!("creating an API token: {e}")))?;
    let (_, body) = expect(response, StatusCode::CREATED, "creating an API token").await?;
    let token = body["token"]
        .as_str()
        .ok_or_else(|| Error::Bench("the new API token has no value".into()))?;
    Ok((AUTHORIZATION, header(format!("Bearer {token}"))?))
}

/// The `Set-Cookie` header and JSON body of a response of status `want`.
async fn expect(
    response: reqwest::Response,
    want: StatusCode,
    what: &str,
) -> Result<(Option<String>, serde_json::Value)> {
    let status = response.status();
    let cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response
        .text()
        .await
        .map_err(|e| Error::Bench(format!("{what}: {e}")))?;
    if status != want {
        return Err(Error::Bench(format!("{what}: {status}: {text}")));
    }
    let body = serde_json::from_str(&text)
        .map_err(|e| Error::Bench(format!("{what}: not JSON ({e}): {text}")))?;
    Ok((cookie, body))
}

/// A client with its own pool (one keep-alive connection, as it sends one request at a
/// time), never through a proxy.
fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| Error::Bench(format!("cannot build an HTTP client: {e}")))
}

/// What one client saw, per route.
#[derive(Debug, Default)]
pub(crate) struct ClientResult {
    /// Latencies of the responses, in microseconds.
    latencies: [Vec<u32>; 2],
    /// Requests that failed (no response), per route.
    failed: [u64; 2],
    /// Responses that were not `200 OK`, per route.
    refused: [u64; 2],
    first_error: Option<String>,
}

/// The two routes clients alternate: their names and the URLs each one cycles through.
pub(crate) struct Targets {
    pub names: [&'static str; 2],
    pub urls: [Vec<String>; 2],
}

/// Run `clients` clients for `duration`; the measured seconds and what each saw.
pub(crate) async fn load(
    clients: usize,
    duration: Duration,
    targets: &Arc<Targets>,
    credential: &Credential,
) -> Result<(f64, Vec<ClientResult>)> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let http = http_client()?;
        let targets = Arc::clone(targets);
        let credential = credential.clone();
        tasks.push(tokio::spawn(client(http, targets, credential, i, deadline)));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(
            task.await
                .map_err(|e| Error::Bench(format!("a client task failed: {e}")))?,
        );
    }
    Ok((started.elapsed().as_secs_f64(), results))
}

/// Client `index`: the routes in turn (from route `index % 2`), each through its URLs in
/// turn (from the `index`th), one request at a time, until `deadline`.
async fn client(
    http: reqwest::Client,
    targets: Arc<Targets>,
    (name, value): Credential,
    index: usize,
    deadline: Instant,
) -> ClientResult {
    let mut out = ClientResult::default();
    let mut route = index % 2;
    let mut turn = index;
    while Instant::now() < deadline {
        let urls = &targets.urls[route];
        let url = &urls[turn % urls.len().max(1)];
        let label = targets.names[route];
        let sent = Instant::now();
        let response = http
            .get(url)
            .header(name.clone(), value.clone())
            .send()
            .await;
        let outcome = match response {
            Ok(response) => {
                let status = response.status();
                let body = response.bytes().await;
                match body {
                    Ok(_) if status == StatusCode::OK => Ok(()),
                    Ok(body) => Err((
                        true,
                        format!("{label}: {status}: {}", String::from_utf8_lossy(&body)),
                    )),
                    Err(e) => Err((false, format!("{label}: reading the body: {e}"))),
                }
            }
            Err(e) => Err((false, format!("{label}: {e}"))),
        };
        match outcome {
            Ok(()) => out.latencies[route].push(micros(sent.elapsed())),
            Err((answered, message)) => {
                if answered {
                    out.latencies[route].push(micros(sent.elapsed()));
                    out.refused[route] += 1;
                } else {
                    out.failed[route] += 1;
                }
                out.first_error.get_or_insert(message);
            }
        }
        route = (route + 1) % 2;
        if route == index % 2 {
            turn += 1;
        }
    }
    out
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Merge the clients' results into the figures of each route, then of all.
pub(crate) fn merged(
    names: [&'static str; 2],
    seconds: f64,
    clients: Vec<ClientResult>,
) -> (Vec<RouteFigures>, u64, Option<String>) {
    let mut all = Vec::new();
    let mut all_errors = 0;
    let mut all_failed = 0;
    let mut routes = Vec::new();
    let mut first_error = None;
    for (i, route) in names.iter().enumerate() {
        let mut latencies: Vec<u32> = Vec::new();
        let (mut failed, mut errors) = (0, 0);
        for c in &clients {
            latencies.extend_from_slice(&c.latencies[i]);
            failed += c.failed[i];
            errors += c.failed[i] + c.refused[i];
        }
        all.extend_from_slice(&latencies);
        all_errors += errors;
        all_failed += failed;
        routes.push(route_figures(
            route,
            &mut latencies,
            failed,
            errors,
            seconds,
        ));
    }
    for c in clients {
        if first_error.is_none() {
            first_error = c.first_error;
        }
    }
    let overall = route_figures("all", &mut all, all_failed, all_errors, seconds);
    routes.push(overall);
    (routes, all_errors, first_error)
}

/// The serve benchmark's figures.
fn figures(
    config: &ServeConfig,
    setup_seconds: f64,
    seconds: f64,
    clients: Vec<ClientResult>,
) -> ServeFigures {
    let (routes, errors, first_error) = merged(ROUTES, seconds, clients);
    let (requests, requests_per_second) = routes
        .last()
        .map_or((0, 0.0), |all| (all.requests, all.requests_per_second));
    ServeFigures {
        bench: "serve",
        catalog: config.catalog.name(),
        auth: config.auth.describe(),
        server: "in process",
        profile: profile(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        clients: config.clients,
        scale: config.scale,
        setup_seconds,
        seconds,
        requests,
        errors,
        requests_per_second,
        routes,
        first_error,
    }
}

/// The figures of one route from its latencies (sorted here), the requests that got no
/// response, and all its errors.
fn route_figures(
    route: &'static str,
    latencies: &mut [u32],
    failed: u64,
    errors: u64,
    seconds: f64,
) -> RouteFigures {
    latencies.sort_unstable();
    let requests = latencies.len() as u64 + failed;
    RouteFigures {
        route,
        requests,
        errors,
        requests_per_second: if seconds > 0.0 {
            requests as f64 / seconds
        } else {
            0.0
        },
        p50_ms: percentile(latencies, 0.50),
        p90_ms: percentile(latencies, 0.90),
        p99_ms: percentile(latencies, 0.99),
        max_ms: latencies.last().map_or(0.0, |&m| f64::from(m) / 1000.0),
    }
}

/// The nearest-rank percentile `p` (0 to 1) of sorted microseconds, in milliseconds; 0
/// when there are none.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

/// A database of its own on a PostgreSQL server, dropped by [`FreshDatabase::drop`].
struct FreshDatabase {
    /// The server's URL with this database in its path (holds the password).
    url: String,
    /// A URL of the server's `postgres` database, to create and drop it through.
    admin_url: String,
    name: String,
}

impl FreshDatabase {
    async fn create(url: &str) -> Result<Self> {
        let name = format!("lakecdp_bench_{:016x}", rand::random::<u64>());
        let database = Self {
            url: with_database(url, &name)?,
            admin_url: with_database(url, "postgres")?,
            name,
        };
        database
            .admin(&format!("CREATE DATABASE \"{}\"", database.name))
            .await?;
        Ok(database)
    }

    async fn drop(self) -> Result<()> {
        self.admin(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .await?;
        eprintln!("dropped the PostgreSQL database {}", self.name);
        Ok(())
    }

    /// Run `sql` in the server's `postgres` database.
    async fn admin(&self, sql: &str) -> Result<()> {
        let (client, connection) = tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls)
            .await
            .map_err(|e| Error::Bench(format!("connecting to the PostgreSQL server: {e}")))?;
        let connection = tokio::spawn(connection);
        let result = client
            .batch_execute(sql)
            .await
            .map_err(|e| Error::Bench(format!("{sql}: {e}")));
        drop(client);
        let _ = connection.await;
        result
    }
}

/// `url` with `database` in its path, its query kept.
fn with_database(url: &str, database: &str) -> Result<String> {
    let invalid = || Error::InvalidConfig {
        key: "catalog",
        reason: "a PostgreSQL URL is postgresql://user:password@host:port/database".into(),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let authority = path.split('/').next().filter(|a| !a.is_empty());
    let authority = authority.ok_or_else(invalid)?;
    let mut out = format!("{scheme}://{authority}/{database}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&sorted, 0.50), 50.0);
        assert_eq!(percentile(&sorted, 0.90), 90.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&[7000], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn refusals_and_failures_are_errors_and_counted() {
        let config = ServeConfig {
            catalog: CatalogKind::Sqlite,
            auth: AuthKind::Token,
            clients: 2,
            duration: Duration::from_secs(2),
            scale: 0.1,
            seed: 1,
        };
        let clients = vec![
            ClientResult {
                latencies: [vec![3000, 1000], vec![2000]],
                ..ClientResult::default()
            },
            ClientResult {
                latencies: [vec![4000], vec![]],
                failed: [0, 1],
                refused: [1, 0],
                first_error: Some("refused".into()),
            },
        ];
        let f = figures(&config, 0.0, 2.0, clients);
        assert_eq!((f.requests, f.errors), (5, 2));
        assert_eq!(f.first_error.as_deref(), Some("refused"));
        let [runs, envs, all] = &f.routes[..] else {
            panic!("two routes and all")
        };
        assert_eq!((runs.requests, runs.errors, runs.max_ms), (3, 1, 4.0));
        assert_eq!((envs.requests, envs.errors, envs.p50_ms), (2, 1, 2.0));
        assert_eq!((all.requests, all.requests_per_second), (5, 2.5));
    }

    #[test]
    fn a_postgres_url_gets_another_database() {
        assert_eq!(
            with_database("postgresql://u:p@h:5432/db?sslmode=disable", "x").unwrap(),
            "postgresql://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h", "postgres").unwrap(),
            "postgres://u@h/postgres"
        );
        assert!(with_database("postgresql:///db", "x").is_err());
    }

    #[test]
    fn the_catalog_is_sqlite_or_a_url_never_printed() {
        assert_eq!(CatalogKind::parse("sqlite").unwrap(), CatalogKind::Sqlite);
        let pg = CatalogKind::parse("postgresql://u:secret@h/db").unwrap();
        assert_eq!(pg.name(), "postgresql");
        assert!(!format!("{pg:?}").contains("secret"));
        assert!(CatalogKind::parse("mysql://h").is_err());
    }

    /// The harness, not the speed: a short run on SQLite counts responses, all 200.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_run_on_sqlite_counts_only_successes() {
        let figures = run(&ServeConfig {
            catalog: CatalogKind::Sqlite,
            auth: AuthKind::Token,
            clients: 4,
            duration: Duration::from_secs(1),
            scale: 0.1,
            seed: crate::retail::DEFAULT_SEED,
        })
        .await
        .unwrap();
        assert!(figures.requests > 0, "{figures:?}");
        assert_eq!(figures.errors, 0, "{figures:?}");
        assert_eq!(figures.routes.len(), 3);
        assert!(figures.routes[..2].iter().all(|r| r.requests > 0));
        assert_eq!(
            figures.routes[0].requests + figures.routes[1].requests,
            figures.requests
        );
        assert!(figures.routes[2].p50_ms <= figures.routes[2].max_ms);
    }
}
