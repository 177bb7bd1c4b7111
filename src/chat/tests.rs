//! Table ("snapshot") tests of the chat grammar: accepted lines with their canonical form, rejected lines
//! with their exact message, comments, quoting, help, and the round trip of every command.

use std::collections::BTreeSet;

use super::*;
use crate::catalog::{Name, ProjectPath, Version};

fn canonical(line: &str) -> String {
    match parse_line(line) {
        Ok(command) => command.to_string(),
        Err(e) => panic!("{line:?} rejected: {e}"),
    }
}

fn message(line: &str) -> String {
    match parse_line(line) {
        Ok(command) => panic!("{line:?} accepted as {command:?}"),
        Err(e) => e.to_string(),
    }
}

fn name<N: From<Name>>(s: &str) -> N {
    Name::parse(s).unwrap().into()
}

fn version(s: &str) -> Version {
    Version::parse(s).unwrap()
}

const DEPLOY_USAGE: &str = "(usage: deploy <product> <version> <env> [components…] [force] [confirm])";

#[test]
fn accepted_lines_and_their_canonical_form() {
    let cases = [
        ("deploy monitor 1.1.0 env-1", "deploy monitor 1.1.0 env-1"),
        ("deploy monitor v1.1.0 env-1", "deploy monitor 1.1.0 env-1"),
        ("  deploy\tmonitor   1.1.0 env-1  ", "deploy monitor 1.1.0 env-1"),
        ("deploy monitor 1.1.0 env-1 ops,sql api force", "deploy monitor 1.1.0 env-1 ops sql api force"),
        ("deploy monitor 1.1.0 env-1 ops ops,", "deploy monitor 1.1.0 env-1 ops"),
        ("deploy monitor 1.1.0 prod confirm force", "deploy monitor 1.1.0 prod force confirm"),
        ("deploy 'monitor' \"1.2.0-rc.1\" env-1", "deploy monitor 1.2.0-rc.1 env-1"),
        ("rollback env-1", "rollback env-1"),
        ("rollback env-1 to v1.0.0", "rollback env-1 to 1.0.0"),
        ("rollback prod confirm to 1.0.0", "rollback prod to 1.0.0 confirm"),
        ("status env-1", "status env-1"),
        ("releases monitor", "releases monitor"),
        ("release monitor v1.2.0", "release monitor 1.2.0"),
        ("release create monitor 1.2.0 ops=1.2.0 sql=v1.0.0", "release create monitor 1.2.0 ops=1.2.0 sql=1.0.0"),
        ("task 42", "task 42"),
        ("task #42", "task 42"),
        ("cancel #7", "cancel 7"),
        ("deploy-component api feature-x-3f2a1c env-1", "deploy-component api feature-x-3f2a1c env-1"),
        ("freeze env-1 maintenance", "freeze env-1 maintenance"),
        ("freeze env-1 \"db migration\"", "freeze env-1 \"db migration\""),
        ("freeze env-1 'db migration'", "freeze env-1 \"db migration\""),
        ("freeze env-1 db migration  tonight ", "freeze env-1 \"db migration  tonight\""),
        ("freeze env-1 it's release day", "freeze env-1 \"it's release day\""),
        ("freeze env-1 \"unclosed reason", "freeze env-1 \"\\\"unclosed reason\""),
        ("unfreeze env-1", "unfreeze env-1"),
        ("policy monitor/api", "policy monitor/api"),
        ("policy group/sub.group/my_project", "policy group/sub.group/my_project"),
        ("envs", "envs"),
        ("help", "help"),
        ("help deploy", "help deploy"),
        ("help release create", "help release create"),
        ("help deploy-component", "help deploy-component"),
        ("dora monitor", "dora monitor"),
        ("dora monitor days 7 env prod", "dora monitor env prod days 7"),
        ("dora monitor days 030", "dora monitor days 30"),
        ("dora monitor env env-1 days 366", "dora monitor env env-1 days 366"),
        ("cfd monitor", "cfd monitor"),
        ("cfd monitor version v1.1.0", "cfd monitor version 1.1.0"),
        ("cfd monitor days 1 version 1.2.0-rc.1", "cfd monitor version 1.2.0-rc.1 days 1"),
        ("help dora", "help dora"),
    ];
    for (line, expected) in cases {
        assert_eq!(canonical(line), expected, "{line:?}");
    }
}

#[test]
fn accepted_lines_have_typed_fields() {
    assert_eq!(
        parse_line("deploy monitor v1.1.0 env-1 ops force").unwrap(),
        Command::Deploy {
            product: name("monitor"),
            version: version("1.1.0"),
            env: name("env-1"),
            components: vec![name("ops")],
            force: true,
            confirm: false,
        }
    );
    assert_eq!(
        parse_line("release create monitor 1.2.0 ops=1.2.0 sql=1.0.0").unwrap(),
        Command::ReleaseCreate {
            product: name("monitor"),
            version: version("1.2.0"),
            components: vec![(name("ops"), version("1.2.0")), (name("sql"), version("1.0.0"))],
        }
    );
    assert_eq!(parse_line("task #42").unwrap(), Command::Task { id: TaskId::new(42).unwrap() });
    let freeze = parse_line("freeze env-1 \"db migration\"").unwrap();
    assert_eq!(freeze, Command::Freeze { env: name("env-1"), reason: "db migration".into() });
    assert_eq!(parse_line("freeze env-1 db migration").unwrap(), freeze);
    assert_eq!(parse_line("help release create").unwrap(), Command::Help { command: Some(CommandName::ReleaseCreate) });
}

#[test]
fn rejected_lines_say_what_was_expected() {
    let name_expected =
        "a name of lowercase letters, digits and '-' starting with a letter or digit (at most 63 characters)";
    let version_expected = "a semantic version like 1.2.3 (a leading v is allowed)";
    let verbs =
        "deploy, rollback, status, releases, release, task, cancel, deploy-component, freeze, unfreeze, policy, \
                 envs, dora, cfd, help";
    let cases = [
        ("", format!("missing command (expected one of: {verbs})")),
        ("deplyo monitor 1.1.0 env-1", r#"unknown command "deplyo" (did you mean "deploy"?)"#.to_owned()),
        ("Status env-1", r#"unknown command "Status" (did you mean "status"?)"#.to_owned()),
        ("rollbak env-1", r#"unknown command "rollbak" (did you mean "rollback"?)"#.to_owned()),
        ("xyzzy", format!(r#"unknown command "xyzzy" (expected one of: {verbs})"#)),
        ("deploy monitor 1.1.0", format!("deploy: missing <env> {DEPLOY_USAGE}")),
        ("deploy", format!("deploy: missing <product> {DEPLOY_USAGE}")),
        ("deploy monitor 1.2 env-1", format!(r#"deploy: invalid <version>: expected {version_expected}, found "1.2""#)),
        ("deploy Monitor 1.1.0 env-1", format!(r#"deploy: invalid <product>: expected {name_expected}, found "Monitor""#)),
        ("deploy monitor 1.1.0 env-1 --force", format!(r#"deploy: unexpected "--force" (did you mean "force"?) {DEPLOY_USAGE}"#)),
        ("deploy monitor 1.1.0 prod Confirm", format!(r#"deploy: unexpected "Confirm" (did you mean "confirm"?) {DEPLOY_USAGE}"#)),
        ("deploy monitor 1.1.0 env-1 ops_x", format!(r#"deploy: invalid <component>: expected {name_expected}, found "ops_x""#)),
        // Found by fuzzing: a flag inside a comma list is neither the flag nor a component.
        ("deploy monitor 1.1.0 env-1 ops,force", format!(r#"deploy: unexpected "ops,force" (did you mean "force"?) {DEPLOY_USAGE}"#)),
        (
            "rollback env-1 too 1.0.0",
            r#"rollback: unexpected "too" (did you mean "to"?) (usage: rollback <env> [to <version>] [confirm])"#.into(),
        ),
        (
            "rollback env-1 1.0.0",
            r#"rollback: unexpected "1.0.0" (did you mean "to 1.0.0"?) (usage: rollback <env> [to <version>] [confirm])"#
                .into(),
        ),
        ("rollback env-1 to", "rollback: missing <version> (usage: rollback <env> [to <version>] [confirm])".into()),
        ("status env-1 extra", r#"status: unexpected "extra" (usage: status <env>)"#.into()),
        ("status", "status: missing <env> (usage: status <env>)".into()),
        ("releases", "releases: missing <product> (usage: releases <product>)".into()),
        (
            "release crate monitor 1.2.0 ops=1.2.0",
            r#"release: unexpected "crate" (did you mean "create"?) (usage: release <product> <version>)"#.into(),
        ),
        ("release monitor", "release: missing <version> (usage: release <product> <version>)".into()),
        (
            "release create monitor 1.2.0",
            "release create: missing <component>=<version>… \
             (usage: release create <product> <version> <component>=<version>…)"
                .into(),
        ),
        (
            "release create monitor 1.2.0 ops",
            r#"release create: invalid <component>=<version>: expected a component and its version like ops=1.2.0, found "ops""#
                .into(),
        ),
        (
            "release create monitor 1.2.0 ops=1.2",
            format!(r#"release create: invalid version of "ops": expected {version_expected}, found "1.2""#),
        ),
        ("release create monitor 1.2.0 ops=1.2.0 ops=1.3.0", r#"release create: component "ops" given twice"#.into()),
        ("task abc", r#"task: invalid <task>: expected a task id like 42 or #42, found "abc""#.into()),
        ("task 0", r#"task: invalid <task>: expected a task id like 42 or #42, found "0""#.into()),
        ("cancel -1", r#"cancel: invalid <task>: expected a task id like 42 or #42, found "-1""#.into()),
        ("cancel", "cancel: missing <task> (usage: cancel <task>)".into()),
        (
            "deploy-component api a:b env-1",
            format!(r#"deploy-component: invalid <image-tag>: expected {}, found "a:b""#, ImageTag::EXPECTED),
        ),
        ("freeze env-1", "freeze: missing <reason…> (usage: freeze <env> <reason…>)".into()),
        ("freeze env-1 \"  \"", "freeze: missing <reason…> (usage: freeze <env> <reason…>)".into()),
        ("freeze", "freeze: missing <env> (usage: freeze <env> <reason…>)".into()),
        (
            "policy monitor",
            r#"policy: invalid <project>: expected a GitLab project path like "group/project" (segments of letters, digits, '_', '.' and '-'), found "monitor""#
                .into(),
        ),
        ("envs now", r#"envs: unexpected "now" (usage: envs)"#.into()),
        ("help deplyo", r#"help: unknown command "deplyo" (did you mean "deploy"?)"#.into()),
        ("help release foo", r#"help: unexpected "foo" (usage: help [command])"#.into()),
        ("dora", "dora: missing <product> (usage: dora <product> [env <env>] [days <days>])".into()),
        (
            "dora monitor prod",
            r#"dora: unexpected "prod" (did you mean "env prod"?) (usage: dora <product> [env <env>] [days <days>])"#
                .into(),
        ),
        (
            "dora monitor 7",
            r#"dora: unexpected "7" (did you mean "days 7"?) (usage: dora <product> [env <env>] [days <days>])"#.into(),
        ),
        (
            "dora monitor --env prod",
            r#"dora: unexpected "--env" (did you mean "env"?) (usage: dora <product> [env <env>] [days <days>])"#.into(),
        ),
        (
            "dora monitor env prod env test",
            r#"dora: unexpected "env" (usage: dora <product> [env <env>] [days <days>])"#.into(),
        ),
        ("dora monitor env", "dora: missing <env> (usage: dora <product> [env <env>] [days <days>])".into()),
        ("dora monitor days 0", r#"dora: invalid <days>: expected a number of days from 1 to 366, found "0""#.into()),
        ("dora monitor days 367", r#"dora: invalid <days>: expected a number of days from 1 to 366, found "367""#.into()),
        ("dora monitor days -7", r#"dora: invalid <days>: expected a number of days from 1 to 366, found "-7""#.into()),
        ("dora monitor days 1e2", r#"dora: invalid <days>: expected a number of days from 1 to 366, found "1e2""#.into()),
        ("dora Monitor", format!(r#"dora: invalid <product>: expected {name_expected}, found "Monitor""#)),
        (
            "cfd monitor 1.1.0",
            r#"cfd: unexpected "1.1.0" (did you mean "version 1.1.0"?) (usage: cfd <product> [version <version>] [days <days>])"#
                .into(),
        ),
        (
            "cfd monitor iteration 1.1.0",
            r#"cfd: unexpected "iteration" (usage: cfd <product> [version <version>] [days <days>])"#.into(),
        ),
        ("cfd monitor version 1.1", format!(r#"cfd: invalid <version>: expected {version_expected}, found "1.1""#)),
        (
            "cfd monitor version 1.1.0 days",
            "cfd: missing <days> (usage: cfd <product> [version <version>] [days <days>])".into(),
        ),
        ("deploy \"monitor 1.1.0 env-1", "unterminated \" quote opened at column 8".into()),
        ("status 'env-1", "unterminated ' quote opened at column 8".into()),
    ];
    for (line, expected) in cases {
        assert_eq!(message(line), expected, "{line:?}");
    }
}

#[test]
fn errors_expose_their_parts() {
    let e = parse_line("deplyo monitor").unwrap_err();
    assert_eq!((e.command, e.suggestion(), e.usage()), (None, Some("deploy"), None));
    let e = parse_line("deploy monitor 1.1.0").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::Missing { arg: "<env>" });
    assert_eq!(e.usage(), Some(CommandName::Deploy.spec().usage));
}

#[test]
fn tokenizer_quotes_and_escapes() {
    let reason = |line: &str| match parse_line(line).unwrap() {
        Command::Freeze { reason, .. } => reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(reason(r#"freeze env-1 "say \"hi\" and \\ and \n""#), r#"say "hi" and \ and \n"#);
    assert_eq!(reason(r#"freeze env-1 'single \"keeps\" backslashes'"#), r#"single \"keeps\" backslashes"#);
    assert_eq!(reason(r#"freeze env-1 "it's""#), "it's");
    assert_eq!(reason(r#"freeze env-1 "two" words"#), r#""two" words"#);
    // Pieces join into one word; an empty quoted word is a word.
    assert_eq!(canonical(r#"dep"loy" mon'itor' 1.1.0 "env-1""#), "deploy monitor 1.1.0 env-1");
    assert_eq!(
        message("status ''"),
        format!(r#"status: invalid <env>: expected {}, found """#, crate::catalog::NameError::EXPECTED)
    );
    assert_eq!(quote("plain"), "plain");
    assert_eq!(quote(""), r#""""#);
    assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
}

#[test]
fn separate_words_from_cli_and_discord() {
    let words = |ws: &[&str]| ws.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let create = parse_args("release", &words(&["create", "monitor", "1.2.0", "ops=1.2.0"])).unwrap();
    assert_eq!(create.to_string(), "release create monitor 1.2.0 ops=1.2.0");
    assert_eq!(parse_args("release create", &words(&["monitor", "1.2.0", "ops=1.2.0"])).unwrap(), create);
    let freeze = parse_args("freeze", &words(&["env-1", "db", "migration"])).unwrap();
    assert_eq!(freeze, Command::Freeze { env: name("env-1"), reason: "db migration".into() });
    // Words are never re-tokenized: a space inside one stays.
    let freeze = parse_args("freeze", &words(&["env-1", "it's a \"test\""])).unwrap();
    assert_eq!(freeze, Command::Freeze { env: name("env-1"), reason: "it's a \"test\"".into() });
    assert_eq!(parse_named(CommandName::Status, &["env-1"]).unwrap(), Command::Status { env: name("env-1") });
    // Found by fuzzing: Discord's `/release product:create` would name a command its line cannot read back.
    let e = parse_named(CommandName::Release, &["create", "1.1.0"]).unwrap_err().to_string();
    assert!(e.starts_with("release: invalid <product>: expected a product name other than create"), "{e}");
    assert_eq!(
        parse_args("deplyo", &[]).unwrap_err().to_string(),
        r#"unknown command "deplyo" (did you mean "deploy"?)"#
    );
}

/// One command of every kind, built directly (not parsed), including awkward reasons.
fn samples() -> Vec<Command> {
    let mut all = vec![
        Command::Deploy {
            product: name("monitor"),
            version: version("v1.1.0"),
            env: name("env-1"),
            components: vec![],
            force: false,
            confirm: false,
        },
        Command::Deploy {
            product: name("monitor"),
            version: version("2.0.0-rc.1+build.5"),
            env: name("prod"),
            components: vec![name("ops"), name("sql")],
            force: true,
            confirm: true,
        },
        Command::Rollback { env: name("env-1"), to: None, confirm: false },
        Command::Rollback { env: name("prod"), to: Some(version("1.0.0")), confirm: true },
        Command::Status { env: name("env-1") },
        Command::Releases { product: name("monitor") },
        Command::Release { product: name("monitor"), version: version("1.2.0") },
        Command::ReleaseCreate {
            product: name("monitor"),
            version: version("1.2.0"),
            components: vec![(name("sql"), version("1.0.0")), (name("ops"), version("1.2.0"))],
        },
        Command::Task { id: TaskId::new(42).unwrap() },
        Command::Cancel { id: TaskId::new(i64::MAX).unwrap() },
        Command::DeployComponent {
            component: name("api"),
            image_tag: ImageTag::parse("feature-x_3f2a1c.1").unwrap(),
            env: name("env-1"),
        },
        Command::DeployComponent {
            component: name("api"),
            image_tag: ImageTag::parse(&format!("sha256:{}", "a".repeat(64))).unwrap(),
            env: name("env-1"),
        },
        Command::Unfreeze { env: name("env-1") },
        Command::Policy { project: ProjectPath::parse("group/sub/project").unwrap() },
        Command::Envs,
        Command::Dora { product: name("monitor"), env: None, days: None },
        Command::Dora { product: name("monitor"), env: Some(name("prod")), days: Days::parse("366") },
        Command::Cfd { product: name("monitor"), version: None, days: Days::parse("1") },
        Command::Cfd { product: name("monitor"), version: Some(version("2.0.0-rc.1+build.5")), days: None },
        Command::Help { command: None },
    ];
    for reason in ["x", "db migration", "it's \"quoted\" \\ here", "  padded  ", "'", "\"", "tab\there", "émoji ✓"] {
        all.push(Command::Freeze { env: name("env-1"), reason: reason.into() });
    }
    all.extend(CommandName::ALL.iter().map(|&n| Command::Help { command: Some(n) }));
    all
}

#[test]
fn every_command_round_trips_through_its_canonical_line() {
    let samples = samples();
    let covered: BTreeSet<CommandName> = samples.iter().map(Command::name).collect();
    assert_eq!(covered, CommandName::ALL.iter().copied().collect(), "a command has no sample");
    for command in samples {
        let line = command.to_string();
        assert_eq!(parse_line(&line).as_ref(), Ok(&command), "{line:?}");
        let comment = format!("Please:\r\n/tao {line}\r\n");
        let found = parse_comment(&comment);
        assert_eq!(found.len(), 1, "{comment:?}");
        assert_eq!(found[0].result.as_ref(), Ok(&command), "{comment:?}");
    }
}

#[test]
fn help_is_generated_for_every_command() {
    let overview = help(None);
    let mut names = BTreeSet::new();
    for &command in CommandName::ALL {
        let spec = command.spec();
        assert!(names.insert(spec.name), "{} twice", spec.name);
        assert!(!spec.summary.is_empty() && spec.args.iter().all(|a| !a.help.is_empty()), "{}", spec.name);
        let generated: Vec<&str> = std::iter::once(spec.name).chain(spec.args.iter().map(|a| a.syntax)).collect();
        assert_eq!(spec.usage, generated.join(" "), "usage of {} disagrees with its args", spec.name);
        let page = help(Some(command));
        assert!(page.contains(spec.usage) && page.contains(spec.summary), "{page}");
        for arg in spec.args {
            assert!(page.contains(arg.help), "{page}");
        }
        assert!(overview.contains(&format!("- `{}`: {}", spec.usage, spec.summary)), "{overview}");
        assert_eq!(parse_line(&format!("help {command}")), Ok(Command::Help { command: Some(command) }));
        assert_eq!(command.to_string(), spec.name);
    }
    assert_eq!(
        help(Some(CommandName::Status)),
        "`status <env>`\n\nShows what runs in an environment: components, versions, since when, health.\n\n\
         - `<env>`: the environment, e.g. env-1\n"
    );
    assert!(help(Some(CommandName::Envs)).ends_with("Lists the environments with their tier and freeze.\n"));
}
