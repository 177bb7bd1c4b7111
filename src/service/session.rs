//! Web console sign-in and sessions: who a browser is, as an [`Actor`] the other services authorize.
//!
//! A person signs in with GitLab (the adapter does the OAuth exchange and hands over the [`ChatUser`]
//! the role map made of them) or with an API token (its scope becomes a level: read → reporter, deploy →
//! developer, admin → maintainer). Either way they act as `Actor::Chat` with transport `web`, so the
//! environment rules of chat apply and the audit log says `web:NAME`. Sign-ins and sign-outs are audited.

use super::{Actor, ServiceError, Services};
use crate::catalog::access::{level, ChatUser, Scope};
use crate::store;
use crate::store::session::{NewSession, Session};

/// A live session: who it is and the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct WebSession {
    /// The person as the services see them.
    pub user: ChatUser,
    /// `gitlab` or `token`.
    pub via: String,
    /// The CSRF token of this session.
    pub csrf: String,
    /// When it ends, epoch ms.
    pub expires_at: i64,
}

impl WebSession {
    /// The actor of the session's requests.
    pub fn actor(&self) -> Actor {
        Actor::Chat(Box::new(self.user.clone()))
    }
}

/// The level a token's scope gives in the console.
pub fn level_of_scope(scope: Scope) -> u32 {
    match scope {
        Scope::Read => level::REPORTER,
        Scope::Deploy => level::DEVELOPER,
        Scope::Admin => level::MAINTAINER,
    }
}

fn user_of(row: &Session) -> ChatUser {
    let mut user = ChatUser::new("web", row.principal.clone(), row.name.clone());
    user.level = u32::try_from(row.level).unwrap_or(0);
    user.roles = row.roles.split(',').filter(|r| !r.is_empty()).map(str::to_string).collect();
    user
}

fn view(row: Session) -> WebSession {
    WebSession { user: user_of(&row), via: row.via, csrf: row.csrf, expires_at: row.expires_at }
}

impl Services {
    /// Signs in with an API token; `None` when it is unknown, revoked or expired (nothing is stored).
    pub async fn web_sign_in_token(
        &self,
        presented: &str,
        ttl_ms: i64,
    ) -> Result<Option<(String, WebSession)>, ServiceError> {
        let Some(token) = self.authenticate(presented).await? else {
            store::audit::record(
                self.pool(),
                "web:anonymous",
                "web.sign_in",
                "token",
                "denied",
                "unknown or revoked token",
            )
            .await?;
            return Ok(None);
        };
        let new = NewSession {
            via: "token",
            principal: &token.name,
            name: &token.name,
            level: i64::from(level_of_scope(token.scope)),
            roles: &[],
            ttl_ms,
        };
        let (cookie, row) = store::session::create(self.pool(), &new).await?;
        let session = view(row);
        let detail = format!("token {:?} ({} scope)", token.name, token.scope);
        store::audit::record(self.pool(), &session.user.to_string(), "web.sign_in", "token", "ok", &detail).await?;
        Ok(Some((cookie, session)))
    }

    /// Starts a session for someone GitLab vouched for (the adapter checked the OAuth answer).
    pub async fn web_sign_in_gitlab(&self, user: &ChatUser, ttl_ms: i64) -> Result<(String, WebSession), ServiceError> {
        let new = NewSession {
            via: "gitlab",
            principal: &user.id,
            name: &user.name,
            level: i64::from(user.level),
            roles: &user.roles,
            ttl_ms,
        };
        let (cookie, row) = store::session::create(self.pool(), &new).await?;
        let session = view(row);
        let detail = format!("GitLab user {} as {}", user.id, user.describe_roles());
        store::audit::record(self.pool(), &session.user.to_string(), "web.sign_in", "gitlab", "ok", &detail).await?;
        Ok((cookie, session))
    }

    /// The live session of a cookie value. A token session ends when its token is revoked, and takes
    /// the token's current scope.
    pub async fn web_session(&self, cookie: &str) -> Result<Option<WebSession>, ServiceError> {
        let Some(row) = store::session::get(self.pool(), cookie).await? else { return Ok(None) };
        let mut session = view(row);
        if session.via == "token" {
            match store::token::active(self.pool(), &session.user.id).await? {
                Some(t) => session.user.level = level_of_scope(t.scope),
                None => {
                    store::session::delete(self.pool(), cookie).await?;
                    return Ok(None);
                }
            }
        }
        Ok(Some(session))
    }

    /// Ends a session (logout); prunes expired ones on the way.
    pub async fn web_sign_out(&self, cookie: &str, actor: &Actor) -> Result<bool, ServiceError> {
        let ended = store::session::delete(self.pool(), cookie).await?;
        store::session::prune(self.pool()).await?;
        let word = if ended { "ok" } else { "unchanged" };
        store::audit::record(self.pool(), &actor.to_string(), "web.sign_out", "session", word, "").await?;
        Ok(ended)
    }

    /// Records a GitLab sign-in in flight (its OAuth state and PKCE verifier).
    pub async fn web_begin_login(&self, state: &str, verifier: &str, next: &str) -> Result<(), ServiceError> {
        Ok(store::session::begin_login(self.pool(), state, verifier, next).await?)
    }

    /// Takes the sign-in of an OAuth state once: its verifier and where to go.
    pub async fn web_take_login(&self, state: &str) -> Result<Option<(String, String)>, ServiceError> {
        Ok(store::session::take_login(self.pool(), state).await?)
    }
}
