//! Encrypted attachments: a member uploads a file's ciphertext (the
//! sending client encrypted it, see `curbside_proto::attachment`) bound to
//! the thread, and members download it by the id the message gave them.
//!
//! Neither direction ever holds a whole file: an upload is written to the
//! database a chunk ([`attachment::CHUNK_BYTES`]) at a time as it arrives,
//! a download read a chunk at a time as the client takes it. An upload is
//! refused before anything is stored if its declared size
//! (`Content-Length`) is over the limit or the uploader's quota, and
//! whatever an upload cut short stored is deleted at once (and by the
//! sweep, should the server stop in between). Deleting is marking first
//! (nothing marked is served), then erasing a few chunks per statement. Only the thread's current
//! members who were in it when the message came may download; anyone
//! else gets 404.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use curbside_proto::attachment::{AttachmentUploaded, ciphertext_len, is_attachment_id};
use curbside_proto::routes;
use futures_util::StreamExt;

use super::checks::{limit_writes, membership, to_u64};
use crate::auth::sessions::Caller;
use crate::clock::now_ms;
use crate::db::Database;
use crate::db::attachment::{self, CHUNK_BYTES, NewUpload};
use crate::http::access::Access;
use crate::http::error::{Error, Result};
use crate::http::state::AppState;

const MIB: u64 = 1024 * 1024;

/// `n` bytes as people read them: whole MiB when it is, else bytes.
fn amount(n: u64) -> String {
    if n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

/// The declared size of the body, which must be given and within the
/// largest upload (a file of the largest size, encrypted).
fn declared_size(state: &AppState, headers: &HeaderMap) -> Result<u64> {
    let Some(length) = headers.get(header::CONTENT_LENGTH) else {
        return Err(Error::InvalidRequest(
            "send the attachment's size in a Content-Length header (the whole encrypted file, \
             not in chunks)"
                .to_owned(),
        ));
    };
    let length: u64 = length
        .to_str()
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| Error::InvalidRequest("Content-Length is not a number".to_owned()))?;
    let limit = state.attachments.max_file_bytes;
    if length > ciphertext_len(limit) {
        return Err(Error::AttachmentTooLarge(format!(
            "an attachment may be at most {} on this server; send a smaller file, or share \
             it another way",
            amount(limit)
        )));
    }
    if length == 0 {
        return Err(Error::InvalidRequest(
            "the body is empty; send the encrypted file".to_owned(),
        ));
    }
    Ok(length)
}

/// Deletes an upload that did not finish, even if the request's task is
/// dropped half-way; [`Self::done`] keeps it.
struct Unfinished {
    database: Database,
    attachment_id: Option<String>,
}

impl Unfinished {
    fn done(mut self) {
        self.attachment_id = None;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(attachment_id) = self.attachment_id.take() else {
            return;
        };
        let database = self.database.clone();
        tokio::spawn(async move {
            let ids = [attachment_id];
            if let Err(error) = attachment::mark_deleted(database.pool(), &ids, now_ms()).await {
                // The sweep deletes it later.
                tracing::warn!(%error, "cannot delete an unfinished upload yet");
                return;
            }
            erase(database, ids.to_vec()).await;
        });
    }
}

/// Erases attachments `ids`, already marked deleted, a few chunks at a
/// time, then the database's leftover copies (see
/// `Database::erase_deleted`); what fails is left to the sweep.
async fn erase(database: Database, ids: Vec<String>) {
    if let Err(error) = attachment::erase(database.pool(), &ids).await {
        tracing::warn!(%error, "cannot erase deleted attachments yet; the sweep will");
    }
    database.erase_deleted();
}

/// [`erase`], in a task of its own (after a recall).
pub(super) fn erase_in_background(database: &Database, ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    tokio::spawn(erase(database.clone(), ids));
}

#[utoipa::path(
    post,
    path = routes::THREAD_ATTACHMENTS,
    operation_id = "thread.attachment.upload",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id")),
    request_body(
        content = Vec<u8>,
        content_type = "application/octet-stream",
        description = "The file's ciphertext (see the API's attachment format), with its size \
                       in Content-Length"
    ),
    security(("session" = [])),
    responses(
        (status = 200, description = "Stored; name it in the message that carries it",
         body = AttachmentUploaded),
        (status = 413, description = "Over the server's limit or the uploader's quota",
         body = curbside_proto::ErrorBody),
    ),
)]
pub(super) async fn upload(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AttachmentUploaded>> {
    membership(&state, &access, &caller, &thread_id).await?;
    limit_writes(&state, &caller)?;
    let length = declared_size(&state, &headers)?;
    if state.disk.is_low() {
        return Err(Error::StorageUnavailable(
            "low on disk space: no attachment is taken".to_owned(),
        ));
    }
    let size = i64::try_from(length).unwrap_or(i64::MAX);
    let pool = state.database.pool();
    let quota = state.attachments.quota_bytes;
    let stored = to_u64(attachment::stored_by(pool, &caller.user_id).await?);
    if stored.saturating_add(length) > quota {
        access.reason("over_quota");
        return Err(over_quota(stored, quota));
    }
    let attachment_id = crate::ids::new_id().map_err(|error| Error::Internal(error.to_string()))?;
    access.evidence(format!("attachment={attachment_id} bytes={length}"));
    attachment::begin(
        pool,
        NewUpload {
            attachment_id: &attachment_id,
            thread_id: &thread_id,
            user_id: &caller.user_id,
            device_id: &caller.device_id,
            size,
            now_ms: now_ms(),
        },
    )
    .await?;
    let unfinished = Unfinished {
        database: state.database.clone(),
        attachment_id: Some(attachment_id.clone()),
    };
    let received = store_chunks(&state, &attachment_id, body, length).await?;
    if received != length {
        access.reason("cut_short");
        return Err(Error::InvalidRequest(format!(
            "the body ended after {received} of the {length} bytes Content-Length announced; \
             upload the attachment again"
        )));
    }
    let mut tx = pool.begin().await?;
    // The write first (see the module of `threads`), then the quota again:
    // uploads of one user that ran side by side must not pass it together.
    attachment::complete(&mut *tx, &attachment_id, now_ms()).await?;
    let stored = to_u64(attachment::stored_by(&mut *tx, &caller.user_id).await?);
    if stored > quota {
        access.reason("over_quota");
        return Err(over_quota(stored.saturating_sub(length), quota));
    }
    access.commit(&state, tx).await?;
    unfinished.done();
    Ok(Json(AttachmentUploaded {
        attachment_id,
        size: length,
    }))
}

fn over_quota(stored: u64, quota: u64) -> Error {
    Error::AttachmentTooLarge(format!(
        "your attachments already take {} of the {} each person may store; recall messages \
         with attachments you no longer need, or ask your administrator",
        amount(stored),
        amount(quota)
    ))
}

/// Writes `body` to the database in chunks of [`CHUNK_BYTES`]; returns
/// how many bytes came (an error if more than `length`, or if the body
/// broke off).
async fn store_chunks(
    state: &AppState,
    attachment_id: &str,
    body: Body,
    length: u64,
) -> Result<u64> {
    let mut stream = body.into_data_stream();
    let mut buffer: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
    let mut received: u64 = 0;
    let mut idx: i64 = 0;
    while let Some(frame) = stream.next().await {
        let frame: Bytes = frame.map_err(|_| {
            Error::BadRequest("the upload broke off; upload the attachment again".to_owned())
        })?;
        received = received.saturating_add(frame.len() as u64);
        if received > length {
            return Err(Error::InvalidRequest(format!(
                "the body is longer than the {length} bytes Content-Length announced"
            )));
        }
        let mut rest: &[u8] = &frame;
        while !rest.is_empty() {
            let room = CHUNK_BYTES - buffer.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            buffer.extend_from_slice(now);
            rest = later;
            if buffer.len() == CHUNK_BYTES {
                attachment::put_chunk(state.database.pool(), attachment_id, idx, &buffer).await?;
                idx += 1;
                buffer.clear();
            }
        }
    }
    if !buffer.is_empty() {
        attachment::put_chunk(state.database.pool(), attachment_id, idx, &buffer).await?;
    }
    Ok(received)
}

#[utoipa::path(
    get,
    path = routes::THREAD_ATTACHMENT,
    operation_id = "thread.attachment.download",
    tag = "attachment",
    params(
        ("thread_id" = String, Path, description = "The thread's id"),
        ("attachment_id" = String, Path, description = "The attachment's id, from the message"),
    ),
    security(("session" = [])),
    responses(
        (status = 200, description = "The attachment's ciphertext", body = Vec<u8>,
         content_type = "application/octet-stream"),
    ),
)]
pub(super) async fn download(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path((thread_id, attachment_id)): Path<(String, String)>,
) -> Result<Response> {
    let joined_seq = membership(&state, &access, &caller, &thread_id).await?;
    if !is_attachment_id(&attachment_id) {
        return Err(Error::NotFound);
    }
    let found = attachment::find(state.database.pool(), &thread_id, &attachment_id).await?;
    // Only what a message this device could read carries: not an upload
    // still on its way, nor one sent before the device joined.
    let Some(found) = found.filter(|found| {
        found.complete_at_ms.is_some() && found.entry_seq.is_some_and(|seq| seq > joined_seq)
    }) else {
        access.reason("no_such_attachment");
        return Err(Error::NotFound);
    };
    access.evidence(format!("attachment={attachment_id} bytes={}", found.size));
    let size = to_u64(found.size);
    let chunks = i64::try_from(size.div_ceil(CHUNK_BYTES as u64)).unwrap_or(i64::MAX);
    let database = state.database.clone();
    let stream = futures_util::stream::unfold(0_i64, move |idx| {
        let database = database.clone();
        let attachment_id = attachment_id.clone();
        async move {
            if idx >= chunks {
                return None;
            }
            let chunk = match attachment::chunk(database.pool(), &attachment_id, idx).await {
                Ok(Some(chunk)) => Ok(Bytes::from(chunk)),
                // Recalled or purged while it was being read: the client
                // sees the download break off.
                Ok(None) => Err(std::io::Error::other("the attachment was deleted")),
                Err(error) => Err(std::io::Error::other(error)),
            };
            Some((chunk, idx + 1))
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    Ok(response)
}
