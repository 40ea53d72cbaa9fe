//! Application messages, appended to their threads' logs a batch at a time
//! inside the audit writer's transaction (group commit; see
//! [`crate::audit`]).
//!
//! A batch costs a fixed number of round trips whatever its size (two on
//! SQLite, see [`crate::db::batch`]): lock and read the batch's threads and
//! which senders are members; then move every thread's last sequence
//! number in one `UPDATE` and insert the entries with multi-row `INSERT`s.
//! A message is refused, changing nothing, unless its thread is at the
//! message's epoch and its sender's device is a current member (an enrolled
//! device of an active user), exactly the conditions of a commit's
//! compare-and-swap.

use std::collections::{HashMap, HashSet};

use sqlx::{Any, Row, Transaction};

use crate::db::batch::{self, Statement, Value, marks};

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

/// Appends `messages` in `tx`, in order; returns each one's sequence
/// number, or `None` if it was refused. Its first statement writes
/// (SQLite's write lock, taken before any read) or, on PostgreSQL, locks
/// the threads' rows in id order, so that writers in several processes
/// cannot deadlock.
pub async fn append(
    tx: &mut Transaction<'_, Any>,
    messages: &[&NewMessage],
    now_ms: i64,
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let mut threads: Vec<&str> = messages.iter().map(|m| m.thread_id.as_str()).collect();
    threads.sort_unstable();
    threads.dedup();
    let mut devices: Vec<&str> = messages.iter().map(|m| m.device_id.as_str()).collect();
    devices.sort_unstable();
    devices.dedup();

    // Lock and read the threads, and read which senders are members.
    let list = marks(threads.len());
    let mut lock = Statement::new(if batch::is_postgres(tx) {
        format!(
            "SELECT thread_id, epoch, last_seq FROM thread WHERE thread_id IN ({list}) \
             ORDER BY thread_id FOR UPDATE"
        )
    } else {
        format!(
            "UPDATE thread SET last_seq = last_seq WHERE thread_id IN ({list}) \
             RETURNING thread_id, epoch, last_seq"
        )
    });
    let mut members = Statement::new(format!(
        "SELECT m.thread_id, m.device_id FROM thread_member m \
         JOIN device d ON d.device_id = m.device_id JOIN app_user u ON u.user_id = m.user_id \
         WHERE m.thread_id IN ({list}) AND m.device_id IN ({}) AND m.removed_seq IS NULL \
           AND d.removed_at_ms IS NULL AND u.status = 'active'",
        marks(devices.len())
    ));
    for thread in &threads {
        lock.bind(Value::Text(thread));
        members.bind(Value::Text(thread));
    }
    for device in &devices {
        members.bind(Value::Text(device));
    }
    let mut state: HashMap<String, (i64, i64)> = HashMap::new();
    let mut member: HashSet<(String, String)> = HashSet::new();
    for row in batch::run(tx, &[lock, members]).await? {
        // Three columns: a thread; two: a membership.
        if row.len() == 3 {
            state.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
        } else {
            member.insert((row.try_get(0)?, row.try_get(1)?));
        }
    }

    // Number the ones that may be appended, in order.
    let mut seqs = Vec::with_capacity(messages.len());
    let mut moved: Vec<&str> = Vec::new();
    for message in messages {
        let is_member = member.contains(&(message.thread_id.clone(), message.device_id.clone()));
        let seq = match state.get_mut(&message.thread_id) {
            Some((epoch, last_seq)) if is_member && *epoch == message.epoch => {
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

    // Move each thread on, and insert the entries.
    let mut statements = Vec::new();
    let mut update = Statement::new("UPDATE thread SET last_seq = CASE thread_id");
    for _ in &moved {
        update.push(" WHEN ? THEN ?");
    }
    update.push(&format!(
        " ELSE last_seq END, last_activity_ms = ? WHERE thread_id IN ({})",
        marks(moved.len())
    ));
    for thread in &moved {
        let last_seq = state.get(*thread).map_or(0, |(_, last_seq)| *last_seq);
        update.bind(Value::Text(thread)).bind(Value::Int(last_seq));
    }
    update.bind(Value::Int(now_ms));
    for thread in &moved {
        update.bind(Value::Text(thread));
    }
    statements.push(update);
    let rows: Vec<(&NewMessage, i64)> = messages
        .iter()
        .zip(&seqs)
        .filter_map(|(message, seq)| seq.map(|seq| (*message, seq)))
        .collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let values = vec!["(?, ?, 'application', ?, ?, ?, ?, ?, NULL, NULL)"; chunk.len()];
        let mut insert = Statement::new(format!(
            "INSERT INTO thread_entry (thread_id, seq, kind, epoch, sender_user, sender_device, \
             created_at_ms, body, added, removed) VALUES {}",
            values.join(", ")
        ));
        for (message, seq) in chunk {
            insert
                .bind(Value::Text(&message.thread_id))
                .bind(Value::Int(*seq))
                .bind(Value::Int(message.epoch))
                .bind(Value::Text(&message.user_id))
                .bind(Value::Text(&message.device_id))
                .bind(Value::Int(now_ms))
                .bind(Value::Bytes(&message.ciphertext));
        }
        statements.push(insert);
    }
    batch::run(tx, &statements).await?;
    Ok(seqs)
}
