//! An entry to append, before the log numbers it.

use curbside_proto::audit::{AuditEntry, Outcome};

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
    /// What the client proved with its own key (a receipt's signature).
    pub evidence: Option<String>,
}

impl NewEntry {
    /// The entry at sequence number `seq`.
    pub fn at(&self, seq: u64) -> AuditEntry {
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
            evidence: self.evidence.clone(),
        }
    }
}
