//! The deploy execution layer against real parts: sshd hosts on 127.0.0.x, the machine's Docker engine,
//! a local registry with busybox images (see `support::hosts` and `support::registry`).
//!
//! Hosts share one Docker engine, so every container name carries a random per-test prefix and every
//! published port is a free one; containers are removed on drop.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tao::catalog::{HealthCheck, PortMapping};
use tao::config::Secret;
use tao::deploy::docker::{ContainerSpec, ImageRef, RemoteDocker};
use tao::deploy::health::{wait_healthy, HealthError};
use tao::deploy::ssh::{clean_stale_control_dirs, SshError, SshSession};

use crate::support::hosts::{processes_mentioning, TestHosts};
use crate::support::registry::registry;

const TAO: &str = env!("CARGO_BIN_EXE_tao");
const T: Duration = Duration::from_secs(30);

fn prefix() -> String {
    use rand::Rng;
    format!("t{:08x}-", rand::thread_rng().gen::<u32>())
}

fn free_port() -> u16 {
    crate::support::published_ports(1)[0]
}

/// Removes the named containers when the test ends, however it ends.
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("docker").args(["rm", "-f", name]).output();
        }
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn tao(hosts: &TestHosts, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(TAO);
    cmd.args(args)
        .env_remove("TAO_SSH_IDENTITY")
        .env_remove("TAO_SSH_KNOWN_HOSTS")
        .env_remove("TAO_SSH_KEX_ALGORITHMS")
        .env("TAO_SSH_CONTROL_DIR", &hosts.control_dir)
        .args(["--identity", hosts.key.to_str().unwrap(), "--known-hosts", hosts.known_hosts.to_str().unwrap()]);
    cmd.output().await.expect("run tao")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn http_get(port: u16) -> Option<String> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/health")).await.ok()?;
    r.status().is_success().then_some(())?;
    r.text().await.ok()
}

#[tokio::test]
async fn sessions_run_commands_on_two_hosts_with_strict_host_keys() {
    crate::support::limit(sessions_run_commands_on_two_hosts_with_strict_host_keys_body()).await
}

async fn sessions_run_commands_on_two_hosts_with_strict_host_keys_body() {
    let hosts = TestHosts::start(2);
    for i in 0..2 {
        let mut opts = hosts.options();
        // The second host also checks a key exchange preference (passed through a generated ssh config).
        opts.kex_algorithms = (i == 1).then(|| "^curve25519-sha256".to_string());
        let s = SshSession::connect(&hosts.target(i), &opts).await.expect("connect");
        let out = s.run(&["sh", "-c", "echo \"$(id -un) $SSH_CONNECTION\""], None, T).await.unwrap();
        assert!(out.ok(), "{out:?}");
        let fields: Vec<&str> = out.stdout.split_whitespace().collect();
        assert_eq!(fields[0], "tao-deploy");
        assert_eq!(fields[3], hosts.hosts[i].address.to_string(), "{out:?}");
        // Arguments arrive byte for byte, whatever they hold; stdin too.
        let hostile = "it's \"$(id)\" `id` ; rm -rf / \n$HOME";
        assert_eq!(s.run(&["printf", "%s", hostile], None, T).await.unwrap().stdout, hostile);
        assert_eq!(s.run(&["cat"], Some(hostile.as_bytes()), T).await.unwrap().stdout, hostile);
        let failed = s.run(&["sh", "-c", "echo nope >&2; exit 7"], None, T).await.unwrap();
        assert_eq!((failed.status, failed.last_error_line().as_str()), (Some(7), "nope"));
        let file = format!("up-{i}/it's $(id).conf");
        assert!(s.upload(&file, hostile.as_bytes(), 0o640, T).await.unwrap().ok());
        let back = s.run(&["sh", "-c", "stat -c %a \"$1\" && cat \"$1\"", "sh", &file], None, T).await.unwrap();
        assert_eq!(back.stdout, format!("640\n{hostile}"), "{back:?}");
        let slow = s.run(&["sleep", "5"], None, Duration::from_millis(300)).await;
        assert!(matches!(slow, Err(SshError::Timeout { .. })), "{slow:?}");
        s.close().await.unwrap();
    }
}

#[tokio::test]
async fn unknown_or_changed_host_keys_are_refused_with_a_clear_message() {
    crate::support::limit(unknown_or_changed_host_keys_are_refused_with_a_clear_message_body()).await
}

async fn unknown_or_changed_host_keys_are_refused_with_a_clear_message_body() {
    let hosts = TestHosts::start(2);
    let mut opts = hosts.options();
    opts.known_hosts = Some(hosts.dir().join("empty_known_hosts"));
    std::fs::write(opts.known_hosts.as_ref().unwrap(), "").unwrap();
    let err = SshSession::connect(&hosts.target(0), &opts).await.expect_err("unknown key accepted");
    let message = err.to_string();
    assert!(matches!(err, SshError::HostKey { .. }), "{err:?}");
    assert!(message.contains(&hosts.spec(0)) && message.contains("ssh-keyscan"), "{message}");

    // Host 1's key listed for host 0: a changed key.
    let known = std::fs::read_to_string(&hosts.known_hosts).unwrap();
    let lines: Vec<&str> = known.lines().collect();
    let key1 = lines[1].split_once(' ').unwrap().1;
    let host0 = lines[0].split_once(' ').unwrap().0;
    std::fs::write(opts.known_hosts.as_ref().unwrap(), format!("{host0} {key1}\n")).unwrap();
    let err = SshSession::connect(&hosts.target(0), &opts).await.expect_err("changed key accepted");
    assert!(matches!(err, SshError::HostKey { .. }), "{err:?}");
}

#[tokio::test]
async fn one_master_connection_per_host_serves_every_command() {
    crate::support::limit(one_master_connection_per_host_serves_every_command_body()).await
}

async fn one_master_connection_per_host_serves_every_command_body() {
    let hosts = TestHosts::start(1);
    let s = std::sync::Arc::new(SshSession::connect(&hosts.target(0), &hosts.options()).await.unwrap());
    let socket = s.control_socket().to_path_buf();
    assert!(socket.starts_with(&hosts.control_dir), "{}", socket.display());
    let runs: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.run(&["echo", &i.to_string()], None, T).await.unwrap() })
        })
        .collect();
    for (i, r) in runs.into_iter().enumerate() {
        assert_eq!(r.await.unwrap().stdout, format!("{i}\n"));
    }
    let ssh_processes = processes_mentioning(hosts.control_dir.to_str().unwrap());
    assert_eq!(ssh_processes.len(), 1, "one ssh master for 20 commands, found {ssh_processes:?}");
    std::sync::Arc::try_unwrap(s).unwrap().close().await.unwrap();
    wait_until("the master exits after close", || processes_mentioning(hosts.control_dir.to_str().unwrap()).is_empty());
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_killed_tao_leaves_no_master_behind() {
    crate::support::limit(a_killed_tao_leaves_no_master_behind_body()).await
}

async fn a_killed_tao_leaves_no_master_behind_body() {
    let hosts = TestHosts::start(1);
    let ctl = hosts.control_dir.to_str().unwrap().to_string();
    let spawn = |idle: &str| {
        Command::new(TAO)
            .args(["ssh-fanout", "--host", &hosts.spec(0), "--cmd", "sleep 600", "--ssh-idle-secs", idle])
            .args(["--identity", hosts.key.to_str().unwrap(), "--known-hosts", hosts.known_hosts.to_str().unwrap()])
            .env("TAO_SSH_CONTROL_DIR", &hosts.control_dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let master_of = |pid: u32| processes_mentioning(&format!("{ctl}/tao-{pid}/"));

    // Killed with a short idle timeout: its master exits by itself.
    let mut child = spawn("2");
    let pid = child.id();
    wait_until("the first master runs", || !master_of(pid).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until("the orphaned master idles out", || master_of(pid).is_empty());

    // Killed with a long idle timeout: the next start cleans it up.
    let mut child = spawn("600");
    let pid = child.id();
    wait_until("the second master runs", || !master_of(pid).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!master_of(pid).is_empty(), "the master outlives its Tao until cleaned");
    clean_stale_control_dirs(&hosts.control_dir);
    wait_until("the stale master is gone", || master_of(pid).is_empty());
    assert!(!hosts.control_dir.join(format!("tao-{pid}")).exists());
}

#[tokio::test]
async fn deploy_images_pulls_serves_and_replaces() {
    crate::support::limit(deploy_images_pulls_serves_and_replaces_body()).await
}

async fn deploy_images_pulls_serves_and_replaces_body() {
    let reg = registry();
    let hosts = TestHosts::start(1);
    let p = prefix();
    let _c = Containers(vec![format!("{p}web")]);
    let port = free_port();
    let publish = format!("web=127.0.0.1:{port}:8080");
    for version in ["1.0.0", "1.1.0"] {
        let image = reg.web(version);
        let out = tao(
            &hosts,
            &["deploy-images", "--host", &hosts.spec(0), "-c", &image, "-p", &publish, "--name-prefix", &p],
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            text(&out.stdout).contains(&format!("{image} is healthy as container {p}web (sha256:")),
            "{}",
            text(&out.stdout)
        );
        assert_eq!(http_get(port).await.as_deref(), Some(version));
        let labels = docker(&["inspect", "--format", "{{index .Config.Labels \"tao.image\"}}", &format!("{p}web")]);
        assert_eq!(labels.trim(), image);
    }
    let running = docker(&["ps", "-a", "--filter", &format!("name=^{p}"), "--format", "{{.Names}}"]);
    assert_eq!(running.trim(), format!("{p}web"), "the old container was replaced, not kept");
}

#[tokio::test]
async fn a_broken_image_fails_with_its_logs() {
    crate::support::limit(a_broken_image_fails_with_its_logs_body()).await
}

async fn a_broken_image_fails_with_its_logs_body() {
    let reg = registry();
    let hosts = TestHosts::start(1);
    let p = prefix();
    let _c = Containers(vec![format!("{p}broken"), format!("{p}web")]);
    let (broken, web) = (reg.broken(), reg.web("1.0.0"));
    let out =
        tao(&hosts, &["deploy-images", "--host", &hosts.spec(0), "-c", &broken, "-c", &web, "--name-prefix", &p]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{broken} (container {p}broken) on {} failed at health check", hosts.spec(0))),
        "{err}"
    );
    assert!(err.contains("broken 1.0.0: cannot open /etc/broken.conf"), "the logs tail is shown: {err}");
    let web_exists = docker(&["ps", "-a", "--filter", &format!("name=^{p}web$"), "--format", "{{.Names}}"]);
    assert_eq!(web_exists.trim(), "", "deploy-images stops at the first failure");
}

#[tokio::test]
async fn hostile_image_refs_are_rejected_before_any_connection() {
    crate::support::limit(hostile_image_refs_are_rejected_before_any_connection_body()).await
}

async fn hostile_image_refs_are_rejected_before_any_connection_body() {
    let hosts = TestHosts::logged(1);
    for bad in ["127.0.0.1:5000/a/web:1;id", "127.0.0.1:5000/a/web:$(id)", "127.0.0.1:5000/a/`id`:1", "a/web:1 -v /:/h"]
    {
        let out = tao(&hosts, &["deploy-images", "--host", &hosts.spec(0), "-c", bad]).await;
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("invalid image"), "{}", text(&out.stderr));
    }
    let out = tao(&hosts, &["deploy-images", "--host", "tao-deploy@127.0.0.1;id", "-c", "a/web:1"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out =
        tao(&hosts, &["deploy-images", "--host", &hosts.spec(0), "-c", "a/web:1", "--name-prefix", "x;id #"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("invalid container name \"x;id #web\""), "{}", text(&out.stderr));
    assert_eq!(hosts.logged_commands(), "", "nothing reached the remote shell");
    // The logging shell does log what it is given.
    let s = SshSession::connect(&hosts.target(0), &hosts.options()).await.unwrap();
    assert!(s.run(&["true"], None, T).await.unwrap().ok());
    assert_eq!(hosts.logged_commands(), "true\n--- end of command ---\n");
}

#[tokio::test]
async fn hostile_env_arrives_byte_for_byte_and_secrets_stay_off_command_lines() {
    crate::support::limit(hostile_env_arrives_byte_for_byte_and_secrets_stay_off_command_lines_body()).await
}

async fn hostile_env_arrives_byte_for_byte_and_secrets_stay_off_command_lines_body() {
    let reg = registry();
    let hosts = TestHosts::logged(1);
    let name = format!("{}web", prefix());
    let _c = Containers(vec![name.clone()]);
    let s = SshSession::connect(&hosts.target(0), &hosts.options()).await.unwrap();
    let docker_remote = RemoteDocker::new(&s);
    let image = ImageRef::parse(&reg.web("1.0.0")).unwrap();
    let digest = docker_remote.pull(&image).await.unwrap();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");
    let hostile = "it's \"quoted\" $(id) `id` $HOME \\ ;|&\nsecond line\ttab ";
    let secret = "s3cret-Value-7f3a";
    let mut spec = ContainerSpec::new(name.clone(), image);
    spec.env.insert("HOSTILE".into(), hostile.into());
    spec.env.insert("EMPTY".into(), String::new());
    spec.secret_env.insert("DB_PASSWORD".into(), Secret::new(secret));
    spec.labels = BTreeMap::from([("tao.digest".to_string(), digest.clone())]);
    let id = docker_remote.replace(&spec).await.unwrap();
    assert_eq!(id.len(), 64, "{id}");
    let env: Vec<String> =
        serde_json::from_str(&docker(&["inspect", "--format", "{{json .Config.Env}}", &name])).unwrap();
    assert!(env.contains(&format!("HOSTILE={hostile}")), "{env:?}");
    assert!(env.contains(&"EMPTY=".to_string()), "{env:?}");
    assert!(env.contains(&format!("DB_PASSWORD={secret}")), "{env:?}");
    assert_eq!(docker(&["exec", &name, "sh", "-c", "printf %s \"$HOSTILE\""]), hostile);

    let state = docker_remote.inspect(&name).await.unwrap().expect("exists");
    assert_eq!((state.id.as_str(), state.running), (id.as_str(), true));
    assert_eq!(state.labels.get("tao.digest"), Some(&digest));
    assert!(docker_remote.inspect("no-such-container-x").await.unwrap().is_none());

    let log = hosts.logged_commands();
    assert!(log.contains("-e EMPTY -e HOSTILE -e DB_PASSWORD"), "{log}");
    assert!(!log.contains(secret), "the secret reached a command line: {log}");
    assert!(!log.contains("second line"), "env values stay off command lines: {log}");
    let left = s.run(&["sh", "-c", "ls -A .tao/env"], None, T).await.unwrap();
    assert_eq!(left.stdout.trim(), "", "no env file is left on the host");
    assert!(docker_remote.remove(&name).await.unwrap());
    assert!(!docker_remote.remove(&name).await.unwrap());
}

#[tokio::test]
async fn health_checks_pass_on_healthy_containers_and_fail_with_the_last_error() {
    crate::support::limit(health_checks_pass_on_healthy_containers_and_fail_with_the_last_error_body()).await
}

async fn health_checks_pass_on_healthy_containers_and_fail_with_the_last_error_body() {
    let reg = registry();
    let hosts = TestHosts::start(1);
    let name = format!("{}web", prefix());
    let _c = Containers(vec![name.clone()]);
    let s = SshSession::connect(&hosts.target(0), &hosts.options()).await.unwrap();
    let remote = RemoteDocker::new(&s);
    let image = ImageRef::parse(&reg.web("1.1.0")).unwrap();
    remote.pull(&image).await.unwrap();
    let port = free_port();
    let mut spec = ContainerSpec::new(name.clone(), image);
    spec.ports.push(PortMapping::parse(&format!("127.0.0.1:{port}:8080")).unwrap());
    remote.replace(&spec).await.unwrap();

    let http = HealthCheck::Http { port: 8080, path: "/health".into() };
    wait_healthy(&s, &name, Some(port), &http, T).await.expect("http from the host");
    wait_healthy(&s, &name, None, &http, T).await.expect("http inside the container");
    wait_healthy(&s, &name, Some(port), &HealthCheck::Tcp { port: 8080 }, T).await.expect("tcp");
    let cmd = HealthCheck::Command("test \"$(cat /www/health)\" = 1.1.0".into());
    wait_healthy(&s, &name, None, &cmd, T).await.expect("command");

    let missing = HealthCheck::Http { port: 8080, path: "/missing".into() };
    let err = wait_healthy(&s, &name, Some(port), &missing, Duration::from_secs(2)).await.expect_err("404 passed");
    let HealthError::Unhealthy { last_error, reason, .. } = &err else { panic!("{err:?}") };
    assert!(last_error.contains("404"), "{last_error}");
    assert!(reason.contains("did not pass within"), "{reason}");

    // A container that stops fails at once, not after the timeout.
    docker(&["stop", &name]);
    let started = Instant::now();
    let err = wait_healthy(&s, &name, Some(port), &http, Duration::from_secs(60)).await.expect_err("stopped passed");
    assert!(started.elapsed() < Duration::from_secs(20), "{err}");
    assert!(err.to_string().contains("is exited"), "{err}");
}
