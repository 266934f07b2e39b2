//! Sample data and benchmarks for lakecdp.
//!
//! [`retail`] generates the quickstart's sources: a CRM export, an online shop's customers
//! and orders, and a loyalty programme, describing one population of people with the
//! variations, duplicates and broken rows of real company data, plus the ground truth that
//! says which person each record belongs to, so that unification can be scored.
//! [`people`] generates the unification benchmark's population of several cultures.
//! [`refresh`] measures whole refreshes, through `lakecdp-app` or a `lakecdp` binary.
//! [`serve`] measures the HTTP API of `lakecdp-server` under concurrent clients.

#![warn(missing_docs)]

pub mod cluster;
mod error;
pub mod ingest;
pub mod outputs;
pub mod people;
pub mod refresh;
pub mod retail;
pub mod score;
pub mod search;
pub mod serve;
pub mod unify;

pub use error::{Error, Result};
