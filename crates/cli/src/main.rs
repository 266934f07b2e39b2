//! The `lakecdp` binary: arguments -> validated configuration -> library calls.

mod args;
mod commands;
mod context;
mod output;
mod progress;
mod targets;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{
    Cli, Command, ConnectionCommand, EnvCommand, EnvSecretCommand, ExportCommand, RoleCommand,
    SegmentCommand, SourceCommand, UnifyCommand, VaultCommand,
};
use crate::context::Context;

/// A mistake the user can fix; exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

fn is_user_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<UserError>()
            || c.is::<lakecdp_core::ConfigErrors>()
            || c.downcast_ref::<lakecdp_lake::Error>()
                .is_some_and(|e| e.is_user_error())
            || c.downcast_ref::<lakecdp_catalog::Error>()
                .is_some_and(|e| e.is_user_error())
            || c.downcast_ref::<lakecdp_connect::Error>()
                .is_some_and(|e| e.is_user_error())
            || c.downcast_ref::<lakecdp_engine::Error>()
                .is_some_and(|e| e.is_user_error())
    })
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,lakecdp=info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LAKECDP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(if is_user_error(&e) { 2 } else { 1 })
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context::new(&cli)?;
    match cli.command {
        Command::Init(a) => commands::init::run(&ctx, a),
        Command::Env(EnvCommand::Check(a)) => commands::env::check(&ctx, a).await,
        Command::Env(EnvCommand::Create(a)) => {
            commands::env::create(&ctx, a.create_container).await
        }
        Command::Env(EnvCommand::List) => commands::env::list(&ctx).await,
        Command::Env(EnvCommand::Show(a)) => commands::env::show(&ctx, a.name).await,
        Command::Env(EnvCommand::Update(a)) => commands::env::update(&ctx, a).await,
        Command::Env(EnvCommand::Delete(a)) => commands::env::delete(&ctx, a).await,
        Command::Env(EnvCommand::Secret(c)) => {
            use commands::connection as cmd;
            match c {
                EnvSecretCommand::Set(a) => cmd::env_secret_set(&ctx, a).await,
                EnvSecretCommand::List(a) => cmd::env_secret_list(&ctx, a.name).await,
                EnvSecretCommand::Remove(a) => cmd::env_secret_remove(&ctx, a).await,
            }
        }
        Command::Apply(a) => commands::env::apply(&ctx, a.create_container).await,
        Command::Runs(a) => commands::runs::run(&ctx, a).await,
        Command::Refresh(a) => commands::refresh::run(&ctx, a).await,
        Command::Scheduler => commands::scheduler::run(&ctx).await,
        Command::Unify(UnifyCommand::Explain(a)) => commands::unify::explain(&ctx, a).await,
        Command::Unify(UnifyCommand::Preview(a)) => commands::unify::preview(&ctx, a).await,
        Command::Source(SourceCommand::List) => commands::source::list(&ctx),
        Command::Source(SourceCommand::Show(a)) => commands::source::show(&ctx, &a.name),
        Command::Source(SourceCommand::Inspect(a)) => commands::source::inspect(&ctx, a).await,
        Command::Source(SourceCommand::Add(a)) => commands::source::add(&ctx, a).await,
        Command::Source(SourceCommand::Remove(a)) => commands::source::remove(&ctx, a).await,
        Command::Segment(SegmentCommand::List) => commands::segment::list(&ctx).await,
        Command::Segment(SegmentCommand::Show(a)) => commands::segment::show(&ctx, a).await,
        Command::Segment(SegmentCommand::Preview(a)) => commands::segment::preview(&ctx, a).await,
        Command::Role(RoleCommand::Set(a)) => commands::role::set(&ctx, a).await,
        Command::Role(RoleCommand::List) => commands::role::list(&ctx).await,
        Command::Connection(c) => {
            use commands::connection as cmd;
            match c {
                ConnectionCommand::Add(a) => cmd::add(&ctx, a).await,
                ConnectionCommand::List => cmd::list(&ctx).await,
                ConnectionCommand::Show(a) => cmd::show(&ctx, a).await,
                ConnectionCommand::Edit(a) => cmd::edit(&ctx, a).await,
                ConnectionCommand::Test(a) => cmd::test(&ctx, a).await,
                ConnectionCommand::Rotate(a) => cmd::rotate(&ctx, a).await,
                ConnectionCommand::Delete(a) => cmd::delete(&ctx, a).await,
            }
        }
        Command::Export(c) => {
            use commands::export as cmd;
            match c {
                ExportCommand::Add(a) => cmd::add(&ctx, a).await,
                ExportCommand::Edit(a) => cmd::edit(&ctx, a).await,
                ExportCommand::List => cmd::list(&ctx).await,
                ExportCommand::Show(a) => cmd::show(&ctx, a).await,
                ExportCommand::Run(a) => cmd::run(&ctx, a).await,
                ExportCommand::Delete(a) => cmd::delete(&ctx, a).await,
            }
        }
        Command::Vault(VaultCommand::Rotate(a)) => {
            commands::connection::vault_rotate(&ctx, a).await
        }
        Command::Vault(VaultCommand::NewKey(a)) => commands::connection::vault_new_key(a),
    }
}
