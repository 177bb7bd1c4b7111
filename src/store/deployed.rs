//! What runs where: the deployed state per environment, host and component (with the exact run spec),
//! its history (the environment timeline), the product versions that reached each environment (what
//! rollback returns to), and environment freezes.

use super::{now_ms, Pool, StoreError};

/// One running container as recorded.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct DeployedRow {
    /// Environment.
    pub env: String,
    /// Host name.
    pub host: String,
    /// Component.
    pub component: String,
    /// Product of the version deployed.
    pub product: Option<String>,
    /// Component version; none for an off-release build.
    pub version: Option<String>,
    /// The image reference pulled.
    pub image: String,
    /// Image tag.
    pub image_tag: String,
    /// Image digest, when known.
    pub image_digest: Option<String>,
    /// Container name.
    pub container: String,
    /// JSON run spec.
    pub run_spec: String,
    /// Task that deployed it.
    pub task_id: i64,
    /// Epoch ms.
    pub deployed_at: i64,
}

/// One entry of the environment timeline.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct HistoryRow {
    /// Sequence number.
    pub id: i64,
    /// Environment.
    pub env: String,
    /// Host.
    pub host: String,
    /// Component.
    pub component: String,
    /// `deployed`, `restored` or `removed`.
    pub action: String,
    /// Product.
    pub product: Option<String>,
    /// Version (none: off-release).
    pub version: Option<String>,
    /// Image reference.
    pub image: String,
    /// Image tag.
    pub image_tag: String,
    /// Digest.
    pub image_digest: Option<String>,
    /// Container name.
    pub container: String,
    /// JSON run spec.
    pub run_spec: String,
    /// Task.
    pub task_id: i64,
    /// Epoch ms.
    pub at: i64,
}

/// A product version that reached an environment completely.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct EnvReleaseRow {
    /// Sequence number.
    pub id: i64,
    /// Environment.
    pub env: String,
    /// Product.
    pub product: String,
    /// Version.
    pub version: String,
    /// Task that completed it.
    pub task_id: i64,
    /// JSON list of every host/component run spec right after the task.
    pub snapshot: String,
    /// Epoch ms.
    pub deployed_at: i64,
}

/// An environment frozen against new deploys.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct FreezeRow {
    /// Environment.
    pub env: String,
    /// Why.
    pub reason: String,
    /// Who.
    pub frozen_by: String,
    /// Epoch ms.
    pub frozen_at: i64,
}

/// What a [`record`] call writes.
#[derive(Debug, Clone)]
pub struct Deployed<'a> {
    /// Environment.
    pub env: &'a str,
    /// Host.
    pub host: &'a str,
    /// Component.
    pub component: &'a str,
    /// Product.
    pub product: Option<&'a str>,
    /// Version.
    pub version: Option<&'a str>,
    /// Image reference.
    pub image: &'a str,
    /// Tag.
    pub image_tag: &'a str,
    /// Digest.
    pub image_digest: Option<&'a str>,
    /// Container.
    pub container: &'a str,
    /// JSON run spec.
    pub run_spec: &'a str,
    /// Task.
    pub task_id: i64,
}

const STATE: &str = "env, host, component, product, version, image, image_tag, image_digest, container, run_spec, \
                     task_id, deployed_at";

/// Everything recorded as running in `env`, by component then host.
pub async fn state(pool: &Pool, env: &str) -> Result<Vec<DeployedRow>, StoreError> {
    let sql = format!("SELECT {STATE} FROM deployed_state WHERE env = $1 ORDER BY component, host");
    Ok(crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(env).fetch_all(p).await)?)
}

/// Records a container as running (`action` is `deployed` or `restored`), in state and history at once.
pub async fn record(pool: &Pool, d: &Deployed<'_>, action: &str) -> Result<(), StoreError> {
    let upsert = "INSERT INTO deployed_state (env, host, component, product, version, image, image_tag, image_digest, \
                  container, run_spec, task_id, deployed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                  ON CONFLICT (env, host, component) DO UPDATE SET product = excluded.product, \
                  version = excluded.version, image = excluded.image, image_tag = excluded.image_tag, \
                  image_digest = excluded.image_digest, container = excluded.container, run_spec = excluded.run_spec, \
                  task_id = excluded.task_id, deployed_at = excluded.deployed_at";
    let history = "INSERT INTO deploy_history (env, host, component, action, product, version, image, image_tag, \
                   image_digest, container, run_spec, task_id, at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
    let now = now_ms();
    crate::with_pool!(pool, p => {
        let mut tx = p.begin().await?;
        sqlx::query(upsert)
            .bind(d.env).bind(d.host).bind(d.component).bind(d.product).bind(d.version).bind(d.image)
            .bind(d.image_tag).bind(d.image_digest).bind(d.container).bind(d.run_spec).bind(d.task_id).bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(history)
            .bind(d.env).bind(d.host).bind(d.component).bind(action).bind(d.product).bind(d.version).bind(d.image)
            .bind(d.image_tag).bind(d.image_digest).bind(d.container).bind(d.run_spec).bind(d.task_id).bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Records that a container no longer runs (a rollback of a first deploy removed it).
pub async fn remove(pool: &Pool, env: &str, host: &str, component: &str, task_id: i64) -> Result<(), StoreError> {
    let Some(row) = state(pool, env).await?.into_iter().find(|r| r.host == host && r.component == component) else {
        return Ok(());
    };
    let delete = "DELETE FROM deployed_state WHERE env = $1 AND host = $2 AND component = $3";
    let history = "INSERT INTO deploy_history (env, host, component, action, product, version, image, image_tag, \
                   image_digest, container, run_spec, task_id, at) \
                   VALUES ($1, $2, $3, 'removed', $4, $5, $6, $7, $8, $9, $10, $11, $12)";
    crate::with_pool!(pool, p => {
        let mut tx = p.begin().await?;
        sqlx::query(delete).bind(env).bind(host).bind(component).execute(&mut *tx).await?;
        sqlx::query(history)
            .bind(env).bind(host).bind(component).bind(&row.product).bind(&row.version).bind(&row.image)
            .bind(&row.image_tag).bind(&row.image_digest).bind(&row.container).bind(&row.run_spec).bind(task_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    });
    Ok(())
}

/// The environment timeline, newest first.
pub async fn history(pool: &Pool, env: &str, limit: i64) -> Result<Vec<HistoryRow>, StoreError> {
    history_page(pool, env, None, limit).await
}

/// One page of [`history`]: the entries before entry `before` (from the newest when `None`), newest first.
pub async fn history_page(
    pool: &Pool,
    env: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<HistoryRow>, StoreError> {
    let sql = "SELECT id, env, host, component, action, product, version, image, image_tag, image_digest, container, \
               run_spec, task_id, at FROM deploy_history WHERE env = $1 AND id < $2 ORDER BY id DESC LIMIT $3";
    let before = before.unwrap_or(i64::MAX);
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).bind(env).bind(before).bind(limit).fetch_all(p).await)?)
}

/// Records that a product version reached an environment, with the full state after it.
pub async fn record_release(
    pool: &Pool,
    env: &str,
    product: &str,
    version: &str,
    task_id: i64,
    snapshot: &str,
) -> Result<(), StoreError> {
    let sql = "INSERT INTO env_release (env, product, version, task_id, snapshot, deployed_at) \
               VALUES ($1, $2, $3, $4, $5, $6)";
    crate::with_pool!(pool, p => {
        sqlx::query(sql).bind(env).bind(product).bind(version).bind(task_id).bind(snapshot).bind(now_ms()).execute(p).await.map(|_| ())
    })?;
    Ok(())
}

/// Product versions that reached `env`, newest first.
pub async fn releases(pool: &Pool, env: &str) -> Result<Vec<EnvReleaseRow>, StoreError> {
    let sql = "SELECT id, env, product, version, task_id, snapshot, deployed_at FROM env_release WHERE env = $1 \
               ORDER BY id DESC";
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).bind(env).fetch_all(p).await)?)
}

/// Freezes an environment (or updates the reason of an existing freeze).
pub async fn freeze(pool: &Pool, env: &str, reason: &str, by: &str) -> Result<(), StoreError> {
    let sql = "INSERT INTO env_freeze (env, reason, frozen_by, frozen_at) VALUES ($1, $2, $3, $4) \
               ON CONFLICT (env) DO UPDATE SET reason = excluded.reason, frozen_by = excluded.frozen_by, \
               frozen_at = excluded.frozen_at";
    crate::with_pool!(pool, p => sqlx::query(sql).bind(env).bind(reason).bind(by).bind(now_ms()).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// Lifts a freeze. False when the environment was not frozen.
pub async fn unfreeze(pool: &Pool, env: &str) -> Result<bool, StoreError> {
    let sql = "DELETE FROM env_freeze WHERE env = $1";
    let n = crate::with_pool!(pool, p => sqlx::query(sql).bind(env).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// The freeze of an environment, if frozen.
pub async fn frozen(pool: &Pool, env: &str) -> Result<Option<FreezeRow>, StoreError> {
    let sql = "SELECT env, reason, frozen_by, frozen_at FROM env_freeze WHERE env = $1";
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).bind(env).fetch_optional(p).await)?)
}

/// Every time `product` `version` reached an environment, oldest first.
pub async fn reached(pool: &Pool, product: &str, version: &str) -> Result<Vec<EnvReleaseRow>, StoreError> {
    let sql = "SELECT id, env, product, version, task_id, snapshot, deployed_at FROM env_release \
               WHERE product = $1 AND version = $2 ORDER BY id";
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).bind(product).bind(version).fetch_all(p).await)?)
}

/// The version of `product` that last reached `env` completely.
pub async fn latest_version(pool: &Pool, env: &str, product: &str) -> Result<Option<String>, StoreError> {
    let sql = "SELECT version FROM env_release WHERE env = $1 AND product = $2 ORDER BY id DESC LIMIT 1";
    Ok(crate::with_pool!(pool, p => sqlx::query_scalar(sql).bind(env).bind(product).fetch_optional(p).await)?)
}
