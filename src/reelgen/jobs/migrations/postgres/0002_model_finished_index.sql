-- Recent completions per model, newest first (jobs/queries.py RECENT_COMPLETED): the API reads their measured
-- step times to estimate queue and generation time, so this must not scan every finished job.
CREATE INDEX jobs_model_finished ON jobs (model, status, finished_at);
