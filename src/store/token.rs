//! API tokens: created once (the plain token is shown to the caller and never stored), kept as SHA-256
//! hashes, looked up on every request so that a revocation takes effect at once.
//!
//! Tokens are 192 bits of randomness, so a fast hash is enough: nobody brute-forces that space, and a
//! slow password hash would cost every request.

use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};

use super::{is_unique_violation, now_ms, Pool, StoreError};
use crate::config::Secret;

/// What a token may do (a domain type: `catalog::access`); re-exported for old paths.
pub use crate::catalog::access::Scope;

/// A token as stored (without any secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Token {
    /// Sequence number.
    pub id: i64,
    /// Unique name, e.g. `ci`.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// When created, epoch milliseconds.
    pub created_at: i64,
    /// When revoked, if it was.
    pub revoked_at: Option<i64>,
    /// Last successful use (updated at most once a minute).
    pub last_used_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    scope: String,
    created_at: i64,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TryFrom<TokenRow> for Token {
    type Error = StoreError;
    fn try_from(r: TokenRow) -> Result<Token, StoreError> {
        let scope = r.scope.parse().map_err(|detail| StoreError::Corrupt { what: "api_token.scope", detail })?;
        Ok(Token {
            id: r.id,
            name: r.name,
            scope,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        })
    }
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Names identify tokens for `list` and `revoke`, so they are unique.
    #[error("a token named {0:?} already exists; revoke it or choose another name")]
    NameTaken(String),
    /// Names are printed and typed: keep them simple.
    #[error("token name: expected 1-64 characters of letters, digits, '-', '_' or '.', found {0:?}")]
    BadName(String),
    /// Database failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

const COLUMNS: &str = "id, name, scope, created_at, revoked_at, last_used_at";

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Creates a token and returns it with its plain value, which exists nowhere else afterwards.
pub async fn create(pool: &Pool, name: &str, scope: Scope) -> Result<(Token, Secret), TokenError> {
    if !valid_name(name) {
        return Err(TokenError::BadName(name.to_string()));
    }
    let random: String = rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect();
    let plain = format!("tao_{random}");
    let sql = format!(
        "INSERT INTO api_token (name, scope, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    );
    let inserted: Result<TokenRow, sqlx::Error> = crate::with_pool!(pool, p => {
        sqlx::query_as(&sql).bind(name).bind(scope.as_str()).bind(digest(&plain)).bind(now_ms()).fetch_one(p).await
    });
    match inserted {
        Ok(row) => Ok((row.try_into()?, Secret::new(plain))),
        Err(e) if is_unique_violation(&e) => Err(TokenError::NameTaken(name.to_string())),
        Err(e) => Err(StoreError::from(e).into()),
    }
}

/// Every token, active and revoked, oldest first.
pub async fn list(pool: &Pool) -> Result<Vec<Token>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM api_token ORDER BY id");
    let rows: Vec<TokenRow> = crate::with_pool!(pool, p => sqlx::query_as(&sql).fetch_all(p).await)?;
    rows.into_iter().map(Token::try_from).collect()
}

/// Revokes the active token named `name`. Returns false when there is none.
pub async fn revoke(pool: &Pool, name: &str) -> Result<bool, StoreError> {
    let sql = "UPDATE api_token SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL";
    let done = crate::with_pool!(pool, p => sqlx::query(sql).bind(now_ms()).bind(name).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// The active token whose plain value is `presented`, if any.
///
/// The lookup is by hash through a unique index, so the comparison never touches the plain value and
/// takes the same time for every wrong token.
pub async fn authenticate(pool: &Pool, presented: &str) -> Result<Option<Token>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM api_token WHERE token_hash = $1 AND revoked_at IS NULL");
    let hash = digest(presented);
    let row: Option<TokenRow> = crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(&hash).fetch_optional(p).await)?;
    let Some(row) = row else { return Ok(None) };
    let now = now_ms();
    if row.last_used_at.is_none_or(|t| now - t > 60_000) {
        // Coarse on purpose: a write per request would serialize every reader on SQLite. Best effort: a
        // store that cannot write (a full disk) must still let readers in.
        let sql = "UPDATE api_token SET last_used_at = $1 WHERE id = $2";
        let touched = crate::with_pool!(pool, p => sqlx::query(sql).bind(now).bind(row.id).execute(p).await.map(|r| r.rows_affected()));
        if let Err(e) = touched {
            tracing::warn!(token = %row.name, error = %e, "recording the token's last use failed; it is let in");
        }
    }
    Ok(Some(row.try_into()?))
}

/// The active token named `name`, if any (a web console session signed in with a token checks it on
/// every request, so a revocation ends those sessions too).
pub async fn active(pool: &Pool, name: &str) -> Result<Option<Token>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM api_token WHERE name = $1 AND revoked_at IS NULL");
    let row: Option<TokenRow> = crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(name).fetch_optional(p).await)?;
    row.map(Token::try_from).transpose()
}
