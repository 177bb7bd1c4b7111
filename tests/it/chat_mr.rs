//! Chat in merge-request comments, against the GitLab double: `/tao …` notes run as commands for the
//! author's project role, Tao answers once in the same discussion, ignores its own notes and edits,
//! and one note is at most one task (also when GitLab redelivers it). A picture (`dora`, `cfd`) is
//! uploaded to the project and shown in the reply by the Markdown GitLab returns.

use serde_json::Value;
use tao::config::Secret;
use tao::gitlab::client::ProjectId;
use tao::gitlab::hook_sync::tao_events;
use tao::store::release::{NewProductVersion, ReleaseComponent};
use tao::store::{self, event};

use crate::gitlab::{client, root};
use crate::support::gitlab::{GitLabDouble, Note, ROOT_TOKEN};
use crate::support::{spawn_app_with, TestApp, TestDb, MONITOR};
use crate::webhook::{hook_url, wait_for, SECRET};

const PROJECT: &str = "monitor/api";

struct Scene {
    app: TestApp,
    double: GitLabDouble,
    iid: i64,
    dev: i64,
    maintainer: i64,
}

async fn scene() -> Scene {
    let double = GitLabDouble::start().await;
    double.add_project(PROJECT);
    let (dev, _) = double.add_user("dev");
    double.add_member(PROJECT, dev, 30);
    let (maintainer, _) = double.add_user("maintainer");
    double.add_member(PROJECT, maintainer, 40);
    let url = double.url.clone();
    let app = spawn_app_with(TestDb::sqlite(), move |s| {
        s.gitlab_url = Some(url);
        s.gitlab_token = Some(Secret::new(ROOT_TOKEN));
        s.gitlab_webhook_secrets = vec![Secret::new(SECRET)];
        s.workers = 0; // tasks stay queued: this test is about chat, not SSH
    })
    .await;
    let components = MONITOR
        .iter()
        .map(|c| ReleaseComponent {
            component: c.to_string(),
            version: "1.0.0".into(),
            git_tag: "v1.0.0".into(),
            image: None,
            image_tag: "1.0.0".into(),
            image_digest: None,
        })
        .collect();
    let pv = NewProductVersion {
        product: "monitor".into(),
        version: "1.0.0".into(),
        catalog_revision: None,
        created_by: "test".into(),
        components,
    };
    store::release::create(&app.pool, &pv).await.unwrap();
    client(&double, root())
        .create_project_hook(
            &ProjectId::Path(PROJECT.into()),
            &hook_url(&app.base),
            &Secret::new(SECRET),
            &tao_events(),
        )
        .await
        .unwrap();
    double.branch_from(PROJECT, "release/1.0", "main");
    double.branch_from(PROJECT, "feature/x", "release/1.0");
    double.push(PROJECT, "feature/x", "change");
    let (iid, _) = double.open_merge_request(PROJECT, "feature/x", "release/1.0", "Change", dev).await;
    wait_for("the MR event", || async { event::unprocessed(&app.pool).await.unwrap() == 0 }).await;
    Scene { app, double, iid, dev, maintainer }
}

impl Scene {
    /// Comments and waits until Tao handled it; returns the note id.
    async fn say(&self, who: i64, text: &str) -> i64 {
        let (id, answers) = self.double.comment(PROJECT, self.iid, who, text).await;
        assert_eq!(answers, [200]);
        wait_for("the note handled", || async { event::unprocessed(&self.app.pool).await.unwrap() == 0 }).await;
        id
    }

    /// Tao's replies to note `id`.
    fn replies(&self, id: i64) -> Vec<Note> {
        let marker = format!("<!-- tao:reply:{id} -->");
        self.double.notes(PROJECT, self.iid).into_iter().filter(|n| n.body.contains(&marker)).collect()
    }

    fn reply(&self, id: i64) -> Note {
        let replies = self.replies(id);
        assert_eq!(replies.len(), 1, "exactly one reply to note {id}: {replies:#?}");
        replies.into_iter().next().unwrap()
    }

    async fn tasks(&self) -> Vec<Value> {
        let r = self.app.get("/api/v1/tasks", &self.app.reader).await;
        r.body.as_array().cloned().unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_deploys_to_test_from_a_comment_and_gets_a_reply_in_the_thread() {
    crate::support::limit(a_developer_deploys_to_test_from_a_comment_and_gets_a_reply_in_the_thread_body()).await
}

async fn a_developer_deploys_to_test_from_a_comment_and_gets_a_reply_in_the_thread_body() {
    let s = scene().await;
    let note = s.say(s.dev, "Ready to try this.\n\n/tao deploy monitor 1.0.0 env-1\n").await;
    let reply = s.reply(note);
    let original = s.double.notes(PROJECT, s.iid).into_iter().find(|n| n.id == note).unwrap();
    assert_eq!(reply.discussion_id, original.discussion_id, "answered in the same discussion");
    assert!(reply.body.contains("> `/tao deploy monitor 1.0.0 env-1`"), "{}", reply.body);
    assert!(reply.body.contains("queued: monitor 1.0.0 → env-1 (requested by gitlab:dev)"), "{}", reply.body);
    let tasks = s.tasks().await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!((tasks[0]["env"].as_str(), tasks[0]["requested_by"].as_str()), (Some("env-1"), Some("gitlab:dev")));

    // GitLab redelivers the same note (a new delivery id, as after a manual "resend"): one task, one reply.
    let hook = s.double.hooks(PROJECT)[0].clone();
    let payload = {
        let w = s.double.world();
        let p = &w.projects[0];
        let mr = p.merge_requests.iter().find(|m| m.iid == s.iid).unwrap();
        let n = p.notes.iter().find(|n| n.id == note).unwrap();
        crate::support::gitlab::note_hook(&w, p, mr, n)
    };
    let bytes = serde_json::to_vec(&payload).unwrap();
    let r =
        crate::support::gitlab::send_webhook(&hook.url, &hook.token, "Note Hook", &bytes, Some("resend-1"), &hook.uuid)
            .await;
    assert_eq!(r.status(), 200);
    wait_for("the resend handled", || async { event::unprocessed(&s.app.pool).await.unwrap() == 0 }).await;
    assert_eq!(s.replies(note).len(), 1);
    assert_eq!(s.tasks().await.len(), 1);
    let audit = s.app.get("/api/v1/audit", &s.app.admin).await;
    assert!(audit.body.to_string().contains("chat.deploy"), "{:?}", audit.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_needs_a_maintainer_and_a_confirmation() {
    crate::support::limit(production_needs_a_maintainer_and_a_confirmation_body()).await
}

async fn production_needs_a_maintainer_and_a_confirmation_body() {
    let s = scene().await;
    let denied = s.say(s.dev, "/tao deploy monitor 1.0.0 prod").await;
    let text = s.reply(denied).body;
    assert!(
        text.contains(
            "Not allowed: changing prod needs one of the roles maintainer, release-manager; gitlab:dev is developer"
        ),
        "{text}"
    );
    let ask = s.say(s.maintainer, "/tao deploy monitor 1.0.0 prod").await;
    let text = s.reply(ask).body;
    assert!(text.contains("prod is production") && text.contains("`deploy monitor 1.0.0 prod confirm`"), "{text}");
    assert!(s.tasks().await.is_empty(), "nothing queued before the confirmation");
    let confirmed = s.say(s.maintainer, "/tao deploy monitor 1.0.0 prod confirm").await;
    assert!(s.reply(confirmed).body.contains("queued: monitor 1.0.0 → prod"));
    assert_eq!(s.tasks().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_environments_bad_commands_outsiders_and_tao_itself() {
    crate::support::limit(frozen_environments_bad_commands_outsiders_and_tao_itself_body()).await
}

async fn frozen_environments_bad_commands_outsiders_and_tao_itself_body() {
    let s = scene().await;
    let freeze = s.say(s.dev, "/tao freeze env-1 database migration tonight").await;
    assert!(s.reply(freeze).body.contains("env-1 is frozen by gitlab:dev: database migration tonight"));
    let refused = s.say(s.dev, "/tao deploy monitor 1.0.0 env-1").await;
    assert!(s.reply(refused).body.contains("database migration tonight"), "{}", s.reply(refused).body);
    assert!(s.tasks().await.is_empty());

    let typo = s.say(s.dev, "/tao deplyo monitor 1.0.0 env-1").await;
    assert!(
        s.reply(typo).body.contains("unknown command \"deplyo\" (did you mean \"deploy\"?)"),
        "{}",
        s.reply(typo).body
    );

    let (outsider, _) = s.double.add_user("outsider");
    let status = s.say(outsider, "/tao status env-1").await;
    assert!(s.reply(status).body.contains("has no Tao role"), "{}", s.reply(status).body);
    let shown = s.say(s.dev, "```\n/tao deploy monitor 1.0.0 env-1\n```\n/tao status env-1").await;
    let body = s.reply(shown).body;
    assert!(body.contains("**env-1** — 🧊 frozen") && !body.contains("queued"), "code blocks are not run: {body}");

    let root_id = s.double.world().users[0].id;
    let own = s.say(root_id, "/tao envs").await;
    assert!(s.replies(own).is_empty(), "Tao never answers its own notes");
    let plain = s.say(s.dev, "LGTM").await;
    assert!(s.replies(plain).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dora_uploads_the_picture_and_the_reply_shows_it() {
    crate::support::limit(dora_uploads_the_picture_and_the_reply_shows_it_body()).await
}

async fn dora_uploads_the_picture_and_the_reply_shows_it_body() {
    let s = scene().await;
    let now = tao::store::now_ms();
    crate::metrics::history_at(&s.app, now - now.rem_euclid(86_400_000) - 10 * 86_400_000).await;
    let note = s.say(s.dev, "How are we doing?\n/tao dora monitor\n").await;
    let uploads = s.double.uploads(PROJECT);
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    let upload = &uploads[0];
    assert_eq!((upload.file_name.as_str(), upload.content_type.as_deref()), ("dora-monitor.png", Some("image/png")));
    assert_eq!(crate::metrics::png_size(&upload.bytes), (1000, 600));
    assert_eq!(upload.markdown, format!("![dora-monitor](/uploads/{}/dora-monitor.png)", upload.secret));
    let body = s.reply(note).body;
    assert!(body.contains("> `/tao dora monitor`"), "{body}");
    assert!(body.contains("- prod: 9 deployments, 0.23/day"), "{body}");
    assert!(body.contains(&format!("\n{}\n", upload.markdown)), "{body}");
    let cli = crate::metrics::report_bytes(&s.app, &["dora", "monitor"]).await;
    assert!(cli == upload.bytes, "the CLI wrote other bytes");

    let unknown = s.say(s.dev, "/tao cfd monitr").await;
    let body = s.reply(unknown).body;
    assert!(body.contains("❌ unknown product \"monitr\" (known: monitor)"), "{body}");
    assert_eq!(s.double.uploads(PROJECT).len(), 1, "nothing uploaded for a refused command");
    let upload_calls = s.double.requests().iter().filter(|r| r.path.ends_with("/uploads")).count();
    assert_eq!(upload_calls, 1, "one upload in all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_retried_after_a_5xx_and_a_refused_one_is_said_in_the_reply() {
    crate::support::limit(an_upload_is_retried_after_a_5xx_and_a_refused_one_is_said_in_the_reply_body()).await
}

async fn an_upload_is_retried_after_a_5xx_and_a_refused_one_is_said_in_the_reply_body() {
    let s = scene().await;
    s.double.fail_next("/uploads", 502, None);
    let retried = s.say(s.dev, "/tao cfd monitor").await;
    let uploads = s.double.uploads(PROJECT);
    assert_eq!(uploads.len(), 1, "one stored upload after the retry");
    assert!(s.reply(retried).body.contains(&uploads[0].markdown), "{}", s.reply(retried).body);

    s.double.fail_next("/uploads", 413, None);
    let refused = s.say(s.dev, "/tao cfd monitor version 1.1.0").await;
    let body = s.reply(refused).body;
    assert!(body.contains("**monitor 1.1.0: work items per state**"), "the text still goes out: {body}");
    assert!(body.contains("⚠️ The picture could not be uploaded to GitLab: GitLab upload a file: HTTP 413"), "{body}");
    assert_eq!(s.double.uploads(PROJECT).len(), 1);
}
