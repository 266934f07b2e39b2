//! `scheduler`: runs the scheduler of `lakecdp-app` in the foreground until Ctrl-C.

use std::sync::Arc;

use lakecdp_app::{Actor, App, CancellationToken};

use crate::terminal::Terminal;

/// `scheduler`.
pub async fn run(app: &App, actor: &Actor) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let on_ctrl_c = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        })
    };
    let result = app
        .run_scheduler(actor, None, stop, Arc::new(Terminal::new()))
        .await;
    on_ctrl_c.abort();
    Ok(result?)
}
