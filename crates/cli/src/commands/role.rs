//! `role set|list`.

use comfy_table::Cell;
use lakecdp_app::roles::parse_role;
use lakecdp_app::{Actor, App};

use crate::args::RoleSetArgs;
use crate::output;

/// `role set PRINCIPAL ROLE`.
pub async fn set(app: &App, actor: &Actor, a: RoleSetArgs) -> anyhow::Result<()> {
    let role = parse_role(&a.role)?;
    let env = app.set_role(actor, None, &a.principal, role).await?;
    match role {
        Some(r) => println!("`{}` is now {r} of environment `{}`", a.principal, env.name),
        None => println!(
            "`{}` has no role in environment `{}` any more",
            a.principal, env.name
        ),
    }
    Ok(())
}

/// `role list`.
pub async fn list(app: &App, actor: &Actor) -> anyhow::Result<()> {
    let (env, mut roles, acting_as) = app.roles(actor, None).await?;
    let mut t = output::table(&["principal", "role", "granted by", "granted at"]);
    if !roles
        .iter()
        .any(|a| a.principal.eq_ignore_ascii_case(&env.created_by))
    {
        // the creator is Admin until given another role
        t.add_row(vec![
            Cell::new(&env.created_by),
            Cell::new("Admin (creator)"),
            Cell::new("-"),
            Cell::new(env.created_at.format("%Y-%m-%d %H:%M").to_string()),
        ]);
    }
    roles.sort_by_key(|a| std::cmp::Reverse(a.role));
    for a in roles {
        t.add_row(vec![
            Cell::new(&a.principal),
            Cell::new(a.role.as_str()),
            Cell::new(&a.assigned_by),
            Cell::new(a.assigned_at.format("%Y-%m-%d %H:%M").to_string()),
        ]);
    }
    println!("{t}");
    println!("you act as `{acting_as}`");
    Ok(())
}
