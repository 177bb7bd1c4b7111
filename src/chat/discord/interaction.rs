//! One interaction in (signature-checked, or from the gateway), Discord's immediate answer out, the slow
//! part in the background.
//!
//! Owns the flow: PING → PONG; a slash command → a deferred response at once, then dispatch and an edit
//! of the original response with the reply (a Confirm button when production needs one; a multipart
//! edit carrying the file when the reply has one, such as the picture of `/dora`); a click on
//! that button → a deferred update, then dispatch again with `confirm`, keyed by the original
//! interaction id and `:confirm` so a double click is one task; autocomplete → choices from the catalog
//! and the store. While a task it started runs, the response is edited with its progress until the task
//! ends (see `follow`). The same interaction id twice does nothing the second time (over HTTP it gets the
//! same kind of answer, over the gateway no second callback: [`Answer::is_repeat`]); one task is followed
//! once. Interactions come from the HTTP endpoint (`crate::http::discord`) or the gateway
//! (`gateway`); both call this file the same way.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::client::DiscordClient;
use super::commands::{focused, option_value, to_command};
use super::render::{confirm_id, parse_confirm_id, reply_body, task_link, text_body};
use super::verify::Verifier;
use crate::chat::dispatch::{dispatch, ChatRequest, Outcome, Reply};
use crate::chat::parse_line;
use crate::config::discord_roles::RoleMap;
use crate::config::Secret;
use crate::service::{level, ChatUser, Services};

/// How long Tao remembers interaction ids it handled (longer than Discord's retries and the replay window).
const REMEMBER: Duration = Duration::from_secs(20 * 60);
/// Discord's EPHEMERAL message flag.
const EPHEMERAL: u64 = 64;

/// What the adapter needs besides the services.
#[derive(Debug, Clone)]
pub struct DiscordConfig {
    /// The application's public key; `None`: the HTTP endpoint refuses every call (gateway only).
    pub verifier: Option<Verifier>,
    /// Discord users and roles → Tao levels.
    pub roles: RoleMap,
    /// Outbound calls.
    pub client: DiscordClient,
    /// Tao's external URL, for links to tasks.
    pub public_url: Option<String>,
    /// How long an interaction token may be used (Discord: 15 minutes).
    pub token_lifetime: Duration,
    /// How often a followed task is polled.
    pub poll: Duration,
}

/// The Discord adapter: cheap to clone, shared by every request.
#[derive(Clone, Debug)]
pub struct Discord {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    services: Services,
    config: DiscordConfig,
    seen: Mutex<HashMap<String, Instant>>,
    following: Mutex<HashSet<i64>>,
}

/// An interaction Tao cannot use (answered 400).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInteraction(pub String);

/// The background work an interaction starts.
type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Discord's immediate answer to one interaction, and the work it starts (dispatching a command, a
/// confirmation), held until [`Answer::start`].
pub struct Answer {
    body: Value,
    first: bool,
    work: Option<Work>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer").field("body", &self.body).field("first", &self.first).finish_non_exhaustive()
    }
}

impl Answer {
    /// The interaction response: the HTTP reply, or the body of the gateway's callback.
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// Whether this interaction id was answered before (a redelivery: it starts nothing, and Discord
    /// takes no second callback).
    pub fn is_repeat(&self) -> bool {
        !self.first
    }

    /// Starts the work in the background.
    pub fn start(self) {
        if let Some(work) = self.work {
            tokio::spawn(work);
        }
    }
}

/// What a background step needs to answer: the interaction's ids and token, and who sent it.
#[derive(Debug, Clone)]
pub(super) struct Ctx {
    pub(super) id: String,
    pub(super) application: String,
    /// The interaction token (a credential for 15 minutes: never printed).
    pub(super) token: Secret,
    pub(super) channel: Option<String>,
    pub(super) user: ChatUser,
    pub(super) received: Instant,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v[key].as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

impl Discord {
    /// The adapter over `services`.
    pub fn new(services: Services, config: DiscordConfig) -> Discord {
        let inner = Inner { services, config, seen: Mutex::default(), following: Mutex::default() };
        Discord { inner: Arc::new(inner) }
    }

    /// The key HTTP requests are checked with (`None`: the endpoint is not configured).
    pub fn verifier(&self) -> Option<&Verifier> {
        self.inner.config.verifier.as_ref()
    }

    pub(super) fn services(&self) -> &Services {
        &self.inner.services
    }

    pub(super) fn config(&self) -> &DiscordConfig {
        &self.inner.config
    }

    pub(super) fn client(&self) -> &DiscordClient {
        &self.inner.config.client
    }

    /// The link to task `id`'s page, when Tao knows its URL.
    pub(super) fn link(&self, id: Option<i64>) -> Option<String> {
        task_link(self.inner.config.public_url.as_deref(), id)
    }

    /// Answers one verified interaction (the JSON of the HTTP response) and starts what follows at once.
    pub async fn handle(&self, i: &Value) -> Result<Value, BadInteraction> {
        let answer = self.answer(i).await?;
        let body = answer.body().clone();
        answer.start();
        Ok(body)
    }

    /// The immediate answer to interaction `i`, with what it starts held back until [`Answer::start`]
    /// (the gateway starts it once Discord took the answer, so edits of the response find it).
    pub async fn answer(&self, i: &Value) -> Result<Answer, BadInteraction> {
        let answer = |body: Value, first: bool, work: Option<Work>| Ok(Answer { body, first, work });
        match i["type"].as_u64() {
            Some(1) => answer(json!({ "type": 1 }), true, None),
            Some(2) => {
                let ctx = self.ctx(i)?;
                let first = self.first_time(&ctx.id);
                if !first {
                    tracing::info!(interaction = %ctx.id, "Discord interaction seen before: nothing done again");
                }
                let (me, data) = (self.clone(), i["data"].clone());
                let work: Work = Box::pin(async move { me.command(ctx, data).await });
                answer(json!({ "type": 5 }), first, first.then_some(work))
            }
            Some(3) => {
                let ctx = self.ctx(i)?;
                let first = self.first_time(&ctx.id);
                let custom_id = i["data"]["custom_id"].as_str().unwrap_or_default();
                let Some((original, line)) = parse_confirm_id(custom_id) else {
                    let content = format!("❌ Tao does not know the button {custom_id:?}");
                    return answer(
                        json!({ "type": 4, "data": { "content": content, "flags": EPHEMERAL } }),
                        first,
                        None,
                    );
                };
                let (me, original, line) = (self.clone(), original.to_string(), line.to_string());
                let work: Work = Box::pin(async move { me.confirm(ctx, original, line).await });
                answer(json!({ "type": 6 }), first, first.then_some(work))
            }
            Some(4) => {
                let ctx = self.ctx(i)?;
                let first = self.first_time(&ctx.id);
                let choices = self.choices(&ctx.user, &i["data"]).await;
                answer(json!({ "type": 8, "data": { "choices": choices } }), first, None)
            }
            Some(t) => Err(BadInteraction(format!("Tao does not handle interactions of type {t}"))),
            None => Err(BadInteraction("expected an interaction: no numeric \"type\"".into())),
        }
    }

    fn ctx(&self, i: &Value) -> Result<Ctx, BadInteraction> {
        let missing = |what: &str| BadInteraction(format!("interaction without {what}"));
        let user = if i["member"]["user"].is_object() { &i["member"]["user"] } else { &i["user"] };
        let user_id = text(user, "id").ok_or_else(|| missing("member.user.id or user.id"))?;
        let name = text(user, "global_name").or_else(|| text(user, "username")).unwrap_or_else(|| user_id.clone());
        let roles: Vec<String> = i["member"]["roles"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Ok(Ctx {
            id: text(i, "id").ok_or_else(|| missing("id"))?,
            application: text(i, "application_id").ok_or_else(|| missing("application_id"))?,
            token: Secret::new(text(i, "token").ok_or_else(|| missing("token"))?),
            channel: text(i, "channel_id").or_else(|| text(&i["channel"], "id")),
            user: self.inner.config.roles.user(&user_id, &name, &roles),
            received: Instant::now(),
        })
    }

    /// Records `id`; false when it was handled before.
    fn first_time(&self, id: &str) -> bool {
        let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, at| at.elapsed() < REMEMBER);
        seen.insert(id.to_string(), Instant::now()).is_none()
    }

    /// Marks task `id` as followed; false when something follows it already.
    pub(super) fn start_following(&self, id: i64) -> bool {
        self.inner.following.lock().unwrap_or_else(|e| e.into_inner()).insert(id)
    }

    pub(super) fn stop_following(&self, id: i64) {
        self.inner.following.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    pub(super) async fn edit(&self, ctx: &Ctx, body: &Value) {
        if let Err(e) = self.client().edit_original(&ctx.application, ctx.token.expose(), body).await {
            tracing::warn!(interaction = %ctx.id, error = %e, "cannot edit the Discord response");
        }
    }

    /// Edits the response with `reply` (`body`, from `reply_body`): with its file when it has one.
    async fn edit_with_reply(&self, ctx: &Ctx, reply: &Reply, body: &Value) {
        let Some(file) = &reply.attachment else { return self.edit(ctx, body).await };
        let (app, token) = (&ctx.application, ctx.token.expose());
        if let Err(e) = self.client().edit_original_with_file(app, token, body, &file.file_name, &file.bytes).await {
            tracing::warn!(interaction = %ctx.id, error = %e, "cannot edit the Discord response with a file");
            let note = format!("{}\n⚠️ The picture could not be sent to Discord: {e}", reply.text.trim_end());
            self.edit(ctx, &text_body(&note, None)).await;
        }
    }

    async fn command(&self, ctx: Ctx, data: Value) {
        let command = match to_command(&data) {
            Ok(c) => c,
            Err(e) => return self.edit(&ctx, &text_body(&format!("❌ {e}"), None)).await,
        };
        let req = ChatRequest { user: ctx.user.clone(), command: command.clone(), key: ctx.id.clone() };
        let reply = dispatch(self.services(), &req).await;
        let button = confirm_id(&ctx.id, &command);
        let followed = reply.task_id.filter(|_| reply.outcome == Outcome::Done).filter(|t| self.start_following(*t));
        self.edit_with_reply(&ctx, &reply, &reply_body(&reply, button.as_deref(), self.link(reply.task_id).as_deref()))
            .await;
        if let Some(task) = followed {
            self.follow(ctx, task, headline(&reply)).await;
        }
    }

    async fn confirm(&self, ctx: Ctx, original: String, line: String) {
        let command = match parse_line(&format!("{line} confirm")) {
            Ok(c) => c,
            Err(e) => return self.ephemeral(&ctx, &format!("❌ {e}")).await,
        };
        let req = ChatRequest { user: ctx.user.clone(), command, key: format!("{original}:confirm") };
        let reply = dispatch(self.services(), &req).await;
        if reply.outcome == Outcome::Denied {
            // Leave the button for someone who may confirm.
            return self.ephemeral(&ctx, &reply.text).await;
        }
        let task = reply.task_id.filter(|_| reply.outcome == Outcome::Done);
        if let Some(t) = task {
            if !self.start_following(t) {
                return self.ephemeral(&ctx, &format!("Task {t} was already started by this confirmation")).await;
            }
        }
        self.edit_with_reply(&ctx, &reply, &reply_body(&reply, None, self.link(reply.task_id).as_deref())).await;
        if let Some(t) = task {
            self.follow(ctx, t, headline(&reply)).await;
        }
    }

    async fn ephemeral(&self, ctx: &Ctx, text: &str) {
        let mut body = text_body(text, None);
        body["flags"] = json!(EPHEMERAL);
        if let Err(e) = self.client().followup(&ctx.application, ctx.token.expose(), &body).await {
            tracing::warn!(interaction = %ctx.id, error = %e, "cannot send a Discord follow-up");
        }
    }

    /// Autocomplete: environments, products, or the chosen product's versions matching what was typed
    /// (nothing for people without a Tao role).
    async fn choices(&self, user: &ChatUser, data: &Value) -> Vec<Value> {
        let Some((option, typed)) = focused(data) else { return Vec::new() };
        if user.level < level::REPORTER {
            return Vec::new();
        }
        let catalog = self.services().catalog_now();
        let names: Vec<String> = match option.as_str() {
            "env" => catalog.environments.keys().map(|n| n.to_string()).collect(),
            "product" => catalog.products.keys().map(|n| n.to_string()).collect(),
            "version" => match option_value(&data["options"], "product").and_then(Value::as_str) {
                Some(p) => self
                    .services()
                    .releases(p)
                    .await
                    .unwrap_or_default()
                    .iter()
                    .map(|v| v.version.to_string())
                    .collect(),
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        let typed = typed.to_lowercase();
        names.into_iter().filter(|n| n.contains(&typed)).take(25).map(|n| json!({ "name": n, "value": n })).collect()
    }
}

/// The first line of a reply, kept above a task's progress.
fn headline(reply: &Reply) -> String {
    reply.text.lines().next().unwrap_or_default().to_string()
}
