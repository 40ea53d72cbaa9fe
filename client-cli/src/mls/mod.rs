//! The device's side of MLS (RFC 9420, via OpenMLS): key packages, groups
//! (one per thread), commits, welcomes and application messages.
//!
//! The ciphersuite is `MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`. A
//! member's credential is a basic credential naming `USER_ID:DEVICE_ID`,
//! and its signature key is the device's own Ed25519 key (the one it
//! enrolled with), so a credential can be checked against the server's
//! directory. OpenMLS keeps its state in a key-value store, which
//! [`Device::state`] hands back for the profile's encrypted store, so each
//! command can run as a separate process.
//!
//! [`Device`] is in `device` (its keys, its store and what it reads of a
//! group), with the changes it makes to groups in `commit` and what it
//! makes of other members' log entries in `process`; `identity` reads a
//! member's credential and `error` says why a step failed.

mod commit;
mod device;
mod error;
mod identity;
mod process;

pub use commit::{Joined, PendingCommit};
pub use device::{CIPHERSUITE, Device, Snapshot};
pub use error::MlsError;
pub use identity::Identity;
pub use process::Processed;
