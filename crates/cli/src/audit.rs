//! Changes made through the command line go to the same audit log as the server's: who,
//! what, on which object, in which environment, and whether it succeeded, failed or was
//! refused. Users, groups and tokens are audited by the application itself.

use lakecdp_app::{Actor, App, ErrorKind, DEFAULT_PRINCIPAL};
use lakecdp_core::AuditOutcome;

use crate::args::{
    Command, ConnectionCommand, EnvCommand, EnvSecretCommand, ExportCommand, RoleCommand,
    SourceCommand, VaultCommand,
};

/// What an audited command changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The command, e.g. `role set`.
    pub action: &'static str,
    /// The environment it names, or `None` for the project file's.
    pub environment: Option<String>,
    /// The object it changes: a principal, connection, export, source or environment name.
    /// Never a secret's value.
    pub object: String,
}

impl Change {
    fn new(action: &'static str, environment: Option<&str>, object: &str) -> Self {
        Self {
            action,
            environment: environment.map(str::to_string),
            object: object.to_string(),
        }
    }
}

/// The change `command` makes, or `None` for what only reads (and for users, groups and
/// tokens, which the application audits).
pub fn change_of(command: &Command) -> Option<Change> {
    use Change as C;
    Some(match command {
        Command::Env(EnvCommand::Create(_)) => C::new("env create", None, ""),
        Command::Env(EnvCommand::Update(a)) => C::new("env update", Some(&a.name), &a.name),
        Command::Env(EnvCommand::Delete(a)) => C::new("env delete", Some(&a.name), &a.name),
        Command::Env(EnvCommand::Secret(EnvSecretCommand::Set(a))) => {
            C::new("env secret set", a.env.as_deref(), &a.name)
        }
        Command::Env(EnvCommand::Secret(EnvSecretCommand::Remove(a))) => {
            C::new("env secret remove", a.env.as_deref(), &a.name)
        }
        Command::Apply(_) => C::new("apply", None, ""),
        Command::Refresh(a) => C::new("refresh", None, a.only.as_deref().unwrap_or("")),
        Command::Source(SourceCommand::Add(a)) => C::new("source add", None, &a.name),
        Command::Source(SourceCommand::Remove(a)) => C::new("source remove", None, &a.name),
        Command::Role(RoleCommand::Set(a)) => C::new("role set", None, &a.principal),
        Command::Connection(c) => match c {
            ConnectionCommand::Add(a) => C::new("connection add", None, &a.name),
            ConnectionCommand::Edit(a) => C::new("connection edit", None, &a.name),
            ConnectionCommand::Rotate(a) => C::new("connection rotate", None, &a.name),
            ConnectionCommand::Delete(a) => C::new("connection delete", None, &a.name),
            ConnectionCommand::List | ConnectionCommand::Show(_) | ConnectionCommand::Test(_) => {
                return None
            }
        },
        Command::Export(c) => match c {
            ExportCommand::Add(a) => C::new("export add", None, &a.name),
            ExportCommand::Edit(a) => C::new("export edit", None, &a.name),
            ExportCommand::Delete(a) => C::new("export delete", None, &a.name),
            ExportCommand::Run(a) => C::new("export run", None, a.name.as_deref().unwrap_or("")),
            ExportCommand::List | ExportCommand::Show(_) => return None,
        },
        Command::Vault(VaultCommand::Rotate(_)) => C::new("vault rotate", None, ""),
        _ => return None,
    })
}

/// The outcome an audit entry records for a command's result.
pub fn outcome_of(result: &anyhow::Result<()>) -> AuditOutcome {
    match result {
        Ok(()) => AuditOutcome::Succeeded,
        Err(e) => {
            let denied = e.chain().any(|c| {
                c.downcast_ref::<lakecdp_app::Error>().is_some_and(|e| {
                    matches!(e.kind(), ErrorKind::Denied | ErrorKind::Unauthenticated)
                })
            });
            if denied {
                AuditOutcome::Denied
            } else {
                AuditOutcome::Failed
            }
        }
    }
}

/// The environment a change is recorded in: the one it names, else the project file's;
/// `None` when neither can be found (the entry then stays in the catalog-wide log).
pub async fn environment_of(app: &App, change: &Change) -> Option<String> {
    match &change.environment {
        Some(name) => Some(name.clone()),
        None => app.environment(None).await.ok().map(|e| e.name),
    }
}

/// Write `change`'s audit entry. A failure to write it is reported on standard error and
/// does not change the command's own result.
pub async fn record(
    app: &App,
    actor: &Actor,
    change: &Change,
    environment: Option<&str>,
    outcome: AuditOutcome,
) {
    let who = actor.name().unwrap_or(DEFAULT_PRINCIPAL);
    // a change of a whole environment (create, apply, vault rotate) names it
    let object = match (change.object.as_str(), environment) {
        ("", Some(env)) => env,
        (object, _) => object,
    };
    if let Err(e) = app
        .audit_in(who, change.action, environment, object, outcome, None)
        .await
    {
        eprintln!(
            "warning: the audit entry for `{}` could not be written: {e}",
            change.action
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use clap::Parser;

    fn change(args: &[&str]) -> Option<Change> {
        let cli = Cli::try_parse_from(std::iter::once("lakecdp").chain(args.iter().copied()))
            .expect("arguments parse");
        change_of(&cli.command)
    }

    #[test]
    fn changes_are_audited_and_reads_are_not() {
        assert_eq!(
            change(&["role", "set", "vera", "viewer"]),
            Some(Change::new("role set", None, "vera"))
        );
        assert_eq!(
            change(&["env", "delete", "prod", "--yes"]),
            Some(Change::new("env delete", Some("prod"), "prod"))
        );
        assert_eq!(change(&["role", "list"]), None);
        assert_eq!(change(&["connection", "list"]), None);
        assert_eq!(change(&["runs"]), None);
        // users, groups and tokens are audited by the application
        assert_eq!(change(&["group", "create", "analysts"]), None);
    }

    #[test]
    fn a_refusal_is_recorded_as_denied_and_other_errors_as_failed() {
        let denied: anyhow::Result<()> = Err(lakecdp_app::Error::denied("no").into());
        assert_eq!(outcome_of(&denied), AuditOutcome::Denied);
        let failed: anyhow::Result<()> = Err(lakecdp_app::Error::invalid("bad").into());
        assert_eq!(outcome_of(&failed), AuditOutcome::Failed);
        assert_eq!(outcome_of(&Ok(())), AuditOutcome::Succeeded);
    }
}
