//! The double's users, jobs, projects (get, update settings), project hooks and members.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::world::{
    authenticate, guard, message, paginated, project_json, refuse, user_json, Hook, Refusal, MAINTAINER, REPORTER,
};
use super::{json_body, Shared};

pub(super) async fn current_user(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let w = world.lock().unwrap();
    match authenticate(&w, &headers) {
        Ok(u) => Json(user_json(&u)).into_response(),
        Err(refusal) => refuse(refusal),
    }
}

/// `GET /job`: only a `JOB-TOKEN` of a running job is accepted.
pub(super) async fn current_job(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let w = world.lock().unwrap();
    let Some(token) = headers.get("job-token").and_then(|v| v.to_str().ok()) else {
        return message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    };
    let Some(job) = w.jobs.iter().find(|j| j.token == token) else {
        return message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    };
    let user = w.user(job.user_id).map(user_json);
    // The job's commit and whether its ref is a tag come from its project, when the double has it.
    let project = w.projects.iter().find(|p| p.id == job.project_id);
    let sha = project.and_then(|p| p.resolve(&job.git_ref));
    let tag = project.is_some_and(|p| p.tags.iter().any(|t| t.name == job.git_ref));
    Json(json!({
        "id": job.id, "name": "deploy", "stage": "deploy", "status": "running", "ref": job.git_ref, "tag": tag,
        "user": user, "pipeline": { "id": job.id + 1000, "project_id": job.project_id, "ref": job.git_ref,
        "sha": sha.as_deref().unwrap_or("0ff3ae198f8601a285adcf5c0fff204ee6fba5fd"), "status": "running" },
    }))
    .into_response()
}

pub(super) async fn show_project(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Response {
    let w = world.lock().unwrap();
    match guard(&w, &headers, &project, REPORTER) {
        Ok((_, at)) => Json(project_json(&w.projects[at])).into_response(),
        Err(r) => refuse(r),
    }
}

const MERGE_SETTINGS: [&str; 4] = [
    "merge_method",
    "only_allow_merge_if_pipeline_succeeds",
    "only_allow_merge_if_all_discussions_are_resolved",
    "remove_source_branch_after_merge",
];

/// `PUT /projects/:id`: Maintainers; the merge settings Tao uses, validated like GitLab's. Other
/// attributes are refused loudly (the double would silently ignore them otherwise).
pub(super) async fn update_project(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let at = match guard(&w, &headers, &project, MAINTAINER) {
        Ok((_, at)) => at,
        Err(r) => return refuse(r),
    };
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return refuse(r),
    };
    let Some(fields) = body.as_object().filter(|f| !f.is_empty()) else {
        return message(StatusCode::BAD_REQUEST, "at least one parameter must be provided");
    };
    for (k, v) in fields {
        let ok = match k.as_str() {
            "merge_method" => matches!(v.as_str(), Some("merge" | "rebase_merge" | "ff")),
            k if MERGE_SETTINGS.contains(&k) => v.is_boolean(),
            other => {
                w.unexpected.push(format!("PUT /projects/{project} with attribute {other}"));
                false
            }
        };
        if !ok {
            return message(StatusCode::BAD_REQUEST, "merge_method does not have a valid value");
        }
    }
    let p = &mut w.projects[at];
    for (k, v) in fields {
        p.settings.insert(k.clone(), v.clone());
    }
    Json(project_json(p)).into_response()
}

/// `GET /members/all/:user_id`: the user's role in the project.
pub(super) async fn show_member(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, user)): Path<(String, i64)>,
) -> Response {
    let w = world.lock().unwrap();
    let at = match guard(&w, &headers, &project, REPORTER) {
        Ok((_, at)) => at,
        Err(r) => return refuse(r),
    };
    let level = w.projects[at].members.iter().find(|(id, _)| *id == user).map(|(_, l)| *l);
    match (level, w.user(user)) {
        (Some(level), Some(u)) => {
            let mut v = user_json(u);
            v["access_level"] = json!(level);
            v["created_at"] = json!("2024-01-01T00:00:00.000Z");
            v["expires_at"] = Value::Null;
            v["membership_state"] = json!("active");
            Json(v).into_response()
        }
        _ => message(StatusCode::NOT_FOUND, "404 Not found"),
    }
}

fn hook_json(project_id: i64, h: &Hook) -> Value {
    let mut v = json!({ "id": h.id, "url": h.url, "project_id": project_id, "enable_ssl_verification": false,
                        "created_at": "2024-01-01T00:00:00.000Z", "alert_status": "executable" });
    for (k, e) in &h.events {
        v[k] = e.clone();
    }
    v
}

pub(super) async fn list_hooks(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = world.lock().unwrap();
    let at = match guard(&w, &headers, &project, MAINTAINER) {
        Ok((_, at)) => at,
        Err(r) => return refuse(r),
    };
    let p = &w.projects[at];
    let all: Vec<Value> = p.hooks.iter().map(|h| hook_json(p.id, h)).collect();
    paginated(&format!("/api/v4/projects/{project}/hooks"), all, &q)
}

const HOOK_EVENTS: [&str; 9] = [
    "push_events",
    "tag_push_events",
    "merge_requests_events",
    "note_events",
    "pipeline_events",
    "job_events",
    "deployment_events",
    "releases_events",
    "issues_events",
];

/// Reads a hook body as GitLab does: `url` required, events default to push only.
fn hook_from_body(body: &Value, old: Option<&Hook>) -> Result<(String, String, Map<String, Value>), Refusal> {
    let Some(url) = body["url"].as_str().filter(|u| u.starts_with("http")) else {
        return Err((StatusCode::BAD_REQUEST, "url is missing"));
    };
    let token = body["token"].as_str().map(str::to_string).or_else(|| old.map(|h| h.token.clone())).unwrap_or_default();
    let mut events = Map::new();
    for name in HOOK_EVENTS {
        let default = old.map(|h| h.events[name].clone()).unwrap_or(Value::Bool(name == "push_events"));
        events.insert(name.into(), body.get(name).filter(|v| v.is_boolean()).cloned().unwrap_or(default));
    }
    Ok((url.to_string(), token, events))
}

pub(super) async fn create_hook(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut w = world.lock().unwrap();
    let at = match guard(&w, &headers, &project, MAINTAINER) {
        Ok((_, at)) => at,
        Err(r) => return refuse(r),
    };
    let id = w.next_id();
    let p = &mut w.projects[at];
    let (url, token, events) = match hook_from_body(&body, None) {
        Ok(parts) => parts,
        Err((status, text)) => return message(status, text),
    };
    let hook = Hook { id, url, token, events, uuid: format!("hook-uuid-{id}") };
    let out = hook_json(p.id, &hook);
    p.hooks.push(hook);
    (StatusCode::CREATED, Json(out)).into_response()
}

pub(super) async fn edit_hook(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, hook)): Path<(String, i64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut w = world.lock().unwrap();
    let at = match guard(&w, &headers, &project, MAINTAINER) {
        Ok((_, at)) => at,
        Err(r) => return refuse(r),
    };
    let p = &mut w.projects[at];
    let pid = p.id;
    let Some(h) = p.hooks.iter_mut().find(|h| h.id == hook) else {
        return message(StatusCode::NOT_FOUND, "404 Not found");
    };
    match hook_from_body(&body, Some(h)) {
        Ok((url, token, events)) => {
            (h.url, h.token, h.events) = (url, token, events);
            Json(hook_json(pid, h)).into_response()
        }
        Err((status, text)) => message(status, text),
    }
}
