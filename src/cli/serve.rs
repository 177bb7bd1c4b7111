//! `tao serve`: its settings (each flag also an environment variable) and turning them into
//! [`Settings`](crate::config::Settings) for [`App`](crate::app::App).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{discord, sync, DbArgs, Outcome};
use crate::config::{self, Settings};

/// `tao serve` settings; each is also an environment variable.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TAO_LISTEN", hide_env_values = true, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The store (and the catalog file applied at start when it differs from the live revision).
    #[command(flatten)]
    pub db: DbArgs,
    /// Serve read-only /api/v1 endpoints without a token.
    #[arg(long, env = "TAO_OPEN_READ", hide_env_values = true)]
    pub open_read: bool,
    /// Request body limit of the API, in bytes.
    #[arg(long, env = "TAO_MAX_BODY", hide_env_values = true, default_value_t = config::DEFAULT_MAX_BODY)]
    pub max_body: usize,
    /// Tao's external URL, used in links it posts.
    #[arg(long, env = "TAO_PUBLIC_URL", hide_env_values = true)]
    pub public_url: Option<String>,
    /// Deploy tasks running at once (0: this instance serves and queues but never deploys).
    #[arg(long, env = "TAO_WORKERS", hide_env_values = true, default_value_t = 5, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub workers: u16,
    /// Identity of this instance in environment leases [default: the host name].
    #[arg(long, env = "TAO_INSTANCE", hide_env_values = true)]
    pub instance: Option<String>,
    /// Private key for deploys over SSH [default: ssh-agent / ssh's defaults].
    #[arg(long, env = "TAO_SSH_IDENTITY", hide_env_values = true)]
    pub ssh_identity: Option<PathBuf>,
    /// known_hosts file host keys are checked against [default: ~/.ssh/known_hosts].
    #[arg(long, env = "TAO_SSH_KNOWN_HOSTS", hide_env_values = true)]
    pub ssh_known_hosts: Option<PathBuf>,
    /// Directory of SSH control sockets [default: $XDG_RUNTIME_DIR/tao-ssh or /tmp/tao-ssh-$USER].
    #[arg(long, env = "TAO_SSH_CONTROL_DIR", hide_env_values = true)]
    pub ssh_control_dir: Option<PathBuf>,
    /// SSH key exchange algorithms in ssh's KexAlgorithms syntax (e.g. ^curve25519-sha256) [default: ssh's].
    #[arg(long, env = "TAO_SSH_KEX_ALGORITHMS", hide_env_values = true)]
    pub ssh_kex: Option<String>,
    /// Directory of secret files: a catalog `{secret: NAME}` reads DIR/NAME on the Tao host.
    #[arg(long, env = "TAO_SECRETS_DIR", hide_env_values = true)]
    pub secrets_dir: Option<PathBuf>,
    /// Seconds a shutdown waits for running deploys before interrupting them.
    #[arg(long, env = "TAO_DRAIN_TIMEOUT", hide_env_values = true, default_value_t = 60)]
    pub drain_timeout: u64,
    /// Directory of configuration file templates the catalog names [default: the catalog file's directory].
    #[arg(long, env = "TAO_TEMPLATES_DIR", hide_env_values = true)]
    pub templates_dir: Option<PathBuf>,
    /// Directory overriding the embedded CI templates (`*.yml.hbs`, `cci.sh.hbs`), read at start.
    #[arg(long, env = "TAO_CI_TEMPLATES_DIR", hide_env_values = true)]
    pub ci_templates_dir: Option<PathBuf>,
    /// Hosts of one deploy wave worked on at once.
    #[arg(long, env = "TAO_HOST_PARALLEL", hide_env_values = true, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub host_parallel: u16,
    /// Registry user for digest look-ups (the password comes from TAO_REGISTRY_PASSWORD only).
    #[arg(long, env = "TAO_REGISTRY_USER", hide_env_values = true)]
    pub registry_user: Option<String>,
    /// GitLab base URL, e.g. https://gitlab.example.com.
    #[arg(long, env = "TAO_GITLAB_URL", hide_env_values = true)]
    pub gitlab_url: Option<String>,
    /// GitLab API token.
    #[arg(long, env = "TAO_GITLAB_TOKEN", hide_env_values = true)]
    pub gitlab_token: Option<config::Secret>,
    /// Webhook secret(s) GitLab sends as X-Gitlab-Token, comma-separated; webhooks are refused without.
    #[arg(long, env = "TAO_GITLAB_WEBHOOK_SECRET", hide_env_values = true)]
    pub gitlab_webhook_secret: Option<config::Secret>,
    /// Body limit of the GitLab webhook, in bytes.
    #[arg(long, env = "TAO_WEBHOOK_MAX_BODY", hide_env_values = true, default_value_t = config::DEFAULT_WEBHOOK_MAX_BODY)]
    pub webhook_max_body: usize,
    /// Age after which processed events' raw payloads are pruned (e.g. 90d, 12h), or `keep`.
    #[arg(long, env = "TAO_EVENT_RETENTION", hide_env_values = true, default_value = "keep")]
    pub event_retention: String,
    /// GitLab event workers (0: store events without handling them).
    #[arg(long, env = "TAO_EVENT_WORKERS", hide_env_values = true, default_value_t = config::DEFAULT_EVENT_WORKERS)]
    pub event_workers: usize,
    /// Shared secret of GitLab's external status checks (HMAC-SHA256 of the body in X-Gitlab-Signature).
    #[arg(long, env = "TAO_GITLAB_STATUS_CHECK_SECRET", hide_env_values = true)]
    pub gitlab_status_check_secret: Option<config::Secret>,
    /// How often to re-check open MRs without a final tao/policy status (e.g. 10m, 1h), or `off`.
    #[arg(long, env = "TAO_POLICY_RECONCILE_INTERVAL", hide_env_values = true, default_value = "10m")]
    pub policy_reconcile_interval: String,
    /// Notification rules file (events → Discord channels, Discord webhooks, JSON webhooks).
    #[arg(long, env = "TAO_NOTIFY_CONFIG", hide_env_values = true)]
    pub notify_config: Option<PathBuf>,
    /// Discord API base URL.
    #[arg(long, env = "TAO_DISCORD_API_URL", hide_env_values = true, default_value = config::DEFAULT_DISCORD_API)]
    pub discord_api_url: String,
    /// Discord bot token (for channel notifications and interaction follow-ups).
    #[arg(long, env = "TAO_DISCORD_BOT_TOKEN", hide_env_values = true)]
    pub discord_bot_token: Option<config::Secret>,
    /// TAPD (work items).
    #[command(flatten)]
    pub tapd: sync::TapdArgs,
    /// How often to sync work items from TAPD (e.g. 15m, 1h), or `off`; needs TAPD credentials.
    #[arg(long, env = "TAO_TAPD_SYNC_INTERVAL", hide_env_values = true, default_value = "off")]
    pub tapd_sync_interval: String,
    /// GitLab issue mapping (work items).
    #[command(flatten)]
    pub issue_rules: sync::IssueRuleArgs,
    /// How often to backfill GitLab issues through the API (e.g. 1h), or `off` (webhooks keep them current).
    #[arg(long, env = "TAO_GITLAB_ISSUE_SYNC_INTERVAL", hide_env_values = true, default_value = "off")]
    pub gitlab_issue_sync_interval: String,
    /// Application ID of the GitLab OAuth application the web console signs in with (redirect URI:
    /// TAO_PUBLIC_URL + /ui/oauth/callback; scopes read_user, read_api).
    #[arg(long, env = "TAO_GITLAB_OAUTH_CLIENT_ID", hide_env_values = true)]
    pub gitlab_oauth_client_id: Option<String>,
    /// Secret of that OAuth application.
    #[arg(long, env = "TAO_GITLAB_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    pub gitlab_oauth_client_secret: Option<config::Secret>,
    /// How long a web console session lasts (e.g. 12h, 30m).
    #[arg(long, env = "TAO_SESSION_TTL", hide_env_values = true, default_value = "12h")]
    pub session_ttl: String,
    /// Discord.
    #[command(flatten)]
    pub discord: discord::DiscordServeArgs,
}

pub(super) async fn serve(args: ServeArgs) -> Outcome {
    let gitlab_oauth =
        match (args.gitlab_oauth_client_id.filter(|i| !i.trim().is_empty()), args.gitlab_oauth_client_secret) {
            (None, _) => None,
            (Some(_), None) => {
                anyhow::bail!("TAO_GITLAB_OAUTH_CLIENT_ID is set but TAO_GITLAB_OAUTH_CLIENT_SECRET is not")
            }
            (Some(id), Some(secret)) => {
                if args.gitlab_url.is_none() || args.public_url.is_none() {
                    anyhow::bail!(
                        "TAO_GITLAB_OAUTH_CLIENT_ID needs TAO_GITLAB_URL (where people sign in) and TAO_PUBLIC_URL \
                     (where GitLab sends them back)"
                    );
                }
                Some((id.trim().to_string(), secret))
            }
        };
    let mut settings = Settings {
        listen: args.listen,
        database_url: args.db.url()?,
        catalog: args.db.catalog.find(),
        open_read: args.open_read,
        max_body: args.max_body,
        public_url: args.public_url,
        workers: usize::from(args.workers),
        instance: args.instance.unwrap_or_else(config::default_instance),
        ssh_identity: args.ssh_identity,
        ssh_known_hosts: args.ssh_known_hosts,
        ssh_control_dir: args.ssh_control_dir,
        ssh_kex: args.ssh_kex,
        secrets_dir: args.secrets_dir,
        drain_timeout: std::time::Duration::from_secs(args.drain_timeout),
        host_parallel: usize::from(args.host_parallel),
        templates_dir: args.templates_dir,
        ci_templates_dir: args.ci_templates_dir,
        registry_credentials: match (args.registry_user, std::env::var("TAO_REGISTRY_PASSWORD")) {
            (Some(user), Ok(password)) => Some((user, config::Secret::new(password))),
            (Some(_), Err(_)) => anyhow::bail!("TAO_REGISTRY_USER is set but TAO_REGISTRY_PASSWORD is not"),
            (None, _) => None,
        },
        lease: std::time::Duration::from_secs(30),
        gitlab_url: args.gitlab_url,
        gitlab_token: args.gitlab_token,
        gitlab_webhook_secrets: args
            .gitlab_webhook_secret
            .map(|s| config::parse_secrets(s.expose()))
            .unwrap_or_default(),
        webhook_max_body: args.webhook_max_body,
        event_retention: config::parse_retention(&args.event_retention)
            .map_err(|e| anyhow::anyhow!("--event-retention / TAO_EVENT_RETENTION: {e}"))?,
        event_workers: args.event_workers,
        gitlab_status_check_secret: args.gitlab_status_check_secret.filter(|s| !s.expose().is_empty()),
        notify_config: args.notify_config,
        notify_retry_base: std::time::Duration::from_secs(2),
        discord_api_url: args.discord_api_url,
        discord_bot_token: args.discord_bot_token.filter(|s| !s.expose().is_empty()),
        tapd_url: args.tapd.tapd_url.clone(),
        tapd_auth: args.tapd.auth()?,
        tapd_sync_interval: sync::parse_interval(&args.tapd_sync_interval)?,
        issue_rules: args.issue_rules.rules()?,
        gitlab_issue_sync_interval: sync::parse_interval_named(
            "--gitlab-issue-sync-interval / TAO_GITLAB_ISSUE_SYNC_INTERVAL",
            &args.gitlab_issue_sync_interval,
        )?,
        policy_reconcile_interval: match args.policy_reconcile_interval.trim() {
            "off" | "0" => None,
            other => Some(crate::catalog::parse_duration(other).ok_or_else(|| {
                anyhow::anyhow!(
                    "--policy-reconcile-interval / TAO_POLICY_RECONCILE_INTERVAL: expected a duration like 10m or off, \
                     found {other:?}"
                )
            })?),
        },
        // Filled from the Discord arguments below.
        discord_public_key: None,
        discord_roles: Default::default(),
        discord_register: None,
        discord_token_lifetime: std::time::Duration::from_secs(15 * 60),
        discord_poll: std::time::Duration::from_secs(1),
        discord_gateway: false,
        gitlab_oauth,
        session_ttl: crate::catalog::parse_duration(args.session_ttl.trim()).ok_or_else(|| {
            anyhow::anyhow!(
                "--session-ttl / TAO_SESSION_TTL: expected a duration like 12h or 30m, found {:?}",
                args.session_ttl
            )
        })?,
    };
    discord::apply(args.discord, &mut settings)?;
    let app = crate::app::App::build(settings).await?;
    app.run_until_stopped(crate::app::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
