//! The shared CI standard: every template rendered for every example project is valid GitLab CI (by
//! GitLab's schema), its jobs run on exactly the right branches (by `ci_rules`), it matches its golden
//! snapshot, `cci.sh` is clean shell that never evaluates the branch name, and `/ci/v1` serves the
//! same text with caching headers and refuses odd names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tao::catalog::{Catalog, Version};
use tao::ci_templates::{lint, CiTemplates, RenderRequest};

use crate::ci_rules::{self, Vars};
use crate::support::{spawn_app_with, TestDb, EXAMPLE};

const PUBLIC_URL: &str = "https://tao.example";
const PWNED: &str = "/tmp/pwned";
const EVIL_BRANCH: &str = "feature/$(touch${IFS}/tmp/pwned)";

fn templates() -> CiTemplates {
    CiTemplates::load(None, Some(PUBLIC_URL)).expect("embedded templates load")
}

fn catalog() -> Catalog {
    Catalog::from_yaml(EXAMPLE).expect("example catalog")
}

/// (component, project) of every component the example catalog deploys.
fn component_projects(catalog: &Catalog) -> Vec<(String, String)> {
    catalog
        .components
        .iter()
        .filter_map(|(name, c)| c.project.as_ref().map(|p| (name.to_string(), p.to_string())))
        .collect()
}

fn render(t: &CiTemplates, c: &Catalog, file: &str, project: &str, branch: Option<&str>) -> String {
    let req = RenderRequest {
        file: file.to_owned(),
        project: project.parse().expect("project path"),
        branch: branch.map(str::to_owned),
    };
    t.render(c, "test", &req).unwrap_or_else(|e| panic!("{file} for {project}: {e}")).body.to_string()
}

/// Compares with `tests/fixtures/ci-golden/<name>` byte for byte; `TAO_UPDATE_GOLDEN=1` rewrites it.
fn golden(name: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ci-golden").join(name);
    if std::env::var_os("TAO_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with TAO_UPDATE_GOLDEN=1 to create it)", path.display()));
    assert!(
        want == text,
        "{name} differs from its golden file {} (TAO_UPDATE_GOLDEN=1 rewrites it):\n{text}",
        path.display()
    );
}

fn tool(program: &str, args: &[&str], what: &str) -> std::process::Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("running {program}: {e}; install it ({what}; scripts/test.sh installs it on Debian)")
    })
}

fn write_temp(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_template_for_every_example_project_is_valid_gitlab_ci_and_matches_its_golden_file() {
    let (t, c) = (templates(), catalog());
    let mut rendered = 0;
    for (_, project) in component_projects(&c) {
        let yaml = render(&t, &c, "component.yml", &project, None);
        let problems = lint::lint(&yaml).unwrap();
        assert!(problems.is_empty(), "component.yml for {project}: {problems:#?}\n{yaml}");
        golden(&format!("{}.component.yml", project.replace('/', "__")), &yaml);
        rendered += 1;
    }
    let release_projects: Vec<String> =
        c.products.values().filter_map(|p| p.release_project.as_ref().map(ToString::to_string)).collect();
    assert!(!release_projects.is_empty(), "the example names a release project");
    for project in release_projects {
        let yaml = render(&t, &c, "product-release.yml", &project, None);
        let problems = lint::lint(&yaml).unwrap();
        assert!(problems.is_empty(), "product-release.yml for {project}: {problems:#?}\n{yaml}");
        golden(&format!("{}.product-release.yml", project.replace('/', "__")), &yaml);
        rendered += 1;
    }
    assert_eq!(rendered, 6, "five component projects and one release project");
}

#[test]
fn the_schema_check_catches_broken_ci() {
    let problems = lint::lint("stages: 3\njob:\n  script: 5\n").unwrap();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(lint::lint("a: [").is_err());
}

fn pipeline(pairs: &[(&'static str, &str)]) -> Vars {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

fn branch(name: &str) -> Vars {
    pipeline(&[("CI_PIPELINE_SOURCE", "push"), ("CI_COMMIT_BRANCH", name), ("CI_COMMIT_REF_NAME", name)])
}

fn tag(name: &str) -> Vars {
    pipeline(&[("CI_PIPELINE_SOURCE", "push"), ("CI_COMMIT_TAG", name), ("CI_COMMIT_REF_NAME", name)])
}

fn merge_request() -> Vars {
    pipeline(&[
        ("CI_PIPELINE_SOURCE", "merge_request_event"),
        ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature/login"),
        ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
        ("CI_COMMIT_REF_NAME", "feature/login"),
    ])
}

fn expect(jobs: &[(&str, &str)]) -> BTreeMap<String, String> {
    jobs.iter().map(|(j, w)| ((*j).to_owned(), (*w).to_owned())).collect()
}

/// Pipeline kind, its CI variables, and the jobs (with `when`) expected.
type Case<'a> = (&'a str, Vars, Vec<(&'a str, &'a str)>);

#[test]
fn component_jobs_run_on_exactly_the_branches_the_model_says() {
    let (t, c) = (templates(), catalog());
    let always = [("tao-build", "on_success"), ("tao-test", "on_success")];
    for (name, project) in component_projects(&c) {
        let yaml = render(&t, &c, "component.yml", &project, None);
        let release_tag = c.components[name.as_str()].git_tag_of(&Version::parse("1.2.0").unwrap());
        let cases: Vec<Case> = vec![
            ("feature", branch("feature/login"), [&always[..], &[("tao-deploy-dev", "manual")]].concat()),
            ("release", branch("release/1.2"), [&always[..], &[("tao-deploy-test", "on_success")]].concat()),
            ("main", branch("main"), always.to_vec()),
            ("master", branch("master"), always.to_vec()),
            ("other branch", branch("fix/typo"), always.to_vec()),
            ("release tag", tag(&release_tag), [&always[..], &[("tao-package", "on_success")]].concat()),
            ("tag off the format", tag("nightly-2026"), always.to_vec()),
            ("merge request", merge_request(), vec![]),
        ];
        for (kind, vars, want) in cases {
            assert_eq!(ci_rules::jobs(&yaml, &vars), expect(&want), "{project} on a {kind} pipeline");
        }
    }
}

#[test]
fn the_product_release_pipeline_runs_only_on_version_tags() {
    let (t, c) = (templates(), catalog());
    let yaml = render(&t, &c, "product-release.yml", "monitor/release", None);
    let on_tag = expect(&[("tao-release", "on_success"), ("tao-deploy-test", "on_success")]);
    assert_eq!(ci_rules::jobs(&yaml, &tag("v1.2.0")), on_tag);
    assert_eq!(ci_rules::jobs(&yaml, &tag("v2.0.0-rc.1")), on_tag);
    for vars in
        [tag("1.2"), tag("nightly"), branch("main"), branch("feature/x"), branch("release/1.2"), merge_request()]
    {
        assert_eq!(ci_rules::jobs(&yaml, &vars), BTreeMap::new(), "{vars:?}");
    }
}

#[test]
fn package_derives_the_image_tag_from_the_release_tag() {
    let (t, c) = (templates(), catalog());
    let dir = tempfile::tempdir().unwrap();
    // agent tags releases as agent-v{version}; its image tag is {version}.
    let script = write_temp(dir.path(), "cci.sh", &render(&t, &c, "cci.sh", "monitor/agent", Some("main")));
    let run = |tag: &str| {
        let out = Command::new("bash")
            .args(["-c", "source \"$1\" && cci_image_tag", "-", script.to_str().unwrap()])
            .env("CI_COMMIT_TAG", tag)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run("agent-v1.4.2"), "1.4.2\n");
    assert_eq!(run("agent-v2.0.0-rc.1"), "2.0.0-rc.1\n");
    assert_eq!(run("v1.4.2"), "", "a tag off the component's format is no release");
}

#[test]
fn cci_sh_passes_bash_n_and_shellcheck_and_never_runs_the_branch_name() {
    let (t, c) = (templates(), catalog());
    let dir = tempfile::tempdir().unwrap();
    for (_, project) in component_projects(&c) {
        let text = render(&t, &c, "cci.sh", &project, Some("feature/login"));
        golden(&format!("{}.cci.sh", project.replace('/', "__")), &text);
        let file = write_temp(dir.path(), "cci.sh", &text);
        let out = tool("bash", &["-n", file.to_str().unwrap()], "bash");
        assert!(out.status.success(), "bash -n {project}: {}", String::from_utf8_lossy(&out.stderr));
        let out = tool("shellcheck", &[file.to_str().unwrap()], "shellcheck");
        assert!(out.status.success(), "shellcheck {project}:\n{}", String::from_utf8_lossy(&out.stdout));
    }
    let _ = std::fs::remove_file(PWNED);
    let text = render(&t, &c, "cci.sh", "monitor/api", Some(EVIL_BRANCH));
    let file = write_temp(dir.path(), "evil.sh", &text);
    let out = tool("shellcheck", &[file.to_str().unwrap()], "shellcheck");
    assert!(out.status.success(), "shellcheck:\n{}", String::from_utf8_lossy(&out.stdout));
    let out = Command::new("bash")
        .args(["-c", "source \"$1\" && printf '%s|' \"$TAO_BRANCH\" && cci_deploy_env", "-", file.to_str().unwrap()])
        .env("CI_COMMIT_REF_NAME", EVIL_BRANCH)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{EVIL_BRANCH}|env-1\n"));
    assert!(!Path::new(PWNED).exists(), "sourcing cci.sh ran the branch name");
}

#[test]
fn template_overrides_come_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("component.yml.hbs"), "# {{component}} from {{project}}\n").unwrap();
    std::fs::write(dir.path().join("extra.yml.hbs"), "# extra for {{component}}\n").unwrap();
    std::fs::write(dir.path().join("README.md"), "ignored").unwrap();
    let t = CiTemplates::load(Some(dir.path()), None).unwrap();
    assert_ne!(t.revision(), templates().revision());
    let c = catalog();
    assert_eq!(render(&t, &c, "component.yml", "monitor/api", None), "# api from monitor/api\n");
    assert_eq!(render(&t, &c, "extra.yml", "monitor/ops", None), "# extra for ops\n");
    let listed: Vec<(String, bool)> = t.list().into_iter().map(|i| (i.file, i.overridden)).collect();
    assert!(listed.contains(&("component.yml".into(), true)) && listed.contains(&("cci.sh".into(), false)));
    std::fs::write(dir.path().join("broken.yml.hbs"), "{{missing}}").unwrap();
    let t = CiTemplates::load(Some(dir.path()), None).unwrap();
    let err = t.render(
        &c,
        "x",
        &RenderRequest { file: "broken.yml".into(), project: "monitor/api".parse().unwrap(), branch: None },
    );
    assert!(err.unwrap_err().to_string().contains("broken.yml"), "strict mode refuses unknown fields");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_v1_serves_templates_with_caching_and_refuses_odd_names() {
    crate::support::limit(ci_v1_serves_templates_with_caching_and_refuses_odd_names_body()).await
}

async fn ci_v1_serves_templates_with_caching_and_refuses_odd_names_body() {
    let app = spawn_app_with(TestDb::sqlite(), |s| s.public_url = Some(PUBLIC_URL.to_owned())).await;
    let url = |path: &str| format!("{}/ci/v1/{path}", app.base);
    let res = app.http.get(url("monitor/api/component.yml")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    assert_eq!(headers["content-type"], "text/yaml; charset=utf-8");
    assert_eq!(headers["cache-control"], "public, max-age=60");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let body = res.text().await.unwrap();
    assert_eq!(body, render(&templates(), &catalog(), "component.yml", "monitor/api", None), "same as tao ci render");

    let res = app.http.get(url("monitor/api/component.yml")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()["etag"].to_str().unwrap(), etag);
    assert!(res.text().await.unwrap().is_empty());

    let res = app.http.get(url("monitor/release/product-release.yml")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let cases = [
        ("monitor/api/nothing.yml", 404, "no CI template \"nothing.yml\""),
        ("monitor/nope/component.yml", 404, "monitor/nope is not a component's project"),
        ("monitor/release/component.yml", 404, "not a component's project"),
        ("monitor/api/product-release.yml", 404, "not a product's release_project"),
        ("monitor/api/Component.yml", 400, "template name"),
        ("monitor/api/comp_onent.yml", 400, "template name"),
        ("monitor/api/...yml", 400, "template name"),
        ("monitor/api%2f..%2f..%2fx/component.yml", 400, "project path"),
        ("component.yml", 404, "expected /ci/v1/<project path>/<template>.yml"),
        ("monitor/api/component.json", 404, "served as <template>.yml"),
    ];
    for (path, status, message) in cases {
        let res = app.http.get(url(path)).send().await.unwrap();
        assert_eq!(res.status(), status, "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        let text = body["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{path}: {body}");
    }

    // HTTP clients normalise dot segments away; send them raw, as an attacker would.
    for path in [
        "/ci/v1/monitor/../component.yml",
        "/ci/v1/../../etc/passwd/component.yml",
        "/ci/v1/monitor/api/..%2f..%2fcomponent.yml",
    ] {
        assert_eq!(raw_get(&app.base, path).await, 400, "{path}");
    }

    let q = format!("cci.sh?namespace=monitor&project=api&branch={}", tao::urlenc::encode(EVIL_BRANCH));
    let res = app.http.get(url(&q)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["etag"].to_str().is_ok());
    let script = res.text().await.unwrap();
    assert_eq!(script, render(&templates(), &catalog(), "cci.sh", "monitor/api", Some(EVIL_BRANCH)));
    for (q, status) in [
        ("cci.sh?namespace=..&project=api&branch=main", 400),
        ("cci.sh?project=api", 400),
        ("cci.sh?namespace=monitor&project=api&branch=a%00b", 400),
        ("cci.sh?namespace=monitor&project=nope&branch=main", 404),
    ] {
        assert_eq!(app.http.get(url(q)).send().await.unwrap().status(), status, "{q}");
    }
}

/// The status code of a GET sent byte for byte as given (no client-side path normalisation).
async fn raw_get(base: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("no status in {answer:?}"))
}

#[test]
fn tao_ci_renders_lists_pins_and_lints_offline() {
    let tao = env!("CARGO_BIN_EXE_tao");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tao.yaml");
    let run = |args: &[&str]| {
        let out = Command::new(tao)
            .args(args)
            .env("TAO_CATALOG", &example)
            .env("TAO_PUBLIC_URL", PUBLIC_URL)
            .env_remove("TAO_CI_TEMPLATES_DIR")
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let want = render(&templates(), &catalog(), "component.yml", "monitor/api", None);
    let (ok, yaml, _) = run(&["ci", "render", "component", "--project", "monitor/api"]);
    assert!(ok);
    assert_eq!(yaml, want, "the CLI prints what /ci/v1 serves");
    let (ok, integrity, _) = run(&["ci", "render", "component.yml", "--project", "monitor/api", "--integrity"]);
    assert!(ok);
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(want.as_bytes()));
    assert_eq!(integrity, format!("sha256-{digest}\n"));

    let (ok, list, _) = run(&["ci", "list"]);
    assert!(ok && list.contains("component.yml\n  reads the component") && list.contains("product-release.yml"));
    let (ok, _, err) = run(&["ci", "render", "../x", "--project", "monitor/api"]);
    assert!(!ok && err.contains("template name"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let good = write_temp(dir.path(), "good.yml", &yaml);
    let (ok, out, _) = run(&["ci", "lint", good.to_str().unwrap()]);
    assert!(ok && out.contains("valid GitLab CI"), "{out}");
    let bad = write_temp(dir.path(), "bad.yml", "job:\n  script: 5\n");
    let (ok, _, err) = run(&["ci", "lint", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("/job/script"), "{err}");
}
