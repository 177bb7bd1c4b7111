//! `/ci/v1`: the shared CI templates, public (GitLab fetches `include:remote` anonymously at pipeline
//! creation): `GET /ci/v1/<project path>/<template>.yml` and `GET /ci/v1/cci.sh?namespace=&project=&branch=`.
//!
//! Owns parsing the path (the URL must end in `.yml`; parameters live in the path because only
//! `CI_PROJECT_*` and a few variables expand inside include URLs), ETag/`Cache-Control`/304 and mapping
//! [`CiError`] to status codes. Rendering and caching are `crate::ci_templates`.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::error::ApiError;
use super::HttpState;
use crate::catalog::ProjectPath;
use crate::ci_templates::{CiError, RenderRequest, Rendered, TemplateName};

/// How long clients and proxies may reuse a render without asking again.
const CACHE_CONTROL: &str = "public, max-age=60";

/// The routes (nested under `/ci/v1`).
pub fn routes() -> Router<HttpState> {
    Router::new().route("/cci.sh", get(cci_sh)).route("/{*path}", get(template))
}

fn ci_error(e: CiError) -> ApiError {
    match e {
        CiError::BadTemplateName(_) | CiError::BadProject(_) => ApiError::bad_request(e.to_string()),
        CiError::UnknownTemplate { .. } | CiError::UnknownProject { .. } => ApiError::not_found(e.to_string()),
        CiError::Catalog { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()),
        CiError::Template { .. } | CiError::Load { .. } => ApiError::internal(&e),
    }
}

fn render(s: &HttpState, req: &RenderRequest) -> Result<Rendered, ApiError> {
    let live = s.services.live();
    let revision = format!("{}:{}", live.revision.unwrap_or_default(), live.hash.unwrap_or_default());
    let catalog = live.catalog.unwrap_or_default();
    s.ci.render(&catalog, &revision, req).map_err(ci_error)
}

fn answer(headers: &HeaderMap, rendered: Rendered, content_type: &'static str) -> Response {
    let etag = HeaderValue::from_str(&rendered.etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let cache = [(header::ETAG, etag), (header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL))];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == &*rendered.etag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    let content_type = [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))];
    (StatusCode::OK, cache, content_type, rendered.body.to_string()).into_response()
}

/// `GET /ci/v1/<project path>/<template>.yml`.
async fn template(
    State(s): State<HttpState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some((project, file)) = path.rsplit_once('/') else {
        return Err(ApiError::not_found(
            "expected /ci/v1/<project path>/<template>.yml, e.g. /ci/v1/monitor/api/component.yml",
        ));
    };
    let Some(stem) = file.strip_suffix(".yml") else {
        return Err(ApiError::not_found(format!("{file:?}: CI templates are served as <template>.yml")));
    };
    let name = TemplateName::parse(stem).map_err(ci_error)?;
    let project = ProjectPath::parse(project).map_err(|e| ci_error(e.into()))?;
    let rendered = render(&s, &RenderRequest::yaml(&name, project))?;
    Ok(answer(&headers, rendered, "text/yaml; charset=utf-8"))
}

/// Query of `GET /ci/v1/cci.sh`.
#[derive(Debug, Deserialize)]
struct CciQuery {
    namespace: String,
    project: String,
    #[serde(default)]
    branch: String,
}

/// `GET /ci/v1/cci.sh?namespace=&project=&branch=`: the legacy script.
async fn cci_sh(
    State(s): State<HttpState>,
    query: Result<Query<CciQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(q) =
        query.map_err(|_| ApiError::bad_request("expected ?namespace=<group>&project=<name>&branch=<ref>"))?;
    let project = ProjectPath::parse(&format!("{}/{}", q.namespace, q.project)).map_err(|e| ci_error(e.into()))?;
    if q.branch.len() > 255 || q.branch.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "branch: expected a git ref name (at most 255 bytes, no control characters)",
        ));
    }
    let req = RenderRequest { file: "cci.sh".to_owned(), project, branch: Some(q.branch) };
    let rendered = render(&s, &req)?;
    Ok(answer(&headers, rendered, "text/x-shellscript; charset=utf-8"))
}
