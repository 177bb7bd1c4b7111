-- Outgoing notifications (chat::notify): one row per event and destination, rendered when the event
-- happens, delivered by the notifier with retries; a dedupe key makes emitting the same event twice
-- (a replayed webhook, a task change seen again after a restart) a no-op.
CREATE TABLE notification (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key TEXT NOT NULL,
    event TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE UNIQUE INDEX notification_dedupe ON notification (dedupe_key, target_kind, target);
CREATE INDEX notification_due ON notification (state, next_attempt_at);
