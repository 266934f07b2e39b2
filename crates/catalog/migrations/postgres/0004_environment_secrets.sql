-- Secrets of environments (storage keys, tokens) sealed by the vault, referred to from
-- the storage configuration as `{ vault = "<name>" }`. Conventions as in 0001.

CREATE TABLE environment_secrets (
    environment_id text COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name           text COLLATE "C" NOT NULL,
    sealed         bytea NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (environment_id, name)
);
