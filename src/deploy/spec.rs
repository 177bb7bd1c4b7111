//! The run spec: everything needed to run one component's container on one host, fixed at plan time
//! and stored with the deployed state, so a rollback restores exactly what ran (image digest, env,
//! ports, volumes), not what today's catalog would derive.
//!
//! Pure data plus the rendering of `{{…}}` placeholders in env values; no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How to tell a container is healthy (the catalog's health check with the host-side port resolved).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// HTTP GET answering 2xx.
    Http {
        /// Container port.
        port: u16,
        /// Request path.
        path: String,
        /// Host port publishing it, when published.
        published: Option<u16>,
    },
    /// A TCP connection accepted.
    Tcp {
        /// Container port.
        port: u16,
        /// Host port publishing it, when published.
        published: Option<u16>,
    },
    /// A command exiting 0 inside the container.
    Command {
        /// The command, run by `sh -c` inside the container.
        command: String,
    },
}

/// A health check and how long to wait for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSpec {
    /// The probe.
    pub probe: Probe,
    /// Give up after this long, milliseconds.
    pub timeout_ms: u64,
}

/// One container as Tao runs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Component name.
    pub component: String,
    /// Container name on the host.
    pub container: String,
    /// What `docker pull` and `docker run` use: `repo@sha256:…` when the digest is known, else `repo:tag`.
    pub image: String,
    /// Image repository without tag.
    pub image_repo: String,
    /// Image tag (or the digest, for a component build given by digest).
    pub image_tag: String,
    /// Image digest, when known.
    pub image_digest: Option<String>,
    /// Product of the product version (none for a component build).
    pub product: Option<String>,
    /// Component version from the product version (none for a component build: off-release).
    pub version: Option<String>,
    /// Port mappings, `[ip:]published:container[/proto]`.
    pub ports: Vec<String>,
    /// Plain environment values, rendered.
    pub env: BTreeMap<String, String>,
    /// Secret environment values: variable → secret reference, resolved on the Tao host at run time.
    pub secret_env: BTreeMap<String, String>,
    /// Volume mounts, `source:target[:ro]`.
    pub volumes: Vec<String>,
    /// Arguments after the image.
    pub command: Vec<String>,
    /// Docker restart policy.
    pub restart: String,
    /// Health check, if the component has one.
    pub health: Option<HealthSpec>,
    /// Configuration files rendered for this environment and host, mounted read-only.
    #[serde(default)]
    pub files: Vec<FileSpec>,
}

/// A rendered configuration file and where it is mounted in the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    /// Absolute path inside the container.
    pub target: String,
    /// The rendered content.
    pub content: String,
}

/// Renders a configuration file template (handlebars, strict: an unknown name is an error) with the
/// values of `ctx`: `{{env.name}}`, `{{env.domain}}`, `{{env.tier}}`, `{{env.variables.NAME}}`,
/// `{{host.name}}`, `{{host.address}}`, `{{component}}`, `{{version}}`.
pub fn render_file(template: &str, ctx: &RenderContext<'_>) -> Result<String, String> {
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    // Configuration files are not HTML: write values as they are.
    hb.register_escape_fn(handlebars::no_escape);
    let data = serde_json::json!({
        "env": { "name": ctx.env, "domain": ctx.domain, "tier": ctx.tier, "variables": ctx.variables },
        "host": { "name": ctx.host, "address": ctx.address },
        "component": ctx.component,
        "version": ctx.version,
    });
    hb.render_template(template, &data).map_err(|e| e.to_string())
}

impl RunSpec {
    /// `api 1.1.0` or `api @ feature-x-3f2a1c` (off-release).
    pub fn describe(&self) -> String {
        match &self.version {
            Some(v) => format!("{} {v}", self.component),
            None => format!("{} @ {}", self.component, self.image_tag),
        }
    }

    /// Labels recording what runs (the task id is added by the runner).
    pub fn labels(&self, env: &str) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        labels.insert("tao.env".into(), env.into());
        labels.insert("tao.component".into(), self.component.clone());
        labels.insert("tao.image".into(), self.image.clone());
        if let Some(p) = &self.product {
            labels.insert("tao.product".into(), p.clone());
        }
        if let Some(v) = &self.version {
            labels.insert("tao.version".into(), v.clone());
        }
        if let Some(d) = &self.image_digest {
            labels.insert("tao.digest".into(), d.clone());
        }
        labels
    }
}

/// Values `{{…}}` placeholders in env values may name.
#[derive(Debug, Clone)]
pub struct RenderContext<'a> {
    /// Environment name.
    pub env: &'a str,
    /// Environment domain.
    pub domain: Option<&'a str>,
    /// Environment tier.
    pub tier: &'a str,
    /// Environment variables of the catalog.
    pub variables: &'a BTreeMap<String, String>,
    /// Host name.
    pub host: &'a str,
    /// Host address.
    pub address: &'a str,
    /// Component name.
    pub component: &'a str,
    /// Component version (none for a component build).
    pub version: Option<&'a str>,
}

impl RenderContext<'_> {
    fn lookup(&self, key: &str) -> Option<String> {
        match key {
            "env.name" => Some(self.env.to_string()),
            "env.domain" => self.domain.map(str::to_string),
            "env.tier" => Some(self.tier.to_string()),
            "host.name" => Some(self.host.to_string()),
            "host.address" => Some(self.address.to_string()),
            "component" => Some(self.component.to_string()),
            "version" => self.version.map(str::to_string),
            _ => key.strip_prefix("env.variables.").and_then(|v| self.variables.get(v).cloned()),
        }
    }
}

/// Replaces every `{{ key }}` in `text`; an unknown or unset key is an error naming it.
pub fn render(text: &str, ctx: &RenderContext<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| format!("unclosed {{{{ in {text:?}"))?;
        let key = after[..close].trim();
        let value = ctx.lookup(key).ok_or_else(|| {
            format!(
                "{{{{{key}}}}}: expected one of env.name, env.domain, env.tier, env.variables.NAME, host.name, \
                 host.address, component, version (set for this deploy)"
            )
        })?;
        out.push_str(&value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(vars: &BTreeMap<String, String>) -> RenderContext<'_> {
        RenderContext {
            env: "env-1",
            domain: Some("env-1.test.local"),
            tier: "test",
            variables: vars,
            host: "node1",
            address: "10.0.0.11",
            component: "api",
            version: None,
        }
    }

    #[test]
    fn renders_known_placeholders_and_names_unknown_ones() {
        let vars = BTreeMap::from([("LOG_LEVEL".to_string(), "debug".to_string())]);
        let c = ctx(&vars);
        assert_eq!(render("db.{{env.domain}}", &c).unwrap(), "db.env-1.test.local");
        assert_eq!(render("{{ env.variables.LOG_LEVEL }}/{{host.name}}", &c).unwrap(), "debug/node1");
        assert_eq!(render("no placeholders $(x) 'q'", &c).unwrap(), "no placeholders $(x) 'q'");
        assert!(render("{{version}}", &c).unwrap_err().starts_with("{{version}}: expected"));
        assert!(render("{{env.variables.NOPE}}", &c).is_err());
        assert!(render("{{env.domain", &c).unwrap_err().contains("unclosed"));
    }

    #[test]
    fn renders_files_strictly_and_without_html_escaping() {
        let vars = BTreeMap::from([("LOG_LEVEL".to_string(), "debug".to_string())]);
        let c = ctx(&vars);
        let out = render_file("level={{env.variables.LOG_LEVEL}} host={{host.name}} a<b&c\n", &c).unwrap();
        assert_eq!(out, "level=debug host=node1 a<b&c\n");
        assert!(render_file("{{env.variables.NOPE}}", &c).is_err(), "strict mode");
        assert_eq!(render_file("v={{version}}", &c).unwrap(), "v=", "a component build has no version");
        assert!(render_file("{{#if}}", &c).is_err());
    }
}
