//! Small value syntaxes found inside the catalog: project paths, images, ports, volumes, durations,
//! host addresses, environment variable keys and user names.
//!
//! Owns the parse-don't-validate types for these values and their canonical text forms (which is also
//! how they serialize). Must not report catalog paths (the validator does) and does no I/O.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A GitLab project path like `monitor/api`: at least two `/`-separated segments of `[A-Za-z0-9_.-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectPath(String);

/// A string that is not a GitLab project path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected {}, found {found:?}", ProjectPathError::EXPECTED)]
pub struct ProjectPathError {
    /// The rejected input.
    pub found: String,
}

impl ProjectPathError {
    /// What a project path must look like, worded for people.
    pub const EXPECTED: &'static str =
        "a GitLab project path like \"group/project\" (segments of letters, digits, '_', '.' and '-')";
}

impl ProjectPath {
    /// Parses a project path such as `monitor/api` or `group/sub-group/project`.
    pub fn parse(s: &str) -> Result<ProjectPath, ProjectPathError> {
        let segment_ok = |seg: &str| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        };
        if s.split('/').count() >= 2 && s.split('/').all(segment_ok) {
            Ok(ProjectPath(s.to_owned()))
        } else {
            Err(ProjectPathError { found: s.to_owned() })
        }
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ProjectPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for ProjectPath {
    type Err = ProjectPathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProjectPath::parse(s)
    }
}

impl Serialize for ProjectPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ProjectPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ProjectPath::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Whether `s` is an image repository without tag or digest: `[host[:port]/]path/name`, lowercase
/// path segments, no `@`, no `:` in the last segment.
pub fn is_image_repository(s: &str) -> bool {
    let segments: Vec<&str> = s.split('/').collect();
    let plain = |seg: &str| {
        !seg.is_empty()
            && seg.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    };
    let registry =
        |seg: &str| !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    match segments.split_first() {
        Some((first, rest)) if !rest.is_empty() => {
            (plain(first) || registry(first)) && rest.iter().all(|seg| plain(seg))
        }
        Some((only, _)) => plain(only),
        None => false,
    }
}

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// A published port: `[ip:]published:container[/tcp|/udp]`; serializes in that form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// Host address to bind, when not all interfaces.
    pub host_ip: Option<IpAddr>,
    /// Port on the host.
    pub published: u16,
    /// Port inside the container.
    pub container: u16,
    /// Transport protocol.
    pub protocol: Protocol,
}

impl PortMapping {
    /// What a port mapping must look like, worded for people.
    pub const EXPECTED: &'static str = "a port mapping \"published:container\" with ports from 1 to 65535 (optionally \"ip:published:container\" and a /tcp or /udp suffix)";

    /// Parses `8080:80`, `127.0.0.1:8080:80`, `[::1]:8080:80/udp`; `None` when malformed or a port is
    /// outside 1..=65535.
    pub fn parse(s: &str) -> Option<PortMapping> {
        let (spec, protocol) = match s.rsplit_once('/') {
            Some((spec, "tcp")) => (spec, Protocol::Tcp),
            Some((spec, "udp")) => (spec, Protocol::Udp),
            Some(_) => return None,
            None => (s, Protocol::Tcp),
        };
        let mut parts = spec.rsplitn(3, ':');
        let container = parse_port(parts.next()?)?;
        let published = parse_port(parts.next()?)?;
        let host_ip = match parts.next() {
            None => None,
            Some(ip) => {
                let ip = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip);
                Some(ip.parse().ok()?)
            }
        };
        Some(PortMapping { host_ip, published, container, protocol })
    }
}

/// Parses a decimal port in 1..=65535 (digits only: no sign, no spaces).
pub fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|p| *p != 0)
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(f, "{}:{}", self.published, self.container)?;
        if self.protocol == Protocol::Udp {
            f.write_str("/udp")?;
        }
        Ok(())
    }
}

impl Serialize for PortMapping {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A volume: `source:target[:ro|:rw]` where source is an absolute host path or a named volume and
/// target an absolute container path; serializes in that form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VolumeMount {
    /// Absolute host path or named volume.
    pub source: String,
    /// Absolute path inside the container.
    pub target: String,
    /// Mounted read-only (`:ro`).
    pub read_only: bool,
}

impl VolumeMount {
    /// What a volume must look like, worded for people.
    pub const EXPECTED: &'static str =
        "a volume \"host-path-or-name:/container/path\" optionally followed by :ro or :rw";

    /// Parses `"/data/api:/var/lib/api"`, `"api-data:/data:ro"`; `None` when malformed.
    pub fn parse(s: &str) -> Option<VolumeMount> {
        let parts: Vec<&str> = s.split(':').collect();
        let (source, target, read_only) = match parts.as_slice() {
            [source, target] => (*source, *target, false),
            [source, target, "ro"] => (*source, *target, true),
            [source, target, "rw"] => (*source, *target, false),
            _ => return None,
        };
        let named = source.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && source.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if (is_absolute_path(source) || named) && is_absolute_path(target) {
            Some(VolumeMount { source: source.to_owned(), target: target.to_owned(), read_only })
        } else {
            None
        }
    }
}

impl fmt::Display for VolumeMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.target)?;
        if self.read_only {
            f.write_str(":ro")?;
        }
        Ok(())
    }
}

impl Serialize for VolumeMount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An absolute path without control characters, spaces or `:` (those would break a mount spec).
pub fn is_absolute_path(s: &str) -> bool {
    s.starts_with('/') && !s.chars().any(|c| c.is_control() || c == ':' || c == ' ')
}

/// What a duration must look like, worded for people.
pub const DURATION_EXPECTED: &str = "a positive duration like 60s, 2m or 500ms";

/// Parses `500ms`, `60s`, `2m`, `1h`; `None` when malformed or zero.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(digits_end);
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }?;
    (millis > 0).then(|| Duration::from_millis(millis))
}

/// The text form of a duration that [`parse_duration`] reads back: whole seconds as `60s`, anything
/// else as `1500ms` (seconds rather than minutes, as health timeouts are usually written).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 || ms % 1_000 != 0 {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1_000)
    }
}

/// Serializes a duration as its text form (`"60s"`), for serde's `serialize_with`.
pub fn serialize_duration<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_duration(*d))
}

/// A DNS name: dot-separated labels of letters, digits and `-` (not at a label's ends), at most 253
/// characters.
pub fn is_dns_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// A host address: an IP address or a DNS name.
pub fn is_host_address(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok() || is_dns_name(s)
}

/// An environment variable key: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_key(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A login name: `[a-z_][a-z0-9_-]*`, at most 32 characters.
pub fn is_user_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 32
        && chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

/// A secret reference: 1..=128 characters of `[A-Za-z0-9_.-]`.
pub fn is_secret_name(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_paths() {
        for ok in ["monitor/api", "a/b/c", "My.Group/pro_ject-1"] {
            assert!(ProjectPath::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["api", "", "/api", "monitor/", "a//b", "a/b c", "a/../b"] {
            assert!(ProjectPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images() {
        for ok in ["registry.example.com/monitor/api", "localhost:5000/api", "busybox", "library/busybox"] {
            assert!(is_image_repository(ok), "{ok}");
        }
        for bad in
            ["registry.example.com/monitor/api:1.0", "api:latest", "api@sha256:abc", "", "a//b", "Reg/API", "x/ y"]
        {
            assert!(!is_image_repository(bad), "{bad}");
        }
    }

    #[test]
    fn ports() {
        let p = PortMapping::parse("127.0.0.1:18080:8080/udp").unwrap();
        assert_eq!(p.published, 18080);
        assert_eq!(p.container, 8080);
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(p.to_string(), "127.0.0.1:18080:8080/udp");
        assert_eq!(PortMapping::parse("80:80/tcp").unwrap().to_string(), "80:80");
        assert_eq!(PortMapping::parse("[::1]:80:80").unwrap().to_string(), "[::1]:80:80");
        for bad in ["80", "0:80", "80:65536", "a:80", "80:80/sctp", "x:80:80", " 80:80", "+80:80"] {
            assert_eq!(PortMapping::parse(bad), None, "{bad}");
        }
        assert_eq!(PortMapping::parse("65535:1").unwrap().published, 65535);
    }

    #[test]
    fn volumes() {
        let v = VolumeMount::parse("/data/api:/var/lib/api:ro").unwrap();
        assert!(v.read_only);
        assert_eq!(v.to_string(), "/data/api:/var/lib/api:ro");
        assert!(VolumeMount::parse("api-data:/data").is_some());
        for bad in ["/data", "/a:relative", "../x:/y", "/a:/b:rx", "/a:/b:ro:x"] {
            assert_eq!(VolumeMount::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        for bad in ["", "60", "s", "0s", "1.5s", "-1s", "60 s", "1d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        for text in ["500ms", "90s", "60s", "1500ms"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(format_duration(parse_duration("2m").unwrap()), "120s");
        assert_eq!(format_duration(parse_duration("1h").unwrap()), "3600s");
    }

    #[test]
    fn small_syntaxes() {
        assert!(is_host_address("10.0.0.11") && is_host_address("node1.example.com"));
        assert!(is_host_address("::1") && !is_host_address("bad_host") && !is_host_address(""));
        assert!(is_env_key("DB_HOST") && is_env_key("_x1") && !is_env_key("1A") && !is_env_key("A-B"));
        assert!(is_user_name("deploy") && is_user_name("_svc-1") && !is_user_name("Deploy"));
        assert!(is_secret_name("monitor-db-password") && !is_secret_name("a b"));
    }
}
