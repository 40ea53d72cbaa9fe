//! What a member's device reads of a thread and how far it has got: pages
//! of the log (a former member's up to where it left), and the delivery and
//! read receipts, which only move forward.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use curbside_proto::routes;
use curbside_proto::threads::{
    EndReason, EntryPage, MAX_ENTRIES_PAGE, MembershipEnded, Receipt, ReceiptKind, is_thread_id,
    receipt_evidence, receipt_message,
};
use serde::Deserialize;
use sqlx::{Any, Transaction};

use super::checks::{hidden, membership, to_i64, to_u64};
use crate::auth::sessions::Caller;
use crate::clock::now_ms;
use crate::db::thread_entry::{self, EntryRow};
use crate::db::{device, read_receipt, thread, thread_member};
use crate::http::access::Access;
use crate::http::error::{Error, Result};
use crate::http::extract;
use crate::http::state::AppState;
use crate::push::Notice;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct EntriesQuery {
    #[serde(default)]
    after: u64,
    limit: Option<u32>,
}

/// What the caller's device may read of a thread: from the commit that
/// added it, and, if its membership ended, up to where it ended.
struct Readable {
    joined_seq: i64,
    ended: Option<MembershipEnded>,
}

/// The caller's device's membership of `thread_id`, current or ended (a
/// former member reads the log up to where it left, and learns how it
/// ended); anyone who never was a member gets 404.
async fn readable(
    state: &AppState,
    access: &Access,
    caller: &Caller,
    thread_id: &str,
) -> Result<Readable> {
    if !is_thread_id(thread_id) {
        return Err(Error::NotFound);
    }
    let row =
        thread_member::membership(state.database.pool(), thread_id, &caller.device_id).await?;
    let Some(row) = row else {
        return Err(hidden(access));
    };
    let ended = row.removed_seq.map(|seq| MembershipEnded {
        seq: to_u64(seq),
        at_ms: row.removed_at_ms.unwrap_or(0),
        by_user: row.removed_by,
        // Ended before reasons were recorded: by a commit or a removal
        // the server cannot tell apart now.
        reason: row
            .removed_reason
            .as_deref()
            .and_then(EndReason::parse)
            .unwrap_or(EndReason::Removed),
    });
    Ok(Readable {
        joined_seq: row.joined_seq,
        ended,
    })
}

#[utoipa::path(
    get,
    path = routes::THREAD_ENTRIES,
    operation_id = "thread.entries.read",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id"), EntriesQuery),
    security(("session" = [])),
    responses((status = 200, description = "The thread's log, a page at a time", body = EntryPage)),
)]
pub(super) async fn entries(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
    Query(query): Query<EntriesQuery>,
) -> Result<Json<EntryPage>> {
    let readable = readable(&state, &access, &caller, &thread_id).await?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_ENTRIES_PAGE).contains(&limit) {
        return Err(Error::InvalidRequest(format!(
            "`limit` must be from 1 to {MAX_ENTRIES_PAGE}"
        )));
    }
    // A device reads from the commit that added it on, and a former member
    // up to where it left: nothing before, nothing after.
    let after = to_i64(query.after)?.max(readable.joined_seq);
    let through = readable.ended.as_ref().map_or(i64::MAX, |ended| {
        i64::try_from(ended.seq).unwrap_or(i64::MAX)
    });
    let pool = state.database.pool();
    let rows = thread_entry::page(pool, &thread_id, after, through, i64::from(limit)).await?;
    let (last_seq, lifespan_ms) = thread::log_state(pool, &thread_id).await?;
    let entries = rows.into_iter().map(EntryRow::into_entry).collect();
    Ok(Json(EntryPage {
        entries,
        last_seq: to_u64(last_seq.min(through)),
        ended: readable.ended,
        lifespan_s: lifespan_ms.and_then(|ms| u64::try_from(ms / 1000).ok()),
    }))
}

#[utoipa::path(
    post,
    path = routes::THREAD_DELIVERED,
    operation_id = "thread.receipt.delivered",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id")),
    request_body = Receipt,
    security(("session" = [])),
    responses((status = 204, description = "Recorded")),
)]
pub(super) async fn delivered(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
    extract::Json(receipt): extract::Json<Receipt>,
) -> Result<StatusCode> {
    record_receipt(
        &state,
        &access,
        caller,
        thread_id,
        receipt,
        ReceiptKind::Delivered,
    )
    .await
}

#[utoipa::path(
    post,
    path = routes::THREAD_READ,
    operation_id = "thread.receipt.read",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id")),
    request_body = Receipt,
    security(("session" = [])),
    responses((status = 204, description = "Recorded")),
)]
pub(super) async fn read(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
    extract::Json(receipt): extract::Json<Receipt>,
) -> Result<StatusCode> {
    record_receipt(
        &state,
        &access,
        caller,
        thread_id,
        receipt,
        ReceiptKind::Read,
    )
    .await
}

/// Moves the caller's device's delivery receipt or user's read receipt
/// forward (never back), and announces it if it moved.
async fn record_receipt(
    state: &AppState,
    access: &Access,
    caller: Caller,
    thread_id: String,
    receipt: Receipt,
    kind: ReceiptKind,
) -> Result<StatusCode> {
    membership(state, access, &caller, &thread_id).await?;
    let seq = to_i64(receipt.seq)?;
    check_signature(state, access, &caller, &thread_id, kind, &receipt).await?;
    access.evidence(receipt_evidence(
        receipt.seq,
        receipt.time_ms,
        &receipt.signature,
    ));
    // The write comes first (SQLite); one past the log is undone with the
    // transaction.
    let mut tx = state.database.pool().begin().await?;
    let moved = match kind {
        ReceiptKind::Delivered => {
            thread_member::advance_delivered(&mut *tx, &thread_id, &caller.device_id, seq).await?
        }
        ReceiptKind::Read => {
            read_receipt::advance(&mut *tx, &thread_id, &caller.user_id, seq).await?
        }
    };
    check_receipt(&mut tx, &thread_id, seq).await?;
    access.commit(state, tx).await?;
    if moved {
        state.events.announce(Notice::Receipt {
            thread_id,
            kind,
            user_id: caller.user_id,
            device_id: caller.device_id,
            seq,
        });
    }
    Ok(StatusCode::NO_CONTENT)
}

/// How far a receipt's time may be from the server's clock.
const RECEIPT_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// Refuses a receipt its device did not sign now: the signature must
/// verify with the device's enrolled key over [`receipt_message`] for this
/// server, device, thread, kind and sequence, and its time be within
/// [`RECEIPT_CLOCK_SKEW_MS`] of the server's.
async fn check_signature(
    state: &AppState,
    access: &Access,
    caller: &Caller,
    thread_id: &str,
    kind: ReceiptKind,
    receipt: &Receipt,
) -> Result<()> {
    let device = device::find(state.database.pool(), &caller.device_id)
        .await?
        .ok_or(Error::NotFound)?;
    let message = receipt_message(
        &state.auth.server_id,
        &caller.device_id,
        thread_id,
        kind,
        receipt.seq,
        receipt.time_ms,
    );
    let verified =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &device.public_key)
            .verify(&message, &receipt.signature);
    if verified.is_err() {
        access.reason("bad_signature");
        return Err(Error::InvalidRequest(
            "the receipt's signature does not verify with this device's key: sign \
             `receipt_message` (docs/audit-format.md, \"Signed receipts\") with the device key \
             this session signed in with"
                .to_owned(),
        ));
    }
    if receipt.time_ms.abs_diff(now_ms()) > RECEIPT_CLOCK_SKEW_MS {
        access.reason("receipt_time");
        return Err(Error::InvalidRequest(
            "the receipt's `time_ms` is more than 5 minutes from the server's clock: set the \
             device's clock right and send it again"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Refuses a receipt past the thread's last entry.
async fn check_receipt(tx: &mut Transaction<'_, Any>, thread_id: &str, seq: i64) -> Result<()> {
    let last_seq = thread::last_seq(&mut **tx, thread_id).await?;
    if seq > last_seq {
        return Err(Error::InvalidRequest(format!(
            "`seq` {seq} is past the thread's last entry ({last_seq})"
        )));
    }
    Ok(())
}
