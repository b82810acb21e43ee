-- The gallery: when the owner published a completed video (NULL: not published). Publishing is a flag on the
-- job, not a copy: deleting the video removes it from the gallery too. The partial index serves the gallery's
-- keyset pages (jobs/queries.py LIST_PUBLISHED), newest publication first, without touching unpublished rows.
ALTER TABLE jobs ADD COLUMN published_at DOUBLE PRECISION;
CREATE INDEX jobs_published ON jobs (published_at, id) WHERE published_at IS NOT NULL;
