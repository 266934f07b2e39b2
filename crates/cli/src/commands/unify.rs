//! `unify explain|preview`.

use lakecdp_app::{Actor, App};

use crate::args::{ExplainArgs, PreviewArgs, TrainArgs};
use crate::output;
use crate::terminal::{print_models, print_unify};

/// `unify explain`.
pub async fn explain(app: &App, actor: &Actor, a: ExplainArgs) -> anyhow::Result<()> {
    let x = app.explain(actor, &a.customer_id).await?;
    let id = &x.customer_id;
    let mut history = output::table(&["old id", "new id", "reason", "run"]);
    for h in &x.history {
        history.add_row(vec![
            h.old.clone(),
            h.new.clone(),
            h.reason.clone(),
            h.run.clone(),
        ]);
    }
    if x.records.is_empty() {
        println!("CustomerId {id} is no longer in use:");
        println!("{history}");
        return Ok(());
    }
    println!("profile {id}: {} source records", x.records.len());
    if !x.customer.is_empty() {
        let mut t = output::table(&["Customer column", "value"]);
        for (k, v) in &x.customer {
            t.add_row(vec![k.clone(), v.clone()]);
        }
        println!("{t}");
    }
    let mut t = output::table(&["source", "table", "key", "values"]);
    for r in &x.records {
        t.add_row(vec![
            r.source.clone(),
            r.table.clone(),
            r.key.clone(),
            r.values
                .iter()
                .map(|(c, v)| format!("{c}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    println!("{t}");
    if x.pairs.is_empty() {
        println!("no pair joined these records: the profile holds one record");
    } else {
        let mut pairs = output::table(&["record", "matched record", "rule", "score"]);
        for p in &x.pairs {
            pairs.add_row(vec![
                p.record.clone(),
                p.matched.clone(),
                p.rule.clone(),
                p.score.clone(),
            ]);
        }
        println!("{pairs}");
    }
    for w in &x.weights {
        println!(
            "match model: {} and {}: weight {:+.2} (probability {:.4})",
            w.record, w.matched, w.weight, w.probability
        );
        let mut t = output::table(&[
            "comparison",
            "level",
            "m",
            "u",
            "value's share",
            "weight",
            "",
        ]);
        for r in &w.rows {
            t.add_row(vec![
                r.column.clone(),
                r.level.clone(),
                format!("{:.4}", r.m),
                format!("{:.6}", r.u),
                // an exact agreement on a rare value weighs more than on a common one
                r.term_frequency
                    .map(|f| format!("{:.6}", f))
                    .unwrap_or_default(),
                format!("{:+.2}", r.weight),
                bar(r.weight),
            ]);
        }
        println!("{t}");
    }
    if !x.history.is_empty() {
        println!("{history}");
    }
    Ok(())
}

/// A weight as a bar of `+` (evidence for a match) or `-` (against), one per 2 bits.
fn bar(weight: f64) -> String {
    let n = ((weight.abs() / 2.0).round() as usize).min(20);
    let c = if weight >= 0.0 { "+" } else { "-" };
    c.repeat(n)
}

/// `unify train`.
pub async fn train(app: &App, actor: &Actor, a: TrainArgs) -> anyhow::Result<()> {
    match a.sample {
        Some(n) => println!("training the match models on the first {n} records of each table"),
        None => println!("training the match models on every record"),
    }
    let report = app.train_unification(actor, a.sample).await?;
    print_models(&report, true);
    println!("stored in the lake: later refreshes use these models");
    Ok(())
}

/// `unify preview`.
pub async fn preview(app: &App, actor: &Actor, a: PreviewArgs) -> anyhow::Result<()> {
    println!(
        "previewing unification on the first {} records of each table",
        a.sample
    );
    // the rules as written in the file, applied or not
    let text = app.read_project_file()?;
    let report = app
        .preview_unification(actor, Some(&text), a.sample)
        .await?;
    print_unify(&report);
    Ok(())
}
