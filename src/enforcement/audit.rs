//! `tao policy audit` / `apply` and `GET /api/v1/policy/audit`: read a project's merge settings and
//! protections from GitLab, compare them with its rules (`crate::policy::audit`), and carry out the
//! changes. Apply is idempotent: it re-reads before changing, so a second apply sends no mutating request.

use serde::Serialize;

use crate::gitlab::client::{
    AccessLevel, GitLabClient, GitLabError, MergeMethod, ProjectId, ProjectSettings, ProtectBranchRequest, RefAccess,
};
use crate::policy::{self, Audit, BranchProtectionFact, Change, ProjectFacts, Rules, TagProtectionFact};

/// The audit of one project, or why it could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectAudit {
    /// `group/project`.
    pub project: String,
    /// Drifts and the changes that fix them (empty when the audit failed).
    #[serde(flatten)]
    pub audit: Audit,
    /// Why GitLab could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One change apply made (or would make, with `--dry-run`), or failed to make.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// `group/project`.
    pub project: String,
    /// The change.
    pub change: Change,
    /// `applied`, `planned` (dry run) or `failed`.
    pub outcome: &'static str,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn levels(entries: &[RefAccess]) -> (Vec<u32>, usize) {
    // Entries for a single user or group widen access beyond the roles; GitLab lists them with a level too.
    let (extra, roles): (Vec<&RefAccess>, Vec<&RefAccess>) =
        entries.iter().partition(|e| e.user_id.is_some() || e.group_id.is_some());
    let mut roles: Vec<u32> = roles.iter().filter_map(|e| e.access_level).map(|l| l.0).collect();
    roles.sort_unstable();
    (roles, extra.len())
}

/// Reads what the audit compares.
pub async fn project_facts(client: &GitLabClient, project: &ProjectId) -> Result<ProjectFacts, GitLabError> {
    let p = client.project(project).await?;
    let branches = client.protected_branches(project).await?;
    let tags = client.protected_tags(project).await?;
    let merge_method = p.merge_method.map(|m| {
        match m {
            MergeMethod::Merge => "merge",
            MergeMethod::RebaseMerge => "rebase_merge",
            MergeMethod::Ff => "ff",
        }
        .to_string()
    });
    Ok(ProjectFacts {
        merge_method,
        pipeline_must_succeed: p.only_allow_merge_if_pipeline_succeeds,
        discussions_resolved: p.only_allow_merge_if_all_discussions_are_resolved,
        remove_source_branch: p.remove_source_branch_after_merge,
        protected_branches: branches
            .iter()
            .map(|b| {
                let (push, extra_push) = levels(&b.push_access_levels);
                let (merge, extra_merge) = levels(&b.merge_access_levels);
                BranchProtectionFact {
                    name: b.name.clone(),
                    push,
                    merge,
                    extra_entries: extra_push + extra_merge,
                    allow_force_push: b.allow_force_push,
                }
            })
            .collect(),
        protected_tags: tags
            .iter()
            .map(|t| {
                let (create, extra_entries) = levels(&t.create_access_levels);
                TagProtectionFact { name: t.name.clone(), create, extra_entries }
            })
            .collect(),
    })
}

/// Audits one project against its rules.
pub async fn audit_project(client: &GitLabClient, path: &str, rules: &Rules) -> ProjectAudit {
    match project_facts(client, &ProjectId::Path(path.to_string())).await {
        Ok(facts) => ProjectAudit { project: path.to_string(), audit: policy::audit(rules, &facts), error: None },
        Err(e) => ProjectAudit { project: path.to_string(), audit: Audit::default(), error: Some(e.to_string()) },
    }
}

/// Carries out the changes of `audit` (none with `dry_run`), each reported on its own; one failing
/// change does not stop the others.
pub async fn apply(client: &GitLabClient, audit: &ProjectAudit, dry_run: bool) -> Vec<Applied> {
    let project = ProjectId::Path(audit.project.clone());
    let mut out = Vec::new();
    for change in &audit.audit.changes {
        let result = if dry_run { Ok(()) } else { apply_one(client, &project, change).await };
        out.push(Applied {
            project: audit.project.clone(),
            change: change.clone(),
            outcome: match (&result, dry_run) {
                (Err(_), _) => "failed",
                (Ok(()), true) => "planned",
                (Ok(()), false) => "applied",
            },
            error: result.err().map(|e| e.to_string()),
        });
    }
    out
}

async fn apply_one(client: &GitLabClient, project: &ProjectId, change: &Change) -> Result<(), GitLabError> {
    match change {
        Change::Settings { merge_method, pipeline_must_succeed, discussions_resolved, remove_source_branch } => {
            let settings = ProjectSettings {
                merge_method: merge_method.map(|m| match m {
                    crate::catalog::PolicyMergeMethod::RebaseMerge => MergeMethod::RebaseMerge,
                    crate::catalog::PolicyMergeMethod::Ff => MergeMethod::Ff,
                }),
                only_allow_merge_if_pipeline_succeeds: *pipeline_must_succeed,
                only_allow_merge_if_all_discussions_are_resolved: *discussions_resolved,
                remove_source_branch_after_merge: *remove_source_branch,
            };
            client.update_project(project, &settings).await.map(|_| ())
        }
        Change::ProtectBranch(want) | Change::ReprotectBranch(want) => {
            if matches!(change, Change::ReprotectBranch(_)) {
                // GitLab's free tier cannot change access levels in place: unprotect, then protect. The
                // branch is unprotected between the two calls (milliseconds).
                match client.unprotect_branch(project, &want.name).await {
                    Err(e) if e.status() == Some(404) => {}
                    other => other?,
                }
            }
            let request = ProtectBranchRequest {
                name: want.name.clone(),
                push_access_level: AccessLevel(want.push.access_level()),
                merge_access_level: AccessLevel(want.merge.access_level()),
                allow_force_push: want.allow_force_push,
            };
            client.protect_branch(project, &request).await.map(|_| ())
        }
        Change::ProtectTag(want) | Change::ReprotectTag(want) => {
            if matches!(change, Change::ReprotectTag(_)) {
                match client.unprotect_tag(project, &want.name).await {
                    Err(e) if e.status() == Some(404) => {}
                    other => other?,
                }
            }
            client.protect_tag(project, &want.name, AccessLevel(want.create.access_level())).await.map(|_| ())
        }
    }
}
