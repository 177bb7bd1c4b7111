-- Raw webhook payloads in their own table (SQLite dialect; keep in step with ../postgres/0010_event_payload.sql).
-- A delivery's JSON body (often several KiB) used to live in its gitlab_event row, so every state change
-- (claimed, processed, failed) rewrote the whole row, payload and its overflow pages included. Now the
-- event row holds only what changes and what is filtered on; the payload is written once, in the same
-- transaction as its event row, and read by joining on the event id. Pruning deletes the payload row
-- (the event row stays), where it used to set the column to NULL.

CREATE TABLE gitlab_event_payload (
    event_id  INTEGER PRIMARY KEY REFERENCES gitlab_event (id),
    payload   TEXT    NOT NULL
);
INSERT INTO gitlab_event_payload (event_id, payload) SELECT id, payload FROM gitlab_event WHERE payload IS NOT NULL;
ALTER TABLE gitlab_event DROP COLUMN payload;
