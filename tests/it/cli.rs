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
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tao.yaml");
    std::fs::write(&file, EXAMPLE).unwrap();
    let out = tao(&["catalog", "check", "-f", file.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("valid (1 products, 6 components, 2 environments)"), "{}", stdout(&out));
}

#[tokio::test]
async fn catalog_check_lists_every_error_and_exits_1() {
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
