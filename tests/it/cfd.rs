//! Cumulative flow from stored work-item histories: `GET /api/v1/metrics/cfd` (per day and state, of a
//! product or one version) and `tao report cfd` (the PNG), on SQLite and PostgreSQL.

use tao::store::workitem;
use tao::workitems::{Kind, StateChange, WorkItem};

use crate::both_backends;
use crate::support::{spawn_app, TestApp, TestDb};

const DAY: i64 = 86_400_000;
/// 2024-03-01T00:00:00Z.
pub const T0: i64 = 1_709_251_200_000;

/// Stores TAPD story `id` of `monitor` `version`, created `created` ms after 2024-03-01 and moved through
/// `states` (each at ms after that day).
pub async fn item(app: &TestApp, id: &str, version: &str, created: i64, states: &[(&str, i64)]) {
    let w = WorkItem {
        source: "tapd".into(),
        id: id.into(),
        workspace: "20003271".into(),
        short_id: Some(id.into()),
        kind: Kind::Story,
        title: format!("story {id}"),
        state: states.last().map(|s| s.0.to_string()).unwrap_or_else(|| "planning".into()),
        owner: None,
        iteration_id: None,
        product: Some("monitor".into()),
        version: Some(version.into()),
        created_at: T0 + created,
        modified_at: T0 + created,
        completed_at: None,
    };
    workitem::upsert_item(&app.pool, &w).await.unwrap();
    let changes: Vec<StateChange> =
        states.iter().map(|(s, at)| StateChange { state: s.to_string(), at: T0 + at, author: None }).collect();
    workitem::add_states(&app.pool, "tapd", id, &changes).await.unwrap();
}

async fn flow_of_a_version(db: TestDb) {
    let app = spawn_app(db).await;
    // The unit test's items (metrics::cfd), all in monitor 1.1.0, plus one in 1.2.0.
    item(&app, "1", "1.1.0", 0, &[("planning", 0), ("developing", 3 * DAY / 2), ("resolved", 5 * DAY / 2)]).await;
    item(&app, "2", "1.1.0", DAY / 2, &[("planning", DAY / 2), ("developing", 32 * DAY / 10)]).await;
    item(&app, "3", "1.1.0", 21 * DAY / 10, &[]).await;
    item(&app, "4", "1.2.0", 0, &[("planning", 0)]).await;
    let q = format!("product=monitor&version=1.1.0&from={T0}&to={}", T0 + 4 * DAY - 1);
    let r = app.get(&format!("/api/v1/metrics/cfd?{q}"), &app.reader).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let count = |day: &str, state: &str| {
        r.body
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["time"] == format!("2024-03-0{day}T00:00:00Z") && x["state"] == state)
            .map(|x| x["items"].as_i64().unwrap())
    };
    assert_eq!(
        [count("1", "planning"), count("2", "planning"), count("3", "planning"), count("4", "planning")],
        [Some(2), Some(1), Some(2), Some(1)]
    );
    assert_eq!([count("1", "resolved"), count("3", "resolved"), count("4", "developing")], [Some(0), Some(1), Some(1)]);
    let all = app.get(&format!("/api/v1/metrics/cfd?product=monitor&from={T0}&to={}", T0 + DAY - 1), &app.reader).await;
    let planning_day1: i64 = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["state"] == "planning")
        .map(|x| x["items"].as_i64().unwrap())
        .sum();
    assert_eq!(planning_day1, 3, "without a version, every item of the product: {:?}", all.body);
}
both_backends!(cfd_counts_each_state_per_day, flow_of_a_version);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cfd_report_is_a_png() {
    crate::support::limit(the_cfd_report_is_a_png_body()).await
}

async fn the_cfd_report_is_a_png_body() {
    let app = spawn_app(TestDb::sqlite()).await;
    let now = tao::store::now_ms();
    item(&app, "9", "1.1.0", now - T0 - 3 * DAY, &[("planning", now - T0 - 3 * DAY), ("resolved", now - T0 - DAY)])
        .await;
    let args = ["cfd", "monitor", "--version", "1.1.0", "--days", "7", "--size", "640x400"];
    assert_eq!(crate::metrics::report_png(&app, &args).await, (640, 400));
}
