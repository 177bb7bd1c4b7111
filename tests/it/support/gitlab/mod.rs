//! The GitLab double: a stateful, in-memory GitLab behind a real HTTP server on 127.0.0.1:0.
//!
//! Tao's production client points at it (`TAO_GITLAB_URL`). The world model (`world`: users and their
//! tokens, projects with settings, hooks, commits, branches, tags, protected refs, merge requests,
//! notes, commit statuses, status check answers, members, deployments, pipelines, Markdown uploads,
//! issues, milestones; CI jobs with job tokens) is read and changed by handlers (`project`, `repo`,
//! `merge_request`, `upload`, `issue`) that answer with GitLab's field names (copied from
//! `tests/fixtures/gitlab/api/`), status codes, auth headers (`PRIVATE-TOKEN`, `Authorization: Bearer`,
//! `JOB-TOKEN`) and pagination headers (`X-Total`,
//! `X-Next-Page`, `Link`). A request the double does not know is answered 501 and fails the test when
//! the double is dropped.
//!
//! Tests arrange the world through helpers (`add_project`, `push`, `add_member`, …), queue faults
//! (429 with `Retry-After`, 5xx, or a lost answer after the change was made), and assert on the world
//! and on the recorder (every request with its body). The double also *sends* webhooks the way GitLab
//! does: `open_merge_request`, `comment` and `open_issue`/`close_issue`/… change the world and notify every
//! subscribed hook, with the hook's secret and GitLab's headers, so a test reads as a story.

/// Resolves the caller's access to a project, or answers with GitLab's refusal (shared by the route
/// modules below; textual scope makes it visible in them).
macro_rules! guarded {
    ($w:expr, $headers:expr, $project:expr, $level:expr) => {
        match guard(&$w, &$headers, &$project, $level) {
            Ok((user, at)) => (user, at),
            Err(r) => return refuse(r),
        }
    };
}

/// Parses a JSON request body, or answers 400 the way GitLab does.
macro_rules! body {
    ($bytes:expr) => {
        match json_body(&$bytes) {
            Ok(b) => b,
            Err(r) => return refuse(r),
        }
    };
}

mod issue;
mod merge_request;
mod oauth;
mod project;
mod repo;
mod story;
pub mod upload;
pub mod world;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Value};

pub use issue::{iso, NewIssue};
pub use merge_request::note_hook;
use world::{message, now, Job, User};
pub use world::{Commit, Fault, Hook, MergeRequest, Note, Project, Recorded, World};

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

fn router(world: Shared) -> Router {
    use issue as i;
    use merge_request as m;
    use project as p;
    use repo as r;
    let api = Router::new()
        .route("/user", get(p::current_user))
        .route("/groups", get(oauth::list_groups))
        .route("/job", get(p::current_job))
        .route("/projects/{project}", get(p::show_project).put(p::update_project))
        .route("/projects/{project}/hooks", get(p::list_hooks).post(p::create_hook))
        .route("/projects/{project}/hooks/{hook}", put(p::edit_hook))
        .route("/projects/{project}/members/all/{user}", get(p::show_member))
        .route("/projects/{project}/uploads", post(upload::upload))
        .route("/projects/{project}/repository/branches", get(r::list_branches))
        .route("/projects/{project}/repository/branches/{name}", get(r::show_branch))
        .route("/projects/{project}/repository/tags", get(r::list_tags).post(r::create_tag))
        .route("/projects/{project}/repository/tags/{name}", get(r::show_tag))
        .route("/projects/{project}/repository/compare", get(r::compare))
        .route("/projects/{project}/repository/commits/{sha}/statuses", get(r::list_statuses))
        .route("/projects/{project}/repository/commits/{sha}/merge_requests", get(m::commit_mrs))
        .route("/projects/{project}/statuses/{sha}", post(r::set_status))
        .route("/projects/{project}/protected_branches", get(r::list_protected_branches).post(r::protect_branch))
        .route(
            "/projects/{project}/protected_branches/{name}",
            get(r::show_protected_branch).delete(r::unprotect_branch),
        )
        .route("/projects/{project}/protected_tags", get(r::list_protected_tags).post(r::protect_tag))
        .route("/projects/{project}/protected_tags/{name}", get(r::show_protected_tag).delete(r::unprotect_tag))
        .route("/projects/{project}/issues", get(i::list_issues))
        .route("/projects/{project}/issues/{iid}/resource_state_events", get(i::list_state_events))
        .route("/projects/{project}/issues/{iid}/resource_label_events", get(i::list_label_events))
        .route("/projects/{project}/milestones/{id}", get(i::show_milestone))
        .route("/projects/{project}/merge_requests", get(m::list_mrs))
        .route("/projects/{project}/merge_requests/{iid}", get(m::show_mr))
        .route("/projects/{project}/merge_requests/{iid}/notes", get(m::list_notes).post(m::create_note))
        .route("/projects/{project}/merge_requests/{iid}/notes/{note}", put(m::update_note))
        .route("/projects/{project}/merge_requests/{iid}/discussions", get(m::list_discussions))
        .route("/projects/{project}/merge_requests/{iid}/discussions/{discussion}/notes", post(m::reply_to_discussion))
        .route("/projects/{project}/merge_requests/{iid}/status_check_responses", post(m::answer_status_check))
        .route("/projects/{project}/deployments", post(m::create_deployment))
        .route("/projects/{project}/deployments/{id}", put(m::update_deployment))
        .route("/projects/{project}/pipelines/{id}", get(m::show_pipeline))
        .route("/projects/{project}/trigger/pipeline", post(m::trigger_pipeline));
    Router::new()
        .route("/oauth/authorize", get(oauth::authorize))
        .route("/oauth/token", post(oauth::token))
        .nest("/api/v4", api)
        .fallback(unknown)
        .layer(middleware::from_fn_with_state(world.clone(), record_and_fault))
        .with_state(world)
}

/// A fake but well-formed commit SHA.
fn sha_of(n: i64, salt: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in salt.bytes().chain(n.to_le_bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}{:016x}{:08x}", h.rotate_left(17) ^ 0x9e3779b97f4a7c15, n as u32)
}

impl GitLabDouble {
    /// Starts an empty GitLab with one admin user whose token is [`ROOT_TOKEN`].
    pub async fn start() -> GitLabDouble {
        let world: Shared = Arc::default();
        {
            let mut w = world.lock().unwrap();
            let id = w.next_id();
            w.users.push(User { id, username: "root".into(), token: ROOT_TOKEN.into(), admin: true });
        }
        let app = router(world.clone());
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

    /// Adds a (non-admin) user; returns its id and token.
    pub fn add_user(&self, username: &str) -> (i64, String) {
        let mut w = self.world();
        let id = w.next_id();
        let token = format!("glpat-{username}-{id}");
        w.users.push(User { id, username: username.into(), token: token.clone(), admin: false });
        (id, token)
    }

    /// Adds a project with one commit on `main`; returns its id.
    pub fn add_project(&self, path: &str) -> i64 {
        let mut w = self.world();
        let id = w.next_id();
        let sha = sha_of(id, path);
        let project = Project {
            id,
            path: path.into(),
            commits: vec![Commit { id: sha.clone(), parent: None, title: "Initial commit".into(), at: now() }],
            branches: vec![("main".into(), sha)],
            ..Project::default()
        };
        w.projects.push(project);
        id
    }

    fn with_project<T>(&self, path: &str, f: impl FnOnce(&mut Project, &mut i64) -> T) -> T {
        let mut w = self.world();
        let at = w.project_index(path).unwrap_or_else(|| panic!("no project {path} in the double"));
        let mut next = w.next_id();
        f(&mut w.projects[at], &mut next)
    }

    /// Makes `user_id` a member of `project` at `access_level` (30 developer, 40 maintainer, …).
    pub fn add_member(&self, project: &str, user_id: i64, access_level: u32) {
        self.with_project(project, |p, _| {
            p.members.retain(|(id, _)| *id != user_id);
            p.members.push((user_id, access_level));
        })
    }

    /// Pushes a new commit to `branch` (created from `main` if missing); returns its SHA.
    pub fn push(&self, project: &str, branch: &str, title: &str) -> String {
        self.push_at(project, branch, title, &now())
    }

    /// Pushes a new commit committed at `at` (ISO 8601) to `branch`; returns its SHA.
    pub fn push_at(&self, project: &str, branch: &str, title: &str, at: &str) -> String {
        self.with_project(project, |p, next| {
            let parent = p.branch_head(branch).or_else(|| p.branch_head("main")).map(str::to_string);
            let sha = sha_of(*next, title);
            p.commits.push(Commit { id: sha.clone(), parent, title: title.into(), at: at.into() });
            p.branches.retain(|(b, _)| b != branch);
            p.branches.push((branch.into(), sha.clone()));
            sha
        })
    }

    /// Configures an external status check on a project; returns its id.
    pub fn add_status_check(&self, project: &str, name: &str) -> i64 {
        self.with_project(project, |p, next| {
            p.status_checks.push((*next, name.into()));
            *next
        })
    }

    /// Adds a pipeline trigger token to a project; returns it.
    pub fn add_trigger_token(&self, project: &str) -> String {
        self.with_project(project, |p, next| {
            let token = format!("glptt-{next:08x}");
            p.trigger_tokens.push(token.clone());
            token
        })
    }

    /// Starts a pipeline on `branch`'s head; returns its id.
    pub fn start_pipeline(&self, project: &str, branch: &str) -> i64 {
        self.with_project(project, |p, next| {
            let sha = p.branch_head(branch).expect("branch").to_string();
            let iid = p.pipelines.len() as i64 + 1;
            let status = "running".into();
            p.pipelines.push(world::Pipeline {
                id: *next,
                iid,
                git_ref: branch.into(),
                sha,
                status,
                source: "push".into(),
                variables: Vec::new(),
            });
            *next
        })
    }

    /// Starts a job in a project; returns its id and job token.
    pub fn start_job(&self, project_id: i64, git_ref: &str) -> (i64, String) {
        let mut w = self.world();
        let id = w.next_id();
        let token = format!("glcbt-job-{id}");
        let user_id = w.users[0].id;
        w.jobs.push(Job { id, token: token.clone(), project_id, git_ref: git_ref.into(), user_id });
        (id, token)
    }

    /// Ends a job: GitLab stops answering for its token.
    pub fn finish_job(&self, job_id: i64) {
        self.world().jobs.retain(|j| j.id != job_id);
    }

    /// Queues a fault for the next request whose path contains `path`.
    pub fn fail_next(&self, path: &str, status: u16, retry_after: Option<u64>) {
        self.world().faults.push_back(Fault { path: path.into(), method: None, status, retry_after, after: false });
    }

    /// The next `method` request whose path contains `path` is carried out, but its answer is lost:
    /// the client sees `status` (a proxy's 502, say) although GitLab made the change.
    pub fn lose_next_answer(&self, method: &str, path: &str, status: u16) {
        let fault = Fault { path: path.into(), method: Some(method.into()), status, retry_after: None, after: true };
        self.world().faults.push_back(fault);
    }

    /// The hooks of a project.
    pub fn hooks(&self, path: &str) -> Vec<Hook> {
        self.world().projects.iter().find(|p| p.path == path).map(|p| p.hooks.clone()).unwrap_or_default()
    }

    /// The notes of a merge request, oldest first.
    pub fn notes(&self, project: &str, iid: i64) -> Vec<Note> {
        self.with_project(project, |p, _| p.notes.iter().filter(|n| n.mr_iid == iid).cloned().collect())
    }

    /// The files uploaded to a project (`POST /projects/:id/uploads`), oldest first.
    pub fn uploads(&self, project: &str) -> Vec<upload::Upload> {
        self.with_project(project, |p, _| p.uploads.clone())
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.world().requests.clone()
    }

    /// How many requests the recorder holds: pass it to [`GitLabDouble::mutations_since`].
    pub fn mark(&self) -> usize {
        self.world().requests.len()
    }

    /// The requests after `mark` that may change something (not GET), as `METHOD /path`.
    pub fn mutations_since(&self, mark: usize) -> Vec<String> {
        self.world().requests[mark..].iter().filter(|r| r.is_mutation()).map(Recorded::line).collect()
    }

    /// How many requests matched `METHOD /path` prefix.
    pub fn count_requests(&self, prefix: &str) -> usize {
        self.world().requests.iter().filter(|r| r.line().starts_with(prefix)).count()
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

    /// Sends an event to the hooks of `project` subscribed to `events_field` (e.g. `note_events`), each
    /// delivery with a fresh `Idempotency-Key`, as GitLab does for a new event.
    async fn notify(&self, project: &str, events_field: &str, event: &str, body: &Value) -> Vec<u16> {
        let hooks: Vec<Hook> = self
            .hooks(project)
            .into_iter()
            .filter(|h| h.events.get(events_field) == Some(&Value::Bool(true)))
            .collect();
        let bytes = serde_json::to_vec(body).unwrap();
        let mut statuses = Vec::new();
        for hook in hooks {
            let key = format!("{:032x}", rand::random::<u128>());
            self.world().deliveries.push((event.to_string(), bytes.clone(), key.clone()));
            let r = send_webhook(&hook.url, &hook.token, event, &bytes, Some(&key), &hook.uuid).await;
            statuses.push(r.status().as_u16());
        }
        statuses
    }

    /// Sends the last webhook of a new event again, with the same `Idempotency-Key` (GitLab's resend
    /// from the hook's history). Returns the statuses.
    pub async fn redeliver_last(&self, project: &str) -> Vec<u16> {
        let (event, body, key) = self.world().deliveries.last().cloned().expect("a delivery to resend");
        self.deliver(project, &event, &body, &key).await
    }

    /// A developer opens a merge request from `source` (pushed already) into `target`: the MR appears
    /// and GitLab sends the `Merge Request Hook` (action `open`) to the subscribed hooks. Returns the
    /// iid and the hook answers.
    pub async fn open_merge_request(
        &self,
        project: &str,
        source: &str,
        target: &str,
        title: &str,
        author_id: i64,
    ) -> (i64, Vec<u16>) {
        let payload = self.with_project(project, |p, next| {
            let iid = p.merge_requests.iter().map(|m| m.iid).max().unwrap_or(0) + 1;
            let mr = MergeRequest {
                id: *next,
                iid,
                title: title.into(),
                source_branch: source.into(),
                target_branch: target.into(),
                state: "opened".into(),
                author_id,
                head_pipeline: None,
                merge_commit_sha: None,
                head_sha: None,
            };
            p.merge_requests.push(mr.clone());
            (iid, mr)
        });
        let body = {
            let w = self.world();
            let p = &w.projects[w.project_index(project).unwrap()];
            merge_request::mr_hook(&w, p, &payload.1, "open")
        };
        (payload.0, self.notify(project, "merge_requests_events", "Merge Request Hook", &body).await)
    }

    /// A user comments on a merge request: the note appears and GitLab sends the `Note Hook` to the
    /// subscribed hooks. Returns the note id and the hook answers.
    pub async fn comment(&self, project: &str, iid: i64, author_id: i64, body: &str) -> (i64, Vec<u16>) {
        let payload = {
            let mut w = self.world();
            let id = w.next_id();
            let at = w.project_index(project).expect("project");
            let discussion_id = world::discussion_id(id);
            let note = Note { id, mr_iid: iid, body: body.into(), author_id, system: false, edits: 0, discussion_id };
            w.projects[at].notes.push(note.clone());
            let p = &w.projects[at];
            let mr = p.merge_requests.iter().find(|m| m.iid == iid).expect("merge request");
            merge_request::note_hook(&w, p, mr, &note)
        };
        let id = payload["object_attributes"]["id"].as_i64().unwrap();
        (id, self.notify(project, "note_events", "Note Hook", &payload).await)
    }
}

async fn record_and_fault(State(world): State<Shared>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        body: serde_json::from_slice(&bytes).ok(),
    };
    let fault = {
        let mut w = world.lock().unwrap();
        let at = w
            .faults
            .iter()
            .position(|f| recorded.path.contains(&f.path) && f.method.as_deref().is_none_or(|m| m == recorded.method));
        w.requests.push(recorded);
        at.and_then(|i| w.faults.remove(i))
    };
    let request = Request::from_parts(parts, axum::body::Body::from(bytes));
    let (method, uri) = (request.method().clone(), request.uri().clone());
    if let Some(f) = fault {
        if f.after {
            let _ = next.run(request).await;
        }
        let status = StatusCode::from_u16(f.status).unwrap();
        let mut r = message(status, &format!("{} (injected)", status.canonical_reason().unwrap_or("")));
        if let Some(s) = f.retry_after {
            r.headers_mut().insert("Retry-After", HeaderValue::from(s));
        }
        return r;
    }
    let response = next.run(request).await;
    // A known path with a method it does not serve is as unexpected as an unknown path.
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        world.lock().unwrap().unexpected.push(format!("{method} {uri}"));
    }
    response
}

async fn unknown(State(world): State<Shared>, method: Method, uri: axum::http::Uri) -> Response {
    world.lock().unwrap().unexpected.push(format!("{method} {uri}"));
    message(StatusCode::NOT_IMPLEMENTED, "the GitLab double does not know this request")
}

/// A JSON body, or GitLab's 400 for a malformed one.
fn json_body(bytes: &[u8]) -> Result<Value, world::Refusal> {
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(bytes).map_err(|_| (StatusCode::BAD_REQUEST, "400 Bad request - malformed JSON"))
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
    let mut rb = crate::support::http_client()
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
