//! GitLab issues as work items from `Issue Hook` events: the issue is mapped
//! (`crate::workitems::gitlab`) and stored, and the state it reports is recorded at its `updated_at`.
//!
//! Reads only what the payload lacks: the milestone's title (for the version), from the iterations the
//! store already holds (the backfill and earlier events store every milestone they see), else once from
//! GitLab (`GET /projects/:id/milestones/:id`; a group milestone answers 404 there and leaves the version
//! unset until the backfill sees it). Idempotent: the item is replaced by the same values and the store
//! records a (time, state) pair once, so a redelivered or retried event adds nothing.

use crate::gitlab::client::{GitLabError, ProjectId};
use crate::gitlab::events::GitLabEvent;
use crate::gitlab::handlers::{EventHandler, HandlerContext, HandlerFuture, StoredEvent};
use crate::store;
use crate::workitems::gitlab::{bug_versions, iteration, record, work_item, IssueFacts};
use crate::workitems::{StateChange, SOURCE_GITLAB};

/// The handler; registered in `crate::app::event_handlers`.
#[derive(Debug, Clone, Copy)]
pub struct IssueHandler;

impl EventHandler for IssueHandler {
    fn name(&self) -> &'static str {
        "work item issues"
    }

    fn handle<'a>(&'a self, ctx: &'a HandlerContext, event: &'a StoredEvent) -> HandlerFuture<'a> {
        Box::pin(async move {
            let GitLabEvent::Issue(e) = &event.view else { return Ok(()) };
            let facts = IssueFacts::from_webhook(e).map_err(|e| e.to_string())?;
            let catalog = (ctx.catalog)();
            let title = match facts.milestone_id {
                Some(m) => milestone_title(ctx, &catalog, &facts.project, m).await?,
                None => None,
            };
            let item = work_item(&facts, &catalog, &ctx.issue_rules, title.as_deref());
            let author = e.user.as_ref().and_then(|u| u.username.clone());
            let state = StateChange { state: item.state.clone(), at: item.modified_at, author };
            let bug = bug_versions(&facts, &catalog, &item);
            let added = record(&ctx.pool, &item, bug, &[state]).await.map_err(|e| e.to_string())?;
            tracing::debug!(
                delivery = %event.row.delivery_id,
                project = %facts.project,
                iid = facts.iid,
                state = %item.state,
                added,
                "issue recorded as a work item"
            );
            Ok(())
        })
    }
}

/// The title of milestone `id`: stored, else asked of GitLab once and stored.
async fn milestone_title(
    ctx: &HandlerContext,
    catalog: &crate::catalog::Catalog,
    project: &str,
    id: i64,
) -> Result<Option<String>, String> {
    if let Some(it) =
        store::workitem::iteration(&ctx.pool, SOURCE_GITLAB, &id.to_string()).await.map_err(|e| e.to_string())?
    {
        return Ok(Some(it.name));
    }
    let Some(gitlab) = &ctx.gitlab else { return Ok(None) };
    let m = match gitlab.milestone(&ProjectId::Path(project.to_string()), id).await {
        Ok(m) => m,
        Err(e @ GitLabError::Status { status: 404, .. }) => {
            tracing::info!(project, milestone = id, error = %e, "milestone not found in the project; version left unset");
            return Ok(None);
        }
        Err(e) => return Err(e.to_string()),
    };
    let at = m.updated_at.as_deref().and_then(crate::metrics::events::gitlab_time).unwrap_or(0);
    let state = m.state.as_deref().unwrap_or("active");
    let row = iteration(catalog, project, m.id, &m.title, state, at);
    store::workitem::upsert_iteration(&ctx.pool, &row).await.map_err(|e| e.to_string())?;
    Ok(Some(m.title))
}
