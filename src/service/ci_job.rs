//! CI jobs as actors: a pipeline job presents its `JOB-TOKEN`, Tao asks GitLab who it is (`GET /job`
//! answers only while the job runs), and what the job may do follows from its project and ref.
//!
//! Owns verifying job tokens, whether a ref is protected, the rules for what a job may deploy or
//! release (a component's own project deploys that component; a product's release project releases
//! and deploys that product; feature branches only reach dev/test; `prod` only protected refs), and
//! mirroring a job's deploy task in GitLab's Deployments API. Must not know HTTP.

use std::fmt;

use super::{Actor, DeployRequest, DeployTarget, ServiceError, Services};
use crate::catalog::{Catalog, ProjectPath, Tier};
use crate::config::Secret;
use crate::gitlab::client::{DeploymentStatus, GitLabClient, GitLabError, NewDeployment, ProjectId};
use crate::store::task;

/// What GitLab says about a running job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiJob {
    /// The job's project.
    pub project: ProjectPath,
    /// Branch or tag the pipeline runs for.
    pub git_ref: String,
    /// Whether `git_ref` is a tag.
    pub tag: bool,
    /// Whether `git_ref` is a protected branch (or protected tag) of the project.
    pub protected: bool,
    /// The commit.
    pub sha: String,
    /// Job id (the idempotency key of its deploy requests).
    pub job_id: i64,
    /// Pipeline id.
    pub pipeline_id: i64,
    /// GitLab username of whoever runs the pipeline.
    pub user: Option<String>,
}

impl fmt::Display for CiJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gitlab-job:{} ({} {}, pipeline {}", self.job_id, self.project, self.git_ref, self.pipeline_id)?;
        match &self.user {
            Some(user) => write!(f, ", user {user})"),
            None => f.write_str(")"),
        }
    }
}

/// Why a job token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum JobTokenError {
    /// GitLab does not know the token, or the job is not running: the caller is not authenticated.
    #[error("{0}")]
    Refused(String),
    /// GitLab could not be asked.
    #[error("{0}")]
    Upstream(String),
}

/// Whether `name` matches a protected ref rule (`*` matches any run of characters).
fn matches_rule(rule: &str, name: &str) -> bool {
    let parts: Vec<&str> = rule.split('*').collect();
    if parts.len() == 1 {
        return rule == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

async fn is_protected(gitlab: &GitLabClient, project: i64, git_ref: &str, tag: bool) -> Result<bool, GitLabError> {
    let id = ProjectId::Id(project);
    let names: Vec<String> = if tag {
        gitlab.protected_tags(&id).await?.into_iter().map(|t| t.name).collect()
    } else {
        gitlab.protected_branches(&id).await?.into_iter().map(|b| b.name).collect()
    };
    Ok(names.iter().any(|rule| matches_rule(rule, git_ref)))
}

impl Services {
    /// Verifies a CI job token with GitLab and returns the job as an actor.
    pub async fn ci_job_actor(&self, token: &str) -> Result<Actor, JobTokenError> {
        let Some(gitlab) = self.gitlab.as_ref() else {
            return Err(JobTokenError::Refused("JOB-TOKEN needs Tao's GitLab integration (TAO_GITLAB_URL)".into()));
        };
        let upstream = |e: GitLabError| {
            tracing::warn!(error = %e, "verifying a CI job token");
            JobTokenError::Upstream(format!("GitLab could not verify the job token: {e}"))
        };
        let job = match gitlab.job_of_token(&Secret::new(token.to_owned())).await {
            Ok(job) => job,
            Err(GitLabError::Status { status: 401 | 403 | 404, .. }) => {
                return Err(JobTokenError::Refused("the job token is unknown or its job is not running".into()));
            }
            Err(e) => return Err(upstream(e)),
        };
        if job.status.as_deref().is_some_and(|s| s != "running") {
            return Err(JobTokenError::Refused(format!("job {} is not running", job.id)));
        }
        let pipeline = job.pipeline.clone().unwrap_or_default();
        let (Some(project_id), Some(git_ref)) = (pipeline["project_id"].as_i64(), job.git_ref.clone()) else {
            return Err(JobTokenError::Upstream("GitLab's job answer has no project or ref".into()));
        };
        let project = gitlab.project(&ProjectId::Id(project_id)).await.map_err(upstream)?;
        let project = ProjectPath::parse(&project.path_with_namespace)
            .map_err(|e| JobTokenError::Upstream(format!("GitLab's project path: {e}")))?;
        let tag = job.tag.unwrap_or(false);
        let protected = is_protected(gitlab, project_id, &git_ref, tag).await.map_err(upstream)?;
        Ok(Actor::CiJob(Box::new(CiJob {
            project,
            git_ref,
            tag,
            protected,
            sha: pipeline["sha"].as_str().unwrap_or_default().to_owned(),
            job_id: job.id,
            pipeline_id: pipeline["id"].as_i64().unwrap_or_default(),
            user: job.user.map(|u| u.username),
        })))
    }

    /// Mirrors a job's deploy task in GitLab's Deployments API: `running` now, `success`/`failed`/
    /// `canceled` when the task ends. The deployment id is stored with the task, so a Tao that stops
    /// before the end reaches GitLab finishes the job at its next start ([`Services::sync_gitlab_deployments`]).
    /// A GitLab failure is logged, never fails the deploy.
    pub(super) fn track_in_gitlab(&self, job: &CiJob, env: &str, task_id: i64) {
        let Some(gitlab) = self.gitlab.clone() else { return };
        let services = self.clone();
        let project = job.project.to_string();
        let new = NewDeployment {
            environment: env.to_owned(),
            sha: job.sha.clone(),
            git_ref: job.git_ref.clone(),
            tag: job.tag,
            status: DeploymentStatus::Running,
        };
        // Subscribe before spawning so the task's end cannot slip between a read and the wait.
        let mut changes = self.queue().subscribe();
        tokio::spawn(async move {
            let deployment = match gitlab.create_deployment(&ProjectId::Path(project.clone()), &new).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(task = task_id, error = %e, "recording the deployment in GitLab");
                    return;
                }
            };
            if let Err(e) = task::set_gitlab_deployment(services.pool(), task_id, &project, deployment.id).await {
                tracing::warn!(task = task_id, error = %e, "storing the GitLab deployment id");
            }
            loop {
                match services.task(task_id).await {
                    Ok(t) if t.is_finished() => break,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(task = task_id, error = %e, "following a task for GitLab");
                        return;
                    }
                }
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = changes.recv().await {
                    return;
                }
            }
            services.sync_gitlab_deployments().await;
        });
    }

    /// Tells GitLab how every finished job task ended whose deployment still says `running` (at start,
    /// for tasks a previous Tao left, and when a tracked task ends). Best effort; errors are logged.
    pub async fn sync_gitlab_deployments(&self) {
        let Some(gitlab) = &self.gitlab else { return };
        let pending = match task::unsynced_gitlab_deployments(self.pool()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "listing GitLab deployments to finish");
                return;
            }
        };
        for d in pending {
            let status = match d.status.as_str() {
                "succeeded" => DeploymentStatus::Success,
                "cancelled" => DeploymentStatus::Canceled,
                _ => DeploymentStatus::Failed,
            };
            let project = ProjectId::Path(d.gitlab_project.clone());
            match gitlab.update_deployment(&project, d.gitlab_deployment, status).await {
                Ok(_) => {
                    if let Err(e) = task::mark_gitlab_synced(self.pool(), d.id).await {
                        tracing::warn!(task = d.id, error = %e, "recording that GitLab knows a task's end");
                    }
                }
                Err(e) => tracing::warn!(task = d.id, error = %e, "updating the deployment in GitLab"),
            }
        }
    }
}

fn forbidden(message: String) -> ServiceError {
    ServiceError::Forbidden(message)
}

/// Whether a job may ask for `req`; the error names the rule it breaks.
pub(super) fn authorize_deploy(job: &CiJob, catalog: &Catalog, req: &DeployRequest) -> Result<(), ServiceError> {
    let Some(env) = catalog.environments.get(req.env.as_str()) else {
        let found = format!("{:?}", req.env);
        return Err(ServiceError::Invalid(vec![crate::catalog::FieldError::new(
            "env",
            "an environment of the catalog",
            found,
        )]));
    };
    match &req.target {
        DeployTarget::Component { component, .. } => {
            let own = catalog.components.get(component.as_str()).and_then(|c| c.project.as_ref());
            if own != Some(&job.project) {
                return Err(forbidden(format!(
                    "a CI job of {} may deploy only the component whose project it is, not {component}",
                    job.project
                )));
            }
        }
        DeployTarget::Release { product, .. } => authorize_release(job, catalog, product)?,
        DeployTarget::Rollback { .. } => {
            return Err(forbidden("CI jobs may not roll back; ask with a token or in chat".into()));
        }
    }
    let tier = env.tier;
    if job.git_ref.starts_with("feature/") && !matches!(tier, Tier::Dev | Tier::Test) {
        return Err(forbidden(format!(
            "feature branch {} may deploy only to dev or test environments; {} is tier {}",
            job.git_ref,
            req.env,
            tier.as_str()
        )));
    }
    if (tier == Tier::Prod || super::deploy::scope_for(env) == crate::catalog::access::Scope::Admin) && !job.protected {
        let what = if job.tag { "tag" } else { "branch" };
        return Err(forbidden(format!(
            "{} (tier {}) takes deploys only from protected refs; {what} {} of {} is not protected",
            req.env,
            tier.as_str(),
            job.git_ref,
            job.project
        )));
    }
    Ok(())
}

/// Whether a job may create (or deploy) versions of `product`: only from the product's release project.
pub(super) fn authorize_release(job: &CiJob, catalog: &Catalog, product: &str) -> Result<(), ServiceError> {
    let release_project = catalog.products.get(product).and_then(|p| p.release_project.as_ref());
    if release_project == Some(&job.project) {
        Ok(())
    } else {
        Err(forbidden(format!(
            "a CI job of {} may not release {product}: only its release project ({}) may",
            job.project,
            release_project.map_or_else(|| "none in the catalog".to_owned(), ToString::to_string)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::matches_rule;

    #[test]
    fn protected_ref_wildcards() {
        assert!(matches_rule("main", "main"));
        assert!(!matches_rule("main", "main2"));
        assert!(matches_rule("release/*", "release/1.2"));
        assert!(matches_rule("*-stable", "1-2-stable"));
        assert!(matches_rule("v*.*", "v1.2"));
        assert!(!matches_rule("release/*", "feature/release/x"));
        assert!(!matches_rule("a*a", "a"));
    }
}
