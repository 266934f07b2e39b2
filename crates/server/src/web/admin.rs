//! Pages of administration: connections (secrets are write-only fields, sealed when
//! saved and never echoed), exports (tables, target, schedule, run now, history),
//! security groups, and API tokens.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use lakecdp_app::connections::NewConnection;
use lakecdp_app::exports::NewExport;
use lakecdp_core::{ConnectionKind, Operation, Role, Secret};
use serde::Deserialize;

use super::{escape, path_segment, role_in, run_view, Chrome, Page, RunRow};
use crate::problem::Problem;
use crate::AppState;

/// Whether the caller may perform `operation` in the environment, checked before a
/// form is read (below the role, nothing of the input is judged).
async fn allowed(
    state: &AppState,
    page: &Page,
    env: &str,
    operation: Operation,
) -> lakecdp_app::Result<()> {
    state
        .app
        .environment_for(page.actor(), Some(env), operation)
        .await
        .map(drop)
}

/// A form field's value, trimmed (empty when absent).
fn form_value(form: &[(String, String)], key: &str) -> String {
    form.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

// ---- connections ----

struct ConnectionRow {
    name: String,
    kind: String,
    usable_by: String,
    settings: String,
    secrets: String,
    exports: String,
    href: String,
}

struct FieldView {
    name: &'static str,
    required: bool,
    secret: bool,
    help: &'static str,
}

fn fields_of(kind: ConnectionKind) -> Vec<FieldView> {
    kind.fields()
        .iter()
        .map(|f| FieldView {
            name: f.name,
            required: f.required,
            secret: f.secret,
            help: f.help,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "connections.html")]
struct ConnectionsPage {
    c: Chrome,
    name: String,
    is_admin: bool,
    rows: Vec<ConnectionRow>,
    kinds: Vec<&'static str>,
    fields: Vec<FieldView>,
}

#[derive(Template)]
#[template(path = "connection_fields.html")]
struct FieldsFragment {
    fields: Vec<FieldView>,
}

pub(super) async fn connections(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
) -> Response {
    let built = async {
        let role = role_in(&state.app, page.actor(), &env).await?;
        let (_, list) = state.app.list_connections(page.actor(), Some(&env)).await?;
        let is_admin = role >= Role::Admin;
        let app = state.app.in_environment(&env);
        let mut rows = Vec::with_capacity(list.len());
        for summary in list {
            let href = format!(
                "/environments/{}/connections/{}",
                path_segment(&env),
                path_segment(&summary.name)
            );
            let mut row = ConnectionRow {
                name: summary.name.clone(),
                kind: summary.kind.as_str().to_string(),
                usable_by: String::new(),
                settings: String::new(),
                secrets: String::new(),
                exports: String::new(),
                href,
            };
            if is_admin {
                let (c, exports) = app.show_connection(page.actor(), &summary.name).await?;
                row.usable_by = c.sharing.to_string();
                row.settings = c
                    .settings
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                // the names of the secrets set, never their values
                row.secrets = if c.secrets.is_empty() {
                    "none".into()
                } else {
                    c.secrets.join(", ")
                };
                row.exports = if exports.is_empty() {
                    "none".into()
                } else {
                    exports.join(", ")
                };
            }
            rows.push(row);
        }
        Ok(ConnectionsPage {
            c: page.chrome(Some(&env)),
            name: env.clone(),
            is_admin,
            rows,
            kinds: ConnectionKind::ALL.iter().map(|k| k.as_str()).collect(),
            fields: fields_of(ConnectionKind::ALL[0]),
        })
    }
    .await;
    page.show(Some(&env), built)
}

#[derive(Deserialize)]
pub(super) struct KindQuery {
    kind: String,
}

pub(super) async fn connection_fields(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
    Query(q): Query<KindQuery>,
) -> Response {
    let built = async {
        role_in(&state.app, page.actor(), &env).await?;
        let kind: ConnectionKind = q
            .kind
            .parse()
            .map_err(|e: String| lakecdp_app::Error::invalid(e))?;
        Ok(FieldsFragment {
            fields: fields_of(kind),
        })
    }
    .await;
    page.show(Some(&env), built)
}

pub(super) async fn add_connection(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let done = async {
        // the role before the form: below it, nothing of the input is judged
        allowed(&state, &page, &env, Operation::CreateConnection).await?;
        let value = |key: &str| form_value(&form, key);
        let kind: ConnectionKind = value("kind")
            .parse()
            .map_err(|e: String| lakecdp_app::Error::invalid(e))?;
        let mut settings = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        for (key, v) in &form {
            let Some(field) = key.strip_prefix("field.") else {
                continue;
            };
            if v.is_empty() {
                continue;
            }
            match kind.field(field) {
                Some(f) if f.secret => {
                    secrets.insert(f.name.to_string(), Secret::new(v.clone()));
                }
                Some(f) => {
                    settings.insert(f.name.to_string(), v.trim().to_string());
                }
                None => {
                    return Err(lakecdp_app::Error::invalid(format!(
                        "a {} connection has no setting `{field}`",
                        kind.as_str()
                    )))
                }
            }
        }
        state
            .app
            .in_environment(&env)
            .add_connection(
                page.actor(),
                NewConnection {
                    name: value("name"),
                    kind: kind.as_str().to_string(),
                    usable_by: value("usable_by"),
                    settings,
                    secrets,
                },
            )
            .await
    }
    .await;
    page.changed(Some(&env), done)
}

#[derive(Template)]
#[template(path = "connection_test.html")]
struct TestFragment {
    connection: String,
    destination: String,
    lines: Vec<(String, String, String)>,
}

pub(super) async fn test_connection(
    State(state): State<AppState>,
    page: Page,
    Path((env, name)): Path<(String, String)>,
) -> Response {
    let built = state
        .app
        .in_environment(&env)
        .test_connection(page.actor(), &name)
        .await
        .map(|t| TestFragment {
            connection: t.connection.name,
            destination: t.destination,
            lines: t
                .lines
                .into_iter()
                .map(|l| {
                    let detail = match l.fix {
                        Some(fix) => format!("{} (fix: {fix})", l.detail),
                        None => l.detail,
                    };
                    (l.name, format!("{:?}", l.status), detail)
                })
                .collect(),
        });
    page.show(Some(&env), built)
}

pub(super) async fn delete_connection(
    State(state): State<AppState>,
    page: Page,
    Path((env, name)): Path<(String, String)>,
) -> Response {
    let done = state
        .app
        .in_environment(&env)
        .delete_connection(page.actor(), &name)
        .await;
    page.changed(Some(&env), done)
}

// ---- exports ----

struct ExportView {
    name: String,
    slot: String,
    href: String,
    connection: String,
    schedule: String,
    target: String,
    tables: Vec<String>,
    runs: Vec<(RunRow, String)>,
}

#[derive(Template)]
#[template(path = "exports.html")]
struct ExportsPage {
    c: Chrome,
    name: String,
    can_run: bool,
    rows: Vec<ExportView>,
    connections: Vec<String>,
    tables: Vec<String>,
}

pub(super) async fn exports(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
) -> Response {
    let built = async {
        let role = role_in(&state.app, page.actor(), &env).await?;
        let app = state.app.in_environment(&env);
        let (_, list) = state.app.list_exports(page.actor(), Some(&env)).await?;
        let mut rows = Vec::with_capacity(list.len());
        for (i, summary) in list.into_iter().enumerate() {
            let shown = app.show_export(page.actor(), &summary.export.name).await?;
            let e = &shown.export;
            let target = ["database", "schema", "folder"]
                .iter()
                .filter_map(|k| e.settings.get(*k).map(|v| format!("{k} {v}")))
                .collect::<Vec<_>>()
                .join(", ");
            rows.push(ExportView {
                name: e.name.clone(),
                slot: format!("e{i}"),
                href: format!(
                    "/environments/{}/exports/{}",
                    path_segment(&env),
                    path_segment(&e.name)
                ),
                connection: shown
                    .connection
                    .as_ref()
                    .map(|(n, k)| format!("{n} ({})", k.as_str()))
                    .unwrap_or_else(|| "removed".into()),
                schedule: e.schedule.to_string(),
                target: if target.is_empty() {
                    "the connection's default".into()
                } else {
                    target
                },
                tables: e.tables.clone(),
                runs: shown
                    .runs
                    .iter()
                    .map(|r| (RunRow::of(r), r.error.clone().unwrap_or_default()))
                    .collect(),
            });
        }
        let can_run = role >= Role::Contributor;
        let (connections, tables) = if can_run {
            let (_, c) = state.app.list_connections(page.actor(), Some(&env)).await?;
            (
                c.into_iter().map(|c| c.name).collect(),
                state.app.exportable_tables(page.actor(), &env).await?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(ExportsPage {
            c: page.chrome(Some(&env)),
            name: env.clone(),
            can_run,
            rows,
            connections,
            tables,
        })
    }
    .await;
    page.show(Some(&env), built)
}

pub(super) async fn add_export(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = allowed(&state, &page, &env, Operation::CreateExport).await {
        return page.problem(Some(&env), e.into());
    }
    let value = |key: &str| form_value(&form, key);
    let schema = value("schema");
    let new = NewExport {
        name: value("name"),
        connection: value("connection"),
        tables: form
            .iter()
            .filter(|(k, _)| k == "table")
            .map(|(_, v)| v.clone())
            .collect(),
        database: None,
        schema: (!schema.is_empty()).then_some(schema),
        schedule: value("schedule"),
    };
    if new.tables.is_empty() {
        return page.problem(
            Some(&env),
            Problem::bad_request("choose at least one table to export"),
        );
    }
    page.changed(
        Some(&env),
        state
            .app
            .in_environment(&env)
            .add_export(page.actor(), new)
            .await,
    )
}

pub(super) async fn run_export(
    State(state): State<AppState>,
    page: Page,
    Path((env, name)): Path<(String, String)>,
) -> Response {
    let started = state
        .app
        .in_environment(&env)
        .start_export(page.actor(), &name)
        .await;
    match started {
        Ok(started) => {
            let run = state.jobs.spawn_export(state.app.clone(), started);
            run_view(&state, &page, &env, run.as_str(), true).await
        }
        Err(e) => page.problem(Some(&env), e.into()),
    }
}

pub(super) async fn delete_export(
    State(state): State<AppState>,
    page: Page,
    Path((env, name)): Path<(String, String)>,
) -> Response {
    page.changed(
        Some(&env),
        state
            .app
            .in_environment(&env)
            .delete_export(page.actor(), &name)
            .await,
    )
}

// ---- groups ----

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    c: Chrome,
    groups: Vec<(String, Vec<String>, String)>,
}

pub(super) async fn groups(State(state): State<AppState>, page: Page) -> Response {
    let built = state
        .app
        .list_groups(page.actor())
        .await
        .map(|list| GroupsPage {
            c: page.chrome(None),
            groups: list
                .into_iter()
                .map(|g| {
                    let href = path_segment(&g.name);
                    (g.name, g.members, href)
                })
                .collect(),
        });
    page.show(None, built)
}

#[derive(Deserialize)]
pub(super) struct GroupForm {
    name: String,
}

pub(super) async fn create_group(
    State(state): State<AppState>,
    page: Page,
    Form(form): Form<GroupForm>,
) -> Response {
    page.changed(
        None,
        state.app.create_group(page.actor(), form.name.trim()).await,
    )
}

pub(super) async fn delete_group(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> Response {
    page.changed(None, state.app.delete_group(page.actor(), &name).await)
}

#[derive(Deserialize)]
pub(super) struct MemberForm {
    group: String,
    member: String,
    action: String,
}

pub(super) async fn change_member(
    State(state): State<AppState>,
    page: Page,
    Form(form): Form<MemberForm>,
) -> Response {
    if let Err(e) = state.app.require_administrator(page.actor()).await {
        return page.problem(None, e.into());
    }
    let member = form.member.trim();
    let done = match form.action.as_str() {
        "add" => {
            state
                .app
                .add_group_member(page.actor(), &form.group, member)
                .await
        }
        "remove" => {
            state
                .app
                .remove_group_member(page.actor(), &form.group, member)
                .await
        }
        other => Err(lakecdp_app::Error::invalid(format!(
            "`{other}` is not an action: use add or remove"
        ))),
    };
    page.changed(None, done)
}

// ---- tokens ----

#[derive(Deserialize)]
pub(super) struct TokenForm {
    name: String,
    role: String,
    #[serde(default)]
    days: String,
}

pub(super) async fn create_token(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
    Form(form): Form<TokenForm>,
) -> Response {
    let made = async {
        allowed(&state, &page, &env, Operation::ManageRoles).await?;
        let role = lakecdp_app::roles::parse_role(&form.role)?.ok_or_else(|| {
            lakecdp_app::Error::invalid("a token needs a role: viewer, contributor or admin")
        })?;
        let days = form.days.trim();
        let expires = if days.is_empty() {
            None
        } else {
            let n: i64 = days.parse().map_err(|_| {
                lakecdp_app::Error::invalid(format!(
                    "`{days}` is not a number of days: leave it empty for a token that does not expire"
                ))
            })?;
            Some(lakecdp_app::accounts::lifetime_days(n))
        };
        state
            .app
            .create_token(page.actor(), Some(&env), form.name.trim(), role, expires)
            .await
    }
    .await;
    match made {
        // the value once, to copy now; the catalog keeps only its hash
        Ok(t) => Html(format!(
            "<div class=\"saved\" role=\"status\"><p>Token <strong>{}</strong> created. Copy its value now: it is not shown again.</p><p><code id=\"token-value\">{}</code></p></div>",
            escape(&t.token.name),
            escape(&t.secret)
        ))
        .into_response(),
        Err(e) => page.problem(Some(&env), e.into()),
    }
}

pub(super) async fn revoke_token(
    State(state): State<AppState>,
    page: Page,
    Path((env, name)): Path<(String, String)>,
) -> Response {
    page.changed(
        Some(&env),
        state
            .app
            .revoke_token(page.actor(), Some(&env), &name)
            .await,
    )
}
