//! Tiny `{placeholder}` templates used by tag formats and container names.
//!
//! Owns splitting a template into literal text and placeholders and filling them in. Must not decide
//! which placeholders a given field allows (the validator does), and does no I/O.

/// Placeholders of a template in order of appearance, or `None` when a brace is unbalanced or a
/// placeholder is empty (`{}`), so the caller can report the template as malformed.
pub(crate) fn placeholders(template: &str) -> Option<Vec<&str>> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return None;
        }
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let inner = &after[..close];
        if inner.is_empty() || inner.contains('{') {
            return None;
        }
        found.push(inner);
        rest = &after[close + 1..];
    }
    Some(found)
}

/// Literal text of a template (everything outside placeholders), for character checks.
pub(crate) fn literal_text(template: &str) -> String {
    let mut out = String::new();
    let mut depth = false;
    for c in template.chars() {
        match c {
            '{' => depth = true,
            '}' => depth = false,
            _ if !depth => out.push(c),
            _ => {}
        }
    }
    out
}

/// Replaces each `{key}` by its value; unknown placeholders are left as they are.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let key = &after[..close];
        match values.iter().find(|(k, _)| *k == key) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_placeholders() {
        assert_eq!(placeholders("v{version}"), Some(vec!["version"]));
        assert_eq!(placeholders("{env}-{host}-{component}"), Some(vec!["env", "host", "component"]));
        assert_eq!(placeholders("plain"), Some(vec![]));
        for bad in ["{", "}", "a{b", "a}b{c}", "{}", "{{x}}"] {
            assert_eq!(placeholders(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn renders_known_and_keeps_unknown() {
        let values = [("env", "env-1"), ("component", "api")];
        assert_eq!(render("{env}-{component}", &values), "env-1-api");
        assert_eq!(render("{env}-{other}", &values), "env-1-{other}");
        assert_eq!(render("x{env", &values), "x{env");
        assert_eq!(literal_text("v{version}-rc"), "v-rc");
    }
}
