//! Turns `tao.yaml` text into a [`Catalog`], or into every problem it has.
//!
//! Owns the catalog's schema as a hand-written walk over the YAML tree (serde would stop at the first
//! problem): sections, products, components and their containers, health checks and rollouts, then the
//! cross-checks that need the whole catalog (dependency cycles, products closed under dependencies).
//! Environments live in `validate_env`. Must not read files or the network.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

use super::error::{CatalogErrors, FieldError};
use super::graph;
use super::model::{
    CiSettings, Component, Container, EnvValue, FileMount, Health, HealthCheck, Layer, Product, Rollout, Strategy,
    TapdMapping, DEFAULT_GIT_TAG, DEFAULT_HEALTH_TIMEOUT, DEFAULT_IMAGE_TAG, DEFAULT_ITERATION_NAME,
    DEFAULT_ROLLOUT_BATCH, DEFAULT_ROLLOUT_DRAIN,
};
use super::name::ComponentName;
use super::template;
use super::validate_env;
use super::value::{
    is_absolute_path, is_env_key, is_image_repository, is_secret_name, parse_duration, PortMapping, ProjectPath,
    ProjectPathError, VolumeMount, DURATION_EXPECTED,
};
use super::version::TAG_PLACEHOLDERS;
use super::walk::{child, describe, item, Report};
use super::Catalog;

const TOP_KEYS: &[&str] = &["products", "components", "environments", "policy"];
const PRODUCT_KEYS: &[&str] = &["components", "description", "release_project", "tapd"];
const TAPD_KEYS: &[&str] = &["workspace_id", "iteration_name"];
const COMPONENT_KEYS: &[&str] =
    &["project", "image", "git_tag", "image_tag", "layer", "depends_on", "container", "health", "ci", "rollout"];
const ROLLOUT_KEYS: &[&str] = &["strategy", "batch", "drain"];
/// The strategies a catalog may name today.
const STRATEGY_EXPECTED: &str = "one of recreate, rolling, blue-green";
const CI_KEYS: &[&str] = &["test"];
const CONTAINER_KEYS: &[&str] = &["name", "ports", "env", "volumes", "files", "command"];
const HEALTH_KEYS: &[&str] = &["http", "tcp", "command", "timeout"];
const CONTAINER_PLACEHOLDERS: &[&str] = &["env", "component", "host"];

/// Expectation for a reference to a component.
pub(crate) const COMPONENT_REF: (&str, &str) = ("a component defined under components", "component");
/// Expectation for a container name template.
pub(crate) const CONTAINER_NAME_EXPECTED: &str =
    "a container name template of letters, digits, '_', '.', '-' and the placeholders {env}, {component}, {host}";

/// Parses and validates a catalog.
pub(crate) fn parse(text: &str) -> Result<Catalog, CatalogErrors> {
    let mut root: Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(CatalogErrors(vec![syntax_error(&e)])),
    };
    if let Err(e) = root.apply_merge() {
        return Err(CatalogErrors(vec![syntax_error(&e)]));
    }
    let mut r = Report::default();
    let catalog = walk(&mut r, &root);
    match catalog {
        Some(catalog) if r.errors.is_empty() => Ok(catalog),
        _ => Err(CatalogErrors(r.errors)),
    }
}

fn syntax_error(e: &serde_yaml_ng::Error) -> FieldError {
    let path = match e.location() {
        Some(at) => format!("(file) line {}, column {}", at.line(), at.column()),
        None => "(file)".to_owned(),
    };
    FieldError::new(path, "valid YAML", e.to_string())
}

fn walk(r: &mut Report, root: &Value) -> Option<Catalog> {
    let top_what = "a mapping with products, components, environments and policy";
    if root.is_null() {
        r.add("(file)", top_what, "an empty document");
        return None;
    }
    if !root.is_mapping() {
        r.add("(file)", top_what, describe(root));
        return None;
    }
    let top = r.fields(root, "", top_what, TOP_KEYS)?;
    let empty = Value::Null;
    let components_v = top.get("components").unwrap_or(&empty);
    let component_keys: BTreeSet<String> = match components_v {
        Value::Mapping(map) => map.keys().filter_map(super::walk::scalar_text).collect(),
        _ => BTreeSet::new(),
    };

    let mut catalog = Catalog {
        products: BTreeMap::new(),
        components: BTreeMap::new(),
        environments: BTreeMap::new(),
        policy: Default::default(),
    };
    let what = "a mapping of product names to products";
    for (key, v) in r.entries(top.get("products").unwrap_or(&empty), "products", what) {
        let path = child("products", &key);
        let name = r.name_text(&key, &path);
        let product = product(r, v, &path, &component_keys);
        if let (Some(name), Some(product)) = (name, product) {
            catalog.products.insert(name, product);
        }
    }
    let what = "a mapping of component names to components";
    for (key, v) in r.entries(components_v, "components", what) {
        let path = child("components", &key);
        let name = r.name_text(&key, &path);
        let component = component(r, v, &path, &component_keys);
        if let (Some(name), Some(component)) = (name, component) {
            catalog.components.insert(name, component);
        }
    }
    let what = "a mapping of environment names to environments";
    let envs_v = top.get("environments").unwrap_or(&empty);
    for (key, v) in r.entries(envs_v, "environments", what) {
        let path = child("environments", &key);
        let name = r.name_text(&key, &path);
        let env = validate_env::environment(r, v, &path, &component_keys);
        if let (Some(name), Some(env)) = (name, env) {
            catalog.environments.insert(name, env);
        }
    }
    if let Some(policy) = top.get("policy") {
        catalog.policy = super::policy::section(r, policy).unwrap_or_default();
    }

    for (path, found) in graph::cycles(&catalog.components) {
        r.add(path, "no dependency cycle", found);
    }
    check_products_closed(r, &catalog);
    super::validate_rollout::check(r, &catalog);
    Some(catalog)
}

fn product(r: &mut Report, v: &Value, path: &str, component_keys: &BTreeSet<String>) -> Option<Product> {
    let f = r.fields(v, path, "a product (a mapping with components)", PRODUCT_KEYS)?;
    let at = child(path, "components");
    let what = "a non-empty list of component names";
    let components = match f.get("components") {
        None => {
            r.missing(&at, what);
            Vec::new()
        }
        Some(list) => {
            if list.as_sequence().is_some_and(|s| s.is_empty()) {
                r.add(&at, what, "an empty list");
            }
            r.name_list(list, &at, what, component_keys, COMPONENT_REF)
        }
    };
    let description =
        f.get("description").and_then(|d| r.string(d, &child(path, "description"), "text")).map(str::to_owned);
    let release_project = f.get("release_project").and_then(|p| {
        r.checked(p, &child(path, "release_project"), ProjectPathError::EXPECTED, |s| ProjectPath::parse(s).is_ok())
            .and_then(|s| ProjectPath::parse(&s).ok())
    });
    let tapd = f.get("tapd").and_then(|t| tapd_mapping(r, t, &child(path, "tapd")));
    Some(Product { components, description, release_project, tapd })
}

fn tapd_mapping(r: &mut Report, v: &Value, path: &str) -> Option<TapdMapping> {
    let f = r.fields(v, path, "a TAPD mapping (workspace_id, iteration_name)", TAPD_KEYS)?;
    let at = child(path, "workspace_id");
    let what = "a TAPD workspace id (digits, like 20003271)";
    let workspace_id = match f.get("workspace_id") {
        None => {
            r.missing(&at, what);
            None
        }
        Some(w) => match r.scalar(w, &at, what) {
            Some(s) if !s.is_empty() && s.len() <= 20 && s.bytes().all(|c| c.is_ascii_digit()) => Some(s),
            Some(_) => {
                r.add(&at, what, describe(w));
                None
            }
            None => None,
        },
    };
    let iteration_name = match f.get("iteration_name") {
        None => Some(DEFAULT_ITERATION_NAME.to_owned()),
        Some(n) => r.checked(
            n,
            &child(path, "iteration_name"),
            "an iteration name pattern with {version} once and no other placeholder, like \"v{version}\"",
            |s| s.matches("{version}").count() == 1 && s.replace("{version}", "").chars().all(|c| c != '{' && c != '}'),
        ),
    };
    Some(TapdMapping { workspace_id: workspace_id?, iteration_name: iteration_name? })
}

fn component(r: &mut Report, v: &Value, path: &str, component_keys: &BTreeSet<String>) -> Option<Component> {
    let f = r.fields(v, path, "a component (a mapping)", COMPONENT_KEYS)?;
    let layer = match f.get("layer") {
        None => Layer::App,
        Some(l) => {
            let at = child(path, "layer");
            match l.as_str() {
                Some("app") => Layer::App,
                Some("env-service") => Layer::EnvService,
                Some("shared") => Layer::Shared,
                _ => {
                    r.add(at, "one of app, env-service, shared", describe(l));
                    Layer::App
                }
            }
        }
    };
    let needed = |what: &str| format!("{what} (required for layer {})", layer.as_str());

    let at = child(path, "project");
    let project = match f.get("project") {
        None if layer.is_deployed() => {
            r.missing(at, needed(ProjectPathError::EXPECTED));
            None
        }
        None => None,
        Some(p) => r
            .checked(p, &at, ProjectPathError::EXPECTED, |s| ProjectPath::parse(s).is_ok())
            .and_then(|s| ProjectPath::parse(&s).ok()),
    };
    let at = child(path, "image");
    let image_what = "an image repository without tag or digest, like \"registry.example.com/monitor/api\"";
    let image = match f.get("image") {
        None if layer.is_deployed() => {
            r.missing(at, needed(image_what));
            None
        }
        None => None,
        Some(i) => r.checked(i, &at, image_what, is_image_repository),
    };
    let git_tag = tag_format(r, f.get("git_tag"), &child(path, "git_tag"), DEFAULT_GIT_TAG);
    let image_tag = tag_format(r, f.get("image_tag"), &child(path, "image_tag"), DEFAULT_IMAGE_TAG);
    let depends_on = match f.get("depends_on") {
        None => Vec::new(),
        Some(d) => {
            let what = "a list of component names";
            r.name_list(d, &child(path, "depends_on"), what, component_keys, COMPONENT_REF)
        }
    };
    let container = match f.get("container") {
        None => Container::default(),
        Some(c) => container(r, c, &child(path, "container"))?,
    };
    let health = match f.get("health") {
        None => None,
        Some(h) => Some(health(r, h, &child(path, "health"))?),
    };
    let ci = match f.get("ci") {
        None => CiSettings::default(),
        Some(c) => ci_settings(r, c, &child(path, "ci"))?,
    };
    let rollout = match f.get("rollout") {
        None => None,
        Some(v) => Some(rollout(r, v, &child(path, "rollout"))?),
    };
    Some(Component { project, image, git_tag, image_tag, layer, depends_on, container, health, ci, rollout })
}

/// A `rollout:` mapping (of a component, or an environment's default): a strategy, `batch` hosts at a
/// time (default 1), a `drain` period (default 5s).
pub(crate) fn rollout(r: &mut Report, v: &Value, path: &str) -> Option<Rollout> {
    let f = r.fields(v, path, "a rollout (a mapping with strategy, batch, drain)", ROLLOUT_KEYS)?;
    let at = child(path, "strategy");
    let strategy = match f.get("strategy") {
        None => {
            r.missing(&at, STRATEGY_EXPECTED);
            None
        }
        Some(s) => {
            let strategy = match s.as_str() {
                Some("recreate") => Some(Strategy::Recreate),
                Some("rolling") => Some(Strategy::Rolling),
                Some("blue-green") => Some(Strategy::BlueGreen),
                _ => None,
            };
            if strategy.is_none() {
                r.add(&at, STRATEGY_EXPECTED, describe(s));
            }
            strategy
        }
    };
    let batch = match f.get("batch") {
        None => Some(DEFAULT_ROLLOUT_BATCH),
        Some(b) => {
            let batch = b.as_u64().filter(|n| (1..=1000).contains(n)).map(|n| n as u32);
            if batch.is_none() {
                r.add(child(path, "batch"), "a number of hosts from 1 to 1000", describe(b));
            }
            batch
        }
    };
    let drain = match f.get("drain") {
        None => Some(DEFAULT_ROLLOUT_DRAIN),
        Some(d) => {
            let drain = d.as_str().and_then(parse_duration);
            if drain.is_none() {
                r.add(child(path, "drain"), DURATION_EXPECTED, describe(d));
            }
            drain
        }
    };
    Some(Rollout { strategy: strategy?, batch: batch?, drain: drain? })
}

fn ci_settings(r: &mut Report, v: &Value, path: &str) -> Option<CiSettings> {
    let f = r.fields(v, path, "CI settings (a mapping with test)", CI_KEYS)?;
    let mut ci = CiSettings::default();
    if let Some(test) = f.get("test") {
        let what = "a non-empty shell command on one line";
        let valid = |s: &str| !s.trim().is_empty() && !s.contains(['\n', '\r']);
        ci.test = r.checked(test, &child(path, "test"), what, valid).unwrap_or(ci.test);
    }
    Some(ci)
}

fn tag_format(r: &mut Report, v: Option<&Value>, path: &str, default: &str) -> String {
    let Some(v) = v else {
        return default.to_owned();
    };
    let what = "a tag format using {version} (or {major}, {minor}, {patch}) and letters, digits, '_', '.', '-', like \"v{version}\"";
    let valid = |s: &str| {
        let literal_ok =
            template::literal_text(s).chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        literal_ok
            && template::placeholders(s)
                .is_some_and(|ps| !ps.is_empty() && ps.iter().all(|p| TAG_PLACEHOLDERS.contains(p)))
    };
    r.checked(v, path, what, valid).unwrap_or_else(|| default.to_owned())
}

/// A container name template: known placeholders, characters Docker accepts.
pub(crate) fn container_name(r: &mut Report, v: &Value, path: &str) -> Option<String> {
    let valid = |s: &str| {
        !s.is_empty()
            && template::literal_text(s).chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            && template::placeholders(s).is_some_and(|ps| ps.iter().all(|p| CONTAINER_PLACEHOLDERS.contains(p)))
    };
    r.checked(v, path, CONTAINER_NAME_EXPECTED, valid)
}

/// A list of port mappings.
pub(crate) fn ports(r: &mut Report, v: &Value, path: &str) -> Vec<PortMapping> {
    let mut out = Vec::new();
    for (i, p) in r.list(v, path, "a list of port mappings").iter().enumerate() {
        let at = item(path, i);
        match p.as_str().and_then(PortMapping::parse) {
            Some(port) => out.push(port),
            None => r.add(at, PortMapping::EXPECTED, describe(p)),
        }
    }
    out
}

fn container(r: &mut Report, v: &Value, path: &str) -> Option<Container> {
    let f = r.fields(v, path, "a container (a mapping)", CONTAINER_KEYS)?;
    let mut c = Container::default();
    if let Some(name) = f.get("name") {
        c.name = container_name(r, name, &child(path, "name")).unwrap_or(c.name);
    }
    if let Some(p) = f.get("ports") {
        c.ports = ports(r, p, &child(path, "ports"));
    }
    if let Some(env) = f.get("env") {
        let env_path = child(path, "env");
        let what = "a mapping of variable names to values";
        for (key, value) in r.entries(env, &env_path, what) {
            let at = child(&env_path, &key);
            if !is_env_key(&key) {
                r.add(&at, ENV_KEY_EXPECTED, format!("{key:?}"));
                continue;
            }
            if let Some(value) = env_value(r, value, &at) {
                c.env.insert(key, value);
            }
        }
    }
    if let Some(volumes) = f.get("volumes") {
        let at = child(path, "volumes");
        for (i, vol) in r.list(volumes, &at, "a list of volumes").iter().enumerate() {
            match vol.as_str().and_then(VolumeMount::parse) {
                Some(mount) => c.volumes.push(mount),
                None => r.add(item(&at, i), VolumeMount::EXPECTED, describe(vol)),
            }
        }
    }
    if let Some(files) = f.get("files") {
        let at = child(path, "files");
        for (i, file) in r.list(files, &at, "a list of files").iter().enumerate() {
            if let Some(mount) = file_mount(r, file, &item(&at, i)) {
                c.files.push(mount);
            }
        }
    }
    if let Some(command) = f.get("command") {
        let at = child(path, "command");
        for (i, arg) in r.list(command, &at, "a list of arguments").iter().enumerate() {
            if let Some(arg) = r.scalar(arg, &item(&at, i), "an argument (text)") {
                c.command.push(arg);
            }
        }
    }
    Some(c)
}

/// Expectation for an environment variable key.
pub(crate) const ENV_KEY_EXPECTED: &str = "a variable name of letters, digits and '_' not starting with a digit";

fn env_value(r: &mut Report, v: &Value, path: &str) -> Option<EnvValue> {
    if v.is_mapping() {
        let f = r.fields(v, path, "", &["secret"])?;
        let at = child(path, "secret");
        let what = "a secret name of letters, digits, '_', '.' and '-'";
        return match f.get("secret") {
            None => {
                r.missing(at, what);
                None
            }
            Some(s) => r.checked(s, &at, what, is_secret_name).map(|secret| EnvValue::Secret { secret }),
        };
    }
    r.scalar(v, path, "a value (text) or { secret: name }").map(EnvValue::Plain)
}

fn file_mount(r: &mut Report, v: &Value, path: &str) -> Option<FileMount> {
    let f = r.fields(v, path, "a file (a mapping with target and template)", &["target", "template"])?;
    let target_at = child(path, "target");
    let target_what = "an absolute path inside the container";
    let target = match f.get("target") {
        None => {
            r.missing(target_at, target_what);
            None
        }
        Some(t) => r.checked(t, &target_at, target_what, is_absolute_path),
    };
    let template_at = child(path, "template");
    let template_what = "a template path relative to the catalog, without '..'";
    let template = match f.get("template") {
        None => {
            r.missing(template_at, template_what);
            None
        }
        Some(t) => r.checked(t, &template_at, template_what, |s| {
            !s.is_empty()
                && !s.starts_with('/')
                && !s.split('/').any(|seg| seg == "..")
                && !s.chars().any(char::is_control)
        }),
    };
    Some(FileMount { target: target?, template: template? })
}

fn health(r: &mut Report, v: &Value, path: &str) -> Option<Health> {
    let f = r.fields(v, path, "a health check (a mapping)", HEALTH_KEYS)?;
    let kinds: Vec<&str> = ["http", "tcp", "command"].into_iter().filter(|k| f.get(k).is_some()).collect();
    let timeout = match f.get("timeout") {
        None => Some(DEFAULT_HEALTH_TIMEOUT),
        Some(t) => {
            let at = child(path, "timeout");
            let parsed = t.as_str().and_then(parse_duration);
            if parsed.is_none() {
                r.add(at, DURATION_EXPECTED, describe(t));
            }
            parsed
        }
    };
    let check = match kinds.as_slice() {
        [] => {
            r.add(path, "one of http, tcp or command", "none of them");
            return None;
        }
        [_, _, ..] => {
            r.add(path, "only one of http, tcp or command", kinds.join(" and "));
            return None;
        }
        ["http"] => {
            let at = child(path, "http");
            let h = f.get("http").and_then(|h| r.fields(h, &at, "a mapping with port and path", &["port", "path"]))?;
            let port = required_port(r, h.get("port"), &child(&at, "port"));
            let what = "an absolute HTTP path like /health";
            let path_value = match h.get("path") {
                None => Some("/".to_owned()),
                Some(p) => r.checked(p, &child(&at, "path"), what, |s| {
                    s.starts_with('/') && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                }),
            };
            HealthCheck::Http { port: port?, path: path_value? }
        }
        ["tcp"] => {
            let at = child(path, "tcp");
            let t = f.get("tcp").and_then(|t| r.fields(t, &at, "a mapping with port", &["port"]))?;
            HealthCheck::Tcp { port: required_port(r, t.get("port"), &child(&at, "port"))? }
        }
        _ => {
            let at = child(path, "command");
            let what = "a shell command (non-empty text)";
            let command = f.get("command").and_then(|c| r.checked(c, &at, what, |s| !s.trim().is_empty()))?;
            HealthCheck::Command(command)
        }
    };
    Some(Health { check, timeout: timeout? })
}

fn required_port(r: &mut Report, v: Option<&Value>, path: &str) -> Option<u16> {
    match v {
        None => {
            r.missing(path, "a port number from 1 to 65535");
            None
        }
        Some(p) => r.port(p, path),
    }
}

/// A product must list every dependency of its components, or its deploy order would be incomplete.
fn check_products_closed(r: &mut Report, catalog: &Catalog) {
    for (product_name, product) in &catalog.products {
        let listed: BTreeSet<&ComponentName> = product.components.iter().collect();
        for member in &product.components {
            let Some(component) = catalog.components.get(member) else {
                continue;
            };
            for dep in &component.depends_on {
                if !listed.contains(dep) && catalog.components.contains_key(dep) {
                    r.add(
                        child(&child("products", product_name.as_str()), "components"),
                        "every dependency of the product's components listed",
                        format!("{:?} depends on {:?}, which is not listed", member.as_str(), dep.as_str()),
                    );
                }
            }
        }
    }
}
