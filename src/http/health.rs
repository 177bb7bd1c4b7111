//! `GET /healthz`: open, cheap, and true only when the store answers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::HttpState;

/// 200 `{"status":"ok", …}` when the database answers, 503 otherwise.
pub async fn healthz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    let pool = state.services.pool();
    let live = state.services.live();
    match pool.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "database": pool.backend(),
                "catalog_revision": live.revision,
            })),
        ),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "database": pool.backend() })))
        }
    }
}
