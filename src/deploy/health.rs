//! Health gates: waiting until a freshly started container is healthy, or failing with why.
//!
//! Owns the probes and the retry loop. HTTP and TCP checks of a **published** port run on the host itself
//! against `127.0.0.1:<published>` (with `curl` or `wget` for HTTP, `nc` or `bash` for TCP, whichever the
//! host has), because that is how clients reach the service; checks of an **unpublished** port run inside
//! the container with `docker exec` (the image must then have `sh` and `wget`/`curl`/`nc`). A command check
//! always runs inside the container (`docker exec NAME sh -c CMD`, the command quoted as catalog data).
//!
//! Every attempt first looks at the container: one that exited, is being restarted or is gone fails at
//! once with the tail of its logs, instead of waiting out the timeout. Must not start or stop containers.

use std::time::{Duration, Instant};

use super::docker::{ContainerState, DockerError, RemoteDocker};
use super::ssh::{quote, SshError, SshSession};
use crate::catalog::HealthCheck;

/// Pause between attempts.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Limit of one probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of `docker logs` kept in a failure.
pub const LOG_TAIL_LINES: u32 = 30;

/// Why a container was not found healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The check never passed, or the container stopped; with the last observed error and its logs.
    #[error("container {container} on {host} is not healthy: {reason}; last error: {last_error}\n--- last lines of `docker logs {container}` ---\n{logs_tail}")]
    Unhealthy {
        /// The host.
        host: String,
        /// The container.
        container: String,
        /// What gave up (timeout, exited, restarting, gone).
        reason: String,
        /// The last probe failure observed.
        last_error: String,
        /// The tail of `docker logs`.
        logs_tail: String,
    },
    /// The connection to the host failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
}

/// What one look at the container said.
enum Look {
    /// Running; go on probing.
    Running(ContainerState),
    /// Stopped, restarting or gone: give up now.
    Dead(String),
}

async fn look(docker: &RemoteDocker<'_>, container: &str, restarts_at_start: Option<i64>) -> Result<Look, HealthError> {
    let state = match docker.inspect(container).await {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(Look::Dead("the container is gone".into())),
        Err(DockerError::Ssh(e)) => return Err(e.into()),
        Err(e) => return Ok(Look::Dead(e.to_string())),
    };
    if state.restarting || restarts_at_start.is_some_and(|n| state.restart_count > n) {
        return Ok(Look::Dead(format!(
            "the container keeps crashing (exit code {}, restarted {} times)",
            state.exit_code, state.restart_count
        )));
    }
    if !state.running {
        return Ok(Look::Dead(format!("the container is {} (exit code {})", state.status, state.exit_code)));
    }
    Ok(Look::Running(state))
}

async fn unhealthy(session: &SshSession, container: &str, reason: String, last_error: String) -> HealthError {
    let logs_tail = match RemoteDocker::new(session).logs_tail(container, LOG_TAIL_LINES).await {
        Ok(l) if l.trim().is_empty() => "(no output)".to_string(),
        Ok(l) => l.trim_end().to_string(),
        Err(e) => format!("(logs unavailable: {e})"),
    };
    HealthError::Unhealthy {
        host: session.target().to_string(),
        container: container.to_string(),
        reason,
        last_error,
        logs_tail,
    }
}

/// The shell line probing `check` once; exit 0 means healthy.
fn probe_line(container: &str, published: Option<u16>, check: &HealthCheck) -> String {
    let in_container = |script: &str| format!("docker exec {} sh -c {}", quote(container), quote(script));
    match (check, published) {
        (HealthCheck::Http { path, .. }, Some(p)) => http_script(&format!("http://127.0.0.1:{p}{path}")),
        (HealthCheck::Http { port, path }, None) => {
            in_container(&http_script(&format!("http://127.0.0.1:{port}{path}")))
        }
        (HealthCheck::Tcp { .. }, Some(p)) => tcp_script(p),
        (HealthCheck::Tcp { port }, None) => in_container(&tcp_script(*port)),
        (HealthCheck::Command(cmd), _) => in_container(cmd),
    }
}

fn http_script(url: &str) -> String {
    let u = quote(url);
    format!(
        "if command -v curl >/dev/null 2>&1; then curl -fsS -o /dev/null -m 5 {u}; \
         elif command -v wget >/dev/null 2>&1; then wget -O /dev/null {u}; \
         else echo 'neither curl nor wget is installed' >&2; exit 127; fi"
    )
}

fn tcp_script(port: u16) -> String {
    format!(
        "if command -v nc >/dev/null 2>&1; then nc -z -w 3 127.0.0.1 {port}; \
         elif command -v bash >/dev/null 2>&1; then bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}'; \
         else echo 'neither nc nor bash is installed' >&2; exit 127; fi"
    )
}

/// Retries `check` against `container` until it passes or `timeout` runs out. `published` is the host
/// port the check's container port is published on (probe from the host), `None` to probe inside the
/// container. A container that stops or restarts fails at once.
pub async fn wait_healthy(
    session: &SshSession,
    container: &str,
    published: Option<u16>,
    check: &HealthCheck,
    timeout: Duration,
) -> Result<(), HealthError> {
    let docker = RemoteDocker::new(session);
    let deadline = Instant::now() + timeout;
    let line = probe_line(container, published, check);
    let mut last_error = "no attempt finished".to_string();
    let mut restarts = None;
    loop {
        match look(&docker, container, restarts).await? {
            Look::Dead(reason) => return Err(unhealthy(session, container, reason, last_error).await),
            Look::Running(state) => restarts = restarts.or(Some(state.restart_count)),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match session.run_script(&line, None, PROBE_TIMEOUT.min(left.max(Duration::from_secs(1)))).await {
            Ok(out) if out.ok() => return Ok(()),
            Ok(out) => last_error = out.last_error_line(),
            Err(SshError::Timeout { what, .. }) => last_error = what,
            Err(e) => return Err(e.into()),
        }
        if Instant::now() + RETRY_INTERVAL >= deadline {
            let reason = format!("the check did not pass within {timeout:?}");
            return Err(unhealthy(session, container, reason, last_error).await);
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

/// Waits for a container without a catalog health check: the image's own Docker `HEALTHCHECK` when it has
/// one (until `healthy`), else until it has been running without a restart for `settle`.
pub async fn wait_image_healthy(
    session: &SshSession,
    container: &str,
    settle: Duration,
    timeout: Duration,
) -> Result<(), HealthError> {
    let docker = RemoteDocker::new(session);
    let deadline = Instant::now() + timeout;
    let mut first: Option<(Instant, String, i64)> = None;
    let mut last_error = "not running yet".to_string();
    loop {
        let state = match look(&docker, container, first.as_ref().map(|f| f.2)).await? {
            Look::Dead(reason) => return Err(unhealthy(session, container, reason, last_error).await),
            Look::Running(state) => state,
        };
        match state.health.as_deref() {
            Some("healthy") => return Ok(()),
            Some("unhealthy") => {
                let reason = "its Docker HEALTHCHECK reports unhealthy".to_string();
                return Err(unhealthy(session, container, reason, "HEALTHCHECK failed".into()).await);
            }
            Some(other) => last_error = format!("HEALTHCHECK status is {other}"),
            None => match &first {
                Some((since, started, _)) if *started == state.started_at => {
                    if since.elapsed() >= settle {
                        return Ok(());
                    }
                    last_error = format!("running for {:?}, waiting for {settle:?} without restart", since.elapsed());
                }
                _ => first = Some((Instant::now(), state.started_at.clone(), state.restart_count)),
            },
        }
        if first.is_none() {
            first = Some((Instant::now(), state.started_at.clone(), state.restart_count));
        }
        if Instant::now() + RETRY_INTERVAL >= deadline {
            let reason = format!("not healthy within {timeout:?}");
            return Err(unhealthy(session, container, reason, last_error).await);
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_quote_catalog_data() {
        let http = HealthCheck::Http { port: 8080, path: "/health".into() };
        assert!(probe_line("web", Some(18080), &http).contains("http://127.0.0.1:18080/health"));
        let inside = probe_line("web", None, &http);
        assert!(inside.starts_with("docker exec web sh -c '"), "{inside}");
        let cmd = HealthCheck::Command("test -f /ready && echo '$(id)'".into());
        let line = probe_line("web", None, &cmd);
        assert_eq!(line, "docker exec web sh -c 'test -f /ready && echo '\\''$(id)'\\'''");
    }
}
