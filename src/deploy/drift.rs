//! Drift: compares what runs on the hosts (the labels Tao put on its containers) with the recorded
//! deployed state, for `tao status ENV --check`.
//!
//! Read-only on the hosts: one SSH session per host, `docker inspect` per recorded container.

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

/// Checks every recorded container of one environment on its host.
pub async fn check(rows: &[DeployedRow], hosts: &[HostTarget], ssh: &SshOptions) -> Vec<Drift> {
    let mut by_host: BTreeMap<&str, Vec<&DeployedRow>> = BTreeMap::new();
    for r in rows {
        by_host.entry(r.host.as_str()).or_default().push(r);
    }
    let checks = by_host.into_iter().map(|(host, rows)| async move {
        let mut drift = Vec::new();
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
            return unreachable("the host is no longer in the catalog".into());
        };
        let session = match SshTarget::new(&h.user, &h.address, h.port) {
            Ok(target) => match SshSession::connect(&target, ssh).await {
                Ok(s) => s,
                Err(e) => return unreachable(format!("cannot connect: {e}")),
            },
            Err(e) => return unreachable(e.to_string()),
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
        }
        let _ = session.close().await;
        drift
    });
    futures_util::future::join_all(checks).await.into_iter().flatten().collect()
}
