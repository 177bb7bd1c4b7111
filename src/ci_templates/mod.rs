//! The shared CI standard: the handlebars templates of `ci-templates/` (embedded at build time,
//! overridable from a directory), rendered with one project's catalog entry, and cached.
//!
//! Owns template names, loading and the template revision, the render context (what each template
//! reads from the catalog), the render cache keyed by (template revision, catalog revision, project,
//! parameters), `include:integrity` values and linting against GitLab's CI schema (`lint`). Must not
//! know HTTP or the CLI (they call [`CiTemplates::render`]) nor change anything: rendering is pure.

mod context;
pub mod lint;
pub mod tag;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use handlebars::Handlebars;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, ProjectPath, ProjectPathError};
pub use context::Reads;

/// The templates built into Tao: file name (without `.hbs`) and source.
const EMBEDDED: &[(&str, &str)] = &[
    ("component.yml", include_str!("../../ci-templates/component.yml.hbs")),
    ("product-release.yml", include_str!("../../ci-templates/product-release.yml.hbs")),
    ("cci.sh", include_str!("../../ci-templates/cci.sh.hbs")),
];

/// Most renders kept; the cache is emptied when it grows past this (catalog revisions move on).
const CACHE_LIMIT: usize = 4096;

/// Why a template was not rendered.
#[derive(Debug, thiserror::Error)]
pub enum CiError {
    /// The template name is not `[a-z0-9-]+`.
    #[error("template name: expected lowercase letters, digits and '-', found {0:?}")]
    BadTemplateName(String),
    /// The project path is not a GitLab project path.
    #[error("project path: {0}")]
    BadProject(#[from] ProjectPathError),
    /// No such template.
    #[error("no CI template {name:?}; templates: {known}")]
    UnknownTemplate {
        /// The asked name.
        name: String,
        /// The known file names, comma-separated.
        known: String,
    },
    /// The catalog has no entry this template can render for the project.
    #[error("project {project} is not {what} in the catalog")]
    UnknownProject {
        /// The project.
        project: String,
        /// What the template needed it to be.
        what: &'static str,
    },
    /// The catalog entry cannot be rendered (e.g. tag formats that do not fit together).
    #[error("component {component}: {reason}")]
    Catalog {
        /// The component.
        component: String,
        /// Why.
        reason: String,
    },
    /// A template (likely an override) failed to compile or render.
    #[error("template {name}: {reason}")]
    Template {
        /// The template file name.
        name: String,
        /// The handlebars error.
        reason: String,
    },
    /// The override directory could not be read.
    #[error("reading CI templates from {path}: {reason}")]
    Load {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A validated template name: the stem of `<name>.yml`, lowercase letters, digits and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateName(String);

impl TemplateName {
    /// Accepts `[a-z0-9-]+` (so never `..`, `/` or anything a path could escape with).
    pub fn parse(s: &str) -> Result<TemplateName, CiError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(TemplateName(s.to_owned()))
        } else {
            Err(CiError::BadTemplateName(s.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What to render.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RenderRequest {
    /// Template file name, e.g. `component.yml` or `cci.sh`.
    pub file: String,
    /// The GitLab project.
    pub project: ProjectPath,
    /// The branch (`cci.sh` only; user input, quoted where it is used).
    pub branch: Option<String>,
}

impl RenderRequest {
    /// A YAML template (`<name>.yml`) for a project.
    pub fn yaml(name: &TemplateName, project: ProjectPath) -> RenderRequest {
        RenderRequest { file: format!("{}.yml", name.as_str()), project, branch: None }
    }
}

/// A rendered template.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The text.
    pub body: Arc<str>,
    /// Strong ETag (quoted), from the text's SHA-256.
    pub etag: Arc<str>,
}

impl Rendered {
    fn new(body: String) -> Rendered {
        let digest = Sha256::digest(body.as_bytes());
        let etag = format!("\"{}\"", hex::encode(&digest[..16]));
        Rendered { body: body.into(), etag: etag.into() }
    }

    /// The `include:integrity` value: `sha256-<base64 of the SHA-256>`.
    pub fn integrity(&self) -> String {
        let digest = Sha256::digest(self.body.as_bytes());
        format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(digest))
    }
}

/// One template as `tao ci list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TemplateInfo {
    /// File name as served, e.g. `component.yml`.
    pub file: String,
    /// What it reads from the catalog.
    pub reads: String,
    /// Whether it comes from the override directory.
    pub overridden: bool,
}

type CacheKey = (String, RenderRequest);

/// The template set and its render cache; cheap to clone.
#[derive(Clone)]
pub struct CiTemplates {
    registry: Arc<Handlebars<'static>>,
    overridden: Arc<Vec<String>>,
    revision: Arc<str>,
    public_url: Option<Arc<str>>,
    cache: Arc<Mutex<HashMap<CacheKey, Rendered>>>,
}

impl std::fmt::Debug for CiTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CiTemplates").field("revision", &self.revision).finish_non_exhaustive()
    }
}

/// The helpers templates quote values with: `{{yaml x}}` (a double-quoted YAML scalar, i.e. a JSON
/// string) and `{{sh x}}` (a single-quoted shell word).
mod helpers {
    use handlebars::handlebars_helper;

    handlebars_helper!(yaml_helper: |s: str| serde_json::to_string(s).unwrap_or_default());
    handlebars_helper!(sh_helper: |s: str| format!("'{}'", s.replace('\'', r"'\''")));
}

impl CiTemplates {
    /// The embedded templates, replaced or completed by the `*.hbs` files of `dir` when given.
    /// `public_url` is Tao's external URL, written into the templates as `TAO_URL`.
    pub fn load(dir: Option<&Path>, public_url: Option<&str>) -> Result<CiTemplates, CiError> {
        let mut sources: BTreeMap<String, String> =
            EMBEDDED.iter().map(|(name, text)| ((*name).to_owned(), (*text).to_owned())).collect();
        let mut overridden = Vec::new();
        if let Some(dir) = dir {
            for (name, text) in read_dir(dir)? {
                overridden.push(name.clone());
                sources.insert(name, text);
            }
        }
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        registry.register_helper("yaml", Box::new(helpers::yaml_helper));
        registry.register_helper("sh", Box::new(helpers::sh_helper));
        let mut hasher = Sha256::new();
        for (name, text) in &sources {
            registry
                .register_template_string(name, text)
                .map_err(|e| CiError::Template { name: name.clone(), reason: e.to_string() })?;
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(text.as_bytes());
            hasher.update([0]);
        }
        let revision = hex::encode(&hasher.finalize()[..8]);
        Ok(CiTemplates {
            registry: Arc::new(registry),
            overridden: Arc::new(overridden),
            revision: revision.into(),
            public_url: public_url.map(|u| u.trim_end_matches('/').into()),
            cache: Arc::default(),
        })
    }

    /// Hash of every template's name and source: changes whenever a template does.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The templates, by file name.
    pub fn list(&self) -> Vec<TemplateInfo> {
        let mut names: Vec<&String> = self.registry.get_templates().keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|file| TemplateInfo {
                file: file.clone(),
                reads: Reads::of(file).describe().to_owned(),
                overridden: self.overridden.contains(file),
            })
            .collect()
    }

    /// Renders `req` with `catalog` (whose revision is `catalog_revision`), from the cache when the same
    /// template revision, catalog revision, project and parameters were rendered before.
    pub fn render(&self, catalog: &Catalog, catalog_revision: &str, req: &RenderRequest) -> Result<Rendered, CiError> {
        let key = (catalog_revision.to_owned(), req.clone());
        if let Some(hit) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(hit.clone());
        }
        if !self.registry.has_template(&req.file) {
            let known: Vec<&str> = self.registry.get_templates().keys().map(String::as_str).collect();
            let mut known = known;
            known.sort_unstable();
            return Err(CiError::UnknownTemplate { name: req.file.clone(), known: known.join(", ") });
        }
        let data = context::build(catalog, req, self.public_url.as_deref())?;
        let text = self
            .registry
            .render(&req.file, &data)
            .map_err(|e| CiError::Template { name: req.file.clone(), reason: e.to_string() })?;
        let rendered = Rendered::new(text);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, rendered.clone());
        Ok(rendered)
    }
}

/// The `*.yml.hbs` and `*.sh.hbs` files of an override directory, by served file name.
fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, CiError> {
    let load_error = |path: &Path, e: std::io::Error| CiError::Load { path: path.to_owned(), reason: e.to_string() };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| load_error(dir, e))? {
        let entry = entry.map_err(|e| load_error(dir, e))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(served) = file_name.strip_suffix(".hbs") else { continue };
        let Some((stem, ext)) = served.rsplit_once('.') else { continue };
        if !matches!(ext, "yml" | "sh") || TemplateName::parse(stem).is_err() {
            continue;
        }
        let path = entry.path();
        let text = std::fs::read_to_string(&path).map_err(|e| load_error(&path, e))?;
        out.push((served.to_owned(), text));
    }
    Ok(out)
}
