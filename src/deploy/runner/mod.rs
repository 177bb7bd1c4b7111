//! The runner: executes one claimed task. Plans again (now that it holds the environment's lease),
//! validates every container spec and resolves secrets before connecting anywhere, connects once per
//! host, then per wave and per host in parallel: pull, upload files, replace (the step's rollout
//! strategy, `deploy/rollout`), record. On the first failure (or a cancellation) it stops and, unless
//! disabled, rolls back what this task replaced, in reverse.
//!
//! This file owns the orchestration (sessions, waves, the outcome); `containers.rs` builds container
//! specs (secrets, files), `rollback.rs` undoes replaced steps, `record.rs` writes the deployed state and
//! the product version a task leaves. Every line a person may need is written to the task log (never an
//! env value). Must not decide policy (who may deploy, freezes): the services did that before the task
//! was queued.

mod containers;
mod record;
mod rollback;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::docker::{ContainerSpec, RemoteDocker};
use super::plan::{Plan, Step};
use super::prepare;
use super::queue::QueueHandle;
use super::queue::{BoxFuture, Executor, Outcome, StopReason, TaskControl};
use super::rollout::{self, StepFailure, StepIo};
use super::spec::RunSpec;
use super::ssh::{SshOptions, SshSession, SshTarget};
use super::task::TaskKind;
use super::tasklog::TaskLog;
use crate::catalog::CatalogSource;
use crate::store::task::{self, TaskRow};
use crate::store::Pool;

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
    /// The container that runs the step's spec, when the step finished.
    container: Option<String>,
    /// The container traffic left (blue-green): it serves in-flight requests until `drained_at`, is then
    /// stopped (between waves) and kept until the task ends.
    retired: Option<String>,
    /// When the retired container's drain ends.
    drained_at: Option<Instant>,
    /// Whether the retired container was stopped already.
    stopped: bool,
}

impl Replaced {
    fn new(step: &Step, container: Option<String>, retired: Option<String>) -> Replaced {
        let drained_at = retired.as_ref().map(|_| Instant::now() + rollout::drain_of(step));
        Replaced { step: step.clone(), container, retired, drained_at, stopped: false }
    }
}

/// How the waves ended.
enum WaveOutcome {
    Done { replaced: Vec<Replaced> },
    Stopped { replaced: Vec<Replaced>, reason: StopReason },
    Failed { replaced: Vec<Replaced>, message: String },
}

impl Runner {
    async fn run(self, t: TaskRow, control: TaskControl) -> Outcome {
        let log = TaskLog::new(self.ctx.pool.clone(), self.ctx.queue.clone(), t.id);
        let req = match prepare::request_of(&t) {
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
            WaveOutcome::Done { replaced } => {
                self.remove_retired(&replaced, &sessions, &log).await;
                self.succeed(&t, &req, &log).await
            }
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
            self.stop_drained(&mut replaced, sessions, log).await;
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
                            Ok(r) => done.push(Replaced::new(step, Some(r.container), r.retired)),
                            Err(f) => {
                                if f.replaced {
                                    done.push(Replaced::new(step, None, None));
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
        WaveOutcome::Done { replaced }
    }

    /// Between waves: stops (and keeps, for a rollback) the containers blue-green steps switched away
    /// from whose drain has ended. Their drains overlap the waves that follow instead of delaying them.
    async fn stop_drained(&self, replaced: &mut [Replaced], sessions: &Sessions, log: &TaskLog) {
        let now = Instant::now();
        let due = replaced.iter_mut().filter(|r| !r.stopped && r.drained_at.is_some_and(|d| d <= now));
        let stops = due.map(|r| async move {
            let Some(old) = r.retired.clone() else { return };
            let stopped = match sessions.get(&r.step.host.name).await {
                Ok(session) => RemoteDocker::new(&session).stop(&old, 10).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match stopped {
                Ok(()) => {
                    log.at("info", &r.step, &format!("stopped {old} after its drain (kept until the task ends)")).await
                }
                Err(e) => log.at("warn", &r.step, &format!("stopping {old} failed: {e}")).await,
            }
            r.stopped = true;
        });
        futures_util::future::join_all(stops).await;
    }

    /// At the end of a task that succeeded: once the last drain has ended, removes every container
    /// blue-green steps switched away from (on all hosts at once).
    async fn remove_retired(&self, replaced: &[Replaced], sessions: &Sessions, log: &TaskLog) {
        if let Some(last) = replaced.iter().filter(|r| !r.stopped).filter_map(|r| r.drained_at).max() {
            tokio::time::sleep_until(last.into()).await;
        }
        let removals = replaced.iter().map(|r| async move {
            let Some(old) = &r.retired else { return };
            let removed = match sessions.get(&r.step.host.name).await {
                Ok(session) => RemoteDocker::new(&session).remove(old).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match removed {
                Ok(_) => log.at("info", &r.step, &format!("removed the old container {old}")).await,
                Err(e) => log.at("warn", &r.step, &format!("removing the old container {old} failed: {e}")).await,
            }
        });
        futures_util::future::join_all(removals).await;
    }

    /// One step on its host: pull (pinning the digest), upload files, let the step's rollout strategy
    /// replace the container, record what now runs, and retire the container traffic left (blue-green).
    async fn deploy_step(
        &self,
        t: &TaskRow,
        step: &Step,
        spec: &ContainerSpec,
        session: &SshSession,
        control: TaskControl,
        log: &TaskLog,
    ) -> Result<rollout::Replacement, StepFailure> {
        let docker = RemoteDocker::new(session);
        if let Some(b) = step.batch {
            let line = format!("rolling: batch {} of {} ({} host(s) at a time)", b.number, b.of, b.size);
            log.at("info", step, &line).await;
        }
        log.at("info", step, &format!("pulling {}", spec.image.as_str())).await;
        let digest = docker.pull(&spec.image).await.map_err(|e| StepFailure::untouched(e.to_string()))?;
        let spec = &containers::with_files(session, spec, &step.spec).await.map_err(StepFailure::untouched)?;
        if !step.spec.files.is_empty() {
            log.at("info", step, &format!("uploaded {} configuration file(s)", step.spec.files.len())).await;
        }
        let strategy = rollout::for_step(step);
        let io = StepIo { step, spec, session, control, log, env: &t.env, reuse: None };
        let replacement = strategy.replace(io).await?;
        let action = if t.kind == TaskKind::Rollback { "restored" } else { "deployed" };
        let container = &replacement.container;
        record::deployed(self.pool(), t, &step.host.name, &step.spec, container, digest.as_str(), action)
            .await
            .map_err(StepFailure::replaced)?;
        if let Some(old) = &replacement.retired {
            log.at("info", step, &format!("draining {old} for {:?}", rollout::drain_of(step))).await;
        }
        log.at("info", step, &format!("healthy: {container} runs {}", step.spec.describe())).await;
        Ok(replacement)
    }
}
