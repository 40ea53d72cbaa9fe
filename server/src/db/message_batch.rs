//! Application messages, appended to their threads' logs a batch at a time
//! inside the write pipeline's transaction (group commit; see
//! `crate::pipeline::writer`).
//!
//! A batch costs a fixed number of statements whatever its size, which the
//! writer sends with its audit entries' (see [`super::batch`]): [`read`]
//! locks and reads the batch's threads and their member devices, at
//! the start of the transaction; [`plan`] then numbers the messages and
//! writes the statements that move every thread's last sequence number in
//! one `UPDATE` and insert the entries with multi-row `INSERT`s. A message
//! is refused, changing nothing, unless its thread is at the message's
//! epoch and its sender's device is a current member (an enrolled device
//! of an active user), exactly the conditions of a commit's
//! compare-and-swap.

use std::collections::HashMap;
use std::sync::Arc;

use std::sync::LazyLock;

use super::batch::{LinkError, Row, Shapes, Statement, Value, marks, repeated, rows_of};
use super::thread_member::{ENROLLED_AND_ACTIVE, MEMBER_DEVICE};

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

/// The messages' `INSERT` for each number of rows.
static MESSAGE_INSERTS: LazyLock<Shapes> = LazyLock::new(|| {
    Shapes::new(ROWS_PER_INSERT, |rows| {
        format!(
            "INSERT INTO thread_entry (thread_id, seq, kind, epoch, sender_user, sender_device, \
             created_at_ms, body, added, removed) VALUES {}",
            rows_of(
                "({}, {}, 'application', {}, {}, {}, {}, {}, NULL, NULL)",
                rows
            )
        )
    })
});

/// The statements that lock and read the threads of `messages` and their
/// member devices, which [`plan`] takes, with `head` (the statement that
/// takes the audit head) in its place: a row of three columns per thread
/// (id, epoch, last sequence number) and one of two per thread with
/// members (id, their devices separated by spaces), or on SQLite one row
/// of all four per thread. The members decide which senders may append,
/// and which connected devices the messages are pushed to with their
/// commit (see `crate::push`). They come first in the transaction:
/// after SQLite's `BEGIN IMMEDIATE`, which holds the write lock already;
/// on PostgreSQL the first locks the threads' rows in id order, so that
/// writers in several processes cannot deadlock, then `head` is taken,
/// and only then are the memberships read, by a statement of their own:
/// under read committed a statement sees what was committed before it
/// began, so this one sees every change that committed before the head
/// was free (removing a device or a user takes the head, but no thread
/// row), as a subquery of the locking statement would not.
pub fn read<'a>(
    messages: &[&'a NewMessage],
    postgres: bool,
    head: Statement<'a>,
) -> Vec<Statement<'a>> {
    if messages.is_empty() {
        return vec![head];
    }
    let mut head = Some(head);
    let mut threads: Vec<&str> = messages.iter().map(|m| m.thread_id.as_str()).collect();
    threads.sort_unstable();
    threads.dedup();
    let mut statements = Vec::new();
    if postgres {
        let mut lock = Statement::new(format!(
            "SELECT thread_id, epoch, last_seq FROM thread WHERE thread_id IN ({}) \
             ORDER BY thread_id FOR UPDATE",
            marks(1, threads.len())
        ));
        for thread in &threads {
            lock.bind(Value::Text(thread));
        }
        statements.push(lock);
        statements.extend(head.take());
    }
    // Each thread with its member devices, one row per thread; on SQLite
    // with its epoch and last sequence number too, so that one statement
    // does (every row and statement costs).
    let mut read = Statement::new(format!(
        "SELECT t.thread_id, {}(SELECT string_agg(m.device_id, ' ') FROM {MEMBER_DEVICE} \
           WHERE m.thread_id = t.thread_id AND m.removed_seq IS NULL AND {ENROLLED_AND_ACTIVE}) \
         FROM thread t WHERE t.thread_id IN ({})",
        if postgres {
            ""
        } else {
            "t.epoch, t.last_seq, "
        },
        marks(1, threads.len())
    ));
    for thread in &threads {
        read.bind(Value::Text(thread));
    }
    statements.push(read);
    statements.extend(head);
    statements
}

/// What [`plan`] decided.
pub struct Plan<'a> {
    /// Each message's sequence number, in order, or `None` if it is
    /// refused.
    pub seqs: Vec<Option<i64>>,
    /// The statements that append the others.
    pub statements: Vec<Statement<'a>>,
    /// Each thread's current member devices (shared with its pushes).
    pub members: HashMap<String, Arc<[String]>>,
}

impl std::fmt::Debug for Plan<'_> {
    /// Counts only: the statements' values include the ciphertexts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("seqs", &self.seqs)
            .field("statements", &self.statements.len())
            .field("threads", &self.members.len())
            .finish()
    }
}

/// From the rows of [`read`] (rows of other shapes, such as the audit
/// head's five columns, are ignored), numbers `messages` in order and
/// writes the statements that append those that may be at `now_ms`.
pub fn plan<'a>(
    messages: &[&'a NewMessage],
    rows: &[Row],
    now_ms: i64,
) -> Result<Plan<'a>, LinkError> {
    let mut state: HashMap<String, (i64, i64)> = HashMap::new();
    let mut members: HashMap<String, Arc<[String]>> = HashMap::new();
    for row in rows {
        // (thread, its epoch and last sequence number, its member devices)
        let (thread, position, devices) = match row.columns() {
            4 => (
                row.text(0)?,
                Some((row.int(1)?, row.int(2)?)),
                row.opt_text(3)?,
            ),
            3 => (row.text(0)?, Some((row.int(1)?, row.int(2)?)), None),
            2 => (row.text(0)?, None, row.opt_text(1)?),
            _ => continue,
        };
        if let Some(position) = position {
            state.insert(thread.clone(), position);
        }
        // One row per thread names them all.
        if let Some(devices) = devices {
            members.insert(thread, devices.split(' ').map(str::to_owned).collect());
        }
    }

    // Number the ones that may be appended, in order.
    let mut seqs = Vec::with_capacity(messages.len());
    let mut moved: Vec<&'a str> = Vec::new();
    for message in messages {
        let is_member = members
            .get(&message.thread_id)
            .is_some_and(|devices| devices.contains(&message.device_id));
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
        return Ok(Plan {
            seqs,
            statements: Vec::new(),
            members,
        });
    }

    // Move each thread on, and insert the entries.
    let mut statements = Vec::new();
    let mut update = Statement::new("UPDATE thread SET last_seq = CASE thread_id");
    update.push(&repeated(" WHEN {} THEN {}", moved.len(), ""));
    let now_mark = 2 * moved.len() + 1;
    update.push(&format!(
        " ELSE last_seq END, last_activity_ms = ${now_mark} WHERE thread_id IN ({})",
        marks(now_mark + 1, moved.len())
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
    let rows: Vec<(&'a NewMessage, i64)> = messages
        .iter()
        .zip(&seqs)
        .filter_map(|(message, seq)| seq.map(|seq| (*message, seq)))
        .collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut insert = Statement::new(MESSAGE_INSERTS.get(chunk.len()));
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
    Ok(Plan {
        seqs,
        statements,
        members,
    })
}
