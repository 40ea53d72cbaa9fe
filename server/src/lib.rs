//! The Curbside server: a TLS-only HTTP API that relays end-to-end encrypted
//! clinician threads, backed by SQLite or PostgreSQL.
//!
//! `main` is thin: it parses the command line into a [`config::Config`],
//! sets up tracing and calls [`server::run`] with a bound listener and a
//! shutdown future. Tests call [`server::run`] the same way on port 0.

pub mod audit;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connection;
pub mod db;
pub mod disk;
pub mod escalation;
pub mod files;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod pipeline;
pub mod push;
pub mod search;
pub mod server;
pub mod sweep;
pub mod telemetry;
pub mod tls;
pub mod witness;

pub use config::Config;
pub use server::{RunError, Server, run};
