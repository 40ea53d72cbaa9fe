//! The audit log's chain: entries numbered and hashed one after another,
//! sealed by signed checkpoints; and the Merkle tree over the same entries
//! (`tree`), whose signed checkpoints and proofs let anyone who saw one
//! checkpoint detect a rewrite.
//!
//! The canonical encoding, hashing and checkpoint format are
//! `curbside_proto::audit`'s, specified in `docs/audit-format.md`. The rows
//! are stored by `crate::db::audit`; the group-commit writer that appends
//! most entries is `crate::pipeline::writer`, and a write that must commit
//! with its entry appends it in its own transaction with
//! [`chain::append_in`].

pub mod chain;
pub mod entry;
pub mod error;
pub mod open;
pub mod rotate;
pub mod signer;
pub mod tree;
pub mod witnesses;

pub use chain::{Appended, append_in, checkpoint_now, read_all};
pub use entry::NewEntry;
pub use error::{AuditError, OpenError};
pub use open::open;
pub use signer::{AuditSigner, KEY_FILE};
