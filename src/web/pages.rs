//! The console's pages: each handler asks the services what the API would, shapes it for its template
//! and renders it; each form handler checks the session and CSRF token (`auth::writer`) and calls the
//! same service call as the API with the signed-in person as the actor.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Form, OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Value};

use super::auth::{reader, writer};
use super::{console, WebState};
use crate::catalog::{Catalog, Tier};
use crate::service::{DeployRequest, DeployTarget, ServiceError, WebSession, WorkItemQuery};
use crate::store::rfc3339;
use crate::store::task::TaskRow;

type Params = Query<HashMap<String, String>>;

fn param<'a>(q: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    q.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

macro_rules! viewer {
    ($s:expr, $headers:expr, $uri:expr) => {
        match reader(&$s, &$headers, &$uri).await {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

/// The session of a form, or the refusal (403) as the handler's answer.
macro_rules! signed {
    ($s:expr, $headers:expr, $form:expr) => {
        match writer(&$s, &$headers, &$form).await {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
}

macro_rules! tried {
    ($s:expr, $session:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return console(&$s).refusal(&e, $session),
        }
    };
}

fn short_digest(d: Option<&str>) -> String {
    d.map(|d| d.trim_start_matches("sha256:").chars().take(12).collect()).unwrap_or_default()
}

fn ago(ms: i64) -> String {
    rfc3339(ms).replace('T', " ").trim_end_matches('Z').chars().take(16).collect()
}

/// Where a task came from, by its actor's prefix (`web:`, `discord:`, `gitlab:` MR comment,
/// `gitlab-job:`, `token:` API or CLI, else the local CLI).
fn origin(requested_by: &str) -> &'static str {
    match requested_by.split_once(':').map(|(p, _)| p) {
        Some("web") => "web",
        Some("discord") => "discord",
        Some("gitlab") => "mr-comment",
        Some("gitlab-job") => "ci-job",
        Some("token") => "api",
        _ => "cli",
    }
}

fn what(t: &TaskRow) -> String {
    match (&t.product, &t.version, &t.component, &t.image_tag) {
        (Some(p), Some(v), _, _) => format!("{p} {v}"),
        (_, _, Some(c), Some(tag)) => format!("{c} @ {tag}"),
        _ => t.kind.to_string(),
    }
}

fn task_json(t: &TaskRow) -> Value {
    json!({
        "id": t.id, "kind": t.kind.to_string(), "env": t.env, "what": what(t), "status": t.status.to_string(),
        "finished": t.is_finished(), "by": t.requested_by, "origin": origin(&t.requested_by),
        "created": ago(t.created_at), "error": t.error,
    })
}

fn gitlab_url(s: &WebState) -> Option<&str> {
    console(s).oauth.as_ref().map(|o| o.gitlab_url.as_str())
}

fn may_change(catalog: &Catalog, session: Option<&WebSession>, env: &str) -> bool {
    match (session, catalog.environments.get(env)) {
        (Some(s), Some(def)) => s.user.may_change(env, def).is_ok(),
        _ => false,
    }
}

/// `GET /`: every product's components × environments.
pub(super) async fn overview(State(s): State<WebState>, headers: HeaderMap, OriginalUri(uri): OriginalUri) -> Response {
    let v = viewer!(s, headers, uri);
    let catalog = s.services.catalog_now();
    let mut envs = Vec::new();
    let mut cells: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    let mut by_task: HashMap<i64, String> = HashMap::new();
    for (name, def) in &catalog.environments {
        let view = tried!(s, v.session(), s.services.environment(name.as_str()).await);
        let recent = tried!(s, v.session(), s.services.tasks(Some(name.as_str()), 20).await);
        let active: Vec<Value> = recent.iter().filter(|t| !t.is_finished()).map(task_json).collect();
        for d in &view.deployed {
            if let std::collections::hash_map::Entry::Vacant(e) = by_task.entry(d.task_id) {
                let by = s.services.task(d.task_id).await.map(|t| t.requested_by).unwrap_or_default();
                e.insert(by);
            }
            cells.entry((name.to_string(), d.component.clone())).or_default().push(json!({
                "host": d.host, "version": d.version, "off_release": d.off_release,
                "digest": short_digest(d.image_digest.as_deref()), "since": d.since.replace('T', " ").chars().take(16).collect::<String>(),
                "by": by_task.get(&d.task_id), "task_id": d.task_id,
            }));
        }
        envs.push(json!({
            "name": name.as_str(), "tier": def.tier.as_str(), "frozen": view.frozen.as_ref().map(|f| json!({"reason": f.reason, "by": f.frozen_by})),
            "active": active,
        }));
    }
    let products: Vec<Value> = catalog
        .products
        .iter()
        .map(|(p, def)| {
            let rows: Vec<Value> = def
                .components
                .iter()
                .map(|c| {
                    let row: Vec<Value> = catalog
                        .environments
                        .keys()
                        .map(|e| {
                            let here = cells.get(&(e.to_string(), c.to_string())).cloned().unwrap_or_default();
                            let tier = catalog.environments[e].tier.as_str();
                            json!({ "env": e.as_str(), "tier": tier, "deployed": here })
                        })
                        .collect();
                    json!({ "component": c.as_str(), "cells": row })
                })
                .collect();
            json!({ "name": p.as_str(), "description": def.description, "rows": rows })
        })
        .collect();
    let data = json!({ "envs": envs, "products": products, "empty": catalog.products.is_empty() });
    console(&s).page("overview", "Overview", v.session(), &data)
}

/// `GET /ui/environments/{env}`: hosts, what runs, the timeline, and the actions.
pub(super) async fn environment(
    State(s): State<WebState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(env): Path<String>,
) -> Response {
    let v = viewer!(s, headers, uri);
    render_environment(&s, v.session(), &env, None).await
}

async fn render_environment(s: &WebState, session: Option<&WebSession>, env: &str, check: Option<Value>) -> Response {
    let catalog = s.services.catalog_now();
    let view = tried!(s, session, s.services.environment(env).await);
    let history = tried!(s, session, s.services.history_page(env, None, 50).await);
    let tasks = tried!(s, session, s.services.tasks(Some(env), 10).await);
    let def = &catalog.environments[env];
    let hosts: Vec<Value> =
        def.hosts.iter().map(|h| json!({ "name": h.name.as_str(), "address": h.address, "user": h.user })).collect();
    let deployed: Vec<Value> = view
        .deployed
        .iter()
        .map(|d| {
            json!({ "component": d.component, "host": d.host, "version": d.version, "image": d.image,
                    "digest": short_digest(d.image_digest.as_deref()), "container": d.container,
                    "since": d.since, "task_id": d.task_id })
        })
        .collect();
    let timeline: Vec<Value> = history
        .iter()
        .map(|h| {
            json!({ "at": ago(h.at), "host": h.host, "component": h.component, "action": h.action,
                    "version": h.version.clone().unwrap_or_else(|| format!("@ {}", h.image_tag)), "task_id": h.task_id })
        })
        .collect();
    let data = json!({
        "name": env, "tier": def.tier.as_str(), "hosts": hosts, "deployed": deployed, "timeline": timeline,
        "releases": view.releases, "frozen": view.frozen.as_ref().map(|f| json!({"reason": f.reason, "by": f.frozen_by, "at": ago(f.frozen_at)})),
        "tasks": tasks.iter().map(task_json).collect::<Vec<_>>(),
        "may_change": may_change(&catalog, session, env), "csrf": session.map(|x| x.csrf.clone()), "check": check,
    });
    console(s).page("environment", &format!("Environment {env}"), session, &data)
}

fn form_text<'a>(form: &'a HashMap<String, String>, key: &str) -> &'a str {
    form.get(key).map(|v| v.trim()).unwrap_or_default()
}

/// `POST /ui/environments/{env}/freeze`.
pub(super) async fn freeze(
    State(s): State<WebState>,
    headers: HeaderMap,
    Path(env): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = signed!(s, headers, form);
    tried!(s, Some(&session), s.services.freeze(&session.actor(), &env, form_text(&form, "reason")).await);
    Redirect::to(&format!("/ui/environments/{}", crate::urlenc::encode(&env))).into_response()
}

/// `POST /ui/environments/{env}/unfreeze`.
pub(super) async fn unfreeze(
    State(s): State<WebState>,
    headers: HeaderMap,
    Path(env): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = signed!(s, headers, form);
    tried!(s, Some(&session), s.services.unfreeze(&session.actor(), &env).await);
    Redirect::to(&format!("/ui/environments/{}", crate::urlenc::encode(&env))).into_response()
}

/// `POST /ui/environments/{env}/check`: compares the hosts with the record and shows the result.
pub(super) async fn check(
    State(s): State<WebState>,
    headers: HeaderMap,
    Path(env): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = signed!(s, headers, form);
    let found = tried!(s, Some(&session), s.services.check_env(&env).await);
    let check = serde_json::to_value(&found).unwrap_or_default();
    render_environment(&s, Some(&session), &env, Some(check)).await
}

/// The request a deploy form or query describes, or the field that is missing.
fn request_of(q: &HashMap<String, String>) -> Option<DeployRequest> {
    let env = param(q, "env")?.to_string();
    let target = if let Some(to) = param(q, "rollback") {
        DeployTarget::Rollback { to: (to != "previous").then(|| to.to_string()) }
    } else if let (Some(c), Some(tag)) = (param(q, "component"), param(q, "image_tag")) {
        DeployTarget::Component { component: c.to_string(), image_tag: tag.to_string() }
    } else {
        DeployTarget::Release {
            product: param(q, "product")?.to_string(),
            version: param(q, "version")?.to_string(),
            components: Vec::new(),
        }
    };
    Some(DeployRequest { env, target, force: false, rollback_on_failure: true, idempotency_key: None })
}

fn plan_json(plan: &crate::deploy::plan::Plan) -> Value {
    let label =
        |spec: &crate::deploy::spec::RunSpec| spec.version.clone().unwrap_or_else(|| format!("@ {}", spec.image_tag));
    let waves: Vec<Value> = plan
        .waves
        .iter()
        .enumerate()
        .map(|(i, wave)| {
            let steps: Vec<Value> = wave
                .iter()
                .map(|st| {
                    json!({ "host": st.host.name, "component": st.spec.component,
                            "from": st.previous.as_ref().map(label).unwrap_or_else(|| "—".into()), "to": label(&st.spec),
                            "switch": st.switch.is_some() })
                })
                .collect();
            json!({ "n": i + 1, "steps": steps })
        })
        .collect();
    let unchanged: Vec<Value> = plan
        .unchanged
        .iter()
        .map(|u| json!({ "host": u.host, "component": u.component, "reason": u.reason }))
        .collect();
    json!({ "waves": waves, "unchanged": unchanged, "empty": plan.is_empty() })
}

/// `GET /ui/deploy`: environment → product → version (or a component build on dev/test, or a
/// rollback), then the plan and the Deploy button.
pub(super) async fn deploy_form(
    State(s): State<WebState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(q): Params,
) -> Response {
    let v = viewer!(s, headers, uri);
    let catalog = s.services.catalog_now();
    let env = param(&q, "env");
    let product = param(&q, "product");
    let tier = env.and_then(|e| catalog.environments.get(e)).map(|d| d.tier);
    let envs: Vec<Value> = catalog
        .environments
        .iter()
        .map(|(n, d)| json!({ "name": n.as_str(), "tier": d.tier.as_str(), "selected": Some(n.as_str()) == env }))
        .collect();
    let products: Vec<Value> = catalog
        .products
        .keys()
        .map(|p| json!({ "name": p.as_str(), "selected": Some(p.as_str()) == product }))
        .collect();
    let mut versions = Vec::new();
    let mut components = Vec::new();
    if let Some(p) = product.filter(|p| catalog.products.contains_key(*p)) {
        let stored = tried!(s, v.session(), s.services.releases(p).await);
        versions = stored
            .iter()
            .take(100)
            .map(|r| json!({ "version": r.version, "selected": Some(r.version.as_str()) == param(&q, "version") }))
            .collect();
        if matches!(tier, Some(Tier::Dev | Tier::Test)) {
            components = catalog.products[p]
                .components
                .iter()
                .map(|c| json!({ "name": c.as_str(), "selected": Some(c.as_str()) == param(&q, "component") }))
                .collect();
        }
    }
    let mut data = json!({
        "envs": envs, "products": products, "versions": versions, "components": components,
        "env": env, "product": product, "version": param(&q, "version"), "component": param(&q, "component"),
        "image_tag": param(&q, "image_tag"), "rollback": param(&q, "rollback"),
        "prod": tier == Some(Tier::Prod),
    });
    if let Some(req) = request_of(&q) {
        match s.services.preview(&req).await {
            Ok((plan, _)) => {
                data["plan"] = plan_json(&plan);
                data["may_deploy"] = json!(may_change(&catalog, v.session(), &req.env));
                data["csrf"] = json!(v.session().map(|x| x.csrf.clone()));
            }
            Err(ServiceError::Invalid(errors)) => {
                data["errors"] = json!(errors.iter().map(ToString::to_string).collect::<Vec<_>>());
            }
            Err(e) => return console(&s).refusal(&e, v.session()),
        }
    }
    console(&s).page("deploy", "Deploy", v.session(), &data)
}

/// `POST /ui/deploy`: queues the deploy the form describes and answers with its task page. Production
/// needs the environment's name typed into `confirm`.
pub(super) async fn deploy(
    State(s): State<WebState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = signed!(s, headers, form);
    let c = console(&s);
    let Some(req) = request_of(&form) else {
        let text = "env and (product, version) or (component, image_tag) or rollback: expected in the form";
        return c.message(StatusCode::UNPROCESSABLE_ENTITY, "Not valid", text, Some(&session));
    };
    let catalog = s.services.catalog_now();
    if catalog.environments.get(req.env.as_str()).is_some_and(|d| d.tier == Tier::Prod)
        && form_text(&form, "confirm") != req.env
    {
        let text =
            format!("confirm: type the environment's name ({}) to deploy to production; nothing was queued", req.env);
        return c.message(StatusCode::UNPROCESSABLE_ENTITY, "Not confirmed", &text, Some(&session));
    }
    let (task, _) = tried!(s, Some(&session), s.services.request_deploy(&session.actor(), &req).await);
    Redirect::to(&format!("/ui/tasks/{}", task.id)).into_response()
}

/// `GET /ui/tasks`: recent tasks, filtered by environment, status, actor and origin.
pub(super) async fn tasks(
    State(s): State<WebState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(q): Params,
) -> Response {
    let v = viewer!(s, headers, uri);
    let before = param(&q, "before").and_then(|b| b.parse::<i64>().ok());
    let page = tried!(s, v.session(), s.services.task_page(param(&q, "env"), before, 500).await);
    let rows: Vec<Value> = page
        .iter()
        .filter(|t| param(&q, "status").is_none_or(|st| t.status.to_string() == st))
        .filter(|t| param(&q, "actor").is_none_or(|a| t.requested_by.contains(a)))
        .filter(|t| param(&q, "origin").is_none_or(|o| origin(&t.requested_by) == o))
        .take(100)
        .map(task_json)
        .collect();
    let older = page.last().filter(|_| page.len() == 500).map(|t| t.id);
    let data = json!({
        "tasks": rows, "older": older,
        "env": param(&q, "env"), "status": param(&q, "status"), "actor": param(&q, "actor"), "origin": param(&q, "origin"),
        "envs": s.services.catalog_now().environments.keys().map(|e| e.as_str().to_string()).collect::<Vec<_>>(),
        "statuses": ["queued", "running", "succeeded", "failed", "cancelled", "interrupted"],
        "origins": ["web", "api", "ci-job", "mr-comment", "discord", "cli"],
    });
    console(&s).page("tasks", "Tasks", v.session(), &data)
}

/// `GET /ui/tasks/{id}`: a task with its plan, steps, result and log (live through
/// `/ui/tasks/{id}/events` where JavaScript runs, refreshed otherwise).
pub(super) async fn task(
    State(s): State<WebState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
) -> Response {
    let v = viewer!(s, headers, uri);
    let Ok(id) = id.parse::<i64>() else {
        return console(&s).message(StatusCode::NOT_FOUND, "Not found", "task: expected a task number", v.session());
    };
    let t = tried!(s, v.session(), s.services.task(id).await);
    let lines = tried!(s, v.session(), s.services.task_log(id, 0).await);
    let log: Vec<Value> = lines.iter().map(log_json).collect();
    let plan = t
        .plan
        .as_deref()
        .and_then(|p| serde_json::from_str::<crate::deploy::plan::Plan>(p).ok())
        .map(|p| plan_json(&p));
    let catalog = s.services.catalog_now();
    let back = match origin(&t.requested_by) {
        "ci-job" => s.services.gitlab().map(|_| "the GitLab job named above"),
        _ => None,
    };
    let data = json!({
        "task": task_json(&t), "log": log, "after": lines.last().map(|l| l.id).unwrap_or(0), "plan": plan,
        "started": t.started_at.map(ago), "finished_at": t.finished_at.map(ago),
        "may_cancel": !t.is_finished() && may_change(&catalog, v.session(), &t.env),
        "csrf": v.session().map(|x| x.csrf.clone()), "back": back,
    });
    console(&s).page("task", &format!("Task {id}"), v.session(), &data)
}

fn log_json(l: &crate::store::task::LogRow) -> Value {
    let place = [l.host.as_deref(), l.component.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
    json!({ "id": l.id, "at": rfc3339(l.at), "level": l.level, "place": place, "line": l.line })
}

/// `GET /ui/tasks/{id}/events`: the task's log as Server-Sent Events (`line` per log line, then one
/// `status` when it has finished), from line `after` on.
pub(super) async fn task_events(
    State(s): State<WebState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<i64>,
    Query(q): Params,
) -> Response {
    if let Err(r) = reader(&s, &headers, &uri).await {
        return r;
    }
    let after = param(&q, "after").and_then(|a| a.parse::<i64>().ok()).unwrap_or(0);
    let services = s.services.clone();
    let stream = futures_util::stream::unfold((after, false), move |(after, done)| {
        let services = services.clone();
        async move {
            if done {
                return None;
            }
            loop {
                let task = match services.task(id).await {
                    Ok(t) => t,
                    Err(e) => {
                        let ev = Event::default()
                            .event("status")
                            .data(json!({ "status": "unknown", "error": e.to_string() }).to_string());
                        return Some((Ok::<_, Infallible>(vec![ev]), (after, true)));
                    }
                };
                let lines = services.task_log(id, after).await.unwrap_or_default();
                let mut events: Vec<Event> =
                    lines.iter().map(|l| Event::default().event("line").data(log_json(l).to_string())).collect();
                let next = lines.last().map(|l| l.id).unwrap_or(after);
                // Finished and every line sent: say how it ended, then stop.
                if task.is_finished() && lines.is_empty() {
                    let data = json!({ "status": task.status.to_string(), "error": task.error });
                    events.push(Event::default().event("status").data(data.to_string()));
                    return Some((Ok(events), (next, true)));
                }
                if !events.is_empty() {
                    return Some((Ok(events), (next, false)));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });
    let flat = futures_util::StreamExt::flat_map(stream, |batch| {
        futures_util::stream::iter(batch.unwrap_or_default().into_iter().map(Ok::<_, Infallible>))
    });
    Sse::new(flat).keep_alive(KeepAlive::default()).into_response()
}

/// `POST /ui/tasks/{id}/cancel`.
pub(super) async fn cancel(
    State(s): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = signed!(s, headers, form);
    tried!(s, Some(&session), s.services.cancel(&session.actor(), id).await);
    Redirect::to(&format!("/ui/tasks/{id}")).into_response()
}

/// `GET /ui/releases/{product}`: the product's versions, newest first.
pub(super) async fn releases(
    State(s): State<WebState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(product): Path<String>,
) -> Response {
    let v = viewer!(s, headers, uri);
    let list = tried!(s, v.session(), s.services.releases(&product).await);
    let rows: Vec<Value> = list
        .iter()
        .map(|r| {
            let parts: Vec<String> = r.components.iter().map(|c| format!("{} {}", c.component, c.version)).collect();
            json!({ "version": r.version, "created": ago(r.created_at), "by": r.created_by, "parts": parts.join(", ") })
        })
        .collect();
    let data = json!({ "product": product, "versions": rows });
    console(&s).page("releases", &format!("Releases of {product}"), v.session(), &data)
}

/// `GET /ui/releases/{product}/{version}`: bill of materials, where it runs, its work items, and with
/// `?diff=OTHER` what changed against another version.
pub(super) async fn release(
    State(s): State<WebState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path((product, version)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let v = viewer!(s, headers, uri);
    let pv = tried!(s, v.session(), s.services.release(&product, &version).await);
    let all = tried!(s, v.session(), s.services.releases(&product).await);
    let items = tried!(s, v.session(), s.services.version_work_items(&product, &pv.version).await);
    let bom: Vec<Value> = pv
        .components
        .iter()
        .map(|c| {
            json!({ "component": c.component, "version": c.version, "git_tag": c.git_tag, "image": c.image,
                    "image_tag": c.image_tag, "digest": c.image_digest })
        })
        .collect();
    let mut diff = Value::Null;
    if let Some(other) = param(&q, "diff") {
        let o = tried!(s, v.session(), s.services.release(&product, other).await);
        let theirs = o.version_map();
        let mut changed = Vec::new();
        for c in &pv.components {
            let before = theirs.get(c.component.as_str()).map(|v| v.to_string());
            if before.as_deref() == Some(c.version.as_str()) {
                continue;
            }
            let commits = match &before {
                Some(b) => tried!(s, v.session(), s.services.changes_between(&c.component, b, &c.version).await),
                None => Vec::new(),
            };
            let commits: Vec<Value> = commits
                .iter()
                .map(|k| json!({ "sha": k.sha.chars().take(8).collect::<String>(), "title": k.title, "version": k.version }))
                .collect();
            changed.push(json!({ "component": c.component, "from": before.unwrap_or_else(|| "—".into()), "to": c.version, "commits": commits }));
        }
        diff = json!({ "other": o.version, "changed": changed });
    }
    let mut columns: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for it in &items.items {
        let state = it.state_label.clone().unwrap_or_else(|| it.item.state.clone());
        columns.entry(state).or_default().push(item_card(it, gitlab_url(&s)));
    }
    let reached: Vec<Value> = items
        .deployed
        .iter()
        .map(|r| json!({ "env": r.env, "at": ago(r.deployed_at), "task_id": r.task_id, "current": r.current }))
        .collect();
    let others: Vec<Value> = all.iter().filter(|r| r.version != pv.version).map(|r| json!(r.version)).collect();
    let data = json!({
        "product": product, "version": pv.version, "created": ago(pv.created_at), "by": pv.created_by, "bom": bom,
        "diff": diff, "others": others, "reached": reached,
        "states": columns.into_iter().map(|(state, cards)| json!({ "state": state, "cards": cards })).collect::<Vec<_>>(),
    });
    console(&s).page("release", &format!("{product} {}", pv.version), v.session(), &data)
}

/// Where a work item's link leads: an MR on GitLab (when Tao knows GitLab's URL), a product version or
/// environment page here; commits and component versions are shown without a link.
fn link_url(kind: &str, target: &str, gitlab: Option<&str>) -> Option<String> {
    match kind {
        "merge_request" => {
            let (project, iid) = target.rsplit_once('!')?;
            gitlab.map(|g| format!("{}/{project}/-/merge_requests/{iid}", g.trim_end_matches('/')))
        }
        "product_version" => target.split_once('@').map(|(p, v)| format!("/ui/releases/{p}/{v}")),
        "environment" => Some(format!("/ui/environments/{target}")),
        _ => None,
    }
}

fn item_card(it: &crate::service::VersionItem, gitlab: Option<&str>) -> Value {
    let links: Vec<Value> = it
        .links
        .iter()
        .map(|l| json!({ "kind": l.target_kind, "target": l.target, "url": link_url(&l.target_kind, &l.target, gitlab) }))
        .collect();
    json!({
        "id": it.item.short_id.clone().unwrap_or_else(|| it.item.id.clone()), "kind": it.item.kind.as_str(),
        "title": it.item.title, "owner": it.item.owner, "version": it.item.version, "links": links,
    })
}

/// `GET /ui/work-items/{product}`: a board with one column per state; filters kind, version, iteration.
pub(super) async fn work_items(
    State(s): State<WebState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(product): Path<String>,
    Query(q): Params,
) -> Response {
    let v = viewer!(s, headers, uri);
    let query = WorkItemQuery {
        product: product.clone(),
        kind: param(&q, "kind").map(str::to_string),
        state: None,
        version: param(&q, "version").map(str::to_string),
        iteration: param(&q, "iteration").map(str::to_string),
    };
    let items = tried!(s, v.session(), s.services.work_items(&query).await);
    let mut columns: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for it in &items {
        let state = it.state_label.clone().unwrap_or_else(|| it.item.state.clone());
        columns.entry(state).or_default().push(item_card(it, gitlab_url(&s)));
    }
    let data = json!({
        "product": product, "kind": query.kind, "version": query.version, "iteration": query.iteration,
        "count": items.len(),
        "columns": columns.into_iter().map(|(state, cards)| json!({ "state": state, "cards": cards })).collect::<Vec<_>>(),
    });
    console(&s).page("work_items", &format!("Work items of {product}"), v.session(), &data)
}

/// `GET /ui/policy`: catalog projects that drift from the policy, and MRs whose `tao/policy` fails.
pub(super) async fn policy(State(s): State<WebState>, headers: HeaderMap, OriginalUri(uri): OriginalUri) -> Response {
    let v = viewer!(s, headers, uri);
    let failing = tried!(s, v.session(), s.services.failing_policy_checks(200).await);
    let mrs: Vec<Value> = failing
        .iter()
        .map(|c| {
            let verdict: Value = serde_json::from_str(&c.verdict).unwrap_or_default();
            let n = verdict["violations"].as_array().map(Vec::len).unwrap_or(0);
            json!({ "project": c.project_path, "iid": c.mr_iid, "title": c.title, "source": c.source_branch,
                    "target": c.target_branch, "problems": n, "at": ago(c.checked_at),
                    "href": format!("/ui/policy/{}/{}", c.project_path, c.mr_iid) })
        })
        .collect();
    let (drift, audit_error) = match s.services.policy_audit(None).await {
        Ok(audits) => {
            let rows: Vec<Value> = audits
                .iter()
                .filter(|a| a.error.is_some() || !serde_json::to_value(&a.audit).map(|x| x["changes"].as_array().is_none_or(Vec::is_empty)).unwrap_or(true))
                .map(|a| json!({ "project": a.project, "error": a.error, "audit": serde_json::to_string(&a.audit).unwrap_or_default() }))
                .collect();
            (rows, None)
        }
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let data = json!({ "mrs": mrs, "drift": drift, "audit_error": audit_error });
    console(&s).page("policy", "Policy", v.session(), &data)
}

/// `GET /ui/delivery/{product}`: the DORA numbers and pictures, and the cumulative flow.
pub(super) async fn delivery(
    State(s): State<WebState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(product): Path<String>,
) -> Response {
    let v = viewer!(s, headers, uri);
    if !s.services.catalog_now().products.keys().any(|p| p.as_str() == product) {
        return console(&s).message(
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("no product {product:?} in the catalog"),
            v.session(),
        );
    }
    let now = crate::store::now_ms();
    let q = crate::metrics::series::Query {
        product: Some(product.clone()),
        env: None,
        version: None,
        from: now - 30 * 86_400_000,
        to: now,
    };
    let rows = tried!(s, v.session(), s.services.metric_series("dora", &q).await).unwrap_or_default();
    let dora: Vec<Value> = rows.into_iter().map(Value::Object).collect();
    let data = json!({ "product": product, "dora": dora, "none": dora.iter().all(|d| d["deployments"] == 0) });
    console(&s).page("delivery", &format!("Delivery of {product}"), v.session(), &data)
}

/// `GET /ui/delivery/{product}/{dora.png|cfd.png}`: the pictures `tao report` renders.
pub(super) async fn delivery_picture(
    State(s): State<WebState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path((product, picture)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let v = viewer!(s, headers, uri);
    let now = crate::store::now_ms();
    let made = match picture.as_str() {
        "dora.png" => s.services.dora_picture(&crate::metrics::report::DoraOptions::new(product), now).await,
        "cfd.png" => {
            let mut opts = crate::metrics::report::CfdOptions::new(product);
            opts.version = param(&q, "version").map(str::to_string);
            s.services.cfd_picture(&opts, now).await
        }
        _ => {
            return console(&s).message(StatusCode::NOT_FOUND, "Not found", "expected dora.png or cfd.png", v.session())
        }
    };
    match made {
        Ok(p) => ([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], p.png).into_response(),
        Err(e) => console(&s).message(StatusCode::UNPROCESSABLE_ENTITY, "No picture", &e.to_string(), v.session()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_come_from_the_actor() {
        assert_eq!(origin("web:ann"), "web");
        assert_eq!(origin("discord:bob"), "discord");
        assert_eq!(origin("gitlab:carol"), "mr-comment");
        assert_eq!(origin("gitlab-job:17 (monitor/ops v1, pipeline 3)"), "ci-job");
        assert_eq!(origin("token:ci"), "api");
        assert_eq!(origin("root"), "cli");
    }
}
