//! The devices connected to this process, and the way notices reach its
//! dispatcher; as the write pipeline's [`Pusher`], the pushes of each
//! batch of messages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use curbside_proto::threads::Event;
use tokio::sync::mpsc;

use super::notice::{Delivery, Frame, Notice, Pushed, QUEUE, Subscriber};
use crate::audit::NewEntry;
use crate::db::Database;
use crate::db::message_batch::NewMessage;
use crate::db::thread_entry::EntryRow;
use crate::pipeline::writer::{PlannedPushes, Pusher};

pub(super) struct Connection {
    pub(super) id: u64,
    pub(super) subscriber: Subscriber,
    pub(super) sender: mpsc::Sender<Frame>,
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
    pub(super) origin: u64,
    pub(super) database: Database,
    /// To the push gateway's task (`super::gateway`), if one is configured.
    gateway: OnceLock<mpsc::Sender<Notice>>,
    /// Whether any device may have a push token: until one registers,
    /// nothing is handed to the gateway's task.
    tokens: AtomicBool,
}

/// The receiving ends of an [`Events`]' queues, for
/// [`super::dispatch::start`].
pub struct Mailboxes {
    pub(super) inbox: mpsc::UnboundedReceiver<Delivery>,
    pub(super) outbox: Option<mpsc::UnboundedReceiver<Notice>>,
}

impl std::fmt::Debug for Mailboxes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailboxes").finish_non_exhaustive()
    }
}

/// The pushes of a batch's messages, decided inside its transaction.
struct CommitPushes {
    events: Arc<Events>,
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

/// The most pushes the audit writer makes with one commit; the dispatcher
/// makes any beyond (after a commit of their own), so that a thread of
/// many connected devices cannot make the writer's transaction, which
/// every audited request waits for, as large as it likes.
const MAX_PUSHES_PER_COMMIT: usize = 1024;

/// The audit action of a pushed thread entry.
pub(super) const PUSH_ENTRY: &str = "thread.entries.push";

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// The connections of this process, none yet, and the queues that
    /// [`super::dispatch::start`] takes.
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
            gateway: OnceLock::new(),
            tokens: AtomicBool::new(false),
        });
        let mailboxes = Mailboxes {
            inbox: inbox_receiver,
            outbox: outbox_receiver,
        };
        (events, mailboxes)
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

    /// Hands another replica's `notice` to this process's dispatcher.
    pub(super) fn hear(&self, notice: Notice) {
        let _ = self.inbox.send(Delivery {
            notice,
            pushed: None,
        });
    }

    /// Hands this process's notices to the push gateway's task from now
    /// on, and whether any device has a token.
    pub(super) fn attach_gateway(&self, sender: mpsc::Sender<Notice>) {
        let _ = self.gateway.set(sender);
    }

    /// A device set or withdrew its push token (or some may have one, at
    /// start): the gateway's task is given notices from now on.
    pub fn tokens_changed(&self) {
        self.tokens.store(true, Ordering::Relaxed);
    }

    /// Hands `notice` to this process's dispatcher and, on PostgreSQL, to
    /// the other replicas; and to the push gateway when devices may have
    /// tokens (notices heard from other replicas are theirs to send).
    fn post(&self, notice: Notice, pushed: Option<Pushed>) {
        if self.tokens.load(Ordering::Relaxed)
            && let Some(gateway) = self.gateway.get()
        {
            // A full queue drops the notice: a wake-up is a prompt, and the
            // device fetches everything when it connects.
            let _ = gateway.try_send(notice.clone());
        }
        if let Some(outbox) = &self.outbox {
            let _ = outbox.send(notice.clone());
        }
        let _ = self.inbox.send(Delivery { notice, pushed });
    }

    /// How many live-event connections this process holds.
    pub fn connection_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
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
    pub(super) fn each_here<T>(
        &self,
        devices: &[String],
        pick: impl FnMut(&Connection) -> T,
    ) -> Vec<T> {
        let connections = self.lock();
        devices
            .iter()
            .filter_map(|device| connections.get(device))
            .flatten()
            .map(pick)
            .collect()
    }

    /// The connections of these devices that are here.
    pub(super) fn here(&self, devices: &[String]) -> Vec<(u64, Subscriber, mpsc::Sender<Frame>)> {
        self.each_here(devices, |connection| {
            (
                connection.id,
                connection.subscriber.clone(),
                connection.sender.clone(),
            )
        })
    }

    pub(super) fn anyone_here(&self) -> bool {
        !self.lock().is_empty()
    }
}

impl Pusher for Events {
    /// The connections here that each accepted message is to be pushed
    /// to.
    fn plan(
        self: Arc<Self>,
        messages: &[&NewMessage],
        seqs: &[Option<i64>],
        members: &HashMap<String, Arc<[String]>>,
    ) -> Box<dyn PlannedPushes> {
        let mut pushes = CommitPushes {
            events: self.clone(),
            messages: Vec::new(),
        };
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
        Box::new(pushes)
    }
}

impl PlannedPushes for CommitPushes {
    /// The audit entries of the pushes of `messages` (the batch's), to
    /// append with them.
    fn entries(&self, messages: &[&NewMessage], time_ms: i64) -> Vec<NewEntry> {
        self.messages
            .iter()
            .flat_map(|pushes| {
                let thread_id = messages
                    .get(pushes.index)
                    .map_or("", |message| message.thread_id.as_str());
                pushes.targets.iter().map(move |(_, subscriber, _)| {
                    subscriber.entry(PUSH_ENTRY, ("thread", thread_id), time_ms)
                })
            })
            .collect()
    }

    /// Once the transaction that appended `messages` (the batch's) and
    /// their pushes' entries has committed at `time_ms`: pushes them, and
    /// announces each message.
    fn committed(self: Box<Self>, messages: &[&NewMessage], time_ms: i64) {
        let events = &self.events;
        for pushes in self.messages {
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
                        recalls: None,
                        recalled_at_ms: None,
                        lifespan_ms: None,
                        purged_at_ms: None,
                        urgent: 0,
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
                            events.disconnect(&subscriber.device_id, id);
                        }
                    }
                }
            }
            events.post(
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
}
