//! Typed views of the webhook payloads Tao acts on: push, tag push, merge request, note, pipeline, job,
//! deployment, release, issue. Our own types (the `gitlab` crate no longer ships webhook structs).
//!
//! Views are deliberately partial and tolerant: unknown fields are ignored, every field GitLab may omit
//! is an `Option` or defaults, and times stay strings (GitLab mixes `2013-12-03T17:23:34Z` and
//! `2021-09-27 05:00:01 UTC`). Handlers use a view to know *what* changed, then re-read current state
//! from GitLab; nothing here does I/O.

use serde::Deserialize;
use serde_json::Value;

/// GitLab sends `null` for some fields it documents as always present; read it as the default.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The project block of a payload.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProjectRef {
    /// Project id.
    pub id: Option<i64>,
    /// Display name.
    pub name: Option<String>,
    /// `group/project`.
    pub path_with_namespace: Option<String>,
    /// Web URL.
    pub web_url: Option<String>,
    /// Default branch.
    pub default_branch: Option<String>,
}

/// The acting user of a payload.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UserRef {
    /// User id (absent in some hooks).
    pub id: Option<i64>,
    /// Login.
    pub username: Option<String>,
    /// Display name.
    pub name: Option<String>,
}

/// A commit listed in a push.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PushCommit {
    /// SHA.
    #[serde(deserialize_with = "null_default")]
    pub id: String,
    /// Full message.
    pub message: Option<String>,
    /// First line.
    pub title: Option<String>,
    /// Web URL.
    pub url: Option<String>,
}

/// `Push Hook` and `Tag Push Hook` (and the system hook's `push`/`tag_push`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PushEvent {
    /// `refs/heads/…` or `refs/tags/…`.
    #[serde(rename = "ref", deserialize_with = "null_default")]
    pub git_ref: String,
    /// Previous SHA (all zeros when the ref was created).
    #[serde(deserialize_with = "null_default")]
    pub before: String,
    /// New SHA (all zeros when the ref was deleted).
    #[serde(deserialize_with = "null_default")]
    pub after: String,
    /// SHA checked out after the push (None on deletion).
    pub checkout_sha: Option<String>,
    /// Project id.
    pub project_id: Option<i64>,
    /// Pusher's login.
    pub user_username: Option<String>,
    /// Pusher's id.
    pub user_id: Option<i64>,
    /// The project.
    pub project: Option<ProjectRef>,
    /// Up to 20 commits.
    #[serde(deserialize_with = "null_default")]
    pub commits: Vec<PushCommit>,
    /// Number of commits pushed.
    pub total_commits_count: Option<i64>,
}

impl PushEvent {
    /// True when the push deleted the ref.
    pub fn is_deletion(&self) -> bool {
        !self.after.is_empty() && self.after.bytes().all(|b| b == b'0')
    }
}

/// The merge request block of a merge request or note payload.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MergeRequestAttributes {
    /// Global id.
    pub id: Option<i64>,
    /// Project-scoped number (`!iid`).
    #[serde(deserialize_with = "null_default")]
    pub iid: i64,
    /// Title.
    pub title: Option<String>,
    /// Source branch.
    pub source_branch: Option<String>,
    /// Target branch.
    pub target_branch: Option<String>,
    /// Source project id.
    pub source_project_id: Option<i64>,
    /// Target project id.
    pub target_project_id: Option<i64>,
    /// `opened`, `closed`, `merged`, `locked`.
    pub state: Option<String>,
    /// `open`, `update`, `merge`, `close`, … (absent in notes and old system hooks).
    pub action: Option<String>,
    /// Head commit.
    pub last_commit: Option<CommitRef>,
    /// Web URL.
    pub url: Option<String>,
}

/// A commit reference inside an object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CommitRef {
    /// SHA.
    pub id: Option<String>,
    /// Message.
    pub message: Option<String>,
}

/// `Merge Request Hook`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MergeRequestEvent {
    /// Who acted.
    pub user: Option<UserRef>,
    /// The target project.
    pub project: Option<ProjectRef>,
    /// The merge request.
    pub object_attributes: MergeRequestAttributes,
    /// What changed (`changes.labels`, …), kept raw.
    pub changes: Option<Value>,
}

/// The note block of a note payload.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NoteAttributes {
    /// Note id.
    #[serde(deserialize_with = "null_default")]
    pub id: i64,
    /// Markdown text.
    #[serde(deserialize_with = "null_default")]
    pub note: String,
    /// `MergeRequest`, `Issue`, `Commit`, `Snippet`.
    #[serde(deserialize_with = "null_default")]
    pub noteable_type: String,
    /// Commented commit (empty unless on a commit).
    pub commit_id: Option<String>,
    /// Set on notes GitLab itself writes.
    pub system: Option<bool>,
    /// Author's id.
    pub author_id: Option<i64>,
    /// `create` or `update` (absent in older GitLab versions).
    pub action: Option<String>,
    /// The thread it belongs to (absent in older GitLab versions).
    pub discussion_id: Option<String>,
    /// Web URL.
    pub url: Option<String>,
}

/// `Note Hook`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NoteEvent {
    /// Author.
    pub user: Option<UserRef>,
    /// Project id.
    pub project_id: Option<i64>,
    /// The project.
    pub project: Option<ProjectRef>,
    /// The note.
    pub object_attributes: NoteAttributes,
    /// The merge request, when the note is on one.
    pub merge_request: Option<MergeRequestAttributes>,
}

/// The pipeline block of a pipeline payload.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PipelineAttributes {
    /// Pipeline id.
    #[serde(deserialize_with = "null_default")]
    pub id: i64,
    /// Project-scoped number.
    pub iid: Option<i64>,
    /// Ref.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// True for tag pipelines.
    pub tag: Option<bool>,
    /// Commit.
    pub sha: Option<String>,
    /// `created`, `running`, `success`, `failed`, …
    pub status: Option<String>,
    /// `push`, `merge_request_event`, `schedule`, …
    pub source: Option<String>,
}

/// `Pipeline Hook`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PipelineEvent {
    /// The pipeline.
    pub object_attributes: PipelineAttributes,
    /// The project.
    pub project: Option<ProjectRef>,
    /// The merge request of a merge request pipeline.
    pub merge_request: Option<MergeRequestAttributes>,
    /// Who triggered it.
    pub user: Option<UserRef>,
}

/// The rule block of an external status check request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExternalApprovalRule {
    /// The status check's id (answered back in `external_status_check_id`).
    #[serde(deserialize_with = "null_default")]
    pub id: i64,
    /// Its name.
    pub name: Option<String>,
}

/// An external status check request (GitLab Ultimate): a merge request payload plus the rule asking.
/// Stored under the kind [`EXTERNAL_STATUS_CHECK`] by `POST /api/v1/gitlab/status-checks`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StatusCheckEvent {
    /// The target project.
    pub project: Option<ProjectRef>,
    /// The merge request.
    pub object_attributes: MergeRequestAttributes,
    /// The status check asking.
    pub external_approval_rule: ExternalApprovalRule,
}

/// The stored kind of external status check requests.
pub const EXTERNAL_STATUS_CHECK: &str = "external_status_check";

/// `Job Hook` (`object_kind: build`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JobEvent {
    /// Job id.
    #[serde(deserialize_with = "null_default")]
    pub build_id: i64,
    /// Job name.
    pub build_name: Option<String>,
    /// Stage.
    pub build_stage: Option<String>,
    /// `created`, `running`, `success`, `failed`, …
    pub build_status: Option<String>,
    /// Pipeline id.
    pub pipeline_id: Option<i64>,
    /// Project id.
    pub project_id: Option<i64>,
    /// Ref.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Commit.
    pub sha: Option<String>,
    /// True for tag pipelines.
    pub tag: Option<bool>,
}

/// `Deployment Hook`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeploymentEvent {
    /// Deployment id.
    #[serde(deserialize_with = "null_default")]
    pub deployment_id: i64,
    /// The job that deployed.
    pub deployable_id: Option<i64>,
    /// `running`, `success`, `failed`, `canceled`.
    pub status: Option<String>,
    /// Environment name.
    pub environment: Option<String>,
    /// Ref deployed.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Short commit.
    pub short_sha: Option<String>,
    /// The project.
    pub project: Option<ProjectRef>,
}

/// `Release Hook`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReleaseEvent {
    /// Release id.
    pub id: Option<i64>,
    /// Tag name.
    #[serde(deserialize_with = "null_default")]
    pub tag: String,
    /// Title.
    pub name: Option<String>,
    /// `create`, `update`, `delete`.
    pub action: Option<String>,
    /// Tagged commit.
    pub commit: Option<CommitRef>,
    /// The project.
    pub project: Option<ProjectRef>,
}

/// A label as webhooks embed it (REST answers list names only).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LabelRef {
    /// Name, e.g. `bug` or `workflow::doing`.
    #[serde(deserialize_with = "null_default")]
    pub title: String,
}

/// The issue block of an issue payload.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IssueAttributes {
    /// Global id.
    pub id: Option<i64>,
    /// Project-scoped number (`#iid`).
    pub iid: Option<i64>,
    /// Title.
    pub title: Option<String>,
    /// `opened` or `closed`.
    pub state: Option<String>,
    /// `open`, `close`, `reopen`, `update` (absent in old GitLab versions).
    pub action: Option<String>,
    /// Milestone id (the payload has no milestone title).
    pub milestone_id: Option<i64>,
    /// `Issue`, `Incident`, `Task`, … (newer GitLab versions).
    #[serde(rename = "type")]
    pub work_item_type: Option<String>,
    /// `issue`, `incident`, `test_case`, `task` (some GitLab versions).
    pub issue_type: Option<String>,
    /// Labels.
    #[serde(deserialize_with = "null_default")]
    pub labels: Vec<LabelRef>,
    /// Created.
    pub created_at: Option<String>,
    /// Last changed: the time the reported state holds from.
    pub updated_at: Option<String>,
    /// Closed (`null` while open).
    pub closed_at: Option<String>,
}

/// `Issue Hook` (and `Confidential Issue Hook`: same `object_kind`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IssueEvent {
    /// Who acted.
    pub user: Option<UserRef>,
    /// The project.
    pub project: Option<ProjectRef>,
    /// The issue.
    pub object_attributes: IssueAttributes,
    /// Assignees (top level, not in `object_attributes`).
    #[serde(deserialize_with = "null_default")]
    pub assignees: Vec<UserRef>,
    /// Labels (top level; the same as `object_attributes.labels` where both are sent).
    #[serde(deserialize_with = "null_default")]
    pub labels: Vec<LabelRef>,
}

/// A payload Tao acts on, by kind; everything else is [`GitLabEvent::Other`].
#[derive(Debug, Clone)]
pub enum GitLabEvent {
    /// Branch push.
    Push(PushEvent),
    /// Tag push.
    TagPush(PushEvent),
    /// Merge request opened/updated/merged/…
    MergeRequest(MergeRequestEvent),
    /// Comment.
    Note(NoteEvent),
    /// Pipeline status change.
    Pipeline(PipelineEvent),
    /// Job status change.
    Job(JobEvent),
    /// Deployment status change.
    Deployment(DeploymentEvent),
    /// Release created/updated/deleted.
    Release(ReleaseEvent),
    /// An external status check request.
    StatusCheck(StatusCheckEvent),
    /// Issue opened/updated/closed/reopened.
    Issue(IssueEvent),
    /// A kind Tao stores but does not act on.
    Other(String),
}

/// The payload of a known kind did not have the shape of that kind.
#[derive(Debug, thiserror::Error)]
#[error("{kind} payload: {source}")]
pub struct ViewError {
    /// The kind that was expected.
    pub kind: String,
    /// What serde said.
    pub source: serde_json::Error,
}

impl GitLabEvent {
    /// The typed view of a payload of `kind` (the stored kind: `object_kind` or `event_name`).
    pub fn parse(kind: &str, payload: &Value) -> Result<GitLabEvent, ViewError> {
        fn view<T: serde::de::DeserializeOwned>(kind: &str, p: &Value) -> Result<T, ViewError> {
            T::deserialize(p).map_err(|source| ViewError { kind: kind.to_string(), source })
        }
        Ok(match kind {
            "push" => GitLabEvent::Push(view(kind, payload)?),
            "tag_push" => GitLabEvent::TagPush(view(kind, payload)?),
            "merge_request" => GitLabEvent::MergeRequest(view(kind, payload)?),
            "note" => GitLabEvent::Note(view(kind, payload)?),
            "pipeline" => GitLabEvent::Pipeline(view(kind, payload)?),
            "build" => GitLabEvent::Job(view(kind, payload)?),
            "deployment" => GitLabEvent::Deployment(view(kind, payload)?),
            "release" => GitLabEvent::Release(view(kind, payload)?),
            "issue" => GitLabEvent::Issue(view(kind, payload)?),
            EXTERNAL_STATUS_CHECK => GitLabEvent::StatusCheck(view(kind, payload)?),
            other => GitLabEvent::Other(other.to_string()),
        })
    }
}
