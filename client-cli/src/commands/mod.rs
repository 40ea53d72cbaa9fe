//! The command groups of `curbside`, one module each: the arguments clap
//! reads for the group, and what each of its commands does. The top-level
//! command line (`crate::cli`) parses the global options and hands each
//! group the session options and its own subcommand; a group never looks
//! back at the command line.

pub mod admin;
pub mod audit;
pub mod directory;
pub mod policy;
pub mod profile;
pub mod retention;
pub mod roles;
pub mod thread;
mod users;
