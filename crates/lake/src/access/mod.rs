//! Access rules that the storage itself enforces on an environment's lake, so that
//! another organisation's applications read (the Reader group) or also write (the
//! Contributor group) the outputs with their own identities, and nobody else does.
//!
//! - [`local`]: POSIX ACLs on the container and the environment's folder, for two
//!   existing Unix groups ([`posix`] reads and writes them).
//! - [`adls`]: ACL entries for two Microsoft Entra groups through the Data Lake
//!   endpoint of an ADLS Gen2 account.
//! - [`iam`]: on S3, one identity per group with a policy scoped to the environment's
//!   prefix, set up through the server's IAM API.
//!
//! Every backend applies its rules, then reads them back: what it reports as drift is
//! what the storage says, not what was asked of it.

pub mod adls;
pub mod iam;
pub mod local;
pub mod posix;

use serde::{Deserialize, Serialize};

/// One place whose rules differ from what sharing needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// The path (a folder or file of a local lake, an identity's policy on S3).
    pub path: String,
    /// The rules it should carry.
    pub expected: String,
    /// The rules found on it.
    pub found: String,
}

/// What applying (or reading) the rules of a lake found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesReport {
    /// Places checked.
    pub checked: u64,
    /// Places changed (apply only).
    pub changed: u64,
    /// Places whose rules still differ, at most [`MAX_DRIFT`] of them.
    pub drift: Vec<Drift>,
    /// How many places differ in all.
    pub drifted: u64,
}

/// How many drifting places a report lists.
pub const MAX_DRIFT: usize = 20;

impl RulesReport {
    fn note(&mut self, drift: Drift) {
        self.drifted += 1;
        if self.drift.len() < MAX_DRIFT {
            self.drift.push(drift);
        }
    }
}
