//! `GET /metrics` (Prometheus text format) and `GET /api/v1/metrics/{name}` (Grafana Infinity: a JSON
//! array, CSV with `format=csv`, JSON lines with `format=ndjson` or `Accept: application/x-ndjson`).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::auth::{Authorized, NeedRead};
use super::error::ApiError;
use super::events::parse_time;
use super::HttpState;
use crate::catalog::FieldError;
use crate::metrics::series;
use crate::store::now_ms;

/// `/metrics` (at the root, where Prometheus looks).
pub fn root_routes() -> Router<HttpState> {
    Router::new().route("/metrics", get(prometheus))
}

/// `/metrics/{name}` (nested under `/api/v1`).
pub fn routes() -> Router<HttpState> {
    Router::new().route("/metrics/{name}", get(series_of))
}

async fn prometheus(State(s): State<HttpState>, _: Authorized<NeedRead>) -> Result<Response, ApiError> {
    let text = s.services.prometheus_text().await?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}

#[derive(Debug, Default, serde::Deserialize)]
struct SeriesQuery {
    product: Option<String>,
    env: Option<String>,
    version: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

const DAY_MS: i64 = 86_400_000;

async fn series_of(
    State(s): State<HttpState>,
    _: Authorized<NeedRead>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<SeriesQuery>,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    let mut time = |field: &str, v: &Option<String>, default: i64| match v.as_deref().filter(|v| !v.is_empty()) {
        None => default,
        Some(v) => parse_time(field, v).unwrap_or_else(|e| {
            errors.push(e);
            default
        }),
    };
    let to = time("to", &q.to, now_ms());
    let from = time("from", &q.from, to - 30 * DAY_MS);
    let accept_lines = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("ndjson"));
    let format = match q.format.as_deref() {
        None if accept_lines => "ndjson",
        None => "json",
        Some(f @ ("json" | "csv" | "ndjson")) => f,
        Some(other) => {
            errors.push(FieldError::new("format", "json, csv or ndjson", format!("{other:?}")));
            "json"
        }
    };
    if from >= to {
        errors.push(FieldError::new("from", "a time before `to`", format!("{:?}", q.from)));
    }
    let query = series::Query {
        product: q.product.filter(|p| !p.is_empty()),
        env: q.env.filter(|e| !e.is_empty()),
        version: q.version.filter(|v| !v.is_empty()),
        from,
        to,
    };
    let catalog = s.services.catalog_now();
    // A filter naming nothing the catalog has would draw an empty picture that looks like "no activity".
    if let Some(p) = query.product.as_deref().filter(|p| !catalog.products.keys().any(|k| k.as_str() == *p)) {
        let known: Vec<&str> = catalog.products.keys().map(|k| k.as_str()).collect();
        errors.push(FieldError::new(
            "product",
            format!("a product of the catalog ({})", known.join(", ")),
            format!("{p:?}"),
        ));
    }
    if let Some(e) = query.env.as_deref().filter(|e| !catalog.environments.keys().any(|k| k.as_str() == *e)) {
        let known: Vec<&str> = catalog.environments.keys().map(|k| k.as_str()).collect();
        errors.push(FieldError::new(
            "env",
            format!("an environment of the catalog ({})", known.join(", ")),
            format!("{e:?}"),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let rows = s
        .services
        .metric_series(&name, &query)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no metric {name:?} (known: {})", series::NAMES.join(", "))))?;
    Ok(match format {
        "csv" => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], series::to_csv(series::columns(&name), &rows))
            .into_response(),
        "ndjson" => {
            let mut out = String::new();
            for r in &rows {
                out.push_str(&Value::Object(r.clone()).to_string());
                out.push('\n');
            }
            ([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response()
        }
        _ => axum::Json(Value::Array(rows.into_iter().map(Value::Object).collect())).into_response(),
    })
}
