-- Package formats (npm, PyPI). Their bytes — a document as the upstream sent it, a file once
-- verified — are blob rows of the group (content-addressed by sha256), so storage, eviction, TTL
-- and the sweeper treat them as every other object; these tables are the names pointing at them.

-- The documents that list a package's files (an npm packument, a PyPI project page), per group,
-- package and variant (full or abbreviated packument; HTML or JSON page). Fresh for the group's
-- document_recheck after checked_at; served stale while the upstream is down. A row whose blob is
-- gone (evicted, purged) is not cached: it is fetched again.
CREATE TABLE package_documents (
    group_path  TEXT    NOT NULL,
    package     TEXT    NOT NULL,
    variant     TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    size        BIGINT NOT NULL,
    media_type  TEXT    NOT NULL,
    upstream    TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    checked_at  BIGINT NOT NULL,
    PRIMARY KEY (group_path, package, variant)
);

-- The files a group's documents list, by their path under the group (npm
-- 'lodash/-/lodash-4.17.21.tgz', PyPI 'packages/ab/cd/x-1.0-py3-none-any.whl'): the checksum
-- the upstream published for each (what the file is verified against before it is recorded),
-- where the upstream said it is, and once stored its sha256 digest ('' before).
CREATE TABLE package_files (
    group_path  TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    package     TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    algorithm   TEXT    NOT NULL,
    checksum    TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    upstream    TEXT    NOT NULL,
    digest      TEXT    NOT NULL DEFAULT '',
    size        BIGINT NOT NULL DEFAULT 0,
    listed_at   BIGINT NOT NULL,
    PRIMARY KEY (group_path, path)
);
CREATE INDEX package_files_by_package ON package_files (group_path, package);
