//! Cross-checks of rollouts and published ports that need the whole catalog: a `blue-green` component
//! can be switched (an HTTP or TCP health check, TCP ports) and runs only where a proxy is configured; a
//! `rolling` batch fits the hosts it rolls over; no two components claim one published port on one host
//! (the proxy owns a host's ports, and two containers could never both bind one anyway).
//!
//! Runs after the sections parsed; adds each problem with its path, what was expected and what was
//! found. Must not read files or the network.

use std::net::IpAddr;

use super::model::{Component, Environment, HealthCheck, Strategy};
use super::name::{ComponentName, EnvName};
use super::value::{PortMapping, Protocol};
use super::walk::{child, Report};
use super::Catalog;

/// Adds every rollout and port problem of `catalog` to `r`.
pub(crate) fn check(r: &mut Report, catalog: &Catalog) {
    for (name, c) in &catalog.components {
        if c.layer.is_deployed() && c.rollout.is_some_and(|o| o.strategy == Strategy::BlueGreen) {
            switchable(r, name, c);
        }
    }
    for (env_name, env) in &catalog.environments {
        let env_at = child("environments", env_name.as_str());
        if let Some(own) = env.rollout {
            if own.strategy == Strategy::BlueGreen && env.proxy.is_none() {
                r.add(
                    child(&child(&env_at, "rollout"), "strategy"),
                    "an environment with a proxy (proxy: { image: … }) for blue-green",
                    "blue-green without a proxy",
                );
            }
            if own.strategy == Strategy::Rolling && own.batch as usize > env.hosts.len() {
                let found = format!("{} ({env_name} has {} host(s))", own.batch, env.hosts.len());
                r.add(child(&child(&env_at, "rollout"), "batch"), batch_expected(env.hosts.len()), found);
            }
        }
        for (name, c) in catalog.components.iter().filter(|(_, c)| c.layer.is_deployed()) {
            let placed = env.hosts_for(name.as_str()).len();
            let Some(own) = c.rollout else { continue };
            let at = child(&child("components", name.as_str()), "rollout");
            match own.strategy {
                Strategy::BlueGreen if env.proxy.is_none() => r.add(
                    child(&at, "strategy"),
                    format!("blue-green only where a proxy runs: add proxy: {{ image: … }} to environment {env_name}"),
                    format!("blue-green, and {env_name} has no proxy"),
                ),
                Strategy::Rolling if placed > 0 && own.batch as usize > placed => r.add(
                    child(&at, "batch"),
                    batch_expected(placed),
                    format!("{} ({name} runs on {placed} host(s) in {env_name})", own.batch),
                ),
                _ => {}
            }
        }
        port_clashes(r, catalog, env_name, env);
    }
}

fn batch_expected(hosts: usize) -> String {
    format!("a number of hosts from 1 to {hosts}")
}

/// An explicit `blue-green` needs what switching needs.
fn switchable(r: &mut Report, name: &ComponentName, c: &Component) {
    let at = child("components", name.as_str());
    if c.can_switch() {
        return;
    }
    match c.health.as_ref().map(|h| &h.check) {
        Some(HealthCheck::Http { .. } | HealthCheck::Tcp { .. }) => {}
        other => {
            let found = match other {
                None => "no health check".to_string(),
                Some(_) => "a command check".to_string(),
            };
            r.add(
                child(&at, "health"),
                "an http or tcp health check (blue-green switches traffic only to a container that passed it)",
                format!("{found}, with rollout strategy blue-green"),
            );
        }
    }
    let ports_at = child(&child(&at, "container"), "ports");
    if c.container.ports.is_empty() {
        r.add(ports_at, "published ports for the proxy to take over (blue-green)", "none");
    } else if let Some(p) = c.container.ports.iter().find(|p| p.protocol != Protocol::Tcp) {
        r.add(ports_at, "TCP ports only (the proxy switches TCP and HTTP, not UDP)", p.to_string());
    }
}

/// Two components on one host publishing the same port (same protocol, overlapping addresses).
fn port_clashes(r: &mut Report, catalog: &Catalog, env_name: &EnvName, env: &Environment) {
    for host in &env.hosts {
        let mut claims: Vec<(&ComponentName, PortMapping, String)> = Vec::new();
        for (name, c) in catalog.components.iter().filter(|(_, c)| c.layer.is_deployed()) {
            if !env.hosts_for(name.as_str()).iter().any(|h| h.name == host.name) {
                continue;
            }
            let (ports, at) = match env.override_for(host.name.as_str(), name.as_str()).and_then(|o| o.ports.as_ref()) {
                Some(p) => (p.clone(), format!("environments.{env_name}.overrides.{}.{name}.ports", host.name)),
                None => (c.container.ports.clone(), format!("components.{name}.container.ports")),
            };
            for p in ports {
                if let Some((first, _, _)) = claims.iter().find(|(_, q, _)| overlap(q, &p)) {
                    let found = format!(
                        "port {}/{} on host {} of {env_name} claimed by both {first} and {name}",
                        p.published,
                        protocol(p.protocol),
                        host.name
                    );
                    r.add(&at, "a published port that no other component claims on the same host", found);
                    continue;
                }
                claims.push((name, p, at.clone()));
            }
        }
    }
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

fn overlap(a: &PortMapping, b: &PortMapping) -> bool {
    let any = |ip: Option<IpAddr>| ip.is_none_or(|i| i.is_unspecified());
    a.published == b.published
        && a.protocol == b.protocol
        && (any(a.host_ip) || any(b.host_ip) || a.host_ip == b.host_ip)
}
