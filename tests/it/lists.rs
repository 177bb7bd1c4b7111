//! Every list endpoint answers a JSON array by default and the same rows as JSON lines with
//! `format=ndjson` or `Accept: application/x-ndjson` (what `pandas.read_json(url, lines=True)` reads);
//! store-backed lists stream page by page, keeping their order and limit across pages. On SQLite and
//! PostgreSQL.

use serde_json::Value;

use crate::both_backends;
use crate::support::{spawn_app, TestApp, TestDb};

/// `(status, content type, body)` of a GET with the reader's token (admin for the audit).
async fn fetch(app: &TestApp, path: &str, token: &str, accept: Option<&str>) -> (u16, String, String) {
    let mut rb = app.http.get(format!("{}{path}", app.base)).bearer_auth(token);
    if let Some(a) = accept {
        rb = rb.header("accept", a);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

/// The array form and both JSON-lines forms of `path` hold the same rows; returns them.
async fn same_rows(app: &TestApp, path: &str, token: &str) -> Vec<Value> {
    let (status, ct, body) = fetch(app, path, token, None).await;
    assert_eq!((status, ct.as_str()), (200, "application/json"), "{path}: {body}");
    let array: Vec<Value> = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    let sep = if path.contains('?') { '&' } else { '?' };
    for (p, accept) in [(format!("{path}{sep}format=ndjson"), None), (path.to_string(), Some("application/x-ndjson"))] {
        let (status, ct, body) = fetch(app, &p, token, accept).await;
        assert_eq!((status, ct.as_str()), (200, "application/x-ndjson"), "{p}: {body}");
        assert!(body.is_empty() || body.ends_with('\n'), "{p}: every line ends with a newline");
        let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines, array, "{p}");
    }
    array
}

async fn lists_in_both_formats(db: TestDb) {
    let app = spawn_app(db).await;
    // 1203 tasks (more than two pages of 500), an audit entry each, 3 history entries of env-1.
    let insert = "INSERT INTO deploy_task (kind, env, product, version, status, requested_by, idempotency_key, \
                  created_at) VALUES ('release', $1, 'monitor', '1.0.0', 'cancelled', 'test', $2, $3)";
    let audit = "INSERT INTO audit_log (at, actor, action, target, outcome, detail) \
                 VALUES ($1, 'test', 'deploy', 'env-1', 'allowed', '')";
    for i in 0..1203i64 {
        let env = if i % 2 == 0 { "env-1" } else { "prod" };
        tao::with_pool!(&app.pool, p => sqlx::query(insert).bind(env).bind(format!("k{i}")).bind(i).execute(p).await.map(|_| ()))
            .unwrap();
        tao::with_pool!(&app.pool, p => sqlx::query(audit).bind(i).execute(p).await.map(|_| ())).unwrap();
    }
    let history = "INSERT INTO deploy_history (env, host, component, action, product, version, image, image_tag, \
                   image_digest, container, run_spec, task_id, at) \
                   VALUES ('env-1', 'node1', 'api', 'deployed', 'monitor', '1.0.0', 'r/api', '1.0.0', NULL, 'env-1-api', \
                   '{}', 1, $1)";
    for at in 0..3i64 {
        tao::with_pool!(&app.pool, p => sqlx::query(history).bind(at).execute(p).await.map(|_| ())).unwrap();
    }

    let tasks = same_rows(&app, "/api/v1/tasks?limit=1000", &app.reader).await;
    assert_eq!(tasks.len(), 1000, "the limit holds across pages");
    let ids: Vec<i64> = tasks.iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats across pages");
    let env1 = same_rows(&app, "/api/v1/tasks?env=env-1&limit=1000", &app.reader).await;
    assert_eq!(env1.len(), 602);
    assert!(env1.iter().all(|t| t["env"] == "env-1"));
    assert_eq!(same_rows(&app, "/api/v1/tasks", &app.reader).await.len(), 50, "default limit");

    let audit = same_rows(&app, "/api/v1/audit?limit=10000", &app.admin).await;
    assert!(audit.len() >= 1203, "{}", audit.len());
    assert_eq!(same_rows(&app, "/api/v1/environments/env-1/history", &app.reader).await.len(), 3);
    assert!(!same_rows(&app, "/api/v1/products", &app.reader).await.is_empty());
    assert!(!same_rows(&app, "/api/v1/environments", &app.reader).await.is_empty());
    assert!(same_rows(&app, "/api/v1/releases/monitor", &app.reader).await.is_empty());

    let (status, _, body) = fetch(&app, "/api/v1/tasks?format=xml", &app.reader, None).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("format") && body.contains("json or ndjson"), "{body}");
    let (status, _, _) = fetch(&app, "/api/v1/environments/nowhere/history?format=ndjson", &app.reader, None).await;
    assert_eq!(status, 404);
}
both_backends!(every_list_is_json_or_json_lines, lists_in_both_formats);
