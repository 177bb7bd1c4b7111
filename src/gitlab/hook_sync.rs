//! `tao gitlab hooks sync`: make sure every project of the catalog has Tao's webhook.
//!
//! Owns the comparison of a project's hooks with the one Tao wants (same URL, Tao's events) and the
//! create-or-update decision. Idempotent: a second run changes nothing. GitLab never shows a hook's
//! secret, so a changed secret is only pushed when asked (`rotate_secret`). Each project is reported on
//! its own; one failing project does not stop the others.

use serde::Serialize;

use super::client::{GitLabClient, HookEvents, ProjectId};
use crate::config::Secret;

/// The hook Tao wants on every project.
#[derive(Debug, Clone)]
pub struct HookSpec {
    /// Tao's webhook URL (`<public url>/api/v1/gitlab/webhook`).
    pub url: String,
    /// The secret GitLab will send as `X-Gitlab-Token`.
    pub token: Secret,
    /// The events Tao acts on.
    pub events: HookEvents,
}

impl HookSpec {
    /// Tao's hook for a server whose external URL is `public_url`.
    pub fn for_tao(public_url: &str, token: Secret) -> HookSpec {
        let url = format!("{}/api/v1/gitlab/webhook", public_url.trim_end_matches('/'));
        HookSpec { url, token, events: tao_events() }
    }
}

/// The events Tao's typed views cover.
pub fn tao_events() -> HookEvents {
    HookEvents {
        push_events: true,
        tag_push_events: true,
        merge_requests_events: true,
        note_events: true,
        pipeline_events: true,
        job_events: true,
        deployment_events: true,
        releases_events: true,
        issues_events: true,
    }
}

/// What sync did to one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum HookChange {
    /// No hook with Tao's URL existed; one was created.
    Created {
        /// Project path.
        project: String,
        /// New hook id.
        hook: i64,
    },
    /// Tao's hook existed with other settings; it was updated.
    Updated {
        /// Project path.
        project: String,
        /// Hook id.
        hook: i64,
        /// What differed.
        reason: String,
    },
    /// Tao's hook was already right.
    Unchanged {
        /// Project path.
        project: String,
        /// Hook id.
        hook: i64,
    },
    /// The project could not be synced.
    Failed {
        /// Project path.
        project: String,
        /// Why (the GitLab call, status and message).
        error: String,
    },
}

/// Syncs Tao's hook on every project, in order.
pub async fn sync(client: &GitLabClient, projects: &[String], spec: &HookSpec, rotate_secret: bool) -> Vec<HookChange> {
    let mut out = Vec::with_capacity(projects.len());
    for project in projects {
        let change = match sync_one(client, project, spec, rotate_secret).await {
            Ok(change) => change,
            Err(e) => HookChange::Failed { project: project.clone(), error: e.to_string() },
        };
        out.push(change);
    }
    out
}

async fn sync_one(
    client: &GitLabClient,
    project: &str,
    spec: &HookSpec,
    rotate_secret: bool,
) -> Result<HookChange, super::client::GitLabError> {
    let id = ProjectId::Path(project.to_string());
    let hooks = client.project_hooks(&id).await?;
    let same_url = |u: &str| u.trim_end_matches('/') == spec.url.trim_end_matches('/');
    let Some(existing) = hooks.into_iter().find(|h| same_url(&h.url)) else {
        let hook = client.create_project_hook(&id, &spec.url, &spec.token, &spec.events).await?;
        return Ok(HookChange::Created { project: project.to_string(), hook: hook.id });
    };
    let mut reasons = Vec::new();
    if existing.events != spec.events {
        reasons.push("events differ".to_string());
    }
    if rotate_secret {
        reasons.push("secret rotation requested".to_string());
    }
    if reasons.is_empty() {
        return Ok(HookChange::Unchanged { project: project.to_string(), hook: existing.id });
    }
    client.edit_project_hook(&id, existing.id, &spec.url, &spec.token, &spec.events).await?;
    Ok(HookChange::Updated { project: project.to_string(), hook: existing.id, reason: reasons.join(", ") })
}
