//! Applied project revisions: the project file as the catalog stores it.
//!
//! `apply` validates the whole project file and stores it as the environment's next
//! numbered revision (its text, SHA-256, base folder, who and when); an unchanged file
//! makes no new revision. Every process, the scheduler included, runs from the applied
//! revision, never from the file on disk. An environment from before revisions adopts
//! the file on disk as revision 1 the first time it needs one.

use chrono::Utc;
use lakecdp_core::{Environment, Operation, ProjectFile, Revision};

use crate::app::{Actor, App};
use crate::error::{Error, Result, ResultExt};

/// The SHA-256 of a project file's text, in hex.
pub fn hash(text: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
}

/// The applied project of an environment, and what a caller should know about it.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The revision.
    pub revision: Revision,
    /// Its project.
    pub project: ProjectFile,
    /// Set when the file on disk differs from it, or when it was just adopted.
    pub notice: Option<String>,
}

/// One line of a diff between the applied revision and the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    /// In both.
    Same(String),
    /// Only in the applied revision.
    Removed(String),
    /// Only in the file.
    Added(String),
}

/// The file on disk against the applied revision.
#[derive(Debug, Clone)]
pub struct ProjectDiff {
    /// The applied revision (`None` before the first apply).
    pub revision: Option<u32>,
    /// Every line, in order.
    pub lines: Vec<DiffLine>,
}

impl ProjectDiff {
    /// True when the file is the applied revision.
    pub fn is_empty(&self) -> bool {
        self.lines.iter().all(|l| matches!(l, DiffLine::Same(_)))
    }
}

/// Whether applying made a new revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevisionChange {
    /// The file became this new revision.
    New(u32),
    /// The file is the applied revision already.
    Unchanged(u32),
}

impl App {
    /// The project file's text, validated.
    pub(crate) fn project_text(&self) -> Result<(String, ProjectFile)> {
        let path = self.project_file();
        let text = self.read_project_file()?;
        let project =
            ProjectFile::parse(&text).with_context(|| format!("in {}", path.display()))?;
        Ok((text, project))
    }

    /// Store `text` as the next revision of `env` unless it is the latest already; what
    /// happened and the revision now applied.
    pub(crate) async fn store_revision(
        &self,
        applied_by: &str,
        env: &Environment,
        text: &str,
    ) -> Result<(RevisionChange, Revision)> {
        let latest = self.catalog().revision(env.id, None).await?;
        let digest = hash(text);
        if let Some(r) = latest.as_ref().filter(|r| r.hash == digest) {
            return Ok((RevisionChange::Unchanged(r.number), r.clone()));
        }
        let revision = Revision {
            environment_id: env.id,
            number: latest.map_or(1, |r| r.number + 1),
            text: text.to_string(),
            hash: digest,
            base_dir: self.revision_base(),
            applied_by: applied_by.to_string(),
            applied_at: Utc::now(),
        };
        self.catalog().add_revision(&revision).await?;
        Ok((RevisionChange::New(revision.number), revision))
    }

    /// Store the project file as the next revision of its environment (Contributor);
    /// the environment's own settings are not changed here (see [`App::apply`]).
    pub(crate) async fn apply_revision(
        &self,
        actor: &Actor,
        env: &Environment,
        text: &str,
    ) -> Result<RevisionChange> {
        let latest = self.catalog().revision(env.id, None).await?;
        if latest.as_ref().is_some_and(|r| r.hash == hash(text)) {
            self.require(actor, env, Operation::ViewEnvironment).await?;
        } else {
            self.require(actor, env, Operation::EditProject).await?;
        }
        Ok(self
            .store_revision(&actor.name_for(env), env, text)
            .await?
            .0)
    }

    /// The applied project of `env`; the file on disk is adopted as revision 1 when the
    /// environment has none yet (a catalog from before revisions).
    pub async fn applied(&self, actor: &Actor, env: &Environment) -> Result<Applied> {
        let latest = match self.catalog().revision(env.id, None).await? {
            Some(r) => r,
            None if self.has_default_environment() || self.is_confined() => {
                return Err(Error::not_found(format!(
                    "environment `{}` has no applied revision yet: apply its project file first",
                    env.name
                )))
            }
            None => {
                let (text, project) = self.project_text()?;
                let (_, revision) = self
                    .store_revision(&actor.name_for(env), env, &text)
                    .await?;
                return Ok(Applied {
                    notice: Some(format!(
                        "environment `{}` had no applied revision: {} was adopted as revision {}",
                        env.name,
                        self.project_file().display(),
                        revision.number
                    )),
                    revision,
                    project,
                });
            }
        };
        let project = ProjectFile::parse(&latest.text)
            .context(format!("applied revision {}", latest.number))?;
        let on_disk = if self.has_default_environment() {
            None
        } else {
            std::fs::read_to_string(self.project_file()).ok()
        };
        let notice = match on_disk {
            Some(text) if hash(&text) != latest.hash => Some(format!(
                "{} differs from the applied revision {}: running revision {} (`lakecdp diff` shows the changes, `lakecdp apply` applies them)",
                self.project_file().display(),
                latest.number,
                latest.number
            )),
            _ => None,
        };
        Ok(Applied {
            revision: latest,
            project,
            notice,
        })
    }

    /// The revisions of an environment, newest first (Viewer).
    pub async fn revisions(
        &self,
        actor: &Actor,
        environment: Option<&str>,
    ) -> Result<(Environment, Vec<Revision>)> {
        let env = self
            .environment_for(actor, environment, Operation::ViewEnvironment)
            .await?;
        let list = self.catalog().list_revisions(env.id).await?;
        Ok((env, list))
    }

    /// One revision (the latest with `None`) of the project's environment (Viewer).
    pub async fn revision(&self, actor: &Actor, number: Option<u32>) -> Result<Revision> {
        let env = self
            .environment_for(actor, None, Operation::ViewEnvironment)
            .await?;
        self.catalog()
            .revision(env.id, number)
            .await?
            .ok_or_else(|| match number {
                Some(n) => Error::not_found(format!(
                    "environment `{}` has no revision {n} (`lakecdp revisions` lists them)",
                    env.name
                )),
                None => Error::not_found(format!(
                    "environment `{}` has no applied revision yet: run `lakecdp apply`",
                    env.name
                )),
            })
    }

    /// The project file against the applied revision (Viewer).
    pub async fn diff(&self, actor: &Actor) -> Result<ProjectDiff> {
        let path = self.project_file();
        let file = std::fs::read_to_string(&path)
            .map_err(|e| Error::invalid(format!("cannot read {}: {e}", path.display())))?;
        self.diff_text(actor, None, &file).await
    }

    /// A project file's text against the applied revision of the environment named (the
    /// project's with `None`) (Viewer).
    pub async fn diff_text(
        &self,
        actor: &Actor,
        environment: Option<&str>,
        file: &str,
    ) -> Result<ProjectDiff> {
        let env = self
            .environment_for(actor, environment, Operation::ViewEnvironment)
            .await?;
        let applied = self.catalog().revision(env.id, None).await?;
        let old = applied.as_ref().map(|r| r.text.as_str()).unwrap_or("");
        let lines = diff::lines(old, file)
            .into_iter()
            .map(|d| match d {
                diff::Result::Both(l, _) => DiffLine::Same(l.to_string()),
                diff::Result::Left(l) => DiffLine::Removed(l.to_string()),
                diff::Result::Right(l) => DiffLine::Added(l.to_string()),
            })
            .collect();
        Ok(ProjectDiff {
            revision: applied.map(|r| r.number),
            lines,
        })
    }
}
