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

/// A PostgreSQL cluster of the test's own on a free loopback port (faults are injected into it, never
/// into the shared test server): Debian's binaries, trust auth, data in a temp dir, stopped on drop.
struct PrivatePg {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePg {
    fn start() -> PrivatePg {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (scripts/test.sh)")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("an initdb");
        let dir = tempfile::Builder::new().prefix("tao-pg").tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pg = PrivatePg { bin, dir, port };
        let data = pg.data();
        Command::new("chown").args(["postgres:"]).arg(pg.dir.path()).status().unwrap();
        pg.as_postgres(&[pg.tool("initdb").as_str(), "-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        let options = format!("-h 127.0.0.1 -p {port} -k /tmp -c fsync=off");
        let log = format!("{data}/server.log");
        pg.as_postgres(&[
            pg.tool("pg_ctl").as_str(),
            "-D",
            &data,
            "-l",
            &log,
            "-w",
            "-t",
            "60",
            "-o",
            &options,
            "start",
        ]);
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn tool(&self, name: &str) -> String {
        self.bin.join(name).display().to_string()
    }

    fn as_postgres(&self, argv: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(argv)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{argv:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl restart -m fast`: every connection is cut, the server comes back on the same port.
    fn restart(&self) {
        let data = self.data();
        // `-l` as at start: a server started without it would hold this command's output pipe open.
        let log = format!("{data}/server.log");
        let argv = [self.tool("pg_ctl"), "-D".into(), data, "-l".into(), log, "-w".into(), "-t".into(), "60".into()];
        let argv: Vec<&str> = argv.iter().map(String::as_str).chain(["-m", "fast", "restart"]).collect();
        self.as_postgres(&argv);
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.data();
        let stop = [self.tool("pg_ctl"), "-D".into(), data, "-m".into(), "immediate".into(), "stop".into()];
        let _ = Command::new("runuser").args(["-u", "postgres", "--"]).args(&stop).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_loses_no_acknowledged_webhook_and_wake_ups_resume() {
    crate::support::limit(a_postgresql_restart_loses_no_acknowledged_webhook_and_wake_ups_resume_body()).await
}

async fn a_postgresql_restart_loses_no_acknowledged_webhook_and_wake_ups_resume_body() {
    use crate::queue::{deploy, next_start, wait_status, Gate};
    use crate::support::gitlab::{send_webhook, webhook_fixture};
    use crate::support::{monitor_release, spawn_app_on};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let pg = tokio::task::block_in_place(PrivatePg::start);
    let url = format!("{}?{}", pg.url(), crate::support::PG_TEST_OPTIONS);
    let secret =
        |s: &mut tao::config::Settings| s.gitlab_webhook_secrets = vec![tao::config::Secret::new("hook-secret")];
    // Replica A runs deploys; replica B serves the API only (0 workers) and takes the webhooks.
    let files = tempfile::tempdir().unwrap();
    let catalog = files.path().join("tao.yaml");
    std::fs::write(&catalog, include_str!("../../examples/tao.yaml")).unwrap();
    let (gate, mut started) = Gate::new();
    let a = spawn_app_on(
        &url,
        |s| {
            secret(s);
            s.catalog = Some(catalog);
            s.workers = 1;
            s.drain_timeout = Duration::from_millis(200);
        },
        gate.factory(),
    )
    .await;
    let (idle, _never) = Gate::new();
    let b = spawn_app_on(
        &url,
        |s| {
            secret(s);
            s.workers = 0;
        },
        idle.factory(),
    )
    .await;
    assert_eq!(b.create_release(&b.deployer, monitor_release("1.0.0", &[])).await.status, 201);

    // Webhooks flow the whole time; a 5xx during the restart is an answer GitLab retries.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let hook = format!("{}/api/v1/gitlab/webhook", b.base);
    let sender = {
        let (stop, acked) = (stop.clone(), acked.clone());
        tokio::spawn(async move {
            let body = webhook_fixture("push.json");
            let mut others = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match send_webhook(&hook, "hook-secret", "Push Hook", &body, None, "hook-1").await.status().as_u16() {
                    200 => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    s => others.push(s),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            others
        })
    };
    let (s, body) = deploy(&a, &a.deployer, "env-1", None).await;
    assert_eq!(s, 202, "{body}");
    let running = body["task_id"].as_i64().unwrap();
    assert_eq!(next_start(&mut started).await, running);
    tokio::time::sleep(Duration::from_millis(300)).await;

    tokio::task::block_in_place(|| pg.restart());
    // The running task finishes through the re-established connections.
    tokio::time::sleep(Duration::from_millis(500)).await;
    gate.finish(running, tao::deploy::queue::Outcome::Succeeded);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let t = a.get(&format!("/api/v1/tasks/{running}"), &a.reader).await;
        if t.status == 200 && matches!(t.body["status"].as_str(), Some("succeeded" | "interrupted")) {
            break t.body["status"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "the running task ends: {:?}", t.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("the task running across the restart ended {status}");

    // A task queued through B after the restart starts on A at once: A's LISTEN came back (A has no
    // lease to expire and nothing else to wake it).
    let (s, body) = deploy(&b, &b.deployer, "env-1", None).await;
    assert_eq!(s, 202, "{body}");
    let queued = body["task_id"].as_i64().unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(10), started.recv()).await;
    assert_eq!(woke.ok().flatten(), Some(queued), "LISTEN/NOTIFY wake-ups resumed after the restart");
    gate.finish(queued, tao::deploy::queue::Outcome::Succeeded);
    wait_status(&b, queued, "succeeded").await;

    stop.store(true, Ordering::Relaxed);
    let others = sender.await.unwrap();
    assert!(others.iter().all(|s| (500..600).contains(s)), "only 5xx while the server was down: {others:?}");
    let acked = acked.load(Ordering::Relaxed);
    let stored: i64 =
        tao::with_pool!(&b.pool, p => sqlx::query_scalar("SELECT COUNT(*) FROM gitlab_event").fetch_one(p).await)
            .unwrap();
    println!("{acked} webhooks acknowledged, {} refused with 5xx during the restart", others.len());
    assert_eq!(stored as usize, acked, "no acknowledged webhook was lost, none stored twice");
    let _ = b.stop().await;
    let _ = a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_stops_answering_mid_wave_fails_the_task_without_hanging() {
    crate::support::limit(a_host_that_stops_answering_mid_wave_fails_the_task_without_hanging_body()).await
}

async fn a_host_that_stops_answering_mid_wave_fails_the_task_without_hanging_body() {
    let w = World::new(1).await;
    let port = published_ports(1)[0];
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
    w.hosts.hosts[0].pause(true);
    let paused_at = std::time::Instant::now();
    // The ssh keepalive (15 s × 3) notices the silent host; the rollback's reconnect times out.
    let (t, log) = w.finished(id).await;
    let took = paused_at.elapsed();
    w.hosts.hosts[0].pause(false);
    assert_eq!(t["status"], "failed", "{log}");
    let error = t["error"].as_str().unwrap();
    assert!(error.starts_with("web on h0 failed") && error.contains(&w.hosts.spec(0)), "{error}");
    assert!(took < Duration::from_secs(110), "the task ended within the per-host limits: {took:?}\n{log}");
    println!("a silent host failed the task in {took:?}: {error}");
    let control = w.hosts.control_dir.display().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !processes_mentioning(&control).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "ssh masters left: {:?}", processes_mentioning(&control));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (t, log) = w.finished(w.deploy("1.1.0").await).await;
    assert_eq!(t["status"], "succeeded", "once the host answers again the next deploy works: {log}");
    assert_eq!(served(port).await.as_deref(), Some("1.1.0"));
    let _ = w.app.stop().await;
}
