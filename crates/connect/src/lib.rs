//! Connections, the secret vault and export targets (PostgreSQL, lake).
//!
//! Export targets consume Arrow record-batch streams and never import the engine.
//! This crate is filled by the connections and exports work; it holds no code yet.
#![warn(missing_docs)]
