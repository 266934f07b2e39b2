//! `connection add|list|show|edit|test|rotate|delete` and `vault rotate|new-key`.

use std::collections::BTreeMap;

use chrono::Utc;
use comfy_table::Cell;
use lakecdp_catalog::{Acting, Catalog, SealedSecret};
use lakecdp_connect::{reseal, CheckStatus, MasterKey, Vault};
use lakecdp_core::secret::MASK;
use lakecdp_core::{
    Connection, ConnectionId, ConnectionKind, ConnectionSharing, Operation, SecretOwner,
};

use crate::args::{
    ConnectionAddArgs, ConnectionEditArgs, ConnectionNameArg, ConnectionRotateArgs,
    EnvSecretNameArgs, EnvSecretSetArgs, VaultNewKeyArgs, VaultRotateArgs,
};
use crate::context::Context;
use crate::output;
use crate::targets::{self, key_value, read_secret, seal_context};
use crate::UserError;

fn user<E: std::fmt::Display>(e: E) -> anyhow::Error {
    UserError(e.to_string()).into()
}

/// `connection add`.
pub async fn add(ctx: &Context, a: ConnectionAddArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    acting.require(&env, Operation::CreateConnection).await?;
    let kind: ConnectionKind = a.kind.parse().map_err(user)?;
    let sharing: ConnectionSharing = a.usable_by.parse().map_err(user)?;
    let mut settings = BTreeMap::new();
    for s in &a.settings {
        let (k, v) = key_value(s, "setting")?;
        settings.insert(k, v);
    }
    let mut values = BTreeMap::new();
    for s in &a.secrets {
        let (name, source) = key_value(s, "secret")?;
        values.insert(name, source);
    }
    let now = Utc::now();
    let connection = Connection {
        id: ConnectionId::new(),
        environment_id: env.id,
        name: a.name.clone(),
        kind,
        settings,
        secrets: values.keys().cloned().collect(),
        sharing,
        created_by: acting.principal().to_string(),
        created_at: now,
        updated_at: now,
    };
    let problems = connection.validate();
    if !problems.is_empty() {
        return Err(UserError(format!(
            "connection `{}` was not added:\n  - {}",
            a.name,
            problems.join("\n  - ")
        ))
        .into());
    }
    // seal every secret before anything is stored
    let mut sealed = Vec::new();
    if !values.is_empty() {
        let vault = targets::vault()?;
        for (name, source) in &values {
            let secret = read_secret(ctx, source)?;
            sealed.push((
                name.clone(),
                vault.seal(&seal_context(&connection, name), &secret)?,
            ));
        }
    }
    acting.create_connection(&env, &connection).await?;
    for (name, blob) in &sealed {
        if let Err(e) = acting
            .set_connection_secret(&env, &connection, name, blob)
            .await
        {
            // no connection without its secrets
            let _ = acting.delete_connection(&env, &connection.name).await;
            return Err(e.into());
        }
    }
    println!(
        "added {} connection `{}` (usable by {}{})",
        kind,
        connection.name,
        sharing,
        if sealed.is_empty() {
            String::new()
        } else {
            format!(
                "; {} secret{} sealed in the catalog",
                sealed.len(),
                if sealed.len() == 1 { "" } else { "s" }
            )
        }
    );
    println!(
        "check it with `lakecdp connection test {}`",
        connection.name
    );
    Ok(())
}

/// `connection list`.
pub async fn list(ctx: &Context) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    let list = acting.connections(&env).await?;
    if list.is_empty() {
        println!("no connections you may use in environment `{}`", env.name);
        return Ok(());
    }
    let mut t = output::table(&["name", "type"]);
    for c in list {
        t.add_row(vec![Cell::new(c.name), Cell::new(c.kind.as_str())]);
    }
    println!("{t}");
    Ok(())
}

/// `connection show`.
pub async fn show(ctx: &Context, a: ConnectionNameArg) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    let c = acting.connection(&env, &a.name).await?;
    let mut t = output::table(&["field", "value"]);
    t.add_row(vec![Cell::new("name"), Cell::new(&c.name)]);
    t.add_row(vec![Cell::new("type"), Cell::new(c.kind.as_str())]);
    t.add_row(vec![Cell::new("usable by"), Cell::new(c.sharing.as_str())]);
    for (k, v) in &c.settings {
        t.add_row(vec![Cell::new(k), Cell::new(v)]);
    }
    for name in &c.secrets {
        t.add_row(vec![
            Cell::new(name),
            Cell::new(format!("{MASK} (sealed in the catalog)")),
        ]);
    }
    t.add_row(vec![
        Cell::new("created"),
        Cell::new(format!(
            "{} by {}",
            c.created_at.format("%Y-%m-%d %H:%M"),
            c.created_by
        )),
    ]);
    t.add_row(vec![
        Cell::new("updated"),
        Cell::new(c.updated_at.format("%Y-%m-%d %H:%M").to_string()),
    ]);
    let users: Vec<String> = catalog
        .list_exports(env.id)
        .await?
        .into_iter()
        .filter(|e| e.connection_id == c.id)
        .map(|e| e.name)
        .collect();
    t.add_row(vec![
        Cell::new("used by exports"),
        Cell::new(if users.is_empty() {
            "-".to_string()
        } else {
            users.join(", ")
        }),
    ]);
    println!("{t}");
    Ok(())
}

/// `connection edit`.
pub async fn edit(ctx: &Context, a: ConnectionEditArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    let mut c = acting.connection(&env, &a.name).await?;
    let mut changes = Vec::new();
    for s in &a.settings {
        let (k, v) = key_value(s, "setting")?;
        changes.push(format!("{k} set"));
        c.settings.insert(k, v);
    }
    for k in &a.unset {
        if c.settings.remove(k).is_some() {
            changes.push(format!("{k} removed"));
        }
    }
    if let Some(s) = &a.usable_by {
        c.sharing = s.parse().map_err(user)?;
        changes.push(format!("usable by {}", c.sharing));
    }
    if let Some(n) = &a.rename {
        changes.push(format!("renamed to {n}"));
        c.name = n.clone();
    }
    if changes.is_empty() {
        println!("nothing to change");
        return Ok(());
    }
    let problems = c.validate();
    if !problems.is_empty() {
        return Err(UserError(format!(
            "connection `{}` was not changed:\n  - {}",
            a.name,
            problems.join("\n  - ")
        ))
        .into());
    }
    c.updated_at = Utc::now();
    acting.update_connection(&env, &c).await?;
    println!("changed connection `{}`: {}", a.name, changes.join(", "));
    Ok(())
}

/// `connection test`.
pub async fn test(ctx: &Context, a: ConnectionNameArg) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    acting.require(&env, Operation::TestConnection).await?;
    let c = acting.connection(&env, &a.name).await?;
    let target = targets::target_for(ctx, &catalog, &env, &c, None).await?;
    println!(
        "testing {} connection `{}` ({})",
        c.kind,
        c.name,
        target.destination()
    );
    let lines = target.check().await?;
    let mut t = output::table(&["check", "result", "details"]);
    for l in &lines {
        let mut details = l.detail.clone();
        if let Some(fix) = &l.fix {
            details.push_str("\nfix: ");
            details.push_str(fix);
        }
        t.add_row(vec![
            Cell::new(&l.name),
            Cell::new(match l.status {
                CheckStatus::Ok => "ok",
                CheckStatus::Failed => "FAILED",
            }),
            Cell::new(details),
        ]);
    }
    println!("{t}");
    let failed = lines.iter().filter(|l| !l.is_ok()).count();
    if failed > 0 {
        return Err(UserError(format!(
            "connection `{}`: {failed} of {} checks failed",
            c.name,
            lines.len()
        ))
        .into());
    }
    println!("connection `{}`: all {} checks passed", c.name, lines.len());
    Ok(())
}

/// `connection rotate`.
pub async fn rotate(ctx: &Context, a: ConnectionRotateArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    acting.require(&env, Operation::EditConnection).await?;
    let c = acting.connection(&env, &a.name).await?;
    let secret_fields: Vec<&str> = c
        .kind
        .fields()
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.name)
        .collect();
    let (name, source) = match a.secret.split_once('=') {
        Some((n, s)) if secret_fields.contains(&n) => (n.to_string(), s.to_string()),
        _ if secret_fields.len() == 1 => (secret_fields[0].to_string(), a.secret.clone()),
        _ => {
            return Err(UserError(format!(
                "a {} connection has the secrets {}: write --secret NAME=SOURCE",
                c.kind,
                secret_fields.join(", ")
            ))
            .into())
        }
    };
    let secret = read_secret(ctx, &source)?;
    let blob = targets::vault()?.seal(&seal_context(&c, &name), &secret)?;
    acting.set_connection_secret(&env, &c, &name, &blob).await?;
    let users: Vec<String> = catalog
        .list_exports(env.id)
        .await?
        .into_iter()
        .filter(|e| e.connection_id == c.id)
        .map(|e| e.name)
        .collect();
    println!(
        "replaced secret `{name}` of connection `{}`; nothing else changed{}",
        c.name,
        if users.is_empty() {
            String::new()
        } else {
            format!(" (exports using it: {})", users.join(", "))
        }
    );
    Ok(())
}

/// `connection delete`.
pub async fn delete(ctx: &Context, a: ConnectionNameArg) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    Acting::new(&catalog, ctx.principal_for(&env))
        .delete_connection(&env, &a.name)
        .await?;
    println!("deleted connection `{}` and its secrets", a.name);
    Ok(())
}

/// `vault rotate`: re-seal every connection secret under a new master key.
pub async fn vault_rotate(ctx: &Context, a: VaultRotateArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let old = targets::vault()?;
    let text = read_secret(ctx, &a.new_key)?;
    let new = Vault::new(MasterKey::from_base64(text.expose(), &a.new_key).map_err(user)?)?;
    let sealed = catalog.sealed_secrets().await?;
    // every environment holding a secret must be administered by the principal acting
    let mut checked = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(sealed.len());
    for s in &sealed {
        let (env_id, what) = match s.owner {
            SecretOwner::Connection(id) => {
                let c = catalog.get_connection(id).await?.ok_or_else(|| {
                    anyhow::anyhow!("the connection {id} of a sealed secret is missing")
                })?;
                (c.environment_id, format!("connection `{}`", c.name))
            }
            SecretOwner::Environment(id) => (id, "its environment".to_string()),
        };
        let env = lakecdp_catalog::CatalogExt::environment(&catalog, env_id).await?;
        if checked.insert(env_id) {
            Acting::new(&catalog, ctx.principal_for(&env))
                .require(&env, Operation::EditConnection)
                .await?;
        }
        let blob = reseal(&old, &new, &s.owner.seal_context(&s.name), &s.sealed).map_err(|e| {
            UserError(format!(
                "secret `{}` of {what} in environment `{}` does not open with the current master key: {e}",
                s.name, env.name
            ))
        })?;
        out.push(SealedSecret {
            sealed: blob,
            ..s.clone()
        });
    }
    catalog.replace_sealed_secrets(&out).await?;
    println!(
        "re-sealed {} secret{} under master key {} (was {}); use the new key from now on",
        out.len(),
        if out.len() == 1 { "" } else { "s" },
        new.key_id(),
        old.key_id()
    );
    Ok(())
}

/// `env secret set NAME --from SOURCE`: seal a secret of the environment in the catalog.
pub async fn env_secret_set(ctx: &Context, a: EnvSecretSetArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, a.env.as_deref()).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    acting.require(&env, Operation::EditEnvironment).await?;
    let secret = read_secret(ctx, &a.from)?;
    let blob = targets::vault()?.seal(
        &SecretOwner::Environment(env.id).seal_context(&a.name),
        &secret,
    )?;
    acting.set_environment_secret(&env, &a.name, &blob).await?;
    let used = env
        .storage
        .secret_refs()
        .iter()
        .any(|(_, r)| matches!(r, lakecdp_core::SecretRef::Vault(n) if n == &a.name));
    println!(
        "sealed secret `{}` of environment `{}` in the catalog",
        a.name, env.name
    );
    if !used {
        println!(
            "refer to it from the storage as `vault:{0}` (e.g. `lakecdp env update {1} --account-key vault:{0}`, \
             or `account_key = {{ vault = \"{0}\" }}` in lakecdp.toml)",
            a.name, env.name
        );
    }
    Ok(())
}

/// `env secret list`.
pub async fn env_secret_list(ctx: &Context, env: Option<String>) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, env.as_deref()).await?;
    Acting::new(&catalog, ctx.principal_for(&env))
        .require(&env, Operation::EditEnvironment)
        .await?;
    let names = catalog.environment_secret_names(env.id).await?;
    if names.is_empty() {
        println!("environment `{}` has no sealed secrets", env.name);
        return Ok(());
    }
    let refs = env.storage.secret_refs();
    let mut t = output::table(&["secret", "value", "used by"]);
    for n in names {
        let users: Vec<&str> = refs
            .iter()
            .filter(|(_, r)| matches!(r, lakecdp_core::SecretRef::Vault(v) if v == &n))
            .map(|(k, _)| *k)
            .collect();
        t.add_row(vec![
            Cell::new(&n),
            Cell::new(MASK),
            Cell::new(if users.is_empty() {
                "-".to_string()
            } else {
                users.join(", ")
            }),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `env secret remove NAME`.
pub async fn env_secret_remove(ctx: &Context, a: EnvSecretNameArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, a.env.as_deref()).await?;
    let in_use = env
        .storage
        .secret_refs()
        .iter()
        .any(|(_, r)| matches!(r, lakecdp_core::SecretRef::Vault(n) if n == &a.name));
    if in_use {
        return Err(UserError(format!(
            "environment `{}` uses `vault:{}` in its storage; point the storage at another secret first",
            env.name, a.name
        ))
        .into());
    }
    let removed = Acting::new(&catalog, ctx.principal_for(&env))
        .remove_environment_secret(&env, &a.name)
        .await?;
    if removed {
        println!("removed secret `{}` of environment `{}`", a.name, env.name);
        Ok(())
    } else {
        Err(UserError(format!(
            "environment `{}` has no secret `{}`",
            env.name, a.name
        ))
        .into())
    }
}

/// `vault new-key`: write a new random master key to a file only its owner reads.
pub fn vault_new_key(a: VaultNewKeyArgs) -> anyhow::Result<()> {
    let key = MasterKey::generate()?;
    if a.out.exists() {
        return Err(UserError(format!(
            "{} exists; a key file is never overwritten",
            a.out.display()
        ))
        .into());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut f = options
        .open(&a.out)
        .map_err(|e| UserError(format!("cannot create {}: {e}", a.out.display())))?;
    writeln!(f, "{}", key.to_base64().expose())?;
    println!(
        "wrote master key {} to {} (mode 600); point LAKECDP_MASTER_KEY_FILE at it",
        key.id(),
        a.out.display()
    );
    Ok(())
}
