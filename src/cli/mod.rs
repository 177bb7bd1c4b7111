//! The `tao` command line: clap definitions and what each command does.
//!
//! Offline commands (`serve`, `migrate`, `backup`, `token`, `catalog check`) open the store or files
//! directly; online commands (`catalog apply`, `release`, `env`) are HTTP clients of a running server
//! (`--server` / `TAO_SERVER`, token from `TAO_TOKEN`). Human output is aligned tables; `--json` prints
//! JSON for scripts. Exit codes: 0 success, 1 failure (invalid input, rejected request), 2 usage (or a
//! setting the server lacks for the request).

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
mod serve;
pub mod sync;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::catalog::access::Scope;
use crate::catalog::Catalog;
use crate::config;
use crate::store::{self, Pool};
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
    Serve(Box<serve::ServeArgs>),
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
    /// Sync work items from TAPD or GitLab issues into the store (offline: talks to TAPD or GitLab and the
    /// store directly).
    #[command(subcommand)]
    Sync(sync::SyncCommand),
    /// Discord: register Tao's slash commands in a guild.
    #[command(subcommand)]
    Discord(discord::DiscordCommand),
}

/// Where the catalog file is: `-f FILE` / `--catalog FILE` (also spelled `--file`) or `TAO_CATALOG`, else
/// `./tao.yaml` when that file exists. Every command that reads a catalog takes exactly this argument.
#[derive(Debug, Clone, Default, Args)]
pub struct CatalogArgs {
    /// Catalog file [default: ./tao.yaml when it exists].
    #[arg(
        short = 'f',
        long = "catalog",
        visible_alias = "file",
        value_name = "FILE",
        env = "TAO_CATALOG",
        hide_env_values = true,
        hide_env_values = true
    )]
    pub catalog: Option<PathBuf>,
}

/// The catalog file looked for when neither `--catalog` nor `TAO_CATALOG` names one.
pub const DEFAULT_CATALOG: &str = "tao.yaml";

impl CatalogArgs {
    /// The catalog file named, else `./tao.yaml` when it exists, else none.
    pub fn find(&self) -> Option<PathBuf> {
        match &self.catalog {
            Some(path) if !path.as_os_str().is_empty() => Some(path.clone()),
            _ => Some(PathBuf::from(DEFAULT_CATALOG)).filter(|p| p.is_file()),
        }
    }

    /// The catalog file to read; an error says where it looked and how to name another.
    pub fn require(&self) -> anyhow::Result<PathBuf> {
        self.find().ok_or_else(|| {
            anyhow::anyhow!(
                "no catalog file: looked for {} (the default); name one with -f/--catalog FILE or TAO_CATALOG",
                absolute(Path::new(DEFAULT_CATALOG)).display()
            )
        })
    }

    /// Reads and validates the catalog file; an invalid one is refused with its error count.
    pub fn load(&self) -> anyhow::Result<(PathBuf, Catalog)> {
        let path = self.require()?;
        let yaml = read_file(&path)?;
        let catalog = Catalog::from_yaml(&yaml).map_err(|e| {
            anyhow::anyhow!("{} is invalid ({} errors); run `tao catalog check`", path.display(), e.0.len())
        })?;
        Ok((path, catalog))
    }
}

/// `path` made absolute against the working directory (for messages that say where Tao looked).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Where the store is: `--database-url` / `TAO_DATABASE_URL`, else `tao.db` beside the catalog file (the
/// rule `tao serve` uses, so offline commands and the server find the same store), else `./tao.db`.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Database URL: sqlite://PATH or postgres://… [default: tao.db beside the catalog, else ./tao.db]
    #[arg(long, env = "TAO_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The catalog file (locates the default SQLite store beside it).
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

impl DbArgs {
    /// The store's URL by the rule above. A catalog that is named but missing is refused rather than
    /// silently creating a store beside a file that is not there.
    pub fn url(&self) -> anyhow::Result<String> {
        if let Some(url) = self.database_url.as_deref().filter(|u| !u.is_empty()) {
            return Ok(url.to_string());
        }
        let catalog = self.catalog.find();
        if let Some(path) = catalog.as_deref().filter(|p| !p.is_file()) {
            anyhow::bail!(
                "catalog {} does not exist; the default store lives beside it: name an existing -f/--catalog FILE \
                 or TAO_CATALOG, or set TAO_DATABASE_URL",
                absolute(path).display()
            );
        }
        Ok(config::resolve_database_url(None, catalog.as_deref()))
    }
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
        #[command(flatten)]
        catalog: CatalogArgs,
    },
    /// Send a catalog file to the running server as the new live revision (validated, rejected whole on
    /// any error).
    Apply {
        /// The catalog file.
        #[command(flatten)]
        catalog: CatalogArgs,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Where the server is. The token comes from `TAO_TOKEN` only, so it never shows in `ps` or shell history.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Tao server URL.
    #[arg(long, env = "TAO_SERVER", hide_env_values = true, default_value = "http://127.0.0.1:8080")]
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
            if e.downcast_ref::<client::NotConfigured>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn dispatch(cli: Cli) -> Outcome {
    let json = cli.json;
    match cli.command {
        Command::Serve(args) => serve::serve(*args).await,
        Command::Migrate(db) => {
            let url = db.url()?;
            eprintln!("store: {}", store::describe_url(&url));
            let pool = Pool::connect(&url).await?;
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
        Command::Catalog(CatalogCommand::Check { catalog }) => catalog_check(&catalog.require()?, json),
        Command::Catalog(CatalogCommand::Apply { catalog, server }) => {
            let file = catalog.require()?;
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

/// Opens (and migrates) the store an offline command works on, saying on stderr which one it is.
pub(crate) async fn open_store(db: &DbArgs) -> anyhow::Result<Pool> {
    let url = db.url()?;
    eprintln!("store: {}", store::describe_url(&url));
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
                            t.revoked_at
                                .map(|at| format!("revoked ({})", store::rfc3339(at)))
                                .unwrap_or_else(|| "active".into()),
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

    /// Every argument read from an environment variable, in every subcommand (`path` is the command line
    /// leading to it), with whether clap hides its value in `--help`.
    fn env_args(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String, bool)>) {
        for arg in cmd.get_arguments() {
            if let Some(var) = arg.get_env() {
                out.push((path.to_string(), var.to_string_lossy().into_owned(), arg.is_hide_env_values_set()));
            }
        }
        for sub in cmd.get_subcommands() {
            env_args(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn help_never_prints_an_environment_value() {
        let mut args = Vec::new();
        env_args(&super::Cli::command(), "tao", &mut args);
        assert!(args.len() > 40, "walked every subcommand: {}", args.len());
        let shown: Vec<_> = args.iter().filter(|(_, _, hidden)| !hidden).collect();
        assert!(shown.is_empty(), "help would print these values: {shown:?}");
    }

    #[test]
    fn every_catalog_argument_is_the_shared_one() {
        // One spelling everywhere: `-f` / `--catalog` (alias `--file`), from TAO_CATALOG.
        fn walk(cmd: &clap::Command, path: &str, bad: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let reads_catalog = arg.get_env().is_some_and(|v| v == "TAO_CATALOG");
                let named_like_one = matches!(arg.get_long(), Some("catalog" | "file")) && arg.get_id() != "file";
                if (reads_catalog || named_like_one)
                    && !(arg.get_short() == Some('f')
                        && arg.get_long() == Some("catalog")
                        && reads_catalog
                        && arg.get_visible_aliases().is_some_and(|a| a.contains(&"file")))
                {
                    bad.push(format!("{path}: {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), bad);
            }
        }
        let mut bad = Vec::new();
        walk(&super::Cli::command(), "tao", &mut bad);
        assert!(bad.is_empty(), "catalog arguments that differ from CatalogArgs: {bad:?}");
    }
}
