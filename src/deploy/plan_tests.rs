//! Table-style tests of the planner over the example catalog.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::catalog::{Catalog, Name};

const EXAMPLE: &str = include_str!("../../examples/tao.yaml");

fn catalog() -> Catalog {
    Catalog::from_yaml(EXAMPLE).expect("example is valid")
}

/// Options with the example's file templates loaded.
fn opts() -> PlanOptions {
    let templates = BTreeMap::from([(
        "templates/api.conf.hbs".to_string(),
        include_str!("../../examples/templates/api.conf.hbs").to_string(),
    )]);
    PlanOptions { templates, ..PlanOptions::default() }
}

fn n<N: From<Name>>(s: &str) -> N {
    Name::parse(s).unwrap().into()
}

fn release(version: &str, overrides: &[(&str, &str)]) -> Vec<ReleaseComponent> {
    ["ops", "sql", "graph", "agent", "api", "self-monitor"]
        .iter()
        .map(|c| {
            let v = overrides.iter().find(|(k, _)| k == c).map(|(_, v)| v.to_string()).unwrap_or(version.to_string());
            ReleaseComponent {
                component: c.to_string(),
                version: v.clone(),
                git_tag: format!("v{v}"),
                image: (*c != "sql").then(|| format!("registry.example.com/monitor/{c}")),
                image_tag: v,
                image_digest: None,
            }
        })
        .collect()
}

fn plan_release(parts: &[ReleaseComponent], current: &[Current], opts: &PlanOptions) -> Plan {
    let c = catalog();
    let product = n("monitor");
    plan(&c, &n("env-1"), Target::Release { product: &product, version: "1.0.0", components: parts }, current, opts)
        .expect("plan")
}

/// (wave index, host, component) of every step.
fn shape(p: &Plan) -> Vec<(usize, String, String)> {
    p.waves
        .iter()
        .enumerate()
        .flat_map(|(i, w)| w.iter().map(move |s| (i, s.host.name.clone(), s.spec.component.clone())))
        .collect()
}

fn deployed(p: &Plan) -> Vec<Current> {
    p.waves.iter().flatten().map(|s| Current { host: s.host.name.clone(), spec: s.spec.clone() }).collect()
}

#[test]
fn first_deploy_orders_waves_by_dependencies_and_places_components() {
    let p = plan_release(&release("1.0.0", &[]), &[], &opts());
    let s = shape(&p);
    let wave_of = |c: &str| s.iter().find(|(_, _, x)| x == c).map(|(w, _, _)| *w).unwrap();
    assert!(wave_of("ops") < wave_of("api"), "api depends on ops: {s:?}");
    assert!(wave_of("ops") < wave_of("agent"));
    assert!(wave_of("api") < wave_of("graph") && wave_of("api") < wave_of("self-monitor"));
    assert!(!s.iter().any(|(_, _, c)| c == "sql"), "shared components are never deployed");
    // Placement: graph only on node1, self-monitor only on node2, the rest on both.
    let hosts = |c: &str| s.iter().filter(|(_, _, x)| x == c).map(|(_, h, _)| h.as_str()).collect::<Vec<_>>();
    assert_eq!(hosts("graph"), ["node1"]);
    assert_eq!(hosts("self-monitor"), ["node2"]);
    assert_eq!(hosts("api"), ["node1", "node2"]);
    assert_eq!(p.len(), 8);
    assert!(p.unchanged.is_empty());
}

#[test]
fn per_host_names_ports_env_and_health_come_from_the_catalog() {
    let p = plan_release(&release("1.0.0", &[]), &[], &opts());
    let step = |h: &str, c: &str| {
        p.waves.iter().flatten().find(|s| s.host.name == h && s.spec.component == c).unwrap().spec.clone()
    };
    let (a1, a2) = (step("node1", "api"), step("node2", "api"));
    assert_eq!(a1.container, "env-1-api");
    assert_eq!(a2.container, "env-1-node2-api", "override of node2");
    assert_eq!(a1.ports, ["8080:8080"]);
    assert_eq!(a2.ports, ["18080:8080"]);
    assert_eq!(a1.image, "registry.example.com/monitor/api:1.0.0");
    assert_eq!(a1.env["DB_HOST"], "db.env-1.test.local");
    assert_eq!(a1.secret_env["DB_PASSWORD"], "monitor-db-password");
    assert!(!a1.env.contains_key("DB_PASSWORD"), "secrets stay references");
    assert_eq!(
        a2.health.as_ref().unwrap().probe,
        Probe::Http { port: 8080, path: "/health".into(), published: Some(18080) }
    );
    assert_eq!(step("node1", "ops").env["OPS_LOG_LEVEL"], "debug");
    assert_eq!(step("node1", "api").version.as_deref(), Some("1.0.0"));
}

#[test]
fn unchanged_containers_are_skipped_unless_forced() {
    let first = plan_release(&release("1.0.0", &[]), &[], &opts());
    let now = deployed(&first);
    let again = plan_release(&release("1.0.0", &[]), &now, &opts());
    assert!(again.is_empty(), "{:?}", shape(&again));
    assert_eq!(again.unchanged.len(), 8);
    assert!(again.unchanged[0].reason.starts_with("already runs"));

    let upgrade = plan_release(&release("1.0.0", &[("api", "1.1.0")]), &now, &opts());
    assert_eq!(shape(&upgrade), [(0, "node1".into(), "api".into()), (0, "node2".into(), "api".into())]);
    let step = &upgrade.waves[0][0];
    assert_eq!(step.previous.as_ref().unwrap().version.as_deref(), Some("1.0.0"), "previous spec kept for rollback");

    let forced = plan_release(&release("1.0.0", &[]), &now, &PlanOptions { force: true, ..opts() });
    assert_eq!(forced.len(), 8);
}

#[test]
fn a_digest_change_is_a_change() {
    let first = plan_release(&release("1.0.0", &[]), &[], &opts());
    let mut parts = release("1.0.0", &[]);
    parts.iter_mut().find(|c| c.component == "ops").unwrap().image_digest = Some(format!("sha256:{}", "a".repeat(64)));
    let p = plan_release(&parts, &deployed(&first), &opts());
    let ops: Vec<_> = p.waves.iter().flatten().filter(|s| s.spec.component == "ops").collect();
    assert_eq!(ops.len(), 2);
    assert_eq!(
        ops[0].spec.image,
        format!("registry.example.com/monitor/ops@sha256:{}", "a".repeat(64)),
        "pull by digest"
    );
}

#[test]
fn a_subset_deploys_only_the_named_components() {
    let only = Some(BTreeSet::from([n("graph")]));
    let p = plan_release(&release("1.0.0", &[]), &[], &PlanOptions { only, ..opts() });
    assert_eq!(shape(&p), [(0, "node1".into(), "graph".into())]);

    let c = catalog();
    let parts = release("1.0.0", &[]);
    let product = n("monitor");
    let bad = Some(BTreeSet::from([n("billing")]));
    let err = plan(
        &c,
        &n("env-1"),
        Target::Release { product: &product, version: "1.0.0", components: &parts },
        &[],
        &PlanOptions { only: bad, ..opts() },
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "components: expected components of monitor, found \"billing\"");
}

#[test]
fn component_builds_go_to_dev_and_test_only() {
    let c = catalog();
    let api = n("api");
    let target = Target::Component { component: &api, image_tag: "feature-x-3f2a1c" };
    let p = plan(&c, &n("env-1"), target.clone(), &[], &opts()).unwrap();
    assert_eq!(p.len(), 2);
    let spec = &p.waves[0][0].spec;
    assert_eq!(spec.version, None, "off-release");
    assert_eq!(spec.describe(), "api @ feature-x-3f2a1c");
    assert_eq!(spec.image, "registry.example.com/monitor/api:feature-x-3f2a1c");

    let err = plan(&c, &n("prod"), target, &[], &opts()).unwrap_err();
    assert!(err.to_string().starts_with("env: expected a dev or test environment"), "{err}");

    let digest = format!("sha256:{}", "b".repeat(64));
    let by_digest = Target::Component { component: &api, image_tag: &digest };
    let p = plan(&c, &n("env-1"), by_digest, &[], &opts()).unwrap();
    assert_eq!(p.waves[0][0].spec.image, format!("registry.example.com/monitor/api@{digest}"));

    for bad in ["x;rm -rf /", "$(id)", "a b", "", "-flag", "sha256:zz"] {
        let t = Target::Component { component: &api, image_tag: bad };
        let err = plan(&c, &n("env-1"), t, &[], &opts()).unwrap_err();
        assert!(err.to_string().starts_with("image_tag: expected"), "{bad}: {err}");
    }
    let sql = n("sql");
    let err = plan(&c, &n("env-1"), Target::Component { component: &sql, image_tag: "x" }, &[], &opts());
    assert!(err.is_err(), "shared components are never deployed");
}

#[test]
fn restore_replays_stored_specs_in_dependency_order() {
    let old = plan_release(&release("1.0.0", &[]), &[], &opts());
    let snapshot = deployed(&old);
    let newer = plan_release(&release("1.1.0", &[]), &snapshot, &opts());
    let now = deployed(&newer);
    let c = catalog();
    let product = n("monitor");
    let p =
        plan(&c, &n("env-1"), Target::Restore { product: Some(&product), snapshot: &snapshot }, &now, &opts()).unwrap();
    assert_eq!(shape(&p), shape(&old), "same steps, same order");
    assert!(p.waves.iter().flatten().all(|s| s.spec.version.as_deref() == Some("1.0.0")));
    assert!(p.waves.iter().flatten().all(|s| s.previous.as_ref().unwrap().version.as_deref() == Some("1.1.0")));
}

#[test]
fn unknown_environment_or_product_is_an_error() {
    let c = catalog();
    let parts = release("1.0.0", &[]);
    let product = n("monitor");
    let t = Target::Release { product: &product, version: "1.0.0", components: &parts };
    assert_eq!(
        plan(&c, &n("env-9"), t, &[], &opts()).unwrap_err().to_string(),
        "env: expected an environment of the catalog, found \"env-9\""
    );
    let other = n("other");
    let t = Target::Release { product: &other, version: "1.0.0", components: &parts };
    assert!(plan(&c, &n("env-1"), t, &[], &opts()).is_err());
}

#[test]
fn catalogs_with_cycles_never_reach_the_planner() {
    let cyclic = EXAMPLE.replace("depends_on: [sql, ops]", "depends_on: [sql, ops, graph]");
    let errors = Catalog::from_yaml(&cyclic).unwrap_err();
    assert!(errors.to_string().contains("api -> graph -> api"), "{errors}");
}

#[test]
fn image_tags() {
    for ok in ["1.0.0", "feature-x-3f2a1c", "latest", "v1_2", &format!("sha256:{}", "0".repeat(64))] {
        assert!(valid_image_tag(ok), "{ok}");
    }
    for bad in ["", ".x", "-x", "a:b", "a/b", "a b", "a;b", &"x".repeat(129), "sha256:ABC"] {
        assert!(!valid_image_tag(bad), "{bad}");
    }
}

#[test]
fn configuration_files_are_rendered_per_host_and_missing_templates_are_named() {
    let p = plan_release(&release("1.0.0", &[]), &[], &opts());
    let api = p.waves.iter().flatten().find(|s| s.spec.component == "api" && s.host.name == "node2").unwrap();
    let file = &api.spec.files[0];
    assert_eq!(file.target, "/etc/api/app.conf");
    assert!(file.content.contains("for host node2"), "{}", file.content);
    assert!(file.content.contains("log_level = \"debug\"") && file.content.contains("db.env-1.test.local"));

    let c = catalog();
    let parts = release("1.0.0", &[]);
    let product = n("monitor");
    let t = Target::Release { product: &product, version: "1.0.0", components: &parts };
    let err = plan(&c, &n("env-1"), t, &[], &PlanOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "components.api.container.files[0].template: expected a template file in Tao's templates directory, \
         found \"templates/api.conf.hbs\" is missing"
    );
}

#[test]
fn a_rolling_component_goes_batch_by_batch_in_waves_of_its_own() {
    let yaml = include_str!("../../examples/tao.yaml").replacen(
        "    depends_on: [sql, ops]",
        "    rollout: { strategy: rolling, batch: 1 }\n    depends_on: [sql, ops]",
        1,
    );
    let c = Catalog::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}"));
    let product = n("monitor");
    let parts = release("1.0.0", &[]);
    let target = Target::Release { product: &product, version: "1.0.0", components: &parts };
    let rolling = plan(&c, &n("env-1"), target.clone(), &[], &opts()).unwrap();
    let plain = plan_release(&parts, &[], &opts());
    assert_eq!(rolling.len(), plain.len(), "the same steps");
    assert_eq!(rolling.waves.len(), plain.waves.len() + 1, "api's two hosts take two waves");

    let s = shape(&rolling);
    let api: Vec<&(usize, String, String)> = s.iter().filter(|(_, _, c)| c == "api").collect();
    assert_eq!(api.len(), 2);
    assert_eq!(api[1].0, api[0].0 + 1, "node2 in the wave after node1: {s:?}");
    let batches: Vec<_> = rolling.waves.iter().flatten().filter_map(|st| st.batch.map(|b| (b.number, b.of))).collect();
    assert_eq!(batches, [(1, 2), (2, 2)], "only api's steps are batched");
    // agent (same dependency wave as api, recreate) stays in the first of the two.
    let wave_of = |c: &str| s.iter().find(|(_, _, x)| x == c).map(|(w, _, _)| *w).unwrap();
    assert_eq!(wave_of("agent"), api[0].0);
    assert!(wave_of("graph") > api[1].0, "what depends on api waits for every batch");

    // batch 2 over two hosts is one batch again.
    let wide = Catalog::from_yaml(&yaml.replace("batch: 1", "batch: 2")).unwrap();
    let p = plan(&wide, &n("env-1"), target, &[], &opts()).unwrap();
    assert_eq!(p.waves.len(), plain.waves.len());
    assert!(p.waves.iter().flatten().filter(|st| st.spec.component == "api").all(|st| st.batch.unwrap().of == 1));
}
