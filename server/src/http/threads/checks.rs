//! The checks every thread route shares: a request's sizes and numbers,
//! the write limit, and the caller's membership, which answers anyone else
//! 404 as if the thread did not exist.

use curbside_proto::threads::{Blob, MAX_THREAD_DEVICES, is_thread_id};
use sqlx::Any;

use crate::auth::rate_limit::Limit;
use crate::auth::sessions::Caller;
use crate::db::thread_member;
use crate::http::access::Access;
use crate::http::error::{Error, Result};
use crate::http::state::AppState;

pub(super) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(super) fn to_i64(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::InvalidRequest("a number is out of range".to_owned()))
}

pub(super) fn check_size(state: &AppState, name: &str, blob: &Blob) -> Result<()> {
    if blob.0.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "`{name}` is empty; send the serialized MLS message"
        )));
    }
    if blob.0.len() > state.max_message_bytes {
        return Err(Error::MessageTooLarge {
            limit: state.max_message_bytes,
        });
    }
    Ok(())
}

/// Refuses a user writing to threads faster than any person could.
pub(super) fn limit_writes(state: &AppState, caller: &Caller) -> Result<()> {
    state
        .auth
        .limits
        .check(Limit::ThreadWritesPerUser, &caller.user_id)?;
    Ok(())
}

/// The thread no one may know of: 404, audited with why.
pub(super) fn hidden(access: &Access) -> Error {
    access.reason("not_a_member");
    Error::NotFound
}

/// The current membership of the caller's device: the sequence it joined
/// at. Anyone else gets 404.
pub(super) async fn membership(
    state: &AppState,
    access: &Access,
    caller: &Caller,
    thread_id: &str,
) -> Result<i64> {
    joined_seq(state.database.pool(), access, caller, thread_id).await
}

pub(super) async fn joined_seq<'c, E>(
    executor: E,
    access: &Access,
    caller: &Caller,
    thread_id: &str,
) -> Result<i64>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    if !is_thread_id(thread_id) {
        return Err(Error::NotFound);
    }
    thread_member::joined_seq(executor, thread_id, &caller.device_id)
        .await?
        .ok_or_else(|| hidden(access))
}

pub(super) fn check_devices(devices: &[String], field: &str) -> Result<()> {
    if devices.len() > MAX_THREAD_DEVICES {
        return Err(Error::InvalidRequest(format!(
            "`{field}` names more than {MAX_THREAD_DEVICES} devices"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for device in devices {
        if !seen.insert(device) {
            return Err(Error::InvalidRequest(format!(
                "`{field}` names a device twice"
            )));
        }
    }
    Ok(())
}
