-- Which upstream served each object (a group may ask several in order): shown by `cache stats`
-- and the admin API, and asked first when a tag is checked again. Rows from before are '' (not
-- known).
ALTER TABLE blobs ADD COLUMN upstream TEXT NOT NULL DEFAULT '';
ALTER TABLE manifests ADD COLUMN upstream TEXT NOT NULL DEFAULT '';
