//! Application messages, appended to their threads' logs a batch at a time
//! inside the audit writer's transaction (group commit; see
//! [`crate::audit`]).
//!
//! A batch costs a handful of statements whatever its size, because a
//! statement's round trip, not its work, is what a message used to pay for
//! (about 0.3 ms to PostgreSQL on this kind of machine, and a thread
//! hand-off to SQLite's worker): lock and read the batch's threads, read
//! which senders are members, then move every thread's last sequence
//! number in one `UPDATE` and insert the entries with multi-row `INSERT`s.
//! A message is refused, changing nothing, unless its thread is at the
//! message's epoch and its sender's device is a current member (an enrolled
//! device of an active user), exactly the conditions of a commit's
//! compare-and-swap.

use std::collections::{HashMap, HashSet};

use sqlx::{Any, Transaction};

/// An application message to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The thread (32 hex digits, checked before it gets here).
    pub thread_id: String,
    /// The epoch it was encrypted in.
    pub epoch: i64,
    /// The sender.
    pub user_id: String,
    /// The sender's device.
    pub device_id: String,
    /// The MLS message.
    pub ciphertext: Vec<u8>,
}

/// Rows per multi-row `INSERT`.
const ROWS_PER_INSERT: usize = 64;
/// Parameters per entry row.
const COLUMNS: usize = 7;

fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Appends `messages` in `tx`, in order; returns each one's sequence
/// number, or `None` if it was refused. This is the transaction's first
/// statement on SQLite (a write), and on PostgreSQL it locks the threads'
/// rows in id order, so writers in several processes cannot deadlock.
pub async fn append(
    tx: &mut Transaction<'_, Any>,
    postgres: bool,
    messages: &[&NewMessage],
    now_ms: i64,
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let mut threads: Vec<&str> = messages.iter().map(|m| m.thread_id.as_str()).collect();
    threads.sort_unstable();
    threads.dedup();

    // Lock and read the threads.
    let list = placeholders(1, threads.len());
    let sql = if postgres {
        format!(
            "SELECT thread_id, epoch, last_seq FROM thread WHERE thread_id IN ({list}) \
             ORDER BY thread_id FOR UPDATE"
        )
    } else {
        // A write first: SQLite's write lock, taken before any read.
        format!(
            "UPDATE thread SET last_seq = last_seq WHERE thread_id IN ({list}) \
             RETURNING thread_id, epoch, last_seq"
        )
    };
    let mut query = sqlx::query_as::<_, (String, i64, i64)>(&sql);
    for thread in &threads {
        query = query.bind(*thread);
    }
    let mut state: HashMap<String, (i64, i64)> = query
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(thread, epoch, last_seq)| (thread, (epoch, last_seq)))
        .collect();

    // Which senders are current members.
    let mut devices: Vec<&str> = messages.iter().map(|m| m.device_id.as_str()).collect();
    devices.sort_unstable();
    devices.dedup();
    let sql = format!(
        "SELECT m.thread_id, m.device_id FROM thread_member m \
         JOIN device d ON d.device_id = m.device_id JOIN app_user u ON u.user_id = m.user_id \
         WHERE m.thread_id IN ({}) AND m.device_id IN ({}) AND m.removed_seq IS NULL \
           AND d.removed_at_ms IS NULL AND u.status = 'active'",
        placeholders(1, threads.len()),
        placeholders(threads.len() + 1, devices.len())
    );
    let mut query = sqlx::query_as::<_, (String, String)>(&sql);
    for value in threads.iter().chain(&devices) {
        query = query.bind(*value);
    }
    let members: HashSet<(String, String)> =
        query.fetch_all(&mut **tx).await?.into_iter().collect();

    // Number the ones that may be appended, in order.
    let mut seqs = Vec::with_capacity(messages.len());
    let mut moved: Vec<&str> = Vec::new();
    for message in messages {
        let member = members.contains(&(message.thread_id.clone(), message.device_id.clone()));
        let seq = match state.get_mut(&message.thread_id) {
            Some((epoch, last_seq)) if member && *epoch == message.epoch => {
                *last_seq += 1;
                if !moved.contains(&message.thread_id.as_str()) {
                    moved.push(&message.thread_id);
                }
                Some(*last_seq)
            }
            _ => None,
        };
        seqs.push(seq);
    }
    if moved.is_empty() {
        return Ok(seqs);
    }

    // Move each thread on, in one statement.
    let mut cases = String::new();
    for n in 0..moved.len() {
        cases.push_str(&format!(" WHEN ${} THEN ${}", 2 + n * 2, 3 + n * 2));
    }
    let sql = format!(
        "UPDATE thread SET last_seq = CASE thread_id{cases} ELSE last_seq END, \
         last_activity_ms = $1 WHERE thread_id IN ({})",
        placeholders(2 + moved.len() * 2, moved.len())
    );
    let mut query = sqlx::query(&sql).bind(now_ms);
    for thread in &moved {
        let last_seq = state.get(*thread).map_or(0, |(_, last_seq)| *last_seq);
        query = query.bind(*thread).bind(last_seq);
    }
    for thread in &moved {
        query = query.bind(*thread);
    }
    query.execute(&mut **tx).await?;

    // And insert the entries.
    let rows: Vec<(&NewMessage, i64)> = messages
        .iter()
        .zip(&seqs)
        .filter_map(|(message, seq)| seq.map(|seq| (*message, seq)))
        .collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|row| {
                let n = row * COLUMNS;
                format!(
                    "(${}, ${}, 'application', ${}, ${}, ${}, ${}, ${}, NULL, NULL)",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6,
                    n + 7
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO thread_entry (thread_id, seq, kind, epoch, sender_user, sender_device, \
             created_at_ms, body, added, removed) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (message, seq) in chunk {
            query = query
                .bind(&message.thread_id)
                .bind(*seq)
                .bind(message.epoch)
                .bind(&message.user_id)
                .bind(&message.device_id)
                .bind(now_ms)
                .bind(&message.ciphertext);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(seqs)
}
