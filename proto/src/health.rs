//! Bodies of the unauthenticated liveness and readiness probes.
//!
//! They say nothing about the software's version or configuration: a probe
//! is reachable by anyone who can reach the port.

use serde::{Deserialize, Serialize};

/// `GET /v1/health`: the process is up and serving TLS.
pub const HEALTH_PATH: &str = "/v1/health";
/// `GET /v1/ready`: the process can reach its database.
pub const READY_PATH: &str = "/v1/ready";

/// The liveness answer; it only ever says `"ok"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Always [`HealthStatus::Ok`].
    pub status: HealthStatus,
}

/// The only liveness state a server that answers can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// The server is alive.
    Ok,
}

/// The readiness answer, sent with 200 when the database answers.
/// When it does not, the server answers 503 with an error body instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// Always [`ReadyStatus::Ready`].
    pub status: ReadyStatus,
}

/// The readiness state reported with 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    /// The database answers and its schema is current.
    Ready,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn health_and_ready_round_trip() {
        let health = Health {
            status: HealthStatus::Ok,
        };
        let bytes = json::encode(&health).unwrap();
        assert_eq!(bytes, br#"{"status":"ok"}"#);
        assert_eq!(json::decode::<Health>(&bytes).unwrap(), health);

        let ready = Ready {
            status: ReadyStatus::Ready,
        };
        let bytes = json::encode(&ready).unwrap();
        assert_eq!(bytes, br#"{"status":"ready"}"#);
        assert_eq!(json::decode::<Ready>(&bytes).unwrap(), ready);
    }

    #[test]
    fn health_refuses_other_statuses_and_fields() {
        assert!(json::decode::<Health>(br#"{"status":"degraded"}"#).is_err());
        assert!(json::decode::<Health>(br#"{"status":"ok","version":"1"}"#).is_err());
    }
}
