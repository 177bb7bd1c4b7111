-- The GitLab deployment that mirrors a deploy task started by a pipeline job, and whether its final status
-- reached GitLab: a Tao that stops before telling GitLab finishes the job at its next start.
ALTER TABLE deploy_task ADD COLUMN gitlab_project TEXT;
ALTER TABLE deploy_task ADD COLUMN gitlab_deployment BIGINT;
ALTER TABLE deploy_task ADD COLUMN gitlab_synced BOOLEAN NOT NULL DEFAULT FALSE;
