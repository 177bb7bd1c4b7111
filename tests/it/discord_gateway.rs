//! The Discord gateway path end to end: Tao with `TAO_DISCORD_GATEWAY` on and no public key (the gateway
//! alone), its serenity client asking the REST double for the gateway URL and connecting to the gateway
//! double, which pushes `INTERACTION_CREATE` dispatches. Every answer must come back as a callback
//! (`POST /interactions/{id}/{token}/callback`) before any edit: the REST double refuses an edit of an
//! interaction that was not answered yet, and a second callback. Deploys run on the gated executor of
//! `discord.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tao::config::Secret;
use tokio::sync::watch;

use crate::discord::{deploy, roles, Gated, DEVELOPER, NOBODY, OPS_ROLE};
use crate::support::discord::{DiscordDouble, APPLICATION, BOT_TOKEN};
use crate::support::discord_gateway::GatewayDouble;
use crate::support::{monitor_release, spawn_app_exec, TestApp, TestDb};
use crate::webhook::wait_for;

const DISPATCH: &str = include_str!("../fixtures/discord/gateway/op0_interaction_create.chat_input.derived.json");
const IDENTIFY: &str = include_str!("../fixtures/discord/serenity_captured/gateway.op2_identify.serenity-0.12.5.json");
const CALLBACK: &str = include_str!(
    "../fixtures/discord/serenity_captured/rest.interaction_callback.type5_defer.POST.serenity-0.12.5.json"
);

struct Scene {
    app: TestApp,
    rest: DiscordDouble,
    gateway: GatewayDouble,
    gate: watch::Sender<bool>,
    next: AtomicU64,
}

/// Tao connected to the gateway double (IDENTIFY received), with release monitor 1.0.0.
async fn scene(db: TestDb) -> Scene {
    let rest = DiscordDouble::start().await;
    let gateway = GatewayDouble::start().await;
    rest.serve_gateway(&gateway.url);
    rest.require_callbacks(Duration::from_millis(300));
    let (gate, rx) = watch::channel(false);
    let url = rest.url.clone();
    let app = spawn_app_exec(
        db,
        move |s| {
            s.discord_gateway = true;
            s.discord_bot_token = Some(Secret::new(BOT_TOKEN));
            s.discord_api_url = url;
            s.discord_roles = roles();
            s.public_url = Some("https://tao.example".into());
            s.discord_poll = Duration::from_millis(100);
        },
        Box::new(move |services, _| Arc::new(Gated { pool: services.pool().clone(), gate: rx })),
    )
    .await;
    let created = app.create_release(&app.admin, monitor_release("1.0.0", &[])).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    wait_for("IDENTIFY at the gateway double", || async { !gateway.received(2).is_empty() }).await;
    Scene { app, rest, gateway, gate, next: 1_600_000_000_000_000_000.into() }
}

impl Scene {
    /// An interaction of `kind` (2 command, 4 autocomplete) from `user` with guild `roles`: the
    /// dispatch fixture's `d` with a new id and token. Returns it and its id.
    fn interaction(&self, kind: u64, user: &str, roles: &[&str], name: &str, options: Value) -> (Value, String) {
        let dispatch: Value = serde_json::from_str(DISPATCH).unwrap();
        let mut d = dispatch["d"].clone();
        let id = self.next.fetch_add(1, Ordering::SeqCst).to_string();
        d["id"] = json!(id);
        d["type"] = json!(kind);
        d["token"] = json!(format!("token-{id}"));
        d["member"]["user"]["id"] = json!(user);
        d["member"]["roles"] = json!(roles);
        d["data"] = json!({ "id": "1380515955146358918", "name": name, "type": 1, "options": options });
        (d, id)
    }

    /// Pushes `d` as an INTERACTION_CREATE dispatch and waits for its callback (the first one).
    async fn push(&self, d: &Value) -> Value {
        self.gateway.dispatch("INTERACTION_CREATE", d.clone());
        let id = d["id"].as_str().unwrap();
        wait_for(&format!("the callback of {id}"), || async { !self.rest.callbacks(id).is_empty() }).await;
        self.rest.callbacks(id).remove(0)
    }

    async fn content_contains(&self, token: &str, needle: &str) {
        let what = format!("an edit of {token} containing {needle:?}");
        wait_for(&what, || async { self.rest.last_content(token).contains(needle) }).await;
    }

    /// Checks both doubles saw nothing unexpected, stops Tao, and checks it logged off the gateway.
    async fn finish(self) {
        assert_eq!(self.rest.unexpected(), Vec::<String>::new());
        assert_eq!(self.gateway.unexpected(), Vec::<String>::new());
        let _ = self.gate.send(true);
        let _ = self.app.stop().await;
        assert_eq!(self.gateway.closes(), [1000], "Tao closes the gateway connection when it stops");
        assert_eq!(self.gateway.connections().len(), 1, "one connection, no reconnects");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tao_identifies_as_the_bot_and_answers_a_command_with_a_callback_then_edits() {
    crate::support::limit(tao_identifies_as_the_bot_and_answers_a_command_with_a_callback_then_edits_body()).await
}

async fn tao_identifies_as_the_bot_and_answers_a_command_with_a_callback_then_edits_body() {
    let s = scene(TestDb::sqlite()).await;
    // serenity asked the REST base for the gateway URL and connected to it as Discord expects.
    assert_eq!(s.rest.requests()[0].path, "/api/v10/gateway");
    assert_eq!(s.gateway.connections(), ["/?v=10"]);
    let identify = s.gateway.received(2).remove(0);
    assert_eq!(identify["token"], format!("Bot {BOT_TOKEN}"));
    assert_eq!(identify["intents"], 0, "interactions need no intents");
    let serenity: Value = serde_json::from_str(IDENTIFY).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&identify), keys(&serenity["d"]), "the IDENTIFY serenity 0.12.5 sends");
    // Without a public key the HTTP endpoint stays closed.
    let res = s.app.http.post(format!("{}/api/v1/discord/interactions", s.app.base)).body("{}").send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);

    let (d, id) = s.interaction(2, DEVELOPER, &[], "deploy", deploy("env-1"));
    assert_eq!(s.push(&d).await, json!({"type": 5}));
    let callback = s.rest.requests().into_iter().find(|r| r.path.ends_with("/callback")).unwrap();
    let shape: Value = serde_json::from_str(CALLBACK).unwrap();
    assert_eq!(callback.method, shape["method"]);
    assert_eq!(callback.path, format!("/api/v10/interactions/{id}/token-{id}/callback"));
    assert_eq!(shape["path"].as_str().unwrap().split('/').count(), callback.path.split('/').count());
    let token = format!("token-{id}");
    s.content_contains(&token, "pulling images for env-1").await;
    let tasks = tao::store::task::list(&s.app.pool, None, 10).await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].idempotency_key, Some(format!("chat-{id}")));
    s.gate.send(true).unwrap();
    s.content_contains(&token, "**succeeded**").await;
    assert!(s.rest.edits(&token).iter().all(|e| e.get("content").is_some()));
    // The connection stays alive: serenity's heartbeats carry the last sequence and are acknowledged.
    let last = s.gateway.seq();
    wait_for("a heartbeat with the last sequence", || async { s.gateway.received(1).last() == Some(&json!(last)) })
        .await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_interaction_is_one_task_and_one_callback() {
    crate::support::limit(a_redelivered_interaction_is_one_task_and_one_callback_body()).await
}

async fn a_redelivered_interaction_is_one_task_and_one_callback_body() {
    let s = scene(TestDb::sqlite()).await;
    let (d, id) = s.interaction(2, DEVELOPER, &[], "deploy", deploy("env-1"));
    // Delivered three times, twice back to back.
    s.gateway.dispatch("INTERACTION_CREATE", d.clone());
    s.gateway.dispatch("INTERACTION_CREATE", d.clone());
    assert_eq!(s.push(&d).await, json!({"type": 5}));
    // A later interaction is answered: the redeliveries before it have been read by then.
    let (later, _) =
        s.interaction(4, DEVELOPER, &[], "deploy", json!([{"name":"env","type":3,"value":"","focused":true}]));
    s.push(&later).await;
    s.content_contains(&format!("token-{id}"), "pulling images").await;
    s.gate.send(true).unwrap();
    s.content_contains(&format!("token-{id}"), "**succeeded**").await;
    assert_eq!(s.rest.callbacks(&id).len(), 1, "one callback");
    assert_eq!(tao::store::task::list(&s.app.pool, None, 10).await.unwrap().len(), 1, "one task");
    // The double records a second callback for the same interaction as unexpected: `finish` checks.
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autocomplete_over_the_gateway_gets_choices_by_the_members_roles() {
    crate::support::limit(autocomplete_over_the_gateway_gets_choices_by_the_members_roles_body()).await
}

async fn autocomplete_over_the_gateway_gets_choices_by_the_members_roles_body() {
    let s = scene(TestDb::sqlite()).await;
    let focused = |typed: &str| json!([{"name":"env","type":3,"value":typed,"focused":true}]);
    let (d, _) = s.interaction(4, DEVELOPER, &[], "deploy", focused("pr"));
    assert_eq!(s.push(&d).await, json!({"type": 8, "data": {"choices": [{"name": "prod", "value": "prod"}]}}));
    // member.roles survive serenity's model: a role maps to a level, no role to nothing.
    let (d, _) = s.interaction(4, NOBODY, &[OPS_ROLE], "deploy", focused("prod"));
    assert_eq!(s.push(&d).await["data"]["choices"], json!([{"name": "prod", "value": "prod"}]));
    let (d, _) = s.interaction(4, NOBODY, &[], "deploy", focused("prod"));
    assert_eq!(s.push(&d).await["data"]["choices"], json!([]));
    // An interaction serenity 0.12.5 cannot model (no `attachment_size_limit`) is answered all the same.
    let (mut d, _) = s.interaction(
        4,
        DEVELOPER,
        &[],
        "deploy",
        json!([{"name":"product","type":3,"value":"monitor"},{"name":"version","type":3,"value":"","focused":true}]),
    );
    d.as_object_mut().unwrap().remove("attachment_size_limit");
    assert_eq!(s.push(&d).await["data"]["choices"], json!([{"name": "1.0.0", "value": "1.0.0"}]));
    assert!(s.rest.edits(&format!("token-{}", d["id"].as_str().unwrap())).is_empty());
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tao_serve_connects_the_gateway_and_logs_off_on_sigterm() {
    crate::support::limit(tao_serve_connects_the_gateway_and_logs_off_on_sigterm_body()).await
}

async fn tao_serve_connects_the_gateway_and_logs_off_on_sigterm_body() {
    let rest = DiscordDouble::start().await;
    let gateway = GatewayDouble::start().await;
    rest.serve_gateway(&gateway.url);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("tao.db").display());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tao"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
        .env("TAO_DISCORD_GATEWAY", "true")
        .env("TAO_DISCORD_BOT_TOKEN", BOT_TOKEN)
        .env("TAO_DISCORD_API_URL", &rest.url)
        .env("TAO_DISCORD_APPLICATION_ID", APPLICATION)
        .env("TAO_LOG", "info")
        .env_remove("TAO_LOG_FORMAT")
        .env_remove("TAO_DISCORD_PUBLIC_KEY")
        .env_remove("TAO_CATALOG")
        .env_remove("TAO_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for("IDENTIFY from tao serve", || async { !gateway.received(2).is_empty() }).await;
    let pid = child.id().unwrap() as libc::pid_t;
    // SAFETY: signals the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.expect("exits").unwrap();
    let logs = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{logs}");
    assert_eq!(gateway.closes(), [1000], "{logs}");
    assert!(logs.contains("connected to the Discord gateway"), "{logs}");
    assert!(!logs.contains(BOT_TOKEN), "the token is never logged");
    assert_eq!(gateway.unexpected(), Vec::<String>::new());
    assert_eq!(rest.unexpected(), Vec::<String>::new());
}
