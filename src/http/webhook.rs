//! `POST /api/v1/gitlab/webhook`: GitLab's project, group and system hooks.
//!
//! Verifies `X-Gitlab-Token` first (constant time, before reading the body, so unauthenticated senders
//! cannot make Tao buffer 25 MiB), then reads the body up to its own limit (`TAO_WEBHOOK_MAX_BODY`, not
//! the API's), checks it is JSON, stores it durably and only then answers 200, so an acknowledged
//! delivery is never lost. It does no handling: the workers do, after the ack, so GitLab never waits on
//! Tao's reactions. Every rejection is logged with its reason and never with the token.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use tower_http::trace::TraceLayer;

use super::error::ApiError;
use crate::config::Secret;
use crate::gitlab::webhook::{self, DeliveryHeaders, RejectReason};
use crate::gitlab::worker::EventQueue;
use crate::store::event::Inserted;
use crate::store::intake::EventWriter;
use crate::store::now_ms;

/// What the intake needs.
#[derive(Debug, Clone)]
pub struct Intake {
    /// Stores deliveries (grouped into shared transactions on SQLite: `store::intake`).
    pub writer: EventWriter,
    /// Accepted `X-Gitlab-Token` values.
    pub secrets: std::sync::Arc<Vec<Secret>>,
    /// Body limit, bytes.
    pub max_body: usize,
    /// Rung after each stored event.
    pub queue: EventQueue,
}

/// The webhook route, with its own state and body limit (merged into the main router by `app`).
pub fn routes(intake: Intake) -> Router {
    Router::new().route("/api/v1/gitlab/webhook", post(receive)).layer(TraceLayer::new_for_http()).with_state(intake)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string())
}

fn reject(status: StatusCode, code: &'static str, reason: &RejectReason) -> ApiError {
    crate::metrics::webhook_delivery("rejected");
    tracing::warn!(reason = %reason, "webhook delivery rejected");
    ApiError::new(status, code, reason.to_string())
}

async fn receive(State(intake): State<Intake>, headers: HeaderMap, body: Body) -> Response {
    let token = headers.get("x-gitlab-token").map(|v| v.as_bytes());
    if let Err(reason) = webhook::verify_token(&intake.secrets, token) {
        return reject(StatusCode::UNAUTHORIZED, "unauthorized", &reason).into_response();
    }
    let delivery = DeliveryHeaders {
        event: header(&headers, "x-gitlab-event"),
        idempotency_key: header(&headers, "idempotency-key"),
        event_uuid: header(&headers, "x-gitlab-event-uuid"),
        webhook_uuid: header(&headers, "x-gitlab-webhook-uuid"),
    };
    if delivery.event.as_deref().is_none_or(str::is_empty) {
        return reject(StatusCode::BAD_REQUEST, "bad_request", &RejectReason::MissingEvent).into_response();
    }
    let bytes = match Limited::new(body, intake.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            let message = format!("webhook body is larger than {} bytes (TAO_WEBHOOK_MAX_BODY)", intake.max_body);
            tracing::warn!(limit = intake.max_body, "webhook delivery rejected: body too large");
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message).into_response();
        }
        Err(e) => return ApiError::bad_request(format!("cannot read the body: {e}")).into_response(),
    };
    let received_at = now_ms();
    let new = match webhook::envelope(&delivery, &bytes, received_at, generated_id) {
        Ok(new) => new,
        Err(reason) => return reject(StatusCode::BAD_REQUEST, "bad_request", &reason).into_response(),
    };
    let (delivery, kind) = (new.delivery_id.as_str().to_string(), new.kind.clone());
    match intake.writer.insert(new).await {
        Ok(Inserted::Stored(id)) => {
            crate::metrics::webhook_delivery("stored");
            intake.queue.wake();
            tracing::info!(%delivery, event = id.0, %kind, "webhook stored");
            (StatusCode::OK, Json(json!({ "status": "stored", "id": id.0 }))).into_response()
        }
        Ok(Inserted::Duplicate) => {
            crate::metrics::webhook_delivery("duplicate");
            tracing::info!(%delivery, "webhook redelivery acknowledged, already stored");
            (StatusCode::OK, Json(json!({ "status": "duplicate" }))).into_response()
        }
        // Not stored: answer 5xx so GitLab counts a failure (an ack would lose the delivery).
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

fn generated_id() -> String {
    use rand::Rng;
    format!("tao-{:032x}", rand::thread_rng().gen::<u128>())
}
