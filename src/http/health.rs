//! `GET /healthz`: open, cheap, and true only when the store answers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::HttpState;

/// 200 `{"status":"ok", …}` when the database answers, 503 otherwise.
pub async fn healthz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    let live = state.services.live();
    let (answer, backend) = state.services.store_health().await;
    match answer {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "database": backend,
                "catalog_revision": live.revision,
            })),
        ),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "database": backend })))
        }
    }
}
