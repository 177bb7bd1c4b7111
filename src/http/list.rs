//! Lists as Tao serves them: a JSON array by default, or JSON lines (`application/x-ndjson`, one object
//! per line, for `pandas.read_json(url, lines=True)`) with `format=ndjson` or `Accept:
//! application/x-ndjson`. Owns the negotiation ([`ListFormat`], an extractor) and the two ways a list
//! goes out: [`whole`] for lists the size of the catalog, [`paged`] for lists read from the store page by
//! page, streamed so memory does not grow with the list.

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::ApiError;
use crate::catalog::FieldError;
use crate::service::ServiceError;

/// Rows per page of a [`paged`] list.
pub const PAGE: i64 = 500;

#[derive(serde::Deserialize)]
struct FormatParam {
    format: Option<String>,
}

/// How a list is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    /// One JSON array (`application/json`).
    Json,
    /// JSON lines (`application/x-ndjson`).
    Ndjson,
}

impl ListFormat {
    /// From the `format` query parameter (`json`, `ndjson`), else the `Accept` header.
    pub fn negotiate(format: Option<&str>, accept: Option<&str>) -> Result<ListFormat, FieldError> {
        match format.filter(|f| !f.is_empty()) {
            Some("json") => Ok(ListFormat::Json),
            Some("ndjson") => Ok(ListFormat::Ndjson),
            Some(other) => Err(FieldError::new("format", "json or ndjson", format!("{other:?}"))),
            None if accept.is_some_and(|a| a.contains("application/x-ndjson")) => Ok(ListFormat::Ndjson),
            None => Ok(ListFormat::Json),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            ListFormat::Json => "application/json",
            ListFormat::Ndjson => "application/x-ndjson",
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ListFormat {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ListFormat, ApiError> {
        let format = axum::extract::Query::<FormatParam>::try_from_uri(&parts.uri).ok().and_then(|q| q.0.format);
        let accept = parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
        ListFormat::negotiate(format.as_deref(), accept).map_err(|e| ApiError::invalid(vec![e]))
    }
}

/// Writes `rows` after `sent` earlier rows: the array's punctuation, or one line each.
fn write(format: ListFormat, rows: &[Value], sent: usize, last: bool) -> Bytes {
    let mut out = Vec::new();
    if format == ListFormat::Json && sent == 0 {
        out.push(b'[');
    }
    for (i, row) in rows.iter().enumerate() {
        if format == ListFormat::Json && sent + i > 0 {
            out.push(b',');
        }
        // Writing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, row);
        if format == ListFormat::Ndjson {
            out.push(b'\n');
        }
    }
    if format == ListFormat::Json && last {
        out.push(b']');
    }
    Bytes::from(out)
}

/// A list held in memory (catalog-sized).
pub fn whole(format: ListFormat, rows: &[Value]) -> Response {
    ([(header::CONTENT_TYPE, format.content_type())], write(format, rows, 0, true)).into_response()
}

/// A list read page by page and streamed: `page(cursor, n)` returns up to `n` rows, each with the cursor
/// that continues after it (an id); the list ends at a short page or after `limit` rows. A store error
/// mid-stream ends the body with an error (logged), so a client never mistakes a cut list for a whole one.
pub fn paged<F, Fut>(format: ListFormat, limit: usize, page: F) -> Response
where
    F: Fn(Option<i64>, i64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<(i64, Value)>, ServiceError>> + Send + 'static,
{
    let page = std::sync::Arc::new(page);
    // State: (cursor, rows sent), or None once the list is complete.
    let body = futures_util::stream::unfold(Some((None, 0usize)), move |state| {
        let page = page.clone();
        async move {
            let (cursor, sent) = state?;
            let want = (limit - sent).min(PAGE as usize) as i64;
            match page(cursor, want).await {
                Ok(rows) => {
                    let next = rows.last().map(|(c, _)| *c);
                    let sent_now = sent + rows.len();
                    let last = (rows.len() as i64) < want || sent_now >= limit;
                    let values: Vec<Value> = rows.into_iter().map(|(_, v)| v).collect();
                    let chunk = write(format, &values, sent, last);
                    Some((Ok::<_, std::io::Error>(chunk), (!last).then_some((next, sent_now))))
                }
                Err(e) => {
                    tracing::error!(error = %e, "list failed mid-stream");
                    Some((Err(std::io::Error::other("list failed; see Tao's log")), None))
                }
            }
        }
    });
    ([(header::CONTENT_TYPE, format.content_type())], Body::from_stream(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn negotiation_prefers_the_query_then_accept() {
        assert_eq!(ListFormat::negotiate(None, None), Ok(ListFormat::Json));
        assert_eq!(ListFormat::negotiate(None, Some("application/x-ndjson")), Ok(ListFormat::Ndjson));
        assert_eq!(ListFormat::negotiate(Some("json"), Some("application/x-ndjson")), Ok(ListFormat::Json));
        assert_eq!(ListFormat::negotiate(Some("ndjson"), None), Ok(ListFormat::Ndjson));
        let e = ListFormat::negotiate(Some("xml"), None).unwrap_err();
        assert_eq!((e.path.as_str(), e.to_string().contains("json or ndjson")), ("format", true));
    }

    #[test]
    fn pages_join_into_one_array_or_lines() {
        let (a, b) = (vec![json!({"n": 1}), json!({"n": 2})], vec![json!({"n": 3})]);
        let array = [write(ListFormat::Json, &a, 0, false), write(ListFormat::Json, &b, 2, true)].concat();
        assert_eq!(String::from_utf8(array).unwrap(), r#"[{"n":1},{"n":2},{"n":3}]"#);
        let lines = [write(ListFormat::Ndjson, &a, 0, false), write(ListFormat::Ndjson, &b, 2, true)].concat();
        assert_eq!(String::from_utf8(lines).unwrap(), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
        assert_eq!(&write(ListFormat::Json, &[], 0, true)[..], b"[]");
    }
}
