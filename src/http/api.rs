//! `/api/v1`: products, product versions (releases), environments and the catalog, as JSON.
//!
//! Handlers parse the request (every bad field reported at once, with its path), call the service, and
//! shape the answer. Times are RFC 3339 (UTC) in responses.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::auth::{Authorized, NeedAdmin, NeedDeploy, NeedRead};
use super::body::{json_kind, json_object, take_string};
use super::error::ApiError;
use super::list::{self, ListFormat};
use super::HttpState;
use crate::catalog::{Catalog, FieldError};
use crate::service::CreateReleaseOutcome;
use crate::store::release::ProductVersion;
use crate::store::rfc3339;

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

/// The `/api/v1` routes (nested under that prefix by the router).
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/products", get(list_products))
        .route("/products/{product}", get(show_product))
        .route("/releases", axum::routing::post(create_release))
        .route("/releases/{product}", get(list_releases))
        .route("/releases/{product}/{version}", get(show_release))
        .route("/environments", get(list_environments))
        .route("/environments/{env}", get(show_environment))
        .route("/catalog", get(show_catalog).post(apply_catalog))
}

fn ok(value: Value) -> Answer {
    Ok((StatusCode::OK, Json(value)))
}

/// A product version as the API shows it.
pub fn release_json(pv: &ProductVersion) -> Value {
    json!({
        "product": pv.product,
        "version": pv.version,
        "created_by": pv.created_by,
        "created_at": rfc3339(pv.created_at),
        "catalog_revision": pv.catalog_revision,
        "components": pv.components,
    })
}

fn product_json(catalog: &Catalog, name: &str, detailed: bool) -> Option<Value> {
    let (key, product) = catalog.products.get_key_value(name)?;
    let mut v = json!({
        "name": key.as_str(),
        "description": product.description,
        "components": product.components,
    });
    if detailed {
        let defs: Map<String, Value> = product
            .components
            .iter()
            .filter_map(|c| catalog.components.get(c).map(|d| (c.to_string(), json!(d))))
            .collect();
        v["component_definitions"] = Value::Object(defs);
        v["deploy_order"] = json!(catalog.deploy_order(key.as_str()));
    }
    Some(v)
}

async fn list_products(State(s): State<HttpState>, _: Authorized<NeedRead>, format: ListFormat) -> Response {
    let catalog = s.services.catalog_now();
    let rows: Vec<Value> = catalog.products.keys().filter_map(|p| product_json(&catalog, p.as_str(), false)).collect();
    list::whole(format, &rows)
}

async fn show_product(State(s): State<HttpState>, _: Authorized<NeedRead>, Path(product): Path<String>) -> Answer {
    let catalog = s.services.catalog_now();
    let v = product_json(&catalog, &product, true)
        .ok_or_else(|| ApiError::not_found(format!("product {product:?} is not in the catalog")))?;
    ok(v)
}

fn environment_json(name: &str, definition: &impl serde::Serialize) -> Value {
    let mut v = json!(definition);
    if let Value::Object(map) = &mut v {
        map.insert("name".into(), json!(name));
    }
    v
}

async fn list_environments(State(s): State<HttpState>, _: Authorized<NeedRead>, format: ListFormat) -> Response {
    let catalog = s.services.catalog_now();
    let rows: Vec<Value> = catalog.environments.iter().map(|(n, e)| environment_json(n.as_str(), e)).collect();
    list::whole(format, &rows)
}

async fn show_environment(State(s): State<HttpState>, _: Authorized<NeedRead>, Path(env): Path<String>) -> Answer {
    let view = s.services.environment(&env).await?;
    let mut v = environment_json(&view.name, &view.definition);
    v["deployed"] = json!(view.deployed);
    v["releases"] = json!(view.releases);
    v["frozen"] = json!(view.frozen.map(|f| json!({
        "reason": f.reason, "frozen_by": f.frozen_by, "frozen_at": rfc3339(f.frozen_at),
    })));
    ok(v)
}

async fn list_releases(
    State(s): State<HttpState>,
    _: Authorized<NeedRead>,
    format: ListFormat,
    Path(product): Path<String>,
) -> Result<Response, ApiError> {
    let versions = s.services.releases(&product).await?;
    Ok(list::whole(format, &versions.iter().map(release_json).collect::<Vec<_>>()))
}

async fn show_release(
    State(s): State<HttpState>,
    _: Authorized<NeedRead>,
    Path((product, version)): Path<(String, String)>,
) -> Answer {
    let pv = s.services.release(&product, &version).await?;
    ok(release_json(&pv))
}

async fn create_release(
    State(s): State<HttpState>,
    Authorized(actor, _): Authorized<NeedDeploy>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let mut map = json_object(&headers, body)?;
    let mut errors = Vec::new();
    let product = take_string(&mut map, "product", &mut errors);
    let version = take_string(&mut map, "version", &mut errors);
    let mut components = BTreeMap::new();
    match map.remove("components") {
        Some(Value::Object(list)) => {
            for (name, v) in list {
                match v {
                    Value::String(v) => {
                        components.insert(name, v);
                    }
                    other => errors.push(FieldError {
                        path: format!("components.{name}"),
                        expected: "a version string like \"1.2.3\"".into(),
                        found: json_kind(&other).into(),
                    }),
                }
            }
        }
        Some(other) => errors.push(FieldError {
            path: "components".into(),
            expected: "an object of component name to version".into(),
            found: json_kind(&other).into(),
        }),
        None => errors.push(FieldError {
            path: "components".into(),
            expected: "an object of component name to version".into(),
            found: "nothing (missing)".into(),
        }),
    }
    for key in map.keys() {
        errors.push(FieldError {
            path: key.clone(),
            expected: "only product, version, components".into(),
            found: format!("unknown field {key:?}"),
        });
    }
    let (Some(product), Some(version), true) = (product, version, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    match s.services.create_release(&actor, &product, &version, &components).await? {
        CreateReleaseOutcome::Created(pv) => Ok((StatusCode::CREATED, Json(release_json(&pv)))),
        CreateReleaseOutcome::Unchanged(pv) => ok(release_json(&pv)),
    }
}

async fn show_catalog(State(s): State<HttpState>, _: Authorized<NeedRead>) -> Answer {
    let live = s.services.live();
    ok(json!({ "revision": live.revision, "hash": live.hash, "catalog": live.catalog }))
}

/// `POST /api/v1/catalog` with the YAML text as the body: validated first, rejected whole on any error.
async fn apply_catalog(
    State(s): State<HttpState>,
    Authorized(actor, _): Authorized<NeedAdmin>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = body?;
    let yaml = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("body: expected UTF-8 YAML text"))?;
    let applied = s.services.apply_catalog(&actor, yaml).await?;
    let status = if applied.changed { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!(applied))))
}
