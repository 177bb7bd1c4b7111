//! Deploys and releases from pipeline jobs: `JOB-TOKEN` verified with the GitLab double, what a job
//! may deploy by its project and ref, the job id as idempotency key, the job as the recorded actor,
//! and the deployment mirrored in GitLab's Deployments API until the task ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tao::deploy::queue::{BoxFuture, Executor, Outcome, TaskControl};
use tao::gitlab::client::ProjectId;
use tao::store::task::TaskRow;

use crate::support::gitlab::world::ProtectedRef;
use crate::support::gitlab::{GitLabDouble, ROOT_TOKEN};
use crate::support::{monitor_release, spawn_app_exec, TestApp, TestDb};

/// Logs one line, then succeeds every task except component builds tagged `broken…`.
struct Scripted {
    pool: tao::store::Pool,
}

impl Executor for Scripted {
    fn execute(&self, task: TaskRow, _control: TaskControl) -> BoxFuture<Outcome> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let tag = task.image_tag.clone().unwrap_or_default();
            let line = format!("scripted: deploying {tag}");
            tao::store::task::log(&pool, task.id, "info", None, None, &line).await.unwrap();
            if tag.starts_with("broken") {
                Outcome::Failed("the container never became healthy".into())
            } else {
                Outcome::Succeeded
            }
        })
    }
}

async fn setup() -> (TestApp, GitLabDouble) {
    let double = GitLabDouble::start().await;
    let gitlab = crate::gitlab::client(&double, crate::gitlab::root());
    for component in ["ops", "graph", "agent", "api", "self-monitor", "release"] {
        let project = format!("monitor/{component}");
        double.add_project(&project);
        let tag = if component == "agent" { "agent-v1.0.0" } else { "v1.0.0" };
        gitlab.create_tag(&ProjectId::Path(project), tag, "main", None).await.unwrap();
    }
    let url = double.url.clone();
    let app = spawn_app_exec(
        TestDb::sqlite(),
        move |s| {
            s.gitlab_url = Some(url);
            s.gitlab_token = Some(tao::config::Secret::new(ROOT_TOKEN));
        },
        Box::new(|services, _| Arc::new(Scripted { pool: services.pool().clone() })),
    )
    .await;
    (app, double)
}

fn project_id(double: &GitLabDouble, path: &str) -> i64 {
    double.world().projects.iter().find(|p| p.path == path).expect("project").id
}

async fn post(app: &TestApp, path: &str, job_token: &str, body: Value) -> (u16, Value) {
    let res =
        app.http.post(format!("{}{path}", app.base)).header("JOB-TOKEN", job_token).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn component_deploy(env: &str, image_tag: &str) -> Value {
    json!({ "env": env, "component": "api", "image_tag": image_tag })
}

/// Follows the task log to its end, as the deploy job does; returns the final status.
async fn follow(app: &TestApp, task: i64, job_token: &str) -> String {
    let res = app
        .http
        .get(format!("{}/api/v1/tasks/{task}/log?follow=1", app.base))
        .header("JOB-TOKEN", job_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    last["task"]["status"].as_str().unwrap().to_owned()
}

/// Waits (bounded) until the double's deployment of `env` in `project` reaches `status`.
async fn deployment_reaches(double: &GitLabDouble, project: &str, env: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let current: Vec<(String, String)> = {
            let w = double.world();
            let p = w.projects.iter().find(|p| p.path == project).unwrap();
            p.deployments.iter().map(|d| (d.environment.clone(), d.status.clone())).collect()
        };
        if current.iter().any(|(e, s)| e == env && s == status) {
            return;
        }
        assert!(Instant::now() < deadline, "deployment of {env} in {project} never reached {status}: {current:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_tokens_are_verified_with_gitlab() {
    crate::support::limit(job_tokens_are_verified_with_gitlab_body()).await
}

async fn job_tokens_are_verified_with_gitlab_body() {
    let (app, double) = setup().await;
    let api = project_id(&double, "monitor/api");
    let (status, body) = post(&app, "/api/v1/deploys", "glcbt-forged", component_deploy("env-1", "abc")).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("not running"), "{body}");

    let (job, token) = double.start_job(api, "feature/login");
    double.finish_job(job);
    let (status, _) = post(&app, "/api/v1/deploys", &token, component_deploy("env-1", "abc")).await;
    assert_eq!(status, 401, "a finished job's token is refused");

    let (_, token) = double.start_job(api, "main");
    let res = app
        .http
        .post(format!("{}/api/v1/catalog", app.base))
        .header("JOB-TOKEN", &token)
        .body("products: {}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "a job token never has the admin scope");
    let _ = app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_job_may_deploy_follows_its_project_and_ref() {
    crate::support::limit(what_a_job_may_deploy_follows_its_project_and_ref_body()).await
}

async fn what_a_job_may_deploy_follows_its_project_and_ref_body() {
    let (app, double) = setup().await;
    let api = project_id(&double, "monitor/api");
    double.push("monitor/api", "feature/login", "a feature");
    let (_, feature) = double.start_job(api, "feature/login");

    let (status, body) = post(&app, "/api/v1/deploys", &feature, component_deploy("prod", "abc")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["message"],
        "feature branch feature/login may deploy only to dev or test environments; prod is tier prod"
    );

    let other = json!({ "env": "env-1", "component": "ops", "image_tag": "abc" });
    let (status, body) = post(&app, "/api/v1/deploys", &feature, other).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("only the component whose project it is"));

    let (_, main) = double.start_job(api, "main");
    let release = json!({ "env": "prod", "product": "monitor", "version": "1.0.0" });
    let (status, body) = post(&app, "/api/v1/deploys", &main, release).await;
    assert_eq!(status, 403, "a component project does not deploy product versions: {body}");

    let release_project = project_id(&double, "monitor/release");
    let (_, unprotected) = double.start_job(release_project, "main");
    let r = app.create_release(&app.deployer, monitor_release("1.0.0", &[])).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let to_prod = json!({ "env": "prod", "product": "monitor", "version": "1.0.0" });
    let (status, body) = post(&app, "/api/v1/deploys", &unprotected, to_prod.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("branch main of monitor/release is not protected"));

    {
        let mut w = double.world();
        let id = w.next_id();
        let p = w.projects.iter_mut().find(|p| p.path == "monitor/release").unwrap();
        p.protected_branches.push(ProtectedRef {
            id,
            name: "main".into(),
            push: 40,
            merge: 40,
            allow_force_push: false,
        });
    }
    let (job, protected) = double.start_job(release_project, "main");
    let (status, body) = post(&app, "/api/v1/deploys", &protected, to_prod).await;
    assert_eq!(status, 202, "a protected ref may deploy to prod: {body}");
    assert_eq!(
        body["requested_by"],
        format!("gitlab-job:{job} (monitor/release main, pipeline {}, user root)", job + 1000)
    );
    let _ = app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_deploy_is_idempotent_recorded_and_mirrored_in_gitlab() {
    crate::support::limit(a_job_deploy_is_idempotent_recorded_and_mirrored_in_gitlab_body()).await
}

async fn a_job_deploy_is_idempotent_recorded_and_mirrored_in_gitlab_body() {
    let (app, double) = setup().await;
    let api = project_id(&double, "monitor/api");
    let sha = double.push("monitor/api", "feature/login", "a feature");
    let (job, token) = double.start_job(api, "feature/login");

    let (status, first) = post(&app, "/api/v1/deploys", &token, component_deploy("env-1", &sha)).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["created"], true);
    let task = first["task_id"].as_i64().unwrap();
    let (status, again) = post(&app, "/api/v1/deploys", &token, component_deploy("env-1", &sha)).await;
    assert_eq!((status, again["task_id"].as_i64(), again["created"].as_bool()), (202, Some(task), Some(false)));
    assert!(first["requested_by"]
        .as_str()
        .unwrap()
        .starts_with(&format!("gitlab-job:{job} (monitor/api feature/login")));

    assert_eq!(follow(&app, task, &token).await, "succeeded");
    deployment_reaches(&double, "monitor/api", "env-1", "success").await;
    {
        let w = double.world();
        let p = w.projects.iter().find(|p| p.path == "monitor/api").unwrap();
        let d = &p.deployments[0];
        assert_eq!((d.sha.as_str(), d.git_ref.as_str(), d.tag), (sha.as_str(), "feature/login", false));
    }

    let (_, token) = double.start_job(api, "feature/login");
    let (status, broken) = post(&app, "/api/v1/deploys", &token, component_deploy("env-1", "broken-1")).await;
    assert_eq!(status, 202, "{broken}");
    assert_eq!(follow(&app, broken["task_id"].as_i64().unwrap(), &token).await, "failed");
    deployment_reaches(&double, "monitor/api", "env-1", "failed").await;
    let _ = app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_release_project_creates_product_versions_with_its_job_token() {
    crate::support::limit(only_the_release_project_creates_product_versions_with_its_job_token_body()).await
}

async fn only_the_release_project_creates_product_versions_with_its_job_token_body() {
    let (app, double) = setup().await;
    let (_, api_job) = double.start_job(project_id(&double, "monitor/api"), "v1.0.0");
    let (status, body) = post(&app, "/api/v1/releases", &api_job, monitor_release("1.0.0", &[])).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("only its release project (monitor/release) may"));

    let (_, release_job) = double.start_job(project_id(&double, "monitor/release"), "v1.0.0");
    let (status, body) = post(&app, "/api/v1/releases", &release_job, monitor_release("1.0.0", &[])).await;
    assert_eq!(status, 201, "{body}");
    let _ = app.stop().await;
}

/// Runs the rendered `tao-deploy-test` job's script with `sh`, with the variables GitLab would give it.
async fn run_deploy_job(app: &TestApp, yaml: &Value, token: &str, job: i64, sha: &str) -> (bool, String) {
    let script = yaml[".tao-deploy"]["script"][0].as_str().expect("the deploy script");
    let body = yaml["tao-deploy-test"]["variables"]["TAO_DEPLOY_BODY"].as_str().expect("the deploy body");
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(dir.path())
        .env("TAO_URL", &app.base)
        .env("CI_JOB_TOKEN", token)
        .env("CI_JOB_ID", job.to_string())
        .env("CI_COMMIT_SHA", sha)
        // GitLab expands variables inside variables.
        .env("TAO_DEPLOY_BODY", body.replace("$CI_COMMIT_SHA", sha))
        .output()
        .await
        .expect("sh and curl");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_deploy_job_runs_under_sh_and_exits_with_the_task_result() {
    crate::support::limit(the_rendered_deploy_job_runs_under_sh_and_exits_with_the_task_result_body()).await
}

async fn the_rendered_deploy_job_runs_under_sh_and_exits_with_the_task_result_body() {
    let (app, double) = setup().await;
    let res = app.http.get(format!("{}/ci/v1/monitor/api/component.yml", app.base)).send().await.unwrap();
    let yaml: Value = serde_yaml_ng::from_str(&res.text().await.unwrap()).unwrap();
    let api = project_id(&double, "monitor/api");
    let sha = double.push("monitor/api", "release/1.1", "release candidate");

    let (job, token) = double.start_job(api, "release/1.1");
    let (ok, out) = run_deploy_job(&app, &yaml, &token, job, &sha).await;
    assert!(ok, "the job fails only when the task does:\n{out}");
    assert!(out.contains("Tao task ") && out.contains(&format!("scripted: deploying {sha}")), "{out}");
    deployment_reaches(&double, "monitor/api", "env-1", "success").await;

    let (job, token) = double.start_job(api, "release/1.1");
    let (ok, out) = run_deploy_job(&app, &yaml, &token, job, "broken-image").await;
    assert!(!ok, "a failed task fails the job:\n{out}");
    assert!(out.contains("scripted: deploying broken-image") && out.contains("never became healthy"), "{out}");

    let (job, token) = double.start_job(api, "release/1.1");
    double.finish_job(job);
    let (ok, out) = run_deploy_job(&app, &yaml, &token, job, &sha).await;
    assert!(!ok && out.contains("not running"), "a refused token fails the job with Tao's reason:\n{out}");
    let _ = app.stop().await;
}

/// Runs the rendered `tao-release` job's script with `sh` in a checkout holding `components`.
async fn run_release_job(app: &TestApp, yaml: &Value, token: &str, tag: &str, components: &str) -> (bool, String) {
    let script = yaml["tao-release"]["script"][0].as_str().expect("the release script");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("components.txt"), components).unwrap();
    let out = tokio::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(dir.path())
        .env("TAO_URL", &app.base)
        .env("TAO_PRODUCT", yaml["variables"]["TAO_PRODUCT"].as_str().unwrap())
        .env("CI_JOB_TOKEN", token)
        .env("CI_COMMIT_TAG", tag)
        .output()
        .await
        .expect("sh and curl");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_release_job_creates_the_product_version_from_components_txt() {
    crate::support::limit(the_rendered_release_job_creates_the_product_version_from_components_txt_body()).await
}

async fn the_rendered_release_job_creates_the_product_version_from_components_txt_body() {
    let (app, double) = setup().await;
    let res = app.http.get(format!("{}/ci/v1/monitor/release/product-release.yml", app.base)).send().await.unwrap();
    let yaml: Value = serde_yaml_ng::from_str(&res.text().await.unwrap()).unwrap();
    let release_project = project_id(&double, "monitor/release");

    let (_, token) = double.start_job(release_project, "v1.0.0");
    let injected = "ops 1.0.0\napi 1.0.0\"}; touch /tmp/tao-injected\n";
    let (ok, out) = run_release_job(&app, &yaml, &token, "v1.0.0", injected).await;
    assert!(!ok && out.contains("components.txt: expected"), "{out}");
    assert!(!std::path::Path::new("/tmp/tao-injected").exists());

    let listed = "# monitor 1.0.0\nops 1.0.0\nsql 1.0.0\ngraph 1.0.0\n\nagent 1.0.0\napi v1.0.0\nself-monitor 1.0.0";
    let (ok, out) = run_release_job(&app, &yaml, &token, "v1.0.0", listed).await;
    assert!(ok, "{out}");
    let stored = app.get("/api/v1/releases/monitor/1.0.0", &app.reader).await;
    assert_eq!(stored.status, 200, "{:?}", stored.body);
    let (ok, out) = run_release_job(&app, &yaml, &token, "v1.0.0", "ops 1.0.0\n").await;
    assert!(!ok && out.contains("components.sql"), "an incomplete list is refused with Tao's reason: {out}");
    let _ = app.stop().await;
}

/// Holds every task until it is told to stop.
struct Hold;

impl Executor for Hold {
    fn execute(&self, _task: TaskRow, mut control: TaskControl) -> BoxFuture<Outcome> {
        Box::pin(async move {
            control.stopped().await;
            Outcome::Interrupted("stopped".into())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_deployment_left_running_by_a_killed_tao_is_finished_at_the_next_start() {
    crate::support::limit(a_gitlab_deployment_left_running_by_a_killed_tao_is_finished_at_the_next_start_body()).await
}

async fn a_gitlab_deployment_left_running_by_a_killed_tao_is_finished_at_the_next_start_body() {
    let double = GitLabDouble::start().await;
    double.add_project("monitor/api");
    let url = double.url.clone();
    let app = spawn_app_exec(
        TestDb::sqlite(),
        move |s| {
            s.gitlab_url = Some(url);
            s.gitlab_token = Some(tao::config::Secret::new(ROOT_TOKEN));
        },
        Box::new(|_, _| Arc::new(Hold)),
    )
    .await;
    let api = project_id(&double, "monitor/api");
    let sha = double.push("monitor/api", "feature/x", "work");
    let (_, token) = double.start_job(api, "feature/x");
    let (status, body) = post(&app, "/api/v1/deploys", &token, component_deploy("env-1", &sha)).await;
    assert_eq!(status, 202, "{body}");
    deployment_reaches(&double, "monitor/api", "env-1", "running").await;
    // The deployment id is stored before Tao dies.
    let task = body["task_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored: Option<i64> = tao::with_pool!(&app.pool, p => {
            sqlx::query_scalar("SELECT gitlab_deployment FROM deploy_task WHERE id = $1").bind(task).fetch_one(p).await
        })
        .unwrap();
        if stored.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the deployment id was never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The deployment is created when the job queues the task; under load the worker may claim it a
    // moment later. The crash this test is about happens while the task runs.
    while app.get(&format!("/api/v1/tasks/{task}"), &app.reader).await.body["status"] != "running" {
        assert!(Instant::now() < deadline, "the task never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let parts = app.kill().await;
    let app = crate::support::respawn(parts, Box::new(|_, _| Arc::new(Hold))).await;
    assert_eq!(app.get(&format!("/api/v1/tasks/{task}"), &app.reader).await.body["status"], "interrupted");
    deployment_reaches(&double, "monitor/api", "env-1", "failed").await;
    let _ = app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_failing_while_a_job_token_is_verified_answers_502_and_blocks_nothing() {
    crate::support::limit(gitlab_failing_while_a_job_token_is_verified_answers_502_and_blocks_nothing_body()).await
}

async fn gitlab_failing_while_a_job_token_is_verified_answers_502_and_blocks_nothing_body() {
    let (app, double) = setup().await;
    let api = project_id(&double, "monitor/api");
    let (_, token) = double.start_job(api, "main");
    // GitLab answers 500 to every attempt (the client tries 4 times): the job is refused with 502, so
    // the CI job fails visibly; nothing is queued.
    for _ in 0..4 {
        double.fail_next("/job", 500, None);
    }
    let (status, body) = post(&app, "/api/v1/deploys", &token, component_deploy("env-1", "abc")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("GitLab could not verify the job token"), "{body}");
    let tasks = app.get("/api/v1/tasks", &app.reader).await.body;
    assert_eq!(tasks.as_array().map(Vec::len), Some(0), "nothing queued: {tasks}");

    // Deploys that do not need GitLab go on meanwhile.
    let r = app.http.post(format!("{}/api/v1/deploys", app.base)).bearer_auth(&app.deployer);
    let r = r.json(&component_deploy("env-1", "abc")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["task_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get(&format!("/api/v1/tasks/{id}"), &app.reader).await.body["status"] != "succeeded" {
        assert!(Instant::now() < deadline, "the token deploy ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 429 with Retry-After: waited for, then verified.
    double.fail_next("/job", 429, Some(1));
    let started = Instant::now();
    let (status, body) = post(&app, "/api/v1/deploys", &token, component_deploy("env-1", "def")).await;
    assert_eq!(status, 202, "{body}");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was honoured");
    // A 403 is GitLab's answer, not a failure: refused as a bad token, not retried.
    double.fail_next("/job", 403, None);
    let (status, body) = post(&app, "/api/v1/deploys", &token, component_deploy("env-1", "ghi")).await;
    assert_eq!(status, 401, "{body}");
    let _ = app.stop().await;
}
