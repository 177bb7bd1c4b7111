//! CI: deployments Tao reports to GitLab, pipelines (read, trigger). Only HTTP calls; when to report or
//! trigger is decided by the deploy and release code.

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{Deployment, DeploymentStatus, GitLabClient, GitLabError, Idempotent, NewDeployment, Pipeline, ProjectId};
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
