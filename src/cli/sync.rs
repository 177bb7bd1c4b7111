//! `tao sync tapd`: syncs work items from TAPD into the store, once, for every product of a catalog file
//! with a `tapd:` mapping. Talks to TAPD directly (`TAO_TAPD_URL`, `TAO_TAPD_USER` + `TAO_TAPD_PASSWORD`
//! or `TAO_TAPD_TOKEN`) and writes the store `--database-url` names (migrating it first, like `tao
//! migrate`), so it works with or without a running server. [`TapdArgs`] are shared with `tao serve`.
//!
//! `tao sync gitlab-issues`: the same for GitLab issues (`crate::workitems::gitlab_sync`), for every
//! component project of the catalog or one `--project`, through `TAO_GITLAB_URL` and `TAO_GITLAB_TOKEN`.
//! [`IssueRuleArgs`] are shared with `tao serve` (its webhook handler maps issues the same way).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::output::{print_json, table};
use super::{open_store, DbArgs};
use crate::config::Secret;
use crate::gitlab::client::{self as gl, GitLabClient};
use crate::store;
use crate::workitems::gitlab::{IssueRules, DEFAULT_BUG_LABELS, DEFAULT_WORKFLOW_SCOPE};
use crate::workitems::tapd::{self, Auth, RetryPolicy, TapdClient};
use crate::workitems::{gitlab_sync, sync, SOURCE_GITLAB};

/// `tao sync …`
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Fetch TAPD stories, bugs and iterations modified since the last sync, with their state history.
    Tapd(TapdSyncArgs),
    /// Fetch GitLab issues updated since the last sync, with their state events.
    GitlabIssues(GitLabIssuesSyncArgs),
}

/// How GitLab issues map to work items (shared by `tao sync gitlab-issues` and `tao serve`).
#[derive(Debug, Clone, Args)]
pub struct IssueRuleArgs {
    /// Labels that make a GitLab issue a bug, comma-separated, case-insensitive (incidents are bugs too).
    #[arg(long, env = "TAO_GITLAB_BUG_LABELS", hide_env_values = true, default_value = DEFAULT_BUG_LABELS)]
    pub gitlab_bug_labels: String,
    /// Scope of the labels whose value is an open issue's state (`workflow::doing` → doing), or `off`.
    #[arg(long, env = "TAO_GITLAB_WORKFLOW_SCOPE", hide_env_values = true, default_value = DEFAULT_WORKFLOW_SCOPE)]
    pub gitlab_workflow_scope: String,
}

impl IssueRuleArgs {
    /// The rules, or which setting is wrong.
    pub fn rules(&self) -> anyhow::Result<IssueRules> {
        Ok(IssueRules::parse(&self.gitlab_bug_labels, &self.gitlab_workflow_scope)?)
    }
}

/// `tao sync gitlab-issues` arguments.
#[derive(Debug, Args)]
pub struct GitLabIssuesSyncArgs {
    /// The store, and the catalog file: component projects, products, version patterns.
    #[command(flatten)]
    pub db: DbArgs,
    /// Only this GitLab project (group/project) [default: every component project of the catalog].
    #[arg(long)]
    pub project: Option<String>,
    /// Issues per page (GitLab allows at most 100).
    #[arg(long, default_value_t = gl::MAX_PER_PAGE, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub page_size: u32,
    /// Ignore the stored cursors and fetch every issue again (repairs issues a run skipped).
    #[arg(long)]
    pub full: bool,
    /// GitLab base URL.
    #[arg(long, env = "TAO_GITLAB_URL", hide_env_values = true)]
    pub gitlab_url: String,
    /// GitLab API token (Reporter on the projects suffices).
    #[arg(long, env = "TAO_GITLAB_TOKEN", hide_env_values = true)]
    pub gitlab_token: Secret,
    /// Issue mapping.
    #[command(flatten)]
    pub rules: IssueRuleArgs,
}

/// Where TAPD is and how to sign in (shared by `tao sync tapd` and `tao serve`).
#[derive(Debug, Clone, Args)]
pub struct TapdArgs {
    /// TAPD open API base URL.
    #[arg(long, env = "TAO_TAPD_URL", hide_env_values = true, default_value = tapd::DEFAULT_URL)]
    pub tapd_url: String,
    /// TAPD API account (HTTP Basic, with TAO_TAPD_PASSWORD).
    #[arg(long, env = "TAO_TAPD_USER", hide_env_values = true)]
    pub tapd_user: Option<String>,
    /// Password of the TAPD API account.
    #[arg(long, env = "TAO_TAPD_PASSWORD", hide_env_values = true)]
    pub tapd_password: Option<Secret>,
    /// TAPD personal access or app token (Bearer); used instead of the account when set.
    #[arg(long, env = "TAO_TAPD_TOKEN", hide_env_values = true)]
    pub tapd_token: Option<Secret>,
}

impl TapdArgs {
    /// The credentials given, if any; a user without a password is an error.
    pub fn auth(&self) -> anyhow::Result<Option<Auth>> {
        let given = |s: &Option<Secret>| s.clone().filter(|s| !s.expose().is_empty());
        Ok(match (given(&self.tapd_token), &self.tapd_user, given(&self.tapd_password)) {
            (Some(token), _, _) => Some(Auth::Bearer(token)),
            (None, Some(user), Some(password)) => Some(Auth::Basic { user: user.clone(), password }),
            (None, Some(_), None) => anyhow::bail!("TAO_TAPD_USER is set but TAO_TAPD_PASSWORD is not"),
            (None, None, _) => None,
        })
    }
}

/// Parses `TAO_TAPD_SYNC_INTERVAL`: `off` (or `0`, empty) never, else a duration like `15m`.
pub fn parse_interval(s: &str) -> anyhow::Result<Option<std::time::Duration>> {
    parse_interval_named("--tapd-sync-interval / TAO_TAPD_SYNC_INTERVAL", s)
}

/// Parses a sync interval setting called `name` (for the error): `off` (or `0`, empty) never, else a
/// duration like `15m`.
pub fn parse_interval_named(name: &str, s: &str) -> anyhow::Result<Option<std::time::Duration>> {
    match s.trim() {
        "off" | "0" | "" => Ok(None),
        other => crate::catalog::parse_duration(other)
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("{name}: expected a duration like 15m or off, found {other:?}")),
    }
}

/// `tao sync tapd` arguments.
#[derive(Debug, Args)]
pub struct TapdSyncArgs {
    /// The store, and the catalog file: products with a `tapd:` mapping.
    #[command(flatten)]
    pub db: DbArgs,
    /// Entities per page (TAPD allows at most 200).
    #[arg(long, default_value_t = tapd::MAX_LIMIT, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub page_size: u32,
    /// Ignore the stored cursors and fetch everything again (repairs items a run skipped).
    #[arg(long)]
    pub full: bool,
    /// TAPD.
    #[command(flatten)]
    pub tapd: TapdArgs,
}

/// Runs `tao sync …`.
pub async fn sync(cmd: SyncCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        SyncCommand::Tapd(args) => sync_tapd(args, json).await,
        SyncCommand::GitlabIssues(args) => sync_gitlab_issues(args, json).await,
    }
}

async fn sync_tapd(args: TapdSyncArgs, json: bool) -> anyhow::Result<ExitCode> {
    let (file, catalog) = args.db.catalog.load()?;
    anyhow::ensure!(
        !sync::targets(&catalog).is_empty(),
        "no product of {} has a tapd: mapping (tapd: {{ workspace_id: …, iteration_name: \"v{{version}}\" }})",
        file.display()
    );
    let auth = args.tapd.auth()?.context("set TAO_TAPD_TOKEN, or TAO_TAPD_USER and TAO_TAPD_PASSWORD")?;
    let client = TapdClient::new(&args.tapd.tapd_url, auth, RetryPolicy::default())?;
    let pool = open_store(&args.db).await?;
    if args.full {
        for t in sync::targets(&catalog) {
            store::workitem::clear_cursors(&pool, crate::workitems::SOURCE_TAPD, &t.mapping.workspace_id).await?;
        }
    }
    let reports = sync::sync_all(&pool, &client, &catalog, args.page_size).await?;
    if json {
        print_json(&serde_json::json!({ "synced": reports }));
    } else {
        let rows = reports
            .iter()
            .map(|r| {
                vec![
                    r.product.clone(),
                    r.workspace.clone(),
                    r.iterations.to_string(),
                    r.items.len().to_string(),
                    r.states_added.to_string(),
                ]
            })
            .collect();
        print!("{}", table(&["PRODUCT", "WORKSPACE", "ITERATIONS", "ITEMS", "NEW STATES"], rows));
    }
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn sync_gitlab_issues(args: GitLabIssuesSyncArgs, json: bool) -> anyhow::Result<ExitCode> {
    let (file, catalog) = args.db.catalog.load()?;
    let rules = args.rules.rules()?;
    let projects = match &args.project {
        Some(p) => vec![crate::catalog::ProjectPath::parse(p)
            .map_err(|e| anyhow::anyhow!("--project: {e}"))?
            .as_str()
            .to_string()],
        None => gitlab_sync::projects(&catalog),
    };
    anyhow::ensure!(
        !projects.is_empty(),
        "no component of {} names a GitLab project (project: group/name); give one with --project",
        file.display()
    );
    let client =
        GitLabClient::new(&args.gitlab_url, gl::Auth::PrivateToken(args.gitlab_token), gl::RetryPolicy::default())?;
    let pool = open_store(&args.db).await?;
    if args.full {
        for p in &projects {
            store::workitem::clear_cursors(&pool, SOURCE_GITLAB, p).await?;
        }
    }
    let reports = gitlab_sync::sync_all(&pool, &client, &catalog, &rules, &projects, args.page_size).await;
    pool.close().await;
    let reports = reports?;
    if json {
        print_json(&serde_json::json!({ "synced": reports }));
    } else {
        let rows = reports
            .iter()
            .map(|r| {
                vec![r.project.clone(), r.pages.to_string(), r.issues.len().to_string(), r.states_added.to_string()]
            })
            .collect();
        print!("{}", table(&["PROJECT", "PAGES", "ISSUES", "NEW STATES"], rows));
    }
    Ok(ExitCode::SUCCESS)
}
