//! Who a person is to Tao: `TAO_DISCORD_ROLES` maps Discord user ids and Discord role ids to a level
//! (reporter, developer, maintainer, owner) and named roles; an interaction's user and their guild roles
//! become a [`ChatUser`]. The same file maps GitLab usernames (`gitlab_users`) and GitLab groups by full
//! path (`gitlab_groups`) for the web console's sign-in with GitLab, so chat and the console share one
//! mapping and one rule.
//!
//! Owns the format of that configuration (YAML or JSON, inline or in a file) and the rule that combines
//! entries: the highest level of the user's own entry and of each of their roles' entries, and the union
//! of named roles. Someone no entry names gets level 0, and dispatch denies them with the reason.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::catalog::access::{level, ChatUser};

/// One entry: a level word, or a level with named roles.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum Entry {
    Level(String),
    Full {
        #[serde(default)]
        level: Option<String>,
        #[serde(default)]
        roles: Vec<String>,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    users: BTreeMap<String, Entry>,
    #[serde(default)]
    roles: BTreeMap<String, Entry>,
    #[serde(default)]
    gitlab_users: BTreeMap<String, Entry>,
    #[serde(default)]
    gitlab_groups: BTreeMap<String, Entry>,
}

/// A resolved entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Grant {
    level: u32,
    roles: Vec<String>,
}

/// Discord users and roles mapped to Tao levels and named roles (`TAO_DISCORD_ROLES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMap {
    users: BTreeMap<String, Grant>,
    roles: BTreeMap<String, Grant>,
    gitlab_users: BTreeMap<String, Grant>,
    gitlab_groups: BTreeMap<String, Grant>,
}

fn level_of(word: &str) -> Option<u32> {
    match word {
        "reporter" => Some(level::REPORTER),
        "developer" => Some(level::DEVELOPER),
        "maintainer" => Some(level::MAINTAINER),
        "owner" => Some(level::OWNER),
        _ => None,
    }
}

fn grant(path: &str, entry: Entry) -> Result<Grant, String> {
    let (word, roles) = match entry {
        Entry::Level(word) => (Some(word), Vec::new()),
        Entry::Full { level, roles } => (level, roles),
    };
    let level = match word {
        None => level::NONE,
        Some(w) => level_of(&w)
            .ok_or_else(|| format!("{path}.level: expected reporter, developer, maintainer or owner, found {w:?}"))?,
    };
    Ok(Grant { level, roles })
}

fn snowflake(path: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{path}: expected a Discord id (digits, e.g. \"410212090289192960\"), found {id:?}"));
    }
    Ok(())
}

impl RoleMap {
    /// Parses the configuration: inline JSON/YAML when it starts with `{`, else the path of a YAML or
    /// JSON file. Errors name the entry and what was expected.
    pub fn load(value: &str) -> Result<RoleMap, String> {
        let value = value.trim();
        if value.starts_with('{') {
            return RoleMap::parse(value);
        }
        let text = std::fs::read_to_string(value).map_err(|e| format!("cannot read {value}: {e}"))?;
        RoleMap::parse(&text).map_err(|e| format!("{value}: {e}"))
    }

    /// Parses YAML or JSON text: `{users: {ID: LEVEL | {level, roles}}, roles: {ROLE_ID: …}}`.
    pub fn parse(text: &str) -> Result<RoleMap, String> {
        let file: File = serde_yaml_ng::from_str(text).map_err(|e| {
            format!("expected {{users: {{<discord user id>: <level> | {{level, roles}}}}, roles: {{<discord role id>: …}}}}: {e}")
        })?;
        let mut map = RoleMap::default();
        for (id, entry) in file.users {
            let path = format!("users.{id}");
            snowflake(&path, &id)?;
            map.users.insert(id, grant(&path, entry)?);
        }
        for (id, entry) in file.roles {
            let path = format!("roles.{id}");
            snowflake(&path, &id)?;
            map.roles.insert(id, grant(&path, entry)?);
        }
        for (name, entry) in file.gitlab_users {
            let path = format!("gitlab_users.{name}");
            gitlab_path(&path, &name, false)?;
            map.gitlab_users.insert(name, grant(&path, entry)?);
        }
        for (name, entry) in file.gitlab_groups {
            let path = format!("gitlab_groups.{name}");
            gitlab_path(&path, &name, true)?;
            map.gitlab_groups.insert(name, grant(&path, entry)?);
        }
        Ok(map)
    }

    /// Whether no Discord user or role is mapped (everyone in Discord is denied).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.roles.is_empty()
    }

    /// Whether no GitLab user or group is mapped (everyone signing in with GitLab may only read, or
    /// nothing without `TAO_OPEN_READ`).
    pub fn gitlab_is_empty(&self) -> bool {
        self.gitlab_users.is_empty() && self.gitlab_groups.is_empty()
    }

    /// The web console user for GitLab user `id` (`username`) who belongs to the groups `groups` (full
    /// paths): the highest level of their own entry and of each of their groups' entries (a group's entry
    /// covers its subgroups), and the union of named roles. Audited as `web:USERNAME`.
    pub fn gitlab_user(&self, id: i64, username: &str, groups: &[String]) -> ChatUser {
        let in_group = |g: &str| groups.iter().any(|m| m == g || m.starts_with(&format!("{g}/")));
        let grants = self
            .gitlab_users
            .get(username)
            .into_iter()
            .chain(self.gitlab_groups.iter().filter(|(g, _)| in_group(g)).map(|(_, grant)| grant));
        combine(ChatUser::new("web", id.to_string(), username), grants)
    }

    /// The chat user for Discord user `id` (shown as `name`) holding guild roles `member_roles`.
    pub fn user(&self, id: &str, name: &str, member_roles: &[String]) -> ChatUser {
        let grants = self.users.get(id).into_iter().chain(member_roles.iter().filter_map(|r| self.roles.get(r)));
        combine(ChatUser::new("discord", id, name), grants)
    }
}

fn combine<'a>(mut user: ChatUser, grants: impl Iterator<Item = &'a Grant>) -> ChatUser {
    for g in grants {
        user.level = user.level.max(g.level);
        for r in &g.roles {
            if !user.roles.contains(r) {
                user.roles.push(r.clone());
            }
        }
    }
    user
}

fn gitlab_path(path: &str, name: &str, nested: bool) -> Result<(), String> {
    let segment_ok =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let ok = if nested { name.split('/').all(segment_ok) } else { segment_ok(name) };
    if ok {
        Ok(())
    } else {
        let what = if nested { "a GitLab group's full path (e.g. \"acme/devs\")" } else { "a GitLab username" };
        Err(format!("{path}: expected {what}, found {name:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_roles_combine_to_the_highest_level_and_all_named_roles() {
        let map = RoleMap::parse(
            "users:\n  \"111\": developer\n  \"222\": {level: reporter, roles: [release-manager]}\nroles:\n  \"900\": maintainer\n  \"901\": {roles: [oncall]}\n",
        )
        .unwrap();
        let u = map.user("111", "ann", &[]);
        assert_eq!((u.level, u.roles.len(), u.transport), (level::DEVELOPER, 0, "discord"));
        let u = map.user("222", "bob", &["900".into(), "901".into()]);
        assert_eq!(u.level, level::MAINTAINER);
        assert_eq!(u.roles, ["release-manager", "oncall"]);
        assert_eq!(map.user("333", "eve", &["7".into()]).level, level::NONE);
        let json = RoleMap::parse(r#"{"users": {"111": "maintainer"}}"#).unwrap();
        assert_eq!(json.user("111", "ann", &[]).level, level::MAINTAINER);
    }

    #[test]
    fn gitlab_users_and_groups_map_the_web_console_sign_in() {
        let map = RoleMap::parse(
            "gitlab_users:\n  ann: maintainer\ngitlab_groups:\n  acme: reporter\n  acme/ops: {level: developer, roles: [release-manager]}\n",
        )
        .unwrap();
        assert!(map.is_empty() && !map.gitlab_is_empty(), "Discord and GitLab entries are apart");
        let u = map.gitlab_user(7, "ann", &[]);
        assert_eq!(
            (u.level, u.transport, u.id.as_str(), u.to_string()),
            (level::MAINTAINER, "web", "7", "web:ann".into())
        );
        let u = map.gitlab_user(8, "bob", &["acme/ops/oncall".into()]);
        assert_eq!(
            (u.level, u.roles.clone()),
            (level::DEVELOPER, vec!["release-manager".to_string()]),
            "subgroups inherit"
        );
        assert_eq!(map.gitlab_user(9, "eve", &["acme".into()]).level, level::REPORTER);
        assert_eq!(map.gitlab_user(10, "mal", &["acmexyz".into()]).level, level::NONE, "a prefix is not a parent");
    }

    #[test]
    fn bad_entries_are_named() {
        let e = RoleMap::parse("users: {\"111\": boss}").unwrap_err();
        assert!(e.contains("users.111.level") && e.contains("\"boss\""), "{e}");
        let e = RoleMap::parse("users: {ann: developer}").unwrap_err();
        assert!(e.contains("users.ann") && e.contains("Discord id"), "{e}");
        let e = RoleMap::parse("people: {}").unwrap_err();
        assert!(e.contains("people"), "{e}");
        let e = RoleMap::parse("gitlab_groups: {\"acme//x\": developer}").unwrap_err();
        assert!(e.contains("gitlab_groups.acme//x") && e.contains("full path"), "{e}");
        let e = RoleMap::load("/nonexistent/roles.yaml").unwrap_err();
        assert!(e.contains("cannot read /nonexistent/roles.yaml"), "{e}");
    }
}
