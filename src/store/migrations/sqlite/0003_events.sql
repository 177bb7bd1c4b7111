-- GitLab webhook deliveries (SQLite dialect; keep in step with ../postgres/0002_events.sql).
-- One row per delivery, deduplicated by delivery_id. The index columns (kind, project, ref, object_key)
-- stay forever; `payload` may be pruned to NULL by the retention setting once the event is processed.
-- state: pending | running | failed | processed. next_attempt_at is when a pending/failed event may be
-- claimed, and for a running one the end of its lease (a crashed worker's claim expires by itself).

CREATE TABLE gitlab_event (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      TEXT    NOT NULL,
    webhook_id       TEXT,
    event_header     TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    project_id       BIGINT,
    project_path     TEXT,
    ref              TEXT,
    object_key       TEXT    NOT NULL,
    received_at      BIGINT  NOT NULL,
    payload          TEXT,
    state            TEXT    NOT NULL DEFAULT 'pending',
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL DEFAULT 0,
    last_error       TEXT,
    processed_at     BIGINT
);
CREATE UNIQUE INDEX gitlab_event_delivery ON gitlab_event (delivery_id);
-- The claim's "no earlier unprocessed event of this object" check seeks (object_key, state) ranges
-- instead of walking every processed event of a busy object.
CREATE INDEX gitlab_event_object ON gitlab_event (object_key, state, id);
CREATE INDEX gitlab_event_due ON gitlab_event (state, next_attempt_at);
CREATE INDEX gitlab_event_received ON gitlab_event (received_at);
