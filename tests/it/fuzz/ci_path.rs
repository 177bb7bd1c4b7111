//! The CI template path target: the request path of an `include: remote:` URL,
//! `GET /ci/v1/<project path>/<template>.yml`, sent raw (no client-side normalisation) to a running Tao
//! over one kept-alive connection. The path is split and parsed by the `/ci/v1` handler
//! (`src/http/ci.rs`, private) with `TemplateName::parse` and `ProjectPath::parse`; HTTP is its only
//! entry point.
//!
//! An input is the path after `/ci/v1/`; bytes a request line cannot carry are percent-encoded, `%`
//! is sent as it is (so broken escapes reach the server). Properties: every request is answered (a
//! panicking handler drops the connection) and never with a 5xx; the status is what the documented
//! rules give for the percent-decoded path (no `<project>/<name>.yml` shape: 404; a bad template name or
//! project path, or a path that is no UTF-8: 400; not in the catalog: 404); a 200 carries exactly what
//! `CiTemplates::render` makes of that project and template, and never for a project path with an empty,
//! `.` or `..` segment; whatever the parsers accept reads back as itself.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

use proptest::prelude::*;
use tao::catalog::{Catalog, ProjectPath};
use tao::ci_templates::{CiError, CiTemplates, RenderRequest, TemplateName};

use super::mutate;

/// The fixture directory of this target.
pub const TARGET: &str = "ci_path";

/// Tao's external URL in these tests (written into the templates).
pub const PUBLIC_URL: &str = "https://tao.example";

/// Longest path sent (longer inputs are cut): far below any request-line limit.
const MAX_PATH: usize = 2048;

/// Pieces of template paths, for generated paths and mutations.
const TOKENS: &[&str] = &[
    "monitor",
    "api",
    "ops",
    "agent",
    "graph",
    "self-monitor",
    "release",
    "sql",
    "nope",
    "component",
    "product-release",
    "cci",
    "Component",
    "comp_onent",
    ".yml",
    ".sh",
    ".json",
    "/",
    "//",
    ".",
    "..",
    "/../",
    "%2f",
    "%2F",
    "%2e",
    "%2e%2e",
    "%00",
    "%ff",
    "%c3%a9",
    "%",
    "%zz",
    "%2",
    "cci.sh",
    "?",
    "#",
    " ",
    "é",
    "\u{0}",
    "\\",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

/// Bytes sent as they are: unreserved, sub-delimiters, `:`, `@`, `/` and `%`.
fn sent_as_is(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b)
}

/// The path as sent: bytes a request line cannot carry percent-encoded.
fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input {
        if sent_as_is(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decoding as a server does it: `%XX` with two hex digits is a byte, any other `%` stays.
fn decode(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(high), Some(low)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The example catalog's projects, and near misses.
const PROJECTS: &[&str] = &[
    "monitor/api",
    "monitor/ops",
    "monitor/agent",
    "monitor/graph",
    "monitor/self-monitor",
    "monitor/release",
    "monitor/sql",
    "monitor/api/sub",
    "Monitor/api",
    "monitor",
];

/// `text` with some of its bytes percent-encoded (`flags` says which, upper or lower case hex).
fn escaped(text: &str, flags: &[u8]) -> String {
    let mut out = String::new();
    for (i, b) in text.bytes().enumerate() {
        match flags.get(i).copied().unwrap_or(0) {
            1 => out.push_str(&format!("%{b:02X}")),
            2 => out.push_str(&format!("%{b:02x}")),
            _ => out.push(char::from(b)),
        }
    }
    out
}

fn path() -> impl Strategy<Value = Vec<u8>> {
    let names = proptest::sample::select(&TOKENS[..10]);
    let templates = proptest::sample::select(vec!["component", "product-release", "cci", "nope", "Component"]);
    let extensions = proptest::sample::select(vec![".yml", ".yml", ".sh", ""]);
    let shaped = (proptest::collection::vec(names, 1..4), templates.clone(), extensions.clone())
        .prop_map(|(segments, template, ext)| format!("{}/{template}{ext}", segments.join("/")));
    let real = (proptest::sample::select(PROJECTS), templates, extensions)
        .prop_map(|(project, template, ext)| format!("{project}/{template}{ext}"));
    let flags = proptest::collection::vec(prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)], 0..48);
    let encoded = (real.clone(), flags).prop_map(|(path, flags)| escaped(&path, &flags));
    prop_oneof![
        3 => real,
        2 => encoded,
        2 => shaped,
        3 => proptest::collection::vec(proptest::sample::select(TOKENS), 0..10).prop_map(|t| t.concat()),
        1 => "[a-z0-9./%-]{0,40}",
        1 => proptest::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
    ]
    .prop_map(String::into_bytes)
}

/// Generated paths, and mutations of the committed ones.
pub fn strategy(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![2 => mutate::mutations(seeds, TOKENS, &[]), 3 => path()]
}

/// What the documented rules say a path gets: a status, and for 200 the body.
fn expected(templates: &CiTemplates, catalog: &Catalog, raw: &str) -> (u16, Option<String>) {
    if raw.is_empty() {
        return (404, None);
    }
    if raw == "cci.sh" {
        return (400, None); // the legacy script's own route, without its query
    }
    let Ok(path) = String::from_utf8(decode(raw)) else { return (400, None) };
    let Some((project, file)) = path.rsplit_once('/') else { return (404, None) };
    let Some(stem) = file.strip_suffix(".yml") else { return (404, None) };
    let (Ok(name), Ok(project)) = (TemplateName::parse(stem), ProjectPath::parse(project)) else {
        return (400, None);
    };
    match templates.render(catalog, "fuzz", &RenderRequest::yaml(&name, project)) {
        Ok(rendered) => (200, Some(rendered.body.to_string())),
        Err(CiError::UnknownTemplate { .. } | CiError::UnknownProject { .. }) => (404, None),
        Err(CiError::Catalog { .. }) => (422, None),
        Err(_) => (500, None),
    }
}

/// One kept-alive HTTP/1.1 connection to Tao, reopened when the server closes it.
struct Connection {
    stream: TcpStream,
}

/// The answer to one request.
struct Answer {
    status: u16,
    body: Vec<u8>,
    keep_alive: bool,
}

impl Connection {
    fn open(addr: &str) -> Result<Connection, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connecting to Tao at {addr}: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Connection { stream })
    }

    fn get(&mut self, target: &str) -> Result<Answer, String> {
        let request = format!("GET {target} HTTP/1.1\r\nHost: tao\r\n\r\n");
        self.stream.write_all(request.as_bytes()).map_err(|e| format!("sending: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the server closed the connection without an answer".to_owned()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("no answer: {e}")),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or(format!("no status line in {head:?}"))?;
        let (mut length, mut keep_alive) = (0usize, true);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().map_err(|_| format!("content-length {value:?}"))?,
                "connection" => keep_alive = !value.trim().eq_ignore_ascii_case("close"),
                "transfer-encoding" => return Err(format!("a chunked answer: {head:?}")),
                _ => {}
            }
        }
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < length {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the server closed the connection in the body".to_owned()),
                Ok(n) => body.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("reading the body: {e}")),
            }
        }
        body.truncate(length);
        Ok(Answer { status, body, keep_alive })
    }
}

/// A running Tao's `/ci/v1`, and what its answers are compared with.
pub struct Server {
    addr: String,
    templates: CiTemplates,
    catalog: Catalog,
    connection: Mutex<Option<Connection>>,
}

impl Server {
    /// Talks to Tao at `base` (`http://127.0.0.1:PORT`), which serves `catalog` with the embedded
    /// templates and [`PUBLIC_URL`].
    pub fn new(base: &str, catalog: Catalog) -> Server {
        let templates = CiTemplates::load(None, Some(PUBLIC_URL)).expect("embedded templates load");
        Server { addr: base.trim_start_matches("http://").to_owned(), templates, catalog, connection: Mutex::new(None) }
    }

    /// GET `target`; a kept-alive connection the server closed meanwhile is reopened once.
    fn get(&self, target: &str) -> Result<Answer, String> {
        let mut slot = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let reused = slot.is_some();
        let mut connection = match slot.take() {
            Some(c) => c,
            None => Connection::open(&self.addr)?,
        };
        let answer = match connection.get(target) {
            Err(_) if reused => {
                connection = Connection::open(&self.addr)?;
                connection.get(target)
            }
            other => other,
        }?;
        if answer.keep_alive {
            *slot = Some(connection);
        }
        Ok(answer)
    }

    /// Checks one input (see the module header).
    pub fn check(&self, input: &[u8]) -> Result<(), String> {
        let raw = encode(&input[..input.len().min(MAX_PATH)]);
        let decoded = String::from_utf8(decode(&raw)).ok();
        if let Some(decoded) = &decoded {
            parsers_read_back(decoded)?;
        }
        let target = format!("/ci/v1/{raw}");
        let answer = self.get(&target).map_err(|e| format!("GET {target}: {e}"))?;
        let (status, body) = expected(&self.templates, &self.catalog, &raw);
        if answer.status >= 500 || answer.status != status {
            let said = String::from_utf8_lossy(&answer.body);
            return Err(format!("GET {target}: {} ({said}), expected {status}", answer.status));
        }
        if let Some(body) = body {
            if answer.body != body.as_bytes() {
                return Err(format!("GET {target}: 200 with another text than CiTemplates::render gives"));
            }
            let project = decoded.as_deref().and_then(|d| d.rsplit_once('/')).map(|(p, _)| p).unwrap_or_default();
            if project.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
                return Err(format!("GET {target}: served a template for the project path {project:?}"));
            }
        }
        Ok(())
    }
}

/// What `ProjectPath::parse` and `TemplateName::parse` accept reads back as itself, and a project path
/// has two or more segments, none empty, `.` or `..`; a template name is one plain word.
fn parsers_read_back(decoded: &str) -> Result<(), String> {
    let Some((project, file)) = decoded.rsplit_once('/') else { return Ok(()) };
    for candidate in [project, decoded] {
        if let Ok(p) = ProjectPath::parse(candidate) {
            let segments: Vec<&str> = p.as_str().split('/').collect();
            if p.as_str() != candidate
                || p.to_string() != candidate
                || segments.len() < 2
                || segments.iter().any(|s| s.is_empty() || *s == "." || *s == "..")
            {
                return Err(format!("ProjectPath::parse accepted {candidate:?} as {p:?}"));
            }
        }
    }
    let stem = file.strip_suffix(".yml").unwrap_or(file);
    if let Ok(name) = TemplateName::parse(stem) {
        if name.as_str() != stem || stem.is_empty() || stem.contains(['/', '.', '\\']) {
            return Err(format!("TemplateName::parse accepted {stem:?} as {name:?}"));
        }
    }
    Ok(())
}
