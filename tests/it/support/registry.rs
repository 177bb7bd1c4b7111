//! A real image registry for tests: Debian's `docker-registry` on a loopback port, with test images built
//! locally `FROM scratch` out of `busybox-static` and pushed there, once per test process.
//!
//! Images (`REG` = `127.0.0.1:<port>`):
//! - `REG/tao-test/web:1.0.0` and `:1.1.0`: `busybox httpd` on port 8080 serving `/health` with the version,
//!   with a Docker `HEALTHCHECK` fetching it;
//! - `REG/tao-test/web:1.2.0`: the same server, but without `/health` (it answers 404 there): it runs and
//!   never gets healthy;
//! - `REG/tao-test/broken:1.0.0`: prints `broken 1.0.0: cannot open /etc/broken.conf` and exits 3;
//! - `REG/tao-test/haproxy:2.6`: Debian's `haproxy` binary and the shared libraries `ldd` lists, laid out
//!   like the official image (`haproxy` on the `PATH`, configuration under `/usr/local/etc/haproxy`), for
//!   blue-green rollouts.
//!
//! Docker trusts plain-HTTP registries on 127.0.0.0/8 by default. The local tags are removed after the
//! push, so a deploy's `docker pull` really fetches from the registry. The registry lives as long as the
//! test process: it is started behind `sh` reading our stdin and stops when that pipe closes.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::hosts::require;

/// The registry and its images.
pub struct TestRegistry {
    /// `127.0.0.1:<port>`.
    pub address: String,
    _dir: tempfile::TempDir,
    _process: Child,
}

impl TestRegistry {
    /// `REG/tao-test/web:<version>`.
    pub fn web(&self, version: &str) -> String {
        format!("{}/tao-test/web:{version}", self.address)
    }

    /// `REG/tao-test/haproxy:2.6`.
    pub fn haproxy(&self) -> String {
        format!("{}/tao-test/haproxy:2.6", self.address)
    }

    /// `REG/tao-test/broken:1.0.0`.
    pub fn broken(&self) -> String {
        format!("{}/tao-test/broken:1.0.0", self.address)
    }
}

/// The process-wide registry, started and filled on first use.
pub fn registry() -> &'static TestRegistry {
    static REGISTRY: OnceLock<TestRegistry> = OnceLock::new();
    REGISTRY.get_or_init(start)
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start() -> TestRegistry {
    let registry = start_empty();
    for version in ["1.0.0", "1.1.0"] {
        build_and_push(&registry, "web", version, WEB);
    }
    build_and_push(&registry, "web", "1.2.0", SICK);
    build_and_push(&registry, "broken", "1.0.0", BROKEN);
    build_haproxy(&registry);
    registry
}

/// A registry of the test's own (faults are injected into it, never into the shared one) holding
/// `REG/tao-test/web` at `versions` (all the healthy server).
pub fn private(versions: &[&str]) -> TestRegistry {
    let registry = start_empty();
    for version in versions {
        build_and_push(&registry, "web", version, WEB);
    }
    registry
}

impl TestRegistry {
    /// Stops the registry process (it answers nothing afterwards).
    pub fn stop(&mut self) {
        drop(self._process.stdin.take());
        let _ = self._process.wait();
        let port: u16 = self.address.rsplit(':').next().unwrap().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "docker-registry on {} did not stop", self.address);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Deletes the manifest `digest` of `repo` (the registry is configured to allow it): the digest no
    /// longer exists there.
    pub fn delete_manifest(&self, repo: &str, digest: &str) {
        let url = format!("http://{}/v2/{repo}/manifests/{digest}", self.address);
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", &url])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "202",
            "DELETE {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn start_empty() -> TestRegistry {
    require("/usr/bin/docker-registry", "docker-registry");
    require("/bin/busybox", "busybox-static");
    require("/usr/bin/docker", "docker.io");
    let dir = tempfile::Builder::new().prefix("tao-registry").tempdir().expect("temp dir");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let process = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "/usr/bin/docker-registry serve {} >{}/registry.log 2>&1 & r=$!; read _; kill $r",
            config.display(),
            dir.path().display()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "docker-registry did not listen on {address}");
        std::thread::sleep(Duration::from_millis(20));
    }
    TestRegistry { address, _dir: dir, _process: process }
}

const WEB: &str = r#"FROM scratch
COPY bin /bin
COPY health /www/health
EXPOSE 8080
STOPSIGNAL SIGKILL
HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD ["/bin/wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
"#;

const SICK: &str = r#"FROM scratch
COPY bin /bin
COPY health /www/version
EXPOSE 8080
STOPSIGNAL SIGKILL
ENTRYPOINT ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
"#;

const HAPROXY: &str = r#"FROM scratch
COPY root /
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
"#;

/// `haproxy` and every shared library it links (as `ldd` resolves them, at the same paths), no shell.
fn build_haproxy(registry: &TestRegistry) {
    require("/usr/sbin/haproxy", "haproxy");
    let ctx = tempfile::tempdir().unwrap();
    let root = ctx.path().join("root");
    let copy = |path: &str| {
        let to = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(path, &to).unwrap_or_else(|e| panic!("copy {path}: {e}"));
    };
    copy("/usr/sbin/haproxy");
    let ldd = Command::new("ldd").arg("/usr/sbin/haproxy").output().expect("ldd");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
            copy(path);
        }
    }
    std::fs::create_dir_all(root.join("usr/local/etc/haproxy")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), HAPROXY).unwrap();
    let tag = registry.haproxy();
    run(Command::new("docker").args(["build", "-q", "-t", &tag]).arg(ctx.path()), &format!("docker build {tag}"));
    run(Command::new("docker").args(["push", &tag]), &format!("docker push {tag}"));
    run(Command::new("docker").args(["rmi", &tag]), &format!("docker rmi {tag}"));
}

const BROKEN: &str = r#"FROM scratch
COPY bin /bin
COPY health /www/health
ENTRYPOINT ["/bin/sh", "-c", "echo \"broken $(cat /www/health): cannot open /etc/broken.conf\" >&2; exit 3"]
"#;

fn build_and_push(registry: &TestRegistry, name: &str, version: &str, dockerfile: &str) {
    // busybox and a symlink per applet, made here: the build needs no RUN step (no build container).
    let ctx = tempfile::tempdir().unwrap();
    let bin = ctx.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|a| !a.is_empty() && *a != "busybox") {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    std::fs::write(ctx.path().join("health"), version).unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let tag = format!("{}/tao-test/{name}:{version}", registry.address);
    run(Command::new("docker").args(["build", "-q", "-t", &tag]).arg(ctx.path()), &format!("docker build {tag}"));
    run(Command::new("docker").args(["push", &tag]), &format!("docker push {tag}"));
    run(Command::new("docker").args(["rmi", &tag]), &format!("docker rmi {tag}"));
}
