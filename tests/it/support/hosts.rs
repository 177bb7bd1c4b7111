//! Real SSH hosts for tests: OpenSSH `sshd` instances on 127.0.0.x, each with its own host key, all
//! logging in the dedicated deploy user `tao-deploy` with one generated ed25519 client key.
//!
//! System setup (idempotent, once per process): `/run/sshd`, the user `tao-deploy` with `/bin/sh`, in the
//! `docker` group, unlocked for key logins (`usermod -p '*'`). Root's configuration is never touched: each
//! sshd runs with its own config file in a temp dir and is killed on drop. With [`TestHosts::logged`],
//! sshd's `ForceCommand` points at a wrapper that appends each `$SSH_ORIGINAL_COMMAND` to a log before
//! running it with `/bin/sh -c`, so tests can see exactly what reached the remote shell.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use tao::deploy::ssh::{SshOptions, SshTarget};

/// The deploy user on test hosts.
pub const DEPLOY_USER: &str = "tao-deploy";

const SSHD: &str = "/usr/sbin/sshd";

/// Panics with what to install when a binary is missing.
pub fn require(path: &str, package: &str) {
    if !Path::new(path).exists() {
        panic!("{path} is missing: these tests use real parts. Install it with `apt-get install {package}` (scripts/test.sh does)");
    }
}

fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("run sh")
}

/// Creates the deploy user and sshd's privilege separation directory, once.
fn system_setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        require(SSHD, "openssh-server");
        require("/usr/bin/ssh", "openssh-client");
        require("/usr/bin/ssh-keygen", "openssh-client");
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd (tests need root)");
        let user = DEPLOY_USER;
        if !sh(&format!("id -u {user}")).status.success() {
            let out = sh(&format!("useradd --create-home --shell /bin/sh --groups docker {user}"));
            // Another test process may have created it meanwhile.
            let exists = sh(&format!("id -u {user}")).status.success();
            assert!(exists, "useradd {user}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let out = sh(&format!("usermod -p '*' -aG docker -s /bin/sh {user}"));
        assert!(out.status.success(), "usermod {user}: {}", String::from_utf8_lossy(&out.stderr));
    });
}

/// One running sshd.
pub struct TestHost {
    /// 127.0.0.x
    pub address: Ipv4Addr,
    /// Its port.
    pub port: u16,
    child: Child,
}

impl TestHost {
    /// The processes under this sshd's listener: the privileged and the unprivileged half of each
    /// connection, and what they run.
    fn sessions(&self) -> Vec<u32> {
        let mut parents = std::collections::BTreeMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // `pid (comm) state ppid …`: the fields after the last ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.insert(pid, ppid);
            }
        }
        let listener = self.child.id();
        let descends = |mut pid: u32| {
            while let Some(&ppid) = parents.get(&pid) {
                if ppid == listener {
                    return true;
                }
                pid = ppid;
            }
            false
        };
        parents.keys().copied().filter(|&p| descends(p)).collect()
    }

    fn signal(pids: &[u32], signal: &str) {
        for pid in pids {
            let _ = Command::new("kill").args([signal, &pid.to_string()]).status();
        }
    }

    /// Kills every session process of this sshd, as a host that drops its connections does; the
    /// listener keeps accepting new ones. Returns how many processes it killed.
    pub fn kill_sessions(&self) -> usize {
        let doomed = self.sessions();
        Self::signal(&doomed, "-KILL");
        doomed.len()
    }

    /// Stops (`SIGSTOP`) or continues (`SIGCONT`) the listener and every session: a host that stops
    /// answering without closing anything (its TCP connections stay open, new ones are accepted by the
    /// kernel and never served).
    pub fn pause(&self, paused: bool) {
        let mut all = self.sessions();
        all.push(self.child.id());
        Self::signal(&all, if paused { "-STOP" } else { "-CONT" });
    }
}

/// Several sshd "hosts" and the files to reach them.
pub struct TestHosts {
    /// The running instances.
    pub hosts: Vec<TestHost>,
    /// Client private key.
    pub key: PathBuf,
    /// known_hosts listing every instance.
    pub known_hosts: PathBuf,
    /// Where commands are logged (hosts started with [`TestHosts::logged`]).
    pub log: Option<PathBuf>,
    /// Control sockets of sessions made with [`TestHosts::options`].
    pub control_dir: PathBuf,
    dir: tempfile::TempDir,
}

static NEXT_ADDRESS: AtomicU8 = AtomicU8::new(0);

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "tao-test", "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
}

fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0)).expect("bind a free port").local_addr().unwrap().port()
}

/// A fresh 127.0.0.x address per instance, so hosts differ by address as real ones do.
fn next_address() -> Ipv4Addr {
    let n = u32::from(NEXT_ADDRESS.fetch_add(1, Ordering::Relaxed));
    let offset = std::process::id() % 50 * 5;
    Ipv4Addr::new(127, 0, 0, (2 + (offset + n) % 250) as u8)
}

impl TestHosts {
    /// Starts `n` sshd instances.
    pub fn start(n: usize) -> TestHosts {
        Self::start_with(n, false)
    }

    /// Starts `n` sshd instances whose deploy user logs every command it is given.
    pub fn logged(n: usize) -> TestHosts {
        Self::start_with(n, true)
    }

    fn start_with(n: usize, logged: bool) -> TestHosts {
        system_setup();
        let dir = tempfile::Builder::new().prefix("tao-hosts").tempdir().expect("temp dir");
        let d = dir.path();
        // sshd reads authorized_keys and runs the wrapper as the deploy user.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = d.join("id_ed25519");
        keygen(&key);
        std::fs::copy(d.join("id_ed25519.pub"), d.join("authorized_keys")).unwrap();
        std::fs::set_permissions(d.join("authorized_keys"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = logged.then(|| {
            let log = d.join("commands.log");
            std::fs::write(&log, "").unwrap();
            std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
            let wrapper = d.join("logshell");
            let script = format!(
                "#!/bin/sh\nprintf '%s\\n--- end of command ---\\n' \"$SSH_ORIGINAL_COMMAND\" >> {}\nexec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n",
                log.display()
            );
            std::fs::write(&wrapper, script).unwrap();
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
            log
        });
        let mut known = String::new();
        let mut hosts = Vec::new();
        for i in 0..n {
            let address = next_address();
            let port = free_port(address);
            let host_key = d.join(format!("host_{i}"));
            keygen(&host_key);
            let public = std::fs::read_to_string(d.join(format!("host_{i}.pub"))).unwrap();
            let mut fields = public.split_whitespace();
            known.push_str(&format!("[{address}]:{port} {} {}\n", fields.next().unwrap(), fields.next().unwrap()));
            let mut config = format!(
                "ListenAddress {address}:{port}\nHostKey {hk}\nPidFile {d}/sshd_{i}.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin no\nAllowUsers {DEPLOY_USER}\nMaxSessions 200\n\
                 MaxStartups 200:30:400\nLogLevel ERROR\nPrintMotd no\nAcceptEnv none\n",
                hk = host_key.display(),
                d = d.display(),
            );
            if let Some(log) = &log {
                config.push_str(&format!("ForceCommand {}\n", log.with_file_name("logshell").display()));
            }
            let config_file = d.join(format!("sshd_{i}.conf"));
            std::fs::write(&config_file, config).unwrap();
            let err = std::fs::File::create(d.join(format!("sshd_{i}.err"))).unwrap();
            let child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config_file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
                .expect("start sshd");
            hosts.push(TestHost { address, port, child });
        }
        let known_hosts = d.join("known_hosts");
        std::fs::write(&known_hosts, known).unwrap();
        let control_dir = d.join("ctl");
        let mut this = TestHosts { hosts, key, known_hosts, log, control_dir, dir };
        this.wait_listening();
        this
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for (i, h) in self.hosts.iter_mut().enumerate() {
            while TcpStream::connect((h.address, h.port)).is_err() {
                if let Ok(Some(status)) = h.child.try_wait() {
                    let err =
                        std::fs::read_to_string(self.dir.path().join(format!("sshd_{i}.err"))).unwrap_or_default();
                    panic!("sshd {i} exited ({status}): {err}");
                }
                assert!(Instant::now() < deadline, "sshd on {}:{} did not start listening", h.address, h.port);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The SSH target of host `i`.
    pub fn target(&self, i: usize) -> SshTarget {
        SshTarget::new(DEPLOY_USER, &self.hosts[i].address.to_string(), self.hosts[i].port).unwrap()
    }

    /// `user@host:port` of host `i`.
    pub fn spec(&self, i: usize) -> String {
        self.target(i).to_string()
    }

    /// Session options: the client key, this known_hosts, control sockets in the temp dir.
    pub fn options(&self) -> SshOptions {
        let mut o = SshOptions::new(Some(self.key.clone()), Some(self.known_hosts.clone()));
        o.control_dir = self.control_dir.clone();
        o
    }

    /// Everything the logging wrapper recorded so far.
    pub fn logged_commands(&self) -> String {
        std::fs::read_to_string(self.log.as_ref().expect("hosts started with TestHosts::logged")).unwrap()
    }

    /// The temp dir holding keys, configs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestHosts {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            let _ = h.child.kill();
            let _ = h.child.wait();
        }
    }
}

/// Processes whose command line mentions `needle` (e.g. ssh masters using a control directory).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(needle) {
                found.push(pid);
            }
        }
    }
    found
}
