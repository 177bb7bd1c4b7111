//! Stored GitLab webhook deliveries: the durable queue between the webhook intake and the handlers, and
//! the index behind `GET /api/v1/events`.
//!
//! Owns the `gitlab_event` table and its `gitlab_event_payload` side table (the raw JSON, written once
//! with the event row and kept apart so that state changes rewrite only the small row): insert with
//! deduplication by delivery id, claiming batches in arrival order per object (an event is claimable only
//! when no earlier unprocessed event of the same object key exists), recording a batch's outcomes
//! (processed, or failed with a retry time) in one transaction, keyset pages for streaming, and payload
//! pruning. It knows nothing of HTTP or of what the payloads mean: the caller extracts kind, project, ref
//! and object key (see `crate::gitlab::webhook`).

use std::fmt;

use sqlx::{FromRow, Row};

use super::{is_unique_violation, Pool, StoreError};

/// Sequence number of a stored event; also its arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct EventId(pub i64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A delivery id (`Idempotency-Key` or `X-Gitlab-Event-UUID`): 1-200 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryId(String);

impl DeliveryId {
    /// What a delivery id must look like, for error messages.
    pub const EXPECTED: &'static str = "1-200 visible ASCII characters";

    /// Parses a header value; `None` when it is not a plausible delivery id.
    pub fn parse(s: &str) -> Option<DeliveryId> {
        let s = s.trim();
        let ok = !s.is_empty() && s.len() <= 200 && s.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| DeliveryId(s.to_string()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Processing state of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    /// Waiting for a worker.
    Pending,
    /// Claimed by a worker (until its lease ends).
    Running,
    /// The last attempt failed; retried at `next_attempt_at`.
    Failed,
    /// Handled.
    Processed,
}

impl EventState {
    /// The state's stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Pending => "pending",
            EventState::Running => "running",
            EventState::Failed => "failed",
            EventState::Processed => "processed",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(s: &str) -> Option<EventState> {
        [EventState::Pending, EventState::Running, EventState::Failed, EventState::Processed]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// A delivery to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Deduplication key.
    pub delivery_id: DeliveryId,
    /// The hook that sent it (`X-Gitlab-Webhook-UUID`).
    pub webhook_id: Option<String>,
    /// `X-Gitlab-Event`, verbatim.
    pub event_header: String,
    /// `object_kind`, else `event_name`, else derived from the header.
    pub kind: String,
    /// GitLab project id, when the payload names one.
    pub project_id: Option<i64>,
    /// GitLab project path (`group/project`), when the payload names one.
    pub project_path: Option<String>,
    /// Git ref the event is about, when there is one.
    pub git_ref: Option<String>,
    /// Events with the same key are handled one at a time, in arrival order.
    pub object_key: String,
    /// Arrival time, epoch ms.
    pub received_at: i64,
    /// The raw JSON body.
    pub payload: String,
}

/// A stored event.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct EventRow {
    /// Sequence number.
    pub id: i64,
    /// Deduplication key.
    pub delivery_id: String,
    /// `X-Gitlab-Webhook-UUID`.
    pub webhook_id: Option<String>,
    /// `X-Gitlab-Event`.
    pub event_header: String,
    /// Event kind.
    pub kind: String,
    /// GitLab project id.
    pub project_id: Option<i64>,
    /// GitLab project path.
    pub project_path: Option<String>,
    /// Git ref.
    pub git_ref: Option<String>,
    /// Ordering key.
    pub object_key: String,
    /// Arrival time, epoch ms.
    pub received_at: i64,
    /// Raw JSON (None once pruned).
    pub payload: Option<String>,
    /// `pending`, `running`, `failed` or `processed`.
    pub state: String,
    /// Handling attempts so far.
    pub attempts: i64,
    /// Earliest next attempt (or lease end while running), epoch ms.
    pub next_attempt_at: i64,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// When handled, epoch ms.
    pub processed_at: Option<i64>,
}

/// Result of [`insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored now.
    Stored(EventId),
    /// The delivery id was already stored (a redelivery): nothing changed.
    Duplicate,
}

/// Which events a page holds.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this project id.
    pub project_id: Option<i64>,
    /// Only this project path.
    pub project_path: Option<String>,
    /// Received at or after, epoch ms.
    pub since: Option<i64>,
    /// Received before, epoch ms.
    pub until: Option<i64>,
    /// Only events in this state.
    pub state: Option<EventState>,
}

/// The columns of `gitlab_event` as an [`EventRow`] wants them, without the payload (see [`select`]).
pub(super) const COLUMNS: &str =
    "id, delivery_id, webhook_id, event_header, kind, project_id, project_path, ref AS git_ref, \
     object_key, received_at, state, attempts, next_attempt_at, last_error, processed_at";

/// `SELECT` of whole [`EventRow`]s: the event columns and the payload, if not pruned (add `WHERE …`).
fn select() -> String {
    format!("SELECT {COLUMNS}, p.payload FROM gitlab_event LEFT JOIN gitlab_event_payload p ON p.event_id = id")
}

/// The payload column of an `UPDATE gitlab_event … RETURNING` (which cannot join).
const RETURNING_PAYLOAD: &str =
    "(SELECT p.payload FROM gitlab_event_payload p WHERE p.event_id = gitlab_event.id) AS payload";

const INSERT: &str =
    "INSERT INTO gitlab_event (delivery_id, webhook_id, event_header, kind, project_id, project_path, \
     ref, object_key, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (delivery_id) DO NOTHING RETURNING id";

const INSERT_PAYLOAD: &str = "INSERT INTO gitlab_event_payload (event_id, payload) VALUES ($1, $2)";

/// SQLite: both rows in one script (see `super::script`); binds `$10` the payload. The payload row is
/// written only when the event row was inserted now: `changes()` is the row count of the event insert
/// (0 for a redelivery) and `last_insert_rowid()` its id.
fn insert_both_sqlite() -> String {
    format!(
        "BEGIN IMMEDIATE; {INSERT}; \
         INSERT INTO gitlab_event_payload (event_id, payload) SELECT id, $10 FROM gitlab_event \
         WHERE id = last_insert_rowid() AND delivery_id = $1 AND changes() = 1; \
         COMMIT"
    )
}

/// PostgreSQL: both rows in one statement (one round trip, atomic without a transaction); binds `$10`
/// the payload. The payload row exists only when the event row was inserted now.
fn insert_both_pg() -> String {
    format!(
        "WITH e AS ({INSERT}), p AS (INSERT INTO gitlab_event_payload (event_id, payload) SELECT id, $10 FROM e) \
             SELECT id FROM e"
    )
}

macro_rules! bind_new {
    ($q:expr, $e:expr) => {
        $q.bind($e.delivery_id.as_str())
            .bind($e.webhook_id.as_deref())
            .bind(&$e.event_header)
            .bind(&$e.kind)
            .bind($e.project_id)
            .bind($e.project_path.as_deref())
            .bind($e.git_ref.as_deref())
            .bind(&$e.object_key)
            .bind($e.received_at)
    };
}

/// Inserts the event row and, when it is new, its payload row, on an open transaction (SQLite).
async fn insert_in(tx: &mut sqlx::SqliteConnection, event: &NewEvent) -> Result<Option<i64>, sqlx::Error> {
    let id: Option<i64> = bind_new!(sqlx::query_scalar(INSERT), event).fetch_optional(&mut *tx).await?;
    if let Some(id) = id {
        sqlx::query(INSERT_PAYLOAD).bind(id).bind(&event.payload).execute(&mut *tx).await?;
    }
    Ok(id)
}

/// Stores a delivery unless its delivery id is already stored. Durable when it returns.
pub async fn insert(pool: &Pool, event: &NewEvent) -> Result<Inserted, StoreError> {
    let id: Result<Option<i64>, sqlx::Error> = match pool {
        Pool::Sqlite(p) => {
            let sql = insert_both_sqlite();
            let script = bind_new!(sqlx::query(&sql), event).bind(&event.payload);
            super::script::fetch_all(p, script).await.and_then(|rows| rows.first().map(|r| r.try_get(0)).transpose())
        }
        Pool::Postgres(p) => {
            bind_new!(sqlx::query_scalar(&insert_both_pg()), event).bind(&event.payload).fetch_optional(p).await
        }
    };
    match id {
        Ok(Some(id)) => Ok(Inserted::Stored(EventId(id))),
        Ok(None) => Ok(Inserted::Duplicate),
        // Two concurrent first deliveries of one id: the loser sees the winner's row.
        Err(e) if is_unique_violation(&e) => Ok(Inserted::Duplicate),
        Err(e) => Err(e.into()),
    }
}

/// Stores many deliveries in one transaction (imports, tests, benchmarks). Returns how many were new.
pub async fn insert_many(pool: &Pool, events: &[NewEvent]) -> Result<u64, StoreError> {
    let mut stored = 0;
    match pool {
        Pool::Sqlite(p) => {
            let mut tx = p.begin().await?;
            for e in events {
                stored += u64::from(insert_in(&mut tx, e).await?.is_some());
            }
            tx.commit().await?;
        }
        Pool::Postgres(p) => {
            let sql = insert_both_pg();
            let mut tx = p.begin().await?;
            for e in events {
                let q = bind_new!(sqlx::query_scalar(&sql), e).bind(&e.payload);
                let id: Option<i64> = q.fetch_optional(&mut *tx).await?;
                stored += u64::from(id.is_some());
            }
            tx.commit().await?;
        }
    }
    Ok(stored)
}

/// One event by id.
pub async fn get(pool: &Pool, id: EventId) -> Result<Option<EventRow>, StoreError> {
    let sql = format!("{} WHERE id = $1", select());
    Ok(crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(id.0).fetch_optional(p).await)?)
}

/// Most events one [`claim_batch`] takes (the workers' batch).
pub const CLAIM_BATCH: i64 = 32;

/// Takes the oldest claimable event and marks it running with a lease until `now + lease_ms`
/// ([`claim_batch`] of one).
pub async fn claim(pool: &Pool, now: i64, lease_ms: i64) -> Result<Option<EventRow>, StoreError> {
    Ok(claim_batch(pool, now, lease_ms, 1).await?.pop())
}

/// Takes up to `limit` claimable events, oldest first, and marks them running with one lease until
/// `now + lease_ms` (the lease end doubles as the claim's mark: [`Outcomes::release`] needs it).
///
/// Claimable: not processed, due (`next_attempt_at <= now`, which includes running events whose lease
/// expired), and no earlier unprocessed event with the same object key. So only the oldest unprocessed
/// event of an object can qualify, and a batch never holds two events of one object. One statement, so
/// two claimers never take the same event: on SQLite the statement holds the single writer lock from its
/// start; on PostgreSQL the ids are picked once (an `ARRAY(…)` init plan, never re-run per row) under
/// `FOR UPDATE SKIP LOCKED`, which lets claimers pass each other's candidates and re-checks a candidate
/// another claimer changed meanwhile. Returned in id order.
pub async fn claim_batch(pool: &Pool, now: i64, lease_ms: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
    record_then_claim(pool, &Outcomes::default(), now, Some((lease_ms, limit))).await
}

/// Records `outcomes` (see [`record`]) and claims the next batch (see [`claim_batch`]) in one transaction:
/// a worker's round costs one write transaction. The claim sees the outcomes, so the next event of an
/// object just processed is claimable at once.
pub async fn record_and_claim(
    pool: &Pool,
    outcomes: &Outcomes,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    record_then_claim(pool, outcomes, now, Some((lease_ms, limit))).await
}

/// The claim statement of the pool's dialect: binds `$1` now, `$2` lease end, `$3` limit.
fn claim_sql(pool: &Pool) -> String {
    // The objects with unprocessed events, one index seek each (a loose scan of gitlab_event_head), then
    // the oldest unprocessed event of each: the only candidates.
    let heads = "WITH RECURSIVE k(key) AS ( \
             SELECT MIN(object_key) FROM gitlab_event WHERE state <> 'processed' \
             UNION ALL \
             SELECT (SELECT MIN(g.object_key) FROM gitlab_event g WHERE g.state <> 'processed' AND g.object_key > k.key) \
             FROM k WHERE k.key IS NOT NULL), \
         head(id) AS ( \
             SELECT (SELECT MIN(h.id) FROM gitlab_event h WHERE h.state <> 'processed' AND h.object_key = k.key) \
             FROM k WHERE k.key IS NOT NULL)";
    // The state test on `e` is repeated so that PostgreSQL's re-check of a row another claimer changed
    // meanwhile (processed, failed, claimed) rejects it.
    let pick = "SELECT e.id FROM head JOIN gitlab_event e ON e.id = head.id \
         WHERE e.state <> 'processed' AND e.next_attempt_at <= $1 ORDER BY e.id LIMIT $3";
    let target = match pool {
        Pool::Sqlite(_) => format!("id IN ({pick})"),
        Pool::Postgres(_) => format!("id = ANY(ARRAY({pick} FOR UPDATE OF e SKIP LOCKED))"),
    };
    format!(
        "{heads} UPDATE gitlab_event SET state = 'running', attempts = attempts + 1, next_attempt_at = $2 \
         WHERE {target} RETURNING {COLUMNS}, {RETURNING_PAYLOAD}"
    )
}

/// What became of claimed events, recorded together by [`record`].
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    /// Handled.
    pub processed: Vec<EventId>,
    /// Failed: (event, error, retry time).
    pub failed: Vec<(EventId, String, i64)>,
    /// Claimed but not attempted (a stopping worker, a batch near its lease end): claimable again at
    /// once, the claim's attempt not counted. Only while the claim is still this one, i.e. `running`
    /// with this lease end; an event whose lease ran out and was claimed again is left alone.
    pub release: Vec<EventId>,
    /// The lease end the events were claimed with (`now + lease_ms` of [`claim_batch`]).
    pub lease_end: i64,
}

impl Outcomes {
    /// True when there is nothing to record.
    pub fn is_empty(&self) -> bool {
        self.processed.is_empty() && self.failed.is_empty() && self.release.is_empty()
    }
}

/// `$from, $from+1, …` for `n` values.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Records the outcomes of claimed events in one transaction: all processed ones in one statement, each
/// failure with its error and retry time, the released ones in one statement.
pub async fn record(pool: &Pool, outcomes: &Outcomes, now: i64) -> Result<(), StoreError> {
    record_then_claim(pool, outcomes, now, None).await.map(|_| ())
}

/// [`record`], then (with `claim = Some((lease_ms, limit))`) [`claim_batch`], in one transaction.
async fn record_then_claim(
    pool: &Pool,
    outcomes: &Outcomes,
    now: i64,
    claim: Option<(i64, i64)>,
) -> Result<Vec<EventRow>, StoreError> {
    let processed = format!(
        "UPDATE gitlab_event SET state = 'processed', processed_at = $1, last_error = NULL, next_attempt_at = 0 \
         WHERE id IN ({})",
        placeholders(2, outcomes.processed.len())
    );
    let failed = "UPDATE gitlab_event SET state = 'failed', last_error = $1, next_attempt_at = $2 WHERE id = $3";
    let release = format!(
        "UPDATE gitlab_event SET state = 'pending', attempts = attempts - 1, next_attempt_at = 0 \
         WHERE state = 'running' AND next_attempt_at = $1 AND id IN ({})",
        placeholders(2, outcomes.release.len())
    );
    let claim_sql = claim.map(|_| claim_sql(pool));
    let (lease_ms, limit) = claim.unwrap_or_default();
    if let (Pool::Sqlite(p), false) = (pool, outcomes.is_empty()) {
        return record_then_claim_sqlite(p, outcomes, now, claim_sql.as_deref(), lease_ms, limit).await;
    }
    let mut rows: Vec<EventRow> = crate::with_pool!(pool, p => {
        if outcomes.is_empty() {
            // A claim alone is one statement: no transaction round trips.
            match &claim_sql {
                Some(sql) => sqlx::query_as(sql).bind(now).bind(now + lease_ms).bind(limit).fetch_all(p).await?,
                None => Vec::new(),
            }
        } else {
            let mut tx = p.begin().await?;
            if !outcomes.processed.is_empty() {
                let mut q = sqlx::query(&processed).bind(now);
                for id in &outcomes.processed {
                    q = q.bind(id.0);
                }
                q.execute(&mut *tx).await?;
            }
            for (id, error, retry_at) in &outcomes.failed {
                sqlx::query(failed).bind(error).bind(retry_at).bind(id.0).execute(&mut *tx).await?;
            }
            if !outcomes.release.is_empty() {
                let mut q = sqlx::query(&release).bind(outcomes.lease_end);
                for id in &outcomes.release {
                    q = q.bind(id.0);
                }
                q.execute(&mut *tx).await?;
            }
            let rows = match &claim_sql {
                Some(sql) => sqlx::query_as(sql).bind(now).bind(now + lease_ms).bind(limit).fetch_all(&mut *tx).await?,
                None => Vec::new(),
            };
            tx.commit().await?;
            rows
        }
    });
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// [`record_then_claim`] on SQLite as one script (see `super::script`): the write lock is held only while
/// SQLite runs the statements. Binds `$1` now, `$2` the new lease end, `$3` the limit, `$4` the recorded
/// claim's lease end, then the ids (and errors and retry times) of the outcomes.
async fn record_then_claim_sqlite(
    pool: &sqlx::SqlitePool,
    outcomes: &Outcomes,
    now: i64,
    claim_sql: Option<&str>,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let mut sql = String::from("BEGIN IMMEDIATE; ");
    let mut bound = 4;
    let mut next = |n: usize| {
        let list = placeholders(bound + 1, n);
        bound += n;
        list
    };
    if !outcomes.processed.is_empty() {
        sql += &format!(
            "UPDATE gitlab_event SET state = 'processed', processed_at = $1, last_error = NULL, next_attempt_at = 0 \
             WHERE id IN ({}); ",
            next(outcomes.processed.len())
        );
    }
    for _ in &outcomes.failed {
        let [error, retry_at, id] = [next(1), next(1), next(1)];
        sql += &format!(
            "UPDATE gitlab_event SET state = 'failed', last_error = {error}, next_attempt_at = {retry_at} \
             WHERE id = {id}; "
        );
    }
    if !outcomes.release.is_empty() {
        sql += &format!(
            "UPDATE gitlab_event SET state = 'pending', attempts = attempts - 1, next_attempt_at = 0 \
             WHERE state = 'running' AND next_attempt_at = $4 AND id IN ({}); ",
            next(outcomes.release.len())
        );
    }
    if let Some(claim) = claim_sql {
        sql += claim;
        sql += "; ";
    }
    sql += "COMMIT";
    let mut q = sqlx::query(&sql).bind(now).bind(now + lease_ms).bind(limit).bind(outcomes.lease_end);
    for id in &outcomes.processed {
        q = q.bind(id.0);
    }
    for (id, error, retry_at) in &outcomes.failed {
        q = q.bind(error).bind(retry_at).bind(id.0);
    }
    for id in &outcomes.release {
        q = q.bind(id.0);
    }
    let rows = super::script::fetch_all(pool, q).await?;
    let mut rows = rows.iter().map(EventRow::from_row).collect::<Result<Vec<_>, _>>()?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// Marks a claimed event handled.
pub async fn mark_processed(pool: &Pool, id: EventId, now: i64) -> Result<(), StoreError> {
    record(pool, &Outcomes { processed: vec![id], ..Outcomes::default() }, now).await
}

/// Marks a claimed event failed, to be retried at `retry_at`.
pub async fn mark_failed(pool: &Pool, id: EventId, error: &str, retry_at: i64) -> Result<(), StoreError> {
    let outcomes = Outcomes { failed: vec![(id, error.to_string(), retry_at)], ..Outcomes::default() };
    record(pool, &outcomes, 0).await
}

/// Makes events left running by a stopped Tao claimable at once. Returns how many.
///
/// With several replicas on PostgreSQL this may hand another replica's running event to a second
/// worker; handlers are idempotent, so that costs a repeated call, never a wrong result.
pub async fn release_orphans(pool: &Pool) -> Result<u64, StoreError> {
    let sql = "UPDATE gitlab_event SET state = 'pending', next_attempt_at = 0 WHERE state = 'running'";
    Ok(crate::with_pool!(pool, p => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()))?)
}

/// The earliest future time an unprocessed event becomes due (a retry or a lease end), if any.
pub async fn next_due(pool: &Pool, now: i64) -> Result<Option<i64>, StoreError> {
    let sql = "SELECT MIN(next_attempt_at) FROM gitlab_event \
               WHERE state IN ('pending', 'failed', 'running') AND next_attempt_at > $1";
    Ok(crate::with_pool!(pool, p => sqlx::query_scalar(sql).bind(now).fetch_one(p).await)?)
}

pub use super::event_page::page;

/// Drops the raw payload of processed events received before `before` (their index rows stay).
pub async fn prune_payloads(pool: &Pool, before: i64) -> Result<u64, StoreError> {
    let sql = "DELETE FROM gitlab_event_payload WHERE event_id IN \
               (SELECT id FROM gitlab_event WHERE received_at < $1 AND state = 'processed')";
    Ok(crate::with_pool!(pool, p => sqlx::query(sql).bind(before).execute(p).await.map(|r| r.rows_affected()))?)
}

/// Whether any stored event has this kind.
pub async fn has_kind(pool: &Pool, kind: &str) -> Result<bool, StoreError> {
    let sql = "SELECT COUNT(*) FROM (SELECT 1 FROM gitlab_event WHERE kind = $1 LIMIT 1) AS k";
    let n: i64 = crate::with_pool!(pool, p => sqlx::query_scalar(sql).bind(kind).fetch_one(p).await)?;
    Ok(n > 0)
}

/// How many events are stored (tests and the benchmark compare this with what was sent).
pub async fn count(pool: &Pool) -> Result<i64, StoreError> {
    Ok(crate::with_pool!(pool, p => sqlx::query_scalar("SELECT COUNT(*) FROM gitlab_event").fetch_one(p).await)?)
}

/// How many events are not processed yet.
pub async fn unprocessed(pool: &Pool) -> Result<i64, StoreError> {
    let sql = "SELECT COUNT(*) FROM gitlab_event WHERE state <> 'processed'";
    Ok(crate::with_pool!(pool, p => sqlx::query_scalar(sql).fetch_one(p).await)?)
}
