//! The HTTP API and web pages (axum), wiring the catalog, the lake and the engine.
//!
//! This crate is filled by the server work; it holds no code yet.
#![warn(missing_docs)]
