//! What every handler shares.

use axum::extract::FromRef;

use super::error::{Error, Result};
use super::refusals;
use crate::db::Database;

/// Everything handlers share. Cheap to clone: each field is a handle.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    /// The database pool.
    pub database: Database,
    /// Tokens, sessions and rate limits.
    pub auth: std::sync::Arc<crate::auth::Auth>,
    /// The audit log every protected request writes to.
    pub audit: crate::pipeline::writer::AuditLog,
    /// Live delivery to connected devices.
    pub events: std::sync::Arc<crate::push::Events>,
    /// The largest MLS message accepted, in bytes.
    pub max_message_bytes: usize,
    /// The largest attachment and each user's quota.
    pub attachments: AttachmentLimits,
    /// Whether the data directory's disk is nearly full.
    pub disk: std::sync::Arc<crate::disk::DiskGuard>,
    /// What each route does, for its audit entry (from the API document).
    pub vocabulary: &'static super::vocabulary::Vocabulary,
    /// Per-address refusal allowances, and refusals counted past them.
    pub refusals: std::sync::Arc<refusals::Refusals>,
    /// The TLS certificate being served (the console shows its
    /// fingerprint).
    pub certificate: std::sync::Arc<crate::tls::CurrentCertificate>,
    /// The overview's counts of days that are over (they never change),
    /// by the day's first Unix ms.
    pub finished_days: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<i64, DayCount>>>,
    /// What `/metrics` shows.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// The tokens of the services that call without a session.
    pub services: ServiceTokens,
}

/// The tokens of the services that call without a session; a service
/// without one is off.
#[derive(Debug, Clone, Default)]
pub struct ServiceTokens {
    /// The identity provider's, for SCIM provisioning.
    pub scim: Option<crate::config::ServiceToken>,
    /// Prometheus's, for `/metrics`.
    pub metrics: Option<crate::config::ServiceToken>,
}

/// What attachments may take.
#[derive(Debug, Clone, Copy)]
pub struct AttachmentLimits {
    /// The largest file, in bytes, before encryption.
    pub max_file_bytes: u64,
    /// The most bytes of attachments (as stored) one user may have.
    pub quota_bytes: u64,
}

/// One finished day's counts for the overview.
#[derive(Debug, Clone, Copy)]
pub struct DayCount {
    /// Allowed `thread.message.send` entries.
    pub messages: u64,
    /// Audit entries.
    pub audit_entries: u64,
}

/// Runs `work` to completion even if the request that started it is
/// cancelled (the client hangs up, the request times out). Revocations use
/// it so that a committed change is never left without its cache eviction.
pub(crate) async fn finish<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(work)
        .await
        .map_err(|error| Error::Internal(error.to_string()))?
}
