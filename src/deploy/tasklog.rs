//! A task's log: every line is written to the store first, then traced and announced to the task's
//! followers (the queue's change feed). Lines say what happened on which host to which component; they
//! never hold an env value (secrets and plain values alike stay out of logs).

use super::plan::Step;
use super::queue::QueueHandle;
use crate::store::task;
use crate::store::Pool;

/// Writes one task's log lines; cheap to clone.
#[derive(Clone)]
pub struct TaskLog {
    pool: Pool,
    queue: QueueHandle,
    id: i64,
}

impl TaskLog {
    /// The log of task `id`, stored in `pool`, announced through `queue`.
    pub fn new(pool: Pool, queue: QueueHandle, id: i64) -> TaskLog {
        TaskLog { pool, queue, id }
    }

    /// Writes a line at `level` (`info`, `warn`, `error`), optionally about one host and component. A
    /// store failure is traced, never raised: the task goes on.
    pub async fn write(&self, level: &str, host: Option<&str>, component: Option<&str>, line: &str) {
        if let Err(e) = task::log(&self.pool, self.id, level, host, component, line).await {
            tracing::error!(task = self.id, error = %e, "writing a task log line failed");
        }
        tracing::info!(task = self.id, host, component, level, "{line}");
        self.queue.changed(self.id);
    }

    /// Writes an `info` line about the whole task.
    pub async fn info(&self, line: &str) {
        self.write("info", None, None, line).await;
    }

    /// Writes a line about one step (its host and component).
    pub async fn at(&self, level: &str, step: &Step, line: &str) {
        self.write(level, Some(&step.host.name), Some(&step.spec.component), line).await;
    }
}
