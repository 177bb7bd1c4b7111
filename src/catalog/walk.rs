//! Helpers for walking a YAML tree by hand while collecting every problem found.
//!
//! Owns paths (`a.b[0].c`), the wording of "found …" for each kind of YAML value, unknown-key
//! detection with "did you mean" hints, and the collector of [`FieldError`]s. Must not know the
//! catalog's schema (see `validate`), and does no I/O.

use std::collections::BTreeSet;

use serde_yaml_ng::{Mapping, Value};

use super::error::FieldError;
use super::name::{Name, NameError};

/// Collects problems as the walk goes on, so one pass reports all of them.
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) errors: Vec<FieldError>,
}

/// The keys of one YAML mapping whose keys were checked against an allowed list.
pub(crate) struct Fields<'a> {
    map: Option<&'a Mapping>,
}

impl<'a> Fields<'a> {
    /// The value of a key; an explicit `null` counts as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map?.get(key).filter(|v| !v.is_null())
    }
}

/// `path.key`, or `key` at the root.
pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `path[i]`.
pub(crate) fn item(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// How a value is named after "found": quoted text, a number, `a list`, …
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

/// The text of a scalar (string, number or boolean), as used for map keys and loosely typed values.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The closest candidate within two edits (first one on ties), if any.
pub(crate) fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2 && *d < c.len() && *c != word)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `"word"`, followed by ` (did you mean "x"?)` when a candidate is close.
pub(crate) fn with_hint<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    match suggest(word, candidates) {
        Some(hint) => format!("{word:?} (did you mean {hint:?}?)"),
        None => format!("{word:?}"),
    }
}

impl Report {
    /// Records one problem.
    pub(crate) fn add(&mut self, path: impl Into<String>, expected: impl Into<String>, found: impl Into<String>) {
        self.errors.push(FieldError::new(path, expected, found));
    }

    /// Records a required field that is absent.
    pub(crate) fn missing(&mut self, path: impl Into<String>, expected: impl Into<String>) {
        self.add(path, expected, "nothing");
    }

    /// A mapping with a fixed set of keys; `null` counts as an empty one. Unknown keys are reported
    /// (and ignored); a value of another type is reported and yields `None`.
    pub(crate) fn fields<'a>(&mut self, v: &'a Value, path: &str, what: &str, allowed: &[&str]) -> Option<Fields<'a>> {
        let map = match v {
            Value::Null => return Some(Fields { map: None }),
            Value::Mapping(map) => map,
            other => {
                self.add(path, what, describe(other));
                return None;
            }
        };
        for key in map.keys() {
            let known = key.as_str().is_some_and(|k| allowed.contains(&k));
            if !known {
                let found = match key.as_str() {
                    Some(k) => format!("unknown key {}", with_hint(k, allowed.iter().copied())),
                    None => format!("unknown key {}", describe(key)),
                };
                let at = child(path, &scalar_text(key).unwrap_or_else(|| "?".to_owned()));
                self.add(at, format!("one of {}", allowed.join(", ")), found);
            }
        }
        Some(Fields { map: Some(map) })
    }

    /// A mapping with free keys (names, variable keys); `null` counts as empty. Keys that are not
    /// scalars are reported and skipped.
    pub(crate) fn entries<'a>(&mut self, v: &'a Value, path: &str, what: &str) -> Vec<(String, &'a Value)> {
        match v {
            Value::Null => Vec::new(),
            Value::Mapping(map) => map
                .iter()
                .filter_map(|(k, v)| match scalar_text(k) {
                    Some(key) => Some((key, v)),
                    None => {
                        self.add(path, format!("{what} keyed by text"), format!("a key that is {}", describe(k)));
                        None
                    }
                })
                .collect(),
            other => {
                self.add(path, what, describe(other));
                Vec::new()
            }
        }
    }

    /// A list; `null` counts as empty.
    pub(crate) fn list<'a>(&mut self, v: &'a Value, path: &str, what: &str) -> &'a [Value] {
        match v {
            Value::Null => &[],
            Value::Sequence(items) => items,
            other => {
                self.add(path, what, describe(other));
                &[]
            }
        }
    }

    /// A string.
    pub(crate) fn string<'a>(&mut self, v: &'a Value, path: &str, what: &str) -> Option<&'a str> {
        match v {
            Value::String(s) => Some(s),
            other => {
                self.add(path, what, describe(other));
                None
            }
        }
    }

    /// A string satisfying `ok`; `what` is the expectation in both failure cases.
    pub(crate) fn checked(&mut self, v: &Value, path: &str, what: &str, ok: impl Fn(&str) -> bool) -> Option<String> {
        let s = self.string(v, path, what)?;
        if ok(s) {
            Some(s.to_owned())
        } else {
            self.add(path, what, describe(v));
            None
        }
    }

    /// A string, number or boolean taken as text (environment values, command arguments).
    pub(crate) fn scalar(&mut self, v: &Value, path: &str, what: &str) -> Option<String> {
        let text = scalar_text(v);
        if text.is_none() {
            self.add(path, what, describe(v));
        }
        text
    }

    /// A name given as a value.
    pub(crate) fn name<N: From<Name>>(&mut self, v: &Value, path: &str) -> Option<N> {
        let s = self.string(v, path, NameError::EXPECTED)?;
        self.name_text(s, path)
    }

    /// A name given as text (map keys), reported at `path`.
    pub(crate) fn name_text<N: From<Name>>(&mut self, s: &str, path: &str) -> Option<N> {
        match Name::parse(s) {
            Ok(name) => Some(name.into()),
            Err(_) => {
                self.add(path, NameError::EXPECTED, format!("{s:?}"));
                None
            }
        }
    }

    /// A port number in 1..=65535.
    pub(crate) fn port(&mut self, v: &Value, path: &str) -> Option<u16> {
        let port = v.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|p| *p != 0);
        if port.is_none() {
            self.add(path, "a port number from 1 to 65535", describe(v));
        }
        port
    }

    /// A reference to something defined elsewhere (`known`), reported with a hint when misspelt.
    pub(crate) fn reference(
        &mut self,
        name: &str,
        known: &BTreeSet<String>,
        path: &str,
        expected: &str,
        kind: &str,
    ) -> bool {
        if known.contains(name) {
            return true;
        }
        let found = format!("unknown {kind} {}", with_hint(name, known.iter().map(String::as_str)));
        self.add(path, expected, found);
        false
    }

    /// A list of names, each checked against `known`, reported on duplicates; returns the valid
    /// ones in order.
    pub(crate) fn name_list<N>(
        &mut self,
        v: &Value,
        path: &str,
        what: &str,
        known: &BTreeSet<String>,
        known_as: (&str, &str),
    ) -> Vec<N>
    where
        N: From<Name>,
    {
        let mut seen: Vec<(usize, Name)> = Vec::new();
        let mut names = Vec::new();
        for (i, entry) in self.list(v, path, what).iter().enumerate() {
            let at = item(path, i);
            let Some(name): Option<Name> = self.name(entry, &at) else {
                continue;
            };
            if let Some((first, _)) = seen.iter().find(|(_, n)| *n == name) {
                let found = format!("{:?} again (first at [{first}])", name.as_str());
                self.add(at, "each name listed once", found);
                continue;
            }
            seen.push((i, name.clone()));
            let (expected, kind) = known_as;
            if self.reference(name.as_str(), known, &at, expected, kind) {
                names.push(N::from(name));
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_hints() {
        assert_eq!(edit_distance("imgae", "image"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(suggest("imgae", ["project", "image"]), Some("image"));
        assert_eq!(suggest("zzzzzz", ["image"]), None);
        assert_eq!(suggest("x", ["ab"]), None);
        assert_eq!(with_hint("opps", ["ops", "api"]), "\"opps\" (did you mean \"ops\"?)");
    }
}
