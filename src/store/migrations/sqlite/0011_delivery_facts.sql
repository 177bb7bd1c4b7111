-- Facts for delivery metrics: change sets of component versions (lead time) and bug versions.
-- The changes each component version brought, for lead time for changes: when a component's release tag
-- is pushed, Tao compares it with the component's previous version tag in GitLab and records the commits
-- in between with their commit times. A component's first version has no previous tag: its row records
-- that (previous_tag NULL) and no commits are counted for it.
CREATE TABLE component_change (
    component TEXT NOT NULL,
    version TEXT NOT NULL,
    project_path TEXT NOT NULL,
    tag TEXT NOT NULL,
    previous_tag TEXT,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (component, version)
);

CREATE TABLE change_commit (
    component TEXT NOT NULL,
    version TEXT NOT NULL,
    sha TEXT NOT NULL,
    title TEXT NOT NULL,
    committed_at BIGINT NOT NULL,
    PRIMARY KEY (component, version, sha)
);

-- The product versions a bug was found in and fixed in (TAPD's `version_report` and `version_fix`, mapped
-- to product versions like iteration names; fixed in falls back to the iteration of a completed bug).
CREATE TABLE work_item_bug_version (
    source TEXT NOT NULL,
    item_id TEXT NOT NULL,
    product TEXT NOT NULL,
    found_in TEXT,
    fixed_in TEXT,
    PRIMARY KEY (source, item_id)
);
