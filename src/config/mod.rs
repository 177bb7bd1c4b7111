//! Settings of the server and the CLI, and the [`Secret`] wrapper that keeps secrets out of logs.
//!
//! Every setting is a flag and an environment variable of the same name (`--database-url` =
//! `TAO_DATABASE_URL`, docs/DESIGN.md §8); clap reads both, the flag wins. This module resolves defaults that
//! depend on other settings (the SQLite file beside the catalog) and nothing else: no I/O beyond paths.
//! The settings types of the integrations live beside it as plain data (`discord_roles`, `issue_rules`,
//! `tapd`), so config imports nothing above the domain.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod discord_roles;
pub mod issue_rules;
pub mod tapd;

/// A secret string (token, password). Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The value, for the one place that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(s))
    }
}

/// Default body limit of the JSON API (the catalog is the largest body it takes).
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// Default body limit of the GitLab webhook (GitLab's payloads for big pushes are large).
pub const DEFAULT_WEBHOOK_MAX_BODY: usize = 25 * 1024 * 1024;

/// Default number of GitLab event workers.
pub const DEFAULT_EVENT_WORKERS: usize = 2;

/// Parses `TAO_GITLAB_WEBHOOK_SECRET`: comma-separated secrets (several while rotating), blanks ignored.
pub fn parse_secrets(s: &str) -> Vec<Secret> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(Secret::new).collect()
}

/// Parses `TAO_EVENT_RETENTION`: `keep` (or empty) keeps everything, else a positive `<n>d`, `<n>h` or
/// `<n>m`.
pub fn parse_retention(s: &str) -> Result<Option<std::time::Duration>, String> {
    let s = s.trim();
    if s.is_empty() || s == "keep" {
        return Ok(None);
    }
    let expected = || format!("expected `keep` or a positive age like 90d, 12h or 30m, found {s:?}");
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(expected)?);
    let n: u64 = digits.parse().ok().filter(|n| *n > 0).ok_or_else(expected)?;
    let secs = match unit {
        "d" => n.checked_mul(86_400),
        "h" => n.checked_mul(3_600),
        "m" => n.checked_mul(60),
        _ => None,
    };
    secs.map(|s| Some(std::time::Duration::from_secs(s))).ok_or_else(expected)
}

/// What `tao serve` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to bind (`127.0.0.1:0` in tests).
    pub listen: SocketAddr,
    /// Database URL (resolved: never empty).
    pub database_url: String,
    /// Catalog file applied at start when it differs from the live revision.
    pub catalog: Option<PathBuf>,
    /// Serve read-only `/api/v1` endpoints without a token.
    pub open_read: bool,
    /// Request body limit in bytes for the API.
    pub max_body: usize,
    /// Tao's external URL, used in links it posts.
    pub public_url: Option<String>,
    /// Deploy tasks running at once.
    pub workers: usize,
    /// This instance's identity in environment leases; stable across restarts of one instance, so a
    /// restarted Tao recognises its own orphaned tasks.
    pub instance: String,
    /// Private key for deploys (`None`: ssh-agent and ssh's defaults).
    pub ssh_identity: Option<PathBuf>,
    /// known_hosts file host keys are checked against (`None`: `~/.ssh/known_hosts`).
    pub ssh_known_hosts: Option<PathBuf>,
    /// SSH key exchange algorithms (ssh's `KexAlgorithms` syntax; `None`: ssh's defaults).
    pub ssh_kex: Option<String>,
    /// Where SSH control sockets live (`None`: `$XDG_RUNTIME_DIR/tao-ssh` or `/tmp/tao-ssh-$USER`).
    pub ssh_control_dir: Option<PathBuf>,
    /// Directory holding one file per secret referenced by the catalog (`{secret: NAME}` → `DIR/NAME`).
    pub secrets_dir: Option<PathBuf>,
    /// How long a shutdown waits for running deploys before interrupting them.
    pub drain_timeout: Duration,
    /// Hosts of one wave worked on at once.
    pub host_parallel: usize,
    /// Where configuration file templates named by the catalog live (`None`: the catalog file's directory).
    pub templates_dir: Option<PathBuf>,
    /// Directory overriding the embedded CI templates (`TAO_CI_TEMPLATES_DIR`).
    pub ci_templates_dir: Option<PathBuf>,
    /// Registry credentials for digest look-ups (user, password).
    pub registry_credentials: Option<(String, Secret)>,
    /// Environment lease length (renewed every third of it while a task runs).
    pub lease: Duration,
    /// GitLab base URL (`https://gitlab.example.com`).
    pub gitlab_url: Option<String>,
    /// GitLab API token (`PRIVATE-TOKEN`).
    pub gitlab_token: Option<Secret>,
    /// Accepted `X-Gitlab-Token` values; webhooks are refused while empty.
    pub gitlab_webhook_secrets: Vec<Secret>,
    /// Body limit of the webhook, bytes.
    pub webhook_max_body: usize,
    /// Age after which processed events lose their raw payload; `None` keeps everything.
    pub event_retention: Option<std::time::Duration>,
    /// GitLab event workers (0 stores events without handling them).
    pub event_workers: usize,
    /// Shared secret of GitLab's external status checks (`X-Gitlab-Signature`); the endpoint refuses
    /// every call without one.
    pub gitlab_status_check_secret: Option<Secret>,
    /// How often open MRs without a final `tao/policy` status are re-checked; `None` never.
    pub policy_reconcile_interval: Option<Duration>,
    /// The notification rules file (`chat::notify`); none = no notifications.
    pub notify_config: Option<PathBuf>,
    /// First retry delay of a failed notification (doubled per attempt).
    pub notify_retry_base: Duration,
    /// Discord's API base.
    pub discord_api_url: String,
    /// The Discord bot token.
    pub discord_bot_token: Option<Secret>,
    /// TAPD's open API base URL.
    pub tapd_url: String,
    /// TAPD credentials; none = no TAPD sync.
    pub tapd_auth: Option<tapd::TapdAuth>,
    /// How often the server syncs work items from TAPD; `None` never (the default).
    pub tapd_sync_interval: Option<Duration>,
    /// How GitLab issues map to work item kinds and states.
    pub issue_rules: issue_rules::IssueRules,
    /// How often the server backfills GitLab issues through the API; `None` never (the default: webhooks
    /// keep them current).
    pub gitlab_issue_sync_interval: Option<Duration>,
    /// The Discord application's public key (hex); the interactions endpoint refuses every call without.
    pub discord_public_key: Option<String>,
    /// Discord users and roles mapped to Tao levels and named roles.
    pub discord_roles: discord_roles::RoleMap,
    /// Discord application and guilds whose slash commands are registered at start (bot token needed).
    pub discord_register: Option<(String, Vec<String>)>,
    /// How long Discord's interaction tokens may be used (15 minutes; shorter in tests).
    pub discord_token_lifetime: Duration,
    /// How often a task started from Discord is polled for progress.
    pub discord_poll: Duration,
    /// Take interactions over Discord's gateway too (Tao connects out as the bot; bot token needed).
    pub discord_gateway: bool,
    /// The GitLab OAuth application of the web console's sign-in: application id and secret (needs
    /// `gitlab_url` and `public_url`). Without it the console offers sign-in with an API token only.
    pub gitlab_oauth: Option<(String, Secret)>,
    /// How long a web console session lasts.
    pub session_ttl: Duration,
}

/// Discord's API base.
pub const DEFAULT_DISCORD_API: &str = "https://discord.com/api/v10";

/// Default interval of the policy reconcile.
pub const DEFAULT_POLICY_RECONCILE: Duration = Duration::from_secs(600);

impl Settings {
    /// Settings for tests and embedding: listen on `127.0.0.1:0`, everything else default.
    pub fn local(database_url: impl Into<String>) -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            catalog: None,
            open_read: false,
            max_body: DEFAULT_MAX_BODY,
            public_url: None,
            workers: 5,
            instance: default_instance(),
            ssh_identity: None,
            ssh_known_hosts: None,
            ssh_control_dir: None,
            ssh_kex: None,
            secrets_dir: None,
            drain_timeout: Duration::from_secs(60),
            host_parallel: 16,
            templates_dir: None,
            ci_templates_dir: None,
            registry_credentials: None,
            lease: Duration::from_secs(30),
            gitlab_url: None,
            gitlab_token: None,
            gitlab_webhook_secrets: Vec::new(),
            webhook_max_body: DEFAULT_WEBHOOK_MAX_BODY,
            event_retention: None,
            event_workers: DEFAULT_EVENT_WORKERS,
            gitlab_status_check_secret: None,
            policy_reconcile_interval: None,
            notify_config: None,
            notify_retry_base: Duration::from_secs(2),
            discord_api_url: DEFAULT_DISCORD_API.to_string(),
            discord_bot_token: None,
            tapd_url: tapd::DEFAULT_URL.to_string(),
            tapd_auth: None,
            tapd_sync_interval: None,
            issue_rules: issue_rules::IssueRules::default(),
            gitlab_issue_sync_interval: None,
            discord_public_key: None,
            discord_roles: discord_roles::RoleMap::default(),
            discord_register: None,
            discord_token_lifetime: Duration::from_secs(15 * 60),
            discord_poll: Duration::from_secs(1),
            discord_gateway: false,
            gitlab_oauth: None,
            session_ttl: DEFAULT_SESSION_TTL,
        }
    }
}

/// How long a web console session lasts by default.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// This machine's host name: the default instance identity.
pub fn default_instance() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tao".into())
}

/// The database URL to use: the explicit one, else `tao.db` beside the catalog, else `./tao.db`.
pub fn resolve_database_url(explicit: Option<&str>, catalog: Option<&Path>) -> String {
    if let Some(url) = explicit.filter(|u| !u.is_empty()) {
        return url.to_string();
    }
    let dir = catalog.and_then(Path::parent).filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // The form `store::Pool::sqlite_url` writes.
    format!("sqlite://{}", dir.join("tao.db").display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn webhook_secrets_and_retention_parse() {
        let secrets = parse_secrets(" old, new ,,");
        assert_eq!(secrets.iter().map(Secret::expose).collect::<Vec<_>>(), ["old", "new"]);
        assert_eq!(parse_retention("keep"), Ok(None));
        assert_eq!(parse_retention("90d"), Ok(Some(std::time::Duration::from_secs(90 * 86_400))));
        assert_eq!(parse_retention("30m"), Ok(Some(std::time::Duration::from_secs(1_800))));
        assert!(parse_retention("0d").is_err() && parse_retention("d").is_err() && parse_retention("5w").is_err());
    }

    #[test]
    fn database_defaults_beside_the_catalog() {
        assert_eq!(resolve_database_url(None, Some(Path::new("examples/tao.yaml"))), "sqlite://examples/tao.db");
        assert_eq!(resolve_database_url(None, Some(Path::new("tao.yaml"))), "sqlite://./tao.db");
        assert_eq!(resolve_database_url(None, None), "sqlite://./tao.db");
        assert_eq!(resolve_database_url(Some("postgres://x/y"), None), "postgres://x/y");
    }
}
