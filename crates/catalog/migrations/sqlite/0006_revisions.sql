-- Applied project revisions: each environment's project file as applied, numbered from 1,
-- and the revision every process of a refresh ran.
-- Timestamps are RFC 3339 text in UTC with exactly six fractional digits, as in 0001.

CREATE TABLE revisions (
    environment_id TEXT    NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    number         INTEGER NOT NULL CHECK (number >= 1),
    text           TEXT    NOT NULL,
    hash           TEXT    NOT NULL,
    base_dir       TEXT    NOT NULL,
    applied_by     TEXT    NOT NULL,
    applied_at     TEXT    NOT NULL,
    PRIMARY KEY (environment_id, number)
) STRICT;

ALTER TABLE runs ADD COLUMN revision INTEGER;
