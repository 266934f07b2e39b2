//! The Delta Sharing endpoint, under `/delta-sharing`: the open protocol pandas, Spark
//! and Power BI read shared tables with (a profile file names this endpoint and a
//! bearer token). Shares are environments, schemas their process folders, tables the
//! Parquet entities of those (see [`lakecdp_app::sharing`]).
//!
//! Every route but `files` needs a caller (an API token, as the protocol's bearer
//! token) who may view the environment. The file URLs of a query are signed and
//! short-lived; `files` serves one only once its signature and expiry hold, with HEAD
//! and single byte ranges for readers that fetch Parquet footers first.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::TryStreamExt;
use lakecdp_app::sharing::{SharedFile, TableState};
use lakecdp_app::{Error, ErrorKind};
use object_store::{GetOptions, GetRange};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::problem::status_of;
use crate::AppState;

/// The routes, to nest under `/delta-sharing`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/shares", get(list_shares))
        .route("/shares/{share}", get(get_share))
        .route("/shares/{share}/schemas", get(list_schemas))
        .route("/shares/{share}/schemas/{schema}/tables", get(list_tables))
        .route("/shares/{share}/all-tables", get(list_all_tables))
        .route(
            "/shares/{share}/schemas/{schema}/tables/{table}/version",
            get(table_version),
        )
        .route(
            "/shares/{share}/schemas/{schema}/tables/{table}/metadata",
            get(table_metadata),
        )
        .route(
            "/shares/{share}/schemas/{schema}/tables/{table}/query",
            post(query_table),
        )
        .route("/files/{token}", get(file).head(file))
}

/// An error as the protocol states it: `{"errorCode", "message"}` with the status of
/// its kind.
#[derive(Debug)]
struct SharingError(Error);

impl From<Error> for SharingError {
    fn from(e: Error) -> Self {
        SharingError(e)
    }
}

impl IntoResponse for SharingError {
    fn into_response(self) -> Response {
        let kind = self.0.kind();
        let code = match kind {
            ErrorKind::Invalid => "INVALID_PARAMETER_VALUE",
            ErrorKind::Unauthenticated => "UNAUTHENTICATED",
            ErrorKind::Denied => "PERMISSION_DENIED",
            ErrorKind::NotFound => "RESOURCE_DOES_NOT_EXIST",
            ErrorKind::Conflict => "RESOURCE_CONFLICT",
            ErrorKind::Unavailable => "TEMPORARILY_UNAVAILABLE",
            ErrorKind::NotImplemented => "NOT_IMPLEMENTED",
            _ => "INTERNAL_ERROR",
        };
        let message = if kind == ErrorKind::Internal {
            tracing::error!(error = %self.0, "a sharing request failed");
            "the server failed; its log has the cause".to_string()
        } else {
            self.0.to_string()
        };
        (
            status_of(kind),
            Json(json!({ "errorCode": code, "message": message })),
        )
            .into_response()
    }
}

type Answer = Result<Response, SharingError>;

/// `maxResults` and `pageToken` of the list routes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    max_results: Option<usize>,
    page_token: Option<String>,
}

/// One page of `items`: from the offset the page token holds, at most `maxResults`.
fn page(items: Vec<Value>, p: &Page) -> Result<Json<Value>, SharingError> {
    let start = match &p.page_token {
        Some(t) if !t.is_empty() => t
            .parse::<usize>()
            .map_err(|_| Error::invalid(format!("page token `{t}` is not one this server gave")))?,
        _ => 0,
    };
    let count = p.max_results.unwrap_or(usize::MAX);
    let end = start.saturating_add(count).min(items.len());
    let mut body = json!({ "items": items.get(start..end).unwrap_or_default() });
    if end < items.len() {
        body["nextPageToken"] = json!(end.to_string());
    }
    Ok(Json(body))
}

async fn list_shares(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<Page>,
) -> Answer {
    let shares = state.app.shares(&caller.actor).await?;
    let items = shares
        .into_iter()
        .map(|s| json!({ "name": s.name, "id": s.id }))
        .collect();
    Ok(page(items, &p)?.into_response())
}

async fn get_share(
    State(state): State<AppState>,
    caller: Caller,
    Path(share): Path<String>,
) -> Answer {
    let env = state.app.share(&caller.actor, &share).await?;
    Ok(Json(json!({ "share": { "name": env.name, "id": env.id.to_string() } })).into_response())
}

async fn list_schemas(
    State(state): State<AppState>,
    caller: Caller,
    Path(share): Path<String>,
    Query(p): Query<Page>,
) -> Answer {
    let (env, schemas) = state.app.shared_schemas(&caller.actor, &share).await?;
    let items = schemas
        .into_iter()
        .map(|s| json!({ "name": s, "share": env.name }))
        .collect();
    Ok(page(items, &p)?.into_response())
}

fn table_items(tables: Vec<lakecdp_app::sharing::SharedTable>) -> Vec<Value> {
    tables
        .into_iter()
        .map(|t| {
            json!({
                "name": t.name, "schema": t.schema, "share": t.share,
                "shareId": t.share_id, "id": t.id,
            })
        })
        .collect()
}

async fn list_tables(
    State(state): State<AppState>,
    caller: Caller,
    Path((share, schema)): Path<(String, String)>,
    Query(p): Query<Page>,
) -> Answer {
    let tables = state
        .app
        .shared_tables(&caller.actor, &share, Some(&schema))
        .await?;
    Ok(page(table_items(tables), &p)?.into_response())
}

async fn list_all_tables(
    State(state): State<AppState>,
    caller: Caller,
    Path(share): Path<String>,
    Query(p): Query<Page>,
) -> Answer {
    let tables = state.app.shared_tables(&caller.actor, &share, None).await?;
    Ok(page(table_items(tables), &p)?.into_response())
}

/// The header that carries a table's version.
const VERSION_HEADER: &str = "delta-table-version";

fn with_version(mut response: Response, version: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&version.to_string()) {
        response.headers_mut().insert(VERSION_HEADER, v);
    }
    response
}

/// `startingTimestamp` of the version route: only the current version is served.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionQuery {
    starting_timestamp: Option<String>,
}

async fn table_version(
    State(state): State<AppState>,
    caller: Caller,
    Path((share, schema, table)): Path<(String, String, String)>,
    Query(q): Query<VersionQuery>,
) -> Answer {
    if q.starting_timestamp.is_some() {
        return Err(Error::invalid(
            "only a table's current version is served: leave out startingTimestamp",
        )
        .into());
    }
    let t = state
        .app
        .shared_table(&caller.actor, &share, &schema, &table, None)
        .await?;
    Ok(with_version(StatusCode::OK.into_response(), t.version))
}

/// Lines of JSON, as the protocol answers metadata and queries.
fn ndjson(lines: &[Value], version: u64) -> Response {
    let mut body = String::new();
    for l in lines {
        body.push_str(&l.to_string());
        body.push('\n');
    }
    let response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson; charset=utf-8"),
        )],
        body,
    )
        .into_response();
    with_version(response, version)
}

/// The protocol line that starts a metadata or query answer.
fn protocol() -> Value {
    json!({ "protocol": { "minReaderVersion": 1 } })
}

async fn table_metadata(
    State(state): State<AppState>,
    caller: Caller,
    Path((share, schema, table)): Path<(String, String, String)>,
) -> Answer {
    let t = state
        .app
        .shared_table(&caller.actor, &share, &schema, &table, None)
        .await?;
    Ok(ndjson(
        &[protocol(), json!({ "metaData": t.metadata })],
        t.version,
    ))
}

/// The body of a query, as far as it is read: a version other than the current one is
/// refused, as are change-data-feed ranges. Hints (`limitHint`, `predicateHints`,
/// `jsonPredicateHints`) are accepted and every file is returned.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryBody {
    version: Option<u64>,
    timestamp: Option<String>,
    starting_version: Option<u64>,
}

/// Where this request reached the server, for the file URLs of its answer.
fn base_url(state: &AppState, headers: &HeaderMap) -> Result<String, SharingError> {
    if let Some(public) = &state.config.public_url {
        return Ok(format!("{public}/delta-sharing/files"));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '@']))
        .ok_or_else(|| Error::invalid("the request has no Host header"))?;
    let scheme = if state.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{host}/delta-sharing/files"))
}

fn file_line(base: &str, f: &SharedFile) -> Value {
    json!({ "file": {
        "url": format!("{base}/{}", f.token),
        "id": f.id,
        "partitionValues": {},
        "size": f.size,
        "expirationTimestamp": f.expires_ms,
    }})
}

async fn query_table(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((share, schema, table)): Path<(String, String, String)>,
    body: Option<Json<QueryBody>>,
) -> Answer {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    if body.timestamp.is_some() || body.starting_version.is_some() {
        return Err(Error::invalid(
            "only a table's current version is served: leave out timestamp and startingVersion",
        )
        .into());
    }
    let base = base_url(&state, &headers)?;
    let t: TableState = state
        .app
        .shared_table(
            &caller.actor,
            &share,
            &schema,
            &table,
            Some(
                state
                    .config
                    .sharing_url_lifetime
                    .unwrap_or(lakecdp_app::sharing::FILE_URL_LIFETIME),
            ),
        )
        .await?;
    if let Some(v) = body.version.filter(|v| *v != t.version) {
        return Err(Error::invalid(format!(
            "only a table's current version ({}) is served, not version {v}",
            t.version
        ))
        .into());
    }
    let mut lines = vec![protocol(), json!({ "metaData": t.metadata })];
    lines.extend(t.files.iter().map(|f| file_line(&base, f)));
    Ok(ndjson(&lines, t.version))
}

/// The range of a `Range` header, if it asks for one range of bytes.
fn range_of(headers: &HeaderMap) -> Result<Option<GetRange>, SharingError> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let bad = || Error::invalid("the Range header must ask for one range of bytes");
    let value = value.to_str().map_err(|_| bad())?;
    let spec = value.strip_prefix("bytes=").ok_or_else(bad)?;
    if spec.contains(',') {
        return Err(bad().into());
    }
    let (start, end) = spec.split_once('-').ok_or_else(bad)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    Ok(Some(
        match (start.trim().is_empty(), end.trim().is_empty()) {
            (true, false) => GetRange::Suffix(number(end)?),
            (false, true) => GetRange::Offset(number(start)?),
            (false, false) => {
                let (s, e) = (number(start)?, number(end)?);
                if e < s {
                    return Err(bad().into());
                }
                GetRange::Bounded(s..e + 1)
            }
            (true, true) => return Err(bad().into()),
        },
    ))
}

async fn file(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Answer {
    let (lake, signed) = state.app.shared_file(&token).await?;
    let range = range_of(&headers)?;
    let head = method == axum::http::Method::HEAD;
    let options = GetOptions {
        range: range.clone(),
        head,
        ..Default::default()
    };
    let got = lake
        .get_opts(&signed.path, options)
        .await
        .map_err(Error::from)?;
    let size = got.meta.size;
    let served = got.range.clone();
    let mut response = if head {
        Response::new(Body::empty())
    } else {
        let stream = got.into_stream().map_err(std::io::Error::other);
        Response::new(Body::from_stream(stream))
    };
    let h = response.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let length = if range.is_some() && !head {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!(
            "bytes {}-{}/{size}",
            served.start,
            served.end.saturating_sub(1)
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        served.end - served.start
    } else {
        size
    };
    if let Ok(v) = HeaderValue::from_str(&length.to_string()) {
        response.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(range: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        h
    }

    #[test]
    fn single_byte_ranges_are_read_and_others_refused() {
        assert!(range_of(&HeaderMap::new()).unwrap().is_none());
        assert_eq!(
            range_of(&headers("bytes=0-99")).unwrap(),
            Some(GetRange::Bounded(0..100))
        );
        assert_eq!(
            range_of(&headers("bytes=100-")).unwrap(),
            Some(GetRange::Offset(100))
        );
        assert_eq!(
            range_of(&headers("bytes=-8")).unwrap(),
            Some(GetRange::Suffix(8))
        );
        for bad in [
            "bytes=5-1",
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=-",
            "bytes=a-b",
        ] {
            assert!(range_of(&headers(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_hold_at_most_max_results_and_name_the_next() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let first = page(
            items.clone(),
            &Page {
                max_results: Some(2),
                page_token: None,
            },
        )
        .ok()
        .unwrap();
        assert_eq!(first.0, json!({"items": [0, 1], "nextPageToken": "2"}));
        let last = page(
            items.clone(),
            &Page {
                max_results: Some(4),
                page_token: Some("2".into()),
            },
        )
        .ok()
        .unwrap();
        assert_eq!(last.0, json!({"items": [2, 3, 4]}));
        assert!(page(
            items,
            &Page {
                max_results: None,
                page_token: Some("x".into()),
            },
        )
        .is_err());
    }
}
