//! The double's repository: branches, tags, compare, commit statuses, protected branches and tags.
//! Validation follows GitLab: 404 for unknown refs, 400 for a tag that exists, 409 for a protected
//! branch rule that exists, 422 for a protected tag rule that exists, 403 below the role required.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::world::{
    access_json, commit_by_sha, commit_json, guard, message, now, paginated, ref_matches, refuse, user_by_id, Project,
    ProtectedRef, Refusal, Status, Tag, World, DEVELOPER, MAINTAINER, REPORTER,
};
use super::{json_body, Shared};

type Q = Query<HashMap<String, String>>;

fn branch_json(p: &Project, name: &str, sha: &str) -> Value {
    let rule = p.protected_branches.iter().find(|r| ref_matches(&r.name, name));
    json!({
        "name": name, "merged": false, "protected": rule.is_some(), "default": name == "main",
        "developers_can_push": rule.is_none_or(|r| r.push <= DEVELOPER),
        "developers_can_merge": rule.is_none_or(|r| r.merge <= DEVELOPER), "can_push": true,
        "web_url": format!("https://gitlab.example.com/{}/-/tree/{name}", p.path), "commit": commit_by_sha(p, sha),
    })
}

pub(super) async fn list_branches(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Q,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, REPORTER);
    let p = &w.projects[at];
    let mut names: Vec<&(String, String)> = p.branches.iter().collect();
    names.sort();
    let all = names.into_iter().map(|(b, sha)| branch_json(p, b, sha)).collect();
    paginated(&format!("/api/v4/projects/{project}/repository/branches"), all, &q)
}

pub(super) async fn show_branch(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, name)): Path<(String, String)>,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, REPORTER);
    let p = &w.projects[at];
    match p.branch_head(&name) {
        Some(sha) => Json(branch_json(p, &name, sha)).into_response(),
        None => message(StatusCode::NOT_FOUND, "404 Branch Not Found"),
    }
}

fn tag_json(p: &Project, t: &Tag) -> Value {
    json!({
        "name": t.name, "message": t.message, "target": t.commit, "commit": commit_by_sha(p, &t.commit),
        "release": null, "protected": p.protected_tags.iter().any(|r| ref_matches(&r.name, &t.name)),
        "created_at": if t.message.is_some() { json!("2024-01-01T00:00:00.000Z") } else { Value::Null },
    })
}

pub(super) async fn list_tags(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Q,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, REPORTER);
    let p = &w.projects[at];
    let all = p.tags.iter().rev().map(|t| tag_json(p, t)).collect();
    paginated(&format!("/api/v4/projects/{project}/repository/tags"), all, &q)
}

pub(super) async fn show_tag(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, name)): Path<(String, String)>,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, REPORTER);
    let p = &w.projects[at];
    match p.tags.iter().find(|t| t.name == name) {
        Some(t) => Json(tag_json(p, t)).into_response(),
        None => message(StatusCode::NOT_FOUND, "404 Tag Not Found"),
    }
}

/// `POST /repository/tags`: Developers, unless a protected tag rule asks for more.
pub(super) async fn create_tag(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let (user, at) = guarded!(w, headers, project, DEVELOPER);
    let body = body!(body);
    let (Some(name), Some(git_ref)) = (body["tag_name"].as_str(), body["ref"].as_str()) else {
        return message(StatusCode::BAD_REQUEST, "tag_name is missing, ref is missing");
    };
    let level = level_of(&w, at, user.id, user.admin);
    let p = &mut w.projects[at];
    if let Some(rule) = p.protected_tags.iter().find(|r| ref_matches(&r.name, name)) {
        if level < rule.push {
            return message(StatusCode::FORBIDDEN, "403 Forbidden");
        }
    }
    if p.tags.iter().any(|t| t.name == name) {
        return (StatusCode::BAD_REQUEST, Json(json!({ "message": format!("Tag {name} already exists") })))
            .into_response();
    }
    let Some(commit) = p.resolve(git_ref) else {
        return (StatusCode::BAD_REQUEST, Json(json!({ "message": format!("Target {git_ref} is invalid") })))
            .into_response();
    };
    let tag = Tag { name: name.into(), commit, message: body["message"].as_str().map(str::to_string) };
    let out = tag_json(p, &tag);
    p.tags.push(tag);
    (StatusCode::CREATED, Json(out)).into_response()
}

fn level_of(w: &World, at: usize, user: i64, admin: bool) -> u32 {
    if admin {
        return 60;
    }
    w.projects[at].members.iter().find(|(id, _)| *id == user).map(|(_, l)| *l).unwrap_or(0)
}

/// `GET /repository/compare?from=&to=`: commits of `to` that `from` lacks, oldest first.
pub(super) async fn compare(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Q,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, REPORTER);
    let p = &w.projects[at];
    let (Some(from), Some(to)) = (q.get("from"), q.get("to")) else {
        return message(StatusCode::BAD_REQUEST, "from is missing, to is missing");
    };
    let (Some(from_sha), Some(to_sha)) = (p.resolve(from), p.resolve(to)) else {
        return message(StatusCode::NOT_FOUND, "404 Ref Not Found");
    };
    let base: Vec<&str> = p.history(&from_sha).iter().map(|c| c.id.as_str()).collect();
    let mut commits: Vec<Value> = p
        .history(&to_sha)
        .into_iter()
        .take_while(|c| !base.contains(&c.id.as_str()))
        .map(|c| commit_json(p, c))
        .collect();
    commits.reverse();
    let diffs: Vec<Value> = commits
        .iter()
        .map(|c| {
            let file = format!("{}.txt", &c["short_id"].as_str().unwrap_or_default());
            json!({ "old_path": file, "new_path": file, "a_mode": null, "b_mode": "100644", "diff": "+change\n",
                    "new_file": true, "renamed_file": false, "deleted_file": false })
        })
        .collect();
    Json(json!({
        "commit": commits.last().cloned().unwrap_or(Value::Null), "commits": commits, "diffs": diffs,
        "compare_timeout": false, "compare_same_ref": from_sha == to_sha,
        "web_url": format!("https://gitlab.example.com/{}/-/compare/{from_sha}...{to_sha}", p.path),
    }))
    .into_response()
}

fn status_json(w: &World, s: &Status) -> Value {
    json!({
        "id": s.id, "sha": s.sha, "ref": s.git_ref, "status": s.state, "name": s.name, "target_url": s.target_url,
        "description": s.description, "created_at": now(), "started_at": null, "finished_at": null,
        "allow_failure": false, "coverage": null, "pipeline_id": s.pipeline_id, "author": user_by_id(w, s.author_id),
    })
}

pub(super) async fn list_statuses(
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
    let all = p.statuses.iter().rev().filter(|s| s.sha == sha).map(|s| status_json(&w, s)).collect();
    paginated(&format!("/api/v4/projects/{project}/repository/commits/{sha}/statuses"), all, &q)
}

const STATES: [&str; 6] = ["pending", "running", "success", "failed", "canceled", "skipped"];

/// `POST /statuses/:sha` as GitLab's `CreateCommitStatusService`: the open (pending/running) status
/// of the same name, ref and pipeline is moved on; repeating its state is a 400; a finished one is
/// followed by a new status.
pub(super) async fn set_status(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, sha)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let (user, at) = guarded!(w, headers, project, DEVELOPER);
    let body = body!(body);
    let Some(state) = body["state"].as_str().filter(|s| STATES.contains(s)) else {
        return message(StatusCode::BAD_REQUEST, "state does not have a valid value");
    };
    let id = w.next_id();
    let p = &mut w.projects[at];
    if !p.commits.iter().any(|c| c.id == sha) {
        return message(StatusCode::NOT_FOUND, "404 Commit Not Found");
    }
    let name = body["name"].as_str().or(body["context"].as_str()).unwrap_or("default").to_string();
    let Some(git_ref) = body["ref"].as_str().map(str::to_string).or_else(|| {
        p.branches.iter().find(|(_, head)| p.history(head).iter().any(|c| c.id == sha)).map(|(b, _)| b.clone())
    }) else {
        return message(StatusCode::NOT_FOUND, "404 References for commit Not Found");
    };
    let pipeline_id = body["pipeline_id"].as_i64();
    if let Some(pl) = pipeline_id {
        if !p.pipelines.iter().any(|x| x.id == pl && x.sha == sha) {
            return message(StatusCode::NOT_FOUND, "404 Pipeline Not Found");
        }
    }
    // GitLab keeps one open (pending/running) status per name, ref and pipeline of a commit.
    let open = p.statuses.iter_mut().find(|s| {
        s.sha == sha
            && s.name == name
            && s.git_ref == git_ref
            && s.pipeline_id == pipeline_id
            && matches!(s.state.as_str(), "pending" | "running")
    });
    let text = |k: &str| body[k].as_str().map(str::to_string);
    let status = match open {
        Some(s) if s.state == state => {
            let event = if state == "pending" { "enqueue" } else { "run" };
            let text = format!(
                "Cannot transition status via :{event} from :{state} (Reason(s): Status cannot transition via \"{event}\")"
            );
            return (StatusCode::BAD_REQUEST, Json(json!({ "message": text }))).into_response();
        }
        Some(s) => {
            s.state = state.into();
            s.target_url = text("target_url").or(s.target_url.take());
            s.description = text("description").or(s.description.take());
            s.clone()
        }
        None => {
            let s = Status {
                id,
                sha: sha.clone(),
                git_ref,
                name,
                state: state.into(),
                target_url: text("target_url"),
                description: text("description"),
                pipeline_id,
                author_id: user.id,
            };
            p.statuses.push(s.clone());
            s
        }
    };
    (StatusCode::CREATED, Json(status_json(&w, &status))).into_response()
}

fn protected_branch_json(r: &ProtectedRef) -> Value {
    json!({
        "id": r.id, "name": r.name, "push_access_levels": access_json(r.id * 10 + 1, r.push),
        "merge_access_levels": access_json(r.id * 10 + 2, r.merge), "unprotect_access_levels": [],
        "allow_force_push": r.allow_force_push, "code_owner_approval_required": false,
    })
}

fn protected_tag_json(r: &ProtectedRef) -> Value {
    json!({ "name": r.name, "create_access_levels": access_json(r.id * 10 + 1, r.push) })
}

fn level_param(body: &Value, key: &str) -> Result<u32, Refusal> {
    match &body[key] {
        Value::Null => Ok(MAINTAINER),
        v => v
            .as_u64()
            .filter(|l| [0, 30, 40, 60].contains(l))
            .map(|l| l as u32)
            .ok_or((StatusCode::BAD_REQUEST, "access level does not have a valid value")),
    }
}

pub(super) async fn list_protected_branches(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Q,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, MAINTAINER);
    let all = w.projects[at].protected_branches.iter().map(protected_branch_json).collect();
    paginated(&format!("/api/v4/projects/{project}/protected_branches"), all, &q)
}

pub(super) async fn show_protected_branch(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, name)): Path<(String, String)>,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, MAINTAINER);
    match w.projects[at].protected_branches.iter().find(|r| r.name == name) {
        Some(r) => Json(protected_branch_json(r)).into_response(),
        None => message(StatusCode::NOT_FOUND, "404 Not found"),
    }
}

pub(super) async fn protect_branch(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, MAINTAINER);
    let body = body!(body);
    let Some(name) = body["name"].as_str() else {
        return message(StatusCode::BAD_REQUEST, "name is missing");
    };
    let (push, merge) = match (level_param(&body, "push_access_level"), level_param(&body, "merge_access_level")) {
        (Ok(p), Ok(m)) => (p, m),
        (Err(r), _) | (_, Err(r)) => return refuse(r),
    };
    let id = w.next_id();
    let p = &mut w.projects[at];
    if p.protected_branches.iter().any(|r| r.name == name) {
        return (StatusCode::CONFLICT, Json(json!({ "message": format!("Protected branch '{name}' already exists") })))
            .into_response();
    }
    let allow_force_push = body["allow_force_push"].as_bool().unwrap_or(false);
    let rule = ProtectedRef { id, name: name.into(), push, merge, allow_force_push };
    let out = protected_branch_json(&rule);
    p.protected_branches.push(rule);
    (StatusCode::CREATED, Json(out)).into_response()
}

pub(super) async fn unprotect_branch(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, name)): Path<(String, String)>,
) -> Response {
    let mut w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, MAINTAINER);
    let rules = &mut w.projects[at].protected_branches;
    let before = rules.len();
    rules.retain(|r| r.name != name);
    if rules.len() == before {
        return message(StatusCode::NOT_FOUND, "404 Not found");
    }
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn list_protected_tags(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Q,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, MAINTAINER);
    let all = w.projects[at].protected_tags.iter().map(protected_tag_json).collect();
    paginated(&format!("/api/v4/projects/{project}/protected_tags"), all, &q)
}

pub(super) async fn show_protected_tag(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, name)): Path<(String, String)>,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, MAINTAINER);
    match w.projects[at].protected_tags.iter().find(|r| r.name == name) {
        Some(r) => Json(protected_tag_json(r)).into_response(),
        None => message(StatusCode::NOT_FOUND, "404 Not found"),
    }
}

pub(super) async fn protect_tag(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, MAINTAINER);
    let body = body!(body);
    let Some(name) = body["name"].as_str() else {
        return message(StatusCode::BAD_REQUEST, "name is missing");
    };
    let create = match level_param(&body, "create_access_level") {
        Ok(l) => l,
        Err(r) => return refuse(r),
    };
    let id = w.next_id();
    let p = &mut w.projects[at];
    if p.protected_tags.iter().any(|r| r.name == name) {
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "message": ["Name has already been taken"] })))
            .into_response();
    }
    let rule = ProtectedRef { id, name: name.into(), push: create, merge: 0, allow_force_push: false };
    let out = protected_tag_json(&rule);
    p.protected_tags.push(rule);
    (StatusCode::CREATED, Json(out)).into_response()
}

pub(super) async fn unprotect_tag(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, name)): Path<(String, String)>,
) -> Response {
    let mut w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, MAINTAINER);
    let rules = &mut w.projects[at].protected_tags;
    let before = rules.len();
    rules.retain(|r| r.name != name);
    if rules.len() == before {
        return message(StatusCode::NOT_FOUND, "404 Not found");
    }
    StatusCode::NO_CONTENT.into_response()
}
