//! The catalog target (`tao::catalog::Catalog::from_yaml`): `tao.yaml` text, generated from the
//! catalog's schema (right and wrong values for every key), generated as dependency graphs (mostly
//! valid catalogs) or mutated from committed catalogs (deep nesting, anchors and merge keys included).
//!
//! Properties: nothing panics; an accepted catalog serializes (JSON and YAML), orders each product's
//! components with dependencies first (waves the same way, each component once) and accepts a release
//! naming every component of a product; a rejected one reports at least one error, and each names a
//! path that starts at the document (`(file)`) or at one of its top-level keys (or the schema's), what
//! was expected and what was found.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::BoxedStrategy;
use serde_yaml_ng::{Mapping, Value as Y};
use tao::catalog::{Catalog, CatalogErrors, ComponentName};

use super::mutate;

/// The fixture directory of this target.
pub const TARGET: &str = "catalog";

/// The catalog's top-level keys.
const TOP_KEYS: &[&str] = &["products", "components", "environments", "policy"];

/// Names (products, components, environments, hosts), a few invalid.
const NAMES: &[&str] =
    &["ops", "api", "sql", "graph", "agent", "a", "b", "monitor", "env-1", "prod", "node1", "node2", "Bad_1", "-x", ""];

/// Words of the schema for mutations to insert.
const TOKENS: &[&str] = &[
    "products:",
    "components:",
    "environments:",
    "policy:",
    "depends_on: [api]",
    "depends_on: [ops, sql]",
    "layer: shared",
    "layer: env-service",
    "rollout: { strategy: blue-green }",
    "rollout: { strategy: rolling, batch: 2 }",
    "proxy: { image: reg.example.com/haproxy:2.6 }",
    "ports: [\"8080:8080\"]",
    "ports: [\"0:1\", \"65536:1\", \"[::1]:1:1/udp\"]",
    "timeout: 99999999999999999999h",
    "timeout: 18446744073709551615ms",
    "batch: 4294967296",
    "git_tag: \"{version}{version}\"",
    "image_tag: \"{major}\"",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary aGVsbG8=",
    "!tag ",
    "? ",
    "--- ",
    "...",
    "~",
    "null",
    "0x10",
    ".inf",
    "- ",
    "\n  ",
    "\n    ",
    ": ",
    "{{env.domain}}",
    "{secret: x}",
];

fn nest_flow_lists(depth: usize) -> String {
    mutate::nested("[", "x", "]", depth)
}

fn nest_flow_maps(depth: usize) -> String {
    mutate::nested("{a: ", "1", "}", depth)
}

fn nest_block_maps(depth: usize) -> String {
    let mut out = String::from("\n");
    for i in 0..depth {
        out.push_str(&"  ".repeat(i));
        out.push_str("a:\n");
    }
    out
}

fn nest_block_lists(depth: usize) -> String {
    format!("\n{}x\n", "- ".repeat(depth))
}

/// Aliases of aliases ("billion laughs"): each level lists the previous one ten times.
fn nest_aliases(depth: usize) -> String {
    let levels = depth % 12 + 1;
    let mut out = String::from("\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..=levels {
        let previous = vec![format!("*l{}", i - 1); 10].join(", ");
        out.push_str(&format!("l{i}: &l{i} [{previous}]\n"));
    }
    out
}

/// Merge keys of merge keys.
fn nest_merges(depth: usize) -> String {
    let mut out = String::from("\nm0: &m0 { k0: 0 }\n");
    for i in 1..depth.min(64) {
        out.push_str(&format!("m{i}: &m{i} {{ <<: *m{}, k{i}: {i} }}\n", i - 1));
    }
    out
}

const NESTERS: &[mutate::Nester] =
    &[nest_flow_lists, nest_flow_maps, nest_block_maps, nest_block_lists, nest_aliases, nest_merges];

/// A wrong value of any kind.
fn junk() -> BoxedStrategy<Y> {
    prop_oneof![
        Just(Y::Null),
        any::<bool>().prop_map(Y::Bool),
        any::<i64>().prop_map(Y::from),
        any::<f64>().prop_map(Y::from),
        proptest::sample::select(mutate::NASTY).prop_map(Y::from),
        proptest::collection::vec(any::<char>(), 0..8).prop_map(|c| Y::String(String::from_iter(c))),
        Just(Y::Sequence(vec![Y::from(1), Y::Null])),
        Just(Y::Mapping(Mapping::from_iter([(Y::from("x"), Y::from(1))]))),
        Just(Y::Mapping(Mapping::from_iter([(Y::Sequence(vec![]), Y::from(1))]))),
    ]
    .boxed()
}

fn one_of(values: &'static [&'static str]) -> BoxedStrategy<Y> {
    proptest::sample::select(values).prop_map(Y::from).boxed()
}

fn name() -> BoxedStrategy<Y> {
    one_of(NAMES)
}

fn list(item: BoxedStrategy<Y>, max: usize) -> BoxedStrategy<Y> {
    proptest::collection::vec(item, 0..max).prop_map(Y::Sequence).boxed()
}

/// A mapping of names to values.
fn named(value: BoxedStrategy<Y>, max: usize) -> BoxedStrategy<Y> {
    proptest::collection::vec((name(), value), 0..max).prop_map(|pairs| Y::Mapping(pairs.into_iter().collect())).boxed()
}

type Field = BoxedStrategy<Option<(Y, Y)>>;

/// An optional key whose value is mostly right.
fn field(key: &'static str, value: BoxedStrategy<Y>) -> Field {
    proptest::option::weighted(0.6, prop_oneof![9 => value, 1 => junk()])
        .prop_map(move |v| v.map(|v| (Y::from(key), v)))
        .boxed()
}

/// A mapping of some of `fields`, now and then with a misspelt key.
fn mapping(fields: Vec<Field>) -> BoxedStrategy<Y> {
    let typo = proptest::option::weighted(0.05, (one_of(&["dependson", "contaner", "imgae", "tier ", "x"]), junk()));
    (fields, typo).prop_map(|(entries, typo)| Y::Mapping(entries.into_iter().flatten().chain(typo).collect())).boxed()
}

fn project() -> BoxedStrategy<Y> {
    one_of(&["monitor/api", "monitor/ops", "g/a", "group/sub.group/p", "bad", "../x", "g/../x", "g//a"])
}

fn duration() -> BoxedStrategy<Y> {
    one_of(&["30s", "500ms", "2m", "1h", "0s", "1s", "99999999999999999999h", "18446744073709551615ms", "soon", "60"])
}

fn port() -> BoxedStrategy<Y> {
    prop_oneof![4 => (1i64..65536).prop_map(Y::from), 1 => (-2i64..2).prop_map(Y::from), 1 => Just(Y::from(65536))]
        .boxed()
}

fn rollout() -> BoxedStrategy<Y> {
    mapping(vec![
        field("strategy", one_of(&["recreate", "rolling", "blue-green", "canary"])),
        field("batch", prop_oneof![(0i64..5).prop_map(Y::from), Just(Y::from(4_294_967_296i64))].boxed()),
        field("drain", duration()),
    ])
}

fn container() -> BoxedStrategy<Y> {
    let ports = one_of(&[
        "8080:8080",
        "9000:9000",
        "127.0.0.1:9100:9100",
        "8125:8125/udp",
        "[::1]:1:1",
        "0:80",
        "80:70000",
        "1:1/sctp",
        "a:b",
    ]);
    let volumes =
        one_of(&["/srv/x:/var/x", "graph-data:/var/lib/graph", "/proc:/host/proc:ro", "rel:/x", "/a", "/a:/b:rw:x"]);
    let env_value = prop_oneof![
        one_of(&["debug", "{{env.domain}}", "{{env.variables.LOG_LEVEL}}", "{{nope}}", "{{"]),
        (0i64..10_000).prop_map(Y::from).boxed(),
        one_of(&["monitor-db-password", "Bad Secret"])
            .prop_map(|s| Y::Mapping(Mapping::from_iter([(Y::from("secret"), s)])))
            .boxed(),
    ]
    .boxed();
    let env = proptest::collection::vec((one_of(&["LOG_LEVEL", "DB_HOST", "lower", "1BAD", ""]), env_value), 0..3)
        .prop_map(|pairs| Y::Mapping(pairs.into_iter().collect()))
        .boxed();
    let file = mapping(vec![
        field("target", one_of(&["/etc/api/app.conf", "relative.conf", "/etc/x:y"])),
        field("template", one_of(&["templates/api.conf.hbs", "../etc/passwd", ""])),
    ]);
    mapping(vec![
        field("name", one_of(&["{env}-{component}", "{env}-{host}-{component}", "{env}-{app}", "x", "{env"])),
        field("ports", list(ports, 3)),
        field("env", env),
        field("volumes", list(volumes, 3)),
        field("files", list(file, 2)),
        field("command", list(one_of(&["--config", "/etc/api/app.conf", ""]), 3)),
    ])
}

fn health() -> BoxedStrategy<Y> {
    let http = mapping(vec![field("port", port()), field("path", one_of(&["/health", "health", "/a b"]))]);
    let tcp = mapping(vec![field("port", port())]);
    mapping(vec![
        field("http", http),
        field("tcp", tcp),
        field("command", one_of(&["wget -q -O- http://127.0.0.1:9100/metrics", "", "a\nb"])),
        field("timeout", duration()),
    ])
}

fn component() -> BoxedStrategy<Y> {
    mapping(vec![
        field("project", project()),
        field(
            "image",
            one_of(&["registry.example.com/monitor/api", "reg.example.com/g/a", "reg:5000/x", "UPPER/x", ""]),
        ),
        field(
            "git_tag",
            one_of(&["v{version}", "{version}", "agent-v{version}", "v{major}.{minor}", "{nope}", "v{version"]),
        ),
        field("image_tag", one_of(&["{version}", "{major}.{minor}.{patch}", "latest", "{patch}", "v{version}"])),
        field("layer", one_of(&["app", "env-service", "shared", "db"])),
        field("depends_on", list(name(), 3)),
        field("container", container()),
        field("health", health()),
        field("ci", mapping(vec![field("test", one_of(&["make test", "cargo test --locked", "", "a\nb"]))])),
        field("rollout", rollout()),
    ])
}

fn product() -> BoxedStrategy<Y> {
    let tapd = mapping(vec![
        field(
            "workspace_id",
            prop_oneof![(0i64..30_000_000).prop_map(Y::from).boxed(), one_of(&["123", "ws-1"])].boxed(),
        ),
        field("iteration_name", one_of(&["{version}", "v{version}", "Sprint {n}", "{version}{version}"])),
    ]);
    mapping(vec![
        field("components", list(name(), 5)),
        field("description", one_of(&["Monitoring suite", "", "é\u{202e}"])),
        field("release_project", project()),
        field("tapd", tapd),
    ])
}

fn environment() -> BoxedStrategy<Y> {
    let host = mapping(vec![
        field("name", name()),
        field("address", one_of(&["10.0.0.11", "prod-a.monitor.example.com", "::1", "bad address", "-a.b"])),
        field("port", port()),
        field("user", one_of(&["deploy", "root", "Deploy", ""])),
    ]);
    let override_ = mapping(vec![
        field("name", one_of(&["{env}-{host}-{component}", "{bad}"])),
        field("ports", list(one_of(&["18080:8080", "0:1"]), 2)),
    ]);
    let protection = mapping(vec![
        field("deploy", one_of(&["admin", "deploy", "read", "x"])),
        field("roles", list(one_of(&["maintainer", "release-manager", "developer", "Bad Role"]), 3)),
    ]);
    mapping(vec![
        field("tier", one_of(&["dev", "test", "staging", "prod", "qa"])),
        field("domain", one_of(&["env-1.test.local", "monitor.example.com", "bad domain", ""])),
        field("hosts", list(host, 3)),
        field("placement", named(list(name(), 3), 3)),
        field("variables", named(one_of(&["debug", "info"]), 2)),
        field("overrides", named(named(override_, 2), 2)),
        field("protection", protection),
        field("rollout", rollout()),
        field("proxy", mapping(vec![field("image", one_of(&["reg.example.com/haproxy:2.6", "haproxy", ""]))])),
    ])
}

fn policy() -> BoxedStrategy<Y> {
    let branches = mapping(vec![
        field("main", one_of(&["main", "master", "*"])),
        field("feature", one_of(&["feature/*", "feat ure"])),
        field("release", one_of(&["release/*"])),
        field("hotfix", one_of(&["hotfix/*"])),
    ]);
    let role = one_of(&["no_one", "developer", "maintainer", "maintainr"]);
    let roles = mapping(vec![field("push", role.clone()), field("merge", role.clone())]);
    let protection = mapping(vec![field("main", roles.clone()), field("release", roles), field("tags", role)]);
    let level = |protection: BoxedStrategy<Y>| {
        mapping(vec![
            field("branches", branches.clone()),
            field("trunk_based", any::<bool>().prop_map(Y::Bool).boxed()),
            field("flows", list(one_of(&["feature/* -> release/*", "release/* -> main", "bad"]), 3)),
            field("merge_method", one_of(&["rebase_merge", "ff", "merge", "squash"])),
            field("require_issue_reference", any::<bool>().prop_map(Y::Bool).boxed()),
            field("protection", protection),
        ])
    };
    let top = level(protection.clone());
    let projects = proptest::collection::vec((project(), level(protection.clone())), 0..2)
        .prop_map(|pairs| Y::Mapping(pairs.into_iter().collect()))
        .boxed();
    (top, named(level(protection), 2), projects)
        .prop_map(|(top, groups, projects)| {
            let mut top = match top {
                Y::Mapping(m) => m,
                _ => Mapping::new(),
            };
            top.insert(Y::from("groups"), groups);
            top.insert(Y::from("projects"), projects);
            Y::Mapping(top)
        })
        .boxed()
}

/// A catalog from the schema, as YAML text.
fn generated() -> impl Strategy<Value = Vec<u8>> {
    mapping(vec![
        field("products", named(product(), 3)),
        field("components", named(component(), 5)),
        field("environments", named(environment(), 2)),
        field("policy", policy()),
    ])
    .prop_map(|catalog| serde_yaml_ng::to_string(&catalog).unwrap_or_else(|e| format!("# {e}\n")).into_bytes())
}

/// One component of [`graph`]: layer, dependencies (indexes), whether they may point anywhere (else
/// only at earlier components, so no cycle), rollout, health check.
type GraphComponent = (u8, Vec<Index>, bool, u8, bool);

fn graph_component(i: usize, n: usize, (layer, deps, anywhere, rollout, health): &GraphComponent) -> String {
    let mut out = format!("  c{i}:\n");
    let layer = match layer {
        1 => Some("app"),
        2 => Some("shared"),
        3 => Some("env-service"),
        _ => None,
    };
    if let Some(layer) = layer {
        out.push_str(&format!("    layer: {layer}\n"));
    }
    if layer != Some("shared") {
        out.push_str(&format!("    project: g/c{i}\n    image: reg.example.com/g/c{i}\n"));
        out.push_str(&format!("    container: {{ ports: [\"{}:80\"] }}\n", 8000 + i));
    }
    let mut on: Vec<usize> =
        deps.iter().filter_map(|d| if *anywhere { Some(d.index(n)) } else { (i > 0).then(|| d.index(i)) }).collect();
    on.sort_unstable();
    on.dedup();
    if !on.is_empty() {
        let names: Vec<String> = on.iter().map(|d| format!("c{d}")).collect();
        out.push_str(&format!("    depends_on: [{}]\n", names.join(", ")));
    }
    // Blue-green is rare (it needs a proxy in every environment) and comes with its health check.
    if *health || *rollout == 7 {
        out.push_str("    health: { tcp: { port: 80 }, timeout: 5s }\n");
    }
    match rollout {
        1 => out.push_str("    rollout: { strategy: recreate }\n"),
        2 => out.push_str("    rollout: { strategy: rolling, batch: 1, drain: 1s }\n"),
        7 => out.push_str("    rollout: { strategy: blue-green }\n"),
        _ => {}
    }
    out
}

/// A catalog right but for what chance breaks, to reach the checks of accepted catalogs: one to eight
/// components with dependencies among them, products naming some (mostly with their dependencies),
/// environments with hosts (some with a proxy).
fn graph() -> impl Strategy<Value = Vec<u8>> {
    let component =
        (0u8..4, proptest::collection::vec(any::<Index>(), 0..3), proptest::bool::weighted(0.1), 0u8..8, any::<bool>());
    let products = proptest::collection::vec(
        (proptest::collection::vec(any::<Index>(), 1..4), proptest::bool::weighted(0.9)),
        0..3,
    );
    let envs = proptest::collection::vec((0usize..4, 1usize..4, any::<bool>()), 0..3);
    (proptest::collection::vec(component, 1..9), products, envs).prop_map(|(components, products, envs)| {
        let n = components.len();
        let deps_of = |i: usize| -> Vec<usize> {
            let (_, deps, anywhere, _, _) = &components[i];
            deps.iter().filter_map(|d| if *anywhere { Some(d.index(n)) } else { (i > 0).then(|| d.index(i)) }).collect()
        };
        let mut out = String::from("products:\n");
        for (j, (picked, closed)) in products.iter().enumerate() {
            let mut members: Vec<usize> = Vec::new();
            let mut todo: Vec<usize> = picked.iter().map(|p| p.index(n)).collect();
            while let Some(c) = todo.pop() {
                if !members.contains(&c) {
                    members.push(c);
                    if *closed {
                        todo.extend(deps_of(c));
                    }
                }
            }
            let names: Vec<String> = members.iter().map(|c| format!("c{c}")).collect();
            out.push_str(&format!("  p{j}: {{ components: [{}] }}\n", names.join(", ")));
        }
        out.push_str("components:\n");
        for (i, c) in components.iter().enumerate() {
            out.push_str(&graph_component(i, n, c));
        }
        out.push_str("environments:\n");
        for (k, (tier, hosts, proxy)) in envs.iter().enumerate() {
            let tier = ["dev", "test", "staging", "prod"][*tier];
            out.push_str(&format!("  e{k}:\n    tier: {tier}\n    hosts:\n"));
            for h in 0..*hosts {
                out.push_str(&format!("      - {{ name: h{h}, address: 10.0.{k}.{h}, user: deploy }}\n"));
            }
            if *proxy {
                out.push_str("    proxy: { image: reg.example.com/haproxy:2.6 }\n");
            }
        }
        out.into_bytes()
    })
}

/// Generated catalogs (from the schema, and dependency graphs), and mutations of the committed ones.
pub fn strategy(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![3 => mutate::mutations(seeds, TOKENS, NESTERS), 1 => generated(), 2 => graph()]
}

/// Each product's components once, dependencies first; waves the same way.
fn orders(catalog: &Catalog) -> Result<(), String> {
    for (product, spec) in &catalog.products {
        let members: BTreeSet<&ComponentName> = spec.components.iter().collect();
        let order = catalog.deploy_order(product.as_str()).ok_or(format!("no deploy order for {product}"))?;
        let waves = catalog.deploy_waves(product.as_str()).ok_or(format!("no deploy waves for {product}"))?;
        let ordered: BTreeSet<&ComponentName> = order.iter().collect();
        let waved: Vec<&ComponentName> = waves.iter().flatten().collect();
        if ordered != members || order.len() != members.len() || waved.len() != members.len() {
            return Err(format!("{product}: components {members:?}, deploy order {order:?}, waves {waves:?}"));
        }
        let wave_of: BTreeMap<&ComponentName, usize> =
            waves.iter().enumerate().flat_map(|(i, w)| w.iter().map(move |c| (c, i))).collect();
        if wave_of.len() != members.len() {
            return Err(format!("{product}: a component in two waves: {waves:?}"));
        }
        for (i, component) in order.iter().enumerate() {
            for dep in &catalog.components[component].depends_on {
                let before = order[..i].contains(dep);
                if !before || wave_of.get(dep) >= wave_of.get(component) {
                    return Err(format!(
                        "{product}: {component} depends on {dep}, deploy order {order:?}, waves {waves:?}"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn accepted(catalog: &Catalog) -> Result<(), String> {
    serde_json::to_value(catalog).map_err(|e| format!("an accepted catalog does not serialize to JSON: {e}"))?;
    serde_yaml_ng::to_string(catalog).map_err(|e| format!("an accepted catalog does not serialize to YAML: {e}"))?;
    orders(catalog)?;
    for (product, spec) in &catalog.products {
        let all: BTreeMap<String, String> = spec.components.iter().map(|c| (c.to_string(), "1.0.0".into())).collect();
        if let Err(errors) = catalog.check_release(product.as_str(), "v1.2.3", &all) {
            return Err(format!("{product}: a release naming every component is refused: {errors:?}"));
        }
    }
    let paths = catalog.project_paths();
    if paths.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("project paths not sorted and distinct: {paths:?}"));
    }
    Ok(())
}

/// The scalar top-level keys of the document (as the walk names them), if it is a mapping.
fn top_keys(text: &str) -> Vec<String> {
    let Ok(mut root) = serde_yaml_ng::from_str::<Y>(text) else { return Vec::new() };
    if root.apply_merge().is_err() {
        return Vec::new();
    }
    let Y::Mapping(map) = root else { return Vec::new() };
    map.keys()
        .filter_map(|k| match k {
            Y::String(s) => Some(s.clone()),
            Y::Number(n) => Some(n.to_string()),
            Y::Bool(b) => Some(b.to_string()),
            _ => None,
        })
        .collect()
}

fn rooted(path: &str, key: &str) -> bool {
    path.strip_prefix(key).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

fn rejected(text: &str, errors: &CatalogErrors) -> Result<(), String> {
    if errors.0.is_empty() {
        return Err("rejected without an error".to_owned());
    }
    let keys = top_keys(text);
    for e in &errors.0 {
        let named = e.path.starts_with("(file)")
            || e.path == "?"
            || TOP_KEYS.iter().any(|k| rooted(&e.path, k))
            || keys.iter().any(|k| rooted(&e.path, k));
        if !named {
            return Err(format!("an error names no path of the document: {e:?}"));
        }
        if e.expected.trim().is_empty() || e.found.trim().is_empty() {
            return Err(format!("an error without what was expected or found: {e:?}"));
        }
    }
    if errors.to_string().is_empty() {
        return Err("errors worded as nothing".to_owned());
    }
    Ok(())
}

/// Checks one input (see the module header).
pub fn check(input: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(input);
    match Catalog::from_yaml(&text) {
        Ok(catalog) => accepted(&catalog),
        Err(errors) => rejected(&text, &errors),
    }
}
