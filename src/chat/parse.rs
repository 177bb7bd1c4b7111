//! Reading one command: a line of words into a [`Command`], or a [`ParseError`] saying what was expected.
//!
//! Owns the tokenizer (whitespace-separated words; `'…'` literal; `"…"` with `\"` and `\\` escapes;
//! adjacent pieces join into one word), command-name lookup with did-you-mean hints, and each command's
//! argument grammar. Values are validated with the catalog's types (names, versions with `v` dropped,
//! project paths) but never looked up: pure, no I/O.

use super::command::{Command, CommandName, Days, ImageTag, TaskId, DEPLOY_FLAGS};
use super::error::{ParseError, ParseErrorKind};
use crate::catalog::{suggest, ComponentName, Name, NameError, ProjectPath, ProjectPathError, Version, VersionError};

/// Parses one command line without its prefix: `deploy monitor 1.1.0 env-1`.
///
/// `freeze` takes the rest of the line after `<env>` as its reason: one quoted word is unquoted, anything
/// else is kept as typed (so apostrophes in a reason need no quoting).
pub fn parse_line(line: &str) -> Result<Command, ParseError> {
    let mut lexer = Lexer::new(line);
    let Some(verb) = lexer.next_word()? else {
        return Err(ParseError::new(None, ParseErrorKind::MissingCommand));
    };
    let mut args = Vec::new();
    if verb == "freeze" {
        if let Some(env) = lexer.next_word()? {
            args.push(env);
        }
        let rest = lexer.rest().trim();
        if !rest.is_empty() {
            args.push(unquote_whole(rest));
        }
    } else {
        while let Some(word) = lexer.next_word()? {
            args.push(word);
        }
    }
    parse_args(&verb, &args)
}

/// Parses a command from its verb and its arguments as separate words (what the CLI and Discord
/// converters have). `verb` may hold several words (`release create`); `release` followed by the
/// argument `create` is `release create` too. The reason of `freeze` is its remaining words joined by
/// spaces.
pub fn parse_args(verb: &str, args: &[String]) -> Result<Command, ParseError> {
    let words: Vec<&str> = verb.split_whitespace().chain(args.iter().map(String::as_str)).collect();
    let Some(first) = words.first() else {
        return Err(ParseError::new(None, ParseErrorKind::MissingCommand));
    };
    let Some((name, used)) = lookup(&words) else {
        return Err(unknown_command(None, first));
    };
    parse_named(name, &words[used..])
}

/// Parses the arguments of a command whose name is already known (a Discord subcommand, say).
pub fn parse_named(name: CommandName, args: &[&str]) -> Result<Command, ParseError> {
    let mut a = Args { name, words: args, next: 0 };
    let command = match name {
        CommandName::Deploy => {
            let (product, version, env) = (a.name_arg("<product>")?, a.version("<version>")?, a.name_arg("<env>")?);
            let (mut components, mut force, mut confirm) = (Vec::new(), false, false);
            while let Some(word) = a.take() {
                match word {
                    "force" => force = true,
                    "confirm" => confirm = true,
                    _ => {
                        for part in word.split(',').filter(|p| !p.is_empty()) {
                            // A flag is a word of its own: `force,` is neither the flag nor a component
                            // (a component named like a flag cannot be picked from chat).
                            if DEPLOY_FLAGS.contains(&part) {
                                return Err(a.unexpected(word, Some(part.to_owned())));
                            }
                            let component = a.component(part)?;
                            if !components.contains(&component) {
                                components.push(component);
                            }
                        }
                    }
                }
            }
            Command::Deploy { product, version, env, components, force, confirm }
        }
        CommandName::Rollback => {
            let env = a.name_arg("<env>")?;
            let (mut to, mut confirm) = (None, false);
            while let Some(word) = a.take() {
                match word {
                    "to" if to.is_none() => to = Some(a.version("<version>")?),
                    "confirm" => confirm = true,
                    _ if to.is_none() && Version::parse(word).is_ok() => {
                        return Err(a.unexpected(word, Some(format!("to {word}"))));
                    }
                    _ => return Err(a.unexpected(word, suggest(word, ["to", "confirm"]).map(str::to_owned))),
                }
            }
            Command::Rollback { env, to, confirm }
        }
        CommandName::Status => Command::Status { env: a.name_arg("<env>")? },
        CommandName::Releases => Command::Releases { product: a.name_arg("<product>")? },
        CommandName::Release => {
            if args.len() > 2 && suggest(args[0], ["create"]).is_some() {
                return Err(a.unexpected(args[0], Some("create".to_owned())));
            }
            let product: crate::catalog::ProductName = a.name_arg("<product>")?;
            // `release create …` creates a product version: a product named `create` cannot be shown
            // from chat (its line would read back as `release create`).
            if product.as_str() == "create" {
                let expected = "a product name other than create (release create makes a product version)";
                return Err(a.invalid("<product>", expected, "create"));
            }
            Command::Release { product, version: a.version("<version>")? }
        }
        CommandName::ReleaseCreate => {
            let (product, version) = (a.name_arg("<product>")?, a.version("<version>")?);
            a.more("<component>=<version>…")?;
            let mut components: Vec<(ComponentName, Version)> = Vec::new();
            while let Some(word) = a.take() {
                let pair = a.component_version(word)?;
                if components.iter().any(|(c, _)| *c == pair.0) {
                    return Err(a.error(ParseErrorKind::Duplicate { word: pair.0.to_string() }));
                }
                components.push(pair);
            }
            Command::ReleaseCreate { product, version, components }
        }
        CommandName::Task => Command::Task { id: a.task()? },
        CommandName::Cancel => Command::Cancel { id: a.task()? },
        CommandName::DeployComponent => {
            let component = a.name_arg("<component>")?;
            let word = a.require("<image-tag>")?;
            let image_tag = ImageTag::parse(word).ok_or_else(|| a.invalid("<image-tag>", ImageTag::EXPECTED, word))?;
            Command::DeployComponent { component, image_tag, env: a.name_arg("<env>")? }
        }
        CommandName::Freeze => {
            let env = a.name_arg("<env>")?;
            let reason = a.rest().join(" ");
            if reason.trim().is_empty() {
                return Err(a.error(ParseErrorKind::Missing { arg: "<reason…>" }));
            }
            Command::Freeze { env, reason }
        }
        CommandName::Unfreeze => Command::Unfreeze { env: a.name_arg("<env>")? },
        CommandName::Policy => {
            let word = a.require("<project>")?;
            let project =
                ProjectPath::parse(word).map_err(|_| a.invalid("<project>", ProjectPathError::EXPECTED, word))?;
            Command::Policy { project }
        }
        CommandName::Envs => Command::Envs,
        CommandName::Dora => {
            let product = a.name_arg("<product>")?;
            let (mut env, mut days) = (None, None);
            while let Some(word) = a.take() {
                match word {
                    "env" if env.is_none() => env = Some(a.name_arg("<env>")?),
                    "days" if days.is_none() => days = Some(a.days()?),
                    _ => return Err(a.keyword_expected(word, &["env", "days"])),
                }
            }
            Command::Dora { product, env, days }
        }
        CommandName::Cfd => {
            let product = a.name_arg("<product>")?;
            let (mut version, mut days) = (None, None);
            while let Some(word) = a.take() {
                match word {
                    "version" if version.is_none() => version = Some(a.version("<version>")?),
                    "days" if days.is_none() => days = Some(a.days()?),
                    _ => return Err(a.keyword_expected(word, &["version", "days"])),
                }
            }
            Command::Cfd { product, version, days }
        }
        CommandName::Help => {
            let rest = a.rest();
            if rest.is_empty() {
                Command::Help { command: None }
            } else {
                match lookup(rest) {
                    Some((command, used)) if used == rest.len() => Command::Help { command: Some(command) },
                    Some((_, used)) => return Err(a.unexpected(rest[used], None)),
                    None => return Err(unknown_command(Some(CommandName::Help), rest[0])),
                }
            }
        }
    };
    a.end()?;
    Ok(command)
}

/// The command named by the first words, preferring the longest name, and how many words it used.
fn lookup(words: &[&str]) -> Option<(CommandName, usize)> {
    CommandName::ALL
        .iter()
        .filter_map(|&name| {
            let parts: Vec<&str> = name.as_str().split(' ').collect();
            let matches = words.len() >= parts.len() && parts.iter().zip(words).all(|(p, w)| p == w);
            matches.then_some((name, parts.len()))
        })
        .max_by_key(|(_, used)| *used)
}

fn unknown_command(command: Option<CommandName>, word: &str) -> ParseError {
    let verbs = CommandName::ALL.iter().map(|n| n.as_str()).filter(|n| !n.contains(' '));
    let suggestion = suggest(word, verbs).map(str::to_owned);
    ParseError::new(command, ParseErrorKind::UnknownCommand { word: word.to_owned(), suggestion })
}

/// The arguments of one command, consumed left to right.
struct Args<'w, 's> {
    name: CommandName,
    words: &'w [&'s str],
    next: usize,
}

impl<'w, 's> Args<'w, 's> {
    fn error(&self, kind: ParseErrorKind) -> ParseError {
        ParseError::new(Some(self.name), kind)
    }

    fn invalid(&self, arg: impl Into<String>, expected: &'static str, found: &str) -> ParseError {
        self.error(ParseErrorKind::Invalid { arg: arg.into(), expected, found: found.to_owned() })
    }

    fn unexpected(&self, word: &str, suggestion: Option<String>) -> ParseError {
        self.error(ParseErrorKind::Unexpected { word: word.to_owned(), suggestion })
    }

    fn take(&mut self) -> Option<&'s str> {
        let word = self.words.get(self.next).copied()?;
        self.next += 1;
        Some(word)
    }

    /// The next word; `Missing { arg }` when there is none.
    fn require(&mut self, arg: &'static str) -> Result<&'s str, ParseError> {
        self.more(arg)?;
        Ok(self.take().unwrap_or_default())
    }

    /// `Missing { arg }` unless a word is left (without taking it).
    fn more(&self, arg: &'static str) -> Result<(), ParseError> {
        match self.words.get(self.next) {
            Some(_) => Ok(()),
            None => Err(self.error(ParseErrorKind::Missing { arg })),
        }
    }

    fn rest(&mut self) -> &'w [&'s str] {
        let rest = &self.words[self.next..];
        self.next = self.words.len();
        rest
    }

    /// A product, environment or component name (which one, the command's field says).
    fn name_arg<N: From<Name>>(&mut self, arg: &'static str) -> Result<N, ParseError> {
        let word = self.require(arg)?;
        Name::parse(word).map(N::from).map_err(|_| self.invalid(arg, NameError::EXPECTED, word))
    }

    fn version(&mut self, arg: &'static str) -> Result<Version, ParseError> {
        let word = self.require(arg)?;
        Version::parse(word).map_err(|_| self.invalid(arg, VersionError::EXPECTED, word))
    }

    fn days(&mut self) -> Result<Days, ParseError> {
        let word = self.require("<days>")?;
        Days::parse(word).ok_or_else(|| self.invalid("<days>", Days::EXPECTED, word))
    }

    /// `word` where one of the optional `keywords` (each followed by its value) was expected: a value
    /// without its keyword suggests `<keyword> <value>` (a number is days before it is a name), anything
    /// else the nearest keyword.
    fn keyword_expected(&self, word: &str, keywords: &[&'static str]) -> ParseError {
        let owner = |k: &str| match k {
            "days" => Days::parse(word).is_some(),
            "version" => Version::parse(word).is_ok(),
            _ => Name::parse(word).is_ok(),
        };
        let suggestion = match suggest(word, keywords.iter().copied()) {
            Some(k) => Some(k.to_owned()),
            None if keywords.contains(&word) => None,
            None => ["days", "version", "env"]
                .into_iter()
                .filter(|k| keywords.contains(k))
                .find(|k| owner(k))
                .map(|k| format!("{k} {word}")),
        };
        self.unexpected(word, suggestion)
    }

    fn task(&mut self) -> Result<TaskId, ParseError> {
        let word = self.require("<task>")?;
        TaskId::parse(word).ok_or_else(|| self.invalid("<task>", TaskId::EXPECTED, word))
    }

    /// A component of `deploy`; a word that is no name but looks like a flag (`--force`, `Confirm`)
    /// is reported as an unexpected word with the flag suggested.
    fn component(&self, word: &str) -> Result<ComponentName, ParseError> {
        ComponentName::parse(word).map_err(|_| {
            let bare = word.trim_start_matches('-').to_lowercase();
            let flag = DEPLOY_FLAGS.iter().find(|f| **f == bare).copied().or_else(|| suggest(&bare, DEPLOY_FLAGS));
            match flag {
                Some(flag) => self.unexpected(word, Some(flag.to_owned())),
                None => self.invalid("<component>", NameError::EXPECTED, word),
            }
        })
    }

    fn component_version(&self, word: &str) -> Result<(ComponentName, Version), ParseError> {
        let Some((component, version)) = word.split_once('=') else {
            return Err(self.invalid("<component>=<version>", "a component and its version like ops=1.2.0", word));
        };
        let name =
            ComponentName::parse(component).map_err(|_| self.invalid("<component>", NameError::EXPECTED, component))?;
        let version = Version::parse(version)
            .map_err(|_| self.invalid(format!("version of {component:?}"), VersionError::EXPECTED, version))?;
        Ok((name, version))
    }

    fn end(&self) -> Result<(), ParseError> {
        match self.words.get(self.next) {
            Some(word) => Err(self.unexpected(word, None)),
            None => Ok(()),
        }
    }
}

/// The text of `rest` unquoted when it is exactly one word that starts with a quote, else as typed.
fn unquote_whole(rest: &str) -> String {
    if rest.starts_with(['"', '\'']) {
        let mut lexer = Lexer::new(rest);
        if let (Ok(Some(word)), Ok(None)) = (lexer.next_word(), lexer.next_word()) {
            return word;
        }
    }
    rest.to_owned()
}

/// Splits a line into words, one at a time, so a caller can take the rest of the line as typed.
pub(crate) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &'a str) -> Lexer<'a> {
        Lexer { text, pos: 0 }
    }

    /// The text not read yet.
    pub(crate) fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    /// The next word, `None` at the end; an unclosed quote is an error naming its column.
    pub(crate) fn next_word(&mut self) -> Result<Option<String>, ParseError> {
        let rest = self.rest();
        let start = rest.len() - rest.trim_start().len();
        self.pos += start;
        let mut chars = self.rest().char_indices().peekable();
        if chars.peek().is_none() {
            return Ok(None);
        }
        let mut word = String::new();
        let mut end = self.rest().len();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c.is_whitespace() => {
                    end = i;
                    break;
                }
                '\'' | '"' => {
                    let mut closed = false;
                    while let Some((_, inner)) = chars.next() {
                        if inner == c {
                            closed = true;
                            break;
                        }
                        if c == '"' && inner == '\\' {
                            if let Some(&(_, escaped @ ('"' | '\\'))) = chars.peek() {
                                word.push(escaped);
                                chars.next();
                                continue;
                            }
                        }
                        word.push(inner);
                    }
                    if !closed {
                        let column = self.text[..self.pos + i].chars().count() + 1;
                        return Err(ParseError::new(None, ParseErrorKind::UnterminatedQuote { quote: c, column }));
                    }
                }
                c => word.push(c),
            }
        }
        self.pos += end;
        Ok(Some(word))
    }
}
