//! Webhook intake benchmark driver, used by `scripts/bench-webhooks.sh`.
//!
//! `noop --listen ADDR` serves a do-nothing webhook handler; `ceiling --listen ADDR --db URL` serves the
//! minimal durable handler (axum + sqlx: read the body, check the token, parse JSON, one
//! `INSERT … ON CONFLICT DO NOTHING`) that bounds what Tao's intake can reach; `load --url URL --db URL
//! --table T --concurrency N --events E` replays the GitLab webhook fixtures (every 10th delivery is a
//! redelivery of an earlier one), prints one result line (events/s, p50/p99 ack latency) and checks the
//! store holds every distinct delivery exactly once; against Tao (`--table gitlab_event`) it then waits for
//! the event workers to handle what was acked and prints that backlog and how long it took, so work put
//! off past the measurement shows (and does not run during the next one). `createdb`/`dropdb ADMIN_URL NAME` manage PostgreSQL databases.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tao::store::Pool;

const FIXTURES: &[(&str, &str)] = &[
    ("push.json", "Push Hook"),
    ("tag_push.json", "Tag Push Hook"),
    ("merge_request.json", "Merge Request Hook"),
    ("merge_request_update.json", "Merge Request Hook"),
    ("note_merge_request.json", "Note Hook"),
    ("pipeline.json", "Pipeline Hook"),
    ("job.json", "Job Hook"),
    ("deployment.json", "Deployment Hook"),
    ("release.json", "Release Hook"),
    ("issue.json", "Issue Hook"),
    ("system_hook_push.json", "System Hook"),
];

const SECRET: &str = "bench-secret";

fn arg(args: &[String], name: &str) -> String {
    let at = args.iter().position(|a| a == name).unwrap_or_else(|| panic!("missing {name}"));
    args[at + 1].clone()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("noop") => serve(Router::new().route("/api/v1/gitlab/webhook", post(|| async { "ok" })), &args).await,
        Some("ceiling") => {
            let pool = Pool::connect(&arg(&args, "--db")).await?;
            let ddl = "CREATE TABLE IF NOT EXISTS ceiling_event (delivery_id TEXT PRIMARY KEY, kind TEXT NOT NULL, \
                       received_at BIGINT NOT NULL, payload TEXT NOT NULL)";
            tao::with_pool!(&pool, p => sqlx::query(ddl).execute(p).await.map(|_| ()))?;
            let router = Router::new()
                .route("/api/v1/gitlab/webhook", post(ceiling))
                .layer(DefaultBodyLimit::max(25 << 20))
                .with_state(Arc::new(pool));
            serve(router, &args).await
        }
        Some("load") => load(&args).await,
        Some("createdb") => {
            let pool = Pool::connect(&args[1]).await?;
            let sql = format!("CREATE DATABASE {}", args[2]);
            tao::with_pool!(&pool, p => sqlx::query(&sql).execute(p).await.map(|_| ()))?;
            Ok(())
        }
        Some("dropdb") => {
            let pool = Pool::connect(&args[1]).await?;
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", args[2]);
            tao::with_pool!(&pool, p => sqlx::query(&sql).execute(p).await.map(|_| ()))?;
            Ok(())
        }
        _ => anyhow::bail!("usage: bench_webhooks noop|ceiling|load|createdb|dropdb …"),
    }
}

async fn serve(router: Router, args: &[String]) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(arg(args, "--listen")).await?;
    axum::serve(listener, router).await?;
    Ok(())
}

async fn ceiling(State(pool): State<Arc<Pool>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if headers.get("x-gitlab-token").map(|v| v.as_bytes()) != Some(SECRET.as_bytes()) {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else { return StatusCode::BAD_REQUEST };
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let kind = v["object_kind"].as_str().unwrap_or("unknown").to_string();
    let payload = String::from_utf8_lossy(&body).into_owned();
    let sql = "INSERT INTO ceiling_event (delivery_id, kind, received_at, payload) VALUES ($1, $2, $3, $4) \
               ON CONFLICT (delivery_id) DO NOTHING";
    let now = tao::store::now_ms();
    let done = tao::with_pool!(&*pool, p => {
        sqlx::query(sql).bind(&key).bind(&kind).bind(now).bind(&payload).execute(p).await.map(|_| ())
    });
    if done.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

async fn count(db: &str, table: &str, run: &str) -> anyhow::Result<i64> {
    if db == "-" {
        return Ok(-1);
    }
    let pool = Pool::connect(db).await?;
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE delivery_id LIKE $1");
    let n: i64 = tao::with_pool!(&pool, p => sqlx::query_scalar(&sql).bind(format!("{run}-%")).fetch_one(p).await)?;
    pool.close().await;
    Ok(n)
}

async fn load(args: &[String]) -> anyhow::Result<()> {
    let (url, db, table, label) = (arg(args, "--url"), arg(args, "--db"), arg(args, "--table"), arg(args, "--label"));
    let concurrency: usize = arg(args, "--concurrency").parse()?;
    let events: usize = arg(args, "--events").parse()?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitlab/webhooks");
    let bodies: Arc<Vec<(Bytes, &str)>> = Arc::new(
        FIXTURES.iter().map(|(f, h)| (Bytes::from(std::fs::read(dir.join(f)).expect("fixture")), *h)).collect(),
    );
    let run = format!("{label}-c{concurrency}-{:x}", rand::random::<u32>());
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, bodies, next, run) = (http.clone(), url.clone(), bodies.clone(), next.clone(), run.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0usize;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= events {
                        return (latencies, failures);
                    }
                    // Every 10th delivery resends an earlier one (GitLab keeps Idempotency-Key).
                    let key = if i % 10 == 9 { i - 5 } else { i };
                    let (body, header) = &bodies[key % bodies.len()];
                    let t = Instant::now();
                    let r = http
                        .post(&url)
                        .header("X-Gitlab-Token", SECRET)
                        .header("X-Gitlab-Event", *header)
                        .header("Idempotency-Key", format!("{run}-{key}"))
                        .header("Content-Type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => latencies.push(t.elapsed()),
                        _ => failures += 1,
                    }
                }
            })
        })
        .collect();
    let mut all: Vec<Duration> = Vec::with_capacity(events);
    let mut failures = 0;
    for t in tasks {
        let (l, f) = t.await?;
        all.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied();
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN);
    let distinct = (0..events).filter(|i| i % 10 != 9).count() as i64;
    let stored = count(&db, &table, &run).await?;
    let check = if stored < 0 {
        "n/a".to_string()
    } else if stored == distinct {
        "ok (0 lost, 0 duplicated)".to_string()
    } else {
        format!("MISMATCH: stored {stored}, expected {distinct}")
    };
    let backlog = if table == "gitlab_event" { drain(&db).await? } else { String::new() };
    println!(
        "{label:<18} c={concurrency:<3} acked={:<6} failed={failures:<4} {:>8.0} ev/s  p50 {:>6.2} ms  p99 {:>7.2} ms  store: {check}{backlog}",
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64(),
        ms(pct(0.50)),
        ms(pct(0.99)),
    );
    Ok(())
}

/// Waits (at most 120 s) until Tao's store holds no unhandled event; says how many there were and how long
/// the workers took.
async fn drain(db: &str) -> anyhow::Result<String> {
    let pool = Pool::connect(db).await?;
    let sql = "SELECT COUNT(*) FROM gitlab_event WHERE state <> 'processed'";
    let started = Instant::now();
    let mut first = None;
    let left = loop {
        let n: i64 = tao::with_pool!(&pool, p => sqlx::query_scalar(sql).fetch_one(p).await)?;
        first.get_or_insert(n);
        if n == 0 || started.elapsed() > Duration::from_secs(120) {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    pool.close().await;
    let (first, secs) = (first.unwrap_or(0), started.elapsed().as_secs_f64());
    Ok(match left {
        0 => format!("  backlog {first} handled in {secs:.1} s"),
        n => format!("  backlog {first}, {n} still unhandled after {secs:.0} s"),
    })
}
