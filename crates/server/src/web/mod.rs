//! The web admin centre: server-rendered pages (askama templates, htmx for the parts
//! that update in place) over the same `lakecdp-app` operations as the API. Every page
//! acts as the signed-in principal; what its role does not allow is neither shown nor
//! accepted.
//!
//! - Pages authenticate with the session cookie only; a request without one is sent to
//!   `/signin`. State-changing requests carry the session's CSRF token in
//!   `X-CSRF-Token`, which htmx adds to each of them from the page's `hx-headers`.
//! - Static assets are compiled in, served with a content hash in their URL, an
//!   immutable cache header and a Subresource Integrity hash in the page.
//! - Pages send a Content-Security-Policy that allows only this server's own scripts
//!   and styles; htmx runs with `eval` and script tags off.

use std::sync::LazyLock;

use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use lakecdp_app::search::{CustomerCard, CustomerResults};
use lakecdp_app::{Actor, App, RefreshRequest, Silent};
use lakecdp_core::{Operation, Role, RunRecord};
use serde::Deserialize;

mod admin;
mod data;

use crate::auth::{self, Caller, Via, SESSION_COOKIE};
use crate::problem::Problem;
use crate::AppState;

/// Results in one page of a customer search.
const PAGE_SIZE: usize = 20;

// ---- static assets ----

/// A compiled-in asset: its bytes, type, versioned URL and integrity hash.
pub(crate) struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    path: &'static str,
    /// `path?v=<hash>`.
    pub href: String,
    /// `sha384-<base64>`.
    pub integrity: String,
    etag: String,
}

impl Asset {
    fn new(path: &'static str, content_type: &'static str, bytes: &'static [u8]) -> Self {
        let sha384 = ring::digest::digest(&ring::digest::SHA384, bytes);
        let sha256 = ring::digest::digest(&ring::digest::SHA256, bytes);
        let version = hex_prefix(sha256.as_ref(), 12);
        Self {
            bytes,
            content_type,
            path,
            href: format!("{path}?v={version}"),
            integrity: format!(
                "sha384-{}",
                base64::engine::general_purpose::STANDARD.encode(sha384.as_ref())
            ),
            etag: format!("\"{version}\""),
        }
    }
}

fn hex_prefix(bytes: &[u8], chars: usize) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(chars)
        .collect()
}

/// The assets every page links.
pub(crate) struct Assets {
    /// The style sheet.
    pub css: Asset,
    /// htmx (vendored, 0BSD).
    pub htmx: Asset,
    /// The admin centre's own script (live run progress).
    pub js: Asset,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    css: Asset::new(
        "/static/lakecdp.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/lakecdp.css"),
    ),
    htmx: Asset::new(
        "/static/vendor/htmx-2.0.4.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/htmx-2.0.4.min.js"),
    ),
    js: Asset::new(
        "/static/lakecdp.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/lakecdp.js"),
    ),
});

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let path = format!("/static/{path}");
    let Some(a) = [&ASSETS.css, &ASSETS.htmx, &ASSETS.js]
        .into_iter()
        .find(|a| a.path == path)
    else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let cache = [
        (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        (header::CONTENT_TYPE, a.content_type),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == a.etag);
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            cache,
            [(header::ETAG, a.etag.clone())],
        )
            .into_response();
    }
    (cache, [(header::ETAG, a.etag.clone())], a.bytes).into_response()
}

// ---- the page frame and its caller ----

/// What every page's frame shows.
pub(crate) struct Chrome {
    assets: &'static Assets,
    csrf: String,
    principal: String,
    environment: Option<String>,
}

impl Chrome {
    fn anonymous() -> Self {
        Self {
            assets: &ASSETS,
            csrf: String::new(),
            principal: String::new(),
            environment: None,
        }
    }
}

/// The signed-in caller of a page.
pub(crate) struct Page {
    caller: Caller,
    csrf: String,
    /// Whether htmx asked (it wants a fragment, and redirects as `HX-Redirect`).
    partial: bool,
}

impl Page {
    fn actor(&self) -> &Actor {
        &self.caller.actor
    }

    fn chrome(&self, environment: Option<&str>) -> Chrome {
        Chrome {
            assets: &ASSETS,
            csrf: self.csrf.clone(),
            principal: self.caller.name.clone(),
            environment: environment.map(str::to_string),
        }
    }

    /// The page `built` made, or its error as a page.
    fn show<T: Template>(
        &self,
        environment: Option<&str>,
        built: lakecdp_app::Result<T>,
    ) -> Response {
        match built {
            Ok(page) => render(&page),
            Err(e) => self.problem(environment, e.into()),
        }
    }

    /// The page loaded again after a change that succeeded, or the change's error.
    fn changed<T>(&self, environment: Option<&str>, done: lakecdp_app::Result<T>) -> Response {
        match done {
            Ok(_) => refresh_page(),
            Err(e) => self.problem(environment, e.into()),
        }
    }

    /// An error as a page (or, for htmx, a fragment) with the error's status.
    fn problem(&self, environment: Option<&str>, problem: Problem) -> Response {
        let status = problem.status();
        if self.partial {
            let body = format!(
                "<p class=\"problem\" role=\"alert\">{}</p>",
                escape(problem.detail())
            );
            return (status, Html(body)).into_response();
        }
        error_page(self.chrome(environment), problem)
    }
}

/// What a path segment keeps as it is: RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` as one segment of a path (a name with `/`, `?`, `#` or spaces stays one
/// segment), as templates write it with `urlencode_strict`.
fn path_segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

fn escape(text: &str) -> String {
    askama::filters::escape(text, askama::filters::Html)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    title: String,
    detail: String,
}

fn error_page(c: Chrome, problem: Problem) -> Response {
    let status = problem.status();
    let page = ErrorPage {
        c,
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        detail: problem.detail().to_string(),
    };
    (status, render(&page)).into_response()
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; the server's log says why",
            )
                .into_response()
        }
    }
}

fn is_htmx(parts: &Parts) -> bool {
    parts.headers.get("hx-request").is_some()
}

/// Where to go after signing in: a path of this site only.
fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.contains(['\r', '\n']);
    if ok {
        next
    } else {
        "/"
    }
}

/// An answer to htmx that sends the browser to `target`.
fn hx_redirect(target: &str) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(target) {
        r.headers_mut().insert("hx-redirect", v);
    }
    r
}

fn to_sign_in(parts: &Parts) -> Response {
    let here = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let target = format!(
        "/signin?next={}",
        url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
    );
    if is_htmx(parts) {
        return hx_redirect(&target);
    }
    Redirect::to(&target).into_response()
}

impl FromRequestParts<AppState> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        // pages are for people: a session, never an API token
        if auth::cookie(&parts.headers, SESSION_COOKIE).is_none() {
            return Err(to_sign_in(parts));
        }
        parts.headers.remove(header::AUTHORIZATION);
        let partial = is_htmx(parts);
        match Caller::from_request_parts(parts, state).await {
            Ok(caller) => {
                let csrf = match &caller.via {
                    Via::Session { csrf } => csrf.clone(),
                    Via::Token(_) => String::new(),
                };
                Ok(Self {
                    caller,
                    csrf,
                    partial,
                })
            }
            Err(p) if p.status() == StatusCode::UNAUTHORIZED => Err(to_sign_in(parts)),
            Err(p) if partial => Err((
                p.status(),
                Html(format!(
                    "<p class=\"problem\" role=\"alert\">{}</p>",
                    escape(p.detail())
                )),
            )
                .into_response()),
            Err(p) => Err(error_page(Chrome::anonymous(), p)),
        }
    }
}

/// Pages: their routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(environments))
        .route("/signin", get(sign_in_form).post(sign_in))
        .route("/signout", post(sign_out))
        .route(
            "/environments/new",
            get(new_environment).post(create_environment),
        )
        .route("/environments/{env}", get(environment))
        .route("/environments/{env}/refresh", post(refresh))
        .route("/environments/{env}/runs/{id}", get(run))
        .route("/environments/{env}/customers", get(customers))
        .route("/environments/{env}/customers/{id}", get(card))
        .route("/environments/{env}/customers/{id}/explain", get(explain))
        .route("/environments/{env}/access", get(access))
        .route("/environments/{env}/access/roles", post(set_role))
        .route(
            "/environments/{env}/access/tokens",
            post(admin::create_token),
        )
        .route(
            "/environments/{env}/access/tokens/{name}/revoke",
            post(admin::revoke_token),
        )
        .route(
            "/environments/{env}/connections",
            get(admin::connections).post(admin::add_connection),
        )
        .route(
            "/environments/{env}/connections/fields",
            get(admin::connection_fields),
        )
        .route(
            "/environments/{env}/connections/{name}/test",
            post(admin::test_connection),
        )
        .route(
            "/environments/{env}/connections/{name}/delete",
            post(admin::delete_connection),
        )
        .route(
            "/environments/{env}/exports",
            get(admin::exports).post(admin::add_export),
        )
        .route(
            "/environments/{env}/exports/{name}/run",
            post(admin::run_export),
        )
        .route(
            "/environments/{env}/exports/{name}/delete",
            post(admin::delete_export),
        )
        .route("/groups", get(admin::groups).post(admin::create_group))
        .route("/groups/members", post(admin::change_member))
        .route("/groups/{name}/delete", post(admin::delete_group))
        .route("/environments/{env}/sources", get(data::sources))
        .route(
            "/environments/{env}/sources/{source}/tables/{table}/corrupt",
            get(data::corrupt_rows),
        )
        .route(
            "/environments/{env}/unification",
            get(data::unification).post(data::save_rules),
        )
        .route(
            "/environments/{env}/unification/preview",
            post(data::preview_rules),
        )
        .route("/environments/{env}/segments", get(segments))
        .route(
            "/environments/{env}/segments/preview",
            post(preview_segment),
        )
        .route(
            "/environments/{env}/reports",
            get(reports).post(create_reporting),
        )
        .route("/environments/{env}/reports/{name}", get(report))
        .route(
            "/environments/{env}/reports/{name}/members",
            post(grant_reporting),
        )
        .route(
            "/environments/{env}/reports/{name}/delete",
            post(delete_reporting),
        )
}

/// Assets: their routes (cached, so outside the pages' `no-store`).
pub(crate) fn asset_routes() -> Router<AppState> {
    Router::new().route("/static/{*path}", get(asset))
}

/// The headers every page carries.
pub(crate) async fn page_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

// ---- sign in and out ----

#[derive(Deserialize, Default)]
#[serde(default)]
struct Next {
    next: String,
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    c: Chrome,
    next: String,
    name: String,
    error: String,
}

async fn sign_in_form(Query(q): Query<Next>) -> Response {
    render(&SignInPage {
        c: Chrome::anonymous(),
        next: safe_next(&q.next).to_string(),
        name: String::new(),
        error: String::new(),
    })
}

#[derive(Deserialize)]
struct SignInForm {
    name: String,
    password: String,
    #[serde(default)]
    next: String,
}

async fn sign_in(
    State(state): State<AppState>,
    auth::ClientAddress(address): auth::ClientAddress,
    Form(form): Form<SignInForm>,
) -> Response {
    let signed = state
        .app
        .sign_in(
            &form.name,
            &form.password,
            address.as_deref(),
            &state.config.policy,
        )
        .await;
    match signed {
        Ok(signed) => {
            let max_age = state.config.policy.absolute.num_seconds().max(0);
            let cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax",
                signed.token
            );
            let mut r = Redirect::to(safe_next(&form.next)).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => {
            let problem = Problem::from(e);
            let status = problem.status();
            let page = SignInPage {
                c: Chrome::anonymous(),
                next: safe_next(&form.next).to_string(),
                name: form.name,
                error: problem.detail().to_string(),
            };
            (status, render(&page)).into_response()
        }
    }
}

async fn sign_out(State(state): State<AppState>, page: Page, headers: HeaderMap) -> Response {
    if let Some(token) = auth::cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = state
            .app
            .sign_out(token, page.caller.address.as_deref())
            .await
        {
            return page.problem(None, e.into());
        }
    }
    let mut r = hx_redirect("/signin");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "lakecdp_session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax",
        ),
    );
    r
}

// ---- environments ----

struct EnvRow {
    name: String,
    storage: String,
    format: String,
    created_by: String,
    created_at: String,
}

#[derive(Template)]
#[template(path = "environments.html")]
struct EnvironmentsPage {
    c: Chrome,
    rows: Vec<EnvRow>,
    can_create: bool,
}

#[derive(Template)]
#[template(path = "environment_new.html")]
struct NewEnvironmentPage {
    c: Chrome,
}

async fn new_environment(State(state): State<AppState>, page: Page) -> Response {
    match state.app.require_administrator(page.actor()).await {
        Ok(()) => render(&NewEnvironmentPage {
            c: page.chrome(None),
        }),
        Err(e) => page.problem(None, e.into()),
    }
}

#[derive(Deserialize)]
struct NewEnvironmentForm {
    text: String,
    #[serde(default)]
    base: String,
    #[serde(default)]
    create_container: Option<String>,
}

#[derive(Template)]
#[template(path = "environment_created.html")]
struct CreatedFragment {
    error: String,
    checks: Vec<(String, String, String, String)>,
    created: String,
}

/// Where a streamed answer's final part begins: the page's script shows only what
/// follows it once it arrives.
const FINAL_MARK: &str = "<!--final-->";

#[derive(Template)]
#[template(path = "check_row.html")]
struct CheckRow {
    c: (String, String, String, String),
}

fn check_row(r: &lakecdp_app::CheckResultLine) -> (String, String, String, String) {
    (
        r.check.title().to_string(),
        r.status.to_string(),
        r.detail.clone(),
        r.fix.clone().unwrap_or_default(),
    )
}

/// Sends each check's row as it is first known, and keeps the final report (which the
/// answer ends with, should a later step change a check).
struct Creating {
    live: tokio::sync::mpsc::UnboundedSender<String>,
    shown: std::sync::Mutex<std::collections::HashSet<&'static str>>,
    report: crate::work::Checks,
}

impl lakecdp_app::Observer for Creating {
    fn event(&self, event: &lakecdp_app::Event) {
        match event {
            lakecdp_app::Event::CheckResult(r) => {
                let first = self
                    .shown
                    .lock()
                    .is_ok_and(|mut shown| shown.insert(r.check.title()));
                if !first {
                    return;
                }
                if let Ok(row) = (CheckRow { c: check_row(r) }).render() {
                    let _ = self.live.send(row);
                }
            }
            other => self.report.event(other),
        }
    }
}

/// Create an environment from a project file's text, streaming the prerequisite table
/// as the checks run: each row as its check ends, then (after [`FINAL_MARK`]) the final
/// table with the outcome.
async fn create_environment(
    State(state): State<AppState>,
    page: Page,
    Form(form): Form<NewEnvironmentForm>,
) -> Response {
    if let Err(e) = state.app.require_administrator(page.actor()).await {
        return page.problem(None, e.into());
    }
    let base = form.base.trim();
    let app = if base.is_empty() {
        state.app.clone()
    } else {
        match state.app.in_folder(base) {
            Ok(app) => app,
            Err(e) => return page.problem(None, e.into()),
        }
    };
    let create = lakecdp_app::environments::Creation {
        create_container: form.create_container.is_some(),
        adopt: false,
    };
    let (live, rows) = tokio::sync::mpsc::unbounded_channel::<String>();
    let head = "<table id=\"checks-live\"><caption>Prerequisite checks, as they run</caption>\
        <thead><tr><th scope=\"col\">Check</th><th scope=\"col\">Result</th>\
        <th scope=\"col\">Found</th><th scope=\"col\">Fix</th></tr></thead><tbody>"
        .to_string();
    let _ = live.send(head);
    let actor = page.actor().clone();
    tokio::spawn(async move {
        let observer = Creating {
            live: live.clone(),
            shown: std::sync::Mutex::new(std::collections::HashSet::new()),
            report: crate::work::Checks::default(),
        };
        let outcome = app
            .create_environment_from_text(&actor, &form.text, &create, &observer)
            .await;
        let checks = observer
            .report
            .take()
            .map(|r| r.results.iter().map(check_row).collect())
            .unwrap_or_default();
        let fragment = match outcome {
            Ok(env) => CreatedFragment {
                error: String::new(),
                checks,
                created: env.name,
            },
            Err(e) => CreatedFragment {
                error: Problem::from(e).detail().to_string(),
                checks,
                created: String::new(),
            },
        };
        let last = match fragment.render() {
            Ok(html) => html,
            Err(e) => {
                tracing::error!(error = %e, "a page could not be rendered");
                "<p class=\"problem\" role=\"alert\">the outcome could not be shown; the server's log says why</p>".into()
            }
        };
        let _ = live.send(format!("</tbody></table>{FINAL_MARK}{last}"));
    });
    let body = futures::stream::unfold(rows, |mut rows| async move {
        rows.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rows))
    });
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

fn storage_text(env: &lakecdp_core::Environment) -> String {
    format!("{}: {}", env.storage.kind(), env.storage.describe())
}

async fn environments(State(state): State<AppState>, page: Page) -> Response {
    let can_create = state.app.require_administrator(page.actor()).await.is_ok();
    match state.app.list_environments(page.actor()).await {
        Ok(list) => render(&EnvironmentsPage {
            can_create,
            c: page.chrome(None),
            rows: list
                .iter()
                .map(|e| EnvRow {
                    name: e.name.clone(),
                    storage: storage_text(e),
                    format: e.output_format.to_string(),
                    created_by: e.created_by.clone(),
                    created_at: e.created_at.format("%Y-%m-%d %H:%M").to_string(),
                })
                .collect(),
        }),
        Err(e) => page.problem(None, e.into()),
    }
}

struct RunRow {
    id: String,
    process: String,
    status: String,
    started: String,
    took: String,
    rows: String,
}

impl RunRow {
    fn of(r: &RunRecord) -> Self {
        Self {
            id: r.id.to_string(),
            process: r.process.clone(),
            status: r.status.to_string(),
            started: r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            took: r
                .finished_at
                .map(|f| {
                    let ms = (f - r.started_at).num_milliseconds().max(0);
                    format!("{:.1} s", ms as f64 / 1000.0)
                })
                .unwrap_or_default(),
            rows: r.rows.map(|n| n.to_string()).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "environment.html")]
struct EnvironmentPage {
    c: Chrome,
    name: String,
    id: String,
    role: String,
    profiles: String,
    lake: String,
    database_gb: u64,
    files_gb: u64,
    storage: String,
    can_refresh: bool,
    runs: Vec<RunRow>,
    sources: Vec<(String, String, String, String)>,
}

fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The caller's role in an environment (refused when it has none).
async fn role_in(app: &App, actor: &Actor, env: &str) -> lakecdp_app::Result<Role> {
    let e = app.environment(Some(env)).await?;
    app.require(actor, &e, Operation::ViewEnvironment).await
}

async fn environment(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
) -> Response {
    let app = &state.app;
    let built = async {
        let role = role_in(app, page.actor(), &env).await?;
        let d = app.show_environment(page.actor(), Some(&env)).await?;
        let (database_gb, files_gb) = d.capacity();
        let (_, runs) = app.runs(page.actor(), Some(&env), 10).await?;
        let sources = app.applied_sources(page.actor(), &env).await?;
        let name = d.environment.name.clone();
        Ok::<_, lakecdp_app::Error>(EnvironmentPage {
            c: page.chrome(Some(&name)),
            id: d.environment.id.to_string(),
            role: format!("{role:?}"),
            profiles: d
                .profiles
                .map(|p| p.to_string())
                .unwrap_or_else(|| "none yet".into()),
            lake: match &d.lake_bytes {
                Ok(b) => bytes_text(*b),
                Err(why) => format!("unreadable: {why}"),
            },
            database_gb,
            files_gb,
            storage: storage_text(&d.environment),
            can_refresh: role >= Role::Contributor,
            runs: runs.iter().map(RunRow::of).collect(),
            sources: sources
                .iter()
                .flat_map(|s| {
                    s.tables.iter().map(move |t| {
                        (
                            s.name.clone(),
                            t.name.clone(),
                            t.format.to_string(),
                            t.location.clone(),
                        )
                    })
                })
                .collect(),
            name,
        })
    }
    .await;
    page.show(Some(&env), built)
}

// ---- refresh and runs ----

#[derive(Template)]
#[template(path = "run_status.html")]
struct RunStatusFragment {
    name: String,
    run: RunRow,
    done: bool,
    error: String,
    processes: Vec<RunRow>,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    c: Chrome,
    name: String,
    run: RunRow,
    done: bool,
    error: String,
    processes: Vec<RunRow>,
}

async fn refresh(State(state): State<AppState>, page: Page, Path(env): Path<String>) -> Response {
    let request = RefreshRequest {
        environment: Some(env.clone()),
        ..RefreshRequest::default()
    };
    let started = async {
        let plan = state
            .app
            .plan_refresh(page.actor(), &request)
            .await?
            .ok_or_else(|| {
                lakecdp_app::Error::invalid("nothing to refresh: the project declares no sources")
            })?;
        let started = state
            .app
            .start_refresh(page.actor(), &request, &plan, &Silent)
            .await?;
        Ok::<_, lakecdp_app::Error>(state.jobs.spawn_refresh(state.app.clone(), started))
    }
    .await;
    match started {
        Ok(run) => run_view(&state, &page, &env, &run.to_string(), true).await,
        Err(e) => page.problem(Some(&env), e.into()),
    }
}

async fn run(
    State(state): State<AppState>,
    page: Page,
    Path((env, id)): Path<(String, String)>,
) -> Response {
    let partial = page.partial;
    run_view(&state, &page, &env, &id, partial).await
}

async fn run_view(state: &AppState, page: &Page, env: &str, id: &str, partial: bool) -> Response {
    let (e, run, children) = match state.app.run(page.actor(), id).await {
        Ok(found) => found,
        Err(e) => return page.problem(Some(env), e.into()),
    };
    if e.name != env && e.id.to_string() != env {
        return page.problem(
            Some(env),
            Problem::not_found(format!("run {id} is not a run of environment `{env}`")),
        );
    }
    let done = run.status.is_final();
    let error = run.error.clone().unwrap_or_default();
    let processes: Vec<RunRow> = children.iter().map(RunRow::of).collect();
    if partial {
        render(&RunStatusFragment {
            name: e.name.clone(),
            run: RunRow::of(&run),
            done,
            error,
            processes,
        })
    } else {
        render(&RunPage {
            c: page.chrome(Some(&e.name)),
            name: e.name.clone(),
            run: RunRow::of(&run),
            done,
            error,
            processes,
        })
    }
}

// ---- customers ----

#[derive(Deserialize, Default)]
#[serde(default)]
struct SearchQuery {
    q: String,
    page: Option<usize>,
}

struct HitRow {
    id: String,
    name: String,
    email: String,
    phone: String,
    city: String,
}

#[derive(Default)]
struct ResultsView {
    query: String,
    query_url: String,
    total: usize,
    rebuilding: bool,
    hits: Vec<HitRow>,
    page: usize,
    pages: usize,
    previous: Option<usize>,
    next: Option<usize>,
}

impl ResultsView {
    fn of(found: CustomerResults, page: usize) -> Self {
        let pages = found.total.div_ceil(PAGE_SIZE).max(1);
        Self {
            query_url: url::form_urlencoded::byte_serialize(found.query.as_bytes()).collect(),
            query: found.query,
            total: found.total,
            rebuilding: found.index.rebuilding,
            hits: found
                .hits
                .into_iter()
                .map(|h| HitRow {
                    id: h.customer_id,
                    name: h.summary.name,
                    email: h.summary.email,
                    phone: h.summary.phone,
                    city: h.summary.city,
                })
                .collect(),
            page,
            pages,
            previous: (page > 1).then(|| page - 1),
            next: (page < pages).then(|| page + 1),
        }
    }
}

#[derive(Template)]
#[template(path = "customers.html")]
struct CustomersPage {
    c: Chrome,
    name: String,
    results: ResultsView,
}

#[derive(Template)]
#[template(path = "customer_results.html")]
struct ResultsFragment {
    name: String,
    results: ResultsView,
}

async fn customers(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
    Query(q): Query<SearchQuery>,
) -> Response {
    let app = state.app.in_environment(&env);
    let number = q.page.unwrap_or(1).max(1);
    let results = if q.q.trim().is_empty() {
        // the page itself still needs the caller to see the environment
        if let Err(e) = role_in(&state.app, page.actor(), &env).await {
            return page.problem(Some(&env), e.into());
        }
        ResultsView {
            page: 1,
            pages: 1,
            ..ResultsView::default()
        }
    } else {
        let offset = (number - 1).saturating_mul(PAGE_SIZE);
        match app
            .search_customers(page.actor(), q.q.trim(), offset, PAGE_SIZE)
            .await
        {
            Ok(found) => ResultsView::of(found, number),
            Err(e) => return page.problem(Some(&env), e.into()),
        }
    };
    if page.partial {
        render(&ResultsFragment { name: env, results })
    } else {
        render(&CustomersPage {
            c: page.chrome(Some(&env)),
            name: env,
            results,
        })
    }
}

#[derive(Template)]
#[template(path = "card.html")]
struct CardPage {
    c: Chrome,
    name: String,
    title: String,
    card: CustomerCard,
}

fn card_title(card: &CustomerCard) -> String {
    let get = |c: &str| {
        card.profile
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(c))
            .map(|(_, v)| v.clone())
    };
    get("FullName")
        .or_else(|| {
            let name = format!(
                "{} {}",
                get("FirstName").unwrap_or_default(),
                get("LastName").unwrap_or_default()
            );
            let name = name.trim();
            (!name.is_empty()).then(|| name.to_string())
        })
        .unwrap_or_else(|| card.customer_id.clone())
}

async fn card(
    State(state): State<AppState>,
    page: Page,
    Path((env, id)): Path<(String, String)>,
) -> Response {
    let card = state
        .app
        .in_environment(&env)
        .customer_card(page.actor(), &id)
        .await;
    page.show(
        Some(&env),
        card.map(|card| CardPage {
            c: page.chrome(Some(&env)),
            title: card_title(&card),
            name: env.clone(),
            card,
        }),
    )
}

struct WeightsView {
    record: String,
    matched: String,
    weight: String,
    probability: String,
    rows: Vec<(String, String, String, String)>,
}

#[derive(Template)]
#[template(path = "explain.html")]
struct ExplainFragment {
    pairs: Vec<lakecdp_app::unify::JoinedPair>,
    weights: Vec<WeightsView>,
}

async fn explain(
    State(state): State<AppState>,
    page: Page,
    Path((env, id)): Path<(String, String)>,
) -> Response {
    let x = state
        .app
        .in_environment(&env)
        .explain(page.actor(), &id)
        .await;
    page.show(
        Some(&env),
        x.map(|x| ExplainFragment {
            pairs: x.pairs,
            weights: x
                .weights
                .into_iter()
                .map(|w| WeightsView {
                    record: w.record,
                    matched: w.matched,
                    weight: format!("{:.2}", w.weight),
                    probability: format!("{:.4}", w.probability),
                    rows: w
                        .rows
                        .into_iter()
                        .map(|r| {
                            let share = r
                                .term_frequency
                                .map(|f| format!("{:.4}%", f * 100.0))
                                .unwrap_or_default();
                            (r.column, r.level, share, format!("{:+.2}", r.weight))
                        })
                        .collect(),
                })
                .collect(),
        }),
    )
}

// ---- access: roles, tokens, the audit log ----

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    c: Chrome,
    name: String,
    creator: String,
    is_admin: bool,
    roles: Vec<(String, String, String, String)>,
    tokens: Vec<(String, String, String, String, String, String, String)>,
    audit: Vec<(String, String, String, String, String, String)>,
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

async fn access(State(state): State<AppState>, page: Page, Path(env): Path<String>) -> Response {
    let app = &state.app;
    let built = async {
        let role = role_in(app, page.actor(), &env).await?;
        let (e, roles, _) = app.roles(page.actor(), Some(&env)).await?;
        let is_admin = role >= Role::Admin;
        let (tokens, audit) = if is_admin {
            let now = chrono::Utc::now();
            let tokens = app
                .list_tokens(page.actor(), Some(&env))
                .await?
                .into_iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        format!("{:?}", t.role),
                        t.created_by.clone(),
                        t.expires_at.map(when).unwrap_or_else(|| "never".into()),
                        t.last_used_at.map(when).unwrap_or_else(|| "never".into()),
                        if t.is_active(now) {
                            "active"
                        } else {
                            "revoked or expired"
                        }
                        .to_string(),
                        path_segment(&t.name),
                    )
                })
                .collect();
            let audit = app
                .audit_log(
                    page.actor(),
                    Some(&env),
                    lakecdp_core::AuditQuery {
                        limit: 50,
                        ..Default::default()
                    },
                )
                .await?
                .into_iter()
                .map(|a| {
                    (
                        when(a.at),
                        a.actor,
                        a.action,
                        a.object,
                        format!("{:?}", a.outcome),
                        a.address.unwrap_or_default(),
                    )
                })
                .collect();
            (tokens, audit)
        } else {
            (Vec::new(), Vec::new())
        };
        Ok::<_, lakecdp_app::Error>(AccessPage {
            c: page.chrome(Some(&env)),
            name: env.clone(),
            creator: e.created_by.clone(),
            is_admin,
            roles: roles
                .into_iter()
                .map(|r| {
                    (
                        r.principal,
                        format!("{:?}", r.role),
                        r.assigned_by,
                        when(r.assigned_at),
                    )
                })
                .collect(),
            tokens,
            audit,
        })
    }
    .await;
    page.show(Some(&env), built)
}

#[derive(Deserialize)]
struct RoleForm {
    principal: String,
    role: String,
}

async fn set_role(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
    Form(form): Form<RoleForm>,
) -> Response {
    let done = async {
        let role = lakecdp_app::roles::parse_role(&form.role)?;
        state
            .app
            .set_role(page.actor(), Some(&env), form.principal.trim(), role)
            .await
    }
    .await;
    page.changed(Some(&env), done)
}

// ---- segments and measures ----

/// Rows of the condition builder.
const BUILDER_ROWS: usize = 3;

/// The builder's operators: the condition syntax's, and their names for people.
const OPERATORS: [(&str, &str); 12] = [
    ("=", "equals"),
    ("!=", "does not equal"),
    ("<", "is less than"),
    ("<=", "is at most"),
    (">", "is more than"),
    (">=", "is at least"),
    ("contains", "contains"),
    ("starts_with", "starts with"),
    ("in", "is one of (comma-separated)"),
    ("not in", "is none of (comma-separated)"),
    ("is empty", "is empty"),
    ("is not empty", "is not empty"),
];

/// The tables a condition may read.
const CONDITION_TABLES: [&str; 3] = ["Customer", "Customer_Measure", "UnifiedActivity"];

struct SegmentRow {
    name: String,
    description: String,
    members: String,
    trend: Option<String>,
    runs: usize,
    history: String,
}

#[derive(Template)]
#[template(path = "segments.html")]
struct SegmentsPage {
    c: Chrome,
    name: String,
    rows: Vec<SegmentRow>,
    row_numbers: Vec<usize>,
    tables: Vec<&'static str>,
    operators: Vec<(&'static str, &'static str)>,
    columns: Vec<String>,
    measures: Vec<(String, String, String)>,
}

async fn segments(State(state): State<AppState>, page: Page, Path(env): Path<String>) -> Response {
    let app = state.app.in_environment(&env);
    let built = async {
        let (specs, history) = state.app.segments(page.actor(), Some(&env)).await?;
        let measures = app.measures(page.actor()).await?;
        let columns = app.condition_columns(page.actor()).await?;
        let recent = &history[history.len().saturating_sub(20)..];
        let rows = specs
            .iter()
            .map(|spec| {
                let counts: Vec<u64> = recent
                    .iter()
                    .map(|h| h.counts.get(&spec.name).copied().unwrap_or(0))
                    .collect();
                let labels: Vec<String> = recent
                    .iter()
                    .map(|h| h.time.format("%m-%d %H:%M").to_string())
                    .collect();
                SegmentRow {
                    name: spec.name.clone(),
                    description: spec.description.clone().unwrap_or_default(),
                    members: counts
                        .last()
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "not run".into()),
                    trend: crate::reports::trend(&counts, &labels),
                    runs: counts.len(),
                    history: counts
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })
            .collect();
        Ok::<_, lakecdp_app::Error>(SegmentsPage {
            c: page.chrome(Some(&env)),
            name: env.clone(),
            rows,
            row_numbers: (0..BUILDER_ROWS).collect(),
            tables: CONDITION_TABLES.to_vec(),
            operators: OPERATORS.to_vec(),
            columns,
            measures: measures
                .iter()
                .map(|m| {
                    (
                        m.name.clone(),
                        format!("{:?}", m.function).to_lowercase(),
                        match &m.column {
                            Some(c) => format!("{}.{c}", m.table),
                            None => m.table.clone(),
                        },
                    )
                })
                .collect(),
        })
    }
    .await;
    page.show(Some(&env), built)
}

/// A value of a condition: a number or `true`/`false` as it is, anything else quoted.
fn literal(value: &str) -> String {
    let v = value.trim();
    if v.parse::<f64>().is_ok() || v == "true" || v == "false" {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "''"))
    }
}

/// The condition text of the builder's rows (`field: why` when a row is wrong; empty
/// when no row names a column).
fn builder_condition(form: &[(String, String)]) -> Result<String, String> {
    let get = |key: String| {
        form.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let any = get("combine".into()) == "any";
    let mut parts = Vec::new();
    for i in 0..BUILDER_ROWS {
        let column = get(format!("column{i}"));
        if column.is_empty() {
            continue;
        }
        if !column
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!("column: `{column}` is not a column name"));
        }
        let table = get(format!("table{i}"));
        if !CONDITION_TABLES.contains(&table.as_str()) {
            return Err(format!("table: `{table}` is not a table a condition reads"));
        }
        let op = get(format!("op{i}"));
        if !OPERATORS.iter().any(|(o, _)| *o == op) {
            return Err(format!("operator: `{op}` is not an operator"));
        }
        let column = if table == "Customer" {
            column
        } else {
            format!("{table}.{column}")
        };
        let value = get(format!("value{i}"));
        let part = match op.as_str() {
            "is empty" | "is not empty" => format!("{column} {op}"),
            "in" | "not in" => {
                let items: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(literal)
                    .collect();
                if items.is_empty() {
                    return Err(format!(
                        "value: give the values of row {} separated by commas",
                        i + 1
                    ));
                }
                format!("{column} {op} ({})", items.join(", "))
            }
            _ => {
                if value.is_empty() {
                    return Err(format!("value: give a value for row {}", i + 1));
                }
                format!("{column} {op} {}", literal(&value))
            }
        };
        parts.push(part);
    }
    Ok(parts.join(if any { " or " } else { " and " }))
}

#[derive(Template)]
#[template(path = "segment_preview.html")]
struct PreviewFragment {
    name: String,
    condition: String,
    count: u64,
    sample: Vec<String>,
    error: String,
}

async fn preview_segment(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
    axum::extract::RawForm(raw): axum::extract::RawForm,
) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&raw).into_owned().collect();
    let mut fragment = PreviewFragment {
        name: env.clone(),
        condition: String::new(),
        count: 0,
        sample: Vec::new(),
        error: String::new(),
    };
    let condition = match builder_condition(&form) {
        Ok(c) => c,
        Err(why) => {
            fragment.error = why;
            return (StatusCode::BAD_REQUEST, render(&fragment)).into_response();
        }
    };
    if condition.is_empty() {
        return render(&fragment);
    }
    match state
        .app
        .in_environment(&env)
        .preview_segment(page.actor(), &condition, 5)
        .await
    {
        Ok((count, batch)) => {
            fragment.count = count;
            if let Some(ids) = batch.column_by_name("CustomerId").and_then(arrow_cast_text) {
                fragment.sample = ids;
            }
            fragment.condition = condition;
            render(&fragment)
        }
        Err(e) => {
            let problem = Problem::from(e);
            fragment.error = problem.detail().to_string();
            (problem.status(), render(&fragment)).into_response()
        }
    }
}

fn arrow_cast_text(column: &arrow::array::ArrayRef) -> Option<Vec<String>> {
    use arrow::array::Array;
    let text = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8).ok()?;
    let text = text.as_any().downcast_ref::<arrow::array::StringArray>()?;
    Some(
        (0..text.len())
            .filter(|&i| !text.is_null(i))
            .map(|i| text.value(i).to_string())
            .collect(),
    )
}

// ---- reporting connections and profile reports ----

struct ReportingRow {
    name: String,
    status: String,
    reason: String,
    reads: String,
    created_by: String,
}

fn reads(c: &lakecdp_core::ReportingConnection) -> String {
    format!("{}/{}", c.storage.describe(), c.instance.folder())
}

struct FormField {
    name: &'static str,
    label: &'static str,
    value: String,
    secret: bool,
    help: &'static str,
    error: String,
}

struct ReportingForm {
    fields: Vec<FormField>,
    general: String,
}

impl ReportingForm {
    fn new(body: &crate::reports::NewReportingBody) -> Self {
        let field = |name, label, value: &str, secret, help| FormField {
            name,
            label,
            value: if secret {
                String::new()
            } else {
                value.to_string()
            },
            secret,
            help,
            error: String::new(),
        };
        Self {
            fields: vec![
                field(
                    "name",
                    "Name",
                    &body.name,
                    false,
                    "letters, digits, - and _",
                ),
                field("kind", "Storage", &body.kind, false, ""),
                field(
                    "path",
                    "Local folder (holding customerinsights/)",
                    &body.path,
                    false,
                    "",
                ),
                field("account", "Storage account name", &body.account, false, ""),
                field("account_key", "Account key", "", true, "write-only"),
                field("bucket", "S3 bucket", &body.bucket, false, ""),
                field("region", "S3 region", &body.region, false, "us-east-1"),
                field("access_key_id", "S3 access key id", "", true, "write-only"),
                field(
                    "secret_access_key",
                    "S3 secret access key",
                    "",
                    true,
                    "write-only",
                ),
                field(
                    "endpoint",
                    "Endpoint (emulators, private endpoints)",
                    &body.endpoint,
                    false,
                    "",
                ),
                field(
                    "emulator",
                    "The endpoint is the Azurite emulator",
                    if body.emulator { "true" } else { "" },
                    false,
                    "",
                ),
                field(
                    "environment_id",
                    "Environment id",
                    &body.environment_id,
                    false,
                    "",
                ),
                field(
                    "folder",
                    "Instance folder",
                    &body.folder,
                    false,
                    "customerinsights/ci_<environmentId>",
                ),
            ],
            general: String::new(),
        }
    }

    /// Put an error next to the field it names (`field: ...`), else above the form.
    fn with_error(mut self, message: &str) -> Self {
        let named = message.split_once(':').and_then(|(field, rest)| {
            self.fields
                .iter_mut()
                .find(|f| f.name == field.trim())
                .map(|f| (f, rest.trim()))
        });
        match named {
            Some((f, rest)) => f.error = rest.to_string(),
            None => self.general = message.to_string(),
        }
        self
    }
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportsPage {
    c: Chrome,
    name: String,
    rows: Vec<ReportingRow>,
    can_create: bool,
    form: ReportingForm,
}

#[derive(Template)]
#[template(path = "reporting_form.html")]
struct ReportingFormFragment {
    name: String,
    form: ReportingForm,
}

async fn reports(State(state): State<AppState>, page: Page, Path(env): Path<String>) -> Response {
    let built = async {
        let role = role_in(&state.app, page.actor(), &env).await?;
        let e = state.app.environment(Some(&env)).await?;
        let list = state
            .app
            .reporting_connections(page.actor(), Some(&env))
            .await?;
        let defaults = crate::reports::NewReportingBody {
            kind: "local".into(),
            environment_id: e.id.to_string(),
            folder: format!("customerinsights/{}", e.id.folder()),
            ..Default::default()
        };
        Ok::<_, lakecdp_app::Error>(ReportsPage {
            c: page.chrome(Some(&env)),
            name: env.clone(),
            rows: list
                .iter()
                .map(|c| ReportingRow {
                    name: c.name.clone(),
                    status: c.status.to_string(),
                    reason: c.reason.clone().unwrap_or_default(),
                    reads: reads(c),
                    created_by: c.created_by.clone(),
                })
                .collect(),
            can_create: role >= Role::Admin,
            form: ReportingForm::new(&defaults),
        })
    }
    .await;
    page.show(Some(&env), built)
}

async fn create_reporting(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
    Form(body): Form<crate::reports::NewReportingBody>,
) -> Response {
    let form = ReportingForm::new(&body);
    let created = match body.into_new() {
        Ok(new) => state
            .app
            .create_reporting_connection(page.actor(), Some(&env), new)
            .await
            .map_err(Problem::from),
        Err(p) => Err(p),
    };
    match created {
        Ok(c) => hx_redirect(&format!("/environments/{env}/reports/{}", c.name)),
        Err(problem) => {
            let status = problem.status();
            let fragment = ReportingFormFragment {
                name: env,
                form: form.with_error(problem.detail()),
            };
            (status, render(&fragment)).into_response()
        }
    }
}

struct ChartView {
    name: String,
    title: String,
    src: Option<String>,
    rows: Vec<(String, i64)>,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    c: Chrome,
    name: String,
    connection: String,
    status: String,
    reads: String,
    created_by: String,
    is_creator: bool,
    members: Vec<String>,
    charts: Vec<ChartView>,
    segments: Vec<(String, u64)>,
}

async fn report(
    State(state): State<AppState>,
    page: Page,
    Path((env, name)): Path<(String, String)>,
) -> Response {
    match state
        .app
        .profile_report(page.actor(), Some(&env), &name)
        .await
    {
        Ok((c, report)) => {
            let is_creator = c.created_by.eq_ignore_ascii_case(&page.caller.name);
            render(&ReportPage {
                c: page.chrome(Some(&env)),
                name: env,
                status: c.status.to_string(),
                reads: reads(&c),
                created_by: c.created_by.clone(),
                is_creator,
                members: c.members.clone(),
                connection: c.name,
                charts: report
                    .distributions
                    .iter()
                    .map(|d| ChartView {
                        name: d.name.clone(),
                        title: d.title.clone(),
                        src: crate::reports::chart(d),
                        rows: d.rows.clone(),
                    })
                    .collect(),
                segments: report.segments,
            })
        }
        Err(e) => page.problem(Some(&env), e.into()),
    }
}

#[derive(Deserialize)]
struct MemberForm {
    member: String,
}

fn refresh_page() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert("hx-refresh", HeaderValue::from_static("true"));
    r
}

async fn grant_reporting(
    State(state): State<AppState>,
    page: Page,
    Path((env, name)): Path<(String, String)>,
    Form(form): Form<MemberForm>,
) -> Response {
    page.changed(
        Some(&env),
        state
            .app
            .grant_reporting(page.actor(), Some(&env), &name, &form.member, true)
            .await,
    )
}

async fn delete_reporting(
    State(state): State<AppState>,
    page: Page,
    Path((env, name)): Path<(String, String)>,
) -> Response {
    match state
        .app
        .delete_reporting_connection(page.actor(), Some(&env), &name)
        .await
    {
        Ok(()) => hx_redirect(&format!("/environments/{env}/reports")),
        Err(e) => page.problem(Some(&env), e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_site_are_followed_after_sign_in() {
        assert_eq!(safe_next("/environments/x?q=1"), "/environments/x?q=1");
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example",
            "/\\evil",
            "x",
            "/a\r\nb",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn assets_carry_their_hash() {
        let a = &ASSETS.htmx;
        assert!(a.href.starts_with("/static/vendor/htmx-2.0.4.min.js?v="));
        assert!(a.integrity.starts_with("sha384-"));
        assert_eq!(a.integrity.len(), "sha384-".len() + 64);
        assert_ne!(ASSETS.css.href, a.href);
    }

    #[test]
    fn form_errors_go_next_to_the_field_they_name() {
        let body = crate::reports::NewReportingBody {
            name: "bi".into(),
            account_key: "secret".into(),
            ..Default::default()
        };
        let form = ReportingForm::new(&body).with_error("folder: not the instance folder");
        let folder = form.fields.iter().find(|f| f.name == "folder").unwrap();
        assert_eq!(folder.error, "not the instance folder");
        assert!(form.general.is_empty());
        let key = form
            .fields
            .iter()
            .find(|f| f.name == "account_key")
            .unwrap();
        assert!(key.value.is_empty(), "a key is never echoed");
        let form = ReportingForm::new(&body).with_error("the catalog is unreachable");
        assert_eq!(form.general, "the catalog is unreachable");
    }

    #[test]
    fn the_builder_writes_the_condition_syntax() {
        let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let all = form(&[
            ("combine", "all"),
            ("table0", "Customer"),
            ("column0", "Country"),
            ("op0", "in"),
            ("value0", "US, O'Hare ,"),
            ("table1", "Customer_Measure"),
            ("column1", "TotalSpend"),
            ("op1", ">="),
            ("value1", "100"),
            ("table2", "Customer"),
            ("column2", "Email"),
            ("op2", "is not empty"),
            ("value2", "ignored"),
        ]);
        let text = builder_condition(&all).unwrap();
        assert_eq!(
            text,
            "Country in ('US', 'O''Hare') and Customer_Measure.TotalSpend >= 100 and Email is not empty"
        );
        assert!(lakecdp_core::segment::parse_condition(&text).is_ok());
        let any = form(&[
            ("combine", "any"),
            ("table0", "Customer"),
            ("column0", "City"),
            ("op0", "="),
            ("value0", "Denver"),
            ("table1", "Customer"),
            ("column1", "City"),
            ("op1", "starts_with"),
            ("value1", "Bos"),
        ]);
        assert_eq!(
            builder_condition(&any).unwrap(),
            "City = 'Denver' or City starts_with 'Bos'"
        );
        assert_eq!(builder_condition(&form(&[("combine", "all")])).unwrap(), "");
        let bad = form(&[
            ("table0", "Customer"),
            ("column0", "x'); drop"),
            ("op0", "="),
        ]);
        assert!(builder_condition(&bad).unwrap_err().starts_with("column:"));
        let empty = form(&[("table0", "Customer"), ("column0", "City"), ("op0", "=")]);
        assert!(builder_condition(&empty).unwrap_err().starts_with("value:"));
        let table = form(&[("table0", "secrets"), ("column0", "City"), ("op0", "=")]);
        assert!(builder_condition(&table).unwrap_err().starts_with("table:"));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes_text(512), "512 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(bytes_text(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
