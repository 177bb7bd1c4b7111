//! The `tao` command line: clap definitions and what each command does.
//!
//! Offline commands (`serve`, `migrate`, `backup`, `token`, `catalog check`) open the store or files
//! directly; online commands (`catalog apply`, `release`, `env`) are HTTP clients of a running server
//! (`--server` / `TAO_SERVER`, token from `TAO_TOKEN`). Human output is aligned tables; `--json` prints
//! JSON for scripts. Exit codes: 0 success, 1 failure (invalid input, rejected request), 2 usage.

mod ci;
mod client;
mod deploy;
mod discord;
pub mod exec;
mod gitlab;
mod output;
mod policy;
mod release;
mod report;
pub mod sync;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::catalog::Catalog;
use crate::config::{self, Settings};
use crate::store::{self, token::Scope, Pool};
use client::Client;
use output::{print_json, table};

/// Tao: GitLab-native DevOps service and chat bot.
#[derive(Debug, Parser)]
#[command(name = "tao", version, about, long_about = None)]
pub struct Cli {
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Tao server.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DbArgs),
    /// Copy the SQLite store consistently to FILE while Tao runs.
    Backup {
        /// Where to write the copy (must not exist).
        file: PathBuf,
        /// The store.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Manage API tokens (offline: works on the store directly).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check or apply the catalog (tao.yaml).
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Product versions: create, list, show (talks to the server).
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Environments as the catalog defines them (talks to the server).
    #[command(subcommand)]
    Env(EnvCommand),
    /// Deploy a product version (or one component build) to an environment (talks to the server).
    Deploy(deploy::DeployArgs),
    /// Return an environment to its previous (or a named) product version, exactly as it ran.
    Rollback(deploy::RollbackArgs),
    /// Deploy tasks: show (with log), list, cancel.
    #[command(subcommand)]
    Task(deploy::TaskCommand),
    /// What runs in an environment; `--check` compares the hosts with the record.
    Status(deploy::StatusArgs),
    /// Pull and (re)start images on one host over SSH, each health-gated (no server, no catalog).
    DeployImages(exec::DeployImagesArgs),
    /// Run commands on many hosts over one SSH connection each (for scripts/bench-fanout.sh).
    #[command(hide = true)]
    SshFanout(exec::SshFanoutArgs),
    /// Stored GitLab events (talks to the server).
    #[command(subcommand)]
    Events(gitlab::EventsCommand),
    /// GitLab integration: webhooks on the catalog's projects.
    #[command(subcommand)]
    Gitlab(gitlab::GitlabCommand),
    /// Pictures: the DORA chart of a product as a PNG (talks to the server).
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Branch and merge policy: audit and apply GitLab settings, reconcile MR checks.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The shared CI standard: render, list and lint the CI templates (offline).
    #[command(subcommand)]
    Ci(ci::CiCommand),
    /// Sync work items from TAPD into the store (offline: talks to TAPD and the store directly).
    #[command(subcommand)]
    Sync(sync::SyncCommand),
    /// Discord: register Tao's slash commands in a guild.
    #[command(subcommand)]
    Discord(discord::DiscordCommand),
}

/// Where the store is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Database URL: sqlite://PATH or postgres://… [default: tao.db beside the catalog, else ./tao.db]
    #[arg(long, env = "TAO_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Catalog file (locates the default SQLite store beside it).
    #[arg(long, env = "TAO_CATALOG")]
    pub catalog: Option<PathBuf>,
}

impl DbArgs {
    fn url(&self) -> String {
        config::resolve_database_url(self.database_url.as_deref(), self.catalog.as_deref())
    }
}

/// `tao serve` settings; each is also an environment variable.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TAO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The store (and the catalog file applied at start when it differs from the live revision).
    #[command(flatten)]
    pub db: DbArgs,
    /// Serve read-only /api/v1 endpoints without a token.
    #[arg(long, env = "TAO_OPEN_READ")]
    pub open_read: bool,
    /// Request body limit of the API, in bytes.
    #[arg(long, env = "TAO_MAX_BODY", default_value_t = config::DEFAULT_MAX_BODY)]
    pub max_body: usize,
    /// Tao's external URL, used in links it posts.
    #[arg(long, env = "TAO_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Deploy tasks running at once (0: this instance serves and queues but never deploys).
    #[arg(long, env = "TAO_WORKERS", default_value_t = 5, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub workers: u16,
    /// Identity of this instance in environment leases [default: the host name].
    #[arg(long, env = "TAO_INSTANCE")]
    pub instance: Option<String>,
    /// Private key for deploys over SSH [default: ssh-agent / ssh's defaults].
    #[arg(long, env = "TAO_SSH_IDENTITY")]
    pub ssh_identity: Option<PathBuf>,
    /// known_hosts file host keys are checked against [default: ~/.ssh/known_hosts].
    #[arg(long, env = "TAO_SSH_KNOWN_HOSTS")]
    pub ssh_known_hosts: Option<PathBuf>,
    /// Directory of SSH control sockets [default: $XDG_RUNTIME_DIR/tao-ssh or /tmp/tao-ssh-$USER].
    #[arg(long, env = "TAO_SSH_CONTROL_DIR")]
    pub ssh_control_dir: Option<PathBuf>,
    /// SSH key exchange algorithms in ssh's KexAlgorithms syntax (e.g. ^curve25519-sha256) [default: ssh's].
    #[arg(long, env = "TAO_SSH_KEX_ALGORITHMS")]
    pub ssh_kex: Option<String>,
    /// Directory of secret files: a catalog `{secret: NAME}` reads DIR/NAME on the Tao host.
    #[arg(long, env = "TAO_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Seconds a shutdown waits for running deploys before interrupting them.
    #[arg(long, env = "TAO_DRAIN_TIMEOUT", default_value_t = 60)]
    pub drain_timeout: u64,
    /// Directory of configuration file templates the catalog names [default: the catalog file's directory].
    #[arg(long, env = "TAO_TEMPLATES_DIR")]
    pub templates_dir: Option<PathBuf>,
    /// Directory overriding the embedded CI templates (`*.yml.hbs`, `cci.sh.hbs`), read at start.
    #[arg(long, env = "TAO_CI_TEMPLATES_DIR")]
    pub ci_templates_dir: Option<PathBuf>,
    /// Hosts of one deploy wave worked on at once.
    #[arg(long, env = "TAO_HOST_PARALLEL", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub host_parallel: u16,
    /// Registry user for digest look-ups (the password comes from TAO_REGISTRY_PASSWORD only).
    #[arg(long, env = "TAO_REGISTRY_USER")]
    pub registry_user: Option<String>,
    /// GitLab base URL, e.g. https://gitlab.example.com.
    #[arg(long, env = "TAO_GITLAB_URL")]
    pub gitlab_url: Option<String>,
    /// GitLab API token.
    #[arg(long, env = "TAO_GITLAB_TOKEN", hide_env_values = true)]
    pub gitlab_token: Option<config::Secret>,
    /// Webhook secret(s) GitLab sends as X-Gitlab-Token, comma-separated; webhooks are refused without.
    #[arg(long, env = "TAO_GITLAB_WEBHOOK_SECRET", hide_env_values = true)]
    pub gitlab_webhook_secret: Option<config::Secret>,
    /// Body limit of the GitLab webhook, in bytes.
    #[arg(long, env = "TAO_WEBHOOK_MAX_BODY", default_value_t = config::DEFAULT_WEBHOOK_MAX_BODY)]
    pub webhook_max_body: usize,
    /// Age after which processed events' raw payloads are pruned (e.g. 90d, 12h), or `keep`.
    #[arg(long, env = "TAO_EVENT_RETENTION", default_value = "keep")]
    pub event_retention: String,
    /// GitLab event workers (0: store events without handling them).
    #[arg(long, env = "TAO_EVENT_WORKERS", default_value_t = config::DEFAULT_EVENT_WORKERS)]
    pub event_workers: usize,
    /// Shared secret of GitLab's external status checks (HMAC-SHA256 of the body in X-Gitlab-Signature).
    #[arg(long, env = "TAO_GITLAB_STATUS_CHECK_SECRET", hide_env_values = true)]
    pub gitlab_status_check_secret: Option<config::Secret>,
    /// How often to re-check open MRs without a final tao/policy status (e.g. 10m, 1h), or `off`.
    #[arg(long, env = "TAO_POLICY_RECONCILE_INTERVAL", default_value = "10m")]
    pub policy_reconcile_interval: String,
    /// Notification rules file (events → Discord channels, Discord webhooks, JSON webhooks).
    #[arg(long, env = "TAO_NOTIFY_CONFIG")]
    pub notify_config: Option<PathBuf>,
    /// Discord API base URL.
    #[arg(long, env = "TAO_DISCORD_API_URL", default_value = config::DEFAULT_DISCORD_API)]
    pub discord_api_url: String,
    /// Discord bot token (for channel notifications and interaction follow-ups).
    #[arg(long, env = "TAO_DISCORD_BOT_TOKEN", hide_env_values = true)]
    pub discord_bot_token: Option<config::Secret>,
    /// TAPD (work items).
    #[command(flatten)]
    pub tapd: sync::TapdArgs,
    /// How often to sync work items from TAPD (e.g. 15m, 1h), or `off`; needs TAPD credentials.
    #[arg(long, env = "TAO_TAPD_SYNC_INTERVAL", default_value = "off")]
    pub tapd_sync_interval: String,
    /// Discord.
    #[command(flatten)]
    pub discord: discord::DiscordServeArgs,
}

/// `tao token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once (only its hash is stored).
    Create {
        /// Unique name, e.g. `ci`.
        #[arg(long)]
        name: String,
        /// read, deploy (includes read) or admin (includes deploy).
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
        /// The store.
        #[command(flatten)]
        db: DbArgs,
    },
    /// List tokens (never their values).
    List(DbArgs),
    /// Revoke a token by name; it stops working at once.
    Revoke {
        /// Token name.
        name: String,
        /// The store.
        #[command(flatten)]
        db: DbArgs,
    },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse()
}

/// `tao catalog …`
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Validate a catalog file offline; lists every error, exit 1 when any.
    Check {
        /// The catalog file.
        #[arg(short = 'f', long = "file", env = "TAO_CATALOG", default_value = "tao.yaml")]
        file: PathBuf,
    },
    /// Send a catalog file to the running server as the new live revision (validated, rejected whole on
    /// any error).
    Apply {
        /// The catalog file.
        #[arg(short = 'f', long = "file", env = "TAO_CATALOG", default_value = "tao.yaml")]
        file: PathBuf,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Where the server is. The token comes from `TAO_TOKEN` only, so it never shows in `ps` or shell history.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Tao server URL.
    #[arg(long, env = "TAO_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
}

/// `tao release …`
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Create a product version: every component of the product, each NAME=VERSION.
    Create {
        /// Product, e.g. monitor.
        product: String,
        /// Version, e.g. 1.1.0 (a leading v is accepted).
        version: String,
        /// A component version, NAME=VERSION; repeat for each component.
        #[arg(short = 'c', long = "component", value_name = "NAME=VERSION", value_parser = parse_pair)]
        components: Vec<(String, String)>,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List a product's versions, newest first.
    List {
        /// Product.
        product: String,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one product version with its component versions, tags and images.
    Show {
        /// Product.
        product: String,
        /// Version.
        version: String,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VERSION, found {s:?}")),
    }
}

/// `tao env …`
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List environments.
    List {
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one environment's definition.
    Show {
        /// Environment name.
        env: String,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Refuse new deploys to an environment, with a reason.
    Freeze {
        /// Environment name.
        env: String,
        /// Why (shown to whoever tries to deploy).
        #[arg(long)]
        reason: String,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Accept deploys to an environment again.
    Unfreeze {
        /// Environment name.
        env: String,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// A failure the CLI reports and exits 1 for.
type Outcome = anyhow::Result<ExitCode>;

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    let json = cli.json;
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            if json {
                print_json(&json!({ "error": { "message": format!("{e:#}") } }));
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Outcome {
    let json = cli.json;
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(db) => {
            let pool = Pool::connect(&db.url()).await?;
            let applied = store::migrate::run(&pool).await?;
            let now = store::migrate::current_version(&pool).await?;
            if json {
                print_json(&json!({ "applied": applied, "version": now }));
            } else if applied.is_empty() {
                println!("database is up to date (migration {now})");
            } else {
                println!("applied migrations {applied:?}; database is at migration {now}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { file, db } => {
            let pool = open_store(&db).await?;
            pool.backup_to(&file).await?;
            if json {
                print_json(&json!({ "backup": file }));
            } else {
                println!("wrote a consistent copy of the store to {}", file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(cmd) => token(cmd, json).await,
        Command::Catalog(CatalogCommand::Check { file }) => catalog_check(&file, json),
        Command::Catalog(CatalogCommand::Apply { file, server }) => {
            let yaml = read_file(&file)?;
            let (status, body) = Client::new(&server)?.post_yaml("/api/v1/catalog", yaml).await?;
            if json {
                print_json(&body);
            } else if status == 201 {
                println!("applied {} as catalog revision {}", file.display(), body["revision"]);
            } else {
                println!("catalog unchanged (revision {})", body["revision"]);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Release(cmd) => release::release(cmd, json).await,
        Command::Env(cmd) => release::env(cmd, json).await,
        Command::Deploy(args) => deploy::deploy(args, json).await,
        Command::Rollback(args) => deploy::rollback(args, json).await,
        Command::Task(cmd) => deploy::task(cmd, json).await,
        Command::Status(args) => deploy::status(args, json).await,
        Command::DeployImages(args) => exec::deploy_images_cmd(args, json).await,
        Command::SshFanout(args) => exec::ssh_fanout_cmd(args, json).await,
        Command::Events(cmd) => gitlab::events(cmd).await,
        Command::Gitlab(cmd) => gitlab::gitlab(cmd, json).await,
        Command::Policy(cmd) => policy::policy(cmd, json).await,
        Command::Report(cmd) => report::report(cmd).await,
        Command::Ci(cmd) => ci::ci(cmd, json),
        Command::Sync(cmd) => sync::sync(cmd, json).await,
        Command::Discord(cmd) => discord::discord(cmd, json).await,
    }
}

async fn serve(args: ServeArgs) -> Outcome {
    let mut settings = Settings {
        listen: args.listen,
        database_url: args.db.url(),
        catalog: args.db.catalog.clone(),
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
    };
    discord::apply(args.discord, &mut settings)?;
    let app = crate::app::App::build(settings).await?;
    app.run_until_stopped(crate::app::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn open_store(db: &DbArgs) -> anyhow::Result<Pool> {
    let url = db.url();
    let pool = Pool::connect(&url).await?;
    store::migrate::run(&pool).await?;
    Ok(pool)
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

fn catalog_check(file: &Path, json: bool) -> Outcome {
    let yaml = read_file(file)?;
    match Catalog::from_yaml(&yaml) {
        Ok(catalog) => {
            if json {
                print_json(&json!({ "file": file, "valid": true, "errors": [] }));
            } else {
                println!(
                    "{}: valid ({} products, {} components, {} environments)",
                    file.display(),
                    catalog.products.len(),
                    catalog.components.len(),
                    catalog.environments.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            if json {
                print_json(&json!({ "file": file, "valid": false, "errors": errors.0 }));
            } else {
                eprintln!("{}: {} error(s)", file.display(), errors.0.len());
                for e in &errors.0 {
                    eprintln!("  {e}");
                }
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn token(cmd: TokenCommand, json: bool) -> Outcome {
    match cmd {
        TokenCommand::Create { name, scope, db } => {
            let pool = open_store(&db).await?;
            let (token, secret) = store::token::create(&pool, &name, scope).await?;
            store::audit::record(&pool, &local_actor(), "token.create", &format!("token {name}"), "ok", scope.as_str())
                .await?;
            if json {
                print_json(&json!({ "name": token.name, "scope": token.scope, "token": secret.expose() }));
            } else {
                eprintln!("created token {:?} with scope {}; it is shown once, store it now:", token.name, token.scope);
                println!("{}", secret.expose());
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List(db) => {
            let pool = open_store(&db).await?;
            let tokens = store::token::list(&pool).await?;
            if json {
                print_json(&json!(tokens));
            } else {
                let rows = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.scope.to_string(),
                            store::rfc3339(t.created_at),
                            t.last_used_at.map(store::rfc3339).unwrap_or_else(|| "-".into()),
                            t.revoked_at.map(store::rfc3339).unwrap_or_else(|| "active".into()),
                        ]
                    })
                    .collect();
                print!("{}", table(&["NAME", "SCOPE", "CREATED", "LAST USED", "STATUS"], rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { name, db } => {
            let pool = open_store(&db).await?;
            let revoked = store::token::revoke(&pool, &name).await?;
            let outcome = if revoked { "ok" } else { "not_found" };
            store::audit::record(&pool, &local_actor(), "token.revoke", &format!("token {name}"), outcome, "").await?;
            if !revoked {
                anyhow::bail!("no active token named {name:?} (see `tao token list`)");
            }
            if json {
                print_json(&json!({ "revoked": name }));
            } else {
                println!("revoked token {name:?}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn local_actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// Used by `main`: parse arguments from the process.
pub fn parse() -> Cli {
    Cli::parse()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        // clap checks names, conflicts and defaults of every subcommand only when asked (or when parsed).
        super::Cli::command().debug_assert();
    }
}
