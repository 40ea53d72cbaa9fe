//! The audit log's writer: one gap-free hash chain per database, appended
//! with group commit and sealed by signed checkpoints.
//!
//! Every append takes the `audit_head` row first (an `UPDATE`, which is a
//! row lock on PostgreSQL and the write lock on SQLite), so appends from any
//! number of tasks and server processes form one linear chain. Requests do
//! not each pay a commit: [`AuditLog::append`] hands its entry to one writer
//! task, which takes everything waiting (up to [`MAX_BATCH`] appends),
//! writes it in one transaction, and only then answers each caller with
//! its sequence number, so every caller still waits for its own entry to
//! be durable. A message is handed to the writer with its entry
//! ([`AuditLog::append_message`]): the writer appends the batch's messages
//! to their threads ([`crate::messages`]) in the same transaction, so each
//! message and its entry are durable together and many share one commit.
//! With them it appends the entries of the messages' pushes to the member
//! devices connected to this process (at most
//! `events::MAX_PUSHES_PER_COMMIT`), and pushes them once it has committed
//! (see [`crate::events`]).
//! Any other write that must commit with its entry uses [`append_in`]
//! inside its own transaction.
//!
//! The canonical encoding, hashing and checkpoint format are
//! `curbside_proto::audit`'s, specified in `docs/audit-format.md`.

use std::sync::Arc;
use std::time::Duration;

use curbside_proto::audit::{AuditEntry, Checkpoint, Outcome};
use ring::signature::{Ed25519KeyPair, KeyPair};
use sqlx::{Any, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::clock::now_ms;
use crate::db::Database;
use crate::db::batch::{self, Link, LinkError, Row, Statement, Value, marks};
use crate::db::checkpoint::{self, Checkpointer};
use crate::events::Events;
use crate::files::{self, KeyError};
use crate::messages::{self, NewMessage};

/// The file that holds the audit signing key (PKCS#8), separate from the
/// token key.
pub const KEY_FILE: &str = "keys/audit-ed25519.pk8";
/// The most entries written in one transaction.
pub const MAX_BATCH: usize = 512;
/// Entries per multi-row `INSERT`.
const ROWS_PER_INSERT: usize = 64;
/// Parameters per entry row.
const COLUMNS: usize = 12;

/// An entry to append; the log assigns its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// When (Unix ms).
    pub time_ms: i64,
    /// The acting user, if known.
    pub actor_user: Option<String>,
    /// The acting device, if known.
    pub actor_device: Option<String>,
    /// The client's address, if known.
    pub client_addr: Option<String>,
    /// The request's id.
    pub request_id: String,
    /// What was done (a fixed vocabulary, e.g. `auth.login`).
    pub action: String,
    /// The kind of resource.
    pub resource_type: String,
    /// Which resource, if one.
    pub resource_id: Option<String>,
    /// Allowed or denied.
    pub outcome: Outcome,
    /// A short reason code.
    pub reason: String,
}

impl NewEntry {
    fn at(&self, seq: u64) -> AuditEntry {
        AuditEntry {
            seq,
            time_ms: self.time_ms,
            actor_user: self.actor_user.clone(),
            actor_device: self.actor_device.clone(),
            client_addr: self.client_addr.clone(),
            request_id: self.request_id.clone(),
            action: self.action.clone(),
            resource_type: self.resource_type.clone(),
            resource_id: self.resource_id.clone(),
            outcome: self.outcome,
            reason: self.reason.clone(),
        }
    }
}

/// When to sign a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After this many entries since the last checkpoint.
    pub every_entries: u64,
    /// Or when the last checkpoint is this old.
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every_entries: 1000,
            every: Duration::from_secs(60),
        }
    }
}

/// Signs checkpoints with the server's audit key.
pub struct AuditSigner {
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSigner").finish_non_exhaustive()
    }
}

impl AuditSigner {
    /// Loads the audit key from the data directory, making it on first use.
    pub fn load_or_generate(data_dir: &std::path::Path) -> Result<Self, KeyError> {
        let (key, _pkcs8) = files::ed25519_key(&data_dir.join(KEY_FILE))?;
        Ok(Self { key })
    }

    /// The public key that verifies checkpoints.
    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }
}

/// Why an entry could not be appended. The access it records must then be
/// refused (fail closed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The database refused or is unreachable.
    #[error("the audit log cannot be written: {0}")]
    Database(#[from] sqlx::Error),
    /// An entry's field is over the format's limit.
    #[error("an audit entry field is too long")]
    FieldTooLong,
    /// The writer task has stopped (the server is shutting down).
    #[error("the audit log is closed")]
    Closed,
    /// The stored head is not what the format allows.
    #[error("the audit log's head row is damaged")]
    Damaged,
    /// The writer's SQLite connection refused.
    #[error("the audit log cannot be written: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The writer could not open its connection.
    #[error("the audit writer cannot open the database: {0}")]
    Open(String),
}

impl From<LinkError> for AuditError {
    fn from(error: LinkError) -> Self {
        match error {
            LinkError::Sqlx(error) => Self::Database(error),
            LinkError::Sqlite(error) => Self::Sqlite(error),
            LinkError::Column(_) => Self::Damaged,
            LinkError::Io(error) => Self::Open(error.to_string()),
        }
    }
}

/// The writer task of an [`AuditLog`]. It stops when told to or dropped
/// (appends after that fail with [`AuditError::Closed`]), having written
/// what was queued; handles to the log alone do not keep it running, since
/// open WebSockets hold them until the runtime ends.
#[derive(Debug)]
pub struct AuditWriter {
    /// Answers (by closing) when the writer's thread has finished.
    finished: Option<oneshot::Receiver<()>>,
    stop: Option<oneshot::Sender<()>>,
}

impl AuditWriter {
    /// Stops the writer and waits for it, at most `timeout`.
    pub async fn stop(mut self, timeout: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(finished) = self.finished.take()
            && tokio::time::timeout(timeout, finished).await.is_err()
        {
            tracing::warn!("the audit writer did not stop in time; exiting anyway");
        }
    }
}

/// `audit_checkpoint`: seq, head hash, time, previous checkpoint hash,
/// signature.
pub type CheckpointRow = (i64, Vec<u8>, i64, Vec<u8>, Vec<u8>);
/// `audit_head`: seq, entry hash, checkpoint seq, checkpoint hash,
/// checkpoint time.
type HeadRow = (i64, Vec<u8>, i64, Vec<u8>, i64);

/// The answer to one pending append: the entry's sequence number and, for
/// a message, its sequence number in its thread; `None` if the message was
/// refused (and nothing written).
type Reply = Result<Option<(u64, Option<i64>)>, Arc<AuditError>>;

struct Pending {
    entry: NewEntry,
    message: Option<NewMessage>,
    reply: oneshot::Sender<Reply>,
}

/// A handle to the writer task, with what a transaction needs to append
/// in place. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<Pending>,
    signer: Arc<AuditSigner>,
    policy: CheckpointPolicy,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Starts the writer task on `database`.
    pub fn start(
        database: Database,
        signer: Arc<AuditSigner>,
        policy: CheckpointPolicy,
    ) -> (Self, AuditWriter) {
        Self::spawn(database, signer, policy, None)
    }

    /// Starts the writer task on `database`, pushing each message it
    /// appends to the member devices connected to `events`, with the audit
    /// entries of those pushes in the message's transaction (see
    /// [`crate::events`]).
    pub fn start_pushing(
        database: Database,
        signer: Arc<AuditSigner>,
        policy: CheckpointPolicy,
        events: Arc<Events>,
    ) -> (Self, AuditWriter) {
        Self::spawn(database, signer, policy, Some(events))
    }

    fn spawn(
        database: Database,
        signer: Arc<AuditSigner>,
        policy: CheckpointPolicy,
        events: Option<Arc<Events>>,
    ) -> (Self, AuditWriter) {
        let (sender, receiver) = mpsc::channel(MAX_BATCH * 8);
        let (stop, stopped) = oneshot::channel();
        // A thread and runtime of its own, with a connection of its own:
        // every request waits for this task, and on the shared runtime each
        // of its wake-ups queued behind all the requests' work (measured:
        // most of a batch's time under load). On SQLite the thread drives
        // the database itself (see `db::batch::Link`).
        let writer_signer = signer.clone();
        let (done, finished) = oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || {
                // Dropped when the thread ends, however it ends.
                let _done = done;
                run_writer(database, writer_signer, policy, events, receiver, stopped);
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the audit writer; refusing audited requests");
        }
        (
            Self {
                sender,
                signer,
                policy,
            },
            AuditWriter {
                finished: Some(finished),
                stop: Some(stop),
            },
        )
    }

    /// Appends `entries` in the caller's transaction ([`append_in`] with
    /// this log's key and policy).
    pub async fn append_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        entries: &[NewEntry],
    ) -> Result<Vec<u64>, AuditError> {
        append_in(tx, entries, &self.signer, self.policy).await
    }

    /// The public key that verifies this log's checkpoints.
    pub fn public_key(&self) -> Vec<u8> {
        self.signer.public_key()
    }

    /// Seals the entries appended since the last checkpoint (at shutdown).
    pub async fn checkpoint_now(&self, database: &Database) -> Result<(), AuditError> {
        checkpoint_now(database, &self.signer).await
    }

    /// Appends one entry and waits until it is committed; returns its
    /// sequence number.
    pub async fn append(&self, entry: NewEntry) -> Result<u64, Arc<AuditError>> {
        self.submit(entry, None)
            .await?
            .map(|(seq, _)| seq)
            .ok_or_else(|| Arc::new(AuditError::Damaged))
    }

    /// Appends `message` to its thread and `entry` to the log in one batch
    /// transaction, and waits until both are committed; returns the
    /// message's sequence number in its thread, or `None` if it was
    /// refused (stale epoch, or the sender is not a member), in which case
    /// nothing was written.
    pub async fn append_message(
        &self,
        message: NewMessage,
        entry: NewEntry,
    ) -> Result<Option<i64>, Arc<AuditError>> {
        Ok(self
            .submit(entry, Some(message))
            .await?
            .and_then(|(_, seq)| seq))
    }

    async fn submit(&self, entry: NewEntry, message: Option<NewMessage>) -> Reply {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Pending {
                entry,
                message,
                reply,
            })
            .await
            .map_err(|_| Arc::new(AuditError::Closed))?;
        answer.await.map_err(|_| Arc::new(AuditError::Closed))?
    }
}

/// The writer's thread: its runtime, its link, its batches.
fn run_writer(
    database: Database,
    signer: Arc<AuditSigner>,
    policy: CheckpointPolicy,
    events: Option<Arc<Events>>,
    receiver: mpsc::Receiver<Pending>,
    stopped: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the audit writer; refusing audited requests");
            return;
        }
    };
    runtime.block_on(async move {
        let opener = match Opener::new(&database).await {
            Ok(opener) => opener,
            Err(error) => {
                tracing::error!(%error, "the audit writer cannot reach the database; refusing audited requests");
                return;
            }
        };
        // Stopped, and waited for, when the writer stops.
        let _checkpointer = match &opener {
            Opener::Sqlite(path) => Checkpointer::start(path, checkpoint::COPY_AT)
                .inspect_err(|error| {
                    tracing::warn!(%error, "no checkpoint thread; commits will checkpoint the log");
                })
                .ok(),
            Opener::Postgres(_) => None,
        };
        let writer = Writer {
            signer,
            policy,
            events,
        };
        write_batches(&opener, &writer, receiver, stopped).await;
        if let Opener::Postgres(own) = opener {
            own.close().await;
        }
    });
}

/// Where the writer's [`Link`] comes from.
enum Opener {
    /// The SQLite database's file.
    Sqlite(std::path::PathBuf),
    /// A pool of the writer's own, made on its runtime.
    Postgres(Database),
}

impl Opener {
    async fn new(database: &Database) -> Result<Self, AuditError> {
        Ok(match database.sqlite_file().await? {
            Some(path) => Self::Sqlite(path),
            None => Self::Postgres(
                database
                    .reopen(1)
                    .await
                    .map_err(|error| AuditError::Open(error.to_string()))?,
            ),
        })
    }

    async fn open(&self) -> Result<Link, AuditError> {
        Ok(match self {
            Self::Sqlite(path) => Link::open_sqlite(path, crate::db::SQLITE_PRAGMAS)?,
            Self::Postgres(database) => Link::Postgres(database.pool().acquire().await?),
        })
    }
}

/// What the writer writes with.
struct Writer {
    signer: Arc<AuditSigner>,
    policy: CheckpointPolicy,
    events: Option<Arc<Events>>,
}

async fn write_batches(
    opener: &Opener,
    writer: &Writer,
    mut receiver: mpsc::Receiver<Pending>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut stopping = false;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // The writer keeps its link open; one that fails is closed, whatever
    // state it is in (a broken connection, a transaction left open), and
    // another opened for the next batch.
    let mut held: Option<(Link, std::time::Instant)> = None;
    // Entries appended and then followed by silence are sealed on time too,
    // not only when the next entry arrives.
    let mut tick = tokio::time::interval(writer.policy.every.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let received = tokio::select! {
            received = receiver.recv_many(&mut batch, MAX_BATCH) => received,
            // Told to stop (or its handle dropped): take nothing more, and
            // write what is already queued.
            _ = &mut stop, if !stopping => {
                stopping = true;
                receiver.close();
                continue;
            }
            _ = tick.tick() => {
                let sealed = match held_link(&mut held, opener).await {
                    Ok(link) => seal_if_due(link, &writer.signer, writer.policy).await,
                    Err(error) => Err(error),
                };
                if let Err(error) = sealed {
                    tracing::warn!(%error, "cannot sign an audit checkpoint");
                    discard(&mut held);
                }
                continue;
            }
        };
        if received == 0 {
            break;
        }
        let result = match held_link(&mut held, opener).await {
            Ok(link) => write_batch(link, &batch, writer).await,
            Err(error) => Err(error),
        };
        if result.is_err() {
            discard(&mut held);
        }
        match result {
            Ok((outcomes, entry_seqs)) => {
                let mut entry_seqs = entry_seqs.into_iter();
                for (pending, outcome) in batch.drain(..).zip(outcomes) {
                    let reply = outcome.and_then(|message_seq| {
                        entry_seqs.next().map(|entry_seq| (entry_seq, message_seq))
                    });
                    let _ = pending.reply.send(Ok(reply));
                }
            }
            Err(error) => {
                tracing::warn!(%error, entries = batch.len(), "audit append failed; refusing the accesses");
                let error = Arc::new(error);
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// After this long unused, the writer's PostgreSQL connection is checked
/// before a batch: a database restart or an idle-connection timeout would
/// otherwise fail the batch that finds it closed.
const CHECK_IDLE_LINK_AFTER: Duration = Duration::from_secs(30);

/// The writer's link, opened if it has none, checked if it has been idle.
async fn held_link<'h>(
    held: &'h mut Option<(Link, std::time::Instant)>,
    opener: &Opener,
) -> Result<&'h mut Link, AuditError> {
    let link = match held.take() {
        Some((mut link, used)) if used.elapsed() >= CHECK_IDLE_LINK_AFTER => {
            if link.ping().await.is_ok() {
                link
            } else {
                link.discard();
                opener.open().await?
            }
        }
        Some((link, _)) => link,
        None => opener.open().await?,
    };
    let (link, _) = held.insert((link, std::time::Instant::now()));
    Ok(link)
}

/// Closes the writer's link after a failure: whatever state it is in (a
/// broken connection, a transaction left open), it is not used again.
fn discard(held: &mut Option<(Link, std::time::Instant)>) {
    if let Some((link, _)) = held.take() {
        link.discard();
    }
}

/// The head as [`TAKE_HEAD`] returns it.
fn head_from(rows: &[Row]) -> Result<HeadRow, AuditError> {
    let head = rows
        .iter()
        .find(|row| row.columns() == 5)
        .ok_or(AuditError::Damaged)?;
    Ok((
        head.int(0)?,
        head.bytes(1)?,
        head.int(2)?,
        head.bytes(3)?,
        head.int(4)?,
    ))
}

/// For each pending append: `None` if its message was refused (nothing of
/// it written), else the message's sequence number if it has one; and the
/// sequence numbers of the entries written, in order.
type Written = (Vec<Option<Option<i64>>>, Vec<u64>);

/// Writes one batch in one transaction: it opens it, locks the messages'
/// threads and reads them and their members, then takes the audit head;
/// appends the messages that may be, every entry whose access stands and
/// the entries of the messages' pushes; and commits. If it fails, nothing
/// is written. Once it has committed, the messages are pushed.
async fn write_batch(
    link: &mut Link,
    batch: &[Pending],
    writer: &Writer,
) -> Result<Written, AuditError> {
    let started = std::time::Instant::now();
    let messages: Vec<&NewMessage> = batch.iter().filter_map(|p| p.message.as_ref()).collect();
    let first = messages::read(&messages, link.is_postgres(), Statement::new(TAKE_HEAD));
    let written = async {
        let rows = link.begin_with(&first).await?;
        let read = started.elapsed();
        let head = head_from(&rows)?;
        let now = now_ms();
        let plan = messages::plan(&messages, &rows, now)?;
        let pushes = writer
            .events
            .as_ref()
            .map(|events| events.targets(&messages, &plan.seqs, &plan.members));
        let mut statements = plan.statements;
        let mut seqs = plan.seqs.into_iter();
        let outcomes: Vec<Option<Option<i64>>> = batch
            .iter()
            .map(|pending| match pending.message {
                None => Some(None),
                Some(_) => seqs.next().flatten().map(Some),
            })
            .collect();
        // The callers' entries first: they take the first sequence numbers.
        let entries: Vec<NewEntry> = batch
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| outcome.is_some())
            .map(|(pending, _)| pending.entry.clone())
            .chain(
                pushes
                    .iter()
                    .flat_map(|pushes| pushes.entries(&messages, now)),
            )
            .collect();
        let appended = Appended::new(head, &entries, &writer.signer, writer.policy)?;
        statements.extend(appended.statements());
        link.commit_with(&statements).await?;
        if let (Some(events), Some(pushes)) = (&writer.events, pushes) {
            events.committed(pushes, &messages, now);
        }
        tracing::debug!(
            entries = entries.len(),
            messages = messages.len(),
            read_us = read.as_micros(),
            write_us = (started.elapsed() - read).as_micros(),
            "audit batch"
        );
        Ok::<_, AuditError>((outcomes, appended.seqs))
    }
    .await;
    if written.is_err() {
        // If this fails too, the link is discarded, which ends the
        // transaction.
        let _ = link.rollback().await;
    }
    written
}

/// Takes the log's head (the row lock on PostgreSQL, the write lock on
/// SQLite) and reads it: a [`HeadRow`] of five columns. Every transaction
/// that appends takes the head last, after any thread rows it locks.
const TAKE_HEAD: &str = "UPDATE audit_head SET seq = seq WHERE head_row = 1 \
     RETURNING seq, entry_hash, checkpoint_seq, checkpoint_hash, checkpoint_time_ms";

/// Appends `entries` in the caller's transaction, after taking the log's
/// head; returns their sequence numbers. They are durable when `tx`
/// commits, and vanish with it if it rolls back.
pub async fn append_in(
    tx: &mut Transaction<'_, Any>,
    entries: &[NewEntry],
    signer: &AuditSigner,
    policy: CheckpointPolicy,
) -> Result<Vec<u64>, AuditError> {
    // Take the head first: the row lock (PostgreSQL) or write lock (SQLite)
    // that makes every append, from any process, one linear chain.
    let head: HeadRow = sqlx::query_as(TAKE_HEAD).fetch_one(&mut **tx).await?;
    let appended = Appended::new(head, entries, signer, policy)?;
    // One round trip on SQLite (see `db::batch`).
    batch::run(tx, &appended.statements()).await?;
    Ok(appended.seqs)
}

/// Entries numbered and hashed after a head, the checkpoint if one is due,
/// and the new head: what [`Appended::statements`] writes.
struct Appended {
    /// The entries' sequence numbers.
    seqs: Vec<u64>,
    /// Each entry with its hash.
    rows: Vec<(i64, AuditEntry, [u8; 32])>,
    checkpoint: Option<Checkpoint>,
    /// The new head: seq, entry hash, checkpoint seq, checkpoint hash,
    /// checkpoint time.
    head: HeadRow,
}

impl Appended {
    fn new(
        head: HeadRow,
        entries: &[NewEntry],
        signer: &AuditSigner,
        policy: CheckpointPolicy,
    ) -> Result<Self, AuditError> {
        let (head_seq, head_hash, checkpoint_seq, checkpoint_hash, checkpoint_time) = head;
        let mut seq = u64::try_from(head_seq).map_err(|_| AuditError::Damaged)?;
        let mut prev: [u8; 32] = head_hash.try_into().map_err(|_| AuditError::Damaged)?;
        let mut seqs = Vec::with_capacity(entries.len());
        let mut rows = Vec::with_capacity(entries.len());
        for entry in entries {
            seq += 1;
            let full = entry.at(seq);
            let hash = full.hash(&prev).map_err(|_| AuditError::FieldTooLong)?;
            rows.push((
                i64::try_from(seq).map_err(|_| AuditError::Damaged)?,
                full,
                hash,
            ));
            seqs.push(seq);
            prev = hash;
        }

        let now = crate::clock::now_ms();
        let mut checkpoint_seq = checkpoint_seq;
        let mut checkpoint_hash = checkpoint_hash;
        let mut checkpoint_time = checkpoint_time;
        let due_by_count = i64::try_from(seq).unwrap_or(i64::MAX) - checkpoint_seq
            >= i64::try_from(policy.every_entries).unwrap_or(i64::MAX);
        let due_by_time =
            now - checkpoint_time >= i64::try_from(policy.every.as_millis()).unwrap_or(i64::MAX);
        let mut checkpoint = None;
        if seq > 0
            && i64::try_from(seq).unwrap_or(i64::MAX) > checkpoint_seq
            && (due_by_count || due_by_time)
        {
            let prev_checkpoint: [u8; 32] = checkpoint_hash
                .as_slice()
                .try_into()
                .map_err(|_| AuditError::Damaged)?;
            let signed = sign_checkpoint(signer, seq, &prev, now, &prev_checkpoint);
            checkpoint_seq = i64::try_from(seq).unwrap_or(i64::MAX);
            checkpoint_hash = signed.hash().ok_or(AuditError::Damaged)?.to_vec();
            checkpoint_time = now;
            checkpoint = Some(signed);
        }
        Ok(Self {
            seqs,
            rows,
            checkpoint,
            head: (
                i64::try_from(seq).unwrap_or(i64::MAX),
                prev.to_vec(),
                checkpoint_seq,
                checkpoint_hash,
                checkpoint_time,
            ),
        })
    }

    /// The entries' inserts, the checkpoint's and the head's update.
    fn statements(&self) -> Vec<Statement<'_>> {
        let mut statements = Vec::new();
        for chunk in self.rows.chunks(ROWS_PER_INSERT) {
            let mut insert = Statement::new(format!(
                "INSERT INTO audit_entry (seq, time_ms, actor_user, actor_device, client_addr, \
                 request_id, action, resource_type, resource_id, outcome, reason, entry_hash) \
                 VALUES {}",
                vec![format!("({})", marks(COLUMNS)); chunk.len()].join(", ")
            ));
            for (seq, entry, hash) in chunk {
                insert
                    .bind(Value::Int(*seq))
                    .bind(Value::Int(entry.time_ms))
                    .bind(Value::OptText(entry.actor_user.as_deref()))
                    .bind(Value::OptText(entry.actor_device.as_deref()))
                    .bind(Value::OptText(entry.client_addr.as_deref()))
                    .bind(Value::Text(&entry.request_id))
                    .bind(Value::Text(&entry.action))
                    .bind(Value::Text(&entry.resource_type))
                    .bind(Value::OptText(entry.resource_id.as_deref()))
                    .bind(Value::Text(entry.outcome.as_str()))
                    .bind(Value::Text(&entry.reason))
                    .bind(Value::Bytes(hash));
            }
            statements.push(insert);
        }
        let (head_seq, head_hash, checkpoint_seq, checkpoint_hash, checkpoint_time) = &self.head;
        if let Some(checkpoint) = &self.checkpoint {
            let mut insert = Statement::new(
                "INSERT INTO audit_checkpoint (seq, head_hash, time_ms, prev_checkpoint_hash, \
                 signature) VALUES (?, ?, ?, ?, ?)",
            );
            insert
                .bind(Value::Int(*checkpoint_seq))
                .bind(Value::Bytes(&checkpoint.head_hash))
                .bind(Value::Int(checkpoint.time_ms))
                .bind(Value::Bytes(&checkpoint.prev_checkpoint_hash))
                .bind(Value::Bytes(&checkpoint.signature));
            statements.push(insert);
        }
        let mut head = Statement::new(
            "UPDATE audit_head SET seq = ?, entry_hash = ?, checkpoint_seq = ?, \
             checkpoint_hash = ?, checkpoint_time_ms = ? WHERE head_row = 1",
        );
        head.bind(Value::Int(*head_seq))
            .bind(Value::Bytes(head_hash))
            .bind(Value::Int(*checkpoint_seq))
            .bind(Value::Bytes(checkpoint_hash))
            .bind(Value::Int(*checkpoint_time));
        statements.push(head);
        statements
    }
}

fn sign_checkpoint(
    signer: &AuditSigner,
    seq: u64,
    head_hash: &[u8; 32],
    time_ms: i64,
    prev_checkpoint_hash: &[u8; 32],
) -> Checkpoint {
    let message = Checkpoint::signed_bytes(seq, head_hash, time_ms, prev_checkpoint_hash);
    Checkpoint {
        seq,
        head_hash: head_hash.to_vec(),
        time_ms,
        prev_checkpoint_hash: prev_checkpoint_hash.to_vec(),
        signature: signer.key.sign(&message).as_ref().to_vec(),
    }
}

/// Signs a checkpoint if the policy says one is due for entries appended
/// since the last.
async fn seal_if_due(
    link: &mut Link,
    signer: &AuditSigner,
    policy: CheckpointPolicy,
) -> Result<(), AuditError> {
    // Read first, without a lock: most ticks find nothing due.
    let mut due = Statement::new(
        "SELECT seq FROM audit_head WHERE head_row = 1 AND seq > checkpoint_seq \
         AND checkpoint_time_ms <= ?",
    );
    due.bind(Value::Int(
        crate::clock::now_ms() - i64::try_from(policy.every.as_millis()).unwrap_or(i64::MAX),
    ));
    if link.read(&[due]).await?.is_empty() {
        return Ok(());
    }
    let sealed = async {
        let head = head_from(&link.begin_with(&[Statement::new(TAKE_HEAD)]).await?)?;
        let appended = Appended::new(head, &[], signer, policy)?;
        if appended.checkpoint.is_some() {
            link.commit_with(&appended.statements()).await?;
        } else {
            link.rollback().await?;
        }
        Ok::<_, AuditError>(())
    }
    .await;
    if sealed.is_err() {
        let _ = link.rollback().await;
    }
    sealed
}

/// Signs a checkpoint for the current head if entries were appended since
/// the last one (used at shutdown).
pub async fn checkpoint_now(database: &Database, signer: &AuditSigner) -> Result<(), AuditError> {
    let mut tx = database.pool().begin().await?;
    append_in(
        &mut tx,
        &[],
        signer,
        CheckpointPolicy {
            every_entries: 0,
            every: Duration::ZERO,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The columns of an entry row, in [`EntryRow`]'s order.
pub const ENTRY_COLUMNS: &str = "seq, time_ms, actor_user, actor_device, client_addr, request_id, \
     action, resource_type, resource_id, outcome, reason, entry_hash";
/// The columns of a checkpoint row, in [`CheckpointRow`]'s order.
pub const CHECKPOINT_COLUMNS: &str = "seq, head_hash, time_ms, prev_checkpoint_hash, signature";

/// An `audit_entry` row: seq, time, actor user, actor device, client
/// address, request id, action, resource type, resource id, outcome,
/// reason, hash.
pub type EntryRow = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Vec<u8>,
);

/// An entry and its stored hash from its row.
pub fn entry_from_row(row: EntryRow) -> Result<(AuditEntry, Vec<u8>), AuditError> {
    let (
        seq,
        time_ms,
        actor_user,
        actor_device,
        client_addr,
        request_id,
        action,
        resource_type,
        resource_id,
        outcome,
        reason,
        hash,
    ) = row;
    let entry = AuditEntry {
        seq: u64::try_from(seq).map_err(|_| AuditError::Damaged)?,
        time_ms,
        actor_user,
        actor_device,
        client_addr,
        request_id,
        action,
        resource_type,
        resource_id,
        // Anything but "allowed" reads as denied: an edited value then
        // fails the hash check at its entry, as any edit does.
        outcome: if outcome == Outcome::Allowed.as_str() {
            Outcome::Allowed
        } else {
            Outcome::Denied
        },
        reason,
    };
    Ok((entry, hash))
}

/// A checkpoint from its row.
pub fn checkpoint_from_row(row: CheckpointRow) -> Checkpoint {
    let (seq, head_hash, time_ms, prev_checkpoint_hash, signature) = row;
    Checkpoint {
        seq: u64::try_from(seq).unwrap_or(0),
        head_hash,
        time_ms,
        prev_checkpoint_hash,
        signature,
    }
}

/// Every entry (with its stored hash) and checkpoint, in order, for
/// verification. Reads the whole log into memory: for tests and small logs;
/// the export streams instead.
pub async fn read_all(
    database: &Database,
) -> Result<(Vec<(AuditEntry, Vec<u8>)>, Vec<Checkpoint>), AuditError> {
    let rows: Vec<EntryRow> = sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_entry ORDER BY seq"
    ))
    .fetch_all(database.pool())
    .await?;
    let entries = rows
        .into_iter()
        .map(entry_from_row)
        .collect::<Result<_, _>>()?;
    let checkpoints: Vec<CheckpointRow> = sqlx::query_as(&format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoint ORDER BY seq"
    ))
    .fetch_all(database.pool())
    .await?;
    Ok((
        entries,
        checkpoints.into_iter().map(checkpoint_from_row).collect(),
    ))
}
