//! Who a browser is: the session cookie, sign-in (GitLab OAuth with PKCE, or an API token), sign-out,
//! and the CSRF check of every state-changing form.
//!
//! The cookie `tao_session` is `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` when the public URL is
//! https, and holds only a random value (the session is a row, `store::session`). Reading needs a
//! session (or an API token as `Authorization: Bearer`, for scripts) unless `TAO_OPEN_READ` is on; a form needs a session and its CSRF token, else 403 and
//! nothing changes. The token sign-in form is guarded by a double-submit cookie (`tao_login`), so another
//! site cannot sign a browser in as someone else.

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{console, WebState};
use crate::gitlab::client::{Auth, GitLabClient, RetryPolicy};
use crate::gitlab::oauth;
use crate::service::WebSession;
use crate::store::session::random_token;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tao_session";
const LOGIN_COOKIE: &str = "tao_login";

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Who is looking: a session, or nobody (where reading is open).
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// The live session, if signed in.
    pub session: Option<WebSession>,
}

impl Viewer {
    /// The session, if any.
    pub fn session(&self) -> Option<&WebSession> {
        self.session.as_ref()
    }
}

async fn session_of(s: &WebState, headers: &HeaderMap) -> Result<Option<WebSession>, Response> {
    let Some(value) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    s.services.web_session(&value).await.map_err(|e| console(s).refusal(&e, None))
}

/// The viewer of a reading page; without a session (and with reading not open) the answer is the
/// sign-in page's redirect, coming back to `uri` after.
pub async fn reader(s: &WebState, headers: &HeaderMap, uri: &Uri) -> Result<Viewer, Response> {
    let session = session_of(s, headers).await?;
    // A script may read pages with an API token (`Authorization: Bearer`), as it reads the API.
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if session.is_none() && !s.open_read {
        if let Some(token) = bearer {
            match s.services.authenticate(token).await {
                Ok(Some(_)) => return Ok(Viewer { session: None }),
                Ok(None) => {}
                Err(e) => return Err(console(s).refusal(&e, None)),
            }
        }
        let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        return Err(Redirect::to(&format!("/ui/login?next={}", crate::urlenc::encode(next))).into_response());
    }
    Ok(Viewer { session })
}

/// The session of a state-changing form: signed in, and the form's `csrf` field is the session's
/// token. Anything else is 403 and nothing happens.
pub async fn writer(s: &WebState, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<WebSession, Response> {
    let c = console(s);
    let Some(session) = session_of(s, headers).await? else {
        return Err(c.message(StatusCode::FORBIDDEN, "Not signed in", "sign in first; nothing was changed", None));
    };
    let sent = form.get("csrf").map(String::as_str).unwrap_or_default();
    if sent.is_empty() || !bool::from(sent.as_bytes().ct_eq(session.csrf.as_bytes())) {
        tracing::warn!(user = %session.user, "a console form without its CSRF token was refused");
        return Err(c.message(
            StatusCode::FORBIDDEN,
            "Form refused",
            "the form did not carry this session's CSRF token (reload the page and try again); nothing was changed",
            Some(&session),
        ));
    }
    Ok(session)
}

fn set_cookie(s: &WebState, name: &str, value: &str, max_age_s: i64) -> HeaderValue {
    let secure = if console(s).secure_cookies { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("tao_session=; Max-Age=0"))
}

/// Where to go after signing in: a local path only (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.starts_with("/ui/log") => {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

/// `GET /ui/login`: sign in with GitLab (when configured) or an API token.
pub(super) async fn login_page(State(s): State<WebState>, Query(q): Query<NextQuery>) -> Response {
    let c = console(&s);
    let login_csrf = random_token();
    let next = safe_next(q.next.as_deref());
    let data = json!({
        "gitlab": c.oauth.is_some(),
        "gitlab_href": format!("/ui/login/gitlab?next={}", crate::urlenc::encode(&next)),
        "next": next,
        "login_csrf": login_csrf,
    });
    let mut r = c.page("login", "Sign in", None, &data);
    r.headers_mut().append(header::SET_COOKIE, set_cookie(&s, LOGIN_COOKIE, &login_csrf, 600));
    r
}

fn signed_in(s: &WebState, cookie_value: &str, next: &str) -> Response {
    let ttl_s = console(s).session_ttl_ms / 1000;
    let mut r = Redirect::to(next).into_response();
    r.headers_mut().append(header::SET_COOKIE, set_cookie(s, SESSION_COOKIE, cookie_value, ttl_s));
    r.headers_mut().append(header::SET_COOKIE, set_cookie(s, LOGIN_COOKIE, "", 0));
    r
}

/// `POST /ui/login`: sign in with an API token.
pub(super) async fn login_with_token(
    State(s): State<WebState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let c = console(&s);
    let sent = form.get("login_csrf").map(String::as_str).unwrap_or_default();
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if sent.is_empty() || !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
        return c.message(
            StatusCode::FORBIDDEN,
            "Form refused",
            "the sign-in form expired; open the sign-in page again",
            None,
        );
    }
    let token = form.get("token").map(|t| t.trim()).unwrap_or_default();
    if token.is_empty() {
        return c.message(StatusCode::UNPROCESSABLE_ENTITY, "Not valid", "token: expected an API token (tao_…)", None);
    }
    match s.services.web_sign_in_token(token, c.session_ttl_ms).await {
        Ok(Some((value, _))) => signed_in(&s, &value, &safe_next(form.get("next").map(String::as_str))),
        Ok(None) => c.message(StatusCode::UNAUTHORIZED, "Not signed in", "the token is unknown or revoked", None),
        Err(e) => c.refusal(&e, None),
    }
}

/// `GET /ui/login/gitlab`: sends the browser to GitLab's authorization page with a fresh state and
/// PKCE challenge.
pub(super) async fn login_with_gitlab(State(s): State<WebState>, Query(q): Query<NextQuery>) -> Response {
    let c = console(&s);
    let Some(app) = &c.oauth else {
        return c.message(
            StatusCode::NOT_FOUND,
            "Not configured",
            "sign-in with GitLab is not configured (TAO_GITLAB_OAUTH_CLIENT_ID); sign in with an API token",
            None,
        );
    };
    let (state, verifier) = (random_token(), oauth::new_verifier());
    if let Err(e) = s.services.web_begin_login(&state, &verifier, &safe_next(q.next.as_deref())).await {
        return c.refusal(&e, None);
    }
    Redirect::to(&app.authorize_url(&state, &verifier)).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /ui/oauth/callback`: GitLab sends the browser back with a code; exchange it (with the
/// verifier), learn who it is, map them to a level and start a session.
pub(super) async fn oauth_callback(State(s): State<WebState>, Query(q): Query<Callback>) -> Response {
    let c = console(&s);
    let Some(app) = &c.oauth else {
        return c.message(StatusCode::NOT_FOUND, "Not configured", "sign-in with GitLab is not configured", None);
    };
    if let Some(error) = q.error {
        let why = q.error_description.unwrap_or_default();
        return c.message(StatusCode::FORBIDDEN, "Not signed in", &format!("GitLab answered {error}: {why}"), None);
    }
    let (Some(code), Some(state)) = (q.code.filter(|v| !v.is_empty()), q.state.filter(|v| !v.is_empty())) else {
        return c.message(StatusCode::BAD_REQUEST, "Not signed in", "code, state: expected both from GitLab", None);
    };
    let (verifier, next) = match s.services.web_take_login(&state).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return c.message(
                StatusCode::BAD_REQUEST,
                "Not signed in",
                "state: this sign-in is unknown, used already or older than 10 minutes; sign in again",
                None,
            )
        }
        Err(e) => return c.refusal(&e, None),
    };
    let token = match app.exchange(&code, &verifier).await {
        Ok(t) => t,
        Err(oauth::OAuthError::Refused(why)) => return c.message(StatusCode::FORBIDDEN, "Not signed in", &why, None),
        Err(e) => return c.message(StatusCode::BAD_GATEWAY, "Not signed in", &e.to_string(), None),
    };
    let who = match GitLabClient::new(&app.gitlab_url, Auth::Bearer(token), RetryPolicy::default()) {
        Ok(client) => match client.current_user().await {
            Ok(user) => client.my_groups().await.map(|groups| (user, groups)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let (user, groups) = match who {
        Ok(found) => found,
        Err(e) => {
            return c.message(
                StatusCode::BAD_GATEWAY,
                "Not signed in",
                &format!("asking GitLab who you are: {e}"),
                None,
            )
        }
    };
    let person = c.roles.gitlab_user(user.id, &user.username, &groups);
    match s.services.web_sign_in_gitlab(&person, c.session_ttl_ms).await {
        Ok((value, _)) => signed_in(&s, &value, &next),
        Err(e) => c.refusal(&e, None),
    }
}

/// `POST /ui/logout`: ends the session (CSRF-checked) and clears the cookie.
pub(super) async fn logout(
    State(s): State<WebState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match writer(&s, &headers, &form).await {
        Ok(session) => session,
        Err(r) => return r,
    };
    let value = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    if let Err(e) = s.services.web_sign_out(&value, &session.actor()).await {
        return console(&s).refusal(&e, Some(&session));
    }
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().append(header::SET_COOKIE, set_cookie(&s, SESSION_COOKIE, "", 0));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/ui/tasks/3")), "/ui/tasks/3");
        for bad in ["//evil.example", "https://evil.example", "/\\evil", "/ui/logout", ""] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; tao_session=abc"));
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
