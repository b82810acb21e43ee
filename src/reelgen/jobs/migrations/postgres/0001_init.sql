-- Jobs: one row per video request. Status transitions are defined in reelgen/domain/jobs.py and
-- every UPDATE in jobs/queries.py names the status it expects (compare-and-set), so two writers can
-- never both move a job forward.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    owner            TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued','in_progress','completed','failed','cancelled')),
    model            TEXT NOT NULL,
    params           TEXT NOT NULL,              -- GenerationParams as JSON
    progress         INTEGER NOT NULL DEFAULT 0,
    step             INTEGER NOT NULL DEFAULT 0,
    total_steps      INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0, -- number of the current (or last) attempt; 0 = never claimed
    max_attempts     INTEGER NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    created_at       DOUBLE PRECISION NOT NULL,
    started_at       DOUBLE PRECISION,
    finished_at      DOUBLE PRECISION,
    lease_expires_at DOUBLE PRECISION,
    not_before       DOUBLE PRECISION,           -- retry backoff: not claimable before this time
    worker_id        TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    error_code       TEXT,
    error_message    TEXT,
    artifact         TEXT,                       -- Artifact as JSON, set only by a fenced completion
    idempotency_key  TEXT,
    remixed_from     TEXT
);
CREATE UNIQUE INDEX jobs_owner_idempotency ON jobs (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_queue ON jobs (status, priority, created_at);
CREATE INDEX jobs_owner_created ON jobs (owner, created_at, id);
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'in_progress';

-- Append-only log of what happened to a job; `seq` lets an event stream resume without gaps.
CREATE TABLE job_events (
    seq        BIGSERIAL PRIMARY KEY,
    job_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX job_events_job ON job_events (job_id, seq);
