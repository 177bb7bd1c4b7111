//! Semantic versions of products and components, and the tag formats that carry them.
//!
//! Owns parsing (a leading `v` is tolerated and dropped) and rendering a version through a tag format
//! such as `v{version}`. Must not look tags up anywhere (no I/O): that is the GitLab adapter's job.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::template;

/// A semver version stored without a leading `v`. `Version::parse("v1.1.0")` == `Version::parse("1.1.0")`; displays "1.1.0".
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(semver::Version);

/// A string that is not a semantic version.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected {}, found {found:?}", VersionError::EXPECTED)]
pub struct VersionError {
    /// The rejected input.
    pub found: String,
}

impl VersionError {
    /// What a version must look like, worded for people.
    pub const EXPECTED: &'static str = "a semantic version like 1.2.3 (a leading v is allowed)";
}

/// Placeholders a tag format may use.
pub const TAG_PLACEHOLDERS: [&str; 4] = ["version", "major", "minor", "patch"];

impl Version {
    /// Parses `1.2.3`, `v1.2.3`, `1.2.3-rc.1+build.5`; rejects `1.2`, `latest`, surrounding spaces.
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let bare = s.strip_prefix('v').unwrap_or(s);
        semver::Version::parse(bare).map(Version).map_err(|_| VersionError { found: s.to_owned() })
    }

    /// The underlying semver value.
    pub fn semver(&self) -> &semver::Version {
        &self.0
    }

    /// Applies a tag format like "v{version}" or "{version}" (also supports {major} {minor} {patch}).
    pub fn format(&self, fmt: &str) -> String {
        let version = self.0.to_string();
        let major = self.0.major.to_string();
        let minor = self.0.minor.to_string();
        let patch = self.0.patch.to_string();
        template::render(fmt, &[("version", &version), ("major", &major), ("minor", &minor), ("patch", &patch)])
    }
}

impl From<semver::Version> for Version {
    fn from(v: semver::Version) -> Self {
        Version(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Version::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_v_is_dropped() {
        let a = Version::parse("v1.1.0").unwrap();
        assert_eq!(a, Version::parse("1.1.0").unwrap());
        assert_eq!(a.to_string(), "1.1.0");
        assert_eq!(a.semver().minor, 1);
    }

    #[test]
    fn rejects_non_semver() {
        for bad in ["1.2", "latest", "", "v", "V1.2.3", " 1.2.3", "1.2.3.4", "vv1.2.3"] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Version::parse("1.2").unwrap_err().to_string(),
            "expected a semantic version like 1.2.3 (a leading v is allowed), found \"1.2\""
        );
    }

    #[test]
    fn keeps_prerelease_and_orders() {
        let rc = Version::parse("1.2.0-rc.1").unwrap();
        let rel = Version::parse("1.2.0").unwrap();
        assert!(rc < rel);
        assert_eq!(rc.to_string(), "1.2.0-rc.1");
    }

    #[test]
    fn formats_tags() {
        let v = Version::parse("v1.4.2").unwrap();
        assert_eq!(v.format("v{version}"), "v1.4.2");
        assert_eq!(v.format("{version}"), "1.4.2");
        assert_eq!(v.format("release-{major}.{minor}"), "release-1.4");
        assert_eq!(v.format("{major}.{minor}.{patch}-x"), "1.4.2-x");
        assert_eq!(v.format("{unknown}"), "{unknown}");
    }

    #[test]
    fn serde_as_string() {
        let v: Version = serde_json::from_str("\"v2.0.1\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"2.0.1\"");
        assert!(serde_json::from_str::<Version>("\"2.0\"").is_err());
        assert_eq!("3.0.0".parse::<Version>().unwrap().semver().major, 3);
    }
}
