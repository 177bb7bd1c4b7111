//! Test harness: fresh databases (SQLite temp files; PostgreSQL databases created per test and dropped
//! after), and `spawn_app`: Tao on port 0 with the example catalog and one token per scope.
//!
//! PostgreSQL comes from `TAO_TEST_PG_URL` (an admin URL; `scripts/test.sh` starts a server and sets it).
//! A test that needs it and does not find it fails with a message saying how to get it; it never skips.
//! `hosts` starts real sshd hosts and `registry` a real image registry with test images (deploy tests);
//! `discord`, `gitlab` and `tapd` are the doubles, which read multipart uploads with `multipart`.

pub mod hosts;
pub mod registry;

pub mod browser;
pub mod discord;
pub mod discord_gateway;
pub mod gitlab;
pub mod multipart;
pub mod prober;
pub mod tapd;

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use tao::app::{App, ExecutorFactory};
use tao::config::Settings;
use tao::store::token::Scope;
use tao::store::{self, Pool};

/// The example catalog shipped with Tao.
pub const EXAMPLE: &str = include_str!("../../../examples/tao.yaml");

/// The example's configuration file template of `api`.
pub const API_TEMPLATE: &str = include_str!("../../../examples/templates/api.conf.hbs");

/// The components of `monitor` in the example, for building release requests.
pub const MONITOR: [&str; 6] = ["ops", "sql", "graph", "agent", "api", "self-monitor"];

/// How long one test may run before it fails ([`limit`]); `TAO_TEST_LIMIT_SECS` overrides it. Generous:
/// it exists so that a wait without an end fails the test by name instead of hanging CI.
pub fn test_limit() -> Duration {
    let secs = std::env::var("TAO_TEST_LIMIT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    Duration::from_secs(secs)
}

/// Runs a test body within [`test_limit`]; past it the test fails (its future is dropped, which cleans
/// up what it holds: servers, databases). Every test of this binary runs through it (checked by
/// `harness::every_test_has_a_time_limit`).
pub async fn limit(test: impl Future<Output = ()>) {
    limit_to(test_limit(), test).await
}

/// [`limit`] with an explicit limit.
pub async fn limit_to(limit: Duration, test: impl Future<Output = ()>) {
    if tokio::time::timeout(limit, test).await.is_err() {
        panic!("test exceeded its time limit of {limit:?} (TAO_TEST_LIMIT_SECS): something waits without an end");
    }
}

/// The longest any one HTTP exchange of a test (to Tao or to a double) may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client for tests: every request ends within [`HTTP_TIMEOUT`].
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("HTTP client")
}

/// PostgreSQL session settings of every test database: a statement (or a lock wait) that runs past a
/// minute fails instead of waiting forever, and so does a transaction left idle.
pub const PG_TEST_OPTIONS: &str =
    "options=-c%20statement_timeout%3D60000%20-c%20lock_timeout%3D30000%20-c%20idle_in_transaction_session_timeout%3D60000";

/// A database that exists for one test.
pub enum TestDb {
    /// A SQLite file in a temporary directory (removed with it).
    Sqlite(tempfile::TempDir),
    /// A database owned by another [`TestDb`] (a second replica on it).
    Borrowed,
    /// A PostgreSQL database, dropped on drop.
    Postgres {
        /// Admin URL of the server.
        admin: String,
        /// Database name.
        name: String,
    },
}

fn pg_admin_url() -> String {
    std::env::var("TAO_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "TAO_TEST_PG_URL is not set: store tests run on PostgreSQL too. Run scripts/test.sh (it installs \
             and starts PostgreSQL), or start one yourself and set TAO_TEST_PG_URL=postgres://USER@HOST:PORT/postgres"
        )
    })
}

impl TestDb {
    /// A fresh SQLite database.
    pub fn sqlite() -> TestDb {
        TestDb::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A fresh PostgreSQL database.
    pub async fn postgres() -> TestDb {
        let admin = pg_admin_url();
        let name = format!("tao_test_{}_{}", std::process::id(), rand_suffix());
        let pool = Pool::connect(&admin).await.unwrap_or_else(|e| {
            panic!("cannot reach PostgreSQL at TAO_TEST_PG_URL ({e}); run scripts/test.sh to start it")
        });
        tao::with_pool!(&pool, p => sqlx::query(&format!("CREATE DATABASE {name}")).execute(p).await.map(|_| ()))
            .expect("create test database");
        pool.close().await;
        TestDb::Postgres { admin, name }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => Pool::sqlite_url(&dir.path().join("tao.db")),
            TestDb::Borrowed => panic!("a borrowed database has no URL of its own"),
            TestDb::Postgres { admin, name } => {
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
                format!("{base}/{name}?{PG_TEST_OPTIONS}")
            }
        }
    }

    /// A connected pool, not migrated.
    pub async fn connect(&self) -> Pool {
        Pool::connect(&self.url()).await.expect("connect test database")
    }

    /// A connected, migrated pool.
    pub async fn pool(&self) -> Pool {
        let pool = self.connect().await;
        store::migrate::run(&pool).await.expect("migrate");
        pool
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin, name } = self {
            let (admin, name) = (admin.clone(), name.clone());
            // Drop runs inside the test's runtime, which cannot be blocked on: use a thread with its own.
            let joined = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    let pool = Pool::connect(&admin).await.expect("connect admin");
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    tao::with_pool!(&pool, p => sqlx::query(&sql).execute(p).await.map(|_| ()))
                        .expect("drop test database");
                    pool.close().await;
                })
            })
            .join();
            if joined.is_err() && !std::thread::panicking() {
                panic!("dropping the test database failed");
            }
        }
    }
}

/// `n` ports for containers to publish, never handed out twice by one test process. They come from
/// 20000-29999, below the kernel's ephemeral range (32768+), so no outgoing connection or port-0 listener
/// of another test (sshd, doubles) takes one; each process starts at its own offset (from its pid) and
/// counts up, skipping ports something already listens on. (Docker may publish without a listening
/// proxy, so a bind check alone cannot see another container's port: distinctness comes from the
/// counter.)
pub fn published_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let _ = NEXT.compare_exchange(0, std::process::id().wrapping_mul(389) % 9000, Ordering::SeqCst, Ordering::SeqCst);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let port = 20000 + (NEXT.fetch_add(1, Ordering::SeqCst) % 10000) as u16;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            out.push(port);
        }
    }
    out
}

fn rand_suffix() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

/// Runs a test body on both backends: `both_backends!(name, body_fn)` makes `name::sqlite` and
/// `name::postgres`, each calling `body_fn(TestDb)`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::support::limit(async { super::$body($crate::support::TestDb::sqlite()).await }).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::support::limit(async { super::$body($crate::support::TestDb::postgres().await).await }).await
            }
        }
    };
}

/// A running Tao and what tests need to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The store, for arranging and asserting.
    pub pool: Pool,
    /// Tokens by scope.
    pub admin: String,
    /// A deploy-scoped token.
    pub deployer: String,
    /// A read-only token.
    pub reader: String,
    /// HTTP client.
    pub http: reqwest::Client,
    parts: Option<Parts>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Starts Tao on port 0 over `db`, with the example catalog applied and tokens of every scope.
pub async fn spawn_app(db: TestDb) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

/// Like [`spawn_app`], letting the test adjust the settings first.
pub async fn spawn_app_with(db: TestDb, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_exec(db, adjust, tao::app::runner_executor()).await
}

/// Like [`spawn_app_with`] with another deploy executor.
pub async fn spawn_app_exec(db: TestDb, adjust: impl FnOnce(&mut Settings), executor: ExecutorFactory) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let catalog_file = dir.path().join("tao.yaml");
    std::fs::write(&catalog_file, EXAMPLE).expect("write catalog");
    std::fs::create_dir_all(dir.path().join("templates")).expect("templates dir");
    std::fs::write(dir.path().join("templates/api.conf.hbs"), API_TEMPLATE).expect("write template");
    let mut settings = Settings::local(db.url());
    settings.catalog = Some(catalog_file);
    settings.instance = format!("test-{}", rand_suffix());
    adjust(&mut settings);
    let app = App::build_with(settings.clone(), executor).await.expect("build app");
    let pool = app.services().pool().clone();
    let token = |name: &'static str, scope| {
        let pool = pool.clone();
        async move { store::token::create(&pool, name, scope).await.expect("token").1.expose().to_string() }
    };
    let tokens = [
        token("admin", Scope::Admin).await,
        token("deployer", Scope::Deploy).await,
        token("reader", Scope::Read).await,
    ];
    start(app, Parts { _db: db, _dir: dir, settings, tokens })
}

/// Another replica on the database of a running [`TestApp`] (`url`), with its own settings and tokens
/// (the first app's tokens work too: they live in the same store).
pub async fn spawn_app_on(url: &str, adjust: impl FnOnce(&mut Settings), executor: ExecutorFactory) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("templates")).expect("templates dir");
    std::fs::write(dir.path().join("templates/api.conf.hbs"), API_TEMPLATE).expect("write template");
    let mut settings = Settings::local(url);
    settings.instance = format!("test-{}", rand_suffix());
    settings.templates_dir = Some(dir.path().to_path_buf());
    adjust(&mut settings);
    let app = App::build_with(settings.clone(), executor).await.expect("build replica");
    let pool = app.services().pool().clone();
    let token = |scope| {
        let pool = pool.clone();
        async move {
            let name = format!("replica-{}", rand_suffix());
            store::token::create(&pool, &name, scope).await.expect("token").1.expose().to_string()
        }
    };
    let tokens = [token(Scope::Admin).await, token(Scope::Deploy).await, token(Scope::Read).await];
    start(app, Parts { _db: TestDb::Borrowed, _dir: dir, settings, tokens })
}

/// What survives a killed Tao: its database, files, settings and tokens.
pub struct Parts {
    _db: TestDb,
    _dir: tempfile::TempDir,
    /// The settings it ran with.
    pub settings: Settings,
    tokens: [String; 3],
}

fn start(app: App, parts: Parts) -> TestApp {
    let pool = app.services().pool().clone();
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    let [admin, deployer, reader] = parts.tokens.clone();
    TestApp {
        base,
        pool,
        admin,
        deployer,
        reader,
        http: http_client(),
        parts: Some(parts),
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// Starts Tao again on what a killed one left behind.
pub async fn respawn(parts: Parts, executor: ExecutorFactory) -> TestApp {
    let app = App::build_with(parts.settings.clone(), executor).await.expect("rebuild app");
    start(app, parts)
}

/// A response as tests look at it.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body as JSON (`Value::String` when not JSON).
    pub body: Value,
}

impl TestApp {
    /// A request with an optional bearer token.
    pub async fn send(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let response = rb.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(reqwest::Method::GET, path, Some(token), None).await
    }

    /// POST /api/v1/releases.
    pub async fn create_release(&self, token: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, "/api/v1/releases", Some(token), Some(body)).await
    }

    /// The database URL (to look at the store after the server closed its pool).
    pub fn database_url(&self) -> String {
        self.parts.as_ref().expect("parts").settings.database_url.clone()
    }

    /// The catalog file the server applies at start.
    pub fn catalog_path(&self) -> std::path::PathBuf {
        self.parts.as_ref().expect("parts").settings.catalog.clone().expect("catalog file")
    }

    /// Kills Tao like a crashed process: no graceful shutdown, no drain; what it left is returned.
    pub async fn kill(mut self) -> Parts {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
        self.parts.take().expect("parts")
    }

    /// Stops the server gracefully, waits for it, and returns what it leaves (drop it to clean up).
    pub async fn stop(mut self) -> Parts {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
        self.parts.take().expect("parts")
    }
}

/// A release request for `monitor` version `version`: every component at 1.0.0 except `overrides`.
pub fn monitor_release(version: &str, overrides: &[(&str, &str)]) -> Value {
    let mut components = serde_json::Map::new();
    for c in MONITOR {
        components.insert(c.to_string(), Value::String("1.0.0".into()));
    }
    for (k, v) in overrides {
        components.insert(k.to_string(), Value::String(v.to_string()));
    }
    serde_json::json!({ "product": "monitor", "version": version, "components": components })
}

/// A task of `kind` to `env` with nothing else set (rollback on failure, as the services default).
pub fn bare_task(kind: tao::deploy::task::TaskKind, env: &str) -> tao::store::task::NewTask {
    tao::store::task::NewTask {
        kind,
        env: env.into(),
        product: None,
        version: None,
        component: None,
        image_tag: None,
        components: Vec::new(),
        force: false,
        rollback_on_failure: true,
        requested_by: "token:ci".into(),
        idempotency_key: None,
        catalog_revision: None,
        plan: None,
    }
}

/// Removes every container labelled with one of these environments (`tao.env`) when it ends, however
/// it ends: deploy and rollout tests hold one.
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for env in &self.0 {
            let out = std::process::Command::new("docker")
                .args(["ps", "-aq", "--filter", &format!("label=tao.env={env}")])
                .output();
            if let Ok(out) = out {
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = std::process::Command::new("docker").args(["rm", "-f", id]).output();
                }
            }
        }
    }
}
