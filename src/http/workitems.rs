//! `GET /api/v1/releases/{product}/{version}/work-items`: what is in a product version (the work items
//! planned into the iteration its name maps to, with their state history and links) and where that
//! version is deployed (every environment it reached, and whether it still runs there).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::{Authorized, NeedRead};
use super::error::ApiError;
use super::HttpState;
use crate::store::rfc3339;
use crate::workitems::WorkItem;

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

/// The work-item routes (nested under `/api/v1`).
pub fn routes() -> Router<HttpState> {
    Router::new().route("/releases/{product}/{version}/work-items", get(release_work_items))
}

async fn release_work_items(
    State(s): State<HttpState>,
    _: Authorized<NeedRead>,
    Path((product, version)): Path<(String, String)>,
) -> Answer {
    let found = s.services.version_work_items(&product, &version).await?;
    let items: Vec<Value> = found
        .items
        .iter()
        .map(|v| {
            let mut out = item_json(&v.item);
            out["state_label"] = json!(v.state_label);
            out["history"] = v
                .history
                .iter()
                .map(|h| json!({ "state": h.change.state, "label": h.label, "at": rfc3339(h.change.at), "author": h.change.author }))
                .collect();
            out["links"] =
                v.links.iter().map(|l| json!({ "kind": l.target_kind, "target": l.target, "via": l.via })).collect();
            out
        })
        .collect();
    let deployed: Vec<Value> = found
        .deployed
        .iter()
        .map(|r| {
            json!({ "env": r.env, "deployed_at": rfc3339(r.deployed_at), "task_id": r.task_id, "current": r.current })
        })
        .collect();
    Ok((
        StatusCode::OK,
        Json(json!({ "product": found.product, "version": found.version, "work_items": items, "deployed": deployed })),
    ))
}

fn item_json(w: &WorkItem) -> Value {
    json!({
        "source": w.source,
        "id": w.id,
        "short_id": w.short_id,
        "workspace": w.workspace,
        "kind": w.kind,
        "title": w.title,
        "state": w.state,
        "owner": w.owner,
        "iteration_id": w.iteration_id,
        "created_at": rfc3339(w.created_at),
        "modified_at": rfc3339(w.modified_at),
        "completed_at": w.completed_at.map(rfc3339),
    })
}
