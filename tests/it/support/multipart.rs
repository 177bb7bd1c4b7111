//! Reading `multipart/form-data` bodies in the doubles, with `multer` (the parser axum's `Multipart` is
//! built on): every part with its name, file name, content type and bytes, or why the body is not
//! well-formed multipart. The doubles decide what the parts must be.

use axum::body::Bytes;
use axum::http::HeaderMap;

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename` of its `Content-Disposition`, if any.
    pub file_name: Option<String>,
    /// Its `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Whether the request says its body is `multipart/form-data`.
pub fn is_multipart(headers: &HeaderMap) -> bool {
    content_type(headers).is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"))
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get("content-type").and_then(|v| v.to_str().ok())
}

/// The parts of a `multipart/form-data` body, in order; an error names what is wrong (no boundary, a
/// part without a name, a malformed body).
pub async fn parts(headers: &HeaderMap, body: Bytes) -> Result<Vec<Part>, String> {
    let ct = content_type(headers).unwrap_or_default();
    let boundary = multer::parse_boundary(ct).map_err(|e| format!("Content-Type {ct:?}: {e}"))?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Ok(out),
            Err(e) => return Err(format!("malformed multipart body: {e}")),
        };
        let name = field.name().map(str::to_string).ok_or("a part without a name")?;
        let file_name = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(|m| m.essence_str().to_string());
        let bytes = field.bytes().await.map_err(|e| format!("part {name:?}: {e}"))?.to_vec();
        out.push(Part { name, file_name, content_type, bytes });
    }
}
