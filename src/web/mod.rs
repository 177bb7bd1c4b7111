//! The web console: server-rendered pages under `/` and `/ui/` for people (overview, environments,
//! deploys with their plan, tasks with a live log, release and work-item boards, policy, delivery), and
//! sign-in with GitLab or an API token.
//!
//! Owns the page routes, the session cookie and CSRF checks (`auth.rs`), the page handlers
//! (`pages.rs`) and the embedded templates and assets (`templates/`, `assets/`; no CDN, no build step).
//! Pages hold no business logic: every fact and every action goes through the same `service` calls the
//! API uses, with the signed-in person as the actor, so web, API, CLI and chat cannot disagree.
//! Templates escape every value (`{{…}}`); only HTML this module rendered itself is inserted raw
//! (`{{{body}}}`). Every page reads without JavaScript; `console.js` adds the live log (Server-Sent
//! Events) and nothing else depends on it.

pub mod auth;
mod pages;

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use handlebars::Handlebars;
use serde_json::{json, Value};

use crate::config::discord_roles::RoleMap;
use crate::gitlab::oauth::OAuthApp;
use crate::service::{ServiceError, Services, WebSession};

/// What every console handler can reach (the console's own state: it is not an area of `http`, whose
/// router `app.rs` merges it beside).
#[derive(Debug, Clone)]
pub struct WebState {
    /// The services.
    pub services: Services,
    /// Reading without a session (`TAO_OPEN_READ`).
    pub open_read: bool,
    /// Templates and sign-in settings.
    pub console: Arc<Console>,
}

/// What the console needs beyond the services: templates, the GitLab OAuth application, the role map,
/// session settings.
#[derive(Debug)]
pub struct Console {
    templates: Handlebars<'static>,
    /// The GitLab OAuth application, when sign-in with GitLab is configured.
    pub oauth: Option<OAuthApp>,
    /// GitLab users and groups → levels (shared with chat).
    pub roles: RoleMap,
    /// Session lifetime, ms.
    pub session_ttl_ms: i64,
    /// Cookies get `Secure` (the public URL is https).
    pub secure_cookies: bool,
}

const TEMPLATES: &[(&str, &str)] = &[
    ("layout", include_str!("templates/layout.hbs")),
    ("login", include_str!("templates/login.hbs")),
    ("overview", include_str!("templates/overview.hbs")),
    ("environment", include_str!("templates/environment.hbs")),
    ("deploy", include_str!("templates/deploy.hbs")),
    ("tasks", include_str!("templates/tasks.hbs")),
    ("task", include_str!("templates/task.hbs")),
    ("releases", include_str!("templates/releases.hbs")),
    ("release", include_str!("templates/release.hbs")),
    ("work_items", include_str!("templates/work_items.hbs")),
    ("policy", include_str!("templates/policy.hbs")),
    ("delivery", include_str!("templates/delivery.hbs")),
    ("message", include_str!("templates/message.hbs")),
];

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/console.js");

impl Console {
    /// The console with its templates compiled (a template that does not compile is a build bug: the
    /// unit tests compile them all).
    pub fn new(
        oauth: Option<OAuthApp>,
        roles: RoleMap,
        session_ttl_ms: i64,
        secure_cookies: bool,
    ) -> Result<Console, String> {
        let mut templates = Handlebars::new();
        templates.set_strict_mode(false);
        for (name, text) in TEMPLATES {
            templates.register_template_string(name, *text).map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(Console { templates, oauth, roles, session_ttl_ms, secure_cookies })
    }

    /// Renders page `name` with `data` inside the layout (title, who is signed in, navigation).
    pub(crate) fn page(&self, name: &str, title: &str, session: Option<&WebSession>, data: &Value) -> Response {
        let body = match self.templates.render(name, data) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(template = name, error = %e, "a console page did not render");
                return (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render; see Tao's log").into_response();
            }
        };
        let frame = json!({
            "title": title,
            "body": body,
            "user": session.map(|s| json!({ "name": s.user.name, "roles": s.user.describe_roles(), "csrf": s.csrf })),
        });
        match self.templates.render("layout", &frame) {
            Ok(html) => (
                [(header::CACHE_CONTROL, "no-store"), (header::X_FRAME_OPTIONS, "DENY")],
                [(header::HeaderName::from_static("x-content-type-options"), "nosniff")],
                Html(html),
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "the console layout did not render");
                (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render; see Tao's log").into_response()
            }
        }
    }

    /// A page that says one thing (errors, refusals), with its status.
    pub(crate) fn message(
        &self,
        status: StatusCode,
        title: &str,
        text: &str,
        session: Option<&WebSession>,
    ) -> Response {
        let mut r = self.page("message", title, session, &json!({ "title": title, "text": text }));
        *r.status_mut() = status;
        r
    }

    /// A service refusal as a page with the matching status.
    pub(crate) fn refusal(&self, e: &ServiceError, session: Option<&WebSession>) -> Response {
        let (status, title) = match e {
            ServiceError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Not valid"),
            ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            ServiceError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            ServiceError::Forbidden(_) => (StatusCode::FORBIDDEN, "Not allowed"),
            ServiceError::Locked(_) => (StatusCode::LOCKED, "Locked"),
            ServiceError::NotConfigured(_) => (StatusCode::SERVICE_UNAVAILABLE, "Not configured"),
            ServiceError::Upstream(_) => (StatusCode::BAD_GATEWAY, "Upstream failure"),
            ServiceError::Store(inner) => {
                tracing::error!(error = %inner, "the store failed under a console page");
                return self.message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Store unavailable",
                    "the store failed; try again",
                    session,
                );
            }
        };
        self.message(status, title, &e.to_string(), session)
    }
}

/// The console's routes: `/` and everything under `/ui/` (the policy explanation pages stay with the
/// policy API in `http::policy`).
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/ui/assets/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }))
        .route(
            "/ui/assets/console.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT) }),
        )
        .route("/ui/login", get(auth::login_page).post(auth::login_with_token))
        .route("/ui/login/gitlab", get(auth::login_with_gitlab))
        .route("/ui/oauth/callback", get(auth::oauth_callback))
        .route("/ui/logout", post(auth::logout))
        .route("/ui/environments/{env}", get(pages::environment))
        .route("/ui/environments/{env}/freeze", post(pages::freeze))
        .route("/ui/environments/{env}/unfreeze", post(pages::unfreeze))
        .route("/ui/environments/{env}/check", post(pages::check))
        .route("/ui/deploy", get(pages::deploy_form).post(pages::deploy))
        .route("/ui/tasks", get(pages::tasks))
        .route("/ui/tasks/{id}", get(pages::task))
        .route("/ui/tasks/{id}/events", get(pages::task_events))
        .route("/ui/tasks/{id}/cancel", post(pages::cancel))
        .route("/ui/releases/{product}", get(pages::releases))
        .route("/ui/releases/{product}/{version}", get(pages::release))
        .route("/ui/work-items/{product}", get(pages::work_items))
        .route("/ui/policy", get(pages::policy))
        .route("/ui/delivery/{product}", get(pages::delivery))
        .route("/ui/delivery/{product}/{picture}", get(pages::delivery_picture))
        .with_state(state)
}

/// The console of an HTTP state.
pub(crate) fn console(s: &WebState) -> &Arc<Console> {
    &s.console
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_escapes() {
        let c = Console::new(None, RoleMap::default(), 1000, false).unwrap();
        let r = c.page("message", "<t>", None, &json!({ "title": "<script>x</script>", "text": "\"onerror=" }));
        assert_eq!(r.status(), StatusCode::OK);
    }
}
