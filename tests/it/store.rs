//! Store tests: every one runs on SQLite and on PostgreSQL (fresh database each, dropped after).

use tao::store::release::{CreateOutcome, NewProductVersion, ReleaseComponent};
use tao::store::token::{Scope, TokenError};
use tao::store::{self, Pool};

use crate::both_backends;
use crate::support::TestDb;

fn new_release(version: &str, api: &str, by: &str) -> NewProductVersion {
    let part = |name: &str, v: &str| ReleaseComponent {
        component: name.into(),
        version: v.into(),
        git_tag: format!("v{v}"),
        image: Some(format!("registry.example.com/monitor/{name}")),
        image_tag: v.into(),
        image_digest: None,
    };
    NewProductVersion {
        product: "monitor".into(),
        version: version.into(),
        catalog_revision: None,
        created_by: by.into(),
        components: vec![part("api", api), part("ops", "1.0.0")],
    }
}

async fn releases(db: TestDb) {
    let pool = db.pool().await;
    let created = store::release::create(&pool, &new_release("1.0.0", "1.0.0", "alice")).await.unwrap();
    assert!(matches!(created, CreateOutcome::Created(ref pv) if pv.components.len() == 2), "{created:?}");
    let same = store::release::create(&pool, &new_release("1.0.0", "1.0.0", "bob")).await.unwrap();
    assert!(matches!(same, CreateOutcome::Unchanged(ref pv) if pv.created_by == "alice"), "{same:?}");
    let changed = store::release::create(&pool, &new_release("1.0.0", "1.0.1", "bob")).await.unwrap();
    assert!(matches!(changed, CreateOutcome::Conflict(ref pv) if pv.version_map()["api"] == "1.0.0"));
    store::release::create(&pool, &new_release("1.1.0", "1.1.0", "alice")).await.unwrap();

    let list = store::release::list(&pool, "monitor").await.unwrap();
    assert_eq!(list.iter().map(|p| p.version.as_str()).collect::<Vec<_>>(), ["1.1.0", "1.0.0"]);
    assert_eq!(list[0].version_map()["api"], "1.1.0");
    assert!(store::release::get(&pool, "monitor", "2.0.0").await.unwrap().is_none());
    assert!(store::release::list(&pool, "other").await.unwrap().is_empty());
}
both_backends!(release_store, releases);

async fn concurrent_creation(db: TestDb) {
    let pool = db.pool().await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let pool = pool.clone();
            let api = if i % 2 == 0 { "1.0.0" } else { "9.9.9" };
            tokio::spawn(async move { store::release::create(&pool, &new_release("3.0.0", api, "racer")).await })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        if let CreateOutcome::Created(_) = t.await.unwrap().unwrap() {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one creation wins");
    assert_eq!(store::release::list(&pool, "monitor").await.unwrap().len(), 1);
}
both_backends!(release_creation_races, concurrent_creation);

async fn tokens(db: TestDb) {
    let pool = db.pool().await;
    let (t, secret) = store::token::create(&pool, "ci", Scope::Deploy).await.unwrap();
    assert!(secret.expose().starts_with("tao_") && secret.expose().len() > 30);
    assert_eq!(t.scope, Scope::Deploy);
    let found = store::token::authenticate(&pool, secret.expose()).await.unwrap().unwrap();
    assert_eq!(found.name, "ci");
    assert!(store::token::authenticate(&pool, "tao_wrong").await.unwrap().is_none());
    assert!(matches!(store::token::create(&pool, "ci", Scope::Read).await, Err(TokenError::NameTaken(_))));
    assert!(matches!(store::token::create(&pool, "bad name", Scope::Read).await, Err(TokenError::BadName(_))));

    // Only the hash is stored.
    let raw: Vec<String> =
        tao::with_pool!(&pool, p => sqlx::query_scalar("SELECT token_hash FROM api_token").fetch_all(p).await).unwrap();
    assert!(raw.iter().all(|h| h.len() == 64 && !h.contains(secret.expose())));

    assert!(store::token::revoke(&pool, "ci").await.unwrap());
    assert!(!store::token::revoke(&pool, "ci").await.unwrap(), "already revoked");
    assert!(store::token::authenticate(&pool, secret.expose()).await.unwrap().is_none());
    let listed = store::token::list(&pool).await.unwrap();
    assert!(listed[0].revoked_at.is_some() && listed[0].last_used_at.is_some());
}
both_backends!(token_store, tokens);

async fn catalog_revisions(db: TestDb) {
    let pool = db.pool().await;
    assert!(store::catalog::latest(&pool).await.unwrap().is_none());
    let (first, changed) = store::catalog::apply(&pool, "a: 1\n", "test").await.unwrap();
    assert!(changed);
    let (again, changed) = store::catalog::apply(&pool, "a: 1\n", "test").await.unwrap();
    assert!(!changed);
    assert_eq!(first, again);
    let (second, changed) = store::catalog::apply(&pool, "a: 2\n", "test").await.unwrap();
    assert!(changed && second.id > first.id);
    assert_eq!(store::catalog::latest(&pool).await.unwrap().unwrap().yaml, "a: 2\n");
    let (back, changed) = store::catalog::apply(&pool, "a: 1\n", "test").await.unwrap();
    assert!(changed && back.id > second.id, "returning to old content is a new revision");
}
both_backends!(catalog_revision_store, catalog_revisions);

async fn audit_log(db: TestDb) {
    let pool = db.pool().await;
    store::audit::record(&pool, "token:ci", "release.create", "monitor 1.0.0", "ok", "").await.unwrap();
    store::audit::record(&pool, "token:ci", "release.create", "monitor 1.0.0", "unchanged", "").await.unwrap();
    let rows = store::audit::recent(&pool, 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(), ["unchanged", "ok"]);
}
both_backends!(audit_store, audit_log);

async fn migrate_is_idempotent(db: TestDb) {
    let pool: Pool = db.connect().await;
    assert_eq!(store::migrate::current_version(&pool).await.unwrap(), 0);
    let applied = store::migrate::run(&pool).await.unwrap();
    assert_eq!(applied.len(), store::migrate::MIGRATIONS.len());
    assert!(store::migrate::run(&pool).await.unwrap().is_empty(), "second run applies nothing");
}
both_backends!(migrations_run_once, migrate_is_idempotent);

async fn task_kind_and_status(db: TestDb) {
    use tao::deploy::task::{TaskKind, TaskStatus};
    let pool = db.pool().await;
    let new = crate::support::bare_task;
    let (a, _) = store::task::enqueue(&pool, &new(TaskKind::Rollback, "env-1")).await.unwrap();
    let (b, _) = store::task::enqueue(&pool, &new(TaskKind::Component, "env-2")).await.unwrap();
    assert_eq!((a.kind, a.status), (TaskKind::Rollback, TaskStatus::Queued));
    let claimed = store::task::claim(&pool, "me", 60_000).await.unwrap().unwrap();
    assert_eq!((claimed.id, claimed.status), (a.id, TaskStatus::Running));
    store::task::finish(&pool, a.id, TaskStatus::Interrupted, Some("stopped")).await.unwrap();
    let a = store::task::get(&pool, a.id).await.unwrap().unwrap();
    assert_eq!((a.kind, a.status, a.is_finished()), (TaskKind::Rollback, TaskStatus::Interrupted, true));
    let stored: String = tao::with_pool!(&pool, p => {
        sqlx::query_scalar("SELECT status FROM deploy_task WHERE id = $1").bind(a.id).fetch_one(p).await
    })
    .unwrap();
    assert_eq!(stored, "interrupted", "stored as its name");

    // A name the domain does not know fails to read, naming the column's value and what was expected.
    tao::with_pool!(&pool, p => {
        sqlx::query("UPDATE deploy_task SET status = 'done' WHERE id = $1").bind(b.id).execute(p).await.map(|_| ())
    })
    .unwrap();
    let err = store::task::get(&pool, b.id).await.unwrap_err().to_string();
    assert!(err.contains("unknown task status \"done\"") && err.contains("expected one of queued"), "{err}");
}
both_backends!(task_kinds_and_statuses_are_typed_at_the_store, task_kind_and_status);
