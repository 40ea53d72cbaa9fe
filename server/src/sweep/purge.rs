//! Purging thread content that is due: messages older than their thread's
//! lifespan or the retention policy's maximum age (whichever is shorter),
//! with the attachments they carry, and recalled messages a legal hold
//! kept once no hold covers them. Nothing a current hold covers is
//! touched. A message's row stays (the log has no gaps) with its body
//! emptied; attachments' rows and chunks are deleted.
//!
//! Each thread's purge is one transaction with its audit entry (action
//! `thread.purge`, no actor: the system), so a purge is on the record
//! exactly when it happened. Each thread remembers how far it was purged
//! (`purged_through_seq`), so a pass reads only entries it has not passed
//! over; a thread under a hold is skipped whole, and purged from where it
//! was when the hold is lifted.

use std::time::Instant;

use curbside_proto::audit::Outcome;

use crate::audit::{AuditError, NewEntry};
use crate::db::{Database, attachment, retention};
use crate::pipeline::writer::AuditLog;

/// Threads read per query.
const THREADS_PER_PAGE: i64 = 100;
/// Entries of one thread purged per transaction.
const ENTRIES_PER_PURGE: i64 = 500;
/// Held recalls erased per pass.
const ERASURES_PER_PASS: i64 = 100;

/// The purge's audit entry for `thread_id`, at the time it is written.
fn entry(thread_id: &str, reason: &str, evidence: String) -> NewEntry {
    NewEntry {
        time_ms: crate::clock::now_ms(),
        actor_user: None,
        actor_device: None,
        client_addr: None,
        request_id: "sweep".to_owned(),
        action: "thread.purge".to_owned(),
        resource_type: "thread".to_owned(),
        resource_id: Some(thread_id.to_owned()),
        outcome: Outcome::Allowed,
        reason: reason.to_owned(),
        evidence: Some(evidence),
    }
}

/// Purges what is due at `now_ms`, until `deadline`; returns how many
/// messages and attachments it erased.
pub(super) async fn purge(
    database: &Database,
    audit: &AuditLog,
    now_ms: i64,
    deadline: Instant,
) -> Result<u64, AuditError> {
    let pool = database.pool();
    let policy = retention::policy(pool).await?;
    let retention_cutoff = policy.max_age_ms.map(|age| now_ms.saturating_sub(age));
    let mut purged = 0;
    let mut after = String::new();
    'threads: loop {
        let page = retention::candidates(pool, retention_cutoff, &after, THREADS_PER_PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after.clone_from(&last.thread_id);
        for thread in &page {
            if Instant::now() >= deadline {
                break 'threads;
            }
            let lifespan_cutoff = thread.lifespan_ms.map(|ms| now_ms.saturating_sub(ms));
            // The later cutoff is the shorter age: it purges more.
            let (cutoff, reason) = match (lifespan_cutoff, retention_cutoff) {
                (Some(lifespan), Some(retention)) if retention > lifespan => {
                    (retention, "retention")
                }
                (Some(lifespan), _) => (lifespan, "lifespan"),
                (None, Some(retention)) => (retention, "retention"),
                (None, None) => continue,
            };
            purged += purge_thread(
                database,
                audit,
                &thread.thread_id,
                thread.purged_through_seq,
                cutoff,
                reason,
                now_ms,
            )
            .await?;
        }
        if page.len() < usize::try_from(THREADS_PER_PAGE).unwrap_or(0) {
            break;
        }
    }
    purged += erase_released_recalls(database, audit).await?;
    Ok(purged)
}

/// Purges the messages of `thread_id` after `after_seq` made before
/// `cutoff_ms`, a transaction at a time; returns how many messages and
/// attachments.
async fn purge_thread(
    database: &Database,
    audit: &AuditLog,
    thread_id: &str,
    mut after_seq: i64,
    cutoff_ms: i64,
    reason: &str,
    now_ms: i64,
) -> Result<u64, AuditError> {
    let mut purged = 0;
    loop {
        let due = retention::due(
            database.pool(),
            thread_id,
            after_seq,
            cutoff_ms,
            ENTRIES_PER_PURGE,
        )
        .await?;
        let Some(last) = due.last().map(|due| due.seq) else {
            return Ok(purged);
        };
        let messages: Vec<i64> = due
            .iter()
            .filter(|due| due.has_content == 1)
            .map(|due| due.seq)
            .collect();
        let mut tx = database.pool().begin().await?;
        // The writes first (SQLite cannot turn a reading transaction into
        // a writing one), then whether a hold came meanwhile.
        let erased = retention::purge_messages(&mut *tx, thread_id, &messages, now_ms).await?;
        retention::set_purged_through(&mut *tx, thread_id, last).await?;
        if retention::is_held(&mut *tx, thread_id).await? {
            return Ok(purged);
        }
        let attachments = attachment::of_messages(&mut *tx, thread_id, &messages).await?;
        let deleted = attachment::delete(&mut tx, &attachments).await?;
        if erased > 0 || deleted > 0 {
            let evidence = format!("messages={erased} attachments={deleted} through_seq={last}");
            audit
                .append_in(&mut tx, &[entry(thread_id, reason, evidence)])
                .await?;
        }
        tx.commit().await?;
        purged += erased + deleted;
        after_seq = last;
        if due.len() < usize::try_from(ENTRIES_PER_PURGE).unwrap_or(0) {
            return Ok(purged);
        }
    }
}

/// Erases recalled messages (and their attachments) that a legal hold
/// kept and none covers now; returns how many messages and attachments.
async fn erase_released_recalls(database: &Database, audit: &AuditLog) -> Result<u64, AuditError> {
    let due = retention::erasures_due(database.pool(), ERASURES_PER_PASS).await?;
    let mut erased = 0;
    for recall in due {
        let mut tx = database.pool().begin().await?;
        retention::erase_recalled_now(&mut tx, &recall.thread_id, recall.seq).await?;
        if retention::is_held(&mut *tx, &recall.thread_id).await? {
            continue;
        }
        let attachments =
            attachment::of_messages(&mut *tx, &recall.thread_id, &[recall.seq]).await?;
        let deleted = attachment::delete(&mut tx, &attachments).await?;
        let evidence = format!("recalled_seq={} attachments={deleted}", recall.seq);
        audit
            .append_in(&mut tx, &[entry(&recall.thread_id, "recall", evidence)])
            .await?;
        tx.commit().await?;
        erased += 1 + deleted;
    }
    Ok(erased)
}
