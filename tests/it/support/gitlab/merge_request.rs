//! The double's merge requests, notes, external status check answers, deployments and pipelines, and
//! the `Merge Request Hook` / `Note Hook` payloads it sends (the fixtures, with the world's values).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::world::{
    guard, message, now, paginated, pipeline_json, project_json, refuse, user_by_id, Deployment, MergeRequest, Note,
    Pipeline, Project, StatusCheckAnswer, World, DEVELOPER, REPORTER,
};
use super::{json_body, webhook_fixture, Shared};

type Q = Query<HashMap<String, String>>;

fn mr_not_found() -> Response {
    message(StatusCode::NOT_FOUND, "404 Merge Request Not Found")
}

/// A merge request (gitlab4j-merge-request.json's fields).
fn mr_json(w: &World, p: &Project, mr: &MergeRequest) -> Value {
    let head = p.mr_head(mr);
    let base = p.branch_head(&mr.target_branch).unwrap_or_default();
    let pipeline = mr.head_pipeline.and_then(|id| p.pipelines.iter().find(|x| x.id == id));
    let v = json!({
        "id": mr.id, "iid": mr.iid, "project_id": p.id, "title": mr.title, "description": "", "state": mr.state,
        "created_at": "2024-01-01T00:00:00.000Z", "updated_at": now(), "merged_by": null, "merge_user": null,
        "merged_at": null, "closed_by": null, "closed_at": null, "target_branch": mr.target_branch,
        "source_branch": mr.source_branch, "user_notes_count": p.notes.iter().filter(|n| n.mr_iid == mr.iid).count(),
        "upvotes": 0, "downvotes": 0, "author": user_by_id(w, mr.author_id), "assignees": [], "assignee": null,
        "reviewers": [], "source_project_id": p.id, "target_project_id": p.id, "labels": [], "draft": false,
        "work_in_progress": false, "milestone": null, "merge_when_pipeline_succeeds": false,
        "merge_status": "can_be_merged", "detailed_merge_status": "mergeable", "sha": head,
        "merge_commit_sha": mr.merge_commit_sha, "squash_commit_sha": null, "discussion_locked": null,
    });
    let short = format!("!{}", mr.iid);
    let more = json!({
        "should_remove_source_branch": null, "force_remove_source_branch": true, "squash": false,
        "reference": short, "references": { "short": short, "relative": short, "full": format!("{}{short}", p.path) },
        "web_url": format!("https://gitlab.example.com/{}/-/merge_requests/{}", p.path, mr.iid),
        "time_stats": { "time_estimate": 0, "total_time_spent": 0, "human_time_estimate": null,
                        "human_total_time_spent": null },
        "task_completion_status": { "count": 0, "completed_count": 0 }, "has_conflicts": false,
        "blocking_discussions_resolved": true,
        "head_pipeline": pipeline.map(|pl| pipeline_json(w, p, pl, mr.author_id)),
        "diff_refs": { "base_sha": base, "head_sha": head, "start_sha": base },
    });
    let mut v = v;
    for (k, x) in more.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

pub(super) async fn list_mrs(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Q,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, REPORTER);
    let p = &w.projects[at];
    let state = q.get("state").map(String::as_str).unwrap_or("all");
    if !["opened", "closed", "locked", "merged", "all"].contains(&state) {
        return message(StatusCode::BAD_REQUEST, "state does not have a valid value");
    }
    let all = p
        .merge_requests
        .iter()
        .rev()
        .filter(|m| state == "all" || m.state == state)
        .map(|m| mr_json(&w, p, m))
        .collect();
    paginated(&format!("/api/v4/projects/{project}/merge_requests"), all, &q)
}

pub(super) async fn show_mr(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, iid)): Path<(String, i64)>,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, REPORTER);
    let p = &w.projects[at];
    match p.merge_requests.iter().find(|m| m.iid == iid) {
        Some(mr) => Json(mr_json(&w, p, mr)).into_response(),
        None => mr_not_found(),
    }
}

/// `GET /repository/commits/:sha/merge_requests`: the MRs whose source history holds `sha`, or whose
/// merge result it is.
pub(super) async fn commit_mrs(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, sha)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, REPORTER);
    let p = &w.projects[at];
    if !p.commits.iter().any(|c| c.id == sha) {
        return message(StatusCode::NOT_FOUND, "404 Commit Not Found");
    }
    let all = p
        .merge_requests
        .iter()
        .rev()
        .filter(|m| {
            m.merge_commit_sha.as_deref() == Some(sha.as_str())
                || m.head_sha.as_deref() == Some(sha.as_str())
                || p.history(&p.mr_head(m)).iter().any(|c| c.id == sha)
        })
        .map(|m| mr_json(&w, p, m))
        .collect();
    paginated(&format!("/api/v4/projects/{project}/repository/commits/{sha}/merge_requests"), all, &q)
}

/// A note (gitlab4j-merge-request-note.json's fields).
fn note_json(w: &World, p: &Project, mr: &MergeRequest, n: &Note) -> Value {
    json!({
        "id": n.id, "type": null, "body": n.body, "attachment": null, "author": user_by_id(w, n.author_id),
        "created_at": "2024-01-01T00:00:00.000Z", "updated_at": now(), "system": n.system,
        "noteable_id": mr.id, "noteable_type": "MergeRequest", "project_id": p.id, "resolvable": false,
        "confidential": false, "internal": false, "noteable_iid": mr.iid, "commands_changes": {},
    })
}

pub(super) async fn list_notes(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, iid)): Path<(String, i64)>,
    Query(q): Q,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, REPORTER);
    let p = &w.projects[at];
    let Some(mr) = p.merge_requests.iter().find(|m| m.iid == iid) else {
        return mr_not_found();
    };
    // GitLab's default order: created_at descending.
    let all = p.notes.iter().rev().filter(|n| n.mr_iid == iid).map(|n| note_json(&w, p, mr, n)).collect();
    paginated(&format!("/api/v4/projects/{project}/merge_requests/{iid}/notes"), all, &q)
}

pub(super) async fn create_note(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, iid)): Path<(String, i64)>,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let (user, at) = guarded!(w, headers, project, REPORTER);
    add_note(&mut w, at, iid, user.id, &body!(body), None)
}

/// Adds a note from a request body: in thread `discussion` (which must exist), or starting its own.
fn add_note(w: &mut World, at: usize, iid: i64, author_id: i64, body: &Value, discussion: Option<String>) -> Response {
    let Some(text) = body["body"].as_str().filter(|b| !b.trim().is_empty()) else {
        return message(StatusCode::BAD_REQUEST, "400 Bad request - body is missing");
    };
    let id = w.next_id();
    let p = &mut w.projects[at];
    let Some(mr) = p.merge_requests.iter().find(|m| m.iid == iid).cloned() else {
        return mr_not_found();
    };
    if discussion.as_ref().is_some_and(|d| !p.notes.iter().any(|n| n.mr_iid == iid && n.discussion_id == *d)) {
        return message(StatusCode::NOT_FOUND, "404 Discussion Not Found");
    }
    let discussion_id = discussion.unwrap_or_else(|| super::world::discussion_id(id));
    let note = Note { id, mr_iid: iid, body: text.into(), author_id, system: false, edits: 0, discussion_id };
    p.notes.push(note.clone());
    let p = &w.projects[at];
    (StatusCode::CREATED, Json(note_json(w, p, &mr, &note))).into_response()
}

/// `GET /discussions`: the MR's threads, oldest first, each with its notes (gitlab docs' discussion shape).
pub(super) async fn list_discussions(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, iid)): Path<(String, i64)>,
    Query(q): Q,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, REPORTER);
    let p = &w.projects[at];
    let Some(mr) = p.merge_requests.iter().find(|m| m.iid == iid) else {
        return mr_not_found();
    };
    let mut order: Vec<&str> = Vec::new();
    for n in p.notes.iter().filter(|n| n.mr_iid == iid) {
        if !order.contains(&n.discussion_id.as_str()) {
            order.push(&n.discussion_id);
        }
    }
    let all = order
        .iter()
        .map(|d| {
            let notes: Vec<Value> =
                p.notes.iter().filter(|n| n.discussion_id == *d).map(|n| note_json(&w, p, mr, n)).collect();
            json!({ "id": d, "individual_note": notes.len() == 1, "notes": notes })
        })
        .collect();
    paginated(&format!("/api/v4/projects/{project}/merge_requests/{iid}/discussions"), all, &q)
}

/// `POST /discussions/:id/notes`: a reply in an existing thread.
pub(super) async fn reply_to_discussion(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, iid, discussion)): Path<(String, i64, String)>,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let (user, at) = guarded!(w, headers, project, REPORTER);
    add_note(&mut w, at, iid, user.id, &body!(body), Some(discussion))
}

/// `PUT /notes/:id`: only the author (or an admin) may edit a note.
pub(super) async fn update_note(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, iid, note_id)): Path<(String, i64, i64)>,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let (user, at) = guarded!(w, headers, project, REPORTER);
    let body = body!(body);
    let Some(text) = body["body"].as_str().filter(|b| !b.trim().is_empty()) else {
        return message(StatusCode::BAD_REQUEST, "400 Bad request - body is missing");
    };
    let p = &mut w.projects[at];
    let Some(mr) = p.merge_requests.iter().find(|m| m.iid == iid).cloned() else {
        return mr_not_found();
    };
    let Some(note) = p.notes.iter_mut().find(|n| n.id == note_id && n.mr_iid == iid) else {
        return message(StatusCode::NOT_FOUND, "404 Note Not Found");
    };
    if note.author_id != user.id && !user.admin {
        return message(StatusCode::FORBIDDEN, "403 Forbidden");
    }
    note.body = text.into();
    note.edits += 1;
    let note = note.clone();
    let p = &w.projects[at];
    Json(note_json(&w, p, &mr, &note)).into_response()
}

/// `POST /status_check_responses`: the SHA must be the MR's head (409 otherwise), the check must exist.
pub(super) async fn answer_status_check(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, iid)): Path<(String, i64)>,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, DEVELOPER);
    let body = body!(body);
    let (Some(sha), Some(check_id), Some(status)) =
        (body["sha"].as_str(), body["external_status_check_id"].as_i64(), body["status"].as_str())
    else {
        return message(StatusCode::BAD_REQUEST, "sha is missing, external_status_check_id is missing");
    };
    if !["passed", "failed", "pending"].contains(&status) {
        return message(StatusCode::BAD_REQUEST, "status does not have a valid value");
    }
    let id = w.next_id();
    let p = &mut w.projects[at];
    let Some(mr) = p.merge_requests.iter().find(|m| m.iid == iid).cloned() else {
        return mr_not_found();
    };
    let Some((_, check_name)) = p.status_checks.iter().find(|(c, _)| *c == check_id).cloned() else {
        return message(StatusCode::NOT_FOUND, "404 External status check Not Found");
    };
    if p.mr_head(&mr) != sha {
        return message(StatusCode::CONFLICT, "409 Conflict");
    }
    p.status_check_answers.retain(|a| !(a.mr_iid == iid && a.sha == sha && a.check_id == check_id));
    p.status_check_answers.push(StatusCheckAnswer {
        id,
        mr_iid: iid,
        sha: sha.into(),
        check_id,
        status: status.into(),
    });
    let p = &w.projects[at];
    let out = json!({
        "id": id,
        "merge_request": { "id": mr.id, "iid": mr.iid, "project_id": p.id, "title": mr.title, "state": mr.state },
        "external_status_check": { "id": check_id, "name": check_name, "project_id": p.id,
                                   "external_url": "https://tao.example/api/v1/gitlab/status-check",
                                   "hmac": true, "protected_branches": [] },
    });
    (StatusCode::CREATED, Json(out)).into_response()
}

const DEPLOYMENT_STATUSES: [&str; 5] = ["running", "success", "failed", "canceled", "blocked"];

/// A deployment (gitlab4j-deployment.json's fields).
fn deployment_json(w: &World, d: &Deployment) -> Value {
    let env_id = d.environment.bytes().fold(7i64, |h, b| h * 31 + b as i64) & 0xffff;
    json!({
        "id": d.id, "iid": d.iid, "ref": d.git_ref, "sha": d.sha, "created_at": now(), "updated_at": now(),
        "status": d.status, "user": user_by_id(w, d.user_id), "deployable": null,
        "environment": { "id": env_id, "name": d.environment, "external_url": null },
    })
}

pub(super) async fn create_deployment(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let (user, at) = guarded!(w, headers, project, DEVELOPER);
    let body = body!(body);
    let (Some(environment), Some(sha), Some(git_ref), Some(tag), Some(status)) = (
        body["environment"].as_str(),
        body["sha"].as_str(),
        body["ref"].as_str(),
        body["tag"].as_bool(),
        body["status"].as_str(),
    ) else {
        return message(StatusCode::BAD_REQUEST, "environment, sha, ref, tag and status are required");
    };
    if !DEPLOYMENT_STATUSES.contains(&status) {
        return message(StatusCode::BAD_REQUEST, "status does not have a valid value");
    }
    let id = w.next_id();
    let p = &mut w.projects[at];
    if !p.commits.iter().any(|c| c.id == sha) {
        return message(StatusCode::BAD_REQUEST, "The deployment could not be created: sha is unknown");
    }
    let iid = p.deployments.len() as i64 + 1;
    let d = Deployment {
        id,
        iid,
        environment: environment.into(),
        sha: sha.into(),
        git_ref: git_ref.into(),
        tag,
        status: status.into(),
        user_id: user.id,
    };
    p.deployments.push(d.clone());
    (StatusCode::CREATED, Json(deployment_json(&w, &d))).into_response()
}

pub(super) async fn update_deployment(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, i64)>,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, DEVELOPER);
    let body = body!(body);
    let Some(status) = body["status"].as_str().filter(|s| DEPLOYMENT_STATUSES.contains(s)) else {
        return message(StatusCode::BAD_REQUEST, "status does not have a valid value");
    };
    let Some(d) = w.projects[at].deployments.iter_mut().find(|d| d.id == id) else {
        return message(StatusCode::NOT_FOUND, "404 Not found");
    };
    d.status = status.into();
    let d = d.clone();
    Json(deployment_json(&w, &d)).into_response()
}

pub(super) async fn show_pipeline(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, i64)>,
) -> Response {
    let w = world.lock().unwrap();
    let (user, at) = guarded!(w, headers, project, REPORTER);
    let p = &w.projects[at];
    match p.pipelines.iter().find(|x| x.id == id) {
        Some(pl) => Json(pipeline_json(&w, p, pl, user.id)).into_response(),
        None => message(StatusCode::NOT_FOUND, "404 Not found"),
    }
}

/// `POST /trigger/pipeline`: authenticated by the `token` parameter alone (a trigger token of the
/// project, or a running job's token); an unknown token is a 404, as GitLab answers.
pub(super) async fn trigger_pipeline(
    State(world): State<Shared>,
    Path(project): Path<String>,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let body = body!(body);
    let (Some(token), Some(git_ref)) = (body["token"].as_str(), body["ref"].as_str()) else {
        return message(StatusCode::BAD_REQUEST, "token is missing, ref is missing");
    };
    let Some(at) = w.project_index(&project) else {
        return message(StatusCode::NOT_FOUND, "404 Project Not Found");
    };
    let job_user = w.jobs.iter().find(|j| j.token == token).map(|j| j.user_id);
    if !w.projects[at].trigger_tokens.iter().any(|t| t == token) && job_user.is_none() {
        return message(StatusCode::NOT_FOUND, "404 Not Found");
    }
    let user_id = job_user.unwrap_or(w.users[0].id);
    let id = w.next_id();
    let p = &mut w.projects[at];
    let Some(sha) = p.resolve(git_ref) else {
        return message(StatusCode::BAD_REQUEST, "Reference not found");
    };
    let variables = body["variables"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    let iid = p.pipelines.len() as i64 + 1;
    let source = if job_user.is_some() { "pipeline" } else { "trigger" };
    let pl =
        Pipeline { id, iid, git_ref: git_ref.into(), sha, status: "created".into(), source: source.into(), variables };
    p.pipelines.push(pl.clone());
    let p = &w.projects[at];
    (StatusCode::CREATED, Json(pipeline_json(&w, p, &pl, user_id))).into_response()
}

/// The `Merge Request Hook` GitLab sends for `mr` (merge_request.json with the world's values).
pub fn mr_hook(w: &World, p: &Project, mr: &MergeRequest, action: &str) -> Value {
    let mut v: Value = serde_json::from_slice(&webhook_fixture("merge_request.json")).unwrap();
    let head = p.mr_head(mr);
    v["user"] = user_by_id(w, mr.author_id);
    v["project"] = hook_project(p);
    let oa = &mut v["object_attributes"];
    for (k, val) in [
        ("id", json!(mr.id)),
        ("iid", json!(mr.iid)),
        ("title", json!(mr.title)),
        ("source_branch", json!(mr.source_branch)),
        ("target_branch", json!(mr.target_branch)),
        ("source_project_id", json!(p.id)),
        ("target_project_id", json!(p.id)),
        ("author_id", json!(mr.author_id)),
        ("state", json!(mr.state)),
        ("action", json!(action)),
        ("url", json!(format!("https://gitlab.example.com/{}/-/merge_requests/{}", p.path, mr.iid))),
    ] {
        oa[k] = val;
    }
    oa["last_commit"]["id"] = json!(head);
    v
}

/// The `Note Hook` GitLab sends for a note on `mr` (note_merge_request.json with the world's values).
pub fn note_hook(w: &World, p: &Project, mr: &MergeRequest, n: &Note) -> Value {
    let mut v: Value = serde_json::from_slice(&webhook_fixture("note_merge_request.json")).unwrap();
    v["user"] = user_by_id(w, n.author_id);
    v["project_id"] = json!(p.id);
    v["project"] = hook_project(p);
    let oa = &mut v["object_attributes"];
    for (k, val) in [
        ("id", json!(n.id)),
        ("note", json!(n.body)),
        ("noteable_type", json!("MergeRequest")),
        ("author_id", json!(n.author_id)),
        ("project_id", json!(p.id)),
        ("noteable_id", json!(mr.id)),
        ("system", json!(n.system)),
        ("url", json!(format!("https://gitlab.example.com/{}/-/merge_requests/{}#note_{}", p.path, mr.iid, n.id))),
    ] {
        oa[k] = val;
    }
    let m = &mut v["merge_request"];
    for (k, val) in [
        ("id", json!(mr.id)),
        ("iid", json!(mr.iid)),
        ("title", json!(mr.title)),
        ("source_branch", json!(mr.source_branch)),
        ("target_branch", json!(mr.target_branch)),
        ("source_project_id", json!(p.id)),
        ("target_project_id", json!(p.id)),
        ("author_id", json!(mr.author_id)),
        ("state", json!(mr.state)),
    ] {
        m[k] = val;
    }
    m["last_commit"]["id"] = json!(p.mr_head(mr));
    v
}

pub(super) fn hook_project(p: &Project) -> Value {
    let full = project_json(p);
    json!({
        "id": p.id, "name": full["name"], "path_with_namespace": p.path, "namespace": full["namespace"]["full_path"],
        "web_url": full["web_url"], "default_branch": "main", "visibility_level": 0,
        "git_http_url": format!("https://gitlab.example.com/{}.git", p.path),
        "git_ssh_url": format!("git@gitlab.example.com:{}.git", p.path),
    })
}
