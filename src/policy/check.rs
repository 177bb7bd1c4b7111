//! Verdicts on merge requests, tags and pushes: facts in, violations (rule, message, fix) out.
//!
//! Owns the wording people read in the `tao/policy` status, the MR note and the violations list. The
//! facts are gathered by the GitLab side (`crate::enforcement`); nothing here does I/O.

use serde::Serialize;

use super::rules::{BranchKind, Rules};
use crate::catalog::{PolicyRole, Version};

/// One broken rule, with what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Violation {
    /// Rule id (`flow`, `contains-target`, …).
    pub rule: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl Violation {
    fn new(rule: &str, message: impl Into<String>, fix: impl Into<String>) -> Violation {
        Violation { rule: rule.to_string(), message: message.into(), fix: fix.into() }
    }
}

/// The outcome of a check: no violations = compliant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Verdict {
    /// What is wrong, in rule order.
    pub violations: Vec<Violation>,
}

/// GitLab's limit on a commit status description.
pub const DESCRIPTION_LIMIT: usize = 255;

impl Verdict {
    /// No violations.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// One line for the commit status (at most [`DESCRIPTION_LIMIT`] characters).
    pub fn summary(&self) -> String {
        let text = match self.violations.as_slice() {
            [] => "Branch policy: all rules pass".to_string(),
            [one] => one.message.clone(),
            [first, rest @ ..] => format!("{} (+{} more)", first.message, rest.len()),
        };
        truncate(&text, DESCRIPTION_LIMIT)
    }
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// What the check knows about a merge request.
#[derive(Clone, Debug, Default)]
pub struct MrFacts {
    /// Source branch.
    pub source_branch: String,
    /// Target branch.
    pub target_branch: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Commits of the target that the source lacks (0 = the source contains the target's head).
    pub behind_by: usize,
}

/// Evaluates a merge request.
pub fn evaluate_mr(rules: &Rules, mr: &MrFacts) -> Verdict {
    let mut v = Vec::new();
    let (source, target) = (mr.source_branch.as_str(), mr.target_branch.as_str());
    let source_kind = rules.kind_of(source);
    if matches!(source_kind, BranchKind::Other | BranchKind::Main) {
        v.push(Violation::new(
            "branch-name",
            format!(
                "source branch `{source}` is not a {}, {} or {} branch",
                rules.feature, rules.release, rules.hotfix
            ),
            format!(
                "push the work as a feature branch and open the MR from it: \
                 `git push origin {source}:{}`",
                example(&rules.feature.to_string(), &slug(source))
            ),
        ));
    }
    for (branch, role) in [(source, "source"), (target, "target")] {
        if rules.kind_of(branch) == BranchKind::Release && release_line(rules, branch).is_none() {
            v.push(Violation::new(
                "release-branch-name",
                format!(
                    "{role} branch `{branch}` does not name a release line like {}",
                    example(rules.release.as_str(), "1.2")
                ),
                format!(
                    "release branches are named {} with the MAJOR.MINOR they release",
                    example(rules.release.as_str(), "X.Y")
                ),
            ));
        }
    }
    if !rules.flow_allowed(source, target) && !matches!(source_kind, BranchKind::Other | BranchKind::Main) {
        let targets = rules.targets_for(source);
        let fix = if source_kind == BranchKind::Hotfix && targets.is_empty() {
            format!(
                "hotfix branches are not merged: tag the fix on `{source}`, then bring it forward in an MR \
                 from a {} branch",
                rules.feature
            )
        } else if targets.is_empty() {
            format!("no flow starts at `{source}`; the allowed flows are {}", flows_text(rules))
        } else {
            let list: Vec<String> = targets.iter().map(|t| format!("`{t}`")).collect();
            format!("change the MR's target branch to {}", list.join(" or "))
        };
        v.push(Violation::new("flow", format!("`{source}` → `{target}` is not an allowed merge"), fix));
    }
    if let (Some(s), Some(t)) = (release_line(rules, source), release_line(rules, target)) {
        if s != t {
            v.push(Violation::new(
                "release-line",
                format!("`{source}` and `{target}` are different release lines"),
                "merge a release branch only into the main branch; bring fixes forward through feature branches",
            ));
        }
    }
    if mr.behind_by > 0 {
        let commits = if mr.behind_by == 1 { "commit" } else { "commits" };
        v.push(Violation::new(
            "contains-target",
            format!("`{source}` is {} {commits} behind `{target}`", mr.behind_by),
            format!(
                "rebase onto the target: `git fetch origin && git rebase origin/{target} && git push --force-with-lease` \
                 (or use GitLab's Rebase button)"
            ),
        ));
    }
    if rules.require_issue_reference
        && !references_issue(&mr.title)
        && !references_issue(&mr.description)
        && !references_issue(source)
    {
        v.push(Violation::new(
            "issue-reference",
            "the MR does not reference an issue",
            "name the issue in the title or description, e.g. `Fix login timeout (#123)` or `--story=1007`",
        ));
    }
    Verdict { violations: v }
}

/// The `X.Y` of a release branch (`release/1.2` → (1, 2)), if it names one.
pub fn release_line(rules: &Rules, branch: &str) -> Option<(u64, u64)> {
    let line = rules.release.capture(branch)?;
    let (major, minor) = line.split_once('.')?;
    let num = |s: &str| {
        (!s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    Some((num(major)?, num(minor)?))
}

/// Whether text references an issue: `#123`, `group/project#123`, `--story=1007`, `--bug=…`, `--task=…`,
/// or a TAPD long id (`1120000000000001007`, 19 digits).
pub fn references_issue(text: &str) -> bool {
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            return true;
        }
    }
    if ["--story=", "--bug=", "--task="]
        .iter()
        .any(|k| text.match_indices(k).any(|(at, _)| bytes.get(at + k.len()).is_some_and(u8::is_ascii_digit)))
    {
        return true;
    }
    text.split(|c: char| !c.is_ascii_digit()).any(|run| run.len() == 19)
}

fn flows_text(rules: &Rules) -> String {
    let list: Vec<String> = rules.flows.iter().map(|f| format!("`{}` → `{}`", f.from, f.to)).collect();
    list.join(", ")
}

fn example(pattern: &str, fill: &str) -> String {
    pattern.replacen('*', fill, 1)
}

fn slug(branch: &str) -> String {
    let s: String = branch.rsplit('/').next().unwrap_or(branch).to_string();
    if s.is_empty() {
        "my-change".into()
    } else {
        s
    }
}

/// What the guard knows about a tag.
#[derive(Clone, Debug, Default)]
pub struct TagFacts {
    /// Tag name.
    pub name: String,
    /// The project's other tags.
    pub existing: Vec<String>,
    /// Whether the tagged commit is on the release branch of its `X.Y` (`None`: no such branch).
    pub on_release_branch: Option<bool>,
    /// The creator's access level (30 developer, 40 maintainer, …), when known.
    pub creator_level: Option<u32>,
}

/// Parses a tag against a tag format such as `v{version}` or `agent-v{major}.{minor}.{patch}`.
pub fn parse_tag(format: &str, tag: &str) -> Option<Version> {
    if format.contains("{version}") {
        let (prefix, suffix) = format.split_once("{version}")?;
        let bare = tag.strip_prefix(prefix)?.strip_suffix(suffix)?;
        let v = semver::Version::parse(bare).ok()?;
        return Some(v.into());
    }
    let filled = format.replace("{major}", "\u{1}").replace("{minor}", "\u{1}").replace("{patch}", "\u{1}");
    let parts: Vec<&str> = filled.split('\u{1}').collect();
    let mut rest = tag.strip_prefix(parts[0])?;
    let mut numbers = Vec::new();
    for lit in &parts[1..] {
        let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        numbers.push(rest[..end].parse::<u64>().ok()?);
        rest = rest[end..].strip_prefix(lit)?;
    }
    if !rest.is_empty() || numbers.len() != 3 {
        return None;
    }
    Some(semver::Version::new(numbers[0], numbers[1], numbers[2]).into())
}

/// Evaluates a pushed tag. Tags outside the release format's prefix are not release tags and pass.
pub fn evaluate_tag(rules: &Rules, tag: &TagFacts) -> Verdict {
    let mut v = Vec::new();
    let prefix = rules.tag_format.split('{').next().unwrap_or_default();
    if !prefix.is_empty() && !tag.name.starts_with(prefix) {
        return Verdict::default();
    }
    let example_tag = Version::parse("1.2.3").map(|x| x.format(&rules.tag_format)).unwrap_or_default();
    let Some(version) = parse_tag(&rules.tag_format, &tag.name) else {
        v.push(Violation::new(
            "tag-format",
            format!("tag `{}` does not follow the release tag format `{}`", tag.name, rules.tag_format),
            format!("delete it (`git push origin :refs/tags/{}`) and tag releases like `{example_tag}`", tag.name),
        ));
        return Verdict { violations: v };
    };
    let sv = version.semver();
    if let Some(required) = rules.protected_tags.first().map(|p| p.create) {
        if tag.creator_level.is_some_and(|l| l < required.access_level()) {
            v.push(Violation::new(
                "tag-creator",
                format!("`{}` was created by someone below {}", tag.name, required.describe()),
                "run `tao policy apply` so GitLab protects release tags; have a maintainer re-create the tag",
            ));
        }
    }
    if tag.on_release_branch == Some(false) {
        let branch = example(rules.release.as_str(), &format!("{}.{}", sv.major, sv.minor));
        v.push(Violation::new(
            "release-tag",
            format!("`{}` tags a commit that is not on `{branch}`", tag.name),
            format!(
                "a {}.{}.z tag belongs on `{branch}`; delete it and tag a commit of that branch",
                sv.major, sv.minor
            ),
        ));
    }
    if sv.patch > 0 && sv.pre.is_empty() {
        let previous = semver::Version::new(sv.major, sv.minor, sv.patch - 1);
        let prev_tag = crate::catalog::Version::from(previous).format(&rules.tag_format);
        if !tag.existing.contains(&prev_tag) {
            v.push(Violation::new(
                "patch-sequence",
                format!("`{}` skips `{prev_tag}`: hotfix tags continue the patch numbers of their release", tag.name),
                format!("tag the next patch number after the latest {}.{}.z tag instead", sv.major, sv.minor),
            ));
        }
    }
    Verdict { violations: v }
}

/// What the guard knows about a branch push.
#[derive(Clone, Debug, Default)]
pub struct PushFacts {
    /// Branch.
    pub branch: String,
    /// Who pushed.
    pub user: String,
    /// Their access level.
    pub user_level: u32,
    /// The pushed head is the result of merging an MR.
    pub from_merge: bool,
    /// The push created the branch.
    pub created: bool,
    /// The push deleted the branch.
    pub deleted: bool,
}

/// Evaluates a push: a push to a protected name by someone the policy does not allow to push (and not
/// a merge) slipped through GitLab, because the project's protections are not applied yet.
pub fn evaluate_push(rules: &Rules, push: &PushFacts) -> Verdict {
    let Some(protection) = rules.protection_of(&push.branch) else { return Verdict::default() };
    let may_push = protection.push != PolicyRole::NoOne && push.user_level >= protection.push.access_level();
    if push.from_merge || may_push {
        return Verdict::default();
    }
    let what = if push.created {
        "created"
    } else if push.deleted {
        "deleted"
    } else {
        "pushed to"
    };
    let allowed = if protection.push.access_level() == 0 {
        "nobody may push to it; it only changes through merge requests".to_string()
    } else {
        format!("only {} may push to it", protection.push.describe())
    };
    Verdict {
        violations: vec![Violation::new(
            "protected-push",
            format!("{} {what} `{}` directly: {allowed}", push.user, push.branch),
            "run `tao policy apply` so GitLab refuses such pushes, and review the pushed commits in an MR",
        )],
    }
}
