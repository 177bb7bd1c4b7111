//! Reading stored events page by page (keyset paging on the event id) for `GET /api/v1/events`, the
//! metrics that read event payloads and the CLI export: the SQL of a page holds only the filters asked
//! for, and cuts the page from `gitlab_event` by its primary key before joining the payloads.
//!
//! The rows and filters are `super::event`'s.

use super::event::{EventFilter, EventRow, COLUMNS};
use super::{Pool, StoreError};

/// Up to `limit` events matching `filter` with id greater than `after`, oldest first (keyset paging).
pub async fn page(pool: &Pool, filter: &EventFilter, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
    let sql = page_sql(filter);
    Ok(crate::with_pool!(pool, p => {
        let mut q = sqlx::query_as(&sql).bind(after);
        if let Some(kind) = &filter.kind {
            q = q.bind(kind.as_str());
        }
        if let Some(id) = filter.project_id {
            q = q.bind(id);
        }
        if let Some(path) = &filter.project_path {
            q = q.bind(path.as_str());
        }
        if let Some(since) = filter.since {
            q = q.bind(since);
        }
        if let Some(until) = filter.until {
            q = q.bind(until);
        }
        if let Some(state) = filter.state {
            q = q.bind(state.as_str());
        }
        q.bind(limit).fetch_all(p).await
    })?)
}

/// The SQL of one [`page`]: only the filters that are set (binds numbered in [`page`]'s order), and the page
/// cut from `gitlab_event` by its primary key *before* the payloads are joined. A generic
/// `($n IS NULL OR …)` form lets PostgreSQL's generic plan join every payload of a million-event table
/// for each page; this form keeps each page an index range scan plus `limit` payload lookups.
fn page_sql(filter: &EventFilter) -> String {
    let mut conds = vec!["id > $1".to_string()];
    let mut n = 1;
    let mut add = |set: bool, cond: &str| {
        if set {
            n += 1;
            conds.push(cond.replace('?', &format!("${n}")));
        }
    };
    add(filter.kind.is_some(), "kind = ?");
    add(filter.project_id.is_some(), "project_id = ?");
    add(filter.project_path.is_some(), "project_path = ?");
    add(filter.since.is_some(), "received_at >= ?");
    add(filter.until.is_some(), "received_at < ?");
    add(filter.state.is_some(), "state = ?");
    let limit = n + 1;
    format!(
        "SELECT e.*, p.payload FROM (SELECT {COLUMNS} FROM gitlab_event WHERE {} ORDER BY id LIMIT ${limit}) e \
         LEFT JOIN gitlab_event_payload p ON p.event_id = e.id ORDER BY e.id",
        conds.join(" AND ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event::EventState;

    #[test]
    fn page_sql_binds_only_the_filters_that_are_set_in_order() {
        let all = page_sql(&EventFilter::default());
        assert!(all.contains("WHERE id > $1 ORDER BY id LIMIT $2)"), "{all}");
        let some = page_sql(&EventFilter {
            kind: Some("push".into()),
            until: Some(5),
            state: Some(EventState::Failed),
            ..EventFilter::default()
        });
        assert!(
            some.contains("WHERE id > $1 AND kind = $2 AND received_at < $3 AND state = $4 ORDER BY id LIMIT $5)"),
            "{some}"
        );
        assert!(!some.contains("IS NULL"), "{some}");
    }
}
