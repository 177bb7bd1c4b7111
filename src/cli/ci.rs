//! `tao ci …`: render, list and lint the shared CI templates, offline (from the catalog file and the
//! template directory the server would use), so `tao ci render` prints what `GET /ci/v1/…` serves.
//!
//! Owns the arguments and the terminal output only; rendering and linting are `crate::ci_templates`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;

use super::output::print_json;
use super::{read_file, CatalogArgs, Outcome};
use crate::catalog::ProjectPath;
use crate::ci_templates::{lint, CiTemplates, RenderRequest, TemplateName};

/// Where templates and the catalog come from.
#[derive(Debug, Clone, Args)]
pub struct TemplateSource {
    /// Directory overriding the embedded CI templates.
    #[arg(long, env = "TAO_CI_TEMPLATES_DIR", hide_env_values = true)]
    pub ci_templates_dir: Option<PathBuf>,
    /// Tao's external URL, written into the templates as TAO_URL.
    #[arg(long, env = "TAO_PUBLIC_URL", hide_env_values = true)]
    pub public_url: Option<String>,
}

/// `tao ci` subcommands.
#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Print a template rendered for a project, as `GET /ci/v1/<project>/<template>.yml` serves it.
    Render {
        /// Template: `component`, `product-release`, … (`.yml` optional), or `cci.sh`.
        template: String,
        /// GitLab project path, e.g. monitor/api.
        #[arg(long)]
        project: String,
        /// Branch (`cci.sh` only).
        #[arg(long)]
        branch: Option<String>,
        /// Print the `include:integrity` value (`sha256-…`) instead of the text.
        #[arg(long)]
        integrity: bool,
        /// Catalog file.
        #[command(flatten)]
        catalog: CatalogArgs,
        /// Templates.
        #[command(flatten)]
        source: TemplateSource,
    },
    /// List the templates and what each reads from the catalog.
    List {
        /// Templates.
        #[command(flatten)]
        source: TemplateSource,
    },
    /// Validate a CI file against GitLab's CI schema.
    Lint {
        /// The `.gitlab-ci.yml` (or rendered template) to check.
        file: PathBuf,
    },
}

/// Runs a `tao ci` command.
pub fn ci(cmd: CiCommand, json: bool) -> Outcome {
    match cmd {
        CiCommand::Render { template, project, branch, integrity, catalog, source } => {
            let templates = load(&source)?;
            let (_, catalog) = catalog.load()?;
            let project = ProjectPath::parse(&project)?;
            let file = if template == "cci.sh" {
                template
            } else {
                let stem = template.strip_suffix(".yml").unwrap_or(&template);
                format!("{}.yml", TemplateName::parse(stem)?.as_str())
            };
            let rendered = templates.render(&catalog, "file", &RenderRequest { file, project, branch })?;
            if integrity {
                println!("{}", rendered.integrity());
            } else {
                print!("{}", rendered.body);
            }
            Ok(ExitCode::SUCCESS)
        }
        CiCommand::List { source } => {
            let list = load(&source)?.list();
            if json {
                print_json(&json!(list));
            } else {
                for t in list {
                    let origin = if t.overridden { " (overridden)" } else { "" };
                    println!("{}{origin}\n  reads {}", t.file, t.reads);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CiCommand::Lint { file } => {
            let text = read_file(&file)?;
            let problems = lint::lint(&text).with_context(|| format!("linting {}", file.display()))?;
            if json {
                print_json(&json!({ "file": file, "valid": problems.is_empty(), "errors": problems }));
            } else if problems.is_empty() {
                println!("{}: valid GitLab CI", file.display());
            } else {
                eprintln!("{}: {} problem(s)", file.display(), problems.len());
                for p in &problems {
                    eprintln!("  {p}");
                }
            }
            Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

fn load(source: &TemplateSource) -> anyhow::Result<CiTemplates> {
    Ok(CiTemplates::load(source.ci_templates_dir.as_deref(), source.public_url.as_deref())?)
}
