-- Branch policy: the latest verdict per merge request (the explanation page and reconcile read it), and
-- violations found in pushes and tags that slipped past GitLab's protections.
CREATE TABLE policy_check (
    project_id BIGINT NOT NULL,
    mr_iid BIGINT NOT NULL,
    project_path TEXT NOT NULL,
    head_sha TEXT NOT NULL,
    pipeline_id BIGINT,
    source_branch TEXT NOT NULL,
    target_branch TEXT NOT NULL,
    title TEXT NOT NULL,
    state TEXT NOT NULL,
    verdict TEXT NOT NULL,
    checked_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, mr_iid)
);
CREATE INDEX policy_check_path ON policy_check (project_path, mr_iid);

CREATE TABLE policy_violation (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT,
    project_path TEXT NOT NULL,
    kind TEXT NOT NULL,
    git_ref TEXT NOT NULL,
    sha TEXT,
    actor TEXT,
    rule TEXT NOT NULL,
    message TEXT NOT NULL,
    fix TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX policy_violation_delivery ON policy_violation (delivery_id, rule);
CREATE INDEX policy_violation_project ON policy_violation (project_path, created_at);
