//! The event workers: take stored events in batches, in order per object, run the handlers, record the
//! outcomes (in the same transaction as the next claim: one write transaction per batch).
//!
//! Owns the loop between the store's queue (`store::event`) and `handlers`. Wake-ups are pushed: the
//! webhook intake calls [`EventQueue::wake`] after each commit; besides that a worker only sleeps until
//! the next known retry or lease end, never on a polling interval. A failed event is retried with
//! exponential backoff (capped at an hour) and blocks only its own object. Also prunes old payloads when
//! a retention is configured. It must not decide what an event means: that is the handlers' job.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::events::GitLabEvent;
use super::handlers::{HandlerContext, Handlers, StoredEvent};
use crate::store::event::{self as queue, EventId, EventRow};
use crate::store::{now_ms, StoreError};

/// The doorbell between the intake and the workers. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct EventQueue {
    notify: Arc<Notify>,
}

impl EventQueue {
    /// Tells a waiting worker that an event was stored (a permit is kept if none waits, so a wake-up
    /// between a worker's last claim and its wait is not lost).
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

/// How the workers run.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How many workers (0: store only, handle nothing; events wait for a Tao that has workers).
    pub workers: usize,
    /// How long a claim holds before another worker may take the event over.
    pub lease: Duration,
    /// First retry delay after a failure; doubled per attempt, capped at an hour.
    pub retry_base: Duration,
    /// Raw payloads of processed events older than this are pruned; `None` keeps everything.
    pub retention: Option<Duration>,
    /// How long an idle worker, woken by a new event, waits before claiming, so that the events arriving
    /// meanwhile go into the same batch (one write transaction) instead of one claim each.
    pub batch_linger: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            workers: 2,
            lease: Duration::from_secs(300),
            retry_base: Duration::from_secs(5),
            retention: None,
            batch_linger: Duration::from_millis(5),
        }
    }
}

/// Starts the workers (and the pruner when a retention is set). They stop when `shutdown` turns true,
/// after the event in hand (the rest of its batch is released, claimable again at once).
pub async fn start(
    config: &WorkerConfig,
    ctx: HandlerContext,
    handlers: Handlers,
    queue: EventQueue,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, StoreError> {
    let orphans = queue::release_orphans(&ctx.pool).await?;
    if orphans > 0 {
        tracing::info!(events = orphans, "events left running by a previous Tao are claimable again");
    }
    let mut tasks = Vec::new();
    for n in 0..config.workers {
        let worker =
            Worker { n, ctx: ctx.clone(), handlers: handlers.clone(), queue: queue.clone(), config: config.clone() };
        tasks.push(tokio::spawn(worker.run(shutdown.clone())));
    }
    if let Some(retention) = config.retention {
        tasks.push(tokio::spawn(prune_loop(ctx.pool.clone(), retention, shutdown)));
    }
    Ok(tasks)
}

struct Worker {
    n: usize,
    ctx: HandlerContext,
    handlers: Handlers,
    queue: EventQueue,
    config: WorkerConfig,
}

impl Worker {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::debug!(worker = self.n, "event worker started");
        let lease = self.config.lease.as_millis() as i64;
        // Outcomes of the last batch, recorded in the same transaction as the next claim.
        let mut done = queue::Outcomes::default();
        while !*shutdown.borrow() {
            let now = now_ms();
            let wait = match queue::record_and_claim(&self.ctx.pool, &done, now, lease, queue::CLAIM_BATCH).await {
                Ok(rows) => {
                    done = queue::Outcomes::default();
                    if !rows.is_empty() {
                        done = self.process_batch(rows, now + lease, &shutdown).await;
                        continue;
                    }
                    match queue::next_due(&self.ctx.pool, now).await {
                        Ok(due) => due.map(|t| Duration::from_millis((t - now).max(1) as u64)),
                        Err(e) => Some(self.store_trouble(e)),
                    }
                }
                // Nothing was written: the outcomes go with the next attempt.
                Err(e) => Some(self.store_trouble(e)),
            };
            let sleep = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(24 * 3600)));
            tokio::select! {
                _ = self.queue.notify.notified() => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.batch_linger) => {}
                        changed = shutdown.changed() => if changed.is_err() { break },
                    }
                }
                _ = sleep => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
        if let Err(e) = queue::record(&self.ctx.pool, &done, now_ms()).await {
            // The leases run out and the events are handled again: harmless, handlers are idempotent.
            tracing::error!(worker = self.n, error = %e, "cannot record the outcome of events");
        }
        tracing::debug!(worker = self.n, "event worker stopped");
    }

    fn store_trouble(&self, e: StoreError) -> Duration {
        tracing::error!(worker = self.n, error = %e, "event worker cannot reach the store; retrying in 1 s");
        Duration::from_secs(1)
    }

    /// Handles a claimed batch (at most one event per object, so in id order each is independent of the
    /// others) and returns the outcomes, to be recorded with the next claim. Stops early, releasing the
    /// events not yet attempted, when Tao is stopping or half the lease has gone, so a long batch never
    /// outlives its claim (a single event that outlives it is handled again: harmless, handlers are
    /// idempotent).
    async fn process_batch(
        &self,
        rows: Vec<EventRow>,
        lease_end: i64,
        shutdown: &watch::Receiver<bool>,
    ) -> queue::Outcomes {
        let deadline = tokio::time::Instant::now() + self.config.lease / 2;
        let mut outcomes = queue::Outcomes { lease_end, ..queue::Outcomes::default() };
        let mut rows = rows.into_iter();
        for row in rows.by_ref() {
            let id = EventId(row.id);
            let (delivery, attempts) = (row.delivery_id.clone(), row.attempts);
            match self.handle(row).await {
                Ok(()) => outcomes.processed.push(id),
                Err(error) => {
                    let delay = backoff(self.config.retry_base, attempts);
                    tracing::warn!(%delivery, event = id.0, attempts, retry_in_ms = delay.as_millis() as u64, %error,
                        "event handling failed");
                    outcomes.failed.push((id, error, now_ms() + delay.as_millis() as i64));
                }
            }
            if *shutdown.borrow() || tokio::time::Instant::now() >= deadline {
                break;
            }
            // Handling is CPU work between awaits; let the intake (and anything else waiting for this
            // runtime thread) run between events, so acks never queue behind a whole batch.
            tokio::task::yield_now().await;
        }
        outcomes.release = rows.map(|r| EventId(r.id)).collect();
        outcomes
    }

    /// Runs the handlers on one event.
    async fn handle(&self, row: EventRow) -> Result<(), String> {
        match &row.payload {
            // Pruned before it was handled cannot happen (only processed payloads are pruned); be safe.
            None => Ok(()),
            Some(raw) => match serde_json::from_str(raw)
                .map_err(|e| format!("stored payload is not JSON: {e}"))
                .and_then(|v| GitLabEvent::parse(&row.kind, &v).map_err(|e| e.to_string()))
            {
                Ok(view) => {
                    let event = StoredEvent { row, view };
                    // A panicking handler fails its event (retried like any failure) instead of the worker.
                    let run = std::panic::AssertUnwindSafe(self.handlers.dispatch(&self.ctx, &event));
                    match futures_util::FutureExt::catch_unwind(run).await {
                        Ok(result) => result.map_err(|e| e.to_string()),
                        Err(_) => Err("a handler panicked; see Tao's log".to_string()),
                    }
                }
                Err(e) => Err(e),
            },
        }
    }
}

/// Delay before attempt `attempts + 1`: `base * 2^(attempts-1)`, at most an hour.
pub fn backoff(base: Duration, attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 20) as u32 - 1;
    base.saturating_mul(1 << exp).min(Duration::from_secs(3600))
}

async fn prune_loop(pool: crate::store::Pool, retention: Duration, mut shutdown: watch::Receiver<bool>) {
    // A maintenance timer, not a queue poll: payload age changes with the clock, not with events.
    let every = (retention / 10).clamp(Duration::from_secs(60), Duration::from_secs(3600));
    while !*shutdown.borrow() {
        match queue::prune_payloads(&pool, now_ms() - retention.as_millis() as i64).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "pruned old event payloads"),
            Err(e) => tracing::error!(error = %e, "pruning event payloads failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            changed = shutdown.changed() => if changed.is_err() { break },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(5);
        assert_eq!(backoff(base, 1), Duration::from_secs(5));
        assert_eq!(backoff(base, 3), Duration::from_secs(20));
        assert_eq!(backoff(base, 50), Duration::from_secs(3600));
    }
}
