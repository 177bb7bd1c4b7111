//! How GitLab issues map to work item kinds and states (`TAO_GITLAB_BUG_LABELS`,
//! `TAO_GITLAB_WORKFLOW_SCOPE`): plain settings, read and checked here, applied by
//! `crate::workitems::gitlab`.

/// Default label that makes an issue a bug.
pub const DEFAULT_BUG_LABELS: &str = "bug";
/// Default scope of workflow labels (`workflow::doing`).
pub const DEFAULT_WORKFLOW_SCOPE: &str = "workflow";

/// How issues map to kinds and states (`TAO_GITLAB_BUG_LABELS`, `TAO_GITLAB_WORKFLOW_SCOPE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRules {
    /// Labels that make an issue a bug, compared case-insensitively.
    pub bug_labels: Vec<String>,
    /// Scope of the labels whose value is the state of an open issue; `None` ignores them.
    pub workflow_scope: Option<String>,
}

impl Default for IssueRules {
    fn default() -> Self {
        IssueRules {
            bug_labels: vec![DEFAULT_BUG_LABELS.to_string()],
            workflow_scope: Some(DEFAULT_WORKFLOW_SCOPE.to_string()),
        }
    }
}

/// A setting of [`IssueRules`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The bug label list is empty or has an empty entry.
    #[error("TAO_GITLAB_BUG_LABELS: expected comma-separated label names like bug,defect, found {0:?}")]
    BugLabels(String),
    /// The workflow scope is not a label scope.
    #[error("TAO_GITLAB_WORKFLOW_SCOPE: expected a label scope like workflow (or off), found {0:?}")]
    WorkflowScope(String),
}

impl IssueRules {
    /// Reads the two settings: `bug_labels` comma-separated, `workflow_scope` a scope or `off`.
    pub fn parse(bug_labels: &str, workflow_scope: &str) -> Result<IssueRules, RuleError> {
        let labels: Vec<String> = bug_labels.split(',').map(|l| l.trim().to_string()).collect();
        if labels.iter().any(String::is_empty) {
            return Err(RuleError::BugLabels(bug_labels.to_string()));
        }
        let scope = match workflow_scope.trim() {
            "" | "off" => None,
            s if s.contains("::") || s.contains(',') => return Err(RuleError::WorkflowScope(s.to_string())),
            s => Some(s.to_string()),
        };
        Ok(IssueRules { bug_labels: labels, workflow_scope: scope })
    }
}
