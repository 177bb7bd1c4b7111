//! The contract of GitLab event handlers: what a handler gets ([`HandlerContext`], [`StoredEvent`]), the
//! [`EventHandler`] trait, and [`Handlers`], the list the workers run. Which handlers Tao runs is one
//! table in `crate::app` (`event_handlers`); the handlers are features on higher floors.
//!
//! A handler gets the stored row and its typed view and must be idempotent: it may run again for the
//! same event (retries, redeliveries, a crash between handling and marking), so it re-reads current
//! state from GitLab instead of trusting an old payload, and looks for what it already did before doing
//! it again.
//! Handlers must not mark events themselves: the worker does, from their result.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::client::GitLabClient;
use super::events::GitLabEvent;
use crate::store::event::EventRow;
use crate::store::Pool;

/// What a handler can reach.
#[derive(Clone)]
pub struct HandlerContext {
    /// The store.
    pub pool: Pool,
    /// GitLab, when configured (`TAO_GITLAB_URL`, `TAO_GITLAB_TOKEN`).
    pub gitlab: Option<GitLabClient>,
    /// The catalog in force, read at each call (it may be re-applied while Tao runs).
    pub catalog: crate::catalog::CatalogSource,
    /// Tao's external URL (`TAO_PUBLIC_URL`), for links Tao posts.
    pub public_url: Option<String>,
    /// Where notifications go (the outbox), when rules are configured.
    pub notifier: Option<crate::notify::Notifier>,
    /// How issues map to work item kinds and states (`TAO_GITLAB_BUG_LABELS`, `TAO_GITLAB_WORKFLOW_SCOPE`).
    pub issue_rules: crate::config::issue_rules::IssueRules,
}

impl std::fmt::Debug for HandlerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerContext")
            .field("gitlab", &self.gitlab.is_some())
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// A stored event as handlers see it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The stored row (index columns, attempts; the payload unless pruned).
    pub row: EventRow,
    /// The typed view of the payload.
    pub view: GitLabEvent,
}

/// Why a handler failed; the event is retried with backoff and the message is shown by the events API.
#[derive(Debug, thiserror::Error)]
#[error("{handler}: {message}")]
pub struct HandlerError {
    /// Which handler.
    pub handler: &'static str,
    /// What went wrong (no secrets).
    pub message: String,
}

/// The future a handler returns.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// One reaction to events.
pub trait EventHandler: Send + Sync + 'static {
    /// Name, for logs and errors.
    fn name(&self) -> &'static str;
    /// Handles one event (idempotently; see the module header). Kinds it does not care about are `Ok`.
    fn handle<'a>(&'a self, ctx: &'a HandlerContext, event: &'a StoredEvent) -> HandlerFuture<'a>;
}

/// The registered handlers, run in registration order for every event.
#[derive(Clone, Default)]
pub struct Handlers {
    list: Vec<Arc<dyn EventHandler>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.list.iter().map(|h| h.name())).finish()
    }
}

impl Handlers {
    /// Adds a handler after the registered ones.
    pub fn register(mut self, handler: impl EventHandler) -> Handlers {
        self.list.push(Arc::new(handler));
        self
    }

    /// Runs every handler; stops at the first failure (the retry reruns all of them, which idempotent
    /// handlers allow).
    pub async fn dispatch(&self, ctx: &HandlerContext, event: &StoredEvent) -> Result<(), HandlerError> {
        for h in &self.list {
            h.handle(ctx, event).await.map_err(|message| HandlerError { handler: h.name(), message })?;
        }
        Ok(())
    }
}

/// Makes events queryable. The index columns (kind, project, ref, received time) are written at intake,
/// so the event is listed by `GET /api/v1/events` from the moment it is acknowledged; this handler
/// records that the typed view parsed (a malformed payload of a known kind fails before it reaches here)
/// and logs what arrived.
#[derive(Debug, Clone, Copy)]
pub struct IndexHandler;

impl EventHandler for IndexHandler {
    fn name(&self) -> &'static str {
        "index"
    }

    fn handle<'a>(&'a self, _ctx: &'a HandlerContext, event: &'a StoredEvent) -> HandlerFuture<'a> {
        Box::pin(async move {
            tracing::debug!(
                delivery = %event.row.delivery_id,
                kind = %event.row.kind,
                project = event.row.project_path.as_deref().unwrap_or("-"),
                git_ref = event.row.git_ref.as_deref().unwrap_or("-"),
                "event indexed"
            );
            Ok(())
        })
    }
}
