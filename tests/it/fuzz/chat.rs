//! The chat grammar target (`tao::chat`): one text is read every way a front end reads commands — as a
//! command line (`parse_line`: the CLI, an MR comment's line), as a whole MR comment (`parse_comment`),
//! as separate words (`parse_args`) and as a named command's arguments (`parse_named`: Discord).
//!
//! Properties: nothing panics; every accepted command renders to a line that reads back as the same
//! command and renders the same again; every command found in a comment is what `parse_line` makes of
//! the text after its `/tao` (error columns moved by the text before it); words without quotes mean the
//! same to `parse_args` as to `parse_line`; a rejection names its command's usage when it names a
//! command. A text holding U+001F is a `parse_named` input: the command name, then each argument,
//! separated by U+001F (an argument may hold spaces, as a Discord option may).

use proptest::prelude::*;
use tao::chat::{parse_args, parse_comment, parse_line, parse_named, Command, CommandName, ParseError, PREFIX};

use super::mutate;

/// The fixture directory of this target.
pub const TARGET: &str = "chat";

/// Separates a command name and its arguments in a `parse_named` input.
const UNIT: char = '\u{1f}';

/// Words of the grammar, for generated lines and for mutations to insert.
const TOKENS: &[&str] = &[
    "/tao ",
    "deploy",
    "rollback",
    "status",
    "releases",
    "release",
    "release create",
    "create",
    "crate",
    "task",
    "cancel",
    "deploy-component",
    "freeze",
    "unfreeze",
    "policy",
    "envs",
    "dora",
    "cfd",
    "help",
    "deplyo",
    "Deploy",
    "monitor",
    "env-1",
    "prod",
    "ops",
    "api",
    "sql",
    "self-monitor",
    "to",
    "confirm",
    "force",
    "--force",
    "Confirm",
    "forse",
    "env",
    "days",
    "version",
    "1.1.0",
    "v1.2.0",
    "1.2.0-rc.1",
    "1.0.0+build.5",
    "v",
    "1.0",
    "01.0.0",
    "18446744073709551616.0.0",
    "42",
    "#42",
    "#",
    "0",
    "-1",
    "9223372036854775807",
    "9223372036854775808",
    "366",
    "367",
    "030",
    "feature-x-3f2a1c",
    "sha256:3f2a1c3f2a1c3f2a1c3f2a1c3f2a1c3f2a1c3f2a1c3f2a1c3f2a1c3f2a1c3f2a",
    ".bad",
    "ops=1.2.0",
    "sql=v1.0.0",
    "ops=",
    "=1.0.0",
    "ops,sql",
    ",",
    "monitor/api",
    "group/sub.group/my_project",
    "../x",
    "a//b",
    "'db migration'",
    "\"db \\\"migration\\\"\"",
    "\"unterminated",
    "'",
    "it's",
    "\u{1f}",
    "```",
    "~~~",
    ">>>",
    "> ",
    "    ",
];

/// Whitespace as the tokenizer sees it (Unicode `White_Space`), the odd kinds included.
const SEPARATORS: &[&str] = &[" ", " ", " ", "  ", "\t", "\u{3000}", "\u{85}", "\u{a0}", "\u{2028}"];

fn word() -> impl Strategy<Value = String> {
    let plain = prop_oneof![
        6 => proptest::sample::select(TOKENS).prop_map(str::to_owned),
        2 => "[a-z0-9][a-z0-9-]{0,64}",
        2 => r"v?[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(-[a-z0-9.]{1,5})?(\+[a-z0-9]{1,4})?",
        1 => "#?[0-9]{1,20}",
        1 => "[A-Za-z0-9_.-][A-Za-z0-9_.-]{0,130}",
        1 => "sha256:[0-9a-f]{63,65}",
        1 => "[a-z.]{1,5}(/[a-z._-]{0,5}){1,3}",
        1 => "[a-z]{1,4}=v?[0-9]\\.[0-9]\\.[0-9]",
        1 => proptest::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
    ];
    (plain, 0u8..10).prop_map(|(word, quoting)| match quoting {
        0 => format!("'{word}'"),
        1 => format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\"")),
        2 => format!("\"{word}"),
        _ => word,
    })
}

/// A command line: a verb (or a near miss) and arguments, separated by any whitespace.
fn line() -> impl Strategy<Value = String> {
    let verb = prop_oneof![
        4 => proptest::sample::select(CommandName::ALL).prop_map(|n| n.as_str().to_owned()),
        1 => word(),
    ];
    let separator = proptest::sample::select(SEPARATORS);
    (
        proptest::option::of(separator.clone()),
        verb,
        proptest::collection::vec((separator.clone(), word()), 0..8),
        proptest::option::of(separator),
    )
        .prop_map(|(lead, verb, args, trail)| {
            let mut out = lead.unwrap_or_default().to_owned();
            out.push_str(&verb);
            for (sep, arg) in args {
                out.push_str(sep);
                out.push_str(&arg);
            }
            out.push_str(trail.unwrap_or_default());
            out
        })
}

/// Indentation before a command line (four columns and more is code after a blank line).
const INDENTS: &[&str] = &[" ", "  ", "\t", "   ", "    "];

/// Comment lines that are not commands, or hide the ones after them.
const PROSE: &[&str] = &[
    "",
    "Looks good.",
    "> /tao envs",
    ">>>",
    "```",
    "```yaml",
    "````",
    "~~~",
    "    /tao envs",
    "/taostatus env-1",
    "/TAO status env-1",
    "- /tao status env-1",
    "  > > /tao envs",
    "`/tao envs`",
];

/// An MR comment: command lines among prose, quotes, fences and indented code.
fn comment() -> impl Strategy<Value = String> {
    let comment_line = prop_oneof![
        4 => line().prop_map(|l| format!("{PREFIX} {l}")),
        1 => (proptest::sample::select(INDENTS), line()).prop_map(|(i, l)| format!("{i}{PREFIX} {l}")),
        1 => Just(PREFIX.to_owned()),
        1 => proptest::sample::select(PROSE).prop_map(str::to_owned),
    ];
    (proptest::collection::vec(comment_line, 1..10), any::<bool>())
        .prop_map(|(lines, crlf)| lines.join(if crlf { "\r\n" } else { "\n" }))
}

/// A Discord-style call: a command name and its arguments as separate values.
fn named() -> impl Strategy<Value = String> {
    let argument = prop_oneof![
        4 => word(),
        1 => (word(), proptest::sample::select(SEPARATORS), word()).prop_map(|(a, s, b)| format!("{a}{s}{b}")),
        1 => Just(String::new()),
    ];
    (proptest::sample::select(CommandName::ALL), proptest::collection::vec(argument, 0..7)).prop_map(|(name, args)| {
        let mut out = name.as_str().to_owned();
        for arg in args {
            out.push(UNIT);
            out.push_str(&arg);
        }
        out
    })
}

/// Generated lines, comments and named calls, and mutations of the seeds.
pub fn strategy(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => mutate::mutations(seeds, TOKENS, &[]),
        3 => line().prop_map(String::into_bytes),
        2 => comment().prop_map(String::into_bytes),
        1 => named().prop_map(String::into_bytes),
    ]
}

/// An accepted command renders to a line that reads back as itself, and renders the same again.
fn round_trip(origin: &str, command: &Command) -> Result<(), String> {
    let line = command.to_string();
    if !line.starts_with(command.name().as_str()) {
        return Err(format!("{origin} gave {command:?}, rendered as {line:?}, which does not start with its name"));
    }
    match parse_line(&line) {
        Ok(again) if again == *command && again.to_string() == line => Ok(()),
        Ok(again) => Err(format!("{origin} gave {command:?}, rendered as {line:?}, which reads back as {again:?}")),
        Err(e) => Err(format!("{origin} gave {command:?}, rendered as {line:?}, which is rejected: {e}")),
    }
}

/// A rejection is worded, and names the usage of the command it names.
fn rejection(origin: &str, e: &ParseError) -> Result<(), String> {
    if e.to_string().is_empty() {
        return Err(format!("{origin}: a rejection without words: {e:?}"));
    }
    if e.command.is_some() != e.usage().is_some() {
        return Err(format!("{origin}: a rejection of a command without its usage: {e:?}"));
    }
    Ok(())
}

fn parsed(origin: &str, result: &Result<Command, ParseError>) -> Result<(), String> {
    match result {
        Ok(command) => round_trip(origin, command),
        Err(e) => rejection(origin, e),
    }
}

/// `freeze` reasons with their whitespace made single spaces (`parse_args` joins words with one).
fn spaced(result: Result<Command, ParseError>) -> Result<Command, ParseError> {
    result.map(|command| match command {
        Command::Freeze { env, reason } => {
            Command::Freeze { env, reason: reason.split_whitespace().collect::<Vec<_>>().join(" ") }
        }
        other => other,
    })
}

fn comment_commands(text: &str) -> Result<(), String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut previous = 0;
    for found in parse_comment(text) {
        if found.line <= previous || found.line > lines.len() {
            return Err(format!("comment command at line {} after line {previous} of {}", found.line, lines.len()));
        }
        previous = found.line;
        let line = lines[found.line - 1];
        let line = line.strip_suffix('\r').unwrap_or(line);
        let body = line.trim_start_matches([' ', '\t']);
        if found.text != body.trim_end() || !found.text.starts_with(PREFIX) {
            return Err(format!("line {} is {line:?} but the command's text is {:?}", found.line, found.text));
        }
        let args = &body[PREFIX.len()..];
        let before = line[..line.len() - args.len()].chars().count();
        let origin = format!("comment line {} {line:?}", found.line);
        parsed(&origin, &found.result)?;
        let alone = parse_line(args).map_err(|mut e| {
            if let tao::chat::ParseErrorKind::UnterminatedQuote { column, .. } = &mut e.kind {
                *column += before;
            }
            e
        });
        if found.result != alone {
            return Err(format!("{origin} reads as {:?} in the comment but as {alone:?} alone", found.result));
        }
    }
    Ok(())
}

fn named_call(text: &str) -> Result<(), String> {
    let mut parts = text.split(UNIT);
    let verb = parts.next().unwrap_or_default();
    let args: Vec<&str> = parts.collect();
    let Some(name) = CommandName::ALL.iter().copied().find(|n| n.as_str() == verb) else {
        // Not a command name: every command reads the values as its arguments.
        for &name in CommandName::ALL {
            parsed(&format!("parse_named({name:?}, {args:?})"), &parse_named(name, &args))?;
        }
        return Ok(());
    };
    parsed(&format!("parse_named({name:?}, {args:?})"), &parse_named(name, &args))
}

/// Checks one input (see the module header).
pub fn check(input: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(input);
    let text = text.as_ref();
    if text.contains(UNIT) {
        return named_call(text);
    }
    let line = parse_line(text);
    parsed(&format!("parse_line({text:?})"), &line)?;
    comment_commands(text)?;
    let words: Vec<&str> = text.split_whitespace().collect();
    if let Some((verb, rest)) = words.split_first() {
        let rest: Vec<String> = rest.iter().map(|w| (*w).to_owned()).collect();
        let by_words = parse_args(verb, &rest);
        parsed(&format!("parse_args({verb:?}, {rest:?})"), &by_words)?;
        if !text.contains(['"', '\'']) && spaced(by_words.clone()) != spaced(line.clone()) {
            return Err(format!("{text:?} reads as {line:?} as a line but as {by_words:?} as words"));
        }
        for &name in CommandName::ALL {
            let words: Vec<&str> = words.iter().skip(name.as_str().split(' ').count()).copied().collect();
            parsed(&format!("parse_named({name:?}, {words:?})"), &parse_named(name, &words))?;
        }
    }
    Ok(())
}
