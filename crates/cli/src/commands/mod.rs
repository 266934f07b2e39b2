//! One module per command group.

pub mod env;
pub mod init;
pub mod refresh;
pub mod runs;
pub mod source;
pub mod unify;
