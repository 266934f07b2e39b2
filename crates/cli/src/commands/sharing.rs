//! `sharing enable|status|repair|recipient`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use lakecdp_app::sharing::{
    AttachAccess, EnableSharing, EntraAccess, S3Access, SharingGroup, SharingStatus,
};
use lakecdp_app::{Actor, App};

use crate::args::SharingCommand;
use crate::commands::accounts::parse_lifetime;
use crate::output;
use crate::UserError;

/// `sharing ...`.
pub async fn run(app: &App, actor: &Actor, c: SharingCommand) -> anyhow::Result<()> {
    match c {
        SharingCommand::Enable(a) => {
            let request = EnableSharing {
                reader_group: a.reader_group,
                contributor_group: a.contributor_group,
                storage_reader: a.storage_reader,
                storage_contributor: a.storage_contributor,
            };
            let status = app
                .enable_sharing(actor, a.environment.as_deref(), &request)
                .await?;
            print_status(&status);
            println!(
                "\nsharing is enabled; give the consuming side this permissions identifier:\n{}",
                status.identifier
            );
        }
        SharingCommand::Status(a) => {
            let status = app.sharing_status(actor, a.environment.as_deref()).await?;
            print_status(&status);
            if status.rules.drifted > 0 {
                println!("\nrepair it with `lakecdp sharing repair`");
            }
        }
        SharingCommand::Repair(a) => {
            let status = app.repair_sharing(actor, a.environment.as_deref()).await?;
            print_status(&status);
        }
        SharingCommand::Recipient(a) => {
            let expires = a.expires.as_deref().map(parse_lifetime).transpose()?;
            if let Some(endpoint) = &a.endpoint {
                let url = url::Url::parse(endpoint)
                    .map_err(|e| UserError(format!("--endpoint `{endpoint}` is not a URL: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(UserError("--endpoint must be an http or https URL".into()).into());
                }
            }
            let new = app
                .add_sharing_recipient(actor, a.environment.as_deref(), &a.name, expires)
                .await?;
            match (&a.profile, &a.endpoint) {
                (Some(path), Some(endpoint)) => {
                    let mut profile = serde_json::json!({
                        "shareCredentialsVersion": 1,
                        "endpoint": endpoint.trim_end_matches('/'),
                        "bearerToken": new.secret,
                    });
                    if let Some(at) = new.token.expires_at {
                        profile["expirationTime"] = serde_json::json!(at.to_rfc3339());
                    }
                    create_private(path, &format!("{profile:#}\n"))?;
                    println!(
                        "recipient `{}` is in the Reader group; its Delta Sharing profile is {}",
                        new.token.name,
                        path.display()
                    );
                }
                _ => {
                    eprintln!(
                        "recipient `{}` is in the Reader group; its token is shown once, keep it now:",
                        new.token.name
                    );
                    println!("{}", new.secret);
                }
            }
        }
        SharingCommand::Credentials(a) => {
            let group: SharingGroup = a.group.parse()?;
            let key = app
                .sharing_credentials(actor, a.environment.as_deref(), group)
                .await?;
            let profile = format!("lakecdp-{}", group.as_str());
            let text = format!(
                "[{profile}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                key.access_key_id,
                key.secret_access_key.expose()
            );
            create_private(&a.output, &text)?;
            println!(
                "the {} group's key (identity `{}`, key id {}) is in {} as profile `{profile}`",
                group.as_str(),
                key.identity,
                key.access_key_id,
                a.output.display()
            );
        }
        SharingCommand::Attach(a) => {
            let access = match (&a.credentials, &a.tenant_id) {
                (Some(path), _) => Some(AttachAccess::S3(read_key_file(
                    path,
                    &a.region,
                    a.endpoint.clone(),
                )?)),
                (None, Some(tenant)) => {
                    let var = a.client_secret_env.clone().unwrap_or_default();
                    let secret = std::env::var(&var).map_err(|_| {
                        UserError(format!(
                            "--client-secret-env names `{var}`, which is not set"
                        ))
                    })?;
                    Some(AttachAccess::Entra(EntraAccess {
                        tenant_id: tenant.clone(),
                        client_id: a.client_id.clone().unwrap_or_default(),
                        client_secret: lakecdp_core::Secret::new(secret),
                        endpoint: a.endpoint.clone(),
                        authority_host: None,
                    }))
                }
                (None, None) => None,
            };
            let kept = app
                .attach_sharing(actor, &a.identifier, &a.organization, access.as_ref())
                .await?;
            println!(
                "organisation `{}` is attached to {}",
                kept.organization, kept.account
            );
        }
        SharingCommand::Attachments => {
            let mut t = output::table(&["organisation", "account", "attached by", "attached at"]);
            for a in app.attachments(actor).await? {
                t.add_row(vec![
                    a.organization,
                    a.account,
                    a.attached_by,
                    a.attached_at.format("%Y-%m-%d %H:%M").to_string(),
                ]);
            }
            println!("{t}");
        }
        SharingCommand::Detach(a) => {
            if a.with_dependents && !a.yes {
                let (_, dependents) = app.attachment_dependents(actor, &a.organization).await?;
                if !dependents.is_empty() {
                    println!("detaching `{}` removes:", a.organization);
                    print_dependents(&dependents);
                    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                        return Err(UserError(
                            "confirm with --yes (stdin is not a terminal to ask on)".into(),
                        )
                        .into());
                    }
                    eprint!("type the organisation's name to confirm: ");
                    let mut answer = String::new();
                    std::io::stdin().read_line(&mut answer)?;
                    if answer.trim() != a.organization {
                        return Err(UserError("not confirmed; nothing was changed".into()).into());
                    }
                }
            }
            let removed = app
                .detach_sharing(actor, &a.organization, a.with_dependents)
                .await?;
            if !removed.is_empty() {
                println!("removed:");
                print_dependents(&removed);
            }
            println!("organisation `{}` is detached", a.organization);
        }
    }
    Ok(())
}

fn print_dependents(d: &lakecdp_app::sharing::Dependents) {
    for (what, names) in [
        ("export", &d.exports),
        ("connection", &d.connections),
        ("recipient token", &d.tokens),
    ] {
        for n in names {
            println!("  {what} {n}");
        }
    }
}

/// The key in a credentials file `sharing credentials` wrote (the AWS profile format).
fn read_key_file(
    path: &std::path::Path,
    region: &str,
    endpoint: Option<String>,
) -> anyhow::Result<S3Access> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UserError(format!("cannot read {}: {e}", path.display())))?;
    let value = |key: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
            .ok_or_else(|| UserError(format!("{} has no `{key}`", path.display())))
    };
    Ok(S3Access {
        access_key_id: value("aws_access_key_id")?,
        secret_access_key: lakecdp_core::Secret::new(value("aws_secret_access_key")?),
        region: region.to_string(),
        endpoint,
    })
}

/// Create `path` (it must not exist) readable by its owner only, holding `text`.
fn create_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| UserError(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

fn print_status(s: &SharingStatus) {
    let members = |m: &[String]| {
        if m.is_empty() {
            "no members".to_string()
        } else {
            m.join(", ")
        }
    };
    println!("environment  {} ({} storage)", s.environment, s.storage);
    println!(
        "Reader       {} = {} on the storage: {}",
        s.sharing.reader_group,
        s.sharing.storage_reader,
        members(&s.reader_members)
    );
    println!(
        "Contributor  {} = {} on the storage: {}",
        s.sharing.contributor_group,
        s.sharing.storage_contributor,
        members(&s.contributor_members)
    );
    println!(
        "rules        {} place(s) checked, {} changed, {} drifting",
        s.rules.checked, s.rules.changed, s.rules.drifted
    );
    for d in &s.rules.drift {
        println!(
            "  drift: {}\n    expected {}\n    found    {}",
            d.path, d.expected, d.found
        );
    }
    let used = match &s.used_bytes {
        Ok(bytes) => format!("{:.2} GB used", *bytes as f64 / 1e9),
        Err(reason) => format!("use unknown ({reason})"),
    };
    println!(
        "capacity     {} GB of file capacity for {} profiles; {used}",
        s.entitled_gb,
        s.profiles.unwrap_or(0)
    );
    for w in &s.warnings {
        println!("warning: {w}");
    }
    println!("identifier   {}", s.identifier);
}
