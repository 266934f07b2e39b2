//! Who makes a request: a signed-in session (cookie, with a CSRF token on every
//! state-changing request) or an API token (`Authorization: Bearer`). Nothing but the
//! health checks, the sign-in route and the API description answers without one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use lakecdp_app::accounts::csrf_token;
use lakecdp_app::Actor;
use lakecdp_core::ApiToken;

use crate::problem::Problem;
use crate::AppState;

/// The cookie that holds the session token.
pub const SESSION_COOKIE: &str = "lakecdp_session";

/// The header that carries the CSRF token of a session.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// A session cookie.
    Session {
        /// The session's CSRF token.
        csrf: String,
    },
    /// An API token.
    Token(ApiToken),
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The actor for the application's operations.
    pub actor: Actor,
    /// Its name, for the audit log.
    pub name: String,
    /// How it authenticated.
    pub via: Via,
    /// The client's address.
    pub address: Option<String>,
}

/// A slot the audit middleware puts in each request, which [`Caller`] fills with the
/// caller's name.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallerSlot(pub Arc<Mutex<Option<String>>>);

/// The client's address, when the server knows it.
pub fn address(extensions: &axum::http::Extensions) -> Option<String> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .or_else(|| {
            extensions
                .get::<ConnectInfo<crate::tls::TlsPeer>>()
                .map(|c| c.0 .0.ip().to_string())
        })
}

/// The value of a cookie of a request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compare two strings in time that depends on their length only.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let address = address(&parts.extensions);
        let caller = if let Some(value) = bearer(parts) {
            let (actor, token) = state.app.token_actor(value).await?;
            Caller {
                name: token.principal(),
                actor,
                via: Via::Token(token),
                address,
            }
        } else if let Some(value) = cookie(&parts.headers, SESSION_COOKIE) {
            let found = state.app.session_actor(value, &state.config.policy).await?;
            let csrf = csrf_token(value);
            if !is_safe(&parts.method) {
                let sent = parts
                    .headers
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !same(sent, &csrf) {
                    return Err(Problem::forbidden(
                        "the request has no valid CSRF token: send the session's token in \
                         the X-CSRF-Token header",
                    ));
                }
            }
            Caller {
                name: found.session.principal.clone(),
                actor: found.actor,
                via: Via::Session { csrf },
                address,
            }
        } else {
            return Err(Problem::unauthenticated(
                "sign in (POST /api/session) or send an API token as `Authorization: Bearer`",
            ));
        };
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            if let Ok(mut name) = slot.0.lock() {
                *name = Some(caller.name.clone());
            }
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let req = axum::http::Request::builder()
            .header(
                header::COOKIE,
                "x_lakecdp_session=evil; lakecdp_session=good; y=1",
            )
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        assert_eq!(cookie(&parts.headers, SESSION_COOKIE), Some("good"));
    }
}

/// The client's address, when known (requests on a server started with connection
/// information).
#[derive(Debug, Clone)]
pub struct ClientAddress(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(address(&parts.extensions)))
    }
}
