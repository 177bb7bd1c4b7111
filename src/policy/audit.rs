//! Project audit: a project's GitLab settings and protections compared with its rules, as a list of
//! drifts, each with the change that fixes it.
//!
//! Owns what "configured as the policy says" means (merge method, merge checks, protected branches with
//! push/merge levels and force push, protected tags). Protections the policy does not name are left
//! alone. Pure: the GitLab side reads the facts and carries out the changes.

use serde::Serialize;

use super::check::Violation;
use super::rules::{BranchProtection, Rules, TagProtection};
use crate::catalog::PolicyMergeMethod;

/// A protected branch as GitLab has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BranchProtectionFact {
    /// Name or wildcard.
    pub name: String,
    /// Push levels (role entries only).
    pub push: Vec<u32>,
    /// Merge levels (role entries only).
    pub merge: Vec<u32>,
    /// Entries for single users or groups (these widen access beyond the role).
    pub extra_entries: usize,
    /// Force push allowed.
    pub allow_force_push: bool,
}

/// A protected tag as GitLab has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagProtectionFact {
    /// Name or wildcard.
    pub name: String,
    /// Create levels (role entries only).
    pub create: Vec<u32>,
    /// Entries for single users or groups.
    pub extra_entries: usize,
}

/// A project's settings as GitLab has them (`None`: GitLab did not say).
#[derive(Clone, Debug, Default)]
pub struct ProjectFacts {
    /// `merge`, `rebase_merge`, `ff`.
    pub merge_method: Option<String>,
    /// `only_allow_merge_if_pipeline_succeeds`.
    pub pipeline_must_succeed: Option<bool>,
    /// `only_allow_merge_if_all_discussions_are_resolved`.
    pub discussions_resolved: Option<bool>,
    /// `remove_source_branch_after_merge`.
    pub remove_source_branch: Option<bool>,
    /// Protected branches.
    pub protected_branches: Vec<BranchProtectionFact>,
    /// Protected tags.
    pub protected_tags: Vec<TagProtectionFact>,
}

/// A change that brings GitLab in line with the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// `PUT /projects/:id` with these settings.
    Settings {
        /// Merge method.
        #[serde(skip_serializing_if = "Option::is_none")]
        merge_method: Option<PolicyMergeMethod>,
        /// Pipeline must succeed.
        #[serde(skip_serializing_if = "Option::is_none")]
        pipeline_must_succeed: Option<bool>,
        /// Discussions resolved.
        #[serde(skip_serializing_if = "Option::is_none")]
        discussions_resolved: Option<bool>,
        /// Remove source branch.
        #[serde(skip_serializing_if = "Option::is_none")]
        remove_source_branch: Option<bool>,
    },
    /// Protect a branch that is not protected.
    ProtectBranch(BranchProtection),
    /// Replace a branch protection (unprotect, then protect).
    ReprotectBranch(BranchProtection),
    /// Protect tags that are not protected.
    ProtectTag(TagProtection),
    /// Replace a tag protection.
    ReprotectTag(TagProtection),
}

/// One difference between GitLab and the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// What differs, as a violation (rule, message, fix).
    #[serde(flatten)]
    pub violation: Violation,
    /// What GitLab has.
    pub actual: String,
    /// What the policy wants.
    pub wanted: String,
}

/// The audit of one project: drifts and the changes that fix them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Audit {
    /// Differences, in a stable order.
    pub drifts: Vec<Drift>,
    /// Changes that fix them (settings batched into one).
    pub changes: Vec<Change>,
}

impl Audit {
    /// Nothing differs.
    pub fn clean(&self) -> bool {
        self.drifts.is_empty()
    }
}

fn show<T: std::fmt::Debug>(v: &Option<T>) -> String {
    match v {
        Some(x) => format!("{x:?}").to_lowercase(),
        None => "unset".into(),
    }
}

fn levels_text(levels: &[u32], extra: usize) -> String {
    let mut parts: Vec<String> = levels.iter().map(|l| level_name(*l).to_string()).collect();
    if extra > 0 {
        parts.push(format!("{extra} user/group entr{}", if extra == 1 { "y" } else { "ies" }));
    }
    if parts.is_empty() {
        "nobody listed".into()
    } else {
        parts.join(" + ")
    }
}

/// GitLab's wording of an access level.
pub fn level_name(level: u32) -> &'static str {
    match level {
        0 => "No one",
        30 => "Developers + Maintainers",
        40 => "Maintainers",
        50 => "Owners",
        60 => "Admins",
        _ => "a custom level",
    }
}

/// Compares a project with its rules.
pub fn audit(rules: &Rules, facts: &ProjectFacts) -> Audit {
    let mut drifts = Vec::new();
    let mut settings = (None, None, None, None);
    let method = rules.merge_method.as_str();
    if facts.merge_method.as_deref() != Some(method) {
        drifts.push(Drift {
            violation: Violation {
                rule: "merge-method".into(),
                message: format!("merge method is {}, not {method}", facts.merge_method.as_deref().unwrap_or("unset")),
                fix: format!("set Settings → Merge requests → Merge method to {}", method_words(rules.merge_method)),
            },
            actual: facts.merge_method.clone().unwrap_or_else(|| "unset".into()),
            wanted: method.into(),
        });
        settings.0 = Some(rules.merge_method);
    }
    let flags = [
        (
            "pipeline-must-succeed",
            "only_allow_merge_if_pipeline_succeeds",
            facts.pipeline_must_succeed,
            rules.pipeline_must_succeed,
        ),
        (
            "discussions-resolved",
            "only_allow_merge_if_all_discussions_are_resolved",
            facts.discussions_resolved,
            rules.discussions_resolved,
        ),
        (
            "remove-source-branch",
            "remove_source_branch_after_merge",
            facts.remove_source_branch,
            rules.remove_source_branch,
        ),
    ];
    for (i, (rule, field, actual, wanted)) in flags.into_iter().enumerate() {
        if actual != Some(wanted) {
            drifts.push(Drift {
                violation: Violation {
                    rule: rule.into(),
                    message: format!("{field} is {}, not {wanted}", show(&actual)),
                    fix: format!("set {field} to {wanted}"),
                },
                actual: show(&actual),
                wanted: wanted.to_string(),
            });
            match i {
                0 => settings.1 = Some(wanted),
                1 => settings.2 = Some(wanted),
                _ => settings.3 = Some(wanted),
            }
        }
    }
    let mut changes = Vec::new();
    if settings != (None, None, None, None) {
        changes.push(Change::Settings {
            merge_method: settings.0,
            pipeline_must_succeed: settings.1,
            discussions_resolved: settings.2,
            remove_source_branch: settings.3,
        });
    }
    for want in &rules.protected_branches {
        let wanted = format!(
            "push {}, merge {}, force push {}",
            want.push.describe(),
            want.merge.describe(),
            if want.allow_force_push { "allowed" } else { "off" }
        );
        match facts.protected_branches.iter().find(|p| p.name == want.name) {
            None => {
                drifts.push(Drift {
                    violation: Violation {
                        rule: "protected-branch".into(),
                        message: format!("branch `{}` is not protected", want.name),
                        fix: format!("protect `{}`: {wanted}", want.name),
                    },
                    actual: "not protected".into(),
                    wanted,
                });
                changes.push(Change::ProtectBranch(want.clone()));
            }
            Some(have) => {
                let ok = have.push == [want.push.access_level()]
                    && have.merge == [want.merge.access_level()]
                    && have.extra_entries == 0
                    && have.allow_force_push == want.allow_force_push;
                if !ok {
                    let actual = format!(
                        "push {}, merge {}, force push {}",
                        levels_text(&have.push, 0),
                        levels_text(&have.merge, have.extra_entries),
                        if have.allow_force_push { "allowed" } else { "off" }
                    );
                    drifts.push(Drift {
                        violation: Violation {
                            rule: "protected-branch".into(),
                            message: format!("branch `{}` is protected as {actual}", want.name),
                            fix: format!("re-protect `{}`: {wanted}", want.name),
                        },
                        actual,
                        wanted,
                    });
                    changes.push(Change::ReprotectBranch(want.clone()));
                }
            }
        }
    }
    for want in &rules.protected_tags {
        let wanted = format!("create {}", want.create.describe());
        match facts.protected_tags.iter().find(|p| p.name == want.name) {
            None => {
                drifts.push(Drift {
                    violation: Violation {
                        rule: "protected-tag".into(),
                        message: format!("tags `{}` are not protected", want.name),
                        fix: format!("protect tags `{}`: {wanted}", want.name),
                    },
                    actual: "not protected".into(),
                    wanted,
                });
                changes.push(Change::ProtectTag(want.clone()));
            }
            Some(have) if have.create != [want.create.access_level()] || have.extra_entries > 0 => {
                let actual = format!("create {}", levels_text(&have.create, have.extra_entries));
                drifts.push(Drift {
                    violation: Violation {
                        rule: "protected-tag".into(),
                        message: format!("tags `{}` are protected as {actual}", want.name),
                        fix: format!("re-protect tags `{}`: {wanted}", want.name),
                    },
                    actual,
                    wanted,
                });
                changes.push(Change::ReprotectTag(want.clone()));
            }
            Some(_) => {}
        }
    }
    Audit { drifts, changes }
}

fn method_words(m: PolicyMergeMethod) -> &'static str {
    match m {
        PolicyMergeMethod::RebaseMerge => "\"Merge commit with semi-linear history\"",
        PolicyMergeMethod::Ff => "\"Fast-forward merge\"",
    }
}
