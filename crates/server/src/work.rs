//! The API of an environment's work: creating, checking and deleting environments, unify
//! explain and preview, segments and their preview, measures, connections and exports
//! (an export run is a background job, as a refresh is).
//!
//! Each handler runs its operation through [`App::in_environment`], the application
//! acting in the environment of the path.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lakecdp_app::connections::{ConnectionChanges, NewConnection};
use lakecdp_app::environments::Creation;
use lakecdp_app::exports::{ExportChanges, ExportSummary, NewExport};
use lakecdp_app::observe::{check_report_json, unify_report_json};
use lakecdp_app::segments::rows_json;
use lakecdp_app::{App, CheckReport, Event, Observer};
use lakecdp_core::Secret;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};
use crate::AppState;

/// The routes of this module.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_environment))
        .routes(routes!(delete_environment))
        .routes(routes!(check_environment))
        .routes(routes!(explain))
        .routes(routes!(search_customers))
        .routes(routes!(customer_card))
        .routes(routes!(preview_unification))
        .routes(routes!(train_unification))
        .routes(routes!(show_segment))
        .routes(routes!(preview_segment))
        .routes(routes!(list_measures))
        .routes(routes!(add_connection))
        .routes(routes!(show_connection, edit_connection, delete_connection))
        .routes(routes!(test_connection))
        .routes(routes!(set_connection_secret))
        .routes(routes!(add_export))
        .routes(routes!(show_export, edit_export, delete_export))
        .routes(routes!(run_export))
}

/// The application acting in environment `env`.
fn app_in(state: &AppState, env: &str) -> App {
    state.app.in_environment(env)
}

/// Keeps the prerequisite table a check reports.
#[derive(Default)]
pub(crate) struct Checks(Mutex<Option<Arc<CheckReport>>>);

impl Observer for Checks {
    fn event(&self, event: &Event) {
        if let Event::ChecksFinished(report) = event {
            if let Ok(mut slot) = self.0.lock() {
                *slot = Some(Arc::clone(report));
            }
        }
    }
}

impl Checks {
    pub(crate) fn take(&self) -> Option<Arc<CheckReport>> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

fn created(location: String, body: Value) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

// ---- environments ----

/// A new environment.
#[derive(Deserialize, ToSchema)]
pub(crate) struct NewEnvironment {
    /// The whole `lakecdp.toml`; it becomes revision 1.
    text: String,
    /// Create the container (or bucket) when it is missing.
    #[serde(default)]
    create_container: bool,
    /// The folder its relative paths resolve in, named relative to the server's data
    /// root (e.g. `customers/acme`); the data root itself when left out.
    #[serde(default)]
    base: Option<String>,
}

/// Create an environment from a project file (the server's administrators): the
/// prerequisite checks run first, and the file becomes revision 1. Local paths must lie
/// under the server's `--data-root`.
#[utoipa::path(post, path = "/api/environments", tag = "environments",
    request_body = NewEnvironment,
    responses((status = 201, description = "created, with its prerequisite table"),
        (status = 400, description = "the file does not validate or a check failed"),
        (status = 409, description = "an environment of that name exists")))]
async fn create_environment(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewEnvironment>,
) -> ApiResult<Response> {
    let checks = Checks::default();
    let create = Creation {
        create_container: body.create_container,
        adopt: false,
    };
    let env = crate::api::based(&state.app, body.base.as_deref())?
        .create_environment_from_text(&caller.actor, &body.text, &create, &checks)
        .await?;
    let table = checks.take().map(|r| check_report_json(&r));
    Ok(created(
        format!("/api/environments/{}", env.id),
        json!({"environment": env, "checks": table}),
    ))
}

/// Delete an environment from the catalog (Admin). Its lake folder stays; nothing is
/// purged over the API.
#[utoipa::path(delete, path = "/api/environments/{env}", tag = "environments",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 204, description = "deleted"), (status = 404, description = "unknown")))]
async fn delete_environment(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<StatusCode> {
    let e = state.app.environment(Some(&env)).await?;
    state
        .app
        .delete_environment(&caller.actor, &e, false)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Run the prerequisite checks of an environment's storage (Viewer) and return the
/// table, failed checks included; the result is recorded.
#[utoipa::path(post, path = "/api/environments/{env}/checks", tag = "environments",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "the prerequisite table")))]
async fn check_environment(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let e = state.app.environment(Some(&env)).await?;
    let checks = Checks::default();
    let result = state
        .app
        .check_environment(&caller.actor, &e, true, false, &checks)
        .await;
    match (result, checks.take()) {
        (Ok(report), _) => Ok(Json(check_report_json(&report))),
        // failed checks are an answer, not an error
        (Err(e), Some(report)) if e.kind() == lakecdp_app::ErrorKind::Invalid => {
            Ok(Json(check_report_json(&report)))
        }
        (Err(e), _) => Err(e.into()),
    }
}

// ---- unification ----

/// Why a profile holds its records: its source records, the merged row, the pairs that
/// joined them and its CustomerId's history (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/customers/{id}/explain", tag = "unification",
    params(("env" = String, Path, description = "environment name or id"),
        ("id" = String, Path, description = "CustomerId")),
    responses((status = 200, description = "the explanation")))]
async fn explain(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let x = app_in(&state, &env).explain(&caller.actor, &id).await?;
    Ok(Json(json!(x)))
}

/// A customer search.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
pub(crate) struct CustomerQuery {
    /// Words (typos allowed), or a whole email, phone or CustomerId.
    q: String,
    /// The first result's position (default 0).
    offset: usize,
    /// Results in the page (default 20, at most 100).
    limit: Option<usize>,
}

/// Search the unified profiles by name, email, phone, city or CustomerId; typos are
/// allowed (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/customers", tag = "unification",
    params(("env" = String, Path, description = "environment name or id"), CustomerQuery),
    responses((status = 200, description = "a page of profiles, best first"),
        (status = 503, description = "the search index is still being built")))]
async fn search_customers(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    axum::extract::Query(query): axum::extract::Query<CustomerQuery>,
) -> ApiResult<Json<Value>> {
    let found = app_in(&state, &env)
        .search_customers(
            &caller.actor,
            &query.q,
            query.offset,
            query.limit.unwrap_or(20),
        )
        .await?;
    Ok(Json(json!(found)))
}

/// A customer's card: the profile, its source records, measures, segments and latest
/// activities (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/customers/{id}", tag = "unification",
    params(("env" = String, Path, description = "environment name or id"),
        ("id" = String, Path, description = "CustomerId")),
    responses((status = 200, description = "the card"), (status = 404, description = "no such profile")))]
async fn customer_card(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let card = app_in(&state, &env)
        .customer_card(&caller.actor, &id)
        .await?;
    Ok(Json(json!(card)))
}

/// What to preview.
#[derive(Deserialize, Default, ToSchema)]
#[serde(default)]
pub(crate) struct UnifyPreview {
    /// Records per table (default 1000, at most 100000).
    sample: Option<usize>,
    /// A project file whose rules to try instead of the applied revision's.
    text: Option<String>,
    /// Or only a `[unification]` section to try in the applied project.
    rules: Option<String>,
}

/// Unify a sample of each table and report the matches per rule; nothing is published
/// (Viewer).
#[utoipa::path(post, path = "/api/environments/{env}/unification/preview", tag = "unification",
    params(("env" = String, Path, description = "environment name or id")),
    request_body(content = UnifyPreview, description = "sample size and rules (optional)"),
    responses((status = 200, description = "the preview's report")))]
async fn preview_unification(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    body: Option<Json<UnifyPreview>>,
) -> ApiResult<Json<Value>> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let sample = body.sample.unwrap_or(1000).clamp(1, 100_000);
    let text = match (body.text, body.rules) {
        (Some(_), Some(_)) => {
            return Err(Problem::bad_request(
                "give either `text` (a whole project file) or `rules` (its [unification] section), not both",
            ))
        }
        (None, Some(rules)) => Some(
            state
                .app
                .project_with_rules(&caller.actor, &env, &rules)
                .await?,
        ),
        (text, None) => text,
    };
    let report = app_in(&state, &env)
        .preview_unification(&caller.actor, text.as_deref(), sample)
        .await?;
    Ok(Json(unify_report_json(&report)))
}

/// What to train the match models on.
#[derive(Deserialize, Default, ToSchema)]
pub(crate) struct UnifyTrain {
    /// Train on the first N records of each table only (default: all).
    sample: Option<usize>,
}

/// Train the applied revision's match models anew on the records and store them in the
/// lake for later refreshes; nothing is published (Contributor).
#[utoipa::path(post, path = "/api/environments/{env}/unification/train", tag = "unification",
    params(("env" = String, Path, description = "environment name or id")),
    request_body(content = UnifyTrain, description = "sample size (optional)"),
    responses((status = 200, description = "the training's report, per model"),
        (status = 400, description = "the applied project declares no match model")))]
async fn train_unification(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    body: Option<Json<UnifyTrain>>,
) -> ApiResult<Json<Value>> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let report = app_in(&state, &env)
        .train_unification(&caller.actor, body.sample)
        .await?;
    Ok(Json(unify_report_json(&report)))
}

// ---- segments and measures ----

/// One segment and its member counts run after run (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/segments/{name}", tag = "segments",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "segment name")),
    responses((status = 200, description = "the segment"), (status = 404, description = "unknown")))]
async fn show_segment(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (spec, history) = app_in(&state, &env).segment(&caller.actor, &name).await?;
    Ok(Json(json!({"segment": spec, "history": history})))
}

/// A condition to preview.
#[derive(Deserialize, ToSchema)]
pub(crate) struct SegmentPreview {
    /// The condition, as in a segment's `where`.
    condition: String,
    /// How many members to return (default 10, at most 100).
    #[serde(default)]
    sample: Option<usize>,
}

/// How many customers a condition selects now, and a few of them; nothing is saved
/// (Viewer).
#[utoipa::path(post, path = "/api/environments/{env}/segments/preview", tag = "segments",
    params(("env" = String, Path, description = "environment name or id")),
    request_body = SegmentPreview,
    responses((status = 200, description = "the count and a sample"),
        (status = 400, description = "the condition does not parse")))]
async fn preview_segment(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    Json(body): Json<SegmentPreview>,
) -> ApiResult<Json<Value>> {
    let sample = body.sample.unwrap_or(10).min(100);
    let (count, batch) = app_in(&state, &env)
        .preview_segment(&caller.actor, &body.condition, sample)
        .await?;
    Ok(Json(
        json!({"members": count, "sample": rows_json(&batch)?}),
    ))
}

/// The measures of the applied revision (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/measures", tag = "segments",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "the measures")))]
async fn list_measures(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        app_in(&state, &env).measures(&caller.actor).await?
    )))
}

// ---- connections ----

/// A new connection. Its secrets are sealed at once and never returned.
#[derive(Deserialize, ToSchema)]
pub(crate) struct ConnectionBody {
    /// Its name.
    name: String,
    /// `postgresql`, `local`, `s3` or `adls`.
    kind: String,
    /// Who may use it in exports: `admins` (default) or `contributors`.
    #[serde(default)]
    usable_by: Option<String>,
    /// Its settings (host, user, bucket…).
    #[serde(default)]
    settings: BTreeMap<String, String>,
    /// Its secrets by name (password, secret_access_key…): write-only.
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

fn connection_json(c: &lakecdp_core::Connection, exports: &[String]) -> Value {
    json!({"name": c.name, "kind": c.kind.as_str(), "usable_by": c.sharing.to_string(),
        "settings": c.settings, "secrets": c.secrets, "exports": exports,
        "created_by": c.created_by, "created_at": c.created_at, "updated_at": c.updated_at})
}

/// Add a connection with its secrets sealed (Admin).
#[utoipa::path(post, path = "/api/environments/{env}/connections", tag = "connections",
    params(("env" = String, Path, description = "environment name or id")),
    request_body = ConnectionBody,
    responses((status = 201, description = "added"), (status = 400, description = "invalid settings")))]
async fn add_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    Json(body): Json<ConnectionBody>,
) -> ApiResult<Response> {
    let new = NewConnection {
        name: body.name,
        kind: body.kind,
        usable_by: body.usable_by.unwrap_or_else(|| "admins".to_string()),
        settings: body.settings,
        secrets: body
            .secrets
            .into_iter()
            .map(|(k, v)| (k, Secret::new(v)))
            .collect(),
    };
    let c = app_in(&state, &env)
        .add_connection(&caller.actor, new)
        .await?;
    Ok(created(
        format!("/api/environments/{env}/connections/{}", c.name),
        connection_json(&c, &[]),
    ))
}

/// A connection's settings (never its secrets' values) and the exports using it (Admin).
#[utoipa::path(get, path = "/api/environments/{env}/connections/{name}", tag = "connections",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "connection name")),
    responses((status = 200, description = "the connection")))]
async fn show_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (c, users) = app_in(&state, &env)
        .show_connection(&caller.actor, &name)
        .await?;
    Ok(Json(connection_json(&c, &users)))
}

/// Changes to a connection.
#[derive(Deserialize, Default, ToSchema)]
#[serde(default)]
pub(crate) struct ConnectionEdit {
    /// Settings to set.
    set: BTreeMap<String, String>,
    /// Settings to remove.
    unset: Vec<String>,
    /// Another sharing.
    usable_by: Option<String>,
    /// A new name.
    rename: Option<String>,
}

/// Change a connection's settings, sharing or name (Admin); the changes in words.
#[utoipa::path(patch, path = "/api/environments/{env}/connections/{name}", tag = "connections",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "connection name")),
    request_body = ConnectionEdit, responses((status = 200, description = "the changes made")))]
async fn edit_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
    Json(body): Json<ConnectionEdit>,
) -> ApiResult<Json<Value>> {
    let changes = ConnectionChanges {
        set: body.set,
        unset: body.unset,
        usable_by: body.usable_by,
        rename: body.rename,
    };
    let made = app_in(&state, &env)
        .edit_connection(&caller.actor, &name, changes)
        .await?;
    Ok(Json(json!({"changes": made})))
}

/// Delete a connection and its secrets (Admin); refused while an export uses it.
#[utoipa::path(delete, path = "/api/environments/{env}/connections/{name}", tag = "connections",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "connection name")),
    responses((status = 204, description = "deleted"), (status = 409, description = "in use")))]
async fn delete_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app_in(&state, &env)
        .delete_connection(&caller.actor, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check that a connection reaches its destination with the permissions exports need
/// (Admin).
#[utoipa::path(post, path = "/api/environments/{env}/connections/{name}/test", tag = "connections",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "connection name")),
    responses((status = 200, description = "each check")))]
async fn test_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let t = app_in(&state, &env)
        .test_connection(&caller.actor, &name)
        .await?;
    let lines: Vec<Value> = t
        .lines
        .iter()
        .map(|l| {
            json!({"check": l.name, "passed": l.is_ok(),
                "detail": l.detail, "fix": l.fix})
        })
        .collect();
    Ok(Json(json!({"destination": t.destination, "checks": lines})))
}

/// Replace one secret of a connection (Admin); write-only.
#[utoipa::path(put, path = "/api/environments/{env}/connections/{name}/secrets/{secret}", tag = "connections",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "connection name"),
        ("secret" = String, Path, description = "the secret's name, e.g. password")),
    request_body = crate::api::SecretBody,
    responses((status = 204, description = "sealed")))]
async fn set_connection_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name, secret)): Path<(String, String, String)>,
    Json(body): Json<crate::api::SecretBody>,
) -> ApiResult<StatusCode> {
    let value = Secret::new(body.value);
    app_in(&state, &env)
        .set_connection_secret(&caller.actor, &name, &secret, &value)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- exports ----

/// A new export.
#[derive(Deserialize, ToSchema)]
pub(crate) struct ExportBody {
    /// Its name.
    name: String,
    /// The connection it sends through.
    connection: String,
    /// `<process folder>/<Entity>` of each table, e.g. `Unification/Customer`.
    tables: Vec<String>,
    /// PostgreSQL: the database (the environment's name by default).
    #[serde(default)]
    database: Option<String>,
    /// PostgreSQL: the schema.
    #[serde(default)]
    schema: Option<String>,
    /// `off` (default), `on-refresh` or `daily 03:00 UTC`.
    #[serde(default)]
    schedule: Option<String>,
}

fn export_json(s: &ExportSummary) -> Value {
    json!({"export": s.export,
        "connection": s.connection.as_ref().map(|(n, k)| json!({"name": n, "kind": k.as_str()})),
        "runs": s.runs, "retired_tables": s.retired_tables,
        "previous_databases": s.previous_databases})
}

/// Add an export (Contributor, with the use of its connection).
#[utoipa::path(post, path = "/api/environments/{env}/exports", tag = "exports",
    params(("env" = String, Path, description = "environment name or id")),
    request_body = ExportBody,
    responses((status = 201, description = "added"), (status = 400, description = "invalid")))]
async fn add_export(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    Json(body): Json<ExportBody>,
) -> ApiResult<Response> {
    let new = NewExport {
        name: body.name,
        connection: body.connection,
        tables: body.tables,
        database: body.database,
        schema: body.schema,
        schedule: body.schedule.unwrap_or_else(|| "off".to_string()),
    };
    let (export, connection) = app_in(&state, &env).add_export(&caller.actor, new).await?;
    Ok(created(
        format!("/api/environments/{env}/exports/{}", export.name),
        json!({"export": export, "connection": connection.name}),
    ))
}

/// One export with its last five runs (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/exports/{name}", tag = "exports",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "export name")),
    responses((status = 200, description = "the export")))]
async fn show_export(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let s = app_in(&state, &env)
        .show_export(&caller.actor, &name)
        .await?;
    Ok(Json(export_json(&s)))
}

/// Changes to an export.
#[derive(Deserialize, Default, ToSchema)]
#[serde(default)]
pub(crate) struct ExportEdit {
    /// Another connection.
    connection: Option<String>,
    /// Tables to select.
    add_tables: Vec<String>,
    /// Tables to stop exporting (what was exported stays).
    remove_tables: Vec<String>,
    /// Another database (the old one is left as it is).
    database: Option<String>,
    /// Another schema.
    schema: Option<String>,
    /// Another schedule.
    schedule: Option<String>,
}

/// Change an export (Contributor); the changes in words.
#[utoipa::path(patch, path = "/api/environments/{env}/exports/{name}", tag = "exports",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "export name")),
    request_body = ExportEdit, responses((status = 200, description = "the changes made")))]
async fn edit_export(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
    Json(body): Json<ExportEdit>,
) -> ApiResult<Json<Value>> {
    let changes = ExportChanges {
        connection: body.connection,
        add_tables: body.add_tables,
        remove_tables: body.remove_tables,
        database: body.database,
        schema: body.schema,
        schedule: body.schedule,
    };
    let made = app_in(&state, &env)
        .edit_export(&caller.actor, &name, changes)
        .await?;
    Ok(Json(json!({"changes": made})))
}

/// Delete an export; what it wrote stays where it is (Contributor).
#[utoipa::path(delete, path = "/api/environments/{env}/exports/{name}", tag = "exports",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "export name")),
    responses((status = 204, description = "deleted")))]
async fn delete_export(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app_in(&state, &env)
        .delete_export(&caller.actor, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Run an export as a background job (Contributor): returns its run id at once; follow
/// it at `/api/runs/{id}` and its events, cancel it with `DELETE /api/runs/{id}`.
#[utoipa::path(post, path = "/api/environments/{env}/exports/{name}/run", tag = "exports",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "export name")),
    responses((status = 202, description = "started")))]
async fn run_export(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_in(&state, &env);
    let started = app.start_export(&caller.actor, &name).await?;
    let run = state.jobs.spawn_export(app, started);
    Ok(crate::jobs::accepted(&run))
}
