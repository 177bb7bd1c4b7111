//! SSH sessions to deploy hosts: targets, one multiplexed master connection per host, quoting.
//!
//! Owns how Tao reaches a host: [`SshTarget`] (a validated `user@host[:port]`), [`SshSession`] (an OpenSSH
//! master connection driven through the `openssh` crate's native multiplexing, so a command costs a
//! channel on the existing connection and no `ssh` process), [`quote`] (POSIX single quoting of every
//! argument, since the remote side is always a shell) and the clean-up of control sockets left by killed
//! processes. Host keys are checked strictly against known_hosts, never accepted silently.
//!
//! Must not know about Docker or deployments, and must never put a secret on a command line: callers pass
//! secrets through `stdin`.

use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
use tokio::io::AsyncWriteExt;

/// Where a host is reached: a validated `user@host[:port]`.
///
/// Invalid values cannot be constructed: the user is `[a-z_][a-z0-9_-]*`, the host a DNS name or an
/// IPv4/IPv6 literal, so neither can carry shell or ssh option syntax.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshTarget {
    /// Login user on the host.
    pub user: String,
    /// DNS name or IP literal (IPv6 without brackets).
    pub address: String,
    /// SSH port.
    pub port: u16,
}

/// A `user@host[:port]` that is not valid, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SSH target {input:?}: {reason} (expected user@host[:port], e.g. deploy@10.0.0.5:22)")]
pub struct TargetError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl SshTarget {
    /// Builds a target from parts, validating each (see [`SshTarget::parse`]).
    pub fn new(user: &str, address: &str, port: u16) -> Result<SshTarget, TargetError> {
        let input = format!("{user}@{address}:{port}");
        let err = |reason| TargetError { input: input.clone(), reason };
        if !valid_user(user) {
            return Err(err("the user must match [a-z_][a-z0-9_-]* (at most 32 characters)"));
        }
        if !valid_host(address) {
            return Err(err("the host must be a DNS name or an IP address"));
        }
        if port == 0 {
            return Err(err("the port must be between 1 and 65535"));
        }
        Ok(SshTarget { user: user.to_string(), address: address.to_string(), port })
    }

    /// Parses `user@host`, `user@host:port`, `user@[v6]` or `user@[v6]:port` (port defaults to 22).
    pub fn parse(s: &str) -> Result<SshTarget, TargetError> {
        let err = |reason| TargetError { input: s.to_string(), reason };
        let (user, rest) = s.split_once('@').ok_or_else(|| err("the user is missing"))?;
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| err("an IPv6 address needs a closing ]"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(err("the bracketed host must be an IPv6 address"));
            }
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').ok_or_else(|| err("expected :port after ]"))?)),
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => 22,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| err("the port must be 1 to 65535"))?,
        };
        SshTarget::new(user, host, port).map_err(|e| TargetError { input: s.to_string(), reason: e.reason })
    }

    /// `address` as ssh and URLs want it (IPv6 in brackets).
    fn host_for_display(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]", self.address)
        } else {
            self.address.clone()
        }
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.user, self.host_for_display(), self.port)
    }
}

fn valid_user(u: &str) -> bool {
    let mut chars = u.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && u.len() <= 32
}

fn valid_host(h: &str) -> bool {
    if h.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// How sessions connect.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Private key to use (only this one, `IdentitiesOnly`); `None` uses ssh-agent and ssh's defaults.
    pub identity: Option<PathBuf>,
    /// known_hosts file to check host keys against; `None` uses `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// Where control sockets live (one sub-directory per Tao process). Keep it short: Unix socket paths
    /// are limited to 108 bytes.
    pub control_dir: PathBuf,
    /// TCP connect and authentication timeout.
    pub connect_timeout: Duration,
    /// A master connection with no command for this long exits by itself, so a killed Tao leaves no ssh
    /// process behind for longer than this.
    pub idle_timeout: Duration,
    /// Key exchange algorithms, as ssh's `KexAlgorithms` (e.g. `^curve25519-sha256` to prefer it);
    /// `None` keeps ssh's defaults (post-quantum hybrids first on recent OpenSSH, which cost about four
    /// times as much CPU per handshake as `curve25519-sha256`).
    pub kex_algorithms: Option<String>,
}

impl SshOptions {
    /// Defaults: ssh's own key and known_hosts, control sockets in `$XDG_RUNTIME_DIR/tao-ssh` (else
    /// `/tmp/tao-ssh-$USER`), 10 s to connect, masters idle out after 60 s.
    pub fn new(identity: Option<PathBuf>, known_hosts: Option<PathBuf>) -> SshOptions {
        let control_dir = match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d).join("tao-ssh"),
            _ => {
                let user = std::env::var("USER").unwrap_or_else(|_| "tao".into());
                std::env::temp_dir().join(format!("tao-ssh-{user}"))
            }
        };
        SshOptions {
            identity,
            known_hosts,
            control_dir,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            kex_algorithms: None,
        }
    }
}

/// What a remote command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit status; `None` when the command was killed by a signal or the channel closed early.
    pub status: Option<i32>,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl CommandOutput {
    /// Whether the command exited with 0.
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }

    /// The last non-empty line of stderr (else stdout), for error messages.
    pub fn last_error_line(&self) -> String {
        // Docker closes its errors with a usage hint ("Run 'docker run --help' for more information"):
        // the line before it is the one that says what went wrong.
        let hint = |l: &str| l.starts_with("Run '") || l.starts_with("See '");
        let pick = |s: &str| s.lines().rev().map(str::trim).find(|l| !l.is_empty() && !hint(l)).map(str::to_string);
        pick(&self.stderr)
            .or_else(|| pick(&self.stdout))
            .unwrap_or_else(|| format!("exit status {}", self.status.map(|s| s.to_string()).unwrap_or("none".into())))
    }
}

/// Why a session failed. Messages name the host and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The host key is unknown or changed.
    #[error(
        "host key of {host} could not be verified: {detail}. If the host is the one you mean, add its key to \
         the known_hosts file Tao uses (--known-hosts / TAO_SSH_KNOWN_HOSTS), e.g. after checking its \
         fingerprint: ssh-keyscan -p PORT HOST >> KNOWN_HOSTS"
    )]
    HostKey {
        /// The target.
        host: String,
        /// What ssh said.
        detail: String,
    },
    /// The connection or authentication failed.
    #[error("cannot connect to {host}: {detail}")]
    Connect {
        /// The target.
        host: String,
        /// What ssh said, and a hint.
        detail: String,
    },
    /// The connection went away while a command ran (the host dropped it, sshd died, the network broke).
    #[error("the connection to {host} dropped while running `{what}`: {detail}")]
    Dropped {
        /// The target.
        host: String,
        /// The first words of the command.
        what: String,
        /// What ssh said.
        detail: String,
    },
    /// A command or the connection took too long.
    #[error("timed out on {host}: {what}")]
    Timeout {
        /// The target.
        host: String,
        /// What was being done.
        what: String,
    },
    /// A local I/O failure (control directory, pipes).
    #[error("I/O error talking to {host}: {source}")]
    Io {
        /// The target.
        host: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// One master connection to one host; every command of a task runs as a channel over it.
pub struct SshSession {
    target: SshTarget,
    session: Session,
}

impl fmt::Debug for SshSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshSession").field("target", &self.target).finish_non_exhaustive()
    }
}

/// This process' own sub-directory of the control directory.
fn process_control_dir(base: &Path) -> PathBuf {
    base.join(format!("tao-{}", std::process::id()))
}

impl SshSession {
    /// Opens the master connection (strict host key checking, batch mode: never a password prompt).
    pub async fn connect(target: &SshTarget, opts: &SshOptions) -> Result<SshSession, SshError> {
        let host = target.to_string();
        let io = |source| SshError::Io { host: host.clone(), source };
        clean_once(&opts.control_dir).await;
        let dir = process_control_dir(&opts.control_dir);
        std::fs::create_dir_all(&dir).map_err(io)?;
        // Only our own sub-directory: the base may be shared (never chmod what we did not create).
        set_private(&dir).map_err(io)?;
        let mut builder = SessionBuilder::default();
        builder
            .user(target.user.clone())
            .port(target.port)
            .known_hosts_check(KnownHosts::Strict)
            .control_directory(&dir)
            .connect_timeout(opts.connect_timeout.max(Duration::from_secs(1)))
            .server_alive_interval(Duration::from_secs(15))
            .control_persist(ControlPersist::IdleFor(
                NonZeroUsize::new(opts.idle_timeout.as_secs().max(1) as usize).expect("at least 1"),
            ));
        if let Some(key) = &opts.identity {
            builder.keyfile(key);
        }
        if let Some(kh) = &opts.known_hosts {
            builder.user_known_hosts_file(kh);
        }
        if let Some(kex) = &opts.kex_algorithms {
            builder.config_file(ssh_config_with_kex(&dir, kex).map_err(io)?);
        }
        // ssh itself enforces ConnectTimeout for TCP only; bound the whole handshake too.
        let limit = opts.connect_timeout.max(Duration::from_secs(1)) * 3;
        let connecting = builder.connect_mux(&target.address);
        let session = match tokio::time::timeout(limit, connecting).await {
            Err(_) => return Err(SshError::Timeout { host, what: format!("connecting (no answer in {limit:?})") }),
            Ok(Err(e)) => return Err(classify(&host, e)),
            Ok(Ok(s)) => s,
        };
        tracing::debug!(host = %host, socket = %session.control_socket().display(), "ssh master connected");
        Ok(SshSession { target: target.clone(), session })
    }

    /// Runs argv on the host. Every element is POSIX-single-quoted by us (the remote side is a shell), so
    /// nothing in it is interpreted; `stdin` is written to the command's standard input (the only way
    /// secrets travel). Fails with [`SshError::Timeout`] after `timeout`.
    pub async fn run(&self, argv: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> Result<CommandOutput, SshError> {
        let line = argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
        self.run_script(&line, stdin, timeout).await
    }

    /// Runs a shell command line built by Tao's own modules from quoted parts (see [`quote`]). Callers
    /// must quote every value they put in it; prefer [`SshSession::run`].
    pub async fn run_script(
        &self,
        line: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CommandOutput, SshError> {
        let host = self.target.to_string();
        let what = first_words(line);
        let work = async {
            let mut cmd = self.session.raw_command(line);
            cmd.stdin(if stdin.is_some() { openssh::Stdio::piped() } else { openssh::Stdio::null() })
                .stdout(openssh::Stdio::piped())
                .stderr(openssh::Stdio::piped());
            let during = |e| match classify(&host, e) {
                SshError::Connect { host, detail } => SshError::Dropped { host, what: what.clone(), detail },
                other => other,
            };
            let mut child = cmd.spawn().await.map_err(during)?;
            if let Some(bytes) = stdin {
                let mut pipe = child.stdin().take().expect("stdin is piped");
                pipe.write_all(bytes).await.map_err(|source| SshError::Io { host: host.clone(), source })?;
                pipe.shutdown().await.map_err(|source| SshError::Io { host: host.clone(), source })?;
                drop(pipe);
            }
            let out = child.wait_with_output().await.map_err(during)?;
            Ok(CommandOutput {
                status: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(SshError::Timeout { host, what: format!("`{what}` did not finish in {timeout:?}") }),
        }
    }

    /// Writes `contents` to `path` on the host (through stdin, so contents never show on a command line):
    /// creates the parent directory, writes a temporary file with `mode` and renames it into place, so a
    /// reader never sees half a file. Check [`CommandOutput::ok`] for the outcome.
    pub async fn upload(
        &self,
        path: &str,
        contents: &[u8],
        mode: u32,
        timeout: Duration,
    ) -> Result<CommandOutput, SshError> {
        let parent = Path::new(path).parent().and_then(Path::to_str).filter(|p| !p.is_empty()).unwrap_or(".");
        let tmp = format!("{path}.tao-upload");
        let line = format!(
            "umask 077 && mkdir -p {dir} && cat > {tmp} && chmod {mode:o} {tmp} && mv -f {tmp} {dst}",
            dir = quote(parent),
            tmp = quote(&tmp),
            dst = quote(path),
        );
        self.run_script(&line, Some(contents), timeout).await
    }

    /// Closes the master connection (it exits once no command runs).
    pub async fn close(self) -> Result<(), SshError> {
        let host = self.target.to_string();
        self.session.close().await.map_err(|e| classify(&host, e))
    }

    /// The host this session is connected to.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// The master's control socket (tests check that one master serves every command).
    pub fn control_socket(&self) -> &Path {
        self.session.control_socket()
    }
}

/// Cleans a control directory the first time this process connects through it ("at start").
async fn clean_once(dir: &Path) {
    static CLEANED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    {
        let mut cleaned = CLEANED.lock().expect("not poisoned");
        if cleaned.iter().any(|d| d == dir) {
            return;
        }
        cleaned.push(dir.to_path_buf());
    }
    let dir = dir.to_path_buf();
    // It may run `ssh -O exit`: keep that off the async workers.
    let _ = tokio::task::spawn_blocking(move || clean_stale_control_dirs(&dir)).await;
}

/// The program and first argument of a command line, for messages (never the rest, which may be long).
fn first_words(line: &str) -> String {
    line.split_whitespace().take(2).collect::<Vec<_>>().join(" ").replace('\'', "")
}

fn classify(host: &str, e: openssh::Error) -> SshError {
    let detail = match &e {
        openssh::Error::Connect(io) | openssh::Error::Master(io) => io.to_string(),
        other => {
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(cause) = src {
                s.push_str(&format!(": {cause}"));
                src = cause.source();
            }
            s
        }
    };
    let lower = detail.to_ascii_lowercase();
    if lower.contains("host key verification failed")
        || lower.contains("host identification has changed")
        || lower.contains("no ed25519 host key is known")
        || lower.contains("host key is known")
    {
        return SshError::HostKey { host: host.to_string(), detail: detail.trim().replace("\r\n", " ") };
    }
    let hint = if lower.contains("permission denied") {
        " (check the deploy user's authorized_keys and the key given with --identity / TAO_SSH_IDENTITY, or \
         the keys loaded in ssh-agent; passwords are never used)"
    } else if lower.contains("connection refused") {
        " (is sshd running on that address and port?)"
    } else {
        ""
    };
    SshError::Connect { host: host.to_string(), detail: format!("{}{hint}", detail.trim().replace("\r\n", " ")) }
}

/// An ssh config file setting `KexAlgorithms` (there is no `-o` passthrough in the `openssh` crate). It
/// includes the system's and the user's configs first, so their settings (and first-match-wins values)
/// still apply as they would without `-F`.
fn ssh_config_with_kex(dir: &Path, kex: &str) -> std::io::Result<PathBuf> {
    let valid = !kex.is_empty() && kex.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@,^+".contains(c));
    if !valid {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid key exchange algorithm list {kex:?}"),
        ));
    }
    // Sessions connect concurrently: write aside, then rename, so ssh never reads half a file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (file, tmp) = (dir.join("ssh_config"), dir.join(format!("ssh_config.{n}")));
    let text = format!("Include /etc/ssh/ssh_config\nInclude ~/.ssh/config\nHost *\n  KexAlgorithms {kex}\n");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &file)?;
    Ok(file)
}

fn set_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// POSIX `sh` single quoting: the result is one word whose value is exactly `arg`, whatever it holds
/// (quotes, `$(…)`, backticks, newlines). Plain words made only of safe characters are left bare.
pub fn quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        return arg.to_string();
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Removes what killed Tao processes left in `dir`: for every `tao-<pid>` sub-directory whose process is
/// gone, asks each master still listening there to exit (`ssh -O exit`), then deletes the directory.
/// Directories of live processes are left alone. Errors are ignored: this is best-effort hygiene.
pub fn clean_stale_control_dirs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("tao-")).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let path = entry.path();
        for master in std::fs::read_dir(&path).into_iter().flatten().flatten() {
            let socket = master.path().join("master");
            if socket.exists() {
                let _ = std::process::Command::new("ssh")
                    .arg("-S")
                    .arg(&socket)
                    .args(["-O", "exit", "tao-stale-master"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        tracing::info!(dir = %path.display(), pid, "removed control sockets of a Tao process that is gone");
        let _ = std::fs::remove_dir_all(&path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sh` makes of a quoted word (the real shell is the judge).
    fn sh_echo(word: &str) -> String {
        let out = std::process::Command::new("sh").arg("-c").arg(format!("printf %s {word}")).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn quoting_survives_the_shell_byte_for_byte() {
        for s in ["plain", "", "it's", "a b", "$(id)", "`id`", "line\nbreak", "\"dq\" 'sq' \\ $HOME ;|&<>*?", "'"] {
            assert_eq!(sh_echo(&quote(s)), s, "quoted as {}", quote(s));
        }
        assert_eq!(quote("registry:5000/a/b:1.0"), "registry:5000/a/b:1.0");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn targets_parse_and_reject_shell_syntax() {
        let t = SshTarget::parse("deploy@10.0.0.5:2222").unwrap();
        assert_eq!((t.user.as_str(), t.address.as_str(), t.port), ("deploy", "10.0.0.5", 2222));
        assert_eq!(SshTarget::parse("deploy@node1.example.com").unwrap().port, 22);
        let v6 = SshTarget::parse("deploy@[::1]:2200").unwrap();
        assert_eq!((v6.address.as_str(), v6.port), ("::1", 2200));
        assert_eq!(v6.to_string(), "deploy@[::1]:2200");
        for bad in [
            "host",
            "Root@h",
            "a@-oProxyCommand=x",
            "a@h;id",
            "a@h:0",
            "a@h:99999",
            "a@$(id)",
            "a b@h",
            "a@[::1",
            "a@[nothost]:22",
            "a@h..x",
        ] {
            assert!(SshTarget::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
