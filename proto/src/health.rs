//! Bodies of the unauthenticated liveness and readiness probes.
//!
//! They say nothing about the software's version or configuration: a probe
//! is reachable by anyone who can reach the port.

use serde::{Deserialize, Serialize};

/// `GET /v1/health`: the process is up and serving TLS.
pub const HEALTH_PATH: &str = "/v1/health";
/// `GET /v1/ready`: the process can reach its database.
pub const READY_PATH: &str = "/v1/ready";

/// The liveness answer; it only ever says `"ok"`, with what an operator
/// should look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Always [`HealthStatus::Ok`].
    pub status: HealthStatus,
    /// Conditions that need an operator's attention; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

/// A condition the server keeps serving through, but an operator should
/// act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Warning {
    /// The data directory's disk is nearly full: the server refuses
    /// unauthenticated work (enrollment, sign-in) until space is freed.
    DiskSpaceLow,
    /// Log lines were dropped because standard error refused them (a full
    /// disk, a closed pipe, a stalled log collector).
    LogLinesLost,
}

/// The only liveness state a server that answers can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// The server is alive.
    Ok,
}

/// The readiness answer, sent with 200 when the database answers.
/// When it does not, the server answers 503 with an error body instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// Always [`ReadyStatus::Ready`].
    pub status: ReadyStatus,
    /// Conditions that need an operator's attention; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// How many log lines were dropped since start; absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub log_lines_lost: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The readiness state reported with 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
            warnings: Vec::new(),
        };
        let bytes = json::encode(&health).unwrap();
        assert_eq!(bytes, br#"{"status":"ok"}"#);
        assert_eq!(json::decode::<Health>(&bytes).unwrap(), health);

        let ready = Ready {
            status: ReadyStatus::Ready,
            warnings: Vec::new(),
            log_lines_lost: 0,
        };
        let bytes = json::encode(&ready).unwrap();
        assert_eq!(bytes, br#"{"status":"ready"}"#);
        assert_eq!(json::decode::<Ready>(&bytes).unwrap(), ready);

        let troubled = Ready {
            status: ReadyStatus::Ready,
            warnings: vec![Warning::DiskSpaceLow, Warning::LogLinesLost],
            log_lines_lost: 3,
        };
        let bytes = json::encode(&troubled).unwrap();
        assert_eq!(
            bytes,
            br#"{"status":"ready","warnings":["disk_space_low","log_lines_lost"],"log_lines_lost":3}"#
        );
        assert_eq!(json::decode::<Ready>(&bytes).unwrap(), troubled);
    }

    #[test]
    fn health_refuses_other_statuses_and_fields() {
        assert!(json::decode::<Health>(br#"{"status":"degraded"}"#).is_err());
        assert!(json::decode::<Health>(br#"{"status":"ok","version":"1"}"#).is_err());
    }
}
