//! Drift: compares what runs on the hosts (the labels Tao put on its containers) with the recorded
//! deployed state, for `tao status ENV --check`, and finds the orphans of blue-green steps a dead Tao
//! left behind (the other colour of a recorded `NAME-blue` / `NAME-green` container).
//!
//! Read-only on the hosts (one SSH session per host, `docker inspect` per recorded container), except
//! that, when asked to clean (no task runs in the environment, so no rollback can need it), an orphan
//! is removed; each orphan is reported either way.

use std::collections::BTreeMap;

use serde::Serialize;

use super::docker::RemoteDocker;
use super::plan::HostTarget;
use super::ssh::{SshOptions, SshSession, SshTarget};
use crate::store::deployed::DeployedRow;

/// One difference between the record and a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// Host.
    pub host: String,
    /// Component.
    pub component: String,
    /// Container name.
    pub container: String,
    /// What the record says.
    pub expected: String,
    /// What the host has.
    pub found: String,
}

fn recorded(row: &DeployedRow) -> String {
    match &row.version {
        Some(v) => format!("{v} ({})", row.image),
        None => format!("@ {} ({})", row.image_tag, row.image),
    }
}

/// What a check found: drift, and the orphans it removed (or left, while a task runs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Differences between the record and the hosts.
    pub drift: Vec<Drift>,
    /// One line per orphan container: what it was and whether it was removed.
    pub orphans: Vec<String>,
}

/// The other colour of a blue-green container name.
fn sibling(container: &str) -> Option<String> {
    if let Some(base) = container.strip_suffix("-blue") {
        Some(format!("{base}-green"))
    } else {
        container.strip_suffix("-green").map(|base| format!("{base}-blue"))
    }
}

/// Checks every recorded container of one environment on its host; removes orphans when `clean`.
pub async fn check(rows: &[DeployedRow], hosts: &[HostTarget], ssh: &SshOptions, clean: bool) -> Check {
    let mut by_host: BTreeMap<&str, Vec<&DeployedRow>> = BTreeMap::new();
    for r in rows {
        by_host.entry(r.host.as_str()).or_default().push(r);
    }
    let checks = by_host.into_iter().map(|(host, rows)| async move {
        let mut drift = Vec::new();
        let mut orphans = Vec::new();
        let unreachable = |found: String| {
            rows.iter()
                .map(|r| Drift {
                    host: host.to_string(),
                    component: r.component.clone(),
                    container: r.container.clone(),
                    expected: recorded(r),
                    found: found.clone(),
                })
                .collect::<Vec<_>>()
        };
        let Some(h) = hosts.iter().find(|h| h.name == host) else {
            return (unreachable("the host is no longer in the catalog".into()), orphans);
        };
        let session = match SshTarget::new(&h.user, &h.address, h.port) {
            Ok(target) => match SshSession::connect(&target, ssh).await {
                Ok(s) => s,
                Err(e) => return (unreachable(format!("cannot connect: {e}")), orphans),
            },
            Err(e) => return (unreachable(e.to_string()), orphans),
        };
        let docker = RemoteDocker::new(&session);
        for r in rows {
            let found = match docker.inspect(&r.container).await {
                Err(e) => Some(format!("cannot inspect: {e}")),
                Ok(None) => Some("no such container".into()),
                Ok(Some(state)) => {
                    let label = |k: &str| state.labels.get(k).cloned();
                    if !state.running {
                        Some(format!("not running ({})", state.status))
                    } else if label("tao.image").as_deref() != Some(r.image.as_str())
                        || label("tao.version") != r.version
                    {
                        Some(format!(
                            "{} ({})",
                            label("tao.version").unwrap_or_else(|| "no tao.version label".into()),
                            label("tao.image").unwrap_or(state.image_ref.clone())
                        ))
                    } else {
                        None
                    }
                }
            };
            if let Some(found) = found {
                drift.push(Drift {
                    host: host.to_string(),
                    component: r.component.clone(),
                    container: r.container.clone(),
                    expected: recorded(r),
                    found,
                });
            }
            if let Some(other) = sibling(&r.container) {
                if let Ok(Some(_)) = docker.inspect(&other).await {
                    let what = format!(
                        "{host}: orphan container {other} of {} (the proxy serves {})",
                        r.component, r.container
                    );
                    orphans.push(match clean {
                        false => format!("{what}: left alone while a task runs"),
                        true => match docker.remove(&other).await {
                            Ok(_) => format!("{what}: removed"),
                            Err(e) => format!("{what}: removing it failed: {e}"),
                        },
                    });
                }
            }
        }
        let _ = session.close().await;
        (drift, orphans)
    });
    let mut out = Check::default();
    for (drift, orphans) in futures_util::future::join_all(checks).await {
        out.drift.extend(drift);
        out.orphans.extend(orphans);
    }
    out
}
