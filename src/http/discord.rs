//! Discord's Interactions Endpoint: `POST /api/v1/discord/interactions`.
//!
//! Every request is verified first (Ed25519 over `X-Signature-Timestamp` + the raw body with
//! `TAO_DISCORD_PUBLIC_KEY`; the timestamp must be within 5 minutes of Tao's clock): a missing header,
//! a bad signature or a stale timestamp is a 401 and nothing is done, as Discord requires (it probes
//! endpoints with invalid signatures). Without a configured key every call is refused (a Tao may take
//! interactions over the gateway only). What a verified interaction does is `crate::chat::discord`'s;
//! this file only answers.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::chat::discord::Discord;

/// Body limit of the endpoint (Discord's interactions are a few kB; resolved options can be larger).
const MAX_BODY: usize = 1 << 20;

/// The Discord route (merged at the top level, outside `/api/v1`'s token auth); `None`, or an adapter
/// without a public key (gateway only): every call is refused.
pub fn routes(discord: Option<Discord>) -> Router {
    Router::new()
        .route("/api/v1/discord/interactions", post(interactions))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(discord)
}

fn refuse(why: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({ "error": { "code": "unauthorized", "message": why } }))).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn interactions(State(discord): State<Option<Discord>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some((discord, verifier)) = discord.as_ref().and_then(|d| Some((d, d.verifier()?))) else {
        tracing::warn!("a Discord interaction arrived but TAO_DISCORD_PUBLIC_KEY is not set: refused");
        return refuse("Discord is not configured on this Tao (TAO_DISCORD_PUBLIC_KEY)");
    };
    let now = chrono::Utc::now().timestamp();
    let (signature, timestamp) = (header(&headers, "x-signature-ed25519"), header(&headers, "x-signature-timestamp"));
    if let Err(e) = verifier.verify_at(signature, timestamp, &body, now) {
        tracing::info!(error = %e, "refused a Discord interaction");
        return refuse("invalid request signature");
    }
    let interaction: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("the body is not JSON: {e}")),
    };
    match discord.handle(&interaction).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => bad_request(&e.to_string()),
    }
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": { "code": "invalid", "message": message } }))).into_response()
}
