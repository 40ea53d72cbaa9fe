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
//! Before, nothing deleted any of them, so a client asking for challenges
//! grew the table without end, and so did every login and every code.
//! (Claimed key packages are deleted by the claim itself.)

use std::time::Duration;

use crate::db::{Database, enrollment_code, events_ticket, login_challenge, session, welcome};

/// How long an expired challenge, code or session is kept.
pub const KEPT_FOR: Duration = Duration::from_secs(10 * 60);
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
}

impl Rows {
    const ALL: [Self; 5] = [
        Self::Challenges,
        Self::Tickets,
        Self::Sessions,
        Self::Codes,
        Self::Welcomes,
    ];

    /// Deletes a batch of these rows that are done with at `now_ms`.
    async fn delete_batch(self, database: &Database, now_ms: i64) -> Result<u64, sqlx::Error> {
        let kept_ms = i64::try_from(KEPT_FOR.as_millis()).unwrap_or(i64::MAX);
        let kept_before = now_ms.saturating_sub(kept_ms);
        let pool = database.pool();
        match self {
            Self::Challenges => login_challenge::delete_expired(pool, kept_before, BATCH).await,
            Self::Tickets => events_ticket::delete_expired(pool, now_ms, BATCH).await,
            Self::Sessions => session::delete_expired(pool, kept_before, BATCH).await,
            Self::Codes => enrollment_code::delete_expired(pool, kept_before, BATCH).await,
            Self::Welcomes => welcome::delete_undeliverable(pool, BATCH).await,
        }
    }
}

/// Deletes what is done with at `now_ms` (see the module), a batch at a
/// time for at most [`PASS_BUDGET`] in all; returns how many rows.
pub async fn sweep_once(database: &Database, now_ms: i64) -> Result<u64, sqlx::Error> {
    let started = std::time::Instant::now();
    let full = u64::try_from(BATCH).unwrap_or(0);
    let mut deleted = 0;
    for rows in Rows::ALL {
        while started.elapsed() < PASS_BUDGET {
            let swept = rows.delete_batch(database, now_ms).await?;
            deleted += swept;
            if swept < full {
                break;
            }
        }
    }
    Ok(deleted)
}

/// Sweeps every `every` until aborted.
pub fn start(database: Database, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match sweep_once(&database, crate::clock::now_ms()).await {
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
