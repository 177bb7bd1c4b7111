//! TAPD work items through the TAPD double: full and incremental sync, paging, 429 retries, state
//! history across syncs, mapping to products and versions, links from MR titles, branches and commit
//! messages, and the work-item store. Store-facing tests run on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use tao::catalog::Catalog;
use tao::config::Secret;
use tao::store::workitem::{self, ItemFilter, Link};
use tao::workitems::sync::{self, Via};
use tao::workitems::tapd::{Auth, RetryPolicy, TapdClient, TapdError};
use tao::workitems::{Iteration, Kind, StateChange, WorkItem, SOURCE_TAPD};

use crate::both_backends;
use crate::support::tapd::{TapdDouble, PASSWORD, TOKEN, USER};
use crate::support::TestDb;

const WS: &str = "51234567";

/// Long id of short id `n` in [`WS`], as TAPD builds them.
fn long(n: u32) -> String {
    format!("11{WS}{n:09}")
}

fn catalog() -> Catalog {
    let yaml = format!(
        "products:\n  monitor:\n    components: [api]\n    tapd: {{ workspace_id: {WS}, iteration_name: \"v{{version}}\" }}\n\
         components:\n  api: {{ project: monitor/api, image: registry.example.com/monitor/api }}\n"
    );
    Catalog::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn client(double: &TapdDouble) -> TapdClient {
    let retry =
        RetryPolicy { max_attempts: 4, base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(5) };
    TapdClient::new(&double.url, Auth::Basic { user: USER.into(), password: Secret::new(PASSWORD) }, retry).unwrap()
}

async fn run(pool: &tao::store::Pool, double: &TapdDouble, page_size: u32) -> sync::Report {
    let target = sync::targets(&catalog()).remove(0);
    sync::sync_workspace(pool, &client(double), &target, page_size).await.unwrap()
}

/// Five stories and two bugs over three iterations, each modified on its own day.
async fn arranged() -> TapdDouble {
    let double = TapdDouble::start(&[WS]).await;
    double.add_iteration(WS, &long(7), "v1.1.0", "2024-01-01 08:00:00");
    double.add_iteration(WS, &long(8), "v1.2.0", "2024-01-01 08:01:00");
    double.add_iteration(WS, &long(9), "迭代2", "2024-01-01 08:02:00");
    let stories = [
        (101, "登录页支持企业微信扫码", &long(7)),
        (102, "导出报表增加时间范围筛选", &long(7)),
        (103, "Dashboard: 告警列表分页", &long(8)),
        (104, "API 限流", &long(9)),
        (105, "无迭代的需求", &"0".to_string()),
    ];
    for (i, (n, name, it)) in stories.iter().enumerate() {
        double.add_story(WS, &long(*n), name, "planning", it, &format!("2024-01-0{} 10:00:00", i + 1));
    }
    double.add_bug(WS, &long(321), "导出超时", "new", &long(7), "2024-01-01 11:00:00");
    double.add_bug(WS, &long(322), "Chrome 兼容性", "new", "0", "2024-01-02 11:00:00");
    double
}

async fn full_and_incremental(db: TestDb) {
    let pool = db.pool().await;
    let double = arranged().await;

    let first = run(&pool, &double, 2).await;
    assert_eq!(first.iterations, 3);
    let all: Vec<String> = [101, 102, 103, 104, 105, 321, 322].map(long).to_vec();
    assert_eq!(first.items, all, "every item, oldest modification first");
    let pages: Vec<_> = double.requests("/stories").iter().map(|r| r.query["page"].clone()).collect();
    assert_eq!(pages, ["1", "2", "3"], "five stories in pages of two");
    assert!(double.requests("/stories").iter().all(|r| r.query["limit"] == "2" && !r.query.contains_key("modified")));
    assert_eq!(workitem::list(&pool, &ItemFilter::default()).await.unwrap().len(), 7);

    // Only what changed since the cursor is fetched (and the item at the cursor: ">" is read inclusively).
    double.set_story_status(&long(102), "developing", "2024-01-06 09:00:00", "zhangsan");
    double.set_bug_status(&long(321), "in_progress", "2024-01-06 09:30:00", "lisi");
    double.world().recorded.clear();
    let second = run(&pool, &double, 2).await;
    assert_eq!(second.items, [long(105), long(102), long(322), long(321)]);
    assert_eq!(second.iterations, 1, "only the iteration at the cursor again");
    let story_q = &double.requests("/stories")[0].query;
    assert_eq!(story_q["modified"], ">2024-01-05 10:00:00");
    assert_eq!(double.requests("/bugs")[0].query["modified"], ">2024-01-02 11:00:00");
    let story = workitem::item(&pool, SOURCE_TAPD, &long(102)).await.unwrap().unwrap();
    assert_eq!(story.state, "developing");
    let bug = workitem::item(&pool, SOURCE_TAPD, &long(321)).await.unwrap().unwrap();
    assert_eq!((bug.kind, bug.state.as_str()), (Kind::Bug, "in_progress"));
    let states: Vec<_> =
        workitem::history(&pool, SOURCE_TAPD, &long(321)).await.unwrap().into_iter().map(|s| s.state).collect();
    assert_eq!(states, ["new", "in_progress"]);

    // Nothing changed: only the boundary items again, and no new states.
    let third = run(&pool, &double, 200).await;
    assert_eq!(third.states_added, 0);
}
both_backends!(full_and_incremental_sync, full_and_incremental);

async fn three_states(db: TestDb) {
    let pool = db.pool().await;
    let double = arranged().await;
    run(&pool, &double, 200).await;
    let id = long(101);
    double.set_story_status(&id, "developing", "2024-01-08 09:00:00", "zhangsan");
    double.set_story_status(&id, "status_3", "2024-01-09 15:30:00", "lisi");
    double.set_story_status(&id, "resolved", "2024-01-10 18:02:33", "wangwu");
    let report = run(&pool, &double, 200).await;
    assert_eq!(report.states_added, 3);
    let history = workitem::history(&pool, SOURCE_TAPD, &id).await.unwrap();
    let seen: Vec<(&str, Option<&str>)> = history.iter().map(|s| (s.state.as_str(), s.author.as_deref())).collect();
    assert_eq!(
        seen,
        [
            ("planning", None),
            ("developing", Some("zhangsan")),
            ("status_3", Some("lisi")),
            ("resolved", Some("wangwu"))
        ]
    );
    let names = workitem::state_names(&pool, SOURCE_TAPD, WS, "story").await.unwrap();
    assert_eq!(names["status_3"], "测试中", "custom states are named from the workspace's status map");
    assert_eq!(history[3].at, tao::workitems::tapd::parse_time("2024-01-10 18:02:33").unwrap());
    // A re-sync records nothing twice.
    run(&pool, &double, 200).await;
    assert_eq!(workitem::history(&pool, SOURCE_TAPD, &id).await.unwrap().len(), 4);
}
both_backends!(item_keeps_three_states_between_syncs, three_states);

async fn mapping(db: TestDb) {
    let pool = db.pool().await;
    let double = arranged().await;
    run(&pool, &double, 200).await;
    let version = |n: u32| {
        let pool = pool.clone();
        async move { workitem::item(&pool, SOURCE_TAPD, &long(n)).await.unwrap().unwrap() }
    };
    let s101 = version(101).await;
    assert_eq!((s101.product.as_deref(), s101.version.as_deref()), (Some("monitor"), Some("1.1.0")));
    assert_eq!(s101.short_id.as_deref(), Some("101"));
    assert_eq!(s101.title, "登录页支持企业微信扫码");
    assert_eq!(version(103).await.version.as_deref(), Some("1.2.0"));
    assert_eq!(version(104).await.version, None, "迭代2 does not match v{{version}}");
    assert_eq!(version(105).await.iteration_id, None);
    assert_eq!(version(321).await.version.as_deref(), Some("1.1.0"));
    let filter = ItemFilter { product: Some("monitor".into()), version: Some("1.1.0".into()), ..Default::default() };
    let in_110: Vec<String> = workitem::list(&pool, &filter).await.unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(in_110, [long(101), long(102), long(321)]);
}
both_backends!(maps_workspace_to_product_and_iterations_to_versions, mapping);

async fn links(db: TestDb) {
    let pool = db.pool().await;
    let double = arranged().await;
    run(&pool, &double, 200).await;
    let ws = [WS.to_string()];
    let mr = "monitor/api!42";
    let title = sync::link_text(&pool, "修复登录跳转问题 #101（企业微信扫码）", Via::Title, &ws, "merge_request", mr);
    assert_eq!(title.await.unwrap().len(), 1);
    let branch = sync::link_text(&pool, "feature/story-102-导出", Via::Branch, &ws, "merge_request", mr);
    assert_eq!(branch.await.unwrap().len(), 1);
    let message =
        "fix: 导出报表超时 --bug=321 --user=lisi\n\n关联需求 https://www.tapd.cn/51234567/prong/stories/view/\
                   1151234567000000103；另见 #999（不存在）";
    let sha = "3f2a9c1e7b5d4e0f8a6b2c9d1e3f5a7b12345678";
    let commit = sync::link_text(&pool, message, Via::CommitMessage, &ws, "commit", sha).await.unwrap();
    let found: Vec<&str> = commit.iter().map(|l| l.item_id.as_str()).collect();
    assert_eq!(found, [long(321), long(103)]);
    // `--bug=` does not match a story with the same short id; a repeat records nothing.
    assert!(sync::link_text(&pool, "--bug=101", Via::CommitMessage, &ws, "commit", sha).await.unwrap().is_empty());
    assert!(sync::link_text(&pool, "#101 again", Via::Title, &ws, "merge_request", mr).await.unwrap().is_empty());
    let of_101 = workitem::links_of(&pool, SOURCE_TAPD, &long(101)).await.unwrap();
    assert_eq!(
        of_101,
        [Link {
            source: SOURCE_TAPD.into(),
            item_id: long(101),
            target_kind: "merge_request".into(),
            target: mr.into(),
            via: "title".into()
        }]
    );
}
both_backends!(links_from_titles_branches_and_commit_messages, links);

#[tokio::test]
async fn a_429_is_retried_after_its_delay() {
    crate::support::limit(a_429_is_retried_after_its_delay_body()).await
}

async fn a_429_is_retried_after_its_delay_body() {
    let db = TestDb::sqlite();
    let pool = db.pool().await;
    let double = arranged().await;
    double.fail_next("/stories", 429, Some(1));
    let started = Instant::now();
    let report = run(&pool, &double, 2).await;
    assert!(started.elapsed() >= Duration::from_secs(1), "waited for Retry-After: {:?}", started.elapsed());
    assert_eq!(report.items.len(), 7);
    assert_eq!(double.requests("/stories").len(), 4, "the refused page asked again, then pages 2 and 3");
}

#[tokio::test]
async fn a_repeated_page_stops_the_sync_without_moving_the_cursor() {
    crate::support::limit(a_repeated_page_stops_the_sync_without_moving_the_cursor_body()).await
}

async fn a_repeated_page_stops_the_sync_without_moving_the_cursor_body() {
    let db = TestDb::sqlite();
    let pool = db.pool().await;
    let double = arranged().await;
    double.world().ignore_page = true;
    let target = sync::targets(&catalog()).remove(0);
    let err = sync::sync_workspace(&pool, &client(&double), &target, 2).await.unwrap_err();
    assert!(matches!(err, sync::SyncError::RepeatedPage { what: "iterations", page: 2, .. }), "{err}");
    assert_eq!(workitem::cursor(&pool, SOURCE_TAPD, WS, "iteration").await.unwrap(), None);
}

#[tokio::test]
async fn errors_name_the_call_and_never_the_secret() {
    crate::support::limit(errors_name_the_call_and_never_the_secret_body()).await
}

async fn errors_name_the_call_and_never_the_secret_body() {
    let double = arranged().await;
    let retry =
        RetryPolicy { max_attempts: 2, base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(1) };
    let wrong = Auth::Basic { user: USER.into(), password: Secret::new("wrong-password") };
    let q = tao::workitems::tapd::Query { workspace: WS.into(), page: 1, limit: 200, ..Default::default() };
    let err = TapdClient::new(&double.url, wrong, retry).unwrap().stories(&q).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TapdError::Status { status: 401, .. }), "{err:?}");
    assert!(text.contains("list stories of workspace 51234567") && text.contains("401 Unauthorized"), "{text}");
    assert!(!text.contains("wrong-password"), "{text}");

    let bearer = TapdClient::new(&double.url, Auth::Bearer(Secret::new(TOKEN)), retry).unwrap();
    assert_eq!(bearer.stories(&q).await.unwrap().len(), 5);
    assert_eq!(bearer.stories_count(&q).await.unwrap(), 5);
    let other = tao::workitems::tapd::Query { workspace: "1010480".into(), ..q.clone() };
    let err = bearer.stories(&other).await.unwrap_err().to_string();
    assert!(err.contains("workspace 1010480 not existed"), "{err}");
    // A wrong base path answers TAPD's HTTP 200 "Hello world": refused by shape, not taken as empty.
    let misrouted = TapdClient::new(&format!("{}/v2", double.url), Auth::Bearer(Secret::new(TOKEN)), retry).unwrap();
    let err = misrouted.stories(&q).await.unwrap_err();
    assert!(matches!(err, TapdError::Decode { .. }) && err.to_string().contains("Hello world"), "{err}");
}

async fn store(db: TestDb) {
    let pool = db.pool().await;
    let mut item = WorkItem {
        source: SOURCE_TAPD.into(),
        id: long(101),
        workspace: WS.into(),
        short_id: Some("101".into()),
        kind: Kind::Story,
        title: "登录".into(),
        state: "planning".into(),
        owner: Some("zhangsan;".into()),
        iteration_id: None,
        product: Some("monitor".into()),
        version: None,
        created_at: 1_000,
        modified_at: 2_000,
        completed_at: None,
    };
    workitem::upsert_item(&pool, &item).await.unwrap();
    item.state = "resolved".into();
    item.completed_at = Some(3_000);
    workitem::upsert_item(&pool, &item).await.unwrap();
    assert_eq!(workitem::item(&pool, SOURCE_TAPD, &long(101)).await.unwrap(), Some(item.clone()));
    assert_eq!(workitem::item(&pool, SOURCE_TAPD, "nope").await.unwrap(), None);

    let states = [
        StateChange { state: "planning".into(), at: 1_000, author: None },
        StateChange { state: "resolved".into(), at: 3_000, author: Some("lisi".into()) },
    ];
    assert_eq!(workitem::add_states(&pool, SOURCE_TAPD, &item.id, &states).await.unwrap(), 2);
    assert_eq!(workitem::add_states(&pool, SOURCE_TAPD, &item.id, &states).await.unwrap(), 0);
    assert_eq!(workitem::history(&pool, SOURCE_TAPD, &item.id).await.unwrap(), states);

    assert_eq!(workitem::cursor(&pool, SOURCE_TAPD, WS, "story").await.unwrap(), None);
    workitem::set_cursor(&pool, SOURCE_TAPD, WS, "story", "2024-01-05 10:11:12").await.unwrap();
    workitem::set_cursor(&pool, SOURCE_TAPD, WS, "story", "2024-01-06 18:02:33").await.unwrap();
    assert_eq!(
        workitem::cursor(&pool, SOURCE_TAPD, WS, "story").await.unwrap().as_deref(),
        Some("2024-01-06 18:02:33")
    );
    assert_eq!(workitem::cursor(&pool, SOURCE_TAPD, WS, "bug").await.unwrap(), None);

    let it = Iteration {
        source: SOURCE_TAPD.into(),
        id: long(7),
        workspace: WS.into(),
        name: "v1.1.0".into(),
        status: "open".into(),
        version: Some("1.1.0".into()),
        modified_at: 5,
    };
    workitem::upsert_iteration(&pool, &it).await.unwrap();
    assert_eq!(workitem::iteration(&pool, SOURCE_TAPD, &long(7)).await.unwrap(), Some(it));

    let link = Link {
        source: SOURCE_TAPD.into(),
        item_id: item.id.clone(),
        target_kind: "commit".into(),
        target: "abc123".into(),
        via: "commit_message".into(),
    };
    assert!(workitem::add_link(&pool, &link).await.unwrap());
    assert!(!workitem::add_link(&pool, &link).await.unwrap());
    assert_eq!(workitem::links_of(&pool, SOURCE_TAPD, &item.id).await.unwrap(), [link]);
}
both_backends!(work_item_store, store);

async fn cli(db: TestDb) {
    let double = arranged().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tao.yaml");
    let yaml = format!(
        "products:\n  monitor:\n    components: [api]\n    tapd: {{ workspace_id: {WS}, iteration_name: \"v{{version}}\" }}\n\
         components:\n  api: {{ project: monitor/api, image: registry.example.com/monitor/api }}\n"
    );
    std::fs::write(&file, yaml).unwrap();
    let run = |envs: Vec<(&'static str, String)>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tao"));
        cmd.args(["--json", "sync", "tapd", "-f"]).arg(&file).args(["--database-url", &db.url()]);
        for k in ["TAO_CATALOG", "TAO_DATABASE_URL", "TAO_TAPD_USER", "TAO_TAPD_PASSWORD", "TAO_TAPD_TOKEN"] {
            cmd.env_remove(k);
        }
        let full = envs.iter().any(|(k, _)| *k == "TAO_TAPD_FULL");
        if full {
            cmd.arg("--full");
        }
        cmd.env("TAO_TAPD_URL", &double.url).envs(envs.into_iter().filter(|(k, _)| *k != "TAO_TAPD_FULL"));
        cmd.output()
    };
    let out = run(vec![("TAO_TAPD_USER", USER.into()), ("TAO_TAPD_PASSWORD", PASSWORD.into())]).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["synced"][0]["items"].as_array().unwrap().len(), 7, "{body}");
    let pool = db.connect().await;
    assert_eq!(workitem::list(&pool, &ItemFilter::default()).await.unwrap().len(), 7);

    let out = run(vec![("TAO_TAPD_TOKEN", TOKEN.into())]).await.unwrap();
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["synced"][0]["items"].as_array().unwrap().len(), 2, "only the items at the cursors: {again}");
    let out = run(vec![("TAO_TAPD_TOKEN", TOKEN.into()), ("TAO_TAPD_FULL", "1".into())]).await.unwrap();
    let full: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(full["synced"][0]["items"].as_array().unwrap().len(), 7, "--full fetches everything: {full}");
    let out = run(vec![("TAO_TAPD_USER", USER.into())]).await.unwrap();
    let err = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && err.contains("TAO_TAPD_PASSWORD is not"), "{err}");
    let out = run(vec![("TAO_TAPD_TOKEN", "wrong-token".into())]).await.unwrap();
    let err = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && err.contains("401 Unauthorized") && !err.contains("wrong-token"), "{err}");
}
both_backends!(cli_sync_tapd_writes_the_store, cli);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_syncs_on_its_schedule() {
    crate::support::limit(the_server_syncs_on_its_schedule_body()).await
}

async fn the_server_syncs_on_its_schedule_body() {
    let double = arranged().await;
    let url = double.url.clone();
    let app = crate::support::spawn_app_with(TestDb::sqlite(), |s| {
        s.tapd_url = url;
        s.tapd_auth = Some(Auth::Bearer(Secret::new(TOKEN)));
        s.tapd_sync_interval = Some(Duration::from_millis(200));
    })
    .await;
    let line = "    release_project: monitor/release";
    let mapped = format!("{line}\n    tapd: {{ workspace_id: {WS}, iteration_name: \"v{{version}}\" }}");
    let yaml = crate::support::EXAMPLE.replacen(line, &mapped, 1);
    assert_ne!(yaml, crate::support::EXAMPLE, "the example has the release_project line");
    let applied = app.http.post(format!("{}/api/v1/catalog", app.base)).bearer_auth(&app.admin).body(yaml);
    assert!(applied.send().await.unwrap().status().is_success());
    let pool = app.pool.clone();
    crate::webhook::wait_for("the scheduled sync to store the items", || {
        let pool = pool.clone();
        async move { workitem::list(&pool, &ItemFilter::default()).await.unwrap().len() == 7 }
    })
    .await;
    let item = workitem::item(&app.pool, SOURCE_TAPD, &long(101)).await.unwrap().unwrap();
    assert_eq!(item.version.as_deref(), Some("1.1.0"));
}

async fn release_api(db: TestDb) {
    let app = crate::support::spawn_app(db).await;
    let double = arranged().await;
    let mapping = tao::catalog::TapdMapping { workspace_id: WS.into(), iteration_name: "v{version}".into() };
    let target = sync::Target { product: "monitor".into(), mapping };
    sync::sync_workspace(&app.pool, &client(&double), &target, 200).await.unwrap();
    double.set_story_status(&long(101), "resolved", "2024-01-08 09:00:00", "zhangsan");
    sync::sync_workspace(&app.pool, &client(&double), &target, 200).await.unwrap();
    let ws = [WS.to_string()];
    sync::link_text(&app.pool, "登录页 #101", Via::Title, &ws, "merge_request", "monitor/api!42").await.unwrap();
    for (env, version, task) in [("env-1", "1.1.0", 1), ("prod", "1.1.0", 2), ("env-1", "1.2.0", 3)] {
        tao::store::deployed::record_release(&app.pool, env, "monitor", version, task, "[]").await.unwrap();
    }

    let reply = app.get("/api/v1/releases/monitor/1.1.0/work-items", &app.reader).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let items = reply.body["work_items"].as_array().unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [long(101), long(102), long(321)]);
    assert_eq!(items[0]["title"], "登录页支持企业微信扫码");
    assert_eq!(items[0]["state"], "resolved");
    let states: Vec<&str> =
        items[0]["history"].as_array().unwrap().iter().map(|h| h["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["planning", "resolved"]);
    assert_eq!(items[0]["state_label"], "已实现");
    assert_eq!(items[0]["history"][0]["label"], "规划中");
    assert_eq!(items[2]["state_label"], "新", "bug states are named from the bug map");
    assert_eq!(items[0]["links"][0]["target"], "monitor/api!42");
    assert_eq!(items[2]["kind"], "bug");
    let deployed: Vec<(&str, bool)> = reply.body["deployed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["env"].as_str().unwrap(), d["current"].as_bool().unwrap()))
        .collect();
    assert_eq!(deployed, [("env-1", false), ("prod", true)], "env-1 moved on to 1.2.0");

    assert_eq!(app.get("/api/v1/releases/nope/1.1.0/work-items", &app.reader).await.status, 404);
    let empty = app.get("/api/v1/releases/monitor/9.9.9/work-items", &app.reader).await;
    assert_eq!((empty.status, empty.body["work_items"].as_array().map(Vec::len)), (200, Some(0)));
    let _ = app.stop().await;
}
both_backends!(release_work_items_and_where_deployed, release_api);

const MR_HOOK: &str = include_str!("../fixtures/gitlab/webhooks/merge_request.json");
const PUSH_HOOK: &str = include_str!("../fixtures/gitlab/webhooks/push.json");

async fn hooks(db: TestDb) {
    let app = crate::support::spawn_app_with(db, |s| s.gitlab_webhook_secrets = vec![Secret::new("hook-secret")]).await;
    let line = "    release_project: monitor/release";
    let mapped = format!("{line}\n    tapd: {{ workspace_id: {WS}, iteration_name: \"v{{version}}\" }}");
    let yaml = crate::support::EXAMPLE.replacen(line, &mapped, 1);
    let applied = app.http.post(format!("{}/api/v1/catalog", app.base)).bearer_auth(&app.admin).body(yaml);
    assert!(applied.send().await.unwrap().status().is_success());
    let double = arranged().await;
    let target = sync::targets(&catalog()).remove(0);
    sync::sync_workspace(&app.pool, &client(&double), &target, 200).await.unwrap();

    let mut mr: serde_json::Value = serde_json::from_str(MR_HOOK).unwrap();
    mr["project"]["path_with_namespace"] = "monitor/api".into();
    mr["object_attributes"]["iid"] = 42.into();
    mr["object_attributes"]["title"] = "修复登录跳转问题 #101".into();
    mr["object_attributes"]["source_branch"] = "feature/story-102-导出".into();
    mr["object_attributes"]["last_commit"]["id"] = "aaaa000000000000000000000000000000000001".into();
    mr["object_attributes"]["last_commit"]["message"] = "fix: 导出超时 --bug=321 --user=lisi".into();
    let mut push: serde_json::Value = serde_json::from_str(PUSH_HOOK).unwrap();
    push["project"]["path_with_namespace"] = "monitor/api".into();
    push["commits"][0]["id"] = "bbbb000000000000000000000000000000000002".into();
    push["commits"][0]["message"] = "关联需求 1151234567000000103\n\n补充单元测试".into();
    for (event, body) in [("Merge Request Hook", mr), ("Push Hook", push)] {
        let sent = app
            .http
            .post(crate::webhook::hook_url(&app.base))
            .header("X-Gitlab-Event", event)
            .header("X-Gitlab-Token", "hook-secret")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 200, "{event}");
    }
    let pool = app.pool.clone();
    crate::webhook::wait_for("links from the MR and the push", || {
        let pool = pool.clone();
        async move { !workitem::links_of(&pool, SOURCE_TAPD, &long(103)).await.unwrap().is_empty() }
    })
    .await;
    let target_of = |n: u32| {
        let pool = app.pool.clone();
        async move {
            let links = workitem::links_of(&pool, SOURCE_TAPD, &long(n)).await.unwrap();
            links.into_iter().map(|l| (l.target_kind, l.target, l.via)).collect::<Vec<_>>()
        }
    };
    let mr_link = |via: &str| ("merge_request".to_string(), "monitor/api!42".to_string(), via.to_string());
    assert_eq!(target_of(101).await, [mr_link("title")]);
    assert_eq!(target_of(102).await, [mr_link("branch")]);
    let commit = |sha: &str| ("commit".to_string(), sha.to_string(), "commit_message".to_string());
    assert_eq!(target_of(321).await, [commit("aaaa000000000000000000000000000000000001")]);
    assert_eq!(target_of(103).await, [commit("bbbb000000000000000000000000000000000002")]);
    let _ = app.stop().await;
}
both_backends!(gitlab_events_link_work_items, hooks);

/// Found-in and fixed-in versions of bugs, mapped like iteration names (or bare versions); fixed-in falls
/// back to a completed bug's iteration. Hand-checked: 321 found in 1.0.0, resolved in iteration v1.1.0;
/// 322 found in 1.1.0, to be fixed in 1.2.0, open; 323's version name maps to no product version.
async fn bugs_per_version(db: TestDb) {
    let pool = db.pool().await;
    let double = arranged().await;
    double.add_bug(WS, &long(323), "首页白屏", "new", "0", "2024-01-03 11:00:00");
    let at = "2024-01-07 10:00:00";
    double.edit_bug(&long(321), &[("version_report", "v1.0.0"), ("status", "resolved"), ("resolved", at)], at);
    double.edit_bug(&long(322), &[("version_report", "1.1.0"), ("version_fix", "v1.2.0")], at);
    double.edit_bug(&long(323), &[("version_report", "版本1")], at);
    run(&pool, &double, 200).await;
    let q = tao::metrics::series::Query { product: Some("monitor".into()), ..Default::default() };
    let rows = tao::metrics::series::rows(&pool, &catalog(), "bugs", &q).await.unwrap().unwrap();
    let got: Vec<String> = rows.iter().map(|r| serde_json::Value::Object(r.clone()).to_string()).collect();
    assert_eq!(
        got,
        [
            r#"{"fixed":0,"found":1,"open":0,"product":"monitor","version":"1.0.0"}"#,
            r#"{"fixed":1,"found":1,"open":1,"product":"monitor","version":"1.1.0"}"#,
            r#"{"fixed":1,"found":0,"open":0,"product":"monitor","version":"1.2.0"}"#,
        ]
    );
    let one = tao::metrics::series::Query { version: Some("1.1.0".into()), ..q };
    assert_eq!(tao::metrics::series::rows(&pool, &catalog(), "bugs", &one).await.unwrap().unwrap().len(), 1);
}
both_backends!(bugs_per_product_version, bugs_per_version);
