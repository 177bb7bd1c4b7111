//! Schema migrations: embedded SQL files per dialect, applied in order, each in its own transaction.
//!
//! The files live in `migrations/{sqlite,postgres}/NNNN_name.sql` and must stay in step (the integration
//! tests compare the two schemas as the databases report them). Applied versions are recorded in
//! `schema_migration`. On PostgreSQL an advisory lock keeps two replicas from migrating at once.

use super::{now_ms, Pool, StoreError};

/// One migration: its number, file name and the SQL of each dialect.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Sequence number, starting at 1, increasing.
    pub version: i64,
    /// File name without directory, for messages.
    pub name: &'static str,
    /// SQLite dialect.
    pub sqlite: &'static str,
    /// PostgreSQL dialect.
    pub postgres: &'static str,
}

macro_rules! migration {
    ($version:expr, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("migrations/sqlite/", $name)),
            postgres: include_str!(concat!("migrations/postgres/", $name)),
        }
    };
}

/// Every migration this build knows, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_init.sql"),
    migration!(2, "0002_deploys.sql"),
    migration!(3, "0003_events.sql"),
    migration!(4, "0004_event_heads.sql"),
    migration!(5, "0005_task_gitlab_deployment.sql"),
    migration!(6, "0006_policy.sql"),
    migration!(7, "0007_notification.sql"),
    migration!(8, "0008_grafana_views.sql"),
    migration!(9, "0009_work_items.sql"),
    migration!(10, "0010_event_payload.sql"),
    migration!(11, "0011_delivery_facts.sql"),
    migration!(12, "0012_web_sessions.sql"),
];

const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS schema_migration (
    version     BIGINT PRIMARY KEY,
    name        TEXT   NOT NULL,
    applied_at  BIGINT NOT NULL
)";

/// Arbitrary constant identifying Tao's migration lock among PostgreSQL advisory locks.
const PG_LOCK_KEY: i64 = 0x0074_616f_5f6d_6967; // "tao_mig"

/// Applies every pending migration. Returns the versions applied now (empty when up to date).
pub async fn run(pool: &Pool) -> Result<Vec<i64>, StoreError> {
    run_to(pool, i64::MAX).await
}

/// Applies pending migrations up to and including `target` (tests use this to upgrade a database that
/// holds sample data of an older schema).
pub async fn run_to(pool: &Pool, target: i64) -> Result<Vec<i64>, StoreError> {
    if let Pool::Postgres(p) = pool {
        // Held on one connection for the whole run, released explicitly below.
        let mut conn = p.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)").bind(PG_LOCK_KEY).execute(&mut *conn).await?;
        let result = apply(pool, target).await;
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(PG_LOCK_KEY).execute(&mut *conn).await?;
        return result;
    }
    apply(pool, target).await
}

/// The newest migration applied to the database (0 for a fresh one).
pub async fn current_version(pool: &Pool) -> Result<i64, StoreError> {
    crate::with_pool!(pool, p => sqlx::raw_sql(BOOKKEEPING).execute(p).await.map(|_| ()))?;
    let v: Option<i64> = crate::with_pool!(pool, p => {
        sqlx::query_scalar("SELECT MAX(version) FROM schema_migration").fetch_one(p).await
    })?;
    Ok(v.unwrap_or(0))
}

async fn apply(pool: &Pool, target: i64) -> Result<Vec<i64>, StoreError> {
    let current = current_version(pool).await?;
    let known = MIGRATIONS.last().map(|m| m.version).unwrap_or(0);
    if current > known {
        return Err(StoreError::TooNew { found: current, known });
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > current && m.version <= target) {
        let sql = match pool {
            Pool::Sqlite(_) => m.sqlite,
            Pool::Postgres(_) => m.postgres,
        };
        let fail = |source| StoreError::Migration { version: m.version, name: m.name, source };
        crate::with_pool!(pool, p => {
            let mut tx = p.begin().await?;
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(fail)?;
            sqlx::query("INSERT INTO schema_migration (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(m.version)
                .bind(m.name)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
        });
        tracing::info!(version = m.version, name = m.name, backend = pool.backend(), "applied migration");
        applied.push(m.version);
    }
    Ok(applied)
}
