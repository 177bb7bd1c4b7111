//! Image digests from a registry (Registry HTTP API v2): `HEAD /v2/<name>/manifests/<tag>` answers the
//! manifest's digest in `Docker-Content-Digest`, so a product version can pin what its tags meant when it
//! was created and a re-pushed tag cannot change it.
//!
//! Registries on loopback are spoken to over plain HTTP (as Docker does), every other over HTTPS.
//! Anonymous bearer-token challenges (`WWW-Authenticate: Bearer realm=…`) are answered; optional basic
//! credentials come from configuration. A registry that cannot be reached yields no digest (the deploy
//! then pulls by tag) and a warning, never a failed release.

use std::time::Duration;

use reqwest::header::{ACCEPT, WWW_AUTHENTICATE};
use reqwest::StatusCode;

use crate::config::Secret;

const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Looks up digests.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    credentials: Option<(String, Secret)>,
}

/// Why no digest could be found.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The repository does not look like `host[:port]/path`.
    #[error("image repository {0:?} has no registry host")]
    NoHost(String),
    /// The registry did not answer.
    #[error("registry {host} unreachable: {detail}")]
    Unreachable {
        /// Registry host.
        host: String,
        /// What failed.
        detail: String,
    },
    /// The registry answered something else than a digest.
    #[error("registry {host} answered {status} for {reference}")]
    Status {
        /// Registry host.
        host: String,
        /// HTTP status.
        status: u16,
        /// `repo:tag`.
        reference: String,
    },
}

impl RegistryClient {
    /// A client; `credentials` are used for basic auth and token requests when given.
    pub fn new(credentials: Option<(String, Secret)>) -> RegistryClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .user_agent(concat!("tao/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        RegistryClient { http, credentials }
    }

    /// The digest `repo:tag` points at now.
    pub async fn digest(&self, repo: &str, tag: &str) -> Result<String, RegistryError> {
        let (host, path) = repo.split_once('/').ok_or_else(|| RegistryError::NoHost(repo.to_string()))?;
        let scheme = if is_loopback(host) { "http" } else { "https" };
        let url = format!("{scheme}://{host}/v2/{path}/manifests/{tag}");
        let unreachable =
            |e: reqwest::Error| RegistryError::Unreachable { host: host.to_string(), detail: e.to_string() };
        let mut request = self.http.head(&url).header(ACCEPT, MANIFEST_TYPES);
        if let Some((user, pass)) = &self.credentials {
            request = request.basic_auth(user, Some(pass.expose()));
        }
        let mut response = request.send().await.map_err(unreachable)?;
        if response.status() == StatusCode::UNAUTHORIZED {
            if let Some(token) = self.bearer_token(&response, path).await {
                response = self
                    .http
                    .head(&url)
                    .header(ACCEPT, MANIFEST_TYPES)
                    .bearer_auth(token.expose())
                    .send()
                    .await
                    .map_err(unreachable)?;
            }
        }
        let status = response.status();
        let digest = response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok());
        match digest {
            Some(d) if status.is_success() && is_digest(d) => Ok(d.to_string()),
            _ => Err(RegistryError::Status {
                host: host.to_string(),
                status: status.as_u16(),
                reference: format!("{repo}:{tag}"),
            }),
        }
    }

    /// Answers a `Bearer realm="…",service="…"` challenge with a pull token.
    async fn bearer_token(&self, challenge: &reqwest::Response, path: &str) -> Option<Secret> {
        let header = challenge.headers().get(WWW_AUTHENTICATE)?.to_str().ok()?;
        let params = header.strip_prefix("Bearer ")?;
        let get = |key: &str| {
            params.split(',').find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == key).then(|| v.trim_matches('"').to_string())
            })
        };
        let realm = get("realm")?;
        let mut request = self.http.get(&realm).query(&[("scope", format!("repository:{path}:pull"))]);
        if let Some(service) = get("service") {
            request = request.query(&[("service", service)]);
        }
        if let Some((user, pass)) = &self.credentials {
            request = request.basic_auth(user, Some(pass.expose()));
        }
        let body: serde_json::Value = request.send().await.ok()?.json().await.ok()?;
        body["token"].as_str().or(body["access_token"].as_str()).map(Secret::new)
    }
}

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_use_http() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(!is_loopback("registry.example.com"));
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest("sha256:abc"));
    }
}
