//! Reading JSON request bodies: media type, syntax and shape checks with precise field errors.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::catalog::FieldError;

/// Reads a JSON object body: 415 for another media type, 400 for bytes that are not JSON, 422 for JSON
/// that is not an object.
pub fn json_object(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, ApiError> {
    let body = body?;
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        if !ct.starts_with("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Content-Type: expected application/json, found {ct:?}"),
            ));
        }
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::invalid_field(FieldError {
            path: "(body)".into(),
            expected: "a JSON object".into(),
            found: json_kind(&other).into(),
        })),
        Err(e) => Err(ApiError::bad_request(format!("body: expected JSON, found a syntax error ({e})"))),
    }
}

/// How a JSON value is described in error messages ("a string", "a list", …).
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Takes a required string field, recording a problem when it is missing or not a string.
pub fn take_string(map: &mut Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            errors.push(FieldError { path: key.into(), expected: "a string".into(), found: json_kind(&other).into() });
            None
        }
        None => {
            errors.push(FieldError {
                path: key.into(),
                expected: "a string".into(),
                found: "nothing (missing)".into(),
            });
            None
        }
    }
}

/// Takes an optional boolean field.
pub fn take_bool(map: &mut Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> Option<bool> {
    match map.remove(key) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(other) => {
            errors.push(FieldError::new(key, "true or false", json_kind(&other)));
            None
        }
    }
}

/// Takes an optional string field.
pub fn take_opt_string(map: &mut Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match map.get(key) {
        None | Some(Value::Null) => {
            map.remove(key);
            None
        }
        Some(_) => take_string(map, key, errors),
    }
}

/// Reports every key left in `map` as unknown.
pub fn reject_unknown(map: &Map<String, Value>, allowed: &str, errors: &mut Vec<FieldError>) {
    for key in map.keys() {
        errors.push(FieldError::new(key.clone(), format!("only {allowed}"), format!("unknown field {key:?}")));
    }
}
