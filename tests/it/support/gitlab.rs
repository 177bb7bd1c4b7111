//! The GitLab double: a stateful, in-memory GitLab behind a real HTTP server on 127.0.0.1:0.
//!
//! Tao's production client points at it (`TAO_GITLAB_URL`). The world model (users and their tokens,
//! projects with their hooks, CI jobs with job tokens) is read and changed by handlers that answer with
//! GitLab's field names, status codes, auth headers (`PRIVATE-TOKEN`, `Authorization: Bearer`,
//! `JOB-TOKEN`) and pagination headers (`X-Total`, `X-Next-Page`, `Link`). A request the double does not
//! know is answered 501 and fails the test when the double is dropped. Tests can queue faults (429 with
//! `Retry-After`, 5xx, …) and read the request log. The double also *sends* webhooks the way GitLab does:
//! to the URL of each hook of a project, with the hook's secret and GitLab's headers.
//!
//! Covered so far: user, project, project hooks, `GET /job`. Branches, tags, protected refs, merge
//! requests, notes, statuses and members join as the features that call them arrive.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
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
    /// Creation order.
    pub uuid: String,
}

/// A project.
#[derive(Debug, Clone)]
pub struct Project {
    /// Id.
    pub id: i64,
    /// `group/project`.
    pub path: String,
    /// Hooks.
    pub hooks: Vec<Hook>,
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
    /// Status to answer.
    pub status: u16,
    /// `Retry-After` seconds, for 429.
    pub retry_after: Option<u64>,
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
    /// Every request, `METHOD /path`.
    pub requests: Vec<String>,
    /// Requests the double does not know.
    pub unexpected: Vec<String>,
    next_id: i64,
}

impl World {
    fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }
}

type Shared = Arc<Mutex<World>>;

/// A running GitLab double.
pub struct GitLabDouble {
    /// `http://127.0.0.1:PORT` (what `TAO_GITLAB_URL` is set to).
    pub url: String,
    world: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for GitLabDouble {
    fn drop(&mut self) {
        self.server.abort();
        let unexpected = self.world().unexpected.clone();
        if !unexpected.is_empty() && !std::thread::panicking() {
            panic!("the GitLab double received requests it does not know: {unexpected:#?}");
        }
    }
}

/// The token of the double's admin user (`root`).
pub const ROOT_TOKEN: &str = "glpat-root-token";

impl GitLabDouble {
    /// Starts an empty GitLab with one admin user whose token is [`ROOT_TOKEN`].
    pub async fn start() -> GitLabDouble {
        let world: Shared = Arc::default();
        {
            let mut w = world.lock().unwrap();
            let id = w.next_id();
            w.users.push(User { id, username: "root".into(), token: ROOT_TOKEN.into() });
        }
        let api = Router::new()
            .route("/user", get(current_user))
            .route("/job", get(current_job))
            .route("/projects/{project}", get(show_project))
            .route("/projects/{project}/hooks", get(list_hooks).post(create_hook))
            .route("/projects/{project}/hooks/{hook}", put(edit_hook));
        let app = Router::new()
            .nest("/api/v4", api)
            .fallback(unknown)
            .layer(middleware::from_fn_with_state(world.clone(), log_and_fault))
            .with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the GitLab double");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("GitLab double");
        });
        GitLabDouble { url, world, server }
    }

    /// The world, to arrange and assert.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a project; returns its id.
    pub fn add_project(&self, path: &str) -> i64 {
        let mut w = self.world();
        let id = w.next_id();
        w.projects.push(Project { id, path: path.into(), hooks: Vec::new() });
        id
    }

    /// Starts a job in a project; returns its job token.
    pub fn start_job(&self, project_id: i64, git_ref: &str) -> (i64, String) {
        let mut w = self.world();
        let id = w.next_id();
        let token = format!("glcbt-job-{id}");
        let user_id = w.users[0].id;
        w.jobs.push(Job { id, token: token.clone(), project_id, git_ref: git_ref.into(), user_id });
        (id, token)
    }

    /// Queues a fault for the next request whose path contains `path`.
    pub fn fail_next(&self, path: &str, status: u16, retry_after: Option<u64>) {
        self.world().faults.push_back(Fault { path: path.into(), status, retry_after });
    }

    /// The hooks of a project.
    pub fn hooks(&self, path: &str) -> Vec<Hook> {
        self.world().projects.iter().find(|p| p.path == path).map(|p| p.hooks.clone()).unwrap_or_default()
    }

    /// How many requests matched `METHOD /path` prefix.
    pub fn count_requests(&self, prefix: &str) -> usize {
        self.world().requests.iter().filter(|r| r.starts_with(prefix)).count()
    }

    /// Sends `body` as GitLab does, through every hook of `project` (its URL and secret). `delivery`
    /// becomes `Idempotency-Key`; pass the same one to simulate GitLab's resend. Returns the statuses.
    pub async fn deliver(&self, project: &str, event: &str, body: &[u8], delivery: &str) -> Vec<u16> {
        let mut statuses = Vec::new();
        for hook in self.hooks(project) {
            let r = send_webhook(&hook.url, &hook.token, event, body, Some(delivery), &hook.uuid).await;
            statuses.push(r.status().as_u16());
        }
        statuses
    }
}

/// Posts a webhook with GitLab's headers. `idempotency_key: None` sends only `X-Gitlab-Event-UUID`.
pub async fn send_webhook(
    url: &str,
    token: &str,
    event: &str,
    body: &[u8],
    idempotency_key: Option<&str>,
    hook_uuid: &str,
) -> reqwest::Response {
    let event_uuid = format!("evt-{:016x}", rand::random::<u64>());
    let mut rb = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json")
        .header("User-Agent", "GitLab/17.5.0")
        .header("X-Gitlab-Event", event)
        .header("X-Gitlab-Instance", "https://gitlab.example.com")
        .header("X-Gitlab-Webhook-UUID", hook_uuid)
        .header("X-Gitlab-Event-UUID", &event_uuid)
        .body(body.to_vec());
    if !token.is_empty() {
        rb = rb.header("X-Gitlab-Token", token);
    }
    if let Some(key) = idempotency_key {
        rb = rb.header("Idempotency-Key", key);
    }
    rb.send().await.expect("deliver webhook")
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "message": text }))).into_response()
}

async fn log_and_fault(State(world): State<Shared>, request: Request, next: Next) -> Response {
    let line = format!("{} {}", request.method(), request.uri().path());
    let fault = {
        let mut w = world.lock().unwrap();
        w.requests.push(line);
        let path = request.uri().path().to_string();
        let at = w.faults.iter().position(|f| path.contains(&f.path));
        at.and_then(|i| w.faults.remove(i))
    };
    if let Some(f) = fault {
        let status = StatusCode::from_u16(f.status).unwrap();
        let mut r = message(status, &format!("{} (injected)", status.canonical_reason().unwrap_or("")));
        if let Some(s) = f.retry_after {
            r.headers_mut().insert("Retry-After", HeaderValue::from(s));
        }
        return r;
    }
    next.run(request).await
}

async fn unknown(State(world): State<Shared>, method: Method, uri: axum::http::Uri) -> Response {
    world.lock().unwrap().unexpected.push(format!("{method} {uri}"));
    message(StatusCode::NOT_IMPLEMENTED, "the GitLab double does not know this request")
}

/// The user a `PRIVATE-TOKEN` or `Authorization: Bearer` header authenticates.
/// A refusal: status and GitLab's message.
type Refusal = (StatusCode, &'static str);

fn authenticate(w: &World, headers: &HeaderMap) -> Result<User, Refusal> {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let private = headers.get("private-token").and_then(|v| v.to_str().ok());
    let presented = private.or(bearer).ok_or((StatusCode::UNAUTHORIZED, "401 Unauthorized"))?;
    w.users.iter().find(|u| u.token == presented).cloned().ok_or((StatusCode::UNAUTHORIZED, "401 Unauthorized"))
}

fn user_json(u: &User) -> Value {
    json!({ "id": u.id, "username": u.username, "name": u.username, "state": "active",
            "web_url": format!("https://gitlab.example.com/{}", u.username) })
}

async fn current_user(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let w = world.lock().unwrap();
    match authenticate(&w, &headers) {
        Ok(u) => Json(user_json(&u)).into_response(),
        Err((status, text)) => message(status, text),
    }
}

async fn current_job(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let w = world.lock().unwrap();
    let Some(token) = headers.get("job-token").and_then(|v| v.to_str().ok()) else {
        return message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    };
    let Some(job) = w.jobs.iter().find(|j| j.token == token) else {
        return message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    };
    let user = w.users.iter().find(|u| u.id == job.user_id).map(user_json);
    Json(json!({
        "id": job.id, "name": "deploy", "stage": "deploy", "status": "running", "ref": job.git_ref, "tag": false,
        "user": user, "pipeline": { "id": job.id + 1000, "project_id": job.project_id, "ref": job.git_ref,
        "sha": "0ff3ae198f8601a285adcf5c0fff204ee6fba5fd", "status": "running" },
    }))
    .into_response()
}

fn find_project<'a>(w: &'a mut World, key: &str) -> Option<&'a mut Project> {
    w.projects.iter_mut().find(|p| p.path == key || p.id.to_string() == key)
}

fn project_json(p: &Project) -> Value {
    let (namespace, name) = p.path.rsplit_once('/').unwrap_or(("", &p.path));
    json!({
        "id": p.id, "name": name, "path": name, "path_with_namespace": p.path,
        "name_with_namespace": p.path.replace('/', " / "), "default_branch": "main",
        "web_url": format!("https://gitlab.example.com/{}", p.path),
        "namespace": { "full_path": namespace, "kind": "group" }, "visibility": "private",
    })
}

fn hook_json(project_id: i64, h: &Hook) -> Value {
    let mut v = json!({ "id": h.id, "url": h.url, "project_id": project_id, "enable_ssl_verification": false,
                        "created_at": "2024-01-01T00:00:00.000Z", "alert_status": "executable" });
    for (k, e) in &h.events {
        v[k] = e.clone();
    }
    v
}

macro_rules! authed {
    ($w:expr, $headers:expr) => {
        if let Err((status, text)) = authenticate(&$w, &$headers) {
            return message(status, text);
        }
    };
}

async fn show_project(State(world): State<Shared>, headers: HeaderMap, Path(project): Path<String>) -> Response {
    let mut w = world.lock().unwrap();
    authed!(w, headers);
    match find_project(&mut w, &project) {
        Some(p) => Json(project_json(p)).into_response(),
        None => message(StatusCode::NOT_FOUND, "404 Project Not Found"),
    }
}

async fn list_hooks(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut w = world.lock().unwrap();
    authed!(w, headers);
    let Some(p) = find_project(&mut w, &project) else {
        return message(StatusCode::NOT_FOUND, "404 Project Not Found");
    };
    let all: Vec<Value> = p.hooks.iter().map(|h| hook_json(p.id, h)).collect();
    paginated(&format!("/api/v4/projects/{project}/hooks"), all, &q)
}

/// GitLab's offset pagination: `page`, `per_page` (default 20, max 100) and its headers.
fn paginated(path: &str, all: Vec<Value>, q: &std::collections::HashMap<String, String>) -> Response {
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
        h.insert(k, HeaderValue::from_str(&v).unwrap());
    }
    r
}

const HOOK_EVENTS: [&str; 8] = [
    "push_events",
    "tag_push_events",
    "merge_requests_events",
    "note_events",
    "pipeline_events",
    "job_events",
    "deployment_events",
    "releases_events",
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

async fn create_hook(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut w = world.lock().unwrap();
    authed!(w, headers);
    let id = w.next_id();
    let Some(p) = find_project(&mut w, &project) else {
        return message(StatusCode::NOT_FOUND, "404 Project Not Found");
    };
    let (url, token, events) = match hook_from_body(&body, None) {
        Ok(parts) => parts,
        Err((status, text)) => return message(status, text),
    };
    let hook = Hook { id, url, token, events, uuid: format!("hook-uuid-{id}") };
    let out = hook_json(p.id, &hook);
    p.hooks.push(hook);
    (StatusCode::CREATED, Json(out)).into_response()
}

async fn edit_hook(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, hook)): Path<(String, i64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut w = world.lock().unwrap();
    authed!(w, headers);
    let Some(p) = find_project(&mut w, &project) else {
        return message(StatusCode::NOT_FOUND, "404 Project Not Found");
    };
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

/// Every webhook fixture with the `X-Gitlab-Event` GitLab sends it under (tests/fixtures/gitlab/README.md).
/// `external_status_check_request.json` is absent: it is not a webhook (it is signed and goes to its own
/// endpoint).
pub const WEBHOOK_FIXTURES: &[(&str, &str)] = &[
    ("push.json", "Push Hook"),
    ("tag_push.json", "Tag Push Hook"),
    ("merge_request.json", "Merge Request Hook"),
    ("merge_request_update.json", "Merge Request Hook"),
    ("note_merge_request.json", "Note Hook"),
    ("note_commit.json", "Note Hook"),
    ("note_issue.json", "Note Hook"),
    ("pipeline.json", "Pipeline Hook"),
    ("job.json", "Job Hook"),
    ("build.json", "Job Hook"),
    ("deployment.json", "Deployment Hook"),
    ("release.json", "Release Hook"),
    ("issue.json", "Issue Hook"),
    ("wiki_page.json", "Wiki Page Hook"),
    ("feature_flag.json", "Feature Flag Hook"),
    ("member.json", "Member Hook"),
    ("subgroup.json", "Subgroup Hook"),
    ("resource_access_token_project.json", "Resource Access Token Hook"),
    ("system_hook_push.json", "System Hook"),
    ("system_hook_merge_request.json", "System Hook"),
];

/// A webhook fixture's bytes.
pub fn webhook_fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitlab/webhooks").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}
