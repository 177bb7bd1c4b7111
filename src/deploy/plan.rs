//! The deploy planner (pure): target vs an environment's deployed state → the steps that change
//! something, placed on their hosts, in waves ordered by `depends_on`.
//!
//! A component starts only after everything it depends on is healthy, so each wave waits for the one
//! before. Unchanged containers are skipped unless forced; `shared` components are never deployed. No
//! I/O: the caller reads the catalog, the product version and the deployed state and hands them in.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::spec::{render, render_file, FileSpec, HealthSpec, Probe, RenderContext, RunSpec};
use crate::catalog::release::ReleaseComponent;
use crate::catalog::{
    Catalog, Component, ComponentName, EnvName, EnvValue, Environment, HealthCheck, Host, PortMapping, ProductName,
    Rollout, Strategy, Tier,
};

/// What a deploy should make true.
#[derive(Debug, Clone)]
pub enum Target<'a> {
    /// A product version, or the listed subset of its components.
    Release {
        /// Product.
        product: &'a ProductName,
        /// Version.
        version: &'a str,
        /// Its components as stored (tags, digests).
        components: &'a [ReleaseComponent],
    },
    /// One component build (an image tag or digest), off-release.
    Component {
        /// Component.
        component: &'a ComponentName,
        /// Tag (`feature-x-3f2a1c`) or digest (`sha256:…`).
        image_tag: &'a str,
    },
    /// Exactly these stored run specs (rollback).
    Restore {
        /// Product, for ordering by its dependency waves.
        product: Option<&'a ProductName>,
        /// Host → specs to restore.
        snapshot: &'a [Current],
    },
}

/// One running container as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    /// Host name.
    pub host: String,
    /// The spec it runs.
    pub spec: RunSpec,
}

/// Options of a plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Only these components (of a product version).
    pub only: Option<BTreeSet<ComponentName>>,
    /// Replace even unchanged containers.
    pub force: bool,
    /// Configuration file templates by their catalog path (`templates/api.conf.hbs`), loaded by the
    /// caller; a component's file whose template is missing here is a plan error.
    pub templates: BTreeMap<String, String>,
}

/// Where a step runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTarget {
    /// Host name in the environment.
    pub name: String,
    /// Address to connect to.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// SSH user.
    pub user: String,
}

impl From<&Host> for HostTarget {
    fn from(h: &Host) -> HostTarget {
        HostTarget { name: h.name.to_string(), address: h.address.clone(), port: h.port, user: h.user.clone() }
    }
}

/// Replace one container on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The host.
    pub host: HostTarget,
    /// What to run.
    pub spec: RunSpec,
    /// What ran before (restored if the task fails), if anything.
    pub previous: Option<RunSpec>,
    /// Of a `rolling` rollout: which batch of its component's hosts this step is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Batch>,
    /// Of a `blue-green` rollout: the host's proxy that switches traffic to the new container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<Switch>,
}

/// How a `blue-green` step switches: the new container starts next to the old one on loopback ports of
/// its own, and the host's proxy (one container per environment and host, owning the published ports)
/// is pointed at it once it is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    /// The proxy's container on the host (`tao-proxy-ENV-HOST`).
    pub proxy: String,
    /// The proxy's image (the environment's `proxy.image`).
    pub proxy_image: String,
    /// How long the old container keeps serving in-flight requests after the switch, milliseconds.
    pub drain_ms: u64,
}

/// The proxy container of environment `env` on host `host`.
pub fn proxy_container(env: &str, host: &str) -> String {
    format!("tao-proxy-{env}-{host}")
}

/// A batch of a `rolling` rollout: the hosts of one component replaced together, health-gated before
/// the next batch starts (each batch is a wave of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// 1-based.
    pub number: u32,
    /// How many batches the component has in this task.
    pub of: u32,
    /// Hosts per batch (the catalog's `batch`).
    pub size: u32,
}

/// A container left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skip {
    /// Host name.
    pub host: String,
    /// Component name.
    pub component: String,
    /// Why it is left alone.
    pub reason: String,
}

/// The ordered steps of a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Plan {
    /// Environment.
    pub env: String,
    /// Waves in order; the steps of one wave may run in parallel across hosts.
    pub waves: Vec<Vec<Step>>,
    /// What is already as it should be.
    pub unchanged: Vec<Skip>,
}

impl Plan {
    /// Number of steps.
    pub fn len(&self) -> usize {
        self.waves.iter().map(Vec::len).sum()
    }
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The named thing is missing from the catalog (field, expected, found).
    #[error("{field}: expected {expected}, found {found}")]
    Invalid {
        /// Request field at fault.
        field: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
}

fn invalid(field: &str, expected: impl Into<String>, found: impl Into<String>) -> PlanError {
    PlanError::Invalid { field: field.into(), expected: expected.into(), found: found.into() }
}

/// True for tiers that accept single component builds (integration testing while developing).
pub fn tier_allows_component_builds(tier: Tier) -> bool {
    matches!(tier, Tier::Dev | Tier::Test)
}

/// A docker image tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) or a digest (`sha256:` + 64 hex).
pub fn valid_image_tag(tag: &str) -> bool {
    if let Some(hex) = tag.strip_prefix("sha256:") {
        return hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    }
    let mut bytes = tag.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Makes the plan.
pub fn plan(
    catalog: &Catalog,
    env_name: &EnvName,
    target: Target<'_>,
    current: &[Current],
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    let env = catalog
        .environments
        .get(env_name)
        .ok_or_else(|| invalid("env", "an environment of the catalog", format!("{:?}", env_name.as_str())))?;
    let now: BTreeMap<(&str, &str), &RunSpec> =
        current.iter().map(|c| ((c.host.as_str(), c.spec.component.as_str()), &c.spec)).collect();
    let mut plan = Plan { env: env_name.to_string(), ..Plan::default() };

    // (component, host) → desired spec, grouped into waves of component names.
    let (waves, desired) = match target {
        Target::Release { product, version, components } => {
            let waves = catalog
                .deploy_waves(product.as_str())
                .ok_or_else(|| invalid("product", "a product of the catalog", format!("{:?}", product.as_str())))?;
            if let Some(only) = &opts.only {
                let members: BTreeSet<&ComponentName> = waves.iter().flatten().collect();
                for c in only {
                    if !members.contains(c) {
                        return Err(invalid(
                            "components",
                            format!("components of {product}"),
                            format!("{:?}", c.as_str()),
                        ));
                    }
                }
            }
            let mut desired = BTreeMap::new();
            for name in waves.iter().flatten() {
                if opts.only.as_ref().is_some_and(|o| !o.contains(name)) {
                    continue;
                }
                let def = component(catalog, name)?;
                if !def.layer.is_deployed() {
                    continue;
                }
                let stored = components.iter().find(|c| c.component == name.as_str()).ok_or_else(|| {
                    invalid("version", format!("a product version naming {name}"), format!("{product} {version}"))
                })?;
                let repo = stored.image.clone().or_else(|| def.image.clone()).ok_or_else(|| {
                    invalid("components", format!("an image for {name}"), "none in the catalog or the product version")
                })?;
                let image = ImageChoice {
                    repo,
                    tag: stored.image_tag.clone(),
                    digest: stored.image_digest.clone(),
                    product: Some(product.to_string()),
                    version: Some(stored.version.clone()),
                };
                for host in env.hosts_for(name.as_str()) {
                    let spec = build_spec(catalog, env_name, env, host, name, def, &image, &opts.templates)?;
                    desired.insert((name.clone(), host.name.to_string()), (HostTarget::from(host), spec));
                }
            }
            (waves, desired)
        }
        Target::Component { component: name, image_tag } => {
            let def = component(catalog, name)?;
            if !def.layer.is_deployed() {
                return Err(invalid("component", "a deployable component", format!("{name} (layer shared)")));
            }
            if !tier_allows_component_builds(env.tier) {
                return Err(invalid(
                    "env",
                    "a dev or test environment (component builds never go to higher tiers; deploy a product version)",
                    format!("{env_name} (tier {})", env.tier.as_str()),
                ));
            }
            if !valid_image_tag(image_tag) {
                return Err(invalid("image_tag", "an image tag or sha256 digest", format!("{image_tag:?}")));
            }
            let repo =
                def.image.clone().ok_or_else(|| invalid("component", "a component with an image", name.as_str()))?;
            let digest = image_tag.starts_with("sha256:").then(|| image_tag.to_string());
            let image = ImageChoice { repo, tag: image_tag.to_string(), digest, product: None, version: None };
            let mut desired = BTreeMap::new();
            for host in env.hosts_for(name.as_str()) {
                let spec = build_spec(catalog, env_name, env, host, name, def, &image, &opts.templates)?;
                desired.insert((name.clone(), host.name.to_string()), (HostTarget::from(host), spec));
            }
            (vec![vec![name.clone()]], desired)
        }
        Target::Restore { product, snapshot } => {
            let mut desired = BTreeMap::new();
            let mut names = BTreeSet::new();
            for entry in snapshot {
                let host = env.hosts.iter().find(|h| h.name.as_str() == entry.host).ok_or_else(|| {
                    invalid("env", format!("host {} in {env_name}", entry.host), "the host is gone from the catalog")
                })?;
                let name = ComponentName::parse(&entry.spec.component)
                    .map_err(|e| invalid("snapshot", "a component name", e.to_string()))?;
                names.insert(name.clone());
                desired.insert((name, entry.host.clone()), (HostTarget::from(host), entry.spec.clone()));
            }
            let waves = match product.and_then(|p| catalog.deploy_waves(p.as_str())) {
                Some(mut waves) => {
                    for w in &mut waves {
                        w.retain(|c| names.contains(c));
                    }
                    let listed: BTreeSet<ComponentName> = waves.iter().flatten().cloned().collect();
                    let rest: Vec<ComponentName> = names.difference(&listed).cloned().collect();
                    if !rest.is_empty() {
                        waves.push(rest);
                    }
                    waves
                }
                None => vec![names.into_iter().collect()],
            };
            (waves, desired)
        }
    };

    for wave in waves {
        let mut steps = Vec::new();
        for name in wave {
            for ((_, host), (target, spec)) in desired.range((name.clone(), String::new())..) {
                if spec.component != name.as_str() {
                    break;
                }
                let previous = now.get(&(host.as_str(), name.as_str())).map(|s| (*s).clone());
                if !opts.force && previous.as_ref() == Some(spec) {
                    plan.unchanged.push(Skip {
                        host: host.clone(),
                        component: name.to_string(),
                        reason: format!("already runs {}", spec.describe()),
                    });
                    continue;
                }
                let switch = catalog.components.get(&name).and_then(|c| switch_of(env_name, env, c, &target.name));
                steps.push(Step { host: target.clone(), spec: spec.clone(), previous, batch: None, switch });
            }
        }
        let rollout =
            |component: &str| catalog.components.get(component).map(|c| env.rollout_of(c)).unwrap_or_default();
        plan.waves.extend(in_batches(steps, rollout));
    }
    Ok(plan)
}

/// The switch of a `blue-green` component on `host`, `None` for the other strategies.
fn switch_of(env_name: &EnvName, env: &Environment, c: &Component, host: &str) -> Option<Switch> {
    let rollout = env.rollout_of(c);
    let proxy = env.proxy.as_ref().filter(|_| rollout.strategy == Strategy::BlueGreen)?;
    Some(Switch {
        proxy: proxy_container(env_name.as_str(), host),
        proxy_image: proxy.image.clone(),
        drain_ms: rollout.drain.as_millis().try_into().unwrap_or(u64::MAX),
    })
}

/// Splits one dependency wave's steps into the waves that run it: a `rolling` component's hosts go
/// `batch` at a time, batch k of every rolling component in the k-th wave; every other component's steps
/// all in the first. At no moment are more than `batch` hosts of a rolling component being replaced.
fn in_batches(steps: Vec<Step>, rollout: impl Fn(&str) -> Rollout) -> Vec<Vec<Step>> {
    let mut by_component: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    for step in steps {
        by_component.entry(step.spec.component.clone()).or_default().push(step);
    }
    let mut waves: Vec<Vec<Step>> = Vec::new();
    let mut put = |k: usize, step: Step| {
        while waves.len() <= k {
            waves.push(Vec::new());
        }
        waves[k].push(step);
    };
    for (component, steps) in by_component {
        let r = rollout(&component);
        if r.strategy != Strategy::Rolling {
            steps.into_iter().for_each(|s| put(0, s));
            continue;
        }
        let size = r.batch.max(1) as usize;
        let of = steps.len().div_ceil(size) as u32;
        for (i, mut step) in steps.into_iter().enumerate() {
            let k = i / size;
            step.batch = Some(Batch { number: k as u32 + 1, of, size: size as u32 });
            put(k, step);
        }
    }
    waves.retain(|w| !w.is_empty());
    waves
}

fn component<'c>(catalog: &'c Catalog, name: &ComponentName) -> Result<&'c Component, PlanError> {
    catalog.components.get(name).ok_or_else(|| invalid("component", "a component of the catalog", name.as_str()))
}

struct ImageChoice {
    repo: String,
    tag: String,
    digest: Option<String>,
    product: Option<String>,
    version: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn build_spec(
    catalog: &Catalog,
    env_name: &EnvName,
    env: &Environment,
    host: &Host,
    name: &ComponentName,
    def: &Component,
    image: &ImageChoice,
    templates: &BTreeMap<String, String>,
) -> Result<RunSpec, PlanError> {
    let container = catalog
        .container_name(env_name, &host.name, name)
        .ok_or_else(|| invalid("env", format!("host {} in {env_name}", host.name), "none"))?;
    let ports: Vec<PortMapping> = env
        .override_for(host.name.as_str(), name.as_str())
        .and_then(|o| o.ports.clone())
        .unwrap_or_else(|| def.container.ports.clone());
    let ctx = RenderContext {
        env: env_name.as_str(),
        domain: env.domain.as_deref(),
        tier: env.tier.as_str(),
        variables: &env.variables,
        host: host.name.as_str(),
        address: &host.address,
        component: name.as_str(),
        version: image.version.as_deref(),
    };
    let mut plain = BTreeMap::new();
    let mut secret_env = BTreeMap::new();
    for (key, value) in &def.container.env {
        match value {
            EnvValue::Plain(text) => {
                let rendered = render(text, &ctx)
                    .map_err(|e| invalid(&format!("components.{name}.container.env.{key}"), "a renderable value", e))?;
                plain.insert(key.clone(), rendered);
            }
            EnvValue::Secret { secret } => {
                secret_env.insert(key.clone(), secret.clone());
            }
        }
    }
    let mut files = Vec::with_capacity(def.container.files.len());
    for (i, f) in def.container.files.iter().enumerate() {
        let path = format!("components.{name}.container.files[{i}].template");
        let text = templates.get(&f.template).ok_or_else(|| {
            invalid(&path, "a template file in Tao's templates directory", format!("{:?} is missing", f.template))
        })?;
        let content = render_file(text, &ctx).map_err(|e| invalid(&path, "a template that renders", e))?;
        files.push(FileSpec { target: f.target.clone(), content });
    }
    let published = |port: u16| ports.iter().find(|p| p.container == port).map(|p| p.published);
    let health = def.health.as_ref().map(|h| HealthSpec {
        probe: match &h.check {
            HealthCheck::Http { port, path } => {
                Probe::Http { port: *port, path: path.clone(), published: published(*port) }
            }
            HealthCheck::Tcp { port } => Probe::Tcp { port: *port, published: published(*port) },
            HealthCheck::Command(command) => Probe::Command { command: command.clone() },
        },
        timeout_ms: h.timeout.as_millis().try_into().unwrap_or(u64::MAX),
    });
    let reference = match &image.digest {
        Some(d) => format!("{}@{d}", image.repo),
        None => format!("{}:{}", image.repo, image.tag),
    };
    Ok(RunSpec {
        component: name.to_string(),
        container,
        image: reference,
        image_repo: image.repo.clone(),
        image_tag: image.tag.clone(),
        image_digest: image.digest.clone(),
        product: image.product.clone(),
        version: image.version.clone(),
        ports: ports.iter().map(ToString::to_string).collect(),
        env: plain,
        secret_env,
        volumes: def.container.volumes.iter().map(ToString::to_string).collect(),
        command: def.container.command.clone(),
        restart: "unless-stopped".into(),
        health,
        files,
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
