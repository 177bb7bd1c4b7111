//! Signing in with GitLab: the OAuth 2 authorization-code flow with PKCE (RFC 7636, `S256`), as GitLab
//! documents it (`/oauth/authorize`, `/oauth/token`). Owns the authorize URL, the verifier and its
//! challenge, and the token exchange; who the person is comes from the REST client (`/api/v4/user`,
//! their groups) with the access token this returns. The access token is used once and not kept.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::urlenc;

/// The OAuth application registered in GitLab for Tao.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    /// GitLab's base URL (`TAO_GITLAB_URL`).
    pub gitlab_url: String,
    /// Application ID.
    pub client_id: String,
    /// Secret.
    pub client_secret: Secret,
    /// Where GitLab sends the browser back (`TAO_PUBLIC_URL` + `/ui/oauth/callback`).
    pub redirect_uri: String,
}

/// Why the token exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// GitLab refused the code (expired, reused, wrong verifier or secret): the answer's `error`.
    #[error("GitLab refused the sign-in: {0}")]
    Refused(String),
    /// GitLab could not be reached or answered something else.
    #[error("GitLab did not answer the sign-in: {0}")]
    Upstream(String),
}

/// A PKCE verifier: 43 to 128 unreserved characters (here 64 alphanumerics).
pub fn new_verifier() -> String {
    use rand::Rng;
    rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(64).map(char::from).collect()
}

/// The `S256` challenge of a verifier: BASE64URL(SHA256(verifier)) without padding.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl OAuthApp {
    /// The URL to send the browser to (`read_user` to learn who it is, `read_api` for their groups).
    pub fn authorize_url(&self, state: &str, verifier: &str) -> String {
        format!(
            "{}/oauth/authorize?client_id={}&redirect_uri={}&response_type=code&state={}&scope={}&code_challenge={}&code_challenge_method=S256",
            self.gitlab_url.trim_end_matches('/'),
            urlenc::encode(&self.client_id),
            urlenc::encode(&self.redirect_uri),
            urlenc::encode(state),
            urlenc::encode("read_user read_api"),
            challenge(verifier),
        )
    }

    /// Exchanges an authorization code (with its verifier) for an access token.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<Secret, OAuthError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("tao/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| OAuthError::Upstream(e.to_string()))?;
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("code", code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        let url = format!("{}/oauth/token", self.gitlab_url.trim_end_matches('/'));
        let response =
            http.post(url).form(&form).send().await.map_err(|e| OAuthError::Upstream(e.without_url().to_string()))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            return body["access_token"]
                .as_str()
                .map(|t| Secret::new(t.to_string()))
                .ok_or_else(|| OAuthError::Upstream("the token answer has no access_token".into()));
        }
        if status.is_client_error() {
            let why = body["error_description"].as_str().or(body["error"].as_str()).unwrap_or("no reason given");
            return Err(OAuthError::Refused(format!("{why} ({status})")));
        }
        Err(OAuthError::Upstream(format!("{status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636s_s256() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let v = new_verifier();
        assert!(v.len() == 64 && v.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
