//! The Delta Sharing endpoint read by its real client: `delta-sharing` from PyPI
//! (`LAKECDP_TEST_PYTHON` names a Python that has it; `scripts/test.sh` sets it) loads
//! shared tables through a profile file, row for row the lake's; and the file URLs it
//! is given are signed, expire, and are served with ranges.

use std::path::Path;
use std::sync::Arc;

use arrow::array::Array;
use lakecdp_app::environments::Saved;
use lakecdp_app::sharing::EnableSharing;
use lakecdp_app::{
    open_catalog, Actor, App, CancellationToken, RefreshRequest, Silent, DEFAULT_PRINCIPAL,
};
use lakecdp_core::{Role, RunStatus};
use lakecdp_lake::partition::read_entity;
use lakecdp_lake::publish::read_model;
use lakecdp_lake::Process;
use lakecdp_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::Value;

/// The retail quickstart at a tenth of its size, publishing Parquet, refreshed once.
async fn refreshed_retail(dir: &Path) -> (App, lakecdp_core::Environment) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/retail");
    let project = std::fs::read_to_string(example.join("lakecdp.toml"))
        .unwrap()
        .replace("output_format = \"csv\"", "output_format = \"parquet\"");
    assert!(project.contains("output_format = \"parquet\""));
    std::fs::write(dir.join("lakecdp.toml"), project).unwrap();
    let config =
        lakecdp_bench::retail::RetailConfig::scaled(lakecdp_bench::retail::DEFAULT_SEED, 0.1)
            .unwrap();
    lakecdp_bench::retail::generate(&config, &dir.join("data")).unwrap();
    let catalog = open_catalog(&dir.join(".lakecdp/catalog.db"))
        .await
        .unwrap();
    let app = App::new(Arc::clone(&catalog), dir);
    let admin = Actor::named(DEFAULT_PRINCIPAL);
    let env = match app.apply(&admin, true, &Silent).await.unwrap().0 {
        Saved::Created(env) => env,
        other => panic!("created, not {other:?}"),
    };
    refresh(&app).await;
    (app, env)
}

async fn refresh(app: &App) {
    let report = app
        .refresh(
            &Actor::named(DEFAULT_PRINCIPAL),
            &RefreshRequest::default(),
            CancellationToken::new(),
            Arc::new(Silent),
        )
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
}

/// The environment's sharing enabled, a recipient token `partner` (in its Reader group),
/// and a server on 127.0.0.1 over `app`
/// (with `public`, told it is reached at `http://localhost:<port>`): the token, the
/// sharing endpoint's URL, and how to stop the server.
async fn serve(
    app: &App,
    env: &lakecdp_core::Environment,
    public: bool,
) -> (
    String,
    String,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), lakecdp_server::ServeError>>,
) {
    // sharing bound to two groups every Debian system has (the tests run as root)
    let admin = Actor::named(DEFAULT_PRINCIPAL);
    app.enable_sharing(
        &admin,
        Some(&env.name),
        &EnableSharing {
            storage_reader: Some("users".into()),
            storage_contributor: Some("staff".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let token = app
        .add_sharing_recipient(&admin, Some(&env.name), "partner", None)
        .await
        .unwrap()
        .secret;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let endpoint = format!("http://{address}/delta-sharing");
    let stop = CancellationToken::new();
    let server = tokio::spawn(lakecdp_server::serve(
        app.clone(),
        ServerConfig {
            public_url: public.then(|| format!("http://localhost:{}", address.port())),
            ..ServerConfig::default()
        },
        listener,
        stop.clone(),
    ));
    (token, endpoint, stop, server)
}

/// What `read_share.py` printed.
fn read_with_client(profile: &Path, tables: &[&str]) -> Result<Value, String> {
    let python = std::env::var("LAKECDP_TEST_PYTHON").expect(
        "LAKECDP_TEST_PYTHON names a Python with the delta-sharing client (scripts/test.sh sets it)",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sharing/read_share.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(profile)
        .args(tables)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

fn profile(dir: &Path, name: &str, endpoint: &str, token: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.share"));
    std::fs::write(
        &path,
        serde_json::json!({
            "shareCredentialsVersion": 1,
            "endpoint": endpoint,
            "bearerToken": token,
        })
        .to_string(),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delta_sharing_client_loads_shared_tables_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let (app, env) = refreshed_retail(dir.path()).await;
    let (reader, endpoint, stop, server) = serve(&app, &env, false).await;

    // what lakecdp itself reads from the lake
    let lake = app.lake(&env).await.unwrap();
    let model = read_model(&lake, &Process::Unification)
        .await
        .unwrap()
        .unwrap();
    let customers = read_entity(&lake, "Unification", model.entity("Customer").unwrap())
        .await
        .unwrap();
    let mut ids: Vec<String> = customers
        .iter()
        .flat_map(|b| {
            let ids = arrow::compute::cast(
                b.column_by_name("CustomerId").unwrap(),
                &arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let ids = ids
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap()
                .clone();
            (0..ids.len())
                .map(move |i| ids.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    ids.sort();
    assert!(ids.len() > 1000, "{} profiles", ids.len());

    let share = env.name.clone();
    let customer = format!("{share}.Unification.Customer");
    let profile_file = profile(dir.path(), "reader", &endpoint, &reader);
    let client = tokio::task::spawn_blocking({
        let (profile_file, customer) = (profile_file.clone(), customer.clone());
        move || read_with_client(&profile_file, &[&customer])
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("the client reads the share: {e}"));
    let tables: Vec<&str> = client["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for expected in [
        customer.as_str(),
        &format!("{share}.Unification.AlternateKey"),
        &format!("{share}.Segments.SegmentMembership"),
        &format!("{share}.DataIngestion_Crm.Contacts"),
    ] {
        assert!(tables.contains(&expected), "{expected} in {tables:?}");
    }
    let loaded = &client[&customer];
    assert_eq!(loaded["rows"].as_u64().unwrap() as usize, ids.len());
    let columns: Vec<&str> = model
        .entity("Customer")
        .unwrap()
        .attributes
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(loaded["columns"], serde_json::json!(columns));
    assert_eq!(loaded["first"], serde_json::json!(ids));

    // a Viewer of the environment outside the Reader group sees no share; a revoked
    // recipient is refused
    let http = reqwest::Client::new();
    let tables_url = format!("{endpoint}/shares/{share}/all-tables");
    let viewer = app
        .create_token(
            &Actor::named(DEFAULT_PRINCIPAL),
            Some(&env.name),
            "viewer",
            Role::Viewer,
            None,
        )
        .await
        .unwrap()
        .secret;
    let shares = get_json(&http, &format!("{endpoint}/shares"), &viewer).await;
    assert_eq!(shares["items"], serde_json::json!([]), "{shares}");
    let outside = http
        .get(&tables_url)
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);
    app.revoke_token(&Actor::named(DEFAULT_PRINCIPAL), Some(&env.name), "partner")
        .await
        .unwrap();
    let revoked = http
        .get(&tables_url)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
    let refused = tokio::task::spawn_blocking(move || read_with_client(&profile_file, &[]))
        .await
        .unwrap();
    assert!(refused.is_err(), "a revoked token reads nothing");
    let anonymous = http.get(&tables_url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    stop.cancel();
    server.await.unwrap().unwrap();
}

/// `POST {table}/query` with `body`, as the holder of `token`.
async fn query(http: &reqwest::Client, table: &str, token: &str, body: Value) -> reqwest::Response {
    http.post(format!("{table}/query"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The lines of a query of the current version, which must succeed.
async fn query_lines(http: &reqwest::Client, table: &str, token: &str) -> Vec<Value> {
    let answer = query(http, table, token, serde_json::json!({})).await;
    assert_eq!(answer.status(), StatusCode::OK);
    answer
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The version the version route answers.
async fn version(http: &reqwest::Client, table: &str, token: &str) -> String {
    let answer = http
        .get(format!("{table}/version"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    answer.headers()["delta-table-version"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_urls_are_signed_ranged_and_outlive_a_republish() {
    let dir = tempfile::tempdir().unwrap();
    let (app, env) = refreshed_retail(dir.path()).await;
    let (token, endpoint, stop, server) = serve(&app, &env, true).await;
    let http = reqwest::Client::new();
    let table = format!(
        "{endpoint}/shares/{}/schemas/Unification/tables/Customer",
        env.name
    );

    assert_eq!(version(&http, &table, &token).await, "1");

    let lines = query_lines(&http, &table, &token).await;
    assert_eq!(
        lines[0],
        serde_json::json!({"protocol": {"minReaderVersion": 1}})
    );
    let schema: Value =
        serde_json::from_str(lines[1]["metaData"]["schemaString"].as_str().unwrap()).unwrap();
    assert_eq!(schema["fields"][0]["name"], "CustomerId");
    let file = &lines[2]["file"];
    let url = file["url"].as_str().unwrap().to_string();
    let size = file["size"].as_u64().unwrap();
    // the server was told its public address: the file URLs start with it
    let public = endpoint.replace("127.0.0.1", "localhost");
    assert!(url.starts_with(&format!("{public}/files/")), "{url}");
    assert!(
        !url.contains("Unification/Customer"),
        "no lake path in {url}"
    );

    // HEAD gives the size; a range gives those bytes (the Parquet footer's magic)
    let head = http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], size.to_string().as_str());
    assert_eq!(head.headers()["accept-ranges"], "bytes");
    let tail = http
        .get(&url)
        .header("range", "bytes=-4")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        tail.headers()["content-range"],
        format!("bytes {}-{}/{size}", size - 4, size - 1).as_str()
    );
    assert_eq!(&tail.bytes().await.unwrap()[..], b"PAR1");

    // a tampered URL is refused: one character of its signed part changed
    let at = url.find("/files/").unwrap() + "/files/".len();
    let mut forged = url.clone();
    let first = if &url[at..=at] == "A" { "B" } else { "A" };
    forged.replace_range(at..=at, first);
    assert_eq!(
        http.get(&forged).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // the folder is published again: the version moves on, and the URL given before
    // still reads the whole file of the run it named
    refresh(&app).await;
    assert_eq!(version(&http, &table, &token).await, "2");
    let whole = http.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.bytes().await.unwrap().len() as u64, size);

    // only the current version is served
    let old = query(&http, &table, &token, serde_json::json!({"version": 1})).await;
    assert_eq!(old.status(), StatusCode::BAD_REQUEST);
    let body: Value = old.json().await.unwrap();
    assert_eq!(body["errorCode"], "INVALID_PARAMETER_VALUE");

    // a server whose URLs live one second: the URL reads at once, and is refused after
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let brief = format!("http://{}/delta-sharing", listener.local_addr().unwrap());
    let brief_stop = CancellationToken::new();
    let brief_server = tokio::spawn(lakecdp_server::serve(
        app.clone(),
        ServerConfig {
            sharing_url_lifetime: Some(std::time::Duration::from_secs(1)),
            ..ServerConfig::default()
        },
        listener,
        brief_stop.clone(),
    ));
    let brief_table = format!(
        "{brief}/shares/{}/schemas/Unification/tables/Customer",
        env.name
    );
    let lines = query_lines(&http, &brief_table, &token).await;
    let short = lines[2]["file"]["url"].as_str().unwrap().to_string();
    assert_eq!(
        http.head(&short).send().await.unwrap().status(),
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    assert_eq!(
        http.get(&short).send().await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "an expired URL"
    );
    brief_stop.cancel();
    brief_server.await.unwrap().unwrap();

    stop.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_is_set_up_through_the_api_by_the_environments_admin() {
    let dir = tempfile::tempdir().unwrap();
    let (app, env) = refreshed_retail(dir.path()).await;
    let (_, endpoint, stop, server) = serve(&app, &env, false).await;
    let api = endpoint.replace("/delta-sharing", "/api");
    let admin = Actor::named(DEFAULT_PRINCIPAL);
    let token = |name: &'static str, role: Role| {
        let (app, env, admin) = (app.clone(), env.name.clone(), admin.clone());
        async move {
            app.create_token(&admin, Some(&env), name, role, None)
                .await
                .unwrap()
                .secret
        }
    };
    let owner = token("owner", Role::Admin).await;
    let viewer = token("looker", Role::Viewer).await;
    let http = reqwest::Client::new();
    let sharing = format!("{api}/environments/{}/sharing", env.name);

    let status = get_json(&http, &sharing, &owner).await;
    assert_eq!(status["storage"], "local");
    assert_eq!(status["rules"]["drifted"], 0);
    assert!(status["identifier"]
        .as_str()
        .unwrap()
        .ends_with("/customerinsights?rg=100&cg=50"));
    let repaired = http
        .post(format!("{sharing}/repair"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(repaired.status(), StatusCode::OK);
    // a Viewer sees the status and may change nothing
    let refused = http
        .post(&sharing)
        .bearer_auth(&viewer)
        .json(&serde_json::json!({"storage_reader": "users", "storage_contributor": "staff"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // a recipient made through the API reads the share
    let made = http
        .post(format!("{sharing}/recipients"))
        .bearer_auth(&owner)
        .json(&serde_json::json!({"name": "fabrikam", "expires_days": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let made: Value = made.json().await.unwrap();
    let recipient = made["token"].as_str().unwrap();
    let shares = get_json(&http, &format!("{endpoint}/shares"), recipient).await;
    assert_eq!(shares["items"][0]["name"], env.name);

    // attachments are the catalog administrator's, not an environment token's
    let attachments = http
        .get(format!("{api}/sharing/attachments"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(attachments.status(), StatusCode::FORBIDDEN);

    stop.cancel();
    server.await.unwrap().unwrap();
}

/// `GET url` as the holder of `token`, which must answer 200 with JSON.
async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let answer = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "GET {url}");
    answer.json().await.unwrap()
}
