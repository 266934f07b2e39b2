//! `scheduler`: start refreshes at the times of the environment's refresh schedule.
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
    if schedule == ExportSchedule::Off {
        return Err(UserError(format!(
            "environment `{}` has no refresh schedule: set `refresh_schedule = \"daily 02:00 Europe/Paris\"` (or `weekly mon,thu 02:00 UTC`) in [environment] of {}",
            project.environment.name,
            ctx.project_file().display()
        ))
        .into());
    }
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
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
                catalog.record_run(&r).await?;
                continue;
            }
            Tick::Wait { next } => next,
        };
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
