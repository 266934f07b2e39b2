//! lakecdp's application layer: every operation a user can perform, written once for the
//! command line and the server.
//!
//! - [`App`] owns the catalog (as `Arc<dyn Catalog>`) and the project folder; it is cheap
//!   to clone, so a server moves it into the tasks it spawns.
//! - Every operation is made by an [`Actor`] and checked against its role in the
//!   environment, reads included.
//! - Errors carry an [`ErrorKind`]; the command line maps it to an exit code, the server
//!   to an HTTP status.
//! - Long work (a refresh, an export, the scheduler) takes a cancellation token and
//!   reports structured [`Event`]s to an [`Observer`]; nothing here prints.
#![warn(missing_docs)]

pub mod accounts;
mod app;
pub mod cluster;
pub mod connections;
pub mod environments;
pub mod error;
pub mod exports;
mod files;
pub mod observe;
pub mod refresh;
pub mod reporting;
pub mod revisions;
pub mod roles;
pub mod runs;
pub mod scheduler;
pub mod search;
pub mod segments;
pub mod sharing;
pub mod sources;
pub mod status;
mod targets;
pub mod unify;

pub use accounts::{SignInPolicy, SignedIn};
pub use app::{absolute, open_catalog, Actor, App, DEFAULT_PRINCIPAL};
pub use error::{Error, ErrorKind, Result, ResultExt};
pub use exports::StartedExport;
pub use observe::{Event, ExportedTable, Observer, ProcessOutcome, Recorder, Silent};
pub use refresh::{RefreshPlan, RefreshReport, RefreshRequest, StartedRefresh};
pub use scheduler::{SchedulerEvent, SchedulerObserver};
pub use tokio_util::sync::CancellationToken;

pub use lakecdp_lake::check::CheckResult as CheckResultLine;
pub use lakecdp_lake::{CheckReport, CheckStatus};

/// The reports of the processes, as events carry them.
pub mod reports {
    pub use lakecdp_engine::activities::{ActivitiesReport, ActivityReport};
    pub use lakecdp_engine::ingest::{Base, IncrementalReport, SourceReport, TableReport};
    pub use lakecdp_engine::measures::MeasuresReport;
    pub use lakecdp_engine::reports::ReportsReport;
    pub use lakecdp_engine::segments::SegmentsReport;
    pub use lakecdp_engine::unify::{UnifyMode, UnifyReport};
    pub use lakecdp_match::ids::ChangeReason;
}
