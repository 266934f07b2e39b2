-- Environments and the runs of their processes.
-- Timestamps are RFC 3339 text in UTC with exactly six fractional digits, so that text
-- order is time order.

CREATE TABLE environments (
    id             TEXT    NOT NULL PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    region         TEXT,
    -- serde JSON of lakecdp_core::StorageConfig: secret references only, never values
    storage_json   TEXT    NOT NULL,
    output_format  TEXT    NOT NULL,
    retention_runs INTEGER NOT NULL CHECK (retention_runs >= 1),
    created_by     TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL
) STRICT;

CREATE TABLE runs (
    id             TEXT    NOT NULL PRIMARY KEY,
    environment_id TEXT    NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    process        TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    started_at     TEXT    NOT NULL,
    finished_at    TEXT,
    "rows"         INTEGER CHECK ("rows" >= 0),
    error          TEXT
) STRICT;

CREATE INDEX runs_by_environment ON runs (environment_id, started_at);
