-- The claim's index of unprocessed events (PostgreSQL dialect; keep in step with ../sqlite/0004_event_heads.sql).
-- A worker claims only the oldest unprocessed event of each object. This partial index holds just the
-- unprocessed events, ordered by object and arrival, so the claim walks the objects that have work
-- (one seek per object) instead of every waiting event: a backlog of thousands behind a few busy
-- objects costs the claim as much as no backlog. It replaces gitlab_event_object, which held every
-- event forever and changed on every state change.
CREATE INDEX gitlab_event_head ON gitlab_event (object_key, id) WHERE state <> 'processed';
DROP INDEX gitlab_event_object;
