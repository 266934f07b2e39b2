//! The web admin centre in a real headless Chromium (Debian's `chromium` driven by its
//! `chromedriver` over WebDriver) against a served instance: signing in, an
//! environment, a refresh watched to its end, a customer found with a typo and its card,
//! and what a Viewer and a principal without a role are refused. A screenshot of each
//! page is kept under the test's target folder (`web-screenshots/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use base64::Engine;
use fantoccini::{Client, ClientBuilder, Locator};
use lakecdp_app::environments::Saved;
use lakecdp_app::{open_catalog, Actor, App, Silent, DEFAULT_PRINCIPAL};
use lakecdp_core::{Environment, Role};
use lakecdp_server::ServerConfig;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "correct horse battery staple";
const ROOT_PASSWORD: &str = "the administrator's long password";

fn program(var: &str, names: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    for name in names {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "{} not found: install Debian's chromium and chromium-driver (scripts/test-services.sh \
         does) or set {var}",
        names.join(" or ")
    )
}

/// A chromedriver on 127.0.0.1 and one headless Chromium session through it.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Browser {
    async fn start(shots: &str) -> Self {
        let driver_bin = program("LAKECDP_TEST_CHROMEDRIVER", &["chromedriver"]);
        let chromium = program("LAKECDP_TEST_CHROMIUM", &["chromium", "chromium-browser"]);
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", driver_bin.display()));
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1366,900",
                    format!("--user-data-dir={}", profile.path().display())],
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        };
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("web-screenshots")
            .join(shots);
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            driver,
            _profile: profile,
            shots,
        }
    }

    /// A screenshot with the element `css` scrolled into view.
    async fn shot_at(&self, css: &str, name: &str) {
        self.client
            .execute(
                "document.querySelector(arguments[0]).scrollIntoView({block: 'center'});",
                vec![json!(css)],
            )
            .await
            .unwrap();
        self.shot(name).await;
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// The text of the element, once it appears (found again when the page was
    /// replaced between finding and reading it).
    async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self
                .client
                .wait()
                .at_most(Duration::from_secs(30))
                .for_element(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("`{css}` appears: {e}"));
            match found.text().await {
                Ok(text) => return text,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("`{css}` cannot be read: {e}"),
            }
        }
    }

    async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    async fn fill(&self, css: &str, value: &str) {
        let e = self.client.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    async fn path(&self) -> String {
        let u = self.client.current_url().await.unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    async fn sign_in(&self, base: &str, name: &str, password: &str) {
        self.client.goto(&format!("{base}/signin")).await.unwrap();
        self.fill("#name", name).await;
        self.fill("#password", password).await;
        self.click("form button[type=submit]").await;
        self.text("#principal").await;
    }

    async fn sign_out(&self) {
        self.click("form.who button").await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.path().await.starts_with("/signin") {
            assert!(
                Instant::now() < deadline,
                "signing out leads to the sign-in page"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The status of a request the page itself sends with its CSRF token.
    async fn fetch_status(&self, method: &str, path: &str) -> u64 {
        self.send_status(method, path, "text=x&principal=vera&role=admin")
            .await
    }

    /// [`Browser::fetch_status`] with this form body for a POST.
    async fn send_status(&self, method: &str, path: &str, body: &str) -> u64 {
        let script = r#"
            const [method, path, body, done] = arguments;
            const headers = JSON.parse(document.body.getAttribute('hx-headers') || '{}');
            const init = {method, headers};
            if (method === 'POST') {
                headers['content-type'] = 'application/x-www-form-urlencoded';
                init.body = body;
            }
            fetch(path, init).then(r => done(r.status), e => done(-1));
        "#;
        self.client
            .execute_async(script, vec![json!(method), json!(path), json!(body)])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(0)
    }

    async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

struct Served {
    dir: tempfile::TempDir,
    _search: tempfile::TempDir,
    base: String,
    app: App,
    env: Environment,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), lakecdp_server::ServeError>>,
}

/// The vault's master key of this test binary, set in `LAKECDP_MASTER_KEY` once, before
/// any test reads the environment (each starts with [`serve`]).
fn master_key() {
    static KEY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).unwrap();
        std::env::remove_var("LAKECDP_MASTER_KEY_FILE");
        std::env::set_var(
            "LAKECDP_MASTER_KEY",
            base64::engine::general_purpose::STANDARD.encode(key),
        );
    });
}

/// The retail quickstart served on 127.0.0.1 with `ada` Admin, `vera` Viewer and
/// `nina` without a role.
async fn serve() -> Served {
    master_key();
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
    let catalog = open_catalog(&dir.path().join(".lakecdp/catalog.db"))
        .await
        .unwrap();
    let app = App::new(Arc::clone(&catalog), dir.path());
    let search = tempfile::tempdir().unwrap();
    app.set_search_dir(search.path());
    let local = Actor::named(DEFAULT_PRINCIPAL);
    let env = match app.apply(&local, true, &Silent).await.unwrap().0 {
        Saved::Created(env) => env,
        other => panic!("created, not {other:?}"),
    };
    app.bootstrap_administrator("root", ROOT_PASSWORD)
        .await
        .unwrap();
    let cli = Actor::local(None);
    for (name, role) in [
        ("ada", Some(Role::Admin)),
        ("vera", Some(Role::Viewer)),
        ("nina", None),
    ] {
        app.add_user(&cli, name, PASSWORD, false).await.unwrap();
        if let Some(role) = role {
            app.set_role(&local, None, name, Some(role)).await.unwrap();
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let task = tokio::spawn(lakecdp_server::serve(
        app.clone(),
        ServerConfig {
            data_root: Some(dir.path().to_path_buf()),
            ..ServerConfig::default()
        },
        listener,
        stop.clone(),
    ));
    Served {
        dir,
        _search: search,
        base,
        app,
        env,
        stop,
        task,
    }
}

/// The published Customer rows and the records behind each profile.
async fn published(s: &Served) -> (Vec<BTreeMap<String, String>>, BTreeMap<String, usize>) {
    let lake = s.app.lake(&s.env).await.unwrap();
    let model = lakecdp_lake::publish::read_model(&lake, &lakecdp_core::Process::Unification)
        .await
        .unwrap()
        .unwrap();
    let mut rows = Vec::new();
    for b in lakecdp_lake::partition::read_entity(
        &lake,
        "Unification",
        model.entity("Customer").unwrap(),
    )
    .await
    .unwrap()
    {
        let cols: Vec<(String, StringArray)> = b
            .schema()
            .fields()
            .iter()
            .zip(b.columns())
            .map(|(f, c)| {
                let t = cast(c, &DataType::Utf8).unwrap();
                (
                    f.name().clone(),
                    t.as_any().downcast_ref::<StringArray>().unwrap().clone(),
                )
            })
            .collect();
        for i in 0..b.num_rows() {
            rows.push(
                cols.iter()
                    .filter(|(_, a)| !a.is_null(i))
                    .map(|(n, a)| (n.clone(), a.value(i).to_string()))
                    .collect(),
            );
        }
    }
    let mut records = BTreeMap::new();
    for b in lakecdp_lake::partition::read_entity(
        &lake,
        "Unification",
        model.entity("AlternateKey").unwrap(),
    )
    .await
    .unwrap()
    {
        let ids = b.column_by_name("CustomerId").unwrap();
        let ids = cast(ids, &DataType::Utf8).unwrap();
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..ids.len() {
            *records.entry(ids.value(i).to_string()).or_insert(0) += 1;
        }
    }
    (rows, records)
}

fn typo(word: &str) -> String {
    let mut c: Vec<char> = word.chars().collect();
    let m = c.len() / 2;
    c.swap(m - 1, m);
    c.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_centre_in_chromium() {
    let s = serve().await;
    let b = Browser::start("admin-centre").await;
    let base = &s.base;
    let env = s.env.name.clone();

    // a page asks for a session first, and comes back after it
    b.client
        .goto(&format!("{base}/environments/{env}"))
        .await
        .unwrap();
    assert_eq!(b.text("h1").await, "Sign in");
    assert!(
        b.path().await.starts_with("/signin?next="),
        "{}",
        b.path().await
    );
    b.shot("01-sign-in").await;
    // a wrong password is said next to the field
    b.fill("#name", "ada").await;
    b.fill("#password", "not the password").await;
    b.click("form button[type=submit]").await;
    let error = b.text("#password-error").await;
    assert!(!error.is_empty());
    assert_eq!(
        b.client
            .find(Locator::Css("#password"))
            .await
            .unwrap()
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    b.shot("02-sign-in-refused").await;
    // the administrator creates a second environment from the retail example's file,
    // and sees its prerequisite table
    b.fill("#name", "root").await;
    b.fill("#password", ROOT_PASSWORD).await;
    b.click("form button[type=submit]").await;
    assert_eq!(b.text("#principal").await, "root");
    b.client.goto(&format!("{base}/")).await.unwrap();
    b.click("#new-environment-link").await;
    let project = std::fs::read_to_string(s.dir.path().join("lakecdp.toml"))
        .unwrap()
        .replace("name = \"retail-demo\"", "name = \"retail-web\"")
        .replace("path = \"lake\"", "path = \"lake-web\"");
    b.client
        .execute(
            "document.getElementById('text').value = arguments[0];",
            vec![json!(project)],
        )
        .await
        .unwrap();
    b.click("#create-environment").await;
    assert_eq!(b.text("#created a").await, "retail-web");
    let checks = b.text("#checks tbody").await;
    assert!(checks.contains("storage reachable ok"), "{checks}");
    assert!(!checks.contains("FAILED"), "{checks}");
    assert!(s.dir.path().join("lake-web/customerinsights").is_dir());
    b.shot_at("#checks", "02b-environment-created").await;
    // the same name again is refused, and said
    b.click("#create-environment").await;
    let refused = b.text("#creation-error").await;
    assert!(refused.contains("already exists"), "{refused}");
    b.sign_out().await;
    // a user who is not an administrator is offered no creation, and is refused
    b.client
        .goto(&format!("{base}/environments/{env}"))
        .await
        .unwrap();
    b.fill("#name", "ada").await;
    b.fill("#password", PASSWORD).await;
    b.click("form button[type=submit]").await;
    assert_eq!(b.text("#principal").await, "ada");
    assert_eq!(
        b.path().await,
        format!("/environments/{env}"),
        "back where it was asked"
    );
    assert_eq!(b.text("h1").await, env);
    assert_eq!(b.text("#role").await, "Admin");
    assert_eq!(b.text("#profiles").await, "none yet");

    // the environments list
    b.client.goto(&format!("{base}/")).await.unwrap();
    let listed = b.text("table tbody").await;
    assert!(listed.contains(&env), "{listed}");
    assert!(listed.contains("local:"), "{listed}");
    assert!(!listed.contains("retail-web"), "no role there: {listed}");
    assert!(
        !b.exists("#new-environment-link").await,
        "not an administrator"
    );
    assert_eq!(b.fetch_status("POST", "/environments/new").await, 403);
    b.shot("03-environments").await;

    // a refresh, watched to its end
    b.click(&format!("a[href='/environments/{env}']")).await;
    b.click("#refresh").await;
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        let status = b.text("#run-status").await;
        if ["Succeeded", "Failed", "Canceled"].contains(&status.as_str()) {
            break status;
        }
        assert!(Instant::now() < deadline, "the refresh ends: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(status, "Succeeded", "{}", b.text("#refresh-status").await);
    let processes = b.text("#refresh-status .tree").await;
    for p in ["ingest:Crm", "unify", "measures", "segments"] {
        assert!(processes.contains(p), "{p} in {processes}");
    }
    b.shot("04-refresh-finished").await;
    let (customers, records) = published(&s).await;
    b.client.refresh().await.unwrap();
    assert_eq!(b.text("#profiles").await, customers.len().to_string());

    // a customer found with a typo in each name, and its card
    let target = customers
        .iter()
        .find(|c| {
            records.get(&c["CustomerId"]).copied().unwrap_or(0) >= 2
                && c.get("FirstName").is_some_and(|n| n.len() >= 5)
                && c.get("LastName").is_some_and(|n| n.len() >= 5)
        })
        .expect("a merged profile with names");
    let id = &target["CustomerId"];
    b.click(&format!("nav a[href='/environments/{env}/customers']"))
        .await;
    let query = format!(
        "{} {}",
        typo(&target["FirstName"]),
        typo(&target["LastName"])
    );
    b.fill("#q", &query).await;
    let count = b.text("#result-count").await;
    assert!(count.contains(&query), "{count}");
    b.click(&format!(
        "#results a[href='/environments/{env}/customers/{id}']"
    ))
    .await;
    assert_eq!(&b.text("#customer-id").await, id);
    let title = b.text("#card-name").await;
    assert!(title.contains(&target["LastName"]), "{title}");
    let rows = b
        .client
        .find_all(Locator::Css("#records tbody tr"))
        .await
        .unwrap()
        .len();
    assert_eq!(rows, records[id], "every source record behind the profile");
    // the explanation loads into the card
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let why = b.text("#explain").await;
        if !why.contains("Loading") {
            assert!(
                b.exists("#explain table").await,
                "a merged profile shows what joined it: {why}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the explanation loads");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.shot("05-customer-card").await;
    // the search page keeps its query in the address, so Back and links work
    b.client.back().await.unwrap();
    assert!(b.path().await.contains("q="), "{}", b.path().await);

    // the segments with their members, and a condition built row by row with its count
    b.click(&format!("nav a[href='/environments/{env}/segments']"))
        .await;
    let listed = b.text("#segments tbody").await;
    assert!(listed.contains("HighValue"), "{listed}");
    b.fill("#column-0", "City").await;
    let city = target["City"].clone();
    b.fill("#value-0", &city).await;
    let count: u64 = b.text("#preview-count").await.parse().unwrap();
    let expected = customers
        .iter()
        .filter(|c| c.get("City") == Some(&city))
        .count() as u64;
    assert_eq!(count, expected, "the preview counts the profiles of {city}");
    assert_eq!(
        b.text("#preview-condition").await,
        format!("City = '{}'", city.replace('\'', "''"))
    );
    b.shot("09-segment-builder").await;
    // a bad column name is said, not run
    b.fill("#column-0", "City; drop").await;
    assert!(b.text("#preview-error").await.starts_with("column:"));

    // a reporting connection to the lake's instance folder, and its age chart
    b.click(&format!("nav a[href='/environments/{env}/reports']"))
        .await;
    assert_eq!(
        b.text("#no-reports").await,
        "No reporting connection you may see."
    );
    let lake_root = s.dir.path().join("lake").display().to_string();
    b.fill("#f-name", "bi").await;
    b.fill("#f-path", &lake_root).await;
    // a folder that is not the instance folder is refused next to its field
    b.fill("#f-folder", "customerinsights/ci_elsewhere").await;
    b.click("#create-reporting").await;
    let err = b.text("#err-folder").await;
    assert!(err.contains("instance folder"), "{err}");
    b.shot("10-reporting-refused").await;
    b.fill("#f-name", "bi").await;
    b.fill("#f-path", &lake_root).await;
    b.fill(
        "#f-folder",
        &format!("customerinsights/{}", s.env.id.folder()),
    )
    .await;
    b.click("#create-reporting").await;
    assert_eq!(b.text("#reporting-status").await, "Ready");
    assert_eq!(b.path().await, format!("/environments/{env}/reports/bi"));
    let chart = b
        .client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#chart-AgeBands"))
        .await
        .unwrap();
    let src = chart.attr("src").await.unwrap().unwrap();
    let svg = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(src.strip_prefix("data:image/svg+xml;base64,").unwrap())
            .unwrap(),
    )
    .unwrap();
    let bands = b.text("#table-AgeBands tbody").await;
    let mut total = 0;
    for line in bands.lines() {
        let (band, n) = line.rsplit_once(' ').unwrap();
        assert!(svg.contains(band), "the chart draws the band {band}");
        total += n.parse::<usize>().unwrap();
    }
    assert_eq!(total, customers.len(), "every profile is in one age band");
    let shown: bool = b
        .client
        .execute(
            "const i = document.getElementById('chart-AgeBands'); return i.complete && i.naturalWidth > 0;",
            vec![],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap();
    assert!(shown, "the browser draws the chart");
    b.shot("11-age-chart").await;

    // roles, tokens and the audit log; a role given and taken back from the page
    b.click(&format!("nav a[href='/environments/{env}/access']"))
        .await;
    let roles = b.text("#roles tbody").await;
    assert!(roles.contains("vera Viewer"), "{roles}");
    let audit = b.text("#audit tbody").await;
    assert!(
        audit.contains("POST /environments/{env}/refresh"),
        "the refresh started from the page is in the audit log: {audit}"
    );
    b.fill("#role-principal", "nina").await;
    b.click("#set-role").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.text("#roles tbody").await.contains("nina Viewer") {
        assert!(Instant::now() < deadline, "the new role is listed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.shot("12-access").await;
    b.fill("#role-principal", "nina").await;
    b.client
        .find(Locator::Css("#role option[value=none]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.click("#set-role").await;
    while b.text("#roles tbody").await.contains("nina") {
        assert!(Instant::now() < deadline, "the role is taken back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.sign_out().await;
    b.shot("06-signed-out").await;

    // a Viewer sees no edit controls and is refused if it posts anyway
    b.sign_in(base, "vera", PASSWORD).await;
    b.client
        .goto(&format!("{base}/environments/{env}"))
        .await
        .unwrap();
    assert_eq!(b.text("#role").await, "Viewer");
    assert!(
        !b.exists("#refresh").await,
        "no refresh button for a Viewer"
    );
    b.shot("07-viewer").await;
    assert_eq!(
        b.fetch_status("POST", &format!("/environments/{env}/refresh"))
            .await,
        403
    );
    // but it may search
    b.client
        .goto(&format!("{base}/environments/{env}/customers?q={id}"))
        .await
        .unwrap();
    assert!(b.text("#results").await.contains(id.as_str()));
    // but not the reports it was not granted, from the page or the API
    b.client
        .goto(&format!("{base}/environments/{env}/reports/bi"))
        .await
        .unwrap();
    assert_eq!(b.text("h1").await, "Forbidden");
    assert!(!b.exists("#chart-AgeBands").await);
    b.client
        .goto(&format!("{base}/environments/{env}/reports"))
        .await
        .unwrap();
    assert_eq!(
        b.text("#no-reports").await,
        "No reporting connection you may see."
    );
    assert!(
        !b.exists("#reporting-form").await,
        "a Viewer creates no connection"
    );
    assert_eq!(
        b.fetch_status(
            "GET",
            &format!("/api/environments/{env}/reporting/bi/report")
        )
        .await,
        403
    );
    b.shot("13-viewer-refused-report").await;
    // a Viewer reads the roles, but neither the audit log nor the role form
    b.client
        .goto(&format!("{base}/environments/{env}/access"))
        .await
        .unwrap();
    assert!(b.text("#roles tbody").await.contains("vera Viewer"));
    assert!(!b.exists("#audit").await && !b.exists("#role-form").await);
    assert_eq!(
        b.fetch_status("POST", &format!("/environments/{env}/access/roles"))
            .await,
        403,
        "and cannot give roles"
    );
    b.sign_out().await;

    // a principal without a role sees nothing of the environment, page or API
    b.sign_in(base, "nina", PASSWORD).await;
    b.client
        .goto(&format!("{base}/environments/{env}"))
        .await
        .unwrap();
    assert_eq!(b.text("h1").await, "Forbidden");
    b.client
        .goto(&format!("{base}/environments/{env}/customers/{id}"))
        .await
        .unwrap();
    assert_eq!(b.text("h1").await, "Forbidden");
    let body = b.text("main").await;
    assert!(!body.contains(&target["LastName"]), "no data leaks: {body}");
    b.shot("08-no-role").await;
    assert_eq!(
        b.fetch_status("GET", &format!("/api/environments/{env}/customers/{id}"))
            .await,
        403
    );
    assert_eq!(
        b.fetch_status("GET", &format!("/api/environments/{env}/customers?q=a"))
            .await,
        403
    );
    b.client.goto(&format!("{base}/")).await.unwrap();
    assert!(b.text("main").await.contains("no role in any environment"));

    b.stop().await;
    s.stop.cancel();
    s.task.await.unwrap().unwrap();
    drop(s.dir);
}

/// A number as a page shows it (grouped with narrow spaces).
fn number(text: &str) -> u64 {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("`{text}` is a number"))
}

/// Wait until `css`'s text holds `what`.
async fn until_text(b: &Browser, css: &str, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let text = b.text(css).await;
        if text.contains(what) {
            return text;
        }
        assert!(Instant::now() < deadline, "`{css}` shows {what}: {text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Wait until the run shown in `within` has ended; it must have succeeded.
async fn until_succeeded(b: &Browser, within: &str) {
    let deadline = Instant::now() + Duration::from_secs(240);
    let css = format!("{within} #run-status");
    loop {
        let status = b.text(&css).await;
        if ["Succeeded", "Failed", "Canceled"].contains(&status.as_str()) {
            assert_eq!(status, "Succeeded", "{}", b.text(within).await);
            return;
        }
        assert!(Instant::now() < deadline, "the run ends: {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Rows of a published entity.
async fn rows_of(s: &Served, process: lakecdp_core::Process, entity: &str) -> u64 {
    let lake = s.app.lake(&s.env).await.unwrap();
    let model = lakecdp_lake::publish::read_model(&lake, &process)
        .await
        .unwrap()
        .unwrap();
    lakecdp_lake::partition::read_entity(&lake, &process.folder(), model.entity(entity).unwrap())
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows() as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_and_administration_pages_in_chromium() {
    let s = serve().await;
    let b = Browser::start("data-and-administration").await;
    let base = &s.base;
    let env = s.env.name.clone();
    b.sign_in(base, "ada", PASSWORD).await;

    // a refresh whose end only the run's event stream can announce (the run fragment
    // does not poll): the tree ends Succeeded without the page being loaded again
    b.client
        .goto(&format!("{base}/environments/{env}"))
        .await
        .unwrap();
    b.click("#refresh").await;
    let run = b
        .client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#refresh-status .run"))
        .await
        .unwrap();
    assert!(
        run.attr("data-events").await.unwrap().is_some(),
        "a run in progress follows its events"
    );
    assert_eq!(
        run.attr("hx-trigger").await.unwrap().as_deref(),
        Some("run-ended")
    );
    // a process shown ended while the run itself still shows Running: only the event
    // stream marks it so (the fragment is not loaded again before the run ends)
    let marked = r#"
        const done = [...document.querySelectorAll('#refresh-status li[data-process] span:first-child')]
            .some(s => s.textContent === 'Succeeded');
        const status = document.getElementById('run-status');
        return done && status !== null && status.textContent === 'Running';
    "#;
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut live = false;
    while Instant::now() < deadline {
        if b.client.execute(marked, vec![]).await.unwrap() == json!(true) {
            live = true;
            break;
        }
        let status = b.text("#run-status").await;
        if status != "Running" && status != "Queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        live,
        "a process was marked ended from the event stream while the run ran"
    );
    until_succeeded(&b, "#refresh-status").await;
    let tree = b.text("#refresh-status .tree").await;
    assert!(tree.contains("ingest:Loyalty"), "{tree}");
    b.shot("01-refresh-followed").await;

    // sources: what each load read, wrote and kept as corrupt, and the corrupt rows
    b.click(&format!("nav a[href='/environments/{env}/sources']"))
        .await;
    assert_eq!(b.text("#source-s2").await, "Loyalty");
    let members = lakecdp_core::Process::Ingestion("Loyalty".into());
    let written = rows_of(&s, members.clone(), "Members").await;
    let corrupt = rows_of(&s, members, "Loyalty_Members_corrupt").await;
    assert!(corrupt > 0, "the retail loyalty file has defects");
    assert_eq!(number(&b.text("#written-s2-t0").await), written);
    assert_eq!(number(&b.text("#corrupt-count-s2-t0").await), corrupt);
    assert_eq!(
        number(&b.text("#read-s2-t0").await),
        written + corrupt,
        "read = written + corrupt for a full load"
    );
    b.click("#corrupt-button-s2-t0").await;
    let sample = b
        .client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#corrupt-table-s2-t0"))
        .await
        .unwrap();
    let lines = sample
        .find_all(Locator::Css("tbody tr"))
        .await
        .unwrap()
        .len() as u64;
    assert_eq!(lines, corrupt.min(20));
    let first = b.text("#corrupt-table-s2-t0 tbody tr").await;
    assert!(first.contains("loyalty_members.jsonl"), "{first}");
    b.shot_at("#corrupt-table-s2-t0", "02-sources").await;

    // unification: the last run's figures, the rules previewed and saved as a revision
    b.click(&format!("nav a[href='/environments/{env}/unification']"))
        .await;
    let (customers, _) = published(&s).await;
    assert_eq!(
        number(&b.text("#last-h + dl .profiles").await),
        customers.len() as u64
    );
    let rules = b.text(".rule-matches tbody").await;
    assert!(rules.contains("same name and phone"), "{rules}");
    let sizes = b.text(".profile-sizes tbody").await;
    let total: u64 = sizes
        .lines()
        .map(|l| number(l.split_once(' ').unwrap().1))
        .sum();
    assert_eq!(total, customers.len() as u64, "every profile has one size");
    let section: String = b
        .client
        .execute("return document.getElementById('rules').value;", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert!(section.contains("[[unification.tables]]"), "{section}");
    assert!(
        !section.contains("[[sources]]"),
        "only the rules: {section}"
    );
    let edited = section.replacen("[unification]", "[unification]\nmax_block = 500", 1);
    b.client
        .execute(
            "document.getElementById('rules').value = arguments[0];",
            vec![json!(edited)],
        )
        .await
        .unwrap();
    b.click("#preview-rules").await;
    let preview = until_text(&b, "#rules-result", "nothing was published").await;
    assert!(preview.contains("Pairs per rule"), "{preview}");
    b.shot_at("#rules-result", "03-unification-preview").await;
    b.click("#save-rules").await;
    assert_eq!(b.text("#saved-revision").await, "2");
    let (_, revisions) = s
        .app
        .revisions(&Actor::local(None), Some(&env))
        .await
        .unwrap();
    let stored = &revisions[0];
    assert_eq!(stored.number, 2);
    assert!(stored.text.contains("max_block = 500"));
    assert!(
        stored.text.contains("[[sources]]"),
        "the rest of the project is kept"
    );
    b.shot("04-unification-saved").await;
    // a section with another part of the project is refused, and said
    b.client
        .execute(
            "document.getElementById('rules').value = '[environment]\\nname = \"x\"\\n';",
            vec![],
        )
        .await
        .unwrap();
    b.click("#save-rules").await;
    let refused = until_text(&b, "#rules-result", "another part").await;
    assert!(refused.contains("`environment`"), "{refused}");

    // connections: a secret is a write-only field, never shown again
    b.click(&format!("nav a[href='/environments/{env}/connections']"))
        .await;
    let folder = s.dir.path().join("archive");
    std::fs::create_dir_all(&folder).unwrap();
    b.fill("#connection-name", "warehouse").await;
    b.client
        .find(Locator::Css("#connection-kind option[value=postgresql]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let kind = b.client.find(Locator::Css("#field-password")).await;
    let kind = match kind {
        Ok(k) => k,
        Err(_) => {
            until_text(&b, "#connection-fields", "password").await;
            b.client
                .find(Locator::Css("#field-password"))
                .await
                .unwrap()
        }
    };
    assert_eq!(
        kind.attr("type").await.unwrap().as_deref(),
        Some("password")
    );
    b.fill("#field-host", "127.0.0.1").await;
    b.fill("#field-user", "exporter").await;
    b.fill("#field-sslmode", "disable").await;
    b.fill("#field-password", "pw-never-shown-9731").await;
    b.click("#add-connection").await;
    let listed = until_text(&b, "#connections tbody", "warehouse").await;
    assert!(listed.contains("host = 127.0.0.1"), "{listed}");
    assert!(listed.contains("password"), "the secret's name: {listed}");
    let html = b.client.source().await.unwrap();
    assert!(
        !html.contains("pw-never-shown-9731"),
        "the secret is not echoed"
    );
    // a local folder for an export
    b.fill("#connection-name", "archive").await;
    b.client
        .find(Locator::Css("#connection-kind option[value=local]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(&b, "#connection-fields", "path").await;
    b.fill("#field-path", &folder.display().to_string()).await;
    b.click("#add-connection").await;
    until_text(&b, "#connections tbody", "archive").await;
    b.shot("05-connections").await;

    // exports: one added, run now, followed to its end, in the history
    b.click(&format!("nav a[href='/environments/{env}/exports']"))
        .await;
    b.fill("#export-name", "nightly").await;
    b.client
        .find(Locator::Css("#export-connection option[value=archive]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.click("input[name=table][value='Unification/Customer']")
        .await;
    b.click("#add-export").await;
    until_text(&b, "#export-e0", "nightly").await;
    b.click("#run-e0").await;
    until_succeeded(&b, "#export-result-e0").await;
    b.client.refresh().await.unwrap();
    let history = b.text("#export-e0 ~ .history tbody").await;
    assert!(history.contains("Succeeded"), "{history}");
    let files = walk(&folder);
    assert!(
        files.iter().any(|f| f.contains("Customer")),
        "the export wrote the Customer table: {files:?}"
    );
    b.shot("06-exports").await;

    // tokens: the value shown once, then revoked
    b.click(&format!("nav a[href='/environments/{env}/access']"))
        .await;
    b.fill("#token-name", "pipeline").await;
    b.click("#create-token").await;
    let value = b.text("#token-value").await;
    assert!(value.len() > 30, "{value}");
    let token = s.app.token_actor(&value).await;
    assert!(token.is_ok(), "the value shown is the token");
    b.client.refresh().await.unwrap();
    assert!(
        !b.client.source().await.unwrap().contains(&value),
        "shown once"
    );
    let tokens = b.text("#tokens tbody").await;
    assert!(tokens.contains("pipeline Viewer ada"), "{tokens}");
    b.click("#tokens button").await;
    // the page asks first
    b.client.accept_alert().await.unwrap();
    until_text(&b, "#tokens tbody", "revoked").await;
    assert!(
        s.app.token_actor(&value).await.is_err(),
        "refused once revoked"
    );
    b.shot("07-tokens").await;

    // groups are the catalog administrators'
    b.client.goto(&format!("{base}/groups")).await.unwrap();
    assert_eq!(b.text("h1").await, "Forbidden");
    b.sign_out().await;
    b.sign_in(base, "root", ROOT_PASSWORD).await;
    b.client.goto(&format!("{base}/groups")).await.unwrap();
    b.fill("#group-name", "analysts").await;
    b.click("#create-group").await;
    until_text(&b, "#groups tbody", "analysts").await;
    b.fill("#member-name", "vera").await;
    b.click("#change-member").await;
    until_text(&b, "#groups tbody", "analysts vera").await;
    b.shot("08-groups").await;
    b.sign_out().await;

    // a Viewer reads the sources and the rules, and changes nothing
    b.sign_in(base, "vera", PASSWORD).await;
    b.client
        .goto(&format!("{base}/environments/{env}/unification"))
        .await
        .unwrap();
    let rules = b.client.find(Locator::Css("#rules")).await.unwrap();
    assert!(rules.attr("readonly").await.unwrap().is_some());
    assert!(!b.exists("#save-rules").await);
    assert_eq!(
        b.send_status(
            "POST",
            &format!("/environments/{env}/unification"),
            "rules=%5Bunification%5D"
        )
        .await,
        403
    );
    b.client
        .goto(&format!("{base}/environments/{env}/exports"))
        .await
        .unwrap();
    assert!(b.text("#export-e0").await.contains("nightly"));
    assert!(!b.exists("#run-e0").await && !b.exists("#export-form").await);
    assert_eq!(
        b.fetch_status("POST", &format!("/environments/{env}/exports/nightly/run"))
            .await,
        403
    );
    assert_eq!(
        b.send_status(
            "POST",
            &format!("/environments/{env}/access/tokens"),
            "name=mine&role=admin"
        )
        .await,
        403
    );
    b.client
        .goto(&format!("{base}/environments/{env}/sources"))
        .await
        .unwrap();
    assert_eq!(number(&b.text("#written-s2-t0").await), written);
    b.shot("09-viewer").await;
    b.sign_out().await;

    // a principal without a role sees neither page, and its forms are refused for the
    // role before anything in them is judged
    b.sign_in(base, "nina", PASSWORD).await;
    for page in ["sources", "unification", "exports", "connections"] {
        b.client
            .goto(&format!("{base}/environments/{env}/{page}"))
            .await
            .unwrap();
        assert_eq!(b.text("h1").await, "Forbidden", "{page}");
    }
    assert!(!b.text("main").await.contains("Loyalty"));
    for (path, body) in [
        (
            "access/tokens",
            "name=mine&role=nonsense&days=99999999999999",
        ),
        ("connections", "name=x&kind=nonsense"),
        ("exports", "name=x"),
        ("unification", "rules=not+toml+%5B"),
    ] {
        assert_eq!(
            b.send_status("POST", &format!("/environments/{env}/{path}"), body)
                .await,
            403,
            "{path}"
        );
    }
    assert_eq!(
        b.send_status(
            "POST",
            "/groups/members",
            "group=analysts&member=nina&action=nonsense"
        )
        .await,
        403
    );

    b.stop().await;
    s.stop.cancel();
    s.task.await.unwrap().unwrap();
    drop(s.dir);
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
