//! One-command write transactions on SQLite.
//!
//! SQLite has a single writer: a transaction holds the database's write lock from its first write to its
//! `COMMIT`, and every other writer waits (in SQLite's busy handler, which sleeps 1, 2, 5, 10… ms between
//! tries). A transaction driven statement by statement from async code holds that lock across a round trip
//! to sqlx's connection thread and back per statement, and on a busy machine each round trip waits for the
//! scheduler. A *script* (`BEGIN IMMEDIATE; …; COMMIT` as one query string, bound once) runs all of its
//! statements on the connection thread in one go, so the lock is held only while SQLite works, as for a
//! single autocommit statement. This module owns running such scripts safely: a script that fails, or whose
//! caller goes away before it finished, may leave its transaction open, so its connection is closed
//! (SQLite rolls back) instead of going back to the pool.
//!
//! Scripts of one process on one database also queue for a write gate here, in order, before they ask
//! SQLite for its lock: a writer that finds the lock taken waits in SQLite's busy handler, which sleeps
//! 1, 2, 5, 10 … up to 100 ms between tries however soon the lock is free, so the webhook intake's batch
//! could wait tens of milliseconds behind a worker's 1 ms transaction. In the gate the next writer is
//! woken the moment the previous one finished. (Writers outside scripts, and other processes, still
//! meet in SQLite's busy handler, as before.)

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Sqlite, SqlitePool};

/// A pooled connection that is closed, not reused, unless [`Armed::disarm`] was called: dropped while a
/// script is running (the caller's future was cancelled) or after a failure, it may hold an open
/// transaction.
struct Armed(Option<sqlx::pool::PoolConnection<Sqlite>>);

impl Armed {
    fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        self.0.as_mut().expect("armed connection present until disarmed")
    }

    fn disarm(mut self) {
        // Returned to the pool as usual.
        drop(self.0.take());
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(mut conn) = self.0.take() {
            conn.close_on_drop();
        }
    }
}

/// Runs `script`, which must be one transaction from `BEGIN IMMEDIATE` to `COMMIT`, as one command on a
/// pooled connection and returns every row its statements produced, in order. Statements bind by number
/// (`$1`, `$2`, …) from the one argument list, so they can share values.
pub(crate) async fn fetch_all<'q>(
    pool: &SqlitePool,
    script: Query<'q, Sqlite, SqliteArguments<'q>>,
) -> Result<Vec<SqliteRow>, sqlx::Error> {
    let gate = gate(pool);
    let _turn = gate.lock().await;
    let mut conn = Armed(Some(pool.acquire().await?));
    // `fetch_all` runs every statement (`fetch_optional` would stop at the first row).
    let rows = script.fetch_all(conn.conn()).await?;
    conn.disarm();
    Ok(rows)
}

/// The write gate of `pool`'s database file (one per file and process; FIFO).
fn gate(pool: &SqlitePool) -> Arc<tokio::sync::Mutex<()>> {
    static GATES: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let file = pool.connect_options().get_filename().to_path_buf();
    let mut gates = GATES.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    gates.entry(file).or_default().clone()
}
