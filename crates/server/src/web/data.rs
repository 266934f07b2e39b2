//! Pages of the data: the sources with their last loads (counts, corrupt rows and their
//! reasons, watermarks) and the unification (its rules, edited into a new revision and
//! previewed, and what its last run did).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use lakecdp_app::revisions::RevisionChange;
use lakecdp_app::status::{
    ModelMatches, RuleMatches, SourceStatus, UnifiedTable, UnifyStats, CORRUPT_SAMPLE,
    PREVIEW_SAMPLE,
};
use lakecdp_core::Role;
use serde::Deserialize;

use super::{path_segment, role_in, Chrome, Page, RunRow};
use crate::AppState;

fn count(n: u64) -> String {
    // thin grouping for people: 1 234 567
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(ch);
    }
    out
}

// ---- sources ----

struct TableRow {
    name: String,
    format: String,
    read: String,
    written: String,
    corrupt: u64,
    replaced: String,
    deleted: String,
    seconds: String,
    reasons: String,
    incremental: String,
    watermark: String,
    corrupt_href: String,
    slot: String,
}

struct SourceView {
    name: String,
    slot: String,
    last_run: Option<RunRow>,
    error: String,
    published: String,
    kept: bool,
    tables: Vec<TableRow>,
}

#[derive(Template)]
#[template(path = "sources.html")]
struct SourcesPage {
    c: Chrome,
    name: String,
    revision: u32,
    sources: Vec<SourceView>,
}

fn source_view(env: &str, index: usize, s: SourceStatus) -> SourceView {
    let slot = format!("s{index}");
    let loads = s.loads.clone().unwrap_or_default();
    let tables = s
        .tables
        .iter()
        .enumerate()
        .map(|(j, (table, format))| {
            let load = loads.iter().find(|l| l.table.eq_ignore_ascii_case(table));
            let watermark = s
                .watermarks
                .iter()
                .find(|w| w.table.eq_ignore_ascii_case(table))
                .map(|w| {
                    format!(
                        "{} (set {})",
                        w.hour.format("%Y-%m-%d %H:00"),
                        w.updated_at.format("%Y-%m-%d %H:%M")
                    )
                })
                .unwrap_or_else(|| "—".into());
            let dash = || "—".to_string();
            TableRow {
                name: table.clone(),
                format: format.clone(),
                read: load.map(|l| count(l.read)).unwrap_or_else(dash),
                written: load.map(|l| count(l.written)).unwrap_or_else(dash),
                corrupt: load.map_or(0, |l| l.corrupt),
                replaced: load.map(|l| count(l.replaced)).unwrap_or_else(dash),
                deleted: load.map(|l| count(l.deleted)).unwrap_or_else(dash),
                seconds: load
                    .map(|l| format!("{:.1}", l.seconds))
                    .unwrap_or_else(dash),
                reasons: load
                    .map(|l| {
                        l.reasons
                            .iter()
                            .map(|r| format!("{} ({})", r.reason, count(r.rows)))
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default(),
                incremental: load
                    .and_then(|l| l.incremental.as_ref())
                    .map(|i| {
                        let mut text = format!(
                            "from {} ({} rows), {} hour folder{}, {} upserts, {} deletes",
                            i.base,
                            count(i.base_rows),
                            i.hours,
                            if i.hours == 1 { "" } else { "s" },
                            count(i.upserts),
                            count(i.deletes)
                        );
                        if i.waiting > 0 {
                            text.push_str(&format!("; {} hour(s) waiting", i.waiting));
                        }
                        if i.late > 0 {
                            text.push_str(&format!(
                                "; {} late file(s) not loaded (a full refresh loads them)",
                                i.late
                            ));
                        }
                        text
                    })
                    .unwrap_or_else(|| "no".into()),
                watermark,
                corrupt_href: format!(
                    "/environments/{}/sources/{}/tables/{}/corrupt?slot={slot}-t{j}",
                    path_segment(env),
                    path_segment(&s.source),
                    path_segment(table)
                ),
                slot: format!("{slot}-t{j}"),
            }
        })
        .collect();
    let error = s
        .last_run
        .as_ref()
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    SourceView {
        name: s.source.clone(),
        slot,
        last_run: s.last_run.as_ref().map(RunRow::of),
        error,
        published: s
            .published
            .as_ref()
            .map(|p| match &p.at {
                Some(at) => format!("run {} at {at}", p.run),
                None => format!("run {}", p.run),
            })
            .unwrap_or_default(),
        kept: s.published.is_none() || s.loads.is_some(),
        tables,
    }
}

pub(super) async fn sources(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
) -> Response {
    let built = async {
        let status = state.app.ingestion_status(page.actor(), &env).await?;
        Ok(SourcesPage {
            c: page.chrome(Some(&env)),
            name: env.clone(),
            revision: status.revision,
            sources: status
                .sources
                .into_iter()
                .enumerate()
                .map(|(i, s)| source_view(&env, i, s))
                .collect(),
        })
    }
    .await;
    page.show(Some(&env), built)
}

#[derive(Template)]
#[template(path = "corrupt_rows.html")]
struct CorruptFragment {
    slot: String,
    table: String,
    entity: String,
    rows: Vec<(String, i64, String, String)>,
}

/// The longest part of a corrupt record a page shows.
const RAW_SHOWN: usize = 300;

fn shortened(text: &str) -> String {
    match text.char_indices().nth(RAW_SHOWN) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct SlotQuery {
    /// Where the page shows the rows (`s<source>-t<table>`).
    slot: String,
}

pub(super) async fn corrupt_rows(
    State(state): State<AppState>,
    page: Page,
    Path((env, source, table)): Path<(String, String, String)>,
    Query(q): Query<SlotQuery>,
) -> Response {
    let built = state
        .app
        .corrupt_rows(page.actor(), &env, &source, &table, CORRUPT_SAMPLE)
        .await
        .map(|rows| {
            let slot = if q
                .slot
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                q.slot
            } else {
                String::new()
            };
            CorruptFragment {
                slot,
                entity: lakecdp_app::status::corrupt_entity(&source, &table),
                table: format!("{source}.{table}"),
                rows: rows
                    .into_iter()
                    .map(|r| (r.file, r.line, r.reason, shortened(&r.raw)))
                    .collect(),
            }
        });
    page.show(Some(&env), built)
}

// ---- unification ----

struct StatsView {
    profiles: String,
    records: String,
    duplicates: String,
    id_changes: u64,
    held: u64,
    skipped: u64,
    tables: Vec<UnifiedTable>,
    rules: Vec<RuleMatches>,
    models: Vec<ModelMatches>,
    sizes: Vec<(String, String)>,
    chart: Option<String>,
}

impl StatsView {
    fn of(s: UnifyStats) -> Self {
        let mut sizes = s.clusters.sizes.clone();
        sizes.sort_by_key(|z| z.size);
        // the long tail of large profiles as one bar
        let mut bars: Vec<(String, i64)> = Vec::new();
        for z in &sizes {
            if z.size < 10 {
                bars.push((z.size.to_string(), z.count as i64));
            } else {
                match bars.last_mut() {
                    Some((label, n)) if label == "10+" => *n += z.count as i64,
                    _ => bars.push(("10+".into(), z.count as i64)),
                }
            }
        }
        let chart = crate::reports::chart(&lakecdp_app::reporting::Distribution {
            name: "ProfileSizes".into(),
            title: "Profile sizes".into(),
            rows: bars,
        });
        Self {
            profiles: count(s.profiles),
            records: count(s.clusters.records),
            duplicates: count(s.tables.iter().map(|t| t.duplicates).sum()),
            id_changes: s.id_changes,
            held: s.held_for_review,
            skipped: s.skipped_blocks,
            tables: s.tables,
            rules: s.rules,
            models: s.models,
            sizes: sizes
                .iter()
                .map(|z| (z.size.to_string(), count(z.count)))
                .collect(),
            chart,
        }
    }
}

#[derive(Template)]
#[template(path = "unification.html")]
struct UnificationPage {
    c: Chrome,
    name: String,
    revision: u32,
    last_run: Option<RunRow>,
    error: String,
    published: String,
    stats: Option<StatsView>,
    section: String,
    rows: usize,
    can_edit: bool,
    sample: usize,
}

pub(super) async fn unification(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
) -> Response {
    let built = async {
        let role = role_in(&state.app, page.actor(), &env).await?;
        let u = state.app.unification_status(page.actor(), &env).await?;
        Ok(UnificationPage {
            c: page.chrome(Some(&env)),
            name: env.clone(),
            revision: u.revision,
            error: u
                .last_run
                .as_ref()
                .and_then(|r| r.error.clone())
                .unwrap_or_default(),
            last_run: u.last_run.as_ref().map(RunRow::of),
            published: u.published.map(|p| p.run.to_string()).unwrap_or_default(),
            stats: u.last.map(StatsView::of),
            rows: u.section.lines().count().clamp(8, 40),
            section: u.section,
            can_edit: role >= Role::Contributor,
            sample: PREVIEW_SAMPLE,
        })
    }
    .await;
    page.show(Some(&env), built)
}

#[derive(Deserialize)]
pub(super) struct RulesForm {
    rules: String,
    /// The revision whose rules the page showed.
    #[serde(default)]
    revision: Option<u32>,
}

#[derive(Template)]
#[template(path = "unify_preview.html")]
struct PreviewFragment {
    sample: usize,
    s: StatsView,
}

pub(super) async fn preview_rules(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
    Form(form): Form<RulesForm>,
) -> Response {
    let built = state
        .app
        .preview_unification_rules(page.actor(), &env, &form.rules, PREVIEW_SAMPLE)
        .await
        .map(|s| PreviewFragment {
            sample: PREVIEW_SAMPLE,
            s: StatsView::of(s),
        });
    page.show(Some(&env), built)
}

pub(super) async fn save_rules(
    State(state): State<AppState>,
    page: Page,
    Path(env): Path<String>,
    Form(form): Form<RulesForm>,
) -> Response {
    match state
        .app
        .apply_unification(page.actor(), &env, &form.rules, form.revision)
        .await
    {
        Ok(RevisionChange::New(n)) => Html(format!(
            "<p class=\"saved\" role=\"status\">Saved as revision <strong id=\"saved-revision\">{n}</strong>. The next refresh unifies with these rules.</p>"
        ))
        .into_response(),
        Ok(RevisionChange::Unchanged(n)) => Html(format!(
            "<p class=\"saved\" role=\"status\">No change: these are the rules of revision {n}.</p>"
        ))
        .into_response(),
        Err(e) => page.problem(Some(&env), e.into()),
    }
}
