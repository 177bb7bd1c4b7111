//! Branch policy records: the latest verdict per merge request (`policy_check`) and the violations found
//! in pushes and tags (`policy_violation`).
//!
//! A check row is replaced whole by each check of the MR; violations are appended once per delivery and
//! rule, so a replayed webhook records nothing twice. What the verdicts mean is `crate::policy`'s.

use super::{is_unique_violation, now_ms, Pool, StoreError};

/// The latest check of a merge request.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct CheckRow {
    /// GitLab project id.
    pub project_id: i64,
    /// Merge request iid.
    pub mr_iid: i64,
    /// `group/project`.
    pub project_path: String,
    /// The head the verdict is about.
    pub head_sha: String,
    /// The pipeline the status was attached to.
    pub pipeline_id: Option<i64>,
    /// Source branch.
    pub source_branch: String,
    /// Target branch.
    pub target_branch: String,
    /// MR title.
    pub title: String,
    /// `success` or `failed`.
    pub state: String,
    /// The verdict, as JSON (`{"violations": [...]}`).
    pub verdict: String,
    /// When, epoch ms.
    pub checked_at: i64,
}

const CHECK_COLUMNS: &str = "project_id, mr_iid, project_path, head_sha, pipeline_id, source_branch, target_branch, \
                             title, state, verdict, checked_at";

/// Records the latest check of an MR (replacing the previous one).
pub async fn save_check(pool: &Pool, row: &CheckRow) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO policy_check ({CHECK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (project_id, mr_iid) DO UPDATE SET project_path = excluded.project_path, \
         head_sha = excluded.head_sha, pipeline_id = excluded.pipeline_id, source_branch = excluded.source_branch, \
         target_branch = excluded.target_branch, title = excluded.title, state = excluded.state, \
         verdict = excluded.verdict, checked_at = excluded.checked_at"
    );
    crate::with_pool!(pool, p => sqlx::query(&sql)
        .bind(row.project_id).bind(row.mr_iid).bind(&row.project_path).bind(&row.head_sha).bind(row.pipeline_id)
        .bind(&row.source_branch).bind(&row.target_branch).bind(&row.title).bind(&row.state).bind(&row.verdict)
        .bind(row.checked_at)
        .execute(p).await.map(|_| ()))?;
    Ok(())
}

/// The latest check of MR `iid` of the project at `project_path`.
pub async fn check(pool: &Pool, project_path: &str, iid: i64) -> Result<Option<CheckRow>, StoreError> {
    let sql = format!("SELECT {CHECK_COLUMNS} FROM policy_check WHERE project_path = $1 AND mr_iid = $2");
    Ok(crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(project_path).bind(iid).fetch_optional(p).await)?)
}

/// A violation found in a push or a tag.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct ViolationRow {
    /// Sequence number.
    pub id: i64,
    /// GitLab project id.
    pub project_id: Option<i64>,
    /// `group/project`.
    pub project_path: String,
    /// `push` or `tag`.
    pub kind: String,
    /// Branch or tag.
    pub git_ref: String,
    /// Commit.
    pub sha: Option<String>,
    /// Who (GitLab username).
    pub actor: Option<String>,
    /// Rule id.
    pub rule: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
    /// The webhook delivery it was found in.
    pub delivery_id: String,
    /// When recorded, epoch ms.
    pub created_at: i64,
}

/// A violation to record.
#[derive(Debug, Clone, Default)]
pub struct NewViolation {
    /// GitLab project id.
    pub project_id: Option<i64>,
    /// `group/project`.
    pub project_path: String,
    /// `push` or `tag`.
    pub kind: String,
    /// Branch or tag.
    pub git_ref: String,
    /// Commit.
    pub sha: Option<String>,
    /// Who.
    pub actor: Option<String>,
    /// Rule id.
    pub rule: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
    /// The webhook delivery.
    pub delivery_id: String,
}

/// Records a violation; `false` when this delivery already recorded this rule (a replay).
pub async fn record_violation(pool: &Pool, v: &NewViolation) -> Result<bool, StoreError> {
    let sql = "INSERT INTO policy_violation (project_id, project_path, kind, git_ref, sha, actor, rule, message, fix, \
               delivery_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    let result = crate::with_pool!(pool, p => sqlx::query(sql)
        .bind(v.project_id).bind(&v.project_path).bind(&v.kind).bind(&v.git_ref).bind(&v.sha).bind(&v.actor)
        .bind(&v.rule).bind(&v.message).bind(&v.fix).bind(&v.delivery_id).bind(now_ms())
        .execute(p).await.map(|_| ()));
    match result {
        Ok(()) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Violations, oldest first, optionally of one project and since a time (epoch ms), after id `after`,
/// at most `limit` (keyset pages for streaming).
pub async fn violations(
    pool: &Pool,
    project: Option<&str>,
    since: Option<i64>,
    after: i64,
    limit: i64,
) -> Result<Vec<ViolationRow>, StoreError> {
    let sql = "SELECT id, project_id, project_path, kind, git_ref, sha, actor, rule, message, fix, delivery_id, \
               created_at FROM policy_violation WHERE id > $1 AND ($2 IS NULL OR project_path = $2) \
               AND ($3 IS NULL OR created_at >= $3) ORDER BY id LIMIT $4";
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql)
        .bind(after).bind(project).bind(since).bind(limit).fetch_all(p).await)?)
}

/// The latest checks that failed (MRs whose `tao/policy` is failing), newest first, at most `limit`.
pub async fn failing_checks(pool: &Pool, limit: i64) -> Result<Vec<CheckRow>, StoreError> {
    let sql =
        format!("SELECT {CHECK_COLUMNS} FROM policy_check WHERE state = 'failed' ORDER BY checked_at DESC LIMIT $1");
    Ok(crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(limit).fetch_all(p).await)?)
}
