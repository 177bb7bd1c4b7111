//! `GET /metrics` parses as Prometheus text and reports the store's state; `GET /api/v1/metrics/{name}`
//! serves DORA numbers and daily deployments from stored deploy tasks as JSON, CSV and JSON lines, on
//! SQLite and PostgreSQL.

use serde_json::Value;

use crate::both_backends;
use crate::support::{spawn_app, spawn_app_with, TestApp, TestDb};

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;
/// 2024-03-01T00:00:00Z.
const T0: i64 = 1_709_251_200_000;

/// Finished deploy tasks with known times (the history of `metrics::dora`'s unit test, on `prod`, plus a
/// `env-1` deploy and one still queued).
async fn history(app: &TestApp) {
    history_at(app, T0).await
}

/// [`history`] shifted to start at `t0` (epoch ms, a midnight UTC for the same days).
pub async fn history_at(app: &TestApp, t0: i64) {
    let rows: [(&str, &str, &str, &str, i64); 11] = [
        ("release", "prod", "1.0.0", "succeeded", 10 * H),
        ("release", "prod", "1.1.0", "succeeded", 2 * DAY + 10 * H),
        ("release", "prod", "1.1.1", "succeeded", 2 * DAY + 14 * H),
        ("release", "prod", "1.2.0", "failed", 4 * DAY + 9 * H),
        ("release", "prod", "1.2.0", "succeeded", 4 * DAY + 11 * H),
        ("release", "prod", "1.3.0", "succeeded", 6 * DAY + 10 * H),
        ("rollback", "prod", "1.2.0", "succeeded", 6 * DAY + 10 * H + H / 2),
        ("release", "prod", "1.4.0", "failed", 8 * DAY + 8 * H),
        ("release", "prod", "1.4.1", "succeeded", 8 * DAY + 14 * H),
        ("release", "env-1", "1.0.0", "succeeded", DAY),
        ("release", "env-1", "1.4.1", "queued", 0),
    ];
    for (i, (kind, env, version, status, at)) in rows.into_iter().enumerate() {
        let finished = (status != "queued").then_some(t0 + at);
        let sql = "INSERT INTO deploy_task (kind, env, product, version, status, requested_by, idempotency_key, \
                   created_at, started_at, finished_at) VALUES ($1, $2, 'monitor', $3, $4, 'test', $5, $6, $7, $8)";
        tao::with_pool!(&app.pool, p => sqlx::query(sql)
            .bind(kind).bind(env).bind(version).bind(status).bind(format!("history-{i}"))
            .bind(t0 + at - 60_000).bind(finished.map(|f| f - 30_000)).bind(finished)
            .execute(p).await.map(|_| ()))
        .unwrap();
    }
}

async fn get_text(app: &TestApp, path: &str) -> (u16, String, String) {
    let r = app.http.get(format!("{}{path}", app.base)).bearer_auth(&app.reader).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

async fn prometheus_text_reports_the_store(db: TestDb) {
    // No deploy workers: the history's queued task must stay queued (a worker would claim it).
    let app = spawn_app_with(db, |s| s.workers = 0).await;
    history(&app).await;
    let (status, ct, text) = get_text(&app, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let value = |name: &str, labels: &[(&str, &str)]| {
        scrape.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).map(
            |s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            },
        )
    };
    assert_eq!(value("tao_deploy_tasks", &[("env", "prod"), ("status", "succeeded")]), Some(7.0));
    assert_eq!(value("tao_deploy_tasks", &[("env", "prod"), ("status", "failed")]), Some(2.0));
    assert_eq!(value("tao_deploy_queue_depth", &[]), Some(1.0));
    assert_eq!(value("tao_gitlab_events_unprocessed", &[]), Some(0.0));
    assert_eq!(value("tao_gitlab_event_lag_seconds", &[]), Some(0.0));
    assert_eq!(value("tao_notifications_pending", &[]), Some(0.0));
    assert!(scrape.docs.contains_key("tao_gitlab_api_errors"), "{:?}", scrape.docs.keys());
    let anonymous = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}
both_backends!(metrics_endpoint_parses_as_prometheus_text, prometheus_text_reports_the_store);

async fn infinity_series_from_stored_deploys(db: TestDb) {
    let app = spawn_app_with(db, |s| s.workers = 0).await;
    history(&app).await;
    let window = format!("from={T0}&to={}", T0 + 10 * DAY);
    let r = app.get(&format!("/api/v1/metrics/dora?product=monitor&{window}"), &app.reader).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rows = r.body.as_array().unwrap();
    let prod = rows.iter().find(|x| x["tier"] == "prod").unwrap();
    assert_eq!(
        (prod["deployments"].as_i64(), prod["successful"].as_i64(), prod["failed_changes"].as_i64()),
        (Some(9), Some(7), Some(4))
    );
    assert!((prod["deployment_frequency"].as_f64().unwrap() - 0.7).abs() < 1e-9);
    assert!((prod["change_failure_rate"].as_f64().unwrap() - 4.0 / 9.0).abs() < 1e-9);
    assert_eq!(prod["time_to_restore_median_s"], 14_400.0);
    let test = rows.iter().find(|x| x["tier"] == "test").unwrap();
    assert_eq!(test["deployments"], 1);

    let (status, ct, csv) = get_text(&app, &format!("/api/v1/metrics/deployments?env=prod&{window}&format=csv")).await;
    assert_eq!((status, ct.as_str()), (200, "text/csv; charset=utf-8"));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("deployments,env,product,status,tier,time"));
    assert_eq!(lines.next(), Some("1,prod,monitor,succeeded,prod,2024-03-01T00:00:00Z"));
    assert_eq!(csv.lines().count(), 1 + 7, "{csv}");
    // A window with no rows still starts with the header row (pandas and Grafana's Infinity need it).
    let (status, _, csv) = get_text(
        &app,
        "/api/v1/metrics/deployments?env=prod&from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z&format=csv",
    )
    .await;
    assert_eq!((status, csv.as_str()), (200, "deployments,env,product,status,tier,time\n"));

    let (_, ct, lines) = get_text(&app, &format!("/api/v1/metrics/deployments?{window}&format=ndjson")).await;
    assert_eq!(ct, "application/x-ndjson");
    let parsed: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parsed.iter().map(|r| r["deployments"].as_i64().unwrap()).sum::<i64>(), 10);

    let unknown = app.get("/api/v1/metrics/velocity", &app.reader).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.to_string().contains("dora, deployments"), "{:?}", unknown.body);
    let bad = app.get("/api/v1/metrics/dora?from=yesterday&format=xml", &app.reader).await;
    assert_eq!(bad.status, 422);
    let text = bad.body.to_string();
    assert!(text.contains("from") && text.contains("json, csv or ndjson"), "{text}");
}
both_backends!(metrics_series_for_grafana_infinity, infinity_series_from_stored_deploys);

/// The shipped Grafana dashboard asks only for what Tao serves: every Infinity URL answers (with Grafana's
/// variables filled in), every SQL panel runs on PostgreSQL's views, every Prometheus expression names a
/// metric `/metrics` exposes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_queries_what_tao_serves() {
    crate::support::limit(the_grafana_dashboard_queries_what_tao_serves_body()).await
}

async fn the_grafana_dashboard_queries_what_tao_serves_body() {
    let app = spawn_app(TestDb::postgres().await).await;
    history(&app).await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/grafana/tao-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let fill = |s: &str| {
        s.replace("${tao_url}", &app.base)
            .replace("${product}", "monitor")
            .replace("${env}", "prod")
            .replace("${__from}", &T0.to_string())
            .replace("${__to}", &(T0 + 10 * DAY).to_string())
    };
    let (_, _, exposition) = get_text(&app, "/metrics").await;
    let (mut urls, mut sqls, mut exprs) = (0, 0, 0);
    let time_filter = regex::Regex::new(r"\$__timeFilter\(([^()]*\([^()]*\)[^()]*)\)").unwrap();
    let metric_name = regex::Regex::new(r"tao_[a-z_]+").unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            if let Some(url) = target["url"].as_str() {
                let r = app.http.get(fill(url)).bearer_auth(&app.reader).send().await.unwrap();
                assert_eq!(r.status(), 200, "{url}");
                let body = r.text().await.unwrap();
                for column in target["columns"].as_array().into_iter().flatten() {
                    let name = column["selector"].as_str().unwrap();
                    assert!(body.lines().next().unwrap_or_default().split(',').any(|c| c == name), "{name} in {body}");
                }
                urls += 1;
            }
            if let Some(sql) = target["rawSql"].as_str() {
                let sql = fill(sql);
                let sql = time_filter.replace_all(&sql, "$1 BETWEEN to_timestamp(0) AND now()").to_string();
                tao::with_pool!(&app.pool, p => sqlx::query(&sql).fetch_all(p).await.map(|_| ()))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                sqls += 1;
            }
            if let Some(expr) = target["expr"].as_str() {
                for m in metric_name.find_iter(expr) {
                    let name = m.as_str().trim_end_matches("_total");
                    assert!(exposition.contains(&format!("# TYPE {name} ")), "{name} is not exposed");
                }
                exprs += 1;
            }
        }
    }
    assert_eq!((urls, sqls, exprs), (3, 2, 4));
}

/// Runs `tao report ARGS -o FILE` (the built binary) against `app` and returns the PNG's size.
pub async fn report_png(app: &TestApp, args: &[&str]) -> (u32, u32) {
    png_size(&report_bytes(app, args).await)
}

/// The width and height of a PNG (which must decode).
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
    (reader.info().width, reader.info().height)
}

/// Runs `tao report ARGS -o FILE` (the built binary) against `app` and returns the file.
pub async fn report_bytes(app: &TestApp, args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.png");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tao"))
        .arg("report")
        .args(args)
        .arg("-o")
        .arg(&file)
        .args(["--server", &app.base])
        .env("TAO_TOKEN", &app.reader)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(&file).unwrap()
}

/// `tao report dora` (the built binary) writes a valid PNG of the asked size from the server's series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dora_report_is_a_png_of_the_asked_size() {
    crate::support::limit(the_dora_report_is_a_png_of_the_asked_size_body()).await
}

async fn the_dora_report_is_a_png_of_the_asked_size_body() {
    let app = spawn_app(TestDb::sqlite()).await;
    history(&app).await;
    assert_eq!(report_png(&app, &["dora", "monitor", "--days", "366", "--size", "900x500"]).await, (900, 500));
    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_tao"))
        .args(["report", "dora", "monitor", "--size", "9x9", "--server", &app.base])
        .env("TAO_TOKEN", &app.reader)
        .output()
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--size: each side 200 to 4000 pixels"));
}

async fn store_event(app: &TestApp, header: &str, key: &str, payload: &Value, received_at: i64) {
    use tao::gitlab::webhook::{envelope, DeliveryHeaders};
    let headers =
        DeliveryHeaders { event: Some(header.into()), idempotency_key: Some(key.into()), ..Default::default() };
    let bytes = serde_json::to_vec(payload).unwrap();
    let new = envelope(&headers, &bytes, received_at, || unreachable!()).unwrap();
    tao::store::event::insert(&app.pool, &new).await.unwrap();
}

/// MR cycle time and pipeline outcomes come from stored webhooks (fixtures with known times).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_series_mr_cycle_time_and_pipelines() {
    crate::support::limit(event_series_mr_cycle_time_and_pipelines_body()).await
}

async fn event_series_mr_cycle_time_and_pipelines_body() {
    let app = spawn_app(TestDb::sqlite()).await;
    let fixture =
        |name: &str| -> Value { serde_json::from_slice(&crate::support::gitlab::webhook_fixture(name)).unwrap() };
    let mut mr = fixture("merge_request.json");
    mr["project"]["path_with_namespace"] = "monitor/api".into();
    mr["object_attributes"]["created_at"] = "2024-03-01T10:00:00Z".into();
    mr["object_attributes"]["iid"] = 7.into();
    store_event(&app, "Merge Request Hook", "mr-open", &mr, T0 + 10 * H).await;
    mr["object_attributes"]["action"] = "merge".into();
    store_event(&app, "Merge Request Hook", "mr-merge", &mr, T0 + DAY).await;
    store_event(&app, "Merge Request Hook", "mr-merge-resent", &mr, T0 + DAY + 1000).await;
    let mut other = mr.clone();
    other["project"]["path_with_namespace"] = "elsewhere/x".into();
    store_event(&app, "Merge Request Hook", "other-merge", &other, T0 + DAY).await;
    let mut pl = fixture("pipeline.json");
    pl["project"]["path_with_namespace"] = "monitor/api".into();
    pl["object_attributes"]["finished_at"] = "2024-03-02 12:00:00 UTC".into();
    for (key, id, status) in [("p1-run", 1, "running"), ("p1-ok", 1, "success"), ("p2-fail", 2, "failed")] {
        pl["object_attributes"]["id"] = id.into();
        pl["object_attributes"]["status"] = status.into();
        store_event(&app, "Pipeline Hook", key, &pl, T0 + DAY + 12 * H).await;
    }
    let window = format!("from={T0}&to={}", T0 + 10 * DAY);
    let r = app.get(&format!("/api/v1/metrics/mr_cycle_time?product=monitor&{window}"), &app.reader).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body,
        serde_json::json!([{ "project": "monitor/api", "iid": 7, "opened_at": "2024-03-01T10:00:00.000Z",
                             "merged_at": "2024-03-02T00:00:00.000Z", "hours": 14.0 }])
    );
    let all = app.get(&format!("/api/v1/metrics/mr_cycle_time?{window}"), &app.reader).await;
    assert_eq!(all.body.as_array().unwrap().len(), 2, "without a product, every project");
    let r = app.get(&format!("/api/v1/metrics/pipelines?product=monitor&{window}"), &app.reader).await;
    assert_eq!(
        r.body,
        serde_json::json!([{ "time": "2024-03-02T00:00:00Z", "project": "monitor/api", "succeeded": 1, "failed": 1,
                             "canceled": 0, "success_rate": 0.5 }])
    );
}
