//! The Discord double: Discord's REST API as Tao uses it, behind a real HTTP server on 127.0.0.1:0, and
//! a signer that sends interactions to Tao the way Discord does (Ed25519 over timestamp + raw body).
//!
//! The double serves `/api/v10` like Discord (and like serenity's proxy mode): edits of an interaction's
//! original response, follow-ups, channel messages and their edits, the bulk overwrite of a guild's
//! commands, and for the gateway path `GET /gateway` (the gateway double's `ws://` URL) and interaction
//! callbacks (`204`, like Discord). It checks `Authorization: Bot <BOT_TOKEN>`, the
//! `User-Agent: DiscordBot (…)` Discord requires, JSON bodies and the 2000-character content limit,
//! records every request, and records anything else as unexpected (tests assert there is none): a second
//! callback for one interaction, and, once [`DiscordDouble::require_callbacks`] is on (interactions
//! from the gateway), an edit or follow-up of an interaction Tao has not answered yet (Discord: 10015
//! Unknown Webhook).
//! An edit of the original response may instead upload files the way Discord documents ("Uploading
//! Files"): a `multipart/form-data` body of `payload_json` and `files[n]` parts, each listed in the
//! payload's `attachments` by id `n` (`multipart_edit`); the files are recorded too.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

use crate::support::multipart::Part;

/// The bot token Tao is configured with.
pub const BOT_TOKEN: &str = "discord-bot-token-for-tests";
/// The application id of test interactions (the real envelope's).
pub const APPLICATION: &str = "1380486651436073092";

/// One request the double received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `PATCH`, `POST`, `PUT`.
    pub method: String,
    /// The path, `/api/v10/…`.
    pub path: String,
    /// The JSON body.
    pub body: Value,
}

/// One file uploaded with a request.
#[derive(Debug, Clone)]
pub struct RecordedFile {
    /// The request's path.
    pub path: String,
    /// The part's name, `files[0]`.
    pub part: String,
    /// Its file name.
    pub file_name: String,
    /// Its `Content-Type`.
    pub content_type: Option<String>,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

#[derive(Default)]
struct Book {
    requests: Vec<Recorded>,
    unexpected: Vec<String>,
    next_id: u64,
    files: Vec<RecordedFile>,
    /// What `GET /gateway` answers (`None`: not served).
    gateway_url: Option<String>,
    /// Interaction tokens with a callback received.
    called_back: Vec<String>,
    /// Interaction tokens whose callback was acknowledged.
    answered: Vec<String>,
    /// Edits and follow-ups need an acknowledged callback first.
    require_callbacks: bool,
    /// How long a callback takes to be acknowledged.
    callback_latency: Duration,
}

/// A running Discord double.
pub struct DiscordDouble {
    /// The API base to configure Tao with (`http://127.0.0.1:PORT/api/v10`).
    pub url: String,
    book: Arc<Mutex<Book>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for DiscordDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl DiscordDouble {
    /// Starts the double.
    pub async fn start() -> DiscordDouble {
        let book: Arc<Mutex<Book>> = Arc::default();
        let app = Router::new().fallback(serve).with_state(book.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the Discord double");
        let url = format!("http://{}/api/v10", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.expect("Discord double") });
        DiscordDouble { url, book, server }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.book().requests.clone()
    }

    /// Requests the double does not serve or refused (wrong auth, bad body, too long).
    pub fn unexpected(&self) -> Vec<String> {
        self.book().unexpected.clone()
    }

    /// The bodies of the edits of interaction `token`'s original response, in order.
    pub fn edits(&self, token: &str) -> Vec<Value> {
        let path = format!("/api/v10/webhooks/{APPLICATION}/{token}/messages/@original");
        self.requests().into_iter().filter(|r| r.method == "PATCH" && r.path == path).map(|r| r.body).collect()
    }

    /// The bodies of follow-up messages of interaction `token`.
    pub fn followups(&self, token: &str) -> Vec<Value> {
        let path = format!("/api/v10/webhooks/{APPLICATION}/{token}");
        self.requests().into_iter().filter(|r| r.method == "POST" && r.path == path).map(|r| r.body).collect()
    }

    /// The files uploaded with the edits of interaction `token`'s original response, in order.
    pub fn files(&self, token: &str) -> Vec<RecordedFile> {
        let path = format!("/api/v10/webhooks/{APPLICATION}/{token}/messages/@original");
        self.book().files.iter().filter(|f| f.path == path).cloned().collect()
    }

    /// Serves `GET /api/v10/gateway` with `url` (the gateway double's), as Discord's `{"url": …}`.
    pub fn serve_gateway(&self, url: &str) {
        self.book().gateway_url = Some(url.to_string());
    }

    /// From now on an edit or follow-up of an interaction whose callback was not acknowledged yet is
    /// unexpected (and refused), as on Discord for interactions that came over the gateway; a callback is
    /// acknowledged `latency` after it arrived (Discord is not on loopback), so a client that edits
    /// without waiting for the acknowledgement is caught.
    pub fn require_callbacks(&self, latency: Duration) {
        let mut book = self.book();
        book.require_callbacks = true;
        book.callback_latency = latency;
    }

    /// The bodies of the callbacks of interaction `id`, in order.
    pub fn callbacks(&self, id: &str) -> Vec<Value> {
        let prefix = format!("/api/v10/interactions/{id}/");
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.starts_with(&prefix) && r.path.ends_with("/callback"))
            .map(|r| r.body)
            .collect()
    }

    /// The content of the last edit of `token`'s response ("" before any).
    pub fn last_content(&self, token: &str) -> String {
        self.edits(token).last().and_then(|b| b["content"].as_str().map(str::to_string)).unwrap_or_default()
    }
}

/// What a request leads to: an answer now, or a callback Discord acknowledges after its latency.
enum Step {
    Answer(Response),
    Callback(String, Recorded, Duration),
}

async fn serve(
    State(book): State<Arc<Mutex<Book>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let multipart = match crate::support::multipart::is_multipart(&headers) {
        true => Some(crate::support::multipart::parts(&headers, body.clone()).await),
        false => None,
    };
    let step = respond(&mut book.lock().unwrap_or_else(|e| e.into_inner()), method, uri, headers, body, multipart);
    match step {
        Step::Answer(r) => r,
        Step::Callback(token, recorded, latency) => {
            tokio::time::sleep(latency).await;
            let mut book = book.lock().unwrap_or_else(|e| e.into_inner());
            book.answered.push(token);
            book.requests.push(recorded);
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

fn respond(
    book: &mut Book,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    multipart: Option<Result<Vec<Part>, String>>,
) -> Step {
    let path = uri.path().to_string();
    let what = format!("{method} {path}");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bot {BOT_TOKEN}")) {
        book.unexpected.push(format!("{what}: missing or wrong Authorization"));
        return Step::Answer(
            (StatusCode::UNAUTHORIZED, Json(json!({"message": "401: Unauthorized", "code": 0}))).into_response(),
        );
    }
    let agent = headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !agent.starts_with("DiscordBot (") {
        book.unexpected.push(format!("{what}: User-Agent {agent:?} is not DiscordBot (…)"));
    }
    if method == Method::GET && path == "/api/v10/gateway" && body.is_empty() {
        if let Some(url) = book.gateway_url.clone() {
            book.requests.push(Recorded { method: method.to_string(), path, body: Value::Null });
            return Step::Answer(Json(json!({ "url": url })).into_response());
        }
    }
    if let Some(parts) = multipart {
        if let ["webhooks", _, token, "messages", "@original"] =
            path.trim_start_matches("/api/v10/").split('/').collect::<Vec<_>>().as_slice()
        {
            if book.require_callbacks && !book.answered.iter().any(|t| t == token) {
                book.unexpected
                    .push(format!("{method} webhooks/…: the interaction was not answered (no callback yet)"));
                return Step::Answer(
                    (StatusCode::NOT_FOUND, Json(json!({"message": "Unknown Webhook", "code": 10015}))).into_response(),
                );
            }
        }
        return Step::Answer(multipart_edit(book, &method, path, parts));
    }
    let json_type = headers.get("content-type").and_then(|v| v.to_str().ok()) == Some("application/json");
    let Ok(value) =
        serde_json::from_slice::<Value>(&body).map_err(|_| ()).and_then(|v| json_type.then_some(v).ok_or(()))
    else {
        book.unexpected.push(format!("{what}: body is not application/json"));
        let empty = json!({"message": "Cannot send an empty message", "code": 50006});
        return Step::Answer((StatusCode::BAD_REQUEST, Json(empty)).into_response());
    };
    if value["content"].as_str().is_some_and(|c| c.chars().count() > 2000) {
        book.unexpected.push(format!("{what}: content longer than 2000 characters"));
        return Step::Answer(
            (StatusCode::BAD_REQUEST, Json(json!({"message": "Invalid Form Body", "code": 50035}))).into_response(),
        );
    }
    let segments: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
    if let ("PATCH", ["webhooks", _, token, "messages", "@original"]) | ("POST", ["webhooks", _, token]) =
        (method.as_str(), segments.as_slice())
    {
        if book.require_callbacks && !book.answered.iter().any(|t| t == token) {
            book.unexpected.push(format!("{method} webhooks/…: the interaction was not answered (no callback yet)"));
            return Step::Answer(
                (StatusCode::NOT_FOUND, Json(json!({"message": "Unknown Webhook", "code": 10015}))).into_response(),
            );
        }
    }
    book.next_id += 1;
    let id = format!("{}", 1_400_000_000_000_000_000u64 + book.next_id);
    let answer = match (method.as_str(), segments.as_slice()) {
        ("POST", ["interactions", _, token, "callback"]) => {
            let token = token.to_string();
            if book.called_back.contains(&token) {
                book.unexpected.push(format!("{method} interactions/…/callback: a second callback"));
                let already = json!({"message": "Interaction has already been acknowledged.", "code": 40060});
                return Step::Answer((StatusCode::BAD_REQUEST, Json(already)).into_response());
            }
            if !matches!(value["type"].as_u64(), Some(1 | 4..=9)) {
                book.unexpected.push(format!("{method} interactions/…/callback: no callback type"));
            }
            book.called_back.push(token.clone());
            let recorded = Recorded { method: method.to_string(), path, body: value };
            return Step::Callback(token, recorded, book.callback_latency);
        }
        ("PATCH", ["webhooks", _, _, "messages", "@original"]) | ("POST", ["webhooks", _, _]) => {
            json!({ "id": id, "content": value["content"], "components": value["components"] })
        }
        ("POST", ["channels", channel, "messages"]) | ("PATCH", ["channels", channel, "messages", _]) => {
            json!({ "id": segments.get(3).map_or(id.clone(), |m| m.to_string()), "channel_id": channel, "content": value["content"] })
        }
        ("PUT", ["applications", app, "guilds", guild, "commands"]) => {
            let stored: Vec<Value> = value
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, c)| {
                    let mut c = c.clone();
                    c["id"] = json!(format!("{id}{i}"));
                    c["application_id"] = json!(app);
                    c["guild_id"] = json!(guild);
                    c
                })
                .collect();
            Value::Array(stored)
        }
        _ => {
            book.unexpected.push(format!("{what}: not served by the double"));
            return Step::Answer(
                (StatusCode::NOT_FOUND, Json(json!({"message": "404: Not Found", "code": 0}))).into_response(),
            );
        }
    };
    book.requests.push(Recorded { method: method.to_string(), path, body: value });
    Step::Answer(Json(answer).into_response())
}

/// Discord's limit on an upload without boosts, in bytes.
const MAX_UPLOAD: usize = 10 * 1024 * 1024;

/// A `multipart/form-data` request: only an edit of an interaction's original response may be one. Its
/// `payload_json` must be a JSON object within the content limit, every `files[n]` part must carry a file
/// name and be listed in the payload's `attachments` as `{id: n, filename}`, and every new attachment
/// listed must have its part (on an edit, Discord drops files the list does not keep).
fn multipart_edit(book: &mut Book, method: &Method, path: String, parts: Result<Vec<Part>, String>) -> Response {
    let what = format!("{method} {path}");
    let segments: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
    let checked =
        if !(method == Method::PATCH && matches!(segments.as_slice(), ["webhooks", _, _, "messages", "@original"])) {
            Err("multipart/form-data is accepted only on PATCH /webhooks/{app}/{token}/messages/@original".to_string())
        } else {
            parts.and_then(|parts| check_upload(&path, parts))
        };
    let (payload, files) = match checked {
        Ok(ok) => ok,
        Err(why) => {
            book.unexpected.push(format!("{what}: {why}"));
            return (StatusCode::BAD_REQUEST, Json(json!({"message": "Invalid Form Body", "code": 50035})))
                .into_response();
        }
    };
    book.next_id += 1;
    let id = 1_400_000_000_000_000_000u64 + book.next_id;
    let attachments: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let aid = id * 10 + i as u64;
            json!({ "id": aid.to_string(), "filename": f.file_name, "size": f.bytes.len(), "content_type": f.content_type,
                    "url": format!("https://cdn.discordapp.com/attachments/{id}/{aid}/{}", f.file_name) })
        })
        .collect();
    let answer = json!({ "id": id.to_string(), "content": payload["content"], "components": payload["components"],
                         "attachments": attachments });
    book.requests.push(Recorded { method: method.to_string(), path, body: payload });
    book.files.extend(files);
    Json(answer).into_response()
}

/// The payload and the files of an upload, or what breaks Discord's "Uploading Files" contract.
fn check_upload(path: &str, parts: Vec<Part>) -> Result<(Value, Vec<RecordedFile>), String> {
    let mut payload = None;
    let mut files: Vec<RecordedFile> = Vec::new();
    for part in parts {
        if part.name == "payload_json" {
            if payload.is_some() || part.file_name.is_some() {
                return Err("payload_json twice, or as a file".into());
            }
            let v: Value = serde_json::from_slice(&part.bytes).map_err(|e| format!("payload_json is not JSON: {e}"))?;
            payload = Some(v);
            continue;
        }
        let n = part.name.strip_prefix("files[").and_then(|r| r.strip_suffix(']'));
        if n.is_none_or(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!("unexpected part {:?} (expected payload_json or files[n])", part.name));
        }
        if files.iter().any(|f| f.part == part.name) {
            return Err(format!("part {:?} twice", part.name));
        }
        let file_name = part.file_name.filter(|f| !f.is_empty()).ok_or(format!("{} has no filename", part.name))?;
        if part.bytes.is_empty() || part.bytes.len() > MAX_UPLOAD {
            return Err(format!("{}: {} bytes (expected 1 to {MAX_UPLOAD})", part.name, part.bytes.len()));
        }
        let path = path.to_string();
        files.push(RecordedFile {
            path,
            part: part.name,
            file_name,
            content_type: part.content_type,
            bytes: part.bytes,
        });
    }
    let payload = payload.filter(Value::is_object).ok_or("no payload_json object")?;
    if payload["content"].as_str().is_some_and(|c| c.chars().count() > 2000) {
        return Err("content longer than 2000 characters".into());
    }
    let listed = payload["attachments"].as_array().cloned().unwrap_or_default();
    let id_of = |a: &Value| match &a["id"] {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    for a in &listed {
        let id = id_of(a).ok_or(format!("attachment without an id: {a}"))?;
        let file = files
            .iter()
            .find(|f| f.part == format!("files[{id}]"))
            .ok_or(format!("attachment {id} has no files[{id}] part"))?;
        if a["filename"].as_str().is_some_and(|name| name != file.file_name) {
            return Err(format!("attachment {id} is named {} but files[{id}] is {:?}", a["filename"], file.file_name));
        }
    }
    for f in &files {
        if !listed.iter().any(|a| id_of(a).is_some_and(|id| f.part == format!("files[{id}]"))) {
            return Err(format!("{} is not listed in attachments (an edit would drop it)", f.part));
        }
    }
    Ok((payload, files))
}

/// Discord's side of the signature: a key pair Tao trusts the public half of.
pub struct DiscordKey {
    key: SigningKey,
}

impl DiscordKey {
    /// A fresh random key.
    pub fn generate() -> DiscordKey {
        DiscordKey { key: SigningKey::from_bytes(&rand::random::<[u8; 32]>()) }
    }

    /// The public key as Tao's `TAO_DISCORD_PUBLIC_KEY` (hex).
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    /// The `X-Signature-Ed25519` of `body` sent at `timestamp`.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        hex::encode(self.key.sign(&[timestamp.as_bytes(), body].concat()).to_bytes())
    }
}
