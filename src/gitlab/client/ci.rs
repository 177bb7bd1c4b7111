//! CI: deployments Tao reports to GitLab, pipelines (read, trigger). Only HTTP calls; when to report or
//! trigger is decided by the deploy and release code.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{GitLabClient, GitLabError, Idempotent, ProjectId};
use crate::config::Secret;

impl GitLabClient {
    /// Records a deployment in GitLab (shown on its environment page). Not retried on 5xx: a lost answer
    /// may mean it exists.
    pub async fn create_deployment(
        &self,
        project: &ProjectId,
        deployment: &NewDeployment,
    ) -> Result<Deployment, GitLabError> {
        let body = serde_json::to_value(deployment).unwrap_or_default();
        let path = format!("/projects/{}/deployments", project.segment());
        self.json("create deployment", Method::POST, &path, Some(&body), Idempotent::No).await
    }

    /// Moves a deployment to `status`.
    pub async fn update_deployment(
        &self,
        project: &ProjectId,
        deployment_id: i64,
        status: DeploymentStatus,
    ) -> Result<Deployment, GitLabError> {
        let path = format!("/projects/{}/deployments/{deployment_id}", project.segment());
        self.json("update deployment", Method::PUT, &path, Some(&json!({ "status": status })), Idempotent::Yes).await
    }

    /// One pipeline.
    pub async fn pipeline(&self, project: &ProjectId, pipeline_id: i64) -> Result<Pipeline, GitLabError> {
        self.get_json("get pipeline", &format!("/projects/{}/pipelines/{pipeline_id}", project.segment())).await
    }

    /// Starts a pipeline on `git_ref` with a trigger token (or a CI job token, for multi-project
    /// pipelines) and CI variables. An unknown token is GitLab's 404. Not retried on 5xx: it would start
    /// a second pipeline.
    pub async fn trigger_pipeline(
        &self,
        project: &ProjectId,
        git_ref: &str,
        token: &Secret,
        variables: &[(&str, &str)],
    ) -> Result<Pipeline, GitLabError> {
        let vars: Map<String, Value> = variables.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let body = json!({ "token": token.expose(), "ref": git_ref, "variables": vars });
        let path = format!("/projects/{}/trigger/pipeline", project.segment());
        self.json("trigger pipeline", Method::POST, &path, Some(&body), Idempotent::No).await
    }
}

/// A pipeline as other objects reference it (`head_pipeline`), and as `GET /pipelines/:id` answers.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Pipeline {
    /// Id.
    pub id: i64,
    /// Per-project number.
    #[serde(default)]
    pub iid: Option<i64>,
    /// Project id.
    #[serde(default)]
    pub project_id: Option<i64>,
    /// `created`, `pending`, `running`, `success`, `failed`, `canceled`, …
    #[serde(default)]
    pub status: Option<String>,
    /// Ref.
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    /// Commit.
    #[serde(default)]
    pub sha: Option<String>,
    /// Web URL.
    #[serde(default)]
    pub web_url: Option<String>,
}

/// The status of a GitLab deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Created.
    Created,
    /// Running.
    Running,
    /// Succeeded.
    Success,
    /// Failed.
    Failed,
    /// Cancelled.
    Canceled,
    /// Waiting for approval.
    Blocked,
    /// A status Tao does not know (answers only).
    #[serde(other)]
    Other,
}

/// `POST /deployments`: a deployment Tao reports to GitLab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewDeployment {
    /// Environment name (created by GitLab if missing).
    pub environment: String,
    /// Deployed commit.
    pub sha: String,
    /// Deployed ref.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Whether `ref` is a tag.
    pub tag: bool,
    /// Initial status.
    pub status: DeploymentStatus,
}

/// An environment as a deployment names it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EnvironmentRef {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// A deployment.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Deployment {
    /// Id.
    pub id: i64,
    /// Per-project number.
    #[serde(default)]
    pub iid: Option<i64>,
    /// Ref.
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    /// Commit.
    #[serde(default)]
    pub sha: Option<String>,
    /// Status (absent in answers of old GitLab versions).
    #[serde(default)]
    pub status: Option<DeploymentStatus>,
    /// Environment.
    #[serde(default)]
    pub environment: Option<EnvironmentRef>,
}
