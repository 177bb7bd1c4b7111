//! Remote `docker` commands, run through an [`SshSession`].
//!
//! Owns the validated values that reach `docker` on a host ([`ImageRef`], container names, env names) and
//! the command lines built from them: pull, replace a container, remove, inspect, logs. Every value is
//! quoted with [`quote`]; environment values (plain and secret) travel only over SSH stdin into a mode-0600
//! env file, never on a command line.
//!
//! Must not decide what to deploy, wait for health (see `health`) or log secret values.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

pub use super::reference::{ImageRef, InvalidValue};
use super::ssh::{quote, CommandOutput, SshError, SshSession};
use crate::catalog::{PortMapping, VolumeMount};
use crate::config::Secret;

/// How long a pull may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);
/// How long other docker commands may take (a stop waits up to the stop timeout first).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether `name` is a valid Docker container name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128 characters.
pub fn valid_container_name(name: &str) -> bool {
    let mut cs = name.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphanumeric())
        && cs.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 128
}

/// Checks a container name, for error reporting.
pub fn check_container_name(name: &str) -> Result<(), InvalidValue> {
    if valid_container_name(name) {
        Ok(())
    } else {
        Err(InvalidValue {
            field: "container name",
            expected: "letters, digits, '_', '.', '-', starting with a letter or digit, at most 128 characters",
            found: name.to_string(),
        })
    }
}

/// Whether `name` can be an environment variable name for a container (`[A-Za-z_][A-Za-z0-9_]*`, not
/// starting with `_tao_`, which the deploy script uses for itself).
pub fn valid_env_name(name: &str) -> bool {
    let mut cs = name.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("_tao_")
}

/// Everything needed to (re)create one container.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// Container name (validated when used: see [`valid_container_name`]).
    pub name: String,
    /// The image to run.
    pub image: ImageRef,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// Plain environment; values may hold any character except NUL (newlines and quotes included).
    pub env: BTreeMap<String, String>,
    /// Secret environment, resolved on the Tao host; never printed, never on a command line.
    pub secret_env: BTreeMap<String, Secret>,
    /// Volumes as `source:target[:ro|:rw]`.
    pub volumes: Vec<String>,
    /// Labels (product, version, task, digest…).
    pub labels: BTreeMap<String, String>,
    /// Arguments passed to the image's entry point.
    pub command: Vec<String>,
    /// Restart policy (`no`, `always`, `unless-stopped`, `on-failure[:N]`).
    pub restart: String,
    /// Seconds `docker stop` waits for the old container before killing it.
    pub stop_timeout: u32,
    /// Network to join instead of the default bridge (`host` for a host's proxy).
    pub network: Option<String>,
}

impl ContainerSpec {
    /// A spec with no ports, env, volumes, labels or command, restart policy `unless-stopped`, 10 s stop.
    pub fn new(name: impl Into<String>, image: ImageRef) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image,
            ports: Vec::new(),
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
            volumes: Vec::new(),
            labels: BTreeMap::new(),
            command: Vec::new(),
            restart: "unless-stopped".into(),
            stop_timeout: 10,
            network: None,
        }
    }

    /// Checks every field that reaches the host; the first problem wins.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check_container_name(&self.name)?;
        let bad = |field, expected, found: &str| Err(InvalidValue { field, expected, found: found.to_string() });
        for name in self.env.keys().chain(self.secret_env.keys()) {
            if !valid_env_name(name) {
                return bad("env name", "[A-Za-z_][A-Za-z0-9_]* (not starting with _tao_)", name);
            }
        }
        if let Some(name) = self.env.keys().find(|k| self.secret_env.contains_key(*k)) {
            return bad("env name", "a name given once (plain or secret, not both)", name);
        }
        if let Some((name, _)) = self.env.iter().find(|(_, v)| v.contains('\0')) {
            return bad("env value", "no NUL character", name);
        }
        if let Some((name, _)) = self.secret_env.iter().find(|(_, v)| v.expose().contains('\0')) {
            return bad("secret env value", "no NUL character", name);
        }
        for v in &self.volumes {
            if VolumeMount::parse(v).is_none() {
                return bad("volume", VolumeMount::EXPECTED, v);
            }
        }
        for (k, v) in &self.labels {
            let key_ok = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
            if !key_ok || v.contains('\0') || v.contains('\n') {
                return bad("label", "a key of letters, digits, '.', '_', '-', '/' and a one-line value", k);
            }
        }
        let restart_ok = matches!(self.restart.as_str(), "no" | "always" | "unless-stopped" | "on-failure")
            || self.restart.strip_prefix("on-failure:").is_some_and(|n| n.parse::<u32>().is_ok());
        if !restart_ok {
            return bad("restart policy", "no, always, unless-stopped or on-failure[:N]", &self.restart);
        }
        if let Some(n) = &self.network {
            if !valid_container_name(n) {
                return bad("network", "a network name of letters, digits, '_', '.', '-' (or host)", n);
            }
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            return bad("command", "arguments without NUL", "(command)");
        }
        Ok(())
    }

    /// The env file sent over stdin: `NAME='value'` lines in `sh` syntax (sourced with `set -a`), so any
    /// value but NUL survives byte for byte.
    fn env_script(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.env {
            s.push_str(&format!("{k}={}\n", quote(v)));
        }
        for (k, v) in &self.secret_env {
            s.push_str(&format!("{k}={}\n", quote(v.expose())));
        }
        s
    }

    /// `docker run` arguments after `run`, all quoted; env appears by name only (`-e NAME`).
    fn run_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec!["-d".into(), "--name".into(), self.name.clone()];
        a.extend(["--restart".into(), self.restart.clone()]);
        if let Some(n) = &self.network {
            a.extend(["--network".into(), n.clone()]);
        }
        for p in &self.ports {
            a.extend(["-p".into(), p.to_string()]);
        }
        for k in self.env.keys().chain(self.secret_env.keys()) {
            a.extend(["-e".into(), k.clone()]);
        }
        for v in &self.volumes {
            a.extend(["-v".into(), v.clone()]);
        }
        for (k, v) in &self.labels {
            a.extend(["--label".into(), format!("{k}={v}")]);
        }
        a.push(self.image.as_str().to_string());
        a.extend(self.command.iter().cloned());
        a.iter().map(|s| quote(s)).collect()
    }
}

/// What `docker inspect` says about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// Container id.
    pub id: String,
    /// `created`, `running`, `restarting`, `exited`, `dead`…
    pub status: String,
    /// Whether it is running.
    pub running: bool,
    /// Whether Docker is restarting it (it crashed and has a restart policy).
    pub restarting: bool,
    /// Exit code of the last run.
    pub exit_code: i64,
    /// How often Docker restarted it.
    pub restart_count: i64,
    /// The image reference it was created from.
    pub image_ref: String,
    /// The image id (`sha256:…`).
    pub image_id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// When it last started (RFC 3339, as Docker reports it).
    pub started_at: String,
    /// Status of the image's own HEALTHCHECK (`starting`, `healthy`, `unhealthy`), when it has one.
    pub health: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectJson {
    id: String,
    image: String,
    restart_count: i64,
    state: InspectState,
    config: InspectConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectState {
    status: String,
    running: bool,
    restarting: bool,
    exit_code: i64,
    started_at: String,
    health: Option<InspectHealth>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectHealth {
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    image: String,
    labels: Option<BTreeMap<String, String>>,
}

/// Why a docker command failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// A value was refused before any command ran.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// The SSH session failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// The command ran and failed.
    #[error("`docker {what}` failed on {host}: {detail}")]
    Command {
        /// The host.
        host: String,
        /// The docker subcommand and its subject.
        what: String,
        /// The last line docker printed.
        detail: String,
    },
}

/// Docker on one host, reached through a session.
#[derive(Debug, Clone, Copy)]
pub struct RemoteDocker<'a> {
    session: &'a SshSession,
}

impl<'a> RemoteDocker<'a> {
    /// Docker on the session's host.
    pub fn new(session: &'a SshSession) -> RemoteDocker<'a> {
        RemoteDocker { session }
    }

    fn failed(&self, what: String, out: &CommandOutput) -> DockerError {
        DockerError::Command { host: self.session.target().to_string(), what, detail: out.last_error_line() }
    }

    /// Pulls the image and returns its repository digest (`sha256:…`).
    pub async fn pull(&self, image: &ImageRef) -> Result<String, DockerError> {
        let img = quote(image.as_str());
        let line = format!(
            "docker pull -q {img} >/dev/null && docker image inspect --format '{{{{json .RepoDigests}}}}' {img}"
        );
        let out = self.session.run_script(&line, None, PULL_TIMEOUT).await?;
        if !out.ok() {
            return Err(self.failed(format!("pull {image}"), &out));
        }
        let digests: Vec<String> = serde_json::from_str(out.stdout.trim()).unwrap_or_default();
        let prefix = format!("{}@", image.repo());
        digests
            .iter()
            .find_map(|d| d.strip_prefix(&prefix))
            .or_else(|| digests.first().and_then(|d| d.split_once('@')).map(|(_, d)| d))
            .map(str::to_string)
            .ok_or_else(|| DockerError::Command {
                host: self.session.target().to_string(),
                what: format!("pull {image}"),
                detail: format!("no repository digest reported (got {:?})", out.stdout.trim()),
            })
    }

    /// Writes env (plain and secret) into a mode-0600 env file on the host via stdin (never argv), stops
    /// and removes an existing container of that name, runs the new one detached with the env, labels,
    /// ports, volumes and restart policy. Returns the container id.
    ///
    /// The env file holds `sh` assignments; the remote shell opens it, deletes it, sources it with `set -a`
    /// and `exec`s `docker run -e NAME…`, so docker takes each value from its own environment: values keep
    /// newlines and quotes, and appear on no command line and in no file once the container runs.
    pub async fn replace(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        spec.validate()?;
        let name = quote(&spec.name);
        let env_file = format!(".tao/env/{}.env", spec.name);
        let line = format!(
            "umask 077 && mkdir -p .tao/env && cat > {f} && exec 3< {f} && rm -f {f} && \
             _tao_docker=$(command -v docker) && \
             {{ \"$_tao_docker\" stop -t {t} {name} >/dev/null 2>&1; \"$_tao_docker\" rm -f {name} >/dev/null 2>&1; true; }} && \
             set -a && . /dev/fd/3 && set +a && exec \"$_tao_docker\" run {args}",
            f = quote(&env_file),
            t = spec.stop_timeout,
            args = spec.run_args().join(" "),
        );
        let stdin = spec.env_script();
        let timeout = COMMAND_TIMEOUT + Duration::from_secs(spec.stop_timeout.into());
        let out = self.session.run_script(&line, Some(stdin.as_bytes()), timeout).await?;
        if !out.ok() {
            return Err(self.failed(format!("run {} ({})", spec.name, spec.image), &out));
        }
        Ok(out.stdout.trim().to_string())
    }

    /// Stops and removes a container; `false` when there was none.
    pub async fn remove(&self, name: &str) -> Result<bool, DockerError> {
        check_container_name(name)?;
        // `docker rm -f` succeeds silently on a missing container in recent Docker versions: look first.
        let n = quote(name);
        let line = format!(
            "docker container inspect --format . {n} >/dev/null 2>&1 || {{ echo absent; exit 0; }}; \
             docker rm -f -v {n} >/dev/null && echo removed"
        );
        let out = self.session.run_script(&line, None, COMMAND_TIMEOUT).await?;
        match (out.ok(), out.stdout.trim()) {
            (true, "removed") => Ok(true),
            (true, "absent") => Ok(false),
            _ => Err(self.failed(format!("rm {name}"), &out)),
        }
    }

    /// The container's state, or `None` when there is no container of that name.
    pub async fn inspect(&self, name: &str) -> Result<Option<ContainerState>, DockerError> {
        check_container_name(name)?;
        let argv = ["docker", "container", "inspect", "--format", "{{json .}}", name];
        let out = self.session.run(&argv, None, COMMAND_TIMEOUT).await?;
        if !out.ok() {
            return if is_no_such(&out) { Ok(None) } else { Err(self.failed(format!("inspect {name}"), &out)) };
        }
        let j: InspectJson = serde_json::from_str(out.stdout.trim()).map_err(|e| DockerError::Command {
            host: self.session.target().to_string(),
            what: format!("inspect {name}"),
            detail: format!("unexpected output: {e}"),
        })?;
        Ok(Some(ContainerState {
            id: j.id,
            status: j.state.status,
            running: j.state.running,
            restarting: j.state.restarting,
            exit_code: j.state.exit_code,
            restart_count: j.restart_count,
            image_ref: j.config.image,
            image_id: j.image,
            labels: j.config.labels.unwrap_or_default(),
            started_at: j.state.started_at,
            health: j.state.health.map(|h| h.status),
        }))
    }

    /// Starts an existing (stopped) container.
    pub async fn start(&self, name: &str) -> Result<(), DockerError> {
        check_container_name(name)?;
        let out = self.session.run(&["docker", "start", name], None, COMMAND_TIMEOUT).await?;
        if !out.ok() {
            return Err(self.failed(format!("start {name}"), &out));
        }
        Ok(())
    }

    /// Stops a container (waiting up to `timeout_s` seconds before killing it) and keeps it.
    pub async fn stop(&self, name: &str, timeout_s: u32) -> Result<(), DockerError> {
        check_container_name(name)?;
        let t = timeout_s.to_string();
        let out = self.session.run(&["docker", "stop", "-t", &t, name], None, COMMAND_TIMEOUT).await?;
        if !out.ok() {
            return Err(self.failed(format!("stop {name}"), &out));
        }
        Ok(())
    }

    /// Sends `signal` (e.g. `USR2`) to the container's main process.
    pub async fn signal(&self, name: &str, signal: &str) -> Result<(), DockerError> {
        check_container_name(name)?;
        if signal.is_empty() || !signal.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(
                InvalidValue { field: "signal", expected: "a signal name like USR2", found: signal.into() }.into()
            );
        }
        let out = self.session.run(&["docker", "kill", "--signal", signal, name], None, COMMAND_TIMEOUT).await?;
        if !out.ok() {
            return Err(self.failed(format!("kill --signal {signal} {name}"), &out));
        }
        Ok(())
    }

    /// Runs `argv` inside the running container (no shell: the image may have none).
    pub async fn exec(&self, name: &str, argv: &[&str]) -> Result<CommandOutput, DockerError> {
        check_container_name(name)?;
        let mut full = vec!["docker", "exec", name];
        full.extend_from_slice(argv);
        Ok(self.session.run(&full, None, COMMAND_TIMEOUT).await?)
    }

    /// The host address (`127.0.0.1:49153`) Docker published container port `port`/tcp on.
    pub async fn published_address(&self, name: &str, port: u16) -> Result<std::net::SocketAddr, DockerError> {
        check_container_name(name)?;
        let p = format!("{port}/tcp");
        let out = self.session.run(&["docker", "port", name, &p], None, COMMAND_TIMEOUT).await?;
        if !out.ok() {
            return Err(self.failed(format!("port {name} {p}"), &out));
        }
        out.stdout.lines().find_map(|l| l.trim().parse().ok()).ok_or_else(|| DockerError::Command {
            host: self.session.target().to_string(),
            what: format!("port {name} {p}"),
            detail: format!("no address in {:?}", out.stdout.trim()),
        })
    }

    /// Everything the container printed so far (stdout and stderr interleaved).
    pub async fn logs(&self, name: &str) -> Result<String, DockerError> {
        check_container_name(name)?;
        let line = format!("docker logs {} 2>&1", quote(name));
        let out = self.session.run_script(&line, None, COMMAND_TIMEOUT).await?;
        if !out.ok() {
            return Err(self.failed(format!("logs {name}"), &out));
        }
        Ok(out.stdout)
    }

    /// The last `lines` lines the container printed (stdout and stderr interleaved).
    pub async fn logs_tail(&self, name: &str, lines: u32) -> Result<String, DockerError> {
        check_container_name(name)?;
        let line = format!("docker logs --tail {lines} {} 2>&1", quote(name));
        let out = self.session.run_script(&line, None, COMMAND_TIMEOUT).await?;
        if !out.ok() {
            return Err(self.failed(format!("logs {name}"), &out));
        }
        Ok(out.stdout)
    }
}

fn is_no_such(out: &CommandOutput) -> bool {
    let e = out.stderr.to_ascii_lowercase();
    e.contains("no such container") || e.contains("no such object")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_goes_by_name_on_the_command_line() {
        let mut spec = ContainerSpec::new("t-web", ImageRef::parse("r.example/a/web:1").unwrap());
        spec.env.insert("HOSTILE".into(), "it's \"$(id)\" `id`\nline2".into());
        spec.secret_env.insert("DB_PASSWORD".into(), Secret::new("s3cret"));
        spec.ports.push(PortMapping::parse("127.0.0.1:18080:8080").unwrap());
        spec.validate().unwrap();
        let args = spec.run_args().join(" ");
        assert!(args.contains("-e HOSTILE -e DB_PASSWORD"), "{args}");
        assert!(!args.contains("s3cret") && !args.contains("$(id)"), "{args}");
        let script = spec.env_script();
        let out =
            std::process::Command::new("sh").arg("-c").arg(format!("{script}printf %s \"$HOSTILE\"")).output().unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "it's \"$(id)\" `id`\nline2");
    }

    #[test]
    fn invalid_specs_are_refused() {
        let img = ImageRef::parse("r.example/a/web:1").unwrap();
        let mut s = ContainerSpec::new("bad name", img.clone());
        assert!(s.validate().is_err());
        s = ContainerSpec::new("ok", img.clone());
        s.env.insert("A-B".into(), "x".into());
        assert!(s.validate().is_err());
        s = ContainerSpec::new("ok", img.clone());
        s.env.insert("_tao_docker".into(), "x".into());
        assert!(s.validate().is_err());
        s = ContainerSpec::new("ok", img);
        s.restart = "sometimes".into();
        assert!(s.validate().is_err());
    }
}
