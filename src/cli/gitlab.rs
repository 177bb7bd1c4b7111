//! `tao events export` and `tao gitlab hooks sync`.
//!
//! `events export` streams `GET /api/v1/events` to stdout as it arrives (JSON lines, constant memory).
//! `gitlab hooks sync` talks to GitLab directly, with the same settings as `tao serve`
//! (`TAO_GITLAB_URL`, `TAO_GITLAB_TOKEN`, `TAO_GITLAB_WEBHOOK_SECRET`, `TAO_PUBLIC_URL`), for every
//! project of a catalog file.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::client::{self, Client};
use super::output::{print_json, table};
use super::{CatalogArgs, ServerArgs};
use crate::config::{self, Secret};
use crate::gitlab::client::{Auth, GitLabClient, RetryPolicy};
use crate::gitlab::hook_sync::{self, HookChange, HookSpec};

/// `tao events …`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print stored events as JSON lines (oldest first), like GET /api/v1/events.
    Export(ExportArgs),
}

/// Filters of `tao events export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only this kind (push, merge_request, note, pipeline, build, …).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this project (id or path).
    #[arg(long)]
    pub project: Option<String>,
    /// Received at or after (RFC 3339, YYYY-MM-DD or epoch ms).
    #[arg(long)]
    pub since: Option<String>,
    /// Received before.
    #[arg(long)]
    pub until: Option<String>,
    /// Only events in this state (pending, running, failed, processed).
    #[arg(long)]
    pub state: Option<String>,
    /// Keep only these comma-separated keys (columns or dotted payload paths).
    #[arg(long)]
    pub fields: Option<String>,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `tao gitlab …`
#[derive(Debug, Subcommand)]
pub enum GitlabCommand {
    /// Webhooks on the catalog's projects.
    #[command(subcommand)]
    Hooks(HooksCommand),
}

/// `tao gitlab hooks …`
#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// Create or update Tao's webhook on every project of the catalog; report what changed.
    Sync(SyncArgs),
}

/// Settings of `tao gitlab hooks sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The catalog file whose components' projects get the hook.
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// GitLab base URL.
    #[arg(long, env = "TAO_GITLAB_URL", hide_env_values = true)]
    pub gitlab_url: String,
    /// GitLab API token (needs Maintainer on the projects).
    #[arg(long, env = "TAO_GITLAB_TOKEN", hide_env_values = true)]
    pub gitlab_token: Secret,
    /// Webhook secret; the first of a comma-separated list is installed.
    #[arg(long, env = "TAO_GITLAB_WEBHOOK_SECRET", hide_env_values = true)]
    pub gitlab_webhook_secret: Secret,
    /// Tao's external URL; the hook points at <public-url>/api/v1/gitlab/webhook.
    #[arg(long, env = "TAO_PUBLIC_URL", hide_env_values = true)]
    pub public_url: String,
    /// Also push the secret to hooks that are otherwise right (GitLab never shows a hook's secret).
    #[arg(long)]
    pub rotate_secret: bool,
}

/// Runs `tao events …`.
pub async fn events(cmd: EventsCommand) -> anyhow::Result<ExitCode> {
    let EventsCommand::Export(a) = cmd;
    let params = [
        ("kind", &a.kind),
        ("project", &a.project),
        ("since", &a.since),
        ("until", &a.until),
        ("state", &a.state),
        ("fields", &a.fields),
    ];
    let query: Vec<String> =
        params.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", client::segment(v)))).collect();
    let path =
        if query.is_empty() { "/api/v1/events".to_string() } else { format!("/api/v1/events?{}", query.join("&")) };
    let mut response = Client::new(&a.server)?.get_stream(&path).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut written = 0usize;
    while let Some(chunk) = response.chunk().await.context("reading the event stream")? {
        written += chunk.len();
        out.write_all(&chunk)?;
    }
    out.flush()?;
    if written == 0 {
        eprintln!("no stored event matches these filters");
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `tao gitlab …`.
pub async fn gitlab(cmd: GitlabCommand, json: bool) -> anyhow::Result<ExitCode> {
    let GitlabCommand::Hooks(HooksCommand::Sync(a)) = cmd;
    let (_, catalog) = a.catalog.load()?;
    let mut projects: Vec<String> =
        catalog.components.values().filter_map(|c| c.project.as_ref().map(|p| p.as_str().to_string())).collect();
    projects.sort();
    projects.dedup();
    let secret = config::parse_secrets(a.gitlab_webhook_secret.expose())
        .into_iter()
        .next()
        .context("--gitlab-webhook-secret / TAO_GITLAB_WEBHOOK_SECRET is empty")?;
    let client = GitLabClient::new(&a.gitlab_url, Auth::PrivateToken(a.gitlab_token), RetryPolicy::default())?;
    let spec = HookSpec::for_tao(&a.public_url, secret);
    let changes = hook_sync::sync(&client, &projects, &spec, a.rotate_secret).await;
    let failed = changes.iter().any(|c| matches!(c, HookChange::Failed { .. }));
    if json {
        print_json(&serde_json::json!(changes));
    } else {
        let rows = changes
            .iter()
            .map(|c| match c {
                HookChange::Created { project, hook } => {
                    vec![project.clone(), "created".into(), format!("hook {hook}")]
                }
                HookChange::Updated { project, hook, reason } => {
                    vec![project.clone(), "updated".into(), format!("hook {hook}: {reason}")]
                }
                HookChange::Unchanged { project, hook } => {
                    vec![project.clone(), "unchanged".into(), format!("hook {hook}")]
                }
                HookChange::Failed { project, error } => vec![project.clone(), "failed".into(), error.clone()],
            })
            .collect();
        print!("{}", table(&["PROJECT", "ACTION", "DETAIL"], rows));
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
