//! The catalog (`tao.yaml`): products, components, environments and policy, as configuration as code.
//!
//! Owns parsing and validating the catalog (every problem reported at once, each naming its path,
//! what was expected and what was found), the validated model, identifiers (`ProductName`,
//! `ComponentName`, `EnvName`, `HostName` over one `Name` syntax, `Version`, `ProjectPath`), the
//! dependency order of components, and checking a release's component map against a product. Pure
//! domain: no I/O here (reading the file, GitLab, the registry and the database belong to adapters), no
//! logging, no clocks.

pub mod access;
mod error;
mod graph;
mod model;
mod name;
mod policy;
pub mod release;
mod template;
mod validate;
mod validate_env;
mod validate_rollout;
mod value;
mod version;
mod walk;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;

pub use error::{CatalogErrors, FieldError};
pub use model::{
    container_name, CiSettings, Component, Container, EnvValue, Environment, FileMount, Health, HealthCheck, Host,
    Layer, Override, Product, Protection, ProxySettings, Rollout, Strategy, TapdMapping, Tier, DEFAULT_CI_TEST,
    DEFAULT_CONTAINER_NAME, DEFAULT_GIT_TAG, DEFAULT_HEALTH_TIMEOUT, DEFAULT_IMAGE_TAG, DEFAULT_ITERATION_NAME,
    DEFAULT_ROLLOUT_BATCH, DEFAULT_ROLLOUT_DRAIN, DEFAULT_SSH_PORT,
};
pub use name::{ComponentName, EnvName, HostName, Name, NameError, ProductName, MAX_NAME_LEN};
pub use policy::{parse_flow, valid_pattern, PolicyLevel, PolicyMergeMethod, PolicyRole, PolicySection, RefRoles};
pub use template::render;
pub use value::{format_duration, parse_duration, PortMapping, ProjectPath, ProjectPathError, Protocol, VolumeMount};
pub use version::{Version, VersionError, TAG_PLACEHOLDERS};

/// Where long-running parts (event handlers, the deploy runner) read the catalog in force, at each use:
/// it may be re-applied while Tao runs.
pub type CatalogSource = std::sync::Arc<dyn Fn() -> std::sync::Arc<Catalog> + Send + Sync>;
pub(crate) use walk::suggest;

/// A validated catalog.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Catalog {
    /// Products by name.
    pub products: BTreeMap<ProductName, Product>,
    /// Components by name.
    pub components: BTreeMap<ComponentName, Component>,
    /// Environments by name.
    pub environments: BTreeMap<EnvName, Environment>,
    /// The `policy:` section: branch model and merge rules, per group and project.
    #[serde(skip_serializing_if = "is_default_policy")]
    pub policy: PolicySection,
}

fn is_default_policy(p: &PolicySection) -> bool {
    *p == PolicySection::default()
}

impl Catalog {
    /// Every GitLab project the catalog names (components' projects and products' release projects),
    /// sorted, each once.
    pub fn project_paths(&self) -> Vec<String> {
        let components = self.components.values().filter_map(|c| c.project.as_ref());
        let releases = self.products.values().filter_map(|p| p.release_project.as_ref());
        let mut out: Vec<String> = components.chain(releases).map(|p| p.as_str().to_string()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// The git tag format of the component built from `project` (`v{version}` unless the catalog says
    /// otherwise); `None` when no component names the project.
    pub fn tag_format_of(&self, project: &str) -> Option<&str> {
        self.components
            .values()
            .find(|c| c.project.as_ref().is_some_and(|p| p.as_str() == project))
            .map(|c| c.git_tag.as_str())
    }

    /// Parses and validates. On failure returns EVERY error found, not the first only.
    pub fn from_yaml(text: &str) -> Result<Catalog, CatalogErrors> {
        validate::parse(text)
    }

    /// Components of a product in dependency order (dependencies first; ties broken by name).
    /// Includes `shared` components, which a deploy plan skips. `None` for an unknown product.
    pub fn deploy_order(&self, product: &str) -> Option<Vec<ComponentName>> {
        let product = self.products.get(product)?;
        Some(graph::order(&self.components, &product.components))
    }

    /// Components of a product grouped in waves that may deploy in parallel: each wave depends only
    /// on earlier waves; names sorted within a wave. `None` for an unknown product.
    pub fn deploy_waves(&self, product: &str) -> Option<Vec<Vec<ComponentName>>> {
        let product = self.products.get(product)?;
        Some(graph::waves(&self.components, &product.components))
    }

    /// The container name of a component on a host of an environment, honouring per-host overrides.
    /// `None` when the environment, host or component is unknown.
    pub fn container_name(&self, env: &EnvName, host: &HostName, component: &ComponentName) -> Option<String> {
        let environment = self.environments.get(env)?;
        environment.hosts.iter().find(|h| h.name == *host)?;
        let spec = self.components.get(component)?;
        let template = environment
            .override_for(host.as_str(), component.as_str())
            .and_then(|o| o.name.as_deref())
            .unwrap_or(&spec.container.name);
        Some(container_name(template, env, component, host))
    }

    /// Checks a product version's component map: the product must exist; every component of the
    /// product must be named, and only those; every version must be semver. Returns every problem as a
    /// [`FieldError`] with a path relative to a release request body (`product`, `version`,
    /// `components.ops`), or the normalized names and versions.
    ///
    /// `shared` components are required too: a product version records which version of the shared
    /// service it was built and tested against, even though Tao never deploys it.
    #[allow(clippy::type_complexity)]
    pub fn check_release(
        &self,
        product: &str,
        version: &str,
        components: &BTreeMap<String, String>,
    ) -> Result<(ProductName, Version, BTreeMap<ComponentName, Version>), Vec<FieldError>> {
        let mut errors = Vec::new();
        let found_product = self.products.get_key_value(product);
        if found_product.is_none() {
            let known: Vec<&str> = self.products.keys().map(ProductName::as_str).collect();
            errors.push(FieldError::new(
                "product",
                format!("one of the catalog's products ({})", known.join(", ")),
                format!("{product:?}"),
            ));
        }
        let parsed_version = Version::parse(version);
        if parsed_version.is_err() {
            errors.push(FieldError::new("version", VersionError::EXPECTED, format!("{version:?}")));
        }
        let mut versions = BTreeMap::new();
        for (component, text) in components {
            let path = format!("components.{component}");
            if let Some((product_name, spec)) = found_product {
                let member = spec.components.iter().find(|c| c.as_str() == component);
                let Some(member) = member else {
                    let members: Vec<&str> = spec.components.iter().map(ComponentName::as_str).collect();
                    errors.push(FieldError::new(
                        path,
                        format!("only components of {product_name}: {}", members.join(", ")),
                        format!("{component:?}"),
                    ));
                    continue;
                };
                match Version::parse(text) {
                    Ok(v) => {
                        versions.insert(member.clone(), v);
                    }
                    Err(_) => errors.push(FieldError::new(path, VersionError::EXPECTED, format!("{text:?}"))),
                }
            } else if Version::parse(text).is_err() {
                errors.push(FieldError::new(path, VersionError::EXPECTED, format!("{text:?}")));
            }
        }
        if let Some((product_name, spec)) = found_product {
            for member in &spec.components {
                if !components.contains_key(member.as_str()) {
                    errors.push(FieldError::new(
                        format!("components.{member}"),
                        format!("a version of every component of {product_name}"),
                        "nothing",
                    ));
                }
            }
        }
        match (found_product, parsed_version) {
            (Some((name, _)), Ok(version)) if errors.is_empty() => Ok((name.clone(), version, versions)),
            _ => Err(errors),
        }
    }
}
