//! Live delivery: each new thread entry, welcome and receipt is pushed to
//! every connected member device at once.
//!
//! Application messages, the bulk of the traffic, are pushed by the audit
//! writer (see [`crate::audit`]): inside the transaction that appends a
//! message it finds which of the thread's member devices are connected
//! here ([`Events::targets`]) and appends the audit entry of each push
//! with the message, so that a push waits for one commit, not two; once
//! the transaction commits it hands the entry to those connections
//! ([`Events::committed`]).
//!
//! Everything else committed (commits, welcomes, receipts) is announced
//! by its handler with a small [`Notice`] (ids only), as the writer
//! announces each message too. A notice goes straight to this process's
//! dispatcher and, on PostgreSQL, out with `NOTIFY` (a batch per
//! `NOTIFY`, marked with this process's origin) to the other replicas,
//! which hear it through a `LISTEN` connection. The dispatcher reads what
//! the notice names, finds which of the devices connected here may see it
//! (current members, at the time of the event) and were not pushed it
//! already, writes the audit entry of each push, and then hands the event
//! to the device's connections. Nothing depends on this: a device that was
//! away, or missed a push, catches up by sequence number.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use curbside_proto::audit::Outcome;
use curbside_proto::threads::{Blob, Event, ReceiptKind, Welcome};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::audit::{AuditLog, NewEntry};
use crate::db::Database;
use crate::db::thread_entry::{self, EntryRow};
use crate::messages::NewMessage;

/// A text frame for a connection: cheap to clone, so one event serves
/// every connection it goes to.
pub type Frame = axum::extract::ws::Utf8Bytes;

/// The PostgreSQL channel notices travel on.
const CHANNEL: &str = "curbside_events";
/// Events queued per connection; a device that falls further behind is
/// disconnected and catches up by sequence number.
pub const QUEUE: usize = 256;

/// What happened, by id: the dispatcher reads the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "n", rename_all = "snake_case")]
pub enum Notice {
    /// Entry `seq` of `thread_id` was committed.
    Entry {
        /// The thread.
        thread_id: String,
        /// The entry.
        seq: i64,
    },
    /// A welcome was queued for `device_id`.
    Welcome {
        /// The device.
        device_id: String,
        /// The welcome.
        welcome_id: String,
    },
    /// A receipt moved.
    Receipt {
        /// The thread.
        thread_id: String,
        /// Delivered or read.
        kind: ReceiptKind,
        /// The user.
        user_id: String,
        /// The device.
        device_id: String,
        /// Up to where.
        seq: i64,
    },
}

/// Who is connected to a push connection, for its audit entries.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The user.
    pub user_id: String,
    /// The device.
    pub device_id: String,
    /// The client's address.
    pub client_addr: Option<String>,
    /// The request id of the connection's upgrade.
    pub request_id: String,
}

impl Subscriber {
    /// The audit entry of a push to this subscriber: a read of `resource`
    /// by its device.
    fn entry(&self, action: &str, resource: (&str, &str), time_ms: i64) -> NewEntry {
        NewEntry {
            time_ms,
            actor_user: Some(self.user_id.clone()),
            actor_device: Some(self.device_id.clone()),
            client_addr: self.client_addr.clone(),
            request_id: self.request_id.clone(),
            action: action.to_owned(),
            resource_type: resource.0.to_owned(),
            resource_id: Some(resource.1.to_owned()),
            outcome: Outcome::Allowed,
            reason: "ok".to_owned(),
        }
    }
}

struct Connection {
    id: u64,
    subscriber: Subscriber,
    sender: mpsc::Sender<Frame>,
}

/// A notice, with what the audit writer already pushed of it.
struct Delivery {
    notice: Notice,
    pushed: Option<Pushed>,
}

/// What the audit writer pushed of a message with its commit: the
/// thread's member devices then, and the connections it pushed to. The
/// dispatcher pushes it only to connections of those devices made since.
struct Pushed {
    members: Arc<[String]>,
    connections: Vec<u64>,
}

/// The devices connected to this server, and the way notices reach it.
pub struct Events {
    connections: Mutex<HashMap<String, Vec<Connection>>>,
    next_id: AtomicU64,
    /// To this process's dispatcher.
    inbox: mpsc::UnboundedSender<Delivery>,
    /// On PostgreSQL, to the other replicas.
    outbox: Option<mpsc::UnboundedSender<Notice>>,
    /// This process, among the replicas: it skips its own `NOTIFY`s.
    origin: u64,
    database: Database,
}

/// The receiving ends of an [`Events`]' queues, for [`Events::start`].
pub struct Mailboxes {
    inbox: mpsc::UnboundedReceiver<Delivery>,
    outbox: Option<mpsc::UnboundedReceiver<Notice>>,
}

impl std::fmt::Debug for Mailboxes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailboxes").finish_non_exhaustive()
    }
}

/// The pushes of a batch's messages, decided inside its transaction.
#[derive(Default)]
pub(crate) struct CommitPushes {
    messages: Vec<MessagePushes>,
}

struct MessagePushes {
    /// Which of the batch's messages.
    index: usize,
    seq: i64,
    /// The thread's member devices.
    members: Arc<[String]>,
    /// The connections here of those devices.
    targets: Vec<(u64, Subscriber, mpsc::Sender<Frame>)>,
}

impl CommitPushes {
    /// The audit entries of the pushes of `messages` (the batch's), to
    /// append with them.
    pub(crate) fn entries<'a>(
        &'a self,
        messages: &'a [&NewMessage],
        time_ms: i64,
    ) -> impl Iterator<Item = NewEntry> + 'a {
        self.messages.iter().flat_map(move |pushes| {
            let thread_id = messages
                .get(pushes.index)
                .map_or("", |message| message.thread_id.as_str());
            pushes.targets.iter().map(move |(_, subscriber, _)| {
                subscriber.entry(PUSH_ENTRY, ("thread", thread_id), time_ms)
            })
        })
    }
}

/// The most pushes the audit writer makes with one commit; the dispatcher
/// makes any beyond (after a commit of their own), so that a thread of
/// many connected devices cannot make the writer's transaction, which
/// every audited request waits for, as large as it likes.
const MAX_PUSHES_PER_COMMIT: usize = 1024;

/// The audit action of a pushed thread entry.
const PUSH_ENTRY: &str = "thread.entries.push";

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// The connections of this process, none yet, and the queues that
    /// [`Events::start`] takes.
    pub fn new(database: Database) -> (Arc<Self>, Mailboxes) {
        let (inbox, inbox_receiver) = mpsc::unbounded_channel();
        let (outbox, outbox_receiver) = if database.is_postgres() {
            let (outbox, receiver) = mpsc::unbounded_channel();
            (Some(outbox), Some(receiver))
        } else {
            (None, None)
        };
        // Only told apart from the other replicas' (a clash would cost
        // their pushes, not correctness).
        let origin = crate::ids::random_bytes::<8>().map_or_else(
            |_| u64::from(std::process::id()) ^ crate::clock::now_ms().unsigned_abs() << 20,
            u64::from_le_bytes,
        );
        let events = Arc::new(Self {
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            inbox,
            outbox,
            origin,
            database,
        });
        let mailboxes = Mailboxes {
            inbox: inbox_receiver,
            outbox: outbox_receiver,
        };
        (events, mailboxes)
    }

    /// Starts the dispatcher, with its pushes' entries appended to
    /// `audit`; on PostgreSQL it also sends this process's notices to the
    /// other replicas and listens for theirs on `database_url`.
    pub fn start(
        self: &Arc<Self>,
        mailboxes: Mailboxes,
        database_url: &str,
        audit: AuditLog,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(dispatch(
            self.clone(),
            mailboxes,
            database_url.to_owned(),
            audit,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Connection>>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Announces a committed change. Never fails the request: a lost
    /// notice only delays a device until it fetches.
    pub fn announce(&self, notice: Notice) {
        self.post(notice, None);
    }

    /// Hands `notice` to this process's dispatcher and, on PostgreSQL, to
    /// the other replicas.
    fn post(&self, notice: Notice, pushed: Option<Pushed>) {
        if let Some(outbox) = &self.outbox {
            let _ = outbox.send(notice.clone());
        }
        let _ = self.inbox.send(Delivery { notice, pushed });
    }

    /// For the audit writer, inside the transaction that appends
    /// `messages`, numbered `seqs` (`None` if refused), to threads with
    /// these `members`: the connections here that each accepted message
    /// is to be pushed to.
    pub(crate) fn targets(
        &self,
        messages: &[&NewMessage],
        seqs: &[Option<i64>],
        members: &HashMap<String, Arc<[String]>>,
    ) -> CommitPushes {
        let mut pushes = CommitPushes::default();
        let anyone_here = self.anyone_here();
        let mut budget = MAX_PUSHES_PER_COMMIT;
        for (index, (message, seq)) in messages.iter().zip(seqs).enumerate() {
            let Some(seq) = *seq else { continue };
            let members = members
                .get(&message.thread_id)
                .cloned()
                .unwrap_or_else(|| Arc::from([]));
            let mut targets = if anyone_here {
                self.here(&members)
            } else {
                Vec::new()
            };
            if targets.len() > budget {
                // Left to the dispatcher.
                targets.clear();
            }
            budget -= targets.len();
            pushes.messages.push(MessagePushes {
                index,
                seq,
                members,
                targets,
            });
        }
        pushes
    }

    /// For the audit writer, once the transaction that appended
    /// `messages` (the batch's) and their pushes' entries has committed at
    /// `time_ms`: pushes them, and announces each message.
    pub(crate) fn committed(&self, pushes: CommitPushes, messages: &[&NewMessage], time_ms: i64) {
        for pushes in pushes.messages {
            let Some(message) = messages.get(pushes.index) else {
                continue;
            };
            let mut connections = Vec::with_capacity(pushes.targets.len());
            if !pushes.targets.is_empty() {
                let event = Event::Entry {
                    thread_id: message.thread_id.clone(),
                    entry: EntryRow {
                        thread_id: message.thread_id.clone(),
                        seq: pushes.seq,
                        kind: "application".to_owned(),
                        epoch: message.epoch,
                        sender_user: message.user_id.clone(),
                        sender_device: message.device_id.clone(),
                        created_at_ms: time_ms,
                        body: message.ciphertext.clone(),
                        added: None,
                        removed: None,
                    }
                    .into_entry(),
                };
                // If it cannot be written (it always can), the dispatcher
                // pushes it instead.
                if let Ok(frame) = serde_json::to_string(&event).map(Frame::from) {
                    for (id, subscriber, sender) in pushes.targets {
                        connections.push(id);
                        if sender.try_send(frame.clone()).is_err() {
                            // Too far behind: cut it off; it will catch up
                            // by fetching.
                            self.disconnect(&subscriber.device_id, id);
                        }
                    }
                }
            }
            self.post(
                Notice::Entry {
                    thread_id: message.thread_id.clone(),
                    seq: pushes.seq,
                },
                Some(Pushed {
                    members: pushes.members,
                    connections,
                }),
            );
        }
    }

    /// Registers a connection of `subscriber`'s device; returns its id and
    /// the frames to send it.
    pub fn connect(&self, subscriber: Subscriber) -> (u64, mpsc::Receiver<Frame>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(subscriber.device_id.clone())
            .or_default()
            .push(Connection {
                id,
                subscriber,
                sender,
            });
        (id, receiver)
    }

    /// Forgets connection `id` of `device_id`.
    pub fn disconnect(&self, device_id: &str, id: u64) {
        let mut connections = self.lock();
        if let Some(list) = connections.get_mut(device_id) {
            list.retain(|connection| connection.id != id);
            if list.is_empty() {
                connections.remove(device_id);
            }
        }
    }

    /// `pick` of each connection of these devices that is here.
    fn each_here<T>(&self, devices: &[String], pick: impl FnMut(&Connection) -> T) -> Vec<T> {
        let connections = self.lock();
        devices
            .iter()
            .filter_map(|device| connections.get(device))
            .flatten()
            .map(pick)
            .collect()
    }

    /// The connections of these devices that are here.
    fn here(&self, devices: &[String]) -> Vec<(u64, Subscriber, mpsc::Sender<Frame>)> {
        self.each_here(devices, |connection| {
            (
                connection.id,
                connection.subscriber.clone(),
                connection.sender.clone(),
            )
        })
    }

    fn anyone_here(&self) -> bool {
        !self.lock().is_empty()
    }
}

/// A task that ends with its owner.
struct Owned(tokio::task::JoinHandle<()>);

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The dispatcher, and the tasks it owns: they end when it is stopped.
async fn dispatch(
    events: Arc<Events>,
    mailboxes: Mailboxes,
    database_url: String,
    audit: AuditLog,
) {
    let Mailboxes { mut inbox, outbox } = mailboxes;
    let (pushes, queued) = mpsc::channel(PUSHES_IN_FLIGHT);
    let mut owned = vec![Owned(tokio::spawn(push_in_order(events.clone(), queued)))];
    if let Some(outbox) = outbox {
        owned.push(Owned(tokio::spawn(publish(
            events.database.clone(),
            outbox,
            events.origin,
        ))));
        owned.push(Owned(tokio::spawn(listen(events.clone(), database_url))));
    }
    let mut deliveries = Vec::with_capacity(NOTICES_PER_BATCH);
    while inbox.recv_many(&mut deliveries, NOTICES_PER_BATCH).await > 0 {
        deliver_all(&events, &audit, &pushes, std::mem::take(&mut deliveries)).await;
    }
    drop(owned);
}

/// A notice as it travels in a `NOTIFY`, with the process that sent it.
#[derive(Serialize)]
struct Outgoing<'a> {
    #[serde(flatten)]
    notice: &'a Notice,
    o: u64,
}

/// A notice from a `NOTIFY`; one from a replica of a version that did not
/// mark them has no origin.
#[derive(Deserialize)]
struct Incoming {
    #[serde(flatten)]
    notice: Notice,
    o: Option<u64>,
}

/// The notices of a `NOTIFY` payload that other processes sent: a batch
/// (see [`publish`]), or one notice from a replica of an older version.
fn foreign_notices(payload: &str, origin: u64) -> Vec<Notice> {
    let incoming: Vec<Incoming> = serde_json::from_str(payload)
        .or_else(|_| serde_json::from_str(payload).map(|one| vec![one]))
        .unwrap_or_default();
    incoming
        .into_iter()
        .filter(|incoming| incoming.o != Some(origin))
        .map(|incoming| incoming.notice)
        .collect()
}

/// Hands the other replicas' notices to this process's dispatcher.
async fn listen(events: Arc<Events>, database_url: String) {
    let mut listener = match sqlx::postgres::PgListener::connect(&database_url).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "cannot listen for events; devices will fetch instead");
            return;
        }
    };
    if let Err(error) = listener.listen(CHANNEL).await {
        tracing::error!(%error, "cannot listen for events; devices will fetch instead");
        return;
    }
    loop {
        match listener.recv().await {
            Ok(notification) => {
                for notice in foreign_notices(notification.payload(), events.origin) {
                    let _ = events.inbox.send(Delivery {
                        notice,
                        pushed: None,
                    });
                }
            }
            // The listener reconnects by itself; what was missed is
            // fetched by the devices.
            Err(error) => {
                tracing::warn!(%error, "the event listener lost its connection");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// How long notices are gathered for one `NOTIFY`.
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// The most bytes of notices in one `NOTIFY` (PostgreSQL's limit is 8000).
const MAX_PAYLOAD: usize = 7000;

/// Sends this process's notices to the other replicas, a batch per
/// `NOTIFY`: each `NOTIFY` is a transaction and a commit of its own, and
/// one per message could not keep up (measured: 1000 messages/s left
/// pushes 9 s behind).
async fn publish(database: Database, mut outbox: mpsc::UnboundedReceiver<Notice>, origin: u64) {
    let mut notices = Vec::with_capacity(NOTICES_PER_BATCH);
    while outbox.recv_many(&mut notices, NOTICES_PER_BATCH).await > 0 {
        // With what follows within a moment: each NOTIFY costs a round trip
        // here and, on every replica, a read of what it names. Without the
        // pause, quick commits made NOTIFYs of a notice or two, and at
        // 1,000 messages/s the replicas' readers fell half a second behind
        // (measured).
        tokio::time::sleep(GATHER).await;
        while notices.len() < NOTICES_PER_BATCH {
            match outbox.try_recv() {
                Ok(notice) => notices.push(notice),
                Err(_) => break,
            }
        }
        let mut payloads: Vec<Vec<Outgoing<'_>>> = vec![Vec::new()];
        let mut size = 0;
        for notice in &notices {
            let outgoing = Outgoing { notice, o: origin };
            let length = serde_json::to_string(&outgoing).map_or(0, |text| text.len()) + 1;
            if size + length > MAX_PAYLOAD {
                payloads.push(Vec::new());
                size = 0;
            }
            size += length;
            if let Some(payload) = payloads.last_mut() {
                payload.push(outgoing);
            }
        }
        for payload in payloads.iter().filter(|payload| !payload.is_empty()) {
            let Ok(payload) = serde_json::to_string(payload) else {
                continue;
            };
            if let Err(error) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(database.pool())
                .await
            {
                tracing::warn!(%error, "cannot announce events to the replicas");
            }
        }
        notices.clear();
    }
}

/// Notices handled together, at most: their entries and members are read
/// in two queries, whatever their number.
const NOTICES_PER_BATCH: usize = 256;

/// The entries and thread members that a batch of notices names.
#[derive(Default)]
struct Prefetched {
    entries: HashMap<(String, i64), EntryRow>,
    /// Each thread's member devices, with the sequence each joined at and
    /// the one it was removed at (if it was, at or after the first entry
    /// named).
    members: HashMap<String, Vec<(String, i64, Option<i64>)>>,
}

fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads what the entry notices in `notices` name, in two queries.
async fn prefetch(database: &Database, notices: &[Notice]) -> Result<Prefetched, sqlx::Error> {
    let mut wanted: Vec<(&str, i64)> = Vec::new();
    for notice in notices {
        if let Notice::Entry { thread_id, seq } = notice {
            wanted.push((thread_id, *seq));
        }
    }
    if wanted.is_empty() {
        return Ok(Prefetched::default());
    }
    wanted.sort_unstable();
    wanted.dedup();
    let mut threads: Vec<&str> = wanted.iter().map(|(thread, _)| *thread).collect();
    threads.dedup();
    let mut prefetched = Prefetched::default();
    // Exactly the entries named: (thread, seq) pairs, not every seq of
    // every thread.
    for row in thread_entry::named(database.pool(), &wanted).await? {
        prefetched
            .entries
            .insert((row.thread_id.clone(), row.seq), row);
    }
    // Members, and those a commit among these entries removed (who are
    // pushed that commit: it is how their devices learn of it).
    let first_seq = wanted.iter().map(|(_, seq)| *seq).min().unwrap_or(0);
    let sql = format!(
        "SELECT m.thread_id, m.device_id, m.joined_seq, m.removed_seq FROM thread_member m \
         JOIN device d ON d.device_id = m.device_id JOIN app_user u ON u.user_id = m.user_id \
         WHERE m.thread_id IN ({}) AND (m.removed_seq IS NULL OR m.removed_seq >= $1) \
           AND d.removed_at_ms IS NULL AND u.status = 'active'",
        placeholders(2, threads.len())
    );
    let mut query = sqlx::query_as::<_, (String, String, i64, Option<i64>)>(&sql).bind(first_seq);
    for thread in &threads {
        query = query.bind(*thread);
    }
    for (thread, device, joined, removed) in query.fetch_all(database.pool()).await? {
        prefetched
            .members
            .entry(thread)
            .or_default()
            .push((device, joined, removed));
    }
    Ok(prefetched)
}

/// Delivers a batch of notices, in order.
async fn deliver_all(
    events: &Arc<Events>,
    audit: &AuditLog,
    pushes: &mpsc::Sender<Push>,
    deliveries: Vec<Delivery>,
) {
    if !events.anyone_here() {
        return;
    }
    // What the writer pushed goes only to connections made since its
    // transaction looked (usually none: then nothing is read).
    let mut notices = Vec::with_capacity(deliveries.len());
    let mut skips = Vec::with_capacity(deliveries.len());
    for Delivery { notice, pushed } in deliveries {
        let skip = match pushed {
            None => Vec::new(),
            Some(Pushed {
                members,
                connections,
            }) => {
                let here = events.each_here(&members, |connection| connection.id);
                if here.iter().all(|id| connections.contains(id)) {
                    continue;
                }
                connections
            }
        };
        notices.push(notice);
        skips.push(skip);
    }
    if notices.is_empty() {
        return;
    }
    let mut prefetched = match prefetch(&events.database, &notices).await {
        Ok(prefetched) => prefetched,
        Err(error) => {
            // Devices fetch what they missed.
            tracing::warn!(%error, "cannot read the entries to push");
            return;
        }
    };
    for (notice, skip) in notices.into_iter().zip(skips) {
        deliver(events, audit, pushes, notice, &skip, &mut prefetched).await;
    }
}

/// The devices that are current members of `thread_id` and joined before
/// `seq`, and are enrolled devices of active users.
async fn members(database: &Database, thread_id: &str, seq: i64) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT m.device_id FROM thread_member m JOIN device d ON d.device_id = m.device_id \
         JOIN app_user u ON u.user_id = m.user_id \
         WHERE m.thread_id = $1 AND m.removed_seq IS NULL AND m.joined_seq < $2 \
           AND d.removed_at_ms IS NULL AND u.status = 'active'",
    )
    .bind(thread_id)
    .bind(seq)
    .fetch_all(database.pool())
    .await
    .unwrap_or_default()
}

async fn deliver(
    events: &Arc<Events>,
    audit: &AuditLog,
    pushes: &mpsc::Sender<Push>,
    notice: Notice,
    skip: &[u64],
    prefetched: &mut Prefetched,
) {
    let database = &events.database;
    let (devices, event, action, resource) = match notice {
        Notice::Entry { thread_id, seq } => {
            let Some(row) = prefetched.entries.remove(&(thread_id.clone(), seq)) else {
                return;
            };
            let entry = row.into_entry();
            let devices = prefetched
                .members
                .get(&thread_id)
                .map(|members| {
                    members
                        .iter()
                        .filter(|(_, joined, removed)| {
                            // Members then: joined before it, and not removed
                            // before it (a device reads up to the commit
                            // that removed it, that commit included).
                            *joined < seq && removed.is_none_or(|removed| removed >= seq)
                        })
                        .map(|(device, _, _)| device.clone())
                        .collect()
                })
                .unwrap_or_default();
            (
                devices,
                Event::Entry {
                    thread_id: thread_id.clone(),
                    entry,
                },
                PUSH_ENTRY,
                (String::from("thread"), thread_id),
            )
        }
        Notice::Welcome {
            device_id,
            welcome_id,
        } => {
            let row: Option<(String, i64, i64, Vec<u8>)> = sqlx::query_as(
                "SELECT thread_id, epoch, joined_seq, welcome FROM welcome \
                 WHERE welcome_id = $1 AND device_id = $2",
            )
            .bind(&welcome_id)
            .bind(&device_id)
            .fetch_optional(database.pool())
            .await
            .ok()
            .flatten();
            let Some((thread_id, epoch, joined_seq, welcome)) = row else {
                return;
            };
            (
                vec![device_id],
                Event::Welcome {
                    welcome: Welcome {
                        welcome_id: welcome_id.clone(),
                        thread_id,
                        epoch: u64::try_from(epoch).unwrap_or(0),
                        joined_seq: u64::try_from(joined_seq).unwrap_or(0),
                        welcome: Blob(welcome),
                    },
                },
                "welcome.push",
                (String::from("welcome"), welcome_id),
            )
        }
        Notice::Receipt {
            thread_id,
            kind,
            user_id,
            device_id,
            seq,
        } => (
            members(database, &thread_id, i64::MAX).await,
            Event::Receipt {
                thread_id: thread_id.clone(),
                kind,
                user_id,
                device_id,
                seq: u64::try_from(seq).unwrap_or(0),
            },
            "thread.receipt.push",
            (String::from("thread"), thread_id),
        ),
    };
    let Ok(frame) = serde_json::to_string(&event).map(Frame::from) else {
        return;
    };
    for (id, subscriber, sender) in events.here(&devices) {
        if skip.contains(&id) {
            continue;
        }
        // Each push is a read of the thread by that device: audited first,
        // and not sent if its entry cannot be written. The entries of many
        // pushes share a commit: each is appended in a task of its own, and
        // the pushes wait for them in order (see `push_in_order`).
        let entry = subscriber.entry(action, (&resource.0, &resource.1), crate::clock::now_ms());
        let audit = audit.clone();
        let audited = tokio::spawn(async move { audit.append(entry).await.map(drop) });
        let push = Push {
            audited,
            connection: id,
            device_id: subscriber.device_id,
            sender,
            frame: frame.clone(),
        };
        if pushes.send(push).await.is_err() {
            return;
        }
    }
}

/// A push waiting for its audit entry.
struct Push {
    audited: tokio::task::JoinHandle<Result<(), Arc<crate::audit::AuditError>>>,
    connection: u64,
    device_id: String,
    sender: mpsc::Sender<Frame>,
    frame: Frame,
}

/// Pushes queued for their audit entries, at most.
const PUSHES_IN_FLIGHT: usize = 4096;

/// Sends each push once its audit entry is durable, in the order the
/// pushes were made (the order the notices came, which need not be log
/// order: devices fetch by sequence number to fill any gap).
async fn push_in_order(events: Arc<Events>, mut pushes: mpsc::Receiver<Push>) {
    while let Some(push) = pushes.recv().await {
        match push.audited.await {
            Ok(Ok(())) => {
                if push.sender.try_send(push.frame).is_err() {
                    // Too far behind: cut it off; it will catch up by
                    // fetching.
                    events.disconnect(&push.device_id, push.connection);
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "a push was not sent: its audit entry could not be written");
            }
            Err(error) => tracing::warn!(%error, "a push's audit task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64) -> Notice {
        Notice::Entry {
            thread_id: "t".to_owned(),
            seq,
        }
    }

    #[test]
    fn a_replica_hears_the_others_notices_and_skips_its_own() {
        let mine = [entry(1), entry(2)];
        let theirs = [entry(3)];
        let mut batch: Vec<Outgoing<'_>> = mine
            .iter()
            .map(|notice| Outgoing { notice, o: 7 })
            .collect();
        batch.extend(theirs.iter().map(|notice| Outgoing { notice, o: 9 }));
        let payload = serde_json::to_string(&batch).unwrap();
        assert_eq!(foreign_notices(&payload, 7), vec![entry(3)]);
        assert_eq!(foreign_notices(&payload, 9), vec![entry(1), entry(2)]);
        // Replicas of earlier versions, which read the notices alone,
        // still read them all.
        let read: Vec<Notice> = serde_json::from_str(&payload).unwrap();
        assert_eq!(read, vec![entry(1), entry(2), entry(3)]);
    }

    #[test]
    fn notices_from_replicas_that_do_not_mark_them_are_heard() {
        // A batch, and a single notice, as replicas of earlier versions
        // sent them.
        let batch = serde_json::to_string(&[entry(1), entry(2)]).unwrap();
        assert_eq!(foreign_notices(&batch, 7), vec![entry(1), entry(2)]);
        let one = serde_json::to_string(&entry(3)).unwrap();
        assert_eq!(foreign_notices(&one, 7), vec![entry(3)]);
        assert_eq!(foreign_notices("not json", 7), Vec::<Notice>::new());
    }
}
