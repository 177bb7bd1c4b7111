//! The event queue in the store, on SQLite and PostgreSQL: concurrent claimers never take one event twice
//! (one at a time or in batches of at most one event per object) and keep arrival order per object; batch
//! outcomes are recorded together; retention prunes only processed payloads; redeliveries and abandoned
//! inserts leave one event row with its payload or nothing; SQLite's WAL is checkpointed in the background.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use tao::store::event::{self, DeliveryId, EventId, Inserted, NewEvent, Outcomes};

use crate::both_backends;
use crate::support::TestDb;

fn new_event(n: usize, object: usize, received_at: i64) -> NewEvent {
    NewEvent {
        delivery_id: DeliveryId::parse(&format!("d-{n}")).unwrap(),
        webhook_id: None,
        event_header: "Pipeline Hook".into(),
        kind: "pipeline".into(),
        project_id: Some(1),
        project_path: Some("monitor/api".into()),
        git_ref: Some("main".into()),
        object_key: format!("pipeline:1:{object}"),
        received_at,
        payload: format!("{{\"n\":{n}}}"),
    }
}

async fn concurrent_claims(db: TestDb) {
    let pool = db.pool().await;
    let events: Vec<NewEvent> = (0..60).map(|n| new_event(n, n % 5, 1_000 + n as i64)).collect();
    assert_eq!(event::insert_many(&pool, &events).await.unwrap(), 60);
    assert_eq!(event::insert_many(&pool, &events[..10]).await.unwrap(), 0, "delivery ids deduplicate");
    // Taken after a claim and before marking processed: within one object, the next event cannot be
    // claimed before the previous one is marked, so ticket order must follow arrival order.
    let ticket = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let (pool, ticket) = (pool.clone(), ticket.clone());
            tokio::spawn(async move {
                let mut handled = Vec::new();
                loop {
                    let now = tao::store::now_ms();
                    match event::claim(&pool, now, 60_000).await.unwrap() {
                        Some(row) => {
                            let t = ticket.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            handled.push((row.object_key.clone(), row.id, t));
                            event::mark_processed(&pool, EventId(row.id), now).await.unwrap();
                        }
                        None if event::unprocessed(&pool).await.unwrap() == 0 => return handled,
                        None => tokio::task::yield_now().await,
                    }
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut per_object: BTreeMap<String, Vec<(usize, i64)>> = BTreeMap::new();
    for c in claimers {
        for (key, id, t) in c.await.unwrap() {
            assert!(seen.insert(id), "event {id} claimed twice");
            per_object.entry(key).or_default().push((t, id));
        }
    }
    assert_eq!(seen.len(), 60);
    assert_eq!(per_object.len(), 5);
    for (key, mut handled) in per_object {
        handled.sort();
        assert!(handled.windows(2).all(|w| w[0].1 < w[1].1), "{key} handled out of order: {handled:?}");
    }
    let rows = event::page(&pool, &Default::default(), 0, 100).await.unwrap();
    assert!(rows.iter().all(|r| r.attempts == 1 && r.state == "processed"));
}
both_backends!(claims_are_exclusive_and_ordered_per_object, concurrent_claims);

async fn retention(db: TestDb) {
    let pool = db.pool().await;
    let events: Vec<NewEvent> = (0..3).map(|n| new_event(n, n, 1_000 * (n as i64 + 1))).collect();
    event::insert_many(&pool, &events).await.unwrap();
    // Event 1 (oldest) processed, event 2 not: only processed payloads may go.
    let first = event::claim(&pool, 10_000, 60_000).await.unwrap().unwrap();
    assert_eq!(first.payload.as_deref(), Some(r#"{"n":0}"#), "a claimed event comes with its payload");
    event::mark_processed(&pool, EventId(first.id), 10_000).await.unwrap();
    assert_eq!(event::prune_payloads(&pool, 2_500).await.unwrap(), 1);
    let rows = event::page(&pool, &Default::default(), 0, 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.payload.is_some()).collect::<Vec<_>>(), [false, true, true]);
    assert_eq!(rows[0].kind, "pipeline", "the index row stays");
    assert_eq!(event::prune_payloads(&pool, 2_500).await.unwrap(), 0);
}
both_backends!(retention_prunes_only_processed_payloads, retention);

async fn concurrent_batch_claims(db: TestDb) {
    let pool = db.pool().await;
    // 240 events over 12 objects, arrival interleaved: every batch could hold several of one object.
    let events: Vec<NewEvent> = (0..240).map(|n| new_event(n, (n * 7) % 12, 1_000 + n as i64)).collect();
    assert_eq!(event::insert_many(&pool, &events).await.unwrap(), 240);
    // Tickets are taken in id order within a batch after the claim and before its outcomes are recorded:
    // per object they must follow arrival order.
    let ticket = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let (pool, ticket) = (pool.clone(), ticket.clone());
            tokio::spawn(async move {
                let mut handled = Vec::new();
                loop {
                    let now = tao::store::now_ms();
                    let batch = event::claim_batch(&pool, now, 60_000, 5).await.unwrap();
                    if batch.is_empty() {
                        if event::unprocessed(&pool).await.unwrap() == 0 {
                            return handled;
                        }
                        tokio::task::yield_now().await;
                        continue;
                    }
                    assert!(batch.len() <= 5, "the limit holds");
                    assert!(batch.windows(2).all(|w| w[0].id < w[1].id), "returned in id order");
                    let keys: HashSet<&str> = batch.iter().map(|r| r.object_key.as_str()).collect();
                    assert_eq!(keys.len(), batch.len(), "at most one event per object in a batch");
                    let mut outcomes = Outcomes { lease_end: now + 60_000, ..Outcomes::default() };
                    for row in &batch {
                        let t = ticket.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        handled.push((row.object_key.clone(), row.id, t));
                        outcomes.processed.push(EventId(row.id));
                    }
                    event::record(&pool, &outcomes, now).await.unwrap();
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut per_object: BTreeMap<String, Vec<(usize, i64)>> = BTreeMap::new();
    for c in claimers {
        for (key, id, t) in c.await.unwrap() {
            assert!(seen.insert(id), "event {id} claimed twice");
            per_object.entry(key).or_default().push((t, id));
        }
    }
    assert_eq!(seen.len(), 240);
    assert_eq!(per_object.len(), 12);
    for (key, mut handled) in per_object {
        handled.sort();
        assert!(handled.windows(2).all(|w| w[0].1 < w[1].1), "{key} handled out of order: {handled:?}");
    }
    let rows = event::page(&pool, &Default::default(), 0, 1_000).await.unwrap();
    assert!(rows.iter().all(|r| r.attempts == 1 && r.state == "processed" && r.processed_at.is_some()));
}
both_backends!(batch_claims_are_exclusive_one_per_object_and_ordered, concurrent_batch_claims);

async fn batch_outcomes(db: TestDb) {
    let pool = db.pool().await;
    // Objects: 0 0 1 2 1 3 (ids 1..6).
    let events: Vec<NewEvent> = [0, 0, 1, 2, 1, 3].iter().enumerate().map(|(n, o)| new_event(n, *o, 1_000)).collect();
    event::insert_many(&pool, &events).await.unwrap();
    let ids = |rows: &[tao::store::event::EventRow]| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    let first = event::claim_batch(&pool, 10_000, 60_000, 3).await.unwrap();
    assert_eq!(ids(&first), [1, 3, 4], "the oldest event of each object, up to the limit");
    let second = event::claim_batch(&pool, 10_000, 60_000, 10).await.unwrap();
    assert_eq!(ids(&second), [6], "the others wait behind their object's running event");
    // 1 processed, 3 failed (retry at 20 000), 4 released untried; 6 stays running.
    let outcomes = Outcomes {
        processed: vec![EventId(1)],
        failed: vec![(EventId(3), "GitLab is down".into(), 20_000)],
        release: vec![EventId(4)],
        lease_end: 70_000,
    };
    event::record(&pool, &outcomes, 11_000).await.unwrap();
    let row = |id| {
        let pool = pool.clone();
        async move { event::get(&pool, EventId(id)).await.unwrap().unwrap() }
    };
    assert_eq!((row(1).await.state, row(1).await.processed_at), ("processed".into(), Some(11_000)));
    let failed = row(3).await;
    assert_eq!((failed.state.as_str(), failed.next_attempt_at), ("failed", 20_000));
    assert_eq!(failed.last_error.as_deref(), Some("GitLab is down"));
    let released = row(4).await;
    assert_eq!((released.state.as_str(), released.attempts), ("pending", 0), "the untried claim is not counted");
    let third = event::claim_batch(&pool, 12_000, 60_000, 10).await.unwrap();
    assert_eq!(ids(&third), [2, 4], "object 1 waits for its failed event; the released one is claimable");
    // The failed event comes back when due, still ahead of its object's next event.
    let retry = event::claim_batch(&pool, 20_000, 60_000, 10).await.unwrap();
    assert_eq!(ids(&retry), [3]);
    assert_eq!(retry[0].attempts, 2);
    // A release only undoes its own claim: once the lease ran out and another claimer took the event,
    // the first claimer's release (with its old lease end) leaves it alone.
    let taken_over = event::claim_batch(&pool, 200_000, 60_000, 10).await.unwrap();
    assert_eq!(ids(&taken_over), [2, 3, 4, 6], "expired leases are claimable again");
    let stale = Outcomes { release: vec![EventId(6)], lease_end: 70_000, ..Outcomes::default() };
    event::record(&pool, &stale, 200_001).await.unwrap();
    assert_eq!((row(6).await.state.as_str(), row(6).await.attempts), ("running", 2));
}
both_backends!(batch_outcomes_are_recorded_together_and_releases_are_not_attempts, batch_outcomes);

async fn record_then_claim(db: TestDb) {
    let pool = db.pool().await;
    // Objects: 0 0 1 (ids 1..3).
    let events: Vec<NewEvent> = [0, 0, 1].iter().enumerate().map(|(n, o)| new_event(n, *o, 1_000)).collect();
    event::insert_many(&pool, &events).await.unwrap();
    let first = event::claim_batch(&pool, 10_000, 60_000, 10).await.unwrap();
    assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 3]);
    // One transaction: the claim sees event 1 processed, so object 0's next event comes at once.
    let done = Outcomes { processed: vec![EventId(1), EventId(3)], lease_end: 70_000, ..Outcomes::default() };
    let next = event::record_and_claim(&pool, &done, 11_000, 60_000, 10).await.unwrap();
    assert_eq!(next.iter().map(|r| (r.id, r.state.as_str())).collect::<Vec<_>>(), [(2, "running")]);
    let rows = event::page(&pool, &Default::default(), 0, 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.state.as_str()).collect::<Vec<_>>(), ["processed", "running", "processed"]);
    assert!(event::record_and_claim(&pool, &Outcomes::default(), 12_000, 60_000, 10).await.unwrap().is_empty());
}
both_backends!(recording_outcomes_with_the_next_claim_frees_the_object_at_once, record_then_claim);

async fn redeliveries_and_abandoned_inserts(db: TestDb) {
    let pool = db.pool().await;
    let first = new_event(0, 0, 1_000);
    assert!(matches!(event::insert(&pool, &first).await.unwrap(), Inserted::Stored(_)));
    // Redeliveries, over every pooled connection (one of them inserted the first delivery).
    for _ in 0..8 {
        assert_eq!(event::insert(&pool, &first).await.unwrap(), Inserted::Duplicate);
    }
    // Inserts abandoned at any point (the sender hung up and the request was dropped) leave no transaction
    // open: later inserts neither wait for a lock nor vanish into an uncommitted transaction.
    for n in 1..40 {
        let e = new_event(n, n % 3, 1_000);
        let _ = tokio::time::timeout(Duration::from_micros(n as u64 * 25), event::insert(&pool, &e)).await;
    }
    let later: Vec<NewEvent> = (100..108).map(|n| new_event(n, 0, 2_000)).collect();
    for e in &later {
        let stored = tokio::time::timeout(Duration::from_secs(5), event::insert(&pool, e)).await;
        assert!(matches!(stored.expect("the store is not left locked").unwrap(), Inserted::Stored(_)));
    }
    // Committed (a fresh connection sees them), and no event row went in without its payload.
    let fresh = db.connect().await;
    let rows = event::page(&fresh, &Default::default(), 0, 100).await.unwrap();
    for e in &later {
        let row = rows.iter().find(|r| r.delivery_id == e.delivery_id.as_str()).expect("committed");
        assert_eq!(row.payload.as_deref(), Some(e.payload.as_str()));
    }
    assert!(rows.iter().all(|r| r.payload.is_some()), "an event stored without its payload");
    fresh.close().await;
    pool.close().await;
}
both_backends!(redeliveries_and_abandoned_inserts_keep_the_store_consistent, redeliveries_and_abandoned_inserts);

/// SQLite checkpoints in the background (the commit path never does): 40 MB of payloads written in
/// 20 transactions, 300 ms apart, leave a WAL far smaller than what was written, because each
/// background checkpoint lets the next writer start the WAL over. Without the checkpointer (automatic
/// checkpoints are off) the WAL would hold all 40 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_is_checkpointed_in_the_background() {
    crate::support::limit(sqlite_wal_is_checkpointed_in_the_background_body()).await
}

async fn sqlite_wal_is_checkpointed_in_the_background_body() {
    let db = TestDb::sqlite();
    let pool = db.pool().await;
    let wal = std::path::PathBuf::from(format!("{}-wal", db.url().trim_start_matches("sqlite://")));
    let pad = "x".repeat(10_000);
    for round in 0..20 {
        let events: Vec<NewEvent> = (0..200)
            .map(|i| {
                let n = round * 200 + i;
                NewEvent { payload: format!("{{\"n\":{n},\"pad\":\"{pad}\"}}"), ..new_event(n, n % 5, n as i64) }
            })
            .collect();
        event::insert_many(&pool, &events).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(size < 16 * 1024 * 1024, "the WAL grew to {size} bytes: nothing checkpoints it");
    assert_eq!(event::count(&pool).await.unwrap(), 4000);
}

/// A failed group commit stores nothing and fails every delivery in it: with the payload table gone, the
/// batch's second insert fails, its transaction is rolled back (no event row without its payload) and
/// each waiting delivery gets the error (the intake answers 5xx, so GitLab retries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sqlite_batch_stores_nothing() {
    crate::support::limit(a_failed_sqlite_batch_stores_nothing_body()).await
}

async fn a_failed_sqlite_batch_stores_nothing_body() {
    let db = TestDb::sqlite();
    let pool = db.pool().await;
    let writer = tao::store::intake::EventWriter::new(pool.clone());
    assert_eq!(writer.insert(new_event(0, 0, 1)).await.unwrap(), Inserted::Stored(EventId(1)));
    tao::with_pool!(&pool, p => sqlx::query("DROP TABLE gitlab_event_payload").execute(p).await.map(|_| ())).unwrap();
    let sends: Vec<_> = (1..9)
        .map(|n| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.insert(new_event(n, n, n as i64)).await })
        })
        .collect();
    for send in sends {
        let e = send.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("gitlab_event_payload"), "{e}");
    }
    assert_eq!(event::count(&pool).await.unwrap(), 1, "nothing of the failed batches was stored");
}
