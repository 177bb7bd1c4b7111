//! Tests of the catalog as a whole: the example file, a table of broken catalogs with their exact
//! errors, cycles, deploy order and release checks.

use std::collections::BTreeMap;

use super::*;

const EXAMPLE: &str = include_str!("../../examples/tao.yaml");

fn name<N: From<Name>>(s: &str) -> N {
    Name::parse(s).expect("test name").into()
}

fn errors_of(yaml: &str) -> Vec<FieldError> {
    match Catalog::from_yaml(yaml) {
        Ok(_) => Vec::new(),
        Err(CatalogErrors(errors)) => errors,
    }
}

#[test]
fn example_validates() {
    match Catalog::from_yaml(EXAMPLE) {
        Ok(c) => println!("{}", serde_json::to_string_pretty(&c).unwrap()),
        Err(e) => panic!("{e}"),
    }
}

/// A small valid catalog; the broken cases below each change one thing in it.
const BASE: &str = "
products:
  p: { components: [a, b] }
components:
  a: { project: g/a, image: reg.example.com/g/a }
  b: { project: g/b, image: reg.example.com/g/b, depends_on: [a] }
environments:
  e:
    tier: test
    hosts: [{ name: h1, address: 10.0.0.1, user: deploy }]
";

/// (what is broken, text replaced in BASE (all of it for BASE itself), replacement, and the one
/// error expected: path, expected, found).
type Case = (&'static str, &'static str, &'static str, &'static str, &'static str, &'static str);

#[rustfmt::skip]
const CASES: &[Case] = &[
    ("unknown key", "image: reg.example.com/g/b", "image: reg.example.com/g/b, imgae: x", "components.b.imgae", "one of project, image, git_tag, image_tag, layer, depends_on, container, health, ci, rollout", "unknown key \"imgae\" (did you mean \"image\"?)"),
    ("rollout strategy unknown", "image: reg.example.com/g/b", "image: reg.example.com/g/b, rollout: { strategy: canary }", "components.b.rollout.strategy", "one of recreate, rolling, blue-green", "\"canary\""),
    ("blue-green without a proxy", "image: reg.example.com/g/b", "image: reg.example.com/g/b, container: { ports: [\"8080:80\"] }, health: { http: { port: 80, path: /health } }, rollout: { strategy: blue-green }", "components.b.rollout.strategy", "blue-green only where a proxy runs: add proxy: { image: … } to environment e", "blue-green, and e has no proxy"),
    ("blue-green without a health check", "  b: { project: g/b, image: reg.example.com/g/b, depends_on: [a] }\nenvironments:\n  e:\n    tier: test\n", "  b: { project: g/b, image: reg.example.com/g/b, container: { ports: [\"8080:80\"] }, rollout: { strategy: blue-green } }\nenvironments:\n  e:\n    tier: test\n    proxy: { image: reg.example.com/haproxy:2.6 }\n", "components.b.health", "an http or tcp health check (blue-green switches traffic only to a container that passed it)", "no health check, with rollout strategy blue-green"),
    ("blue-green without ports", "  b: { project: g/b, image: reg.example.com/g/b, depends_on: [a] }\nenvironments:\n  e:\n    tier: test\n", "  b: { project: g/b, image: reg.example.com/g/b, health: { http: { port: 80, path: /health } }, rollout: { strategy: blue-green } }\nenvironments:\n  e:\n    tier: test\n    proxy: { image: reg.example.com/haproxy:2.6 }\n", "components.b.container.ports", "published ports for the proxy to take over (blue-green)", "none"),
    ("blue-green with a udp port", "  b: { project: g/b, image: reg.example.com/g/b, depends_on: [a] }\nenvironments:\n  e:\n    tier: test\n", "  b: { project: g/b, image: reg.example.com/g/b, container: { ports: [\"8080:80\", \"5353:53/udp\"] }, health: { http: { port: 80, path: /health } }, rollout: { strategy: blue-green } }\nenvironments:\n  e:\n    tier: test\n    proxy: { image: reg.example.com/haproxy:2.6 }\n", "components.b.container.ports", "TCP ports only (the proxy switches TCP and HTTP, not UDP)", "5353:53/udp"),
    ("env blue-green without a proxy", "    tier: test\n", "    tier: test\n    rollout: { strategy: blue-green }\n", "environments.e.rollout.strategy", "an environment with a proxy (proxy: { image: … }) for blue-green", "blue-green without a proxy"),
    ("proxy image without a tag", "    tier: test\n", "    tier: test\n    proxy: { image: reg.example.com/haproxy }\n", "environments.e.proxy.image", "an HAProxy image reference with a tag or digest, like registry.example.com/haproxy:2.6", "\"reg.example.com/haproxy\""),
    ("proxy unknown key", "    tier: test\n", "    tier: test\n    proxy: { image: reg.example.com/haproxy:2.6, port: 80 }\n", "environments.e.proxy.port", "one of image", "unknown key \"port\""),
    ("rollout batch above the hosts", "image: reg.example.com/g/b", "image: reg.example.com/g/b, rollout: { strategy: rolling, batch: 2 }", "components.b.rollout.batch", "a number of hosts from 1 to 1", "2 (b runs on 1 host(s) in e)"),
    ("env rollout batch above the hosts", "    tier: test\n", "    tier: test\n    rollout: { strategy: rolling, batch: 3 }\n", "environments.e.rollout.batch", "a number of hosts from 1 to 1", "3 (e has 1 host(s))"),
    ("two components claim one port", "  a: { project: g/a, image: reg.example.com/g/a }\n  b: { project: g/b, image: reg.example.com/g/b, depends_on: [a] }", "  a: { project: g/a, image: reg.example.com/g/a, container: { ports: [\"8080:80\"] } }\n  b: { project: g/b, image: reg.example.com/g/b, depends_on: [a], container: { ports: [\"127.0.0.1:8080:81\"] } }", "components.b.container.ports", "a published port that no other component claims on the same host", "port 8080/tcp on host h1 of e claimed by both a and b"),
    ("rollout without strategy", "image: reg.example.com/g/b", "image: reg.example.com/g/b, rollout: { batch: 2 }", "components.b.rollout.strategy", "one of recreate, rolling, blue-green", "nothing"),
    ("rollout batch zero", "image: reg.example.com/g/b", "image: reg.example.com/g/b, rollout: { strategy: rolling, batch: 0 }", "components.b.rollout.batch", "a number of hosts from 1 to 1000", "0"),
    ("rollout drain bad", "image: reg.example.com/g/b", "image: reg.example.com/g/b, rollout: { strategy: rolling, drain: soon }", "components.b.rollout.drain", "a positive duration like 60s, 2m or 500ms", "\"soon\""),
    ("rollout unknown key", "image: reg.example.com/g/b", "image: reg.example.com/g/b, rollout: { strategy: rolling, batches: 2 }", "components.b.rollout.batches", "one of strategy, batch, drain", "unknown key \"batches\" (did you mean \"batch\"?)"),
    ("env rollout strategy unknown", "    tier: test\n", "    tier: test\n    rollout: { strategy: fast }\n", "environments.e.rollout.strategy", "one of recreate, rolling, blue-green", "\"fast\""),
    ("unknown ci key", "image: reg.example.com/g/b", "image: reg.example.com/g/b, ci: { tests: x }", "components.b.ci.tests", "one of test", "unknown key \"tests\" (did you mean \"test\"?)"),
    ("multi-line ci test", "image: reg.example.com/g/b", "image: reg.example.com/g/b, ci: { test: \"a\\nb\" }", "components.b.ci.test", "a non-empty shell command on one line", "\"a\\nb\""),
    ("bad release project", "{ components: [a, b] }", "{ components: [a, b], release_project: \"g/../x\" }", "products.p.release_project", "a GitLab project path like \"group/project\" (segments of letters, digits, '_', '.' and '-')", "\"g/../x\""),
    ("tapd unknown key", "{ components: [a, b] }", "{ components: [a, b], tapd: { workspace_id: 1, iteration_nam: x } }", "products.p.tapd.iteration_nam", "one of workspace_id, iteration_name", "unknown key \"iteration_nam\" (did you mean \"iteration_name\"?)"),
    ("tapd missing workspace", "{ components: [a, b] }", "{ components: [a, b], tapd: { iteration_name: \"v{version}\" } }", "products.p.tapd.workspace_id", "a TAPD workspace id (digits, like 20003271)", "nothing"),
    ("tapd bad workspace", "{ components: [a, b] }", "{ components: [a, b], tapd: { workspace_id: \"ws-1\" } }", "products.p.tapd.workspace_id", "a TAPD workspace id (digits, like 20003271)", "\"ws-1\""),
    ("tapd pattern without version", "{ components: [a, b] }", "{ components: [a, b], tapd: { workspace_id: 20003271, iteration_name: \"Sprint {n}\" } }", "products.p.tapd.iteration_name", "an iteration name pattern with {version} once and no other placeholder, like \"v{version}\"", "\"Sprint {n}\""),
    ("tapd not a mapping", "{ components: [a, b] }", "{ components: [a, b], tapd: 20003271 }", "products.p.tapd", "a TAPD mapping (workspace_id, iteration_name)", "20003271"),
    ("unknown top key", "products:", "prodcts:", "prodcts", "one of products, components, environments, policy", "unknown key \"prodcts\" (did you mean \"products\"?)"),
    ("unknown product component", "[a, b]", "[a, b, c]", "products.p.components[2]", "a component defined under components", "unknown component \"c\""),
    ("unknown dependency", "depends_on: [a]", "depends_on: [x]", "components.b.depends_on[0]", "a component defined under components", "unknown component \"x\""),
    ("self dependency", "depends_on: [a]", "depends_on: [b]", "components.b.depends_on", "no dependency cycle", "cycle b -> b"),
    ("bad port 0", "image: reg.example.com/g/a", "image: reg.example.com/g/a, container: { ports: [\"0:80\"] }", "components.a.container.ports[0]", "a port mapping \"published:container\" with ports from 1 to 65535 (optionally \"ip:published:container\" and a /tcp or /udp suffix)", "\"0:80\""),
    ("port too big", "image: reg.example.com/g/a", "image: reg.example.com/g/a, container: { ports: [\"80:70000\"] }", "components.a.container.ports[0]", "a port mapping \"published:container\" with ports from 1 to 65535 (optionally \"ip:published:container\" and a /tcp or /udp suffix)", "\"80:70000\""),
    ("port not numeric", "image: reg.example.com/g/a", "image: reg.example.com/g/a, health: { tcp: { port: http } }", "components.a.health.tcp.port", "a port number from 1 to 65535", "\"http\""),
    ("bad component name", "\ncomponents:", "\ncomponents:\n  Bad_1: { layer: shared }", "components.Bad_1", "a name of lowercase letters, digits and '-' starting with a letter or digit (at most 63 characters)", "\"Bad_1\""),
    ("duplicate host", "hosts: [{ name: h1, address: 10.0.0.1, user: deploy }]", "hosts: [{ name: h1, address: 10.0.0.1, user: deploy }, { name: h1, address: 10.0.0.2, user: deploy }]", "environments.e.hosts[1].name", "a host name unique within the environment", "\"h1\" again (first at hosts[0])"),
    ("wrong type", "depends_on: [a]", "depends_on: a", "components.b.depends_on", "a list of component names", "\"a\""),
    ("missing project", "a: { project: g/a, ", "a: { ", "components.a.project", "a GitLab project path like \"group/project\" (segments of letters, digits, '_', '.' and '-') (required for layer app)", "nothing"),
    ("bad layer", "a: { ", "a: { layer: db, ", "components.a.layer", "one of app, env-service, shared", "\"db\""),
    ("bad tier", "tier: test", "tier: qa", "environments.e.tier", "one of dev, test, staging, prod", "\"qa\""),
    ("placement unknown host", "tier: test", "tier: test\n    placement: { a: [h2] }", "environments.e.placement.a[0]", "a host of this environment (h1)", "unknown host \"h2\" (did you mean \"h1\"?)"),
    ("placement unknown component", "tier: test", "tier: test\n    placement: { z: [h1] }", "environments.e.placement.z", "a component defined under components", "unknown component \"z\""),
    ("override unknown host", "tier: test", "tier: test\n    overrides: { h9: { a: { name: x } } }", "environments.e.overrides.h9", "a host of this environment (h1)", "unknown host \"h9\" (did you mean \"h1\"?)"),
    ("override unknown component", "tier: test", "tier: test\n    overrides: { h1: { q: { name: x } } }", "environments.e.overrides.h1.q", "a component defined under components", "unknown component \"q\""),
    ("image with tag", "reg.example.com/g/a", "reg.example.com/g/a:1.0", "components.a.image", "an image repository without tag or digest, like \"registry.example.com/monitor/api\"", "\"reg.example.com/g/a:1.0\""),
    ("tag format without version", "a: { ", "a: { git_tag: release, ", "components.a.git_tag", "a tag format using {version} (or {major}, {minor}, {patch}) and letters, digits, '_', '.', '-', like \"v{version}\"", "\"release\""),
    ("bad timeout", "image: reg.example.com/g/a", "image: reg.example.com/g/a, health: { tcp: { port: 80 }, timeout: 60 }", "components.a.health.timeout", "a positive duration like 60s, 2m or 500ms", "60"),
    ("bad env key", "image: reg.example.com/g/a", "image: reg.example.com/g/a, container: { env: { 1X: y } }", "components.a.container.env.1X", "a variable name of letters, digits and '_' not starting with a digit", "\"1X\""),
    ("policy not mapping", "environments:", "policy: [x]\nenvironments:", "policy", "a mapping (the policy section)", "a list"),
    ("policy unknown key", "environments:", "policy: { merge_methd: ff }\nenvironments:", "policy.merge_methd", "one of branches, trunk_based, flows, merge_method, merge_checks, require_issue_reference, protection, groups, projects", "unknown key \"merge_methd\" (did you mean \"merge_method\"?)"),
    ("policy merge commits", "environments:", "policy: { merge_method: merge }\nenvironments:", "policy.merge_method", "rebase_merge (semi-linear) or ff (fast-forward)", "\"merge\" (merge commits let a diverged source merge untested results)"),
    ("policy bad flow", "environments:", "policy: { flows: [\"feature/* release/*\"] }\nenvironments:", "policy.flows[0]", "a flow \"<source pattern> -> <target pattern>\"", "\"feature/* release/*\""),
    ("policy bad role", "environments:", "policy: { protection: { tags: maintainr } }\nenvironments:", "policy.protection.tags", "one of no_one, developer, maintainer", "\"maintainr\" (did you mean \"maintainer\"?)"),
    ("policy main wildcard", "environments:", "policy: { branches: { main: \"ma*\" } }\nenvironments:", "policy.branches.main", "a branch name without '*'", "\"ma*\""),
    ("policy group level key", "environments:", "policy: { groups: { g: { trunk: true } } }\nenvironments:", "policy.groups.g.trunk", "one of branches, trunk_based, flows, merge_method, merge_checks, require_issue_reference, protection", "unknown key \"trunk\""),
    ("policy bad project", "environments:", "policy: { projects: { noslash: {} } }\nenvironments:", "policy.projects.noslash", "a project path like group/project", "\"noslash\""),
    ("duplicate product component", "[a, b]", "[a, b, a]", "products.p.components[2]", "each name listed once", "\"a\" again (first at [0])"),
    ("bad volume", "image: reg.example.com/g/a", "image: reg.example.com/g/a, container: { volumes: [\"/data:relative\"] }", "components.a.container.volumes[0]", "a volume \"host-path-or-name:/container/path\" optionally followed by :ro or :rw", "\"/data:relative\""),
    ("bad container name placeholder", "image: reg.example.com/g/a", "image: reg.example.com/g/a, container: { name: \"{env}-{app}\" }", "components.a.container.name", "a container name template of letters, digits, '_', '.', '-' and the placeholders {env}, {component}, {host}", "\"{env}-{app}\""),
    ("two health checks", "image: reg.example.com/g/a", "image: reg.example.com/g/a, health: { tcp: { port: 80 }, command: \"true\" }", "components.a.health", "only one of http, tcp or command", "tcp and command"),
    ("bad host address", "10.0.0.1", "bad_host", "environments.e.hosts[0].address", "a host name or IP address", "\"bad_host\""),
    ("bad user", "user: deploy", "user: Deploy", "environments.e.hosts[0].user", "a user name of lowercase letters, digits, '_' and '-'", "\"Deploy\""),
    ("dependency outside product", "[a, b]", "[b]", "products.p.components", "every dependency of the product's components listed", "\"b\" depends on \"a\", which is not listed"),
    ("empty document", "\nproducts:\n  p: { components: [a, b] }\ncomponents:\n  a: { project: g/a, image: reg.example.com/g/a }\n  b: { project: g/b, image: reg.example.com/g/b, depends_on: [a] }\nenvironments:\n  e:\n    tier: test\n    hosts: [{ name: h1, address: 10.0.0.1, user: deploy }]\n", "", "(file)", "a mapping with products, components, environments and policy", "an empty document"),
    ("bad product name", "  p: {", "  -p: {", "products.-p", "a name of lowercase letters, digits and '-' starting with a letter or digit (at most 63 characters)", "\"-p\""),
    ("missing tier", "tier: test", "domain: e.example.com", "environments.e.tier", "one of dev, test, staging, prod", "nothing"),
    ("missing user", ", user: deploy }]", " }]", "environments.e.hosts[0].user", "a user name of lowercase letters, digits, '_' and '-'", "nothing"),
    ("component not a mapping", "  a: { project: g/a, image: reg.example.com/g/a }", "  a: [x]\n  c: { layer: shared }", "components.a", "a component (a mapping)", "a list"),
];

fn broken(from: &str, to: &str) -> String {
    if from == BASE {
        to.to_owned()
    } else {
        assert!(BASE.contains(from), "{from:?} is not in BASE");
        BASE.replacen(from, to, 1)
    }
}

#[test]
fn base_is_valid() {
    assert_eq!(errors_of(BASE), Vec::new());
}

#[test]
fn each_broken_catalog_reports_its_exact_error() {
    for (what, from, to, path, expected, found) in CASES {
        let got = errors_of(&broken(from, to));
        assert_eq!(got, vec![FieldError::new(*path, *expected, *found)], "case {what:?}");
    }
    assert!(CASES.len() >= 12);
}

#[test]
fn reports_every_error_of_a_file_together() {
    let yaml = "
products:
  monitor: { components: [api, nope] }
components:
  api:
    project: monitor/api
    image: registry.example.com/monitor/api
    layer: ap
    container: { ports: [\"8080\"], volumes: [\"/a:/b:xx\"] }
    helth: { tcp: { port: 80 } }
environments:
  env-1:
    tier: test
    hosts:
      - { name: node1, address: 10.0.0.1, user: deploy, port: 0 }
";
    let errors = errors_of(yaml);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "products.monitor.components[1]",
            "components.api.helth",
            "components.api.layer",
            "components.api.container.ports[0]",
            "components.api.container.volumes[0]",
            "environments.env-1.hosts[0].port",
        ]
    );
    assert_eq!(errors[1].found, "unknown key \"helth\" (did you mean \"health\"?)");
    let text = CatalogErrors(errors.clone()).to_string();
    assert_eq!(text.lines().count(), errors.len());
    assert!(text.starts_with(
        "products.monitor.components[1]: expected a component defined under components, found unknown component \"nope\""
    ));
}

#[test]
fn a_cycle_names_its_members_and_each_cycle_is_reported_once() {
    let yaml = "
components:
  c: { layer: shared, depends_on: [a] }
  a: { layer: shared, depends_on: [b, d] }
  b: { layer: shared, depends_on: [c] }
  d: { layer: shared, depends_on: [a] }
  e: { layer: shared, depends_on: [a] }
";
    assert_eq!(
        errors_of(yaml),
        vec![
            FieldError::new("components.a.depends_on", "no dependency cycle", "cycle a -> b -> c -> a"),
            FieldError::new("components.a.depends_on", "no dependency cycle", "cycle a -> d -> a"),
        ]
    );
}

#[test]
fn yaml_syntax_errors_name_line_and_column() {
    let errors = errors_of("products:\n  p: [a, b\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].path.starts_with("(file) line "), "{errors:?}");
    assert_eq!(errors[0].expected, "valid YAML");

    let duplicate = errors_of("products: {}\nproducts: {}\n");
    assert_eq!(duplicate.len(), 1);
    assert_eq!(duplicate[0].expected, "valid YAML");

    assert_eq!(
        errors_of("- a\n- b\n"),
        vec![FieldError::new("(file)", "a mapping with products, components, environments and policy", "a list")]
    );
}

#[test]
fn odd_yaml_values_are_described() {
    let errors = errors_of("components:\n  a: { layer: shared, depends_on: [1, !x y, null] }\n");
    let found: Vec<&str> = errors.iter().map(|e| e.found.as_str()).collect();
    assert_eq!(found, ["1", "a value tagged !x", "null"]);
}

#[test]
fn merge_keys_and_anchors_are_supported() {
    let yaml = "
components:
  base: &base { layer: shared, container: { ports: [\"80:80\"] } }
  other:
    <<: *base
    depends_on: [base]
";
    let catalog = Catalog::from_yaml(yaml).expect("valid");
    let other = &catalog.components["other"];
    assert_eq!(other.layer, Layer::Shared);
    assert_eq!(other.container.ports[0].to_string(), "80:80");
}

#[test]
fn example_model_has_expected_values() {
    let c = Catalog::from_yaml(EXAMPLE).expect("example is valid");
    assert_eq!(c.deploy_order("monitor").expect("product"), ["ops", "agent", "sql", "api", "graph", "self-monitor"]);
    assert_eq!(
        c.deploy_waves("monitor").expect("product"),
        vec![vec!["ops", "sql"], vec!["agent", "api"], vec!["graph", "self-monitor"]]
    );
    assert_eq!(c.deploy_order("nope"), None);

    let api = &c.components["api"];
    assert_eq!(api.git_tag, DEFAULT_GIT_TAG);
    assert_eq!(api.env_secret_names(), ["monitor-db-password"].map(String::from));
    let v = Version::parse("v1.1.0").expect("version");
    assert_eq!(api.git_tag_of(&v), "v1.1.0");
    assert_eq!(api.image_ref(&v).as_deref(), Some("registry.example.com/monitor/api:1.1.0"));
    assert_eq!(c.components["agent"].git_tag_of(&v), "agent-v1.1.0");
    assert_eq!(c.components["sql"].image_ref(&v), None);
    assert_eq!(api.container.env["DB_PASSWORD"], EnvValue::Secret { secret: "monitor-db-password".into() });
    assert_eq!(api.container.env["DB_PORT"], EnvValue::Plain("5432".into()));
    assert_eq!(api.health.as_ref().map(|h| &h.check), Some(&HealthCheck::Http { port: 8080, path: "/health".into() }));
    assert_eq!(c.components["agent"].health.as_ref().map(|h| h.timeout), Some(std::time::Duration::from_millis(500)));

    let env1 = &c.environments["env-1"];
    assert_eq!(env1.tier, Tier::Test);
    assert_eq!(env1.hosts[1].port, DEFAULT_SSH_PORT);
    let graph_hosts: Vec<&str> = env1.hosts_for("graph").iter().map(|h| h.name.as_str()).collect();
    assert_eq!(graph_hosts, ["node1"]);
    assert_eq!(env1.hosts_for("api").len(), 2);
    let (e, api_name) = (name::<EnvName>("env-1"), name::<ComponentName>("api"));
    let (n1, n2) = (name::<HostName>("node1"), name::<HostName>("node2"));
    assert_eq!(c.container_name(&e, &n1, &api_name).as_deref(), Some("env-1-api"));
    assert_eq!(c.container_name(&e, &n2, &api_name).as_deref(), Some("env-1-node2-api"));
    assert_eq!(c.container_name(&e, &name("node9"), &api_name), None);
    assert_eq!(env1.override_for("node2", "api").and_then(|o| o.ports.as_ref()).map(|p| p[0].published), Some(18080));
    assert_eq!(c.policy.base.main_branch.as_deref(), Some("main"));
    assert_eq!(c.policy.base.merge_method, Some(crate::catalog::PolicyMergeMethod::RebaseMerge));
    assert_eq!(c.policy.levels_for("monitor/agent").len(), 3);
}

#[test]
fn model_serializes_with_yaml_field_names() {
    let c = Catalog::from_yaml(EXAMPLE).expect("example is valid");
    let json = serde_json::to_value(&c).expect("serializes");
    let api = &json["components"]["api"];
    assert_eq!(api["health"], serde_json::json!({"http": {"port": 8080, "path": "/health"}, "timeout": "60s"}));
    assert_eq!(api["container"]["env"]["DB_PASSWORD"], serde_json::json!({"secret": "monitor-db-password"}));
    assert_eq!(api["layer"], "app");
    assert_eq!(json["components"]["agent"]["container"]["ports"][1], "8125:8125/udp");
    assert_eq!(json["components"]["agent"]["health"]["command"], "wget -q -O- http://127.0.0.1:9100/metrics");
    assert_eq!(json["environments"]["prod"]["tier"], "prod");
    assert_eq!(json["components"]["graph"]["health"]["timeout"], "120s");
}

fn release(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

const FULL: &[(&str, &str)] = &[
    ("ops", "1.0.0"),
    ("sql", "14.0.0"),
    ("graph", "2.1.0"),
    ("agent", "v1.1.0"),
    ("api", "1.1.0"),
    ("self-monitor", "0.3.0"),
];

#[test]
fn check_release_normalizes_a_complete_map() {
    let c = Catalog::from_yaml(EXAMPLE).expect("example is valid");
    let (product, version, map) = c.check_release("monitor", "v1.1.0", &release(FULL)).expect("valid release");
    assert_eq!(product, "monitor");
    assert_eq!(version.to_string(), "1.1.0");
    assert_eq!(map["agent"].to_string(), "1.1.0");
    assert_eq!(map.len(), 6);
    // A shared component is part of the product version too: it records what was tested against.
    let mut without_sql = release(FULL);
    without_sql.remove("sql");
    let errors = c.check_release("monitor", "1.1.0", &without_sql).expect_err("sql is required");
    assert_eq!(errors[0].path, "components.sql");
}

#[test]
fn check_release_reports_every_problem() {
    let c = Catalog::from_yaml(EXAMPLE).expect("example is valid");
    let mut map = release(FULL);
    map.remove("ops");
    map.insert("api".into(), "1.2".into());
    map.insert("web".into(), "1.0.0".into());
    let errors = c.check_release("monitor", "1.1.0", &map).expect_err("invalid");
    assert_eq!(
        errors,
        vec![
            FieldError::new("components.api", "a semantic version like 1.2.3 (a leading v is allowed)", "\"1.2\""),
            FieldError::new(
                "components.web",
                "only components of monitor: ops, sql, graph, agent, api, self-monitor",
                "\"web\""
            ),
            FieldError::new("components.ops", "a version of every component of monitor", "nothing"),
        ]
    );
}

#[test]
fn check_release_unknown_product_and_bad_version() {
    let c = Catalog::from_yaml(EXAMPLE).expect("example is valid");
    let errors = c.check_release("billing", "latest", &release(&[("api", "x")])).expect_err("invalid");
    assert_eq!(
        errors,
        vec![
            FieldError::new("product", "one of the catalog's products (monitor)", "\"billing\""),
            FieldError::new("version", "a semantic version like 1.2.3 (a leading v is allowed)", "\"latest\""),
            FieldError::new("components.api", "a semantic version like 1.2.3 (a leading v is allowed)", "\"x\""),
        ]
    );
}

#[test]
fn unquoted_port_mappings_are_text() {
    let catalog =
        Catalog::from_yaml("components:\n  a: { layer: shared, container: { ports: [8080:80, 53:53/udp] } }\n")
            .expect("valid");
    let ports: Vec<String> = catalog.components["a"].container.ports.iter().map(ToString::to_string).collect();
    assert_eq!(ports, ["8080:80", "53:53/udp"]);
    assert_eq!(errors_of("components:\n  a: { layer: shared, container: { ports: [8080] } }\n")[0].found, "8080");
}

#[test]
fn protection_names_the_least_scope_and_roles() {
    let c = Catalog::from_yaml(EXAMPLE).expect("example is valid");
    let prod = c.environments["prod"].protection.clone().unwrap();
    assert_eq!(prod.deploy.as_deref(), Some("admin"));
    assert_eq!(prod.roles, ["maintainer", "release-manager"]);
    let bad = EXAMPLE.replace("deploy: admin", "deploy: root").replace("roles: [maintainer", "rolez: [maintainer");
    let errors = Catalog::from_yaml(&bad).unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["environments.prod.protection.rolez", "environments.prod.protection.deploy"], "{errors}");
}

#[test]
fn tapd_mapping_maps_iteration_names_to_versions() {
    let yaml = BASE.replace(
        "{ components: [a, b] }",
        "{ components: [a, b], tapd: { workspace_id: 20003271, iteration_name: \"v{version}\" } }",
    );
    let catalog = Catalog::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}"));
    let tapd = catalog.products["p"].tapd.clone().expect("tapd mapping");
    assert_eq!(tapd.workspace_id, "20003271");
    assert_eq!(tapd.version_of("v1.1.0").map(|v| v.to_string()).as_deref(), Some("1.1.0"));
    assert_eq!(tapd.version_of("1.1.0"), None);
    assert_eq!(tapd.version_of("迭代2"), None);
    let default = Catalog::from_yaml(
        &BASE.replace("{ components: [a, b] }", "{ components: [a, b], tapd: { workspace_id: \"51234567\" } }"),
    )
    .unwrap();
    let tapd = default.products["p"].tapd.clone().expect("tapd mapping");
    assert_eq!(tapd.iteration_name, "{version}");
    assert_eq!(tapd.version_of("v2.0.0").map(|v| v.to_string()).as_deref(), Some("2.0.0"));
    assert_eq!(tapd.version_of("2.0.0").map(|v| v.to_string()).as_deref(), Some("2.0.0"));
}

#[test]
fn ports_clash_only_on_one_host_one_protocol_and_overlapping_addresses() {
    let with = |a: &str, b: &str, extra: &str| {
        BASE.replace(
            "image: reg.example.com/g/a }",
            &format!("image: reg.example.com/g/a, container: {{ ports: [{a}] }} }}"),
        )
        .replace("depends_on: [a] }", &format!("depends_on: [a], container: {{ ports: [{b}] }} }}"))
        .replace(
            "user: deploy }]\n",
            &format!("user: deploy }}, {{ name: h2, address: 10.0.0.2, user: deploy }}]\n{extra}"),
        )
    };
    let ok = |yaml: String| assert_eq!(errors_of(&yaml), Vec::new(), "{yaml}");
    ok(with("\"8080:80\"", "\"8080:80/udp\"", ""));
    ok(with("\"127.0.0.1:8080:80\"", "\"10.0.0.1:8080:80\"", ""));
    ok(with("\"8080:80\"", "\"8080:80\"", "    placement: { a: [h1], b: [h2] }\n"));
    ok(with(
        "\"8080:80\"",
        "\"8080:80\"",
        "    overrides: { h1: { b: { ports: [\"9090:80\"] } }, h2: { b: { ports: [\"9090:80\"] } } }\n",
    ));
    let clash = with("\"8080:80\"", "\"9090:80\"", "    overrides: { h2: { b: { ports: [\"8080:80\"] } } }\n");
    assert_eq!(
        errors_of(&clash),
        vec![FieldError::new(
            "environments.e.overrides.h2.b.ports",
            "a published port that no other component claims on the same host",
            "port 8080/tcp on host h2 of e claimed by both a and b"
        )]
    );
}

#[test]
fn blue_green_is_the_default_where_a_proxy_runs_and_the_component_can_be_switched() {
    let yaml = BASE
        .replace(
            "image: reg.example.com/g/a }",
            "image: reg.example.com/g/a, container: { ports: [\"8080:80\"] }, health: { tcp: { port: 80 } } }",
        )
        .replace("    tier: test\n", "    tier: test\n    proxy: { image: reg.example.com/haproxy:2.6 }\n");
    let c = Catalog::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}"));
    let e = &c.environments["e"];
    assert!(c.components["a"].can_switch() && !c.components["b"].can_switch());
    assert_eq!(e.rollout_of(&c.components["a"]).strategy, Strategy::BlueGreen, "health check and ports: switched");
    assert_eq!(e.rollout_of(&c.components["b"]).strategy, Strategy::Recreate, "no ports: recreated");
    let env_default = yaml.replace("    proxy:", "    rollout: { strategy: blue-green, drain: 1s }\n    proxy:");
    let c = Catalog::from_yaml(&env_default).unwrap_or_else(|e| panic!("{e}"));
    let e = &c.environments["e"];
    let a = e.rollout_of(&c.components["a"]);
    assert_eq!((a.strategy, a.drain), (Strategy::BlueGreen, std::time::Duration::from_secs(1)));
    assert_eq!(e.rollout_of(&c.components["b"]).strategy, Strategy::Recreate, "the default applies where it can");
    let without_proxy =
        Catalog::from_yaml(&yaml.replace("    proxy: { image: reg.example.com/haproxy:2.6 }\n", "")).unwrap();
    let a = without_proxy.environments["e"].rollout_of(&without_proxy.components["a"]);
    assert_eq!(a.strategy, Strategy::Recreate, "no proxy: recreated");
}

#[test]
fn rollouts_come_from_the_component_else_the_environment_else_recreate() {
    let yaml = BASE
        .replace("depends_on: [a] }", "depends_on: [a], rollout: { strategy: rolling, batch: 2, drain: 2s } }")
        .replace("    tier: test\n", "    tier: test\n    rollout: { strategy: rolling }\n")
        .replace("user: deploy }]", "user: deploy }, { name: h2, address: 10.0.0.2, user: deploy }]");
    let c = Catalog::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}"));
    let e = &c.environments["e"];
    let own = e.rollout_of(&c.components["b"]);
    assert_eq!((own.strategy, own.batch, own.drain), (Strategy::Rolling, 2, std::time::Duration::from_secs(2)));
    let inherited = e.rollout_of(&c.components["a"]);
    assert_eq!((inherited.strategy, inherited.batch, inherited.drain), (Strategy::Rolling, 1, DEFAULT_ROLLOUT_DRAIN));
    let plain = Catalog::from_yaml(BASE).unwrap();
    assert_eq!(plain.environments["e"].rollout_of(&plain.components["a"]), Rollout::default());
    assert_eq!(Rollout::default().strategy, Strategy::Recreate);
    let shown = serde_json::to_value(&c.components["b"]).unwrap();
    assert_eq!(shown["rollout"], serde_json::json!({ "strategy": "rolling", "batch": 2, "drain": "2s" }));
}
