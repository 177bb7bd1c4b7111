//! Catalog revisions: every catalog Tao has applied, with its YAML and hash. The newest is the live one.
//!
//! Validation happens before anything reaches this module (see `crate::catalog`); here a revision is
//! just text that was accepted, kept so a deploy can later name the revision it used.

use sha2::{Digest, Sha256};

use super::{now_ms, Pool, StoreError};

/// One applied catalog.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct CatalogRevisionRow {
    /// Revision number, increasing.
    pub id: i64,
    /// SHA-256 of the YAML text, hex.
    pub hash: String,
    /// The YAML exactly as applied.
    pub yaml: String,
    /// Who applied it (`file:PATH` at start, or the API actor).
    pub applied_by: String,
    /// When, epoch milliseconds.
    pub applied_at: i64,
}

/// SHA-256 of a catalog's text, hex: how revisions are compared.
pub fn hash(yaml: &str) -> String {
    hex::encode(Sha256::digest(yaml.as_bytes()))
}

/// The newest revision, if any catalog was ever applied.
pub async fn latest(pool: &Pool) -> Result<Option<CatalogRevisionRow>, StoreError> {
    let sql = "SELECT id, hash, yaml, applied_by, applied_at FROM catalog_revision ORDER BY id DESC LIMIT 1";
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).fetch_optional(p).await)?)
}

/// Stores `yaml` as the new live revision unless it is identical to the live one.
///
/// Returns the live revision and whether it was created now.
pub async fn apply(pool: &Pool, yaml: &str, applied_by: &str) -> Result<(CatalogRevisionRow, bool), StoreError> {
    let h = hash(yaml);
    if let Some(live) = latest(pool).await? {
        if live.hash == h {
            return Ok((live, false));
        }
    }
    let sql = "INSERT INTO catalog_revision (hash, yaml, applied_by, applied_at) VALUES ($1, $2, $3, $4) \
               RETURNING id, hash, yaml, applied_by, applied_at";
    let row = crate::with_pool!(pool, p => {
        sqlx::query_as(sql).bind(&h).bind(yaml).bind(applied_by).bind(now_ms()).fetch_one(p).await
    })?;
    Ok((row, true))
}
