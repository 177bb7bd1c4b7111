//! The double's issues and milestones: what people do (open, close, reopen, relabel an issue, with the
//! `Issue Hook` GitLab sends and the resource state and label events it records) and what the API answers
//! (`GET /projects/:id/issues`, `…/issues/:iid/resource_state_events` and `…/resource_label_events`,
//! `…/milestones/:id`), with field names and shapes from GitLab's Issues, Resource state events, Resource
//! label events and Milestones API documentation.
//!
//! Issue times come from the world's clock ([`World::tick`]): a minute per change from
//! 2024-03-01T10:00:00Z, so tests can name them and no two changes share a time. Strict: the issue list
//! refuses `order_by`/`sort`/`updated_after` values GitLab refuses, and a query parameter it does not
//! know is an unexpected request (the test fails).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::merge_request::hook_project;
use super::world::{guard, message, paginated, refuse, user_by_id, Project, World};
use super::{webhook_fixture, GitLabDouble, Shared};

type Q = Query<HashMap<String, String>>;

/// Guest: the least role that may read a private project's issues.
const GUEST: u32 = 10;

/// An issue.
#[derive(Debug, Clone, Default)]
pub struct Issue {
    /// Global id.
    pub id: i64,
    /// Per-project number.
    pub iid: i64,
    /// Title.
    pub title: String,
    /// `opened` or `closed`.
    pub state: String,
    /// Label names.
    pub labels: Vec<String>,
    /// `issue`, `incident`, `test_case` or `task`.
    pub issue_type: String,
    /// Assignee user ids.
    pub assignees: Vec<i64>,
    /// Author.
    pub author_id: i64,
    /// Milestone id.
    pub milestone: Option<i64>,
    /// Created, epoch ms.
    pub created_at: i64,
    /// Last changed, epoch ms.
    pub updated_at: i64,
    /// Closed, epoch ms.
    pub closed_at: Option<i64>,
    /// Resource state events: (id, user id, epoch ms, `closed`/`reopened`).
    pub state_events: Vec<(i64, i64, i64, String)>,
    /// Resource label events: (id, user id, epoch ms, label, `add`/`remove`).
    pub label_events: Vec<(i64, i64, i64, String, String)>,
}

impl Issue {
    /// Records the label events of going from the current labels to `labels` at `at`.
    fn set_labels(&mut self, labels: Vec<String>, user_id: i64, at: i64, event_id: i64) {
        let removed = self.labels.iter().filter(|l| !labels.contains(l)).map(|l| (l.clone(), "remove"));
        let added = labels.iter().filter(|l| !self.labels.contains(l)).map(|l| (l.clone(), "add"));
        let changes: Vec<(String, &str)> = removed.chain(added).collect();
        for (k, (label, action)) in changes.into_iter().enumerate() {
            self.label_events.push((event_id * 100 + k as i64, user_id, at, label, action.into()));
        }
        self.labels = labels;
    }
}

/// A project milestone.
#[derive(Debug, Clone)]
pub struct Milestone {
    /// Global id.
    pub id: i64,
    /// Per-project number.
    pub iid: i64,
    /// Title.
    pub title: String,
}

/// What a new issue looks like; [`GitLabDouble::open_issue`] fills in ids and times.
#[derive(Debug, Clone, Default)]
pub struct NewIssue {
    /// Title.
    pub title: String,
    /// Label names.
    pub labels: Vec<String>,
    /// `issue` (default), `incident`, `task`, …
    pub issue_type: Option<String>,
    /// Assignee user ids.
    pub assignees: Vec<i64>,
    /// Milestone id.
    pub milestone: Option<i64>,
}

/// An issue time as the REST API writes it.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// An issue time as webhooks write it.
fn hook_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn milestone_json(p: &Project, m: &Milestone) -> Value {
    json!({
        "id": m.id, "iid": m.iid, "project_id": p.id, "title": m.title, "description": "", "state": "active",
        "created_at": "2024-01-01T00:00:00.000Z", "updated_at": "2024-01-01T00:00:00.000Z", "due_date": null,
        "start_date": null, "expired": false,
        "web_url": format!("https://gitlab.example.com/{}/-/milestones/{}", p.path, m.iid),
    })
}

/// An issue as `GET /projects/:id/issues` lists it.
fn issue_json(w: &World, p: &Project, i: &Issue) -> Value {
    let assignees: Vec<Value> = i.assignees.iter().map(|a| user_by_id(w, *a)).collect();
    let milestone = i.milestone.and_then(|m| p.milestones.iter().find(|x| x.id == m));
    let short = format!("#{}", i.iid);
    let closed_by = i.state_events.iter().rev().find(|e| e.3 == "closed").filter(|_| i.state == "closed");
    json!({
        "id": i.id, "iid": i.iid, "project_id": p.id, "title": i.title, "description": "", "state": i.state,
        "created_at": iso(i.created_at), "updated_at": iso(i.updated_at), "closed_at": i.closed_at.map(iso),
        "closed_by": closed_by.map(|e| user_by_id(w, e.1)), "labels": i.labels,
        "milestone": milestone.map(|m| milestone_json(p, m)), "assignees": assignees,
        "assignee": assignees.first().cloned().unwrap_or(Value::Null), "author": user_by_id(w, i.author_id),
        "type": i.issue_type.to_ascii_uppercase(), "issue_type": i.issue_type, "user_notes_count": 0,
        "merge_requests_count": 0, "upvotes": 0, "downvotes": 0, "due_date": null, "confidential": false,
        "discussion_locked": null, "web_url": format!("https://gitlab.example.com/{}/-/issues/{}", p.path, i.iid),
        "time_stats": { "time_estimate": 0, "total_time_spent": 0, "human_time_estimate": null,
                        "human_total_time_spent": null },
        "task_completion_status": { "count": 0, "completed_count": 0 }, "has_tasks": false,
        "references": { "short": short, "relative": short, "full": format!("{}{short}", p.path) },
        "severity": "UNKNOWN", "moved_to_id": null, "service_desk_reply_to": null,
    })
}

/// The `Issue Hook` GitLab sends for `action` on `i` by `user_id` (issue.json with the world's values).
fn issue_hook(w: &World, p: &Project, i: &Issue, action: &str, user_id: i64) -> Value {
    let mut v: Value = serde_json::from_slice(&webhook_fixture("issue.json")).unwrap();
    let labels: Vec<Value> = i
        .labels
        .iter()
        .enumerate()
        .map(|(n, l)| {
            json!({ "id": 1000 + n, "title": l, "color": "#428bca", "project_id": p.id,
                              "created_at": "2024-01-01 00:00:00 UTC", "updated_at": "2024-01-01 00:00:00 UTC",
                              "template": false, "description": null, "type": "ProjectLabel", "group_id": null })
        })
        .collect();
    let users: Vec<Value> = i
        .assignees
        .iter()
        .map(|a| {
            let u = user_by_id(w, *a);
            json!({ "id": u["id"], "name": u["name"], "username": u["username"], "avatar_url": null })
        })
        .collect();
    v["user"] = user_by_id(w, user_id);
    v["project"] = hook_project(p);
    v["labels"] = json!(labels);
    v["assignees"] = json!(users);
    v["assignee"] = users.first().cloned().unwrap_or(Value::Null);
    v["repository"]["homepage"] = json!(format!("https://gitlab.example.com/{}", p.path));
    let state_id = if i.state == "closed" { 2 } else { 1 };
    v["changes"] = match action {
        "close" | "reopen" => json!({ "state_id": { "previous": 3 - state_id, "current": state_id },
                                       "updated_at": { "previous": null, "current": hook_time(i.updated_at) } }),
        _ => json!({}),
    };
    let oa = &mut v["object_attributes"];
    for (k, val) in [
        ("id", json!(i.id)),
        ("iid", json!(i.iid)),
        ("title", json!(i.title)),
        ("project_id", json!(p.id)),
        ("author_id", json!(i.author_id)),
        ("assignee_ids", json!(i.assignees)),
        ("assignee_id", json!(i.assignees.first())),
        ("milestone_id", json!(i.milestone)),
        ("state", json!(i.state)),
        ("state_id", json!(state_id)),
        ("action", json!(action)),
        ("type", json!(capitalized(&i.issue_type))),
        ("labels", json!(labels)),
        ("created_at", json!(hook_time(i.created_at))),
        ("updated_at", json!(hook_time(i.updated_at))),
        ("closed_at", json!(i.closed_at.map(hook_time))),
        ("updated_by_id", json!(user_id)),
        ("url", json!(format!("https://gitlab.example.com/{}/-/issues/{}", p.path, i.iid))),
    ] {
        oa[k] = val;
    }
    v
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

impl GitLabDouble {
    /// Adds a project milestone; returns its id.
    pub fn add_milestone(&self, project: &str, title: &str) -> i64 {
        let mut w = self.world();
        let id = w.next_id();
        let at = w.project_index(project).expect("project");
        let p = &mut w.projects[at];
        let iid = p.milestones.len() as i64 + 1;
        p.milestones.push(Milestone { id, iid, title: title.into() });
        id
    }

    /// Changes an issue at the next tick of the world's clock, then sends the `Issue Hook` for `action`
    /// to the hooks subscribed to `issues_events`.
    async fn change_issue(
        &self,
        project: &str,
        iid: i64,
        action: &str,
        user_id: i64,
        change: impl FnOnce(&mut Issue, i64, i64),
    ) -> Vec<u16> {
        let body = {
            let mut w = self.world();
            let (now, event_id) = (w.tick(), w.next_id());
            let at = w.project_index(project).expect("project");
            let issue = w.projects[at].issues.iter_mut().find(|i| i.iid == iid).expect("issue");
            change(issue, now, event_id);
            issue.updated_at = now;
            let (p, i) = (&w.projects[at], w.projects[at].issues.iter().find(|i| i.iid == iid).unwrap());
            issue_hook(&w, p, i, action, user_id)
        };
        self.notify(project, "issues_events", "Issue Hook", &body).await
    }

    /// `author_id` opens an issue. Returns its iid and the hook answers.
    pub async fn open_issue(&self, project: &str, author_id: i64, new: NewIssue) -> (i64, Vec<u16>) {
        let iid = {
            let mut w = self.world();
            let id = w.next_id();
            let at = w.project_index(project).expect("project");
            let iid = w.projects[at].issues.iter().map(|i| i.iid).max().unwrap_or(0) + 1;
            let issue = Issue {
                id,
                iid,
                title: new.title,
                state: "opened".into(),
                issue_type: new.issue_type.unwrap_or_else(|| "issue".into()),
                assignees: new.assignees,
                author_id,
                milestone: new.milestone,
                ..Issue::default()
            };
            w.projects[at].issues.push(issue);
            iid
        };
        let labels = new.labels;
        let answers = self
            .change_issue(project, iid, "open", author_id, |i, now, ev| {
                i.created_at = now;
                i.set_labels(labels, author_id, now, ev);
            })
            .await;
        (iid, answers)
    }

    /// `user_id` closes an issue (a `closed` state event). Returns the hook answers.
    pub async fn close_issue(&self, project: &str, iid: i64, user_id: i64) -> Vec<u16> {
        self.change_issue(project, iid, "close", user_id, |i, now, ev| {
            assert_eq!(i.state, "opened", "only an open issue can be closed");
            i.state = "closed".into();
            i.closed_at = Some(now);
            i.state_events.push((ev, user_id, now, "closed".into()));
        })
        .await
    }

    /// `user_id` reopens an issue (a `reopened` state event). Returns the hook answers.
    pub async fn reopen_issue(&self, project: &str, iid: i64, user_id: i64) -> Vec<u16> {
        self.change_issue(project, iid, "reopen", user_id, |i, now, ev| {
            assert_eq!(i.state, "closed", "only a closed issue can be reopened");
            i.state = "opened".into();
            i.closed_at = None;
            i.state_events.push((ev, user_id, now, "reopened".into()));
        })
        .await
    }

    /// `user_id` replaces an issue's labels. Returns the hook answers.
    pub async fn relabel_issue(&self, project: &str, iid: i64, user_id: i64, labels: &[&str]) -> Vec<u16> {
        let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        self.change_issue(project, iid, "update", user_id, |i, now, ev| i.set_labels(labels, user_id, now, ev)).await
    }

    /// An issue, as the world holds it.
    pub fn issue(&self, project: &str, iid: i64) -> Issue {
        let w = self.world();
        let at = w.project_index(project).expect("project");
        w.projects[at].issues.iter().find(|i| i.iid == iid).cloned().expect("issue")
    }
}

const LIST_PARAMS: [&str; 5] = ["order_by", "sort", "updated_after", "page", "per_page"];

/// `GET /projects/:id/issues`: `order_by` (`created_at` default, `updated_at`), `sort` (`desc` default,
/// `asc`), `updated_after` (ISO 8601, inclusive), offset pagination.
pub(super) async fn list_issues(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Q,
) -> Response {
    let mut w = world.lock().unwrap();
    let unknown: Vec<String> = q.keys().filter(|k| !LIST_PARAMS.contains(&k.as_str())).cloned().collect();
    if !unknown.is_empty() {
        w.unexpected.push(format!("GET /projects/{project}/issues with parameters {unknown:?}"));
    }
    let (_, at) = guarded!(w, headers, project, GUEST);
    let order_by = q.get("order_by").map(String::as_str).unwrap_or("created_at");
    if !["created_at", "updated_at"].contains(&order_by) {
        return message(StatusCode::BAD_REQUEST, "order_by does not have a valid value");
    }
    let sort = q.get("sort").map(String::as_str).unwrap_or("desc");
    if !["asc", "desc"].contains(&sort) {
        return message(StatusCode::BAD_REQUEST, "sort does not have a valid value");
    }
    let after = match q.get("updated_after").map(|s| chrono::DateTime::parse_from_rfc3339(s)) {
        None => None,
        Some(Ok(t)) => Some(t.timestamp_millis()),
        Some(Err(_)) => return message(StatusCode::BAD_REQUEST, "updated_after is invalid"),
    };
    let p = &w.projects[at];
    let mut issues: Vec<&Issue> = p.issues.iter().filter(|i| after.is_none_or(|a| i.updated_at >= a)).collect();
    issues.sort_by_key(|i| (if order_by == "updated_at" { i.updated_at } else { i.created_at }, i.id));
    if sort == "desc" {
        issues.reverse();
    }
    let all = issues.into_iter().map(|i| issue_json(&w, p, i)).collect();
    paginated(&format!("/api/v4/projects/{project}/issues"), all, &q)
}

/// `GET /projects/:id/issues/:iid/resource_label_events`, oldest first.
pub(super) async fn list_label_events(
    world: State<Shared>,
    headers: HeaderMap,
    path: Path<(String, i64)>,
    q: Q,
) -> Response {
    resource_events(world, headers, path, q, "resource_label_events", |w, i| {
        let rows = i.label_events.iter().map(|(id, user, at, label, action)| {
            // A stable id per label name (the double keeps no label list).
            let l = label.bytes().fold(7i64, |h, b| (h * 31 + i64::from(b)) % 1_000_000);
            json!({ "id": id, "user": user_by_id(w, *user), "created_at": iso(*at), "resource_type": "Issue",
                    "resource_id": i.id, "label": { "id": l, "name": label, "color": "#6699cc", "description": null },
                    "action": action })
        });
        rows.collect()
    })
}

/// `GET /projects/:id/issues/:iid/resource_state_events`, oldest first.
pub(super) async fn list_state_events(
    world: State<Shared>,
    headers: HeaderMap,
    path: Path<(String, i64)>,
    q: Q,
) -> Response {
    resource_events(world, headers, path, q, "resource_state_events", |w, i| {
        let rows = i.state_events.iter().map(|(id, user, at, state)| {
            json!({ "id": id, "user": user_by_id(w, *user), "created_at": iso(*at), "resource_type": "Issue",
                    "resource_id": i.id, "state": state })
        });
        rows.collect()
    })
}

/// An issue's events of one kind (`resource_state_events`, …), rendered by `rows`, paginated.
fn resource_events(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, iid)): Path<(String, i64)>,
    Query(q): Q,
    kind: &str,
    rows: impl FnOnce(&World, &Issue) -> Vec<Value>,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, GUEST);
    let Some(i) = w.projects[at].issues.iter().find(|i| i.iid == iid) else {
        return message(StatusCode::NOT_FOUND, "404 Issue Not Found");
    };
    let all = rows(&w, i);
    paginated(&format!("/api/v4/projects/{project}/issues/{iid}/{kind}"), all, &q)
}

/// `GET /projects/:id/milestones/:milestone_id`.
pub(super) async fn show_milestone(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, i64)>,
) -> Response {
    let w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, GUEST);
    let p = &w.projects[at];
    match p.milestones.iter().find(|m| m.id == id) {
        Some(m) => Json(milestone_json(p, m)).into_response(),
        None => message(StatusCode::NOT_FOUND, "404 Milestone Not Found"),
    }
}
