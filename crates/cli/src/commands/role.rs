//! `role set|list`.

use comfy_table::Cell;
use lakecdp_catalog::Acting;
use lakecdp_core::Role;

use crate::args::RoleSetArgs;
use crate::context::Context;
use crate::output;
use crate::UserError;

/// `role set PRINCIPAL ROLE`.
pub async fn set(ctx: &Context, a: RoleSetArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let role = if a.role.eq_ignore_ascii_case("none") {
        None
    } else {
        Some(
            a.role
                .parse::<Role>()
                .map_err(|e| UserError(format!("{e}, or `none`")))?,
        )
    };
    Acting::new(&catalog, ctx.principal_for(&env))
        .set_role(&env, &a.principal, role)
        .await?;
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
pub async fn list(ctx: &Context) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let env = ctx.environment(&catalog, None).await?;
    let acting = Acting::new(&catalog, ctx.principal_for(&env));
    let mut roles = acting.roles(&env).await?;
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
    println!("you act as `{}`", acting.principal());
    Ok(())
}
