//! Discord: the adapter between Discord's interactions and the chat dispatcher (no business logic).
//!
//! Owns the signature check (`verify`), Discord users and roles → [`ChatUser`](crate::catalog::access::ChatUser)
//! (`crate::config::discord_roles`), slash commands generated from the chat commands' specs and interactions read back through
//! the chat grammar (`commands`), replies and progress as Discord messages within its limits (`render`),
//! the one outbound REST client (`client`), and the flow of an interaction: immediate answer, dispatch in
//! the background, edits while the task runs (`interaction`, `follow`). Interactions come in two ways,
//! both handled by `interaction` alike: the HTTP endpoint (`crate::http::discord`) and the gateway, Tao
//! connected to Discord as its bot for teams that run it behind a firewall (`gateway`).
//!
//! serenity (0.12, features `model`, `http`, `client`, `gateway`, `rustls_backend`) is used for what it
//! does well here: its `Http` client makes the REST calls (routes, `Authorization: Bot …`, its rate
//! limiter against Discord) and its `Client` keeps the gateway connection (identify, heartbeats,
//! reconnects). Its models are not used to read interactions: serenity 0.12 has no HTTP interactions
//! server, and its models refuse interactions lacking fields such as `attachment_size_limit` or
//! `member.flags` (`tests/fixtures/discord/`), so interactions are read tolerantly as `serde_json::Value`.

mod client;
mod commands;
mod follow;
mod gateway;
mod interaction;
mod render;
mod verify;

pub use crate::config::discord_roles::RoleMap;
pub use client::{DiscordClient, DiscordError, DEFAULT_API_URL};
pub use commands::{definitions, discord_name, to_command, ConvertError};
pub use gateway::Gateway;
pub use interaction::{Answer, BadInteraction, Discord, DiscordConfig};
pub use render::{fit, MAX_CONTENT};
pub use verify::{Verifier, VerifyError, MAX_SKEW_SECS};

/// Replaces guild `guild`'s slash commands with Tao's (bulk overwrite); returns how many Discord stored.
pub async fn register(client: &DiscordClient, application: &str, guild: &str) -> Result<usize, DiscordError> {
    let stored = client.overwrite_guild_commands(application, guild, &definitions()).await?;
    Ok(stored.as_array().map_or(0, Vec::len))
}
