//! Rollouts without downtime, on real parts: sshd hosts on 127.0.0.x, the machine's Docker engine, the
//! local registry's busybox images and a real HAProxy (Debian's binary in a `FROM scratch` image) as
//! each host's proxy. A prober sends HTTP requests through the published ports all along and counts
//! every failure.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::hosts::{TestHosts, DEPLOY_USER};
use crate::support::prober;
use crate::support::registry::registry;
use crate::support::{published_ports, spawn_app_with, Cleanup, TestApp, TestDb};

struct World {
    app: TestApp,
    hosts: TestHosts,
    env: String,
    _cleanup: Cleanup,
}

impl World {
    async fn new(n: usize) -> World {
        use rand::Rng;
        let hosts = TestHosts::start(n);
        let env = format!("r{:06x}", rand::thread_rng().gen::<u32>() & 0xff_ffff);
        let (key, known, control) = (hosts.key.clone(), hosts.known_hosts.clone(), hosts.control_dir.clone());
        let app = spawn_app_with(TestDb::sqlite(), move |s| {
            s.ssh_identity = Some(key);
            s.ssh_known_hosts = Some(known);
            s.ssh_control_dir = Some(control);
            s.drain_timeout = Duration::from_secs(5);
        })
        .await;
        World { _cleanup: Cleanup(vec![env.clone()]), app, hosts, env }
    }

    fn host(&self, i: usize) -> String {
        let h = &self.hosts.hosts[i];
        format!("{{ name: h{i}, address: \"{}\", port: {}, user: {DEPLOY_USER} }}", h.address, h.port)
    }

    async fn apply(&self, yaml: &str) {
        std::fs::write(self.app.catalog_path(), yaml).unwrap();
        let r = self.app.http.post(format!("{}/api/v1/catalog", self.app.base)).bearer_auth(&self.app.admin);
        let r = r.body(yaml.to_string()).send().await.unwrap();
        assert!(r.status().is_success(), "catalog: {}", r.text().await.unwrap());
    }

    async fn release(&self, version: &str, components: Value) {
        let body = json!({ "product": "shop", "version": version, "components": components });
        let r = self.app.create_release(&self.app.deployer, body).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }

    async fn post(&self, path: &str, body: Value) -> i64 {
        let r = self.app.http.post(format!("{}{path}", self.app.base)).bearer_auth(&self.app.deployer).json(&body);
        let r = r.send().await.unwrap();
        let (s, v): (u16, Value) = (r.status().as_u16(), r.json().await.unwrap());
        assert_eq!(s, 202, "{v}");
        v["task_id"].as_i64().unwrap()
    }

    async fn deploy(&self, version: &str) -> i64 {
        self.post("/api/v1/deploys", json!({ "product": "shop", "version": version, "env": self.env })).await
    }

    async fn finished(&self, id: i64) -> (Value, String) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let t = self.app.get(&format!("/api/v1/tasks/{id}"), &self.app.reader).await.body;
            if !matches!(t["status"].as_str(), Some("queued" | "running")) {
                let r = self.app.http.get(format!("{}/api/v1/tasks/{id}/log", self.app.base));
                let log = r.bearer_auth(&self.app.reader).send().await.unwrap().text().await.unwrap();
                return (t, log);
            }
            assert!(tokio::time::Instant::now() < deadline, "task {id} did not end: {t}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Names of the containers of `component` in this environment (running or not).
    fn containers(&self, component: &str) -> Vec<String> {
        containers(&self.env, component)
    }
}

/// `web` switched blue-green behind the host's proxy, `plain` recreated: the same image, the same probe.
fn catalog(w: &World, web: u16, plain: u16) -> String {
    let reg = &registry().address;
    format!(
        r#"products:
  shop:
    components: [web, plain]
components:
  web:
    project: shop/web
    image: {reg}/tao-test/web
    container:
      ports: ["{web}:8080"]
    health:
      http: {{ port: 8080, path: /health }}
      timeout: 5s
    rollout: {{ strategy: blue-green, drain: 1s }}
  plain:
    project: shop/plain
    image: {reg}/tao-test/web
    container:
      ports: ["{plain}:8080"]
    health:
      http: {{ port: 8080, path: /health }}
      timeout: 5s
    rollout: {{ strategy: recreate }}
environments:
  {env}:
    tier: test
    proxy: {{ image: {proxy} }}
    hosts:
      - {h0}
"#,
        env = w.env,
        proxy = registry().haproxy(),
        h0 = w.host(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_deploys_fails_and_rolls_back_without_a_failed_request() {
    crate::support::limit(blue_green_deploys_fails_and_rolls_back_without_a_failed_request_body()).await
}

async fn blue_green_deploys_fails_and_rolls_back_without_a_failed_request_body() {
    let w = World::new(1).await;
    let p = published_ports(2);
    let (web, plain) = (p[0], p[1]);
    w.apply(&catalog(&w, web, plain)).await;
    w.release("1.0.0", json!({ "web": "1.0.0", "plain": "1.0.0" })).await;
    w.release("1.1.0", json!({ "web": "1.1.0", "plain": "1.1.0" })).await;
    // web 1.2.0 runs but never answers its health check.
    w.release("1.2.0", json!({ "web": "1.2.0", "plain": "1.1.0" })).await;

    let (t, log) = w.finished(w.deploy("1.0.0").await).await;
    assert_eq!(t["status"], "succeeded", "{log}");
    let proxy = format!("tao-proxy-{}-h0", w.env);
    assert!(log.contains(&format!("proxy {proxy} started: switched web on h0 to web 1.0.0")), "{log}");
    let base = format!("{}-web", w.env);
    assert_eq!(w.containers("web"), vec![format!("{base}-blue")], "one container, the blue one");

    let probe = prober::start(&[web, plain], 6, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 1.0.0 → 1.1.0: green starts next to blue, the proxy switches, blue drains and goes.
    let (t, log) = w.finished(w.deploy("1.1.0").await).await;
    assert_eq!(t["status"], "succeeded", "{log}");
    let at = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("{needle:?} in the log:\n{log}"));
    assert!(
        at(&format!("starting {base}-green next to {base}-blue")) < at("waiting for the health check of")
            && at("waiting for the health check of")
                < at(&format!("proxy {proxy} reloaded: switched web on h0 to web 1.1.0"))
            && at("switched web on h0 to web 1.1.0") < at(&format!("draining {base}-blue"))
            && at(&format!("draining {base}-blue")) < at(&format!("removed the old container {base}-blue")),
        "{log}"
    );
    assert_eq!(w.containers("web"), vec![format!("{base}-green")]);

    // 1.1.0 → 1.2.0: the new container never gets healthy; green never stopped serving.
    let (t, log) = w.finished(w.deploy("1.2.0").await).await;
    assert_eq!(t["status"], "failed", "{log}");
    let error = t["error"].as_str().unwrap();
    assert!(error.starts_with("web on h0 failed") && error.contains(&format!("{base}-green keeps serving")), "{error}");
    assert!(!log.contains("switched web"), "never switched to a container that failed its check:\n{log}");
    assert_eq!(w.containers("web"), vec![format!("{base}-green")], "the unhealthy container is gone");

    // Rollback to 1.0.0: a blue-green deploy like any other.
    let back = w.post("/api/v1/rollbacks", json!({ "env": w.env })).await;
    let (t, log) = w.finished(back).await;
    assert_eq!(t["status"], "succeeded", "{log}");
    assert!(log.contains("switched web on h0 to web 1.0.0"), "{log}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = probe.finish().await;

    let failed_web: Vec<_> = report.failures().into_iter().filter(|s| s.port == web).collect();
    println!("blue-green web: {}; longest gap {:?}", report.summary(), report.longest_gap(web));
    println!("recreate plain: longest gap {:?}", report.longest_gap(plain));
    assert!(report.rate_of(web) >= 200.0, "at least 200 requests/s through the proxy: {}", report.summary());
    assert!(failed_web.is_empty(), "blue-green never fails a request: {:?}", &failed_web[..failed_web.len().min(5)]);
    assert_eq!(report.versions(web), ["1.0.0", "1.1.0", "1.0.0"], "each switch happens once, to a healthy container");
    let failed_plain = report.failures().into_iter().filter(|s| s.port == plain).count();
    assert!(failed_plain > 0, "recreate's outage is measured by the same prober");

    // What Tao records is what runs: the live colour, no drift.
    let env = w.app.get(&format!("/api/v1/environments/{}", w.env), &w.app.reader).await.body;
    let live = env["deployed"].as_array().unwrap().iter().find(|d| d["component"] == "web").unwrap().clone();
    assert_eq!(live["container"], format!("{base}-blue"), "{env}");
    let check = w.app.get(&format!("/api/v1/environments/{}/check", w.env), &w.app.reader).await.body;
    assert_eq!(check["drift"], json!([]), "{check}");
    let _ = w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_deploy_over_three_hosts_takes_down_one_host_at_a_time() {
    crate::support::limit(a_rolling_deploy_over_three_hosts_takes_down_one_host_at_a_time_body()).await
}

async fn a_rolling_deploy_over_three_hosts_takes_down_one_host_at_a_time_body() {
    let w = World::new(3).await;
    let ports = published_ports(3);
    let reg = &registry().address;
    let overrides: String = (0..3)
        .map(|i| {
            format!(
                "      h{i}:\n        web: {{ name: \"{{env}}-{{host}}-{{component}}\", ports: [\"{}:8080\"] }}\n",
                ports[i]
            )
        })
        .collect();
    let yaml = format!(
        r#"products:
  shop:
    components: [web]
components:
  web:
    project: shop/web
    image: {reg}/tao-test/web
    container:
      ports: ["8080:8080"]
    health:
      http: {{ port: 8080, path: /health }}
      timeout: 5s
    rollout: {{ strategy: rolling, batch: 1 }}
environments:
  {env}:
    tier: test
    hosts:
      - {h0}
      - {h1}
      - {h2}
    overrides:
{overrides}"#,
        env = w.env,
        h0 = w.host(0),
        h1 = w.host(1),
        h2 = w.host(2),
    );
    w.apply(&yaml).await;
    w.release("1.0.0", json!({ "web": "1.0.0" })).await;
    w.release("1.1.0", json!({ "web": "1.1.0" })).await;
    let (t, log) = w.finished(w.deploy("1.0.0").await).await;
    assert_eq!(t["status"], "succeeded", "{log}");

    let probe = prober::start(&ports, 3, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (t, log) = w.finished(w.deploy("1.1.0").await).await;
    assert_eq!(t["status"], "succeeded", "{log}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = probe.finish().await;
    println!("rolling over 3 hosts: {}", report.summary());
    assert!(report.rate() >= 200.0, "{}", report.summary());
    for &p in &ports {
        assert_eq!(report.versions(p), ["1.0.0", "1.1.0"], "port {p} switched once");
        assert!(report.failures().iter().any(|s| s.port == p), "each host's recreate outage is seen on port {p}");
    }
    assert_eq!(report.most_ports_down_at_once(Duration::from_millis(100)), 1, "never more than batch (1) hosts out");
    let _ = w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tao_killed_right_after_the_switch_leaves_the_proxy_on_a_healthy_container() {
    crate::support::limit(a_tao_killed_right_after_the_switch_leaves_the_proxy_on_a_healthy_container_body()).await
}

async fn a_tao_killed_right_after_the_switch_leaves_the_proxy_on_a_healthy_container_body() {
    let w = World::new(1).await;
    let p = published_ports(2);
    let web = p[0];
    // A long drain, so Tao dies while the old container still serves.
    w.apply(&catalog(&w, web, p[1]).replace("drain: 1s", "drain: 60s")).await;
    w.release("1.0.0", json!({ "web": "1.0.0", "plain": "1.0.0" })).await;
    w.release("1.1.0", json!({ "web": "1.1.0", "plain": "1.0.0" })).await;
    let (t, log) = w.finished(w.deploy("1.0.0").await).await;
    assert_eq!(t["status"], "succeeded", "{log}");
    let probe = prober::start(&[web], 8, Duration::from_millis(10));

    let id = w.deploy("1.1.0").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = w.app.http.get(format!("{}/api/v1/tasks/{id}/log", w.app.base)).bearer_auth(&w.app.reader);
        let log = r.send().await.unwrap().text().await.unwrap();
        if log.contains("switched web on h0 to web 1.1.0") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no switch:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Killed like a crashed process (no graceful stop, no drain), then started again on what it left.
    let parts = w.app.kill().await;
    let base = format!("{}-web", w.env);
    assert_eq!(containers(&w.env, "web"), vec![format!("{base}-blue"), format!("{base}-green")], "both colours exist");
    let app = crate::support::respawn(parts, tao::app::runner_executor()).await;
    let t = app.get(&format!("/api/v1/tasks/{id}"), &app.reader).await.body;
    assert_eq!(t["status"], "interrupted", "{t}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = probe.finish().await;
    println!("across the kill: {}", report.summary());
    assert!(report.failures().is_empty(), "the proxy kept serving: {}", report.summary());
    assert_eq!(report.versions(web), ["1.0.0", "1.1.0"], "it serves the container that passed its check");

    // `tao status --check`: the record names the live colour; the other one is an orphan, removed.
    let check = app.get(&format!("/api/v1/environments/{}/check", w.env), &app.reader).await.body;
    assert_eq!(check["drift"], json!([]), "{check}");
    let orphans = check["orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 1, "{check}");
    let line = orphans[0].as_str().unwrap();
    assert!(line.contains(&format!("orphan container {base}-blue")) && line.ends_with("removed"), "{line}");
    assert_eq!(containers(&w.env, "web"), vec![format!("{base}-green")]);

    // The next deploy works from there (and would have removed an orphan itself: see the log check).
    let r = app.http.post(format!("{}/api/v1/deploys", app.base)).bearer_auth(&app.deployer);
    let r = r.json(&json!({ "product": "shop", "version": "1.0.0", "env": w.env })).send().await.unwrap();
    let again = r.json::<Value>().await.unwrap()["task_id"].as_i64().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let t = app.get(&format!("/api/v1/tasks/{again}"), &app.reader).await.body;
        if !matches!(t["status"].as_str(), Some("queued" | "running")) {
            assert_eq!(t["status"], "succeeded", "{t}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = app.stop().await;
}

/// Names of the containers of `component` in `env` (running or not), sorted.
fn containers(env: &str, component: &str) -> Vec<String> {
    let filters = [format!("label=tao.env={env}"), format!("label=tao.component={component}")];
    let out = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter", &filters[0], "--filter", &filters[1]])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
    names.sort();
    names
}
