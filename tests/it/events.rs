//! `GET /api/v1/events` and `tao events export`: JSON lines, filters, `fields`, and streaming 100k events
//! through a `tao serve` process whose peak memory stays far below the size of what it sent.

use std::time::Duration;

use serde_json::Value;
use tao::store::event::{self, DeliveryId, NewEvent};
use tao::store::token::Scope;
use tao::store::{self, Pool};
use tokio::process::Command;

use crate::both_backends;
use crate::support::{spawn_app, TestDb};

const DAY: i64 = 86_400_000;
/// 2024-01-01T00:00:00Z.
const JAN_1: i64 = 1_704_067_200_000;

fn new_event(n: usize, kind: &str, project: i64, received_at: i64, pad: &str) -> NewEvent {
    let payload = serde_json::json!({
        "object_kind": kind, "project": { "id": project, "path_with_namespace": format!("monitor/p{project}") },
        "object_attributes": { "iid": n, "title": format!("change {n}") }, "pad": pad,
    });
    NewEvent {
        delivery_id: DeliveryId::parse(&format!("d-{n}")).unwrap(),
        webhook_id: None,
        event_header: "Merge Request Hook".into(),
        kind: kind.into(),
        project_id: Some(project),
        project_path: Some(format!("monitor/p{project}")),
        git_ref: Some("main".into()),
        object_key: format!("{kind}:{project}:{n}"),
        received_at,
        payload: payload.to_string(),
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

async fn filters(db: TestDb) {
    let app = spawn_app(db).await;
    let batch: Vec<NewEvent> = (0..30)
        .map(|n| {
            let kind = if n % 3 == 0 { "push" } else { "merge_request" };
            new_event(n, kind, 1 + (n % 2) as i64, JAN_1 + n as i64 * DAY, "")
        })
        .collect();
    assert_eq!(event::insert_many(&app.pool, &batch).await.unwrap(), 30);

    let all = app.http.get(format!("{}/api/v1/events", app.base)).bearer_auth(&app.reader).send().await.unwrap();
    assert_eq!(all.headers()["content-type"], "application/x-ndjson");
    let all = lines(&all.text().await.unwrap());
    assert_eq!(all.len(), 30);
    assert!(all.windows(2).all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64()), "oldest first, newest last");
    assert_eq!(all[0]["payload"]["object_attributes"]["iid"], 0);
    assert_eq!(all[0]["received_at"], "2024-01-01T00:00:00.000Z");

    let get = |query: &'static str| {
        let (http, base, token) = (app.http.clone(), app.base.clone(), app.reader.clone());
        async move {
            let r = http.get(format!("{base}/api/v1/events?{query}")).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status(), 200, "{query}");
            lines(&r.text().await.unwrap())
        }
    };
    assert_eq!(get("kind=push").await.len(), 10);
    assert_eq!(get("kind=push&project=2").await.len(), 5);
    assert_eq!(get("project=monitor/p1").await.len(), 15);
    let since = get("since=2024-01-11&until=2024-01-21T00:00:00Z").await;
    assert_eq!(since.len(), 10);
    assert_eq!(since[0]["received_at"], "2024-01-11T00:00:00.000Z");
    let picked =
        get("kind=merge_request&since=2024-01-29&fields=id,kind,object_attributes.title,payload.project.id").await;
    assert_eq!(picked.len(), 2);
    let keys: Vec<&String> = picked[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "only the requested fields: {:?}", picked[0]);
    assert_eq!(picked[0]["object_attributes.title"], "change 28");
    assert_eq!(picked[0]["payload.project.id"], 1);
    assert_eq!(picked[1]["kind"], "merge_request");
    assert_eq!(get("fields=nothing.here").await[0]["nothing.here"], Value::Null);

    let bad = app.get("/api/v1/events?since=yesterday&state=done", &app.reader).await;
    assert_eq!(bad.status, 422, "{:?}", bad.body);
    assert_eq!(bad.body["error"]["details"].as_array().unwrap().len(), 2);
    let anonymous = app.http.get(format!("{}/api/v1/events", app.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // `tao events export` prints the same lines.
    let out = Command::new(env!("CARGO_BIN_EXE_tao"))
        .args(["events", "export", "--kind", "push", "--fields", "id,kind,project_path", "--server", &app.base])
        .env("TAO_TOKEN", &app.reader)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported = lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(exported.len(), 10);
    assert_eq!(exported[0], serde_json::json!({ "id": all[0]["id"], "kind": "push", "project_path": "monitor/p1" }));
    app.stop().await;
}
both_backends!(events_endpoint_filters_and_picks_fields, filters);

/// Peak resident memory of a process, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn hundred_thousand(db: TestDb) {
    const EVENTS: usize = 100_000;
    let pool: Pool = db.pool().await;
    let pad = "x".repeat(1500);
    for start in (0..EVENTS).step_by(5_000) {
        let batch: Vec<NewEvent> =
            (start..start + 5_000).map(|n| new_event(n, "push", 1 + (n % 7) as i64, JAN_1 + n as i64, &pad)).collect();
        event::insert_many(&pool, &batch).await.unwrap();
    }
    let token = store::token::create(&pool, "reader", Scope::Read).await.unwrap().1;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tao"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", &db.url()])
        .env("TAO_EVENT_WORKERS", "0")
        .env("TAO_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = server.id().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = crate::support::http_client();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "tao serve did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let baseline = peak_rss_kib(pid);

    let mut response = http.get(format!("{base}/api/v1/events")).bearer_auth(token.expose()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (mut count, mut bytes, mut last_id, mut partial) = (0usize, 0usize, 0i64, Vec::new());
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len();
        partial.extend_from_slice(&chunk);
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            if count % 10_000 == 0 || count == EVENTS - 1 {
                let v: Value = serde_json::from_slice(&line).unwrap();
                let id = v["id"].as_i64().unwrap();
                assert!(id > last_id, "ascending ids");
                last_id = id;
            }
            count += 1;
        }
    }
    assert!(partial.is_empty());
    assert_eq!(count, EVENTS);
    let peak = peak_rss_kib(pid);
    let sent_kib = (bytes / 1024) as u64;
    server.start_kill().unwrap();
    let _ = server.wait().await;
    // Loading every row at once would hold >150 MB of payloads; paging holds one page (~1 MB).
    assert!(sent_kib > 150_000, "the test streams enough to tell the difference ({sent_kib} KiB)");
    assert!(
        peak - baseline < 40_000,
        "tao serve grew by {} KiB while streaming {sent_kib} KiB (baseline {baseline} KiB): it does not stream",
        peak - baseline
    );
}
both_backends!(json_lines_stream_100k_events_in_bounded_memory, hundred_thousand);
