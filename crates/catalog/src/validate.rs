//! Checks every backend applies before it stores an object, so they refuse the same
//! things with the same messages.

use chrono::Timelike;
use lakecdp_core::{
    ConfigErrors, Environment, PasswordCredential, Principal, PrincipalKind, RunRecord, Watermark,
};

use crate::error::{Error, Result};

/// Refuse an environment the catalog must not hold.
pub(crate) fn environment(environment: &Environment) -> Result<()> {
    if environment.name.trim().is_empty() {
        return Err(Error::Invalid("the environment name is empty".into()));
    }
    if environment.retention_runs == 0 {
        return Err(Error::Invalid(format!(
            "environment `{}` keeps 0 runs; retention must be at least 1",
            environment.name
        )));
    }
    let problems = environment.storage.validate();
    if !problems.is_empty() {
        return Err(Error::Invalid(format!(
            "environment `{}`: {}",
            environment.name,
            ConfigErrors(problems)
        )));
    }
    Ok(())
}

/// Refuse a run the catalog must not hold.
pub(crate) fn run(run: &RunRecord) -> Result<()> {
    if run.process.trim().is_empty() {
        return Err(Error::Invalid(format!("run `{}` names no process", run.id)));
    }
    if let Some(rows) = run.rows {
        if i64::try_from(rows).is_err() {
            return Err(Error::Invalid(format!(
                "run `{}` reports {rows} rows, more than the catalog can store",
                run.id
            )));
        }
    }
    if let Some(finished) = run.finished_at {
        if finished < run.started_at {
            return Err(Error::Invalid(format!(
                "run `{}` finished before it started",
                run.id
            )));
        }
    }
    Ok(())
}

/// Refuse a revision the catalog must not hold: number 0, an empty text or no hash.
pub(crate) fn revision(revision: &lakecdp_core::Revision) -> Result<()> {
    if revision.number == 0 {
        return Err(Error::Invalid(
            "revisions are numbered from 1; 0 is not a revision".into(),
        ));
    }
    if revision.text.trim().is_empty() {
        return Err(Error::Invalid(format!(
            "revision {} has no text",
            revision.number
        )));
    }
    if revision.hash.len() != 64 || !revision.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Invalid(format!(
            "revision {} has no SHA-256 hash",
            revision.number
        )));
    }
    Ok(())
}

/// Refuse a watermark the catalog must not hold: one without a source or table name, or
/// whose hour is not the start of an hour.
pub(crate) fn watermark(watermark: &Watermark) -> Result<()> {
    if watermark.source.trim().is_empty() {
        return Err(Error::Invalid(format!(
            "the watermark of table `{}` names no source",
            watermark.table
        )));
    }
    if watermark.table.trim().is_empty() {
        return Err(Error::Invalid(format!(
            "the watermark of source `{}` names no table",
            watermark.source
        )));
    }
    let hour = watermark.hour;
    if hour.minute() != 0 || hour.second() != 0 || hour.nanosecond() != 0 {
        return Err(Error::Invalid(format!(
            "the watermark of `{}.{}` is at {}, not at the start of an hour",
            watermark.source,
            watermark.table,
            hour.to_rfc3339()
        )));
    }
    Ok(())
}

/// Refuse a password for anyone but a person, and an empty hash.
pub(crate) fn password(owner: &Principal, credential: &PasswordCredential) -> Result<()> {
    if owner.kind != PrincipalKind::Person {
        let article = if owner.kind == PrincipalKind::Application {
            "an"
        } else {
            "a"
        };
        return Err(Error::Invalid(format!(
            "`{}` is {article} {}, not a person: only people sign in with a password",
            owner.name,
            owner.kind.as_str()
        )));
    }
    if credential.hash.is_empty() {
        return Err(Error::Invalid("a password hash is empty".into()));
    }
    Ok(())
}

/// The stored name of the group `name` looked up as `found`: not found, or not a group,
/// is refused.
pub(crate) fn group(found: Option<Principal>, name: &str) -> Result<String> {
    let p = found.ok_or_else(|| Error::NotFound {
        kind: "group",
        name: name.to_string(),
    })?;
    if p.kind != PrincipalKind::Group {
        return Err(Error::Invalid(format!(
            "`{}` is a {}, not a group",
            p.name,
            p.kind.as_str()
        )));
    }
    Ok(p.name)
}

/// Refuse a group as a member of a group.
pub(crate) fn group_member(member: &Principal) -> Result<()> {
    if member.kind == PrincipalKind::Group {
        return Err(Error::Invalid(format!(
            "`{}` is a group: groups cannot be members of groups",
            member.name
        )));
    }
    Ok(())
}

/// The sharing of an environment names two different groups and what they are on the
/// storage.
pub(crate) fn sharing(sharing: &lakecdp_core::Sharing) -> Result<()> {
    let fields = [
        ("reader_group", &sharing.reader_group),
        ("contributor_group", &sharing.contributor_group),
        ("storage_reader", &sharing.storage_reader),
        ("storage_contributor", &sharing.storage_contributor),
        ("enabled_by", &sharing.enabled_by),
    ];
    if let Some((name, _)) = fields.iter().find(|(_, v)| v.trim().is_empty()) {
        return Err(Error::Invalid(format!("the sharing's {name} is empty")));
    }
    if sharing
        .reader_group
        .eq_ignore_ascii_case(&sharing.contributor_group)
    {
        return Err(Error::Invalid(
            "the Reader and Contributor groups of a sharing must differ".into(),
        ));
    }
    Ok(())
}

/// An attachment names its organisation, account and identifier.
pub(crate) fn attachment(attachment: &lakecdp_core::Attachment) -> Result<()> {
    for (name, value) in [
        ("organization", &attachment.organization),
        ("account", &attachment.account),
        ("identifier", &attachment.identifier),
        ("attached_by", &attachment.attached_by),
    ] {
        if value.trim().is_empty() {
            return Err(Error::Invalid(format!("the attachment's {name} is empty")));
        }
    }
    Ok(())
}

/// A reporting connection has a name a secret can be named after.
pub(crate) fn reporting(c: &lakecdp_core::ReportingConnection) -> Result<()> {
    let ok = !c.name.is_empty()
        && c.name.len() <= 64
        && c.name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "reporting connection name `{}`: use 1 to 64 letters, digits, `-` and `_`",
            c.name
        )))
    }
}
