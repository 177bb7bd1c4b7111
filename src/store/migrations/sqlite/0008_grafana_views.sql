-- Views for Grafana's SQL data sources (PostgreSQL when Tao runs on it): stable, documented shapes over
-- the tables, so dashboards do not depend on Tao's internal columns. Times are epoch milliseconds.
CREATE VIEW grafana_deploys AS
    SELECT id, kind, env, product, version, component, image_tag, status, requested_by,
           created_at, started_at, finished_at
    FROM deploy_task
    WHERE finished_at IS NOT NULL;

CREATE VIEW grafana_events AS
    SELECT id, kind, project_path, ref AS git_ref, state, received_at
    FROM gitlab_event;

CREATE VIEW grafana_policy_violations AS
    SELECT id, project_path, kind, git_ref, actor, rule, created_at
    FROM policy_violation;
