//! The JSON API: one handler per `lakecdp-app` operation, each documented for the
//! OpenAPI description by the same macro that routes it.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::Stream;
use lakecdp_app::accounts::SignedIn;
use lakecdp_app::roles::parse_role;
use lakecdp_app::{RefreshRequest, Silent};
use lakecdp_core::{AuditQuery, RunId};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, Caller, SESSION_COOKIE};
use crate::problem::{ApiResult, Problem};
use crate::AppState;

/// Every API route, with its description.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in, whoami, sign_out))
        .routes(routes!(list_environments))
        .routes(routes!(show_environment))
        .routes(routes!(list_revisions, apply_revision))
        .routes(routes!(diff_project))
        .routes(routes!(list_sources))
        .routes(routes!(list_segments))
        .routes(routes!(list_exports))
        .routes(routes!(show_revision))
        .routes(routes!(list_runs))
        .routes(routes!(start_refresh))
        .routes(routes!(show_run, cancel_run))
        .routes(routes!(run_events))
        .routes(routes!(list_roles))
        .routes(routes!(set_role, remove_role))
        .routes(routes!(list_connections))
        .routes(routes!(list_secrets))
        .routes(routes!(set_secret, remove_secret))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(list_users, add_user))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
        .routes(routes!(reset_password))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(delete_group))
        .routes(routes!(add_member, remove_member))
        .routes(routes!(audit_log))
        .routes(routes!(sharing_status, enable_sharing))
        .routes(routes!(repair_sharing))
        .routes(routes!(add_sharing_recipient))
        .routes(routes!(list_attachments, attach_sharing))
        .routes(routes!(detach_sharing))
}

fn run_id(text: &str) -> ApiResult<RunId> {
    RunId::parse(text.trim())
        .ok_or_else(|| Problem::bad_request(format!("`{text}` is not a run id")))
}

// ---- sessions ----

/// Credentials to sign in with.
#[derive(Deserialize, ToSchema)]
pub(crate) struct SignIn {
    /// The user's name.
    name: String,
    /// Its password.
    password: String,
}

/// Sign in: sets the session cookie and returns the CSRF token that state-changing
/// requests must carry in `X-CSRF-Token`.
#[utoipa::path(post, path = "/api/session", tag = "session", request_body = SignIn,
    responses((status = 200, description = "signed in"),
        (status = 401, description = "wrong name or password, or locked out")))]
async fn sign_in(
    State(state): State<AppState>,
    auth::ClientAddress(address): auth::ClientAddress,
    Json(body): Json<SignIn>,
) -> ApiResult<Response> {
    let signed: SignedIn = state
        .app
        .sign_in(
            &body.name,
            &body.password,
            address.as_deref(),
            &state.config.policy,
        )
        .await?;
    let max_age = state.config.policy.absolute.num_seconds().max(0);
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax",
        signed.token
    );
    let mut response = Json(json!({
        "principal": signed.principal,
        "csrf_token": signed.csrf_token,
        "expires_at": signed.expires_at,
    }))
    .into_response();
    if let Ok(value) = header::HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// The caller: its name, how it authenticated and, for a session, its CSRF token.
#[utoipa::path(get, path = "/api/session", tag = "session",
    responses((status = 200, description = "the caller"), (status = 401, description = "not signed in")))]
async fn whoami(caller: Caller) -> Json<Value> {
    Json(match &caller.via {
        auth::Via::Session { csrf } => {
            json!({"principal": caller.name, "via": "session", "csrf_token": csrf})
        }
        auth::Via::Token(t) => json!({"principal": caller.name, "via": "token",
            "environment_id": t.environment_id, "role": t.role}),
    })
}

/// Sign out: the session ends at once.
#[utoipa::path(delete, path = "/api/session", tag = "session",
    responses((status = 204, description = "signed out")))]
async fn sign_out(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let auth::Via::Session { .. } = caller.via {
        if let Some(token) = auth::cookie(&headers, SESSION_COOKIE) {
            state.app.sign_out(token, caller.address.as_deref()).await?;
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_static(
            "lakecdp_session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax",
        ),
    );
    Ok(response)
}

// ---- environments, revisions, runs ----

/// The environments the caller may see.
#[utoipa::path(get, path = "/api/environments", tag = "environments",
    responses((status = 200, description = "environments")))]
async fn list_environments(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let list = state.app.list_environments(&caller.actor).await?;
    Ok(Json(json!(list)))
}

/// One environment with its profiles and lake size (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}", tag = "environments",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "the environment"), (status = 404, description = "unknown")))]
async fn show_environment(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let d = state
        .app
        .show_environment(&caller.actor, Some(&env))
        .await?;
    let (db_gb, files_gb) = d.capacity();
    Ok(Json(json!({
        "environment": d.environment,
        "profiles": d.profiles,
        "lake_bytes": d.lake_bytes.as_ref().ok(),
        "lake_error": d.lake_bytes.as_ref().err(),
        "capacity": {"database_gb": db_gb, "files_gb": files_gb},
    })))
}

/// The applied revisions of an environment's project, newest first (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/revisions", tag = "revisions",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "revisions without their text")))]
async fn list_revisions(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let (_, revisions) = state.app.revisions(&caller.actor, Some(&env)).await?;
    let list: Vec<Value> = revisions
        .iter()
        .map(|r| {
            json!({"number": r.number, "hash": r.hash, "applied_by": r.applied_by,
            "applied_at": r.applied_at})
        })
        .collect();
    Ok(Json(json!(list)))
}

/// A project file.
#[derive(Deserialize, ToSchema)]
pub(crate) struct ProjectText {
    /// The whole `lakecdp.toml`.
    text: String,
    /// The folder its relative paths resolve in, named relative to the server's data
    /// root (e.g. `customers/acme`); the data root itself when left out.
    #[serde(default)]
    base: Option<String>,
}

/// The application with revisions based in `base` (under the data root), or as it is.
pub(crate) fn based(
    app: &lakecdp_app::App,
    base: Option<&str>,
) -> lakecdp_app::Result<lakecdp_app::App> {
    match base {
        Some(folder) => app.in_folder(folder),
        None => Ok(app.clone()),
    }
}

/// Store a project file as the environment's next applied revision (Contributor);
/// unchanged when it is the applied one. Changes to the environment's own settings
/// (`[environment]`) are refused here: they need the prerequisite checks of
/// `lakecdp apply`.
#[utoipa::path(post, path = "/api/environments/{env}/revisions", tag = "revisions",
    params(("env" = String, Path, description = "environment name or id")),
    request_body = ProjectText,
    responses((status = 201, description = "a new revision"), (status = 200, description = "unchanged"),
        (status = 400, description = "the file does not validate")))]
async fn apply_revision(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    Json(body): Json<ProjectText>,
) -> ApiResult<Response> {
    let change = based(&state.app, body.base.as_deref())?
        .apply_text(&caller.actor, &env, &body.text)
        .await?;
    Ok(match change {
        lakecdp_app::revisions::RevisionChange::New(n) => (
            StatusCode::CREATED,
            Json(json!({"revision": n, "changed": true})),
        )
            .into_response(),
        lakecdp_app::revisions::RevisionChange::Unchanged(n) => {
            Json(json!({"revision": n, "changed": false})).into_response()
        }
    })
}

/// A project file against the applied revision, line by line (Viewer).
#[utoipa::path(post, path = "/api/environments/{env}/diff", tag = "revisions",
    params(("env" = String, Path, description = "environment name or id")),
    request_body = ProjectText, responses((status = 200, description = "the lines, marked")))]
async fn diff_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    Json(body): Json<ProjectText>,
) -> ApiResult<Json<Value>> {
    use lakecdp_app::revisions::DiffLine;
    let d = state
        .app
        .diff_text(&caller.actor, Some(&env), &body.text)
        .await?;
    let lines: Vec<Value> = d
        .lines
        .iter()
        .map(|l| match l {
            DiffLine::Same(t) => json!({"op": "same", "line": t}),
            DiffLine::Added(t) => json!({"op": "added", "line": t}),
            DiffLine::Removed(t) => json!({"op": "removed", "line": t}),
        })
        .collect();
    Ok(Json(json!({"revision": d.revision, "lines": lines})))
}

/// The sources of the applied revision (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/sources", tag = "environments",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "sources")))]
async fn list_sources(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        state.app.applied_sources(&caller.actor, &env).await?
    )))
}

/// The segments and their member counts run after run (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/segments", tag = "environments",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "segments and their history")))]
async fn list_segments(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let (segments, history) = state.app.segments(&caller.actor, Some(&env)).await?;
    Ok(Json(json!({"segments": segments, "history": history})))
}

/// The exports with their connection and last run (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/exports", tag = "exports",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "exports")))]
async fn list_exports(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let (_, list) = state.app.list_exports(&caller.actor, Some(&env)).await?;
    let out: Vec<Value> = list
        .iter()
        .map(|e| {
            json!({"export": e.export,
                "connection": e.connection.as_ref().map(|(n, k)| json!({"name": n, "kind": k.as_str()})),
                "last_run": e.runs.first()})
        })
        .collect();
    Ok(Json(json!(out)))
}

/// One applied revision with its text (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/revisions/{number}", tag = "revisions",
    params(("env" = String, Path, description = "environment name or id"),
        ("number" = u32, Path, description = "revision number")),
    responses((status = 200, description = "the revision"), (status = 404, description = "unknown")))]
async fn show_revision(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, number)): Path<(String, u32)>,
) -> ApiResult<Json<Value>> {
    let (_, revisions) = state.app.revisions(&caller.actor, Some(&env)).await?;
    let r = revisions
        .into_iter()
        .find(|r| r.number == number)
        .ok_or_else(|| Problem::not_found(format!("no revision {number} of `{env}`")))?;
    Ok(Json(json!(r)))
}

/// Paging of lists.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Limit {
    /// At most this many (default 50).
    limit: Option<usize>,
}

/// The newest runs of an environment (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/runs", tag = "runs",
    params(("env" = String, Path, description = "environment name or id"), Limit),
    responses((status = 200, description = "runs, newest first")))]
async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    Query(q): Query<Limit>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let (_, runs) = state.app.runs(&caller.actor, Some(&env), limit).await?;
    Ok(Json(json!(runs)))
}

/// What to refresh.
#[derive(Deserialize, Default, ToSchema)]
#[serde(default)]
pub(crate) struct RefreshBody {
    /// Only this process and what depends on it (a process id, or `ingest`).
    only: Option<String>,
    /// Only this source's ingestion and what depends on it.
    source: Option<String>,
    /// Reload sources even when unchanged.
    force: bool,
    /// Load incremental sources in full.
    full: bool,
    /// Match every record in unification, not only what changed.
    full_unify: bool,
}

/// Start a refresh as a background job (Contributor): returns its run id at once; 409
/// when another refresh of the environment is running.
#[utoipa::path(post, path = "/api/environments/{env}/refresh", tag = "runs",
    params(("env" = String, Path, description = "environment name or id")),
    request_body(content = RefreshBody, description = "what to refresh (optional)"),
    responses((status = 202, description = "started"), (status = 409, description = "a refresh is running")))]
async fn start_refresh(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    body: Option<Json<RefreshBody>>,
) -> ApiResult<Response> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let request = RefreshRequest {
        environment: Some(env),
        only: body.only,
        source: body.source,
        force: body.force,
        full: body.full,
        from: None,
        full_unify: body.full_unify,
    };
    let plan = state
        .app
        .plan_refresh(&caller.actor, &request)
        .await?
        .ok_or_else(|| {
            Problem::bad_request("nothing to refresh: the project declares no sources")
        })?;
    let started = state
        .app
        .start_refresh(&caller.actor, &request, &plan, &Silent)
        .await?;
    let run = state.jobs.spawn_refresh(state.app.clone(), started);
    Ok(crate::jobs::accepted(&run))
}

/// One run, with the processes of a refresh (Viewer).
#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "run id")),
    responses((status = 200, description = "the run"), (status = 404, description = "unknown")))]
async fn show_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (env, run, children) = state.app.run(&caller.actor, &id).await?;
    Ok(Json(
        json!({"environment": env.name, "run": run, "processes": children}),
    ))
}

/// Ask a running refresh to stop (Contributor); whichever instance runs it cancels it.
#[utoipa::path(delete, path = "/api/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "run id")),
    responses((status = 202, description = "cancel requested"), (status = 409, description = "ended already")))]
async fn cancel_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = run_id(&id)?;
    state.app.cancel_run(&caller.actor, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run": id, "cancel": "requested"})),
    )
        .into_response())
}

/// A run's events as server-sent events (Viewer); the stream ends with the run. Resumes
/// after `Last-Event-ID`.
#[utoipa::path(get, path = "/api/runs/{id}/events", tag = "runs",
    params(("id" = String, Path, description = "run id")),
    responses((status = 200, description = "text/event-stream of JSON events")))]
async fn run_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let id = run_id(&id)?;
    let after: u64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // refused before the stream starts, so the status says it
    state.app.run_events(&caller.actor, &id, after, 1).await?;
    let stream = futures::stream::unfold(
        (state, caller, id, after, false),
        |(state, caller, id, after, done)| async move {
            if done {
                return None;
            }
            loop {
                let events = match state.app.run_events(&caller.actor, &id, after, 200).await {
                    Ok(e) => e,
                    Err(_) => return None,
                };
                if !events.is_empty() {
                    let last = events.last().map_or(after, |e| e.seq);
                    let finished = events
                        .iter()
                        .any(|e| e.body.starts_with("{\"type\":\"finished\""));
                    let out: Vec<Result<SseEvent, Infallible>> = events
                        .into_iter()
                        .map(|e| Ok(SseEvent::default().id(e.seq.to_string()).data(e.body)))
                        .collect();
                    return Some((out, (state, caller, id, last, finished)));
                }
                // a run that ended without a job's closing event (run elsewhere) ends too
                match state.app.run(&caller.actor, id.as_str()).await {
                    Ok((_, run, _)) if run.status.is_final() => {
                        let end = json!({"type": "finished", "run": run.id,
                            "status": run.status.as_str()});
                        let out = vec![Ok(SseEvent::default().data(end.to_string()))];
                        return Some((out, (state, caller, id, after, true)));
                    }
                    Ok(_) => {}
                    Err(_) => return None,
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        },
    );
    use futures::StreamExt;
    let flat = stream.flat_map(futures::stream::iter);
    Ok(Sse::new(flat).keep_alive(KeepAlive::default()))
}

// ---- roles, connections, tokens ----

/// The role assignments of an environment (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/roles", tag = "roles",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "role assignments")))]
async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let (_, roles, _) = state.app.roles(&caller.actor, Some(&env)).await?;
    Ok(Json(json!(roles)))
}

/// A role.
#[derive(Deserialize, ToSchema)]
pub(crate) struct RoleBody {
    /// `viewer`, `contributor` or `admin`.
    role: String,
}

/// Grant a principal (user, application or group) a role (Admin).
#[utoipa::path(put, path = "/api/environments/{env}/roles/{principal}", tag = "roles",
    params(("env" = String, Path, description = "environment name or id"),
        ("principal" = String, Path, description = "user, application or group")),
    request_body = RoleBody, responses((status = 204, description = "granted")))]
async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, principal)): Path<(String, String)>,
    Json(body): Json<RoleBody>,
) -> ApiResult<StatusCode> {
    let role = parse_role(&body.role)?;
    state
        .app
        .set_role(&caller.actor, Some(&env), &principal, role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Take a principal's role away (Admin).
#[utoipa::path(delete, path = "/api/environments/{env}/roles/{principal}", tag = "roles",
    params(("env" = String, Path, description = "environment name or id"),
        ("principal" = String, Path, description = "user, application or group")),
    responses((status = 204, description = "removed")))]
async fn remove_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, principal)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .app
        .set_role(&caller.actor, Some(&env), &principal, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The connections the caller may use: names and kinds, never secrets (Contributor).
#[utoipa::path(get, path = "/api/environments/{env}/connections", tag = "connections",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "connections")))]
async fn list_connections(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let (_, list) = state
        .app
        .list_connections(&caller.actor, Some(&env))
        .await?;
    let out: Vec<Value> = list
        .iter()
        .map(|c| json!({"name": c.name, "kind": c.kind.as_str()}))
        .collect();
    Ok(Json(json!(out)))
}

/// The names of the environment's sealed secrets and the storage settings that use
/// each; never a value (Admin).
#[utoipa::path(get, path = "/api/environments/{env}/secrets", tag = "environments",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "secret names")))]
async fn list_secrets(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let env = state.app.environment(Some(&env)).await?;
    let list = state.app.environment_secrets(&caller.actor, &env).await?;
    let out: Vec<Value> = list
        .iter()
        .map(|(name, used_by)| json!({"name": name, "used_by": used_by}))
        .collect();
    Ok(Json(json!(out)))
}

/// A secret's value: written, sealed, never read back.
#[derive(Deserialize, ToSchema)]
pub(crate) struct SecretBody {
    /// The value.
    pub(crate) value: String,
}

/// Seal a secret of the environment under the vault's master key (Admin); write-only.
#[utoipa::path(put, path = "/api/environments/{env}/secrets/{name}", tag = "environments",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "secret name")),
    request_body = SecretBody, responses((status = 204, description = "sealed")))]
async fn set_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
    Json(body): Json<SecretBody>,
) -> ApiResult<StatusCode> {
    let env = state.app.environment(Some(&env)).await?;
    let secret = lakecdp_core::Secret::new(body.value);
    state
        .app
        .set_environment_secret(&caller.actor, &env, &name, &secret)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a sealed secret its storage no longer uses (Admin).
#[utoipa::path(delete, path = "/api/environments/{env}/secrets/{name}", tag = "environments",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "secret name")),
    responses((status = 204, description = "removed")))]
async fn remove_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let env = state.app.environment(Some(&env)).await?;
    state
        .app
        .remove_environment_secret(&caller.actor, &env, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The API tokens of an environment, revoked ones included, never their values (Admin).
#[utoipa::path(get, path = "/api/environments/{env}/tokens", tag = "tokens",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "tokens")))]
async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = state.app.list_tokens(&caller.actor, Some(&env)).await?;
    Ok(Json(json!(list)))
}

/// A new token.
#[derive(Deserialize, ToSchema)]
pub(crate) struct TokenBody {
    /// Its name.
    name: String,
    /// The role it acts with: `viewer`, `contributor` or `admin`.
    role: String,
    /// Days until it expires (never when absent).
    expires_days: Option<i64>,
}

/// Create an API token (Admin): its value is in this response only.
#[utoipa::path(post, path = "/api/environments/{env}/tokens", tag = "tokens",
    params(("env" = String, Path, description = "environment name or id")),
    request_body = TokenBody, responses((status = 201, description = "created; `token` is shown once")))]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    Json(body): Json<TokenBody>,
) -> ApiResult<Response> {
    let role = parse_role(&body.role)?.ok_or_else(|| {
        Problem::bad_request("a token needs a role: viewer, contributor or admin")
    })?;
    let new = state
        .app
        .create_token(
            &caller.actor,
            Some(&env),
            &body.name,
            role,
            body.expires_days.map(lakecdp_app::accounts::lifetime_days),
        )
        .await?;
    let mut value = json!(new.token);
    value["token"] = json!(new.secret);
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

/// Revoke a token (Admin): refused from the next request on.
#[utoipa::path(delete, path = "/api/environments/{env}/tokens/{name}", tag = "tokens",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "token name")),
    responses((status = 204, description = "revoked")))]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .app
        .revoke_token(&caller.actor, Some(&env), &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- sharing ----

/// The sharing of an environment: its groups and members, the rules found on the
/// storage, drift, the permissions identifier and capacity (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/sharing", tag = "sharing",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "the sharing"),
        (status = 404, description = "sharing is not enabled")))]
async fn sharing_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let status = state.app.sharing_status(&caller.actor, Some(&env)).await?;
    Ok(Json(json!(status)))
}

/// What enabling sharing is asked.
#[derive(Deserialize, ToSchema, Default)]
pub(crate) struct EnableSharingBody {
    /// The Reader group (default `<environment>-readers`).
    reader_group: Option<String>,
    /// The Contributor group (default `<environment>-contributors`).
    contributor_group: Option<String>,
    /// What the Reader group is on the storage (a Unix group on a local lake).
    storage_reader: Option<String>,
    /// What the Contributor group is on the storage.
    storage_contributor: Option<String>,
}

/// Enable sharing (Admin): create or reuse the groups, apply the storage's rules and
/// read them back.
#[utoipa::path(post, path = "/api/environments/{env}/sharing", tag = "sharing",
    params(("env" = String, Path, description = "environment name or id")),
    request_body = EnableSharingBody, responses((status = 200, description = "enabled")))]
async fn enable_sharing(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    Json(body): Json<EnableSharingBody>,
) -> ApiResult<Json<Value>> {
    let request = lakecdp_app::sharing::EnableSharing {
        reader_group: body.reader_group,
        contributor_group: body.contributor_group,
        storage_reader: body.storage_reader,
        storage_contributor: body.storage_contributor,
    };
    let status = state
        .app
        .enable_sharing(&caller.actor, Some(&env), &request)
        .await?;
    Ok(Json(json!(status)))
}

/// Apply the sharing's rules again (Admin).
#[utoipa::path(post, path = "/api/environments/{env}/sharing/repair", tag = "sharing",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "repaired")))]
async fn repair_sharing(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let status = state.app.repair_sharing(&caller.actor, Some(&env)).await?;
    Ok(Json(json!(status)))
}

/// A new recipient.
#[derive(Deserialize, ToSchema)]
pub(crate) struct RecipientBody {
    /// Its name (its token's).
    name: String,
    /// Days until it expires (never when absent).
    expires_days: Option<i64>,
}

/// Make a recipient of the sharing endpoint (Admin): an API token in the Reader group,
/// its value in this response only.
#[utoipa::path(post, path = "/api/environments/{env}/sharing/recipients", tag = "sharing",
    params(("env" = String, Path, description = "environment name or id")),
    request_body = RecipientBody, responses((status = 201, description = "created; `token` is shown once")))]
async fn add_sharing_recipient(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    Json(body): Json<RecipientBody>,
) -> ApiResult<Response> {
    let new = state
        .app
        .add_sharing_recipient(
            &caller.actor,
            Some(&env),
            &body.name,
            body.expires_days.map(lakecdp_app::accounts::lifetime_days),
        )
        .await?;
    let mut value = json!(new.token);
    value["token"] = json!(new.secret);
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

/// The organisations attached to shared storage (administrator).
#[utoipa::path(get, path = "/api/sharing/attachments", tag = "sharing",
    responses((status = 200, description = "attachments")))]
async fn list_attachments(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.app.attachments(&caller.actor).await?)))
}

/// An attachment to make.
#[derive(Deserialize, ToSchema)]
pub(crate) struct AttachBody {
    /// The permissions identifier the sharing printed.
    identifier: String,
    /// The consuming organisation.
    organization: String,
    /// S3: a group's access key id.
    access_key_id: Option<String>,
    /// S3: its secret key (never echoed).
    secret_access_key: Option<String>,
    /// S3: the region (default us-east-1).
    region: Option<String>,
    /// S3: an endpoint for S3-compatible servers; ADLS: a Data Lake endpoint.
    endpoint: Option<String>,
    /// ADLS: the tenant of the Entra application that reads the ACLs.
    tenant_id: Option<String>,
    /// ADLS: the application (client) id.
    client_id: Option<String>,
    /// ADLS: its secret (never echoed).
    client_secret: Option<String>,
}

/// Attach an organisation to shared storage (administrator); a second storage account
/// for the same organisation is refused (409).
#[utoipa::path(post, path = "/api/sharing/attachments", tag = "sharing",
    request_body = AttachBody, responses((status = 201, description = "attached"),
        (status = 409, description = "attached to another account")))]
async fn attach_sharing(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<AttachBody>,
) -> ApiResult<Response> {
    use lakecdp_app::sharing::{AttachAccess, EntraAccess, S3Access};
    let access = match (
        body.access_key_id,
        body.secret_access_key,
        body.tenant_id,
        body.client_id,
        body.client_secret,
    ) {
        (Some(id), Some(secret), None, None, None) => Some(AttachAccess::S3(S3Access {
            access_key_id: id,
            secret_access_key: lakecdp_core::Secret::new(secret),
            region: body.region.unwrap_or_else(|| "us-east-1".into()),
            endpoint: body.endpoint,
        })),
        (None, None, Some(tenant_id), Some(client_id), Some(secret)) => {
            Some(AttachAccess::Entra(EntraAccess {
                tenant_id,
                client_id,
                client_secret: lakecdp_core::Secret::new(secret),
                endpoint: body.endpoint,
                authority_host: None,
            }))
        }
        (None, None, None, None, None) => None,
        _ => {
            return Err(Problem::bad_request(
                "give an S3 key (access_key_id and secret_access_key), or an Entra application (tenant_id, client_id and client_secret), or neither",
            ))
        }
    };
    let kept = state
        .app
        .attach_sharing(
            &caller.actor,
            &body.identifier,
            &body.organization,
            access.as_ref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(kept))).into_response())
}

/// How to detach.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DetachQuery {
    /// Remove what reads through the attachment first.
    #[serde(default)]
    with_dependents: bool,
}

/// Detach an organisation (administrator): refused (409, listing them) while exports,
/// connections or recipient tokens read through it, unless `with_dependents`.
#[utoipa::path(delete, path = "/api/sharing/attachments/{organization}", tag = "sharing",
    params(("organization" = String, Path, description = "the organisation"), DetachQuery),
    responses((status = 200, description = "detached; what was removed"),
        (status = 409, description = "dependents remain")))]
async fn detach_sharing(
    State(state): State<AppState>,
    caller: Caller,
    Path(organization): Path<String>,
    Query(query): Query<DetachQuery>,
) -> ApiResult<Json<Value>> {
    let removed = state
        .app
        .detach_sharing(&caller.actor, &organization, query.with_dependents)
        .await?;
    Ok(Json(json!({ "removed": removed })))
}

// ---- users and groups (catalog administrators) ----

/// Users and applications (administrator).
#[utoipa::path(get, path = "/api/users", tag = "users",
    responses((status = 200, description = "users")))]
async fn list_users(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.app.list_users(&caller.actor).await?)))
}

/// A new user.
#[derive(Deserialize, ToSchema)]
pub(crate) struct UserBody {
    /// Its name.
    name: String,
    /// Its password (12 characters at least).
    password: String,
    /// Whether it administers users, groups and the audit log.
    #[serde(default)]
    administrator: bool,
}

/// Add a user (administrator).
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = UserBody,
    responses((status = 201, description = "created")))]
async fn add_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<UserBody>,
) -> ApiResult<Response> {
    let p = state
        .app
        .add_user(
            &caller.actor,
            &body.name,
            &body.password,
            body.administrator,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(p))).into_response())
}

/// Disable a user: its sessions end and it cannot sign in (administrator).
#[utoipa::path(post, path = "/api/users/{name}/disable", tag = "users",
    params(("name" = String, Path, description = "user")),
    responses((status = 204, description = "disabled")))]
async fn disable_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .app
        .set_user_disabled(&caller.actor, &name, true)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enable a user again (administrator).
#[utoipa::path(post, path = "/api/users/{name}/enable", tag = "users",
    params(("name" = String, Path, description = "user")),
    responses((status = 204, description = "enabled")))]
async fn enable_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .app
        .set_user_disabled(&caller.actor, &name, false)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new password.
#[derive(Deserialize, ToSchema)]
pub(crate) struct PasswordBody {
    /// The password (12 characters at least).
    password: String,
}

/// Set a user's password (administrator, or the user itself); its sessions end.
#[utoipa::path(put, path = "/api/users/{name}/password", tag = "users",
    params(("name" = String, Path, description = "user")), request_body = PasswordBody,
    responses((status = 204, description = "set")))]
async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<PasswordBody>,
) -> ApiResult<StatusCode> {
    state
        .app
        .reset_password(&caller.actor, &name, &body.password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Security groups and their members (administrator).
#[utoipa::path(get, path = "/api/groups", tag = "groups",
    responses((status = 200, description = "groups")))]
async fn list_groups(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.app.list_groups(&caller.actor).await?)))
}

/// A new group.
#[derive(Deserialize, ToSchema)]
pub(crate) struct GroupBody {
    /// Its name.
    name: String,
}

/// Create a security group (administrator).
#[utoipa::path(post, path = "/api/groups", tag = "groups", request_body = GroupBody,
    responses((status = 201, description = "created")))]
async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<GroupBody>,
) -> ApiResult<StatusCode> {
    state.app.create_group(&caller.actor, &body.name).await?;
    Ok(StatusCode::CREATED)
}

/// Delete a group, its memberships and its roles (administrator).
#[utoipa::path(delete, path = "/api/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "group")),
    responses((status = 204, description = "deleted")))]
async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
) -> ApiResult<StatusCode> {
    state.app.delete_group(&caller.actor, &group).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a member to a group (administrator).
#[utoipa::path(put, path = "/api/groups/{group}/members/{member}", tag = "groups",
    params(("group" = String, Path, description = "group"), ("member" = String, Path, description = "user")),
    responses((status = 204, description = "added")))]
async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((group, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .app
        .add_group_member(&caller.actor, &group, &member)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a member from a group (administrator).
#[utoipa::path(delete, path = "/api/groups/{group}/members/{member}", tag = "groups",
    params(("group" = String, Path, description = "group"), ("member" = String, Path, description = "user")),
    responses((status = 204, description = "removed")))]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((group, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .app
        .remove_group_member(&caller.actor, &group, &member)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- audit ----

/// Which audit entries.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Only this environment's (its Admins may read it); every entry otherwise
    /// (administrators).
    environment: Option<String>,
    /// Only this actor's.
    actor: Option<String>,
    /// Only entries older than this number.
    before: Option<i64>,
    /// At most this many (default 100).
    limit: Option<usize>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditParams),
    responses((status = 200, description = "audit entries")))]
async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditParams>,
) -> ApiResult<Json<Value>> {
    let entries = state
        .app
        .audit_log(
            &caller.actor,
            q.environment.as_deref(),
            AuditQuery {
                environment_id: None,
                actor: q.actor,
                before: q.before,
                limit: q.limit.unwrap_or(100),
            },
        )
        .await?;
    Ok(Json(json!(entries)))
}
