//! What a CI template reads from the catalog: the render context of one project.
//!
//! Owns finding the project's catalog entry (a component's project, or a product's release project),
//! choosing the environments the branch model deploys to, and the values templates interpolate. Every
//! value here is validated catalog data except `branch` (user input), which templates must quote.

use serde_json::{json, Value};

use super::tag::TagPattern;
use super::{CiError, RenderRequest};
use crate::catalog::{Catalog, ComponentName, EnvName, Environment, Tier};

/// What a template needs the project to be in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// A component's `project` (`component.yml`, `cci.sh`, and any other template).
    Component,
    /// A product's `release_project` (`product-release.yml`, and any `product-*.yml`).
    Product,
}

impl Reads {
    /// Which entry a template file reads, by its name.
    pub fn of(file: &str) -> Reads {
        if file.starts_with("product-") {
            Reads::Product
        } else {
            Reads::Component
        }
    }

    /// For `tao ci list`.
    pub fn describe(self) -> &'static str {
        match self {
            Reads::Component => {
                "the component whose project it is: name, image, git_tag, image_tag, ci.test; \
                 the first dev-tier environment (else test) and the first test-tier environment"
            }
            Reads::Product => {
                "the product whose release_project it is: name, components; the first test-tier environment"
            }
        }
    }
}

fn first_of_tier(catalog: &Catalog, tier: Tier) -> Option<&EnvName> {
    catalog.environments.iter().find(|(_, e): &(&EnvName, &Environment)| e.tier == tier).map(|(n, _)| n)
}

/// The handlebars data of `req`.
pub(super) fn build(catalog: &Catalog, req: &RenderRequest, public_url: Option<&str>) -> Result<Value, CiError> {
    let project = req.project.as_str();
    let test_env = first_of_tier(catalog, Tier::Test).map(EnvName::as_str);
    let tao_url_shown = public_url.unwrap_or("$TAO_URL");
    match Reads::of(&req.file) {
        Reads::Component => {
            let found = catalog
                .components
                .iter()
                .find(|(_, c)| c.layer.is_deployed() && c.project.as_ref().is_some_and(|p| p.as_str() == project));
            let Some((name, component)) = found else {
                return Err(CiError::UnknownProject { project: project.to_owned(), what: "a component's project" });
            };
            let pattern = TagPattern::new(&component.git_tag, &component.image_tag)
                .map_err(|e| CiError::Catalog { component: name.to_string(), reason: e.to_string() })?;
            let dev_env = first_of_tier(catalog, Tier::Dev).or_else(|| first_of_tier(catalog, Tier::Test));
            let dev_env = dev_env.map(EnvName::as_str);
            Ok(json!({
                "project": project,
                "component": name.as_str(),
                "image": component.image,
                "git_tag": component.git_tag,
                "image_tag": component.image_tag,
                "test": component.ci.test,
                "tag_regex": pattern.regex,
                "image_tag_sed": pattern.sed,
                "dev_env": dev_env,
                "dev_env_text": dev_env.unwrap_or_default(),
                "test_env": test_env,
                "test_env_text": test_env.unwrap_or_default(),
                "tao_url": public_url,
                "tao_url_shown": tao_url_shown,
                "branch": req.branch.as_deref().unwrap_or_default(),
            }))
        }
        Reads::Product => {
            let found = catalog
                .products
                .iter()
                .find(|(_, p)| p.release_project.as_ref().is_some_and(|p| p.as_str() == project));
            let Some((name, product)) = found else {
                return Err(CiError::UnknownProject {
                    project: project.to_owned(),
                    what: "a product's release_project",
                });
            };
            let components: Vec<&str> = product.components.iter().map(ComponentName::as_str).collect();
            Ok(json!({
                "project": project,
                "product": name.as_str(),
                "components": components,
                "test_env": test_env,
                "tao_url": public_url,
                "tao_url_shown": tao_url_shown,
            }))
        }
    }
}
