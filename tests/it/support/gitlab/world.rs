//! The double's world model (users, projects and everything in them, CI jobs, a clock), GitLab's rules for who
//! may see and change it, and its JSON renderings, shaped like `tests/fixtures/gitlab/api/`.
//!
//! Handlers (`project`, `repo`, `merge_request`) read and change it under one lock; nothing here
//! speaks HTTP beyond building a refusal.

use std::collections::{HashMap, VecDeque};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// A user and the token that authenticates as them.
#[derive(Debug, Clone)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Login.
    pub username: String,
    /// Personal access token.
    pub token: String,
    /// Instance administrator (sees and may change everything).
    pub admin: bool,
}

/// An OAuth application registered in GitLab.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    /// Application ID.
    pub client_id: String,
    /// Secret.
    pub secret: String,
    /// The one redirect URI it may use.
    pub redirect_uri: String,
}

/// An authorization code GitLab issued.
#[derive(Debug, Clone)]
pub struct OAuthCode {
    /// The code.
    pub code: String,
    /// For this application.
    pub client_id: String,
    /// With this redirect URI.
    pub redirect_uri: String,
    /// The PKCE challenge (S256).
    pub challenge: String,
    /// Who authorized.
    pub user_id: i64,
    /// Exchanged already.
    pub used: bool,
}

/// A project hook, with the secret GitLab keeps (and never shows).
#[derive(Debug, Clone)]
pub struct Hook {
    /// Id.
    pub id: i64,
    /// Target URL.
    pub url: String,
    /// Secret sent as `X-Gitlab-Token`.
    pub token: String,
    /// `push_events`, `merge_requests_events`, … as GitLab names them.
    pub events: Map<String, Value>,
    /// `X-Gitlab-Webhook-UUID`.
    pub uuid: String,
}

/// A commit of the (linear, per project) history.
#[derive(Debug, Clone)]
pub struct Commit {
    /// SHA (40 hex).
    pub id: String,
    /// Parent SHA.
    pub parent: Option<String>,
    /// Message.
    pub title: String,
    /// Commit time (ISO 8601), as `committed_date`, `authored_date` and `created_at` report it.
    pub at: String,
}

/// A tag.
#[derive(Debug, Clone)]
pub struct Tag {
    /// Name.
    pub name: String,
    /// Tagged commit.
    pub commit: String,
    /// Annotation.
    pub message: Option<String>,
}

/// A protected branch or tag rule (tags use `push` as their create level).
#[derive(Debug, Clone)]
pub struct ProtectedRef {
    /// Id.
    pub id: i64,
    /// Name or wildcard.
    pub name: String,
    /// Push (branches) or create (tags) level.
    pub push: u32,
    /// Merge level (branches).
    pub merge: u32,
    /// Force push allowed (branches).
    pub allow_force_push: bool,
}

/// A merge request; its head SHA is its source branch's head.
#[derive(Debug, Clone)]
pub struct MergeRequest {
    /// Global id.
    pub id: i64,
    /// Per-project number.
    pub iid: i64,
    /// Title.
    pub title: String,
    /// Source branch.
    pub source_branch: String,
    /// Target branch.
    pub target_branch: String,
    /// `opened`, `closed`, `merged`.
    pub state: String,
    /// Author.
    pub author_id: i64,
    /// Head pipeline id.
    pub head_pipeline: Option<i64>,
    /// The merge result on the target (set when merged).
    pub merge_commit_sha: Option<String>,
    /// The source head when merged (the source branch may be gone since).
    pub head_sha: Option<String>,
}

/// A note on a merge request.
#[derive(Debug, Clone)]
pub struct Note {
    /// Id.
    pub id: i64,
    /// The MR's iid.
    pub mr_iid: i64,
    /// Body.
    pub body: String,
    /// Author.
    pub author_id: i64,
    /// Written by GitLab itself.
    pub system: bool,
    /// Edits so far.
    pub edits: u32,
    /// The discussion (thread) it belongs to; a new note starts its own.
    pub discussion_id: String,
}

/// A fresh discussion id (40 hex characters, as GitLab's).
pub fn discussion_id(note_id: i64) -> String {
    format!("{:040x}", (note_id as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

/// A commit status.
#[derive(Debug, Clone)]
pub struct Status {
    /// Id.
    pub id: i64,
    /// Commit.
    pub sha: String,
    /// Ref.
    pub git_ref: String,
    /// Name.
    pub name: String,
    /// State.
    pub state: String,
    /// Link.
    pub target_url: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Pipeline.
    pub pipeline_id: Option<i64>,
    /// Who set it.
    pub author_id: i64,
}

/// An answer to an external status check.
#[derive(Debug, Clone)]
pub struct StatusCheckAnswer {
    /// Id.
    pub id: i64,
    /// MR iid.
    pub mr_iid: i64,
    /// SHA answered for.
    pub sha: String,
    /// Check id.
    pub check_id: i64,
    /// `passed`, `failed`, `pending`.
    pub status: String,
}

/// A deployment.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Id.
    pub id: i64,
    /// Per-project number.
    pub iid: i64,
    /// Environment name.
    pub environment: String,
    /// Commit.
    pub sha: String,
    /// Ref.
    pub git_ref: String,
    /// Whether the ref is a tag.
    pub tag: bool,
    /// Status.
    pub status: String,
    /// Who created it.
    pub user_id: i64,
}

/// A pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Id.
    pub id: i64,
    /// Per-project number.
    pub iid: i64,
    /// Ref.
    pub git_ref: String,
    /// Commit.
    pub sha: String,
    /// Status.
    pub status: String,
    /// `push`, `trigger`, `pipeline`, …
    pub source: String,
    /// CI variables it was started with.
    pub variables: Vec<(String, String)>,
}

/// A project and everything in it.
#[derive(Debug, Clone, Default)]
pub struct Project {
    /// Id.
    pub id: i64,
    /// `group/project`.
    pub path: String,
    /// Merge settings by GitLab's field name (`merge_method`, …).
    pub settings: Map<String, Value>,
    /// Hooks.
    pub hooks: Vec<Hook>,
    /// Commits, oldest first.
    pub commits: Vec<Commit>,
    /// Branch name → head SHA.
    pub branches: Vec<(String, String)>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Protected branch rules.
    pub protected_branches: Vec<ProtectedRef>,
    /// Protected tag rules.
    pub protected_tags: Vec<ProtectedRef>,
    /// Merge requests.
    pub merge_requests: Vec<MergeRequest>,
    /// Notes of merge requests.
    pub notes: Vec<Note>,
    /// Commit statuses.
    pub statuses: Vec<Status>,
    /// User id → access level (30 developer, 40 maintainer, …).
    pub members: Vec<(i64, u32)>,
    /// External status checks configured (id, name).
    pub status_checks: Vec<(i64, String)>,
    /// Answers to them.
    pub status_check_answers: Vec<StatusCheckAnswer>,
    /// Deployments.
    pub deployments: Vec<Deployment>,
    /// Pipelines.
    pub pipelines: Vec<Pipeline>,
    /// Pipeline trigger tokens.
    pub trigger_tokens: Vec<String>,
    /// Files uploaded for Markdown.
    pub uploads: Vec<super::upload::Upload>,
    /// Issues.
    pub issues: Vec<super::issue::Issue>,
    /// Milestones.
    pub milestones: Vec<super::issue::Milestone>,
}

impl Project {
    /// The head SHA of a branch.
    pub fn branch_head(&self, name: &str) -> Option<&str> {
        self.branches.iter().find(|(b, _)| b == name).map(|(_, sha)| sha.as_str())
    }

    /// A branch, tag or (full) SHA, resolved to a commit SHA.
    pub fn resolve(&self, git_ref: &str) -> Option<String> {
        self.branch_head(git_ref)
            .map(str::to_string)
            .or_else(|| self.tags.iter().find(|t| t.name == git_ref).map(|t| t.commit.clone()))
            .or_else(|| self.commits.iter().find(|c| c.id == git_ref).map(|c| c.id.clone()))
    }

    /// The head SHA of a merge request.
    pub fn mr_head(&self, mr: &MergeRequest) -> String {
        match &mr.head_sha {
            Some(sha) => sha.clone(),
            None => self.branch_head(&mr.source_branch).unwrap_or_default().to_string(),
        }
    }

    /// `sha` and its ancestors, newest first.
    pub fn history(&self, sha: &str) -> Vec<&Commit> {
        let mut out = Vec::new();
        let mut at = Some(sha.to_string());
        while let Some(id) = at {
            let Some(c) = self.commits.iter().find(|c| c.id == id) else { break };
            out.push(c);
            at = c.parent.clone();
        }
        out
    }
}

/// A running CI job and its job token.
#[derive(Debug, Clone)]
pub struct Job {
    /// Id.
    pub id: i64,
    /// Job token (valid while the job runs).
    pub token: String,
    /// Project id.
    pub project_id: i64,
    /// Ref.
    pub git_ref: String,
    /// User running it.
    pub user_id: i64,
}

/// A fault to answer instead of the real response, for the next request whose path contains `path`.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Substring of the request path.
    pub path: String,
    /// Only for this method, when given.
    pub method: Option<String>,
    /// Status to answer.
    pub status: u16,
    /// `Retry-After` seconds, for 429.
    pub retry_after: Option<u64>,
    /// Do the request, then lose its answer (answer `status` instead): GitLab did it, Tao cannot know.
    pub after: bool,
}

/// One request the double received, as the recorder keeps it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path as sent (percent-encoded).
    pub path: String,
    /// Query string.
    pub query: String,
    /// JSON body, if any.
    pub body: Option<Value>,
}

impl Recorded {
    /// `METHOD /path`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Whether it may change something.
    pub fn is_mutation(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }
}

/// The world model.
#[derive(Debug, Default)]
pub struct World {
    /// Users.
    pub users: Vec<User>,
    /// Projects.
    pub projects: Vec<Project>,
    /// Jobs.
    pub jobs: Vec<Job>,
    /// Queued faults, first match first.
    pub faults: VecDeque<Fault>,
    /// Every request, in arrival order.
    pub requests: Vec<Recorded>,
    /// Requests the double does not know.
    pub unexpected: Vec<String>,
    /// Webhooks sent for new events, in order: (`X-Gitlab-Event`, body, `Idempotency-Key`).
    pub deliveries: Vec<(String, Vec<u8>, String)>,
    /// Registered OAuth applications.
    pub oauth_apps: Vec<OAuthApp>,
    /// Authorization codes issued.
    pub oauth_codes: Vec<OAuthCode>,
    /// OAuth access tokens issued: (token, user id).
    pub oauth_tokens: Vec<(String, i64)>,
    /// Who the browser is signed in to GitLab as.
    pub browser_user: Option<i64>,
    /// Groups: (full path, member user ids).
    pub groups: Vec<(String, Vec<i64>)>,
    next_id: i64,
    clock: i64,
}

impl World {
    /// A fresh id (ids are unique across kinds, which keeps tests from passing by coincidence).
    pub fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// The next time of the world's clock, epoch ms: a minute later each call, from 2024-03-01T10:00:00Z.
    pub fn tick(&mut self) -> i64 {
        self.clock += 1;
        1_709_287_200_000 + self.clock * 60_000
    }

    /// A project by id or `group/project`.
    pub fn project_index(&self, key: &str) -> Option<usize> {
        self.projects.iter().position(|p| p.path == key || p.id.to_string() == key)
    }

    /// A user by id.
    pub fn user(&self, id: i64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }
}

/// A refusal: status and GitLab's message.
pub type Refusal = (StatusCode, &'static str);

/// GitLab's error body.
pub fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "message": text }))).into_response()
}

/// A refusal as a response.
pub fn refuse((status, text): Refusal) -> Response {
    message(status, text)
}

/// The user a `PRIVATE-TOKEN` or `Authorization: Bearer` header authenticates.
pub fn authenticate(w: &World, headers: &HeaderMap) -> Result<User, Refusal> {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let private = headers.get("private-token").and_then(|v| v.to_str().ok());
    let presented = private.or(bearer).ok_or((StatusCode::UNAUTHORIZED, "401 Unauthorized"))?;
    // OAuth access tokens are bearer tokens only.
    let oauth = bearer.and_then(|b| w.oauth_tokens.iter().find(|(t, _)| t == b)).and_then(|(_, id)| w.user(*id));
    if let Some(u) = oauth {
        return Ok(u.clone());
    }
    w.users.iter().find(|u| u.token == presented).cloned().ok_or((StatusCode::UNAUTHORIZED, "401 Unauthorized"))
}

/// GitLab's access check on a private project: 401 without a valid token, 404 for non-members (GitLab
/// does not reveal private projects), 403 below `min_level`. Returns the user and the project's index.
pub fn guard(w: &World, headers: &HeaderMap, project: &str, min_level: u32) -> Result<(User, usize), Refusal> {
    let user = authenticate(w, headers)?;
    let not_found = || (StatusCode::NOT_FOUND, "404 Project Not Found");
    let at = w.project_index(project).ok_or_else(not_found)?;
    let level = if user.admin {
        60
    } else {
        w.projects[at].members.iter().find(|(id, _)| *id == user.id).map(|(_, l)| *l).unwrap_or(0)
    };
    if level == 0 {
        return Err(not_found());
    }
    if level < min_level {
        return Err((StatusCode::FORBIDDEN, "403 Forbidden"));
    }
    Ok((user, at))
}

/// Access levels.
pub const REPORTER: u32 = 20;
/// Developer.
pub const DEVELOPER: u32 = 30;
/// Maintainer.
pub const MAINTAINER: u32 = 40;

/// A timestamp as GitLab writes them.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Offset pagination: `page`, `per_page` (default 20, max 100) and GitLab's headers.
pub fn paginated(path: &str, all: Vec<Value>, q: &HashMap<String, String>) -> Response {
    let per_page: usize = q.get("per_page").and_then(|v| v.parse().ok()).unwrap_or(20).clamp(1, 100);
    let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let total = all.len();
    let pages = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = all.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let next = if page < pages { (page + 1).to_string() } else { String::new() };
    let link =
        |p: usize, rel: &str| format!("<https://gitlab.example.com{path}?page={p}&per_page={per_page}>; rel=\"{rel}\"");
    let mut links = vec![link(1, "first"), link(pages, "last")];
    if page < pages {
        links.insert(0, link(page + 1, "next"));
    }
    let mut r = Json(Value::Array(items)).into_response();
    let h = r.headers_mut();
    for (k, v) in [
        ("X-Total", total.to_string()),
        ("X-Total-Pages", pages.to_string()),
        ("X-Page", page.to_string()),
        ("X-Per-Page", per_page.to_string()),
        ("X-Next-Page", next),
        ("Link", links.join(", ")),
    ] {
        h.insert(k, axum::http::HeaderValue::from_str(&v).unwrap());
    }
    r
}

/// A user, as GitLab embeds one.
pub fn user_json(u: &User) -> Value {
    json!({ "id": u.id, "username": u.username, "name": u.username, "state": "active", "locked": false,
            "avatar_url": null, "web_url": format!("https://gitlab.example.com/{}", u.username) })
}

/// A user by id (`null` when unknown).
pub fn user_by_id(w: &World, id: i64) -> Value {
    w.user(id).map(user_json).unwrap_or(Value::Null)
}

/// A project (gitlab4j-project.json's fields that matter, plus the merge settings).
pub fn project_json(p: &Project) -> Value {
    let (namespace, name) = p.path.rsplit_once('/').unwrap_or(("", &p.path));
    let mut v = json!({
        "id": p.id, "name": name, "path": name, "path_with_namespace": p.path, "description": null,
        "name_with_namespace": p.path.replace('/', " / "), "default_branch": "main",
        "web_url": format!("https://gitlab.example.com/{}", p.path), "empty_repo": p.commits.is_empty(),
        "namespace": { "full_path": namespace, "path": namespace, "kind": "group" }, "visibility": "private",
        "archived": false, "created_at": "2024-01-01T00:00:00.000Z",
        "merge_method": "merge", "only_allow_merge_if_pipeline_succeeds": false,
        "only_allow_merge_if_all_discussions_are_resolved": false, "remove_source_branch_after_merge": true,
    });
    for (k, s) in &p.settings {
        v[k] = s.clone();
    }
    v
}

/// A commit (gitlab4j-tag.json's `commit`).
pub fn commit_json(p: &Project, c: &Commit) -> Value {
    json!({
        "id": c.id, "short_id": &c.id[..8.min(c.id.len())], "title": c.title, "message": format!("{}\n", c.title),
        "author_name": "Administrator", "author_email": "admin@example.com", "authored_date": c.at,
        "committer_name": "Administrator", "committer_email": "admin@example.com",
        "committed_date": c.at, "created_at": c.at,
        "parent_ids": c.parent.iter().collect::<Vec<_>>(),
        "web_url": format!("https://gitlab.example.com/{}/-/commit/{}", p.path, c.id),
    })
}

/// A commit by SHA (`null` when unknown).
pub fn commit_by_sha(p: &Project, sha: &str) -> Value {
    p.commits.iter().find(|c| c.id == sha).map(|c| commit_json(p, c)).unwrap_or(Value::Null)
}

/// GitLab's wording of an access level.
pub fn level_description(level: u32) -> &'static str {
    match level {
        0 => "No one",
        30 => "Developers + Maintainers",
        40 => "Maintainers",
        60 => "Admins",
        _ => "Custom",
    }
}

/// An access list entry.
pub fn access_json(id: i64, level: u32) -> Value {
    json!([{ "id": id, "access_level": level, "access_level_description": level_description(level),
             "user_id": null, "group_id": null, "deploy_key_id": null }])
}

/// GitLab's wildcard match of protected ref names (`*` matches anything).
pub fn ref_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else { return false };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

/// A pipeline (gitlab4j-pipeline.json).
pub fn pipeline_json(w: &World, p: &Project, pl: &Pipeline, user_id: i64) -> Value {
    json!({
        "id": pl.id, "iid": pl.iid, "project_id": p.id, "status": pl.status, "source": pl.source, "ref": pl.git_ref,
        "sha": pl.sha, "before_sha": "0000000000000000000000000000000000000000", "tag": false, "yaml_errors": null,
        "user": user_by_id(w, user_id), "created_at": now(), "updated_at": now(), "started_at": null,
        "finished_at": null, "committed_at": null, "duration": null, "queued_duration": null, "coverage": null,
        "detailed_status": { "icon": format!("status_{}", pl.status), "text": pl.status, "label": pl.status,
                             "group": pl.status, "has_details": true },
        "web_url": format!("https://gitlab.example.com/{}/-/pipelines/{}", p.path, pl.id), "name": null,
    })
}
