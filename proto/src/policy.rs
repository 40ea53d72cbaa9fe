//! The organisation's messaging policy: what may be discussed on Curbside
//! and how patient information is handled. Administrators publish it in
//! numbered versions; every user accepts the current version before using
//! threads, and each acceptance is audited.

use serde::{Deserialize, Serialize};

/// `GET /v1/policy`: the current policy and the caller's acceptance.
pub const POLICY_PATH: &str = "/v1/policy";
/// `POST /v1/policy/accept`.
pub const ACCEPT_PATH: &str = "/v1/policy/accept";
/// `POST /v1/admin/policy`: publish a new version.
pub const ADMIN_POLICY_PATH: &str = "/v1/admin/policy";
/// `GET /v1/admin/policy/versions`.
pub const ADMIN_VERSIONS_PATH: &str = "/v1/admin/policy/versions";
/// `GET /v1/admin/policy/pending`: who has not accepted the current version.
pub const ADMIN_PENDING_PATH: &str = "/v1/admin/policy/pending";

/// The longest policy text, in characters.
pub const MAX_POLICY_CHARS: usize = 100_000;

/// One published version of the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyVersion {
    /// 1 for the first version, then one more for each.
    pub version: u64,
    /// The policy's text (plain text; paragraphs separated by blank lines).
    pub text: String,
    /// When it was published (Unix ms).
    pub published_at_ms: i64,
    /// The administrator who published it.
    pub published_by: String,
}

/// `GET /v1/policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyState {
    /// The current version, if any was published.
    #[serde(default)]
    pub current: Option<PolicyVersion>,
    /// The latest version the caller accepted, if any.
    #[serde(default)]
    pub accepted_version: Option<u64>,
}

/// `POST /v1/policy/accept`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AcceptPolicy {
    /// The version read and accepted: it must be the current one.
    pub version: u64,
}

/// `POST /v1/admin/policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PublishPolicy {
    /// The new version's text.
    pub text: String,
}

/// `GET /v1/admin/policy/versions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyVersions {
    /// Every version, newest first.
    pub versions: Vec<PolicyVersion>,
}

/// `GET /v1/admin/policy/pending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyPending {
    /// The current version, if any was published.
    #[serde(default)]
    pub version: Option<u64>,
    /// Active users who have not accepted it, by name.
    pub users: Vec<crate::identity::User>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn policy_state_round_trips_and_refuses_unknown_fields() {
        let state = PolicyState {
            current: Some(PolicyVersion {
                version: 2,
                text: "Use initials, not names.".into(),
                published_at_ms: 1,
                published_by: "a".repeat(32),
            }),
            accepted_version: Some(1),
        };
        let bytes = json::encode(&state).unwrap();
        assert_eq!(json::decode::<PolicyState>(&bytes).unwrap(), state);
        assert!(json::decode::<AcceptPolicy>(br#"{"version":1,"extra":0}"#).is_err());
        assert_eq!(
            json::decode::<PolicyState>(br"{}").unwrap(),
            PolicyState {
                current: None,
                accepted_version: None
            }
        );
    }
}
