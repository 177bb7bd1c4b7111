//! The typed values of command arguments that are not catalog identifiers: task ids, image tags and
//! numbers of days. Each has a parsing constructor and an `EXPECTED` wording for the parser's errors, so
//! an invalid value cannot be constructed. Pure.

use std::fmt;

use crate::deploy::plan::valid_image_tag;

/// A deploy task's id: a positive integer (the store's `tasks.id`); `#42` reads as 42.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(i64);

impl TaskId {
    /// What a task id must look like, worded for people.
    pub const EXPECTED: &'static str = "a task id like 42 or #42";

    /// Parses `42` or `#42`; rejects zero, signs and anything beyond `i64`.
    pub fn parse(s: &str) -> Option<TaskId> {
        let digits = s.strip_prefix('#').unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i64>().ok().filter(|id| *id > 0).map(TaskId)
    }

    /// A task id from the store; `None` unless positive.
    pub fn new(id: i64) -> Option<TaskId> {
        (id > 0).then_some(TaskId(id))
    }

    /// The id as stored.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How many days back a picture covers: 1 to 366 (a leap year), as `tao report --days` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Days(u16);

impl Days {
    /// What a number of days must look like, worded for people.
    pub const EXPECTED: &'static str = "a number of days from 1 to 366";

    /// Parses `1` to `366` (digits only).
    pub fn parse(s: &str) -> Option<Days> {
        if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u16>().ok().filter(|d| (1..=366).contains(d)).map(Days)
    }

    /// The number of days.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for Days {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An image tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) or a `sha256:` digest: what the deploy API accepts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageTag(String);

impl ImageTag {
    /// What an image tag must look like, worded for people.
    pub const EXPECTED: &'static str =
        "an image tag of letters, digits, '_', '.' and '-' not starting with '.' or '-' (at most 128 characters), \
         or a sha256: digest";

    /// Parses a tag or digest with the deploy planner's rule.
    pub fn parse(s: &str) -> Option<ImageTag> {
        valid_image_tag(s).then(|| ImageTag(s.to_owned()))
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
