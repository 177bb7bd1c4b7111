//! Dispatch: one [`Command`] from any transport (Discord, an MR comment) → authorize before any side
//! effect → act through the same services the API uses → a [`Reply`].
//!
//! Owns who may run what from chat (reading needs reporter; changing an environment needs what
//! [`ChatUser::may_change`] says, the rule the deploy services apply too; creating product versions needs
//! developer), the confirmation production changes need from chat, the audit of every command (allowed
//! or denied), and the Markdown replies. A command that starts a task passes the transport's id (an
//! interaction id, a note id) as the idempotency key, so one interaction or note is at most one task.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::command::Command;
use super::{help, picture};
use crate::catalog::Tier;
use crate::service::{level, Actor, ChatUser, DeployRequest, DeployTarget, ServiceError, Services};
use crate::store::rfc3339;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (or shown).
    Done,
    /// Production needs an explicit confirmation; nothing happened.
    NeedsConfirmation,
    /// Not allowed; nothing happened.
    Denied,
    /// Refused or failed (bad input, frozen, not found, GitLab down); nothing happened.
    Failed,
}

impl Outcome {
    fn audit_word(self) -> &'static str {
        match self {
            Outcome::Done => "ok",
            Outcome::NeedsConfirmation => "confirm",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// The answer to a command, as Markdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// How it ended.
    pub outcome: Outcome,
    /// What to tell the user.
    pub text: String,
    /// The task it started (or found again for the same key).
    pub task_id: Option<i64>,
    /// A file to show with the text (the picture of `dora` and `cfd`).
    pub attachment: Option<Attachment>,
}

impl Reply {
    /// A reply of `text` only.
    pub fn new(outcome: Outcome, text: impl Into<String>) -> Reply {
        Reply { outcome, text: text.into(), task_id: None, attachment: None }
    }
}

/// A file a reply carries; each transport delivers it its own way (a Discord attachment, a GitLab
/// upload linked from the note).
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Its file name, e.g. `dora-monitor.png` (letters, digits, `.` and `-`).
    pub file_name: String,
    /// Its bytes (a PNG).
    pub bytes: Vec<u8>,
}

impl Attachment {
    /// Its media type, from its file name's extension.
    pub fn content_type(&self) -> &'static str {
        match self.file_name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).as_deref() {
            Some("png") => "image/png",
            _ => "application/octet-stream",
        }
    }
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Attachment({:?}, {} bytes)", self.file_name, self.bytes.len())
    }
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// Who.
    pub user: ChatUser,
    /// What.
    pub command: Command,
    /// The transport's id of this request (Discord interaction id, GitLab note id and line): the
    /// idempotency key of a task it starts.
    pub key: String,
}

fn from_service(e: ServiceError) -> Reply {
    match e {
        ServiceError::Forbidden(m) => Reply::new(Outcome::Denied, format!("🚫 Not allowed: {m}")),
        ServiceError::Invalid(errors) => {
            let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            Reply::new(Outcome::Failed, format!("❌ {}", list.join("; ")))
        }
        ServiceError::Locked(m) => Reply::new(Outcome::Failed, format!("🧊 {m}")),
        ServiceError::Store(_) => Reply::new(Outcome::Failed, "❌ Tao's store failed; see Tao's log"),
        other => Reply::new(Outcome::Failed, format!("❌ {other}")),
    }
}

/// What the command changes, for authorization: an environment, a product version, or nothing.
enum Needs<'a> {
    Read,
    Env(&'a str),
    Develop,
}

/// Runs one chat command: authorize, act, audit, reply.
pub async fn dispatch(services: &Services, req: &ChatRequest) -> Reply {
    let reply = run(services, req).await;
    let target = req.command.to_string();
    let actor = Actor::Chat(Box::new(req.user.clone()));
    let detail: String = reply.text.chars().take(300).collect();
    let action = format!("chat.{}", req.command.name().as_str());
    if let Err(e) = services.audit(&actor, &action, &target, reply.outcome.audit_word(), &detail).await {
        tracing::error!(error = %e, "cannot audit a chat command");
    }
    reply
}

async fn run(services: &Services, req: &ChatRequest) -> Reply {
    let user = &req.user;
    let catalog = services.catalog_now();
    let needs = match &req.command {
        Command::Deploy { env, .. }
        | Command::Rollback { env, .. }
        | Command::DeployComponent { env, .. }
        | Command::Freeze { env, .. }
        | Command::Unfreeze { env } => Needs::Env(env.as_str()),
        Command::Cancel { id } => match services.task(id.get()).await {
            Ok(t) => return authorize_cancel(services, user, &t.env, id.get()).await,
            Err(e) => return from_service(e),
        },
        Command::ReleaseCreate { .. } => Needs::Develop,
        _ => Needs::Read,
    };
    match needs {
        Needs::Read if user.level < level::REPORTER => {
            return Reply::new(
                Outcome::Denied,
                format!("🚫 Not allowed: {user} has no Tao role (reporter or above is needed to read)"),
            );
        }
        Needs::Develop if user.level < level::DEVELOPER => {
            return Reply::new(
                Outcome::Denied,
                format!(
                    "🚫 Not allowed: creating product versions needs the developer role; {user} is {}",
                    user.describe_roles()
                ),
            );
        }
        Needs::Env(env) => {
            let Some(def) = catalog.environments.get(env) else {
                let names: Vec<&str> = catalog.environments.keys().map(|n| n.as_str()).collect();
                return Reply::new(
                    Outcome::Failed,
                    format!("❌ unknown environment {env:?} (known: {})", names.join(", ")),
                );
            };
            if let Err(m) = user.may_change(env, def) {
                return Reply::new(Outcome::Denied, format!("🚫 Not allowed: {m}"));
            }
            let confirm = match &req.command {
                Command::Deploy { confirm, .. } | Command::Rollback { confirm, .. } => Some(*confirm),
                _ => None,
            };
            if def.tier == Tier::Prod && confirm == Some(false) {
                return Reply::new(
                    Outcome::NeedsConfirmation,
                    format!(
                        "⚠️ {env} is production. To go ahead, send the same command with `confirm`: `{} confirm`",
                        req.command
                    ),
                );
            }
        }
        _ => {}
    }
    act(services, req).await
}

async fn authorize_cancel(services: &Services, user: &ChatUser, env: &str, id: i64) -> Reply {
    let actor = Actor::Chat(Box::new(user.clone()));
    match services.cancel(&actor, id).await {
        Ok(outcome) => {
            let mut r = Reply::new(Outcome::Done, format!("Task {id}: {outcome:?} ({env})"));
            r.task_id = Some(id);
            r
        }
        Err(e) => from_service(e),
    }
}

async fn act(services: &Services, req: &ChatRequest) -> Reply {
    let actor = Actor::Chat(Box::new(req.user.clone()));
    let deploy = |env: &str, target: DeployTarget, force: bool| DeployRequest {
        env: env.to_string(),
        target,
        force,
        rollback_on_failure: true,
        idempotency_key: Some(format!("chat-{}", req.key)),
    };
    let result: Result<Reply, ServiceError> = async {
        Ok(match &req.command {
            Command::Deploy { product, version, env, components, force, .. } => {
                let target = DeployTarget::Release {
                    product: product.to_string(),
                    version: version.to_string(),
                    components: components.iter().map(|c| c.to_string()).collect(),
                };
                task_reply(
                    services,
                    &actor,
                    &deploy(env.as_str(), target, *force),
                    format!("{product} {version} → {env}"),
                )
                .await?
            }
            Command::Rollback { env, to, .. } => {
                let target = DeployTarget::Rollback { to: to.as_ref().map(|v| v.to_string()) };
                let what = match to {
                    Some(v) => format!("roll {env} back to {v}"),
                    None => format!("roll {env} back"),
                };
                task_reply(services, &actor, &deploy(env.as_str(), target, false), what).await?
            }
            Command::DeployComponent { component, image_tag, env } => {
                let target = DeployTarget::Component {
                    component: component.to_string(),
                    image_tag: image_tag.as_str().to_string(),
                };
                task_reply(
                    services,
                    &actor,
                    &deploy(env.as_str(), target, false),
                    format!("{component}@{} → {env}", image_tag.as_str()),
                )
                .await?
            }
            Command::Freeze { env, reason } => {
                let f = services.freeze(&actor, env.as_str(), reason).await?;
                Reply::new(Outcome::Done, format!("🧊 {env} is frozen by {}: {}", f.frozen_by, f.reason))
            }
            Command::Unfreeze { env } => {
                let lifted = services.unfreeze(&actor, env.as_str()).await?;
                let text =
                    if lifted { format!("{env} is open for deploys again") } else { format!("{env} was not frozen") };
                Reply::new(Outcome::Done, text)
            }
            Command::Status { env } => Reply::new(Outcome::Done, status_text(services, env.as_str()).await?),
            Command::Releases { product } => {
                let list = services.releases(product.as_str()).await?;
                let mut text = format!("**{product}** versions (newest first):\n");
                if list.is_empty() {
                    text.push_str("none yet\n");
                }
                for pv in list.iter().take(20) {
                    let _ = writeln!(text, "- {} ({} by {})", pv.version, rfc3339(pv.created_at), pv.created_by);
                }
                Reply::new(Outcome::Done, text)
            }
            Command::Release { product, version } => {
                let pv = services.release(product.as_str(), &version.to_string()).await?;
                let mut text =
                    format!("**{product} {version}**, created {} by {}:\n", rfc3339(pv.created_at), pv.created_by);
                for c in &pv.components {
                    let _ = writeln!(
                        text,
                        "- {} {} (`{}`, {}:{})",
                        c.component,
                        c.version,
                        c.git_tag,
                        c.image.as_deref().unwrap_or("-"),
                        c.image_tag
                    );
                }
                Reply::new(Outcome::Done, text)
            }
            Command::ReleaseCreate { product, version, components } => {
                let map: BTreeMap<String, String> =
                    components.iter().map(|(c, v)| (c.to_string(), v.to_string())).collect();
                let created = services.create_release(&actor, product.as_str(), &version.to_string(), &map).await?;
                let word = match created {
                    crate::service::CreateReleaseOutcome::Created(_) => "created",
                    crate::service::CreateReleaseOutcome::Unchanged(_) => "already exists with these versions",
                };
                Reply::new(Outcome::Done, format!("{product} {version} {word}"))
            }
            Command::Task { id } => {
                let t = services.task(id.get()).await?;
                let log = services.task_log(id.get(), 0).await?;
                let mut text = format!("Task {}: **{}** — {} on {}", t.id, t.status, t.kind, t.env);
                if let Some(e) = &t.error {
                    let _ = write!(text, " ({e})");
                }
                text.push_str("\n```\n");
                for l in log.iter().rev().take(10).collect::<Vec<_>>().into_iter().rev() {
                    let _ = writeln!(text, "{} {}", l.level, l.line);
                }
                text.push_str("```");
                let mut r = Reply::new(Outcome::Done, text);
                r.task_id = Some(t.id);
                r
            }
            Command::Cancel { .. } => unreachable!("handled before"),
            Command::Policy { project } => {
                let audits = services.policy_audit(Some(project.as_str())).await?;
                let mut text = String::new();
                for a in &audits {
                    match (&a.error, a.audit.clean()) {
                        (Some(e), _) => {
                            let _ = writeln!(text, "{}: cannot audit ({e})", a.project);
                        }
                        (None, true) => {
                            let _ = writeln!(text, "✅ {} is configured as the policy says", a.project);
                        }
                        (None, false) => {
                            let _ = writeln!(text, "❌ {}: {} difference(s)", a.project, a.audit.drifts.len());
                            for d in &a.audit.drifts {
                                let _ = writeln!(text, "- {} (fix: {})", d.violation.message, d.violation.fix);
                            }
                        }
                    }
                }
                Reply::new(Outcome::Done, text)
            }
            Command::Envs => {
                let mut text = String::from("Environments:\n");
                for (name, e) in &catalog_envs(services) {
                    let _ = writeln!(text, "- {name} ({e})");
                }
                Reply::new(Outcome::Done, text)
            }
            Command::Help { command } => Reply::new(Outcome::Done, help(*command)),
            Command::Dora { product, env, days } => {
                let (text, file) = picture::dora(services, product, env.as_ref(), *days).await?;
                Reply { attachment: Some(file), ..Reply::new(Outcome::Done, text) }
            }
            Command::Cfd { product, version, days } => {
                let (text, file) = picture::cfd(services, product, version.as_ref(), *days).await?;
                Reply { attachment: Some(file), ..Reply::new(Outcome::Done, text) }
            }
        })
    }
    .await;
    result.unwrap_or_else(from_service)
}

fn catalog_envs(services: &Services) -> Vec<(String, &'static str)> {
    services.catalog_now().environments.iter().map(|(n, e)| (n.to_string(), e.tier.as_str())).collect()
}

async fn task_reply(
    services: &Services,
    actor: &Actor,
    req: &DeployRequest,
    what: String,
) -> Result<Reply, ServiceError> {
    let (task, created) = services.request_deploy(actor, req).await?;
    let text = if created {
        format!("🚀 Task {} queued: {what} (requested by {actor})", task.id)
    } else {
        format!("Task {} was already requested for this: {what} ({})", task.id, task.status)
    };
    Ok(Reply { task_id: Some(task.id), ..Reply::new(Outcome::Done, text) })
}

async fn status_text(services: &Services, env: &str) -> Result<String, ServiceError> {
    let view = services.environment(env).await?;
    let mut text = format!("**{env}**");
    if let Some(f) = &view.frozen {
        let _ = write!(text, " — 🧊 frozen by {}: {}", f.frozen_by, f.reason);
    }
    text.push('\n');
    if view.deployed.is_empty() {
        text.push_str("nothing deployed yet\n");
    }
    for d in &view.deployed {
        let _ = writeln!(text, "- {} {} on {} since {} (task {})", d.component, d.version, d.host, d.since, d.task_id);
    }
    Ok(text)
}
