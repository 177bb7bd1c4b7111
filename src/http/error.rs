//! The one error type of the HTTP surface and its JSON shape: `{"error": {code, message, field?, details?}}`.
//!
//! Handlers return [`ApiError`]; service and extractor failures convert into it here, so the status code
//! of every failure is decided in one place. Internal errors are logged with their cause and answered
//! with a generic message: the body never echoes database or system errors.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::catalog::FieldError;
use crate::service::ServiceError;

/// An HTTP error answer.
#[derive(Debug)]
pub struct ApiError {
    /// Status code.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `invalid`, `not_found`, `conflict`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// Every field problem, when there are several.
    pub details: Vec<FieldError>,
}

impl ApiError {
    /// An error without field information.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), field: None, details: Vec::new() }
    }

    /// 422 for one bad field.
    pub fn invalid_field(error: FieldError) -> ApiError {
        ApiError::invalid(vec![error])
    }

    /// 422 listing every bad field.
    pub fn invalid(errors: Vec<FieldError>) -> ApiError {
        let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        let field = errors.first().map(|e| e.path.clone());
        ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, code: "invalid", message, field, details: errors }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 400 for a body that is not what the endpoint reads at all.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 500 after logging the cause.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see Tao's log")
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Invalid(errors) => ApiError::invalid(errors),
            ServiceError::NotFound(msg) => ApiError::not_found(msg),
            ServiceError::Conflict(msg) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            ServiceError::Forbidden(msg) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", msg),
            ServiceError::Locked(msg) => ApiError::new(StatusCode::LOCKED, "frozen", msg),
            ServiceError::NotConfigured(msg) => ApiError::new(StatusCode::CONFLICT, "not_configured", msg),
            ServiceError::Upstream(msg) => ApiError::new(StatusCode::BAD_GATEWAY, "upstream", msg),
            ServiceError::Store(cause) => ApiError::internal(&cause),
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "bad_request" };
        ApiError::new(status, code, rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::info!(status = self.status.as_u16(), code = self.code, message = %self.message, "request rejected");
        }
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(field) = &self.field {
            error["field"] = json!(field);
        }
        if self.details.len() > 1 {
            error["details"] = json!(self.details);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
