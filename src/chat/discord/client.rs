//! The one outbound Discord client: REST calls with the bot token (`Authorization: Bot …`) against a
//! configurable API base (`TAO_DISCORD_API_URL`, default [`DEFAULT_API_URL`]), so tests point it at a
//! double.
//!
//! Owns the request shapes (the same paths, headers and JSON bodies serenity 0.12 sends; see
//! `tests/fixtures/discord/serenity_captured/`), retrying after Discord's 429 `retry_after`, and keeping
//! the token out of every log line and error. Knows nothing of commands or tasks.

use std::time::Duration;

use serde_json::Value;

use crate::config::Secret;

/// Discord's API base.
pub const DEFAULT_API_URL: &str = "https://discord.com/api/v10";

/// Attempts per call when Discord answers 429.
const ATTEMPTS: u32 = 3;

/// A failed Discord call (never contains the token).
#[derive(Debug, thiserror::Error)]
pub enum DiscordError {
    /// Discord could not be reached.
    #[error("cannot reach Discord at {path}: {message}")]
    Transport {
        /// The route, without the API base or any token.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Discord refused the call.
    #[error("Discord answered {status} to {method} {path}: {body}")]
    Status {
        /// The method.
        method: String,
        /// The route, interaction tokens elided.
        path: String,
        /// HTTP status.
        status: u16,
        /// Discord's error body (its code and message).
        body: String,
    },
}

/// Discord's REST API, as Tao's bot.
#[derive(Clone)]
pub struct DiscordClient {
    http: reqwest::Client,
    base: String,
    token: Option<Secret>,
}

impl std::fmt::Debug for DiscordClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordClient").field("base", &self.base).field("token", &self.token).finish()
    }
}

/// A route for logs and errors: interaction tokens (long path segments) elided.
fn shown(path: &str) -> String {
    path.split('/').map(|s| if s.len() > 40 { "…" } else { s }).collect::<Vec<_>>().join("/")
}

impl DiscordClient {
    /// A client for `base` (e.g. [`DEFAULT_API_URL`]) authenticating as the bot with `token`, if any
    /// (interaction webhooks work without one; channel messages and command registration need it).
    pub fn new(base: &str, token: Option<Secret>) -> anyhow::Result<DiscordClient> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("DiscordBot (https://gitlab.com/tao/tao, ", env!("CARGO_PKG_VERSION"), ")"))
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(DiscordClient { http, base: base.trim_end_matches('/').to_string(), token })
    }

    /// Whether a bot token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// One call; retries after a 429 (waiting Discord's `retry_after`, at most 10 s).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Value, DiscordError> {
        let url = format!("{}{path}", self.base);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut rb = self.http.request(method.clone(), &url);
            if let Some(t) = &self.token {
                rb = rb.header(reqwest::header::AUTHORIZATION, format!("Bot {}", t.expose()));
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let res = rb
                .send()
                .await
                .map_err(|e| DiscordError::Transport { path: shown(path), message: e.without_url().to_string() })?;
            let status = res.status().as_u16();
            let text = res.text().await.unwrap_or_default();
            if status == 429 && attempt < ATTEMPTS {
                let wait =
                    serde_json::from_str::<Value>(&text).ok().and_then(|v| v["retry_after"].as_f64()).unwrap_or(1.0);
                tokio::time::sleep(Duration::from_secs_f64(wait.clamp(0.0, 10.0))).await;
                continue;
            }
            if !(200..300).contains(&status) {
                let body: String = text.chars().take(300).collect();
                return Err(DiscordError::Status { method: method.to_string(), path: shown(path), status, body });
            }
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
    }

    /// `PATCH /webhooks/{application}/{token}/messages/@original`: edits an interaction's response.
    pub async fn edit_original(&self, application: &str, token: &str, body: &Value) -> Result<Value, DiscordError> {
        let path = format!("/webhooks/{application}/{token}/messages/@original");
        self.call(reqwest::Method::PATCH, &path, Some(body)).await
    }

    /// `POST /webhooks/{application}/{token}`: a follow-up message of an interaction.
    pub async fn followup(&self, application: &str, token: &str, body: &Value) -> Result<Value, DiscordError> {
        self.call(reqwest::Method::POST, &format!("/webhooks/{application}/{token}"), Some(body)).await
    }

    /// `POST /channels/{channel}/messages` (bot token): a new channel message; returns its id.
    pub async fn create_message(&self, channel: &str, body: &Value) -> Result<String, DiscordError> {
        let v = self.call(reqwest::Method::POST, &format!("/channels/{channel}/messages"), Some(body)).await?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }

    /// `PATCH /channels/{channel}/messages/{message}` (bot token): edits Tao's own channel message.
    pub async fn edit_message(&self, channel: &str, message: &str, body: &Value) -> Result<Value, DiscordError> {
        let path = format!("/channels/{channel}/messages/{message}");
        self.call(reqwest::Method::PATCH, &path, Some(body)).await
    }

    /// `PUT /applications/{application}/guilds/{guild}/commands` (bot token): replaces the guild's
    /// commands with `commands`; returns what Discord stored.
    pub async fn overwrite_guild_commands(
        &self,
        application: &str,
        guild: &str,
        commands: &Value,
    ) -> Result<Value, DiscordError> {
        let path = format!("/applications/{application}/guilds/{guild}/commands");
        self.call(reqwest::Method::PUT, &path, Some(commands)).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_never_show() {
        let c = super::DiscordClient::new("http://x/api/v10/", Some(crate::config::Secret::new("bot-secret"))).unwrap();
        assert!(!format!("{c:?}").contains("bot-secret"));
        let long = "aW50ZXJhY3Rpb246MTM4MTE3NzEwNzU1NTY4MDMyNzo2ZlVlTkdIQVFIdkdhNUN2bXlYZ1RCRkZ5YkpuVm9WUG5Bbjl0";
        assert_eq!(super::shown(&format!("/webhooks/1/{long}/messages/@original")), "/webhooks/1/…/messages/@original");
    }
}
