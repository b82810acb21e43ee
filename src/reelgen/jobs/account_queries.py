"""All SQL of the account store (reelgen.jobs.accounts), one comment per query. Tables come from migration
0004_accounts. Placeholders are `?` (the Postgres store rewrites them to `%s`).

Keys and sessions are looked up by their public id / token hash; a key or session only authenticates while
the key is not revoked, the session has not expired and the user is not disabled (checked in the same query,
so disabling a user stops every key and session at once).
"""

USER_COLUMNS = "id, name, role, disabled, created_at"

# Create a user (name is UNIQUE: a second user with the same name fails the insert).
INSERT_USER = """
INSERT INTO users (id, name, role, disabled, password_hash, created_at) VALUES (?, ?, ?, FALSE, ?, ?)
ON CONFLICT (name) DO NOTHING
"""

# One user by name.
SELECT_USER_BY_NAME = f"SELECT {USER_COLUMNS} FROM users WHERE name = ?"

# One user by id.
SELECT_USER = f"SELECT {USER_COLUMNS} FROM users WHERE id = ?"

# Every user, oldest first.
LIST_USERS = f"SELECT {USER_COLUMNS} FROM users ORDER BY created_at, name"

# Whether authentication is needed in `auth=auto` mode: does any user exist (disabled ones included)?
ANY_USER = "SELECT 1 AS one FROM users LIMIT 1"

# Disable / re-enable a user (compare-and-set on the current flag, so the audit log records real changes).
SET_DISABLED = "UPDATE users SET disabled = ? WHERE id = ? AND disabled = ?"

# Change a user's role.
SET_ROLE = "UPDATE users SET role = ? WHERE id = ? AND role <> ?"

# Set (or clear) a user's studio password hash.
SET_PASSWORD = "UPDATE users SET password_hash = ? WHERE id = ?"

# Login by name: the stored password hash of an enabled user.
SELECT_LOGIN = f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE name = ? AND disabled = FALSE"

# Store a new API key (only the sha256 of its secret part).
INSERT_KEY = "INSERT INTO api_keys (id, user_id, secret_hash, created_at) VALUES (?, ?, ?, ?)"

KEY_COLUMNS = "id, user_id, created_at, last_used_at, revoked_at"

# A user's keys, newest first (public parts only).
LIST_KEYS = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = ? ORDER BY created_at DESC, id"

# One key by its public id.
SELECT_KEY = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?"

# Revoke one key (only if not revoked yet: revoking twice keeps the first time).
REVOKE_KEY = "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"

# Revoke every live key of a user.
REVOKE_USER_KEYS = "UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL"

# Authenticate a key by its public id: the hash to compare and its enabled user, if the key is live.
AUTH_KEY = """
SELECT k.secret_hash, k.last_used_at, u.id AS user_id, u.name, u.role
FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.id = ? AND k.revoked_at IS NULL AND u.disabled = FALSE
"""

# Record that a key was used, at most once per interval (the last argument: now - interval).
TOUCH_KEY = "UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)"

# Start a studio session (the cookie holds the token; only its sha256 is stored).
INSERT_SESSION = """
INSERT INTO web_sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
"""

# A live session and its enabled user.
AUTH_SESSION = """
SELECT s.csrf_token, u.id AS user_id, u.name, u.role
FROM web_sessions s JOIN users u ON u.id = s.user_id
WHERE s.token_hash = ? AND s.expires_at > ? AND u.disabled = FALSE
"""

# Log out.
DELETE_SESSION = "DELETE FROM web_sessions WHERE token_hash = ?"

# End every session of a user (disabled).
DELETE_USER_SESSIONS = "DELETE FROM web_sessions WHERE user_id = ?"

# Forget expired sessions (run now and then when a session starts).
DELETE_EXPIRED_SESSIONS = "DELETE FROM web_sessions WHERE expires_at <= ?"
