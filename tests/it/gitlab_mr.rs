//! The GitLab client's merge request and CI calls against the double: MRs, notes (one note per marker,
//! edited in place, also after a lost answer), commit statuses, status check responses, deployments,
//! pipelines; an idempotent apply proven by the recorder; and a story where the double opens an MR and
//! comments on it, and Tao stores and handles both webhooks.

use tao::config::Secret;
use tao::gitlab::client::{
    AccessLevel, Auth, CommitState, CommitStatus, DeploymentStatus, GitLabClient, GitLabError, MergeMethod,
    MergeRequestState, NewDeployment, ProjectId, ProjectSettings, ProtectBranchRequest, StatusCheckStatus,
};
use tao::gitlab::events::GitLabEvent;
use tao::gitlab::hook_sync;
use tao::store::event::{self, EventFilter};

use crate::gitlab::{client, root};
use crate::support::gitlab::{GitLabDouble, Note};
use crate::support::{spawn_app_with, TestDb};
use crate::webhook::{wait_for, SECRET};

const MARKER: &str = "<!-- tao:policy -->";

fn api() -> ProjectId {
    ProjectId::Path("monitor/api".into())
}

/// `monitor/api` with a developer who pushed `feature` and opened MR !1 (no hooks yet).
async fn with_open_mr() -> (GitLabDouble, i64, String) {
    let double = GitLabDouble::start().await;
    double.add_project("monitor/api");
    let (dev, _) = double.add_user("dev");
    double.add_member("monitor/api", dev, 30);
    let head = double.push("monitor/api", "feature", "add a feature");
    let (iid, delivered) = double.open_merge_request("monitor/api", "feature", "main", "Add a feature", dev).await;
    assert!(delivered.is_empty(), "no hook yet");
    (double, iid, head)
}

#[tokio::test]
async fn merge_requests_are_read_and_listed_by_state() {
    crate::support::limit(merge_requests_are_read_and_listed_by_state_body()).await
}

async fn merge_requests_are_read_and_listed_by_state_body() {
    let (double, iid, head) = with_open_mr().await;
    let c = client(&double, root());
    let mr = c.merge_request(&api(), iid).await.unwrap();
    assert_eq!((mr.iid, mr.state, mr.sha.as_deref()), (1, MergeRequestState::Opened, Some(head.as_str())));
    assert_eq!((mr.source_branch.as_str(), mr.target_branch.as_str()), ("feature", "main"));
    assert_eq!(mr.author.unwrap().username, "dev");
    assert_eq!(c.merge_requests(&api(), MergeRequestState::Opened).await.unwrap().len(), 1);
    assert!(c.merge_requests(&api(), MergeRequestState::Merged).await.unwrap().is_empty());
    assert!(double.requests().iter().any(|r| r.query == "state=merged&per_page=100&page=1"));
    let e = c.merge_request(&api(), 7).await.unwrap_err();
    assert_eq!(e.to_string(), "GitLab get merge request: HTTP 404: 404 Merge Request Not Found");
}

#[tokio::test]
async fn notes_are_created_edited_and_listed_across_pages() {
    crate::support::limit(notes_are_created_edited_and_listed_across_pages_body()).await
}

async fn notes_are_created_edited_and_listed_across_pages_body() {
    let (double, iid, _) = with_open_mr().await;
    let dev = double.world().users.iter().find(|u| u.username == "dev").unwrap().id;
    {
        let mut w = double.world();
        for i in 0..130 {
            let id = w.next_id();
            let discussion_id = format!("{id:040x}");
            let note = Note {
                id,
                mr_iid: iid,
                body: format!("comment {i}"),
                author_id: dev,
                system: false,
                edits: 0,
                discussion_id,
            };
            w.projects[0].notes.push(note);
        }
    }
    let c = client(&double, root());
    let note = c.create_mr_note(&api(), iid, "hello").await.unwrap();
    assert_eq!((note.body.as_str(), note.author.username.as_str(), note.system), ("hello", "root", false));
    let edited = c.update_mr_note(&api(), iid, note.id, "hello again").await.unwrap();
    assert_eq!((edited.id, edited.body.as_str()), (note.id, "hello again"));

    let notes = c.mr_notes(&api(), iid).await.unwrap();
    assert_eq!(notes.len(), 131);
    assert_eq!(notes[0].id, note.id, "newest first");
    assert_eq!(double.count_requests("GET /api/v4/projects/monitor%2Fapi/merge_requests/1/notes"), 2);

    let someone_elses = notes.iter().find(|n| n.author.username == "dev").unwrap();
    let dev_token = double.world().users.iter().find(|u| u.username == "dev").unwrap().token.clone();
    let as_dev = client(&double, Auth::PrivateToken(Secret::new(dev_token)));
    as_dev.update_mr_note(&api(), iid, someone_elses.id, "mine").await.unwrap();
    let e = as_dev.update_mr_note(&api(), iid, note.id, "not mine").await.unwrap_err();
    assert_eq!(e.to_string(), "GitLab update merge request note: HTTP 403: 403 Forbidden");
    let missing = c.create_mr_note(&api(), 9, "x").await.unwrap_err();
    assert_eq!(missing.status(), Some(404));
}

#[tokio::test]
async fn upsert_mr_note_keeps_one_note_edited_in_place() {
    crate::support::limit(upsert_mr_note_keeps_one_note_edited_in_place_body()).await
}

async fn upsert_mr_note_keeps_one_note_edited_in_place_body() {
    let (double, iid, _) = with_open_mr().await;
    let dev = double.world().users.iter().find(|u| u.username == "dev").unwrap().id;
    // A developer quoting the marker must not have their comment taken over.
    double.comment("monitor/api", iid, dev, &format!("why does {MARKER} say that?")).await;
    let c = client(&double, root());

    let first = c.upsert_mr_note(&api(), iid, MARKER, "Policy: 1 violation").await.unwrap();
    assert_eq!(first.body, format!("{MARKER}\nPolicy: 1 violation"));
    let mark = double.mark();
    let second = c.upsert_mr_note(&api(), iid, MARKER, "Policy: all good").await.unwrap();
    assert_eq!(second.id, first.id, "edited in place");
    assert_eq!(
        double.mutations_since(mark),
        [format!("PUT /api/v4/projects/monitor%2Fapi/merge_requests/1/notes/{}", first.id)]
    );
    let mark = double.mark();
    c.upsert_mr_note(&api(), iid, MARKER, "Policy: all good").await.unwrap();
    assert!(double.mutations_since(mark).is_empty(), "an unchanged note is not rewritten");

    let notes = double.notes("monitor/api", iid);
    assert_eq!(notes.len(), 2, "the developer's comment and Tao's one note");
    assert!(notes[0].body.starts_with("why does"), "untouched");
    assert_eq!((notes[1].edits, notes[1].body.as_str()), (1, format!("{MARKER}\nPolicy: all good").as_str()));
    assert_eq!(double.count_requests("GET /api/v4/user"), 1, "own user looked up once");
}

#[tokio::test]
async fn upsert_mr_note_after_a_lost_answer_creates_no_duplicate() {
    crate::support::limit(upsert_mr_note_after_a_lost_answer_creates_no_duplicate_body()).await
}

async fn upsert_mr_note_after_a_lost_answer_creates_no_duplicate_body() {
    let (double, iid, _) = with_open_mr().await;
    let c = client(&double, root());
    // GitLab creates the note, but the answer is lost on the way back.
    double.lose_next_answer("POST", "/merge_requests/1/notes", 502);
    let note = c.upsert_mr_note(&api(), iid, MARKER, "Policy: pending").await.unwrap();
    assert_eq!(double.notes("monitor/api", iid).len(), 1);
    assert_eq!(note.body, format!("{MARKER}\nPolicy: pending"));
    // A rerun (a redelivered webhook) edits that note.
    double.lose_next_answer("PUT", "/notes/", 502);
    let rerun = c.upsert_mr_note(&api(), iid, MARKER, "Policy: passed").await.unwrap();
    assert_eq!(rerun.id, note.id);
    assert_eq!(double.count_requests("POST /api/v4/projects/monitor%2Fapi/merge_requests/1/notes"), 1);
    assert_eq!(double.count_requests("PUT /api/v4/projects/monitor%2Fapi/merge_requests/1/notes"), 2, "PUT retried");
    let notes = double.notes("monitor/api", iid);
    assert_eq!((notes.len(), notes[0].body.as_str()), (1, format!("{MARKER}\nPolicy: passed").as_str()));
}

#[tokio::test]
async fn commit_status_round_trip_on_the_head_pipeline() {
    crate::support::limit(commit_status_round_trip_on_the_head_pipeline_body()).await
}

async fn commit_status_round_trip_on_the_head_pipeline_body() {
    let (double, _, head) = with_open_mr().await;
    let pipeline = double.start_pipeline("monitor/api", "feature");
    let c = client(&double, root());
    let pending = CommitStatus {
        state: CommitState::Pending,
        name: "tao/policy".into(),
        target_url: Some("https://tao.example/policy/monitor/api/1".into()),
        description: Some("checking".into()),
        pipeline_id: Some(pipeline),
    };
    let set = c.set_commit_status(&api(), &head, &pending).await.unwrap();
    assert_eq!(
        (set.status, set.pipeline_id, set.git_ref.as_deref()),
        (CommitState::Pending, Some(pipeline), Some("feature"))
    );
    let again = c.set_commit_status(&api(), &head, &pending).await.unwrap();
    assert_eq!(again.id, set.id, "GitLab's 400 for a repeated state is read back, not an error");
    let passed =
        CommitStatus { state: CommitState::Success, description: Some("1 rule, 0 violations".into()), ..pending };
    let done = c.set_commit_status(&api(), &head, &passed).await.unwrap();
    assert_eq!((done.id, done.status), (set.id, CommitState::Success), "the open status moves on");

    let listed = c.commit_statuses(&api(), &head).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].description.as_deref()),
        ("tao/policy", Some("1 rule, 0 violations"))
    );
    let e = c.set_commit_status(&api(), &"0".repeat(40), &passed).await.unwrap_err();
    assert_eq!(e.to_string(), "GitLab set commit status: HTTP 404: 404 Commit Not Found");
}

#[tokio::test]
async fn status_check_response_round_trip() {
    crate::support::limit(status_check_response_round_trip_body()).await
}

async fn status_check_response_round_trip_body() {
    let (double, iid, head) = with_open_mr().await;
    let check = double.add_status_check("monitor/api", "Tao policy");
    let c = client(&double, root());
    let r = c.set_status_check_response(&api(), iid, &head, check, StatusCheckStatus::Passed).await.unwrap();
    assert_eq!(r.external_status_check.as_ref().unwrap()["id"], check);
    assert_eq!(r.merge_request.as_ref().unwrap()["iid"], iid);
    let sent = double.requests().into_iter().rfind(|r| r.method == "POST").unwrap();
    assert_eq!(sent.path, "/api/v4/projects/monitor%2Fapi/merge_requests/1/status_check_responses");
    assert_eq!(
        sent.body.unwrap(),
        serde_json::json!({ "sha": head, "external_status_check_id": check, "status": "passed" })
    );
    let answers = double.world().projects[0].status_check_answers.clone();
    assert_eq!((answers.len(), answers[0].id, answers[0].status.as_str()), (1, r.id, "passed"));

    // The developer pushed again: an answer for the old head is stale.
    double.push("monitor/api", "feature", "another change");
    let stale = c.set_status_check_response(&api(), iid, &head, check, StatusCheckStatus::Failed).await.unwrap_err();
    assert_eq!(stale.to_string(), "GitLab set status check response: HTTP 409: 409 Conflict");
}

#[tokio::test]
async fn deployments_and_pipelines() {
    crate::support::limit(deployments_and_pipelines_body()).await
}

async fn deployments_and_pipelines_body() {
    let (double, _, head) = with_open_mr().await;
    let c = client(&double, root());
    let new = NewDeployment {
        environment: "env-1".into(),
        sha: head.clone(),
        git_ref: "feature".into(),
        tag: false,
        status: DeploymentStatus::Running,
    };
    let d = c.create_deployment(&api(), &new).await.unwrap();
    assert_eq!((d.status, d.environment.unwrap().name.as_str()), (Some(DeploymentStatus::Running), "env-1"));
    let done = c.update_deployment(&api(), d.id, DeploymentStatus::Success).await.unwrap();
    assert_eq!((done.id, done.status), (d.id, Some(DeploymentStatus::Success)));
    let recorded = double.world().projects[0].deployments[0].clone();
    assert_eq!((recorded.tag, recorded.status.as_str(), recorded.sha), (false, "success", head.clone()));
    assert_eq!(c.update_deployment(&api(), 999_999, DeploymentStatus::Failed).await.unwrap_err().status(), Some(404));

    let token = double.add_trigger_token("monitor/api");
    let started = c.trigger_pipeline(&api(), "main", &Secret::new(&token), &[("TAO_VERSION", "1.1.0")]).await.unwrap();
    assert_eq!((started.status.as_deref(), started.git_ref.as_deref()), (Some("created"), Some("main")));
    assert_eq!(double.world().projects[0].pipelines[0].variables, [("TAO_VERSION".to_string(), "1.1.0".to_string())]);
    let read = c.pipeline(&api(), started.id).await.unwrap();
    assert_eq!((read.id, read.sha), (started.id, started.sha));
    let project_id = double.world().projects[0].id;
    let (_, job_token) = double.start_job(project_id, "main");
    c.trigger_pipeline(&api(), "main", &Secret::new(&job_token), &[]).await.unwrap();
    let bad = c.trigger_pipeline(&api(), "main", &Secret::new("glptt-forged"), &[]).await.unwrap_err();
    assert_eq!(bad.to_string(), "GitLab trigger pipeline: HTTP 404: 404 Not Found");
    assert_eq!(c.pipeline(&api(), 424_242).await.unwrap_err().status(), Some(404));
}

/// What a policy "apply" does: bring settings and protection to the wanted state, changing only what
/// differs (a sketch of the coming feature, to prove the recorder can tell).
async fn apply(c: &GitLabClient) -> Result<(), GitLabError> {
    let project = c.project(&api()).await?;
    if project.merge_method != Some(MergeMethod::Ff) || project.only_allow_merge_if_pipeline_succeeds != Some(true) {
        let wanted = ProjectSettings {
            merge_method: Some(MergeMethod::Ff),
            only_allow_merge_if_pipeline_succeeds: Some(true),
            ..ProjectSettings::default()
        };
        c.update_project(&api(), &wanted).await?;
    }
    if !c.protected_branches(&api()).await?.iter().any(|r| r.name == "main") {
        let rule = ProtectBranchRequest {
            name: "main".into(),
            push_access_level: AccessLevel::NO_ACCESS,
            merge_access_level: AccessLevel::MAINTAINER,
            allow_force_push: false,
        };
        c.protect_branch(&api(), &rule).await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_recorder_proves_an_apply_is_idempotent() {
    crate::support::limit(the_recorder_proves_an_apply_is_idempotent_body()).await
}

async fn the_recorder_proves_an_apply_is_idempotent_body() {
    let double = GitLabDouble::start().await;
    double.add_project("monitor/api");
    let c = client(&double, root());
    apply(&c).await.unwrap();
    assert_eq!(
        double.mutations_since(0),
        ["PUT /api/v4/projects/monitor%2Fapi", "POST /api/v4/projects/monitor%2Fapi/protected_branches"]
    );
    let mark = double.mark();
    apply(&c).await.unwrap();
    assert!(double.mutations_since(mark).is_empty(), "the second run sends no mutating request");
    assert!(double.mark() > mark, "it did read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_mr_opened_and_commented_reaches_tao() {
    crate::support::limit(story_mr_opened_and_commented_reaches_tao_body()).await
}

async fn story_mr_opened_and_commented_reaches_tao_body() {
    let app = spawn_app_with(TestDb::sqlite(), |s| s.gitlab_webhook_secrets = vec![Secret::new(SECRET)]).await;
    let double = GitLabDouble::start().await;
    let project_id = double.add_project("monitor/api");
    let (dev, _) = double.add_user("dev");
    double.add_member("monitor/api", dev, 30);
    let url = format!("{}/api/v1/gitlab/webhook", app.base);
    let c = client(&double, root());
    c.create_project_hook(&api(), &url, &Secret::new(SECRET), &hook_sync::tao_events()).await.unwrap();

    // A developer pushes a branch, opens a merge request and asks Tao for a deploy.
    let head = double.push("monitor/api", "feature", "add a feature");
    let (iid, delivered) = double.open_merge_request("monitor/api", "feature", "main", "Add a feature", dev).await;
    assert_eq!(delivered, [200], "Tao accepts the Merge Request Hook");
    let (note_id, delivered) = double.comment("monitor/api", iid, dev, "/tao deploy api feature env-1").await;
    assert_eq!(delivered, [200], "Tao accepts the Note Hook");

    wait_for("both events handled", || async { event::unprocessed(&app.pool).await.unwrap() == 0 }).await;
    let rows = event::page(&app.pool, &EventFilter::default(), 0, 10).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let key = format!("merge_request:{project_id}:{iid}");
    for (row, kind) in rows.iter().zip(["merge_request", "note"]) {
        assert_eq!((row.kind.as_str(), row.state.as_str(), row.attempts), (kind, "processed", 1));
        assert_eq!(row.project_path.as_deref(), Some("monitor/api"));
        assert_eq!(row.git_ref.as_deref(), Some("feature"));
        assert_eq!(row.object_key, key, "one MR and its notes are handled in order");
    }
    let view = |i: usize| {
        let payload: serde_json::Value = serde_json::from_str(rows[i].payload.as_deref().unwrap()).unwrap();
        GitLabEvent::parse(&rows[i].kind, &payload).unwrap()
    };
    let GitLabEvent::MergeRequest(mr) = view(0) else { panic!("not an MR view") };
    assert_eq!((mr.object_attributes.iid, mr.object_attributes.action.as_deref()), (iid, Some("open")));
    let GitLabEvent::Note(note) = view(1) else { panic!("not a note view") };
    assert_eq!(note.merge_request.unwrap().iid, iid);
    assert_eq!(note.object_attributes.noteable_type, "MergeRequest");
    let payload: serde_json::Value = serde_json::from_str(rows[1].payload.as_deref().unwrap()).unwrap();
    assert_eq!(payload["object_attributes"]["id"], note_id);
    assert_eq!(payload["merge_request"]["last_commit"]["id"], head);
    app.stop().await;
}
