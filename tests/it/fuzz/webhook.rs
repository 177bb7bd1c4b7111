//! The webhook target (`tao::gitlab::webhook` and `tao::gitlab::events`): a delivery — its headers and
//! body — goes through the envelope (what Tao stores) and the typed views of every kind Tao acts on.
//!
//! An input is a delivery as text: header lines (`X-Gitlab-Event: Push Hook`, `Idempotency-Key`,
//! `X-Gitlab-Event-UUID`, `X-Gitlab-Webhook-UUID`, and `X-Tao-Kind` for the kind a status check request
//! is stored under), a blank line, the body; without a blank line it is all body. Properties: nothing
//! panics; a delivery is refused exactly when its event header is blank or its body is no JSON object;
//! a stored event keeps the body byte for byte, the header verbatim, a kind (never empty), the delivery
//! id GitLab sent (else the generated one), the project the payload names, and an ordering key naming that
//! project; a typed view either fails naming its kind or reads the fields the payload has, and still
//! reads with a field it does not know added.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};
use tao::gitlab::events::{GitLabEvent, EXTERNAL_STATUS_CHECK};
use tao::gitlab::webhook::{envelope_of_kind, kind_of, DeliveryHeaders, RejectReason, DOCUMENTED_KINDS};
use tao::store::event::DeliveryId;

use super::mutate;

/// The fixture directory of this target.
pub const TARGET: &str = "webhook";

/// When the envelope says the delivery arrived.
const RECEIVED: i64 = 1_700_000_000_000;

/// The id the envelope uses when the delivery has none.
const GENERATED: &str = "fuzz-generated-id";

/// The kinds with a typed view.
const VIEW_KINDS: &[&str] = &[
    "push",
    "tag_push",
    "merge_request",
    "note",
    "pipeline",
    "build",
    "deployment",
    "release",
    "issue",
    EXTERNAL_STATUS_CHECK,
];

/// `X-Gitlab-Event` of each seed, by file name (as the fixtures' README lists them).
const SEED_EVENTS: &[(&str, &str)] = &[
    ("push.json", "Push Hook"),
    ("tag_push.json", "Tag Push Hook"),
    ("merge_request.json", "Merge Request Hook"),
    ("note_merge_request.json", "Note Hook"),
    ("pipeline.json", "Pipeline Hook"),
    ("job.json", "Job Hook"),
    ("deployment.json", "Deployment Hook"),
    ("release.json", "Release Hook"),
    ("issue.json", "Issue Hook"),
    ("member.json", "Member Hook"),
    ("system_hook_push.json", "System Hook"),
    ("external_status_check_request.json", "External Status Check"),
];

/// Keys the envelope and the views read, for generated payloads and mutations.
const KEYS: &[&str] = &[
    "object_kind",
    "event_name",
    "project",
    "id",
    "iid",
    "path_with_namespace",
    "project_id",
    "object_attributes",
    "target_project_id",
    "source_branch",
    "repository",
    "homepage",
    "ref",
    "merge_request",
    "noteable_type",
    "noteable_id",
    "note",
    "tag",
    "pipeline_id",
    "deployment_id",
    "build_id",
    "external_approval_rule",
    "commits",
    "after",
    "labels",
    "title",
    "assignees",
    "user",
    "changes",
    "status",
    "action",
    "",
];

/// Strings worth putting in payloads and headers.
const STRINGS: &[&str] = &[
    "push",
    "tag_push",
    "merge_request",
    "note",
    "pipeline",
    "build",
    "deployment",
    "release",
    "issue",
    "external_status_check",
    "MergeRequest",
    "Issue",
    "refs/heads/main",
    "refs/tags/v1.0.0",
    "0000000000000000000000000000000000000000",
    "monitor/api",
    "https://gitlab.example.com/monitor/api",
    "https://",
    "gitlab.example.com/",
    "/",
    "://",
    "",
    " ",
    "é",
    "\u{0}",
    "\u{202e}",
];

/// `X-Gitlab-Event` values.
const EVENTS: &[&str] = &[
    "Push Hook",
    "Tag Push Hook",
    "Merge Request Hook",
    "Note Hook",
    "Pipeline Hook",
    "Job Hook",
    "System Hook",
    "Resource Access Token Hook",
    "External Status Check",
    " Hook",
    "Hook",
    "Hook Hook",
    "x Hook Hook",
    "",
    " ",
    "\t",
    "\u{85}",
    "Ünïcode Hook",
];

/// Fragments of JSON for mutations: odd numbers, escapes, duplicate keys.
const TOKENS: &[&str] = &[
    "\"object_kind\":\"push\",",
    "\"object_kind\":\"note\",",
    "\"object_kind\":null,",
    "\"project\":{\"id\":1e3},",
    "\"project_id\":-9223372036854775808,",
    "\"project_id\":18446744073709551616,",
    "1e999",
    "-0",
    "0.0",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\"\\ud83e\\udd80\"",
    "null",
    "true",
    "[]",
    "{}",
    "\n\n",
    "X-Gitlab-Event: Note Hook\n",
    "Idempotency-Key: \n",
    "X-Tao-Kind: external_status_check\n",
];

fn nest_arrays(depth: usize) -> String {
    mutate::nested("[", "1", "]", depth)
}

fn nest_objects(depth: usize) -> String {
    mutate::nested("{\"object_attributes\":", "{}", "}", depth)
}

fn nest_unclosed(depth: usize) -> String {
    "[{\"a\":".repeat(depth)
}

const NESTERS: &[mutate::Nester] = &[nest_arrays, nest_objects, nest_unclosed];

/// A delivery's headers and body, read from an input (see the module header).
struct Delivery<'a> {
    headers: DeliveryHeaders,
    kind: Option<String>,
    body: &'a [u8],
}

fn read(input: &[u8]) -> Delivery<'_> {
    let mut delivery = Delivery { headers: DeliveryHeaders::default(), kind: None, body: input };
    let Some(split) = input.windows(2).position(|w| w == b"\n\n") else { return delivery };
    delivery.body = &input[split + 2..];
    for line in String::from_utf8_lossy(&input[..split]).split('\n') {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match name.trim().to_ascii_lowercase().as_str() {
            "x-gitlab-event" => delivery.headers.event = Some(value),
            "idempotency-key" => delivery.headers.idempotency_key = Some(value),
            "x-gitlab-event-uuid" => delivery.headers.event_uuid = Some(value),
            "x-gitlab-webhook-uuid" => delivery.headers.webhook_uuid = Some(value),
            "x-tao-kind" => delivery.kind = Some(value),
            _ => {}
        }
    }
    delivery
}

/// A delivery as an input: header lines, a blank line, the body.
fn write(headers: &[(&str, Option<String>)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        if let Some(value) = value {
            out.extend_from_slice(format!("{name}: {value}\n").as_bytes());
        }
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// The seed files as deliveries, with the header GitLab sends them with.
pub fn seed_deliveries(seeds: &[super::engine::Named]) -> Vec<super::engine::Named> {
    seeds
        .iter()
        .map(|(name, body)| {
            let event = SEED_EVENTS.iter().find(|(file, _)| file == name).map_or("System Hook", |(_, event)| event);
            let kind = (name == "external_status_check_request.json").then(|| EXTERNAL_STATUS_CHECK.to_owned());
            let headers = [
                ("X-Gitlab-Event", Some(event.to_owned())),
                ("Idempotency-Key", Some(format!("seed-{name}"))),
                ("X-Tao-Kind", kind),
            ];
            (name.clone(), write(&headers, body))
        })
        .collect()
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => any::<i64>().prop_map(Value::from),
        2 => (0i64..50).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        4 => proptest::sample::select(STRINGS).prop_map(Value::from),
        2 => proptest::collection::vec(any::<char>(), 0..12).prop_map(|c| Value::String(String::from_iter(c))),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            1 => proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            3 => proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// A payload: mostly an object with an `object_kind`, keys the envelope reads, nested blocks.
fn payload() -> impl Strategy<Value = Value> {
    let kind = proptest::option::of(prop_oneof![
        4 => proptest::sample::select(DOCUMENTED_KINDS).prop_map(Value::from),
        1 => leaf(),
    ]);
    let object = (kind, proptest::collection::vec((proptest::sample::select(KEYS), value()), 0..10)).prop_map(
        |(kind, pairs)| {
            let mut map: Map<String, Value> = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if let Some(kind) = kind {
                map.insert("object_kind".to_owned(), kind);
            }
            Value::Object(map)
        },
    );
    prop_oneof![6 => object, 1 => value()]
}

fn header_value() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(
        0.8,
        prop_oneof![
            3 => "[!-~]{1,40}",
            1 => "[ -~]{0,210}",
            1 => proptest::sample::select(STRINGS).prop_map(str::to_owned),
            1 => proptest::collection::vec(any::<char>(), 0..8).prop_map(String::from_iter),
        ]
        .prop_map(|v| v.replace('\n', " ")),
    )
}

fn delivery() -> impl Strategy<Value = Vec<u8>> {
    let event = proptest::option::weighted(
        0.95,
        prop_oneof![4 => proptest::sample::select(EVENTS).prop_map(str::to_owned), 1 => "[ -~]{0,20}"],
    );
    let kind = proptest::option::weighted(0.1, proptest::sample::select(VIEW_KINDS).prop_map(str::to_owned));
    (event, header_value(), header_value(), header_value(), kind, payload(), any::<bool>()).prop_map(
        |(event, key, uuid, hook, kind, payload, pretty)| {
            let body = if pretty { serde_json::to_vec_pretty(&payload) } else { serde_json::to_vec(&payload) };
            let headers = [
                ("X-Gitlab-Event", event),
                ("Idempotency-Key", key),
                ("X-Gitlab-Event-UUID", uuid),
                ("X-Gitlab-Webhook-UUID", hook),
                ("X-Tao-Kind", kind),
            ];
            write(&headers, &body.expect("JSON values serialize"))
        },
    )
}

/// Generated deliveries, and mutations of the seed deliveries.
pub fn strategy(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![3 => mutate::mutations(seeds, TOKENS, NESTERS), 2 => delivery()]
}

fn at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn text_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    at(v, path)?.as_str()
}

fn int_at(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path)?.as_i64()
}

/// What a view read must be what the payload holds, where the payload holds it.
fn same<T: PartialEq + std::fmt::Debug>(kind: &str, field: &str, read: T, payload: Option<T>) -> Result<(), String> {
    match payload {
        Some(want) if want != read => {
            Err(format!("the {kind} view reads {field} as {read:?}, the payload has {want:?}"))
        }
        _ => Ok(()),
    }
}

fn view_fields(kind: &str, view: &GitLabEvent, p: &Value) -> Result<(), String> {
    match view {
        GitLabEvent::Push(e) | GitLabEvent::TagPush(e) => {
            same(kind, "ref", e.git_ref.as_str(), text_at(p, &["ref"]))?;
            same(kind, "after", e.after.as_str(), text_at(p, &["after"]))?;
            let deleted = !e.after.is_empty() && e.after.bytes().all(|b| b == b'0');
            same(kind, "is_deletion", e.is_deletion(), Some(deleted))
        }
        GitLabEvent::MergeRequest(e) => {
            same(kind, "iid", e.object_attributes.iid, int_at(p, &["object_attributes", "iid"]))
        }
        GitLabEvent::Note(e) => {
            same(kind, "note", e.object_attributes.note.as_str(), text_at(p, &["object_attributes", "note"]))
        }
        GitLabEvent::Pipeline(e) => same(kind, "id", e.object_attributes.id, int_at(p, &["object_attributes", "id"])),
        GitLabEvent::Job(e) => same(kind, "build_id", e.build_id, int_at(p, &["build_id"])),
        GitLabEvent::Deployment(e) => same(kind, "deployment_id", e.deployment_id, int_at(p, &["deployment_id"])),
        GitLabEvent::Release(e) => same(kind, "tag", e.tag.as_str(), text_at(p, &["tag"])),
        GitLabEvent::StatusCheck(e) => {
            same(kind, "rule id", e.external_approval_rule.id, int_at(p, &["external_approval_rule", "id"]))
        }
        GitLabEvent::Issue(e) => {
            same(kind, "iid", e.object_attributes.iid, int_at(p, &["object_attributes", "iid"]).map(Some))
        }
        GitLabEvent::Other(other) if other == kind && !VIEW_KINDS.contains(&kind) => Ok(()),
        GitLabEvent::Other(other) => Err(format!("kind {kind:?} has no view but reads as Other({other:?})")),
    }
}

/// The typed view of `payload` as `kind`: fails naming the kind, or reads the payload's fields and
/// tolerates an unknown field.
fn view(kind: &str, payload: &Value) -> Result<(), String> {
    match GitLabEvent::parse(kind, payload) {
        Err(e) => {
            let said = e.to_string();
            if e.kind != kind || !said.starts_with(&format!("{kind} payload: ")) {
                return Err(format!("a failed {kind:?} view names kind {:?}: {said}", e.kind));
            }
            Ok(())
        }
        Ok(view) => {
            view_fields(kind, &view, payload)?;
            let mut more = payload.clone();
            if let Value::Object(map) = &mut more {
                map.insert("tao_fuzz_unknown_field".to_owned(), serde_json::json!([1, {"x": null}]));
            }
            GitLabEvent::parse(kind, &more)
                .map(|_| ())
                .map_err(|e| format!("the {kind:?} view reads the payload but not with an unknown field added: {e}"))
        }
    }
}

fn stored(d: &Delivery<'_>, payload: &Value, e: &tao::store::event::NewEvent) -> Result<(), String> {
    let event = d.headers.event.clone().unwrap_or_default();
    if e.payload.as_bytes() != d.body {
        return Err("the stored payload is not the body as sent".to_owned());
    }
    if e.event_header != event || e.received_at != RECEIVED {
        return Err(format!("stored header {:?} at {}, sent {event:?} at {RECEIVED}", e.event_header, e.received_at));
    }
    let kind = d.kind.clone().unwrap_or_else(|| kind_of(&event, payload));
    if e.kind != kind || e.kind.is_empty() {
        return Err(format!("stored kind {:?}, expected {kind:?} (never empty)", e.kind));
    }
    let sent =
        [&d.headers.idempotency_key, &d.headers.event_uuid].into_iter().flatten().find_map(|v| DeliveryId::parse(v));
    let want = sent.as_ref().map_or(GENERATED, DeliveryId::as_str);
    let id = e.delivery_id.as_str();
    if id != want || id.is_empty() || id.len() > 200 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("stored delivery id {id:?}, expected {want:?}"));
    }
    if e.webhook_id != d.headers.webhook_uuid.clone().filter(|w| !w.is_empty()) {
        return Err(format!("stored webhook id {:?}, sent {:?}", e.webhook_id, d.headers.webhook_uuid));
    }
    if let Some(id) = int_at(payload, &["project", "id"]) {
        if e.project_id != Some(id) {
            return Err(format!("payload names project {id}, stored {:?}", e.project_id));
        }
    }
    if let Some(path) = text_at(payload, &["project", "path_with_namespace"]).filter(|p| !p.is_empty()) {
        if e.project_path.as_deref() != Some(path) {
            return Err(format!("payload names project {path:?}, stored {:?}", e.project_path));
        }
    }
    let project = e.project_id.map_or_else(|| "-".to_owned(), |id| id.to_string());
    let key = &e.object_key;
    if !(key.ends_with(&format!(":{project}")) || key.contains(&format!(":{project}:"))) {
        return Err(format!("ordering key {key:?} does not name project {project}"));
    }
    if matches!(e.kind.as_str(), "merge_request" | EXTERNAL_STATUS_CHECK)
        && int_at(payload, &["object_attributes", "iid"]).is_some()
        && !key.starts_with("merge_request:")
    {
        return Err(format!("a merge request's ordering key is {key:?}"));
    }
    if e.kind == "push" {
        if let Some(git_ref) = text_at(payload, &["ref"]).filter(|r| !r.is_empty()) {
            if e.git_ref.as_deref() != Some(git_ref) {
                return Err(format!("a push of {git_ref:?} stored with ref {:?}", e.git_ref));
            }
        }
    }
    view(&e.kind, payload)
}

/// Checks one input (see the module header).
pub fn check(input: &[u8]) -> Result<(), String> {
    let d = read(input);
    let result = envelope_of_kind(d.kind.as_deref(), &d.headers, d.body, RECEIVED, || GENERATED.to_owned());
    let has_event = d.headers.event.as_deref().is_some_and(|e| !e.trim().is_empty());
    let json: Option<Value> = serde_json::from_slice(d.body).ok();
    match (&result, has_event, &json) {
        (Err(RejectReason::MissingEvent), false, _) => {}
        (Err(RejectReason::NotJson(why)), true, json) if json.as_ref().is_none_or(|v| !v.is_object()) => {
            if why.is_empty() {
                return Err("a body refused as not JSON without saying why".to_owned());
            }
        }
        (Ok(e), true, Some(payload)) if payload.is_object() => stored(&d, payload, e)?,
        (result, _, _) => {
            return Err(format!(
                "event header {:?}, body {} JSON object: the envelope says {result:?}",
                d.headers.event,
                if json.as_ref().is_some_and(Value::is_object) { "a" } else { "no" },
            ))
        }
    }
    // Whatever the body is, every view reads it or says why, naming its kind.
    if let Some(json) = &json {
        for kind in VIEW_KINDS.iter().copied().chain(["wiki_page", ""]) {
            if let Err(e) = GitLabEvent::parse(kind, json) {
                if e.kind != kind {
                    return Err(format!("a failed {kind:?} view names kind {:?}", e.kind));
                }
            }
        }
    }
    Ok(())
}
