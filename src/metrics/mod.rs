//! Delivery metrics and Tao's own health: the Prometheus text exposition of `GET /metrics`
//! (prometheus-client), DORA numbers computed from stored deploys (`dora`), and the series behind
//! `GET /api/v1/metrics/{name}` for Grafana's Infinity data source (`series`), and the PNG pictures of
//! `tao report` and the chat commands `dora` and `cfd` (`report`, drawn by `chart`).
//!
//! Two kinds of values: counters of this process (GitLab API errors, webhook deliveries, task durations),
//! kept in statics the code paths increment; and gauges and totals read from the store at scrape time
//! (queue depth, task counts by status, event backlog and lag, notification backlog, violations), so
//! every replica reports the same store-wide numbers.

pub mod cfd;
pub mod changes;
pub mod chart;
pub mod counters;
pub mod dora;
pub mod events;
pub mod report;
pub mod series;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::{now_ms, Pool, StoreError};
pub use counters::{gitlab_api_error, task_finished, webhook_delivery};
use counters::{GITLAB_ERRORS, TASK_SECONDS, WEBHOOKS};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvStatusLabels {
    env: String,
    status: String,
}

async fn scalar(pool: &Pool, sql: &str) -> Result<i64, StoreError> {
    Ok(crate::with_pool!(pool, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await)?)
}

async fn optional(pool: &Pool, sql: &str) -> Result<Option<i64>, StoreError> {
    Ok(crate::with_pool!(pool, p => sqlx::query_scalar::<_, Option<i64>>(sql).fetch_one(p).await)?)
}

/// The Prometheus text exposition (format 0.0.4 / OpenMetrics text as prometheus-client writes it).
pub async fn render(pool: &Pool) -> Result<String, StoreError> {
    let mut registry = Registry::with_prefix("tao");
    registry.register(
        "gitlab_api_errors",
        "Failed GitLab API calls (each attempt), by call and status",
        GITLAB_ERRORS.clone(),
    );
    registry.register("webhook_deliveries", "GitLab webhook deliveries, by result", WEBHOOKS.clone());
    registry.register(
        "deploy_task_duration_seconds",
        "Deploy task run time in this process, by final status",
        TASK_SECONDS.clone(),
    );

    let by_env: Vec<(String, String, i64)> = crate::with_pool!(pool, p => sqlx::query_as(
        "SELECT env, status, COUNT(*) FROM deploy_task GROUP BY env, status ORDER BY env, status").fetch_all(p).await)?;
    let tasks: Family<EnvStatusLabels, Gauge> = Family::default();
    for (env, status, n) in by_env {
        tasks.get_or_create(&EnvStatusLabels { env, status }).set(n);
    }
    registry.register("deploy_tasks", "Deploy tasks in the store, by environment and status", tasks);

    let gauge = |v: i64| {
        let g: Gauge = Gauge::default();
        g.set(v);
        g
    };
    let queued = scalar(pool, "SELECT COUNT(*) FROM deploy_task WHERE status = 'queued'").await?;
    registry.register("deploy_queue_depth", "Deploy tasks waiting to run", gauge(queued));
    let backlog = crate::store::event::unprocessed(pool).await?;
    registry.register("gitlab_events_unprocessed", "Stored GitLab events not handled yet", gauge(backlog));
    let oldest = optional(pool, "SELECT MIN(received_at) FROM gitlab_event WHERE state <> 'processed'").await?;
    let lag = oldest.map(|t| ((now_ms() - t) / 1000).max(0)).unwrap_or(0);
    registry.register("gitlab_event_lag_seconds", "Age of the oldest unhandled GitLab event", gauge(lag));
    let failed = scalar(pool, "SELECT COUNT(*) FROM gitlab_event WHERE state = 'failed'").await?;
    registry.register("gitlab_events_failed", "GitLab events whose handling failed (retried)", gauge(failed));
    let pending = scalar(pool, "SELECT COUNT(*) FROM notification WHERE state = 'pending'").await?;
    registry.register("notifications_pending", "Notifications waiting for delivery", gauge(pending));
    let dead = scalar(pool, "SELECT COUNT(*) FROM notification WHERE state = 'dead'").await?;
    registry.register("notifications_dead", "Notifications given up after the last attempt", gauge(dead));
    let violations = scalar(pool, "SELECT COUNT(*) FROM policy_violation").await?;
    registry.register("policy_violations", "Recorded push and tag policy violations", gauge(violations));
    let versions = scalar(pool, "SELECT COUNT(*) FROM product_version").await?;
    registry.register("product_versions", "Product versions recorded", gauge(versions));

    let mut out = String::new();
    encode(&mut out, &registry).map_err(|e| StoreError::Db(sqlx::Error::Protocol(format!("encoding metrics: {e}"))))?;
    Ok(out)
}
