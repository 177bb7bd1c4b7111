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
use crate::catalog::{Catalog, FieldError, Name, Version, VersionError};
use crate::store::deployed::{self, DeployedRow};
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
    let env = Name::parse(&req.env).map_err(|e| field("env", "an environment name", e.found))?;
    if !catalog.environments.contains_key(&env) {
        return Err(field("env", "an environment of the catalog", format!("{:?}", req.env)));
    }
    let rows = deployed::state(pool, env.as_str()).await?;
    let current = current_specs(&rows)?;
    let templates = load_templates(templates_dir, catalog).await;
    let opts = PlanOptions { only: None, force: req.force, templates: templates.clone() };
    let plan = match &req.target {
        DeployTarget::Release { product, version, components } => {
            let product_name = Name::parse(product).map_err(|e| field("product", "a product name", e.found))?;
            let normalized = Version::parse(version)
                .map_err(|e| field("version", VersionError::EXPECTED, format!("{:?}", e.found)))?;
            let pv = crate::store::release::get(pool, product, &normalized.to_string()).await?.ok_or_else(|| {
                field("version", "an existing product version", format!("{product} {normalized} does not exist"))
            })?;
            let mut only = BTreeSet::new();
            for c in components {
                only.insert(Name::parse(c).map_err(|e| field("components", "component names", e.found))?);
            }
            let opts = PlanOptions { only: (!only.is_empty()).then_some(only), force: req.force, templates };
            let target = Target::Release { product: &product_name, version: &pv.version, components: &pv.components };
            plan::plan(catalog, &env, target, &current, &opts)?
        }
        DeployTarget::Component { component, image_tag } => {
            let name = Name::parse(component).map_err(|e| field("component", "a component name", e.found))?;
            let target = Target::Component { component: &name, image_tag };
            plan::plan(catalog, &env, target, &current, &opts)?
        }
        DeployTarget::Rollback { to } => {
            let (product, snapshot) = rollback_snapshot(pool, env.as_str(), to.as_deref()).await?;
            let product = Name::parse(&product).ok();
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
