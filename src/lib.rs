//! Samplit: a self-hosted experimentation server in one binary.
//!
//! `main.rs` parses the command line and dispatches; everything else lives here so the
//! tests and benches build the same server the binary runs.

#![forbid(unsafe_code)]

pub mod admin_socket;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod http;
pub mod service;
pub mod store;

pub use http::{app, serve};
