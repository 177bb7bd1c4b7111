//! The HTTP surface: the router, one file per area, one auth extractor, one error mapping.
//!
//! Handlers parse and answer; what they do is in `crate::service`. Every `/api/v1` route declares the
//! scope it needs through its [`auth::Authorized`] argument; `/healthz` and `/ci/v1` (the CI templates
//! GitLab fetches anonymously) are open; the GitLab webhook, status checks and Discord's interactions
//! carry their own state and signature checks and are merged in `app.rs`.

pub mod api;
pub mod auth;
pub mod body;
pub mod ci;
pub mod deploy;
pub mod discord;
pub mod error;
pub mod events;
pub mod health;
pub mod list;
pub mod metrics;
pub mod policy;
pub mod webhook;
pub mod workitems;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::service::Services;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// The services.
    pub services: Services,
    /// Serve read-only endpoints without a token.
    pub open_read: bool,
    /// The shared CI templates and their render cache.
    pub ci: crate::ci_templates::CiTemplates,
}

/// Builds the router with its body limit.
pub fn router(state: HttpState, max_body: usize) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .nest(
            "/api/v1",
            api::routes()
                .merge(deploy::routes())
                .merge(events::routes())
                .merge(policy::routes())
                .merge(metrics::routes())
                .merge(workitems::routes()),
        )
        .merge(metrics::root_routes())
        .nest("/ui", policy::ui_routes())
        .nest("/ci/v1", ci::routes())
        .fallback(|| async { error::ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
