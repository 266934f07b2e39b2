//! Sharing rules of a local lake, as POSIX ACLs for two existing Unix groups:
//!
//! - the container folder (`customerinsights`): `r-x` for both groups, so their members
//!   can reach and list it; nothing else of it changes, and no default entries, so the
//!   container's other environments stay as they are;
//! - the environment's folder and everything in it: the Reader group `r-x`, the
//!   Contributor group `rwx`, others nothing; on files the mask is `rw-` at most, so a
//!   reader reads and a contributor reads and writes, and nobody executes; every folder
//!   carries the same as default entries, so what lakecdp writes later inherits them
//!   (and a file made in it carries exactly these rules).
//!
//! Entries the rules do not name (the owner, the owning group, other named users or
//! groups an administrator added) are kept. Symbolic links are neither followed nor
//! changed. The folders above the container are not touched: their members must be
//! able to search them (`x`), which [`reachable`] checks.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::posix::{self, Acl, Perms, Tag};
use super::{Drift, RulesReport};

/// A Unix group: its name and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixGroup {
    /// The group's name.
    pub name: String,
    /// Its id.
    pub gid: u32,
}

/// Errors of the local rules.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No Unix group by that name or id.
    #[error("there is no Unix group `{0}` on this machine: lakecdp binds its groups to existing Unix groups and never creates them (create it with `groupadd {0}`, or name another)")]
    NoSuchGroup(String),
    /// A file system call failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// What failed.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The Unix group a name (or a decimal id) names.
pub fn unix_group(name_or_gid: &str) -> Result<UnixGroup, Error> {
    let found = match name_or_gid.parse::<u32>() {
        Ok(gid) => nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)),
        Err(_) => nix::unistd::Group::from_name(name_or_gid),
    };
    match found {
        Ok(Some(g)) => Ok(UnixGroup {
            name: g.name,
            gid: g.gid.as_raw(),
        }),
        _ => Err(Error::NoSuchGroup(name_or_gid.to_string())),
    }
}

/// The rules for a Reader and a Contributor group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalRules {
    /// The Reader group's id.
    pub reader: u32,
    /// The Contributor group's id.
    pub contributor: u32,
}

impl LocalRules {
    /// The access ACL a path of the environment's folder should carry, given the one it
    /// carries.
    fn environment_access(&self, current: &Acl, dir: bool) -> Acl {
        let mut acl = current.clone();
        // the entries a folder's default ACL gives what is made in it; on a file the
        // mask takes the execute bit away, as it does when a file inherits them
        acl.set(Tag::Group(self.reader), Perms::READ_EXECUTE);
        acl.set(Tag::Group(self.contributor), Perms::ALL);
        acl.set(Tag::Other, Perms::NONE);
        acl.recalculate_mask();
        if !dir {
            let mask = acl.get(Tag::Mask).unwrap_or(Perms::NONE);
            acl.set(Tag::Mask, Perms::from_bits(u32::from(mask.bits() & 0o6)));
        }
        acl
    }

    /// The default ACL a folder of the environment should carry.
    fn environment_default(&self, current: Option<&Acl>, access: &Acl) -> Acl {
        let mut acl = current.cloned().unwrap_or_else(|| {
            let mut acl = Acl::default();
            acl.set(Tag::UserObj, Perms::ALL);
            acl.set(
                Tag::GroupObj,
                access.get(Tag::GroupObj).unwrap_or(Perms::READ_EXECUTE),
            );
            acl
        });
        acl.set(Tag::Group(self.reader), Perms::READ_EXECUTE);
        acl.set(Tag::Group(self.contributor), Perms::ALL);
        acl.set(Tag::Other, Perms::NONE);
        acl.recalculate_mask();
        acl
    }

    /// The access ACL the container should carry.
    fn container_access(&self, current: &Acl) -> Acl {
        let mut acl = current.clone();
        acl.set(Tag::Group(self.reader), Perms::READ_EXECUTE);
        acl.set(Tag::Group(self.contributor), Perms::READ_EXECUTE);
        acl.recalculate_mask();
        acl
    }

    /// Apply the rules to the container and the environment's folder (created by the
    /// prerequisite checks and the first refresh), then read every path back.
    pub fn apply(&self, container: &Path, environment: &Path) -> Result<RulesReport, Error> {
        self.walk(container, environment, true)
    }

    /// Read the rules of the container and the environment's folder, changing nothing.
    pub fn check(&self, container: &Path, environment: &Path) -> Result<RulesReport, Error> {
        self.walk(container, environment, false)
    }

    fn walk(&self, container: &Path, environment: &Path, fix: bool) -> Result<RulesReport, Error> {
        let mut report = RulesReport::default();
        self.visit(container, None, fix, &mut report)?;
        let mut pending: Vec<PathBuf> = vec![environment.to_path_buf()];
        while let Some(path) = pending.pop() {
            let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
            if meta.file_type().is_symlink() {
                continue;
            }
            let dir = meta.is_dir();
            self.visit(&path, Some(dir), fix, &mut report)?;
            if dir {
                for entry in std::fs::read_dir(&path).map_err(io_err(&path))? {
                    pending.push(entry.map_err(io_err(&path))?.path());
                }
            }
        }
        Ok(report)
    }

    /// One path: `environment` is `None` for the container, else whether it is a folder
    /// of the environment.
    fn visit(
        &self,
        path: &Path,
        environment: Option<bool>,
        fix: bool,
        report: &mut RulesReport,
    ) -> Result<(), Error> {
        report.checked += 1;
        let current = current_access(path)?;
        let current_default = match environment {
            Some(true) => posix::read(path, true).map_err(io_err(path))?,
            _ => None,
        };
        let (access, default) = match environment {
            None => (self.container_access(&current), None),
            Some(dir) => {
                let access = self.environment_access(&current, dir);
                let default =
                    dir.then(|| self.environment_default(current_default.as_ref(), &access));
                (access, default)
            }
        };
        let same = access == current && default == current_default;
        if same {
            return Ok(());
        }
        if fix {
            posix::write(path, false, &access).map_err(io_err(path))?;
            if let Some(default) = &default {
                posix::write(path, true, default).map_err(io_err(path))?;
            }
            report.changed += 1;
            // read back: what the file system keeps is what counts
            let kept = current_access(path)?;
            let kept_default = match default {
                Some(_) => posix::read(path, true).map_err(io_err(path))?,
                None => None,
            };
            if kept == access && kept_default == default {
                return Ok(());
            }
            report.note(drift(
                path,
                &access,
                default.as_ref(),
                &kept,
                kept_default.as_ref(),
            ));
        } else {
            report.note(drift(
                path,
                &access,
                default.as_ref(),
                &current,
                current_default.as_ref(),
            ));
        }
        Ok(())
    }
}

fn drift(
    path: &Path,
    access: &Acl,
    default: Option<&Acl>,
    found: &Acl,
    found_default: Option<&Acl>,
) -> Drift {
    let text = |access: &Acl, default: Option<&Acl>| {
        let mut text = access.to_text();
        if let Some(d) = default {
            for part in d.to_text().split(',') {
                text.push_str(",default:");
                text.push_str(part);
            }
        }
        text
    };
    Drift {
        path: path.display().to_string(),
        expected: text(access, default),
        found: text(found, found_default),
    }
}

/// A path's access ACL, or the minimal one of its mode when it carries none.
fn current_access(path: &Path) -> Result<Acl, Error> {
    match posix::read(path, false).map_err(io_err(path))? {
        Some(acl) => Ok(acl),
        None => {
            let meta = std::fs::symlink_metadata(path).map_err(io_err(path))?;
            Ok(Acl::from_mode(meta.permissions().mode()))
        }
    }
}

/// The folders above `container` that a member of `group` cannot search (no `x` for
/// it through its owner, group, named-group or other entries), nearest first: a member
/// cannot reach the lake through them whatever the lake's own rules say.
pub fn unreachable_ancestors(container: &Path, group: u32) -> Vec<PathBuf> {
    let mut blocked = Vec::new();
    let mut at = container.parent();
    while let Some(dir) = at {
        if !reachable(dir, group) {
            blocked.push(dir.to_path_buf());
        }
        at = dir.parent();
    }
    blocked
}

/// Whether a member of `group` (that is neither the owner nor root) may search `dir`.
pub fn reachable(dir: &Path, group: u32) -> bool {
    let Ok(meta) = std::fs::metadata(dir) else {
        return false;
    };
    let acl = posix::read(dir, false)
        .ok()
        .flatten()
        .unwrap_or_else(|| Acl::from_mode(meta.permissions().mode()));
    let x = |p: Option<Perms>| p.is_some_and(|p| p.bits() & 1 != 0);
    let mask = acl.get(Tag::Mask);
    let masked = |p: Option<Perms>| match mask {
        Some(m) => x(p) && m.bits() & 1 != 0,
        None => x(p),
    };
    if meta.gid() == group {
        return masked(acl.get(Tag::GroupObj));
    }
    if acl.get(Tag::Group(group)).is_some() {
        return masked(acl.get(Tag::Group(group)));
    }
    x(acl.get(Tag::Other))
}
