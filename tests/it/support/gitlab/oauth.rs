//! GitLab as an OAuth 2 provider (authorization code with PKCE, as GitLab documents it): a registered
//! application, `GET /oauth/authorize` (the browser is signed in to GitLab as the world's
//! `browser_user`; GitLab redirects back with a code, or with `error=access_denied` when nobody is),
//! `POST /oauth/token` (checks the client secret, the redirect URI, that the code is unused and the
//! PKCE verifier's S256 against the challenge; answers GitLab's token JSON or its `invalid_grant` /
//! `invalid_client` errors), and the groups of the token's user (`GET /api/v4/groups`).

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use base64::Engine;
use serde_json::json;
use sha2::Digest;

use super::world::{authenticate, paginated, refuse, OAuthApp, OAuthCode};
use super::Shared;

/// `GET /oauth/authorize`.
pub(super) async fn authorize(State(world): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut w = world.lock().unwrap();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let Some(app) = w.oauth_apps.iter().find(|a| a.client_id == get("client_id")).cloned() else {
        return (StatusCode::BAD_REQUEST, "Client authentication failed due to unknown client").into_response();
    };
    if app.redirect_uri != get("redirect_uri") {
        return (StatusCode::BAD_REQUEST, "The redirect uri included is not valid.").into_response();
    }
    let back = |params: String| Redirect::to(&format!("{}?{params}", app.redirect_uri)).into_response();
    let state = get("state");
    if get("response_type") != "code" || get("code_challenge_method") != "S256" || get("code_challenge").is_empty() {
        return back(format!("error=invalid_request&state={state}"));
    }
    let Some(user_id) = w.browser_user else {
        return back(format!(
            "error=access_denied&error_description=The+resource+owner+denied+the+request.&state={state}"
        ));
    };
    let code = format!("code-{}", w.next_id());
    w.oauth_codes.push(OAuthCode {
        code: code.clone(),
        client_id: app.client_id.clone(),
        redirect_uri: app.redirect_uri.clone(),
        challenge: get("code_challenge"),
        user_id,
        used: false,
    });
    back(format!("code={code}&state={state}"))
}

fn grant_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({ "error": error, "error_description": description }))).into_response()
}

/// `POST /oauth/token` (form-encoded, as GitLab accepts it).
pub(super) async fn token(State(world): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    let mut w = world.lock().unwrap();
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let known = w.oauth_apps.iter().any(|a| a.client_id == get("client_id") && a.secret == get("client_secret"));
    if !known {
        return grant_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.");
    }
    if get("grant_type") != "authorization_code" {
        return grant_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    let invalid = || {
        grant_error(StatusCode::BAD_REQUEST, "invalid_grant", "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.")
    };
    let Some(at) = w.oauth_codes.iter().position(|c| c.code == get("code")) else { return invalid() };
    let c = w.oauth_codes[at].clone();
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
    if c.used || c.client_id != get("client_id") || c.redirect_uri != get("redirect_uri") || challenge != c.challenge {
        return invalid();
    }
    w.oauth_codes[at].used = true;
    let token = format!("oauth-{}-{}", c.user_id, w.next_id());
    w.oauth_tokens.push((token.clone(), c.user_id));
    Json(
        json!({ "access_token": token, "token_type": "Bearer", "expires_in": 7200, "refresh_token": format!("r{token}"),
                 "scope": "read_user read_api", "created_at": 1_709_287_200 }),
    )
    .into_response()
}

/// `GET /api/v4/groups`: the groups the token's user belongs to.
pub(super) async fn list_groups(
    State(world): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = world.lock().unwrap();
    let user = match authenticate(&w, &headers) {
        Ok(u) => u,
        Err(r) => return refuse(r),
    };
    let groups = w
        .groups
        .iter()
        .enumerate()
        .filter(|(_, (_, members))| members.contains(&user.id))
        .map(|(i, (path, _))| {
            let name = path.rsplit('/').next().unwrap_or(path);
            json!({ "id": 9000 + i, "name": name, "path": name, "full_path": path, "visibility": "private" })
        })
        .collect();
    paginated("/api/v4/groups", groups, &q)
}

impl super::GitLabDouble {
    /// Registers an OAuth application; returns its id and secret.
    pub fn add_oauth_app(&self, redirect_uri: &str) -> (String, String) {
        let mut w = self.world();
        let n = w.next_id();
        let app =
            OAuthApp { client_id: format!("app-{n}"), secret: format!("gloas-{n}"), redirect_uri: redirect_uri.into() };
        w.oauth_apps.push(app.clone());
        (app.client_id, app.secret)
    }

    /// Who the browser is signed in to GitLab as (`None`: nobody; authorizing is then denied).
    pub fn sign_in_browser(&self, user_id: Option<i64>) {
        self.world().browser_user = user_id;
    }

    /// Adds a group (full path) with members.
    pub fn add_group(&self, full_path: &str, members: &[i64]) {
        self.world().groups.push((full_path.into(), members.to_vec()));
    }
}
