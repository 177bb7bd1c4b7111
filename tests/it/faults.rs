//! Faults below the HTTP surface, injected for real while Tao deploys (issue #15): a registry that lost
//! a digest or went away, and a host that drops its SSH sessions in the middle of a command. Each must
//! end in a recorded, recoverable state: the task fails with its reason, what ran keeps running (or is
//! restored), nothing hangs, no ssh master is left behind, and the next deploy works.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::rollout::World;
use crate::support::hosts::processes_mentioning;
use crate::support::published_ports;
use crate::support::registry;

fn started_at(container: &str) -> String {
    let out = Command::new("docker").args(["inspect", "-f", "{{.State.StartedAt}}", container]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn served(port: u16) -> Option<String> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/health")).await.ok()?;
    r.status().is_success().then_some(())?;
    r.text().await.ok()
}

/// One component `web` of product `shop` on host h0, recreated, with `health`.
fn catalog(w: &World, registry: &str, port: u16, health: &str) -> String {
    format!(
        r#"products:
  shop:
    components: [web]
components:
  web:
    project: shop/web
    image: {registry}/tao-test/web
    container:
      ports: ["{port}:8080"]
    health:
{health}
    rollout: {{ strategy: recreate }}
environments:
  {env}:
    tier: test
    hosts:
      - {h0}
"#,
        env = w.env,
        h0 = w.host(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_digest_or_a_stopped_registry_fails_before_anything_is_replaced() {
    crate::support::limit(a_lost_digest_or_a_stopped_registry_fails_before_anything_is_replaced_body()).await
}

async fn a_lost_digest_or_a_stopped_registry_fails_before_anything_is_replaced_body() {
    let mut reg = tokio::task::block_in_place(|| registry::private(&["1.0.0", "1.1.0", "1.2.0"]));
    let w = World::new(1).await;
    let port = published_ports(1)[0];
    let health = "      http: { port: 8080, path: /health }\n      timeout: 10s";
    w.apply(&catalog(&w, &reg.address, port, health)).await;
    w.release("1.0.0", json!({ "web": "1.0.0" })).await;
    let v110 = w.release("1.1.0", json!({ "web": "1.1.0" })).await;
    w.release("1.2.0", json!({ "web": "1.2.0" })).await;
    let digest = v110["components"][0]["image_digest"].as_str().expect("the digest was pinned").to_string();
    let (t, log) = w.finished(w.deploy("1.0.0").await).await;
    assert_eq!(t["status"], "succeeded", "{log}");
    let container = format!("{}-web", w.env);
    let before = started_at(&container);

    // The digest 1.1.0 pinned is gone from the registry.
    reg.delete_manifest("tao-test/web", &digest);
    let (t, log) = w.finished(w.deploy("1.1.0").await).await;
    assert_eq!(t["status"], "failed", "{log}");
    let error = t["error"].as_str().unwrap();
    assert!(error.starts_with("web on h0 failed: `docker pull") && error.contains(&digest), "{error}");
    assert!(error.ends_with("nothing had been changed"), "{error}");
    assert_eq!(served(port).await.as_deref(), Some("1.0.0"), "the old version keeps serving");
    assert_eq!(started_at(&container), before, "the running container was never touched");

    // The registry is gone altogether.
    tokio::task::block_in_place(|| reg.stop());
    let (t, log) = w.finished(w.deploy("1.2.0").await).await;
    assert_eq!(t["status"], "failed", "{log}");
    let error = t["error"].as_str().unwrap();
    assert!(
        error.starts_with("web on h0 failed: `docker pull") && error.ends_with("nothing had been changed"),
        "{error}"
    );
    assert_eq!(served(port).await.as_deref(), Some("1.0.0"));
    assert_eq!(started_at(&container), before);
    let env = w.app.get(&format!("/api/v1/environments/{}", w.env), &w.app.reader).await.body;
    assert_eq!(env["releases"][0]["version"], "1.0.0", "the record still says 1.0.0: {env}");
    let _ = w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_dropping_its_ssh_sessions_mid_command_fails_the_step_and_the_next_deploy_works() {
    crate::support::limit(a_host_dropping_its_ssh_sessions_mid_command_fails_the_step_and_the_next_deploy_works_body())
        .await
}

async fn a_host_dropping_its_ssh_sessions_mid_command_fails_the_step_and_the_next_deploy_works_body() {
    let w = World::new(1).await;
    let port = published_ports(1)[0];
    // Each health probe runs for 3 s inside the container: a command in flight to cut.
    let health = "      command: \"sleep 3\"\n      timeout: 30s";
    w.apply(&catalog(&w, &registry::registry().address, port, health)).await;
    w.release("1.0.0", json!({ "web": "1.0.0" })).await;
    w.release("1.1.0", json!({ "web": "1.1.0" })).await;
    let (t, log) = w.finished(w.deploy("1.0.0").await).await;
    assert_eq!(t["status"], "succeeded", "{log}");

    let id = w.deploy("1.1.0").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = w.app.http.get(format!("{}/api/v1/tasks/{id}/log", w.app.base)).bearer_auth(&w.app.reader);
        if r.send().await.unwrap().text().await.unwrap().contains("waiting for the health check") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the task never waited for health");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = w.hosts.hosts[0].kill_sessions();
    assert!(killed > 0, "the host had sessions to drop");
    let (t, log) = w.finished(id).await;
    assert_eq!(t["status"], "failed", "{log}");
    let error = t["error"].as_str().unwrap();
    assert!(error.starts_with("web on h0 failed"), "{error}");
    assert!(error.contains(&w.hosts.spec(0)), "the error names the host: {error}");
    assert!(error.contains("dropped while running `docker"), "and the command: {error}");
    assert!(log.contains("rolled back: "), "the rollback reconnected and restored 1.0.0:\n{log}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let control = w.hosts.control_dir.display().to_string();
    while !processes_mentioning(&control).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "ssh masters left: {:?}", processes_mentioning(&control));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (t, log) = w.finished(w.deploy("1.1.0").await).await;
    assert_eq!(t["status"], "succeeded", "the next deploy works: {log}");
    assert_eq!(served(port).await.as_deref(), Some("1.1.0"));
    let _ = w.app.stop().await;
}

/// A small tmpfs mounted on a temp dir, unmounted when dropped: a disk that can fill up.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> SmallDisk {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount tmpfs (tests run as root): {}", String::from_utf8_lossy(&out.stderr));
        SmallDisk { path: dir.to_path_buf() }
    }

    /// Fills the file system with `filler` until a write fails for lack of space.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path.join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).and_then(|_| f.flush()).is_ok() {}
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.path.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_sqlite_refuses_webhooks_with_5xx_keeps_reads_and_recovers() {
    crate::support::limit(a_full_disk_under_sqlite_refuses_webhooks_with_5xx_keeps_reads_and_recovers_body()).await
}

async fn a_full_disk_under_sqlite_refuses_webhooks_with_5xx_keeps_reads_and_recovers_body() {
    use crate::support::gitlab::{send_webhook, webhook_fixture};
    use crate::support::{spawn_app_with, TestDb};
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path(), "16m");
    let app = spawn_app_with(TestDb::Sqlite(dir), |s| {
        s.gitlab_webhook_secrets = vec![tao::config::Secret::new("hook-secret")];
    })
    .await;
    let url = format!("{}/api/v1/gitlab/webhook", app.base);
    let body = webhook_fixture("push.json");
    let mut acked = 0;
    let deliver = || {
        let (url, body) = (url.clone(), body.clone());
        async move { send_webhook(&url, "hook-secret", "Push Hook", &body, None, "hook-1").await.status().as_u16() }
    };
    for _ in 0..5 {
        assert_eq!(deliver().await, 200);
        acked += 1;
    }

    disk.fill();
    // Free pages may take a few more; then every delivery is refused with a 5xx, so GitLab retries it.
    let mut refused = Vec::new();
    for _ in 0..500 {
        let status = deliver().await;
        if status == 200 {
            acked += 1;
            continue;
        }
        refused.push(status);
        if refused.len() == 5 {
            break;
        }
    }
    assert_eq!(refused.len(), 5, "deliveries were refused once the disk was full");
    assert!(refused.iter().all(|s| (500..600).contains(s)), "refused with 5xx: {refused:?}");
    let tasks = app.get("/api/v1/tasks", &app.reader).await;
    assert_eq!(tasks.status, 200, "reads keep working on a full disk: {:?}", tasks.body);
    let events = app.get("/api/v1/events?limit=1000", &app.reader).await;
    assert_eq!(events.status, 200, "{:?}", events.body);

    // Space returns: Tao recovers by itself.
    disk.free();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if deliver().await == 200 {
            acked += 1;
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "deliveries are accepted again once space returns");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = app.get("/api/v1/events?limit=1000", &app.reader).await;
    let stored = match &events.body {
        serde_json::Value::Array(a) => a.len(),
        serde_json::Value::String(lines) => lines.lines().filter(|l| !l.trim().is_empty()).count(),
        other => panic!("events: {other}"),
    };
    assert_eq!(stored, acked, "every acknowledged delivery is stored, nothing else: {:?}", events.body);
    let _ = app.stop().await;
}
