//! The TAPD open API client (`https://api.tapd.cn`): authentication, the response envelope, paging,
//! retries and error mapping, and the entity types Tao reads (stories, bugs, iterations and their changes).
//!
//! # The envelope
//!
//! Every answer is `{"status": 1, "info": "success", "data": …}`; lists are arrays of one-key wrappers
//! (`[{"Story": {…}}]`). A `status` other than 1 is an error whose message is `info`. An unknown path
//! answers HTTP 200, `status: 1` and a "Hello world" string as `data`, so the shape of `data` is checked
//! too. Entity fields are strings or null (numbers arrive as strings; [`text`] accepts both); ids stay
//! strings (long ids exceed what people expect of a number, change ids exceed i64).
//!
//! # Retries
//!
//! Every call is a GET, so 429, 5xx, timeouts and connection failures are all retried: a 429 (HTTP 429,
//! or an envelope with `status: 429`) after its `Retry-After` when given, else with exponential backoff;
//! each wait capped by [`RetryPolicy::max_delay`]. 4xx other than 429 is never retried. Errors name the
//! call (`list stories of workspace 51234567`) and never contain credentials.

use std::time::Duration;

use reqwest::{header, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub use crate::gitlab::client::RetryPolicy;

pub use crate::config::tapd::DEFAULT_URL;
/// Largest `limit` of entity lists.
pub const MAX_LIMIT: u32 = 200;
/// Largest `limit` of change histories.
pub const MAX_CHANGES_LIMIT: u32 = 100;

pub use crate::config::tapd::TapdAuth as Auth;

/// A failed TAPD call: which call, and what TAPD or the network said.
#[derive(Debug, thiserror::Error)]
pub enum TapdError {
    /// TAPD answered with an error (HTTP status, or an envelope `status` other than 1).
    #[error("TAPD {call}: status {status}: {info}")]
    Status {
        /// The call, e.g. `list stories of workspace 51234567`.
        call: String,
        /// HTTP status, or the envelope's `status` when HTTP said 200.
        status: u16,
        /// TAPD's `info`, or the start of the body.
        info: String,
    },
    /// No answer (connection, timeout).
    #[error("TAPD {call}: {detail}")]
    Transport {
        /// The call.
        call: String,
        /// What failed.
        detail: String,
    },
    /// An answer without the expected shape (an unknown path answers a "Hello world" string).
    #[error("TAPD {call}: unexpected answer: {detail}")]
    Decode {
        /// The call.
        call: String,
        /// What was wrong.
        detail: String,
    },
    /// The configured URL is not an http(s) URL.
    #[error("TAPD URL: expected http(s)://host[/prefix], found {0:?}")]
    BadUrl(String),
}

/// The TAPD client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TapdClient {
    base: String,
    auth: Auth,
    http: reqwest::Client,
    retry: RetryPolicy,
}

/// One page of a list query.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Workspace (project) id.
    pub workspace: String,
    /// Only entities modified at or after this TAPD datetime (`modified=>…`).
    pub modified_since: Option<String>,
    /// Page, from 1.
    pub page: u32,
    /// Page size (capped at the endpoint's maximum).
    pub limit: u32,
}

impl TapdClient {
    /// A client of the TAPD API at `base_url`, with a 10 s connect and 30 s request timeout. Does not call
    /// TAPD.
    pub fn new(base_url: &str, auth: Auth, retry: RetryPolicy) -> Result<TapdClient, TapdError> {
        let base = base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(TapdError::BadUrl(base_url.to_string()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("tao/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| TapdError::Transport { call: "build client".into(), detail: e.to_string() })?;
        Ok(TapdClient { base: base.to_string(), auth, http, retry })
    }

    /// One page of stories, oldest modification first.
    pub async fn stories(&self, q: &Query) -> Result<Vec<Story>, TapdError> {
        let call = format!("list stories of workspace {} (page {})", q.workspace, q.page);
        self.list(&call, "/stories", "Story", &entity_params(q)).await
    }

    /// One page of bugs, oldest modification first.
    pub async fn bugs(&self, q: &Query) -> Result<Vec<Bug>, TapdError> {
        let call = format!("list bugs of workspace {} (page {})", q.workspace, q.page);
        self.list(&call, "/bugs", "Bug", &entity_params(q)).await
    }

    /// One page of iterations, oldest modification first.
    pub async fn iterations(&self, q: &Query) -> Result<Vec<TapdIteration>, TapdError> {
        let call = format!("list iterations of workspace {} (page {})", q.workspace, q.page);
        self.list(&call, "/iterations", "Iteration", &entity_params(q)).await
    }

    /// How many stories [`TapdClient::stories`] would list in all (`/stories/count`).
    pub async fn stories_count(&self, q: &Query) -> Result<u64, TapdError> {
        let call = format!("count stories of workspace {}", q.workspace);
        let mut params = entity_params(q);
        params.retain(|(k, _)| !matches!(*k, "page" | "limit" | "order"));
        let data: Count = self.get(&call, "/stories/count", &params).await?;
        Ok(data.count)
    }

    /// What each state of `system` (`story` or `bug`) is called in the workspace (`/workflows/status_map`):
    /// `{"planning": "规划中", "status_3": "测试中", …}`.
    pub async fn status_map(
        &self,
        workspace: &str,
        system: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, TapdError> {
        let call = format!("get {system} status names of workspace {workspace}");
        let params = [("workspace_id", workspace.to_string()), ("system", system.to_string())];
        self.get(&call, "/workflows/status_map", &params).await
    }

    /// One page of the status changes of the stories `ids` (at most 100 changes a page), oldest first.
    pub async fn story_changes(
        &self,
        workspace: &str,
        ids: &[String],
        page: u32,
    ) -> Result<Vec<StoryChange>, TapdError> {
        let call = format!("list story changes of workspace {workspace} (page {page})");
        let params = change_params(workspace, "story_id", ids, page);
        let mut params = params;
        params.push(("change_field", "status".into()));
        self.list(&call, "/story_changes", "WorkitemChange", &params).await
    }

    /// One page of the changes of the bugs `ids` (every field; at most 100 a page), oldest first.
    pub async fn bug_changes(&self, workspace: &str, ids: &[String], page: u32) -> Result<Vec<BugChange>, TapdError> {
        let call = format!("list bug changes of workspace {workspace} (page {page})");
        self.list(&call, "/bug_changes", "BugChange", &change_params(workspace, "bug_id", ids, page)).await
    }

    async fn list<T: DeserializeOwned>(
        &self,
        call: &str,
        path: &str,
        wrapper: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<T>, TapdError> {
        let data: Value = self.get(call, path, params).await?;
        let Value::Array(items) = data else {
            return Err(TapdError::Decode {
                call: call.into(),
                detail: format!("data is not a list: {}", brief(&data)),
            });
        };
        items
            .into_iter()
            .map(|mut item| {
                let inner = item.get_mut(wrapper).map(Value::take).ok_or_else(|| TapdError::Decode {
                    call: call.into(),
                    detail: format!("list item without {wrapper:?}: {}", brief(&item)),
                })?;
                serde_json::from_value(inner)
                    .map_err(|e| TapdError::Decode { call: call.into(), detail: e.to_string() })
            })
            .collect()
    }

    /// GETs `path` with the retry rules of the module header and returns the envelope's `data`.
    async fn get<T: DeserializeOwned>(
        &self,
        call: &str,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<T, TapdError> {
        let url = format!("{}{path}", self.base);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.max_attempts;
            let backoff = self.retry.base_delay.saturating_mul(1 << (attempt - 1).min(16)).min(self.retry.max_delay);
            let wait = match self.authed(self.http.get(&url).query(params)).send().await {
                Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS || r.status().is_server_error() => {
                    let after = retry_after(&r);
                    if last {
                        return Err(status_error(call, r).await);
                    }
                    after.map(|d| d.min(self.retry.max_delay)).unwrap_or(backoff)
                }
                Ok(r) => {
                    let after = retry_after(&r);
                    match envelope(call, r).await {
                        Err(TapdError::Status { status: 429, .. }) if !last => {
                            after.map(|d| d.min(self.retry.max_delay)).unwrap_or(backoff)
                        }
                        other => return other,
                    }
                }
                Err(e) if !last && (e.is_connect() || e.is_timeout()) => backoff,
                Err(e) => return Err(TapdError::Transport { call: call.into(), detail: transport_detail(&e) }),
            };
            tracing::warn!(call, attempt, wait_ms = wait.as_millis() as u64, "TAPD call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Auth::Basic { user, password } => rb.basic_auth(user, Some(password.expose())),
            Auth::Bearer(t) => rb.bearer_auth(t.expose()),
        }
    }
}

fn entity_params(q: &Query) -> Vec<(&'static str, String)> {
    let mut params = vec![
        ("workspace_id", q.workspace.clone()),
        ("page", q.page.max(1).to_string()),
        ("limit", q.limit.clamp(1, MAX_LIMIT).to_string()),
        ("order", "modified asc".into()),
    ];
    if let Some(since) = &q.modified_since {
        params.push(("modified", format!(">{since}")));
    }
    params
}

fn change_params(workspace: &str, id_key: &'static str, ids: &[String], page: u32) -> Vec<(&'static str, String)> {
    vec![
        ("workspace_id", workspace.to_string()),
        (id_key, ids.join(",")),
        ("page", page.max(1).to_string()),
        ("limit", MAX_CHANGES_LIMIT.to_string()),
        ("order", "created asc".into()),
    ]
}

#[derive(Deserialize)]
struct Count {
    #[serde(deserialize_with = "count")]
    count: u64,
}

fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().ok_or_else(|| serde::de::Error::custom("count is not a whole number")),
        Value::String(s) => s.parse().map_err(|_| serde::de::Error::custom(format!("count {s:?}"))),
        other => Err(serde::de::Error::custom(format!("count is {other}"))),
    }
}

/// Reads the envelope: `data` when `status` is 1, else the error.
async fn envelope<T: DeserializeOwned>(call: &str, r: reqwest::Response) -> Result<T, TapdError> {
    let http = r.status().as_u16();
    let bytes =
        r.bytes().await.map_err(|e| TapdError::Transport { call: call.into(), detail: transport_detail(&e) })?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| TapdError::Decode {
        call: call.into(),
        detail: format!(
            "HTTP {http}, not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>()
        ),
    })?;
    let status = body.get("status").and_then(|s| s.as_i64().or_else(|| s.as_str()?.parse().ok()));
    if status != Some(1) || !(200..300).contains(&http) {
        let status = status.filter(|s| *s != 1).and_then(|s| u16::try_from(s).ok()).unwrap_or(http);
        return Err(TapdError::Status { call: call.into(), status, info: info_of(&body) });
    }
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    if data.is_string() {
        return Err(TapdError::Decode {
            call: call.into(),
            detail: format!("data is text, not a result (wrong URL or path?): {}", brief(&data)),
        });
    }
    serde_json::from_value(data).map_err(|e| TapdError::Decode { call: call.into(), detail: e.to_string() })
}

fn info_of(body: &Value) -> String {
    match body.get("info") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => brief(body),
    }
}

async fn status_error(call: &str, r: reqwest::Response) -> TapdError {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    let info = serde_json::from_str::<Value>(&text)
        .ok()
        .map(|v| info_of(&v))
        .unwrap_or_else(|| text.chars().take(200).collect());
    TapdError::Status { call: call.into(), status, info }
}

fn brief(v: &Value) -> String {
    v.to_string().chars().take(200).collect()
}

fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    let v = r.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn transport_detail(e: &reqwest::Error) -> String {
    // reqwest's message includes the URL; credentials travel in headers, never in it.
    if e.is_timeout() {
        format!("timed out: {e}")
    } else {
        e.to_string()
    }
}

/// A TAPD datetime (`2024-01-05 10:11:12`, or a date `2024-01-05`), read in Asia/Shanghai (UTC+8), as epoch
/// ms. Empty, null-like and malformed values are `None`.
pub fn parse_time(s: &str) -> Option<i64> {
    use chrono::{FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
    let s = s.trim();
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0))?;
    let zone = FixedOffset::east_opt(8 * 3600)?;
    zone.from_local_datetime(&naive).single().map(|t| t.timestamp_millis())
}

/// A string field that may arrive as a string, a number or null (TAPD sends numbers as strings, mostly).
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// A TAPD story (需求), the fields Tao reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Story {
    /// Long id.
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    /// Title.
    #[serde(default, deserialize_with = "text")]
    pub name: Option<String>,
    /// Status (`planning`, `status_3`, …).
    #[serde(default, deserialize_with = "text")]
    pub status: Option<String>,
    /// Owners, `a;b;`.
    #[serde(default, deserialize_with = "text")]
    pub owner: Option<String>,
    /// Iteration id (`0` when none).
    #[serde(default, deserialize_with = "text")]
    pub iteration_id: Option<String>,
    /// Workspace id.
    #[serde(default, deserialize_with = "text")]
    pub workspace_id: Option<String>,
    /// Created.
    #[serde(default, deserialize_with = "text")]
    pub created: Option<String>,
    /// Last modified.
    #[serde(default, deserialize_with = "text")]
    pub modified: Option<String>,
    /// Completed.
    #[serde(default, deserialize_with = "text")]
    pub completed: Option<String>,
}

/// A TAPD bug (缺陷), the fields Tao reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Bug {
    /// Long id.
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    /// Title.
    #[serde(default, deserialize_with = "text")]
    pub title: Option<String>,
    /// Status (`new`, `in_progress`, `resolved`, `closed`, …).
    #[serde(default, deserialize_with = "text")]
    pub status: Option<String>,
    /// Current owners, `a;b;`.
    #[serde(default, deserialize_with = "text")]
    pub current_owner: Option<String>,
    /// Iteration id (`0` when none).
    #[serde(default, deserialize_with = "text")]
    pub iteration_id: Option<String>,
    /// Workspace id.
    #[serde(default, deserialize_with = "text")]
    pub workspace_id: Option<String>,
    /// Created.
    #[serde(default, deserialize_with = "text")]
    pub created: Option<String>,
    /// Last modified.
    #[serde(default, deserialize_with = "text")]
    pub modified: Option<String>,
    /// Resolved.
    #[serde(default, deserialize_with = "text")]
    pub resolved: Option<String>,
    /// Closed.
    #[serde(default, deserialize_with = "text")]
    pub closed: Option<String>,
    /// The version it was found in (发现版本), as TAPD names versions.
    #[serde(default, deserialize_with = "text")]
    pub version_report: Option<String>,
    /// The version it is fixed in (合入版本).
    #[serde(default, deserialize_with = "text")]
    pub version_fix: Option<String>,
}

/// A TAPD iteration (迭代).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TapdIteration {
    /// Id.
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    /// Name, e.g. `v1.1.0`.
    #[serde(default, deserialize_with = "text")]
    pub name: Option<String>,
    /// `open` or `done`.
    #[serde(default, deserialize_with = "text")]
    pub status: Option<String>,
    /// Workspace id.
    #[serde(default, deserialize_with = "text")]
    pub workspace_id: Option<String>,
    /// Last modified.
    #[serde(default, deserialize_with = "text")]
    pub modified: Option<String>,
}

/// A story change record (`WorkitemChange`); `changes` is JSON encoded in a string.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StoryChange {
    /// Record id (may exceed i64).
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    /// The story.
    #[serde(default, deserialize_with = "text")]
    pub story_id: Option<String>,
    /// Who.
    #[serde(default, deserialize_with = "text")]
    pub creator: Option<String>,
    /// When.
    #[serde(default, deserialize_with = "text")]
    pub created: Option<String>,
    /// `[{"field": "status", "value_before": …, "value_after": …}, …]` as a string.
    #[serde(default, deserialize_with = "text")]
    pub changes: Option<String>,
}

/// One field of a story change.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldChange {
    /// Field name.
    pub field: String,
    /// Before (any JSON; TAPD mixes strings and numbers).
    #[serde(default)]
    pub value_before: Value,
    /// After.
    #[serde(default)]
    pub value_after: Value,
}

impl StoryChange {
    /// The status change of this record, `(before, after)`, when it has one.
    pub fn status_change(&self) -> Option<(Option<String>, String)> {
        let fields: Vec<FieldChange> = serde_json::from_str(self.changes.as_deref()?).ok()?;
        let f = fields.into_iter().find(|f| f.field == "status")?;
        let s = |v: &Value| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Null | Value::String(_) => None,
            other => Some(other.to_string()),
        };
        Some((s(&f.value_before), s(&f.value_after)?))
    }
}

/// A bug change record (`BugChange`): one field per record.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BugChange {
    /// Record id (may exceed i64).
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    /// The bug.
    #[serde(default, deserialize_with = "text")]
    pub bug_id: Option<String>,
    /// Who.
    #[serde(default, deserialize_with = "text")]
    pub author: Option<String>,
    /// The field changed.
    #[serde(default, deserialize_with = "text")]
    pub field: Option<String>,
    /// Before.
    #[serde(default, deserialize_with = "text")]
    pub old_value: Option<String>,
    /// After.
    #[serde(default, deserialize_with = "text")]
    pub new_value: Option<String>,
    /// When.
    #[serde(default, deserialize_with = "text")]
    pub created: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_shanghai() {
        assert_eq!(parse_time("2024-01-05 10:11:12"), Some(1_704_420_672_000));
        assert_eq!(parse_time("2024-01-05"), Some(1_704_384_000_000));
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("0000-00-00 00:00:00"), None);
    }

    #[test]
    fn story_change_status_is_read_from_the_encoded_changes() {
        let c = StoryChange {
            changes: Some(r#"[{"field":"owner","value_before":"a;","value_after":"b;"},{"field":"status","value_before":"planning","value_after":"developing"}]"#.into()),
            ..Default::default()
        };
        assert_eq!(c.status_change(), Some((Some("planning".into()), "developing".into())));
        let none = StoryChange {
            changes: Some(r#"[{"field":"priority","value_before":"","value_after":4}]"#.into()),
            ..Default::default()
        };
        assert_eq!(none.status_change(), None);
    }
}
