//! On PostgreSQL, notices to and from the other replicas: this
//! process's go out a batch per `NOTIFY`, marked with its origin; the
//! others' come in through a `LISTEN` connection.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::notice::{NOTICES_PER_BATCH, Notice};
use super::registry::Events;
use crate::db::{Database, delivery};

/// The PostgreSQL channel notices travel on.
const CHANNEL: &str = "curbside_events";

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
pub(super) async fn listen(events: Arc<Events>, database_url: String) {
    let mut listener = match delivery::listen(&database_url, CHANNEL).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "cannot listen for events; devices will fetch instead");
            return;
        }
    };
    loop {
        match listener.recv().await {
            Ok(notification) => {
                for notice in foreign_notices(notification.payload(), events.origin) {
                    events.hear(notice);
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
pub(super) async fn publish(
    database: Database,
    mut outbox: mpsc::UnboundedReceiver<Notice>,
    origin: u64,
) {
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
            if let Err(error) = delivery::notify(database.pool(), CHANNEL, &payload).await {
                tracing::warn!(%error, "cannot announce events to the replicas");
            }
        }
        notices.clear();
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
