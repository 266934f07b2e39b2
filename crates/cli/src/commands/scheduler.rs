//! `scheduler`: start refreshes at the times of the environment's refresh schedule, and
//! exports at the times of their own schedules.
//!
//! It runs in the foreground. A refresh still running when the next one is due makes
//! that one Skipped (recorded in the run history with the reason); a refresh held by
//! another process (its lease) is reported by that refresh as it would be on the command
//! line. Time zones and daylight-saving changes are chrono-tz's (see
//! `lakecdp_core::export::ExportSchedule::next_after`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lakecdp_catalog::Catalog;
use lakecdp_core::{ExportSchedule, RunRecord, RunStatus, SchedulerClock, Tick};

use crate::args::RefreshArgs;
use crate::context::Context;
use crate::UserError;

type Running<'a> = (
    DateTime<Utc>,
    Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>,
);

/// `scheduler`.
pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    let project = ctx.load_project()?;
    let schedule = project.environment.refresh_schedule.clone();
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    // exports on their own schedule (not on-refresh, not off)
    let mut export_clocks: Vec<(String, SchedulerClock)> = catalog
        .list_exports(env.id)
        .await?
        .into_iter()
        .filter(|e| matches!(e.schedule, ExportSchedule::At { .. }))
        .map(|e| {
            println!("scheduler: export `{}` {}", e.name, e.schedule);
            (e.name, SchedulerClock::new(e.schedule, Utc::now()))
        })
        .collect();
    if schedule == ExportSchedule::Off && export_clocks.is_empty() {
        return Err(UserError(format!(
            "environment `{}` has no refresh schedule and no export on a schedule of its own: set `refresh_schedule = \"daily 02:00 Europe/Paris\"` (or `weekly mon,thu 02:00 UTC`) in [environment] of {}, or `lakecdp export edit NAME --schedule \"daily 03:00 UTC\"`",
            project.environment.name,
            ctx.project_file().display()
        ))
        .into());
    }
    let acting = lakecdp_catalog::Acting::new(&catalog, ctx.principal_for(&env));
    let mut clock = SchedulerClock::new(schedule.clone(), Utc::now());
    println!(
        "scheduler: refreshes of environment `{}` {schedule}; next at {} (Ctrl-C stops)",
        env.name,
        schedule
            .next_after(Utc::now())
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "-".into())
    );
    let mut current: Option<Running<'_>> = None;
    let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let now = Utc::now();
        let next = match clock.tick(now, current.as_ref().map(|c| c.0)) {
            Tick::Start { due } => {
                println!(
                    "scheduler: the refresh due at {} starts",
                    due.format("%H:%M UTC")
                );
                current = Some((
                    now,
                    Box::pin(super::refresh::run(ctx, RefreshArgs::default())),
                ));
                continue;
            }
            Tick::Skip { due, reason } => {
                println!(
                    "scheduler: the refresh due at {} is skipped: {reason}",
                    due.format("%H:%M UTC")
                );
                let mut r = RunRecord::start(env.id, "refresh");
                r.status = RunStatus::Skipped;
                r.finished_at = Some(Utc::now());
                r.error = Some(reason);
                // never leave the running refresh for a bookkeeping failure
                if let Err(e) = catalog.record_run(&r).await {
                    println!("scheduler: the skipped refresh could not be recorded: {e}");
                }
                continue;
            }
            Tick::Wait { next } => next,
        };
        // exports due now run one after the other (a refresh may be running meanwhile:
        // exports read published outputs only)
        let mut next = next;
        for (name, c) in export_clocks.iter_mut() {
            // due times missed while asleep or busy run once, not once each
            let mut due = None;
            loop {
                match c.tick(Utc::now(), None) {
                    Tick::Start { due: d } | Tick::Skip { due: d, .. } => due = Some(d),
                    Tick::Wait { next: n } => {
                        next = match (next, n) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                        break;
                    }
                }
            }
            if let Some(due) = due {
                println!(
                    "scheduler: export `{name}` due at {} starts",
                    due.format("%H:%M UTC")
                );
                if let Err(e) = super::export::run_exports(
                    ctx,
                    &catalog,
                    &acting,
                    &env,
                    std::slice::from_ref(name),
                )
                .await
                {
                    println!("scheduler: export `{name}` did not succeed: {e:#}");
                }
            }
        }
        // wake at the next due time, or each minute to look again
        let wait = next
            .and_then(|n| (n - now).to_std().ok())
            .unwrap_or(Duration::ZERO)
            .clamp(Duration::from_millis(200), Duration::from_secs(60));
        tokio::select! {
            result = async {
                match current.as_mut() {
                    Some((_, f)) => f.as_mut().await,
                    None => std::future::pending().await,
                }
            } => {
                current = None;
                match result {
                    Ok(()) => println!("scheduler: the refresh succeeded"),
                    Err(e) => println!("scheduler: the refresh did not succeed: {e:#}"),
                }
                if let Some(n) = schedule.next_after(Utc::now()) {
                    println!("scheduler: next refresh at {}", n.format("%Y-%m-%d %H:%M UTC"));
                }
            }
            _ = tokio::time::sleep(wait) => {}
            _ = &mut stop => {
                if let Some((_, f)) = current.take() {
                    println!("scheduler: stopping; the running refresh is canceled");
                    let _ = f.await;
                }
                println!("scheduler: stopped");
                return Ok(());
            }
        }
    }
}
