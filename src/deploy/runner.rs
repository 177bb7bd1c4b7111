//! The runner: executes one claimed task. Plans again (now that it holds the environment's lease),
//! validates every container spec and resolves secrets before connecting anywhere, connects once per
//! host, then per wave and per host in parallel: pull, replace, health-gate, record. On the first failure
//! (or a cancellation) it stops and, unless disabled, rolls back what this task replaced, in reverse.
//!
//! Every line a person may need is written to the task log (never an env value: secrets and plain
//! values alike stay out of logs). Must not decide policy (who may deploy, freezes): the services did
//! that before the task was queued.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::docker::{ContainerSpec, ImageRef, RemoteDocker};
use super::health::{self, HealthError};
use super::plan::{Current, Plan, Step};
use super::prepare::{self, current_specs, DeployRequest, DeployTarget};
use super::queue::QueueHandle;
use super::queue::{BoxFuture, Executor, Outcome, StopReason, TaskControl};
use super::spec::{Probe, RunSpec};
use super::ssh::{SshOptions, SshSession, SshTarget};
use crate::catalog::CatalogSource;
use crate::catalog::{HealthCheck, PortMapping};
use crate::config::Secret;
use crate::store::deployed::{self, Deployed};
use crate::store::task::{self, TaskRow};
use crate::store::Pool;

/// How long a container without a catalog health check must keep running to count as healthy.
const SETTLE: Duration = Duration::from_secs(2);
/// Health timeout of a container without a catalog health check.
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

/// What the runner reads and writes besides the hosts: the store, the queue (to tell followers a task
/// changed), the catalog in force and the directory of file templates (both read when a task starts).
#[derive(Clone)]
pub struct RunnerContext {
    /// The store: tasks, their logs and plans, the deployed state.
    pub pool: Pool,
    /// The queue whose followers hear of each new log line.
    pub queue: QueueHandle,
    /// The catalog in force.
    pub catalog: CatalogSource,
    /// Where the catalog's file templates are read (`TAO_TEMPLATES_DIR`, else beside the catalog).
    pub templates_dir: Option<PathBuf>,
}

/// Runs tasks; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    ctx: RunnerContext,
    ssh: SshOptions,
    secrets_dir: Option<PathBuf>,
    host_parallel: usize,
}

impl Runner {
    /// A runner planning and recording through `ctx`, reaching hosts with `ssh`, reading secret files
    /// from `secrets_dir`, on at most `host_parallel` hosts of a wave at once.
    pub fn new(ctx: RunnerContext, ssh: SshOptions, secrets_dir: Option<PathBuf>, host_parallel: usize) -> Runner {
        Runner { ctx, ssh, secrets_dir, host_parallel: host_parallel.max(1) }
    }

    fn pool(&self) -> &Pool {
        &self.ctx.pool
    }
}

impl Executor for Runner {
    fn execute(&self, task: TaskRow, control: TaskControl) -> BoxFuture<Outcome> {
        let this = self.clone();
        Box::pin(async move { this.run(task, control).await })
    }
}

/// Writes task log lines (store first, then a wake-up for followers).
#[derive(Clone)]
struct TaskLog {
    pool: Pool,
    queue: QueueHandle,
    id: i64,
}

impl TaskLog {
    async fn write(&self, level: &str, host: Option<&str>, component: Option<&str>, line: &str) {
        if let Err(e) = task::log(&self.pool, self.id, level, host, component, line).await {
            tracing::error!(task = self.id, error = %e, "writing a task log line failed");
        }
        tracing::info!(task = self.id, host, component, level, "{line}");
        self.queue.changed(self.id);
    }
    async fn info(&self, line: &str) {
        self.write("info", None, None, line).await;
    }
    async fn at(&self, level: &str, step: &Step, line: &str) {
        self.write(level, Some(&step.host.name), Some(&step.spec.component), line).await;
    }
}

/// One SSH session per host for the task, re-established when a master went away (an idle master
/// exits after the idle timeout, e.g. while another host's health check took long).
struct Sessions {
    ssh: SshOptions,
    map: tokio::sync::Mutex<HashMap<String, (SshTarget, Arc<SshSession>)>>,
}

impl Sessions {
    /// The host's session, checked with a no-op command and reconnected when dead.
    async fn get(&self, host: &str) -> Result<Arc<SshSession>, String> {
        let mut map = self.map.lock().await;
        let (target, session) = map.get(host).cloned().ok_or_else(|| format!("no session for host {host}"))?;
        if session.run(&["true"], None, Duration::from_secs(10)).await.is_ok() {
            return Ok(session);
        }
        tracing::info!(host, "ssh master gone; reconnecting");
        let fresh = Arc::new(SshSession::connect(&target, &self.ssh).await.map_err(|e| e.to_string())?);
        map.insert(host.to_string(), (target, fresh.clone()));
        Ok(fresh)
    }

    async fn close(self) {
        for (_, (_, session)) in self.map.into_inner() {
            if let Ok(session) = Arc::try_unwrap(session) {
                let _ = session.close().await;
            }
        }
    }
}

/// A step that replaced a container (so a rollback must undo it).
struct Replaced {
    step: Step,
}

/// Why a step failed, and whether it had already replaced the container.
struct StepFailure {
    replaced: bool,
    message: String,
}

fn request_of(t: &TaskRow) -> Result<DeployRequest, String> {
    let target = match t.kind.as_str() {
        "release" => DeployTarget::Release {
            product: t.product.clone().ok_or("release task without product")?,
            version: t.version.clone().ok_or("release task without version")?,
            components: t.components.split(',').filter(|c| !c.is_empty()).map(String::from).collect(),
        },
        "component" => DeployTarget::Component {
            component: t.component.clone().ok_or("component task without component")?,
            image_tag: t.image_tag.clone().ok_or("component task without image tag")?,
        },
        "rollback" => DeployTarget::Rollback { to: t.version.clone() },
        other => return Err(format!("unknown task kind {other:?}")),
    };
    Ok(DeployRequest {
        env: t.env.clone(),
        target,
        force: t.force,
        rollback_on_failure: t.rollback_on_failure,
        idempotency_key: None,
    })
}

fn health_check(probe: &Probe) -> (Option<u16>, HealthCheck) {
    match probe {
        Probe::Http { port, path, published } => (*published, HealthCheck::Http { port: *port, path: path.clone() }),
        Probe::Tcp { port, published } => (*published, HealthCheck::Tcp { port: *port }),
        Probe::Command { command } => (None, HealthCheck::Command(command.clone())),
    }
}

impl Runner {
    async fn run(self, t: TaskRow, control: TaskControl) -> Outcome {
        let log = TaskLog { pool: self.ctx.pool.clone(), queue: self.ctx.queue.clone(), id: t.id };
        let req = match request_of(&t) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e),
        };
        let what = req.target.describe();
        log.info(&format!("task {} started: {what} → {}", t.id, t.env)).await;
        // Planned again now that the task holds the lease: the deployed state may have changed while it
        // waited (who may deploy and freezes were the services' to check when it was queued).
        let catalog = (self.ctx.catalog)();
        let plan = match prepare::prepare(self.pool(), &catalog, self.ctx.templates_dir.as_deref(), &req).await {
            Ok(plan) => plan,
            Err(e) => {
                log.write("error", None, None, &format!("planning failed: {e}")).await;
                return Outcome::Failed(format!("planning failed: {e}"));
            }
        };
        if let Ok(json) = serde_json::to_string(&plan) {
            let _ = task::set_plan(self.pool(), t.id, &json).await;
        }
        for skip in &plan.unchanged {
            log.write("info", Some(&skip.host), Some(&skip.component), &format!("unchanged: {}", skip.reason)).await;
        }
        log.info(&format!("plan: {} step(s) in {} wave(s)", plan.len(), plan.waves.len())).await;

        // Everything that reaches a host is validated, and secrets resolved, before any connection.
        let planned: Vec<&RunSpec> = plan.waves.iter().flatten().map(|s| &s.spec).collect();
        let secrets = match self.secrets(planned).await {
            Ok(s) => s,
            Err(e) => {
                log.write("error", None, None, &e).await;
                return Outcome::Failed(e);
            }
        };
        let mut specs = HashMap::new();
        for step in plan.waves.iter().flatten() {
            match self.container_spec(&t, &step.spec, &secrets) {
                Ok(spec) => {
                    specs.insert((step.host.name.clone(), step.spec.component.clone()), spec);
                }
                Err(e) => {
                    let msg = format!("{} on {}: {e}", step.spec.component, step.host.name);
                    log.at("error", step, &e).await;
                    return Outcome::Failed(msg);
                }
            }
        }
        if plan.is_empty() {
            log.info("nothing to change").await;
            return self.succeed(&t, &req, &log).await;
        }
        let sessions = match self.connect_all(&plan, &log).await {
            Ok(s) => s,
            Err(e) => return Outcome::Failed(e),
        };
        let outcome = self.run_waves(&t, &plan, &specs, &sessions, control, &log).await;
        let outcome = match outcome {
            WaveOutcome::Done => self.succeed(&t, &req, &log).await,
            WaveOutcome::Stopped { replaced, reason: StopReason::Interrupted } => {
                let msg = format!("interrupted after {} step(s); the environment may be mixed", replaced.len());
                log.write("warn", None, None, &msg).await;
                Outcome::Interrupted(msg)
            }
            WaveOutcome::Stopped { replaced, reason: StopReason::Cancelled } => {
                log.write("warn", None, None, "cancelled by request").await;
                let undone = self.roll_back(&t, replaced, &sessions, &log).await;
                Outcome::Cancelled(format!("cancelled by request; {undone}"))
            }
            WaveOutcome::Failed { replaced, message } => {
                let tail = if t.rollback_on_failure {
                    self.roll_back(&t, replaced, &sessions, &log).await
                } else {
                    let msg = "rollback disabled: the failed state is kept for debugging".to_string();
                    log.write("warn", None, None, &msg).await;
                    msg
                };
                Outcome::Failed(format!("{message}; {tail}"))
            }
        };
        sessions.close().await;
        outcome
    }

    fn container_spec(
        &self,
        t: &TaskRow,
        spec: &RunSpec,
        secrets: &HashMap<String, Secret>,
    ) -> Result<ContainerSpec, String> {
        let image = ImageRef::parse(&spec.image).map_err(|e| e.to_string())?;
        let mut c = ContainerSpec::new(spec.container.clone(), image);
        for p in &spec.ports {
            c.ports.push(PortMapping::parse(p).ok_or_else(|| format!("port mapping {p:?} is invalid"))?);
        }
        c.env = spec.env.clone();
        for (var, reference) in &spec.secret_env {
            let value = secrets.get(reference).ok_or_else(|| format!("secret {reference:?} was not resolved"))?;
            c.secret_env.insert(var.clone(), value.clone());
        }
        c.volumes = spec.volumes.clone();
        c.command = spec.command.clone();
        c.restart = spec.restart.clone();
        c.labels = spec.labels(&t.env);
        c.labels.insert("tao.task".into(), t.id.to_string());
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    /// Reads every secret the specs reference from the secrets directory (asynchronously: this runs on
    /// the runtime's workers).
    async fn secrets<'a>(
        &self,
        specs: impl IntoIterator<Item = &'a RunSpec>,
    ) -> Result<HashMap<String, Secret>, String> {
        let mut out = HashMap::new();
        for reference in specs.into_iter().flat_map(|s| s.secret_env.values()) {
            if out.contains_key(reference) {
                continue;
            }
            let dir = self.secrets_dir.as_ref().ok_or_else(|| {
                format!("secret {reference:?} is referenced but no secrets directory is configured (TAO_SECRETS_DIR)")
            })?;
            if reference.contains('/') || reference.starts_with('.') {
                return Err(format!("secret reference {reference:?} is not a plain name"));
            }
            let path = dir.join(reference);
            let value = tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| format!("secret {reference:?} cannot be read from {}: {e}", path.display()))?;
            out.insert(reference.clone(), Secret::new(value.strip_suffix('\n').unwrap_or(&value)));
        }
        Ok(out)
    }

    async fn connect_all(&self, plan: &Plan, log: &TaskLog) -> Result<Sessions, String> {
        let mut targets: BTreeMap<String, SshTarget> = BTreeMap::new();
        for step in plan.waves.iter().flatten() {
            let h = &step.host;
            let target = SshTarget::new(&h.user, &h.address, h.port).map_err(|e| format!("host {}: {e}", h.name))?;
            targets.insert(h.name.clone(), target);
        }
        let connects = targets.into_iter().map(|(name, target)| {
            let opts = self.ssh.clone();
            async move {
                let result = SshSession::connect(&target, &opts).await;
                (name, target, result)
            }
        });
        let mut map = HashMap::new();
        let mut failures = Vec::new();
        for (name, target, result) in futures_util::future::join_all(connects).await {
            match result {
                Ok(s) => {
                    map.insert(name, (target, Arc::new(s)));
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        let sessions = Sessions { ssh: self.ssh.clone(), map: tokio::sync::Mutex::new(map) };
        if failures.is_empty() {
            log.info(&format!("connected to {} host(s)", sessions.map.lock().await.len())).await;
            return Ok(sessions);
        }
        for f in &failures {
            log.write("error", None, None, &format!("cannot connect to {f}")).await;
        }
        sessions.close().await;
        Err(format!("cannot connect to {}; nothing was changed", failures.join("; ")))
    }

    async fn run_waves(
        &self,
        t: &TaskRow,
        plan: &Plan,
        specs: &HashMap<(String, String), ContainerSpec>,
        sessions: &Sessions,
        control: TaskControl,
        log: &TaskLog,
    ) -> WaveOutcome {
        let mut replaced: Vec<Replaced> = Vec::new();
        let gate = Arc::new(Semaphore::new(self.host_parallel));
        for (i, wave) in plan.waves.iter().enumerate() {
            if let Some(reason) = control.stop_reason() {
                return WaveOutcome::Stopped { replaced, reason };
            }
            log.info(&format!("wave {} of {}: {} step(s)", i + 1, plan.waves.len(), wave.len())).await;
            let mut by_host: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
            for step in wave {
                by_host.entry(step.host.name.as_str()).or_default().push(step);
            }
            let hosts = by_host.into_iter().map(|(host, steps)| {
                let (gate, control) = (gate.clone(), control.clone());
                async move {
                    let _permit = gate.acquire().await.expect("the gate is never closed");
                    let mut done = Vec::new();
                    let session = match sessions.get(host).await {
                        Ok(s) => s,
                        Err(e) => return (done, Some(format!("host {host} unreachable: {e}"))),
                    };
                    for step in steps {
                        let spec = &specs[&(step.host.name.clone(), step.spec.component.clone())];
                        match self.deploy_step(t, step, spec, &session, control.clone(), log).await {
                            Ok(()) => done.push(Replaced { step: step.clone() }),
                            Err(f) => {
                                if f.replaced {
                                    done.push(Replaced { step: step.clone() });
                                }
                                return (
                                    done,
                                    Some(format!(
                                        "{} on {} failed: {}",
                                        step.spec.component, step.host.name, f.message
                                    )),
                                );
                            }
                        }
                    }
                    (done, None)
                }
            });
            let mut first_error = None;
            for (done, error) in futures_util::future::join_all(hosts).await {
                replaced.extend(done);
                if first_error.is_none() {
                    first_error = error;
                }
            }
            if let Some(message) = first_error {
                if let Some(reason) = control.stop_reason() {
                    return WaveOutcome::Stopped { replaced, reason };
                }
                log.write("error", None, None, &message).await;
                return WaveOutcome::Failed { replaced, message };
            }
        }
        WaveOutcome::Done
    }

    async fn deploy_step(
        &self,
        t: &TaskRow,
        step: &Step,
        spec: &ContainerSpec,
        session: &SshSession,
        mut control: TaskControl,
        log: &TaskLog,
    ) -> Result<(), StepFailure> {
        let docker = RemoteDocker::new(session);
        let fail = |replaced: bool| move |e: String| StepFailure { replaced, message: e };
        log.at("info", step, &format!("pulling {}", spec.image.as_str())).await;
        let digest = docker.pull(&spec.image).await.map_err(|e| fail(false)(e.to_string()))?;
        let spec = &with_files(session, spec, &step.spec).await.map_err(fail(false))?;
        if !step.spec.files.is_empty() {
            log.at("info", step, &format!("uploaded {} configuration file(s)", step.spec.files.len())).await;
        }
        log.at("info", step, &format!("replacing container {} ({})", spec.name, step.spec.describe())).await;
        docker.replace(spec).await.map_err(|e| fail(true)(e.to_string()))?;
        log.at("info", step, "waiting for the health check").await;
        let healthy = async {
            match &step.spec.health {
                Some(h) => {
                    let (published, check) = health_check(&h.probe);
                    let timeout = Duration::from_millis(h.timeout_ms);
                    health::wait_healthy(session, &spec.name, published, &check, timeout).await
                }
                None => health::wait_image_healthy(session, &spec.name, SETTLE, DEFAULT_HEALTH_TIMEOUT).await,
            }
        };
        let result: Result<(), HealthError> = tokio::select! {
            r = healthy => r,
            reason = control.stopped() => {
                return Err(StepFailure { replaced: true, message: format!("stopped ({reason:?}) while waiting for health") });
            }
        };
        if let Err(e) = result {
            log.at("error", step, &e.to_string()).await;
            return Err(fail(true)(first_line(&e.to_string())));
        }
        let run_spec = serde_json::to_string(&step.spec).unwrap_or_default();
        let record = Deployed {
            env: &t.env,
            host: &step.host.name,
            component: &step.spec.component,
            product: step.spec.product.as_deref(),
            version: step.spec.version.as_deref(),
            image: &step.spec.image,
            image_tag: &step.spec.image_tag,
            image_digest: Some(digest.as_str()),
            container: &spec.name,
            run_spec: &run_spec,
            task_id: t.id,
        };
        let action = if t.kind == "rollback" { "restored" } else { "deployed" };
        deployed::record(self.pool(), &record, action).await.map_err(|e| fail(true)(e.to_string()))?;
        log.at("info", step, &format!("healthy: {} runs {}", spec.name, step.spec.describe())).await;
        Ok(())
    }

    /// Undoes replaced steps, newest first: the previous spec comes back (by digest when recorded), or a
    /// container that did not exist before is removed. Returns a summary for the task's error.
    async fn roll_back(&self, t: &TaskRow, replaced: Vec<Replaced>, sessions: &Sessions, log: &TaskLog) -> String {
        if replaced.is_empty() {
            return "nothing had been changed".into();
        }
        log.write("warn", None, None, &format!("rolling back {} container(s)", replaced.len())).await;
        let mut failures = 0;
        for r in replaced.into_iter().rev() {
            let step = &r.step;
            let session = match sessions.get(&step.host.name).await {
                Ok(s) => s,
                Err(e) => {
                    failures += 1;
                    log.at("error", step, &format!("rollback failed: host unreachable: {e}")).await;
                    continue;
                }
            };
            let session = session.as_ref();
            let docker = RemoteDocker::new(session);
            let result = match &step.previous {
                Some(previous) => self.restore(t, step, previous, session, log).await,
                None => match docker.remove(&step.spec.container).await {
                    Ok(_) => deployed::remove(self.pool(), &t.env, &step.host.name, &step.spec.component, t.id)
                        .await
                        .map(|_| "removed (it did not run before)".to_string())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
            };
            match result {
                Ok(what) => log.at("warn", step, &format!("rolled back: {what}")).await,
                Err(e) => {
                    failures += 1;
                    log.at("error", step, &format!("rollback failed: {e}")).await;
                }
            }
        }
        if failures == 0 {
            "rolled back what this task changed".into()
        } else {
            format!("rollback failed for {failures} container(s): check the environment")
        }
    }

    async fn restore(
        &self,
        t: &TaskRow,
        step: &Step,
        previous: &RunSpec,
        session: &SshSession,
        log: &TaskLog,
    ) -> Result<String, String> {
        let secrets = self.secrets([previous]).await?;
        let spec = self.container_spec(t, previous, &secrets)?;
        let spec = with_files(session, &spec, previous).await?;
        let docker = RemoteDocker::new(session);
        let digest = docker.pull(&spec.image).await.map_err(|e| e.to_string())?;
        docker.replace(&spec).await.map_err(|e| e.to_string())?;
        if let Some(h) = &previous.health {
            let (published, check) = health_check(&h.probe);
            if let Err(e) =
                health::wait_healthy(session, &spec.name, published, &check, Duration::from_millis(h.timeout_ms)).await
            {
                log.at("warn", step, &format!("restored container is not healthy: {}", first_line(&e.to_string())))
                    .await;
            }
        }
        let run_spec = serde_json::to_string(previous).unwrap_or_default();
        let record = Deployed {
            env: &t.env,
            host: &step.host.name,
            component: &previous.component,
            product: previous.product.as_deref(),
            version: previous.version.as_deref(),
            image: &previous.image,
            image_tag: &previous.image_tag,
            image_digest: Some(digest.as_str()),
            container: &spec.name,
            run_spec: &run_spec,
            task_id: t.id,
        };
        deployed::record(self.pool(), &record, "restored").await.map_err(|e| e.to_string())?;
        Ok(format!("{} runs {} again", spec.name, previous.describe()))
    }

    /// Records a completed product version (full release or rollback) with the state after it.
    async fn succeed(&self, t: &TaskRow, req: &DeployRequest, log: &TaskLog) -> Outcome {
        let full = match &req.target {
            DeployTarget::Release { components, .. } => components.is_empty(),
            DeployTarget::Rollback { .. } => true,
            DeployTarget::Component { .. } => false,
        };
        if let (true, Some(product), Some(version)) = (full, &t.product, &t.version) {
            let snapshot = match self.snapshot(&t.env, product).await {
                Ok(s) => s,
                Err(e) => return Outcome::Failed(format!("recording the deployed product version failed: {e}")),
            };
            let json = serde_json::to_string(&snapshot).unwrap_or_default();
            if let Err(e) = deployed::record_release(self.pool(), &t.env, product, version, t.id, &json).await {
                return Outcome::Failed(format!("recording the deployed product version failed: {e}"));
            }
            log.info(&format!("{} now runs {product} {version}", t.env)).await;
        }
        log.info("done").await;
        Outcome::Succeeded
    }

    /// Every recorded container of `product` in `env`, pinned to the digest that was pulled.
    async fn snapshot(&self, env: &str, product: &str) -> Result<Vec<Current>, String> {
        let rows = deployed::state(self.pool(), env).await.map_err(|e| e.to_string())?;
        let rows: Vec<_> = rows.into_iter().filter(|r| r.product.as_deref() == Some(product)).collect();
        let mut current = current_specs(&rows).map_err(|e| e.to_string())?;
        for (c, row) in current.iter_mut().zip(&rows) {
            if let (None, Some(d)) = (&c.spec.image_digest, &row.image_digest) {
                c.spec.image = format!("{}@{d}", c.spec.image_repo);
                c.spec.image_digest = Some(d.clone());
            }
        }
        Ok(current)
    }
}

/// Uploads a spec's rendered configuration files to the host (through stdin, under the deploy user's
/// `~/.tao/files/CONTAINER/`) and returns the container spec with each mounted read-only at its target.
async fn with_files(session: &SshSession, spec: &ContainerSpec, run: &RunSpec) -> Result<ContainerSpec, String> {
    if run.files.is_empty() {
        return Ok(spec.clone());
    }
    let t = Duration::from_secs(30);
    let home = session.run(&["sh", "-c", "printf %s \"$HOME\""], None, t).await.map_err(|e| e.to_string())?;
    let home = home.stdout.trim_end().to_string();
    if !home.starts_with('/') || home.contains(':') {
        return Err(format!("the deploy user's home directory {home:?} cannot hold configuration files"));
    }
    let dir = format!("{home}/.tao/files/{}", spec.name);
    let mut out = spec.clone();
    for (i, f) in run.files.iter().enumerate() {
        let base: String = f
            .target
            .rsplit('/')
            .next()
            .unwrap_or("file")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
            .collect();
        let name = format!("{i}-{base}");
        let script = "umask 022 && mkdir -p \"$1\" && cat > \"$1/$2\"";
        let written = session
            .run(&["sh", "-c", script, "sh", &dir, &name], Some(f.content.as_bytes()), t)
            .await
            .map_err(|e| e.to_string())?;
        if !written.ok() {
            return Err(format!("uploading {} failed: {}", f.target, written.last_error_line()));
        }
        out.volumes.push(format!("{dir}/{name}:{}:ro", f.target));
    }
    out.validate().map_err(|e| e.to_string())?;
    Ok(out)
}

enum WaveOutcome {
    Done,
    Stopped { replaced: Vec<Replaced>, reason: StopReason },
    Failed { replaced: Vec<Replaced>, message: String },
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}
