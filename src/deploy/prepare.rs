//! A deploy request and the preparation of its plan: what a task asks for ([`DeployRequest`]), and what
//! every planning of it needs before the pure [`plan::plan`] — the environment's recorded containers from
//! the store ([`current_specs`]), the file templates ([`load_templates`]), the product version, or the
//! snapshot a rollback returns to ([`rollback_snapshot`]).
//!
//! `service` calls [`prepare`] for a preview and before queueing (so bad input fails before anything is
//! queued); the runner calls it again when the task holds its environment's lease, since the deployed
//! state may have changed while it waited. Must not authorize or check freezes: that is `service`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component as PathPart, Path};

use super::plan::{self, Current, Plan, PlanError, PlanOptions, Target};
use super::spec::RunSpec;
use super::task::TaskKind;
use crate::catalog::{Catalog, ComponentName, EnvName, FieldError, ProductName, Version, VersionError};
use crate::store::deployed::{self, DeployedRow};
use crate::store::task::TaskRow;
use crate::store::{Pool, StoreError};

/// What to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployTarget {
    /// A product version (or some of its components).
    Release {
        /// Product.
        product: String,
        /// Version.
        version: String,
        /// Only these components (empty: all).
        components: Vec<String>,
    },
    /// A component build by image tag or digest (dev/test tiers only).
    Component {
        /// Component.
        component: String,
        /// Tag or `sha256:` digest.
        image_tag: String,
    },
    /// Back to the previous product version of the environment, or the named one.
    Rollback {
        /// Version to return to (default: the one before the current).
        to: Option<String>,
    },
}

impl DeployTarget {
    /// How a task log names it: `monitor 1.1.0`, `api @ feature-x`, `rollback to 1.0.0`.
    pub fn describe(&self) -> String {
        match self {
            DeployTarget::Release { product, version, .. } => format!("{product} {version}"),
            DeployTarget::Component { component, image_tag } => format!("{component} @ {image_tag}"),
            DeployTarget::Rollback { to } => format!("rollback to {}", to.as_deref().unwrap_or("the previous version")),
        }
    }
}

/// A deploy request from any front end.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// Environment.
    pub env: String,
    /// What.
    pub target: DeployTarget,
    /// Replace unchanged containers too.
    pub force: bool,
    /// Undo this task's changes when a step fails (default true).
    pub rollback_on_failure: bool,
    /// The same key always yields the same task.
    pub idempotency_key: Option<String>,
}

/// Why a request could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The request does not fit the catalog or the stored versions; every problem is listed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn field(path: &str, expected: impl Into<String>, found: impl Into<String>) -> PrepareError {
    PrepareError::Invalid(vec![FieldError::new(path, expected, found)])
}

impl From<PlanError> for PrepareError {
    fn from(e: PlanError) -> Self {
        let PlanError::Invalid { field: f, expected, found } = e;
        field(&f, expected, found)
    }
}

/// What a task deploys, as its row stores it: the kind and the fields of that kind (the columns lists,
/// filters and the delivery metrics query). [`task_target`] makes it from a request, [`request_of`] turns
/// a stored task back into its request; nothing else converts between the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTarget {
    /// What kind of deploy.
    pub kind: TaskKind,
    /// Product (release, rollback).
    pub product: Option<String>,
    /// Product version (release; the version a rollback returns to).
    pub version: Option<String>,
    /// Component (component build).
    pub component: Option<String>,
    /// Image tag or digest (component build).
    pub image_tag: Option<String>,
    /// A release's subset of components (empty: all).
    pub components: Vec<String>,
}

impl TaskTarget {
    /// The stored form of a target whose product and version are known (a rollback's are resolved by
    /// [`task_target`]).
    fn of(target: &DeployTarget, rollback_product: Option<String>) -> TaskTarget {
        let none = TaskTarget {
            kind: TaskKind::Release,
            product: None,
            version: None,
            component: None,
            image_tag: None,
            components: Vec::new(),
        };
        match target {
            DeployTarget::Release { product, version, components } => TaskTarget {
                product: Some(product.clone()),
                version: Some(Version::parse(version).map(|v| v.to_string()).unwrap_or(version.clone())),
                components: components.clone(),
                ..none
            },
            DeployTarget::Component { component, image_tag } => TaskTarget {
                kind: TaskKind::Component,
                component: Some(component.clone()),
                image_tag: Some(image_tag.clone()),
                ..none
            },
            DeployTarget::Rollback { to } => {
                TaskTarget { kind: TaskKind::Rollback, product: rollback_product, version: to.clone(), ..none }
            }
        }
    }
}

/// The stored form of `req`'s target in `env`. A rollback is resolved to the product version it returns
/// to, so the task says where it goes even when the request said "the previous one".
pub async fn task_target(pool: &Pool, req: &DeployRequest) -> Result<TaskTarget, PrepareError> {
    match &req.target {
        DeployTarget::Rollback { to } => {
            let (product, snapshot) = rollback_snapshot(pool, &req.env, to.as_deref()).await?;
            let version = snapshot.iter().find_map(|c| c.spec.version.clone());
            Ok(TaskTarget::of(&DeployTarget::Rollback { to: version }, Some(product)))
        }
        other => Ok(TaskTarget::of(other, None)),
    }
}

/// The request a stored task stands for: what the runner plans again when the task starts.
pub fn request_of(t: &TaskRow) -> Result<DeployRequest, String> {
    let target = match t.kind {
        TaskKind::Release => DeployTarget::Release {
            product: t.product.clone().ok_or("release task without product")?,
            version: t.version.clone().ok_or("release task without version")?,
            components: t.components.split(',').filter(|c| !c.is_empty()).map(String::from).collect(),
        },
        TaskKind::Component => DeployTarget::Component {
            component: t.component.clone().ok_or("component task without component")?,
            image_tag: t.image_tag.clone().ok_or("component task without image tag")?,
        },
        TaskKind::Rollback => DeployTarget::Rollback { to: t.version.clone() },
    };
    Ok(DeployRequest {
        env: t.env.clone(),
        target,
        force: t.force,
        rollback_on_failure: t.rollback_on_failure,
        idempotency_key: None,
    })
}

/// The recorded containers of `env` as planner input.
pub fn current_specs(rows: &[DeployedRow]) -> Result<Vec<Current>, StoreError> {
    rows.iter()
        .map(|r| {
            let spec: RunSpec = serde_json::from_str(&r.run_spec)
                .map_err(|e| StoreError::Corrupt { what: "deployed_state.run_spec", detail: e.to_string() })?;
            Ok(Current { host: r.host.clone(), spec })
        })
        .collect()
}

/// Plans `req` against `catalog` and the deployed state in `pool`, with the file templates of
/// `templates_dir`. Read-only.
pub async fn prepare(
    pool: &Pool,
    catalog: &Catalog,
    templates_dir: Option<&Path>,
    req: &DeployRequest,
) -> Result<Plan, PrepareError> {
    let env = EnvName::parse(&req.env).map_err(|e| field("env", "an environment name", e.found))?;
    if !catalog.environments.contains_key(env.as_str()) {
        return Err(field("env", "an environment of the catalog", format!("{:?}", req.env)));
    }
    let rows = deployed::state(pool, env.as_str()).await?;
    let current = current_specs(&rows)?;
    let templates = load_templates(templates_dir, catalog).await;
    let opts = PlanOptions { only: None, force: req.force, templates: templates.clone() };
    let plan = match &req.target {
        DeployTarget::Release { product, version, components } => {
            let product_name = ProductName::parse(product).map_err(|e| field("product", "a product name", e.found))?;
            let normalized = Version::parse(version)
                .map_err(|e| field("version", VersionError::EXPECTED, format!("{:?}", e.found)))?;
            let pv = crate::store::release::get(pool, product, &normalized.to_string()).await?.ok_or_else(|| {
                field("version", "an existing product version", format!("{product} {normalized} does not exist"))
            })?;
            let mut only = BTreeSet::new();
            for c in components {
                only.insert(ComponentName::parse(c).map_err(|e| field("components", "component names", e.found))?);
            }
            let opts = PlanOptions { only: (!only.is_empty()).then_some(only), force: req.force, templates };
            let target = Target::Release { product: &product_name, version: &pv.version, components: &pv.components };
            plan::plan(catalog, &env, target, &current, &opts)?
        }
        DeployTarget::Component { component, image_tag } => {
            let name = ComponentName::parse(component).map_err(|e| field("component", "a component name", e.found))?;
            let target = Target::Component { component: &name, image_tag };
            plan::plan(catalog, &env, target, &current, &opts)?
        }
        DeployTarget::Rollback { to } => {
            let (product, snapshot) = rollback_snapshot(pool, env.as_str(), to.as_deref()).await?;
            let product = ProductName::parse(&product).ok();
            let target = Target::Restore { product: product.as_ref(), snapshot: &snapshot };
            plan::plan(catalog, &env, target, &current, &opts)?
        }
    };
    Ok(plan)
}

/// Reads every configuration file template the catalog names from the templates directory. A path that
/// is absolute or climbs out of the directory is never read (the plan then reports it missing).
pub async fn load_templates(dir: Option<&Path>, catalog: &Catalog) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(dir) = dir else { return out };
    for c in catalog.components.values() {
        for f in &c.container.files {
            let path = Path::new(&f.template);
            let inside = path.components().all(|p| matches!(p, PathPart::Normal(_)));
            if !inside || out.contains_key(&f.template) {
                continue;
            }
            match tokio::fs::read_to_string(dir.join(path)).await {
                Ok(text) => {
                    out.insert(f.template.clone(), text);
                }
                Err(e) => tracing::warn!(template = %f.template, error = %e, "cannot read a file template"),
            }
        }
    }
    out
}

/// The product and stored specs a rollback of `env` returns to: the named version, else the product
/// version before the current one.
pub async fn rollback_snapshot(
    pool: &Pool,
    env: &str,
    to: Option<&str>,
) -> Result<(String, Vec<Current>), PrepareError> {
    let history = deployed::releases(pool, env).await?;
    let chosen = match to {
        Some(v) => {
            let v = Version::parse(v).map_err(|e| field("to", VersionError::EXPECTED, e.found))?;
            history
                .iter()
                .find(|r| r.version == v.to_string())
                .ok_or_else(|| field("to", format!("a product version deployed to {env} before"), v.to_string()))?
        }
        None => {
            let current = history
                .first()
                .ok_or_else(|| field("env", "an environment with a product version deployed", "none yet"))?;
            history.iter().find(|r| r.version != current.version || r.product != current.product).ok_or_else(|| {
                field("env", format!("an earlier product version in {env}"), format!("only {}", current.version))
            })?
        }
    };
    let snapshot: Vec<Current> = serde_json::from_str(&chosen.snapshot)
        .map_err(|e| StoreError::Corrupt { what: "env_release.snapshot", detail: e.to_string() })?;
    Ok((chosen.product.clone(), snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::task::TaskStatus;

    fn row_of(env: &str, t: &TaskTarget) -> TaskRow {
        TaskRow {
            id: 7,
            kind: t.kind,
            env: env.into(),
            product: t.product.clone(),
            version: t.version.clone(),
            component: t.component.clone(),
            image_tag: t.image_tag.clone(),
            components: t.components.join(","),
            force: true,
            rollback_on_failure: false,
            status: TaskStatus::Queued,
            requested_by: "token:ci".into(),
            idempotency_key: None,
            catalog_revision: None,
            plan: None,
            error: None,
            cancel_requested: false,
            worker: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn a_stored_target_reads_back_as_its_request() {
        let release = DeployTarget::Release {
            product: "monitor".into(),
            version: "v1.1.0".into(),
            components: vec!["api".into(), "sql".into()],
        };
        let component = DeployTarget::Component { component: "api".into(), image_tag: "sha256:abc".into() };
        let rollback = DeployTarget::Rollback { to: Some("1.0.0".into()) };
        let cases = [
            (&release, None, TaskKind::Release),
            (&component, None, TaskKind::Component),
            (&rollback, Some("monitor".to_string()), TaskKind::Rollback),
        ];
        for (target, product, kind) in cases {
            let stored = TaskTarget::of(target, product);
            assert_eq!(stored.kind, kind);
            let req = request_of(&row_of("env-1", &stored)).unwrap();
            let expected = match target {
                // The version is stored normalized.
                DeployTarget::Release { product, components, .. } => DeployTarget::Release {
                    product: product.clone(),
                    version: "1.1.0".into(),
                    components: components.clone(),
                },
                other => other.clone(),
            };
            assert_eq!(
                (req.env.as_str(), req.target, req.force, req.rollback_on_failure),
                ("env-1", expected, true, false)
            );
        }
        let rolled = TaskTarget::of(&rollback, Some("monitor".into()));
        assert_eq!((rolled.product.as_deref(), rolled.version.as_deref()), (Some("monitor"), Some("1.0.0")));
    }

    #[test]
    fn a_task_missing_its_kinds_fields_is_refused() {
        let mut stored =
            TaskTarget::of(&DeployTarget::Component { component: "api".into(), image_tag: "x".into() }, None);
        stored.image_tag = None;
        assert_eq!(request_of(&row_of("env-1", &stored)).unwrap_err(), "component task without image tag");
    }
}
