//! Finding commands in an MR comment: the lines that start with `/tao`, outside code and quotes.
//!
//! Owns which lines of a Markdown comment are commands: `/tao` (case-sensitive) at the start of a line,
//! after optional spaces or tabs, followed by whitespace or the end of the line. Skipped: fenced code
//! blocks (```` ``` ```` and `~~~`, indented or not, unclosed ones to the end of the comment), indented
//! code (four columns after a blank line or at the start), quoted lines (`>`) and GitLab's multi-line
//! quotes (`>>>` … `>>>`). A line right after a quote without `>` is not quoted here, although
//! CommonMark renders it inside the quote (lazy continuation): its author typed it. LF, CRLF.

use super::command::Command;
use super::error::ParseError;
use super::parse::parse_line;

/// The command prefix in comments.
pub const PREFIX: &str = "/tao";

/// One command line found in a comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommentCommand {
    /// 1-based line number in the comment.
    pub line: usize,
    /// The line from the prefix on, trailing whitespace removed: `/tao deploy monitor 1.1.0 env-1`.
    pub text: String,
    /// The command, or why not; error columns count from the start of the line.
    pub result: Result<Command, ParseError>,
}

/// Where the scan is.
#[derive(Clone, Copy)]
enum Block {
    /// Ordinary text.
    Text,
    /// Inside a fenced code block opened by `len` times `fence`.
    Fence { fence: char, len: usize },
    /// Inside GitLab's `>>>` quote.
    Quote,
    /// Inside an indented code block.
    Indented,
}

/// Every `/tao` command line of a comment, in order, each parsed.
pub fn parse_comment(text: &str) -> Vec<CommentCommand> {
    let mut found = Vec::new();
    let mut block = Block::Text;
    // Indented code may start at the beginning or after a blank line (it cannot interrupt a paragraph).
    let mut after_blank = true;
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let blank = line.trim().is_empty();
        match block {
            Block::Fence { fence, len } => {
                if closes_fence(line, fence, len) {
                    block = Block::Text;
                    after_blank = true;
                }
                continue;
            }
            Block::Quote => {
                if line.trim() == ">>>" {
                    block = Block::Text;
                    after_blank = true;
                }
                continue;
            }
            Block::Indented if blank || indent(line) >= 4 => continue,
            Block::Indented | Block::Text => block = Block::Text,
        }
        if blank {
            after_blank = true;
            continue;
        }
        if indent(line) >= 4 && after_blank {
            block = Block::Indented;
            continue;
        }
        after_blank = false;
        let body = line.trim_start_matches([' ', '\t']);
        if let Some((fence, len)) = opens_fence(body) {
            block = Block::Fence { fence, len };
        } else if body.trim_end() == ">>>" {
            block = Block::Quote;
        } else if body.starts_with('>') {
            continue;
        } else if let Some(args) = command_args(body) {
            let column = line.len() - args.len();
            let column = line[..column].chars().count();
            found.push(CommentCommand {
                line: i + 1,
                text: body.trim_end().to_owned(),
                result: parse_line(args).map_err(|e| e.shifted(column)),
            });
        }
    }
    found
}

/// The text after the prefix, if `body` starts with it followed by whitespace or nothing.
fn command_args(body: &str) -> Option<&str> {
    let rest = body.strip_prefix(PREFIX)?;
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then_some(rest)
}

/// Leading indentation in columns (a tab advances to the next multiple of four).
fn indent(line: &str) -> usize {
    let mut width = 0;
    for c in line.chars() {
        match c {
            ' ' => width += 1,
            '\t' => width += 4 - width % 4,
            _ => break,
        }
    }
    width
}

/// A fence opening: three or more backticks or tildes (a backtick fence's info string has no backtick).
fn opens_fence(body: &str) -> Option<(char, usize)> {
    let fence = body.chars().next().filter(|c| matches!(c, '`' | '~'))?;
    let len = body.chars().take_while(|c| *c == fence).count();
    let info = &body[len..];
    (len >= 3 && !(fence == '`' && info.contains('`'))).then_some((fence, len))
}

/// A fence closing: at least `len` times `fence` and nothing else but whitespace.
fn closes_fence(line: &str, fence: char, len: usize) -> bool {
    let body = line.trim();
    body.chars().all(|c| c == fence) && body.chars().count() >= len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(line, canonical command or error message)` of every command line found.
    fn found(text: &str) -> Vec<(usize, String)> {
        parse_comment(text)
            .into_iter()
            .map(|c| (c.line, c.result.map(|cmd| cmd.to_string()).unwrap_or_else(|e| format!("error: {e}"))))
            .collect()
    }

    fn lines(pairs: &[(usize, &str)]) -> Vec<(usize, String)> {
        pairs.iter().map(|(n, s)| (*n, s.to_string())).collect()
    }

    #[test]
    fn commands_start_a_line_with_the_prefix() {
        let text = "Looks good.\n/tao deploy monitor 1.1.0 env-1\n  /tao status env-1\n\t/tao envs\n\
                    please /tao status env-2\n/taostatus env-1\n/TAO status env-1\n- /tao status env-3\n\
                    `/tao status env-4`\n/tao\n/tao\tunfreeze env-1";
        assert_eq!(
            found(text),
            lines(&[
                (2, "deploy monitor 1.1.0 env-1"),
                (3, "status env-1"),
                (4, "envs"),
                (
                    10,
                    "error: missing command (expected one of: deploy, rollback, status, releases, release, task, \
                      cancel, deploy-component, freeze, unfreeze, policy, envs, dora, cfd, help)"
                ),
                (11, "unfreeze env-1"),
            ])
        );
        let first = &parse_comment(text)[0];
        assert_eq!(first.text, "/tao deploy monitor 1.1.0 env-1");
    }

    #[test]
    fn several_commands_and_errors_keep_their_line_numbers() {
        let text = "/tao freeze env-1 db migration tonight\n\n/tao deplyo monitor 1.1.0 env-1\n\
                    /tao freeze env-2 \"db migration\"\n/tao unfreeze env-1";
        assert_eq!(
            found(text),
            lines(&[
                (1, "freeze env-1 \"db migration tonight\""),
                (3, "error: unknown command \"deplyo\" (did you mean \"deploy\"?)"),
                (4, "freeze env-2 \"db migration\""),
                (5, "unfreeze env-1"),
            ])
        );
    }

    #[test]
    fn crlf_line_endings() {
        let text =
            "Deploying:\r\n/tao deploy monitor 1.1.0 env-1 force\r\n```\r\n/tao envs\r\n```\r\n/tao status env-1\r\n";
        assert_eq!(found(text), lines(&[(2, "deploy monitor 1.1.0 env-1 force"), (6, "status env-1")]));
        assert_eq!(parse_comment(text)[0].text, "/tao deploy monitor 1.1.0 env-1 force");
    }

    #[test]
    fn fenced_code_is_ignored() {
        let text = "```\n/tao envs\n```\n~~~sh\n/tao envs\n~~~\n  ```yaml\n/tao envs\n  ```\n\
                    ````\n```\n/tao envs\n````\n~~~\n```\n/tao envs\n~~~~\n/tao status env-1\n```\n/tao envs";
        assert_eq!(found(text), lines(&[(18, "status env-1")]));
    }

    #[test]
    fn indented_code_is_ignored_but_not_an_indented_paragraph_line() {
        let text = "    /tao envs\n\nsome text\n\n    /tao envs\n\n\t/tao envs\n    more code\n\n\
                    /tao status env-1\nparagraph\n    /tao status env-2";
        assert_eq!(found(text), lines(&[(10, "status env-1"), (12, "status env-2")]));
    }

    #[test]
    fn quotes_are_ignored() {
        let text = "> /tao deploy monitor 1.1.0 prod confirm\n>/tao envs\n  > > /tao envs\n>>>\n/tao envs\n\
                    quoted\n>>>\n/tao status env-1";
        assert_eq!(found(text), lines(&[(8, "status env-1")]));
    }

    #[test]
    fn error_columns_count_from_the_start_of_the_line() {
        let found = parse_comment("text\n  /tao freeze \"env-1 db");
        let e = found[0].result.as_ref().unwrap_err();
        assert_eq!(e.to_string(), "unterminated \" quote opened at column 15");
    }
}
