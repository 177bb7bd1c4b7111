//! The GitLab client's project and repository calls against the double: merge settings, branches and
//! tags (pages followed), protected branches and tags, compare, member roles; each with the error
//! GitLab answers when it goes wrong.

use tao::config::Secret;
use tao::gitlab::client::{
    AccessLevel, Auth, GitLabError, MergeMethod, ProjectId, ProjectSettings, ProtectBranchRequest,
};

use crate::gitlab::{client, root};
use crate::support::gitlab::GitLabDouble;

fn api_fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitlab/api").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn client_types_read_every_api_fixture() {
    use tao::gitlab::client as gl;
    let project: gl::Project = api_fixture("gitlab4j-project.json");
    assert_eq!((project.id, project.default_branch.as_deref()), (3, Some("master")));
    let tag: gl::Tag = api_fixture("gitlab4j-tag.json");
    assert_eq!((tag.name.as_str(), tag.commit.parent_ids.len()), ("v1.0.0", 1));
    for file in ["gitlab4j-protected-branch.json", "protected_branch.docs.json"] {
        let rule: gl::ProtectedBranch = api_fixture(file);
        assert_eq!(rule.merge_access_levels[0].access_level, Some(AccessLevel::MAINTAINER), "{file}");
    }
    let tags: Vec<gl::ProtectedTag> = api_fixture("gitlab4j-protected-tags.json");
    assert_eq!(tags[1].create_access_levels[0].access_level, Some(AccessLevel::DEVELOPER));
    let diff: gl::Comparison = api_fixture("gitlab4j-compare-results.json");
    assert_eq!((diff.commits.len(), diff.diffs[0].new_path.as_str()), (1, "files/js/application.js"));
    let mr: gl::MergeRequest = api_fixture("gitlab4j-merge-request.json");
    assert_eq!((mr.iid, mr.state), (1, gl::MergeRequestState::Merged));
    assert!(mr.head_pipeline.is_some());
    let note: gl::Note = api_fixture("gitlab4j-merge-request-note.json");
    assert_eq!((note.id, note.author.username.as_str()), (301, "pipin"));
    let status: gl::CommitStatusEntry = api_fixture("gitlab4j-commit-status.json");
    assert_eq!((status.status, status.pipeline_id), (gl::CommitState::Failed, Some(15641)));
    let status: gl::CommitStatusEntry = api_fixture("commit_status.docs.json");
    assert_eq!((status.status, status.name.as_str()), (gl::CommitState::Success, "default"));
    let deployment: gl::Deployment = api_fixture("gitlab4j-deployment.json");
    assert_eq!(deployment.environment.unwrap().name, "production");
    let pipeline: gl::Pipeline = api_fixture("gitlab4j-pipeline.json");
    assert_eq!((pipeline.id, pipeline.status.as_deref()), (46, Some("success")));
    let job: gl::Job = api_fixture("gitlab4j-job.json");
    assert_eq!(job.id, 7);
}

fn api() -> ProjectId {
    ProjectId::Path("monitor/api".into())
}

/// A double with `monitor/api` and a developer; returns the developer's client too.
async fn world_with_developer() -> (GitLabDouble, tao::gitlab::client::GitLabClient) {
    let double = GitLabDouble::start().await;
    double.add_project("monitor/api");
    let (dev, token) = double.add_user("dev");
    double.add_member("monitor/api", dev, 30);
    let dev_client = client(&double, Auth::PrivateToken(Secret::new(token)));
    (double, dev_client)
}

#[tokio::test]
async fn update_project_sends_only_the_given_settings() {
    crate::support::limit(update_project_sends_only_the_given_settings_body()).await
}

async fn update_project_sends_only_the_given_settings_body() {
    let (double, dev) = world_with_developer().await;
    let c = client(&double, root());
    let settings = ProjectSettings {
        merge_method: Some(MergeMethod::Ff),
        only_allow_merge_if_pipeline_succeeds: Some(true),
        ..ProjectSettings::default()
    };
    let project = c.update_project(&api(), &settings).await.unwrap();
    assert_eq!(project.merge_method, Some(MergeMethod::Ff));
    assert_eq!(project.only_allow_merge_if_pipeline_succeeds, Some(true));
    assert_eq!(project.remove_source_branch_after_merge, Some(true), "untouched settings keep GitLab's value");
    let sent = double.requests().into_iter().find(|r| r.method == "PUT").unwrap();
    assert_eq!(sent.path, "/api/v4/projects/monitor%2Fapi");
    assert_eq!(
        sent.body.unwrap(),
        serde_json::json!({ "merge_method": "ff", "only_allow_merge_if_pipeline_succeeds": true })
    );
    assert_eq!(c.project(&api()).await.unwrap().merge_method, Some(MergeMethod::Ff));

    let e = dev.update_project(&api(), &settings).await.unwrap_err();
    assert_eq!(e.to_string(), "GitLab update project: HTTP 403: 403 Forbidden", "Developers may not");
}

#[tokio::test]
async fn branches_are_listed_across_pages_and_read_one_by_one() {
    crate::support::limit(branches_are_listed_across_pages_and_read_one_by_one_body()).await
}

async fn branches_are_listed_across_pages_and_read_one_by_one_body() {
    let double = GitLabDouble::start().await;
    double.add_project("monitor/api");
    for i in 0..120 {
        double.push("monitor/api", &format!("feature/{i:03}"), &format!("change {i}"));
    }
    let head = double.push("monitor/api", "feature/xyz", "the head");
    let c = client(&double, root());

    let all = c.branches(&api()).await.unwrap();
    assert_eq!(all.len(), 122, "main and 121 features");
    assert_eq!(double.count_requests("GET /api/v4/projects/monitor%2Fapi/repository/branches"), 2, "two pages");
    let pages: Vec<String> = double.requests().iter().map(|r| r.query.clone()).collect();
    assert_eq!(pages, ["per_page=100&page=1", "per_page=100&page=2"]);

    let one = c.branch(&api(), "feature/xyz").await.unwrap();
    assert_eq!((one.name.as_str(), one.commit.id.as_str(), one.protected), ("feature/xyz", head.as_str(), false));
    assert_eq!(one.commit.parent_ids.len(), 1);
    let e = c.branch(&api(), "nope").await.unwrap_err();
    assert_eq!(e.to_string(), "GitLab get branch: HTTP 404: 404 Branch Not Found");
}

#[tokio::test]
async fn tags_are_created_read_and_an_existing_tag_is_its_own_error() {
    crate::support::limit(tags_are_created_read_and_an_existing_tag_is_its_own_error_body()).await
}

async fn tags_are_created_read_and_an_existing_tag_is_its_own_error_body() {
    let double = GitLabDouble::start().await;
    double.add_project("monitor/api");
    let head = double.push("monitor/api", "main", "release me");
    let c = client(&double, root());

    let tag = c.create_tag(&api(), "v1.0.0", "main", Some("Release 1.0.0")).await.unwrap();
    assert_eq!((tag.name.as_str(), tag.commit.id.as_str()), ("v1.0.0", head.as_str()));
    assert_eq!(tag.message.as_deref(), Some("Release 1.0.0"));
    c.create_tag(&api(), "v1.0.1", &head, None).await.unwrap();
    assert_eq!(c.tag(&api(), "v1.0.1").await.unwrap().message, None, "lightweight");
    let names: Vec<String> = c.tags(&api()).await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["v1.0.1", "v1.0.0"]);

    let again = c.create_tag(&api(), "v1.0.0", "main", None).await.unwrap_err();
    assert!(matches!(&again, GitLabError::TagExists { tag } if tag == "v1.0.0"), "{again:?}");
    assert_eq!(double.count_requests("POST /api/v4/projects/monitor%2Fapi/repository/tags"), 3, "not retried");
    let bad = c.create_tag(&api(), "v2", "no-such-branch", None).await.unwrap_err();
    assert_eq!(bad.to_string(), "GitLab create tag: HTTP 400: Target no-such-branch is invalid");
    let missing = c.tag(&api(), "v9").await.unwrap_err();
    assert_eq!(missing.status(), Some(404));
}

#[tokio::test]
async fn protected_branches_are_created_read_and_deleted() {
    crate::support::limit(protected_branches_are_created_read_and_deleted_body()).await
}

async fn protected_branches_are_created_read_and_deleted_body() {
    let (double, dev) = world_with_developer().await;
    let c = client(&double, root());
    let rule = ProtectBranchRequest {
        name: "main".into(),
        push_access_level: AccessLevel::NO_ACCESS,
        merge_access_level: AccessLevel::MAINTAINER,
        allow_force_push: false,
    };
    let created = c.protect_branch(&api(), &rule).await.unwrap();
    assert_eq!(created.name, "main");
    assert_eq!(created.push_access_levels[0].access_level, Some(AccessLevel::NO_ACCESS));
    assert_eq!(created.merge_access_levels[0].access_level, Some(AccessLevel::MAINTAINER));
    assert_eq!(created.merge_access_levels[0].access_level_description.as_deref(), Some("Maintainers"));
    assert!(c.branch(&api(), "main").await.unwrap().protected);
    let read = c.protected_branch(&api(), "main").await.unwrap();
    assert_eq!((read.id, read.allow_force_push), (created.id, false));
    assert_eq!(c.protected_branches(&api()).await.unwrap().len(), 1);

    let dup = c.protect_branch(&api(), &rule).await.unwrap_err();
    assert_eq!(dup.to_string(), "GitLab protect branch: HTTP 409: Protected branch 'main' already exists");
    assert_eq!(dev.protect_branch(&api(), &rule).await.unwrap_err().status(), Some(403));

    let wildcard = ProtectBranchRequest { name: "release/*".into(), ..rule.clone() };
    c.protect_branch(&api(), &wildcard).await.unwrap();
    c.protected_branch(&api(), "release/*").await.unwrap();
    c.unprotect_branch(&api(), "main").await.unwrap();
    assert_eq!(double.count_requests("DELETE /api/v4/projects/monitor%2Fapi/protected_branches/main"), 1);
    assert_eq!(c.protected_branch(&api(), "main").await.unwrap_err().status(), Some(404));
    let gone = c.unprotect_branch(&api(), "main").await.unwrap_err();
    assert_eq!(gone.to_string(), "GitLab unprotect branch: HTTP 404: 404 Not found");
    let left: Vec<String> = c.protected_branches(&api()).await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(left, ["release/*"]);
}

#[tokio::test]
async fn protected_tags_limit_who_creates_release_tags() {
    crate::support::limit(protected_tags_limit_who_creates_release_tags_body()).await
}

async fn protected_tags_limit_who_creates_release_tags_body() {
    let (double, dev) = world_with_developer().await;
    let c = client(&double, root());
    let rule = c.protect_tag(&api(), "v*", AccessLevel::MAINTAINER).await.unwrap();
    assert_eq!(rule.create_access_levels[0].access_level, Some(AccessLevel::MAINTAINER));
    assert_eq!(c.protected_tags(&api()).await.unwrap()[0].name, "v*");
    let dup = c.protect_tag(&api(), "v*", AccessLevel::MAINTAINER).await.unwrap_err();
    assert_eq!(dup.status(), Some(422));
    assert_eq!(dup.to_string(), "GitLab protect tag: HTTP 422: [\"Name has already been taken\"]");

    // A Developer may tag, but not a protected name.
    assert_eq!(dev.create_tag(&api(), "v1.0.0", "main", None).await.unwrap_err().status(), Some(403));
    dev.create_tag(&api(), "nightly", "main", None).await.unwrap();
    c.unprotect_tag(&api(), "v*").await.unwrap();
    dev.create_tag(&api(), "v1.0.0", "main", None).await.unwrap();
    assert!(c.protected_tags(&api()).await.unwrap().is_empty());
}

#[tokio::test]
async fn compare_lists_what_a_branch_adds() {
    crate::support::limit(compare_lists_what_a_branch_adds_body()).await
}

async fn compare_lists_what_a_branch_adds_body() {
    let double = GitLabDouble::start().await;
    double.add_project("monitor/api");
    let first = double.push("monitor/api", "feature", "first");
    let second = double.push("monitor/api", "feature", "second");
    let c = client(&double, root());
    let diff = c.compare(&api(), "main", "feature").await.unwrap();
    let ids: Vec<&str> = diff.commits.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [first.as_str(), second.as_str()], "oldest first");
    assert_eq!(diff.commit.unwrap().id, second);
    assert_eq!((diff.diffs.len(), diff.compare_same_ref), (2, false));
    assert!(c.compare(&api(), "feature", "feature").await.unwrap().compare_same_ref);
    let e = c.compare(&api(), "main", "nope").await.unwrap_err();
    assert_eq!(e.to_string(), "GitLab compare: HTTP 404: 404 Ref Not Found");
}

#[tokio::test]
async fn member_roles_are_looked_up_for_permission_checks() {
    crate::support::limit(member_roles_are_looked_up_for_permission_checks_body()).await
}

async fn member_roles_are_looked_up_for_permission_checks_body() {
    let (double, dev) = world_with_developer().await;
    let dev_id = double.world().users.iter().find(|u| u.username == "dev").unwrap().id;
    let (lead, _) = double.add_user("lead");
    double.add_member("monitor/api", lead, 40);
    let c = client(&double, root());
    let m = c.member(&api(), dev_id).await.unwrap();
    assert_eq!((m.username.as_str(), m.access_level), ("dev", AccessLevel::DEVELOPER));
    assert!(c.member(&api(), lead).await.unwrap().access_level >= AccessLevel::MAINTAINER);
    let (stranger, stranger_token) = double.add_user("stranger");
    let e = c.member(&api(), stranger).await.unwrap_err();
    assert_eq!(e.to_string(), "GitLab get member: HTTP 404: 404 Not found");
    // A non-member does not even see that the private project exists.
    let outsider = client(&double, Auth::PrivateToken(Secret::new(stranger_token)));
    assert_eq!(
        outsider.project(&api()).await.unwrap_err().to_string(),
        "GitLab get project: HTTP 404: 404 Project Not Found"
    );
    assert_eq!(dev.member(&api(), lead).await.unwrap().access_level, AccessLevel::MAINTAINER, "Reporters may read");
}
