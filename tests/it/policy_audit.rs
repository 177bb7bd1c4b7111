//! `tao policy audit` / `apply` (the built binary) and `GET /api/v1/policy/audit` against the GitLab
//! double: every kind of drift of a misconfigured project is found, apply fixes it and reports each
//! change, the audit is then clean, and a second apply sends no mutating request (the recorder proves it).

use std::process::Output;

use serde_json::Value;
use tao::config::Secret;
use tokio::process::Command;

use crate::support::gitlab::world::ProtectedRef;
use crate::support::gitlab::{GitLabDouble, ROOT_TOKEN};
use crate::support::{spawn_app_with, TestDb};

const TAO: &str = env!("CARGO_BIN_EXE_tao");
const PROJECT: &str = "monitor/api";

async fn tao(double: &GitLabDouble, args: &[&str]) -> Output {
    let catalog = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/tao.yaml");
    let mut cmd = Command::new(TAO);
    cmd.args(["policy"]).args(args).args(["-f", catalog, "--project", PROJECT]);
    cmd.env("TAO_GITLAB_URL", &double.url).env("TAO_GITLAB_TOKEN", ROOT_TOKEN).env_remove("TAO_CATALOG");
    cmd.output().await.expect("run tao")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `monitor/api` configured against the policy in every way the audit knows.
async fn misconfigured() -> GitLabDouble {
    let double = GitLabDouble::start().await;
    double.add_project(PROJECT);
    let mut w = double.world();
    let id = w.next_id();
    let p = &mut w.projects[0];
    p.settings.insert("merge_method".into(), "merge".into());
    p.settings.insert("only_allow_merge_if_pipeline_succeeds".into(), false.into());
    p.settings.insert("remove_source_branch_after_merge".into(), false.into());
    // main: developers may push, and force-push.
    p.protected_branches.push(ProtectedRef { id, name: "main".into(), push: 30, merge: 30, allow_force_push: true });
    // A rule the policy does not name: left alone.
    p.protected_branches.push(ProtectedRef {
        id: id + 1000,
        name: "develop".into(),
        push: 30,
        merge: 30,
        allow_force_push: false,
    });
    // Release tags creatable by developers.
    p.protected_tags.push(ProtectedRef {
        id: id + 2000,
        name: "v*".into(),
        push: 30,
        merge: 0,
        allow_force_push: false,
    });
    drop(w);
    double
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_finds_every_drift_apply_fixes_it_and_a_second_apply_changes_nothing() {
    crate::support::limit(audit_finds_every_drift_apply_fixes_it_and_a_second_apply_changes_nothing_body()).await
}

async fn audit_finds_every_drift_apply_fixes_it_and_a_second_apply_changes_nothing_body() {
    let double = misconfigured().await;

    let out = tao(&double, &["audit"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    for expected in [
        "monitor/api: 7 difference(s)",
        "  - merge (merge-method)\n  + rebase_merge",
        "  - false (pipeline-must-succeed)\n  + true",
        "  - false (discussions-resolved)\n  + true",
        "  - false (remove-source-branch)\n  + true",
        "  - push Developers + Maintainers, merge Developers + Maintainers, force push allowed (protected-branch)\n  + push No one, merge Maintainers, force push off",
        "  - not protected (protected-branch)\n  + push Maintainers, merge Developers + Maintainers, force push off",
        "  - create Developers + Maintainers (protected-tag)\n  + create Maintainers",
    ] {
        assert!(report.contains(expected), "missing {expected:?} in:\n{report}");
    }

    let mark = double.mark();
    let dry = tao(&double, &["apply", "--dry-run"]).await;
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(text(&dry).contains("planned"), "{}", text(&dry));
    assert!(double.mutations_since(mark).is_empty(), "a dry run changes nothing");

    let mark = double.mark();
    let applied = tao(&double, &["apply"]).await;
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied));
    let report = text(&applied);
    assert!(report.contains("re-protect branch main: push No one, merge Maintainers, force push off"), "{report}");
    assert!(report.contains("protect branch release/*"), "{report}");
    assert!(report.contains("re-protect tags v*: create Maintainers"), "{report}");
    let p = "/api/v4/projects/monitor%2Fapi";
    assert_eq!(
        double.mutations_since(mark),
        [
            format!("PUT {p}"),
            format!("DELETE {p}/protected_branches/main"),
            format!("POST {p}/protected_branches"),
            format!("POST {p}/protected_branches"),
            format!("DELETE {p}/protected_tags/v%2A"),
            format!("POST {p}/protected_tags"),
        ]
    );
    {
        let w = double.world();
        let project = &w.projects[0];
        assert_eq!(project.settings["merge_method"], "rebase_merge");
        let main = project.protected_branches.iter().find(|r| r.name == "main").unwrap();
        assert_eq!((main.push, main.merge, main.allow_force_push), (0, 40, false));
        assert!(project.protected_branches.iter().any(|r| r.name == "develop"), "unrelated rules stay");
    }

    let clean = tao(&double, &["audit"]).await;
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    assert!(text(&clean).contains("monitor/api: as the policy says"), "{}", text(&clean));
    let mark = double.mark();
    let again = tao(&double, &["apply"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("nothing to change"), "{}", text(&again));
    assert!(double.mutations_since(mark).is_empty(), "{:?}", double.mutations_since(mark));
    assert!(double.mark() > mark, "it did read GitLab");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_api_reports_drifts_per_project() {
    crate::support::limit(the_audit_api_reports_drifts_per_project_body()).await
}

async fn the_audit_api_reports_drifts_per_project_body() {
    let double = misconfigured().await;
    let url = double.url.clone();
    let app = spawn_app_with(TestDb::sqlite(), move |s| {
        s.gitlab_url = Some(url);
        s.gitlab_token = Some(Secret::new(ROOT_TOKEN));
    })
    .await;
    let r = app.get(&format!("/api/v1/policy/audit?project={PROJECT}"), &app.reader).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["clean"], false);
    let project = &r.body["projects"][0];
    assert_eq!(project["project"], PROJECT);
    let rules: Vec<&str> = project["drifts"].as_array().unwrap().iter().map(|d| d["rule"].as_str().unwrap()).collect();
    assert_eq!(
        rules,
        [
            "merge-method",
            "pipeline-must-succeed",
            "discussions-resolved",
            "remove-source-branch",
            "protected-branch",
            "protected-branch",
            "protected-tag"
        ]
    );
    assert_eq!(project["changes"][0]["change"], "settings");
    // Every catalog project: the ones GitLab does not have are reported, not fatal.
    let all = app.get("/api/v1/policy/audit", &app.reader).await;
    let projects = all.body["projects"].as_array().unwrap();
    assert_eq!(projects.len(), 6, "{:?}", all.body);
    let missing: Vec<&Value> = projects.iter().filter(|p| p["error"].is_string()).collect();
    assert_eq!(missing.len(), 5);
    assert!(missing[0]["error"].as_str().unwrap().contains("404"), "{:?}", missing[0]);
    let unknown = app.get("/api/v1/policy/audit?project=other/x", &app.reader).await;
    assert_eq!(unknown.status, 404);
    let anonymous = app.send(reqwest::Method::GET, "/api/v1/policy/audit", None, None).await;
    assert_eq!(anonymous.status, 401);
    app.stop().await;
}
