//! Table tests of the policy rules: resolution of levels, merge requests, tags, pushes, project audits.

use super::*;
use crate::catalog::{Catalog, PolicyMergeMethod, PolicyRole, PolicySection};

fn section(yaml: &str) -> PolicySection {
    let text = format!(
        "{yaml}\nproducts: {{}}\ncomponents: {{}}\nenvironments: {{}}\n",
        yaml = if yaml.is_empty() { String::new() } else { format!("policy:\n{yaml}") }
    );
    Catalog::from_yaml(&text).unwrap_or_else(|e| panic!("{e}")).policy
}

fn default_rules() -> Rules {
    Rules::resolve(&PolicySection::default(), "g/p", None)
}

fn mr(source: &str, target: &str) -> MrFacts {
    MrFacts {
        source_branch: source.into(),
        target_branch: target.into(),
        title: "Add login".into(),
        ..MrFacts::default()
    }
}

fn rules_of(v: &Verdict) -> Vec<&str> {
    v.violations.iter().map(|x| x.rule.as_str()).collect()
}

#[test]
fn wildcards_match_like_gitlab() {
    for (pattern, name, expected) in [
        ("release/*", "release/1.2", true),
        ("release/*", "release/", true),
        ("release/*", "release", false),
        ("release/*", "feature/release/1", false),
        ("*-stable", "1-0-stable", true),
        ("*-stable", "1-0-stable-x", false),
        ("v*", "v1.2.3", true),
        ("main", "main", true),
        ("main", "main2", false),
        ("a*b*c", "axxbyyc", true),
        ("a*b*c", "ac", false),
        ("a*b*c", "abc", true),
    ] {
        assert_eq!(wildcard_match(pattern, name), expected, "{pattern} vs {name}");
    }
    assert_eq!(Pattern::new("release/*").capture("release/1.2"), Some("1.2"));
    assert_eq!(Pattern::new("release/*").capture("feature/x"), None);
}

#[test]
fn levels_resolve_innermost_first() {
    let s = section(
        "  branches: { main: main }\n  groups:\n    g: { trunk_based: true, merge_method: ff }\n    g/sub: { merge_method: rebase_merge }\n  projects:\n    g/sub/p: { branches: { main: trunk } }\n",
    );
    let top = Rules::resolve(&s, "other/p", None);
    assert_eq!(
        (top.main_branch.as_str(), top.trunk_based, top.merge_method),
        ("main", false, PolicyMergeMethod::RebaseMerge)
    );
    let g = Rules::resolve(&s, "g/p", None);
    assert_eq!((g.main_branch.as_str(), g.trunk_based, g.merge_method), ("main", true, PolicyMergeMethod::Ff));
    assert!(g.flow_allowed("feature/x", "main"), "trunk-based adds feature -> main");
    let deep = Rules::resolve(&s, "g/sub/p", Some("agent-v{version}"));
    assert_eq!((deep.main_branch.as_str(), deep.merge_method), ("trunk", PolicyMergeMethod::RebaseMerge));
    assert_eq!(deep.protected_branches[0].name, "trunk");
    assert_eq!(deep.protected_tags[0].name, "agent-v*");
    let d = default_rules();
    assert_eq!(d.main_branch, "master");
    assert_eq!(d.protected_branches[0].push, PolicyRole::NoOne);
    assert_eq!(d.protected_tags[0].name, "v*");
    assert!(!d.flow_allowed("feature/x", "master"));
}

#[test]
fn explicit_flows_replace_the_derived_ones() {
    let s = section("  flows: [\"feature/* -> develop\", \"develop -> master\"]\n");
    let r = Rules::resolve(&s, "g/p", None);
    assert!(r.flow_allowed("feature/a", "develop"));
    assert!(!r.flow_allowed("feature/a", "release/1.0"));
}

#[test]
fn merge_requests() {
    let d = default_rules();
    let trunk = Rules::resolve(&section("  trunk_based: true\n"), "g/p", None);
    let issues = Rules::resolve(&section("  require_issue_reference: true\n"), "g/p", None);
    let behind = MrFacts { behind_by: 3, ..mr("feature/login", "release/1.2") };
    let one_behind = MrFacts { behind_by: 1, ..mr("feature/login", "release/1.2") };
    let with_issue = MrFacts { title: "Fix login (#12)".into(), ..mr("feature/login", "release/1.2") };
    let story_in_branch = mr("feature/1007-login--story=1007", "release/1.2");
    #[rustfmt::skip]
    let cases: Vec<(&str, &Rules, MrFacts, Vec<&str>)> = vec![
        ("feature into release", &d, mr("feature/login", "release/1.2"), vec![]),
        ("release into main", &d, mr("release/1.2", "master"), vec![]),
        ("feature into main", &d, mr("feature/login", "master"), vec!["flow"]),
        ("feature into main, trunk-based", &trunk, mr("feature/login", "master"), vec![]),
        ("hotfix merged", &d, mr("hotfix/1.2.1", "master"), vec!["flow"]),
        ("unknown branch kind", &d, mr("login-fix", "release/1.2"), vec!["branch-name"]),
        ("main as source", &d, mr("master", "release/1.2"), vec!["branch-name"]),
        ("release badly named", &d, mr("feature/x", "release/next"), vec!["release-branch-name"]),
        ("release into release", &d, mr("release/1.2", "release/1.3"), vec!["flow", "release-line"]),
        ("behind the target", &d, behind, vec!["contains-target"]),
        ("missing issue", &issues, mr("feature/login", "release/1.2"), vec!["issue-reference"]),
        ("issue in title", &issues, with_issue, vec![]),
        ("story in branch", &issues, story_in_branch, vec![]),
    ];
    for (what, rules, facts, expected) in cases {
        assert_eq!(rules_of(&evaluate_mr(rules, &facts)), expected, "{what}");
    }
    let v = evaluate_mr(&d, &mr("feature/login", "master"));
    assert_eq!(v.violations[0].message, "`feature/login` → `master` is not an allowed merge");
    assert_eq!(v.violations[0].fix, "change the MR's target branch to `release/*`");
    let v = evaluate_mr(&d, &mr("hotfix/1.2.1", "master"));
    assert!(v.violations[0].fix.starts_with("hotfix branches are not merged"), "{}", v.violations[0].fix);
    let v = evaluate_mr(&d, &one_behind);
    assert_eq!(v.violations[0].message, "`feature/login` is 1 commit behind `release/1.2`");
    assert!(v.violations[0].fix.contains("git rebase origin/release/1.2"));
}

#[test]
fn summaries_fit_a_commit_status() {
    let d = default_rules();
    assert_eq!(evaluate_mr(&d, &mr("feature/a", "release/1.0")).summary(), "Branch policy: all rules pass");
    let two = evaluate_mr(&d, &MrFacts { behind_by: 2, ..mr("feature/a", "master") });
    assert_eq!(two.summary(), "`feature/a` → `master` is not an allowed merge (+1 more)");
    let long = "feature/".to_string() + &"x".repeat(400);
    let s = evaluate_mr(&d, &mr(&long, "master")).summary();
    assert_eq!(s.chars().count(), DESCRIPTION_LIMIT);
    assert!(s.ends_with('…'));
    assert_eq!(truncate("é".repeat(300).as_str(), 10).chars().count(), 10);
}

#[test]
fn issue_references() {
    for (text, expected) in [
        ("Fix #12", true),
        ("group/project#12", true),
        ("--story=1007 登录修复", true),
        ("修复登录 --bug=1120000000000001007", true),
        ("1120000000000001007", true),
        ("# heading", false),
        ("v1.2.3", false),
        ("--story=", false),
        ("feature/login", false),
    ] {
        assert_eq!(references_issue(text), expected, "{text}");
    }
}

#[test]
fn tag_formats_parse() {
    for (format, tag, expected) in [
        ("v{version}", "v1.2.3", Some("1.2.3")),
        ("v{version}", "v1.2.3-rc.1", Some("1.2.3-rc.1")),
        ("v{version}", "v1.2", None),
        ("v{version}", "1.2.3", None),
        ("agent-v{version}", "agent-v2.0.1", Some("2.0.1")),
        ("r{major}.{minor}.{patch}", "r1.20.3", Some("1.20.3")),
        ("r{major}.{minor}.{patch}", "r1.20", None),
        ("r{major}.{minor}.{patch}", "r1.20.3x", None),
        ("{version}", "1.0.0", Some("1.0.0")),
    ] {
        assert_eq!(parse_tag(format, tag).map(|v| v.to_string()).as_deref(), expected, "{format} {tag}");
    }
}

#[test]
fn tags() {
    let d = default_rules();
    let tag = |name: &str, existing: &[&str], on: Option<bool>, level: Option<u32>| TagFacts {
        name: name.into(),
        existing: existing.iter().map(|s| s.to_string()).collect(),
        on_release_branch: on,
        creator_level: level,
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, TagFacts, Vec<&str>)> = vec![
        ("first release", tag("v1.2.0", &[], Some(true), Some(40)), vec![]),
        ("hotfix continues", tag("v1.2.1", &["v1.2.0"], Some(true), Some(40)), vec![]),
        ("hotfix skips", tag("v1.2.2", &["v1.2.0"], Some(true), Some(40)), vec!["patch-sequence"]),
        ("bad format", tag("v1.2", &[], None, Some(40)), vec!["tag-format"]),
        ("not a release tag", tag("nightly-2024", &[], None, Some(30)), vec![]),
        ("off its release branch", tag("v1.2.0", &[], Some(false), Some(40)), vec!["release-tag"]),
        ("no release branch yet", tag("v1.3.0", &[], None, Some(40)), vec![]),
        ("created by a developer", tag("v1.2.0", &[], Some(true), Some(30)), vec!["tag-creator"]),
    ];
    for (what, facts, expected) in cases {
        assert_eq!(rules_of(&evaluate_tag(&d, &facts)), expected, "{what}");
    }
    let agent = Rules::resolve(&PolicySection::default(), "g/agent", Some("agent-v{version}"));
    assert_eq!(rules_of(&evaluate_tag(&agent, &tag("agent-v1.0", &[], None, None))), vec!["tag-format"]);
    assert!(evaluate_tag(&agent, &tag("v1.0", &[], None, None)).passed(), "other prefixes are not release tags");
}

#[test]
fn pushes() {
    let d = default_rules();
    let push = |branch: &str, level: u32, from_merge: bool| PushFacts {
        branch: branch.into(),
        user: "alice".into(),
        user_level: level,
        from_merge,
        ..PushFacts::default()
    };
    #[rustfmt::skip]
    let cases = [
        ("developer pushes to master", push("master", 30, false), vec!["protected-push"]),
        ("maintainer pushes to master (No one may)", push("master", 40, false), vec!["protected-push"]),
        ("a merge into master", push("master", 30, true), vec![]),
        ("developer pushes to a release branch", push("release/1.2", 30, false), vec!["protected-push"]),
        ("maintainer pushes to a release branch", push("release/1.2", 40, false), vec![]),
        ("anyone pushes a feature branch", push("feature/x", 30, false), vec![]),
    ];
    for (what, facts, expected) in cases {
        assert_eq!(rules_of(&evaluate_push(&d, &facts)), expected, "{what}");
    }
    let v = evaluate_push(&d, &push("master", 30, false));
    assert_eq!(
        v.violations[0].message,
        "alice pushed to `master` directly: nobody may push to it; it only changes through merge requests"
    );
}

fn compliant() -> ProjectFacts {
    ProjectFacts {
        merge_method: Some("rebase_merge".into()),
        pipeline_must_succeed: Some(true),
        discussions_resolved: Some(true),
        remove_source_branch: Some(true),
        protected_branches: vec![
            BranchProtectionFact { name: "master".into(), push: vec![0], merge: vec![40], ..Default::default() },
            BranchProtectionFact { name: "release/*".into(), push: vec![40], merge: vec![30], ..Default::default() },
            BranchProtectionFact { name: "develop".into(), push: vec![30], merge: vec![30], ..Default::default() },
        ],
        protected_tags: vec![TagProtectionFact { name: "v*".into(), create: vec![40], extra_entries: 0 }],
    }
}

#[test]
fn audits() {
    let d = default_rules();
    assert!(audit(&d, &compliant()).clean(), "{:?}", audit(&d, &compliant()));
    let mut f = compliant();
    f.merge_method = Some("merge".into());
    f.pipeline_must_succeed = Some(false);
    f.remove_source_branch = None;
    f.protected_branches[0].allow_force_push = true;
    f.protected_branches[1].push = vec![30];
    f.protected_branches.retain(|p| p.name != "develop");
    f.protected_tags.clear();
    let a = audit(&d, &f);
    let rules: Vec<&str> = a.drifts.iter().map(|x| x.violation.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "merge-method",
            "pipeline-must-succeed",
            "remove-source-branch",
            "protected-branch",
            "protected-branch",
            "protected-tag"
        ]
    );
    assert_eq!(a.drifts[0].violation.message, "merge method is merge, not rebase_merge");
    assert_eq!(a.drifts[3].actual, "push No one, merge Maintainers, force push allowed");
    assert_eq!(a.drifts[3].wanted, "push No one, merge Maintainers, force push off");
    assert_eq!(
        a.changes,
        vec![
            Change::Settings {
                merge_method: Some(PolicyMergeMethod::RebaseMerge),
                pipeline_must_succeed: Some(true),
                discussions_resolved: None,
                remove_source_branch: Some(true),
            },
            Change::ReprotectBranch(d.protected_branches[0].clone()),
            Change::ReprotectBranch(d.protected_branches[1].clone()),
            Change::ProtectTag(d.protected_tags[0].clone()),
        ]
    );
    let mut missing = compliant();
    missing.protected_branches.clear();
    missing.protected_tags[0].extra_entries = 1;
    let a = audit(&d, &missing);
    assert!(matches!(a.changes[0], Change::ProtectBranch(_)));
    assert!(matches!(a.changes[2], Change::ReprotectTag(_)));
}
