//! Outbound notifications: rules route events (deploys, product versions, freezes, policy violations,
//! failed pipelines) to Discord channels (through the bot), Discord webhooks and generic JSON webhooks.
//!
//! Owns the rules file (`TAO_NOTIFY_CONFIG`), the message templates (handlebars, with defaults, each
//! overridable), the fan-out of an event into the outbox (`store::notify`: durable, one row per
//! destination, deduplicated), the watcher that turns deploy task changes into events, and the delivery
//! worker (retries with exponential backoff, `Retry-After` on 429, dead after the last attempt). Delivery
//! runs apart from deploys: a slow or failing receiver never delays one.
//!
//! ```yaml
//! rules:
//!   - events: ["deploy.*"]            # globs; default every event
//!     envs: [prod]                     # optional filters on the event's env / product
//!     discord_channel: "123456789012345678"   # or discord_webhook: URL, or webhook: URL
//!   - events: [policy.violation, pipeline.failed]
//!     webhook: https://hooks.example.com/tao
//! templates:
//!   deploy.failed: "❌ {{what}} → {{env}} failed: {{error}} ({{link}})"
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use handlebars::Handlebars;
use serde_json::{json, Map, Value};
use tokio::sync::{watch, Notify};

use crate::config::Secret;
use crate::deploy::task::{TaskKind, TaskStatus};
use crate::policy::wildcard_match;
use crate::store::notify::{self as outbox, NewNotification, NotificationRow};
use crate::store::{now_ms, Pool, StoreError};

/// Attempts before a notification is given up (`dead`).
pub const MAX_ATTEMPTS: i64 = 10;
/// Discord's limit on a message's content.
pub const DISCORD_LIMIT: usize = 2000;

/// Where a rule sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A channel, through the bot (`TAO_DISCORD_BOT_TOKEN`).
    DiscordChannel(String),
    /// A Discord webhook URL.
    DiscordWebhook(String),
    /// Any URL taking JSON `{event, text, fields}`.
    Webhook(String),
}

impl Destination {
    fn kind(&self) -> &'static str {
        match self {
            Destination::DiscordChannel(_) => "discord_channel",
            Destination::DiscordWebhook(_) => "discord_webhook",
            Destination::Webhook(_) => "webhook",
        }
    }

    fn target(&self) -> &str {
        match self {
            Destination::DiscordChannel(t) | Destination::DiscordWebhook(t) | Destination::Webhook(t) => t,
        }
    }
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Event globs (`deploy.*`); empty = every event.
    pub events: Vec<String>,
    /// Only events about these environments (when the event has one).
    pub envs: Vec<String>,
    /// Only events about these products (when the event has one).
    pub products: Vec<String>,
    /// Where to.
    pub to: Destination,
}

impl Rule {
    fn matches(&self, event: &str, fields: &Map<String, Value>) -> bool {
        let event_ok = self.events.is_empty() || self.events.iter().any(|g| wildcard_match(g, event));
        let field_ok = |list: &[String], key: &str| {
            list.is_empty() || fields.get(key).and_then(Value::as_str).is_some_and(|v| list.iter().any(|x| x == v))
        };
        event_ok && field_ok(&self.envs, "env") && field_ok(&self.products, "product")
    }
}

/// The rules file.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// Rules, in order (an event goes to every matching rule's destination).
    pub rules: Vec<Rule>,
    /// Template overrides by event kind.
    pub templates: BTreeMap<String, String>,
}

/// Every event kind Tao emits, with its default template.
pub const EVENTS: &[(&str, &str)] = &[
    ("deploy.queued", "⏳ {{what}} → {{env}} queued by {{actor}} (task {{task_id}})"),
    ("deploy.started", "🚀 {{what}} → {{env}} started (task {{task_id}})"),
    ("deploy.succeeded", "✅ {{what}} → {{env}} succeeded in {{duration}} (task {{task_id}}, by {{actor}}) {{link}}"),
    (
        "deploy.failed",
        "❌ {{what}} → {{env}} failed after {{duration}}: {{error}} (task {{task_id}}, by {{actor}}) {{link}}",
    ),
    (
        "deploy.rolled_back",
        "↩️ {{env}} rolled back to {{what}} in {{duration}} (task {{task_id}}, by {{actor}}) {{link}}",
    ),
    ("deploy.cancelled", "⏹️ {{what}} → {{env}} cancelled (task {{task_id}}) {{link}}"),
    ("deploy.interrupted", "⚠️ {{what}} → {{env}} interrupted: {{error}} (task {{task_id}}) {{link}}"),
    ("release.created", "📦 {{product}} {{version}} created by {{actor}}"),
    ("env.frozen", "🧊 {{env}} frozen by {{actor}}: {{reason}}"),
    ("env.unfrozen", "🌤️ {{env}} unfrozen by {{actor}}"),
    ("policy.violation", "🚨 {{project}} {{ref}}: {{message}} — fix: {{fix}}"),
    ("pipeline.failed", "🔴 pipeline {{pipeline_id}} failed on {{project}} {{ref}} {{link}}"),
];

const RULE_KEYS: &[&str] = &["events", "envs", "products", "discord_channel", "discord_webhook", "webhook"];

impl NotifyConfig {
    /// Parses the rules file; every problem is reported with its path.
    pub fn from_yaml(text: &str) -> Result<NotifyConfig, Vec<String>> {
        let v: Value = serde_yaml_ng::from_str(text).map_err(|e| vec![format!("(file): {e}")])?;
        let mut errors = Vec::new();
        let mut out = NotifyConfig::default();
        let Some(top) = v.as_object() else { return Err(vec!["(file): expected a mapping with rules".into()]) };
        for key in top.keys().filter(|k| !["rules", "templates"].contains(&k.as_str())) {
            errors.push(format!("{key}: expected one of rules, templates, found an unknown key"));
        }
        let known: Vec<&str> = EVENTS.iter().map(|(k, _)| *k).collect();
        for (i, r) in top.get("rules").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = format!("rules[{i}]");
            let Some(m) = r.as_object() else {
                errors.push(format!("{at}: expected a mapping"));
                continue;
            };
            for key in m.keys().filter(|k| !RULE_KEYS.contains(&k.as_str())) {
                errors.push(format!("{at}.{key}: expected one of {}, found an unknown key", RULE_KEYS.join(", ")));
            }
            let list = |key: &str, errors: &mut Vec<String>| -> Vec<String> {
                match m.get(key) {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(|x| {
                            let s = x.as_str().map(str::to_string);
                            if s.is_none() {
                                errors.push(format!("{at}.{key}: expected a list of text"));
                            }
                            s
                        })
                        .collect(),
                    Some(_) => {
                        errors.push(format!("{at}.{key}: expected a list"));
                        Vec::new()
                    }
                }
            };
            let events = list("events", &mut errors);
            for e in &events {
                if !e.contains('*') && !known.contains(&e.as_str()) {
                    errors.push(format!("{at}.events: expected one of {} (or a glob), found {e:?}", known.join(", ")));
                }
            }
            let (envs, products) = (list("envs", &mut errors), list("products", &mut errors));
            let text = |key: &str| m.get(key).and_then(Value::as_str).map(str::to_string);
            let dests: Vec<Destination> = [
                text("discord_channel").map(Destination::DiscordChannel),
                text("discord_webhook").map(Destination::DiscordWebhook),
                text("webhook").map(Destination::Webhook),
            ]
            .into_iter()
            .flatten()
            .collect();
            match dests.as_slice() {
                [one] => {
                    let ok = match one {
                        Destination::DiscordChannel(id) => !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
                        Destination::DiscordWebhook(u) | Destination::Webhook(u) => {
                            u.starts_with("https://") || u.starts_with("http://")
                        }
                    };
                    if ok {
                        out.rules.push(Rule { events, envs, products, to: one.clone() });
                    } else {
                        errors.push(format!(
                            "{at}.{}: expected a channel id (digits) or an http(s) URL, found {:?}",
                            one.kind(),
                            one.target()
                        ));
                    }
                }
                _ => errors.push(format!(
                    "{at}: expected exactly one of discord_channel, discord_webhook, webhook, found {}",
                    dests.len()
                )),
            }
        }
        if let Some(t) = top.get("templates") {
            for (k, v) in t.as_object().into_iter().flatten() {
                match v.as_str() {
                    Some(text) if known.contains(&k.as_str()) => {
                        match Handlebars::new().render_template(text, &json!({})) {
                            Ok(_) => {
                                out.templates.insert(k.clone(), text.to_string());
                            }
                            Err(e) => errors
                                .push(format!("templates.{k}: expected a handlebars template, found an error: {e}")),
                        }
                    }
                    Some(_) => errors.push(format!("templates.{k}: expected one of {}", known.join(", "))),
                    None => errors.push(format!("templates.{k}: expected text")),
                }
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

/// Emits events into the outbox and delivers them. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    pool: Pool,
    config: Arc<NotifyConfig>,
    templates: Arc<Handlebars<'static>>,
    http: reqwest::Client,
    discord_api: Arc<String>,
    bot_token: Option<Secret>,
    public_url: Option<Arc<String>>,
    retry_base: Duration,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").field("rules", &self.config.rules.len()).finish_non_exhaustive()
    }
}

/// What the notifier needs besides the store.
#[derive(Debug, Clone)]
pub struct NotifierSettings {
    /// The rules.
    pub config: NotifyConfig,
    /// Discord's API base (`https://discord.com/api/v10`).
    pub discord_api: String,
    /// The bot token, for `discord_channel` destinations.
    pub bot_token: Option<Secret>,
    /// Tao's external URL, for links.
    pub public_url: Option<String>,
    /// First retry delay; doubled per attempt, capped at 10 minutes.
    pub retry_base: Duration,
}

impl Notifier {
    /// A notifier over `pool`.
    pub fn new(pool: Pool, s: NotifierSettings) -> Notifier {
        let mut hb = Handlebars::new();
        hb.register_escape_fn(handlebars::no_escape);
        for (kind, default) in EVENTS {
            let text = s.config.templates.get(*kind).map(String::as_str).unwrap_or(default);
            if let Err(e) = hb.register_template_string(kind, text) {
                tracing::error!(event = kind, error = %e, "notification template does not compile; using the default");
                let _ = hb.register_template_string(kind, default);
            }
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Notifier {
            pool,
            config: Arc::new(s.config),
            templates: Arc::new(hb),
            http,
            discord_api: Arc::new(s.discord_api.trim_end_matches('/').to_string()),
            bot_token: s.bot_token,
            public_url: s.public_url.map(Arc::new),
            retry_base: s.retry_base,
            wake: Arc::default(),
        }
    }

    /// Whether any rule exists (emitting is skipped otherwise).
    pub fn enabled(&self) -> bool {
        !self.config.rules.is_empty()
    }

    /// Tao's page of a task, when the external URL is known.
    pub fn task_link(&self, id: i64) -> String {
        self.public_url.as_ref().map(|u| format!("{}/ui/tasks/{id}", u.trim_end_matches('/'))).unwrap_or_default()
    }

    /// Stores the event for every matching destination (once per `dedupe_key`) and wakes the worker.
    pub async fn emit(&self, event: &str, dedupe_key: &str, fields: Map<String, Value>) -> Result<(), StoreError> {
        let rules: Vec<&Rule> = self.config.rules.iter().filter(|r| r.matches(event, &fields)).collect();
        if rules.is_empty() {
            return Ok(());
        }
        let text = self.templates.render(event, &fields).unwrap_or_else(|e| format!("{event} ({e})"));
        let mut stored = false;
        for rule in rules {
            let body = match &rule.to {
                Destination::Webhook(_) => json!({ "event": event, "text": text, "fields": fields }),
                Destination::DiscordChannel(_) | Destination::DiscordWebhook(_) => {
                    json!({ "content": crate::policy::truncate(&text, DISCORD_LIMIT), "allowed_mentions": { "parse": [] } })
                }
            };
            let n = NewNotification {
                dedupe_key: dedupe_key.to_string(),
                event: event.to_string(),
                target_kind: rule.to.kind().to_string(),
                target: rule.to.target().to_string(),
                body: body.to_string(),
            };
            stored |= outbox::insert(&self.pool, &n).await?;
        }
        if stored {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Emits without failing the caller: notifications never stop what they report on.
    pub async fn emit_quietly(&self, event: &str, dedupe_key: &str, fields: Map<String, Value>) {
        if let Err(e) = self.emit(event, dedupe_key, fields).await {
            tracing::error!(event, error = %e, "cannot store a notification");
        }
    }

    /// Delivers due notifications until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let wait = match self.deliver_due().await {
                Ok(()) => match outbox::next_due(&self.pool).await {
                    Ok(Some(t)) => Duration::from_millis((t - now_ms()).clamp(1, 60_000) as u64),
                    Ok(None) => Duration::from_secs(60),
                    Err(_) => Duration::from_secs(1),
                },
                Err(e) => {
                    tracing::error!(error = %e, "notifier cannot reach the store");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                r = shutdown.changed() => if r.is_err() { return },
            }
        }
    }

    async fn deliver_due(&self) -> Result<(), StoreError> {
        loop {
            let due = outbox::take_due(&self.pool, now_ms(), 30_000, 20).await?;
            if due.is_empty() {
                return Ok(());
            }
            // One task per destination, in id order within it: one slow receiver does not hold the others,
            // and each receiver sees its events in the order they happened.
            let mut by_target: BTreeMap<(String, String), Vec<NotificationRow>> = BTreeMap::new();
            for row in due {
                by_target.entry((row.target_kind.clone(), row.target.clone())).or_default().push(row);
            }
            let sends = by_target.into_values().map(|rows| {
                let me = self.clone();
                tokio::spawn(async move {
                    for row in rows {
                        me.deliver(row).await?;
                    }
                    Ok::<(), StoreError>(())
                })
            });
            for r in futures_util::future::join_all(sends).await {
                if let Ok(Err(e)) = r {
                    tracing::error!(error = %e, "cannot record a notification delivery");
                }
            }
        }
    }

    async fn deliver(&self, row: NotificationRow) -> Result<(), StoreError> {
        let request = match row.target_kind.as_str() {
            "discord_channel" => {
                let Some(token) = &self.bot_token else {
                    return outbox::failed(&self.pool, row.id, "no bot token (TAO_DISCORD_BOT_TOKEN)", None).await;
                };
                let url = format!("{}/channels/{}/messages", self.discord_api, row.target);
                self.http.post(url).header("Authorization", format!("Bot {}", token.expose()))
            }
            _ => self.http.post(&row.target),
        };
        let result = request.header("Content-Type", "application/json").body(row.body.clone()).send().await;
        let (error, retry_after) = match result {
            Ok(r) if r.status().is_success() => return outbox::sent(&self.pool, row.id).await,
            Ok(r) => {
                let after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(|s| (s * 1000.0) as i64);
                (format!("HTTP {}", r.status().as_u16()), after)
            }
            Err(e) => (format!("cannot reach the receiver: {}", e.without_url()), None),
        };
        let attempts = row.attempts + 1;
        let retry_at = (attempts < MAX_ATTEMPTS).then(|| {
            let backoff = self.retry_base.saturating_mul(1 << attempts.min(16)).min(Duration::from_secs(600));
            now_ms() + retry_after.unwrap_or(backoff.as_millis() as i64)
        });
        tracing::warn!(notification = row.id, event = %row.event, attempts, %error, "notification not delivered");
        outbox::failed(&self.pool, row.id, &error, retry_at).await
    }

    /// Turns deploy task changes of this process (`changes`: task ids, from the deploy queue's handle)
    /// into `deploy.*` events until `shutdown` turns true.
    pub async fn watch_tasks(
        self,
        mut changes: tokio::sync::broadcast::Receiver<i64>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let id = tokio::select! {
                r = changes.recv() => match r {
                    Ok(id) => id,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "notifier missed task changes");
                        continue;
                    }
                    Err(_) => return,
                },
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return } else { continue },
            };
            if let Err(e) = self.task_changed(id).await {
                tracing::error!(task = id, error = %e, "cannot emit a task notification");
            }
        }
    }

    /// Emits every lifecycle event the task's current state implies (queued; started once it has a start
    /// time; its end), each once: a watcher that reads the task late (it already ended) still reports
    /// each step, in order.
    async fn task_changed(&self, id: i64) -> Result<(), StoreError> {
        let Some(t) = crate::store::task::get(&self.pool, id).await? else { return Ok(()) };
        let end = match (t.status, t.kind) {
            (TaskStatus::Succeeded, TaskKind::Rollback) => Some("deploy.rolled_back"),
            (TaskStatus::Succeeded, _) => Some("deploy.succeeded"),
            (TaskStatus::Failed, _) => Some("deploy.failed"),
            (TaskStatus::Cancelled, _) => Some("deploy.cancelled"),
            (TaskStatus::Interrupted, _) => Some("deploy.interrupted"),
            (TaskStatus::Queued | TaskStatus::Running, _) => None,
        };
        let mut steps = vec![("deploy.queued", "queued")];
        if t.started_at.is_some() {
            steps.push(("deploy.started", "running"));
        }
        if let Some(event) = end {
            steps.push((event, t.status.as_str()));
        }
        let what = match (&t.product, &t.version, &t.component, &t.image_tag) {
            (_, _, Some(c), Some(tag)) => format!("{c}@{tag}"),
            (Some(p), Some(v), _, _) => format!("{p} {v}"),
            (Some(p), None, _, _) => p.clone(),
            _ => t.kind.to_string(),
        };
        let duration = match (t.started_at, t.finished_at) {
            (Some(s), Some(f)) => format!("{:.1}s", (f - s) as f64 / 1000.0),
            _ => String::new(),
        };
        for (event, status) in steps {
            let mut fields = Map::new();
            for (k, v) in [
                ("task_id", json!(t.id)),
                ("kind", json!(t.kind)),
                ("env", json!(t.env)),
                ("product", json!(t.product)),
                ("version", json!(t.version)),
                ("component", json!(t.component)),
                ("image_tag", json!(t.image_tag)),
                ("what", json!(what)),
                ("actor", json!(t.requested_by)),
                ("status", json!(status)),
                (
                    "duration",
                    json!(if end.is_some() && status == t.status.as_str() { duration.clone() } else { String::new() }),
                ),
                ("error", json!(t.error.clone().unwrap_or_default())),
                ("link", json!(self.task_link(t.id))),
            ] {
                fields.insert(k.into(), v);
            }
            self.emit(event, &format!("task-{}-{status}", t.id), fields).await?;
        }
        Ok(())
    }
}

/// Fields from pairs, for callers that emit events.
pub fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
