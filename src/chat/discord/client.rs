//! The one outbound Discord client: serenity 0.12's `Http` with the bot token (`Authorization: Bot …`)
//! against a configurable API base (`TAO_DISCORD_API_URL`, default [`DEFAULT_API_URL`]).
//!
//! Against Discord itself serenity's rate limiter is on; any other base (a proxy, the tests' double) is
//! reached through serenity's `proxy`, which keeps the `/api/v10` prefix and only works with the rate
//! limiter off (see `tests/fixtures/discord/SERENITY_REDIRECT.md`), so this client then retries a 429
//! itself. Owns the routes Tao calls and keeping tokens out of every log line and error (serenity's
//! error carries the URL, which holds the interaction token: it is dropped). Knows nothing of commands
//! or tasks.

use std::time::Duration;

use serde_json::Value;
use serenity::builder::CreateAttachment;
use serenity::http::{Http, HttpBuilder, LightMethod, Multipart, MultipartUpload, Request, Route};
use serenity::model::id::{ApplicationId, ChannelId, GuildId, InteractionId, MessageId};

use crate::config::Secret;

/// Discord's API base.
pub const DEFAULT_API_URL: &str = crate::config::DEFAULT_DISCORD_API;

/// The path every Discord route has after the host (serenity's `api!` prefix).
const API_PATH: &str = "/api/v10";

/// Attempts per call when Discord answers 429 without serenity's rate limiter.
const ATTEMPTS: u32 = 3;

/// A failed Discord call (never contains a token).
#[derive(Debug, thiserror::Error)]
pub enum DiscordError {
    /// Discord could not be reached, or an id is not a Discord id.
    #[error("cannot call Discord ({what}): {message}")]
    Transport {
        /// The call.
        what: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Discord refused the call.
    #[error("Discord answered {status} to {what}: {message}")]
    Status {
        /// The call.
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// Discord's error code and message.
        message: String,
    },
}

/// Discord's REST API, as Tao's bot.
#[derive(Clone)]
pub struct DiscordClient {
    http: std::sync::Arc<Http>,
    token: bool,
    limited: bool,
}

impl std::fmt::Debug for DiscordClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordClient").field("token", &self.token.then_some("***")).finish_non_exhaustive()
    }
}

fn id<T: From<u64>>(what: &'static str, value: &str) -> Result<T, DiscordError> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(T::from(n)),
        _ => Err(DiscordError::Transport { what, message: format!("{value:?} is not a Discord id") }),
    }
}

/// serenity's `Http` for `base` as the bot with `token`: against Discord with its rate limiter, else through
/// its `proxy` with the rate limiter off. The gateway's serenity `Client` is built on one too, so it asks
/// the same base for the gateway URL (`GET /gateway`).
pub(super) fn http(base: &str, token: Option<&Secret>) -> anyhow::Result<Http> {
    let base = base.trim_end_matches('/');
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
    let mut builder = HttpBuilder::new(token.map(Secret::expose).unwrap_or_default()).client(client);
    if base != DEFAULT_API_URL {
        let Some(host) = base.strip_suffix(API_PATH) else {
            anyhow::bail!("TAO_DISCORD_API_URL: expected a base ending in {API_PATH} (as Discord's), found {base:?}");
        };
        builder = builder.proxy(host).ratelimiter_disabled(true);
    }
    Ok(builder.build())
}

impl DiscordClient {
    /// A client for `base` (e.g. [`DEFAULT_API_URL`]; another base must end in `/api/v10`)
    /// authenticating as the bot with `token`, if any (interaction webhooks work without one; channel
    /// messages and command registration need it).
    pub fn new(base: &str, token: Option<Secret>) -> anyhow::Result<DiscordClient> {
        let http = http(base, token.as_ref())?;
        let limited = base.trim_end_matches('/') == DEFAULT_API_URL;
        Ok(DiscordClient { http: std::sync::Arc::new(http), token: token.is_some(), limited })
    }

    /// Whether a bot token is configured.
    pub fn has_token(&self) -> bool {
        self.token
    }

    /// One call with a JSON body.
    async fn send(
        &self,
        what: &'static str,
        route: Route<'_>,
        method: LightMethod,
        body: &Value,
    ) -> Result<Value, DiscordError> {
        let bytes = serde_json::to_vec(body).map_err(|e| DiscordError::Transport { what, message: e.to_string() })?;
        self.call(what, || Request::new(route, method).body(Some(bytes.clone()))).await
    }

    /// One call of the request `build` makes (anew per attempt); without serenity's rate limiter,
    /// retries a 429 after a second.
    async fn call<'r>(&self, what: &'static str, build: impl Fn() -> Request<'r>) -> Result<Value, DiscordError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.http.request(build()).await {
                Ok(res) => {
                    let text = res.text().await.unwrap_or_default();
                    return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                }
                Err(serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(e))) => {
                    let status = e.status_code.as_u16();
                    if status == 429 && !self.limited && attempt < ATTEMPTS {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    let message = format!("{} (code {})", e.error.message, e.error.code);
                    return Err(DiscordError::Status { what, status, message });
                }
                Err(e) => {
                    // Transport errors name the URL, which may hold an interaction token: keep the kind only.
                    let message = match e {
                        serenity::Error::Http(serenity::http::HttpError::Request(r)) => r.without_url().to_string(),
                        other => format!("{:?}", std::mem::discriminant(&other)),
                    };
                    return Err(DiscordError::Transport { what, message });
                }
            }
        }
    }

    /// `POST /interactions/{id}/{token}/callback`: the initial response to an interaction that arrived over
    /// the gateway (Discord takes it only over HTTP; the endpoint's interactions get it as the HTTP reply).
    pub async fn interaction_callback(
        &self,
        interaction: &str,
        token: &str,
        body: &Value,
    ) -> Result<Value, DiscordError> {
        let what = "answer an interaction";
        let route = Route::InteractionResponse { interaction_id: id::<InteractionId>(what, interaction)?, token };
        self.send(what, route, LightMethod::Post, body).await
    }

    /// `PATCH /webhooks/{application}/{token}/messages/@original`: edits an interaction's response.
    pub async fn edit_original(&self, application: &str, token: &str, body: &Value) -> Result<Value, DiscordError> {
        let what = "edit the interaction response";
        let route = Route::WebhookOriginalInteractionResponse { application_id: id(what, application)?, token };
        self.send(what, route, LightMethod::Patch, body).await
    }

    /// `PATCH /webhooks/{application}/{token}/messages/@original` with one new file: Discord's "Uploading
    /// Files" contract, a `multipart/form-data` body of `payload_json` (`body`, whose `attachments` must
    /// list `{id: 0, filename}`) and the file as part `files[0]` (its content type from its name).
    pub async fn edit_original_with_file(
        &self,
        application: &str,
        token: &str,
        body: &Value,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<Value, DiscordError> {
        let what = "edit the interaction response with a file";
        let route = Route::WebhookOriginalInteractionResponse { application_id: id(what, application)?, token };
        let payload = body.to_string();
        self.call(what, || {
            // serenity names the part `files[{id}]` from the attachment's placeholder id, 0 for a new one.
            let file = CreateAttachment::bytes(bytes.to_vec(), file_name);
            let multipart = Multipart {
                upload: MultipartUpload::Attachments(vec![file]),
                fields: Vec::new(),
                payload_json: Some(payload.clone()),
            };
            Request::new(route, LightMethod::Patch).multipart(Some(multipart))
        })
        .await
    }

    /// `POST /webhooks/{application}/{token}`: a follow-up message of an interaction.
    pub async fn followup(&self, application: &str, token: &str, body: &Value) -> Result<Value, DiscordError> {
        let what = "send a follow-up message";
        let route = Route::WebhookFollowupMessages { application_id: id(what, application)?, token };
        self.send(what, route, LightMethod::Post, body).await
    }

    /// `POST /channels/{channel}/messages` (bot token): a new channel message; returns its id.
    pub async fn create_message(&self, channel: &str, body: &Value) -> Result<String, DiscordError> {
        let what = "post a channel message";
        let route = Route::ChannelMessages { channel_id: id::<ChannelId>(what, channel)? };
        let v = self.send(what, route, LightMethod::Post, body).await?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }

    /// `PATCH /channels/{channel}/messages/{message}` (bot token): edits Tao's own channel message.
    pub async fn edit_message(&self, channel: &str, message: &str, body: &Value) -> Result<Value, DiscordError> {
        let what = "edit a channel message";
        let route =
            Route::ChannelMessage { channel_id: id(what, channel)?, message_id: id::<MessageId>(what, message)? };
        self.send(what, route, LightMethod::Patch, body).await
    }

    /// `PUT /applications/{application}/guilds/{guild}/commands` (bot token): replaces the guild's
    /// commands with `commands`; returns what Discord stored.
    pub async fn overwrite_guild_commands(
        &self,
        application: &str,
        guild: &str,
        commands: &Value,
    ) -> Result<Value, DiscordError> {
        let what = "register slash commands";
        let route = Route::GuildCommands {
            application_id: id::<ApplicationId>(what, application)?,
            guild_id: id::<GuildId>(what, guild)?,
        };
        self.send(what, route, LightMethod::Put, commands).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_show_and_bases_are_checked() {
        let c = DiscordClient::new("http://127.0.0.1:9/api/v10/", Some(Secret::new("bot-secret"))).unwrap();
        assert!(!format!("{c:?}").contains("bot-secret"));
        let e = DiscordClient::new("http://127.0.0.1:9/", None).unwrap_err().to_string();
        assert!(e.contains("/api/v10"), "{e}");
        let e = id::<ChannelId>("post a channel message", "general").unwrap_err().to_string();
        assert!(e.contains("\"general\" is not a Discord id"), "{e}");
    }
}
