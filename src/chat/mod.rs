//! Chat commands: the one grammar of `/tao` MR comments, Discord and the CLI's chat commands.
//!
//! Owns the [`Command`] enum and its names and specs (`command`), reading commands from a line, from
//! separate words or from a whole MR comment (`parse`, `comment`), the wording of rejections with
//! did-you-mean hints (`error`) and the help generated from the specs (`help`). Pure: no I/O, no async,
//! no catalog lookups. Whether a product, version or environment exists, who may run what and the
//! `confirm` rule for production belong to the dispatcher, which takes a [`Command`] from here.

mod command;
mod comment;
mod error;
mod help;
mod parse;

#[cfg(test)]
mod tests;

pub use command::{quote, ArgSpec, Command, CommandName, CommandSpec, ImageTag, TaskId, DEPLOY_FLAGS};
pub use comment::{parse_comment, CommentCommand, PREFIX};
pub use error::{ParseError, ParseErrorKind};
pub use help::{help, overview, page};
pub use parse::{parse_args, parse_line, parse_named};
