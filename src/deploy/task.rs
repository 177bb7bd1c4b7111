//! What a deploy task is, as the domain sees it: its [`TaskKind`] (what it deploys) and its
//! [`TaskStatus`] (where it is in its life). Pure: the store maps both to and from the strings it keeps
//! (`store::task`), and every front end shows the same names (`release`, `succeeded`, …).

use std::fmt;
use std::str::FromStr;

/// What a task deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// A product version (or some of its components).
    Release,
    /// One component build by image tag or digest.
    Component,
    /// Back to an earlier product version of the environment.
    Rollback,
}

impl TaskKind {
    /// Every kind, in the order they are documented.
    pub const ALL: [TaskKind; 3] = [TaskKind::Release, TaskKind::Component, TaskKind::Rollback];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Release => "release",
            TaskKind::Component => "component",
            TaskKind::Rollback => "rollback",
        }
    }
}

/// Where a task is in its life. `queued` and `running` can still change; the other four are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting for a worker and its environment.
    Queued,
    /// A worker holds the environment's lease and runs it.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step failed (what it had changed was rolled back unless disabled).
    Failed,
    /// Cancelled by request.
    Cancelled,
    /// Tao stopped or crashed while it ran.
    Interrupted,
}

impl TaskStatus {
    /// Every status, from first to final.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Queued,
        TaskStatus::Running,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
        TaskStatus::Interrupted,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Interrupted => "interrupted",
        }
    }

    /// True once the task can no longer change.
    pub fn is_final(self) -> bool {
        !matches!(self, TaskStatus::Queued | TaskStatus::Running)
    }
}

/// A stored or given name that is not one of the known kinds or statuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown task {what} {given:?}: expected one of {expected}")]
pub struct UnknownName {
    /// `kind` or `status`.
    pub what: &'static str,
    /// What was found.
    pub given: String,
    /// The known names, comma-separated.
    pub expected: String,
}

fn parse<T: Copy>(what: &'static str, s: &str, all: &[T], name: fn(T) -> &'static str) -> Result<T, UnknownName> {
    all.iter().copied().find(|v| name(*v) == s).ok_or_else(|| UnknownName {
        what,
        given: s.to_string(),
        expected: all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", "),
    })
}

impl FromStr for TaskKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        parse("kind", s, &TaskKind::ALL, TaskKind::as_str)
    }
}

impl FromStr for TaskStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        parse("status", s, &TaskStatus::ALL, TaskStatus::as_str)
    }
}

impl TryFrom<String> for TaskKind {
    type Error = UnknownName;
    fn try_from(s: String) -> Result<Self, UnknownName> {
        s.parse()
    }
}

impl TryFrom<String> for TaskStatus {
    type Error = UnknownName;
    fn try_from(s: String) -> Result<Self, UnknownName> {
        s.parse()
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for k in TaskKind::ALL {
            assert_eq!(k.as_str().parse::<TaskKind>(), Ok(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn unknown_names_say_what_was_expected() {
        let e = "done".parse::<TaskStatus>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown task status \"done\": expected one of queued, running, succeeded, failed, cancelled, interrupted"
        );
        assert!("Release".parse::<TaskKind>().is_err(), "names are exact");
    }

    #[test]
    fn only_queued_and_running_can_change() {
        let open: Vec<_> = TaskStatus::ALL.into_iter().filter(|s| !s.is_final()).collect();
        assert_eq!(open, [TaskStatus::Queued, TaskStatus::Running]);
    }
}
