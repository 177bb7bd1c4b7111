//! The built `tao` binary: offline commands on files and the store, online commands against a server.

use std::process::Output;

use tokio::process::Command;

use crate::support::{spawn_app, TestDb, EXAMPLE, MONITOR};

const TAO: &str = env!("CARGO_BIN_EXE_tao");

async fn tao(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(TAO);
    cmd.args(args).env_remove("TAO_CATALOG").env_remove("TAO_DATABASE_URL").env_remove("TAO_TOKEN");
    cmd.env_remove("TAO_SERVER");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run tao")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn catalog_check_accepts_the_example() {
    crate::support::limit(catalog_check_accepts_the_example_body()).await
}

async fn catalog_check_accepts_the_example_body() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tao.yaml");
    std::fs::write(&file, EXAMPLE).unwrap();
    let out = tao(&["catalog", "check", "-f", file.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("valid (1 products, 6 components, 2 environments)"), "{}", stdout(&out));
}

#[tokio::test]
async fn catalog_check_lists_every_error_and_exits_1() {
    crate::support::limit(catalog_check_lists_every_error_and_exits_1_body()).await
}

async fn catalog_check_lists_every_error_and_exits_1_body() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tao.yaml");
    let broken = EXAMPLE.replace("depends_on: [sql, ops]", "depends_on: [sql, billing]").replacen(
        "tier: test",
        "tier: testing",
        1,
    );
    std::fs::write(&file, &broken).unwrap();
    let out = tao(&["catalog", "check", "-f", file.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("2 error(s)"), "{err}");
    assert!(err.contains("components.api.depends_on[1]: expected"), "{err}");
    assert!(err.contains("environments.env-1.tier: expected"), "{err}");

    let out = tao(&["--json", "catalog", "check", "-f", file.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"].as_array().unwrap().len(), 2);

    let out = tao(&["catalog", "check", "-f", "/nonexistent/tao.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read /nonexistent/tao.yaml"), "{}", stderr(&out));
}

#[tokio::test]
async fn tokens_offline() {
    crate::support::limit(tokens_offline_body()).await
}

async fn tokens_offline_body() {
    let db = TestDb::sqlite();
    let url = db.url();
    let env = [("TAO_DATABASE_URL", url.as_str())];
    let out = tao(&["token", "create", "--name", "ci", "--scope", "deploy"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let token = stdout(&out).trim().to_string();
    assert!(token.starts_with("tao_"), "only the token on stdout: {token:?}");
    let out = tao(&["token", "create", "--name", "ci", "--scope", "read"], &env).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"));
    let out = tao(&["token", "create", "--name", "x", "--scope", "root"], &env).await;
    assert_eq!(out.status.code(), Some(2), "usage error");
    assert!(stderr(&out).contains("expected one of read, deploy, admin"), "{}", stderr(&out));

    let out = tao(&["token", "list"], &env).await;
    let list = stdout(&out);
    assert!(list.starts_with("NAME") && list.contains("ci") && list.contains("deploy"), "{list}");
    assert!(!list.contains(&token), "never the value");
    assert_eq!(tao(&["token", "revoke", "ci"], &env).await.status.code(), Some(0));
    let out = tao(&["token", "revoke", "ci"], &env).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no active token named \"ci\""));
}

#[tokio::test]
async fn release_create_and_show_against_a_server() {
    crate::support::limit(release_create_and_show_against_a_server_body()).await
}

async fn release_create_and_show_against_a_server_body() {
    let app = spawn_app(TestDb::sqlite()).await;
    let env = [("TAO_SERVER", app.base.as_str()), ("TAO_TOKEN", app.deployer.as_str())];
    let mut args = vec!["release", "create", "monitor", "v1.1.0"];
    let pairs: Vec<String> = MONITOR.iter().map(|c| format!("{c}=1.1.0")).collect();
    for p in &pairs {
        args.extend(["--component", p.as_str()]);
    }
    let out = tao(&args, &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("created monitor 1.1.0\nCOMPONENT"), "{text}");
    assert!(text.contains("registry.example.com/monitor/api:1.1.0"), "{text}");

    let again = tao(&args, &env).await;
    assert!(stdout(&again).starts_with("unchanged"), "{}", stdout(&again));

    let out = tao(&["release", "show", "monitor", "1.1.0"], &env).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("v1.1.0"));
    let out = tao(&["--json", "release", "show", "monitor", "1.1.0"], &env).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["components"].as_array().unwrap().len(), 6);

    let out = tao(&["release", "list", "monitor"], &env).await;
    assert!(stdout(&out).contains("1.1.0") && stdout(&out).contains("token:deployer"), "{}", stdout(&out));

    let out = tao(&["release", "create", "monitor", "1.2.0", "--component", "ops=1.2.0"], &env).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("HTTP 422") && err.contains("components.api"), "{err}");

    let out = tao(&["release", "show", "monitor", "1.1.0"], &[("TAO_SERVER", app.base.as_str())]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("set TAO_TOKEN"), "{}", stderr(&out));

    let out = tao(&["env", "list"], &env).await;
    assert!(stdout(&out).contains("env-1") && stdout(&out).contains("prod"));
    let out = tao(&["env", "show", "env-1"], &env).await;
    assert!(stdout(&out).contains("node1"), "{}", stdout(&out));
    app.stop().await;
}

#[tokio::test]
async fn help_is_complete() {
    crate::support::limit(help_is_complete_body()).await
}

async fn help_is_complete_body() {
    let out = tao(&["--help"], &[]).await;
    let help = stdout(&out);
    for cmd in ["serve", "migrate", "backup", "token", "catalog", "release", "env"] {
        assert!(help.contains(cmd), "tao --help lists {cmd}: {help}");
    }
    let out = tao(&["serve", "--help"], &[]).await;
    for var in ["TAO_LISTEN", "TAO_DATABASE_URL", "TAO_CATALOG", "TAO_OPEN_READ", "TAO_MAX_BODY"] {
        assert!(stdout(&out).contains(var), "serve --help names {var}");
    }
}

#[tokio::test]
async fn backup_copies_a_live_store() {
    crate::support::limit(backup_copies_a_live_store_body()).await
}

async fn backup_copies_a_live_store_body() {
    let db = TestDb::sqlite();
    let pool = db.pool().await;
    tao::store::token::create(&pool, "keep", tao::store::token::Scope::Read).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("copy.db");
    let url = db.url();
    let out = tao(&["backup", dest.to_str().unwrap()], &[("TAO_DATABASE_URL", url.as_str())]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let copy = tao::store::Pool::connect(&tao::store::Pool::sqlite_url(&dest)).await.unwrap();
    assert_eq!(tao::store::token::list(&copy).await.unwrap()[0].name, "keep");
    let out = tao(&["backup", dest.to_str().unwrap()], &[("TAO_DATABASE_URL", url.as_str())]).await;
    assert_eq!(out.status.code(), Some(1), "never overwrites");
}

/// `tao` run in `dir` (the working directory matters: `./tao.yaml` is the catalog's default).
async fn tao_in(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(TAO);
    cmd.current_dir(dir).args(args);
    for var in ["TAO_CATALOG", "TAO_DATABASE_URL", "TAO_TOKEN", "TAO_SERVER", "TAO_GITLAB_URL", "TAO_GITLAB_TOKEN"] {
        cmd.env_remove(var);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run tao")
}

/// A directory holding the example catalog (and its template), as README's tour has it.
fn example_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tao.yaml"), EXAMPLE).unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(dir.path().join("templates/api.conf.hbs"), crate::support::API_TEMPLATE).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `tao serve` process, killed when dropped.
struct Server {
    child: tokio::process::Child,
    base: String,
}

impl Server {
    async fn start(cwd: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(TAO);
        cmd.current_dir(cwd).arg("serve").args(args).args(["--listen", &listen]).kill_on_drop(true);
        for var in ["TAO_CATALOG", "TAO_DATABASE_URL", "TAO_TOKEN", "TAO_SERVER"] {
            cmd.env_remove(var);
        }
        cmd.envs(envs.iter().copied()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().expect("spawn tao serve");
        let base = format!("http://{listen}");
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build().unwrap();
        for _ in 0..200 {
            if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
                return Server { child, base };
            }
            assert!(child.try_wait().unwrap().is_none(), "tao serve exited at start");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("tao serve did not answer /healthz");
    }
}

#[tokio::test]
async fn the_readme_tour_finds_the_servers_store() {
    crate::support::limit(the_readme_tour_finds_the_servers_store_body()).await
}

async fn the_readme_tour_finds_the_servers_store_body() {
    // README: `export TAO_CATALOG=examples/tao.yaml`, serve, then offline `token create` from the same
    // shell (the repository root, not the catalog's directory).
    let root = tempfile::tempdir().unwrap();
    let examples = example_dir();
    let catalog = examples.path().join("tao.yaml");
    let env = [("TAO_CATALOG", catalog.to_str().unwrap())];
    let mut server = Server::start(root.path(), &[], &env).await;
    let out = tao_in(root.path(), &["token", "create", "--name", "me", "--scope", "admin"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected_store = format!("store: sqlite://{}", examples.path().join("tao.db").display());
    assert!(stderr(&out).contains(&expected_store), "says which store: {}", stderr(&out));
    assert!(!root.path().join("tao.db").exists(), "no stray store in the working directory");
    let token = stdout(&out).trim().to_string();
    let online = [("TAO_SERVER", server.base.as_str()), ("TAO_TOKEN", token.as_str())];
    let out = tao_in(root.path(), &["env", "list"], &online).await;
    assert_eq!(out.status.code(), Some(0), "the printed token is accepted: {}", stderr(&out));
    assert!(stdout(&out).contains("env-1"), "{}", stdout(&out));

    // Without TAO_CATALOG, in the catalog's directory: ./tao.yaml is the default, so the same store.
    let out = tao_in(examples.path(), &["token", "list"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("me"), "{}", stdout(&out));
    server.child.kill().await.unwrap();
}

#[tokio::test]
async fn one_catalog_flag_everywhere_and_errors_that_say_where_they_looked() {
    crate::support::limit(one_catalog_flag_everywhere_and_errors_that_say_where_they_looked_body()).await
}

async fn one_catalog_flag_everywhere_and_errors_that_say_where_they_looked_body() {
    let examples = example_dir();
    let file = examples.path().join("tao.yaml");
    let file = file.to_str().unwrap();
    let empty = tempfile::tempdir().unwrap();
    for flag in ["-f", "--catalog", "--file"] {
        let out = tao_in(empty.path(), &["catalog", "check", flag, file], &[]).await;
        assert_eq!(out.status.code(), Some(0), "catalog check {flag}: {}", stderr(&out));
    }
    let out = tao_in(empty.path(), &["catalog", "check"], &[("TAO_CATALOG", file)]).await;
    assert_eq!(out.status.code(), Some(0), "TAO_CATALOG: {}", stderr(&out));
    let out = tao_in(examples.path(), &["catalog", "check"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "./tao.yaml by default: {}", stderr(&out));

    // `ci render` takes the same flag and the same default.
    for args in [
        &["ci", "render", "component", "--project", "monitor/api", "-f", file][..],
        &["ci", "render", "component", "--project", "monitor/api", "--catalog", file],
    ] {
        let out = tao_in(empty.path(), args, &[]).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    let out = tao_in(examples.path(), &["ci", "render", "component", "--project", "monitor/api"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // No catalog anywhere: the error names the default path looked at, the flag and the variable.
    for args in [&["catalog", "check"][..], &["ci", "render", "component", "--project", "monitor/api"]] {
        let out = tao_in(empty.path(), args, &[]).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        let looked = empty.path().canonicalize().unwrap().join("tao.yaml");
        assert!(
            err.contains(&looked.display().to_string())
                || err.contains(&empty.path().join("tao.yaml").display().to_string()),
            "{err}"
        );
        assert!(err.contains("-f/--catalog") && err.contains("TAO_CATALOG"), "{err}");
    }

    // A named catalog that is missing does not get a store created beside it.
    let missing = empty.path().join("nope/tao.yaml");
    let out = tao_in(
        empty.path(),
        &["token", "create", "--name", "x", "--scope", "read", "-f", missing.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(!empty.path().join("nope").exists() && !empty.path().join("tao.db").exists());
}

#[tokio::test]
async fn help_never_shows_an_environment_value() {
    crate::support::limit(help_never_shows_an_environment_value_body()).await
}

async fn help_never_shows_an_environment_value_body() {
    // clap prints `[env: NAME=VALUE]` unless told not to: an unset variable showed as `[env: TAO_CATALOG=]`
    // and a set one would print its value (a token, say).
    let secretish = [("TAO_CATALOG", "/secret/path.yaml"), ("TAO_SERVER", "http://user:pw@example.com")];
    for args in [
        &["serve", "--help"][..],
        &["token", "create", "--help"],
        &["catalog", "check", "--help"],
        &["ci", "render", "--help"],
        &["sync", "tapd", "--help"],
        &["release", "list", "--help"],
        &["policy", "audit", "--help"],
    ] {
        for envs in [&[][..], &secretish[..]] {
            let out = tao(args, envs).await;
            let help = stdout(&out);
            assert!(help.contains("[env: TAO_"), "{args:?} names its variables: {help}");
            assert!(!help.contains("=]") && !help.contains("/secret/") && !help.contains("pw@"), "{args:?}: {help}");
        }
    }
}

#[tokio::test]
async fn revoked_tokens_say_so_in_the_status_column() {
    crate::support::limit(revoked_tokens_say_so_in_the_status_column_body()).await
}

async fn revoked_tokens_say_so_in_the_status_column_body() {
    let db = TestDb::sqlite();
    let url = db.url();
    let env = [("TAO_DATABASE_URL", url.as_str())];
    assert_eq!(tao(&["token", "create", "--name", "old", "--scope", "read"], &env).await.status.code(), Some(0));
    assert_eq!(tao(&["token", "create", "--name", "new", "--scope", "read"], &env).await.status.code(), Some(0));
    assert_eq!(tao(&["token", "revoke", "old"], &env).await.status.code(), Some(0));
    let list = stdout(&tao(&["token", "list"], &env).await);
    let old = list.lines().find(|l| l.starts_with("old")).expect("old listed");
    let new = list.lines().find(|l| l.starts_with("new")).expect("new listed");
    assert!(old.contains("revoked (20"), "{old}");
    assert!(new.trim_end().ends_with("active"), "{new}");
}

#[tokio::test]
async fn reports_and_exports_refuse_what_does_not_exist() {
    crate::support::limit(reports_and_exports_refuse_what_does_not_exist_body()).await
}

async fn reports_and_exports_refuse_what_does_not_exist_body() {
    let app = spawn_app(TestDb::sqlite()).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("TAO_SERVER", app.base.as_str()), ("TAO_TOKEN", app.reader.as_str())];
    let png = dir.path().join("x.png");
    let png = png.to_str().unwrap();
    for (args, named) in [
        (&["report", "dora", "nope", "-o", png][..], "\"nope\""),
        (&["report", "dora", "monitor", "--env", "nope", "-o", png], "\"nope\""),
        (&["report", "cfd", "nope", "-o", png], "\"nope\""),
        (&["events", "export", "--kind", "bogus"], "\"bogus\""),
    ] {
        let out = tao_in(dir.path(), args, &env).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(named), "{args:?} names it: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    assert!(!dir.path().join("x.png").exists(), "no picture drawn");
    // What exists still works: a known product, and an empty export that says so.
    let out = tao_in(dir.path(), &["report", "dora", "monitor", "--env", "prod", "-o", png], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = tao_in(dir.path(), &["events", "export", "--kind", "push"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).is_empty() && stderr(&out).contains("no stored event matches"), "{}", stderr(&out));
    app.stop().await;
}

#[tokio::test]
async fn serve_checks_the_catalog_and_the_port_before_touching_the_store() {
    crate::support::limit(serve_checks_the_catalog_and_the_port_before_touching_the_store_body()).await
}

async fn serve_checks_the_catalog_and_the_port_before_touching_the_store_body() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tao.db");
    let url = format!("sqlite://{}", db.display());
    let out = tao_in(
        dir.path(),
        &["serve", "--catalog", "nope.yaml", "--listen", "127.0.0.1:0"],
        &[("TAO_DATABASE_URL", url.as_str())],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nope.yaml"), "{}", stderr(&out));
    assert!(!db.exists(), "no database created for a missing catalog");

    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, EXAMPLE.replace("tier: test", "tier: testing")).unwrap();
    let out = tao_in(
        dir.path(),
        &["serve", "--catalog", broken.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[("TAO_DATABASE_URL", url.as_str())],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("environments.env-1.tier"), "{}", stderr(&out));
    assert!(!db.exists(), "no database created for an invalid catalog");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let examples = example_dir();
    let catalog = examples.path().join("tao.yaml");
    let out = tao_in(
        dir.path(),
        &["serve", "--catalog", catalog.to_str().unwrap(), "--listen", &addr],
        &[("TAO_DATABASE_URL", url.as_str())],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("binding {addr}")), "{}", stderr(&out));
    assert!(!db.exists(), "no database created when the port is taken");
}

#[tokio::test]
async fn policy_reconcile_without_gitlab_names_the_missing_settings() {
    crate::support::limit(policy_reconcile_without_gitlab_names_the_missing_settings_body()).await
}

async fn policy_reconcile_without_gitlab_names_the_missing_settings_body() {
    let app = spawn_app(TestDb::sqlite()).await;
    let r = app.send(reqwest::Method::POST, "/api/v1/policy/reconcile", Some(&app.admin), None).await;
    assert_eq!(r.status, 409, "a local configuration problem, not a bad gateway: {:?}", r.body);
    assert_eq!(r.body["error"]["code"], "not_configured");
    let env = [("TAO_SERVER", app.base.as_str()), ("TAO_TOKEN", app.admin.as_str())];
    let out = tao(&["policy", "reconcile"], &env).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("TAO_GITLAB_URL") && err.contains("TAO_GITLAB_TOKEN"), "{err}");
    app.stop().await;
}
