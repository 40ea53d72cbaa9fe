//! `attachment` and `attachment_chunk`: the ciphertext of files members
//! upload to a thread, in chunks of at most [`CHUNK_BYTES`] so that an
//! upload is written, and a download read, one chunk at a time. An
//! upload is `complete` once its whole body arrived; a message that
//! carries it binds it to its entry (`entry_seq`), and whatever deletes
//! that message's content (recall, lifespan, retention) marks it deleted
//! in its own transaction (`deleted_at_ms`: no one is served it from then
//! on), then [`erase`]s its chunks a few at a time, so that no transaction
//! holds the database for the length of a large file.

use sqlx::Any;

/// Bytes per stored chunk (the last one of an attachment may be shorter).
pub const CHUNK_BYTES: usize = 1 << 20;

/// An attachment as a download sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stored {
    /// Its ciphertext's size in bytes.
    pub size: i64,
    /// The message that carries it, once one does.
    pub entry_seq: Option<i64>,
    /// When its upload finished, if it did.
    pub complete_at_ms: Option<i64>,
}

/// A new upload, before its body.
#[derive(Debug, Clone, Copy)]
pub struct NewUpload<'a> {
    /// Its id.
    pub attachment_id: &'a str,
    /// The thread it is bound to.
    pub thread_id: &'a str,
    /// Who uploads it.
    pub user_id: &'a str,
    /// From which device.
    pub device_id: &'a str,
    /// The ciphertext's size, as declared (`Content-Length`).
    pub size: i64,
    /// When the upload began (Unix ms).
    pub now_ms: i64,
}

/// Records an upload about to begin.
pub async fn begin<'c, E>(executor: E, upload: NewUpload<'_>) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO attachment (attachment_id, thread_id, uploader_user, uploader_device, size, \
         created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(upload.attachment_id)
    .bind(upload.thread_id)
    .bind(upload.user_id)
    .bind(upload.device_id)
    .bind(upload.size)
    .bind(upload.now_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// Stores chunk `idx` of an upload.
pub async fn put_chunk<'c, E>(
    executor: E,
    attachment_id: &str,
    idx: i64,
    data: &[u8],
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query("INSERT INTO attachment_chunk (attachment_id, idx, data) VALUES ($1, $2, $3)")
        .bind(attachment_id)
        .bind(idx)
        .bind(data)
        .execute(executor)
        .await?;
    Ok(())
}

/// Marks an upload whole at `now_ms`.
pub async fn complete<'c, E>(
    executor: E,
    attachment_id: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query("UPDATE attachment SET complete_at_ms = $1 WHERE attachment_id = $2")
        .bind(now_ms)
        .bind(attachment_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// The bytes `user_id`'s attachments take, uploads under way included.
pub async fn stored_by<'c, E>(executor: E, user_id: &str) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let total: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(size) AS BIGINT) FROM attachment WHERE uploader_user = $1",
    )
    .bind(user_id)
    .fetch_one(executor)
    .await?;
    Ok(total.unwrap_or(0))
}

/// Attachment `attachment_id` of `thread_id`, if it may be served: whole,
/// not deleted, and carried by a message that is neither recalled nor
/// purged (a recall under a legal hold keeps the file, unserved).
pub async fn find<'c, E>(
    executor: E,
    thread_id: &str,
    attachment_id: &str,
) -> Result<Option<Stored>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT a.size, a.entry_seq, a.complete_at_ms FROM attachment a \
         WHERE a.thread_id = $1 AND a.attachment_id = $2 AND a.deleted_at_ms IS NULL \
           AND EXISTS (SELECT 1 FROM thread_entry e WHERE e.thread_id = a.thread_id \
                       AND e.seq = a.entry_seq AND e.recalled_at_ms IS NULL \
                       AND e.purged_at_ms IS NULL)",
    )
    .bind(thread_id)
    .bind(attachment_id)
    .fetch_optional(executor)
    .await
}

/// Chunk `idx` of an attachment, if it is there.
pub async fn chunk<'c, E>(
    executor: E,
    attachment_id: &str,
    idx: i64,
) -> Result<Option<Vec<u8>>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar("SELECT data FROM attachment_chunk WHERE attachment_id = $1 AND idx = $2")
        .bind(attachment_id)
        .bind(idx)
        .fetch_optional(executor)
        .await
}

/// Binds the complete uploads `ids` of `user_id` to `thread_id` to the
/// message at `seq`, if none is bound yet; returns how many it bound.
pub async fn bind_to_message<'c, E>(
    executor: E,
    thread_id: &str,
    user_id: &str,
    ids: &[String],
    seq: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    if ids.is_empty() {
        return Ok(0);
    }
    let marks: Vec<String> = (0..ids.len()).map(|n| format!("${}", n + 4)).collect();
    let sql = format!(
        "UPDATE attachment SET entry_seq = $1 WHERE thread_id = $2 AND uploader_user = $3 \
         AND entry_seq IS NULL AND complete_at_ms IS NOT NULL AND deleted_at_ms IS NULL \
         AND attachment_id IN ({})",
        marks.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(seq).bind(thread_id).bind(user_id);
    for id in ids {
        query = query.bind(id);
    }
    Ok(query.execute(executor).await?.rows_affected())
}

/// The attachments the messages of `thread_id` at `seqs` carry.
pub async fn of_messages<'c, E>(
    executor: E,
    thread_id: &str,
    seqs: &[i64],
) -> Result<Vec<String>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (0..seqs.len()).map(|n| format!("${}", n + 2)).collect();
    let sql = format!(
        "SELECT attachment_id FROM attachment WHERE thread_id = $1 AND entry_seq IN ({})",
        marks.join(", ")
    );
    let mut query = sqlx::query_scalar(&sql).bind(thread_id);
    for seq in seqs {
        query = query.bind(*seq);
    }
    query.fetch_all(executor).await
}

/// Marks attachments `ids` deleted at `now_ms` (from then on no one is
/// served them); [`erase`] deletes them.
pub async fn mark_deleted<'c, E>(
    executor: E,
    ids: &[String],
    now_ms: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    if ids.is_empty() {
        return Ok(0);
    }
    let marks: Vec<String> = (0..ids.len()).map(|n| format!("${}", n + 2)).collect();
    let sql = format!(
        "UPDATE attachment SET deleted_at_ms = $1 WHERE deleted_at_ms IS NULL \
         AND attachment_id IN ({})",
        marks.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(now_ms);
    for id in ids {
        query = query.bind(id);
    }
    Ok(query.execute(executor).await?.rows_affected())
}

/// Marks deleted at `now_ms` the attachments nothing will ever read:
/// uploads that did not finish by `unfinished_before_ms`, and whole ones
/// no message took by `unsent_before_ms`; returns how many.
pub async fn mark_abandoned<'c, E>(
    executor: E,
    unfinished_before_ms: i64,
    unsent_before_ms: i64,
    now_ms: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    Ok(sqlx::query(
        "UPDATE attachment SET deleted_at_ms = $1 WHERE deleted_at_ms IS NULL \
         AND entry_seq IS NULL \
         AND ((complete_at_ms IS NULL AND created_at_ms < $2) OR created_at_ms < $3)",
    )
    .bind(now_ms)
    .bind(unfinished_before_ms)
    .bind(unsent_before_ms)
    .execute(executor)
    .await?
    .rows_affected())
}

/// At most `limit` attachments marked deleted and not yet erased.
pub async fn marked<'c, E>(executor: E, limit: i64) -> Result<Vec<String>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar(
        "SELECT attachment_id FROM attachment WHERE deleted_at_ms IS NOT NULL \
         ORDER BY deleted_at_ms LIMIT $1",
    )
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Chunks deleted per statement by [`erase`] (at most 8 MiB).
const CHUNKS_PER_STATEMENT: i64 = 8;

/// Deletes the chunks, then the rows, of attachments `ids` that are marked
/// deleted, [`CHUNKS_PER_STATEMENT`] chunks per statement (each its own
/// transaction, so that writers get the database in between); returns
/// how many attachments it erased.
pub async fn erase(pool: &sqlx::AnyPool, ids: &[String]) -> Result<u64, sqlx::Error> {
    let mut erased = 0;
    for id in ids {
        loop {
            let deleted = sqlx::query(
                "DELETE FROM attachment_chunk WHERE attachment_id = $1 AND idx IN \
                 (SELECT c.idx FROM attachment_chunk c JOIN attachment a \
                    ON a.attachment_id = c.attachment_id \
                  WHERE c.attachment_id = $1 AND a.deleted_at_ms IS NOT NULL \
                  ORDER BY c.idx LIMIT $2)",
            )
            .bind(id)
            .bind(CHUNKS_PER_STATEMENT)
            .execute(pool)
            .await?
            .rows_affected();
            if deleted == 0 {
                break;
            }
        }
        erased += sqlx::query(
            "DELETE FROM attachment WHERE attachment_id = $1 AND deleted_at_ms IS NOT NULL",
        )
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    }
    Ok(erased)
}
