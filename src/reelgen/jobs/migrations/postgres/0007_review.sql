-- Publishing with approval and moderation holds (issue 7; states and transitions in reelgen/domain/review.py).
-- review_state: none | pending (submitted by the owner) | approved (by a moderator: the only state with
-- published_at set) | rejected | held (flagged by a moderation hook) | blocked (a held item a moderator rejected).
-- review_reason: why it was rejected, taken down or held. reviewed_by: the moderator's user id, or
-- hook:prompt / hook:frames for a hold. submitted_at: when it entered the review queue (pending or held).
ALTER TABLE jobs ADD COLUMN review_state TEXT NOT NULL DEFAULT 'none'
    CHECK (review_state IN ('none', 'pending', 'approved', 'rejected', 'held', 'blocked'));
ALTER TABLE jobs ADD COLUMN review_reason TEXT;
ALTER TABLE jobs ADD COLUMN reviewed_by TEXT;
ALTER TABLE jobs ADD COLUMN reviewed_at DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN submitted_at DOUBLE PRECISION;

-- Before this migration an owner published alone (single-owner mode): what is already in the gallery stays
-- there, recorded as approved by the migration.
UPDATE jobs SET review_state = 'approved', reviewed_by = 'migration:0007', reviewed_at = published_at,
       submitted_at = published_at
WHERE published_at IS NOT NULL;

-- The review queue and the held list (jobs/queries.py LIST_REVIEWS), oldest submission first, touching only
-- the few rows waiting for a moderator.
CREATE INDEX jobs_review_queue ON jobs (review_state, submitted_at, id) WHERE review_state IN ('pending', 'held');
