//! The one authentication extractor of `/api/v1`: `Authorization: Bearer <token>` → [`Actor`], checked
//! against the scope the route declares by its type (`Authorized<NeedRead>`, …).
//!
//! Tokens are looked up in the store on every request (by hash), so a revoked token stops working at
//! once. A `JOB-TOKEN: …` header instead is verified with GitLab on every request (it answers only
//! while the job runs) and yields a CI job actor, which holds the deploy scope at most (what it may
//! deploy is decided by the service from its project and ref). Later actors (chat users) join here.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use super::error::ApiError;
use super::HttpState;
use crate::catalog::access::Scope;
use crate::service::{Actor, JobTokenError};

/// A route's scope requirement, as a type.
pub trait Need: Send + Sync + 'static {
    /// The least scope that passes.
    const SCOPE: Scope;
}

/// Read access (may be opened to anonymous callers by configuration).
pub struct NeedRead;
/// May create product versions and deploy.
pub struct NeedDeploy;
/// May change the catalog.
pub struct NeedAdmin;

impl Need for NeedRead {
    const SCOPE: Scope = Scope::Read;
}
impl Need for NeedDeploy {
    const SCOPE: Scope = Scope::Deploy;
}
impl Need for NeedAdmin {
    const SCOPE: Scope = Scope::Admin;
}

/// An actor that passed authentication and holds at least `N::SCOPE`.
pub struct Authorized<N: Need>(pub Actor, pub PhantomData<N>);

impl<N: Need> FromRequestParts<HttpState> for Authorized<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, Self::Rejection> {
        if let Some(value) = parts.headers.get("job-token") {
            let token = value.to_str().unwrap_or_default().trim();
            if token.is_empty() {
                return Err(unauthorized("JOB-TOKEN: expected the job's $CI_JOB_TOKEN"));
            }
            if N::SCOPE > Scope::Deploy {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("this needs the {} scope; a CI job token has deploy at most", N::SCOPE),
                ));
            }
            return match state.services.ci_job_actor(token).await {
                Ok(actor) => Ok(Authorized(actor, PhantomData)),
                Err(JobTokenError::Refused(why)) => {
                    tracing::info!(reason = %why, "refused a CI job token");
                    Err(unauthorized(&why))
                }
                Err(JobTokenError::Upstream(why)) => Err(ApiError::new(StatusCode::BAD_GATEWAY, "upstream", why)),
            };
        }
        let presented = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => {
                let value = value.to_str().unwrap_or_default();
                let bearer = value.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty());
                Some(bearer.ok_or_else(|| unauthorized("Authorization: expected \"Bearer <token>\""))?)
            }
        };
        let Some(presented) = presented else {
            if N::SCOPE == Scope::Read && state.open_read {
                return Ok(Authorized(Actor::Anonymous, PhantomData));
            }
            return Err(unauthorized("missing Authorization: Bearer token (create one with `tao token create`)"));
        };
        let found = state.services.authenticate(presented).await?;
        let Some(found) = found else {
            return Err(unauthorized("the token is unknown or revoked"));
        };
        if found.scope < N::SCOPE {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs a token with the {} scope; token {:?} has {}", N::SCOPE, found.name, found.scope),
            ));
        }
        Ok(Authorized(Actor::Token { name: found.name, scope: found.scope }, PhantomData))
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}
