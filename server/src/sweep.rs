//! Sweeps of rows that have served their purpose, on a schedule, a bounded
//! number per pass so that none holds the database for long.
//!
//! Today: login challenges, kept for [`CHALLENGE_KEPT_FOR`] after they
//! expire (so that a late login still hears "expired" rather than
//! "unknown"), and live-events tickets once expired (an unused ticket
//! says nothing after its 30 s), deleted a thousand per statement, for up
//! to 5 s a minute. Nothing else was ever deleted, so a client asking for
//! challenges grew the table without end.

use std::time::Duration;

use crate::db::{Database, events_ticket, login_challenge};

/// How long an expired login challenge is kept.
pub const CHALLENGE_KEPT_FOR: Duration = Duration::from_secs(10 * 60);
/// Rows deleted per statement.
const BATCH: i64 = 1000;
/// How long one pass may go on deleting, at most (it stops sooner when it
/// finds less than a batch).
const PASS_BUDGET: Duration = Duration::from_secs(5);

/// Deletes login challenges expired before `now_ms` less
/// [`CHALLENGE_KEPT_FOR`] and live-events tickets expired before `now_ms`,
/// a batch at a time for at most [`PASS_BUDGET`] in all; returns how many.
pub async fn sweep_once(database: &Database, now_ms: i64) -> Result<u64, sqlx::Error> {
    let kept_ms = i64::try_from(CHALLENGE_KEPT_FOR.as_millis()).unwrap_or(i64::MAX);
    let before = now_ms.saturating_sub(kept_ms);
    let started = std::time::Instant::now();
    let full = u64::try_from(BATCH).unwrap_or(0);
    let mut deleted = 0;
    while started.elapsed() < PASS_BUDGET {
        let swept = login_challenge::delete_expired(database.pool(), before, BATCH).await?;
        deleted += swept;
        if swept < full {
            break;
        }
    }
    while started.elapsed() < PASS_BUDGET {
        let swept = events_ticket::delete_expired(database.pool(), now_ms, BATCH).await?;
        deleted += swept;
        if swept < full {
            break;
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
                    tracing::debug!(deleted, "swept expired login challenges and tickets")
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot sweep expired login challenges and tickets")
                }
            }
        }
    })
}
