//! The dispatcher: for each notice, the connected devices that may see
//! what it names and were not pushed it already; each push audited, then
//! sent.

use std::collections::HashMap;
use std::sync::Arc;

use curbside_proto::threads::{Blob, Event, Welcome};
use tokio::sync::mpsc;

use super::notice::{Delivery, Frame, NOTICES_PER_BATCH, Notice, Pushed};
use super::registry::{Events, Mailboxes, PUSH_ENTRY};
use super::relay::{listen, publish};
use crate::audit::AuditError;
use crate::db::thread_entry::{self, EntryRow};
use crate::db::{Database, delivery};
use crate::pipeline::writer::AuditLog;

/// Starts the dispatcher of `events`, with its pushes' entries appended to
/// `audit`; on PostgreSQL it also sends this process's notices to the
/// other replicas and listens for theirs on `database_url`.
pub fn start(
    events: &Arc<Events>,
    mailboxes: Mailboxes,
    database_url: &str,
    audit: AuditLog,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(dispatch(
        events.clone(),
        mailboxes,
        database_url.to_owned(),
        audit,
    ))
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

/// The entries and thread members that a batch of notices names.
#[derive(Default)]
struct Prefetched {
    entries: HashMap<(String, i64), EntryRow>,
    /// Each thread's member devices, and those removed at or after the
    /// first entry named.
    members: HashMap<String, Vec<delivery::MemberDevice>>,
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
    for member in delivery::members_since(database.pool(), &threads, first_seq).await? {
        prefetched
            .members
            .entry(member.thread_id.clone())
            .or_default()
            .push(member);
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
    delivery::current_members(database.pool(), thread_id, seq)
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
                        .filter(|member| {
                            // Members then: joined before it, and not removed
                            // before it (a device reads up to the commit
                            // that removed it, that commit included).
                            member.joined_seq < seq
                                && member.removed_seq.is_none_or(|removed| removed >= seq)
                        })
                        .map(|member| member.device_id.clone())
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
            let Some(pending) = delivery::welcome(database.pool(), &welcome_id, &device_id)
                .await
                .ok()
                .flatten()
            else {
                return;
            };
            (
                vec![device_id],
                Event::Welcome {
                    welcome: Welcome {
                        welcome_id: welcome_id.clone(),
                        thread_id: pending.thread_id,
                        epoch: u64::try_from(pending.epoch).unwrap_or(0),
                        joined_seq: u64::try_from(pending.joined_seq).unwrap_or(0),
                        welcome: Blob(pending.welcome),
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
        Notice::Acknowledged {
            thread_id,
            seq,
            user_id,
            at_ms,
        } => (
            members(database, &thread_id, i64::MAX).await,
            Event::Acknowledged {
                thread_id: thread_id.clone(),
                seq: u64::try_from(seq).unwrap_or(0),
                user_id,
                at_ms,
            },
            "thread.urgent.push",
            (String::from("thread"), thread_id),
        ),
        Notice::Urgent {
            thread_id,
            seq,
            stage,
            backup_user,
        } => (
            members(database, &thread_id, i64::MAX).await,
            Event::Urgent {
                thread_id: thread_id.clone(),
                seq: u64::try_from(seq).unwrap_or(0),
                stage,
                backup_user,
            },
            "thread.urgent.push",
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
    audited: tokio::task::JoinHandle<Result<(), Arc<AuditError>>>,
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
