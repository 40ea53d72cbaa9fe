//! Purging thread content that is due, and nothing else:
//! - a message sent while its thread had a lifespan, once older than that
//!   lifespan (a lifespan applies from its `lifespan` entry on, never to
//!   what was written before it);
//! - every message older than the retention policy's maximum age;
//! - a recalled message a legal hold kept, once no hold covers it.
//!
//! Nothing a current hold covers is touched. A message's row stays (the
//! log has no gaps) with its body emptied and `purged_at_ms` set; the
//! attachments it carries are marked deleted with it and erased a few
//! chunks at a time after (`db::attachment::erase`).
//!
//! Each purge is one short transaction with its audit entry (action
//! `thread.purge`, no actor: the system). It first takes the row that
//! placing or lifting a hold takes (`retention::serialize_with_holds`),
//! writes, then checks for a hold: a hold is either seen or placed after.
//! Each thread remembers how far the sweep has passed over its entries for
//! each rule, so a pass reads only entries it has not passed over; within
//! a lifespan, or under the retention policy, the entries due are the
//! oldest (the log is in the order the server accepted its entries), so
//! reading stops at the first that is not. A pass stops at its deadline
//! and the next one resumes with the thread it was at.

use std::time::Instant;

use curbside_proto::audit::Outcome;

use crate::audit::{AuditError, NewEntry};
use crate::db::retention::{self, Candidate, Due};
use crate::db::{Database, attachment, clinical};
use crate::pipeline::writer::AuditLog;

/// Threads read per query.
const THREADS_PER_PAGE: i64 = 100;
/// Entries read, and at most purged, per transaction.
const ENTRIES_PER_PURGE: i64 = 500;
/// Held recalls erased per pass.
const ERASURES_PER_PASS: i64 = 100;

/// Where the next pass resumes (the thread after which it reads).
#[derive(Debug, Default)]
pub struct Progress {
    after: String,
}

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

/// What a pass shares.
struct Pass<'a> {
    database: &'a Database,
    audit: &'a AuditLog,
    now_ms: i64,
    deadline: Instant,
}

/// How a purge of one thread ended.
enum Ended {
    /// Everything due was purged.
    Done,
    /// The pass's time ran out: the next pass goes on.
    Stopped,
    /// A hold came meanwhile: nothing more of the thread is purged.
    Held,
}

impl Pass<'_> {
    fn out_of_time(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Erases the messages of `thread_id` at `seqs` and marks their
    /// attachments deleted, with the audit entry, in one transaction,
    /// then erases the attachments; returns how many messages and
    /// attachments, or `None` if a hold now covers the thread (then
    /// nothing changed).
    async fn purge(
        &self,
        thread_id: &str,
        seqs: &[i64],
        reason: &str,
        through: i64,
    ) -> Result<Option<u64>, AuditError> {
        if seqs.is_empty() {
            return Ok(Some(0));
        }
        let mut tx = self.database.pool().begin().await?;
        retention::serialize_with_holds(&mut *tx).await?;
        let erased = retention::purge_messages(&mut *tx, thread_id, seqs, self.now_ms).await?;
        if retention::is_held(&mut *tx, thread_id).await? {
            return Ok(None);
        }
        let deleted = self
            .finish(tx, thread_id, seqs, reason, |attachments| {
                format!("messages={erased} attachments={attachments} through_seq={through}")
            })
            .await?;
        Ok(Some(erased + deleted))
    }

    /// Ends a purge's transaction `tx`, whose messages of `thread_id` at
    /// `seqs` are erased: marks their attachments deleted, appends the
    /// audit entry (its evidence given the number of attachments), commits,
    /// then erases the attachments; returns how many.
    async fn finish(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        thread_id: &str,
        seqs: &[i64],
        reason: &str,
        evidence: impl FnOnce(usize) -> String,
    ) -> Result<u64, AuditError> {
        let attachments = attachment::of_messages(&mut *tx, thread_id, seqs).await?;
        attachment::mark_deleted(&mut *tx, &attachments, self.now_ms).await?;
        // A purged urgent message escalates no further.
        clinical::withdraw(&mut tx, thread_id, seqs).await?;
        let evidence = evidence(attachments.len());
        self.audit
            .append_in(&mut tx, &[entry(thread_id, reason, evidence)])
            .await?;
        tx.commit().await?;
        attachment::erase(self.database.pool(), &attachments).await?;
        Ok(u64::try_from(attachments.len()).unwrap_or(0))
    }

    /// Reads `thread_id`'s entries after `after` and before `before`, and
    /// purges those with content made before `cutoff_ms` (the oldest),
    /// a page at a time; returns how many it purged, how it ended and
    /// the first entry that is not due, if it met one.
    async fn purge_range(
        &self,
        thread_id: &str,
        mut after: i64,
        before: i64,
        cutoff_ms: i64,
        reason: &str,
    ) -> Result<(u64, Ended, Option<i64>), AuditError> {
        let mut purged = 0;
        // A look at the first entry first: most threads have nothing due.
        let mut limit = 1;
        loop {
            if self.out_of_time() {
                return Ok((purged, Ended::Stopped, None));
            }
            let page =
                retention::entries(self.database.pool(), thread_id, after, before, limit).await?;
            let due: Vec<&Due> = page
                .iter()
                .take_while(|entry| entry.created_at_ms < cutoff_ms)
                .collect();
            if limit == 1 && !due.is_empty() {
                // Something is due: read it with what follows, a page at
                // a time.
                limit = ENTRIES_PER_PURGE;
                continue;
            }
            let not_due = page.get(due.len()).map(|entry| entry.seq);
            if let Some(last) = due.last().map(|entry| entry.seq) {
                let seqs: Vec<i64> = due
                    .iter()
                    .filter(|entry| entry.has_content == 1)
                    .map(|entry| entry.seq)
                    .collect();
                match self.purge(thread_id, &seqs, reason, last).await? {
                    Some(count) => purged += count,
                    None => return Ok((purged, Ended::Held, None)),
                }
                after = last;
            }
            let full = page.len() == usize::try_from(limit).unwrap_or(0);
            if not_due.is_some() || !full {
                return Ok((purged, Ended::Done, not_due));
            }
            limit = ENTRIES_PER_PURGE;
        }
    }

    /// Purges what `thread`'s lifespans made due.
    async fn lifespans(&self, thread: &Candidate) -> Result<(u64, Ended), AuditError> {
        let Some(since) = thread.lifespan_since_seq else {
            return Ok((0, Ended::Done));
        };
        let start = thread.lifespan_through_seq.max(since);
        if start >= thread.last_seq {
            return Ok((0, Ended::Done));
        }
        let changes = retention::lifespans(self.database.pool(), &thread.thread_id).await?;
        let mut purged = 0;
        // How far every lifespan's entries are done with.
        let mut through = thread.last_seq;
        for (n, change) in changes.iter().enumerate() {
            let until = changes.get(n + 1).map_or(i64::MAX, |next| next.seq);
            let Some(lifespan_ms) = change.lifespan_ms else {
                continue;
            };
            if until <= start {
                continue;
            }
            let cutoff = self.now_ms.saturating_sub(lifespan_ms);
            let (count, ended, not_due) = self
                .purge_range(
                    &thread.thread_id,
                    start.max(change.seq),
                    until.min(thread.last_seq.saturating_add(1)),
                    cutoff,
                    "lifespan",
                )
                .await?;
            purged += count;
            match ended {
                Ended::Done => {}
                Ended::Stopped | Ended::Held => return Ok((purged, ended)),
            }
            if let Some(seq) = not_due {
                through = through.min(seq - 1);
            }
        }
        retention::set_through(self.database.pool(), &thread.thread_id, false, through).await?;
        Ok((purged, Ended::Done))
    }

    /// Purges what the retention policy (content made before `cutoff_ms`)
    /// made due in `thread`.
    async fn retention(
        &self,
        thread: &Candidate,
        cutoff_ms: i64,
    ) -> Result<(u64, Ended), AuditError> {
        let (purged, ended, not_due) = self
            .purge_range(
                &thread.thread_id,
                thread.retention_through_seq,
                thread.last_seq.saturating_add(1),
                cutoff_ms,
                "retention",
            )
            .await?;
        if let Ended::Done = ended {
            let through = not_due.map_or(thread.last_seq, |seq| seq - 1);
            retention::set_through(self.database.pool(), &thread.thread_id, true, through).await?;
        }
        Ok((purged, ended))
    }

    /// Erases recalled messages (and their attachments) that a legal hold
    /// kept and none covers now; returns how many messages and
    /// attachments.
    async fn erase_released_recalls(&self) -> Result<u64, AuditError> {
        let due = retention::erasures_due(self.database.pool(), ERASURES_PER_PASS).await?;
        let mut erased = 0;
        for recall in due {
            if self.out_of_time() {
                break;
            }
            let mut tx = self.database.pool().begin().await?;
            retention::serialize_with_holds(&mut *tx).await?;
            retention::erase_recalled_now(&mut tx, &recall.thread_id, recall.seq).await?;
            if retention::is_held(&mut *tx, &recall.thread_id).await? {
                continue;
            }
            let seq = recall.seq;
            let deleted = self
                .finish(tx, &recall.thread_id, &[seq], "recall", |attachments| {
                    format!("recalled_seq={seq} attachments={attachments}")
                })
                .await?;
            erased += 1 + deleted;
        }
        Ok(erased)
    }
}

/// Purges what is due at `now_ms`, until `deadline`, going on from
/// `progress`; returns how many messages and attachments it erased.
pub(super) async fn purge(
    database: &Database,
    audit: &AuditLog,
    now_ms: i64,
    deadline: Instant,
    progress: &mut Progress,
) -> Result<u64, AuditError> {
    let pass = Pass {
        database,
        audit,
        now_ms,
        deadline,
    };
    let mut purged = pass.erase_released_recalls().await?;
    let policy = retention::policy(database.pool()).await?;
    let retention_cutoff = policy.max_age_ms.map(|age| now_ms.saturating_sub(age));
    loop {
        let page = retention::candidates(
            database.pool(),
            retention_cutoff,
            &progress.after,
            THREADS_PER_PAGE,
        )
        .await?;
        for thread in &page {
            let (count, mut ended) = pass.lifespans(thread).await?;
            purged += count;
            if let (Ended::Done, Some(cutoff)) = (&ended, retention_cutoff) {
                let (count, then) = pass.retention(thread, cutoff).await?;
                purged += count;
                ended = then;
            }
            match ended {
                Ended::Stopped => return Ok(purged),
                // Held: the next pass's list leaves it out.
                Ended::Done | Ended::Held => progress.after.clone_from(&thread.thread_id),
            }
        }
        if page.len() < usize::try_from(THREADS_PER_PAGE).unwrap_or(0) {
            // Round the whole list: the next pass starts from the top.
            progress.after.clear();
            return Ok(purged);
        }
        if pass.out_of_time() {
            return Ok(purged);
        }
    }
}
