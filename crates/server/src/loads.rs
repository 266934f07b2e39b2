//! The API of what the last runs did: each source's load (counts, reasons, watermarks)
//! with sample corrupt rows, and the unification's rules (read, and saved as a
//! revision; `POST …/unification/preview` previews them) with its last run's figures. The admin centre's sources and unification
//! pages are views of the same operations.

use axum::extract::{Path, Query, State};
use axum::Json;
use lakecdp_app::revisions::RevisionChange;
use lakecdp_app::status::CORRUPT_SAMPLE;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::problem::ApiResult;
use crate::AppState;

/// The largest corrupt sample one request returns.
const MAX_SAMPLE: usize = 1000;

/// The routes of this module.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ingestion_status))
        .routes(routes!(corrupt_rows))
        .routes(routes!(unification_status, save_rules))
}

/// Each source of the applied revision with its last load: rows read, written and kept
/// as corrupt per table, the reasons, the watermarks (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/ingestion", tag = "sources",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "the sources' loads"), (status = 403, description = "no role")))]
async fn ingestion_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let status = state.app.ingestion_status(&caller.actor, &env).await?;
    Ok(Json(
        json!({"environment": env, "revision": status.revision,
        "sources": status.sources}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SampleQuery {
    limit: Option<usize>,
}

/// The first corrupt rows of a source table's last load, with their reasons (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/ingestion/{source}/{table}/corrupt", tag = "sources",
    params(("env" = String, Path, description = "environment name or id"),
        ("source" = String, Path, description = "source"),
        ("table" = String, Path, description = "table"),
        ("limit" = Option<usize>, Query, description = "rows (default 20, at most 1000)")),
    responses((status = 200, description = "corrupt rows"), (status = 404, description = "no such table")))]
async fn corrupt_rows(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, source, table)): Path<(String, String, String)>,
    Query(q): Query<SampleQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(CORRUPT_SAMPLE).min(MAX_SAMPLE);
    let rows = state
        .app
        .corrupt_rows(&caller.actor, &env, &source, &table, limit)
        .await?;
    Ok(Json(
        json!({"source": source, "table": table, "rows": rows}),
    ))
}

/// The unification rules of the applied revision (its `[unification]` section) and
/// what the last unification did (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/unification", tag = "unification",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "rules and last run")))]
async fn unification_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let u = state.app.unification_status(&caller.actor, &env).await?;
    Ok(Json(json!(u)))
}

/// Unification rules: a project file's `[unification]` section.
#[derive(Deserialize, ToSchema)]
pub(crate) struct RulesBody {
    /// The section, as TOML.
    rules: String,
    /// The revision whose rules were edited: refused with 409 when another was applied
    /// since.
    #[serde(default)]
    revision: Option<u32>,
}

/// Store the applied project with these rules as its next revision (Contributor).
#[utoipa::path(put, path = "/api/environments/{env}/unification", tag = "unification",
    params(("env" = String, Path, description = "environment name or id")),
    request_body = RulesBody,
    responses((status = 200, description = "the revision"), (status = 400, description = "invalid rules"),
        (status = 403, description = "below Contributor"),
        (status = 409, description = "another revision was applied since the one edited")))]
async fn save_rules(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    Json(body): Json<RulesBody>,
) -> ApiResult<Json<Value>> {
    let change = state
        .app
        .apply_unification(&caller.actor, &env, &body.rules, body.revision)
        .await?;
    Ok(Json(match change {
        RevisionChange::New(n) => json!({"revision": n, "changed": true}),
        RevisionChange::Unchanged(n) => json!({"revision": n, "changed": false}),
    }))
}
