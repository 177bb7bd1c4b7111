//! Chat commands: the one grammar of `/tao` MR comments, Discord and the CLI's chat commands.
//!
//! Owns the [`Command`] enum and its names and specs (`command`), the typed argument values that are
//! not catalog names (`arg`), reading commands from a line, from separate words or from a whole MR
//! comment (`parse`, `comment`), the wording of rejections with did-you-mean hints (`error`) and the help
//! generated from the specs (`help`): all pure (no I/O, no catalog lookups). `dispatch` is impure: it
//! authorizes a parsed command for a chat user, acts through the services (the pictures of `dora` and
//! `cfd` in `picture`), audits and replies; a reply may carry a file (a PNG) that each transport delivers
//! its own way. Transports (MR comments in `chat::mr_comment`, Discord in `discord`) only convert to and from
//! it. `discord` is the Discord adapter (signature check, slash commands, its REST client, progress
//! edits); it does I/O but decides nothing. Notifications are `crate::notify`.

mod arg;
mod command;
mod comment;
pub mod discord;
pub mod dispatch;
mod error;
mod help;
pub mod mr_comment;
mod parse;
mod picture;

#[cfg(test)]
mod tests;

pub use command::{quote, ArgSpec, Command, CommandName, CommandSpec, Days, ImageTag, TaskId, DEPLOY_FLAGS};
pub use comment::{parse_comment, CommentCommand, PREFIX};
pub use error::{ParseError, ParseErrorKind};
pub use help::{help, overview, page};
pub use parse::{parse_args, parse_line, parse_named};
