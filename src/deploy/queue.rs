//! The durable deploy queue's engine: a dispatcher that claims tasks (see `store::task::claim`) up to
//! the worker cap, runs each through an [`Executor`] while renewing its environment lease, and records
//! how it ended.
//!
//! Wake-ups are pushed: enqueueing, a task ending and a cancellation notify the dispatcher; the only
//! timer is the earliest lease expiry (a dead replica's environment becomes runnable then). On shutdown
//! the dispatcher stops claiming, lets running tasks finish up to the drain timeout, then stops them and
//! marks them `interrupted`. At start it interrupts its own orphans from a previous run.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::task::TaskStatus;
use crate::store::task::{self, TaskRow};
use crate::store::{self, Pool, StoreError};

/// Why a running task is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A user cancelled it.
    Cancelled,
    /// Tao is shutting down (drain timeout passed) or lost the environment lease.
    Interrupted,
}

/// How a task ended, as the executor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step succeeded.
    Succeeded,
    /// A step failed; the message says which and why.
    Failed(String),
    /// Stopped on request.
    Cancelled(String),
    /// Stopped by shutdown or a lost lease.
    Interrupted(String),
}

/// What an executor gets besides the task: a way to notice it should stop.
#[derive(Debug, Clone)]
pub struct TaskControl {
    stop: watch::Receiver<Option<StopReason>>,
    /// Keeps the channel open for controls nobody else holds a sender of (see [`TaskControl::never`]).
    _keep: Option<Arc<watch::Sender<Option<StopReason>>>>,
}

impl TaskControl {
    /// Why the task should stop, if it should.
    pub fn stop_reason(&self) -> Option<StopReason> {
        *self.stop.borrow()
    }

    /// Resolves when the task is asked to stop.
    pub async fn stopped(&mut self) -> StopReason {
        loop {
            if let Some(reason) = *self.stop.borrow_and_update() {
                return reason;
            }
            if self.stop.changed().await.is_err() {
                // The dispatcher is gone: nothing will ever ask again, so treat it as an interruption.
                return StopReason::Interrupted;
            }
        }
    }

    /// A control that is never stopped (for direct, in-process runs).
    pub fn never() -> TaskControl {
        let (tx, stop) = watch::channel(None);
        TaskControl { stop, _keep: Some(Arc::new(tx)) }
    }
}

/// A boxed future, so executors can be trait objects.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Runs one claimed task to its end.
pub trait Executor: Send + Sync + 'static {
    /// Executes `task`; must return promptly once `control` says stop.
    fn execute(&self, task: TaskRow, control: TaskControl) -> BoxFuture<Outcome>;
}

/// Settings of the dispatcher.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Tasks running at once (`TAO_WORKERS`).
    pub workers: usize,
    /// Lease length; renewed every third of it.
    pub lease: Duration,
    /// This instance's identity in leases (stable across restarts of the same instance).
    pub owner: String,
    /// How long a shutdown waits for running tasks.
    pub drain_timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            workers: 5,
            lease: Duration::from_secs(30),
            owner: "tao".into(),
            drain_timeout: Duration::from_secs(60),
        }
    }
}

/// The handle front ends use: wake the dispatcher, ask a running task to stop, follow task changes.
#[derive(Debug, Clone)]
pub struct QueueHandle {
    wake: Arc<Notify>,
    running: Arc<Mutex<HashMap<i64, watch::Sender<Option<StopReason>>>>>,
    changes: tokio::sync::broadcast::Sender<i64>,
}

impl Default for QueueHandle {
    fn default() -> Self {
        QueueHandle { wake: Arc::default(), running: Arc::default(), changes: tokio::sync::broadcast::channel(1024).0 }
    }
}

impl QueueHandle {
    /// Tells the dispatcher something may be runnable.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Asks a task running in this process to stop; false when it does not run here.
    pub fn stop(&self, id: i64, reason: StopReason) -> bool {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.get(&id) {
            Some(tx) => {
                let _ = tx.send(Some(reason));
                true
            }
            None => false,
        }
    }

    /// Announces that task `id` changed (a log line, its status).
    pub fn changed(&self, id: i64) {
        let _ = self.changes.send(id);
    }

    /// Subscribes to task changes (task ids).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<i64> {
        self.changes.subscribe()
    }

    /// Ids of tasks running in this process.
    pub fn running_here(&self) -> Vec<i64> {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect()
    }
}

/// PostgreSQL channel on which replicas tell each other that a task was queued or ended.
pub const PG_CHANNEL: &str = "tao_deploy_queue";

/// Tells every replica's dispatcher that the queue changed (PostgreSQL `NOTIFY`; in-process wake-ups
/// cover SQLite, which one Tao owns).
pub async fn notify_replicas(pool: &Pool) {
    if let Pool::Postgres(p) = pool {
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')").bind(PG_CHANNEL).execute(p).await {
            tracing::warn!(error = %e, "NOTIFY of a queue change failed; other replicas notice at their next wake-up");
        }
    }
}

/// First pause before the queue's `LISTEN` connection is tried again after an error (it doubles).
const LISTEN_RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest pause between two `LISTEN` reconnect attempts.
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(5);

/// On PostgreSQL, turns other replicas' `NOTIFY`s into local wake-ups until dropped.
async fn listen_replicas(pool: &Pool, handle: QueueHandle) -> Option<AbortOnDrop> {
    let Pool::Postgres(p) = pool else { return None };
    let mut listener = match sqlx::postgres::PgListener::connect_with(p).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for other replicas' queue changes");
            return None;
        }
    };
    if let Err(e) = listener.listen(PG_CHANNEL).await {
        tracing::warn!(error = %e, "cannot LISTEN for other replicas' queue changes");
        return None;
    }
    Some(AbortOnDrop(tokio::spawn(async move {
        let mut pause = LISTEN_RETRY_MIN;
        loop {
            match listener.recv().await {
                Ok(_) => {
                    pause = LISTEN_RETRY_MIN;
                    handle.wake();
                }
                // The store is closing: nothing left to listen to.
                Err(sqlx::Error::PoolClosed) => return,
                Err(e) => {
                    // PgListener reconnects on the next recv; wake in case a NOTIFY was lost. The pause
                    // matters: a server that refuses every reconnect makes recv fail at once, and a loop
                    // without one would spin (never yielding, so not even a runtime shutdown stops it).
                    tracing::warn!(error = %e, retry_in = ?pause, "queue LISTEN connection interrupted");
                    handle.wake();
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LISTEN_RETRY_MAX);
                }
            }
        }
    })))
}

/// The dispatcher. Build with [`Dispatcher::new`], run with [`Dispatcher::run`].
pub struct Dispatcher {
    pool: Pool,
    config: QueueConfig,
    handle: QueueHandle,
    executor: Arc<dyn Executor>,
}

impl Dispatcher {
    /// A dispatcher over `pool` sharing `handle` with the front ends.
    pub fn new(pool: Pool, config: QueueConfig, handle: QueueHandle, executor: Arc<dyn Executor>) -> Dispatcher {
        Dispatcher { pool, config, handle, executor }
    }

    /// Interrupts this instance's orphans of a previous run (and tasks whose lease expired).
    pub async fn recover(&self) -> Result<Vec<i64>, StoreError> {
        let ids = task::recover(&self.pool, &self.config.owner).await?;
        for id in &ids {
            tracing::warn!(task = id, "interrupted a task orphaned by a previous run");
            self.handle.changed(*id);
        }
        Ok(ids)
    }

    /// Claims and runs tasks until `shutdown` turns true, then drains.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut workers: JoinSet<i64> = JoinSet::new();
        let _listening = listen_replicas(&self.pool, self.handle.clone()).await;
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Fill free worker slots.
            while workers.len() < self.config.workers {
                match task::claim(&self.pool, &self.config.owner, self.lease_ms()).await {
                    Ok(Some(claimed)) => self.start(claimed, &mut workers),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "claiming a task failed");
                        break;
                    }
                }
            }
            let expiry = task::next_lease_expiry(&self.pool).await.ok().flatten();
            let until_expiry = expiry
                .map(|at| Duration::from_millis(u64::try_from(at - store::now_ms()).unwrap_or(0) + 10))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = self.handle.wake.notified() => {}
                Some(done) = workers.join_next(), if !workers.is_empty() => {
                    if let Ok(id) = done {
                        tracing::debug!(task = id, "worker slot freed");
                    }
                }
                _ = tokio::time::sleep(until_expiry), if expiry.is_some() => {}
                _ = shutdown.changed() => {}
            }
        }
        self.drain(workers).await;
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX)
    }

    fn start(&self, claimed: TaskRow, workers: &mut JoinSet<i64>) {
        let id = claimed.id;
        let (tx, rx) = watch::channel(None);
        if claimed.cancel_requested {
            let _ = tx.send(Some(StopReason::Cancelled));
        }
        self.handle.running.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx.clone());
        tracing::info!(task = id, env = %claimed.env, kind = %claimed.kind, "task started");
        self.handle.changed(id);
        let (pool, handle, executor) = (self.pool.clone(), self.handle.clone(), self.executor.clone());
        let (owner, lease_ms) = (self.config.owner.clone(), self.lease_ms());
        let renew_every = self.config.lease / 3;
        workers.spawn(async move {
            let env = claimed.env.clone();
            let heartbeat = {
                let (pool, owner, tx, env) = (pool.clone(), owner.clone(), tx.clone(), env.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(renew_every);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        match task::renew_lease(&pool, &env, id, &owner, lease_ms).await {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::error!(task = id, env = %env, "lost the environment lease; stopping");
                                let _ = tx.send(Some(StopReason::Interrupted));
                                return;
                            }
                            Err(e) => tracing::warn!(task = id, error = %e, "renewing the lease failed"),
                        }
                    }
                })
            };
            let heartbeat = AbortOnDrop(heartbeat);
            let task_started = std::time::Instant::now();
            let outcome = executor.execute(claimed, TaskControl { stop: rx, _keep: None }).await;
            drop(heartbeat);
            let (final_status, error) = match &outcome {
                Outcome::Succeeded => (TaskStatus::Succeeded, None),
                Outcome::Failed(e) => (TaskStatus::Failed, Some(e.as_str())),
                Outcome::Cancelled(e) => (TaskStatus::Cancelled, Some(e.as_str())),
                Outcome::Interrupted(e) => (TaskStatus::Interrupted, Some(e.as_str())),
            };
            crate::metrics::task_finished(final_status.as_str(), task_started.elapsed());
            if let Err(e) = task::finish(&pool, id, final_status, error).await {
                tracing::error!(task = id, error = %e, "recording the end of a task failed");
            }
            tracing::info!(task = id, env = %env, status = final_status.as_str(), "task ended");
            handle.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            handle.changed(id);
            handle.wake();
            notify_replicas(&pool).await;
            id
        });
    }

    async fn drain(&self, mut workers: JoinSet<i64>) {
        if workers.is_empty() {
            return;
        }
        tracing::info!(running = workers.len(), timeout = ?self.config.drain_timeout, "draining deploy tasks");
        let deadline = tokio::time::sleep(self.config.drain_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = workers.join_next() => if next.is_none() { return },
                _ = &mut deadline => break,
            }
        }
        let ids = self.handle.running_here();
        tracing::warn!(tasks = ?ids, "drain timeout: interrupting running tasks");
        for id in ids {
            self.handle.stop(id, StopReason::Interrupted);
        }
        // Executors stop promptly once told; record whatever they report.
        while workers.join_next().await.is_some() {}
    }
}

/// Aborts a spawned task when dropped, so a lease heartbeat never outlives its worker (even when the
/// worker itself is dropped mid-run).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
