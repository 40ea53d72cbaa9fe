//! Clinical workflow: urgent messages, their acknowledgement and
//! escalation; roles held in shifts; the membership changes the server
//! asks member clients to commit (a user's new device, a backup an
//! escalation reached, a device that must go); and the push tokens of
//! devices that sleep.
//!
//! Priority is metadata the server sees (it must, to escalate), never
//! content: an urgent message's text is as encrypted as any other.

use serde::{Deserialize, Serialize};

/// `GET` lists roles and their shifts (administrators, auditors); `POST`
/// makes a role (administrators).
pub const ROLES_PATH: &str = "/v1/admin/roles";
/// `POST`: a shift of a role, held by a user.
pub const ROLE_SHIFTS_PATH: &str = "/v1/admin/roles/{role_id}/shifts";
/// `DELETE`: a shift is cancelled.
pub const ROLE_SHIFT_PATH: &str = "/v1/admin/roles/{role_id}/shifts/{shift_id}";
/// `GET`: every role, who holds it now and who next (any signed-in user).
pub const DIRECTORY_ROLES_PATH: &str = "/v1/directory/roles";
/// `GET` lists the escalation policies; `PUT` sets one department's.
pub const ESCALATION_PATH: &str = "/v1/admin/escalation";
/// `POST`: the caller's user acknowledges an urgent message.
pub const THREAD_ACK_PATH: &str = "/v1/threads/{thread_id}/ack";
/// `GET`: the changes of membership the caller's device should commit.
pub const PENDING_MEMBERSHIP_PATH: &str = "/v1/membership/pending";
/// `PUT` registers the caller's device's push token; `DELETE` removes it.
pub const PUSH_TOKEN_PATH: &str = "/v1/push-token";

/// The department an escalation policy names to cover every department
/// without a policy of its own.
pub const ANY_DEPARTMENT: &str = "*";
/// The longest role name, in characters.
pub const MAX_ROLE_NAME_CHARS: usize = 100;
/// The longest shift: 31 days.
pub const MAX_SHIFT_S: u64 = 31 * 24 * 3600;
/// The longest interval an escalation policy may set: a day.
pub const MAX_ESCALATION_S: u64 = 24 * 3600;
/// A push token's longest form, in bytes.
pub const MAX_PUSH_TOKEN_BYTES: usize = 4096;

/// `POST /v1/admin/roles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// "Cardiology on-call"; unique, whatever the case.
    pub name: String,
    /// The department it belongs to (its escalation policy applies).
    pub department: String,
}

/// `POST /v1/admin/roles/{role_id}/shifts`: `user_id` holds the role from
/// `starts_at_ms` to `ends_at_ms`. Where shifts overlap, the one that
/// started last holds the role (a handoff).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewShift {
    /// Who holds the role: an active user.
    pub user_id: String,
    /// From (Unix milliseconds).
    pub starts_at_ms: i64,
    /// Until (Unix milliseconds), after the start, at most 31 days on.
    pub ends_at_ms: i64,
    /// The IANA time zone the shift was planned in ("Europe/Paris"),
    /// for showing it.
    pub timezone: String,
}

/// A shift of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// Its id.
    pub shift_id: String,
    /// The role's.
    pub role_id: String,
    /// Who holds the role.
    pub user_id: String,
    /// Their display name.
    pub display_name: String,
    /// From.
    pub starts_at_ms: i64,
    /// Until.
    pub ends_at_ms: i64,
    /// The zone it was planned in.
    pub timezone: String,
}

/// A role and its shifts: those not over yet, and the last one that is
/// (so that a handoff shows who held it before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OnCallRole {
    /// Its id.
    pub role_id: String,
    /// Its name.
    pub name: String,
    /// Its department.
    pub department: String,
    /// Who holds it at the moment of the answer, if anyone.
    pub holder: Option<Shift>,
    /// Shifts in start order: the last one over, the current ones, the
    /// coming ones.
    pub shifts: Vec<Shift>,
}

/// `GET /v1/admin/roles` and `GET /v1/directory/roles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RoleList {
    /// By name.
    pub roles: Vec<OnCallRole>,
    /// The server's time of the answer, which `holder` is for.
    pub now_ms: i64,
}

impl RoleList {
    /// The role `given` names: its id, else its whole name, folded as
    /// people's names are (`crate::names::fold`: case and accents aside).
    pub fn find(&self, given: &str) -> Option<&OnCallRole> {
        let given = given.trim();
        self.roles
            .iter()
            .find(|role| role.role_id == given)
            .or_else(|| {
                let folded = crate::names::fold(given);
                self.roles
                    .iter()
                    .find(|role| crate::names::fold(&role.name) == folded)
            })
    }
}

/// Whom an escalation reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Backup {
    /// Whoever holds this role at the moment of escalation.
    Role {
        /// The role.
        role_id: String,
    },
    /// This user.
    User {
        /// The user.
        user_id: String,
    },
}

/// A department's escalation policy; `PUT /v1/admin/escalation` sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    /// The recipients' department it applies to; `*` for every
    /// department without one of its own.
    pub department: String,
    /// Seconds without an acknowledgement before the recipients are
    /// alerted again (1 to 86,400).
    pub realert_after_s: u64,
    /// Seconds, from sending, before the message escalates to the
    /// backup (more than `realert_after_s`, at most 86,400).
    pub escalate_after_s: u64,
    /// Whom it escalates to.
    pub backup: Backup,
}

/// `GET /v1/admin/escalation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicies {
    /// By department.
    pub policies: Vec<EscalationPolicy>,
}

/// `POST /v1/threads/{thread_id}/ack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// The urgent message acknowledged.
    pub seq: u64,
}

/// Where an urgent message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UrgentStage {
    /// Sent; nobody has acknowledged it yet.
    Sent,
    /// Nobody acknowledged it in time: the recipients were alerted again.
    Realerted,
    /// Still nobody: the backup was asked in.
    Escalated,
    /// Someone acknowledged it; escalation stopped.
    Acknowledged,
}

impl UrgentStage {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Realerted => "realerted",
            Self::Escalated => "escalated",
            Self::Acknowledged => "acknowledged",
        }
    }

    /// The stage stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "sent" => Some(Self::Sent),
            "realerted" => Some(Self::Realerted),
            "escalated" => Some(Self::Escalated),
            "acknowledged" => Some(Self::Acknowledged),
            _ => None,
        }
    }
}

/// One user's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Who.
    pub user_id: String,
    /// When.
    pub at_ms: i64,
}

/// An urgent message of a thread, for `GET /v1/threads/{thread_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UrgentStatus {
    /// The message.
    pub seq: u64,
    /// Its sender.
    pub sender_user: String,
    /// Where it stands.
    pub stage: UrgentStage,
    /// Who acknowledged it, in order.
    pub acks: Vec<Ack>,
    /// The backup it escalated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_to: Option<String>,
}

/// A device the server asks member clients to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PendingAdd {
    /// Its user.
    pub user_id: String,
    /// The device.
    pub device_id: String,
    /// When escalations asked the user in: the urgent messages the adding
    /// client is to pass on to them (they cannot read what was sent
    /// before they joined).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub for_urgent_seqs: Vec<u64>,
}

/// What one thread's members should commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PendingThread {
    /// The thread.
    pub thread_id: String,
    /// Devices to add: a member's device enrolled since, or every device
    /// of a backup an escalation reached.
    pub add: Vec<PendingAdd>,
    /// Devices still in the MLS group that are no longer members (removed,
    /// their user deactivated, or left): to be removed by a commit.
    pub remove: Vec<String>,
}

/// `GET /v1/membership/pending`: for the threads the caller's device is
/// in, what the first member client to see it is to commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PendingMembership {
    /// Only threads with something to do.
    pub threads: Vec<PendingThread>,
}

/// `PUT /v1/push-token`: where the push gateway reaches this device.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PushTokenRequest {
    /// The app the token belongs to (the gateway's `app_id`).
    pub app_id: String,
    /// The token (the gateway's `pushkey`); kept secret.
    pub token: String,
}

impl std::fmt::Debug for PushTokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushTokenRequest")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// The notice the server POSTs to the push gateway, in the shape of the
/// Matrix push gateway API (`/_matrix/push/v1/notify`) with only ids:
/// no content, no sender, no names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayNotify {
    /// The notice.
    pub notification: GatewayNotification,
}

/// See [`GatewayNotify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayNotification {
    /// The entry's sequence number, as text.
    pub event_id: String,
    /// The thread's id.
    pub room_id: String,
    /// `high` for urgent messages and their alerts, else `low`.
    pub prio: String,
    /// The device addressed (one per notice).
    pub devices: Vec<GatewayDevice>,
}

/// See [`GatewayNotify`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayDevice {
    /// The app.
    pub app_id: String,
    /// The token.
    pub pushkey: String,
}

impl std::fmt::Debug for GatewayDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayDevice")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// The gateway's answer: tokens it will never deliver to again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayAnswer {
    /// Rejected push keys.
    #[serde(default)]
    pub rejected: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_is_found_by_its_id_or_its_whole_name_whatever_the_case() {
        let role = |id: &str, name: &str| OnCallRole {
            role_id: id.to_owned(),
            name: name.to_owned(),
            department: "Cardiology".to_owned(),
            holder: None,
            shifts: Vec::new(),
        };
        let roles = RoleList {
            roles: vec![
                role("a1", "Cardiology on-call"),
                role("b2", "Rapid réponse"),
            ],
            now_ms: 0,
        };
        let found = |given: &str| roles.find(given).map(|role| role.role_id.as_str());
        assert_eq!(found("b2"), Some("b2"));
        assert_eq!(found(" cardiology  ON-CALL "), Some("a1"));
        assert_eq!(found("Rapid reponse"), Some("b2"));
        assert_eq!(found("Cardiology"), None);
        assert_eq!(found(""), None);
    }
}
