//! Validated names: products, components, environments and hosts.
//!
//! Owns the one syntax every such name follows, because names become container names and DNS labels
//! and may reach a remote shell. Must not know about the catalog around them, and does no I/O.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest name accepted: a DNS label's limit.
pub const MAX_NAME_LEN: usize = 63;

/// Validated name: `[a-z0-9][a-z0-9-]*`, 1..=63 chars (becomes container names and DNS labels).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// A name of one kind of thing: the [`Name`] syntax, a type of its own, so that a product's name cannot
/// be passed where an environment's is expected. Compares with `str` and is looked up by `&str` in maps.
macro_rules! kind_of_name {
    ($(#[$doc:meta])* $t:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $t(Name);

        impl $t {
            /// Parses the name (the [`Name`] syntax).
            pub fn parse(s: &str) -> Result<$t, NameError> {
                Name::parse(s).map($t)
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// The validated name, without its kind.
            pub fn name(&self) -> &Name {
                &self.0
            }
        }

        impl From<Name> for $t {
            fn from(name: Name) -> $t {
                $t(name)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                self.0.as_str()
            }
        }

        impl Borrow<str> for $t {
            fn borrow(&self) -> &str {
                self.0.as_str()
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0.as_str() == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0.as_str() == *other
            }
        }

        impl FromStr for $t {
            type Err = NameError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $t::parse(s)
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(serializer)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Name::deserialize(deserializer).map($t)
            }
        }
    };
}

kind_of_name!(
    /// A product's name.
    ProductName
);
kind_of_name!(
    /// A component's name.
    ComponentName
);
kind_of_name!(
    /// An environment's name.
    EnvName
);
kind_of_name!(
    /// A host's name inside an environment.
    HostName
);

/// A string that is not a valid [`Name`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected {}, found {found:?}", NameError::EXPECTED)]
pub struct NameError {
    /// The rejected input.
    pub found: String,
}

impl NameError {
    /// What a name must look like, worded for people.
    pub const EXPECTED: &'static str =
        "a name of lowercase letters, digits and '-' starting with a letter or digit (at most 63 characters)";
}

impl Name {
    /// Parses a name, rejecting anything outside `[a-z0-9][a-z0-9-]*` or longer than 63 characters.
    pub fn parse(s: &str) -> Result<Name, NameError> {
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if first_ok && rest_ok && s.len() <= MAX_NAME_LEN {
            Ok(Name(s.to_owned()))
        } else {
            Err(NameError { found: s.to_owned() })
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Lets maps keyed by `Name` be queried with a `&str`; ordering and hashing match `str`'s.
impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Name::parse(s)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Name::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_digits_and_dashes() {
        for ok in ["a", "0", "api", "self-monitor", "env-1", "9lives", "a-", "a--b"] {
            assert_eq!(Name::parse(ok).map(|n| n.to_string()), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn length_limit_is_63() {
        let max = "a".repeat(63);
        assert!(Name::parse(&max).is_ok());
        assert!(Name::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "-api", "Api", "API", "a_b", "a.b", "a b", "é", "api\n"] {
            assert!(Name::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn error_names_what_was_found() {
        let err = Name::parse("Foo_1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected a name of lowercase letters, digits and '-' starting with a letter or digit \
             (at most 63 characters), found \"Foo_1\""
        );
    }

    #[test]
    fn serde_round_trip_validates() {
        let name: Name = serde_json::from_str("\"env-1\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"env-1\"");
        assert!(serde_json::from_str::<Name>("\"Env-1\"").is_err());
        assert_eq!("ops".parse::<Name>().unwrap().as_str(), "ops");
    }

    #[test]
    fn kinds_of_names_share_the_syntax_and_compare_with_text() {
        let env: EnvName = serde_json::from_str("\"env-1\"").unwrap();
        assert_eq!((env.as_str(), env == "env-1", env.to_string()), ("env-1", true, "env-1".to_string()));
        assert!(serde_json::from_str::<ProductName>("\"Monitor\"").is_err());
        assert_eq!(ComponentName::parse("a_b").unwrap_err(), Name::parse("a_b").unwrap_err());
        let map: std::collections::BTreeMap<HostName, u8> = [(HostName::parse("node1").unwrap(), 1)].into();
        assert_eq!(map.get("node1"), Some(&1), "looked up by &str");
    }
}
