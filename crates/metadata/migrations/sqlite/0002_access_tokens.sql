-- Access tokens: what a client presents (as a password, or to get a registry JWT) to pull from
-- groups with access = "token". Only a hash of the secret is stored. A revoked token keeps its row,
-- so JWTs issued before the revocation are refused by id; its name may be given to a new token.
CREATE TABLE access_tokens (
    id           TEXT    NOT NULL PRIMARY KEY,
    name         TEXT    NOT NULL,
    secret_hash  TEXT    NOT NULL UNIQUE,
    groups       TEXT    NOT NULL,
    admin        INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX access_tokens_active_name ON access_tokens (name) WHERE revoked_at IS NULL;
