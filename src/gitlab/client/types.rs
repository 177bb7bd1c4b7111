//! What Tao reads from and sends to GitLab's REST API: serde types with GitLab's field names (see
//! `tests/fixtures/gitlab/api/`). Answers are read tolerantly: unknown fields are ignored and every
//! field GitLab may omit or null is optional or defaulted. Request bodies hold only what Tao sets.
//!
//! No behaviour lives here; the calls are in the sibling modules (`ci` keeps its own pipeline and
//! deployment types).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Pipeline;

/// A GitLab user.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Login.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// How a merge request is merged (`merge_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeMethod {
    /// A merge commit.
    Merge,
    /// A merge commit, after a rebase (semi-linear history).
    RebaseMerge,
    /// Fast-forward only.
    Ff,
}

/// A GitLab project (the fields Tao reads).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Project {
    /// Id.
    pub id: i64,
    /// `group/project`.
    pub path_with_namespace: String,
    /// Default branch (absent for empty repositories).
    #[serde(default)]
    pub default_branch: Option<String>,
    /// Web URL.
    #[serde(default)]
    pub web_url: Option<String>,
    /// Merge method.
    #[serde(default)]
    pub merge_method: Option<MergeMethod>,
    /// Merges wait for a successful pipeline.
    #[serde(default)]
    pub only_allow_merge_if_pipeline_succeeds: Option<bool>,
    /// Merges wait for resolved discussions.
    #[serde(default)]
    pub only_allow_merge_if_all_discussions_are_resolved: Option<bool>,
    /// Source branches are deleted after merge by default.
    #[serde(default)]
    pub remove_source_branch_after_merge: Option<bool>,
}

/// The merge settings of `PUT /projects/:id`; only the fields given are sent (and changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProjectSettings {
    /// Merge method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_method: Option<MergeMethod>,
    /// Merges wait for a successful pipeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_allow_merge_if_pipeline_succeeds: Option<bool>,
    /// Merges wait for resolved discussions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_allow_merge_if_all_discussions_are_resolved: Option<bool>,
    /// Source branches are deleted after merge by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_source_branch_after_merge: Option<bool>,
}

/// Which events a project hook sends. Field names are GitLab's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct HookEvents {
    /// Branch pushes.
    pub push_events: bool,
    /// Tag pushes.
    pub tag_push_events: bool,
    /// Merge requests.
    pub merge_requests_events: bool,
    /// Comments.
    pub note_events: bool,
    /// Pipelines.
    pub pipeline_events: bool,
    /// Jobs.
    pub job_events: bool,
    /// Deployments.
    pub deployment_events: bool,
    /// Releases.
    pub releases_events: bool,
    /// Issues (work items).
    pub issues_events: bool,
}

/// A project hook as GitLab shows it (never with its secret).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Hook {
    /// Id.
    pub id: i64,
    /// Target URL.
    pub url: String,
    /// Events it sends.
    #[serde(flatten)]
    pub events: HookEvents,
    /// Whether GitLab checks the target's TLS certificate.
    #[serde(default)]
    pub enable_ssl_verification: Option<bool>,
}

/// A CI job, as `GET /job` shows it to the job's own token.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Job {
    /// Id.
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Status.
    #[serde(default)]
    pub status: Option<String>,
    /// Ref.
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    /// True for tag pipelines.
    #[serde(default)]
    pub tag: Option<bool>,
    /// The user who runs it.
    #[serde(default)]
    pub user: Option<User>,
    /// Its pipeline (`id`, `project_id`, `ref`, `sha`, …), raw.
    #[serde(default)]
    pub pipeline: Option<Value>,
}

/// A commit as branches, tags and compare show it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Commit {
    /// Full SHA.
    pub id: String,
    /// Short SHA.
    #[serde(default)]
    pub short_id: Option<String>,
    /// First line of the message.
    #[serde(default)]
    pub title: Option<String>,
    /// Full message.
    #[serde(default)]
    pub message: Option<String>,
    /// Parents (absent in some answers).
    #[serde(default)]
    pub parent_ids: Vec<String>,
    /// When it was committed (ISO 8601), where GitLab says.
    #[serde(default)]
    pub committed_date: Option<String>,
}

/// A branch.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Branch {
    /// Name.
    pub name: String,
    /// Its head commit.
    pub commit: Commit,
    /// Merged into the default branch.
    #[serde(default)]
    pub merged: bool,
    /// Matches a protected branch rule.
    #[serde(default)]
    pub protected: bool,
    /// The default branch.
    #[serde(default)]
    pub default: bool,
}

/// A tag.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Tag {
    /// Name.
    pub name: String,
    /// Annotation message (`None` for lightweight tags).
    #[serde(default)]
    pub message: Option<String>,
    /// The tagged commit.
    pub commit: Commit,
    /// Matches a protected tag rule.
    #[serde(default)]
    pub protected: bool,
}

/// A GitLab access level (`access_level`): 0 none, 10 guest, 20 reporter, 30 developer, 40 maintainer,
/// 50 owner, 60 admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(transparent)]
pub struct AccessLevel(pub u32);

impl AccessLevel {
    /// No access (e.g. nobody may push).
    pub const NO_ACCESS: AccessLevel = AccessLevel(0);
    /// Guest.
    pub const GUEST: AccessLevel = AccessLevel(10);
    /// Reporter.
    pub const REPORTER: AccessLevel = AccessLevel(20);
    /// Developer.
    pub const DEVELOPER: AccessLevel = AccessLevel(30);
    /// Maintainer.
    pub const MAINTAINER: AccessLevel = AccessLevel(40);
    /// Owner.
    pub const OWNER: AccessLevel = AccessLevel(50);
}

/// One entry of a protected ref's access list: a level, a user or a group.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RefAccess {
    /// Entry id.
    #[serde(default)]
    pub id: Option<i64>,
    /// A role level.
    #[serde(default)]
    pub access_level: Option<AccessLevel>,
    /// GitLab's wording of the level.
    #[serde(default)]
    pub access_level_description: Option<String>,
    /// A user.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// A group.
    #[serde(default)]
    pub group_id: Option<i64>,
}

/// A protected branch rule (`name` may be a wildcard such as `release/*`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ProtectedBranch {
    /// Id.
    #[serde(default)]
    pub id: Option<i64>,
    /// Branch name or wildcard.
    pub name: String,
    /// Who may push.
    #[serde(default)]
    pub push_access_levels: Vec<RefAccess>,
    /// Who may merge.
    #[serde(default)]
    pub merge_access_levels: Vec<RefAccess>,
    /// Force pushes allowed.
    #[serde(default)]
    pub allow_force_push: bool,
}

/// `POST /protected_branches`: protects a branch (or wildcard) with one level for push and merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectBranchRequest {
    /// Branch name or wildcard.
    pub name: String,
    /// Who may push.
    pub push_access_level: AccessLevel,
    /// Who may merge.
    pub merge_access_level: AccessLevel,
    /// Force pushes allowed.
    pub allow_force_push: bool,
}

/// A protected tag rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ProtectedTag {
    /// Tag name or wildcard.
    pub name: String,
    /// Who may create matching tags.
    #[serde(default)]
    pub create_access_levels: Vec<RefAccess>,
}

/// Which merge requests to list (`state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeRequestState {
    /// Open.
    Opened,
    /// Closed without merging.
    Closed,
    /// Locked (transient, while merging).
    Locked,
    /// Merged.
    Merged,
    /// Any state (listing only).
    All,
}

impl MergeRequestState {
    /// GitLab's word.
    pub fn as_str(self) -> &'static str {
        match self {
            MergeRequestState::Opened => "opened",
            MergeRequestState::Closed => "closed",
            MergeRequestState::Locked => "locked",
            MergeRequestState::Merged => "merged",
            MergeRequestState::All => "all",
        }
    }
}

/// A merge request (the fields Tao reads).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MergeRequest {
    /// Global id.
    pub id: i64,
    /// Per-project number (`!iid`).
    pub iid: i64,
    /// Target project.
    pub project_id: i64,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `opened`, `closed`, `locked`, `merged`.
    pub state: MergeRequestState,
    /// Source branch.
    pub source_branch: String,
    /// Target branch.
    pub target_branch: String,
    /// Head commit of the source branch.
    #[serde(default)]
    pub sha: Option<String>,
    /// The merge commit, once merged with a merge commit (semi-linear).
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    /// Draft.
    #[serde(default)]
    pub draft: bool,
    /// Author.
    #[serde(default)]
    pub author: Option<User>,
    /// GitLab's mergeability verdict (`mergeable`, `ci_must_pass`, …).
    #[serde(default)]
    pub detailed_merge_status: Option<String>,
    /// The pipeline of the head commit, when there is one.
    #[serde(default)]
    pub head_pipeline: Option<Pipeline>,
    /// Labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Web URL.
    #[serde(default)]
    pub web_url: Option<String>,
}

/// A comment on a merge request.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Note {
    /// Id.
    pub id: i64,
    /// Markdown body.
    pub body: String,
    /// Author.
    pub author: User,
    /// Written by GitLab itself (e.g. "added 1 commit").
    #[serde(default)]
    pub system: bool,
    /// Creation time (ISO 8601).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Last edit (ISO 8601).
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// A thread of notes on a merge request.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Discussion {
    /// Id (40 hex characters).
    pub id: String,
    /// Its notes, oldest first.
    #[serde(default)]
    pub notes: Vec<Note>,
}

/// The state of a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitState {
    /// Waiting.
    Pending,
    /// In progress.
    Running,
    /// Passed.
    Success,
    /// Failed.
    Failed,
    /// Cancelled.
    Canceled,
    /// Skipped.
    Skipped,
    /// A state GitLab added that Tao does not know (answers only).
    #[serde(other)]
    Other,
}

/// `POST /statuses/:sha`: what Tao sets on a commit (e.g. `tao/policy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitStatus {
    /// State.
    pub state: CommitState,
    /// Name (GitLab's `name`, a.k.a. context), e.g. `tao/policy`.
    pub name: String,
    /// Link shown on the status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    /// Short description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The pipeline to attach it to (the MR's head pipeline), so it shows there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<i64>,
}

/// A commit status as GitLab lists it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CommitStatusEntry {
    /// Id.
    pub id: i64,
    /// Commit.
    pub sha: String,
    /// Ref.
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    /// State (GitLab calls it `status` in answers).
    pub status: CommitState,
    /// Name.
    pub name: String,
    /// Link.
    #[serde(default)]
    pub target_url: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Pipeline it belongs to.
    #[serde(default)]
    pub pipeline_id: Option<i64>,
}

/// The answer of an external status check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusCheckStatus {
    /// Passed.
    Passed,
    /// Failed.
    Failed,
    /// Still deciding.
    Pending,
}

/// GitLab's record of a status check response.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StatusCheckResponse {
    /// Id.
    pub id: i64,
    /// The merge request (`id`, `iid`, …), raw.
    #[serde(default)]
    pub merge_request: Option<Value>,
    /// The check (`id`, `name`, …), raw.
    #[serde(default)]
    pub external_status_check: Option<Value>,
}

/// One changed file of a comparison.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Diff {
    /// Path before.
    #[serde(default)]
    pub old_path: String,
    /// Path after.
    #[serde(default)]
    pub new_path: String,
    /// Added.
    #[serde(default)]
    pub new_file: bool,
    /// Renamed.
    #[serde(default)]
    pub renamed_file: bool,
    /// Deleted.
    #[serde(default)]
    pub deleted_file: bool,
}

/// `GET /repository/compare`: what `to` has that `from` has not.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Comparison {
    /// The newest commit (`None` when there is none).
    #[serde(default)]
    pub commit: Option<Commit>,
    /// The commits, oldest first.
    #[serde(default)]
    pub commits: Vec<Commit>,
    /// Changed files.
    #[serde(default)]
    pub diffs: Vec<Diff>,
    /// GitLab gave up computing the diff.
    #[serde(default)]
    pub compare_timeout: bool,
    /// `from` and `to` are the same.
    #[serde(default)]
    pub compare_same_ref: bool,
}

/// A project member, direct or inherited.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Member {
    /// User id.
    pub id: i64,
    /// Login.
    pub username: String,
    /// `active`, `blocked`, …
    #[serde(default)]
    pub state: Option<String>,
    /// Role.
    pub access_level: AccessLevel,
    /// Expiry date, if any.
    #[serde(default)]
    pub expires_at: Option<String>,
}
