//! The audit log: one row per state-changing action (who, what, where, when, result), allowed or denied.
//!
//! Written by the services that act (API handlers, CLI commands that touch the store); never updated or
//! deleted by Tao itself.

use super::{now_ms, Pool, StoreError};

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct AuditRow {
    /// Sequence number.
    pub id: i64,
    /// When, epoch milliseconds.
    pub at: i64,
    /// Who: `token:NAME`, `cli:USER`, `file:PATH`, …
    pub actor: String,
    /// What: `release.create`, `catalog.apply`, `token.create`, …
    pub action: String,
    /// Where: `monitor 1.1.0`, `catalog`, `token ci`, …
    pub target: String,
    /// `ok`, `unchanged`, `denied`, `rejected`, `conflict`.
    pub outcome: String,
    /// Free text (never a secret).
    pub detail: String,
}

/// Appends one record.
pub async fn record(
    pool: &Pool,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
) -> Result<(), StoreError> {
    let sql = "INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)";
    crate::with_pool!(pool, p => {
        sqlx::query(sql).bind(now_ms()).bind(actor).bind(action).bind(target).bind(outcome).bind(detail).execute(p).await.map(|_| ())
    })?;
    Ok(())
}

/// The newest `limit` records, newest first.
pub async fn recent(pool: &Pool, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
    page(pool, None, limit).await
}

/// One page of [`recent`]: the entries before entry `before` (from the newest when `None`), newest first.
pub async fn page(pool: &Pool, before: Option<i64>, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
    let sql =
        "SELECT id, at, actor, action, target, outcome, detail FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2";
    let before = before.unwrap_or(i64::MAX);
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).bind(before).bind(limit).fetch_all(p).await)?)
}
