//! Two server instances on one PostgreSQL catalog and one lake: both answer; a refresh
//! started through one is visible, observable and cancellable through the other; the
//! lease still refuses a second refresh; the scheduler runs on exactly one instance, and
//! is taken over when its holder is gone.
//!
//! PostgreSQL comes from `scripts/test-services.sh` (run by `scripts/test.sh`), which
//! exports `LAKECDP_TEST_PG_URL`; without it the test fails, never passes. The test
//! works in a schema of its own of the database `lakecdp_server_instances`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use lakecdp_app::environments::Saved;
use lakecdp_app::{open_catalog, Actor, App, SignInPolicy, Silent, DEFAULT_PRINCIPAL};
use lakecdp_core::Role;
use lakecdp_server::scheduler::LEADERSHIP;
use lakecdp_server::ServerConfig;
use serde_json::{json, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

const DATABASE: &str = "lakecdp_server_instances";
const PASSWORD: &str = "correct horse battery staple";

fn pg_url() -> String {
    std::env::var("LAKECDP_TEST_PG_URL").unwrap_or_else(|_| {
        panic!("LAKECDP_TEST_PG_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL")
    })
}

fn url_of(database: &str, query: &str) -> String {
    let base = pg_url();
    let base = base.split('?').next().unwrap_or(&base).to_string();
    let (server, _) = base.rsplit_once('/').expect("a URL with a database");
    format!("{server}/{database}{query}")
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A fresh schema of the test database, and the catalog URL whose tables live there.
async fn fresh_schema() -> String {
    let admin = client(&url_of("postgres", "")).await;
    if let Err(e) = admin
        .batch_execute(&format!("CREATE DATABASE \"{DATABASE}\""))
        .await
    {
        let raced = [SqlState::DUPLICATE_DATABASE, SqlState::UNIQUE_VIOLATION];
        assert!(e.code().is_some_and(|c| raced.contains(c)), "{e:?}");
    }
    let schema = format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    client(&url_of(DATABASE, ""))
        .await
        .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .unwrap();
    url_of(DATABASE, &format!("?options=-c%20search_path%3D{schema}"))
}

struct Instance {
    base: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), lakecdp_server::ServeError>>,
}

async fn instance(url: &str, project: &Path, name: &str) -> Instance {
    let catalog = open_catalog(Path::new(url)).await.unwrap();
    let app = App::new(catalog, project);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let task = tokio::spawn(lakecdp_server::serve(
        app,
        ServerConfig {
            policy: SignInPolicy::default(),
            instance: Some(name.to_string()),
            no_scheduler: false,
            scheduler_hold: Some(Duration::from_millis(1500)),
            data_root: Some(project.to_path_buf()),
            tls: None,
            public_url: None,
            sharing_url_lifetime: None,
        },
        listener,
        stop.clone(),
    ));
    Instance { base, stop, task }
}

impl Instance {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Who holds the scheduler, read by a probe that never takes it from a live holder.
async fn scheduler_holder(app: &App) -> String {
    let now = Utc::now();
    let l = app
        .catalog()
        .take_leadership(LEADERSHIP, "probe", now, now)
        .await
        .unwrap();
    if l.holder == "probe" {
        app.catalog()
            .release_leadership(LEADERSHIP, "probe")
            .await
            .unwrap();
        return String::new();
    }
    l.holder
}

async fn wait_for_holder(app: &App, want: impl Fn(&str) -> bool) -> String {
    for _ in 0..100 {
        let h = scheduler_holder(app).await;
        if want(&h) {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the scheduler's holder never became the one expected");
}

#[tokio::test]
async fn two_instances_share_sessions_jobs_cancellation_and_one_scheduler() {
    let url = fresh_schema().await;
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/retail");
    std::fs::copy(
        example.join("lakecdp.toml"),
        dir.path().join("lakecdp.toml"),
    )
    .unwrap();
    let config =
        lakecdp_bench::retail::RetailConfig::scaled(lakecdp_bench::retail::DEFAULT_SEED, 0.1)
            .unwrap();
    lakecdp_bench::retail::generate(&config, &dir.path().join("data")).unwrap();

    let catalog = open_catalog(Path::new(&url)).await.unwrap();
    let app = App::new(Arc::clone(&catalog), dir.path());
    let local = Actor::named(DEFAULT_PRINCIPAL);
    let env = match app.apply(&local, true, &Silent).await.unwrap().0 {
        Saved::Created(env) => env,
        other => panic!("created, not {other:?}"),
    };
    app.add_user(&Actor::local(None), "cole", PASSWORD, false)
        .await
        .unwrap();
    app.set_role(&local, None, "cole", Some(Role::Contributor))
        .await
        .unwrap();

    // a holder that died: nobody runs the scheduler until its time has passed
    let now = Utc::now();
    catalog
        .take_leadership(LEADERSHIP, "dead", now, now + chrono::Duration::seconds(2))
        .await
        .unwrap();
    let a = instance(&url, dir.path(), "a").await;
    let b = instance(&url, dir.path(), "b").await;
    assert_eq!(scheduler_holder(&app).await, "dead");
    let first = wait_for_holder(&app, |h| h == "a" || h == "b").await;

    // sign in through one instance, use the session through the other
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/session", a.base))
        .json(&json!({"name": "cole", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = r.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |base: &str, path: &str| {
        http.get(format!("{base}{path}"))
            .header("cookie", cookie.clone())
    };
    let send = |method: reqwest::Method, base: &str, path: &str| {
        http.request(method, format!("{base}{path}"))
            .header("cookie", cookie.clone())
            .header("x-csrf-token", csrf.clone())
    };
    for base in [&a.base, &b.base] {
        let r = get(base, "/api/environments").send().await.unwrap();
        assert_eq!(r.status(), 200, "both instances answer");
    }

    // a refresh started through A ...
    let refresh = format!("/api/environments/{}/refresh", env.name);
    let r = send(reqwest::Method::POST, &a.base, &refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let run = r.json::<Value>().await.unwrap()["run"]
        .as_str()
        .unwrap()
        .to_string();
    // ... is refused a second time through B (the lease)
    let r = send(reqwest::Method::POST, &b.base, &refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "{}", r.text().await.unwrap());
    // ... is visible through B
    let shown: Value = get(&b.base, &format!("/api/runs/{run}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["run"]["status"], "Running");
    // ... observable through B
    let resp = get(&b.base, &format!("/api/runs/{run}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = Box::pin(resp.bytes_stream());
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !seen.contains("\"type\":\"process_started\"") {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"type\":\"refresh_started\""), "{seen}");
    // ... and cancellable through B, though A runs it
    let r = send(
        reqwest::Method::DELETE,
        &b.base,
        &format!("/api/runs/{run}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    while !seen.contains("\"type\":\"finished\"") {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"status\":\"Canceled\""), "{seen}");
    let shown: Value = get(&a.base, &format!("/api/runs/{run}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["run"]["status"], "Canceled");

    // the scheduler stayed with one instance; stopping it hands it to the other
    assert_eq!(scheduler_holder(&app).await, first);
    let (leader, other) = if first == "a" { (a, b) } else { (b, a) };
    leader.stop().await;
    let next = wait_for_holder(&app, |h| !h.is_empty() && h != first).await;
    assert_ne!(next, first);
    other.stop().await;
}
