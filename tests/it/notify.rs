//! Notifications: deploy, release and freeze events reach a JSON webhook receiver, a Discord webhook
//! and a Discord channel (through a double that checks `Authorization: Bot …`) with the right content; a
//! failing receiver is retried with backoff and never slows a deploy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tao::config::Secret;
use tao::deploy::queue::{BoxFuture, Executor, Outcome, TaskControl};
use tao::store::task::TaskRow;

use crate::support::{monitor_release, spawn_app_exec, TestApp, TestDb};
use crate::webhook::wait_for;

const BOT_TOKEN: &str = "test-bot-token";

/// Succeeds every task at once.
struct Quick;

impl Executor for Quick {
    fn execute(&self, _task: TaskRow, _control: TaskControl) -> BoxFuture<Outcome> {
        Box::pin(async { Outcome::Succeeded })
    }
}

/// What a receiver got: (path, authorization header, body).
type Got = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

#[derive(Clone)]
struct Receiver {
    got: Got,
    /// Requests to answer 500 before accepting.
    fail_first: Arc<Mutex<usize>>,
    /// Requests wait until this is true (a receiver that hangs).
    gate: tokio::sync::watch::Receiver<bool>,
}

async fn receive(
    State(r): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let _ = r.gate.clone().wait_for(|open| *open).await;
    let mut fail = r.fail_first.lock().unwrap();
    if path.starts_with("channels/") && auth.as_deref() != Some(&format!("Bot {BOT_TOKEN}")) {
        return StatusCode::UNAUTHORIZED;
    }
    r.got.lock().unwrap().push((path, auth, body));
    if *fail > 0 {
        *fail -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

/// A receiver on port 0 (plays the JSON webhook target, the Discord webhook and Discord's REST API).
async fn receiver(fail_first: usize) -> (String, Receiver) {
    let (url, r, gate) = gated_receiver(fail_first).await;
    // Open for good: a closed channel still reports its last value, so waiters pass at once.
    let _ = gate.send(true);
    (url, r)
}

/// A receiver whose requests hang until the returned gate is set to true.
async fn gated_receiver(fail_first: usize) -> (String, Receiver, tokio::sync::watch::Sender<bool>) {
    let (gate, rx) = tokio::sync::watch::channel(false);
    let r = Receiver { got: Arc::default(), fail_first: Arc::new(Mutex::new(fail_first)), gate: rx };
    let app = Router::new().route("/{*path}", post(receive)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r, gate)
}

impl Receiver {
    fn bodies(&self, prefix: &str) -> Vec<Value> {
        self.got.lock().unwrap().iter().filter(|(p, _, _)| p.starts_with(prefix)).map(|(_, _, b)| b.clone()).collect()
    }
}

/// Creates `monitor 1.0.0` and asks for its deploy to `env-1`.
async fn release_and_deploy(app: &TestApp) -> crate::support::Reply {
    assert_eq!(app.create_release(&app.deployer, monitor_release("1.0.0", &[])).await.status, 201);
    let body = json!({ "product": "monitor", "version": "1.0.0", "env": "env-1" });
    app.send(reqwest::Method::POST, "/api/v1/deploys", Some(&app.deployer), Some(body)).await
}

async fn app_with_rules(rules: &str, discord_api: &str) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notify.yaml");
    std::fs::write(&file, rules).unwrap();
    let api = discord_api.to_string();
    let app = spawn_app_exec(
        TestDb::sqlite(),
        move |s| {
            s.notify_config = Some(file);
            s.discord_api_url = api;
            s.discord_bot_token = Some(Secret::new(BOT_TOKEN));
            s.public_url = Some("https://tao.example".into());
            s.notify_retry_base = Duration::from_millis(100);
        },
        Box::new(|_, _| Arc::new(Quick)),
    )
    .await;
    (app, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_releases_and_freezes_reach_their_receivers() {
    crate::support::limit(deploys_releases_and_freezes_reach_their_receivers_body()).await
}

async fn deploys_releases_and_freezes_reach_their_receivers_body() {
    let (url, r) = receiver(0).await;
    let rules = format!(
        "rules:\n  - events: [\"deploy.*\"]\n    envs: [env-1]\n    webhook: {url}/hooks/tao\n  - events: [release.created]\n    discord_webhook: {url}/api/webhooks/1/abc\n  - events: [env.frozen]\n    discord_channel: \"4242\"\n  - events: [\"deploy.*\"]\n    envs: [prod]\n    webhook: {url}/hooks/prod-only\ntemplates:\n  release.created: \"new version {{{{product}}}} {{{{version}}}}\"\n"
    );
    let (app, _dir) = app_with_rules(&rules, &url).await;
    let r1 = release_and_deploy(&app).await;
    assert_eq!(r1.status, 202, "{:?}", r1.body);
    let task = r1.body["task_id"].as_i64().unwrap();
    let frozen = app
        .send(
            reqwest::Method::POST,
            "/api/v1/environments/env-1/freeze",
            Some(&app.deployer),
            Some(json!({ "reason": "release night" })),
        )
        .await;
    assert_eq!(frozen.status, 200, "{:?}", frozen.body);
    wait_for("deploy notifications", || async { r.bodies("hooks/tao").len() >= 3 }).await;
    wait_for("release and freeze notifications", || async {
        !r.bodies("api/webhooks").is_empty() && !r.bodies("channels/").is_empty()
    })
    .await;

    let deploys = r.bodies("hooks/tao");
    let events: Vec<&str> = deploys.iter().map(|b| b["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["deploy.queued", "deploy.started", "deploy.succeeded"]);
    let done = &deploys[2];
    assert_eq!(done["fields"]["task_id"], task);
    assert_eq!((done["fields"]["product"].as_str(), done["fields"]["env"].as_str()), (Some("monitor"), Some("env-1")));
    assert_eq!(done["fields"]["actor"], "token:deployer");
    let text = done["text"].as_str().unwrap();
    assert!(text.starts_with("✅ monitor 1.0.0 → env-1 succeeded in "), "{text}");
    assert!(text.contains(&format!("https://tao.example/ui/tasks/{task}")), "{text}");
    assert!(r.bodies("hooks/prod-only").is_empty(), "filtered by environment");

    assert_eq!(r.bodies("api/webhooks/1/abc")[0]["content"], "new version monitor 1.0.0", "template override");
    let got = r.got.lock().unwrap().clone();
    let (path, auth, body) = got.iter().find(|(p, _, _)| p.starts_with("channels/")).unwrap();
    assert_eq!(path, "channels/4242/messages");
    assert_eq!(auth.as_deref(), Some("Bot test-bot-token"));
    assert_eq!(body["content"], "🧊 env-1 frozen by token:deployer: release night");
    assert_eq!(body["allowed_mentions"], json!({ "parse": [] }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_is_retried_and_never_slows_a_deploy() {
    crate::support::limit(a_failing_receiver_is_retried_and_never_slows_a_deploy_body()).await
}

async fn a_failing_receiver_is_retried_and_never_slows_a_deploy_body() {
    // The receiver hangs until the gate opens, then fails three times before accepting.
    let (url, r, gate) = gated_receiver(3).await;
    let rules = format!("rules:\n  - events: [deploy.succeeded, deploy.queued]\n    webhook: {url}/flaky\n");
    let (app, _dir) = app_with_rules(&rules, &url).await;
    let r1 = release_and_deploy(&app).await;
    let task = r1.body["task_id"].as_i64().unwrap();
    wait_for("the task ends while the receiver hangs", || async {
        app.get(&format!("/api/v1/tasks/{task}"), &app.reader).await.body["status"] == "succeeded"
    })
    .await;
    let pending = tao::store::notify::list(&app.pool, 10).await.unwrap();
    assert!(pending.iter().all(|n| n.state == "pending"), "nothing delivered yet: {pending:?}");
    gate.send(true).unwrap();
    wait_for("both delivered after retries", || async {
        let rows = tao::store::notify::list(&app.pool, 10).await.unwrap();
        rows.len() == 2 && rows.iter().all(|n| n.state == "sent")
    })
    .await;
    let rows = tao::store::notify::list(&app.pool, 10).await.unwrap();
    assert_eq!(rows.iter().map(|n| n.attempts).sum::<i64>(), 3, "three failed attempts in all: {rows:?}");
    assert_eq!(r.bodies("flaky").len(), 5, "three failures, then the two deliveries");
    let delivered: Vec<&str> = rows.iter().map(|n| n.event.as_str()).collect();
    assert_eq!(delivered, ["deploy.queued", "deploy.succeeded"]);
}

#[test]
fn rules_files_are_validated_with_paths() {
    use tao::notify::NotifyConfig;
    let bad = "rules:\n  - events: [deploy.finished]\n    webhook: ftp://x\n  - envs: prod\n  - webhook: https://a\n    discord_channel: \"1\"\ntemplates:\n  deploy.failed: \"{{#if}}\"\nextra: 1\n";
    let errors = NotifyConfig::from_yaml(bad).unwrap_err();
    for expected in [
        "extra: expected one of rules, templates",
        "rules[0].events: expected one of deploy.queued",
        "rules[0].webhook: expected a channel id (digits) or an http(s) URL, found \"ftp://x\"",
        "rules[1].envs: expected a list",
        "rules[1]: expected exactly one of discord_channel, discord_webhook, webhook, found 0",
        "rules[2]: expected exactly one of discord_channel, discord_webhook, webhook, found 2",
        "templates.deploy.failed: expected a handlebars template",
    ] {
        assert!(errors.iter().any(|e| e.starts_with(expected)), "missing {expected:?} in {errors:#?}");
    }
    let ok = NotifyConfig::from_yaml("rules:\n  - webhook: https://a.example/x\n").unwrap();
    assert_eq!(ok.rules.len(), 1);
}
