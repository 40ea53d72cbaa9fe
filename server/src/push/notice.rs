//! What travels between the parts of push delivery: notices, the
//! subscribers of connections, and the frames sent to them.

use std::sync::Arc;

use curbside_proto::audit::Outcome;
use curbside_proto::threads::ReceiptKind;
use serde::{Deserialize, Serialize};

use crate::audit::NewEntry;

/// A text frame for a connection: cheap to clone, so one event serves
/// every connection it goes to.
pub type Frame = axum::extract::ws::Utf8Bytes;

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
    /// `user_id` acknowledged urgent message `seq` of `thread_id`.
    Acknowledged {
        /// The thread.
        thread_id: String,
        /// The urgent message.
        seq: i64,
        /// Who.
        user_id: String,
        /// When.
        at_ms: i64,
    },
    /// Nobody acknowledged urgent message `seq` of `thread_id` in time.
    Urgent {
        /// The thread.
        thread_id: String,
        /// The urgent message.
        seq: i64,
        /// `realerted` or `escalated`.
        stage: curbside_proto::clinical::UrgentStage,
        /// Whom it escalated to.
        backup_user: Option<String>,
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
    pub(super) fn entry(&self, action: &str, resource: (&str, &str), time_ms: i64) -> NewEntry {
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
            evidence: None,
        }
    }
}

/// A notice, with what the writer already pushed of it.
pub(super) struct Delivery {
    pub(super) notice: Notice,
    pub(super) pushed: Option<Pushed>,
}

/// What the audit writer pushed of a message with its commit: the
/// thread's member devices then, and the connections it pushed to. The
/// dispatcher pushes it only to connections of those devices made since.
pub(super) struct Pushed {
    pub(super) members: Arc<[String]>,
    pub(super) connections: Vec<u64>,
}

/// Notices handled together, at most: their entries and members are read
/// in two queries, whatever their number, and sent in as few `NOTIFY`s.
pub(super) const NOTICES_PER_BATCH: usize = 256;
