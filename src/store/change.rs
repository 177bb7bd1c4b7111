//! The changes of component versions (`component_change`, once per component version, and
//! `change_commit`, once per commit of it): the commits a version brought, with their commit times —
//! what lead time for changes is measured from.
//!
//! What a change is and how it is found (GitLab compare of two release tags) is
//! `crate::metrics::changes`'; what is computed from it is `crate::metrics::dora`'s.

use super::{now_ms, Pool, StoreError};

/// One commit a component version brought.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct ChangeCommit {
    /// The component.
    pub component: String,
    /// The component version that brought it.
    pub version: String,
    /// Commit SHA.
    pub sha: String,
    /// First line of its message.
    pub title: String,
    /// Its commit time, epoch ms.
    pub committed_at: i64,
}

/// A component version's change set, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentChange {
    /// The component.
    pub component: String,
    /// Its version.
    pub version: String,
    /// The GitLab project the tag is in.
    pub project_path: String,
    /// The version's tag.
    pub tag: String,
    /// The previous version's tag; `None` for the component's first version (no commits counted).
    pub previous_tag: Option<String>,
    /// The commits between the two tags.
    pub commits: Vec<ChangeCommit>,
}

/// Whether the change set of `component` `version` is recorded.
pub async fn recorded(pool: &Pool, component: &str, version: &str) -> Result<bool, StoreError> {
    let sql = "SELECT COUNT(*) FROM component_change WHERE component = $1 AND version = $2";
    let n: i64 =
        crate::with_pool!(pool, p => sqlx::query_scalar(sql).bind(component).bind(version).fetch_one(p).await)?;
    Ok(n > 0)
}

/// Records a change set. The commits go first and the `component_change` row last, so a crash in between
/// leaves the version unrecorded and the next attempt completes it; each row is inserted once, so a
/// repeated call changes nothing.
pub async fn record(pool: &Pool, change: &ComponentChange) -> Result<(), StoreError> {
    let commit_sql = "INSERT INTO change_commit (component, version, sha, title, committed_at) \
                      VALUES ($1, $2, $3, $4, $5) ON CONFLICT (component, version, sha) DO NOTHING";
    for c in &change.commits {
        crate::with_pool!(pool, p => sqlx::query(commit_sql)
            .bind(&change.component).bind(&change.version).bind(&c.sha).bind(&c.title).bind(c.committed_at)
            .execute(p).await.map(|_| ()))?;
    }
    let sql = "INSERT INTO component_change (component, version, project_path, tag, previous_tag, recorded_at) \
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (component, version) DO NOTHING";
    crate::with_pool!(pool, p => sqlx::query(sql)
        .bind(&change.component).bind(&change.version).bind(&change.project_path).bind(&change.tag)
        .bind(change.previous_tag.as_deref()).bind(now_ms())
        .execute(p).await.map(|_| ()))?;
    Ok(())
}

/// Every recorded commit, by component and version.
pub async fn commits(pool: &Pool) -> Result<Vec<ChangeCommit>, StoreError> {
    let sql = "SELECT component, version, sha, title, committed_at FROM change_commit \
               ORDER BY component, version, committed_at, sha";
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).fetch_all(p).await)?)
}

/// Every recorded commit of one component (all its versions), oldest first.
pub async fn commits_of_component(pool: &Pool, component: &str) -> Result<Vec<ChangeCommit>, StoreError> {
    let sql = "SELECT component, version, sha, title, committed_at FROM change_commit \
               WHERE component = $1 ORDER BY committed_at, sha";
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).bind(component).fetch_all(p).await)?)
}

/// The commits of one component version, oldest first.
pub async fn commits_of(pool: &Pool, component: &str, version: &str) -> Result<Vec<ChangeCommit>, StoreError> {
    let sql = "SELECT component, version, sha, title, committed_at FROM change_commit \
               WHERE component = $1 AND version = $2 ORDER BY committed_at, sha";
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).bind(component).bind(version).fetch_all(p).await)?)
}

/// Component versions of every product version: `(product, version, component, component version)`.
pub async fn release_components(pool: &Pool) -> Result<Vec<(String, String, String, String)>, StoreError> {
    let sql = "SELECT v.product, v.version, c.component, c.version FROM product_version v \
               JOIN product_version_component c ON c.product_version_id = v.id ORDER BY v.product, v.version";
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).fetch_all(p).await)?)
}
