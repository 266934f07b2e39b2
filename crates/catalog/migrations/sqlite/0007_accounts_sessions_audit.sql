-- Authentication and shared work: principal flags, password credentials (Argon2id PHC
-- strings), group memberships, sessions and API tokens (SHA-256 digests of what the
-- client holds, never the value), sign-in throttles, the audit log, run events, cancel
-- requests and leadership. Timestamps are RFC 3339 text in UTC with exactly six
-- fractional digits, as in 0001.

ALTER TABLE principals ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE principals ADD COLUMN administrator INTEGER NOT NULL DEFAULT 0;

CREATE TABLE passwords (
    principal  TEXT NOT NULL PRIMARY KEY COLLATE NOCASE REFERENCES principals (name) ON DELETE CASCADE,
    hash       TEXT NOT NULL,
    changed_at TEXT NOT NULL
) STRICT;

CREATE TABLE group_members (
    group_name TEXT NOT NULL COLLATE NOCASE REFERENCES principals (name) ON DELETE CASCADE,
    member     TEXT NOT NULL COLLATE NOCASE REFERENCES principals (name) ON DELETE CASCADE,
    PRIMARY KEY (group_name, member)
) STRICT;

CREATE INDEX group_members_by_member ON group_members (member);

CREATE TABLE sessions (
    token_hash   TEXT NOT NULL PRIMARY KEY,
    principal    TEXT NOT NULL COLLATE NOCASE REFERENCES principals (name) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    address      TEXT
) STRICT;

CREATE INDEX sessions_by_principal ON sessions (principal);

CREATE TABLE api_tokens (
    id             TEXT NOT NULL PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name           TEXT NOT NULL COLLATE NOCASE,
    role           TEXT NOT NULL,
    token_hash     TEXT NOT NULL UNIQUE,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT,
    revoked_at     TEXT,
    last_used_at   TEXT
) STRICT;

-- a name is taken by one active token at a time; revoked ones stay listed
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (environment_id, name)
    WHERE revoked_at IS NULL;

CREATE TABLE sign_in_failures (
    key      TEXT    NOT NULL PRIMARY KEY,
    failures INTEGER NOT NULL CHECK (failures >= 1),
    first_at TEXT    NOT NULL,
    last_at  TEXT    NOT NULL
) STRICT;

-- no reference to environments: the log outlives what it names
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             TEXT NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    environment_id TEXT,
    object         TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    address        TEXT
) STRICT;

CREATE INDEX audit_by_environment ON audit_log (environment_id, id);

CREATE TABLE run_events (
    run_id TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL CHECK (seq >= 1),
    at     TEXT    NOT NULL,
    body   TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT;

ALTER TABLE runs ADD COLUMN cancel_requested_at TEXT;

CREATE TABLE leadership (
    name       TEXT NOT NULL PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
