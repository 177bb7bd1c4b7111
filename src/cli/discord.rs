//! Discord settings of `tao serve` and `tao discord register` (replace a guild's slash commands with
//! Tao's, generated from the chat commands). Talks to Discord, not to a Tao server.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::print_json;
use crate::chat::discord::{self, DiscordClient, RoleMap};
use crate::config::{Secret, Settings, DEFAULT_DISCORD_API};

/// Discord settings of `tao serve` besides the API base and bot token (shared with notifications).
#[derive(Debug, Clone, Args)]
pub struct DiscordServeArgs {
    /// The Discord application's public key (64 hex characters); the interactions endpoint refuses every
    /// call without it.
    #[arg(long, env = "TAO_DISCORD_PUBLIC_KEY", hide_env_values = true)]
    pub discord_public_key: Option<String>,
    /// Discord users and roles → Tao levels: inline JSON/YAML (starting with `{`) or a YAML/JSON file.
    #[arg(long, env = "TAO_DISCORD_ROLES", hide_env_values = true)]
    pub discord_roles: Option<String>,
    /// Guild ids (comma-separated) whose slash commands are replaced with Tao's at start.
    #[arg(long, env = "TAO_DISCORD_GUILDS", hide_env_values = true)]
    pub discord_guilds: Option<String>,
    /// The Discord application id (for registering commands).
    #[arg(long, env = "TAO_DISCORD_APPLICATION_ID", hide_env_values = true)]
    pub discord_application_id: Option<String>,
    /// Take interactions over Discord's gateway: Tao connects out to Discord as the bot (needs the bot
    /// token; no inbound access from Discord). May be combined with the interactions endpoint.
    #[arg(long, env = "TAO_DISCORD_GATEWAY", hide_env_values = true)]
    pub discord_gateway: bool,
}

/// How `tao discord register` reaches Discord as the bot.
#[derive(Debug, Clone, Args)]
pub struct BotArgs {
    /// The bot token (sent as `Authorization: Bot …`; never logged).
    #[arg(long, env = "TAO_DISCORD_BOT_TOKEN", hide_env_values = true)]
    pub discord_bot_token: Option<Secret>,
    /// The Discord application id (for registering commands).
    #[arg(long, env = "TAO_DISCORD_APPLICATION_ID", hide_env_values = true)]
    pub discord_application_id: Option<String>,
    /// Discord's API base URL.
    #[arg(long, env = "TAO_DISCORD_API_URL", hide_env_values = true, default_value = DEFAULT_DISCORD_API)]
    pub discord_api_url: String,
}

/// `tao discord …`
#[derive(Debug, Subcommand)]
pub enum DiscordCommand {
    /// Replace a guild's slash commands with Tao's (bulk overwrite; a second run changes nothing).
    Register {
        /// The guild (server) id.
        #[arg(long)]
        guild: String,
        /// The bot.
        #[command(flatten)]
        bot: BotArgs,
    },
}

fn guilds(list: Option<&str>) -> Vec<String> {
    list.unwrap_or_default().split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect()
}

/// Puts the Discord settings into `settings` (whose API base and bot token are already set), with errors
/// naming the setting.
pub fn apply(args: DiscordServeArgs, settings: &mut Settings) -> anyhow::Result<()> {
    settings.discord_public_key = args.discord_public_key.filter(|k| !k.trim().is_empty());
    if let Some(key) = &settings.discord_public_key {
        discord::Verifier::from_hex(key)
            .map_err(|e| anyhow::anyhow!("--discord-public-key / TAO_DISCORD_PUBLIC_KEY: {e}"))?;
    }
    if let Some(roles) = args.discord_roles.filter(|r| !r.trim().is_empty()) {
        settings.discord_roles =
            RoleMap::load(&roles).map_err(|e| anyhow::anyhow!("--discord-roles / TAO_DISCORD_ROLES: {e}"))?;
    }
    settings.discord_gateway = args.discord_gateway;
    if settings.discord_gateway && settings.discord_bot_token.is_none() {
        anyhow::bail!("TAO_DISCORD_GATEWAY is set but TAO_DISCORD_BOT_TOKEN is not (the gateway connects as the bot)");
    }
    if settings.discord_public_key.is_some() && settings.discord_bot_token.is_none() {
        // serenity sends `Authorization: Bot <token>` on every call, the interaction webhooks included.
        anyhow::bail!("TAO_DISCORD_PUBLIC_KEY is set but TAO_DISCORD_BOT_TOKEN is not (Tao's Discord calls need it)");
    }
    let guilds = guilds(args.discord_guilds.as_deref());
    if !guilds.is_empty() {
        let Some(app) = args.discord_application_id.filter(|a| !a.is_empty()) else {
            anyhow::bail!(
                "TAO_DISCORD_GUILDS is set but TAO_DISCORD_APPLICATION_ID is not (needed to register commands)"
            );
        };
        if settings.discord_bot_token.is_none() {
            anyhow::bail!("TAO_DISCORD_GUILDS is set but TAO_DISCORD_BOT_TOKEN is not (needed to register commands)");
        }
        settings.discord_register = Some((app, guilds));
    }
    Ok(())
}

/// Runs `tao discord …`.
pub async fn discord(cmd: DiscordCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        DiscordCommand::Register { guild, bot } => {
            let Some(token) = bot.discord_bot_token else {
                anyhow::bail!("set TAO_DISCORD_BOT_TOKEN: registering commands needs the bot token");
            };
            let Some(app) = bot.discord_application_id else {
                anyhow::bail!("set TAO_DISCORD_APPLICATION_ID (or --discord-application-id)");
            };
            let client = DiscordClient::new(&bot.discord_api_url, Some(token))?;
            let n = discord::register(&client, &app, &guild).await?;
            if json {
                print_json(&json!({ "guild": guild, "commands": n }));
            } else {
                println!("registered {n} slash commands in guild {guild}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
