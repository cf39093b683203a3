-- Cache lifecycle: access tracking (read_at is batched in; hits counted), what each manifest
-- references (pins and purges by image follow it), objects waiting to be deleted from storage,
-- hourly traffic per group, background jobs, and maintenance coordination across nodes.
ALTER TABLE blobs ADD COLUMN hits BIGINT NOT NULL DEFAULT 0;
ALTER TABLE manifests ADD COLUMN hits BIGINT NOT NULL DEFAULT 0;
CREATE INDEX blobs_by_read ON blobs (group_path, read_at, digest);
CREATE INDEX blobs_by_digest ON blobs (digest);
CREATE INDEX manifests_by_read ON manifests (group_path, read_at, digest);

-- An index's child manifests, an image manifest's config and layers; written when the manifest is
-- stored, removed with its digest row.
CREATE TABLE manifest_refs (
    group_path      TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    child_digest    TEXT NOT NULL,
    PRIMARY KEY (group_path, manifest_digest, child_digest)
);
CREATE INDEX manifest_refs_by_child ON manifest_refs (group_path, child_digest);

-- An object whose last row was removed: deleted from storage once due (and still unreferenced).
CREATE TABLE pending_deletes (
    digest  TEXT   NOT NULL PRIMARY KEY,
    size    BIGINT NOT NULL,
    due_at  BIGINT NOT NULL
);
CREATE INDEX pending_deletes_by_due ON pending_deletes (due_at);

-- Client traffic per group and hour (unix ms of the hour's start).
CREATE TABLE group_traffic (
    group_path    TEXT   NOT NULL,
    hour          BIGINT NOT NULL,
    hits          BIGINT NOT NULL DEFAULT 0,
    misses        BIGINT NOT NULL DEFAULT 0,
    bytes_served  BIGINT NOT NULL DEFAULT 0,
    bytes_fetched BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (group_path, hour)
);

-- Background jobs (purges): progress readable from any node and from the CLI.
CREATE TABLE jobs (
    id          TEXT   NOT NULL PRIMARY KEY,
    kind        TEXT   NOT NULL,
    description TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    done        BIGINT NOT NULL DEFAULT 0,
    total       BIGINT NOT NULL DEFAULT 0,
    bytes       BIGINT NOT NULL DEFAULT 0,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT
);

-- Maintenance across nodes: `sweep` is a lease (one sweeper at a time); `generation` counts
-- removals, so every control plane drops what it remembers when another process removed rows.
CREATE TABLE maintenance (
    name       TEXT   NOT NULL PRIMARY KEY,
    holder     TEXT,
    expires_at BIGINT NOT NULL DEFAULT 0,
    generation BIGINT NOT NULL DEFAULT 0
);
INSERT INTO maintenance (name) VALUES ('sweep');
INSERT INTO maintenance (name) VALUES ('generation');
