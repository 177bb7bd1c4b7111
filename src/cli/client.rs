//! The CLI's HTTP client of the Tao server: bearer token from `TAO_TOKEN`, JSON in and out, and server
//! errors (`{"error": {message, details}}`) turned into one readable message.

use anyhow::{bail, Context};
use reqwest::StatusCode;
use serde_json::Value;

use super::ServerArgs;
use crate::config::Secret;

/// The server is not set up for the request (a setting is missing there): the CLI exits 2, as for a
/// usage error, since no retry helps until someone changes the configuration.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotConfigured(pub String);

/// A client of one Tao server.
pub struct Client {
    base: String,
    token: Option<Secret>,
    http: reqwest::Client,
}

pub use crate::urlenc::encode as segment;

impl Client {
    /// A client for `--server`, with `TAO_TOKEN` when set.
    pub fn new(args: &ServerArgs) -> anyhow::Result<Client> {
        let base = args.server.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--server / TAO_SERVER: expected an http(s) URL, found {:?}", args.server);
        }
        let token = std::env::var("TAO_TOKEN").ok().filter(|t| !t.is_empty()).map(Secret::new);
        let http = reqwest::Client::builder()
            .user_agent(concat!("tao-cli/", env!("CARGO_PKG_VERSION")))
            // No overall timeout: `events export` and `task show --follow` stream for as long as they
            // need (a deploy step may log nothing for minutes). A server that is not there fails fast.
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        Ok(Client { base, token, http })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(t) => rb.bearer_auth(t.expose()),
            None => rb,
        }
    }

    /// GET, expecting 200.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (_, body) = self.send(self.request(reqwest::Method::GET, path)).await?;
        Ok(body)
    }

    /// GET, expecting 200, returning the response to read as a stream.
    pub async fn get_stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .with_context(|| format!("cannot reach the Tao server at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let message = body["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| body.to_string());
        bail!("{message} (HTTP {})", status.as_u16())
    }

    /// POST a JSON body; returns the success status and body.
    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.send(self.request(reqwest::Method::POST, path).json(body)).await
    }

    /// POST a JSON body with an optional `Idempotency-Key`; returns the success status and body.
    pub async fn post_keyed(&self, path: &str, body: &Value, key: Option<&str>) -> anyhow::Result<(u16, Value)> {
        let mut rb = self.request(reqwest::Method::POST, path).json(body);
        if let Some(k) = key {
            rb = rb.header("Idempotency-Key", k);
        }
        self.send(rb).await
    }

    /// DELETE; returns the success body.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.send(self.request(reqwest::Method::DELETE, path)).await?.1)
    }

    /// GET a JSON-lines stream, calling `each` for every line as it arrives.
    pub async fn lines(&self, path: &str, mut each: impl FnMut(Value)) -> anyhow::Result<()> {
        let mut response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .with_context(|| format!("cannot reach the Tao server at {}", self.base))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let message = body["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| body.to_string());
            bail!("{message} (HTTP {})", status.as_u16());
        }
        let mut pending = Vec::new();
        while let Some(chunk) = response.chunk().await.context("reading the stream")? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if let Ok(v) = serde_json::from_slice(&line) {
                    each(v);
                }
            }
        }
        Ok(())
    }

    /// POST a YAML body; returns the success status and body.
    pub async fn post_yaml(&self, path: &str, yaml: String) -> anyhow::Result<(u16, Value)> {
        let rb = self.request(reqwest::Method::POST, path).header("content-type", "application/yaml").body(yaml);
        self.send(rb).await
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let response = rb.send().await.with_context(|| format!("cannot reach the Tao server at {}", self.base))?;
        let status = response.status();
        let text = response.text().await.context("reading the server's answer")?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok((status.as_u16(), body));
        }
        let message = body["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| body.to_string());
        if body["error"]["code"] == "not_configured" {
            return Err(NotConfigured(format!("{message} (HTTP {})", status.as_u16())).into());
        }
        let mut lines = vec![format!("{message} (HTTP {})", status.as_u16())];
        if let Some(details) = body["error"]["details"].as_array() {
            lines = vec![format!("{} problems (HTTP {}):", details.len(), status.as_u16())];
            for d in details {
                lines.push(format!(
                    "  {}: expected {}, found {}",
                    d["path"].as_str().unwrap_or("?"),
                    d["expected"].as_str().unwrap_or("?"),
                    d["found"].as_str().unwrap_or("?")
                ));
            }
        }
        if status == StatusCode::UNAUTHORIZED && self.token.is_none() {
            lines.push("hint: set TAO_TOKEN to a token from `tao token create`".into());
        }
        bail!("{}", lines.join("\n"))
    }
}
