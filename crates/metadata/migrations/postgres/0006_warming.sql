-- Warming on a schedule: what a job found and did (JSON, read back by the admin API), and when
-- each group's warm entry is due next (shared by every node: the node whose claim moves `due_at`
-- runs it, so a cluster warms once per period).
ALTER TABLE jobs ADD COLUMN result TEXT;
CREATE TABLE warm_schedules (
    name     TEXT   NOT NULL PRIMARY KEY,
    due_at   BIGINT NOT NULL,
    last_job TEXT
);
