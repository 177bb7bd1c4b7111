//! Issues, their milestones, state and label events (`GET /projects/:id/issues`, `…/milestones/:id`,
//! `…/issues/:iid/resource_state_events`, `…/resource_label_events`), and the types of those answers.
//! Only HTTP calls and shapes; what an issue means as a work item is `crate::workitems::gitlab`'s.
//!
//! Field names follow GitLab's Issues, Milestones, Resource state events and Resource label events API
//! documentation. In REST answers `labels` are plain names (webhooks send objects); times are ISO 8601
//! (`2024-03-01T10:00:00.000Z`).

use serde::{Deserialize, Serialize};

use super::{encode, GitLabClient, GitLabError, ProjectId};

/// Largest `per_page` GitLab accepts.
pub const MAX_PER_PAGE: u32 = 100;

/// One page of `GET /projects/:id/issues`, ordered by `updated_at` ascending.
#[derive(Debug, Clone, Default)]
pub struct IssueQuery {
    /// Only issues updated on or after this ISO 8601 time (`updated_after`; GitLab's bound is inclusive).
    pub updated_after: Option<String>,
    /// Page, from 1.
    pub page: u32,
    /// Page size (1..=100).
    pub per_page: u32,
}

/// One page of a list, and the next page's number from `X-Next-Page` (`None` on the last page).
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The next page, when there is one.
    pub next_page: Option<u32>,
}

/// A user as GitLab embeds one in issues and events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct UserBrief {
    /// Id.
    #[serde(default)]
    pub id: Option<i64>,
    /// Login.
    pub username: String,
}

/// A milestone (project or group), as embedded in an issue or shown by `GET …/milestones/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Milestone {
    /// Global id (what issues' `milestone_id` names).
    pub id: i64,
    /// Per-project (or per-group) number.
    #[serde(default)]
    pub iid: Option<i64>,
    /// Title, e.g. `v1.1.0`.
    pub title: String,
    /// `active` or `closed`.
    #[serde(default)]
    pub state: Option<String>,
    /// Last changed.
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// An issue as `GET /projects/:id/issues` lists it (the fields Tao reads).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Issue {
    /// Global id.
    pub id: i64,
    /// Per-project number (`#iid`).
    pub iid: i64,
    /// Project id.
    pub project_id: i64,
    /// Title.
    pub title: String,
    /// `opened` or `closed`.
    pub state: String,
    /// Label names.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The milestone it is planned in.
    #[serde(default)]
    pub milestone: Option<Milestone>,
    /// Assignees.
    #[serde(default)]
    pub assignees: Vec<UserBrief>,
    /// Author.
    #[serde(default)]
    pub author: Option<UserBrief>,
    /// `issue`, `incident`, `test_case` or `task`.
    #[serde(default)]
    pub issue_type: Option<String>,
    /// `ISSUE`, `INCIDENT`, `TEST_CASE` or `TASK` (newer spelling of `issue_type`).
    #[serde(default, rename = "type")]
    pub work_item_type: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// Closed (`null` while open).
    #[serde(default)]
    pub closed_at: Option<String>,
}

/// A state change of an issue (`resource_state_events`). GitLab does not record the initial `opened`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ResourceStateEvent {
    /// Id.
    pub id: i64,
    /// Who changed it (`null` for changes GitLab made, e.g. when the user is gone).
    #[serde(default)]
    pub user: Option<UserBrief>,
    /// When.
    pub created_at: String,
    /// `closed`, `reopened` (or `opened`).
    pub state: String,
}

/// A label added to or removed from an issue (`GET …/issues/:iid/resource_label_events`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct ResourceLabelEvent {
    /// Id.
    pub id: i64,
    /// Who changed it.
    #[serde(default)]
    pub user: Option<UserBrief>,
    /// When.
    pub created_at: String,
    /// The label (`null` when it was deleted since).
    #[serde(default)]
    pub label: Option<LabelBrief>,
    /// `add` or `remove`.
    pub action: String,
}

/// A label as label events show it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct LabelBrief {
    /// Id.
    #[serde(default)]
    pub id: Option<i64>,
    /// Name, e.g. `workflow::doing`.
    pub name: String,
}

impl GitLabClient {
    /// One page of a project's issues, least recently updated first.
    pub async fn project_issues(&self, project: &ProjectId, query: &IssueQuery) -> Result<Page<Issue>, GitLabError> {
        let mut path = format!(
            "/projects/{}/issues?order_by=updated_at&sort=asc&per_page={}&page={}",
            project.segment(),
            query.per_page.clamp(1, MAX_PER_PAGE),
            query.page.max(1)
        );
        if let Some(after) = &query.updated_after {
            path.push_str(&format!("&updated_after={}", encode(after)));
        }
        self.get_page("list project issues", &path).await
    }

    /// Every state event of an issue (all pages), oldest first.
    pub async fn issue_state_events(
        &self,
        project: &ProjectId,
        iid: i64,
    ) -> Result<Vec<ResourceStateEvent>, GitLabError> {
        let path = format!("/projects/{}/issues/{iid}/resource_state_events", project.segment());
        self.get_all("list issue state events", &path).await
    }

    /// Every label event of an issue (all pages), oldest first.
    pub async fn issue_label_events(
        &self,
        project: &ProjectId,
        iid: i64,
    ) -> Result<Vec<ResourceLabelEvent>, GitLabError> {
        let path = format!("/projects/{}/issues/{iid}/resource_label_events", project.segment());
        self.get_all("list issue label events", &path).await
    }

    /// One project milestone.
    pub async fn milestone(&self, project: &ProjectId, id: i64) -> Result<Milestone, GitLabError> {
        self.get_json("get milestone", &format!("/projects/{}/milestones/{id}", project.segment())).await
    }
}
