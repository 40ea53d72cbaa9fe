//! `curbside threads`, `thread new|add|remove|subject|leave|show`, `send`,
//! `download`, `lifespan`, `read`, `watch` and `safety-number`: MLS threads as a clinician uses them.
//!
//! Every command first catches up: it joins the threads it was welcomed
//! to (replacing the state of a thread it was removed from and is now
//! added back to), processes what is new in the thread it touches, and
//! tops up its key packages. Decrypted messages are kept in the profile's
//! encrypted store (MLS keys are used once, so a message cannot be
//! decrypted twice), as is OpenMLS's state, so every command can run as its
//! own process.
//!
//! A thread this device is no longer in is marked as left, with who ended
//! the membership, when and how; it never stops other threads or `watch`,
//! and every command that touches it says so in those words.
//!
//! The commands are grouped by what they do to a thread: `membership`
//! starts threads and changes their members, `send` writes to them,
//! `files` sends and saves attachments and sets lifespans, `read`
//! shows them, `watch` follows them as they change, and `safety_number`
//! compares keys with a colleague, `urgent` acknowledges urgent messages,
//! and `heal` commits the changes of members the server asks for (a
//! colleague's new device, an escalation's backup, a removed device).
//! Under them, `sync` reads a thread's log
//! into the profile, `naming` finds the thread a person means and puts how
//! it ended into words, and `device` loads the device's MLS state and
//! catches up with the server.

mod device;
mod files;
mod heal;
mod membership;
mod naming;
mod read;
mod safety_number;
mod send;
mod sync;
mod urgent;
mod watch;

pub use files::{download, send_with_files, set_lifespan};
pub use heal::heal;
pub use membership::{change_members, leave, new_thread};
pub use read::{list, read, show};
pub use safety_number::safety_number;
pub use send::{message_text, recall, send, set_thread_subject};
pub use urgent::acknowledge;
pub use watch::watch;
