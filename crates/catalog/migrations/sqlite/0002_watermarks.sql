-- Incremental-load watermarks: per environment, source and table, the start of the last
-- `IncrementalData/yyyy/mm/dd/hh` hour folder applied.
-- Timestamps are RFC 3339 text in UTC with exactly six fractional digits, as in 0001.

CREATE TABLE watermarks (
    environment_id TEXT    NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    source         TEXT    NOT NULL,
    table_name     TEXT    NOT NULL,
    hour           TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    PRIMARY KEY (environment_id, source, table_name)
) STRICT;
