-- Applied project revisions: each environment's project file as applied, numbered from 1,
-- and the revision every process of a refresh ran. Conventions as in 0001.

CREATE TABLE revisions (
    environment_id text COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    number         bigint NOT NULL CHECK (number >= 1),
    text           text COLLATE "C" NOT NULL,
    hash           text COLLATE "C" NOT NULL,
    base_dir       text COLLATE "C" NOT NULL,
    applied_by     text COLLATE "C" NOT NULL,
    applied_at     timestamptz NOT NULL,
    PRIMARY KEY (environment_id, number)
);

ALTER TABLE runs ADD COLUMN revision bigint;
