//! The GitLab issue backfill (`tao sync gitlab-issues`, and the server's schedule): per project of the
//! catalog, the issues updated since the stored cursor, each with its state events, into the store.
//!
//! # Order and cursor
//!
//! Per project, `GET /projects/:id/issues?order_by=updated_at&sort=asc&updated_after=CURSOR`, page by
//! page (`X-Next-Page`). The cursor (`work_sync_cursor`: source `gitlab`, workspace the project path, kind
//! `issue`) is the newest `updated_at` seen by the last run that finished every page; it is stored only
//! then, so a failed run is repeated from the old cursor (every write is idempotent). GitLab's
//! `updated_after` includes its bound, so the issue at the cursor is fetched again rather than missed.
//!
//! Known limit, the same as TAPD's: offset paging over a moving set. An issue updated *during* a run
//! moves to the end of the order, shifting later ones a place up, so the issue that shifts onto a page
//! already read is skipped by this run and fetched again only at its next change (its `updated_at` is
//! behind the stored cursor). `--full` forgets the cursor and reads everything again.
//!
//! # History
//!
//! For every issue fetched: `opened` at its creation (GitLab's state events never record it), then each
//! state event (`closed`; `reopened` recorded as `opened`), then the current state at `updated_at` when it
//! differs from the last (a workflow label's value): so states an issue passed through between two syncs
//! are kept. Label changes between syncs (workflow states) are seen by webhooks only.

use crate::catalog::Catalog;
use crate::gitlab::client::{GitLabClient, GitLabError, Issue, IssueQuery, ProjectId, ResourceStateEvent};
use crate::metrics::events::gitlab_time;
use crate::store::{self, rfc3339, Pool, StoreError};

use super::gitlab::{bug_versions, iteration, record, work_item, IssueError, IssueFacts, IssueRules};
use super::{StateChange, WorkItem, SOURCE_GITLAB};

/// The cursor kind of issues.
pub const CURSOR_KIND: &str = "issue";

/// A failed backfill of one project.
#[derive(Debug, thiserror::Error)]
pub enum GitLabSyncError {
    /// GitLab refused or failed.
    #[error("project {project}: {source}")]
    GitLab {
        /// Project path.
        project: String,
        /// What GitLab said.
        source: GitLabError,
    },
    /// An issue GitLab listed cannot be read.
    #[error("project {project}: {source}")]
    Issue {
        /// Project path.
        project: String,
        /// What was wrong.
        source: IssueError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one project's backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProjectReport {
    /// Project path.
    pub project: String,
    /// The iids of the issues fetched, in order.
    pub issues: Vec<i64>,
    /// Pages read.
    pub pages: u32,
    /// States newly recorded.
    pub states_added: u64,
}

/// The GitLab projects of the catalog's components, sorted, each once.
pub fn projects(catalog: &Catalog) -> Vec<String> {
    let mut out: Vec<String> =
        catalog.components.values().filter_map(|c| c.project.as_ref()).map(|p| p.as_str().to_string()).collect();
    out.sort();
    out.dedup();
    out
}

/// Backfills every project of `projects`, one after the other; stops at the first failure.
pub async fn sync_all(
    pool: &Pool,
    client: &GitLabClient,
    catalog: &Catalog,
    rules: &IssueRules,
    projects: &[String],
    per_page: u32,
) -> Result<Vec<ProjectReport>, GitLabSyncError> {
    let mut reports = Vec::new();
    for project in projects {
        reports.push(sync_project(pool, client, catalog, rules, project, per_page).await?);
    }
    Ok(reports)
}

/// Backfills one project's issues since its cursor.
pub async fn sync_project(
    pool: &Pool,
    client: &GitLabClient,
    catalog: &Catalog,
    rules: &IssueRules,
    project: &str,
    per_page: u32,
) -> Result<ProjectReport, GitLabSyncError> {
    let gl = |source| GitLabSyncError::GitLab { project: project.to_string(), source };
    let bad = |source| GitLabSyncError::Issue { project: project.to_string(), source };
    let id = ProjectId::Path(project.to_string());
    let since = store::workitem::cursor(pool, SOURCE_GITLAB, project, CURSOR_KIND).await?;
    let mut newest = since.as_deref().and_then(gitlab_time);
    let mut report = ProjectReport { project: project.to_string(), ..Default::default() };
    let mut page = 1;
    loop {
        let q = IssueQuery { updated_after: since.clone(), page, per_page };
        let got = client.project_issues(&id, &q).await.map_err(gl)?;
        report.pages += 1;
        for issue in &got.items {
            let facts = IssueFacts::from_rest(issue, project).map_err(bad)?;
            if let Some(m) = &issue.milestone {
                let at = m.updated_at.as_deref().and_then(gitlab_time).unwrap_or(facts.updated_at);
                let state = m.state.as_deref().unwrap_or("active");
                store::workitem::upsert_iteration(pool, &iteration(catalog, project, m.id, &m.title, state, at))
                    .await?;
            }
            let item = work_item(&facts, catalog, rules, None);
            let events = client.issue_state_events(&id, issue.iid).await.map_err(gl)?;
            let states = history(issue, &item, &events).map_err(bad)?;
            let bug = bug_versions(&facts, catalog, &item);
            report.states_added += record(pool, &item, bug, &states).await?;
            newest = newest.max(Some(facts.updated_at));
            report.issues.push(issue.iid);
        }
        match got.next_page {
            Some(next) if next > page => page = next,
            _ => break,
        }
    }
    if let Some(n) = newest.map(rfc3339).filter(|n| Some(n) != since.as_ref()) {
        store::workitem::set_cursor(pool, SOURCE_GITLAB, project, CURSOR_KIND, &n).await?;
    }
    tracing::info!(
        project,
        issues = report.issues.len(),
        pages = report.pages,
        states_added = report.states_added,
        "GitLab issue sync done"
    );
    Ok(report)
}

/// The states of an issue from its creation, state events and current state (see the module header).
pub fn history(issue: &Issue, item: &WorkItem, events: &[ResourceStateEvent]) -> Result<Vec<StateChange>, IssueError> {
    let author = issue.author.as_ref().map(|a| a.username.clone());
    let mut states = vec![StateChange { state: "opened".into(), at: item.created_at, author }];
    let mut sorted: Vec<&ResourceStateEvent> = events.iter().collect();
    sorted.sort_by_key(|e| (gitlab_time(&e.created_at), e.id));
    for e in sorted {
        let state = match e.state.as_str() {
            "closed" => "closed",
            "reopened" | "opened" => "opened",
            _ => continue,
        };
        let at = gitlab_time(&e.created_at).ok_or_else(|| IssueError {
            field: "resource_state_events[].created_at",
            expected: "an ISO 8601 time",
            found: format!("{:?}", e.created_at),
        })?;
        states.push(StateChange { state: state.into(), at, author: e.user.as_ref().map(|u| u.username.clone()) });
    }
    if states.last().is_some_and(|s| s.state != item.state) {
        states.push(StateChange { state: item.state.clone(), at: item.modified_at, author: None });
    }
    Ok(states)
}
