//! Deploy services: turn a request (product version, component build, rollback) into a queued task
//! after validating it, authorizing it by environment tier and checking freezes; plans for `--dry-run`;
//! tasks, logs, cancellation; freezes; the deployed state of an environment.
//!
//! Every request is planned once here, against the current deployed state, so bad input fails with a
//! 422 before anything is queued; the runner plans again when it holds the environment's lease.

use serde::Serialize;

use super::{Actor, ServiceError, Services};
use crate::catalog::access::Scope;
use crate::catalog::{Environment, FieldError, Tier};
use crate::deploy::plan::{HostTarget, Plan};
use crate::deploy::prepare::{self, PrepareError};
use crate::deploy::prepare::{DeployRequest, DeployTarget};
use crate::deploy::queue::StopReason;
use crate::deploy::task::TaskStatus;
use crate::store;
use crate::store::deployed::{self, DeployedRow, FreezeRow, HistoryRow};
use crate::store::task::{self, CancelOutcome, LogRow, NewTask, TaskRow};

/// An environment as the API shows it: definition, what runs, freeze.
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentView {
    /// Name.
    pub name: String,
    /// Catalog definition.
    pub definition: serde_json::Value,
    /// Recorded containers.
    pub deployed: Vec<DeployedView>,
    /// Product versions that reached it, newest first (at most 10).
    pub releases: Vec<serde_json::Value>,
    /// The freeze, if frozen.
    pub frozen: Option<FreezeRow>,
}

/// One recorded container.
#[derive(Debug, Clone, Serialize)]
pub struct DeployedView {
    /// Component.
    pub component: String,
    /// Host.
    pub host: String,
    /// `1.1.0`, or `@ feature-x-3f2a1c` off-release.
    pub version: String,
    /// Off-release component build.
    pub off_release: bool,
    /// Product.
    pub product: Option<String>,
    /// Image reference.
    pub image: String,
    /// Digest.
    pub image_digest: Option<String>,
    /// Container.
    pub container: String,
    /// Since (RFC 3339).
    pub since: String,
    /// Task.
    pub task_id: i64,
}

impl From<&DeployedRow> for DeployedView {
    fn from(r: &DeployedRow) -> Self {
        DeployedView {
            component: r.component.clone(),
            host: r.host.clone(),
            version: r.version.clone().unwrap_or_else(|| format!("@ {}", r.image_tag)),
            off_release: r.version.is_none(),
            product: r.product.clone(),
            image: r.image.clone(),
            image_digest: r.image_digest.clone(),
            container: r.container.clone(),
            since: store::rfc3339(r.deployed_at),
            task_id: r.task_id,
        }
    }
}

fn field(path: &str, expected: impl Into<String>, found: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(vec![FieldError::new(path, expected, found)])
}

fn from_prepare(e: PrepareError) -> ServiceError {
    match e {
        PrepareError::Invalid(errors) => ServiceError::Invalid(errors),
        PrepareError::Store(e) => ServiceError::Store(e),
    }
}

/// The least token scope that may deploy to an environment: its `protection.deploy` when set, else by
/// tier (`prod` needs `admin`, every other tier `deploy`).
pub fn scope_for(env: &Environment) -> Scope {
    match env.protection.as_ref().and_then(|p| p.deploy.as_deref()) {
        Some("admin") => Scope::Admin,
        Some(_) => Scope::Deploy,
        None if env.tier == Tier::Prod => Scope::Admin,
        None => Scope::Deploy,
    }
}

impl Services {
    fn authorize_env(&self, actor: &Actor, env: &str) -> Result<(), ServiceError> {
        let catalog = self.catalog_now();
        let def = catalog
            .environments
            .get(env)
            .ok_or_else(|| field("env", "an environment of the catalog", format!("{env:?}")))?;
        let (needed, tier) = (scope_for(def), def.tier);
        match actor {
            Actor::Local(_) => Ok(()),
            Actor::Token { scope, name } if *scope >= needed => {
                let _ = name;
                Ok(())
            }
            Actor::Token { scope, name } => Err(ServiceError::Forbidden(format!(
                "deploying to {env} (tier {}) needs the {needed} scope; token {name:?} has {scope}",
                tier.as_str()
            ))),
            Actor::Anonymous => Err(ServiceError::Forbidden(format!("deploying to {env} needs a token"))),
            Actor::CiJob(job) => Err(ServiceError::Forbidden(format!(
                "{job} may only deploy and create product versions, not change {env} otherwise"
            ))),
            Actor::Chat(user) => user.may_change(env, def).map_err(ServiceError::Forbidden),
        }
    }

    /// Validates, authorizes and plans a request without queuing anything.
    pub async fn plan_deploy(&self, actor: &Actor, req: &DeployRequest) -> Result<(Plan, Option<i64>), ServiceError> {
        match actor {
            Actor::CiJob(job) => super::ci_job::authorize_deploy(job, &self.catalog_now(), req)?,
            _ => self.authorize_env(actor, &req.env)?,
        }
        self.preview(req).await
    }

    /// Plans a request for display (`--dry-run`): read-only, so anyone who may read may ask.
    pub async fn preview(&self, req: &DeployRequest) -> Result<(Plan, Option<i64>), ServiceError> {
        let catalog = self.catalog_now();
        let plan = prepare::prepare(self.pool(), &catalog, self.templates_dir(), req).await.map_err(from_prepare)?;
        Ok((plan, self.live().revision))
    }

    /// Queues a deploy (or returns the task of the same idempotency key). The flag says whether it was
    /// created now.
    pub async fn request_deploy(&self, actor: &Actor, req: &DeployRequest) -> Result<(TaskRow, bool), ServiceError> {
        if let Some(key) = &req.idempotency_key {
            if key.is_empty() || key.len() > 255 {
                return Err(field("Idempotency-Key", "1 to 255 characters", format!("{} characters", key.len())));
            }
        }
        // A CI job's requests are keyed by its job id: a retried job step yields the same task.
        let keyed;
        let req = match actor {
            Actor::CiJob(job) => {
                keyed = DeployRequest { idempotency_key: Some(format!("gitlab-job-{}", job.job_id)), ..req.clone() };
                &keyed
            }
            _ => req,
        };
        let audit_target = format!("{} {}", req.env, describe(&req.target));
        let (plan, revision) = match self.plan_deploy(actor, req).await {
            Ok(p) => p,
            Err(e) => {
                let outcome = if matches!(e, ServiceError::Forbidden(_)) { "denied" } else { "rejected" };
                store::audit::record(
                    self.pool(),
                    &actor.to_string(),
                    "deploy.request",
                    &audit_target,
                    outcome,
                    &e.to_string(),
                )
                .await?;
                return Err(e);
            }
        };
        if let Some(f) = deployed::frozen(self.pool(), &req.env).await? {
            let msg = format!("{} is frozen by {}: {}; unfreeze it first", req.env, f.frozen_by, f.reason);
            store::audit::record(self.pool(), &actor.to_string(), "deploy.request", &audit_target, "denied", &msg)
                .await?;
            return Err(ServiceError::Locked(msg));
        }
        let target = prepare::task_target(self.pool(), req).await.map_err(from_prepare)?;
        let new = NewTask {
            kind: target.kind,
            env: req.env.clone(),
            product: target.product,
            version: target.version,
            component: target.component,
            image_tag: target.image_tag,
            components: target.components,
            force: req.force,
            rollback_on_failure: req.rollback_on_failure,
            requested_by: actor.to_string(),
            idempotency_key: req.idempotency_key.clone(),
            catalog_revision: revision,
            plan: serde_json::to_string(&plan).ok(),
        };
        let (row, created) = task::enqueue(self.pool(), &new).await?;
        if created {
            let detail = format!("task {}", row.id);
            store::audit::record(self.pool(), &actor.to_string(), "deploy.request", &audit_target, "ok", &detail)
                .await?;
            self.queue().wake();
            self.queue().changed(row.id);
            crate::deploy::queue::notify_replicas(self.pool()).await;
            if let Actor::CiJob(job) = actor {
                self.track_in_gitlab(job, &req.env, row.id);
            }
        }
        Ok((row, created))
    }

    /// One task.
    pub async fn task(&self, id: i64) -> Result<TaskRow, ServiceError> {
        task::get(self.pool(), id).await?.ok_or_else(|| ServiceError::NotFound(format!("task {id} does not exist")))
    }

    /// Recent tasks.
    pub async fn tasks(&self, env: Option<&str>, limit: i64) -> Result<Vec<TaskRow>, ServiceError> {
        Ok(task::list(self.pool(), env, limit.clamp(1, 1000)).await?)
    }

    /// One page of the task list, newest first: the tasks before task `before` (from the newest when
    /// `None`), optionally of one environment.
    pub async fn task_page(
        &self,
        env: Option<&str>,
        before: Option<i64>,
        n: i64,
    ) -> Result<Vec<TaskRow>, ServiceError> {
        Ok(task::page(self.pool(), env, before, n).await?)
    }

    /// One page of an environment's history, newest first: the entries before entry `before`.
    pub async fn history_page(&self, env: &str, before: Option<i64>, n: i64) -> Result<Vec<HistoryRow>, ServiceError> {
        Ok(deployed::history_page(self.pool(), env, before, n).await?)
    }

    /// Log lines of a task after line `after`.
    pub async fn task_log(&self, id: i64, after: i64) -> Result<Vec<LogRow>, ServiceError> {
        Ok(task::log_after(self.pool(), id, after, 1000).await?)
    }

    /// Cancels a queued task, or asks a running one to stop and roll back.
    pub async fn cancel(&self, actor: &Actor, id: i64) -> Result<CancelOutcome, ServiceError> {
        let t = self.task(id).await?;
        self.authorize_env(actor, &t.env)?;
        let outcome = task::request_cancel(self.pool(), id).await?;
        if outcome == CancelOutcome::Requested {
            self.queue().stop(id, StopReason::Cancelled);
        }
        self.queue().changed(id);
        let word = match &outcome {
            CancelOutcome::Cancelled | CancelOutcome::Requested => "ok",
            _ => "unchanged",
        };
        store::audit::record(self.pool(), &actor.to_string(), "task.cancel", &format!("task {id}"), word, "").await?;
        Ok(outcome)
    }

    /// Freezes an environment against new deploys.
    pub async fn freeze(&self, actor: &Actor, env: &str, reason: &str) -> Result<FreezeRow, ServiceError> {
        self.authorize_env(actor, env)?;
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 500 {
            return Err(field("reason", "a reason of 1 to 500 characters", format!("{} characters", reason.len())));
        }
        deployed::freeze(self.pool(), env, reason, &actor.to_string()).await?;
        store::audit::record(self.pool(), &actor.to_string(), "env.freeze", env, "ok", reason).await?;
        let row = deployed::frozen(self.pool(), env).await?.ok_or_else(|| ServiceError::NotFound(env.to_string()))?;
        if let Some(n) = self.notifier() {
            let f = crate::notify::fields([
                ("env", env.into()),
                ("reason", row.reason.clone().into()),
                ("actor", row.frozen_by.clone().into()),
            ]);
            n.emit_quietly("env.frozen", &format!("freeze-{env}-{}", row.frozen_at), f).await;
        }
        Ok(row)
    }

    /// Lifts a freeze; false when the environment was not frozen.
    pub async fn unfreeze(&self, actor: &Actor, env: &str) -> Result<bool, ServiceError> {
        self.authorize_env(actor, env)?;
        let lifted = deployed::unfreeze(self.pool(), env).await?;
        let word = if lifted { "ok" } else { "unchanged" };
        store::audit::record(self.pool(), &actor.to_string(), "env.unfreeze", env, word, "").await?;
        if let (true, Some(n)) = (lifted, self.notifier()) {
            let f = crate::notify::fields([("env", env.into()), ("actor", actor.to_string().into())]);
            n.emit_quietly("env.unfrozen", &format!("unfreeze-{env}-{}", store::now_ms()), f).await;
        }
        Ok(lifted)
    }

    /// Compares what runs on the hosts with the recorded state of `env`.
    pub async fn check_env(&self, env: &str) -> Result<crate::deploy::drift::Check, ServiceError> {
        let catalog = self.catalog_now();
        let def = catalog
            .environments
            .get(env)
            .ok_or_else(|| ServiceError::NotFound(format!("environment {env:?} is not in the catalog")))?;
        let hosts: Vec<HostTarget> = def.hosts.iter().map(HostTarget::from).collect();
        let rows = deployed::state(self.pool(), env).await?;
        // Orphans are removed only while no task runs here: a running blue-green step keeps the old
        // container for its rollback.
        let running =
            store::task::list(self.pool(), Some(env), 50).await?.iter().any(|t| t.status == TaskStatus::Running);
        Ok(crate::deploy::drift::check(&rows, &hosts, self.ssh(), !running).await)
    }

    /// Definition, deployed state, recent product versions and freeze of an environment.
    pub async fn environment(&self, env: &str) -> Result<EnvironmentView, ServiceError> {
        let catalog = self.catalog_now();
        let def = catalog
            .environments
            .get(env)
            .ok_or_else(|| ServiceError::NotFound(format!("environment {env:?} is not in the catalog")))?;
        let rows = deployed::state(self.pool(), env).await?;
        let releases = deployed::releases(self.pool(), env).await?;
        Ok(EnvironmentView {
            name: env.to_string(),
            definition: serde_json::to_value(def).unwrap_or_default(),
            deployed: rows.iter().map(DeployedView::from).collect(),
            releases: releases
                .iter()
                .take(10)
                .map(|r| {
                    serde_json::json!({
                        "product": r.product, "version": r.version, "task_id": r.task_id,
                        "deployed_at": store::rfc3339(r.deployed_at),
                    })
                })
                .collect(),
            frozen: deployed::frozen(self.pool(), env).await?,
        })
    }
}

fn describe(t: &DeployTarget) -> String {
    match t {
        DeployTarget::Release { product, version, components } if components.is_empty() => {
            format!("{product} {version}")
        }
        DeployTarget::Release { product, version, components } => {
            format!("{product} {version} [{}]", components.join(","))
        }
        DeployTarget::Component { component, image_tag } => format!("{component} @ {image_tag}"),
        DeployTarget::Rollback { to: Some(v) } => format!("rollback to {v}"),
        DeployTarget::Rollback { to: None } => "rollback".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn the_least_scope_comes_from_protection_else_the_tier() {
        let yaml = include_str!("../../examples/tao.yaml");
        let c = Catalog::from_yaml(yaml).unwrap();
        assert_eq!(scope_for(&c.environments["env-1"]), Scope::Deploy);
        assert_eq!(scope_for(&c.environments["prod"]), Scope::Admin);
        let guarded = yaml.replacen("    tier: test", "    tier: test\n    protection: { deploy: admin }", 1);
        let c = Catalog::from_yaml(&guarded).unwrap();
        assert_eq!(scope_for(&c.environments["env-1"]), Scope::Admin);
        let open_prod = yaml.replace("deploy: admin", "deploy: deploy");
        let c = Catalog::from_yaml(&open_prod).unwrap();
        assert_eq!(scope_for(&c.environments["prod"]), Scope::Deploy, "an explicit choice");
    }
}
