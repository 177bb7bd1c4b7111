//! The chat commands: the one [`Command`] every front end produces, their names and their specs.
//!
//! Owns the typed shape of each command (validated catalog identifiers, task ids, image tags), the
//! [`CommandName`] of each and its [`CommandSpec`] (usage, summary, arguments: the source of `help`),
//! and the canonical command line of a command (`Display`, which [`parse_line`](super::parse_line)
//! reads back to the same command). Must not parse text (see `parse`) or look anything up: whether a
//! product or environment exists is the dispatcher's question.

use std::fmt;

pub use super::arg::{Days, ImageTag, TaskId};
use crate::catalog::{ComponentName, EnvName, ProductName, ProjectPath, Version};

/// The flags of `deploy`, which the parser never reads as component names: a component literally named
/// `force` or `confirm` cannot be picked from chat. A mistyped flag that is a valid name (`forse`) parses
/// as a component; the dispatcher, which knows the product's components, should suggest these then.
pub const DEPLOY_FLAGS: [&str; 2] = ["force", "confirm"];

/// A chat command, as parsed from an MR comment, a Discord interaction or the CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Deploy a product version to an environment.
    Deploy {
        /// The product.
        product: ProductName,
        /// The product version.
        version: Version,
        /// The environment.
        env: EnvName,
        /// Only these components; empty = all of the product's.
        components: Vec<ComponentName>,
        /// Replace containers that already run the wanted image too.
        force: bool,
        /// The author confirmed (required for production environments, checked by the dispatcher).
        confirm: bool,
    },
    /// Return an environment to an earlier product version.
    Rollback {
        /// The environment.
        env: EnvName,
        /// The version to return to; the previous one when `None`.
        to: Option<Version>,
        /// The author confirmed (required for production environments, checked by the dispatcher).
        confirm: bool,
    },
    /// Show what runs in an environment.
    Status {
        /// The environment.
        env: EnvName,
    },
    /// List a product's versions.
    Releases {
        /// The product.
        product: ProductName,
    },
    /// Show one product version.
    Release {
        /// The product.
        product: ProductName,
        /// The product version.
        version: Version,
    },
    /// Record a product version from component versions.
    ReleaseCreate {
        /// The product.
        product: ProductName,
        /// The new product version.
        version: Version,
        /// Each component with its version, in the order given (no component twice).
        components: Vec<(ComponentName, Version)>,
    },
    /// Show a deploy task and the tail of its log.
    Task {
        /// The task.
        id: TaskId,
    },
    /// Cancel a queued task or stop a running one.
    Cancel {
        /// The task.
        id: TaskId,
    },
    /// Deploy one component's image build to a dev or test environment.
    DeployComponent {
        /// The component.
        component: ComponentName,
        /// The image tag (or digest) to run.
        image_tag: ImageTag,
        /// The environment.
        env: EnvName,
    },
    /// Freeze an environment against new deploys.
    Freeze {
        /// The environment.
        env: EnvName,
        /// Why (never empty or blank).
        reason: String,
    },
    /// Lift an environment's freeze.
    Unfreeze {
        /// The environment.
        env: EnvName,
    },
    /// Summarise a project's branch-policy audit.
    Policy {
        /// The GitLab project.
        project: ProjectPath,
    },
    /// List the environments.
    Envs,
    /// Post a product's DORA picture: deployments per day and status, with the DORA numbers.
    Dora {
        /// The product.
        product: ProductName,
        /// Only this environment.
        env: Option<EnvName>,
        /// Days back from today; the report's default when `None`.
        days: Option<Days>,
    },
    /// Post a product's cumulative flow picture: work items per state and day.
    Cfd {
        /// The product.
        product: ProductName,
        /// Only the work items of this product version (its iteration).
        version: Option<Version>,
        /// Days back from today; the report's default when `None`.
        days: Option<Days>,
    },
    /// List the commands, or explain one.
    Help {
        /// The command to explain; all of them when `None`.
        command: Option<CommandName>,
    },
}

/// Declares [`CommandName`] and [`CommandName::ALL`] from one list, so the list cannot miss a variant.
macro_rules! command_names {
    ($($(#[doc = $doc:literal])* $variant:ident,)*) => {
        /// The name of a command, one per [`Command`] variant (`release create` is its own).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CommandName {
            $($(#[doc = $doc])* $variant,)*
        }

        impl CommandName {
            /// Every command name, in the order `help` lists them.
            pub const ALL: &'static [CommandName] = &[$(CommandName::$variant,)*];
        }
    };
}

command_names! {
    /// `deploy`
    Deploy,
    /// `rollback`
    Rollback,
    /// `status`
    Status,
    /// `releases`
    Releases,
    /// `release`
    Release,
    /// `release create`
    ReleaseCreate,
    /// `task`
    Task,
    /// `cancel`
    Cancel,
    /// `deploy-component`
    DeployComponent,
    /// `freeze`
    Freeze,
    /// `unfreeze`
    Unfreeze,
    /// `policy`
    Policy,
    /// `envs`
    Envs,
    /// `dora`
    Dora,
    /// `cfd`
    Cfd,
    /// `help`
    Help,
}

/// One argument of a command, as `help` explains it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgSpec {
    /// How it appears in the usage line: `<env>`, `[force]`, `[to <version>]`.
    pub syntax: &'static str,
    /// What it means.
    pub help: &'static str,
}

/// What `help` knows about a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// The words that name it: `deploy`, `release create`.
    pub name: &'static str,
    /// The name followed by each argument's syntax.
    pub usage: &'static str,
    /// One sentence.
    pub summary: &'static str,
    /// The arguments, in usage order.
    pub args: &'static [ArgSpec],
}

const fn arg(syntax: &'static str, help: &'static str) -> ArgSpec {
    ArgSpec { syntax, help }
}

const ENV_ARG: ArgSpec = arg("<env>", "the environment, e.g. env-1");
const PRODUCT_ARG: ArgSpec = arg("<product>", "the product, e.g. monitor");
const TASK_ARG: ArgSpec = arg("<task>", "the task id, e.g. 42 or #42");

const DEPLOY: CommandSpec = CommandSpec {
    name: "deploy",
    usage: "deploy <product> <version> <env> [components…] [force] [confirm]",
    summary: "Deploys a product version to an environment: all of its components, or only those named.",
    args: &[
        PRODUCT_ARG,
        arg("<version>", "the product version, e.g. 1.2.0 (a leading v is allowed)"),
        ENV_ARG,
        arg("[components…]", "only these components (separated by spaces or commas); all when none"),
        arg("[force]", "replace containers that already run the wanted image too"),
        arg("[confirm]", "required to deploy to a production environment from chat"),
    ],
};

const ROLLBACK: CommandSpec = CommandSpec {
    name: "rollback",
    usage: "rollback <env> [to <version>] [confirm]",
    summary: "Returns an environment to the product version it ran before, or to the one named.",
    args: &[
        ENV_ARG,
        arg("[to <version>]", "the product version to return to; the previous one when omitted"),
        arg("[confirm]", "required to roll back a production environment from chat"),
    ],
};

const STATUS: CommandSpec = CommandSpec {
    name: "status",
    usage: "status <env>",
    summary: "Shows what runs in an environment: components, versions, since when, health.",
    args: &[ENV_ARG],
};

const RELEASES: CommandSpec = CommandSpec {
    name: "releases",
    usage: "releases <product>",
    summary: "Lists the recorded versions of a product, newest first.",
    args: &[PRODUCT_ARG],
};

const RELEASE: CommandSpec = CommandSpec {
    name: "release",
    usage: "release <product> <version>",
    summary: "Shows a product version and the component versions it is made of.",
    args: &[PRODUCT_ARG, arg("<version>", "the product version, e.g. 1.2.0")],
};

const RELEASE_CREATE: CommandSpec = CommandSpec {
    name: "release create",
    usage: "release create <product> <version> <component>=<version>…",
    summary: "Records a product version made of the given component versions.",
    args: &[
        PRODUCT_ARG,
        arg("<version>", "the new product version, e.g. 1.2.0"),
        arg("<component>=<version>…", "the version of every component of the product, e.g. ops=1.2.0"),
    ],
};

const TASK: CommandSpec = CommandSpec {
    name: "task",
    usage: "task <task>",
    summary: "Shows a deploy task: its status and the tail of its log.",
    args: &[TASK_ARG],
};

const CANCEL: CommandSpec = CommandSpec {
    name: "cancel",
    usage: "cancel <task>",
    summary: "Cancels a queued task, or stops a running one (it rolls back what it changed).",
    args: &[TASK_ARG],
};

const DEPLOY_COMPONENT: CommandSpec = CommandSpec {
    name: "deploy-component",
    usage: "deploy-component <component> <image-tag> <env>",
    summary: "Deploys one component's image build to a development or test environment.",
    args: &[
        arg("<component>", "the component, e.g. api"),
        arg("<image-tag>", "the image tag to run, e.g. feature-x-3f2a1c (or a sha256: digest)"),
        arg("<env>", "a development or test environment"),
    ],
};

const FREEZE: CommandSpec = CommandSpec {
    name: "freeze",
    usage: "freeze <env> <reason…>",
    summary: "Freezes an environment: no deploys until it is unfrozen.",
    args: &[ENV_ARG, arg("<reason…>", "why: the rest of the line, quoted or not")],
};

const UNFREEZE: CommandSpec = CommandSpec {
    name: "unfreeze",
    usage: "unfreeze <env>",
    summary: "Lifts an environment's freeze.",
    args: &[ENV_ARG],
};

const POLICY: CommandSpec = CommandSpec {
    name: "policy",
    usage: "policy <project>",
    summary: "Summarises a project's audit against the branch policy.",
    args: &[arg("<project>", "the GitLab project path, e.g. monitor/api")],
};

const ENVS: CommandSpec = CommandSpec {
    name: "envs",
    usage: "envs",
    summary: "Lists the environments with their tier and freeze.",
    args: &[],
};

const DAYS_ARG: ArgSpec = arg("[days <days>]", "days back from today, 1 to 366 (default 30)");

const DORA: CommandSpec = CommandSpec {
    name: "dora",
    usage: "dora <product> [env <env>] [days <days>]",
    summary: "Posts a product's deployments per day and its DORA numbers as a picture (as `tao report dora`).",
    args: &[PRODUCT_ARG, arg("[env <env>]", "only this environment; all when omitted"), DAYS_ARG],
};

const CFD: CommandSpec = CommandSpec {
    name: "cfd",
    usage: "cfd <product> [version <version>] [days <days>]",
    summary: "Posts a product's work items per state and day (cumulative flow) as a picture (as `tao report cfd`).",
    args: &[
        PRODUCT_ARG,
        arg("[version <version>]", "only the work items of this product version (its iteration)"),
        DAYS_ARG,
    ],
};

const HELP: CommandSpec = CommandSpec {
    name: "help",
    usage: "help [command]",
    summary: "Lists the commands, or explains one.",
    args: &[arg("[command]", "a command, e.g. deploy or release create")],
};

impl CommandName {
    /// The spec of this command.
    ///
    /// Why a command cannot be added without help text: every [`Command`] variant must be mapped to a
    /// `CommandName` by [`Command::name`], and every `CommandName` to its spec here, both by `match`es
    /// with no wildcard arm, so a new variant without a spec is a compile error ("non-exhaustive
    /// patterns"). [`CommandName::ALL`] comes from the same list as the enum (a macro), and the parser
    /// and `Display` match exhaustively too, so a new command must also be parsed and rendered.
    pub fn spec(self) -> &'static CommandSpec {
        match self {
            CommandName::Deploy => &DEPLOY,
            CommandName::Rollback => &ROLLBACK,
            CommandName::Status => &STATUS,
            CommandName::Releases => &RELEASES,
            CommandName::Release => &RELEASE,
            CommandName::ReleaseCreate => &RELEASE_CREATE,
            CommandName::Task => &TASK,
            CommandName::Cancel => &CANCEL,
            CommandName::DeployComponent => &DEPLOY_COMPONENT,
            CommandName::Freeze => &FREEZE,
            CommandName::Unfreeze => &UNFREEZE,
            CommandName::Policy => &POLICY,
            CommandName::Envs => &ENVS,
            CommandName::Dora => &DORA,
            CommandName::Cfd => &CFD,
            CommandName::Help => &HELP,
        }
    }

    /// The words that name the command: `deploy`, `release create`.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }
}

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Command {
    /// The command's name (exhaustive: see [`CommandName::spec`]).
    pub fn name(&self) -> CommandName {
        match self {
            Command::Deploy { .. } => CommandName::Deploy,
            Command::Rollback { .. } => CommandName::Rollback,
            Command::Status { .. } => CommandName::Status,
            Command::Releases { .. } => CommandName::Releases,
            Command::Release { .. } => CommandName::Release,
            Command::ReleaseCreate { .. } => CommandName::ReleaseCreate,
            Command::Task { .. } => CommandName::Task,
            Command::Cancel { .. } => CommandName::Cancel,
            Command::DeployComponent { .. } => CommandName::DeployComponent,
            Command::Freeze { .. } => CommandName::Freeze,
            Command::Unfreeze { .. } => CommandName::Unfreeze,
            Command::Policy { .. } => CommandName::Policy,
            Command::Envs => CommandName::Envs,
            Command::Dora { .. } => CommandName::Dora,
            Command::Cfd { .. } => CommandName::Cfd,
            Command::Help { .. } => CommandName::Help,
        }
    }
}

/// The canonical command line, without the `/tao` prefix: `deploy monitor 1.1.0 env-1 ops force`.
/// Versions lose their `v`; a freeze reason is quoted when it is not one plain word.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        match self {
            Command::Deploy { product, version, env, components, force, confirm } => {
                write!(f, " {product} {version} {env}")?;
                for component in components {
                    write!(f, " {component}")?;
                }
                flag(f, "force", *force)?;
                flag(f, "confirm", *confirm)
            }
            Command::Rollback { env, to, confirm } => {
                write!(f, " {env}")?;
                if let Some(version) = to {
                    write!(f, " to {version}")?;
                }
                flag(f, "confirm", *confirm)
            }
            Command::Status { env } | Command::Unfreeze { env } => write!(f, " {env}"),
            Command::Releases { product } => write!(f, " {product}"),
            Command::Release { product, version } => write!(f, " {product} {version}"),
            Command::ReleaseCreate { product, version, components } => {
                write!(f, " {product} {version}")?;
                for (component, version) in components {
                    write!(f, " {component}={version}")?;
                }
                Ok(())
            }
            Command::Task { id } | Command::Cancel { id } => write!(f, " {id}"),
            Command::DeployComponent { component, image_tag, env } => write!(f, " {component} {image_tag} {env}"),
            Command::Freeze { env, reason } => write!(f, " {env} {}", quote(reason)),
            Command::Policy { project } => write!(f, " {project}"),
            Command::Envs => Ok(()),
            Command::Dora { product, env, days } => {
                write!(f, " {product}")?;
                if let Some(env) = env {
                    write!(f, " env {env}")?;
                }
                days.map_or(Ok(()), |d| write!(f, " days {d}"))
            }
            Command::Cfd { product, version, days } => {
                write!(f, " {product}")?;
                if let Some(version) = version {
                    write!(f, " version {version}")?;
                }
                days.map_or(Ok(()), |d| write!(f, " days {d}"))
            }
            Command::Help { command } => match command {
                Some(name) => write!(f, " {name}"),
                None => Ok(()),
            },
        }
    }
}

fn flag(f: &mut fmt::Formatter<'_>, word: &str, on: bool) -> fmt::Result {
    if on {
        write!(f, " {word}")
    } else {
        Ok(())
    }
}

/// A word as the tokenizer reads it back: as is when it is plain, else in double quotes with `"` and `\`
/// escaped.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty() && !word.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'));
    if plain {
        return word.to_owned();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
