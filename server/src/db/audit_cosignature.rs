//! `audit_cosignature`: the audit log's checkpoints as its witnesses
//! cosigned them.

/// One witness's cosigned checkpoint.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CosignatureRow {
    /// The witness's verifier key.
    pub witness: String,
    /// The tree size it cosigned.
    pub size: i64,
    /// The checkpoint with the witness's cosignature line.
    pub note: String,
}

/// Keeps a cosigned checkpoint as the witness's latest (a larger tree
/// replaces a smaller one; each cosignature vouches for every tree before
/// it).
pub async fn record(
    pool: &sqlx::AnyPool,
    witness: &str,
    size: i64,
    note: &str,
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_cosignature (witness, size, note, cosigned_at_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (witness) DO UPDATE SET size = excluded.size, \
         note = excluded.note, cosigned_at_ms = excluded.cosigned_at_ms \
         WHERE excluded.size > audit_cosignature.size",
    )
    .bind(witness)
    .bind(size)
    .bind(note)
    .bind(at_ms)
    .execute(pool)
    .await
    .map(|_| ())
}

/// The largest checkpoint `witness` cosigned, if any.
pub async fn latest_of(
    pool: &sqlx::AnyPool,
    witness: &str,
) -> Result<Option<CosignatureRow>, sqlx::Error> {
    sqlx::query_as("SELECT witness, size, note FROM audit_cosignature WHERE witness = $1")
        .bind(witness)
        .fetch_optional(pool)
        .await
}

/// Each witness's largest cosigned checkpoint.
pub async fn latest(pool: &sqlx::AnyPool) -> Result<Vec<CosignatureRow>, sqlx::Error> {
    sqlx::query_as("SELECT witness, size, note FROM audit_cosignature ORDER BY witness")
        .fetch_all(pool)
        .await
}
