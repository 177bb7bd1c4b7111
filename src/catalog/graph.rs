//! The component dependency graph: cycle detection and deploy order.
//!
//! Owns ordering components by `depends_on` (dependencies first, ties broken by name) and naming
//! cycles. Must not decide what a deploy skips or runs (the planner does) and does no I/O.

use std::collections::{BTreeMap, BTreeSet};

use super::model::Component;
use super::name::ComponentName;

/// Every distinct cycle once, as (`components.<first>.depends_on`, `cycle a -> b -> a`), each
/// rotated to start at its smallest name. Unknown dependencies are ignored (reported elsewhere).
pub(crate) fn cycles(components: &BTreeMap<ComponentName, Component>) -> Vec<(String, String)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks: BTreeMap<&ComponentName, Mark> = components.keys().map(|n| (n, Mark::New)).collect();
    let mut found: BTreeSet<Vec<&ComponentName>> = BTreeSet::new();
    for start in components.keys() {
        if marks.get(start) != Some(&Mark::New) {
            continue;
        }
        // Iterative depth-first search: (node, index of the next dependency to visit).
        let mut stack: Vec<(&ComponentName, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Open);
        while let Some((node, next)) = stack.last().copied() {
            let deps = components.get(node).map(|c| c.depends_on.as_slice()).unwrap_or_default();
            let Some(dep) = deps.get(next) else {
                marks.insert(node, Mark::Done);
                stack.pop();
                continue;
            };
            if let Some(top) = stack.last_mut() {
                top.1 += 1;
            }
            match marks.get(dep).copied() {
                Some(Mark::New) => {
                    marks.insert(dep, Mark::Open);
                    stack.push((dep, 0));
                }
                Some(Mark::Open) => {
                    let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                    let mut cycle: Vec<&ComponentName> = stack[from..].iter().map(|(n, _)| *n).collect();
                    let min = (0..cycle.len()).min_by_key(|i| cycle[*i]).unwrap_or(0);
                    cycle.rotate_left(min);
                    found.insert(cycle);
                }
                Some(Mark::Done) | None => {}
            }
        }
    }
    found
        .into_iter()
        .map(|cycle| {
            let mut names: Vec<&str> = cycle.iter().map(|n| n.as_str()).collect();
            let first = names[0];
            names.push(first);
            (format!("components.{first}.depends_on"), format!("cycle {}", names.join(" -> ")))
        })
        .collect()
}

/// The given components in waves: each wave depends only on earlier ones; names sorted within a
/// wave. Dependencies outside `members` are ignored. Components left in a cycle (impossible in a
/// validated catalog) end up in a last wave, sorted.
pub(crate) fn waves(
    components: &BTreeMap<ComponentName, Component>,
    members: &[ComponentName],
) -> Vec<Vec<ComponentName>> {
    let members: BTreeSet<&ComponentName> = members.iter().collect();
    let mut remaining: BTreeMap<&ComponentName, BTreeSet<&ComponentName>> = members
        .iter()
        .map(|m| {
            let deps = components
                .get(*m)
                .map(|c| c.depends_on.iter().filter(|d| members.contains(d)).collect())
                .unwrap_or_default();
            (*m, deps)
        })
        .collect();
    let mut waves = Vec::new();
    while !remaining.is_empty() {
        let ready: Vec<&ComponentName> =
            remaining.iter().filter(|(_, deps)| deps.is_empty()).map(|(n, _)| *n).collect();
        if ready.is_empty() {
            waves.push(remaining.keys().map(|n| (*n).clone()).collect());
            break;
        }
        for n in &ready {
            remaining.remove(n);
        }
        for deps in remaining.values_mut() {
            for n in &ready {
                deps.remove(n);
            }
        }
        waves.push(ready.into_iter().cloned().collect());
    }
    waves
}

/// Dependencies first; among components whose dependencies are all placed, the smallest name first.
pub(crate) fn order(components: &BTreeMap<ComponentName, Component>, members: &[ComponentName]) -> Vec<ComponentName> {
    let members: BTreeSet<&ComponentName> = members.iter().collect();
    let mut pending: BTreeMap<&ComponentName, BTreeSet<&ComponentName>> = members
        .iter()
        .map(|m| {
            let deps = components
                .get(*m)
                .map(|c| c.depends_on.iter().filter(|d| members.contains(d)).collect())
                .unwrap_or_default();
            (*m, deps)
        })
        .collect();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let next = pending
            .iter()
            .find(|(_, deps)| deps.is_empty())
            .map(|(n, _)| *n)
            .or_else(|| pending.keys().next().copied());
        let Some(next) = next else { break };
        pending.remove(next);
        for deps in pending.values_mut() {
            deps.remove(next);
        }
        out.push(next.clone());
    }
    out
}
