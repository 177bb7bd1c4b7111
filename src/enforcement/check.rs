//! The merge-request check: `tao/policy` on the MR's head, one note per MR, the stored verdict, and the
//! answer to GitLab Ultimate's external status checks.
//!
//! Flow per check (serialized per MR): read the MR as GitLab has it now (never an old payload), post
//! `pending` on its head at once when that head (and head pipeline) has no `tao/policy` status yet, gather
//! the facts (the comparison of the head with the target), evaluate, keep Tao's one note (created only
//! when something is wrong; edited to say so when all is well again), post `success` or `failed` unless
//! that exact status is already there, and store the verdict for the explanation page. Any GitLab error
//! ends the check with an error: the status stays `pending` and the event is retried; a `success` is only
//! ever posted after a complete evaluation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::catalog::Catalog;
use crate::gitlab::client::{
    CommitState, CommitStatus, CommitStatusEntry, GitLabClient, GitLabError, MergeRequest, MergeRequestState,
    ProjectId, StatusCheckStatus,
};
use crate::policy::{self, MrFacts, Rules, Verdict};
use crate::store::{self, Pool};

/// The commit status Tao posts.
pub const STATUS_NAME: &str = "tao/policy";
/// The hidden marker of Tao's policy note.
pub const NOTE_MARKER: &str = "<!-- tao:policy -->";

/// What a check needs.
#[derive(Clone)]
pub struct PolicyContext {
    /// GitLab.
    pub gitlab: GitLabClient,
    /// The store.
    pub pool: Pool,
    /// The catalog in force (its `policy:` section and components' tag formats).
    pub catalog: Arc<Catalog>,
    /// Tao's external URL, for links to the explanation page.
    pub public_url: Option<String>,
    /// Where violations and failed pipelines are announced, when notifications are configured.
    pub notifier: Option<crate::notify::Notifier>,
}

impl std::fmt::Debug for PolicyContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyContext").field("public_url", &self.public_url).finish_non_exhaustive()
    }
}

/// Per-MR async locks of this process (MR and pipeline events of one MR are queued under different
/// keys, and reconcile and status checks run beside the workers, so checks of one MR could otherwise
/// overlap and race on its note). Replicas on one PostgreSQL do not share them: see README.
type LockMap = HashMap<(i64, i64), Arc<tokio::sync::Mutex<()>>>;

static MR_LOCKS: std::sync::LazyLock<Mutex<LockMap>> = std::sync::LazyLock::new(Mutex::default);

struct MrLocks;

impl MrLocks {
    async fn lock(project_id: i64, iid: i64) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = MR_LOCKS.lock().unwrap_or_else(|e| e.into_inner());
            // Forget locks nobody holds, so the map does not grow with every MR ever seen.
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry((project_id, iid)).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// How thorough a check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Evaluate again (the MR, its target or the policy may have changed).
    Evaluate,
    /// Only make sure the head and its pipeline carry a final verdict (a new pipeline, reconcile).
    Ensure,
}

/// What a check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The MR is not open; nothing to do.
    NotOpen,
    /// The head already had this verdict; nothing posted.
    Unchanged {
        /// The head.
        sha: String,
        /// Passed.
        passed: bool,
    },
    /// A final status was posted.
    Posted {
        /// The head.
        sha: String,
        /// Passed.
        passed: bool,
    },
}

/// The rules for `project_path` under the catalog in force.
pub fn rules_for(catalog: &Catalog, project_path: &str) -> Rules {
    Rules::resolve(&catalog.policy, project_path, catalog.tag_format_of(project_path))
}

fn explanation_url(ctx: &PolicyContext, path: &str, iid: i64) -> Option<String> {
    ctx.public_url.as_ref().map(|u| format!("{}/ui/policy/{path}/{iid}", u.trim_end_matches('/')))
}

fn latest_status(statuses: &[CommitStatusEntry], pipeline: Option<i64>) -> Option<&CommitStatusEntry> {
    // GitLab lists newest first.
    statuses.iter().find(|s| s.name == STATUS_NAME && s.pipeline_id == pipeline)
}

fn is_final(s: &CommitStatusEntry) -> bool {
    matches!(s.status, CommitState::Success | CommitState::Failed)
}

/// Checks MR `iid` of `project_id` (at `project_path`).
pub async fn check_mr(
    ctx: &PolicyContext,
    project_id: i64,
    project_path: &str,
    iid: i64,
    mode: Mode,
) -> Result<(Outcome, Option<Verdict>), GitLabError> {
    let _guard = MrLocks::lock(project_id, iid).await;
    let project = ProjectId::Id(project_id);
    let mr = ctx.gitlab.merge_request(&project, iid).await?;
    if mr.state != MergeRequestState::Opened {
        return Ok((Outcome::NotOpen, None));
    }
    let Some(head) = mr.sha.clone().filter(|s| !s.is_empty()) else {
        return Ok((Outcome::NotOpen, None));
    };
    let pipeline_id = mr.head_pipeline.as_ref().filter(|p| p.sha.as_deref() == Some(head.as_str())).map(|p| p.id);
    let statuses = ctx.gitlab.commit_statuses(&project, &head).await?;
    let existing = latest_status(&statuses, pipeline_id).cloned();
    if mode == Mode::Ensure {
        if let Some(s) = existing.as_ref().filter(|s| is_final(s)) {
            return Ok((Outcome::Unchanged { sha: head, passed: s.status == CommitState::Success }, None));
        }
    }
    let target_url = explanation_url(ctx, project_path, iid);
    if existing.is_none() {
        let pending = CommitStatus {
            state: CommitState::Pending,
            name: STATUS_NAME.into(),
            target_url: target_url.clone(),
            description: Some("Checking the branch policy…".into()),
            pipeline_id,
        };
        ctx.gitlab.set_commit_status(&project, &head, &pending).await?;
    }
    let rules = rules_for(&ctx.catalog, project_path);
    let comparison = ctx.gitlab.compare(&project, &head, &mr.target_branch).await?;
    let facts = MrFacts {
        source_branch: mr.source_branch.clone(),
        target_branch: mr.target_branch.clone(),
        title: mr.title.clone(),
        description: mr.description.clone().unwrap_or_default(),
        behind_by: comparison.commits.len(),
    };
    let verdict = policy::evaluate_mr(&rules, &facts);
    let body = note_body(&mr, &head, &verdict, target_url.as_deref());
    if verdict.passed() {
        ctx.gitlab.update_marked_note(&project, iid, NOTE_MARKER, &body).await?;
    } else {
        ctx.gitlab.upsert_mr_note(&project, iid, NOTE_MARKER, &body).await?;
    }
    let state = if verdict.passed() { CommitState::Success } else { CommitState::Failed };
    let description = verdict.summary();
    let same =
        existing.as_ref().is_some_and(|s| s.status == state && s.description.as_deref() == Some(description.as_str()));
    if !same {
        let status =
            CommitStatus { state, name: STATUS_NAME.into(), target_url, description: Some(description), pipeline_id };
        ctx.gitlab.set_commit_status(&project, &head, &status).await?;
    }
    let row = store::policy::CheckRow {
        project_id,
        mr_iid: iid,
        project_path: project_path.to_string(),
        head_sha: head.clone(),
        pipeline_id,
        source_branch: mr.source_branch.clone(),
        target_branch: mr.target_branch.clone(),
        title: mr.title.clone(),
        state: if verdict.passed() { "success" } else { "failed" }.into(),
        verdict: serde_json::to_string(&verdict).unwrap_or_default(),
        checked_at: store::now_ms(),
    };
    if let Err(e) = store::policy::save_check(&ctx.pool, &row).await {
        // GitLab has the verdict; only the explanation page lags until the next check.
        tracing::warn!(error = %e, project = project_path, mr = iid, "cannot store the policy verdict");
    }
    let passed = verdict.passed();
    let outcome = if same { Outcome::Unchanged { sha: head, passed } } else { Outcome::Posted { sha: head, passed } };
    Ok((outcome, Some(verdict)))
}

/// The note: the head it is about, each violation with its fix, or that all is well again.
pub fn note_body(mr: &MergeRequest, head: &str, verdict: &Verdict, link: Option<&str>) -> String {
    let short = &head[..head.len().min(8)];
    let mut out = format!("{NOTE_MARKER}\n");
    if verdict.passed() {
        out.push_str(&format!(
            "✅ **Branch policy: all rules pass** for `{}` → `{}` at {short}. Thanks for fixing it!\n",
            mr.source_branch, mr.target_branch
        ));
    } else {
        let n = verdict.violations.len();
        out.push_str(&format!(
            "❌ **Branch policy: {n} problem{}** with `{}` → `{}` at {short}:\n\n",
            if n == 1 { "" } else { "s" },
            mr.source_branch,
            mr.target_branch
        ));
        for v in &verdict.violations {
            out.push_str(&format!("- **{}** — {}\n  - Fix: {}\n", v.rule, v.message, v.fix));
        }
        out.push_str(
            "\nThe `tao/policy` status holds the merge until these are fixed; Tao checks again on every push.\n",
        );
    }
    if let Some(link) = link {
        out.push_str(&format!("\n[Explanation]({link})\n"));
    }
    out
}

/// Answers an external status check (GitLab Ultimate) for MR `iid`: checks the MR, then tells GitLab
/// `passed` or `failed` for the MR's current head.
pub async fn answer_status_check(
    ctx: &PolicyContext,
    project_id: i64,
    project_path: &str,
    iid: i64,
    check_id: i64,
) -> Result<(), GitLabError> {
    let (outcome, _) = check_mr(ctx, project_id, project_path, iid, Mode::Ensure).await?;
    let (sha, passed) = match outcome {
        Outcome::NotOpen => return Ok(()),
        Outcome::Unchanged { sha, passed } | Outcome::Posted { sha, passed } => (sha, passed),
    };
    let status = if passed { StatusCheckStatus::Passed } else { StatusCheckStatus::Failed };
    match ctx.gitlab.set_status_check_response(&ProjectId::Id(project_id), iid, &sha, check_id, status).await {
        // The head moved on while we checked: the next MR event checks (and GitLab asks) again.
        Err(e) if e.status() == Some(409) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Re-checks every open MR of `projects` whose head has no final `tao/policy` status (missed webhooks).
/// Returns how many MRs got a verdict. A project or MR that cannot be read is logged and skipped, so one
/// failing project does not stop the others; when every project failed, the last error is returned.
pub async fn reconcile(ctx: &PolicyContext, projects: &[String]) -> Result<usize, GitLabError> {
    let mut checked = 0;
    let mut last_error = None;
    let mut reached = 0;
    for path in projects {
        let listed = async {
            let p = ctx.gitlab.project(&ProjectId::Path(path.clone())).await?;
            let mrs = ctx.gitlab.merge_requests(&ProjectId::Id(p.id), MergeRequestState::Opened).await?;
            Ok::<_, GitLabError>((p, mrs))
        };
        let (p, mrs) = match listed.await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, project = %path, "policy reconcile: cannot list merge requests");
                last_error = Some(e);
                continue;
            }
        };
        reached += 1;
        for mr in mrs {
            match check_mr(ctx, p.id, &p.path_with_namespace, mr.iid, Mode::Ensure).await {
                Ok((Outcome::Posted { .. }, _)) => checked += 1,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, project = %path, mr = mr.iid, "policy reconcile: check failed"),
            }
        }
    }
    match last_error {
        Some(e) if reached == 0 => Err(e),
        _ => Ok(checked),
    }
}
