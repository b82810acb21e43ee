"""All SQL the job stores run, one comment per query. Placeholders are `?`; the Postgres store rewrites
them to `%s`. Each UPDATE names the status it expects: that compare-and-set is what enforces the
transitions of reelgen/domain/jobs.py under concurrency, and the (id, attempt) match is the fencing token.
"""

# The columns INSERT_JOB sets (later migrations' columns take their defaults) ...
INSERTED_COLUMNS = (
    "id, owner, status, model, params, progress, step, total_steps, attempt, max_attempts, priority, "
    "created_at, started_at, finished_at, lease_expires_at, not_before, worker_id, cancel_requested, "
    "error_code, error_message, artifact, idempotency_key, remixed_from, published_at"
)
# ... and every column a Job is read from (review columns: migration 0007).
JOB_COLUMNS = INSERTED_COLUMNS + ", review_state, review_reason, reviewed_by, reviewed_at, submitted_at"

# Enqueue a job (status queued). A concurrent create with the same idempotency key inserts nothing.
INSERT_JOB = f"""
INSERT INTO jobs ({INSERTED_COLUMNS})
VALUES (?, ?, 'queued', ?, ?, 0, 0, 0, 0, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, FALSE, NULL, NULL, NULL, ?, ?, NULL)
ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
"""

# Idempotent create: the job this owner already made with this key.
SELECT_BY_IDEMPOTENCY = f"SELECT {JOB_COLUMNS} FROM jobs WHERE owner = ? AND idempotency_key = ?"

SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"

# Latest completions of one model (their artifacts hold measured step times: the API's ETAs). Uses the
# jobs_model_finished index from migration 0002.
RECENT_COMPLETED = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE model = ? AND status = 'completed'
ORDER BY finished_at DESC LIMIT ?
"""

# Keyset pagination over one owner's jobs, newest first (or oldest first); the cursor is a job id.
LIST_DESC = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE owner = ?
  AND (CAST(? AS TEXT) IS NULL OR (created_at, id) < (SELECT created_at, id FROM jobs WHERE id = ?))
ORDER BY created_at DESC, id DESC LIMIT ?
"""
LIST_ASC = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE owner = ?
  AND (CAST(? AS TEXT) IS NULL OR (created_at, id) > (SELECT created_at, id FROM jobs WHERE id = ?))
ORDER BY created_at ASC, id ASC LIMIT ?
"""

# The same over every owner's jobs (moderators and admins listing with owner=all).
LIST_ALL_DESC = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE (CAST(? AS TEXT) IS NULL OR (created_at, id) < (SELECT created_at, id FROM jobs WHERE id = ?))
ORDER BY created_at DESC, id DESC LIMIT ?
"""
LIST_ALL_ASC = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE (CAST(? AS TEXT) IS NULL OR (created_at, id) > (SELECT created_at, id FROM jobs WHERE id = ?))
ORDER BY created_at ASC, id ASC LIMIT ?
"""

# --- publishing and moderation (review states and transitions: reelgen/domain/review.py) ---------------
# Each names the review state(s) it expects (compare-and-set); only APPROVE ever sets published_at.

# The owner submits a completed video for publication (first time, or again after a rejection).
SUBMIT = """
UPDATE jobs SET review_state = 'pending', review_reason = NULL, reviewed_by = NULL, reviewed_at = NULL,
       submitted_at = ?
WHERE id = ? AND status = 'completed' AND review_state IN ('none', 'rejected')
"""

# A moderator approves a pending video: the one way into the gallery.
APPROVE = """
UPDATE jobs SET review_state = 'approved', published_at = ?, review_reason = NULL, reviewed_by = ?, reviewed_at = ?
WHERE id = ? AND status = 'completed' AND review_state = 'pending'
"""

# A moderator rejects a pending video, with a reason the owner sees.
REJECT = """
UPDATE jobs SET review_state = 'rejected', published_at = NULL, review_reason = ?, reviewed_by = ?, reviewed_at = ?
WHERE id = ? AND review_state = 'pending'
"""

# A moderator takes a published video down, with a reason (it leaves the gallery at once).
TAKE_DOWN = """
UPDATE jobs SET review_state = 'rejected', published_at = NULL, review_reason = ?, reviewed_by = ?, reviewed_at = ?
WHERE id = ? AND review_state = 'approved'
"""

# The owner withdraws a submission or unpublishes a published video.
WITHDRAW = """
UPDATE jobs SET review_state = 'none', published_at = NULL, submitted_at = NULL
WHERE id = ? AND review_state IN ('pending', 'approved')
"""

# A moderation hook flags a job (prompt check at enqueue: it is not claimed while held; frame check at
# completion: its content is withheld from the owner).
HOLD = """
UPDATE jobs SET review_state = 'held', review_reason = ?, reviewed_by = ?, reviewed_at = ?, submitted_at = ?
WHERE id = ? AND review_state = 'none'
"""

# A moderator releases a held job: a queued one becomes claimable, a completed one watchable by its owner.
RELEASE = """
UPDATE jobs SET review_state = 'none', review_reason = NULL, reviewed_by = ?, reviewed_at = ?, submitted_at = NULL
WHERE id = ? AND review_state = 'held'
"""

# A moderator rejects a held job for good (its content stays withheld).
BLOCK = """
UPDATE jobs SET review_state = 'blocked', review_reason = ?, reviewed_by = ?, reviewed_at = ?
WHERE id = ? AND review_state = 'held'
"""

# ... and a blocked job that never ran is cancelled, with the reason as its error.
CANCEL_BLOCKED = """
UPDATE jobs SET status = 'cancelled', finished_at = ?, cancel_requested = TRUE,
       error_code = 'moderation_blocked', error_message = ?
WHERE id = ? AND status = 'queued' AND review_state = 'blocked'
"""

# The review queue (state 'pending') or the held list (state 'held'), oldest first; keyset pagination with a
# job id as the cursor (jobs_review_queue partial index, migration 0007). A held job its owner cancelled (or
# that failed) needs no decision any more and drops out.
LIST_REVIEWS = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE review_state = ? AND status IN ('queued', 'completed')
  AND (CAST(? AS TEXT) IS NULL OR (submitted_at, id) > (SELECT submitted_at, id FROM jobs WHERE id = ?))
ORDER BY submitted_at, id LIMIT ?
"""

# The gallery: approved jobs of every owner, most recently published first; keyset pagination with a job id
# as the cursor (jobs_published partial index, migration 0003).
LIST_PUBLISHED = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE published_at IS NOT NULL AND review_state = 'approved'
  AND (CAST(? AS TEXT) IS NULL OR (published_at, id) < (SELECT published_at, id FROM jobs WHERE id = ?))
ORDER BY published_at DESC, id DESC LIMIT ?
"""

# Cancel a queued job at once.
CANCEL_QUEUED = """
UPDATE jobs SET status = 'cancelled', finished_at = ?, cancel_requested = TRUE
WHERE id = ? AND status = 'queued'
"""

# Ask a running job to stop; its worker sees the flag at its next step and calls MARK_CANCELLED.
REQUEST_CANCEL = "UPDATE jobs SET cancel_requested = TRUE WHERE id = ? AND status = 'in_progress'"

DELETE_JOB = "DELETE FROM jobs WHERE id = ? AND status IN ('completed', 'failed', 'cancelled')"
DELETE_EVENTS = "DELETE FROM job_events WHERE job_id = ?"

# Jobs whose worker went silent: requeue them while attempts remain (the next claim bumps the attempt) ...
REQUEUE_EXPIRED = """
UPDATE jobs SET status = 'queued', worker_id = NULL, lease_expires_at = NULL, not_before = ?,
       progress = 0, step = 0, error_code = 'worker_lost',
       error_message = 'the worker stopped heartbeating; the job was requeued'
WHERE id = ? AND status = 'in_progress' AND attempt = ?
"""
# ... or fail them for good when none remain.
FAIL_EXPIRED = """
UPDATE jobs SET status = 'failed', worker_id = NULL, lease_expires_at = NULL, finished_at = ?,
       error_code = 'worker_lost', error_message = ?
WHERE id = ? AND status = 'in_progress' AND attempt = ?
"""
SELECT_EXPIRED = """
SELECT id, attempt, max_attempts FROM jobs
WHERE status = 'in_progress' AND lease_expires_at < ?
"""

# Take a specific queued job, chosen by the scheduler (jobs/quota_store.py `_fair_claim`) inside the same
# write transaction (SQLite BEGIN IMMEDIATE; Postgres under the scheduler's advisory lock).
CLAIM_JOB = f"""
UPDATE jobs SET status = 'in_progress', attempt = attempt + 1, worker_id = ?, lease_expires_at = ?,
       started_at = ?, progress = 0, step = 0, total_steps = 0, error_code = NULL, error_message = NULL
WHERE id = ? AND status = 'queued'
RETURNING {JOB_COLUMNS}
"""

# Fenced lease renewal; returns the cancel flag.
HEARTBEAT = """
UPDATE jobs SET lease_expires_at = ?
WHERE id = ? AND attempt = ? AND status = 'in_progress'
RETURNING cancel_requested
"""

# Fenced progress report (also renews the lease).
PROGRESS = """
UPDATE jobs SET progress = ?, step = ?, total_steps = ?, lease_expires_at = ?
WHERE id = ? AND attempt = ? AND status = 'in_progress'
RETURNING cancel_requested
"""

# Fenced completion: only the current attempt of a running job can complete it, exactly once.
COMPLETE = f"""
UPDATE jobs SET status = 'completed', progress = 100, finished_at = ?, lease_expires_at = NULL,
       artifact = ?, error_code = NULL, error_message = NULL
WHERE id = ? AND attempt = ? AND status = 'in_progress'
RETURNING {JOB_COLUMNS}
"""

# Fenced retry after an engine error: back to the queue, claimable after the backoff.
RETRY = f"""
UPDATE jobs SET status = 'queued', worker_id = NULL, lease_expires_at = NULL, not_before = ?,
       progress = 0, step = 0, error_code = ?, error_message = ?
WHERE id = ? AND attempt = ? AND status = 'in_progress'
RETURNING {JOB_COLUMNS}
"""

# Fenced final failure.
FAIL = f"""
UPDATE jobs SET status = 'failed', worker_id = NULL, lease_expires_at = NULL, finished_at = ?,
       error_code = ?, error_message = ?
WHERE id = ? AND attempt = ? AND status = 'in_progress'
RETURNING {JOB_COLUMNS}
"""

# Fenced stop after a cancel request.
MARK_CANCELLED = f"""
UPDATE jobs SET status = 'cancelled', worker_id = NULL, lease_expires_at = NULL, finished_at = ?
WHERE id = ? AND attempt = ? AND status = 'in_progress'
RETURNING {JOB_COLUMNS}
"""

INSERT_EVENT = "INSERT INTO job_events (job_id, kind, data, created_at) VALUES (?, ?, ?, ?)"

# Append to the audit log (migration 0004): written in the same transaction as the change it records.
INSERT_AUDIT = "INSERT INTO audit_log (actor, action, target, data, created_at) VALUES (?, ?, ?, ?, ?)"

# Read the audit log newest first, optionally for one target or one actor; `seq < ?` pages backwards.
SELECT_AUDIT = """
SELECT seq, actor, action, target, data, created_at FROM audit_log
WHERE seq < ? AND (CAST(? AS TEXT) IS NULL OR target = ?) AND (CAST(? AS TEXT) IS NULL OR actor = ?)
ORDER BY seq DESC LIMIT ?
"""
SELECT_EVENTS = """
SELECT seq, job_id, kind, data, created_at FROM job_events
WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?
"""

# 1-based place in line among claimable jobs, in claim order.
QUEUE_POSITION = """
SELECT COUNT(*) AS ahead FROM jobs q, jobs me
WHERE me.id = ? AND me.status = 'queued' AND q.status = 'queued'
  AND me.review_state <> 'held' AND q.review_state <> 'held'
  AND (q.priority > me.priority OR (q.priority = me.priority AND (q.created_at, q.id) <= (me.created_at, me.id)))
"""

# Queued job ids in the order QUEUE_POSITION counts them (a snapshot of the whole line; jobs_queue index).
QUEUED_IDS = """
SELECT id FROM jobs WHERE status = 'queued' AND review_state <> 'held'
ORDER BY priority DESC, created_at, id
LIMIT ?
"""

# Earliest moment something may become claimable without a new create (backoff end or lease expiry).
NEXT_WAKEUP = """
SELECT MIN(t) AS t FROM (
    SELECT MIN(not_before) AS t FROM jobs WHERE status = 'queued' AND not_before IS NOT NULL
    UNION ALL
    SELECT MIN(lease_expires_at) AS t FROM jobs WHERE status = 'in_progress'
) AS x
"""
