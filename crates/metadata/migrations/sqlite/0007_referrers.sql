-- The referrers API's lists (`/v2/<name>/referrers/<digest>`), one per group, image and subject,
-- as upstream answered them: the list itself (an OCI image index, kept whole: small), or that
-- upstream answered 404 (it serves no referrers API; clients then use the tag schema). Fresh for
-- the group's `manifest_recheck` after `checked_at`; served stale while upstream is down; removed
-- with the group's tags (TTL by `read_at`, purges).
CREATE TABLE referrer_lists (
    group_path  TEXT    NOT NULL,
    image       TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    found       INTEGER NOT NULL,
    body        BLOB    NOT NULL,
    link        TEXT,
    upstream    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    checked_at  INTEGER NOT NULL,
    read_at     INTEGER NOT NULL,
    PRIMARY KEY (group_path, image, subject)
);
CREATE INDEX referrer_lists_by_read ON referrer_lists (group_path, read_at);
