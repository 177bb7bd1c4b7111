//! `GET /api/v1/events`: stored GitLab events as JSON lines (`application/x-ndjson`), oldest first.
//!
//! Filters: `kind`, `project` (id or path), `since`/`until` (RFC 3339, `YYYY-MM-DD` or epoch ms; since
//! inclusive, until exclusive), `state`; `fields=a,b.c` keeps only those keys, each a column name or a
//! dotted path into the payload (`object_attributes.iid`, `commits.0.id`, or `payload.…`). The body is
//! streamed page by page (keyset on id, [`PAGE_SIZE`] rows), so memory stays constant however many
//! events match; `pandas.read_json(url, lines=True)` reads it directly.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{Map, Value};

use super::auth::{Authorized, NeedRead};
use super::error::ApiError;
use super::HttpState;
use crate::catalog::FieldError;
use crate::gitlab::webhook::DOCUMENTED_KINDS;
use crate::store::event::{EventFilter, EventRow, EventState};
use crate::store::rfc3339;

/// Rows loaded per database round trip: the most the handler holds at once.
pub const PAGE_SIZE: i64 = 500;

/// The `/events` route (nested under `/api/v1`).
pub fn routes() -> Router<HttpState> {
    Router::new().route("/events", get(export))
}

/// Query parameters of `GET /api/v1/events`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct EventsQuery {
    /// Event kind (`push`, `merge_request`, …).
    pub kind: Option<String>,
    /// Project id or path.
    pub project: Option<String>,
    /// Received at or after.
    pub since: Option<String>,
    /// Received before.
    pub until: Option<String>,
    /// `pending`, `running`, `failed`, `processed`.
    pub state: Option<String>,
    /// Comma-separated keys to keep.
    pub fields: Option<String>,
}

const TIME_EXPECTED: &str = "an RFC 3339 time, a date YYYY-MM-DD or epoch milliseconds";

/// Parses a time filter into epoch milliseconds.
pub fn parse_time(field: &str, s: &str) -> Result<i64, FieldError> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or_default());
    }
    Err(FieldError::new(field, TIME_EXPECTED, format!("{s:?}")))
}

fn filter_of(q: &EventsQuery) -> Result<(EventFilter, Option<Vec<String>>), ApiError> {
    let mut errors = Vec::new();
    let mut filter = EventFilter { kind: q.kind.clone().filter(|k| !k.is_empty()), ..EventFilter::default() };
    if let Some(p) = q.project.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        match p.parse::<i64>() {
            Ok(id) => filter.project_id = Some(id),
            Err(_) => filter.project_path = Some(p.to_string()),
        }
    }
    for (name, value, slot) in [("since", &q.since, &mut filter.since), ("until", &q.until, &mut filter.until)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            match parse_time(name, v) {
                Ok(ms) => *slot = Some(ms),
                Err(e) => errors.push(e),
            }
        }
    }
    if let Some(s) = q.state.as_deref().filter(|s| !s.is_empty()) {
        match EventState::parse(s) {
            Some(st) => filter.state = Some(st),
            None => errors.push(FieldError::new("state", "pending, running, failed or processed", format!("{s:?}"))),
        }
    }
    let fields = q.fields.as_deref().map(|f| f.split(',').map(str::trim).map(str::to_string).collect::<Vec<_>>());
    if fields.as_ref().is_some_and(|f| f.iter().any(String::is_empty)) {
        errors.push(FieldError::new("fields", "comma-separated names without blanks", format!("{:?}", q.fields)));
    }
    if errors.is_empty() {
        Ok((filter, fields))
    } else {
        Err(ApiError::invalid(errors))
    }
}

async fn export(
    State(s): State<HttpState>,
    _: Authorized<NeedRead>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let (filter, fields) = filter_of(&q)?;
    let services = s.services.clone();
    if let Some(kind) = filter.kind.as_deref() {
        let stored = services.event_kind_stored(kind).await?;
        if !stored && !DOCUMENTED_KINDS.contains(&kind) {
            return Err(ApiError::invalid_field(FieldError::new(
                "kind",
                format!("a GitLab event kind ({}) or one stored", DOCUMENTED_KINDS.join(", ")),
                format!("{kind:?}"),
            )));
        }
    }
    // State: the last id sent, or None once a short page showed the end.
    let pages = futures_util::stream::unfold(Some(0i64), move |after| {
        let (services, filter, fields) = (services.clone(), filter.clone(), fields.clone());
        async move {
            let after = after?;
            match services.event_page(&filter, after, PAGE_SIZE).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = (rows.len() as i64 == PAGE_SIZE).then(|| rows[rows.len() - 1].id);
                    let mut out = Vec::with_capacity(rows.len() * 256);
                    for row in &rows {
                        write_line(&mut out, row, fields.as_deref());
                    }
                    Some((Ok(Bytes::from(out)), next))
                }
                Err(e) => {
                    // Headers are gone: all we can do is cut the stream so the client sees an error.
                    tracing::error!(error = %e, "event export failed mid-stream");
                    Some((Err(std::io::Error::other("event export failed; see Tao's log")), None))
                }
            }
        }
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(pages)).into_response())
}

fn columns(row: &EventRow) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), row.id.into());
    m.insert("delivery_id".into(), row.delivery_id.clone().into());
    m.insert("webhook_id".into(), row.webhook_id.clone().into());
    m.insert("event".into(), row.event_header.clone().into());
    m.insert("kind".into(), row.kind.clone().into());
    m.insert("project_id".into(), row.project_id.into());
    m.insert("project_path".into(), row.project_path.clone().into());
    m.insert("ref".into(), row.git_ref.clone().into());
    m.insert("object_key".into(), row.object_key.clone().into());
    m.insert("received_at".into(), rfc3339(row.received_at).into());
    m.insert("state".into(), row.state.clone().into());
    m.insert("attempts".into(), row.attempts.into());
    m.insert("last_error".into(), row.last_error.clone().into());
    m.insert("processed_at".into(), row.processed_at.map(rfc3339).into());
    m
}

fn payload(row: &EventRow) -> Value {
    row.payload.as_deref().and_then(|p| serde_json::from_str(p).ok()).unwrap_or(Value::Null)
}

/// Appends one JSON line for `row`.
fn write_line(out: &mut Vec<u8>, row: &EventRow, fields: Option<&[String]>) {
    let mut obj = columns(row);
    match fields {
        None => {
            // GitLab sends compact JSON: splice it as stored unless it spans lines.
            let raw = row.payload.as_deref().filter(|p| !p.contains(['\n', '\r']));
            let _ = serde_json::to_writer(&mut *out, &obj);
            out.pop(); // the closing brace
            out.extend_from_slice(b",\"payload\":");
            match raw {
                Some(raw) => out.extend_from_slice(raw.as_bytes()),
                None => {
                    let _ = serde_json::to_writer(&mut *out, &payload(row));
                }
            }
            out.extend_from_slice(b"}\n");
        }
        Some(fields) => {
            let body = fields.iter().any(|f| !obj.contains_key(f)).then(|| payload(row));
            let mut picked = Map::new();
            for f in fields {
                let v = match (obj.remove(f), &body) {
                    (Some(v), _) => v,
                    (None, Some(body)) => lookup(body, f.strip_prefix("payload.").unwrap_or(f)),
                    (None, None) => Value::Null,
                };
                picked.insert(f.clone(), v);
            }
            let _ = serde_json::to_writer(&mut *out, &picked);
            out.push(b'\n');
        }
    }
}

/// Follows a dotted path (`a.b.0.c`); `null` where it leads nowhere.
fn lookup(v: &Value, path: &str) -> Value {
    if path == "payload" {
        return v.clone();
    }
    let mut cur = v;
    for key in path.split('.') {
        let next = match cur {
            Value::Object(m) => m.get(key),
            Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return Value::Null,
        }
    }
    cur.clone()
}
