-- Quotas, fair share and operator controls (issue 7). Owners without a user_limits row (the single "local"
-- owner when authentication is off, and users no admin limited) are unlimited, priority tier 0.
CREATE TABLE user_limits (
    user_id        TEXT PRIMARY KEY,
    gpu_seconds    DOUBLE PRECISION,          -- budget per period; NULL = unlimited
    period         TEXT NOT NULL DEFAULT 'day' CHECK (period IN ('day','month')),  -- calendar period, UTC
    max_concurrent INTEGER,                   -- most jobs running at once (the scheduler holds the rest); NULL = no cap
    max_queued     INTEGER,                   -- most jobs waiting in the queue (a create beyond it is a 429); NULL = no cap
    priority       INTEGER NOT NULL DEFAULT 0, -- tier: higher tiers are always served first
    updated_at     DOUBLE PRECISION NOT NULL
);

-- Fair-share state per owner; also the row a create locks so one owner's concurrent creates serialise.
-- usage: GPU-seconds granted, decayed with a half-life, as of usage_at (decay is applied in Python).
CREATE TABLE fair_share (
    user_id       TEXT PRIMARY KEY,
    usage         DOUBLE PRECISION NOT NULL DEFAULT 0,
    usage_at      DOUBLE PRECISION NOT NULL,
    last_claim_at DOUBLE PRECISION
);

-- The scheduler's virtual clock (one row): the decayed usage of the owner served last. An owner whose line
-- was empty rejoins at no less than it, so being idle banks no credit beyond what decay forgives.
CREATE TABLE fair_clock (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    floor    DOUBLE PRECISION NOT NULL,
    floor_at DOUBLE PRECISION NOT NULL
);
INSERT INTO fair_clock (id, floor, floor_at) VALUES (1, 0, 0);

-- Quota ledger: one row per job. state: reserved (estimate charged at enqueue), settled (actual time
-- charged on completion, or time used when cancelled while running), refunded (nothing charged).
CREATE TABLE quota_ledger (
    job_id       TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    period_start DOUBLE PRECISION NOT NULL,  -- start (UTC) of the budget period the job is charged to
    estimated    DOUBLE PRECISION NOT NULL,  -- GPU-seconds estimated at enqueue
    actual       DOUBLE PRECISION,           -- GPU-seconds measured (denoise + decode), once known
    charged      DOUBLE PRECISION NOT NULL,  -- what counts against the budget now
    state        TEXT NOT NULL CHECK (state IN ('reserved','settled','refunded')),
    created_at   DOUBLE PRECISION NOT NULL,
    settled_at   DOUBLE PRECISION
);
CREATE INDEX quota_ledger_user_period ON quota_ledger (user_id, period_start);

-- Operator switches: name 'paused' (claims return nothing) and 'maintenance' (the API refuses writes).
CREATE TABLE queue_controls (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    updated_by TEXT NOT NULL
);

-- Workers seen claiming; state 'draining' tells one to finish its job and exit, 'drained' once it has.
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    state        TEXT NOT NULL CHECK (state IN ('active','draining','drained')),
    model        TEXT,                       -- the model it has loaded (affinity)
    started_at   DOUBLE PRECISION NOT NULL,
    last_seen_at DOUBLE PRECISION NOT NULL
);

-- Scheduler and cap lookups: the owners in line (a skip scan) and each owner's line in claim order, and one
-- owner's unfinished jobs.
CREATE INDEX jobs_queued_owner ON jobs (status, owner, priority DESC, created_at, id);
CREATE INDEX jobs_owner_status ON jobs (owner, status);
