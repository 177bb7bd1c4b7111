//! Work items: the items themselves (`work_item`, replaced whole by each sync), the history of their
//! states (`work_item_state`, appended once per item, time and state), iterations (`work_iteration`),
//! sync cursors (`work_sync_cursor`) and links to merge requests, commits, versions and environments
//! (`work_item_link`, once per item and target), what the source calls each state (`work_state_name`),
//! and the product versions bugs were found and fixed in (`work_item_bug_version`).
//!
//! What the items mean and where they come from is `crate::workitems`'.

use super::{now_ms, Pool, StoreError};
use crate::workitems::{Iteration, Kind, StateChange, WorkItem};

#[derive(sqlx::FromRow)]
struct ItemRow {
    source: String,
    id: String,
    workspace: String,
    short_id: Option<String>,
    kind: String,
    title: String,
    state: String,
    owner: Option<String>,
    iteration_id: Option<String>,
    product: Option<String>,
    version: Option<String>,
    created_at: i64,
    modified_at: i64,
    completed_at: Option<i64>,
}

impl ItemRow {
    fn into_item(self) -> Result<WorkItem, StoreError> {
        let kind = Kind::parse(&self.kind)
            .ok_or_else(|| StoreError::Corrupt { what: "work_item.kind", detail: format!("{:?}", self.kind) })?;
        Ok(WorkItem {
            source: self.source,
            id: self.id,
            workspace: self.workspace,
            short_id: self.short_id,
            kind,
            title: self.title,
            state: self.state,
            owner: self.owner,
            iteration_id: self.iteration_id,
            product: self.product,
            version: self.version,
            created_at: self.created_at,
            modified_at: self.modified_at,
            completed_at: self.completed_at,
        })
    }
}

const ITEM_COLUMNS: &str = "source, id, workspace, short_id, kind, title, state, owner, iteration_id, product, \
                            version, created_at, modified_at, completed_at";

/// Inserts or replaces a work item (keyed by source and id).
pub async fn upsert_item(pool: &Pool, w: &WorkItem) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO work_item ({ITEM_COLUMNS}, synced_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (source, id) DO UPDATE SET workspace = excluded.workspace, short_id = excluded.short_id, \
         kind = excluded.kind, title = excluded.title, state = excluded.state, owner = excluded.owner, \
         iteration_id = excluded.iteration_id, product = excluded.product, version = excluded.version, \
         created_at = excluded.created_at, modified_at = excluded.modified_at, \
         completed_at = excluded.completed_at, synced_at = excluded.synced_at"
    );
    crate::with_pool!(pool, p => sqlx::query(&sql)
        .bind(&w.source).bind(&w.id).bind(&w.workspace).bind(&w.short_id).bind(w.kind.as_str()).bind(&w.title)
        .bind(&w.state).bind(&w.owner).bind(&w.iteration_id).bind(&w.product).bind(&w.version)
        .bind(w.created_at).bind(w.modified_at).bind(w.completed_at).bind(now_ms())
        .execute(p).await.map(|_| ()))?;
    Ok(())
}

/// One work item.
pub async fn item(pool: &Pool, source: &str, id: &str) -> Result<Option<WorkItem>, StoreError> {
    let sql = format!("SELECT {ITEM_COLUMNS} FROM work_item WHERE source = $1 AND id = $2");
    let row: Option<ItemRow> =
        crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(source).bind(id).fetch_optional(p).await)?;
    row.map(ItemRow::into_item).transpose()
}

/// Which work items to list.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    /// Only of this source.
    pub source: Option<String>,
    /// Only of this workspace.
    pub workspace: Option<String>,
    /// Only with this short id.
    pub short_id: Option<String>,
    /// Only of this product.
    pub product: Option<String>,
    /// Only of this product version.
    pub version: Option<String>,
}

/// Work items matching `filter`, by source and id.
pub async fn list(pool: &Pool, filter: &ItemFilter) -> Result<Vec<WorkItem>, StoreError> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM work_item WHERE ($1 IS NULL OR source = $1) AND ($2 IS NULL OR workspace = $2) \
         AND ($3 IS NULL OR short_id = $3) AND ($4 IS NULL OR product = $4) AND ($5 IS NULL OR version = $5) \
         ORDER BY source, id"
    );
    let rows: Vec<ItemRow> = crate::with_pool!(pool, p => sqlx::query_as(&sql)
        .bind(&filter.source).bind(&filter.workspace).bind(&filter.short_id).bind(&filter.product)
        .bind(&filter.version).fetch_all(p).await)?;
    rows.into_iter().map(ItemRow::into_item).collect()
}

/// Records states a work item entered; those already recorded (same time and state) are skipped. Returns
/// how many were new.
pub async fn add_states(pool: &Pool, source: &str, item_id: &str, states: &[StateChange]) -> Result<u64, StoreError> {
    let sql = "INSERT INTO work_item_state (source, item_id, state, changed_at, author) VALUES ($1, $2, $3, $4, $5) \
               ON CONFLICT (source, item_id, changed_at, state) DO NOTHING";
    let mut added = 0;
    for s in states {
        added += crate::with_pool!(pool, p => sqlx::query(sql)
            .bind(source).bind(item_id).bind(&s.state).bind(s.at).bind(&s.author)
            .execute(p).await.map(|r| r.rows_affected()))?;
    }
    Ok(added)
}

/// The states a work item went through, oldest first.
pub async fn history(pool: &Pool, source: &str, item_id: &str) -> Result<Vec<StateChange>, StoreError> {
    let sql = "SELECT state, changed_at, author FROM work_item_state WHERE source = $1 AND item_id = $2 \
               ORDER BY changed_at, id";
    let rows: Vec<(String, i64, Option<String>)> =
        crate::with_pool!(pool, p => sqlx::query_as(sql).bind(source).bind(item_id).fetch_all(p).await)?;
    Ok(rows.into_iter().map(|(state, at, author)| StateChange { state, at, author }).collect())
}

/// Where the last successful sync of `kind` in `workspace` got to.
pub async fn cursor(pool: &Pool, source: &str, workspace: &str, kind: &str) -> Result<Option<String>, StoreError> {
    let sql = "SELECT cursor FROM work_sync_cursor WHERE source = $1 AND workspace = $2 AND kind = $3";
    Ok(crate::with_pool!(pool, p => sqlx::query_scalar(sql)
        .bind(source).bind(workspace).bind(kind).fetch_optional(p).await)?)
}

/// Stores the cursor of a successful sync.
pub async fn set_cursor(pool: &Pool, source: &str, workspace: &str, kind: &str, value: &str) -> Result<(), StoreError> {
    let sql = "INSERT INTO work_sync_cursor (source, workspace, kind, cursor, updated_at) VALUES ($1, $2, $3, $4, $5) \
               ON CONFLICT (source, workspace, kind) DO UPDATE SET cursor = excluded.cursor, \
               updated_at = excluded.updated_at";
    crate::with_pool!(pool, p => sqlx::query(sql)
        .bind(source).bind(workspace).bind(kind).bind(value).bind(now_ms()).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// Forgets the cursors of `workspace`, so its next sync fetches everything again.
pub async fn clear_cursors(pool: &Pool, source: &str, workspace: &str) -> Result<u64, StoreError> {
    let sql = "DELETE FROM work_sync_cursor WHERE source = $1 AND workspace = $2";
    Ok(crate::with_pool!(pool, p => sqlx::query(sql)
        .bind(source).bind(workspace).execute(p).await.map(|r| r.rows_affected()))?)
}

/// Inserts or replaces an iteration.
pub async fn upsert_iteration(pool: &Pool, it: &Iteration) -> Result<(), StoreError> {
    let sql = "INSERT INTO work_iteration (source, id, workspace, name, status, version, modified_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (source, id) DO UPDATE SET \
               workspace = excluded.workspace, name = excluded.name, status = excluded.status, \
               version = excluded.version, modified_at = excluded.modified_at";
    crate::with_pool!(pool, p => sqlx::query(sql)
        .bind(&it.source).bind(&it.id).bind(&it.workspace).bind(&it.name).bind(&it.status).bind(&it.version)
        .bind(it.modified_at).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// One iteration.
pub async fn iteration(pool: &Pool, source: &str, id: &str) -> Result<Option<Iteration>, StoreError> {
    let sql = "SELECT source, id, workspace, name, status, version, modified_at FROM work_iteration \
               WHERE source = $1 AND id = $2";
    type Row = (String, String, String, String, String, Option<String>, i64);
    let row: Option<Row> =
        crate::with_pool!(pool, p => sqlx::query_as(sql).bind(source).bind(id).fetch_optional(p).await)?;
    Ok(row.map(|(source, id, workspace, name, status, version, modified_at)| Iteration {
        source,
        id,
        workspace,
        name,
        status,
        version,
        modified_at,
    }))
}

/// A link of a work item to something else.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Link {
    /// The item's source.
    pub source: String,
    /// The item's id.
    pub item_id: String,
    /// `merge_request`, `commit`, `component_version`, `product_version` or `environment`.
    pub target_kind: String,
    /// `group/project!iid`, a commit sha, `component@version`, `product@version`, an environment name.
    pub target: String,
    /// Where the reference was found: `title`, `branch`, `commit_message`, `iteration`, `deploy`.
    pub via: String,
}

/// Records a link; `false` when it was recorded before.
pub async fn add_link(pool: &Pool, link: &Link) -> Result<bool, StoreError> {
    let sql = "INSERT INTO work_item_link (source, item_id, target_kind, target, via, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, item_id, target_kind, target) DO NOTHING";
    let n = crate::with_pool!(pool, p => sqlx::query(sql)
        .bind(&link.source).bind(&link.item_id).bind(&link.target_kind).bind(&link.target).bind(&link.via)
        .bind(now_ms()).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// The links of one work item, in the order recorded.
pub async fn links_of(pool: &Pool, source: &str, item_id: &str) -> Result<Vec<Link>, StoreError> {
    let sql = "SELECT source, item_id, target_kind, target, via FROM work_item_link \
               WHERE source = $1 AND item_id = $2 ORDER BY id";
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).bind(source).bind(item_id).fetch_all(p).await)?)
}

/// Records what the source calls each state of `kind` in `workspace` (replacing earlier names).
pub async fn set_state_names(
    pool: &Pool,
    source: &str,
    workspace: &str,
    kind: &str,
    names: &std::collections::BTreeMap<String, String>,
) -> Result<(), StoreError> {
    let sql = "INSERT INTO work_state_name (source, workspace, kind, state, label) VALUES ($1, $2, $3, $4, $5) \
               ON CONFLICT (source, workspace, kind, state) DO UPDATE SET label = excluded.label";
    for (state, label) in names {
        crate::with_pool!(pool, p => sqlx::query(sql)
            .bind(source).bind(workspace).bind(kind).bind(state).bind(label).execute(p).await.map(|_| ()))?;
    }
    Ok(())
}

/// What the source calls each state of `kind` in `workspace`.
pub async fn state_names(
    pool: &Pool,
    source: &str,
    workspace: &str,
    kind: &str,
) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
    let sql = "SELECT state, label FROM work_state_name WHERE source = $1 AND workspace = $2 AND kind = $3";
    let rows: Vec<(String, String)> = crate::with_pool!(pool, p => sqlx::query_as(sql)
        .bind(source).bind(workspace).bind(kind).fetch_all(p).await)?;
    Ok(rows.into_iter().collect())
}

/// Records the product versions bug `item` was found in and fixed in (replacing what was recorded).
pub async fn set_bug_versions(
    pool: &Pool,
    item: &WorkItem,
    found_in: Option<&str>,
    fixed_in: Option<&str>,
) -> Result<(), StoreError> {
    let Some(product) = &item.product else { return Ok(()) };
    let sql = "INSERT INTO work_item_bug_version (source, item_id, product, found_in, fixed_in) \
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source, item_id) DO UPDATE SET product = excluded.product, \
               found_in = excluded.found_in, fixed_in = excluded.fixed_in";
    crate::with_pool!(pool, p => sqlx::query(sql)
        .bind(&item.source).bind(&item.id).bind(product).bind(found_in).bind(fixed_in)
        .execute(p).await.map(|_| ()))?;
    Ok(())
}

/// Bugs per product version: `(product, version, found in it, fixed in it, found in it and still open)`.
pub async fn bugs_per_version(pool: &Pool) -> Result<Vec<(String, String, i64, i64, i64)>, StoreError> {
    let sql = "SELECT product, version, SUM(found), SUM(fixed), SUM(still_open) FROM ( \
                 SELECT b.product, b.found_in AS version, 1 AS found, 0 AS fixed, \
                        CASE WHEN w.completed_at IS NULL THEN 1 ELSE 0 END AS still_open \
                 FROM work_item_bug_version b JOIN work_item w ON w.source = b.source AND w.id = b.item_id \
                 WHERE b.found_in IS NOT NULL \
                 UNION ALL \
                 SELECT b.product, b.fixed_in, 0, 1, 0 FROM work_item_bug_version b WHERE b.fixed_in IS NOT NULL \
               ) t GROUP BY product, version";
    Ok(crate::with_pool!(pool, p => sqlx::query_as(sql).fetch_all(p).await)?)
}
