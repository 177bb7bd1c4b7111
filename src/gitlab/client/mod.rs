//! The GitLab REST client: the one place for GitLab's base URL, authentication, timeouts, retries and
//! error mapping. It must not decide anything: policy, chat and deploy code call it and choose.
//!
//! Layout: this file holds the transport (auth, `send`, pagination, errors) and the user, project,
//! hook and job-token calls; `repo` (project settings, branches, tags, protected refs, compare,
//! members), `merge_request` (MRs, notes, commit statuses, status check responses), `issue` (issues,
//! milestones, issue state events), `ci`
//! (deployments, pipelines, and their types) add the other calls; `types` holds the other serde types.
//! Every type is re-exported here, so callers name them `client::Branch`, `client::Note`, …
//!
//! # Why not the `gitlab` crate
//!
//! `gitlab` 0.1905 was evaluated and not taken: its default client pulls `graphql_client`, `cron` and a
//! large endpoint tree into a build that runs on two cores; its builder calls `GET /api/v4/user` (which a
//! CI job token may not use); it has no retry policy of its own, so the 429/5xx rules below would wrap it
//! anyway; and its typed endpoints would still need our own response types. A thin `reqwest` client
//! (already a dependency) with one `send` does all of that in a page, and is the same code the tests
//! point at the GitLab double (`TAO_GITLAB_URL`, `TAO_GITLAB_TOKEN`).
//!
//! # Retries
//!
//! 429 is retried after `Retry-After` (capped) for every method: GitLab's rate limiter answers before
//! doing anything. 5xx, timeouts and connection failures are retried with exponential backoff only for
//! calls marked idempotent (GET, PUT, DELETE, and POSTs whose repeat GitLab answers harmlessly: commit
//! statuses, status check responses, protecting a ref, a Markdown upload); a POST that creates something (hook, tag,
//! note, deployment, pipeline) is not retried on them, and its callers make a rerun harmless instead
//! (hook sync lists before creating; `upsert_mr_note` finds its note by marker). 4xx is never retried.

use std::time::Duration;

use reqwest::{header, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Secret;

mod ci;
mod issue;
mod merge_request;
mod repo;
mod types;

pub use ci::{Deployment, DeploymentStatus, EnvironmentRef, NewDeployment, Pipeline};
pub use issue::{
    Issue, IssueQuery, LabelBrief, Milestone, Page, ResourceLabelEvent, ResourceStateEvent, UserBrief, MAX_PER_PAGE,
};
pub use merge_request::Upload;
pub use types::*;

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A personal, project or group access token (`PRIVATE-TOKEN`).
    PrivateToken(Secret),
    /// An OAuth token (`Authorization: Bearer`).
    Bearer(Secret),
}

/// Retry rules; see the module header.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, first included.
    pub max_attempts: u32,
    /// First backoff delay; doubled per attempt.
    pub base_delay: Duration,
    /// Cap on any single wait, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 4, base_delay: Duration::from_millis(250), max_delay: Duration::from_secs(30) }
    }
}

/// A failed GitLab call: which call, and what GitLab or the network said.
#[derive(Debug, thiserror::Error)]
pub enum GitLabError {
    /// GitLab answered with an error status.
    #[error("GitLab {call}: HTTP {status}: {message}")]
    Status {
        /// The call, e.g. `create project hook`.
        call: &'static str,
        /// HTTP status.
        status: u16,
        /// GitLab's `message`/`error`, or the body.
        message: String,
    },
    /// No answer (connection, timeout).
    #[error("GitLab {call}: {detail}")]
    Transport {
        /// The call.
        call: &'static str,
        /// What failed.
        detail: String,
    },
    /// An answer that does not have the expected shape.
    #[error("GitLab {call}: unexpected answer: {detail}")]
    Decode {
        /// The call.
        call: &'static str,
        /// What serde said.
        detail: String,
    },
    /// `create_tag`: GitLab has a tag of that name already (its 400 "Tag … already exists").
    #[error("GitLab create tag: tag {tag:?} already exists")]
    TagExists {
        /// The tag.
        tag: String,
    },
    /// The configured URL is not an http(s) URL.
    #[error("GitLab URL: expected http(s)://host[/prefix], found {0:?}")]
    BadUrl(String),
}

impl GitLabError {
    /// The HTTP status, when GitLab answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GitLabError::Status { status, .. } => Some(*status),
            GitLabError::TagExists { .. } => Some(400),
            _ => None,
        }
    }
}

/// A project by id or by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectId {
    /// Numeric id.
    Id(i64),
    /// `group/project`.
    Path(String),
}

impl ProjectId {
    fn segment(&self) -> String {
        match self {
            ProjectId::Id(id) => id.to_string(),
            ProjectId::Path(path) => encode(path),
        }
    }
}

pub use crate::urlenc::encode;

/// Whether a call may be repeated after a 5xx or a lost answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idempotent {
    Yes,
    No,
}

/// The GitLab client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GitLabClient {
    api: String,
    auth: Auth,
    http: reqwest::Client,
    retry: RetryPolicy,
    /// The token's own user id, looked up once (to recognise Tao's own notes).
    me: std::sync::Arc<tokio::sync::OnceCell<i64>>,
}

impl GitLabClient {
    /// A client of the GitLab at `base_url` (e.g. `https://gitlab.example.com`), with a 10 s connect and
    /// 30 s request timeout. Does not call GitLab.
    pub fn new(base_url: &str, auth: Auth, retry: RetryPolicy) -> Result<GitLabClient, GitLabError> {
        let base = base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(GitLabError::BadUrl(base_url.to_string()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("tao/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| GitLabError::Transport { call: "build client", detail: e.to_string() })?;
        Ok(GitLabClient { api: format!("{base}/api/v4"), auth, http, retry, me: Default::default() })
    }

    /// The user the token belongs to.
    pub async fn current_user(&self) -> Result<User, GitLabError> {
        self.get_json("current user", "/user").await
    }

    /// The full paths of the groups the token's user belongs to (any access level), for the web
    /// console's role map (`GET /groups?min_access_level=10`).
    pub async fn my_groups(&self) -> Result<Vec<String>, GitLabError> {
        #[derive(serde::Deserialize)]
        struct Group {
            full_path: String,
        }
        let groups: Vec<Group> = self.get_all("list my groups", "/groups?min_access_level=10").await?;
        Ok(groups.into_iter().map(|g| g.full_path).collect())
    }

    /// One project.
    pub async fn project(&self, project: &ProjectId) -> Result<Project, GitLabError> {
        self.get_json("get project", &format!("/projects/{}", project.segment())).await
    }

    /// Every hook of a project (all pages).
    pub async fn project_hooks(&self, project: &ProjectId) -> Result<Vec<Hook>, GitLabError> {
        self.get_all("list project hooks", &format!("/projects/{}/hooks", project.segment())).await
    }

    /// Creates a project hook. Not retried on 5xx: a lost answer may mean it exists; list to find out.
    pub async fn create_project_hook(
        &self,
        project: &ProjectId,
        url: &str,
        token: &Secret,
        events: &HookEvents,
    ) -> Result<Hook, GitLabError> {
        let body = hook_body(url, token, events);
        let path = format!("/projects/{}/hooks", project.segment());
        self.json("create project hook", Method::POST, &path, Some(&body), Idempotent::No).await
    }

    /// Replaces a project hook's URL, secret and events.
    pub async fn edit_project_hook(
        &self,
        project: &ProjectId,
        hook_id: i64,
        url: &str,
        token: &Secret,
        events: &HookEvents,
    ) -> Result<Hook, GitLabError> {
        let body = hook_body(url, token, events);
        let path = format!("/projects/{}/hooks/{hook_id}", project.segment());
        self.json("edit project hook", Method::PUT, &path, Some(&body), Idempotent::Yes).await
    }

    /// The job a CI job token belongs to (`GET /job` with `JOB-TOKEN`): how Tao verifies a pipeline's
    /// identity. Uses the job's token, not the client's.
    pub async fn job_of_token(&self, job_token: &Secret) -> Result<Job, GitLabError> {
        let call = "get job of token";
        let response = self
            .send(call, Idempotent::Yes, || {
                self.http.get(format!("{}/job", self.api)).header("JOB-TOKEN", job_token.expose())
            })
            .await?;
        decode(call, response).await
    }

    async fn get_json<T: DeserializeOwned>(&self, call: &'static str, path: &str) -> Result<T, GitLabError> {
        self.json(call, Method::GET, path, None, Idempotent::Yes).await
    }

    async fn json<T: DeserializeOwned>(
        &self,
        call: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotent: Idempotent,
    ) -> Result<T, GitLabError> {
        let url = format!("{}{path}", self.api);
        let response = self
            .send(call, idempotent, || {
                let rb = self.authed(self.http.request(method.clone(), &url));
                match body {
                    Some(b) => rb.json(b),
                    None => rb,
                }
            })
            .await?;
        decode(call, response).await
    }

    /// The id of the user the client's token belongs to (asked once per client).
    async fn my_user_id(&self) -> Result<i64, GitLabError> {
        self.me.get_or_try_init(|| async { Ok(self.current_user().await?.id) }).await.copied()
    }

    /// A call whose answer Tao does not read (e.g. `DELETE`, `204 No Content`).
    async fn no_content(
        &self,
        call: &'static str,
        method: Method,
        path: &str,
        idempotent: Idempotent,
    ) -> Result<(), GitLabError> {
        let url = format!("{}{path}", self.api);
        self.send(call, idempotent, || self.authed(self.http.request(method.clone(), &url))).await.map(drop)
    }

    /// Follows `X-Next-Page` until the last page. `path` may carry a query already.
    async fn get_all<T: DeserializeOwned>(&self, call: &'static str, path: &str) -> Result<Vec<T>, GitLabError> {
        let mut out = Vec::new();
        let mut page = "1".to_string();
        let joiner = if path.contains('?') { '&' } else { '?' };
        loop {
            let url = format!("{}{path}{joiner}per_page=100&page={page}", self.api);
            let response = self.send(call, Idempotent::Yes, || self.authed(self.http.get(&url))).await?;
            let next = next_page(&response);
            out.extend(decode::<Vec<T>>(call, response).await?);
            match next {
                Some(n) if n != page => page = n,
                _ => return Ok(out),
            }
        }
    }

    /// One page of a list at `path` (which carries `page` and `per_page`), with `X-Next-Page`.
    async fn get_page<T: DeserializeOwned>(
        &self,
        call: &'static str,
        path: &str,
    ) -> Result<issue::Page<T>, GitLabError> {
        let url = format!("{}{path}", self.api);
        let response = self.send(call, Idempotent::Yes, || self.authed(self.http.get(&url))).await?;
        let next_page = next_page(&response)
            .map(|v| v.parse::<u32>().map_err(|_| GitLabError::Decode { call, detail: format!("X-Next-Page {v:?}") }))
            .transpose()?;
        Ok(issue::Page { items: decode(call, response).await?, next_page })
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Auth::PrivateToken(t) => rb.header("PRIVATE-TOKEN", t.expose()),
            Auth::Bearer(t) => rb.bearer_auth(t.expose()),
        }
    }

    /// Sends with the retry rules of the module header; returns the first success, or the error.
    async fn send(
        &self,
        call: &'static str,
        idempotent: Idempotent,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GitLabError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.max_attempts;
            let backoff = self.retry.base_delay.saturating_mul(1 << (attempt - 1).min(16)).min(self.retry.max_delay);
            let result = build().send().await;
            match &result {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => crate::metrics::counters::gitlab_api_error(call, Some(r.status().as_u16())),
                Err(_) => crate::metrics::counters::gitlab_api_error(call, None),
            }
            let wait = match result {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS && !last => {
                    retry_after(&r).map(|d| d.min(self.retry.max_delay)).unwrap_or(backoff)
                }
                Ok(r) if r.status().is_server_error() && idempotent == Idempotent::Yes && !last => backoff,
                Ok(r) => return Err(status_error(call, r).await),
                Err(e) if !last && (e.is_connect() || (e.is_timeout() && idempotent == Idempotent::Yes)) => backoff,
                Err(e) => return Err(GitLabError::Transport { call, detail: transport_detail(&e) }),
            };
            tracing::warn!(call, attempt, wait_ms = wait.as_millis() as u64, "GitLab call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

fn hook_body(url: &str, token: &Secret, events: &HookEvents) -> Value {
    let mut body = serde_json::to_value(events).unwrap_or_default();
    body["url"] = Value::String(url.to_string());
    body["token"] = Value::String(token.expose().to_string());
    body["enable_ssl_verification"] = Value::Bool(url.starts_with("https://"));
    body
}

/// GitLab's `X-Next-Page`: the next page's number, absent or empty on the last page.
fn next_page(r: &reqwest::Response) -> Option<String> {
    let v = r.headers().get("x-next-page")?.to_str().ok()?.trim();
    (!v.is_empty()).then(|| v.to_string())
}

fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    let v = r.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn transport_detail(e: &reqwest::Error) -> String {
    // reqwest's message includes the URL, which never carries a secret here (tokens travel in headers).
    if e.is_timeout() {
        format!("timed out: {e}")
    } else {
        e.to_string()
    }
}

async fn status_error(call: &'static str, r: reqwest::Response) -> GitLabError {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            let m = v.get("message").or_else(|| v.get("error"))?;
            Some(m.as_str().map(str::to_string).unwrap_or_else(|| m.to_string()))
        })
        .unwrap_or_else(|| text.chars().take(300).collect());
    GitLabError::Status { call, status, message }
}

async fn decode<T: DeserializeOwned>(call: &'static str, r: reqwest::Response) -> Result<T, GitLabError> {
    let bytes = r.bytes().await.map_err(|e| GitLabError::Transport { call, detail: transport_detail(&e) })?;
    serde_json::from_slice(&bytes).map_err(|e| GitLabError::Decode { call, detail: e.to_string() })
}
