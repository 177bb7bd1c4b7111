//! The JSON API over real HTTP: product versions, auth, validation, limits, catalog apply.

use serde_json::json;
use tao::store;

use crate::support::{monitor_release, spawn_app, spawn_app_with, TestApp, TestDb};

async fn release_count(app: &TestApp) -> usize {
    store::release::list(&app.pool, "monitor").await.unwrap().len()
}

#[tokio::test]
async fn create_list_show_product_versions() {
    crate::support::limit(create_list_show_product_versions_body()).await
}

async fn create_list_show_product_versions_body() {
    let app = spawn_app(TestDb::sqlite()).await;
    let r = app.create_release(&app.deployer, monitor_release("v1.0.0", &[])).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["version"], "1.0.0", "a leading v is normalized away");
    assert_eq!(r.body["created_by"], "token:deployer");
    let api = r.body["components"].as_array().unwrap().iter().find(|c| c["component"] == "api").unwrap().clone();
    assert_eq!(api["git_tag"], "v1.0.0");
    assert_eq!(api["image_tag"], "1.0.0");
    assert_eq!(api["image"], "registry.example.com/monitor/api");
    let sql = r.body["components"].as_array().unwrap().iter().find(|c| c["component"] == "sql").unwrap().clone();
    assert_eq!(sql["image"], json!(null), "shared components have no image");

    let r = app.create_release(&app.deployer, monitor_release("1.1.0", &[("ops", "1.1.0")])).await;
    assert_eq!(r.status, 201);

    let list = app.get("/api/v1/releases/monitor", &app.reader).await;
    assert_eq!(list.status, 200);
    let versions: Vec<_> = list.body.as_array().unwrap().iter().map(|r| r["version"].clone()).collect();
    assert_eq!(versions, vec![json!("1.1.0"), json!("1.0.0")], "newest first");

    for path in ["/api/v1/releases/monitor/1.1.0", "/api/v1/releases/monitor/v1.1.0"] {
        let show = app.get(path, &app.reader).await;
        assert_eq!(show.status, 200, "{path}");
        let ops = show.body["components"].as_array().unwrap().iter().find(|c| c["component"] == "ops").unwrap();
        assert_eq!(ops["version"], "1.1.0");
    }
    let missing = app.get("/api/v1/releases/monitor/9.9.9", &app.reader).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "not_found");
    assert_eq!(app.get("/api/v1/releases/nope", &app.reader).await.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn re_creating_is_idempotent_and_changed_content_conflicts() {
    crate::support::limit(re_creating_is_idempotent_and_changed_content_conflicts_body()).await
}

async fn re_creating_is_idempotent_and_changed_content_conflicts_body() {
    let app = spawn_app(TestDb::sqlite()).await;
    assert_eq!(app.create_release(&app.deployer, monitor_release("1.0.0", &[])).await.status, 201);
    let again = app.create_release(&app.admin, monitor_release("1.0.0", &[])).await;
    assert_eq!(again.status, 200, "same content: a no-op");
    assert_eq!(again.body["created_by"], "token:deployer", "the original is kept");

    let changed = app.create_release(&app.deployer, monitor_release("1.0.0", &[("api", "1.0.1")])).await;
    assert_eq!(changed.status, 409);
    assert_eq!(changed.body["error"]["code"], "conflict");
    let msg = changed.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("api: stored 1.0.0, requested 1.0.1"), "{msg}");
    let stored = store::release::get(&app.pool, "monitor", "1.0.0").await.unwrap().unwrap();
    assert_eq!(stored.version_map()["api"], "1.0.0", "nothing changed");
    assert_eq!(release_count(&app).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn tokens_and_scopes_are_enforced() {
    crate::support::limit(tokens_and_scopes_are_enforced_body()).await
}

async fn tokens_and_scopes_are_enforced_body() {
    let app = spawn_app(TestDb::sqlite()).await;
    let none = app.send(reqwest::Method::GET, "/api/v1/products", None, None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.body["error"]["code"], "unauthorized");
    let bogus = app.get("/api/v1/products", "tao_not-a-token").await;
    assert_eq!(bogus.status, 401);

    let read_only = app.create_release(&app.reader, monitor_release("1.0.0", &[])).await;
    assert_eq!(read_only.status, 403);
    assert!(read_only.body["error"]["message"].as_str().unwrap().contains("deploy scope"), "{:?}", read_only.body);
    let no_token = app.send(reqwest::Method::POST, "/api/v1/releases", None, Some(monitor_release("1.0.0", &[]))).await;
    assert_eq!(no_token.status, 401);
    assert_eq!(release_count(&app).await, 0, "nothing written on a rejected request");

    // /healthz is open.
    let health = app.send(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "ok");

    // Revocation takes effect at once.
    assert_eq!(app.get("/api/v1/products", &app.reader).await.status, 200);
    assert!(store::token::revoke(&app.pool, "reader").await.unwrap());
    assert_eq!(app.get("/api/v1/products", &app.reader).await.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn read_endpoints_can_be_opened_by_configuration() {
    crate::support::limit(read_endpoints_can_be_opened_by_configuration_body()).await
}

async fn read_endpoints_can_be_opened_by_configuration_body() {
    let app = spawn_app_with(TestDb::sqlite(), |s| s.open_read = true).await;
    let products = app.send(reqwest::Method::GET, "/api/v1/products", None, None).await;
    assert_eq!(products.status, 200);
    let write = app.send(reqwest::Method::POST, "/api/v1/releases", None, Some(monitor_release("1.0.0", &[]))).await;
    assert_eq!(write.status, 401, "writes still need a token");
    app.stop().await;
}

#[tokio::test]
async fn invalid_release_requests_get_field_errors_and_change_nothing() {
    crate::support::limit(invalid_release_requests_get_field_errors_and_change_nothing_body()).await
}

async fn invalid_release_requests_get_field_errors_and_change_nothing_body() {
    let app = spawn_app(TestDb::sqlite()).await;
    let mut missing = monitor_release("1.0.0", &[]);
    missing["components"].as_object_mut().unwrap().remove("graph");
    let mut unknown = monitor_release("1.0.0", &[]);
    unknown["components"]["billing"] = json!("1.0.0");
    let cases = [
        (unknown, "components.billing"),
        (missing, "components.graph"),
        (monitor_release("1.0", &[]), "version"),
        (monitor_release("1.0.0", &[("api", "latest")]), "components.api"),
        (json!({ "product": "nope", "version": "1.0.0", "components": {} }), "product"),
        (json!({ "version": "1.0.0", "components": {} }), "product"),
        (json!({ "product": "monitor", "version": 1, "components": {} }), "version"),
        (json!({ "product": "monitor", "version": "1.0.0", "components": [] }), "components"),
    ];
    for (body, field) in cases {
        let r = app.create_release(&app.deployer, body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {:?}", r.body);
        assert_eq!(r.body["error"]["code"], "invalid");
        assert_eq!(r.body["error"]["field"], field, "{body}: {:?}", r.body);
    }
    let extra = app.create_release(&app.deployer, json!({"product": "monitor", "version": "x", "extra": 1})).await;
    assert_eq!(extra.status, 422);
    let details = extra.body["error"]["details"].as_array().expect("several problems listed");
    let paths: Vec<_> = details.iter().map(|d| d["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"components") && paths.contains(&"extra"), "{paths:?}");

    let not_json = app
        .http
        .post(format!("{}/api/v1/releases", app.base))
        .bearer_auth(&app.deployer)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(release_count(&app).await, 0, "nothing written");
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_rejected() {
    crate::support::limit(oversized_bodies_are_rejected_body()).await
}

async fn oversized_bodies_are_rejected_body() {
    let app = spawn_app_with(TestDb::sqlite(), |s| s.max_body = 4096).await;
    let mut body = monitor_release("1.0.0", &[]);
    body["padding"] = json!("x".repeat(8192));
    let r = app.create_release(&app.deployer, body).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body["error"]["code"], "payload_too_large");
    assert_eq!(release_count(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn products_and_environments_come_from_the_catalog() {
    crate::support::limit(products_and_environments_come_from_the_catalog_body()).await
}

async fn products_and_environments_come_from_the_catalog_body() {
    let app = spawn_app(TestDb::sqlite()).await;
    let products = app.get("/api/v1/products", &app.reader).await;
    assert_eq!(products.body[0]["name"], "monitor");
    let monitor = app.get("/api/v1/products/monitor", &app.reader).await;
    assert_eq!(monitor.status, 200);
    let order: Vec<String> =
        serde_json::from_value(monitor.body["deploy_order"].clone()).expect("deploy order is a list of names");
    let pos = |c: &str| order.iter().position(|x| x == c).unwrap();
    assert!(pos("sql") < pos("api") && pos("ops") < pos("api"), "dependencies first: {order:?}");
    assert_eq!(app.get("/api/v1/products/nope", &app.reader).await.status, 404);

    let envs = app.get("/api/v1/environments", &app.reader).await;
    let names: Vec<_> = envs.body.as_array().unwrap().iter().map(|e| e["name"].clone()).collect();
    assert_eq!(names, vec![json!("env-1"), json!("prod")]);
    let env1 = app.get("/api/v1/environments/env-1", &app.reader).await;
    assert_eq!(env1.body["tier"], "test");
    assert!(env1.body["hosts"].as_array().unwrap().len() >= 2);
    assert_eq!(app.get("/api/v1/environments/nope", &app.reader).await.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn catalog_apply_validates_first_and_rejects_whole() {
    crate::support::limit(catalog_apply_validates_first_and_rejects_whole_body()).await
}

async fn catalog_apply_validates_first_and_rejects_whole_body() {
    let app = spawn_app(TestDb::sqlite()).await;
    let before = app.get("/api/v1/catalog", &app.reader).await.body["revision"].clone();
    let post = |token: String, yaml: String| {
        let req = app.http.post(format!("{}/api/v1/catalog", app.base)).bearer_auth(token).body(yaml);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, _) = post(app.deployer.clone(), crate::support::EXAMPLE.to_string()).await;
    assert_eq!(status, 403, "the catalog needs admin");

    let (status, body) = post(app.admin.clone(), crate::support::EXAMPLE.to_string()).await;
    assert_eq!((status, body["changed"].clone()), (200, json!(false)), "unchanged text stores nothing");

    let broken = crate::support::EXAMPLE.replace("depends_on: [sql, ops]", "depends_on: [sql, billing]");
    assert_ne!(broken, crate::support::EXAMPLE, "the example has the line this test edits");
    let (status, body) = post(app.admin.clone(), broken).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "components.api.depends_on[1]");
    assert_eq!(app.get("/api/v1/catalog", &app.reader).await.body["revision"], before, "rejected whole");

    let renamed = crate::support::EXAMPLE.replace("env-1", "env-9");
    let (status, body) = post(app.admin.clone(), renamed).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(app.get("/api/v1/environments/env-9", &app.reader).await.status, 200, "live at once");
    let audit = store::audit::recent(&app.pool, 10).await.unwrap();
    let outcomes: Vec<_> = audit.iter().filter(|a| a.action == "catalog.apply").map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["ok", "rejected", "unchanged", "ok"]);
    app.stop().await;
}

#[tokio::test]
async fn postgres_smoke() {
    crate::support::limit(postgres_smoke_body()).await
}

async fn postgres_smoke_body() {
    let app = spawn_app(TestDb::postgres().await).await;
    assert_eq!(app.create_release(&app.deployer, monitor_release("1.0.0", &[])).await.status, 201);
    assert_eq!(app.create_release(&app.deployer, monitor_release("1.0.0", &[])).await.status, 200);
    assert_eq!(app.create_release(&app.deployer, monitor_release("1.0.0", &[("api", "2.0.0")])).await.status, 409);
    let show = app.get("/api/v1/releases/monitor/1.0.0", &app.reader).await;
    assert_eq!(show.status, 200);
    assert_eq!(show.body["components"].as_array().unwrap().len(), 6);
    let health = app.send(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(health.body["database"], "postgres");
    app.stop().await;
}

#[tokio::test]
async fn with_gitlab_configured_product_versions_need_their_git_tags() {
    crate::support::limit(with_gitlab_configured_product_versions_need_their_git_tags_body()).await
}

async fn with_gitlab_configured_product_versions_need_their_git_tags_body() {
    use tao::gitlab::client::ProjectId;

    use crate::support::gitlab::{GitLabDouble, ROOT_TOKEN};

    let double = GitLabDouble::start().await;
    let gitlab = crate::gitlab::client(&double, crate::gitlab::root());
    for (component, tag) in [
        ("ops", "v1.0.0"),
        ("graph", "v1.0.0"),
        ("agent", "agent-v1.0.0"),
        ("api", "v1.0.0"),
        ("self-monitor", "v1.0.0"),
    ] {
        let project = format!("monitor/{component}");
        double.add_project(&project);
        gitlab.create_tag(&ProjectId::Path(project), tag, "main", None).await.unwrap();
    }
    let url = double.url.clone();
    let app = spawn_app_with(TestDb::sqlite(), move |s| {
        s.gitlab_url = Some(url);
        s.gitlab_token = Some(tao::config::Secret::new(ROOT_TOKEN));
    })
    .await;
    assert_eq!(app.create_release(&app.deployer, monitor_release("1.0.0", &[])).await.status, 201, "every tag exists");

    let r = app.create_release(&app.deployer, monitor_release("1.1.0", &[("api", "1.1.0"), ("agent", "1.1.0")])).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let details: Vec<(String, String)> = r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["path"].as_str().unwrap().to_string(), d["found"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        details,
        [
            ("components.agent".to_string(), "no tag agent-v1.1.0 in GitLab".to_string()),
            ("components.api".to_string(), "no tag v1.1.0 in GitLab".to_string()),
        ]
    );
    assert_eq!(release_count(&app).await, 1, "nothing stored for the rejected version");
    let _ = app.stop().await;
}
