//! Percent-encoding of one URL path segment or query value: RFC 3986's unreserved characters stay,
//! every other byte becomes `%XX` (so `group/project` becomes `group%2Fproject`, as GitLab expects).

/// Percent-encodes `s` as one segment or value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_unreserved_and_encodes_the_rest() {
        assert_eq!(super::encode("monitor/api v1.0_~"), "monitor%2Fapi%20v1.0_~");
        assert_eq!(super::encode("é"), "%C3%A9");
    }
}
