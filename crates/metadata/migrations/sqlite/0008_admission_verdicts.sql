-- A group's admission hook's verdicts, per object digest: whether its clients may have the object
-- (`allowed` 1 or 0) and why. Asked once per digest; a verdict is forgotten (and asked again) only
-- on an operator's request (`DELETE /api/v1/verdicts/{digest}`). Kept after the object leaves the
-- cache: a refused object stays refused, and an allowed one comes back without asking.
CREATE TABLE admission_verdicts (
    group_path TEXT   NOT NULL,
    digest     TEXT   NOT NULL,
    allowed    BIGINT NOT NULL,
    reason     TEXT   NOT NULL,
    decided_at BIGINT NOT NULL,
    PRIMARY KEY (group_path, digest)
);
CREATE INDEX admission_verdicts_digest ON admission_verdicts (digest);
