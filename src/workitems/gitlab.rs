//! GitLab issues as work items: the mapping of an issue (a webhook's `object_kind: issue` payload or a
//! REST `GET /projects/:id/issues` item, both read into [`IssueFacts`]) to a [`WorkItem`], and the
//! recording of its state history. Pure except [`record`], which writes the store. The backfill through
//! the API is [`super::gitlab_sync`]'s; the webhook handler is `crate::workitems::issue_events`'.
//!
//! # Mapping
//!
//! - `source` `gitlab`; `id` the issue's global id; `workspace` the project path; `short_id` the `iid`.
//! - kind: **bug** when a label is one of [`IssueRules::bug_labels`] (default `bug`, case-insensitive) or
//!   the issue type is `incident`; **task** for issue type `task`; else **story**.
//! - state: `closed` when closed. While open: the value of the scoped workflow label when the issue has
//!   one (`workflow::doing` → `doing`; the scope is [`IssueRules::workflow_scope`], default `workflow`,
//!   `off` to ignore such labels), else `opened`. So a board driven by scoped labels shows in the state
//!   history; GitLab's own `opened`/`closed` is what is left when it is not.
//! - owner: the assignees' usernames joined with `;` (`alice;bob`), like TAPD's owner lists.
//! - product: the products holding a component whose `project` is the issue's project — only when there
//!   is exactly one (a project shared by two products says nothing about which one an issue is for).
//! - iteration: the milestone's id; version: the milestone's title read as a version of that product with
//!   the product's `tapd.iteration_name` pattern when it has one, else `{version}` (a leading `v` is
//!   accepted: milestone `v1.1.0` is version `1.1.0`), the same rule as TAPD iterations.
//! - times: `created_at`, `updated_at`, and `closed_at` as completion while closed.
//!
//! # History
//!
//! A webhook reports the issue's state at its `updated_at`; the backfill reads GitLab's state events
//! (which never include the initial `opened`, so it is added at `created_at`; `reopened` is recorded as
//! the state the issue then had, `opened`). [`record`] keeps transitions only: a state equal to the one
//! recorded just before it is not added again (an edit of the title sends a webhook too), and the store
//! adds a (time, state) pair at most once, so redeliveries and re-syncs add nothing.

use crate::catalog::Catalog;
use crate::gitlab::client::Issue;
use crate::gitlab::events::IssueEvent;
use crate::metrics::events::gitlab_time;
use crate::store::{self, Pool, StoreError};

use super::{Iteration, Kind, StateChange, WorkItem, SOURCE_GITLAB};

pub use crate::config::issue_rules::{IssueRules, RuleError, DEFAULT_BUG_LABELS, DEFAULT_WORKFLOW_SCOPE};

/// What Tao reads of an issue, from a webhook or from the REST API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueFacts {
    /// Global id.
    pub id: i64,
    /// Per-project number.
    pub iid: i64,
    /// Project path.
    pub project: String,
    /// Title.
    pub title: String,
    /// Closed (else open).
    pub closed: bool,
    /// Label names.
    pub labels: Vec<String>,
    /// `issue`, `incident`, `task`, … in any case (`issue_type` or `type`).
    pub issue_type: Option<String>,
    /// Assignees' usernames.
    pub assignees: Vec<String>,
    /// Milestone id.
    pub milestone_id: Option<i64>,
    /// Milestone title, when the source gave it (REST does; webhooks do not).
    pub milestone_title: Option<String>,
    /// Created, epoch ms.
    pub created_at: i64,
    /// Last changed, epoch ms.
    pub updated_at: i64,
    /// Closed, epoch ms.
    pub closed_at: Option<i64>,
}

/// An issue that cannot be read as a work item: which field is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GitLab issue: {field}: expected {expected}, found {found}")]
pub struct IssueError {
    /// The field, e.g. `object_attributes.iid`.
    pub field: &'static str,
    /// What it should be.
    pub expected: &'static str,
    /// What it was.
    pub found: String,
}

fn time(field: &'static str, value: Option<&str>) -> Result<i64, IssueError> {
    value.and_then(gitlab_time).ok_or_else(|| IssueError {
        field,
        expected: "a time like 2024-03-01T10:00:00Z or 2024-03-01 10:00:00 UTC",
        found: value.map_or("nothing".into(), |v| format!("{v:?}")),
    })
}

fn required<T>(field: &'static str, value: Option<T>) -> Result<T, IssueError> {
    value.ok_or(IssueError { field, expected: "a value", found: "nothing".into() })
}

impl IssueFacts {
    /// Reads an `Issue Hook` payload.
    pub fn from_webhook(e: &IssueEvent) -> Result<IssueFacts, IssueError> {
        let a = &e.object_attributes;
        let project = e.project.as_ref().and_then(|p| p.path_with_namespace.clone());
        let labels = if e.labels.is_empty() { &a.labels } else { &e.labels };
        Ok(IssueFacts {
            id: required("object_attributes.id", a.id)?,
            iid: required("object_attributes.iid", a.iid)?,
            project: required("project.path_with_namespace", project)?,
            title: a.title.clone().unwrap_or_default(),
            closed: a.state.as_deref() == Some("closed"),
            labels: labels.iter().map(|l| l.title.clone()).filter(|t| !t.is_empty()).collect(),
            issue_type: a.issue_type.clone().or_else(|| a.work_item_type.clone()),
            assignees: e.assignees.iter().filter_map(|u| u.username.clone()).collect(),
            milestone_id: a.milestone_id,
            milestone_title: None,
            created_at: time("object_attributes.created_at", a.created_at.as_deref())?,
            updated_at: time("object_attributes.updated_at", a.updated_at.as_deref())?,
            closed_at: a.closed_at.as_deref().and_then(gitlab_time),
        })
    }

    /// Reads a REST issue of `project`.
    pub fn from_rest(i: &Issue, project: &str) -> Result<IssueFacts, IssueError> {
        Ok(IssueFacts {
            id: i.id,
            iid: i.iid,
            project: project.to_string(),
            title: i.title.clone(),
            closed: i.state == "closed",
            labels: i.labels.clone(),
            issue_type: i.issue_type.clone().or_else(|| i.work_item_type.clone()),
            assignees: i.assignees.iter().map(|u| u.username.clone()).collect(),
            milestone_id: i.milestone.as_ref().map(|m| m.id),
            milestone_title: i.milestone.as_ref().map(|m| m.title.clone()),
            created_at: time("created_at", Some(&i.created_at))?,
            updated_at: time("updated_at", Some(&i.updated_at))?,
            closed_at: i.closed_at.as_deref().and_then(gitlab_time),
        })
    }
}

/// Story, bug or task (see the module header).
pub fn kind_of(f: &IssueFacts, rules: &IssueRules) -> Kind {
    let ty = f.issue_type.as_deref().unwrap_or("issue").to_ascii_lowercase();
    let bug_label = f.labels.iter().any(|l| rules.bug_labels.iter().any(|b| b.eq_ignore_ascii_case(l)));
    if bug_label || ty == "incident" {
        Kind::Bug
    } else if ty == "task" {
        Kind::Task
    } else {
        Kind::Story
    }
}

/// `closed`, the workflow label's value, or `opened` (see the module header).
pub fn state_of(f: &IssueFacts, rules: &IssueRules) -> String {
    if f.closed {
        return "closed".into();
    }
    let scoped = rules.workflow_scope.as_deref().and_then(|scope| {
        f.labels.iter().find_map(|l| {
            let (s, value) = l.rsplit_once("::")?;
            (s.trim().eq_ignore_ascii_case(scope) && !value.trim().is_empty()).then(|| value.trim().to_string())
        })
    });
    scoped.unwrap_or_else(|| "opened".into())
}

/// The one product with a component in `project`, when exactly one has.
pub fn product_of(catalog: &Catalog, project: &str) -> Option<String> {
    let mut found = catalog.products.iter().filter(|(_, p)| {
        p.components.iter().any(|c| {
            catalog.components.get(c).and_then(|c| c.project.as_ref()).is_some_and(|pp| pp.as_str() == project)
        })
    });
    let (name, _) = found.next()?;
    found.next().is_none().then(|| name.to_string())
}

/// The version a milestone title means for `product` (see the module header).
pub fn version_of(catalog: &Catalog, product: &str, milestone_title: &str) -> Option<String> {
    let p = catalog.products.iter().find(|(n, _)| n.as_str() == product)?.1;
    p.version_of_plan(milestone_title).map(|v| v.to_string())
}

/// The work item of an issue; `milestone_title` is the milestone's title when known (the facts' own, or
/// one looked up for a webhook).
pub fn work_item(f: &IssueFacts, catalog: &Catalog, rules: &IssueRules, milestone_title: Option<&str>) -> WorkItem {
    let product = product_of(catalog, &f.project);
    let title = milestone_title.or(f.milestone_title.as_deref());
    let version = product.as_deref().zip(title).and_then(|(p, t)| version_of(catalog, p, t));
    WorkItem {
        source: SOURCE_GITLAB.into(),
        id: f.id.to_string(),
        workspace: f.project.clone(),
        short_id: Some(f.iid.to_string()),
        kind: kind_of(f, rules),
        title: f.title.clone(),
        state: state_of(f, rules),
        owner: (!f.assignees.is_empty()).then(|| f.assignees.join(";")),
        iteration_id: f.milestone_id.map(|m| m.to_string()),
        product,
        version,
        created_at: f.created_at,
        modified_at: f.updated_at,
        completed_at: if f.closed { f.closed_at.or(Some(f.updated_at)) } else { None },
    }
}

/// A milestone as the iteration it plans (`version` for the product of `project`, when one).
pub fn iteration(catalog: &Catalog, project: &str, id: i64, title: &str, state: &str, modified_at: i64) -> Iteration {
    let version = product_of(catalog, project).and_then(|p| version_of(catalog, &p, title));
    Iteration {
        source: SOURCE_GITLAB.into(),
        id: id.to_string(),
        workspace: project.to_string(),
        name: title.to_string(),
        status: state.to_string(),
        version,
        modified_at,
    }
}

/// The product versions a bug issue was found in (a scoped label `found::1.1.0`, read like milestone
/// titles) and fixed in (its milestone's version, once closed); `None` for other kinds.
pub fn bug_versions(f: &IssueFacts, catalog: &Catalog, item: &WorkItem) -> Option<(Option<String>, Option<String>)> {
    if item.kind != Kind::Bug {
        return None;
    }
    let product = item.product.as_deref()?;
    let found = f.labels.iter().find_map(|l| {
        let (scope, value) = l.rsplit_once("::")?;
        scope.trim().eq_ignore_ascii_case("found").then(|| version_of(catalog, product, value.trim())).flatten()
    });
    let fixed = item.completed_at.and(item.version.clone());
    Some((found, fixed))
}

/// Stores `item` (with its `bug` versions, from [`bug_versions`]) unless the store holds a newer version
/// of it (a late webhook must not undo a sync), then records `states` as transitions (see the module
/// header). Returns how many states were new.
pub async fn record(
    pool: &Pool,
    item: &WorkItem,
    bug: Option<(Option<String>, Option<String>)>,
    states: &[StateChange],
) -> Result<u64, StoreError> {
    let stored = store::workitem::item(pool, &item.source, &item.id).await?;
    if stored.is_none_or(|s| s.modified_at <= item.modified_at) {
        store::workitem::upsert_item(pool, item).await?;
        if let Some((found, fixed)) = bug {
            store::workitem::set_bug_versions(pool, item, found.as_deref(), fixed.as_deref()).await?;
        }
    }
    let history = store::workitem::history(pool, &item.source, &item.id).await?;
    let new = transitions(&history, states);
    store::workitem::add_states(pool, &item.source, &item.id, &new).await
}

/// The candidates that are transitions relative to `history` and to each other, oldest first.
pub fn transitions(history: &[StateChange], candidates: &[StateChange]) -> Vec<StateChange> {
    let mut all: Vec<StateChange> = history.to_vec();
    let mut sorted = candidates.to_vec();
    sorted.sort_by_key(|s| s.at);
    let mut out = Vec::new();
    for c in sorted {
        if all.iter().any(|h| h.at == c.at && h.state == c.state) {
            continue;
        }
        let before = all.iter().filter(|h| h.at <= c.at).max_by_key(|h| h.at);
        if before.is_some_and(|b| b.state == c.state) {
            continue;
        }
        all.push(c.clone());
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitlab::events::GitLabEvent;

    fn catalog() -> Catalog {
        let yaml = "products:\n  monitor:\n    components: [api, shared]\n  \
                    other:\n    components: [web, shared]\n    tapd: { workspace_id: \"1\", iteration_name: \"Sprint {version}\" }\n\
                    components:\n  api: { project: monitor/api, image: r/api }\n  web: { project: other/web, image: r/web }\n  \
                    shared: { project: common/lib, image: r/lib }\n";
        Catalog::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    fn facts(labels: &[&str], ty: Option<&str>) -> IssueFacts {
        IssueFacts {
            id: 301,
            iid: 12,
            project: "monitor/api".into(),
            title: "Login fails".into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            issue_type: ty.map(str::to_string),
            created_at: 1,
            updated_at: 2,
            ..Default::default()
        }
    }

    #[test]
    fn kinds_come_from_bug_labels_and_issue_types() {
        let rules = IssueRules::default();
        #[rustfmt::skip]
        let cases = [
            (facts(&["API"], None), Kind::Story),
            (facts(&["Bug"], None), Kind::Bug),
            (facts(&["frontend", "BUG"], Some("issue")), Kind::Bug),
            (facts(&[], Some("incident")), Kind::Bug),
            (facts(&[], Some("INCIDENT")), Kind::Bug),
            (facts(&[], Some("task")), Kind::Task),
            (facts(&[], Some("Task")), Kind::Task),
            (facts(&["bug"], Some("task")), Kind::Bug),
            (facts(&[], Some("test_case")), Kind::Story),
            (facts(&["type::bug"], None), Kind::Story),
        ];
        for (f, kind) in cases {
            assert_eq!(kind_of(&f, &rules), kind, "{:?} {:?}", f.labels, f.issue_type);
        }
        let rules = IssueRules::parse("defect, Regression", "off").unwrap();
        assert_eq!(kind_of(&facts(&["regression"], None), &rules), Kind::Bug);
        assert_eq!(kind_of(&facts(&["bug"], None), &rules), Kind::Story);
    }

    #[test]
    fn states_are_open_closed_or_the_workflow_label() {
        let rules = IssueRules::default();
        assert_eq!(state_of(&facts(&["API"], None), &rules), "opened");
        assert_eq!(state_of(&facts(&["workflow::doing"], None), &rules), "doing");
        assert_eq!(state_of(&facts(&["Workflow::In review"], None), &rules), "In review");
        assert_eq!(state_of(&facts(&["team::a::workflow::x"], None), &rules), "opened");
        let closed = IssueFacts { closed: true, ..facts(&["workflow::doing"], None) };
        assert_eq!(state_of(&closed, &rules), "closed");
        let off = IssueRules::parse("bug", "off").unwrap();
        assert_eq!(state_of(&facts(&["workflow::doing"], None), &off), "opened");
    }

    #[test]
    fn rules_reject_what_they_cannot_use() {
        assert_eq!(IssueRules::parse("bug", "workflow").unwrap(), IssueRules::default());
        assert_eq!(IssueRules::parse("bug,,x", "workflow"), Err(RuleError::BugLabels("bug,,x".into())));
        assert_eq!(IssueRules::parse("", "workflow"), Err(RuleError::BugLabels("".into())));
        assert_eq!(IssueRules::parse("bug", "a::b"), Err(RuleError::WorkflowScope("a::b".into())));
        let e = IssueRules::parse("bug", "a::b").unwrap_err().to_string();
        assert!(e.contains("TAO_GITLAB_WORKFLOW_SCOPE") && e.contains("\"a::b\""), "{e}");
    }

    #[test]
    fn products_and_versions_come_from_the_catalog() {
        let c = catalog();
        assert_eq!(product_of(&c, "monitor/api").as_deref(), Some("monitor"));
        assert_eq!(product_of(&c, "common/lib"), None, "two products share it");
        assert_eq!(product_of(&c, "elsewhere/x"), None);
        assert_eq!(version_of(&c, "monitor", "v1.1.0").as_deref(), Some("1.1.0"));
        assert_eq!(version_of(&c, "monitor", "1.2.0").as_deref(), Some("1.2.0"));
        assert_eq!(version_of(&c, "monitor", "Backlog"), None);
        assert_eq!(version_of(&c, "other", "Sprint 2.0.0").as_deref(), Some("2.0.0"), "the tapd pattern");
        assert_eq!(version_of(&c, "other", "2.0.0"), None);
        let f = IssueFacts {
            assignees: vec!["alice".into(), "bob".into()],
            milestone_id: Some(7),
            milestone_title: Some("v1.1.0".into()),
            closed: true,
            closed_at: Some(5),
            ..facts(&["bug"], None)
        };
        let w = work_item(&f, &c, &IssueRules::default(), None);
        assert_eq!((w.source.as_str(), w.id.as_str(), w.short_id.as_deref()), ("gitlab", "301", Some("12")));
        assert_eq!((w.kind, w.state.as_str(), w.owner.as_deref()), (Kind::Bug, "closed", Some("alice;bob")));
        assert_eq!((w.product.as_deref(), w.version.as_deref()), (Some("monitor"), Some("1.1.0")));
        assert_eq!((w.iteration_id.as_deref(), w.completed_at), (Some("7"), Some(5)));
        let open = IssueFacts { closed: false, milestone_title: None, ..f };
        let w = work_item(&open, &c, &IssueRules::default(), Some("v2.0.0"));
        assert_eq!((w.version.as_deref(), w.completed_at), (Some("2.0.0"), None));
    }

    #[test]
    fn the_webhook_fixture_reads_as_a_story() {
        let payload: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/gitlab/webhooks/issue.json")).unwrap();
        let GitLabEvent::Issue(e) = GitLabEvent::parse("issue", &payload).unwrap() else { panic!("not an issue") };
        let f = IssueFacts::from_webhook(&e).unwrap();
        assert_eq!((f.id, f.iid, f.project.as_str()), (301, 23, "gitlabhq/gitlab-test"));
        assert_eq!((f.labels.clone(), f.assignees.clone()), (vec!["API".to_string()], vec!["user1".to_string()]));
        assert_eq!(f.created_at, gitlab_time("2013-12-03T17:15:43Z").unwrap());
        let w = work_item(&f, &catalog(), &IssueRules::default(), None);
        assert_eq!((w.kind, w.state.as_str(), w.product), (Kind::Story, "opened", None));
        let mut broken = e.clone();
        broken.object_attributes.iid = None;
        let err = IssueFacts::from_webhook(&broken).unwrap_err();
        assert_eq!(err.field, "object_attributes.iid");
        broken.object_attributes.iid = Some(1);
        broken.object_attributes.updated_at = Some("yesterday".into());
        assert!(IssueFacts::from_webhook(&broken).unwrap_err().to_string().contains("\"yesterday\""));
    }

    #[test]
    fn only_transitions_are_recorded() {
        let s = |state: &str, at: i64| StateChange { state: state.into(), at, author: None };
        let history = [s("opened", 10), s("closed", 20)];
        // An edit while closed, a redelivery, and a reopen then close between syncs.
        let got = transitions(&history, &[s("closed", 25), s("closed", 20), s("opened", 30), s("closed", 40)]);
        assert_eq!(got, [s("opened", 30), s("closed", 40)]);
        assert_eq!(transitions(&[], &[s("opened", 1), s("opened", 2), s("doing", 3)]), [s("opened", 1), s("doing", 3)]);
    }

    #[test]
    fn bugs_are_found_in_their_found_label_and_fixed_in_their_milestone_once_closed() {
        let rules = IssueRules::default();
        let c = catalog();
        let mut f = facts(&["bug", "found::v1.0.0"], None);
        f.milestone_title = Some("v1.1.0".into());
        let open = work_item(&f, &c, &rules, None);
        assert_eq!(bug_versions(&f, &c, &open), Some((Some("1.0.0".into()), None)));
        f.closed = true;
        f.closed_at = Some(5);
        let closed = work_item(&f, &c, &rules, None);
        assert_eq!(bug_versions(&f, &c, &closed), Some((Some("1.0.0".into()), Some("1.1.0".into()))));
        let story = facts(&["found::1.0.0"], None);
        assert_eq!(bug_versions(&story, &c, &work_item(&story, &c, &rules, None)), None);
        let odd = facts(&["bug", "found::someday"], None);
        assert_eq!(bug_versions(&odd, &c, &work_item(&odd, &c, &rules, None)), Some((None, None)));
    }
}
