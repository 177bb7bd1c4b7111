//! The GitLab webhook intake: every fixture stored with its kind/project/ref, rejections store nothing,
//! redeliveries are stored once, stored events are handled (after a restart too), failures are retried
//! and block only their own object. All on SQLite and PostgreSQL.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tao::app::App;
use tao::config::{Secret, Settings};
use tao::gitlab::handlers::{EventHandler, HandlerContext, HandlerFuture, StoredEvent};
use tao::gitlab::worker::WorkerConfig;
use tao::store::event::{self, EventFilter, EventRow};
use tao::store::Pool;

use crate::both_backends;
use crate::support::gitlab::{send_webhook, webhook_fixture, WEBHOOK_FIXTURES};
use crate::support::{spawn_app_with, TestApp, TestDb};

/// The secret the tests configure.
pub const SECRET: &str = "hook-secret";

fn with_secret(s: &mut Settings) {
    s.gitlab_webhook_secrets = vec![Secret::new("previous-secret"), Secret::new(SECRET)];
}

/// Tao's webhook URL.
pub fn hook_url(base: &str) -> String {
    format!("{base}/api/v1/gitlab/webhook")
}

/// Polls `check` until it holds, failing after 30 s (tests wait on state, never on fixed sleeps).
pub async fn wait_for<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    // The deadline bounds each check too: a check that never answers (a query stuck behind a lock, a
    // request nobody answers) must fail here, not hang the run.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(true) => return,
            Ok(false) => assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}: the check itself did not answer"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn all_events(pool: &Pool) -> Vec<EventRow> {
    event::page(pool, &EventFilter::default(), 0, 10_000).await.unwrap()
}

async fn unprocessed_is(pool: &Pool, n: i64) -> bool {
    event::unprocessed(pool).await.unwrap() == n
}

async fn post(app: &TestApp, event: Option<&str>, token: &str, body: &[u8], key: Option<&str>) -> u16 {
    let mut rb = app.http.post(hook_url(&app.base)).body(body.to_vec()).header("Content-Type", "application/json");
    if let Some(e) = event {
        rb = rb.header("X-Gitlab-Event", e);
    }
    if !token.is_empty() {
        rb = rb.header("X-Gitlab-Token", token);
    }
    if let Some(k) = key {
        rb = rb.header("Idempotency-Key", k);
    }
    rb.send().await.unwrap().status().as_u16()
}

/// (fixture, kind, project id, project path, ref) as Tao must index them.
type Indexed = (&'static str, &'static str, Option<i64>, Option<&'static str>, Option<&'static str>);
const EXPECTED: &[Indexed] = &[
    ("push.json", "push", Some(15), Some("mike/diaspora"), Some("refs/heads/master")),
    ("tag_push.json", "tag_push", Some(1), Some("jsmith/example"), Some("refs/tags/v1.0.0")),
    ("merge_request.json", "merge_request", Some(1), Some("gitlabhq/gitlab-test"), Some("ms-viewport")),
    ("merge_request_update.json", "merge_request", Some(2), Some("test/woodpecker"), Some("next-feature")),
    ("note_merge_request.json", "note", Some(5), Some("gitlab-org/gitlab-test"), Some("master")),
    ("note_commit.json", "note", Some(5), Some("gitlabhq/gitlab-test"), None),
    ("note_issue.json", "note", Some(5), Some("gitlab-org/gitlab-test"), None),
    ("pipeline.json", "pipeline", Some(1), Some("gitlab-org/gitlab-test"), Some("master")),
    ("job.json", "build", Some(31537070), Some("jsmithy2/release-tools-fake"), Some("main")),
    ("build.json", "build", Some(380), Some("gitlab-org/gitlab-test"), Some("gitlab-script-trigger")),
    ("deployment.json", "deployment", Some(30), Some("root/test-deployment-webhooks"), Some("1.0.0")),
    ("release.json", "release", Some(327622), Some("exm-namespace/example-project"), Some("1.0.0")),
    ("issue.json", "issue", Some(1), Some("gitlabhq/gitlab-test"), None),
    ("wiki_page.json", "wiki_page", Some(1), Some("root/awesome-project"), None),
    ("feature_flag.json", "feature_flag", Some(1), Some("gitlabhq/gitlab-test"), None),
    ("member.json", "user_add_to_group", None, None, None),
    ("subgroup.json", "subgroup_create", None, None, None),
    ("resource_access_token_project.json", "access_token", Some(7), Some("flightjs/Flight"), None),
    ("system_hook_push.json", "push", Some(15), Some("mike/diaspora"), Some("refs/heads/master")),
    ("system_hook_merge_request.json", "merge_request", Some(14), Some("jsmith/example"), Some("ms-viewport")),
];

async fn every_fixture(db: TestDb) {
    let app = spawn_app_with(db, with_secret).await;
    assert_eq!(EXPECTED.len(), WEBHOOK_FIXTURES.len());
    for (i, (file, header)) in WEBHOOK_FIXTURES.iter().enumerate() {
        let status = post(&app, Some(header), SECRET, &webhook_fixture(file), Some(&format!("key-{i}"))).await;
        assert_eq!(status, 200, "{file}");
    }
    let rows = all_events(&app.pool).await;
    assert_eq!(rows.len(), EXPECTED.len());
    for (row, (file, kind, pid, path, git_ref)) in rows.iter().zip(EXPECTED) {
        let got = (row.kind.as_str(), row.project_id, row.project_path.as_deref(), row.git_ref.as_deref());
        assert_eq!(got, (*kind, *pid, *path, *git_ref), "{file}");
        let header = WEBHOOK_FIXTURES.iter().find(|f| f.0 == *file).unwrap().1;
        assert_eq!(row.event_header, header);
        let stored: serde_json::Value = serde_json::from_str(row.payload.as_deref().unwrap()).unwrap();
        let sent: serde_json::Value = serde_json::from_slice(&webhook_fixture(file)).unwrap();
        assert_eq!(stored, sent, "{file}: raw payload kept");
    }
    // Known and unknown kinds alike are handled by the workers after the ack.
    wait_for("every event processed", || unprocessed_is(&app.pool, 0)).await;
    assert!(all_events(&app.pool).await.iter().all(|r| r.state == "processed" && r.attempts == 1));
    app.stop().await;
}
both_backends!(every_fixture_is_stored_with_kind_project_and_ref, every_fixture);

async fn rejections(db: TestDb) {
    let app = spawn_app_with(db, |s| {
        with_secret(s);
        s.webhook_max_body = 64 * 1024;
    })
    .await;
    let push = webhook_fixture("push.json");
    assert_eq!(post(&app, Some("Push Hook"), "wrong", &push, Some("a")).await, 401, "wrong token");
    assert_eq!(post(&app, Some("Push Hook"), "", &push, Some("b")).await, 401, "missing token");
    assert_eq!(post(&app, Some("Push Hook"), &SECRET[..4], &push, Some("c")).await, 401, "prefix of the token");
    assert_eq!(post(&app, None, SECRET, &push, Some("d")).await, 400, "missing X-Gitlab-Event");
    assert_eq!(post(&app, Some("Push Hook"), SECRET, b"{\"object_kind\": ", Some("e")).await, 400, "malformed");
    assert_eq!(post(&app, Some("Push Hook"), SECRET, b"[1, 2]", Some("f")).await, 400, "not an object");
    let big = format!("{{\"object_kind\":\"push\",\"pad\":\"{}\"}}", "x".repeat(64 * 1024));
    assert_eq!(post(&app, Some("Push Hook"), SECRET, big.as_bytes(), Some("g")).await, 413, "oversize");
    assert_eq!(event::count(&app.pool).await.unwrap(), 0, "nothing stored");
    // The reason is in the answer, the secret is not.
    let r = app
        .http
        .post(hook_url(&app.base))
        .header("X-Gitlab-Token", SECRET)
        .header("X-Gitlab-Event", "Push Hook")
        .body("nope")
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("expected a JSON object") && !text.contains(SECRET), "{text}");
    app.stop().await;
}
both_backends!(rejected_deliveries_store_nothing, rejections);

async fn big_bodies(db: TestDb) {
    // The API's limit is 1 MiB; the webhook has its own (25 MiB by default).
    let app = spawn_app_with(db, with_secret).await;
    let big = format!("{{\"object_kind\":\"push\",\"project_id\":1,\"pad\":\"{}\"}}", "x".repeat(3 << 20));
    assert_eq!(post(&app, Some("Push Hook"), SECRET, big.as_bytes(), Some("big")).await, 200);
    assert_eq!(event::count(&app.pool).await.unwrap(), 1);
    app.stop().await;
}
both_backends!(webhook_takes_bodies_above_the_api_limit, big_bodies);

async fn redeliveries(db: TestDb) {
    let app = spawn_app_with(db, with_secret).await;
    let body = webhook_fixture("merge_request.json");
    let url = hook_url(&app.base);
    // GitLab keeps Idempotency-Key across resends; X-Gitlab-Event-UUID differs per attempt.
    for _ in 0..2 {
        let r = send_webhook(&url, SECRET, "Merge Request Hook", &body, Some("delivery-1"), "hook-1").await;
        assert_eq!(r.status().as_u16(), 200);
    }
    assert_eq!(event::count(&app.pool).await.unwrap(), 1, "stored once");
    let again = send_webhook(&url, SECRET, "Merge Request Hook", &body, Some("delivery-1"), "hook-1").await;
    assert_eq!(again.json::<serde_json::Value>().await.unwrap()["status"], "duplicate");
    // Without Idempotency-Key the event UUID is the delivery id.
    let mut rb = app.http.post(&url).header("X-Gitlab-Token", SECRET).header("X-Gitlab-Event", "Push Hook");
    rb = rb.header("X-Gitlab-Event-UUID", "uuid-7").body(webhook_fixture("push.json"));
    assert_eq!(rb.try_clone().unwrap().send().await.unwrap().status(), 200);
    assert_eq!(rb.send().await.unwrap().status(), 200);
    let rows = all_events(&app.pool).await;
    assert_eq!(rows.iter().map(|r| r.delivery_id.as_str()).collect::<Vec<_>>(), ["delivery-1", "uuid-7"]);
    assert_eq!(rows[0].webhook_id.as_deref(), Some("hook-1"));
    app.stop().await;
}
both_backends!(same_delivery_id_is_stored_once, redeliveries);

/// 40 deliveries, each sent three times at once (120 concurrent requests; on SQLite they are stored in
/// shared transactions): every request is acknowledged, each delivery id is stored once with its own
/// payload, and exactly one of its three answers says `stored`, with the row's id.
async fn concurrent(db: TestDb) {
    let app = spawn_app_with(db, with_secret).await;
    let url = hook_url(&app.base);
    let mut push: serde_json::Value = serde_json::from_slice(&webhook_fixture("push.json")).unwrap();
    let mut sends = Vec::new();
    for n in 0..40 {
        push["checkout_sha"] = format!("{n:040x}").into();
        let body = serde_json::to_vec(&push).unwrap();
        for _ in 0..3 {
            let (url, body, key) = (url.clone(), body.clone(), format!("concurrent-{n}"));
            sends.push(tokio::spawn(async move {
                let r = send_webhook(&url, SECRET, "Push Hook", &body, Some(&key), "hook-1").await;
                assert_eq!(r.status().as_u16(), 200);
                (key, r.json::<serde_json::Value>().await.unwrap())
            }));
        }
    }
    let mut stored = std::collections::HashMap::new();
    for send in sends {
        let (key, answer) = send.await.unwrap();
        if answer["status"] == "stored" {
            assert!(stored.insert(key, answer["id"].as_i64().unwrap()).is_none(), "one stored answer per delivery");
        } else {
            assert_eq!(answer["status"], "duplicate", "{answer}");
        }
    }
    assert_eq!(stored.len(), 40);
    let rows = all_events(&app.pool).await;
    assert_eq!(rows.len(), 40);
    for row in rows {
        let n: usize = row.delivery_id.as_str().trim_start_matches("concurrent-").parse().unwrap();
        assert_eq!(stored[row.delivery_id.as_str()], row.id, "the answer carried the row's id");
        let payload: serde_json::Value = serde_json::from_str(row.payload.as_deref().unwrap()).unwrap();
        assert_eq!(payload["checkout_sha"], format!("{n:040x}"), "each delivery has its own payload");
    }
    app.stop().await;
}
both_backends!(concurrent_deliveries_are_each_stored_once_with_their_payload, concurrent);

/// Runs an `App` until the returned sender fires.
async fn serve(app: App) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    (base, tx, server)
}

async fn restart(db: TestDb) {
    // First Tao: acks and stores, but has no workers (as if killed right after the ack).
    let mut settings = Settings::local(db.url());
    with_secret(&mut settings);
    settings.event_workers = 0;
    let first = App::build(settings.clone()).await.unwrap();
    let pool = first.services().pool().clone();
    let (base, stop, server) = serve(first).await;
    for (i, file) in ["push.json", "merge_request.json", "pipeline.json"].iter().enumerate() {
        let header = WEBHOOK_FIXTURES.iter().find(|f| f.0 == *file).unwrap().1;
        let r =
            send_webhook(&hook_url(&base), SECRET, header, &webhook_fixture(file), Some(&format!("r{i}")), "h").await;
        assert_eq!(r.status(), 200);
    }
    assert!(unprocessed_is(&pool, 3).await, "acknowledged, not handled");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    // Second Tao on the same database: handles what the first one acknowledged.
    settings.event_workers = 2;
    let second = App::build(settings).await.unwrap();
    let pool = second.services().pool().clone();
    let (_, stop, server) = serve(second).await;
    wait_for("events acknowledged before the restart handled", || unprocessed_is(&pool, 0)).await;
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
both_backends!(events_acked_before_a_stop_are_handled_after_restart, restart);

/// Fails the first two attempts of merge request events; records the order of successes.
struct Flaky {
    seen: Arc<Mutex<Vec<String>>>,
}

impl EventHandler for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn handle<'a>(&'a self, _: &'a HandlerContext, e: &'a StoredEvent) -> HandlerFuture<'a> {
        Box::pin(async move {
            if e.row.kind == "merge_request" && e.row.delivery_id == "mr-a" && e.row.attempts <= 2 {
                return Err(format!("GitLab is down (attempt {})", e.row.attempts));
            }
            self.seen.lock().unwrap().push(e.row.delivery_id.clone());
            Ok(())
        })
    }
}

async fn retries(db: TestDb) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut settings = Settings::local(db.url());
    with_secret(&mut settings);
    let config = WorkerConfig { retry_base: Duration::from_millis(300), ..WorkerConfig::default() };
    let app = App::build(settings).await.unwrap();
    let handlers = app.event_handlers().register(Flaky { seen: seen.clone() });
    let app = app.with_handlers(handlers).with_worker_config(config);
    let pool = app.services().pool().clone();
    let token = tao::store::token::create(&pool, "reader", tao::store::token::Scope::Read).await.unwrap().1;
    let (base, stop, server) = serve(app).await;
    let url = hook_url(&base);
    let mr = webhook_fixture("merge_request.json");
    send_webhook(&url, SECRET, "Merge Request Hook", &mr, Some("mr-a"), "h").await;
    send_webhook(&url, SECRET, "Merge Request Hook", &mr, Some("mr-b"), "h").await;
    send_webhook(&url, SECRET, "Push Hook", &webhook_fixture("push.json"), Some("push-c"), "h").await;

    // The failure is visible through the API while the push (another object) goes through.
    let failed = || async {
        let r = crate::support::http_client()
            .get(format!("{base}/api/v1/events?state=failed&fields=delivery_id,last_error,attempts"))
            .bearer_auth(token.expose())
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let line = loop {
        let text = failed().await;
        if text.contains("GitLab is down") {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "the failing event never showed as failed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(line.contains("\"delivery_id\":\"mr-a\""), "{line}");
    wait_for("the push to be handled", || async { seen.lock().unwrap().contains(&"push-c".to_string()) }).await;
    assert!(!seen.lock().unwrap().contains(&"mr-b".to_string()), "mr-b waits behind mr-a (same merge request)");

    wait_for("everything handled after retries", || unprocessed_is(&pool, 0)).await;
    let order = seen.lock().unwrap().clone();
    assert_eq!(order, ["push-c", "mr-a", "mr-b"]);
    let rows = all_events(&pool).await;
    assert_eq!(rows[0].attempts, 3, "failed twice, then succeeded");
    assert!(rows[0].last_error.is_none());
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
both_backends!(failed_events_retry_with_backoff_and_block_only_their_object, retries);
