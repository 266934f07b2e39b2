//! One module per command group.

pub mod accounts;
pub mod cluster;
pub mod connection;
pub mod env;
pub mod export;
pub mod init;
pub mod refresh;
pub mod revisions;
pub mod role;
pub mod runs;
pub mod scheduler;
pub mod segment;
pub mod serve;
pub mod sharing;
pub mod source;
pub mod unify;
