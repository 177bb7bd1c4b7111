//! The deploy queue through the API with a controllable executor: the SSH/Docker runner is covered by
//! the end-to-end suite; here the test decides when each task ends, so ordering, leases, idempotency,
//! cancellation, freezes, crash recovery and draining are checked exactly, without sleeps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tao::deploy::queue::{BoxFuture, Executor, Outcome, StopReason, TaskControl};
use tao::store::task::TaskRow;
use tao::store::{self};
use tokio::sync::{mpsc, oneshot};

use crate::support::{monitor_release, respawn, spawn_app_exec, TestApp, TestDb};

/// An executor whose tasks run until the test finishes them (or they are asked to stop); `faults`
/// uses it too.
#[derive(Clone, Default)]
pub(crate) struct Gate {
    started: Arc<Mutex<Option<mpsc::UnboundedSender<i64>>>>,
    finish: Arc<Mutex<HashMap<i64, oneshot::Sender<Outcome>>>>,
    pool: Arc<Mutex<Option<store::Pool>>>,
}

impl Gate {
    pub(crate) fn new() -> (Gate, mpsc::UnboundedReceiver<i64>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let gate = Gate::default();
        *gate.started.lock().unwrap() = Some(tx);
        (gate, rx)
    }

    pub(crate) fn factory(&self) -> tao::app::ExecutorFactory {
        let gate = self.clone();
        Box::new(move |services, _| {
            *gate.pool.lock().unwrap() = Some(services.pool().clone());
            Arc::new(gate)
        })
    }

    pub(crate) fn finish(&self, id: i64, outcome: Outcome) {
        let tx = self.finish.lock().unwrap().remove(&id).expect("task is running");
        tx.send(outcome).expect("executor waits");
    }
}

impl Executor for Gate {
    fn execute(&self, task: TaskRow, mut control: TaskControl) -> BoxFuture<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.finish.lock().unwrap().insert(task.id, tx);
        let pool = self.pool.lock().unwrap().clone().expect("pool");
        let started = self.started.lock().unwrap().clone().expect("channel");
        Box::pin(async move {
            store::task::log(&pool, task.id, "info", None, None, "gate: started").await.unwrap();
            started.send(task.id).unwrap();
            tokio::select! {
                outcome = rx => outcome.unwrap_or(Outcome::Failed("gate dropped".into())),
                reason = control.stopped() => match reason {
                    StopReason::Cancelled => Outcome::Cancelled("cancelled by request".into()),
                    StopReason::Interrupted => Outcome::Interrupted("interrupted".into()),
                },
            }
        })
    }
}

async fn with_gate(workers: usize) -> (TestApp, Gate, mpsc::UnboundedReceiver<i64>) {
    let (gate, started) = Gate::new();
    let app = spawn_app_exec(
        TestDb::sqlite(),
        |s| {
            s.workers = workers;
            s.drain_timeout = Duration::from_millis(200);
        },
        gate.factory(),
    )
    .await;
    let r = app.create_release(&app.deployer, monitor_release("1.0.0", &[])).await;
    assert_eq!(r.status, 201);
    (app, gate, started)
}

pub(crate) async fn deploy(app: &TestApp, token: &str, env: &str, key: Option<&str>) -> (u16, Value) {
    let mut rb = app
        .http
        .post(format!("{}/api/v1/deploys", app.base))
        .bearer_auth(token)
        .json(&json!({ "product": "monitor", "version": "1.0.0", "env": env }));
    if let Some(k) = key {
        rb = rb.header("Idempotency-Key", k);
    }
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn task(app: &TestApp, id: i64) -> Value {
    app.get(&format!("/api/v1/tasks/{id}"), &app.reader).await.body
}

/// Waits (on state, with a deadline) until task `id` has `status`.
pub(crate) async fn wait_status(app: &TestApp, id: i64, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let t = task(app, id).await;
        if t["status"] == status {
            return t;
        }
        assert!(tokio::time::Instant::now() < deadline, "task {id} never became {status}: {t}");
        // Polling the state with a deadline (the change feed lives inside the server).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn next_start(started: &mut mpsc::UnboundedReceiver<i64>) -> i64 {
    tokio::time::timeout(Duration::from_secs(20), started.recv()).await.expect("a task starts").expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_environment_at_a_time_other_environments_proceed() {
    crate::support::limit(one_environment_at_a_time_other_environments_proceed_body()).await
}

async fn one_environment_at_a_time_other_environments_proceed_body() {
    let (app, gate, mut started) = with_gate(2).await;
    let (s, a) = deploy(&app, &app.deployer, "env-1", None).await;
    assert_eq!(s, 202, "{a}");
    let a = a["task_id"].as_i64().unwrap();
    assert_eq!(next_start(&mut started).await, a);
    let b = deploy(&app, &app.deployer, "env-1", None).await.1["task_id"].as_i64().unwrap();
    let c = deploy(&app, &app.admin, "prod", None).await.1["task_id"].as_i64().unwrap();
    // C (another environment) starts while A still runs; B waits for A's environment.
    assert_eq!(next_start(&mut started).await, c);
    assert_eq!(task(&app, b).await["status"], "queued");
    assert_eq!(task(&app, a).await["status"], "running");
    gate.finish(a, Outcome::Succeeded);
    assert_eq!(next_start(&mut started).await, b, "B runs once A ends");
    wait_status(&app, a, "succeeded").await;
    gate.finish(b, Outcome::Failed("step x failed".into()));
    let b_row = wait_status(&app, b, "failed").await;
    assert_eq!(b_row["error"], "step x failed");
    gate.finish(c, Outcome::Succeeded);
    wait_status(&app, c, "succeeded").await;
    let leases: i64 =
        tao::with_pool!(&app.pool, p => sqlx::query_scalar("SELECT COUNT(*) FROM env_lease").fetch_one(p).await)
            .unwrap();
    assert_eq!(leases, 0, "every lease released");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_yields_one_task() {
    crate::support::limit(the_same_idempotency_key_yields_one_task_body()).await
}

async fn the_same_idempotency_key_yields_one_task_body() {
    let (app, gate, mut started) = with_gate(1).await;
    let (s1, first) = deploy(&app, &app.deployer, "env-1", Some("ci-job-4711")).await;
    let (s2, second) = deploy(&app, &app.deployer, "env-1", Some("ci-job-4711")).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(first["task_id"], second["task_id"]);
    assert_eq!((first["created"].clone(), second["created"].clone()), (json!(true), json!(false)));
    let id = next_start(&mut started).await;
    gate.finish(id, Outcome::Succeeded);
    wait_status(&app, id, "succeeded").await;
    assert_eq!(store::task::list(&app.pool, None, 10).await.unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_are_authorized_by_tier_and_validated() {
    crate::support::limit(deploys_are_authorized_by_tier_and_validated_body()).await
}

async fn deploys_are_authorized_by_tier_and_validated_body() {
    let (app, _gate, _started) = with_gate(1).await;
    assert_eq!(deploy(&app, &app.reader, "env-1", None).await.0, 403, "a read-only token cannot deploy");
    let (s, body) = deploy(&app, &app.deployer, "prod", None).await;
    assert_eq!(s, 403, "prod needs admin");
    assert!(body["error"]["message"].as_str().unwrap().contains("needs the admin scope"), "{body}");

    let post = |body: Value| {
        let rb = app.http.post(format!("{}/api/v1/deploys", app.base)).bearer_auth(&app.admin).json(&body);
        async move {
            let r = rb.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let cases = [
        (json!({"product": "monitor", "version": "9.9.9", "env": "env-1"}), "version"),
        (json!({"product": "monitor", "version": "1.0.0", "env": "env-9"}), "env"),
        (json!({"product": "monitor", "version": "1.0.0", "env": "env-1", "components": ["billing"]}), "components"),
        (json!({"env": "prod", "component": "api", "image_tag": "feature-x"}), "env"),
        (json!({"env": "env-1", "component": "api", "image_tag": "x;reboot"}), "image_tag"),
        (json!({"env": "env-1", "component": "api"}), "image_tag"),
        (json!({"product": "monitor", "version": "1.0.0", "env": "env-1", "force": "yes"}), "force"),
    ];
    for (body, field) in cases {
        let (s, r) = post(body.clone()).await;
        assert_eq!(s, 422, "{body}: {r}");
        assert_eq!(r["error"]["field"], field, "{body}: {r}");
    }
    assert!(store::task::list(&app.pool, None, 10).await.unwrap().is_empty(), "nothing queued");
    let audit = app.get("/api/v1/audit", &app.admin).await.body;
    assert!(audit.as_array().unwrap().iter().any(|a| a["outcome"] == "denied"), "denials are audited");
    assert_eq!(app.get("/api/v1/audit", &app.deployer).await.status, 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_can_be_previewed() {
    crate::support::limit(plans_can_be_previewed_body()).await
}

async fn plans_can_be_previewed_body() {
    let (app, _gate, _started) = with_gate(1).await;
    let r = app.get("/api/v1/deploys/plan?env=env-1&product=monitor&version=1.0.0", &app.reader).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["steps"], 8);
    assert_eq!(r.body["plan"]["waves"][0][0]["spec"]["component"], "ops");
    let r = app.get("/api/v1/deploys/plan?env=env-1&component=api&image_tag=feature-x-1", &app.reader).await;
    assert_eq!(r.body["steps"], 2);
    assert!(store::task::list(&app.pool, None, 10).await.unwrap().is_empty(), "a plan queues nothing");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_queued_and_running_tasks() {
    crate::support::limit(cancel_queued_and_running_tasks_body()).await
}

async fn cancel_queued_and_running_tasks_body() {
    let (app, _gate, mut started) = with_gate(1).await;
    let a = deploy(&app, &app.deployer, "env-1", None).await.1["task_id"].as_i64().unwrap();
    assert_eq!(next_start(&mut started).await, a);
    let b = deploy(&app, &app.deployer, "env-1", None).await.1["task_id"].as_i64().unwrap();
    let cancel = |id: i64| {
        let path = format!("/api/v1/tasks/{id}/cancel");
        let app = &app;
        async move { app.send(reqwest::Method::POST, &path, Some(&app.deployer), None).await }
    };
    let r = cancel(b).await;
    assert_eq!((r.status, r.body["result"].clone()), (200, json!("cancelled")));
    let r = cancel(a).await;
    assert_eq!((r.status, r.body["result"].clone()), (202, json!("cancelling")));
    let a_row = wait_status(&app, a, "cancelled").await;
    assert_eq!(a_row["error"], "cancelled by request");
    assert_eq!(task(&app, b).await["status"], "cancelled");
    assert_eq!(cancel(a).await.status, 409, "already ended");
    assert_eq!(cancel(999).await.status, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_environments_refuse_new_deploys() {
    crate::support::limit(frozen_environments_refuse_new_deploys_body()).await
}

async fn frozen_environments_refuse_new_deploys_body() {
    let (app, _gate, _started) = with_gate(1).await;
    let freeze = app
        .send(
            reqwest::Method::POST,
            "/api/v1/environments/env-1/freeze",
            Some(&app.deployer),
            Some(json!({"reason": "release night"})),
        )
        .await;
    assert_eq!(freeze.status, 200, "{:?}", freeze.body);
    let (s, body) = deploy(&app, &app.deployer, "env-1", None).await;
    assert_eq!(s, 423);
    assert!(body["error"]["message"].as_str().unwrap().contains("release night"), "{body}");
    let env = app.get("/api/v1/environments/env-1", &app.reader).await.body;
    assert_eq!(env["frozen"]["reason"], "release night");
    let r = app.send(reqwest::Method::DELETE, "/api/v1/environments/env-1/freeze", Some(&app.deployer), None).await;
    assert_eq!(r.body["unfrozen"], true);
    assert_eq!(deploy(&app, &app.deployer, "env-1", None).await.0, 202);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tao_leaves_its_task_interrupted_and_the_environment_deployable() {
    crate::support::limit(a_killed_tao_leaves_its_task_interrupted_and_the_environment_deployable_body()).await
}

async fn a_killed_tao_leaves_its_task_interrupted_and_the_environment_deployable_body() {
    let (app, _gate, mut started) = with_gate(1).await;
    let a = deploy(&app, &app.deployer, "env-1", None).await.1["task_id"].as_i64().unwrap();
    assert_eq!(next_start(&mut started).await, a);
    let parts = app.kill().await;
    let pool = store::Pool::connect(&parts.settings.database_url).await.unwrap();
    assert_eq!(
        store::task::get(&pool, a).await.unwrap().unwrap().status.as_str(),
        "running",
        "a crash records nothing"
    );

    let (gate, mut started) = Gate::new();
    let app = respawn(parts, gate.factory()).await;
    let row = task(&app, a).await;
    assert_eq!(row["status"], "interrupted", "{row}");
    let leases: i64 =
        tao::with_pool!(&app.pool, p => sqlx::query_scalar("SELECT COUNT(*) FROM env_lease").fetch_one(p).await)
            .unwrap();
    assert_eq!(leases, 0);
    let b = deploy(&app, &app.deployer, "env-1", None).await.1["task_id"].as_i64().unwrap();
    assert_eq!(next_start(&mut started).await, b, "the environment is deployable again");
    gate.finish(b, Outcome::Succeeded);
    wait_status(&app, b, "succeeded").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_then_interrupts() {
    crate::support::limit(shutdown_drains_then_interrupts_body()).await
}

async fn shutdown_drains_then_interrupts_body() {
    let (gate, mut started) = Gate::new();
    let app = spawn_app_exec(TestDb::sqlite(), |s| s.drain_timeout = Duration::from_millis(300), gate.factory()).await;
    app.create_release(&app.deployer, monitor_release("1.0.0", &[])).await;
    let a = deploy(&app, &app.deployer, "env-1", None).await.1["task_id"].as_i64().unwrap();
    assert_eq!(next_start(&mut started).await, a);
    let queued = deploy(&app, &app.deployer, "env-1", None).await.1["task_id"].as_i64().unwrap();
    let url = app.database_url();
    let _parts = app.stop().await;
    let pool = store::Pool::connect(&url).await.unwrap();
    let row = store::task::get(&pool, a).await.unwrap().unwrap();
    assert_eq!(row.status.as_str(), "interrupted", "the drain timeout passed while it ran");
    assert_eq!(
        store::task::get(&pool, queued).await.unwrap().unwrap().status.as_str(),
        "queued",
        "never claimed: still queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_logs_stream_as_json_lines_until_the_task_ends() {
    crate::support::limit(task_logs_stream_as_json_lines_until_the_task_ends_body()).await
}

async fn task_logs_stream_as_json_lines_until_the_task_ends_body() {
    let (app, gate, mut started) = with_gate(1).await;
    let a = deploy(&app, &app.deployer, "env-1", None).await.1["task_id"].as_i64().unwrap();
    assert_eq!(next_start(&mut started).await, a);
    let mut resp = app
        .http
        .get(format!("{}/api/v1/tasks/{a}/log?follow=1", app.base))
        .bearer_auth(&app.reader)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let first = resp.chunk().await.unwrap().expect("the first line arrives while the task runs");
    let line: Value = serde_json::from_slice(first.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["line"], "gate: started");
    assert_eq!(task(&app, a).await["status"], "running");
    gate.finish(a, Outcome::Succeeded);
    let mut rest = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    let last: Value = serde_json::from_slice(rest.trim_ascii_end().rsplit(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(last["task"]["status"], "succeeded");
    let page = app.http.get(format!("{}/ui/tasks/{a}", app.base)).bearer_auth(&app.reader).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("gate: started") && html.contains("succeeded"), "{html}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgres_wake_each_other() {
    crate::support::limit(replicas_on_postgres_wake_each_other_body()).await
}

async fn replicas_on_postgres_wake_each_other_body() {
    // Replica A deploys; replica B only serves the API (0 workers). A task queued through B starts on A
    // at once: B's NOTIFY reaches A's LISTEN (A has no lease to expire and nothing else to wake it).
    let db = TestDb::postgres().await;
    let url = db.url();
    let (gate, mut started) = Gate::new();
    let a = spawn_app_exec(
        db,
        |s| {
            s.workers = 1;
            s.drain_timeout = Duration::from_millis(200);
        },
        gate.factory(),
    )
    .await;
    let (idle, _never) = Gate::new();
    let b = crate::support::spawn_app_on(&url, |s| s.workers = 0, idle.factory()).await;
    assert_eq!(b.create_release(&b.deployer, monitor_release("1.0.0", &[])).await.status, 201);
    let (s, body) = deploy(&b, &b.deployer, "env-1", None).await;
    assert_eq!(s, 202, "{body}");
    let id = body["task_id"].as_i64().unwrap();
    assert_eq!(next_start(&mut started).await, id, "replica A picked up B's task");
    gate.finish(id, Outcome::Succeeded);
    wait_status(&b, id, "succeeded").await;
    let _ = b.stop().await;
    let _ = a.stop().await;
}
