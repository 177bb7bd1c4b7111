//! Branch policy against the GitLab double, driven by webhooks as GitLab sends them: the `tao/policy`
//! status (`pending` at once, then the verdict) and one note per MR; behind sources; concurrent,
//! out-of-order and replayed deliveries across a crash; GitLab failing mid-check; external status checks
//! (signed); the push and tag guard; the explanation page; reconcile.

use hmac::{Hmac, Mac};
use rand::seq::SliceRandom;
use serde_json::Value;
use sha2::Sha256;
use tao::config::Secret;
use tao::gitlab::client::ProjectId;
use tao::gitlab::hook_sync::tao_events;
use tao::store::event;

use crate::both_backends;
use crate::gitlab::{client, root};
use crate::support::gitlab::{send_webhook, GitLabDouble, ROOT_TOKEN};
use crate::support::{respawn, spawn_app_with, TestApp, TestDb};
use crate::webhook::{hook_url, wait_for, SECRET};

const MARKER: &str = "<!-- tao:policy -->";
const CHECK_SECRET: &str = "status-check-secret";
const PROJECT: &str = "monitor/api";

struct Scene {
    app: TestApp,
    double: GitLabDouble,
    project_id: i64,
    dev: i64,
    maintainer: i64,
}

async fn tao_for(double: &GitLabDouble, db: TestDb) -> TestApp {
    let url = double.url.clone();
    spawn_app_with(db, move |s| {
        s.gitlab_url = Some(url);
        s.gitlab_token = Some(Secret::new(ROOT_TOKEN));
        s.gitlab_webhook_secrets = vec![Secret::new(SECRET)];
        s.public_url = Some("https://tao.example".into());
        s.gitlab_status_check_secret = Some(Secret::new(CHECK_SECRET));
    })
    .await
}

/// `monitor/api` with a developer, a maintainer and a release line `release/1.2` one commit ahead of
/// `main`; Tao's hook is installed when `hook` is true.
async fn scene(db: TestDb, hook: bool) -> Scene {
    let double = GitLabDouble::start().await;
    let project_id = double.add_project(PROJECT);
    let (dev, _) = double.add_user("dev");
    double.add_member(PROJECT, dev, 30);
    let (maintainer, _) = double.add_user("maintainer");
    double.add_member(PROJECT, maintainer, 40);
    double.branch_from(PROJECT, "release/1.2", "main");
    double.push(PROJECT, "release/1.2", "prepare 1.2");
    let app = tao_for(&double, db).await;
    let scene = Scene { app, double, project_id, dev, maintainer };
    if hook {
        install_hook(&scene).await;
    }
    scene
}

async fn install_hook(s: &Scene) {
    client(&s.double, root())
        .create_project_hook(
            &ProjectId::Path(PROJECT.into()),
            &hook_url(&s.app.base),
            &Secret::new(SECRET),
            &tao_events(),
        )
        .await
        .unwrap();
}

async fn settled(app: &TestApp) {
    wait_for("every event handled", || async { event::unprocessed(&app.pool).await.unwrap() == 0 }).await;
}

/// The `tao/policy` status posts Tao sent, in order: (sha, state, description).
fn status_posts(double: &GitLabDouble) -> Vec<(String, String, String)> {
    double
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.contains("/statuses/"))
        .map(|r| {
            let body = r.body.unwrap_or_default();
            assert_eq!(body["name"], "tao/policy");
            let sha = r.path.rsplit('/').next().unwrap().to_string();
            (sha, body["state"].as_str().unwrap().to_string(), body["description"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

fn tao_notes(double: &GitLabDouble, iid: i64) -> Vec<crate::support::gitlab::Note> {
    double.notes(PROJECT, iid).into_iter().filter(|n| n.body.contains(MARKER)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliant_feature_to_release_mr_gets_pending_then_success_and_no_noise() {
    crate::support::limit(a_compliant_feature_to_release_mr_gets_pending_then_success_and_no_noise_body()).await
}

async fn a_compliant_feature_to_release_mr_gets_pending_then_success_and_no_noise_body() {
    let s = scene(TestDb::sqlite(), true).await;
    s.double.branch_from(PROJECT, "feature/login", "release/1.2");
    let head = s.double.push(PROJECT, "feature/login", "add login");
    let mark = s.double.mark();
    let (iid, answers) = s.double.open_merge_request(PROJECT, "feature/login", "release/1.2", "Add login", s.dev).await;
    assert_eq!(answers, [200]);
    settled(&s.app).await;
    assert_eq!(
        status_posts(&s.double),
        [
            (head.clone(), "pending".into(), "Checking the branch policy…".into()),
            (head.clone(), "success".into(), "Branch policy: all rules pass".into()),
        ]
    );
    let post = s.double.requests().into_iter().rfind(|r| r.path.contains("/statuses/")).unwrap();
    assert_eq!(post.body.unwrap()["target_url"], format!("https://tao.example/ui/policy/{PROJECT}/{iid}"));
    assert!(s.double.notes(PROJECT, iid).is_empty(), "a compliant MR gets no note");
    assert_eq!(s.double.mutations_since(mark).len(), 2, "two status posts, nothing else changed");

    let page = s.app.http.get(format!("{}/ui/policy/{PROJECT}/{iid}", s.app.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("All branch policy rules pass") && html.contains(&head), "{html}");
    let missing = s.app.http.get(format!("{}/ui/policy/{PROJECT}/99", s.app.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pipeline_on_the_same_head_gets_its_own_verdict() {
    crate::support::limit(a_new_pipeline_on_the_same_head_gets_its_own_verdict_body()).await
}

async fn a_new_pipeline_on_the_same_head_gets_its_own_verdict_body() {
    let s = scene(TestDb::sqlite(), true).await;
    s.double.branch_from(PROJECT, "feature/login", "release/1.2");
    let head = s.double.push(PROJECT, "feature/login", "add login");
    let (iid, _) = s.double.open_merge_request(PROJECT, "feature/login", "release/1.2", "Add login", s.dev).await;
    settled(&s.app).await;
    let pipeline = s.double.start_mr_pipeline(PROJECT, iid).await;
    settled(&s.app).await;
    let posts: Vec<Value> = s
        .double
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.contains("/statuses/"))
        .map(|r| r.body.unwrap())
        .collect();
    let seen: Vec<(&str, Option<i64>)> =
        posts.iter().map(|b| (b["state"].as_str().unwrap(), b["pipeline_id"].as_i64())).collect();
    assert_eq!(seen, [("pending", None), ("success", None), ("pending", Some(pipeline)), ("success", Some(pipeline))]);
    let statuses = s.double.world().projects[0].statuses.clone();
    assert!(statuses.iter().all(|st| st.sha == head && st.state == "success"), "{statuses:#?}");
    // Later hooks of the same pipeline (running, success) change nothing.
    let mark = s.double.mark();
    s.double
        .send_event(PROJECT, "pipeline_events", "Pipeline Hook", &{
            let mut v: Value =
                serde_json::from_slice(&crate::support::gitlab::webhook_fixture("pipeline.json")).unwrap();
            v["object_attributes"]["id"] = pipeline.into();
            v["object_attributes"]["sha"] = head.clone().into();
            v["object_attributes"]["ref"] = "feature/login".into();
            v["object_attributes"]["tag"] = false.into();
            v["object_attributes"]["status"] = "success".into();
            v["project"]["id"] = s.project_id.into();
            v["project"]["path_with_namespace"] = PROJECT.into();
            v["merge_request"]["iid"] = iid.into();
            v
        })
        .await;
    settled(&s.app).await;
    assert!(s.double.mutations_since(mark).is_empty(), "{:?}", s.double.mutations_since(mark));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feature_into_main_fails_with_the_reason_and_the_fix() {
    crate::support::limit(a_feature_into_main_fails_with_the_reason_and_the_fix_body()).await
}

async fn a_feature_into_main_fails_with_the_reason_and_the_fix_body() {
    let s = scene(TestDb::sqlite(), true).await;
    let head = s.double.push(PROJECT, "feature/x", "quick fix");
    let (iid, _) = s.double.open_merge_request(PROJECT, "feature/x", "main", "Quick fix", s.dev).await;
    settled(&s.app).await;
    let posts = status_posts(&s.double);
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[0].1, "pending");
    assert_eq!((posts[1].1.as_str(), posts[1].2.as_str()), ("failed", "`feature/x` → `main` is not an allowed merge"));
    let notes = tao_notes(&s.double, iid);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].body.contains("**flow** — `feature/x` → `main` is not an allowed merge"), "{}", notes[0].body);
    assert!(notes[0].body.contains("Fix: change the MR's target branch to `release/*`"), "{}", notes[0].body);
    assert!(notes[0].body.contains(&head[..8]), "the note names the head it judged");
    let html = s.app.http.get(format!("{}/ui/policy/{PROJECT}/{iid}", s.app.base)).send().await.unwrap();
    let html = html.text().await.unwrap();
    assert!(html.contains("<b>flow</b>") && html.contains("release/*"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_behind_source_fails_until_rebased_then_passes_in_the_same_note() {
    crate::support::limit(a_behind_source_fails_until_rebased_then_passes_in_the_same_note_body()).await
}

async fn a_behind_source_fails_until_rebased_then_passes_in_the_same_note_body() {
    let s = scene(TestDb::sqlite(), true).await;
    s.double.branch_from(PROJECT, "feature/login", "release/1.2");
    let first = s.double.push(PROJECT, "feature/login", "add login");
    // The release line moves on: the feature branch no longer contains the target's head.
    s.double.push(PROJECT, "release/1.2", "fix on the line");
    let (iid, _) = s.double.open_merge_request(PROJECT, "feature/login", "release/1.2", "Add login", s.dev).await;
    settled(&s.app).await;
    let posts = status_posts(&s.double);
    assert_eq!(
        posts.last().unwrap(),
        &(first.clone(), "failed".into(), "`feature/login` is 1 commit behind `release/1.2`".into())
    );
    let before = tao_notes(&s.double, iid);
    assert_eq!(before.len(), 1);
    assert!(before[0].body.contains("git rebase origin/release/1.2"), "{}", before[0].body);

    let rebased = s.double.rebase(PROJECT, "feature/login", "release/1.2", "add login (rebased)");
    let payload = s.double.mr_update_payload(PROJECT, iid, &first);
    assert_eq!(s.double.send_event(PROJECT, "merge_requests_events", "Merge Request Hook", &payload).await, [200]);
    settled(&s.app).await;
    let posts = status_posts(&s.double);
    let on_new: Vec<&str> = posts.iter().filter(|p| p.0 == rebased).map(|p| p.1.as_str()).collect();
    assert_eq!(on_new, ["pending", "success"]);
    let after = tao_notes(&s.double, iid);
    assert_eq!(after.len(), 1, "still one note");
    assert_eq!((after[0].id, after[0].edits), (before[0].id, 1), "the same note, edited once");
    assert!(after[0].body.contains("all rules pass") && after[0].body.contains(&rebased[..8]), "{}", after[0].body);
}

async fn fifty_pushes_out_of_order_and_replayed_after_a_crash(db: TestDb) {
    let s = scene(db, false).await;
    s.double.branch_from(PROJECT, "feature/x", "main");
    s.double.push(PROJECT, "feature/x", "start");
    let (iid, _) = s.double.open_merge_request(PROJECT, "feature/x", "main", "Into main", s.dev).await;
    install_hook(&s).await;
    let project = s.double.world().projects[0].clone();
    let hook = project.hooks[0].clone();
    let mut deliveries = Vec::new();
    let mut head = project.branch_head("feature/x").unwrap().to_string();
    for i in 0..50 {
        let old = head.clone();
        head = s.double.push(PROJECT, "feature/x", &format!("change {i}"));
        let body = serde_json::to_vec(&s.double.mr_update_payload(PROJECT, iid, &old)).unwrap();
        deliveries.push((format!("{:032x}", rand::random::<u128>()), body));
    }
    deliveries.shuffle(&mut rand::thread_rng());
    let send_all = |url: String| {
        let (deliveries, hook) = (deliveries.clone(), hook.clone());
        async move {
            let sends = deliveries
                .iter()
                .map(|(key, body)| send_webhook(&url, &hook.token, "Merge Request Hook", body, Some(key), &hook.uuid));
            futures_util::future::join_all(sends).await.iter().map(|r| r.status().as_u16()).collect::<Vec<_>>()
        }
    };
    let answers = send_all(hook.url.clone()).await;
    assert!(answers.iter().all(|a| *a == 200), "{answers:?}");
    // Crash while the events are being handled, start again, and let GitLab resend everything.
    let parts = s.app.kill().await;
    let app = respawn(parts, tao::app::runner_executor()).await;
    let answers = send_all(hook_url(&app.base)).await;
    assert!(answers.iter().all(|a| *a == 200), "{answers:?}");
    settled(&app).await;
    assert_eq!(event::page(&app.pool, &Default::default(), 0, 1000).await.unwrap().len(), 50, "resends not stored");

    let notes = tao_notes(&s.double, iid);
    assert_eq!(notes.len(), 1, "exactly one Tao note: {notes:#?}");
    assert!(notes[0].body.contains(&head[..8]), "the note describes the latest head: {}", notes[0].body);
    let statuses: Vec<_> =
        s.double.world().projects[0].statuses.iter().filter(|x| x.name == "tao/policy").cloned().collect();
    assert!(!statuses.is_empty());
    for st in &statuses {
        assert_eq!(st.sha, head, "statuses only on the latest head: {statuses:#?}");
    }
    assert!(statuses.iter().any(|st| st.state == "failed"), "a final verdict on the latest head");
    drop(app);
}
both_backends!(
    fifty_pushes_replayed_after_a_crash_leave_one_note_and_the_latest_head,
    fifty_pushes_out_of_order_and_replayed_after_a_crash
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_failing_mid_check_leaves_pending_and_never_a_false_success() {
    crate::support::limit(gitlab_failing_mid_check_leaves_pending_and_never_a_false_success_body()).await
}

async fn gitlab_failing_mid_check_leaves_pending_and_never_a_false_success_body() {
    let s = scene(TestDb::sqlite(), true).await;
    s.double.branch_from(PROJECT, "feature/login", "release/1.2");
    let head = s.double.push(PROJECT, "feature/login", "add login");
    // The comparison fails on every attempt of the client's retry policy: the check cannot finish.
    for _ in 0..4 {
        s.double.fail_next("/repository/compare", 500, None);
    }
    s.double.open_merge_request(PROJECT, "feature/login", "release/1.2", "Add login", s.dev).await;
    wait_for("the failed attempt", || async {
        let rows = event::page(&s.app.pool, &Default::default(), 0, 10).await.unwrap();
        rows.first().is_some_and(|r| r.state == "failed")
    })
    .await;
    let rows = event::page(&s.app.pool, &Default::default(), 0, 10).await.unwrap();
    assert!(rows[0].last_error.as_deref().unwrap_or_default().contains("HTTP 500"), "{rows:?}");
    assert_eq!(status_posts(&s.double), [(head.clone(), "pending".into(), "Checking the branch policy…".into())]);
    // The retry (after the worker's backoff) finishes the check.
    settled(&s.app).await;
    let posts = status_posts(&s.double);
    assert_eq!(posts.iter().map(|p| p.1.as_str()).collect::<Vec<_>>(), ["pending", "success"]);
}

fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_status_checks_are_verified_stored_and_answered_for_the_head() {
    crate::support::limit(external_status_checks_are_verified_stored_and_answered_for_the_head_body()).await
}

async fn external_status_checks_are_verified_stored_and_answered_for_the_head_body() {
    let s = scene(TestDb::sqlite(), true).await;
    let check = s.double.add_status_check(PROJECT, "Tao policy");
    let head = s.double.push(PROJECT, "feature/x", "quick fix");
    let (iid, _) = s.double.open_merge_request(PROJECT, "feature/x", "main", "Quick fix", s.dev).await;
    settled(&s.app).await;
    let mut body: Value =
        serde_json::from_slice(&crate::support::gitlab::webhook_fixture("external_status_check_request.json")).unwrap();
    body["project"]["id"] = s.project_id.into();
    body["project"]["path_with_namespace"] = PROJECT.into();
    body["object_attributes"]["iid"] = iid.into();
    body["object_attributes"]["target_project_id"] = s.project_id.into();
    body["external_approval_rule"]["id"] = check.into();
    let bytes = serde_json::to_vec(&body).unwrap();
    let url = format!("{}/api/v1/gitlab/status-checks", s.app.base);
    let post = |signature: Option<String>, bytes: Vec<u8>| {
        let mut rb = s.app.http.post(&url).header("Content-Type", "application/json").body(bytes);
        if let Some(sig) = signature {
            rb = rb.header("X-Gitlab-Signature", sig);
        }
        rb.send()
    };
    let stored_before = event::page(&s.app.pool, &Default::default(), 0, 100).await.unwrap().len();
    for (what, sig) in [
        ("no signature", None),
        ("wrong secret", Some(sign(&bytes, "guess"))),
        ("another body's signature", Some(sign(b"{}", CHECK_SECRET))),
        ("not hex", Some("zz".into())),
    ] {
        let r = post(sig, bytes.clone()).await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
    }
    assert_eq!(
        event::page(&s.app.pool, &Default::default(), 0, 100).await.unwrap().len(),
        stored_before,
        "nothing stored"
    );
    let r = post(Some(sign(&bytes, CHECK_SECRET)), bytes.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let again = post(Some(sign(&bytes, CHECK_SECRET)), bytes.clone()).await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "duplicate", "the same request is stored once");
    settled(&s.app).await;
    let answers = s.double.world().projects[0].status_check_answers.clone();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(
        (answers[0].sha.as_str(), answers[0].check_id, answers[0].status.as_str()),
        (head.as_str(), check, "failed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_pushes_and_bad_tags_are_recorded_as_violations() {
    crate::support::limit(direct_pushes_and_bad_tags_are_recorded_as_violations_body()).await
}

async fn direct_pushes_and_bad_tags_are_recorded_as_violations_body() {
    let s = scene(TestDb::sqlite(), true).await;
    // A developer pushes to main directly (the project's protections are not applied yet).
    let before = s.double.world().projects[0].branch_head("main").unwrap().to_string();
    s.double.push(PROJECT, "main", "hotfix straight on main");
    let push = s.double.push_payload(PROJECT, "main", &before, s.dev);
    assert_eq!(s.double.send_event(PROJECT, "push_events", "Push Hook", &push).await, [200]);
    // A compliant merge of release/1.2 into main by a developer is not a direct push.
    s.double.rebase(PROJECT, "release/1.2", "main", "prepare 1.2 (rebased)");
    let (iid, _) = s.double.open_merge_request(PROJECT, "release/1.2", "main", "Release 1.2", s.dev).await;
    settled(&s.app).await;
    s.double.merge(PROJECT, iid, s.dev).await;
    // Tags: a release tag by a maintainer on main (fine: no release/2.0 branch), a skipped patch
    // number, a malformed one.
    s.double.tag_and_notify(PROJECT, "v2.0.0", "main", s.maintainer).await;
    s.double.tag_and_notify(PROJECT, "v2.0.2", "main", s.maintainer).await;
    s.double.tag_and_notify(PROJECT, "v2.1", "main", s.maintainer).await;
    settled(&s.app).await;

    let r = s.app.get("/api/v1/policy/violations", &s.app.reader).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let list = r.body.as_array().unwrap().clone();
    let seen: Vec<(&str, &str, &str)> = list
        .iter()
        .map(|v| (v["kind"].as_str().unwrap(), v["ref"].as_str().unwrap(), v["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [("push", "main", "protected-push"), ("tag", "v2.0.2", "patch-sequence"), ("tag", "v2.1", "tag-format")]
    );
    assert_eq!(list[0]["actor"], "dev");
    assert!(list[0]["message"].as_str().unwrap().contains("dev pushed to `main` directly"));

    let lines = s
        .app
        .http
        .get(format!("{}/api/v1/policy/violations?project={PROJECT}&format=ndjson", s.app.base))
        .bearer_auth(&s.app.reader)
        .send()
        .await
        .unwrap();
    assert_eq!(lines.headers()["content-type"], "application/x-ndjson");
    let text = lines.text().await.unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(text.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()));
    let none = s.app.get("/api/v1/policy/violations?project=other/x", &s.app.reader).await;
    assert_eq!(none.body, serde_json::json!([]));
    let bad = s.app.get("/api/v1/policy/violations?since=yesterday", &s.app.reader).await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.to_string().contains("since"), "{:?}", bad.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_checks_open_mrs_that_missed_their_webhook() {
    crate::support::limit(reconcile_checks_open_mrs_that_missed_their_webhook_body()).await
}

async fn reconcile_checks_open_mrs_that_missed_their_webhook_body() {
    let s = scene(TestDb::sqlite(), false).await;
    s.double.branch_from(PROJECT, "feature/login", "release/1.2");
    let head = s.double.push(PROJECT, "feature/login", "add login");
    // The MR opens while Tao has no hook: the webhook is never sent.
    let (_iid, _) = s.double.open_merge_request(PROJECT, "feature/login", "release/1.2", "Add login", s.dev).await;
    assert!(status_posts(&s.double).is_empty());
    let denied = s.app.send(reqwest::Method::POST, "/api/v1/policy/reconcile", Some(&s.app.deployer), None).await;
    assert_eq!(denied.status, 403);
    let r = s.app.send(reqwest::Method::POST, "/api/v1/policy/reconcile", Some(&s.app.admin), None).await;
    assert_eq!((r.status, r.body["checked"].as_i64()), (200, Some(1)), "{:?}", r.body);
    assert_eq!(status_posts(&s.double).last().unwrap().1, "success");
    assert_eq!(status_posts(&s.double)[0].0, head);
    let again = s.app.send(reqwest::Method::POST, "/api/v1/policy/reconcile", Some(&s.app.admin), None).await;
    assert_eq!(again.body["checked"], 0, "a head with a final verdict is left alone");
}
