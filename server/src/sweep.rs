//! Sweeps of rows that have served their purpose, on a schedule, a bounded
//! number per pass so that none holds the database for long (a thousand
//! per statement, for up to 5 s a pass, every minute by default):
//! - login challenges and enrollment codes, kept for [`KEPT_FOR`] after
//!   they expire (so that a late login or enrollment still hears
//!   "expired" rather than "unknown");
//! - sessions, [`KEPT_FOR`] after their lifetime ends (ended early or
//!   not: a token never outlives its session's lifetime, so no request
//!   can need the row after it);
//! - live-events tickets once expired (an unused ticket says nothing
//!   after its 30 s);
//! - welcomes that can never be delivered, to a thread whose membership
//!   ended for their device (it left, was deactivated or removed; a
//!   removal by commit withdraws them at once, and an acknowledgement
//!   deletes one).
//!
//! - attachments nothing will ever read: uploads that did not finish
//!   within [`UNFINISHED_FOR`] (the server stopped mid-upload; an upload
//!   cut short while it runs deletes its own), and finished ones no
//!   message carried within [`UNSENT_FOR`].
//!
//! Before, nothing deleted any of them, so a client asking for challenges
//! grew the table without end, and so did every login and every code.
//! (Claimed key packages are deleted by the claim itself.)
//!
//! Then it purges thread content (`purge`): messages older than their
//! thread's lifespan or the organisation's retention policy, and
//! recalled messages a legal hold kept, once none does; each purge is in
//! the audit log under the system actor.

use std::time::Duration;

use crate::db::{
    Database, attachment, enrollment_code, events_ticket, login_challenge, session, welcome,
};
use crate::pipeline::writer::AuditLog;

pub mod purge;

/// How long an expired challenge, code or session is kept.
pub const KEPT_FOR: Duration = Duration::from_secs(10 * 60);
/// How long an upload may go unfinished before it is taken as abandoned
/// (longer than an upload may take, see `crate::http`).
pub const UNFINISHED_FOR: Duration = Duration::from_secs(60 * 60);
/// How long a finished upload may wait for the message that carries it.
pub const UNSENT_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// Attachments erased per batch.
const ERASED_PER_BATCH: i64 = 10;
/// Rows deleted per statement.
const BATCH: i64 = 1000;
/// How long one pass may go on deleting, at most (it stops sooner when it
/// finds less than a batch of each).
const PASS_BUDGET: Duration = Duration::from_secs(5);

/// What a pass deletes, in this order.
#[derive(Debug, Clone, Copy)]
enum Rows {
    Challenges,
    Tickets,
    Sessions,
    Codes,
    Welcomes,
    Uploads,
}

/// `duration` before `now_ms`.
fn before(now_ms: i64, duration: Duration) -> i64 {
    now_ms.saturating_sub(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

impl Rows {
    const ALL: [Self; 6] = [
        Self::Challenges,
        Self::Tickets,
        Self::Sessions,
        Self::Codes,
        Self::Welcomes,
        Self::Uploads,
    ];

    /// Deletes a batch of these rows that are done with at `now_ms`.
    async fn delete_batch(self, database: &Database, now_ms: i64) -> Result<u64, sqlx::Error> {
        let kept_before = before(now_ms, KEPT_FOR);
        let pool = database.pool();
        match self {
            Self::Challenges => login_challenge::delete_expired(pool, kept_before, BATCH).await,
            Self::Tickets => events_ticket::delete_expired(pool, now_ms, BATCH).await,
            Self::Sessions => session::delete_expired(pool, kept_before, BATCH).await,
            Self::Codes => enrollment_code::delete_expired(pool, kept_before, BATCH).await,
            Self::Welcomes => welcome::delete_undeliverable(pool, BATCH).await,
            Self::Uploads => {
                // Abandoned uploads, and what a recall or purge marked
                // deleted and could not erase (the server stopped, say):
                // a few at a time, each a few chunks per statement.
                attachment::mark_abandoned(
                    pool,
                    before(now_ms, UNFINISHED_FOR),
                    before(now_ms, UNSENT_FOR),
                    now_ms,
                )
                .await?;
                let marked = attachment::marked(pool, ERASED_PER_BATCH).await?;
                let erased = attachment::erase(pool, &marked).await?;
                // A full batch only if it found a full batch.
                Ok(if marked.len() == ERASED_PER_BATCH as usize {
                    u64::try_from(BATCH).unwrap_or(0)
                } else {
                    erased
                })
            }
        }
    }
}

/// Deletes what is done with at `now_ms` (see the module), a batch at a
/// time for at most [`PASS_BUDGET`] in all, then purges what is due;
/// returns how many rows it deleted or purged.
pub async fn sweep_once(
    database: &Database,
    audit: &AuditLog,
    now_ms: i64,
    progress: &mut purge::Progress,
) -> Result<u64, crate::audit::AuditError> {
    let started = std::time::Instant::now();
    let full = u64::try_from(BATCH).unwrap_or(0);
    let mut deleted = 0;
    // Whether content (attachments) went, which must leave the
    // database's files too; expired sessions and the like need not.
    let mut erased_content = false;
    for rows in Rows::ALL {
        while started.elapsed() < PASS_BUDGET {
            let swept = rows.delete_batch(database, now_ms).await?;
            deleted += swept;
            erased_content |= matches!(rows, Rows::Uploads) && swept > 0;
            if swept < full {
                break;
            }
        }
    }
    let purged = purge::purge(database, audit, now_ms, started + PASS_BUDGET, progress).await?;
    if purged > 0 || erased_content {
        database.erase_deleted();
    }
    database.vacuum_if_erased().await?;
    Ok(deleted + purged)
}

/// Sweeps every `every` until aborted.
pub fn start(database: Database, audit: AuditLog, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        let mut progress = purge::Progress::default();
        loop {
            ticks.tick().await;
            match sweep_once(&database, &audit, crate::clock::now_ms(), &mut progress).await {
                Ok(0) => {}
                Ok(deleted) => {
                    tracing::debug!(deleted, "swept rows done with")
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot sweep rows done with")
                }
            }
        }
    })
}
