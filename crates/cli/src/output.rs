//! Tables and summaries printed for people.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Color, ContentArrangement, Table};
use lakecdp_app::{CheckReport, CheckStatus};
use lakecdp_core::{Environment, SecretRef, StorageConfig};

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().map(Cell::new).collect::<Vec<_>>());
    if std::env::var_os("NO_COLOR").is_some() {
        t.force_no_tty();
    }
    t
}

/// The checks as one table: check, result, detail and fix.
pub fn print_checks(report: &CheckReport) {
    let mut t = table(&["check", "result", "details"]);
    for r in &report.results {
        let color = match r.status {
            CheckStatus::Pass => Color::Green,
            CheckStatus::Warn => Color::Yellow,
            CheckStatus::Fail => Color::Red,
            CheckStatus::Skipped => Color::DarkGrey,
        };
        let mut details = r.detail.clone();
        if let Some(fix) = &r.fix {
            details.push_str("\nfix: ");
            details.push_str(fix);
        }
        t.add_row(vec![
            Cell::new(r.check.title()),
            Cell::new(r.status.to_string()).fg(color),
            Cell::new(details),
        ]);
    }
    println!("{t}");
    let failed = report.failures().count();
    let warned = report
        .results
        .iter()
        .filter(|r| r.status == CheckStatus::Warn)
        .count();
    let passed = report
        .results
        .iter()
        .filter(|r| r.status == CheckStatus::Pass)
        .count();
    println!("{passed} passed, {failed} failed, {warned} warnings");
}

fn secret(r: &Option<SecretRef>) -> String {
    match r {
        Some(r) => format!("{r} (value hidden)"),
        None => "-".into(),
    }
}

/// An environment as key/value rows; secret values never appear (only where they are read from).
pub fn print_environment(env: &Environment) {
    let mut t = table(&["setting", "value"]);
    let mut row = |k: &str, v: String| {
        t.add_row(vec![k.to_string(), v]);
    };
    row("name", env.name.clone());
    row("id", env.id.to_string());
    row(
        "lake folder",
        format!("{}/{}", env.storage.describe(), env.id.folder()),
    );
    row("region", env.region.clone().unwrap_or_else(|| "-".into()));
    row("output format", env.output_format.to_string());
    row("retention (runs)", env.retention_runs.to_string());
    row("storage kind", env.storage.kind().to_string());
    match &env.storage {
        StorageConfig::Local(l) => row("path", l.path.display().to_string()),
        StorageConfig::Adls(a) => {
            if let Ok(loc) = a.location() {
                row("account", loc.account);
                row("container", loc.container);
            }
            row(
                "endpoint",
                a.endpoint.clone().unwrap_or_else(|| "(public)".into()),
            );
            if a.emulator {
                row(
                    "emulator",
                    format!("yes (flat namespace allowed: {})", a.allow_flat_namespace),
                );
            }
            match a.auth() {
                Ok(lakecdp_core::AdlsAuth::AccountKey(r)) => {
                    row("auth", format!("account key from {}", secret(&Some(r))))
                }
                Ok(lakecdp_core::AdlsAuth::Sas(r)) => {
                    row("auth", format!("SAS token from {}", secret(&Some(r))))
                }
                Ok(lakecdp_core::AdlsAuth::ServicePrincipal {
                    tenant_id,
                    client_id,
                    client_secret,
                }) => row(
                    "auth",
                    format!(
                        "service principal {client_id} in tenant {tenant_id}, secret from {}",
                        secret(&Some(client_secret))
                    ),
                ),
                Err(e) => row("auth", format!("invalid: {e}")),
            }
            row(
                "storage region",
                a.region.clone().unwrap_or_else(|| "-".into()),
            );
        }
        StorageConfig::S3(s) => {
            row("bucket", s.bucket.clone());
            row("prefix", s.prefix.clone().unwrap_or_else(|| "-".into()));
            row("storage region", s.region.clone());
            row(
                "endpoint",
                s.endpoint.clone().unwrap_or_else(|| "(AWS)".into()),
            );
            row("access key id", secret(&s.access_key_id));
            row("secret access key", secret(&s.secret_access_key));
        }
    }
    row(
        "created",
        format!(
            "{} by {}",
            env.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
            env.created_by
        ),
    );
    row(
        "updated",
        env.updated_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    );
    println!("{t}");
}
