//! Work items: TAPD stories and bugs and GitLab issues in one model, with the history of their states,
//! and the references that link them to merge requests and commits.
//!
//! Owns the [`WorkItem`] model and its [`Kind`]s, [`StateChange`]s, the pure reference extraction of
//! [`links`] (`#1007`, `--story=1007`, TAPD long ids), the TAPD REST client ([`tapd`]) and the sync that
//! fills the store from it ([`sync`]), and GitLab issues: their mapping ([`gitlab`]) and their backfill
//! through the API ([`gitlab_sync`]; webhooks are handled by `crate::workitems::issue_events`). What is
//! stored and how is `store::workitem`'s; which product and version a TAPD workspace and iteration, or a
//! GitLab project and milestone, mean is the catalog's (`tapd:` on a product, `project:` on a component).
//!
//! Times are epoch milliseconds like everywhere in the store; TAPD's zone-less datetimes are read as
//! Asia/Shanghai (UTC+8), the zone TAPD runs in ([`tapd::parse_time`]); GitLab's carry their zone.

pub mod gitlab;
pub mod gitlab_sync;
pub mod issue_events;
pub mod link_events;
pub mod links;
pub mod sync;
pub mod tapd;

use serde::Serialize;

/// Where a work item comes from: TAPD.
pub const SOURCE_TAPD: &str = "tapd";
/// Where a work item comes from: GitLab issues.
pub const SOURCE_GITLAB: &str = "gitlab";

/// What a work item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A requirement (TAPD "story", 需求).
    Story,
    /// A defect (TAPD "bug", 缺陷).
    Bug,
    /// A task (TAPD "task", 任务).
    Task,
}

impl Kind {
    /// The stored and displayed spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Story => "story",
            Kind::Bug => "bug",
            Kind::Task => "task",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "story" => Some(Kind::Story),
            "bug" => Some(Kind::Bug),
            "task" => Some(Kind::Task),
            _ => None,
        }
    }
}

/// A work item as Tao keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkItem {
    /// `tapd` (or `gitlab` for issues).
    pub source: String,
    /// The source's id: TAPD's long id (a string of 19 digits, kept as text), GitLab's global issue id.
    pub id: String,
    /// TAPD workspace id (or GitLab project path).
    pub workspace: String,
    /// The short id people write (`#1007`), when the source has one (GitLab: the issue's `iid`).
    pub short_id: Option<String>,
    /// Story, bug or task.
    pub kind: Kind,
    /// Title (TAPD `name` of a story, `title` of a bug).
    pub title: String,
    /// The source's state, as it spells it (`planning`, `status_3`, `resolved`, …).
    pub state: String,
    /// Owners as the source lists them (TAPD: `a;b;`; GitLab: assignees' usernames, `a;b`).
    pub owner: Option<String>,
    /// The iteration (TAPD iteration id, GitLab milestone id), when planned into one.
    pub iteration_id: Option<String>,
    /// Product mapped from the workspace, when the catalog maps it.
    pub product: Option<String>,
    /// Product version mapped from the iteration's (milestone's) name, when it matches the product's pattern.
    pub version: Option<String>,
    /// Created, epoch ms.
    pub created_at: i64,
    /// Last modified at the source, epoch ms.
    pub modified_at: i64,
    /// Completed (TAPD `completed`, or `resolved`/`closed` of a bug; GitLab `closed_at`), epoch ms.
    pub completed_at: Option<i64>,
}

/// One entry of a work item's state history: it entered `state` at `at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateChange {
    /// The state entered.
    pub state: String,
    /// When, epoch ms.
    pub at: i64,
    /// Who changed it, when known.
    pub author: Option<String>,
}

/// An iteration (TAPD 迭代, GitLab milestone): what a product version is planned as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Iteration {
    /// `tapd` or `gitlab`.
    pub source: String,
    /// The iteration's id.
    pub id: String,
    /// TAPD workspace id, or the GitLab project path the milestone was seen in.
    pub workspace: String,
    /// Its name, e.g. `v1.1.0` or `迭代2`.
    pub name: String,
    /// `open` or `done` (TAPD), `active` or `closed` (GitLab).
    pub status: String,
    /// Product version its name maps to, when it matches the product's pattern.
    pub version: Option<String>,
    /// Last modified at the source, epoch ms.
    pub modified_at: i64,
}
