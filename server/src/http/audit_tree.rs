//! The audit log's Merkle tree for reviewers: its latest signed checkpoint,
//! an entry's inclusion proof and the consistency proof between two sizes.
//! Administrators and auditors only, each read audited like any other; a
//! client that remembers a checkpoint checks with these that the log it
//! sees now extends that one (see docs/audit-format.md).

use axum::Json;
use axum::extract::{Query, State};
use curbside_proto::audit_review::{
    ConsistencyProof, ConsistencyQuery, InclusionProof, InclusionQuery, TREE_CHECKPOINT_PATH,
    TREE_CONSISTENCY_PATH, TREE_INCLUSION_PATH, TreeCheckpoint, WitnessedCheckpoint,
};
use curbside_proto::threads::Blob;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{Error, Result};
use super::extract::Reviewer;
use super::state::AppState;
use crate::audit::{AuditError, tree};
use crate::auth::rate_limit::Limit;
use crate::db::audit as rows;
use crate::db::audit_cosignature;

/// The tree's routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkpoint))
        .routes(routes!(inclusion))
        .routes(routes!(consistency))
}

/// The latest signed checkpoint and the tree size it states.
async fn latest(state: &AppState) -> Result<(String, u64)> {
    let head = rows::head(state.database.pool()).await?;
    let note = head.tree_note.ok_or_else(|| {
        Error::NotFoundWhat("the audit log has no entries yet, so no checkpoint".to_owned())
    })?;
    let size =
        u64::try_from(head.seq).map_err(|_| Error::Internal("a negative head".to_owned()))?;
    Ok((note, size))
}

fn proof_error(error: AuditError) -> Error {
    match error {
        AuditError::TreeDamaged => Error::AuditAltered,
        AuditError::Database(error) => Error::from(error),
        other => Error::Internal(format!("cannot make the proof: {other}")),
    }
}

fn blobs(hashes: Vec<[u8; 32]>) -> Vec<Blob> {
    hashes.into_iter().map(|hash| Blob(hash.to_vec())).collect()
}

#[utoipa::path(
    get,
    path = TREE_CHECKPOINT_PATH,
    operation_id = "audit.tree.checkpoint",
    tag = "audit_log",
    security(("session" = [])),
    responses((status = 200, description = "The Merkle tree's latest checkpoint, a C2SP signed note", body = TreeCheckpoint)),
)]
async fn checkpoint(
    State(state): State<AppState>,
    reviewer: Reviewer,
) -> Result<Json<TreeCheckpoint>> {
    state
        .auth
        .limits
        .check(Limit::AuditSearchPerUser, &reviewer.user_id)?;
    let (note, _) = latest(&state).await?;
    let witnessed = audit_cosignature::latest(state.database.pool())
        .await?
        .into_iter()
        .map(|row| WitnessedCheckpoint {
            witness: row.witness,
            note: row.note,
        })
        .collect();
    Ok(Json(TreeCheckpoint { note, witnessed }))
}

#[utoipa::path(
    get,
    path = TREE_INCLUSION_PATH,
    operation_id = "audit.tree.inclusion",
    tag = "audit_log",
    params(InclusionQuery),
    security(("session" = [])),
    responses((status = 200, description = "The entry's inclusion proof in the tree of that size", body = InclusionProof)),
)]
async fn inclusion(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Query(query): Query<InclusionQuery>,
) -> Result<Json<InclusionProof>> {
    state
        .auth
        .limits
        .check(Limit::AuditSearchPerUser, &reviewer.user_id)?;
    let (_, latest) = latest(&state).await?;
    let size = query.size.unwrap_or(latest);
    if query.seq == 0 || query.seq > size || size > latest {
        return Err(Error::InvalidRequest(format!(
            "`seq` must be from 1 to `size`, and `size` at most the log's {latest} entries"
        )));
    }
    let pool = state.database.pool();
    let seq = i64::try_from(query.seq).map_err(|_| Error::Internal("seq".to_owned()))?;
    let leaf_hash = tree::leaf_hash(pool, seq).await.map_err(proof_error)?;
    let proof = tree::inclusion_proof(pool, query.seq - 1, size)
        .await
        .map_err(proof_error)?;
    Ok(Json(InclusionProof {
        seq: query.seq,
        size,
        leaf_hash: leaf_hash.to_vec(),
        proof: blobs(proof),
    }))
}

#[utoipa::path(
    get,
    path = TREE_CONSISTENCY_PATH,
    operation_id = "audit.tree.consistency",
    tag = "audit_log",
    params(ConsistencyQuery),
    security(("session" = [])),
    responses((status = 200, description = "The proof that the smaller tree is a prefix of the larger", body = ConsistencyProof)),
)]
async fn consistency(
    State(state): State<AppState>,
    reviewer: Reviewer,
    Query(query): Query<ConsistencyQuery>,
) -> Result<Json<ConsistencyProof>> {
    state
        .auth
        .limits
        .check(Limit::AuditSearchPerUser, &reviewer.user_id)?;
    let (_, latest) = latest(&state).await?;
    let to = query.to.unwrap_or(latest);
    if query.from == 0 || query.from > to || to > latest {
        return Err(Error::InvalidRequest(format!(
            "`from` must be from 1 to `to`, and `to` at most the log's {latest} entries"
        )));
    }
    let proof = tree::consistency_proof(state.database.pool(), query.from, to)
        .await
        .map_err(proof_error)?;
    Ok(Json(ConsistencyProof {
        from: query.from,
        to,
        proof: blobs(proof),
    }))
}
