//! Branch policy enforced on GitLab (a feature over the `gitlab` adapter): the merge-request check (`check`), the push and tag guard (`guard`), the
//! project audit and apply (`audit`), and the event handler that runs them from stored webhooks.
//!
//! The rules and verdicts are `crate::policy`'s (pure); this module reads facts from GitLab, writes
//! statuses, notes, protections and settings, and records verdicts and violations in the store.

pub mod audit;
pub mod check;
pub mod guard;

pub use check::{check_mr, reconcile, rules_for, Mode, Outcome, PolicyContext, NOTE_MARKER, STATUS_NAME};

use crate::gitlab::client::{GitLabError, MergeRequestState, ProjectId};
use crate::gitlab::events::{GitLabEvent, ProjectRef};
use crate::gitlab::handlers::{EventHandler, HandlerContext, HandlerFuture, StoredEvent};
use crate::store::StoreError;

/// Why a policy action failed (the event is retried).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// GitLab failed or refused.
    #[error(transparent)]
    GitLab(#[from] GitLabError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs the policy on merge request, pipeline, push, tag push and external status check events.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyHandler;

impl EventHandler for PolicyHandler {
    fn name(&self) -> &'static str {
        "policy"
    }

    fn handle<'a>(&'a self, ctx: &'a HandlerContext, event: &'a StoredEvent) -> HandlerFuture<'a> {
        Box::pin(async move {
            let Some(gitlab) = ctx.gitlab.clone() else { return Ok(()) };
            let policy = PolicyContext {
                gitlab,
                pool: ctx.pool.clone(),
                catalog: (ctx.catalog)(),
                public_url: ctx.public_url.clone(),
                notifier: ctx.notifier.clone(),
            };
            handle(&policy, event).await.map_err(|e| e.to_string())
        })
    }
}

fn project_of(project: Option<&ProjectRef>, fallback_id: Option<i64>) -> Option<(i64, String)> {
    let id = project.and_then(|p| p.id).or(fallback_id)?;
    let path = project.and_then(|p| p.path_with_namespace.clone())?;
    Some((id, path))
}

async fn handle(ctx: &PolicyContext, event: &StoredEvent) -> Result<(), PolicyError> {
    match &event.view {
        GitLabEvent::MergeRequest(e) => {
            let action = e.object_attributes.action.as_deref();
            if !matches!(action, None | Some("open" | "reopen" | "update")) {
                return Ok(());
            }
            let Some((id, path)) = project_of(e.project.as_ref(), e.object_attributes.target_project_id) else {
                return Ok(());
            };
            check_mr(ctx, id, &path, e.object_attributes.iid, Mode::Evaluate).await?;
        }
        GitLabEvent::Pipeline(e) => {
            if e.object_attributes.tag == Some(true) {
                return Ok(());
            }
            let Some((id, path)) = project_of(e.project.as_ref(), None) else { return Ok(()) };
            announce_failed_pipeline(ctx, e, &path).await?;
            match &e.merge_request {
                Some(mr) => {
                    check_mr(ctx, id, &path, mr.iid, Mode::Ensure).await?;
                }
                None => {
                    let Some(branch) = e.object_attributes.git_ref.as_deref() else { return Ok(()) };
                    for iid in open_mrs(ctx, id, |mr| mr.source_branch == branch).await? {
                        check_mr(ctx, id, &path, iid, Mode::Ensure).await?;
                    }
                }
            }
        }
        GitLabEvent::Push(e) => {
            guard::guard_push(ctx, e, &event.row.delivery_id).await?;
            let Some((id, path)) = project_of(e.project.as_ref(), e.project_id) else { return Ok(()) };
            // A target that moved on can leave its MRs behind; GitLab sends them no MR event for that.
            if let Some(branch) = e.git_ref.strip_prefix("refs/heads/") {
                for iid in open_mrs(ctx, id, |mr| mr.target_branch == branch).await? {
                    check_mr(ctx, id, &path, iid, Mode::Evaluate).await?;
                }
            }
        }
        GitLabEvent::TagPush(e) => {
            guard::guard_tag(ctx, e, &event.row.delivery_id).await?;
        }
        GitLabEvent::StatusCheck(e) => {
            let Some((id, path)) = project_of(e.project.as_ref(), e.object_attributes.target_project_id) else {
                return Ok(());
            };
            check::answer_status_check(ctx, id, &path, e.object_attributes.iid, e.external_approval_rule.id).await?;
        }
        _ => {}
    }
    Ok(())
}

/// A failed pipeline on a protected branch (main, release lines) is announced.
async fn announce_failed_pipeline(
    ctx: &PolicyContext,
    e: &crate::gitlab::events::PipelineEvent,
    path: &str,
) -> Result<(), StoreError> {
    let (Some(n), Some(branch)) = (&ctx.notifier, e.object_attributes.git_ref.as_deref()) else { return Ok(()) };
    if e.object_attributes.status.as_deref() != Some("failed")
        || rules_for(&ctx.catalog, path).protection_of(branch).is_none()
    {
        return Ok(());
    }
    let id = e.object_attributes.id;
    let link = e.project.as_ref().and_then(|p| p.web_url.as_deref()).map(|u| format!("{u}/-/pipelines/{id}"));
    let f = crate::notify::fields([
        ("project", path.into()),
        ("ref", branch.into()),
        ("pipeline_id", id.into()),
        ("sha", e.object_attributes.sha.clone().unwrap_or_default().into()),
        ("link", link.unwrap_or_default().into()),
    ]);
    n.emit("pipeline.failed", &format!("pipeline-{id}-failed"), f).await
}

async fn open_mrs(
    ctx: &PolicyContext,
    project_id: i64,
    keep: impl Fn(&crate::gitlab::client::MergeRequest) -> bool,
) -> Result<Vec<i64>, GitLabError> {
    let mrs = ctx.gitlab.merge_requests(&ProjectId::Id(project_id), MergeRequestState::Opened).await?;
    Ok(mrs.iter().filter(|m| keep(m)).map(|m| m.iid).collect())
}
