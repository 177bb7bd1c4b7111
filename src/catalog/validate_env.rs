//! Validation of the `environments:` section: tier, domain, hosts, placement, variables, overrides,
//! protection.
//!
//! Owns the environment schema and its references to components and to the environment's own hosts.
//! Must not read files or the network.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

use super::model::{Environment, Host, Override, Protection, ProxySettings, Tier, DEFAULT_SSH_PORT};
use super::name::{ComponentName, HostName};
use super::validate::{container_name, ports, rollout, COMPONENT_REF, ENV_KEY_EXPECTED};
use super::value::{is_dns_name, is_env_key, is_host_address, is_image_repository, is_user_name};
use super::walk::{child, describe, item, scalar_text, Report};

const ENV_KEYS: &[&str] =
    &["tier", "domain", "hosts", "placement", "variables", "overrides", "protection", "rollout", "proxy"];
const PROXY_KEYS: &[&str] = &["image"];
/// What a proxy image must look like.
pub(crate) const PROXY_IMAGE_EXPECTED: &str =
    "an HAProxy image reference with a tag or digest, like registry.example.com/haproxy:2.6";
const HOST_KEYS: &[&str] = &["name", "address", "port", "user"];
const OVERRIDE_KEYS: &[&str] = &["name", "ports"];

/// One environment.
pub(crate) fn environment(
    r: &mut Report,
    v: &Value,
    path: &str,
    component_keys: &BTreeSet<String>,
) -> Option<Environment> {
    let f = r.fields(v, path, "an environment (a mapping with tier and hosts)", ENV_KEYS)?;
    let tier_at = child(path, "tier");
    let tier_what = "one of dev, test, staging, prod";
    let tier = match f.get("tier") {
        None => {
            r.missing(tier_at, tier_what);
            None
        }
        Some(t) => {
            let tier = match t.as_str() {
                Some("dev") => Some(Tier::Dev),
                Some("test") => Some(Tier::Test),
                Some("staging") => Some(Tier::Staging),
                Some("prod") => Some(Tier::Prod),
                _ => None,
            };
            if tier.is_none() {
                r.add(tier_at, tier_what, describe(t));
            }
            tier
        }
    };
    let domain = f
        .get("domain")
        .and_then(|d| r.checked(d, &child(path, "domain"), "a DNS name like env-1.example.com", is_dns_name));

    let hosts_at = child(path, "hosts");
    let hosts_what = "a non-empty list of hosts";
    let host_values: &[Value] = match f.get("hosts") {
        None => {
            r.missing(&hosts_at, hosts_what);
            &[]
        }
        Some(h) => {
            let list = r.list(h, &hosts_at, hosts_what);
            if h.as_sequence().is_some_and(|s| s.is_empty()) {
                r.add(&hosts_at, hosts_what, "an empty list");
            }
            list
        }
    };
    // Raw names, valid or not, so a bad host name is reported once and not again at each reference.
    let host_keys: BTreeSet<String> = host_values.iter().filter_map(|h| h.get("name").and_then(scalar_text)).collect();
    let mut hosts: Vec<Host> = Vec::new();
    let mut first_index: BTreeMap<String, usize> = BTreeMap::new();
    for (i, h) in host_values.iter().enumerate() {
        let at = item(&hosts_at, i);
        if let Some(name) = h.get("name").and_then(|n| n.as_str()) {
            if let Some(first) = first_index.get(name) {
                let found = format!("{name:?} again (first at hosts[{first}])");
                r.add(child(&at, "name"), "a host name unique within the environment", found);
                continue;
            }
            first_index.insert(name.to_owned(), i);
        }
        if let Some(host) = host(r, h, &at) {
            hosts.push(host);
        }
    }
    let host_ref = format!("a host of this environment ({})", join_keys(&host_keys));
    let host_ref = (host_ref.as_str(), "host");

    let mut placement = BTreeMap::new();
    if let Some(p) = f.get("placement") {
        let at = child(path, "placement");
        for (key, hosts_v) in r.entries(p, &at, "a mapping of component names to host names") {
            let entry_at = child(&at, &key);
            let component = r
                .name_text::<ComponentName>(&key, &entry_at)
                .filter(|c| r.reference(c.as_str(), component_keys, &entry_at, COMPONENT_REF.0, COMPONENT_REF.1));
            let placed = r.name_list(hosts_v, &entry_at, "a list of host names", &host_keys, host_ref);
            if let Some(component) = component {
                placement.insert(component, placed);
            }
        }
    }

    let mut variables = BTreeMap::new();
    if let Some(vars) = f.get("variables") {
        let at = child(path, "variables");
        for (key, value) in r.entries(vars, &at, "a mapping of variable names to values") {
            let var_at = child(&at, &key);
            if !is_env_key(&key) {
                r.add(var_at, ENV_KEY_EXPECTED, format!("{key:?}"));
            } else if let Some(value) = r.scalar(value, &var_at, "a value (text)") {
                variables.insert(key, value);
            }
        }
    }

    let mut overrides = BTreeMap::new();
    if let Some(o) = f.get("overrides") {
        let at = child(path, "overrides");
        for (host_key, per_host) in r.entries(o, &at, "a mapping of host names to component overrides") {
            let host_at = child(&at, &host_key);
            let host = r
                .name_text::<HostName>(&host_key, &host_at)
                .filter(|h| r.reference(h.as_str(), &host_keys, &host_at, host_ref.0, host_ref.1));
            let mut by_component = BTreeMap::new();
            let what = "a mapping of component names to overrides";
            for (component_key, ov) in r.entries(per_host, &host_at, what) {
                let ov_at = child(&host_at, &component_key);
                let component = r
                    .name_text::<ComponentName>(&component_key, &ov_at)
                    .filter(|c| r.reference(c.as_str(), component_keys, &ov_at, COMPONENT_REF.0, COMPONENT_REF.1));
                let ov = container_override(r, ov, &ov_at);
                if let (Some(component), Some(ov)) = (component, ov) {
                    by_component.insert(component, ov);
                }
            }
            if let Some(host) = host {
                overrides.insert(host, by_component);
            }
        }
    }

    let protection = f.get("protection").and_then(|p| protection(r, p, &child(path, "protection")));
    let rollout = match f.get("rollout") {
        None => None,
        Some(v) => Some(rollout(r, v, &child(path, "rollout"))?),
    };
    let proxy = match f.get("proxy") {
        None => None,
        Some(v) => Some(proxy(r, v, &child(path, "proxy"))?),
    };
    Some(Environment { tier: tier?, domain, hosts, placement, variables, overrides, protection, rollout, proxy })
}

/// A `proxy:` mapping: the image of the reverse proxy Tao runs on each host.
fn proxy(r: &mut Report, v: &Value, path: &str) -> Option<ProxySettings> {
    let f = r.fields(v, path, "a proxy (a mapping with image)", PROXY_KEYS)?;
    let at = child(path, "image");
    let Some(image) = f.get("image") else {
        r.missing(&at, PROXY_IMAGE_EXPECTED);
        return None;
    };
    let image = r.checked(image, &at, PROXY_IMAGE_EXPECTED, is_pinned_image)?;
    Some(ProxySettings { image })
}

/// `repo:tag` or `repo@sha256:<64 hex>` (the tag after the last `/`, so a registry port is not a tag).
pub(crate) fn is_pinned_image(s: &str) -> bool {
    if let Some((repo, digest)) = s.split_once('@') {
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        return is_image_repository(repo) && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    let name_start = s.rfind('/').map_or(0, |i| i + 1);
    match s[name_start..].rfind(':') {
        Some(i) => {
            let (repo, tag) = (&s[..name_start + i], &s[name_start + i + 1..]);
            let tag_ok = !tag.is_empty()
                && tag.len() <= 128
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            is_image_repository(repo) && tag_ok
        }
        None => false,
    }
}

const PROTECTION_KEYS: &[&str] = &["deploy", "roles"];

fn protection(r: &mut Report, v: &Value, path: &str) -> Option<Protection> {
    let f = r.fields(v, path, "a mapping (who may deploy: deploy, roles)", PROTECTION_KEYS)?;
    let mut p = Protection::default();
    if let Some(d) = f.get("deploy") {
        p.deploy = r.checked(d, &child(path, "deploy"), "one of deploy, admin (the least token scope)", |s| {
            matches!(s, "deploy" | "admin")
        });
    }
    if let Some(list) = f.get("roles") {
        let at = child(path, "roles");
        for (i, role) in r.list(list, &at, "a list of role names").iter().enumerate() {
            if let Some(role) = r.string(role, &item(&at, i), "a role name") {
                p.roles.push(role.to_string());
            }
        }
    }
    Some(p)
}

fn join_keys(keys: &BTreeSet<String>) -> String {
    keys.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
}

fn host(r: &mut Report, v: &Value, path: &str) -> Option<Host> {
    let f = r.fields(v, path, "a host (a mapping with name, address, port, user)", HOST_KEYS)?;
    let name_at = child(path, "name");
    let name = match f.get("name") {
        None => {
            r.missing(name_at, super::name::NameError::EXPECTED);
            None
        }
        Some(n) => r.name(n, &name_at),
    };
    let address_at = child(path, "address");
    let address_what = "a host name or IP address";
    let address = match f.get("address") {
        None => {
            r.missing(address_at, address_what);
            None
        }
        Some(a) => r.checked(a, &address_at, address_what, is_host_address),
    };
    let port = match f.get("port") {
        None => Some(DEFAULT_SSH_PORT),
        Some(p) => r.port(p, &child(path, "port")),
    };
    let user_at = child(path, "user");
    let user_what = "a user name of lowercase letters, digits, '_' and '-'";
    let user = match f.get("user") {
        None => {
            r.missing(user_at, user_what);
            None
        }
        Some(u) => r.checked(u, &user_at, user_what, is_user_name),
    };
    Some(Host { name: name?, address: address?, port: port?, user: user? })
}

fn container_override(r: &mut Report, v: &Value, path: &str) -> Option<Override> {
    let f = r.fields(v, path, "an override (a mapping with name and/or ports)", OVERRIDE_KEYS)?;
    let name = f.get("name").and_then(|n| container_name(r, n, &child(path, "name")));
    let ports = f.get("ports").map(|p| ports(r, p, &child(path, "ports")));
    Some(Override { name, ports })
}
