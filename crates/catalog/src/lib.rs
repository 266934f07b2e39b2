//! The lakecdp catalog: the metadata store that holds environments, the runs of their
//! processes and the watermarks of their incremental loads, and the single source of
//! truth for all three.
//!
//! [`Catalog`] is the contract; [`SqliteCatalog`] is the embedded implementation and the
//! default, [`PostgresCatalog`] the one for several instances sharing a database server.
//! Every implementation runs the same conformance suite (the module
//! `conformance` and the macro `catalog_conformance_suite!`, behind the `testing`
//! feature).
//!
//! The catalog stores an environment's storage configuration as given, which holds secret
//! *references* only (an environment variable's name, a file's path); secret values are
//! read where they are used and never reach the catalog.
#![warn(missing_docs)]

mod acting;
mod catalog;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod error;
mod postgres;
mod sqlite;
mod validate;

pub use acting::Acting;
pub use catalog::{Catalog, CatalogExt, SealedSecret};
pub use error::{Error, Result};
pub use postgres::PostgresCatalog;
pub use sqlite::{latest_schema_version, SqliteCatalog, BUSY_TIMEOUT};

/// The object kind environments are reported as in [`Error::NotFound`] and
/// [`Error::AlreadyExists`].
pub const ENVIRONMENT: &str = "environment";

/// The object kind connections are reported as in [`Error::NotFound`] and
/// [`Error::AlreadyExists`].
pub const CONNECTION: &str = "connection";

/// The object kind exports are reported as in [`Error::NotFound`] and
/// [`Error::AlreadyExists`].
pub const EXPORT: &str = "export";

/// The object kind runs are reported as in [`Error::NotFound`] and
/// [`Error::AlreadyExists`].
pub const RUN: &str = "run";
