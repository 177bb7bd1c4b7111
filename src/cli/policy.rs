//! `tao policy audit | apply | reconcile`.
//!
//! `audit` and `apply` talk to GitLab directly, with the same settings as `tao serve` (`TAO_GITLAB_URL`,
//! `TAO_GITLAB_TOKEN`), for every project of a catalog file: audit prints a diff per project and exits 1
//! when anything differs; apply changes GitLab to match (idempotent: a second run changes nothing) and
//! reports each change. `reconcile` asks the server to re-check open MRs that missed their verdict.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::Client;
use super::output::{print_json, table};
use super::{CatalogArgs, ServerArgs};
use crate::config::Secret;
use crate::enforcement::audit::{apply, audit_project, Applied, ProjectAudit};
use crate::enforcement::rules_for;
use crate::gitlab::client::{Auth, GitLabClient, RetryPolicy};
use crate::policy::Change;

/// `tao policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Compare each catalog project's GitLab settings with the policy; exit 1 when anything differs.
    Audit(GitLabArgs),
    /// Change GitLab to match the policy, reporting each change.
    Apply {
        /// Only print what would change.
        #[arg(long)]
        dry_run: bool,
        /// Where and what.
        #[command(flatten)]
        args: GitLabArgs,
    },
    /// Re-check open merge requests without a final tao/policy status (talks to the server).
    Reconcile(ServerArgs),
}

/// The catalog and GitLab of `audit` and `apply`.
#[derive(Debug, Args)]
pub struct GitLabArgs {
    /// The catalog file: its projects and its `policy:` section.
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// Only this project (group/project).
    #[arg(long)]
    pub project: Option<String>,
    /// GitLab base URL.
    #[arg(long, env = "TAO_GITLAB_URL", hide_env_values = true)]
    pub gitlab_url: String,
    /// GitLab API token (needs Maintainer on the projects to apply).
    #[arg(long, env = "TAO_GITLAB_TOKEN", hide_env_values = true)]
    pub gitlab_token: Secret,
}

async fn audits(a: &GitLabArgs) -> anyhow::Result<(GitLabClient, Vec<ProjectAudit>)> {
    let (file, catalog) = a.catalog.load()?;
    let mut projects = catalog.project_paths();
    if let Some(p) = &a.project {
        anyhow::ensure!(projects.contains(p), "project {p} is not in {}", file.display());
        projects.retain(|x| x == p);
    }
    let client = GitLabClient::new(&a.gitlab_url, Auth::PrivateToken(a.gitlab_token.clone()), RetryPolicy::default())?;
    let mut out = Vec::new();
    for path in &projects {
        out.push(audit_project(&client, path, &rules_for(&catalog, path)).await);
    }
    Ok((client, out))
}

fn describe(change: &Change) -> String {
    match change {
        Change::Settings { merge_method, pipeline_must_succeed, discussions_resolved, remove_source_branch } => {
            let mut parts = Vec::new();
            if let Some(m) = merge_method {
                parts.push(format!("merge_method={}", m.as_str()));
            }
            for (k, v) in [
                ("only_allow_merge_if_pipeline_succeeds", pipeline_must_succeed),
                ("only_allow_merge_if_all_discussions_are_resolved", discussions_resolved),
                ("remove_source_branch_after_merge", remove_source_branch),
            ] {
                if let Some(v) = v {
                    parts.push(format!("{k}={v}"));
                }
            }
            format!("settings: {}", parts.join(", "))
        }
        Change::ProtectBranch(b) | Change::ReprotectBranch(b) => format!(
            "{} branch {}: push {}, merge {}, force push {}",
            if matches!(change, Change::ProtectBranch(_)) { "protect" } else { "re-protect" },
            b.name,
            b.push.describe(),
            b.merge.describe(),
            if b.allow_force_push { "allowed" } else { "off" }
        ),
        Change::ProtectTag(t) | Change::ReprotectTag(t) => format!(
            "{} tags {}: create {}",
            if matches!(change, Change::ProtectTag(_)) { "protect" } else { "re-protect" },
            t.name,
            t.create.describe()
        ),
    }
}

/// Runs `tao policy …`.
pub async fn policy(cmd: PolicyCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Audit(a) => {
            let (_, audits) = audits(&a).await?;
            let differs = audits.iter().any(|p| !p.audit.clean() || p.error.is_some());
            if json {
                print_json(&serde_json::json!({ "clean": !differs, "projects": audits }));
            } else {
                for p in &audits {
                    match (&p.error, p.audit.clean()) {
                        (Some(e), _) => println!("{}: cannot audit: {e}", p.project),
                        (None, true) => println!("{}: as the policy says", p.project),
                        (None, false) => {
                            println!("{}: {} difference(s)", p.project, p.audit.drifts.len());
                            for d in &p.audit.drifts {
                                println!("  - {} ({})", d.actual, d.violation.rule);
                                println!("  + {}", d.wanted);
                            }
                        }
                    }
                }
            }
            Ok(if differs { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        PolicyCommand::Apply { dry_run, args } => {
            let (client, audits) = audits(&args).await?;
            let mut applied: Vec<Applied> = Vec::new();
            let mut unreadable = Vec::new();
            for p in &audits {
                match &p.error {
                    Some(e) => unreadable.push(format!("{}: cannot audit: {e}", p.project)),
                    None => applied.extend(apply(&client, p, dry_run).await),
                }
            }
            let failed = !unreadable.is_empty() || applied.iter().any(|a| a.outcome == "failed");
            if json {
                print_json(&serde_json::json!({ "changes": applied, "errors": unreadable }));
            } else {
                let rows: Vec<Vec<String>> = applied
                    .iter()
                    .map(|a| {
                        let detail = match &a.error {
                            Some(e) => format!("{} — {e}", describe(&a.change)),
                            None => describe(&a.change),
                        };
                        vec![a.project.clone(), a.outcome.to_string(), detail]
                    })
                    .collect();
                if rows.is_empty() && unreadable.is_empty() {
                    println!("nothing to change: every project is as the policy says");
                } else if !rows.is_empty() {
                    print!("{}", table(&["PROJECT", "OUTCOME", "CHANGE"], rows));
                }
                for e in &unreadable {
                    eprintln!("{e}");
                }
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        PolicyCommand::Reconcile(server) => {
            let (_, answer) =
                Client::new(&server)?.post_json("/api/v1/policy/reconcile", &serde_json::json!({})).await?;
            if json {
                print_json(&answer);
            } else {
                println!("re-checked {} merge request(s)", answer["checked"].as_i64().unwrap_or(0));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
