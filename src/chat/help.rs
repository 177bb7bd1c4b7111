//! `help`: the overview of all commands and the page of one, generated from the [`CommandSpec`]s.
//!
//! Owns the wording and layout of help (Markdown that reads as plain text too, for MR comments, Discord
//! and the terminal). Must not hold help text of its own: everything comes from the specs, so a new
//! command's help cannot be forgotten (see [`CommandName::spec`]).

use std::fmt::Write;

use super::command::{CommandName, CommandSpec};

/// The help for `help [command]`: the overview when `None`, else the command's page.
pub fn help(command: Option<CommandName>) -> String {
    match command {
        None => overview(),
        Some(name) => page(name.spec()),
    }
}

/// Every command's usage and summary, one per line, in [`CommandName::ALL`] order.
pub fn overview() -> String {
    let mut out = String::from("Commands:\n");
    for name in CommandName::ALL {
        let spec = name.spec();
        let _ = writeln!(out, "- `{}`: {}", spec.usage, spec.summary);
    }
    out.push_str("\nArguments with spaces go in quotes. `help <command>` explains one command.\n");
    out
}

/// One command: usage, summary and each argument.
pub fn page(spec: &CommandSpec) -> String {
    let mut out = format!("`{}`\n\n{}\n", spec.usage, spec.summary);
    if !spec.args.is_empty() {
        out.push('\n');
        for arg in spec.args {
            let _ = writeln!(out, "- `{}`: {}", arg.syntax, arg.help);
        }
    }
    out
}
