//! End to end: Tao deploys product versions, component builds and rollbacks to sshd hosts on 127.0.0.x
//! running the machine's Docker engine, pulling busybox images from a local registry by digest.
//!
//! Each test builds its own catalog (random environment names, free published ports), so tests can run
//! in parallel on the one Docker engine; containers are removed when the test ends.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tao::store;

use crate::support::hosts::{processes_mentioning, TestHosts, DEPLOY_USER};
use crate::support::registry::registry;
use crate::support::{published_ports, respawn, spawn_app_with, Cleanup, TestApp, TestDb};

fn suffix() -> String {
    use rand::Rng;
    format!("{:06x}", rand::thread_rng().gen::<u32>() & 0xff_ffff)
}

/// A test world: two hosts, a catalog over them, Tao serving it.
struct World {
    app: TestApp,
    hosts: TestHosts,
    env: String,
    prod: String,
    /// Published ports: (host index, component) → port.
    ports: Vec<((usize, &'static str), u16)>,
    _cleanup: Cleanup,
    secrets: tempfile::TempDir,
}

const SECRET: &str = "s3cr3t-v4lue-Zq9";
const BASE_TEMPLATE: &str = "env={{env.name}} host={{host.name}} version={{version}}\n";
const HOSTILE: &str = "it's \"$(id)\" `id` ; $HOME";

fn catalog(
    w_env: &str,
    prod: &str,
    hosts: &TestHosts,
    ports: &[((usize, &'static str), u16)],
    front_image: &str,
) -> String {
    let reg = &registry().address;
    let port = |h: usize, c: &str| ports.iter().find(|((i, n), _)| *i == h && *n == c).unwrap().1;
    let host = |i: usize| {
        format!(
            "{{ name: h{i}, address: \"{}\", port: {}, user: {DEPLOY_USER} }}",
            hosts.hosts[i].address, hosts.hosts[i].port
        )
    };
    format!(
        r#"products:
  shop:
    components: [db, base, front]
components:
  db:
    layer: shared
  base:
    project: shop/base
    image: {reg}/tao-test/web
    container:
      ports: ["8080:8080"]
      env:
        GREETING: {hostile}
        API_KEY: {{ secret: shop-api-key }}
      files:
        - {{ target: /www/conf.txt, template: templates/base.conf.hbs }}
    health:
      http: {{ port: 8080, path: /health }}
      timeout: 30s
  front:
    project: shop/front
    image: {reg}/tao-test/{front_image}
    depends_on: [base]
    container:
      ports: ["8080:8080"]
    health:
      http: {{ port: 8080, path: /health }}
      timeout: 8s
environments:
  {w_env}:
    tier: test
    hosts:
      - {h0}
      - {h1}
    placement:
      front: [h0]
    overrides:
      h0:
        base: {{ name: "{{env}}-{{host}}-{{component}}", ports: ["{b0}:8080"] }}
        front: {{ name: "{{env}}-{{host}}-{{component}}", ports: ["{f0}:8080"] }}
      h1:
        base: {{ name: "{{env}}-{{host}}-{{component}}", ports: ["{b1}:8080"] }}
  {prod}:
    tier: prod
    hosts:
      - {h0}
    overrides:
      h0:
        front: {{ ports: ["{f0}:8080"] }}
"#,
        hostile = serde_json::to_string(HOSTILE).unwrap(),
        h0 = host(0),
        h1 = host(1),
        b0 = port(0, "base"),
        b1 = port(1, "base"),
        f0 = port(0, "front"),
    )
}

impl World {
    async fn new(logged: bool) -> World {
        let hosts = if logged { TestHosts::logged(2) } else { TestHosts::start(2) };
        let (env, prod) = (format!("e{}", suffix()), format!("p{}", suffix()));
        let p = published_ports(3);
        let ports = vec![((0, "base"), p[0]), ((1, "base"), p[1]), ((0, "front"), p[2])];
        let secrets = tempfile::tempdir().unwrap();
        std::fs::write(secrets.path().join("shop-api-key"), format!("{SECRET}\n")).unwrap();
        let (key, known, control) = (hosts.key.clone(), hosts.known_hosts.clone(), hosts.control_dir.clone());
        let secrets_dir = secrets.path().to_path_buf();
        let app = spawn_app_with(TestDb::sqlite(), move |s| {
            s.ssh_identity = Some(key);
            s.ssh_known_hosts = Some(known);
            s.ssh_control_dir = Some(control);
            s.secrets_dir = Some(secrets_dir);
            s.drain_timeout = Duration::from_secs(5);
        })
        .await;
        let w = World { _cleanup: Cleanup(vec![env.clone(), prod.clone()]), app, hosts, env, prod, ports, secrets };
        w.apply(&catalog(&w.env, &w.prod, &w.hosts, &w.ports, "web")).await;
        w
    }

    /// Applies a catalog through the API, and writes it to the catalog file too (as an operator
    /// would), so a restarted Tao starts from the same catalog.
    async fn apply(&self, yaml: &str) {
        std::fs::write(self.app.catalog_path(), yaml).unwrap();
        let templates = self.app.catalog_path().parent().unwrap().join("templates");
        std::fs::create_dir_all(&templates).unwrap();
        std::fs::write(templates.join("base.conf.hbs"), BASE_TEMPLATE).unwrap();
        let r = self
            .app
            .http
            .post(format!("{}/api/v1/catalog", self.app.base))
            .bearer_auth(&self.app.admin)
            .body(yaml.to_string());
        let r = r.send().await.unwrap();
        assert!(r.status().is_success(), "catalog: {}", r.text().await.unwrap());
    }

    fn port(&self, host: usize, component: &str) -> u16 {
        self.ports.iter().find(|((h, c), _)| *h == host && *c == component).unwrap().1
    }

    async fn release(&self, version: &str, base: &str, front: &str) -> Value {
        let body = json!({ "product": "shop", "version": version, "components": { "db": "1.0.0", "base": base, "front": front } });
        let r = self.app.create_release(&self.app.deployer, body).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let r =
            self.app.http.post(format!("{}{path}", self.app.base)).bearer_auth(token).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn deploy(&self, body: Value) -> i64 {
        let (s, r) = self.post("/api/v1/deploys", &self.app.deployer, body).await;
        assert_eq!(s, 202, "{r}");
        r["task_id"].as_i64().unwrap()
    }

    /// Waits until the task ends; returns it.
    async fn finished(&self, id: i64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let t = self.app.get(&format!("/api/v1/tasks/{id}"), &self.app.reader).await.body;
            if !matches!(t["status"].as_str(), Some("queued" | "running")) {
                return t;
            }
            assert!(tokio::time::Instant::now() < deadline, "task {id} did not end: {t}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn log(&self, id: i64) -> String {
        let r = self.app.http.get(format!("{}/api/v1/tasks/{id}/log", self.app.base)).bearer_auth(&self.app.reader);
        r.send().await.unwrap().text().await.unwrap()
    }

    fn container(&self, host: usize, component: &str) -> String {
        format!("{}-h{host}-{component}", self.env)
    }
}

/// Captures Tao's own log (every `tracing` event of this test process, at info level, Tao's default) into a buffer.
/// Installed once per process; tests running beside this one add their lines, which is harmless for a
/// "this secret never appears" check.
fn capture_tao_log() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let sink = buffer.clone();
            let writer = move || Sink(sink.clone());
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_ansi(false)
                .with_writer(writer)
                .try_init()
                .expect("no other subscriber in the test process");
            buffer
        })
        .clone()
}

struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn served(port: u16) -> Option<String> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/health")).await.ok()?;
    r.status().is_success().then_some(())?;
    r.text().await.ok()
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_upgrade_rollback_component_build_and_drift() {
    crate::support::limit(release_upgrade_rollback_component_build_and_drift_body()).await
}

async fn release_upgrade_rollback_component_build_and_drift_body() {
    let w = World::new(false).await;
    let created = w.release("1.0.0", "1.0.0", "1.0.0").await;
    let digests: Vec<_> =
        created["components"].as_array().unwrap().iter().filter_map(|c| c["image_digest"].as_str()).collect();
    assert_eq!(digests.len(), 2, "digests resolved from the registry: {created}");

    let first = w.deploy(json!({ "product": "shop", "version": "1.0.0", "env": w.env })).await;
    let t = w.finished(first).await;
    assert_eq!(t["status"], "succeeded", "{t}\n{}", w.log(first).await);
    for (h, c) in [(0, "base"), (1, "base"), (0, "front")] {
        assert_eq!(served(w.port(h, c)).await.as_deref(), Some("1.0.0"), "{c} on h{h}");
    }
    for h in 0..2 {
        let conf = reqwest::get(format!("http://127.0.0.1:{}/conf.txt", w.port(h, "base"))).await.unwrap();
        assert_eq!(conf.text().await.unwrap(), format!("env={} host=h{h} version=1.0.0\n", w.env), "rendered per host");
    }
    let image = docker(&["inspect", "-f", "{{.Config.Image}}", &w.container(0, "base")]);
    assert!(image.contains("@sha256:"), "pulled by digest: {image}");
    let front_started = docker(&["inspect", "-f", "{{.State.StartedAt}}", &w.container(0, "front")]);

    // 1.1.0 changes base only: front is left alone.
    w.release("1.1.0", "1.1.0", "1.0.0").await;
    let second = w.deploy(json!({ "product": "shop", "version": "1.1.0", "env": w.env })).await;
    let t = w.finished(second).await;
    assert_eq!(t["status"], "succeeded", "{}", w.log(second).await);
    assert_eq!(t["plan"]["waves"].as_array().unwrap().len(), 1);
    assert_eq!(served(w.port(0, "base")).await.as_deref(), Some("1.1.0"));
    assert_eq!(served(w.port(1, "base")).await.as_deref(), Some("1.1.0"));
    assert_eq!(docker(&["inspect", "-f", "{{.State.StartedAt}}", &w.container(0, "front")]), front_started);
    assert!(w.log(second).await.contains("unchanged"), "skips are logged");

    // Rollback restores 1.0.0 exactly from the stored run specs.
    let (s, r) = w.post("/api/v1/rollbacks", &w.app.deployer, json!({ "env": w.env })).await;
    assert_eq!(s, 202, "{r}");
    let back = r["task_id"].as_i64().unwrap();
    let t = w.finished(back).await;
    assert_eq!(t["status"], "succeeded", "{}", w.log(back).await);
    assert_eq!(served(w.port(0, "base")).await.as_deref(), Some("1.0.0"));
    let conf = reqwest::get(format!("http://127.0.0.1:{}/conf.txt", w.port(1, "base"))).await.unwrap();
    assert_eq!(conf.text().await.unwrap(), format!("env={} host=h1 version=1.0.0\n", w.env), "files restored too");
    let env = w.app.get(&format!("/api/v1/environments/{}", w.env), &w.app.reader).await.body;
    assert_eq!(env["releases"][0]["version"], "1.0.0");
    let hist = w.app.get(&format!("/api/v1/environments/{}/history", w.env), &w.app.reader).await.body;
    assert_eq!(hist[0]["action"], "restored");

    // A component build goes to the test environment and shows as off-release; never to prod.
    let build = w.deploy(json!({ "env": w.env, "component": "base", "image_tag": "1.1.0" })).await;
    assert_eq!(w.finished(build).await["status"], "succeeded", "{}", w.log(build).await);
    let env = w.app.get(&format!("/api/v1/environments/{}", w.env), &w.app.reader).await.body;
    let base = env["deployed"].as_array().unwrap().iter().find(|d| d["component"] == "base").unwrap().clone();
    assert_eq!((base["version"].clone(), base["off_release"].clone()), (json!("@ 1.1.0"), json!(true)));
    let (s, r) = w
        .post("/api/v1/deploys", &w.app.admin, json!({ "env": w.prod, "component": "base", "image_tag": "1.1.0" }))
        .await;
    assert_eq!(s, 422, "{r}");

    // Drift: the record matches the hosts, until someone removes a container by hand.
    let check = w.app.get(&format!("/api/v1/environments/{}/check", w.env), &w.app.reader).await.body;
    assert_eq!(check["drift"], json!([]), "{check}");
    docker(&["rm", "-f", &w.container(1, "base")]);
    let check = w.app.get(&format!("/api/v1/environments/{}/check", w.env), &w.app.reader).await.body;
    assert_eq!(check["drift"][0]["found"], "no such container", "{check}");
    let _ = w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_image_fails_with_its_reason_and_rolls_back() {
    crate::support::limit(a_broken_image_fails_with_its_reason_and_rolls_back_body()).await
}

async fn a_broken_image_fails_with_its_reason_and_rolls_back_body() {
    let w = World::new(false).await;
    w.release("1.0.0", "1.0.0", "1.0.0").await;
    let first = w.deploy(json!({ "product": "shop", "version": "1.0.0", "env": w.env })).await;
    assert_eq!(w.finished(first).await["status"], "succeeded", "{}", w.log(first).await);

    // The front project now ships a broken image; 1.1.0 upgrades base (wave 1) and breaks front (wave 2).
    w.apply(&catalog(&w.env, &w.prod, &w.hosts, &w.ports, "broken")).await;
    w.release("1.1.0", "1.1.0", "1.0.0").await;
    let bad = w.deploy(json!({ "product": "shop", "version": "1.1.0", "env": w.env })).await;
    let t = w.finished(bad).await;
    assert_eq!(t["status"], "failed");
    let error = t["error"].as_str().unwrap();
    assert!(error.starts_with("front on h0 failed"), "{error}");
    assert!(error.contains("rolled back"), "{error}");
    let log = w.log(bad).await;
    assert!(log.contains("cannot open /etc/broken.conf"), "the container's own words: {log}");
    // Everything this task replaced runs 1.0.0 again.
    for (h, c) in [(0, "base"), (1, "base"), (0, "front")] {
        assert_eq!(served(w.port(h, c)).await.as_deref(), Some("1.0.0"), "{c} on h{h} after rollback\n{log}");
    }
    let env = w.app.get(&format!("/api/v1/environments/{}", w.env), &w.app.reader).await.body;
    assert!(env["deployed"].as_array().unwrap().iter().all(|d| d["version"] == "1.0.0"), "{env}");
    let _ = w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_reach_containers_intact_and_secrets_stay_out_of_logs() {
    crate::support::limit(hostile_values_reach_containers_intact_and_secrets_stay_out_of_logs_body()).await
}

async fn hostile_values_reach_containers_intact_and_secrets_stay_out_of_logs_body() {
    let tao_log = capture_tao_log();
    let w = World::new(true).await;
    w.release("1.0.0", "1.0.0", "1.0.0").await;
    let t = w.deploy(json!({ "product": "shop", "version": "1.0.0", "env": w.env, "components": ["base"] })).await;
    assert_eq!(w.finished(t).await["status"], "succeeded", "{}", w.log(t).await);
    let env = docker(&["exec", &w.container(0, "base"), "env"]);
    assert!(env.lines().any(|l| l == format!("GREETING={HOSTILE}")), "byte for byte: {env}");
    assert!(env.lines().any(|l| l == format!("API_KEY={SECRET}")), "secret resolved: {env}");
    let commands = w.hosts.logged_commands();
    assert!(!commands.is_empty(), "the hosts logged the commands they ran");
    assert!(!commands.contains(SECRET), "no secret on a remote command line");
    assert!(!w.log(t).await.contains(SECRET), "no secret in the task log");
    let logged = String::from_utf8_lossy(&tao_log.lock().unwrap()).into_owned();
    assert!(logged.contains(&format!("task {t} started")), "Tao's own log was captured: {logged}");
    assert!(!logged.contains(SECRET), "no secret in Tao's own log");

    // A hostile image tag never reaches a host: refused before anything is queued.
    let before = w.hosts.logged_commands();
    let (s, _) = w
        .post("/api/v1/deploys", &w.app.deployer, json!({ "env": w.env, "component": "base", "image_tag": "1.0.0;id" }))
        .await;
    assert_eq!(s, 422);
    assert_eq!(w.hosts.logged_commands(), before, "no command was run");
    drop(w.secrets);
    let _ = w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_stream_while_a_health_check_holds_and_a_killed_tao_recovers() {
    crate::support::limit(logs_stream_while_a_health_check_holds_and_a_killed_tao_recovers_body()).await
}

async fn logs_stream_while_a_health_check_holds_and_a_killed_tao_recovers_body() {
    let w = World::new(false).await;
    // front's health check passes only once the test says so (it creates /www/ready in the container).
    let held = catalog(&w.env, &w.prod, &w.hosts, &w.ports, "web").replace(
        "      http: { port: 8080, path: /health }\n      timeout: 8s",
        "      command: \"test -f /www/ready\"\n      timeout: 60s",
    );
    w.apply(&held).await;
    w.release("1.0.0", "1.0.0", "1.0.0").await;
    let id = w.deploy(json!({ "product": "shop", "version": "1.0.0", "env": w.env })).await;
    let mut stream = w
        .app
        .http
        .get(format!("{}/api/v1/tasks/{id}/log?follow=1", w.app.base))
        .bearer_auth(&w.app.reader)
        .send()
        .await
        .unwrap();
    // Lines arrive while the task waits for front's health check.
    let mut seen = String::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(60), stream.chunk()).await.unwrap().unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
        let last_front = seen.lines().rfind(|l| l.contains("\"component\":\"front\"")).unwrap_or("");
        if last_front.contains("waiting for the health check") {
            break;
        }
    }
    let task = w.app.get(&format!("/api/v1/tasks/{id}"), &w.app.reader).await.body;
    assert_eq!(task["status"], "running");

    // Kill Tao mid-task: after a restart the task is interrupted, no lease is held, no ssh master is left
    // running for it, and the environment is deployable again.
    let control = w.hosts.control_dir.display().to_string();
    let front = w.container(0, "front");
    let parts = w.app.kill().await;
    let app = respawn(parts, tao::app::runner_executor()).await;
    let t = app.get(&format!("/api/v1/tasks/{id}"), &app.reader).await.body;
    assert_eq!(t["status"], "interrupted", "{t}");
    let leases: i64 =
        tao::with_pool!(&app.pool, p => sqlx::query_scalar("SELECT COUNT(*) FROM env_lease").fetch_one(p).await)
            .unwrap();
    assert_eq!(leases, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !processes_mentioning(&control).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "ssh masters left: {:?}", processes_mentioning(&control));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    docker(&["exec", &front, "touch", "/www/ready"]);
    let r = app
        .http
        .post(format!("{}/api/v1/deploys", app.base))
        .bearer_auth(&app.deployer)
        .json(&json!({ "product": "shop", "version": "1.0.0", "env": w.env, "force": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let again = r.json::<Value>().await.unwrap()["task_id"].as_i64().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        let t = store::task::get(&app.pool, again).await.unwrap().unwrap();
        if t.is_finished() {
            let log = store::task::log_after(&app.pool, again, 0, 1000).await.unwrap();
            let lines: Vec<_> = log.iter().map(|l| l.line.as_str()).collect();
            break format!("{} {:?}\n{}", t.status, t.error, lines.join("\n"));
        }
        assert!(tokio::time::Instant::now() < deadline);
        // The forced redeploy replaces front: mark it ready again as soon as the new container exists.
        let _ = Command::new("docker").args(["exec", &front, "touch", "/www/ready"]).output();
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.starts_with("succeeded"), "{status}");
    let _ = app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_rollout_replaces_one_host_at_a_time_and_rolls_back_every_batch() {
    crate::support::limit(a_rolling_rollout_replaces_one_host_at_a_time_and_rolls_back_every_batch_body()).await
}

async fn a_rolling_rollout_replaces_one_host_at_a_time_and_rolls_back_every_batch_body() {
    let w = World::new(false).await;
    // base runs on h0 and h1; rolled out one host at a time.
    let rolling = |yaml: String| {
        let out = yaml.replacen(
            "      timeout: 30s\n",
            "      timeout: 30s\n    rollout: { strategy: rolling, batch: 1 }\n",
            1,
        );
        assert_ne!(out, yaml, "the catalog has base's health timeout to anchor on");
        out
    };
    w.apply(&rolling(catalog(&w.env, &w.prod, &w.hosts, &w.ports, "web"))).await;
    w.release("1.0.0", "1.0.0", "1.0.0").await;
    let first = w.deploy(json!({ "product": "shop", "version": "1.0.0", "env": w.env })).await;
    let status = w.finished(first).await["status"].clone();
    let log = w.log(first).await;
    assert_eq!(status, "succeeded", "{log}");
    let at = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("{needle:?} in the log:\n{log}"));
    let (h0, h1) = (w.container(0, "base"), w.container(1, "base"));
    assert!(log.contains("rolling: batch 1 of 2 (1 host(s) at a time)"), "{log}");
    assert!(
        at(&format!("replacing container {h0}")) < at(&format!("healthy: {h0}"))
            && at(&format!("healthy: {h0}")) < at(&format!("replacing container {h1}")),
        "h1 is replaced only once h0 is healthy:\n{log}"
    );

    // 1.1.0 moves base on h1 to a port another container holds: batch 1 (h0) succeeds, batch 2 (h1)
    // fails, and the rollback restores both batches.
    let held = published_ports(1)[0];
    let image = registry().web("1.0.0");
    let label = format!("tao.env={}", w.env);
    let blocker = format!("{}-blocker", w.env);
    let id = docker(&["run", "-d", "--label", &label, "--name", &blocker, "-p", &format!("{held}:8080"), &image]);
    assert!(!id.is_empty(), "the blocking container runs");
    let moved = catalog(&w.env, &w.prod, &w.hosts, &w.ports, "web")
        .replace(&format!("ports: [\"{}:8080\"]", w.port(1, "base")), &format!("ports: [\"{held}:8080\"]"));
    w.apply(&rolling(moved)).await;
    w.release("1.1.0", "1.1.0", "1.0.0").await;
    let bad = w.deploy(json!({ "product": "shop", "version": "1.1.0", "env": w.env })).await;
    let t = w.finished(bad).await;
    let log = w.log(bad).await;
    assert_eq!(t["status"], "failed", "{log}");
    let error = t["error"].as_str().unwrap();
    assert!(error.starts_with("base on h1 failed") && error.contains("rolled back"), "{error}\n{log}");
    let at = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("{needle:?} in the log:\n{log}"));
    assert!(at(&format!("healthy: {h0} runs")) < at(&format!("replacing container {h1}")), "{log}");
    for h in [0, 1] {
        assert_eq!(served(w.port(h, "base")).await.as_deref(), Some("1.0.0"), "base on h{h} after rollback\n{log}");
    }
    let _ = w.app.stop().await;
}
