//! The event queue in the store, on SQLite and PostgreSQL: concurrent claimers never take one event twice
//! and keep arrival order per object; retention prunes only processed payloads.

use std::collections::{BTreeMap, HashSet};

use tao::store::event::{self, DeliveryId, EventId, NewEvent};

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
    event::mark_processed(&pool, EventId(first.id), 10_000).await.unwrap();
    assert_eq!(event::prune_payloads(&pool, 2_500).await.unwrap(), 1);
    let rows = event::page(&pool, &Default::default(), 0, 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.payload.is_some()).collect::<Vec<_>>(), [false, true, true]);
    assert_eq!(rows[0].kind, "pipeline", "the index row stays");
    assert_eq!(event::prune_payloads(&pool, 2_500).await.unwrap(), 0);
}
both_backends!(retention_prunes_only_processed_payloads, retention);
