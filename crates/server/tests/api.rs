//! The server over real HTTP on 127.0.0.1, with reqwest as the client: authentication,
//! sessions, CSRF, tokens, lock-out, the role matrix of the routes, refresh jobs with
//! their event stream and cancellation, the audit log and the OpenAPI description.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lakecdp_app::environments::Saved;
use lakecdp_app::{open_catalog, Actor, App, SignInPolicy, Silent, DEFAULT_PRINCIPAL};
use lakecdp_core::Role;
use lakecdp_server::ServerConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "correct horse battery staple";
const ROOT_PASSWORD: &str = "root password that is long enough";

fn retail_project(dir: &Path) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/retail");
    std::fs::copy(example.join("lakecdp.toml"), dir.join("lakecdp.toml")).unwrap();
    let config =
        lakecdp_bench::retail::RetailConfig::scaled(lakecdp_bench::retail::DEFAULT_SEED, 0.1)
            .unwrap();
    lakecdp_bench::retail::generate(&config, &dir.join("data")).unwrap();
}

/// A server on 127.0.0.1 over the retail quickstart, with users of every role:
/// `vera` Viewer, `cole` Contributor, `ada` Admin, `nina` no role, `root` administrator.
struct Server {
    _dir: tempfile::TempDir,
    base: String,
    http: reqwest::Client,
    env: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), lakecdp_server::ServeError>>,
}

#[derive(Clone, Debug)]
enum Auth {
    None,
    Session {
        cookie: String,
        csrf: String,
    },
    /// A session cookie sent without its CSRF token.
    CookieOnly(String),
    Bearer(String),
}

fn test_policy() -> SignInPolicy {
    SignInPolicy {
        delay_per_failure: Duration::from_millis(5),
        ..SignInPolicy::default()
    }
}

async fn start(policy: SignInPolicy) -> Server {
    let dir = tempfile::tempdir().unwrap();
    retail_project(dir.path());
    let catalog = open_catalog(&dir.path().join(".lakecdp/catalog.db"))
        .await
        .unwrap();
    let app = App::new(Arc::clone(&catalog), dir.path());
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
        ("vera", Some(Role::Viewer)),
        ("cole", Some(Role::Contributor)),
        ("ada", Some(Role::Admin)),
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
            policy,
            data_root: Some(dir.path().to_path_buf()),
            ..ServerConfig::default()
        },
        listener,
        stop.clone(),
    ));
    Server {
        _dir: dir,
        base,
        http: reqwest::Client::new(),
        env: env.name,
        stop,
        task,
    }
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

impl Server {
    async fn call(&self, method: Method, path: &str, auth: &Auth, body: Option<Value>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        match auth {
            Auth::None => {}
            Auth::Session { cookie, csrf } => {
                req = req
                    .header("cookie", format!("lakecdp_session={cookie}"))
                    .header("x-csrf-token", csrf);
            }
            Auth::CookieOnly(cookie) => {
                req = req.header("cookie", format!("lakecdp_session={cookie}"));
            }
            Auth::Bearer(t) => req = req.bearer_auth(t),
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        Reply {
            status,
            headers,
            text,
        }
    }

    async fn sign_in_reply(&self, name: &str, password: &str) -> Reply {
        self.call(
            Method::POST,
            "/api/session",
            &Auth::None,
            Some(json!({"name": name, "password": password})),
        )
        .await
    }

    async fn sign_in(&self, name: &str, password: &str) -> Auth {
        let r = self.sign_in_reply(name, password).await;
        assert_eq!(r.status, StatusCode::OK, "{name} signs in: {}", r.text);
        let cookie = r
            .headers
            .get("set-cookie")
            .expect("a session cookie")
            .to_str()
            .unwrap()
            .to_string();
        for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        let value = cookie
            .split(';')
            .next()
            .and_then(|kv| kv.strip_prefix("lakecdp_session="))
            .unwrap()
            .to_string();
        assert!(
            !r.text.contains(&value),
            "the session token is only in the cookie"
        );
        let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
        Auth::Session {
            cookie: value,
            csrf,
        }
    }

    /// The project file as applied, with a line added at its end.
    fn project_text(&self, extra: &str) -> String {
        let text = std::fs::read_to_string(self._dir.path().join("lakecdp.toml")).unwrap();
        format!("{text}\n{extra}\n")
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn health_checks_answer_without_credentials_and_nothing_else_does() {
    let s = start(test_policy()).await;
    assert_eq!(
        s.call(Method::GET, "/healthz", &Auth::None, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        s.call(Method::GET, "/readyz", &Auth::None, None)
            .await
            .status,
        StatusCode::OK
    );
    let doc = s
        .call(Method::GET, "/api/openapi.json", &Auth::None, None)
        .await
        .json();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{env}", &s.env)
            .replace("{id}", "20260101T000000000Z-00000000")
            .replace("{number}", "1")
            .replace(['{', '}'], "");
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() || (path == "/api/session" && method == "post") {
                continue;
            }
            let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let r = s.call(m, &concrete, &Auth::None, Some(json!({}))).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {}",
                r.text
            );
            assert_eq!(
                r.headers.get("content-type").unwrap(),
                "application/problem+json",
                "{method} {path}"
            );
            let problem = r.json();
            assert_eq!(problem["status"], 401);
            assert_eq!(problem["type"], "urn:lakecdp:problem:unauthenticated");
            checked += 1;
        }
    }
    assert!(checked >= 25, "every route was tried ({checked})");
    // a made-up token is refused too
    let r = s
        .call(
            Method::GET,
            "/api/environments",
            &Auth::Bearer("lcdp_x_y".into()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn the_openapi_description_is_3_1_and_lists_every_route() {
    let s = start(test_policy()).await;
    let doc = s
        .call(Method::GET, "/api/openapi.json", &Auth::None, None)
        .await
        .json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/session", &["get", "post", "delete"][..]),
        ("/api/environments", &["get"]),
        ("/api/environments/{env}", &["get"]),
        ("/api/environments/{env}/revisions", &["get", "post"]),
        ("/api/environments/{env}/diff", &["post"]),
        ("/api/environments/{env}/sources", &["get"]),
        ("/api/environments/{env}/segments", &["get"]),
        ("/api/environments/{env}/exports", &["get"]),
        ("/api/environments/{env}/revisions/{number}", &["get"]),
        ("/api/environments/{env}/runs", &["get"]),
        ("/api/environments/{env}/refresh", &["post"]),
        ("/api/runs/{id}", &["get", "delete"]),
        ("/api/runs/{id}/events", &["get"]),
        ("/api/environments/{env}/roles", &["get"]),
        (
            "/api/environments/{env}/roles/{principal}",
            &["put", "delete"],
        ),
        ("/api/environments/{env}/connections", &["get"]),
        ("/api/environments/{env}/secrets", &["get"]),
        ("/api/environments/{env}/secrets/{name}", &["put", "delete"]),
        ("/api/environments/{env}/tokens", &["get", "post"]),
        ("/api/environments/{env}/tokens/{name}", &["delete"]),
        ("/api/users", &["get", "post"]),
        ("/api/users/{name}/disable", &["post"]),
        ("/api/users/{name}/enable", &["post"]),
        ("/api/users/{name}/password", &["put"]),
        ("/api/groups", &["get", "post"]),
        ("/api/groups/{group}", &["delete"]),
        ("/api/groups/{group}/members/{member}", &["put", "delete"]),
        ("/api/audit", &["get"]),
        ("/api/environments", &["get", "post"]),
        ("/api/environments/{env}", &["get", "delete"]),
        ("/api/environments/{env}/checks", &["post"]),
        ("/api/environments/{env}/customers/{id}/explain", &["get"]),
        ("/api/environments/{env}/unification/preview", &["post"]),
        ("/api/environments/{env}/unification", &["get", "put"]),
        ("/api/environments/{env}/ingestion", &["get"]),
        (
            "/api/environments/{env}/ingestion/{source}/{table}/corrupt",
            &["get"],
        ),
        ("/api/environments/{env}/unification/train", &["post"]),
        ("/api/environments/{env}/segments/{name}", &["get"]),
        ("/api/environments/{env}/segments/preview", &["post"]),
        ("/api/environments/{env}/measures", &["get"]),
        ("/api/environments/{env}/connections", &["get", "post"]),
        (
            "/api/environments/{env}/connections/{name}",
            &["get", "patch", "delete"],
        ),
        ("/api/environments/{env}/connections/{name}/test", &["post"]),
        (
            "/api/environments/{env}/connections/{name}/secrets/{secret}",
            &["put"],
        ),
        ("/api/environments/{env}/exports", &["get", "post"]),
        (
            "/api/environments/{env}/exports/{name}",
            &["get", "patch", "delete"],
        ),
        ("/api/environments/{env}/exports/{name}/run", &["post"]),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is described"));
        for m in methods {
            let op = item
                .get(*m)
                .unwrap_or_else(|| panic!("{m} {path} is described"));
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{m} {path}"
            );
        }
        // every described path answers (not 404 for the route itself, not 405)
        let concrete = path.replace("{env}", &s.env).replace(['{', '}'], "x");
        let r = s.call(Method::GET, &concrete, &Auth::None, None).await;
        assert_ne!(r.status, StatusCode::NOT_FOUND, "{path} is routed");
    }
    s.stop().await;
}

#[tokio::test]
async fn sessions_csrf_sign_out_and_idle_expiry() {
    let s = start(SignInPolicy {
        idle: chrono::Duration::seconds(3),
        ..test_policy()
    })
    .await;
    let vera = s.sign_in("vera", PASSWORD).await;
    let me = s
        .call(Method::GET, "/api/session", &vera, None)
        .await
        .json();
    assert_eq!(me["principal"], "vera");
    let envs = s.call(Method::GET, "/api/environments", &vera, None).await;
    assert_eq!(envs.status, StatusCode::OK);
    assert_eq!(envs.json()[0]["name"], s.env);

    // a state-changing request without the CSRF token is refused
    let Auth::Session { cookie, csrf } = vera.clone() else {
        unreachable!()
    };
    let r = s
        .call(
            Method::DELETE,
            "/api/session",
            &Auth::CookieOnly(cookie.clone()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("CSRF"));
    let wrong = Auth::Session {
        cookie: cookie.clone(),
        csrf: "0".repeat(csrf.len()),
    };
    assert_eq!(
        s.call(Method::DELETE, "/api/session", &wrong, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // signing out ends the session at once
    assert_eq!(
        s.call(Method::DELETE, "/api/session", &vera, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = s.call(Method::GET, "/api/environments", &vera, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // an idle session ends
    let cole = s.sign_in("cole", PASSWORD).await;
    assert_eq!(
        s.call(Method::GET, "/api/environments", &cole, None)
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let r = s.call(Method::GET, "/api/environments", &cole, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);

    // a disabled user's session ends, and it cannot sign in
    let ada = s.sign_in("ada", PASSWORD).await;
    let root = s.sign_in("root", ROOT_PASSWORD).await;
    assert_eq!(
        s.call(Method::POST, "/api/users/ada/disable", &root, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.call(Method::GET, "/api/environments", &ada, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.sign_in_reply("ada", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    s.stop().await;
}

#[tokio::test]
async fn tokens_are_scoped_shown_once_and_refused_once_revoked() {
    let s = start(test_policy()).await;
    let ada = s.sign_in("ada", PASSWORD).await;
    let path = format!("/api/environments/{}/tokens", s.env);
    let r = s
        .call(
            Method::POST,
            &path,
            &ada,
            Some(json!({"name": "etl", "role": "viewer", "expires_days": 30})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let created = r.json();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("lcdp_"));
    // a lifetime too long to state is refused, not a crash
    for days in [99_999_999_999_999_i64, 3651, 0] {
        let r = s
            .call(
                Method::POST,
                &path,
                &ada,
                Some(json!({"name": "long", "role": "viewer", "expires_days": days})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{days}: {}", r.text);
        assert!(r.text.contains("at most 3650 days"), "{}", r.text);
    }
    assert!(
        created.get("token_hash").is_none(),
        "the digest is never shown"
    );
    let bearer = Auth::Bearer(token.clone());
    let env_path = format!("/api/environments/{}", s.env);
    assert_eq!(
        s.call(Method::GET, &env_path, &bearer, None).await.status,
        StatusCode::OK
    );
    // a Viewer token cannot refresh, manage roles or administer users
    let refresh = s
        .call(Method::POST, &format!("{env_path}/refresh"), &bearer, None)
        .await;
    assert_eq!(refresh.status, StatusCode::FORBIDDEN, "{}", refresh.text);
    assert_eq!(
        s.call(Method::GET, "/api/users", &bearer, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // tokens need no CSRF token (no cookie, nothing a browser sends by itself)
    let listed = s.call(Method::GET, &path, &ada, None).await;
    assert!(!listed.text.contains(&token), "the value is never listed");
    assert_eq!(listed.json()[0]["name"], "etl");
    assert!(
        listed.json()[0]["last_used_at"].is_string(),
        "its use is recorded"
    );
    // revoked: refused from the next request on
    let r = s
        .call(Method::DELETE, &format!("{path}/etl"), &ada, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        s.call(Method::GET, &env_path, &bearer, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // a Viewer cannot create tokens
    let vera = s.sign_in("vera", PASSWORD).await;
    let r = s
        .call(
            Method::POST,
            &path,
            &vera,
            Some(json!({"name": "mine", "role": "admin"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    s.stop().await;
}

#[tokio::test]
async fn repeated_failed_sign_ins_lock_the_account_and_the_address() {
    let s = start(test_policy()).await;
    for i in 0..5 {
        let r = s.sign_in_reply("cole", "wrong password!!").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(r.text.contains("wrong user name or password"));
    }
    let r = s.sign_in_reply("cole", PASSWORD).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "locked even with the right password"
    );
    assert!(r.text.contains("locked"), "{}", r.text);
    // the address is locked too: another account from it is refused
    let r = s.sign_in_reply("vera", PASSWORD).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // an unknown account is answered like a wrong password
    let s2 = start(test_policy()).await;
    let unknown = s2.sign_in_reply("nobody", PASSWORD).await;
    let wrong = s2.sign_in_reply("vera", "not the password").await;
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.json()["detail"], wrong.json()["detail"]);
    // every attempt is in the audit log, with the address
    let root = s2.sign_in("root", ROOT_PASSWORD).await;
    let audit = s2
        .call(Method::GET, "/api/audit?actor=nobody", &root, None)
        .await
        .json();
    let entry = &audit[0];
    assert_eq!(
        (entry["action"].as_str(), entry["outcome"].as_str()),
        (Some("sign-in"), Some("denied"))
    );
    assert_eq!(entry["address"], "127.0.0.1");
    s.stop().await;
    s2.stop().await;
}

/// What each role gets from each route: `allowed` is the weakest role let through.
/// The description passes openapi-spec-validator (the Python reference validator of
/// OpenAPI 3.1, installed by scripts/test-services.sh, which names its Python in
/// `LAKECDP_TEST_PYTHON`).
#[tokio::test]
async fn the_openapi_description_passes_openapi_spec_validator() {
    let python = std::env::var("LAKECDP_TEST_PYTHON").expect(
        "LAKECDP_TEST_PYTHON names a Python with openapi-spec-validator (scripts/test.sh sets it)",
    );
    let s = start(test_policy()).await;
    let doc = s
        .call(Method::GET, "/api/openapi.json", &Auth::None, None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    let file = s._dir.path().join("openapi.json");
    std::fs::write(&file, &doc.text).unwrap();
    let check = "import json, sys\n\
        from openapi_spec_validator import validate\n\
        from openapi_spec_validator.validation import OpenAPIV31SpecValidator\n\
        doc = json.load(open(sys.argv[1]))\n\
        validate(doc, cls=OpenAPIV31SpecValidator)\n\
        print(len(doc['paths']))\n";
    let out = std::process::Command::new(python)
        .args(["-c", check])
        .arg(&file)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the description is valid OpenAPI 3.1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let paths: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(paths >= 35, "{paths} paths described");
    // a broken description is caught: the check can fail
    let mut broken: Value = serde_json::from_str(&doc.text).unwrap();
    broken["paths"]["/api/environments"]["get"]["responses"] = json!("none");
    std::fs::write(&file, broken.to_string()).unwrap();
    let out = std::process::Command::new(std::env::var("LAKECDP_TEST_PYTHON").unwrap())
        .args(["-c", check])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a broken description is refused");
    s.stop().await;
}

#[tokio::test]
async fn every_route_checks_the_callers_role() {
    let s = start(test_policy()).await;
    let env = s.env.clone();
    let e = format!("/api/environments/{env}");
    let routes: Vec<(Method, String, Option<Value>, Option<Role>)> = vec![
        (Method::GET, e.clone(), None, Some(Role::Viewer)),
        (
            Method::GET,
            format!("{e}/revisions"),
            None,
            Some(Role::Viewer),
        ),
        (
            Method::GET,
            format!("{e}/revisions/1"),
            None,
            Some(Role::Viewer),
        ),
        (Method::GET, format!("{e}/runs"), None, Some(Role::Viewer)),
        (Method::GET, format!("{e}/roles"), None, Some(Role::Viewer)),
        (
            Method::GET,
            format!("{e}/connections"),
            None,
            Some(Role::Contributor),
        ),
        // a refresh the plan refuses after the role check: nothing runs
        (
            Method::POST,
            format!("{e}/refresh"),
            Some(json!({"only": "no-such-process"})),
            Some(Role::Contributor),
        ),
        (Method::GET, format!("{e}/tokens"), None, Some(Role::Admin)),
        (Method::GET, format!("{e}/secrets"), None, Some(Role::Admin)),
        (
            Method::PUT,
            format!("{e}/roles/someone"),
            Some(json!({"role": "viewer"})),
            Some(Role::Admin),
        ),
        (
            Method::DELETE,
            format!("{e}/roles/someone"),
            None,
            Some(Role::Admin),
        ),
        (
            Method::GET,
            format!("{e}/measures"),
            None,
            Some(Role::Viewer),
        ),
        (
            Method::GET,
            format!("{e}/segments/HighValue"),
            None,
            Some(Role::Viewer),
        ),
        (
            Method::POST,
            format!("{e}/segments/preview"),
            Some(json!({"condition": "CustomerId is not empty"})),
            Some(Role::Viewer),
        ),
        (
            Method::GET,
            format!("{e}/customers/nobody/explain"),
            None,
            Some(Role::Viewer),
        ),
        (
            Method::POST,
            format!("{e}/unification/preview"),
            Some(json!({"sample": 5})),
            Some(Role::Viewer),
        ),
        (
            Method::GET,
            format!("{e}/unification"),
            None,
            Some(Role::Viewer),
        ),
        // rules refused after the role check: nothing is stored
        (
            Method::PUT,
            format!("{e}/unification"),
            Some(json!({"rules": "[environment]\nname = \"x\"\n"})),
            Some(Role::Contributor),
        ),
        (
            Method::GET,
            format!("{e}/ingestion"),
            None,
            Some(Role::Viewer),
        ),
        (
            Method::GET,
            format!("{e}/ingestion/Crm/Contacts/corrupt"),
            None,
            Some(Role::Viewer),
        ),
        (
            Method::POST,
            format!("{e}/unification/train"),
            Some(json!({"sample": 5})),
            Some(Role::Contributor),
        ),
        (
            Method::POST,
            format!("{e}/checks"),
            None,
            Some(Role::Viewer),
        ),
        (
            Method::POST,
            format!("{e}/connections"),
            Some(json!({"name": "c-x", "kind": "no-such-kind"})),
            Some(Role::Admin),
        ),
        (
            Method::GET,
            format!("{e}/connections/nope"),
            None,
            Some(Role::Admin),
        ),
        (
            Method::PATCH,
            format!("{e}/connections/nope"),
            Some(json!({})),
            Some(Role::Admin),
        ),
        (
            Method::DELETE,
            format!("{e}/connections/nope"),
            None,
            Some(Role::Admin),
        ),
        (
            Method::POST,
            format!("{e}/connections/nope/test"),
            None,
            Some(Role::Admin),
        ),
        (
            Method::PUT,
            format!("{e}/connections/nope/secrets/password"),
            Some(json!({"value": "x"})),
            Some(Role::Admin),
        ),
        (
            Method::POST,
            format!("{e}/exports"),
            Some(json!({"name": "x", "connection": "nope", "tables": []})),
            Some(Role::Contributor),
        ),
        (
            Method::GET,
            format!("{e}/exports/nope"),
            None,
            Some(Role::Viewer),
        ),
        (
            Method::PATCH,
            format!("{e}/exports/nope"),
            Some(json!({})),
            Some(Role::Contributor),
        ),
        (
            Method::DELETE,
            format!("{e}/exports/nope"),
            None,
            Some(Role::Contributor),
        ),
        (
            Method::POST,
            format!("{e}/exports/nope/run"),
            None,
            Some(Role::Contributor),
        ),
        (
            Method::POST,
            "/api/environments".into(),
            Some(json!({"text": "not a project"})),
            None,
        ),
        (Method::GET, "/api/users".into(), None, None),
        (Method::GET, "/api/groups".into(), None, None),
        (
            Method::POST,
            "/api/groups".into(),
            Some(json!({"name": "g-x"})),
            None,
        ),
        (Method::GET, "/api/audit".into(), None, None),
        (
            Method::GET,
            format!("/api/audit?environment={env}"),
            None,
            Some(Role::Admin),
        ),
    ];
    let people = [
        ("nina", None),
        ("vera", Some(Role::Viewer)),
        ("cole", Some(Role::Contributor)),
        ("ada", Some(Role::Admin)),
    ];
    let mut sessions = Vec::new();
    for (name, role) in people {
        sessions.push((name, role, s.sign_in(name, PASSWORD).await));
    }
    let mut rows = 0;
    for (method, path, body, allowed) in &routes {
        for (name, role, auth) in &sessions {
            let r = s.call(method.clone(), path, auth, body.clone()).await;
            let may = matches!((role, allowed), (Some(held), Some(needed)) if held >= needed);
            if may {
                assert!(
                    r.status != StatusCode::FORBIDDEN && r.status != StatusCode::UNAUTHORIZED,
                    "{name} ({role:?}) may {method} {path}: {} {}",
                    r.status,
                    r.text
                );
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{name} ({role:?}) may not {method} {path}: {}",
                    r.text
                );
                assert!(
                    r.text.contains("denied") || r.text.contains("may not"),
                    "{}",
                    r.text
                );
            }
            rows += 1;
        }
    }
    // the catalog administrator administers users, groups and the whole audit log
    let root = s.sign_in("root", ROOT_PASSWORD).await;
    assert_eq!(
        s.call(Method::GET, "/api/users", &root, None).await.status,
        StatusCode::OK
    );
    let audit = s.call(Method::GET, "/api/audit", &root, None).await.json();
    let role_change = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            a["action"] == "PUT /api/environments/{env}/roles/{principal}" && a["actor"] == "ada"
        })
        .expect("the Admin's role change is audited");
    assert_eq!(role_change["outcome"], "succeeded");
    assert_eq!(role_change["address"], "127.0.0.1");
    let denied = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            a["action"] == "PUT /api/environments/{env}/roles/{principal}" && a["actor"] == "vera"
        })
        .expect("the Viewer's refused role change is audited");
    assert_eq!(denied["outcome"], "denied");
    // the environment's Admin reads both in the environment's own log
    let ada = &sessions.iter().find(|(n, ..)| *n == "ada").unwrap().2;
    let env_audit = s
        .call(
            Method::GET,
            &format!("/api/audit?environment={env}&limit=1000"),
            ada,
            None,
        )
        .await
        .json();
    let in_env: Vec<(String, String)> = env_audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "PUT /api/environments/{env}/roles/{principal}")
        .map(|a| {
            (
                a["actor"].as_str().unwrap().to_string(),
                a["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        in_env.contains(&("ada".into(), "succeeded".into())),
        "{in_env:?}"
    );
    assert!(
        in_env.contains(&("vera".into(), "denied".into())),
        "{in_env:?}"
    );
    assert!(rows >= 60);
    s.stop().await;
}

#[tokio::test]
async fn groups_pass_their_roles_to_their_members() {
    let s = start(test_policy()).await;
    let root = s.sign_in("root", ROOT_PASSWORD).await;
    let nina = s.sign_in("nina", PASSWORD).await;
    let e = format!("/api/environments/{}", s.env);
    assert_eq!(
        s.call(Method::GET, &e, &nina, None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.call(
            Method::POST,
            "/api/groups",
            &root,
            Some(json!({"name": "analysts"}))
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_eq!(
        s.call(
            Method::PUT,
            "/api/groups/analysts/members/nina",
            &root,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let ada = s.sign_in("ada", PASSWORD).await;
    let r = s
        .call(
            Method::PUT,
            &format!("{e}/roles/analysts"),
            &ada,
            Some(json!({"role": "contributor"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        s.call(Method::GET, &e, &nina, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.call(Method::GET, &format!("{e}/connections"), &nina, None)
            .await
            .status,
        StatusCode::OK,
        "the group's Contributor role holds for its member"
    );
    assert_eq!(
        s.call(
            Method::DELETE,
            "/api/groups/analysts/members/nina",
            &root,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.call(Method::GET, &e, &nina, None).await.status,
        StatusCode::FORBIDDEN
    );
    s.stop().await;
}

/// Reads server-sent events until `until` matches one; returns them all.
async fn read_events(
    resp: reqwest::Response,
    mut until: impl FnMut(&Value) -> bool,
    limit: Duration,
) -> (
    Vec<Value>,
    impl futures::Stream<Item = reqwest::Result<bytes::Bytes>>,
) {
    let mut stream = Box::pin(resp.bytes_stream());
    let mut buf = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the expected event arrives in time")
            .expect("the stream goes on")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            for line in frame.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    let v: Value = serde_json::from_str(data.trim()).unwrap();
                    let stop = until(&v);
                    events.push(v);
                    if stop {
                        return (events, stream);
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn a_refresh_job_is_observed_refused_twice_and_canceled() {
    let s = start(test_policy()).await;
    let cole = s.sign_in("cole", PASSWORD).await;
    let e = format!("/api/environments/{}", s.env);
    let r = s
        .call(Method::POST, &format!("{e}/refresh"), &cole, None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let run = r.json()["run"].as_str().unwrap().to_string();
    assert_eq!(
        r.headers.get("location").unwrap().to_str().unwrap(),
        format!("/api/runs/{run}")
    );

    // a second refresh of the environment is refused while this one runs
    let again = s
        .call(Method::POST, &format!("{e}/refresh"), &cole, None)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);

    let shown = s
        .call(Method::GET, &format!("/api/runs/{run}"), &cole, None)
        .await
        .json();
    assert_eq!(shown["run"]["status"], "Running");

    // observe it until a process has started, then cancel it (as the Viewer: refused)
    let Auth::Session { cookie, .. } = &cole else {
        unreachable!()
    };
    let resp = s
        .http
        .get(format!("{}/api/runs/{run}/events", s.base))
        .header("cookie", format!("lakecdp_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (events, rest) = read_events(
        resp,
        |v| v["type"] == "process_started",
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(events[0]["type"], "refresh_started");
    assert_eq!(events[0]["run"], run.as_str());

    let vera = s.sign_in("vera", PASSWORD).await;
    let r = s
        .call(Method::DELETE, &format!("/api/runs/{run}"), &vera, None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = s
        .call(Method::DELETE, &format!("/api/runs/{run}"), &cole, None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);

    // the stream goes on to the end, which says Canceled
    let mut rest = Box::pin(rest);
    let mut tail = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, rest.next()).await {
        tail.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if tail.contains("\"type\":\"finished\"") {
            break;
        }
    }
    assert!(tail.contains("\"type\":\"canceling\""), "{tail}");
    assert!(tail.contains("\"status\":\"Canceled\""), "{tail}");
    let shown = s
        .call(Method::GET, &format!("/api/runs/{run}"), &cole, None)
        .await
        .json();
    assert_eq!(shown["run"]["status"], "Canceled");
    // a canceled run cannot be canceled again
    let r = s
        .call(Method::DELETE, &format!("/api/runs/{run}"), &cole, None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // and a run of an environment one cannot see does not exist for them
    let nina = s.sign_in("nina", PASSWORD).await;
    let r = s
        .call(Method::GET, &format!("/api/runs/{run}"), &nina, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // the secrets of the session never reached a response or the audit log
    let root = s.sign_in("root", ROOT_PASSWORD).await;
    let audit = s
        .call(Method::GET, "/api/audit?limit=1000", &root, None)
        .await
        .text;
    assert!(!audit.contains(PASSWORD) && !audit.contains(ROOT_PASSWORD));
    assert!(!audit.contains(cookie.as_str()));
    s.stop().await;
}

/// A writer that keeps every log line, to look for secrets in it.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_never_reach_a_log_line_or_a_response() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = start(test_policy()).await;
    let mut bodies = String::new();
    let ada = s.sign_in("ada", PASSWORD).await;
    let Auth::Session { cookie, csrf } = ada.clone() else {
        unreachable!()
    };
    let path = format!("/api/environments/{}/tokens", s.env);
    let created = s
        .call(
            Method::POST,
            &path,
            &ada,
            Some(json!({"name": "t1", "role": "viewer"})),
        )
        .await;
    let token = created.json()["token"].as_str().unwrap().to_string();
    let bearer = Auth::Bearer(token.clone());
    for (method, p, auth) in [
        (Method::GET, format!("/api/environments/{}", s.env), &bearer),
        (Method::GET, path.clone(), &ada),
        (Method::GET, "/api/session".to_string(), &bearer),
        (Method::GET, "/api/users".to_string(), &ada),
    ] {
        bodies.push_str(&s.call(method, &p, auth, None).await.text);
    }
    bodies.push_str(&s.sign_in_reply("ada", "a wrong password here").await.text);
    let root = s.sign_in("root", ROOT_PASSWORD).await;
    let new_password = "a brand new password 123";
    let r = s
        .call(
            Method::PUT,
            "/api/users/cole/password",
            &root,
            Some(json!({"password": new_password})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    bodies.push_str(&s.call(Method::GET, "/api/users", &root, None).await.text);
    bodies.push_str(
        &s.call(Method::GET, "/api/audit?limit=1000", &root, None)
            .await
            .text,
    );
    s.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for secret in [
        PASSWORD,
        ROOT_PASSWORD,
        new_password,
        token.as_str(),
        cookie.as_str(),
        csrf.as_str(),
    ] {
        assert!(!logs.contains(secret), "a secret is in the log:\n{logs}");
    }
    for secret in [
        PASSWORD,
        ROOT_PASSWORD,
        new_password,
        token.as_str(),
        cookie.as_str(),
    ] {
        assert!(!bodies.contains(secret), "a secret is in a response");
    }
    assert!(!bodies.contains("argon2"), "no password hash is shown");
}

#[tokio::test]
async fn revisions_are_applied_and_diffed_over_the_api() {
    let s = start(test_policy()).await;
    let cole = s.sign_in("cole", PASSWORD).await;
    let e = format!("/api/environments/{}", s.env);
    let text = s.project_text("# tuned by cole");
    let d = s
        .call(
            Method::POST,
            &format!("{e}/diff"),
            &cole,
            Some(json!({"text": text})),
        )
        .await
        .json();
    assert_eq!(d["revision"], 1);
    let added: Vec<&str> = d["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["op"] == "added")
        .filter_map(|l| l["line"].as_str())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(added, vec!["# tuned by cole"]);
    assert!(d["lines"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["op"] != "removed"));
    let r = s
        .call(
            Method::POST,
            &format!("{e}/revisions"),
            &cole,
            Some(json!({"text": text})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["revision"], 2);
    let r = s
        .call(
            Method::POST,
            &format!("{e}/revisions"),
            &cole,
            Some(json!({"text": text})),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["changed"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    let listed = s
        .call(Method::GET, &format!("{e}/revisions"), &cole, None)
        .await
        .json();
    assert_eq!(listed[0]["number"], 2);
    assert_eq!(listed[0]["applied_by"], "cole");
    let shown = s
        .call(Method::GET, &format!("{e}/revisions/2"), &cole, None)
        .await
        .json();
    assert_eq!(shown["text"], text.as_str());
    // a file that does not validate names its problem
    let r = s
        .call(
            Method::POST,
            &format!("{e}/revisions"),
            &cole,
            Some(json!({"text": "[environment]\nname = 3"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // another environment's file, or one that changes the environment's settings, is refused
    let other = text.replacen("name = \"retail-demo\"", "name = \"elsewhere\"", 1);
    let r = s
        .call(
            Method::POST,
            &format!("{e}/revisions"),
            &cole,
            Some(json!({"text": other})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("elsewhere"));
    let settings = text.replacen("retention_runs = 3", "retention_runs = 5", 1);
    let r = s
        .call(
            Method::POST,
            &format!("{e}/revisions"),
            &cole,
            Some(json!({"text": settings})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("lakecdp apply"), "{}", r.text);
    let sources = s
        .call(Method::GET, &format!("{e}/sources"), &cole, None)
        .await
        .json();
    assert_eq!(sources.as_array().unwrap().len(), 3, "{sources}");
    s.stop().await;
}

#[tokio::test]
async fn environment_secrets_are_write_only() {
    // a key of 32 bytes for the vault, as `lakecdp vault new-key` makes
    // SAFETY of the test: every test of this binary that reads it wants this same key
    std::env::set_var(
        "LAKECDP_MASTER_KEY",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    );
    let s = start(test_policy()).await;
    let ada = s.sign_in("ada", PASSWORD).await;
    let cole = s.sign_in("cole", PASSWORD).await;
    let path = format!("/api/environments/{}/secrets", s.env);
    let value = "s3cr3t-account-key-value";
    let r = s
        .call(
            Method::PUT,
            &format!("{path}/account-key"),
            &cole,
            Some(json!({"value": value})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a Contributor may not: {}",
        r.text
    );
    let r = s
        .call(
            Method::PUT,
            &format!("{path}/account-key"),
            &ada,
            Some(json!({"value": value})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let listed = s.call(Method::GET, &path, &ada, None).await;
    assert_eq!(listed.json()[0]["name"], "account-key");
    assert!(!listed.text.contains(value), "the value is never read back");
    let r = s
        .call(Method::DELETE, &format!("{path}/account-key"), &ada, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        s.call(Method::GET, &path, &ada, None).await.json(),
        json!([])
    );
    s.stop().await;
}

/// Polls a run until it ends; its final JSON.
async fn wait_for_run(s: &Server, auth: &Auth, run: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let r = s
            .call(Method::GET, &format!("/api/runs/{run}"), auth, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let v = r.json();
        if v["run"]["status"] != "Running" {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {run} ends in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn profiles_segments_connections_and_export_jobs_over_the_api() {
    std::env::set_var(
        "LAKECDP_MASTER_KEY",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    );
    let s = start(test_policy()).await;
    let e = format!("/api/environments/{}", s.env);
    let ada = s.sign_in("ada", PASSWORD).await;
    let cole = s.sign_in("cole", PASSWORD).await;
    let vera = s.sign_in("vera", PASSWORD).await;

    // the prerequisite table
    let checks = s
        .call(Method::POST, &format!("{e}/checks"), &ada, None)
        .await;
    assert_eq!(checks.status, StatusCode::OK, "{}", checks.text);
    let checks = checks.json();
    assert_eq!(checks["passed"], true, "{checks}");
    assert!(checks["checks"].as_array().unwrap().len() >= 4, "{checks}");

    // a refresh, then everything that reads its outputs
    let r = s
        .call(Method::POST, &format!("{e}/refresh"), &cole, None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let run = r.json()["run"].as_str().unwrap().to_string();
    let done = wait_for_run(&s, &cole, &run).await;
    assert_eq!(done["run"]["status"], "Succeeded", "{done}");

    let measures = s
        .call(Method::GET, &format!("{e}/measures"), &vera, None)
        .await
        .json();
    let names: Vec<&str> = measures
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"TotalSpend"), "{measures}");

    let segment = s
        .call(Method::GET, &format!("{e}/segments/HighValue"), &vera, None)
        .await
        .json();
    assert_eq!(segment["segment"]["name"], "HighValue");
    assert!(
        !segment["history"].as_array().unwrap().is_empty(),
        "{segment}"
    );
    let missing = s
        .call(Method::GET, &format!("{e}/segments/NoSuch"), &vera, None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);

    let preview = s
        .call(
            Method::POST,
            &format!("{e}/segments/preview"),
            &vera,
            Some(json!({"condition": "CustomerId is not empty", "sample": 3})),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text);
    let preview = preview.json();
    assert!(preview["members"].as_u64().unwrap() > 10, "{preview}");
    let sample = preview["sample"].as_array().unwrap();
    assert_eq!(sample.len(), 3, "{preview}");
    let id = sample[0]["CustomerId"].as_str().unwrap().to_string();
    let bad = s
        .call(
            Method::POST,
            &format!("{e}/segments/preview"),
            &vera,
            Some(json!({"condition": "CustomerId is is"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);

    let explained = s
        .call(
            Method::GET,
            &format!("{e}/customers/{id}/explain"),
            &vera,
            None,
        )
        .await;
    assert_eq!(explained.status, StatusCode::OK, "{}", explained.text);
    let explained = explained.json();
    assert_eq!(explained["customer_id"], id.as_str());
    assert!(
        !explained["records"].as_array().unwrap().is_empty(),
        "{explained}"
    );

    let unify = s
        .call(
            Method::POST,
            &format!("{e}/unification/preview"),
            &vera,
            Some(json!({"sample": 200})),
        )
        .await;
    assert_eq!(unify.status, StatusCode::OK, "{}", unify.text);
    let unify = unify.json();
    assert!(unify["profiles"].as_u64().unwrap() > 0, "{unify}");
    assert!(!unify["rules"].as_array().unwrap().is_empty(), "{unify}");
    assert!(unify["run"].is_null(), "a preview publishes nothing");

    // the sources' last loads and the unification, as the admin centre's pages show them
    let loads = s
        .call(Method::GET, &format!("{e}/ingestion"), &vera, None)
        .await;
    assert_eq!(loads.status, StatusCode::OK, "{}", loads.text);
    let loads = loads.json();
    let crm = loads["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["source"] == "Crm")
        .unwrap();
    let contacts = &crm["loads"][0];
    assert_eq!(contacts["table"], "Contacts");
    let corrupt = contacts["corrupt"].as_u64().unwrap();
    assert!(corrupt > 0, "{contacts}");
    assert_eq!(
        contacts["read"].as_u64().unwrap(),
        contacts["written"].as_u64().unwrap() + corrupt
    );
    let sample = s
        .call(
            Method::GET,
            &format!("{e}/ingestion/Crm/Contacts/corrupt?limit=2"),
            &vera,
            None,
        )
        .await
        .json();
    let rows = sample["rows"].as_array().unwrap();
    assert_eq!(rows.len() as u64, corrupt.min(2));
    assert!(rows
        .iter()
        .all(|r| !r["reason"].as_str().unwrap().is_empty()));
    let unification = s
        .call(Method::GET, &format!("{e}/unification"), &vera, None)
        .await
        .json();
    let rules = unification["section"].as_str().unwrap().to_string();
    assert!(rules.contains("[[unification.tables]]"), "{unification}");
    assert!(unification["last"]["profiles"].as_u64().unwrap() > 0);
    let edited = rules.replacen("[unification]", "[unification]\nmax_block = 400", 1);
    let preview = s
        .call(
            Method::POST,
            &format!("{e}/unification/preview"),
            &vera,
            Some(json!({"sample": 200, "rules": edited})),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text);
    let saved = s
        .call(
            Method::PUT,
            &format!("{e}/unification"),
            &vera,
            Some(json!({"rules": edited})),
        )
        .await;
    assert_eq!(saved.status, StatusCode::FORBIDDEN, "{}", saved.text);
    let saved = s
        .call(
            Method::PUT,
            &format!("{e}/unification"),
            &ada,
            Some(json!({"rules": edited})),
        )
        .await
        .json();
    assert_eq!(saved["changed"], true, "{saved}");
    let again = s
        .call(
            Method::PUT,
            &format!("{e}/unification"),
            &ada,
            Some(json!({"rules": edited})),
        )
        .await
        .json();
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["revision"], saved["revision"]);
    // rules edited from an older revision would undo what was applied since
    let stale = s
        .call(
            Method::PUT,
            &format!("{e}/unification"),
            &ada,
            Some(json!({"rules": rules, "revision": 1})),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.text);
    assert!(stale.text.contains("was applied since"), "{}", stale.text);

    // a connection to a folder under the data root, usable by Contributors
    let folder = s._dir.path().join("exported");
    let r = s
        .call(
            Method::POST,
            &format!("{e}/connections"),
            &ada,
            Some(
                json!({"name": "files", "kind": "local", "usable_by": "contributors",
                "settings": {"path": folder.to_str().unwrap()}}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let test = s
        .call(
            Method::POST,
            &format!("{e}/connections/files/test"),
            &ada,
            None,
        )
        .await;
    assert_eq!(test.status, StatusCode::OK, "{}", test.text);
    // one outside the data root is refused when it is used
    let r = s
        .call(
            Method::POST,
            &format!("{e}/connections"),
            &ada,
            Some(json!({"name": "outside", "kind": "local",
                "settings": {"path": "/tmp/lakecdp-outside-the-root"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let outside = s
        .call(
            Method::POST,
            &format!("{e}/connections/outside/test"),
            &ada,
            None,
        )
        .await;
    assert_eq!(outside.status, StatusCode::FORBIDDEN, "{}", outside.text);
    assert!(outside.text.contains("data root"), "{}", outside.text);
    assert!(!Path::new("/tmp/lakecdp-outside-the-root").exists());

    // a PostgreSQL connection's password: set, never shown, only its own secrets
    let password = "pg-password-never-shown";
    let r = s
        .call(
            Method::POST,
            &format!("{e}/connections"),
            &ada,
            Some(json!({"name": "warehouse", "kind": "postgresql",
                "settings": {"host": "127.0.0.1", "user": "lakecdp"},
                "secrets": {"password": password}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(!r.text.contains(password));
    let r = s
        .call(
            Method::PUT,
            &format!("{e}/connections/warehouse/secrets/password"),
            &ada,
            Some(json!({"value": "another-password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = s
        .call(
            Method::PUT,
            &format!("{e}/connections/warehouse/secrets/token"),
            &ada,
            Some(json!({"value": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let shown = s
        .call(
            Method::GET,
            &format!("{e}/connections/warehouse"),
            &ada,
            None,
        )
        .await;
    assert_eq!(shown.json()["secrets"], json!(["password"]));
    assert!(!shown.text.contains(password) && !shown.text.contains("another-password"));
    let edited = s
        .call(
            Method::PATCH,
            &format!("{e}/connections/warehouse"),
            &ada,
            Some(json!({"set": {"port": "5433"}})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
    assert_eq!(edited.json()["changes"], json!(["port set"]));

    // an export run as a job by the Contributor
    let r = s
        .call(
            Method::POST,
            &format!("{e}/exports"),
            &cole,
            Some(json!({"name": "customers", "connection": "files",
                "tables": ["Unification/Customer"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = s
        .call(
            Method::POST,
            &format!("{e}/exports/customers/run"),
            &cole,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let run = r.json()["run"].as_str().unwrap().to_string();
    let done = wait_for_run(&s, &cole, &run).await;
    assert_eq!(done["run"]["status"], "Succeeded", "{done}");
    assert!(done["run"]["rows"].as_u64().unwrap() > 10, "{done}");
    assert!(folder.exists(), "the export wrote its folder");
    let shown = s
        .call(Method::GET, &format!("{e}/exports/customers"), &vera, None)
        .await
        .json();
    assert_eq!(shown["runs"][0]["id"], run.as_str(), "{shown}");
    let edited = s
        .call(
            Method::PATCH,
            &format!("{e}/exports/customers"),
            &cole,
            Some(json!({"schedule": "on-refresh"})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
    // the connection is in use
    let r = s
        .call(
            Method::DELETE,
            &format!("{e}/connections/files"),
            &ada,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = s
        .call(
            Method::DELETE,
            &format!("{e}/exports/customers"),
            &cole,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = s
        .call(
            Method::DELETE,
            &format!("{e}/connections/files"),
            &ada,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn local_paths_stay_under_the_data_root_and_administrators_create_environments() {
    let s = start(test_policy()).await;
    let e = format!("/api/environments/{}", s.env);
    let cole = s.sign_in("cole", PASSWORD).await;
    let ada = s.sign_in("ada", PASSWORD).await;
    let root = s.sign_in("root", ROOT_PASSWORD).await;

    // a revision naming a file outside the data root is refused, and so is `..`
    for location in ["/etc/passwd", "../../../etc/passwd", "file:///etc/hostname"] {
        let text = s.project_text(&format!(
            "[[sources]]\nname = \"Leak\"\n[[sources.tables]]\nname = \"t\"\nlocation = \"{location}\"\nformat = \"csv\"\n"
        ));
        let r = s
            .call(
                Method::POST,
                &format!("{e}/revisions"),
                &cole,
                Some(json!({"text": text})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{location}: {}", r.text);
        assert!(r.text.contains("data root"), "{}", r.text);
    }

    // a new environment: administrators only, its checks in the answer
    let project = format!(
        "[environment]\nname = \"second\"\n[environment.storage]\nkind = \"local\"\npath = \"{}\"\n",
        s._dir.path().join("second-lake").display()
    );
    let r = s
        .call(
            Method::POST,
            "/api/environments",
            &ada,
            Some(json!({"text": project, "create_container": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = s
        .call(
            Method::POST,
            "/api/environments",
            &root,
            Some(json!({"text": project, "create_container": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let created = r.json();
    assert_eq!(created["environment"]["name"], "second");
    assert_eq!(created["checks"]["passed"], true, "{created}");
    let again = s
        .call(
            Method::POST,
            "/api/environments",
            &root,
            Some(json!({"text": project, "create_container": true})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    let revisions = s
        .call(
            Method::GET,
            "/api/environments/second/revisions",
            &root,
            None,
        )
        .await
        .json();
    assert_eq!(revisions[0]["number"], 1, "the file is revision 1");
    // a lake outside the data root is refused
    let outside = project.replace("second", "third").replace(
        &s._dir.path().join("third-lake").display().to_string(),
        "/tmp/lakecdp-third-lake",
    );
    let r = s
        .call(
            Method::POST,
            "/api/environments",
            &root,
            Some(json!({"text": outside, "create_container": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(!Path::new("/tmp/lakecdp-third-lake").exists());
    // a project in a folder under the data root: its relative paths resolve there
    std::fs::create_dir_all(s._dir.path().join("customers/acme")).unwrap();
    let acme = "[environment]\nname = \"acme\"\n[environment.storage]\nkind = \"local\"\npath = \"lake\"\n";
    for bad in ["../..", "/etc", "customers/missing"] {
        let r = s
            .call(
                Method::POST,
                "/api/environments",
                &root,
                Some(json!({"text": acme, "create_container": true, "base": bad})),
            )
            .await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::FORBIDDEN,
            "{bad}: {} {}",
            r.status,
            r.text
        );
    }
    let r = s
        .call(
            Method::POST,
            "/api/environments",
            &root,
            Some(json!({"text": acme, "create_container": true, "base": "customers/acme"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(s._dir.path().join("customers/acme/lake").is_dir());
    // its next revision, based there too, reads a source beside it but not above it
    let with_source = |location: &str| {
        format!(
            "{acme}[[sources]]\nname = \"Crm\"\n[[sources.tables]]\nname = \"t\"\nlocation = \"{location}\"\nformat = \"csv\"\n"
        )
    };
    let r = s
        .call(
            Method::POST,
            "/api/environments/acme/revisions",
            &root,
            Some(json!({"text": with_source("crm/*.csv"), "base": "customers/acme"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = s
        .call(
            Method::POST,
            "/api/environments/acme/revisions",
            &root,
            Some(json!({"text": with_source("../../../etc/passwd"), "base": "customers/acme"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // its creator is its Admin and deletes it; its lake folder stays
    let r = s
        .call(Method::DELETE, "/api/environments/second", &ada, None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = s
        .call(Method::DELETE, "/api/environments/second", &root, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(s._dir.path().join("second-lake").exists());
    let r = s
        .call(Method::GET, "/api/environments/second", &root, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    s.stop().await;
}

/// The admin centre's page for a new environment answers with the prerequisite table
/// growing as the checks run: one live row per check result, in the order the checks
/// end, then the final table and the outcome after the final mark.
#[tokio::test]
async fn a_new_environments_checks_are_streamed_as_they_run() {
    let s = start(test_policy()).await;
    let root = s.sign_in("root", ROOT_PASSWORD).await;
    let Auth::Session { cookie, csrf } = &root else {
        unreachable!()
    };
    let project = format!(
        "[environment]\nname = \"streamed\"\n[environment.storage]\nkind = \"local\"\npath = \"{}\"\n",
        s._dir.path().join("streamed-lake").display()
    );
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("text", &project)
        .append_pair("create_container", "true")
        .finish();
    let resp = s
        .http
        .post(format!("{}/environments/new", s.base))
        .header("cookie", format!("lakecdp_session={cookie}"))
        .header("x-csrf-token", csrf)
        .header("hx-request", "true")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get("content-length").is_none(),
        "the answer is streamed, its length unknown when it starts"
    );
    use futures::StreamExt;
    let mut text = String::new();
    let mut parts = resp.bytes_stream();
    while let Some(part) = parts.next().await {
        text.push_str(std::str::from_utf8(&part.unwrap()).unwrap());
    }
    let (live, last) = text
        .split_once("<!--final-->")
        .unwrap_or_else(|| panic!("a final part: {text}"));
    assert!(live.starts_with("<table id=\"checks-live\">"), "{live}");
    let live_rows = live.matches("<tr><td>").count();
    let final_rows = last.matches("<tr><td>").count();
    assert!(final_rows >= 5, "{last}");
    assert!(
        live_rows >= final_rows,
        "every check was shown as it ended ({live_rows} live rows, {final_rows} checks)"
    );
    assert!(
        last.contains("id=\"created\"") && last.contains("streamed"),
        "{last}"
    );
    assert!(s
        ._dir
        .path()
        .join("streamed-lake/customerinsights")
        .is_dir());
    // an administrator's refusal is said before anything streams
    let ada = s.sign_in("ada", PASSWORD).await;
    let Auth::Session { cookie, csrf } = &ada else {
        unreachable!()
    };
    let refused = s
        .http
        .post(format!("{}/environments/new", s.base))
        .header("cookie", format!("lakecdp_session={cookie}"))
        .header("x-csrf-token", csrf)
        .header("hx-request", "true")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("text=x")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    s.stop().await;
}
