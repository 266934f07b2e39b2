//! `lakecdp serve`: the authenticated HTTP API over `lakecdp-app`.
//!
//! - Every route calls one application operation; nothing is implemented twice. The
//!   application checks the caller's role; the server authenticates it ([`auth`]).
//! - Errors are RFC 9457 problem details whose status comes from the application
//!   error's kind ([`problem`]).
//! - A refresh started here runs as a background job whose events and cancellation go
//!   through the catalog, so any instance on the same catalog can serve them ([`jobs`]).
//! - Every state-changing request is written to the audit log with its caller, object,
//!   outcome and address.
//! - The OpenAPI 3.1 description is generated from the routes themselves and served at
//!   `/api/openapi.json`.
#![warn(missing_docs)]

mod api;
pub mod auth;
pub mod jobs;
mod loads;
pub mod problem;
mod reports;
pub mod scheduler;
pub mod sharing;
pub mod tls;
mod web;
mod work;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, RequestExt, Router};
use lakecdp_app::{App, SignInPolicy};
use lakecdp_core::AuditOutcome;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use crate::auth::CallerSlot;
use crate::jobs::Jobs;

/// Request bodies larger than this are refused (project files are far smaller).
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// How the server runs.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Session expiry and sign-in throttling.
    pub policy: SignInPolicy,
    /// This instance's name among those sharing the catalog [default: a new random one].
    pub instance: Option<String>,
    /// Leave the scheduler to other instances (or to `lakecdp scheduler`).
    pub no_scheduler: bool,
    /// How long the instance running the scheduler keeps it without renewing (another
    /// takes over after that when it dies) [default: 30 s].
    pub scheduler_hold: Option<Duration>,
    /// Where local source files, lakes and export folders may be (none: local paths are
    /// refused); revisions applied over the API resolve their relative paths here.
    pub data_root: Option<std::path::PathBuf>,
    /// Serve HTTPS with this configuration ([`tls::server_config`]).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The address clients reach this server at (behind a proxy), without a trailing
    /// `/`: the sharing endpoint's file URLs start with it. Without it, with the scheme
    /// and `Host` of each request.
    pub public_url: Option<String>,
    /// How long the sharing endpoint's file URLs can be read [default: 15 minutes].
    pub sharing_url_lifetime: Option<Duration>,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The application.
    pub app: App,
    /// The configuration.
    pub config: Arc<ServerConfig>,
    /// The background jobs of this instance.
    pub jobs: Jobs,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lakecdp",
        description = "The lakecdp API: environments, revisions, refreshes and runs, roles, \
            connections, API tokens, users, groups and the audit log. Authenticate with a \
            session (POST /api/session; send the CSRF token it returns in X-CSRF-Token on \
            every state-changing request) or an API token (Authorization: Bearer)."
    ),
    tags(
        (name = "session", description = "sign in and out"),
        (name = "environments"), (name = "revisions"), (name = "runs"), (name = "roles"),
        (name = "unification"), (name = "segments"),
        (name = "connections"), (name = "exports"), (name = "tokens"), (name = "users"), (name = "groups"),
        (name = "audit"), (name = "reporting")
    )
)]
struct ApiDoc;

/// The router and the OpenAPI description of its routes.
pub fn router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (api, doc) = utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api::routes())
        .merge(work::routes())
        .merge(reports::routes())
        .merge(loads::routes())
        .split_for_parts();
    let described = doc.clone();
    let router = api
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), audit))
        .merge(
            web::routes()
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), audit))
                .layer(axum::middleware::map_response(web::page_headers)),
        )
        .merge(web::asset_routes())
        .nest("/delta-sharing", sharing::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = described.clone();
                async move { Json(doc) }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        // assets set their own (long) cache lifetime; nothing else is cached
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            ),
        )
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            axum::http::HeaderValue::from_static("nosniff"),
        ))
        .with_state(state);
    (router, doc)
}

async fn ready(State(state): State<AppState>) -> Response {
    match state.app.catalog().schema_version().await {
        Ok(_) => "ready".into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the catalog is unreachable",
        )
            .into_response(),
    }
}

/// Routes whose operations write their own, more precise, audit entries.
fn audited_by_app(path: &str) -> bool {
    path == "/api/session"
        || path == "/signin"
        || path == "/signout"
        || path.starts_with("/api/users")
        || path.starts_with("/api/groups")
        || path.starts_with("/api/environments/{env}/tokens")
}

/// Write every state-changing request to the audit log: caller, action (method and
/// route), object (the path), outcome and address.
async fn audit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    if audited_by_app(&route) {
        return next.run(request).await;
    }
    let object = request.uri().path().to_string();
    // a change inside an environment goes to its log, which its Admins read
    let environment = match request.extract_parts::<RawPathParams>().await {
        Ok(params) => params
            .iter()
            .find(|(name, _)| *name == "env")
            .map(|(_, value)| value.to_string()),
        Err(_) => None,
    };
    let address = auth::address(request.extensions());
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let status = response.status();
    let outcome = if status.is_success() {
        AuditOutcome::Succeeded
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        AuditOutcome::Denied
    } else {
        AuditOutcome::Failed
    };
    let actor = slot
        .0
        .lock()
        .ok()
        .and_then(|n| n.clone())
        .unwrap_or_else(|| "anonymous".to_string());
    let action = format!("{method} {route}");
    if let Err(e) = state
        .app
        .audit_in(
            &actor,
            &action,
            environment.as_deref(),
            &object,
            outcome,
            address.as_deref(),
        )
        .await
    {
        tracing::error!(error = %e, "an audit entry could not be written");
    }
    response
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The application refused the configuration (e.g. the data root).
    #[error(transparent)]
    App(#[from] lakecdp_app::Error),
    /// Listening failed.
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
}

/// Serve `app` on `listener` (HTTPS when the configuration has TLS) until `shutdown`
/// fires; then cancel the running jobs and wait for them to record their outcome.
pub async fn serve(
    app: App,
    config: ServerConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let app = app.confined_to(config.data_root.as_deref())?;
    let instance = config.instance.clone().unwrap_or_else(|| {
        format!(
            "instance-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    });
    let elect = (!config.no_scheduler).then(|| {
        tokio::spawn(scheduler::lead(
            app.clone(),
            instance.clone(),
            config.scheduler_hold.unwrap_or(scheduler::HOLD),
            shutdown.child_token(),
        ))
    });
    let tls = config.tls.clone();
    let state = AppState {
        app,
        config: Arc::new(config),
        jobs: Jobs::default(),
    };
    let jobs = state.jobs.clone();
    let (router, _) = router(state);
    let stop = shutdown.clone();
    match tls {
        Some(config) => {
            axum::serve(
                tls::TlsListener::new(listener, config)?,
                router.into_make_service_with_connect_info::<tls::TlsPeer>(),
            )
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await?
        }
        None => {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await?
        }
    }
    if !jobs.shut_down(Duration::from_secs(60)).await {
        tracing::warn!("some jobs did not stop within a minute");
    }
    if let Some(elect) = elect {
        let _ = elect.await;
    }
    Ok(())
}
