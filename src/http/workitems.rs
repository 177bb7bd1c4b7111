//! `GET /api/v1/releases/{product}/{version}/work-items`: what is in a product version (the work items
//! planned into the iteration its name maps to, with their state history and links) and where that
//! version is deployed (every environment it reached, and whether it still runs there).
//! `GET /api/v1/work-items?product=&kind=&state=&version=&iteration=&fields=`: a product's work items (the
//! console's board, as data), a JSON array or JSON lines; `fields=id,status` keeps only those fields
//! (`status` is another name for `state`, as TAPD calls it).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::{Authorized, NeedRead};
use super::error::ApiError;
use super::list::{self, ListFormat};
use super::HttpState;
use crate::catalog::FieldError;
use crate::service::WorkItemQuery;
use crate::store::rfc3339;
use crate::workitems::WorkItem;

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

/// The work-item routes (nested under `/api/v1`).
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/releases/{product}/{version}/work-items", get(release_work_items))
        .route("/work-items", get(list_work_items))
}

#[derive(Debug, serde::Deserialize)]
struct ItemsQuery {
    product: Option<String>,
    kind: Option<String>,
    state: Option<String>,
    version: Option<String>,
    iteration: Option<String>,
    fields: Option<String>,
}

/// The fields a work-item row has, in order.
const FIELDS: &[&str] = &[
    "source",
    "id",
    "short_id",
    "workspace",
    "kind",
    "title",
    "state",
    "state_label",
    "owner",
    "iteration_id",
    "product",
    "version",
    "created_at",
    "modified_at",
    "completed_at",
    "links",
];

async fn list_work_items(
    State(s): State<HttpState>,
    _: Authorized<NeedRead>,
    format: ListFormat,
    Query(q): Query<ItemsQuery>,
) -> Result<axum::response::Response, ApiError> {
    let some = |v: Option<String>| v.map(|x| x.trim().to_string()).filter(|x| !x.is_empty());
    let mut errors = Vec::new();
    let product = some(q.product).unwrap_or_else(|| {
        errors.push(FieldError::new("product", "a product of the catalog", "nothing"));
        String::new()
    });
    let asked = some(q.fields).unwrap_or_default();
    let mut fields: Vec<(&str, &str)> = Vec::new();
    for name in asked.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let f = if name == "status" { "state" } else { name };
        match FIELDS.iter().find(|k| **k == f) {
            Some(k) => fields.push((name, k)),
            None => errors.push(FieldError::new(
                "fields",
                format!("names among {}, status", FIELDS.join(", ")),
                format!("{f:?}"),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let query = WorkItemQuery {
        product: product.clone(),
        kind: some(q.kind),
        state: some(q.state),
        version: some(q.version),
        iteration: some(q.iteration),
    };
    let rows: Vec<Value> = s
        .services
        .work_items(&query)
        .await?
        .iter()
        .map(|v| {
            let mut out = item_json(&v.item);
            out["state_label"] = json!(v.state_label);
            out["product"] = json!(v.item.product);
            out["version"] = json!(v.item.version);
            out["links"] =
                v.links.iter().map(|l| json!({ "kind": l.target_kind, "target": l.target, "via": l.via })).collect();
            if fields.is_empty() {
                return out;
            }
            // Each field under the name asked for (`status` stays `status`).
            Value::Object(fields.iter().map(|(name, f)| (name.to_string(), out[*f].clone())).collect())
        })
        .collect();
    Ok(list::whole(format, &rows))
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
