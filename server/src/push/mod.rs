//! Live delivery: each new thread entry, welcome and receipt is pushed to
//! every connected member device at once.
//!
//! Application messages, the bulk of the traffic, are pushed by the write
//! pipeline's writer (`crate::pipeline::writer`), through the
//! [`Pusher`](crate::pipeline::writer::Pusher) that [`registry::Events`]
//! implements: inside the transaction that appends a message it finds
//! which of the thread's member devices are connected here and appends
//! the audit entry of each push with the message, so that a push waits for
//! one commit, not two; once the transaction commits it hands the entry
//! to those connections.
//!
//! Everything else committed (commits, welcomes, receipts) is announced
//! by its handler with a small [`Notice`](notice::Notice) (ids only), as the writer
//! announces each message too. A notice goes straight to this process's
//! dispatcher and, on PostgreSQL, out with `NOTIFY` (a batch per
//! `NOTIFY`, marked with this process's origin) to the other replicas,
//! which hear it through a `LISTEN` connection. The dispatcher reads what
//! the notice names, finds which of the devices connected here may see it
//! (current members, at the time of the event) and were not pushed it
//! already, writes the audit entry of each push, and then hands the event
//! to the device's connections. Nothing depends on this: a device that was
//! away, or missed a push, catches up by sequence number.
//!
//! Devices that are not connected and registered a push token are woken
//! through the configured push gateway ([`gateway`]) with a notice of ids
//! only.
//!
//! The module's parts, each using only those after it: [`dispatch`] (the
//! dispatcher and its pushes), [`gateway`] (the push gateway), [`relay`]
//! (notices to and from the other replicas), [`registry`] (the
//! connections here), [`notice`] (what travels between them).

pub mod dispatch;
pub mod gateway;
pub mod notice;
pub mod registry;
pub mod relay;

pub use dispatch::start;
pub use notice::{Frame, Notice, QUEUE, Subscriber};
pub use registry::{Events, Mailboxes};
