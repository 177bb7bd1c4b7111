//! Slash commands: one Discord application command per chat command, generated from
//! [`CommandName::ALL`] and each [`CommandSpec`](crate::chat::CommandSpec), and an application command
//! interaction read back into a [`Command`] through the chat grammar (`parse_named`), so Discord's errors
//! are the grammar's.
//!
//! Owns the mapping of a spec's arguments to options: `<x>` is a required string option `x`, `[x]` an
//! optional one, `[force]`/`[confirm]` booleans, `[to <version>]` an optional string `to` (a keyword
//! and its value), `[days <days>]` an optional integer 1 to 366, and `…` arguments take several words in
//! one string. Pure: no I/O.

use serde_json::{json, Value};

use crate::chat::{parse_named, ArgSpec, Command, CommandName, ParseError, DEPLOY_FLAGS};

/// Discord's option types Tao uses.
const STRING: u64 = 3;
const INTEGER: u64 = 4;
const BOOLEAN: u64 = 5;

/// How one argument of a spec appears as an option.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Opt {
    /// The option's name.
    name: String,
    /// Discord option type.
    kind: u64,
    required: bool,
    /// Words the option's value adds: the keyword itself (`to`) before the value.
    keyword: bool,
    /// Several whitespace-separated words.
    many: bool,
}

fn option_of(arg: &ArgSpec) -> Opt {
    let syntax = arg.syntax;
    let required = syntax.starts_with('<');
    let inner = syntax.trim_matches(|c| c == '[' || c == ']');
    let many = syntax.contains('…');
    let name: String = inner
        .trim_start_matches('<')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect::<String>()
        .to_lowercase();
    if !required && DEPLOY_FLAGS.contains(&inner) {
        return Opt { name, kind: BOOLEAN, required, keyword: false, many };
    }
    // `[to <version>]`: a keyword followed by its value.
    let keyword = !inner.starts_with('<') && inner.contains(' ');
    let kind = if inner.ends_with("<days>") { INTEGER } else { STRING };
    Opt { name, kind, required, keyword, many }
}

/// The Discord name of a command: its words joined by `-` (`release create` → `release-create`).
pub fn discord_name(name: CommandName) -> String {
    name.spec().name.replace(' ', "-")
}

fn command_of(discord: &str) -> Option<CommandName> {
    CommandName::ALL.iter().copied().find(|n| discord_name(*n) == discord)
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

/// The bulk-overwrite body of `PUT /applications/{app}/guilds/{guild}/commands`: every chat command as
/// a slash command (CHAT_INPUT) with its options. Options named `product`, `env` and `version` ask for
/// autocomplete.
pub fn definitions() -> Value {
    let commands: Vec<Value> = CommandName::ALL
        .iter()
        .map(|name| {
            let spec = name.spec();
            let options: Vec<Value> = spec
                .args
                .iter()
                .map(|a| {
                    let o = option_of(a);
                    let mut v = json!({
                        "type": o.kind, "name": o.name, "description": cut(a.help, 100), "required": o.required,
                    });
                    if o.kind == STRING && matches!(o.name.as_str(), "product" | "env" | "version") {
                        v["autocomplete"] = json!(true);
                    }
                    if o.kind == INTEGER {
                        v["min_value"] = json!(1);
                        v["max_value"] = json!(366);
                    }
                    v
                })
                .collect();
            json!({ "type": 1, "name": discord_name(*name), "description": cut(spec.summary, 100), "options": options })
        })
        .collect();
    Value::Array(commands)
}

/// Why an interaction could not become a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The slash command is not one of Tao's (registered commands are out of date).
    #[error("unknown command /{0}: run `tao discord register` to update the guild's commands")]
    Unknown(String),
    /// The grammar refused the arguments.
    #[error("{0}")]
    Parse(#[from] ParseError),
}

/// The string value of option `name` among `options` (Discord's `data.options`).
pub fn option_value<'a>(options: &'a Value, name: &str) -> Option<&'a Value> {
    options.as_array()?.iter().find(|o| o["name"] == name).map(|o| &o["value"])
}

/// Reads the `data` of an APPLICATION_COMMAND interaction into a command.
pub fn to_command(data: &Value) -> Result<Command, ConvertError> {
    let discord = data["name"].as_str().unwrap_or_default();
    let name = command_of(discord).ok_or_else(|| ConvertError::Unknown(discord.to_string()))?;
    let mut words: Vec<String> = Vec::new();
    for arg in name.spec().args {
        let o = option_of(arg);
        let Some(value) = option_value(&data["options"], &o.name) else { continue };
        match value {
            Value::Bool(true) => words.push(o.name.clone()),
            Value::Bool(false) | Value::Null => {}
            Value::String(s) if o.keyword => {
                words.push(o.name.clone());
                words.push(s.clone());
            }
            Value::Number(n) if o.keyword => {
                words.push(o.name.clone());
                words.push(n.to_string());
            }
            Value::String(s) if o.many && name != CommandName::Freeze => {
                words.extend(s.split_whitespace().map(str::to_string))
            }
            Value::String(s) => words.push(s.clone()),
            other => words.push(other.to_string()),
        }
    }
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    Ok(parse_named(name, &refs)?)
}

/// The options (name, value) a command was given, for autocomplete: the focused option's name and what
/// was typed so far, and the other options' values.
pub fn focused(data: &Value) -> Option<(String, String)> {
    let o = data["options"].as_array()?.iter().find(|o| o["focused"] == true)?;
    Some((o["name"].as_str()?.to_string(), o["value"].as_str().unwrap_or_default().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str, options: Value) -> Value {
        json!({ "type": 1, "name": name, "options": options })
    }

    #[test]
    fn every_command_becomes_a_valid_slash_command() {
        let defs = definitions();
        let defs = defs.as_array().unwrap();
        assert_eq!(defs.len(), CommandName::ALL.len());
        for d in defs {
            let name = d["name"].as_str().unwrap();
            assert!(name.len() <= 32 && name.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{name}");
            assert!(!d["description"].as_str().unwrap().is_empty());
            let options = d["options"].as_array().unwrap();
            assert!(options.len() <= 25);
            // Discord refuses a required option after an optional one.
            let firsts: Vec<bool> = options.iter().map(|o| o["required"] == true).collect();
            assert!(firsts.windows(2).all(|w| w[0] || !w[1]), "{name}: {firsts:?}");
            for o in options {
                let n = o["name"].as_str().unwrap();
                assert!(!n.is_empty() && n.len() <= 32 && n == n.to_lowercase(), "{name}: {n}");
                assert!(o["description"].as_str().unwrap().chars().count() <= 100);
            }
        }
        let deploy = defs.iter().find(|d| d["name"] == "deploy").unwrap();
        let names: Vec<&str> =
            deploy["options"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["product", "version", "env", "components", "force", "confirm"]);
        assert_eq!(deploy["options"][4]["type"], BOOLEAN);
        assert!(defs.iter().any(|d| d["name"] == "release-create"));
        let dora = defs.iter().find(|d| d["name"] == "dora").unwrap();
        assert_eq!(
            dora["options"],
            json!([
                {"type": STRING, "name": "product", "description": "the product, e.g. monitor", "required": true,
                 "autocomplete": true},
                {"type": STRING, "name": "env", "description": "only this environment; all when omitted",
                 "required": false, "autocomplete": true},
                {"type": INTEGER, "name": "days", "description": "days back from today, 1 to 366 (default 30)",
                 "required": false, "min_value": 1, "max_value": 366},
            ])
        );
        let cfd = defs.iter().find(|d| d["name"] == "cfd").unwrap();
        assert_eq!(cfd["options"][1]["name"], "version");
        assert_eq!(cfd["options"][1]["autocomplete"], true);
    }

    #[test]
    fn interactions_read_back_through_the_grammar() {
        let c = to_command(&data(
            "deploy",
            json!([{"name":"product","type":3,"value":"monitor"},{"name":"version","type":3,"value":"v1.1.0"},
                   {"name":"env","type":3,"value":"prod"},{"name":"components","type":3,"value":"api, ops"},
                   {"name":"confirm","type":5,"value":true}]),
        ))
        .unwrap();
        assert_eq!(c.to_string(), "deploy monitor 1.1.0 prod api ops confirm");
        let c = to_command(&data("rollback", json!([{"name":"env","value":"env-1"},{"name":"to","value":"1.0.0"}])));
        assert_eq!(c.unwrap().to_string(), "rollback env-1 to 1.0.0");
        let c =
            to_command(&data("freeze", json!([{"name":"env","value":"env-1"},{"name":"reason","value":"db  move"}])));
        assert!(matches!(c.unwrap(), Command::Freeze { reason, .. } if reason == "db  move"));
        let c = to_command(&data(
            "release-create",
            json!([{"name":"product","value":"monitor"},{"name":"version","value":"1.2.0"},{"name":"component","value":"ops=1.2.0 sql=1.0.0"}]),
        ));
        assert!(matches!(c.unwrap(), Command::ReleaseCreate { components, .. } if components.len() == 2));
        assert_eq!(to_command(&data("envs", json!(null))).unwrap(), Command::Envs);
        let c = to_command(&data(
            "dora",
            json!([{"name":"product","type":3,"value":"monitor"},{"name":"env","type":3,"value":"prod"},
                   {"name":"days","type":4,"value":7}]),
        ));
        assert_eq!(c.unwrap().to_string(), "dora monitor env prod days 7");
        let c = to_command(&data(
            "cfd",
            json!([{"name":"product","type":3,"value":"monitor"},{"name":"version","type":3,"value":"v1.1.0"}]),
        ));
        assert_eq!(c.unwrap().to_string(), "cfd monitor version 1.1.0");
        let e = to_command(&data("dora", json!([{"name":"product","value":"monitor"},{"name":"days","value":400}])));
        assert!(e.unwrap_err().to_string().contains("expected a number of days from 1 to 366, found \"400\""));
    }

    #[test]
    fn bad_input_gets_the_grammars_error() {
        let e =
            to_command(&data("deploy", json!([{"name":"product","value":"monitor"},{"name":"version","value":"one"}])))
                .unwrap_err()
                .to_string();
        assert!(e.starts_with("deploy:") && e.contains("<version>"), "{e}");
        let e = to_command(&data("deploy", json!([{"name":"product","value":"monitor"}]))).unwrap_err().to_string();
        assert!(e.contains("missing <version>"), "{e}");
        let e = to_command(&data("blep", json!([]))).unwrap_err().to_string();
        assert!(e.contains("unknown command /blep") && e.contains("tao discord register"), "{e}");
    }
}
