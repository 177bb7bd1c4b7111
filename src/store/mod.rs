//! The store: Tao's only persistent state, on SQLite (embedded default) or PostgreSQL.
//!
//! Owns the connection [`Pool`], the embedded migrations of both dialects ([`migrate`]) and one file per
//! aggregate (catalog revisions, product versions, API tokens, the audit log). Every query is written once
//! with `$1..$N` placeholders and runs on either backend through [`with_pool!`]; where the dialects differ
//! the code matches on the pool. Runtime queries only (`sqlx::query_as` + `FromRow`): the crate builds
//! without a database. The store knows nothing about HTTP or the CLI.

pub mod audit;
pub mod catalog;
pub mod change;
pub mod deployed;
pub mod event;
mod event_page;
pub mod intake;
pub mod migrate;
pub mod notify;
pub mod policy;
pub mod release;
mod script;
pub mod session;
pub mod task;
pub mod token;
pub mod workitem;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// A connection pool to one of the two supported databases.
#[derive(Clone, Debug)]
pub enum Pool {
    /// The embedded default: one SQLite file in WAL mode.
    Sqlite(SqlitePool),
    /// PostgreSQL, for teams that run several Tao replicas.
    Postgres(PgPool),
}

/// Runs the same expression against whichever backend `$pool` holds, binding the concrete pool to `$p`.
///
/// The body is type-checked once per backend, so a query that does not decode on one of them fails to
/// compile rather than at run time.
#[macro_export]
macro_rules! with_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is neither `sqlite:` nor `postgres:` or does not parse.
    #[error("invalid database URL: expected sqlite://PATH or postgres://…, found {0:?}")]
    BadUrl(String),
    /// A database error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed; the database is left at the last migration that succeeded.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        /// Migration number.
        version: i64,
        /// Migration file name.
        name: &'static str,
        /// The database's error.
        source: sqlx::Error,
    },
    /// The database holds migrations this build does not know (it was migrated by a newer Tao).
    #[error("the database is at migration {found}, newer than this Tao knows ({known}): upgrade Tao")]
    TooNew {
        /// Newest migration in the database.
        found: i64,
        /// Newest migration this build ships.
        known: i64,
    },
    /// A write shared with other requests (a group commit of webhook deliveries, `intake`) failed, or its
    /// writer stopped: nothing of it was stored.
    #[error("{0}")]
    SharedWrite(String),
    /// A stored value does not parse (the database was edited by hand, or by a buggy build).
    #[error("corrupt stored value in {what}: {detail}")]
    Corrupt {
        /// Which table or column.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// Which database a URL names, with secrets redacted for display.
pub fn describe_url(url: &str) -> String {
    match url.split_once('@') {
        Some((creds, rest)) if url.starts_with("postgres") => {
            let scheme = creds.split("://").next().unwrap_or("postgres");
            format!("{scheme}://…@{rest}")
        }
        _ => url.to_string(),
    }
}

/// How often the background checkpointer copies the SQLite WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// SQLite's WAL checkpoints, off the write path: SQLite's automatic checkpoint runs inside the commit that
/// pushed the WAL past its threshold, so that commit (and every request waiting behind it, e.g. a batch
/// of webhook deliveries) waits for the copy. Here a `PASSIVE` checkpoint (it never blocks writers or
/// readers) runs every [`CHECKPOINT_EVERY`] on a pooled connection, until the pool is closed. When the
/// last connection closes, SQLite checkpoints whatever is left, as always.
async fn checkpoints(pool: sqlx::SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            break;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            if pool.is_closed() {
                break;
            }
            tracing::warn!(error = %e, "SQLite checkpoint failed; retrying");
        }
    }
}

impl Pool {
    /// Connects to `url` (`sqlite://path`, `sqlite:path` or `postgres://…`), creating a SQLite file if
    /// missing. Does not migrate: call [`migrate::run`].
    pub async fn connect(url: &str) -> Result<Pool, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(|_| StoreError::BadUrl(describe_url(url)))?;
            let pool = PgPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            Ok(Pool::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|_| StoreError::BadUrl(url.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // Checkpoints run in the background (see `checkpoints`), not in the connection that
                // happens to commit when the WAL passes 1000 pages; the WAL is cut back to 64 MiB when
                // it restarts.
                .pragma("wal_autocheckpoint", "0")
                .pragma("journal_size_limit", "67108864");
            // No liveness ping on every acquire (sqlx's default): a connection to a local file does not go
            // stale, and the ping is a round trip to the connection's thread before every query.
            let pool =
                SqlitePoolOptions::new().max_connections(4).test_before_acquire(false).connect_with(opts).await?;
            tokio::spawn(checkpoints(pool.clone()));
            Ok(Pool::Sqlite(pool))
        } else {
            Err(StoreError::BadUrl(url.to_string()))
        }
    }

    /// The SQLite URL of a file path.
    pub fn sqlite_url(path: &Path) -> String {
        format!("sqlite://{}", path.display())
    }

    /// Which backend this is, for logs and errors.
    pub fn backend(&self) -> &'static str {
        match self {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Cheap liveness probe.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Writes a consistent copy of a SQLite store to `dest` while Tao keeps running (`VACUUM INTO`).
    ///
    /// PostgreSQL has its own tools (`pg_dump`), so this refuses there.
    pub async fn backup_to(&self, dest: &Path) -> Result<(), BackupError> {
        let Pool::Sqlite(p) = self else {
            return Err(BackupError::NotSqlite);
        };
        if dest.exists() {
            return Err(BackupError::Exists(dest.display().to_string()));
        }
        let dest = dest.to_str().ok_or(BackupError::BadPath)?;
        sqlx::query("VACUUM INTO $1").bind(dest).execute(p).await.map_err(StoreError::from)?;
        Ok(())
    }

    /// Closes every connection (waits for checked-out ones to return).
    pub async fn close(&self) {
        with_pool!(self, p => p.close().await)
    }
}

/// Why a backup was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// `tao backup` is for the SQLite store.
    #[error("backup copies a SQLite store; for PostgreSQL use pg_dump")]
    NotSqlite,
    /// Never overwrite: an existing file may be the only good backup.
    #[error("backup target {0} already exists; choose a new file")]
    Exists(String),
    /// SQLite takes the target as text.
    #[error("backup target path is not valid UTF-8")]
    BadPath,
    /// The copy itself failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Milliseconds since the Unix epoch: the one time representation of the store.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Renders a stored epoch-milliseconds time as RFC 3339 (UTC) for people and JSON.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// True when `err` is a unique-constraint violation (a concurrent insert of the same key won).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
