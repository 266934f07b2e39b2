//! The `lakecdp` binary: arguments -> validated configuration -> library calls.

mod args;
mod audit;
mod commands;
mod input;
mod output;
mod progress;
mod terminal;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{
    Cli, Command, ConnectionCommand, EnvCommand, EnvSecretCommand, ExportCommand, RoleCommand,
    SegmentCommand, SourceCommand, UnifyCommand, VaultCommand,
};
use lakecdp_app::{Actor, App};

/// A mistake the user can fix; exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

/// Exit code 2 for what the user can fix (invalid, not found, denied, conflict), 1 for
/// the rest.
fn is_user_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<UserError>()
            || c.is::<lakecdp_core::ConfigErrors>()
            || c.downcast_ref::<lakecdp_app::Error>()
                .is_some_and(|e| e.kind().is_user_error())
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
    // an executor's temporary files (source files it downloads, a keyed load's spill,
    // corrupt rows) go to its work folder with its shuffle files: set before any thread
    // of the runtime starts
    if let Command::Cluster(args::ClusterCommand::Executor(a)) = &cli.command {
        if let Some(work) = &a.work_dir {
            let tmp = work.join("tmp");
            if let Err(e) = std::fs::create_dir_all(&tmp) {
                eprintln!(
                    "error: cannot create {} in the executor's --work-dir: {e}",
                    tmp.display()
                );
                return ExitCode::from(2);
            }
            std::env::set_var("TMPDIR", &tmp);
        }
    }
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

/// The project folder and the catalog file the arguments name.
pub struct Start {
    /// Absolute project folder.
    pub project_dir: std::path::PathBuf,
    /// Catalog database file.
    pub catalog_path: std::path::PathBuf,
}

impl Start {
    fn new(cli: &Cli) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir()
            .map_err(|e| anyhow::anyhow!("cannot read the current folder: {e}"))?;
        let project_dir = lakecdp_app::absolute(&cwd, &cli.project);
        let catalog_path = cli
            .catalog
            .as_ref()
            .map(|c| {
                let text = c.to_string_lossy();
                if text.starts_with("postgresql://") || text.starts_with("postgres://") {
                    c.clone()
                } else {
                    lakecdp_app::absolute(&cwd, c)
                }
            })
            .unwrap_or_else(|| project_dir.join(".lakecdp").join("catalog.db"));
        Ok(Self {
            project_dir,
            catalog_path,
        })
    }

    async fn app(&self) -> anyhow::Result<App> {
        let catalog = lakecdp_app::open_catalog(&self.catalog_path).await?;
        Ok(App::new(catalog, self.project_dir.clone()))
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let start = Start::new(&cli)?;
    let actor = Actor::local(cli.acting_as.as_deref());
    match cli.command {
        Command::Init(a) => commands::init::run(&start, a),
        Command::Vault(VaultCommand::NewKey(a)) => commands::connection::vault_new_key(a),
        command => {
            let app = start.app().await?;
            let change = audit::change_of(&command);
            let before = match &change {
                Some(c) => audit::environment_of(&app, c).await,
                None => None,
            };
            let result = dispatch(&app, &actor, command).await;
            if let Some(change) = change {
                // an environment created by the command is found afterwards
                let environment = match before {
                    Some(name) => Some(name),
                    None => audit::environment_of(&app, &change).await,
                };
                let outcome = audit::outcome_of(&result);
                audit::record(&app, &actor, &change, environment.as_deref(), outcome).await;
            }
            result
        }
    }
}

async fn dispatch(app: &App, actor: &Actor, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(_) | Command::Vault(VaultCommand::NewKey(_)) => Ok(()),
        Command::Env(EnvCommand::Check(a)) => commands::env::check(app, actor, a).await,
        Command::Env(EnvCommand::Create(a)) => {
            commands::env::create(app, actor, a.create_container, a.adopt).await
        }
        Command::Env(EnvCommand::List) => commands::env::list(app, actor).await,
        Command::Env(EnvCommand::Show(a)) => commands::env::show(app, actor, a.name).await,
        Command::Env(EnvCommand::Update(a)) => commands::env::update(app, actor, a).await,
        Command::Env(EnvCommand::Delete(a)) => commands::env::delete(app, actor, a).await,
        Command::Env(EnvCommand::Secret(c)) => {
            use commands::connection as cmd;
            match c {
                EnvSecretCommand::Set(a) => cmd::env_secret_set(app, actor, a).await,
                EnvSecretCommand::List(a) => cmd::env_secret_list(app, actor, a.name).await,
                EnvSecretCommand::Remove(a) => cmd::env_secret_remove(app, actor, a).await,
            }
        }
        Command::Apply(a) => commands::env::apply(app, actor, a.create_container, a.adopt).await,
        Command::Diff => commands::revisions::diff(app, actor).await,
        Command::Revisions(a) => commands::revisions::list(app, actor, a).await,
        Command::ExportConfig(a) => commands::revisions::export_config(app, actor, a).await,
        Command::Runs(a) => commands::runs::run(app, actor, a).await,
        Command::Refresh(a) => commands::refresh::run(app, actor, a).await,
        Command::Scheduler => commands::scheduler::run(app, actor).await,
        Command::Unify(UnifyCommand::Explain(a)) => commands::unify::explain(app, actor, a).await,
        Command::Unify(UnifyCommand::Preview(a)) => commands::unify::preview(app, actor, a).await,
        Command::Unify(UnifyCommand::Train(a)) => commands::unify::train(app, actor, a).await,
        Command::Source(SourceCommand::List) => commands::source::list(app, actor).await,
        Command::Source(SourceCommand::Show(a)) => {
            commands::source::show(app, actor, &a.name).await
        }
        Command::Source(SourceCommand::Inspect(a)) => {
            commands::source::inspect(app, actor, a).await
        }
        Command::Source(SourceCommand::Add(a)) => commands::source::add(app, actor, a).await,
        Command::Source(SourceCommand::Remove(a)) => commands::source::remove(app, actor, a).await,
        Command::Segment(SegmentCommand::List) => commands::segment::list(app, actor).await,
        Command::Segment(SegmentCommand::Show(a)) => commands::segment::show(app, actor, a).await,
        Command::Segment(SegmentCommand::Preview(a)) => {
            commands::segment::preview(app, actor, a).await
        }
        Command::Role(RoleCommand::Set(a)) => commands::role::set(app, actor, a).await,
        Command::Role(RoleCommand::List) => commands::role::list(app, actor).await,
        Command::Connection(c) => {
            use commands::connection as cmd;
            match c {
                ConnectionCommand::Add(a) => cmd::add(app, actor, a).await,
                ConnectionCommand::List => cmd::list(app, actor).await,
                ConnectionCommand::Show(a) => cmd::show(app, actor, a).await,
                ConnectionCommand::Edit(a) => cmd::edit(app, actor, a).await,
                ConnectionCommand::Test(a) => cmd::test(app, actor, a).await,
                ConnectionCommand::Rotate(a) => cmd::rotate(app, actor, a).await,
                ConnectionCommand::Delete(a) => cmd::delete(app, actor, a).await,
            }
        }
        Command::Export(c) => {
            use commands::export as cmd;
            match c {
                ExportCommand::Add(a) => cmd::add(app, actor, a).await,
                ExportCommand::Edit(a) => cmd::edit(app, actor, a).await,
                ExportCommand::List => cmd::list(app, actor).await,
                ExportCommand::Show(a) => cmd::show(app, actor, a).await,
                ExportCommand::Run(a) => cmd::run(app, actor, a).await,
                ExportCommand::Delete(a) => cmd::delete(app, actor, a).await,
            }
        }
        Command::Serve(a) => commands::serve::run(app, a).await,
        Command::User(c) => commands::accounts::user(app, actor, c).await,
        Command::Token(c) => commands::accounts::token(app, actor, c).await,
        Command::Group(c) => commands::accounts::group(app, actor, c).await,
        Command::Audit(a) => commands::accounts::audit(app, actor, a).await,
        Command::Sharing(c) => commands::sharing::run(app, actor, c).await,
        Command::Cluster(c) => commands::cluster::run(app, actor, c).await,
        Command::Vault(VaultCommand::Rotate(a)) => {
            commands::connection::vault_rotate(app, actor, a).await
        }
    }
}
