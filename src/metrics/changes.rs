//! Records what each component version changed, for lead time for changes: on a pushed release tag of a
//! catalog component, the commits between the component's previous version tag and this one (GitLab's
//! compare), with their commit times.
//!
//! The previous version is the highest tag of the project in the component's tag format below this
//! one, so tags pushed out of order still get the right range. A component's first version has no
//! previous tag and records no commits (there is no start to measure from). Idempotent: a version is
//! recorded once (`store::change`), so a redelivered or retried event asks GitLab nothing again.

use crate::catalog::Catalog;
use crate::gitlab::client::{GitLabClient, ProjectId};
use crate::gitlab::events::GitLabEvent;
use crate::gitlab::handlers::{EventHandler, HandlerContext, HandlerFuture, StoredEvent};
use crate::store::change::{self, ChangeCommit, ComponentChange};
use crate::store::Pool;

/// The handler; registered in `crate::app::event_handlers`.
#[derive(Debug, Clone, Copy)]
pub struct ChangeHandler;

impl EventHandler for ChangeHandler {
    fn name(&self) -> &'static str {
        "changes"
    }

    fn handle<'a>(&'a self, ctx: &'a HandlerContext, event: &'a StoredEvent) -> HandlerFuture<'a> {
        Box::pin(async move {
            let GitLabEvent::TagPush(push) = &event.view else { return Ok(()) };
            if push.is_deletion() {
                return Ok(());
            }
            let Some(tag) = push.git_ref.strip_prefix("refs/tags/") else { return Ok(()) };
            let Some(path) = push.project.as_ref().and_then(|p| p.path_with_namespace.clone()) else { return Ok(()) };
            let Some(gitlab) = &ctx.gitlab else { return Ok(()) };
            let catalog = (ctx.catalog)();
            for (component, format) in components_of(&catalog, &path) {
                record_tag(&ctx.pool, gitlab, &path, &component, &format, tag).await?;
            }
            Ok(())
        })
    }
}

/// Components built from `project`, with their tag formats.
fn components_of(catalog: &Catalog, project: &str) -> Vec<(String, String)> {
    catalog
        .components
        .iter()
        .filter(|(_, c)| c.project.as_ref().is_some_and(|p| p.as_str() == project))
        .map(|(n, c)| (n.as_str().to_string(), c.git_tag.clone()))
        .collect()
}

/// Records the change set of `tag` for `component` unless it is recorded already or is not a version
/// tag of the component.
pub async fn record_tag(
    pool: &Pool,
    gitlab: &GitLabClient,
    project: &str,
    component: &str,
    format: &str,
    tag: &str,
) -> Result<(), String> {
    let Some(version) = crate::policy::parse_tag(format, tag) else { return Ok(()) };
    let version_text = version.to_string();
    if change::recorded(pool, component, &version_text).await.map_err(|e| e.to_string())? {
        return Ok(());
    }
    let id = ProjectId::Path(project.to_string());
    let tags = gitlab.tags(&id).await.map_err(|e| e.to_string())?;
    let previous = tags
        .into_iter()
        .filter_map(|t| crate::policy::parse_tag(format, &t.name).map(|v| (v, t.name)))
        .filter(|(v, _)| v.semver() < version.semver())
        .max_by(|(a, _), (b, _)| a.semver().cmp(b.semver()))
        .map(|(_, name)| name);
    let mut commits = Vec::new();
    if let Some(previous) = &previous {
        let comparison = gitlab.compare(&id, previous, tag).await.map_err(|e| e.to_string())?;
        for c in comparison.commits {
            let Some(at) = c.committed_date.as_deref().and_then(crate::metrics::events::gitlab_time) else {
                return Err(format!("compare {previous}...{tag}: commit {} has no committed_date", c.id));
            };
            let title = c.title.clone().unwrap_or_default();
            commits.push(ChangeCommit {
                component: component.to_string(),
                version: version_text.clone(),
                sha: c.id,
                title,
                committed_at: at,
            });
        }
    }
    tracing::info!(component, version = %version_text, previous = previous.as_deref().unwrap_or("-"),
                   commits = commits.len(), "change set recorded");
    let change = ComponentChange {
        component: component.to_string(),
        version: version_text,
        project_path: project.to_string(),
        tag: tag.to_string(),
        previous_tag: previous,
        commits,
    };
    change::record(pool, &change).await.map_err(|e| e.to_string())
}
