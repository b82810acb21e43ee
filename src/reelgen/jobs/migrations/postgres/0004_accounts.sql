-- People (issue 7). jobs.owner holds a user id; "local" is the single owner when authentication is off and
-- has no row here. Later migrations add quota and review columns to these tables.
CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL CHECK (role IN ('user','moderator','admin')),
    disabled   BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash TEXT,                     -- studio login; NULL: the user signs in with an API key
    created_at DOUBLE PRECISION NOT NULL
);

-- API keys: shown once, stored as a hash of the secret part, revocable, with last-used time.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    secret_hash  TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    last_used_at DOUBLE PRECISION,
    revoked_at   DOUBLE PRECISION
);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- Studio sessions (cookie holds the token; only its hash is stored) with their CSRF token.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);

-- Append-only audit log: who did what to which object (review decisions, role and key changes, operator
-- controls).
CREATE TABLE audit_log (
    seq        BIGSERIAL PRIMARY KEY,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    data       TEXT NOT NULL DEFAULT '{}',
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX audit_log_target ON audit_log (target, seq);
