//! Branch policy over HTTP: `GET /api/v1/policy/audit`, `GET /api/v1/policy/violations`,
//! `POST /api/v1/policy/reconcile`, the explanation page `GET /ui/policy/{project}/{mr}`, and GitLab
//! Ultimate's external status checks at `POST /api/v1/gitlab/status-checks`.
//!
//! Status check requests are verified (`X-Gitlab-Signature`: hex HMAC-SHA256 of the body with
//! `TAO_GITLAB_STATUS_CHECK_SECRET`, compared in constant time; anything else is a 401 and nothing is
//! stored), stored like webhooks (durable before the 200) and answered by the event workers.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::auth::{Authorized, NeedAdmin, NeedRead};
use super::error::ApiError;
use super::events::parse_time;
use super::list::{self, ListFormat};
use super::HttpState;
use crate::config::Secret;
use crate::gitlab::events::EXTERNAL_STATUS_CHECK;
use crate::gitlab::webhook::{self, DeliveryHeaders};
use crate::gitlab::worker::EventQueue;
use crate::policy::Verdict;
use crate::store::event::Inserted;
use crate::store::intake::EventWriter;
use crate::store::policy::ViolationRow;
use crate::store::{now_ms, rfc3339};

/// The `/policy` API routes (nested under `/api/v1`).
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/policy/audit", get(audit))
        .route("/policy/violations", get(violations))
        .route("/policy/reconcile", post(reconcile))
}

/// The explanation page (nested under `/ui`). Open: it shows what the MR's note already shows to
/// everyone who can read the MR, and GitLab users reach it from the status link without a Tao token.
pub fn ui_routes() -> Router<HttpState> {
    Router::new().route("/policy/{*rest}", get(explanation))
}

#[derive(Debug, serde::Deserialize)]
struct AuditQuery {
    project: Option<String>,
}

async fn audit(
    State(s): State<HttpState>,
    _: Authorized<NeedRead>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let audits = s.services.policy_audit(q.project.as_deref().filter(|p| !p.is_empty())).await?;
    let clean = audits.iter().all(|a| a.audit.clean() && a.error.is_none());
    Ok(Json(json!({ "clean": clean, "projects": audits })).into_response())
}

async fn reconcile(
    State(s): State<HttpState>,
    Authorized(actor, _): Authorized<NeedAdmin>,
) -> Result<Response, ApiError> {
    let checked = s.services.policy_reconcile(&actor).await?;
    Ok(Json(json!({ "checked": checked })).into_response())
}

#[derive(Debug, Default, serde::Deserialize)]
struct ViolationsQuery {
    project: Option<String>,
    since: Option<String>,
}

fn violation_json(v: &ViolationRow) -> Value {
    json!({
        "id": v.id, "project_id": v.project_id, "project": v.project_path, "kind": v.kind, "ref": v.git_ref,
        "sha": v.sha, "actor": v.actor, "rule": v.rule, "message": v.message, "fix": v.fix,
        "delivery_id": v.delivery_id, "created_at": rfc3339(v.created_at),
    })
}

/// `GET /api/v1/policy/violations?project=&since=`: a JSON array, or JSON lines with
/// `Accept: application/x-ndjson` or `format=ndjson`; streamed page by page either way.
async fn violations(
    State(s): State<HttpState>,
    _: Authorized<NeedRead>,
    format: ListFormat,
    Query(q): Query<ViolationsQuery>,
) -> Result<Response, ApiError> {
    let since = match q.since.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => Some(parse_time("since", v).map_err(|e| ApiError::invalid(vec![e]))?),
        None => None,
    };
    let services = s.services.clone();
    let project = q.project.filter(|p| !p.is_empty());
    Ok(list::paged(format, usize::MAX, move |after, n| {
        let (services, project) = (services.clone(), project.clone());
        async move {
            let rows = services.violations_page(project.as_deref(), since, after.unwrap_or(0), n).await?;
            Ok(rows.iter().map(|v| (v.id, violation_json(v))).collect())
        }
    }))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `GET /ui/policy/{group/project}/{iid}`: the stored verdict, each rule and each fix.
async fn explanation(State(s): State<HttpState>, Path(rest): Path<String>) -> Result<Response, ApiError> {
    let (project, iid) = rest
        .trim_end_matches('/')
        .rsplit_once('/')
        .and_then(|(p, i)| i.parse::<i64>().ok().map(|i| (p.to_string(), i)))
        .ok_or_else(|| ApiError::not_found("expected /ui/policy/<group/project>/<merge request iid>"))?;
    let check = s.services.policy_check(&project, iid).await?;
    let verdict: Verdict = serde_json::from_str(&check.verdict).unwrap_or_default();
    let mut items = String::new();
    for v in &verdict.violations {
        items.push_str(&format!(
            "<li><b>{}</b>: {}<br>Fix: {}</li>",
            escape(&v.rule),
            escape(&v.message),
            escape(&v.fix)
        ));
    }
    let body = if verdict.passed() {
        "<p>✅ All branch policy rules pass.</p>".to_string()
    } else {
        format!("<p>❌ {} problem(s):</p><ul>{items}</ul>", verdict.violations.len())
    };
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tao policy {project}!{iid}</title></head><body>\
         <h1>Branch policy: {project}!{iid}</h1><p><code>{source}</code> → <code>{target}</code> at \
         <code>{sha}</code>, checked {at}</p>{body}<h2>The model</h2><p>Feature branches merge into release \
         branches, release branches into the main branch; the source must contain the target's head \
         (rebase when it is behind); merges are semi-linear or fast-forward. See the project's \
         <code>policy:</code> section in the catalog for its exact rules.</p></body></html>",
        project = escape(&project),
        source = escape(&check.source_branch),
        target = escape(&check.target_branch),
        sha = escape(&check.head_sha),
        at = rfc3339(check.checked_at),
    );
    Ok(Html(page).into_response())
}

/// What the status check endpoint needs.
#[derive(Debug, Clone)]
pub struct StatusCheckIntake {
    /// Stores requests (the same intake writer as webhook deliveries).
    pub writer: EventWriter,
    /// The shared secret; every call is refused without one.
    pub secret: Option<Secret>,
    /// Rung after each stored request.
    pub queue: EventQueue,
}

/// `POST /api/v1/gitlab/status-checks` (merged into the main router by `app`).
pub fn status_check_routes(intake: StatusCheckIntake, max_body: usize) -> Router {
    Router::new()
        .route("/api/v1/gitlab/status-checks", post(status_check))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(intake)
}

/// Whether `signature` (hex) is the HMAC-SHA256 of `body` under `secret` (constant-time comparison).
pub fn signature_valid(secret: &Secret, body: &[u8], signature: &str) -> bool {
    let Ok(expected) = hex::decode(signature.trim()) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn status_check(State(intake): State<StatusCheckIntake>, headers: HeaderMap, body: Bytes) -> Response {
    let unauthorized = |why: &str| {
        tracing::warn!(reason = why, "status check request rejected");
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why.to_string()).into_response()
    };
    let Some(secret) = &intake.secret else {
        return unauthorized("no status check secret is configured (TAO_GITLAB_STATUS_CHECK_SECRET)");
    };
    let Some(signature) = headers.get("x-gitlab-signature").and_then(|v| v.to_str().ok()) else {
        return unauthorized("missing X-Gitlab-Signature");
    };
    if !signature_valid(secret, &body, signature) {
        return unauthorized("X-Gitlab-Signature does not match the body");
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string());
    let delivery = DeliveryHeaders {
        event: Some("External Status Check".into()),
        idempotency_key: text("idempotency-key"),
        event_uuid: text("x-gitlab-event-uuid"),
        webhook_uuid: None,
    };
    // Without delivery headers, the same request body is the same request (GitLab retrying it).
    let digest = hex::encode(Sha256::digest(&body));
    let new = match webhook::envelope_of_kind(Some(EXTERNAL_STATUS_CHECK), &delivery, &body, now_ms(), || {
        format!("status-check-{}", &digest[..40])
    }) {
        Ok(new) => new,
        Err(reason) => return ApiError::bad_request(reason.to_string()).into_response(),
    };
    if new.project_id.is_none() || !new.object_key.starts_with("merge_request:") {
        return ApiError::bad_request("body: expected a merge request with project.id and object_attributes.iid")
            .into_response();
    }
    match intake.writer.insert(new).await {
        Ok(Inserted::Stored(id)) => {
            intake.queue.wake();
            (StatusCode::OK, Json(json!({ "status": "stored", "id": id.0 }))).into_response()
        }
        Ok(Inserted::Duplicate) => (StatusCode::OK, Json(json!({ "status": "duplicate" }))).into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_sha256_of_the_body() {
        let secret = Secret::new("s3cret");
        // printf '{"a":1}' | openssl dgst -sha256 -hmac s3cret
        let real = "5910e62016ef5034272c926c27071992a465c2335cecf41851bda071577f4f6d";
        assert!(signature_valid(&secret, br#"{"a":1}"#, real));
        assert!(signature_valid(&secret, br#"{"a":1}"#, &real.to_uppercase()));
        assert!(!signature_valid(&secret, br#"{"a":2}"#, real));
        assert!(!signature_valid(&secret, br#"{"a":1}"#, &real[..62]));
        assert!(!signature_valid(&secret, br#"{"a":1}"#, "not hex"));
        assert!(!signature_valid(&Secret::new("other"), br#"{"a":1}"#, real));
    }
}
