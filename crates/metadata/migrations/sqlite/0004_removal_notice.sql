-- When an object's last row went (the database's clock, unix ms): its storage is deleted only once
-- every control plane has had time to forget the rows (`removal_notice`), whoever deletes it.
-- Queued entries from before this column are old enough.
ALTER TABLE pending_deletes ADD COLUMN queued_at BIGINT NOT NULL DEFAULT 0;
