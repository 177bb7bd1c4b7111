//! Web console sessions and sign-ins in flight (`web_session`, `web_login`).
//!
//! A session's cookie value is 192 random bits shown once to the browser; the store keeps its SHA-256,
//! like API tokens (`store::token`). Each session carries its CSRF token (every state-changing form
//! sends it back). Expired rows let nobody in and are pruned by [`prune`]. A GitLab sign-in in flight is
//! a row keyed by the hash of its OAuth `state`, holding the PKCE verifier; the callback takes it once.

use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};

use super::{now_ms, Pool, StoreError};

/// How long a sign-in through GitLab may take before its state is refused.
pub const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;

/// Who a session belongs to, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    /// `gitlab` or `token`.
    pub via: String,
    /// The GitLab user id, or the API token's name.
    pub principal: String,
    /// The name shown and audited (GitLab username, or token name).
    pub name: String,
    /// Level (GitLab's numbers) at sign-in; token sessions derive theirs from the token on every request.
    pub level: i64,
    /// Named roles, comma-separated.
    pub roles: String,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    /// Created, epoch ms.
    pub created_at: i64,
    /// Ends, epoch ms.
    pub expires_at: i64,
}

/// A session to create.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// `gitlab` or `token`.
    pub via: &'a str,
    /// GitLab user id or token name.
    pub principal: &'a str,
    /// Shown name.
    pub name: &'a str,
    /// Level.
    pub level: i64,
    /// Named roles.
    pub roles: &'a [String],
    /// Lifetime, ms.
    pub ttl_ms: i64,
}

/// 32 random alphanumerics (about 190 bits).
pub fn random_token() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}

fn digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Creates a session; returns the cookie value (which exists nowhere else afterwards) and the row.
pub async fn create(pool: &Pool, new: &NewSession<'_>) -> Result<(String, Session), StoreError> {
    let cookie = random_token();
    let now = now_ms();
    let row = Session {
        via: new.via.to_string(),
        principal: new.principal.to_string(),
        name: new.name.to_string(),
        level: new.level,
        roles: new.roles.join(","),
        csrf: random_token(),
        created_at: now,
        expires_at: now + new.ttl_ms,
    };
    let sql = "INSERT INTO web_session (token_hash, via, principal, name, level, roles, csrf, created_at, expires_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    crate::with_pool!(pool, p => sqlx::query(sql)
        .bind(digest(&cookie)).bind(&row.via).bind(&row.principal).bind(&row.name).bind(row.level)
        .bind(&row.roles).bind(&row.csrf).bind(row.created_at).bind(row.expires_at)
        .execute(p).await.map(|_| ()))?;
    Ok((cookie, row))
}

/// The live session whose cookie value is `cookie`, if any (unknown and expired: `None`).
pub async fn get(pool: &Pool, cookie: &str) -> Result<Option<Session>, StoreError> {
    let sql = "SELECT via, principal, name, level, roles, csrf, created_at, expires_at FROM web_session \
               WHERE token_hash = $1 AND expires_at > $2";
    let row: Option<Session> =
        crate::with_pool!(pool, p => sqlx::query_as(sql).bind(digest(cookie)).bind(now_ms()).fetch_optional(p).await)?;
    Ok(row)
}

/// Ends the session of `cookie` (logout). False when there was none.
pub async fn delete(pool: &Pool, cookie: &str) -> Result<bool, StoreError> {
    let sql = "DELETE FROM web_session WHERE token_hash = $1";
    let n = crate::with_pool!(pool, p => sqlx::query(sql).bind(digest(cookie)).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Removes expired sessions and abandoned sign-ins; returns how many rows went.
pub async fn prune(pool: &Pool) -> Result<u64, StoreError> {
    let now = now_ms();
    let a = crate::with_pool!(pool, p => sqlx::query("DELETE FROM web_session WHERE expires_at <= $1")
        .bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    let b = crate::with_pool!(pool, p => sqlx::query("DELETE FROM web_login WHERE created_at <= $1")
        .bind(now - LOGIN_TTL_MS).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(a + b)
}

/// Records a GitLab sign-in in flight under its OAuth `state`.
pub async fn begin_login(pool: &Pool, state: &str, verifier: &str, next: &str) -> Result<(), StoreError> {
    let sql = "INSERT INTO web_login (state_hash, verifier, next, created_at) VALUES ($1, $2, $3, $4)";
    crate::with_pool!(pool, p => sqlx::query(sql).bind(digest(state)).bind(verifier).bind(next).bind(now_ms()).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// Takes (deletes) the sign-in of `state`: its PKCE verifier and where to go, when it exists and is
/// younger than [`LOGIN_TTL_MS`]. A state is good once.
pub async fn take_login(pool: &Pool, state: &str) -> Result<Option<(String, String)>, StoreError> {
    let hash = digest(state);
    let sql = "SELECT verifier, next, created_at FROM web_login WHERE state_hash = $1";
    let row: Option<(String, String, i64)> =
        crate::with_pool!(pool, p => sqlx::query_as(sql).bind(&hash).fetch_optional(p).await)?;
    let Some((verifier, next, created_at)) = row else { return Ok(None) };
    let sql = "DELETE FROM web_login WHERE state_hash = $1";
    let n = crate::with_pool!(pool, p => sqlx::query(sql).bind(&hash).execute(p).await.map(|r| r.rows_affected()))?;
    // Two callbacks racing for one state: only the one whose delete removed the row goes on.
    if n == 0 || now_ms() - created_at > LOGIN_TTL_MS {
        return Ok(None);
    }
    Ok(Some((verifier, next)))
}
