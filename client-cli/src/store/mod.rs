//! The profile's local store: the device's private key, its enrollment and
//! session, and later its MLS state, in one file encrypted at rest.
//!
//! The key is derived from the user's passphrase with argon2id (19 MiB, two
//! passes: OWASP's recommendation) and a random salt; the contents are
//! sealed with ChaCha20-Poly1305 (ring) under a random nonce, freshly drawn
//! at every save. The file and its profile directory are readable by their
//! owner only (0600 and 0700). A wrong passphrase fails the AEAD check.
//!
//! Commands on one profile take turns: each holds an exclusive lock on the
//! profile ([`ProfileLock`], an OS file lock on `store.lock`) while it reads
//! and writes the store, and reads the store only once it holds the lock.
//! Without it, `watch` saving the MLS state it loaded at start undid what a
//! `send` beside it had saved, and the next message reused a spent secret
//! that the recipients could not decrypt.
//!
//! `contents` holds what the store keeps (the device's keys, its session,
//! its threads), `profile` the profile's directory: the encrypted file,
//! its lock and the note on its server.

mod contents;
mod profile;

pub use contents::{
    ForwardOf, LeftThread, LifespanChange, MemberChange, MlsValue, StoreContents, StoredMessage,
    StoredSession, ThreadState,
};
pub use profile::{MIN_PASSPHRASE_CHARS, Profile, ProfileLock, ServerNote, StoreError};
