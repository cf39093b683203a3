-- Cached blobs per group. The object itself is content-addressed in storage and shared; a group may
-- only be served a digest it has a row for.
CREATE TABLE blobs (
    group_path  TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    size        BIGINT NOT NULL,
    media_type  TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    read_at     BIGINT NOT NULL,
    PRIMARY KEY (group_path, digest)
);

-- Cached manifests per group and image, by tag and by digest (a tag row points at a digest).
CREATE TABLE manifests (
    group_path  TEXT    NOT NULL,
    image       TEXT    NOT NULL,
    reference   TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    media_type  TEXT    NOT NULL,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    checked_at  BIGINT NOT NULL,
    read_at     BIGINT NOT NULL,
    PRIMARY KEY (group_path, image, reference)
);
CREATE INDEX manifests_by_digest ON manifests (digest);

-- Who is filling an object right now, across nodes. A lease expires unless renewed.
CREATE TABLE fill_leases (
    object_digest TEXT    NOT NULL PRIMARY KEY,
    holder        TEXT    NOT NULL,
    lease_id      TEXT    NOT NULL,
    expires_at    BIGINT NOT NULL
);
