//! Branch policy as the API and CLI reach it: audit the catalog's projects, reconcile missed checks,
//! list violations, read the stored verdict of an MR. Needs GitLab configured; the rules and the GitLab
//! calls are `crate::policy` and `crate::enforcement`.

use super::{Actor, ServiceError, Services};
use crate::enforcement::audit::{audit_project, ProjectAudit};
use crate::enforcement::{self, rules_for, PolicyContext};
use crate::store;
use crate::store::policy::{CheckRow, ViolationRow};

impl Services {
    /// What policy checks need; an error when GitLab is not configured.
    pub fn policy_context(&self) -> Result<PolicyContext, ServiceError> {
        let gitlab = self.gitlab.clone().ok_or_else(|| {
            ServiceError::NotConfigured(
                "GitLab is not configured on this Tao: start `tao serve` with TAO_GITLAB_URL and TAO_GITLAB_TOKEN \
                 (or --gitlab-url and --gitlab-token)"
                    .into(),
            )
        })?;
        Ok(PolicyContext {
            gitlab,
            pool: self.pool.clone(),
            catalog: self.catalog(),
            public_url: self.public_url.as_deref().cloned(),
            notifier: self.notifier.clone(),
        })
    }

    /// Audits the catalog's projects (or only `project`, which must be one of them) against the policy.
    pub async fn policy_audit(&self, project: Option<&str>) -> Result<Vec<ProjectAudit>, ServiceError> {
        let ctx = self.policy_context()?;
        let mut projects = ctx.catalog.project_paths();
        if let Some(p) = project {
            if !projects.iter().any(|x| x == p) {
                return Err(ServiceError::NotFound(format!("project {p} is not in the catalog")));
            }
            projects.retain(|x| x == p);
        }
        let mut out = Vec::with_capacity(projects.len());
        for path in &projects {
            out.push(audit_project(&ctx.gitlab, path, &rules_for(&ctx.catalog, path)).await);
        }
        Ok(out)
    }

    /// Re-checks open MRs of the catalog's projects whose head has no final `tao/policy` status; returns
    /// how many got one.
    pub async fn policy_reconcile(&self, actor: &Actor) -> Result<usize, ServiceError> {
        let ctx = self.policy_context()?;
        let projects = ctx.catalog.project_paths();
        let result = enforcement::reconcile(&ctx, &projects).await;
        let (outcome, detail) = match &result {
            Ok(n) => ("ok", format!("{n} merge request(s) checked")),
            Err(e) => ("failed", e.to_string()),
        };
        store::audit::record(&self.pool, &actor.to_string(), "policy.reconcile", "policy", outcome, &detail).await?;
        result.map_err(|e| ServiceError::Upstream(format!("policy reconcile: {e}")))
    }

    /// The stored verdict of MR `iid` of `project`.
    pub async fn policy_check(&self, project: &str, iid: i64) -> Result<CheckRow, ServiceError> {
        store::policy::check(&self.pool, project, iid)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no policy check of {project}!{iid} yet")))
    }

    /// One page of recorded violations, oldest first: those after violation `after`, optionally of one
    /// project and since a time (epoch ms).
    pub async fn violations_page(
        &self,
        project: Option<&str>,
        since: Option<i64>,
        after: i64,
        n: i64,
    ) -> Result<Vec<ViolationRow>, ServiceError> {
        Ok(store::policy::violations(self.pool(), project, since, after, n).await?)
    }
}
