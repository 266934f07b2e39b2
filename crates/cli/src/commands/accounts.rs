//! `user`, `token`, `group` and `audit`.

use comfy_table::Cell;
use lakecdp_app::roles::parse_role;
use lakecdp_app::{Actor, App};
use lakecdp_core::AuditQuery;

use crate::args::{AuditArgs, GroupCommand, TokenCommand, UserCommand};
use crate::input::read_secret;
use crate::{output, UserError};

/// A lifetime written `90d`, `12h` or `30m`.
pub fn parse_lifetime(text: &str) -> anyhow::Result<chrono::Duration> {
    let text = text.trim();
    let cut = text.char_indices().last().map_or(0, |(i, _)| i);
    let (number, unit) = text.split_at(cut);
    let n: i64 = number.parse().map_err(|_| {
        UserError(format!(
            "`{text}` is not a lifetime: write a number and d, h or m, e.g. `90d`"
        ))
    })?;
    let d = match unit {
        "d" => chrono::Duration::try_days(n),
        "h" => chrono::Duration::try_hours(n),
        "m" => chrono::Duration::try_minutes(n),
        _ => {
            return Err(UserError(format!(
                "`{text}` is not a lifetime: end it with d, h or m, e.g. `90d`"
            ))
            .into())
        }
    };
    if n <= 0 {
        return Err(UserError(format!("`{text}`: a lifetime must be positive")).into());
    }
    let d = d.ok_or_else(|| UserError(format!("`{text}`: that lifetime is too long")))?;
    Ok(d)
}

/// `user ...`.
pub async fn user(app: &App, actor: &Actor, c: UserCommand) -> anyhow::Result<()> {
    match c {
        UserCommand::Add(a) => {
            let password = read_secret(app, &a.password_from)?;
            let p = app
                .add_user(actor, &a.name, password.expose(), a.administrator)
                .await?;
            let what = if p.administrator {
                "an administrator"
            } else {
                "a user"
            };
            println!("`{}` is {what}; it signs in to `lakecdp serve`", p.name);
        }
        UserCommand::List => {
            let mut t = output::table(&["name", "kind", "password", "administrator", "disabled"]);
            for u in app.list_users(actor).await? {
                t.add_row(vec![
                    Cell::new(&u.principal.name),
                    Cell::new(u.principal.kind.as_str()),
                    Cell::new(if u.has_password { "set" } else { "-" }),
                    Cell::new(if u.principal.administrator { "yes" } else { "" }),
                    Cell::new(if u.principal.disabled { "disabled" } else { "" }),
                ]);
            }
            println!("{t}");
        }
        UserCommand::Disable(a) => {
            app.set_user_disabled(actor, &a.name, true).await?;
            println!("`{}` is disabled; its sessions have ended", a.name);
        }
        UserCommand::Enable(a) => {
            app.set_user_disabled(actor, &a.name, false).await?;
            println!("`{}` is enabled", a.name);
        }
        UserCommand::ResetPassword(a) => {
            let password = read_secret(app, &a.password_from)?;
            app.reset_password(actor, &a.name, password.expose())
                .await?;
            println!(
                "the password of `{}` is set; its sessions have ended",
                a.name
            );
        }
    }
    Ok(())
}

/// `token ...`.
pub async fn token(app: &App, actor: &Actor, c: TokenCommand) -> anyhow::Result<()> {
    match c {
        TokenCommand::Create(a) => {
            let role = parse_role(&a.role)?.ok_or_else(|| {
                UserError("a token needs a role: viewer, contributor or admin".into())
            })?;
            let expires = a.expires.as_deref().map(parse_lifetime).transpose()?;
            let new = app
                .create_token(actor, a.environment.as_deref(), &a.name, role, expires)
                .await?;
            eprintln!(
                "token `{}` acts as {} (expires {}); it is shown once, keep it now:",
                new.token.name,
                new.token.role,
                new.token.expires_at.map_or_else(
                    || "never".to_string(),
                    |t| t.format("%Y-%m-%d %H:%M UTC").to_string()
                )
            );
            println!("{}", new.secret);
        }
        TokenCommand::List(a) => {
            let mut t = output::table(&[
                "name",
                "role",
                "created by",
                "expires",
                "last used",
                "state",
            ]);
            let now = chrono::Utc::now();
            for tok in app.list_tokens(actor, a.environment.as_deref()).await? {
                let state = if tok.revoked_at.is_some() {
                    "revoked"
                } else if tok.is_active(now) {
                    "active"
                } else {
                    "expired"
                };
                let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
                    t.map_or_else(
                        || "-".to_string(),
                        |t| t.format("%Y-%m-%d %H:%M").to_string(),
                    )
                };
                t.add_row(vec![
                    Cell::new(&tok.name),
                    Cell::new(tok.role.as_str()),
                    Cell::new(&tok.created_by),
                    Cell::new(when(tok.expires_at)),
                    Cell::new(when(tok.last_used_at)),
                    Cell::new(state),
                ]);
            }
            println!("{t}");
        }
        TokenCommand::Revoke(a) => {
            app.revoke_token(actor, a.environment.as_deref(), &a.name)
                .await?;
            println!("token `{}` is revoked", a.name);
        }
    }
    Ok(())
}

/// `group ...`.
pub async fn group(app: &App, actor: &Actor, c: GroupCommand) -> anyhow::Result<()> {
    match c {
        GroupCommand::Create(a) => {
            app.create_group(actor, &a.name).await?;
            println!(
                "group `{}` is created; grant it a role with `lakecdp role set {} viewer`",
                a.name, a.name
            );
        }
        GroupCommand::Delete(a) => {
            app.delete_group(actor, &a.name).await?;
            println!(
                "group `{}` is deleted with its memberships and roles",
                a.name
            );
        }
        GroupCommand::AddMember(a) => {
            if app.add_group_member(actor, &a.group, &a.member).await? {
                println!("`{}` is a member of `{}`", a.member, a.group);
            } else {
                println!("`{}` was a member of `{}` already", a.member, a.group);
            }
        }
        GroupCommand::RemoveMember(a) => {
            if app.remove_group_member(actor, &a.group, &a.member).await? {
                println!("`{}` is no longer a member of `{}`", a.member, a.group);
            } else {
                println!("`{}` was not a member of `{}`", a.member, a.group);
            }
        }
        GroupCommand::List => {
            let mut t = output::table(&["group", "members"]);
            for g in app.list_groups(actor).await? {
                t.add_row(vec![Cell::new(&g.name), Cell::new(g.members.join(", "))]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

/// `audit`.
pub async fn audit(app: &App, actor: &Actor, a: AuditArgs) -> anyhow::Result<()> {
    let entries = app
        .audit_log(
            actor,
            a.environment.as_deref(),
            AuditQuery {
                environment_id: None,
                actor: a.actor,
                before: None,
                limit: a.limit,
            },
        )
        .await?;
    let mut t = output::table(&["#", "at", "actor", "action", "object", "outcome", "from"]);
    for e in entries {
        t.add_row(vec![
            Cell::new(e.id),
            Cell::new(e.at.format("%Y-%m-%d %H:%M:%S").to_string()),
            Cell::new(&e.actor),
            Cell::new(&e.action),
            Cell::new(&e.object),
            Cell::new(e.outcome.as_str()),
            Cell::new(e.address.as_deref().unwrap_or("-")),
        ]);
    }
    println!("{t}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_days_hours_or_minutes() {
        assert_eq!(parse_lifetime("90d").unwrap(), chrono::Duration::days(90));
        assert_eq!(parse_lifetime("12h").unwrap(), chrono::Duration::hours(12));
        assert!(parse_lifetime("0d").is_err());
        assert!(parse_lifetime("3w").is_err());
        assert!(parse_lifetime("d").is_err());
        assert!(parse_lifetime("ü").is_err());
    }
}
