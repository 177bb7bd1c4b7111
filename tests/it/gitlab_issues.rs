//! GitLab issues as work items, through the GitLab double: issue webhooks (open, close, reopen, a
//! workflow label) build the item and its state history, redeliveries add nothing; the API backfill
//! pages, keeps states that happened between syncs (closes, reopens, workflow labels) and asks only for
//! what changed; `#12` in an MR title links the MR to issue 12 of its project; a release lists the issues
//! planned in its milestone; and `tao sync gitlab-issues` reports what it did. Store-facing tests run on
//! SQLite and PostgreSQL.

use std::time::Duration;

use serde_json::Value;
use tao::catalog::Catalog;
use tao::config::Secret;
use tao::gitlab::client::{GitLabClient, ProjectId, RetryPolicy};
use tao::gitlab::hook_sync::tao_events;
use tao::store::workitem::{self, Link};
use tao::store::{event, Pool};
use tao::workitems::gitlab::IssueRules;
use tao::workitems::gitlab_sync::{self, ProjectReport};
use tao::workitems::{Kind, SOURCE_GITLAB};

use crate::both_backends;
use crate::gitlab::root;
use crate::support::gitlab::{iso, GitLabDouble, NewIssue, Recorded, ROOT_TOKEN};
use crate::support::{spawn_app_with, TestApp, TestDb, EXAMPLE};
use crate::webhook::{hook_url, wait_for, SECRET};

const PROJECT: &str = "monitor/api";

fn client(double: &GitLabDouble) -> GitLabClient {
    let retry =
        RetryPolicy { max_attempts: 4, base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(2) };
    GitLabClient::new(&double.url, root(), retry).unwrap()
}

fn catalog() -> Catalog {
    Catalog::from_yaml(EXAMPLE).unwrap_or_else(|e| panic!("{e}"))
}

async fn backfill(pool: &Pool, double: &GitLabDouble, per_page: u32) -> ProjectReport {
    let rules = IssueRules::default();
    gitlab_sync::sync_project(pool, &client(double), &catalog(), &rules, PROJECT, per_page).await.unwrap()
}

/// Tao with the double as its GitLab and a project hook on [`PROJECT`] sending every event Tao uses.
async fn app_with_hook(db: TestDb, double: &GitLabDouble) -> TestApp {
    let url = double.url.clone();
    let app = spawn_app_with(db, move |s| {
        s.gitlab_url = Some(url);
        s.gitlab_token = Some(Secret::new(ROOT_TOKEN));
        s.gitlab_webhook_secrets = vec![Secret::new(SECRET)];
        s.workers = 0;
    })
    .await;
    client(double)
        .create_project_hook(
            &ProjectId::Path(PROJECT.into()),
            &hook_url(&app.base),
            &Secret::new(SECRET),
            &tao_events(),
        )
        .await
        .unwrap();
    app
}

async fn settled(app: &TestApp) {
    wait_for("every event handled", || async { event::unprocessed(&app.pool).await.unwrap() == 0 }).await;
}

fn issue_requests(double: &GitLabDouble) -> Vec<Recorded> {
    double.requests().into_iter().filter(|r| r.path == "/api/v4/projects/monitor%2Fapi/issues").collect()
}

/// The query of a recorded request, decoded (the client percent-encodes `updated_after`).
fn query(r: &Recorded) -> std::collections::HashMap<String, String> {
    let decode = |s: &str| {
        let b = s.as_bytes();
        let (mut out, mut i) = (Vec::new(), 0);
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("percent escape"));
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    r.query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

async fn states(pool: &Pool, id: i64) -> Vec<(String, i64, Option<String>)> {
    let h = workitem::history(pool, SOURCE_GITLAB, &id.to_string()).await.unwrap();
    h.into_iter().map(|s| (s.state, s.at, s.author)).collect()
}

async fn webhooks(db: TestDb) {
    let double = GitLabDouble::start().await;
    double.add_project(PROJECT);
    let (dev, _) = double.add_user("dev");
    let (alice, _) = double.add_user("alice");
    let v110 = double.add_milestone(PROJECT, "v1.1.0");
    let app = app_with_hook(db, &double).await;
    let new = NewIssue {
        title: "Login fails on Safari".into(),
        labels: vec!["BUG".into(), "frontend".into(), "found::1.0.0".into()],
        assignees: vec![dev],
        milestone: Some(v110),
        ..Default::default()
    };
    let (iid, answers) = double.open_issue(PROJECT, alice, new).await;
    assert_eq!(answers, [200]);
    settled(&app).await;
    let row = |v: &str, found, fixed, open| ("monitor".to_string(), v.to_string(), found, fixed, open);
    assert_eq!(workitem::bugs_per_version(&app.pool).await.unwrap(), [row("1.0.0", 1, 0, 1)]);
    assert_eq!(double.close_issue(PROJECT, iid, dev).await, [200]);
    settled(&app).await;
    // Closed: fixed in its milestone's version.
    let mut bugs = workitem::bugs_per_version(&app.pool).await.unwrap();
    bugs.sort();
    assert_eq!(bugs, [row("1.0.0", 1, 0, 0), row("1.1.0", 0, 1, 0)]);
    assert_eq!(double.reopen_issue(PROJECT, iid, alice).await, [200]);
    settled(&app).await;
    assert_eq!(workitem::bugs_per_version(&app.pool).await.unwrap(), [row("1.0.0", 1, 0, 1)]);

    let issue = double.issue(PROJECT, iid);
    let item = workitem::item(&app.pool, SOURCE_GITLAB, &issue.id.to_string()).await.unwrap().expect("work item");
    assert_eq!((item.workspace.as_str(), item.short_id.as_deref()), (PROJECT, Some(iid.to_string().as_str())));
    assert_eq!((item.kind, item.state.as_str(), item.owner.as_deref()), (Kind::Bug, "opened", Some("dev")));
    assert_eq!((item.product.as_deref(), item.version.as_deref()), (Some("monitor"), Some("1.1.0")));
    assert_eq!((item.iteration_id, item.completed_at), (Some(v110.to_string()), None));
    let changes: Vec<i64> = issue.state_events.iter().map(|e| e.2).collect();
    let [closed, reopened] = changes[..] else { panic!("two state events: {changes:?}") };
    let expected = vec![
        ("opened".to_string(), issue.created_at, Some("alice".to_string())),
        ("closed".to_string(), closed, Some("dev".to_string())),
        ("opened".to_string(), reopened, Some("alice".to_string())),
    ];
    assert_eq!(states(&app.pool, issue.id).await, expected);
    let milestone_reads = double.count_requests(&format!("GET /api/v4/projects/monitor%2Fapi/milestones/{v110}"));
    assert_eq!(milestone_reads, 1, "the milestone is read once, then known");

    // GitLab's resend (same Idempotency-Key) is stored once; the same body as a new delivery is handled
    // again and adds nothing either.
    let before = event::page(&app.pool, &Default::default(), 0, 1000).await.unwrap().len();
    assert_eq!(double.redeliver_last(PROJECT).await, [200]);
    let (name, body, _) = double.world().deliveries.last().cloned().unwrap();
    assert_eq!(double.deliver(PROJECT, &name, &body, "a-new-delivery").await, [200]);
    settled(&app).await;
    assert_eq!(event::page(&app.pool, &Default::default(), 0, 1000).await.unwrap().len(), before + 1);
    assert_eq!(states(&app.pool, issue.id).await, expected);

    // A workflow label is the state of an open issue.
    assert_eq!(double.relabel_issue(PROJECT, iid, dev, &["BUG", "workflow::doing"]).await, [200]);
    settled(&app).await;
    let now = states(&app.pool, issue.id).await;
    assert_eq!(now.len(), 4);
    assert_eq!(now[3], ("doing".to_string(), double.issue(PROJECT, iid).updated_at, Some("dev".to_string())));

    // The release of 1.1.0 lists the issue planned in milestone v1.1.0.
    let r = app.get("/api/v1/releases/monitor/1.1.0/work-items", &app.reader).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let items = r.body["work_items"].as_array().unwrap();
    let found: Vec<&Value> = items.iter().filter(|i| i["source"] == "gitlab").collect();
    assert_eq!(found.len(), 1, "{items:?}");
    assert_eq!(found[0]["id"], issue.id.to_string());
    assert_eq!(found[0]["kind"], "bug");
    assert_eq!(found[0]["state"], "doing");
    assert_eq!(found[0]["history"].as_array().unwrap().len(), 4);
    let r = app.get("/api/v1/releases/monitor/1.2.0/work-items", &app.reader).await;
    assert_eq!(r.body["work_items"], serde_json::json!([]));
}
both_backends!(issue_webhooks_build_the_item_and_its_history, webhooks);

async fn backfill_pages(db: TestDb) {
    let pool = db.pool().await;
    let double = GitLabDouble::start().await;
    double.add_project(PROJECT);
    let (dev, _) = double.add_user("dev");
    let v120 = double.add_milestone(PROJECT, "v1.2.0");
    for n in 1..=5 {
        let new = NewIssue {
            title: format!("Issue {n}"),
            milestone: (n % 2 == 0).then_some(v120),
            issue_type: (n == 4).then(|| "task".to_string()),
            ..Default::default()
        };
        double.open_issue(PROJECT, dev, new).await;
    }
    double.close_issue(PROJECT, 2, dev).await;

    let first = backfill(&pool, &double, 2).await;
    assert_eq!(first.issues, [1, 3, 4, 5, 2], "least recently updated first");
    assert_eq!(first.pages, 3);
    let asked: Vec<_> = issue_requests(&double).iter().map(query).collect();
    assert_eq!(asked.iter().map(|q| q["page"].as_str()).collect::<Vec<_>>(), ["1", "2", "3"]);
    for q in &asked {
        assert_eq!((q["order_by"].as_str(), q["sort"].as_str(), q["per_page"].as_str()), ("updated_at", "asc", "2"));
        assert!(!q.contains_key("updated_after"), "the first sync reads everything: {q:?}");
    }
    let item = |iid: i64| {
        let pool = pool.clone();
        let id = double.issue(PROJECT, iid).id.to_string();
        async move { workitem::item(&pool, SOURCE_GITLAB, &id).await.unwrap().expect("item") }
    };
    let two = item(2).await;
    assert_eq!((two.state.as_str(), two.version.as_deref()), ("closed", Some("1.2.0")));
    assert_eq!(two.completed_at, double.issue(PROJECT, 2).closed_at);
    assert_eq!(item(4).await.kind, Kind::Task);
    assert_eq!(item(3).await.version, None);
    let cursor = workitem::cursor(&pool, SOURCE_GITLAB, PROJECT, "issue").await.unwrap();
    assert_eq!(cursor, Some(iso(double.issue(PROJECT, 2).updated_at)));

    // Issue 3 is closed and reopened between syncs: the next sync asks only for what changed since the
    // cursor (issue 2 at the cursor again: GitLab's bound is inclusive) and keeps both states.
    double.close_issue(PROJECT, 3, dev).await;
    double.reopen_issue(PROJECT, 3, dev).await;
    let mark = issue_requests(&double).len();
    let second = backfill(&pool, &double, 2).await;
    assert_eq!(second.issues, [2, 3]);
    assert_eq!(second.states_added, 2);
    let asked = issue_requests(&double);
    assert_eq!(asked.len() - mark, 1);
    assert_eq!(query(&asked[mark])["updated_after"], cursor.unwrap());
    let three = double.issue(PROJECT, 3);
    let seen: Vec<(String, i64)> = states(&pool, three.id).await.into_iter().map(|(s, at, _)| (s, at)).collect();
    let events: Vec<i64> = three.state_events.iter().map(|e| e.2).collect();
    assert_eq!(seen, [("opened".into(), three.created_at), ("closed".into(), events[0]), ("opened".into(), events[1])]);
    // Nothing changed: the boundary issue again, and no new state.
    assert_eq!(backfill(&pool, &double, 100).await.states_added, 0);
}
both_backends!(backfill_pages_and_keeps_states_between_syncs, backfill_pages);

/// Workflow labels changed between two syncs: the backfill replays the label events, so the work item
/// keeps every workflow state it passed through (created as `todo`, then `doing`, then `review`, closed),
/// and labels outside the workflow scope change nothing.
async fn backfill_workflow(db: TestDb) {
    let pool = db.pool().await;
    let double = GitLabDouble::start().await;
    double.add_project(PROJECT);
    let (dev, _) = double.add_user("dev");
    let new = NewIssue {
        title: "Export as CSV".into(),
        labels: vec!["workflow::todo".into(), "frontend".into()],
        ..Default::default()
    };
    double.open_issue(PROJECT, dev, new).await;
    assert_eq!(backfill(&pool, &double, 100).await.states_added, 1);
    double.relabel_issue(PROJECT, 1, dev, &["workflow::doing", "frontend"]).await;
    double.relabel_issue(PROJECT, 1, dev, &["workflow::doing"]).await;
    double.relabel_issue(PROJECT, 1, dev, &["workflow::review"]).await;
    double.close_issue(PROJECT, 1, dev).await;
    assert_eq!(backfill(&pool, &double, 100).await.states_added, 3);
    let issue = double.issue(PROJECT, 1);
    let seen: Vec<(String, i64)> = states(&pool, issue.id).await.into_iter().map(|(s, at, _)| (s, at)).collect();
    let at = |n: usize| issue.label_events[n].2;
    // Label events: 0-1 at creation, 2-3 doing, 4 frontend removed, 5-6 review; then the close.
    assert_eq!(
        seen,
        [
            ("todo".to_string(), issue.created_at),
            ("doing".into(), at(2)),
            ("review".into(), at(5)),
            ("closed".into(), issue.state_events[0].2),
        ]
    );
    assert_eq!(backfill(&pool, &double, 100).await.states_added, 0);
}
both_backends!(backfill_replays_workflow_labels_between_syncs, backfill_workflow);

async fn mr_links(db: TestDb) {
    let double = GitLabDouble::start().await;
    double.add_project(PROJECT);
    let (dev, _) = double.add_user("dev");
    for n in 1..=12 {
        double.open_issue(PROJECT, dev, NewIssue { title: format!("Issue {n}"), ..Default::default() }).await;
    }
    let app = app_with_hook(db, &double).await;
    backfill(&app.pool, &double, 100).await;
    double.push(PROJECT, "fix-login", "Fix the login redirect");
    let (mr, answers) = double.open_merge_request(PROJECT, "fix-login", "main", "Fix login (#12), see #99", dev).await;
    assert_eq!(answers, [200]);
    settled(&app).await;
    let twelve = double.issue(PROJECT, 12).id.to_string();
    let links = workitem::links_of(&app.pool, SOURCE_GITLAB, &twelve).await.unwrap();
    let expected = Link {
        source: SOURCE_GITLAB.into(),
        item_id: twelve,
        target_kind: "merge_request".into(),
        target: format!("{PROJECT}!{mr}"),
        via: "title".into(),
    };
    assert_eq!(links, [expected]);
    let one = double.issue(PROJECT, 1).id.to_string();
    assert!(workitem::links_of(&app.pool, SOURCE_GITLAB, &one).await.unwrap().is_empty());
}
both_backends!(an_mr_title_links_the_issue_of_its_project, mr_links);

#[tokio::test]
async fn tao_sync_gitlab_issues_reports_counts_and_refuses_bad_input() {
    crate::support::limit(tao_sync_gitlab_issues_reports_counts_and_refuses_bad_input_body()).await
}

async fn tao_sync_gitlab_issues_reports_counts_and_refuses_bad_input_body() {
    let db = TestDb::sqlite();
    let double = GitLabDouble::start().await;
    double.add_project(PROJECT);
    let (dev, _) = double.add_user("dev");
    for n in 1..=3 {
        double.open_issue(PROJECT, dev, NewIssue { title: format!("Issue {n}"), ..Default::default() }).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tao.yaml");
    std::fs::write(&file, EXAMPLE).unwrap();
    let run = |project: &str, extra: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tao"));
        cmd.args(["--json", "sync", "gitlab-issues", "-f"]).arg(&file).args(["--database-url", &db.url()]);
        cmd.args(["--project", project, "--page-size", "2"]).args(extra);
        for k in ["TAO_CATALOG", "TAO_DATABASE_URL", "TAO_GITLAB_BUG_LABELS", "TAO_GITLAB_WORKFLOW_SCOPE"] {
            cmd.env_remove(k);
        }
        cmd.env("TAO_GITLAB_URL", &double.url).env("TAO_GITLAB_TOKEN", ROOT_TOKEN);
        cmd.output()
    };
    let out = run(PROJECT, &[]).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let body: Value = serde_json::from_str(&text).unwrap();
    let synced = &body["synced"][0];
    assert_eq!((synced["project"].as_str(), synced["pages"].as_u64()), (Some(PROJECT), Some(2)), "{body}");
    assert_eq!((synced["issues"].as_array().unwrap().len(), synced["states_added"].as_u64()), (3, Some(3)));
    let pool = db.connect().await;
    let filter = workitem::ItemFilter { source: Some(SOURCE_GITLAB.into()), ..Default::default() };
    assert_eq!(workitem::list(&pool, &filter).await.unwrap().len(), 3);
    pool.close().await;

    // In --json mode the error is a JSON object on stdout.
    let out = run("not a path", &[]).await.unwrap();
    let err = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && err.contains("--project") && err.contains("not a path"), "{err}");
    let out = run(PROJECT, &["--gitlab-bug-labels", "bug,,defect"]).await.unwrap();
    let err = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && err.contains("TAO_GITLAB_BUG_LABELS"), "{err}");
}
