//! One-way floors: every import in `src/` runs from a file to its own floor or a lower one, by the table
//! under "# Floors" in `src/lib.rs`. Imports are the `crate::…` and `super::…` paths of non-test code (a
//! file's `#[cfg(test)]` part is skipped), resolved to the file that defines the module they name.
//!
//! The imports that still run upwards are listed in [`KNOWN_UPWARDS`], each with the work that removes
//! it (issue #17): the check fails on any other upward import, and on a listed one that is gone (so the
//! list only shrinks).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Upward imports not yet removed: (from file, to file), relative to `src/`. None are left; the list
/// stays so that a change which must add one says so here, with the work that removes it.
const KNOWN_UPWARDS: &[(&str, &str)] = &[];

fn src_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The table: path (file, or directory ending in `/`) → floor.
fn table() -> BTreeMap<String, u32> {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let section = lib.split("//! # Floors").nth(1).expect("lib.rs has a # Floors section");
    let block = section.split("//! ```text").nth(1).expect("a text block").split("//! ```").next().unwrap();
    let mut out = BTreeMap::new();
    let mut floor: Option<u32> = None;
    for line in block.lines() {
        let mut words = line.trim_start_matches("//!").split_whitespace().peekable();
        let Some(first) = words.peek() else { continue };
        // A line starts with its floor's number, or continues the floor of the line above.
        if let Ok(n) = first.parse::<u32>() {
            floor = Some(n);
            words.next();
        }
        let floor = floor.unwrap_or_else(|| panic!("floor number in {line:?}"));
        for path in words {
            assert!(out.insert(path.to_string(), floor).is_none(), "{path} is listed twice");
        }
    }
    assert!(out.len() > 20, "read the table: {out:?}");
    out
}

fn floor_of(table: &BTreeMap<String, u32>, file: &str) -> Option<u32> {
    table
        .iter()
        .filter(|(p, _)| file == p.as_str() || (p.ends_with('/') && file.starts_with(p.as_str())))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, f)| *f)
}

fn rust_files(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.insert(path.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The module path of a file: `deploy/runner.rs` → [deploy, runner]; `deploy/mod.rs` → [deploy].
fn module_of(file: &str) -> Vec<String> {
    let mut segs: Vec<String> = file.trim_end_matches(".rs").split('/').map(str::to_string).collect();
    if matches!(segs.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        segs.pop();
    }
    segs
}

/// The file defining the longest prefix of `segs` that is a module.
fn file_of(files: &BTreeSet<String>, segs: &[String]) -> Option<String> {
    (1..=segs.len()).rev().find_map(|k| {
        let base = segs[..k].join("/");
        [format!("{base}.rs"), format!("{base}/mod.rs")].into_iter().find(|f| files.contains(f))
    })
}

/// Code without comments and without the `#[cfg(test)]` part.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// Every (from, to) file pair of an import.
fn imports(files: &BTreeSet<String>) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for file in files {
        let code = code_of(&std::fs::read_to_string(src_dir().join(file)).unwrap());
        let me = module_of(file);
        let bytes = code.as_bytes();
        for (at, _) in code.match_indices("::") {
            // The path this `::` belongs to starts at the identifier before it; take it from its start.
            let start = code[..at].rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).map_or(0, |i| i + 1);
            if start != at - code[start..at].len() || code[start..at].contains("::") {
                continue; // not the first `::` of its path
            }
            let end = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |i| at + i);
            let path: Vec<String> =
                code[start..end].split("::").filter(|s| !s.is_empty()).map(str::to_string).collect();
            if start > 0 && (bytes[start - 1] == b'$') {
                continue; // `$crate` in a macro
            }
            let target = match path.first().map(String::as_str) {
                Some("crate") => path[1..].to_vec(),
                Some("super") => {
                    let mut base = me.clone();
                    base.pop();
                    let mut rest = &path[1..];
                    while rest.first().is_some_and(|s| s == "super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    base.extend(rest.iter().cloned());
                    base
                }
                Some("self") => me.iter().chain(&path[1..]).cloned().collect(),
                // A bare path into a child module (`records::X` in `service/mod.rs`), e.g. a re-export.
                Some(first)
                    if file_of(files, &[me.clone(), vec![first.to_string()]].concat())
                        .is_some_and(|f| module_of(&f).len() == me.len() + 1) =>
                {
                    me.iter().chain(&path).cloned().collect()
                }
                _ => continue,
            };
            if let Some(to) = file_of(files, &target).filter(|to| to != file) {
                out.insert((file.clone(), to));
            }
        }
    }
    out
}

#[test]
fn no_import_runs_from_a_lower_floor_to_a_higher_one() {
    let table = table();
    let mut files = BTreeSet::new();
    rust_files(&src_dir(), &src_dir(), &mut files);
    let unplaced: Vec<&String> = files.iter().filter(|f| floor_of(&table, f).is_none()).collect();
    assert!(unplaced.is_empty(), "files on no floor (add them to lib.rs's table): {unplaced:?}");
    let edges = imports(&files);
    assert!(edges.len() > 200, "found the imports: {}", edges.len());
    let upward: BTreeSet<(String, String)> =
        edges.iter().filter(|(from, to)| floor_of(&table, to) > floor_of(&table, from)).cloned().collect();
    let known: BTreeSet<(String, String)> = KNOWN_UPWARDS.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let new: Vec<String> = upward
        .difference(&known)
        .map(|(a, b)| format!("{a} ({}) -> {b} ({})", floor_of(&table, a).unwrap(), floor_of(&table, b).unwrap()))
        .collect();
    assert!(new.is_empty(), "imports that run upwards: {new:#?}");
    let gone: Vec<_> = known.difference(&upward).collect();
    assert!(gone.is_empty(), "listed in KNOWN_UPWARDS but gone (remove them from the list): {gone:?}");
}

#[test]
fn the_checker_sees_upward_imports() {
    // The resolver on a known shape: a `super::` path from a nested file and a `crate::` path.
    let files: BTreeSet<String> =
        ["a/mod.rs", "a/b.rs", "a/c/mod.rs", "a/c/d.rs", "e.rs"].iter().map(|s| s.to_string()).collect();
    let segs = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(file_of(&files, &segs(&["a", "c", "d", "Thing"])).as_deref(), Some("a/c/d.rs"));
    assert_eq!(file_of(&files, &segs(&["a", "Thing"])).as_deref(), Some("a/mod.rs"));
    assert_eq!(file_of(&files, &segs(&["e", "f"])).as_deref(), Some("e.rs"));
    assert_eq!(module_of("a/c/mod.rs"), segs(&["a", "c"]));
    assert_eq!(module_of("a/b.rs"), segs(&["a", "b"]));
    let table = table();
    assert_eq!(floor_of(&table, "deploy/runner/mod.rs"), Some(6));
    assert_eq!(floor_of(&table, "deploy/rollout/recreate.rs"), Some(6));
    assert_eq!(floor_of(&table, "deploy/ssh.rs"), Some(4));
    assert_eq!(floor_of(&table, "catalog/model.rs"), Some(1));
    assert_eq!(floor_of(&table, "deploy/task.rs"), Some(1), "a continued line keeps its floor");
    assert_eq!(code_of("use crate::x; // crate::y\n#[cfg(test)]\nuse crate::z;"), "use crate::x; ");
}

/// The top-level module a file belongs to (`deploy/runner/mod.rs` → `deploy`, `notify.rs` → `notify`).
fn top_module(file: &str) -> &str {
    let first = file.split('/').next().unwrap_or(file);
    first.strip_suffix(".rs").unwrap_or(first)
}

#[test]
fn no_file_circle_spans_two_modules() {
    let mut files = BTreeSet::new();
    rust_files(&src_dir(), &src_dir(), &mut files);
    let edges = imports(&files);
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in &edges {
        next.entry(from.as_str()).or_default().push(to.as_str());
    }
    // Files reachable from each file (depth-first); two files are on one circle when each reaches the other.
    let reach = |start: &str| {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![start]);
        while let Some(f) = todo.pop() {
            for &t in next.get(f).into_iter().flatten() {
                if seen.insert(t) {
                    todo.push(t);
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&str, BTreeSet<&str>> = files.iter().map(|f| (f.as_str(), reach(f))).collect();
    let mut spanning = BTreeSet::new();
    for (a, from_a) in &reaches {
        for b in from_a {
            if top_module(a) != top_module(b) && reaches[b].contains(a) {
                let pair = if a < b { (*a, *b) } else { (*b, *a) };
                spanning.insert(pair);
            }
        }
    }
    assert!(spanning.is_empty(), "files of two modules import each other (directly or around a circle): {spanning:#?}");
}

#[test]
fn the_circle_check_names_modules() {
    assert_eq!(top_module("deploy/runner/mod.rs"), "deploy");
    assert_eq!(top_module("notify.rs"), "notify");
    assert_eq!(top_module("lib.rs"), "lib");
}

#[test]
fn adapters_reach_the_store_only_through_service() {
    // The front ends above `service` (chat dispatch and transports, HTTP, the Discord adapter) never hold
    // the pool: what they read or change goes through `Services`, so web, API, CLI and chat cannot
    // disagree. The webhook and status-check intake store deliveries through the store's intake writer.
    let table = table();
    let mut files = BTreeSet::new();
    rust_files(&src_dir(), &src_dir(), &mut files);
    let service = floor_of(&table, "service/mod.rs").unwrap();
    let app = floor_of(&table, "app.rs").unwrap();
    let mut found = Vec::new();
    for file in files.iter().filter(|f| floor_of(&table, f).is_some_and(|n| n > service && n < app)) {
        let code = code_of(&std::fs::read_to_string(src_dir().join(file)).unwrap());
        for (i, line) in code.lines().enumerate() {
            let holds_pool = line.contains(".pool()")
                || line.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == "Pool" || w == "with_pool");
            if holds_pool {
                found.push(format!("{file}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(found.len() < files.len(), "read the files");
    assert!(found.is_empty(), "adapters that reach the store without `service`: {found:#?}");
}
