//! The catalog's `policy:` section: the branch model and merge rules as configuration, for every project,
//! per group and per project.
//!
//! Owns the section's shape and its validation (every problem reported with its path, like the rest of
//! the catalog). Every key is optional: what a level leaves out comes from the level above (project ←
//! innermost group ← … ← the section's top level ← the built-in model). Resolving the levels into the
//! rules of one project and evaluating them is `crate::policy`'s job, not this module's.
//!
//! ```yaml
//! policy:
//!   branches: { main: main, feature: "feature/*", release: "release/*", hotfix: "hotfix/*" }
//!   trunk_based: false                 # true: feature branches may merge into main too
//!   flows: ["feature/* -> release/*", "release/* -> main"]   # replaces the flows derived from the above
//!   merge_method: rebase_merge         # or ff
//!   merge_checks: { pipeline_must_succeed: true, discussions_resolved: true, remove_source_branch: true }
//!   require_issue_reference: false     # MR titles (or descriptions, branches) must name an issue
//!   protection:
//!     main: { push: no_one, merge: maintainer }
//!     release: { push: maintainer, merge: developer }
//!     tags: maintainer                 # who may create release tags
//!   groups: { monitor: { trunk_based: true } }
//!   projects: { monitor/agent: { branches: { main: master } } }
//! ```

use std::collections::BTreeMap;

use serde::Serialize;
use serde_yaml_ng::Value;

use super::value::ProjectPath;
use super::walk::{child, describe, item, Fields, Report};

/// A GitLab role as the policy names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyRole {
    /// Nobody (GitLab's "No one").
    NoOne,
    /// Developers and above.
    Developer,
    /// Maintainers and above.
    Maintainer,
}

impl PolicyRole {
    /// The catalog's words.
    pub const WORDS: &'static [&'static str] = &["no_one", "developer", "maintainer"];

    /// Parses a catalog word.
    pub fn parse(s: &str) -> Option<PolicyRole> {
        match s {
            "no_one" => Some(PolicyRole::NoOne),
            "developer" => Some(PolicyRole::Developer),
            "maintainer" => Some(PolicyRole::Maintainer),
            _ => None,
        }
    }

    /// GitLab's access level (0, 30, 40).
    pub fn access_level(self) -> u32 {
        match self {
            PolicyRole::NoOne => 0,
            PolicyRole::Developer => 30,
            PolicyRole::Maintainer => 40,
        }
    }

    /// GitLab's wording ("No one", "Developers + Maintainers", "Maintainers").
    pub fn describe(self) -> &'static str {
        match self {
            PolicyRole::NoOne => "No one",
            PolicyRole::Developer => "Developers + Maintainers",
            PolicyRole::Maintainer => "Maintainers",
        }
    }
}

/// How merge requests are merged: only methods that keep the source containing the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMergeMethod {
    /// Semi-linear history (GitLab's `rebase_merge`).
    RebaseMerge,
    /// Fast-forward only (GitLab's `ff`).
    Ff,
}

impl PolicyMergeMethod {
    /// GitLab's word.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyMergeMethod::RebaseMerge => "rebase_merge",
            PolicyMergeMethod::Ff => "ff",
        }
    }
}

/// Who may push and merge on a protected branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RefRoles {
    /// Who may push.
    pub push: PolicyRole,
    /// Who may merge.
    pub merge: PolicyRole,
}

/// One level of the policy (top level, a group or a project); `None` = inherit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PolicyLevel {
    /// The long-lived branch (`master`, `main`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_branch: Option<String>,
    /// Feature branch pattern.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// Release branch pattern.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Hotfix branch pattern.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hotfix: Option<String>,
    /// Feature branches may merge into the main branch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trunk_based: Option<bool>,
    /// Allowed merges (source pattern, target pattern), replacing the derived ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flows: Option<Vec<(String, String)>>,
    /// Merge method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_method: Option<PolicyMergeMethod>,
    /// Merges wait for a successful pipeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_must_succeed: Option<bool>,
    /// Merges wait for resolved discussions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discussions_resolved: Option<bool>,
    /// Source branches are removed after merge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_source_branch: Option<bool>,
    /// MRs must reference an issue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_issue_reference: Option<bool>,
    /// Protection of the main branch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protect_main: Option<RefRoles>,
    /// Protection of release branches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protect_release: Option<RefRoles>,
    /// Who may create release tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_creators: Option<PolicyRole>,
}

/// The whole `policy:` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PolicySection {
    /// The top level: applies to every project.
    #[serde(flatten)]
    pub base: PolicyLevel,
    /// Per group (`monitor`, `monitor/backend`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, PolicyLevel>,
    /// Per project (`group/project`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub projects: BTreeMap<String, PolicyLevel>,
}

impl PolicySection {
    /// The levels that apply to `project` (`a/b/c`), outermost first: top, groups `a`, `a/b`, project.
    pub fn levels_for<'a>(&'a self, project: &str) -> Vec<&'a PolicyLevel> {
        let mut out = vec![&self.base];
        let parts: Vec<&str> = project.split('/').collect();
        for n in 1..parts.len() {
            if let Some(level) = self.groups.get(&parts[..n].join("/")) {
                out.push(level);
            }
        }
        if let Some(level) = self.projects.get(project) {
            out.push(level);
        }
        out
    }
}

const LEVEL_KEYS: &[&str] =
    &["branches", "trunk_based", "flows", "merge_method", "merge_checks", "require_issue_reference", "protection"];
const BRANCH_KEYS: &[&str] = &["main", "feature", "release", "hotfix"];
const CHECK_KEYS: &[&str] = &["pipeline_must_succeed", "discussions_resolved", "remove_source_branch"];
const PROTECTION_KEYS: &[&str] = &["main", "release", "tags"];
const ROLES_KEYS: &[&str] = &["push", "merge"];
const PATTERN: &str = "a branch name or pattern (letters, digits, '/', '-', '_', '.', '*'), e.g. release/*";

/// Validates the `policy:` section.
pub(crate) fn section(r: &mut Report, v: &Value) -> Option<PolicySection> {
    let mut keys: Vec<&str> = LEVEL_KEYS.to_vec();
    keys.extend(["groups", "projects"]);
    let what = "a mapping (the policy section)";
    let f = r.fields(v, "policy", what, &keys)?;
    let base = level(r, &f, "policy");
    let mut out = PolicySection { base, ..PolicySection::default() };
    if let Some(groups) = f.get("groups") {
        for (key, lv) in r.entries(groups, "policy.groups", "a mapping of group paths to policy settings") {
            let at = child("policy.groups", &key);
            if !valid_path(&key) {
                r.add(&at, "a group path like monitor or monitor/backend", format!("{key:?}"));
            } else if let Some(lf) = r.fields(lv, &at, "policy settings for the group", LEVEL_KEYS) {
                let l = level(r, &lf, &at);
                out.groups.insert(key, l);
            }
        }
    }
    if let Some(projects) = f.get("projects") {
        for (key, lv) in r.entries(projects, "policy.projects", "a mapping of project paths to policy settings") {
            let at = child("policy.projects", &key);
            if ProjectPath::parse(&key).is_err() {
                r.add(&at, "a project path like group/project", format!("{key:?}"));
            } else if let Some(lf) = r.fields(lv, &at, "policy settings for the project", LEVEL_KEYS) {
                let l = level(r, &lf, &at);
                out.projects.insert(key, l);
            }
        }
    }
    Some(out)
}

fn valid_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('/').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
}

/// Whether `s` is a usable branch name or pattern.
pub fn valid_pattern(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('/')
        && !s.ends_with('/')
        && !s.contains("//")
        && !s.contains("..")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.*".contains(&b))
}

fn level(r: &mut Report, f: &Fields<'_>, path: &str) -> PolicyLevel {
    let mut l = PolicyLevel::default();
    if let Some(b) = f.get("branches") {
        let at = child(path, "branches");
        if let Some(bf) = r.fields(b, &at, "a mapping with main, feature, release, hotfix", BRANCH_KEYS) {
            let mut pattern =
                |key: &str| bf.get(key).and_then(|x| r.checked(x, &child(&at, key), PATTERN, valid_pattern));
            l.feature = pattern("feature");
            l.release = pattern("release");
            l.hotfix = pattern("hotfix");
            l.main_branch = bf.get("main").and_then(|x| {
                r.checked(x, &child(&at, "main"), "a branch name without '*'", |s| valid_pattern(s) && !s.contains('*'))
            });
        }
    }
    l.trunk_based = f.get("trunk_based").and_then(|x| boolean(r, x, &child(path, "trunk_based")));
    l.require_issue_reference =
        f.get("require_issue_reference").and_then(|x| boolean(r, x, &child(path, "require_issue_reference")));
    if let Some(x) = f.get("flows") {
        let at = child(path, "flows");
        let what = "a list of flows like \"feature/* -> release/*\"";
        let mut flows = Vec::new();
        for (i, entry) in r.list(x, &at, what).iter().enumerate() {
            let p = item(&at, i);
            let expected = "a flow \"<source pattern> -> <target pattern>\"";
            let Some(text) = r.string(entry, &p, expected) else { continue };
            match parse_flow(text) {
                Some(flow) => flows.push(flow),
                None => r.add(&p, expected, describe(entry)),
            }
        }
        l.flows = Some(flows);
    }
    if let Some(x) = f.get("merge_method") {
        let at = child(path, "merge_method");
        let expected = "rebase_merge (semi-linear) or ff (fast-forward)";
        l.merge_method = match x.as_str() {
            Some("rebase_merge" | "semi_linear") => Some(PolicyMergeMethod::RebaseMerge),
            Some("ff" | "fast_forward") => Some(PolicyMergeMethod::Ff),
            Some("merge") => {
                r.add(&at, expected, "\"merge\" (merge commits let a diverged source merge untested results)");
                None
            }
            _ => {
                r.add(&at, expected, describe(x));
                None
            }
        };
    }
    if let Some(x) = f.get("merge_checks") {
        let at = child(path, "merge_checks");
        if let Some(cf) = r.fields(
            x,
            &at,
            "a mapping with pipeline_must_succeed, discussions_resolved, remove_source_branch",
            CHECK_KEYS,
        ) {
            let mut flag = |key: &str| cf.get(key).and_then(|v| boolean(r, v, &child(&at, key)));
            l.pipeline_must_succeed = flag("pipeline_must_succeed");
            l.discussions_resolved = flag("discussions_resolved");
            l.remove_source_branch = flag("remove_source_branch");
        }
    }
    if let Some(x) = f.get("protection") {
        let at = child(path, "protection");
        if let Some(pf) = r.fields(x, &at, "a mapping with main, release, tags", PROTECTION_KEYS) {
            l.protect_main = pf.get("main").and_then(|v| ref_roles(r, v, &child(&at, "main")));
            l.protect_release = pf.get("release").and_then(|v| ref_roles(r, v, &child(&at, "release")));
            l.tag_creators = pf.get("tags").and_then(|v| role(r, v, &child(&at, "tags")));
        }
    }
    l
}

fn boolean(r: &mut Report, v: &Value, path: &str) -> Option<bool> {
    let b = v.as_bool();
    if b.is_none() {
        r.add(path, "true or false", describe(v));
    }
    b
}

fn role(r: &mut Report, v: &Value, path: &str) -> Option<PolicyRole> {
    let found = v.as_str().and_then(PolicyRole::parse);
    if found.is_none() {
        let hint = v.as_str().and_then(|s| super::walk::suggest(s, PolicyRole::WORDS.iter().copied()));
        let what = match hint {
            Some(h) => format!("{} (did you mean {h:?}?)", describe(v)),
            None => describe(v),
        };
        r.add(path, "one of no_one, developer, maintainer", what);
    }
    found
}

fn ref_roles(r: &mut Report, v: &Value, path: &str) -> Option<RefRoles> {
    let f = r.fields(v, path, "a mapping with push and merge", ROLES_KEYS)?;
    let mut get = |key: &str| match f.get(key) {
        Some(x) => role(r, x, &child(path, key)),
        None => {
            r.missing(child(path, key), "one of no_one, developer, maintainer");
            None
        }
    };
    let push = get("push");
    let merge = get("merge");
    Some(RefRoles { push: push?, merge: merge? })
}

/// Parses `"feature/* -> release/*"` (also `→`).
pub fn parse_flow(s: &str) -> Option<(String, String)> {
    let (from, to) = s.split_once("->").or_else(|| s.split_once('→'))?;
    let (from, to) = (from.trim(), to.trim());
    (valid_pattern(from) && valid_pattern(to)).then(|| (from.to_string(), to.to_string()))
}
