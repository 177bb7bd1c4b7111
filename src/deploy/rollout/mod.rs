//! Rollout strategies: how one step of a plan replaces a container on its host and decides that the new
//! one is healthy.
//!
//! The runner prepares everything a step needs before the strategy is asked (the image pulled by digest,
//! configuration files uploaded, a validated container spec) and records the result after it; the
//! strategy owns the moment between, the only moment a service can be seen to go down. Two per-step
//! strategies: [`recreate::Recreate`] (stop the old container, start the new one under its name,
//! health-gate it) and [`blue_green::BlueGreen`] (start the new one next to the old, health-gate it,
//! switch the host's proxy; the runner retires the old one after its drain, [`drain_of`]). The catalog's `rolling`
//! rollout is recreate in batches of hosts, each batch a wave of the plan. [`for_step`] is the one place
//! that chooses.
//!
//! Also owns the health gate every strategy (and a rollback's restore) uses: the catalog's check when
//! there is one, else "kept running for a while".

pub mod blue_green;
pub mod recreate;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::docker::ContainerSpec;
use super::health::{self, HealthError};
use super::plan::Step;
use super::queue::TaskControl;
use super::spec::{HealthSpec, Probe};
use super::ssh::SshSession;
use super::tasklog::TaskLog;
use crate::catalog::HealthCheck;

/// How long a container without a catalog health check must keep running to count as healthy.
pub const SETTLE: Duration = Duration::from_secs(2);
/// Health timeout of a container without a catalog health check.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

/// What a strategy is given for one step: the step, the ready container spec, the host's session, the
/// task's stop signal and its log.
pub struct StepIo<'a> {
    /// The plan's step (host, run spec, what ran before).
    pub step: &'a Step,
    /// The container to run: validated, files mounted, image pinned.
    pub spec: &'a ContainerSpec,
    /// The host's SSH session.
    pub session: &'a SshSession,
    /// Stop requests (cancel, shutdown) while the step runs.
    pub control: TaskControl,
    /// The task's log.
    pub log: &'a TaskLog,
    /// The environment (labels the host's proxy).
    pub env: &'a str,
    /// A stopped container this task kept that runs `spec` already (a blue-green rollback starts it
    /// again instead of creating one).
    pub reuse: Option<&'a str>,
}

/// What a step left running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// The container that now runs the step's spec (blue-green: the new colour).
    pub container: String,
    /// The container traffic left (blue-green), to be retired after the drain and kept until the task
    /// ends.
    pub retired: Option<String>,
}

/// Why a step failed, and whether it had already replaced the container (so a rollback must undo it).
#[derive(Debug)]
pub struct StepFailure {
    /// The running container was touched.
    pub replaced: bool,
    /// What went wrong, one line.
    pub message: String,
}

impl StepFailure {
    /// Failed before anything on the host changed.
    pub fn untouched(message: impl Into<String>) -> StepFailure {
        StepFailure { replaced: false, message: message.into() }
    }

    /// Failed after the container was replaced.
    pub fn replaced(message: impl Into<String>) -> StepFailure {
        StepFailure { replaced: true, message: message.into() }
    }
}

/// The future of one step's replacement.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<Replacement, StepFailure>> + Send + 'a>>;

/// A way of replacing a component's container on one host.
pub trait Rollout: Send + Sync {
    /// Replaces the container of `io.step` with `io.spec` and returns once the new one is healthy; on
    /// failure, says whether the running container was touched.
    fn replace<'a>(&'a self, io: StepIo<'a>) -> StepFuture<'a>;
}

/// The strategy that replaces `step`'s container: blue-green when the plan gave the step a proxy to
/// switch (`plan::Switch`), else recreate. A `rolling` rollout's steps recreate too: what makes it
/// rolling is the plan, which puts each batch of the component's hosts in a wave of its own
/// (`plan::Batch`), so the next batch starts only once this one is healthy.
pub fn for_step(step: &Step) -> &'static dyn Rollout {
    match step.switch {
        Some(_) => &blue_green::BlueGreen,
        None => &recreate::Recreate,
    }
}

/// How long the container traffic left keeps serving its in-flight requests after `step`'s switch.
pub fn drain_of(step: &Step) -> Duration {
    Duration::from_millis(step.switch.as_ref().map_or(0, |s| s.drain_ms))
}

/// Waits until `container` is healthy: by the catalog's check when the run spec has one, else by the
/// image's own health check or by having kept running for [`SETTLE`].
pub async fn gate(session: &SshSession, container: &str, health: Option<&HealthSpec>) -> Result<(), HealthError> {
    match health {
        Some(h) => probe(session, container, h).await,
        None => health::wait_image_healthy(session, container, SETTLE, DEFAULT_HEALTH_TIMEOUT).await,
    }
}

/// Waits until the catalog's check `h` passes for `container`, within its timeout.
pub async fn probe(session: &SshSession, container: &str, h: &HealthSpec) -> Result<(), HealthError> {
    let (published, check) = match &h.probe {
        Probe::Http { port, path, published } => (*published, HealthCheck::Http { port: *port, path: path.clone() }),
        Probe::Tcp { port, published } => (*published, HealthCheck::Tcp { port: *port }),
        Probe::Command { command } => (None, HealthCheck::Command(command.clone())),
    };
    health::wait_healthy(session, container, published, &check, Duration::from_millis(h.timeout_ms)).await
}

/// The first line of a multi-line error (a health failure carries the container's log tail after it).
pub fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}
