//! The write pipeline: one writer thread that appends audit entries, and
//! the application messages they record, with group commit. It stays one
//! file because the handle ([`AuditLog`]) and the writer thread are the two
//! ends of one channel, sharing its private `Pending` and `Reply` and
//! [`MAX_BATCH`]: split apart, each half would import the other, or a
//! third file would hold nothing but that protocol.
//!
//! Requests do not each pay a commit: [`AuditLog::append`] hands its entry
//! to the writer, which takes everything waiting (up to [`MAX_BATCH`]
//! appends), writes it in one transaction, and only then answers each
//! caller with its sequence number, so every caller still waits for its
//! own entry to be durable. A message is handed to the writer with its
//! entry ([`AuditLog::append_message`]): the writer appends the batch's
//! messages to their threads (`crate::db::message_batch`) in the same
//! transaction, so each message and its entry are durable together and
//! many share one commit. With them it appends the entries of the
//! messages' pushes to the member devices connected to this process, and
//! pushes them once it has committed, through a [`Pusher`] (push delivery,
//! `crate::push`, which sits above this layer).
//!
//! Every append takes the `audit_head` row first, so appends from any
//! number of tasks and server processes form one linear chain; any other
//! write that must commit with its entry uses
//! [`crate::audit::append_in`] inside its own transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Any, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::audit::{Appended, AuditError, AuditSigner, NewEntry};
use crate::clock::now_ms;
use crate::config::CheckpointPolicy;
use crate::db::Database;
use crate::db::audit::{self as rows, HeadRow};
use crate::db::batch::Link;
use crate::db::checkpoint::{self, Checkpointer};
use crate::db::message_batch::{self, NewMessage};
use crate::metrics::WriterMetrics;

/// The most entries written in one transaction.
pub const MAX_BATCH: usize = 512;

/// Push delivery as the writer sees it. Inside the transaction that
/// appends a batch's messages it decides which connected devices each
/// accepted message goes to ([`Pusher::plan`]); the audit entries of those
/// pushes are appended with the batch, and once it has committed the
/// pushes are made ([`PlannedPushes::committed`]), so that a push waits
/// for one commit, not two.
pub trait Pusher: Send + Sync {
    /// The pushes of `messages` (the batch's), numbered `seqs` (`None` if
    /// refused), to threads with these member devices.
    fn plan(
        self: Arc<Self>,
        messages: &[&NewMessage],
        seqs: &[Option<i64>],
        members: &HashMap<String, Arc<[String]>>,
    ) -> Box<dyn PlannedPushes>;
}

/// The pushes of one batch, decided inside its transaction.
pub trait PlannedPushes: Send {
    /// The audit entries of the pushes, to append with the batch.
    fn entries(&self, messages: &[&NewMessage], time_ms: i64) -> Vec<NewEntry>;
    /// Makes the pushes, once the batch has committed at `time_ms`.
    fn committed(self: Box<Self>, messages: &[&NewMessage], time_ms: i64);
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
    metrics: WriterMetrics,
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
        metrics: WriterMetrics,
    ) -> (Self, AuditWriter) {
        Self::spawn(database, signer, policy, None, metrics)
    }

    /// Starts the writer task on `database`, pushing each message it
    /// appends through `pusher`, with the audit entries of those pushes in
    /// the message's transaction.
    pub fn start_pushing(
        database: Database,
        signer: Arc<AuditSigner>,
        policy: CheckpointPolicy,
        pusher: Arc<dyn Pusher>,
        metrics: WriterMetrics,
    ) -> (Self, AuditWriter) {
        Self::spawn(database, signer, policy, Some(pusher), metrics)
    }

    fn spawn(
        database: Database,
        signer: Arc<AuditSigner>,
        policy: CheckpointPolicy,
        pusher: Option<Arc<dyn Pusher>>,
        metrics: WriterMetrics,
    ) -> (Self, AuditWriter) {
        let (sender, receiver) = mpsc::channel(MAX_BATCH * 8);
        let (stop, stopped) = oneshot::channel();
        // A thread and runtime of its own, with a connection of its own:
        // every request waits for this task, and on the shared runtime each
        // of its wake-ups queued behind all the requests' work (measured:
        // most of a batch's time under load). On SQLite the thread drives
        // the database itself (see `db::batch::Link`).
        let writer_signer = signer.clone();
        let writer_metrics = metrics.clone();
        let (done, finished) = oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || {
                // Dropped when the thread ends, however it ends.
                let _done = done;
                run_writer(
                    database,
                    writer_signer,
                    policy,
                    pusher,
                    writer_metrics,
                    receiver,
                    stopped,
                );
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the audit writer; refusing audited requests");
        }
        (
            Self {
                sender,
                signer,
                policy,
                metrics,
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
        crate::audit::append_in(tx, entries, &self.signer, self.policy).await
    }

    /// How many accesses wait for the writer.
    pub fn queue_depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    /// What the writer records of its batches.
    pub fn metrics(&self) -> &WriterMetrics {
        &self.metrics
    }

    /// The audit key as signed notes name it (its C2SP verifier key).
    pub fn note_key(&self) -> &curbside_proto::note::NoteKey {
        self.signer.note_key()
    }

    /// The public key that verifies this log's checkpoints.
    pub fn public_key(&self) -> Vec<u8> {
        self.signer.public_key()
    }

    /// Seals the entries appended since the last checkpoint (at shutdown).
    pub async fn checkpoint_now(&self, database: &Database) -> Result<(), AuditError> {
        crate::audit::checkpoint_now(database, &self.signer).await
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
    pusher: Option<Arc<dyn Pusher>>,
    metrics: WriterMetrics,
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
            pusher,
            metrics,
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
    pusher: Option<Arc<dyn Pusher>>,
    metrics: WriterMetrics,
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
    let first = message_batch::read(&messages, link.is_postgres(), rows::take_head());
    let written = async {
        let rows = link.begin_with(&first).await?;
        let read = started.elapsed();
        let head = HeadRow::from_rows(&rows)?;
        let now = now_ms();
        let plan = message_batch::plan(&messages, &rows, now)?;
        let pushes = writer
            .pusher
            .as_ref()
            .map(|pusher| pusher.clone().plan(&messages, &plan.seqs, &plan.members));
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
        let appended = Appended::new(&head, &entries, &writer.signer, writer.policy)?;
        statements.extend(appended.statements());
        link.commit_with(&statements).await?;
        writer
            .metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        writer
            .metrics
            .batch_entries
            .observe(f64::from(u32::try_from(entries.len()).unwrap_or(u32::MAX)));
        if let Some(pushes) = pushes {
            pushes.committed(&messages, now);
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
        writer.metrics.failures.inc();
        // If this fails too, the link is discarded, which ends the
        // transaction.
        let _ = link.rollback().await;
    }
    written
}

/// Signs a checkpoint if the policy says one is due for entries appended
/// since the last.
async fn seal_if_due(
    link: &mut Link,
    signer: &AuditSigner,
    policy: CheckpointPolicy,
) -> Result<(), AuditError> {
    // Read first, without a lock: most ticks find nothing due.
    let due = rows::checkpoint_due(
        now_ms() - i64::try_from(policy.every.as_millis()).unwrap_or(i64::MAX),
    );
    if link.read(&[due]).await?.is_empty() {
        return Ok(());
    }
    let sealed = async {
        let head = HeadRow::from_rows(&link.begin_with(&[rows::take_head()]).await?)?;
        let appended = Appended::new(&head, &[], signer, policy)?;
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
