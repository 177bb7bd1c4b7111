//! Why a command line was rejected, worded for the person who typed it.
//!
//! Owns the shape of a [`ParseError`] and its wording: the command it concerns, what was expected (an
//! argument's syntax, the usage line, the accepted form of a value) and the nearest known word (did you
//! mean). Must not decide what is valid (see `parse`).

use std::fmt;

use super::command::CommandName;

/// A rejected command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The command it concerns, once its name was read.
    pub command: Option<CommandName>,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// Nothing after the prefix.
    MissingCommand,
    /// The first word names no command (also the argument of `help`).
    UnknownCommand {
        /// The word.
        word: String,
        /// The nearest command, if one is close.
        suggestion: Option<String>,
    },
    /// A required argument is absent.
    Missing {
        /// Its syntax, e.g. `<env>`.
        arg: &'static str,
    },
    /// An argument is not of the required form.
    Invalid {
        /// Which argument, e.g. `<version>` or `version of "ops"`.
        arg: String,
        /// What it must look like.
        expected: &'static str,
        /// What was given.
        found: String,
    },
    /// A word the command does not take (too many arguments, an unknown keyword).
    Unexpected {
        /// The word.
        word: String,
        /// What was probably meant, if anything.
        suggestion: Option<String>,
    },
    /// The same component twice in `release create`.
    Duplicate {
        /// The component.
        word: String,
    },
    /// A quote that is never closed.
    UnterminatedQuote {
        /// `'` or `"`.
        quote: char,
        /// 1-based column (in characters) of the opening quote.
        column: usize,
    },
}

impl ParseError {
    pub(crate) fn new(command: Option<CommandName>, kind: ParseErrorKind) -> ParseError {
        ParseError { command, kind }
    }

    /// The word suggested instead of a wrong one (did you mean), if any.
    pub fn suggestion(&self) -> Option<&str> {
        match &self.kind {
            ParseErrorKind::UnknownCommand { suggestion, .. } | ParseErrorKind::Unexpected { suggestion, .. } => {
                suggestion.as_deref()
            }
            _ => None,
        }
    }

    /// The usage line of the command concerned, if known.
    pub fn usage(&self) -> Option<&'static str> {
        self.command.map(|c| c.spec().usage)
    }

    /// Moves a column by `by` characters (the text before what was parsed, such as `/tao`).
    pub(crate) fn shifted(mut self, by: usize) -> ParseError {
        if let ParseErrorKind::UnterminatedQuote { column, .. } = &mut self.kind {
            *column += by;
        }
        self
    }
}

/// Verbs listed when no command was recognised.
fn verbs() -> String {
    let mut out: Vec<&str> = Vec::new();
    for name in CommandName::ALL {
        let verb = name.as_str().split(' ').next().unwrap_or_default();
        if !out.contains(&verb) {
            out.push(verb);
        }
    }
    out.join(", ")
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(command) = self.command {
            write!(f, "{command}: ")?;
        }
        let usage = self.usage().unwrap_or_default();
        match &self.kind {
            ParseErrorKind::MissingCommand => write!(f, "missing command (expected one of: {})", verbs()),
            ParseErrorKind::UnknownCommand { word, suggestion: Some(hint) } => {
                write!(f, "unknown command {word:?} (did you mean {hint:?}?)")
            }
            ParseErrorKind::UnknownCommand { word, suggestion: None } => {
                write!(f, "unknown command {word:?} (expected one of: {})", verbs())
            }
            ParseErrorKind::Missing { arg } => write!(f, "missing {arg} (usage: {usage})"),
            ParseErrorKind::Invalid { arg, expected, found } => {
                write!(f, "invalid {arg}: expected {expected}, found {found:?}")
            }
            ParseErrorKind::Unexpected { word, suggestion: Some(hint) } => {
                write!(f, "unexpected {word:?} (did you mean {hint:?}?) (usage: {usage})")
            }
            ParseErrorKind::Unexpected { word, suggestion: None } => {
                write!(f, "unexpected {word:?} (usage: {usage})")
            }
            ParseErrorKind::Duplicate { word } => write!(f, "component {word:?} given twice"),
            ParseErrorKind::UnterminatedQuote { quote, column } => {
                write!(f, "unterminated {quote} quote opened at column {column}")
            }
        }
    }
}

impl std::error::Error for ParseError {}
