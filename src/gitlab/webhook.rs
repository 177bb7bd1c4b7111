//! Webhook verification and the envelope of a delivery: what Tao reads from GitLab's headers and the
//! payload before storing it.
//!
//! Owns the constant-time check of `X-Gitlab-Token` against the configured secrets and the extraction of
//! kind, project, ref, delivery id and ordering key from any payload (project, group and system hooks;
//! unknown kinds too). It must not interpret payloads beyond that: typed views are in `events`, actions
//! in `handlers`. Nothing here logs or returns a secret.

use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::store::event::{DeliveryId, NewEvent};

/// Why a delivery was refused before storing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// No `X-Gitlab-Token`, or no secret is configured.
    #[error("missing X-Gitlab-Token")]
    MissingToken,
    /// `X-Gitlab-Token` matches no configured secret.
    #[error("X-Gitlab-Token does not match the configured webhook secret")]
    WrongToken,
    /// Webhooks are refused until a secret is configured.
    #[error("no webhook secret is configured (TAO_GITLAB_WEBHOOK_SECRET); refusing every delivery")]
    NotConfigured,
    /// `X-Gitlab-Event` is missing or not text.
    #[error("missing X-Gitlab-Event header: expected e.g. \"Push Hook\"")]
    MissingEvent,
    /// The body is not a JSON object.
    #[error("body: expected a JSON object, found {0}")]
    NotJson(String),
}

/// Checks the presented token against every configured secret in constant time (the loop does not stop
/// at the first match, so timing reveals neither which secret matched nor how much of one did).
pub fn verify_token(secrets: &[Secret], presented: Option<&[u8]>) -> Result<(), RejectReason> {
    if secrets.is_empty() {
        return Err(RejectReason::NotConfigured);
    }
    let presented = presented.filter(|p| !p.is_empty()).ok_or(RejectReason::MissingToken)?;
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        matched |= secret.expose().as_bytes().ct_eq(presented);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(RejectReason::WrongToken)
    }
}

/// The headers of a delivery that Tao keeps.
#[derive(Debug, Clone, Default)]
pub struct DeliveryHeaders {
    /// `X-Gitlab-Event`.
    pub event: Option<String>,
    /// `Idempotency-Key` (stable across resends).
    pub idempotency_key: Option<String>,
    /// `X-Gitlab-Event-UUID`.
    pub event_uuid: Option<String>,
    /// `X-Gitlab-Webhook-UUID`.
    pub webhook_uuid: Option<String>,
}

/// Builds the row to store from a verified delivery. `generated_id` is used when GitLab sent neither
/// delivery header (old GitLab versions): such deliveries cannot be deduplicated.
pub fn envelope(
    headers: &DeliveryHeaders,
    body: &[u8],
    received_at: i64,
    generated_id: impl FnOnce() -> String,
) -> Result<NewEvent, RejectReason> {
    envelope_of_kind(None, headers, body, received_at, generated_id)
}

/// Like [`envelope`], with the kind given instead of read from the payload (external status check
/// requests carry `object_kind: merge_request` but are not merge request events).
pub fn envelope_of_kind(
    kind: Option<&str>,
    headers: &DeliveryHeaders,
    body: &[u8],
    received_at: i64,
    generated_id: impl FnOnce() -> String,
) -> Result<NewEvent, RejectReason> {
    let event_header = headers.event.clone().filter(|e| !e.trim().is_empty()).ok_or(RejectReason::MissingEvent)?;
    let payload: Value = serde_json::from_slice(body).map_err(|e| RejectReason::NotJson(e.to_string()))?;
    if !payload.is_object() {
        return Err(RejectReason::NotJson(format!("a JSON {}", json_type(&payload))));
    }
    let delivery_id = [&headers.idempotency_key, &headers.event_uuid]
        .into_iter()
        .flatten()
        .find_map(|v| DeliveryId::parse(v))
        .unwrap_or_else(|| DeliveryId::parse(&generated_id()).expect("generated ids are valid"));
    let kind = kind.map(str::to_string).unwrap_or_else(|| kind_of(&event_header, &payload));
    let (project_id, project_path) = (project_id(&payload), project_path(&payload));
    Ok(NewEvent {
        delivery_id,
        webhook_id: headers.webhook_uuid.clone().filter(|w| !w.is_empty()),
        object_key: object_key(&kind, project_id, &payload),
        git_ref: git_ref(&kind, &payload),
        event_header,
        kind,
        project_id,
        project_path,
        received_at,
        // The body as GitLab sent it (verified to be JSON), not a re-serialization.
        payload: String::from_utf8_lossy(body).into_owned(),
    })
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str().filter(|s| !s.is_empty())
}

fn i64_at(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_i64()
}

/// The kinds GitLab's webhook documentation names (`object_kind`, or the header's snake case where a
/// payload has none), plus Tao's own status-check requests. A filter on any other kind is refused unless
/// events of that kind are stored (GitLab adds kinds; system hooks name many in `event_name`).
pub const DOCUMENTED_KINDS: &[&str] = &[
    "push",
    "tag_push",
    "issue",
    "note",
    "merge_request",
    "wiki_page",
    "pipeline",
    "build",
    "deployment",
    "feature_flag",
    "release",
    "milestone",
    "emoji",
    "access_token",
    "resource_access_token",
    "member",
    "project",
    "subgroup",
    "vulnerability",
    crate::gitlab::events::EXTERNAL_STATUS_CHECK,
];

/// The event kind: `object_kind`, else `event_name` (system and group hooks), else the header without
/// " Hook", in snake case (`"Member Hook"` → `member`).
pub fn kind_of(event_header: &str, payload: &Value) -> String {
    if let Some(kind) = str_at(payload, &["object_kind"]).or_else(|| str_at(payload, &["event_name"])) {
        return kind.to_string();
    }
    let base = event_header.trim().trim_end_matches(" Hook").trim();
    base.to_ascii_lowercase().split_whitespace().collect::<Vec<_>>().join("_")
}

fn project_id(p: &Value) -> Option<i64> {
    i64_at(p, &["project", "id"])
        .or_else(|| i64_at(p, &["project_id"]))
        .or_else(|| i64_at(p, &["object_attributes", "target_project_id"]))
}

fn project_path(p: &Value) -> Option<String> {
    if let Some(path) = str_at(p, &["project", "path_with_namespace"]).or_else(|| str_at(p, &["path_with_namespace"])) {
        return Some(path.to_string());
    }
    // Job hooks carry no project object; the repository's homepage is the project URL.
    let homepage = str_at(p, &["repository", "homepage"])?;
    let rest = homepage.split_once("://").map(|(_, r)| r).unwrap_or(homepage);
    let path = rest.split_once('/').map(|(_, path)| path.trim_end_matches('/'))?;
    (!path.is_empty()).then(|| path.to_string())
}

/// The ref an event is about: the pushed ref, the pipeline's or job's ref, a merge request's source
/// branch, a release's tag.
fn git_ref(kind: &str, p: &Value) -> Option<String> {
    let found = match kind {
        "merge_request" | super::events::EXTERNAL_STATUS_CHECK => str_at(p, &["object_attributes", "source_branch"]),
        "note" => str_at(p, &["merge_request", "source_branch"]),
        "release" => str_at(p, &["tag"]),
        _ => str_at(p, &["ref"]).or_else(|| str_at(p, &["object_attributes", "ref"])),
    };
    found.map(str::to_string)
}

/// Events with the same key are handled one at a time, in arrival order: one merge request (with its
/// notes), one pipeline (with its jobs), one project's pushes, one deployment, one release, one issue.
fn object_key(kind: &str, project: Option<i64>, p: &Value) -> String {
    let project = project.map(|id| id.to_string()).unwrap_or_else(|| "-".into());
    let id = |path: &[&str]| i64_at(p, path).map(|n| n.to_string());
    let specific = match kind {
        "merge_request" | super::events::EXTERNAL_STATUS_CHECK => {
            id(&["object_attributes", "iid"]).map(|iid| format!("merge_request:{project}:{iid}"))
        }
        "note" => match id(&["merge_request", "iid"]) {
            Some(iid) => Some(format!("merge_request:{project}:{iid}")),
            None => str_at(p, &["object_attributes", "noteable_type"]).map(|t| {
                format!("note:{project}:{t}:{}", id(&["object_attributes", "noteable_id"]).unwrap_or_default())
            }),
        },
        "pipeline" => id(&["object_attributes", "id"]).map(|pid| format!("pipeline:{project}:{pid}")),
        "build" => id(&["pipeline_id"]).map(|pid| format!("pipeline:{project}:{pid}")),
        "push" | "tag_push" => Some(format!("push:{project}")),
        "deployment" => id(&["deployment_id"]).map(|d| format!("deployment:{project}:{d}")),
        "release" => str_at(p, &["tag"]).map(|t| format!("release:{project}:{t}")),
        "issue" => id(&["object_attributes", "iid"]).map(|iid| format!("issue:{project}:{iid}")),
        _ => None,
    };
    specific.unwrap_or_else(|| format!("{kind}:{project}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_any_configured_secret() {
        let secrets = [Secret::new("old"), Secret::new("new")];
        assert_eq!(verify_token(&secrets, Some(b"new")), Ok(()));
        assert_eq!(verify_token(&secrets, Some(b"old")), Ok(()));
        assert_eq!(verify_token(&secrets, Some(b"ne")), Err(RejectReason::WrongToken));
        assert_eq!(verify_token(&secrets, Some(b"")), Err(RejectReason::MissingToken));
        assert_eq!(verify_token(&secrets, None), Err(RejectReason::MissingToken));
        assert_eq!(verify_token(&[], Some(b"new")), Err(RejectReason::NotConfigured));
    }

    #[test]
    fn kind_falls_back_to_event_name_then_header() {
        assert_eq!(kind_of("Push Hook", &serde_json::json!({"object_kind": "push"})), "push");
        assert_eq!(kind_of("System Hook", &serde_json::json!({"event_name": "push"})), "push");
        assert_eq!(kind_of("Emoji Hook", &serde_json::json!({})), "emoji");
        assert_eq!(kind_of("Resource Access Token Hook", &serde_json::json!({})), "resource_access_token");
    }

    #[test]
    fn delivery_id_prefers_idempotency_key() {
        let headers = DeliveryHeaders {
            event: Some("Push Hook".into()),
            idempotency_key: Some("key-1".into()),
            event_uuid: Some("uuid-1".into()),
            webhook_uuid: None,
        };
        let e = envelope(&headers, br#"{"object_kind":"push","project_id":3}"#, 1, || "gen".into()).unwrap();
        assert_eq!(e.delivery_id.as_str(), "key-1");
        assert_eq!(e.object_key, "push:3");
        let headers = DeliveryHeaders { idempotency_key: None, ..headers };
        assert_eq!(envelope(&headers, b"{}", 1, || "gen".into()).unwrap().delivery_id.as_str(), "uuid-1");
        let headers = DeliveryHeaders { event_uuid: None, ..headers };
        assert_eq!(envelope(&headers, b"{}", 1, || "gen".into()).unwrap().delivery_id.as_str(), "gen");
        assert!(matches!(envelope(&headers, b"[1]", 1, || "gen".into()), Err(RejectReason::NotJson(_))));
    }
}
