-- Incremental-load watermarks: per environment, source and table, the start of the last
-- `IncrementalData/yyyy/mm/dd/hh` hour folder applied. Conventions as in 0001.

CREATE TABLE watermarks (
    environment_id text COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    source         text COLLATE "C" NOT NULL,
    table_name     text COLLATE "C" NOT NULL,
    hour           timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (environment_id, source, table_name)
);
