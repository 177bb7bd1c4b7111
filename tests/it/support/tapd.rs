//! The TAPD double: an in-memory TAPD open API behind a real HTTP server on 127.0.0.1:0.
//!
//! Tao's production client points at it. Entities are JSON objects built from the shapes in
//! `tests/fixtures/tapd/` (string-typed fields, zone-less datetimes, one-key wrappers in lists) and
//! answered in TAPD's envelope `{"status":1,"data":…,"info":"success"}`. It knows `/stories`, `/bugs`,
//! `/iterations` (paged with `page`/`limit` ≤ 200, `order=modified asc`, `modified=>T` read as "at or
//! after T"), `/stories/count`, `/story_changes` (by `story_id` list, `change_field`, limit ≤ 100) and
//! `/bug_changes` (by `bug_id` list), and `/workflows/status_map` (the fixtures' maps). It checks HTTP Basic or Bearer auth (401 with TAPD's body), answers
//! an unknown path with TAPD's HTTP 200 "Hello world", and an unknown workspace with TAPD's 404 body.
//!
//! Tests arrange the world (`add_story`, `set_story_status`, …), queue faults (a 429 with `Retry-After`
//! and TAPD's body), and read the recorder: every request's path and query.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

const STORIES: &str = include_str!("../../fixtures/tapd/stories.incremental_page.json");
const BUGS: &str = include_str!("../../fixtures/tapd/bugs.json");
const ITERATIONS: &str = include_str!("../../fixtures/tapd/iterations.json");
const STORY_CHANGES: &str = include_str!("../../fixtures/tapd/story_changes.status_transition.json");
const BUG_CHANGES: &str = include_str!("../../fixtures/tapd/bug_changes.status_transition.json");
const STORY_STATES: &str = include_str!("../../fixtures/tapd/workflows_status_map.story_custom.json");
const BUG_STATES: &str = include_str!("../../fixtures/tapd/workflows_status_map.bug.json");
const E401: &str = include_str!("../../fixtures/tapd/401_unauthorized.json");
const E404: &str = include_str!("../../fixtures/tapd/404_workspace_not_existed.constructed.json");
const E429: &str = include_str!("../../fixtures/tapd/429_rate_limited.devlake_issue_560.json");
const HELLO: &str = include_str!("../../fixtures/tapd/200_unknown_path_hello_world.json");

/// The API account the double accepts (HTTP Basic).
pub const USER: &str = "tao_api";
/// Its password.
pub const PASSWORD: &str = "s3cret-api-password";
/// The personal access token the double accepts (Bearer).
pub const TOKEN: &str = "tapd-personal-token";

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Path, e.g. `/stories`.
    pub path: String,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
}

/// The double's state.
#[derive(Default)]
pub struct World {
    /// Workspaces that exist.
    pub workspaces: Vec<String>,
    /// Stories, bugs, iterations (inner objects, without the wrapper).
    pub stories: Vec<Value>,
    /// Bugs.
    pub bugs: Vec<Value>,
    /// Iterations.
    pub iterations: Vec<Value>,
    /// Story change records (`WorkitemChange`).
    pub story_changes: Vec<Value>,
    /// Bug change records (`BugChange`).
    pub bug_changes: Vec<Value>,
    /// Faults to answer instead, by path, in order: (HTTP status, Retry-After seconds).
    pub faults: Vec<(String, u16, Option<u64>)>,
    /// Every request.
    pub recorded: Vec<Recorded>,
    /// Answer page 1 whatever `page` asks (a misbehaving proxy), to prove the client stops.
    pub ignore_page: bool,
    next_change: u64,
}

type Shared = Arc<Mutex<World>>;

/// A running TAPD double.
pub struct TapdDouble {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    world: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TapdDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn first(fixture: &str, wrapper: &str) -> Value {
    let v: Value = serde_json::from_str(fixture).expect("fixture parses");
    v["data"][0][wrapper].clone()
}

impl TapdDouble {
    /// Starts the double with the given workspaces.
    pub async fn start(workspaces: &[&str]) -> TapdDouble {
        let world: Shared = Arc::new(Mutex::new(World {
            workspaces: workspaces.iter().map(|w| w.to_string()).collect(),
            next_change: 1,
            ..Default::default()
        }));
        let app = Router::new().route("/{*path}", get(handle)).with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("TAPD double serves");
        });
        TapdDouble { url, world, server }
    }

    /// The world, to arrange or inspect.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().expect("world lock")
    }

    /// Requests to `path`, in order.
    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        self.world().recorded.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Adds an iteration.
    pub fn add_iteration(&self, ws: &str, id: &str, name: &str, modified: &str) {
        let mut it = first(ITERATIONS, "Iteration");
        it["id"] = json!(id);
        it["name"] = json!(name);
        it["workspace_id"] = json!(ws);
        it["modified"] = json!(modified);
        it["created"] = json!(modified);
        self.world().iterations.push(it);
    }

    /// Adds a story created (and last modified) at `created`.
    pub fn add_story(&self, ws: &str, id: &str, name: &str, status: &str, iteration: &str, created: &str) {
        let mut s = first(STORIES, "Story");
        s["id"] = json!(id);
        s["name"] = json!(name);
        s["status"] = json!(status);
        s["iteration_id"] = json!(iteration);
        s["workspace_id"] = json!(ws);
        s["created"] = json!(created);
        s["modified"] = json!(created);
        s["completed"] = Value::Null;
        self.world().stories.push(s);
    }

    /// Adds a bug created (and last modified) at `created`.
    pub fn add_bug(&self, ws: &str, id: &str, title: &str, status: &str, iteration: &str, created: &str) {
        let mut b = first(BUGS, "Bug");
        b["id"] = json!(id);
        b["title"] = json!(title);
        b["status"] = json!(status);
        b["iteration_id"] = json!(iteration);
        b["workspace_id"] = json!(ws);
        b["created"] = json!(created);
        b["modified"] = json!(created);
        self.world().bugs.push(b);
    }

    /// Moves a story to `status` at `at`, by `who`, recording the change the way TAPD does.
    pub fn set_story_status(&self, id: &str, status: &str, at: &str, who: &str) {
        let mut w = self.world();
        let story = w.stories.iter_mut().find(|s| s["id"] == id).expect("story exists");
        let before = story["status"].clone();
        let old_modified = story["modified"].clone();
        story["status"] = json!(status);
        story["modified"] = json!(at);
        let ws = story["workspace_id"].clone();
        let mut c = first(STORY_CHANGES, "WorkitemChange");
        let changes = json!([
            {"field": "status", "value_before": before, "value_after": status},
            {"field": "modified", "value_before": old_modified, "value_after": at},
        ]);
        c["id"] = json!(format!("11{}00{:09}", ws.as_str().unwrap_or_default(), 4000 + w.next_change));
        w.next_change += 1;
        c["story_id"] = json!(id);
        c["workspace_id"] = ws;
        c["creator"] = json!(who);
        c["created"] = json!(at);
        c["updated"] = json!(at);
        c["change_summary"] = json!(status);
        c["changes"] = json!(changes.to_string());
        w.story_changes.push(c);
    }

    /// Moves a bug to `status` at `at`, by `who` (a status record and an owner record, as TAPD writes).
    pub fn set_bug_status(&self, id: &str, status: &str, at: &str, who: &str) {
        let mut w = self.world();
        let bug = w.bugs.iter_mut().find(|b| b["id"] == id).expect("bug exists");
        let before = bug["status"].clone();
        bug["status"] = json!(status);
        bug["modified"] = json!(at);
        let ws = bug["workspace_id"].clone();
        let template: Value = serde_json::from_str(BUG_CHANGES).expect("fixture parses");
        for (i, record) in template["data"].as_array().expect("list").iter().enumerate() {
            let mut c = record["BugChange"].clone();
            c["id"] = json!(format!("11{}00{:09}", ws.as_str().unwrap_or_default(), 2200 + w.next_change));
            w.next_change += 1;
            c["bug_id"] = json!(id);
            c["workspace_id"] = ws.clone();
            c["author"] = json!(who);
            c["created"] = json!(at);
            if i == 0 {
                c["old_value"] = before.clone();
                c["new_value"] = json!(status);
            }
            w.bug_changes.push(c);
        }
    }

    /// Sets fields of a bug as a TAPD user editing it would (`version_report`, `resolved`, …), at `at`.
    pub fn edit_bug(&self, id: &str, fields: &[(&str, &str)], at: &str) {
        let mut w = self.world();
        let bug = w.bugs.iter_mut().find(|b| b["id"] == id).expect("bug exists");
        for (k, v) in fields {
            bug[*k] = json!(v);
        }
        bug["modified"] = json!(at);
    }

    /// The next request to `path` is answered with HTTP `status` (TAPD's 429 body) and `Retry-After`.
    pub fn fail_next(&self, path: &str, status: u16, retry_after: Option<u64>) {
        self.world().faults.push((path.to_string(), status, retry_after));
    }
}

fn envelope(data: Value) -> Response {
    (StatusCode::OK, axum::Json(json!({"status": 1, "data": data, "info": "success"}))).into_response()
}

fn raw(status: StatusCode, body: &str) -> Response {
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    use base64::Engine;
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else { return false };
    if let Some(token) = auth.strip_prefix("Bearer ") {
        return token == TOKEN;
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    auth.strip_prefix("Basic ") == Some(basic.as_str())
}

async fn handle(
    State(world): State<Shared>,
    Path(path): Path<String>,
    Query(mut q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/{path}");
    let mut w = world.lock().expect("world lock");
    w.recorded.push(Recorded { path: path.clone(), query: q.clone() });
    if let Some(i) = w.faults.iter().position(|f| f.0 == path) {
        let (_, status, after) = w.faults.remove(i);
        let mut r = raw(StatusCode::from_u16(status).expect("status"), E429);
        if let Some(s) = after {
            r.headers_mut().insert("retry-after", s.to_string().parse().expect("header"));
        }
        return r;
    }
    if !authorized(&headers) {
        return raw(StatusCode::UNAUTHORIZED, E401);
    }
    if w.ignore_page {
        q.remove("page");
    }
    let ws = q.get("workspace_id").cloned().unwrap_or_default();
    let known = [
        "/stories",
        "/bugs",
        "/iterations",
        "/stories/count",
        "/story_changes",
        "/bug_changes",
        "/workflows/status_map",
    ];
    if !known.contains(&path.as_str()) {
        return raw(StatusCode::OK, HELLO);
    }
    if !w.workspaces.contains(&ws) {
        return raw(StatusCode::NOT_FOUND, &E404.replace("1010480", &ws));
    }
    let in_ws = |v: &&Value| v["workspace_id"] == ws.as_str();
    match path.as_str() {
        "/workflows/status_map" => {
            let body = if q.get("system").map(String::as_str) == Some("bug") { BUG_STATES } else { STORY_STATES };
            raw(StatusCode::OK, body)
        }
        "/stories" | "/bugs" | "/iterations" | "/stories/count" => {
            let (all, wrapper) = match path.as_str() {
                "/bugs" => (&w.bugs, "Bug"),
                "/iterations" => (&w.iterations, "Iteration"),
                _ => (&w.stories, "Story"),
            };
            let mut hits: Vec<&Value> = all.iter().filter(in_ws).collect();
            if let Some(since) = q.get("modified").and_then(|m| m.strip_prefix('>')) {
                hits.retain(|v| v["modified"].as_str().is_some_and(|m| m >= since));
            }
            hits.sort_by_key(|v| (v["modified"].as_str().unwrap_or_default().to_string(), v["id"].to_string()));
            if path == "/stories/count" {
                return envelope(json!({"count": hits.len()}));
            }
            envelope(page(&hits, &q, 200, wrapper))
        }
        "/story_changes" => {
            let ids: Vec<&str> = q.get("story_id").map(|s| s.split(',').collect()).unwrap_or_default();
            let field = q.get("change_field");
            let hits: Vec<&Value> = w
                .story_changes
                .iter()
                .filter(in_ws)
                .filter(|c| ids.iter().any(|id| c["story_id"] == *id))
                .filter(|c| {
                    field.is_none_or(|f| c["changes"].as_str().unwrap_or_default().contains(&format!("\"{f}\"")))
                })
                .collect();
            envelope(page(&hits, &q, 100, "WorkitemChange"))
        }
        _ => {
            let ids: Vec<&str> = q.get("bug_id").map(|s| s.split(',').collect()).unwrap_or_default();
            let hits: Vec<&Value> =
                w.bug_changes.iter().filter(in_ws).filter(|c| ids.iter().any(|id| c["bug_id"] == *id)).collect();
            envelope(page(&hits, &q, 100, "BugChange"))
        }
    }
}

fn page(hits: &[&Value], q: &BTreeMap<String, String>, max: usize, wrapper: &str) -> Value {
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(30usize).min(max);
    let page = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1usize).max(1);
    let items = hits.iter().skip((page - 1) * limit).take(limit).map(|v| json!({ wrapper: v })).collect();
    Value::Array(items)
}
