//! Discord end to end: interactions signed like Discord's (a test Ed25519 key Tao trusts) posted to
//! `/api/v1/discord/interactions`, and the Discord double receiving Tao's edits, follow-ups, channel
//! messages and command registration. Deploys run on a gated fake executor, so a test sees a task
//! queued, running with log lines, and ending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tao::chat::discord::RoleMap;
use tao::config::Secret;
use tao::deploy::queue::{BoxFuture, Executor, Outcome, TaskControl};
use tao::store::task::TaskRow;
use tokio::sync::watch;

use crate::support::discord::{DiscordDouble, DiscordKey, APPLICATION, BOT_TOKEN};
use crate::support::{monitor_release, spawn_app_exec, TestApp, TestDb};
use crate::webhook::wait_for;

pub(crate) const DEVELOPER: &str = "100000000000000001";
pub(crate) const NOBODY: &str = "100000000000000003";
pub(crate) const OPS_ROLE: &str = "200000000000000001";
const CHANNEL: &str = "1380488052169769113";

const ENVELOPE: &str = include_str!(
    "../fixtures/discord/interaction_requests/application_command.chat_input.string_option.real_signed.body.json"
);
const CLICK: &str = include_str!("../fixtures/discord/interaction_requests/message_component.button.derived.json");
const PING: &str = include_str!("../fixtures/discord/interaction_requests/ping.real.json");

/// Logs a line, waits for the gate to open, logs another and succeeds. A deploy of only `api` also logs
/// five lines of 500 characters (more than a Discord message holds).
pub(crate) struct Gated {
    pub(crate) pool: tao::store::Pool,
    pub(crate) gate: watch::Receiver<bool>,
}

impl Executor for Gated {
    fn execute(&self, task: TaskRow, _control: TaskControl) -> BoxFuture<Outcome> {
        let (pool, mut gate) = (self.pool.clone(), self.gate.clone());
        Box::pin(async move {
            let log = |line: String| {
                let pool = pool.clone();
                async move { tao::store::task::log(&pool, task.id, "info", None, None, &line).await.unwrap() }
            };
            log(format!("pulling images for {}", task.env)).await;
            if task.components == "api" {
                for i in 0..5 {
                    log(format!("{i}{}", "x".repeat(499))).await;
                }
            }
            let _ = gate.wait_for(|open| *open).await;
            log("every component is healthy".into()).await;
            Outcome::Succeeded
        })
    }
}

/// Tao with Discord configured against the double, `monitor 1.0.0` recorded (shared with `discord_picture`).
pub(crate) struct Scene {
    pub(crate) app: TestApp,
    pub(crate) double: DiscordDouble,
    key: DiscordKey,
    gate: watch::Sender<bool>,
    next: std::sync::atomic::AtomicU64,
}

async fn scene_with(db: TestDb, adjust: impl FnOnce(&mut tao::config::Settings) + Send + 'static) -> Scene {
    let double = DiscordDouble::start().await;
    let key = DiscordKey::generate();
    let (gate, rx) = watch::channel(false);
    let (url, public) = (double.url.clone(), key.public_hex());
    let app = spawn_app_exec(
        db,
        move |s| {
            s.discord_public_key = Some(public);
            s.discord_bot_token = Some(Secret::new(BOT_TOKEN));
            s.discord_api_url = url;
            s.discord_roles = roles();
            s.public_url = Some("https://tao.example".into());
            s.discord_poll = Duration::from_millis(100);
            adjust(s);
        },
        Box::new(move |services, _| Arc::new(Gated { pool: services.pool().clone(), gate: rx })),
    )
    .await;
    let created = app.create_release(&app.admin, monitor_release("1.0.0", &[])).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    Scene { app, double, key, gate, next: 1_500_000_000_000_000_000.into() }
}

/// The test users and roles: DEVELOPER is a developer, OPS_ROLE a maintainer and release manager.
pub(crate) fn roles() -> RoleMap {
    let roles = format!(
        r#"{{"users": {{"{DEVELOPER}": "developer"}}, "roles": {{"{OPS_ROLE}": {{"level": "maintainer", "roles": ["release-manager"]}}}}}}"#
    );
    RoleMap::parse(&roles).unwrap()
}

pub(crate) async fn scene(db: TestDb) -> Scene {
    scene_with(db, |_| {}).await
}

impl Scene {
    fn next_id(&self) -> String {
        self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst).to_string()
    }

    /// A slash command from `user` (with guild `roles`): the real envelope with a new id and token.
    pub(crate) fn command(&self, user: &str, roles: &[&str], name: &str, options: Value) -> (Value, String) {
        let mut i: Value = serde_json::from_str(ENVELOPE).unwrap();
        let id = self.next_id();
        i["id"] = json!(id);
        i["token"] = json!(format!("token-{id}"));
        i["member"]["user"]["id"] = json!(user);
        i["member"]["user"]["global_name"] = json!(format!("user-{}", &user[user.len() - 1..]));
        i["member"]["roles"] = json!(roles);
        i["data"] = json!({ "id": "1380515955146358918", "name": name, "type": 1, "options": options });
        (i, format!("token-{id}"))
    }

    /// A click on `custom_id` by `user`: the derived component envelope with a new id and token.
    fn click(&self, user: &str, roles: &[&str], custom_id: &str) -> (Value, String) {
        let mut i: Value = serde_json::from_str(CLICK).unwrap();
        let id = self.next_id();
        i["id"] = json!(id);
        i["token"] = json!(format!("token-{id}"));
        i["member"]["user"]["id"] = json!(user);
        i["member"]["roles"] = json!(roles);
        i["data"]["custom_id"] = json!(custom_id);
        (i, format!("token-{id}"))
    }

    /// Posts `body` signed now; returns the status and the JSON answer.
    pub(crate) async fn post(&self, body: &Value) -> (u16, Value) {
        let raw = serde_json::to_vec(body).unwrap();
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = self.key.sign(&ts, &raw);
        self.post_raw(&raw, Some(&sig), Some(&ts)).await
    }

    async fn post_raw(&self, raw: &[u8], sig: Option<&str>, ts: Option<&str>) -> (u16, Value) {
        let mut rb = self.app.http.post(format!("{}/api/v1/discord/interactions", self.app.base)).body(raw.to_vec());
        rb = rb.header("Content-Type", "application/json");
        if let Some(s) = sig {
            rb = rb.header("X-Signature-Ed25519", s);
        }
        if let Some(t) = ts {
            rb = rb.header("X-Signature-Timestamp", t);
        }
        let res = rb.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn tasks(&self) -> Vec<TaskRow> {
        tao::store::task::list(&self.app.pool, None, 100).await.unwrap()
    }

    async fn content_contains(&self, token: &str, needle: &str) {
        let what = format!("an edit of {token} containing {needle:?}");
        wait_for(&what, || async { self.double.last_content(token).contains(needle) }).await;
    }

    pub(crate) async fn finish(self) {
        assert_eq!(self.double.unexpected(), Vec::<String>::new());
        let _ = self.gate.send(true);
        let _ = self.app.stop().await;
    }
}

pub(crate) fn deploy(env: &str) -> Value {
    json!([{"name":"product","type":3,"value":"monitor"},{"name":"version","type":3,"value":"1.0.0"},
           {"name":"env","type":3,"value":env}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_stale_or_badly_signed_requests_are_refused_and_ping_is_answered() {
    crate::support::limit(unsigned_stale_or_badly_signed_requests_are_refused_and_ping_is_answered_body()).await
}

async fn unsigned_stale_or_badly_signed_requests_are_refused_and_ping_is_answered_body() {
    let s = scene(TestDb::sqlite()).await;
    let (status, body) = s.post(&serde_json::from_str(PING).unwrap()).await;
    assert_eq!((status, body), (200, json!({"type": 1})));
    let (cmd, _) = s.command(DEVELOPER, &[], "deploy", deploy("env-1"));
    let raw = serde_json::to_vec(&cmd).unwrap();
    let now = chrono::Utc::now().timestamp();
    let ts = now.to_string();
    let other = DiscordKey::generate();
    assert_eq!(s.post_raw(&raw, Some(&other.sign(&ts, &raw)), Some(&ts)).await.0, 401, "another key");
    let mut tampered = raw.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(s.post_raw(&tampered, Some(&s.key.sign(&ts, &raw)), Some(&ts)).await.0, 401, "changed body");
    let stale = (now - 400).to_string();
    assert_eq!(s.post_raw(&raw, Some(&s.key.sign(&stale, &raw)), Some(&stale)).await.0, 401, "stale");
    let future = (now + 400).to_string();
    assert_eq!(s.post_raw(&raw, Some(&s.key.sign(&future, &raw)), Some(&future)).await.0, 401, "future");
    assert_eq!(s.post_raw(&raw, None, Some(&ts)).await.0, 401, "no signature");
    assert_eq!(s.post_raw(&raw, Some(&s.key.sign(&ts, &raw)), None).await.0, 401, "no timestamp");
    assert_eq!(s.post_raw(&raw, Some("zz"), Some(&ts)).await.0, 401, "not hex");
    // Nothing was done for any of them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.tasks().await.is_empty());
    assert!(s.double.requests().is_empty());
    let (status, _) = s.post(&json!({"type": 9, "id": "1"})).await;
    assert_eq!(status, 400, "an unknown interaction type is a clear 400");
    s.finish().await;
}

async fn developer_deploys_and_the_response_follows_the_task(db: TestDb) {
    let s = scene(db).await;
    let started = Instant::now();
    let (cmd, token) = s.command(DEVELOPER, &[], "deploy", deploy("env-1"));
    let (status, body) = s.post(&cmd).await;
    assert_eq!((status, body), (200, json!({"type": 5})), "a deferred response");
    assert!(started.elapsed() < Duration::from_secs(2), "answered well within Discord's 3 s");
    s.content_contains(&token, "pulling images for env-1").await;
    let task = s.tasks().await[0].id;
    assert!(s.double.edits(&token)[0]["content"].as_str().unwrap().contains(&format!("Task {task} queued")));
    // While that deploy runs, another command is still answered at once.
    let started = Instant::now();
    let (second, second_token) = s.command(DEVELOPER, &[], "deploy", deploy("env-1"));
    assert_eq!(s.post(&second).await, (200, json!({"type": 5})));
    assert!(started.elapsed() < Duration::from_secs(2));
    s.content_contains(&token, "**running**").await;
    s.gate.send(true).unwrap();
    s.content_contains(&token, "**succeeded**").await;
    s.content_contains(&token, "every component is healthy").await;
    for edit in s.double.edits(&token) {
        assert_eq!(edit["allowed_mentions"], json!({"parse": []}), "no pings from log lines");
    }
    // The second command queued its own task, which the gate lets through too.
    s.content_contains(&second_token, "**succeeded**").await;
    assert_eq!(s.tasks().await.len(), 2);
    s.finish().await;
}

crate::both_backends!(
    a_developer_deploys_to_test_and_the_response_follows_the_task,
    developer_deploys_and_the_response_follows_the_task
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_interaction_twice_is_one_task_and_one_follower() {
    crate::support::limit(the_same_interaction_twice_is_one_task_and_one_follower_body()).await
}

async fn the_same_interaction_twice_is_one_task_and_one_follower_body() {
    let s = scene(TestDb::sqlite()).await;
    let (cmd, token) = s.command(DEVELOPER, &[], "deploy", deploy("env-1"));
    let (a, b) = tokio::join!(s.post(&cmd), s.post(&cmd));
    assert_eq!((a.0, b.0), (200, 200));
    s.content_contains(&token, "pulling images").await;
    s.gate.send(true).unwrap();
    s.content_contains(&token, "**succeeded**").await;
    assert_eq!(s.tasks().await.len(), 1);
    // The reply of a dispatch is an edit without a progress line (`Task N: **status**`).
    let replies = s.double.edits(&token).iter().filter(|e| !e["content"].as_str().unwrap().contains(": **")).count();
    assert_eq!(replies, 1, "one dispatch, one reply");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prod_is_denied_to_a_developer_and_to_strangers_with_the_reason() {
    crate::support::limit(prod_is_denied_to_a_developer_and_to_strangers_with_the_reason_body()).await
}

async fn prod_is_denied_to_a_developer_and_to_strangers_with_the_reason_body() {
    let s = scene(TestDb::sqlite()).await;
    let (cmd, token) = s.command(DEVELOPER, &[], "deploy", deploy("prod"));
    s.post(&cmd).await;
    s.content_contains(&token, "🚫 Not allowed").await;
    assert!(s.double.last_content(&token).contains("maintainer"), "{}", s.double.last_content(&token));
    let (cmd, token) = s.command(NOBODY, &[], "deploy", deploy("env-1"));
    s.post(&cmd).await;
    s.content_contains(&token, "🚫 Not allowed").await;
    let (cmd, token) = s.command(NOBODY, &[], "status", json!([{"name":"env","value":"env-1"}]));
    s.post(&cmd).await;
    s.content_contains(&token, "has no Tao role").await;
    assert!(s.tasks().await.is_empty());
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintainer_confirms_prod_with_the_button_and_a_double_click_is_one_task() {
    crate::support::limit(a_maintainer_confirms_prod_with_the_button_and_a_double_click_is_one_task_body()).await
}

async fn a_maintainer_confirms_prod_with_the_button_and_a_double_click_is_one_task_body() {
    let s = scene(TestDb::sqlite()).await;
    let (cmd, token) = s.command(NOBODY, &[OPS_ROLE], "deploy", deploy("prod"));
    s.post(&cmd).await;
    s.content_contains(&token, "production").await;
    let edit = s.double.edits(&token).pop().unwrap();
    let button = &edit["components"][0]["components"][0];
    assert_eq!((button["type"].as_u64(), button["label"].as_str()), (Some(2), Some("Confirm")));
    let custom_id = button["custom_id"].as_str().unwrap().to_string();
    assert!(s.tasks().await.is_empty(), "nothing happens before the confirmation");
    // A developer's click is refused privately; the button stays for someone who may confirm.
    let (click, dev_token) = s.click(DEVELOPER, &[], &custom_id);
    assert_eq!(s.post(&click).await, (200, json!({"type": 6})));
    wait_for("the developer's refusal", || async { !s.double.followups(&dev_token).is_empty() }).await;
    let refusal = &s.double.followups(&dev_token)[0];
    assert_eq!(refusal["flags"], 64);
    assert!(refusal["content"].as_str().unwrap().contains("Not allowed"), "{refusal}");
    assert!(s.double.edits(&dev_token).is_empty() && s.tasks().await.is_empty());
    // The maintainer clicks twice.
    let (first, first_token) = s.click(NOBODY, &[OPS_ROLE], &custom_id);
    let (second, second_token) = s.click(NOBODY, &[OPS_ROLE], &custom_id);
    let (a, b) = tokio::join!(s.post(&first), s.post(&second));
    assert_eq!((a.0, b.0), (200, 200));
    wait_for("both clicks answered", || async {
        let answered = |t: &str| !s.double.edits(t).is_empty() || !s.double.followups(t).is_empty();
        answered(&first_token) && answered(&second_token)
    })
    .await;
    let tasks = s.tasks().await;
    assert_eq!(tasks.len(), 1, "a double click is one task");
    assert_eq!(
        (tasks[0].env.as_str(), tasks[0].idempotency_key.clone()),
        ("prod", Some(format!("chat-{}:confirm", cmd["id"].as_str().unwrap())))
    );
    let edited = if s.double.edits(&first_token).is_empty() { &second_token } else { &first_token };
    s.gate.send(true).unwrap();
    s.content_contains(edited, "**succeeded**").await;
    assert_eq!(s.double.edits(edited)[0]["components"], json!([]), "the button is gone");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_environment_refuses_with_the_freeze_reason() {
    crate::support::limit(a_frozen_environment_refuses_with_the_freeze_reason_body()).await
}

async fn a_frozen_environment_refuses_with_the_freeze_reason_body() {
    let s = scene(TestDb::sqlite()).await;
    let (cmd, token) = s.command(
        DEVELOPER,
        &[],
        "freeze",
        json!([{"name":"env","value":"env-1"},{"name":"reason","value":"database move tonight"}]),
    );
    s.post(&cmd).await;
    s.content_contains(&token, "env-1 is frozen").await;
    let (cmd, token) = s.command(DEVELOPER, &[], "deploy", deploy("env-1"));
    s.post(&cmd).await;
    s.content_contains(&token, "database move tonight").await;
    assert!(s.tasks().await.is_empty());
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_get_the_grammars_error() {
    crate::support::limit(bad_arguments_get_the_grammars_error_body()).await
}

async fn bad_arguments_get_the_grammars_error_body() {
    let s = scene(TestDb::sqlite()).await;
    let (cmd, token) = s.command(DEVELOPER, &[], "deploy", json!([{"name":"product","value":"monitor"},{"name":"version","value":"latest"},{"name":"env","value":"env-1"}]));
    s.post(&cmd).await;
    s.content_contains(&token, "❌ deploy:").await;
    assert!(s.double.last_content(&token).contains("<version>"), "{}", s.double.last_content(&token));
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_moves_to_a_channel_message_when_the_interaction_token_expires() {
    crate::support::limit(progress_moves_to_a_channel_message_when_the_interaction_token_expires_body()).await
}

async fn progress_moves_to_a_channel_message_when_the_interaction_token_expires_body() {
    let s = scene_with(TestDb::sqlite(), |s| s.discord_token_lifetime = Duration::from_secs(1)).await;
    let (cmd, token) = s.command(DEVELOPER, &[], "deploy", deploy("env-1"));
    s.post(&cmd).await;
    s.content_contains(&token, "Continued in a new message").await;
    let posted = |s: &Scene| {
        s.double
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with(&format!("/api/v10/channels/{CHANNEL}/messages")))
            .collect::<Vec<_>>()
    };
    wait_for("a channel message", || async { !posted(&s).is_empty() }).await;
    assert_eq!(posted(&s)[0].method, "POST");
    s.gate.send(true).unwrap();
    wait_for("the channel message edited to the end", || async {
        posted(&s)
            .last()
            .is_some_and(|r| r.method == "PATCH" && r.body["content"].as_str().unwrap().contains("**succeeded**"))
    })
    .await;
    assert!(!s.double.last_content(&token).contains("succeeded"), "the expired token is not used any more");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autocomplete_offers_environments_and_versions_to_known_users() {
    crate::support::limit(autocomplete_offers_environments_and_versions_to_known_users_body()).await
}

async fn autocomplete_offers_environments_and_versions_to_known_users_body() {
    let s = scene(TestDb::sqlite()).await;
    let (mut cmd, _) =
        s.command(DEVELOPER, &[], "deploy", json!([{"name":"env","type":3,"value":"pr","focused":true}]));
    cmd["type"] = json!(4);
    assert_eq!(s.post(&cmd).await, (200, json!({"type": 8, "data": {"choices": [{"name": "prod", "value": "prod"}]}})));
    let (mut cmd, _) = s.command(
        DEVELOPER,
        &[],
        "deploy",
        json!([{"name":"product","value":"monitor"},{"name":"version","value":"","focused":true}]),
    );
    cmd["type"] = json!(4);
    assert_eq!(s.post(&cmd).await.1["data"]["choices"], json!([{"name": "1.0.0", "value": "1.0.0"}]));
    let (mut cmd, _) = s.command(NOBODY, &[], "deploy", json!([{"name":"env","value":"","focused":true}]));
    cmd["type"] = json!(4);
    assert_eq!(s.post(&cmd).await.1["data"]["choices"], json!([]));
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tao_discord_register_replaces_the_guild_commands() {
    crate::support::limit(tao_discord_register_replaces_the_guild_commands_body()).await
}

async fn tao_discord_register_replaces_the_guild_commands_body() {
    let double = DiscordDouble::start().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tao"))
        .args(["discord", "register", "--guild", "1380488052169769110", "--json"])
        .env("TAO_DISCORD_BOT_TOKEN", BOT_TOKEN)
        .env("TAO_DISCORD_APPLICATION_ID", APPLICATION)
        .env("TAO_DISCORD_API_URL", &double.url)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["commands"], tao::chat::CommandName::ALL.len());
    let requests = double.requests();
    // The same call serenity 0.12.5 makes for GuildId::set_commands.
    let serenity: Value = serde_json::from_str(include_str!(
        "../fixtures/discord/serenity_captured/rest.bulk_overwrite_guild_commands.PUT.serenity-0.12.5.json"
    ))
    .unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, serenity["method"]);
    assert_eq!(requests[0].path, serenity["path"]);
    let names: Vec<&str> = requests[0].body.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"deploy") && names.contains(&"release-create") && names.contains(&"freeze"), "{names:?}");
    let option = &requests[0].body[0]["options"][0];
    for field in ["type", "name", "description", "required"] {
        assert!(serenity["body"][0]["options"][0].get(field).is_some() && option.get(field).is_some(), "{field}");
    }
    assert!(double.unexpected().is_empty(), "{:?}", double.unexpected());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tao"))
        .args(["discord", "register", "--guild", "1"])
        .env_remove("TAO_DISCORD_BOT_TOKEN")
        .env("TAO_DISCORD_APPLICATION_ID", APPLICATION)
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("TAO_DISCORD_BOT_TOKEN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_public_key_every_interaction_is_refused() {
    crate::support::limit(without_a_public_key_every_interaction_is_refused_body()).await
}

async fn without_a_public_key_every_interaction_is_refused_body() {
    let app = crate::support::spawn_app(TestDb::sqlite()).await;
    let res = app
        .http
        .post(format!("{}/api/v1/discord/interactions", app.base))
        .header("X-Signature-Ed25519", "00".repeat(64))
        .header("X-Signature-Timestamp", chrono::Utc::now().timestamp().to_string())
        .body(PING)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(res.text().await.unwrap().contains("TAO_DISCORD_PUBLIC_KEY"));
    let _ = app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_guilds_get_the_slash_commands_at_start() {
    crate::support::limit(configured_guilds_get_the_slash_commands_at_start_body()).await
}

async fn configured_guilds_get_the_slash_commands_at_start_body() {
    let guilds = vec!["1380488052169769110".to_string(), "1380488052169769111".to_string()];
    let s = scene_with(TestDb::sqlite(), move |s| s.discord_register = Some((APPLICATION.into(), guilds))).await;
    let puts: Vec<String> = s.double.requests().into_iter().filter(|r| r.method == "PUT").map(|r| r.path).collect();
    assert_eq!(
        puts,
        [
            format!("/api/v10/applications/{APPLICATION}/guilds/1380488052169769110/commands"),
            format!("/api/v10/applications/{APPLICATION}/guilds/1380488052169769111/commands"),
        ]
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_progress_is_cut_with_a_link_to_the_task_page() {
    crate::support::limit(long_progress_is_cut_with_a_link_to_the_task_page_body()).await
}

async fn long_progress_is_cut_with_a_link_to_the_task_page_body() {
    let s = scene(TestDb::sqlite()).await;
    let mut options = deploy("env-1");
    options.as_array_mut().unwrap().push(json!({"name": "components", "type": 3, "value": "api"}));
    let (cmd, token) = s.command(DEVELOPER, &[], "deploy", options);
    s.post(&cmd).await;
    s.content_contains(&token, "… (cut; all of it: https://tao.example/ui/tasks/").await;
    let id = s.tasks().await[0].id;
    assert!(s.double.last_content(&token).ends_with(&format!("/ui/tasks/{id})")));
    s.gate.send(true).unwrap();
    s.content_contains(&token, "**succeeded**").await;
    // The double refuses (and records as unexpected) any content over 2000 characters.
    s.finish().await;
}

#[tokio::test]
async fn tao_serve_refuses_bad_discord_settings_naming_them() {
    crate::support::limit(tao_serve_refuses_bad_discord_settings_naming_them_body()).await
}

async fn tao_serve_refuses_bad_discord_settings_naming_them_body() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("tao.db").display());
    let key = DiscordKey::generate().public_hex();
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("TAO_DISCORD_PUBLIC_KEY", "abc")], "TAO_DISCORD_PUBLIC_KEY: expected 64 hex characters"),
        (&[("TAO_DISCORD_GATEWAY", "true")], "TAO_DISCORD_GATEWAY is set but TAO_DISCORD_BOT_TOKEN is not"),
        (&[("TAO_DISCORD_PUBLIC_KEY", &key)], "TAO_DISCORD_BOT_TOKEN is not"),
        (&[("TAO_DISCORD_ROLES", r#"{"users": {"12": "boss"}}"#)], "users.12.level: expected reporter"),
        (&[("TAO_DISCORD_GUILDS", "1")], "TAO_DISCORD_APPLICATION_ID is not"),
    ];
    for (envs, expected) in cases {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tao"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db]);
        for var in [
            "TAO_DISCORD_PUBLIC_KEY",
            "TAO_DISCORD_BOT_TOKEN",
            "TAO_DISCORD_ROLES",
            "TAO_DISCORD_GUILDS",
            "TAO_DISCORD_GATEWAY",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(envs.iter().copied()).env_remove("TAO_CATALOG").env_remove("TAO_DATABASE_URL");
        let out = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await.expect("tao serve exits").unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{envs:?}: {stderr}");
        assert!(stderr.contains(expected), "{envs:?}: {stderr}");
    }
}
