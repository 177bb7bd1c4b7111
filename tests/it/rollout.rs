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

/// A test world: hosts, Tao serving a catalog over them (also used by `faults`).
pub(crate) struct World {
    pub(crate) app: TestApp,
    pub(crate) hosts: TestHosts,
    pub(crate) env: String,
    _cleanup: Cleanup,
}

impl World {
    pub(crate) async fn new(n: usize) -> World {
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

    pub(crate) fn host(&self, i: usize) -> String {
        let h = &self.hosts.hosts[i];
        format!("{{ name: h{i}, address: \"{}\", port: {}, user: {DEPLOY_USER} }}", h.address, h.port)
    }

    pub(crate) async fn apply(&self, yaml: &str) {
        std::fs::write(self.app.catalog_path(), yaml).unwrap();
        let r = self.app.http.post(format!("{}/api/v1/catalog", self.app.base)).bearer_auth(&self.app.admin);
        let r = r.body(yaml.to_string()).send().await.unwrap();
        assert!(r.status().is_success(), "catalog: {}", r.text().await.unwrap());
    }

    pub(crate) async fn release(&self, version: &str, components: Value) -> Value {
        let body = json!({ "product": "shop", "version": version, "components": components });
        let r = self.app.create_release(&self.app.deployer, body).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> i64 {
        let r = self.app.http.post(format!("{}{path}", self.app.base)).bearer_auth(&self.app.deployer).json(&body);
        let r = r.send().await.unwrap();
        let (s, v): (u16, Value) = (r.status().as_u16(), r.json().await.unwrap());
        assert_eq!(s, 202, "{v}");
        v["task_id"].as_i64().unwrap()
    }

    pub(crate) async fn deploy(&self, version: &str) -> i64 {
        self.post("/api/v1/deploys", json!({ "product": "shop", "version": version, "env": self.env })).await
    }

    pub(crate) async fn finished(&self, id: i64) -> (Value, String) {
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
    pub(crate) fn containers(&self, component: &str) -> Vec<String> {
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
    assert!(log.contains(&format!("switched web on h0 to 1.0.0 (proxy {proxy} started)")), "{log}");
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
                < at(&format!("switched web on h0 to 1.1.0 (proxy {proxy} reloaded)"))
            && at("switched web on h0 to 1.1.0") < at(&format!("draining {base}-blue"))
            && at(&format!("draining {base}-blue for 1s")) < at(&format!("removed the old container {base}-blue")),
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
    assert!(log.contains("switched web on h0 to 1.0.0"), "{log}");
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
    w.apply(&three_hosts(&w, &ports, "{ strategy: rolling, batch: 1 }")).await;
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
        if log.contains("switched web on h0 to 1.1.0") {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_component_is_taken_over_by_the_proxy_once() {
    crate::support::limit(a_recreated_component_is_taken_over_by_the_proxy_once_body()).await
}

async fn a_recreated_component_is_taken_over_by_the_proxy_once_body() {
    let w = World::new(1).await;
    let p = published_ports(2);
    let blue_green = catalog(&w, p[0], p[1]);
    w.apply(&blue_green.replace("rollout: { strategy: blue-green, drain: 1s }", "rollout: { strategy: recreate }"))
        .await;
    w.release("1.0.0", json!({ "web": "1.0.0", "plain": "1.0.0" })).await;
    w.release("1.1.0", json!({ "web": "1.1.0", "plain": "1.0.0" })).await;
    let (t, log) = w.finished(w.deploy("1.0.0").await).await;
    assert_eq!(t["status"], "succeeded", "{log}");
    let base = format!("{}-web", w.env);
    assert_eq!(w.containers("web"), vec![base.clone()], "recreated under its plain name");

    w.apply(&blue_green).await;
    let (t, log) = w.finished(w.deploy("1.1.0").await).await;
    assert_eq!(t["status"], "succeeded", "{log}");
    assert!(log.contains(&format!("starting {base}-blue next to {base} (web 1.1.0)")), "{log}");
    assert!(log.contains(&format!("taking over the published ports of {base}")), "{log}");
    assert!(log.contains("switched web on h0 to 1.1.0"), "{log}");
    assert_eq!(w.containers("web"), vec![format!("{base}-blue")], "the plain container went at the end of the task");
    let r = reqwest::get(format!("http://127.0.0.1:{}/health", p[0])).await.unwrap();
    assert_eq!(r.text().await.unwrap(), "1.1.0", "the proxy serves it");
    let _ = w.app.stop().await;
}

/// The benchmark of `scripts/bench-rollout.sh` (not run by CI: `--ignored`): the same prober against a
/// component on 3 hosts deployed 1.0.0 → 1.1.0 → 1.0.0 with each strategy, side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-rollout.sh runs it"]
async fn bench_rollout_strategies() {
    crate::support::limit_to(Duration::from_secs(1200), bench_rollout_strategies_body()).await
}

async fn bench_rollout_strategies_body() {
    let drain = std::env::var("BENCH_DRAIN").unwrap_or_else(|_| "1s".into());
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(2);
    let strategies = [
        ("recreate", "{ strategy: recreate }".to_string()),
        ("rolling", "{ strategy: rolling, batch: 1 }".into()),
        ("blue-green", format!("{{ strategy: blue-green, drain: {drain} }}")),
    ];
    let mut rows = Vec::new();
    for (name, rollout) in &strategies {
        let w = World::new(3).await;
        let ports = published_ports(3);
        w.apply(&three_hosts(&w, &ports, rollout)).await;
        w.release("1.0.0", json!({ "web": "1.0.0" })).await;
        w.release("1.1.0", json!({ "web": "1.1.0" })).await;
        let (t, log) = w.finished(w.deploy("1.0.0").await).await;
        assert_eq!(t["status"], "succeeded", "{log}");
        let probe = prober::start(&ports, 3, Duration::from_millis(10));
        let mut walls = Vec::new();
        for i in 0..rounds * 2 {
            let version = if i % 2 == 0 { "1.1.0" } else { "1.0.0" };
            let started = std::time::Instant::now();
            let (t, log) = w.finished(w.deploy(version).await).await;
            walls.push(started.elapsed());
            assert_eq!(t["status"], "succeeded", "{log}");
            if std::env::var_os("BENCH_LOG").is_some() && i == 0 {
                println!("--- {name}: the log of its first measured deploy\n{log}");
            }
        }
        let report = probe.finish().await;
        let gap = ports.iter().map(|p| report.longest_gap(*p)).max().unwrap_or_default();
        let wall = walls.iter().sum::<Duration>() / walls.len() as u32;
        rows.push((*name, report.samples.len(), report.failures().len(), gap, wall, report.rate()));
        let _ = w.app.stop().await;
    }
    let recreate_wall = rows[0].4.as_secs_f64();
    println!("\nrollout benchmark: a busybox web component on 3 hosts, {} deploys each, drain {drain}", rounds * 2);
    println!(
        "{:<11} {:>9} {:>7} {:>12} {:>12} {:>12}",
        "strategy", "requests", "failed", "longest gap", "deploy wall", "vs recreate"
    );
    for (name, requests, failed, gap, wall, rate) in &rows {
        println!(
            "{name:<11} {requests:>9} {failed:>7} {:>10.0}ms {:>11.2}s {:>11.2}x   ({rate:.0} req/s)",
            gap.as_secs_f64() * 1000.0,
            wall.as_secs_f64(),
            wall.as_secs_f64() / recreate_wall
        );
    }
}

/// `web` on 3 hosts, each on its own published port, with `rollout`, behind a proxy on each host.
fn three_hosts(w: &World, ports: &[u16], rollout: &str) -> String {
    let reg = &registry().address;
    let overrides: String = (0..3)
        .map(|i| {
            format!(
                "      h{i}:\n        web: {{ name: \"{{env}}-{{host}}-{{component}}\", ports: [\"{}:8080\"] }}\n",
                ports[i]
            )
        })
        .collect();
    format!(
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
    rollout: {rollout}
environments:
  {env}:
    tier: test
    proxy: {{ image: {proxy} }}
    hosts:
      - {h0}
      - {h1}
      - {h2}
    overrides:
{overrides}"#,
        env = w.env,
        proxy = registry().haproxy(),
        h0 = w.host(0),
        h1 = w.host(1),
        h2 = w.host(2),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_failure_switches_back_to_the_kept_container() {
    crate::support::limit(a_later_failure_switches_back_to_the_kept_container_body()).await
}

async fn a_later_failure_switches_back_to_the_kept_container_body() {
    let w = World::new(1).await;
    let p = published_ports(2);
    let web = p[0];
    let reg = &registry().address;
    // `late` starts after web (in the next wave); its 1.2.0 never gets healthy.
    let late = format!(
        "  late:\n    project: shop/late\n    image: {reg}/tao-test/web\n    depends_on: [web]\n    health:\n      http: {{ port: 8080, path: /health }}\n      timeout: 4s\n"
    );
    let yaml = catalog(&w, web, p[1])
        .replace("components: [web, plain]", "components: [web, late]")
        .replace("  plain:\n", &format!("{late}  plain:\n"));
    w.apply(&yaml).await;
    w.release("1.0.0", json!({ "web": "1.0.0", "late": "1.0.0" })).await;
    w.release("1.1.0", json!({ "web": "1.1.0", "late": "1.2.0" })).await;
    let (t, log) = w.finished(w.deploy("1.0.0").await).await;
    assert_eq!(t["status"], "succeeded", "{log}");
    let base = format!("{}-web", w.env);
    let probe = prober::start(&[web], 6, Duration::from_millis(10));

    let (t, log) = w.finished(w.deploy("1.1.0").await).await;
    assert_eq!(t["status"], "failed", "{log}");
    let at = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("{needle:?} in the log:\n{log}"));
    assert!(at("switched web on h0 to 1.1.0") < at("rolling back"), "{log}");
    assert!(
        at("rolling back") < at(&format!("starting the kept container {base}-blue (web 1.0.0)"))
            && at(&format!("starting the kept container {base}-blue")) < at("switched web on h0 to 1.0.0"),
        "a switch back to the kept container, not a cold start:\n{log}"
    );
    assert!(log.contains(&format!("rolled back: switched back: {base}-blue runs web 1.0.0 again")), "{log}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = probe.finish().await;
    println!("switch back: {}", report.summary());
    assert!(report.failures().is_empty(), "{}", report.summary());
    assert_eq!(report.versions(web), ["1.0.0", "1.1.0", "1.0.0"]);
    assert_eq!(w.containers("web"), vec![format!("{base}-blue")], "the new colour went with the rollback");
    let _ = w.app.stop().await;
}
