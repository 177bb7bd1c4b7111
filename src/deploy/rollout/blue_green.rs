//! `blue-green`: the new container starts **next to** the live one, under the other colour's name
//! (`NAME-blue` / `NAME-green`) and on loopback ports of its own that Docker picks (the world does not
//! reach them); once it passes the catalog's HTTP or TCP check there, the host's proxy is pointed at it
//! with a graceful reload. The old container keeps serving its in-flight requests for the `drain`
//! period ([`super::retire`]), then stops, and is kept until the task ends, so a rollback starts it again
//! and switches back instead of starting cold.
//!
//! A container of the new colour that is already there is an orphan (a Tao that died mid-step left it):
//! it is removed, and the log says so. A component that ran under its plain name before (recreated, not
//! yet behind the proxy) is taken over: its ports pass to the proxy, the one moment of this strategy
//! with a short interruption, logged as such. A failure before the switch removes the new container and
//! leaves the live one serving: nothing was touched.

use std::net::{IpAddr, Ipv4Addr};

use super::{first_line, gate, Replacement, Rollout, StepFailure, StepFuture, StepIo};
use crate::catalog::PortMapping;
use crate::deploy::docker::{ContainerSpec, RemoteDocker};
use crate::deploy::proxy::{self, HostProxy, Route};
use crate::deploy::spec::{HealthSpec, Probe};
use crate::deploy::ssh::SshSession;

/// Start next to the live container, health-gate, switch the host's proxy.
pub struct BlueGreen;

/// The colour a new container of `base` gets: the one that is not live.
pub fn next_colour(base: &str, live: Option<&str>) -> String {
    let blue = format!("{base}-blue");
    if live == Some(blue.as_str()) {
        format!("{base}-green")
    } else {
        blue
    }
}

/// The mappings the new container publishes: each container port on a loopback port Docker picks.
fn internal(ports: &[PortMapping]) -> Vec<PortMapping> {
    ports
        .iter()
        .map(|p| PortMapping { host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), published: 0, ..p.clone() })
        .collect()
}

impl Rollout for BlueGreen {
    fn replace<'a>(&'a self, io: StepIo<'a>) -> StepFuture<'a> {
        Box::pin(async move {
            let StepIo { step, spec, session, mut control, log, env, reuse } = io;
            let switch =
                step.switch.as_ref().ok_or_else(|| StepFailure::untouched("blue-green step without a proxy"))?;
            let docker = RemoteDocker::new(session);
            let proxy = HostProxy::open(session, switch, env).await.map_err(StepFailure::untouched)?;
            let component = step.spec.component.as_str();
            let old_fragment = proxy.fragment(component).await.map_err(StepFailure::untouched)?;
            let routed = old_fragment.as_deref().and_then(proxy::live_of);
            // A component recreated under its plain name before it was put behind the proxy.
            let legacy = match &routed {
                Some(_) => None,
                None => match docker.inspect(&spec.name).await {
                    Ok(Some(s)) if s.running => Some(spec.name.clone()),
                    _ => None,
                },
            };
            let live = routed.clone().or_else(|| legacy.clone());
            let next = next_colour(&spec.name, live.as_deref());
            if reuse != Some(next.as_str()) {
                match docker.remove(&next).await {
                    Ok(true) => {
                        log.at("warn", step, &format!("removed orphan container {next} (left by an interrupted task)"))
                            .await
                    }
                    Ok(false) => {}
                    Err(e) => return Err(StepFailure::untouched(e.to_string())),
                }
            }

            let started = if reuse == Some(next.as_str()) {
                log.at("info", step, &format!("starting the kept container {next} ({})", step.spec.describe())).await;
                docker.start(&next).await
            } else {
                let line = format!(
                    "starting {next} next to {} ({})",
                    live.as_deref().unwrap_or("nothing"),
                    step.spec.describe()
                );
                log.at("info", step, &line).await;
                let mut new = ContainerSpec { name: next.clone(), ports: internal(&spec.ports), ..spec.clone() };
                new.labels.insert("tao.container".into(), spec.name.clone());
                docker.replace(&new).await.map(drop)
            };
            let discard = |why: String| discard(docker, &next, why);
            if let Err(e) = started {
                return Err(discard(e.to_string()).await);
            }
            let mut routes = Vec::new();
            let http_port = match step.spec.health.as_ref().map(|h| &h.probe) {
                Some(Probe::Http { port, .. }) => Some(*port),
                _ => None,
            };
            for p in &spec.ports {
                match docker.published_address(&next, p.container).await {
                    Ok(backend) => {
                        routes.push(Route { mapping: p.clone(), http: http_port == Some(p.container), backend })
                    }
                    Err(e) => return Err(discard(e.to_string()).await),
                }
            }
            // The catalog's check, against the new container's own loopback port.
            let Some(health) =
                step.spec.health.as_ref().map(|h| HealthSpec { probe: at_backend(&h.probe, &routes), ..h.clone() })
            else {
                return Err(discard("blue-green needs an http or tcp health check".into()).await);
            };
            log.at("info", step, &format!("waiting for the health check of {next}")).await;
            let result = tokio::select! {
                r = gate(session, &next, Some(&health)) => r,
                reason = control.stopped() => {
                    return Err(discard(format!("stopped ({reason:?}) while waiting for health")).await);
                }
            };
            if let Err(e) = result {
                log.at("error", step, &e.to_string()).await;
                let why =
                    format!("{}; {} keeps serving", first_line(&e.to_string()), live.as_deref().unwrap_or("nothing"));
                return Err(discard(why).await);
            }

            // The switch.
            let text = proxy::fragment(component, &next, &step.spec.describe(), &routes);
            if let Err(e) = proxy.set_fragment(component, Some(&text)).await {
                return Err(discard(e).await);
            }
            if let Some(l) = &legacy {
                let line = format!("taking over the published ports of {l}: it stops now (a short interruption, once)");
                log.at("warn", step, &line).await;
                let _ = docker.stop(l, spec.stop_timeout).await;
            }
            let applied = match proxy.apply().await {
                // The proxy is health-checked too: the catalog's check, through the published port.
                Ok(how) => match through_proxy(session, &next, step.spec.health.as_ref()).await {
                    Ok(()) => Ok(how),
                    Err(e) => Err(format!("the check through the proxy failed: {e}")),
                },
                Err(e) => Err(e),
            };
            match applied {
                Ok(how) => {
                    let to = match &step.spec.version {
                        Some(v) => v.clone(),
                        None => format!("@ {}", step.spec.image_tag),
                    };
                    let line =
                        format!("switched {component} on {} to {to} (proxy {} {how})", step.host.name, proxy.name());
                    log.at("info", step, &line).await;
                }
                Err(e) => {
                    // Back to what served before; the new container goes.
                    let _ = proxy.set_fragment(component, old_fragment.as_deref()).await;
                    if let Some(l) = &legacy {
                        let _ = docker.start(l).await;
                    }
                    if old_fragment.is_some() {
                        let _ = proxy.apply().await;
                    }
                    log.at("error", step, &e).await;
                    return Err(discard(e).await);
                }
            }
            Ok(Replacement { container: next, retired: live })
        })
    }
}

/// The catalog's check once more, against the published port the proxy now serves, within 10 s.
async fn through_proxy(session: &SshSession, container: &str, health: Option<&HealthSpec>) -> Result<(), String> {
    let Some(h) = health else { return Ok(()) };
    let quick = HealthSpec { timeout_ms: h.timeout_ms.min(10_000), ..h.clone() };
    super::probe(session, container, &quick).await.map_err(|e| first_line(&e.to_string()))
}

/// Removes the new container of a step that did not switch to it: the live one was never touched.
async fn discard(docker: RemoteDocker<'_>, name: &str, why: String) -> StepFailure {
    let _ = docker.remove(name).await;
    StepFailure::untouched(why)
}

/// `probe` aimed at the new container's loopback port instead of the published one.
fn at_backend(probe: &Probe, routes: &[Route]) -> Probe {
    let backend = |port: u16| routes.iter().find(|r| r.mapping.container == port).map(|r| r.backend.port());
    match probe {
        Probe::Http { port, path, .. } => Probe::Http { port: *port, path: path.clone(), published: backend(*port) },
        Probe::Tcp { port, .. } => Probe::Tcp { port: *port, published: backend(*port) },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_alternate_and_the_new_one_is_never_the_live_one() {
        assert_eq!(next_colour("e-h0-api", None), "e-h0-api-blue");
        assert_eq!(next_colour("e-h0-api", Some("e-h0-api")), "e-h0-api-blue", "taking over a recreated container");
        assert_eq!(next_colour("e-h0-api", Some("e-h0-api-blue")), "e-h0-api-green");
        assert_eq!(next_colour("e-h0-api", Some("e-h0-api-green")), "e-h0-api-blue");
        let ports = internal(&[PortMapping::parse("0.0.0.0:8080:80").unwrap()]);
        assert_eq!(ports[0].to_string(), "127.0.0.1:0:80", "Docker picks a loopback port");
    }
}
