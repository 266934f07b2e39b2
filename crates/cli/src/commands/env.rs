//! `env check|create|list|show|update|delete` and `apply`.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use lakecdp_app::environments::{Creation, EnvironmentChanges, Saved};
use lakecdp_app::revisions::RevisionChange;
use lakecdp_app::{Actor, App, Event, Observer};
use lakecdp_core::PartitionFormat;

use crate::args::{CheckArgs, DeleteArgs, OutputFormat, UpdateArgs};
use crate::output;
use crate::UserError;

/// Prints the checks and changes of environment operations; a spinner while checks run.
#[derive(Default)]
pub struct Checks {
    spinner: Mutex<Option<indicatif::ProgressBar>>,
}

impl Observer for Checks {
    fn event(&self, event: &Event) {
        match event {
            Event::EnvironmentChanges(changes) => {
                for c in changes {
                    println!("  {c}");
                }
            }
            Event::ChecksStarted { storage, .. } => {
                let spinner = std::io::stderr().is_terminal().then(|| {
                    let s = indicatif::ProgressBar::new_spinner();
                    s.set_message(format!("checking {storage}"));
                    s.enable_steady_tick(Duration::from_millis(100));
                    s
                });
                if let Ok(mut s) = self.spinner.lock() {
                    *s = spinner;
                }
            }
            Event::ChecksFinished(report) => {
                if let Some(s) = self.spinner.lock().ok().and_then(|mut s| s.take()) {
                    s.finish_and_clear();
                }
                output::print_checks(report);
            }
            _ => {}
        }
    }
}

/// `env check`.
pub async fn check(app: &App, actor: &Actor, args: CheckArgs) -> anyhow::Result<()> {
    let (env, stored) = app
        .environment_to_check(actor, args.name.as_deref())
        .await?;
    println!(
        "checking environment `{}` ({} storage at {}, folder {})",
        env.name,
        env.storage.kind(),
        env.storage.describe(),
        env.id.folder()
    );
    app.check_environment(
        actor,
        &env,
        stored,
        args.create_container,
        &Checks::default(),
    )
    .await?;
    Ok(())
}

fn print_created(env: &lakecdp_core::Environment) {
    println!("created environment `{}` (id {})", env.name, env.id);
    println!(
        "its lake folder is {}/{}",
        env.storage.describe(),
        env.id.folder()
    );
}

/// What applying did to the revisions.
pub fn print_revision(app: &App, change: &RevisionChange) {
    match change {
        RevisionChange::New(n) => {
            println!("applied {} as revision {n}", app.project_file().display())
        }
        RevisionChange::Unchanged(n) => {
            println!("the project file is the applied revision {n}")
        }
    }
}

fn print_saved(saved: &Saved) {
    match saved {
        Saved::Created(env) => print_created(env),
        Saved::UpToDate(env) => println!("environment `{}` is up to date", env.name),
        Saved::Updated(env, changes) => println!(
            "updated environment `{}` ({} change{})",
            env.name,
            changes.len(),
            if changes.len() == 1 { "" } else { "s" }
        ),
    }
}

fn print_creating(app: &App, actor: &Actor, project: &lakecdp_core::ProjectFile) {
    let planned = app.environment_of(actor, project, None);
    println!(
        "creating environment `{}` ({} storage at {})",
        planned.name,
        planned.storage.kind(),
        planned.storage.describe()
    );
}

/// `env create`.
pub async fn create(
    app: &App,
    actor: &Actor,
    create_container: bool,
    adopt: bool,
) -> anyhow::Result<()> {
    let project = app.load_project()?;
    print_creating(app, actor, &project);
    let env = app
        .create_environment_from_project(
            actor,
            &Creation {
                create_container,
                adopt,
            },
            &Checks::default(),
        )
        .await?;
    print_created(&env);
    Ok(())
}

/// `apply`: create or update the project file's environment.
pub async fn apply(
    app: &App,
    actor: &Actor,
    create_container: bool,
    adopt: bool,
) -> anyhow::Result<()> {
    let project = app.load_project()?;
    if app
        .environment(Some(&project.environment.name))
        .await
        .is_err()
    {
        print_creating(app, actor, &project);
    }
    let (saved, revision) = app
        .apply_with(
            actor,
            &Creation {
                create_container,
                adopt,
            },
            &Checks::default(),
        )
        .await?;
    print_saved(&saved);
    print_revision(app, &revision);
    Ok(())
}

/// `env list`.
pub async fn list(app: &App, actor: &Actor) -> anyhow::Result<()> {
    let envs = app.list_environments(actor).await?;
    if envs.is_empty() {
        println!(
            "no environments yet: `lakecdp env create` creates the one in {}",
            app.project_file().display()
        );
        return Ok(());
    }
    let mut t = output::table(&["name", "id", "storage", "region", "format", "created"]);
    for e in &envs {
        t.add_row(vec![
            e.name.clone(),
            e.id.to_string(),
            format!("{} {}", e.storage.kind(), e.storage.describe()),
            e.region.clone().unwrap_or_else(|| "-".into()),
            e.output_format.to_string(),
            e.created_at.format("%Y-%m-%d %H:%M").to_string(),
        ]);
    }
    println!("{t}");
    println!(
        "{} environment{}",
        envs.len(),
        if envs.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

/// `env show`.
pub async fn show(app: &App, actor: &Actor, name: Option<String>) -> anyhow::Result<()> {
    let d = app.show_environment(actor, name.as_deref()).await?;
    output::print_environment(&d.environment);
    let used = match &d.lake_bytes {
        Ok(b) => *b,
        Err(e) => {
            println!("capacity: the lake cannot be opened ({e})");
            return Ok(());
        }
    };
    let (db, files) = d.capacity();
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    println!(
        "capacity: {} profiles entitle to {db} GB of database and {files} GB of file capacity \
         (15 GB and 20 GB per 100,000 profiles); the lake folder holds {:.2} GB ({:.1}% of the file capacity)",
        d.profiles.map(|p| p.to_string()).unwrap_or_else(|| "no".into()),
        gib(used),
        gib(used) * 100.0 / files as f64
    );
    Ok(())
}

/// `env update`.
pub async fn update(app: &App, actor: &Actor, a: UpdateArgs) -> anyhow::Result<()> {
    let changes = EnvironmentChanges {
        rename: a.rename,
        region: a.region,
        output_format: a.output_format.map(|f| match f {
            OutputFormat::Csv => PartitionFormat::Csv,
            OutputFormat::Parquet => PartitionFormat::Parquet,
        }),
        retention_runs: a.retention_runs,
        account_key: a.account_key,
        sas_token: a.sas_token,
        client_secret: a.client_secret,
        access_key_id: a.access_key_id,
        secret_access_key: a.secret_access_key,
        force: a.force,
    };
    let saved = app
        .update_environment(actor, &a.name, &changes, &Checks::default())
        .await?;
    print_saved(&saved);
    Ok(())
}

/// `env delete`.
pub async fn delete(app: &App, actor: &Actor, a: DeleteArgs) -> anyhow::Result<()> {
    let env = app.environment(Some(&a.name)).await?;
    app.require(actor, &env, lakecdp_core::Operation::DeleteEnvironment)
        .await?;
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            return Err(UserError(format!(
                "refusing to delete environment `{}` without confirmation: pass --yes",
                env.name
            ))
            .into());
        }
        let what = if a.purge {
            " and ALL its lake data"
        } else {
            " (its lake data stays)"
        };
        print!(
            "delete environment `{}`{what}? type its name to confirm: ",
            env.name
        );
        std::io::stdout().flush().ok();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| anyhow::anyhow!("cannot read the confirmation: {e}"))?;
        if answer.trim() != env.name {
            return Err(UserError("not confirmed; nothing was deleted".into()).into());
        }
    }
    let purged = app.delete_environment(actor, &env, a.purge).await?;
    if let Some(n) = purged {
        println!(
            "deleted {n} objects under {}/{}",
            env.storage.describe(),
            env.id.folder()
        );
    }
    println!("deleted environment `{}` from the catalog", env.name);
    if purged.is_none() {
        println!(
            "its lake folder {}/{} was kept (use --purge to delete it)",
            env.storage.describe(),
            env.id.folder()
        );
    }
    Ok(())
}
