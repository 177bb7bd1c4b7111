-- The web console's sign-ins (`crate::web`, `crate::store::session`).
-- A session: a signed-in person, kept server-side. The cookie holds a random value whose SHA-256 is the
-- key, so the table never holds a usable cookie. `via` is `gitlab` (OAuth) or `token` (an API token's
-- name in `principal`, looked up again on every request so a revoked token ends its sessions).
CREATE TABLE web_session (
    token_hash TEXT PRIMARY KEY,
    via TEXT NOT NULL,
    principal TEXT NOT NULL,
    name TEXT NOT NULL,
    level BIGINT NOT NULL,
    roles TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_session_expiry ON web_session (expires_at);

-- A sign-in through GitLab in flight: the OAuth `state` (hashed), the PKCE verifier and where to go
-- after; taken (deleted) by the callback, so a state is good once.
CREATE TABLE web_login (
    state_hash TEXT PRIMARY KEY,
    verifier TEXT NOT NULL,
    next TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
