-- Work items (TAPD stories and bugs; GitLab issues later), the history of their states, the iterations
-- product versions are planned as, the sync cursors per source/workspace/kind, and links to merge
-- requests, commits, versions and environments. Ids of the source stay text (TAPD long ids, 19 digits).
CREATE TABLE work_item (
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    workspace TEXT NOT NULL,
    short_id TEXT,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    iteration_id TEXT,
    product TEXT,
    version TEXT,
    created_at BIGINT NOT NULL,
    modified_at BIGINT NOT NULL,
    completed_at BIGINT,
    synced_at BIGINT NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE INDEX work_item_short ON work_item (workspace, short_id);
CREATE INDEX work_item_version ON work_item (product, version);

-- Every state a work item entered, once: a re-sync of the same change inserts nothing.
CREATE TABLE work_item_state (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    item_id TEXT NOT NULL,
    state TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    author TEXT
);
CREATE UNIQUE INDEX work_item_state_once ON work_item_state (source, item_id, changed_at, state);

CREATE TABLE work_iteration (
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    workspace TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    version TEXT,
    modified_at BIGINT NOT NULL,
    PRIMARY KEY (source, id)
);

-- What the source calls each state (TAPD's workflows/status_map: custom states are `status_N`).
CREATE TABLE work_state_name (
    source TEXT NOT NULL,
    workspace TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    label TEXT NOT NULL,
    PRIMARY KEY (source, workspace, kind, state)
);

-- Where the last successful sync of one kind in one workspace got to (the source's own modified time).
CREATE TABLE work_sync_cursor (
    source TEXT NOT NULL,
    workspace TEXT NOT NULL,
    kind TEXT NOT NULL,
    cursor TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (source, workspace, kind)
);

-- target_kind: merge_request (project!iid), commit (sha), component_version, product_version, environment.
CREATE TABLE work_item_link (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    item_id TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target TEXT NOT NULL,
    via TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX work_item_link_once ON work_item_link (source, item_id, target_kind, target);
CREATE INDEX work_item_link_target ON work_item_link (target_kind, target);
