//! Sharing rules of an ADLS Gen2 lake: ACL entries for two existing Microsoft Entra
//! groups (their object ids), through the Data Lake endpoint.
//!
//! - the file system's root: `group:<reader>:r-x` and `group:<contributor>:r-x` merged
//!   into its ACL (`setAccessControl` with the whole, merged ACL);
//! - the environment's folder and everything in it: `setAccessControlRecursive` in
//!   `modify` mode, page after page (`x-ms-continuation`), with the Reader group `r-x`,
//!   the Contributor group `rwx`, the mask `rwx` and others nothing, each also as a
//!   default entry. Paths the service could not change are reported one by one.
//!
//! Reading back checks the root's and the environment folder's ACLs.

use super::{Drift, RulesReport};
use crate::backend::azure::AzureService;
use crate::backend::ServiceError;

/// The rules for two Entra groups on one file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdlsRules {
    /// The file system (container).
    pub filesystem: String,
    /// The environment's folder in it (`ci_<id>`).
    pub environment: String,
    /// The Reader group's object id.
    pub reader: String,
    /// The Contributor group's object id.
    pub contributor: String,
}

impl AdlsRules {
    /// The entries the environment's folder carries (and passes on).
    pub fn environment_acl(&self) -> String {
        let (r, c) = (&self.reader, &self.contributor);
        format!(
            "group:{r}:r-x,group:{c}:rwx,mask::rwx,other::---,\
             default:group:{r}:r-x,default:group:{c}:rwx,default:mask::rwx,default:other::---"
        )
    }

    /// The entries the root carries besides its own.
    pub fn root_entries(&self) -> String {
        format!("group:{}:r-x,group:{}:r-x", self.reader, self.contributor)
    }

    /// Apply the rules, then read them back.
    pub async fn apply(&self, service: &AzureService) -> Result<RulesReport, ServiceError> {
        let mut report = RulesReport::default();
        let root = service.get_access_control(&self.filesystem, "/").await?;
        report.checked += 1;
        let wanted = self.root_entries();
        if !missing(&root, &wanted).is_empty() {
            let merged = merge(&root, &wanted);
            service
                .set_access_control(&self.filesystem, "/", &merged)
                .await?;
            report.changed += 1;
        }
        let acl = self.environment_acl();
        let mut continuation: Option<String> = None;
        loop {
            let page = service
                .set_access_control_recursive(
                    &self.filesystem,
                    &self.environment,
                    "modify",
                    &acl,
                    continuation.as_deref(),
                )
                .await?;
            let done = page.directories_successful + page.files_successful;
            report.checked += done + page.failure_count;
            report.changed += done;
            for failed in &page.failed_entries {
                report.note(Drift {
                    path: failed.name.clone(),
                    expected: acl.clone(),
                    found: format!("not changed: {}", failed.error_message),
                });
            }
            // failures beyond the entries the page lists are counted all the same
            let unlisted = page
                .failure_count
                .saturating_sub(page.failed_entries.len() as u64);
            report.drifted += unlisted;
            match page.continuation {
                Some(next) => continuation = Some(next),
                None => break,
            }
        }
        let check = self.check(service).await?;
        report.drifted += check.drifted;
        report.drift.extend(check.drift);
        Ok(report)
    }

    /// Read the root's and the environment folder's ACLs, changing nothing.
    pub async fn check(&self, service: &AzureService) -> Result<RulesReport, ServiceError> {
        let mut report = RulesReport::default();
        for (path, wanted) in [
            ("/".to_string(), self.root_entries()),
            (self.environment.clone(), self.environment_acl()),
        ] {
            report.checked += 1;
            let found = service.get_access_control(&self.filesystem, &path).await?;
            if !missing(&found, &wanted).is_empty() {
                report.note(Drift {
                    path: format!("{}/{}", self.filesystem, path.trim_matches('/')),
                    expected: wanted,
                    found,
                });
            }
        }
        Ok(report)
    }
}

/// `acl` with the entries of `extra` added or replacing those of the same scope and
/// qualifier, and the mask widened to cover them.
fn merge(acl: &str, extra: &str) -> String {
    let mut merged: Vec<(String, String)> = entries(acl);
    for (key, perms) in entries(extra) {
        match merged.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = perms,
            None => merged.push((key, perms)),
        }
    }
    if !merged.iter().any(|(k, _)| k == "mask:") {
        merged.push(("mask:".into(), "r-x".into()));
    }
    merged
        .into_iter()
        .map(|(k, p)| format!("{k}:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The entries of an ACL string as (`[default:]scope:qualifier`, permissions).
fn entries(acl: &str) -> Vec<(String, String)> {
    acl.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .filter_map(|e| e.rsplit_once(':'))
        .map(|(k, p)| (k.to_string(), p.to_string()))
        .collect()
}

/// The entries of `wanted` that `found` lacks or holds with other permissions.
fn missing(found: &str, wanted: &str) -> Vec<String> {
    let found = entries(found);
    entries(wanted)
        .into_iter()
        .filter(|w| !found.contains(w))
        .map(|(k, p)| format!("{k}:{p}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_strings_are_compared_and_merged_entry_by_entry() {
        let found = "user::rwx,group::r-x,other::---,group:aaa:r--";
        assert_eq!(
            missing(found, "group:aaa:r-x,group:bbb:r-x"),
            ["group:aaa:r-x", "group:bbb:r-x"]
        );
        assert!(missing(found, "group::r-x,other::---").is_empty());
        assert_eq!(
            merge(found, "group:aaa:r-x,group:bbb:r-x"),
            "user::rwx,group::r-x,other::---,group:aaa:r-x,group:bbb:r-x,mask::r-x"
        );
        let rules = AdlsRules {
            filesystem: "customerinsights".into(),
            environment: "ci_1".into(),
            reader: "r1".into(),
            contributor: "c1".into(),
        };
        assert!(rules
            .environment_acl()
            .contains("default:group:c1:rwx,default:mask::rwx"));
    }
}
