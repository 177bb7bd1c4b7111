//! End to end from a pipeline job: the rendered `component.yml` deploy job's script, run by `sh` with
//! the CI variables of a running job (GitLab double), deploys the commit's image through Tao to a real
//! sshd host running Docker, prints the task's log and exits with the task's result; GitLab's
//! Environments page (the double's deployments) shows the outcome.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::gitlab::{GitLabDouble, ROOT_TOKEN};
use crate::support::hosts::{TestHosts, DEPLOY_USER};
use crate::support::registry::registry;
use crate::support::{published_ports, spawn_app_with, TestApp, TestDb};

fn docker(args: &[&str]) {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// What the template's build job does: the commit's image, pushed as `<image>:<sha>`.
fn push_as_commit(image: &str, from_tag: &str, sha: &str) {
    let (from, to) = (format!("{image}:{from_tag}"), format!("{image}:{sha}"));
    docker(&["pull", "-q", &from]);
    docker(&["tag", &from, &to]);
    docker(&["push", "-q", &to]);
    docker(&["rmi", &from, &to]);
}

/// Removes the environment's containers when the test ends, however it ends.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label=tao.env={}", self.0);
        if let Ok(out) = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
    }
}

fn catalog(env: &str, hosts: &TestHosts, port: u16) -> String {
    let reg = &registry().address;
    let h = &hosts.hosts[0];
    format!(
        r#"products:
  shop:
    components: [web, bad]
components:
  web:
    project: shop/web
    image: {reg}/tao-test/web
    container: {{ ports: ["{port}:8080"] }}
    health: {{ http: {{ port: 8080, path: /health }}, timeout: 30s }}
  bad:
    project: shop/bad
    image: {reg}/tao-test/broken
    health: {{ http: {{ port: 8080, path: /health }}, timeout: 5s }}
environments:
  {env}:
    tier: test
    hosts: [{{ name: h0, address: "{address}", port: {ssh}, user: {DEPLOY_USER} }}]
"#,
        address = h.address,
        ssh = h.port,
    )
}

async fn job_run(app: &TestApp, project: &str, token: &str, job: i64, sha: &str) -> (bool, String) {
    let res = app.http.get(format!("{}/ci/v1/{project}/component.yml", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let yaml: Value = serde_yaml_ng::from_str(&res.text().await.unwrap()).unwrap();
    let script = yaml[".tao-deploy"]["script"][0].as_str().unwrap().to_owned();
    let body = yaml["tao-deploy-test"]["variables"]["TAO_DEPLOY_BODY"].as_str().unwrap().replace("$CI_COMMIT_SHA", sha);
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("sh")
        .args(["-c", &script])
        .current_dir(dir.path())
        .env("TAO_URL", &app.base)
        .env("CI_JOB_TOKEN", token)
        .env("CI_JOB_ID", job.to_string())
        .env("CI_COMMIT_SHA", sha)
        .env("TAO_DEPLOY_BODY", body)
        .output()
        .await
        .expect("sh and curl");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn deployment_status(double: &GitLabDouble, project: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let statuses: Vec<String> = {
            let w = double.world();
            let p = w.projects.iter().find(|p| p.path == project).unwrap();
            p.deployments.iter().map(|d| d.status.clone()).collect()
        };
        if statuses.last().is_some_and(|s| s == want) {
            return;
        }
        assert!(Instant::now() < deadline, "{project}: deployments {statuses:?} never reached {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_job_deploys_its_commit_through_tao_to_real_hosts() {
    crate::support::limit(a_pipeline_job_deploys_its_commit_through_tao_to_real_hosts_body()).await
}

async fn a_pipeline_job_deploys_its_commit_through_tao_to_real_hosts_body() {
    let hosts = TestHosts::start(1);
    let env = format!("ci{:06x}", rand::random::<u32>() & 0xff_ffff);
    let _cleanup = Cleanup(env.clone());
    let port = published_ports(1)[0];
    let double = GitLabDouble::start().await;
    let web = double.add_project("shop/web");
    let bad = double.add_project("shop/bad");
    let web_sha = double.push("shop/web", "release/1.1", "release 1.1");
    let bad_sha = double.push("shop/bad", "release/1.0", "release 1.0");
    let reg = registry();
    push_as_commit(&format!("{}/tao-test/web", reg.address), "1.1.0", &web_sha);
    push_as_commit(&format!("{}/tao-test/broken", reg.address), "1.0.0", &bad_sha);

    let (key, known, control, url) =
        (hosts.key.clone(), hosts.known_hosts.clone(), hosts.control_dir.clone(), double.url.clone());
    let app = spawn_app_with(TestDb::sqlite(), move |s| {
        s.ssh_identity = Some(key);
        s.ssh_known_hosts = Some(known);
        s.ssh_control_dir = Some(control);
        s.gitlab_url = Some(url);
        s.gitlab_token = Some(tao::config::Secret::new(ROOT_TOKEN));
    })
    .await;
    let applied = app
        .http
        .post(format!("{}/api/v1/catalog", app.base))
        .bearer_auth(&app.admin)
        .body(catalog(&env, &hosts, port))
        .send()
        .await
        .unwrap();
    assert!(applied.status().is_success(), "{}", applied.text().await.unwrap());

    let (job, token) = double.start_job(web, "release/1.1");
    let (ok, out) = job_run(&app, "shop/web", &token, job, &web_sha).await;
    assert!(ok, "the job succeeds with its task:\n{out}");
    assert!(out.contains("Tao task ") && out.contains(&web_sha), "the job prints the task's log:\n{out}");
    let served = reqwest::get(format!("http://127.0.0.1:{port}/health")).await.unwrap().text().await.unwrap();
    assert_eq!(served, "1.1.0");
    deployment_status(&double, "shop/web", "success").await;

    let (job, token) = double.start_job(bad, "release/1.0");
    let (ok, out) = job_run(&app, "shop/bad", &token, job, &bad_sha).await;
    assert!(!ok, "a broken image fails the job:\n{out}");
    assert!(out.contains("\"status\":\"failed\""), "{out}");
    deployment_status(&double, "shop/bad", "failed").await;
    let _ = app.stop().await;
}
