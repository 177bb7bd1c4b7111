//! Lead time for changes end to end: release tags pushed to the GitLab double make Tao record the commits
//! each component version brought (compare with the previous version tag); with product versions and
//! deploys stored, `GET /api/v1/metrics/dora` reports the lead times a hand computation gives. On SQLite
//! and PostgreSQL.

use tao::config::Secret;
use tao::gitlab::client::ProjectId;
use tao::gitlab::hook_sync::tao_events;
use tao::store::{self, event, release};

use crate::both_backends;
use crate::gitlab::{client, root};
use crate::support::gitlab::{GitLabDouble, ROOT_TOKEN};
use crate::support::{spawn_app_with, TestApp, TestDb};
use crate::webhook::{hook_url, wait_for, SECRET};

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;
/// 2024-03-01T00:00:00Z.
const T0: i64 = 1_709_251_200_000;

async fn settled(app: &TestApp) {
    wait_for("every event handled", || async { event::unprocessed(&app.pool).await.unwrap() == 0 }).await;
}

fn compares(double: &GitLabDouble) -> usize {
    double.requests().iter().filter(|r| r.path.contains("/repository/compare")).count()
}

/// A product version of `monitor` with every component at 1.0.0 except `changed`.
async fn product_version(app: &TestApp, version: &str, changed: &[(&str, &str)]) {
    let components = ["ops", "sql", "graph", "agent", "api", "self-monitor"]
        .into_iter()
        .map(|c| {
            let v = changed.iter().find(|(n, _)| *n == c).map_or("1.0.0", |(_, v)| v);
            release::ReleaseComponent {
                component: c.into(),
                version: v.into(),
                git_tag: if c == "agent" { format!("agent-v{v}") } else { format!("v{v}") },
                image: None,
                image_tag: v.into(),
                image_digest: None,
            }
        })
        .collect();
    let new = release::NewProductVersion {
        product: "monitor".into(),
        version: version.into(),
        catalog_revision: None,
        created_by: "test".into(),
        components,
    };
    assert!(matches!(release::create(&app.pool, &new).await.unwrap(), release::CreateOutcome::Created(_)));
}

async fn deploy(app: &TestApp, i: usize, env: &str, version: &str, status: &str, at: i64) {
    let sql = "INSERT INTO deploy_task (kind, env, product, version, status, requested_by, idempotency_key, \
               created_at, started_at, finished_at) VALUES ('release', $1, 'monitor', $2, $3, 'test', $4, $5, $6, $7)";
    tao::with_pool!(&app.pool, p => sqlx::query(sql)
        .bind(env).bind(version).bind(status).bind(format!("lead-{i}"))
        .bind(T0 + at - 60_000).bind(T0 + at - 30_000).bind(T0 + at)
        .execute(p).await.map(|_| ()))
    .unwrap();
}

/// The history of `metrics::dora`'s lead time unit test, built through GitLab: api 1.1.0 brings commits
/// at 0 h and 6 h, agent 1.1.0 one at 30 h (its tags are `agent-v…`); first versions bring none.
async fn lead_time_from_pushed_tags(db: TestDb) {
    let double = GitLabDouble::start().await;
    double.add_project("monitor/api");
    double.add_project("monitor/agent");
    let (maintainer, _) = double.add_user("maintainer");
    let url = double.url.clone();
    let app = spawn_app_with(db, move |s| {
        s.gitlab_url = Some(url);
        s.gitlab_token = Some(Secret::new(ROOT_TOKEN));
        s.gitlab_webhook_secrets = vec![Secret::new(SECRET)];
    })
    .await;
    for project in ["monitor/api", "monitor/agent"] {
        double.add_member(project, maintainer, 40);
        client(&double, root())
            .create_project_hook(
                &ProjectId::Path(project.into()),
                &hook_url(&app.base),
                &Secret::new(SECRET),
                &tao_events(),
            )
            .await
            .unwrap();
    }

    // First versions: recorded with no previous tag, no compare.
    double.tag_and_notify("monitor/api", "v1.0.0", "main", maintainer).await;
    double.tag_and_notify("monitor/agent", "agent-v1.0.0", "main", maintainer).await;
    settled(&app).await;
    assert_eq!(compares(&double), 0);
    assert!(store::change::recorded(&app.pool, "api", "1.0.0").await.unwrap());
    assert!(store::change::recorded(&app.pool, "agent", "1.0.0").await.unwrap());

    double.push_at("monitor/api", "main", "feat: alerts per team", "2024-03-01T00:00:00Z");
    double.push_at("monitor/api", "main", "fix: 修复登录超时 (#12)", "2024-03-01T06:00:00Z");
    double.tag_and_notify("monitor/api", "v1.1.0", "main", maintainer).await;
    double.push_at("monitor/agent", "main", "feat: udp listener", "2024-03-02T06:00:00Z");
    double.tag_and_notify("monitor/agent", "agent-v1.1.0", "main", maintainer).await;
    // Not a release tag of the component (`v…` is api's format, not agent's): ignored.
    double.tag_and_notify("monitor/agent", "v9.9.9", "main", maintainer).await;
    settled(&app).await;
    let api = store::change::commits_of(&app.pool, "api", "1.1.0").await.unwrap();
    let titles: Vec<&str> = api.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, ["feat: alerts per team", "fix: 修复登录超时 (#12)"]);
    assert_eq!(api.iter().map(|c| c.committed_at).collect::<Vec<_>>(), [T0, T0 + 6 * H]);
    assert_eq!(store::change::commits_of(&app.pool, "agent", "1.1.0").await.unwrap().len(), 1);
    assert!(!store::change::recorded(&app.pool, "agent", "9.9.9").await.unwrap());
    assert_eq!(compares(&double), 2);

    // The same tag event delivered again (a resend with a new delivery id): nothing asked, nothing added.
    let body = serde_json::to_vec(&double.tag_payload("monitor/api", "v1.1.0", maintainer)).unwrap();
    assert_eq!(double.deliver("monitor/api", "Tag Push Hook", &body, "resend-1").await, [200]);
    settled(&app).await;
    assert_eq!(compares(&double), 2);
    assert_eq!(store::change::commits_of(&app.pool, "api", "1.1.0").await.unwrap().len(), 2);

    product_version(&app, "1.0.0", &[]).await;
    product_version(&app, "1.1.0", &[("api", "1.1.0")]).await;
    product_version(&app, "1.2.0", &[("api", "1.1.0"), ("agent", "1.1.0")]).await;
    deploy(&app, 1, "prod", "1.0.0", "succeeded", -DAY).await;
    deploy(&app, 2, "env-1", "1.1.0", "succeeded", 10 * H).await;
    deploy(&app, 3, "prod", "1.1.0", "failed", 34 * H).await;
    deploy(&app, 4, "prod", "1.1.0", "succeeded", 36 * H).await;
    deploy(&app, 5, "prod", "1.2.0", "succeeded", 48 * H).await;

    let r = app.get(&format!("/api/v1/metrics/dora?product=monitor&from={T0}&to={}", T0 + 3 * DAY), &app.reader).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rows = r.body.as_array().unwrap();
    let prod = rows.iter().find(|x| x["tier"] == "prod").unwrap();
    // 36 h and 30 h (api's commits, first on prod at 36 h), 18 h (agent's, at 48 h).
    assert_eq!(prod["changes"], 3, "{prod}");
    assert_eq!(prod["lead_time_median_s"], 30.0 * 3600.0);
    assert_eq!(prod["lead_time_mean_s"], 28.0 * 3600.0);
    let test = rows.iter().find(|x| x["tier"] == "test").unwrap();
    assert_eq!((test["changes"].as_i64(), test["lead_time_median_s"].as_f64()), (Some(2), Some(7.0 * 3600.0)));
}
both_backends!(lead_time_for_changes_from_pushed_tags, lead_time_from_pushed_tags);
