-- Environments and the runs of their processes.
--
-- Conventions of every PostgreSQL migration: text is `COLLATE "C"`, so it compares and
-- sorts byte by byte as Rust orders strings, and `lower(column)` folds ASCII letters
-- only; a name unique "without regard to ASCII case" has a unique index on
-- `lower(name)`. Timestamps are `timestamptz` (microseconds), counts `bigint`.

CREATE TABLE environments (
    id             text COLLATE "C" NOT NULL PRIMARY KEY,
    name           text COLLATE "C" NOT NULL,
    region         text COLLATE "C",
    -- serde JSON of lakecdp_core::StorageConfig: secret references only, never values
    storage_json   jsonb       NOT NULL,
    output_format  text COLLATE "C" NOT NULL,
    retention_runs bigint      NOT NULL CHECK (retention_runs >= 1),
    created_by     text COLLATE "C" NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE UNIQUE INDEX environments_name ON environments (lower(name));

CREATE TABLE runs (
    id             text COLLATE "C" NOT NULL PRIMARY KEY,
    environment_id text COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    process        text COLLATE "C" NOT NULL,
    status         text COLLATE "C" NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    "rows"         bigint CHECK ("rows" >= 0),
    error          text COLLATE "C"
);

CREATE INDEX runs_by_environment ON runs (environment_id, started_at);
