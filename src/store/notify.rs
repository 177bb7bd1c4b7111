//! The notification outbox: rendered notifications waiting for delivery, with their attempts.
//!
//! Rows are inserted once per event and destination (a repeated dedupe key is ignored), taken in id
//! order when due, and marked sent, or failed with the next attempt time, or dead after the last attempt.
//! What a notification says and where it goes is `crate::notify`'s.

use super::{now_ms, Pool, StoreError};

/// A notification to store.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Same event, same destination = same key (`task-12-succeeded`).
    pub dedupe_key: String,
    /// Event kind (`deploy.succeeded`, …).
    pub event: String,
    /// `webhook`, `discord_webhook` or `discord_channel`.
    pub target_kind: String,
    /// URL or channel id.
    pub target: String,
    /// The JSON body to send.
    pub body: String,
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct NotificationRow {
    /// Sequence number.
    pub id: i64,
    /// Dedupe key.
    pub dedupe_key: String,
    /// Event kind.
    pub event: String,
    /// Destination kind.
    pub target_kind: String,
    /// URL or channel id.
    pub target: String,
    /// JSON body.
    pub body: String,
    /// `pending`, `sent`, `dead`.
    pub state: String,
    /// Failed attempts so far.
    pub attempts: i64,
    /// When it is due, epoch ms.
    pub next_attempt_at: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When stored.
    pub created_at: i64,
    /// When delivered.
    pub sent_at: Option<i64>,
}

const COLUMNS: &str = "id, dedupe_key, event, target_kind, target, body, state, attempts, next_attempt_at, \
                       last_error, created_at, sent_at";

/// Stores a notification; `false` when its dedupe key and destination were stored before.
pub async fn insert(pool: &Pool, n: &NewNotification) -> Result<bool, StoreError> {
    let sql = "INSERT INTO notification (dedupe_key, event, target_kind, target, body, state, attempts, \
               next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6) \
               ON CONFLICT (dedupe_key, target_kind, target) DO NOTHING";
    let now = now_ms();
    let n = crate::with_pool!(pool, p => sqlx::query(sql)
        .bind(&n.dedupe_key).bind(&n.event).bind(&n.target_kind).bind(&n.target).bind(&n.body).bind(now)
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Takes up to `limit` due notifications, pushing their next attempt `lease_ms` ahead so another
/// notifier (a replica) does not send them at the same time.
pub async fn take_due(pool: &Pool, now: i64, lease_ms: i64, limit: i64) -> Result<Vec<NotificationRow>, StoreError> {
    let select = format!(
        "SELECT {COLUMNS} FROM notification WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2"
    );
    let rows: Vec<NotificationRow> =
        crate::with_pool!(pool, p => sqlx::query_as(&select).bind(now).bind(limit).fetch_all(p).await)?;
    let mut taken = Vec::with_capacity(rows.len());
    let claim =
        "UPDATE notification SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at = $3 AND state = 'pending'";
    for row in rows {
        let n = crate::with_pool!(pool, p => sqlx::query(claim)
            .bind(now + lease_ms).bind(row.id).bind(row.next_attempt_at).execute(p).await.map(|r| r.rows_affected()))?;
        if n == 1 {
            taken.push(row);
        }
    }
    Ok(taken)
}

/// Marks a notification delivered.
pub async fn sent(pool: &Pool, id: i64) -> Result<(), StoreError> {
    let sql = "UPDATE notification SET state = 'sent', sent_at = $1, last_error = NULL WHERE id = $2";
    crate::with_pool!(pool, p => sqlx::query(sql).bind(now_ms()).bind(id).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// Records a failed attempt: due again at `retry_at`, or `dead` when `retry_at` is `None`.
pub async fn failed(pool: &Pool, id: i64, error: &str, retry_at: Option<i64>) -> Result<(), StoreError> {
    let sql = "UPDATE notification SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, state = $3 \
               WHERE id = $4";
    let (next, state) = match retry_at {
        Some(t) => (t, "pending"),
        None => (now_ms(), "dead"),
    };
    crate::with_pool!(pool, p => sqlx::query(sql).bind(error).bind(next).bind(state).bind(id).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// The earliest time a pending notification is due.
pub async fn next_due(pool: &Pool) -> Result<Option<i64>, StoreError> {
    let sql = "SELECT MIN(next_attempt_at) FROM notification WHERE state = 'pending'";
    Ok(crate::with_pool!(pool, p => sqlx::query_scalar(sql).fetch_one(p).await)?)
}

/// Every notification, oldest first (tests and the admin view).
pub async fn list(pool: &Pool, limit: i64) -> Result<Vec<NotificationRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM notification ORDER BY id LIMIT $1");
    Ok(crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(limit).fetch_all(p).await)?)
}
