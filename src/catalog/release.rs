//! Product versions as the domain knows them: `monitor 1.1.0 = {ops 1.1.0, sql 1.0.0, …}`, each component
//! with the git tag and image tag its formats gave at creation. Stored by `crate::store::release`.

use std::collections::BTreeMap;

/// One component of a product version, with the tags its formats gave at creation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseComponent {
    /// Component name.
    pub component: String,
    /// Its version (semver, no leading `v`).
    pub version: String,
    /// The git tag that marks that version.
    pub git_tag: String,
    /// Image repository (none for `shared` components, which are never deployed).
    pub image: Option<String>,
    /// The image tag of that version.
    pub image_tag: String,
    /// Image digest, once resolved from the registry.
    pub image_digest: Option<String>,
}

/// A product version as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProductVersion {
    /// Product name.
    pub product: String,
    /// Version (semver, no leading `v`).
    pub version: String,
    /// The catalog revision it was checked against.
    pub catalog_revision: Option<i64>,
    /// Who created it.
    pub created_by: String,
    /// When, epoch milliseconds.
    pub created_at: i64,
    /// Its components, by name.
    pub components: Vec<ReleaseComponent>,
}

impl ProductVersion {
    /// `{component: version}`: what makes two creations "the same".
    pub fn version_map(&self) -> BTreeMap<&str, &str> {
        self.components.iter().map(|c| (c.component.as_str(), c.version.as_str())).collect()
    }
}
