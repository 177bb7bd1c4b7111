//! Branch and merge policy (pure domain): the branch model and merge rules as data, evaluated against
//! facts about a project, a merge request, a tag or a push into a [`Verdict`] of violations, each with
//! the rule it breaks, a message and a fix.
//!
//! `rules` resolves the catalog's `policy:` levels into one project's [`Rules`]; `check` judges merge
//! requests, tags and pushes; `audit` compares a project's GitLab settings with its rules. No I/O here:
//! `crate::enforcement` gathers the facts from GitLab and acts on the verdicts.

pub mod audit;
pub mod check;
pub mod rules;

#[cfg(test)]
mod tests;

pub use audit::{audit, Audit, BranchProtectionFact, Change, Drift, ProjectFacts, TagProtectionFact};
pub use check::{
    evaluate_mr, evaluate_push, evaluate_tag, parse_tag, references_issue, release_line, truncate, MrFacts, PushFacts,
    TagFacts, Verdict, Violation, DESCRIPTION_LIMIT,
};
pub use rules::{wildcard_match, BranchKind, BranchProtection, Flow, Pattern, Rules, TagProtection};
