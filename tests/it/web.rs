//! The web console in a real browser (headless chromium over WebDriver): sign in through GitLab's OAuth
//! (the GitLab double checks the PKCE verifier and the client secret), the overview of the seeded
//! state, a deploy chosen on the deploy page with its plan, the task's log reaching `succeeded` without
//! a reload against real sshd/Docker/registry hosts, the overview updated; production asking for the
//! typed name; a reader without a deploy button whose forged POST is 403 with nothing queued; a POST
//! without the CSRF token refused; hostile names and titles escaped in the DOM; logout ending the
//! session. Each page's screenshot goes to `target/screenshots` (or `$TAO_SCREENSHOT_DIR`).

use std::time::Duration;

use serde_json::json;
use tao::config::discord_roles::RoleMap;
use tao::config::Secret;

use crate::support::browser::Browser;
use crate::support::gitlab::GitLabDouble;
use crate::support::hosts::{TestHosts, DEPLOY_USER};
use crate::support::registry::registry;
use crate::support::{published_ports, spawn_app_with, Cleanup, TestApp, TestDb};

const HOSTILE: &str = "<script>window.pwned=1</script>\"onerror=window.pwned=2 <img src=x onerror=window.pwned=3>";

fn suffix() -> String {
    format!("{:x}", rand::random::<u32>())
}

fn catalog(env: &str, prod: &str, hosts: &TestHosts, ports: &[u16]) -> String {
    let reg = &registry().address;
    let h0 = format!(
        "{{ name: h0, address: \"{}\", port: {}, user: {DEPLOY_USER} }}",
        hosts.hosts[0].address, hosts.hosts[0].port
    );
    format!(
        r#"products:
  monitor:
    description: {hostile}
    components: [ops]
components:
  ops:
    project: mon/ops
    image: {reg}/tao-test/web
    container:
      ports: ["8080:8080"]
    health:
      http: {{ port: 8080, path: /health }}
      timeout: 30s
environments:
  {env}:
    tier: test
    hosts: [{h0}]
    overrides:
      h0:
        ops: {{ name: "{{env}}-ops", ports: ["{p0}:8080"] }}
  {prod}:
    tier: prod
    hosts: [{h0}]
    overrides:
      h0:
        ops: {{ name: "{{env}}-ops", ports: ["{p1}:8080"] }}
"#,
        hostile = serde_json::to_string(HOSTILE).unwrap(),
        p0 = ports[0],
        p1 = ports[1],
    )
}

struct Console {
    app: TestApp,
    gitlab: GitLabDouble,
    env: String,
    prod: String,
    _hosts: TestHosts,
    _cleanup: Cleanup,
}

async fn console(db: TestDb) -> (Console, i64, i64) {
    let gitlab = GitLabDouble::start().await;
    let (ann, _) = gitlab.add_user("ann");
    let (rita, _) = gitlab.add_user("rita");
    gitlab.add_group("acme/readers", &[rita]);
    let port = published_ports(1)[0];
    let public = format!("http://127.0.0.1:{port}");
    let (client_id, secret) = gitlab.add_oauth_app(&format!("{public}/ui/oauth/callback"));
    let hosts = TestHosts::start(1);
    let (env, prod) = (format!("w{}", suffix()), format!("wp{}", suffix()));
    let ports = published_ports(2);
    let (key, known, control) = (hosts.key.clone(), hosts.known_hosts.clone(), hosts.control_dir.clone());
    let gitlab_url = gitlab.url.clone();
    let app = spawn_app_with(db, move |s| {
        s.listen = ([127, 0, 0, 1], port).into();
        s.public_url = Some(public);
        s.gitlab_url = Some(gitlab_url);
        s.gitlab_oauth = Some((client_id, Secret::new(secret)));
        s.discord_roles =
            RoleMap::parse("gitlab_users: {ann: maintainer}\ngitlab_groups: {acme/readers: reporter}\n").unwrap();
        s.ssh_identity = Some(key);
        s.ssh_known_hosts = Some(known);
        s.ssh_control_dir = Some(control);
    })
    .await;
    let yaml = catalog(&env, &prod, &hosts, &ports);
    let r =
        app.http.post(format!("{}/api/v1/catalog", app.base)).bearer_auth(&app.admin).body(yaml).send().await.unwrap();
    assert!(r.status().is_success(), "catalog: {}", r.text().await.unwrap());
    for v in ["1.0.0", "1.1.0"] {
        let r = app
            .create_release(&app.deployer, json!({ "product": "monitor", "version": v, "components": { "ops": v } }))
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let item = tao::workitems::WorkItem {
        source: "tapd".into(),
        id: "1001".into(),
        workspace: "42".into(),
        short_id: Some("1001".into()),
        kind: tao::workitems::Kind::Bug,
        title: HOSTILE.into(),
        state: "resolved".into(),
        owner: Some("ann".into()),
        iteration_id: None,
        product: Some("monitor".into()),
        version: Some("1.1.0".into()),
        created_at: 1_709_287_200_000,
        modified_at: 1_709_287_200_000,
        completed_at: None,
    };
    tao::store::workitem::upsert_item(&app.pool, &item).await.unwrap();
    let c = Console { app, gitlab, _cleanup: Cleanup(vec![env.clone(), prod.clone()]), env, prod, _hosts: hosts };
    (c, ann, rita)
}

impl Console {
    async fn api_deploy(&self, version: &str) -> i64 {
        let r = self
            .app
            .send(
                reqwest::Method::POST,
                "/api/v1/deploys",
                Some(&self.app.deployer),
                Some(json!({ "product": "monitor", "version": version, "env": self.env })),
            )
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        r.body["task_id"].as_i64().unwrap()
    }

    async fn finished(&self, id: i64) -> serde_json::Value {
        for _ in 0..1200 {
            let t = self.app.get(&format!("/api/v1/tasks/{id}"), &self.app.reader).await.body;
            if !matches!(t["status"].as_str(), Some("queued" | "running")) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("task {id} did not end");
    }

    async fn task_count(&self) -> usize {
        self.app.get("/api/v1/tasks", &self.app.reader).await.body.as_array().map(Vec::len).unwrap_or(0)
    }

    /// A request the browser's session would send, from outside the browser (a forged form).
    async fn post_form(&self, cookie: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let r = client
            .post(format!("{}{path}", self.app.base))
            .header("cookie", format!("tao_session={cookie}"))
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }
}

fn csrf_of(html: &str) -> String {
    let re = regex::Regex::new(r#"name="csrf" value="([A-Za-z0-9]+)""#).unwrap();
    re.captures(html).map(|c| c[1].to_string()).expect("the page carries a CSRF token")
}

async fn sign_in_with_gitlab(b: &Browser, c: &Console, user: i64) {
    c.gitlab.sign_in_browser(Some(user));
    b.delete_all_cookies().await;
    b.goto(&format!("{}/", c.app.base)).await;
    assert!(b.url().await.contains("/ui/login"), "reading needs a session: {}", b.url().await);
    b.click("#gitlab-signin").await;
    b.wait_for_text("#who", "", Duration::from_secs(10)).await;
}

async fn story(db: TestDb, shots: &str) {
    let (c, ann, rita) = console(db).await;
    let first = c.api_deploy("1.0.0").await;
    assert_eq!(c.finished(first).await["status"], "succeeded");
    let b = Browser::start().await;

    // Sign in through GitLab: authorize, code, token exchange with the verifier, /user, groups.
    sign_in_with_gitlab(&b, &c, ann).await;
    assert!(b.text("#who").await.contains("ann"), "{}", b.text("#who").await);
    assert!(b.text("#who").await.contains("maintainer"));
    let cell = format!("td.cell[data-env=\"{}\"][data-component=\"ops\"]", c.env);
    assert!(b.text(&cell).await.contains("1.0.0"), "the seeded state: {}", b.text(&cell).await);
    assert!(b.exists(&format!("th.tier-prod a[href=\"/ui/environments/{}\"]", c.prod)).await, "tiers are distinct");
    b.screenshot(&format!("{shots}-overview")).await;

    // Deploy page: env → product → version → plan → Deploy.
    b.goto(&format!("{}/ui/deploy", c.app.base)).await;
    b.select("#env", &c.env).await;
    b.wait_for_text("#choose", "", Duration::from_secs(5)).await;
    b.select("#product", "monitor").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.select("#version", "1.1.0").await;
    b.click("#preview").await;
    b.wait_for_text("#plan", "Wave 1", Duration::from_secs(10)).await;
    let plan = b.text("#plan").await;
    assert!(plan.contains("ops") && plan.contains("1.0.0") && plan.contains("1.1.0"), "{plan}");
    b.screenshot(&format!("{shots}-deploy")).await;
    b.click("#deploy").await;
    b.wait_for_text("h1", "Task", Duration::from_secs(10)).await;
    assert!(b.url().await.contains("/ui/tasks/"), "{}", b.url().await);
    b.execute("window.__stayed = true; return 1", vec![]).await;
    b.wait_for_text("#status", "succeeded", Duration::from_secs(90)).await;
    let stayed = b.execute("return window.__stayed === true", vec![]).await;
    assert_eq!(stayed, json!(true), "the log reached succeeded without a reload");
    assert!(b.text("#log").await.contains("1.1.0"), "live log lines arrived: {}", b.text("#log").await);
    b.screenshot(&format!("{shots}-task")).await;
    b.goto(&format!("{}/", c.app.base)).await;
    assert!(b.text(&cell).await.contains("1.1.0"), "{}", b.text(&cell).await);

    // The environment page: freeze (shown on the overview, and a deploy is refused), rollback's plan, unfreeze.
    b.goto(&format!("{}/ui/environments/{}", c.app.base, c.env)).await;
    b.fill("#freeze-reason", "release <b>review</b>").await;
    b.click("#freeze").await;
    b.wait_for_text("#frozen", "release <b>review</b>", Duration::from_secs(5)).await;
    b.goto(&format!("{}/", c.app.base)).await;
    assert!(b.text("div.frozen").await.contains("release <b>review</b>"), "the freeze and its reason on the overview");
    b.goto(&format!("{}/ui/environments/{}", c.app.base, c.env)).await;
    b.click("#rollback").await;
    b.wait_for_text("#plan", "rollback", Duration::from_secs(5)).await;
    assert!(b.text("#plan").await.contains("1.1.0"), "the rollback's plan: {}", b.text("#plan").await);
    b.click("#deploy").await;
    b.wait_for_text("#message", "frozen", Duration::from_secs(5)).await;
    b.goto(&format!("{}/ui/environments/{}", c.app.base, c.env)).await;
    b.click("#unfreeze").await;
    b.wait_for_text("h1", &c.env, Duration::from_secs(5)).await;
    assert!(!b.exists("#frozen").await, "unfrozen");

    // Production asks for the typed name; without it nothing is queued.
    b.goto(&format!("{}/ui/deploy?env={}&product=monitor&version=1.0.0", c.app.base, c.prod)).await;
    assert!(b.exists("#confirm").await, "production asks for the environment's name");
    let cookie = b.cookie("tao_session").await.expect("a session cookie");
    let csrf = csrf_of(&b.html().await);
    let before = c.task_count().await;
    let form = [("csrf", csrf.as_str()), ("env", c.prod.as_str()), ("product", "monitor"), ("version", "1.0.0")];
    let (status, body) = c.post_form(&cookie, "/ui/deploy", &form).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("confirm"), "{body}");
    // Without the CSRF token: 403, nothing queued.
    let (status, _) = c
        .post_form(&cookie, "/ui/deploy", &[("env", c.env.as_str()), ("product", "monitor"), ("version", "1.0.0")])
        .await;
    assert_eq!(status, 403);
    assert_eq!(c.task_count().await, before, "nothing was queued");

    // Every page renders; hostile names and titles are text.
    let pages = [
        ("environment", format!("/ui/environments/{}", c.env)),
        ("tasks", "/ui/tasks".to_string()),
        ("releases", "/ui/releases/monitor".to_string()),
        ("release", "/ui/releases/monitor/1.1.0?diff=1.0.0".to_string()),
        ("work-items", "/ui/work-items/monitor".to_string()),
        ("policy", "/ui/policy".to_string()),
        ("delivery", "/ui/delivery/monitor".to_string()),
    ];
    for (name, path) in &pages {
        b.goto(&format!("{}{path}", c.app.base)).await;
        assert!(!b.text("h1").await.is_empty(), "{name} renders");
        b.screenshot(&format!("{shots}-{name}")).await;
    }
    b.goto(&format!("{}/ui/tasks?origin=web", c.app.base)).await;
    let origins = b.texts("#tasks td:nth-child(6)").await;
    assert!(!origins.is_empty() && origins.iter().all(|o| o == "web"), "filtered by origin: {origins:?}");
    b.goto(&format!("{}/ui/tasks?origin=api&status=succeeded", c.app.base)).await;
    let origins = b.texts("#tasks td:nth-child(6)").await;
    assert_eq!(origins, ["api"], "the one API deploy");
    b.goto(&format!("{}/ui/work-items/monitor", c.app.base)).await;
    assert!(b.text("#board").await.contains("<script>window.pwned=1</script>"), "{}", b.text("#board").await);
    b.goto(&format!("{}/", c.app.base)).await;
    assert_eq!(b.execute("return typeof window.pwned", vec![]).await, json!("undefined"), "no hostile script ran");
    assert!(
        b.text("small.description").await.contains("<img src=x onerror=window.pwned=3>"),
        "the product's description is text"
    );
    b.goto(&format!("{}/ui/releases/monitor/1.1.0?diff=1.0.0", c.app.base)).await;
    assert!(b.text("#diff").await.contains("ops: 1.0.0 → 1.1.0"), "{}", b.text("#diff").await);
    assert_eq!(b.execute("return typeof window.pwned", vec![]).await, json!("undefined"));

    // Logout ends the session: the old cookie gets the sign-in page.
    b.goto(&format!("{}/", c.app.base)).await;
    b.click("#logout").await;
    b.wait_for_text("h1", "Sign in", Duration::from_secs(5)).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r =
        client.get(format!("{}/", c.app.base)).header("cookie", format!("tao_session={cookie}")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/ui/login"));

    // A reader sees no deploy button, and their forged POST is 403 with nothing queued.
    sign_in_with_gitlab(&b, &c, rita).await;
    assert!(b.text("#who").await.contains("reporter"), "{}", b.text("#who").await);
    b.goto(&format!("{}/ui/deploy?env={}&product=monitor&version=1.0.0", c.app.base, c.env)).await;
    assert!(b.exists("#no-deploy").await && !b.exists("#deploy").await, "no deploy button for a reader");
    let cookie = b.cookie("tao_session").await.unwrap();
    let csrf = csrf_of(&b.html().await);
    let before = c.task_count().await;
    let form = [("csrf", csrf.as_str()), ("env", c.env.as_str()), ("product", "monitor"), ("version", "1.0.0")];
    let (status, body) = c.post_form(&cookie, "/ui/deploy", &form).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("needs the developer role"), "{body}");
    assert_eq!(c.task_count().await, before, "nothing was queued");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_on_sqlite() {
    crate::support::limit(story(TestDb::sqlite(), "sqlite")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_on_postgres() {
    crate::support::limit(async { story(TestDb::postgres().await, "postgres").await }).await
}

#[tokio::test]
async fn signing_in_with_an_api_token_and_refusals_without_a_browser() {
    crate::support::limit(async {
        let app = crate::support::spawn_app(TestDb::sqlite()).await;
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let r = client.get(format!("{}/ui/tasks", app.base)).send().await.unwrap();
        assert_eq!(r.status(), 303, "reading needs a session");
        let page = client.get(format!("{}/ui/login", app.base)).send().await.unwrap();
        let login = page.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(login.contains("HttpOnly") && login.contains("SameSite=Lax"), "{login}");
        let login_value = login.split(';').next().unwrap().trim_start_matches("tao_login=").to_string();
        // Without the login cookie the form is refused (another site cannot sign a browser in).
        let r = client
            .post(format!("{}/ui/login", app.base))
            .form(&[("login_csrf", login_value.as_str()), ("token", &app.deployer)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let r = client
            .post(format!("{}/ui/login", app.base))
            .header("cookie", format!("tao_login={login_value}"))
            .form(&[("login_csrf", login_value.as_str()), ("token", "tao_wrong"), ("next", "/ui/tasks")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = client
            .post(format!("{}/ui/login", app.base))
            .header("cookie", format!("tao_login={login_value}"))
            .form(&[
                ("login_csrf", login_value.as_str()),
                ("token", app.deployer.as_str()),
                ("next", "//evil.example/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/", "never another site");
        let session = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|v| v.starts_with("tao_session="))
            .unwrap()
            .to_string();
        assert!(
            session.contains("HttpOnly") && session.contains("SameSite=Lax") && !session.contains("Secure"),
            "{session}"
        );
        let value = session.split(';').next().unwrap().trim_start_matches("tao_session=").to_string();
        let r = client
            .get(format!("{}/ui/tasks", app.base))
            .header("cookie", format!("tao_session={value}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(
            html.contains("<h1>Tasks</h1>") && html.contains("(developer)"),
            "a deploy token signs in as developer: {html}"
        );
        // Revoking the token ends its sessions.
        let tokens = tao::store::token::list(&app.pool).await.unwrap();
        let deployer =
            tokens.iter().find(|t| t.scope == tao::store::token::Scope::Deploy && t.revoked_at.is_none()).unwrap();
        assert!(tao::store::token::revoke(&app.pool, &deployer.name).await.unwrap());
        let r = client
            .get(format!("{}/ui/tasks", app.base))
            .header("cookie", format!("tao_session={value}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "a revoked token's session is over");
        let r = app.send(reqwest::Method::GET, "/api/v1/audit", Some(&app.admin), None).await;
        assert_eq!(r.status, 200);
        let audit = serde_json::to_string(&r.body).unwrap();
        assert!(audit.contains("web.sign_in"), "sign-ins are audited: {audit}");
    })
    .await
}

fn item(id: &str, kind: tao::workitems::Kind, state: &str, version: &str) -> tao::workitems::WorkItem {
    tao::workitems::WorkItem {
        source: "tapd".into(),
        id: id.into(),
        workspace: "42".into(),
        short_id: Some(id.into()),
        kind,
        title: format!("item {id}"),
        state: state.into(),
        owner: None,
        iteration_id: Some("it-1".into()),
        product: Some("monitor".into()),
        version: Some(version.into()),
        created_at: 1_709_287_200_000,
        modified_at: 1_709_287_200_000,
        completed_at: None,
    }
}

#[tokio::test]
async fn the_work_item_list_filters_and_picks_fields_as_json_or_lines() {
    crate::support::limit(async {
        use tao::workitems::Kind;
        let app = crate::support::spawn_app(TestDb::sqlite()).await;
        for w in [
            item("1", Kind::Story, "done", "1.0.0"),
            item("2", Kind::Bug, "resolved", "1.0.0"),
            item("3", Kind::Bug, "new", "1.1.0"),
        ] {
            tao::store::workitem::upsert_item(&app.pool, &w).await.unwrap();
        }
        let r = app.get("/api/v1/work-items?product=monitor&kind=bug&fields=id,status", &app.reader).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let mut rows = r.body.as_array().unwrap().clone();
        rows.sort_by_key(|x| x["id"].as_str().unwrap().to_string());
        assert_eq!(rows, vec![json!({"id": "2", "status": "resolved"}), json!({"id": "3", "status": "new"})]);
        let r = app.get("/api/v1/work-items?product=monitor&version=1.0.0&state=done", &app.reader).await;
        assert_eq!(r.body.as_array().unwrap().len(), 1);
        assert_eq!(r.body[0]["kind"], "story");
        assert_eq!(r.body[0]["iteration_id"], "it-1");
        let lines = app
            .http
            .get(format!("{}/api/v1/work-items?product=monitor&format=ndjson", app.base))
            .bearer_auth(&app.reader)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(lines.lines().count(), 3, "{lines}");
        let r = app.get("/api/v1/work-items?kind=epic&fields=id,colour", &app.reader).await;
        assert_eq!(r.status, 422);
        let text = r.body.to_string();
        assert!(text.contains("product") && text.contains("colour"), "every problem at once: {text}");
        let r = app.get("/api/v1/work-items?product=monitor&kind=epic", &app.reader).await;
        assert_eq!(r.status, 422);
        assert!(r.body.to_string().contains("story or bug"), "{}", r.body);
    })
    .await
}

/// The console's benchmark (`scripts/bench-web.sh`, not CI): 1,000 product versions, 10,000 tasks and 20
/// environments in the store; the overview, a release diff and the task list are each fetched
/// `BENCH_REQUESTS` times (default 200) beside the JSON the same facts come from in the API, in one run;
/// prints p50/p99 per page and its ratio to the JSON, and each page's weight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-web.sh runs it"]
async fn bench_console_pages() {
    crate::support::limit_to(Duration::from_secs(1800), bench_console_pages_body()).await
}

async fn bench_console_pages_body() {
    let n: usize = std::env::var("BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let app = crate::support::spawn_app(TestDb::sqlite()).await;
    let components: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    let mut yaml = format!("products:\n  monitor:\n    components: [{}]\ncomponents:\n", components.join(", "));
    for c in &components {
        yaml.push_str(&format!("  {c}:\n    project: mon/{c}\n    image: registry.example/mon/{c}\n"));
    }
    yaml.push_str("environments:\n");
    let envs: Vec<String> = (0..20).map(|i| format!("env-{i}")).collect();
    for (i, e) in envs.iter().enumerate() {
        let tier = ["dev", "test", "staging", "prod"][i % 4];
        yaml.push_str(&format!(
            "  {e}:\n    tier: {tier}\n    hosts: [{{ name: h0, address: 10.0.0.{}, user: deploy }}]\n",
            i + 1
        ));
    }
    let r =
        app.http.post(format!("{}/api/v1/catalog", app.base)).bearer_auth(&app.admin).body(yaml).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let seeding = std::time::Instant::now();
    let version = |k: usize| format!("1.{}.{}", k / 100, k % 100);
    for k in 0..1000 {
        let parts = components
            .iter()
            .map(|c| tao::store::release::ReleaseComponent {
                component: c.clone(),
                version: version(k),
                git_tag: format!("v{}", version(k)),
                image: Some(format!("registry.example/mon/{c}")),
                image_tag: version(k),
                image_digest: Some(format!("sha256:{:064x}", k)),
            })
            .collect();
        let pv = tao::store::release::NewProductVersion {
            product: "monitor".into(),
            version: version(k),
            catalog_revision: None,
            created_by: "bench".into(),
            components: parts,
        };
        tao::store::release::create(&app.pool, &pv).await.unwrap();
    }
    let mut last = 0;
    for t in 0..10_000usize {
        let mut task = crate::support::bare_task(tao::deploy::task::TaskKind::Release, &envs[t % 20]);
        task.product = Some("monitor".into());
        task.version = Some(version(t % 1000));
        task.requested_by =
            ["web:ann", "token:ci", "discord:bob", "gitlab-job:7 (mon/c0 v1, pipeline 3)"][t % 4].into();
        let (row, _) = tao::store::task::enqueue(&app.pool, &task).await.unwrap();
        tao::store::task::finish(&app.pool, row.id, tao::deploy::task::TaskStatus::Succeeded, None).await.unwrap();
        last = row.id;
    }
    for e in &envs {
        for c in &components {
            let d = tao::store::deployed::Deployed {
                env: e,
                host: "h0",
                component: c,
                product: Some("monitor"),
                version: Some("1.9.99"),
                image: "registry.example/mon/x:1.9.99",
                image_tag: "1.9.99",
                image_digest: Some("sha256:0123456789abcdef"),
                container: c,
                run_spec: "{}",
                task_id: last,
            };
            tao::store::deployed::record(&app.pool, &d, "deployed").await.unwrap();
        }
    }
    eprintln!("seeded 1000 product versions, 10000 tasks, 20 environments in {:.1?}", seeding.elapsed());

    // A console session (token sign-in) and a client that sends its cookie.
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = client.get(format!("{}/ui/login", app.base)).send().await.unwrap();
    let pre = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("tao_login=")
        .to_string();
    let r = client
        .post(format!("{}/ui/login", app.base))
        .header("cookie", format!("tao_login={pre}"))
        .form(&[("login_csrf", pre.as_str()), ("token", app.reader.as_str())])
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();

    async fn timed(
        client: &reqwest::Client,
        base: &str,
        paths: &[String],
        auth: (&str, &str),
        n: usize,
    ) -> (Vec<f64>, usize) {
        let mut times = Vec::with_capacity(n);
        let mut bytes = 0;
        for _ in 0..n {
            let start = std::time::Instant::now();
            bytes = 0;
            for p in paths {
                let r = client.get(format!("{base}{p}")).header(auth.0, auth.1).send().await.unwrap();
                assert_eq!(r.status(), 200, "{p}");
                bytes += r.bytes().await.unwrap().len();
            }
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (times, bytes)
    }
    let pct = |t: &[f64], p: f64| t[((t.len() as f64 - 1.0) * p).round() as usize];
    let bearer = format!("Bearer {}", app.reader);
    let cases: Vec<(&str, Vec<String>, Vec<String>)> = vec![
        (
            "overview /",
            vec!["/".into()],
            envs.iter()
                .map(|e| format!("/api/v1/environments/{e}"))
                .chain(envs.iter().map(|e| format!("/api/v1/tasks?env={e}&limit=20")))
                .collect(),
        ),
        (
            "release diff",
            vec!["/ui/releases/monitor/1.9.99?diff=1.0.0".into()],
            vec![
                "/api/v1/releases/monitor/1.9.99".into(),
                "/api/v1/releases/monitor/1.0.0".into(),
                "/api/v1/releases/monitor/1.9.99/work-items".into(),
            ],
        ),
        ("task list", vec!["/ui/tasks".into()], vec!["/api/v1/tasks?limit=100".into()]),
    ];
    println!(
        "\n{:<14} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>10}",
        "page", "p50 ms", "p99 ms", "json p50", "json p99", "p50 ×", "p99 ×", "page KB"
    );
    for (name, page, json) in &cases {
        let (pt, pb) = timed(&client, &app.base, page, ("cookie", &cookie), n).await;
        let (jt, _) = timed(&client, &app.base, json, ("authorization", &bearer), n).await;
        println!(
            "{name:<14} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8.2} {:>8.2} {:>10.1}",
            pct(&pt, 0.5),
            pct(&pt, 0.99),
            pct(&jt, 0.5),
            pct(&jt, 0.99),
            pct(&pt, 0.5) / pct(&jt, 0.5),
            pct(&pt, 0.99) / pct(&jt, 0.99),
            pb as f64 / 1024.0
        );
    }
    println!("(JSON peers: the overview's facts are every environment's /api/v1/environments/{{env}} and its 20 newest tasks; the diff's are both versions and the version's work items; the list's is /api/v1/tasks?limit=100)");
}
