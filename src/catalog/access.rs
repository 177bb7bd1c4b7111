//! Who may do what. A person acting from chat (Discord, or a GitLab MR comment) has a role, mapped from
//! configuration (Discord users and roles) or from their GitLab project role, checked against an
//! environment's protection; the chat dispatcher and the deploy services use the same rule. An API token
//! has a [`Scope`]. Domain: no I/O (the role map of `TAO_DISCORD_ROLES` is `crate::config::discord_roles`,
//! tokens are stored by `crate::store::token`).

use std::fmt;
use std::str::FromStr;

use super::{Environment, Tier};

/// GitLab's role levels, which chat roles use too (a Discord user is mapped to one of them).
pub mod level {
    /// No role: may do nothing.
    pub const NONE: u32 = 0;
    /// May read (status, releases, tasks, help).
    pub const REPORTER: u32 = 20;
    /// May deploy to dev/test, freeze them, create product versions.
    pub const DEVELOPER: u32 = 30;
    /// May deploy to production.
    pub const MAINTAINER: u32 = 40;
    /// Owner.
    pub const OWNER: u32 = 50;
}

/// The word for a level.
pub fn level_name(level: u32) -> &'static str {
    match level {
        l if l >= level::OWNER => "owner",
        l if l >= level::MAINTAINER => "maintainer",
        l if l >= level::DEVELOPER => "developer",
        l if l >= level::REPORTER => "reporter",
        l if l > 0 => "guest",
        _ => "no role",
    }
}

fn level_of_name(name: &str) -> Option<u32> {
    match name {
        "reporter" => Some(level::REPORTER),
        "developer" => Some(level::DEVELOPER),
        "maintainer" => Some(level::MAINTAINER),
        "owner" => Some(level::OWNER),
        _ => None,
    }
}

/// Someone acting from chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatUser {
    /// `discord` or `gitlab` (MR comments), or `web` (signed in to the web console).
    pub transport: &'static str,
    /// Their id on that transport.
    pub id: String,
    /// Their name (for replies and the audit log).
    pub name: String,
    /// Their role level (GitLab's numbers: 20 reporter, 30 developer, 40 maintainer).
    pub level: u32,
    /// Named roles beyond the level (`release-manager`, …), from configuration.
    pub roles: Vec<String>,
}

impl fmt::Display for ChatUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.name)
    }
}

impl ChatUser {
    /// Someone on `transport` with no role yet.
    pub fn new(transport: &'static str, id: impl Into<String>, name: impl Into<String>) -> ChatUser {
        ChatUser { transport, id: id.into(), name: name.into(), level: level::NONE, roles: Vec::new() }
    }

    /// Whether they hold role `name`: a level word (`developer`) at or below their level, or a named role.
    pub fn has_role(&self, name: &str) -> bool {
        match level_of_name(name) {
            Some(l) => self.level >= l,
            None => self.roles.iter().any(|r| r == name),
        }
    }

    /// What they hold, in words (`developer`, `developer + release-manager`).
    pub fn describe_roles(&self) -> String {
        let mut parts = vec![level_name(self.level).to_string()];
        parts.extend(self.roles.iter().cloned());
        parts.join(" + ")
    }

    /// Whether they may change `env` (deploy, roll back, cancel, freeze): any of the environment's
    /// `protection.roles` when it lists some; else maintainer for production (or `protection.deploy:
    /// admin`), developer for every other tier. The error names what is missing.
    pub fn may_change(&self, env_name: &str, env: &Environment) -> Result<(), String> {
        let roles = env.protection.as_ref().map(|p| p.roles.as_slice()).unwrap_or_default();
        if !roles.is_empty() {
            if roles.iter().any(|r| self.has_role(r)) {
                return Ok(());
            }
            return Err(format!(
                "changing {env_name} needs one of the roles {}; {self} is {}",
                roles.join(", "),
                self.describe_roles()
            ));
        }
        let admin = env.protection.as_ref().and_then(|p| p.deploy.as_deref()) == Some("admin");
        let needed = if env.tier == Tier::Prod || admin { level::MAINTAINER } else { level::DEVELOPER };
        if self.level >= needed {
            Ok(())
        } else {
            Err(format!(
                "changing {env_name} (tier {}) needs the {} role; {self} is {}",
                env.tier.as_str(),
                level_name(needed),
                self.describe_roles()
            ))
        }
    }
}

/// What a token may do. Ordered: each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read the catalog, product versions, environments.
    Read,
    /// Also create product versions and (later) deploy.
    Deploy,
    /// Also change the catalog and administer Tao.
    Admin,
}

impl Scope {
    /// The scope's name as stored and typed.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Scope::Read),
            "deploy" => Ok(Scope::Deploy),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("expected one of read, deploy, admin, found {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn user(level: u32, roles: &[&str]) -> ChatUser {
        let roles = roles.iter().map(|r| r.to_string()).collect();
        ChatUser { transport: "discord", id: "1".into(), name: "ann".into(), level, roles }
    }

    #[test]
    fn environments_need_the_role_their_tier_or_protection_names() {
        let yaml = "products: {}\ncomponents: {}\nenvironments:\n  t: { tier: test, hosts: [{ name: h, address: 10.0.0.1, user: d }] }\n  p: { tier: prod, hosts: [{ name: h, address: 10.0.0.2, user: d }] }\n  r:\n    tier: prod\n    hosts: [{ name: h, address: 10.0.0.3, user: d }]\n    protection: { roles: [release-manager] }\n  a:\n    tier: staging\n    hosts: [{ name: h, address: 10.0.0.4, user: d }]\n    protection: { deploy: admin }\n";
        let c = Catalog::from_yaml(yaml).unwrap();
        let env = |n: &str| c.environments.iter().find(|(k, _)| k.as_str() == n).unwrap().1;
        let (dev, maint, rm) = (user(30, &[]), user(40, &[]), user(30, &["release-manager"]));
        assert!(dev.may_change("t", env("t")).is_ok());
        assert_eq!(
            dev.may_change("p", env("p")).unwrap_err(),
            "changing p (tier prod) needs the maintainer role; discord:ann is developer"
        );
        assert!(maint.may_change("p", env("p")).is_ok());
        assert!(dev.may_change("a", env("a")).is_err() && maint.may_change("a", env("a")).is_ok());
        assert!(rm.may_change("r", env("r")).is_ok());
        assert_eq!(
            maint.may_change("r", env("r")).unwrap_err(),
            "changing r needs one of the roles release-manager; discord:ann is maintainer"
        );
        assert!(user(20, &[]).may_change("t", env("t")).is_err());
        assert_eq!(rm.describe_roles(), "developer + release-manager");
        assert!(maint.has_role("developer") && !dev.has_role("maintainer"));
    }
}
