-- Principals and their roles per environment; connections, their sealed secrets, and
-- exports. Timestamps are RFC 3339 text in UTC with exactly six fractional digits, as in
-- 0001.

CREATE TABLE principals (
    name        TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
    kind        TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE role_assignments (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    principal      TEXT NOT NULL COLLATE NOCASE REFERENCES principals (name),
    role           TEXT NOT NULL,
    assigned_by    TEXT NOT NULL,
    assigned_at    TEXT NOT NULL,
    PRIMARY KEY (environment_id, principal)
) STRICT;

CREATE TABLE connections (
    id             TEXT NOT NULL PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name           TEXT NOT NULL COLLATE NOCASE,
    kind           TEXT NOT NULL,
    -- JSON object of settings; never a secret
    settings_json  TEXT NOT NULL,
    sharing        TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (environment_id, name)
) STRICT;

-- Secrets sealed by the vault (AES-256-GCM under a master key that is never stored here).
CREATE TABLE connection_secrets (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    sealed        BLOB NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (connection_id, name)
) STRICT;

CREATE TABLE exports (
    id             TEXT NOT NULL PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name           TEXT NOT NULL COLLATE NOCASE,
    -- no cascade: a connection that exports use cannot be deleted
    connection_id  TEXT NOT NULL REFERENCES connections (id),
    tables_json    TEXT NOT NULL,
    settings_json  TEXT NOT NULL,
    schedule       TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (environment_id, name)
) STRICT;

CREATE INDEX exports_by_connection ON exports (connection_id);
