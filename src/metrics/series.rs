//! The series behind `GET /api/v1/metrics/{name}` (Grafana's Infinity data source, pandas): rows of
//! flat fields, rendered as a JSON array, CSV or JSON lines.
//!
//! Series: `dora` (one row per product and tier: `crate::metrics::dora`; lead time from `store::change`)
//! and `deployments` (finished deploy tasks per day, product, environment and status) from stored deploy
//! tasks; `mr_cycle_time` (each merged MR: opened, merged, hours between) and `pipelines` (finished
//! pipelines per day and project, with the success rate) from stored GitLab events (events whose payload
//! was pruned by retention are skipped); `cfd` (items per day and state) and `bugs` (found in, fixed in,
//! still open per product version) from work items. With `product=`, event series keep the projects of
//! that product's components.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::dora::{self, DeployFact};
use super::events;
use crate::catalog::Catalog;
use crate::store::{Pool, StoreError};

/// The series Tao serves.
pub const NAMES: &[&str] = &["dora", "deployments", "mr_cycle_time", "pipelines", "cfd", "bugs"];

/// Filters of a series request (times in epoch ms; `to` exclusive).
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only this product.
    pub product: Option<String>,
    /// Only this environment.
    pub env: Option<String>,
    /// Only this product version (work-item series: the iteration it maps to).
    pub version: Option<String>,
    /// Window start.
    pub from: i64,
    /// Window end.
    pub to: i64,
}

type Row = (i64, String, String, Option<String>, Option<String>, String, i64);

/// Finished deploy tasks from `since` on (later than the window too: a failed change is judged by what
/// followed; earlier too for DORA: which changes arrived before the window).
async fn facts(pool: &Pool, catalog: &Catalog, q: &Query, since: i64) -> Result<Vec<DeployFact>, StoreError> {
    let sql = "SELECT id, kind, env, product, version, status, finished_at FROM deploy_task \
               WHERE finished_at IS NOT NULL AND finished_at >= $1 ORDER BY finished_at, id";
    let rows: Vec<Row> = crate::with_pool!(pool, p => sqlx::query_as(sql).bind(since).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .filter(|r| q.env.as_deref().is_none_or(|e| e == r.2))
        .filter(|r| q.product.as_deref().is_none_or(|p| r.3.as_deref() == Some(p)))
        .map(|(id, kind, env, product, version, status, finished_at)| {
            let tier = catalog.environments.iter().find(|(n, _)| n.as_str() == env).map(|(_, e)| e.tier.as_str());
            DeployFact {
                id,
                kind,
                tier: tier.unwrap_or("unknown").to_string(),
                env,
                product,
                version,
                status,
                finished_at,
            }
        })
        .collect())
}

/// What the stored product versions brought (`store::change`), for lead time.
pub async fn changes(pool: &Pool) -> Result<dora::Changes, StoreError> {
    let mut out = dora::Changes::default();
    for (product, version, component, component_version) in crate::store::change::release_components(pool).await? {
        out.versions.entry((product, version)).or_default().push((component, component_version));
    }
    for c in crate::store::change::commits(pool).await? {
        out.commits.entry((c.component, c.version)).or_default().push(c.committed_at);
    }
    Ok(out)
}

/// The rows of series `name`; `None` for an unknown name.
pub async fn rows(
    pool: &Pool,
    catalog: &Catalog,
    name: &str,
    q: &Query,
) -> Result<Option<Vec<Map<String, Value>>>, StoreError> {
    let facts = match name {
        "dora" => facts(pool, catalog, q, i64::MIN).await?,
        "deployments" => facts(pool, catalog, q, q.from).await?,
        "mr_cycle_time" | "pipelines" => return events::rows(pool, catalog, name, q).await.map(Some),
        "cfd" => return cfd_rows(pool, q).await.map(Some),
        "bugs" => return bug_rows(pool, q).await.map(Some),
        _ => return Ok(None),
    };
    let out = match name {
        "dora" => dora::compute(&facts, &changes(pool).await?, q.from, q.to)
            .into_iter()
            .map(|d| match serde_json::to_value(d) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            })
            .collect(),
        _ => {
            let mut counts: BTreeMap<(String, String, String, String, String), i64> = BTreeMap::new();
            for f in facts.iter().filter(|f| f.finished_at < q.to) {
                let day = crate::store::rfc3339(f.finished_at)[..10].to_string();
                let product = f.product.clone().unwrap_or_default();
                *counts.entry((day, product, f.env.clone(), f.tier.clone(), f.status.clone())).or_default() += 1;
            }
            counts
                .into_iter()
                .map(|((day, product, env, tier, status), n)| {
                    let v = json!({ "time": format!("{day}T00:00:00Z"), "product": product, "env": env, "tier": tier,
                                    "status": status, "deployments": n });
                    v.as_object().cloned().unwrap_or_default()
                })
                .collect()
        }
    };
    Ok(Some(out))
}

/// Bugs per product version (of `product=`, or one `version=`), oldest version first: found in it, fixed in
/// it, and found in it and still open. Independent of the time window: a version's bug count is its own.
async fn bug_rows(pool: &Pool, q: &Query) -> Result<Vec<Map<String, Value>>, StoreError> {
    let mut rows: Vec<_> = crate::store::workitem::bugs_per_version(pool)
        .await?
        .into_iter()
        .filter(|r| q.product.as_deref().is_none_or(|p| p == r.0))
        .filter(|r| q.version.as_deref().is_none_or(|v| v == r.1))
        .collect();
    let order = |v: &str| semver::Version::parse(v).ok();
    rows.sort_by(|a, b| (&a.0, order(&a.1), &a.1).cmp(&(&b.0, order(&b.1), &b.1)));
    Ok(rows
        .into_iter()
        .map(|(product, version, found, fixed, open)| {
            let v = json!({ "product": product, "version": version, "found": found, "fixed": fixed, "open": open });
            v.as_object().cloned().unwrap_or_default()
        })
        .collect())
}

/// The cumulative flow of the product's work items (of one version when given), one row per day and state.
async fn cfd_rows(pool: &Pool, q: &Query) -> Result<Vec<Map<String, Value>>, StoreError> {
    let filter = crate::store::workitem::ItemFilter {
        product: q.product.clone(),
        version: q.version.clone(),
        ..Default::default()
    };
    let mut items = Vec::new();
    for w in crate::store::workitem::list(pool, &filter).await? {
        let history = crate::store::workitem::history(pool, &w.source, &w.id).await?;
        let initial = history.first().map(|c| c.state.clone()).unwrap_or_else(|| w.state.clone());
        items.push(super::cfd::FlowItem { created_at: w.created_at, initial_state: initial, history });
    }
    const DAY: i64 = 86_400_000;
    let first_end = q.from - q.from.rem_euclid(DAY) + DAY;
    let ends: Vec<i64> = (0..).map(|k| first_end + k * DAY).take_while(|e| *e < q.to + DAY).take(3660).collect();
    let flow = super::cfd::compute(&items, &ends);
    let mut out = Vec::new();
    for (i, end) in ends.iter().enumerate() {
        let day = &crate::store::rfc3339(end - DAY)[..10];
        for (state, counts) in &flow {
            let v = json!({ "time": format!("{day}T00:00:00Z"), "state": state, "items": counts[i] });
            out.push(v.as_object().cloned().unwrap_or_default());
        }
    }
    Ok(out)
}

fn csv_field(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The fields of each row of series `name`, in the order rows hold them (a JSON object's keys sort); so an
/// empty series still has its CSV header row (pandas and Grafana's Infinity fail on an empty file).
pub fn columns(name: &str) -> &'static [&'static str] {
    match name {
        "dora" => &[
            "change_failure_rate",
            "changes",
            "deployment_frequency",
            "deployments",
            "failed_changes",
            "lead_time_mean_s",
            "lead_time_median_s",
            "product",
            "restores",
            "successful",
            "tier",
            "time_to_restore_mean_s",
            "time_to_restore_median_s",
        ],
        "deployments" => &["deployments", "env", "product", "status", "tier", "time"],
        "mr_cycle_time" => &["hours", "iid", "merged_at", "opened_at", "project"],
        "pipelines" => &["canceled", "failed", "project", "succeeded", "success_rate", "time"],
        "cfd" => &["items", "state", "time"],
        "bugs" => &["fixed", "found", "open", "product", "version"],
        _ => &[],
    }
}

/// Rows as CSV: the header row names `columns` (always, also without rows), each row their values.
pub fn to_csv(columns: &[&str], rows: &[Map<String, Value>]) -> String {
    debug_assert!(
        rows.first().is_none_or(|r| r.keys().map(String::as_str).eq(columns.iter().copied())),
        "the rows' fields are the series' columns"
    );
    let keys: Vec<String> = columns.iter().map(|k| k.to_string()).collect();
    let mut out = keys.iter().map(|k| csv_field(&Value::String(k.clone()))).collect::<Vec<_>>().join(",");
    out.push('\n');
    for r in rows {
        let line: Vec<String> = keys.iter().map(|k| csv_field(r.get(k).unwrap_or(&Value::Null))).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let rows: Vec<Map<String, Value>> = vec![
            json!({"a": "x,y", "b": 1.5, "c": null}).as_object().unwrap().clone(),
            json!({"a": "say \"hi\"", "b": 2, "c": true}).as_object().unwrap().clone(),
        ];
        assert_eq!(to_csv(&["a", "b", "c"], &rows), "a,b,c\n\"x,y\",1.5,\n\"say \"\"hi\"\"\",2,true\n");
        assert_eq!(to_csv(&["a", "b", "c"], &[]), "a,b,c\n", "an empty series keeps its header row");
    }

    #[test]
    fn every_series_names_its_columns_in_row_order() {
        for name in NAMES {
            let cols = columns(name);
            assert!(!cols.is_empty(), "{name} has columns");
            assert!(cols.windows(2).all(|w| w[0] < w[1]), "{name}: columns in the order a JSON object keeps keys");
        }
        let dora = serde_json::to_value(dora::Dora {
            product: "p".into(),
            tier: "prod".into(),
            deployments: 0,
            successful: 0,
            deployment_frequency: 0.0,
            failed_changes: 0,
            change_failure_rate: 0.0,
            restores: 0,
            time_to_restore_median_s: None,
            time_to_restore_mean_s: None,
            changes: 0,
            lead_time_median_s: None,
            lead_time_mean_s: None,
        })
        .unwrap();
        let keys: Vec<&str> = dora.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, columns("dora"));
    }
}
