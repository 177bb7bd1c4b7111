//! Image references: the validated [`ImageRef`] newtype, and [`InvalidValue`], the error of every value
//! refused before it could reach a host.
//!
//! Owns parsing only (Docker's reference grammar, stricter where it costs nothing). Must not run
//! anything. Re-exported by `docker`, where callers find it.

use std::fmt;

/// An image reference `[registry[:port]/]path/name` followed by `:tag`, `@sha256:<64 hex>` or both.
///
/// Parsing follows Docker's reference grammar (lower-case path components separated by `.`, `_`, `__` or
/// dashes; a tag of word characters, `.` and `-`), so a value with whitespace, quotes or any other shell
/// syntax cannot be constructed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    full: String,
    repo: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a value was refused before reaching a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {found:?}: expected {expected}")]
pub struct InvalidValue {
    /// What the value is (image, container name, env name…).
    pub field: &'static str,
    /// What a valid value looks like.
    pub expected: &'static str,
    /// What was given (never a secret).
    pub found: String,
}

impl ImageRef {
    /// What an image reference must look like, worded for people.
    pub const EXPECTED: &'static str = "registry[:port]/path/name:tag or …@sha256:<64 hex digits>, with a lower-case \
         path (letters, digits, '.', '_', '-') and a tag of letters, digits, '_', '.', '-'";

    /// Parses and validates an image reference.
    pub fn parse(s: &str) -> Result<ImageRef, InvalidValue> {
        let bad = || InvalidValue { field: "image", expected: Self::EXPECTED, found: s.to_string() };
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").ok_or_else(bad)?;
                if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
                    return Err(bad());
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is what follows the last ':' when no '/' comes after it (else it is a registry port).
        let (repo, tag) = match rest.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
            _ => (rest, None),
        };
        if tag.is_none() && digest.is_none() {
            return Err(bad());
        }
        if let Some(t) = &tag {
            let mut cs = t.chars();
            let first_ok = matches!(cs.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_');
            if !first_ok || t.len() > 128 || !cs.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
                return Err(bad());
            }
        }
        let mut parts: Vec<&str> = repo.split('/').collect();
        if parts.len() > 1 && looks_like_registry(parts[0]) {
            if !valid_registry(parts[0]) {
                return Err(bad());
            }
            parts.remove(0);
        }
        if parts.is_empty() || !parts.iter().all(|p| valid_path_component(p)) || repo.len() > 255 {
            return Err(bad());
        }
        Ok(ImageRef { full: s.to_string(), repo: repo.to_string(), tag, digest })
    }

    /// Repository without tag or digest, e.g. `127.0.0.1:5000/tao-test/web`.
    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// The tag, when given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest `sha256:…`, when given.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The last path segment of the repository (`web` for `…/tao-test/web:1.0.0`).
    pub fn name(&self) -> &str {
        self.repo.rsplit('/').next().unwrap_or(&self.repo)
    }

    /// The whole reference as given.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl std::str::FromStr for ImageRef {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

fn looks_like_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase())
}

fn valid_registry(r: &str) -> bool {
    let (host, port) = match r.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (r, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let host_ok = !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    port_ok && host_ok
}

fn valid_path_component(p: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
    let bytes = p.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs_parse() {
        let i = ImageRef::parse("127.0.0.1:5000/tao-test/web:1.0.0").unwrap();
        assert_eq!(
            (i.repo(), i.tag(), i.digest(), i.name()),
            ("127.0.0.1:5000/tao-test/web", Some("1.0.0"), None, "web")
        );
        let d = format!("registry.example.com/monitor/api@sha256:{}", "a".repeat(64));
        let i = ImageRef::parse(&d).unwrap();
        assert_eq!((i.tag(), i.digest().unwrap().len()), (None, 71));
        assert!(ImageRef::parse("busybox:1.36").is_ok());
        assert!(ImageRef::parse("localhost:5000/a__b/c-d.e:v1.2_x").is_ok());
    }

    #[test]
    fn hostile_image_refs_are_refused() {
        for bad in [
            "r/web:1.0;id",
            "r/web:$(id)",
            "r/web:`id`",
            "r/$(id)/web:1",
            "r/web:1 2",
            "r/Web:1",
            "r/web",
            "r/web:1\nid",
            "r/web:-x",
            "r/web@sha256:xyz",
            "r/web:1|sh",
            "r/web:'1'",
            "-oProxyCommand=x/web:1",
            "r//web:1",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
