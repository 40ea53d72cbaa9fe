//! Live delivery: each new thread entry, welcome and receipt is pushed to
//! every connected member device at once.
//!
//! A handler that committed something announces it with a small [`Notice`]
//! (ids only). On PostgreSQL the notices go out with `NOTIFY`, a batch per
//! `NOTIFY`, so every replica hears them, its own included, through a
//! `LISTEN` connection; on
//! SQLite (one server) it goes straight to this process's dispatcher. The
//! dispatcher reads what the notice names, finds which of the devices
//! connected here may see it (current members, at the time of the event),
//! writes the audit entry of each push, and hands the event to the
//! device's connections. Nothing depends on this: a device that was away,
//! or missed a push, catches up by sequence number.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use curbside_proto::audit::Outcome;
use curbside_proto::threads::{Blob, Event, ReceiptKind, Welcome};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::audit::{AuditLog, NewEntry};
use crate::db::Database;
use crate::http::threads::{ENTRY_COLUMNS, EntryRow, thread_entry};

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

struct Connection {
    id: u64,
    subscriber: Subscriber,
    sender: mpsc::Sender<String>,
}

/// The devices connected to this server, and the way notices reach it.
pub struct Events {
    connections: Mutex<HashMap<String, Vec<Connection>>>,
    next_id: AtomicU64,
    local: mpsc::UnboundedSender<Notice>,
    database: Database,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// Starts the dispatcher: on PostgreSQL it listens on `database_url`;
    /// on SQLite it takes notices from this process.
    pub fn start(
        database: Database,
        database_url: &str,
        audit: AuditLog,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (local, notices) = mpsc::unbounded_channel();
        let events = Arc::new(Self {
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            local,
            database,
        });
        let task = tokio::spawn(dispatch(
            events.clone(),
            notices,
            database_url.to_owned(),
            audit,
        ));
        (events, task)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Connection>>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Announces a committed change. Never fails the request: a lost
    /// notice only delays a device until it fetches.
    pub fn announce(&self, notice: Notice) {
        let _ = self.local.send(notice);
    }

    /// Registers a connection of `subscriber`'s device; returns its id and
    /// the frames to send it.
    pub fn connect(&self, subscriber: Subscriber) -> (u64, mpsc::Receiver<String>) {
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

    /// The connections of these devices that are here.
    fn here(&self, devices: &[String]) -> Vec<(u64, Subscriber, mpsc::Sender<String>)> {
        let connections = self.lock();
        devices
            .iter()
            .filter_map(|device| connections.get(device))
            .flatten()
            .map(|connection| {
                (
                    connection.id,
                    connection.subscriber.clone(),
                    connection.sender.clone(),
                )
            })
            .collect()
    }

    fn anyone_here(&self) -> bool {
        !self.lock().is_empty()
    }
}

async fn dispatch(
    events: Arc<Events>,
    mut local: mpsc::UnboundedReceiver<Notice>,
    database_url: String,
    audit: AuditLog,
) {
    let (pushes, queued) = mpsc::channel(PUSHES_IN_FLIGHT);
    tokio::spawn(push_in_order(events.clone(), queued));
    if events.database.is_postgres() {
        tokio::spawn(publish(events.database.clone(), local));
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
        // A payload is a batch of notices (see `publish`), or one notice
        // from a replica of the version before.
        let parse = |notification: sqlx::postgres::PgNotification| -> Vec<Notice> {
            serde_json::from_str(notification.payload())
                .or_else(|_| serde_json::from_str(notification.payload()).map(|one| vec![one]))
                .unwrap_or_default()
        };
        loop {
            match listener.recv().await {
                Ok(notification) => {
                    // With whatever else has arrived.
                    let mut notices = parse(notification);
                    while notices.len() < NOTICES_PER_BATCH {
                        let Some(notification) = listener.next_buffered() else {
                            break;
                        };
                        notices.extend(parse(notification));
                    }
                    deliver_all(&events, &audit, &pushes, notices).await;
                }
                // The listener reconnects by itself; what was missed is
                // fetched by the devices.
                Err(error) => {
                    tracing::warn!(%error, "the event listener lost its connection");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    } else {
        let mut notices = Vec::with_capacity(NOTICES_PER_BATCH);
        while local.recv_many(&mut notices, NOTICES_PER_BATCH).await > 0 {
            deliver_all(&events, &audit, &pushes, std::mem::take(&mut notices)).await;
        }
    }
}

/// How long notices are gathered for one `NOTIFY`.
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// The most bytes of notices in one `NOTIFY` (PostgreSQL's limit is 8000).
const MAX_PAYLOAD: usize = 7000;

/// Sends this process's notices to every replica (itself included), a
/// batch per `NOTIFY`: each `NOTIFY` is a transaction and a commit of its
/// own, and one per message could not keep up (measured: 1000 messages/s
/// left pushes 9 s behind).
async fn publish(database: Database, mut local: mpsc::UnboundedReceiver<Notice>) {
    let mut notices = Vec::with_capacity(NOTICES_PER_BATCH);
    while local.recv_many(&mut notices, NOTICES_PER_BATCH).await > 0 {
        // With what follows within a moment: each NOTIFY costs a round trip
        // here and, on every replica, a read of what it names. Without the
        // pause, quick commits made NOTIFYs of a notice or two, and at
        // 1,000 messages/s the replicas' readers fell half a second behind
        // (measured).
        tokio::time::sleep(GATHER).await;
        while notices.len() < NOTICES_PER_BATCH {
            match local.try_recv() {
                Ok(notice) => notices.push(notice),
                Err(_) => break,
            }
        }
        let mut payloads: Vec<Vec<&Notice>> = vec![Vec::new()];
        let mut size = 0;
        for notice in &notices {
            let length = serde_json::to_string(notice).map_or(0, |text| text.len()) + 1;
            if size + length > MAX_PAYLOAD {
                payloads.push(Vec::new());
                size = 0;
            }
            size += length;
            if let Some(payload) = payloads.last_mut() {
                payload.push(notice);
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
    /// Each thread's current member devices, with the sequence each joined
    /// at.
    members: HashMap<String, Vec<(String, i64)>>,
}

/// A log row with its thread: thread, then [`EntryRow`]'s columns.
type ThreadEntryRow = (
    String,
    i64,
    String,
    i64,
    String,
    String,
    i64,
    Vec<u8>,
    Option<String>,
    Option<String>,
);

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
    let pairs: Vec<String> = (0..wanted.len())
        .map(|n| format!("(thread_id = ${} AND seq = ${})", 2 * n + 1, 2 * n + 2))
        .collect();
    let sql = format!(
        "SELECT thread_id, {ENTRY_COLUMNS} FROM thread_entry WHERE {}",
        pairs.join(" OR ")
    );
    let mut query = sqlx::query_as::<_, ThreadEntryRow>(&sql);
    for (thread, seq) in &wanted {
        query = query.bind(*thread).bind(*seq);
    }
    for (thread, seq, kind, epoch, user, device, at, body, added, removed) in
        query.fetch_all(database.pool()).await?
    {
        prefetched.entries.insert(
            (thread, seq),
            (seq, kind, epoch, user, device, at, body, added, removed),
        );
    }
    let sql = format!(
        "SELECT m.thread_id, m.device_id, m.joined_seq FROM thread_member m \
         JOIN device d ON d.device_id = m.device_id JOIN app_user u ON u.user_id = m.user_id \
         WHERE m.thread_id IN ({}) AND m.removed_seq IS NULL \
           AND d.removed_at_ms IS NULL AND u.status = 'active'",
        placeholders(1, threads.len())
    );
    let mut query = sqlx::query_as::<_, (String, String, i64)>(&sql);
    for thread in &threads {
        query = query.bind(*thread);
    }
    for (thread, device, joined) in query.fetch_all(database.pool()).await? {
        prefetched
            .members
            .entry(thread)
            .or_default()
            .push((device, joined));
    }
    Ok(prefetched)
}

/// Delivers a batch of notices, in order.
async fn deliver_all(
    events: &Arc<Events>,
    audit: &AuditLog,
    pushes: &mpsc::Sender<Push>,
    notices: Vec<Notice>,
) {
    if !events.anyone_here() {
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
    for notice in notices {
        deliver(events, audit, pushes, notice, &mut prefetched).await;
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
    prefetched: &mut Prefetched,
) {
    let database = &events.database;
    let (devices, event, action, thread) = match notice {
        Notice::Entry { thread_id, seq } => {
            let Some(row) = prefetched.entries.remove(&(thread_id.clone(), seq)) else {
                return;
            };
            let entry = thread_entry(row);
            let devices = prefetched
                .members
                .get(&thread_id)
                .map(|members| {
                    members
                        .iter()
                        .filter(|(_, joined)| *joined < seq)
                        .map(|(device, _)| device.clone())
                        .collect()
                })
                .unwrap_or_default();
            (
                devices,
                Event::Entry {
                    thread_id: thread_id.clone(),
                    entry,
                },
                "thread.entries.push",
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
    let Ok(frame) = serde_json::to_string(&event) else {
        return;
    };
    for (id, subscriber, sender) in events.here(&devices) {
        // Each push is a read of the thread by that device: audited first,
        // and not sent if its entry cannot be written. The entries of many
        // pushes share a commit: each is appended in a task of its own, and
        // the pushes wait for them in order (see `push_in_order`).
        let entry = NewEntry {
            time_ms: crate::server::now_ms(),
            actor_user: Some(subscriber.user_id.clone()),
            actor_device: Some(subscriber.device_id.clone()),
            client_addr: subscriber.client_addr.clone(),
            request_id: subscriber.request_id.clone(),
            action: action.to_owned(),
            resource_type: thread.0.clone(),
            resource_id: Some(thread.1.clone()),
            outcome: Outcome::Allowed,
            reason: "ok".to_owned(),
        };
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
    sender: mpsc::Sender<String>,
    frame: String,
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
