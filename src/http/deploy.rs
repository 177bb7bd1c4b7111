//! `/api/v1` deploys, rollbacks, tasks (status, log, cancel), environment history and freezes, the
//! audit log. (The task pages the links lead to, `/ui/tasks/{id}`, are the web console's: `crate::web`.)
//!
//! Deploy requests answer `202 {task_id}` at once; the same `Idempotency-Key` always yields the same task.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Authorized, NeedAdmin, NeedDeploy, NeedRead};
use super::body::{json_kind, json_object, reject_unknown, take_bool, take_opt_string, take_string};
use super::error::ApiError;
use super::list::{self, ListFormat};
use super::HttpState;
use crate::catalog::FieldError;
use crate::service::{DeployRequest, DeployTarget};
use crate::store::task::{CancelOutcome, TaskRow};
use crate::store::{self, rfc3339};

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

/// The routes (nested under `/api/v1`).
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/deploys", post(create_deploy))
        .route("/deploys/plan", get(plan_deploy))
        .route("/rollbacks", post(create_rollback))
        .route("/tasks", get(list_tasks))
        .route("/tasks/{id}", get(show_task))
        .route("/tasks/{id}/log", get(task_log))
        .route("/tasks/{id}/cancel", post(cancel_task))
        .route("/environments/{env}/history", get(env_history))
        .route("/environments/{env}/freeze", post(freeze).delete(unfreeze))
        .route("/environments/{env}/check", get(check_env))
        .route("/audit", get(audit))
}

/// A task as the API shows it.
pub fn task_json(t: &TaskRow) -> Value {
    json!({
        "id": t.id,
        "kind": t.kind,
        "env": t.env,
        "product": t.product,
        "version": t.version,
        "component": t.component,
        "image_tag": t.image_tag,
        "components": if t.components.is_empty() { vec![] } else { t.components.split(',').collect::<Vec<_>>() },
        "force": t.force,
        "rollback_on_failure": t.rollback_on_failure,
        "status": t.status,
        "requested_by": t.requested_by,
        "error": t.error,
        "cancel_requested": t.cancel_requested,
        "created_at": rfc3339(t.created_at),
        "started_at": t.started_at.map(rfc3339),
        "finished_at": t.finished_at.map(rfc3339),
        "plan": t.plan.as_deref().and_then(|p| serde_json::from_str::<Value>(p).ok()),
        "links": { "log": format!("/api/v1/tasks/{}/log", t.id), "page": format!("/ui/tasks/{}", t.id) },
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim().to_string()))
            .map_err(|_| ApiError::invalid_field(FieldError::new("Idempotency-Key", "visible ASCII", "other bytes"))),
    }
}

fn accepted(t: &TaskRow, created: bool) -> Answer {
    let mut body = task_json(t);
    body["task_id"] = json!(t.id);
    body["created"] = json!(created);
    Ok((StatusCode::ACCEPTED, Json(body)))
}

fn components_field(v: Option<Value>, errors: &mut Vec<FieldError>) -> Vec<String> {
    match v {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::String(s) => Some(s),
                other => {
                    errors.push(FieldError::new(format!("components[{i}]"), "a component name", json_kind(&other)));
                    None
                }
            })
            .collect(),
        Some(other) => {
            errors.push(FieldError::new("components", "a list of component names", json_kind(&other)));
            vec![]
        }
    }
}

async fn create_deploy(
    State(s): State<HttpState>,
    Authorized(actor, _): Authorized<NeedDeploy>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let key = idempotency_key(&headers)?;
    let mut map = json_object(&headers, body)?;
    let mut errors = Vec::new();
    let env = take_string(&mut map, "env", &mut errors);
    let force = take_bool(&mut map, "force", &mut errors).unwrap_or(false);
    let rollback = take_bool(&mut map, "rollback", &mut errors).unwrap_or(true);
    let target = if map.contains_key("component") || map.contains_key("image_tag") {
        let component = take_string(&mut map, "component", &mut errors);
        let image_tag = take_string(&mut map, "image_tag", &mut errors);
        reject_unknown(&map, "env, component, image_tag, force, rollback", &mut errors);
        component.zip(image_tag).map(|(component, image_tag)| DeployTarget::Component { component, image_tag })
    } else {
        let product = take_string(&mut map, "product", &mut errors);
        let version = take_string(&mut map, "version", &mut errors);
        let components = components_field(map.remove("components"), &mut errors);
        reject_unknown(
            &map,
            "product, version, env, components, force, rollback (or env, component, image_tag)",
            &mut errors,
        );
        product.zip(version).map(|(product, version)| DeployTarget::Release { product, version, components })
    };
    let (Some(env), Some(target), true) = (env, target, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    let req = DeployRequest { env, target, force, rollback_on_failure: rollback, idempotency_key: key };
    let (task, created) = s.services.request_deploy(&actor, &req).await?;
    accepted(&task, created)
}

async fn create_rollback(
    State(s): State<HttpState>,
    Authorized(actor, _): Authorized<NeedDeploy>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let key = idempotency_key(&headers)?;
    let mut map = json_object(&headers, body)?;
    let mut errors = Vec::new();
    let env = take_string(&mut map, "env", &mut errors);
    let to = take_opt_string(&mut map, "to", &mut errors);
    let rollback = take_bool(&mut map, "rollback", &mut errors).unwrap_or(true);
    reject_unknown(&map, "env, to, rollback", &mut errors);
    let (Some(env), true) = (env, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    let req = DeployRequest {
        env,
        target: DeployTarget::Rollback { to },
        force: false,
        rollback_on_failure: rollback,
        idempotency_key: key,
    };
    let (task, created) = s.services.request_deploy(&actor, &req).await?;
    accepted(&task, created)
}

/// Query of `GET /deploys/plan`.
#[derive(Debug, Deserialize)]
struct PlanQuery {
    env: String,
    product: Option<String>,
    version: Option<String>,
    components: Option<String>,
    component: Option<String>,
    image_tag: Option<String>,
    rollback_to: Option<String>,
    rollback: Option<bool>,
    #[serde(default)]
    force: bool,
}

async fn plan_deploy(State(s): State<HttpState>, _: Authorized<NeedRead>, q: Query<PlanQuery>) -> Answer {
    let q = q.0;
    let target = match (q.product, q.version, q.component, q.image_tag) {
        (Some(product), Some(version), None, None) => {
            let components = components_field(q.components.map(Value::String), &mut Vec::new());
            DeployTarget::Release { product, version, components }
        }
        (None, None, Some(component), Some(image_tag)) => DeployTarget::Component { component, image_tag },
        (None, None, None, None) if q.rollback.unwrap_or(false) || q.rollback_to.is_some() => {
            DeployTarget::Rollback { to: q.rollback_to }
        }
        _ => {
            return Err(ApiError::invalid_field(FieldError::new(
                "(query)",
                "env with product and version, or component and image_tag, or rollback=true / rollback_to",
                "another combination",
            )))
        }
    };
    let req = DeployRequest { env: q.env, target, force: q.force, rollback_on_failure: true, idempotency_key: None };
    let (plan, revision) = s.services.preview(&req).await?;
    Ok((StatusCode::OK, Json(json!({ "catalog_revision": revision, "steps": plan.len(), "plan": plan }))))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    env: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/tasks?env=&limit=`: the newest tasks first (default 50, at most 1000), as a JSON array or
/// JSON lines (`format=ndjson`).
async fn list_tasks(
    State(s): State<HttpState>,
    _: Authorized<NeedRead>,
    format: ListFormat,
    Query(q): Query<ListQuery>,
) -> Response {
    let services = s.services.clone();
    let limit = q.limit.unwrap_or(50).clamp(1, 1000) as usize;
    list::paged(format, limit, move |before, n| {
        let (services, env) = (services.clone(), q.env.clone());
        async move {
            let rows = services.task_page(env.as_deref(), before, n).await?;
            Ok(rows.iter().map(|t| (t.id, task_json(t))).collect())
        }
    })
}

fn task_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::invalid_field(FieldError::new("id", "a task number", format!("{raw:?}"))))
}

async fn show_task(State(s): State<HttpState>, _: Authorized<NeedRead>, Path(id): Path<String>) -> Answer {
    let t = s.services.task(task_id(&id)?).await?;
    Ok((StatusCode::OK, Json(task_json(&t))))
}

async fn cancel_task(
    State(s): State<HttpState>,
    Authorized(actor, _): Authorized<NeedDeploy>,
    Path(id): Path<String>,
) -> Answer {
    let id = task_id(&id)?;
    let outcome = s.services.cancel(&actor, id).await?;
    let (status, word) = match &outcome {
        CancelOutcome::Cancelled => (StatusCode::OK, "cancelled".to_string()),
        CancelOutcome::Requested => (StatusCode::ACCEPTED, "cancelling".to_string()),
        CancelOutcome::AlreadyFinished(st) => (StatusCode::CONFLICT, format!("already {st}")),
        CancelOutcome::NotFound => return Err(ApiError::not_found(format!("task {id} does not exist"))),
    };
    if status == StatusCode::CONFLICT {
        return Err(ApiError::new(status, "conflict", format!("task {id} cannot be cancelled: {word}")));
    }
    Ok((status, Json(json!({ "task_id": id, "result": word }))))
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    follow: Option<String>,
}

/// `GET /tasks/{id}/log`: JSON lines (`{id, at, level, host, component, line}`); with `follow=1` the
/// stream stays open until the task ends and closes with `{"task": {id, status, error}}`.
async fn task_log(
    State(s): State<HttpState>,
    _: Authorized<NeedRead>,
    Path(id): Path<String>,
    q: Query<LogQuery>,
) -> Result<Response, ApiError> {
    let id = task_id(&id)?;
    s.services.task(id).await?;
    let follow = matches!(q.follow.as_deref(), Some("1" | "true" | "yes"));
    let services = s.services.clone();
    // Subscribe before the first read so no change between the read and the wait is missed.
    let changes = services.queue().subscribe();
    let state = (services, changes, q.after, false);
    let stream = futures_util::stream::unfold(state, move |(services, mut changes, after, done)| async move {
        if done {
            return None;
        }
        loop {
            let lines = match services.task_log(id, after).await {
                Ok(lines) => lines,
                Err(e) => {
                    tracing::error!(task = id, error = %e, "reading a task log failed");
                    return None;
                }
            };
            if let Some(last) = lines.last() {
                let next = last.id;
                let mut chunk = String::new();
                for l in &lines {
                    chunk.push_str(&log_line(l).to_string());
                    chunk.push('\n');
                }
                return Some((Ok::<_, Infallible>(Bytes::from(chunk)), (services, changes, next, false)));
            }
            let task = services.task(id).await.ok()?;
            if !follow || task.is_finished() {
                if !follow {
                    return None;
                }
                let end = json!({ "task": { "id": id, "status": task.status, "error": task.error } });
                return Some((Ok(Bytes::from(format!("{end}\n"))), (services, changes, after, true)));
            }
            // Wait for this task to change; a lagged receiver just re-reads.
            loop {
                match changes.recv().await {
                    Ok(changed) if changed == id => break,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response())
}

fn log_line(l: &store::task::LogRow) -> Value {
    json!({ "id": l.id, "at": rfc3339(l.at), "level": l.level, "host": l.host, "component": l.component, "line": l.line })
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/environments/{env}/history?limit=`: what happened on each host, newest first (default 100,
/// at most 10000), as a JSON array or JSON lines.
async fn env_history(
    State(s): State<HttpState>,
    _: Authorized<NeedRead>,
    format: ListFormat,
    Path(env): Path<String>,
    q: Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    s.services.environment(&env).await?;
    let services = s.services.clone();
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000) as usize;
    Ok(list::paged(format, limit, move |before, n| {
        let (services, env) = (services.clone(), env.clone());
        async move {
            let rows = services.history_page(&env, before, n).await?;
            Ok(rows
                .iter()
                .map(|r| {
                    let v = json!({
                        "at": rfc3339(r.at), "host": r.host, "component": r.component, "action": r.action,
                        "product": r.product, "version": r.version, "image": r.image, "image_tag": r.image_tag,
                        "image_digest": r.image_digest, "container": r.container, "task_id": r.task_id,
                    });
                    (r.id, v)
                })
                .collect())
        }
    }))
}

async fn check_env(State(s): State<HttpState>, _: Authorized<NeedRead>, Path(env): Path<String>) -> Answer {
    let check = s.services.check_env(&env).await?;
    Ok((StatusCode::OK, Json(json!({ "env": env, "drift": check.drift, "orphans": check.orphans }))))
}

async fn freeze(
    State(s): State<HttpState>,
    Authorized(actor, _): Authorized<NeedDeploy>,
    Path(env): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let mut map = json_object(&headers, body)?;
    let mut errors = Vec::new();
    let reason = take_string(&mut map, "reason", &mut errors);
    reject_unknown(&map, "reason", &mut errors);
    let (Some(reason), true) = (reason, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    let f = s.services.freeze(&actor, &env, &reason).await?;
    Ok((
        StatusCode::OK,
        Json(json!({ "env": f.env, "reason": f.reason, "frozen_by": f.frozen_by, "frozen_at": rfc3339(f.frozen_at) })),
    ))
}

async fn unfreeze(
    State(s): State<HttpState>,
    Authorized(actor, _): Authorized<NeedDeploy>,
    Path(env): Path<String>,
) -> Answer {
    let lifted = s.services.unfreeze(&actor, &env).await?;
    Ok((StatusCode::OK, Json(json!({ "env": env, "unfrozen": lifted }))))
}

/// `GET /api/v1/audit?limit=`: audit entries, newest first (default 100, at most 10000), as a JSON array
/// or JSON lines.
async fn audit(
    State(s): State<HttpState>,
    _: Authorized<NeedAdmin>,
    format: ListFormat,
    q: Query<HistoryQuery>,
) -> Response {
    let services = s.services.clone();
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000) as usize;
    list::paged(format, limit, move |before, n| {
        let services = services.clone();
        async move {
            let rows = services.audit_page(before, n).await?;
            Ok(rows
                .iter()
                .map(|r| {
                    let v = json!({ "id": r.id, "at": rfc3339(r.at), "actor": r.actor, "action": r.action,
                                    "target": r.target, "outcome": r.outcome, "detail": r.detail });
                    (r.id, v)
                })
                .collect())
        }
    })
}
