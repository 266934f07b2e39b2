//! `connection add|list|show|edit|test|rotate|delete`, `env secret set|list|remove` and
//! `vault rotate|new-key`.

use std::collections::BTreeMap;

use comfy_table::Cell;
use lakecdp_app::connections::{new_master_key, CheckStatus, ConnectionChanges, NewConnection};
use lakecdp_app::{Actor, App};
use lakecdp_core::secret::MASK;

use crate::args::{
    ConnectionAddArgs, ConnectionEditArgs, ConnectionNameArg, ConnectionRotateArgs,
    EnvSecretNameArgs, EnvSecretSetArgs, VaultNewKeyArgs, VaultRotateArgs,
};
use crate::input::{key_value, read_secret};
use crate::output;
use crate::UserError;

/// `connection add`.
pub async fn add(app: &App, actor: &Actor, a: ConnectionAddArgs) -> anyhow::Result<()> {
    let mut settings = BTreeMap::new();
    for s in &a.settings {
        let (k, v) = key_value(s, "setting")?;
        settings.insert(k, v);
    }
    let mut secrets = BTreeMap::new();
    for s in &a.secrets {
        let (name, source) = key_value(s, "secret")?;
        secrets.insert(name, source);
    }
    // the role is checked before any secret is read
    let env = app.environment(None).await?;
    app.require(actor, &env, lakecdp_core::Operation::CreateConnection)
        .await?;
    let mut values = BTreeMap::new();
    for (name, source) in secrets {
        values.insert(name, read_secret(app, &source)?);
    }
    let sealed = values.len();
    let connection = app
        .add_connection(
            actor,
            NewConnection {
                name: a.name,
                kind: a.kind,
                usable_by: a.usable_by,
                settings,
                secrets: values,
            },
        )
        .await?;
    println!(
        "added {} connection `{}` (usable by {}{})",
        connection.kind,
        connection.name,
        connection.sharing,
        if sealed == 0 {
            String::new()
        } else {
            format!(
                "; {sealed} secret{} sealed in the catalog",
                if sealed == 1 { "" } else { "s" }
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
pub async fn list(app: &App, actor: &Actor) -> anyhow::Result<()> {
    let (env, list) = app.list_connections(actor, None).await?;
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
pub async fn show(app: &App, actor: &Actor, a: ConnectionNameArg) -> anyhow::Result<()> {
    let (c, users) = app.show_connection(actor, &a.name).await?;
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
pub async fn edit(app: &App, actor: &Actor, a: ConnectionEditArgs) -> anyhow::Result<()> {
    let mut set = BTreeMap::new();
    for s in &a.settings {
        let (k, v) = key_value(s, "setting")?;
        set.insert(k, v);
    }
    let changes = app
        .edit_connection(
            actor,
            &a.name,
            ConnectionChanges {
                set,
                unset: a.unset,
                usable_by: a.usable_by,
                rename: a.rename,
            },
        )
        .await?;
    if changes.is_empty() {
        println!("nothing to change");
    } else {
        println!("changed connection `{}`: {}", a.name, changes.join(", "));
    }
    Ok(())
}

/// `connection test`.
pub async fn test(app: &App, actor: &Actor, a: ConnectionNameArg) -> anyhow::Result<()> {
    let r = app.test_connection(actor, &a.name).await?;
    let c = &r.connection;
    println!(
        "testing {} connection `{}` ({})",
        c.kind, c.name, r.destination
    );
    let mut t = output::table(&["check", "result", "details"]);
    for l in &r.lines {
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
    let failed = r.lines.iter().filter(|l| !l.is_ok()).count();
    if failed > 0 {
        return Err(UserError(format!(
            "connection `{}`: {failed} of {} checks failed",
            c.name,
            r.lines.len()
        ))
        .into());
    }
    println!(
        "connection `{}`: all {} checks passed",
        c.name,
        r.lines.len()
    );
    Ok(())
}

/// `connection rotate`.
pub async fn rotate(app: &App, actor: &Actor, a: ConnectionRotateArgs) -> anyhow::Result<()> {
    let mut read_error = None;
    let result = app
        .rotate_connection_secret(actor, &a.name, &a.secret, |source| {
            read_secret(app, source).map_err(|e| {
                let message = e.to_string();
                read_error = Some(e);
                lakecdp_app::Error::invalid(message)
            })
        })
        .await;
    if let Some(e) = read_error {
        return Err(e);
    }
    let (name, users) = result?;
    println!(
        "replaced secret `{name}` of connection `{}`; nothing else changed{}",
        a.name,
        if users.is_empty() {
            String::new()
        } else {
            format!(" (exports using it: {})", users.join(", "))
        }
    );
    Ok(())
}

/// `connection delete`.
pub async fn delete(app: &App, actor: &Actor, a: ConnectionNameArg) -> anyhow::Result<()> {
    app.delete_connection(actor, &a.name).await?;
    println!("deleted connection `{}` and its secrets", a.name);
    Ok(())
}

/// `vault rotate`: re-seal every secret under a new master key.
pub async fn vault_rotate(app: &App, actor: &Actor, a: VaultRotateArgs) -> anyhow::Result<()> {
    let text = read_secret(app, &a.new_key)?;
    let (n, new, old) = app.rotate_master_key(actor, &text, &a.new_key).await?;
    println!(
        "re-sealed {n} secret{} under master key {new} (was {old}); use the new key from now on",
        if n == 1 { "" } else { "s" },
    );
    Ok(())
}

/// `env secret set NAME --from SOURCE`: seal a secret of the environment in the catalog.
pub async fn env_secret_set(app: &App, actor: &Actor, a: EnvSecretSetArgs) -> anyhow::Result<()> {
    let env = app.environment(a.env.as_deref()).await?;
    app.require(actor, &env, lakecdp_core::Operation::EditEnvironment)
        .await?;
    let secret = read_secret(app, &a.from)?;
    let used = app
        .set_environment_secret(actor, &env, &a.name, &secret)
        .await?;
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
pub async fn env_secret_list(app: &App, actor: &Actor, env: Option<String>) -> anyhow::Result<()> {
    let env = app.environment(env.as_deref()).await?;
    let names = app.environment_secrets(actor, &env).await?;
    if names.is_empty() {
        println!("environment `{}` has no sealed secrets", env.name);
        return Ok(());
    }
    let mut t = output::table(&["secret", "value", "used by"]);
    for (n, users) in names {
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
pub async fn env_secret_remove(
    app: &App,
    actor: &Actor,
    a: EnvSecretNameArgs,
) -> anyhow::Result<()> {
    let env = app.environment(a.env.as_deref()).await?;
    app.remove_environment_secret(actor, &env, &a.name).await?;
    println!("removed secret `{}` of environment `{}`", a.name, env.name);
    Ok(())
}

/// `vault new-key`: write a new random master key to a file only its owner reads.
pub fn vault_new_key(a: VaultNewKeyArgs) -> anyhow::Result<()> {
    let id = new_master_key(&a.out)?;
    println!(
        "wrote master key {id} to {} (mode 600); point LAKECDP_MASTER_KEY_FILE at it",
        a.out.display()
    );
    Ok(())
}
