-- Authentication and shared work: principal flags, password credentials (Argon2id PHC
-- strings), group memberships, sessions and API tokens (SHA-256 digests of what the
-- client holds, never the value), sign-in throttles, the audit log, run events, cancel
-- requests and leadership. Conventions as in 0001; principals are named as in 0003.

ALTER TABLE principals ADD COLUMN disabled boolean NOT NULL DEFAULT false;
ALTER TABLE principals ADD COLUMN administrator boolean NOT NULL DEFAULT false;

CREATE TABLE passwords (
    principal  text COLLATE "C" NOT NULL,
    hash       text COLLATE "C" NOT NULL,
    changed_at timestamptz NOT NULL
);

CREATE UNIQUE INDEX passwords_principal ON passwords (lower(principal));

CREATE TABLE group_members (
    group_name text COLLATE "C" NOT NULL,
    member     text COLLATE "C" NOT NULL
);

CREATE UNIQUE INDEX group_members_key ON group_members (lower(group_name), lower(member));
CREATE INDEX group_members_by_member ON group_members (lower(member));

CREATE TABLE sessions (
    token_hash   text COLLATE "C" NOT NULL PRIMARY KEY,
    principal    text COLLATE "C" NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    address      text COLLATE "C"
);

CREATE INDEX sessions_by_principal ON sessions (lower(principal));

CREATE TABLE api_tokens (
    id             text COLLATE "C" NOT NULL PRIMARY KEY,
    environment_id text COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name           text COLLATE "C" NOT NULL,
    role           text COLLATE "C" NOT NULL,
    token_hash     text COLLATE "C" NOT NULL UNIQUE,
    created_by     text COLLATE "C" NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz,
    revoked_at     timestamptz,
    last_used_at   timestamptz
);

-- a name is taken by one active token at a time; revoked ones stay listed
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (environment_id, lower(name))
    WHERE revoked_at IS NULL;

CREATE TABLE sign_in_failures (
    key      text COLLATE "C" NOT NULL PRIMARY KEY,
    failures bigint NOT NULL CHECK (failures >= 1),
    first_at timestamptz NOT NULL,
    last_at  timestamptz NOT NULL
);

-- no reference to environments: the log outlives what it names
CREATE TABLE audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL,
    actor          text COLLATE "C" NOT NULL,
    action         text COLLATE "C" NOT NULL,
    environment_id text COLLATE "C",
    object         text COLLATE "C" NOT NULL,
    outcome        text COLLATE "C" NOT NULL,
    address        text COLLATE "C"
);

CREATE INDEX audit_by_environment ON audit_log (environment_id, id);

CREATE TABLE run_events (
    run_id text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    bigint NOT NULL CHECK (seq >= 1),
    at     timestamptz NOT NULL,
    body   text COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, seq)
);

ALTER TABLE runs ADD COLUMN cancel_requested_at timestamptz;

CREATE TABLE leadership (
    name       text COLLATE "C" NOT NULL PRIMARY KEY,
    holder     text COLLATE "C" NOT NULL,
    expires_at timestamptz NOT NULL
);
