//! Links work items to merge requests and commits from GitLab events: the MR's title and source branch
//! (`merge_request` `group/project!iid`), its head commit's message and every pushed commit's message
//! (`commit` sha). References are `crate::workitems::links`'; a bare `#12` is the event project's GitLab
//! issue 12 when Tao holds it (`crate::workitems::sync::link_text_in`), else a TAPD short id looked up in
//! the TAPD workspaces of the products whose components live in the event's project (every mapped
//! workspace when none does). Idempotent: a link is recorded once, so a redelivered or retried event adds
//! nothing.

use crate::catalog::Catalog;
use crate::gitlab::events::GitLabEvent;
use crate::gitlab::handlers::{EventHandler, HandlerContext, HandlerFuture, StoredEvent};
use crate::workitems::sync::{link_text_in, Via};

/// The handler; registered in `crate::app::event_handlers`.
#[derive(Debug, Clone, Copy)]
pub struct WorkItemLinkHandler;

impl EventHandler for WorkItemLinkHandler {
    fn name(&self) -> &'static str {
        "work item links"
    }

    fn handle<'a>(&'a self, ctx: &'a HandlerContext, event: &'a StoredEvent) -> HandlerFuture<'a> {
        Box::pin(async move {
            let catalog = (ctx.catalog)();
            let fail = |e: crate::store::StoreError| e.to_string();
            let pool = &ctx.pool;
            match &event.view {
                GitLabEvent::MergeRequest(e) => {
                    let Some(path) = e.project.as_ref().and_then(|p| p.path_with_namespace.as_deref()) else {
                        return Ok(());
                    };
                    let ws = workspaces_of(&catalog, path);
                    let mr = &e.object_attributes;
                    let target = format!("{path}!{}", mr.iid);
                    let link = |text: &'a str, via, kind: &'a str, target: String| {
                        let ws = ws.clone();
                        async move { link_text_in(pool, text, via, Some(path), &ws, kind, &target).await }
                    };
                    if let Some(title) = &mr.title {
                        link(title, Via::Title, "merge_request", target.clone()).await.map_err(fail)?;
                    }
                    if let Some(branch) = &mr.source_branch {
                        link(branch, Via::Branch, "merge_request", target.clone()).await.map_err(fail)?;
                    }
                    if let Some((Some(sha), Some(message))) = mr.last_commit.as_ref().map(|c| (&c.id, &c.message)) {
                        link(message, Via::CommitMessage, "commit", sha.clone()).await.map_err(fail)?;
                    }
                }
                GitLabEvent::Push(e) if !e.is_deletion() => {
                    let Some(path) = e.project.as_ref().and_then(|p| p.path_with_namespace.as_deref()) else {
                        return Ok(());
                    };
                    let ws = workspaces_of(&catalog, path);
                    for c in &e.commits {
                        if let Some(message) = &c.message {
                            link_text_in(pool, message, Via::CommitMessage, Some(path), &ws, "commit", &c.id)
                                .await
                                .map_err(fail)?;
                        }
                    }
                }
                _ => {}
            }
            Ok(())
        })
    }
}

/// TAPD workspaces of the products with a component in `project`; every mapped one when none has.
pub fn workspaces_of(catalog: &Catalog, project: &str) -> Vec<String> {
    let mapped = || catalog.products.values().filter_map(|p| p.tapd.as_ref().map(|t| t.workspace_id.clone()));
    let mut own: Vec<String> = catalog
        .products
        .values()
        .filter(|p| {
            p.components.iter().any(|c| {
                catalog.components.get(c).and_then(|c| c.project.as_ref()).is_some_and(|pp| pp.as_str() == project)
            })
        })
        .filter_map(|p| p.tapd.as_ref().map(|t| t.workspace_id.clone()))
        .collect();
    if own.is_empty() {
        own = mapped().collect();
    }
    own.sort();
    own.dedup();
    own
}
