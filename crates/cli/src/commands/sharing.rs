//! `sharing enable|status|repair|recipient`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use lakecdp_app::sharing::{EnableSharing, SharingGroup, SharingStatus};
use lakecdp_app::{Actor, App};

use crate::args::SharingCommand;
use crate::commands::accounts::parse_lifetime;
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
    }
    Ok(())
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
