//! The push and tag guard: pushes to protected names by people the policy does not allow (possible
//! while a project's protections are not applied yet) and release tags that break the rules are recorded
//! as violations (`GET /api/v1/policy/violations`) and logged for notification.
//!
//! Facts come from GitLab as it is now: the pusher's role, whether the pushed head is the result of a
//! merged MR, the project's tags and release branches. A replayed delivery records nothing twice.

use super::check::{rules_for, PolicyContext};
use super::PolicyError;
use crate::gitlab::client::{GitLabClient, GitLabError, MergeRequestState, ProjectId};
use crate::gitlab::events::PushEvent;
use crate::policy::{self, PushFacts, TagFacts, Verdict};
use crate::store::policy::{record_violation, NewViolation};
use crate::store::StoreError;

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

async fn level_of(client: &GitLabClient, project: &ProjectId, user_id: Option<i64>) -> Result<u32, GitLabError> {
    let Some(user_id) = user_id else { return Ok(0) };
    match client.member(project, user_id).await {
        Ok(m) => Ok(m.access_level.0),
        Err(e) if e.status() == Some(404) => Ok(0),
        Err(e) => Err(e),
    }
}

/// A branch push: the protected-push rule. Returns the verdict (already recorded).
pub async fn guard_push(ctx: &PolicyContext, push: &PushEvent, delivery_id: &str) -> Result<Verdict, PolicyError> {
    let (Some(project_id), Some(path)) = (project_id(push), project_path(push)) else { return Ok(Verdict::default()) };
    let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else { return Ok(Verdict::default()) };
    let rules = rules_for(&ctx.catalog, &path);
    if rules.protection_of(branch).is_none() {
        return Ok(Verdict::default());
    }
    let project = ProjectId::Id(project_id);
    let created = push.before == ZERO_SHA;
    let deleted = push.after == ZERO_SHA;
    let user_level = level_of(&ctx.gitlab, &project, push.user_id).await?;
    let from_merge = !deleted
        && ctx.gitlab.commit_merge_requests(&project, &push.after).await?.iter().any(|mr| {
            mr.state == MergeRequestState::Merged
                && mr.target_branch == branch
                && (mr.merge_commit_sha.as_deref() == Some(push.after.as_str())
                    || mr.sha.as_deref() == Some(push.after.as_str()))
        });
    let facts = PushFacts {
        branch: branch.to_string(),
        user: push.user_username.clone().unwrap_or_else(|| "someone".into()),
        user_level,
        from_merge,
        created,
        deleted,
    };
    let verdict = policy::evaluate_push(&rules, &facts);
    record(ctx, &verdict, project_id, &path, "push", branch, Some(&push.after), &facts.user, delivery_id).await?;
    Ok(verdict)
}

/// A tag push: format, release branch, patch sequence and creator rules. Deleted tags are not checked.
pub async fn guard_tag(ctx: &PolicyContext, push: &PushEvent, delivery_id: &str) -> Result<Verdict, PolicyError> {
    let (Some(project_id), Some(path)) = (project_id(push), project_path(push)) else { return Ok(Verdict::default()) };
    let Some(tag) = push.git_ref.strip_prefix("refs/tags/") else { return Ok(Verdict::default()) };
    if push.after == ZERO_SHA {
        return Ok(Verdict::default());
    }
    let rules = rules_for(&ctx.catalog, &path);
    let project = ProjectId::Id(project_id);
    let existing: Vec<String> =
        ctx.gitlab.tags(&project).await?.into_iter().map(|t| t.name).filter(|t| t != tag).collect();
    let on_release_branch = match policy::parse_tag(&rules.tag_format, tag) {
        Some(v) => {
            let branch = rules.release.as_str().replacen('*', &format!("{}.{}", v.semver().major, v.semver().minor), 1);
            match ctx.gitlab.branch(&project, &branch).await {
                // compare(from = branch, to = tag) lists what the tag has that the branch has not: nothing
                // means the tagged commit is on the branch.
                Ok(_) => Some(ctx.gitlab.compare(&project, &branch, tag).await?.commits.is_empty()),
                Err(e) if e.status() == Some(404) => None,
                Err(e) => return Err(e.into()),
            }
        }
        None => None,
    };
    let creator_level = Some(level_of(&ctx.gitlab, &project, push.user_id).await?);
    let facts = TagFacts { name: tag.to_string(), existing, on_release_branch, creator_level };
    let verdict = policy::evaluate_tag(&rules, &facts);
    let user = push.user_username.clone().unwrap_or_else(|| "someone".into());
    record(ctx, &verdict, project_id, &path, "tag", tag, Some(&push.after), &user, delivery_id).await?;
    Ok(verdict)
}

#[allow(clippy::too_many_arguments)]
async fn record(
    ctx: &PolicyContext,
    verdict: &Verdict,
    project_id: i64,
    path: &str,
    kind: &str,
    git_ref: &str,
    sha: Option<&str>,
    actor: &str,
    delivery_id: &str,
) -> Result<(), StoreError> {
    for v in &verdict.violations {
        let new = NewViolation {
            project_id: Some(project_id),
            project_path: path.to_string(),
            kind: kind.to_string(),
            git_ref: git_ref.to_string(),
            sha: sha.map(str::to_string),
            actor: Some(actor.to_string()),
            rule: v.rule.clone(),
            message: v.message.clone(),
            fix: v.fix.clone(),
            delivery_id: delivery_id.to_string(),
        };
        if record_violation(&ctx.pool, &new).await? {
            tracing::warn!(project = path, git_ref, rule = %v.rule, actor, message = %v.message, "policy violation");
        }
        if let Some(n) = &ctx.notifier {
            let f = crate::notify::fields([
                ("project", path.into()),
                ("kind", kind.into()),
                ("ref", git_ref.into()),
                ("rule", v.rule.clone().into()),
                ("message", v.message.clone().into()),
                ("fix", v.fix.clone().into()),
                ("actor", actor.into()),
            ]);
            n.emit("policy.violation", &format!("violation-{delivery_id}-{}", v.rule), f).await?;
        }
    }
    Ok(())
}

fn project_id(push: &PushEvent) -> Option<i64> {
    push.project_id.or_else(|| push.project.as_ref().and_then(|p| p.id))
}

fn project_path(push: &PushEvent) -> Option<String> {
    push.project.as_ref().and_then(|p| p.path_with_namespace.clone())
}
