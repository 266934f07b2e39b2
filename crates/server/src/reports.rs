//! The API of reporting connections and profile reports, and the charts the report
//! page draws (SVG from `charts-rs`, server-side).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use charts_rs::{BarChart, HorizontalBarChart, LineChart, Series};
use lakecdp_app::reporting::{Distribution, NewReporting, ReportingLocation};
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
        .routes(routes!(list_reporting, create_reporting))
        .routes(routes!(delete_reporting))
        .routes(routes!(profile_report))
        .routes(routes!(grant_member, revoke_member))
}

/// A reporting connection to create. The key fields are write-only: never returned.
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(default)]
pub(crate) struct NewReportingBody {
    /// Its name (letters, digits, `-`, `_`).
    pub name: String,
    /// `local`, `adls` or `s3`.
    pub kind: String,
    /// local: the folder holding `customerinsights/`.
    pub path: String,
    /// adls: the storage account's name.
    pub account: String,
    /// adls: the account key.
    pub account_key: String,
    /// adls or s3: an endpoint override.
    pub endpoint: String,
    /// adls: the endpoint is the Azurite emulator.
    pub emulator: bool,
    /// s3: the bucket.
    pub bucket: String,
    /// s3: the region.
    pub region: String,
    /// s3: the access key id.
    pub access_key_id: String,
    /// s3: the secret access key.
    pub secret_access_key: String,
    /// The environment id of the instance folder.
    pub environment_id: String,
    /// `customerinsights/ci_<environmentId>`.
    pub folder: String,
}

impl NewReportingBody {
    /// The application's request; an unknown kind names the field.
    pub(crate) fn into_new(self) -> Result<NewReporting, Problem> {
        let endpoint = (!self.endpoint.trim().is_empty()).then(|| self.endpoint.trim().to_string());
        let location = match self.kind.trim() {
            "local" => ReportingLocation::Local { path: self.path },
            "adls" => ReportingLocation::Adls {
                account: self.account,
                key: Secret::new(self.account_key),
                endpoint,
                emulator: self.emulator,
            },
            "s3" => ReportingLocation::S3 {
                bucket: self.bucket,
                region: self.region,
                endpoint,
                access_key_id: Secret::new(self.access_key_id),
                secret_access_key: Secret::new(self.secret_access_key),
            },
            other => {
                return Err(Problem::bad_request(format!(
                    "kind: `{other}` is not a storage kind; give `local`, `adls` or `s3`"
                )))
            }
        };
        Ok(NewReporting {
            name: self.name,
            location,
            environment_id: self.environment_id,
            folder: self.folder,
        })
    }
}

/// The reporting connections the caller created or is granted (Viewer).
#[utoipa::path(get, path = "/api/environments/{env}/reporting", tag = "reporting",
    params(("env" = String, Path, description = "environment name or id")),
    responses((status = 200, description = "connections")))]
async fn list_reporting(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = state
        .app
        .reporting_connections(&caller.actor, Some(&env))
        .await?;
    Ok(Json(json!(list)))
}

/// Link a reporting workspace to an instance folder (Admin); the key is sealed and
/// never returned. The connection comes back Ready, or Failed with the reason.
#[utoipa::path(post, path = "/api/environments/{env}/reporting", tag = "reporting",
    params(("env" = String, Path, description = "environment name or id")),
    request_body = NewReportingBody,
    responses((status = 201, description = "created"), (status = 400, description = "a field is wrong"),
        (status = 409, description = "the name is taken")))]
async fn create_reporting(
    State(state): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    Json(body): Json<NewReportingBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let new = body.into_new()?;
    let c = state
        .app
        .create_reporting_connection(&caller.actor, Some(&env), new)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(c))))
}

/// Remove a reporting connection and its key (its creator or an Admin): its reports
/// are refused at once.
#[utoipa::path(delete, path = "/api/environments/{env}/reporting/{name}", tag = "reporting",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "the connection")),
    responses((status = 204, description = "removed")))]
async fn delete_reporting(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .app
        .delete_reporting_connection(&caller.actor, Some(&env), &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A profile report read through the connection now (its creator and members only).
#[utoipa::path(get, path = "/api/environments/{env}/reporting/{name}/report", tag = "reporting",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "the connection")),
    responses((status = 200, description = "the report"), (status = 403, description = "not a member")))]
async fn profile_report(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (c, report) = state
        .app
        .profile_report(&caller.actor, Some(&env), &name)
        .await?;
    Ok(Json(json!({"connection": c, "report": report})))
}

/// Grant a principal or group the connection's reports (its creator).
#[utoipa::path(put, path = "/api/environments/{env}/reporting/{name}/members/{member}", tag = "reporting",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "the connection"),
        ("member" = String, Path, description = "a principal or group")),
    responses((status = 200, description = "granted")))]
async fn grant_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name, member)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    set_member(&state, &caller, &env, &name, &member, true).await
}

/// Revoke a principal's or group's access (its creator).
#[utoipa::path(delete, path = "/api/environments/{env}/reporting/{name}/members/{member}", tag = "reporting",
    params(("env" = String, Path, description = "environment name or id"),
        ("name" = String, Path, description = "the connection"),
        ("member" = String, Path, description = "a principal or group")),
    responses((status = 200, description = "revoked")))]
async fn revoke_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name, member)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    set_member(&state, &caller, &env, &name, &member, false).await
}

async fn set_member(
    state: &AppState,
    caller: &Caller,
    env: &str,
    name: &str,
    member: &str,
    grant: bool,
) -> ApiResult<Json<Value>> {
    let c = state
        .app
        .grant_reporting(&caller.actor, Some(env), name, member, grant)
        .await?;
    Ok(Json(json!(c)))
}

/// A distribution as an SVG chart (vertical bars for bands, horizontal for long
/// lists of names), as a `data:` URL an `<img>` shows.
pub(crate) fn chart(d: &Distribution) -> Option<String> {
    if d.rows.is_empty() {
        return None;
    }
    let shown: Vec<&(String, i64)> = d.rows.iter().take(15).collect();
    let labels: Vec<String> = shown.iter().map(|(v, _)| v.clone()).collect();
    let values: Vec<f32> = shown.iter().map(|(_, n)| *n as f32).collect();
    let series = vec![Series::new("Profiles".into(), values)];
    let bands = matches!(
        d.name.as_str(),
        "AgeBands" | "IncomeBands" | "Genders" | "ProfileSizes"
    );
    let svg = if bands {
        let mut c = BarChart::new(series, labels);
        c.width = 520.0;
        c.height = 300.0;
        c.legend.show = Some(false);
        c.svg()
    } else {
        let mut c = HorizontalBarChart::new(series, labels);
        c.width = 520.0;
        c.height = 40.0 + 24.0 * shown.len() as f32;
        c.legend.show = Some(false);
        c.svg()
    };
    match svg {
        Ok(svg) => Some(format!(
            "data:image/svg+xml;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(svg)
        )),
        Err(e) => {
            tracing::warn!(chart = %d.name, error = %e, "a chart could not be drawn");
            None
        }
    }
}

/// A segment's members run after run as a small line chart (a `data:` URL); none
/// before two runs.
pub(crate) fn trend(counts: &[u64], labels: &[String]) -> Option<String> {
    if counts.len() < 2 {
        return None;
    }
    let values: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
    let mut c = LineChart::new(vec![Series::new("Members".into(), values)], labels.to_vec());
    c.width = 320.0;
    c.height = 140.0;
    c.legend.show = Some(false);
    match c.svg() {
        Ok(svg) => Some(format!(
            "data:image/svg+xml;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(svg)
        )),
        Err(e) => {
            tracing::warn!(error = %e, "a trend could not be drawn");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_of_the_distribution() {
        let d = Distribution {
            name: "AgeBands".into(),
            title: "Age".into(),
            rows: vec![
                ("18-24".into(), 12),
                ("25-34".into(), 30),
                ("65+".into(), 4),
            ],
        };
        let url = chart(&d).unwrap();
        let b64 = url.strip_prefix("data:image/svg+xml;base64,").unwrap();
        let svg = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        for label in ["18-24", "25-34", "65+"] {
            assert!(svg.contains(label), "{label} in the chart");
        }
        assert!(chart(&Distribution { rows: vec![], ..d }).is_none());
    }
}
