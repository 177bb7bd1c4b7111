//! The validated catalog model: products, components, environments.
//!
//! Owns the typed shape of `tao.yaml` once it has passed validation, and small read-only helpers over
//! it. Field names match the YAML (a user-facing contract) and so the JSON the server returns. Must not
//! parse text (see `validate`) and does no I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::name::{ComponentName, EnvName, HostName};
use super::template;
use super::value::{serialize_duration, PortMapping, ProjectPath, VolumeMount};

/// Default git tag format of a component.
pub const DEFAULT_GIT_TAG: &str = "v{version}";
/// Default image tag format of a component.
pub const DEFAULT_IMAGE_TAG: &str = "{version}";
/// Default container name template.
pub const DEFAULT_CONTAINER_NAME: &str = "{env}-{component}";
/// Default health check timeout.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// Default SSH port of a host.
pub const DEFAULT_SSH_PORT: u16 = 22;
/// Default test command of a component's CI pipeline.
pub const DEFAULT_CI_TEST: &str = "make test";

/// A product: a set of components released together under one version.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Product {
    /// Components of the product (non-empty, no duplicates, in catalog order).
    pub components: Vec<ComponentName>,
    /// Free text for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// GitLab project whose `vX.Y.Z` tags create product versions (the shared `product-release.yml`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_project: Option<ProjectPath>,
    /// The TAPD workspace the product is planned in, and how its iterations name versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tapd: Option<TapdMapping>,
}

/// Default pattern of iteration names: the version itself (`1.1.0`; a leading `v` is accepted too).
pub const DEFAULT_ITERATION_NAME: &str = "{version}";

/// A product's TAPD mapping (the `tapd:` key): product ↔ workspace, product version ↔ iteration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TapdMapping {
    /// The workspace (project) id, digits.
    pub workspace_id: String,
    /// Iteration name pattern with one `{version}`, e.g. `v{version}` or `{version} 迭代`.
    pub iteration_name: String,
}

impl TapdMapping {
    /// The product version an iteration's name means, when it matches the pattern and holds a version.
    pub fn version_of(&self, iteration_name: &str) -> Option<super::Version> {
        version_in_name(&self.iteration_name, iteration_name)
    }
}

/// The version a plan's name (a TAPD iteration, a GitLab milestone) holds under `pattern` (one
/// `{version}`, e.g. `v{version}`), when it matches and the middle is a version (a leading `v` accepted).
pub fn version_in_name(pattern: &str, name: &str) -> Option<super::Version> {
    let (prefix, suffix) = pattern.split_once("{version}")?;
    let middle = name.trim().strip_prefix(prefix)?.strip_suffix(suffix)?;
    super::Version::parse(middle).ok()
}

impl Product {
    /// The version a plan name (TAPD iteration, GitLab milestone title) of this product means: matched
    /// against the `tapd:` mapping's `iteration_name` when there is one, else [`DEFAULT_ITERATION_NAME`].
    pub fn version_of_plan(&self, name: &str) -> Option<super::Version> {
        let pattern = self.tapd.as_ref().map_or(DEFAULT_ITERATION_NAME, |t| t.iteration_name.as_str());
        version_in_name(pattern, name)
    }
}

/// How a component relates to environments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// An application container deployed with its product (the default).
    #[default]
    App,
    /// A service deployed once per environment, like a cache or a queue.
    EnvService,
    /// Something environments only point at, like a database: never deployed.
    Shared,
}

impl Layer {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::App => "app",
            Layer::EnvService => "env-service",
            Layer::Shared => "shared",
        }
    }

    /// Whether Tao deploys components of this layer.
    pub fn is_deployed(self) -> bool {
        self != Layer::Shared
    }
}

/// A component: one GitLab project, one image, one container per placed host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Component {
    /// GitLab project path; present for deployed layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectPath>,
    /// Image repository without tag; present for deployed layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Git tag format, e.g. `v{version}`.
    pub git_tag: String,
    /// Image tag format, e.g. `{version}`.
    pub image_tag: String,
    /// How the component relates to environments.
    pub layer: Layer,
    /// Components that must be deployed (and healthy) first.
    pub depends_on: Vec<ComponentName>,
    /// How the container runs.
    pub container: Container,
    /// How to tell the container is up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// What the shared CI pipeline runs for this component.
    pub ci: CiSettings,
    /// How its containers are replaced (default: the environment's, else [`Rollout::default`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// How a component's containers are replaced on the hosts of a wave: the `rollout:` key of a component,
/// or of an environment as the default of its components.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rollout {
    /// The strategy.
    pub strategy: Strategy,
    /// `rolling`: how many hosts of the component are replaced at a time (at least 1).
    pub batch: u32,
    /// How long an old container keeps serving in-flight requests after traffic left it.
    #[serde(serialize_with = "serialize_duration")]
    pub drain: std::time::Duration,
}

/// Default batch of a `rolling` rollout.
pub const DEFAULT_ROLLOUT_BATCH: u32 = 1;
/// Default drain period of a rollout.
pub const DEFAULT_ROLLOUT_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

impl Default for Rollout {
    /// `recreate`, one host at a time, 5 s drain.
    fn default() -> Rollout {
        Rollout { strategy: Strategy::Recreate, batch: DEFAULT_ROLLOUT_BATCH, drain: DEFAULT_ROLLOUT_DRAIN }
    }
}

/// A rollout strategy (the catalog's names: `recreate`, `rolling`, `blue-green`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Stop the old container, start the new one in its place (for what must never run twice).
    Recreate,
    /// Replace the component's hosts `batch` at a time, each batch health-gated before the next.
    Rolling,
    /// Start the new container next to the old one and switch the host's proxy to it once healthy.
    BlueGreen,
}

impl Strategy {
    /// The catalog's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Recreate => "recreate",
            Strategy::Rolling => "rolling",
            Strategy::BlueGreen => "blue-green",
        }
    }
}

/// CI settings of a component (the `ci:` key), read by the shared CI templates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CiSettings {
    /// Shell command of the `test` stage, run in the project's checkout.
    pub test: String,
}

impl Default for CiSettings {
    fn default() -> Self {
        CiSettings { test: DEFAULT_CI_TEST.to_owned() }
    }
}

impl Component {
    /// Whether a proxy can switch traffic between two containers of this component: it has an HTTP or
    /// TCP health check (the switch waits for it) and publishes TCP ports (which the proxy takes over).
    pub fn can_switch(&self) -> bool {
        let checked =
            matches!(self.health.as_ref().map(|h| &h.check), Some(HealthCheck::Http { .. } | HealthCheck::Tcp { .. }));
        checked
            && !self.container.ports.is_empty()
            && self.container.ports.iter().all(|p| p.protocol == super::value::Protocol::Tcp)
    }

    /// The image reference (`repository:tag`) of a version, when the component has an image.
    pub fn image_ref(&self, version: &super::Version) -> Option<String> {
        let image = self.image.as_deref()?;
        Some(format!("{image}:{}", version.format(&self.image_tag)))
    }

    /// Names of the secrets the container's environment refers to, sorted, without duplicates.
    pub fn env_secret_names(&self) -> Vec<String> {
        let names: std::collections::BTreeSet<&str> = self
            .container
            .env
            .values()
            .filter_map(|v| match v {
                EnvValue::Secret { secret } => Some(secret.as_str()),
                EnvValue::Plain(_) => None,
            })
            .collect();
        names.into_iter().map(str::to_owned).collect()
    }

    /// The git tag of a version.
    pub fn git_tag_of(&self, version: &super::Version) -> String {
        version.format(&self.git_tag)
    }
}

/// Container settings of a component.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Container {
    /// Name template; placeholders `{env}`, `{component}`, `{host}`.
    pub name: String,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// Environment variables.
    pub env: BTreeMap<String, EnvValue>,
    /// Mounted volumes.
    pub volumes: Vec<VolumeMount>,
    /// Files rendered per environment, uploaded and mounted.
    pub files: Vec<FileMount>,
    /// Arguments passed to the image's entry point.
    pub command: Vec<String>,
}

impl Default for Container {
    fn default() -> Self {
        Container {
            name: DEFAULT_CONTAINER_NAME.to_owned(),
            ports: Vec::new(),
            env: BTreeMap::new(),
            volumes: Vec::new(),
            files: Vec::new(),
            command: Vec::new(),
        }
    }
}

/// An environment variable's value: plain text or a reference to a secret kept on the Tao host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EnvValue {
    /// Literal text (may hold `{{…}}` template expressions rendered per environment).
    Plain(String),
    /// A secret resolved on the Tao host at deploy time; its value never appears in the catalog.
    Secret {
        /// The secret's name.
        secret: String,
    },
}

/// A file rendered from a template and mounted into the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileMount {
    /// Absolute path inside the container.
    pub target: String,
    /// Template path, relative to the catalog file.
    pub template: String,
}

/// A health check and how long to wait for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The check.
    #[serde(flatten)]
    pub check: HealthCheck,
    /// How long to wait for the check to pass.
    #[serde(serialize_with = "serialize_duration")]
    pub timeout: Duration,
}

/// One kind of health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheck {
    /// An HTTP GET answering 2xx.
    Http {
        /// Container port.
        port: u16,
        /// Absolute request path.
        path: String,
    },
    /// A TCP connection accepted.
    Tcp {
        /// Container port.
        port: u16,
    },
    /// A shell command exiting 0 inside the container.
    Command(String),
}

/// Deployment tier of an environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Development.
    Dev,
    /// Test.
    Test,
    /// Staging.
    Staging,
    /// Production.
    Prod,
}

impl Tier {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Dev => "dev",
            Tier::Test => "test",
            Tier::Staging => "staging",
            Tier::Prod => "prod",
        }
    }
}

/// An environment: hosts running Docker, and how components are placed on them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Environment {
    /// Deployment tier.
    pub tier: Tier,
    /// DNS domain of the environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Hosts (non-empty, unique names).
    pub hosts: Vec<Host>,
    /// Component → hosts; a component not listed runs on every host.
    pub placement: BTreeMap<ComponentName, Vec<HostName>>,
    /// Variables available to templates.
    pub variables: BTreeMap<String, String>,
    /// Host → component → container overrides.
    pub overrides: BTreeMap<HostName, BTreeMap<ComponentName, Override>>,
    /// Who may deploy here (default: by tier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protection: Option<Protection>,
    /// The rollout of components that do not name their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// The reverse proxy Tao runs on each host to switch blue-green components (`proxy: { image }`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxySettings>,
}

/// The reverse proxy of an environment's hosts: an HAProxy image (the official `haproxy` image or one
/// laid out like it: `haproxy` on the `PATH`, configuration under `/usr/local/etc/haproxy`), run by Tao
/// as one container per host that owns the published ports of the blue-green components there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProxySettings {
    /// Image reference with a tag or digest, e.g. `registry.example.com/haproxy:2.6`.
    pub image: String,
}

impl Environment {
    /// Hosts a component runs on: its placement, or every host.
    pub fn hosts_for(&self, component: &str) -> Vec<&Host> {
        match self.placement.get(component) {
            Some(names) => self.hosts.iter().filter(|h| names.contains(&h.name)).collect(),
            None => self.hosts.iter().collect(),
        }
    }

    /// The override of a component on a host, if any.
    pub fn override_for(&self, host: &str, component: &str) -> Option<&Override> {
        self.overrides.get(host)?.get(component)
    }

    /// How `component` is rolled out here: its own rollout, else this environment's, else `blue-green`
    /// when this environment has a proxy and the component can be switched (see
    /// [`Component::can_switch`]), else `recreate`. An environment's `blue-green` default applies to the
    /// components that can be switched; the others are recreated.
    pub fn rollout_of(&self, component: &Component) -> Rollout {
        if let Some(own) = component.rollout {
            return own;
        }
        let switchable = self.proxy.is_some() && component.can_switch();
        match self.rollout {
            Some(r) if r.strategy == Strategy::BlueGreen && !switchable => {
                Rollout { strategy: Strategy::Recreate, ..r }
            }
            Some(r) => r,
            None if switchable => Rollout { strategy: Strategy::BlueGreen, ..Rollout::default() },
            None => Rollout::default(),
        }
    }
}

/// Who may deploy to an environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Protection {
    /// Least API token scope that may deploy, freeze or cancel here: `deploy` or `admin` (default:
    /// `admin` for the `prod` tier, `deploy` for every other).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<String>,
    /// Named roles that may deploy here (chat users and GitLab members are mapped to roles in config).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// A host reachable over SSH.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Host {
    /// Name, unique within the environment.
    pub name: HostName,
    /// IP address or DNS name.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// SSH user.
    pub user: String,
}

/// Per-host changes to a component's container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Override {
    /// Container name template replacing the component's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Published ports replacing the component's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortMapping>>,
}

/// Fills a container name template.
pub fn container_name(template: &str, env: &EnvName, component: &ComponentName, host: &HostName) -> String {
    template::render(template, &[("env", env.as_str()), ("component", component.as_str()), ("host", host.as_str())])
}
