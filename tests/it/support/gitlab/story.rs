//! What developers do in the double, with the webhooks GitLab sends for it: branch from another branch,
//! push to an MR's source (`Merge Request Hook`, action `update`), start an MR pipeline (`Pipeline
//! Hook`), push to a branch (`Push Hook`), create a tag (`Tag Push Hook`), merge an MR (semi-linear: a
//! merge commit on the target, the source branch removed, `Push Hook` + `Merge Request Hook` `merge`).
//! Payloads are the fixtures with the world's values.

use serde_json::{json, Value};

use super::merge_request::mr_hook;
use super::world::{self, now, user_by_id, Commit, Project, Tag, World};
use super::{sha_of, webhook_fixture, GitLabDouble};

const ZERO: &str = "0000000000000000000000000000000000000000";

fn project_block(p: &Project) -> Value {
    json!({
        "id": p.id, "name": p.path.rsplit('/').next().unwrap_or(&p.path), "path_with_namespace": p.path,
        "namespace": p.path.rsplit_once('/').map(|(n, _)| n).unwrap_or(""), "default_branch": "main",
        "web_url": format!("https://gitlab.example.com/{}", p.path), "visibility_level": 0,
        "git_http_url": format!("https://gitlab.example.com/{}.git", p.path),
        "git_ssh_url": format!("git@gitlab.example.com:{}.git", p.path),
    })
}

/// A `Push Hook` / `Tag Push Hook` body (push.json / tag_push.json with the world's values).
fn push_payload(w: &World, p: &Project, git_ref: &str, before: &str, after: &str, user_id: i64) -> Value {
    let tag = git_ref.starts_with("refs/tags/");
    let mut v: Value =
        serde_json::from_slice(&webhook_fixture(if tag { "tag_push.json" } else { "push.json" })).unwrap();
    let user = w.user(user_id).expect("user");
    let commits: Vec<Value> = if after == ZERO {
        Vec::new()
    } else {
        p.history(after)
            .into_iter()
            .take_while(|c| c.id != before)
            .take(20)
            .map(|c| json!({ "id": c.id, "message": format!("{}\n", c.title), "title": c.title,
                             "timestamp": world::now(), "url": format!("https://gitlab.example.com/{}/-/commit/{}", p.path, c.id),
                             "author": { "name": user.username, "email": format!("{}@example.com", user.username) },
                             "added": [], "modified": [], "removed": [] }))
            .collect()
    };
    for (k, val) in [
        ("ref", json!(git_ref)),
        ("before", json!(before)),
        ("after", json!(after)),
        ("checkout_sha", if after == ZERO { Value::Null } else { json!(after) }),
        ("user_id", json!(user.id)),
        ("user_username", json!(user.username)),
        ("user_name", json!(user.username)),
        ("project_id", json!(p.id)),
        ("project", project_block(p)),
        ("total_commits_count", json!(commits.len())),
        ("commits", json!(commits)),
    ] {
        v[k] = val;
    }
    v
}

impl GitLabDouble {
    fn at(&self, project: &str) -> usize {
        self.world().project_index(project).unwrap_or_else(|| panic!("no project {project} in the double"))
    }

    /// Creates `name` at `from`'s head (no webhook: nothing was pushed). Returns the head.
    pub fn branch_from(&self, project: &str, name: &str, from: &str) -> String {
        let at = self.at(project);
        let mut w = self.world();
        let p = &mut w.projects[at];
        let head = p.branch_head(from).expect("source branch").to_string();
        p.branches.retain(|(b, _)| b != name);
        p.branches.push((name.into(), head.clone()));
        head
    }

    /// Puts `branch` on top of `onto`'s head again (a rebase: one new commit whose parent is `onto`'s
    /// head). No webhook. Returns the new head.
    pub fn rebase(&self, project: &str, branch: &str, onto: &str, title: &str) -> String {
        let at = self.at(project);
        let mut w = self.world();
        let id = w.next_id();
        let p = &mut w.projects[at];
        let parent = p.branch_head(onto).expect("onto").to_string();
        let sha = sha_of(id, title);
        p.commits.push(Commit { id: sha.clone(), parent: Some(parent), title: title.into(), at: now() });
        p.branches.retain(|(b, _)| b != branch);
        p.branches.push((branch.into(), sha.clone()));
        sha
    }

    /// The `Merge Request Hook` GitLab sends after a push to the MR's source (action `update`).
    pub fn mr_update_payload(&self, project: &str, iid: i64, oldrev: &str) -> Value {
        let at = self.at(project);
        let w = self.world();
        let p = &w.projects[at];
        let mr = p.merge_requests.iter().find(|m| m.iid == iid).expect("merge request");
        let mut v = mr_hook(&w, p, mr, "update");
        v["object_attributes"]["oldrev"] = json!(oldrev);
        v
    }

    /// Sends a webhook body to the hooks of `project` subscribed to `events_field`, with a fresh
    /// delivery id (a new event). Returns the answers.
    pub async fn send_event(&self, project: &str, events_field: &str, event: &str, body: &Value) -> Vec<u16> {
        self.notify(project, events_field, event, body).await
    }

    /// A new pipeline on MR `iid`'s head becomes its head pipeline; GitLab sends the `Pipeline Hook`.
    /// Returns the pipeline id.
    pub async fn start_mr_pipeline(&self, project: &str, iid: i64) -> i64 {
        let at = self.at(project);
        let (id, body) = {
            let mut w = self.world();
            let id = w.next_id();
            let p = &mut w.projects[at];
            let mr = p.merge_requests.iter().find(|m| m.iid == iid).expect("merge request").clone();
            let sha = p.mr_head(&mr);
            let pl = world::Pipeline {
                id,
                iid: p.pipelines.len() as i64 + 1,
                git_ref: mr.source_branch.clone(),
                sha: sha.clone(),
                status: "pending".into(),
                source: "merge_request_event".into(),
                variables: Vec::new(),
            };
            p.pipelines.push(pl);
            p.merge_requests.iter_mut().find(|m| m.iid == iid).unwrap().head_pipeline = Some(id);
            let p = &w.projects[at];
            let mut v: Value = serde_json::from_slice(&webhook_fixture("pipeline.json")).unwrap();
            let oa = &mut v["object_attributes"];
            for (k, val) in [
                ("id", json!(id)),
                ("ref", json!(mr.source_branch)),
                ("tag", json!(false)),
                ("sha", json!(sha)),
                ("status", json!("pending")),
                ("source", json!("merge_request_event")),
            ] {
                oa[k] = val;
            }
            v["project"] = project_block(p);
            v["user"] = user_by_id(&w, mr.author_id);
            v["merge_request"] = json!({
                "id": mr.id, "iid": mr.iid, "title": mr.title, "source_branch": mr.source_branch,
                "source_project_id": p.id, "target_branch": mr.target_branch, "target_project_id": p.id,
                "state": mr.state, "url": format!("https://gitlab.example.com/{}/-/merge_requests/{}", p.path, mr.iid),
            });
            (id, v)
        };
        self.notify(project, "pipeline_events", "Pipeline Hook", &body).await;
        id
    }

    /// The `Push Hook` for a push of `branch` from `before` to its current head by `user_id`.
    pub fn push_payload(&self, project: &str, branch: &str, before: &str, user_id: i64) -> Value {
        let at = self.at(project);
        let w = self.world();
        let p = &w.projects[at];
        let after = p.branch_head(branch).unwrap_or(ZERO).to_string();
        push_payload(&w, p, &format!("refs/heads/{branch}"), before, &after, user_id)
    }

    /// `user_id` creates tag `name` at `git_ref`; GitLab sends the `Tag Push Hook`.
    pub async fn tag_and_notify(&self, project: &str, name: &str, git_ref: &str, user_id: i64) -> Vec<u16> {
        let at = self.at(project);
        let body = {
            let mut w = self.world();
            let p = &mut w.projects[at];
            let sha = p.resolve(git_ref).expect("ref");
            p.tags.push(Tag { name: name.into(), commit: sha.clone(), message: None });
            let p = &w.projects[at];
            push_payload(&w, p, &format!("refs/tags/{name}"), ZERO, &sha, user_id)
        };
        self.notify(project, "tag_push_events", "Tag Push Hook", &body).await
    }

    /// The `Tag Push Hook` body of existing tag `name` (to deliver it again, as a resend or a test hook).
    pub fn tag_payload(&self, project: &str, name: &str, user_id: i64) -> Value {
        let at = self.at(project);
        let w = self.world();
        let p = &w.projects[at];
        let sha = p.tags.iter().find(|t| t.name == name).expect("tag").commit.clone();
        push_payload(&w, p, &format!("refs/tags/{name}"), ZERO, &sha, user_id)
    }

    /// `user_id` merges MR `iid` semi-linearly: a merge commit on the target whose parent is the
    /// source's head, the source branch removed; GitLab sends the target's `Push Hook` and the
    /// `Merge Request Hook` (action `merge`). Returns the merge commit.
    pub async fn merge(&self, project: &str, iid: i64, user_id: i64) -> String {
        let at = self.at(project);
        let (sha, push, hook) = {
            let mut w = self.world();
            let id = w.next_id();
            let p = &mut w.projects[at];
            let mr = p.merge_requests.iter().find(|m| m.iid == iid).expect("merge request").clone();
            let head = p.mr_head(&mr);
            let before = p.branch_head(&mr.target_branch).expect("target").to_string();
            let title = format!("Merge branch '{}' into '{}'", mr.source_branch, mr.target_branch);
            let sha = sha_of(id, &title);
            p.commits.push(Commit { id: sha.clone(), parent: Some(head.clone()), title, at: now() });
            p.branches.retain(|(b, _)| *b != mr.target_branch && *b != mr.source_branch);
            p.branches.push((mr.target_branch.clone(), sha.clone()));
            let m = p.merge_requests.iter_mut().find(|m| m.iid == iid).unwrap();
            m.state = "merged".into();
            m.merge_commit_sha = Some(sha.clone());
            m.head_sha = Some(head);
            let merged = m.clone();
            let p = &w.projects[at];
            let push = push_payload(&w, p, &format!("refs/heads/{}", merged.target_branch), &before, &sha, user_id);
            (sha, push, mr_hook(&w, p, &merged, "merge"))
        };
        self.notify(project, "push_events", "Push Hook", &push).await;
        self.notify(project, "merge_requests_events", "Merge Request Hook", &hook).await;
        sha
    }
}
