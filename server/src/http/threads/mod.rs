//! Threads: the MLS delivery service. The server orders each thread's log,
//! keeps its members, and queues welcomes; it never sees a key or a
//! plaintext (every MLS object is opaque here).
//!
//! A commit is accepted only for the thread's current epoch: one
//! compare-and-swap `UPDATE` on the thread row moves the epoch and takes the
//! next sequence number, so of two commits made at the same epoch exactly
//! one wins and the other gets 409. The same statement checks that the
//! sender is still a member, so a device removed a moment ago cannot slip a
//! message in. Anyone who is not a current member gets 404, as if the
//! thread did not exist, and the attempt is audited as denied.
//!
//! SQLite cannot turn a reading transaction into a writing one while
//! another connection writes, so every transaction here writes first.
//!
//! The routes are split by what they do to a thread:
//! - `lifecycle`: making a thread, listing a device's threads, a thread's
//!   detail, and leaving it;
//! - `append`: the log's writes, commits, messages and recalls, and why
//!   one was refused;
//! - `attachments`: uploading and downloading encrypted files;
//! - `lifespan`: disappearing messages;
//! - `urgent`: urgent messages recorded for escalation, and their
//!   acknowledgements;
//! - `reading`: a member's pages of the log, and its delivery and read
//!   receipts;
//! - `welcomes`: adding a device with its MLS Welcome queued, and the
//!   device's list and acknowledgement of its welcomes;
//! - `checks`: what they all check first: sizes, numbers, the write limit,
//!   and that the caller is a member.

mod append;
mod attachments;
mod checks;
mod lifecycle;
mod lifespan;
mod reading;
mod urgent;
mod welcomes;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;

/// `/v1/threads/...` and `/v1/welcomes/...`, for callers who have accepted
/// the current messaging policy.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(lifecycle::create, lifecycle::list))
        .routes(routes!(lifecycle::detail))
        .routes(routes!(append::commit))
        .routes(routes!(append::message))
        .routes(routes!(append::recall))
        .routes(routes!(urgent::ack))
        .routes(routes!(attachments::upload))
        .routes(routes!(attachments::download))
        .routes(routes!(lifespan::set))
        .routes(routes!(reading::entries))
        .routes(routes!(reading::delivered))
        .routes(routes!(reading::read))
        .routes(routes!(lifecycle::leave))
        .routes(routes!(welcomes::welcomes))
        .routes(routes!(welcomes::ack_welcome))
        // Threads wait until the caller has accepted the messaging policy.
        .route_layer(axum::Extension(super::extract::PolicyGate))
}
