//! `env check|create|list|show|update|delete` and `apply`.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use lakecdp_catalog::{Acting, Catalog, SqliteCatalog};
use lakecdp_core::{
    ConfigErrors, Environment, Operation, PartitionFormat, RunRecord, RunStatus, SecretRef,
    StorageConfig,
};
use lakecdp_lake::check::{self, CheckOptions};
use lakecdp_lake::{CheckReport, Lake};

use crate::args::{CheckArgs, DeleteArgs, OutputFormat, UpdateArgs};
use crate::context::Context;
use crate::output;
use crate::UserError;

async fn run_checks(ctx: &Context, env: &Environment, create_container: bool) -> CheckReport {
    let spinner = std::io::stderr().is_terminal().then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message(format!(
            "checking {} storage at {}",
            env.storage.kind(),
            env.storage.describe()
        ));
        s.enable_steady_tick(Duration::from_millis(100));
        s
    });
    // sealed secrets that cannot be opened stay unresolved: the configuration check
    // then names them and the fix
    let sealed = match ctx.catalog().await {
        Ok(catalog) => ctx.storage_secrets(&catalog, env).await.unwrap_or_default(),
        Err(_) => Default::default(),
    };
    let report = check::run(
        &env.storage,
        &CheckOptions {
            environment_id: env.id,
            environment_name: env.name.clone(),
            region: env.region.clone(),
            create_container,
            project_dir: Some(ctx.project_dir.clone()),
            sealed,
        },
    )
    .await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    report
}

fn failure_summary(report: &CheckReport) -> String {
    report
        .failures()
        .map(|f| f.check.title())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn record(
    catalog: &SqliteCatalog,
    env: &Environment,
    report: Option<&CheckReport>,
    started: RunRecord,
) {
    let mut run = started;
    run.finished_at = Some(Utc::now());
    match report {
        Some(r) if !r.passed() => {
            run.status = RunStatus::Failed;
            run.error = Some(format!("failed checks: {}", failure_summary(r)));
        }
        _ => run.status = RunStatus::Succeeded,
    }
    // Run history is a convenience: a failure to record it must not hide the outcome.
    if let Err(e) = catalog.record_run(&run).await {
        tracing::warn!(environment = %env.name, error = %e, "could not record the run");
    }
}

/// `env check`.
pub async fn check(ctx: &Context, args: CheckArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let (env, stored) = match &args.name {
        Some(name) => (ctx.environment(&catalog, Some(name)).await?, true),
        None => {
            let project = ctx.load_project()?;
            match catalog.find_environment(&project.environment.name).await? {
                Some(existing) => (ctx.environment_of(&project, Some(&existing)), true),
                None => (ctx.environment_of(&project, None), false),
            }
        }
    };
    println!(
        "checking environment `{}` ({} storage at {}, folder {})",
        env.name,
        env.storage.kind(),
        env.storage.describe(),
        env.id.folder()
    );
    let started = RunRecord::start(env.id, "env-check");
    let report = run_checks(ctx, &env, args.create_container).await;
    output::print_checks(&report);
    if stored {
        record(&catalog, &env, Some(&report), started).await;
    }
    if report.passed() {
        Ok(())
    } else {
        Err(UserError(format!(
            "prerequisite checks failed: {}",
            failure_summary(&report)
        ))
        .into())
    }
}

async fn create_environment(
    ctx: &Context,
    catalog: &SqliteCatalog,
    env: Environment,
    create_container: bool,
) -> anyhow::Result<()> {
    if let Some(clash) = catalog.get_environment(env.id).await? {
        return Err(UserError(format!(
            "the id {} is already used by environment `{}`",
            env.id, clash.name
        ))
        .into());
    }
    println!(
        "creating environment `{}` ({} storage at {})",
        env.name,
        env.storage.kind(),
        env.storage.describe()
    );
    let started = RunRecord::start(env.id, "env-create");
    let report = run_checks(ctx, &env, create_container).await;
    output::print_checks(&report);
    if !report.passed() {
        return Err(UserError(format!(
            "environment `{}` was not created: prerequisite checks failed ({}); fix them and run again",
            env.name,
            failure_summary(&report)
        ))
        .into());
    }
    let handle = ctx.open_storage(catalog, &env).await?;
    let lake = Lake::new(&handle, env.id);
    let marker = serde_json::json!({
        "environmentId": env.id,
        "name": env.name,
        "createdAt": env.created_at,
        "createdBy": env.created_by,
    });
    lake.put(
        &lake.internal("environment.json"),
        serde_json::to_vec_pretty(&marker)?,
    )
    .await?;
    Acting::new(catalog, ctx.creator())
        .create_environment(&env)
        .await?;
    record(catalog, &env, None, started).await;
    println!("created environment `{}` (id {})", env.name, env.id);
    println!(
        "its lake folder is {}/{}",
        env.storage.describe(),
        env.id.folder()
    );
    Ok(())
}

/// `env create`.
pub async fn create(ctx: &Context, create_container: bool) -> anyhow::Result<()> {
    let project = ctx.load_project()?;
    let catalog = ctx.catalog().await?;
    if catalog
        .find_environment(&project.environment.name)
        .await?
        .is_some()
    {
        return Err(UserError(format!(
            "environment `{}` already exists; run `lakecdp apply` to update it from {}",
            project.environment.name,
            ctx.project_file().display()
        ))
        .into());
    }
    let env = ctx.environment_of(&project, None);
    create_environment(ctx, &catalog, env, create_container).await
}

fn changes(old: &Environment, new: &Environment) -> Vec<String> {
    let mut out = Vec::new();
    if old.name != new.name {
        out.push(format!("name: {} -> {}", old.name, new.name));
    }
    if old.region != new.region {
        out.push(format!(
            "region: {} -> {}",
            old.region.as_deref().unwrap_or("-"),
            new.region.as_deref().unwrap_or("-")
        ));
    }
    if old.output_format != new.output_format {
        out.push(format!(
            "output format: {} -> {}",
            old.output_format, new.output_format
        ));
    }
    if old.retention_runs != new.retention_runs {
        out.push(format!(
            "retention: {} -> {} runs",
            old.retention_runs, new.retention_runs
        ));
    }
    if old.storage != new.storage {
        out.push(format!(
            "storage: {} -> {}",
            old.storage.describe(),
            new.storage.describe()
        ));
    }
    out
}

async fn save_update(
    ctx: &Context,
    catalog: &SqliteCatalog,
    old: &Environment,
    new: Environment,
    create_container: bool,
    force: bool,
) -> anyhow::Result<()> {
    let changed = changes(old, &new);
    if !changed.is_empty() {
        Acting::new(catalog, ctx.principal_for(old))
            .require(old, Operation::EditEnvironment)
            .await?;
    }
    if changed.is_empty() {
        println!("environment `{}` is up to date", old.name);
        return Ok(());
    }
    for c in &changed {
        println!("  {c}");
    }
    let started = RunRecord::start(new.id, "env-update");
    let report = run_checks(ctx, &new, create_container).await;
    output::print_checks(&report);
    if !report.passed() && !force {
        record(catalog, &new, Some(&report), started).await;
        return Err(UserError(format!(
            "environment `{}` was not updated: prerequisite checks failed ({}); fix them, or pass --force to save anyway",
            old.name,
            failure_summary(&report)
        ))
        .into());
    }
    Acting::new(catalog, ctx.principal_for(old))
        .update_environment(&new)
        .await?;
    record(catalog, &new, None, started).await;
    println!(
        "updated environment `{}` ({} change{})",
        new.name,
        changed.len(),
        if changed.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

/// `apply`: create or update the project file's environment.
pub async fn apply(ctx: &Context, create_container: bool) -> anyhow::Result<()> {
    let project = ctx.load_project()?;
    let catalog = ctx.catalog().await?;
    match catalog.find_environment(&project.environment.name).await? {
        None => {
            create_environment(
                ctx,
                &catalog,
                ctx.environment_of(&project, None),
                create_container,
            )
            .await
        }
        Some(existing) => {
            if let Some(id) = project.environment.id {
                if id != existing.id {
                    return Err(UserError(format!(
                        "environment `{}` has id {} in the catalog, but the project file says {id}; remove `id` from the project file or rename the environment",
                        existing.name, existing.id
                    ))
                    .into());
                }
            }
            let new = ctx.environment_of(&project, Some(&existing));
            save_update(ctx, &catalog, &existing, new, create_container, false).await
        }
    }
}

/// `env list`.
pub async fn list(ctx: &Context) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let envs = catalog.list_environments().await?;
    if envs.is_empty() {
        println!(
            "no environments yet: `lakecdp env create` creates the one in {}",
            ctx.project_file().display()
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
pub async fn show(ctx: &Context, name: Option<String>) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, name.as_deref()).await?;
    output::print_environment(&env);
    // the capacity the profiles entitle to, next to what the lake holds
    let lake = match ctx.open_storage(&catalog, &env).await {
        Ok(handle) => Lake::new(&handle, env.id),
        Err(e) => {
            println!("capacity: the lake cannot be opened ({e:#})");
            return Ok(());
        }
    };
    // the profiles of the last unification that succeeded, as its run recorded them
    let profiles = catalog
        .list_runs(env.id, 1000)
        .await?
        .into_iter()
        .find(|r| r.process == "unify" && r.status == RunStatus::Succeeded)
        .and_then(|r| r.rows);
    let used: u64 = lake
        .list("")
        .await
        .map(|o| o.iter().map(|m| m.size).sum())
        .unwrap_or(0);
    let (db, files) = capacity(profiles.unwrap_or(0));
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    println!(
        "capacity: {} profiles entitle to {db} GB of database and {files} GB of file capacity \
         (15 GB and 20 GB per 100,000 profiles); the lake folder holds {:.2} GB ({:.1}% of the file capacity)",
        profiles.map(|p| p.to_string()).unwrap_or_else(|| "no".into()),
        gib(used),
        gib(used) * 100.0 / files as f64
    );
    Ok(())
}

/// Database and file capacity in GB that `profiles` customer profiles entitle to: 15 GB
/// and 20 GB per started 100,000 profiles (one block at least).
pub fn capacity(profiles: u64) -> (u64, u64) {
    let blocks = profiles.div_ceil(100_000).max(1);
    (blocks * 15, blocks * 20)
}

fn parse_ref(flag: &str, value: &str) -> anyhow::Result<SecretRef> {
    match value.split_once(':') {
        Some(("env", var)) if !var.is_empty() => Ok(SecretRef::Env(var.to_string())),
        Some(("file", path)) if !path.is_empty() => Ok(SecretRef::File(path.into())),
        Some(("vault", name)) if !name.is_empty() => Ok(SecretRef::Vault(name.to_string())),
        _ => Err(UserError(format!(
            "--{flag} takes where the secret is, `env:VARIABLE`, `file:PATH` or `vault:NAME` (sealed with `lakecdp env secret set`), never the secret itself"
        ))
        .into()),
    }
}

/// `env update`.
pub async fn update(ctx: &Context, a: UpdateArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let old = ctx.environment(&catalog, Some(&a.name)).await?;
    let mut new = old.clone();
    new.updated_at = Utc::now();
    if let Some(n) = &a.rename {
        new.name = n.clone();
    }
    if let Some(r) = &a.region {
        new.region = (!r.is_empty()).then(|| r.clone());
    }
    if let Some(f) = a.output_format {
        new.output_format = match f {
            OutputFormat::Csv => PartitionFormat::Csv,
            OutputFormat::Parquet => PartitionFormat::Parquet,
        };
    }
    if let Some(n) = a.retention_runs {
        new.retention_runs = n;
    }
    let wrong_kind = |flag: &str, kind: &str| {
        UserError(format!(
            "--{flag} applies to {kind} storage; environment `{}` uses {} storage",
            old.name,
            old.storage.kind()
        ))
    };
    match &mut new.storage {
        StorageConfig::Adls(c) => {
            if let Some(v) = &a.account_key {
                c.account_key = Some(parse_ref("account-key", v)?);
                c.sas_token = None;
            }
            if let Some(v) = &a.sas_token {
                c.sas_token = Some(parse_ref("sas-token", v)?);
                c.account_key = None;
            }
            if let Some(v) = &a.client_secret {
                c.client_secret = Some(parse_ref("client-secret", v)?);
            }
            if a.access_key_id.is_some() || a.secret_access_key.is_some() {
                return Err(wrong_kind("access-key-id", "s3").into());
            }
        }
        StorageConfig::S3(c) => {
            if let Some(v) = &a.access_key_id {
                c.access_key_id = Some(parse_ref("access-key-id", v)?);
            }
            if let Some(v) = &a.secret_access_key {
                c.secret_access_key = Some(parse_ref("secret-access-key", v)?);
            }
            if a.account_key.is_some() || a.sas_token.is_some() || a.client_secret.is_some() {
                return Err(wrong_kind("account-key", "adls").into());
            }
        }
        StorageConfig::Local(_) => {
            if a.account_key.is_some()
                || a.sas_token.is_some()
                || a.client_secret.is_some()
                || a.access_key_id.is_some()
                || a.secret_access_key.is_some()
            {
                return Err(UserError(format!(
                    "environment `{}` uses local storage, which has no credentials",
                    old.name
                ))
                .into());
            }
        }
    }
    let errors = new.storage.validate();
    if !errors.is_empty() {
        return Err(ConfigErrors(errors).into());
    }
    save_update(ctx, &catalog, &old, new, false, a.force).await
}

/// `env delete`.
pub async fn delete(ctx: &Context, a: DeleteArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, Some(&a.name)).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    acting.require(&env, Operation::DeleteEnvironment).await?;
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
            .context("cannot read the confirmation")?;
        if answer.trim() != env.name {
            return Err(UserError("not confirmed; nothing was deleted".into()).into());
        }
    }
    if a.purge {
        let handle = ctx.open_storage(&catalog, &env).await?;
        let lake = Lake::new(&handle, env.id);
        let n = lake.delete_folder("").await?;
        println!(
            "deleted {n} objects under {}/{}",
            env.storage.describe(),
            env.id.folder()
        );
    }
    acting.delete_environment(&env).await?;
    println!("deleted environment `{}` from the catalog", env.name);
    if !a.purge {
        println!(
            "its lake folder {}/{} was kept (use --purge to delete it)",
            env.storage.describe(),
            env.id.folder()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::capacity;

    #[test]
    fn capacity_grows_by_block_of_100000_profiles() {
        assert_eq!(capacity(0), (15, 20));
        assert_eq!(capacity(100_000), (15, 20));
        assert_eq!(capacity(100_001), (30, 40));
        assert_eq!(capacity(1_000_000), (150, 200));
    }
}
