//! Deploy tasks: the durable queue, task logs and environment leases.
//!
//! Claiming is one transaction: pick the oldest queued task whose environment has no earlier queued
//! task and no live lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), mark it running, and take the
//! environment's lease; the lease's primary key is the hard guarantee that two deploys to one
//! environment never interleave. Leases expire unless renewed, and a restarted Tao interrupts its
//! orphaned tasks and frees their leases, so nothing stays locked by a dead process.

use super::{is_unique_violation, now_ms, Pool, StoreError};
use crate::deploy::task::{TaskKind, TaskStatus};

/// Kind and status are stored as their names (`TaskKind::as_str`, `TaskStatus::as_str`); a row holding
/// any other name fails to decode, naming it.
macro_rules! stored_as_name {
    ($t:ty) => {
        impl<DB: sqlx::Database> sqlx::Type<DB> for $t
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }
        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $t
        where
            String: sqlx::Decode<'r, DB>,
        {
            fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<String as sqlx::Decode<'r, DB>>::decode(value)?.parse::<$t>()?)
            }
        }
    };
}
stored_as_name!(TaskKind);
stored_as_name!(TaskStatus);

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct TaskRow {
    /// Task id.
    pub id: i64,
    /// What it deploys.
    pub kind: TaskKind,
    /// Environment.
    pub env: String,
    /// Product (release, rollback).
    pub product: Option<String>,
    /// Product version (release, rollback target).
    pub version: Option<String>,
    /// Component (component build).
    pub component: Option<String>,
    /// Image tag or digest (component build).
    pub image_tag: Option<String>,
    /// Comma-separated subset of a release's components ('' = all).
    pub components: String,
    /// Replace unchanged containers too.
    pub force: bool,
    /// Undo this task's changes when a step fails.
    pub rollback_on_failure: bool,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// Actor.
    pub requested_by: String,
    /// Idempotency key given by the requester.
    pub idempotency_key: Option<String>,
    /// Catalog revision the task was planned against.
    pub catalog_revision: Option<i64>,
    /// The plan, JSON, once made.
    pub plan: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Cancellation was requested while running.
    pub cancel_requested: bool,
    /// Instance that claimed it.
    pub worker: Option<String>,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub started_at: Option<i64>,
    /// Epoch ms.
    pub finished_at: Option<i64>,
}

impl TaskRow {
    /// True once the task can no longer change.
    pub fn is_finished(&self) -> bool {
        self.status.is_final()
    }
}

/// A task to enqueue.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// What it deploys.
    pub kind: TaskKind,
    /// Environment.
    pub env: String,
    /// Product.
    pub product: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Component.
    pub component: Option<String>,
    /// Image tag.
    pub image_tag: Option<String>,
    /// Subset of components.
    pub components: Vec<String>,
    /// Force.
    pub force: bool,
    /// Roll back on failure.
    pub rollback_on_failure: bool,
    /// Actor.
    pub requested_by: String,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// Catalog revision.
    pub catalog_revision: Option<i64>,
    /// The plan at request time, JSON.
    pub plan: Option<String>,
}

/// One task log line.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct LogRow {
    /// Sequence number (for following).
    pub id: i64,
    /// Task.
    pub task_id: i64,
    /// Epoch ms.
    pub at: i64,
    /// `info`, `warn`, `error`.
    pub level: String,
    /// Host, when the line is about one.
    pub host: Option<String>,
    /// Component, when the line is about one.
    pub component: Option<String>,
    /// The line.
    pub line: String,
}

const COLUMNS: &str = "id, kind, env, product, version, component, image_tag, components, force, rollback_on_failure, \
    status, requested_by, idempotency_key, catalog_revision, plan, error, cancel_requested, worker, created_at, \
    started_at, finished_at";

/// Stores a queued task, or returns the task already stored under the same idempotency key.
/// The flag says whether it was created now.
pub async fn enqueue(pool: &Pool, t: &NewTask) -> Result<(TaskRow, bool), StoreError> {
    if let Some(key) = &t.idempotency_key {
        if let Some(existing) = by_key(pool, key).await? {
            return Ok((existing, false));
        }
    }
    let sql = format!(
        "INSERT INTO deploy_task (kind, env, product, version, component, image_tag, components, force, \
         rollback_on_failure, status, requested_by, idempotency_key, catalog_revision, plan, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', $10, $11, $12, $13, $14) RETURNING {COLUMNS}"
    );
    let inserted: Result<TaskRow, sqlx::Error> = crate::with_pool!(pool, p => {
        sqlx::query_as(&sql)
            .bind(t.kind.as_str())
            .bind(&t.env)
            .bind(&t.product)
            .bind(&t.version)
            .bind(&t.component)
            .bind(&t.image_tag)
            .bind(t.components.join(","))
            .bind(t.force)
            .bind(t.rollback_on_failure)
            .bind(&t.requested_by)
            .bind(&t.idempotency_key)
            .bind(t.catalog_revision)
            .bind(&t.plan)
            .bind(now_ms())
            .fetch_one(p)
            .await
    });
    match inserted {
        Ok(row) => Ok((row, true)),
        Err(e) if is_unique_violation(&e) => {
            let key = t.idempotency_key.as_deref().unwrap_or_default();
            let existing = by_key(pool, key).await?.ok_or(StoreError::Db(e))?;
            Ok((existing, false))
        }
        Err(e) => Err(e.into()),
    }
}

async fn by_key(pool: &Pool, key: &str) -> Result<Option<TaskRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM deploy_task WHERE idempotency_key = $1");
    Ok(crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(key).fetch_optional(p).await)?)
}

/// One task.
pub async fn get(pool: &Pool, id: i64) -> Result<Option<TaskRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM deploy_task WHERE id = $1");
    Ok(crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)?)
}

/// The newest `limit` tasks, optionally of one environment, newest first.
pub async fn list(pool: &Pool, env: Option<&str>, limit: i64) -> Result<Vec<TaskRow>, StoreError> {
    page(pool, env, None, limit).await
}

/// One page of [`list`]: the tasks before task `before` (all when `None`), newest first.
pub async fn page(pool: &Pool, env: Option<&str>, before: Option<i64>, limit: i64) -> Result<Vec<TaskRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM deploy_task WHERE ($1 IS NULL OR env = $1) AND id < $2 ORDER BY id DESC LIMIT $3"
    );
    let before = before.unwrap_or(i64::MAX);
    Ok(crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(env).bind(before).bind(limit).fetch_all(p).await)?)
}

/// Claims the next runnable task for `owner` and takes its environment's lease for `lease_ms`.
pub async fn claim(pool: &Pool, owner: &str, lease_ms: i64) -> Result<Option<TaskRow>, StoreError> {
    let lock = match pool {
        Pool::Sqlite(_) => "",
        Pool::Postgres(_) => "FOR UPDATE SKIP LOCKED",
    };
    let pick = format!(
        "UPDATE deploy_task SET status = 'running', worker = $1, started_at = $2 \
         WHERE status = 'queued' AND id = ( \
           SELECT t.id FROM deploy_task t \
           WHERE t.status = 'queued' \
             AND NOT EXISTS (SELECT 1 FROM deploy_task o WHERE o.env = t.env AND o.status = 'queued' AND o.id < t.id) \
             AND NOT EXISTS (SELECT 1 FROM env_lease l WHERE l.env = t.env AND l.expires_at > $2) \
           ORDER BY t.id LIMIT 1 {lock}) \
         RETURNING {COLUMNS}"
    );
    let lease = "INSERT INTO env_lease (env, task_id, owner, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (env) DO UPDATE SET task_id = excluded.task_id, owner = excluded.owner, \
                 expires_at = excluded.expires_at WHERE env_lease.expires_at <= $5";
    let now = now_ms();
    crate::with_pool!(pool, p => {
        let mut tx = p.begin().await?;
        let picked: Option<TaskRow> = sqlx::query_as(&pick).bind(owner).bind(now).fetch_optional(&mut *tx).await?;
        let Some(task) = picked else {
            return Ok(None);
        };
        let took = sqlx::query(lease)
            .bind(&task.env)
            .bind(task.id)
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if took == 0 {
            // Another claimer holds this environment: leave the task queued.
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(task))
    })
}

/// Extends the lease of a running task. False when the lease is no longer ours (the task must stop).
pub async fn renew_lease(pool: &Pool, env: &str, task_id: i64, owner: &str, lease_ms: i64) -> Result<bool, StoreError> {
    let sql = "UPDATE env_lease SET expires_at = $1 WHERE env = $2 AND task_id = $3 AND owner = $4";
    let n = crate::with_pool!(pool, p => {
        sqlx::query(sql).bind(now_ms() + lease_ms).bind(env).bind(task_id).bind(owner).execute(p).await.map(|r| r.rows_affected())
    })?;
    Ok(n > 0)
}

/// Stores the plan the runner made.
pub async fn set_plan(pool: &Pool, id: i64, plan: &str) -> Result<(), StoreError> {
    let sql = "UPDATE deploy_task SET plan = $1 WHERE id = $2";
    crate::with_pool!(pool, p => sqlx::query(sql).bind(plan).bind(id).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// Ends a running task with `status` and frees its environment's lease.
pub async fn finish(pool: &Pool, id: i64, final_status: TaskStatus, error: Option<&str>) -> Result<(), StoreError> {
    let done = "UPDATE deploy_task SET status = $1, error = $2, finished_at = $3 WHERE id = $4 AND status = 'running'";
    let free = "DELETE FROM env_lease WHERE task_id = $1";
    crate::with_pool!(pool, p => {
        let mut tx = p.begin().await?;
        sqlx::query(done).bind(final_status.as_str()).bind(error).bind(now_ms()).bind(id).execute(&mut *tx).await?;
        sqlx::query(free).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// What a cancellation request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The task was queued and is now cancelled.
    Cancelled,
    /// The task is running; its runner stops at the next step and rolls back.
    Requested,
    /// The task had already ended with this status.
    AlreadyFinished(TaskStatus),
    /// No such task.
    NotFound,
}

/// Cancels a queued task at once, or asks a running one to stop.
pub async fn request_cancel(pool: &Pool, id: i64) -> Result<CancelOutcome, StoreError> {
    let queued =
        "UPDATE deploy_task SET status = 'cancelled', finished_at = $1, error = 'cancelled before it started' \
                  WHERE id = $2 AND status = 'queued'";
    let n = crate::with_pool!(pool, p => sqlx::query(queued).bind(now_ms()).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
    if n > 0 {
        return Ok(CancelOutcome::Cancelled);
    }
    let running = "UPDATE deploy_task SET cancel_requested = TRUE WHERE id = $1 AND status = 'running'";
    let n = crate::with_pool!(pool, p => sqlx::query(running).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
    if n > 0 {
        return Ok(CancelOutcome::Requested);
    }
    Ok(match get(pool, id).await? {
        Some(t) => CancelOutcome::AlreadyFinished(t.status),
        None => CancelOutcome::NotFound,
    })
}

/// Marks running tasks `interrupted` and frees their leases: those of `owner` (a restarted instance's
/// own orphans) and any whose lease has expired (a dead replica's). Returns their ids.
pub async fn recover(pool: &Pool, owner: &str) -> Result<Vec<i64>, StoreError> {
    let now = now_ms();
    let find = "SELECT t.id FROM deploy_task t WHERE t.status = 'running' AND (t.worker = $1 OR NOT EXISTS \
                (SELECT 1 FROM env_lease l WHERE l.task_id = t.id AND l.expires_at > $2))";
    let ids: Vec<i64> =
        crate::with_pool!(pool, p => sqlx::query_scalar(find).bind(owner).bind(now).fetch_all(p).await)?;
    for id in &ids {
        interrupt(pool, *id, "Tao stopped while this task ran; check the environment and deploy again").await?;
    }
    Ok(ids)
}

/// Ends one running task as `interrupted` with a reason and frees its lease.
pub async fn interrupt(pool: &Pool, id: i64, reason: &str) -> Result<(), StoreError> {
    finish(pool, id, TaskStatus::Interrupted, Some(reason)).await
}

/// The earliest expiry among live leases (a queued task may become runnable then).
pub async fn next_lease_expiry(pool: &Pool) -> Result<Option<i64>, StoreError> {
    let sql = "SELECT MIN(expires_at) FROM env_lease";
    Ok(crate::with_pool!(pool, p => sqlx::query_scalar(sql).fetch_one(p).await)?)
}

/// Whether any task is queued.
pub async fn has_queued(pool: &Pool) -> Result<bool, StoreError> {
    let sql = "SELECT COUNT(*) FROM deploy_task WHERE status = 'queued'";
    let n: i64 = crate::with_pool!(pool, p => sqlx::query_scalar(sql).fetch_one(p).await)?;
    Ok(n > 0)
}

/// Appends a log line to a task.
pub async fn log(
    pool: &Pool,
    task_id: i64,
    level: &str,
    host: Option<&str>,
    component: Option<&str>,
    line: &str,
) -> Result<i64, StoreError> {
    let sql = "INSERT INTO task_log (task_id, at, level, host, component, line) VALUES ($1, $2, $3, $4, $5, $6) \
               RETURNING id";
    Ok(crate::with_pool!(pool, p => {
        sqlx::query_scalar(sql).bind(task_id).bind(now_ms()).bind(level).bind(host).bind(component).bind(line).fetch_one(p).await
    })?)
}

/// Log lines of a task after line `after` (0 for the start), oldest first.
pub async fn log_after(pool: &Pool, task_id: i64, after: i64, limit: i64) -> Result<Vec<LogRow>, StoreError> {
    let sql = "SELECT id, task_id, at, level, host, component, line FROM task_log WHERE task_id = $1 AND id > $2 \
               ORDER BY id LIMIT $3";
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).bind(task_id).bind(after).bind(limit).fetch_all(p).await)?)
}

/// Remembers the GitLab deployment that mirrors task `id` (created by a pipeline job).
pub async fn set_gitlab_deployment(pool: &Pool, id: i64, project: &str, deployment: i64) -> Result<(), StoreError> {
    let sql = "UPDATE deploy_task SET gitlab_project = $1, gitlab_deployment = $2 WHERE id = $3";
    crate::with_pool!(pool, p => sqlx::query(sql).bind(project).bind(deployment).bind(id).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// Records that GitLab knows how task `id` ended.
pub async fn mark_gitlab_synced(pool: &Pool, id: i64) -> Result<(), StoreError> {
    let sql = "UPDATE deploy_task SET gitlab_synced = TRUE WHERE id = $1";
    crate::with_pool!(pool, p => sqlx::query(sql).bind(id).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// A finished task whose GitLab deployment does not know its end yet.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UnsyncedDeployment {
    /// Task id.
    pub id: i64,
    /// How the task ended.
    pub status: String,
    /// GitLab project path.
    pub gitlab_project: String,
    /// GitLab deployment id.
    pub gitlab_deployment: i64,
}

/// Finished tasks whose GitLab deployment still says `running`, oldest first.
pub async fn unsynced_gitlab_deployments(pool: &Pool) -> Result<Vec<UnsyncedDeployment>, StoreError> {
    let sql = "SELECT id, status, gitlab_project, gitlab_deployment FROM deploy_task \
               WHERE gitlab_deployment IS NOT NULL AND gitlab_project IS NOT NULL AND NOT gitlab_synced \
               AND status NOT IN ('queued', 'running') ORDER BY id";
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).fetch_all(p).await)?)
}
