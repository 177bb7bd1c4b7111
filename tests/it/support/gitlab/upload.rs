//! The double's Markdown uploads (`POST /projects/:id/uploads`): a `multipart/form-data` body with one
//! `file` part, answered 201 with GitLab's documented fields (`id`, `alt`, `url`, `full_path`,
//! `markdown`), and the file kept in the project for tests to read back.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::world::{guard, message, refuse, REPORTER};
use super::Shared;
use crate::support::multipart;

/// A file uploaded to a project.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The secret in its URL (32 hex digits).
    pub secret: String,
    /// Its file name.
    pub file_name: String,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The Markdown GitLab answered with.
    pub markdown: String,
}

const IMAGES: [&str; 6] = ["png", "jpg", "jpeg", "gif", "webp", "svg"];

/// `POST /projects/:id/uploads`.
pub(super) async fn upload(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Bytes,
) -> Response {
    let parts = match multipart::is_multipart(&headers) {
        true => multipart::parts(&headers, body).await,
        false => Err("not multipart/form-data".to_string()),
    };
    let mut w = world.lock().unwrap();
    let (_, at) = guarded!(w, headers, project, REPORTER);
    let parts = match parts {
        Ok(parts) => parts,
        Err(why) => {
            w.unexpected.push(format!("POST /projects/{project}/uploads: {why}"));
            return message(StatusCode::BAD_REQUEST, "400 Bad request - file is missing");
        }
    };
    let files: Vec<&multipart::Part> = parts.iter().filter(|p| p.name == "file").collect();
    let [file] = files.as_slice() else {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "file is missing" }))).into_response();
    };
    let Some(file_name) = file.file_name.clone().filter(|f| !f.is_empty() && !f.contains('/')) else {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "file is invalid" }))).into_response();
    };
    let id = w.next_id();
    let secret = format!("{:032x}", rand::random::<u128>());
    let p = &mut w.projects[at];
    let url = format!("/uploads/{secret}/{file_name}");
    let (alt, ext) = file_name.rsplit_once('.').unwrap_or((&file_name, ""));
    let markdown = match IMAGES.contains(&ext.to_ascii_lowercase().as_str()) {
        true => format!("![{alt}]({url})"),
        false => format!("[{file_name}]({url})"),
    };
    let answer = json!({ "id": id, "alt": alt, "url": url, "full_path": format!("/-/project/{}{url}", p.id),
                         "markdown": markdown });
    let content_type = file.content_type.clone();
    p.uploads.push(Upload { secret, file_name, content_type, bytes: file.bytes.clone(), markdown });
    (StatusCode::CREATED, Json(answer)).into_response()
}
