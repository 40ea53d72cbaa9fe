//! The organisation's retention policy and legal holds: administrators
//! set and place them, auditors see them, the server's sweep obeys them.

use serde::{Deserialize, Serialize};

/// `GET`/`PUT`: the retention policy.
pub const RETENTION_PATH: &str = "/v1/admin/retention";
/// `GET` lists holds; `POST` places one.
pub const HOLDS_PATH: &str = "/v1/admin/holds";
/// `POST`: lifts a hold.
pub const HOLD_LIFT_PATH: &str = "/v1/admin/holds/{hold_id}/lift";

/// The shortest maximum age a policy may set (one day).
pub const MIN_MAX_AGE_S: u64 = 24 * 3600;
/// The longest (a hundred years).
pub const MAX_MAX_AGE_S: u64 = 100 * 365 * 24 * 3600;
/// The longest reason a hold may give, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// The organisation-wide maximum age of thread content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Thread content older than this many seconds is purged, unless a
    /// legal hold covers it; `null`: off (the default).
    pub max_age_s: Option<u64>,
    /// When an administrator last set it.
    pub updated_at_ms: Option<i64>,
    /// Who.
    pub updated_by: Option<String>,
}

/// `PUT /v1/admin/retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RetentionUpdate {
    /// Seconds, from [`MIN_MAX_AGE_S`] to [`MAX_MAX_AGE_S`]; `null` turns
    /// the policy off.
    pub max_age_s: Option<u64>,
}

/// What a legal hold covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HoldScope {
    /// One thread's content.
    Thread,
    /// The content of every thread a user is or was a member of.
    User,
}

impl HoldScope {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thread => "thread",
            Self::User => "user",
        }
    }

    /// From [`Self::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "thread" => Some(Self::Thread),
            "user" => Some(Self::User),
            _ => None,
        }
    }
}

/// `POST /v1/admin/holds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewHold {
    /// A thread or a user.
    pub scope: HoldScope,
    /// The thread's or the user's id.
    pub target_id: String,
    /// Why (a matter, a case number), 1 to 500 characters.
    pub reason: String,
}

/// A legal hold, current or lifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Hold {
    /// Its id.
    pub hold_id: String,
    /// A thread or a user.
    pub scope: HoldScope,
    /// The thread's or the user's id.
    pub target_id: String,
    /// Why it was placed.
    pub reason: String,
    /// The administrator who placed it.
    pub placed_by: String,
    /// When.
    pub placed_at_ms: i64,
    /// The administrator who lifted it, if one did.
    pub lifted_by: Option<String>,
    /// When.
    pub lifted_at_ms: Option<i64>,
}

/// `GET /v1/admin/holds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HoldList {
    /// Every hold, newest first.
    pub holds: Vec<Hold>,
}
