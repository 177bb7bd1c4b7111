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
//! For every issue fetched, its states replayed from its events: at its creation `opened` (GitLab's state
//! events never record it), or the workflow label it was created with; then each state event (`closed`;
//! `reopened` back to open) and each added or removed workflow label (`resource_label_events`, read when a
//! workflow scope is configured) that changes the state; then the current state at `updated_at` when it
//! still differs from the last. So the states an issue passed through between two syncs are kept, the
//! workflow ones included.

use crate::catalog::Catalog;
use crate::gitlab::client::{
    GitLabClient, GitLabError, Issue, IssueQuery, ProjectId, ResourceLabelEvent, ResourceStateEvent,
};
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
            let label_events = match rules.workflow_scope {
                Some(_) => client.issue_label_events(&id, issue.iid).await.map_err(gl)?,
                None => Vec::new(),
            };
            let states = history(issue, &item, &events, &label_events, rules).map_err(bad)?;
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

/// Label events within this long after an issue's creation are the labels it was created with (GitLab
/// records them as events a moment after the issue itself).
const CREATED_WITH: i64 = 1_000;

/// The states of an issue from its creation, state and label events and current state (see the module
/// header).
pub fn history(
    issue: &Issue,
    item: &WorkItem,
    events: &[ResourceStateEvent],
    label_events: &[ResourceLabelEvent],
    rules: &IssueRules,
) -> Result<Vec<StateChange>, IssueError> {
    let time = |field: &'static str, at: &str| {
        gitlab_time(at).ok_or_else(|| IssueError { field, expected: "an ISO 8601 time", found: format!("{at:?}") })
    };
    // (time, id, change, who): state events and workflow-label events, in order.
    enum Change {
        Open(bool),
        Label(String, bool),
    }
    let mut changes: Vec<(i64, i64, Change, Option<String>)> = Vec::new();
    for e in events {
        let open = match e.state.as_str() {
            "closed" => false,
            "reopened" | "opened" => true,
            _ => continue,
        };
        let at = time("resource_state_events[].created_at", &e.created_at)?;
        changes.push((at, e.id, Change::Open(open), e.user.as_ref().map(|u| u.username.clone())));
    }
    for e in label_events {
        let Some(label) = e.label.as_ref().filter(|l| workflow_value(rules, &l.name).is_some()) else { continue };
        let at = time("resource_label_events[].created_at", &e.created_at)?;
        let change = Change::Label(label.name.clone(), e.action == "add");
        changes.push((at, e.id, change, e.user.as_ref().map(|u| u.username.clone())));
    }
    changes.sort_by_key(|(at, id, _, _)| (*at, *id));
    let (mut open, mut labels) = (true, Vec::<String>::new());
    let state = |open: bool, labels: &[String]| match open {
        false => "closed".to_string(),
        true => labels.iter().find_map(|l| workflow_value(rules, l)).unwrap_or_else(|| "opened".into()),
    };
    let author = issue.author.as_ref().map(|a| a.username.clone());
    let mut rest = changes.into_iter().peekable();
    let created_with = |c: &(i64, i64, Change, Option<String>)| {
        c.0 <= item.created_at + CREATED_WITH && matches!(c.2, Change::Label(..))
    };
    while let Some((_, _, Change::Label(name, added), _)) = rest.next_if(created_with) {
        labels.retain(|l| *l != name);
        if added {
            labels.push(name);
        }
    }
    let mut states = vec![StateChange { state: state(open, &labels), at: item.created_at, author }];
    // Changes made at one time (a relabel removes one workflow label and adds another) are one step.
    while let Some((at, _, change, who)) = rest.next() {
        let mut step = vec![change];
        while let Some((_, _, more, _)) = rest.next_if(|c| c.0 == at) {
            step.push(more);
        }
        for change in step {
            match change {
                Change::Open(o) => open = o,
                Change::Label(name, added) => {
                    labels.retain(|l| *l != name);
                    if added {
                        labels.push(name);
                    }
                }
            }
        }
        let now = state(open, &labels);
        if states.last().is_none_or(|s| s.state != now) {
            states.push(StateChange { state: now, at, author: who });
        }
    }
    if states.last().is_some_and(|s| s.state != item.state) {
        states.push(StateChange { state: item.state.clone(), at: item.modified_at, author: None });
    }
    Ok(states)
}

/// The workflow state a label names (`workflow::doing` → `doing`), when it is one.
fn workflow_value(rules: &IssueRules, label: &str) -> Option<String> {
    let scope = rules.workflow_scope.as_deref()?;
    let (s, value) = label.rsplit_once("::")?;
    (s.trim().eq_ignore_ascii_case(scope) && !value.trim().is_empty()).then(|| value.trim().to_string())
}
