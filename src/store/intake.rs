//! Group commit of webhook deliveries on SQLite: concurrent deliveries are stored together, in one write
//! transaction, and each is acknowledged only after that transaction committed.
//!
//! SQLite has one writer, so deliveries arriving together queue for its lock anyway; a transaction per
//! delivery pays `BEGIN`/`COMMIT`, the WAL frame writes of every touched page and the lock hand-over once
//! per delivery. The [`EventWriter`] owns one task that takes whatever deliveries are waiting (up to
//! [`MAX_BATCH`]) and stores them as one script (`super::script`), then answers each waiting request with
//! its own outcome: stored with its id, or a duplicate (an earlier delivery, or an earlier one in the same
//! batch, had its id). Nothing is acknowledged before its batch commits, so durability is the same as one
//! transaction per delivery; a failed batch fails every delivery in it (GitLab retries them). Under no
//! load a batch is the one delivery that arrived: no added wait.
//!
//! On PostgreSQL (many writers) deliveries are stored one statement each, as before (`event::insert`).

use std::collections::HashSet;

use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use super::event::{self, EventId, Inserted, NewEvent};
use super::{Pool, StoreError};

/// Most deliveries one transaction stores (10 bound values each, far below SQLite's variable limit).
pub const MAX_BATCH: usize = 64;

/// Deliveries waiting for the writer before senders wait for room.
const QUEUE: usize = 1024;

type Reply = oneshot::Sender<Result<Inserted, String>>;

/// Stores deliveries: batched on SQLite, one by one on PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventWriter {
    pool: Pool,
    batches: Option<mpsc::Sender<(NewEvent, Reply)>>,
}

impl EventWriter {
    /// A writer over `pool`; on SQLite this starts the batching task (it ends when every clone of the
    /// writer is gone). Must be called inside a Tokio runtime.
    pub fn new(pool: Pool) -> EventWriter {
        let batches = match &pool {
            Pool::Sqlite(p) => {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(run(p.clone(), rx));
                Some(tx)
            }
            Pool::Postgres(_) => None,
        };
        EventWriter { pool, batches }
    }

    /// Stores a delivery unless its delivery id is already stored. Durable when it returns `Ok`.
    pub async fn insert(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        let Some(batches) = &self.batches else { return event::insert(&self.pool, &event).await };
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::SharedWrite("the webhook delivery writer stopped; nothing was stored".into());
        batches.send((event, reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?.map_err(StoreError::SharedWrite)
    }
}

async fn run(pool: sqlx::SqlitePool, mut rx: mpsc::Receiver<(NewEvent, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.drain(..).unzip();
        match store_batch(&pool, &events).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, deliveries = events.len(), "storing a batch of webhook deliveries failed");
                let message = format!("storing the delivery failed: {e}");
                for reply in replies {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}

/// The script of a batch of `n`: each delivery's two inserts (as in `event::insert`), binds numbered
/// `10 * i + 1 ..= 10 * i + 10` for delivery `i`, each event insert returning its id and delivery id.
fn batch_script(n: usize) -> String {
    let mut sql = String::from("BEGIN IMMEDIATE;");
    for i in 0..n {
        let b = |k: usize| format!("${}", 10 * i + k);
        sql.push_str(&format!(
            " INSERT INTO gitlab_event (delivery_id, webhook_id, event_header, kind, project_id, project_path, \
             ref, object_key, received_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}) \
             ON CONFLICT (delivery_id) DO NOTHING RETURNING id, delivery_id; \
             INSERT INTO gitlab_event_payload (event_id, payload) SELECT id, {} FROM gitlab_event \
             WHERE id = last_insert_rowid() AND delivery_id = {} AND changes() = 1;",
            b(1),
            b(2),
            b(3),
            b(4),
            b(5),
            b(6),
            b(7),
            b(8),
            b(9),
            b(10),
            b(1),
        ));
    }
    sql.push_str(" COMMIT");
    sql
}

/// Stores `events` in one transaction; the outcome of each, in order.
async fn store_batch(pool: &sqlx::SqlitePool, events: &[NewEvent]) -> Result<Vec<Inserted>, sqlx::Error> {
    let sql = batch_script(events.len());
    let mut q = sqlx::query(&sql);
    for e in events {
        q = q
            .bind(e.delivery_id.as_str())
            .bind(e.webhook_id.as_deref())
            .bind(&e.event_header)
            .bind(&e.kind)
            .bind(e.project_id)
            .bind(e.project_path.as_deref())
            .bind(e.git_ref.as_deref())
            .bind(&e.object_key)
            .bind(e.received_at)
            .bind(&e.payload);
    }
    let rows = super::script::fetch_all(pool, q).await?;
    let mut stored: Vec<(String, i64)> = Vec::with_capacity(rows.len());
    for row in rows {
        stored.push((row.try_get(1)?, row.try_get(0)?));
    }
    // A delivery id inserted by this batch is stored for its first delivery in it; later ones, and ids
    // stored before, are duplicates.
    let mut answered = HashSet::new();
    Ok(events
        .iter()
        .map(|e| {
            let id = e.delivery_id.as_str();
            match stored.iter().find(|(d, _)| d == id) {
                Some((_, row)) if answered.insert(id) => Inserted::Stored(EventId(*row)),
                _ => Inserted::Duplicate,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_delivery_binds_its_own_ten_values() {
        let one = batch_script(1);
        assert!(one.starts_with("BEGIN IMMEDIATE; INSERT INTO gitlab_event") && one.ends_with(" COMMIT"), "{one}");
        assert!(one.contains("VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)") && one.contains("SELECT id, $10 "));
        let three = batch_script(3);
        assert!(three.contains("VALUES ($21, $22, $23, $24, $25, $26, $27, $28, $29)"), "{three}");
        assert!(three.contains("SELECT id, $30 FROM gitlab_event WHERE id = last_insert_rowid() AND delivery_id = $21"));
        assert_eq!(three.matches("RETURNING id, delivery_id").count(), 3);
    }
}
