//! Chat interactions benchmark driver, used by `scripts/bench-chat.sh` (issue #7).
//!
//! One process: an embedded Tao (`App::build_with`, SQLite in a temp dir, the example catalog plus five
//! test environments `bench-1`…`bench-5`, product version `monitor 1.0.0`), a fake executor that holds
//! every task running until the end of the run, a Discord REST double answering Tao's edits and
//! follow-ups at once, and the peer: a minimal axum handler that verifies the Ed25519 signature over
//! timestamp + body, parses the JSON and answers `{"type":5}` (the ceiling of any verifier).
//!
//! Before measuring, five signed `/deploy monitor 1.0.0 bench-N` interactions start five deploys that
//! stay running throughout. Then, for each rate, signed interactions are sent open-loop (scheduled by
//! the clock, not by replies) for a few seconds, first to the peer and then to Tao: every 10th is a
//! `/deploy monitor 1.0.0 env-1` (a new task, queued behind the first), the others `/status env-1`
//! (read-only). The time measured is from send to the 200 deferred answer (`{"type":5}`).
//!
//!   bench_chat [--rates "25 50 100 200"] [--seconds 3]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::{Json, Router};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{json, Value};
use tao::chat::discord::RoleMap;
use tao::config::{Secret, Settings};
use tao::deploy::queue::{BoxFuture, Executor, Outcome, TaskControl};
use tao::deploy::task::TaskStatus;
use tao::store::task::TaskRow;
use tokio::sync::watch;

const ENVELOPE: &str = include_str!(
    "../tests/fixtures/discord/interaction_requests/application_command.chat_input.string_option.real_signed.body.json"
);
const CATALOG: &str = include_str!("tao.yaml");
const API_TEMPLATE: &str = include_str!("templates/api.conf.hbs");
const BOT_TOKEN: &str = "discord-bot-token-for-bench";
const DEVELOPER: &str = "100000000000000001";
/// How many deploys run during the whole measurement.
const RUNNING: usize = 5;

/// Holds every task running until the gate opens (the end of the run).
struct Held {
    gate: watch::Receiver<bool>,
}

impl Executor for Held {
    fn execute(&self, _task: TaskRow, _control: TaskControl) -> BoxFuture<Outcome> {
        let mut gate = self.gate.clone();
        Box::pin(async move {
            let _ = gate.wait_for(|open| *open).await;
            Outcome::Succeeded
        })
    }
}

/// Discord's REST API as Tao uses it, answering everything at once.
async fn discord_double(method: Method, body: Bytes) -> impl IntoResponse {
    if method == Method::PUT {
        return Json(json!([]));
    }
    let content = serde_json::from_slice::<Value>(&body).ok().map(|v| v["content"].clone()).unwrap_or(Value::Null);
    if std::env::var_os("BENCH_DEBUG").is_some() {
        eprintln!("discord double: {method} {content}");
    }
    Json(json!({ "id": "1400000000000000001", "channel_id": "1380488052169769113", "content": content }))
}

/// The peer: verify the signature, parse the interaction, answer deferred.
async fn peer(State(key): State<Arc<VerifyingKey>>, headers: HeaderMap, body: Bytes) -> axum::response::Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (sig, ts) = (header("x-signature-ed25519"), header("x-signature-timestamp"));
    let Some(sig) = hex::decode(sig).ok().and_then(|b| Signature::from_slice(&b).ok()) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if key.verify(&[ts.as_bytes(), &body].concat(), &sig).is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["type"].as_u64()) {
        Some(1) => Json(json!({"type": 1})).into_response(),
        Some(_) => Json(json!({"type": 5})).into_response(),
        None => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn serve(router: Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

/// Signs interactions the way Discord does.
struct Discord {
    key: SigningKey,
    next: AtomicU64,
}

impl Discord {
    /// A signed `/name options` from the developer: (body, timestamp, signature).
    fn command(&self, name: &str, options: Value) -> (Bytes, String, String) {
        let mut i: Value = serde_json::from_str(ENVELOPE).expect("envelope");
        let id = self.next.fetch_add(1, Ordering::Relaxed).to_string();
        i["id"] = json!(id);
        i["token"] = json!(format!("token-{id}"));
        i["member"]["user"]["id"] = json!(DEVELOPER);
        i["member"]["roles"] = json!([]);
        i["data"] = json!({ "id": "1380515955146358918", "name": name, "type": 1, "options": options });
        let raw = serde_json::to_vec(&i).expect("json");
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = hex::encode(self.key.sign(&[ts.as_bytes(), &raw].concat()).to_bytes());
        (Bytes::from(raw), ts, sig)
    }
}

fn deploy(env: &str) -> Value {
    json!([{"name":"product","type":3,"value":"monitor"},{"name":"version","type":3,"value":"1.0.0"},
           {"name":"env","type":3,"value":env}])
}

async fn send(http: &reqwest::Client, url: &str, (body, ts, sig): &(Bytes, String, String)) -> Option<Duration> {
    let t = Instant::now();
    let r = http
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Signature-Ed25519", sig)
        .header("X-Signature-Timestamp", ts)
        .body(body.clone())
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v: Value = r.json().await.ok()?;
    (v["type"] == 5).then(|| t.elapsed())
}

/// One open-loop run: `rate` requests per second for `seconds`; prints a line, returns p99 in ms.
async fn run(label: &str, http: &reqwest::Client, url: &str, signer: &Discord, rate: u32, seconds: u32) -> (f64, f64) {
    let total = (rate * seconds) as usize;
    // Signed beforehand, so the sender's clock is not spent on signatures.
    let requests: Vec<_> = (0..total)
        .map(|i| {
            if i % 10 == 9 {
                signer.command("deploy", deploy("env-1"))
            } else {
                signer.command("status", json!([{"name":"env","type":3,"value":"env-1"}]))
            }
        })
        .collect();
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut handles = Vec::with_capacity(total);
    for (i, req) in requests.into_iter().enumerate() {
        tokio::time::sleep_until((started + period * i as u32).into()).await;
        let (http, url) = (http.clone(), url.to_string());
        handles.push(tokio::spawn(async move { send(&http, &url, &req).await }));
    }
    let mut all = Vec::with_capacity(total);
    let mut failed = 0;
    for h in handles {
        match h.await.ok().flatten() {
            Some(d) => all.push(d),
            None => failed += 1,
        }
    }
    all.sort();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied();
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN);
    let (p50, p99, max) = (ms(pct(0.50)), ms(pct(0.99)), ms(all.last().copied()));
    println!(
        "{label:<6} {rate:>5}/s  sent {total:<5} deferred {:<5} failed {failed:<4} p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  max {max:>7.2} ms",
        all.len()
    );
    (p50, p99)
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).map_or(default.to_string(), |at| args[at + 1].clone())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rates: Vec<u32> =
        arg(&args, "--rates", "25 50 100 200").split_whitespace().map(str::parse).collect::<Result<_, _>>()?;
    let seconds: u32 = arg(&args, "--seconds", "3").parse()?;

    // The Discord double and the peer.
    let double = serve(Router::new().fallback(discord_double)).await?;
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let signer = Discord { key: key.clone(), next: AtomicU64::new(1_500_000_000_000_000_000) };
    let peer_url = serve(Router::new().fallback(peer).with_state(Arc::new(key.verifying_key()))).await?
        + "/api/v1/discord/interactions";

    // Tao: the example catalog plus five test environments.
    let dir = tempfile::tempdir()?;
    let extra: String = (1..=RUNNING)
        .map(|n| {
            format!(
                "  bench-{n}:\n    tier: test\n    domain: bench-{n}.test.local\n    hosts:\n      - {{ name: b{n}, address: 10.0.1.{n}, user: deploy }}\n    variables: {{ LOG_LEVEL: info }}\n"
            )
        })
        .collect();
    let catalog = CATALOG.replacen("\nenvironments:\n", &format!("\nenvironments:\n{extra}"), 1);
    std::fs::write(dir.path().join("tao.yaml"), catalog)?;
    std::fs::create_dir_all(dir.path().join("templates"))?;
    std::fs::write(dir.path().join("templates/api.conf.hbs"), API_TEMPLATE)?;
    let mut settings = Settings::local(format!("sqlite://{}", dir.path().join("tao.db").display()));
    settings.catalog = Some(dir.path().join("tao.yaml"));
    settings.instance = "bench-chat".into();
    settings.discord_public_key = Some(hex::encode(key.verifying_key().as_bytes()));
    settings.discord_bot_token = Some(Secret::new(BOT_TOKEN));
    settings.discord_api_url = format!("{double}/api/v10");
    settings.discord_roles =
        RoleMap::parse(&format!(r#"{{"users": {{"{DEVELOPER}": "developer"}}}}"#)).map_err(anyhow::Error::msg)?;
    let (gate, rx) = watch::channel(false);
    let app = tao::app::App::build_with(settings, Box::new(move |_, _| Arc::new(Held { gate: rx }))).await?;
    let pool = app.services().pool().clone();
    let base = format!("http://127.0.0.1:{}", app.port());
    let tao_url = format!("{base}/api/v1/discord/interactions");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let admin = tao::store::token::create(&pool, "bench", tao::store::token::Scope::Admin).await?.1;
    let mut components = serde_json::Map::new();
    for c in ["ops", "sql", "graph", "agent", "api", "self-monitor"] {
        components.insert(c.into(), json!("1.0.0"));
    }
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/api/v1/releases"))
        .bearer_auth(admin.expose())
        .json(&json!({ "product": "monitor", "version": "1.0.0", "components": components }))
        .send()
        .await?;
    anyhow::ensure!(created.status().is_success(), "creating monitor 1.0.0: {}", created.text().await?);

    // Five deploys, started through chat, held running.
    for n in 1..=RUNNING {
        anyhow::ensure!(send(&http, &tao_url, &signer.command("deploy", deploy(&format!("bench-{n}"))))
            .await
            .is_some());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running =
            tao::store::task::list(&pool, None, 100).await?.iter().filter(|t| t.status == TaskStatus::Running).count();
        if running >= RUNNING {
            break;
        }
        if Instant::now() > deadline {
            let tasks = tao::store::task::list(&pool, None, 100).await?;
            let states: Vec<_> = tasks.iter().map(|t| format!("{} {}", t.env, t.status)).collect();
            anyhow::bail!("only {running} of {RUNNING} deploys started: {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "== {RUNNING} deploys running throughout (monitor 1.0.0 to bench-1..bench-{RUNNING}, held by the executor); \
         open-loop, {seconds} s per rate, 9 in 10 `/status env-1`, 1 in 10 `/deploy monitor 1.0.0 env-1`"
    );
    println!(
        "== time from send to the 200 deferred answer ({{\"type\":5}}); peer = axum + Ed25519 verify + JSON parse"
    );
    let mut ratios = Vec::new();
    for rate in rates {
        let (p50p, p99p) = run("peer", &http, &peer_url, &signer, rate, seconds).await;
        let (p50t, p99t) = run("tao", &http, &tao_url, &signer, rate, seconds).await;
        ratios.push((rate, p50t / p50p, p99t / p99p, p99t));
    }
    let tasks = tao::store::task::list(&pool, None, 10_000).await?;
    let count = |status: TaskStatus| tasks.iter().filter(|t| t.status == status).count();
    println!(
        "== tasks at the end: {} running, {} queued, {} in all",
        count(TaskStatus::Running),
        count(TaskStatus::Queued),
        tasks.len()
    );
    for (rate, r50, r99, p99) in ratios {
        let verdict = if p99 < 100.0 { "p99 < 100 ms: yes" } else { "p99 < 100 ms: NO" };
        println!("ratio tao/peer {rate:>5}/s  p50 x{r50:.2}  p99 x{r99:.2}  ({verdict})");
    }
    let _ = gate.send(true);
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    Ok(())
}
