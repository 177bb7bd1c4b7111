-- Tao store, first schema (SQLite dialect; keep in step with ../postgres/0001_init.sql).
-- Times are Unix epoch milliseconds (BIGINT) in both dialects so the two schemas match column for column.

CREATE TABLE catalog_revision (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    hash        TEXT    NOT NULL,
    yaml        TEXT    NOT NULL,
    applied_by  TEXT    NOT NULL,
    applied_at  BIGINT  NOT NULL
);
CREATE INDEX catalog_revision_hash ON catalog_revision (hash);

CREATE TABLE product_version (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    product           TEXT    NOT NULL,
    version           TEXT    NOT NULL,
    catalog_revision  BIGINT  REFERENCES catalog_revision (id),
    created_by        TEXT    NOT NULL,
    created_at        BIGINT  NOT NULL
);
CREATE UNIQUE INDEX product_version_key ON product_version (product, version);

CREATE TABLE product_version_component (
    product_version_id BIGINT NOT NULL REFERENCES product_version (id),
    component          TEXT   NOT NULL,
    version            TEXT   NOT NULL,
    git_tag            TEXT   NOT NULL,
    image              TEXT,
    image_tag          TEXT   NOT NULL,
    image_digest       TEXT,
    PRIMARY KEY (product_version_id, component)
);

CREATE TABLE api_token (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    scope         TEXT    NOT NULL,
    token_hash    TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);
CREATE UNIQUE INDEX api_token_name ON api_token (name);
CREATE UNIQUE INDEX api_token_hash ON api_token (token_hash);

CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       BIGINT  NOT NULL,
    actor    TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    target   TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,
    detail   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at);
