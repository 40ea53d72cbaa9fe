//! The audit log as the client reads it, for `curbside admin audit ...`
//! (`crate::commands::audit`) and the end-to-end tests: the search table,
//! exports saved to a file, and verification.
//!
//! Verification recomputes the whole hash chain and checks every
//! checkpoint's signature, one record at a time, so a log of any size is
//! checked in constant memory, whether it streams from the server or comes
//! from an export file (JSON Lines or CSV).
//!
//! `review` makes the search table and saves exports; `verify` checks a
//! log, reading CSV exports through `csv_records`; `witness` checks, before
//! each audit command, that the log extends the last checkpoint this
//! device verified; `error` says why an audit command failed.

mod csv_records;
mod error;
mod review;
mod verify;
mod witness;

pub use error::AuditError;
pub use review::{parse_time, save_export, table, utc};
pub use verify::{Verified, verify_file, verify_file_against, verify_stream};
pub use witness::{Witnessed, first_key, handover_query, handovers_in, witness};
