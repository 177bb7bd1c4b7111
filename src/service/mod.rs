//! The services behind every front end: what the HTTP API (and later chat and CI) do, in one place.
//!
//! `deploy.rs` holds the deploy services (requests, plans, tasks, freezes, history), `policy.rs` branch
//! policy, `ci_job.rs` CI job identities, `records.rs` reading what was recorded (audit, events, metrics,
//! pictures, a version's work items). A service call takes an [`Actor`], validates its input against the
//! live catalog, changes the store and writes the audit record; it knows nothing of HTTP status codes or
//! terminal output. Front ends map [`ServiceError`] to their own way of saying no, and reach the store
//! only through here (`tests/it/floors.rs` checks that no adapter holds the pool).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use crate::catalog::access::Scope;
use crate::catalog::{Catalog, FieldError, Version, VersionError};
use crate::deploy::queue::QueueHandle;
use crate::deploy::registry::RegistryClient;
use crate::deploy::ssh::SshOptions;
use crate::gitlab::client::{GitLabClient, ProjectId};
use crate::store::release::{CreateOutcome, NewProductVersion, ProductVersion, ReleaseComponent};
use crate::store::token::Token;
use crate::store::{self, Pool, StoreError};

mod ci_job;
mod deploy;
mod policy;
mod records;
mod session;
pub use crate::catalog::access::{level, level_name, ChatUser};
pub use crate::deploy::prepare::{current_specs, DeployRequest, DeployTarget};
pub use ci_job::{CiJob, JobTokenError};
pub use deploy::EnvironmentView;
pub use records::{LabelledChange, Reached, VersionItem, VersionWorkItems, WorkItemQuery};
pub use session::{level_of_scope, WebSession};

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An API token, by name.
    Token {
        /// Token name.
        name: String,
        /// Its scope.
        scope: Scope,
    },
    /// No credentials (only where read access is opened by configuration).
    Anonymous,
    /// Tao itself (e.g. applying the catalog file at start), or a local CLI command with database access.
    Local(String),
    /// A GitLab CI job, verified with GitLab through its `JOB-TOKEN` (may deploy and release; see `ci_job`).
    CiJob(Box<CiJob>),
    /// Someone in chat (Discord or an MR comment) or signed in to the web console (transport `web`), with
    /// the role configuration or GitLab gives them.
    Chat(Box<ChatUser>),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Token { name, .. } => write!(f, "token:{name}"),
            Actor::Anonymous => f.write_str("anonymous"),
            Actor::Local(who) => f.write_str(who),
            Actor::CiJob(job) => job.fmt(f),
            Actor::Chat(user) => user.fmt(f),
        }
    }
}

/// Why a service call did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input is invalid; every problem is listed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what is stored and cannot be applied.
    #[error("{0}")]
    Conflict(String),
    /// The actor may not do this; the message names the missing permission.
    #[error("{0}")]
    Forbidden(String),
    /// The target refuses changes for now (a frozen environment); the message says why.
    #[error("{0}")]
    Locked(String),
    /// This Tao is not set up for the request (GitLab not configured): a local configuration problem,
    /// not an upstream failure; the message names the missing settings.
    #[error("{0}")]
    NotConfigured(String),
    /// A service Tao depends on (GitLab) failed; the message says which and how.
    #[error("{0}")]
    Upstream(String),
    /// Storage failed; the message for users must not include it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The catalog in force and the revision it came from.
#[derive(Debug, Clone, Default)]
pub struct LiveCatalog {
    /// Stored revision number (none before the first catalog is applied).
    pub revision: Option<i64>,
    /// SHA-256 of its YAML.
    pub hash: Option<String>,
    /// The parsed catalog (none before the first catalog is applied).
    pub catalog: Option<Arc<Catalog>>,
}

/// Outcome of applying a catalog.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CatalogApplied {
    /// The live revision after the call.
    pub revision: i64,
    /// Its hash.
    pub hash: String,
    /// False when the text equals the live revision (nothing stored).
    pub changed: bool,
}

/// The services, cheap to clone (shared state behind `Arc`s).
#[derive(Debug, Clone)]
pub struct Services {
    pool: Pool,
    live: Arc<RwLock<LiveCatalog>>,
    queue: QueueHandle,
    registry: RegistryClient,
    ssh: Arc<SshOptions>,
    templates_dir: Option<Arc<std::path::PathBuf>>,
    gitlab: Option<GitLabClient>,
    public_url: Option<Arc<String>>,
    notifier: Option<crate::notify::Notifier>,
}

impl Services {
    /// Loads the live catalog from the store.
    pub async fn load(pool: Pool) -> Result<Services, ServiceError> {
        let services = Services {
            pool,
            live: Arc::default(),
            queue: QueueHandle::default(),
            registry: RegistryClient::new(None),
            ssh: Arc::new(SshOptions::new(None, None)),
            templates_dir: None,
            gitlab: None,
            public_url: None,
            notifier: None,
        };
        if let Some(rev) = store::catalog::latest(&services.pool).await? {
            // A stored revision was valid when applied; if this build rejects it, say so loudly but serve on.
            match Catalog::from_yaml(&rev.yaml) {
                Ok(cat) => services.set_live(rev.id, rev.hash, cat),
                Err(errors) => tracing::error!(revision = rev.id, %errors, "stored catalog no longer validates"),
            }
        }
        Ok(services)
    }

    /// The store (for the wiring in `app` and offline CLI commands; front ends call the services).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The live API token `presented` stands for, if any (unknown, revoked and expired tokens: `None`).
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Token>, ServiceError> {
        Ok(store::token::authenticate(&self.pool, presented).await?)
    }

    /// Whether the store answers, and which backend it is (`sqlite`, `postgres`).
    pub async fn store_health(&self) -> (Result<(), ServiceError>, &'static str) {
        (self.pool.ping().await.map_err(ServiceError::from), self.pool.backend())
    }

    /// How Tao reaches hosts (set once at start by the app).
    pub fn ssh(&self) -> &SshOptions {
        &self.ssh
    }

    /// Where configuration file templates named by the catalog are read from.
    pub fn templates_dir(&self) -> Option<&std::path::Path> {
        self.templates_dir.as_deref().map(|p| p.as_path())
    }

    /// Sets the templates directory (the app: `TAO_TEMPLATES_DIR`, else the catalog file's directory).
    pub fn set_templates_dir(&mut self, dir: Option<std::path::PathBuf>) {
        self.templates_dir = dir.map(Arc::new);
    }

    /// Sets the GitLab client (when GitLab is configured): product versions are then checked against
    /// the components' git tags.
    pub fn set_gitlab(&mut self, gitlab: Option<GitLabClient>) {
        self.gitlab = gitlab;
    }

    /// Sets the notifier (the app, when notification rules are configured).
    pub fn set_notifier(&mut self, notifier: Option<crate::notify::Notifier>) {
        self.notifier = notifier;
    }

    /// The notifier, when notifications are configured.
    pub fn notifier(&self) -> Option<&crate::notify::Notifier> {
        self.notifier.as_ref()
    }

    /// The GitLab client, when GitLab is configured.
    pub fn gitlab(&self) -> Option<&GitLabClient> {
        self.gitlab.as_ref()
    }

    /// Sets Tao's external URL (`TAO_PUBLIC_URL`), for links Tao posts to GitLab.
    pub fn set_public_url(&mut self, url: Option<String>) {
        self.public_url = url.map(Arc::new);
    }

    /// Replaces the registry client (the app calls this with configured credentials).
    pub fn set_registry(&mut self, registry: RegistryClient) {
        self.registry = registry;
    }

    /// Replaces the SSH options (the app calls this before serving).
    pub fn set_ssh(&mut self, ssh: SshOptions) {
        self.ssh = Arc::new(ssh);
    }

    /// The deploy queue's handle (wake-ups, stop requests, change notifications).
    pub fn queue(&self) -> &QueueHandle {
        &self.queue
    }

    /// A snapshot of the catalog in force.
    pub fn live(&self) -> LiveCatalog {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn catalog(&self) -> Arc<Catalog> {
        self.live().catalog.unwrap_or_default()
    }

    fn set_live(&self, revision: i64, hash: String, catalog: Catalog) {
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        *live = LiveCatalog { revision: Some(revision), hash: Some(hash), catalog: Some(Arc::new(catalog)) };
    }

    /// Validates `yaml` and makes it the live catalog unless it equals the live one. Rejected whole on any
    /// error.
    pub async fn apply_catalog(&self, actor: &Actor, yaml: &str) -> Result<CatalogApplied, ServiceError> {
        let catalog = match Catalog::from_yaml(yaml) {
            Ok(c) => c,
            Err(errors) => {
                let detail = format!("{} error(s)", errors.0.len());
                store::audit::record(&self.pool, &actor.to_string(), "catalog.apply", "catalog", "rejected", &detail)
                    .await?;
                return Err(ServiceError::Invalid(errors.0));
            }
        };
        let (rev, changed) = store::catalog::apply(&self.pool, yaml, &actor.to_string()).await?;
        let outcome = if changed { "ok" } else { "unchanged" };
        let detail = format!("revision {} {}", rev.id, &rev.hash[..12]);
        store::audit::record(&self.pool, &actor.to_string(), "catalog.apply", "catalog", outcome, &detail).await?;
        self.set_live(rev.id, rev.hash.clone(), catalog);
        Ok(CatalogApplied { revision: rev.id, hash: rev.hash, changed })
    }

    /// Creates a product version; see [`CreateReleaseOutcome`].
    pub async fn create_release(
        &self,
        actor: &Actor,
        product: &str,
        version: &str,
        components: &BTreeMap<String, String>,
    ) -> Result<CreateReleaseOutcome, ServiceError> {
        let live = self.live();
        let catalog = live.catalog.clone().unwrap_or_default();
        if let Actor::CiJob(job) = actor {
            ci_job::authorize_release(job, &catalog, product)?;
        }
        let (product, version, versions) =
            catalog.check_release(product, version, components).map_err(ServiceError::Invalid)?;
        let exists = store::release::get(&self.pool, product.as_str(), &version.to_string()).await?.is_some();
        let mut parts = Vec::with_capacity(versions.len());
        for (name, v) in &versions {
            let Some(def) = catalog.components.get(name) else {
                return Err(ServiceError::NotFound(format!("component {name} is not in the catalog")));
            };
            parts.push(ReleaseComponent {
                component: name.to_string(),
                version: v.to_string(),
                git_tag: v.format(&def.git_tag),
                image: def.image.clone(),
                image_tag: v.format(&def.image_tag),
                image_digest: None,
            });
        }
        if !exists {
            self.check_tags(&catalog, &parts).await?;
            self.resolve_digests(&mut parts).await;
        }
        let new = NewProductVersion {
            product: product.to_string(),
            version: version.to_string(),
            catalog_revision: live.revision,
            created_by: actor.to_string(),
            components: parts,
        };
        let target = format!("{product} {version}");
        let outcome = store::release::create(&self.pool, &new).await?;
        let (word, result) = match outcome {
            CreateOutcome::Created(pv) => {
                if let Some(n) = &self.notifier {
                    let f = crate::notify::fields([
                        ("product", pv.product.clone().into()),
                        ("version", pv.version.clone().into()),
                        ("actor", pv.created_by.clone().into()),
                    ]);
                    n.emit_quietly("release.created", &format!("release-{}-{}", pv.product, pv.version), f).await;
                }
                ("ok", Ok(CreateReleaseOutcome::Created(pv)))
            }
            CreateOutcome::Unchanged(pv) => ("unchanged", Ok(CreateReleaseOutcome::Unchanged(pv))),
            CreateOutcome::Conflict(existing) => {
                let diff = describe_difference(&existing, &new);
                let msg = format!(
                    "{product} {version} already exists with different component versions ({diff}); \
                     product versions are immutable: create a new version"
                );
                ("conflict", Err(ServiceError::Conflict(msg)))
            }
        };
        store::audit::record(&self.pool, &actor.to_string(), "release.create", &target, word, "").await?;
        result
    }

    /// With GitLab configured, every component version must exist as its git tag in the component's
    /// project: a missing tag is a field error naming the component. Components without a project
    /// (`shared` ones) are not checked.
    async fn check_tags(&self, catalog: &Catalog, parts: &[ReleaseComponent]) -> Result<(), ServiceError> {
        let Some(gitlab) = &self.gitlab else { return Ok(()) };
        let lookups = parts.iter().filter_map(|c| {
            let project = catalog.components.get(c.component.as_str())?.project.as_ref()?.to_string();
            Some(async move {
                let found = gitlab.tag(&ProjectId::Path(project.clone()), &c.git_tag).await;
                (c, project, found)
            })
        });
        let mut missing = Vec::new();
        for (c, project, found) in futures_util::future::join_all(lookups).await {
            match found {
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => missing.push(FieldError::new(
                    format!("components.{}", c.component),
                    format!("a version whose git tag {} exists in {project}", c.git_tag),
                    format!("no tag {} in GitLab", c.git_tag),
                )),
                Err(e) => return Err(ServiceError::Upstream(format!("cannot check git tags with GitLab: {e}"))),
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Invalid(missing))
        }
    }

    /// Pins each image tag to the digest its registry reports now; an unreachable registry leaves the
    /// digest unknown (deploys then pull by tag) with a warning.
    async fn resolve_digests(&self, parts: &mut [ReleaseComponent]) {
        let lookups = parts.iter().map(|c| {
            let registry = self.registry.clone();
            let (image, tag) = (c.image.clone(), c.image_tag.clone());
            async move {
                let image = image?;
                match registry.digest(&image, &tag).await {
                    Ok(d) => Some(d),
                    Err(e) => {
                        tracing::warn!(image = %image, tag = %tag, error = %e, "no digest; deploys will pull by tag");
                        None
                    }
                }
            }
        });
        let digests = futures_util::future::join_all(lookups).await;
        for (part, digest) in parts.iter_mut().zip(digests) {
            part.image_digest = digest;
        }
    }

    /// One product version.
    pub async fn release(&self, product: &str, version: &str) -> Result<ProductVersion, ServiceError> {
        let normalized = Version::parse(version).map_err(|e| {
            ServiceError::Invalid(vec![FieldError::new("version", VersionError::EXPECTED, format!("{:?}", e.found))])
        })?;
        store::release::get(&self.pool, product, &normalized.to_string())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("{product} {normalized} does not exist")))
    }

    /// Every version of a product, newest first. The product must be in the live catalog.
    pub async fn releases(&self, product: &str) -> Result<Vec<ProductVersion>, ServiceError> {
        if !self.catalog().products.contains_key(product) {
            return Err(ServiceError::NotFound(format!("product {product} is not in the catalog")));
        }
        Ok(store::release::list(&self.pool, product).await?)
    }

    /// The catalog in force (empty before the first one is applied).
    pub fn catalog_now(&self) -> Arc<Catalog> {
        self.catalog()
    }

    /// The catalog in force as a source to read at each use (for parts below the services: the event
    /// handlers and the deploy runner).
    pub fn catalog_source(&self) -> crate::catalog::CatalogSource {
        let live = self.live.clone();
        Arc::new(move || live.read().unwrap_or_else(|e| e.into_inner()).catalog.clone().unwrap_or_default())
    }
}

/// Result of [`Services::create_release`] when nothing went wrong.
#[derive(Debug, Clone)]
pub enum CreateReleaseOutcome {
    /// Stored now.
    Created(ProductVersion),
    /// Already stored, identical: nothing changed.
    Unchanged(ProductVersion),
}

fn describe_difference(existing: &ProductVersion, new: &NewProductVersion) -> String {
    let old = existing.version_map();
    new.components
        .iter()
        .filter_map(|c| match old.get(c.component.as_str()) {
            Some(v) if *v == c.version => None,
            Some(v) => Some(format!("{}: stored {v}, requested {}", c.component, c.version)),
            None => Some(format!("{}: not stored, requested {}", c.component, c.version)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
