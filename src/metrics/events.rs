//! Series from stored GitLab events: merge request cycle time (opened → merged) and pipeline outcomes
//! per day and project. Reads events page by page; only events in the window are read.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::series::Query;
use crate::catalog::Catalog;
use crate::store::event::{self, EventFilter, EventRow};
use crate::store::{Pool, StoreError};

/// GitLab writes times as `2013-12-03T17:23:34Z` or `2016-08-12 15:23:28 UTC`.
pub fn gitlab_time(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    let bare = s.trim_end_matches(" UTC");
    chrono::NaiveDateTime::parse_from_str(bare, "%Y-%m-%d %H:%M:%S").ok().map(|t| t.and_utc().timestamp_millis())
}

fn projects_of(catalog: &Catalog, product: &str) -> Vec<String> {
    let Some(p) = catalog.products.iter().find(|(n, _)| n.as_str() == product).map(|(_, p)| p) else {
        return Vec::new();
    };
    p.components
        .iter()
        .filter_map(|c| catalog.components.get(c).and_then(|c| c.project.as_ref()).map(|p| p.as_str().to_string()))
        .chain(p.release_project.as_ref().map(|r| r.as_str().to_string()))
        .collect()
}

async fn each_event(
    pool: &Pool,
    kind: &str,
    q: &Query,
    mut f: impl FnMut(&EventRow, &Value),
) -> Result<(), StoreError> {
    let filter =
        EventFilter { kind: Some(kind.into()), since: Some(q.from), until: Some(q.to), ..EventFilter::default() };
    let mut after = 0;
    loop {
        let rows = event::page(pool, &filter, after, 500).await?;
        let Some(last) = rows.last() else { return Ok(()) };
        after = last.id;
        for row in &rows {
            if let Some(payload) = row.payload.as_deref().and_then(|p| serde_json::from_str::<Value>(p).ok()) {
                f(row, &payload);
            }
        }
        if rows.len() < 500 {
            return Ok(());
        }
    }
}

/// The rows of `mr_cycle_time` or `pipelines`.
pub async fn rows(
    pool: &Pool,
    catalog: &Catalog,
    name: &str,
    q: &Query,
) -> Result<Vec<Map<String, Value>>, StoreError> {
    let keep: Option<Vec<String>> = q.product.as_deref().map(|p| projects_of(catalog, p));
    let wanted = |row: &EventRow| match (&keep, &row.project_path) {
        (None, _) => true,
        (Some(list), Some(path)) => list.contains(path),
        (Some(_), None) => false,
    };
    let mut out = Vec::new();
    if name == "mr_cycle_time" {
        let mut seen = std::collections::BTreeSet::new();
        each_event(pool, "merge_request", q, |row, p| {
            let oa = &p["object_attributes"];
            if oa["action"] != "merge" || !wanted(row) {
                return;
            }
            let (Some(iid), Some(opened)) = (oa["iid"].as_i64(), oa["created_at"].as_str().and_then(gitlab_time))
            else {
                return;
            };
            let project = row.project_path.clone().unwrap_or_default();
            if !seen.insert((project.clone(), iid)) {
                return;
            }
            let merged = row.received_at;
            let v = json!({ "project": project, "iid": iid, "opened_at": crate::store::rfc3339(opened),
                            "merged_at": crate::store::rfc3339(merged),
                            "hours": ((merged - opened) as f64 / 3_600_000.0 * 100.0).round() / 100.0 });
            out.push(v.as_object().cloned().unwrap_or_default());
        })
        .await?;
        return Ok(out);
    }
    // The last final status of each pipeline, on the day it finished (or was received).
    let mut last: BTreeMap<(String, i64), (String, i64)> = BTreeMap::new();
    each_event(pool, "pipeline", q, |row, p| {
        let oa = &p["object_attributes"];
        let status = oa["status"].as_str().unwrap_or_default();
        if !matches!(status, "success" | "failed" | "canceled") || !wanted(row) {
            return;
        }
        let Some(id) = oa["id"].as_i64() else { return };
        let at = oa["finished_at"].as_str().and_then(gitlab_time).unwrap_or(row.received_at);
        last.insert((row.project_path.clone().unwrap_or_default(), id), (status.to_string(), at));
    })
    .await?;
    let mut per_day: BTreeMap<(String, String), (i64, i64, i64)> = BTreeMap::new();
    for ((project, _), (status, at)) in last {
        let day = crate::store::rfc3339(at)[..10].to_string();
        let e = per_day.entry((day, project)).or_default();
        match status.as_str() {
            "success" => e.0 += 1,
            "failed" => e.1 += 1,
            _ => e.2 += 1,
        }
    }
    for ((day, project), (ok, failed, canceled)) in per_day {
        let finished = ok + failed;
        let rate = if finished == 0 { Value::Null } else { json!(ok as f64 / finished as f64) };
        let v = json!({ "time": format!("{day}T00:00:00Z"), "project": project, "succeeded": ok, "failed": failed,
                        "canceled": canceled, "success_rate": rate });
        out.push(v.as_object().cloned().unwrap_or_default());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn gitlab_times_in_both_spellings() {
        assert_eq!(super::gitlab_time("2016-08-12 15:23:28 UTC"), Some(1_471_015_408_000));
        assert_eq!(super::gitlab_time("2016-08-12T15:23:28Z"), Some(1_471_015_408_000));
        assert_eq!(super::gitlab_time("yesterday"), None);
    }
}
