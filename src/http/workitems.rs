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
use crate::store::workitem::{self, ItemFilter};
use crate::store::{self, rfc3339};
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
    if !s.services.catalog_now().products.keys().any(|p| p.as_str() == product) {
        return Err(ApiError::not_found(format!("no product {product:?} in the catalog")));
    }
    let version = version.strip_prefix('v').unwrap_or(&version).to_string();
    let pool = s.services.pool();
    let internal = |e: store::StoreError| ApiError::internal(&e);
    let filter = ItemFilter { product: Some(product.clone()), version: Some(version.clone()), ..Default::default() };
    let items = workitem::list(pool, &filter).await.map_err(internal)?;
    let mut out = Vec::with_capacity(items.len());
    let mut names = std::collections::BTreeMap::new();
    for item in &items {
        let key = (item.source.clone(), item.workspace.clone(), item.kind.as_str());
        if !names.contains_key(&key) {
            let map = workitem::state_names(pool, &item.source, &item.workspace, item.kind.as_str())
                .await
                .map_err(internal)?;
            names.insert(key.clone(), map);
        }
        let label = |state: &str| names[&key].get(state).cloned();
        let history = workitem::history(pool, &item.source, &item.id).await.map_err(internal)?;
        let links = workitem::links_of(pool, &item.source, &item.id).await.map_err(internal)?;
        let mut v = item_json(item);
        v["state_label"] = json!(label(&item.state));
        v["history"] = history
            .iter()
            .map(|h| json!({ "state": h.state, "label": label(&h.state), "at": rfc3339(h.at), "author": h.author }))
            .collect();
        v["links"] = links.iter().map(|l| json!({ "kind": l.target_kind, "target": l.target, "via": l.via })).collect();
        out.push(v);
    }
    let mut deployed = Vec::new();
    for r in store::deployed::reached(pool, &product, &version).await.map_err(internal)? {
        let current = store::deployed::latest_version(pool, &r.env, &product).await.map_err(internal)?;
        deployed.push(json!({
            "env": r.env,
            "deployed_at": rfc3339(r.deployed_at),
            "task_id": r.task_id,
            "current": current.as_deref() == Some(version.as_str()),
        }));
    }
    Ok((
        StatusCode::OK,
        Json(json!({ "product": product, "version": version, "work_items": out, "deployed": deployed })),
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
