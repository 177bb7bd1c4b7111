//! The rules of one project: the catalog's policy levels resolved over the built-in model.
//!
//! Owns the built-in model (master, feature/release/hotfix, semi-linear merges, protections), the
//! resolution of levels (project ← groups ← top ← built-in), branch patterns with GitLab's wildcard
//! semantics, and the allowed flows. Pure: no I/O.

use serde::Serialize;

use crate::catalog::{PolicyMergeMethod, PolicyRole, PolicySection, RefRoles};

/// A branch name or GitLab wildcard pattern (`release/*`: `*` matches any characters, `/` included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Pattern(String);

impl Pattern {
    /// A pattern (validated by the catalog).
    pub fn new(s: impl Into<String>) -> Pattern {
        Pattern(s.into())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        wildcard_match(&self.0, name)
    }

    /// The text a `*` matched in `name` (the first `*` only), e.g. `1.2` for `release/*` and `release/1.2`.
    pub fn capture<'n>(&self, name: &'n str) -> Option<&'n str> {
        let (prefix, suffix) = self.0.split_once('*')?;
        if suffix.contains('*') || !self.matches(name) {
            return None;
        }
        name.strip_prefix(prefix)?.strip_suffix(suffix)
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// GitLab's wildcard match of protected ref names.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if name.len() < first.len() + last.len() || !name.starts_with(first) || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// An allowed merge: source pattern → target pattern.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// Source branches.
    pub from: Pattern,
    /// Target branches.
    pub to: Pattern,
}

/// A branch protection the policy wants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BranchProtection {
    /// Name or wildcard.
    pub name: String,
    /// Who may push.
    pub push: PolicyRole,
    /// Who may merge.
    pub merge: PolicyRole,
    /// Force pushes allowed (never, in this model).
    pub allow_force_push: bool,
}

/// A tag protection the policy wants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TagProtection {
    /// Name or wildcard (`v*`).
    pub name: String,
    /// Who may create matching tags.
    pub create: PolicyRole,
}

/// The rules of one project, fully resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rules {
    /// The only long-lived branch.
    pub main_branch: String,
    /// Feature branches.
    pub feature: Pattern,
    /// Release branches (`release/X.Y`).
    pub release: Pattern,
    /// Hotfix branches.
    pub hotfix: Pattern,
    /// Feature branches may merge into the main branch.
    pub trunk_based: bool,
    /// Allowed merges.
    pub flows: Vec<Flow>,
    /// Merge method.
    pub merge_method: PolicyMergeMethod,
    /// Merges wait for a successful pipeline.
    pub pipeline_must_succeed: bool,
    /// Merges wait for resolved discussions.
    pub discussions_resolved: bool,
    /// Source branches are removed after merge.
    pub remove_source_branch: bool,
    /// MRs must reference an issue.
    pub require_issue_reference: bool,
    /// Release tag format (`v{version}`, or the component's `git_tag`).
    pub tag_format: String,
    /// Branch protections.
    pub protected_branches: Vec<BranchProtection>,
    /// Tag protections.
    pub protected_tags: Vec<TagProtection>,
}

/// The built-in model's main branch.
pub const DEFAULT_MAIN_BRANCH: &str = "master";
/// The default release tag format.
pub const DEFAULT_TAG_FORMAT: &str = "v{version}";

impl Rules {
    /// The rules for `project` from the catalog's section; `tag_format` is the project's component
    /// `git_tag` when it is a component (else the default `v{version}`).
    pub fn resolve(section: &PolicySection, project: &str, tag_format: Option<&str>) -> Rules {
        let levels = section.levels_for(project);
        // The innermost level that sets a key wins.
        macro_rules! pick {
            ($field:ident) => {
                levels.iter().rev().find_map(|l| l.$field.clone())
            };
        }
        let main_branch = pick!(main_branch).unwrap_or_else(|| DEFAULT_MAIN_BRANCH.to_string());
        let feature = Pattern::new(pick!(feature).unwrap_or_else(|| "feature/*".into()));
        let release = Pattern::new(pick!(release).unwrap_or_else(|| "release/*".into()));
        let hotfix = Pattern::new(pick!(hotfix).unwrap_or_else(|| "hotfix/*".into()));
        let trunk_based = pick!(trunk_based).unwrap_or(false);
        let flows = match pick!(flows) {
            Some(list) => list.into_iter().map(|(f, t)| Flow { from: Pattern::new(f), to: Pattern::new(t) }).collect(),
            None => {
                let main = Pattern::new(main_branch.clone());
                let mut flows = vec![
                    Flow { from: feature.clone(), to: release.clone() },
                    Flow { from: release.clone(), to: main.clone() },
                ];
                if trunk_based {
                    flows.push(Flow { from: feature.clone(), to: main });
                }
                flows
            }
        };
        let protect_main =
            pick!(protect_main).unwrap_or(RefRoles { push: PolicyRole::NoOne, merge: PolicyRole::Maintainer });
        let protect_release =
            pick!(protect_release).unwrap_or(RefRoles { push: PolicyRole::Maintainer, merge: PolicyRole::Developer });
        let tag_format = tag_format.unwrap_or(DEFAULT_TAG_FORMAT).to_string();
        let tag_prefix: String = tag_format.split('{').next().unwrap_or_default().to_string();
        Rules {
            protected_branches: vec![
                BranchProtection {
                    name: main_branch.clone(),
                    push: protect_main.push,
                    merge: protect_main.merge,
                    allow_force_push: false,
                },
                BranchProtection {
                    name: release.as_str().to_string(),
                    push: protect_release.push,
                    merge: protect_release.merge,
                    allow_force_push: false,
                },
            ],
            protected_tags: vec![TagProtection {
                name: format!("{tag_prefix}*"),
                create: pick!(tag_creators).unwrap_or(PolicyRole::Maintainer),
            }],
            main_branch,
            feature,
            release,
            hotfix,
            trunk_based,
            flows,
            merge_method: pick!(merge_method).unwrap_or(PolicyMergeMethod::RebaseMerge),
            pipeline_must_succeed: pick!(pipeline_must_succeed).unwrap_or(true),
            discussions_resolved: pick!(discussions_resolved).unwrap_or(true),
            remove_source_branch: pick!(remove_source_branch).unwrap_or(true),
            require_issue_reference: pick!(require_issue_reference).unwrap_or(false),
            tag_format,
        }
    }

    /// What kind of branch `name` is under this model.
    pub fn kind_of(&self, name: &str) -> BranchKind {
        if name == self.main_branch {
            BranchKind::Main
        } else if self.release.matches(name) {
            BranchKind::Release
        } else if self.feature.matches(name) {
            BranchKind::Feature
        } else if self.hotfix.matches(name) {
            BranchKind::Hotfix
        } else {
            BranchKind::Other
        }
    }

    /// Whether a merge from `source` into `target` is an allowed flow.
    pub fn flow_allowed(&self, source: &str, target: &str) -> bool {
        self.flows.iter().any(|f| f.from.matches(source) && f.to.matches(target))
    }

    /// The targets `source` may merge into, as patterns (for fixes).
    pub fn targets_for(&self, source: &str) -> Vec<&Pattern> {
        self.flows.iter().filter(|f| f.from.matches(source)).map(|f| &f.to).collect()
    }

    /// The protection the policy wants for a pushed branch, if any.
    pub fn protection_of(&self, branch: &str) -> Option<&BranchProtection> {
        self.protected_branches.iter().find(|p| wildcard_match(&p.name, branch))
    }
}

/// A branch's role in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchKind {
    /// The long-lived branch.
    Main,
    /// `release/*`.
    Release,
    /// `feature/*`.
    Feature,
    /// `hotfix/*`.
    Hotfix,
    /// Anything else.
    Other,
}
