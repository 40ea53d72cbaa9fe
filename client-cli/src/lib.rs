//! The Curbside client: how a clinician's device talks to a Curbside server,
//! as a library (used by the `curbside` command and the end-to-end tests) and
//! as the `curbside` command line.

pub mod agent;
pub mod attachment;
pub mod audit;
pub mod cli;
pub mod client;
pub mod clock;
mod commands;
mod conversation;
pub mod error;
pub mod mls;
pub mod output;
mod people;
mod session;
pub mod show;
pub mod store;
pub mod trust;

pub use client::{Client, ClientError};
pub use trust::Trust;
