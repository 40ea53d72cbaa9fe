//! End-to-end tests: the real server over real TLS, real clients, on SQLite
//! and (with `CURBSIDE_TEST_POSTGRES_URL`) PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step is a failed test"
)]

mod attachments;
mod audit;
mod audit_access;
mod audit_receipts;
mod audit_rotation;
mod audit_tree;
mod audit_witness;
mod backup;
mod browser;
mod certificates;
mod cli;
mod cli_output;
mod clinical;
mod console;
mod conversation;
mod disk_full;
mod durability;
mod events;
mod http_api;
mod identity;
mod key_packages;
mod membership;
mod metrics;
mod mls;
mod openapi;
mod people;
mod policy;
mod probe;
mod provisioning;
mod recall;
mod retention;
mod schemathesis;
mod shutdown;
mod starvation;
mod storage;
mod threads;
mod tls;
mod web_client;
