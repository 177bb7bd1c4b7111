//! A small evaluator of GitLab CI `rules:` for the tests: which jobs of a rendered template run, and
//! how (`on_success` or `manual`), for a pipeline with given CI variables.
//!
//! Supports what the templates use and a little more: `extends` (hidden jobs, merged in order),
//! `rules:` with `if:` expressions (`$VAR`, `==`, `!=`, `=~ /re/`, `!~`, `&&`, `||`, parentheses,
//! quoted strings, `null`) and `when: on_success | manual | never`. A job without `rules` runs
//! (`on_success`). Unsupported syntax panics, so a template cannot silently outgrow the tests.

use std::collections::{BTreeMap, HashMap};

use serde_yaml_ng::{Mapping, Value};

/// CI variables of one pipeline.
pub type Vars = HashMap<&'static str, String>;

/// Job name → `when` of every job that would be in the pipeline.
pub fn jobs(yaml: &str, vars: &Vars) -> BTreeMap<String, String> {
    let root: Mapping = serde_yaml_ng::from_str(yaml).expect("template is YAML");
    let reserved = ["stages", "variables", "include", "workflow", "default", "image", "services", "before_script"];
    let mut out = BTreeMap::new();
    for (key, _) in &root {
        let name = key.as_str().expect("job names are strings");
        if name.starts_with('.') || reserved.contains(&name) {
            continue;
        }
        let job = resolved(&root, name);
        if let Some(when) = job_when(&job, vars) {
            out.insert(name.to_owned(), when);
        }
    }
    out
}

/// The job with its `extends` merged in (later entries and the job itself win, key by key).
fn resolved(root: &Mapping, name: &str) -> Mapping {
    let job = root.get(name).and_then(Value::as_mapping).unwrap_or_else(|| panic!("{name} is a mapping")).clone();
    let parents: Vec<String> = match job.get("extends") {
        None => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(items)) => items.iter().map(|i| i.as_str().expect("extends names").to_owned()).collect(),
        Some(other) => panic!("unsupported extends {other:?}"),
    };
    let mut merged = Mapping::new();
    for parent in parents {
        for (k, v) in resolved(root, &parent) {
            merged.insert(k, v);
        }
    }
    for (k, v) in job {
        merged.insert(k, v);
    }
    merged
}

fn job_when(job: &Mapping, vars: &Vars) -> Option<String> {
    let Some(rules) = job.get("rules") else {
        return Some(job.get("when").and_then(Value::as_str).unwrap_or("on_success").to_owned());
    };
    for rule in rules.as_sequence().expect("rules is a list") {
        let rule = rule.as_mapping().expect("a rule is a mapping");
        for key in rule.keys() {
            let key = key.as_str().unwrap_or_default();
            assert!(matches!(key, "if" | "when" | "allow_failure"), "unsupported rule key {key}");
        }
        let matched = match rule.get("if") {
            None => true,
            Some(expr) => eval(expr.as_str().expect("if is a string"), vars),
        };
        if matched {
            let when = rule.get("when").and_then(Value::as_str).unwrap_or("on_success");
            assert!(matches!(when, "on_success" | "manual" | "never"), "unsupported when {when}");
            return (when != "never").then(|| when.to_owned());
        }
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Var(String),
    Str(String),
    Regex(String),
    Null,
    Op(&'static str),
    Open,
    Close,
}

fn tokenize(expr: &str) -> Vec<Token> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let rest: String = chars[i..].iter().take(2).collect();
        if c.is_whitespace() {
            i += 1;
        } else if c == '$' {
            let start = i + 1;
            i = start;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Var(chars[start..i].iter().collect()));
        } else if c == '"' || c == '\'' {
            let start = i + 1;
            i = start;
            while chars[i] != c {
                i += 1;
            }
            out.push(Token::Str(chars[start..i].iter().collect()));
            i += 1;
        } else if c == '/' {
            let start = i + 1;
            i = start;
            while chars[i] != '/' || chars[i - 1] == '\\' {
                i += 1;
            }
            out.push(Token::Regex(chars[start..i].iter().collect::<String>().replace("\\/", "/")));
            i += 1;
        } else if let Some(op) = ["==", "!=", "=~", "!~", "&&", "||"].into_iter().find(|op| rest == *op) {
            out.push(Token::Op(op));
            i += 2;
        } else if c == '(' || c == ')' {
            out.push(if c == '(' { Token::Open } else { Token::Close });
            i += 1;
        } else if chars[i..].iter().collect::<String>().starts_with("null") {
            out.push(Token::Null);
            i += 4;
        } else {
            panic!("unsupported expression syntax at {:?} in {expr:?}", &chars[i..].iter().collect::<String>());
        }
    }
    out
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    vars: &'a Vars,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Token {
        self.at += 1;
        self.tokens[self.at - 1].clone()
    }

    fn or(&mut self) -> bool {
        let mut value = self.and();
        while self.peek() == Some(&Token::Op("||")) {
            self.next();
            let right = self.and();
            value = value || right;
        }
        value
    }

    fn and(&mut self) -> bool {
        let mut value = self.comparison();
        while self.peek() == Some(&Token::Op("&&")) {
            self.next();
            let right = self.comparison();
            value = value && right;
        }
        value
    }

    fn operand(&mut self) -> Option<String> {
        match self.next() {
            Token::Var(name) => self.vars.get(name.as_str()).cloned(),
            Token::Str(s) => Some(s),
            Token::Null => None,
            other => panic!("expected a value, found {other:?}"),
        }
    }

    fn comparison(&mut self) -> bool {
        if self.peek() == Some(&Token::Open) {
            self.next();
            let value = self.or();
            assert_eq!(self.next(), Token::Close, "unbalanced parentheses");
            return value;
        }
        let left = self.operand();
        match self.peek() {
            Some(Token::Op(op @ ("==" | "!="))) => {
                let op = *op;
                self.next();
                let right = self.operand();
                (left == right) == (op == "==")
            }
            Some(Token::Op(op @ ("=~" | "!~"))) => {
                let op = *op;
                self.next();
                let Token::Regex(pattern) = self.next() else { panic!("=~ needs a /regex/") };
                let re = regex::Regex::new(&pattern).expect("valid regex");
                let matched = left.as_deref().is_some_and(|l| re.is_match(l));
                matched == (op == "=~")
            }
            _ => left.is_some_and(|v| !v.is_empty()),
        }
    }
}

/// Evaluates one `if:` expression.
pub fn eval(expr: &str, vars: &Vars) -> bool {
    let mut parser = Parser { tokens: tokenize(expr), at: 0, vars };
    let value = parser.or();
    assert_eq!(parser.at, parser.tokens.len(), "trailing tokens in {expr:?}");
    value
}

#[test]
fn the_evaluator_follows_gitlab_semantics() {
    let vars: Vars = [("A", "feature/x".to_owned()), ("E", String::new())].into_iter().collect();
    assert!(eval("$A", &vars));
    assert!(!eval("$E", &vars), "an empty variable is false");
    assert!(!eval("$MISSING", &vars));
    assert!(eval("$A =~ /^feature\\//", &vars));
    assert!(eval("$A !~ /^release\\//", &vars));
    assert!(eval("$A == \"feature/x\" && ($MISSING || $A)", &vars));
    assert!(eval("$MISSING == null", &vars));
    assert!(!eval("$A != 'feature/x'", &vars));
}
