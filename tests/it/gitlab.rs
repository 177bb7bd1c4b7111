//! The GitLab side: typed views over every fixture, the production client against the GitLab double
//! (auth, pagination, retries), `tao gitlab hooks sync`, and a synced hook delivering into Tao.

use std::time::{Duration, Instant};

use tao::config::Secret;
use tao::gitlab::client::{Auth, GitLabClient, ProjectId, RetryPolicy};
use tao::gitlab::events::GitLabEvent;
use tao::gitlab::hook_sync::{self, HookChange, HookSpec};
use tao::store::event::{self, EventFilter};
use tokio::process::Command;

use crate::support::gitlab::{webhook_fixture, GitLabDouble, ROOT_TOKEN, WEBHOOK_FIXTURES};
use crate::support::{spawn_app_with, TestDb, EXAMPLE};
use crate::webhook::SECRET;

/// The production client pointed at the double, with short retry delays.
pub fn client(double: &GitLabDouble, auth: Auth) -> GitLabClient {
    let retry =
        RetryPolicy { max_attempts: 4, base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(2) };
    GitLabClient::new(&double.url, auth, retry).unwrap()
}

/// The double's admin token.
pub fn root() -> Auth {
    Auth::PrivateToken(Secret::new(ROOT_TOKEN))
}

#[test]
fn typed_views_parse_every_relevant_fixture() {
    let mut acted_on = 0;
    for (file, _) in WEBHOOK_FIXTURES {
        let payload: serde_json::Value = serde_json::from_slice(&webhook_fixture(file)).unwrap();
        let kind = tao::gitlab::webhook::kind_of("", &payload);
        let view = GitLabEvent::parse(&kind, &payload).unwrap_or_else(|e| panic!("{file}: {e}"));
        let ok = match (file.trim_end_matches(".json"), &view) {
            ("push" | "system_hook_push", GitLabEvent::Push(p)) => {
                p.git_ref == "refs/heads/master" && p.after.len() == 40 && !p.is_deletion()
            }
            ("tag_push", GitLabEvent::TagPush(p)) => p.git_ref == "refs/tags/v1.0.0" && p.checkout_sha.is_some(),
            ("merge_request", GitLabEvent::MergeRequest(m)) => {
                m.object_attributes.iid == 1 && m.object_attributes.action.as_deref() == Some("open")
            }
            ("merge_request_update", GitLabEvent::MergeRequest(m)) => {
                m.object_attributes.action.as_deref() == Some("update")
                    && m.object_attributes.source_branch.as_deref() == Some("next-feature")
            }
            ("system_hook_merge_request", GitLabEvent::MergeRequest(m)) => m.object_attributes.action.is_none(),
            ("note_merge_request", GitLabEvent::Note(n)) => {
                n.object_attributes.noteable_type == "MergeRequest" && n.merge_request.as_ref().unwrap().iid == 1
            }
            ("note_commit" | "note_issue", GitLabEvent::Note(n)) => n.merge_request.is_none(),
            ("pipeline", GitLabEvent::Pipeline(p)) => {
                p.object_attributes.id == 31 && p.object_attributes.status.as_deref() == Some("success")
            }
            ("job", GitLabEvent::Job(j)) => j.build_id == 3580121225 && j.pipeline_id == Some(743121198),
            ("build", GitLabEvent::Job(j)) => j.build_id == 1977 && j.build_status.as_deref() == Some("created"),
            ("deployment", GitLabEvent::Deployment(d)) => {
                d.deployment_id == 15 && d.environment.as_deref() == Some("staging")
            }
            ("release", GitLabEvent::Release(r)) => r.tag == "1.0.0" && r.action.as_deref() == Some("create"),
            ("issue", GitLabEvent::Issue(i)) => {
                i.object_attributes.iid == Some(23) && i.object_attributes.action.as_deref() == Some("open")
            }
            (_, GitLabEvent::Other(_)) => {
                acted_on -= 1;
                true
            }
            _ => false,
        };
        acted_on += 1;
        assert!(ok, "{file}: unexpected view {view:?}");
    }
    assert_eq!(acted_on, 15, "every fixture of a kind Tao acts on has a typed view");
    // Tolerant of missing fields: an empty object parses as every kind.
    for kind in ["push", "tag_push", "merge_request", "note", "pipeline", "build", "deployment", "release", "issue"] {
        GitLabEvent::parse(kind, &serde_json::json!({})).unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

#[tokio::test]
async fn client_authenticates_like_gitlab() {
    crate::support::limit(client_authenticates_like_gitlab_body()).await
}

async fn client_authenticates_like_gitlab_body() {
    let double = GitLabDouble::start().await;
    assert_eq!(client(&double, root()).current_user().await.unwrap().username, "root");
    let bearer = client(&double, Auth::Bearer(Secret::new(ROOT_TOKEN)));
    assert_eq!(bearer.current_user().await.unwrap().username, "root");
    let wrong = client(&double, Auth::PrivateToken(Secret::new("nope"))).current_user().await.unwrap_err();
    assert_eq!(wrong.status(), Some(401));
    assert_eq!(wrong.to_string(), "GitLab current user: HTTP 401: 401 Unauthorized");
    let id = double.add_project("monitor/api");
    let by_path = client(&double, root()).project(&ProjectId::Path("monitor/api".into())).await.unwrap();
    assert_eq!((by_path.id, by_path.path_with_namespace.as_str()), (id, "monitor/api"));
    let missing = client(&double, root()).project(&ProjectId::Path("monitor/nope".into())).await.unwrap_err();
    assert_eq!(missing.to_string(), "GitLab get project: HTTP 404: 404 Project Not Found");
}

#[tokio::test]
async fn job_token_identifies_its_job() {
    crate::support::limit(job_token_identifies_its_job_body()).await
}

async fn job_token_identifies_its_job_body() {
    let double = GitLabDouble::start().await;
    let project = double.add_project("monitor/api");
    let (job_id, token) = double.start_job(project, "main");
    // The client's own token is irrelevant: the job token goes in JOB-TOKEN, without GET /user.
    let c = client(&double, Auth::PrivateToken(Secret::new("unused")));
    let job = c.job_of_token(&Secret::new(token)).await.unwrap();
    assert_eq!((job.id, job.git_ref.as_deref()), (job_id, Some("main")));
    assert_eq!(job.pipeline.unwrap()["project_id"], project);
    assert_eq!(double.count_requests("GET /api/v4/user"), 0);
    let bad = c.job_of_token(&Secret::new("glcbt-forged")).await.unwrap_err();
    assert_eq!(bad.status(), Some(401));
}

#[tokio::test]
async fn client_retries_429_and_5xx_but_not_4xx() {
    crate::support::limit(client_retries_429_and_5xx_but_not_4xx_body()).await
}

async fn client_retries_429_and_5xx_but_not_4xx_body() {
    let double = GitLabDouble::start().await;
    let c = client(&double, root());

    double.fail_next("/user", 429, Some(1));
    let started = Instant::now();
    c.current_user().await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "waited for Retry-After");
    assert_eq!(double.count_requests("GET /api/v4/user"), 2);

    double.fail_next("/user", 502, None);
    double.fail_next("/user", 503, None);
    c.current_user().await.unwrap();
    assert_eq!(double.count_requests("GET /api/v4/user"), 5, "two 5xx retried");

    double.fail_next("/user", 403, None);
    let e = c.current_user().await.unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert_eq!(double.count_requests("GET /api/v4/user"), 6, "4xx never retried");

    for _ in 0..4 {
        double.fail_next("/user", 500, None);
    }
    assert_eq!(c.current_user().await.unwrap_err().status(), Some(500), "gives up after max_attempts");
    assert_eq!(double.count_requests("GET /api/v4/user"), 10);

    // A creating POST is retried on 429 (GitLab did nothing) but not on 5xx (it may have done it).
    double.add_project("monitor/api");
    let api = ProjectId::Path("monitor/api".into());
    let events = hook_sync::tao_events();
    double.fail_next("/hooks", 500, None);
    let e = c.create_project_hook(&api, "http://tao/h", &Secret::new("s"), &events).await.unwrap_err();
    assert_eq!(e.status(), Some(500));
    assert_eq!(double.count_requests("POST /api/v4/projects/monitor%2Fapi/hooks"), 1);
    double.fail_next("/hooks", 429, Some(0));
    c.create_project_hook(&api, "http://tao/h", &Secret::new("s"), &events).await.unwrap();
    assert_eq!(double.count_requests("POST /api/v4/projects/monitor%2Fapi/hooks"), 3);
    assert_eq!(double.hooks("monitor/api").len(), 1);
}

#[tokio::test]
async fn hook_sync_creates_and_updates_hooks_in_the_double() {
    crate::support::limit(hook_sync_creates_and_updates_hooks_in_the_double_body()).await
}

async fn hook_sync_creates_and_updates_hooks_in_the_double_body() {
    let double = GitLabDouble::start().await;
    for p in ["monitor/api", "monitor/ops"] {
        double.add_project(p);
    }
    // Someone else's hooks fill more than one page, so the client must follow X-Next-Page.
    let c = client(&double, root());
    let foreign = hook_sync::tao_events();
    for i in 0..120 {
        c.create_project_hook(
            &ProjectId::Path("monitor/ops".into()),
            &format!("http://other/{i}"),
            &Secret::new("x"),
            &foreign,
        )
        .await
        .unwrap();
    }
    let projects = ["monitor/api".to_string(), "monitor/ops".to_string(), "monitor/gone".to_string()];
    let spec = HookSpec::for_tao("https://tao.example", Secret::new("s1"));

    let first = hook_sync::sync(&c, &projects, &spec, false).await;
    assert!(matches!(&first[0], HookChange::Created { project, .. } if project == "monitor/api"), "{first:?}");
    assert!(matches!(&first[1], HookChange::Created { project, .. } if project == "monitor/ops"), "{first:?}");
    assert!(matches!(&first[2], HookChange::Failed { error, .. } if error.contains("HTTP 404")), "{first:?}");
    let hook = &double.hooks("monitor/api")[0];
    assert_eq!(hook.url, "https://tao.example/api/v1/gitlab/webhook");
    assert_eq!(hook.token, "s1");
    assert!(hook.events.values().all(|v| v == true), "{:?}", hook.events);
    assert_eq!(double.hooks("monitor/ops").len(), 121);

    let again = hook_sync::sync(&c, &projects[..2], &spec, false).await;
    assert!(again.iter().all(|c| matches!(c, HookChange::Unchanged { .. })), "{again:?}");

    // Someone turned off note events on one project; a secret rotation touches every hook.
    double.world().projects[0].hooks[0].events.insert("note_events".into(), false.into());
    let fixed = hook_sync::sync(&c, &projects[..2], &spec, false).await;
    assert!(matches!(&fixed[0], HookChange::Updated { reason, .. } if reason == "events differ"), "{fixed:?}");
    assert!(matches!(&fixed[1], HookChange::Unchanged { .. }));
    assert_eq!(double.hooks("monitor/api")[0].events["note_events"], true);
    let rotated = HookSpec::for_tao("https://tao.example", Secret::new("s2"));
    let changes = hook_sync::sync(&c, &projects[..2], &rotated, true).await;
    assert!(changes.iter().all(|c| matches!(c, HookChange::Updated { .. })), "{changes:?}");
    assert_eq!(double.hooks("monitor/api")[0].token, "s2");
    assert_eq!(double.hooks("monitor/api").len(), 1, "updated in place, never duplicated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_hooks_deliver_gitlab_events_into_tao() {
    crate::support::limit(synced_hooks_deliver_gitlab_events_into_tao_body()).await
}

async fn synced_hooks_deliver_gitlab_events_into_tao_body() {
    let app = spawn_app_with(TestDb::sqlite(), |s| s.gitlab_webhook_secrets = vec![Secret::new(SECRET)]).await;
    let double = GitLabDouble::start().await;
    for p in ["monitor/ops", "monitor/api", "monitor/graph", "monitor/agent", "monitor/self-monitor"] {
        double.add_project(p);
    }
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("tao.yaml");
    std::fs::write(&catalog, EXAMPLE).unwrap();
    let sync = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tao"));
        cmd.args(["gitlab", "hooks", "sync", "-f", catalog.to_str().unwrap()])
            .env("TAO_GITLAB_URL", &double.url)
            .env("TAO_GITLAB_TOKEN", ROOT_TOKEN)
            .env("TAO_GITLAB_WEBHOOK_SECRET", format!("{SECRET},older"))
            .env("TAO_PUBLIC_URL", &app.base);
        cmd
    };
    let out = sync().output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("created").count(), 5, "{stdout}");
    assert!(!stdout.contains(SECRET), "never prints the secret");
    let out = sync().output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).matches("unchanged").count(), 5);

    // Developer pushes → GitLab sends the hook → Tao stores it, once, however often GitLab resends.
    let push = webhook_fixture("push.json");
    assert_eq!(double.deliver("monitor/api", "Push Hook", &push, "d-1").await, [200]);
    assert_eq!(double.deliver("monitor/api", "Push Hook", &push, "d-1").await, [200]);
    let rows = event::page(&app.pool, &EventFilter::default(), 0, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].webhook_id.as_deref(), Some(double.hooks("monitor/api")[0].uuid.as_str()));
    app.stop().await;
}
