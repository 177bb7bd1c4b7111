//! Project settings and the repository: branches, tags, protected branches and tags, compare, and
//! member roles. Only HTTP calls; what to protect or which role suffices is decided by callers.

use reqwest::Method;
use serde_json::json;

use super::{
    encode, AccessLevel, Branch, Comparison, GitLabClient, GitLabError, Idempotent, Member, Project, ProjectId,
    ProjectSettings, ProtectBranchRequest, ProtectedBranch, ProtectedTag, Tag,
};

impl GitLabClient {
    /// Changes the given merge settings of a project (`PUT /projects/:id`); fields left `None` are not
    /// sent, so GitLab keeps them.
    pub async fn update_project(
        &self,
        project: &ProjectId,
        settings: &ProjectSettings,
    ) -> Result<Project, GitLabError> {
        let body = serde_json::to_value(settings).unwrap_or_default();
        let path = format!("/projects/{}", project.segment());
        self.json("update project", Method::PUT, &path, Some(&body), Idempotent::Yes).await
    }

    /// One branch.
    pub async fn branch(&self, project: &ProjectId, name: &str) -> Result<Branch, GitLabError> {
        self.get_json("get branch", &format!("/projects/{}/repository/branches/{}", project.segment(), encode(name)))
            .await
    }

    /// Every branch (all pages).
    pub async fn branches(&self, project: &ProjectId) -> Result<Vec<Branch>, GitLabError> {
        self.get_all("list branches", &format!("/projects/{}/repository/branches", project.segment())).await
    }

    /// One tag.
    pub async fn tag(&self, project: &ProjectId, name: &str) -> Result<Tag, GitLabError> {
        self.get_json("get tag", &format!("/projects/{}/repository/tags/{}", project.segment(), encode(name))).await
    }

    /// Every tag (all pages).
    pub async fn tags(&self, project: &ProjectId) -> Result<Vec<Tag>, GitLabError> {
        self.get_all("list tags", &format!("/projects/{}/repository/tags", project.segment())).await
    }

    /// Creates a tag at `git_ref` (annotated when `message` is given). An existing tag of that name is
    /// [`GitLabError::TagExists`], so a rerun can check whether it points where it should. Not retried on
    /// 5xx: a lost answer may mean the tag exists.
    pub async fn create_tag(
        &self,
        project: &ProjectId,
        name: &str,
        git_ref: &str,
        message: Option<&str>,
    ) -> Result<Tag, GitLabError> {
        let mut body = json!({ "tag_name": name, "ref": git_ref });
        if let Some(m) = message {
            body["message"] = json!(m);
        }
        let path = format!("/projects/{}/repository/tags", project.segment());
        match self.json("create tag", Method::POST, &path, Some(&body), Idempotent::No).await {
            Err(GitLabError::Status { status: 400, message, .. }) if message.contains("already exists") => {
                Err(GitLabError::TagExists { tag: name.to_string() })
            }
            other => other,
        }
    }

    /// Every protected branch rule (all pages).
    pub async fn protected_branches(&self, project: &ProjectId) -> Result<Vec<ProtectedBranch>, GitLabError> {
        self.get_all("list protected branches", &format!("/projects/{}/protected_branches", project.segment())).await
    }

    /// One protected branch rule, by name or wildcard.
    pub async fn protected_branch(&self, project: &ProjectId, name: &str) -> Result<ProtectedBranch, GitLabError> {
        let path = format!("/projects/{}/protected_branches/{}", project.segment(), encode(name));
        self.get_json("get protected branch", &path).await
    }

    /// Protects a branch. An existing rule of that name is a 409: unprotect first to change it.
    pub async fn protect_branch(
        &self,
        project: &ProjectId,
        request: &ProtectBranchRequest,
    ) -> Result<ProtectedBranch, GitLabError> {
        let body = serde_json::to_value(request).unwrap_or_default();
        let path = format!("/projects/{}/protected_branches", project.segment());
        // Retrying a lost answer only risks GitLab's 409, which says the rule is there.
        self.json("protect branch", Method::POST, &path, Some(&body), Idempotent::Yes).await
    }

    /// Removes a protected branch rule.
    pub async fn unprotect_branch(&self, project: &ProjectId, name: &str) -> Result<(), GitLabError> {
        let path = format!("/projects/{}/protected_branches/{}", project.segment(), encode(name));
        self.no_content("unprotect branch", Method::DELETE, &path, Idempotent::Yes).await
    }

    /// Every protected tag rule (all pages).
    pub async fn protected_tags(&self, project: &ProjectId) -> Result<Vec<ProtectedTag>, GitLabError> {
        self.get_all("list protected tags", &format!("/projects/{}/protected_tags", project.segment())).await
    }

    /// Protects tags matching `name`; only `create_access_level` and above may create them.
    pub async fn protect_tag(
        &self,
        project: &ProjectId,
        name: &str,
        create_access_level: AccessLevel,
    ) -> Result<ProtectedTag, GitLabError> {
        let body = json!({ "name": name, "create_access_level": create_access_level });
        let path = format!("/projects/{}/protected_tags", project.segment());
        self.json("protect tag", Method::POST, &path, Some(&body), Idempotent::Yes).await
    }

    /// Removes a protected tag rule.
    pub async fn unprotect_tag(&self, project: &ProjectId, name: &str) -> Result<(), GitLabError> {
        let path = format!("/projects/{}/protected_tags/{}", project.segment(), encode(name));
        self.no_content("unprotect tag", Method::DELETE, &path, Idempotent::Yes).await
    }

    /// What `to` has that `from` has not (commits oldest first, changed files).
    pub async fn compare(&self, project: &ProjectId, from: &str, to: &str) -> Result<Comparison, GitLabError> {
        let path =
            format!("/projects/{}/repository/compare?from={}&to={}", project.segment(), encode(from), encode(to));
        self.get_json("compare", &path).await
    }

    /// A user's role in a project, inherited memberships included (`/members/all/:user_id`). A user
    /// without any membership is a 404.
    pub async fn member(&self, project: &ProjectId, user_id: i64) -> Result<Member, GitLabError> {
        self.get_json("get member", &format!("/projects/{}/members/all/{user_id}", project.segment())).await
    }
}
