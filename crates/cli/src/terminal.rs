//! The terminal's observer of long operations: progress bars for loads, and the lines
//! and tables each process's report prints.

use lakecdp_app::reports::{
    ActivitiesReport, Base, ChangeReason, IncrementalReport, MeasuresReport, ReportsReport,
    SegmentsReport, SourceReport, TableReport, UnifyMode, UnifyReport,
};
use lakecdp_app::{Event, Observer, SchedulerEvent, SchedulerObserver};
use lakecdp_core::RunStatus;

use crate::output;
use crate::progress::LoadProgress;

/// Prints events as they come.
pub struct Terminal {
    load: LoadProgress,
}

impl Terminal {
    pub fn new() -> Self {
        Self {
            load: LoadProgress::new(),
        }
    }
}

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

impl SchedulerObserver for Terminal {
    fn scheduler(&self, event: &SchedulerEvent) {
        match event {
            SchedulerEvent::Started {
                environment,
                schedule,
                next,
                exports,
            } => {
                for (name, s) in exports {
                    println!("scheduler: export `{name}` {s}");
                }
                println!(
                    "scheduler: refreshes of environment `{environment}` {schedule}; next at {} (Ctrl-C stops)",
                    next.as_ref().map(time).unwrap_or_else(|| "-".into())
                );
            }
            SchedulerEvent::RefreshStarts(due) => println!(
                "scheduler: the refresh due at {} starts",
                due.format("%H:%M UTC")
            ),
            SchedulerEvent::RefreshSkipped(due, reason) => println!(
                "scheduler: the refresh due at {} is skipped: {reason}",
                due.format("%H:%M UTC")
            ),
            SchedulerEvent::RefreshEnded(Ok(r)) if r.status == RunStatus::Succeeded => {
                println!("scheduler: the refresh succeeded")
            }
            SchedulerEvent::RefreshEnded(Ok(r)) => println!(
                "scheduler: the refresh did not succeed: {} (run {})",
                r.status, r.run
            ),
            SchedulerEvent::RefreshEnded(Err(e)) => {
                println!("scheduler: the refresh did not succeed: {e}")
            }
            SchedulerEvent::NextRefresh(n) => println!("scheduler: next refresh at {}", time(n)),
            SchedulerEvent::ExportStarts(name, due) => println!(
                "scheduler: export `{name}` due at {} starts",
                due.format("%H:%M UTC")
            ),
            SchedulerEvent::ExportFailed(name, e) => {
                println!("scheduler: export `{name}` did not succeed: {e}")
            }
            SchedulerEvent::Stopping {
                refresh_running: true,
            } => println!("scheduler: stopping; the running refresh is canceled"),
            SchedulerEvent::Stopped => println!("scheduler: stopped"),
            _ => {}
        }
    }
}

impl Observer for Terminal {
    fn event(&self, event: &Event) {
        match event {
            Event::RefreshStarted {
                run,
                environment,
                processes,
            } => println!(
                "refreshing environment `{environment}` (run {run}): {}",
                processes
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
            Event::Notice(text) => println!("{text}"),
            Event::Warning(text) => eprintln!("warning: {text}"),
            Event::Canceling(why) => println!("canceling: {why}"),
            Event::ProcessStarted(_) => {}
            Event::ProcessFinished(o) if o.status != RunStatus::Succeeded => {
                println!(
                    "  {}: {}{}",
                    o.process,
                    o.status,
                    o.reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
            Event::LoadStarted { table, pass, bytes } => self.load.start(table, *pass, *bytes),
            Event::LoadAdvanced { records, bytes } => self.load.advance(*records, *bytes),
            Event::LoadFinished => self.load.finish(),
            Event::Ingested { source, report } => print_ingested(source, report),
            Event::IngestFailed { source, message } => println!("  {source}: FAILED: {message}"),
            Event::Unifying { tables } => println!(
                "unifying {tables} table{} into customer profiles",
                if *tables == 1 { "" } else { "s" }
            ),
            Event::Unified(r) => print_unify(r),
            Event::Activities(r) => print_activities(r),
            Event::Reports(r) => print_reports(r),
            Event::Measures(r) => print_measures(r),
            Event::Segments(r) => print_segments(r),
            Event::ExportStarted {
                export,
                tables,
                destination,
            } => println!(
                "export `{export}`: {tables} table{} to {destination}",
                if *tables == 1 { "" } else { "s" }
            ),
            Event::ExportedTable { table: t, .. } => match &t.error {
                None => println!(
                    "  {:<28} {:>10} rows  {:>8.1} MiB  {:>6.2} s",
                    t.name,
                    t.rows,
                    t.bytes as f64 / (1024.0 * 1024.0),
                    t.elapsed.as_secs_f64()
                ),
                Some(e) => println!(
                    "  {:<28} FAILED: {e} (the previous export of it is kept)",
                    t.name
                ),
            },
            Event::ExportFinished {
                export,
                rows,
                tables,
                elapsed,
                ..
            } => println!(
                "export `{export}`: {rows} rows in {tables} table{} in {:.1} s",
                if *tables == 1 { "" } else { "s" },
                elapsed.as_secs_f64()
            ),
            Event::ExportFailed { export, message } => {
                println!("export `{export}` failed: {message}")
            }
            _ => {}
        }
    }
}

fn print_ingested(source: &str, report: &SourceReport) {
    if report.unchanged {
        println!(
            "  {source}: unchanged since run {} (same declaration and files), not rewritten",
            report.run_id
        );
        return;
    }
    for t in &report.tables {
        let reasons = t
            .reasons
            .iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  {source}.{}: {} read, {} written, {} corrupt in {:.1}s{}",
            t.table,
            t.read,
            t.written,
            t.corrupt,
            t.seconds,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(
                    " (corrupt: {reasons}; kept in {source}_{}_corrupt)",
                    t.table
                )
            }
        );
        if let Some(inc) = &t.incremental {
            println!("    {}", describe_incremental(t, inc));
        }
    }
    println!(
        "  published DataIngestion/{source}/ (run {})",
        report.run_id
    );
}

/// One line on what an incremental load applied.
fn describe_incremental(t: &TableReport, inc: &IncrementalReport) -> String {
    let hour = |h: &chrono::DateTime<chrono::Utc>| h.format("%Y-%m-%d %H:00Z").to_string();
    let base = match inc.base {
        Base::Previous => format!("built on the last output ({} rows)", inc.base_rows),
        Base::FullData => format!("built from FullData/ ({} rows)", inc.base_rows),
    };
    let hours = match inc.hours.as_slice() {
        [] => "no new hour folder".to_string(),
        [one] => format!("hour {}", hour(one)),
        [first, .., last] => format!(
            "{} hours {} to {}",
            inc.hours.len(),
            hour(first),
            hour(last)
        ),
    };
    let mut text = format!(
        "{base}, {hours}: {} upserts, {} deletes; {} rows replaced, {} deleted",
        inc.upserts, inc.deletes, t.replaced, t.deleted
    );
    if !inc.waiting.is_empty() {
        text.push_str(&format!(
            "; {} hour folder{} not ended yet",
            inc.waiting.len(),
            if inc.waiting.len() == 1 { "" } else { "s" }
        ));
    }
    if let Some(w) = inc.watermark {
        text.push_str(&format!("; watermark {}", hour(&w)));
    }
    text
}

fn print_activities(r: &ActivitiesReport) {
    for x in &r.activities {
        println!(
            "  activity {} ({}): {} rows, {} linked to profiles, {} without a customer key, {} matching no profile, {} without a time",
            x.name, x.source_table, x.rows, x.linked, x.no_key, x.unmatched, x.no_time
        );
    }
    println!(
        "  published Activities/ (run {}): {} activities in UnifiedActivity, {} rows left out are in UnmatchedActivity",
        r.run_id,
        r.linked(),
        r.left_out()
    );
}

fn print_reports(r: &ReportsReport) {
    println!(
        "  published Reports/ (run {}): {} of {} profiles",
        r.run_id,
        r.entities
            .iter()
            .map(|(n, rows)| format!("{n} ({rows})"))
            .collect::<Vec<_>>()
            .join(", "),
        r.profiles
    );
}

fn print_measures(r: &MeasuresReport) {
    for m in &r.measures {
        println!(
            "  measure {} ({}): {} rows in {}{}",
            m.name,
            m.kind.as_str(),
            m.rows,
            m.entity,
            if m.customers_without_data > 0 {
                format!(", {} customers without data", m.customers_without_data)
            } else {
                String::new()
            }
        );
    }
    println!("  published Measures/ (run {})", r.run_id);
}

fn print_segments(r: &SegmentsReport) {
    for x in &r.segments {
        let change = match x.change {
            Some(c) => format!(" ({c:+} since the last run)"),
            None => String::new(),
        };
        let kept = if x.kept { ", kept (static)" } else { "" };
        println!(
            "  segment {} ({}): {} members{change}{kept}",
            x.name, x.kind, x.members
        );
    }
    println!(
        "  published Segments/ (run {}): {} customers in at least one segment",
        r.run_id, r.membership_rows
    );
}

/// What each match model did: blocking keys and the comparisons each added, pairs per
/// threshold, the weight histogram, and the training (with `parameters`, every
/// column's levels with m, u and weight).
pub fn print_models(r: &UnifyReport, parameters: bool) {
    for m in &r.models {
        let what = if m.table == m.with {
            format!("{} (duplicates)", m.table)
        } else {
            format!("{} with {}", m.table, m.with)
        };
        println!(
            "match model {what}: {} candidate pairs, {} matched at probability {} or more",
            m.candidates, m.matched, m.threshold
        );
        let keys = m
            .blocking
            .iter()
            .map(|b| format!("{} {}", b.key, b.comparisons))
            .collect::<Vec<_>>()
            .join(", ");
        println!("  candidate pairs per blocking key: {keys}");
        match (&m.training, m.trained) {
            (Some(t), true) => println!(
                "  trained in this run: {} random pairs for u, EM {} iterations ({}), {} candidate patterns, {:.2} s",
                m.random_pairs,
                t.iterations,
                if t.converged { "converged" } else { "not converged" },
                t.patterns,
                t.seconds
            ),
            (Some(t), false) => println!(
                "  stored model (trained in {:.2} s on {} candidate pairs); `lakecdp unify train` trains it anew",
                t.seconds, t.pairs
            ),
            (None, _) => println!("  every parameter is given: nothing to train"),
        }
        let cuts = m
            .thresholds
            .iter()
            .map(|(p, n)| format!("{p}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!("  pairs matched at each threshold: {cuts}");
        // weights in bands of 5 bits
        let mut bands: std::collections::BTreeMap<i32, u64> = std::collections::BTreeMap::new();
        for (w, n) in &m.histogram {
            *bands.entry(w.div_euclid(5) * 5).or_insert(0) += n;
        }
        let most = bands.values().copied().max().unwrap_or(0).max(1);
        println!("  match weight histogram:");
        for (w, n) in &bands {
            let width = ((*n as f64 / most as f64) * 40.0).ceil() as usize;
            println!(
                "    {:>4} to {:>4}  {:>9}  {}",
                w,
                w + 5,
                n,
                "#".repeat(width)
            );
        }
        if parameters {
            let mut t = output::table(&["column", "level", "m", "u", "weight"]);
            t.add_row(vec![
                "prior".into(),
                String::new(),
                format!("{:.3e}", m.model.prior),
                String::new(),
                format!("{:+.2}", m.model.prior_weight()),
            ]);
            for c in &m.model.columns {
                for (l, label) in c.kind.labels().iter().enumerate() {
                    t.add_row(vec![
                        c.name.clone(),
                        label.to_string(),
                        format!("{:.4}", c.m[l]),
                        format!("{:.6}", c.u[l]),
                        format!("{:+.2}", c.level_weight(l as u8, None)),
                    ]);
                }
            }
            println!("{t}");
        }
    }
}

pub fn print_unify(r: &UnifyReport) {
    let mut t = output::table(&["table", "records", "duplicates", "matched", "left out"]);
    for x in &r.tables {
        t.add_row(vec![
            x.table.clone(),
            x.records.to_string(),
            x.duplicates.to_string(),
            x.matched.to_string(),
            x.excluded.to_string(),
        ]);
    }
    println!("{t}");
    let mut t = output::table(&["table", "step", "rule", "candidate pairs", "matched pairs"]);
    for x in &r.rules {
        t.add_row(vec![
            x.table.clone(),
            x.kind.to_string(),
            x.rule.clone(),
            x.candidates.to_string(),
            x.pairs.to_string(),
        ]);
    }
    println!("{t}");
    for g in &r.giant {
        println!(
            "  rule `{}`: the value `{}` is shared by {} records, more than max_block; it never matches (add it to the bypass overrides to silence this)",
            g.rule, g.value, g.records
        );
    }
    print_models(r, false);
    if r.held_for_review > 0 {
        println!(
            "  {} weak links of match models held for review (Unification/ConflationReviewPairs): each would have merged two profiles or grown a profile of weak links only",
            r.held_for_review
        );
    }
    let sizes = r
        .clusters
        .sizes
        .iter()
        .map(|(size, n)| format!("{n}×{size}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "{} profiles from {} records (profile sizes: {sizes})",
        r.profiles, r.clusters.records
    );
    match &r.mode {
        UnifyMode::Incremental {
            changed,
            deleted,
            rematched,
            kept,
        } => println!(
            "  incremental: {changed} records new or changed, {deleted} keys gone; {rematched} records matched again, {kept} kept with their profiles (refresh --full-unify matches all)"
        ),
        UnifyMode::Full { reason } => {
            println!("  every record matched: {reason}")
        }
    }
    if let Some((size, _)) = r.clusters.largest.first() {
        println!("  largest profile: {size} records");
    }
    if r.run_id.is_some() {
        // a preview assigns no ids
        let count =
            |reason: ChangeReason| r.id_changes.iter().filter(|c| c.reason == reason).count();
        println!(
            "  CustomerIds: {} merged, {} split, {} removed since the last run",
            count(ChangeReason::Merged),
            count(ChangeReason::Split),
            count(ChangeReason::Removed)
        );
    }
    let phases = r
        .phases
        .iter()
        .map(|(p, s)| format!("{p} {s:.2}s"))
        .collect::<Vec<_>>()
        .join(", ");
    match &r.run_id {
        Some(run) => println!("  published Unification/ (run {run}); {phases}"),
        None => println!("  preview only: nothing published; {phases}"),
    }
}
