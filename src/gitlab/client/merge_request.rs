//! Merge requests and what Tao writes on them: notes (one note per purpose, edited in place, found by a
//! hidden marker), files uploaded for notes to show (Markdown uploads), commit statuses and external
//! status check responses. Only HTTP calls; what a note
//! says or which state a status gets is decided by the policy and chat code.

use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::json;

use super::{
    encode, CommitState, CommitStatus, CommitStatusEntry, Discussion, GitLabClient, GitLabError, Idempotent,
    MergeRequest, MergeRequestState, Note, ProjectId, StatusCheckResponse, StatusCheckStatus,
};

impl GitLabClient {
    /// One merge request.
    pub async fn merge_request(&self, project: &ProjectId, iid: i64) -> Result<MergeRequest, GitLabError> {
        self.get_json("get merge request", &format!("/projects/{}/merge_requests/{iid}", project.segment())).await
    }

    /// The merge requests in `state` (all pages).
    pub async fn merge_requests(
        &self,
        project: &ProjectId,
        state: MergeRequestState,
    ) -> Result<Vec<MergeRequest>, GitLabError> {
        let path = format!("/projects/{}/merge_requests?state={}", project.segment(), state.as_str());
        self.get_all("list merge requests", &path).await
    }

    /// Every note of a merge request (all pages; GitLab's order, newest first).
    pub async fn mr_notes(&self, project: &ProjectId, iid: i64) -> Result<Vec<Note>, GitLabError> {
        self.get_all("list merge request notes", &format!("/projects/{}/merge_requests/{iid}/notes", project.segment()))
            .await
    }

    /// Adds a note. Not retried on 5xx (it may exist); [`GitLabClient::upsert_mr_note`] is the safe way
    /// to keep one note per purpose.
    pub async fn create_mr_note(&self, project: &ProjectId, iid: i64, body: &str) -> Result<Note, GitLabError> {
        let path = format!("/projects/{}/merge_requests/{iid}/notes", project.segment());
        self.json("create merge request note", Method::POST, &path, Some(&json!({ "body": body })), Idempotent::No)
            .await
    }

    /// Replaces a note's body.
    pub async fn update_mr_note(
        &self,
        project: &ProjectId,
        iid: i64,
        note_id: i64,
        body: &str,
    ) -> Result<Note, GitLabError> {
        let path = format!("/projects/{}/merge_requests/{iid}/notes/{note_id}", project.segment());
        self.json("update merge request note", Method::PUT, &path, Some(&json!({ "body": body })), Idempotent::Yes)
            .await
    }

    /// Keeps one note of Tao's per `marker` (a hidden HTML comment such as `<!-- tao:policy -->`): edits
    /// Tao's note carrying the marker, else creates one. `body` gets the marker prepended when it lacks
    /// it. Only notes written by the client's own user count, so a comment quoting the marker is never
    /// taken over. A create whose answer was lost (5xx, timeout) is checked by listing again before
    /// giving up, so a rerun never leaves two notes. An unchanged body sends no edit.
    pub async fn upsert_mr_note(
        &self,
        project: &ProjectId,
        iid: i64,
        marker: &str,
        body: &str,
    ) -> Result<Note, GitLabError> {
        let body = if body.contains(marker) { body.to_string() } else { format!("{marker}\n{body}") };
        let me = self.my_user_id().await?;
        if let Some(note) = self.marked_note(project, iid, marker, me).await? {
            return self.edit_if_changed(project, iid, note, &body).await;
        }
        match self.create_mr_note(project, iid, &body).await {
            Ok(note) => Ok(note),
            Err(e) if lost_answer(&e) => match self.marked_note(project, iid, marker, me).await? {
                Some(note) => self.edit_if_changed(project, iid, note, &body).await,
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Edits Tao's note carrying `marker` if there is one (see [`GitLabClient::upsert_mr_note`]); creates
    /// nothing. `None` when there is no such note.
    pub async fn update_marked_note(
        &self,
        project: &ProjectId,
        iid: i64,
        marker: &str,
        body: &str,
    ) -> Result<Option<Note>, GitLabError> {
        let body = if body.contains(marker) { body.to_string() } else { format!("{marker}\n{body}") };
        let me = self.my_user_id().await?;
        match self.marked_note(project, iid, marker, me).await? {
            Some(note) => Ok(Some(self.edit_if_changed(project, iid, note, &body).await?)),
            None => Ok(None),
        }
    }

    /// The merge requests a commit belongs to (as a commit of their source, or as their merge result).
    pub async fn commit_merge_requests(
        &self,
        project: &ProjectId,
        sha: &str,
    ) -> Result<Vec<MergeRequest>, GitLabError> {
        let path = format!("/projects/{}/repository/commits/{}/merge_requests", project.segment(), encode(sha));
        self.get_all("list merge requests of a commit", &path).await
    }

    /// The MR's discussions (threads), oldest first, each with its notes (all pages).
    pub async fn mr_discussions(&self, project: &ProjectId, iid: i64) -> Result<Vec<Discussion>, GitLabError> {
        let path = format!("/projects/{}/merge_requests/{iid}/discussions", project.segment());
        self.get_all("list merge request discussions", &path).await
    }

    /// Replies in a discussion. Not retried on 5xx (it may exist): callers look for their reply first.
    pub async fn reply_to_discussion(
        &self,
        project: &ProjectId,
        iid: i64,
        discussion_id: &str,
        body: &str,
    ) -> Result<Note, GitLabError> {
        let path =
            format!("/projects/{}/merge_requests/{iid}/discussions/{}/notes", project.segment(), encode(discussion_id));
        self.json("reply to discussion", Method::POST, &path, Some(&json!({ "body": body })), Idempotent::No).await
    }

    /// The id of the user the client's token belongs to (looked up once), to recognise Tao's own notes.
    pub async fn own_user_id(&self) -> Result<i64, GitLabError> {
        self.my_user_id().await
    }

    async fn marked_note(
        &self,
        project: &ProjectId,
        iid: i64,
        marker: &str,
        me: i64,
    ) -> Result<Option<Note>, GitLabError> {
        let notes = self.mr_notes(project, iid).await?;
        // Newest first: if an earlier bug ever left two, the newest is the one people read.
        Ok(notes.into_iter().find(|n| !n.system && n.author.id == me && n.body.contains(marker)))
    }

    async fn edit_if_changed(
        &self,
        project: &ProjectId,
        iid: i64,
        note: Note,
        body: &str,
    ) -> Result<Note, GitLabError> {
        if note.body == body {
            return Ok(note);
        }
        self.update_mr_note(project, iid, note.id, body).await
    }

    /// Sets a commit status on `sha`. Posting the state a pending or running status already has is
    /// answered 400 by GitLab ("Cannot transition status via …"); that case is read back and returned
    /// as success, so reruns are harmless.
    pub async fn set_commit_status(
        &self,
        project: &ProjectId,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<CommitStatusEntry, GitLabError> {
        let body = serde_json::to_value(status).unwrap_or_default();
        let path = format!("/projects/{}/statuses/{}", project.segment(), encode(sha));
        // Repeating a status is idempotent for GitLab (it updates the open one), so 5xx may be retried.
        match self.json("set commit status", Method::POST, &path, Some(&body), Idempotent::Yes).await {
            Err(e @ GitLabError::Status { status: 400, .. }) if e.to_string().contains("Cannot transition status") => {
                let current = self.commit_statuses(project, sha).await?;
                let same = |s: &&CommitStatusEntry| {
                    s.name == status.name
                        && s.status == status.state
                        && matches!(s.status, CommitState::Pending | CommitState::Running)
                };
                current.iter().find(same).cloned().ok_or(e)
            }
            other => other,
        }
    }

    /// Every status of a commit (all pages; newest first).
    pub async fn commit_statuses(&self, project: &ProjectId, sha: &str) -> Result<Vec<CommitStatusEntry>, GitLabError> {
        let path = format!("/projects/{}/repository/commits/{}/statuses", project.segment(), encode(sha));
        self.get_all("list commit statuses", &path).await
    }

    /// Answers an external status check for the MR's head `sha` (GitLab Ultimate). A `sha` that is not
    /// the MR's head any more is a 409: the answer is stale.
    pub async fn set_status_check_response(
        &self,
        project: &ProjectId,
        mr_iid: i64,
        sha: &str,
        external_status_check_id: i64,
        status: StatusCheckStatus,
    ) -> Result<StatusCheckResponse, GitLabError> {
        let body = json!({ "sha": sha, "external_status_check_id": external_status_check_id, "status": status });
        let path = format!("/projects/{}/merge_requests/{mr_iid}/status_check_responses", project.segment());
        // GitLab keeps the latest response per check and SHA, so a repeat is harmless.
        self.json("set status check response", Method::POST, &path, Some(&body), Idempotent::Yes).await
    }
}

/// A file uploaded to a project for use in Markdown (`POST /projects/:id/uploads`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Upload {
    /// Its id (GitLab 17.3 and later).
    #[serde(default)]
    pub id: Option<i64>,
    /// The alt text GitLab derived from the file name (`dk` for `dk.png`).
    pub alt: String,
    /// The path to use in Markdown: `/uploads/<secret>/dk.png`.
    pub url: String,
    /// The absolute path of the file.
    pub full_path: String,
    /// Ready-made Markdown: `![dk](/uploads/<secret>/dk.png)` (a link for files that are not images).
    pub markdown: String,
}

impl GitLabClient {
    /// Uploads a file to `project` for Markdown (a multipart `file` part named `file_name`, of
    /// `content_type`); returns where it is and the Markdown that shows it.
    ///
    /// Retried like a read (5xx, timeouts): a repeat only stores another copy under a new secret, and
    /// the note links only the upload whose answer arrived, so a repeat costs an orphan file, never a
    /// second picture in a note.
    pub async fn upload(
        &self,
        project: &ProjectId,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Upload, GitLabError> {
        let call = "upload a file";
        let url = format!("{}/projects/{}/uploads", self.api, project.segment());
        let response = self
            .send(call, Idempotent::Yes, || {
                let part = Part::bytes(bytes.to_vec()).file_name(file_name.to_string());
                let part = match part.mime_str(content_type) {
                    Ok(typed) => typed,
                    Err(_) => Part::bytes(bytes.to_vec()).file_name(file_name.to_string()),
                };
                self.authed(self.http.post(&url)).multipart(Form::new().part("file", part))
            })
            .await?;
        super::decode(call, response).await
    }
}

/// Whether the call may have happened although no answer said so.
fn lost_answer(e: &GitLabError) -> bool {
    match e {
        GitLabError::Status { status, .. } => *status >= 500,
        GitLabError::Transport { .. } => true,
        _ => false,
    }
}
