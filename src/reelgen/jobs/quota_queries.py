"""SQL for quotas, fair share and operator controls (migration 0006), one comment per query. Placeholders are
`?` (the Postgres store rewrites them). `{for_update}` is " FOR UPDATE" on Postgres and empty on SQLite, whose
write transactions (BEGIN IMMEDIATE) are serialised anyway."""

# Make sure an owner has a fair-share row (the row a create locks); a concurrent insert of the same row is a no-op.
ENSURE_FAIR_SHARE = """
INSERT INTO fair_share (user_id, usage, usage_at, last_claim_at) VALUES (?, 0, ?, NULL)
ON CONFLICT (user_id) DO NOTHING
"""

# Lock one owner's fair-share row for the rest of the transaction: concurrent creates of one owner serialise.
LOCK_FAIR_SHARE = "SELECT user_id, usage, usage_at, last_claim_at FROM fair_share WHERE user_id = ?{for_update}"

# Fair-share rows of several owners (the scheduler's view); `{owners}` is a list of placeholders.
SELECT_FAIR_SHARES = "SELECT user_id, usage, usage_at, last_claim_at FROM fair_share WHERE user_id IN ({owners})"

# Record an owner's new decayed usage (at claim, at completion, when rejoining above the floor).
SET_USAGE = "UPDATE fair_share SET usage = ?, usage_at = ? WHERE user_id = ?"

# The same, and note the claim time (tie-break: the owner served least recently goes first).
SET_USAGE_CLAIMED = "UPDATE fair_share SET usage = ?, usage_at = ?, last_claim_at = ? WHERE user_id = ?"

# The scheduler's floor (the decayed usage of the owner served last).
SELECT_FAIR_CLOCK = "SELECT floor, floor_at FROM fair_clock WHERE id = 1"
SET_FAIR_CLOCK = "UPDATE fair_clock SET floor = ?, floor_at = ? WHERE id = 1"

# One user's limits (no row: unlimited, tier 0).
SELECT_LIMITS = """
SELECT user_id, gpu_seconds, period, max_concurrent, max_queued, priority FROM user_limits WHERE user_id = ?
"""

# Limits of several owners at once (the scheduler's concurrency caps); `{owners}` is a list of placeholders.
SELECT_LIMITS_OF = """
SELECT user_id, max_concurrent, priority FROM user_limits WHERE user_id IN ({owners})
"""

# Set a user's limits (insert or replace the whole row).
UPSERT_LIMITS = """
INSERT INTO user_limits (user_id, gpu_seconds, period, max_concurrent, max_queued, priority, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (user_id) DO UPDATE SET gpu_seconds = excluded.gpu_seconds, period = excluded.period,
    max_concurrent = excluded.max_concurrent, max_queued = excluded.max_queued, priority = excluded.priority,
    updated_at = excluded.updated_at
"""

# A new tier applies to the user's jobs already waiting (their priority is the tier at enqueue).
SET_QUEUED_PRIORITY = "UPDATE jobs SET priority = ? WHERE owner = ? AND status = 'queued'"

# One owner's unfinished jobs by status (jobs_owner_status index): the queue-depth and concurrency caps.
COUNT_UNFINISHED = """
SELECT status, COUNT(*) AS n FROM jobs WHERE owner = ? AND status IN ('queued', 'in_progress') GROUP BY status
"""

# Whether an owner has any unfinished job (one index probe): an owner without one rejoins the scheduler.
HAS_UNFINISHED = "SELECT 1 AS x FROM jobs WHERE owner = ? AND status IN ('queued', 'in_progress') LIMIT 1"

# An owner's queued jobs, counted up to a cap (the queue-depth check reads at most `cap` index entries).
COUNT_QUEUED_UP_TO = """
SELECT COUNT(*) AS n FROM (SELECT 1 AS x FROM jobs WHERE owner = ? AND status = 'queued' LIMIT ?) AS capped
"""

# What counts against a budget period: the current charge of every job of the user in that period.
SUM_CHARGED = """
SELECT COALESCE(SUM(charged), 0) AS charged,
       COALESCE(SUM(CASE WHEN state = 'reserved' THEN charged ELSE 0 END), 0) AS reserved
FROM quota_ledger WHERE user_id = ? AND period_start = ?
"""

# Charge a job's estimate at enqueue (same transaction as the insert of the job).
INSERT_LEDGER = """
INSERT INTO quota_ledger (job_id, user_id, period_start, estimated, actual, charged, state, created_at, settled_at)
VALUES (?, ?, ?, ?, NULL, ?, 'reserved', ?, NULL)
"""

SELECT_LEDGER = """
SELECT job_id, user_id, period_start, estimated, actual, charged, state, created_at, settled_at
FROM quota_ledger WHERE job_id = ?
"""

# A user's ledger, newest first (reporting).
SELECT_LEDGER_OF = """
SELECT job_id, user_id, period_start, estimated, actual, charged, state, created_at, settled_at
FROM quota_ledger WHERE user_id = ? ORDER BY created_at DESC LIMIT ?
"""

# Settle a reserved charge: to the measured time (completed, cancelled while running) or to 0 (refunded).
# Compare-and-set on 'reserved' so a job is settled once.
SETTLE_LEDGER = """
UPDATE quota_ledger SET actual = ?, charged = ?, state = ?, settled_at = ?
WHERE job_id = ? AND state = 'reserved'
"""

# The owners with queued jobs: a skip scan over jobs_queued_owner (one index seek per owner, however long the
# line), so a claim does not read the whole queue.
QUEUED_OWNERS = """
WITH RECURSIVE o(owner) AS (
    SELECT MIN(owner) FROM jobs WHERE status = 'queued'
    UNION ALL
    SELECT (SELECT MIN(owner) FROM jobs WHERE status = 'queued' AND owner > o.owner) FROM o WHERE o.owner IS NOT NULL
)
SELECT owner FROM o WHERE owner IS NOT NULL
"""

# The head of one owner's line: their next claimable job (jobs_queued_owner order; held jobs, from migration
# 0007, and jobs in retry backoff are skipped). `{models}` restricts models (a worker's accepted models, or the
# model it has loaded for affinity).
OWNER_HEAD = """
SELECT id, model, priority FROM jobs
WHERE status = 'queued' AND owner = ? AND review_state <> 'held' AND (not_before IS NULL OR not_before <= ?) {models}
ORDER BY priority DESC, created_at, id LIMIT 1
"""

# Running jobs per owner (the concurrency cap, queue status).
RUNNING_PER_OWNER = "SELECT owner, COUNT(*) AS n FROM jobs WHERE status = 'in_progress' GROUP BY owner"

# Queued jobs per owner (queue status).
QUEUED_PER_OWNER = "SELECT owner, COUNT(*) AS n FROM jobs WHERE status = 'queued' GROUP BY owner"

# Every claimable-or-waiting queued job with what the scheduler orders by, and its estimate (queue positions
# in claim order).
QUEUED_FOR_ORDER = """
SELECT j.id, j.owner, j.priority, j.created_at, l.estimated FROM jobs j LEFT JOIN quota_ledger l ON l.job_id = j.id
WHERE j.status = 'queued' AND j.review_state <> 'held'
ORDER BY j.owner, j.priority DESC, j.created_at, j.id
"""

# Operator switches ('paused', 'maintenance').
SELECT_CONTROLS = "SELECT name, value FROM queue_controls"
UPSERT_CONTROL = """
INSERT INTO queue_controls (name, value, updated_at, updated_by) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,
    updated_by = excluded.updated_by
"""

# A worker checks in at every claim: first sight registers it as active, later ones note the time and model.
WORKER_CHECK_IN = """
INSERT INTO workers (id, state, model, started_at, last_seen_at) VALUES (?, 'active', ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET model = excluded.model, last_seen_at = excluded.last_seen_at
"""
SELECT_WORKER = "SELECT id, state, model, started_at, last_seen_at FROM workers WHERE id = ?"

# A draining worker that asked for work stops: draining -> drained (compare-and-set).
WORKER_DRAINED = "UPDATE workers SET state = 'drained' WHERE id = ? AND state = 'draining'"

# An operator asks a worker to drain: active -> draining (compare-and-set).
WORKER_DRAIN = "UPDATE workers SET state = 'draining' WHERE id = ? AND state = 'active'"

# Workers with the job each is running (if any), most recently seen first.
SELECT_WORKERS = """
SELECT w.id, w.state, w.model, w.started_at, w.last_seen_at,
       (SELECT j.id FROM jobs j WHERE j.worker_id = w.id AND j.status = 'in_progress' LIMIT 1) AS current_job
FROM workers w ORDER BY w.last_seen_at DESC
"""

# Lowest and highest owner in line (two index lookups on jobs_queued_owner): equal means one owner only.
QUEUED_OWNER_RANGE = """
SELECT (SELECT MIN(owner) FROM jobs WHERE status = 'queued') AS lo,
       (SELECT MAX(owner) FROM jobs WHERE status = 'queued') AS hi
"""
