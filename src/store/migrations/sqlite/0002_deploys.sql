-- Deploy engine (SQLite dialect; keep in step with ../postgres/0002_deploys.sql).
-- Tasks are the only way anything is deployed; the queue is this table. Environment leases are rows, so
-- a crashed Tao leaves nothing on hosts and its leases expire or are released at restart.

CREATE TABLE deploy_task (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    kind              TEXT    NOT NULL,               -- release | component | rollback
    env               TEXT    NOT NULL,
    product           TEXT,
    version           TEXT,
    component         TEXT,
    image_tag         TEXT,
    components        TEXT    NOT NULL DEFAULT '',    -- comma-separated subset of a release; '' = all
    force             BOOLEAN NOT NULL DEFAULT FALSE,
    rollback_on_failure BOOLEAN NOT NULL DEFAULT TRUE,
    status            TEXT    NOT NULL,               -- queued running succeeded failed cancelled interrupted
    requested_by      TEXT    NOT NULL,
    idempotency_key   TEXT,
    catalog_revision  BIGINT,
    plan              TEXT,                           -- JSON, once planned
    error             TEXT,
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    worker            TEXT,
    created_at        BIGINT  NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT
);
CREATE UNIQUE INDEX deploy_task_idempotency ON deploy_task (idempotency_key);
CREATE INDEX deploy_task_env_status ON deploy_task (env, status, id);
CREATE INDEX deploy_task_status ON deploy_task (status, id);

CREATE TABLE task_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id    BIGINT  NOT NULL REFERENCES deploy_task (id),
    at         BIGINT  NOT NULL,
    level      TEXT    NOT NULL,
    host       TEXT,
    component  TEXT,
    line       TEXT    NOT NULL
);
CREATE INDEX task_log_task ON task_log (task_id, id);

CREATE TABLE env_lease (
    env         TEXT    PRIMARY KEY,
    task_id     BIGINT  NOT NULL,
    owner       TEXT    NOT NULL,
    expires_at  BIGINT  NOT NULL
);

CREATE TABLE env_freeze (
    env        TEXT    PRIMARY KEY,
    reason     TEXT    NOT NULL,
    frozen_by  TEXT    NOT NULL,
    frozen_at  BIGINT  NOT NULL
);

-- What runs now: one row per environment, host and component, with the exact run spec used.
CREATE TABLE deployed_state (
    env           TEXT    NOT NULL,
    host          TEXT    NOT NULL,
    component     TEXT    NOT NULL,
    product       TEXT,
    version       TEXT,                               -- NULL: an off-release component build
    image         TEXT    NOT NULL,                   -- the reference pulled (by digest when known)
    image_tag     TEXT    NOT NULL,
    image_digest  TEXT,
    container     TEXT    NOT NULL,
    run_spec      TEXT    NOT NULL,                   -- JSON RunSpec
    task_id       BIGINT  NOT NULL,
    deployed_at   BIGINT  NOT NULL,
    PRIMARY KEY (env, host, component)
);

-- Every change to deployed_state, oldest first: the environment timeline.
CREATE TABLE deploy_history (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    env           TEXT    NOT NULL,
    host          TEXT    NOT NULL,
    component     TEXT    NOT NULL,
    action        TEXT    NOT NULL,                   -- deployed | restored | removed
    product       TEXT,
    version       TEXT,
    image         TEXT    NOT NULL,
    image_tag     TEXT    NOT NULL,
    image_digest  TEXT,
    container     TEXT    NOT NULL,
    run_spec      TEXT    NOT NULL,
    task_id       BIGINT  NOT NULL,
    at            BIGINT  NOT NULL
);
CREATE INDEX deploy_history_env ON deploy_history (env, id);

-- Product versions that reached an environment completely: what `rollback` goes back to.
CREATE TABLE env_release (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    env          TEXT    NOT NULL,
    product      TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    task_id      BIGINT  NOT NULL,
    snapshot     TEXT    NOT NULL,                    -- JSON: every host/component run spec after the task
    deployed_at  BIGINT  NOT NULL
);
CREATE INDEX env_release_env ON env_release (env, id);
